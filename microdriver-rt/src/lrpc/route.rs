//! Which half the calling thread is in, decided without a shared lock.
//!
//! Every `#[critical]` and `#[upcall]` stub asks this on every call, so the answer must
//! cost no more than a direct call's neighbourhood: a thread-local check and one load of a
//! process-wide word that only `install_*` / `uninstall_*` write (so its cache line stays
//! shared in every core's cache). The endpoints themselves sit behind locks that only the
//! installers and the first call of a thread after an install take; each thread keeps the
//! endpoint it last saw, validated against the word's install generation.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::{Half, KernelEndpoint, UserEndpoint};

/// Bit 0: a kernel endpoint is installed; bit 1: a user endpoint is installed for the whole
/// process; the rest: the install generation (bumped by every install and uninstall).
static ROUTE: AtomicU64 = AtomicU64::new(0);
const KERNEL_BIT: u64 = 1;
const USER_BIT: u64 = 2;
const GENERATION: u64 = 4;

static KERNEL: RwLock<Option<Arc<KernelEndpoint>>> = RwLock::new(None);
static USER: RwLock<Option<Arc<UserEndpoint>>> = RwLock::new(None);

/// A thread's cached endpoint and the `ROUTE` word it was read under.
type Cached<E> = RefCell<(u64, Option<Arc<E>>)>;

thread_local! {
    /// The endpoint of a user-half worker thread.
    static USER_CONTEXT: RefCell<Option<Arc<UserEndpoint>>> = const { RefCell::new(None) };
    /// Whether `USER_CONTEXT` is set (read on every routing decision).
    static IN_USER_CONTEXT: Cell<bool> = const { Cell::new(false) };
    /// The kernel endpoint this thread last saw, and the `ROUTE` word it saw it under.
    static KERNEL_CACHE: Cached<KernelEndpoint> = const { RefCell::new((u64::MAX, None)) };
    /// The process-wide user endpoint this thread last saw, and the `ROUTE` word.
    static USER_CACHE: Cached<UserEndpoint> = const { RefCell::new((u64::MAX, None)) };
}

/// Publishes a change: called with the endpoint's write lock held, so the word and the
/// slot it describes change together for anyone reading both under the read lock.
fn publish(set: u64, clear: u64) {
    let word = ROUTE.load(Ordering::Relaxed);
    let word = ((word | set) & !clear).wrapping_add(GENERATION);
    ROUTE.store(word, Ordering::Release);
}

/// Makes `endpoint` the channel this process's upcalls use (the process is the kernel
/// half). Returns the previous one.
pub fn install_kernel(endpoint: Arc<KernelEndpoint>) -> Option<Arc<KernelEndpoint>> {
    let mut slot = KERNEL.write();
    let previous = slot.replace(endpoint);
    publish(KERNEL_BIT, 0);
    previous
}

/// Removes the kernel endpoint: stubs become direct calls again (monolithic).
pub fn uninstall_kernel() -> Option<Arc<KernelEndpoint>> {
    let mut slot = KERNEL.write();
    let previous = slot.take();
    publish(0, KERNEL_BIT);
    previous
}

/// Makes this whole process the user half, downcalling through `endpoint`.
pub fn install_user(endpoint: Arc<UserEndpoint>) {
    let mut slot = USER.write();
    *slot = Some(endpoint);
    publish(USER_BIT, 0);
}

/// Marks the calling thread as a user-half thread (workers call this).
pub(crate) fn enter_user_context(endpoint: Arc<UserEndpoint>) {
    USER_CONTEXT.with(|c| *c.borrow_mut() = Some(endpoint));
    IN_USER_CONTEXT.with(|c| c.set(true));
}

