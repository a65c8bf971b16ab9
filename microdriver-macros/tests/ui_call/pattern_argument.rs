use microdriver_rt::upcall;

#[upcall]
fn set_pause((rx, tx): (bool, bool)) {
    let _ = (rx, tx);
}

fn main() {}
