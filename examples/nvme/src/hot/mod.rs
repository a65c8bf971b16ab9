//! The hot path (kernel half, `#[critical]`): I/O submission, completion and the
//! interrupt handler.

pub mod io;
pub mod prp;
