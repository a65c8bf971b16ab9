//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use microdriver_split::cfg::CfgSet;
use microdriver_split::corpus;
use microdriver_split::error::Error;
use microdriver_split::eval::{evaluate_with, Choice, Evaluation};
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

/// The labelled corpus (`tests/corpus/`) scored with `choice`, its sources fetched through
/// cargo (offline once fetched). Outside `CI=true` a failed fetch is reported and gives
/// `None`; under `CI=true` it fails the test: CI never skips the corpus.
pub fn corpus_evaluation(choice: Choice) -> Option<Evaluation> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let cache = corpus::default_cache(&dir);
    match evaluate_with(&dir, &cache, choice) {
        Ok(e) => Some(e),
        Err(e @ Error::Fetch { .. }) if std::env::var_os("CI").is_none_or(|v| v != "true") => {
            eprintln!("corpus not evaluated (not under CI=true): {e}");
            None
        }
        Err(e) => panic!("corpus evaluation failed: {e}"),
    }
}

/// Prints the evaluation (ending `precision = X recall = Y`) and asserts: at least 8
/// crates, each analysed by `analysis` (`semantic`, or a `syntax` pass), labels in step with
/// what it finds (none missing, none stale, no wrong `expansion` mark), and precision and
/// recall at least `precision` and `recall`.
pub fn assert_corpus(eval: &Evaluation, analysis: &str, precision: f64, recall: f64) {
    let text = eval.text(true);
    println!("{text}");
    assert!(eval.crates.len() >= 8, "the corpus has at least 8 crates");
    for c in &eval.crates {
        assert!(
            c.analysis == analysis || c.analysis.starts_with(&format!("{analysis} (")),
            "{} {}: analysed by {}, not {analysis}:\n{text}",
            c.name,
            c.version,
            c.analysis
        );
        assert!(
            c.unlabelled.is_empty() && c.stale_labels.is_empty() && c.wrong_expansion.is_empty(),
            "{} {}: labels out of date with the analysis:\n{text}",
            c.name,
            c.version
        );
    }
    assert!(
        eval.precision >= precision,
        "precision fell below {precision}:\n{text}"
    );
    assert!(eval.recall >= recall, "recall fell below {recall}:\n{text}");
}
