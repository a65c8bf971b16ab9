//! Checks the parsed item before anything is generated. Every error is spanned at what
//! must change, names the field, and says which annotation or type fixes it.

use quote::ToTokens;
use syn::Type;

use crate::ast::{Field, Input, Shape};
use crate::attr::Key;

/// Errors collected across the whole item, reported together.
#[derive(Default)]
pub struct Errors {
    err: Option<syn::Error>,
}

impl Errors {
    pub fn push(&mut self, err: syn::Error) {
        match &mut self.err {
            Some(all) => all.combine(err),
            None => self.err = Some(err),
        }
    }

    pub fn finish(self) -> syn::Result<()> {
        self.err.map_or(Ok(()), Err)
    }
}

/// A type as the user wrote it, for messages (`Option<NonNull<u8>>`, not
/// `Option < NonNull < u8 > >`).
pub fn type_string(ty: &Type) -> String {
    let mut s = ty.to_token_stream().to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" ,", ","),
        ("& ", "&"),
        ("* ", "*"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        s = s.replace(from, to);
    }
    s
}

impl Input<'_> {
    pub fn validate(&self, errors: &mut Errors) {
        match self {
            Input::Struct(s) => {
                for field in &s.fields {
                    check_field(field, errors);
                    if s.packed {
                        check_packed_field(field, errors);
                    }
                }
            }
            Input::Enum(e) => e
                .variants
                .iter()
                .flat_map(|v| &v.fields)
                .for_each(|f| check_field(f, errors)),
        }
    }
}

fn check_field(field: &Field<'_>, errors: &mut Errors) {
    let what = &field.what;
    let attrs = &field.attrs;

    for (key, span) in &attrs.duplicates {
        errors.push(syn::Error::new(
            *span,
            format!("duplicate `{}` on {what}; keep one", key.written()),
        ));
    }

    // Conflicting keys, reported at the later of the two.
    let later = |a: Key, b: Key| {
        let pos = |k: Key| attrs.order.iter().position(|(x, _)| *x == k);
        match (pos(a), pos(b)) {
            (Some(i), Some(j)) => Some(attrs.order[i.max(j)].1),
            _ => None,
        }
    };
    let mut conflict = false;
    for other in [Key::Len, Key::Opaque] {
        if let Some(span) = later(Key::Skip, other) {
            conflict = true;
            errors.push(syn::Error::new(
                span,
                format!(
                    "`{}` and `{}` conflict on {what}: a skipped field never crosses the split, \
                     so it has nothing to {}; remove one of them",
                    Key::Skip.written(),
                    other.written(),
                    if other == Key::Len {
                        "measure"
                    } else {
                        "identify"
                    },
                ),
            ));
        }
    }
    if let Some(span) = later(Key::Len, Key::Opaque) {
        conflict = true;
        errors.push(syn::Error::new(
            span,
            format!(
                "`#[marshal(len = ...)]` and `#[marshal(opaque)]` conflict on {what}: `len` \
                 sends the elements the pointer points to, `opaque` sends only the pointer's \
                 identity and never dereferences it; keep the one you mean"
            ),
        ));
    }
    if conflict {
        return;
    }

    let ty = type_string(field.ty);
    if let Some(len) = &attrs.len {
        if field.in_variant {
            errors.push(syn::Error::new(
                len.key,
                format!(
                    "`#[marshal(len = ...)]` is supported on struct fields, not on {what}; wrap \
                     the array and its length in a struct that derives `Marshal` and use that \
                     struct as the field's type"
                ),
            ));
            return;
        }
        match field.shape() {
            Shape::RawPtr(_) | Shape::OptionNonNull(_) | Shape::Seq => {}
            Shape::NonNull(elem) => {
                let elem = type_string(elem);
                errors.push(syn::Error::new_spanned(
                    field.ty,
                    format!(
                        "`#[marshal(len = ...)]` cannot apply to {what} of type `{ty}`: a \
                         decoded array may be empty or rejected, and a `NonNull` cannot be \
                         null; declare the field as `Option<NonNull<{elem}>>` or `*mut {elem}`"
                    ),
                ));
            }
            Shape::Reference | Shape::Other => {
                errors.push(syn::Error::new(
                    len.key,
                    format!(
                        "`#[marshal(len = ...)]` cannot apply to {what} of type `{ty}`: `len` \
                         applies to raw pointers (`*mut T`, `*const T`), `Option<NonNull<T>>`, \
                         `Vec<T>` and boxed slices (`Box<[T]>`); remove it here, and put it on \
                         the field that holds the elements"
                    ),
                ));
            }
        }
        return;
    }
    if attrs.skip.is_some() || attrs.opaque.is_some() {
        return;
    }

    match field.shape() {
        Shape::Reference => {
            let owned = match syn_peel_ref(field.ty) {
                Some(inner) => type_string(inner),
                None => "T".to_owned(),
            };
            errors.push(syn::Error::new_spanned(
                field.ty,
                format!(
                    "{what} is a reference (`{ty}`), which cannot cross the split: the other \
                     half cannot borrow from this one; use an owned `{owned}`, a \
                     `Box<{owned}>`, or a `TrackedPtr<{owned}>` to share the object, or mark \
                     the field `#[marshal(skip)]` if it should not cross"
                ),
            ));
        }
        Shape::RawPtr(_) | Shape::NonNull(_) | Shape::OptionNonNull(_) => {
            let kind = match field.shape() {
                Shape::RawPtr(_) => "a raw pointer",
                _ => "a `NonNull` pointer",
            };
            let fix = if field.in_variant {
                "add `#[marshal(opaque)]` to pass it through without dereferencing, or, if it \
                 points to an array the value owns, move the pointer and its length into a \
                 struct and annotate the pointer there with `#[marshal(len = ...)]`"
            } else if matches!(field.shape(), Shape::NonNull(_)) {
                "add `#[marshal(opaque)]` to pass it through without dereferencing, or, if it \
                 points to an array this struct owns, declare it `Option<NonNull<T>>` and add \
                 `#[marshal(len = ...)]`"
            } else {
                "add `#[marshal(len = ...)]` if it points to an array this struct owns, or \
                 `#[marshal(opaque)]` to pass it through without dereferencing"
            };
            errors.push(syn::Error::new_spanned(
                field.ty,
                format!("{what} is {kind} (`{ty}`) whose extent microdriver cannot know; {fix}"),
            ));
        }
        Shape::Seq | Shape::Other => {}
    }
}

