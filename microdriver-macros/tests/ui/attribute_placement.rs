use microdriver_rt::Marshal;

#[derive(Marshal)]
#[marshal(bond = "T: Marshal")]
enum Msg<T> {
    #[marshal(skip)]
    Data(T),
    Stop {
        #[marshal(skip_marshal)]
        reason: u8,
    },
}

fn main() {}
