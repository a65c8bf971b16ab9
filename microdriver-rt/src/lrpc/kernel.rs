//! The kernel half's endpoint: makes upcalls, serves nested and free-standing downcalls.
//!
//! Everything it reads from the transport is treated as hostile: slot states it does not
//! expect, call ids that do not match, lengths beyond a slot, frames that do not parse,
//! entries it does not serve. Each is rejected, counted, and leaves the endpoint working.

use std::cell::Cell;
use std::sync::atomic::{
    AtomicBool, AtomicU32 as StdAtomicU32, AtomicU64 as StdAtomicU64, Ordering,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::buffers::Buffer;
use super::entry::{EntryTable, Served};
use super::slot::{
    state, word as slot_word, Deadline, Doorbell, Geometry, Slot, WaitPolicy, MAX_SLEEP, SMALL,
};
use super::stats::CallStats;
use super::{call, serve, CallError, Half};
use crate::marshal::{Decoder, Encoder, MarshalError};
use crate::tracker::ObjectTracker;
use crate::transport::{wake_all, Transport, Word};

const PEER: Half = Half::User;

thread_local! {
    /// Set while this thread runs re-attach hooks ([`KernelEndpoint::pass_gate`]): its
    /// upcalls go through a closed restart gate.
    static GATE_PASS: Cell<u32> = const { Cell::new(0) };
    /// This thread's shard of [`KernelEndpoint`]'s in-gate counters.
    static GATE_SHARD: usize = NEXT_GATE_SHARD.fetch_add(1, Ordering::Relaxed) % GATE_SHARDS;
}

/// Shards of the count of callers past the restart gate (a thread uses one, so callers on
/// different threads do not contend for one cache line).
const GATE_SHARDS: usize = 16;
static NEXT_GATE_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One shard of the in-gate count, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
struct GateShard(std::sync::atomic::AtomicUsize);

/// A caller past the restart gate; leaving (the call's end) uncounts it.
struct InGate<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InGate<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

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
    in_gate: [GateShard; GATE_SHARDS],
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

    /// Closes the restart gate: from now on an upcall waits (at most until its deadline,
    /// then fails with [`CallError::Restarting`]) until [`KernelEndpoint::open_gate`],
    /// except on a thread inside [`KernelEndpoint::pass_gate`]. The supervisor closes it
    /// when the user half dies and opens it once every re-attach hook of the new one has
    /// returned, so no caller reaches a half-initialised user half. Open by default.
    ///
    /// Returns once every call that passed the gate before it closed has ended, or after
    /// `drain` (false then): call it after the old user half was marked dead, so those
    /// calls fail at once; a call still running then could reach the next user half.
    pub fn close_gate(&self, drain: Duration) -> bool {
        {
            let _guard = self
                .gate_lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.gate_closed.store(true, Ordering::SeqCst);
        }
        let deadline = Instant::now() + drain;
        while self
            .in_gate
            .iter()
            .any(|shard| shard.0.load(Ordering::SeqCst) != 0)
        {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        true
    }

    /// Counts the caller in past the gate, or makes it wait while the gate is closed.
    #[inline]
    fn enter_gate(&self, deadline: &Deadline) -> Result<InGate<'_>, CallError> {
        let shard = &self.in_gate[GATE_SHARD.with(|s| *s)].0;
        loop {
            // Counted first, then the gate read (both SeqCst): either `close_gate` sees
            // this caller, or this caller sees the gate closed.
            shard.fetch_add(1, Ordering::SeqCst);
            let pass = InGate(shard);
            if !self.gate_closed.load(Ordering::SeqCst) || GATE_PASS.with(Cell::get) > 0 {
                return Ok(pass);
            }
            drop(pass);
            self.wait_gate(deadline)?;
        }
    }

    /// Opens the restart gate and wakes every caller waiting at it.
    pub fn open_gate(&self) {
        let _guard = self
            .gate_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.gate_closed.store(false, Ordering::SeqCst);
        self.gate_opened.notify_all();
    }

    /// True unless the restart gate is closed.
    pub fn is_gate_open(&self) -> bool {
        !self.gate_closed.load(Ordering::SeqCst)
    }

    /// Runs `f` with this thread's upcalls let through a closed restart gate (the
    /// re-attach hooks run this way).
    pub fn pass_gate<R>(f: impl FnOnce() -> R) -> R {
        struct Pass;
        impl Drop for Pass {
            fn drop(&mut self) {
                GATE_PASS.with(|p| p.set(p.get().saturating_sub(1)));
            }
        }
        GATE_PASS.with(|p| p.set(p.get().saturating_add(1)));
        let _pass = Pass;
        f()
    }

    /// The closed-gate path of a call: pass, wait for the gate to open, or give up at
    /// `deadline`.
    #[cold]
    fn wait_gate(&self, deadline: &Deadline) -> Result<(), CallError> {
        let mut guard = self
            .gate_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while self.gate_closed.load(Ordering::SeqCst) {
            if self.is_degraded() {
                return Err(CallError::Degraded);
            }
            let now = Instant::now();
            if deadline.passed(now) {
                return Err(CallError::Restarting(deadline.timeout()));
            }
            guard = self
                .gate_opened
                .wait_timeout(guard, deadline.at() - now)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        Ok(())
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

    /// Hands slot `index`, claimed in `epoch`, back after a call that ended cleanly (its
    /// reply read; the shared slot needs nothing more): one compare-and-swap. False if a
    /// reset took the slot meanwhile.
    fn hand_back_clean(&self, index: usize, epoch: u64) -> bool {
        self.slots.get(index).is_some_and(|word| {
            word.compare_exchange(
                slot_use::pack(epoch, slot_use::BUSY),
                slot_use::pack(epoch, slot_use::FREE),
                Ordering::SeqCst,
                Ordering::Relaxed,
            )
            .is_ok()
        })
    }

    /// Makes a synchronous upcall to entry `entry` (named `name` for messages): `args`
    /// encodes the arguments, `values` decodes the reply's values. Nested downcalls the
    /// user half makes while serving it run on this thread.
    pub fn call<S, R>(
        &self,
        entry: u32,
        name: &str,
        state: &mut S,
        args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
        values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
    ) -> Result<R, CallError> {
        self.call_with_timeout(entry, name, self.options.timeout, state, args, values)
    }

    /// [`KernelEndpoint::call`] with an explicit timeout.
    pub fn call_with_timeout<S, R>(
        &self,
        entry: u32,
        name: &str,
        timeout: Duration,
        state: &mut S,
        args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
        values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
    ) -> Result<R, CallError> {
        // The latency is measured with the cheap clock; the deadline reads the system
        // clock only if the call has to wait (a read costs tens of nanoseconds on some
        // VMs: a fair share of a spinning round trip).
        let started = super::clock::now();
        let result = self.call_inner(entry, name, &Deadline::after(timeout), state, args, values);
        self.stats
            .record(entry, super::clock::since(started), result.is_ok());
        result
    }

    #[allow(clippy::too_many_arguments)]
    fn call_inner<S, R>(
        &self,
        entry: u32,
        name: &str,
        deadline: &Deadline,
        state: &mut S,
        args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
        values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
    ) -> Result<R, CallError> {
        let timeout = deadline.timeout();
        let _in_gate = self.enter_gate(deadline)?;
        if self.is_degraded() {
            return Err(CallError::Degraded);
        }
        if self.is_peer_dead() {
            return Err(CallError::PeerDied { peer: PEER });
        }
        let mut buf = Buffer::take();
        let small = call::request(&mut buf, entry, &self.tracker, |enc| args(state, enc))?;
        if buf.len() > self.geometry.capacity {
            return Err(CallError::TooLarge {
                len: buf.len(),
                capacity: self.geometry.capacity,
            });
        }
        let (index, epoch) = self.acquire_slot(deadline)?;
        let Some(slot) = Slot::new(&*self.transport, index) else {
            self.release_slot(index, epoch, || true);
            return Err(CallError::NoSlot(self.geometry.upcall_slots));
        };
        let call_id = self.next_call_id(index);
        // A slot we own is FREE, or was left in a state by a misbehaving user half that we
        // now overwrite; either way we own it (our bookkeeping is authoritative).
        if small {
            slot.set_header(call_id, entry, SMALL);
        } else {
            self.transport.write_data(index, &buf);
            slot.set_header(call_id, entry, buf.len() as u32);
        }
        self.transport.before_crossing();
        slot.publish(state::REQUEST);
        self.doorbell().ring();

        let outcome = self.await_reply(&slot, call_id, entry, epoch, deadline, &mut buf);
        // Hand the slot back, unless a reset (a new user half) took every slot meanwhile:
        // then it may already carry someone else's call.
        match outcome {
            Ok(reply) => {
                // The slot stays in REPLY: no server acts on that state, the next call
                // through it overwrites it, and publishing FREE would take the line back
                // from the server (which is scanning it) once more per call.
                if !self.hand_back_clean(index, epoch) || self.epoch.load(Ordering::SeqCst) != epoch
                {
                    return Err(CallError::PeerDied { peer: PEER });
                }
                let result = match reply {
                    Reply::Small => call::unit_reply(&self.tracker, |dec| values(state, dec)),
                    Reply::Frame => call::reply(
                        &buf,
                        entry,
                        name,
                        &self.tracker,
                        PEER,
                        self.geometry.capacity,
                        |dec| values(state, dec),
                    ),
                };
                if let Err(e @ (CallError::Rejected { .. } | CallError::Marshal(_))) = &result {
                    self.stats.reject(e.to_string());
                }
                result
            }
            Err(e) => {
                if !self.release_slot(index, epoch, || abandon(&slot)) {
                    return Err(CallError::PeerDied { peer: PEER });
                }
                Err(match e {
                    AwaitError::Dead => CallError::PeerDied { peer: PEER },
                    AwaitError::TimedOut => {
                        self.timed_out.store(true, Ordering::SeqCst);
                        CallError::TimedOut(timeout)
                    }
                    AwaitError::Rejected(reason) => {
                        self.stats.reject(reason.clone());
                        CallError::Rejected { peer: PEER, reason }
                    }
                })
            }
        }
    }

    /// The next call id of slot `index`, which the caller holds: ids only tell one call
    /// through a slot from the one before, so each slot counts its own (a load and a store
    /// by the slot's holder, where one counter for the endpoint would be a read-modify-write
    /// on a line every calling thread shares).
    fn next_call_id(&self, index: usize) -> u32 {
        let Some(counter) = self.call_ids.get(index) else {
            return 1;
        };
        let id = counter.load(Ordering::Relaxed).wrapping_add(1).max(1);
        counter.store(id, Ordering::Relaxed);
        id
    }

    fn doorbell(&self) -> Doorbell<'_> {
        Doorbell {
            seq: self.transport.header(Word::UserDoorbell),
            sleepers: self.transport.header(Word::UserSleepers),
        }
    }

    /// Waits for the reply to `call_id` on `slot`, serving nested downcalls; on success the
    /// reply frame is in `buf`, unless the reply came without one.
    fn await_reply(
        &self,
        slot: &Slot<'_>,
        call_id: u32,
        entry: u32,
        epoch: u64,
        deadline: &Deadline,
        buf: &mut Vec<u8>,
    ) -> Result<Reply, AwaitError> {
        let dead = || self.is_peer_dead() || self.epoch.load(Ordering::SeqCst) != epoch;
        loop {
            let seen = slot.wait_while(
                &[state::REQUEST, state::SERVING, state::DOWN_REPLY],
                self.options.wait,
                Some(deadline),
                &dead,
            );
            if dead() {
                return Err(AwaitError::Dead);
            }
            match seen {
                state::REPLY => return self.read_checked(slot, call_id, entry, buf),
                state::DOWN_REQUEST => {
                    // The request this call sent is in the slot already: `buf` can carry
                    // the nested one.
                    let request = &mut *buf;
                    if self.read_checked(slot, call_id, entry, request)? == Reply::Small {
                        return Err(AwaitError::Rejected(format!(
                            "nested downcall in slot {} carries no frame",
                            slot.index()
                        )));
                    }
                    let mut reply = Buffer::take();
                    let started = Instant::now();
                    let result = serve::serve(
                        Served::ByKernel,
                        &self.tracker,
                        request,
                        &mut reply,
                        self.geometry.capacity,
                    );
                    if let Err(reason) = &result {
                        self.stats.reject(reason.clone());
                    }
                    // Counted under the downcall's own entry (the slot header names the
                    // upcall it is nested in); a frame too broken to name one we serve is
                    // only a rejection.
                    if let Ok((header, _)) = crate::marshal::frame::FrameHeader::parse(request) {
                        self.record_downcall(header.entry, started, result.is_ok());
                    }
                    if !self.transport.write_data(slot.index(), &reply) {
                        return Err(AwaitError::Rejected(format!(
                            "nested downcall reply of {} bytes exceeds the slot",
                            reply.len()
                        )));
                    }
                    slot.set_header(call_id, entry, reply.len() as u32);
                    self.transport.before_crossing();
                    if !slot.transition_and_wake(state::DOWN_REQUEST, state::DOWN_REPLY) {
                        return Err(AwaitError::Rejected(format!(
                            "slot {} changed state while its nested downcall was served",
                            slot.index()
                        )));
                    }
                }
                state::REQUEST | state::SERVING | state::DOWN_REPLY => {
                    return Err(AwaitError::TimedOut);
                }
                other => {
                    return Err(AwaitError::Rejected(format!(
                        "slot {} moved to state {other}, which the user half may not set",
                        slot.index()
                    )));
                }
            }
        }
    }

    /// Counts a downcall the user half asked for under its entry, if it names one this half
    /// serves: made-up ids are rejections, not rows in the statistics.
    fn record_downcall(&self, entry: u32, started: Instant, ok: bool) {
        if EntryTable::get().lookup(Served::ByKernel, entry).is_some() {
            self.stats.record(entry, started.elapsed(), ok);
        }
    }

    /// Copies the slot's data out after checking its call id and length; a message without
    /// a frame ([`SMALL`]) must also name the call's entry, and leaves `out` alone.
    fn read_checked(
        &self,
        slot: &Slot<'_>,
        call_id: u32,
        entry: u32,
        out: &mut Vec<u8>,
    ) -> Result<Reply, AwaitError> {
        let (seen_id, seen_entry, len) = slot.header();
        if seen_id != call_id {
            return Err(AwaitError::Rejected(format!(
                "reply carries call id {seen_id}, the call was {call_id}"
            )));
        }
        if len == SMALL {
            if seen_entry != entry {
                return Err(AwaitError::Rejected(format!(
                    "reply for entry {seen_entry:#010x} to a call of {entry:#010x}"
                )));
            }
            return Ok(Reply::Small);
        }
        let len = len as usize;
        if len > self.geometry.capacity || !self.transport.read_data(slot.index(), len, out) {
            return Err(AwaitError::Rejected(format!(
                "reply length {len} exceeds the {}-byte slot",
                self.geometry.capacity
            )));
        }
        Ok(Reply::Frame)
    }

    /// Serves free-standing downcalls (from user-half threads outside any upcall) until
    /// [`KernelEndpoint::stop_servers`]; run it on one or more threads.
    pub fn serve_downcalls(&self) {
        let doorbell = Doorbell {
            seq: self.transport.header(Word::KernelDoorbell),
            sleepers: self.transport.header(Word::KernelSleepers),
        };
        // The downcall slots' state words: checked once more after announcing a sleep, so
        // a request published before the announcement is not left waiting (requesters
        // ring only for announced sleepers).
        let states: Vec<_> = (self.geometry.upcall_slots..self.geometry.slot_count)
            .filter_map(|index| self.transport.slot_word(index, slot_word::STATE))
            .collect();
        let pending = || {
            states
                .iter()
                .any(|s| s.load(Ordering::SeqCst) == state::REQUEST)
        };
        let mut request = Vec::new();
        let mut reply = Vec::new();
        while !self.stop_servers.load(Ordering::SeqCst) {
            let seen = doorbell.seq();
            let mut served_any = false;
            for index in self.geometry.upcall_slots..self.geometry.slot_count {
                let Some(slot) = Slot::claim_request(&*self.transport, index) else {
                    continue;
                };
                served_any = true;
                let (call_id, entry, len) = slot.header();
                let len = len as usize;
                reply.clear();
                if len > self.geometry.capacity
                    || !self.transport.read_data(index, len, &mut request)
                {
                    self.stats
                        .reject(format!("downcall length {len} exceeds the slot"));
                    request.clear();
                }
                let started = Instant::now();
                let result = serve::serve(
                    Served::ByKernel,
                    &self.tracker,
                    &request,
                    &mut reply,
                    self.geometry.capacity,
                );
                if let Err(reason) = &result {
                    self.stats.reject(reason.clone());
                }
                self.record_downcall(entry, started, result.is_ok());
                if !self.transport.write_data(index, &reply) {
                    reply.clear();
                }
                slot.set_header(call_id, entry, reply.len() as u32);
                self.transport.before_crossing();
                if !slot.transition_and_wake(state::SERVING, state::REPLY) {
                    // The user half gave up on it meanwhile: hand the slot back.
                    slot.publish(state::FREE);
                }
            }
            if !served_any {
                doorbell.wait(seen, MAX_SLEEP, &pending);
            }
        }
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

/// How a reply arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// As a frame, now copied out of the slot.
    Frame,
    /// Without one ([`SMALL`]): a success with nothing in it.
    Small,
}

enum AwaitError {
    Dead,
    TimedOut,
    Rejected(String),
}
