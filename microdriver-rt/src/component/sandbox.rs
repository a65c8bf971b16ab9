//! The user half's sandbox: what a user half may still do once it is running.
//!
//! The user half is treated as compromisable. `enter` runs in the user-half process
//! right after it has mapped the shared slot area and before it serves a single upcall
//! (and before its worker threads start; its own priming thread has ended by then), and
//! applies, in this order:
//!
//! 1. **`PR_SET_NO_NEW_PRIVS`**: no exec can ever gain privileges (and seccomp may be
//!    installed without `CAP_SYS_ADMIN`).
//! 2. **File descriptors**: every descriptor is closed except the slot area's memfd (the
//!    channel), **stderr (fd 2), kept for logs** (panic messages), and the pipes the
//!    kernel half passed: the log pipe (`tracing` events, see
//!    [`run_user_half_if_requested`](super::run_user_half_if_requested)), the status pipe
//!    (the SIGSYS record below) and, for a warm standby, its activation pipe.
//!    stdin is closed; stdout (fd 1) is made a copy of stderr, so a stray `println!` in
//!    user-half code lands in the log instead of failing.
//! 3. **Environment**: the kernel half starts the user half with an empty environment
//!    except the `MICRODRIVER_*` variables it sets itself (`env_clear()` in `spawn.rs`).
//! 4. **Identity**: started as root, the user half drops to uid/gid 65534 (`nobody`), with
//!    no supplementary groups; the uid change also clears every capability. The
//!    parent-death signal, which the kernel resets on a credential change, is set again.
//! 5. **The C library's one-time probes**, run while the process may still read files
//!    (see [below](#the-c-librarys-file-reads)).
//! 6. **A SIGSYS handler** (`SA_SIGINFO | SA_RESETHAND`), then **seccomp** (built with
//!    `seccompiler`, installed on all threads with TSYNC): an allow-list of what the
//!    runtime needs, and nothing else. A system call outside the list is never executed:
//!    it **traps** (`SECCOMP_RET_TRAP`), and the handler, async-signal-safe (an atomic load,
//!    a stack buffer, raw `write` and `exit_group`), writes `SIGSYS <number>` to the status
//!    pipe and ends the whole user half with exit status [`SECCOMP_EXIT`](super::SECCOMP_EXIT)
//!    (159). An attempt to leave the sandbox is taken as a sign of compromise: the kernel
//!    half sees the death at once (its pidfd), fails the outstanding upcalls with
//!    `PeerDied`, names the call in its log and `SupervisorStatus::last_death` (the number
//!    is bounded and named with the `syscalls` crate), and its supervisor starts a fresh
//!    user half. Anything after the trap still kills: the handler resets to the default
//!    action when it runs, so a second violation (another thread's, or the handler's own)
//!    ends the process by SIGSYS, and a SIGSYS that finds the signal blocked is delivered
//!    with the default action too; the filter refuses `rt_sigaction` on SIGSYS, so the
//!    handler cannot be replaced or ignored.
//!
//! # The allow-list
//! - memory: `mmap` only **anonymous** (its fd argument must be -1, so no file or device
//!   can be mapped) and never executable, `mprotect` never executable, `munmap`,
//!   `mremap`, `madvise`, `brk`;
//! - threads: `clone` only with `CLONE_THREAD` (a thread of this process, never a new
//!   process), `set_robust_list`, `rseq`, `exit`; `clone3` fails with `ENOSYS` (a second
//!   filter), so the C library falls back to `clone`, whose flags seccomp can inspect.
//!   User-half code may start threads after the sandbox is in place (the runtime's own
//!   workers start that way);
//! - waiting and time: `futex`, `sched_yield`, `nanosleep`, `clock_nanosleep`,
//!   `clock_gettime`, `clock_getres`, `gettimeofday`, `sched_getaffinity`;
//! - I/O: `write`/`writev` on stdout/stderr and the log and status pipes, `read` on the
//!   channel and a standby's activation pipe, `close`;
//! - signals and process: `rt_sigreturn`, `rt_sigprocmask`, `rt_sigaction` for any signal
//!   but SIGSYS (the C library's first `pthread_create` installs its internal handlers),
//!   `sigaltstack`,
//!   `restart_syscall`, `exit_group`, `getpid`, `gettid`, `getppid`, `getuid`, `geteuid`,
//!   `getgid`, `getegid`, `getrandom`, and `prctl` only for `PR_SET_NAME`/`PR_GET_NAME`
//!   (thread names).
//!
//! Absent on purpose: `open`/`openat` (no files), `socket` and the rest of networking,
//! `ptrace`, `execve`/`execveat`, `fork`/`vfork`, `kill`/`tgkill` (an `abort()` therefore
//! ends like any other forbidden call, reported as `tgkill`), `ioctl`, `fcntl` (note: a
//! debug build's `OwnedFd` drop checks the descriptor with `fcntl`, so user-half code keeps
//! or borrows descriptors rather than dropping them), `mount`, `bpf`, `dup*`, `pipe*`,
//! `memfd_create`.
//!
//! # The C library's file reads
//! Some code the user half cannot avoid opens a file the first time it needs an answer
//! and caches it; under the allow-list that first `openat` kills the user half, however
//! harmless. Rather than allow `openat` (seccomp cannot see the path, so an allowed
//! `openat` would allow every file the uid can read), `enter` makes each such probe
//! happen **before** the filter is installed, when it is an ordinary read:
//!
//! - glibc's malloc, the first time it gives memory at the top of a thread's arena back
//!   to the system (`free` in any thread but the main one, once that arena's top holds
//!   more than the trim threshold, 128 KiB by default: a user-half worker that held and
//!   freed a few hundred KiB, e.g. 80 frames of 1514 bytes sent and received), reads
//!   `/proc/sys/vm/overcommit_memory` (`check_may_shrink_heap`) to choose between
//!   `madvise(MADV_DONTNEED)` and an anonymous `PROT_NONE` `mmap(MAP_FIXED)` over the freed
//!   range (both allowed: no new call is needed afterwards). `enter` runs a short-lived
//!   thread that allocates and frees enough in its own arena to make glibc read and cache
//!   the setting. Nothing is added to the allow-list: the read happens once, as the
//!   (unprivileged) user half, of a world-readable sysctl, before any upcall is served.
//!
//! The sandbox is on by default ([`ComponentConfig::sandbox`](super::ComponentConfig));
//! tests of unsandboxed behaviour turn it off. If any step fails the user half refuses to
//! run (it fails closed) and the kernel half's spawn reports a failed handshake.

