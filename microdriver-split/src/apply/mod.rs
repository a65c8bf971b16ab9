//! `apply`: refactors an unannotated driver crate into a split one (issue 19, section 3).
//!
//! From a split (the propagation split, or `cut`'s minimum cut) it decides:
//! - `#[critical]` on the kernel half's entry points (the template's roots) and on its
//!   *services*, the downcall targets: public free functions outside the critical set that
//!   take the device handle (a parameter type at least two entry roots take, e.g. `DevId`)
//!   and call straight into the critical set. They are where the user half reaches the
//!   device, so they run in the kernel half with what they reach. Other critical functions
//!   the user half calls (pure helpers: constructors, conversions) are linked into both
//!   halves and run in their caller's half: they get no stub.
//! - `#[upcall]` on the user half's entry points: public free functions outside the kernel
//!   half that the kernel side calls, i.e. the critical set, the crate's *host* code (the
//!   files that spawn the threads that call the entry roots: the operating system's part of
//!   the crate), or nothing in the crate at all (they are called from outside).
//!   `#[upcall(deferred)]` when the only kernel-half call sites ignore the result.
//! - a `microdriver-split.toml` with the template (and a comment listing the roots found).
//! - a **prompt** for every field of a type that crosses the cut (a parameter or result of
//!   an annotated function, and what its fields hold) and cannot cross as it is: raw
//!   pointers, references, trait objects, shared-state handles, types not known to
//!   implement `Marshal`. Each prompt is written on the field as
//!   `#[marshal(prompt = "...")]`, which the derive refuses until it is replaced by the
//!   answer; `--accept-guesses` writes the guesses it is sure of instead.
//!
//! Edits are insertions of whole lines before a function or field (indented like it):
//! the rest of the file, comments and formatting included, is left as it is. Functions that
//! cannot carry an annotation (methods, generic or `const` functions, arguments that cannot
//! cross) are listed as skipped, with the reason.

mod compare;
mod crossing;
mod edit;
mod plan;

use std::collections::BTreeMap;

use crate::model::FnId;

pub use compare::{agreement, Agreement};
pub use crossing::Prompt;
pub use plan::{plan, static_profile, Annotation, Plan, Skipped};

/// Which split the annotations come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Roots plus everything they reach.
    Propagation,
    /// `cut`'s minimum cut, from a profile of call frequencies (calls/s by edge).
    Cut {
        /// Calls per second by (caller, callee).
        freq: BTreeMap<(FnId, FnId), f64>,
        /// The cut's weights.
        weights: crate::cut::Weights,
    },
}

/// Options of [`plan`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The split to annotate.
    pub source: Source,
    /// Write the guesses marked sure instead of prompting for them.
    pub accept_guesses: bool,
    /// Also judge fields that already carry a `#[marshal(...)]` annotation, as if they had
    /// none, and compare the guess with it (measures the guesses against a hand split).
    pub check_guesses: bool,
}
