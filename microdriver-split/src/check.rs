//! `check`: where the annotations disagree with the analysis.
//!
//! Rules (see README):
//! 1. An `#[upcall]` function called (without a deferral) from a function in the critical
//!    set: the critical path would wait on the user half.
//! 2. A plain `#[critical]` function that no entry root reaches. Entry roots are template
//!    roots, `#[critical(root)]` functions and `--root` functions; plain `#[critical]`
//!    functions do not count as entries (else every one would trivially reach itself).
//! 3. An `#[upcall]` function that is itself an entry root (template match or `--root`).

use serde::Serialize;

use crate::callgraph::CallGraph;
use crate::model::{EdgeKind, Mark};
use crate::propagate::{reach, Split};
use crate::template::{Root, RootReason};

/// One disagreement.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    /// File of the offending call site or function.
    pub file: String,
    /// Line.
    pub line: usize,
    /// Rule name: `upcall-on-critical-path`, `critical-unreached`, `upcall-is-root`.
    pub rule: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}: error[{}]: {}",
            self.file, self.line, self.rule, self.message
        )
    }
}

/// Checks the annotations of a graph against the split from `roots`.
pub fn check(graph: &CallGraph, roots: &[Root]) -> Vec<Diagnostic> {
    let split = Split::propagate(graph, roots);
    let path_of = |ids: Vec<usize>| {
        ids.into_iter()
            .map(|i| graph.fns[i].path.clone())
            .collect::<Vec<_>>()
            .join(" -> ")
    };
    let mut out = Vec::new();
    for e in graph.edges() {
        let callee = &graph.fns[e.to];
        if !split.critical[e.from]
            || !callee.mark.is_upcall()
            || e.kind == EdgeKind::Deferred
            || split.critical[e.to]
        {
            continue;
        }
        out.push(Diagnostic {
            file: e.file.clone(),
            line: e.line,
            rule: "upcall-on-critical-path",
            message: format!(
                "#[upcall] fn `{}` ({}) is called from the critical set without a deferral \
                 ({} edge; critical chain: {}); post a deferred upcall instead (e.g. \
                 `defer_upcall({})` or mark it #[upcall(deferred)]), or make it #[critical]",
                callee.path,
                callee.location(),
                serde_json::to_value(e.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                path_of(split.chain(e.from)),
                callee.name,
            ),
        });
    }
    let entries: Vec<usize> = roots
        .iter()
        .filter(|r| r.is_entry())
        .map(|r| r.fn_id)
        .collect();
    let (reached, _) = reach(graph, &entries);
    let entry_names = if entries.is_empty() {
        "none: no template root, #[critical(root)] or --root".to_string()
    } else {
        path_of(entries.clone()).replace(" -> ", ", ")
    };
    for f in &graph.fns {
        if f.mark == Mark::Critical && !reached[f.id] {
            out.push(Diagnostic {
                file: f.file.clone(),
                line: f.line,
                rule: "critical-unreached",
                message: format!(
                    "#[critical] fn `{}` is not reached from any entry root (entry roots: {}); \
                     mark it #[critical(root)] if it is an entry point, call it from a root, or \
                     drop the annotation",
                    f.path, entry_names
                ),
            });
        }
    }
    for r in roots {
        let f = &graph.fns[r.fn_id];
        if f.mark.is_upcall() && matches!(r.reason, RootReason::Template(_) | RootReason::Listed) {
            out.push(Diagnostic {
                file: f.file.clone(),
                line: f.line,
                rule: "upcall-is-root",
                message: format!(
                    "#[upcall] fn `{}` is a critical root ({:?}); rename it, change the template, \
                     or drop the annotation",
                    f.path, r.reason
                ),
            });
        }
    }
    out.sort_by(|a, b| (&a.file, a.line, a.rule).cmp(&(&b.file, b.line, b.rule)));
    out
}
