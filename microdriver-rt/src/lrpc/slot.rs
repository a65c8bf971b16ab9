//! The call-slot protocol: the states a slot goes through and how each side waits.
//!
//! A slot carries one call at a time. Its control words are `state` (the futex word),
//! `waiters` (threads sleeping on it), `call_id`, `entry`, `len` (bytes of data).
//!
//! ```text
//!  upcall slot (owned by the kernel half):
//!  FREE --k writes request--> REQUEST --u claims--> SERVING --u writes reply--> REPLY --k reads--> FREE
//!                                                   |   ^
//!                               u nested downcall   v   |  k serves it on the waiting thread
//!                                          DOWN_REQUEST --> DOWN_REPLY
//!  a caller that gives up: REQUEST -> FREE (never claimed) or anything -> ABANDONED
//!  (the slot is quarantined until the user half frees it or is restarted).
//!
//!  downcall slot (owned by the user half): FREE -> REQUEST -> SERVING -> REPLY -> FREE
//! ```
//!
//! Whatever one side reads from a slot, the other may have scribbled: readers check the
//! state, the call id and the length before using anything, and copy data out first.
//!
//! A call with nothing to carry travels without a frame: `len` is [`SMALL`] and the slot's
//! data is not touched. An upcall request that way is the entry (in `entry`) called with no
//! arguments and no piggybacked free notices; a reply that way says the handler returned
//! nothing, successfully, with no free notices. Everything else travels as a frame.

use std::time::{Duration, Instant};

use crate::sync::atomic::{
    AtomicU32,
    Ordering::{Relaxed, SeqCst},
};
use crate::transport::{wait_on, wake_all, Area};

/// Slot states.
pub mod state {
    /// Unused.
    pub const FREE: u32 = 0;
    /// A request is in the slot.
    pub const REQUEST: u32 = 1;
    /// The callee claimed the request.
    pub const SERVING: u32 = 2;
    /// The user half, serving an upcall, asks for a nested downcall.
    pub const DOWN_REQUEST: u32 = 3;
    /// The nested downcall's reply is in the slot.
    pub const DOWN_REPLY: u32 = 4;
    /// The reply is in the slot.
    pub const REPLY: u32 = 5;
    /// The caller gave up on the call.
    pub const ABANDONED: u32 = 6;
}

/// Control word indices within a slot.
pub mod word {
    /// The state (futex word).
    pub const STATE: usize = 0;
    /// Threads sleeping on the state.
    pub const WAITERS: usize = 1;
    /// The call's id (never 0).
    pub const CALL_ID: usize = 2;
    /// The entry id.
    pub const ENTRY: usize = 3;
    /// Bytes of data, or [`super::SMALL`].
    pub const LEN: usize = 4;
}

/// A `len` word saying the message carries no frame (see the module documentation). Any
/// other value above the slot's capacity is a bad length.
pub const SMALL: u32 = u32::MAX;

/// The slot geometry an endpoint fixes when it is created: never re-read from the shared
/// area afterwards, where the other half could change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Slots in all.
    pub slot_count: usize,
    /// Slots `0..upcall_slots` carry upcalls; the rest free-standing downcalls.
    pub upcall_slots: usize,
    /// Data bytes per slot.
    pub capacity: usize,
}

impl Geometry {
    /// Reads the geometry of `area`.
    pub fn of(area: &dyn Area) -> Geometry {
        let slot_count = area.slot_count();
        let upcall_slots = (area
            .header(crate::transport::Word::UpcallSlots)
            .load(SeqCst) as usize)
            .min(slot_count);
        Geometry {
            slot_count,
            upcall_slots,
            capacity: area.capacity(),
        }
    }
}

/// How a waiter waits: spin (checking) for up to `spin` before sleeping on the futex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPolicy {
    /// Time to spin before sleeping (zero: sleep at once).
    pub spin: Duration,
}

impl WaitPolicy {
    /// Sleep at once: no CPU burnt while waiting.
    pub const BLOCKING: WaitPolicy = WaitPolicy {
        spin: Duration::ZERO,
    };

    /// Spin up to `spin` first (lower latency when the other side answers quickly).
    pub const fn spinning(spin: Duration) -> WaitPolicy {
        WaitPolicy { spin }
    }
}

/// A spinning waiter reads the clock (for its spin bound and deadline) once per this many
/// checks of the word it waits on, the first time after that many.
pub const SPINS_PER_CLOCK_READ: u32 = 16;

/// The longest single sleep: sleepers wake at least this often to check for peer death
/// and deadlines even if a wake-up was lost to a misbehaving peer.
pub const MAX_SLEEP: Duration = Duration::from_millis(20);

