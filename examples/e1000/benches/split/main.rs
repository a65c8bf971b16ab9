//! The e1000 microdriver against its monolithic self, and the paper's Figure 4, on the
//! device model, all in one run: `cargo bench -p e1000` (`-- --quick` for a short smoke run
//! that writes no docs).
//!
//! Every configuration runs in its own child process of this bench (`--trial ...`):
//! installing the kernel endpoint is process-global, and a process per configuration also
//! keeps each one's CPU accounting to itself. Each child starts the device model and the
//! driver (split: the user half in a supervised, sandboxed child process of its own;
//! monolithic: every stub a direct call), brings the link up, and keeps the 2-second
//! watchdog and one statistics query per second running; on request it runs traffic both
//! ways at one frame size and measures a slice (see `trial.rs`).
//!
//! The machine is a shared, noisy 2-core VM, so the configurations are set up once (a
//! split driver with a 20 ms crossing delay needs ~20 s to probe and open) and measured in
//! sweeps, one slice each per sweep, forward then backward, with each compared pair side
//! by side; only one configuration has traffic at a time. Figures are medians over the
//! slices and ratios medians of per-sweep ratios; slices during which other processes
//! took CPU are set aside when enough quiet ones remain (`QUIET`). It prints the tables,
//! writes `figure4.md` and `figure4.svg` under `target/bench/` (`-- --update-docs`: into
//! `docs/`, replacing the committed figure), and ends with
//! `ratio split/monolithic pps_64B = X`, `ratio split/monolithic pps_1514B = X` and
//! `ratio delay_20ms/delay_0 pps_1514B = X`.
//!
//! `E1000_BENCH_FIXED_ITR=1` turns the driver's adaptive interrupt throttling off in every
//! configuration (a fixed ITR). Adaptive throttling is decided in the kernel half's poll
//! path, so a slow user half should not reach the data path through it; the switch checks
//! that (it used to be the watchdog's, and explained the delay_20ms gap).

mod cpu;
mod figure;
mod log;
mod trial;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitCode, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use trial::Spec;

/// One configuration of the bench.
#[derive(Debug, Clone, Copy)]
struct Config {
    name: &'static str,
    spec: Spec,
    /// Length of each measured slice.
    window: Duration,
}

/// One trial's figures, by key (see `trial::run`).
type Trial = HashMap<String, f64>;

fn get(t: &Trial, key: &str) -> f64 {
    t.get(key).copied().unwrap_or(f64::NAN)
}

/// Frames through the driver per second, both directions.
fn pps(t: &Trial) -> f64 {
    (get(t, "tx_frames") + get(t, "rx_frames")) / get(t, "secs")
}

/// CPU seconds per second (cores busy): the k-half process (model included) plus the u-half.
fn cores(t: &Trial) -> f64 {
    (get(t, "cpu_self") + get(t, "cpu_uhalf")) / get(t, "secs")
}

/// CPU time per frame (µs), k-half process (model included) plus u-half.
fn cpu_per_pkt(t: &Trial) -> f64 {
    (get(t, "cpu_self") + get(t, "cpu_uhalf")) * 1e6 / (get(t, "tx_frames") + get(t, "rx_frames"))
}

