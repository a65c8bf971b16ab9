//! One configuration, run in its own child process of the bench (so the process-global
//! kernel endpoint of a split configuration never leaks into a monolithic one, and each
//! configuration's CPU accounting is its own): the driver on the device model, the
//! 2-second watchdog and one statistics query per second running all the time, and
//! traffic both ways during each measured slice the bench asks for.
//!
//! Protocol on stdin/stdout: the process sets up and prints `READY ...`; each `slice MS`
//! line runs traffic, measures a window of MS milliseconds after a warm-up, stops the
//! traffic, waits until every frame is accounted for and prints `SLICE key=value ...`;
//! `quit` shuts the driver down and prints `FINAL key=value ...` (the frame accounting).
//! Setting up once and then measuring in short slices lets the bench interleave all
//! configurations finely on a noisy machine even though a split driver with a 20 ms
//! crossing delay takes ~20 s to probe and open.
//!
//! Traffic: a transmit thread sends numbered stream frames to the peer as fast as the
//! driver accepts them (`Netdev::send`, waiting while the queue is stopped), and the peer
//! sends its own numbered stream to the NIC as fast as the receive FIFO takes it (the
//! model's lossless mode). A checker thread verifies every frame the driver hands up
//! (order and every byte) and every frame the peer recorded (same check), so frames lost,
//! reordered or corrupted in either direction are counted, not assumed away.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e1000::netdev::{Netdev, Options};
use e1000::TxPacket;
use e1000_sim::net::{check_stream_frame, stream_byte, ETHERTYPE_STREAM};
use e1000_sim::{E1000Sim, PeerConfig, SimConfig, StreamConfig};
use microdriver_rt::component::{ComponentConfig, Supervisor, SupervisorConfig};
use microdriver_rt::lrpc::{install_kernel, CallOptions, EntryTable, Served};
use microdriver_rt::tracker::ObjectTracker;

use crate::cpu;

/// What one trial runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spec {
    /// Split (u-half in a supervised child process) or monolithic (every stub direct).
    pub split: bool,
    /// Frame length without FCS (60 = a 64-byte frame on the wire).
    pub len: usize,
    /// Injected per-crossing delay (split only).
    pub delay: Duration,
}

impl Spec {
    /// The child's command-line form.
    pub fn to_args(self) -> Vec<String> {
        vec![
            "--trial".into(),
            if self.split { "split" } else { "mono" }.into(),
            self.len.to_string(),
            self.delay.as_nanos().to_string(),
        ]
    }

    /// Parses the words after `--trial`.
    pub fn from_args(words: &[String]) -> Result<Self, String> {
        let [mode, len, delay] = words else {
            return Err(format!("--trial wants 3 words, got {words:?}"));
        };
        let num = |w: &String| w.parse::<u64>().map_err(|_| format!("{w}: not a number"));
        Ok(Spec {
            split: match mode.as_str() {
                "split" => true,
                "mono" => false,
                other => return Err(format!("{other}: want split or mono")),
            },
            len: num(len)? as usize,
            delay: Duration::from_nanos(num(delay)?),
        })
    }
}

/// Traffic before the window opens (rings full, the receive stream flowing).
const WARMUP: Duration = Duration::from_millis(300);

/// Between slices each process keeps transmitting one frame per `TRICKLE` (~1,000
/// frames/s, a few hundredths of a core). The watchdog sets the interrupt moderation from
/// the previous period's traffic (fewer than 1,000 packets: the low-latency rate;
/// otherwise by average size), so without the trickle every slice would start at the idle
/// setting and run until the next watchdog run adapts it, which at a 20 ms crossing delay
/// comes seconds later: an artefact of measuring in slices, which a link under continuous
/// load does not have. With it, a slice starts where continuous traffic would be.
const TRICKLE: Duration = Duration::from_millis(1);

