use microdriver_rt::Marshal;

#[derive(Marshal)]
struct TxRing {
    count: u32,
    buffer: *mut u8,
}

// The failed derive still leaves an impl behind, so uses of the type report nothing more.
fn send(ring: &TxRing) {
    let _ = microdriver_rt::marshal::to_bytes(ring);
}

fn main() {}
