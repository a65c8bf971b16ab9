//! The user half's sandbox, through real user-half processes: forbidden system calls
//! (`open("/etc/passwd")`, a socket, `ptrace`) kill the user half, the kernel half carries
//! on and a fresh user half answers; ordinary work (allocation, threads, a nested downcall)
//! still runs, and so does holding and freeing a few hundred KiB in a worker thread (glibc
//! then trims the worker's arena, which once killed the user half); the sandboxed child is unprivileged (when the test runs as root), has an
//! empty environment apart from `MICRODRIVER_*`, and has none of the parent's leaked fds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use microdriver_rt::component::sandbox::UNPRIVILEGED_ID;
use microdriver_rt::component::{run_user_half_if_requested, ComponentConfig, UserHalf};
use microdriver_rt::lrpc::__private::{downcall, inventory, Entry, Served};
use microdriver_rt::lrpc::CallError;
use microdriver_rt::marshal::{Decoder, Encoder, Marshal, MarshalError};
use microdriver_rt::tracker::ObjectTracker;

// ---------------------------------------------------------------------------------------
// User-half entries.

fn handler_error(e: impl std::fmt::Display) -> MarshalError {
    MarshalError::BadHeader {
        reason: e.to_string(),
    }
}

/// Tries to read /etc/passwd; returns what happened (if it is still alive to say).
fn open_passwd(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    let outcome = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("read {} bytes", text.len()),
        Err(e) => format!("failed: {e}"),
    };
    outcome.encode(enc)
}

/// Tries to open a TCP socket.
fn open_socket(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    let outcome = if fd >= 0 {
        // SAFETY: our own fresh descriptor.
        unsafe { libc::close(fd) };
        "socket opened".to_string()
    } else {
        format!("socket failed: {}", std::io::Error::last_os_error())
    };
    outcome.encode(enc)
}

/// Tries to ptrace its parent (the kernel half).
fn trace_parent(dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    dec.finish()?;
    // SAFETY: ptrace(PTRACE_ATTACH) on the parent; a failure is reported, not acted on.
    let rc = unsafe {
        libc::ptrace(
            libc::PTRACE_ATTACH,
            libc::getppid(),
            std::ptr::null_mut::<libc::c_void>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    let outcome = if rc == 0 {
        "attached".to_string()
    } else {
        format!("ptrace failed: {}", std::io::Error::last_os_error())
    };
    outcome.encode(enc)
}

/// Ordinary work: allocation (small and large), worker threads, a nested downcall.
fn work_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let n = u64::decode(&mut dec)?;
    dec.finish()?;
    let big: Vec<u64> = (0..n).collect(); // large enough for mmap
    let chunks: Vec<Vec<u64>> = big
        .chunks(big.len().div_ceil(4))
        .map(<[u64]>::to_vec)
        .collect();
    let sums: Vec<u64> = chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            std::thread::Builder::new()
                .name(format!("sandbox-worker-{i}"))
                .spawn(move || chunk.iter().sum::<u64>())
                .expect("spawn a worker")
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().expect("worker"))
        .collect();
    let total: u64 = sums.iter().sum();
    let doubled: u64 = downcall(
        "sandbox::double",
        &mut (),
        |_, enc| total.encode(enc),
        |_, dec| u64::decode(dec),
    )
    .map_err(handler_error)?;
    std::thread::sleep(Duration::from_millis(1));
    let _ = Instant::now();
    doubled.encode(enc)
}

/// The identity and environment of the user half, and which of the given descriptors it
/// still has (close(2) succeeds only on an open one).
fn report_handler(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let fds = Vec::<i32>::decode(&mut dec)?;
    dec.finish()?;
    // SAFETY: plain id getters.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    let env: Vec<(String, String)> = std::env::vars().collect();
    let open: Vec<i32> = fds
        .into_iter()
        // SAFETY: closes descriptors the test leaked into this process on purpose.
        .filter(|&fd| unsafe { libc::close(fd) } == 0)
        .collect();
    (uid, euid, gid, egid).encode(enc)?;
    env.encode(enc)?;
    open.encode(enc)
}

/// A test frame: `len` bytes, a function of `seq` and the offset.
fn frame(seq: u64, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seq as usize * 7 + i) as u8).collect()
}

/// What the e1000 loopback self-test did in one go: build `count` frames of `len` bytes
/// (and a copy of each, as its transmit packets), downcall for all of them back at once
/// (a reply of `count * len` bytes and more), and check them. Returns the bytes checked.
fn hold_frames(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let (count, len) = <(u64, u64)>::decode(&mut dec)?;
    dec.finish()?;
    let sent: Vec<Vec<u8>> = (0..count).map(|seq| frame(seq, len as usize)).collect();
    let packets: Vec<Vec<u8>> = sent.clone();
    let mut got: Vec<Vec<u8>> = Vec::new();
    got.extend(
        downcall(
            "sandbox::capture",
            &mut (),
            |_, enc| (count, len).encode(enc),
            |_, dec| Vec::<Vec<u8>>::decode(dec),
        )
        .map_err(handler_error)?,
    );
    if got != sent || packets != sent {
        return Err(handler_error("the frames did not come back intact"));
    }
    (got.iter().map(|f| f.len() as u64).sum::<u64>()).encode(enc)
}

