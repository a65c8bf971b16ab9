//! Process-wide configuration and the registry of live locks.

use super::*;

// ---------------------------------------------------------------------------------------
// Process-wide configuration and registry. Plain std types even under loom: no critical
// section below makes a loom operation, so they never block a modelled thread.

pub(super) type Hook = StdArc<dyn Fn() + Send + Sync>;

pub(super) static HOLD_LIMIT_NANOS: StdAtomicU64 = StdAtomicU64::new(0);
pub(super) static HOOK: StdRwLock<Option<Hook>> = StdRwLock::new(None);
pub(super) static NEXT_ID: StdAtomicU64 = StdAtomicU64::new(1);
pub(super) static NEXT_TOKEN: StdAtomicU64 = StdAtomicU64::new(1);
pub(super) static REGISTRY: StdMutex<BTreeMap<u64, Weak<dyn ErasedLock>>> =
    StdMutex::new(BTreeMap::new());

pub(super) fn registry() -> std::sync::MutexGuard<'static, BTreeMap<u64, Weak<dyn ErasedLock>>> {
    REGISTRY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(super) fn hold_limit() -> Option<Duration> {
    match HOLD_LIMIT_NANOS.load(StdOrdering::Relaxed) {
        0 => None,
        nanos => Some(Duration::from_nanos(nanos)),
    }
}

pub(super) fn call_stuck_hook() {
    let hook = HOOK
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone();
    if let Some(hook) = hook {
        hook();
    }
}

pub(super) fn lookup(id: u64) -> Option<StdArc<dyn ErasedLock>> {
    registry().get(&id).and_then(Weak::upgrade)
}

pub(super) fn live_locks() -> Vec<StdArc<dyn ErasedLock>> {
    let mut registry = registry();
    registry.retain(|_, weak| weak.strong_count() > 0);
    registry.values().filter_map(Weak::upgrade).collect()
}
