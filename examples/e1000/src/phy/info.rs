//! What the M88 PHY reports: the PHY specific status register (17) and 1000BASE-T status
//! (10) decoded into a [`PhyInfo`], and the PHY counters the watchdog accumulates.

use microdriver_rt::upcall;
use microdriver_rt::Marshal;

use super::{read, ETH_TP_MDI, ETH_TP_MDI_INVALID, ETH_TP_MDI_X};
use crate::adapter::Adapter;
use crate::error::DriverError;
use crate::regs::phy::{gsr, pscr, pssr, GSR, PSCR, PSSR};

/// The M88's cable length estimate (PSSR bits 9:7, valid at 1000 Mb/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub enum CableLength {
    /// Shorter than 50 m.
    Under50,
    /// 50 to 80 m.
    From50To80,
    /// 80 to 110 m.
    From80To110,
    /// 110 to 140 m.
    From110To140,
    /// Longer than 140 m.
    Over140,
}

impl CableLength {
    /// The estimate in a PSSR value, or `None` for the reserved codes 5-7.
    pub fn from_pssr(v: u16) -> Option<Self> {
        match (v & pssr::CABLE_LENGTH_MASK) >> pssr::CABLE_LENGTH_SHIFT {
            0 => Some(Self::Under50),
            1 => Some(Self::From50To80),
            2 => Some(Self::From80To110),
            3 => Some(Self::From110To140),
            4 => Some(Self::Over140),
            _ => None,
        }
    }

    /// The range in metres: lower bound and upper bound (`None`: no upper bound).
    pub fn metres(self) -> (u32, Option<u32>) {
        match self {
            Self::Under50 => (0, Some(50)),
            Self::From50To80 => (50, Some(80)),
            Self::From80To110 => (80, Some(110)),
            Self::From110To140 => (110, Some(140)),
            Self::Over140 => (140, None),
        }
    }
}

/// The PHY's view of the link (Linux's `e1000_phy_info` and more).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct PhyInfo {
    /// Real-time link (PSSR.LINK).
    pub link_up: bool,
    /// Resolved speed in Mb/s (0 while speed and duplex are not resolved).
    pub speed: u32,
    /// Resolved full duplex.
    pub full_duplex: bool,
    /// Crossover state: `ETH_TP_MDI`, `ETH_TP_MDI_X`, or `ETH_TP_MDI_INVALID` with no
    /// link.
    pub mdix: u8,
    /// Receive polarity is reversed (and corrected).
    pub polarity_reversed: bool,
    /// Polarity reversal correction is enabled (PSCR bit 1 clear).
    pub polarity_correction: bool,
    /// The PHY downshifted (fewer pairs than 1000BASE-T needs).
    pub downshift: bool,
    /// The cable length estimate (1000 Mb/s links only).
    pub cable_length: Option<CableLength>,
    /// Local receiver OK (1000 Mb/s links only).
    pub local_rx_ok: Option<bool>,
    /// Remote receiver OK (1000 Mb/s links only).
    pub remote_rx_ok: Option<bool>,
    /// MASTER-SLAVE resolution: `Some(true)` when this end is MASTER (1000 Mb/s only).
    pub master: Option<bool>,
    /// A MASTER-SLAVE configuration fault was seen.
    pub ms_fault: bool,
    /// Idle errors, accumulated ([`crate::phy::PhyState::idle_errors`]).
    pub idle_errors: u64,
}

/// Decodes PSSR (and, at 1000 Mb/s, 1000BASE-T status) into a [`PhyInfo`]; `pscr` gives
/// the polarity correction setting.
pub fn decode(pssr_v: u16, gsr_v: u16, pscr_v: u16) -> PhyInfo {
    let link_up = pssr_v & pssr::LINK != 0;
    let resolved = pssr_v & pssr::RESOLVED != 0;
    let speed = match pssr_v & pssr::SPEED_MASK {
        pssr::SPEED_1000 => 1000,
        pssr::SPEED_100 => 100,
        0 => 10,
        _ => 0,
    };
    let gig = link_up && resolved && speed == 1000;
    PhyInfo {
        link_up,
        speed: if resolved { speed } else { 0 },
        full_duplex: resolved && pssr_v & pssr::FD != 0,
        mdix: match (link_up, pssr_v & pssr::MDIX != 0) {
            (false, _) => ETH_TP_MDI_INVALID,
            (true, false) => ETH_TP_MDI,
            (true, true) => ETH_TP_MDI_X,
        },
        polarity_reversed: pssr_v & pssr::REV_POLARITY != 0,
        polarity_correction: pscr_v & pscr::POLARITY_REVERSAL_DISABLE == 0,
        downshift: pssr_v & pssr::DOWNSHIFT != 0,
        cable_length: gig.then(|| CableLength::from_pssr(pssr_v)).flatten(),
        local_rx_ok: gig.then_some(gsr_v & gsr::LOCAL_RX_OK != 0),
        remote_rx_ok: gig.then_some(gsr_v & gsr::REMOTE_RX_OK != 0),
        master: gig.then_some(gsr_v & gsr::MS_CONFIG_RES != 0),
        ms_fault: gsr_v & gsr::MS_CONFIG_FAULT != 0,
        idle_errors: 0,
    }
}

