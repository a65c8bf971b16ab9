//! The loopback test: frames sent with the device looped back on itself must come back
//! byte for byte, in order, in two modes:
//!
//! * **MAC loopback** (RCTL.LBM = 01, SDM 13.4.22): the MAC returns transmitted frames to
//!   its receiver without the PHY; the MAC forced to 1000 Mb/s full duplex with SLU.
//! * **PHY loopback** (IEEE 802.3 22.2.4.1.2, BMCR.LOOPBACK): the M88 PHY returns them;
//!   set up as for the M88 in Linux's e1000: the PHY forced to 1000 Mb/s full duplex with
//!   auto-negotiation off, and the MAC forced to match (CTRL.FRCSPD/FRCDPLX, speed 1000,
//!   FD) with CTRL.ILOS (the M88's loss-of-signal is inverted in loopback).
//!
//! Each mode sends a full ring's worth ([`kernel::MIN_RING`]) of frames of each of
//! [`FRAME_SIZES`], in batches the receive FIFO holds. Afterwards CTRL is put back, the PHY
//! is programmed for the configured link again ([`crate::phy::setup_link`]) and the
//! interface is closed.

use std::time::{Duration, Instant};

use crate::adapter::Adapter;
use crate::config;
use crate::error::DriverError;
use crate::frame::{RxFrame, TxPacket};
use crate::hot;
use crate::kernel;
use crate::regs::phy::{bmcr, BMCR};
use crate::regs::{ctrl, rctl, status, CTRL, RCTL, STATUS};
use crate::selftest::failure;

/// The frame lengths tested (without FCS): the minimum, two in between, and the largest a
/// 1500-byte MTU allows.
pub const FRAME_SIZES: [usize; 4] = [60, 128, 1000, 1514];
/// Bytes sent before waiting for them to come back: a batch the receive FIFO holds (the
/// test is about the data path, not overruns). (Holding every frame at once once killed
/// the sandboxed user half: glibc's first trim of a worker's arena read a sysctl file,
/// which seccomp refuses; the runtime's sandbox now primes that before the filter goes
/// in, and `microdriver-rt/tests/sandbox.rs` checks it.)
const BATCH_BYTES: usize = 16 * 1024;
/// The EtherType of the test frames (IEEE 802 local experimental).
const ETHERTYPE: [u8; 2] = [0x88, 0xB5];

/// Where the frames turn around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// RCTL.LBM = MAC loopback.
    Mac,
    /// BMCR.LOOPBACK in the PHY.
    Phy,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Mac => "MAC loopback",
            Mode::Phy => "PHY loopback",
        }
    }
}

/// Test frame `seq` of `len` bytes in `mode`: to and from our own address, then a header
/// naming the frame, then a pattern that differs per frame.
pub fn test_frame(mac: [u8; 6], mode: Mode, seq: usize, len: usize) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&ETHERTYPE);
    f.push(mode as u8);
    f.extend_from_slice(&(seq as u32).to_be_bytes());
    let start = f.len();
    f.extend((start..len).map(|j| (seq * 7 + j * 13) as u8));
    f
}

/// Runs the loopback test (see the module documentation) on a closed interface; it is
/// closed again afterwards, with the link configuration restored.
pub fn loopback_test(a: &mut Adapter) -> Result<(), DriverError> {
    if a.up {
        return Err(DriverError::WrongState {
            op: "loopback test".into(),
            state: "up".into(),
            needed: "down (the test opens the interface on small rings)".into(),
        });
    }
    let rings = (a.conf.tx_ring, a.conf.rx_ring);
    let saved_ctrl = a.rd(CTRL)?;
    a.conf.tx_ring = kernel::MIN_RING;
    a.conf.rx_ring = kernel::MIN_RING;
    let r = config::open(a).and_then(|()| {
        kernel::rx_capture(a.dev, true)?;
        run_mode(a, Mode::Mac)?;
        run_mode(a, Mode::Phy)
    });
    let restored = restore(a, saved_ctrl);
    a.conf.tx_ring = rings.0;
    a.conf.rx_ring = rings.1;
    r.and(restored)
}

