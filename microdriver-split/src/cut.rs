//! The paper's proposed optimisation: a minimum s-t cut of the call graph as a flow
//! network.
//!
//! Objective: minimise `crossing_weight * (calls/s over edges that cross the split)
//! + line_weight * (lines in the kernel half)`, with every critical root forced into the
//! kernel half and every `#[upcall]` function (that is not a root) forced into the user
//! half. Network: source `s` = kernel side, sink `t` = user side;
//! - `s -> root` with infinite capacity (roots stay in the kernel);
//! - `f -> t` with capacity `line_weight * lines(f)` (cut when `f` is in the kernel);
//! - `upcall -> t` with infinite capacity (`#[upcall]` stays in the user half);
//! - for each profiled pair `{f, g}`, `f -> g` and `g -> f` with capacity
//!   `crossing_weight * (calls/s f->g + calls/s g->f)` (cut when they are split).
//!
//! A minimum cut is exactly a minimum of the objective. Capacities are scaled to integers
//! (1/1000 of a unit) for petgraph's Dinic max-flow; the kernel side is the set reachable
//! from `s` in the residual network (the smallest optimal kernel).

use std::collections::{BTreeMap, VecDeque};

use petgraph::algo::dinics;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use serde::Serialize;

use crate::callgraph::CallGraph;
use crate::error::{Error, Result};
use crate::model::FnId;
use crate::template::Root;

/// Costs of the objective.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Weights {
    /// Cost of one line of code in the kernel half.
    pub line_weight: f64,
    /// Cost of one crossing per second.
    pub crossing_weight: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            line_weight: 1.0,
            crossing_weight: 1.0,
        }
    }
}

const SCALE: f64 = 1000.0;

/// Cost of a split under the profile.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Functions in the kernel half.
    pub kernel_functions: usize,
    /// Lines in the kernel half.
    pub kernel_lines: usize,
    /// Profiled calls per second that cross the split.
    pub crossings_per_second: f64,
    /// The objective.
    pub objective: f64,
}

/// Evaluates the objective for a kernel set.
pub fn cost(
    graph: &CallGraph,
    kernel: &[bool],
    freq: &BTreeMap<(FnId, FnId), f64>,
    w: Weights,
) -> Cost {
    let kernel_lines: usize = graph
        .fns
        .iter()
        .filter(|f| kernel[f.id])
        .map(|f| f.lines)
        .sum();
    let crossings_per_second: f64 = freq
        .iter()
        .filter(|((a, b), _)| kernel[*a] != kernel[*b])
        .map(|(_, f)| *f)
        .sum();
    Cost {
        kernel_functions: kernel.iter().filter(|k| **k).count(),
        kernel_lines,
        crossings_per_second,
        objective: w.line_weight * kernel_lines as f64 + w.crossing_weight * crossings_per_second,
    }
}

fn scaled(x: f64) -> u64 {
    // Saturating float-to-int conversion; costs are finite and non-negative.
    (x * SCALE).round().clamp(0.0, 1e15) as u64
}

/// Computes the minimum-cost kernel set. `freq` maps (caller, callee) to calls/s.
pub fn min_cut(
    graph: &CallGraph,
    roots: &[Root],
    freq: &BTreeMap<(FnId, FnId), f64>,
    w: Weights,
) -> Result<Vec<bool>> {
    if !(w.line_weight.is_finite()
        && w.line_weight >= 0.0
        && w.crossing_weight.is_finite()
        && w.crossing_weight >= 0.0)
    {
        return Err(Error::Weights(format!(
            "{}, {}",
            w.line_weight, w.crossing_weight
        )));
    }
    let n = graph.fns.len();
    let mut is_root = vec![false; n];
    for r in roots {
        is_root[r.fn_id] = true;
    }
    for f in &graph.fns {
        if is_root[f.id] && f.mark.is_upcall() {
            return Err(Error::Conflict(f.path.clone()));
        }
    }
    let mut pair: BTreeMap<(FnId, FnId), f64> = BTreeMap::new();
    for (&(a, b), &f) in freq {
        if a != b {
            *pair.entry((a.min(b), a.max(b))).or_insert(0.0) += f;
        }
    }
    let mut caps: Vec<(usize, usize, u64)> = Vec::new();
    let (s, t) = (n, n + 1);
    for f in &graph.fns {
        caps.push((f.id, t, scaled(w.line_weight * f.lines as f64)));
    }
    for (&(a, b), &f) in &pair {
        let c = scaled(w.crossing_weight * f);
        caps.push((a, b, c));
        caps.push((b, a, c));
    }
    let inf = caps.iter().map(|c| c.2).fold(1u64, u64::saturating_add);
    for f in &graph.fns {
        if is_root[f.id] {
            caps.push((s, f.id, inf));
        } else if f.mark.is_upcall() {
            caps.push((f.id, t, inf));
        }
    }
    let mut net: DiGraph<(), u64> = DiGraph::with_capacity(n + 2, caps.len());
    for _ in 0..n + 2 {
        net.add_node(());
    }
    for (a, b, c) in caps {
        net.add_edge(NodeIndex::new(a), NodeIndex::new(b), c);
    }
    let (_, flows) = dinics(&net, NodeIndex::new(s), NodeIndex::new(t));
    Ok(source_side(&net, &flows, s)[..n].to_vec())
}

