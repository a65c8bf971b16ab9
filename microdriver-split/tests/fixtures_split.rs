//! Expected critical sets of the fixture crates, asserted exactly.

mod common;

use common::{analyze, critical_set, set};
use microdriver_split::model::EdgeKind;
use microdriver_split::template::RootReason;

#[test]
fn every_call_kind_reaches_exactly_the_expected_set() {
    let (graph, roots) = analyze("calls", "none");
    assert_eq!(roots.len(), 1);
    assert_eq!(graph.fns[roots[0].fn_id].path, "intr");
    assert_eq!(roots[0].reason, RootReason::Annotated);
    let expected = set(&[
        "intr",
        // direct calls by path, through `use`, `crate::`, `super::`, nested modules
        "util::direct_helper",
        "util::other_helper",
        "outer::inner::deep",
        "outer::helper_outer",
        "hw::regs::read_reg",
        // #[path] module and the module it declares next to itself
        "remote::remote_fn",
        "remote::deeper::deep_fn",
        // associated function by path, method by receiver type (not Queue::push)
        "Ring::new",
        "Ring::push",
        // (a method on a receiver of unknown type with two candidates, `A::frob` and
        // `B::frob`, reaches neither: it is listed as unresolved)
        // trait object: every impl; generic bound: the default body
        "dispatch",
        "<H1 as Handler>::handle",
        "<H2 as Handler>::handle",
        "h2_helper",
        "generic",
        "Handler::describe",
        // fn pointer: address-taken functions of arity 1 (not `not_taken`)
        "call_ptr",
        "tx_a",
        "tx_b",
        "tx_c",
        "tx_d",
        "HOOK::{closure#0}",
        // dyn Fn: address-taken functions and closures of arity 2
        "run_cb",
        "taken_two",
        "store::{closure#0}",
        "closure_target",
        "intr::{closure#0}",
        // closure handed to std, called on sum's behalf
        "sum",
        "sum::{closure#0}",
        "mapped",
        // function nested in a function body
        "with_inner",
        "with_inner::inner_fn",
        // cfg(feature) item: kept (undecidable cfgs are included)
        "extra",
    ]);
    assert_eq!(critical_set(&graph, &roots), expected);
}

#[test]
fn edges_are_classified_by_how_they_were_found() {
    let (graph, _) = analyze("calls", "none");
    let kind = |from: &str, to: &str| -> Vec<EdgeKind> {
        let f = graph.find(from).expect("caller exists");
        let t = graph.find(to).expect("callee exists");
        graph
            .edges()
            .filter(|e| e.from == f && e.to == t)
            .map(|e| e.kind)
            .collect()
    };
    assert_eq!(kind("intr", "util::direct_helper"), [EdgeKind::Direct]);
    assert_eq!(kind("intr", "Ring::push"), [EdgeKind::MethodTyped]);
    assert!(kind("intr", "A::frob").is_empty(), "ambiguous: no fan-out");
    assert!(graph
        .unresolved
        .iter()
        .any(|u| u.what == "method call .frob()" && u.reason.contains("A::frob, B::frob")));
    assert_eq!(
        kind("dispatch", "<H2 as Handler>::handle"),
        [EdgeKind::TraitDispatch]
    );
    assert_eq!(
        kind("generic", "Handler::describe"),
        [EdgeKind::TraitDispatch]
    );
    assert_eq!(kind("call_ptr", "tx_b"), [EdgeKind::Indirect]);
    assert_eq!(kind("run_cb", "store::{closure#0}"), [EdgeKind::Indirect]);
    assert_eq!(
        kind("sum", "sum::{closure#0}"),
        [EdgeKind::PassedToExternal]
    );
    assert_eq!(kind("intr", "update_stats"), [EdgeKind::Deferred]);
    assert_eq!(kind("intr", "watchdog"), [EdgeKind::Deferred]);
    assert!(kind("call_ptr", "not_taken").is_empty());
    assert!(
        kind("run_cb", "typed_closure::{closure#0}").is_empty(),
        "typed closure parameters differ"
    );
    assert!(graph.fns[graph.find("typed_closure::{closure#0}").expect("exists")].address_taken);
    assert_eq!(
        kind("config_path", "config_path::{closure#0}"),
        [EdgeKind::ViaParameter],
        "called on the caller's behalf"
    );
    assert!(kind("with_ring", "config_path::{closure#0}").is_empty());
    assert!(
        kind("call_ptr", "config_path::{closure#0}").is_empty(),
        "passed to a parameter that does not escape"
    );
    assert_eq!(
        kind("call_ptr", "tx_d"),
        [EdgeKind::Indirect],
        "passed to a parameter that escapes"
    );
    assert!(
        kind("call_ptr", "tx_wrong").is_empty(),
        "parameter types differ"
    );
    assert!(
        kind("run_cb", "two_wrong").is_empty(),
        "parameter types differ"
    );
    assert!(graph.fns[graph.find("tx_wrong").expect("exists")].address_taken);
    assert!(kind("intr", "Queue::push").is_empty());
}

