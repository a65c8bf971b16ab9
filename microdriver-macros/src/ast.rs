//! The deriving type, parsed: structs and enums, their fields with attributes read, and the
//! shape of each field's type as far as the derive needs to know it.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Fields, GenericArgument, Generics, Ident, Member, PathArguments, Type,
};

use crate::attr::{self, Container, FieldAttrs};
use crate::valid::Errors;

/// The deriving item.
pub enum Input<'a> {
    Struct(Struct<'a>),
    Enum(Enum<'a>),
}

pub struct Struct<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub attrs: Container,
    pub fields: Vec<Field<'a>>,
    /// `#[repr(packed)]` / `#[repr(packed(N))]`: fields may be unaligned, so they are read
    /// by copy, never borrowed.
    pub packed: bool,
}

pub struct Enum<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub attrs: Container,
    pub variants: Vec<Variant<'a>>,
}

pub struct Variant<'a> {
    pub ident: &'a Ident,
    pub fields: Vec<Field<'a>>,
}

pub struct Field<'a> {
    /// `self.<member>`: the name, or the index of a tuple field.
    pub member: Member,
    /// The field's name for messages and `LengthMismatch` (`buffer`, `0`).
    pub name: String,
    /// "field `buffer`" or "field `buffer` of variant `Msg::Data`", for messages.
    pub what: String,
    pub ty: &'a Type,
    pub attrs: FieldAttrs,
    /// Whether this field sits in an enum variant.
    pub in_variant: bool,
}

/// What a field's type looks like, as far as the attributes care.
pub enum Shape<'a> {
    /// `&T`, `&mut T`.
    Reference,
    /// `*mut T`, `*const T`; carries `T`.
    RawPtr(&'a Type),
    /// `NonNull<T>`.
    NonNull(&'a Type),
    /// `Option<NonNull<T>>`.
    OptionNonNull(&'a Type),
    /// `Vec<T>` or `Box<[T]>`.
    Seq,
    /// Anything else.
    Other,
}

impl<'a> Field<'a> {
    pub fn shape(&self) -> Shape<'a> {
        shape(self.ty)
    }

    /// Where errors about the field's type point.
    pub fn ty_span(&self) -> Span {
        self.ty.span()
    }
}

/// Strips invisible groups and parentheses (types passed through `macro_rules!`).
fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Group(g) => ty = &g.elem,
            Type::Paren(p) => ty = &p.elem,
            _ => return ty,
        }
    }
}

/// `Name<Arg>`: the single type argument of a path type whose last segment is `name`.
fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(path) = peel(ty) else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    let mut types = args.args.iter().filter_map(|a| match a {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let first = types.next()?;
    types.next().is_none().then_some(first)
}

fn shape(ty: &Type) -> Shape<'_> {
    match peel(ty) {
        Type::Reference(_) => Shape::Reference,
        Type::Ptr(p) => Shape::RawPtr(&p.elem),
        ty => {
            if let Some(elem) = single_arg(ty, "NonNull") {
                Shape::NonNull(elem)
            } else if let Some(elem) =
                single_arg(ty, "Option").and_then(|o| single_arg(o, "NonNull"))
            {
                Shape::OptionNonNull(elem)
            } else if single_arg(ty, "Vec").is_some()
                || single_arg(ty, "Box").is_some_and(|b| matches!(peel(b), Type::Slice(_)))
            {
                Shape::Seq
            } else {
                Shape::Other
            }
        }
    }
}

/// The element type of a raw-array field (`*mut T`, `*const T`, `Option<NonNull<T>>`).
pub fn raw_array_elem(ty: &Type) -> Option<&Type> {
    match shape(ty) {
        Shape::RawPtr(elem) | Shape::OptionNonNull(elem) => Some(elem),
        _ => None,
    }
}

/// Whether `#[repr(...)]` asks for `packed` or `packed(N)`.
fn is_packed(attrs: &[syn::Attribute]) -> bool {
    let mut packed = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("repr")) {
        // Malformed `repr`s are rustc's to report.
        let _ = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("packed") {
                packed = true;
            }
            if meta.input.peek(syn::token::Paren) {
                let _ = meta.input.parse::<proc_macro2::Group>();
            }
            Ok(())
        });
    }
    packed
}

