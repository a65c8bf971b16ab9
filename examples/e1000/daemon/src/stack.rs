//! The daemon's side of the network when no TAP interface is attached: a tiny stack at
//! 10.0.2.15 that can ARP and ping the simulated peer, and a traffic generator that
//! streams sequence-numbered frames both ways and checks every one.
//!
//! The stack thread takes every received frame from the driver: with a TAP interface it
//! hands them to the host; otherwise stream frames are checked against the expected
//! sequence and the rest are queued for [`Stack::ping`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e1000::netdev::Netdev;
use e1000::TxPacket;
use e1000_wire as net;
use parking_lot::{Condvar, Mutex};

#[cfg(feature = "sim")]
use crate::protocol::TrafficReport;
use crate::protocol::{PingReport, STALL_THRESHOLD};
#[cfg(feature = "sim")]
use std::sync::Arc;

/// The stack's own address on the simulated wire.
pub const OUR_IP: [u8; 4] = [10, 0, 2, 15];
/// The simulated peer (QEMU's user-mode gateway address).
pub const PEER_IP: [u8; 4] = [10, 0, 2, 2];
/// Most frames kept for ping while nobody reads them.
const CONTROL_QUEUE: usize = 256;
/// A stream whose frames stop moving (none sent, received or reclaimed) for this long
/// after its last transmit is over: what has not arrived by then counts as lost.
#[cfg(feature = "sim")]
const STREAM_END_IDLE: Duration = Duration::from_secs(10);

/// Marks the windows in which the device is being reconfigured on purpose (a control
/// request that changes it is running): a hot-path gap that overlaps one is a
/// reconfiguration pause (a ring resize parks the rings), not a stall.
#[derive(Debug, Default)]
pub struct Reconfig {
    active: AtomicU32,
    generation: AtomicU64,
}

impl Reconfig {
    /// Marks a reconfiguration until the guard drops.
    pub fn begin(&self) -> ReconfigGuard<'_> {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
        ReconfigGuard(self)
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn active(&self) -> bool {
        self.active.load(Ordering::SeqCst) != 0
    }
}

/// Ends a reconfiguration window when dropped.
#[derive(Debug)]
pub struct ReconfigGuard<'a>(&'a Reconfig);

impl Drop for ReconfigGuard<'_> {
    fn drop(&mut self) {
        self.0.generation.fetch_add(1, Ordering::SeqCst);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How often a gap meter samples the CPU waits (the sample before a gap is at most this
/// much older than the gap's start).
const SAMPLE_EVERY: Duration = Duration::from_millis(5);

/// Each of this process's threads' time spent runnable but waiting for a CPU so far (the
/// second field of its `schedstat`). An overloaded machine delays the hot path this way:
/// a thread of the chain a frame passes through (traffic, model, interrupt and receive
/// threads) waits for a CPU, or a thread outside it that holds a hot-path lock for one
/// snapshot is preempted. A lock the user half holds, or a user half that does not answer,
/// never does.
fn cpu_waits() -> BTreeMap<u64, Duration> {
    let mut waits = BTreeMap::new();
    // Key 0 (no thread has it): the hypervisor's steal time.
    waits.insert(0, steal());
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let wait = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse().ok()));
            if let Some(ns) = wait {
                waits.insert(tid, Duration::from_nanos(ns));
            }
        }
    }
    waits
}

/// Time the machine's virtual CPUs were descheduled by the hypervisor so far (`steal` in
/// `/proc/stat`, all CPUs, in 10 ms ticks): invisible in `schedstat`, and on a shared host
/// it delays the hot path as a run-queue wait does.
fn steal() -> Duration {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(8))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .map_or(Duration::ZERO, |ticks| Duration::from_millis(ticks * 10))
}

/// The CPU waits between two samples (a thread born since counts from zero; key 0 is
/// the steal time).
fn waited(before: &BTreeMap<u64, Duration>, after: &BTreeMap<u64, Duration>) -> Duration {
    after
        .iter()
        .map(|(tid, w)| w.saturating_sub(before.get(tid).copied().unwrap_or_default()))
        .sum()
}

