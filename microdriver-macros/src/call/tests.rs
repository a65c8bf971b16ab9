//! Unit tests of the expansion's shape (the behaviour is tested end to end in
//! `microdriver-rt/tests/lrpc_macros.rs`, the errors in `tests/ui_call`).

use proc_macro2::TokenStream;
use syn::{File, Item};

use super::{expand, Side};

fn run(side: Side, args: &str, item: &str) -> TokenStream {
    expand(side, args.parse().unwrap(), item.parse().unwrap())
}

fn items(out: &TokenStream) -> Vec<Item> {
    syn::parse2::<File>(out.clone())
        .unwrap_or_else(|e| panic!("{e}: {out}"))
        .items
}

fn fn_named<'a>(items: &'a [Item], name: &str) -> &'a syn::ItemFn {
    items
        .iter()
        .find_map(|item| match item {
            Item::Fn(f) if f.sig.ident == name => Some(f),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no fn {name}"))
}

fn attr_names(f: &syn::ItemFn) -> Vec<String> {
    f.attrs
        .iter()
        .map(|a| {
            a.path()
                .get_ident()
                .map_or_else(String::new, ToString::to_string)
        })
        .collect()
}

#[test]
fn stub_body_and_entry_are_generated() {
    let out = run(
        Side::Upcall,
        "",
        "/// Docs.\n#[inline] #[must_use] #[allow(unused)] #[cfg(all())]\n\
         pub fn set(a: &mut u32, mut b: u64) -> Result<u64, E> { *a += 1; b += 1; Ok(b) }",
    );
    let items = items(&out);
    assert_eq!(items.len(), 3, "{out}");
    let stub = fn_named(&items, "set");
    let body = fn_named(&items, "__microdriver_body_set");
    assert_eq!(attr_names(stub), ["doc", "must_use", "allow", "cfg"]);
    assert_eq!(attr_names(body), ["inline", "allow", "cfg", "doc"]);
    assert!(matches!(stub.vis, syn::Visibility::Public(_)));
    // The stub only passes `b` on: its binding loses `mut`; the body keeps it.
    let stub_sig = quote::quote!(#stub).to_string();
    assert!(!stub_sig.contains("mut b"), "{stub_sig}");
    let body_sig = &body.sig;
    assert!(quote::quote!(#body_sig).to_string().contains("mut b"));
    let text = out.to_string();
    assert!(text.contains("upcall_route"), "{text}");
    assert!(text.contains("Served :: ByUser"), "{text}");
    assert!(text.contains("inventory :: submit"), "{text}");
    assert!(
        text.contains("decode_into"),
        "&mut arguments come back: {text}"
    );
    match &items[2] {
        Item::Const(c) => assert_eq!(c.ident, "_"),
        other => panic!("expected the entry's anonymous const, got {other:?}"),
    }
}

#[test]
fn critical_routes_downcalls() {
    let text = run(Side::Critical, "", "fn get(x: u32) -> u64 { x.into() }").to_string();
    assert!(text.contains("critical_route"), "{text}");
    assert!(text.contains("downcall_or_exit"), "{text}");
    assert!(text.contains("Served :: ByKernel"), "{text}");
}

#[test]
fn deferred_posts_the_call() {
    let text = run(Side::Upcall, "deferred", "fn note(s: String) {}").to_string();
    assert!(text.contains("lrpc :: defer (move"), "{text}");
    assert!(text.contains("upcall_or_log"), "{text}");
    assert!(text.contains("Send + 'static"), "{text}");
}

#[test]
fn errors_keep_the_function_unchanged() {
    let src = "pub fn f(p: *mut u8) -> u32 { 1 }";
    let out = run(Side::Upcall, "", src);
    let items = items(&out);
    // The function as written, then one `compile_error!` per error.
    let original: syn::ItemFn = syn::parse_str(src).unwrap();
    assert_eq!(fn_named(&items, "f"), &original);
    let errors = out.to_string().matches("compile_error").count();
    assert_eq!(errors, 2, "a raw pointer and a non-Result return: {out}");
}

#[test]
fn not_a_function_is_an_error() {
    let out = run(Side::Critical, "", "struct S;").to_string();
    assert!(out.contains("applies to free functions"), "{out}");
    assert!(out.contains("struct S"), "{out}");
}
