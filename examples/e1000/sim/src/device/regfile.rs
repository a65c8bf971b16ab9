//! The register file: MMIO reads and writes with their side effects, the statistics
//! counters, and PCI configuration space accesses routed to the device.

use super::*;

/// Statistics counters: one u64 per 32-bit register slot of 0x4000..0x4100.
#[derive(Debug, Clone)]
pub(super) struct Stats(pub(super) [u64; 64]);

impl Stats {
    fn idx(off: u32) -> usize {
        ((off - STATS_BASE) / 4) as usize
    }
    pub(super) fn add(&mut self, off: u32, n: u64) {
        let i = Self::idx(off);
        let max = if STATS_64BIT_LOW.contains(&off) {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        self.0[i] = self.0[i].saturating_add(n).min(max);
    }
    pub(super) fn inc(&mut self, off: u32) {
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

impl Device {
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

    pub(super) fn read_register(&mut self, off: u32, now: Instant) -> u32 {
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
            // The packets the receive FIFO holds (13 bits).
            RDFPC => (self.rx_fifo_len() as u32).min(0x1FFF),
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

    pub(super) fn read_stat(&mut self, off: u32) -> u32 {
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
                    self.rx_fifo_discarded += self.rx_fifo.len() as u64;
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

    pub(super) fn unstall(&mut self, off: u32) {
        if (0x2800..0x2900).contains(&off) {
            self.rx_stalled = false;
        } else {
            self.tx.stalled = false;
        }
    }

    pub(super) fn write_eecd(&mut self, v: u32) {
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
}
