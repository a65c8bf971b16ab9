//! The user half's view of a device: plain data (it derives `Marshal` with no annotations)
//! and a [`DevId`] through which every device access is a checked kernel call.

use std::time::{Duration, Instant};

use microdriver_rt::Marshal;

use crate::error::DriverError;
use crate::kernel::{self, DevId};

/// How long the user half waits for the hardware to finish an EEPROM, MDIO or reset cycle
/// (each takes microseconds to milliseconds on hardware; the bound is generous so that a
/// loaded host running the device model does not turn a slow cycle into a failure).
pub const HW_WAIT_MS: u64 = 1000;

/// The supported parts and their differences (SDM 1.x, 5, 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Marshal)]
pub enum MacType {
    /// 82540EM (8086:100E).
    #[default]
    I82540EM,
    /// 82545EM copper (8086:100F).
    I82545EM,
    /// 82544GC copper (8086:100C).
    I82544GC,
}

impl MacType {
    /// The part with PCI device ID `device` (vendor 8086).
    pub fn from_ids(vendor: u16, device: u16) -> Result<Self, DriverError> {
        match (vendor, device) {
            (0x8086, 0x100E) => Ok(Self::I82540EM),
            (0x8086, 0x100F) => Ok(Self::I82545EM),
            (0x8086, 0x100C) => Ok(Self::I82544GC),
            _ => Err(DriverError::UnsupportedDevice { vendor, device }),
        }
    }

    /// The part's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::I82540EM => "82540EM",
            Self::I82545EM => "82545EM",
            Self::I82544GC => "82544GC",
        }
    }

    /// EERD exists on the 82540 and later; the 82544 reads its EEPROM by bit-banging.
    pub fn has_eerd(self) -> bool {
        self != Self::I82544GC
    }

    /// The 82540 and later arbitrate EEPROM access (EECD.EE_REQ/EE_GNT).
    pub fn eeprom_needs_grant(self) -> bool {
        self != Self::I82544GC
    }

    /// ITR and the absolute delay timers RADV/TADV exist on the 82540 and later.
    pub fn has_itr(self) -> bool {
        self != Self::I82544GC
    }
}

/// What probe learned about the device.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct DeviceInfo {
    /// The part.
    pub mac_type: MacType,
    /// PCI vendor ID.
    pub vendor: u16,
    /// PCI device ID.
    pub device: u16,
    /// PCI subsystem vendor ID.
    pub subsys_vendor: u16,
    /// PCI subsystem ID.
    pub subsys_device: u16,
    /// PHYID1 << 16 | PHYID2.
    pub phy_id: u32,
    /// The permanent MAC address (EEPROM words 0-2).
    pub perm_addr: [u8; 6],
    /// EEPROM size in 16-bit words.
    pub eeprom_words: u32,
    /// The configuration words read from the EEPROM at probe.
    pub eeprom: crate::eeprom::EepromConfig,
    /// The host bus (STATUS, see [`crate::bus`]).
    pub bus: crate::bus::BusInfo,
    /// The wake-up status (WUS) found at probe: what woke the system, 0 if nothing did.
    pub wake_status: u32,
}

/// Receive filtering (`ndo_set_rx_mode`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct RxMode {
    /// Accept every unicast and multicast frame.
    pub promisc: bool,
    /// Accept every multicast frame.
    pub allmulti: bool,
    /// Multicast addresses (hashed into the MTA).
    pub multicast: Vec<[u8; 6]>,
    /// Extra unicast addresses (`RA[1..16]`; beyond 15, unicast promiscuous).
    pub unicast: Vec<[u8; 6]>,
}

/// Flow control (ethtool pause parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct PauseParam {
    /// Negotiate pause with the partner (advertise it in ANAR).
    pub autoneg: bool,
    /// Honour received PAUSE frames (CTRL.RFCE).
    pub rx_pause: bool,
    /// Send PAUSE frames when the receive FIFO fills (CTRL.TFCE).
    pub tx_pause: bool,
}

impl Default for PauseParam {
    fn default() -> Self {
        Self {
            autoneg: true,
            rx_pause: true,
            tx_pause: true,
        }
    }
}

