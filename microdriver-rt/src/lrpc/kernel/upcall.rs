//! The upcall path: a call from claiming a slot to reading the reply, serving the nested
//! downcalls the user half makes meanwhile.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{abandon, slot_use, KernelEndpoint, PEER};
use crate::lrpc::buffers::Buffer;
use crate::lrpc::entry::Served;
use crate::lrpc::slot::{state, Deadline, Doorbell, Slot, SMALL};
use crate::lrpc::{call, serve, CallError};
use crate::marshal::{Decoder, Encoder, MarshalError};
use crate::transport::Word;

impl KernelEndpoint {
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
        let started = crate::lrpc::clock::now();
        let result = self.call_inner(entry, name, &Deadline::after(timeout), state, args, values);
        self.stats
            .record(entry, crate::lrpc::clock::since(started), result.is_ok());
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