/// Counters the threads share.
#[derive(Default)]
struct Counters {
    /// Frames the driver accepted for transmission.
    tx_accepted: AtomicU64,
    /// Frames the peer recorded that checked in order.
    tx_checked: AtomicU64,
    /// Frames the peer should have recorded but that were missing (gap in the sequence).
    tx_gaps: AtomicU64,
    /// Frames the peer recorded that failed the check (bytes or order).
    tx_bad: AtomicU64,
    /// Received frames that checked in order.
    rx_checked: AtomicU64,
    /// Received frames missing from the sequence.
    rx_gaps: AtomicU64,
    /// Received frames that failed the check.
    rx_bad: AtomicU64,
    /// Statistics queries that succeeded / failed.
    stats_ok: AtomicU64,
    stats_err: AtomicU64,
    /// Set by the controller once the peer's stream is stopped and fully received: the
    /// checker restarts the receive sequence at 0 (the peer numbers each stream from 0).
    rx_restart: AtomicBool,
    /// Transmit errors other than a full queue past the send timeout.
    tx_errors: AtomicU64,
}

/// `stream_byte(0, i)` for every offset of a maximum-size frame: byte `i` of stream frame
/// `seq` is `PATTERN[i] + 31 * seq` (mod 256), which lets filling and checking run as
/// straight-line loops the compiler vectorises.
fn pattern() -> Vec<u8> {
    (0..MAX_LEN).map(|i| stream_byte(0, i)).collect()
}

const MAX_LEN: usize = 1514;
const HEADER: usize = 22;

/// What `e1000_sim::net::check_stream_frame` checks, without a per-byte closure.
fn check_stream(f: &[u8], dst: [u8; 6], src: [u8; 6], pattern: &[u8]) -> Option<u64> {
    if f.len() < HEADER
        || f.len() > pattern.len()
        || f[..6] != dst
        || f[6..12] != src
        || f[12..14] != ETHERTYPE_STREAM.to_be_bytes()
    {
        return check_stream_frame(f, dst, src);
    }
    let seq = u64::from_be_bytes(f[14..22].try_into().ok()?);
    let k = stream_byte(seq, 0);
    let diff = f[HEADER..]
        .iter()
        .zip(&pattern[HEADER..])
        .fold(0u8, |acc, (&b, &p)| acc | (b ^ p.wrapping_add(k)));
    (diff == 0).then_some(seq)
}

/// Sequence checking of one direction.
struct SeqCheck<'p> {
    expected: u64,
    pattern: &'p [u8],
}

impl SeqCheck<'_> {
    fn check(
        &mut self,
        frame: &[u8],
        (dst, src): ([u8; 6], [u8; 6]),
        ok: &AtomicU64,
        gaps: &AtomicU64,
        bad: &AtomicU64,
    ) {
        match check_stream(frame, dst, src, self.pattern) {
            Some(seq) if seq == self.expected => {
                self.expected += 1;
                ok.fetch_add(1, SeqCst);
            }
            Some(seq) if seq > self.expected => {
                gaps.fetch_add(seq - self.expected, SeqCst);
                self.expected = seq + 1;
                ok.fetch_add(1, SeqCst);
            }
            _ => {
                bad.fetch_add(1, SeqCst);
            }
        }
    }
}

/// Rewrites `frame` (already holding the Ethernet header) as stream frame `seq`
/// (exactly what `e1000_sim::net::stream_frame` builds, without allocating).
fn fill_stream_frame(frame: &mut [u8], seq: u64, pattern: &[u8]) {
    frame[14..HEADER].copy_from_slice(&seq.to_be_bytes());
    let k = stream_byte(seq, 0);
    for (x, &p) in frame[HEADER..].iter_mut().zip(&pattern[HEADER..]) {
        *x = p.wrapping_add(k);
    }
}

/// A snapshot of the counters at one edge of the window.
struct Snap {
    at: Instant,
    tx_wire: u64,
    rx: u64,
    cpu_self: u64,
    cpu_model: u64,
    cpu_bench: u64,
    cpu_irq: u64,
    cpu_tx: u64,
    cpu_check: u64,
    cpu_uhalf: u64,
    machine_busy: u64,
    watchdogs: u64,
    stats_ok: u64,
}

