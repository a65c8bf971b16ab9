//! The driver's own cost per frame on its hot path, against copying one frame, in one run:
//! `cargo bench -p e1000 --bench hot_path`.
//!
//! The driver runs monolithic (every stub a direct call) on the device model, which
//! probes, resets and brings the link up as usual, except that the model never sees a
//! ring: a thin front ([`NullWire`]) keeps the ring registers to itself and completes
//! descriptors in place the moment the driver hands them over (a transmit descriptor gets
//! its DD bit; a receive descriptor DD and EOP with a 64-byte frame, 60 bytes without the
//! FCS), and the driver's DMA memory is the HAL's simulated memory ([`SimDma`]: 8-byte
//! words read and written without a lock, as UIO and VFIO memory is). No frame is copied to or from a wire and no device thread runs, so what is left is
//! the driver's work: building descriptors, the tail write, reclaiming, reading the
//! descriptor back, copying the frame out and refilling, and handing the frame up (its
//! queue drained by the bench).
//!
//! Each round measures, interleaved, transmitting one frame at a time (`Netdev::try_send`
//! until the ring is full, then a poll that reclaims it) and in batches of 64
//! (`Netdev::send_batch`, as e1000d's TAP bridge sends), receiving (polls of 64 frames, the delivered frames
//! drained) and the baseline, copying one 64-byte frame between two buffers. It prints the
//! medians and ends with `ratio hot_path_per_frame/memcpy_64B = R`, where the hot path's
//! cost per frame is the mean of the batched transmit and the receive cost.
//!
//! The front's own work (reading and writing back each run of completed descriptors) is
//! charged to the driver: a real NIC's write-back costs the CPU nothing, so the ratio is an
//! upper bound.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::hot::poll;
use e1000::netdev::{Netdev, Options};
use e1000::{DriverError, TxPacket};
use e1000_sim::regs::{self, rxd_stat, txd_stat};
use e1000_sim::{E1000Sim, Mmio, SimConfig};
use microdriver_hal::seam::Hw;
use microdriver_hal::sim::SimDma;
use parking_lot::Mutex;

/// Length of each descriptor in both rings.
const DESC_LEN: usize = 16;
/// The frame the receive side "receives": 64 bytes on the wire, 60 without the FCS.
const RX_LEN: u16 = 60;

/// One ring as the driver programmed it.
#[derive(Default)]
struct RingRegs {
    bal: u32,
    bah: u32,
    len: u32,
    head: u32,
    tail: u32,
    /// The run of descriptors being completed (kept to spare an allocation per run).
    scratch: Vec<u8>,
}

/// The model's registers, except the rings': those the front keeps, completing what the
/// driver hands over at once.
struct NullWire {
    sim: Arc<E1000Sim>,
    dma: SimDma,
    /// Transmit ring, receive ring.
    rings: Mutex<[RingRegs; 2]>,
}

impl NullWire {
    /// Completes descriptors from the ring's head to `tail` (its new tail) with `done`: each
    /// contiguous run is read, completed and written back with one bus access each.
    fn complete(&self, ring: &mut RingRegs, tail: u32, done: fn(&mut [u8])) {
        let count = (ring.len as usize / DESC_LEN) as u32;
        let base = u64::from(ring.bal) | (u64::from(ring.bah) << 32);
        ring.tail = tail;
        if count == 0 {
            return;
        }
        let tail = tail % count;
        while ring.head != tail {
            let end = if tail > ring.head { tail } else { count };
            let addr = base + u64::from(ring.head) * DESC_LEN as u64;
            ring.scratch
                .resize((end - ring.head) as usize * DESC_LEN, 0);
            if self.dma.bus_read(addr, &mut ring.scratch).is_err() {
                return;
            }
            ring.scratch.chunks_mut(DESC_LEN).for_each(done);
            if self.dma.bus_write(addr, &ring.scratch).is_err() {
                return;
            }
            ring.head = end % count;
        }
    }
}

fn tx_done(desc: &mut [u8]) {
    desc[12] |= txd_stat::DD;
}

fn rx_done(desc: &mut [u8]) {
    desc[8..10].copy_from_slice(&RX_LEN.to_le_bytes());
    desc[12] = rxd_stat::DD | rxd_stat::EOP;
    desc[13] = 0;
}

impl Mmio for NullWire {
    fn read32(&self, off: u32) -> u32 {
        let rings = self.rings.lock();
        match off {
            regs::TDH => rings[0].head,
            regs::TDT => rings[0].tail,
            regs::RDH => rings[1].head,
            regs::RDT => rings[1].tail,
            _ => {
                drop(rings);
                self.sim.read32(off)
            }
        }
    }

