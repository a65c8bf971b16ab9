//! The semantic pass (feature `semantic`): hot-path calls the syntax pass cannot see, or
//! over-approximates. Each split case fails with the syntax pass
//! (`MICRODRIVER_ANALYSIS=syntax cargo test -p microdriver-split --features semantic
//! --test semantic` shows which); the generic trait call by path checks an
//! over-approximation both passes keep; the corpus evaluation holds the semantic pass's
//! precision and recall on the labelled crates.io drivers.
#![cfg(feature = "semantic")]

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use common::{assert_corpus, corpus_evaluation, critical_set, fixture};
use microdriver_split::cfg::CfgSet;
use microdriver_split::eval::Choice;
use microdriver_split::model::Analysis;
use microdriver_split::template::Template;
use microdriver_split::CallGraph;

const ROOTS: [&str; 13] = [
    "deref::hot_deref",
    "dropping::hot_drop",
    "index::hot_index",
    "ops::hot_ops",
    "dynamic::hot_dyn",
    "untyped::hot_untyped",
    "macros::hot_macro",
    "pointers::hot_ptr",
    "index_mut::hot_index_mut",
    "callbacks::hot_callback",
    "std_callbacks::hot_sum",
    "std_callbacks::hot_for",
    "path_calls::hot_path_call",
];

/// The fixture's graph (loaded once: loading the model takes seconds) and critical set.
fn analysed() -> &'static (CallGraph, BTreeSet<String>) {
    static GRAPH: OnceLock<(CallGraph, BTreeSet<String>)> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let graph = CallGraph::analyze(&fixture("semantic"), &CfgSet::default()).expect("analyses");
        let roots: Vec<String> = ROOTS.iter().map(|r| r.to_string()).collect();
        let roots = Template::load("none")
            .expect("template")
            .roots(&graph, &roots)
            .expect("roots resolve");
        let critical = critical_set(&graph, &roots);
        (graph, critical)
    })
}

/// Asserts `hot` are critical and `cold` are not.
fn assert_split(hot: &[&str], cold: &[&str]) {
    let (graph, critical) = analysed();
    for h in hot {
        assert!(
            critical.contains(*h),
            "{h} should be critical ({}); critical: {critical:?}",
            graph.analysis
        );
    }
    for c in cold {
        assert!(
            !critical.contains(*c),
            "{c} should not be critical ({}); critical: {critical:?}",
            graph.analysis
        );
    }
}

#[test]
fn the_semantic_model_ran() {
    let (graph, _) = analysed();
    assert_eq!(graph.analysis, Analysis::Semantic);
}

#[test]
fn deref_mut_on_autoderef_and_the_target_types_method() {
    assert_split(
        &[
            "deref::<Guard as DerefMut>::deref_mut",
            "deref::lock_work",
            "deref::Ring::advance",
        ],
        &["deref::Eeprom::advance", "deref::cold_eeprom_step"],
    );
}

#[test]
fn drop_of_a_local_runs_its_drop_impl() {
    assert_split(
        &["dropping::<DmaBuf as Drop>::drop", "dropping::unmap_work"],
        &[],
    );
}

#[test]
fn index_on_a_custom_type_calls_its_index_impl() {
    assert_split(
        &["index::<Regs as Index>::index", "index::barrier_work"],
        &[],
    );
}

#[test]
fn an_indexed_assignment_calls_index_mut_not_index() {
    assert_split(
        &[
            "index_mut::<Table as IndexMut>::index_mut",
            "index_mut::dirty_work",
        ],
        &[
            "index_mut::<Table as Index>::index",
            "index_mut::cold_read_work",
        ],
    );
}

#[test]
fn an_operator_calls_its_trait_impl() {
    assert_split(&["ops::<Csum as Add>::add", "ops::fold_work"], &[]);
}

#[test]
fn dyn_dispatch_reaches_only_the_types_coerced_to_the_dyn() {
    assert_split(
        &["dynamic::<Fast as Sink>::put", "dynamic::fast_work"],
        &["dynamic::<Slow as Sink>::put", "dynamic::cold_slow_put"],
    );
}

