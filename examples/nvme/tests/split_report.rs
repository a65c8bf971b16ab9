//! The split as built, with the splitter's `block` template: the kernel half's share of
//! the driver's lines and the number of `#[marshal(...)]` annotations the driver needs.
//!
//! The kernel half is what `microdriver-split` computes from the source: the template's
//! roots (`submit_io`, `process_cq`/`poll_cq`), every `#[critical]` function and what they
//! reach, not entering `#[upcall]` functions. `host_lines` is the kernel-side host code
//! (`host::`, `kernel::attach`/`detach`/`health_check`: the threads and the block API),
//! which no critical function reaches, so the splitter counts it in the user half; the
//! share without it is shown too.
//!
//! `cargo test -p nvme --test split_report -- --nocapture` prints them; they are asserted
//! against `tests/split_report.expected` (`SPLIT_REPORT_UPDATE=1` rewrites it), and the
//! docs quoting them must follow. `SPLIT_REPORT_TEXT=1` also prints the splitter's full
//! report (every kernel-half function and its lines: where to look for code to move).

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
    let template = Template::builtin("block").expect("block template");
    let roots = template.roots(&graph, &[]).expect("roots");
    let names: Vec<&str> = roots
        .iter()
        .map(|r| graph.fns[r.fn_id].path.as_str())
        .collect();
    for want in [
        "hot::io::submit_io",
        "hot::io::process_cq",
        "hot::io::poll_cq",
    ] {
        assert!(
            names.contains(&want),
            "the block template finds {want}: {names:?}"
        );
    }
    let split = Split::propagate(&graph, &roots);
    let report = Report::new(&graph, &split, "block");
    println!("{}", report.share_line());
    if std::env::var_os("SPLIT_REPORT_TEXT").is_some() {
        println!("{}", report.text(&graph));
    }
    let host_lines: usize = graph
        .fns
        .iter()
        .filter(|f| !split.critical[f.id])
        .filter(|f| f.path.starts_with("host::") || f.path.starts_with("kernel::"))
        .map(|f| f.lines)
        .sum();
    let driver_lines = report.lines - host_lines;
    let annotations = count_marshal_annotations(&crate_dir.join("src"));
    let (critical, lines) = (report.critical_lines, report.lines);
    let measured = format!(
        "kernel_half_share = {:.1}% ({critical} of {lines} lines)\n\
         host_lines = {host_lines}\n\
         kernel_half_share_without_host = {:.1}% ({critical} of {driver_lines} lines)\n\
         marshal_annotations = {annotations}\n",
        100.0 * critical as f64 / lines as f64,
        100.0 * critical as f64 / driver_lines as f64,
    );
    print!("{measured}");
    let expected_path = crate_dir.join("tests/split_report.expected");
    if std::env::var_os("SPLIT_REPORT_UPDATE").is_some_and(|v| v == "1") {
        std::fs::write(&expected_path, &measured).expect("writing split_report.expected");
    }
    let expected = std::fs::read_to_string(&expected_path).expect("tests/split_report.expected");
    assert_eq!(
        measured, expected,
        "the split moved: run with SPLIT_REPORT_UPDATE=1 and update the docs that quote it"
    );
}