use std::collections::BTreeMap;
use std::os::fd::RawFd;

use seccompiler::{
    apply_filter_all_threads, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp,
    SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

/// Environment variable telling the user half whether to sandbox itself ("1") or not.
pub const SANDBOX_ENV: &str = "MICRODRIVER_UHALF_SANDBOX";

/// The unprivileged uid and gid a user half started as root runs as (`nobody`).
pub const UNPRIVILEGED_ID: u32 = 65534;

/// Enters the sandbox (see the module docs). `channel` is the slot area's descriptor, the
/// only one besides stderr that stays open. Call it with no other threads running.
///
/// `writable` are further descriptors it keeps and may write to (its log and status
/// pipes), `readable` ones it keeps and may read (a standby's activation pipe); `status`
/// is the one its SIGSYS handler reports a seccomp violation to.
pub(crate) fn enter(
    channel: RawFd,
    writable: &[RawFd],
    readable: &[RawFd],
    status: Option<RawFd>,
    parent: Option<&str>,
) -> Result<(), String> {
    no_new_privs()?;
    let kept: Vec<RawFd> = writable.iter().chain(readable).copied().collect();
    close_other_fds(channel, &kept)?;
    drop_privileges(parent)?;
    prime_allocator()?;
    install_sigsys_handler(status)?;
    install_seccomp(channel, writable, readable)
}

/// Where the SIGSYS handler writes its record (-1: nowhere).
static TRAP_FD: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);

