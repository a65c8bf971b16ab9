//! The data path between the NIC and the TAP interface.
//!
//! **Receive** (NIC -> host): the driver's poll loop hands each received frame to a sink
//! that writes it to the TAP descriptor at once, on the interrupt thread: no queue and no
//! second thread to wake. A tag the NIC stripped (CTRL.VME) is put back first, so VLAN
//! devices on the TAP get their frames.
//!
//! **Transmit** (host -> NIC): one thread waits for the TAP to be readable, reads every
//! frame queued there (up to [`TX_BATCH`]) into reused buffers, and hands the batch to the
//! driver, which takes its transmit ring's lock once and rings the doorbell (TDT) once for
//! all of them. A full ring is waited out while the carrier is on, for at most
//! [`STALE_AFTER`]; with the carrier off the frames are dropped and counted
//! ([`Stack::tx_dropped`]): a frame sent after an outage is stale.
//!
//! **Offloads**: the TAP carries a `virtio_net_hdr` with each frame. The host's stack may
//! leave a TCP/UDP checksum (`NEEDS_CSUM`) or the segmentation of a TCP/IPv4 frame of up
//! to 64 KiB (`GSO_TCPV4`) to the NIC: they become the driver's checksum and TSO requests,
//! i.e. the NIC's context descriptors. The TAP is told (`TUNSETOFFLOAD`) exactly what the
//! driver has on (ethtool `-K` tx-checksumming / tcp-segmentation-offload), and follows
//! it when it changes; a partial checksum that the driver cannot take (its offload just
//! turned off, or offsets it cannot express) is finished here in software. Received frames
//! whose TCP/UDP checksum the NIC verified go up as `DATA_VALID`.
//!
//! **Carrier**: the TAP's carrier follows the driver's (link up and interface open), so the
//! host stops handing frames to a NIC without link, and every change is logged.
//!
//! Copies per frame in user space: one each way, between the frame's buffer and the ring's
//! DMA buffer (the driver's). The kernel's TAP read and write copy once more each. The TAP
//! is opened with `IFF_NAPI`, so received frames written to it pass GRO, as a NIC's do.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::frame::{tx_offload, CsumOffload, RxCsum, TsoOffload, TxOffload};
use e1000::netdev::Netdev;
use e1000::{DriverError, RxFrame, TxPacket};

use crate::stack::Stack;
use crate::tap::{offload, Tap, VnetHdr};

/// Most frames read from the TAP and handed to the driver per wake-up.
pub const TX_BATCH: usize = 64;
/// Each transmit buffer's capacity: the largest frame a TAP hands over (MTU 65535,
/// Ethernet header, one VLAN tag).
const FRAME_BUF: usize = 65_535 + 18;
/// How long frames wait for room in the ring (carrier on) before they are dropped.
pub const STALE_AFTER: Duration = Duration::from_millis(200);

/// Installs the receive sink: every frame the driver receives goes to `tap`.
pub(crate) fn attach_rx(nd: &Netdev, tap: Arc<Tap>, stack: Arc<Stack>) {
    nd.kernel()
        .set_sink(Some(Arc::new(move |frames: Vec<RxFrame>| {
            tracing::trace!(frames = frames.len(), "to the TAP");
            frames.into_iter().for_each(|f| send_up(&tap, &stack, f))
        })));
}

/// Writes one received frame to the TAP, its tag re-inserted, its checksum status in the
/// virtio-net header.
fn send_up(tap: &Tap, stack: &Stack, f: RxFrame) {
    let hdr = VnetHdr {
        flags: if f.csum == RxCsum::Good {
            VnetHdr::DATA_VALID
        } else {
            0
        },
        ..VnetHdr::default()
    };
    let r = match f.vlan {
        Some(tci) => tap.send(&hdr, &with_tag(&f.data, tci)),
        None => tap.send(&hdr, &f.data),
    };
    if let Err(e) = r {
        if stack.rx_dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(error = %e, "dropping a received frame (counted in status)");
        }
    } else {
        stack.rx_frames.fetch_add(1, Ordering::Relaxed);
    }
}

/// `frame` with the 802.1Q tag `tci` inserted after the MAC addresses.
pub fn with_tag(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(frame.len() + 4);
    let split = frame.len().min(12);
    out.extend_from_slice(&frame[..split]);
    out.extend_from_slice(&[0x81, 0x00]);
    out.extend_from_slice(&tci.to_be_bytes());
    out.extend_from_slice(&frame[split..]);
    out
}

