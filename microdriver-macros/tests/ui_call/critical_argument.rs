use microdriver_rt::critical;

#[critical(deferred)]
fn xmit(len: u32) {
    let _ = len;
}

fn main() {}