/// The start of a `siginfo_t` for SIGSYS (`_sigsys` in the kernel's union): the union
/// starts at the pointer-aligned offset after the three ints, as `repr(C)` lays it out.
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// The SIGSYS handler: a system call outside the allow-list was trapped. Async-signal-safe
/// only: an atomic load, a stack buffer, raw `write` and `exit_group`. It writes
/// `SIGSYS <number>\n` to the status pipe and exits with [`super::SECCOMP_EXIT`]; the
/// kernel half names the call. Installed with `SA_RESETHAND`: a second violation (another
/// thread's, or the handler's own) finds the default action and kills the process.
extern "C" fn on_sigsys(_signal: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    let number = if info.is_null() {
        -1
    } else {
        // SAFETY: the kernel passes a valid siginfo_t for SIGSYS (SA_SIGINFO), whose
        // leading fields have the layout of `SigsysInfo`.
        unsafe { (*info.cast::<SigsysInfo>()).syscall }
    };
    let mut record = [0u8; super::death::TRAP_RECORD_MAX];
    let prefix = b"SIGSYS ";
    record[..prefix.len()].copy_from_slice(prefix);
    let mut len = prefix.len();
    let mut digits = [0u8; 12];
    let mut count = 0;
    let mut value = number.unsigned_abs();
    loop {
        digits[count] = b'0' + (value % 10) as u8;
        count += 1;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    if number < 0 {
        record[len] = b'-';
        len += 1;
    }
    while count > 0 {
        count -= 1;
        record[len] = digits[count];
        len += 1;
    }
    record[len] = b'\n';
    len += 1;
    let fd = TRAP_FD.load(std::sync::atomic::Ordering::Relaxed);
    // SAFETY: raw write(2) of a stack buffer and exit_group(2): both async-signal-safe
    // and on the allow-list; exit_group does not return.
    unsafe {
        if fd >= 0 {
            libc::syscall(libc::SYS_write, fd, record.as_ptr(), len);
        }
        libc::syscall(libc::SYS_exit_group, super::SECCOMP_EXIT);
    }
}

/// Installs [`on_sigsys`] (before the filter; the filter then refuses any change of the
/// SIGSYS action).
fn install_sigsys_handler(status: Option<RawFd>) -> Result<(), String> {
    TRAP_FD.store(status.unwrap_or(-1), std::sync::atomic::Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is a valid "no flags, empty mask" value; sigemptyset and
    // sigaction only touch it and this process's signal table; the handler is an
    // `extern "C"` function of the SA_SIGINFO signature.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) != 0 {
            return Err(os_error("installing the SIGSYS handler"));
        }
    }
    Ok(())
}

/// Makes glibc's malloc read and cache `/proc/sys/vm/overcommit_memory` now, while the
/// process may still open files (see [the module docs](self#the-c-librarys-file-reads)):
/// it reads it the first time it trims the heap of an arena other than the main one.
/// A fresh thread gets such an arena (no other thread runs yet, so none is free to be
/// reused); blocks below the mmap threshold (128 KiB) come from its heap, and freeing
/// them leaves a top chunk well above the trim threshold, so glibc trims the heap.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn prime_allocator() -> Result<(), String> {
    const BLOCK: usize = 96 * 1024;
    const BLOCKS: usize = 8;
    std::thread::Builder::new()
        .name("sandbox-prime".into())
        .spawn(|| {
            let blocks: Vec<Vec<u8>> = (0..BLOCKS).map(|i| vec![i as u8; BLOCK]).collect();
            drop(std::hint::black_box(blocks));
        })
        .map_err(|e| format!("priming the allocator: {e}"))?
        .join()
        .map_err(|_| "priming the allocator: the thread panicked".to_string())
}