/// The longest gap between two events of one hot-path direction (accepted transmits, or
/// received stream frames), less the time the process's threads waited for a CPU.
#[derive(Debug, Default)]
struct GapMeter {
    last: Option<(Instant, (u64, u64))>,
    /// The CPU waits and the PAUSE frames when last sampled (at most [`SAMPLE_EVERY`]
    /// before `last`).
    sample: Option<(Instant, BTreeMap<u64, Duration>, u64)>,
}

/// What a gap was.
enum Gap {
    Stall(Duration),
    Reconfig,
    /// PAUSE frames went over the wire meanwhile: the link's flow control held the frames.
    FlowControl,
}

impl GapMeter {
    /// Records an event at `now`; `reset` is the driver's (pending, generation).
    fn tick(
        &mut self,
        now: Instant,
        reconfig: &Reconfig,
        reset: (bool, u64),
        flow: &FlowState,
    ) -> Option<Gap> {
        let generation = (reconfig.generation(), reset.1);
        let mut gap = None;
        let gap_start = self.last.map(|(t, g)| (now.duration_since(t), g));
        match (gap_start, &self.sample) {
            (Some((len, last_gen)), Some((_, then, pauses))) if len > STALL_THRESHOLD => {
                let waits = cpu_waits();
                let blocked = len.saturating_sub(waited(then, &waits));
                let pauses_now = flow();
                if blocked > STALL_THRESHOLD {
                    gap = Some(if last_gen != generation || reconfig.active() || reset.0 {
                        Gap::Reconfig
                    } else if pauses_now != *pauses {
                        Gap::FlowControl
                    } else {
                        Gap::Stall(blocked)
                    });
                }
                self.sample = Some((now, waits, pauses_now));
            }
            (_, Some((at, ..))) if now.duration_since(*at) < SAMPLE_EVERY => {}
            _ => self.sample = Some((now, cpu_waits(), flow())),
        }
        self.last = Some((now, generation));
        gap
    }
}

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
    /// Stream frames received in order (each with a higher sequence number than the last).
    pub rx_in_order: AtomicU64,
    /// The next sequence number expected.
    rx_next: Mutex<u64>,
    /// Frames out of order or corrupt.
    pub rx_bad: AtomicU64,
    /// Peer counters when the stream started: frames received, stream frames sent, stream
    /// frames received out of order or corrupted.
    pub peer_base: Mutex<(u64, u64, u64)>,
    /// The final peer counters (deltas) once the stream ended.
    pub peer_final: Mutex<Option<(u64, u64, u64)>>,
    /// The model's count of frames discarded from the NIC's packet buffer when the stream
    /// started, and the stream's share once it ended.
    nic_discarded: Mutex<(u64, Option<u64>)>,
    /// When the stream started.
    pub started: Mutex<Option<Instant>>,
    /// When it ended.
    pub ended: Mutex<Option<Instant>>,
    /// The receive direction's gaps (the receive thread's).
    rx_gaps: Mutex<GapMeter>,
    /// The longest stall, nanoseconds.
    longest_stall: AtomicU64,
    /// Stalls.
    stalls: AtomicU64,
    /// Gaps during reconfiguration.
    reconfig_pauses: AtomicU64,
    /// Gaps across PAUSE frames.
    flow_pauses: AtomicU64,
}

