//! `compare`: a hand split and an applied one, function by function.

use std::collections::HashMap;

use serde::Serialize;

use crate::callgraph::CallGraph;
use crate::model::{FnId, Mark};

/// Two splits of one crate compared function by function.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Functions in both crates.
    pub functions: usize,
    /// On the same side in both.
    pub same: usize,
    /// Kernel half in the hand split only.
    pub hand_only: Vec<String>,
    /// Kernel half in the applied split only.
    pub applied_only: Vec<String>,
    /// Functions of one crate missing from the other.
    pub unmatched: usize,
    /// Functions the hand annotated (`#[critical]`, `#[upcall]`, ...).
    pub hand_marks: usize,
    /// Of those, annotated alike in the applied crate.
    pub same_marks: usize,
    /// Annotated functions whose annotation differs or is missing: (path, hand, applied).
    pub mark_differences: Vec<(String, String, String)>,
}

/// Compares the hand split with the applied one (functions matched by path).
pub fn agreement(hand: &CallGraph, hs: &[bool], applied: &CallGraph, aps: &[bool]) -> Agreement {
    let by_path: HashMap<&str, FnId> = applied
        .fns
        .iter()
        .map(|f| (f.path.as_str(), f.id))
        .collect();
    let mut out = Agreement {
        functions: 0,
        same: 0,
        hand_only: Vec::new(),
        applied_only: Vec::new(),
        unmatched: 0,
        hand_marks: 0,
        same_marks: 0,
        mark_differences: Vec::new(),
    };
    for f in &hand.fns {
        let Some(&a) = by_path.get(f.path.as_str()) else {
            out.unmatched += 1;
            continue;
        };
        out.functions += 1;
        let (hm, am) = (f.mark, applied.fns[a].mark);
        if hm != Mark::None {
            out.hand_marks += 1;
        }
        if hm != Mark::None && hm == am {
            out.same_marks += 1;
        } else if hm != am {
            out.mark_differences
                .push((f.path.clone(), format!("{hm:?}"), format!("{am:?}")));
        }
        match (hs[f.id], aps[a]) {
            (x, y) if x == y => out.same += 1,
            (true, _) => out.hand_only.push(f.path.clone()),
            _ => out.applied_only.push(f.path.clone()),
        }
    }
    out.unmatched += applied.fns.len().saturating_sub(out.functions);
    out
}

impl Agreement {
    /// The percentage of functions on the same side.
    pub fn percent(&self) -> f64 {
        if self.functions == 0 {
            return 0.0;
        }
        100.0 * self.same as f64 / self.functions as f64
    }

    /// The report.
    pub fn text(&self, verbose: bool) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if verbose {
            for p in &self.hand_only {
                let _ = writeln!(out, "  kernel half by hand only: {p}");
            }
            for p in &self.applied_only {
                let _ = writeln!(out, "  kernel half by apply only: {p}");
            }
            for (p, h, a) in &self.mark_differences {
                let _ = writeln!(out, "  annotation differs: {p}: hand {h}, apply {a}");
            }
        }
        let _ = writeln!(
            out,
            "annotations: {} of the {} functions the hand annotated are annotated alike; {} written where the hand wrote none",
            self.same_marks,
            self.hand_marks,
            self.mark_differences.iter().filter(|d| d.1 == "None").count()
        );
        let _ = writeln!(
            out,
            "apply agreement with the hand split = {:.1}% ({} of {} functions on the same side; {} in the kernel half by hand only, {} by apply only; {} unmatched)",
            self.percent(),
            self.same,
            self.functions,
            self.hand_only.len(),
            self.applied_only.len(),
            self.unmatched
        );
        out
    }
}
