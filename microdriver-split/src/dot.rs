//! `graph`: Graphviz DOT of the call graph, coloured by half.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::callgraph::CallGraph;
use crate::model::{EdgeKind, FnKind};
use crate::propagate::Split;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Renders DOT: one cluster per source file, kernel half red (roots bold), user half blue,
/// `#[upcall]` boxes, deferrals dashed, crossing edges red.
pub fn to_dot(graph: &CallGraph, split: &Split) -> String {
    let mut s = String::from(
        "digraph callgraph {\n  rankdir=LR;\n  node [style=filled, fontname=\"monospace\"];\n",
    );
    let mut is_root = vec![false; graph.fns.len()];
    for r in &split.roots {
        is_root[r.fn_id] = true;
    }
    // One cluster per source file.
    let mut files: Vec<&str> = graph.fns.iter().map(|f| f.file.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    for (i, file) in files.iter().enumerate() {
        let _ = writeln!(
            s,
            "  subgraph cluster_{i} {{\n    label=\"{}\"; style=rounded; color=gray;",
            esc(file)
        );
        for f in graph.fns.iter().filter(|f| f.file == *file) {
            let _ = writeln!(s, "    n{};", f.id);
        }
        s.push_str("  }\n");
    }
    for f in &graph.fns {
        let (fill, half) = if split.critical[f.id] {
            ("#f4a6a6", "kernel")
        } else {
            ("#a6c8f4", "user")
        };
        let mut attrs = format!(
            "label=\"{}\\n{} lines\", fillcolor=\"{fill}\", tooltip=\"{}:{} ({half})\"",
            esc(&f.path),
            f.lines,
            esc(&f.file),
            f.line
        );
        if is_root[f.id] {
            attrs.push_str(", penwidth=3");
        }
        if f.mark.is_upcall() {
            attrs.push_str(", shape=box");
        } else if f.kind == FnKind::Closure {
            attrs.push_str(", shape=ellipse, fontsize=10");
        }
        let _ = writeln!(s, "  n{} [{attrs}];", f.id);
    }
    for e in graph.edges() {
        let mut attrs = format!("tooltip=\"{:?} {}:{}\"", e.kind, esc(&e.file), e.line);
        if e.kind == EdgeKind::Deferred {
            attrs.push_str(", style=dashed");
        }
        if split.critical[e.from] != split.critical[e.to] {
            attrs.push_str(", color=red");
        }
        let _ = writeln!(s, "  n{} -> n{} [{attrs}];", e.from, e.to);
    }
    s.push_str("}\n");
    s
}

/// Runs `dot -Tsvg`. Returns `Ok(false)` when Graphviz is not installed.
pub fn write_svg(dot: &str, out: &Path) -> std::io::Result<bool> {
    use std::io::Write;
    let child = Command::new("dot")
        .arg("-Tsvg")
        .arg("-o")
        .arg(out)
        .stdin(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(dot.as_bytes())?;
    }
    let status = child.wait()?;
    if status.success() {
        Ok(true)
    } else {
        Err(std::io::Error::other(format!("dot exited with {status}")))
    }
}
