use microdriver_rt::Marshal;

#[derive(Marshal)]
struct Config {
    mtu: u32,
}

#[derive(Marshal)]
struct Open<'a> {
    id: u32,
    config: &'a Config,
}

fn main() {}
