//! Figure 4: the table (printed and written as `figure4.md`) and the plot (`figure4.svg`),
//! under `target/bench/` by default, into `docs/` with `--update-docs`. Every number in the
//! prose is computed from the points (the plot is drawn by hand: two line series on a log axis are a few dozen
//! SVG elements, and a plotting crate would add dependencies to the shared workspace
//! manifest and lock file for it).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

/// One delay's medians.
pub struct Point {
    pub delay: Duration,
    pub pps: f64,
    pub pps_ratio: f64,
    pub cpu_per_pkt: f64,
    pub cpu_ratio: f64,
    pub cores: f64,
    pub uhalf_cores: f64,
    pub watchdogs_min: f64,
    pub stats_queries: f64,
    pub setup_secs: f64,
    /// CPU (cores) the rest of the machine used during this delay's slices (median).
    pub others: f64,
}

/// The paper's result at 20 ms: throughput lost and CPU gained.
const PAPER_20MS_PPS: f64 = 1.0 - 0.063;
const PAPER_20MS_CPU: f64 = 1.26;

fn delay_label(d: Duration) -> String {
    if d.is_zero() {
        "0".into()
    } else if d < Duration::from_millis(1) {
        format!("{} us", d.as_micros())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The Figure 4 table in markdown (also readable as plain text).
pub fn table(points: &[Point], mono_pps: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| delay per crossing | pkt/s (both ways) | vs delay 0 | CPU us/pkt | vs delay 0 | cores busy | u-half cores | watchdog runs per slice (fewest) | stats queries per slice | others' CPU (cores) | setup s |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.4} | {:.3} | {:.3} | {:.2} | {:.4} | {:.0} | {:.0} | {:.2} | {:.1} |",
            delay_label(p.delay),
            p.pps,
            p.pps_ratio,
            p.cpu_per_pkt,
            p.cpu_ratio,
            p.cores,
            p.uhalf_cores,
            p.watchdogs_min,
            p.stats_queries,
            p.others,
            p.setup_secs,
        );
    }
    let _ = writeln!(
        s,
        "| (monolithic, for reference) | {mono_pps:.0} | | | | | | | | | |"
    );
    s
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_string()
}

/// The delay (not delay 0 itself, whose ratio is 1 by definition) with the lowest median
/// packet-rate ratio, if any point has a finite ratio.
pub fn worst(points: &[Point]) -> Option<&Point> {
    points
        .iter()
        .filter(|p| !p.delay.is_zero() && p.pps_ratio.is_finite())
        .min_by(|a, b| a.pps_ratio.total_cmp(&b.pps_ratio))
}

/// The result paragraph, from the numbers.
fn result(points: &[Point], others: f64) -> String {
    let Some(worst) = worst(points) else {
        return "**Result.** No delay other than 0 has a finite packet-rate ratio in this run: \
                nothing to compare."
            .into();
    };
    let Some(last) = points.last() else {
        return String::new();
    };
    let (ratio, at) = (worst.pps_ratio, delay_label(worst.delay));
    let last_label = delay_label(last.delay);
    let paper_lost = (1.0 - PAPER_20MS_PPS) * 100.0;
    let paper_cpu = (PAPER_20MS_CPU - 1.0) * 100.0;
    let head = format!(
        "**Result.** The worst delay is {at}: its median packet rate is {ratio:.4}x that of \
         delay 0 (goal: above 0.99 at every delay); at {last_label} per crossing the rate is \
         {:.4}x and CPU per packet {:.3}x. The paper's driver lost {paper_lost:.1}% \
         throughput and gained {paper_cpu:.0}% CPU at 20 ms because its data path waited on \
         the user half; here the kernel half's interrupt, poll, transmit and receive paths \
         never cross (a slow user half slows only the watchdog and the statistics queries: \
         at {last_label}, {:.0} watchdog runs and {:.0} statistics queries in the slice that \
         had fewest, against {:.0} and {:.0} at delay 0).",
        last.pps_ratio,
        last.cpu_ratio,
        last.watchdogs_min,
        last.stats_queries,
        points.first().map_or(f64::NAN, |p| p.watchdogs_min),
        points.first().map_or(f64::NAN, |p| p.stats_queries),
    );
    if ratio >= 0.99 {
        format!("{head} The measurement agrees: no delay costs 1%.")
    } else {
        format!(
            "{head} **The goal is not met in this run.** Read it against the spread: the \
             per-sweep ratios are listed above the result, and the rest of the machine used \
             {others:.2} of the 2 cores during the slices (median), taking CPU from whichever \
             configuration was running. Where the per-sweep ratios straddle 1, this run cannot \
             tell a cost of a few percent from the noise; a run on a quiet machine can."
        )
    }
}