/// Switches the TAP's carrier to the driver's when it changed (`last`: what it was set to).
fn follow_carrier(nd: &Netdev, tap: &Tap, last: &mut Option<bool>) {
    let on = nd.kernel().carrier();
    if *last == Some(on) {
        return;
    }
    match tap.set_carrier(on) {
        Ok(()) => {
            if on {
                tracing::info!(tap = tap.name(), "link up: TAP carrier on");
            } else {
                tracing::warn!(tap = tap.name(), "link down: TAP carrier off");
            }
            *last = Some(on);
        }
        Err(e) => {
            if last.is_some() {
                tracing::error!(error = %e, "cannot switch the TAP carrier");
            }
            *last = Some(on);
        }
    }
}

/// The [`offload`] bits to advertise for the driver's transmit offloads.
fn tap_offloads(driver: u32) -> u32 {
    let mut bits = 0;
    if driver & tx_offload::CSUM != 0 {
        bits |= offload::CSUM;
        if driver & tx_offload::TSO != 0 {
            bits |= offload::TSO4;
        }
    }
    bits
}

/// Advertises to the TAP what the driver has on, when that changed.
fn follow_offloads(nd: &Netdev, tap: &Tap, last: &mut Option<u32>) {
    let bits = tap_offloads(nd.kernel().tx_offloads());
    if *last == Some(bits) {
        return;
    }
    match tap.set_offload(bits) {
        Ok(()) => tracing::info!(
            tap = tap.name(),
            csum = bits & offload::CSUM != 0,
            tso4 = bits & offload::TSO4 != 0,
            "TAP offloads set to the driver's"
        ),
        Err(e) => tracing::error!(error = %e, "cannot set the TAP's offloads"),
    }
    *last = Some(bits);
}

/// The transmit thread: TAP -> NIC, in batches, until `stop`.
pub(crate) fn tx_loop(nd: &Netdev, tap: &Tap, stack: &Stack, stop: &AtomicBool) {
    let mut pkts: Vec<TxPacket> = (0..TX_BATCH)
        .map(|_| TxPacket::new(Vec::with_capacity(FRAME_BUF)))
        .collect();
    let mut hdr = VnetHdr::default();
    let (mut carrier, mut offloads) = (None, None);
    while !stop.load(Ordering::Relaxed) {
        follow_carrier(nd, tap, &mut carrier);
        follow_offloads(nd, tap, &mut offloads);
        match tap.wait_readable(Duration::from_millis(50)) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::error!(error = %e, "waiting for the TAP failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        tracing::trace!("TAP readable");
        let enabled = nd.kernel().tx_offloads();
        let mut n = 0;
        while n < TX_BATCH {
            let pkt = &mut pkts[n];
            match tap.try_recv(&mut hdr, &mut pkt.frags[0]) {
                Ok(true) => match offload_of(&hdr, &mut pkt.frags[0], enabled) {
                    Ok(o) => {
                        pkt.offload = o;
                        n += 1;
                    }
                    Err(why) => {
                        stack.tx_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::debug!(why, ?hdr, "dropping a host frame");
                    }
                },
                Ok(false) => break,
                Err(e) => {
                    tracing::error!(error = %e, "TAP read failed");
                    break;
                }
            }
        }
        send(nd, &pkts[..n], stack);
        tracing::trace!(frames = n, "from the TAP to the ring");
    }
}

/// The driver's offload request for a frame from the TAP with header `h`, given the
/// driver's enabled offloads; a partial checksum the driver cannot take is finished in
/// `frame` here. Errors say why the frame cannot be sent.
pub fn offload_of(h: &VnetHdr, frame: &mut [u8], enabled: u32) -> Result<TxOffload, &'static str> {
    if frame.len() < 14 {
        return Err("shorter than an Ethernet header");
    }
    let gso = h.gso_type & !VnetHdr::GSO_ECN;
    if h.flags & VnetHdr::NEEDS_CSUM == 0 {
        return if gso == VnetHdr::GSO_NONE {
            Ok(TxOffload::default())
        } else {
            Err("segmentation without a partial checksum")
        };
    }
    let start = usize::from(h.csum_start);
    let field = start + usize::from(h.csum_offset);
    if field + 2 > frame.len() {
        return Err("checksum offsets past the frame");
    }
    let (ip_start, ethertype) = match u16::from_be_bytes([frame[12], frame[13]]) {
        0x8100 if frame.len() >= 18 => (18, u16::from_be_bytes([frame[16], frame[17]])),
        t => (14, t),
    };
    let ipv4 = ethertype == 0x0800;
    let tcp = h.csum_offset == 16;
    let hw = enabled & tx_offload::CSUM != 0
        && (ipv4 || ethertype == 0x86DD)
        && (tcp || h.csum_offset == 6)
        && start >= ip_start + if ipv4 { 20 } else { 40 }
        && start <= 255 - 16;
    match gso {
        VnetHdr::GSO_NONE if hw => {
            if ipv4 {
                // The NIC inserts the IPv4 header checksum too (IXSM): it sums the header
                // with the field zero, so the stack's value must go.
                frame[ip_start + 10..ip_start + 12].fill(0);
            }
            Ok(TxOffload {
                csum: Some(CsumOffload {
                    ip_start: ip_start as u8,
                    l4_start: start as u8,
                    ipv4,
                    tcp,
                }),
                ..TxOffload::default()
            })
        }
        VnetHdr::GSO_NONE => {
            finish_checksum(frame, start, field);
            Ok(TxOffload::default())
        }
        VnetHdr::GSO_TCPV4 if hw && ipv4 && tcp && enabled & tx_offload::TSO != 0 => {
            if start + 20 > frame.len() {
                return Err("TCP header past the frame");
            }
            let hdr_len = start + usize::from(frame[start + 12] >> 4) * 4;
            let hdr_len = u8::try_from(hdr_len).map_err(|_| "headers longer than 255 bytes")?;
            seed_tso(frame, ip_start, start);
            Ok(TxOffload {
                csum: Some(CsumOffload {
                    ip_start: ip_start as u8,
                    l4_start: start as u8,
                    ipv4,
                    tcp,
                }),
                tso: Some(TsoOffload {
                    mss: h.gso_size,
                    hdr_len,
                }),
                vlan: None,
            })
        }
        _ => Err("segmentation the driver does not have on"),
    }
}