/// One slot of an area (its index is in range: constructed only through [`Slot::new`]).
pub struct Slot<'a> {
    state: &'a AtomicU32,
    waiters: &'a AtomicU32,
    call_id: &'a AtomicU32,
    entry: &'a AtomicU32,
    len: &'a AtomicU32,
    index: usize,
}

impl<'a> Slot<'a> {
    /// Slot `index` of `area`, or `None` if out of range.
    pub fn new(area: &'a dyn Area, index: usize) -> Option<Slot<'a>> {
        let words = area.slot_words(index)?;
        Some(Slot {
            state: words.get(word::STATE)?,
            waiters: words.get(word::WAITERS)?,
            call_id: words.get(word::CALL_ID)?,
            entry: words.get(word::ENTRY)?,
            len: words.get(word::LEN)?,
            index,
        })
    }

    /// Slot `index` if it holds a request, claimed for serving (REQUEST → SERVING); `None`
    /// if it holds none or another server claimed it first. A plain load comes first: a
    /// compare-and-swap on every idle slot would pull each slot's line exclusive to the
    /// scanning core on every scan.
    /// Only the state word is looked up for an idle slot: servers scan every slot per
    /// request, and building a whole `Slot` for each would cost more than the scan.
    pub fn claim_request(area: &'a dyn Area, index: usize) -> Option<Slot<'a>> {
        if area.slot_word(index, word::STATE)?.load(SeqCst) != state::REQUEST {
            return None;
        }
        let slot = Slot::new(area, index)?;
        slot.transition(state::REQUEST, state::SERVING)
            .then_some(slot)
    }

    /// The slot's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The state as the other side left it (untrusted).
    pub fn state(&self) -> u32 {
        self.state.load(SeqCst)
    }

    /// Claims a slot in state `from` by moving it to `to`; false if it was not in `from`.
    pub fn transition(&self, from: u32, to: u32) -> bool {
        self.state
            .compare_exchange(from, to, SeqCst, SeqCst)
            .is_ok()
    }

    /// Moves a slot in state `from` to `to` and wakes any sleeper; false (and nothing
    /// changed) if it was not in `from`.
    pub fn transition_and_wake(&self, from: u32, to: u32) -> bool {
        if !self.transition(from, to) {
            return false;
        }
        if self.waiters.load(SeqCst) > 0 {
            wake_all(self.state);
        }
        true
    }

    /// Publishes `to` and wakes any sleeper.
    pub fn publish(&self, to: u32) {
        self.state.store(to, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            wake_all(self.state);
        }
    }

    /// The call id, entry and length words (untrusted when the other side wrote them).
    pub fn header(&self) -> (u32, u32, u32) {
        (
            self.call_id.load(SeqCst),
            self.entry.load(SeqCst),
            self.len.load(SeqCst),
        )
    }

    /// Sets the call id, entry and length words. They are published by the state
    /// transition that follows (a SeqCst store or compare-and-swap, so a release), and read
    /// after the state (a SeqCst load, so an acquire): plain stores suffice. SeqCst stores
    /// here would each wait for the cache line the other side keeps polling, three round
    /// trips between the cores per message instead of one.
    pub fn set_header(&self, call_id: u32, entry: u32, len: u32) {
        self.call_id.store(call_id, Relaxed);
        self.entry.store(entry, Relaxed);
        self.len.store(len, Relaxed);
    }

    /// Waits until the state is not one of `pending`, the deadline passes, or `give_up`
    /// says so; returns the state last seen.
    pub fn wait_while(
        &self,
        pending: &[u32],
        policy: WaitPolicy,
        deadline: Option<&Deadline>,
        give_up: &dyn Fn() -> bool,
    ) -> u32 {
        let mut spinning = !policy.spin.is_zero();
        let mut spin_until = None;
        let mut spins = 0u32;
        loop {
            let seen = self.state();
            if !pending.contains(&seen) {
                return seen;
            }
            if spinning {
                // Between clock reads, check the word a few times: reading the clock (and
                // asking `give_up`, which reads words other threads write) costs several
                // checks, and would delay noticing the change it waits for. The first read
                // comes after the first few checks, so an answer that is already on its
                // way is taken without reading the clock at all.
                spins = spins.wrapping_add(1);
                if !spins.is_multiple_of(SPINS_PER_CLOCK_READ) {
                    crate::sync::spin_hint();
                    continue;
                }
                if give_up() {
                    return seen;
                }
                let now = Instant::now();
                if deadline.is_some_and(|deadline| deadline.passed(now)) {
                    return seen;
                }
                if now < *spin_until.get_or_insert(now + policy.spin) {
                    crate::sync::spin_hint();
                    continue;
                }
                spinning = false;
            }
            if give_up() {
                return seen;
            }
            // The clock is read only when a deadline needs it (loom models run without
            // one, so their executions stay deterministic).
            let sleep = match deadline {
                Some(deadline) => {
                    let now = Instant::now();
                    if deadline.passed(now) {
                        return seen;
                    }
                    (deadline.at() - now).min(MAX_SLEEP)
                }
                None => MAX_SLEEP,
            };
            self.waiters.fetch_add(1, SeqCst);
            if self.state() == seen && !give_up() {
                wait_on(self.state, seen, sleep);
            }
            self.waiters.fetch_sub(1, SeqCst);
        }
    }
}

/// A call's deadline, fixed the first time something needs it: a call that is answered
/// before it ever has to wait (a spinning round trip) reads no clock for it. It runs from
/// that first moment, at most one spin interval after the call began.
pub struct Deadline {
    timeout: Duration,
    at: std::cell::Cell<Option<Instant>>,
}

impl Deadline {
    /// A deadline `timeout` from the first time it is looked at.
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            timeout,
            at: std::cell::Cell::new(None),
        }
    }