/// Interrupt moderation (ethtool coalesce parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct Coalesce {
    /// Receive delay (RDTR), microseconds.
    pub rx_usecs: u32,
    /// Receive absolute delay (RADV), microseconds.
    pub rx_abs_usecs: u32,
    /// Transmit delay (TIDV), microseconds; non-zero sets IDE on descriptors.
    pub tx_usecs: u32,
    /// Transmit absolute delay (TADV), microseconds.
    pub tx_abs_usecs: u32,
    /// Interrupt rate limit (ITR), interrupts per second; 0 = unlimited.
    pub max_irq_rate: u32,
    /// Let the kernel half's poll path choose the rate from the traffic (adaptive
    /// throttling, within `max_irq_rate`); off, ITR is `max_irq_rate`.
    pub adaptive: bool,
}

impl Default for Coalesce {
    fn default() -> Self {
        Self {
            rx_usecs: 0,
            rx_abs_usecs: 8,
            tx_usecs: 8,
            tx_abs_usecs: 32,
            max_irq_rate: 20_000,
            adaptive: true,
        }
    }
}

/// How the link should be brought up (ethtool link settings, requested side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Marshal)]
pub struct LinkRequest {
    /// Auto-negotiate.
    pub autoneg: bool,
    /// Advertised modes (the `ADV_*` bits of [`crate::phy`]).
    pub advertise: u32,
    /// Forced speed in Mb/s (10, 100 or 1000) when not auto-negotiating.
    pub speed: u32,
    /// Forced duplex when not auto-negotiating.
    pub full_duplex: bool,
    /// MDI crossover (ethtool `eth_tp_mdix_ctrl`: `phy::ETH_TP_MDI`, `ETH_TP_MDI_X` or
    /// `ETH_TP_MDI_AUTO`; fixed modes need auto-negotiation).
    pub mdix: u8,
}

impl Default for LinkRequest {
    fn default() -> Self {
        Self {
            autoneg: true,
            advertise: crate::phy::ADV_ALL,
            speed: 1000,
            full_duplex: true,
            mdix: crate::phy::ETH_TP_MDI_AUTO,
        }
    }
}

/// Everything the user configures.
#[derive(Debug, Clone, PartialEq, Eq, Marshal)]
pub struct Config {
    /// Transmit descriptors.
    pub tx_ring: u32,
    /// Receive descriptors.
    pub rx_ring: u32,
    /// MTU in bytes (68..=16110).
    pub mtu: u32,
    /// Receive filtering.
    pub rx_mode: RxMode,
    /// VLAN ids in the filter (sorted).
    pub vlans: Vec<u16>,
    /// Strip received tags and insert transmitted ones (CTRL.VME).
    pub vlan_offload: bool,
    /// Flow control.
    pub pause: PauseParam,
    /// Interrupt moderation.
    pub coalesce: Coalesce,
    /// Link bring-up.
    pub link: LinkRequest,
    /// Wake-on-LAN modes (ethtool's `WAKE_*`, see [`crate::wol`]).
    pub wol: u32,
    /// Message level (a tracing verbosity mask).
    pub msglevel: u32,
    /// Report receive checksums.
    pub rx_csum: bool,
    /// The offloads offered to the stack and the FCS setting (ethtool `-K`, see
    /// [`crate::features`]).
    pub offloads: crate::features::Offloads,
    /// Copybreak length.
    pub copybreak: u32,
    /// How long a packet may wait in a ring that does not move before the watchdog calls
    /// it a transmit hang (milliseconds).
    pub tx_timeout_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            tx_ring: 256,
            rx_ring: 256,
            mtu: 1500,
            rx_mode: RxMode::default(),
            vlans: Vec::new(),
            vlan_offload: true,
            pause: PauseParam::default(),
            coalesce: Coalesce::default(),
            link: LinkRequest::default(),
            wol: 0,
            msglevel: 0x7,
            rx_csum: true,
            offloads: crate::features::Offloads::default(),
            copybreak: 256,
            tx_timeout_ms: crate::link::TX_HANG_MS,
        }
    }
}

/// The link as the watchdog last saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct LinkState {
    /// STATUS.LU.
    pub up: bool,
    /// Mb/s.
    pub speed: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Link changes seen.
    pub changes: u64,
    /// The flow control in force (resolved from auto-negotiation, or as configured).
    pub flow: crate::link::FlowControl,
}

impl LinkState {
    /// No link known (after a reset, or while the watchdog is not looking), keeping the
    /// count of changes seen.
    pub fn unknown(self) -> Self {
        Self {
            changes: self.changes,
            ..Self::default()
        }
    }
}

