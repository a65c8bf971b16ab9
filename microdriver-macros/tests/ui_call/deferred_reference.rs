use microdriver_rt::upcall;

#[upcall(deferred)]
fn log_event(code: u32, message: &str) {
    let _ = (code, message);
}

fn main() {}
