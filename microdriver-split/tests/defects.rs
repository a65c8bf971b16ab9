//! One test per defect of issue 19 found by running the splitter on third-party drivers.

mod common;

use std::collections::BTreeMap;

use common::{analyze, critical_set, fixture, set};
use microdriver_split::cfg::CfgSet;
use microdriver_split::template::{RootReason, Template};
use microdriver_split::CallGraph;

/// Template roots: path -> (role, why).
fn template_roots(fixture_name: &str, template: &str) -> BTreeMap<String, (String, String)> {
    let (graph, roots) = analyze(fixture_name, template);
    roots
        .iter()
        .filter_map(|r| match &r.reason {
            RootReason::Template { role, why } => {
                Some((graph.fns[r.fn_id].path.clone(), (role.clone(), why.clone())))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn net_roots_are_found_by_role_not_linux_names() {
    let roots = template_roots("roles_net", "net");
    let picked: Vec<&str> = roots.keys().map(String::as_str).collect();
    assert_eq!(
        picked,
        [
            "<RxQ as IRxQueue>::reclaim",
            "<TxQ as ITxQueue>::submit",
            "Dev::read_packet",
            "Dev::receive",
            "Dev::rx_batch",
            "Dev::send",
            "Dev::tx_batch",
            "Dev::write_packet",
            "on_vector",
        ]
    );
    let (role, why) = &roots["<TxQ as ITxQueue>::submit"];
    assert_eq!(role, "transmit");
    assert!(why.contains("implements ITxQueue::submit"), "{why}");
    let (role, why) = &roots["on_vector"];
    assert_eq!(role, "interrupt");
    assert!(
        why.contains("registered") && why.contains("request_irq") && why.contains("lib.rs:"),
        "{why}"
    );
    let (role, why) = &roots["Dev::send"];
    assert_eq!(role, "transmit");
    assert!(why.contains("name"), "{why}");
}

#[test]
fn configuration_functions_named_like_interrupts_are_not_roots() {
    let roots = template_roots("roles_net", "net");
    assert!(!roots.contains_key("Dev::enable_msix_interrupt"));
    assert!(!roots.contains_key("Dev::clear_phy_intr"));
    let (graph, roots) = analyze("roles_net", "net");
    let critical = critical_set(&graph, &roots);
    assert!(!critical.contains("Dev::setup_vector"));
    assert!(critical.contains("ack") && critical.contains("Dev::kick"));
}

#[test]
fn serial_roots_by_trait_signature_and_name() {
    let roots = template_roots("roles_serial", "serial");
    let picked: Vec<&str> = roots.keys().map(String::as_str).collect();
    assert_eq!(
        picked,
        [
            "<Uart as Write>::write_str",
            "Uart::getchar",
            "Uart::putchar"
        ]
    );
    assert!(roots["<Uart as Write>::write_str"]
        .1
        .contains("implements Write::write_str"));
    let (graph, roots) = analyze("roles_serial", "serial");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "<Uart as Write>::write_str",
            "Uart::getchar",
            "Uart::putchar",
            "Uart::reg",
            "Uart::tx_full",
        ])
    );
}

#[test]
fn a_template_that_finds_nothing_says_so() {
    let graph = CallGraph::analyze(&fixture("roles_serial"), &CfgSet::default()).expect("analyses");
    let warnings = Template::builtin("block")
        .expect("builtin")
        .family_warnings(&graph);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("found no roots"), "{}", warnings[0]);
    assert!(warnings[0].contains("--template serial"), "{}", warnings[0]);
}

#[test]
fn unknown_receivers_and_generic_fn_parameters_do_not_fan_out() {
    let (graph, roots) = analyze("fanout", "none");
    let critical = critical_set(&graph, &roots);
    for cold in [
        "A::process",
        "B::process",
        "C::process",
        "Queue::len",
        "cold_a",
        "cold_b",
        "config::{closure#0}",
        "takes_u32",
    ] {
        assert!(!critical.contains(cold), "{cold} is not on the hot path");
    }
    for hot in [
        "Only::only_here",
        "Dev::with_lock",
        "poll::{closure#0}",
        "hot_body",
        "frame_len",
    ] {
        assert!(critical.contains(hot), "{hot} is on the hot path");
    }
    assert!(
        graph
            .unresolved
            .iter()
            .any(|u| u.what.contains("process") && u.reason.contains("A::process")),
        "the ambiguous receiver is listed: {:?}",
        graph.unresolved
    );
}

#[test]
fn box_dyn_forwarding_calls_the_boxed_implementations() {
    let (graph, roots) = analyze("box_dyn", "none");
    let critical = critical_set(&graph, &roots);
    assert!(critical.contains("<Mmio as Port>::write"));
    assert!(critical.contains("mmio_store"));
    let fwd = graph
        .find("<Box<dyn Port> as Port>::write")
        .expect("forwarding impl");
    assert!(
        !graph.edges().any(|e| e.from == fwd && e.to == fwd),
        "(**self).write() is not a call to itself"
    );
}

