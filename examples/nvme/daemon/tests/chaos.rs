//! Chaos against nvmed under writes (issue 20: "the same campaign shape" for the NVMe
//! microdriver).
//!
//! One nvmed (split, on the controller model) for the whole run, its namespace served over
//! NBD on a socket pair with the daemon's own NBD server (`nbd::serve`, as it serves
//! `/dev/nbdN` for the kernel); this test is the NBD client, so no kernel module is
//! needed. The first MiB of the namespace is [`SLOTS`] slots of 4 KiB, each written as a
//! self-describing block: its slot number, a generation, bytes derived from both, and a
//! checksum over all of it. Each round sends a batch of writes (new generations of
//! distinct slots, pipelined), and while they are in flight a fault drawn at random hits
//! the user half or the controller:
//!
//! * `Crash`: the user half aborts inside an upcall; `Kill`: SIGKILL from outside;
//!   `Hang`: SIGSTOP (the heartbeat finds it hung); `Garbage`: a garbage reply and the
//!   channel scribbled over;
//! * `Reset`: a controller reset (queues re-created);
//! * `CrashDuringReset`, `CrashDuringIdentify`: the user half crashes while a controller
//!   reset or an Identify (both upcalls) runs.
//!
//! After each fault: every write of the batch acknowledged exactly once and without
//! error, and all [`SLOTS`] slots read back through NBD with a valid checksum and the
//! generation of their last acknowledged write (a lost write shows as an old generation, a
//! torn one as a bad checksum); the daemon answers its control socket.
//!
//! `cargo test -p nvmed --test chaos` runs [`DEFAULT_FAULTS`]; `-- --faults N` and
//! `-- --seed S` run others. It prints
//! `nvme chaos: faults N, survived N, writes lost 0, ...`.

#[path = "../../../../microdriver-rt/tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nvmed::daemon::{Daemon, DaemonConfig};
use nvmed::nbd::{self, cmd, NbdStats, REPLY_MAGIC, REQUEST_MAGIC};
use nvmed::protocol::{Fault, Reply, Request};
use support::Rng;

/// Faults a plain `cargo test` runs (CI).
const DEFAULT_FAULTS: u64 = 200;
/// Slots of [`SLOT`] bytes at the start of the namespace.
const SLOTS: u64 = 256;
/// A slot's size.
const SLOT: usize = 4096;
/// Writes in flight during each fault.
const BATCH: usize = 16;
/// Slots one verifying read covers.
const READ_SLOTS: u64 = 16;
/// Every NBD reply and control request must come within this.
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Crash,
    Kill,
    Hang,
    Garbage,
    Reset,
    CrashDuringReset,
    CrashDuringIdentify,
}

const KINDS: [Kind; 7] = [
    Kind::Crash,
    Kind::Kill,
    Kind::Hang,
    Kind::Garbage,
    Kind::Reset,
    Kind::CrashDuringReset,
    Kind::CrashDuringIdentify,
];

fn main() {
    microdriver_rt::run_user_half_if_requested();
    support::run_single("chaos", &["--faults=", "--seed="], campaign);
}

