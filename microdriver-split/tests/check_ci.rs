//! CI gate: `check` agrees with the annotations on every fixture meant to agree (and on
//! the e1000 driver once it exists), and reports the known disagreements.

mod common;

use std::path::PathBuf;

use common::analyze;
use microdriver_split::cfg::CfgSet;
use microdriver_split::check::check;
use microdriver_split::template::Template;
use microdriver_split::CallGraph;

#[test]
fn fixtures_that_agree_pass_check() {
    for name in [
        "calls",
        "net_template",
        "cut",
        "odd",
        "containers",
        "inherit",
    ] {
        let (graph, roots) = analyze(name, "net");
        let diags = check(&graph, &roots);
        assert!(
            diags.is_empty(),
            "{name}: annotations disagree with the analysis:\n{}",
            diags
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[test]
fn check_reports_each_disagreement_with_file_and_line() {
    let (graph, roots) = analyze("check_bad", "net");
    let diags = check(&graph, &roots);
    let got: Vec<(&str, usize, String)> = diags
        .iter()
        .map(|d| {
            (
                d.rule,
                d.line,
                d.file.rsplit('/').next().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("upcall-on-critical-path", 6, "lib.rs".to_string()),
            ("critical-unreached", 23, "lib.rs".to_string()),
        ]
    );
    assert!(diags[0].message.contains("set_mtu"));
    assert!(diags[1].message.contains("orphan"));
    assert!(diags[0]
        .to_string()
        .contains("check_bad/src/lib.rs:6: error[upcall-on-critical-path]"));
}

#[test]
fn strict_mode_also_reports_downcall_targets() {
    use microdriver_split::check::{check_with, Options};
    let (graph, roots) = analyze("check_bad", "net");
    let diags = check_with(
        &graph,
        &roots,
        Options {
            strict_critical: true,
        },
    );
    let got: Vec<(&str, usize)> = diags.iter().map(|d| (d.rule, d.line)).collect();
    assert_eq!(
        got,
        [
            ("upcall-on-critical-path", 6),
            ("critical-unreached", 23),
            ("critical-unreached", 28)
        ]
    );
}

#[test]
fn e1000_driver_passes_check_when_present() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/e1000");
    if !dir.join("src/lib.rs").is_file() {
        println!(
            "skipped: {} does not exist yet",
            dir.join("src/lib.rs").display()
        );
        return;
    }
    let graph = CallGraph::analyze(&dir, &CfgSet::default()).expect("e1000 analyses");
    // The crate's own template when it has one, as `cargo microdriver check` does.
    let spec = microdriver_split::cli::crate_template(&dir).unwrap_or_else(|| "net".into());
    let roots = Template::load(&spec)
        .expect("template")
        .roots(&graph, &[])
        .expect("roots");
    let diags = check(&graph, &roots);
    assert!(
        diags.is_empty(),
        "examples/e1000: annotations disagree with the analysis:\n{}",
        diags
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