#[test]
fn cfg_items_are_reported() {
    let (graph, _) = analyze("calls", "none");
    let notes: Vec<(String, bool)> = graph
        .cfg_notes
        .iter()
        .map(|n| (n.item.clone(), n.included))
        .collect();
    assert_eq!(
        notes,
        [
            ("fn test_only".to_string(), false),
            ("fn extra".to_string(), true)
        ]
    );
    assert!(
        graph.find("test_only").is_err(),
        "cfg(test) items are not analysed"
    );
}

#[test]
fn cfg_switches_change_what_is_analysed() {
    use microdriver_split::cfg::CfgSet;
    let path = common::fixture("calls");
    let with_test =
        microdriver_split::CallGraph::analyze(&path, &CfgSet::new(&["test".into()], &[]))
            .expect("analyses");
    assert!(with_test.find("test_only").is_ok());
    let no_extra = microdriver_split::CallGraph::analyze(
        &path,
        &CfgSet::new(&[], &["feature=\"extra\"".into()]),
    )
    .expect("analyses");
    assert!(no_extra.find("extra").is_err());
}

#[test]
fn calls_fixture_resolves_everything() {
    let (graph, _) = analyze("calls", "none");
    // Everything but the deliberately ambiguous `.frob()` on a receiver of unknown type.
    let unexpected: Vec<_> = graph
        .unresolved
        .iter()
        .filter(|u| u.what != "method call .frob()")
        .collect();
    assert!(unexpected.is_empty(), "unexpected: {unexpected:#?}");
}

/// The roots as (function path, why), sorted by path.
fn roots_by_path(
    graph: &microdriver_split::CallGraph,
    roots: &[microdriver_split::template::Root],
) -> Vec<(String, RootReason)> {
    let mut found: Vec<(String, RootReason)> = roots
        .iter()
        .map(|r| {
            let reason = match &r.reason {
                // The evidence text is checked in tests/defects.rs.
                RootReason::Template { role, .. } => role_reason(role),
                other => other.clone(),
            };
            (graph.fns[r.fn_id].path.clone(), reason)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn role_reason(role: &str) -> RootReason {
    RootReason::Template {
        role: role.to_string(),
        why: String::new(),
    }
}

fn role(r: &str) -> RootReason {
    role_reason(r)
}

#[test]
fn net_template_splits_an_unannotated_driver() {
    let (graph, roots) = analyze("net_template", "net");
    let found = roots_by_path(&graph, &roots);
    assert_eq!(
        found,
        [
            ("e1000_intr".to_string(), role("interrupt")),
            ("e1000_poll".to_string(), role("poll")),
            ("e1000_xmit_frame".to_string(), role("transmit")),
        ]
    );
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "e1000_intr",
            "e1000_xmit_frame",
            "e1000_poll",
            "rx_clean",
            "TxRing::clean",
            "TxRing::put",
            "Stats::bump",
        ])
    );
}

#[test]
fn block_template_splits_an_unannotated_block_driver() {
    let (graph, roots) = analyze("block_template", "block");
    let found = roots_by_path(&graph, &roots);
    assert_eq!(
        found,
        [
            ("nvme_irq".to_string(), role("interrupt")),
            ("nvme_process_cq".to_string(), role("complete")),
            ("nvme_queue_rq".to_string(), role("submit")),
        ]
    );
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "nvme_queue_rq",
            "nvme_process_cq",
            "nvme_irq",
            "Queue::push",
            "Queue::ring_doorbell",
            "Queue::next_completion",
            "end_request",
        ])
    );
}

#[test]
fn sound_template_splits_an_unannotated_pcm_driver() {
    let (graph, roots) = analyze("sound_template", "sound");
    let found = roots_by_path(&graph, &roots);
    assert_eq!(
        found,
        [
            ("snd_demo_interrupt".to_string(), role("interrupt")),
            ("snd_demo_pcm_pointer".to_string(), role("pointer")),
            ("snd_demo_pcm_trigger".to_string(), role("trigger")),
        ]
    );
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "snd_demo_pcm_trigger",
            "snd_demo_pcm_pointer",
            "snd_demo_interrupt",
            "hw_position",
            "period_elapsed",
        ])
    );
}