#[test]
fn an_inferred_receiver_calls_only_its_types_method() {
    assert_split(
        &["untyped::Nic::kick", "untyped::doorbell_work"],
        &["untyped::Phy::kick", "untyped::cold_phy_reset"],
    );
}

#[test]
fn calls_in_an_item_level_macro_expansion_are_followed() {
    assert_split(&["macros::kick_queue", "macros::ring_work"], &[]);
}

#[test]
fn a_fn_pointer_call_reaches_only_functions_of_its_signature() {
    assert_split(&["pointers::rx_work"], &["pointers::cold_scale"]);
}

#[test]
fn a_dyn_fn_callback_reaches_only_closures_of_its_signature() {
    assert_split(
        &["callbacks::cold_new::{closure#0}", "callbacks::rx_cb_work"],
        &[
            "callbacks::cold_new::{closure#1}",
            "callbacks::cold_config_work",
        ],
    );
}

#[test]
fn std_calls_back_into_the_crates_impls_through_provided_methods_and_for_loops() {
    assert_split(
        &[
            "std_callbacks::<RxRing as Iterator>::next",
            "std_callbacks::rx_desc_work",
            "std_callbacks::<TxRing as Iterator>::next",
            "std_callbacks::tx_desc_work",
        ],
        &[
            "std_callbacks::<Stats as Display>::fmt",
            "std_callbacks::cold_format_work",
        ],
    );
}

#[test]
fn a_crate_without_cargo_toml_falls_back_to_the_syntax_pass_and_says_why() {
    let graph = CallGraph::analyze(&fixture("box_dyn"), &CfgSet::default()).expect("analyses");
    match &graph.analysis {
        Analysis::Syntax { reason } => assert!(reason.contains("Cargo.toml"), "{reason}"),
        other => panic!("expected the syntax pass, got {other}"),
    }
}

#[test]
fn a_trait_function_called_by_path_on_a_concrete_type_calls_that_types_impl() {
    assert_split(
        &[
            "path_calls::<Ring as Default>::default",
            "path_calls::ring_size",
        ],
        &[
            "path_calls::<Phy as From>::from",
            "path_calls::cold_phy_probe",
        ],
    );
}

#[test]
fn a_trait_function_called_by_path_on_a_generic_type_calls_every_impl() {
    let (graph, _) = analysed();
    let make = graph
        .fns
        .iter()
        .find(|f| f.path == "path_calls::make")
        .expect("make");
    let callees: BTreeSet<&str> = graph
        .edges()
        .filter(|e| e.from == make.id)
        .map(|e| graph.fns[e.to].path.as_str())
        .collect();
    assert!(
        callees.contains("path_calls::<Ring as Default>::default")
            && callees.contains("path_calls::<Phy as Default>::default"),
        "{callees:?}"
    );
}

/// The semantic pass's numbers on the labelled corpus today (`tests/corpus/`, every
/// function it finds labelled, macro expansions' included): a change that lowers either
/// fails here. Raise them when the splitter improves.
const HELD_PRECISION: f64 = 0.985;
const HELD_RECALL: f64 = 0.993;
/// Issue 19's goals for the semantic pass.
const GOAL_PRECISION: f64 = 0.98;
const GOAL_RECALL: f64 = 0.95;

/// The corpus evaluation with the model: every crate analysed by the semantic pass (no
/// fallback to the syntax pass), every function it finds labelled, the numbers held and
/// at least the goals. Under `CI=true` missing corpus sources fail it.
#[test]
fn corpus_precision_and_recall_hold_with_the_model() {
    let Some(eval) = corpus_evaluation(Choice::Best) else {
        return;
    };
    // The held numbers are printed to three places: allow their rounding.
    assert_corpus(&eval, "semantic", HELD_PRECISION - 1e-3, HELD_RECALL - 1e-3);
    assert!(
        eval.precision >= GOAL_PRECISION && eval.recall >= GOAL_RECALL,
        "below issue 19's goals (precision {GOAL_PRECISION}, recall {GOAL_RECALL}): precision = {:.3} recall = {:.3}",
        eval.precision,
        eval.recall
    );
}
