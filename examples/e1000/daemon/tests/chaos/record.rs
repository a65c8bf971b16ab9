//! The record of runs (`--record docs/chaos-runs.md`) and the soak's length.

use std::path::Path;
use std::time::Duration;

use super::{Options, FRAMES_PER_STREAM};

/// One recorded run, as a row of the record's table.
pub(crate) struct Recorded {
    pub(crate) faults: u64,
    pub(crate) survived: u64,
    pub(crate) lost: u64,
    pub(crate) duplicated: u64,
    pub(crate) counters_back: u64,
    pub(crate) config_div: u64,
    pub(crate) stalls: u64,
    pub(crate) secs: f64,
}

/// The campaign's version, recorded with each run: it changes when a fix changes what a
/// run can find, so that the totals of the runs since a fix are not mixed with those
/// before it.
///
/// * 1: the first campaign (runs that found the false transmit hang and the streams
///   ended while their frames were still in flight).
/// * 2: the watchdog measures transmit progress by packets reclaimed (no false hang from
///   a ring gone round); a ring resize never turns the receiver off while the packet
///   buffer holds frames (RDFPC); a stream ends when its frames stop moving, not at a
///   fixed deadline.
/// * 3: the supervisor's restart window counts the time user halves ran (a crash loop's
///   young-death backoff no longer keeps it from degrading: the crash-loop rounds that
///   failed "not degraded within 30 s"), a user half's uptime starts with its hello, and
///   a garbled heartbeat ping is no hang (the user half killed under the checks after a
///   garbage fault); the daemon runs with 15 restarts within 100 ms of running time
///   (was 6, or 30 in a soak, within 1 s of wall time) and a 2 ms stable uptime (was 5),
///   so ordinary rounds no longer degrade it and a crash loop takes 16 quick kills.
/// * 4: the supervisor learns of a death from the user half's death word (before the
///   kernel has freed its memory), and every signal to a user half goes through its pidfd
///   (the hang fault, the stuck-holder hook, the crash loop's kills from outside), never
///   through a pid that another process may have been given since (pid_max is 32768
///   here, and a run turns pids over within a minute).
/// * 5: an activated warm standby that does not say hello within a heartbeat timeout of
///   time it could run is replaced by a fresh start (a stopped standby held every upcall
///   for the 10 s handshake timeout: the daemon froze), and the `hang-standby` fault
///   makes that happen on purpose.
pub(crate) const CAMPAIGN_VERSION: u32 = 5;

const RECORD_HEADER: &str = "# e1000d chaos campaign: recorded runs

Appended by `cargo test -p e1000d --test chaos -- --record docs/chaos-runs.md` (with
`--faults N` or `--soak DURATION`): one row per run, the totals below recomputed from the
rows on each append, for each version of the campaign (the `CAMPAIGN_VERSION` in
`examples/e1000/daemon/tests/chaos/record.rs` says what each changed) and in all. Do not
edit by hand.

| date (UTC) | campaign | run | seed | faults | survived | frames lost | duplicated | counters backwards | config divergences | hot-path stalls over 10ms | seconds | faults/s |
|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
";

/// Columns of a row (between the outer bars) before the campaign version was recorded.
const VERSION_1_COLUMNS: usize = 12;

/// A recorded row in the current layout: rows from before the campaign column get version
/// 1 (they are all version 1's).
fn with_version(row: &str) -> String {
    let cols: Vec<&str> = row
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    if cols.len() != VERSION_1_COLUMNS {
        return row.to_string();
    }
    let mut out = vec![cols[0], "1"];
    out.extend(&cols[1..]);
    format!("| {} |", out.join(" | "))
}

/// The numbers of a row: its campaign version, and faults, survived, lost, duplicated,
/// counters backwards, divergences, stalls, seconds.
fn numbers(row: &str) -> Option<(u32, [f64; 8])> {
    let cols: Vec<&str> = row
        .trim()
        .trim_matches('|')
        .split('|')
        .map(str::trim)
        .collect();
    let version = cols.get(1)?.parse().ok()?;
    let mut n = [0f64; 8];
    for (i, v) in n.iter_mut().enumerate() {
        *v = cols.get(4 + i)?.parse().ok()?;
    }
    Some((version, n))
}

