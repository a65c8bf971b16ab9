//! Load-time driver parameters, as Linux's e1000 module parameters (`TxDescriptors`,
//! `Speed`, `InterruptThrottleRate`, ...), with Linux's syntax: `Name=v`, or `Name=v0,v1,...`
//! with one value per board (the board index picks the value; a board past the list's end
//! keeps the driver's default).
//!
//! The values and ranges are Linux's (`e1000_param.c`, the e1000 documentation), with one
//! difference: Linux replaces a bad value by the default and logs a warning; here a bad
//! value is an error that names the parameter, the value and what to use instead, and
//! nothing is applied. Three steps:
//!
//! 1. [`Params::parse`] reads `Name=value` arguments (part-independent ranges);
//! 2. [`check`] validates them against the probed part (per-part limits: the 82544GC has
//!    no ITR, RADV or TADV; Smart Power Down needs an IGP PHY, which none of the supported
//!    parts has) and against each other (`AutoNeg` with `Speed`/`Duplex`);
//! 3. [`apply`] turns them into the adapter's [`Config`]; [`apply_at_probe`] (an upcall,
//!    run by [`crate::Netdev::start`] after probe and before anything opens the device)
//!    does both and programs the link.
//!
//! The delay parameters are in the timers' units of 1.024 us (as Linux writes them to the
//! registers unchanged); the configuration keeps microseconds, so they are converted such
//! that the register gets exactly the value given.

use std::collections::HashSet;

use microdriver_rt::upcall;
use microdriver_rt::Marshal;

use crate::adapter::{Adapter, Config, DeviceInfo, MacType};
use crate::error::DriverError;
use crate::hot::itr::{LOWEST_LATENCY_RATE, LOW_LATENCY_RATE};
use crate::kernel::{MAX_RING, MIN_RING};
use crate::phy::{ADV_1000_FULL, ADV_100_FULL, ADV_100_HALF, ADV_10_FULL, ADV_10_HALF, ADV_ALL};

/// Ring sizes must be a multiple of this many descriptors (the 128-byte alignment of
/// TDLEN/RDLEN, SDM 13.4.28 and 13.4.39: 8 descriptors of 16 bytes).
pub const DESCRIPTOR_MULTIPLE: u32 = 8;
/// Largest value of the four delay timers (RDTR, RADV, TIDV, TADV: 16 bits).
pub const MAX_DELAY: u32 = 0xFFFF;
/// Smallest fixed interrupt rate (interrupts per second).
pub const MIN_ITR: u32 = 100;
/// Largest fixed interrupt rate.
pub const MAX_ITR: u32 = 100_000;
/// `InterruptThrottleRate` special value: no throttling (ITR = 0).
pub const ITR_OFF: u32 = 0;
/// `InterruptThrottleRate` special value: dynamic mode (rates up to the lowest-latency
/// class's).
pub const ITR_DYNAMIC: u32 = 1;
/// `InterruptThrottleRate` special value: dynamic conservative mode (the lowest-latency
/// class is held at the low-latency rate; Linux's default).
pub const ITR_DYNAMIC_CONSERVATIVE: u32 = 3;
/// `InterruptThrottleRate` special value: Linux's simplified 2000-8000 mode (not
/// implemented here: refused with the alternatives).
pub const ITR_SIMPLIFIED: u32 = 4;
/// `Duplex`: half.
pub const DUPLEX_HALF: u32 = 1;
/// `Duplex`: full.
pub const DUPLEX_FULL: u32 = 2;
/// `FlowControl`: none.
pub const FC_NONE: u32 = 0;
/// `FlowControl`: receive PAUSE frames only.
pub const FC_RX_PAUSE: u32 = 1;
/// `FlowControl`: send PAUSE frames only.
pub const FC_TX_PAUSE: u32 = 2;
/// `FlowControl`: both directions.
pub const FC_FULL: u32 = 3;

