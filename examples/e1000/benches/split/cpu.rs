//! CPU time from `/proc`: the whole process, each of its threads, and another process
//! (the user half). Figures are in clock ticks of `USER_HZ` = 100 per second (the value
//! the kernel exports to user space on every mainstream architecture), so they are exact
//! to 10 ms; a measurement window of several seconds on two cores keeps that under 0.5%.

use std::fs;

/// Ticks per second of the `utime`/`stime` fields.
pub const TICKS_PER_SEC: f64 = 100.0;

/// `comm` and `utime + stime` of one `/proc/.../stat` line.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    // After ")": state(3) ppid(4) ... utime(14) stime(15), i.e. indices 11 and 12.
    let mut fields = text.get(close + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU ticks of process `pid` (all its threads, live and exited), or `None` if it is gone.
pub fn process_ticks(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text).map(|(_, t)| t)
}

/// CPU ticks of this process (all its threads, live and exited).
pub fn self_ticks() -> u64 {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_stat(&t))
        .map_or(0, |(_, t)| t)
}

/// CPU ticks of this process's live threads whose name starts with `prefix`.
pub fn threads_ticks(prefix: &str) -> u64 {
    let Ok(dir) = fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| parse_stat(&t))
        .filter(|(comm, _)| comm.starts_with(prefix))
        .map(|(_, t)| t)
        .sum()
}

/// CPU ticks the whole machine spent busy (all CPUs: user, nice, system, irq, softirq,
/// and steal, i.e. time the hypervisor gave to other guests), from `/proc/stat`.
pub fn machine_busy_ticks() -> u64 {
    let Ok(text) = fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal [guest guest_nice, already in user]
    [0usize, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| v.get(i).copied().unwrap_or(0))
        .sum()
}
