use std::ptr::NonNull;

use microdriver_rt::Marshal;

#[derive(Marshal)]
struct Ring {
    count: u32,
    #[marshal(len = self.count)]
    slots: NonNull<u64>,
}

fn main() {}
