//! Critical-set propagation: the roots plus everything they transitively call, not
//! following deferrals and not entering `#[upcall]` functions (those run in the user half;
//! a call into one from the critical set is a crossing that `check` reports).

use std::collections::VecDeque;

use petgraph::graph::NodeIndex;
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::callgraph::CallGraph;
use crate::model::{CallEdge, EdgeKind, FnId};
use crate::template::Root;

/// Which way an edge crosses the split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Kernel half calls the user half synchronously (an upcall stub).
    Upcall,
    /// Kernel half posts a deferred upcall (a deferred-upcall stub).
    DeferredUpcall,
    /// User half calls the kernel half (a downcall stub).
    Downcall,
}

/// A call edge crossing the split.
#[derive(Debug, Clone, Serialize)]
pub struct Crossing {
    /// The edge.
    pub edge: CallEdge,
    /// Its direction.
    pub direction: Direction,
}

/// A split: the roots and the critical set.
#[derive(Debug, Clone)]
pub struct Split {
    /// The roots it was computed from.
    pub roots: Vec<Root>,
    /// `critical[f]`: whether `f` is in the kernel half.
    pub critical: Vec<bool>,
    /// For each critical function, the caller through which it was first reached.
    pub via: Vec<Option<FnId>>,
}

impl Split {
    /// Propagates from every root.
    pub fn propagate(graph: &CallGraph, roots: &[Root]) -> Split {
        let starts: Vec<FnId> = roots.iter().map(|r| r.fn_id).collect();
        let (critical, via) = reach(graph, &starts);
        Split {
            roots: roots.to_vec(),
            critical,
            via,
        }
    }

    /// A split given directly as a kernel set (used by `cut`).
    pub fn from_set(roots: &[Root], critical: Vec<bool>) -> Split {
        let n = critical.len();
        Split {
            roots: roots.to_vec(),
            critical,
            via: vec![None; n],
        }
    }

    /// Ids of the critical functions.
    pub fn critical_ids(&self) -> Vec<FnId> {
        (0..self.critical.len())
            .filter(|i| self.critical[*i])
            .collect()
    }

    /// Lines in the kernel half.
    pub fn critical_lines(&self, graph: &CallGraph) -> usize {
        graph
            .fns
            .iter()
            .filter(|f| self.critical[f.id])
            .map(|f| f.lines)
            .sum()
    }

    /// The call chain from a root to `f` (root first).
    pub fn chain(&self, f: FnId) -> Vec<FnId> {
        let mut out = vec![f];
        let mut cur = f;
        while let Some(p) = self.via.get(cur).copied().flatten() {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            cur = p;
        }
        out.reverse();
        out
    }

    /// Edges that cross the split, each needing a stub.
    pub fn crossings(&self, graph: &CallGraph) -> Vec<Crossing> {
        let mut out = Vec::new();
        for e in graph.edges() {
            let (a, b) = (self.critical[e.from], self.critical[e.to]);
            let direction = match (a, b, e.kind) {
                (true, false, EdgeKind::Deferred) => Direction::DeferredUpcall,
                (true, false, _) => Direction::Upcall,
                (false, true, EdgeKind::Deferred) => continue,
                (false, true, _) => Direction::Downcall,
                _ => continue,
            };
            out.push(Crossing {
                edge: e.clone(),
                direction,
            });
        }
        out.sort_by_key(|c| (c.edge.from, c.edge.to));
        out
    }
}

/// Breadth-first reach over propagating edges, not entering `#[upcall]` functions that
/// are not themselves starts.
pub fn reach(graph: &CallGraph, starts: &[FnId]) -> (Vec<bool>, Vec<Option<FnId>>) {
    let n = graph.fns.len();
    let mut seen = vec![false; n];
    let mut via = vec![None; n];
    let mut queue = VecDeque::new();
    for &s in starts {
        if s < n && !seen[s] {
            seen[s] = true;
            queue.push_back(s);
        }
    }
    while let Some(f) = queue.pop_front() {
        for e in graph.graph.edges(NodeIndex::new(f)) {
            let w = e.weight();
            if !w.kind.propagates() {
                continue;
            }
            let to = e.target().index();
            if seen[to] || graph.fns[to].mark.is_upcall() {
                continue;
            }
            seen[to] = true;
            via[to] = Some(f);
            queue.push_back(to);
        }
    }
    (seen, via)
}