/// Which half the calling thread is in (see the module docs of [`super`]). One
/// thread-local read and one shared, read-only load: no lock, no write.
///
/// ```
/// use microdriver_rt::{current_half, Half};
///
/// // No split driver started in this process: every annotated function is a direct call.
/// assert_eq!(current_half(), Half::Monolithic);
/// ```
#[inline]
pub fn current_half() -> Half {
    if IN_USER_CONTEXT.with(Cell::get) {
        return Half::User;
    }
    let word = ROUTE.load(Ordering::Acquire);
    if word & USER_BIT != 0 {
        Half::User
    } else if word & KERNEL_BIT != 0 {
        Half::Kernel
    } else {
        Half::Monolithic
    }
}

/// Runs `f` with the cached endpoint of `cache`, refreshing it from `global` when the
/// `ROUTE` word moved since. Re-entrant: a nested call (a downcall served while this
/// thread waits for an upcall may make an upcall) borrows the cache again; if it must
/// refresh while an outer call holds the cache, or the thread's locals are already gone
/// (a call from a thread-local destructor), it reads the global slot directly.
fn with_cached<E, R>(
    cache: &'static std::thread::LocalKey<Cached<E>>,
    global: &RwLock<Option<Arc<E>>>,
    f: impl FnOnce(Option<&Arc<E>>) -> R,
) -> R {
    let mut f = Some(f);
    let mut call = |endpoint: Option<&Arc<E>>| f.take().map(|f| f(endpoint));
    let cached = cache.try_with(|cell| {
        let word = ROUTE.load(Ordering::Acquire);
        let stale = cell.try_borrow().map_or(true, |c| c.0 != word);
        if stale {
            let fresh = {
                let slot = global.read();
                // Read under the lock the installers hold while they publish, so the
                // word and the endpoint belong together.
                (ROUTE.load(Ordering::Acquire), slot.clone())
            };
            match cell.try_borrow_mut() {
                Ok(mut c) => *c = fresh,
                Err(_) => return call(fresh.1.as_ref()),
            }
        }
        let cached = cell.borrow();
        call(cached.1.as_ref())
    });
    match cached.ok().flatten() {
        Some(result) => result,
        None => {
            let endpoint = global.read().clone();
            match call(endpoint.as_ref()) {
                Some(result) => result,
                // `f` runs exactly once above or here; this arm is never taken.
                None => unreachable!("the routing callback ran but returned nothing"),
            }
        }
    }
}

/// Runs `f` with the installed kernel endpoint, if any, without a lock or a shared write.
pub(crate) fn with_kernel_endpoint<R>(f: impl FnOnce(Option<&KernelEndpoint>) -> R) -> R {
    if ROUTE.load(Ordering::Acquire) & KERNEL_BIT == 0 {
        return f(None);
    }
    with_cached(&KERNEL_CACHE, &KERNEL, |e| f(e.map(|e| &**e)))
}

/// Runs `f` with this thread's or process's user endpoint, if any, without a lock or a
/// shared write.
pub(crate) fn with_user_endpoint<R>(f: impl FnOnce(Option<&UserEndpoint>) -> R) -> R {
    if IN_USER_CONTEXT.with(Cell::get) {
        return USER_CONTEXT.with(|c| f(c.borrow().as_deref()));
    }
    if ROUTE.load(Ordering::Acquire) & USER_BIT == 0 {
        return f(None);
    }
    with_cached(&USER_CACHE, &USER, |e| f(e.map(|e| &**e)))
}

/// The installed kernel endpoint, if any.
pub fn kernel_endpoint() -> Option<Arc<KernelEndpoint>> {
    if ROUTE.load(Ordering::Acquire) & KERNEL_BIT == 0 {
        return None;
    }
    with_cached(&KERNEL_CACHE, &KERNEL, |e| e.cloned())
}

/// The user endpoint of this thread or process, if it is in the user half.
pub fn user_endpoint() -> Option<Arc<UserEndpoint>> {
    if IN_USER_CONTEXT.with(Cell::get) {
        return USER_CONTEXT.with(|c| c.borrow().clone());
    }
    if ROUTE.load(Ordering::Acquire) & USER_BIT == 0 {
        return None;
    }
    with_cached(&USER_CACHE, &USER, |e| e.cloned())
}
