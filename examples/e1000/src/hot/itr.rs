//! Adaptive interrupt throttling, decided in the poll path.
//!
//! Every poll round that moved packets classifies its traffic from the round's packet and
//! byte counts (RX and TX together) and steers ITR toward the rate of that class: few small
//! packets want interrupts at once (lowest latency), full-sized streams want few interrupts
//! (bulk), everything else sits between. The rate falls at once when traffic turns bulk and
//! climbs back in quarter steps, so one odd round does not undo a good setting. Doing this
//! per poll (as Linux's e1000 does in its NAPI poll) lets the rate follow the traffic within
//! a few rounds, however slow the user half is to answer.
//!
//! The kernel half writes ITR only while the user half has turned adaptive mode on
//! ([`HotParams::adaptive_itr`](crate::kernel::HotParams)); with it off, ITR is whatever the
//! user half programmed, and this module never touches it.

use microdriver_rt::Marshal;

use crate::kernel::device::Kernel;
use crate::regs::ITR;

/// Interrupts per second for few, small packets.
pub const LOWEST_LATENCY_RATE: u32 = 70_000;
/// Interrupts per second for mixed traffic.
pub const LOW_LATENCY_RATE: u32 = 20_000;
/// Interrupts per second for bulk streams (and the lowest rate adaptive mode programs).
pub const BULK_RATE: u32 = 4_000;

/// A traffic class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub enum Class {
    /// Few, small packets.
    Lowest,
    /// Mixed traffic.
    #[default]
    Low,
    /// Streams of large packets.
    Bulk,
}

impl Class {
    /// The interrupt rate this class asks for.
    pub fn rate(self) -> u32 {
        match self {
            Class::Lowest => LOWEST_LATENCY_RATE,
            Class::Low => LOW_LATENCY_RATE,
            Class::Bulk => BULK_RATE,
        }
    }
}

/// The class of a round that moved `packets` packets of `bytes` bytes, given the class of
/// the rounds before (`prev`, for hysteresis: it takes less to stay in a class than to
/// enter it).
pub fn classify(prev: Class, packets: u64, bytes: u64) -> Class {
    if packets == 0 {
        return prev;
    }
    let avg = bytes / packets;
    let bulk_in = bytes > 10_000 && avg > 1_200;
    let bulk_stay = bytes >= 6_000 && avg > 1_000;
    let tiny = packets <= 2 && bytes < 512;
    match prev {
        Class::Bulk if bulk_stay => Class::Bulk,
        _ if bulk_in => Class::Bulk,
        _ if tiny => Class::Lowest,
        Class::Lowest if packets < 5 && bytes <= 512 => Class::Lowest,
        _ => Class::Low,
    }
}

/// The adaptive state of one device (guarded by the kernel half's lock, which also orders
/// it against the user half turning adaptive mode off).
#[derive(Debug, Clone, Copy, Default, Marshal)]
pub(crate) struct ItrState {
    /// The kernel half owns ITR (adaptive mode).
    pub adaptive: bool,
    /// The user half's rate limit, interrupts per second (0 = none).
    pub max_rate: u32,
    /// The class of the last round that moved packets.
    pub class: Class,
    /// The rate programmed, interrupts per second.
    pub rate: u32,
}

impl ItrState {
    /// `rate` within the user half's limit (never below [`BULK_RATE`] through the limit).
    pub fn bounded(&self, rate: u32) -> u32 {
        match self.max_rate {
            0 => rate,
            cap => rate.min(cap.max(BULK_RATE)),
        }
    }

    /// The next rate after a round of `packets`/`bytes` (smoothed: down at once, up by a
    /// quarter of the target per round).
    pub fn next_rate(&mut self, packets: u64, bytes: u64) -> u32 {
        self.class = classify(self.class, packets, bytes);
        let target = self.bounded(self.class.rate());
        if target > self.rate {
            (self.rate + target / 4).min(target)
        } else {
            target
        }
    }
}

/// The ITR register value for `rate` interrupts per second (ITR counts 256 ns units
/// between interrupts; 0 = no limit).
pub fn itr_value(rate: u32) -> u32 {
    if rate == 0 {
        0
    } else {
        (1_000_000_000 / (256 * u64::from(rate))).min(0xFFFF) as u32
    }
}

/// After a poll round that moved `packets` packets of `bytes` bytes: in adaptive mode,
/// moves ITR toward the rate the traffic asks for.
pub(crate) fn update(k: &Kernel, s: &mut ItrState, packets: u64, bytes: u64) {
    if packets == 0 || !s.adaptive {
        return;
    }
    let rate = s.next_rate(packets, bytes);
    if rate != s.rate {
        s.rate = rate;
        k.wr(ITR, itr_value(rate));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itr_units() {
        assert_eq!(itr_value(0), 0);
        assert_eq!(itr_value(20_000), 195);
        assert_eq!(itr_value(1), 0xFFFF);
    }

    #[test]
    fn classes() {
        assert_eq!(classify(Class::Low, 0, 0), Class::Low);
        assert_eq!(classify(Class::Low, 1, 60), Class::Lowest);
        assert_eq!(classify(Class::Low, 20, 20 * 1514), Class::Bulk);
        assert_eq!(classify(Class::Bulk, 5, 5 * 1514), Class::Bulk);
        assert_eq!(classify(Class::Low, 5, 5 * 1514), Class::Low);
        assert_eq!(classify(Class::Bulk, 30, 30 * 64), Class::Low);
    }

    #[test]
    fn rate_falls_at_once_and_climbs_in_steps() {
        let mut s = ItrState {
            adaptive: true,
            max_rate: 0,
            class: Class::Low,
            rate: LOW_LATENCY_RATE,
        };
        s.rate = s.next_rate(64, 64 * 1514);
        assert_eq!(s.rate, BULK_RATE);
        let mut steps = 0;
        while s.rate < LOWEST_LATENCY_RATE {
            s.rate = s.next_rate(1, 60);
            steps += 1;
        }
        assert_eq!(steps, 4);
        s.max_rate = 20_000;
        assert_eq!(s.next_rate(1, 60), 20_000);
    }
}