/// The type's name without `r#`.
pub fn unraw(ident: &Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_owned).unwrap_or(s)
}

fn fields<'a>(fields: &'a Fields, variant: Option<&str>, errors: &mut Errors) -> Vec<Field<'a>> {
    fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (member, name) = match &f.ident {
                Some(ident) => (Member::Named(ident.clone()), unraw(ident)),
                None => (
                    Member::Unnamed(syn::Index {
                        index: i as u32,
                        span: f.ty.span(),
                    }),
                    i.to_string(),
                ),
            };
            let what = match variant {
                Some(v) => format!("field `{name}` of variant `{v}`"),
                None => format!("field `{name}`"),
            };
            let attrs = attr::field(&f.attrs, &what, errors);
            Field {
                member,
                name,
                what,
                ty: &f.ty,
                attrs,
                in_variant: variant.is_some(),
            }
        })
        .collect()
}

impl<'a> Input<'a> {
    /// Parses the item; attribute mistakes go to `errors` and parsing goes on. `None` for
    /// items the derive refuses outright (unions), with the error pushed.
    pub fn from_syn(input: &'a DeriveInput, errors: &mut Errors) -> Option<Self> {
        let attrs = attr::container(&input.attrs, errors);
        match &input.data {
            Data::Struct(data) => Some(Input::Struct(Struct {
                ident: &input.ident,
                generics: &input.generics,
                attrs,
                fields: fields(&data.fields, None, errors),
                packed: is_packed(&input.attrs),
            })),
            Data::Enum(data) => {
                let enum_name = unraw(&input.ident);
                let variants = data
                    .variants
                    .iter()
                    .map(|v| {
                        let path = format!("{enum_name}::{}", unraw(&v.ident));
                        attr::variant(&v.attrs, &format!("enum variants (`{path}`)"), errors);
                        Variant {
                            ident: &v.ident,
                            fields: fields(&v.fields, Some(&path), errors),
                        }
                    })
                    .collect();
                Some(Input::Enum(Enum {
                    ident: &input.ident,
                    generics: &input.generics,
                    attrs,
                    variants,
                }))
            }
            Data::Union(data) => {
                errors.push(syn::Error::new(
                    data.union_token.span,
                    format!(
                        "`#[derive(Marshal)]` does not support unions (`{}`): nothing records \
                         which field is live, so microdriver cannot know what to send; use an \
                         enum, or implement `Marshal` by hand",
                        unraw(&input.ident)
                    ),
                ));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(src: &str) -> &'static str {
        let ty: Type = syn::parse_str(src).unwrap();
        match shape(&ty) {
            Shape::Reference => "ref",
            Shape::RawPtr(_) => "raw",
            Shape::NonNull(_) => "nonnull",
            Shape::OptionNonNull(_) => "option-nonnull",
            Shape::Seq => "seq",
            Shape::Other => "other",
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(shape_of("&'a u8"), "ref");
        assert_eq!(shape_of("&mut [u8]"), "ref");
        assert_eq!(shape_of("*mut u32"), "raw");
        assert_eq!(shape_of("*const Desc"), "raw");
        assert_eq!(shape_of("NonNull<u8>"), "nonnull");
        assert_eq!(shape_of("core::ptr::NonNull<u8>"), "nonnull");
        assert_eq!(shape_of("Option<NonNull<u8>>"), "option-nonnull");
        assert_eq!(shape_of("Option<std::ptr::NonNull<u8>>"), "option-nonnull");
        assert_eq!(shape_of("Vec<u8>"), "seq");
        assert_eq!(shape_of("std::vec::Vec<Desc>"), "seq");
        assert_eq!(shape_of("Box<[u8]>"), "seq");
        assert_eq!(shape_of("Box<u8>"), "other");
        assert_eq!(shape_of("Option<u8>"), "other");
        assert_eq!(shape_of("u32"), "other");
    }
}