/// The block slot `slot` holds at generation `generation`: header, derived bytes, and an
/// FNV-1a checksum of everything before it in the last 8 bytes.
fn block(slot: u64, generation: u64) -> Vec<u8> {
    let mut b = Vec::with_capacity(SLOT);
    b.extend_from_slice(&slot.to_le_bytes());
    b.extend_from_slice(&generation.to_le_bytes());
    let mut x = (slot << 32 ^ generation) | 1;
    while b.len() < SLOT - 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.push(x as u8);
    }
    let sum = fnv(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

fn fnv(d: &[u8]) -> u64 {
    d.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What a read slot holds: (slot, generation) if its checksum is right.
fn decode(b: &[u8]) -> Option<(u64, u64)> {
    let (body, sum) = b.split_at(SLOT - 8);
    let sum = u64::from_le_bytes(sum.try_into().ok()?);
    (fnv(body) == sum).then(|| {
        let word = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().unwrap_or([0; 8]));
        (word(0), word(8))
    })
}

/// The NBD client (the kernel's side of the connection).
struct Client {
    sock: UnixStream,
    next_handle: u64,
}

/// An NBD request's bytes (a write carries `data`; a read, its length in `len`).
fn request_len(handle: u64, kind: u16, from: u64, len: u32, data: &[u8]) -> Vec<u8> {
    let mut h = Vec::with_capacity(28 + data.len());
    h.extend_from_slice(&REQUEST_MAGIC.to_be_bytes());
    h.extend_from_slice(&u32::from(kind).to_be_bytes());
    h.extend_from_slice(&handle.to_be_bytes());
    h.extend_from_slice(&from.to_be_bytes());
    h.extend_from_slice(&len.to_be_bytes());
    h.extend_from_slice(data);
    h
}

/// A write request's bytes.
fn request(handle: u64, kind: u16, from: u64, data: &[u8]) -> Vec<u8> {
    request_len(handle, kind, from, data.len() as u32, data)
}

impl Client {
    fn send(&mut self, kind: u16, from: u64, len: u32, data: &[u8]) -> u64 {
        self.next_handle += 1;
        let r = request_len(self.next_handle, kind, from, len, data);
        self.sock.write_all(&r).expect("sending an NBD request");
        self.next_handle
    }

    /// One reply: (handle, error, data); `lens` says how many data bytes a handle's reply
    /// carries (reads).
    fn reply(&mut self, lens: &HashMap<u64, usize>) -> (u64, u32, Vec<u8>) {
        let mut h = [0u8; 16];
        self.sock
            .read_exact(&mut h)
            .unwrap_or_else(|e| panic!("no NBD reply within {REPLY_TIMEOUT:?}: {e}"));
        let magic = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
        assert_eq!(magic, REPLY_MAGIC, "reply magic");
        let err = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let handle = u64::from_be_bytes([h[8], h[9], h[10], h[11], h[12], h[13], h[14], h[15]]);
        let n = if err == 0 {
            lens.get(&handle).copied().unwrap_or(0)
        } else {
            0
        };
        let mut data = vec![0u8; n];
        self.sock.read_exact(&mut data).expect("the read's data");
        (handle, err, data)
    }
}

fn call(sock: &Path, req: &Request) -> Result<String, String> {
    match nvmed::client::call(sock, req, REPLY_TIMEOUT) {
        Ok(Reply::Ok { text }) => Ok(text),
        Ok(Reply::Error { message }) => Err(message),
        Err(e) => panic!("{req:?}: no answer within {REPLY_TIMEOUT:?}: {e}"),
    }
}

/// The user half's pid as `status` shows it.
fn user_half_pid(sock: &Path) -> Option<i32> {
    let st = call(sock, &Request::Status).ok()?;
    let line = st.lines().find(|l| l.starts_with("user half: pid "))?;
    line["user half: pid ".len()..]
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Waits until a user half other than `old` answers (the status shows its pid).
fn wait_new_user_half(sock: &Path, old: i32) -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        match user_half_pid(sock) {
            Some(p) if p != old => return Ok(()),
            _ if Instant::now() > end => return Err("no new user half within 30 s".into()),
            // The daemon reports its user half only when asked: this is the polling
            // interval of that question.
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Injects `kind`; Ok once the driver says it is back.
fn inject(sock: &Path, kind: Kind) -> Result<(), String> {
    let crash_during = |req: Request| -> Result<(), String> {
        let racing = {
            let (sock, req) = (sock.to_path_buf(), req.clone());
            std::thread::spawn(move || call(&sock, &req))
        };
        let r = call(
            sock,
            &Request::Inject {
                fault: Fault::Crash,
            },
        );
        // The interrupted request may fail (the crossing died under it) or succeed (the
        // crash came before or after it): either way it must answer.
        let _ = racing.join().map_err(|_| format!("{req:?} panicked"))?;
        r.map(|_| ())
    };
    match kind {
        Kind::Crash => call(
            sock,
            &Request::Inject {
                fault: Fault::Crash,
            },
        )
        .map(|_| ()),
        Kind::Hang => call(sock, &Request::Inject { fault: Fault::Hang }).map(|_| ()),
        Kind::Garbage => call(
            sock,
            &Request::Inject {
                fault: Fault::Garbage,
            },
        )
        .map(|_| ()),
        Kind::Reset => call(sock, &Request::Reset).map(|_| ()),
        Kind::Kill => {
            let pid = user_half_pid(sock).ok_or("no user half to kill")?;
            // Through a pidfd, opened while `status` still names the pid: a user half it
            // names is not reaped yet, so the signal cannot reach a process that was given
            // the pid after the user half was reaped.
            let p = rustix::process::Pid::from_raw(pid).ok_or("bad pid")?;
            let fd = rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty())
                .map_err(|e| format!("pidfd_open {pid}: {e}"))?;
            if user_half_pid(sock) != Some(pid) {
                return Err(format!("user half {pid} was replaced before the kill"));
            }
            rustix::process::pidfd_send_signal(&fd, rustix::process::Signal::KILL)
                .map_err(|e| format!("kill {pid}: {e}"))?;
            wait_new_user_half(sock, pid)
        }
        Kind::CrashDuringReset => crash_during(Request::Reset),
        Kind::CrashDuringIdentify => crash_during(Request::IdCtrl),
    }
}

fn campaign() {
    let faults: u64 = support::flag_value("--faults")
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("--faults {v}: give a number"))
        })
        .unwrap_or(DEFAULT_FAULTS);
    let seed =
        support::seed_or_clock(support::flag_value("--seed").and_then(|v| v.parse().ok())) | 1;
    let mut rng = Rng(seed);
    eprintln!("nvme chaos: seed {seed} ({faults} faults)");
    let dir = std::env::temp_dir().join(format!("nvmed-chaos-{}", std::process::id()));
    let sock = dir.join("ctl.sock");
    // Faults come every few tens of milliseconds: a user half that lived that long died of
    // the fault, not of a crash loop (restarted at once), and a restart budget that the
    // campaign's crashes stay under, with a short revival backoff should they exceed it.
    let cfg = DaemonConfig {
        socket: sock.clone(),
        sim_blocks: 65_536,
        max_restarts: Some(30),
        restart_window: Some(Duration::from_secs(1)),
        revive_backoff: Some(Duration::from_millis(100)),
        revive_backoff_max: Some(Duration::from_secs(1)),
        stable_uptime: Some(Duration::from_millis(5)),
        ..DaemonConfig::default()
    };
    let d = Daemon::start(cfg, Arc::new(AtomicBool::new(false))).expect("nvmed starts");
    let dev = d.block_dev();
    let server = std::thread::spawn(move || d.serve());
    let (ours, theirs) = UnixStream::pair().expect("a socket pair");
    let nbd_server =
        std::thread::spawn(move || nbd::serve(dev, ours, Arc::new(NbdStats::default())));
    theirs
        .set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("a read timeout");
    let mut c = Client {
        sock: theirs,
        next_handle: 0,
    };

    // Every slot's generation as last acknowledged; generation 0 is written first.
    let mut gens = vec![0u64; SLOTS as usize];
    let mut lens = HashMap::new();
    for slot in 0..SLOTS {
        c.send(cmd::WRITE, slot * SLOT as u64, SLOT as u32, &block(slot, 0));
    }
    for _ in 0..SLOTS {
        let (h, err, _) = c.reply(&lens);
        assert_eq!(err, 0, "initial write {h}");
    }

    let started = Instant::now();
    let (mut survived, mut lost, mut dup_acks, mut failed, mut bad_sums) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut t_fault, mut t_check) = (Duration::ZERO, Duration::ZERO);
    let mut per_kind: HashMap<String, u64> = HashMap::new();
    let mut failures = Vec::new();
    let mut next_gen = 1u64;
    for n in 1..=faults {
        let kind = rng.pick(&KINDS);
        *per_kind.entry(format!("{kind:?}")).or_default() += 1;
        let mut problems = Vec::new();
        // A batch of writes to distinct slots, in flight while the fault hits.
        let mut slots: Vec<u64> = Vec::new();
        while slots.len() < BATCH {
            let s = rng.below(SLOTS);
            if !slots.contains(&s) {
                slots.push(s);
            }
        }
        // The writes go out from their own thread while the fault is injected, so that
        // they span it (before, during and after).
        let mut pending: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut requests = Vec::new();
        for &s in &slots {
            let g = next_gen;
            next_gen += 1;
            c.next_handle += 1;
            pending.insert(c.next_handle, (s, g));
            requests.push(request(
                c.next_handle,
                cmd::WRITE,
                s * SLOT as u64,
                &block(s, g),
            ));
        }
        let mut out = c.sock.try_clone().expect("the socket's write side");
        let writer = std::thread::spawn(move || {
            for r in requests {
                out.write_all(&r)?;
                std::thread::yield_now();
            }
            Ok::<(), std::io::Error>(())
        });
        let t = Instant::now();
        if let Err(e) = inject(&sock, kind) {
            problems.push(format!("{kind:?}: {e}"));
        }
        t_fault += t.elapsed();
        writer
            .join()
            .expect("the writer thread")
            .expect("sending the writes");
        let t = Instant::now();
        let mut acked = 0;
        while acked < BATCH {
            let (h, err, _) = c.reply(&lens);
            match pending.remove(&h) {
                Some((s, g)) if err == 0 => {
                    gens[s as usize] = g;
                    acked += 1;
                }
                Some((s, g)) => {
                    failed += 1;
                    acked += 1;
                    problems.push(format!(
                        "write of slot {s} generation {g} failed: error {err}"
                    ));
                    // Either generation may be on the medium now: read it to know.
                    gens[s as usize] = u64::MAX;
                }
                None => {
                    dup_acks += 1;
                    problems.push(format!("handle {h} acknowledged twice"));
                }
            }
        }
        // Every slot read back and checked.
        lens.clear();
        let mut reads = HashMap::new();
        for first in (0..SLOTS).step_by(READ_SLOTS as usize) {
            let len = (READ_SLOTS as usize * SLOT) as u32;
            let h = c.send(cmd::READ, first * SLOT as u64, len, &[]);
            lens.insert(h, len as usize);
            reads.insert(h, first);
        }
        for _ in 0..reads.len() {
            let (h, err, data) = c.reply(&lens);
            let Some(first) = reads.remove(&h) else {
                dup_acks += 1;
                problems.push(format!("read handle {h} answered twice"));
                continue;
            };
            if err != 0 {
                failed += 1;
                problems.push(format!("read of slots {first}.. failed: error {err}"));
                continue;
            }
            for (i, b) in data.chunks(SLOT).enumerate() {
                let slot = first + i as u64;
                let want = gens[slot as usize];
                match decode(b) {
                    None => {
                        bad_sums += 1;
                        problems.push(format!("slot {slot}: bad checksum"));
                    }
                    Some((s, g)) if s != slot => {
                        lost += 1;
                        problems.push(format!("slot {slot} holds slot {s}'s block"));
                        let _ = g;
                    }
                    Some((_, g)) if want == u64::MAX => gens[slot as usize] = g,
                    Some((_, g)) if g != want => {
                        lost += 1;
                        problems.push(format!("slot {slot}: generation {g}, acknowledged {want}"));
                    }
                    Some(_) => {}
                }
            }
        }
        if let Err(e) = call(&sock, &Request::Status) {
            problems.push(format!("status: {e}"));
        }
        t_check += t.elapsed();
        if problems.is_empty() {
            survived += 1;
        } else {
            let line = format!("fault {n} ({kind:?}): {}", problems.join("; "));
            eprintln!("{line}");
            failures.push(line);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let mut kinds: Vec<_> = per_kind.into_iter().collect();
    kinds.sort();
    eprintln!(
        "nvme chaos: {faults} faults in {secs:.1} s ({:.2}/s): per fault {:.1} ms fault and recovery, {:.1} ms acknowledgements and read-back; kinds {kinds:?}; {} writes of {SLOT} bytes, {} slot reads",
        faults as f64 / secs.max(1e-9),
        t_fault.as_secs_f64() * 1e3 / faults.max(1) as f64,
        t_check.as_secs_f64() * 1e3 / faults.max(1) as f64,
        next_gen - 1 + SLOTS,
        faults * SLOTS,
    );
    if let Ok(st) = call(&sock, &Request::Status) {
        eprintln!("{st}");
    }
    println!(
        "nvme chaos: faults {faults}, survived {survived}, writes lost {lost}, acks duplicated {dup_acks}, \
         requests failed {failed}, checksums bad {bad_sums}"
    );
    c.send(cmd::DISC, 0, 0, &[]);
    let nbd_result = nbd_server.join().expect("the NBD server thread");
    let _ = call(&sock, &Request::Shutdown);
    let _ = server.join();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = nbd_result {
        failures.push(format!("the NBD server ended with {e}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {faults} faults failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
