//! The PHY (Marvell 88E1011 on the 82540EM/82545EM, 88E1000 on the 82544GC) through MDIC
//! (SDM 13.4 MDIC; IEEE 802.3 clause 22 registers): the M88 setup (crossover, polarity,
//! downshift), link bring-up, and SmartSpeed. What the PHY reports is in [`info`].

pub mod info;

use microdriver_rt::Marshal;

use crate::adapter::{Adapter, LinkRequest, HW_WAIT_MS};
use crate::error::DriverError;
use crate::regs::phy::*;
use crate::regs::{ctrl, mdic, CTRL, MDIC};

/// Advertise 10BASE-T half duplex.
pub const ADV_10_HALF: u32 = 1 << 0;
/// Advertise 10BASE-T full duplex.
pub const ADV_10_FULL: u32 = 1 << 1;
/// Advertise 100BASE-TX half duplex.
pub const ADV_100_HALF: u32 = 1 << 2;
/// Advertise 100BASE-TX full duplex.
pub const ADV_100_FULL: u32 = 1 << 3;
/// Advertise 1000BASE-T full duplex (half duplex gigabit is not supported).
pub const ADV_1000_FULL: u32 = 1 << 5;
/// Everything the parts can advertise.
pub const ADV_ALL: u32 = ADV_10_HALF | ADV_10_FULL | ADV_100_HALF | ADV_100_FULL | ADV_1000_FULL;

/// The PHY ids this driver knows.
pub const M88E1011_ID: u32 = 0x0141_0C20;
/// See [`M88E1011_ID`].
pub const M88E1000_ID: u32 = 0x0141_0C30;

/// MDI/MDI-X state unknown (no link) or, as a request, invalid (ethtool
/// `ETH_TP_MDI_INVALID`).
pub const ETH_TP_MDI_INVALID: u8 = 0;
/// Fixed MDI, or the link runs MDI (ethtool `ETH_TP_MDI`).
pub const ETH_TP_MDI: u8 = 1;
/// Fixed MDI-X, or the link runs MDI-X (ethtool `ETH_TP_MDI_X`).
pub const ETH_TP_MDI_X: u8 = 2;
/// Automatic crossover (ethtool `ETH_TP_MDI_AUTO`; a request only).
pub const ETH_TP_MDI_AUTO: u8 = 3;

/// The M88 revisions before this one need TX_CLK and the downshift counters programmed
/// in the extended PHY specific control register (PHYID2 bits 3:0).
pub const M88_REV_4: u32 = 4;

/// SmartSpeed: the watchdog run (counted from the one that cleared manual MASTER-SLAVE)
/// at which manual MASTER-SLAVE is set again, in case the cable has only two pairs.
pub const SMARTSPEED_DOWNSHIFT: u32 = 3;
/// SmartSpeed: the watchdog run after which the cycle starts over.
pub const SMARTSPEED_MAX: u32 = 15;

/// The ethtool statistics name of [`PhyState::idle_errors`].
pub const IDLE_ERRORS_STAT: &str = "phy_idle_errors";

/// The user half's PHY memory: accumulated PHY counters and the SmartSpeed cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct PhyState {
    /// 1000BASE-T idle errors (1000BASE-T status bits 7:0, clear on read), accumulated.
    pub idle_errors: u64,
    /// Where the SmartSpeed cycle is: 0 = watching for MASTER-SLAVE faults, else the
    /// watchdog runs since it cleared manual MASTER-SLAVE (see [`smartspeed`]).
    pub smartspeed: u32,
}

/// Reads PHY register `reg`.
pub fn read(a: &Adapter, reg: u32) -> Result<u16, DriverError> {
    a.wr(
        MDIC,
        mdic::OP_READ | (ADDR << mdic::PHY_SHIFT) | (reg << mdic::REG_SHIFT),
    )?;
    let v = a.poll_reg(MDIC, "MDIC.R", HW_WAIT_MS, |v| v & mdic::READY != 0)?;
    if v & mdic::ERROR != 0 {
        return Err(DriverError::Phy { reg });
    }
    Ok((v & mdic::DATA_MASK) as u16)
}