/// The parameters for one board; `None` keeps the driver's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct Params {
    /// `TxDescriptors`: transmit ring size.
    pub tx_descriptors: Option<u32>,
    /// `RxDescriptors`: receive ring size.
    pub rx_descriptors: Option<u32>,
    /// `Speed`: 0 (auto), 10, 100 or 1000 Mb/s.
    pub speed: Option<u32>,
    /// `Duplex`: 0 (auto), 1 (half) or 2 (full).
    pub duplex: Option<u32>,
    /// `AutoNeg`: the advertised modes (0x01 10/half, 0x02 10/full, 0x04 100/half,
    /// 0x08 100/full, 0x20 1000/full).
    pub autoneg: Option<u32>,
    /// `FlowControl`: 0 none, 1 receive only, 2 transmit only, 3 both.
    pub flow_control: Option<u32>,
    /// `XsumRX`: receive checksum offload, 0 or 1.
    pub xsum_rx: Option<u32>,
    /// `TxIntDelay`: TIDV, units of 1.024 us.
    pub tx_int_delay: Option<u32>,
    /// `TxAbsIntDelay`: TADV, units of 1.024 us (82540 and later).
    pub tx_abs_int_delay: Option<u32>,
    /// `RxIntDelay`: RDTR, units of 1.024 us.
    pub rx_int_delay: Option<u32>,
    /// `RxAbsIntDelay`: RADV, units of 1.024 us (82540 and later).
    pub rx_abs_int_delay: Option<u32>,
    /// `InterruptThrottleRate`: 0 off, 1 dynamic, 3 dynamic conservative, or a fixed
    /// 100..=100000 interrupts per second (82540 and later).
    pub interrupt_throttle_rate: Option<u32>,
    /// `SmartPowerDownEnable`: 0 or 1 (IGP PHYs only).
    pub smart_power_down: Option<u32>,
    /// `copybreak`: one value for every board (Linux's is module-wide).
    pub copybreak: Option<u32>,
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Param {
    /// `TxDescriptors`.
    TxDescriptors,
    /// `RxDescriptors`.
    RxDescriptors,
    /// `Speed`.
    Speed,
    /// `Duplex`.
    Duplex,
    /// `AutoNeg`.
    AutoNeg,
    /// `FlowControl`.
    FlowControl,
    /// `XsumRX`.
    XsumRx,
    /// `TxIntDelay`.
    TxIntDelay,
    /// `TxAbsIntDelay`.
    TxAbsIntDelay,
    /// `RxIntDelay`.
    RxIntDelay,
    /// `RxAbsIntDelay`.
    RxAbsIntDelay,
    /// `InterruptThrottleRate`.
    InterruptThrottleRate,
    /// `SmartPowerDownEnable`.
    SmartPowerDownEnable,
    /// `copybreak`.
    Copybreak,
}

impl Param {
    /// Every parameter, in Linux's order.
    pub const ALL: [Param; 14] = [
        Param::TxDescriptors,
        Param::RxDescriptors,
        Param::Speed,
        Param::Duplex,
        Param::AutoNeg,
        Param::FlowControl,
        Param::XsumRx,
        Param::TxIntDelay,
        Param::TxAbsIntDelay,
        Param::RxIntDelay,
        Param::RxAbsIntDelay,
        Param::InterruptThrottleRate,
        Param::SmartPowerDownEnable,
        Param::Copybreak,
    ];

