//! The MAC: registers, interrupts, and the transmit and receive DMA engines.
//!
//! Everything here runs under the model's lock, either from an MMIO access (register
//! semantics) or from the device thread (DMA, timers). See `model.rs` for the threading.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dma::SimDma;
use crate::eeprom::{self, Eeprom};
use crate::fault::{Defects, DmaSource, Fault, FaultLog, Ring};
use crate::irq::SimIrq;
use crate::model::SimConfig;
use crate::net;
use crate::pci::PciConfigSpace;
use crate::peer::WireFrame;
use crate::phy::{Phy, Speed};
use crate::regs::{self, *};

/// The 8254x parts the model can impersonate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Variant {
    /// 82540EM, PCI 8086:100E (QEMU's default e1000).
    #[default]
    I82540EM,
    /// 82545EM copper, PCI 8086:100F.
    I82545EM,
    /// 82544GC copper, PCI 8086:100C.
    I82544GC,
}

impl Variant {
    /// PCI vendor ID.
    pub fn vendor_id(self) -> u16 {
        0x8086
    }
    /// PCI device ID.
    pub fn device_id(self) -> u16 {
        match self {
            Variant::I82540EM => 0x100E,
            Variant::I82545EM => 0x100F,
            Variant::I82544GC => 0x100C,
        }
    }
    /// The internal PHY's identifier (PHYID1 << 16 | PHYID2): Marvell 88E1011 on the
    /// 82540EM/82545EM, 88E1000 on the 82544GC.
    pub fn phy_id(self) -> u32 {
        match self {
            Variant::I82540EM | Variant::I82545EM => 0x0141_0C20,
            Variant::I82544GC => 0x0141_0C30,
        }
    }
    /// Whether the EERD register exists (82540 and later; not on 82544).
    pub fn has_eerd(self) -> bool {
        !matches!(self, Variant::I82544GC)
    }
    /// Whether software must request EEPROM access (EECD.EE_REQ/EE_GNT) before
    /// bit-banging (82540 and later; not on 82544).
    pub fn eeprom_needs_grant(self) -> bool {
        !matches!(self, Variant::I82544GC)
    }
    /// Whether the part has a PCI-X interface (and a 64-bit one): the 82544GC and 82545EM
    /// do; the 82540EM is a 32-bit conventional PCI part.
    pub fn has_pcix(self) -> bool {
        !matches!(self, Variant::I82540EM)
    }
    /// The bus the model reports when the configuration names none: the 82540EM in a
    /// 33 MHz 32-bit PCI slot (as QEMU's e1000), the PCI-X parts in a 133 MHz 64-bit
    /// PCI-X slot.
    pub fn default_bus(self) -> SimBus {
        if self.has_pcix() {
            SimBus::PciX {
                mhz: 133,
                width: 64,
            }
        } else {
            SimBus::Pci { mhz: 33, width: 32 }
        }
    }
    /// Whether the part can run on `bus` (see [`SimBus::check`]).
    pub fn check_bus(self, bus: SimBus) -> Result<(), String> {
        bus.check()?;
        match bus {
            SimBus::PciX { .. } if !self.has_pcix() => {
                Err(format!("{self:?} has no PCI-X interface"))
            }
            SimBus::Pci { width: 64, .. } | SimBus::PciX { width: 64, .. } if !self.has_pcix() => {
                Err(format!("{self:?} has a 32-bit bus interface"))
            }
            _ => Ok(()),
        }
    }
    /// The interrupt causes the part implements (SDM 13.4 ICR): every cause of
    /// [`icr::ALL`] on the 82540EM/82545EM; the 82544GC has no small-receive-packet
    /// detection (RSRPD, ICR.SRPD) and no transmit descriptor low threshold
    /// (TXDCTL.LWTHRESH, ICR.TXD_LOW), which arrived with the 82540.
    pub fn icr_causes(self) -> u32 {
        match self {
            Variant::I82540EM | Variant::I82545EM => icr::ALL,
            Variant::I82544GC => icr::ALL & !(icr::SRPD | icr::TXD_LOW),
        }
    }
}

/// The host bus as the part sampled it at reset (STATUS bits 15:11, SDM 13.4.2): the mode
/// (PCI or PCI-X, from the PCI-X initialization pattern), the width (REQ64#) and the speed
/// (M66EN for PCI; the PCI-X pattern's frequency range for PCI-X).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimBus {
    /// Conventional PCI at `mhz` (33 or 66), `width` (32 or 64) bits wide.
    Pci {
        /// Bus clock, MHz.
        mhz: u32,
        /// Data path width, bits.
        width: u32,
    },
    /// PCI-X at up to `mhz` (66, 100 or 133), `width` (32 or 64) bits wide.
    PciX {
        /// Top of the bus clock's range, MHz.
        mhz: u32,
        /// Data path width, bits.
        width: u32,
    },
}

impl SimBus {
    /// Whether the values are ones a bus can have.
    pub fn check(self) -> Result<(), String> {
        let (ok_mhz, mhz, width) = match self {
            SimBus::Pci { mhz, width } => (matches!(mhz, 33 | 66), mhz, width),
            SimBus::PciX { mhz, width } => (matches!(mhz, 66 | 100 | 133), mhz, width),
        };
        if !ok_mhz {
            return Err(format!("{self:?}: {mhz} MHz is not a clock of that bus"));
        }
        if !matches!(width, 32 | 64) {
            return Err(format!("{self:?}: the bus is 32 or 64 bits wide"));
        }
        Ok(())
    }

    /// The STATUS bits that report this bus.
    pub fn status_bits(self) -> u32 {
        let (bits, width) = match self {
            SimBus::Pci { mhz, width } => (if mhz == 66 { status::PCI66 } else { 0 }, width),
            SimBus::PciX { mhz, width } => {
                let speed = match mhz {
                    66 => status::PCIX_SPEED_66,
                    100 => status::PCIX_SPEED_100,
                    _ => status::PCIX_SPEED_133,
                };
                (status::PCIX_MODE | speed, width)
            }
        };
        bits | if width == 64 { status::BUS64 } else { 0 }
    }
}

/// Largest packet the transmit engine gathers (TSO payloads are limited to 256 KiB).
const MAX_TX_PACKET: usize = 256 * 1024;
/// Number of 32-bit words in BAR0.
const REG_WORDS: usize = (BAR0_LEN / 4) as usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxKind {
    Legacy,
    Data,
}

#[derive(Debug, Default, Clone, Copy)]
struct TxContext {
    ipcss: usize,
    ipcso: usize,
    ipcse: usize,
    tucss: usize,
    tucso: usize,
    tucse: usize,
    tucmd: u32,
    paylen: usize,
    hdr_len: usize,
    mss: usize,
}

#[derive(Debug, Default)]
struct TxState {
    ctx: TxContext,
    pkt: Vec<u8>,
    /// Kind and options of the packet being gathered, from its first descriptor.
    kind: Option<TxKind>,
    popts: u32,
    tse: bool,
    /// Legacy CSO/CSS, taken from the packet's first descriptor.
    legacy_cso_css: (u8, u8),
    /// TSO: DCMD and VLAN field of the first data descriptor (SDM 3.3.7.1: with TSE, VLE,
    /// IFCS and the VLAN field are valid only there).
    tso_cmd_special: (u8, u16),
    bad: bool,
    stalled: bool,
}

#[derive(Debug)]
struct RxFrame {
    /// Bytes as stored in host memory (CRC included unless SECRC).
    data: Vec<u8>,
    status: u8,
    errors: u8,
    special: u16,
    csum: u16,
}

/// Statistics counters: one u64 per 32-bit register slot of 0x4000..0x4100.
#[derive(Debug, Clone)]
struct Stats([u64; 64]);

