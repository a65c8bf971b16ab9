//! The frequency-weighted minimum cut differs from propagation on the `cut` fixture.

mod common;

use std::collections::BTreeSet;

use common::{analyze, critical_set, fixture, set};
use microdriver_split::cut::{compare, min_cut, Weights};
use microdriver_split::profile::Profile;

fn names(graph: &microdriver_split::CallGraph, kernel: &[bool]) -> BTreeSet<String> {
    graph
        .fns
        .iter()
        .filter(|f| kernel[f.id])
        .map(|f| f.path.clone())
        .collect()
}

#[test]
fn cut_moves_rare_code_out_and_chatty_code_in() {
    let (graph, roots) = analyze("cut", "none");
    let path = fixture("cut/profile.json");
    let freq = Profile::load(&path)
        .expect("profile loads")
        .resolve(&graph, &path)
        .expect("names resolve");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "xmit",
            "Ring::full",
            "write_reg",
            "rare_config",
            "reconfigure_helper"
        ])
    );
    let kernel = min_cut(&graph, &roots, &freq, Weights::default()).expect("cut");
    assert_eq!(
        names(&graph, &kernel),
        set(&["xmit", "Ring::full", "write_reg", "link_monitor"])
    );

    let outcome = compare(&graph, &roots, &freq, Weights::default()).expect("compare");
    assert_eq!(outcome.moved_into_kernel, ["link_monitor"]);
    assert_eq!(
        outcome.moved_out_of_kernel,
        ["rare_config", "reconfigure_helper"]
    );
    assert_eq!(outcome.propagation.crossings_per_second, 50000.0);
    assert!((outcome.cut.crossings_per_second - 0.01).abs() < 1e-9);
    assert!(outcome.cut.objective < outcome.propagation.objective);
    assert_eq!(
        outcome.cut.kernel_lines,
        graph
            .fns
            .iter()
            .filter(|f| kernel[f.id])
            .map(|f| f.lines)
            .sum::<usize>()
    );
}

#[test]
fn weights_steer_the_cut() {
    let (graph, roots) = analyze("cut", "none");
    let path = fixture("cut/profile.json");
    let freq = Profile::load(&path)
        .expect("loads")
        .resolve(&graph, &path)
        .expect("resolves");
    // Crossings free: only the root stays in the kernel.
    let w = Weights {
        line_weight: 1.0,
        crossing_weight: 0.0,
    };
    assert_eq!(
        names(&graph, &min_cut(&graph, &roots, &freq, w).expect("cut")),
        set(&["xmit"])
    );
    // Crossings very expensive: rarely-called code joins the kernel too.
    let w = Weights {
        line_weight: 1.0,
        crossing_weight: 1e6,
    };
    assert_eq!(
        names(&graph, &min_cut(&graph, &roots, &freq, w).expect("cut")),
        set(&[
            "xmit",
            "Ring::full",
            "write_reg",
            "link_monitor",
            "rare_config",
            "reconfigure_helper"
        ])
    );
    // Bad weights are an error, not a panic.
    let w = Weights {
        line_weight: f64::NAN,
        crossing_weight: 1.0,
    };
    assert!(min_cut(&graph, &roots, &freq, w).is_err());
}

#[test]
fn profile_errors_name_the_problem() {
    let (graph, _) = analyze("cut", "none");
    let dir = std::env::temp_dir().join(format!("md-split-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        r#"{"calls": [{"caller": "xmit", "callee": "nope", "per_second": 1.0}]}"#,
    )
    .expect("write");
    let err = Profile::load(&bad)
        .expect("parses")
        .resolve(&graph, &bad)
        .expect_err("unknown callee");
    assert!(err.to_string().contains("nope"), "{err}");
    std::fs::write(
        &bad,
        r#"{"calls": [{"caller": "xmit", "callee": "write_reg", "per_second": -1.0}]}"#,
    )
    .expect("write");
    assert!(Profile::load(&bad)
        .expect("parses")
        .resolve(&graph, &bad)
        .is_err());
    std::fs::write(&bad, "not json").expect("write");
    assert!(Profile::load(&bad).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}
