//! The ethtool operations. Each is an `#[upcall]` (its body runs in the user half) over
//! `&Adapter` / `&mut Adapter` with `Marshal`-able arguments; getters return `Result` so
//! that a dead user half is reported to the kernel-half caller.

use microdriver_rt::upcall;
use microdriver_rt::Marshal;

use crate::adapter::{Adapter, Coalesce, LinkRequest, PauseParam};
use crate::config::{self, RingParam};
use crate::eeprom;
use crate::error::DriverError;
use crate::features::{self, FeatureRequest, FeatureState};
use crate::led;
use crate::netstats::{self, NetStats};
use crate::phy;
use crate::regs::phy::{anar, bmsr, gsr, pscr, pssr, ANLPAR, BMCR, BMSR, GSR, PSCR, PSSR};
use crate::regs::{self, status, STATUS};
use crate::selftest;
use crate::stats;
use crate::wol;

pub use crate::led::IdState;
pub use crate::wol::{WAKE_BCAST, WAKE_MAGIC, WAKE_MCAST, WAKE_PHY, WAKE_UCAST};

/// Driver information.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct DrvInfo {
    /// Driver name.
    pub driver: String,
    /// Driver version.
    pub version: String,
    /// The part.
    pub part: String,
    /// Bus information (PCI ids).
    pub bus_info: String,
    /// The host bus as STATUS reports it (e.g. `PCI-X:100-133MHz:64-bit`, see
    /// [`crate::bus::BusInfo::describe`]).
    pub bus: String,
    /// Number of ethtool statistics.
    pub n_stats: u32,
    /// Number of self-tests.
    pub testinfo_len: u32,
    /// Register dump length in 32-bit words.
    pub regdump_len: u32,
    /// EEPROM length in bytes.
    pub eedump_len: u32,
    /// The board's PBA number from the EEPROM (words 8-9, e.g. `c91016-006`): what
    /// identifies the adapter build, as Linux's e1000 logs it at probe.
    pub pba: String,
}

/// Driver information.
#[upcall]
pub fn get_drvinfo(a: &Adapter) -> Result<DrvInfo, DriverError> {
    Ok(DrvInfo {
        driver: "e1000".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        part: a.info.mac_type.name().into(),
        bus_info: format!("{:04x}:{:04x}", a.info.vendor, a.info.device),
        bus: a.info.bus.describe(),
        n_stats: stats::strings().len() as u32,
        testinfo_len: selftest::NAMES.len() as u32,
        regdump_len: regdump_layout().len() as u32,
        eedump_len: eeprom::len_bytes(a),
        pba: a.info.eeprom.pba_string(),
    })
}

/// The register dump's layout version (bits 31:24 of [`RegDump::version`]). Version 1
/// was the MAC registers alone; version 2 appends [`DUMP_PHY_REGS`].
pub const REGDUMP_LAYOUT: u32 = 2;

/// The PHY registers at the end of the dump, after [`regs::DUMP_REGS`]: what Linux's e1000
/// appends for an M88 PHY (and ethtool decodes): control, the PHY specific control
/// (polarity correction, MDI mode, extended 10BASE-T distance) and status (polarity,
/// MDI-X, cable length, speed, duplex) registers 16 and 17, and the 1000BASE-T status
/// register 10 (local and remote receiver status). BMSR is left out: reading it releases
/// its latched-low link bit, which the watchdog relies on.
pub const DUMP_PHY_REGS: [(u32, &str); 4] = [
    (BMCR, "PHY_BMCR"),
    (PSCR, "PHY_PSCR"),
    (PSSR, "PHY_PSSR"),
    (GSR, "PHY_1000T_STATUS"),
];

/// Where a register dump word comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpSource {
    /// A MAC register at this BAR0 offset.
    Mac(u32),
    /// A PHY register (MDIC) with this number; the word holds its 16 bits.
    Phy(u32),
}

/// The dump's words in order, with their names: [`regs::DUMP_REGS`], then
/// [`DUMP_PHY_REGS`].
pub fn regdump_layout() -> Vec<(DumpSource, &'static str)> {
    regs::DUMP_REGS
        .iter()
        .map(|&(off, name)| (DumpSource::Mac(off), name))
        .chain(
            DUMP_PHY_REGS
                .iter()
                .map(|&(reg, name)| (DumpSource::Phy(reg), name)),
        )
        .collect()
}

