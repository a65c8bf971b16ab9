//! The model's INTx line: a level the controller drives, a mask, a wake-up.

use std::time::{Duration, Instant};

use microdriver_hal::seam::InterruptLine;
use parking_lot::{Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    asserted: bool,
    masked: bool,
    assertions: u64,
}

/// A level-triggered interrupt line.
#[derive(Debug, Default)]
pub struct SimIrq {
    state: Mutex<State>,
    cv: Condvar,
}

impl SimIrq {
    /// Device side: drives the level.
    pub(crate) fn set_level(&self, level: bool) {
        let mut s = self.state.lock();
        if level && !s.asserted {
            s.assertions += 1;
            self.cv.notify_all();
        }
        s.asserted = level;
    }
}

impl InterruptLine for SimIrq {
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.state.lock();
        while !s.asserted || s.masked {
            if self.cv.wait_until(&mut s, deadline).timed_out() {
                break;
            }
        }
        s.asserted && !s.masked
    }
    fn is_asserted(&self) -> bool {
        self.state.lock().asserted
    }
    fn mask(&self) {
        self.state.lock().masked = true;
    }
    fn unmask(&self) {
        self.state.lock().masked = false;
        self.cv.notify_all();
    }
    fn is_masked(&self) -> bool {
        self.state.lock().masked
    }
    fn assertions(&self) -> u64 {
        self.state.lock().assertions
    }
}
