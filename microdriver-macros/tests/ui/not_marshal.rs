use microdriver_rt::Marshal;

struct Doorbell(u32);

#[derive(Marshal)]
struct Queue {
    id: u32,
    doorbell: Doorbell,
}

#[derive(Marshal)]
enum Cmd {
    Ring(Vec<Doorbell>),
}

fn main() {}