impl Traffic {
    fn record(&self, gap: Option<Gap>, dir: &str) {
        match gap {
            Some(Gap::Stall(d)) => {
                self.stalls.fetch_add(1, Ordering::Relaxed);
                self.longest_stall
                    .fetch_max(d.as_nanos() as u64, Ordering::Relaxed);
                tracing::warn!(direction = dir, blocked = ?d, "hot-path stall");
            }
            Some(Gap::Reconfig) => {
                self.reconfig_pauses.fetch_add(1, Ordering::Relaxed);
            }
            Some(Gap::FlowControl) => {
                self.flow_pauses.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
    }
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
    /// Received frames the TAP interface did not take.
    pub rx_dropped: AtomicU64,
    /// Frames from the TAP interface not transmitted: no carrier, no room in the ring
    /// within the bridge's wait, or refused by the driver.
    pub tx_dropped: AtomicU64,
    /// The device's reconfiguration windows.
    pub reconfig: Reconfig,
    reset_state: ResetState,
    flow_state: FlowState,
}

/// Whether the driver is restoring the device's configuration, and a generation that
/// changes whenever a restore starts or ends.
type ResetState = Box<dyn Fn() -> (bool, u64) + Send + Sync>;

/// PAUSE frames exchanged on the wire so far (either way).
type FlowState = Box<dyn Fn() -> u64 + Send + Sync>;

impl Stack {
    /// A stack for the NIC with MAC `ours`; `reset_state` tells whether the driver is
    /// restoring the device's configuration, and a generation that changes whenever a
    /// restore starts or ends (a hot-path gap across one is no stall); `flow_state` counts
    /// the PAUSE frames exchanged on the wire (a gap across one is flow control).
    pub fn new(ours: [u8; 6], reset_state: ResetState, flow_state: FlowState) -> Self {
        Stack {
            ours,
            control: Mutex::new(VecDeque::new()),
            arrived: Condvar::new(),
            ping_lock: Mutex::new(()),
            traffic: Traffic::default(),
            rx_frames: AtomicU64::new(0),
            tx_frames: AtomicU64::new(0),
            rx_dropped: AtomicU64::new(0),
            tx_dropped: AtomicU64::new(0),
            reconfig: Reconfig::default(),
            reset_state,
            flow_state,
        }
    }

    /// Handles one received frame (no TAP interface): stream frames are checked, others
    /// queued for ping.
    pub fn deliver(&self, frame: Vec<u8>, peer_mac: [u8; 6]) {
        self.rx_frames.fetch_add(1, Ordering::Relaxed);
        if self.traffic.running.load(Ordering::Acquire) {
            if let Some(seq) = net::check_stream_frame(&frame, self.ours, peer_mac) {
                let t = &self.traffic;
                // Frames after a gap are in order again: the gap counts as lost (the
                // report's peer_sent - rx_in_order), not every frame after it as bad.
                let mut next = t.rx_next.lock();
                if seq >= *next {
                    if seq > *next {
                        // Logged so that a loss can be matched with the faults, restarts
                        // and repairs around it in the daemon's log.
                        tracing::warn!(
                            first = *next,
                            missing = seq - *next,
                            "traffic: stream frames missing on receive"
                        );
                    }
                    *next = seq + 1;
                    t.rx_in_order.fetch_add(1, Ordering::Release);
                } else {
                    t.rx_bad.fetch_add(1, Ordering::Relaxed);
                }
                drop(next);
                let gap = t.rx_gaps.lock().tick(
                    Instant::now(),
                    &self.reconfig,
                    (self.reset_state)(),
                    &self.flow_state,
                );
                t.record(gap, "receive");
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

    #[cfg(feature = "sim")]
    /// The traffic counters now.
    pub fn traffic_report(&self, sim: &e1000_sim::E1000Sim) -> TrafficReport {
        let t = &self.traffic;
        let (peer_received, peer_sent, peer_bad) = match *t.peer_final.lock() {
            Some(f) => f,
            None => {
                let base = *t.peer_base.lock();
                let p = sim.peer_stats();
                (
                    p.rx_frames.saturating_sub(base.0),
                    p.stream_sent.saturating_sub(base.1),
                    p.stream_rx_bad.saturating_sub(base.2),
                )
            }
        };
        let started = *t.started.lock();
        let ended = *t.ended.lock();
        let nic_discarded = match *t.nic_discarded.lock() {
            (_, Some(n)) => n,
            (base, None) => sim.rx_fifo_discarded().saturating_sub(base),
        };
        TrafficReport {
            running: t.running.load(Ordering::Acquire),
            frames: t.frames.load(Ordering::Relaxed),
            tx_accepted: t.tx_accepted.load(Ordering::Relaxed),
            tx_refused: t.tx_refused.load(Ordering::Relaxed),
            peer_received,
            peer_sent,
            rx_in_order: t.rx_in_order.load(Ordering::Acquire),
            rx_bad: t.rx_bad.load(Ordering::Relaxed),
            peer_bad,
            elapsed: match (started, ended) {
                (Some(s), Some(e)) => e.duration_since(s),
                (Some(s), None) => s.elapsed(),
                _ => Duration::ZERO,
            },
            longest_stall: Duration::from_nanos(t.longest_stall.load(Ordering::Relaxed)),
            stalls: t.stalls.load(Ordering::Relaxed),
            reconfig_pauses: t.reconfig_pauses.load(Ordering::Relaxed),
            flow_pauses: t.flow_pauses.load(Ordering::Relaxed),
            nic_discarded,
        }
    }

    #[cfg(feature = "sim")]
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
        let p = sim.peer_stats();
        *t.peer_base.lock() = (p.rx_frames, p.stream_sent, p.stream_rx_bad);
        *t.peer_final.lock() = None;
        *t.nic_discarded.lock() = (sim.rx_fifo_discarded(), None);
        *t.started.lock() = Some(Instant::now());
        *t.ended.lock() = None;
        t.frames.store(frames, Ordering::Relaxed);
        for c in [
            &t.tx_accepted,
            &t.tx_refused,
            &t.rx_in_order,
            &t.rx_bad,
            &t.longest_stall,
            &t.stalls,
            &t.reconfig_pauses,
            &t.flow_pauses,
        ] {
            c.store(0, Ordering::Relaxed);
        }
        *t.rx_gaps.lock() = GapMeter::default();
        *t.rx_next.lock() = 0;
        sim.peer_start_stream(e1000_sim::StreamConfig {
            dst: self.ours,
            count: frames,
            sizes: sizes.clone(),
            rate: None,
        });
        let me = Arc::clone(self);
        std::thread::Builder::new()
            .name("e1000d-traffic".into())
            .spawn(move || me.run_traffic(&nd, &sim, frames, &sizes, &stop))
            .map_err(|e| {
                self.traffic.running.store(false, Ordering::Release);
                format!("starting the traffic thread: {e}")
            })
    }

    #[cfg(feature = "sim")]
    fn run_traffic(
        &self,
        nd: &Netdev,
        sim: &e1000_sim::E1000Sim,
        frames: u64,
        sizes: &[usize],
        stop: &AtomicBool,
    ) {
        let (peer_mac, _) = sim.peer_addr();
        let mut tx_gaps = GapMeter::default();
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
                    let gap = tx_gaps.tick(
                        Instant::now(),
                        &self.reconfig,
                        (nd.reset_pending(), nd.reset_generation()),
                        &self.flow_state,
                    );
                    t.record(gap, "transmit");
                }
                Err(e) => {
                    t.tx_refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(seq, error = %e, "traffic: frame refused");
                }
            }
        }
        // Let the last frames land: the peer's stream finishes and everything the driver
        // accepted reaches the peer (or nothing moves for STREAM_END_IDLE and the report
        // shows the gap). A deadline counted from here instead would end a stream that is
        // merely slow (a loaded machine can starve the daemon for seconds) with frames
        // still in flight, which would then arrive in the next stream.
        let base = *t.peer_base.lock();
        let mut last_progress = Instant::now();
        let mut seen = None;
        let deltas = loop {
            // Whether the peer's stream is done first, then its counters: read the other
            // way round, a stream that ends between the two reads leaves `sent` short.
            let remaining = sim.peer_stream_remaining();
            let p = sim.peer_stats();
            let received = p.rx_frames.saturating_sub(base.0);
            let sent = p.stream_sent.saturating_sub(base.1);
            let rx_done = remaining == 0
                && (t.rx_in_order.load(Ordering::Acquire) + t.rx_bad.load(Ordering::Relaxed)
                    >= sent
                    || *t.rx_next.lock() >= sent);
            let tx_done = received >= t.tx_accepted.load(Ordering::Relaxed);
            let now = (
                remaining,
                received,
                t.rx_in_order.load(Ordering::Acquire) + t.rx_bad.load(Ordering::Relaxed),
            );
            if seen != Some(now) {
                (seen, last_progress) = (Some(now), Instant::now());
            }
            let idle = last_progress.elapsed() > STREAM_END_IDLE;
            if (rx_done && tx_done) || idle || stop.load(Ordering::Relaxed) {
                break (received, sent, p.stream_rx_bad.saturating_sub(base.2));
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        *t.peer_final.lock() = Some(deltas);
        {
            let mut d = t.nic_discarded.lock();
            d.1 = Some(sim.rx_fifo_discarded().saturating_sub(d.0));
        }
        *t.ended.lock() = Some(Instant::now());
        t.running.store(false, Ordering::Release);
    }
}
