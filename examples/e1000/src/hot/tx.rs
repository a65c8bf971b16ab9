//! Transmit and TX clean.
//!
//! Each descriptor slot has a [`TX_BUF`]-byte buffer in one DMA region; a packet's
//! fragments are split into slot-sized pieces, one descriptor each, so a packet of any
//! length the part accepts spans as many descriptors as it needs (scatter-gather as the
//! device sees it). Offloads use the extended format: a TCP/IP context descriptor
//! (SDM 3.3.6) followed by data descriptors (SDM 3.3.7); plain packets use legacy
//! descriptors (SDM 3.3.3). Every packet's last descriptor has EOP and RS, so its DD bit
//! tells TX clean the whole packet is done.

use microdriver_rt::{critical, Marshal};
use std::sync::atomic::Ordering;

use crate::error::DriverError;
use crate::frame::{tx_offload, CsumOffload, TsoOffload, TxPacket};
use crate::hot::ring_next;
use crate::hw::{Dma, DmaMem};
use crate::kernel::device::{self, DevId, Kernel};
use crate::regs::{dtyp, popts, tucmd, txd_cmd, txd_stat, DESC_LEN, TDT};
use crate::shared::{TxQueue, TxStats};

/// Bytes of buffer behind each transmit descriptor.
pub const TX_BUF: usize = 2048;
/// Largest TSO packet (headers + payload) the driver hands to the part: the largest IPv4
/// datagram with an Ethernet header and one VLAN tag.
pub const MAX_TSO: usize = 65_535 + 18;
/// Descriptors kept free so that a stopped queue wakes with room for a large packet.
const WAKE_THRESHOLD: u32 = 40;

mod encode {
    //! Descriptor encodings as byte arrays (the layouts of `regs::TxDesc`, `TxContextDesc`
    //! and `TxDataDesc`, little-endian).

    /// A legacy transmit descriptor (SDM 3.3.3).
    pub fn legacy(addr: u64, len: u16, cmd: u8, special: u16) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..10].copy_from_slice(&len.to_le_bytes());
        d[11] = cmd;
        d[14..16].copy_from_slice(&special.to_le_bytes());
        d
    }

    /// A TCP/IP data descriptor (SDM 3.3.7).
    pub fn data(addr: u64, len: u32, dcmd: u8, popts: u32, special: u16) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        let lower = (len & 0x000F_FFFF)
            | (super::dtyp::DATA << super::dtyp::SHIFT)
            | (u32::from(dcmd) << 24);
        d[8..12].copy_from_slice(&lower.to_le_bytes());
        let upper = popts | (u32::from(special) << 16);
        d[12..16].copy_from_slice(&upper.to_le_bytes());
        d
    }

    /// A TCP/IP context descriptor (SDM 3.3.6).
    #[allow(clippy::too_many_arguments)]
    pub fn context(
        ipcss: u8,
        ipcso: u8,
        ipcse: u16,
        tucss: u8,
        tucso: u8,
        cmd_and_length: u32,
        hdr_len: u8,
        mss: u16,
    ) -> [u8; 16] {
        let mut d = [0u8; 16];
        d[0] = ipcss;
        d[1] = ipcso;
        d[2..4].copy_from_slice(&ipcse.to_le_bytes());
        d[4] = tucss;
        d[5] = tucso;
        // tucse = 0: to the end of the packet.
        d[8..12].copy_from_slice(&cmd_and_length.to_le_bytes());
        d[13] = hdr_len;
        d[14..16].copy_from_slice(&mss.to_le_bytes());
        d
    }
}

/// Per-descriptor bookkeeping.
#[derive(Debug, Clone, Copy, Default)]
struct TxInfo {
    /// On a packet's first descriptor: the index of its last (EOP) descriptor.
    eop: Option<u32>,
    /// On a packet's first descriptor: bytes the packet puts on the wire (without FCS).
    bytes: u64,
    /// On a packet's first descriptor: frames it becomes (TSO segments).
    frames: u64,
}

/// The transmit ring. It crosses to the user half only as a snapshot of its indexes (see
/// [`crate::shared`]): its memory and bookkeeping stay here.
#[derive(Debug, Marshal)]
pub struct TxRing {
    count: u32,
    /// Descriptors (DMA memory: never leaves the kernel half).
    #[marshal(skip)]
    desc: DmaMem,
    /// Packet buffers (DMA memory).
    #[marshal(skip)]
    bufs: DmaMem,
    next_to_use: u32,
    next_to_clean: u32,
    /// Per-descriptor bookkeeping (a descriptor's worth per slot: not worth copying).
    #[marshal(skip)]
    info: Vec<TxInfo>,
    stopped: bool,
    /// The offload context last loaded into the hardware (re-used while unchanged).
    ctx: Option<CsumOffload>,
}

