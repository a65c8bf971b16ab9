//! Chaos against the whole driver under traffic (issue 20).
//!
//! One real e1000d process (split, on the model) for the whole run, driven through its
//! control protocol. Streams of frames run both ways through the hot path with the
//! sequence checker, each across many faults, while one fault after another, drawn at
//! random, hits the user half: SIGKILL, SIGSTOP (hang), an abort or a panic inside an
//! upcall, garbage over the channel, forged ids and pointers in replies, holds and snapshot
//! storms on the hot path's combolocks, a slow user half, a hung warm standby met by the
//! next recovery, a crash during re-attach, a crash
//! during a configuration change (ring resize, coalescing, features) or during a self-test,
//! online or offline (rounds that close the interface on purpose, a feature change or the
//! offline test, are drawn only between two streams and run without one), and a crash
//! loop: the user half killed from outside (SIGKILL) as fast as it comes back, until the
//! driver degrades, a request that needs the user half refused meanwhile, then recovery,
//! by `e1000ctl revive` or by the supervisor's own next attempt (the daemon runs with a
//! small restart budget, so an ordinary round may degrade it too: it must recover by
//! itself). A reader thread issues e1000ctl requests all the while. After each fault:
//!
//! * no frame duplicated or out of order so far; at each stream's end, no accepted frame
//!   lost;
//! * no counter of `-S` went backwards (nor anywhere in the reader's sequence);
//! * the configuration (`-g`, `-c`, `-k`, and the registers of `-d`) equals an independent
//!   model of the requests that were answered OK (an error reply must leave the old
//!   configuration whole);
//! * every request was answered within its timeout;
//! * the hot path was never blocked over 10 ms outside a reconfiguration (time the daemon's
//!   threads waited for a CPU left out; a round that stalls runs its fault again twice, and
//!   the stall counts only if it recurs every time: a one-off on a loaded two-core machine
//!   is reported, not counted);
//! * a fault the user half survives by design (a panic, garbage it is made to send, forged
//!   replies, lock holds, a slow upcall) leaves the same user half answering. A slow one
//!   keeps one of its two workers busy for 200 or 500 ms while the other answers the
//!   heartbeat: the supervisor calls a user half hung only when a ping goes unanswered for
//!   250 ms of time it could run (time its threads waited for a CPU is granted on top), so
//!   a restart there is a false hang and fails the round.
//!
//! `cargo test -p e1000d --test chaos` runs 300 faults; `-- --faults N`, `-- --soak 10m`
//! (a mix where the faults that cost only the driver's recovery come 20 times as often as
//! those that cost their own time), `-- --seed S` and `-- --frames N` (each way per stream)
//! run others; `-- --kinds Hang,CrashLoop` draws only the kinds whose names (as the summary
//! prints them: `Inject(Hang)`, `CrashDuringConfig(Kill)`, `CrashLoop`...) contain one of
//! the given words, to chase one kind's failure. The summary prints the sustained fault
//! rate and where the time went.
//! `-- --record docs/chaos-runs.md` appends the run's line (and rate) to that table and
//! recomputes its totals, so the runs recorded in the docs are the campaign's own output,
//! never copied by hand.

mod common;
#[path = "chaos/config_model.rs"]
mod config_model;
#[path = "chaos/freeze.rs"]
mod freeze;
#[path = "chaos/kinds.rs"]
mod kinds;
#[path = "chaos/record.rs"]
mod record;
#[path = "../../../../microdriver-rt/tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::DaemonProcess;
use config_model::{config_request, divergences, Model};
use e1000d::client::{request, ClientError};
use e1000d::protocol::{Fault, Reply, Request, TrafficReport};
use kinds::{crash_loop, soak_kind, Kind, KINDS};
use record::{parse_soak, record, Recorded};
use support::Rng;