    /// The parameter's name, as Linux spells it.
    pub fn name(self) -> &'static str {
        match self {
            Param::TxDescriptors => "TxDescriptors",
            Param::RxDescriptors => "RxDescriptors",
            Param::Speed => "Speed",
            Param::Duplex => "Duplex",
            Param::AutoNeg => "AutoNeg",
            Param::FlowControl => "FlowControl",
            Param::XsumRx => "XsumRX",
            Param::TxIntDelay => "TxIntDelay",
            Param::TxAbsIntDelay => "TxAbsIntDelay",
            Param::RxIntDelay => "RxIntDelay",
            Param::RxAbsIntDelay => "RxAbsIntDelay",
            Param::InterruptThrottleRate => "InterruptThrottleRate",
            Param::SmartPowerDownEnable => "SmartPowerDownEnable",
            Param::Copybreak => "copybreak",
        }
    }

    /// The parameter called `name` (exact, case-sensitive as Linux's; a name that differs
    /// only in case is pointed at the right spelling).
    pub fn from_name(name: &str) -> Result<Param, DriverError> {
        if let Some(p) = Param::ALL.into_iter().find(|p| p.name() == name) {
            return Ok(p);
        }
        let hint = match Param::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(name))
        {
            Some(p) => format!("did you mean {}?", p.name()),
            None => format!("use one of {}", Param::names().join(", ")),
        };
        Err(DriverError::invalid(
            &format!("parameter name {name:?}"),
            format!("no such e1000 parameter: {hint}"),
        ))
    }

    /// Every parameter's name.
    pub fn names() -> Vec<&'static str> {
        Param::ALL.iter().map(|p| p.name()).collect()
    }

    /// Whether the parameter takes one value per board (all but `copybreak`).
    pub fn per_board(self) -> bool {
        self != Param::Copybreak
    }

    /// The parameter's value in `p`.
    pub fn get(self, p: &Params) -> Option<u32> {
        let mut q = *p;
        *self.slot(&mut q)
    }

    fn slot(self, p: &mut Params) -> &mut Option<u32> {
        match self {
            Param::TxDescriptors => &mut p.tx_descriptors,
            Param::RxDescriptors => &mut p.rx_descriptors,
            Param::Speed => &mut p.speed,
            Param::Duplex => &mut p.duplex,
            Param::AutoNeg => &mut p.autoneg,
            Param::FlowControl => &mut p.flow_control,
            Param::XsumRx => &mut p.xsum_rx,
            Param::TxIntDelay => &mut p.tx_int_delay,
            Param::TxAbsIntDelay => &mut p.tx_abs_int_delay,
            Param::RxIntDelay => &mut p.rx_int_delay,
            Param::RxAbsIntDelay => &mut p.rx_abs_int_delay,
            Param::InterruptThrottleRate => &mut p.interrupt_throttle_rate,
            Param::SmartPowerDownEnable => &mut p.smart_power_down,
            Param::Copybreak => &mut p.copybreak,
        }
    }

    /// What the parameter takes on every supported part, as an error message says it.
    pub fn allowed(self) -> String {
        match self {
            Param::TxDescriptors | Param::RxDescriptors => format!(
                "a multiple of {DESCRIPTOR_MULTIPLE} in {MIN_RING}..={MAX_RING} (default 256)"
            ),
            Param::Speed => "0 (auto-negotiate), 10, 100 or 1000 (Mb/s)".into(),
            Param::Duplex => "0 (auto-negotiate), 1 (half) or 2 (full)".into(),
            Param::AutoNeg => format!(
                "a non-empty sum of 0x01 (10/half), 0x02 (10/full), 0x04 (100/half), \
                 0x08 (100/full) and 0x20 (1000/full), at most {ADV_ALL:#04x}"
            ),
            Param::FlowControl => {
                "0 (none), 1 (receive only), 2 (transmit only) or 3 (both)".into()
            }
            Param::XsumRx | Param::SmartPowerDownEnable => "0 (off) or 1 (on)".into(),
            Param::TxIntDelay | Param::TxAbsIntDelay | Param::RxIntDelay | Param::RxAbsIntDelay => {
                format!("0..={MAX_DELAY} (units of 1.024 us; 0 is off)")
            }
            Param::InterruptThrottleRate => format!(
                "0 (off), 1 (dynamic), 3 (dynamic conservative) or a fixed \
                 {MIN_ITR}..={MAX_ITR} interrupts per second"
            ),
            Param::Copybreak => "0..=4294967295 (bytes)".into(),
        }
    }

    /// Checks `v` against the parameter's range on every supported part.
    pub fn check_value(self, v: u32) -> Result<(), DriverError> {
        let ok = match self {
            Param::TxDescriptors | Param::RxDescriptors => {
                v % DESCRIPTOR_MULTIPLE == 0 && (MIN_RING..=MAX_RING).contains(&v)
            }
            Param::Speed => matches!(v, 0 | 10 | 100 | 1000),
            Param::Duplex => v <= DUPLEX_FULL,
            Param::AutoNeg => v != 0 && v & !ADV_ALL == 0,
            Param::FlowControl => v <= FC_FULL,
            Param::XsumRx | Param::SmartPowerDownEnable => v <= 1,
            Param::TxIntDelay | Param::TxAbsIntDelay | Param::RxIntDelay | Param::RxAbsIntDelay => {
                v <= MAX_DELAY
            }
            Param::InterruptThrottleRate => {
                matches!(v, ITR_OFF | ITR_DYNAMIC | ITR_DYNAMIC_CONSERVATIVE)
                    || (MIN_ITR..=MAX_ITR).contains(&v)
            }
            Param::Copybreak => true,
        };
        if ok {
            return Ok(());
        }
        let mut why = format!("use {}", self.allowed());
        match self {
            Param::TxDescriptors | Param::RxDescriptors if (MIN_RING..=MAX_RING).contains(&v) => {
                let down = v - v % DESCRIPTOR_MULTIPLE;
                let up = down + DESCRIPTOR_MULTIPLE;
                let near: Vec<String> = [down, up]
                    .into_iter()
                    .filter(|n| (MIN_RING..=MAX_RING).contains(n))
                    .map(|n| n.to_string())
                    .collect();
                why.push_str(&format!("; nearest: {}", near.join(" or ")));
            }
            Param::InterruptThrottleRate if v == ITR_SIMPLIFIED => why.push_str(
                "; 4 (Linux's simplified 2000-8000 mode) is not implemented by this driver: \
                 3 is the closest",
            ),
            _ => {}
        }
        Err(bad(self, v, why))
    }
}

/// The error for `param=value`.
fn bad(param: Param, value: u32, why: impl Into<String>) -> DriverError {
    let shown = if param == Param::AutoNeg {
        format!("{value:#04x}")
    } else {
        value.to_string()
    };
    DriverError::invalid(&format!("parameter {}={shown}", param.name()), why)
}

/// Parses one value: decimal, or hexadecimal with `0x` (as `AutoNeg=0x2F` is usually
/// written).
fn parse_value(param: Param, s: &str) -> Result<u32, DriverError> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => t.parse::<u32>(),
    };
    r.map_err(|_| {
        DriverError::invalid(
            &format!("parameter {}={s:?}", param.name()),
            format!(
                "not a number (decimal, or hexadecimal with 0x): use {}",
                param.allowed()
            ),
        )
    })
}

