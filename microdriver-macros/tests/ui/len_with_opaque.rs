use microdriver_rt::Marshal;

#[derive(Marshal)]
struct Ring {
    count: u32,
    #[marshal(len = self.count, opaque)]
    slots: *mut u64,
}

fn main() {}
