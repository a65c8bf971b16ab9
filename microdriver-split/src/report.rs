//! `report`: the paper's Figure 2 for one crate, plus roots, crossings, cfg and what
//! could not be resolved.

use std::fmt::Write as _;

use serde::Serialize;

use crate::callgraph::{CallGraph, GraphStats};
use crate::model::{CfgNote, EdgeKind, Unresolved};
use crate::propagate::{Direction, Split};
use crate::template::RootReason;

/// A root, for display.
#[derive(Debug, Clone, Serialize)]
pub struct RootLine {
    /// Function path.
    pub function: String,
    /// `file:line`.
    pub location: String,
    /// Why it is a root.
    pub reason: RootReason,
}

/// A critical function, for display.
#[derive(Debug, Clone, Serialize)]
pub struct FnLine {
    /// Function path.
    pub function: String,
    /// `file:line`.
    pub location: String,
    /// Lines counted.
    pub lines: usize,
}

/// A crossing edge, for display.
#[derive(Debug, Clone, Serialize)]
pub struct CrossingLine {
    /// Caller path.
    pub caller: String,
    /// Callee path.
    pub callee: String,
    /// Stub needed.
    pub direction: Direction,
    /// How the edge was found.
    pub kind: EdgeKind,
    /// Call site `file:line`.
    pub location: String,
}

/// Stubs the split needs: distinct callees per crossing direction.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stubs {
    /// User-half functions the kernel half calls synchronously.
    pub upcall: usize,
    /// User-half functions the kernel half defers to.
    pub deferred_upcall: usize,
    /// Kernel-half functions the user half calls.
    pub downcall: usize,
}

/// The whole report (`--json` prints this).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Crate root file.
    pub crate_root: String,
    /// Template family used.
    pub template: String,
    /// Which analysis built the call graph: `semantic`, or `syntax (why)`.
    pub analysis: String,
    /// Warnings about the template: the roots it found do not look like its family.
    pub warnings: Vec<String>,
    /// Functions, closures included.
    pub functions: usize,
    /// Critical functions.
    pub critical_functions: usize,
    /// Their share, in percent.
    pub critical_functions_pct: f64,
    /// Lines of all functions.
    pub lines: usize,
    /// Lines of critical functions.
    pub critical_lines: usize,
    /// `kernel_half_share`: critical lines / all function lines, in percent.
    pub kernel_half_share_pct: f64,
    /// Graph counts.
    pub graph: GraphStats,
    /// Roots.
    pub roots: Vec<RootLine>,
    /// Critical functions.
    pub critical: Vec<FnLine>,
    /// Crossing edges.
    pub crossings: Vec<CrossingLine>,
    /// Stubs needed.
    pub stubs: Stubs,
    /// cfg-gated items.
    pub cfg: Vec<CfgNote>,
    /// Unresolved constructs.
    pub unresolved: Vec<Unresolved>,
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        (part as f64 * 1000.0 / whole as f64).round() / 10.0
    }
}

impl Report {
    /// Builds the report for a split.
    pub fn new(graph: &CallGraph, split: &Split, template: &str) -> Report {
        let mut critical_ids = split.critical_ids();
        let by_place = |i: &usize| (graph.fns[*i].file.clone(), graph.fns[*i].line, *i);
        critical_ids.sort_by_key(by_place);
        let mut roots = split.roots.clone();
        roots.sort_by_key(|r| by_place(&r.fn_id));
        let lines = graph.total_lines();
        let critical_lines = split.critical_lines(graph);
        let f = |i: usize| &graph.fns[i];
        Report {
            crate_root: graph.root.display().to_string(),
            template: template.to_string(),
            analysis: graph.analysis.to_string(),
            warnings: Vec::new(),
            functions: graph.fns.len(),
            critical_functions: critical_ids.len(),
            critical_functions_pct: pct(critical_ids.len(), graph.fns.len()),
            lines,
            critical_lines,
            kernel_half_share_pct: pct(critical_lines, lines),
            graph: graph.stats(),
            roots: roots
                .iter()
                .map(|r| RootLine {
                    function: f(r.fn_id).path.clone(),
                    location: f(r.fn_id).location(),
                    reason: r.reason.clone(),
                })
                .collect(),
            critical: critical_ids
                .iter()
                .map(|&i| FnLine {
                    function: f(i).path.clone(),
                    location: f(i).location(),
                    lines: f(i).lines,
                })
                .collect(),
            crossings: split
                .crossings(graph)
                .into_iter()
                .map(|c| CrossingLine {
                    caller: f(c.edge.from).path.clone(),
                    callee: f(c.edge.to).path.clone(),
                    direction: c.direction,
                    kind: c.edge.kind,
                    location: format!("{}:{}", c.edge.file, c.edge.line),
                })
                .collect(),
            stubs: {
                let crossings = split.crossings(graph);
                let distinct = |d: Direction| {
                    crossings
                        .iter()
                        .filter(|c| c.direction == d)
                        .map(|c| c.edge.to)
                        .collect::<std::collections::BTreeSet<_>>()
                        .len()
                };
                Stubs {
                    upcall: distinct(Direction::Upcall),
                    deferred_upcall: distinct(Direction::DeferredUpcall),
                    downcall: distinct(Direction::Downcall),
                }
            },
            cfg: graph.cfg_notes.clone(),
            unresolved: graph.unresolved.clone(),
        }
    }