impl Params {
    /// Parses `Name=value` arguments for board `board` (0 for the first). Each argument
    /// sets one parameter, with one value, or a comma-separated list with one value per
    /// board (every value in the list is checked; a board past its end keeps the
    /// default). A parameter may be given once. The link parameters are checked together
    /// too (`AutoNeg` with `Speed` or `Duplex`, 1000 Mb/s half duplex); the checks that
    /// need the part are [`check`]'s.
    pub fn parse<'a>(
        args: impl IntoIterator<Item = &'a str>,
        board: usize,
    ) -> Result<Params, DriverError> {
        let mut p = Params::default();
        let mut seen = HashSet::new();
        for arg in args {
            let param = p.parse_one(arg, board)?;
            if !seen.insert(param) {
                return Err(DriverError::invalid(
                    &format!("parameter {}", param.name()),
                    "given more than once: give it once (with a comma-separated list for \
                     several boards)",
                ));
            }
        }
        check_ranges(&p)?;
        Ok(p)
    }

    /// Parses one `Name=value` (or `Name=v0,v1,...`) argument into `self` for board
    /// `board`, returning which parameter it was.
    pub fn parse_one(&mut self, arg: &str, board: usize) -> Result<Param, DriverError> {
        let (name, list) = arg.split_once('=').ok_or_else(|| {
            DriverError::invalid(
                &format!("parameter {arg:?}"),
                "expected Name=value (e.g. TxDescriptors=512, or Speed=100,1000 for two \
                 boards)",
            )
        })?;
        let param = Param::from_name(name.trim())?;
        let mut values = Vec::new();
        for item in list.split(',') {
            if item.trim().is_empty() {
                return Err(DriverError::invalid(
                    &format!("parameter {}={list}", param.name()),
                    format!("a value is missing: use {}", param.allowed()),
                ));
            }
            let v = parse_value(param, item)?;
            param.check_value(v)?;
            values.push(v);
        }
        if !param.per_board() && values.len() > 1 {
            return Err(DriverError::invalid(
                &format!("parameter {}={list}", param.name()),
                "takes one value for every board, not a list",
            ));
        }
        let v = if param.per_board() {
            values.get(board).copied()
        } else {
            values.first().copied()
        };
        if v.is_some() {
            *param.slot(self) = v;
        }
        Ok(param)
    }

    /// The parameters that are set, as `Name=value` (the form [`Params::parse`] reads).
    pub fn to_args(&self) -> Vec<String> {
        Param::ALL
            .into_iter()
            .filter_map(|p| p.get(self).map(|v| format!("{}={v}", p.name())))
            .collect()
    }

    /// Whether no parameter is set.
    pub fn is_empty(&self) -> bool {
        *self == Params::default()
    }
}

/// The ring sizes a part takes (Linux: 80..=256 before the 82544, 80..=4096 from it on; all
/// supported parts are 82544 or later).
pub fn descriptor_range(mac: MacType) -> (u32, u32) {
    match mac {
        MacType::I82540EM | MacType::I82545EM | MacType::I82544GC => (MIN_RING, MAX_RING),
    }
}

/// Whether the PHY with id `phy_id` is an Intel IGP PHY (the only kind with Smart Power
/// Down: 82541/82547 parts). The supported parts have Marvell M88 PHYs.
pub fn phy_has_smart_power_down(phy_id: u32) -> bool {
    // Intel's IGP01E1000 (0x02A80380) is the PHY family Linux enables Smart Power Down on.
    const IGP01E1000_ID: u32 = 0x02A8_0380;
    phy_id & !0xF == IGP01E1000_ID
}

/// Checks the parameters for the part `info` describes: every value against its range and
/// the part's limits (the 82544GC has no TADV, RADV or ITR; Smart Power Down needs an IGP
/// PHY), and the link parameters against each other. Returns notes on parameters that were
/// accepted but do nothing on this part (an "off" value for a feature it does not have).
pub fn check(p: &Params, info: &DeviceInfo) -> Result<Vec<String>, DriverError> {
    check_ranges(p)?;
    let mut notes = Vec::new();
    let part = info.mac_type.name();
    let (min, max) = descriptor_range(info.mac_type);
    for param in [Param::TxDescriptors, Param::RxDescriptors] {
        if let Some(v) = param.get(p) {
            if !(min..=max).contains(&v) {
                return Err(bad(
                    param,
                    v,
                    format!("the {part} takes a multiple of 8 in {min}..={max}"),
                ));
            }
        }
    }
    if !info.mac_type.has_itr() {
        for (param, reg) in [
            (Param::TxAbsIntDelay, "TADV"),
            (Param::RxAbsIntDelay, "RADV"),
            (Param::InterruptThrottleRate, "ITR"),
        ] {
            match param.get(p) {
                Some(0) => notes.push(format!(
                    "{}=0: the {part} has no {reg} (82540 and later only); nothing to turn off",
                    param.name()
                )),
                Some(v) => {
                    return Err(bad(
                        param,
                        v,
                        format!(
                            "the {part} has no {reg} register (82540 and later only): remove \
                             {} or set it to 0",
                            param.name()
                        ),
                    ))
                }
                None => {}
            }
        }
    }
    match p.smart_power_down {
        Some(1) if !phy_has_smart_power_down(info.phy_id) => {
            return Err(bad(
                Param::SmartPowerDownEnable,
                1,
                format!(
                    "Smart Power Down needs an Intel IGP PHY (82541/82547); this {part} has a \
                     Marvell M88 PHY ({:#010x}): remove SmartPowerDownEnable or set it to 0",
                    info.phy_id
                ),
            ))
        }
        Some(0) => notes.push(format!(
            "SmartPowerDownEnable=0: not applicable to the {part}'s M88 PHY (it has no Smart \
             Power Down); nothing to turn off"
        )),
        _ => {}
    }
    if let Some(v) = p.copybreak {
        notes.push(format!(
            "copybreak={v}: recorded; this driver copies every received frame out of its ring, \
             so no frame is handed up in its DMA buffer whatever the length"
        ));
    }
    Ok(notes)
}

