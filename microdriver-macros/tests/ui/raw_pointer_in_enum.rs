use microdriver_rt::Marshal;

#[derive(Marshal)]
enum Msg {
    Ping,
    Map { base: std::ptr::NonNull<u8> },
}

fn main() {}
