//! The daemon's side of the network when no TAP interface is attached: a tiny stack at
//! 10.0.2.15 that can ARP and ping the simulated peer, and a traffic generator that
//! streams sequence-numbered frames both ways and checks every one.
//!
//! The stack thread takes every received frame from the driver: with a TAP interface it
//! hands them to the host; otherwise stream frames are checked against the expected
//! sequence and the rest are queued for [`Stack::ping`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::netdev::Netdev;
use e1000::TxPacket;
use e1000_sim::net;
use parking_lot::{Condvar, Mutex};

use crate::protocol::{PingReport, TrafficReport};

/// The stack's own address on the simulated wire.
pub const OUR_IP: [u8; 4] = [10, 0, 2, 15];
/// The simulated peer (QEMU's user-mode gateway address).
pub const PEER_IP: [u8; 4] = [10, 0, 2, 2];
/// Most frames kept for ping while nobody reads them.
const CONTROL_QUEUE: usize = 256;

/// One traffic stream's counters.
#[derive(Debug, Default)]
pub struct Traffic {
    /// A stream is running.
    pub running: AtomicBool,
    /// Frames asked for each way.
    pub frames: AtomicU64,
    /// Accepted for transmission.
    pub tx_accepted: AtomicU64,
    /// Refused for transmission.
    pub tx_refused: AtomicU64,
    /// Next expected receive sequence number (= frames received in order).
    pub rx_in_order: AtomicU64,
    /// Frames out of order or corrupt.
    pub rx_bad: AtomicU64,
    /// Peer counters when the stream started: frames received, stream frames sent.
    pub peer_base: Mutex<(u64, u64)>,
    /// The final peer counters (deltas) once the stream ended.
    pub peer_final: Mutex<Option<(u64, u64)>>,
    /// When the stream started.
    pub started: Mutex<Option<Instant>>,
    /// When it ended.
    pub ended: Mutex<Option<Instant>>,
}

/// The daemon's receive side and its small stack.
pub struct Stack {
    ours: [u8; 6],
    control: Mutex<VecDeque<Vec<u8>>>,
    arrived: Condvar,
    ping_lock: Mutex<()>,
    /// The traffic generator's counters.
    pub traffic: Traffic,
    /// Frames received (all).
    pub rx_frames: AtomicU64,
    /// Frames accepted for transmission (all).
    pub tx_frames: AtomicU64,
}

impl Stack {
    /// A stack for the NIC with MAC `ours`.
    pub fn new(ours: [u8; 6]) -> Self {
        Stack {
            ours,
            control: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            ping_lock: Mutex::new(()),
            traffic: Traffic::default(),
            rx_frames: AtomicU64::new(0),
            tx_frames: AtomicU64::new(0),
        }
    }

