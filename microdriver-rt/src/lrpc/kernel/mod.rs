//! The kernel half's endpoint: makes upcalls, serves nested and free-standing downcalls.
//!
//! Everything it reads from the transport is treated as hostile: slot states it does not
//! expect, call ids that do not match, lengths beyond a slot, frames that do not parse,
//! entries it does not serve. Each is rejected, counted, and leaves the endpoint working.
//!
//! The endpoint's state and slot bookkeeping are here; the call path in `upcall`, the
//! restart gate in `gate`, the free-standing downcall server in `downcalls`.

use std::sync::atomic::{
    AtomicBool, AtomicU32 as StdAtomicU32, AtomicU64 as StdAtomicU64, Ordering,
};
use std::sync::Arc;
use std::time::Duration;

use super::slot::{state, Deadline, Geometry, Slot, WaitPolicy};
use super::stats::CallStats;
use super::{CallError, Half};
use crate::tracker::ObjectTracker;
use crate::transport::{wake_all, Transport, Word};

mod downcalls;
mod gate;
mod upcall;

use gate::GateShard;

const PEER: Half = Half::User;

/// What the kernel half knows of one of its upcall slots (never read from shared memory):
/// one word per slot, `epoch << 2 | use`, changed only by compare-and-swap, so callers on
/// different threads claim and hand back slots without a shared lock, and a call from
/// before a [`KernelEndpoint::reset`] can never hand back a slot the reset gave out again.
mod slot_use {
    /// Free to claim.
    pub const FREE: u64 = 0;
    /// Claimed by a call (or, with the new epoch, by a reset in progress).
    pub const BUSY: u64 = 1;
    /// A call on it was abandoned; the user half may still write to it.
    pub const QUARANTINED: u64 = 2;
    /// Its call is handing it back (publishing FREE in shared memory, or abandoning);
    /// a reset waits for that to finish before it takes the slot.
    pub const RELEASING: u64 = 3;

    pub const fn pack(epoch: u64, use_: u64) -> u64 {
        (epoch << 2) | use_
    }

    pub const fn use_of(word: u64) -> u64 {
        word & 3
    }
}

thread_local! {
    /// Where this thread starts looking for a free slot: where it found one last time, so
    /// threads calling at once settle on different slots instead of all contending for
    /// the first.
    static SLOT_HINT: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Options of an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct CallOptions {
    /// How callers wait for replies.
    pub wait: WaitPolicy,
    /// Default per-call timeout.
    pub timeout: Duration,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            wait: WaitPolicy::BLOCKING,
            timeout: Duration::from_secs(5),
        }
    }
}

/// The kernel half's end of a channel.
pub struct KernelEndpoint {
    transport: Arc<dyn Transport>,
    tracker: Arc<ObjectTracker>,
    options: CallOptions,
    /// Fixed at creation: never re-read from the shared header.
    geometry: Geometry,
    slots: Box<[StdAtomicU64]>,
    /// Serialises resets (never taken by calls).
    resetting: parking_lot::Mutex<()>,
    /// The last call id of each upcall slot (see [`KernelEndpoint::next_call_id`]).
    call_ids: Box<[StdAtomicU32]>,
    /// Bumped by every [`KernelEndpoint::reset`]: a call from an older epoch lost its
    /// slot to the reset and must neither read nor release it.
    epoch: StdAtomicU64,
    peer_dead: AtomicBool,
    degraded: AtomicBool,
    timed_out: AtomicBool,
    stop_servers: AtomicBool,
    stats: CallStats,
    /// The restart gate: true while a restarted user half is not re-attached yet (see
    /// [`KernelEndpoint::close_gate`]). Open, a call pays one load of it, plus an
    /// increment and a decrement of its thread's (uncontended) shard of `in_gate`.
    gate_closed: AtomicBool,
    /// Callers past the gate, by thread shard: [`KernelEndpoint::close_gate`] waits for
    /// them to leave, so none that passed before it closed reaches the next user half.
    in_gate: [GateShard; gate::SHARDS],
    gate_lock: std::sync::Mutex<()>,
    gate_opened: std::sync::Condvar,
}

