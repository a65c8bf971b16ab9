//! The user half's endpoint: worker threads serve upcalls; downcalls go back to the kernel
//! half, nested in the upcall being served when there is one.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU32 as StdAtomicU32, Ordering};

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::buffers::Buffer;
use super::entry::Served;
use super::kernel::CallOptions;
use super::slot::{
    state, Deadline, Doorbell, Geometry, Slot, StateWords, MAX_SLEEP, SMALL, SPINS_PER_CLOCK_READ,
};
use super::{call, serve, CallError, Half};
use crate::marshal::{Decoder, Encoder, MarshalError};
use crate::tracker::ObjectTracker;
use crate::transport::{Transport, Word};

const PEER: Half = Half::Kernel;

thread_local! {
    /// The upcall this worker thread is serving: (slot, call id).
    static SERVING: Cell<Option<(usize, u32)>> = const { Cell::new(None) };
}

/// The user half's end of a channel.
pub struct UserEndpoint {
    transport: Arc<dyn Transport>,
    tracker: Arc<ObjectTracker>,
    options: CallOptions,
    /// Fixed at creation: never re-read from the shared header.
    geometry: Geometry,
    /// Which free-standing downcall slots this half's threads hold (claimed by
    /// compare-and-swap: no lock between calling threads).
    down_slots: Box<[AtomicBool]>,
    next_call: StdAtomicU32,
    stop: AtomicBool,
}

impl UserEndpoint {
    /// An endpoint over a transport the kernel half set up.
    pub fn new(
        transport: Arc<dyn Transport>,
        tracker: Arc<ObjectTracker>,
        options: CallOptions,
    ) -> Self {
        let geometry = Geometry::of(&*transport);
        UserEndpoint {
            transport,
            tracker,
            options,
            geometry,
            down_slots: (geometry.upcall_slots..geometry.slot_count)
                .map(|_| AtomicBool::new(false))
                .collect(),
            next_call: StdAtomicU32::new(1),
            stop: AtomicBool::new(false),
        }
    }

    /// This half's tracker.
    pub fn tracker(&self) -> &Arc<ObjectTracker> {
        &self.tracker
    }

