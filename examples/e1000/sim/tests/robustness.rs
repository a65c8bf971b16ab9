//! Bad driver behaviour never panics the model: it does what the hardware would (ignore,
//! stop the ring, master-abort) and records a `Fault` for tests to assert on.

mod common;

use std::time::Duration;

use common::*;
use e1000_sim::net::stream_frame;
use e1000_sim::regs::*;
use e1000_sim::{DmaRegion, DmaSource, Fault, Mmio, Ring};
use proptest::prelude::*;

fn up() -> Drv {
    let mut d = Drv::new(fast_config());
    d.init(0);
    d.wait_link();
    d.sim.take_faults();
    d
}

fn has(d: &Drv, f: impl Fn(&Fault) -> bool) -> bool {
    wait_for(Duration::from_secs(2), || d.sim.faults().iter().any(&f))
}

#[test]
fn tx_buffer_outside_dma_memory_is_a_bus_error() {
    // 8254x SDM 3.3.3: the buffer address is used as given; a PCI master abort drops the
    // packet. The ring keeps going.
    let mut d = up();
    d.push_desc(Drv::legacy(
        0xDEAD_0000,
        100,
        txd_cmd::EOP | txd_cmd::IFCS | txd_cmd::RS,
        0,
        0,
        0,
    ));
    d.flush_tx();
    assert!(has(&d, |f| matches!(
        f,
        Fault::BusError {
            source: DmaSource::TxBuffer,
            addr: 0xDEAD_0000,
            len: 100
        }
    )));
    let pm = d.sim.peer_addr().0;
    let f = stream_frame(pm, d.sim.mac(), 0, 100);
    d.send(&f);
    d.wait_tx_done();
    assert!(wait_for(Duration::from_secs(2), || d
        .sim
        .peer_stats()
        .rx_frames
        == 1));
    assert_eq!(d.sim.peer_take_received(), vec![f]);
    assert_eq!(d.sim.bus_errors(), 1);
}

#[test]
fn tx_ring_outside_dma_memory_stops_the_ring_until_reprogrammed() {
    // 8254x SDM 13.4 Transmit Descriptor Base Address: a descriptor fetch that master-aborts
    // stops the transmit ring; rewriting the ring registers restarts it.
    let mut d = up();
    d.w(TCTL, 0);
    d.w(TDBAL, 0x1000);
    d.w(TDBAH, 0x7);
    d.w(TDH, 0);
    d.w(TDT, 1);
    d.w(TCTL, tctl::EN | tctl::PSP);
    assert!(has(&d, |f| matches!(
        f,
        Fault::BusError {
            source: DmaSource::TxDescriptor,
            ..
        }
    )));
    let n = d.sim.faults().len();
    // A ring that spun on errors would never let the device thread go idle.
    assert!(
        d.sim.settle(Duration::from_secs(5)),
        "the device thread never ran out of work after the bus error"
    );
    assert_eq!(
        d.sim.faults().len(),
        n,
        "the stopped ring does not spin on errors"
    );
    d.setup_rings(0);
    let pm = d.sim.peer_addr().0;
    d.send(&stream_frame(pm, d.sim.mac(), 0, 64));
    d.wait_tx_done();
}

#[test]
fn rx_buffer_outside_dma_memory_is_reported_in_the_descriptor() {
    // 8254x SDM 3.2.3.2 RXE: data error; the frame is lost, the descriptor completes.
    let d = up();
    let mut desc = [0u8; 16];
    desc[..8].copy_from_slice(&0x42u64.to_le_bytes());
    d.rx_ring.write(0, &desc).unwrap();
    let mac = d.sim.mac();
    d.sim
        .peer_send(stream_frame(mac, d.sim.peer_addr().0, 0, 100));
    assert!(has(&d, |f| matches!(
        f,
        Fault::BusError {
            source: DmaSource::RxBuffer,
            addr: 0x42,
            ..
        }
    )));
    assert!(wait_for(Duration::from_secs(2), || d.rx_desc(0).status
        & rxd_stat::DD
        != 0));
    assert_ne!(d.rx_desc(0).errors & rxd_err::RXE, 0);
}

#[test]
fn head_and_tail_out_of_range_stop_the_ring() {
    // 8254x SDM 13.4 Transmit/Receive Descriptor Head and Tail: values must be within the
    // ring; otherwise the model stops the ring and records it.
    let mut d = up();
    d.w(TDT, d.ntx + 5);
    assert!(has(&d, |f| matches!(
        f,
        Fault::HeadTailOutOfRange { ring: Ring::Tx, .. }
    )));
    d.w(TDT, d.tx_tail);
    d.w(RDT, 4000);
    d.sim
        .peer_send(stream_frame(d.sim.mac(), d.sim.peer_addr().0, 0, 100));
    assert!(has(&d, |f| matches!(
        f,
        Fault::HeadTailOutOfRange {
            ring: Ring::Rx,
            tail: 4000,
            ..
        }
    )));
    // Fixing the tail lets the frame through.
    d.w(RDT, d.nrx - 1);
    assert!(d.recv(Duration::from_secs(2)).is_some());
    let pm = d.sim.peer_addr().0;
    d.send(&stream_frame(pm, d.sim.mac(), 0, 64));
    d.wait_tx_done();
}