/// Completed watchdog runs: in split mode from the kernel endpoint's call statistics
/// (upcalls of `e1000::link::watchdog`, without touching the adapter lock); monolithic,
/// from the adapter's own counter.
fn watchdog_runs(nd: &Netdev, supervisor: Option<&Supervisor>) -> u64 {
    match supervisor {
        Some(s) => {
            let table = EntryTable::get();
            s.endpoint()
                .stats()
                .entries()
                .into_iter()
                .filter(|(id, _)| {
                    table
                        .lookup(Served::ByUser, *id)
                        .is_some_and(|e| e.name == "e1000::link::watchdog")
                })
                .map(|(_, c)| c.calls)
                .sum()
        }
        None => nd.with_adapter(|a| a.wd.runs),
    }
}

fn snap(
    sim: &E1000Sim,
    nd: &Netdev,
    supervisor: Option<&Supervisor>,
    uhalf_pid: Option<u32>,
    c: &Counters,
) -> Snap {
    Snap {
        at: Instant::now(),
        tx_wire: sim.peer_stats().rx_frames,
        rx: c.rx_checked.load(SeqCst),
        cpu_self: cpu::self_ticks(),
        cpu_model: cpu::threads_ticks("e1000-sim"),
        cpu_bench: cpu::threads_ticks("bench-"),
        cpu_irq: cpu::threads_ticks("e1000-irq"),
        cpu_tx: cpu::threads_ticks("bench-tx"),
        cpu_check: cpu::threads_ticks("bench-check"),
        cpu_uhalf: uhalf_pid.and_then(cpu::process_ticks).unwrap_or(0),
        machine_busy: cpu::machine_busy_ticks(),
        watchdogs: watchdog_runs(nd, supervisor),
        stats_ok: c.stats_ok.load(SeqCst),
    }
}

/// Supervisor settings for an injected delay. The defaults (calls time out after 5 s, a
/// ping must answer within 250 ms) assume crossings of microseconds; every crossing the
/// kernel half makes costs `delay` here, and a watchdog run makes ~60 of them (one per
/// statistics register), so the bench scales the limits with the delay instead of letting
/// the supervisor declare a merely slow user half hung. Defaults are untouched at delay 0.
fn supervisor_config(delay: Duration) -> SupervisorConfig {
    let defaults = SupervisorConfig::default();
    let call_defaults = CallOptions::default();
    SupervisorConfig {
        component: ComponentConfig {
            crossing_delay: delay,
            options: CallOptions {
                timeout: call_defaults.timeout + delay * 400,
                ..call_defaults
            },
            ..ComponentConfig::default()
        },
        heartbeat_timeout: defaults.heartbeat_timeout + delay * 10,
        ..defaults
    }
}

fn spawn_named<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    name: &str,
    f: impl FnOnce() + Send + 'scope,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn_scoped(scope, f)
        .map(drop)
        .map_err(|e| format!("spawning {name}: {e}"))
}

/// The driver, its device and the bench's threads, between slices.
struct Rig<'a> {
    sim: &'a E1000Sim,
    nd: &'a Netdev,
    supervisor: Option<&'a Supervisor>,
    uhalf_pid: Option<u32>,
    ours: [u8; 6],
    len: usize,
    c: &'a Counters,
    transmit: &'a AtomicBool,
    /// Set at the end: no more frames, not even the trickle.
    halt: &'a AtomicBool,
    /// True from a slice's start until its frames are accounted for: the checker polls
    /// every millisecond then, and idles otherwise (ten of these processes are alive at
    /// once, and idle ones must not tax the one being measured).
    active: &'a AtomicBool,
}