#[test]
fn a_template_of_another_family_warns_and_names_the_right_one() {
    use microdriver_split::cfg::CfgSet;
    use microdriver_split::template::Template;
    use microdriver_split::CallGraph;
    let graph = |name: &str| {
        CallGraph::analyze(&common::fixture(name), &CfgSet::default()).expect("fixture analyses")
    };
    let net = Template::builtin("net").expect("builtin");
    // The block driver's `nvme_irq` is no net root; nothing transmits or polls.
    let warnings = net.family_warnings(&graph("block_template"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("found no roots"), "{warnings:?}");
    assert!(warnings[0].contains("--template block"), "{warnings:?}");
    // The PCM driver's interrupt matches net's interrupt rule, but a net driver also
    // transmits or polls.
    let warnings = net.family_warnings(&graph("sound_template"));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("snd_demo_interrupt (interrupt)"),
        "{warnings:?}"
    );
    assert!(
        warnings[0].contains("none of the roles a net driver has"),
        "{warnings:?}"
    );
    assert!(warnings[0].contains("--template sound"), "{warnings:?}");
    // A template that fits says nothing.
    for (fixture, family) in [
        ("net_template", "net"),
        ("block_template", "block"),
        ("sound_template", "sound"),
    ] {
        let t = Template::builtin(family).expect("builtin");
        assert_eq!(
            t.family_warnings(&graph(fixture)),
            Vec::<String>::new(),
            "{fixture}"
        );
    }
    // `none` never warns.
    let none = Template::builtin("none").expect("builtin");
    assert!(none.family_warnings(&graph("block_template")).is_empty());
}

#[test]
fn listed_roots_add_to_the_template() {
    let (graph, _) = analyze("net_template", "none");
    let roots = microdriver_split::template::Template::builtin("none")
        .expect("builtin")
        .roots(&graph, &["e1000_get_stats".into()])
        .expect("root exists");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&["e1000_get_stats", "Stats::report"])
    );
    let err = microdriver_split::template::Template::builtin("none")
        .expect("builtin")
        .roots(&graph, &["no_such_fn".into()]);
    assert!(err.is_err());
}

#[test]
fn unusual_syntax_is_analysed_and_the_unresolvable_listed() {
    let (graph, roots) = analyze("odd", "none");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "entry",
            "table_call",
            "table_call::{closure#0}",
            "top_plus",
            "top_minus",
            "make_holder::{closure#0}",
            "qualified",
            "Wrapper::get",
            "Blanket::blanket",
            "patterns",
            "patterns::{closure#0}",
            "patterns::{closure#1}",
            "macros",
            "konst",
            "top",
            "a::b::looped",
        ])
    );
    let unresolved: Vec<(usize, &str)> = graph
        .unresolved
        .iter()
        .map(|u| (u.line, u.what.as_str()))
        .collect();
    assert_eq!(
        unresolved,
        [
            (87, "macro_rules! custom_macro"),
            (83, "custom_macro!(..)"),
            (99, "call not_defined_anywhere")
        ]
    );
    let notes: Vec<(&str, bool)> = graph
        .cfg_notes
        .iter()
        .map(|n| (n.item.as_str(), n.included))
        .collect();
    assert_eq!(notes, [("fn never", false), ("fn unixy", true)]);
}

