//! Register groups, EEPROM paths, PHY behaviour and interrupt registers.
//! Each test cites the part of the 8254x SDM (PCI/PCI-X Family of Gigabit Ethernet
//! Controllers Software Developer's Manual) it checks.

mod common;

use std::time::Duration;

use common::*;
use e1000_sim::regs::phy as mii;
use e1000_sim::regs::*;
use e1000_sim::{E1000Sim, Fault, InterruptLine, Mmio, SimConfig, Variant};

fn sim() -> Drv {
    Drv::new(fast_config())
}

#[test]
fn ctrl_rst_self_clears_and_restores_defaults() {
    // 8254x SDM 13.4 Device Control Register (CTRL.RST is self-clearing; a reset returns
    // registers to their initial values and reloads the receive address from the EEPROM).
    let d = sim();
    d.w(RCTL, rctl::EN | rctl::UPE);
    d.w(IMS, icr::RXT0);
    d.w(RAL, 0xDEAD_BEEF);
    d.w(CTRL, d.r(CTRL) | ctrl::RST);
    assert_eq!(d.r(CTRL) & ctrl::RST, 0);
    assert_eq!(d.r(RCTL), 0);
    assert_eq!(d.r(IMS), 0);
    let (ral, rah) = mac_to_ra(d.sim.mac());
    assert_eq!(d.r(RAL), ral);
    assert_eq!(d.r(RAH), rah | rah::AV);
    assert_eq!(d.r(VET), 0x8100, "SDM 13.4 VLAN Ether Type initial value");
    assert_eq!(
        d.r(PBA),
        0x0010_0030,
        "82540EM packet buffer: 48 KB receive, 16 KB transmit"
    );
    assert_eq!(
        d.r(TCTL),
        0,
        "SDM 13.4 Transmit Control: all fields initially 0"
    );
}

#[test]
fn pba_txa_follows_rxa_and_the_split_survives_reset() {
    // SDM 13.4.16 PBA: RXA (bits 6:0) is read/write, TXA (31:16) read only, 64 - RXA.
    // A reset keeps the split written (drivers write it and then reset).
    let d = sim();
    d.w(PBA, 0xFFFF_0028);
    assert_eq!(d.r(PBA), 0x0018_0028);
    d.w(CTRL, d.r(CTRL) | ctrl::RST);
    assert_eq!(d.r(PBA), 0x0018_0028);
    d.w(PBA, 0x30);
    assert_eq!(d.r(PBA), 0x0010_0030);
}

#[test]
fn status_is_read_only_and_reflects_link() {
    // 8254x SDM 13.4 Device Status Register: LU, FD and SPEED follow the PHY's link once
    // CTRL.SLU is set (internal PHY mode); writes are ignored.
    let d = sim();
    assert_eq!(d.r(STATUS) & status::LU, 0, "no SLU, no MAC link");
    d.w(CTRL, d.r(CTRL) | ctrl::SLU);
    d.wait_link();
    let s = d.r(STATUS);
    assert_eq!(s & status::FD, status::FD);
    assert_eq!(s & status::SPEED_MASK, status::SPEED_1000);
    d.w(STATUS, 0);
    assert_eq!(d.r(STATUS), s);
    assert!(d.sim.faults().contains(&Fault::ReadOnlyWrite {
        off: STATUS,
        value: 0
    }));
}