/// The same without the device model's thread.
fn cpu_per_pkt_no_model(t: &Trial) -> f64 {
    (get(t, "cpu_self") - get(t, "cpu_model") + get(t, "cpu_uhalf")) * 1e6
        / (get(t, "tx_frames") + get(t, "rx_frames"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

/// One configuration's child process: its commands go to stdin, its answer lines arrive
/// on a channel (a reader thread per child, so a stuck child cannot hang the bench).
struct Worker {
    config: Config,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Worker {
    fn start(config: Config) -> Result<Worker, String> {
        let exe = std::env::current_exe().expect("the bench's own executable path");
        let mut child = Command::new(exe)
            .args(config.spec.to_args())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{}: could not start: {e}", config.name))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Worker {
            config,
            child,
            stdin,
            lines,
        })
    }

    /// The next line starting with `tag`, within `timeout`.
    fn expect(&self, tag: &str, timeout: Duration) -> Result<Trial, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                        return Ok(rest
                            .split_whitespace()
                            .filter_map(|kv| kv.split_once('='))
                            .filter_map(|(k, v)| v.parse().ok().map(|v| (k.to_string(), v)))
                            .collect());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!("{}: no {tag} within {timeout:?}", self.config.name))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!("{}: exited before {tag}", self.config.name))
                }
            }
        }
    }

    fn send(&mut self, command: &str) -> Result<(), String> {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("{}: {e}", self.config.name))
    }

    /// Asks the child to quit and returns its frame accounting.
    fn finish(mut self) -> Result<Trial, String> {
        let result = self
            .send("quit")
            .and_then(|()| self.expect("FINAL", Duration::from_secs(120)));
        // It shuts the driver down after answering; give that time, then make sure.
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return result;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("  {}: still running after quit: killed", self.config.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
        result
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The child side: one configuration, serving slices.
fn trial_main(words: &[String]) -> ExitCode {
    let spec = match Spec::from_args(words) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("split bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    log::init(words.join(" "));
    match trial::serve(spec) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("split bench worker {spec:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Slice lengths: at least a watchdog period of traffic for the split/monolithic pairs,
/// two and a half for the delays (a watchdog run takes over a second at 20 ms).
const PAIR_WINDOW: Duration = Duration::from_millis(2500);
const DELAY_WINDOW: Duration = Duration::from_secs(5);
const SWEEPS: usize = 7;
const DELAYS: [(&str, Duration); 6] = [
    ("delay_0", Duration::ZERO),
    ("delay_1us", Duration::from_micros(1)),
    ("delay_10us", Duration::from_micros(10)),
    ("delay_100us", Duration::from_micros(100)),
    ("delay_1ms", Duration::from_millis(1)),
    ("delay_20ms", Duration::from_millis(20)),
];

/// The configurations in sweep order: each compared pair side by side (split next to its
/// monolithic baseline, the 20 ms delay next to delay 0).
fn configs(quick: bool) -> Vec<Config> {
    let (pair, delay) = if quick {
        (Duration::from_millis(1000), Duration::from_millis(2500))
    } else {
        (PAIR_WINDOW, DELAY_WINDOW)
    };
    let config = |name, split, len, window| Config {
        name,
        spec: Spec {
            split,
            len,
            delay: Duration::ZERO,
        },
        window,
    };
    let mut out = vec![
        config("mono_64B", false, 60, pair),
        config("split_64B", true, 60, pair),
        config("mono_1514B", false, 1514, pair),
        config("split_1514B", true, 1514, pair),
    ];
    for i in [5, 0, 1, 2, 3, 4] {
        let (name, d) = DELAYS[i];
        let mut c = config(name, true, 1514, delay);
        c.spec.delay = d;
        out.push(c);
    }
    out
}

/// Other processes' CPU (cores, from `/proc/stat`) below which a slice counts as quiet.
/// The machine is a shared 2-core VM: when other work takes CPU, this bench's threads get
/// less and its packet rate drops with them, whichever configuration is running.
const QUIET: f64 = 0.3;

fn quiet(t: &Trial) -> bool {
    get(t, "cpu_others") / get(t, "secs") < QUIET
}

/// The per-sweep ratios `f(a) / f(b)`: those of the sweeps in which both slices were
/// quiet if there are at least 3 of them (then `true`), else those of every sweep.
fn ratios(
    results: &[HashMap<&str, Trial>],
    a: &str,
    b: &str,
    f: fn(&Trial) -> f64,
) -> (Vec<f64>, bool) {
    let all: Vec<(f64, bool)> = results
        .iter()
        .filter_map(|r| {
            let (x, y) = (r.get(a)?, r.get(b)?);
            Some((f(x) / f(y), quiet(x) && quiet(y)))
        })
        .collect();
    let calm: Vec<f64> = all.iter().filter(|(_, q)| *q).map(|(r, _)| *r).collect();
    if calm.len() >= 3 {
        (calm, true)
    } else {
        (all.into_iter().map(|(r, _)| r).collect(), false)
    }
}

/// Median of [`ratios`].
fn ratio(results: &[HashMap<&str, Trial>], a: &str, b: &str, f: fn(&Trial) -> f64) -> f64 {
    median(ratios(results, a, b, f).0)
}

/// Median of `f` over `name`'s quiet slices if there are at least 3, else over all.
fn med(results: &[HashMap<&str, Trial>], name: &str, f: impl Fn(&Trial) -> f64) -> f64 {
    let slices: Vec<&Trial> = results.iter().filter_map(|r| r.get(name)).collect();
    let calm: Vec<f64> = slices.iter().filter(|t| quiet(t)).map(|t| f(t)).collect();
    if calm.len() >= 3 {
        median(calm)
    } else {
        median(slices.into_iter().map(f).collect())
    }
}

/// One key ratio's line: the median and the per-sweep values it came from.
fn describe(results: &[HashMap<&str, Trial>], a: &str, b: &str) -> String {
    let (values, calm) = ratios(results, a, b, pps);
    let list: Vec<String> = values.iter().map(|v| format!("{v:.3}")).collect();
    format!(
        "{a}/{b} pkt/s: median {:.3} of [{}] ({})",
        median(values.clone()),
        list.join(" "),
        if calm {
            "sweeps where the machine was quiet during both slices"
        } else {
            "all sweeps: fewer than 3 were quiet"
        }
    )
}

/// The smallest value of `key` over `name`'s slices.
fn min_of(results: &[HashMap<&str, Trial>], name: &str, key: &str) -> f64 {
    results
        .iter()
        .filter_map(|r| r.get(name).map(|t| get(t, key)))
        .fold(f64::INFINITY, f64::min)
}

fn sum_of(results: &[HashMap<&str, Trial>], key: &str) -> f64 {
    results
        .iter()
        .flat_map(|r| r.values())
        .map(|t| get(t, key))
        .filter(|x| x.is_finite())
        .sum()
}

fn main() -> ExitCode {
    microdriver_rt::component::run_user_half_if_requested();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--trial") {
        return trial_main(&args[i + 1..]);
    }
    if args.iter().any(|a| a == "--list") {
        return ExitCode::SUCCESS;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let update_docs = args.iter().any(|a| a == "--update-docs");
    if quick && update_docs {
        eprintln!("--quick writes nothing: a smoke run is no figure for docs/ (drop one of them)");
        return ExitCode::from(2);
    }
    let sweeps = if quick { 1 } else { SWEEPS };
    let configs = configs(quick);
    let started = Instant::now();
    println!(
        "== e1000 split vs monolithic, and Figure 4 (per-crossing delay), on the 82540EM model"
    );
    println!(
        "   {} configurations, each in its own child process set up once; {sweeps} sweeps over them (forward, then backward),",
        configs.len()
    );
    println!("   one measured slice of traffic per configuration per sweep while the others idle");
    let mut workers = Vec::new();
    for config in &configs {
        match Worker::start(*config) {
            Ok(w) => workers.push(w),
            Err(e) => eprintln!("  {e}"),
        }
    }
    let mut setup: HashMap<&str, f64> = HashMap::new();
    workers.retain(|w| match w.expect("READY", Duration::from_secs(300)) {
        Ok(t) => {
            setup.insert(w.config.name, get(&t, "setup_secs"));
            true
        }
        Err(e) => {
            eprintln!("  {e}");
            false
        }
    });
    println!(
        "   set up in {:.1} s (probe, open, link; the 20 ms delay's takes longest)",
        started.elapsed().as_secs_f64()
    );
    let mut results: Vec<HashMap<&str, Trial>> = Vec::new();
    for sweep in 0..sweeps {
        let mut order: Vec<usize> = (0..workers.len()).collect();
        if sweep % 2 == 1 {
            order.reverse();
        }
        let mut this = HashMap::new();
        for i in order {
            let w = &mut workers[i];
            let window = w.config.window;
            let answer = w
                .send(&format!("slice {}", window.as_millis()))
                .and_then(|()| w.expect("SLICE", window + Duration::from_secs(90)));
            match answer {
                Ok(t) => {
                    println!(
                        "  sweep {} {:<12} {:>8.0} pkt/s {:>6.3} us/pkt {:>5.2} cores (others {:>4.2})  watchdogs {} stats {}{}",
                        sweep + 1,
                        w.config.name,
                        pps(&t),
                        cpu_per_pkt(&t),
                        cores(&t),
                        get(&t, "cpu_others") / get(&t, "secs"),
                        get(&t, "watchdogs"),
                        get(&t, "stats_queries"),
                        if get(&t, "settled") == 1.0 { "" } else { "  (frames unaccounted for!)" },
                    );
                    this.insert(w.config.name, t);
                }
                Err(e) => eprintln!("  {e}"),
            }
        }
        results.push(this);
    }
    let mut finals: Vec<(&str, Trial)> = Vec::new();
    for w in workers {
        let name = w.config.name;
        match w.finish() {
            Ok(t) => finals.push((name, t)),
            Err(e) => eprintln!("  {e}"),
        }
    }
    let elapsed = started.elapsed();

    println!();
    println!("== split vs monolithic (traffic both ways; pkt/s counts both directions; medians over {sweeps} sweeps)");
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>6} {:>6}",
        "config",
        "pkt/s",
        "tx pkt/s",
        "rx pkt/s",
        "us/pkt",
        "us/pkt*",
        "cores",
        "model",
        "u-half",
        "others",
        "wdog",
        "stats"
    );
    let row = |name: &str| {
        println!(
            "{:<12} {:>10.0} {:>10.0} {:>10.0} {:>9.3} {:>9.3} {:>7.2} {:>7.2} {:>7.3} {:>7.2} {:>6.0} {:>6.0}",
            name,
            med(&results, name, pps),
            med(&results, name, |t| get(t, "tx_frames") / get(t, "secs")),
            med(&results, name, |t| get(t, "rx_frames") / get(t, "secs")),
            med(&results, name, cpu_per_pkt),
            med(&results, name, cpu_per_pkt_no_model),
            med(&results, name, cores),
            med(&results, name, |t| get(t, "cpu_model") / get(t, "secs")),
            med(&results, name, |t| get(t, "cpu_uhalf") / get(t, "secs")),
            median(
                results
                    .iter()
                    .filter_map(|r| r.get(name))
                    .map(|t| get(t, "cpu_others") / get(t, "secs"))
                    .collect()
            ),
            min_of(&results, name, "watchdogs"),
            med(&results, name, |t| get(t, "stats_queries")),
        );
    };
    for name in ["mono_64B", "split_64B", "mono_1514B", "split_1514B"] {
        row(name);
    }
    println!("  us/pkt: CPU time per frame of both processes (the k-half process including the device model's thread, plus the u-half child);");
    println!("  us/pkt*: the same without the device model's thread; cores: CPU seconds per second of both processes; model, u-half: their share;");
    println!("  others: CPU (cores) the rest of the machine used during the slices (median over all); figures are medians over the slices with others < {QUIET} if there are 3, else over all");
    println!("  wdog: fewest watchdog runs completed inside a slice; stats: statistics queries completed inside a slice");
    println!("  {}", describe(&results, "split_64B", "mono_64B"));
    println!("  {}", describe(&results, "split_1514B", "mono_1514B"));
    let cpu_64 = ratio(&results, "split_64B", "mono_64B", cpu_per_pkt);
    let cpu_1514 = ratio(&results, "split_1514B", "mono_1514B", cpu_per_pkt);
    println!("ratio split/monolithic cpu_per_pkt_64B = {cpu_64:.3}");
    println!("ratio split/monolithic cpu_per_pkt_1514B = {cpu_1514:.3}");

    println!();
    println!("== Figure 4: injected per-crossing delay, 1514-byte frames both ways, split");
    let fig: Vec<figure::Point> = DELAYS
        .iter()
        .map(|(name, delay)| figure::Point {
            delay: *delay,
            pps: med(&results, name, pps),
            pps_ratio: ratio(&results, name, "delay_0", pps),
            cpu_per_pkt: med(&results, name, cpu_per_pkt),
            cpu_ratio: ratio(&results, name, "delay_0", cpu_per_pkt),
            cores: med(&results, name, cores),
            uhalf_cores: med(&results, name, |t| get(t, "cpu_uhalf") / get(t, "secs")),
            watchdogs_min: min_of(&results, name, "watchdogs"),
            stats_queries: med(&results, name, |t| get(t, "stats_queries")),
            setup_secs: setup.get(name).copied().unwrap_or(f64::NAN),
            others: median(
                results
                    .iter()
                    .filter_map(|r| r.get(name))
                    .map(|t| get(t, "cpu_others") / get(t, "secs"))
                    .collect(),
            ),
        })
        .collect();
    let table = figure::table(&fig, med(&results, "mono_1514B", pps));
    print!("{table}");
    println!("  {}", describe(&results, "delay_20ms", "delay_0"));

    println!();
    println!(
        "== frame accounting over the {} processes' lives (all slices, warm-ups included)",
        finals.len()
    );
    let total = |key: &str| {
        finals
            .iter()
            .map(|(_, t)| get(t, key))
            .filter(|x| x.is_finite())
            .sum::<f64>()
    };
    let accepted = total("tx_accepted");
    let peer_good = total("tx_peer_good");
    println!(
        "  transmit: {accepted:.0} frames accepted by the driver, {peer_good:.0} received with a good FCS by the peer ({:.0} missing), {:.0} checked in order and byte for byte, {:.0} bad, {:.0} unchecked (the peer's recording overflowed), {:.0} send errors",
        accepted - peer_good,
        total("tx_checked"),
        total("tx_bad"),
        total("tx_unrecorded"),
        total("tx_errors"),
    );
    let rx_sent = total("rx_sent");
    println!(
        "  receive: {rx_sent:.0} frames sent by the peer, {:.0} received in order and byte for byte, {:.0} missing, {:.0} bad",
        total("rx_checked"),
        rx_sent - total("rx_checked"),
        total("rx_bad"),
    );
    let unsettled = sum_of(&results, "settled");
    println!(
        "  user halves: {:.0} restarts, {:.0} hangs, {:.0} statistics queries failed, {} of {} first user halves still running at the end; {} slices, {:.0} ended with frames unaccounted for",
        total("restarts"),
        total("hangs"),
        total("stats_errors"),
        finals.iter().filter(|(_, t)| get(t, "uhalf_alive") == 1.0).count(),
        finals.iter().filter(|(_, t)| get(t, "split") == 1.0).count(),
        results.iter().map(HashMap::len).sum::<usize>(),
        results.iter().map(HashMap::len).sum::<usize>() as f64 - unsettled,
    );
    for (name, t) in &finals {
        if get(t, "driver_resets") != 0.0 || get(t, "driver_up") != 1.0 {
            println!(
                "  WARNING: {name}: the driver reset {:.0} times ({:.0} transmit hangs detected) and is {} at the end",
                get(t, "driver_resets"),
                get(t, "driver_tx_timeouts"),
                if get(t, "driver_up") == 1.0 { "up" } else { "DOWN" }
            );
        }
    }
    let no_watchdog: Vec<&str> = DELAYS
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| min_of(&results, n, "watchdogs") < 1.0)
        .collect();
    if !no_watchdog.is_empty() {
        println!(
            "  WARNING: a slice of {no_watchdog:?} completed no watchdog run inside its window"
        );
    }
    println!("  bench time {:.0} s", elapsed.as_secs_f64());

    if !quick {
        let command = "cargo bench -p e1000";
        // A benchmark run does not dirty the checkout: docs/ only when asked.
        let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = if update_docs {
            root.join("docs")
        } else {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), std::path::PathBuf::from)
                .join("bench")
        };
        match figure::write_docs(
            &dir,
            &fig,
            &table,
            command,
            elapsed,
            sweeps,
            &describe(&results, "delay_20ms", "delay_0"),
        ) {
            Ok(paths) => println!("  wrote {paths}"),
            Err(e) => eprintln!("  could not write the Figure 4 docs: {e}"),
        }
    }

    println!();
    println!(
        "ratio split/monolithic pps_64B = {:.3}",
        ratio(&results, "split_64B", "mono_64B", pps)
    );
    println!(
        "ratio split/monolithic pps_1514B = {:.3}",
        ratio(&results, "split_1514B", "mono_1514B", pps)
    );
    println!(
        "ratio delay_20ms/delay_0 pps_1514B = {:.3}",
        ratio(&results, "delay_20ms", "delay_0", pps)
    );
    ExitCode::SUCCESS
}