    fn write32(&self, off: u32, v: u32) {
        let mut rings = self.rings.lock();
        let [tx, rx] = &mut *rings;
        match off {
            regs::TDBAL => tx.bal = v,
            regs::TDBAH => tx.bah = v,
            regs::TDLEN => tx.len = v,
            regs::TDH => tx.head = v,
            regs::TDT => self.complete(tx, v, tx_done),
            regs::RDBAL => rx.bal = v,
            regs::RDBAH => rx.bah = v,
            regs::RDLEN => rx.len = v,
            regs::RDH => rx.head = v,
            regs::RDT => self.complete(rx, v, rx_done),
            _ => {
                drop(rings);
                self.sim.write32(off, v);
            }
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per frame transmitting `frames` frames: fill the ring, reclaim it, again.
fn transmit(nd: &Netdev, pkt: &TxPacket, frames: u64) -> f64 {
    let started = Instant::now();
    let mut sent = 0;
    while sent < frames {
        match nd.try_send(pkt) {
            Ok(()) => sent += 1,
            Err(DriverError::Busy) => {
                poll::run(nd.kernel(), 0);
            }
            Err(e) => panic!("transmit on the null wire: {e}"),
        }
    }
    poll::run(nd.kernel(), 0);
    started.elapsed().as_nanos() as f64 / frames as f64
}

/// ns per frame transmitting `frames` frames in batches of 64 (as e1000d's TAP bridge
/// does): one ring-lock hold and one tail write per batch.
fn transmit_batched(nd: &Netdev, batch: &[TxPacket], frames: u64) -> f64 {
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < frames {
        let want = batch.len().min((frames - sent) as usize);
        let mut failed = None;
        let took = nd.send_batch(&batch[..want], |_, r| {
            if let Err(e) = r {
                if !matches!(e, DriverError::Busy) {
                    failed = Some(e);
                }
            }
        });
        if let Some(e) = failed {
            panic!("transmit on the null wire: {e}");
        }
        sent += took as u64;
        if took < want {
            poll::run(nd.kernel(), 0);
        }
    }
    poll::run(nd.kernel(), 0);
    started.elapsed().as_nanos() as f64 / frames as f64
}

/// ns per frame receiving `frames` frames, 64 per poll, handed up and drained.
fn receive(nd: &Netdev, frames: u64) -> f64 {
    let started = Instant::now();
    let mut got = 0u64;
    while got < frames {
        let outcome = poll::run(nd.kernel(), 64);
        assert!(outcome.rx > 0, "the null wire delivered nothing");
        got += u64::from(outcome.rx);
        black_box(nd.drain());
    }
    started.elapsed().as_nanos() as f64 / got as f64
}

/// ns per copy of one 64-byte frame.
fn memcpy_64(copies: u64) -> f64 {
    let src = [0x5au8; 64];
    let mut dst = [0u8; 64];
    let started = Instant::now();
    for i in 0..copies {
        let src = black_box(&src);
        dst.copy_from_slice(src);
        dst[0] = i as u8;
        black_box(&mut dst);
    }
    started.elapsed().as_nanos() as f64 / copies as f64
}

fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "--list") {
        return std::process::ExitCode::SUCCESS;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let sim = Arc::new(E1000Sim::new(SimConfig::default()).expect("device model"));
    let dma = SimDma::new();
    let wire = Arc::new(NullWire {
        sim: sim.clone(),
        dma: dma.clone(),
        rings: Mutex::new(Default::default()),
    });
    let hw = Hw {
        mmio: wire.clone(),
        pci: sim.clone(),
        dma: Arc::new(dma),
        irq: sim.irq(),
    };
    let nd = Netdev::start(hw, Options::default()).expect("probe");
    nd.open().expect("open");
    assert!(nd.wait_link(Duration::from_secs(30)), "no link");
    let (peer, _) = sim.peer_addr();
    let ours = nd.with_adapter(|a| a.mac);
    let pkt = TxPacket::new(e1000_sim::net::stream_frame(peer, ours, 0, 60));

    let (rounds, frames, copies) = if quick {
        (5, 20_000, 2_000_000)
    } else {
        (21, 200_000, 20_000_000)
    };
    // Warm-up: the first laps touch every buffer.
    transmit(&nd, &pkt, frames / 4);
    receive(&nd, frames / 4);
    let batch = vec![pkt.clone(); 64];
    transmit_batched(&nd, &batch, frames / 4);
    let (mut tx1, mut tx, mut rx, mut copy, mut ratios) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let single = transmit(&nd, &pkt, frames);
        let t = transmit_batched(&nd, &batch, frames);
        let r = receive(&nd, frames);
        let c = memcpy_64(copies);
        tx1.push(single);
        tx.push(t);
        rx.push(r);
        copy.push(c);
        ratios.push((t + r) / 2.0 / c);
    }
    let faults = sim.take_faults();
    let (tx1, tx, rx) = (median(tx1), median(tx), median(rx));
    let (copy, ratio) = (median(copy), median(ratios));
    println!("== the driver's hot path on a wire that completes descriptors in place (monolithic)");
    println!("transmit_one_by_one  median {tx1:8.1} ns over {rounds} rounds of {frames} frames");
    println!("transmit_per_frame   median {tx:8.1} ns over {rounds} rounds of {frames} frames (batches of 64)");
    println!("receive_per_frame    median {rx:8.1} ns over {rounds} rounds of {frames} frames");
    println!("memcpy_64B           median {copy:8.2} ns over {rounds} rounds of {copies} copies");
    println!("ratio hot_path_per_frame/memcpy_64B = {ratio:.1}");
    let _ = nd.shutdown();
    if ratio < 1.0 {
        eprintln!(
            "baseline broken: the hot path ({:.1} ns a frame) beat copying one frame ({copy:.2} ns)",
            (tx + rx) / 2.0
        );
        return std::process::ExitCode::FAILURE;
    }
    if !faults.is_empty() {
        eprintln!("the model recorded faults: {faults:?}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
