//! Compile-fail tests of `#[upcall]` and `#[critical]`: every refusal names the argument
//! (or attribute argument) and the fix. Regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p microdriver-macros --test ui_call`.

#[test]
fn ui_call() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui_call/*.rs");
}
