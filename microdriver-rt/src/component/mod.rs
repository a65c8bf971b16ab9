//! The user half as a process: spawning it from the same executable, the handshake, and
//! noticing its death.
//!
//! The kernel half creates the shared slot area, then re-executes its own executable with
//! the area's memfd as fd 3 and `MICRODRIVER_UHALF_FD=3` in the environment. The child
//! must call [`run_user_half_if_requested`] early in `main`: it maps the area, checks the
//! layout, writes its hello (format version, entry-table hash, pid, workers) and serves
//! upcalls. The kernel half compares the hello with its own build; halves built from
//! different sources refuse to talk. The child gets `PR_SET_PDEATHSIG(SIGKILL)`: it dies
//! with its parent. The parent watches the child's pidfd and fails every outstanding call
//! the moment the child dies, and learns why it died ([`DeathCause`]). The child's
//! `tracing` events reach the parent's subscriber (see [`run_user_half_if_requested`]).

crate::sync::outside_loom! {
    mod child;
    mod death;
    mod heartbeat;
    mod liveness;
    mod logs;
    pub mod sandbox;
    mod spawn;
    mod supervisor;

    pub use child::run_user_half_if_requested;
    pub use death::{signal_name, DeathCause, SECCOMP_EXIT};
    pub use spawn::{Channel, ComponentConfig, ComponentError, UserHalf};
    pub use supervisor::{DeathHook, ReattachHook, Supervisor, SupervisorConfig, SupervisorStatus};
}

/// Environment variable naming the slot area's fd in the user half.
pub const FD_ENV: &str = "MICRODRIVER_UHALF_FD";
/// Environment variable carrying the worker count.
pub const WORKERS_ENV: &str = "MICRODRIVER_UHALF_WORKERS";
/// Environment variable carrying the parent's pid (the child checks it is still alive).
pub const PARENT_ENV: &str = "MICRODRIVER_UHALF_PARENT";
/// Environment variable carrying the spin time (microseconds) of the user half's waits.
pub const SPIN_ENV: &str = "MICRODRIVER_UHALF_SPIN_US";
/// Environment variable naming the user half's end of its log pipe (`tracing` events).
pub const LOG_FD_ENV: &str = "MICRODRIVER_UHALF_LOG_FD";
/// Environment variable naming the user half's end of its status pipe (the SIGSYS record).
pub const STATUS_FD_ENV: &str = "MICRODRIVER_UHALF_STATUS_FD";
/// Environment variable naming a warm standby's end of its activation pipe.
pub const STANDBY_FD_ENV: &str = "MICRODRIVER_UHALF_STANDBY_FD";
/// Environment variable carrying the kernel half's most verbose `tracing` level (the user
/// half forwards no event above it).
pub const LOG_LEVEL_ENV: &str = "MICRODRIVER_UHALF_LOG_LEVEL";