/// Writes PHY register `reg`.
pub fn write(a: &Adapter, reg: u32, value: u16) -> Result<(), DriverError> {
    a.wr(
        MDIC,
        mdic::OP_WRITE | (ADDR << mdic::PHY_SHIFT) | (reg << mdic::REG_SHIFT) | u32::from(value),
    )?;
    let v = a.poll_reg(MDIC, "MDIC.R", HW_WAIT_MS, |v| v & mdic::READY != 0)?;
    if v & mdic::ERROR != 0 {
        return Err(DriverError::Phy { reg });
    }
    Ok(())
}

/// PHYID1 << 16 | PHYID2.
pub fn id(a: &Adapter) -> Result<u32, DriverError> {
    Ok(u32::from(read(a, PHYID1)?) << 16 | u32::from(read(a, PHYID2)?))
}

/// Resets the PHY through BMCR.RESET (keeping BMCR's configuration bits) and waits for
/// it to clear. The M88 applies PSCR/EPSCR changes at this reset.
pub fn reset(a: &Adapter) -> Result<(), DriverError> {
    let b = read(a, BMCR)?;
    write(a, BMCR, (b | bmcr::RESET) & !bmcr::RESTART_AN)?;
    let end = std::time::Instant::now() + std::time::Duration::from_millis(HW_WAIT_MS);
    while read(a, BMCR)? & bmcr::RESET != 0 {
        if std::time::Instant::now() > end {
            return Err(DriverError::timeout("BMCR.RESET to clear", HW_WAIT_MS));
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    Ok(())
}

/// Checks the PHY id, then sets the PHY and the link up as the configuration asks.
pub fn init(a: &mut Adapter) -> Result<(), DriverError> {
    let id = id(a)?;
    if id & !0xF != M88E1011_ID && id & !0xF != M88E1000_ID {
        return Err(DriverError::UnknownPhy { id });
    }
    a.info.phy_id = id;
    setup_link(a)
}

/// Checks a link request before anything is programmed: advertised modes, forced speed
/// and duplex, and the crossover mode (ethtool's `eth_tp_mdix_ctrl` codes; fixed MDI or
/// MDI-X only with auto-negotiation, as Linux's e1000 allows).
pub fn check_request(req: &LinkRequest) -> Result<(), DriverError> {
    if !matches!(req.mdix, ETH_TP_MDI | ETH_TP_MDI_X | ETH_TP_MDI_AUTO) {
        return Err(DriverError::invalid(
            "MDI/MDI-X mode",
            format!(
                "{}: use {ETH_TP_MDI} (MDI), {ETH_TP_MDI_X} (MDI-X) or {ETH_TP_MDI_AUTO} (auto)",
                req.mdix
            ),
        ));
    }
    if req.autoneg {
        if req.advertise & ADV_ALL == 0 || req.advertise & !ADV_ALL != 0 {
            return Err(DriverError::invalid(
                "advertised modes",
                format!(
                    "{:#x}: use a non-empty subset of {ADV_ALL:#x}",
                    req.advertise
                ),
            ));
        }
        return Ok(());
    }
    if req.mdix != ETH_TP_MDI_AUTO {
        return Err(DriverError::invalid(
            "MDI/MDI-X mode",
            "a fixed MDI or MDI-X needs auto-negotiation; with forced speed/duplex use auto",
        ));
    }
    if !matches!(req.speed, 10 | 100 | 1000) {
        return Err(DriverError::invalid(
            "forced speed",
            format!("{} Mb/s: use 10, 100 or 1000", req.speed),
        ));
    }
    if req.speed == 1000 && !req.full_duplex {
        return Err(DriverError::invalid(
            "forced duplex",
            "1000 Mb/s half duplex is not supported",
        ));
    }
    Ok(())
}

/// The PSCR crossover field for an `ETH_TP_MDI*` request.
pub fn pscr_mdix_bits(mdix: u8) -> u16 {
    match mdix {
        ETH_TP_MDI => pscr::MDI_MANUAL,
        ETH_TP_MDI_X => pscr::MDIX_MANUAL,
        _ => pscr::AUTO_X_ALL,
    }
}

/// The M88 copper setup: PSCR with CRS on transmit, the requested crossover mode and
/// polarity reversal correction on; on revisions before 4, EPSCR with a 25 MHz TX_CLK and
/// MASTER and SLAVE downshift after one failed attempt; then a software reset, which is
/// when the M88 applies them.
fn m88_setup(a: &Adapter) -> Result<(), DriverError> {
    let p = read(a, PSCR)?;
    let p = (p & !(pscr::MDIX_MASK | pscr::POLARITY_REVERSAL_DISABLE))
        | pscr::ASSERT_CRS_ON_TX
        | pscr_mdix_bits(a.conf.link.mdix);
    write(a, PSCR, p)?;
    if a.info.phy_id & 0xF < M88_REV_4 {
        let e = read(a, EPSCR)?;
        let e = (e & !(epscr::MASTER_DOWNSHIFT_MASK | epscr::SLAVE_DOWNSHIFT_MASK))
            | epscr::TX_CLK_25
            | epscr::MASTER_DOWNSHIFT_1X
            | epscr::SLAVE_DOWNSHIFT_1X;
        write(a, EPSCR, e)?;
    }
    reset(a)
}

/// A forced 1000 Mb/s full-duplex request as the link can have it: 1000BASE-T needs
/// auto-negotiation (IEEE 802.3 40.5.1, for the MASTER-SLAVE choice), so it becomes
/// auto-negotiation advertising 1000/full only, as Linux's e1000 does. Any other request
/// is returned unchanged.
pub fn gigabit_negotiated(req: LinkRequest) -> LinkRequest {
    if req.autoneg || req.speed != 1000 || !req.full_duplex {
        return req;
    }
    LinkRequest {
        autoneg: true,
        advertise: ADV_1000_FULL,
        ..req
    }
}

/// Programs the PHY and MAC for the requested link (SDM 8, "Link Configuration"): the M88
/// setup, then auto-negotiation with the advertised modes and pause bits (1000BASE-T
/// control keeps its MASTER-SLAVE bits), or forced speed and duplex. Nothing is written
/// if the request is invalid.
pub fn setup_link(a: &Adapter) -> Result<(), DriverError> {
    let req = a.conf.link;
    check_request(&req)?;
    m88_setup(a)?;
    if req.autoneg {
        let mut anar = anar::SELECTOR_8023;
        for (adv, bit) in [
            (ADV_10_HALF, anar::HD10),
            (ADV_10_FULL, anar::FD10),
            (ADV_100_HALF, anar::HD100),
            (ADV_100_FULL, anar::FD100),
        ] {
            if req.advertise & adv != 0 {
                anar |= bit;
            }
        }
        anar |= pause_advertisement(a);
        write(a, ANAR, anar)?;
        let gcr = read(a, GCR)? & !(gcr::FD1000 | gcr::HD1000);
        let fd1000 = if req.advertise & ADV_1000_FULL != 0 {
            gcr::FD1000
        } else {
            0
        };
        write(a, GCR, gcr | fd1000)?;
        a.rmw(
            CTRL,
            ctrl::FRCSPD | ctrl::FRCDPLX | ctrl::LRST | ctrl::PHY_RST,
            ctrl::SLU | ctrl::ASDE,
        )?;
        write(a, BMCR, bmcr::AN_ENABLE | bmcr::RESTART_AN)?;
    } else {
        let (speed_bits, ctrl_speed) = match req.speed {
            10 => (0, 0),
            100 => (bmcr::SPEED_LSB, 1 << 8),
            _ => (bmcr::SPEED_MSB, 2 << 8),
        };
        let fd = if req.full_duplex { bmcr::FD } else { 0 };
        let fd_ctrl = if req.full_duplex { ctrl::FD } else { 0 };
        a.rmw(
            CTRL,
            ctrl::SPEED_MASK | ctrl::FD | ctrl::ASDE | ctrl::LRST | ctrl::PHY_RST,
            ctrl::SLU | ctrl::FRCSPD | ctrl::FRCDPLX | ctrl_speed | fd_ctrl,
        )?;
        write(a, BMCR, speed_bits | fd)?;
    }
    Ok(())
}

/// The ANAR pause bits for the pause configuration (IEEE 802.3 Table 28B-2): PAUSE for
/// both directions, PAUSE and ASM_DIR for receive only, ASM_DIR for transmit only.
pub fn pause_advertisement(a: &Adapter) -> u16 {
    let p = a.conf.pause;
    if !p.autoneg {
        return 0;
    }
    match (p.rx_pause, p.tx_pause) {
        (true, true) => anar::PAUSE,
        (true, false) => anar::PAUSE | anar::ASM_DIR,
        (false, true) => anar::ASM_DIR,
        (false, false) => 0,
    }
}

/// Restarts auto-negotiation (ethtool nway reset).
pub fn restart_autoneg(a: &Adapter) -> Result<(), DriverError> {
    if !a.conf.link.autoneg {
        return Err(DriverError::WrongState {
            op: "nway reset".into(),
            state: "forced speed/duplex".into(),
            needed: "auto-negotiation enabled".into(),
        });
    }
    let b = read(a, BMCR)?;
    write(a, BMCR, b | bmcr::AN_ENABLE | bmcr::RESTART_AN)
}

/// SmartSpeed, one watchdog run's worth (auto-negotiation advertising 1000BASE-T full
/// duplex, link down). Two back-to-back reads of 1000BASE-T status showing a
/// MASTER-SLAVE configuration fault, with manual MASTER-SLAVE configured, mean the
/// partner is configured the same way: manual MASTER-SLAVE is cleared and
/// auto-negotiation restarted. If the link is still down [`SMARTSPEED_DOWNSHIFT`] runs
/// later, manual MASTER-SLAVE is set again (a cable with two pairs needs the M88's
/// downshift, which manual configuration allows); after [`SMARTSPEED_MAX`] runs the
/// cycle starts over. A link that comes up ends the cycle.
pub fn smartspeed(a: &mut Adapter) -> Result<(), DriverError> {
    let req = a.conf.link;
    if a.link.up {
        a.phy.smartspeed = 0;
        return Ok(());
    }
    if !req.autoneg || req.advertise & ADV_1000_FULL == 0 {
        return Ok(());
    }
    if a.phy.smartspeed == 0 {
        for _ in 0..2 {
            if read(a, GSR)? & gsr::MS_CONFIG_FAULT == 0 {
                return Ok(());
            }
        }
        let g = read(a, GCR)?;
        if g & gcr::MS_ENABLE != 0 {
            write(a, GCR, g & !gcr::MS_ENABLE)?;
            a.phy.smartspeed = 1;
            tracing::info!(
                dev = a.dev.0,
                "SmartSpeed: MASTER-SLAVE fault, trying automatic MASTER-SLAVE"
            );
            restart_autoneg(a)?;
        }
        return Ok(());
    }
    if a.phy.smartspeed == SMARTSPEED_DOWNSHIFT {
        let g = read(a, GCR)?;
        write(a, GCR, g | gcr::MS_ENABLE)?;
        restart_autoneg(a)?;
    }
    a.phy.smartspeed = if a.phy.smartspeed >= SMARTSPEED_MAX {
        0
    } else {
        a.phy.smartspeed + 1
    };
    Ok(())
}