impl Stats {
    fn idx(off: u32) -> usize {
        ((off - STATS_BASE) / 4) as usize
    }
    fn add(&mut self, off: u32, n: u64) {
        let i = Self::idx(off);
        let max = if STATS_64BIT_LOW.contains(&off) {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        self.0[i] = self.0[i].saturating_add(n).min(max);
    }
    fn inc(&mut self, off: u32) {
        self.add(off, 1);
    }
}

fn is_stat(off: u32) -> bool {
    matches!(
        off,
        CRCERRS
            | ALGNERRC
            | SYMERRS
            | RXERRC
            | MPC
            | SCC
            | ECOL
            | MCC
            | LATECOL
            | COLC
            | DC
            | TNCRS
            | SEC
            | CEXTERR
            | RLEC
            | XONRXC
            | XONTXC
            | XOFFRXC
            | XOFFTXC
            | FCRUC
            | PRC64
            | PRC127
            | PRC255
            | PRC511
            | PRC1023
            | PRC1522
            | GPRC
            | BPRC
            | MPRC
            | GPTC
            | GORCL
            | GORCH
            | GOTCL
            | GOTCH
            | RNBC
            | RUC
            | RFC
            | ROC
            | RJC
            | MGTPRC
            | MGTPDC
            | MGTPTC
            | TORL
            | TORH
            | TOTL
            | TOTH
            | TPR
            | TPT
            | PTC64
            | PTC127
            | PTC255
            | PTC511
            | PTC1023
            | PTC1522
            | MPTC
            | BPTC
            | TSCTC
            | TSCTFC
    )
}

/// Plain read/write storage registers (no side effects in the model).
fn is_storage(off: u32) -> bool {
    matches!(off,
        CTRL_EXT | FLA | FCAL | FCAH | FCT | VET | FCTTV | TXCW | RXCW | LEDCTL | ITR
        | TIPG | AIFS | TXDMAC | TDFH | TDFT | RDFH | RDFT | FCRTL | FCRTH | RDBAL | RDBAH
        | RXDCTL | RADV | RSRPD | TDBAL | TDBAH | TXDCTL | TADV | TSPMT | RXCSUM | WUC
        | WUFC | MANC | IPAV | WUPL)
        || (MTA..MTA + 4 * MTA_LEN).contains(&off)
        || (RAL..RAL + 8 * RA_LEN).contains(&off)
        || (VFTA..VFTA + 4 * VFTA_LEN).contains(&off)
        || (IP4AT..IP4AT + 0x10).contains(&off)
        || (IP6AT..IP6AT + 0x10).contains(&off)
        || (WUPM..WUPM + 0x80).contains(&off)
        || (FFLT..FFLT + 0x20).contains(&off)
        || (FFMT..FFMT + 0x400).contains(&off)
        || (FFVT..FFVT + 0x400).contains(&off)
        // diagnostic FIFO pointer registers
        || matches!(off, 0x2420 | 0x2428 | 0x2430 | 0x3420 | 0x3428 | 0x3430)
}

fn delay(units: u32) -> Duration {
    Duration::from_nanos(u64::from(units & 0xFFFF) * DELAY_UNIT_NS)
}

/// The device's state (everything but the wire and the peer).
pub(crate) struct Device {
    variant: Variant,
    /// STATUS bits 15:11: the bus sampled at reset.
    bus_status: u32,
    pub(crate) pci: PciConfigSpace,
    regs: Box<[u32]>,
    stats: Stats,
    pub(crate) eeprom: Eeprom,
    phy: Phy,
    mac_link: bool,
    pub(crate) wire_up: bool,
    dma: SimDma,
    irq: Arc<SimIrq>,
    pub(crate) faults: FaultLog,
    /// Defects a test injected (see [`Defects`]).
    pub(crate) defects: Defects,
    icr: u32,
    ims: u32,
    asserted: bool,
    last_assert: Option<Instant>,
    itr_at: Option<Instant>,
    eerd_pending: bool,
    mdic_pending: bool,
    tx: TxState,
    rx_fifo: VecDeque<RxFrame>,
    rx_fifo_bytes: usize,
    rx_partial: usize,
    rx_stalled: bool,
    rdtr_at: Option<Instant>,
    radv_at: Option<Instant>,
    tidv_at: Option<Instant>,
    tadv_at: Option<Instant>,
    /// Flow control (SDM "Flow Control"): transmitter paused by a received XOFF.
    tx_paused_until: Option<Instant>,
    /// We sent XOFF and have not sent XON yet.
    xoff_sent: bool,
    /// When to refresh the XOFF if the FIFO is still above the high threshold.
    xoff_refresh_at: Option<Instant>,
    /// MAC control frames (PAUSE) waiting to go out, ahead of normal traffic.
    pub(crate) fc_out: Vec<WireFrame>,
}

impl Device {
    pub(crate) fn new(cfg: &SimConfig, dma: SimDma, irq: Arc<SimIrq>, now: Instant) -> Self {
        let (variant, mac, an_time) = (cfg.variant, cfg.mac, cfg.autoneg_time);
        let (wire_up, pci_enabled) = (cfg.link_up, cfg.pci_enabled);
        let image = eeprom::image(mac, variant.vendor_id(), variant.device_id());
        let pci = PciConfigSpace::new(
            variant,
            image[eeprom::word::SUBSYS_VENDOR],
            image[eeprom::word::SUBSYS_ID],
            pci_enabled,
        );
        let mut d = Self {
            variant,
            bus_status: cfg.bus.unwrap_or(variant.default_bus()).status_bits(),
            pci,
            regs: vec![0u32; REG_WORDS].into_boxed_slice(),
            stats: Stats([0; 64]),
            eeprom: Eeprom::new(image),
            phy: Phy::new(variant.phy_id(), an_time),
            mac_link: false,
            wire_up,
            dma,
            irq,
            faults: FaultLog::default(),
            defects: Defects::default(),
            icr: 0,
            ims: 0,
            asserted: false,
            last_assert: None,
            itr_at: None,
            eerd_pending: false,
            mdic_pending: false,
            tx: TxState::default(),
            rx_fifo: VecDeque::new(),
            rx_fifo_bytes: 0,
            rx_partial: 0,
            rx_stalled: false,
            rdtr_at: None,
            radv_at: None,
            tidv_at: None,
            tadv_at: None,
            tx_paused_until: None,
            xoff_sent: false,
            xoff_refresh_at: None,
            fc_out: Vec::new(),
        };
        d.reset(now);
        d.phy.hard_reset(now, wire_up);
        d
    }

    fn r(&self, off: u32) -> u32 {
        self.regs[(off / 4) as usize]
    }

    fn set(&mut self, off: u32, v: u32) {
        self.regs[(off / 4) as usize] = v;
    }

    /// Global reset (CTRL.RST, SDM "Software Reset"): registers to their initial
    /// values, the receive address reloaded from the EEPROM, queues flushed. The PHY is not
    /// reset (that is CTRL.PHY_RST); statistics are cleared.
    ///
    /// The wake-up status and the stored wake-up packet (WUS, WUPL, WUPM) survive it: they
    /// are what the driver reads after the wake-up (SDM 13.6.3, 13.6.7-8).
    fn reset(&mut self, now: Instant) {
        let wus = self.r(WUS);
        let wupl = self.r(WUPL);
        // PBA keeps what software wrote across the reset (Linux's e1000 writes the split
        // and then resets to put it into effect); at power-on it is 48 KB. The model
        // applies a new split at once.
        let rxa = match self.r(PBA) & pba::RXA_MASK {
            0 => pba::RXA_DEFAULT,
            v => v,
        };
        let wupm: Vec<u32> = (0..WUPM_LEN / 4).map(|i| self.r(WUPM + 4 * i)).collect();
        self.regs.fill(0);
        self.set(WUS, wus);
        self.set(WUPL, wupl);
        for (i, w) in wupm.into_iter().enumerate() {
            self.set(WUPM + 4 * i as u32, w);
        }
        self.set(CTRL, ctrl::FD | (2 << 8));
        self.set(PBA, rxa);
        self.set(VET, 0x8100);
        self.set(LEDCTL, ledctl::RESET_VALUE);
        self.set(RXDCTL, 1 << dctl::WTHRESH_SHIFT);
        self.set(TXDCTL, 0);
        self.set(TIPG, 0x0060_2008);
        self.set(TXCW, 0x0000_01E0);
        let w = self.eeprom.words();
        let mac = [
            w[0] as u8,
            (w[0] >> 8) as u8,
            w[1] as u8,
            (w[1] >> 8) as u8,
            w[2] as u8,
            (w[2] >> 8) as u8,
        ];
        let (ral, rah) = mac_to_ra(mac);
        self.set(RAL, ral);
        self.set(RAH, rah | rah::AV);
        self.stats = Stats([0; 64]);
        self.icr = 0;
        self.ims = 0;
        self.itr_at = None;
        self.last_assert = None;
        self.eerd_pending = false;
        self.mdic_pending = false;
        self.tx = TxState::default();
        self.rx_fifo.clear();
        self.rx_fifo_bytes = 0;
        self.rx_partial = 0;
        self.rx_stalled = false;
        self.rdtr_at = None;
        self.radv_at = None;
        self.tidv_at = None;
        self.tadv_at = None;
        self.tx_paused_until = None;
        self.xoff_sent = false;
        self.xoff_refresh_at = None;
        self.fc_out.clear();
        self.update_link(now);
        self.update_irq(now);
    }

    // -----------------------------------------------------------------------------------
    // Link
    // -----------------------------------------------------------------------------------

    fn update_link(&mut self, now: Instant) {
        let up = self.phy.link().is_some() && self.r(CTRL) & ctrl::SLU != 0;
        if up != self.mac_link {
            self.mac_link = up;
            self.cause(icr::LSC, now);
        }
    }

    pub(crate) fn wire_changed(&mut self, now: Instant, up: bool) {
        self.wire_up = up;
        if self.r(CTRL) & ctrl::PHY_RST == 0 {
            self.phy.wire_changed(now, up);
            self.wake_on_link_change();
        }
        self.update_link(now);
    }

