//! The simulated wire and the link partner at its far end.
//!
//! The peer sinks what the NIC sends (recording it for tests), answers ARP requests and ICMP
//! echo requests for its IPv4 address (by default 10.0.2.2 with MAC 52:55:0a:00:02:02, as
//! QEMU's user-mode network does), and generates a stream of frames of configured sizes,
//! either at a fixed rate or paced by the NIC's receive FIFO (as a partner honouring flow
//! control would be).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::net;

/// A frame on the wire: its bytes without FCS, and whether its FCS was good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireFrame {
    /// Destination address through payload (and padding); the FCS is not included.
    pub data: Vec<u8>,
    /// Whether the frame's FCS matched its contents.
    pub fcs_ok: bool,
}

/// Direction on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the NIC to the peer.
    ToPeer,
    /// From the peer to the NIC.
    ToNic,
}

/// Wire fault injection and counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames carried NIC -> peer.
    pub to_peer: u64,
    /// Frames carried peer -> NIC.
    pub to_nic: u64,
    /// Frames lost because the link was down.
    pub dropped_link_down: u64,
    /// Frames dropped by injection.
    pub dropped_injected: u64,
    /// Frames corrupted by injection.
    pub corrupted: u64,
}

/// The wire: carrier state and fault injection.
#[derive(Debug, Clone)]
pub struct Wire {
    pub(crate) up: bool,
    drop_to_peer: u64,
    drop_to_nic: u64,
    corrupt_to_peer: u64,
    corrupt_to_nic: u64,
    pub(crate) stats: WireStats,
}

impl Wire {
    pub(crate) fn new(up: bool) -> Self {
        Self {
            up,
            drop_to_peer: 0,
            drop_to_nic: 0,
            corrupt_to_peer: 0,
            corrupt_to_nic: 0,
            stats: WireStats::default(),
        }
    }

    pub(crate) fn drop_next(&mut self, dir: Direction, n: u64) {
        match dir {
            Direction::ToPeer => self.drop_to_peer += n,
            Direction::ToNic => self.drop_to_nic += n,
        }
    }

    pub(crate) fn corrupt_next(&mut self, dir: Direction, n: u64) {
        match dir {
            Direction::ToPeer => self.corrupt_to_peer += n,
            Direction::ToNic => self.corrupt_to_nic += n,
        }
    }

    /// Carries a frame in `dir`; `None` if it was lost.
    pub(crate) fn carry(&mut self, dir: Direction, mut f: WireFrame) -> Option<WireFrame> {
        if !self.up {
            self.stats.dropped_link_down += 1;
            return None;
        }
        let (drop, corrupt) = match dir {
            Direction::ToPeer => (&mut self.drop_to_peer, &mut self.corrupt_to_peer),
            Direction::ToNic => (&mut self.drop_to_nic, &mut self.corrupt_to_nic),
        };
        if *drop > 0 {
            *drop -= 1;
            self.stats.dropped_injected += 1;
            return None;
        }
        if *corrupt > 0 {
            *corrupt -= 1;
            self.stats.corrupted += 1;
            if let Some(b) = f.data.last_mut() {
                *b ^= 0x5A;
            }
            f.fcs_ok = false;
        }
        match dir {
            Direction::ToPeer => self.stats.to_peer += 1,
            Direction::ToNic => self.stats.to_nic += 1,
        }
        Some(f)
    }
}

/// Configuration of the peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// The peer's MAC address.
    pub mac: [u8; 6],
    /// The IPv4 address it answers ARP and ICMP echo for.
    pub ip: [u8; 4],
    /// Whether to record received frames (see `E1000Sim::peer_take_received`).
    pub record: bool,
    /// At most this many recorded frames are kept; older ones are discarded.
    pub record_limit: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            mac: [0x52, 0x55, 0x0A, 0x00, 0x02, 0x02],
            ip: [10, 0, 2, 2],
            record: true,
            record_limit: 1 << 16,
        }
    }
}

/// A stream of generated frames (see [`net::stream_frame`] for their contents).
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Destination MAC (usually the NIC's).
    pub dst: [u8; 6],
    /// Number of frames.
    pub count: u64,
    /// Frame lengths without FCS, used in turn (frame `seq` has `sizes[seq % len]`).
    pub sizes: Vec<usize>,
    /// Frames per second, or `None` to send as fast as the NIC's receive FIFO accepts
    /// (lossless; models a link partner that honours flow control).
    pub rate: Option<f64>,
}

