//! `cargo microdriver apply` on the `apply` fixture (an unannotated driver): what it
//! annotates and why, that its edits keep the rest of the file byte for byte, that a second
//! run changes nothing, each kind of marshal prompt, `--accept-guesses`, and `--from-cut`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{fixture, run_cli as run};

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "apply failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `cargo microdriver apply FLAGS... DIR`: its standard output (it must succeed).
fn apply(flags: &[&str], dir: &Path) -> String {
    let mut args = vec!["apply"];
    args.extend_from_slice(flags);
    args.push(dir.to_str().expect("utf-8 path"));
    stdout(&run(&args))
}

/// A fresh copy of the fixture in a directory of the test's own.
fn copy_fixture(name: &str) -> PathBuf {
    let dest = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("apply-{name}"));
    if dest.exists() {
        std::fs::remove_dir_all(&dest).expect("clear the old copy");
    }
    copy_dir(&fixture("apply"), &dest);
    dest
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read fixture") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).expect("copy");
        }
    }
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).expect("read source")
}

const FILES: &[&str] = &[
    "src/lib.rs",
    "src/hot.rs",
    "src/kernel.rs",
    "src/host.rs",
    "src/user.rs",
];

/// The lines right above `fn name`, after its doc comment.
fn attrs_of(text: &str, name: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(&format!("fn {name}(")) || l.contains(&format!("fn {name}<")))
        .unwrap_or_else(|| panic!("no fn {name}"));
    lines[..at]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with("#["))
        .map(|l| l.trim().to_string())
        .collect()
}

#[test]
fn annotates_entry_points_services_and_user_entry_points() {
    let dir = copy_fixture("annotates");
    let out = apply(&[], &dir);
    let hot = read(&dir, "src/hot.rs");
    let kernel = read(&dir, "src/kernel.rs");
    let user = read(&dir, "src/user.rs");
    for name in ["intr", "xmit_frame", "poll"] {
        assert_eq!(
            attrs_of(&hot, name),
            ["#[microdriver_rt::critical]"],
            "{name}"
        );
    }
    // The services: take the device handle and call into the critical set (`reg_read`,
    // `ring_give`) or name its state (`detach` names the registry).
    for name in ["reg_read", "detach", "ring_give"] {
        assert_eq!(
            attrs_of(&kernel, name),
            ["#[microdriver_rt::critical]"],
            "{name}"
        );
    }
    // Not `lookup`: it is in the critical set but its result (`Arc<Kernel>`) cannot cross,
    // and the user half does not call it.
    assert!(attrs_of(&kernel, "lookup").is_empty());
    // The host calls `probe`; nothing in the crate calls `set_mtu`.
    assert_eq!(attrs_of(&user, "probe"), ["#[microdriver_rt::upcall]"]);
    assert_eq!(attrs_of(&user, "set_mtu"), ["#[microdriver_rt::upcall]"]);
    // A helper the user half calls stays unannotated; a generic entry point is skipped
    // with the reason.
    assert!(attrs_of(&user, "checked").is_empty());
    assert!(attrs_of(&user, "generic_op").is_empty());
    assert!(
        out.contains("skipped: user::generic_op wants #[upcall]: generic"),
        "{out}"
    );
    // The host's own functions are not the user half's.
    assert!(attrs_of(&read(&dir, "src/host.rs"), "start").is_empty());
    let toml = read(&dir, "microdriver-split.toml");
    assert!(toml.contains("#   hot::intr  [interrupt:"), "{toml}");
    assert!(toml.contains("#   kernel::reg_read  [service"), "{toml}");
    assert!(toml.contains("family = \"net\""), "{toml}");
}

#[test]
fn edits_only_insert_lines() {
    let dir = copy_fixture("formatting");
    let before: Vec<String> = FILES.iter().map(|f| read(&dir, f)).collect();
    apply(&[], &dir);
    for (file, old) in FILES.iter().zip(&before) {
        let new = read(&dir, file);
        // Removing the inserted lines gives the old file back, byte for byte: comments,
        // odd spacing and the final newline are kept.
        let kept: String = new
            .split_inclusive('\n')
            .filter(|l| {
                let t = l.trim();
                !(t.starts_with("#[microdriver_rt::") || t.starts_with("#[marshal(prompt"))
            })
            .collect();
        assert_eq!(&kept, old, "{file}");
    }
    let user = read(&dir, "src/user.rs");
    assert!(
        user.contains("/* A helper, with a block comment   and odd   spacing kept as it is. */")
    );
    assert!(user.contains("id   &   0xffff // trailing comment"));
}

#[test]
fn apply_twice_is_apply_once() {
    let dir = copy_fixture("idempotent");
    apply(&[], &dir);
    let once: Vec<String> = FILES.iter().map(|f| read(&dir, f)).collect();
    let second = apply(&["--dry-run"], &dir);
    assert!(
        !second.contains("+++ "),
        "a second run still edits: {second}"
    );
    assert!(second.contains(": 0 annotations"), "{second}");
    apply(&[], &dir);
    let twice: Vec<String> = FILES.iter().map(|f| read(&dir, f)).collect();
    assert_eq!(once, twice);
}

