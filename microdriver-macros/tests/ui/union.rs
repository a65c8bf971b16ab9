use microdriver_rt::Marshal;

#[derive(Marshal)]
union Reg {
    word: u32,
    bytes: [u8; 4],
}

fn main() {}
