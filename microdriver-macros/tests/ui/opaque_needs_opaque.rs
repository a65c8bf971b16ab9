use microdriver_rt::Marshal;

struct Handle;

#[derive(Marshal)]
struct Dev {
    #[marshal(opaque)]
    handle: Handle,
}

fn main() {}
