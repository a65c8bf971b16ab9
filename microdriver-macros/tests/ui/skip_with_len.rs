use microdriver_rt::Marshal;

#[derive(Marshal)]
struct Ring {
    count: u32,
    #[marshal(skip, len = self.count)]
    slots: Vec<u64>,
}

fn main() {}
