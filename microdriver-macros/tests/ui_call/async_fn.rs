use microdriver_rt::upcall;

#[upcall]
async fn self_test(rounds: u32) {
    let _ = rounds;
}

fn main() {}
