//! Reading `#[marshal(...)]` attributes: the one place that knows their syntax.
//!
//! Readers never stop at the first mistake: every unknown key or malformed value becomes an
//! error in the shared [`Errors`] and reading goes on, so one build shows them all.

use proc_macro2::Span;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, ExprLit, Lit, LitStr, Token, WherePredicate};

use crate::valid::Errors;

/// The keys a field may carry, as shown in messages.
const FIELD_KEYS_HELP: &str = "the field keys are `len = <expr>`, `skip` and `opaque`";

/// A field attribute key.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Key {
    Len,
    Skip,
    Opaque,
}

impl Key {
    /// How the attribute is written, for messages.
    pub fn written(self) -> &'static str {
        match self {
            Key::Len => "#[marshal(len = ...)]",
            Key::Skip => "#[marshal(skip)]",
            Key::Opaque => "#[marshal(opaque)]",
        }
    }
}

/// `#[marshal(len = EXPR)]`.
pub struct Len {
    /// The `len` key (where errors about the attribute point).
    pub key: Span,
    /// The length expression as written (a string literal's contents are parsed).
    pub expr: Expr,
}

/// A field's attributes.
#[derive(Default)]
pub struct FieldAttrs {
    pub len: Option<Len>,
    pub skip: Option<Span>,
    pub opaque: Option<Span>,
    /// The first occurrence of each key, in source order (conflicts are reported at the
    /// later of two keys).
    pub order: Vec<(Key, Span)>,
    /// Repeated keys, each at its repetition.
    pub duplicates: Vec<(Key, Span)>,
}

/// The type's (container) attributes.
#[derive(Default)]
pub struct Container {
    /// `#[marshal(bound = "...")]`: replaces the derived `P: Marshal` bounds.
    pub bound: Option<Vec<WherePredicate>>,
}

fn is_marshal(attr: &Attribute) -> bool {
    attr.path().is_ident("marshal")
}

/// The name of the key being read, as written.
fn key_name(meta: &ParseNestedMeta<'_>) -> String {
    meta.path
        .get_ident()
        .map(ToString::to_string)
        .unwrap_or_else(|| {
            let segments: Vec<String> = meta
                .path
                .segments
                .iter()
                .map(|s| s.ident.to_string())
                .collect();
            segments.join("::")
        })
}

/// Consumes whatever follows a key we are refusing (`= value` or `(...)`), so reading can
/// go on with the next key.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|inner| skip_value(&inner))?;
    }
    Ok(())
}

