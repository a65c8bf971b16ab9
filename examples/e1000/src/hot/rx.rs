//! RX clean and buffer refill.
//!
//! Each descriptor slot has a buffer of the ring's buffer length in one DMA region. A frame
//! longer than a buffer spans several descriptors (EOP on the last, SDM 3.2.3); its pieces
//! are gathered across poll rounds if the budget ends mid-frame. Every frame is copied out
//! of the ring's region into its own allocation (there is no copybreak: with one region
//! per ring there is no buffer to hand up instead of a copy, so the copy is always made).
//!
//! A ring can be **parked** (before a resize): it is then refilled only up to its end, so
//! the hardware stops at index 0 and holds further frames in its packet buffer (counting
//! RNBC; SDM 13.7.33) until the next ring is programmed.

use std::sync::atomic::Ordering;

use microdriver_rt::Marshal;

use crate::error::DriverError;
use crate::frame::{RxCsum, RxFrame};
use crate::hot::ring_next;
use crate::hw::{Dma, DmaMem};
use crate::kernel::device::Kernel;
use crate::regs::{rxd_err, rxd_stat, DESC_LEN, RDT};
use crate::shared::RxQueue;

/// The receive errors that make the driver drop a frame (SDM 3.2.3.2): CRC/alignment,
/// symbol, sequence, carrier extension and RX data errors. Checksum errors are reported,
/// not dropped.
const FRAME_ERRORS: u8 = rxd_err::CE | rxd_err::SE | rxd_err::SEQ | rxd_err::CXE | rxd_err::RXE;

/// A frame gathered so far (descriptors without EOP) and its accumulated errors.
pub type Partial = (Vec<u8>, u8);

/// The receive ring. It crosses to the user half only as a snapshot of its indexes (see
/// [`crate::shared`]): its memory and the frame in progress stay here.
#[derive(Debug, Marshal)]
pub struct RxRing {
    count: u32,
    /// Descriptors (DMA memory: never leaves the kernel half).
    #[marshal(skip)]
    desc: DmaMem,
    /// Receive buffers (DMA memory).
    #[marshal(skip)]
    bufs: DmaMem,
    buf_len: u32,
    next_to_clean: u32,
    next_to_use: u32,
    /// The frame being gathered (packet data: not the user half's).
    #[marshal(skip)]
    partial: Partial,
    /// Refilled only up to the ring's end (see the module docs).
    pub(crate) parked: bool,
}

impl RxRing {
    /// Allocates a ring of `count` descriptors with `buf_len`-byte buffers, continuing the
    /// frame `partial` a previous ring was gathering.
    pub(crate) fn new(
        dma: &dyn Dma,
        count: u32,
        buf_len: usize,
        partial: Partial,
    ) -> Result<Self, DriverError> {
        let n = count as usize;
        Ok(Self {
            count,
            desc: dma.alloc_region(n * DESC_LEN)?.into(),
            bufs: dma.alloc_region(n * buf_len)?.into(),
            buf_len: buf_len as u32,
            next_to_clean: 0,
            next_to_use: 0,
            partial,
            parked: false,
        })
    }

    /// Bus address of the descriptor ring.
    pub fn desc_bus(&self) -> u64 {
        self.desc.bus_addr()
    }

    /// The ring's length in bytes, as programmed into RDLEN/TDLEN.
    pub fn desc_len(&self) -> u32 {
        self.count * 16
    }

    /// Descriptors still to be filled and cleaned before the ring is at its end with
    /// nothing given (0: a parked ring is there, the hardware's head and tail both 0).
    pub(crate) fn to_end(&self) -> u32 {
        match (self.next_to_clean, self.next_to_use) {
            (0, 0) => 0,
            (ntc, _) => self.count - ntc,
        }
    }

    /// For a parked ring the hardware has run to its end (head = tail = 0, everything
    /// cleaned): the frame being gathered, to continue in the next ring. Else `Busy`.
    pub(crate) fn take_parked(&mut self) -> Result<Partial, DriverError> {
        if !self.parked || self.next_to_use != 0 || self.next_to_clean != 0 {
            return Err(DriverError::Busy);
        }
        Ok(std::mem::take(&mut self.partial))
    }

