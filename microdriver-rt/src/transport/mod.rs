//! Transports: the memory the two halves' call slots live in, and what a crossing costs.
//!
//! Every transport carries the same slot protocol ([`crate::lrpc`]); they differ in where
//! the slots live and how a crossing is paid for:
//!
//! - [`shm`]: a memfd region mapped by both processes, doorbells on futex words in the
//!   region (cross-process futexes), with an optional bounded spin before sleeping;
//! - [`local`]: the same layout on the heap, for both halves as threads of one process
//!   (unit tests, and loom, where its words and data cells are loom's);
//! - [`delay`]: wraps any transport and adds a fixed latency to every crossing (to
//!   reproduce the paper's Figure 4).
//!
//! # Layout
//! A transport is `HEADER_WORDS` control words, then per slot `SLOT_WORDS` control words,
//! then per slot `capacity` data bytes. [`Area`] gives typed access; everything read from
//! it is untrusted (the other half may write anything at any time), so the protocol
//! validates every word it reads and copies data out before decoding it.

mod area;
pub mod delay;
mod futex;
pub mod local;
crate::sync::outside_loom! {
    pub mod shm;
}

pub use area::{Area, AreaError, Word, HEADER_WORDS, SLOT_WORDS};
pub use futex::{wait_on, wake_all, wake_one};

/// Memory for the slot protocol plus the cost of a crossing.
pub trait Transport: Area {
    /// Called once per crossing (each request and each reply), before the other half is
    /// signalled. The `delay` transport spends its injected latency here.
    fn before_crossing(&self) {}
}
