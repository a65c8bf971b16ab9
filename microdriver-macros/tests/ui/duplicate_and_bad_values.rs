use microdriver_rt::Marshal;

#[derive(Marshal)]
#[marshal(skip)]
struct Many {
    #[marshal(skip)]
    #[marshal(skip)]
    a: u32,
    #[marshal(opaque = true)]
    b: *mut u8,
    #[marshal(len)]
    c: Vec<u8>,
}

fn main() {}
