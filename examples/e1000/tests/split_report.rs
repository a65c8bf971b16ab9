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