#[test]
fn icr_is_read_to_clear_and_drives_the_line() {
    // 8254x SDM 13.4 Interrupt Cause Read (cleared on read), Interrupt Cause Set,
    // Interrupt Mask Set/Read and Interrupt Mask Clear registers.
    let d = sim();
    let irq = d.sim.irq();
    d.r(ICR);
    d.w(ICS, icr::RXT0 | icr::TXDW);
    assert!(!irq.is_asserted(), "causes set but masked");
    d.w(IMS, icr::RXT0);
    assert_eq!(d.r(IMS), icr::RXT0);
    assert!(irq.is_asserted());
    assert!(irq.wait(Duration::from_millis(10)));
    d.w(IMC, icr::RXT0);
    assert!(!irq.is_asserted(), "IMC masks the pending cause");
    d.w(IMS, icr::RXT0 | icr::TXDW);
    assert!(irq.is_asserted());
    assert_eq!(d.r(ICR), icr::RXT0 | icr::TXDW);
    assert_eq!(d.r(ICR), 0, "read-to-clear");
    assert!(!irq.is_asserted());
    // Writing 1s to ICR clears those bits.
    d.w(ICS, icr::LSC | icr::RXO);
    d.w(ICR, icr::LSC);
    assert_eq!(d.r(ICR), icr::RXO);
    // Line masking at the interrupt controller (UIO irqcontrol).
    irq.mask();
    d.w(ICS, icr::RXT0);
    assert!(irq.is_asserted());
    assert!(!irq.wait(Duration::from_millis(5)));
    irq.unmask();
    assert!(irq.wait(Duration::from_millis(5)));
    assert!(irq.assertions() >= 3);
}

#[test]
fn itr_spaces_assertions_in_256ns_units() {
    // 8254x SDM 13.4 Interrupt Throttling Register: minimum inter-interrupt interval in
    // 256 ns increments.
    let d = sim();
    d.r(ICR);
    d.w(IMS, icr::TXDW);
    d.w(ITR, 40_000); // 40000 * 256 ns = 10.24 ms
    d.w(ICS, icr::TXDW);
    let irq = d.sim.irq();
    assert!(irq.is_asserted(), "first interrupt is not delayed");
    d.r(ICR);
    let t = std::time::Instant::now();
    d.w(ICS, icr::TXDW);
    assert!(!irq.is_asserted(), "second one waits for the interval");
    assert!(irq.wait(Duration::from_secs(1)));
    let e = t.elapsed();
    assert!(e >= Duration::from_millis(9), "{e:?}");
}

#[test]
fn ring_registers_mask_reserved_bits() {
    // 8254x SDM 13.4 Receive/Transmit Descriptor Base Address (16-byte aligned) and Length
    // (a multiple of 128 bytes; bits 6:0 are ignored).
    let d = sim();
    d.w(RDBAL, 0x1234_5678);
    assert_eq!(d.r(RDBAL), 0x1234_5670);
    d.w(RDLEN, 1000);
    assert_eq!(d.r(RDLEN), 896);
    d.w(TDLEN, 130);
    assert_eq!(d.r(TDLEN), 128);
    d.w(TDT, 0x1_0005);
    assert_eq!(d.r(TDT), 5);
    let f = d.sim.faults();
    assert!(f.contains(&Fault::RingLengthNotMultipleOf128 {
        ring: e1000_sim::Ring::Rx,
        len: 1000
    }));
    assert!(f.contains(&Fault::RingLengthNotMultipleOf128 {
        ring: e1000_sim::Ring::Tx,
        len: 130
    }));
}

#[test]
fn filter_tables_are_plain_storage() {
    // 8254x SDM 13.4 Multicast Table Array, Receive Address, VLAN Filter Table Array.
    let d = sim();
    for i in 0..MTA_LEN {
        d.w(MTA + 4 * i, i * 3);
        d.w(VFTA + 4 * i, !i);
    }
    for i in 0..RA_LEN {
        d.w(RAL + 8 * i, i);
        d.w(RAH + 8 * i, i | rah::AV);
    }
    for i in 0..MTA_LEN {
        assert_eq!(d.r(MTA + 4 * i), i * 3);
        assert_eq!(d.r(VFTA + 4 * i), !i);
    }
    for i in 0..RA_LEN {
        assert_eq!(d.r(RAL + 8 * i), i);
        assert_eq!(d.r(RAH + 8 * i), i | rah::AV);
    }
    for r in [
        FCAL, FCAH, FCT, FCTTV, FCRTL, FCRTH, LEDCTL, MANC, WUC, WUFC, CTRL_EXT, TIPG, RXDCTL,
        TXDCTL, RXCSUM,
    ] {
        d.w(r, 0x5A5A);
        assert_eq!(d.r(r), 0x5A5A, "register {r:#x}");
    }
    assert!(d.sim.faults().is_empty());
}