    /// Gives every free slot a buffer (a fresh descriptor with DD clear) and returns the new
    /// tail for RDT. One slot always stays empty so that head == tail means "ring empty"
    /// (SDM 3.2.6); a parked ring is not refilled past its end.
    pub(crate) fn refill(&mut self) -> u32 {
        let n = self.count;
        while ring_next(self.next_to_use, n) != self.next_to_clean
            && !(self.parked && self.next_to_use == 0)
        {
            let i = self.next_to_use as usize;
            let addr = self.bufs.bus_addr() + (i * self.buf_len as usize) as u64;
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            if self.desc.write(i * DESC_LEN, &d).is_err() {
                break;
            }
            self.next_to_use = ring_next(self.next_to_use, n);
        }
        self.next_to_use
    }
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
    let max_frame = k.cfg.max_frame.load(Ordering::Relaxed) as usize;
    let rx_csum = k.cfg.rx_csum.load(Ordering::Relaxed);
    let (mut out, mut done) = (Vec::with_capacity(budget.min(64) as usize), 0);
    let Ok(mut g) = k.rx.lock() else {
        return 0;
    };
    let RxQueue {
        ring: Some(r),
        stats,
    } = &mut *g
    else {
        return 0;
    };
    let buf_len = r.buf_len as usize;
    // Only descriptors given to the hardware: the one empty slot still holds the DD of its
    // previous lap.
    while done < budget && r.next_to_clean != r.next_to_use {
        let i = r.next_to_clean as usize;
        // Length, status, errors and tag are the descriptor's second word: one load.
        let mut d = [0u8; 8];
        if r.desc.read(i * DESC_LEN + 8, &mut d).is_err() || d[4] & rxd_stat::DD == 0 {
            break;
        }
        let (status, errors) = (d[4], d[5]);
        let len = usize::from(u16::from_le_bytes([d[0], d[1]])).min(buf_len);
        let (data, errs) = &mut r.partial;
        if data.len() + len > max_frame + buf_len {
            // A frame longer than anything the receiver was set up for (a device that
            // never sets EOP): stop gathering, drop it at its end.
            data.clear();
            *errs |= rxd_err::RXE;
        }
        let start = data.len();
        data.resize(start + len, 0);
        if r.bufs.read(i * buf_len, &mut data[start..]).is_err() {
            *errs |= rxd_err::RXE;
        }
        *errs |= errors & FRAME_ERRORS;
        r.next_to_clean = ring_next(r.next_to_clean, r.count);
        if status & rxd_stat::EOP == 0 {
            continue;
        }
        done += 1;
        let (data, errs) = std::mem::take(&mut r.partial);
        if errs != 0 || data.len() > max_frame || data.len() < 14 {
            stats.errors += 1;
            continue;
        }
        let csum = if rx_csum {
            csum_status(status, errors)
        } else {
            RxCsum::None
        };
        match csum {
            RxCsum::Good | RxCsum::IpGood => stats.csum_good += 1,
            RxCsum::Bad => stats.csum_bad += 1,
            RxCsum::None => {}
        }
        stats.packets += 1;
        stats.bytes += data.len() as u64;
        let vlan = (status & rxd_stat::VP != 0).then_some(u16::from_le_bytes([d[6], d[7]]));
        out.push(RxFrame { data, vlan, csum });
    }
    let tail = r.next_to_use;
    if r.refill() != tail {
        k.wr(RDT, r.next_to_use);
    }
    // Hand-over-hand: whoever took frames off the ring first delivers them first.
    let order = k.rx_order.lock();
    drop(g);
    let dropped = k.deliver(out);
    drop(order);
    if dropped > 0 {
        if let Ok(mut q) = k.rx.lock() {
            q.stats.dropped += dropped;
        }
    }
    done
}