    /// The `kernel_half_share = X%` line.
    pub fn share_line(&self) -> String {
        format!("kernel_half_share = {:.1}%", self.kernel_half_share_pct)
    }

    /// Human-readable rendering.
    pub fn text(&self, graph: &CallGraph) -> String {
        let mut s = String::new();
        let name = graph
            .root
            .parent()
            .and_then(|p| {
                if p.ends_with("src") {
                    p.parent()
                } else {
                    Some(p)
                }
            })
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "crate".into());
        let _ = writeln!(
            s,
            "microdriver split of {} (template: {})",
            self.crate_root, self.template
        );
        let _ = writeln!(s, "analysis: {}", self.analysis);
        for warning in &self.warnings {
            let _ = writeln!(s, "warning: {warning}");
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "  {:<24} {:>9} {:>9} {:>7} {:>8} {:>9} {:>7}",
            "crate", "functions", "critical", "%", "lines", "critical", "%"
        );
        let _ = writeln!(
            s,
            "  {:<24} {:>9} {:>9} {:>6.1}% {:>8} {:>9} {:>6.1}%",
            name,
            self.functions,
            self.critical_functions,
            self.critical_functions_pct,
            self.lines,
            self.critical_lines,
            self.kernel_half_share_pct
        );
        let _ = writeln!(s);
        let critical_closures = self
            .critical
            .iter()
            .filter(|c| c.function.ends_with('}'))
            .count();
        let _ = writeln!(
            s,
            "functions = {} ({} closures, {} of them critical)",
            self.functions, self.graph.closures, critical_closures
        );
        let _ = writeln!(
            s,
            "critical functions = {} ({:.1}%)",
            self.critical_functions, self.critical_functions_pct
        );
        let _ = writeln!(s, "lines = {}", self.lines);
        let _ = writeln!(
            s,
            "critical lines = {} ({:.1}%)",
            self.critical_lines, self.kernel_half_share_pct
        );
        let _ = writeln!(
            s,
            "call edges = {} (address-taken functions: {})",
            self.graph.edges, self.graph.address_taken
        );
        let _ = writeln!(
            s,
            "stubs = {} upcall, {} deferred upcall, {} downcall (distinct callees)",
            self.stubs.upcall, self.stubs.deferred_upcall, self.stubs.downcall
        );
        let _ = writeln!(s, "{}", self.share_line());
        let _ = writeln!(s);
        let _ = writeln!(s, "roots ({}):", self.roots.len());
        for r in &self.roots {
            let why = match &r.reason {
                RootReason::Listed => "--root".to_string(),
                RootReason::Annotated => "#[critical(root)]".to_string(),
                RootReason::Template { role, why } => format!("template: {role}: {why}"),
                RootReason::Critical => "#[critical]".to_string(),
            };
            let _ = writeln!(s, "  {}  [{}]  {}", r.function, why, r.location);
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "critical functions ({}):", self.critical.len());
        for c in &self.critical {
            let _ = writeln!(s, "  {}  ({} lines)  {}", c.function, c.lines, c.location);
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "crossing edges, each needs a stub ({}):",
            self.crossings.len()
        );
        for c in &self.crossings {
            let dir = match c.direction {
                Direction::Upcall => "upcall",
                Direction::DeferredUpcall => "deferred upcall",
                Direction::Downcall => "downcall",
            };
            let _ = writeln!(
                s,
                "  {:<15} {} -> {}  ({:?})  {}",
                dir, c.caller, c.callee, c.kind, c.location
            );
        }
        if !self.cfg.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "cfg-gated items ({}):", self.cfg.len());
            for c in &self.cfg {
                let _ = writeln!(
                    s,
                    "  {}  {}  [{}]  {}:{}",
                    if c.included { "included" } else { "excluded" },
                    c.item,
                    c.predicate,
                    c.file,
                    c.line
                );
            }
        }
        if !self.unresolved.is_empty() {
            let _ = writeln!(s);
            let _ = writeln!(s, "unresolved ({}):", self.unresolved.len());
            for u in &self.unresolved {
                let _ = writeln!(s, "  {}:{}: {}: {}", u.file, u.line, u.what, u.reason);
            }
        }
        s
    }
}
