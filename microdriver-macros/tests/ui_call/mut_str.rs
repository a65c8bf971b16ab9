use microdriver_rt::upcall;

#[upcall]
fn rename(name: &mut str) {
    name.make_ascii_uppercase();
}

fn main() {}
