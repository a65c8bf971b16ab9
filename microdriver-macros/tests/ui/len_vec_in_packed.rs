use microdriver_rt::Marshal;

#[derive(Marshal)]
#[repr(C, packed)]
struct Ring {
    count: u8,
    #[marshal(len = self.count)]
    slots: Vec<u64>,
}

fn main() {}