    /// Handles one received frame (no TAP interface): stream frames are checked, others
    /// queued for ping.
    pub fn deliver(&self, frame: Vec<u8>, peer_mac: [u8; 6]) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
        if self.traffic.running.load(Ordering::Acquire) {
            if let Some(seq) = net::check_stream_frame(&frame, self.ours, peer_mac) {
                let t = &self.traffic;
                if seq == t.rx_in_order.load(Ordering::Relaxed) {
                    t.rx_in_order.fetch_add(1, Ordering::Release);
                } else {
                    t.rx_bad.fetch_add(1, Ordering::Relaxed);
                }
                return;
            }
        }
        let mut q = self.control.lock();
        if q.len() >= CONTROL_QUEUE {
            q.pop_front();
        }
        q.push_back(frame);
        self.arrived.notify_all();
    }

    fn wait_frame(&self, deadline: Instant, want: impl Fn(&[u8]) -> bool) -> Option<Vec<u8>> {
        let mut q = self.control.lock();
        loop {
            if let Some(i) = q.iter().position(|f| want(f)) {
                return q.remove(i);
            }
            if self.arrived.wait_until(&mut q, deadline).timed_out() {
                let i = q.iter().position(|f| want(f))?;
                return q.remove(i);
            }
        }
    }

    /// Sends a frame through the driver's hot path.
    pub fn send(&self, nd: &Netdev, frame: Vec<u8>) -> Result<(), e1000::DriverError> {
        nd.send(&TxPacket::new(frame), Duration::from_secs(2))?;
        self.tx_frames.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Resolves the peer's MAC with ARP.
    pub fn arp(&self, nd: &Netdev) -> Result<[u8; 6], String> {
        let req = net::arp(1, self.ours, OUR_IP, [0; 6], PEER_IP);
        for _ in 0..3 {
            self.send(nd, req.clone())
                .map_err(|e| format!("sending ARP: {e}"))?;
            let reply = self.wait_frame(Instant::now() + Duration::from_secs(1), |f| {
                net::ethertype(f) == 0x0806
                    && f.get(21) == Some(&2)
                    && f.get(28..32) == Some(&PEER_IP)
            });
            if let Some(f) = reply {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&f[22..28]);
                return Ok(mac);
            }
        }
        Err("no ARP reply from 10.0.2.2 (is the link up?)".into())
    }

    /// Pings the peer `count` times, 100 ms apart, waiting up to 1 s for each reply.
    pub fn ping(&self, nd: &Netdev, count: u32) -> Result<PingReport, String> {
        let _one_at_a_time = self.ping_lock.lock();
        let peer_mac = self.arp(nd)?;
        let ident = (std::process::id() & 0xFFFF) as u16;
        let mut replies = Vec::new();
        for seq in 1..=count {
            let seq16 = seq as u16;
            let sent = Instant::now();
            let echo = net::icmp_echo(
                8,
                self.ours,
                peer_mac,
                OUR_IP,
                PEER_IP,
                ident,
                seq16,
                b"e1000d ping",
            );
            self.send(nd, echo)
                .map_err(|e| format!("sending echo request {seq}: {e}"))?;
            let reply = self.wait_frame(sent + Duration::from_secs(1), |f| {
                net::ethertype(f) == 0x0800
                    && f.get(23) == Some(&1)
                    && f.get(34) == Some(&0)
                    && f.get(38..40) == Some(&ident.to_be_bytes())
                    && f.get(40..42) == Some(&seq16.to_be_bytes())
            });
            replies.push(reply.map(|_| sent.elapsed()));
            if seq < count {
                std::thread::sleep(Duration::from_millis(100).saturating_sub(sent.elapsed()));
            }
        }
        Ok(PingReport {
            sent: count,
            replies,
        })
    }

    /// The traffic counters now.
    pub fn traffic_report(&self, sim: &e1000_sim::E1000Sim) -> TrafficReport {
        let t = &self.traffic;
        let (peer_received, peer_sent) = match *t.peer_final.lock() {
            Some(f) => f,
            None => {
                let base = *t.peer_base.lock();
                let p = sim.peer_stats();
                (
                    p.rx_frames.saturating_sub(base.0),
                    p.stream_sent.saturating_sub(base.1),
                )
            }
        };
        let started = *t.started.lock();
        let ended = *t.ended.lock();
        TrafficReport {
            running: t.running.load(Ordering::Acquire),
            frames: t.frames.load(Ordering::Relaxed),
            tx_accepted: t.tx_accepted.load(Ordering::Relaxed),
            tx_refused: t.tx_refused.load(Ordering::Relaxed),
            peer_received,
            peer_sent,
            rx_in_order: t.rx_in_order.load(Ordering::Acquire),
            rx_bad: t.rx_bad.load(Ordering::Relaxed),
            elapsed: match (started, ended) {
                (Some(s), Some(e)) => e.duration_since(s),
                (Some(s), None) => s.elapsed(),
                _ => Duration::ZERO,
            },
        }
    }

    /// Starts a stream of `frames` frames each way, sizes cycled; returns at once.
    pub fn start_traffic(
        self: &Arc<Self>,
        nd: Arc<Netdev>,
        sim: Arc<e1000_sim::E1000Sim>,
        frames: u64,
        sizes: Vec<usize>,
        stop: Arc<AtomicBool>,
    ) -> Result<std::thread::JoinHandle<()>, String> {
        let t = &self.traffic;
        if t.running.swap(true, Ordering::AcqRel) {
            return Err("a traffic stream is already running (see `e1000ctl traffic`)".into());
        }
        let (peer_mac, _) = sim.peer_addr();
        let p = sim.peer_stats();
        *t.peer_base.lock() = (p.rx_frames, p.stream_sent);
        *t.peer_final.lock() = None;
        *t.started.lock() = Some(Instant::now());
        *t.ended.lock() = None;
        t.frames.store(frames, Ordering::Relaxed);
        for c in [&t.tx_accepted, &t.tx_refused, &t.rx_in_order, &t.rx_bad] {
            c.store(0, Ordering::Relaxed);
        }
        sim.peer_start_stream(e1000_sim::StreamConfig {
            dst: self.ours,
            count: frames,
            sizes: sizes.clone(),
            rate: None,
        });
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("e1000d-traffic".into())
            .spawn(move || me.run_traffic(&nd, &sim, peer_mac, frames, &sizes, &stop))
            .map_err(|e| {
                self.traffic.running.store(false, Ordering::Release);
                format!("starting the traffic thread: {e}")
            })
    }

    fn run_traffic(
        &self,
        nd: &Netdev,
        sim: &e1000_sim::E1000Sim,
        peer_mac: [u8; 6],
        frames: u64,
        sizes: &[usize],
        stop: &AtomicBool,
    ) {
        let t = &self.traffic;
        for seq in 0..frames {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let len = sizes[(seq % sizes.len() as u64) as usize];
            let frame = net::stream_frame(peer_mac, self.ours, seq, len);
            match nd.send(&TxPacket::new(frame), Duration::from_secs(5)) {
                Ok(()) => {
                    t.tx_accepted.fetch_add(1, Ordering::Relaxed);
                    self.tx_frames.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    t.tx_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(seq, error = %e, "traffic: frame refused");
                }
            }
        }
        // Let the last frames land: the peer's stream finishes and everything the driver
        // accepted reaches the peer (or the deadline passes and the report shows the gap).
        let base = *t.peer_base.lock();
        let deadline = Instant::now() + Duration::from_secs(10);
        let deltas = loop {
            let p = sim.peer_stats();
            let received = p.rx_frames.saturating_sub(base.0);
            let sent = p.stream_sent.saturating_sub(base.1);
            let rx_done = sim.peer_stream_remaining() == 0
                && t.rx_in_order.load(Ordering::Acquire) + t.rx_bad.load(Ordering::Relaxed) >= sent;
            let tx_done = received >= t.tx_accepted.load(Ordering::Relaxed);
            if (rx_done && tx_done) || Instant::now() > deadline || stop.load(Ordering::Relaxed) {
                break (received, sent);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        *t.peer_final.lock() = Some(deltas);
        *t.ended.lock() = Some(Instant::now());
        t.running.store(false, Ordering::Release);
    }
}
