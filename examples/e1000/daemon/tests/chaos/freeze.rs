//! The freeze watch: evidence of a daemon that stops answering, taken while it is stuck.
//!
//! Campaign 3 once saw the whole daemon stop for 49 s under a stopped user half (the
//! heartbeat's ping, the transmit path and a control reply all stuck, all coming unstuck at
//! the same instant), and nothing recorded where its threads were. This thread asks the
//! daemon for its status once a second; when an answer takes longer than [`STUCK`], it
//! records, for the daemon and each of its children (the user halves), every thread's
//! name, state, wait channel, system call and kernel stack, once per freeze, and prints
//! it at once. The campaign's summary counts them; they are evidence, not a verdict (a
//! freeze that matters fails the requests that meet it, or the round's checks).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use e1000d::client::request;
use e1000d::protocol::Request;

/// A status answer slower than this is a freeze (the slowest reply of a 10,000-fault run
/// at a load of 9-14 on two cores took 3.1 s).
const STUCK: Duration = Duration::from_secs(5);

/// Watches the daemon `pid` on `socket` until `stop` (unpark its thread when setting it);
/// returns the dumps it took.
pub(crate) fn watch(pid: u32, socket: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut dumps = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let (tx, rx) = std::sync::mpsc::channel();
            let asker = {
                let socket = socket.clone();
                std::thread::spawn(move || {
                    let _ = tx.send(request(&socket, &Request::Status, Duration::from_secs(60)));
                })
            };
            // A freeze is dumped while it lasts, then the answer is still awaited (one
            // freeze, one dump).
            if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(STUCK) {
                let dump = dump(pid);
                eprintln!("chaos: e1000d has not answered for {STUCK:?}:\n{dump}");
                dumps.push(dump);
                let _ = rx.recv();
            }
            let _ = asker.join();
            // The watch's own pace: one question a second (the campaign unparks it when it
            // sets `stop`, so its end does not wait for the next question).
            std::thread::park_timeout(Duration::from_secs(1));
        }
        dumps
    })
}

/// Every thread of `pid` and of its children: name, state, wait channel, system call and
/// kernel stack (the last two need root; what cannot be read is left out).
fn dump(pid: u32) -> String {
    let mut out = format!("freeze dump at {:?}\n", std::time::SystemTime::now());
    let mut processes = vec![pid];
    processes.extend(children(pid));
    for p in processes {
        out += &format!("== process {p} ({})\n", read(&format!("/proc/{p}/comm")));
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            out += "   (gone)\n";
            continue;
        };
        for task in tasks.flatten() {
            let t = task.path();
            let state = read_in(&t, "stat")
                .rsplit_once(") ")
                .and_then(|(_, rest)| rest.chars().next())
                .unwrap_or('?');
            out += &format!(
                "-- {} {} state {state} wchan {} syscall {}\n",
                task.file_name().to_string_lossy(),
                read_in(&t, "comm"),
                read_in(&t, "wchan"),
                read_in(&t, "syscall"),
            );
            for line in read_in(&t, "stack").lines() {
                out += &format!("     {line}\n");
            }
        }
    }
    out
}

/// The children of `pid` (from each thread's `children` list).
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .flat_map(|t| {
            read_in(&t.path(), "children")
                .split_whitespace()
                .filter_map(|c| c.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn read_in(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
