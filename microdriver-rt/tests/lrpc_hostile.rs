//! The kernel half against a hostile user half: every kind of bad frame is rejected,
//! counted, and leaves the kernel half working. The user half here is test code poking
//! the call slots of a `local` transport directly.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use microdriver_rt::__internal::lrpc_frame::{begin, end, status};
use microdriver_rt::__internal::slot::{state, Slot, SMALL};
use microdriver_rt::__internal::transport::local::LocalTransport;
use microdriver_rt::__internal::transport::{Area, Transport};
use microdriver_rt::lrpc::__private::{inventory, Entry, Served};
use microdriver_rt::lrpc::{CallError, CallOptions, KernelEndpoint, UserEndpoint, WaitPolicy};
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError, TrackedPtr};
use microdriver_rt::tracker::{ObjectTracker, TypeTag};

const ECHO: &str = "hostile::echo";
const NULL: &str = "hostile::null";

fn null_handler(dec: Decoder<'_>, _enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()
}

fn echo_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let x = u64::decode(&mut dec)?;
    dec.finish()?;
    (x + 1).encode(enc)
}

fn kernel_add(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let (a, b) = <(u32, u32)>::decode(&mut dec)?;
    dec.finish()?;
    (a.wrapping_add(b)).encode(enc)
}

inventory::submit! {
    Entry { name: ECHO, signature: "fn(u64) -> u64", served: Served::ByUser, handler: echo_handler }
}
inventory::submit! {
    Entry { name: NULL, signature: "fn()", served: Served::ByUser, handler: null_handler }
}
inventory::submit! {
    Entry { name: "hostile::kernel_add", signature: "fn((u32, u32)) -> u32", served: Served::ByKernel, handler: kernel_add }
}

struct Rig {
    transport: Arc<LocalTransport>,
    kernel: Arc<KernelEndpoint>,
}

fn rig(timeout: Duration) -> Rig {
    let transport = Arc::new(LocalTransport::new(6, 4, 4096));
    let kernel = Arc::new(KernelEndpoint::new(
        transport.clone() as Arc<dyn Transport>,
        Arc::new(ObjectTracker::new()),
        CallOptions {
            wait: WaitPolicy::BLOCKING,
            timeout,
        },
    ));
    Rig { transport, kernel }
}

fn echo(kernel: &KernelEndpoint, x: u64) -> Result<u64, CallError> {
    kernel.call(
        Entry::id_of(ECHO),
        ECHO,
        &mut (),
        |_, enc| x.encode(enc),
        |_, dec| u64::decode(dec),
    )
}

/// A scripted user half: claims the next upcall and lets `act` answer it however it likes.
fn script(
    transport: Arc<LocalTransport>,
    act: impl FnOnce(&LocalTransport, &Slot<'_>, u32, u32, Vec<u8>) + Send + 'static,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            for index in 0..4 {
                let slot = Slot::new(&*transport, index).expect("slot");
                if slot.transition(state::REQUEST, state::SERVING) {
                    let (call_id, entry, len) = slot.header();
                    let mut request = Vec::new();
                    // A call without a frame leaves `request` empty.
                    if len != SMALL {
                        assert!(transport.read_data(index, len as usize, &mut request));
                    }
                    act(&transport, &slot, call_id, entry, request);
                    return;
                }
            }
            assert!(Instant::now() < deadline, "no upcall arrived");
            std::thread::yield_now();
        }
    })
}

/// A reply frame with `status` and `value`.
fn reply_frame(entry: u32, value: impl Marshal) -> Vec<u8> {
    let mut buf = Vec::new();
    begin(&mut buf, entry, &[]);
    buf.push(status::OK);
    let mut enc = Encoder::new(&mut buf);
    value.encode(&mut enc).expect("encode");
    end(&mut buf).expect("end");
    buf
}

fn answer(transport: &LocalTransport, slot: &Slot<'_>, call_id: u32, entry: u32, frame: &[u8]) {
    assert!(transport.write_data(slot.index(), frame));
    slot.set_header(call_id, entry, frame.len() as u32);
    slot.publish(state::REPLY);
}