#[test]
fn dry_run_prints_a_diff_and_writes_nothing() {
    let dir = copy_fixture("dry-run");
    let before: Vec<String> = FILES.iter().map(|f| read(&dir, f)).collect();
    let out = apply(&["--dry-run"], &dir);
    let after: Vec<String> = FILES.iter().map(|f| read(&dir, f)).collect();
    assert_eq!(before, after, "a dry run wrote");
    assert!(!dir.join("microdriver-split.toml").exists());
    assert!(out.contains("/src/hot.rs\n"), "{out}");
    assert!(
        out.contains(" /// The interrupt handler.\n+#[microdriver_rt::critical]\n pub fn intr("),
        "{out}"
    );
    assert!(out.contains("@@ -"), "{out}");
}

/// One prompt per field that cannot cross, each with its kind of guess.
#[test]
fn prompts_each_kind_with_its_guess() {
    let dir = copy_fixture("prompts");
    let out = apply(&["--json"], &dir);
    let plan: serde_json::Value = serde_json::from_str(&out).expect("JSON");
    let prompts = plan["prompts"].as_array().expect("prompts");
    let find = |field: &str| {
        prompts
            .iter()
            .find(|p| p["field"] == field)
            .unwrap_or_else(|| panic!("no prompt for {field}: {out}"))
    };
    // Raw pointer with one sibling count: `len = count`, sure.
    assert_eq!(find("buf")["guess"], "len = count");
    assert_eq!(find("buf")["sure"], true);
    // Raw pointer with two candidate counts: a guess, not sure.
    assert_eq!(find("data")["guess"], "len = head_len");
    assert_eq!(find("data")["sure"], false);
    // Device memory: skip, sure.
    assert_eq!(find("desc")["guess"], "skip");
    assert_eq!(find("desc")["sure"], true);
    // Shared state, a type without Marshal, a reference: skip, not sure.
    for field in ["lock", "info", "name"] {
        assert_eq!(find(field)["guess"], "skip", "{field}");
        assert_eq!(find(field)["sure"], false, "{field}");
    }
    assert!(find("name")["why"]
        .as_str()
        .is_some_and(|w| w.contains("reference")));
    assert!(find("lock")["why"]
        .as_str()
        .is_some_and(|w| w.contains("shared state")));
    assert_eq!(prompts.len(), 6, "{out}");
    // Fields that cross as they are get no prompt.
    for field in ["count", "head_len", "tail_len"] {
        assert!(prompts.iter().all(|p| p["field"] != field), "{field}");
    }
    // Each prompt is written on its field as an attribute the derive refuses.
    let kernel = read(&dir, "src/kernel.rs");
    let lines: Vec<&str> = kernel.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == "pub buf: *mut u8,")
        .expect("buf field");
    assert!(
        lines[at - 1]
            .trim_start()
            .starts_with("#[marshal(prompt = \"")
            && lines[at - 1].contains("guess: len = count"),
        "{}",
        lines[at - 1]
    );
}

#[test]
fn accept_guesses_writes_the_sure_ones() {
    let dir = copy_fixture("accept");
    apply(&["--accept-guesses"], &dir);
    let kernel = read(&dir, "src/kernel.rs");
    assert!(kernel.contains("    #[marshal(len = count)]\n    pub buf: *mut u8,"));
    assert!(kernel.contains("    #[marshal(skip)]\n    pub desc: DmaMem,"));
    // The unsure ones stay questions.
    assert!(kernel.contains("guess: len = head_len\")]\n    pub data: *const u16,"));
    assert!(kernel.contains("guess: skip\")]\n    pub lock: Arc<Mutex<u32>>,"));
}

/// From `cut`: a long function the hot path calls rarely (the profile) goes to the user
/// half, and the poll loop drops its result: a deferred upcall.
#[test]
fn from_cut_defers_a_rare_call_whose_result_is_dropped() {
    let dir = copy_fixture("cut");
    let profile = dir.join("profile.json");
    let profile = profile.to_str().expect("utf-8 path");
    let out = apply(&["--from-cut", "--profile", profile], &dir);
    let hot = read(&dir, "src/hot.rs");
    assert_eq!(
        attrs_of(&hot, "note_done"),
        ["#[microdriver_rt::upcall(deferred)]"],
        "{out}"
    );
    assert_eq!(attrs_of(&hot, "poll"), ["#[microdriver_rt::critical]"]);
    assert!(out.contains("apply (cut split)"), "{out}");
    // The propagation split keeps it in the kernel half, unannotated.
    let dir = copy_fixture("cut-propagation");
    apply(&[], &dir);
    assert!(attrs_of(&read(&dir, "src/hot.rs"), "note_done").is_empty());
}