/// Other C libraries (musl's malloc reads no file) need no priming.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn prime_allocator() -> Result<(), String> {
    Ok(())
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn no_new_privs() -> Result<(), String> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(os_error("PR_SET_NO_NEW_PRIVS"));
    }
    Ok(())
}

/// Closes every descriptor but stderr, `channel` and `others`; points stdout at stderr.
fn close_other_fds(channel: RawFd, others: &[RawFd]) -> Result<(), String> {
    if channel < 0 || channel == 2 {
        return Err(format!("channel descriptor {channel}"));
    }
    if let Some(fd) = others.iter().find(|&&fd| fd <= 2 || fd == channel) {
        return Err(format!("descriptor {fd} cannot be kept"));
    }
    let mut keep = vec![2, channel];
    keep.extend_from_slice(others);
    keep.sort_unstable();
    keep.dedup();
    let mut from: u32 = 0;
    for fd in keep {
        let fd = fd as u32;
        if fd > from {
            close_range(from, fd - 1)?;
        }
        from = fd + 1;
    }
    close_range(from, u32::MAX)?;
    if channel != 1 {
        // SAFETY: dup2 on descriptor numbers; fd 1 was just closed, nothing owns it.
        unsafe { libc::dup2(2, 1) };
    }
    Ok(())
}

fn close_range(first: u32, last: u32) -> Result<(), String> {
    // SAFETY: closes descriptors no Rust object of this process owns (the runtime owns only
    // the channel, which is never in the range; std's stdio handles tolerate closed fds).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc == 0 {
        return Ok(());
    }
    if std::io::Error::last_os_error().raw_os_error() != Some(libc::ENOSYS) {
        return Err(os_error("close_range"));
    }
    // Kernels before 5.9: close one by one up to the descriptor limit.
    // SAFETY: sysconf has no preconditions.
    let max = unsafe { libc::sysconf(libc::_SC_OPEN_MAX) };
    let max = if max <= 0 { 65536 } else { max as u32 };
    for fd in first..=last.min(max) {
        // SAFETY: as above.
        unsafe { libc::close(fd as i32) };
    }
    Ok(())
}

/// As root: no supplementary groups, gid and uid 65534 (real, effective and saved).
fn drop_privileges(parent: Option<&str>) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let id = UNPRIVILEGED_ID;
    // SAFETY: setgroups with an empty list; the libc wrappers for set*id apply the change
    // to every thread of the process.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(os_error("setgroups"));
        }
        if libc::setresgid(id, id, id) != 0 {
            return Err(os_error("setresgid"));
        }
        if libc::setresuid(id, id, id) != 0 {
            return Err(os_error("setresuid"));
        }
        if libc::getuid() != id || libc::geteuid() != id || libc::getegid() != id {
            return Err("the uid/gid change did not take".into());
        }
        // A credential change clears the parent-death signal: set it again, then make
        // sure the parent did not die in between.
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(os_error("PR_SET_PDEATHSIG"));
        }
    }
    if let Some(parent) = parent {
        // SAFETY: getppid has no preconditions.
        if unsafe { libc::getppid() }.to_string() != parent {
            return Err("the kernel half exited while the user half started".into());
        }
    }
    Ok(())
}

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    SeccompCondition::new(arg, len, op, value).expect("argument index below 6")
}

fn rule(conditions: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conditions).expect("a rule with conditions")
}

/// `arg` (a 32-bit int) is one of `values`.
fn one_of(arg: u8, values: &[u64]) -> Vec<SeccompRule> {
    values
        .iter()
        .map(|&v| {
            rule(vec![cond(
                arg,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                v,
            )])
        })
        .collect()
}