    /// Replaces the link partner (renegotiating if the PHY is out of reset).
    pub(crate) fn set_link_partner(&mut self, p: crate::phy::LinkPartner, now: Instant) {
        let wire = self.wire_up && self.r(CTRL) & ctrl::PHY_RST == 0;
        self.phy.set_partner(p, now, wire);
        self.update_link(now);
    }

    /// The link partner.
    pub(crate) fn link_partner(&self) -> crate::phy::LinkPartner {
        self.phy.partner()
    }

    /// Counts 1000BASE-T idle errors in the PHY.
    pub(crate) fn phy_add_idle_errors(&mut self, n: u32) {
        self.phy.add_idle_errors(n);
    }

    // -----------------------------------------------------------------------------------
    // Wake-up (SDM 6.4, 13.6)
    // -----------------------------------------------------------------------------------

    /// A link change wakes with WUC.PME_EN and WUFC.LNKC, if the PHY is powered to see it
    /// and an earlier link change is not still in WUS.
    fn wake_on_link_change(&mut self) {
        let armed = self.r(WUC) & wuc::PME_EN != 0 && self.r(WUFC) & wufc::LNKC != 0;
        if armed && !self.phy.powered_down() && self.r(WUS) & wufc::LNKC == 0 {
            self.set(WUS, self.r(WUS) | wufc::LNKC);
            self.set(WUC, self.r(WUC) | wuc::PME_STATUS);
        }
    }

    /// Whether any packet wake-up is armed (ACPI filters with PME_EN, or APM).
    fn wake_armed(&self) -> bool {
        let wuc_v = self.r(WUC);
        wuc_v & wuc::APME != 0
            || (wuc_v & wuc::PME_EN != 0 && self.r(WUFC) & wufc::PACKET_MASK != 0)
    }

    /// The wake-up filters see every good frame the PHY receives, whether or not the
    /// receiver's DMA runs (SDM 6.4.2): a frame that passes the standard address filter and
    /// an enabled filter (WUFC with WUC.PME_EN; magic packets also with WUC.APME, the APM
    /// wake-up) sets the filters' WUS bits, is stored in WUPL/WUPM and sets
    /// WUC.PME_STATUS. Until the driver clears WUS's packet bits, later packets do not wake.
    fn wake_on_frame(&mut self, f: &WireFrame) {
        let wuc_v = self.r(WUC);
        let acpi = if wuc_v & wuc::PME_EN != 0 {
            self.r(WUFC)
        } else {
            0
        };
        let apm = if wuc_v & wuc::APME != 0 { wufc::MAG } else { 0 };
        let armed = (acpi | apm) & wufc::PACKET_MASK;
        if armed == 0
            || !f.fcs_ok
            || self.phy.link().is_none()
            || self.r(WUS) & wufc::PACKET_MASK != 0
            || f.data.len() < net::ETH_HLEN
        {
            return;
        }
        let dst = net::dst_mac(&f.data);
        let broadcast = dst == net::BROADCAST;
        let passed = self.address_match(&dst);
        let mut hit = 0;
        match passed {
            Some(_) if broadcast => hit |= wufc::BC,
            Some(_) if net::is_multicast(&dst) => hit |= wufc::MC,
            Some(true) => hit |= wufc::EX,
            _ => {}
        }
        // SDM 6.4.3.1.4: a broadcast magic packet passes without RCTL.BAM on the 82540 and
        // later; the 82544 needs BAM (or another filter) for it.
        let magic_dst = passed.is_some() || (broadcast && self.variant != Variant::I82544GC);
        let ra0 = ra_to_mac(self.r(RAL), self.r(RAH));
        if magic_dst && self.r(RAH) & rah::AV != 0 && net::is_magic_packet(&f.data, ra0) {
            hit |= wufc::MAG;
        }
        let hit = hit & armed;
        if hit == 0 {
            return;
        }
        self.set(WUS, self.r(WUS) | hit);
        let len = (f.data.len() + net::FCS_LEN).min(2047) as u32;
        self.set(WUPL, len & WUPL_LEN_MASK);
        for i in 0..WUPM_LEN / 4 {
            let b = |k: u32| f.data.get((4 * i + k) as usize).copied().unwrap_or(0);
            self.set(WUPM + 4 * i, u32::from_le_bytes([b(0), b(1), b(2), b(3)]));
        }
        if hit & acpi != 0 || wuc_v & wuc::APMPME != 0 {
            self.set(WUC, self.r(WUC) | wuc::PME_STATUS);
        }
    }

    /// Whether transmitted frames loop back into the receiver (PHY loopback in BMCR or
    /// RCTL.LBM).
    pub(crate) fn loopback(&self) -> bool {
        self.phy.loopback() || self.r(RCTL) & rctl::LBM_MASK != 0
    }

    fn status(&self) -> u32 {
        let mut s = 0;
        if let Some(l) = self.phy.link() {
            if l.full_duplex {
                s |= status::FD;
            }
            s |= match l.speed {
                Speed::M10 => status::SPEED_10,
                Speed::M100 => status::SPEED_100,
                Speed::M1000 => status::SPEED_1000,
            };
        }
        if self.mac_link {
            s |= status::LU;
        }
        if self.tx_paused_until.is_some() {
            s |= status::TXOFF;
        }
        s | self.bus_status
    }

    // -----------------------------------------------------------------------------------
    // Interrupts (SDM 13.4 ICR/ICS/IMS/IMC/ITR)
    // -----------------------------------------------------------------------------------

    fn cause(&mut self, bits: u32, now: Instant) {
        self.icr |= bits & self.variant.icr_causes() & !self.defects.dead_causes;
        self.update_irq(now);
    }

    /// Recomputes the interrupt line: asserted while `ICR & IMS != 0`, but a new assertion
    /// waits until ITR intervals (256 ns units) have passed since the previous one.
    pub(crate) fn update_irq(&mut self, now: Instant) {
        if self.icr & self.ims == 0 {
            self.itr_at = None;
            if self.asserted {
                self.asserted = false;
                self.irq.set_level(false);
            }
            return;
        }
        if self.asserted {
            return;
        }
        let itr = u64::from(self.r(ITR) & 0xFFFF);
        let earliest = match self.last_assert {
            Some(t) if itr != 0 => t + Duration::from_nanos(itr * ITR_UNIT_NS),
            _ => now,
        };
        if now >= earliest {
            self.asserted = true;
            self.last_assert = Some(now);
            self.itr_at = None;
            self.irq.set_level(!self.pci.intx_disabled());
        } else {
            self.itr_at = Some(earliest);
        }
    }

    // -----------------------------------------------------------------------------------
    // PCI configuration space
    // -----------------------------------------------------------------------------------

    pub(crate) fn config_read(&self, off: u16) -> u32 {
        self.pci.read32(off, self.asserted)
    }

    pub(crate) fn config_write(&mut self, off: u16, v: u32) {
        self.pci.write32(off, v);
        // INTX_DISABLE gates the pin, not the pending state.
        self.irq
            .set_level(self.asserted && !self.pci.intx_disabled());
    }

    // -----------------------------------------------------------------------------------
    // Register access
    // -----------------------------------------------------------------------------------

    pub(crate) fn read(&mut self, off: u32, now: Instant) -> u32 {
        let v = self.read_register(off, now);
        if self.pci.memory_enabled() {
            v & !self.defects.stuck(off)
        } else {
            v
        }
    }

    fn read_register(&mut self, off: u32, now: Instant) -> u32 {
        if !self.pci.memory_enabled() {
            // BAR0 does not decode: the read master-aborts and returns all ones.
            self.faults.push(Fault::MemorySpaceDisabled { off });
            return !0;
        }
        if !off.is_multiple_of(4) {
            self.faults.push(Fault::Unaligned { off });
            return 0;
        }
        match off {
            CTRL => self.r(CTRL),
            STATUS => self.status(),
            EECD => {
                let mut v =
                    self.r(EECD) & (eecd::SK | eecd::CS | eecd::DI | eecd::FWE_MASK | eecd::REQ);
                if self.eeprom.dout() {
                    v |= eecd::DO;
                }
                if self.variant.eeprom_needs_grant() && v & eecd::REQ != 0 && !self.eerd_pending {
                    v |= eecd::GNT;
                }
                v | eecd::PRES
            }
            EERD if self.variant.has_eerd() => self.r(EERD),
            PBA => {
                let rxa = self.r(PBA) & pba::RXA_MASK;
                (pba::TOTAL_KB.saturating_sub(rxa) << pba::TXA_SHIFT) | rxa
            }
            MDIC => self.r(MDIC),
            ICR => {
                // Read-to-clear (SDM 13.4).
                let v = self.icr;
                self.icr = 0;
                self.update_irq(now);
                v
            }
            IMS => self.ims,
            ICS | IMC => 0, // write-only
            RCTL | TCTL | RDLEN | TDLEN | RDH | RDT | TDH | TDT | RDTR | TIDV | WUS => self.r(off),
            o if is_stat(o) => self.read_stat(o),
            o if is_storage(o) => self.r(o),
            _ => {
                self.faults.push(Fault::UnmappedRead { off });
                0
            }
        }
    }