/// A register dump (`ethtool -d`).
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct RegDump {
    /// [`REGDUMP_LAYOUT`] << 24 | PCI revision << 16 | PCI device id (as Linux's e1000
    /// versions its dump, so a reader knows the part and the layout).
    pub version: u32,
    /// One word per [`regdump_layout`] entry.
    pub values: Vec<u32>,
}

/// What the M88 PHY registers of a dump say about the cable (as `ethtool -d` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhyDiag {
    /// Cable length estimate in metres, `(low, high)`; `high` is `None` for "over 140 m"
    /// (PSSR bits 9:7, meaningful at 1000 Mb/s).
    pub cable_length_m: (u32, Option<u32>),
    /// The receive pair's polarity is reversed (PSSR bit 1).
    pub polarity_reversed: bool,
    /// The PHY resolved to MDI-X (PSSR bit 6).
    pub mdix: bool,
    /// Polarity reversal correction is enabled (PSCR bit 1 clear).
    pub polarity_correction: bool,
    /// Extended 10BASE-T distance is on (PSCR bit 7).
    pub ext_10bt_distance: bool,
    /// 1000BASE-T local receiver OK (1000T status bit 13).
    pub local_rx_ok: bool,
    /// 1000BASE-T remote receiver OK (1000T status bit 12).
    pub remote_rx_ok: bool,
}

impl RegDump {
    /// The layout version.
    pub fn layout(&self) -> u32 {
        self.version >> 24
    }

    /// The word named `name`, if the layout has it.
    pub fn get(&self, name: &str) -> Option<u32> {
        let i = regdump_layout().iter().position(|(_, n)| *n == name)?;
        self.values.get(i).copied()
    }

    /// Decodes the PHY words; `None` if the dump is not of layout 2.
    pub fn phy_diag(&self) -> Option<PhyDiag> {
        if self.layout() != REGDUMP_LAYOUT {
            return None;
        }
        let s = self.get("PHY_PSSR")? as u16;
        let c = self.get("PHY_PSCR")? as u16;
        let g = self.get("PHY_1000T_STATUS")? as u16;
        let cable = match (s & pssr::CABLE_LENGTH_MASK) >> pssr::CABLE_LENGTH_SHIFT {
            0 => (0, Some(50)),
            1 => (50, Some(80)),
            2 => (80, Some(110)),
            3 => (110, Some(140)),
            _ => (140, None),
        };
        Some(PhyDiag {
            cable_length_m: cable,
            polarity_reversed: s & pssr::REV_POLARITY != 0,
            mdix: s & pssr::MDIX != 0,
            polarity_correction: c & pscr::POLARITY_REVERSAL_DISABLE == 0,
            ext_10bt_distance: c & pscr::EXT_10BT_DISTANCE != 0,
            local_rx_ok: g & regs::phy::gsr::LOCAL_RX_OK != 0,
            remote_rx_ok: g & regs::phy::gsr::REMOTE_RX_OK != 0,
        })
    }
}

/// The register dump: the words of [`regdump_layout`], versioned (see [`RegDump`]).
#[upcall]
pub fn get_regs(a: &Adapter) -> Result<RegDump, DriverError> {
    let rev = u32::from(crate::kernel::pci_read16(a.dev, regs::pci::REVISION_ID)? & 0xFF);
    // The MAC registers in one crossing, then the PHY's (each an MDIC exchange).
    let mut values = a.rd_many(regs::DUMP_REGS.iter().map(|&(off, _)| off).collect())?;
    for reg in DUMP_PHY_REGS.map(|(reg, _)| reg) {
        values.push(u32::from(phy::read(a, reg)?));
    }
    Ok(RegDump {
        version: REGDUMP_LAYOUT << 24 | rev << 16 | u32::from(a.info.device),
        values,
    })
}

/// The message level.
#[upcall]
pub fn get_msglevel(a: &Adapter) -> Result<u32, DriverError> {
    Ok(a.conf.msglevel)
}

/// Sets the message level.
#[upcall]
pub fn set_msglevel(a: &mut Adapter, level: u32) {
    a.conf.msglevel = level;
}

/// Restarts auto-negotiation.
#[upcall]
pub fn nway_reset(a: &Adapter) -> Result<(), DriverError> {
    phy::restart_autoneg(a)
}