impl KernelEndpoint {
    /// An endpoint over `transport` (whose header the kernel half initialised).
    pub fn new(
        transport: Arc<dyn Transport>,
        tracker: Arc<ObjectTracker>,
        options: CallOptions,
    ) -> Self {
        let geometry = Geometry::of(&*transport);
        KernelEndpoint {
            transport,
            tracker,
            options,
            geometry,
            slots: (0..geometry.upcall_slots)
                .map(|_| StdAtomicU64::new(slot_use::pack(0, slot_use::FREE)))
                .collect(),
            resetting: parking_lot::Mutex::new(()),
            call_ids: (0..geometry.upcall_slots)
                .map(|_| StdAtomicU32::new(0))
                .collect(),
            epoch: StdAtomicU64::new(0),
            peer_dead: AtomicBool::new(false),
            degraded: AtomicBool::new(false),
            timed_out: AtomicBool::new(false),
            stop_servers: AtomicBool::new(false),
            stats: CallStats::default(),
            gate_closed: AtomicBool::new(false),
            in_gate: Default::default(),
            gate_lock: std::sync::Mutex::new(()),
            gate_opened: std::sync::Condvar::new(),
        }
    }

    /// The tracker pointers from the user half are translated through.
    pub fn tracker(&self) -> &Arc<ObjectTracker> {
        &self.tracker
    }

    /// The transport (not API: the runtime's own tests reach the area through it).
    #[doc(hidden)]
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// Call counters and rejections.
    pub fn stats(&self) -> &CallStats {
        &self.stats
    }

    /// Marks the user half dead: every outstanding and future call fails at once with
    /// [`CallError::PeerDied`] until [`KernelEndpoint::reset`].
    pub fn mark_dead(&self) {
        self.peer_dead.store(true, Ordering::SeqCst);
        for index in 0..self.geometry.slot_count {
            if let Some(word) = self.transport.slot_word(index, super::slot::word::STATE) {
                wake_all(word);
            }
        }
    }

    /// Marks the driver degraded: no user half runs, and every call fails at once with
    /// [`CallError::Degraded`] (the critical path is unaffected) until
    /// [`KernelEndpoint::clear_degraded`].
    pub fn mark_degraded(&self) {
        self.degraded.store(true, Ordering::SeqCst);
        self.mark_dead();
    }

    /// Ends the degraded state (the supervisor is about to start a user half again); calls
    /// fail as `PeerDied` or wait at the restart gate until it is re-attached.
    pub fn clear_degraded(&self) {
        self.degraded.store(false, Ordering::SeqCst);
    }