/// A known key close to a misspelt one.
fn suggest(unknown: &str, known: &[&'static str]) -> Option<&'static str> {
    let unknown = unknown.to_ascii_lowercase();
    // Spellings borrowed from other derives.
    let alias = match unknown.as_str() {
        "length" | "count" | "size" | "n" => Some("len"),
        "ignore" | "skip_serializing" | "default" | "skip_marshal" => Some("skip"),
        "identity" | "noderef" | "handle" | "id" => Some("opaque"),
        "bounds" | "where" => Some("bound"),
        _ => None,
    };
    if let Some(alias) = alias.filter(|a| known.contains(a)) {
        return Some(alias);
    }
    known.iter().copied().find(|k| {
        unknown.starts_with(k) || k.starts_with(unknown.as_str()) || edit_distance(&unknown, k) <= 2
    })
}

/// Levenshtein distance (keys are a few bytes long).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(cur)
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn did_you_mean(unknown: &str, known: &[&'static str]) -> String {
    match suggest(unknown, known) {
        Some(k) => format!("did you mean `{k}`? "),
        None => String::new(),
    }
}

/// Reads the `#[marshal(...)]` attributes of a field. `what` names the field in messages
/// (e.g. "field `buffer`").
pub fn field(attrs: &[Attribute], what: &str, errors: &mut Errors) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    for attr in attrs.iter().filter(|a| is_marshal(a)) {
        let result = attr.parse_nested_meta(|meta| {
            let name = key_name(&meta);
            let span = meta.path.get_ident().map_or_else(
                || syn::spanned::Spanned::span(&meta.path),
                proc_macro2::Ident::span,
            );
            let key = match name.as_str() {
                "len" => Key::Len,
                "skip" => Key::Skip,
                "opaque" => Key::Opaque,
                "prompt" => {
                    // A question `cargo microdriver apply` left for the user: the build
                    // refuses it until it is answered.
                    let question = if meta.input.peek(Token![=]) {
                        meta.value()?.parse::<LitStr>()?.value()
                    } else {
                        String::new()
                    };
                    errors.push(syn::Error::new(
                        span,
                        format!(
                            "{what} has an unanswered `cargo microdriver apply` prompt: \
                             {question}. Replace `#[marshal(prompt = ...)]` with the \
                             annotation it needs (its guess is above), or run `cargo \
                             microdriver apply --accept-guesses` to write the guesses it is \
                             sure of"
                        ),
                    ));
                    return Ok(());
                }
                _ => {
                    errors.push(syn::Error::new(
                        span,
                        format!(
                            "unknown `#[marshal]` key `{name}` on {what}; {}{FIELD_KEYS_HELP}",
                            did_you_mean(&name, &["len", "skip", "opaque"]),
                        ),
                    ));
                    return skip_value(&meta);
                }
            };
            let value = match key {
                Key::Len => {
                    if !meta.input.peek(Token![=]) {
                        errors.push(syn::Error::new(
                            span,
                            format!(
                                "`len` on {what} needs a value: write \
                                 `#[marshal(len = self.count)]` with the expression that \
                                 gives the number of elements"
                            ),
                        ));
                        return skip_value(&meta);
                    }
                    Some(len_expr(meta.value()?.parse::<Expr>()?)?)
                }
                Key::Skip | Key::Opaque => {
                    if meta.input.peek(Token![=]) || meta.input.peek(syn::token::Paren) {
                        errors.push(syn::Error::new(
                            span,
                            format!(
                                "`{name}` on {what} takes no value: write `{}`",
                                key.written()
                            ),
                        ));
                        skip_value(&meta)?;
                    }
                    None
                }
            };
            if out.order.iter().any(|(k, _)| *k == key) {
                out.duplicates.push((key, span));
                return Ok(());
            }
            out.order.push((key, span));
            match key {
                Key::Len => {
                    out.len = value.map(|expr| Len { key: span, expr });
                }
                Key::Skip => out.skip = Some(span),
                Key::Opaque => out.opaque = Some(span),
            }
            Ok(())
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    out
}

/// A `len` value: an expression, or a string literal holding one (`len = "count"`).
fn len_expr(expr: Expr) -> syn::Result<Expr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => s.parse::<Expr>(),
        other => Ok(other),
    }
}

/// Reads the container attributes of the deriving type.
pub fn container(attrs: &[Attribute], errors: &mut Errors) -> Container {
    let mut out = Container::default();
    for attr in attrs.iter().filter(|a| is_marshal(a)) {
        let result = attr.parse_nested_meta(|meta| {
            let name = key_name(&meta);
            if name == "bound" {
                let lit: LitStr = meta.value()?.parse()?;
                let preds =
                    lit.parse_with(Punctuated::<WherePredicate, Token![,]>::parse_terminated)?;
                if out.bound.is_some() {
                    errors.push(meta.error("duplicate `#[marshal(bound = \"...\")]`; keep one"));
                }
                out.bound = Some(preds.into_iter().collect());
                return Ok(());
            }
            let hint = if matches!(name.as_str(), "len" | "skip" | "opaque") {
                format!(
                    "`{name}` goes on a field, not on the type: put it on the field it describes"
                )
            } else {
                format!(
                    "unknown `#[marshal]` key `{name}` on the type; {}the only container key is \
                     `bound = \"...\"` (`len`, `skip` and `opaque` go on fields)",
                    did_you_mean(&name, &["bound"]),
                )
            };
            errors.push(meta.error(hint));
            skip_value(&meta)
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
    out
}

/// Refuses `#[marshal(...)]` on an enum variant (`what` names it).
pub fn variant(attrs: &[Attribute], what: &str, errors: &mut Errors) {
    for attr in attrs.iter().filter(|a| is_marshal(a)) {
        let result = attr.parse_nested_meta(|meta| {
            let name = key_name(&meta);
            errors.push(meta.error(format!(
                "`#[marshal({name})]` does not apply to {what}; put `skip` or `opaque` on the \
                 variant's fields instead"
            )));
            skip_value(&meta)
        });
        if let Err(err) = result {
            errors.push(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["len", "skip", "opaque"];
        assert_eq!(suggest("lenght", &keys), Some("len"));
        assert_eq!(suggest("length", &keys), Some("len"));
        assert_eq!(suggest("skp", &keys), Some("skip"));
        assert_eq!(suggest("opaq", &keys), Some("opaque"));
        assert_eq!(suggest("ignore", &keys), Some("skip"));
        assert_eq!(suggest("rename", &keys), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn a_prompt_is_an_error_that_carries_the_question() {
        let item: syn::ItemStruct = syn::parse_quote! {
            struct Ring {
                count: u32,
                #[marshal(prompt = "raw pointer; guess: len = count")]
                ptr: *mut u8,
            }
        };
        let field = item.fields.iter().nth(1).expect("two fields");
        let mut errors = Errors::default();
        let attrs = super::field(&field.attrs, "field `ptr`", &mut errors);
        assert!(attrs.order.is_empty(), "a prompt answers nothing");
        let err = errors.finish().expect_err("a prompt must fail the build");
        let text = err.to_string();
        assert!(
            text.contains("field `ptr` has an unanswered `cargo microdriver apply` prompt")
                && text.contains("guess: len = count"),
            "{text}"
        );
    }
}