/// The part-independent checks: each value's range, and the link parameters together
/// (Linux ignores `AutoNeg` given with `Speed` or `Duplex`, and falls back to 1000/full
/// for 1000/half; both are errors here).
fn check_ranges(p: &Params) -> Result<(), DriverError> {
    for param in Param::ALL {
        if let Some(v) = param.get(p) {
            param.check_value(v)?;
        }
    }
    let (speed, duplex) = (p.speed.unwrap_or(0), p.duplex.unwrap_or(0));
    if let Some(an) = p.autoneg {
        if speed != 0 || duplex != 0 {
            return Err(bad(
                Param::AutoNeg,
                an,
                format!(
                    "AutoNeg chooses the advertised modes only while Speed and Duplex are 0 or \
                     not given (here Speed={speed}, Duplex={duplex}): drop AutoNeg, or Speed \
                     and Duplex"
                ),
            ));
        }
    }
    if speed == 1000 && duplex == DUPLEX_HALF {
        return Err(bad(
            Param::Duplex,
            duplex,
            "1000 Mb/s half duplex is not supported: use Duplex=2 or 0 with Speed=1000",
        ));
    }
    Ok(())
}

/// Microseconds for a delay of `units` of 1.024 us, rounded up so that the driver's
/// conversion back to units (rounding down) gives `units` again.
pub fn delay_units_to_usecs(units: u32) -> u32 {
    (u64::from(units) * 1024).div_ceil(1000) as u32
}

/// Applies the parameters to `conf` (after checking their ranges and combination; on an
/// error `conf` is untouched):
///
/// * `TxDescriptors`/`RxDescriptors`: the ring sizes;
/// * `Speed`/`Duplex`/`AutoNeg` as Linux's e1000 reads them: both 0 (or not given)
///   auto-negotiates, advertising `AutoNeg` (default all); a duplex alone auto-negotiates
///   that duplex's modes (half: 10 and 100; full: 10, 100 and 1000); 10 or 100 alone
///   auto-negotiates both duplexes at that speed; 10 or 100 with a duplex forces them;
///   1000 (alone or with full duplex) auto-negotiates 1000/full only, as 1000BASE-T needs
///   auto-negotiation (IEEE 802.3 clause 40);
/// * `FlowControl`: the pause directions (advertised when auto-negotiating);
/// * `XsumRX`: receive checksum offload;
/// * the delays, in microseconds, and `InterruptThrottleRate`: 0 fixes ITR at 0 (no
///   throttling), 1 turns adaptive throttling on with every traffic class's rate (up to
///   the lowest-latency rate), 3 adaptive with the lowest-latency class held at the
///   low-latency rate, 100..=100000 a fixed rate;
/// * `copybreak`.
///
/// `SmartPowerDownEnable` changes nothing (see [`check`]).
pub fn apply(p: &Params, conf: &mut Config) -> Result<(), DriverError> {
    check_ranges(p)?;
    let mut c = conf.clone();
    if let Some(n) = p.tx_descriptors {
        c.tx_ring = n;
    }
    if let Some(n) = p.rx_descriptors {
        c.rx_ring = n;
    }
    if p.speed.is_some() || p.duplex.is_some() || p.autoneg.is_some() {
        let link = &mut c.link;
        let (speed, duplex) = (p.speed.unwrap_or(0), p.duplex.unwrap_or(0));
        let autoneg = |link: &mut crate::adapter::LinkRequest, adv: u32| {
            link.autoneg = true;
            link.advertise = adv;
        };
        match (speed, duplex) {
            (0, 0) => autoneg(link, p.autoneg.unwrap_or(ADV_ALL)),
            (0, DUPLEX_HALF) => autoneg(link, ADV_10_HALF | ADV_100_HALF),
            (0, _) => autoneg(link, ADV_10_FULL | ADV_100_FULL | ADV_1000_FULL),
            (10, 0) => autoneg(link, ADV_10_HALF | ADV_10_FULL),
            (100, 0) => autoneg(link, ADV_100_HALF | ADV_100_FULL),
            (1000, _) => autoneg(link, ADV_1000_FULL),
            (s, d) => {
                link.autoneg = false;
                link.speed = s;
                link.full_duplex = d == DUPLEX_FULL;
            }
        }
    }
    if let Some(fc) = p.flow_control {
        c.pause.rx_pause = fc == FC_RX_PAUSE || fc == FC_FULL;
        c.pause.tx_pause = fc == FC_TX_PAUSE || fc == FC_FULL;
    }
    if let Some(v) = p.xsum_rx {
        c.rx_csum = v != 0;
    }
    let co = &mut c.coalesce;
    for (v, field) in [
        (p.tx_int_delay, &mut co.tx_usecs),
        (p.tx_abs_int_delay, &mut co.tx_abs_usecs),
        (p.rx_int_delay, &mut co.rx_usecs),
        (p.rx_abs_int_delay, &mut co.rx_abs_usecs),
    ] {
        if let Some(units) = v {
            *field = delay_units_to_usecs(units);
        }
    }
    match p.interrupt_throttle_rate {
        Some(ITR_OFF) => (co.adaptive, co.max_irq_rate) = (false, 0),
        Some(ITR_DYNAMIC) => (co.adaptive, co.max_irq_rate) = (true, LOWEST_LATENCY_RATE),
        Some(ITR_DYNAMIC_CONSERVATIVE) => (co.adaptive, co.max_irq_rate) = (true, LOW_LATENCY_RATE),
        Some(rate) => (co.adaptive, co.max_irq_rate) = (false, rate),
        None => {}
    }
    if let Some(n) = p.copybreak {
        c.copybreak = n;
    }
    *conf = c;
    Ok(())
}

