//! Fault injection into the user half (`e1000ctl inject`), for demos and tests.
//!
//! Each fault is something a buggy user half really does: abort inside an upcall, stop
//! answering, or answer with garbage and scribble over its channel. The kernel half's answer to each is the
//! point of the exercise: traffic keeps flowing and the user half comes back.

use std::sync::atomic::Ordering;

use e1000::DriverError;
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{user_endpoint, KernelEndpoint};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::upcall;

/// Aborts the user half from inside an upcall (the body runs in the user half).
#[upcall]
pub fn crash_user_half() -> Result<(), DriverError> {
    if user_endpoint().is_none() {
        // Monolithic: the daemon refuses before calling this; never abort the kernel half.
        return Err(DriverError::Unsupported(
            "crash injection needs the split mode".into(),
        ));
    }
    std::process::abort();
}

/// Writes pseudo-random bytes over the slot words and data areas of the user half's
/// channel, as a user half with a wild pointer would.
#[upcall]
pub fn scribble_channel(seed: u64) -> Result<(), DriverError> {
    let endpoint = user_endpoint()
        .ok_or_else(|| DriverError::Unsupported("garbage injection needs the split mode".into()))?;
    let area = endpoint.transport();
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..64 {
        let slot = (next() as usize) % area.slot_count();
        let word = (next() as usize) % microdriver_rt::transport::SLOT_WORDS;
        if let Some(w) = area.slot_word(slot, word) {
            w.store(next() as u32, Ordering::SeqCst);
        }
        let bytes: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
        area.write_data(slot, &bytes);
    }
    Ok(())
}

const GARBAGE_REPLY: &str = "e1000d::faults::garbage_reply";

/// Answers with random bytes in place of a reply, as a user half with corrupted state
/// would. The first byte is never a valid `Result` tag, so the frame cannot decode.
fn garbage_reply_handler(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    drop(dec);
    let mut x = u64::from(std::process::id()) | 1;
    enc.put_u8(0xEE);
    for _ in 0..61 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        enc.put_u8(x as u8);
    }
    Ok(())
}

inventory::submit! {
    Entry {
        name: GARBAGE_REPLY,
        signature: "fn() -> Result<(), DriverError>",
        served: Served::ByUser,
        handler: garbage_reply_handler,
    }
}

/// Asks the user half for a reply and gets garbage: the kernel half must reject it.
pub fn garbage_reply(endpoint: &KernelEndpoint) -> Result<(), DriverError> {
    endpoint
        .call(
            Entry::id_of(GARBAGE_REPLY),
            GARBAGE_REPLY,
            &mut (),
            |_, enc| ().encode(enc),
            |_, dec| <Result<(), DriverError>>::decode(dec),
        )
        .map_err(DriverError::from)?
}
