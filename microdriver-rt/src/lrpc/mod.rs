//! LRPC between the halves: upcalls (kernel half to user half), downcalls (back), deferred
//! upcalls, and the routing the `#[upcall]` / `#[critical]` stubs use.
//!
//! # Routing
//! One source builds both halves; which half a thread is in is known at run time:
//! - a thread serving upcalls (a user-half worker), or any thread of a process started as
//!   the user half, is **in the user half**: `#[critical]` functions called there become
//!   downcalls, `#[upcall]` functions run directly;
//! - a thread of a process with an installed [`KernelEndpoint`] is **in the kernel half**:
//!   `#[upcall]` functions become upcalls, `#[critical]` ones run directly;
//! - with neither, the driver is **monolithic**: every stub is a direct call (the
//!   baseline for comparisons, and what unit tests of driver logic use).
//!
//! # Example
//!
//! A `#[critical]` function called from the user half becomes a downcall; the kernel half
//! checks what the user half asks for, since a user half is assumed to fail:
//!
//! ```
//! use microdriver_rt::{critical, upcall, Marshal, CallError};
//!
//! #[derive(Debug, PartialEq, Marshal)]
//! enum Error {
//!     Refused(u32),
//!     Call(String),
//! }
//! impl From<CallError> for Error {
//!     fn from(e: CallError) -> Self { Error::Call(e.to_string()) }
//! }
//!
//! /// Kernel half: a register write, only to the registers the user half may write.
//! #[critical]
//! fn write_reg(offset: u32, value: u32) -> Result<u32, Error> {
//!     if offset != 0x04 {
//!         return Err(Error::Refused(offset));
//!     }
//!     Ok(value)
//! }
//!
//! /// User half: configuration, which asks the kernel half for a register write.
//! #[upcall]
//! fn configure(value: u32) -> Result<u32, Error> {
//!     write_reg(0x04, value)
//! }
//!
//! fn main() {
//!     microdriver_rt::run_user_half_if_requested();
//!     // Monolithic (no `microdriver_rt::start`): direct calls, the same results.
//!     assert_eq!(configure(7), Ok(7));
//!     assert_eq!(write_reg(0x0C, 1), Err(Error::Refused(0x0C)));
//!     let _split = microdriver_rt::start(Default::default()).expect("user half");
//!     assert_eq!(configure(7), Ok(7)); // an upcall making a nested downcall
//! }
//! ```

mod buffers;
mod call;
mod clock;
pub mod entry;
mod error;
pub(crate) mod frame;
mod kernel;
mod route;
mod serve;
pub(crate) mod slot;
pub mod stats;
mod user;

#[doc(hidden)]
pub mod __private;

pub use entry::{Entry, EntryTable, Served};
pub use error::CallError;
pub use kernel::{CallOptions, KernelEndpoint};
pub(crate) use route::enter_user_context;
pub use route::{
    current_half, install_kernel, install_user, kernel_endpoint, uninstall_kernel, user_endpoint,
};
pub use slot::WaitPolicy;
pub use user::UserEndpoint;

/// Which half the calling thread is in (and, in a [`CallError`], which half was called).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Half {
    /// No split: every stub is a direct call.
    Monolithic,
    /// The kernel half: upcalls cross.
    Kernel,
    /// The user half: downcalls cross.
    User,
}

impl std::fmt::Display for Half {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Half::Monolithic => "monolithic",
            Half::Kernel => "kernel",
            Half::User => "user",
        })
    }
}

/// The name of the built-in entry every user half serves: answers at once. The supervisor
/// uses it as a heartbeat to tell a hung user half from a slow call.
pub const PING: &str = "microdriver_rt::lrpc::ping";

fn ping_handler(
    dec: crate::marshal::Decoder<'_>,
    _enc: &mut crate::marshal::Encoder<'_>,
) -> Result<(), crate::marshal::MarshalError> {
    dec.finish()
}

inventory::submit! {
    Entry { name: PING, signature: "fn()", served: Served::ByUser, handler: ping_handler }
}

/// Pings the user half through `endpoint` with `timeout`.
pub fn ping(endpoint: &KernelEndpoint, timeout: std::time::Duration) -> Result<(), CallError> {
    endpoint.call_with_timeout(
        Entry::id_of(PING),
        PING,
        timeout,
        &mut (),
        |_, _| Ok(()),
        |_, _| Ok(()),
    )
}

type Deferred = Box<dyn FnOnce() + Send + 'static>;

/// Posts work for the user half and returns at once: critical code never waits on the
/// user half. The work runs on a background thread of the kernel half (which makes the
/// upcall); its errors are logged.
///
/// `#[upcall(deferred)]` functions do this for you; `defer` is for work that is not one
/// annotated call:
///
/// ```
/// use std::sync::mpsc;
///
/// let (done, finished) = mpsc::channel();
/// microdriver_rt::lrpc::defer(move || {
///     // e.g. a statistics refresh the hot path asks for, made as upcalls
///     done.send("refreshed").unwrap();
/// });
/// assert_eq!(finished.recv().unwrap(), "refreshed");
/// ```
pub fn defer(work: impl FnOnce() + Send + 'static) {
    deferred_queue().send(Box::new(work)).ok();
}

fn deferred_queue() -> &'static crossbeam_channel::Sender<Deferred> {
    static QUEUE: std::sync::OnceLock<crossbeam_channel::Sender<Deferred>> =
        std::sync::OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = crossbeam_channel::unbounded::<Deferred>();
        std::thread::Builder::new()
            .name("deferred-upcalls".into())
            .spawn(move || {
                for work in rx {
                    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                    {
                        tracing::warn!(
                            "deferred upcall panicked: {}",
                            serve::panic_message(&panic)
                        );
                    }
                }
            })
            .expect("spawning the deferred-upcall thread");
        tx
    })
}
