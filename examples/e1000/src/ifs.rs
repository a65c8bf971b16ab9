//! Adaptive inter-frame spacing (the 82540/82545/82544 AIT register, SDM 13.4 "Adaptive
//! IFS Throttle"). In half duplex, back-to-back transmissions collide with the partner's;
//! stretching the gap before each transmission (AIT, added to the IPG) trades a little
//! throughput for fewer collisions. The watchdog tunes it from the accumulated statistics
//! (collisions, COLC, against transmitted packets, TPT, since its previous run): while
//! collisions are a large fraction of a busy transmitter's packets the spacing grows in
//! steps up to a cap; once they fall it goes back to 0. In full duplex there are no
//! collisions to avoid and AIT is kept 0.

use microdriver_rt::Marshal;

use crate::adapter::Adapter;
use crate::error::DriverError;
use crate::regs::AIFS;

/// The first spacing programmed when collisions become frequent (AIT units).
pub const IFS_MIN: u32 = 40;
/// The largest spacing.
pub const IFS_MAX: u32 = 80;
/// How much the spacing grows per watchdog run while collisions stay frequent.
pub const IFS_STEP: u32 = 10;
/// Collisions are "frequent" when more than one per `IFS_RATIO` transmitted packets.
pub const IFS_RATIO: u64 = 4;
/// Fewer packets than this between runs are too few to judge the collision rate by.
pub const MIN_XMITS: u64 = 1000;

/// The adaptive IFS state the adapter keeps between watchdog runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct IfsState {
    /// The spacing programmed into AIT (0: none).
    pub current: u32,
    /// The collision total (COLC) at the previous run.
    pub last_collisions: u64,
    /// The transmitted-packet total (TPT) at the previous run.
    pub last_transmits: u64,
}

/// The spacing to program next, from the current one and what happened since the
/// previous run: the link's duplex, collisions and transmitted packets.
pub fn next_ifs(current: u32, half_duplex: bool, collisions: u64, transmits: u64) -> u32 {
    let congested = transmits > MIN_XMITS && collisions.saturating_mul(IFS_RATIO) > transmits;
    match (half_duplex && congested, current) {
        (false, _) => 0,
        (true, 0) => IFS_MIN,
        (true, c) => c.saturating_add(IFS_STEP).min(IFS_MAX),
    }
}

/// One watchdog step (after the statistics were accumulated): computes the spacing and
/// writes AIT when the register does not hold it (also after a reset cleared it). Returns
/// the spacing.
pub fn update(a: &mut Adapter) -> Result<u32, DriverError> {
    let collisions = a.stats.get("collisions").unwrap_or(0);
    let transmits = a.stats.get("total_tx_packets").unwrap_or(0);
    let s = a.ifs;
    let half_duplex = a.up && a.link.up && !a.link.full_duplex;
    let next = next_ifs(
        s.current,
        half_duplex,
        collisions.saturating_sub(s.last_collisions),
        transmits.saturating_sub(s.last_transmits),
    );
    a.ifs = IfsState {
        current: next,
        last_collisions: collisions,
        last_transmits: transmits,
    };
    if a.rd(AIFS)? & 0xFFFF != next {
        a.wr(AIFS, next)?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_in_steps_to_the_cap_and_resets() {
        let mut c = 0;
        let mut seen = Vec::new();
        for _ in 0..7 {
            c = next_ifs(c, true, 2000, 4000);
            seen.push(c);
        }
        assert_eq!(seen, [40, 50, 60, 70, 80, 80, 80]);
        assert_eq!(next_ifs(c, true, 10, 4000), 0, "collisions fell");
        assert_eq!(
            next_ifs(c, true, 500, 900),
            0,
            "too little traffic to judge"
        );
        assert_eq!(next_ifs(c, false, 2000, 4000), 0, "full duplex");
        assert_eq!(
            next_ifs(0, true, 1000, 4000),
            0,
            "exactly one in four is not more"
        );
    }
}