/// A round that stalled runs its fault again up to this many times: a stall counts only
/// if every one of them stalls too.
const STALL_RETRIES: u64 = 2;
/// Every request must be answered within this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(20);
/// Frames each way per stream by default (`--frames N`): about 1.5 s of traffic on an
/// idle model, across several faults.
const FRAMES_PER_STREAM: u64 = 200_000;
/// The daemon's restart budget: more than this many restarts within `RESTART_WINDOW` of
/// the user halves' running time degrade it, i.e. user halves that lived less than about
/// 6 ms each on average. A crash loop (each user half killed within a few milliseconds of
/// coming up) goes over it after 16 kills, however slowly the machine restarts them;
/// ordinary rounds (a user half lives through at least one round's checks, ten
/// milliseconds or more) stay under it.
const MAX_RESTARTS: &str = "15";
const RESTART_WINDOW: &str = "100ms";
/// A user half that lived less than this died of a crash loop, not of a fault: it is
/// restarted after the young-death backoff (1 ms, doubling). Most of a crash loop's kills
/// come within it.
const STABLE_UPTIME: &str = "2ms";
/// A degraded daemon's first attempt comes after this, doubling up to `REVIVE_MAX`.
const REVIVE_BACKOFF: &str = "100ms";
const REVIVE_MAX: Duration = Duration::from_secs(1);
/// A crash loop gives up (and fails the round) after this many kills without degrading (or
/// 30 s: on a starved machine restarts come too slowly for the budget's window).
const CRASH_LOOP_KILLS: u32 = 1000;

struct Options {
    faults: u64,
    soak: Option<Duration>,
    seed: u64,
    record: Option<PathBuf>,
    frames: u64,
    /// `--kinds`: the words a kind's name must contain one of (empty: every kind).
    kinds: Vec<String>,
}

fn options() -> Options {
    let value = support::flag_value;
    let seed = support::seed_or_clock(value("--seed").and_then(|v| v.parse().ok())) | 1;
    Options {
        faults: value("--faults")
            .and_then(|v| v.parse().ok())
            .unwrap_or(300),
        soak: value("--soak").map(|v| parse_soak(&v).unwrap_or_else(|e| panic!("--soak {v}: {e}"))),
        seed,
        frames: value("--frames").map_or(FRAMES_PER_STREAM, |v| match v.parse() {
            Ok(n) if n > 0 => n,
            _ => panic!("--frames {v}: give a number of frames each way per stream, at least 1"),
        }),
        kinds: value("--kinds").map_or_else(Vec::new, |v| {
            let words: Vec<String> = v.split(',').map(|w| w.trim().to_string()).collect();
            if words.iter().any(String::is_empty)
                || !KINDS
                    .iter()
                    .any(|k| words.iter().any(|w| format!("{k:?}").contains(w.as_str())))
            {
                panic!(
                    "--kinds {v}: give comma-separated words from the kinds' names: {:?}",
                    KINDS
                );
            }
            words
        }),
        // Relative to the workspace root (cargo runs tests in the package's directory).
        record: value("--record").map(|p| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../..")
                .join(p)
        }),
    }
}

/// The next round's kind: from the soak's mix or uniformly, only among those `--kinds`
/// selects.
fn draw_kind(rng: &mut Rng, opts: &Options) -> Kind {
    loop {
        let kind = match opts.soak {
            Some(_) => soak_kind(rng),
            None => rng.pick(&KINDS),
        };
        let name = format!("{kind:?}");
        if opts.kinds.is_empty() || opts.kinds.iter().any(|w| name.contains(w.as_str())) {
            return kind;
        }
    }
}

/// One request with the campaign's deadline; a reply later than that fails the run.
fn ask(socket: &Path, req: &Request, slowest: &AtomicU64) -> Result<Reply, String> {
    let t = Instant::now();
    let r = request(socket, req, REPLY_TIMEOUT);
    let took = t.elapsed();
    slowest.fetch_max(took.as_micros() as u64, Ordering::Relaxed);
    match r {
        Ok(reply) => Ok(reply),
        Err(ClientError::Daemon(msg)) => Err(msg),
        Err(e) => panic!("{req:?}: no reply within {REPLY_TIMEOUT:?} ({took:?}): {e}"),
    }
}

