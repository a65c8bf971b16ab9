//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use microdriver_split::cfg::CfgSet;
use microdriver_split::propagate::Split;
use microdriver_split::template::{Root, Template};
use microdriver_split::CallGraph;

/// Runs the `cargo-microdriver` binary with `args`.
pub fn run_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_cargo-microdriver"))
        .args(args)
        .output()
        .expect("binary runs")
}

/// Path of a fixture crate.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Analyses a fixture with a template.
pub fn analyze(name: &str, template: &str) -> (CallGraph, Vec<Root>) {
    let graph = CallGraph::analyze(&fixture(name), &CfgSet::default()).expect("fixture analyses");
    let roots = Template::load(template)
        .expect("template loads")
        .roots(&graph, &[])
        .expect("roots resolve");
    (graph, roots)
}

/// The critical set's function paths.
pub fn critical_set(graph: &CallGraph, roots: &[Root]) -> BTreeSet<String> {
    let split = Split::propagate(graph, roots);
    split
        .critical_ids()
        .into_iter()
        .map(|i| graph.fns[i].path.clone())
        .collect()
}

/// A set of strings.
pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}
