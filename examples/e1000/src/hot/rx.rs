//! RX clean and buffer refill.
//!
//! Each descriptor slot has a buffer of the ring's buffer length in one DMA region. A frame
//! longer than a buffer spans several descriptors (EOP on the last, SDM 3.2.3); its pieces
//! are gathered across poll rounds if the budget ends mid-frame. Frames up to the
//! copybreak length are copied into an exactly-sized allocation and the gathering buffer
//! is kept for the next frame; longer ones take the gathering buffer with them.

use microdriver_rt::critical;
use std::sync::atomic::Ordering;

use crate::error::DriverError;
use crate::frame::{RxCsum, RxFrame};
use crate::hw::{Dma, DmaRegion};
use crate::kernel::{self, DevId, Kernel};
use crate::regs::{rxd_err, rxd_stat, DESC_LEN, RDT};

/// The receive errors that make the driver drop a frame (SDM 3.2.3.2): CRC/alignment,
/// symbol, sequence, carrier extension and RX data errors. Checksum errors are reported,
/// not dropped.
const FRAME_ERRORS: u8 = rxd_err::CE | rxd_err::SE | rxd_err::SEQ | rxd_err::CXE | rxd_err::RXE;

/// The receive ring.
pub struct RxRing {
    count: u32,
    desc: Box<dyn DmaRegion>,
    bufs: Box<dyn DmaRegion>,
    buf_len: usize,
    next_to_clean: u32,
    next_to_use: u32,
    /// The frame being gathered (descriptors without EOP so far).
    partial: Vec<u8>,
    partial_errors: u8,
}

impl RxRing {
    /// Allocates a ring of `count` descriptors with `buf_len`-byte buffers.
    pub(crate) fn new(dma: &dyn Dma, count: u32, buf_len: usize) -> Result<Self, DriverError> {
        let n = count as usize;
        Ok(Self {
            count,
            desc: dma.alloc_region(n * DESC_LEN)?,
            bufs: dma.alloc_region(n * buf_len)?,
            buf_len,
            next_to_clean: 0,
            next_to_use: 0,
            partial: Vec::new(),
            partial_errors: 0,
        })
    }

    /// Bus address of the descriptor ring.
    pub fn desc_bus(&self) -> u64 {
        self.desc.bus_addr()
    }

    /// Descriptor count.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Buffer length.
    pub fn buf_len(&self) -> usize {
        self.buf_len
    }

    pub(crate) fn reset(&mut self) -> Result<(), DriverError> {
        self.desc
            .write(0, &vec![0u8; self.count as usize * DESC_LEN])?;
        self.next_to_clean = 0;
        self.next_to_use = 0;
        self.partial.clear();
        self.partial_errors = 0;
        Ok(())
    }

    /// Gives every free slot a buffer (a fresh descriptor with DD clear); returns the new
    /// tail to write to RDT, or `None` if no slot was free. One slot always stays empty so
    /// that head == tail means "ring empty" (SDM 3.2.6).
    pub(crate) fn refill(&mut self) -> Result<Option<u32>, DriverError> {
        let mut given = false;
        while (self.next_to_use + 1) % self.count != self.next_to_clean {
            let i = self.next_to_use as usize;
            let addr = self.bufs.bus_addr() + (i * self.buf_len) as u64;
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            self.desc.write(i * DESC_LEN, &d)?;
            self.next_to_use = (self.next_to_use + 1) % self.count;
            given = true;
        }
        Ok(given.then_some(self.next_to_use))
    }
}

/// Receives up to `budget` frames on `dev` (critical).
#[critical]
pub fn clean_rx(dev: DevId, budget: u32) -> Result<u32, DriverError> {
    Ok(clean(&*kernel::lookup(dev)?, budget))
}

fn csum_status(status: u8, errors: u8) -> RxCsum {
    if status & rxd_stat::IXSM != 0 {
        RxCsum::None
    } else if errors & (rxd_err::IPE | rxd_err::TCPE) != 0 {
        RxCsum::Bad
    } else if status & rxd_stat::TCPCS != 0 {
        RxCsum::Good
    } else if status & rxd_stat::IPCS != 0 {
        RxCsum::IpGood
    } else {
        RxCsum::None
    }
}

/// Takes up to `budget` completed frames off the ring, refills it, moves RDT, and delivers
/// the frames after releasing the ring lock (in ring order: the delivery lock is taken
/// before the ring lock is released). Returns the frames delivered or dropped.
pub fn clean(k: &Kernel, budget: u32) -> u32 {
    let copybreak = k.cfg.copybreak.load(Ordering::Relaxed) as usize;
    let max_frame = k.cfg.max_frame.load(Ordering::Relaxed) as usize;
    let rx_csum = k.cfg.rx_csum.load(Ordering::Relaxed);
    let c = &k.counters;
    let mut out = Vec::new();
    let mut done = 0;
    let mut g = k.rx.lock();
    let order = {
        let Some(r) = g.as_mut() else {
            return 0;
        };
        while done < budget {
            let i = r.next_to_clean as usize;
            let mut d = [0u8; 16];
            if r.desc.read(i * DESC_LEN, &mut d).is_err() {
                break;
            }
            let (len, status, errors, special) = (
                usize::from(u16::from_le_bytes([d[8], d[9]])),
                d[12],
                d[13],
                u16::from_le_bytes([d[14], d[15]]),
            );
            if status & rxd_stat::DD == 0 {
                break;
            }
            let len = len.min(r.buf_len);
            if r.partial.len() + len > max_frame + r.buf_len {
                // A frame longer than anything the receiver was set up for (a device that
                // never sets EOP): stop gathering, drop it at its end.
                r.partial.clear();
                r.partial_errors |= rxd_err::RXE;
            }
            let start = r.partial.len();
            r.partial.resize(start + len, 0);
            if r.bufs.read(i * r.buf_len, &mut r.partial[start..]).is_err() {
                r.partial_errors |= rxd_err::RXE;
            }
            r.partial_errors |= errors & FRAME_ERRORS;
            r.next_to_clean = (r.next_to_clean + 1) % r.count;
            if status & rxd_stat::EOP == 0 {
                continue;
            }
            done += 1;
            let bad = std::mem::take(&mut r.partial_errors) != 0;
            if bad || r.partial.len() > max_frame || r.partial.len() < 14 {
                r.partial.clear();
                c.rx_errors.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let data = if r.partial.len() <= copybreak {
                c.rx_copybreak.fetch_add(1, Ordering::Relaxed);
                let small = r.partial.clone();
                r.partial.clear();
                small
            } else {
                std::mem::take(&mut r.partial)
            };
            let csum = if rx_csum {
                csum_status(status, errors)
            } else {
                RxCsum::None
            };
            match csum {
                RxCsum::Good | RxCsum::IpGood => c.rx_csum_good.fetch_add(1, Ordering::Relaxed),
                RxCsum::Bad => c.rx_csum_bad.fetch_add(1, Ordering::Relaxed),
                RxCsum::None => 0,
            };
            c.rx_packets.fetch_add(1, Ordering::Relaxed);
            c.rx_bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
            out.push(RxFrame {
                data,
                vlan: (status & rxd_stat::VP != 0).then_some(special),
                csum,
            });
        }
        if let Ok(Some(tail)) = r.refill() {
            k.wr(RDT, tail);
        }
        // Hand-over-hand: whoever took frames off the ring first delivers them first.
        k.rx_order.lock()
    };
    drop(g);
    for f in out {
        k.deliver(f);
    }
    drop(order);
    done
}