#[test]
fn item_macros_are_unresolved_and_include_is_followed() {
    let graph = CallGraph::analyze(&fixture("item_macros"), &CfgSet::default()).expect("analyses");
    let whats: Vec<&str> = graph.unresolved.iter().map(|u| u.what.as_str()).collect();
    assert!(
        whats.iter().any(|w| w.contains("macro_rules! make_reader")),
        "{whats:?}"
    );
    assert!(
        whats.iter().any(|w| w.contains("make_reader!")),
        "{whats:?}"
    );
    let user = graph.find("uses_included").expect("exists");
    let helper = graph.find("included_helper").expect("included file's fn");
    assert!(graph.edges().any(|e| e.from == user && e.to == helper));
}

#[test]
fn edition_2015_crates_parse() {
    let graph =
        CallGraph::analyze(&fixture("edition2015"), &CfgSet::default()).expect("2015 parses");
    let paths: Vec<&str> = graph.fns.iter().map(|f| f.path.as_str()).collect();
    for f in [
        "helper",
        "uses_try",
        "parse",
        "<H as Handler>::handle",
        "dispatch",
    ] {
        assert!(paths.contains(&f), "{f} in {paths:?}");
    }
    let handle = graph.find("<H as Handler>::handle").expect("exists");
    let helper = graph.find("helper").expect("exists");
    assert!(graph.edges().any(|e| e.from == handle && e.to == helper));
}

#[test]
fn question_mark_calls_the_from_impl_and_primitive_paths_resolve() {
    let (graph, roots) = analyze("inserted", "none");
    assert_eq!(
        critical_set(&graph, &roots),
        set(&[
            "xmit",
            "hw",
            "<Error as From>::from",
            "convert",
            "rx",
            "<u16 as U16Ext>::from_parts",
        ])
    );
    let xmit = graph.find("xmit").expect("exists");
    let from = graph.find("<Error as From>::from").expect("exists");
    assert!(graph.edges().any(|e| e.from == xmit
        && e.to == from
        && e.kind == microdriver_split::model::EdgeKind::Inserted));
}

/// eth-intel's `TxQueue::reclaim` calls `desc.is_done()` on a value read out of an external
/// `CoherentArray<TxDesc>`: with two `is_done` methods in the crate the call had no edge
/// and the corpus missed both. The caller's own fields name `TxDesc`: that one is taken.
#[test]
fn an_unknown_receiver_takes_the_method_of_the_type_the_callers_fields_name() {
    let (graph, _) = analyze("field_hint", "none");
    let reclaim = graph.find("TxQueue::reclaim").expect("reclaim");
    let check = graph.find("Other::check").expect("check");
    let callees = |from: usize| -> Vec<String> {
        let mut v: Vec<String> = graph
            .edges()
            .filter(|e| e.from == from)
            .map(|e| graph.fns[e.to].path.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(callees(reclaim), ["TxDesc::is_done"]);
    // A caller whose fields name neither type: no edge, listed as unresolved.
    assert!(callees(check).is_empty(), "{:?}", callees(check));
    assert!(graph
        .unresolved
        .iter()
        .any(|u| u.what.contains("is_done") && u.reason.contains("2 crate method(s)")));
}

/// rtl8139-rs transmits through `STATE.try_get().expect(..).try_write()` on a
/// `OnceCell<Arc<RwLock<State>>>` static and calls `lock.write(frame)`: `try_get` and
/// `try_write` were not known to yield the cell's value and a guard, so the call (to a
/// method named like `RwLock::write`) had no edge and the corpus missed
/// `Rtl8139State::write`.
#[test]
fn a_guard_from_try_get_and_try_write_reaches_the_state_method() {
    let (graph, _) = analyze("once_cell", "none");
    let send = graph.find("send").expect("send");
    let write = graph.find("State::write").expect("State::write");
    assert!(
        graph.edges().any(|e| e.from == send && e.to == write),
        "no edge send -> State::write"
    );
}

/// enc28j60 has no interrupt line of its own: its user's handler calls
/// `interrupt_pending()` and bounds its receive loop with `pending_packets()`. Neither
/// name was in the `net` template, so both (hot) were missed. They are roots by name with
/// a status result (a `bool`, a count); the same name with another result is not.
#[test]
fn polled_interrupt_status_and_pending_count_are_net_roots() {
    let roots = template_roots("polled_net", "net");
    let picked: Vec<&str> = roots.keys().map(String::as_str).collect();
    assert_eq!(
        picked,
        [
            "Dev::interrupt_pending",
            "Dev::pending_packets",
            "Dev::receive"
        ]
    );
    assert_eq!(roots["Dev::interrupt_pending"].0, "interrupt");
    assert_eq!(roots["Dev::pending_packets"].0, "receive");
    assert!(roots["Dev::pending_packets"].1.contains("returns u8"));
}
