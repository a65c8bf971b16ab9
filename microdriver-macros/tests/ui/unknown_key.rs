use microdriver_rt::Marshal;

#[derive(Marshal)]
struct Ring {
    count: u32,
    #[marshal(lenght = self.count)]
    slots: Vec<u64>,
}

fn main() {}
