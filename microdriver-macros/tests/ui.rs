//! Compile-fail tests: each mistake gets one error that names the field and the fix.
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test -p microdriver-macros --test ui`, then read every
//! `.stderr` before committing it.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
