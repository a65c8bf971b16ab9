//! Why a user half died, as the kernel half learns it from the wait status (and, for a
//! seccomp violation, from the user half's SIGSYS handler).

use std::fmt;
use std::io::Read;
use std::os::fd::OwnedFd;

/// The exit status a user half's SIGSYS handler exits with after reporting a seccomp
/// violation (128 + SIGSYS, as a shell would show a death by SIGSYS).
pub const SECCOMP_EXIT: i32 = 128 + 31;

/// The longest record the SIGSYS handler writes (`SIGSYS <number>\n`).
pub(crate) const TRAP_RECORD_MAX: usize = 32;

/// Why a user half died.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeathCause {
    /// It exited with this status (a clean exit, or `std::process::exit`).
    Exited(i32),
    /// It was killed by this signal (SIGKILL from outside, SIGSEGV, SIGABRT, ...).
    Signaled(i32),
    /// Its sandbox caught a system call outside the allow-list; `syscall` is the number
    /// the user half reported (None if it reported none).
    Seccomp {
        /// The system call's number on this architecture.
        syscall: Option<u32>,
    },
    /// It did not answer a heartbeat ping and the supervisor killed it.
    Hung,
    /// It held a combolock past the hold limit and the supervisor killed it.
    HeldComboLock,
    /// The kernel half could not learn its wait status.
    Unknown,
}

impl DeathCause {
    /// From a wait status: its exit code or its terminating signal. A [`SECCOMP_EXIT`]
    /// exit is a seccomp violation; its record is read from `trap` (the read end of the
    /// user half's status pipe; the dead user half wrote it, so it is untrusted).
    pub(crate) fn from_status(
        code: Option<i32>,
        signal: Option<i32>,
        trap: Option<&OwnedFd>,
    ) -> DeathCause {
        match (code, signal) {
            (Some(SECCOMP_EXIT), _) => DeathCause::Seccomp {
                syscall: trap.and_then(read_trap_record),
            },
            (Some(code), _) => DeathCause::Exited(code),
            (None, Some(signal)) => DeathCause::Signaled(signal),
            (None, None) => DeathCause::Unknown,
        }
    }

    /// The system call's name, for a seccomp violation whose number this architecture
    /// knows.
    pub fn syscall_name(&self) -> Option<&'static str> {
        match self {
            DeathCause::Seccomp { syscall: Some(nr) } => {
                syscalls::Sysno::new(*nr as usize).map(|s| s.name())
            }
            _ => None,
        }
    }
}

/// Reads `SIGSYS <number>\n` from the (non-blocking) status pipe; anything else is None.
fn read_trap_record(fd: &OwnedFd) -> Option<u32> {
    let mut buf = [0u8; TRAP_RECORD_MAX];
    let n = std::fs::File::from(fd.try_clone().ok()?)
        .read(&mut buf)
        .ok()?;
    let text = std::str::from_utf8(buf.get(..n)?).ok()?;
    let number = text.strip_prefix("SIGSYS ")?.strip_suffix('\n')?;
    // Bounded: no architecture has system call numbers near this.
    number.parse::<u32>().ok().filter(|nr| *nr < 1 << 16)
}

/// A signal's name, for the common ones.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        libc::SIGSYS => "SIGSYS",
        _ => "unnamed signal",
    }
}

impl fmt::Display for DeathCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeathCause::Exited(code) => write!(f, "exited with code {code}"),
            DeathCause::Signaled(signal) if *signal == libc::SIGSYS => write!(
                f,
                "killed by signal {signal} (SIGSYS): a seccomp violation after the first"
            ),
            DeathCause::Signaled(signal) => {
                write!(f, "killed by signal {signal} ({})", signal_name(*signal))
            }
            DeathCause::Seccomp { syscall: Some(nr) } => {
                let name = self.syscall_name().unwrap_or("unknown to this build");
                write!(f, "seccomp violation: syscall {name} ({nr})")?;
                if matches!(name, "tgkill" | "tkill" | "kill") {
                    // abort() and raise() signal the process itself, which the sandbox
                    // forbids: a panic with panic=abort, a failed assertion in C code.
                    write!(f, " (the user half probably aborted)")?;
                }
                Ok(())
            }
            DeathCause::Seccomp { syscall: None } => {
                write!(f, "seccomp violation (the system call was not reported)")
            }
            DeathCause::Hung => write!(f, "hung (no answer to a heartbeat ping) and killed"),
            DeathCause::HeldComboLock => {
                write!(f, "held a combolock past the hold limit and was killed")
            }
            DeathCause::Unknown => write!(f, "died (wait status unknown)"),
        }
    }
}