/// Reads 1000BASE-T status, adding its idle error count (cleared by the read) to the
/// accumulated total.
pub(crate) fn read_gsr(a: &mut Adapter) -> Result<u16, DriverError> {
    let g = read(a, GSR)?;
    a.phy.idle_errors = a
        .phy
        .idle_errors
        .saturating_add(u64::from(g & gsr::IDLE_ERR_MASK));
    Ok(g)
}

/// The PHY's status (ethtool-style PHY information).
#[upcall]
pub fn phy_info(a: &mut Adapter) -> Result<PhyInfo, DriverError> {
    let s = read(a, PSSR)?;
    let g = read_gsr(a)?;
    let c = read(a, PSCR)?;
    Ok(PhyInfo {
        idle_errors: a.phy.idle_errors,
        ..decode(s, g, c)
    })
}

/// The watchdog's PHY statistics: at 1000 Mb/s, the idle errors counted since the last
/// read (as Linux's e1000 does; the count means nothing at other speeds).
pub fn update_stats(a: &mut Adapter) -> Result<(), DriverError> {
    if a.link.up && a.link.speed == 1000 {
        read_gsr(a)?;
    }
    Ok(())
}

/// The crossover state for ethtool's `eth_tp_mdix` (`ETH_TP_MDI_INVALID` with no link).
pub fn mdix_state(a: &Adapter) -> Result<u8, DriverError> {
    let s = read(a, PSSR)?;
    Ok(decode(s, 0, 0).mdix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cable_length_codes() {
        // M88 PSSR bits 9:7: 0 = < 50 m, 1 = 50-80, 2 = 80-110, 3 = 110-140, 4 = > 140.
        let want = [
            (0, Some((0, Some(50)))),
            (1, Some((50, Some(80)))),
            (2, Some((80, Some(110)))),
            (3, Some((110, Some(140)))),
            (4, Some((140, None))),
            (5, None),
            (6, None),
            (7, None),
        ];
        for (code, range) in want {
            let v = (code << pssr::CABLE_LENGTH_SHIFT) | 0xC07F; // other bits set
            assert_eq!(CableLength::from_pssr(v).map(CableLength::metres), range);
        }
    }

    #[test]
    fn decode_status_fields() {
        let up1000 = pssr::LINK | pssr::RESOLVED | pssr::SPEED_1000 | pssr::FD;
        let i = decode(
            up1000 | pssr::MDIX | pssr::REV_POLARITY | (3 << pssr::CABLE_LENGTH_SHIFT),
            gsr::LOCAL_RX_OK | gsr::MS_CONFIG_RES | 7,
            pscr::AUTO_X_ALL,
        );
        assert!(i.link_up && i.full_duplex);
        assert_eq!((i.speed, i.mdix), (1000, ETH_TP_MDI_X));
        assert!(i.polarity_reversed && i.polarity_correction && !i.downshift);
        assert_eq!(i.cable_length, Some(CableLength::From110To140));
        assert_eq!((i.local_rx_ok, i.remote_rx_ok), (Some(true), Some(false)));
        assert_eq!(i.master, Some(true));

        // 100 Mb/s, MDI, correction disabled: no 1000BASE-T fields.
        let i = decode(
            pssr::LINK | pssr::RESOLVED | pssr::SPEED_100,
            gsr::LOCAL_RX_OK,
            pscr::POLARITY_REVERSAL_DISABLE,
        );
        assert_eq!((i.speed, i.full_duplex, i.mdix), (100, false, ETH_TP_MDI));
        assert!(!i.polarity_correction && !i.polarity_reversed);
        assert_eq!(
            (i.cable_length, i.local_rx_ok, i.master),
            (None, None, None)
        );

        // No link: nothing resolved, crossover unknown; a fault still shows.
        let i = decode(0, gsr::MS_CONFIG_FAULT, 0);
        assert_eq!((i.link_up, i.speed, i.mdix), (false, 0, ETH_TP_MDI_INVALID));
        assert!(i.ms_fault);
    }
}