    /// The timeout it was made with.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The instant it passes (fixed on the first call).
    pub fn at(&self) -> Instant {
        match self.at.get() {
            Some(at) => at,
            None => {
                let at = Instant::now() + self.timeout;
                self.at.set(Some(at));
                at
            }
        }
    }

    /// True once `now` is at or past it.
    pub fn passed(&self, now: Instant) -> bool {
        now >= self.at()
    }

    /// True once it has passed (reads the clock).
    pub fn is_past(&self) -> bool {
        self.passed(Instant::now())
    }
}

/// The state words of a range of slots, looked up once: what an idle server watches for a
/// request (spinning, and once more after announcing a sleep on its [`Doorbell`]).
pub(crate) struct StateWords<'a>(Vec<&'a AtomicU32>);

impl<'a> StateWords<'a> {
    /// The state words of the slots `slots` of `area` (those it has).
    pub(crate) fn of(area: &'a dyn Area, slots: std::ops::Range<usize>) -> StateWords<'a> {
        StateWords(
            slots
                .filter_map(|index| area.slot_word(index, word::STATE))
                .collect(),
        )
    }

    /// The words, in slot order from the range's start.
    pub(crate) fn words(&self) -> &[&'a AtomicU32] {
        &self.0
    }

    /// Whether any of the slots holds a request.
    pub(crate) fn any_request(&self) -> bool {
        self.0.iter().any(|s| s.load(SeqCst) == state::REQUEST)
    }
}

/// A doorbell: a sequence word that requesters bump and servers sleep on. Only a sleeping
/// server needs it: a spinning one watches the slots themselves, so a requester rings (an
/// atomic add on a line the other side must then fetch, and a system call) only when a
/// server announced that it sleeps. A server announces itself, then looks for work once
/// more before it sleeps ([`Doorbell::wait`]): either it sees the request, or the
/// requester sees the announcement and rings.
pub struct Doorbell<'a> {
    pub(crate) seq: &'a AtomicU32,
    pub(crate) sleepers: &'a AtomicU32,
}

impl<'a> Doorbell<'a> {
    /// The doorbell made of the sequence word `seq` and the sleeper count `sleepers`.
    pub fn new(seq: &'a AtomicU32, sleepers: &'a AtomicU32) -> Doorbell<'a> {
        Doorbell { seq, sleepers }
    }

    /// Rings if a server sleeps or is about to: bumps the sequence and wakes one sleeper.
    /// Call it after publishing the request.
    pub fn ring(&self) {
        crate::sync::dekker_fence();
        if self.sleepers.load(SeqCst) > 0 {
            self.seq.fetch_add(1, SeqCst);
            crate::transport::wake_one(self.seq);
        }
    }

    /// The current sequence (read before scanning for work).
    pub fn seq(&self) -> u32 {
        self.seq.load(SeqCst)
    }

    /// Sleeps until the sequence moves past `seen` (or `timeout`), unless `work` (checked
    /// after announcing the sleep) finds something to do.
    pub fn wait(&self, seen: u32, timeout: Duration, work: &dyn Fn() -> bool) {
        self.sleepers.fetch_add(1, SeqCst);
        crate::sync::dekker_fence();
        if self.seq.load(SeqCst) == seen && !work() {
            wait_on(self.seq, seen, timeout);
        }
        self.sleepers.fetch_sub(1, SeqCst);
    }
}