/// The cut next to the propagation split.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Weights used.
    pub weights: Weights,
    /// Cost of the propagation split.
    pub propagation: Cost,
    /// Cost of the minimum cut.
    pub cut: Cost,
    /// Functions the cut puts in the kernel half that propagation does not.
    pub moved_into_kernel: Vec<String>,
    /// Functions propagation puts in the kernel half that the cut does not.
    pub moved_out_of_kernel: Vec<String>,
    /// The cut's kernel half.
    pub kernel: Vec<String>,
    /// Profiled calls crossing the cut: (caller, callee, calls/s).
    pub cut_crossings: Vec<(String, String, f64)>,
}

/// Computes the propagation split and the minimum cut, and compares them.
pub fn compare(
    graph: &CallGraph,
    roots: &[Root],
    freq: &BTreeMap<(FnId, FnId), f64>,
    w: Weights,
) -> Result<Outcome> {
    let prop = crate::propagate::Split::propagate(graph, roots);
    let kernel = min_cut(graph, roots, freq, w)?;
    let names = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
        graph
            .fns
            .iter()
            .filter(|f| pred(f.id))
            .map(|f| f.path.clone())
            .collect()
    };
    Ok(Outcome {
        weights: w,
        propagation: cost(graph, &prop.critical, freq, w),
        cut: cost(graph, &kernel, freq, w),
        moved_into_kernel: names(&|i| kernel[i] && !prop.critical[i]),
        moved_out_of_kernel: names(&|i| !kernel[i] && prop.critical[i]),
        kernel: names(&|i| kernel[i]),
        cut_crossings: freq
            .iter()
            .filter(|((a, b), _)| kernel[*a] != kernel[*b])
            .map(|((a, b), f)| (graph.fns[*a].path.clone(), graph.fns[*b].path.clone(), *f))
            .collect(),
    })
}

impl Outcome {
    /// Human-readable rendering.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let (p, c) = (&self.propagation, &self.cut);
        let _ = writeln!(
            s,
            "minimum cut (line weight {}, crossing weight {})\n",
            self.weights.line_weight, self.weights.crossing_weight
        );
        let _ = writeln!(s, "  {:<22} {:>14} {:>14}", "", "propagation", "min-cut");
        let _ = writeln!(
            s,
            "  {:<22} {:>14} {:>14}",
            "kernel functions", p.kernel_functions, c.kernel_functions
        );
        let _ = writeln!(
            s,
            "  {:<22} {:>14} {:>14}",
            "kernel lines", p.kernel_lines, c.kernel_lines
        );
        let _ = writeln!(
            s,
            "  {:<22} {:>14.2} {:>14.2}",
            "crossings per second", p.crossings_per_second, c.crossings_per_second
        );
        let _ = writeln!(
            s,
            "  {:<22} {:>14.1} {:>14.1}",
            "objective", p.objective, c.objective
        );
        let _ = writeln!(
            s,
            "\nmoved into the kernel ({}):",
            self.moved_into_kernel.len()
        );
        for f in &self.moved_into_kernel {
            let _ = writeln!(s, "  {f}");
        }
        let _ = writeln!(
            s,
            "moved out of the kernel ({}):",
            self.moved_out_of_kernel.len()
        );
        for f in &self.moved_out_of_kernel {
            let _ = writeln!(s, "  {f}");
        }
        let _ = writeln!(
            s,
            "profiled calls crossing the cut ({}):",
            self.cut_crossings.len()
        );
        for (a, b, f) in &self.cut_crossings {
            let _ = writeln!(s, "  {a} -> {b}  {f}/s");
        }
        s
    }
}

/// Nodes reachable from `s` in the residual network.
fn source_side(net: &DiGraph<(), u64>, flows: &[u64], s: usize) -> Vec<bool> {
    let mut seen = vec![false; net.node_count()];
    let mut queue = VecDeque::from([s]);
    seen[s] = true;
    while let Some(v) = queue.pop_front() {
        let node = NodeIndex::new(v);
        for e in net.edges_directed(node, petgraph::Direction::Outgoing) {
            let to = e.target().index();
            if !seen[to] && flows[e.id().index()] < *e.weight() {
                seen[to] = true;
                queue.push_back(to);
            }
        }
        for e in net.edges_directed(node, petgraph::Direction::Incoming) {
            let from = e.source().index();
            if !seen[from] && flows[e.id().index()] > 0 {
                seen[from] = true;
                queue.push_back(from);
            }
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residual_side_of_a_small_network() {
        // s -> a (5), a -> t (2), a -> b (10), b -> t (1): min cut {s, a, b} | {t} = 3.
        let mut net: DiGraph<(), u64> = DiGraph::new();
        let ids: Vec<NodeIndex> = (0..4).map(|_| net.add_node(())).collect();
        let (s, a, b, t) = (ids[0], ids[1], ids[2], ids[3]);
        net.add_edge(s, a, 5);
        net.add_edge(a, t, 2);
        net.add_edge(a, b, 10);
        net.add_edge(b, t, 1);
        let (flow, flows) = dinics(&net, s, t);
        assert_eq!(flow, 3);
        assert_eq!(source_side(&net, &flows, 0), vec![true, true, true, false]);
    }

    #[test]
    fn bottleneck_at_source() {
        // s -> a (1), a -> t (10): cut just after s.
        let mut net: DiGraph<(), u64> = DiGraph::new();
        let s = net.add_node(());
        let a = net.add_node(());
        let t = net.add_node(());
        net.add_edge(s, a, 1);
        net.add_edge(a, t, 10);
        let (flow, flows) = dinics(&net, s, t);
        assert_eq!(flow, 1);
        assert_eq!(source_side(&net, &flows, 0), vec![true, false, false]);
    }
}
