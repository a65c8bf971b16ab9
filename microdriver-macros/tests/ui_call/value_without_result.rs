use microdriver_rt::upcall;

#[upcall]
fn read_link_speed(port: u32) -> u32 {
    port * 1000
}

fn main() {
    let _ = read_link_speed(1);
}