    /// Adds `n` to the statistics counter at `off` (as if `n` events had been counted);
    /// returns false if `off` is not a counter. A 64-bit counter is named by its low half.
    pub(crate) fn add_stat(&mut self, off: u32, n: u64) -> bool {
        let wide_high = STATS_64BIT_LOW.contains(&off.wrapping_sub(4));
        if !is_stat(off) || wide_high {
            return false;
        }
        self.stats.add(off, n);
        true
    }

    /// Receives a frame the transmitter looped back (MAC or PHY loopback).
    pub(crate) fn loop_back(&mut self, mut f: WireFrame, now: Instant) {
        self.defects.corrupt(&mut f.data);
        self.receive(f, now);
    }

    fn read_stat(&mut self, off: u32) -> u32 {
        let i = Stats::idx(off);
        if STATS_64BIT_LOW.contains(&off) {
            // The low half does not clear; reading the high half clears the pair.
            return self.stats.0[i] as u32;
        }
        if STATS_64BIT_LOW.contains(&(off - 4)) {
            let v = (self.stats.0[i - 1] >> 32) as u32;
            self.stats.0[i - 1] = 0;
            return v;
        }
        let v = self.stats.0[i] as u32;
        self.stats.0[i] = 0;
        v
    }

    pub(crate) fn write(&mut self, off: u32, v: u32, now: Instant) {
        if !self.pci.memory_enabled() {
            self.faults.push(Fault::MemorySpaceDisabled { off });
            return;
        }
        if !off.is_multiple_of(4) {
            self.faults.push(Fault::Unaligned { off });
            return;
        }
        match off {
            CTRL => {
                if v & ctrl::RST != 0 {
                    self.reset(now);
                    return;
                }
                let old = self.r(CTRL);
                self.set(CTRL, v);
                if v & ctrl::PHY_RST != 0 {
                    self.phy.hold_reset();
                } else if old & ctrl::PHY_RST != 0 {
                    self.phy.hard_reset(now, self.wire_up);
                }
                self.update_link(now);
            }
            STATUS => self.faults.push(Fault::ReadOnlyWrite { off, value: v }),
            PBA => self.set(PBA, v & pba::RXA_MASK),
            EECD => self.write_eecd(v),
            EERD if self.variant.has_eerd() => {
                let keep = v & (eerd::ADDR_MASK | eerd::START);
                self.set(EERD, keep);
                if v & eerd::START != 0 {
                    self.eerd_pending = true;
                }
            }
            MDIC => {
                self.set(MDIC, v & !(mdic::READY | mdic::ERROR));
                // Every write starts an MDIO cycle; reserved opcodes complete with MDIC.E.
                self.mdic_pending = true;
            }
            ICR => {
                self.icr &= !v;
                self.update_irq(now);
            }
            ICS => self.cause(v, now),
            IMS => {
                self.ims |= v & self.variant.icr_causes();
                self.update_irq(now);
            }
            IMC => {
                self.ims &= !v;
                self.update_irq(now);
            }
            ITR => {
                self.set(ITR, v & 0xFFFF);
                self.update_irq(now);
            }
            RCTL => {
                let old = self.r(RCTL);
                self.set(RCTL, v);
                if (old ^ v) & rctl::EN != 0 && v & rctl::EN == 0 {
                    // Disabling the receiver drops what the FIFO holds.
                    self.rx_fifo.clear();
                    self.rx_fifo_bytes = 0;
                    self.rx_partial = 0;
                }
                self.rx_stalled = false;
            }
            TCTL => {
                // SWXOFF is self-clearing: it sends one XOFF frame (SDM 13.4 TCTL).
                self.set(TCTL, v & !tctl::SWXOFF);
                self.tx.stalled = false;
                if v & tctl::SWXOFF != 0 && self.mac_link {
                    let t = (self.r(FCTTV) & 0xFFFF) as u16;
                    self.send_pause(t);
                    self.stats.inc(XOFFTXC);
                }
            }
            RDLEN | TDLEN => {
                if v & 0x7F != 0 {
                    let ring = if off == RDLEN { Ring::Rx } else { Ring::Tx };
                    self.faults
                        .push(Fault::RingLengthNotMultipleOf128 { ring, len: v });
                }
                self.set(off, v & 0x000F_FF80);
                self.unstall(off);
            }
            RDBAL | TDBAL => {
                self.set(off, v & !0xF);
                self.unstall(off);
            }
            RDBAH | TDBAH => {
                self.set(off, v);
                self.unstall(off);
            }
            RDH | RDT | TDH | TDT => {
                self.set(off, v & 0xFFFF);
                self.unstall(off);
            }
            RDTR => {
                self.set(RDTR, v & 0xFFFF);
                if v & FPD != 0 && (self.rdtr_at.is_some() || self.radv_at.is_some()) {
                    self.rdtr_at = None;
                    self.radv_at = None;
                    self.cause(icr::RXT0, now);
                }
            }
            TIDV => {
                self.set(TIDV, v & 0xFFFF);
                if v & FPD != 0 && (self.tidv_at.is_some() || self.tadv_at.is_some()) {
                    self.tidv_at = None;
                    self.tadv_at = None;
                    self.cause(icr::TXDW, now);
                }
            }
            RADV | TADV => self.set(off, v & 0xFFFF),
            // Write 1 to clear (SDM 13.6.3).
            WUS => self.set(WUS, self.r(WUS) & !v),
            o if is_stat(o) => self.faults.push(Fault::ReadOnlyWrite { off, value: v }),
            o if is_storage(o) => self.set(o, v),
            _ => self.faults.push(Fault::UnmappedWrite { off, value: v }),
        }
    }

    fn unstall(&mut self, off: u32) {
        if (0x2800..0x2900).contains(&off) {
            self.rx_stalled = false;
        } else {
            self.tx.stalled = false;
        }
    }

    fn write_eecd(&mut self, v: u32) {
        let old = self.r(EECD);
        let writable = eecd::SK | eecd::CS | eecd::DI | eecd::FWE_MASK | eecd::REQ;
        self.set(EECD, v & writable);
        let pins = eecd::SK | eecd::CS | eecd::DI;
        let granted = !self.variant.eeprom_needs_grant() || v & eecd::REQ != 0;
        if !granted {
            if (old ^ v) & pins != 0 && v & (eecd::CS | eecd::SK) != 0 {
                self.faults.push(Fault::EepromWithoutGrant);
            }
            return;
        }
        self.eeprom
            .set_pins(v & eecd::CS != 0, v & eecd::SK != 0, v & eecd::DI != 0);
    }

    // -----------------------------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------------------------

    /// Completes slow operations and fires timers that are due.
    pub(crate) fn tick(&mut self, now: Instant) {
        if self.eerd_pending {
            self.eerd_pending = false;
            let v = self.r(EERD);
            let addr = (v & eerd::ADDR_MASK) >> eerd::ADDR_SHIFT;
            if addr as usize >= eeprom::WORDS {
                self.faults.push(Fault::EepromAddressOutOfRange { addr });
            }
            let data = u32::from(self.eeprom.read_word(addr as usize));
            self.set(
                EERD,
                (v & eerd::ADDR_MASK) | eerd::DONE | (data << eerd::DATA_SHIFT),
            );
        }
        if self.mdic_pending {
            self.mdic_pending = false;
            let v = self.r(MDIC);
            let phy = (v >> mdic::PHY_SHIFT) & 0x1F;
            let reg = (v >> mdic::REG_SHIFT) & 0x1F;
            let mut out = v & !(mdic::READY | mdic::ERROR);
            if phy != regs::phy::ADDR {
                self.faults.push(Fault::PhyAddressInvalid { phy });
                out |= mdic::ERROR;
            } else if v & mdic::OP_MASK == mdic::OP_READ {
                out = (out & !mdic::DATA_MASK) | u32::from(self.phy.read(reg));
            } else if v & mdic::OP_MASK == mdic::OP_WRITE {
                let wire = self.wire_up;
                self.phy.write(reg, v as u16, now, wire);
            } else {
                out |= mdic::ERROR;
            }
            self.set(MDIC, out | mdic::READY);
            if v & mdic::INT_EN != 0 {
                self.cause(icr::MDAC, now);
            }
            self.update_link(now);
        }
        if self.r(CTRL) & ctrl::PHY_RST == 0 && self.phy.tick(now) {
            self.update_link(now);
        }
        let fired = |t: &mut Option<Instant>| match *t {
            Some(d) if now >= d => {
                *t = None;
                true
            }
            _ => false,
        };
        let mut rx = fired(&mut self.rdtr_at);
        rx |= fired(&mut self.radv_at);
        if rx {
            self.rdtr_at = None;
            self.radv_at = None;
            self.cause(icr::RXT0, now);
        }
        let mut tx = fired(&mut self.tidv_at);
        tx |= fired(&mut self.tadv_at);
        if tx {
            self.tidv_at = None;
            self.tadv_at = None;
            self.cause(icr::TXDW, now);
        }
        if matches!(self.itr_at, Some(t) if now >= t) {
            self.update_irq(now);
        }
        if matches!(self.tx_paused_until, Some(t) if now >= t) {
            self.tx_paused_until = None;
        }
        if matches!(self.xoff_refresh_at, Some(t) if now >= t) {
            self.flow_control(now);
        }
    }

