//! Property: on generated crates whose call structure is known (free functions in the
//! root and in a file module, methods of a struct, called by plain paths, `crate::`,
//! `super::`, `self::` and method syntax; indirect calls through a static table of function
//! pointers; deferrals), the critical set is exactly what the root reaches (an indirect
//! call reaching every function in the table, a deferral reaching nothing), and the
//! analysis never fails.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use microdriver_split::cfg::CfgSet;
use microdriver_split::propagate::Split;
use microdriver_split::template::Template;
use microdriver_split::CallGraph;
use proptest::prelude::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Loc {
    Root,
    Module,
    Method,
}

fn path_of(i: usize, loc: Loc) -> String {
    match loc {
        Loc::Root => format!("f{i}"),
        Loc::Module => format!("m::f{i}"),
        Loc::Method => format!("S::f{i}"),
    }
}

/// A call from code in `from` to function `i` in `to`; `alt` picks a spelling.
fn call(from: Loc, i: usize, to: Loc, alt: bool) -> String {
    match (from, to) {
        (_, Loc::Method) => {
            if alt {
                format!("{{ let s = crate::S; s.f{i}(); }}")
            } else {
                format!("crate::S::f{i}(&crate::S);")
            }
        }
        (Loc::Module, Loc::Root) => {
            if alt {
                format!("super::f{i}();")
            } else {
                format!("crate::f{i}();")
            }
        }
        (_, Loc::Root) => {
            if alt {
                format!("f{i}();")
            } else {
                format!("crate::f{i}();")
            }
        }
        (Loc::Module, Loc::Module) => {
            if alt {
                format!("self::f{i}();")
            } else {
                format!("f{i}();")
            }
        }
        (_, Loc::Module) => format!("m::f{i}();"),
    }
}

static CASE: AtomicUsize = AtomicUsize::new(0);

/// How a generated call is made.
#[derive(Debug, Clone, Copy, PartialEq)]
enum How {
    Direct,
    Indirect,
    Defer,
}

type Program = (Vec<Loc>, Vec<bool>, Vec<Vec<(usize, bool, How)>>);

fn program() -> impl Strategy<Value = Program> {
    (2usize..10).prop_flat_map(|n| {
        let locs = prop::collection::vec(
            prop_oneof![Just(Loc::Root), Just(Loc::Module), Just(Loc::Method)],
            n,
        );
        let taken = prop::collection::vec(any::<bool>(), n);
        let how =
            prop_oneof![4 => Just(How::Direct), 1 => Just(How::Indirect), 1 => Just(How::Defer)];
        let calls =
            prop::collection::vec(prop::collection::vec((0..n, any::<bool>(), how), 0..4), n);
        (locs, taken, calls)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn critical_set_is_reachability((locs, taken, calls) in program()) {
        let n = locs.len();
        // Only free functions go in the table (methods have another arity).
        let in_table = |i: usize| taken[i] && locs[i] != Loc::Method;
        let mut root = String::from("pub mod m;\npub struct S;\npub fn defer_upcall(_f: fn()) {}\n");
        let entries: Vec<String> = (0..n).filter(|&i| in_table(i)).map(|i| path_of(i, locs[i])).collect();
        root.push_str(&format!("pub static TABLE: &[fn()] = &[{}];\nimpl S {{\n", entries.join(", ")));
        let mut module = String::new();
        let mut free = String::new();
        for i in 0..n {
            let mut body = String::new();
            for &(j, alt, how) in &calls[i] {
                let line = match how {
                    How::Indirect => "(crate::TABLE[0])();".to_string(),
                    How::Defer if locs[j] != Loc::Method => format!("crate::defer_upcall(crate::{});", path_of(j, locs[j])),
                    _ => call(locs[i], j, locs[j], alt),
                };
                let _ = writeln!(body, "    {line}");
            }
            let attr = if i == 0 { "#[critical(root)]\n" } else { "" };
            match locs[i] {
                Loc::Root => { let _ = write!(free, "{attr}pub fn f{i}() {{\n{body}}}\n"); }
                Loc::Module => { let _ = write!(module, "{attr}pub fn f{i}() {{\n{body}}}\n"); }
                Loc::Method => { let _ = write!(root, "{attr}pub fn f{i}(&self) {{\n{body}}}\n"); }
            }
        }
        root.push_str("}\n");
        root.push_str(&free);
        let dir: PathBuf = std::env::temp_dir().join(format!(
            "md-split-prop-{}-{}", std::process::id(), CASE.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(dir.join("src")).expect("tmp dir");
        std::fs::write(dir.join("src/lib.rs"), &root).expect("write lib.rs");
        std::fs::write(dir.join("src/m.rs"), &module).expect("write m.rs");

        let graph = CallGraph::analyze(&dir, &CfgSet::default()).expect("analysis succeeds");
        let roots = Template::builtin("none").expect("builtin").roots(&graph, &[]).expect("roots");
        let split = Split::propagate(&graph, &roots);
        let got: BTreeSet<String> = split.critical_ids().into_iter().map(|i| graph.fns[i].path.clone()).collect();

        let mut seen = vec![false; n];
        let mut stack = vec![0usize];
        seen[0] = true;
        while let Some(f) = stack.pop() {
            for &(j, _, how) in &calls[f] {
                let targets: Vec<usize> = match how {
                    How::Direct => vec![j],
                    How::Defer if locs[j] == Loc::Method => vec![j],
                    How::Defer => Vec::new(),
                    How::Indirect => (0..n).filter(|&i| in_table(i)).collect(),
                };
                for t in targets {
                    if !seen[t] { seen[t] = true; stack.push(t); }
                }
            }
        }
        let want: BTreeSet<String> = (0..n).filter(|i| seen[*i]).map(|i| path_of(i, locs[i])).collect();
        let _ = std::fs::remove_dir_all(&dir);
        prop_assert_eq!(got, want, "source:\n{}\n--- m.rs:\n{}", root, module);
        prop_assert!(
            graph.unresolved.iter().all(|u| u.what.starts_with("indirect call") && entries.is_empty()),
            "{:?}", graph.unresolved
        );
    }
}
