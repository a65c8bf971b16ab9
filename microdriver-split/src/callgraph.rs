//! The call graph: functions as nodes, call edges (direct, method, trait dispatch,
//! indirect, deferred) as edges.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use crate::body::{self, Sink};
use crate::cfg::CfgSet;
use crate::collect;
use crate::error::{Error, Result};
use crate::model::{
    Analysis, CallEdge, CfgNote, EdgeKind, FnId, FnInfo, FnKind, Registration, Unresolved,
};
use crate::parse;
use crate::tables::Tables;

/// A crate's call graph. Node `i` is function `fns[i]`.
#[derive(Debug)]
pub struct CallGraph {
    /// The crate root file.
    pub root: PathBuf,
    /// Every function and closure.
    pub fns: Vec<FnInfo>,
    /// The graph; node weights are function ids.
    pub graph: DiGraph<FnId, CallEdge>,
    /// `cfg`-gated items and whether they were analysed.
    pub cfg_notes: Vec<CfgNote>,
    /// What the analysis could not resolve.
    pub unresolved: Vec<Unresolved>,
    /// Functions and closures handed to functions outside the crate, and to which.
    pub registrations: Vec<Registration>,
    /// Which analysis built it, and why when it is the syntax pass.
    pub analysis: Analysis,
}

/// Summary counts of the graph.
#[derive(Debug, Clone, Serialize)]
pub struct GraphStats {
    /// Functions and closures.
    pub functions: usize,
    /// Of which closures.
    pub closures: usize,
    /// Call edges.
    pub edges: usize,
    /// Functions whose address is taken.
    pub address_taken: usize,
}

/// Whether a function can be the target of an indirect call whose declared parameter types
/// are `sig`: unknown types, untyped closure parameters, a receiver (`self`), generic
/// parameters and `_` match anything; other types must be equal after normalisation.
pub fn signature_fits(sig: Option<&[String]>, f: &FnInfo) -> bool {
    let Some(sig) = sig else {
        return true;
    };
    let site = if f.has_self {
        sig.get(1..).unwrap_or_default()
    } else {
        sig
    };
    site.iter().zip(&f.params).all(|(want, have)| {
        want == "_"
            || *want == crate::template::normalise_type(have)
            || have
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| {
                    w == "_" || w == "impl" || w == "Self" || f.generics.iter().any(|g| g == w)
                })
    })
}

impl CallGraph {
    /// Analyses the crate at `path` (a crate directory, a source directory or a root file)
    /// with the semantic model where it can load (the `semantic` feature, a `Cargo.toml`),
    /// else with the syntax pass alone; [`CallGraph::analysis`] says which ran and why.
    /// `MICRODRIVER_ANALYSIS=syntax` in the environment forces the syntax pass.
    pub fn analyze(path: &Path, cfg: &CfgSet) -> Result<CallGraph> {
        let graph = Self::analyze_syntax(path, cfg)?;
        if std::env::var_os("MICRODRIVER_ANALYSIS").is_some_and(|v| v == "syntax") {
            return Ok(graph.with_analysis(Analysis::Syntax {
                reason: "MICRODRIVER_ANALYSIS=syntax".into(),
            }));
        }
        Ok(crate::semantic::refine(graph))
    }

    /// Sets which analysis built the graph.
    pub fn with_analysis(mut self, analysis: Analysis) -> CallGraph {
        self.analysis = analysis;
        self
    }

    /// Analyses the crate at `path` with the syntax pass alone.
    pub fn analyze_syntax(path: &Path, cfg: &CfgSet) -> Result<CallGraph> {
        let root = parse::find_root(path)?;
        let src = parse::load(&root, cfg)?;
        let (tables, notes) = collect::collect(&src, cfg);
        let sink = body::walk_all(&tables);
        let mut cfg_notes = src.cfg_notes.clone();
        cfg_notes.extend(notes);
        let mut unresolved = src.unresolved.clone();
        Ok(Self::assemble(
            root,
            tables,
            sink,
            cfg_notes,
            &mut unresolved,
        ))
    }

