//! The restart gate: while a restarted user half is not re-attached yet, upcalls wait (or
//! fail as `Restarting`) instead of reaching it half-initialised.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::KernelEndpoint;
use crate::lrpc::slot::Deadline;
use crate::lrpc::CallError;

thread_local! {
    /// Set while this thread runs re-attach hooks ([`KernelEndpoint::pass_gate`]): its
    /// upcalls go through a closed restart gate.
    static GATE_PASS: Cell<u32> = const { Cell::new(0) };
    /// This thread's shard of [`KernelEndpoint`]'s in-gate counters.
    static GATE_SHARD: usize = NEXT_GATE_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
}

/// Shards of the count of callers past the restart gate (a thread uses one, so callers on
/// different threads do not contend for one cache line).
pub(super) const SHARDS: usize = 16;
static NEXT_GATE_SHARD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One shard of the in-gate count, alone on its cache lines.
#[derive(Default)]
#[repr(align(128))]
pub(super) struct GateShard(std::sync::atomic::AtomicUsize);

/// A caller past the restart gate; leaving (the call's end) uncounts it.
pub(super) struct InGate<'a>(&'a std::sync::atomic::AtomicUsize);

impl Drop for InGate<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Release);
    }
}

impl KernelEndpoint {
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
    pub(super) fn enter_gate(&self, deadline: &Deadline) -> Result<InGate<'_>, CallError> {
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
}