/// The watchdog's memory between runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Marshal)]
pub struct WatchdogState {
    /// Runs so far.
    pub runs: u64,
    /// Packets transmit clean had reclaimed at the previous run (the kernel half's
    /// `TxStats::packets`, which only grows): the measure of progress. A ring index would
    /// not do: between two runs far enough apart (a user half killed mid-watchdog leaves
    /// the previous run's values) the ring can go round to the same slot.
    pub last_tx_cleaned: u64,
    /// Whether descriptors were pending (TDH != TDT) at the previous run.
    pub last_tx_pending: bool,
    /// When the transmit ring last moved or was empty (milliseconds since the Unix epoch).
    pub last_tx_move_ms: u64,
    /// Transmit hangs detected (each scheduled a reset).
    pub tx_timeouts: u64,
    /// Resets performed.
    pub resets: u64,
    /// The fixed interrupt rate the user half last programmed, per second (adaptive
    /// throttling's rates are the kernel half's: `kernel::adaptive_irq_rate`).
    pub irq_rate: u32,
}

/// The user half's adapter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Marshal)]
pub struct Adapter {
    /// The device in the kernel half.
    pub dev: DevId,
    /// What probe found.
    pub info: DeviceInfo,
    /// The current MAC address (`RA[0]`).
    pub mac: [u8; 6],
    /// Whether the interface is open.
    pub up: bool,
    /// Configuration.
    pub conf: Config,
    /// Link state.
    pub link: LinkState,
    /// Accumulated hardware statistics (see [`crate::stats`]).
    pub stats: crate::stats::HwStats,
    /// Watchdog memory.
    pub wd: WatchdogState,
    /// PHY counters and SmartSpeed state.
    pub phy: crate::phy::PhyState,
    /// The identify LED modes and state (see [`crate::led`]).
    pub led: crate::led::LedState,
    /// Handles to the kernel half's rings and counters (set by probe; read by snapshot).
    pub shared: Option<crate::shared::SharedState>,
    /// Adaptive inter-frame spacing (see [`crate::ifs`]).
    pub ifs: crate::ifs::IfsState,
    /// Suspend/resume state (see [`crate::pm`]).
    pub pm: crate::pm::PmState,
}

impl Adapter {
    /// A fresh adapter for `dev` (probe fills it in).
    pub fn new(dev: DevId) -> Self {
        Self {
            dev,
            ..Self::default()
        }
    }

    /// Handles to the kernel half's rings and counters (asked for if probe did not set
    /// them).
    pub fn shared(&self) -> Result<crate::shared::SharedState, DriverError> {
        match &self.shared {
            Some(s) => Ok(s.clone()),
            None => kernel::shared_state(self.dev),
        }
    }

    /// Reads a register (a checked kernel call).
    pub fn rd(&self, off: u32) -> Result<u32, DriverError> {
        kernel::reg_read(self.dev, off)
    }

    /// Reads registers in order with one checked kernel call ([`kernel::reg_read_many`]).
    pub fn rd_many(&self, offs: Vec<u32>) -> Result<Vec<u32>, DriverError> {
        kernel::reg_read_many(self.dev, offs)
    }

    /// Writes a register (a checked kernel call).
    pub fn wr(&self, off: u32, v: u32) -> Result<(), DriverError> {
        kernel::reg_write(self.dev, off, v)
    }

    /// Clears `clear` and sets `set` in a register.
    pub fn rmw(&self, off: u32, clear: u32, set: u32) -> Result<u32, DriverError> {
        let v = (self.rd(off)? & !clear) | set;
        self.wr(off, v)?;
        Ok(v)
    }

    /// Polls `off` until `done(value)` or `ms` milliseconds pass.
    pub fn poll_reg(
        &self,
        off: u32,
        what: &str,
        ms: u64,
        done: impl Fn(u32) -> bool,
    ) -> Result<u32, DriverError> {
        let end = Instant::now() + Duration::from_millis(ms);
        loop {
            let v = self.rd(off)?;
            if done(v) {
                return Ok(v);
            }
            if Instant::now() > end {
                return Err(DriverError::timeout(what, ms));
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// The largest frame the MTU allows, without FCS, with room for a VLAN tag.
    pub fn max_frame(&self) -> u32 {
        self.conf.mtu + 14 + 4
    }
}