    /// True once degraded.
    pub fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::SeqCst)
    }

    /// True if a call timed out since the last time this was asked (the supervisor's cue
    /// to check whether the user half hangs).
    pub fn take_timed_out(&self) -> bool {
        self.timed_out.swap(false, Ordering::SeqCst)
    }

    /// True after [`KernelEndpoint::mark_dead`].
    pub fn is_peer_dead(&self) -> bool {
        self.peer_dead.load(Ordering::SeqCst)
    }

    /// Prepares for a new user half: every slot free, nothing quarantined, the tracker's
    /// pairings with the old user half dropped.
    pub fn reset(&self) {
        let _resetting = self.resetting.lock();
        // Calls still waiting on the old user half see the new epoch and fail as
        // `PeerDied` without touching the slots handed out afresh below.
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        // Take every slot for the new epoch: a call of the old one then cannot hand its
        // slot back (its compare-and-swap expects the old epoch). One that is handing
        // back right now finishes first.
        for word in self.slots.iter() {
            loop {
                let seen = word.load(Ordering::SeqCst);
                if slot_use::use_of(seen) == slot_use::RELEASING {
                    std::hint::spin_loop();
                    continue;
                }
                let taken = slot_use::pack(epoch, slot_use::BUSY);
                if word
                    .compare_exchange(seen, taken, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    break;
                }
            }
        }
        for index in 0..self.geometry.slot_count {
            if let Some(slot) = Slot::new(&*self.transport, index) {
                slot.set_header(0, 0, 0);
                slot.publish(state::FREE);
            }
        }
        for word in self.slots.iter() {
            word.store(slot_use::pack(epoch, slot_use::FREE), Ordering::SeqCst);
        }
        self.tracker.clear_peer();
        for word in [
            Word::Hello,
            Word::Shutdown,
            Word::UserPid,
            Word::UserTableLo,
            Word::UserTableHi,
        ] {
            self.transport.header(word).store(0, Ordering::SeqCst);
        }
        self.peer_dead.store(false, Ordering::SeqCst);
    }

    /// Claims a free upcall slot; returns its index and the epoch it was claimed in.
    fn acquire_slot(&self, deadline: &Deadline) -> Result<(usize, u64), CallError> {
        let count = self.slots.len();
        loop {
            let epoch = self.epoch.load(Ordering::SeqCst);
            let hint = SLOT_HINT.with(std::cell::Cell::get);
            let free = slot_use::pack(epoch, slot_use::FREE);
            let quarantined = slot_use::pack(epoch, slot_use::QUARANTINED);
            let busy = slot_use::pack(epoch, slot_use::BUSY);
            for k in 0..count {
                let i = (hint + k) % count;
                let word = &self.slots[i];
                let seen = word.load(Ordering::Relaxed);
                // A quarantined slot the user half has since released can be reused.
                let claimable = seen == free
                    || (seen == quarantined
                        && Slot::new(&*self.transport, i)
                            .is_some_and(|s| s.state() == state::FREE));
                if claimable
                    && word
                        .compare_exchange(seen, busy, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
                {
                    SLOT_HINT.with(|h| h.set(i));
                    return Ok((i, epoch));
                }
            }
            if self.is_peer_dead() {
                return Err(CallError::PeerDied { peer: PEER });
            }
            if deadline.is_past() {
                return Err(CallError::NoSlot(self.geometry.upcall_slots));
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Hands slot `index`, claimed in `epoch`, back: `hand_back` settles the shared slot
    /// (publishes FREE, or abandons the call) and says whether the slot is clean (free
    /// again) or must be quarantined. False, with nothing done, if a reset took the slot
    /// meanwhile: it may already carry another call.
    fn release_slot(&self, index: usize, epoch: u64, hand_back: impl FnOnce() -> bool) -> bool {
        let Some(word) = self.slots.get(index) else {
            return false;
        };
        if word
            .compare_exchange(
                slot_use::pack(epoch, slot_use::BUSY),
                slot_use::pack(epoch, slot_use::RELEASING),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return false;
        }
        let use_ = if hand_back() {
            slot_use::FREE
        } else {
            slot_use::QUARANTINED
        };
        word.store(slot_use::pack(epoch, use_), Ordering::SeqCst);
        true
    }

    /// Makes [`KernelEndpoint::serve_downcalls`] return.
    pub fn stop_servers(&self) {
        self.stop_servers.store(true, Ordering::SeqCst);
        wake_all(self.transport.header(Word::KernelDoorbell));
    }

    /// Asks the user half to exit (it checks between calls).
    pub fn request_shutdown(&self) {
        self.transport
            .header(Word::Shutdown)
            .store(1, Ordering::SeqCst);
        wake_all(self.transport.header(Word::UserDoorbell));
    }
}

/// Gives up on the call in `slot`. Returns true when the slot is clean again (the call
/// was never claimed, or its reply already arrived and is dropped); false when the user
/// half may still write to it, which is then quarantined until the user half hands it
/// back (state FREE) or is restarted.
pub(crate) fn abandon(slot: &Slot<'_>) -> bool {
    if slot.transition(state::REQUEST, state::FREE) {
        return true;
    }
    if slot.transition(state::SERVING, state::ABANDONED) {
        return false;
    }
    if slot.transition(state::REPLY, state::FREE) {
        return true;
    }
    slot.publish(state::ABANDONED);
    false
}