/// After each hostile exchange: the endpoint still serves a well-behaved user half.
fn still_works(rig: &Rig) {
    let user = Arc::new(UserEndpoint::new(
        rig.transport.clone() as Arc<dyn Transport>,
        Arc::new(ObjectTracker::new()),
        CallOptions::default(),
    ));
    let workers = user.spawn_workers(1);
    assert_eq!(
        echo(&rig.kernel, 41).expect("a good call after a bad one"),
        42
    );
    user.stop();
    for w in workers {
        w.join().expect("worker");
    }
}

fn null(kernel: &KernelEndpoint) -> Result<(), CallError> {
    kernel.call(
        Entry::id_of(NULL),
        NULL,
        &mut (),
        |_, _| Ok(()),
        |_, _| Ok(()),
    )
}

fn expect_rejected(
    rig: &Rig,
    act: impl FnOnce(&LocalTransport, &Slot<'_>, u32, u32, Vec<u8>) + Send + 'static,
) -> CallError {
    expect_rejected_call(rig, |kernel| echo(kernel, 1).map(drop), act)
}

/// A null upcall (it travels without a frame) answered by `act`: rejected and counted.
fn expect_null_rejected(
    rig: &Rig,
    act: impl FnOnce(&LocalTransport, &Slot<'_>, u32, u32, Vec<u8>) + Send + 'static,
) -> CallError {
    expect_rejected_call(rig, null, act)
}

fn expect_rejected_call(
    rig: &Rig,
    call: impl FnOnce(&KernelEndpoint) -> Result<(), CallError>,
    act: impl FnOnce(&LocalTransport, &Slot<'_>, u32, u32, Vec<u8>) + Send + 'static,
) -> CallError {
    let before = rig.kernel.stats().rejected();
    let peer = script(rig.transport.clone(), act);
    let err = call(&rig.kernel).expect_err("hostile reply accepted");
    peer.join().expect("script");
    assert!(
        rig.kernel.stats().rejected() > before,
        "{err} was not counted"
    );
    still_works(rig);
    err
}

#[test]
fn reply_with_another_call_id() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_rejected(&rig, |t, slot, call_id, entry, _| {
        answer(
            t,
            slot,
            call_id.wrapping_add(7),
            entry,
            &reply_frame(entry, 2u64),
        );
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn reply_length_past_the_slot() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_rejected(&rig, |t, slot, call_id, entry, _| {
        let frame = reply_frame(entry, 2u64);
        assert!(t.write_data(slot.index(), &frame));
        slot.set_header(call_id, entry, 1 << 30);
        slot.publish(state::REPLY);
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn reply_for_another_entry() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_rejected(&rig, |t, slot, call_id, _entry, _| {
        answer(
            t,
            slot,
            call_id,
            0xdead_beef,
            &reply_frame(0xdead_beef, 2u64),
        );
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn truncated_frame() {
    let rig = rig(Duration::from_secs(2));
    expect_rejected(&rig, |t, slot, call_id, entry, _| {
        let frame = reply_frame(entry, 2u64);
        answer(t, slot, call_id, entry, &frame[..5]);
    });
}

#[test]
fn header_claims_more_payload_than_sent() {
    let rig = rig(Duration::from_secs(2));
    expect_rejected(&rig, |t, slot, call_id, entry, _| {
        let mut frame = reply_frame(entry, 2u64);
        frame[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        answer(t, slot, call_id, entry, &frame);
    });
}

#[test]
fn value_that_does_not_decode() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_rejected(&rig, |t, slot, call_id, entry, _| {
        // A u8 where a u64 belongs.
        answer(t, slot, call_id, entry, &reply_frame(entry, 2u8));
    });
    assert!(matches!(err, CallError::Marshal(_)), "{err}");
}

#[test]
fn state_the_user_half_may_not_set() {
    let rig = rig(Duration::from_secs(2));
    expect_rejected(&rig, |_, slot, _, _, _| {
        slot.publish(99);
    });
}

#[test]
fn duplicate_reply_is_not_taken_for_the_next_call() {
    let rig = rig(Duration::from_secs(2));
    // First call answered properly; the script then replays that reply on the next call.
    let first = script(rig.transport.clone(), |t, slot, call_id, entry, _| {
        answer(t, slot, call_id, entry, &reply_frame(entry, 10u64));
    });
    assert_eq!(echo(&rig.kernel, 9).expect("first call"), 10);
    first.join().expect("script");
    expect_rejected(&rig, |t, slot, call_id, entry, _| {
        answer(
            t,
            slot,
            call_id.wrapping_sub(1),
            entry,
            &reply_frame(entry, 10u64),
        );
    });
}

#[test]
fn replies_to_calls_never_made_are_ignored() {
    let rig = rig(Duration::from_secs(2));
    // Scribble replies into every slot before any call exists.
    for index in 0..6 {
        let slot = Slot::new(&*rig.transport, index).expect("slot");
        answer(&rig.transport, &slot, 12345, 1, &reply_frame(1, 7u64));
    }
    still_works(&rig);
}

#[test]
fn forged_pointer_in_a_reply() {
    #[derive(Debug)]
    struct Obj(u64);
    impl Marshal for Obj {
        const MIN_WIRE_SIZE: usize = 8;
        fn encode(&self, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
            self.0.encode(enc)
        }
        fn decode(dec: &mut Decoder<'_>) -> Result<Self, MarshalError> {
            Ok(Obj(u64::decode(dec)?))
        }
    }
    let rig = rig(Duration::from_secs(2));
    let before = rig.kernel.stats().rejected();
    let peer = script(rig.transport.clone(), |t, slot, call_id, entry, _| {
        // A tracked object that claims to be the kernel's object at an address the kernel
        // never handed out.
        let mut buf = Vec::new();
        begin(&mut buf, entry, &[]);
        buf.push(status::OK);
        let mut enc = Encoder::new(&mut buf);
        enc.put_u8(2);
        enc.put_u64(0x5555_0000);
        enc.put_u64(TypeTag::of::<Obj>().id());
        enc.put_u64(0x7fff_1234_0000);
        enc.put_u64(77);
        end(&mut buf).expect("end");
        answer(t, slot, call_id, entry, &buf);
    });
    let result = rig.kernel.call(
        Entry::id_of(ECHO),
        ECHO,
        &mut (),
        |_, enc| 1u64.encode(enc),
        |_, dec| TrackedPtr::<Obj>::decode(dec),
    );
    peer.join().expect("script");
    assert!(
        matches!(result, Err(CallError::Marshal(MarshalError::Tracker(_)))),
        "{result:?}"
    );
    assert!(rig.kernel.stats().rejected() > before);
    assert_eq!(
        rig.kernel.tracker().stats().objects,
        0,
        "nothing was paired"
    );
    still_works(&rig);
}

#[test]
fn silent_user_half_times_out_and_the_slot_is_quarantined() {
    let rig = rig(Duration::from_millis(100));
    let peer = script(rig.transport.clone(), |_, _, _, _, _| {
        // Claims the call and never answers.
    });
    let started = Instant::now();
    let err = echo(&rig.kernel, 1).expect_err("silence");
    assert!(matches!(err, CallError::TimedOut(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(1));
    peer.join().expect("script");
    // The abandoned slot is not reused; the other slots carry calls.
    still_works(&rig);
    let abandoned = (0..4)
        .filter(|&i| Slot::new(&*rig.transport, i).expect("slot").state() == state::ABANDONED)
        .count();
    assert_eq!(abandoned, 1);
}

#[test]
fn hostile_downcalls_get_error_replies() {
    let rig = rig(Duration::from_secs(2));
    let server = {
        let kernel = rig.kernel.clone();
        std::thread::spawn(move || kernel.serve_downcalls())
    };
    let ring = |frame: &[u8], entry: u32| {
        let slot = Slot::new(&*rig.transport, 4).expect("downcall slot");
        assert!(rig.transport.write_data(4, frame));
        slot.set_header(1, entry, frame.len() as u32);
        slot.publish(state::REQUEST);
        rig.transport
            .header(microdriver_rt::__internal::transport::Word::KernelDoorbell)
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        microdriver_rt::__internal::transport::wake_all(
            rig.transport
                .header(microdriver_rt::__internal::transport::Word::KernelDoorbell),
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while slot.state() != state::REPLY {
            assert!(Instant::now() < deadline, "no reply to a downcall");
            std::thread::yield_now();
        }
        let (_, _, len) = slot.header();
        let mut reply = Vec::new();
        assert!(rig.transport.read_data(4, len as usize, &mut reply));
        slot.publish(state::FREE);
        reply
    };
    let before = rig.kernel.stats().rejected();
    // Unknown entry.
    let mut frame = Vec::new();
    begin(&mut frame, 0x0bad_0bad, &[]);
    end(&mut frame).expect("end");
    let reply = ring(&frame, 0x0bad_0bad);
    assert_eq!(reply[12 + 1], status::UNKNOWN_ENTRY);
    // Garbage bytes.
    let reply = ring(&[0xff; 40], 0);
    assert_eq!(reply[12 + 1], status::FAILED);
    // Arguments that do not decode for a known entry.
    let add = Entry::id_of("hostile::kernel_add");
    let mut frame = Vec::new();
    begin(&mut frame, add, &[]);
    frame.push(1);
    end(&mut frame).expect("end");
    let reply = ring(&frame, add);
    assert_eq!(reply[12 + 1], status::FAILED);
    assert_eq!(rig.kernel.stats().rejected(), before + 3);
    // A good one still works.
    let mut frame = Vec::new();
    begin(&mut frame, add, &[]);
    let mut enc = Encoder::new(&mut frame);
    (2u32, 3u32).encode(&mut enc).expect("encode");
    end(&mut frame).expect("end");
    let reply = ring(&frame, add);
    assert_eq!(reply[12 + 1], status::OK);
    assert_eq!(
        u32::from_le_bytes(reply[14..18].try_into().expect("4 bytes")),
        5
    );
    rig.kernel.stop_servers();
    server.join().expect("server");
}

#[test]
fn too_large_claim_for_a_reply_that_would_fit() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_rejected(&rig, |t, slot, call_id, entry, _| {
        let mut buf = Vec::new();
        begin(&mut buf, entry, &[]);
        buf.push(status::TOO_LARGE);
        Encoder::new(&mut buf).put_u64(100);
        end(&mut buf).expect("end");
        answer(t, slot, call_id, entry, &buf);
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn too_large_reply_is_a_callers_error_not_a_hostile_frame() {
    let rig = rig(Duration::from_secs(2));
    let before = rig.kernel.stats().rejected();
    let peer = script(rig.transport.clone(), |t, slot, call_id, entry, _| {
        let mut buf = Vec::new();
        begin(&mut buf, entry, &[]);
        buf.push(status::TOO_LARGE);
        Encoder::new(&mut buf).put_u64(1 << 20);
        end(&mut buf).expect("end");
        answer(t, slot, call_id, entry, &buf);
    });
    let err = echo(&rig.kernel, 1).expect_err("a reply that did not fit");
    peer.join().expect("script");
    assert_eq!(
        err,
        CallError::TooLarge {
            len: 1 << 20,
            capacity: 4096
        }
    );
    assert_eq!(rig.kernel.stats().rejected(), before);
    still_works(&rig);
}

/// A reply without a frame: the header words say it all.
fn answer_small(slot: &Slot<'_>, call_id: u32, entry: u32) {
    slot.set_header(call_id, entry, SMALL);
    slot.publish(state::REPLY);
}

#[test]
fn a_null_upcall_and_its_reply_travel_without_a_frame() {
    let rig = rig(Duration::from_secs(2));
    let peer = script(rig.transport.clone(), |_, slot, call_id, entry, request| {
        let (_, _, len) = slot.header();
        assert_eq!(len, SMALL, "the request came as a frame of {len} bytes");
        assert_eq!(entry, Entry::id_of(NULL));
        assert!(request.is_empty());
        answer_small(slot, call_id, entry);
    });
    null(&rig.kernel).expect("a small reply to a small call");
    peer.join().expect("script");
    assert_eq!(rig.kernel.stats().rejected(), 0);
    // A call with arguments still carries a frame.
    let peer = script(rig.transport.clone(), |t, slot, call_id, entry, request| {
        let (_, _, len) = slot.header();
        assert_eq!(len as usize, request.len());
        assert!(!request.is_empty());
        answer(t, slot, call_id, entry, &reply_frame(entry, 8u64));
    });
    assert_eq!(echo(&rig.kernel, 7).expect("echo"), 8);
    peer.join().expect("script");
}

#[test]
fn the_user_endpoint_answers_small_calls() {
    let rig = rig(Duration::from_secs(2));
    let user = Arc::new(UserEndpoint::new(
        rig.transport.clone() as Arc<dyn Transport>,
        Arc::new(ObjectTracker::new()),
        CallOptions::default(),
    ));
    let workers = user.spawn_workers(1);
    null(&rig.kernel).expect("null upcall");
    // The slot keeps its reply after the call: it came without a frame.
    let small_replies = (0..4)
        .map(|i| Slot::new(&*rig.transport, i).expect("slot"))
        .filter(|slot| slot.state() == state::REPLY && slot.header().2 == SMALL)
        .count();
    assert_eq!(small_replies, 1);
    assert_eq!(echo(&rig.kernel, 1).expect("echo"), 2);
    // No arguments to an entry the user half does not serve: still `UnknownEntry`.
    let err = rig
        .kernel
        .call(
            0x0bad_0bad,
            "nowhere",
            &mut (),
            |_, _| Ok(()),
            |_, _| Ok(()),
        )
        .expect_err("unknown entry");
    assert_eq!(err, CallError::UnknownEntry { id: 0x0bad_0bad });
    // No arguments to an entry that wants some: the handler's decoding error.
    let err = rig
        .kernel
        .call(
            Entry::id_of(ECHO),
            ECHO,
            &mut (),
            |_, _| Ok(()),
            |_, dec| u64::decode(dec),
        )
        .expect_err("echo without its argument");
    assert!(matches!(err, CallError::Handler { .. }), "{err}");
    user.stop();
    for w in workers {
        w.join().expect("worker");
    }
}

#[test]
fn small_reply_with_another_call_id() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_null_rejected(&rig, |_, slot, call_id, entry, _| {
        answer_small(slot, call_id.wrapping_add(7), entry);
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn small_reply_for_another_entry() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_null_rejected(&rig, |_, slot, call_id, _, _| {
        answer_small(slot, call_id, 0xdead_beef);
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn stale_small_reply_is_not_taken_for_the_next_call() {
    let rig = rig(Duration::from_secs(2));
    let first = script(rig.transport.clone(), |_, slot, call_id, entry, _| {
        answer_small(slot, call_id, entry);
    });
    null(&rig.kernel).expect("first call");
    first.join().expect("script");
    let err = expect_null_rejected(&rig, |_, slot, call_id, entry, _| {
        answer_small(slot, call_id.wrapping_sub(1), entry);
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn garbage_lengths_near_small_are_rejected() {
    for len in [SMALL - 1, 4097, 1 << 31] {
        let rig = rig(Duration::from_secs(2));
        let err = expect_null_rejected(&rig, move |_, slot, call_id, entry, _| {
            slot.set_header(call_id, entry, len);
            slot.publish(state::REPLY);
        });
        assert!(matches!(err, CallError::Rejected { .. }), "{len}: {err}");
    }
}

#[test]
fn small_reply_in_a_state_the_user_half_may_not_set() {
    for bad in [state::FREE, state::ABANDONED, state::REQUEST + 40] {
        let rig = rig(Duration::from_secs(2));
        let err = expect_null_rejected(&rig, move |_, slot, call_id, entry, _| {
            slot.set_header(call_id, entry, SMALL);
            slot.publish(bad);
        });
        assert!(matches!(err, CallError::Rejected { .. }), "{bad}: {err}");
    }
}

#[test]
fn nested_downcall_without_a_frame_is_rejected() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_null_rejected(&rig, |_, slot, call_id, _, _| {
        slot.set_header(call_id, Entry::id_of("hostile::kernel_add"), SMALL);
        slot.publish(state::DOWN_REQUEST);
    });
    assert!(matches!(err, CallError::Rejected { .. }), "{err}");
}

#[test]
fn small_reply_to_a_call_that_expects_values() {
    let rig = rig(Duration::from_secs(2));
    let err = expect_rejected(&rig, |_, slot, call_id, entry, _| {
        answer_small(slot, call_id, entry);
    });
    assert!(matches!(err, CallError::Marshal(_)), "{err}");
}
