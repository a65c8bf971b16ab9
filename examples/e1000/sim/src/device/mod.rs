//! The MAC: registers, interrupts, and the transmit and receive DMA engines.
//!
//! Everything here runs under the model's lock, either from an MMIO access (register
//! semantics) or from the device thread (DMA, timers). See `model.rs` for the threading.

mod flow;
mod regfile;
mod rx;
mod tx;
mod variant;
mod wakeup;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::eeprom::{self, Eeprom};
use crate::fault::{Defects, DmaSource, Fault, FaultLog, Ring};
use crate::model::SimConfig;
use crate::net;
use crate::pci::PciConfigSpace;
use crate::peer::WireFrame;
use crate::phy::{Phy, Speed};
use crate::regs::{self, *};
use crate::SimDma;
use crate::SimIrq;

use regfile::Stats;
use rx::RxFrame;
use tx::TxState;
pub use variant::{SimBus, Variant};

/// Number of 32-bit words in BAR0.
const REG_WORDS: usize = (BAR0_LEN / 4) as usize;

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
    /// Frames discarded from the receive FIFO by a reset or by the receiver turned off
    /// while it held them (the hardware counts them nowhere; the model does, for tests).
    pub(crate) rx_fifo_discarded: u64,
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
            rx_fifo_discarded: 0,
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
        self.rx_fifo_discarded += self.rx_fifo.len() as u64;
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
}