/// Whether the link is up (STATUS.LU, read now).
#[upcall]
pub fn get_link(a: &Adapter) -> Result<bool, DriverError> {
    Ok(a.rd(STATUS)? & status::LU != 0)
}

/// Link settings: what is requested and what the link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct LinkSettings {
    /// The requested configuration.
    pub request: LinkRequest,
    /// Supported modes (`phy::ADV_*`).
    pub supported: u32,
    /// Link up.
    pub link_up: bool,
    /// Current speed in Mb/s (0 when down).
    pub speed: u32,
    /// Current duplex.
    pub full_duplex: bool,
    /// Current crossover (ethtool `eth_tp_mdix`: `phy::ETH_TP_MDI`, `ETH_TP_MDI_X`, or
    /// `ETH_TP_MDI_INVALID` with no link); the requested one is `request.mdix`.
    pub mdix: u8,
    /// What the link partner advertised, in ethtool's link-mode bits (`phy::ADV_*` and
    /// the `LP_*` bits here); 0 until auto-negotiation completes.
    pub lp_advertising: u32,
}

/// ethtool's `1000baseT_Half` link-mode bit (the parts do not offer it, partners may).
pub const LP_1000_HALF: u32 = 1 << 4;
/// ethtool's `Autoneg` link-mode bit: the partner acknowledged our base page.
pub const LP_AUTONEG: u32 = 1 << 6;
/// ethtool's `Pause` link-mode bit (symmetric PAUSE).
pub const LP_PAUSE: u32 = 1 << 13;
/// ethtool's `Asym_Pause` link-mode bit (asymmetric PAUSE direction).
pub const LP_ASYM_PAUSE: u32 = 1 << 14;

/// ANLPAR (IEEE 802.3 28.2.1.2, register 5) bit, ethtool link-mode bit.
const ANLPAR_MODES: [(u16, u32); 7] = [
    (anar::HD10, phy::ADV_10_HALF),
    (anar::FD10, phy::ADV_10_FULL),
    (anar::HD100, phy::ADV_100_HALF),
    (anar::FD100, phy::ADV_100_FULL),
    (anar::PAUSE, LP_PAUSE),
    (anar::ASM_DIR, LP_ASYM_PAUSE),
    (anar::ACK, LP_AUTONEG),
];

/// The ethtool link-mode bits of a partner's base page (ANLPAR) and its 1000BASE-T
/// abilities (1000BASE-T status, register 10, bits 11:10; IEEE 802.3 40.5.1.1).
pub fn lp_modes(anlpar: u16, gsr_v: u16) -> u32 {
    let mut m = ANLPAR_MODES
        .iter()
        .filter(|(bit, _)| anlpar & bit != 0)
        .fold(0, |acc, (_, mode)| acc | mode);
    if gsr_v & gsr::LP_FD1000 != 0 {
        m |= phy::ADV_1000_FULL;
    }
    if gsr_v & gsr::LP_HD1000 != 0 {
        m |= LP_1000_HALF;
    }
    m
}

/// What the link partner advertised, read from the PHY when auto-negotiation has
/// completed (BMSR.AN_COMPLETE; before that ANLPAR is stale or empty): 0 otherwise. The
/// 1000BASE-T status read counts its idle errors (cleared by the read) into the PHY
/// statistics.
pub fn lp_advertising(a: &mut Adapter) -> Result<u32, DriverError> {
    if phy::read(a, BMSR)? & bmsr::AN_COMPLETE == 0 {
        return Ok(0);
    }
    let anlpar = phy::read(a, ANLPAR)?;
    let g = phy::info::read_gsr(a)?;
    Ok(lp_modes(anlpar, g))
}

/// The link settings (speed and duplex from STATUS, read now; the partner's abilities
/// from the PHY, see [`lp_advertising`]).
#[upcall]
pub fn get_link_ksettings(a: &mut Adapter) -> Result<LinkSettings, DriverError> {
    let (up, speed, fd) = crate::link::decode_status(a.rd(STATUS)?);
    Ok(LinkSettings {
        request: a.conf.link,
        supported: phy::ADV_ALL,
        link_up: up,
        speed: if up { speed } else { 0 },
        full_duplex: up && fd,
        mdix: if up {
            phy::info::mdix_state(a)?
        } else {
            phy::ETH_TP_MDI_INVALID
        },
        lp_advertising: lp_advertising(a)?,
    })
}