/// The kernel half's side of [`hold_frames`]: `count` frames of `len` bytes.
fn capture(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let (count, len) = <(u64, u64)>::decode(&mut dec)?;
    dec.finish()?;
    let frames: Vec<Vec<u8>> = (0..count).map(|seq| frame(seq, len as usize)).collect();
    frames.encode(enc)
}

fn double(mut dec: Decoder<'_>, enc: &mut Encoder<'_>) -> Result<(), MarshalError> {
    let x = u64::decode(&mut dec)?;
    dec.finish()?;
    (x * 2).encode(enc)
}

inventory::submit! { Entry { name: "sandbox::open_passwd", signature: "fn() -> String", served: Served::ByUser, handler: open_passwd } }
inventory::submit! { Entry { name: "sandbox::open_socket", signature: "fn() -> String", served: Served::ByUser, handler: open_socket } }
inventory::submit! { Entry { name: "sandbox::trace_parent", signature: "fn() -> String", served: Served::ByUser, handler: trace_parent } }
inventory::submit! { Entry { name: "sandbox::work", signature: "fn(u64) -> u64", served: Served::ByUser, handler: work_handler } }
inventory::submit! { Entry { name: "sandbox::report", signature: "fn(Vec<i32>) -> ((u32, u32, u32, u32), Vec<(String, String)>, Vec<i32>)", served: Served::ByUser, handler: report_handler } }
inventory::submit! { Entry { name: "sandbox::hold_frames", signature: "fn(u64, u64) -> u64", served: Served::ByUser, handler: hold_frames } }
inventory::submit! { Entry { name: "sandbox::capture", signature: "fn(u64, u64) -> Vec<Vec<u8>>", served: Served::ByKernel, handler: capture } }
inventory::submit! { Entry { name: "sandbox::double", signature: "fn(u64) -> u64", served: Served::ByKernel, handler: double } }

// ---------------------------------------------------------------------------------------
// Kernel-half helpers.

fn spawn(sandbox: bool) -> UserHalf {
    let config = ComponentConfig {
        sandbox,
        ..ComponentConfig::default()
    };
    UserHalf::spawn(&config, Arc::new(ObjectTracker::new())).expect("spawn a user half")
}

fn call_string(half: &UserHalf, name: &'static str) -> Result<String, CallError> {
    half.endpoint().call(
        Entry::id_of(name),
        name,
        &mut (),
        |_, _| Ok(()),
        |_, dec| String::decode(dec),
    )
}

fn work(half: &UserHalf) -> Result<u64, CallError> {
    half.endpoint().call(
        Entry::id_of("sandbox::work"),
        "sandbox::work",
        &mut (),
        |_, enc| 1_000_000u64.encode(enc),
        |_, dec| u64::decode(dec),
    )
}

const WORK_ANSWER: u64 = 2 * (1_000_000 * 999_999 / 2);

type Report = ((u32, u32, u32, u32), Vec<(String, String)>, Vec<i32>);

fn report(half: &UserHalf, fds: &[i32]) -> Report {
    let fds = fds.to_vec();
    half.endpoint()
        .call(
            Entry::id_of("sandbox::report"),
            "sandbox::report",
            &mut (),
            |_, enc| fds.encode(enc),
            |_, dec| {
                Ok((
                    <(u32, u32, u32, u32)>::decode(dec)?,
                    Vec::decode(dec)?,
                    Vec::decode(dec)?,
                ))
            },
        )
        .expect("report upcall")
}

// ---------------------------------------------------------------------------------------
// Tests.

/// Each forbidden call kills the user half: the upcall fails with PeerDied promptly, the
/// death is reported with the system call's name, the kernel half goes on, and a fresh
/// user half answers.
fn forbidden_calls_kill_the_user_half() {
    for (name, syscall) in [
        ("sandbox::open_passwd", "openat"),
        ("sandbox::open_socket", "socket"),
        ("sandbox::trace_parent", "ptrace"),
    ] {
        let half = spawn(true);
        assert_eq!(work(&half), Ok(WORK_ANSWER), "{name}: before");
        let started = Instant::now();
        let result = call_string(&half, name);
        let took = started.elapsed();
        assert_eq!(
            result,
            Err(CallError::PeerDied {
                peer: microdriver_rt::Half::User
            }),
            "{name}: the user half should have been killed"
        );
        assert!(took < Duration::from_millis(500), "{name}: took {took:?}");
        // The watcher records the cause before it fails the calls.
        let cause = half.death_cause().expect("the cause of death is known");
        assert_eq!(cause.syscall_name(), Some(syscall), "{name}: {cause}");
        // The kernel half carries on: the dead half's calls fail at once...
        assert!(matches!(work(&half), Err(CallError::PeerDied { .. })));
        drop(half);
        // ...and a fresh user half answers.
        let fresh = spawn(true);
        assert_eq!(work(&fresh), Ok(WORK_ANSWER), "{name}: after restart");
        fresh.shutdown(Duration::from_secs(1));
        println!("{name}: user half {cause}, PeerDied after {took:?}, fresh half answers");
    }
}