/// Counters of the peer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Frames received with a good FCS.
    pub rx_frames: u64,
    /// Bytes of those frames (without FCS).
    pub rx_bytes: u64,
    /// Frames received with a bad FCS (discarded).
    pub rx_bad_fcs: u64,
    /// IPv4 frames to the peer with a bad header or ICMP checksum (discarded).
    pub rx_bad_checksum: u64,
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ICMP echo replies sent.
    pub icmp_replies: u64,
    /// Frames sent to the NIC (replies, stream, injected).
    pub tx_frames: u64,
    /// Stream frames sent.
    pub stream_sent: u64,
    /// PAUSE frames received with a non-zero time (XOFF).
    pub xoff_received: u64,
    /// PAUSE frames received with time zero (XON).
    pub xon_received: u64,
    /// PAUSE frames sent.
    pub pause_sent: u64,
    /// Stream frames from the NIC that arrived in order (each with a higher sequence
    /// number than the last since the peer's stream started) and intact.
    pub stream_rx_in_order: u64,
    /// Stream frames from the NIC that arrived out of order, duplicated or corrupted.
    pub stream_rx_bad: u64,
}

#[derive(Debug)]
struct Stream {
    cfg: StreamConfig,
    next: u64,
    start: Instant,
}

/// The link partner.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) cfg: PeerConfig,
    pub(crate) stats: PeerStats,
    pub(crate) received: VecDeque<Vec<u8>>,
    out: VecDeque<Vec<u8>>,
    /// MAC control frames to send; they are not subject to the peer's own pause.
    ctrl_out: VecDeque<Vec<u8>>,
    stream: Option<Stream>,
    /// The NIC asked us (XOFF) not to send data until then.
    paused_until: Option<Instant>,
    /// The lowest sequence number a stream frame from the NIC may carry next.
    stream_rx_next: u64,
}

impl Peer {
    pub(crate) fn new(cfg: PeerConfig) -> Self {
        Self {
            cfg,
            stats: PeerStats::default(),
            received: VecDeque::new(),
            out: VecDeque::new(),
            ctrl_out: VecDeque::new(),
            stream: None,
            paused_until: None,
            stream_rx_next: 0,
        }
    }

    pub(crate) fn start_stream(&mut self, cfg: StreamConfig, now: Instant) {
        // The NIC's side of the stream starts over too.
        self.stream_rx_next = 0;
        self.stream = Some(Stream {
            cfg,
            next: 0,
            start: now,
        });
    }

    pub(crate) fn stop_stream(&mut self) {
        self.stream = None;
    }

    pub(crate) fn stream_remaining(&self) -> u64 {
        self.stream
            .as_ref()
            .map_or(0, |s| s.cfg.count.saturating_sub(s.next))
    }

    pub(crate) fn inject(&mut self, frame: Vec<u8>) {
        self.out.push_back(frame);
    }

    pub(crate) fn send_pause(&mut self, quanta: u16) {
        let mut f = net::eth_header(net::PAUSE_ADDR, self.cfg.mac, net::ETHERTYPE_MAC_CONTROL);
        f.extend_from_slice(&1u16.to_be_bytes());
        f.extend_from_slice(&quanta.to_be_bytes());
        f.resize(net::ETH_ZLEN, 0);
        self.ctrl_out.push_back(f);
    }

    /// A frame arrives from the NIC.
    pub(crate) fn receive(&mut self, f: WireFrame, now: Instant) {
        if !f.fcs_ok {
            self.stats.rx_bad_fcs += 1;
            return;
        }
        let d = &f.data;
        if d.len() >= 18
            && net::ethertype(d) == net::ETHERTYPE_MAC_CONTROL
            && (net::dst_mac(d) == net::PAUSE_ADDR || net::dst_mac(d) == self.cfg.mac)
        {
            // IEEE 802.3 Annex 31B: PAUSE, time in quanta of 512 bit times at 1 Gb/s.
            if u16::from_be_bytes([d[14], d[15]]) == 1 {
                let quanta = u16::from_be_bytes([d[16], d[17]]);
                if quanta == 0 {
                    self.stats.xon_received += 1;
                    self.paused_until = None;
                } else {
                    self.stats.xoff_received += 1;
                    self.paused_until = Some(now + Duration::from_nanos(512 * u64::from(quanta)));
                }
            }
            return;
        }
        self.stats.rx_frames += 1;
        self.stats.rx_bytes += f.data.len() as u64;
        if d.len() >= net::ETH_HLEN
            && net::ethertype(d) == net::ETHERTYPE_STREAM
            && net::dst_mac(d) == self.cfg.mac
        {
            let mut src = [0u8; 6];
            src.copy_from_slice(&d[6..12]);
            match net::check_stream_frame(d, self.cfg.mac, src) {
                Some(seq) if seq >= self.stream_rx_next => {
                    self.stream_rx_next = seq.saturating_add(1);
                    self.stats.stream_rx_in_order += 1;
                }
                _ => self.stats.stream_rx_bad += 1,
            }
        }
        self.respond(&f.data);
        if self.cfg.record {
            if self.received.len() >= self.cfg.record_limit {
                self.received.pop_front();
            }
            self.received.push_back(f.data);
        }
    }

