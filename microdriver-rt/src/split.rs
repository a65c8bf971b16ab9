//! Starting a split driver: one call that starts the supervised user half and makes this
//! process its kernel half, and a guard that undoes both.

use std::ops::Deref;
use std::sync::Arc;

use crate::component::{ComponentError, Supervisor, SupervisorConfig};
use crate::lrpc::{install_kernel, kernel_endpoint, uninstall_kernel, KernelEndpoint};
use crate::tracker::ObjectTracker;

/// A running split driver: the user half, supervised in its own process, and this process
/// installed as the kernel half (`#[upcall]` functions called here cross to the user half,
/// `#[critical]` ones run here). Dropping it stops the user half and returns this process
/// to monolithic mode, where every annotated function is a direct call.
///
/// It dereferences to its [`Supervisor`]: `pid`, `status`, `on_reattach`,
/// `kill_user_half`, `wait_restarted`.
///
/// # Example: a crash and the restart
///
/// ```
/// use std::time::Duration;
/// use microdriver_rt::{start, upcall, Marshal, SupervisorConfig, CallError};
///
/// #[derive(Debug, Marshal)]
/// struct Failed(String);
/// impl From<CallError> for Failed {
///     fn from(e: CallError) -> Self { Failed(e.to_string()) }
/// }
///
/// #[upcall]
/// fn user_pid() -> Result<u32, Failed> {
///     Ok(std::process::id())
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     microdriver_rt::run_user_half_if_requested();
///     let driver = start(SupervisorConfig::default())?;
///     let old = driver.pid();
///     driver.kill_user_half(); // as a crash would
///     assert!(driver.wait_restarted(old, Duration::from_secs(10)));
///     let new = user_pid().map_err(|Failed(e)| e)?;
///     assert_ne!(Some(new), old);
///     assert_eq!(driver.status().restarts, 1);
///     driver.stop();
///     Ok(())
/// }
/// ```
#[must_use = "dropping the guard stops the user half at once"]
pub struct SplitDriver {
    supervisor: Option<Supervisor>,
    endpoint: Arc<KernelEndpoint>,
}

/// Starts a split driver with `config` (see [`SplitDriver`]); the executable's `main` must
/// begin with [`crate::run_user_half_if_requested`], which is where the user-half process
/// this starts (the same executable) goes instead of running `main`.
///
/// One split driver per process: the kernel endpoint it installs is process-wide.
///
/// ```
/// use microdriver_rt::{current_half, start, upcall, Half, Marshal, SupervisorConfig, CallError};
///
/// /// The driver's error: it crosses the split, and a failed call becomes one.
/// #[derive(Debug, Marshal)]
/// struct Failed(String);
/// impl From<CallError> for Failed {
///     fn from(e: CallError) -> Self { Failed(e.to_string()) }
/// }
///
/// /// Runs in the user half: returns the pid of the process it ran in.
/// #[upcall]
/// fn where_am_i() -> Result<u32, Failed> {
///     Ok(std::process::id())
/// }
///
/// fn main() -> Result<(), Box<dyn std::error::Error>> {
///     microdriver_rt::run_user_half_if_requested();
///     // Monolithic until started: the upcall is a direct call.
///     assert_eq!(where_am_i().map_err(|Failed(e)| e)?, std::process::id());
///
///     let driver = start(SupervisorConfig::default())?;
///     assert_eq!(current_half(), Half::Kernel);
///     let pid = where_am_i().map_err(|Failed(e)| e)?;
///     assert_eq!(Some(pid), driver.pid(), "it ran in the user half");
///
///     drop(driver); // stops the user half
///     assert_eq!(current_half(), Half::Monolithic);
///     Ok(())
/// }
/// ```
pub fn start(config: SupervisorConfig) -> Result<SplitDriver, ComponentError> {
    let supervisor = Supervisor::start(config, Arc::new(ObjectTracker::new()))?;
    let endpoint = Arc::clone(supervisor.endpoint());
    install_kernel(Arc::clone(&endpoint));
    Ok(SplitDriver {
        supervisor: Some(supervisor),
        endpoint,
    })
}

impl SplitDriver {
    /// The supervisor of the user half.
    pub fn supervisor(&self) -> &Supervisor {
        self
    }

    /// Stops the user half cleanly (it is asked to exit, then killed if it does not) and
    /// returns this process to monolithic mode.
    pub fn stop(mut self) {
        self.uninstall();
        if let Some(supervisor) = self.supervisor.take() {
            supervisor.shutdown();
        }
    }

    fn uninstall(&self) {
        if kernel_endpoint().is_some_and(|installed| Arc::ptr_eq(&installed, &self.endpoint)) {
            uninstall_kernel();
        }
    }
}

impl Deref for SplitDriver {
    type Target = Supervisor;

    fn deref(&self) -> &Supervisor {
        self.supervisor
            .as_ref()
            .expect("a SplitDriver holds its supervisor until it is stopped")
    }
}

impl Drop for SplitDriver {
    fn drop(&mut self) {
        self.uninstall();
        // Dropping the supervisor stops supervision and kills the user half.
        self.supervisor.take();
    }
}