/// Requests sent at once, each on its own connection; the replies in their order.
fn ask_all<const N: usize>(
    socket: &Path,
    reqs: [Request; N],
    slowest: &AtomicU64,
) -> [Result<Reply, String>; N] {
    std::thread::scope(|scope| {
        let handles = reqs.map(|req| scope.spawn(move || ask(socket, &req, slowest)));
        handles.map(|h| match h.join() {
            Ok(reply) => reply,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    })
}

/// Counters that went backwards between two reads of `-S`.
fn backwards(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> Vec<String> {
    before
        .iter()
        .filter_map(|(name, &old)| {
            let new = *after.get(name)?;
            (new < old).then(|| format!("{name} {old} -> {new}"))
        })
        .collect()
}

fn stats(socket: &Path, slowest: &AtomicU64) -> Option<BTreeMap<String, u64>> {
    match ask(socket, &Request::Stats, slowest) {
        Ok(Reply::Stats { stats }) => Some(stats.into_iter().collect()),
        _ => None,
    }
}

/// Waits until the user half answers, no reset is pending and the link is up: the
/// driver has recovered from the fault.
///
/// A driver that degraded (its restart budget is small) must come back by itself: the
/// supervisor's next attempt is due within `REVIVE_MAX`.
fn wait_settled(socket: &Path, slowest: &AtomicU64) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Reply::Status(s)) = ask(socket, &Request::Status, slowest) {
            let split = s.split.as_ref().expect("split mode");
            if split.degraded {
                match split.next_attempt {
                    Some(next) if next <= REVIVE_MAX => {}
                    other => {
                        return Err(format!(
                            "degraded, next attempt {other:?} (the most is {REVIVE_MAX:?})"
                        ))
                    }
                }
            } else if split.pid.is_some() && !s.reset_pending && s.link_up {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            return Err("the driver did not settle within 30 s".into());
        }
        // The daemon reports its state only when asked: this is the polling interval of
        // that question, not a wait standing in for an event.
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn wait_traffic(socket: &Path, slowest: &AtomicU64) -> TrafficReport {
    loop {
        match ask(socket, &Request::TrafficStatus, slowest) {
            Ok(Reply::Traffic(t)) if !t.running => return t,
            // Still running: ask again after a polling interval (the daemon has no way to
            // push the end of a stream to a client).
            Ok(Reply::Traffic(_)) => std::thread::sleep(Duration::from_millis(5)),
            other => panic!("traffic status: {other:?}"),
        }
    }
}

/// Waits for the running stream to end and checks it: every frame the driver accepted
/// arrived once, in order, both ways. Returns the frames lost and duplicated.
fn finish_stream(socket: &Path, slowest: &AtomicU64, problems: &mut Vec<String>) -> (u64, u64) {
    let t = wait_traffic(socket, slowest);
    stream_verdict(&t, problems)
}

/// The verdict on a finished stream: frames lost and duplicated (or out of order).
fn stream_verdict(t: &TrafficReport, problems: &mut Vec<String>) -> (u64, u64) {
    let l = t.lost();
    let dup = t.rx_bad + t.peer_bad + t.peer_received.saturating_sub(t.tx_accepted);
    if l != 0 || dup != 0 || t.peer_sent != t.frames {
        problems.push(format!(
            "traffic: lost {l}, duplicated or out of order {dup}: {t:?}"
        ));
    }
    (l, dup)
}

/// Where the campaign's time went: the stream (starting it, or waiting for its end before
/// a round that needs the interface quiet), the fault (injecting it and the driver's
/// recovery, which `inject` waits for), settling (until the user half answers, no reset
/// is pending and the link is up) and the checks (traffic, configuration, counters); and
/// each kind's rounds in all.
#[derive(Default)]
struct Phases {
    stream: Duration,
    fault: Duration,
    settle: Duration,
    check: Duration,
    per_kind: BTreeMap<String, Duration>,
}

impl Phases {
    fn summary(&self, per_kind: &BTreeMap<String, u64>) -> String {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let total = self.stream + self.fault + self.settle + self.check;
        let n = per_kind.values().sum::<u64>().max(1) as f64;
        let mut kinds: Vec<(f64, &String)> = self
            .per_kind
            .iter()
            .map(|(k, d)| {
                (
                    ms(*d) / per_kind.get(k).copied().unwrap_or(1).max(1) as f64,
                    k,
                )
            })
            .collect();
        kinds.sort_by(|a, b| b.0.total_cmp(&a.0));
        format!(
            "per fault {:.1} ms: stream {:.1}, fault and recovery {:.1}, settle {:.1}, checks {:.1}; \
             mean ms per kind: {}",
            ms(total) / n,
            ms(self.stream) / n,
            ms(self.fault) / n,
            ms(self.settle) / n,
            ms(self.check) / n,
            kinds
                .iter()
                .map(|(m, k)| format!("{k} {m:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The reader: e1000ctl requests in a loop while the campaign runs; each answered in
/// time, `-S` never backwards within its own sequence.
fn reader(socket: PathBuf, stop: Arc<AtomicBool>, slowest: Arc<AtomicU64>) -> (u64, Vec<String>) {
    let reads = [
        Request::Stats,
        Request::Rings,
        Request::Coalesce,
        Request::Features,
        Request::DrvInfo,
        Request::Status,
        Request::Stats64,
        Request::LinkSettings,
        Request::Pause,
    ];
    let (mut n, mut back) = (0u64, Vec::new());
    let mut last: Option<BTreeMap<String, u64>> = None;
    while !stop.load(Ordering::Relaxed) {
        let req = &reads[(n % reads.len() as u64) as usize];
        if let Ok(Reply::Stats { stats }) = ask(&socket, req, &slowest) {
            let now: BTreeMap<String, u64> = stats.into_iter().collect();
            if let Some(prev) = &last {
                back.extend(backwards(prev, &now));
            }
            last = Some(now);
        }
        n += 1;
    }
    (n, back)
}

fn main() {
    support::run_single(
        "chaos",
        &[
            "--faults=",
            "--soak=",
            "--seed=",
            "--record=",
            "--frames=",
            "--kinds=",
        ],
        campaign,
    );
}

fn campaign() {
    let opts = options();
    let d = DaemonProcess::start(&[
        "--max-restarts",
        MAX_RESTARTS,
        "--restart-window",
        RESTART_WINDOW,
        "--revive-backoff",
        REVIVE_BACKOFF,
        "--revive-backoff-max",
        "1s",
        "--stable-uptime",
        STABLE_UPTIME,
    ]);
    let socket = d.socket.clone();
    let slowest = Arc::new(AtomicU64::new(0));
    let mut rng = Rng(opts.seed);
    eprintln!(
        "chaos: seed {} ({} faults{})",
        opts.seed,
        opts.faults,
        opts.soak
            .map(|s| format!(", soak {s:?}"))
            .unwrap_or_default()
    );

    // The starting configuration is whatever the daemon came up with.
    let rings = match ask(&socket, &Request::Rings, &slowest) {
        Ok(Reply::Rings(r)) => r,
        other => panic!("-g: {other:?}"),
    };
    let coalesce = match ask(&socket, &Request::Coalesce, &slowest) {
        Ok(Reply::Coalesce(c)) => c,
        other => panic!("-c: {other:?}"),
    };
    let mut model = Model {
        rx: rings.rx,
        tx: rings.tx,
        coalesce,
        rx_csum: true,
    };
    let first = divergences(&socket, &model, &slowest);
    assert!(first.is_empty(), "before any fault: {first:?}");
    let mut last_stats = stats(&socket, &slowest).expect("-S");

    let stop = Arc::new(AtomicBool::new(false));
    let reader_thread = {
        let (socket, stop, slowest) = (socket.clone(), Arc::clone(&stop), Arc::clone(&slowest));
        std::thread::spawn(move || reader(socket, stop, slowest))
    };

    let freeze_watch = freeze::watch(d.child.id(), socket.clone(), Arc::clone(&stop));

    let started = Instant::now();
    let (mut faults, mut survived) = (0u64, 0u64);
    let (mut lost, mut duplicated, mut counters_back, mut config_div) = (0u64, 0u64, 0u64, 0u64);
    let (mut stalls, mut longest_stall, mut pauses) = (0u64, Duration::ZERO, 0u64);
    let mut flow_pauses = 0u64;
    // The fault being run again after stalled rounds: how many rounds stalled, and the
    // stalls in them.
    let mut retry: Option<(Kind, u64, u64)> = None;
    let mut one_off_stalls = 0u64;
    let (mut refused_frames, mut interrupted, mut config_ok) = (0u64, 0u64, 0u64);
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    // Crash loops: how many, revived by an operator, the kills and longest time degraded,
    // and how many saw their request refused while degraded.
    let (mut loops, mut loops_operator, mut loop_kills) = (0u64, 0u64, 0u64);
    let (mut longest_down, mut refused_degraded) = (Duration::ZERO, 0u64);
    let mut failures: Vec<String> = Vec::new();
    // The stream runs across faults: started when a round needs it and none runs, checked
    // (live counters) after every fault, and finished (every frame accounted for) when it
    // has sent its frames or a round needs the interface quiet.
    let mut stream: Option<TrafficReport> = None;
    let (mut streams_done, mut stream_faults) = (0u64, 0u64);
    let mut phases = Phases::default();
    loop {
        // A stall being checked again is finished first.
        let done = retry.is_none()
            && match opts.soak {
                Some(s) => started.elapsed() >= s,
                None => faults >= opts.faults,
            };
        if done {
            break;
        }
        let round_started = Instant::now();
        // A round whose only problem was a stall runs its fault again (see STALL_RETRIES).
        let kind = match retry {
            Some((k, ..)) => k,
            None => draw_kind(&mut rng, &opts),
        };
        faults += 1;
        *per_kind.entry(format!("{kind:?}")).or_default() += 1;
        let mut problems: Vec<String> = Vec::new();

        // Feature changes close and reopen the interface (frames arriving meanwhile are
        // missed at the wire, never accepted): those rounds run without the stream, so
        // they are drawn only between two streams (not to wait for one's end).
        let between = stream.is_none();
        let (req, next) = config_request(&mut rng, &model, between);
        // The offline self-test closes, resets and reopens the device: no stream either.
        let offline = kind == Kind::CrashDuringSelfTest && between && rng.below(3) == 0;
        let quiet = offline
            || (matches!(req, Request::SetFeatures { .. })
                && matches!(kind, Kind::CrashDuringConfig(_) | Kind::CrashLoop));
        let t = Instant::now();
        if quiet {
            if stream.take().is_some() {
                let (l, dup) = finish_stream(&socket, &slowest, &mut problems);
                lost += l;
                duplicated += dup;
                streams_done += 1;
            }
        } else if stream.is_none() {
            match ask(
                &socket,
                &Request::TrafficStart {
                    frames: opts.frames,
                    sizes: vec![60, 590, 1514],
                },
                &slowest,
            ) {
                Ok(Reply::Traffic(t)) => stream = Some(t),
                other => panic!("fault {faults}: traffic start: {other:?}"),
            }
        }
        let streams = stream.is_some();
        phases.stream += t.elapsed();

        let t = Instant::now();
        match kind {
            Kind::Inject(fault) => {
                if let Err(e) = ask(&socket, &Request::Inject { fault }, &slowest) {
                    problems.push(format!("inject {fault:?}: {e}"));
                }
            }
            Kind::CrashLoop => {
                let mut answer = None;
                let daemon = d.child.id();
                match crash_loop(
                    &socket,
                    daemon,
                    &slowest,
                    rng.below(2) == 0,
                    &req,
                    &mut answer,
                ) {
                    Ok(c) => {
                        loops += 1;
                        loops_operator += u64::from(c.by_operator);
                        loop_kills += u64::from(c.kills);
                        longest_down = longest_down.max(c.down);
                        refused_degraded += u64::from(c.refused_degraded);
                    }
                    Err(e) => problems.push(format!("crash loop: {e}")),
                }
                // The change sent while degraded: refused (unless a revival beat it), and
                // then it must have changed nothing.
                match (answer, &next) {
                    (Some(Ok(_)), Some(m)) => {
                        model = m.clone();
                        config_ok += 1;
                    }
                    (Some(Ok(r)), None) => {
                        problems.push(format!("{req:?} should be refused, got {r:?}"))
                    }
                    (Some(Err(_)), Some(_)) => interrupted += 1,
                    (Some(Err(_)), None) | (None, _) => {}
                }
            }
            Kind::CrashDuringConfig(_) | Kind::CrashDuringSelfTest => {
                let (fault, req) = match kind {
                    Kind::CrashDuringConfig(f) => (f, req.clone()),
                    Kind::CrashDuringSelfTest => (
                        rng.pick(&[Fault::Crash, Fault::Kill]),
                        Request::SelfTest { offline },
                    ),
                    Kind::Inject(_) | Kind::CrashLoop => unreachable!("handled above"),
                };
                // The change and the crash race: the crash may land before, during or
                // after the change's upcall.
                let change = {
                    let (socket, slowest, req) =
                        (socket.clone(), Arc::clone(&slowest), req.clone());
                    std::thread::spawn(move || ask(&socket, &req, &slowest))
                };
                if rng.below(2) == 0 {
                    std::thread::yield_now();
                }
                if let Err(e) = ask(&socket, &Request::Inject { fault }, &slowest) {
                    problems.push(format!("inject {fault:?} during {req:?}: {e}"));
                }
                let answer = change.join().expect("the change thread");
                if matches!(kind, Kind::CrashDuringConfig(_)) {
                    match (&answer, &next) {
                        (Ok(_), Some(m)) => {
                            model = m.clone();
                            config_ok += 1;
                        }
                        (Ok(r), None) => {
                            problems.push(format!("{req:?} should be refused, got {r:?}"))
                        }
                        (Err(_), Some(_)) => interrupted += 1,
                        (Err(_), None) => {}
                    }
                }
            }
        }
        phases.fault += t.elapsed();

        let t = Instant::now();
        if let Err(e) = wait_settled(&socket, &slowest) {
            problems.push(format!("after the fault: {e}"));
        }
        phases.settle += t.elapsed();

        let t = Instant::now();
        // Also a plain change now and then, with no fault racing it (a feature change
        // only while no stream runs).
        if rng.below(4) == 0 {
            let (req, next) = config_request(&mut rng, &model, stream.is_none());
            match (ask(&socket, &req, &slowest), next) {
                (Ok(_), Some(m)) => {
                    model = m;
                    config_ok += 1;
                }
                (Ok(r), None) => problems.push(format!("{req:?} should be refused, got {r:?}")),
                (Err(e), Some(_)) => problems.push(format!("{req:?} refused with no fault: {e}")),
                (Err(_), None) => {}
            }
        }
        // The stream's counters, the configuration's views and the counters of -S, asked
        // at once.
        let (mut traffic_now, div, counters) = std::thread::scope(|scope| {
            let traffic = stream
                .is_some()
                .then(|| scope.spawn(|| ask(&socket, &Request::TrafficStatus, &slowest)));
            let counters = scope.spawn(|| stats(&socket, &slowest));
            let div = divergences(&socket, &model, &slowest);
            (
                traffic.map(|t| t.join().expect("the traffic status thread")),
                div,
                counters.join().expect("the -S thread"),
            )
        });
        let (mut round_stalls, mut stall_note) = (0u64, None);
        if let Some(before) = stream.take() {
            stream_faults += 1;
            let now = match traffic_now.take() {
                Some(Ok(Reply::Traffic(t))) => t,
                other => panic!("traffic status: {other:?}"),
            };
            // Duplicates and reordering show at once; a loss only once every frame had
            // its chance to arrive (the stream's end).
            let bad = now.rx_bad + now.peer_bad;
            if bad != 0 {
                problems.push(format!(
                    "traffic: {bad} frames duplicated or out of order so far: {now:?}"
                ));
            }
            round_stalls = now.stalls.saturating_sub(before.stalls);
            pauses += now.reconfig_pauses.saturating_sub(before.reconfig_pauses);
            flow_pauses += now.flow_pauses.saturating_sub(before.flow_pauses);
            longest_stall = longest_stall.max(now.longest_stall);
            if round_stalls != 0 {
                stall_note = Some(format!(
                    "hot path blocked over 10 ms {round_stalls} times (the stream's longest \
                     gap so far {:?})",
                    now.longest_stall
                ));
            }
            if now.running {
                stream = Some(now);
            } else {
                let (l, dup) = stream_verdict(&now, &mut problems);
                lost += l;
                duplicated += dup;
                refused_frames += now.tx_refused;
                streams_done += 1;
            }
        }
        if !div.is_empty() {
            config_div += 1;
            problems.push(format!("configuration: {div:?}"));
        }
        if let Some(now) = counters {
            let back = backwards(&last_stats, &now);
            if !back.is_empty() {
                counters_back += back.len() as u64;
                problems.push(format!("-S went backwards: {back:?}"));
            }
            last_stats = now;
        } else {
            problems.push("-S failed after the fault settled".into());
        }
        phases.check += t.elapsed();
        // A stall that the same fault does not cause again in STALL_RETRIES more rounds
        // was the machine (other work on two shared cores), not the driver: reported, not
        // counted. One that recurs every time is a defect.
        match (stall_note, retry) {
            (Some(note), _) if !problems.is_empty() => {
                stalls += round_stalls + retry.map_or(0, |(.., seen)| seen);
                problems.push(note);
                retry = None;
            }
            (Some(note), Some((_, rounds, seen))) if rounds >= STALL_RETRIES => {
                stalls += seen + round_stalls;
                problems.push(format!("{note}; and in the {rounds} rounds before"));
                retry = None;
            }
            (Some(note), r) => {
                eprintln!("fault {faults} ({kind:?}): {note}: running it again");
                let (rounds, seen) = r.map_or((0, 0), |(_, rounds, seen)| (rounds, seen));
                retry = Some((kind, rounds + 1, seen + round_stalls));
            }
            // A round without the stream says nothing: run the fault again.
            (None, Some(_)) if !streams => {}
            (None, Some((.., seen))) => {
                one_off_stalls += seen;
                retry = None;
            }
            (None, None) => {}
        }
        *phases.per_kind.entry(format!("{kind:?}")).or_default() += round_started.elapsed();
        if problems.is_empty() {
            survived += 1;
        } else {
            let line = format!("fault {faults} ({kind:?}): {}", problems.join("; "));
            eprintln!("{line}");
            failures.push(line);
        }
    }
    // The last stream: every frame accounted for.
    if stream.take().is_some() {
        let mut problems = Vec::new();
        let (l, dup) = finish_stream(&socket, &slowest, &mut problems);
        lost += l;
        duplicated += dup;
        streams_done += 1;
        if !problems.is_empty() {
            failures.push(format!("the last stream: {}", problems.join("; ")));
        }
    }
    stop.store(true, Ordering::Relaxed);
    freeze_watch.thread().unpark();
    let (reads, reader_back) = reader_thread.join().expect("the reader thread");
    // Evidence, not a verdict: a freeze long enough to matter fails the requests that
    // met it (REPLY_TIMEOUT) or the checks after its round.
    let freezes = freeze_watch.join().expect("the freeze watch").len();
    counters_back += reader_back.len() as u64;
    if !reader_back.is_empty() {
        failures.push(format!("the reader saw -S go backwards: {reader_back:?}"));
    }
    let status = ask(&socket, &Request::Status, &slowest);
    // Every degradation (the crash loops', and any an ordinary round caused) recovered.
    let (degradations, revivals) = match &status {
        Ok(Reply::Status(s)) => s
            .split
            .as_ref()
            .map_or((0, 0), |sp| (sp.degradations, sp.revivals)),
        _ => (0, 0),
    };
    if degradations < loops || revivals != degradations {
        failures.push(format!(
            "{loops} crash loops, but the daemon degraded {degradations} times and revived {revivals} times"
        ));
    }
    if loops >= 4 && refused_degraded == 0 {
        failures.push(format!(
            "in {loops} crash loops no request was refused while degraded"
        ));
    }
    eprintln!(
        "chaos: crash loops {loops} ({loops_operator} revived by an operator, the rest by the supervisor), kills {loop_kills}, longest degraded {:.0} ms, requests refused while degraded {refused_degraded}; degraded {degradations} times in all, revived {revivals}",
        longest_down.as_secs_f64() * 1e3
    );
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "chaos: {faults} faults in {secs:.1} s, {:.2} faults/s sustained; {streams_done} streams of {} frames each way across {stream_faults} faults; {}",
        faults as f64 / secs.max(1e-9),
        opts.frames,
        phases.summary(&per_kind)
    );
    eprintln!(
        "chaos: {:.1} s; kinds {per_kind:?}; configuration changes OK {config_ok}, interrupted {interrupted}; \
         reader requests {reads}; slowest reply {:.1} ms; frames refused at transmit {refused_frames}; \
         reconfiguration pauses {pauses}, flow-control pauses {flow_pauses}; longest hot-path stall {:.1} ms; \
         stalls over 10 ms the same fault did not cause again {one_off_stalls}; \
         status answers slower than 5 s {freezes} (each dumped when it happened); status {}",
        started.elapsed().as_secs_f64(),
        slowest.load(Ordering::Relaxed) as f64 / 1e3,
        longest_stall.as_secs_f64() * 1e3,
        match &status {
            Ok(Reply::Status(s)) => s.split.as_ref().map_or(String::new(), |sp| format!(
                "restarts {}, hangs {}, pings sent again for a user half waiting on a CPU {}, rejected frames {}",
                sp.restarts, sp.hangs, sp.starved_pings, sp.rejected_frames
            )),
            other => format!("{other:?}"),
        }
    );
    println!(
        "chaos: faults {faults}, survived {survived}, frames lost {lost}, duplicated {duplicated}, \
         counters backwards {counters_back}, config divergences {config_div}, \
         hot-path stalls over 10ms {stalls}"
    );
    if let Some(path) = &opts.record {
        let run = Recorded {
            faults,
            survived,
            lost,
            duplicated,
            counters_back,
            config_div,
            stalls,
            secs: started.elapsed().as_secs_f64(),
        };
        match record(path, &opts, &run) {
            Ok(()) => eprintln!("chaos: recorded in {}", path.display()),
            Err(e) => failures.push(format!("recording the run: {e}")),
        }
    }
    if !failures.is_empty() {
        eprintln!("daemon log:\n{}", d.log_text());
        panic!(
            "{} of {faults} faults failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
