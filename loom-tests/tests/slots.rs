//! loom models of the call-slot protocol over a heap area (the `local` transport, whose
//! words and data cells are loom's under `cfg(loom)`): request and reply, a caller that
//! times out while the callee answers, and a caller whose peer dies mid-call.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use microdriver_rt::__internal::slot::{state, Slot, WaitPolicy};
use microdriver_rt::__internal::transport::local::LocalTransport;
use microdriver_rt::__internal::transport::Area;

fn area() -> Arc<LocalTransport> {
    Arc::new(LocalTransport::new(1, 1, 16))
}

/// The callee's side: claim the request, answer with request+1, or hand the slot back if
/// the caller abandoned it meanwhile. Returns whether it claimed the call.
fn callee(area: &LocalTransport) -> bool {
    let slot = Slot::new(area, 0).expect("slot");
    if !slot.transition(state::REQUEST, state::SERVING) {
        return false;
    }
    let (call_id, entry, len) = slot.header();
    let mut data = Vec::new();
    assert!(area.read_data(0, len as usize, &mut data));
    let reply = [data[0] + 1];
    assert!(area.write_data(0, &reply));
    slot.set_header(call_id, entry, 1);
    if !slot.transition_and_wake(state::SERVING, state::REPLY) {
        // Abandoned meanwhile: hand the slot back.
        slot.publish(state::FREE);
    }
    true
}

fn request(area: &LocalTransport, value: u8) {
    let slot = Slot::new(area, 0).expect("slot");
    assert!(area.write_data(0, &[value]));
    slot.set_header(7, 1, 1);
    slot.publish(state::REQUEST);
}

/// A full round trip: the caller reads exactly the callee's reply, with no data race on
/// the slot's data (loom checks the cells' accesses).
#[test]
fn request_reply() {
    loom::model(|| {
        let area = area();
        request(&area, 41);
        let server = {
            let area = area.clone();
            thread::spawn(move || {
                while !callee(&area) {
                    thread::yield_now();
                }
            })
        };
        let slot = Slot::new(&*area, 0).expect("slot");
        let seen = slot.wait_while(
            &[state::REQUEST, state::SERVING],
            WaitPolicy::BLOCKING,
            None,
            &|| false,
        );
        assert_eq!(seen, state::REPLY);
        let (call_id, _, len) = slot.header();
        assert_eq!((call_id, len), (7, 1));
        let mut reply = Vec::new();
        assert!(area.read_data(0, 1, &mut reply));
        assert_eq!(reply, vec![42]);
        slot.publish(state::FREE);
        server.join().expect("server");
        assert_eq!(slot.state(), state::FREE);
    });
}

/// The caller gives up at an arbitrary point while the callee may be claiming or
/// answering: whatever the interleaving, the slot ends FREE (never stuck), and the
/// caller's view (clean or quarantined) matches what the callee did.
#[test]
fn timeout_races_the_answer() {
    loom::model(|| {
        let area = area();
        request(&area, 1);
        let server = {
            let area = area.clone();
            thread::spawn(move || callee(&area))
        };
        let slot = Slot::new(&*area, 0).expect("slot");
        // Give up without waiting: the earliest possible timeout.
        let clean = microdriver_rt::lrpc::__private::abandon_for_model(&slot);
        let claimed = server.join().expect("server");
        if !claimed {
            assert!(clean, "an unclaimed call is taken back cleanly");
        }
        assert_eq!(
            slot.state(),
            state::FREE,
            "the slot is handed back in every interleaving"
        );
    });
}

/// The peer dies while a call is outstanding: the caller's wait ends (no hang) once the
/// death is noticed, and the slot is quarantined rather than reused.
#[test]
fn peer_death_while_outstanding() {
    loom::model(|| {
        let area = area();
        let dead = Arc::new(AtomicBool::new(false));
        request(&area, 1);
        // The "user half" claims the call and dies without answering.
        let victim = {
            let area = area.clone();
            thread::spawn(move || {
                let slot = Slot::new(&*area, 0).expect("slot");
                let _ = slot.transition(state::REQUEST, state::SERVING);
            })
        };
        // The watcher notices the death.
        let watcher = {
            let dead = dead.clone();
            thread::spawn(move || dead.store(true, Ordering::SeqCst))
        };
        let slot = Slot::new(&*area, 0).expect("slot");
        let give_up = || dead.load(Ordering::SeqCst);
        let seen = slot.wait_while(
            &[state::REQUEST, state::SERVING],
            WaitPolicy::BLOCKING,
            None,
            &give_up,
        );
        assert!(dead.load(Ordering::SeqCst));
        assert!(seen == state::REQUEST || seen == state::SERVING);
        victim.join().expect("victim");
        watcher.join().expect("watcher");
        let clean = microdriver_rt::lrpc::__private::abandon_for_model(&slot);
        // Claimed-then-dead leaves the slot quarantined (ABANDONED); unclaimed is clean.
        assert_eq!(clean, slot.state() == state::FREE);
    });
}
