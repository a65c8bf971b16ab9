use microdriver_rt::critical;

#[critical]
fn checksum<T: Copy + Into<u64>>(values: Vec<T>) -> u64 {
    values.into_iter().map(Into::into).sum()
}

fn main() {}