/// Sets auto-negotiation (with advertised modes) or a forced speed and duplex, and the
/// MDI crossover mode. Forced 1000/full becomes auto-negotiation advertising only that
/// ([`phy::gigabit_negotiated`]). An invalid request changes nothing.
#[upcall]
pub fn set_link_ksettings(a: &mut Adapter, req: &LinkRequest) -> Result<(), DriverError> {
    let old = a.conf.link;
    a.conf.link = phy::gigabit_negotiated(*req);
    if let Err(e) = phy::setup_link(a) {
        a.conf.link = old;
        return Err(e);
    }
    Ok(())
}

/// Ring sizes.
#[upcall]
pub fn get_ringparam(a: &Adapter) -> Result<RingParam, DriverError> {
    Ok(config::get_ringparam(a))
}

/// Resizes the rings.
#[upcall]
pub fn set_ringparam(a: &mut Adapter, p: &RingParam) -> Result<(), DriverError> {
    config::set_ringparam(a, p)
}

/// Pause parameters.
#[upcall]
pub fn get_pauseparam(a: &Adapter) -> Result<PauseParam, DriverError> {
    Ok(a.conf.pause)
}

/// Sets pause parameters: CTRL.RFCE/TFCE now, and the advertisement (restarting
/// auto-negotiation) when pause is negotiated.
#[upcall]
pub fn set_pauseparam(a: &mut Adapter, p: &PauseParam) -> Result<(), DriverError> {
    a.conf.pause = *p;
    crate::link::apply_flow_control(a)?;
    if a.conf.link.autoneg {
        phy::setup_link(a)?;
    }
    Ok(())
}

/// Interrupt moderation.
#[upcall]
pub fn get_coalesce(a: &Adapter) -> Result<Coalesce, DriverError> {
    Ok(a.conf.coalesce)
}

/// Sets interrupt moderation (microseconds up to what 65535 units of 1.024 us reach:
/// 67108, so a value `get_coalesce` reports is always accepted back; rates 0 or
/// 100..=100000 interrupts per second).
#[upcall]
pub fn set_coalesce(a: &mut Adapter, c: &Coalesce) -> Result<(), DriverError> {
    let max_us = (65_535u32 * 1024).div_ceil(1000);
    for (what, v) in [
        ("rx-usecs", c.rx_usecs),
        ("rx-usecs-abs", c.rx_abs_usecs),
        ("tx-usecs", c.tx_usecs),
        ("tx-usecs-abs", c.tx_abs_usecs),
    ] {
        if v > max_us {
            return Err(DriverError::invalid(what, format!("{v}: at most {max_us}")));
        }
    }
    if c.max_irq_rate != 0 && !(100..=100_000).contains(&c.max_irq_rate) {
        return Err(DriverError::invalid(
            "interrupt rate",
            format!(
                "{}: use 0 (no limit) or 100..=100000 per second",
                c.max_irq_rate
            ),
        ));
    }
    a.conf.coalesce = *c;
    // The kernel half first: turning adaptive mode off, it stops writing ITR before the
    // fixed rate is programmed below (so the two never fight); turning it on, it takes ITR.
    crate::kernel::set_hot_params(a.dev, &config::hot_params(a))?;
    config::apply_coalesce(a)?;
    Ok(())
}

/// The EEPROM's size in bytes (`ethtool -e` reads this many).
#[upcall]
pub fn get_eeprom_len(a: &Adapter) -> Result<u32, DriverError> {
    Ok(eeprom::len_bytes(a))
}

/// The "magic" that ties an EEPROM dump to its part and that a write must quote back:
/// vendor id | device id << 16 (as Linux's e1000 sets it).
pub fn eeprom_magic(a: &Adapter) -> u32 {
    u32::from(a.info.vendor) | u32::from(a.info.device) << 16
}

/// Reads EEPROM bytes `offset..offset + len` (byte addressing over little-endian words).
#[upcall]
pub fn get_eeprom(a: &Adapter, offset: u32, len: u32) -> Result<Vec<u8>, DriverError> {
    eeprom::read_bytes(a, offset, len)
}

