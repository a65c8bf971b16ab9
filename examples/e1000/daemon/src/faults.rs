//! Fault injection into the user half (`e1000ctl inject`), for demos and tests.
//!
//! Each fault is something a buggy user half really does: abort inside an upcall, stop
//! answering, or answer with garbage and scribble over its channel. The kernel half's answer to each is the
//! point of the exercise: traffic keeps flowing and the user half comes back.

use e1000::DriverError;
use microdriver_rt::lrpc::{user_endpoint, KernelEndpoint};
use microdriver_rt::lrpc::{Entry, Served};
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
    endpoint.scribble_channel(seed);
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

microdriver_rt::entry! {
    name: GARBAGE_REPLY,
    signature: "fn() -> Result<(), DriverError>",
    served: Served::ByUser,
    handler: garbage_reply_handler,
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

/// Panics inside an upcall, as a driver bug that trips an assertion would: the call fails
/// with the panic's message and the user half keeps serving.
#[upcall]
pub fn panic_in_user_half() -> Result<(), DriverError> {
    if user_endpoint().is_none() {
        return Err(DriverError::Unsupported(
            "panic injection needs the split mode".into(),
        ));
    }
    panic!("injected: a user-half bug panicked inside an upcall");
}

/// Takes `ms` milliseconds to answer, as a user half stuck behind slow work would (one of
/// its workers is busy for that long; the others keep serving).
#[upcall]
pub fn slow_user_half(ms: u32) -> Result<(), DriverError> {
    if user_endpoint().is_none() {
        return Err(DriverError::Unsupported(
            "slow injection needs the split mode".into(),
        ));
    }
    std::thread::sleep(std::time::Duration::from_millis(u64::from(ms)));
    Ok(())
}

/// Tries to hold each of the hot path's combolocks for `ms` milliseconds, as a user half
/// that wanted to edit ring state would. Returns how many holds were granted (the locks
/// are snapshot-only: none should be).
#[upcall]
pub fn hold_hot_locks(shared: &e1000::shared::SharedState, ms: u32) -> Result<u32, DriverError> {
    let hold = std::time::Duration::from_millis(u64::from(ms));
    let mut granted = 0;
    if let Ok(g) = shared.tx.lock() {
        granted += 1;
        std::thread::sleep(hold);
        drop(g);
    }
    if let Ok(g) = shared.rx.lock() {
        granted += 1;
        std::thread::sleep(hold);
        drop(g);
    }
    if let Ok(g) = shared.poll.lock() {
        granted += 1;
        std::thread::sleep(hold);
        drop(g);
    }
    Ok(granted)
}

/// Takes snapshots of the hot path's combolocks back to back for `ms` milliseconds (each
/// one takes the critical path's lock for one encode). Returns how many it took.
#[upcall]
pub fn snapshot_storm(shared: &e1000::shared::SharedState, ms: u32) -> Result<u64, DriverError> {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(u64::from(ms));
    let mut taken = 0;
    while std::time::Instant::now() < end {
        shared.tx.snapshot()?;
        shared.rx.snapshot()?;
        shared.poll.snapshot()?;
        taken += 3;
    }
    Ok(taken)
}

const FORGE: &str = "e1000d::faults::forge";

/// Answers with a forged value for `kind` (see [`forged_replies`]).
fn forge_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let (kind, tx_id, rx_id) = <(u8, u64, u64)>::decode(&mut dec)?;
    dec.finish()?;
    let tag = microdriver_rt::tracker::TypeTag::of::<e1000::shared::TxStats>().id();
    match kind {
        // Combolock ids for a `Shared<TxQueue>`: none, the receive queue's (another type),
        // one past the real one, zero.
        0 => enc.put_u64(0x7fff_dead_beef),
        1 => enc.put_u64(rx_id),
        2 => enc.put_u64(tx_id.wrapping_add(1000)),
        3 => enc.put_u64(0),
        // Tracked pointers to a `TxStats`: near null, never registered, wrong type.
        k => {
            let (sender, ty, claimed) = match k {
                4 => (0x10, tag, 0x20),
                5 => (0x7f00_1234_5000, tag, 0x7fff_dead_0000),
                _ => (0x7f00_1234_6000, tag ^ 0x5a5a, 0x7fff_dead_1000),
            };
            enc.put_u8(2);
            enc.put_u64(sender);
            enc.put_u64(ty);
            enc.put_u64(claimed);
            e1000::shared::TxStats::default().encode(enc)?;
        }
    }
    Ok(())
}

microdriver_rt::entry! {
    name: FORGE,
    signature: "fn((u8, u64, u64)) -> forged",
    served: Served::ByUser,
    handler: forge_handler,
}

/// Asks the user half for forged replies of every kind and checks that the kernel half
/// refuses each: combolock ids and tracked pointers that name nothing (or the wrong type),
/// Whether the kernel half accepted the forged reply of `args` decoded as a `T`.
fn forge_accepted<T: Marshal>(endpoint: &KernelEndpoint, args: (u8, u64, u64)) -> bool {
    endpoint
        .call(
            Entry::id_of(FORGE),
            FORGE,
            &mut (),
            |_, enc| args.encode(enc),
            |_, dec| T::decode(dec),
        )
        .is_ok()
}

/// and an entry id nobody serves. Returns an error naming any forged value accepted.
pub fn forged_replies(
    endpoint: &KernelEndpoint,
    shared: &e1000::shared::SharedState,
) -> Result<u32, String> {
    use e1000::shared::{TxQueue, TxStats};
    use microdriver_rt::marshal::TrackedPtr;
    let (tx_id, rx_id) = (shared.tx.id(), shared.rx.id());
    let mut refused = 0;
    for kind in 0u8..7 {
        let args = (kind, tx_id, rx_id);
        // Kinds 0-3 forge a combolock, the rest a tracked pointer.
        let accepted = if kind < 4 {
            forge_accepted::<e1000::Shared<TxQueue>>(endpoint, args)
        } else {
            forge_accepted::<TrackedPtr<TxStats>>(endpoint, args)
        };
        if accepted {
            return Err(format!("the kernel half accepted forged reply kind {kind}"));
        }
        refused += 1;
    }
    // An entry id nobody serves.
    let bogus = Entry::id_of("e1000d::faults::no_such_entry");
    if endpoint
        .call(
            bogus,
            "e1000d::faults::no_such_entry",
            &mut (),
            |_, enc| ().encode(enc),
            |_, dec| <()>::decode(dec),
        )
        .is_ok()
    {
        return Err("a call to an entry nobody serves succeeded".into());
    }
    Ok(refused + 1)
}