/// Undoes the loopback set-up: no capture, RCTL.LBM clear, CTRL as it was, the PHY as the
/// configuration asks, the interface closed.
fn restore(a: &mut Adapter, saved_ctrl: u32) -> Result<(), DriverError> {
    kernel::rx_capture(a.dev, false)?;
    a.rmw(RCTL, rctl::LBM_MASK, 0)?;
    a.wr(CTRL, saved_ctrl & !(ctrl::RST | ctrl::PHY_RST))?;
    crate::phy::setup_link(a)?;
    if a.up {
        config::close(a)?;
    }
    Ok(())
}

/// Puts the device in `mode`.
fn enter(a: &Adapter, mode: Mode) -> Result<(), DriverError> {
    let forced_1000_fd = ctrl::SLU | ctrl::FRCSPD | ctrl::FRCDPLX | ctrl::FD | (2 << 8);
    match mode {
        Mode::Mac => {
            a.rmw(CTRL, ctrl::SPEED_MASK | ctrl::ASDE, forced_1000_fd)?;
            a.rmw(RCTL, rctl::LBM_MASK, rctl::LBM_MAC)?;
        }
        Mode::Phy => {
            a.rmw(RCTL, rctl::LBM_MASK, 0)?;
            crate::phy::write(a, BMCR, bmcr::LOOPBACK | bmcr::SPEED_MSB | bmcr::FD)?;
            a.rmw(
                CTRL,
                ctrl::SPEED_MASK | ctrl::ASDE,
                forced_1000_fd | ctrl::ILOS,
            )?;
            a.poll_reg(STATUS, "link up in PHY loopback", 1000, |s| {
                s & status::LU != 0
            })?;
        }
    }
    kernel::set_carrier(a.dev, true)
}

/// Sends and checks every size's frames in `mode`.
fn run_mode(a: &Adapter, mode: Mode) -> Result<(), DriverError> {
    enter(a, mode)?;
    kernel::rx_capture(a.dev, true)?;
    let count = kernel::MIN_RING as usize;
    for len in FRAME_SIZES {
        // A batch at a time: sent, collected and checked before the next is built.
        let per_batch = (BATCH_BYTES / len).max(1);
        for first in (0..count).step_by(per_batch) {
            let sent: Vec<Vec<u8>> = (first..count.min(first + per_batch))
                .map(|seq| test_frame(a.mac, mode, seq, len))
                .collect();
            let got = send_and_collect(a, &sent)?;
            check(mode, len, first, &sent, &got)?;
        }
    }
    Ok(())
}

/// Sends `batch` and waits for it to come back; returns what came back.
fn send_and_collect(a: &Adapter, batch: &[Vec<u8>]) -> Result<Vec<RxFrame>, DriverError> {
    for f in batch {
        let pkt = TxPacket::new(f.clone());
        let end = Instant::now() + Duration::from_secs(1);
        loop {
            match hot::tx::xmit_frame(a.dev, &pkt) {
                Ok(()) => break,
                Err(DriverError::Busy) if Instant::now() < end => {
                    hot::poll::poll(a.dev, 64)?;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while got.len() < batch.len() && Instant::now() < end {
        hot::poll::poll(a.dev, 64)?;
        got.extend(kernel::rx_capture(a.dev, true)?);
        std::thread::sleep(Duration::from_micros(100));
    }
    Ok(got)
}

/// Every frame came back, in order, byte for byte.
/// `sent` are frames `first..` of their size.
fn check(
    mode: Mode,
    len: usize,
    first: usize,
    sent: &[Vec<u8>],
    got: &[RxFrame],
) -> Result<(), DriverError> {
    let what = |detail: String| failure("loopback", format!("{}: {detail}", mode.name()));
    for (i, (s, g)) in sent.iter().zip(got).enumerate() {
        let seq = first + i;
        if g.data.len() != s.len() {
            return Err(what(format!(
                "frame {seq} of {len} bytes came back with {} bytes",
                g.data.len()
            )));
        }
        if let Some(j) = s.iter().zip(&g.data).position(|(x, y)| x != y) {
            return Err(what(format!(
                "frame {seq} of {len} bytes differs at byte {j}: sent {:#04x}, got {:#04x}",
                s[j], g.data[j]
            )));
        }
    }
    if got.len() != sent.len() {
        return Err(what(format!(
            "{} of frames {first}..{} of {len} bytes came back",
            got.len(),
            first + sent.len()
        )));
    }
    Ok(())
}
