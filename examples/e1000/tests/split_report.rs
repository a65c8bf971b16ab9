//! The split as built: the `kernel_half_share` line count and the number of `#[marshal(...)]`
//! annotations the driver needs (issue 6, "Must show").
//!
//! The kernel half is what the splitter (`microdriver-split`) computes from the driver's
//! source: the `net` template's roots (interrupt handler, transmit, poll), every
//! `#[critical]` function, and everything they reach, not entering `#[upcall]` functions.
//! Lines are function lines (signature to closing brace, without docs and attributes);
//! `#[cfg(test)]` code is excluded. These numbers are printed:
//!
//! * `kernel_half_share`: the whole kernel half as built (the hot path plus the checked
//!   services the user half calls: register policy, ring allocation, DMA, interrupts);
//! * `hot_path_share`: the hot path alone (roots under `hot::`, and what they reach).
//! * `host_lines` and `kernel_half_share_without_host`: the kernel-side host code (the
//!   threads and stack entry points in `netdev`, `kernel::attach`, the backends), which the
//!   splitter counts in the user half, and the share with it left out of the total.
//!
//! Run `cargo test -p e1000 --test split_report -- --nocapture` to see them.
//!
//! They are asserted against `tests/split_report.expected` (committed), and the docs that
//! quote them (this crate's README.md, docs/ARCHITECTURE.md) must quote those values: a
//! change to the driver that moves a number fails here until the expected file and the
//! docs say so. `SPLIT_REPORT_UPDATE=1` rewrites the expected file with the numbers of
//! this run (the docs are prose: edit them by hand, this test then checks them).

use std::path::Path;

use microdriver_split::cfg::CfgSet;
use microdriver_split::propagate::Split;
use microdriver_split::report::Report;
use microdriver_split::template::Template;
use microdriver_split::CallGraph;

fn count_marshal_annotations(dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read src") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("read source");
                n += text
                    .lines()
                    .filter(|l| l.trim_start().starts_with("#[marshal("))
                    .count();
            }
        }
    }
    n
}

#[test]
fn kernel_half_share_and_annotation_count() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let graph = CallGraph::analyze(crate_dir, &CfgSet::default()).expect("call graph");
    let template = Template::builtin("net").expect("net template");
    let roots = template.roots(&graph, &[]).expect("roots");
    let split = Split::propagate(&graph, &roots);
    let report = Report::new(&graph, &split, "net");
    println!("{}", report.share_line());
    println!(
        "kernel half: {} of {} functions, {} of {} lines",
        report.critical_functions, report.functions, report.critical_lines, report.lines
    );

    let hot_roots: Vec<_> = roots
        .iter()
        .filter(|r| graph.fns[r.fn_id].path.starts_with("hot::"))
        .cloned()
        .collect();
    assert!(hot_roots.len() >= 4, "irq, poll (TX and RX clean), xmit");
    let hot = Split::propagate(&graph, &hot_roots);
    let hot_lines: usize = graph
        .fns
        .iter()
        .filter(|f| hot.critical[f.id])
        .map(|f| f.lines)
        .sum();
    let hot_share = 100.0 * hot_lines as f64 / report.lines as f64;
    println!(
        "hot_path_share = {hot_share:.1}% ({hot_lines} of {} lines)",
        report.lines
    );

    // Kernel-side host code: what runs in the kernel half's process but is the operating
    // system's part, not the driver's (the interrupt and service threads, the network
    // stack's entry points, attaching a device). No critical function
    // reaches it, so the splitter puts it in the user half; it is neither half of the
    // driver, so it is also shown left out of the count.
    let host_lines: usize = graph
        .fns
        .iter()
        .filter(|f| !split.critical[f.id])
        .filter(|f| {
            ["netdev::", "kernel::"]
                .iter()
                .any(|m| f.path.starts_with(m))
        })
        .map(|f| f.lines)
        .sum();
    let driver_lines = report.lines - host_lines;
    println!("host_lines = {host_lines} (kernel-side host code, counted in the user half above)");
    println!(
        "kernel_half_share_without_host = {:.1}% ({} of {driver_lines} lines)",
        100.0 * report.critical_lines as f64 / driver_lines as f64,
        report.critical_lines
    );

    let annotations = count_marshal_annotations(&crate_dir.join("src"));
    println!("marshal_annotations = {annotations}");

    let share = format!(
        "{:.1}",
        100.0 * report.critical_lines as f64 / report.lines as f64
    );
    let hot_share = format!("{hot_share:.1}");
    let without = format!(
        "{:.1}",
        100.0 * report.critical_lines as f64 / driver_lines as f64
    );
    let (critical, lines) = (report.critical_lines, report.lines);
    let measured = format!(
        "kernel_half_share = {share}% ({critical} of {lines} lines)\n\
         hot_path_share = {hot_share}% ({hot_lines} of {lines} lines)\n\
         host_lines = {host_lines}\n\
         kernel_half_share_without_host = {without}% ({critical} of {driver_lines} lines)\n\
         marshal_annotations = {annotations}\n"
    );
    let expected_path = crate_dir.join("tests/split_report.expected");
    if std::env::var_os("SPLIT_REPORT_UPDATE").is_some_and(|v| v == "1") {
        std::fs::write(&expected_path, &measured).expect("writing split_report.expected");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("tests/split_report.expected");
    assert_eq!(
        measured, expected,
        "the split moved: these numbers (left) differ from tests/split_report.expected \
         (right). If the change is meant, run with SPLIT_REPORT_UPDATE=1 and update the docs \
         that quote them (examples/e1000/README.md, docs/ARCHITECTURE.md)"
    );
    // What the docs quote, in their words (whitespace folded: the prose wraps anywhere).
    let fold = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    for (doc, quotes) in [
        (
            crate_dir.join("README.md"),
            vec![
                format!("`kernel_half_share = {share}%`"),
                format!("({critical} of {lines} function lines)"),
                format!("`host_lines = {host_lines}`"),
                format!("`kernel_half_share_without_host = {without}%` ({critical} of {driver_lines})"),
                format!("`hot_path_share = {hot_share}%` ({hot_lines} lines)"),
                format!("`marshal_annotations = {annotations}`"),
            ],
        ),
        (
            crate_dir.join("../../docs/ARCHITECTURE.md"),
            vec![
                format!("`kernel_half_share` is {share}% ({critical} of {lines} function lines; hot path {hot_share}%"),
                format!("and {without}% with the {host_lines} lines of kernel-side host code"),
            ],
        ),
    ] {
        let text = fold(&std::fs::read_to_string(&doc).expect("a doc that quotes the split"));
        for quote in quotes {
            assert!(
                text.contains(&quote),
                "{} does not quote this run's numbers: no {quote:?} in it",
                doc.display()
            );
        }
    }

    // The hot path's entry points and what they call are in the kernel half; nothing of
    // the user half's modules is.
    for name in [
        "hot::irq::intr",
        "hot::irq::handle",
        "hot::poll::poll",
        "hot::poll::run",
        "hot::tx::xmit_frame",
        "hot::tx::xmit",
        "hot::tx::clean_locked",
        "hot::rx::clean",
        "hot::rx::RxRing::refill",
    ] {
        let id = graph.find(name).expect(name);
        assert!(split.critical[id], "{name} is hot but not critical");
    }
    for f in &graph.fns {
        for upcall_module in ["probe::", "config::", "ethtool::", "selftest::", "link::"] {
            if f.path.starts_with(upcall_module) {
                assert!(
                    !split.critical[f.id],
                    "{} is user-half but critical",
                    f.path
                );
            }
        }
    }
}