/// The ones' complement sum of `data` (as 16-bit big-endian words), not folded.
fn sum(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .fold(0u32, u32::wrapping_add)
}

fn fold(mut s: u32) -> u16 {
    while s > 0xFFFF {
        s = (s & 0xFFFF) + (s >> 16);
    }
    s as u16
}

/// Finishes a partial checksum: the field (seeded by the stack with the pseudo-header
/// sum) becomes the checksum of everything from `start`.
fn finish_checksum(frame: &mut [u8], start: usize, field: usize) {
    let c = !fold(sum(&frame[start..]));
    // UDP sends a computed 0 as all ones (0 means "no checksum").
    let c = if c == 0 && field == start + 6 {
        0xFFFF
    } else {
        c
    };
    frame[field..field + 2].copy_from_slice(&c.to_be_bytes());
}

/// Prepares a TCP/IPv4 frame for the NIC's segmentation as Linux's e1000 does: the IP
/// total length and header checksum zero (the NIC fills them per segment), the TCP
/// checksum seeded with the pseudo-header sum without the length.
fn seed_tso(frame: &mut [u8], ip: usize, tcp: usize) {
    frame[ip + 2..ip + 4].fill(0);
    frame[ip + 10..ip + 12].fill(0);
    let pseudo = sum(&frame[ip + 12..ip + 20]) + 6;
    frame[tcp + 16..tcp + 18].copy_from_slice(&fold(pseudo).to_be_bytes());
}