#[test]
fn statistics_clear_on_read_and_64bit_pairs_clear_on_high_read() {
    // 8254x SDM 13.7 Statistics Registers: all clear on read; GORCL/GORCH (13.7.31) and
    // GOTCL/GOTCH (13.7.32) reset when the high register is read.
    let mut d = sim();
    d.init(0);
    d.wait_link();
    d.read_stats();
    let (peer_mac, _) = d.sim.peer_addr();
    d.send(&e1000_sim::net::stream_frame(peer_mac, d.sim.mac(), 0, 100));
    d.wait_tx_done();
    assert_eq!(d.r(GPTC), 1);
    assert_eq!(d.r(GPTC), 0, "cleared by the read");
    assert_eq!(d.r(GOTCL), 104);
    assert_eq!(d.r(GOTCL), 104, "low half does not clear");
    assert_eq!(d.r(GOTCH), 0);
    assert_eq!(d.r(GOTCL), 0, "reading the high half cleared the pair");
    d.w(GPTC, 5);
    assert_eq!(d.r(GPTC), 0, "statistics are read-only");
}

#[test]
fn unmapped_and_unaligned_accesses_are_recorded_not_fatal() {
    // 8254x SDM ch. 13 (register access): registers are 32-bit, aligned; reserved space is not to be accessed.
    let d = sim();
    assert_eq!(d.r(0x0004), 0);
    d.w(0x0FFC, 1);
    assert_eq!(d.r(0x0002), 0);
    assert_eq!(d.r(0xFFFF_FFFC), 0);
    d.w(0x4024, 7);
    let f = d.sim.faults();
    assert!(f.contains(&Fault::UnmappedRead { off: 4 }));
    assert!(f.contains(&Fault::UnmappedWrite {
        off: 0xFFC,
        value: 1
    }));
    assert!(f.contains(&Fault::Unaligned { off: 2 }));
    assert!(
        f.contains(&Fault::UnmappedRead { off: 0xFFFF_FFFC }),
        "beyond BAR0"
    );
    assert!(f.contains(&Fault::UnmappedWrite {
        off: 0x4024,
        value: 7
    }));
}

// ---- EEPROM ----------------------------------------------------------------------------

#[test]
fn eerd_reads_mac_and_checksum() {
    // 8254x SDM 13.4 EEPROM Read Register (START, DONE, ADDR 15:8, DATA 31:16) and 5.6.1
    // EEPROM checksum: words 0x00-0x3F sum to 0xBABA.
    let d = sim();
    let words: Vec<u16> = (0..64).map(|a| d.eerd(a)).collect();
    let sum = words.iter().fold(0u16, |a, &b| a.wrapping_add(b));
    assert_eq!(sum, 0xBABA);
    let m = d.sim.mac();
    assert_eq!(words[0], u16::from_le_bytes([m[0], m[1]]));
    assert_eq!(words[2], u16::from_le_bytes([m[4], m[5]]));
    assert_eq!(words[0x0D], 0x100E, "device id word");
    assert_eq!(words[0x0E], 0x8086, "vendor id word");
}

/// Microwire bit-banging through EECD (8254x SDM ch. 5 EEPROM Interface and 13.4 EECD).
struct Bitbang<'a>(&'a Drv);