    fn respond(&mut self, d: &[u8]) {
        let dst = net::dst_mac(d);
        if dst != self.cfg.mac && dst != net::BROADCAST {
            return;
        }
        let mut off = net::ETH_HLEN;
        let mut et = net::ethertype(d);
        if et == 0x8100 && d.len() >= 18 {
            et = u16::from_be_bytes([d[16], d[17]]);
            off += 4;
        }
        let p = &d[off.min(d.len())..];
        match et {
            net::ETHERTYPE_ARP if p.len() >= 28 => {
                let op = u16::from_be_bytes([p[6], p[7]]);
                if p[..6] == [0, 1, 8, 0, 6, 4] && op == 1 && p[24..28] == self.cfg.ip {
                    let mut smac = [0u8; 6];
                    smac.copy_from_slice(&p[8..14]);
                    let mut sip = [0u8; 4];
                    sip.copy_from_slice(&p[14..18]);
                    let r = net::arp(2, self.cfg.mac, self.cfg.ip, smac, sip);
                    self.stats.arp_replies += 1;
                    self.out.push_back(r);
                }
            }
            net::ETHERTYPE_IPV4 if p.len() >= 20 && dst == self.cfg.mac => {
                let ihl = usize::from(p[0] & 0xF) * 4;
                let total = usize::from(u16::from_be_bytes([p[2], p[3]]));
                if p[0] >> 4 != 4
                    || ihl < 20
                    || total < ihl
                    || total > p.len()
                    || p[16..20] != self.cfg.ip
                {
                    return;
                }
                if net::inet_csum(&p[..ihl]) != 0 {
                    self.stats.rx_bad_checksum += 1;
                    return;
                }
                let icmp = &p[ihl..total];
                if p[9] != 1 || icmp.len() < 8 || icmp[0] != 8 {
                    return;
                }
                if net::inet_csum(icmp) != 0 {
                    self.stats.rx_bad_checksum += 1;
                    return;
                }
                let mut smac = [0u8; 6];
                smac.copy_from_slice(&d[6..12]);
                let mut sip = [0u8; 4];
                sip.copy_from_slice(&p[12..16]);
                let ident = u16::from_be_bytes([icmp[4], icmp[5]]);
                let seq = u16::from_be_bytes([icmp[6], icmp[7]]);
                let r = net::icmp_echo(
                    0,
                    self.cfg.mac,
                    smac,
                    self.cfg.ip,
                    sip,
                    ident,
                    seq,
                    &icmp[8..],
                );
                self.stats.icmp_replies += 1;
                self.out.push_back(r);
            }
            _ => {}
        }
    }

    /// When the peer next has something to do on its own: its pause ends, or the next
    /// rate-paced stream frame is due.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        if let Some(t) = self.paused_until {
            return Some(t);
        }
        let s = self.stream.as_ref()?;
        let rate = s.cfg.rate?;
        if s.next >= s.cfg.count || rate <= 0.0 {
            return None;
        }
        s.start
            .checked_add(Duration::try_from_secs_f64(s.next as f64 / rate).ok()?)
    }

    /// The next frame for the NIC. `accept(len)` says whether the NIC can take a frame of
    /// `len` bytes now; lossless traffic waits for it, rate-paced traffic does not.
    pub(crate) fn next_frame(
        &mut self,
        now: Instant,
        accept: impl Fn(usize) -> bool,
    ) -> Option<Vec<u8>> {
        if let Some(f) = self.ctrl_out.pop_front() {
            self.stats.pause_sent += 1;
            self.stats.tx_frames += 1;
            return Some(f);
        }
        match self.paused_until {
            Some(t) if now < t => return None,
            Some(_) => self.paused_until = None,
            None => {}
        }
        if let Some(f) = self.out.front() {
            if accept(f.len()) {
                self.stats.tx_frames += 1;
                return self.out.pop_front();
            }
            return None;
        }
        let mac = self.cfg.mac;
        let s = self.stream.as_mut()?;
        if s.next >= s.cfg.count || s.cfg.sizes.is_empty() {
            return None;
        }
        let len = s.cfg.sizes[(s.next % s.cfg.sizes.len() as u64) as usize];
        match s.cfg.rate {
            None => {
                if !accept(len) {
                    return None;
                }
            }
            Some(rate) => {
                // A rate that is not a positive finite number sends nothing.
                let due = Duration::try_from_secs_f64(s.next as f64 / rate)
                    .ok()
                    .filter(|_| rate > 0.0)
                    .and_then(|d| s.start.checked_add(d))?;
                if now < due {
                    return None;
                }
            }
        }
        let f = net::stream_frame(s.cfg.dst, mac, s.next, len);
        s.next += 1;
        self.stats.stream_sent += 1;
        self.stats.tx_frames += 1;
        Some(f)
    }
}

impl Peer {
    /// Whether replies or injected frames wait to be sent.
    pub(crate) fn has_queued(&self) -> bool {
        !self.out.is_empty() || !self.ctrl_out.is_empty()
    }
}