/// Applies load-time parameters to a probed device before it is opened: checks them
/// against the part ([`check`]), puts them into the adapter's configuration ([`apply`])
/// and programs the link (the PHY's advertisement or forced speed and duplex, and flow
/// control) the new configuration asks for; ring sizes, checksum offload, the delays and
/// ITR take effect when the device opens. Nothing changes if a parameter is refused.
/// Returns notes on parameters that do nothing on this part.
#[upcall]
pub fn apply_at_probe(a: &mut Adapter, p: &Params) -> Result<Vec<String>, DriverError> {
    if a.up {
        return Err(DriverError::WrongState {
            op: "applying load-time parameters".into(),
            state: "up".into(),
            needed: "down (they apply between probe and the first open)".into(),
        });
    }
    let notes = check(p, &a.info)?;
    let mut conf = a.conf.clone();
    apply(p, &mut conf)?;
    crate::phy::check_request(&conf.link)?;
    let link_changed = conf.link != a.conf.link || conf.pause != a.conf.pause;
    let old = std::mem::replace(&mut a.conf, conf);
    if link_changed {
        let r = crate::phy::setup_link(a).and_then(|()| crate::link::apply_flow_control(a));
        if let Err(e) = r {
            a.conf = old;
            if let Err(e2) =
                crate::phy::setup_link(a).and_then(|()| crate::link::apply_flow_control(a))
            {
                tracing::warn!(dev = a.dev.0, error = %e2, "restoring the link settings failed");
            }
            return Err(e);
        }
    }
    for arg in p.to_args() {
        tracing::info!(dev = a.dev.0, param = %arg, "load-time parameter");
    }
    for n in &notes {
        tracing::info!(dev = a.dev.0, "{n}");
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Params, DriverError> {
        Params::parse(args.iter().copied(), 0)
    }

    fn err(args: &[&str]) -> String {
        parse(args).expect_err("refused").to_string()
    }

    fn info(mac_type: MacType) -> DeviceInfo {
        DeviceInfo {
            mac_type,
            phy_id: crate::phy::M88E1011_ID,
            ..DeviceInfo::default()
        }
    }

    #[test]
    fn every_name_parses_and_unknown_names_are_refused() {
        for p in Param::ALL {
            assert_eq!(Param::from_name(p.name()).expect("known"), p);
        }
        let e = err(&["txdescriptors=256"]);
        assert!(e.contains("did you mean TxDescriptors?"), "{e}");
        let e = err(&["Bogus=1"]);
        assert!(
            e.contains("Bogus") && e.contains("InterruptThrottleRate"),
            "{e}"
        );
        let e = err(&["TxDescriptors"]);
        assert!(e.contains("expected Name=value"), "{e}");
    }

    #[test]
    fn descriptor_edges() {
        for good in [80, 88, 256, 4088, 4096] {
            let p = parse(&[&format!("TxDescriptors={good}")]).expect("good");
            assert_eq!(p.tx_descriptors, Some(good));
            let p = parse(&[&format!("RxDescriptors={good}")]).expect("good");
            assert_eq!(p.rx_descriptors, Some(good));
        }
        for bad in [0, 72, 79, 81, 100, 4095, 4097, 4104] {
            let e = err(&[&format!("TxDescriptors={bad}")]);
            assert!(
                e.contains(&format!("TxDescriptors={bad}")) && e.contains("80..=4096"),
                "{e}"
            );
        }
        let e = err(&["RxDescriptors=100"]);
        assert!(e.contains("nearest: 96 or 104"), "{e}");
        let e = err(&["RxDescriptors=4090"]);
        assert!(e.contains("nearest: 4088 or 4096"), "{e}");
    }

    #[test]
    fn speed_duplex_autoneg_edges() {
        for s in [0, 10, 100, 1000] {
            assert_eq!(
                parse(&[&format!("Speed={s}")]).expect("speed").speed,
                Some(s)
            );
        }
        for s in [1, 11, 99, 101, 999, 1001, 10000] {
            let e = err(&[&format!("Speed={s}")]);
            assert!(
                e.contains(&format!("Speed={s}")) && e.contains("10, 100 or 1000"),
                "{e}"
            );
        }
        for d in 0..=2 {
            assert_eq!(
                parse(&[&format!("Duplex={d}")]).expect("duplex").duplex,
                Some(d)
            );
        }
        let e = err(&["Duplex=3"]);
        assert!(e.contains("Duplex=3") && e.contains("2 (full)"), "{e}");
        for an in [0x01, 0x02, 0x0F, 0x20, 0x21, 0x2F] {
            assert_eq!(
                parse(&[&format!("AutoNeg={an:#x}")]).expect("an").autoneg,
                Some(an)
            );
        }
        assert_eq!(parse(&["AutoNeg=47"]).expect("decimal").autoneg, Some(0x2F));
        for an in [0x00, 0x10, 0x11, 0x30, 0x40, 0xFF] {
            let e = err(&[&format!("AutoNeg={an:#x}")]);
            assert!(
                e.contains(&format!("AutoNeg={an:#04x}")) && e.contains("0x20"),
                "{e}"
            );
        }
        // The combinations.
        let e = err(&["Speed=100", "AutoNeg=0x08"]);
        assert!(e.contains("AutoNeg=0x08") && e.contains("Speed=100"), "{e}");
        let e = err(&["Duplex=2", "AutoNeg=0x08"]);
        assert!(e.contains("Duplex=2"), "{e}");
        parse(&["Speed=0", "Duplex=0", "AutoNeg=0x08"]).expect("auto with a mask");
        let e = err(&["Speed=1000", "Duplex=1"]);
        assert!(
            e.contains("Duplex=1") && e.contains("1000 Mb/s half duplex"),
            "{e}"
        );
        parse(&["Speed=1000", "Duplex=2"]).expect("1000/full");
        // A hand-built set gets the same checks.
        let p = Params {
            speed: Some(1000),
            duplex: Some(1),
            ..Params::default()
        };
        assert!(check(&p, &info(MacType::I82540EM)).is_err());
    }

    #[test]
    fn flow_checksum_power_down_edges() {
        for v in 0..=3 {
            assert_eq!(
                parse(&[&format!("FlowControl={v}")])
                    .expect("fc")
                    .flow_control,
                Some(v)
            );
        }
        for v in [4, 255] {
            let e = err(&[&format!("FlowControl={v}")]);
            assert!(
                e.contains(&format!("FlowControl={v}")) && e.contains("3 (both)"),
                "{e}"
            );
        }
        for name in ["XsumRX", "SmartPowerDownEnable"] {
            parse(&[&format!("{name}=0")]).expect("0");
            parse(&[&format!("{name}=1")]).expect("1");
            let e = err(&[&format!("{name}=2")]);
            assert!(
                e.contains(&format!("{name}=2")) && e.contains("0 (off) or 1 (on)"),
                "{e}"
            );
        }
    }

    #[test]
    fn delay_edges_and_units() {
        for name in ["TxIntDelay", "TxAbsIntDelay", "RxIntDelay", "RxAbsIntDelay"] {
            for good in [0, 1, 65535] {
                let p = parse(&[&format!("{name}={good}")]).expect("good");
                assert_eq!(Param::from_name(name).expect("name").get(&p), Some(good));
            }
            let e = err(&[&format!("{name}=65536")]);
            assert!(
                e.contains(&format!("{name}=65536")) && e.contains("0..=65535"),
                "{e}"
            );
        }
        // The register gets exactly the units given (the configuration keeps microseconds,
        // converted back by rounding down).
        for units in [0u32, 1, 7, 8, 32, 128, 1000, 65535] {
            let us = delay_units_to_usecs(units);
            assert_eq!((u64::from(us) * 1000 / 1024) as u32, units, "{units}");
        }
    }

    #[test]
    fn itr_edges() {
        for good in [0, 1, 3, 100, 101, 20_000, 100_000] {
            let p = parse(&[&format!("InterruptThrottleRate={good}")]).expect("good");
            assert_eq!(p.interrupt_throttle_rate, Some(good));
        }
        for bad in [2, 5, 99, 100_001, 1_000_000] {
            let e = err(&[&format!("InterruptThrottleRate={bad}")]);
            assert!(
                e.contains(&format!("InterruptThrottleRate={bad}")) && e.contains("100..=100000"),
                "{e}"
            );
        }
        let e = err(&["InterruptThrottleRate=4"]);
        assert!(
            e.contains("simplified") && e.contains("3 is the closest"),
            "{e}"
        );
    }

    #[test]
    fn values_lists_and_boards() {
        let args = ["TxDescriptors=512,1024", "Speed=100"];
        let b0 = Params::parse(args, 0).expect("board 0");
        let b1 = Params::parse(args, 1).expect("board 1");
        let b2 = Params::parse(args, 2).expect("board 2");
        assert_eq!((b0.tx_descriptors, b0.speed), (Some(512), Some(100)));
        assert_eq!((b1.tx_descriptors, b1.speed), (Some(1024), None));
        assert_eq!((b2.tx_descriptors, b2.speed), (None, None));
        // Every board's value is checked, not only the one used.
        let e = Params::parse(["TxDescriptors=512,100"], 0).expect_err("board 1 bad");
        assert!(e.to_string().contains("TxDescriptors=100"), "{e}");
        let e = err(&["Speed=100,,10"]);
        assert!(e.contains("a value is missing"), "{e}");
        let e = err(&["Speed=fast"]);
        assert!(
            e.contains("Speed=\"fast\"") && e.contains("not a number"),
            "{e}"
        );
        let e = err(&["Speed=-1"]);
        assert!(e.contains("not a number"), "{e}");
        let e = err(&["Speed=100", "Speed=10"]);
        assert!(e.contains("more than once"), "{e}");
        // copybreak is one value for every board.
        assert_eq!(
            Params::parse(["copybreak=128"], 3).expect("cb").copybreak,
            Some(128)
        );
        let e = err(&["copybreak=128,256"]);
        assert!(e.contains("not a list"), "{e}");
        // Round trip.
        let p = parse(&["AutoNeg=0x2F", "copybreak=0", "XsumRX=0"]).expect("parse");
        let again = Params::parse(p.to_args().iter().map(String::as_str), 0).expect("again");
        assert_eq!(again, p);
        assert!(Params::default().is_empty() && !p.is_empty());
    }

    #[test]
    fn per_part_limits() {
        let gc = info(MacType::I82544GC);
        let em = info(MacType::I82540EM);
        for (arg, reg) in [
            ("TxAbsIntDelay=32", "TADV"),
            ("RxAbsIntDelay=8", "RADV"),
            ("InterruptThrottleRate=3", "ITR"),
            ("InterruptThrottleRate=8000", "ITR"),
        ] {
            let p = parse(&[arg]).expect("in range");
            let e = check(&p, &gc).expect_err("82544GC").to_string();
            assert!(
                e.contains(arg) && e.contains("82544GC") && e.contains(reg),
                "{e}"
            );
            assert!(check(&p, &em).expect("82540EM").is_empty());
        }
        let p = parse(&["InterruptThrottleRate=0", "RxAbsIntDelay=0"]).expect("off");
        let notes = check(&p, &gc).expect("off on 82544GC is accepted");
        assert_eq!(notes.len(), 2, "{notes:?}");
        for part in [MacType::I82540EM, MacType::I82545EM, MacType::I82544GC] {
            let e = check(&parse(&["SmartPowerDownEnable=1"]).expect("p"), &info(part))
                .expect_err("M88")
                .to_string();
            assert!(
                e.contains("SmartPowerDownEnable=1") && e.contains("IGP"),
                "{e}"
            );
            let notes = check(&parse(&["SmartPowerDownEnable=0"]).expect("p"), &info(part))
                .expect("0 is accepted");
            assert!(notes[0].contains("not applicable"), "{notes:?}");
        }
        // A hand-built Params is checked as strictly as a parsed one.
        let p = Params {
            rx_descriptors: Some(8192),
            ..Params::default()
        };
        assert!(check(&p, &em).is_err());
    }

    #[test]
    fn apply_maps_linux_semantics() {
        let applied = |args: &[&str]| {
            let mut c = Config::default();
            apply(&parse(args).expect("parse"), &mut c).expect("apply");
            c
        };
        let c = applied(&[
            "TxDescriptors=512",
            "RxDescriptors=1024",
            "XsumRX=0",
            "copybreak=0",
        ]);
        assert_eq!(
            (c.tx_ring, c.rx_ring, c.rx_csum, c.copybreak),
            (512, 1024, false, 0)
        );
        let link = |args: &[&str]| {
            let l = applied(args).link;
            (l.autoneg, l.advertise, l.speed, l.full_duplex)
        };
        assert_eq!(link(&["AutoNeg=0x08"]), (true, ADV_100_FULL, 1000, true));
        assert_eq!(link(&["Duplex=1"]).1, ADV_10_HALF | ADV_100_HALF);
        assert_eq!(
            link(&["Duplex=2"]).1,
            ADV_10_FULL | ADV_100_FULL | ADV_1000_FULL
        );
        assert_eq!(link(&["Speed=10"]).1, ADV_10_HALF | ADV_10_FULL);
        assert_eq!(link(&["Speed=100"]).1, ADV_100_HALF | ADV_100_FULL);
        assert_eq!(link(&["Speed=1000"]), (true, ADV_1000_FULL, 1000, true));
        assert_eq!(link(&["Speed=1000", "Duplex=2"]).1, ADV_1000_FULL);
        assert_eq!(link(&["Speed=10", "Duplex=1"]), (false, ADV_ALL, 10, false));
        assert_eq!(
            link(&["Speed=100", "Duplex=2"]),
            (false, ADV_ALL, 100, true)
        );
        let pause = |fc: &str| {
            let p = applied(&[&format!("FlowControl={fc}")]).pause;
            (p.rx_pause, p.tx_pause)
        };
        assert_eq!(pause("0"), (false, false));
        assert_eq!(pause("1"), (true, false));
        assert_eq!(pause("2"), (false, true));
        assert_eq!(pause("3"), (true, true));
        let co = applied(&[
            "TxIntDelay=8",
            "TxAbsIntDelay=32",
            "RxIntDelay=0",
            "RxAbsIntDelay=128",
        ])
        .coalesce;
        assert_eq!(
            (co.tx_usecs, co.tx_abs_usecs, co.rx_usecs, co.rx_abs_usecs),
            (9, 33, 0, 132)
        );
        let itr = |v: &str| {
            let co = applied(&[&format!("InterruptThrottleRate={v}")]).coalesce;
            (co.adaptive, co.max_irq_rate)
        };
        assert_eq!(itr("0"), (false, 0));
        assert_eq!(itr("1"), (true, LOWEST_LATENCY_RATE));
        assert_eq!(itr("3"), (true, LOW_LATENCY_RATE));
        assert_eq!(itr("8000"), (false, 8000));
        // A refused set leaves the configuration as it was.
        let mut c = Config::default();
        let bad = Params {
            speed: Some(100),
            autoneg: Some(0x08),
            tx_descriptors: Some(512),
            ..Params::default()
        };
        assert!(apply(&bad, &mut c).is_err());
        assert_eq!(c, Config::default());
    }
}