/// The allow-list (see the module docs), for the running architecture; `writable` are the
/// descriptors besides stdout/stderr it may write to.
fn allow_list(
    channel: RawFd,
    writable: &[RawFd],
    readable: &[RawFd],
) -> BTreeMap<i64, Vec<SeccompRule>> {
    use libc::*;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let no_exec = |arg: u8| {
        cond(
            arg,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(PROT_EXEC as u64),
            0,
        )
    };
    // Anonymous, never executable: fd (arg 4) == -1 and prot (arg 2) without PROT_EXEC.
    rules.insert(
        SYS_mmap,
        vec![rule(vec![
            cond(
                4,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::Eq,
                u64::from(u32::MAX),
            ),
            no_exec(2),
        ])],
    );
    rules.insert(SYS_mprotect, vec![rule(vec![no_exec(2)])]);
    // A thread of this process, never a new process.
    rules.insert(
        SYS_clone,
        vec![rule(vec![cond(
            0,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::MaskedEq(CLONE_THREAD as u64),
            CLONE_THREAD as u64,
        )])],
    );
    let mut out: Vec<u64> = vec![1, 2];
    out.extend(writable.iter().map(|&fd| fd as u64));
    rules.insert(SYS_write, one_of(0, &out));
    rules.insert(SYS_writev, one_of(0, &out));
    // Any signal's action but SIGSYS's: the handler installed before the filter stays.
    rules.insert(
        SYS_rt_sigaction,
        vec![rule(vec![cond(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            SIGSYS as u64,
        )])],
    );
    let mut input: Vec<u64> = vec![channel as u64];
    input.extend(readable.iter().map(|&fd| fd as u64));
    rules.insert(SYS_read, one_of(0, &input));
    rules.insert(
        SYS_prctl,
        one_of(0, &[PR_SET_NAME as u64, PR_GET_NAME as u64]),
    );
    for call in [
        SYS_clone3, // answered ENOSYS by the second filter
        SYS_munmap,
        SYS_mremap,
        SYS_madvise,
        SYS_brk,
        SYS_set_robust_list,
        SYS_rseq,
        SYS_futex,
        SYS_sched_yield,
        SYS_sched_getaffinity,
        SYS_nanosleep,
        SYS_clock_nanosleep,
        SYS_clock_gettime,
        SYS_clock_getres,
        SYS_gettimeofday,
        SYS_close,
        SYS_rt_sigreturn,
        SYS_rt_sigprocmask,
        SYS_sigaltstack,
        SYS_restart_syscall,
        SYS_exit,
        SYS_exit_group,
        SYS_getpid,
        SYS_gettid,
        SYS_getppid,
        SYS_getuid,
        SYS_geteuid,
        SYS_getgid,
        SYS_getegid,
        SYS_getrandom,
    ] {
        rules.insert(call, vec![]);
    }
    rules
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    matched: SeccompAction,
) -> Result<BpfProgram, String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(rules, mismatch, matched, arch).map_err(|e| e.to_string())?;
    BpfProgram::try_from(filter).map_err(|e| e.to_string())
}

fn install_seccomp(channel: RawFd, writable: &[RawFd], readable: &[RawFd]) -> Result<(), String> {
    // Filters stack and the strictest answer wins: the allow-list traps anything outside
    // it (SIGSYS: the handler reports the call and exits; a second violation kills); the
    // second one turns the (allowed) clone3 into ENOSYS.
    let allow = compile(
        allow_list(channel, writable, readable),
        SeccompAction::Trap,
        SeccompAction::Allow,
    )?;
    let clone3 = compile(
        [(libc::SYS_clone3, vec![])].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    // The clone3 filter first: once the allow-list is in, seccomp(2) itself is refused.
    apply_filter_all_threads(&clone3).map_err(|e| format!("installing seccomp: {e}"))?;
    apply_filter_all_threads(&allow).map_err(|e| format!("installing seccomp: {e}"))?;
    Ok(())
}
