//! The `cargo-microdriver` binary end to end, including `report` on the splitter's own
//! source and on the runtime's.

mod common;

use std::path::PathBuf;
use std::process::Output;

use common::{fixture, run_cli as run};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn workspace(rel: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

fn share_line(text: &str) -> Option<&str> {
    text.lines()
        .find(|l| l.starts_with("kernel_half_share = ") && l.ends_with('%'))
}

#[test]
fn report_on_the_splitters_own_source() {
    let out = run(&["report", &workspace("src")]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(share_line(&text).is_some(), "{text}");
    assert!(text.contains("functions = "), "{text}");
}

#[test]
fn report_on_the_runtime_source() {
    let out = run(&["report", &workspace("../microdriver-rt/src")]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(share_line(&stdout(&out)).is_some());
    let out = run(&["report", "--json", &workspace("../microdriver-rt/src")]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert!(v["functions"].is_u64());
}

#[test]
fn cargo_subcommand_argument_is_accepted() {
    let path = fixture("net_template").display().to_string();
    let out = run(&["microdriver", "report", &path]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert_eq!(
        share_line(&text),
        Some("kernel_half_share = 59.5%"),
        "{text}"
    );
    assert!(text.contains("critical functions = 7 (63.6%)"), "{text}");
}

#[test]
fn report_json_has_the_figure_2_numbers() {
    let path = fixture("net_template").display().to_string();
    let out = run(&["report", "--json", &path]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["functions"], 11);
    assert_eq!(v["critical_functions"], 7);
    assert_eq!(v["lines"], 42);
    assert_eq!(v["critical_lines"], 25);
    assert_eq!(v["roots"].as_array().map(Vec::len), Some(3));
}

#[test]
fn report_says_which_analysis_ran_and_why() {
    // A fixture without a Cargo.toml: the syntax pass, with the reason (without the
    // `semantic` feature the reason is that instead).
    let path = fixture("net_template").display().to_string();
    let text = stdout(&run(&["report", &path]));
    let line = text
        .lines()
        .find(|l| l.starts_with("analysis: "))
        .unwrap_or_default();
    assert!(
        line.starts_with("analysis: syntax (")
            && (line.contains("Cargo.toml") || line.contains("`semantic` feature")),
        "{text}"
    );
    let out = run(&["report", "--json", &path]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["analysis"].as_str(), line.strip_prefix("analysis: "));
}

#[test]
fn report_lists_crossing_edges() {
    let path = fixture("calls").display().to_string();
    let out = run(&["report", "--json", "--template", "none", &path]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let crossings: Vec<(String, String)> = v["crossings"]
        .as_array()
        .expect("array")
        .iter()
        .map(|c| {
            (
                c["callee"].as_str().unwrap_or_default().to_string(),
                c["direction"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(v["stubs"]["deferred_upcall"], 2);
    assert_eq!(v["stubs"]["upcall"], 0);
    let deferred: Vec<&str> = crossings
        .iter()
        .filter(|c| c.1 == "deferred_upcall")
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(deferred, ["update_stats", "watchdog"]);
    // User-half code calling into the critical set: `config_path`'s closure pushes onto a
    // ring. `with_ring`'s call through its generic parameter reaches only the closure its
    // callers pass (an edge from `config_path`, not a fan-out to every address-taken
    // function of arity 1).
    let downcalls: std::collections::BTreeSet<&str> = crossings
        .iter()
        .filter(|c| c.1 == "downcall")
        .map(|c| c.0.as_str())
        .collect();
    assert_eq!(downcalls.into_iter().collect::<Vec<_>>(), ["Ring::push"]);
}

#[test]
fn check_exit_codes() {
    let ok = run(&["check", &fixture("calls").display().to_string()]);
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    let bad = run(&["check", &fixture("check_bad").display().to_string()]);
    assert_eq!(bad.status.code(), Some(1));
    let text = stdout(&bad);
    assert!(
        text.contains("check_bad/src/lib.rs:6: error[upcall-on-critical-path]"),
        "{text}"
    );
    assert!(
        text.contains("check_bad/src/lib.rs:23: error[critical-unreached]"),
        "{text}"
    );
    let json = run(&[
        "check",
        "--json",
        &fixture("check_bad").display().to_string(),
    ]);
    assert_eq!(json.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[0]["rule"], "upcall-on-critical-path");
    assert_eq!(v[0]["line"], 6);
}

#[test]
fn errors_are_reported_not_panicked() {
    let out = run(&["report", "/nonexistent/crate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a crate"), "{err}");
    let out = run(&[
        "report",
        "--template",
        "/nonexistent.toml",
        &fixture("calls").display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn graph_emits_dot_and_skips_svg_gracefully() {
    let dir = std::env::temp_dir().join(format!("md-split-graph-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let svg = dir.join("g.svg");
    let out = run(&[
        "graph",
        &fixture("calls").display().to_string(),
        "--svg",
        &svg.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.starts_with("digraph callgraph {"));
    assert!(text.contains("label=\"intr\\n"));
    assert!(text.contains("style=dashed"), "deferrals are dashed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(svg.is_file() || err.contains("not found"), "{err}");
    // `-o g.dot` writes the DOT file and renders `g.svg` next to it when `dot` exists.
    let dot = dir.join("h.dot");
    let out = run(&[
        "graph",
        &fixture("calls").display().to_string(),
        "-o",
        &dot.display().to_string(),
    ]);
    assert!(out.status.success());
    assert!(std::fs::read_to_string(&dot).is_ok_and(|t| t.starts_with("digraph")));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        dir.join("h.svg").is_file() || err.contains("not found"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn cut_prints_both_splits() {
    let path = fixture("cut").display().to_string();
    let profile = fixture("cut/profile.json").display().to_string();
    let out = run(&[
        "cut",
        &path,
        "--profile",
        &profile,
        "--line-weight",
        "1",
        "--crossing-weight",
        "1",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.contains("moved into the kernel (1):\n  link_monitor"),
        "{text}"
    );
    assert!(
        text.contains("moved out of the kernel (2):\n  rare_config\n  reconfigure_helper"),
        "{text}"
    );
    let out = run(&["cut", &path, "--profile", &profile, "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["cut"]["kernel_functions"], 4);
    assert_eq!(v["propagation"]["kernel_functions"], 5);
}

#[test]
fn crate_local_template_is_the_default() {
    let dir = std::env::temp_dir().join(format!("md-split-local-tpl-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("tmp dir");
    std::fs::write(
        dir.join("src/lib.rs"),
        "pub fn service_irq() { ack(); }\nfn ack() {}\npub fn setup() {}\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("microdriver-split.toml"),
        "family = \"mine\"\n[[roots]]\nrole = \"interrupt\"\nnames = [\"service_irq\"]\n",
    )
    .expect("write");
    for path in [dir.clone(), dir.join("src")] {
        let out = run(&["report", "--json", &path.display().to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
        assert_eq!(v["template"], "mine");
        assert_eq!(v["critical_functions"], 2);
    }
    let out = run(&[
        "report",
        "--json",
        "--template",
        "net",
        &dir.display().to_string(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["critical_functions"], 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn strict_critical_flag() {
    let path = fixture("check_bad").display().to_string();
    let normal = stdout(&run(&["check", &path]));
    let strict = stdout(&run(&["check", "--strict-critical", &path]));
    assert!(!normal.contains("write_reg"), "{normal}");
    assert!(
        strict.contains("`write_reg` is not reached from any entry root"),
        "{strict}"
    );
}

#[test]
fn why_prints_the_chain_from_a_root() {
    let path = fixture("calls").display().to_string();
    let out = run(&["why", "--template", "none", &path, "closure_target"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.starts_with("closure_target ("), "{text}");
    assert!(text.contains("root intr"), "{text}");
    assert!(text.contains("-> run_cb  (Direct call at"), "{text}");
    assert!(
        text.contains("-> store::{closure#0}  (Indirect call at"),
        "{text}"
    );
    let out = run(&["why", &path, "never_critical"]);
    assert!(stdout(&out).contains("is not critical"));
    let out = run(&["why", &path, "no_such_function"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn report_and_check_warn_about_a_template_of_another_family() {
    let path = fixture("block_template").display().to_string();
    let out = run(&["report", &path]);
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("warning: template `net` found no roots")
                && l.contains("--template block")),
        "{text}"
    );
    let out = run(&["report", "--json", &path]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(1), "{v}");
    let out = run(&["check", &path]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("warning: template `net`"),
        "check warns on stderr"
    );
    let out = run(&["report", "--template", "block", &path]);
    assert!(out.status.success());
    assert!(!stdout(&out).contains("warning:"), "{}", stdout(&out));
}