/// Writes `figure4.md` and `figure4.svg` into `dir`; returns their paths.
pub fn write_docs(
    dir: &std::path::Path,
    points: &[Point],
    table: &str,
    command: &str,
    elapsed: Duration,
    sweeps: usize,
    spread: &str,
) -> Result<String, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let md_path = dir.join("figure4.md");
    let svg_path = dir.join("figure4.svg");
    // The fastest point, for the bottleneck paragraph.
    let (top_pps, top_cores) = points
        .iter()
        .filter(|p| p.pps.is_finite())
        .max_by(|a, b| a.pps.total_cmp(&b.pps))
        .map_or((f64::NAN, f64::NAN), |p| (p.pps, p.cores));
    let mut md = String::new();
    let _ = write!(
        md,
        "# Figure 4: throughput and CPU with a delay injected on every crossing

Measured with `{command}` on {date} ({sweeps} sweeps, {secs:.0} s in all), on the
82540EM device model (`examples/e1000/sim`), on a shared 2-core VM. Generated by
`examples/e1000/benches/split/`; do not edit by hand.

![Figure 4](figure4.svg)

{table}
Ratios are medians of per-sweep ratios (each sweep measures every delay once, in
alternating order, 20 ms next to 0); {spread}.

{result}

**What runs.** Each delay is a child process of the bench, set up once: the device model, the
driver split in two (the kernel half in that process, the user half in a supervised,
sandboxed child process reached over shared-memory LRPC wrapped by the `delay`
transport), the real 2-second watchdog (`Options::default()`), and one statistics query
per second (`Netdev::with_adapter(e1000::stats::values)`, an upcall). Traffic runs both
ways at once with 1514-byte frames (without FCS): a thread transmits numbered frames to
the simulated peer as fast as the driver accepts them (`Netdev::send`: the kernel half's
transmit path), and the peer streams numbered frames to the NIC as fast as its receive
FIFO takes them (the kernel half's interrupt, poll and receive paths). Every frame is
checked, in order and byte for byte, on arrival at either end; the bench prints the
accounting of lost and bad frames. The processes are measured in sweeps, one at a time:
each slice warms up for 0.3 s, then measures a {window}-second window ({periods}
watchdog periods; the *watchdog runs* column counts runs completed inside each slice,
from the kernel endpoint's call statistics), then stops the traffic and waits until
every frame is accounted for. The other processes idle meanwhile: their watchdogs and
statistics queries keep running, and each keeps transmitting a trickle of ~1,000
frames/s so that its adaptive interrupt moderation (which the kernel half's poll path sets
from each round's traffic) stays at its loaded setting and a slice does not start from the
idle one (a few hundredths of a core each).

**What is measured.** *pkt/s*: frames that reached the peer plus frames received and
checked, per second of the window. *CPU us/pkt* and *cores busy*: CPU time (user +
system, from `/proc/<pid>/stat`) of both processes over the window, per frame and per
second. The kernel-half process's figure includes **everything in it**: the device
model's thread (which does all the DMA and is by far the largest share), the driver's
interrupt and service threads, the bench's transmit, checking and statistics threads,
and the supervisor; *u-half cores* is the user-half child alone. *Others' CPU* is what
the rest of the machine used during the slices (from `/proc/stat`): this is a shared VM,
and when other work takes CPU, the bench's threads get less and its packet rate drops
with them. Slices during which others used 0.3 core or more are set aside when at least
three quiet ones remain, for the figures and for the ratios (per sweep, both slices).

**The delay.** `SupervisorConfig.component.crossing_delay` wraps the channel in the
`delay` transport, which spends the delay (spinning below 200 us, sleeping above) before
every crossing the kernel half makes: publishing an upcall and answering each nested
downcall. The bench scales two supervisor limits with the delay, leaving the defaults
alone: the call timeout (5 s + 400 x delay) and the heartbeat's ping timeout (250 ms +
10 x delay), since at 20 ms a watchdog run (about 60 crossings) takes over a second and
a ping at least 20 ms; with the defaults the supervisor could declare a merely slow user
half hung.

**The bottleneck.** The device model is a software NIC whose thread moves every
descriptor and byte; it shares the two cores with the driver's interrupt thread, the
bench's transmit and checking threads and everything else on the VM. No single thread
saturates a core; the packet rate is bounded by the CPU the process gets: the fastest
point of this run moved {top_pps:.0} 1514-byte frames/s on {top_cores:.2} cores, and when
other work takes CPU (the *others' CPU* column) the rate falls with the process's share,
whichever configuration runs.
Absolute rates are therefore the model's, not a real 82540EM's (which tops out at
~81,000 1518-byte frames/s per direction on the wire); what the figure can show is the
difference the delay makes, measured in the same run, and only to within the spread of
the per-sweep ratios.
",
        date = today(),
        secs = elapsed.as_secs_f64(),
        result = result(points, {
            let mut o: Vec<f64> = points.iter().map(|p| p.others).collect();
            o.sort_by(f64::total_cmp);
            o.get(o.len() / 2).copied().unwrap_or(f64::NAN)
        }),
        window = super::DELAY_WINDOW.as_secs(),
        periods = super::DELAY_WINDOW.as_secs_f64() / 2.0,
    );
    std::fs::write(&md_path, md).map_err(|e| format!("{}: {e}", md_path.display()))?;
    std::fs::write(&svg_path, svg(points)).map_err(|e| format!("{}: {e}", svg_path.display()))?;
    Ok(format!("{} and {}", md_path.display(), svg_path.display()))
}

/// The plot: packet rate and CPU per packet relative to delay 0, against the delay on a
/// log axis (delay 0 drawn a decade left of 1 us), with the paper's 20 ms result.
pub fn svg(points: &[Point]) -> String {
    let (w, h) = (760.0, 440.0);
    let (left, right, top, bottom) = (80.0, 200.0, 50.0, 70.0);
    let (x0, x1) = (-7.3f64, -1.4f64);
    let mut ys: Vec<f64> = points
        .iter()
        .flat_map(|p| [p.pps_ratio, p.cpu_ratio])
        .filter(|v| v.is_finite())
        .collect();
    ys.extend([0.9, PAPER_20MS_PPS, PAPER_20MS_CPU, 1.3]);
    let y0 = (ys.iter().copied().fold(f64::INFINITY, f64::min) * 20.0).floor() / 20.0;
    let y1 = (ys.iter().copied().fold(f64::NEG_INFINITY, f64::max) * 20.0).ceil() / 20.0;
    let px = |d: Duration| {
        let lx = if d.is_zero() {
            -7.0
        } else {
            d.as_secs_f64().log10()
        };
        left + (lx - x0) / (x1 - x0) * (w - left - right)
    };
    let py = |v: f64| top + (y1 - v) / (y1 - y0) * (h - top - bottom);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="28" text-anchor="middle" font-size="16">Figure 4: e1000 split driver, delay injected per crossing (relative to delay 0)</text>"#,
        w / 2.0
    );
    // Grid and y labels.
    let mut v = y0;
    while v <= y1 + 1e-9 {
        let y = py(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            w - right,
            left - 8.0,
            y + 4.0
        );
        v += 0.05;
    }
    // X ticks.
    for p in points {
        let x = px(p.delay);
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            h - bottom,
            h - bottom + 20.0,
            delay_label(p.delay)
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">delay per crossing (log scale; 0 at left)</text>"#,
        left + (w - left - right) / 2.0,
        h - 22.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">ratio to delay 0</text>"#,
        top + (h - top - bottom) / 2.0
    );
    // Goal line.
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#2a7" stroke-dasharray="6 4"/>"##,
        w - right,
        y = py(0.99)
    );
    // Axes.
    let _ = writeln!(
        s,
        r##"<rect x="{left}" y="{top}" width="{:.1}" height="{:.1}" fill="none" stroke="#333"/>"##,
        w - left - right,
        h - top - bottom
    );
    for (color, get, marker) in [
        (
            "#1f5fbf",
            (|p: &Point| p.pps_ratio) as fn(&Point) -> f64,
            "circle",
        ),
        ("#d9730d", |p: &Point| p.cpu_ratio, "rect"),
    ] {
        let pts: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| get(p).is_finite())
            .map(|p| (px(p.delay), py(get(p))))
            .collect();
        let path: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for (x, y) in pts {
            if marker == "circle" {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{color}"/>"#
                );
            } else {
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{color}"/>"#,
                    x - 4.0,
                    y - 4.0
                );
            }
        }
    }
    // The paper's 20 ms result.
    let x20 = px(Duration::from_millis(20));
    let _ = writeln!(
        s,
        r##"<circle cx="{x20:.1}" cy="{:.1}" r="6" fill="none" stroke="#1f5fbf" stroke-width="2"/><rect x="{:.1}" y="{:.1}" width="12" height="12" fill="none" stroke="#d9730d" stroke-width="2"/>"##,
        py(PAPER_20MS_PPS),
        x20 - 6.0,
        py(PAPER_20MS_CPU) - 6.0
    );
    // Legend.
    let lx = w - right + 16.0;
    let legend = [
        (
            r##"<circle cx="{x}" cy="{y}" r="4" fill="#1f5fbf"/>"##,
            "packet rate",
        ),
        (
            r##"<rect x="{x0}" y="{y0}" width="8" height="8" fill="#d9730d"/>"##,
            "CPU per packet",
        ),
        (
            r##"<circle cx="{x}" cy="{y}" r="6" fill="none" stroke="#1f5fbf" stroke-width="2"/>"##,
            "paper: rate",
        ),
        (
            r##"<rect x="{x6}" y="{y6}" width="12" height="12" fill="none" stroke="#d9730d" stroke-width="2"/>"##,
            "paper: CPU",
        ),
        (
            r##"<line x1="{x6}" y1="{y}" x2="{xe}" y2="{y}" stroke="#2a7" stroke-dasharray="6 4"/>"##,
            "goal: rate 0.99",
        ),
    ];
    for (i, (shape, label)) in legend.iter().enumerate() {
        let y = top + 14.0 + 24.0 * i as f64;
        let x = lx + 6.0;
        let shape = shape
            .replace("{x0}", &format!("{:.1}", x - 4.0))
            .replace("{y0}", &format!("{:.1}", y - 4.0))
            .replace("{x6}", &format!("{:.1}", x - 6.0))
            .replace("{y6}", &format!("{:.1}", y - 6.0))
            .replace("{xe}", &format!("{:.1}", x + 6.0))
            .replace("{x}", &format!("{x:.1}"))
            .replace("{y}", &format!("{y:.1}"));
        let _ = writeln!(
            s,
            r#"{shape}<text x="{:.1}" y="{:.1}">{label}</text>"#,
            lx + 20.0,
            y + 4.0
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}
