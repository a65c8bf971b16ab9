//! The PHY (Marvell 88E1011 on the 82540EM/82545EM, 88E1000 on the 82544GC) through MDIC
//! (SDM 13.4 MDIC; IEEE 802.3 clause 22 registers).

use crate::adapter::{Adapter, HW_WAIT_MS};
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

/// Resets the PHY through BMCR.RESET and waits for it to clear.
pub fn reset(a: &Adapter) -> Result<(), DriverError> {
    write(a, BMCR, bmcr::RESET)?;
    let end = std::time::Instant::now() + std::time::Duration::from_millis(HW_WAIT_MS);
    while read(a, BMCR)? & bmcr::RESET != 0 {
        if std::time::Instant::now() > end {
            return Err(DriverError::timeout("BMCR.RESET to clear", HW_WAIT_MS));
        }
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
    Ok(())
}

/// Checks the PHY id, then sets the link up as the configuration asks.
pub fn init(a: &mut Adapter) -> Result<(), DriverError> {
    let id = id(a)?;
    if id != M88E1011_ID && id != M88E1000_ID {
        return Err(DriverError::UnknownPhy { id });
    }
    a.info.phy_id = id;
    setup_link(a)
}

/// Programs the MAC and PHY for the requested link: auto-negotiation with the advertised
/// modes and pause bits, or forced speed and duplex (SDM 8, "Link Configuration").
pub fn setup_link(a: &Adapter) -> Result<(), DriverError> {
    let req = a.conf.link;
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
        let p = a.conf.pause;
        if p.autoneg {
            match (p.rx_pause, p.tx_pause) {
                (true, _) => anar |= anar::PAUSE | if p.tx_pause { 0 } else { anar::ASM_DIR },
                (false, true) => anar |= anar::ASM_DIR,
                (false, false) => {}
            }
        }
        write(a, ANAR, anar)?;
        let gcr = if req.advertise & ADV_1000_FULL != 0 {
            gcr::FD1000
        } else {
            0
        };
        write(a, GCR, gcr)?;
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
            1000 => (bmcr::SPEED_MSB, 2 << 8),
            s => {
                return Err(DriverError::invalid(
                    "forced speed",
                    format!("{s} Mb/s: use 10, 100 or 1000"),
                ))
            }
        };
        if req.speed == 1000 && !req.full_duplex {
            return Err(DriverError::invalid(
                "forced duplex",
                "1000 Mb/s half duplex is not supported",
            ));
        }
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