/// Fields of a `#[repr(packed)]` struct are read by copy; a `len`-annotated sequence
/// would have to be borrowed.
fn check_packed_field(field: &Field<'_>, errors: &mut Errors) {
    if let (Some(len), Shape::Seq) = (&field.attrs.len, field.shape()) {
        if field.attrs.opaque.is_none() && field.attrs.skip.is_none() {
            errors.push(syn::Error::new(
                len.key,
                format!(
                    "`#[marshal(len = ...)]` on {} needs to borrow the field, and fields of a \
                     `#[repr(packed)]` struct may be unaligned; remove `packed`, or hold the \
                     elements behind a raw pointer (`*mut T` with `len`)",
                    field.what
                ),
            ));
        }
    }
}

fn syn_peel_ref(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(r) => Some(&r.elem),
        Type::Group(g) => syn_peel_ref(&g.elem),
        Type::Paren(p) => syn_peel_ref(&p.elem),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings() {
        let t = |s: &str| type_string(&syn::parse_str::<Type>(s).unwrap());
        assert_eq!(t("Option<NonNull<u8>>"), "Option<NonNull<u8>>");
        assert_eq!(t("*mut u8"), "*mut u8");
        assert_eq!(t("&'a mut Config"), "&'a mut Config");
        assert_eq!(
            t("core::ptr::NonNull<[u8; 4]>"),
            "core::ptr::NonNull<[u8; 4]>"
        );
        assert_eq!(t("HashMap<u32, Vec<u8>>"), "HashMap<u32, Vec<u8>>");
    }
}