/// The totals line of `rows` (named `what`).
fn totals(what: &str, rows: &[[f64; 8]]) -> String {
    let mut sums = [0f64; 8];
    for r in rows {
        for (s, v) in sums.iter_mut().zip(r) {
            *s += v;
        }
    }
    let [faults, survived, lost, dup, back, div, stalls, secs] = sums;
    format!(
        "**{what}:** {} runs, {faults:.0} faults, {survived:.0} survived, frames lost {lost:.0}, \
         duplicated {dup:.0}, counters backwards {back:.0}, config divergences {div:.0}, \
         hot-path stalls over 10ms {stalls:.0}; {:.1} h of campaign at {:.2} faults/s overall.\n",
        rows.len(),
        secs / 3600.0,
        faults / secs.max(1e-9)
    )
}

/// `YYYY-MM-DD HH:MM` (UTC) of now.
fn utc_date_time() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()[..16]
        .replace('T', " ")
}

/// Appends `run` to the record at `path` (created if missing) and rewrites its totals.
pub(crate) fn record(path: &Path, opts: &Options, run: &Recorded) -> Result<(), String> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut rows: Vec<String> = old
        .lines()
        .filter(|l| l.starts_with("| 2"))
        .map(with_version)
        .collect();
    let kind = match opts.soak {
        Some(d) => format!("--soak {}s", d.as_secs()),
        None => format!("--faults {}", opts.faults),
    } + &if opts.frames == FRAMES_PER_STREAM {
        String::new()
    } else {
        format!(" --frames {}", opts.frames)
    } + &if opts.kinds.is_empty() {
        String::new()
    } else {
        format!(" --kinds {}", opts.kinds.join(","))
    };
    rows.push(format!(
        "| {} | {CAMPAIGN_VERSION} | {kind} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.2} |",
        utc_date_time(),
        opts.seed,
        run.faults,
        run.survived,
        run.lost,
        run.duplicated,
        run.counters_back,
        run.config_div,
        run.stalls,
        run.secs,
        run.faults as f64 / run.secs.max(1e-9),
    ));
    let parsed: Vec<(u32, [f64; 8])> = rows.iter().filter_map(|r| numbers(r)).collect();
    if parsed.len() != rows.len() {
        return Err(format!(
            "{}: {} of its {} rows do not parse as runs",
            path.display(),
            rows.len() - parsed.len(),
            rows.len()
        ));
    }
    let mut text = String::from(RECORD_HEADER);
    for row in &rows {
        text.push_str(row);
        text.push('\n');
    }
    let mut versions: Vec<u32> = parsed.iter().map(|(v, _)| *v).collect();
    versions.sort_unstable();
    versions.dedup();
    text.push('\n');
    for v in versions {
        let of: Vec<[f64; 8]> = parsed
            .iter()
            .filter(|(w, _)| *w == v)
            .map(|(_, n)| *n)
            .collect();
        text.push_str(&totals(&format!("Campaign {v}"), &of));
        text.push('\n');
    }
    let all: Vec<[f64; 8]> = parsed.iter().map(|(_, n)| *n).collect();
    text.push_str(&totals("All runs", &all));
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// A soak's length: `30m`, `8h`, or what e1000d's durations take (`90s`, at most an
/// hour); at most a week.
pub(crate) fn parse_soak(v: &str) -> Result<Duration, String> {
    let v = v.trim();
    let (num, scale) = if let Some(h) = v.strip_suffix('h') {
        (h, 3600.0)
    } else if let Some(m) = v.strip_suffix('m').filter(|_| !v.ends_with("ms")) {
        (m, 60.0)
    } else {
        return e1000d::format::parse_duration(v);
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{v:?}: expected a number and a unit, like 30m, 8h or 90s"))?;
    let secs = n * scale;
    if !secs.is_finite() || !(0.0..=7.0 * 86_400.0).contains(&secs) {
        return Err(format!("{v:?}: give 0 to 168 hours"));
    }
    Ok(Duration::from_secs_f64(secs))
}
