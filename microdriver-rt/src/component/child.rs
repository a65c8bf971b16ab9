//! The user half's side of starting up.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::Duration;

use super::liveness;
use super::{FD_ENV, LOG_FD_ENV, PARENT_ENV, SPIN_ENV, STANDBY_FD_ENV, STATUS_FD_ENV, WORKERS_ENV};
use crate::lrpc::{install_user, CallOptions, EntryTable, UserEndpoint, WaitPolicy};
use crate::marshal::frame::FORMAT_VERSION;
use crate::tracker::ObjectTracker;
use crate::transport::shm::ShmTransport;
use crate::transport::{wake_all, Area, Word};

/// If this process was started as a user half, runs it and exits; otherwise returns.
/// Call it first thing in `main` of every executable that spawns user halves.
///
/// **Logging.** Unless the process already has a global `tracing` subscriber, the user
/// half installs one that forwards every event (level, target, message and fields) to the
/// kernel half over a pipe; the kernel half re-emits it through *its* subscriber at the
/// same level, under the target `microdriver::uhalf`, with the fields `pid` (the user
/// half's) and `user_target` (the event's own target). Drivers need do nothing: install a
/// subscriber in the kernel half as usual, **before** starting the user half: events more
/// verbose than the kernel half's subscribers wanted when the user half started are not
/// even formatted. Lines are cut at 4096 bytes, and an event that finds the pipe full is
/// dropped (the number dropped is reported with the next one), so logging never stalls
/// the user half. A subscriber installed before this call takes precedence (its output
/// goes wherever it writes: only stderr is open in the sandbox).
///
/// ```
/// // First thing in `main`. In a process the runtime started as a user half, this never
/// // returns: it serves upcalls until the kernel half asks it to exit. Anywhere else it
/// // returns at once.
/// microdriver_rt::run_user_half_if_requested();
/// println!("the kernel half (or a monolithic driver) starts here");
/// ```
pub fn run_user_half_if_requested() {
    let Ok(fd) = std::env::var(FD_ENV) else {
        return;
    };
    let code = match run(&fd) {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("microdriver user half: {message}");
            2
        }
    };
    std::process::exit(code);
}

