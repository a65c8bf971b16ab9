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
                v.is_multiple_of(DESCRIPTOR_MULTIPLE) && (MIN_RING..=MAX_RING).contains(&v)
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

mod apply;
use apply::check_ranges;
pub use apply::{
    apply, apply_at_probe, check, delay_units_to_usecs, descriptor_range, phy_has_smart_power_down,
};

#[cfg(test)]
mod tests;