impl Rig<'_> {
    /// Runs traffic, measures `window`, stops it and accounts for every frame.
    fn slice(&self, window: Duration) -> String {
        let c = self.c;
        self.active.store(true, SeqCst);
        self.sim.peer_start_stream(StreamConfig {
            dst: self.ours,
            count: u64::MAX / 2,
            sizes: vec![self.len],
            rate: None,
        });
        self.transmit.store(true, SeqCst);
        std::thread::sleep(WARMUP);
        let s0 = snap(self.sim, self.nd, self.supervisor, self.uhalf_pid, c);
        std::thread::sleep(window);
        let s1 = snap(self.sim, self.nd, self.supervisor, self.uhalf_pid, c);
        self.transmit.store(false, SeqCst);
        self.sim.peer_stop_stream();
        let settled = self.settle();
        self.active.store(false, SeqCst);

        let secs = s1.at.duration_since(s0.at).as_secs_f64();
        let ticks =
            |a: u64, b: u64| format!("{:.2}", b.saturating_sub(a) as f64 / cpu::TICKS_PER_SEC);
        let fields = [
            ("secs", format!("{secs:.4}")),
            ("tx_frames", (s1.tx_wire - s0.tx_wire).to_string()),
            ("rx_frames", (s1.rx - s0.rx).to_string()),
            ("cpu_self", ticks(s0.cpu_self, s1.cpu_self)),
            ("cpu_model", ticks(s0.cpu_model, s1.cpu_model)),
            ("cpu_bench", ticks(s0.cpu_bench, s1.cpu_bench)),
            ("cpu_irq", ticks(s0.cpu_irq, s1.cpu_irq)),
            ("cpu_tx", ticks(s0.cpu_tx, s1.cpu_tx)),
            ("cpu_check", ticks(s0.cpu_check, s1.cpu_check)),
            ("cpu_uhalf", ticks(s0.cpu_uhalf, s1.cpu_uhalf)),
            (
                "cpu_others",
                ticks(
                    s0.machine_busy
                        + s1.cpu_self.saturating_sub(s0.cpu_self)
                        + s1.cpu_uhalf.saturating_sub(s0.cpu_uhalf),
                    s1.machine_busy,
                ),
            ),
            ("watchdogs", (s1.watchdogs - s0.watchdogs).to_string()),
            ("stats_queries", (s1.stats_ok - s0.stats_ok).to_string()),
            ("settled", u8::from(settled).to_string()),
        ];
        line(&fields)
    }

    /// Waits until every accepted frame reached the peer and was checked there, and every
    /// frame the peer streamed was received and checked; then restarts the receive
    /// sequence for the next stream. False if something is still missing after 10 s.
    fn settle(&self) -> bool {
        let c = self.c;
        let deadline = Instant::now() + Duration::from_secs(10);
        // The transmit thread notices within its 100 ms send timeout.
        std::thread::sleep(Duration::from_millis(20));
        let done = || {
            let accepted = c.tx_accepted.load(SeqCst);
            let sent = self.sim.peer_stats().stream_sent;
            c.tx_checked.load(SeqCst) + c.tx_gaps.load(SeqCst) + c.tx_bad.load(SeqCst) >= accepted
                && c.rx_checked.load(SeqCst) + c.rx_gaps.load(SeqCst) >= sent
        };
        while !done() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        c.rx_restart.store(true, SeqCst);
        while c.rx_restart.load(SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    /// The frame accounting over the process's life.
    fn final_line(&self) -> String {
        let c = self.c;
        let peer = self.sim.peer_stats();
        let alive = self.supervisor.and_then(Supervisor::pid) == self.uhalf_pid;
        let (restarts, hangs) = self
            .supervisor
            .map_or((0, 0), |s| (s.status().restarts, s.status().hangs));
        let (resets, tx_timeouts, up, link_up, watchdog_runs) = self
            .nd
            .with_adapter(|a| (a.wd.resets, a.wd.tx_timeouts, a.up, a.link.up, a.wd.runs));
        line(&[
            ("driver_resets", resets.to_string()),
            ("driver_tx_timeouts", tx_timeouts.to_string()),
            ("driver_up", u8::from(up && link_up).to_string()),
            ("driver_watchdog_runs", watchdog_runs.to_string()),
            ("tx_accepted", c.tx_accepted.load(SeqCst).to_string()),
            ("tx_peer_good", peer.rx_frames.to_string()),
            ("tx_checked", c.tx_checked.load(SeqCst).to_string()),
            ("tx_unrecorded", c.tx_gaps.load(SeqCst).to_string()),
            ("tx_bad", c.tx_bad.load(SeqCst).to_string()),
            ("tx_errors", c.tx_errors.load(SeqCst).to_string()),
            ("rx_sent", peer.stream_sent.to_string()),
            ("rx_checked", c.rx_checked.load(SeqCst).to_string()),
            ("rx_gaps", c.rx_gaps.load(SeqCst).to_string()),
            ("rx_bad", c.rx_bad.load(SeqCst).to_string()),
            ("stats_errors", c.stats_err.load(SeqCst).to_string()),
            ("restarts", restarts.to_string()),
            ("hangs", hangs.to_string()),
            ("split", u8::from(self.supervisor.is_some()).to_string()),
            (
                "uhalf_alive",
                u8::from(alive && self.supervisor.is_some()).to_string(),
            ),
        ])
    }
}

fn line(fields: &[(&str, String)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sets up one configuration and serves the bench's `slice`/`quit` commands.
pub fn serve(spec: Spec) -> Result<(), String> {
    if spec.len > MAX_LEN || spec.len < HEADER {
        return Err(format!(
            "frame length {} outside {HEADER}..={MAX_LEN}",
            spec.len
        ));
    }
    let cfg = SimConfig {
        peer: PeerConfig {
            // The checker drains the recording continuously; 65,536 frames is a few
            // tenths of a second of traffic at the model's speed.
            record: true,
            record_limit: 1 << 16,
            ..PeerConfig::default()
        },
        ..SimConfig::default()
    };
    let (sim, hw) = e1000_sim::start(cfg).map_err(|e| format!("device model: {e}"))?;
    let supervisor = if spec.split {
        let s = Supervisor::start(
            supervisor_config(spec.delay),
            Arc::new(ObjectTracker::new()),
        )
        .map_err(|e| format!("starting the user half: {e}"))?;
        install_kernel(s.endpoint().clone());
        Some(s)
    } else {
        None
    };
    let uhalf_pid = supervisor.as_ref().and_then(Supervisor::pid);
    let started = Instant::now();
    let nd = Netdev::start(hw, Options::default()).map_err(|e| format!("probe: {e}"))?;
    nd.open().map_err(|e| format!("open: {e}"))?;
    if std::env::var_os("E1000_BENCH_FIXED_ITR").is_some() {
        nd.with_adapter(|a| {
            let mut c = e1000::ethtool::get_coalesce(a)?;
            c.adaptive = false;
            e1000::ethtool::set_coalesce(a, &c)
        })
        .map_err(|e| format!("coalesce: {e}"))?;
    }
    if !nd.wait_link(Duration::from_secs(60)) {
        return Err("the link did not come up".into());
    }
    let setup = started.elapsed();
    let ours = nd.with_adapter(|a| a.mac);
    let (peer_mac, _) = sim.peer_addr();
    let pattern = pattern();
    let c = Counters::default();
    let transmit = AtomicBool::new(false);
    let active = AtomicBool::new(false);
    let halt = AtomicBool::new(false);
    let stop = AtomicBool::new(false);

    let outcome = std::thread::scope(|scope| -> Result<(), String> {
        let threads = (|| -> Result<(), String> {
            // Transmit as fast as the driver accepts, while a slice runs.
            spawn_named(scope, "bench-tx", || {
                let mut pkt =
                    TxPacket::new(e1000_sim::net::stream_frame(peer_mac, ours, 0, spec.len));
                let mut seq = 0u64;
                while !stop.load(SeqCst) {
                    if halt.load(SeqCst) {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    if !transmit.load(SeqCst) {
                        // Between slices: ~1,000 frames/s (see TRICKLE).
                        std::thread::sleep(TRICKLE);
                    }
                    fill_stream_frame(&mut pkt.frags[0], seq, &pattern);
                    match nd.send(&pkt, Duration::from_millis(100)) {
                        Ok(()) => {
                            seq += 1;
                            c.tx_accepted.fetch_add(1, SeqCst);
                        }
                        Err(e1000::DriverError::Busy) => {}
                        Err(e) => {
                            eprintln!("transmit: {e}");
                            c.tx_errors.fetch_add(1, SeqCst);
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
            // Check both directions, all the time.
            spawn_named(scope, "bench-check", || {
                let mut rx = SeqCheck {
                    expected: 0,
                    pattern: &pattern,
                };
                let mut tx = SeqCheck {
                    expected: 0,
                    pattern: &pattern,
                };
                while !stop.load(SeqCst) {
                    if c.rx_restart.load(SeqCst) {
                        rx.expected = 0;
                        c.rx_restart.store(false, SeqCst);
                    }
                    let mut frames = nd.drain();
                    if frames.is_empty() {
                        let wait = if active.load(SeqCst) { 1 } else { 20 };
                        frames.extend(nd.recv(Duration::from_millis(wait)));
                    }
                    for f in &frames {
                        rx.check(
                            &f.data,
                            (ours, peer_mac),
                            &c.rx_checked,
                            &c.rx_gaps,
                            &c.rx_bad,
                        );
                    }
                    for f in sim.peer_take_received() {
                        tx.check(&f, (peer_mac, ours), &c.tx_checked, &c.tx_gaps, &c.tx_bad);
                    }
                }
            })?;
            // One statistics query per second, all the time (a query that overruns its
            // second skips the ticks it missed).
            spawn_named(scope, "bench-stats", || {
                let tick = Duration::from_secs(1);
                let start = Instant::now();
                let mut next = start + tick;
                while !stop.load(SeqCst) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(20)));
                        continue;
                    }
                    match nd.with_adapter(e1000::stats::values) {
                        Ok(v) if !v.is_empty() => c.stats_ok.fetch_add(1, SeqCst),
                        Ok(_) | Err(_) => c.stats_err.fetch_add(1, SeqCst),
                    };
                    let ticks_done = start.elapsed().as_nanos() / tick.as_nanos();
                    next = start + tick * (ticks_done as u32 + 1);
                }
            })?;
            Ok(())
        })();
        let result = threads.and_then(|()| {
            let rig = Rig {
                sim: &sim,
                nd: &nd,
                supervisor: supervisor.as_ref(),
                uhalf_pid,
                ours,
                len: spec.len,
                c: &c,
                transmit: &transmit,
                halt: &halt,
                active: &active,
            };
            commands(&rig, setup)
        });
        stop.store(true, SeqCst);
        result
    });
    nd.shutdown().map_err(|e| format!("shutdown: {e}"))?;
    if let Some(s) = supervisor {
        s.shutdown();
    }
    outcome
}

/// Reads the bench's commands from stdin and answers on stdout.
fn commands(rig: &Rig<'_>, setup: Duration) -> Result<(), String> {
    use std::io::{BufRead, Write};
    let say = |text: String| -> Result<(), String> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("writing to the bench: {e}"))
    };
    say(format!("READY setup_secs={:.3}", setup.as_secs_f64()))?;
    for command in std::io::stdin().lock().lines() {
        let command = command.map_err(|e| format!("reading from the bench: {e}"))?;
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["slice", ms] => {
                let ms: u64 = ms
                    .parse()
                    .map_err(|_| format!("slice {ms}: not a number"))?;
                say(format!("SLICE {}", rig.slice(Duration::from_millis(ms))))?;
            }
            ["quit"] => {
                rig.halt.store(true, SeqCst);
                rig.active.store(true, SeqCst);
                // (the transmit thread notices within its 100 ms send timeout)
                std::thread::sleep(Duration::from_millis(150));
                rig.settle();
                say(format!("FINAL {}", rig.final_line()))?;
                return Ok(());
            }
            _ => return Err(format!("unknown command {command:?}")),
        }
    }
    Ok(())
}