impl Bitbang<'_> {
    fn set(&self, cs: bool, sk: bool, di: bool) {
        let mut v = eecd::REQ;
        if cs {
            v |= eecd::CS;
        }
        if sk {
            v |= eecd::SK;
        }
        if di {
            v |= eecd::DI;
        }
        self.0.w(EECD, v);
    }
    fn out(&self, bits: u32, value: u32) {
        for i in (0..bits).rev() {
            let di = (value >> i) & 1 != 0;
            self.set(true, false, di);
            self.set(true, true, di);
            self.set(true, false, di);
        }
    }
    fn input(&self, bits: u32) -> u32 {
        let mut v = 0;
        for _ in 0..bits {
            self.set(true, true, false);
            v = (v << 1) | u32::from(self.0.r(EECD) & eecd::DO != 0);
            self.set(true, false, false);
        }
        v
    }
    fn begin(&self) {
        self.0.w(EECD, eecd::REQ);
        assert!(self.0.r(EECD) & eecd::GNT != 0, "EE_GNT follows EE_REQ");
        self.set(true, false, false);
    }
    fn end(&self) {
        self.set(false, false, false);
    }
    fn read(&self, addr: u32) -> u16 {
        self.begin();
        self.out(3, 0b110);
        self.out(6, addr);
        let v = self.input(16) as u16;
        self.end();
        v
    }
}

#[test]
fn eecd_bitbang_read_write_ewen_ewds() {
    // 8254x SDM ch. 5 EEPROM Interface, Microwire: READ (110), EWEN (10011xxxx), WRITE (101),
    // EWDS (10000xxxx); 13.4 EECD: EE_REQ/EE_GNT arbitration, EE_PRES.
    let d = sim();
    assert!(d.r(EECD) & eecd::PRES != 0);
    let b = Bitbang(&d);
    for a in 0..64 {
        assert_eq!(b.read(a), d.eerd(a), "word {a}");
    }
    // WRITE without EWEN is ignored.
    b.begin();
    b.out(3, 0b101);
    b.out(6, 0x20);
    b.out(16, 0x1234);
    b.end();
    assert_ne!(d.eerd(0x20), 0x1234);
    // EWEN, WRITE, poll ready, EWDS.
    b.begin();
    b.out(3, 0b100);
    b.out(6, 0b11_0000);
    b.end();
    b.begin();
    b.out(3, 0b101);
    b.out(6, 0x20);
    b.out(16, 0x1234);
    b.end();
    b.begin();
    assert!(d.r(EECD) & eecd::DO != 0, "ready after the write cycle");
    b.end();
    b.begin();
    b.out(3, 0b100);
    b.out(6, 0);
    b.end();
    assert_eq!(d.eerd(0x20), 0x1234);
    assert_eq!(d.sim.eeprom_words()[0x20], 0x1234);
    b.begin();
    b.out(3, 0b101);
    b.out(6, 0x21);
    b.out(16, 0x5678);
    b.end();
    assert_ne!(d.eerd(0x21), 0x5678, "EWDS disabled writes again");
    d.w(EECD, 0);
}

#[test]
fn eecd_without_grant_is_ignored() {
    // 8254x SDM 13.4 EECD: software must set EE_REQ and see EE_GNT before driving the pins
    // (82540/82545); without the grant the pins do not reach the EEPROM.
    let d = sim();
    d.w(EECD, eecd::CS);
    d.w(EECD, eecd::CS | eecd::SK | eecd::DI);
    assert_eq!(d.r(EECD) & eecd::GNT, 0);
    assert!(d.sim.faults().contains(&Fault::EepromWithoutGrant));
}

