use microdriver_rt::upcall;

#[upcall(defered)]
fn watchdog(ticks: u64) {
    let _ = ticks;
}

fn main() {}