/// Without the sandbox the same calls go through: the kills above are the sandbox's doing.
fn unsandboxed_calls_go_through() {
    let half = spawn(false);
    let passwd = call_string(&half, "sandbox::open_passwd").expect("unsandboxed open");
    assert!(passwd.starts_with("read "), "{passwd}");
    let socket = call_string(&half, "sandbox::open_socket").expect("unsandboxed socket");
    assert_eq!(socket, "socket opened");
    half.shutdown(Duration::from_secs(1));
}

/// Allocation, threads and a nested downcall work under the sandbox, many times over.
fn ordinary_work_runs_sandboxed() {
    let half = spawn(true);
    for _ in 0..20 {
        assert_eq!(work(&half), Ok(WORK_ANSWER));
    }
    assert!(!half.is_dead());
    half.shutdown(Duration::from_secs(1));
}

/// The sandboxed child: uid/gid 65534 when we are root, an environment of MICRODRIVER_*
/// variables only, and none of the parent's inheritable descriptors.
fn identity_environment_and_descriptors() {
    // A secret in our environment and an inheritable (non-close-on-exec) pipe.
    std::env::set_var("SANDBOX_TEST_SECRET", "do-not-leak");
    let mut pipe = [0i32; 2];
    // SAFETY: pipe(2) into a local array.
    assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
    // Moved to high numbers, clear of the descriptors the spawn sets up.
    // SAFETY: fcntl/close on the pipe we just made.
    let probe = unsafe {
        let high = [
            libc::fcntl(pipe[0], libc::F_DUPFD, 100),
            libc::fcntl(pipe[1], libc::F_DUPFD, 100),
        ];
        libc::close(pipe[0]);
        libc::close(pipe[1]);
        [0, high[0], high[1]]
    };
    assert!(probe[1] >= 100 && probe[2] >= 100);

    let half = spawn(true);
    let ((uid, euid, gid, egid), env, open) = report(&half, &probe);
    // SAFETY: plain id getter.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        assert_eq!(
            (uid, euid, gid, egid),
            (
                UNPRIVILEGED_ID,
                UNPRIVILEGED_ID,
                UNPRIVILEGED_ID,
                UNPRIVILEGED_ID
            )
        );
    }
    let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.iter().all(|n| n.starts_with("MICRODRIVER_")),
        "environment: {names:?}"
    );
    assert!(names.contains(&"MICRODRIVER_UHALF_FD"), "{names:?}");
    assert!(
        open.is_empty(),
        "descriptors still open in the user half: {open:?}"
    );
    half.shutdown(Duration::from_secs(1));

    // The same child without the sandbox inherits all three.
    let half = spawn(false);
    let ((uid, ..), env, open) = report(&half, &probe);
    if root {
        assert_eq!(uid, 0);
    }
    assert!(env.iter().any(|(k, _)| k == "SANDBOX_TEST_SECRET"));
    assert_eq!(open, probe.to_vec());
    half.shutdown(Duration::from_secs(1));
    println!(
        "sandboxed child: uid {uid_s}, environment {names:?}",
        uid_s = if root {
            "65534 (test runs as root)"
        } else {
            "unchanged (not root)"
        }
    );
}

/// A full ring of maximum-size frames, sent and received, held at once by the sandboxed
/// user half (what the e1000 loopback self-test did before it went a batch at a time):
/// the same work passes unsandboxed and must pass sandboxed.
fn large_buffers_run_sandboxed() {
    let hold = |half: &UserHalf, count: u64, len: u64| {
        half.endpoint().call(
            Entry::id_of("sandbox::hold_frames"),
            "sandbox::hold_frames",
            &mut (),
            |_, enc| (count, len).encode(enc),
            |_, dec| u64::decode(dec),
        )
    };
    for sandbox in [false, true] {
        let half = spawn(sandbox);
        // Several rounds: upcalls land on either worker thread (each has its own arena).
        let rounds = [(16, 1514), (80, 1500), (80, 1514), (160, 1514)].repeat(3);
        for (count, len) in rounds {
            let result = hold(&half, count, len);
            assert_eq!(
                result,
                Ok(count * len),
                "sandbox {sandbox}: {count} frames of {len} bytes (user half dead: {})",
                half.is_dead()
            );
        }
        assert!(!half.is_dead());
        half.shutdown(Duration::from_secs(1));
    }
}

mod support;

fn main() {
    run_user_half_if_requested();
    support::run_tests(vec![
        (
            "forbidden_calls_kill_the_user_half",
            forbidden_calls_kill_the_user_half,
        ),
        ("unsandboxed_calls_go_through", unsandboxed_calls_go_through),
        ("ordinary_work_runs_sandboxed", ordinary_work_runs_sandboxed),
        ("large_buffers_run_sandboxed", large_buffers_run_sandboxed),
        (
            "identity_environment_and_descriptors",
            identity_environment_and_descriptors,
        ),
    ]);
}