    // -----------------------------------------------------------------------------------
    // Flow control (IEEE 802.3x PAUSE; SDM 13.4 FCAL/FCAH/FCT/FCTTV/FCRTL/FCRTH)
    // -----------------------------------------------------------------------------------

    /// Duration of one pause quantum (512 bit times) at the current link speed.
    fn pause_quantum(&self) -> Duration {
        let ns = match self.phy.link().map(|l| l.speed) {
            Some(Speed::M10) => 51_200,
            Some(Speed::M100) => 5_120,
            _ => 512,
        };
        Duration::from_nanos(ns)
    }

    /// Queues a PAUSE frame with `time` quanta to the flow control address.
    fn send_pause(&mut self, time: u16) {
        let dst = ra_to_mac(self.r(FCAL), self.r(FCAH) & 0xFFFF);
        let src = ra_to_mac(self.r(RAL), self.r(RAH));
        let mut f = net::eth_header(dst, src, (self.r(FCT) & 0xFFFF) as u16);
        f.extend_from_slice(&1u16.to_be_bytes());
        f.extend_from_slice(&time.to_be_bytes());
        f.resize(net::ETH_ZLEN, 0);
        let wire_len = (f.len() + net::FCS_LEN) as u64;
        self.stats.inc(TPT);
        self.stats.add(TOTL, wire_len);
        self.fc_out.push(WireFrame {
            data: f,
            fcs_ok: true,
        });
    }

    /// Sends XOFF when the receive FIFO fills past FCRTH, XON (if FCRTL.XONE) when it
    /// drains below FCRTL, and refreshes XOFF while it stays full (CTRL.TFCE).
    fn flow_control(&mut self, now: Instant) {
        if self.r(CTRL) & ctrl::TFCE == 0 || !self.mac_link {
            self.xoff_sent = false;
            self.xoff_refresh_at = None;
            return;
        }
        let high = (self.r(FCRTH) & 0xFFF8) as usize;
        let low = (self.r(FCRTL) & 0xFFF8) as usize;
        let xone = self.r(FCRTL) & (1 << 31) != 0;
        let ttv = (self.r(FCTTV) & 0xFFFF) as u16;
        let occ = self.rx_fifo_bytes;
        let refresh_due = self.xoff_refresh_at.is_none_or(|t| now >= t);
        if high > 0 && occ >= high {
            if !self.xoff_sent || refresh_due {
                self.send_pause(ttv);
                self.stats.inc(XOFFTXC);
                self.xoff_sent = true;
                // Refresh halfway through the pause time if still above the threshold.
                let half = self.pause_quantum() * u32::from(ttv.max(2) / 2);
                self.xoff_refresh_at = Some(now + half);
            }
        } else if self.xoff_sent && occ < low {
            self.xoff_sent = false;
            self.xoff_refresh_at = None;
            if xone {
                self.send_pause(0);
                self.stats.inc(XONTXC);
            }
        } else if self.xoff_refresh_at.is_some() && refresh_due {
            // Between the thresholds: no refresh, but XOFF again if the FIFO refills.
            self.xoff_refresh_at = None;
        }
    }

    /// A received MAC control frame: returns true if it was a PAUSE frame that the MAC
    /// consumed (CTRL.RFCE set).
    fn receive_pause(&mut self, f: &[u8], now: Instant) -> bool {
        if self.r(CTRL) & ctrl::RFCE == 0 || f.len() < 18 {
            return false;
        }
        let fct = (self.r(FCT) & 0xFFFF) as u16;
        let fca = ra_to_mac(self.r(FCAL), self.r(FCAH) & 0xFFFF);
        let dst = net::dst_mac(f);
        let station = ra_to_mac(self.r(RAL), self.r(RAH));
        if net::ethertype(f) != fct || (dst != fca && dst != station) {
            return false;
        }
        let opcode = u16::from_be_bytes([f[14], f[15]]);
        if opcode != 1 {
            self.stats.inc(FCRUC);
            return true;
        }
        let time = u16::from_be_bytes([f[16], f[17]]);
        if time == 0 {
            self.stats.inc(XONRXC);
            self.tx_paused_until = None;
        } else {
            self.stats.inc(XOFFRXC);
            self.tx_paused_until = Some(now + self.pause_quantum() * u32::from(time));
        }
        true
    }

    /// The earliest instant at which [`tick`](Device::tick) has something to do.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        [
            self.phy.deadline(),
            self.rdtr_at,
            self.radv_at,
            self.tidv_at,
            self.tadv_at,
            self.itr_at,
            self.tx_paused_until,
            self.xoff_refresh_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Whether an MMIO-initiated operation waits for the device thread.
    pub(crate) fn has_pending_ops(&self) -> bool {
        self.eerd_pending || self.mdic_pending
    }

    // -----------------------------------------------------------------------------------
    // Rings
    // -----------------------------------------------------------------------------------

    fn ring(&mut self, ring: Ring) -> Option<(u64, u32, u32, u32)> {
        let (bal, bah, len, h, t) = match ring {
            Ring::Rx => (RDBAL, RDBAH, RDLEN, RDH, RDT),
            Ring::Tx => (TDBAL, TDBAH, TDLEN, TDH, TDT),
        };
        let base = (u64::from(self.r(bah)) << 32) | u64::from(self.r(bal));
        let count = self.r(len) / DESC_LEN as u32;
        let (head, tail) = (self.r(h), self.r(t));
        let stall = |d: &mut Self| match ring {
            Ring::Rx => d.rx_stalled = true,
            Ring::Tx => d.tx.stalled = true,
        };
        if count == 0 {
            self.faults.push(Fault::RingLengthZero { ring });
            stall(self);
            return None;
        }
        if head >= count || tail >= count {
            self.faults.push(Fault::HeadTailOutOfRange {
                ring,
                head,
                tail,
                count,
            });
            stall(self);
            return None;
        }
        Some((base, count, head, tail))
    }

    // -----------------------------------------------------------------------------------
    // Transmit (SDM 3.3)
    // -----------------------------------------------------------------------------------

