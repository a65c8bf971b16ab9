use microdriver_rt::Marshal;

struct Lock;

#[derive(Marshal)]
struct Dev {
    id: u32,
    #[marshal(skip)]
    lock: Lock,
}

fn main() {}