    fn assemble(
        root: PathBuf,
        tables: Tables,
        sink: Sink,
        cfg_notes: Vec<CfgNote>,
        unresolved: &mut Vec<Unresolved>,
    ) -> CallGraph {
        let mut fns = tables.fns;
        fns.extend(sink.closures);
        let mut taken = sink.taken;
        let mut edges = sink.edges;
        for v in &sink.via_param {
            let contained = !v.targets.is_empty()
                && v.targets.iter().all(|t| {
                    sink.param_escapes
                        .get(t)
                        .is_some_and(|esc| esc.get(v.index) == Some(&false))
                });
            if contained {
                // The callee calls it on the caller's behalf, during the call: an edge
                // from the caller (context-sensitive: a closure passed from a cold
                // function stays cold even when a hot function calls the same callee).
                let froms: Vec<FnId> = match v.from {
                    Some(f) => vec![f],
                    None => v.targets.clone(),
                };
                for from in froms {
                    edges.push(CallEdge {
                        from,
                        to: v.value,
                        kind: EdgeKind::ViaParameter,
                        file: v.file.clone(),
                        line: v.line,
                    });
                }
            } else {
                taken.push(v.value);
            }
        }
        for f in taken {
            if let Some(info) = fns.get_mut(f) {
                info.address_taken = true;
            }
        }
        // A closure's lines are its own, not its parent's.
        for i in 0..fns.len() {
            if let (FnKind::Closure, Some(p)) = (fns[i].kind, fns[i].parent) {
                let l = fns[i].lines;
                fns[p].lines = fns[p].lines.saturating_sub(l).max(1);
            }
        }
        for site in &sink.indirect {
            // A call of a parameter that does not escape, and that every call site in
            // the crate passes a closure or function to: those values have edges from
            // the callers (above); no fan-out.
            if let Some(index) = site.param {
                let contained = sink
                    .param_escapes
                    .get(&site.from)
                    .is_some_and(|esc| esc.get(index) == Some(&false))
                    && !sink
                        .opaque_param_args
                        .iter()
                        .any(|(callees, i)| *i == index && callees.contains(&site.from));
                if contained {
                    continue;
                }
            }
            let targets: Vec<FnId> = fns
                .iter()
                .filter(|f| {
                    f.address_taken
                        && f.arity == site.arity
                        && signature_fits(site.sig.as_deref(), f)
                })
                .map(|f| f.id)
                .collect();
            if targets.is_empty() {
                unresolved.push(Unresolved {
                    file: site.file.clone(),
                    line: site.line,
                    what: format!("indirect call with {} argument(s)", site.arity),
                    reason: "no address-taken function of that arity in the crate; no edge".into(),
                });
            }
            for to in targets {
                edges.push(CallEdge {
                    from: site.from,
                    to,
                    kind: EdgeKind::Indirect,
                    file: site.file.clone(),
                    line: site.line,
                });
            }
        }
        unresolved.extend(sink.unresolved);
        let mut graph = DiGraph::with_capacity(fns.len(), edges.len());
        for f in &fns {
            graph.add_node(f.id);
        }
        let mut seen = HashSet::new();
        for e in edges {
            if seen.insert((e.from, e.to, e.kind)) {
                graph.add_edge(NodeIndex::new(e.from), NodeIndex::new(e.to), e);
            }
        }
        CallGraph {
            root,
            fns,
            graph,
            cfg_notes,
            unresolved: std::mem::take(unresolved),
            registrations: sink.registrations,
            analysis: Analysis::Syntax {
                reason: "not yet refined".into(),
            },
        }
    }

    /// Every edge.
    pub fn edges(&self) -> impl Iterator<Item = &CallEdge> {
        self.graph.edge_weights()
    }

    /// Summary counts.
    pub fn stats(&self) -> GraphStats {
        GraphStats {
            functions: self.fns.len(),
            closures: self
                .fns
                .iter()
                .filter(|f| f.kind == FnKind::Closure)
                .count(),
            edges: self.graph.edge_count(),
            address_taken: self.fns.iter().filter(|f| f.address_taken).count(),
        }
    }

    /// Finds a function by path: exact, without a leading `crate::`, or as the unique
    /// function whose path ends in `::name`.
    pub fn find(&self, name: &str) -> Result<FnId> {
        let name = name.strip_prefix("crate::").unwrap_or(name);
        if let Some(f) = self.fns.iter().find(|f| f.path == name) {
            return Ok(f.id);
        }
        let suffix = format!("::{name}");
        let cands: BTreeSet<&str> = self
            .fns
            .iter()
            .filter(|f| f.path.ends_with(&suffix))
            .map(|f| f.path.as_str())
            .collect();
        match cands.len() {
            1 => self.find(cands.iter().next().copied().unwrap_or_default()),
            0 => Err(Error::UnknownFunction {
                name: name.to_string(),
                hint: String::new(),
            }),
            _ => Err(Error::UnknownFunction {
                name: name.to_string(),
                hint: format!(
                    " (ambiguous: {})",
                    cands.into_iter().collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }

    /// Total lines of all functions.
    pub fn total_lines(&self) -> usize {
        self.fns.iter().map(|f| f.lines).sum()
    }
}
