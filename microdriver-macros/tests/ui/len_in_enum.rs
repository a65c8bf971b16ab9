use microdriver_rt::Marshal;

#[derive(Marshal)]
enum Msg {
    Data {
        count: u32,
        #[marshal(len = count)]
        bytes: Vec<u8>,
    },
}

fn main() {}
