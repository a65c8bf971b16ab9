//! `check`: where the annotations disagree with the analysis.
//!
//! Rules (see README):
//! 1. An `#[upcall]` function called (without a deferral) from a function in the critical
//!    set: the critical path would wait on the user half.
//! 2. A plain `#[critical]` function that no entry root reaches and that the user half does
//!    not call either. Entry roots are template roots, `#[critical(root)]` functions and
//!    `--root` functions; plain `#[critical]` functions do not count as entries (else every
//!    one would trivially reach itself). A `#[critical]` function called from the user half
//!    is a downcall target (a kernel service, e.g. checked register access): it and what it
//!    reaches are accounted for; so is a `pub` one, which code outside the analysed
//!    library (binaries, tests, other crates) may call. `--strict-critical` drops both
//!    exemptions.
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

/// How strict `check` is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Rule 2 without the downcall exemption: every plain `#[critical]` function must be
    /// reached from an entry root.
    pub strict_critical: bool,
}

/// Checks the annotations of a graph against the split from `roots`.
pub fn check(graph: &CallGraph, roots: &[Root]) -> Vec<Diagnostic> {
    check_with(graph, roots, Options::default())
}

/// [`check`] with options.
pub fn check_with(graph: &CallGraph, roots: &[Root], options: Options) -> Vec<Diagnostic> {
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
    // Downcall entries: plain #[critical] functions the user half calls (kernel services
    // such as checked register access). What they reach is accounted for.
    let mut starts = entries.clone();
    if !options.strict_critical {
        for e in graph.edges() {
            if e.kind.propagates()
                && graph.fns[e.to].mark == Mark::Critical
                && !split.critical[e.from]
            {
                starts.push(e.to);
            }
        }
        // `pub` #[critical] functions are downcall entries for code outside the analysed
        // library target (its binaries and tests, other crates).
        starts.extend(
            graph
                .fns
                .iter()
                .filter(|f| f.mark == Mark::Critical && f.public)
                .map(|f| f.id),
        );
    }
    let (reached, _) = reach(graph, &starts);
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
                    "#[critical] fn `{}` is not reached from any entry root (entry roots: {}){}; \
                     if it is an entry point, name it in the template (or --root, or \
                     #[critical(root)]), else call it from a root or drop the annotation",
                    f.path,
                    entry_names,
                    if options.strict_critical {
                        ""
                    } else {
                        " nor called from the user half, and it is not `pub`"
                    }
                ),
            });
        }
    }
    for r in roots {
        let f = &graph.fns[r.fn_id];
        if f.mark.is_upcall()
            && matches!(r.reason, RootReason::Template { .. } | RootReason::Listed)
        {
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
