//! A simulated level-triggered interrupt line for device models: a level, a mask and a
//! wake-up, like an eventfd behind UIO.

use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::seam::InterruptLine;

#[derive(Debug, Default)]
struct State {
    asserted: bool,
    masked: bool,
    assertions: u64,
}

/// The model's interrupt line. The device drives the level; the k-half waits on it.
#[derive(Debug, Default)]
pub struct SimIrq {
    state: Mutex<State>,
    cv: Condvar,
}

impl SimIrq {
    /// A deasserted, unmasked line.
    pub fn new() -> Self {
        Self::default()
    }

    /// Device side: drive the level.
    pub fn set_level(&self, level: bool) {
        let mut s = self.state.lock();
        if level && !s.asserted {
            s.assertions += 1;
            s.asserted = true;
            if !s.masked {
                self.cv.notify_all();
            }
        } else if !level {
            s.asserted = false;
        }
    }
}

impl InterruptLine for SimIrq {
    fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut s = self.state.lock();
        loop {
            if s.asserted && !s.masked {
                return true;
            }
            match deadline {
                Some(d) => {
                    if self.cv.wait_until(&mut s, d).timed_out() {
                        return s.asserted && !s.masked;
                    }
                }
                None => self.cv.wait(&mut s),
            }
        }
    }

    fn is_asserted(&self) -> bool {
        self.state.lock().asserted
    }

    fn mask(&self) {
        self.state.lock().masked = true;
    }

    fn unmask(&self) {
        let mut s = self.state.lock();
        s.masked = false;
        if s.asserted {
            self.cv.notify_all();
        }
    }

    fn is_masked(&self) -> bool {
        self.state.lock().masked
    }

    fn assertions(&self) -> u64 {
        self.state.lock().assertions
    }
}
