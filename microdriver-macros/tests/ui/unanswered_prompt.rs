use microdriver_rt::Marshal;

// What `cargo microdriver apply` writes on a field that cannot cross as it is: the derive
// refuses it, with the question, until the user replaces it with the answer.
#[derive(Marshal)]
struct TxRing {
    count: u32,
    #[marshal(prompt = "*mut u8 is a raw pointer (its extent is unknown); the sibling count field count bounds it (crosses with tx::send); needs #[marshal(len = ...)], opaque or skip; guess: len = count")]
    buffer: *mut u8,
}

fn main() {}
