//! The process boundary with hand-written entries (what the macros generate): a real
//! user-half process, upcalls with nested downcalls, a handshake, and SIGKILL of the user
//! half while an upcall is outstanding.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use microdriver_rt::__internal::slot;
use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::__private::{downcall, inventory, Entry, Served};
use microdriver_rt::lrpc::CallError;
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::tracker::ObjectTracker;

fn square_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let mut values = Vec::<u64>::decode(&mut dec)?;
    dec.finish()?;
    // Nested downcall: ask the kernel half for an offset.
    let offset: u64 = downcall(
        "smoke::offset",
        &mut (),
        |_, enc| 7u32.encode(enc),
        |_, dec| u64::decode(dec),
    )
    .map_err(|e| MarshalError::BadHeader {
        reason: e.to_string(),
    })?;
    for v in &mut values {
        *v = *v * *v + offset;
    }
    (values.len() as u32).encode(enc)?;
    values.encode(enc)
}

fn offset_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let x = u32::decode(&mut dec)?;
    dec.finish()?;
    (u64::from(x) * 1000).encode(enc)
}

inventory::submit! {
    Entry { name: "smoke::square", signature: "fn(&mut Vec<u64>) -> u32", served: Served::ByUser, handler: square_handler }
}
fn sleepy_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let millis = u64::decode(&mut dec)?;
    dec.finish()?;
    std::thread::sleep(std::time::Duration::from_millis(millis));
    ().encode(enc)
}

inventory::submit! {
    Entry { name: "smoke::sleepy", signature: "fn(u64)", served: Served::ByUser, handler: sleepy_handler }
}
inventory::submit! {
    Entry { name: "smoke::offset", signature: "fn(u32) -> u64", served: Served::ByKernel, handler: offset_handler }
}

mod support;

fn main() {
    run_user_half_if_requested();
    support::run_single("lrpc_process", &[], run_all);
}

fn run_all() {
    let tracker = Arc::new(ObjectTracker::new());
    let half = UserHalf::spawn(&ComponentConfig::default(), tracker).expect("spawn user half");
    let endpoint = half.endpoint().clone();
    let mut values = vec![1u64, 2, 3];
    let n: u32 = endpoint
        .call(
            Entry::id_of("smoke::square"),
            "smoke::square",
            &mut values,
            |values, enc| values.encode(enc),
            |values, dec| {
                let n = u32::decode(dec)?;
                values.decode_into(dec)?;
                Ok(n)
            },
        )
        .expect("upcall");
    assert_eq!(n, 3);
    assert_eq!(values, vec![7001, 7004, 7009]);
    let start = std::time::Instant::now();
    for _ in 0..1000 {
        endpoint
            .call(
                Entry::id_of("smoke::square"),
                "smoke::square",
                &mut (),
                |_, enc| vec![2u64].encode(enc),
                |_, dec| {
                    let _ = u32::decode(dec)?;
                    Vec::<u64>::decode(dec)
                },
            )
            .expect("repeat");
    }
    println!(
        "1000 upcalls with nested downcalls in {:?}",
        start.elapsed()
    );
    let unknown = endpoint.call(12345, "nothing", &mut (), |_, _| Ok(()), |_, _| Ok(()));
    assert!(
        matches!(unknown, Err(CallError::UnknownEntry { .. })),
        "{unknown:?}"
    );
    half.shutdown(std::time::Duration::from_secs(1));

    killed_user_half_fails_the_outstanding_upcall_promptly();
}

/// SIGKILL of the user half while an upcall is outstanding: the caller gets PeerDied
/// within 100 ms, and a new user half answers again.
fn killed_user_half_fails_the_outstanding_upcall_promptly() {
    use std::time::{Duration, Instant};
    let mut worst = Duration::ZERO;
    for round in 0..5 {
        let tracker = Arc::new(ObjectTracker::new());
        let half = UserHalf::spawn(&ComponentConfig::default(), tracker).expect("spawn user half");
        let endpoint = half.endpoint().clone();
        let caller = std::thread::spawn(move || {
            let result = endpoint.call(
                Entry::id_of("smoke::sleepy"),
                "smoke::sleepy",
                &mut (),
                |_, enc| 10_000u64.encode(enc),
                |_, dec| <()>::decode(dec),
            );
            (result, Instant::now())
        });
        // Kill once the user half is serving the call (its slot reads SERVING), not after
        // a pause that hopes it is.
        let area = half.endpoint().transport().clone();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(0..area.slot_count()).any(|i| {
            area.slot_word(i, slot::word::STATE)
                .is_some_and(|w| w.load(Ordering::SeqCst) == slot::state::SERVING)
        }) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the user half never took the call"
            );
            std::thread::yield_now();
        }
        let killed_at = Instant::now();
        // SAFETY: plain kill(2) on our own child's pid.
        let rc = unsafe { libc::kill(half.pid() as i32, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill");
        let (result, returned_at) = caller.join().expect("caller thread");
        let latency = returned_at.saturating_duration_since(killed_at);
        assert!(
            matches!(result, Err(CallError::PeerDied { .. })),
            "round {round}: {result:?}"
        );
        assert!(
            latency < Duration::from_millis(100),
            "round {round}: took {latency:?}"
        );
        worst = worst.max(latency);
        // Calls after death fail at once too.
        let after = half
            .endpoint()
            .call(12, "x", &mut (), |_, _| Ok(()), |_, _| Ok(()));
        assert!(matches!(after, Err(CallError::PeerDied { .. })));
        drop(half);
    }
    println!("SIGKILL to PeerDied: worst {worst:?} over 5 rounds");
}