    /// Processes up to `budget` transmit descriptors; frames to send go to `out`.
    /// Returns the number of descriptors processed.
    pub(crate) fn process_tx(
        &mut self,
        now: Instant,
        budget: usize,
        out: &mut Vec<WireFrame>,
    ) -> usize {
        if !self.tx_ready() {
            return 0;
        }
        let Some((base, count, mut head, tail)) = self.ring(Ring::Tx) else {
            return 0;
        };
        let mut n = 0;
        while head != tail && n < budget {
            let addr = base.wrapping_add(u64::from(head) * DESC_LEN as u64);
            let mut d = [0u8; DESC_LEN];
            if self.dma.bus_read(addr, &mut d).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::TxDescriptor,
                    addr,
                    len: DESC_LEN,
                });
                self.tx.stalled = true;
                break;
            }
            let (rs, ide) = self.tx_descriptor(&d, head, now, out);
            if rs {
                if self.dma.bus_write(addr + 12, &[txd_stat::DD]).is_err() {
                    self.faults.push(Fault::BusError {
                        source: DmaSource::TxWriteBack,
                        addr: addr + 12,
                        len: 1,
                    });
                }
                let tidv = self.r(TIDV) & 0xFFFF;
                if ide && tidv != 0 {
                    self.tidv_at = Some(now + delay(tidv));
                    let tadv = self.r(TADV) & 0xFFFF;
                    if tadv != 0 && self.tadv_at.is_none() {
                        self.tadv_at = Some(now + delay(tadv));
                    }
                } else {
                    self.icr |= icr::TXDW;
                }
            }
            head = (head + 1) % count;
            n += 1;
        }
        self.set(TDH, head);
        if head == tail && n > 0 {
            self.icr |= icr::TXQE;
        }
        self.update_irq(now);
        n
    }

    /// Handles one transmit descriptor; returns (RS, IDE).
    fn tx_descriptor(
        &mut self,
        d: &[u8; 16],
        index: u32,
        now: Instant,
        out: &mut Vec<WireFrame>,
    ) -> (bool, bool) {
        let addr = u64::from_le_bytes(d[0..8].try_into().unwrap_or_default());
        let dw2 = u32::from_le_bytes([d[8], d[9], d[10], d[11]]);
        let cmd = d[11];
        let rs = cmd & txd_cmd::RS != 0;
        let ide = cmd & txd_cmd::IDE != 0;
        if cmd & txd_cmd::DEXT == 0 {
            // Legacy descriptor (SDM 3.3.3).
            let length = usize::from(u16::from_le_bytes([d[8], d[9]]));
            if self.tx.kind == Some(TxKind::Data) {
                self.tx_reset_packet();
            }
            if self.tx.kind.is_none() {
                // CSS (and CSO) are taken from the first descriptor of the packet.
                self.tx.kind = Some(TxKind::Legacy);
                self.tx.legacy_cso_css = (d[10], d[13]);
            }
            self.gather(addr, length);
            if cmd & txd_cmd::EOP != 0 {
                let mut pkt = std::mem::take(&mut self.tx.pkt);
                if !self.tx.bad {
                    // VLE, IFCS and IC are interpreted only with EOP (SDM 3.3.3.1).
                    if cmd & txd_cmd::IC != 0 {
                        let (cso, css) = self.tx.legacy_cso_css;
                        self.insert_csum(&mut pkt, usize::from(css), 0, usize::from(cso));
                    }
                    let special = u16::from_le_bytes([d[14], d[15]]);
                    self.transmit(pkt, cmd, special, now, out);
                }
                self.tx_reset_packet();
            }
            return (rs, ide);
        }
        let dtyp = (dw2 & dtyp::MASK) >> dtyp::SHIFT;
        match dtyp {
            dtyp::CONTEXT => {
                // Context descriptor (SDM 3.3.6).
                self.tx.ctx = TxContext {
                    ipcss: usize::from(d[0]),
                    ipcso: usize::from(d[1]),
                    ipcse: usize::from(u16::from_le_bytes([d[2], d[3]])),
                    tucss: usize::from(d[4]),
                    tucso: usize::from(d[5]),
                    tucse: usize::from(u16::from_le_bytes([d[6], d[7]])),
                    tucmd: dw2 & 0xFF00_0000,
                    paylen: (dw2 & tucmd::PAYLEN_MASK) as usize,
                    hdr_len: usize::from(d[13]),
                    mss: usize::from(u16::from_le_bytes([d[14], d[15]])),
                };
                (rs, ide)
            }
            dtyp::DATA => {
                // Data descriptor (SDM 3.3.7).
                let length = (dw2 & 0x000F_FFFF) as usize;
                let upper = u32::from_le_bytes([d[12], d[13], d[14], d[15]]);
                if self.tx.kind != Some(TxKind::Data) {
                    if self.tx.kind.is_some() {
                        self.tx_reset_packet();
                    }
                    self.tx.kind = Some(TxKind::Data);
                    self.tx.popts = upper & (popts::IXSM | popts::TXSM);
                    self.tx.tse = cmd & txd_cmd::TSE != 0;
                    self.tx.tso_cmd_special = (cmd, (upper >> 16) as u16);
                }
                self.gather(addr, length);
                if cmd & txd_cmd::EOP != 0 {
                    let pkt = std::mem::take(&mut self.tx.pkt);
                    if !self.tx.bad {
                        let special = (upper >> 16) as u16;
                        if self.tx.tse {
                            let (cmd, special) = self.tx.tso_cmd_special;
                            self.tso(pkt, cmd, special, now, out);
                        } else {
                            let mut pkt = pkt;
                            let c = self.tx.ctx;
                            if self.tx.popts & popts::IXSM != 0 {
                                self.insert_csum(&mut pkt, c.ipcss, c.ipcse, c.ipcso);
                            }
                            if self.tx.popts & popts::TXSM != 0 {
                                self.insert_csum(&mut pkt, c.tucss, c.tucse, c.tucso);
                            }
                            self.transmit(pkt, cmd, special, now, out);
                        }
                    }
                    self.tx_reset_packet();
                }
                (rs, ide)
            }
            _ => {
                self.faults
                    .push(Fault::InvalidDescriptorType { index, dtyp });
                (rs, ide)
            }
        }
    }

    fn tx_reset_packet(&mut self) {
        self.tx.pkt.clear();
        self.tx.kind = None;
        self.tx.popts = 0;
        self.tx.tse = false;
        self.tx.legacy_cso_css = (0, 0);
        self.tx.tso_cmd_special = (0, 0);
        self.tx.bad = false;
    }

    fn gather(&mut self, addr: u64, len: usize) {
        // Descriptors with a null address or zero length transfer no data (SDM 3.3.3).
        if self.tx.bad || addr == 0 || len == 0 {
            return;
        }
        if self.tx.pkt.len() + len > MAX_TX_PACKET {
            self.faults.push(Fault::TxPacketTooLong {
                len: self.tx.pkt.len() + len,
            });
            self.tx.bad = true;
            return;
        }
        if self
            .dma
            .bus_read_append(addr, len, &mut self.tx.pkt)
            .is_err()
        {
            self.faults.push(Fault::BusError {
                source: DmaSource::TxBuffer,
                addr,
                len,
            });
            self.tx.bad = true;
        }
    }

    /// Sums `pkt[start..=end]` (`end == 0`: to the end of the packet) and stores the
    /// complemented sum at `offset`, big-endian (SDM 3.3.5 "Checksum Offloading").
    fn insert_csum(&mut self, pkt: &mut [u8], start: usize, end: usize, offset: usize) {
        let stop = if end == 0 {
            pkt.len()
        } else {
            (end + 1).min(pkt.len())
        };
        if start >= stop || offset + 2 > pkt.len() {
            self.faults.push(Fault::ChecksumOffsetOutOfRange {
                start,
                offset,
                len: pkt.len(),
            });
            return;
        }
        let c = !net::csum_fold(net::csum_add(0, &pkt[start..stop]));
        pkt[offset..offset + 2].copy_from_slice(&c.to_be_bytes());
    }

    /// TCP/UDP segmentation (SDM ch. 3 "TCP Segmentation").
    fn tso(&mut self, pkt: Vec<u8>, cmd: u8, special: u16, now: Instant, out: &mut Vec<WireFrame>) {
        let c = self.tx.ctx;
        let ipv4 = c.tucmd & tucmd::IP != 0;
        let tcp = c.tucmd & tucmd::TCP != 0;
        let reason = if c.tucmd & tucmd::TSE == 0 {
            Some("context descriptor without TSE")
        } else if c.mss == 0 {
            Some("MSS is zero")
        } else if c.hdr_len == 0 || c.hdr_len > pkt.len() {
            Some("header length outside the packet")
        } else if c.tucss + if tcp { 18 } else { 8 } > c.hdr_len
            || c.ipcss + if ipv4 { 20 } else { 40 } > c.hdr_len
        {
            Some("header offsets outside the header")
        } else {
            None
        };
        if let Some(reason) = reason {
            self.faults.push(Fault::TsoInvalid { reason });
            self.stats.inc(TSCTFC);
            return;
        }
        let (hdr, payload) = pkt.split_at(c.hdr_len);
        // SDM 3.3.7.1: when the data does not add up to PAYLEN the context terminates
        // abnormally (counted in TSCTFC); the model still sends the data it has.
        let paylen_ok = payload.len() == c.paylen;
        if !paylen_ok {
            self.faults.push(Fault::TsoInvalid {
                reason: "PAYLEN differs from the data descriptors' payload",
            });
        }
        let ip_id = u16::from_be_bytes([hdr[c.ipcss + 4], hdr[c.ipcss + 5]]);
        let seq0 = u32::from_be_bytes(hdr[c.tucss + 4..c.tucss + 8].try_into().unwrap_or_default());
        let seed = u16::from_be_bytes([
            hdr[c.tucso.min(hdr.len() - 2)],
            hdr[(c.tucso + 1).min(hdr.len() - 1)],
        ]);
        let nseg = payload.len().div_ceil(c.mss).max(1);
        for i in 0..nseg {
            let chunk =
                &payload[(i * c.mss).min(payload.len())..((i + 1) * c.mss).min(payload.len())];
            let last = i + 1 == nseg;
            let mut seg = Vec::with_capacity(hdr.len() + chunk.len());
            seg.extend_from_slice(hdr);
            seg.extend_from_slice(chunk);
            let len = seg.len();
            if ipv4 {
                let total = (len - c.ipcss) as u16;
                seg[c.ipcss + 2..c.ipcss + 4].copy_from_slice(&total.to_be_bytes());
                let id = ip_id.wrapping_add(i as u16);
                seg[c.ipcss + 4..c.ipcss + 6].copy_from_slice(&id.to_be_bytes());
            } else {
                let plen = (len - c.ipcss - 40) as u16;
                seg[c.ipcss + 4..c.ipcss + 6].copy_from_slice(&plen.to_be_bytes());
            }
            let l4_len = len - c.tucss;
            if tcp {
                let seq = seq0.wrapping_add((i * c.mss) as u32);
                seg[c.tucss + 4..c.tucss + 8].copy_from_slice(&seq.to_be_bytes());
                if !last {
                    seg[c.tucss + 13] &= !0x09; // FIN and PSH only on the last segment
                }
            } else {
                seg[c.tucss + 4..c.tucss + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            }
            if ipv4 && self.tx.popts & popts::IXSM != 0 && c.ipcso + 2 <= len {
                seg[c.ipcso..c.ipcso + 2].fill(0);
                let end = if c.ipcse == 0 {
                    c.tucss.saturating_sub(1)
                } else {
                    c.ipcse
                };
                self.insert_csum(&mut seg, c.ipcss, end, c.ipcso);
            }
            if self.tx.popts & popts::TXSM != 0 && c.tucso + 2 <= len {
                // The driver seeds the pseudo-header sum without the length; the hardware
                // adds each segment's TCP/UDP length.
                seg[c.tucso..c.tucso + 2].fill(0);
                let sum = net::csum_add(u32::from(seed) + l4_len as u32, &seg[c.tucss..]);
                let v = !net::csum_fold(sum);
                seg[c.tucso..c.tucso + 2].copy_from_slice(&v.to_be_bytes());
            }
            self.transmit(seg, cmd, special, now, out);
        }
        self.stats.inc(if paylen_ok { TSCTC } else { TSCTFC });
    }

    /// Puts a finished frame on the wire: VLAN insertion, padding, FCS, statistics.
    fn transmit(
        &mut self,
        mut f: Vec<u8>,
        cmd: u8,
        special: u16,
        _now: Instant,
        out: &mut Vec<WireFrame>,
    ) {
        if cmd & txd_cmd::VLE != 0 && self.r(CTRL) & ctrl::VME != 0 && f.len() >= 12 {
            let vet = (self.r(VET) & 0xFFFF) as u16;
            let mut tag = [0u8; 4];
            tag[..2].copy_from_slice(&vet.to_be_bytes());
            tag[2..].copy_from_slice(&special.to_be_bytes());
            f.splice(12..12, tag);
        }
        let fcs_ok = if cmd & txd_cmd::IFCS != 0 {
            if self.r(TCTL) & tctl::PSP != 0 && f.len() < net::ETH_ZLEN {
                f.resize(net::ETH_ZLEN, 0);
            }
            true
        } else if f.len() >= net::FCS_LEN {
            // Software supplied the FCS as the last four bytes.
            let n = f.len() - net::FCS_LEN;
            let given = u32::from_le_bytes([f[n], f[n + 1], f[n + 2], f[n + 3]]);
            f.truncate(n);
            net::crc32(&f) == given
        } else {
            false
        };
        let wire_len = (f.len() + net::FCS_LEN) as u64;
        self.stats.inc(TPT);
        self.stats.add(TOTL, wire_len);
        if wire_len >= 64 {
            self.stats.inc(GPTC);
            self.stats.add(GOTCL, wire_len);
            self.stats.inc(match wire_len {
                64 => PTC64,
                65..=127 => PTC127,
                128..=255 => PTC255,
                256..=511 => PTC511,
                512..=1023 => PTC1023,
                _ => PTC1522,
            });
            let dst = net::dst_mac(&f);
            if dst == net::BROADCAST {
                self.stats.inc(BPTC);
            } else if net::is_multicast(&dst) {
                self.stats.inc(MPTC);
            }
        }
        out.push(WireFrame { data: f, fcs_ok });
    }

    // -----------------------------------------------------------------------------------
    // Receive (SDM 3.2)
    // -----------------------------------------------------------------------------------

    fn rx_fifo_capacity(&self) -> usize {
        ((self.r(PBA) & pba::RXA_MASK) as usize) * 1024
    }

    /// Whether a frame of `len` bytes (without FCS) would be taken into the receive FIFO
    /// now (used by the lossless peer).
    pub(crate) fn can_accept(&self, len: usize) -> bool {
        if self.r(RCTL) & rctl::EN == 0 {
            // With the receiver off only armed wake-up logic takes frames (and drops them
            // after filtering).
            return self.wake_armed() && self.phy.link().is_some();
        }
        (self.mac_link || self.loopback())
            && self.rx_fifo_bytes + len + 8 <= self.rx_fifo_capacity()
    }

    fn free_rx_descriptors(&self) -> u32 {
        let count = self.r(RDLEN) / DESC_LEN as u32;
        if count == 0 {
            return 0;
        }
        let (h, t) = (self.r(RDH), self.r(RDT));
        if h >= count || t >= count {
            return 0;
        }
        (t + count - h) % count
    }

    fn address_match(&self, dst: &[u8; 6]) -> Option<bool> {
        let rctl_v = self.r(RCTL);
        // Exact matches in the receive address array (SDM 13.4).
        for n in 0..RA_LEN {
            let rah_v = self.r(RAH + 8 * n);
            if rah_v & rah::AV != 0
                && rah_v & rah::AS_MASK == 0
                && ra_to_mac(self.r(RAL + 8 * n), rah_v) == *dst
            {
                return Some(true);
            }
        }
        if *dst == net::BROADCAST {
            return (rctl_v & rctl::BAM != 0 || rctl_v & rctl::MPE != 0).then_some(true);
        }
        if net::is_multicast(dst) {
            if rctl_v & rctl::MPE != 0 {
                return Some(false);
            }
            let mo = (rctl_v & rctl::MO_MASK) >> rctl::MO_SHIFT;
            let h = u32::from(mta_hash(*dst, mo));
            let word = self.r(MTA + 4 * (h >> 5));
            return (word & (1 << (h & 31)) != 0).then_some(false);
        }
        (rctl_v & rctl::UPE != 0).then_some(false)
    }

    /// A frame arrives from the wire (or loops back).
    pub(crate) fn receive(&mut self, f: WireFrame, now: Instant) {
        self.wake_on_frame(&f);
        let rctl_v = self.r(RCTL);
        if rctl_v & rctl::EN == 0 || !(self.mac_link || self.loopback()) {
            return;
        }
        let wire_len = (f.data.len() + net::FCS_LEN) as u64;
        self.stats.inc(TPR);
        self.stats.add(TORL, wire_len);
        if f.fcs_ok && self.receive_pause(&f.data, now) {
            return;
        }
        let vet = (self.r(VET) & 0xFFFF) as u16;
        let tagged = net::ethertype(&f.data) == vet && f.data.len() >= 18;
        let dst = net::dst_mac(&f.data);
        let filtered = self.address_match(&dst);
        // Length limits (SDM 13.7.15 RLEC, 13.7.34-37 RUC/RFC/ROC/RJC): under 64 bytes is
        // undersized; over 1522 bytes is oversized unless RCTL.LPE (then over 16384).
        let max = if rctl_v & rctl::LPE != 0 { 16384 } else { 1522 };
        let short = wire_len < 64;
        let long = wire_len > max;
        if filtered.is_some() && (short || long) {
            self.stats.inc(RLEC);
            self.stats.inc(match (short, f.fcs_ok) {
                (true, true) => RUC,
                (true, false) => RFC,
                (false, true) => ROC,
                (false, false) => RJC,
            });
            return;
        }
        let mut errors = 0u8;
        if !f.fcs_ok {
            // SDM 13.7.1: CRC errors are counted for frames of legal length.
            if !short && !long {
                self.stats.inc(CRCERRS);
            }
            if rctl_v & rctl::SBP == 0 || short || long {
                return;
            }
            errors |= rxd_err::CE;
        }
        let Some(exact) = filtered else {
            return;
        };
        let mut special = 0u16;
        if tagged {
            let tci = u16::from_be_bytes([f.data[14], f.data[15]]);
            if rctl_v & rctl::VFE != 0 {
                // VLAN filter (SDM 13.4): the VID indexes a bit of VFTA; with CFIEN the
                // CFI bit must equal RCTL.CFI.
                let vid = u32::from(tci & 0x0FFF);
                if self.r(VFTA + 4 * (vid >> 5)) & (1 << (vid & 31)) == 0 {
                    return;
                }
                if rctl_v & rctl::CFIEN != 0 && (tci & 0x1000 != 0) != (rctl_v & rctl::CFI != 0) {
                    return;
                }
            }
            special = tci;
        }
        let store_crc = rctl_v & rctl::SECRC == 0;
        let crc = match (store_crc, f.fcs_ok) {
            (false, _) => 0,
            (true, true) => net::crc32(&f.data),
            (true, false) => !net::crc32(&f.data),
        };
        let mut data = f.data;
        let mut status = 0u8;
        if tagged && self.r(CTRL) & ctrl::VME != 0 {
            data.drain(12..16);
            status |= rxd_stat::VP;
        } else {
            special = 0;
        }
        let (cs_status, cs_errors) = self.rx_checksum(&data);
        status |= cs_status;
        errors |= cs_errors;
        if !exact {
            status |= rxd_stat::PIF;
        }
        if store_crc {
            data.extend_from_slice(&crc.to_le_bytes());
        }
        // The packet checksum (SDM ch. 3, receive checksum offloading): the unadjusted one's complement sum from PCSS,
        // after VLAN stripping, including the CRC unless it is stripped.
        let pcss = (self.r(RXCSUM) & rxcsum::PCSS_MASK) as usize;
        let csum = if pcss < data.len() {
            net::csum_fold(net::csum_add(0, &data[pcss..]))
        } else {
            0
        };
        if self.free_rx_descriptors() == 0 {
            // SDM 13.7.33: no host buffer free when the frame arrived; it is still
            // received if the FIFO has room.
            self.stats.inc(RNBC);
        }
        if self.rx_fifo_bytes + data.len() > self.rx_fifo_capacity() {
            // The packet buffer is full: the frame is missed (SDM 13.7.5).
            self.stats.inc(MPC);
            self.cause(icr::RXO, now);
            return;
        }
        if f.fcs_ok {
            self.stats.inc(GPRC);
            self.stats.add(GORCL, wire_len);
            self.stats.inc(match wire_len {
                64 => PRC64,
                65..=127 => PRC127,
                128..=255 => PRC255,
                256..=511 => PRC511,
                512..=1023 => PRC1023,
                _ => PRC1522,
            });
            if dst == net::BROADCAST {
                self.stats.inc(BPRC);
            } else if net::is_multicast(&dst) {
                self.stats.inc(MPRC);
            }
        }
        self.rx_fifo_bytes += data.len();
        self.rx_fifo.push_back(RxFrame {
            data,
            status,
            errors,
            special,
            csum,
        });
        self.flow_control(now);
    }

    /// Receive checksum offload (SDM ch. 3 receive checksum offloading and 13.4 RXCSUM).
    fn rx_checksum(&self, d: &[u8]) -> (u8, u8) {
        let cfg = self.r(RXCSUM);
        let (mut st, mut er) = (0u8, 0u8);
        let et = net::ethertype(d);
        let l3 = &d[net::ETH_HLEN.min(d.len())..];
        let (proto, l4, pseudo) = match et {
            net::ETHERTYPE_IPV4 if l3.len() >= 20 && l3[0] >> 4 == 4 => {
                let ihl = usize::from(l3[0] & 0xF) * 4;
                let total = usize::from(u16::from_be_bytes([l3[2], l3[3]]));
                if ihl < 20 || ihl > l3.len() || total < ihl || total > l3.len() {
                    return (rxd_stat::IXSM, 0);
                }
                if cfg & rxcsum::IPOFLD != 0 {
                    st |= rxd_stat::IPCS;
                    if net::inet_csum(&l3[..ihl]) != 0 {
                        er |= rxd_err::IPE;
                    }
                }
                let frag = u16::from_be_bytes([l3[6], l3[7]]) & 0x3FFF != 0;
                if frag {
                    return (st, er);
                }
                let l4 = &l3[ihl..total];
                let mut p = net::csum_add(0, &l3[12..20]);
                p += u32::from(l3[9]) + l4.len() as u32;
                (l3[9], l4, p)
            }
            net::ETHERTYPE_IPV6 if l3.len() >= 40 && l3[0] >> 4 == 6 => {
                let plen = usize::from(u16::from_be_bytes([l3[4], l3[5]]));
                if 40 + plen > l3.len() {
                    return (rxd_stat::IXSM, 0);
                }
                let l4 = &l3[40..40 + plen];
                let mut p = net::csum_add(0, &l3[8..40]);
                p += u32::from(l3[6]) + plen as u32;
                (l3[6], l4, p)
            }
            _ => return (rxd_stat::IXSM, 0),
        };
        if cfg & rxcsum::TUOFLD != 0 && (proto == 6 || proto == 17) {
            let min = if proto == 6 { 20 } else { 8 };
            if l4.len() >= min {
                st |= rxd_stat::TCPCS;
                let zero_udp = proto == 17 && l4[6] == 0 && l4[7] == 0;
                if !zero_udp && net::csum_fold(net::csum_add(pseudo, l4)) != 0xFFFF {
                    er |= rxd_err::TCPE;
                }
            }
        }
        if st == 0 {
            st |= rxd_stat::IXSM;
        }
        (st, er)
    }

    /// Moves frames from the receive FIFO into host buffers, up to `budget` descriptors.
    /// Returns the number of descriptors used.
    pub(crate) fn process_rx(&mut self, now: Instant, budget: usize) -> usize {
        if self.rx_fifo.is_empty()
            || self.rx_stalled
            || self.r(RCTL) & rctl::EN == 0
            || !self.pci.bus_master()
        {
            return 0;
        }
        if self.r(RDH) == self.r(RDT) && self.r(RDH) < self.r(RDLEN) / 16 {
            return 0;
        }
        let Some(bufsize) = rctl::buffer_size(self.r(RCTL)) else {
            self.faults.push(Fault::ReservedBufferSize);
            self.rx_stalled = true;
            return 0;
        };
        let Some((base, count, mut head, tail)) = self.ring(Ring::Rx) else {
            return 0;
        };
        let thresh = count >> (((self.r(RCTL) & rctl::RDMTS_MASK) >> rctl::RDMTS_SHIFT) + 1);
        let mut n = 0;
        let mut frames = 0;
        while n < budget && head != tail {
            let Some(frame) = self.rx_fifo.front() else {
                break;
            };
            let addr = base.wrapping_add(u64::from(head) * DESC_LEN as u64);
            let mut b = [0u8; 8];
            if self.dma.bus_read(addr, &mut b).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::RxDescriptor,
                    addr,
                    len: DESC_LEN,
                });
                self.rx_stalled = true;
                break;
            }
            let buf = u64::from_le_bytes(b);
            let start = self.rx_partial;
            let end = (start + bufsize).min(frame.data.len());
            let last = end == frame.data.len();
            let mut wb = RxDesc {
                addr: buf,
                length: (end - start) as u16,
                ..RxDesc::default()
            };
            let mut errors = 0;
            if self.dma.bus_write(buf, &frame.data[start..end]).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::RxBuffer,
                    addr: buf,
                    len: end - start,
                });
                errors |= rxd_err::RXE;
            }
            wb.status = rxd_stat::DD;
            if start == 0 {
                // The packet checksum is reported in the first descriptor (SDM 3.2.3).
                wb.csum = frame.csum;
            }
            if last {
                wb.status |= rxd_stat::EOP | frame.status;
                wb.errors = frame.errors | errors;
                wb.special = frame.special;
            } else {
                wb.errors = errors;
            }
            let bytes = zerocopy::IntoBytes::as_bytes(&wb);
            if self.dma.bus_write(addr + 8, &bytes[8..]).is_err() {
                self.faults.push(Fault::BusError {
                    source: DmaSource::RxWriteBack,
                    addr: addr + 8,
                    len: 8,
                });
            }
            head = (head + 1) % count;
            n += 1;
            if last {
                let len = frame.data.len();
                self.rx_fifo.pop_front();
                self.rx_fifo_bytes -= len;
                self.rx_partial = 0;
                frames += 1;
            } else {
                self.rx_partial = end;
            }
            if (tail + count - head) % count == thresh {
                self.icr |= icr::RXDMT0;
            }
        }
        self.set(RDH, head);
        if frames > 0 {
            self.flow_control(now);
            let rdtr = self.r(RDTR) & 0xFFFF;
            if rdtr == 0 {
                self.icr |= icr::RXT0;
            } else {
                self.rdtr_at = Some(now + delay(rdtr));
                let radv = self.r(RADV) & 0xFFFF;
                if radv != 0 && self.radv_at.is_none() {
                    self.radv_at = Some(now + delay(radv));
                }
            }
        }
        self.update_irq(now);
        n
    }

    /// Whether the receive engine could make progress right now.
    pub(crate) fn rx_ready(&self) -> bool {
        self.pci.bus_master()
            && !self.rx_fifo.is_empty()
            && !self.rx_stalled
            && self.free_rx_descriptors() > 0
    }

    /// Whether the transmit engine could make progress right now.
    ///
    /// Without link the transmitter does not fetch descriptors (the MAC has nowhere to send
    /// them); queued work resumes when the link comes back.
    pub(crate) fn tx_ready(&self) -> bool {
        self.pci.bus_master()
            && self.r(TCTL) & tctl::EN != 0
            && !self.tx.stalled
            && self.tx_paused_until.is_none()
            && self.r(TDH) != self.r(TDT)
            && (self.mac_link || self.loopback())
    }

    /// Whether the receive FIFO holds more than half its capacity.
    pub(crate) fn rx_fifo_half_full(&self) -> bool {
        self.rx_fifo_bytes * 2 > self.rx_fifo_capacity()
    }

    /// Frames waiting in the receive FIFO.
    pub(crate) fn rx_fifo_len(&self) -> usize {
        self.rx_fifo.len()
    }
}
