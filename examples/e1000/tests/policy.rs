//! The register policy on a live device: the user half's register calls cannot reach
//! outside the register map, touch the hot path's registers, or point DMA anywhere the
//! kernel half did not allocate.

mod common;

use common::*;
use e1000::kernel::{self, reg_read, reg_write};
use e1000::regs::{self, rctl, tctl, *};
use e1000::DriverError;
use e1000_sim::{DmaAllocator, DmaRegion, Fault, Variant};
use proptest::prelude::*;

fn refused(r: Result<impl std::fmt::Debug, DriverError>) -> String {
    match r {
        Err(DriverError::Policy(m)) => m,
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

#[test]
fn bad_offsets_and_kernel_owned_registers_are_refused() {
    let (sim, nd) = up(Variant::I82540EM);
    let dev = nd.kernel().id();
    assert!(refused(reg_read(dev, 0x0002)).contains("aligned"));
    assert!(refused(reg_read(dev, 0x0004)).contains("not a register"));
    assert!(refused(reg_read(dev, BAR0_LEN + 4)).contains("not a register"));
    assert!(refused(reg_write(dev, 0xFFFF_FFFC, 1)).contains("not a register"));
    let tdt = reg(&sim, TDT);
    for off in [ICR, IMS, IMC, RDT, TDT, RDH, TDH] {
        assert!(
            refused(reg_write(dev, off, 0)).contains("kernel half"),
            "{off:#x}"
        );
    }
    assert!(refused(reg_read(dev, ICR)).contains("kernel half"));
    assert_eq!(reg(&sim, TDT), tdt, "refused writes never reach the device");
    assert!(
        reg_read(dev, TDH).is_ok(),
        "heads are readable (hang check)"
    );
    // No such device.
    assert!(matches!(
        reg_read(e1000::DevId(999), CTRL),
        Err(DriverError::NoDevice(999))
    ));
    nd.shutdown().expect("remove");
}

/// A batch of register reads is one crossing with the policy of one read each, checked
/// before anything is read: a refused register fails the batch with no register read (the
/// statistics registers clear on read, so a partly read batch would lose counts).
#[test]
fn a_batch_of_reads_is_checked_whole_before_any_is_read() {
    // No periodic watchdog run (its statistics update would read the counter below).
    let opts = e1000::netdev::Options {
        watchdog_period: std::time::Duration::from_secs(3600),
        ..e1000::netdev::Options::default()
    };
    let (sim, nd) = start_with(config(Variant::I82540EM), opts);
    nd.open().expect("open");
    assert!(nd.wait_link(std::time::Duration::from_secs(5)));
    // The link check the link's coming up posted has run.
    wait_for("the link check", || nd.with_adapter(|a| a.wd.runs) >= 1);
    let dev = nd.kernel().id();
    let plain = [CTRL, STATUS, RCTL, TCTL, RDLEN, TDLEN, RDH, TDH];
    let one_by_one: Vec<u32> = plain
        .iter()
        .map(|&off| reg_read(dev, off).expect("readable"))
        .collect();
    assert_eq!(
        kernel::reg_read_many(dev, plain.to_vec()).expect("readable"),
        one_by_one
    );
    // A frame sent: the total-packets-transmitted counter (clear on read) is 1.
    nd.send(
        &e1000::TxPacket::new(e1000_sim::net::stream_frame(PEER_MAC, sim.mac(), 0, 60)),
        std::time::Duration::from_secs(2),
    )
    .expect("sent");
    wait_for("the frame on the wire", || sim.wire_stats().to_peer >= 1);
    for bad in [ICR, 0x0002, BAR0_LEN + 4] {
        let r = kernel::reg_read_many(dev, vec![TPT, bad]);
        assert!(matches!(r, Err(DriverError::Policy(_))), "{bad:#x}: {r:?}");
    }
    assert_eq!(
        reg_read(dev, TPT).expect("readable"),
        1,
        "the refused batches read nothing"
    );
    let too_many = vec![CTRL; kernel::MAX_REG_BATCH + 1];
    assert!(kernel::reg_read_many(dev, too_many).is_err());
    assert_eq!(
        kernel::reg_read_many(dev, vec![CTRL; kernel::MAX_REG_BATCH])
            .expect("readable")
            .len(),
        kernel::MAX_REG_BATCH
    );
    nd.shutdown().expect("remove");
}

#[test]
fn dma_registers_belong_to_the_kernel_half() {
    let (sim, nd) = up(Variant::I82540EM);
    let dev = nd.kernel().id();
    let (rdbal, rdbah) = (reg(&sim, RDBAL), reg(&sim, RDBAH));
    // Memory the device can reach but the kernel half did not allocate for rings: a region
    // from the same bus allocator, and an address inside the real ring. The user half can
    // program no DMA base at all, forged or real: the kernel half programs its own rings.
    let foreign = sim.dma().alloc(4096).expect("alloc");
    let fb = foreign.bus_addr();
    for (off, v) in [
        (RDBAH, (fb >> 32) as u32),
        (RDBAL, fb as u32),
        (RDBAL, rdbal + 16),
        (RDBAL, rdbal),
        (TDBAH, 0xDEAD),
        (RDLEN, 1 << 20),
        (TDLEN, 16),
    ] {
        assert!(
            refused(reg_write(dev, off, v)).contains("kernel half"),
            "{off:#x}"
        );
    }
    assert_eq!((reg(&sim, RDBAL), reg(&sim, RDBAH)), (rdbal, rdbah));
    assert_eq!(reg_read(dev, RDBAL).expect("readable"), rdbal);
    // RCTL.EN needs the receive ring's buffer size: 16 KB buffers on 2 KB ones are refused.
    let rctl_v = reg(&sim, RCTL);
    let big = (rctl_v & !(rctl::BSIZE_MASK)) | rctl::BSEX | 1 << rctl::BSIZE_SHIFT;
    assert!(refused(reg_write(dev, RCTL, big)).contains("refused"));
    assert_eq!(reg(&sim, RCTL), rctl_v);
    // After close the rings are freed (and the base registers cleared): enabling DMA is
    // refused.
    nd.close().expect("close");
    assert_eq!(
        (reg(&sim, RDBAL), reg(&sim, RDBAH), reg(&sim, TDLEN)),
        (0, 0, 0)
    );
    assert!(refused(reg_write(dev, RCTL, rctl_v)).contains("refused"));
    assert!(refused(reg_write(dev, TCTL, tctl::EN)).contains("refused"));
    assert_eq!(reg(&sim, RCTL) & rctl::EN, 0);
    // So does a reset the user half asks for directly, while up.
    nd.open().expect("open");
    assert!(reg_write(dev, CTRL, reg(&sim, CTRL) | regs::ctrl::RST).is_ok());
    assert!(refused(reg_write(dev, TCTL, tctl::EN)).contains("refused"));
    assert_eq!(sim.bus_errors(), 0);
    drop(foreign);
    nd.shutdown().expect("remove");
}

#[test]
fn pci_config_is_read_only_and_bounded_for_the_user_half() {
    let (_sim, nd) = start(Variant::I82540EM);
    let dev = nd.kernel().id();
    assert_eq!(
        kernel::pci_read16(dev, regs::pci::VENDOR_ID).expect("read"),
        0x8086
    );
    assert!(kernel::pci_read16(dev, 0x40).is_err());
    assert!(kernel::pci_read16(dev, 3).is_err());
    nd.shutdown().expect("remove");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever the user half writes, the device never masters memory outside what the
    /// kernel half allocated (no bus error is ever recorded) and the kernel half keeps
    /// running.
    #[test]
    fn hostile_register_writes_never_cause_stray_dma(
        writes in proptest::collection::vec(
            (prop_oneof![
                Just(RDBAL), Just(RDBAH), Just(RDLEN), Just(RCTL), Just(TDBAL), Just(TDBAH),
                Just(TDLEN), Just(TCTL), Just(CTRL), Just(RXDCTL), Just(TXDCTL),
                (0u32..0x2_0000).prop_map(|o| o & !3),
            ], any::<u32>()),
            1..40,
        )
    ) {
        let (sim, nd) = up(Variant::I82540EM);
        let dev = nd.kernel().id();
        for (off, v) in writes {
            let v = if off == CTRL { v & !(regs::ctrl::PHY_RST) } else { v };
            let _ = reg_write(dev, off, v);
        }
        // The hot path still answers (whatever state the device is in).
        let _ = e1000::hot::poll::poll(dev, 16);
        std::thread::sleep(std::time::Duration::from_millis(2));
        prop_assert_eq!(sim.bus_errors(), 0);
        let stray = sim.faults().into_iter().any(|f| matches!(f, Fault::BusError { .. }));
        prop_assert!(!stray, "a bus error was recorded");
        drop(nd);
    }
}

#[test]
fn ring_and_hot_parameter_calls_check_their_arguments() {
    let (_sim, nd) = start(Variant::I82540EM);
    let dev = nd.kernel().id();
    for (tx, rx, buf) in [
        (0, 256, 2048),
        (256, 4104, 2048),
        (100, 256, 2048),
        (256, 256, 3000),
    ] {
        let r = kernel::rings_alloc(
            dev,
            &kernel::RingRequest {
                tx_count: tx,
                rx_count: rx,
                rx_buf_len: buf,
            },
        );
        assert!(
            matches!(r, Err(DriverError::InvalidArgument { .. })),
            "{tx}/{rx}/{buf}: {r:?}"
        );
    }
    // Quiescing and freeing rings that do not exist is harmless.
    assert_eq!(
        kernel::ring_quiesce(dev, true, true).expect("quiesce"),
        (0, 0)
    );
    assert!(kernel::rings_free(dev).is_ok());
    // After remove the id names nothing: every kernel call is refused.
    nd.shutdown().expect("remove");
    assert!(matches!(
        kernel::reg_read(dev, CTRL),
        Err(DriverError::NoDevice(_))
    ));
    assert!(matches!(
        e1000::hot::poll::poll(dev, 8),
        Err(DriverError::NoDevice(_))
    ));
}
