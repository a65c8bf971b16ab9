use microdriver_rt::Marshal;

#[derive(Marshal)]
struct Ring {
    #[marshal(len = 16)]
    count: u32,
    slots: Vec<u64>,
}

fn main() {}
