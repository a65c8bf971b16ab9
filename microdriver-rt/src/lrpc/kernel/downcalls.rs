//! Serving downcalls: free-standing ones on server threads; nested ones (on the thread
//! waiting for an upcall) count themselves the same way.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::KernelEndpoint;
use crate::lrpc::entry::{EntryTable, Served};
use crate::lrpc::serve;
use crate::lrpc::slot::{state, Doorbell, Slot, StateWords, MAX_SLEEP};
use crate::transport::Word;

impl KernelEndpoint {
    /// Counts a downcall the user half asked for under its entry, if it names one this half
    /// serves: made-up ids are rejections, not rows in the statistics.
    pub(super) fn record_downcall(&self, entry: u32, started: Instant, ok: bool) {
        if EntryTable::get().lookup(Served::ByKernel, entry).is_some() {
            self.stats.record(entry, started.elapsed(), ok);
        }
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
        let states = StateWords::of(
            &*self.transport,
            self.geometry.upcall_slots..self.geometry.slot_count,
        );
        let pending = || states.any_request();
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
}
