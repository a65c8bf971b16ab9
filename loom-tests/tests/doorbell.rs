//! loom model of the doorbell: a requester rings only for a server that announced it
//! sleeps, so the announcement and the request must never miss each other (a server that
//! goes to sleep while a request waits would leave it there until its next timeout).
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;
use microdriver_rt::__internal::slot::{state, Doorbell, Slot};
use microdriver_rt::__internal::transport::local::LocalTransport;
use microdriver_rt::__internal::transport::{Area, Word};

/// One request against one server about to sleep: whenever the server commits to
/// sleeping (it saw no request after announcing itself), the requester must have seen the
/// announcement and moved the sequence, which a futex wait on the old value never sleeps
/// through. Under loom a futex wait is a yield, so a server that commits to sleeping here
/// stays "asleep" (announced) until the requester is done, as a real sleeper would until
/// woken; otherwise its early return would stand for a timeout and hide a lost wake-up.
#[test]
fn a_request_never_misses_a_sleeping_server() {
    loom::model(|| {
        let area = Arc::new(LocalTransport::new(1, 1, 16));
        let slept = Arc::new(AtomicBool::new(false));
        let requester_done = Arc::new(AtomicBool::new(false));
        let server = {
            let area = area.clone();
            let slept = slept.clone();
            let requester_done = requester_done.clone();
            thread::spawn(move || {
                let doorbell = Doorbell::new(
                    area.header(Word::UserDoorbell),
                    area.header(Word::UserSleepers),
                );
                let seen = doorbell.seq();
                let slot = Slot::new(&*area, 0).expect("slot");
                let pending = || {
                    let found = slot.state() == state::REQUEST;
                    if !found {
                        slept.store(true, Ordering::SeqCst);
                        while !requester_done.load(Ordering::SeqCst) {
                            thread::yield_now();
                        }
                    }
                    found
                };
                doorbell.wait(seen, std::time::Duration::from_millis(20), &pending);
                seen
            })
        };
        let slot = Slot::new(&*area, 0).expect("slot");
        slot.publish(state::REQUEST);
        Doorbell::new(
            area.header(Word::UserDoorbell),
            area.header(Word::UserSleepers),
        )
        .ring();
        requester_done.store(true, Ordering::SeqCst);
        let seen = server.join().expect("server");
        if slept.load(Ordering::SeqCst) {
            assert_ne!(
                area.header(Word::UserDoorbell).load(Ordering::SeqCst),
                seen,
                "the server slept on a request the requester did not ring for"
            );
        }
    });
}