    /// The transport (not API: the runtime's own tests reach the area through it).
    #[doc(hidden)]
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.transport
    }

    /// **Fault injection**: writes pseudo-random values (from `seed`) over 64 random
    /// control words and data areas of the channel's call slots, as a user half with a
    /// wild pointer would. The kernel half must reject whatever that makes it read and
    /// keep its own state; a driver's chaos tests call this from an `#[upcall]` to prove
    /// it. Returns the number of slot words written.
    ///
    /// ```
    /// use microdriver_rt::{lrpc::user_endpoint, upcall, CallError, Marshal};
    ///
    /// #[derive(Debug, Marshal)]
    /// struct Failed(String);
    /// impl From<CallError> for Failed {
    ///     fn from(e: CallError) -> Self { Failed(e.to_string()) }
    /// }
    ///
    /// /// Runs in the user half: scribbles over the channel.
    /// #[upcall]
    /// fn scribble(seed: u64) -> Result<usize, Failed> {
    ///     let endpoint = user_endpoint().ok_or(Failed("not split".into()))?;
    ///     Ok(endpoint.scribble_channel(seed))
    /// }
    ///
    /// fn main() {
    ///     microdriver_rt::run_user_half_if_requested();
    ///     let driver = microdriver_rt::start(Default::default()).expect("start");
    ///     // Whatever the garbage does to this call (an error, a restart), the driver then
    ///     // has a user half that answers again.
    ///     let _ = scribble(42);
    ///     assert!(driver.wait_restarted(None, std::time::Duration::from_secs(10)));
    /// }
    /// ```
    pub fn scribble_channel(&self, seed: u64) -> usize {
        let area = &*self.transport;
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut written = 0;
        for _ in 0..64 {
            let slot = (next() as usize) % area.slot_count().max(1);
            let word = (next() as usize) % crate::transport::SLOT_WORDS;
            if let Some(w) = area.slot_word(slot, word) {
                w.store(next() as u32, Ordering::SeqCst);
                written += 1;
            }
            let bytes: Vec<u8> = (0..(next() % 64)).map(|_| next() as u8).collect();
            area.write_data(slot, &bytes);
        }
        written
    }

    /// True once the kernel half asked for shutdown or [`UserEndpoint::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
            || self.transport.header(Word::Shutdown).load(Ordering::SeqCst) != 0
    }

    /// Makes the workers return.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        crate::transport::wake_all(self.transport.header(Word::UserDoorbell));
    }

    /// Starts `workers` threads serving upcalls; they run until shutdown.
    pub fn spawn_workers(self: &Arc<Self>, workers: usize) -> Vec<JoinHandle<()>> {
        (0..workers.max(1))
            .map(|i| {
                let endpoint = Arc::clone(self);
                std::thread::Builder::new()
                    .name(format!("uhalf-worker-{i}"))
                    .spawn(move || endpoint.serve_upcalls())
                    .expect("spawning a user-half worker thread")
            })
            .collect()
    }

    /// Serves upcalls on this thread until shutdown.
    pub fn serve_upcalls(self: &Arc<Self>) {
        super::enter_user_context(Arc::clone(self));
        let area = &*self.transport;
        let doorbell = Doorbell {
            seq: area.header(Word::UserDoorbell),
            sleepers: area.header(Word::UserSleepers),
        };
        let shutdown = area.header(Word::Shutdown);
        let stopping = || self.stop.load(Ordering::SeqCst) || shutdown.load(Ordering::SeqCst) != 0;
        // The upcall slots' state words, looked up once: an idle worker watches them all.
        let states = StateWords::of(area, 0..self.geometry.upcall_slots);
        let pending = || states.any_request();
        let mut request = Vec::new();
        let mut reply = Vec::new();
        let spin = self.options.wait.spin;
        // When the workers last found work: read lazily, at the first clock check of a
        // spin, so serving a call costs no clock read.
        let mut idle_since: Option<Instant> = None;
        while !stopping() {
            let seen = doorbell.seq();
            let mut served_any = false;
            for (index, word) in states.words().iter().enumerate() {
                if word.load(Ordering::SeqCst) != state::REQUEST {
                    continue;
                }
                let Some(slot) = Slot::claim_request(area, index) else {
                    continue;
                };
                served_any = true;
                self.serve_one(&slot, &mut request, &mut reply);
            }
            if served_any {
                idle_since = None;
                continue;
            }
            // Nothing was waiting: watch the slots themselves (spinning), then sleep on
            // the doorbell, which requesters ring only once a worker announced it sleeps.
            // The same policy as `Slot::wait_while`: the clock is read once per
            // `SPINS_PER_CLOCK_READ` checks.
            let mut spins = 0u32;
            let mut spinning = !spin.is_zero();
            while !pending() && doorbell.seq() == seen && !stopping() {
                if spinning {
                    spins = spins.wrapping_add(1);
                    if !spins.is_multiple_of(SPINS_PER_CLOCK_READ)
                        || idle_since.get_or_insert_with(Instant::now).elapsed() < spin
                    {
                        crate::sync::spin_hint();
                        continue;
                    }
                    spinning = false;
                }
                doorbell.wait(seen, MAX_SLEEP, &pending);
            }
        }
    }

    fn serve_one(&self, slot: &Slot<'_>, request: &mut Vec<u8>, reply: &mut Vec<u8>) {
        let (call_id, entry, len) = slot.header();
        SERVING.with(|s| s.set(Some((slot.index(), call_id))));
        let served = if len == SMALL {
            serve::serve_small(
                Served::ByUser,
                &self.tracker,
                entry,
                reply,
                self.geometry.capacity,
            )
        } else {
            let len = len as usize;
            if len > self.geometry.capacity || !self.transport.read_data(slot.index(), len, request)
            {
                request.clear();
            }
            serve::serve(
                Served::ByUser,
                &self.tracker,
                request,
                reply,
                self.geometry.capacity,
            )
        };
        SERVING.with(|s| s.set(None));
        if served == Ok(serve::Reply::Unit) {
            // Nothing to carry: the header says it all, the data stays untouched.
            slot.set_header(call_id, entry, SMALL);
        } else {
            if !self.transport.write_data(slot.index(), reply) {
                reply.clear();
            }
            slot.set_header(call_id, entry, reply.len() as u32);
        }
        self.transport.before_crossing();
        if !slot.transition_and_wake(state::SERVING, state::REPLY) {
            // The kernel half gave up on this call: hand the slot back.
            slot.publish(state::FREE);
        }
    }

    /// Makes a downcall to the kernel half's entry `entry`. Inside an upcall it travels in
    /// that upcall's slot and is served by the kernel thread waiting for the upcall.
    pub fn call<S, R>(
        &self,
        entry: u32,
        name: &str,
        state: &mut S,
        args: impl FnOnce(&S, &mut Encoder<'_>) -> Result<(), MarshalError>,
        values: impl FnOnce(&mut S, &mut Decoder<'_>) -> Result<R, MarshalError>,
    ) -> Result<R, CallError> {
        let mut buf = Buffer::take();
        call::request(&mut buf, entry, &self.tracker, |enc| args(state, enc))?;
        if buf.len() > self.geometry.capacity {
            return Err(CallError::TooLarge {
                len: buf.len(),
                capacity: self.geometry.capacity,
            });
        }
        let deadline = Deadline::after(self.options.timeout);
        match SERVING.with(Cell::get) {
            Some((index, call_id)) => self.nested(index, call_id, entry, &deadline, &mut buf)?,
            None => self.free_standing(entry, &deadline, &mut buf)?,
        }
        call::reply(
            &buf,
            entry,
            name,
            &self.tracker,
            PEER,
            self.geometry.capacity,
            |dec| values(state, dec),
        )
    }

    fn nested(
        &self,
        index: usize,
        call_id: u32,
        entry: u32,
        deadline: &Deadline,
        buf: &mut Vec<u8>,
    ) -> Result<(), CallError> {
        let slot = Slot::new(&*self.transport, index)
            .ok_or(CallError::NoSlot(self.geometry.slot_count))?;
        self.transport.write_data(index, buf);
        slot.set_header(call_id, entry, buf.len() as u32);
        self.transport.before_crossing();
        if !slot.transition_and_wake(state::SERVING, state::DOWN_REQUEST) {
            // The kernel half abandoned the upcall.
            return Err(CallError::PeerDied { peer: PEER });
        }
        let stopping = || self.stopping();
        let seen = slot.wait_while(
            &[state::DOWN_REQUEST],
            self.options.wait,
            Some(deadline),
            &stopping,
        );
        if seen != state::DOWN_REPLY {
            return Err(if seen == state::DOWN_REQUEST {
                CallError::TimedOut(self.options.timeout)
            } else {
                CallError::PeerDied { peer: PEER }
            });
        }
        let (_, _, len) = slot.header();
        let ok = self.transport.read_data(index, len as usize, buf);
        slot.transition(state::DOWN_REPLY, state::SERVING);
        if !ok {
            return Err(CallError::Rejected {
                peer: PEER,
                reason: format!("downcall reply length {len}"),
            });
        }
        Ok(())
    }

    fn free_standing(
        &self,
        entry: u32,
        deadline: &Deadline,
        buf: &mut Vec<u8>,
    ) -> Result<(), CallError> {
        let index = loop {
            let claimed = self.down_slots.iter().position(|busy| {
                !busy.load(Ordering::Relaxed)
                    && busy
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::Relaxed)
                        .is_ok()
            });
            if let Some(i) = claimed {
                break self.geometry.upcall_slots + i;
            }
            if deadline.is_past() || self.stopping() {
                return Err(CallError::NoSlot(
                    self.geometry.slot_count - self.geometry.upcall_slots,
                ));
            }
            std::thread::sleep(Duration::from_micros(50));
        };
        let result = self.free_standing_in(index, entry, deadline, buf);
        // A slot whose call was abandoned while the kernel half still held it stays
        // marked busy: reusing it could read the late reply as the answer to a new call.
        if !matches!(result, Err(Abandoned::Unclean)) {
            if let Some(busy) = self.down_slots.get(index - self.geometry.upcall_slots) {
                busy.store(false, Ordering::SeqCst);
            }
        }
        result.map_err(|e| match e {
            Abandoned::Error(e) => e,
            Abandoned::Unclean => CallError::TimedOut(self.options.timeout),
        })
    }

    fn free_standing_in(
        &self,
        index: usize,
        entry: u32,
        deadline: &Deadline,
        buf: &mut Vec<u8>,
    ) -> Result<(), Abandoned> {
        let slot = Slot::new(&*self.transport, index).ok_or(Abandoned::Error(
            CallError::NoSlot(self.geometry.slot_count),
        ))?;
        let call_id = self.next_call.fetch_add(1, Ordering::Relaxed).max(1);
        self.transport.write_data(index, buf);
        slot.set_header(call_id, entry, buf.len() as u32);
        self.transport.before_crossing();
        slot.publish(state::REQUEST);
        Doorbell {
            seq: self.transport.header(Word::KernelDoorbell),
            sleepers: self.transport.header(Word::KernelSleepers),
        }
        .ring();
        let stopping = || self.stopping();
        let seen = slot.wait_while(
            &[state::REQUEST, state::SERVING],
            self.options.wait,
            Some(deadline),
            &stopping,
        );
        if seen != state::REPLY {
            return Err(if super::kernel::abandon(&slot) {
                Abandoned::Error(CallError::TimedOut(self.options.timeout))
            } else {
                Abandoned::Unclean
            });
        }
        let (reply_id, _, len) = slot.header();
        let ok = reply_id == call_id && self.transport.read_data(index, len as usize, buf);
        slot.publish(state::FREE);
        if !ok {
            return Err(Abandoned::Error(CallError::Rejected {
                peer: PEER,
                reason: format!("downcall reply (call {reply_id}, length {len}) to call {call_id}"),
            }));
        }
        Ok(())
    }
}

/// How a free-standing downcall failed.
enum Abandoned {
    /// Failed; the slot can be reused.
    Error(CallError),
    /// Timed out while the kernel half held the slot: keep it out of use.
    Unclean,
}