/// Writes EEPROM bytes at `offset` (`ethtool -E`): `magic` must be [`eeprom_magic`]; the
/// words touched are read, modified and written, then the checksum word is updated (see
/// [`eeprom::write_bytes`], which refuses the checksum word itself and ranges past the
/// end). A refused write changes nothing.
#[upcall]
pub fn set_eeprom(a: &Adapter, magic: u32, offset: u32, data: &[u8]) -> Result<(), DriverError> {
    let want = eeprom_magic(a);
    if magic != want {
        return Err(DriverError::invalid(
            "EEPROM magic",
            format!(
                "{magic:#010x} does not match this {} ({want:#010x}, vendor | device << 16)",
                a.info.mac_type.name()
            ),
        ));
    }
    eeprom::write_bytes(a, offset, data)
}

/// Runs the self-tests (see [`selftest`]): results in [`selftest::NAMES`] order, 0 = pass.
#[upcall]
pub fn self_test(a: &mut Adapter, offline: bool) -> Result<Vec<u64>, DriverError> {
    selftest::run(a, offline)
}

/// Statistics names.
#[upcall]
pub fn get_strings() -> Result<Vec<String>, DriverError> {
    Ok(stats::strings())
}

/// Statistics values.
#[upcall]
pub fn get_stats(a: &mut Adapter) -> Result<Vec<u64>, DriverError> {
    stats::values(a)
}

/// The feature flags (`ethtool -k`), in ethtool's order (see [`features`]).
#[upcall]
pub fn get_features(a: &Adapter) -> Result<Vec<FeatureState>, DriverError> {
    Ok(features::list(a))
}

/// Changes feature flags (`ethtool -K`): the whole request is checked first (unknown
/// names, fixed features, TSO without scatter-gather and transmit checksumming refuse it
/// and change nothing). Returns the flags afterwards.
#[upcall]
pub fn set_features(
    a: &mut Adapter,
    req: &[FeatureRequest],
) -> Result<Vec<FeatureState>, DriverError> {
    features::set(a, req)
}

/// The net-device statistics (`rtnl_link_stats64`, see [`netstats`]).
#[upcall]
pub fn get_stats64(a: &mut Adapter) -> Result<NetStats, DriverError> {
    netstats::get(a)
}

/// Wake-on-LAN settings (`ethtool <dev>`'s "Supports Wake-on" / "Wake-on").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct WolInfo {
    /// The `WAKE_*` modes this part supports ([`wol::supported`]).
    pub supported: u32,
    /// The modes armed at shutdown.
    pub wolopts: u32,
    /// The wake-up status (WUS) found at probe, 0 if no wake-up event was pending.
    pub wake_status: u32,
    /// The `WAKE_*` modes whose filters matched in `wake_status`.
    pub woken_by: u32,
}

/// Wake-on-LAN settings and the last wake-up status.
#[upcall]
pub fn get_wol(a: &Adapter) -> Result<WolInfo, DriverError> {
    Ok(WolInfo {
        supported: wol::supported(a.info.mac_type),
        wolopts: a.conf.wol,
        wake_status: a.info.wake_status,
        woken_by: wol::modes_of(a.info.wake_status),
    })
}

/// Chooses the wake modes (ethtool `WAKE_*`), armed at shutdown ([`wol::arm`]). Modes the
/// part does not support are refused, naming them.
#[upcall]
pub fn set_wol(a: &mut Adapter, wolopts: u32) -> Result<(), DriverError> {
    wol::check(a.info.mac_type, wolopts)?;
    a.conf.wol = wolopts;
    Ok(())
}

/// Identify (`ethtool -p`), one phase at a time as ethtool's core drives it (see
/// [`led`]): [`IdState::Active`] sets the LEDs up and returns how many on/off cycles per
/// second the caller should run; [`IdState::On`] and [`IdState::Off`] are the blink's
/// phases; [`IdState::Inactive`] restores the LEDs. The others return 0.
#[upcall]
pub fn identify(a: &mut Adapter, state: IdState) -> Result<u32, DriverError> {
    match state {
        IdState::Active => {
            led::setup(a)?;
            return Ok(led::BLINKS_PER_SECOND);
        }
        IdState::On => led::led_on(a)?,
        IdState::Off => led::led_off(a)?,
        IdState::Inactive => led::cleanup(a)?,
    }
    Ok(0)
}