#[test]
fn missing_module_files_are_listed_not_fatal() {
    let dir = std::env::temp_dir().join(format!("md-split-missing-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("tmp dir");
    std::fs::write(
        dir.join("src/lib.rs"),
        "mod gone;\n#[critical(root)]\npub fn intr() {}\n",
    )
    .expect("write");
    let graph = microdriver_split::CallGraph::analyze(&dir, &Default::default()).expect("analyses");
    assert_eq!(graph.unresolved.len(), 1);
    assert!(
        graph.unresolved[0].reason.contains("gone.rs"),
        "{:?}",
        graph.unresolved
    );
    std::fs::write(dir.join("src/lib.rs"), "fn broken( {}\n").expect("write");
    let err =
        microdriver_split::CallGraph::analyze(&dir, &Default::default()).expect_err("syntax error");
    assert!(err.to_string().contains("lib.rs:1:"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn glob_import_cycles_resolve_quickly() {
    // Twelve modules that `use super::*` and re-export each other under a root that
    // `pub use`s them all: lookups of unknown names must not explore every path through
    // the cycles.
    let dir = std::env::temp_dir().join(format!("md-split-globs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("tmp dir");
    let mut root = String::new();
    for i in 0..12 {
        root.push_str(&format!("pub mod m{i};\npub use m{i}::*;\n"));
        std::fs::write(
            dir.join(format!("src/m{i}.rs")),
            format!(
                "use super::*;\npub use super::m{}::*;\npub use crate::m{}::f{} as alias{i};\n\
                 pub fn f{i}() {{ let v: Vec<u32> = Vec::new(); undefined_{i}(); drop(v); }}\n",
                (i + 1) % 12,
                (i + 5) % 12,
                (i + 5) % 12
            ),
        )
        .expect("write module");
    }
    root.push_str("#[critical(root)]\npub fn top() { f1(); m2::f3(); m4::alias4(); }\n");
    std::fs::write(dir.join("src/lib.rs"), root).expect("write lib.rs");
    let start = std::time::Instant::now();
    let graph = microdriver_split::CallGraph::analyze(&dir, &Default::default()).expect("analyses");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    let roots = microdriver_split::template::Template::builtin("none")
        .expect("builtin")
        .roots(&graph, &[])
        .expect("roots");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&["top", "m1::f1", "m3::f3", "m9::f9"])
    );
    assert_eq!(graph.unresolved.len(), 12);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn receivers_are_typed_through_containers_and_locks() {
    let (graph, roots) = analyze("containers", "none");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&["poll", "poll::{closure#0}", "Ring::clean", "Adapter::first"])
    );
    let from_poll: Vec<EdgeKind> = graph
        .edges()
        .filter(|e| graph.fns[e.from].path.starts_with("poll"))
        .map(|e| e.kind)
        .filter(|k| *k != EdgeKind::PassedToExternal)
        .collect();
    assert_eq!(
        from_poll.len(),
        3,
        "poll->Ring::clean, poll->Adapter::first, closure->Ring::clean"
    );
    assert!(
        from_poll.iter().all(|k| *k == EdgeKind::MethodTyped),
        "{from_poll:?}"
    );
    let setup = graph.find("setup").expect("exists");
    let callees: Vec<&str> = graph
        .edges()
        .filter(|e| e.from == setup)
        .map(|e| graph.fns[e.to].path.as_str())
        .collect();
    assert_eq!(callees, ["Adapter::probe", "Phy::reset", "Phy::clean"]);
    let handle = graph.find("handle").expect("exists");
    let callees: Vec<(&str, EdgeKind)> = graph
        .edges()
        .filter(|e| e.from == handle)
        .map(|e| (graph.fns[e.to].path.as_str(), e.kind))
        .collect();
    assert_eq!(
        callees,
        [
            ("Ring::clean", EdgeKind::MethodTyped),
            ("Phy::reset", EdgeKind::MethodTyped)
        ],
        "match arms bind enum variant fields with their types"
    );
}

#[test]
fn annotations_are_inherited_from_impl_blocks_and_trait_declarations() {
    use microdriver_split::model::Mark;
    let (graph, roots) = analyze("inherit", "none");
    let mark = |p: &str| graph.fns[graph.find(p).expect("exists")].mark;
    assert_eq!(mark("<Nic as NetOps>::xmit"), Mark::CriticalRoot);
    assert_eq!(mark("<Nic as NetOps>::set_mtu"), Mark::Upcall);
    assert_eq!(mark("Nic::fill"), Mark::Critical);
    assert_eq!(
        critical_set(&graph, &roots),
        set(&["<Nic as NetOps>::xmit", "Nic::fill"])
    );
}

#[test]
fn imports_renames_groups_and_reexports_resolve() {
    let dir = std::env::temp_dir().join(format!("md-split-imports-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src/net")).expect("tmp dir");
    std::fs::write(
        dir.join("src/lib.rs"),
        r#"
mod net;
use net::{self, phy::reset as phy_reset, Mode::*};
pub use net::ring::Ring as TxRing;

#[critical(root)]
pub fn intr(r: &mut TxRing) {
    phy_reset();
    net::helper();
    r.clean();
    let m = Fast;
    net::ring::set_mode(m);
    crate::net::ring::deep::leaf();
}
"#,
    )
    .expect("write lib.rs");
    std::fs::write(
        dir.join("src/net/mod.rs"),
        "pub mod phy;\npub mod ring;\npub enum Mode { Fast, Slow }\npub fn helper() {}\npub fn unused() {}\n",
    )
    .expect("write net/mod.rs");
    std::fs::write(
        dir.join("src/net/phy.rs"),
        "pub fn reset() {}\npub fn other() {}\n",
    )
    .expect("write phy.rs");
    std::fs::write(
        dir.join("src/net/ring.rs"),
        "pub struct Ring;\nimpl Ring { pub fn clean(&mut self) {} }\npub fn set_mode(_m: super::Mode) {}\npub mod deep { pub fn leaf() { super::super::helper(); } }\n",
    )
    .expect("write ring.rs");
    let graph = microdriver_split::CallGraph::analyze(&dir, &Default::default()).expect("analyses");
    let roots = microdriver_split::template::Template::builtin("none")
        .expect("builtin")
        .roots(&graph, &[])
        .expect("roots");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "intr",
            "net::phy::reset",
            "net::helper",
            "net::ring::Ring::clean",
            "net::ring::set_mode",
            "net::ring::deep::leaf",
        ])
    );
    assert!(graph.unresolved.is_empty(), "{:?}", graph.unresolved);
    let _ = std::fs::remove_dir_all(&dir);
}