#[test]
fn zero_length_ring_and_reserved_buffer_size() {
    // 8254x SDM 13.4 Receive Descriptor Length and 13.4.22 RCTL.BSIZE with BSEX (00b with
    // BSEX = 1 is reserved).
    let d = up();
    d.w(RDLEN, 0);
    d.sim
        .peer_send(stream_frame(d.sim.mac(), d.sim.peer_addr().0, 0, 100));
    assert!(has(&d, |f| *f == Fault::RingLengthZero { ring: Ring::Rx }));
    d.w(RDLEN, d.nrx * 16);
    d.w(RCTL, d.r(RCTL) | rctl::BSEX);
    d.w(RCTL, d.r(RCTL) & !rctl::BSIZE_MASK);
    d.sim
        .peer_send(stream_frame(d.sim.mac(), d.sim.peer_addr().0, 1, 100));
    assert!(has(&d, |f| *f == Fault::ReservedBufferSize));
}

#[test]
fn reserved_descriptor_type_and_oversized_packets() {
    // 8254x SDM 3.3.7: DTYP values other than 0000b (context) and 0001b (data) are reserved.
    let mut d = up();
    let mut bad = [0u8; 16];
    bad[8..12].copy_from_slice(
        &((7u32 << 20) | (u32::from(txd_cmd::DEXT | txd_cmd::RS) << 24)).to_le_bytes(),
    );
    d.push_desc(bad);
    d.flush_tx();
    assert!(has(&d, |f| matches!(
        f,
        Fault::InvalidDescriptorType { dtyp: 7, .. }
    )));
    // A packet without EOP that grows past 256 KiB is dropped.
    let a = d.tx_bufs.bus_addr();
    for _ in 0..20 {
        d.push_desc(Drv::legacy(a, 16 * 1024, txd_cmd::IFCS, 0, 0, 0));
    }
    d.push_desc(Drv::legacy(
        a,
        100,
        txd_cmd::IFCS | txd_cmd::EOP | txd_cmd::RS,
        0,
        0,
        0,
    ));
    d.flush_tx();
    assert!(has(&d, |f| matches!(f, Fault::TxPacketTooLong { .. })));
    d.wait_tx_done();
    assert_eq!(d.sim.peer_stats().rx_frames, 0);
}

#[test]
fn checksum_offsets_outside_the_packet() {
    // 8254x SDM 3.3.3 CSO/CSS must lie within the packet.
    let mut d = up();
    let f = stream_frame(d.sim.peer_addr().0, d.sim.mac(), 0, 100);
    let a = d.stage(&f);
    d.push_desc(Drv::legacy(
        a,
        f.len(),
        txd_cmd::EOP | txd_cmd::IFCS | txd_cmd::IC | txd_cmd::RS,
        250,
        14,
        0,
    ));
    d.flush_tx();
    assert!(has(&d, |f| matches!(
        f,
        Fault::ChecksumOffsetOutOfRange { offset: 250, .. }
    )));
    assert!(wait_for(Duration::from_secs(2), || d
        .sim
        .peer_stats()
        .rx_frames
        == 1));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Random register writes (any offset, any value) and random descriptor memory never
    /// panic the model, and it keeps answering MMIO.
    #[test]
    fn random_mmio_and_descriptors_never_panic(
        ops in prop::collection::vec((0u32..0x2_0400, any::<u32>(), any::<bool>()), 1..200),
        ring_bytes in prop::collection::vec(any::<u8>(), 4096),
    ) {
        let mut d = Drv::new(fast_config());
        d.init(0);
        d.tx_ring.write(0, &ring_bytes).unwrap();
        d.rx_ring.write(0, &ring_bytes).unwrap();
        d.sim.peer_send(stream_frame(d.sim.mac(), d.sim.peer_addr().0, 0, 200));
        let known = [CTRL, TCTL, RCTL, TDT, RDT, TDH, RDH, TDLEN, RDLEN, ICS, IMS, ITR, RDTR, TIDV, MDIC, EERD, EECD];
        for (i, (off, v, aligned)) in ops.into_iter().enumerate() {
            // Half the writes hit the interesting registers, the rest anywhere.
            let off = if aligned { known[i % known.len()] } else { off };
            if off == CTRL && v & ctrl::RST == 0 {
                d.sim.write32(off, v | ctrl::SLU);
            } else {
                d.sim.write32(off, v);
            }
            let _ = d.sim.read32(off);
        }
        // The bus errors are read once the device has done what it can with the writes.
        prop_assert!(d.sim.settle(Duration::from_secs(5)), "the device never went idle");
        let _ = d.sim.read32(STATUS);
        let _ = d.sim.faults();
    }

    /// Random frames from the wire in any receive configuration never panic the model.
    #[test]
    fn random_frames_never_panic(
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..2000), 1..20),
        rctl_bits in any::<u32>(),
        rxcsum_v in any::<u32>(),
    ) {
        let mut d = Drv::new(fast_config());
        d.init(0);
        d.wait_link();
        d.w(RCTL, (rctl_bits | rctl::EN) & !rctl::LBM_MASK);
        d.w(RXCSUM, rxcsum_v);
        d.w(CTRL, d.r(CTRL) | ctrl::VME);
        for f in frames {
            d.sim.peer_send(f);
        }
        // The statistics are read once the device has done what it can right now (frames
        // the wire paces may still be on their way: the property is that none panics).
        prop_assert!(d.sim.settle(Duration::from_secs(5)), "the device never went idle");
        let _ = d.read_stats();
    }

    /// Random PCI configuration writes (BARs, COMMAND, anything) never panic the model.
    #[test]
    fn random_config_writes_never_panic(
        ops in prop::collection::vec((0u16..0x120, any::<u32>()), 1..64),
    ) {
        use e1000_sim::PciConfig;
        let d = Drv::new(fast_config());
        for (off, v) in ops {
            d.sim.config_write32(off, v);
            let _ = d.sim.config_read32(off);
            let _ = d.sim.read32(STATUS);
            d.sim.write32(TDT, v);
        }
    }
}