#[test]
fn compare_prints_the_agreement_line() {
    let dir = copy_fixture("compare");
    apply(&[], &dir);
    let out = stdout(&run(&[
        "compare",
        fixture("apply").to_str().expect("utf-8 path"),
        dir.to_str().expect("utf-8 path"),
    ]));
    // The unannotated fixture's propagation split lacks the services' reach that the
    // applied one has: `reg_read`, `detach` and `ring_give` (and nothing else) differ.
    assert!(
        out.contains("apply agreement with the hand split = ") && out.contains("3 by apply only"),
        "{out}"
    );
}

#[test]
fn a_crate_without_the_runtime_is_told_to_add_it() {
    let dir = copy_fixture("dependency");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"apply-fixture\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .expect("write manifest");
    let out = apply(&["--dry-run"], &dir);
    assert!(
        out.contains(
            "Cargo.toml: the attributes written come from microdriver-rt: add it to [dependencies]"
        ),
        "{out}"
    );
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"apply-fixture\"\nversion = \"0.1.0\"\n\n[dependencies]\nmicrodriver-rt = \"0.1\"\n",
    )
    .expect("write manifest");
    let out = apply(&["--dry-run"], &dir);
    assert!(!out.contains("note:"), "{out}");
}

/// The `critical` / `upcall` imports no attribute uses once applied are dropped (a whole
/// line, or one name of a group), so the applied crate builds without unused-import
/// warnings; one a glob-importing child module still uses is kept.
#[test]
fn unused_attribute_imports_are_dropped() {
    let dir = copy_fixture("imports");
    let edit = |file: &str, from: &str, to: &str| {
        let text = read(&dir, file);
        assert!(text.contains(from), "{file}: {from}");
        std::fs::write(dir.join(file), text.replacen(from, to, 1)).expect("write source");
    };
    let host_before = read(&dir, "src/host.rs");
    // A line of its own, between blank lines: nothing in host.rs is annotated.
    edit(
        "src/host.rs",
        "use crate::{hot",
        "use microdriver_rt::critical;\n\nuse crate::{hot",
    );
    // A group: hot.rs gets #[critical] only.
    edit(
        "src/hot.rs",
        "use crate::{DevId, DriverError};\n",
        "use crate::{DevId, DriverError};\nuse microdriver_rt::{critical, upcall};\n",
    );
    edit(
        "src/lib.rs",
        "use microdriver_rt::{CallError, Marshal};",
        "use microdriver_rt::{upcall, CallError, Marshal};",
    );
    // kernel.rs writes no #[upcall], but its child `hand` glob-imports it and uses it.
    edit(
        "src/kernel.rs",
        "use microdriver_rt::Marshal;\n",
        "use microdriver_rt::Marshal;\nuse microdriver_rt::upcall;\n\npub mod hand;\n",
    );
    std::fs::create_dir_all(dir.join("src/kernel")).expect("mkdir");
    std::fs::write(
        dir.join("src/kernel/hand.rs"),
        "//! Annotated by hand, with the parent's import.\n\nuse super::*;\n\n\
         /// Resets the device.\n#[upcall]\npub fn reset(_dev: DevId) -> Result<(), DriverError> {\n    Ok(())\n}\n",
    )
    .expect("write child module");
    let out = apply(&[], &dir);
    assert_eq!(read(&dir, "src/host.rs"), host_before, "{out}");
    let hot = read(&dir, "src/hot.rs");
    assert!(hot.contains("\nuse microdriver_rt::critical;\n"), "{hot}");
    assert_eq!(attrs_of(&hot, "intr"), ["#[critical]"]);
    assert!(read(&dir, "src/lib.rs").contains("\nuse microdriver_rt::{CallError, Marshal};\n"));
    assert!(read(&dir, "src/kernel.rs").contains("\nuse microdriver_rt::upcall;\n"));
    assert!(
        out.contains("src/host.rs:3: `use microdriver_rt::critical;` no longer imports `critical`"),
        "{out}"
    );
    // And a second run finds nothing more to drop.
    let second = apply(&["--dry-run"], &dir);
    assert!(!second.contains("+++ "), "{second}");
}

/// A root that is a method cannot carry `#[critical]`: the summary counts it and says why
/// (third-party drivers' entry points are mostly methods).
#[test]
fn the_summary_counts_the_methods_it_skips() {
    let dir = copy_fixture("methods");
    let out = apply(&["--dry-run", "--root", "user::Rings::give"], &dir);
    assert!(
        out.contains("skipped: user::Rings::give wants #[critical]: a method cannot carry"),
        "{out}"
    );
    assert!(
        out.contains(", 2 skipped (1 of them a method or closure: #[critical] and #[upcall] take free functions only"),
        "{out}"
    );
    // Without the method root, only the generic function is skipped, and no count is given.
    let out = apply(&["--dry-run"], &dir);
    assert!(out.contains(", 1 skipped, "), "{out}");
}