/// Hands `pkts` to the driver; waits out a full ring while the carrier is on (at most
/// [`STALE_AFTER`]), else drops what is left, counted.
fn send(nd: &Netdev, pkts: &[TxPacket], stack: &Stack) {
    let deadline = Instant::now() + STALE_AFTER;
    let mut done = 0;
    while done < pkts.len() {
        let mut busy = false;
        done += nd.send_batch(&pkts[done..], |_, r| match r {
            Ok(()) => {
                stack.tx_frames.fetch_add(1, Ordering::Relaxed);
            }
            Err(DriverError::Busy) => busy = true,
            Err(e) => {
                stack.tx_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "host frame refused by the driver");
            }
        });
        if !busy {
            return;
        }
        if !nd.kernel().carrier() || Instant::now() >= deadline {
            let left = (pkts.len() - done) as u64;
            stack.tx_dropped.fetch_add(left, Ordering::Relaxed);
            tracing::debug!(
                frames = left,
                carrier = nd.kernel().carrier(),
                "dropping host frames: no carrier, or no room in the ring"
            );
            return;
        }
        nd.kernel().wait_tx_wake(Duration::from_millis(5));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + TCP frame with `payload` bytes, its TCP checksum seeded with
    /// the pseudo-header sum (with the length) as the stack leaves a partial checksum.
    fn tcp4(payload: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20 + payload];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((40 + payload) as u16).to_be_bytes());
        ip[9] = 6;
        ip[12..16].copy_from_slice(&[10, 0, 2, 15]);
        ip[16..20].copy_from_slice(&[10, 0, 2, 2]);
        f[34 + 12] = 5 << 4;
        for (i, b) in f[54..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let pseudo = sum(&f[26..34]) + 6 + (20 + payload) as u32;
        f[50..52].copy_from_slice(&fold(pseudo).to_be_bytes());
        f
    }

    fn partial(gso: u8, mss: u16) -> VnetHdr {
        VnetHdr {
            flags: VnetHdr::NEEDS_CSUM,
            gso_type: gso,
            hdr_len: 54,
            gso_size: mss,
            csum_start: 34,
            csum_offset: 16,
        }
    }

    #[test]
    fn partial_checksum_becomes_the_drivers_request() {
        let mut f = tcp4(100);
        let o = offload_of(&partial(VnetHdr::GSO_NONE, 0), &mut f, tx_offload::ALL).unwrap();
        assert_eq!(
            o.csum,
            Some(CsumOffload {
                ip_start: 14,
                l4_start: 34,
                ipv4: true,
                tcp: true
            })
        );
        assert_eq!(o.tso, None);
        assert_eq!(
            &f[24..26],
            &[0, 0],
            "IP header checksum zeroed: the NIC inserts it"
        );
    }

    #[test]
    fn checksum_is_finished_here_when_the_offload_is_off() {
        let mut f = tcp4(101);
        let o = offload_of(&partial(VnetHdr::GSO_NONE, 0), &mut f, 0).unwrap();
        assert_eq!(o, TxOffload::default());
        // A correct TCP checksum: the pseudo-header plus the segment sums to all ones.
        let total = sum(&f[26..34]) + 6 + (20 + 101) + sum(&f[34..]);
        assert_eq!(fold(total), 0xFFFF);
    }

    #[test]
    fn tso_frame_is_seeded_as_the_nic_expects() {
        let mut f = tcp4(4000);
        let o = offload_of(&partial(VnetHdr::GSO_TCPV4, 1448), &mut f, tx_offload::ALL).unwrap();
        assert_eq!(
            o.tso,
            Some(TsoOffload {
                mss: 1448,
                hdr_len: 54
            })
        );
        assert_eq!(&f[16..18], &[0, 0], "IP total length zeroed");
        assert_eq!(&f[24..26], &[0, 0], "IP header checksum zeroed");
        let seed = fold(sum(&f[26..34]) + 6);
        assert_eq!(u16::from_be_bytes([f[50], f[51]]), seed);
        // Without TSO on in the driver the frame cannot go.
        let mut g = tcp4(4000);
        let off = tx_offload::ALL & !tx_offload::TSO;
        assert!(offload_of(&partial(VnetHdr::GSO_TCPV4, 1448), &mut g, off).is_err());
    }

    #[test]
    fn bad_headers_are_refused_not_trusted() {
        let mut f = tcp4(10);
        let mut h = partial(VnetHdr::GSO_NONE, 0);
        h.csum_start = 60;
        h.csum_offset = 16;
        assert!(offload_of(&h, &mut f, tx_offload::ALL).is_err());
        h.csum_start = u16::MAX;
        h.csum_offset = u16::MAX;
        assert!(offload_of(&h, &mut f, tx_offload::ALL).is_err());
        assert!(offload_of(
            &partial(VnetHdr::GSO_NONE, 0),
            &mut [0u8; 10],
            tx_offload::ALL
        )
        .is_err());
        let mut g = tcp4(10);
        let gso_without_csum = VnetHdr {
            gso_type: VnetHdr::GSO_TCPV4,
            ..VnetHdr::default()
        };
        assert!(offload_of(&gso_without_csum, &mut g, tx_offload::ALL).is_err());
        // A checksum start before the end of the IP header: finished in software.
        let mut k = tcp4(10);
        let mut h = partial(VnetHdr::GSO_NONE, 0);
        h.csum_start = 20;
        h.csum_offset = 6;
        assert_eq!(
            offload_of(&h, &mut k, tx_offload::ALL),
            Ok(TxOffload::default())
        );
    }

    #[test]
    fn advertised_offloads_are_exactly_the_drivers() {
        assert_eq!(tap_offloads(tx_offload::ALL), offload::CSUM | offload::TSO4);
        assert_eq!(tap_offloads(tx_offload::CSUM), offload::CSUM);
        assert_eq!(tap_offloads(tx_offload::TSO), 0);
        assert_eq!(tap_offloads(0), 0);
    }

    #[test]
    fn tag_goes_after_the_mac_addresses() {
        let frame: Vec<u8> = (0..20).collect();
        let t = with_tag(&frame, 0x2005);
        assert_eq!(&t[..12], &frame[..12]);
        assert_eq!(&t[12..16], &[0x81, 0x00, 0x20, 0x05]);
        assert_eq!(&t[16..], &frame[12..]);
        // A runt (the driver never delivers one, but nothing here may panic on it).
        assert_eq!(with_tag(&[1, 2], 7), vec![1, 2, 0x81, 0, 0, 7]);
    }
}