fn run(fd: &str) -> Result<(), String> {
    let fd: i32 = fd
        .parse()
        .map_err(|_| format!("{FD_ENV}={fd} is not a file descriptor"))?;
    if fd < 3 {
        return Err(format!("{FD_ENV}={fd} names a standard stream"));
    }
    // Die with the kernel half. Set here, not between fork and exec: the kernel half
    // spawns without a pre-exec hook so that it never forks its whole address space.
    // SAFETY: prctl(2) with PR_SET_PDEATHSIG only sets this process's death signal.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } < 0 {
        return Err(format!(
            "PR_SET_PDEATHSIG: {}",
            std::io::Error::last_os_error()
        ));
    }
    let parent = std::env::var(PARENT_ENV).ok();
    if let Some(parent) = &parent {
        // The parent may have died between fork and PR_SET_PDEATHSIG.
        if rustix::process::getppid().map(|p| p.as_raw_nonzero().get().to_string())
            != Some(parent.clone())
        {
            return Err("the kernel half exited before the user half started".into());
        }
    }
    // The pipes for its log events and its SIGSYS record (absent when started by an
    // older kernel half: then nothing is forwarded).
    let log_fd = inherited_fd(LOG_FD_ENV, fd)?;
    let status_fd = inherited_fd(STATUS_FD_ENV, fd)?;
    let standby_fd = inherited_fd(STANDBY_FD_ENV, fd)?;
    let mut passed: Vec<i32> = [log_fd, status_fd, standby_fd]
        .into_iter()
        .flatten()
        .collect();
    passed.sort_unstable();
    if passed.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!(
            "{LOG_FD_ENV}, {STATUS_FD_ENV} and {STANDBY_FD_ENV} name the same descriptor"
        ));
    }
    // SAFETY: the kernel half placed the slot area's memfd at this descriptor for us
    // (dup2 before exec) and nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    if let Some(log_fd) = log_fd {
        if !tracing::dispatcher::has_been_set() {
            // SAFETY: the kernel half left this end of the log pipe open for us (checked
            // above: not a standard stream, not the channel) and nothing else owns it.
            let log = unsafe { OwnedFd::from_raw_fd(log_fd) };
            let level = std::env::var(super::LOG_LEVEL_ENV).ok();
            let forward = super::logs::Forward::new(log, level.as_deref());
            let _ = tracing::subscriber::set_global_default(forward);
        }
    }
    let transport = Arc::new(ShmTransport::attach(fd).map_err(|e| e.to_string())?);
    // The death word: registered now, before the sandbox, and held
    // (our thread id stored) once we are the active user half. Only the main thread's id
    // is one the kernel half can check (against the pid it spawned).
    let death_word_id = liveness::main_thread_id();
    if death_word_id.is_some() {
        liveness::register(transport.header(Word::Alive))?;
    }
    let workers: usize = std::env::var(WORKERS_ENV)
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(2)
        .clamp(1, 64);
    let spin = std::env::var(SPIN_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(Duration::ZERO, Duration::from_micros);
    // The area is mapped: from here on the process only needs what the sandbox allows.
    if std::env::var(super::sandbox::SANDBOX_ENV).as_deref() == Ok("1") {
        let kept: Vec<i32> = log_fd.into_iter().chain(status_fd).collect();
        let readable: Vec<i32> = standby_fd.into_iter().collect();
        super::sandbox::enter(
            transport.fd().as_raw_fd(),
            &kept,
            &readable,
            status_fd,
            parent.as_deref(),
        )
        .map_err(|e| format!("entering the sandbox: {e}"))?;
    }
    let options = CallOptions {
        wait: WaitPolicy::spinning(spin),
        ..CallOptions::default()
    };
    // Reads the area's geometry from the header; touches no slot.
    let endpoint = Arc::new(UserEndpoint::new(
        transport.clone(),
        Arc::new(ObjectTracker::new()),
        options,
    ));
    install_user(endpoint.clone());
    let handles = match standby_fd {
        None => endpoint.spawn_workers(workers),
        Some(standby_fd) => {
            // A warm standby: everything up to the sandbox is done, and the workers are
            // started (thread creation is off the recovery path) but wait at a barrier;
            // nothing touches the shared area until the kernel half activates us.
            let go = Arc::new(std::sync::Barrier::new(workers + 1));
            let mut handles = Vec::with_capacity(workers);
            for i in 0..workers {
                let (endpoint, go) = (Arc::clone(&endpoint), Arc::clone(&go));
                let handle = std::thread::Builder::new()
                    .name(format!("uhalf-worker-{i}"))
                    .spawn(move || {
                        go.wait();
                        endpoint.serve_upcalls();
                    })
                    .map_err(|e| format!("starting a worker thread: {e}"))?;
                handles.push(handle);
            }
            if !wait_for_activation(standby_fd)? {
                // The kernel half let us go without activating us.
                return Ok(());
            }
            go.wait();
            handles
        }
    };

    let hash = EntryTable::get().hash();
    transport
        .header(Word::UserTableLo)
        .store(hash as u32, SeqCst);
    transport
        .header(Word::UserTableHi)
        .store((hash >> 32) as u32, SeqCst);
    transport
        .header(Word::UserFormat)
        .store(u32::from(FORMAT_VERSION), SeqCst);
    transport
        .header(Word::UserPid)
        .store(std::process::id(), SeqCst);
    transport
        .header(Word::UserWorkers)
        .store(workers as u32, SeqCst);
    if let Some(id) = death_word_id {
        transport.header(Word::Alive).store(id, SeqCst);
    }
    transport.header(Word::Hello).store(1, SeqCst);
    wake_all(transport.header(Word::Hello));

    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}

/// Blocks until the kernel half activates this standby (true) or closes its end of the
/// activation pipe (false).
fn wait_for_activation(fd: i32) -> Result<bool, String> {
    // Borrowed, never closed: closing an OwnedFd in a debug build first checks it with
    // fcntl(2), which the sandbox refuses. It is a pipe's read end; it dies with us.
    // SAFETY: the kernel half left this end of our activation pipe open for us (checked
    // in `run`: not a standard stream, not the channel, not another pipe), and nothing in
    // this process closes it.
    let activation = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(activation, &mut byte) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(format!("waiting for activation: {e}")),
        }
    }
}

/// A descriptor the kernel half passed through `var`: not a standard stream and not the
/// channel (`channel`). None when the variable is absent.
fn inherited_fd(var: &str, channel: i32) -> Result<Option<i32>, String> {
    let Ok(value) = std::env::var(var) else {
        return Ok(None);
    };
    match value.parse::<i32>() {
        Ok(fd) if fd > 2 && fd != channel => Ok(Some(fd)),
        _ => Err(format!("{var}={value} is not a usable file descriptor")),
    }
}