#[test]
fn the_82544gc_has_no_eerd_but_bitbangs_without_grant() {
    // 8254x SDM 13.4 EEPROM Read Register: not on the 82544GC/EI, which only has EECD.
    let d = Drv::new(SimConfig {
        variant: Variant::I82544GC,
        ..fast_config()
    });
    assert_eq!(d.sim.pci_ids(), (0x8086, 0x100C));
    d.w(EERD, eerd::START);
    assert_eq!(d.r(EERD), 0);
    assert!(d.sim.faults().contains(&Fault::UnmappedWrite {
        off: EERD,
        value: 1
    }));
    // Bit-bang a read without EE_REQ.
    let set = |cs: bool, sk: bool, di: bool| {
        d.w(
            EECD,
            (u32::from(cs) * eecd::CS) | (u32::from(sk) * eecd::SK) | (u32::from(di) * eecd::DI),
        )
    };
    set(true, false, false);
    for (n, v) in [(3u32, 0b110u32), (6, 0x0D)] {
        for i in (0..n).rev() {
            let di = (v >> i) & 1 != 0;
            set(true, false, di);
            set(true, true, di);
            set(true, false, di);
        }
    }
    let mut w = 0u32;
    for _ in 0..16 {
        set(true, true, false);
        w = (w << 1) | u32::from(d.r(EECD) & eecd::DO != 0);
        set(true, false, false);
    }
    set(false, false, false);
    assert_eq!(w, 0x100C);
}

// ---- PHY -------------------------------------------------------------------------------

#[test]
fn phy_ids_per_variant() {
    // 8254x SDM ch. 13 "PHY Registers", PHY Identifier registers: M88E1011 on 82540EM/82545EM, M88E1000 on
    // the 82544GC.
    for (v, id2, dev) in [
        (Variant::I82540EM, 0x0C20, 0x100E),
        (Variant::I82545EM, 0x0C20, 0x100F),
        (Variant::I82544GC, 0x0C30, 0x100C),
    ] {
        let d = Drv::new(SimConfig {
            variant: v,
            ..fast_config()
        });
        assert_eq!(d.sim.pci_ids().1, dev);
        assert_eq!(d.phy_read(mii::PHYID1), Ok(0x0141));
        assert_eq!(d.phy_read(mii::PHYID2), Ok(id2));
    }
}

#[test]
fn mdic_wrong_phy_address_sets_error() {
    // 8254x SDM 13.4 MDI Control Register: only PHY address 1 answers; others set MDIC.E.
    let d = sim();
    d.w(
        MDIC,
        mdic::OP_READ | (2 << mdic::PHY_SHIFT) | (mii::BMSR << mdic::REG_SHIFT),
    );
    assert!(d.mdic_wait().is_err());
    assert!(d
        .sim
        .faults()
        .contains(&Fault::PhyAddressInvalid { phy: 2 }));
    // A reserved opcode completes with MDIC.E.
    d.w(
        MDIC,
        (1 << mdic::PHY_SHIFT) | (mii::BMSR << mdic::REG_SHIFT),
    );
    assert!(d.mdic_wait().is_err());
    // MDIC.I raises ICR.MDAC on completion.
    d.r(ICR);
    d.w(MDIC, mdic::OP_READ | mdic::INT_EN | (1 << mdic::PHY_SHIFT));
    d.mdic_wait().unwrap();
    assert_eq!(d.r(ICR) & icr::MDAC, icr::MDAC);
}