impl TxRing {
    /// Allocates a ring of `count` descriptors and their buffers.
    pub(crate) fn new(dma: &dyn Dma, count: u32) -> Result<Self, DriverError> {
        let n = count as usize;
        Ok(Self {
            count,
            desc: dma.alloc_region(n * DESC_LEN)?.into(),
            bufs: dma.alloc_region(n * TX_BUF)?.into(),
            next_to_use: 0,
            next_to_clean: 0,
            info: vec![TxInfo::default(); n],
            stopped: false,
            ctx: None,
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

    fn unused(&self) -> u32 {
        self.count - 1 - self.pending()
    }

    /// Descriptors in flight.
    pub fn pending(&self) -> u32 {
        let (u, c, n) = (self.next_to_use, self.next_to_clean, self.count);
        let wrap = if u < c { n } else { 0 };
        (u.saturating_add(wrap).saturating_sub(c)).min(n.saturating_sub(1))
    }

    /// The oldest slot not yet reclaimed (TX clean's progress).
    pub fn next_to_clean(&self) -> u32 {
        self.next_to_clean
    }

    /// Whether the queue is stopped (the ring was full).
    pub fn stopped(&self) -> bool {
        self.stopped
    }

    fn push(&mut self, d: [u8; 16]) -> Result<u32, DriverError> {
        let i = self.next_to_use;
        self.desc.write(i as usize * DESC_LEN, &d)?;
        self.next_to_use = ring_next(i, self.count);
        Ok(i)
    }
}

/// Checks a packet against what the part can send; returns (descriptors needed for data,
/// wire bytes, frames).
fn validate(pkt: &TxPacket, max_frame: usize) -> Result<(u32, u64, u64), DriverError> {
    let len = pkt.len();
    if len < 14 {
        return Err(DriverError::BadPacket(format!(
            "{len} bytes is shorter than an Ethernet header"
        )));
    }
    let tag = if pkt.offload.vlan.is_some() { 4 } else { 0 };
    let descs: usize = pkt.frags.iter().map(|f| f.len().div_ceil(TX_BUF)).sum();
    let descs =
        u32::try_from(descs).map_err(|_| DriverError::BadPacket("too many fragments".into()))?;
    if let Some(c) = pkt.offload.csum {
        let min_l4 = usize::from(c.l4_start) + if c.tcp { 20 } else { 8 };
        let min_ip = usize::from(c.ip_start) + if c.ipv4 { 20 } else { 40 };
        // The checksum fields' offsets must fit the context descriptor's 8-bit fields.
        let max_l4 = if c.tcp { 255 - 16 } else { 255 - 6 };
        if c.ip_start < 14
            || min_ip > usize::from(c.l4_start)
            || min_l4 > len
            || c.l4_start > max_l4
        {
            return Err(DriverError::BadPacket(format!(
                "checksum offsets ip {} / l4 {} do not fit a {len}-byte packet",
                c.ip_start, c.l4_start
            )));
        }
    }
    match pkt.offload.tso {
        None => {
            if len + tag > max_frame {
                return Err(DriverError::BadPacket(format!(
                    "{len}-byte frame exceeds the {max_frame}-byte maximum (raise the MTU)"
                )));
            }
            Ok((descs, len as u64, 1))
        }
        Some(t) => {
            let c = match pkt.offload.csum {
                Some(c) if c.tcp => c,
                _ => {
                    return Err(DriverError::BadPacket(
                        "TSO needs TCP checksum offload".into(),
                    ))
                }
            };
            let hdr = usize::from(t.hdr_len);
            if t.mss == 0 || hdr < usize::from(c.l4_start) + 20 || hdr >= len || len > MAX_TSO {
                return Err(DriverError::BadPacket(format!(
                    "TSO mss {} / header {hdr} invalid for a {len}-byte packet (max {MAX_TSO})",
                    t.mss
                )));
            }
            if hdr + usize::from(t.mss) + tag > max_frame {
                return Err(DriverError::BadPacket(format!(
                    "TSO segments of {} bytes exceed the {max_frame}-byte maximum frame",
                    hdr + usize::from(t.mss)
                )));
            }
            let payload = len - hdr;
            let segs = payload.div_ceil(usize::from(t.mss)) as u64;
            Ok((descs, (payload + hdr * segs as usize) as u64, segs))
        }
    }
}

/// Transmits a packet on `dev` (critical).
#[critical]
pub fn xmit_frame(dev: DevId, pkt: &TxPacket) -> Result<(), DriverError> {
    xmit(&*device::lookup(dev)?, pkt)
}

/// Queues a packet: returns `Ok` once the hardware owns it (it will be sent: nothing is
/// dropped after this), [`DriverError::Busy`] if the ring is full or the link is down
/// (the queue is stopped; wait for [`Kernel::wait_tx_wake`]), or
/// [`DriverError::BadPacket`] if the part cannot send it as described.
pub fn xmit(k: &Kernel, pkt: &TxPacket) -> Result<(), DriverError> {
    let mut r = Err(DriverError::Busy);
    xmit_batch(k, std::slice::from_ref(pkt), |_, res| r = res);
    r
}

/// Queues `pkts` in order under one hold of the ring lock and one TDT write (the doorbell
/// rings once per batch, as Linux's `xmit_more` does). `each(i, result)` gets every
/// packet's outcome as [`xmit`] would return it; the batch stops at the first packet
/// refused as [`DriverError::Busy`] (reported; it and the rest stay the caller's). Returns
/// how many packets were consumed (queued, or refused as bad: those are counted as
/// dropped).
pub fn xmit_batch(
    k: &Kernel,
    pkts: &[TxPacket],
    mut each: impl FnMut(usize, Result<(), DriverError>),
) -> usize {
    if pkts.is_empty() {
        return 0;
    }
    let Ok(mut g) = k.tx.lock() else {
        each(0, Err(DriverError::Busy));
        return 0;
    };
    let TxQueue {
        ring: Some(t),
        stats,
    } = &mut *g
    else {
        each(0, Err(DriverError::Busy));
        return 0;
    };
    if !k.carrier.load(Ordering::Acquire) || k.tx_frozen.load(Ordering::Acquire) {
        stats.busy += 1;
        each(0, Err(DriverError::Busy));
        return 0;
    }
    let enabled = k.cfg.tx_offloads.load(Ordering::Relaxed);
    let max_frame = k.cfg.max_frame.load(Ordering::Relaxed) as usize;
    let ide = if k.cfg.tx_ide.load(Ordering::Relaxed) {
        txd_cmd::IDE
    } else {
        0
    };
    let tail = t.next_to_use;
    let mut consumed = 0;
    for (i, pkt) in pkts.iter().enumerate() {
        let r = queue_locked(k, t, stats, pkt, enabled, max_frame, ide);
        let busy = matches!(r, Err(DriverError::Busy));
        each(i, r);
        if busy {
            break;
        }
        consumed += 1;
    }
    if t.next_to_use != tail {
        k.wr(TDT, t.next_to_use);
    }
    consumed
}

/// Puts one packet on the ring (the ring lock held; TDT not written).
fn queue_locked(
    k: &Kernel,
    t: &mut TxRing,
    stats: &mut TxStats,
    pkt: &TxPacket,
    enabled: u32,
    max_frame: usize,
    ide: u8,
) -> Result<(), DriverError> {
    let off = pkt.offloads_used() & !enabled;
    if off != 0 {
        stats.dropped += 1;
        let e = format!("{} turned off (ethtool -K)", tx_offload::names(off));
        return Err(DriverError::BadPacket(e));
    }
    let (data_descs, bytes, frames) = match validate(pkt, max_frame) {
        Ok(v) => v,
        Err(e) => {
            stats.dropped += 1;
            return Err(e);
        }
    };
    let off = pkt.offload;
    let need_ctx = match (off.csum, off.tso) {
        (Some(c), None) => t.ctx != Some(c),
        (_, Some(_)) => true,
        (None, None) => false,
    };
    let needed = data_descs + u32::from(need_ctx);
    if needed + 2 > t.count {
        return Err(DriverError::BadPacket(format!(
            "packet needs {needed} descriptors; the ring has {}",
            t.count
        )));
    }
    if t.unused() < needed {
        clean_locked(k, t, stats);
        if t.unused() < needed {
            t.stopped = true;
            stats.busy += 1;
            return Err(DriverError::Busy);
        }
    }
    let first = t.next_to_use;
    let special = off.vlan.unwrap_or(0);
    let vle = if off.vlan.is_some() { txd_cmd::VLE } else { 0 };
    let extended = off.csum.is_some();
    if need_ctx {
        if let Some(c) = off.csum {
            let tucso = c.l4_start + if c.tcp { 16 } else { 6 };
            let (ipcso, ipcse) = if c.ipv4 {
                (c.ip_start + 10, u16::from(c.l4_start) - 1)
            } else {
                (0, 0)
            };
            let mut cmd = tucmd::DEXT;
            if c.tcp {
                cmd |= tucmd::TCP;
            }
            if c.ipv4 {
                cmd |= tucmd::IP;
            }
            let (hdr_len, mss) = match off.tso {
                Some(TsoOffload { mss, hdr_len }) => {
                    cmd |= tucmd::TSE
                        | ((pkt.len() - usize::from(hdr_len)) as u32 & tucmd::PAYLEN_MASK);
                    (hdr_len, mss)
                }
                None => (0, 0),
            };
            t.push(encode::context(
                c.ip_start, ipcso, ipcse, c.l4_start, tucso, cmd, hdr_len, mss,
            ))?;
            // A TSO context is specific to its packet; a checksum context can be re-used.
            t.ctx = if off.tso.is_some() { None } else { Some(c) };
        }
    }
    let popts_bits = match off.csum {
        Some(c) => popts::TXSM | if c.ipv4 { popts::IXSM } else { 0 },
        None => 0,
    };
    let tse = if off.tso.is_some() { txd_cmd::TSE } else { 0 };
    let mut remaining = data_descs;
    let mut last = first;
    for frag in &pkt.frags {
        for chunk in frag.chunks(TX_BUF) {
            remaining -= 1;
            let eop = if remaining == 0 {
                txd_cmd::EOP | txd_cmd::RS
            } else {
                0
            };
            let slot = t.next_to_use as usize;
            t.bufs.write(slot * TX_BUF, chunk)?;
            let addr = t.bufs.bus_addr() + (slot * TX_BUF) as u64;
            let d = if extended {
                encode::data(
                    addr,
                    chunk.len() as u32,
                    txd_cmd::DEXT | txd_cmd::IFCS | tse | vle | ide | eop,
                    popts_bits,
                    special,
                )
            } else {
                encode::legacy(
                    addr,
                    chunk.len() as u16,
                    txd_cmd::IFCS | vle | ide | eop,
                    special,
                )
            };
            last = t.push(d)?;
        }
    }
    t.info[first as usize] = TxInfo {
        eop: Some(last),
        bytes,
        frames,
    };
    Ok(())
}

/// Reclaims every packet whose last descriptor the hardware marked done; wakes a stopped
/// queue once enough descriptors are free. Returns the packets reclaimed.
pub fn clean(k: &Kernel) -> u32 {
    let Ok(mut g) = k.tx.lock() else {
        return 0;
    };
    match &mut *g {
        TxQueue {
            ring: Some(t),
            stats,
        } => clean_locked(k, t, stats),
        TxQueue { ring: None, .. } => 0,
    }
}

pub(crate) fn clean_locked(k: &Kernel, t: &mut TxRing, stats: &mut TxStats) -> u32 {
    let mut packets = 0;
    let (mut frames, mut bytes) = (0u64, 0u64);
    while t.next_to_clean != t.next_to_use {
        let first = t.next_to_clean;
        let info = t.info[first as usize];
        let Some(eop) = info.eop else {
            // Cannot happen (every packet's first slot records its EOP); recover by
            // treating the slot as a lone done descriptor.
            t.next_to_clean = ring_next(first, t.count);
            continue;
        };
        let mut st = [0u8; 1];
        if t.desc.read(eop as usize * DESC_LEN + 12, &mut st).is_err() || st[0] & txd_stat::DD == 0
        {
            break;
        }
        t.info[first as usize] = TxInfo::default();
        t.next_to_clean = ring_next(eop, t.count);
        packets += 1;
        frames += info.frames;
        bytes += info.bytes;
    }
    if packets > 0 {
        stats.packets += frames;
        stats.bytes += bytes;
        if t.stopped && t.unused() >= WAKE_THRESHOLD.min(t.count / 2) {
            t.stopped = false;
            stats.restart_queue += 1;
        }
        k.wake_tx();
    }
    packets
}