#[test]
fn autoneg_takes_configured_time_and_raises_lsc() {
    // 8254x SDM ch. 13 "PHY Registers", PHY Control (auto-negotiation enable/restart) and Status (link,
    // auto-negotiation complete); 13.4 ICR.LSC on link change.
    let d = Drv::new(SimConfig {
        autoneg_time: Duration::from_millis(150),
        ..fast_config()
    });
    d.w(CTRL, d.r(CTRL) | ctrl::SLU);
    d.r(ICR);
    d.w(IMS, icr::LSC);
    let t = std::time::Instant::now();
    d.phy_write(mii::BMCR, mii::bmcr::AN_ENABLE | mii::bmcr::RESTART_AN)
        .unwrap();
    let bmsr = d.phy_read(mii::BMSR).unwrap();
    assert_eq!(bmsr & mii::bmsr::AN_COMPLETE, 0);
    assert!(d.sim.irq().wait(Duration::from_secs(2)));
    assert!(
        t.elapsed() >= Duration::from_millis(140),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(d.r(ICR) & icr::LSC, icr::LSC);
    assert!(d.r(STATUS) & status::LU != 0);
    d.phy_read(mii::BMSR).unwrap();
    let bmsr = d.phy_read(mii::BMSR).unwrap();
    assert_eq!(
        bmsr & (mii::bmsr::LINK | mii::bmsr::AN_COMPLETE),
        mii::bmsr::LINK | mii::bmsr::AN_COMPLETE
    );
    assert_eq!(
        d.phy_read(mii::BMCR).unwrap() & mii::bmcr::RESTART_AN,
        0,
        "self-clearing"
    );
    assert_ne!(d.phy_read(mii::ANLPAR).unwrap(), 0);
    assert_ne!(d.phy_read(mii::GSR).unwrap() & mii::gsr::LP_FD1000, 0);
    let pssr = d.phy_read(mii::PSSR).unwrap();
    assert_eq!(pssr & 0xC000, mii::pssr::SPEED_1000);
    assert_ne!(pssr & mii::pssr::RESOLVED, 0);
}

#[test]
fn forced_speed_and_duplex() {
    // 8254x SDM ch. 13 "PHY Registers", PHY Control: with auto-negotiation off, speed select (bits 6, 13) and
    // duplex (bit 8) force the link; STATUS reports it.
    let d = sim();
    d.w(CTRL, d.r(CTRL) | ctrl::SLU);
    d.phy_write(mii::BMCR, mii::bmcr::SPEED_LSB).unwrap(); // 100 Mb/s half duplex
    assert!(wait_for(Duration::from_secs(2), || d.r(STATUS)
        & status::LU
        != 0));
    let s = d.r(STATUS);
    assert_eq!(s & status::SPEED_MASK, status::SPEED_100);
    assert_eq!(s & status::FD, 0);
}

#[test]
fn phy_reset_drops_link_and_bmsr_link_latches_low() {
    // 8254x SDM ch. 13 "PHY Registers", PHY Control (reset, self-clearing) and Status (link status latches low
    // until read).
    let d = sim();
    d.w(CTRL, d.r(CTRL) | ctrl::SLU);
    d.wait_link();
    d.phy_write(mii::BMCR, mii::bmcr::RESET | mii::bmcr::AN_ENABLE)
        .unwrap();
    assert_eq!(d.phy_read(mii::BMCR).unwrap() & mii::bmcr::RESET, 0);
    assert_eq!(
        d.phy_read(mii::BMSR).unwrap() & mii::bmsr::LINK,
        0,
        "latched low"
    );
    d.wait_link();
    // CTRL.PHY_RST holds the PHY in reset: link goes down until released.
    d.w(CTRL, d.r(CTRL) | ctrl::PHY_RST);
    assert_eq!(d.r(STATUS) & status::LU, 0);
    d.w(CTRL, d.r(CTRL) & !ctrl::PHY_RST);
    d.wait_link();
}

#[test]
fn cable_unplug_and_replug_raise_lsc() {
    // 8254x SDM 13.4 ICR.LSC: set on link status change in either direction.
    let d = sim();
    d.w(CTRL, d.r(CTRL) | ctrl::SLU);
    d.wait_link();
    d.r(ICR);
    d.sim.set_link(false);
    assert_eq!(d.r(STATUS) & status::LU, 0);
    assert_eq!(d.r(ICR) & icr::LSC, icr::LSC);
    d.sim.set_link(true);
    d.wait_link();
    assert_eq!(d.r(ICR) & icr::LSC, icr::LSC);
}

#[test]
fn model_shuts_down_cleanly() {
    let s = E1000Sim::new(fast_config()).unwrap();
    s.write32(CTRL, ctrl::SLU);
    s.shutdown();
}

// ---- PCI configuration space ----------------------------------------------------------

#[test]
fn pci_config_ids_class_and_bar_sizing() {
    // PCI Local Bus Specification 3.0, 6.2 (Configuration Space Header) and 6.2.5.1 (BAR
    // sizing); 8254x SDM ch. 4 PCI Local Bus Interface: IDs, Ethernet class, 128 KiB BAR0.
    use e1000_sim::regs::pci;
    use e1000_sim::PciConfig;
    for (v, dev) in [
        (Variant::I82540EM, 0x100E),
        (Variant::I82545EM, 0x100F),
        (Variant::I82544GC, 0x100C),
    ] {
        let s = E1000Sim::new(SimConfig {
            variant: v,
            ..fast_config()
        })
        .unwrap();
        assert_eq!(s.config_read16(pci::VENDOR_ID), 0x8086);
        assert_eq!(s.config_read16(pci::DEVICE_ID), dev);
        assert_eq!(
            s.config_read32(0x08) >> 8,
            0x02_0000,
            "network controller, Ethernet"
        );
        assert_eq!(s.config_read16(pci::SUBSYSTEM_VENDOR_ID), 0x8086);
        assert_eq!(s.config_read32(pci::INTERRUPT_LINE) >> 8 & 0xFF, 1, "INTA#");
        let bar = s.config_read32(pci::BAR0);
        s.config_write32(pci::BAR0, !0);
        assert_eq!(
            s.config_read32(pci::BAR0),
            0xFFFE_0000,
            "128 KiB memory BAR"
        );
        s.config_write32(pci::BAR0, bar);
        assert_eq!(s.config_read32(pci::BAR0), bar);
        s.config_write32(pci::BAR1, !0);
        assert_eq!(s.config_read32(pci::BAR1), 0xFFFF_FFC1, "64-byte I/O BAR");
        s.config_write16(pci::VENDOR_ID, 0x1234);
        assert_eq!(s.config_read16(pci::VENDOR_ID), 0x8086, "read-only");
    }
}

#[test]
fn pci_command_gates_mmio_dma_and_intx() {
    // PCI Local Bus Specification 3.0, 6.2.2 Command and Status registers: Memory Space,
    // Bus Master and Interrupt Disable; STATUS.Interrupt shows a pending interrupt even
    // when INTx is disabled.
    use e1000_sim::regs::pci::{self, command, status as pst};
    use e1000_sim::PciConfig;
    let mut d = Drv::new(SimConfig {
        pci_enabled: false,
        ..fast_config()
    });
    assert_eq!(
        d.sim.config_read16(pci::COMMAND) & (command::MEMORY | command::BUS_MASTER),
        0
    );
    assert_eq!(d.r(STATUS), 0xFFFF_FFFF, "BAR0 does not decode");
    assert!(d
        .sim
        .faults()
        .contains(&Fault::MemorySpaceDisabled { off: STATUS }));
    d.sim.config_write16(pci::COMMAND, command::MEMORY);
    d.init(0);
    d.wait_link();
    let (pm, mac) = (d.sim.peer_addr().0, d.sim.mac());
    let f = e1000_sim::net::stream_frame(pm, mac, 0, 100);
    d.send(&f);
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(d.r(TDH), 0, "no DMA without bus mastering");
    d.sim
        .config_write16(pci::COMMAND, command::MEMORY | command::BUS_MASTER);
    d.wait_tx_done();
    assert!(wait_for(Duration::from_secs(2), || d
        .sim
        .peer_stats()
        .rx_frames
        == 1));
    // INTx disable.
    let irq = d.sim.irq();
    d.r(ICR);
    d.sim.config_write16(
        pci::COMMAND,
        command::MEMORY | command::BUS_MASTER | command::INTX_DISABLE,
    );
    d.w(IMS, icr::TXDW);
    d.w(ICS, icr::TXDW);
    assert!(!irq.is_asserted());
    assert_ne!(d.sim.config_read16(pci::STATUS) & pst::INTERRUPT, 0);
    d.sim
        .config_write16(pci::COMMAND, command::MEMORY | command::BUS_MASTER);
    assert!(irq.is_asserted());
    d.r(ICR);
    assert!(!irq.is_asserted());
    assert_eq!(d.sim.config_read16(pci::STATUS) & pst::INTERRUPT, 0);
}
