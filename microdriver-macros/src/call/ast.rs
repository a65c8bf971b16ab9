//! The annotated function, parsed: each argument's name and how it crosses, and the
//! return type's shape. Parsing is lenient; [`super::valid`] decides what is an error.

use syn::{FnArg, GenericArgument, Ident, ItemFn, Pat, PathArguments, ReturnType, Type};

use super::attr::Options;
use super::valid::Errors;
use super::Side;

/// An annotated function.
pub(crate) struct Call<'a> {
    /// The function as written.
    pub func: &'a ItemFn,
    /// `#[upcall]` or `#[critical]`.
    pub side: Side,
    /// The attribute's arguments.
    pub options: Options,
    /// The arguments, in order (receivers excluded: they are refused by validation).
    pub args: Vec<Arg<'a>>,
    /// The return type.
    pub ret: Ret<'a>,
}

/// One argument.
pub(crate) struct Arg<'a> {
    /// The binding's name, when the pattern is a plain identifier (`x` or `mut x`).
    pub ident: Option<&'a Ident>,
    /// The pattern as written.
    pub pat: &'a Pat,
    /// The type as written.
    pub ty: &'a Type,
    /// How it crosses.
    pub kind: ArgKind<'a>,
}

/// How an argument crosses, by the shape of its type.
pub(crate) enum ArgKind<'a> {
    /// `T`: encoded by reference, decoded owned, moved into the body.
    Owned,
    /// `&T`: decoded owned, lent as `&a`.
    Ref(&'a Type),
    /// `&mut T`: lent as `&mut a`, carried back after the call.
    RefMut(&'a Type),
    /// `&[T]`: decoded as `Vec<T>`, lent as `&a[..]`.
    Slice(&'a Type),
    /// `&mut [T]`: decoded as `Vec<T>`, lent as `&mut a[..]`, carried back.
    SliceMut(&'a Type),
    /// `&str`: decoded as `String`.
    Str,
    /// `&mut str`: refused.
    StrMut,
    /// `*const T`, `*mut T`, or a reference to one: refused.
    RawPtr,
    /// `impl Trait`: refused.
    ImplTrait,
}

/// The return type's shape.
pub(crate) enum Ret<'a> {
    /// No return type, or `()`.
    Unit,
    /// `Result<T, E>` (by the last path segment's name).
    Result {
        /// `T`.
        ok: &'a Type,
        /// `E`.
        err: &'a Type,
    },
    /// `impl Trait`: refused.
    ImplTrait(&'a Type),
    /// Anything else.
    Value(&'a Type),
}

impl<'a> Call<'a> {
    /// Parses `func`. Receivers are reported here (they have no type to classify).
    pub(crate) fn from_syn(
        func: &'a ItemFn,
        side: Side,
        options: Options,
        errors: &mut Errors,
    ) -> Call<'a> {
        let mut args = Vec::new();
        for input in &func.sig.inputs {
            match input {
                FnArg::Receiver(receiver) => errors.push(syn::Error::new_spanned(
                    receiver,
                    format!(
                        "{} applies to free functions, not methods: the `self` receiver cannot \
                         cross the split; make it an ordinary argument, e.g. \
                         `fn {}(this: &mut Type, ...)`, outside the `impl` block",
                        side.attr_name(),
                        func.sig.ident
                    ),
                )),
                FnArg::Typed(typed) => {
                    let ident = match &*typed.pat {
                        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
                        _ => None,
                    };
                    args.push(Arg {
                        ident,
                        pat: &typed.pat,
                        ty: &typed.ty,
                        kind: classify(&typed.ty),
                    });
                }
            }
        }
        let ret = match &func.sig.output {
            ReturnType::Default => Ret::Unit,
            ReturnType::Type(_, ty) => classify_ret(ty),
        };
        Call {
            func,
            side,
            options,
            args,
            ret,
        }
    }
}

fn strip_parens(mut ty: &Type) -> &Type {
    while let Type::Paren(p) = ty {
        ty = &p.elem;
    }
    if let Type::Group(g) = ty {
        return strip_parens(&g.elem);
    }
    ty
}

fn classify(ty: &Type) -> ArgKind<'_> {
    match strip_parens(ty) {
        Type::Ptr(_) => ArgKind::RawPtr,
        Type::ImplTrait(_) => ArgKind::ImplTrait,
        Type::Reference(r) => {
            let elem = strip_parens(&r.elem);
            let mutable = r.mutability.is_some();
            match elem {
                Type::Ptr(_) => ArgKind::RawPtr,
                Type::ImplTrait(_) => ArgKind::ImplTrait,
                Type::Slice(s) if mutable => ArgKind::SliceMut(&s.elem),
                Type::Slice(s) => ArgKind::Slice(&s.elem),
                Type::Path(p) if p.qself.is_none() && p.path.is_ident("str") => {
                    if mutable {
                        ArgKind::StrMut
                    } else {
                        ArgKind::Str
                    }
                }
                _ if mutable => ArgKind::RefMut(&r.elem),
                _ => ArgKind::Ref(&r.elem),
            }
        }
        _ => ArgKind::Owned,
    }
}

fn classify_ret(ty: &Type) -> Ret<'_> {
    match strip_parens(ty) {
        Type::Tuple(t) if t.elems.is_empty() => Ret::Unit,
        Type::ImplTrait(_) => Ret::ImplTrait(ty),
        Type::Path(p) if p.qself.is_none() => {
            let Some(last) = p.path.segments.last() else {
                return Ret::Value(ty);
            };
            if last.ident != "Result" {
                return Ret::Value(ty);
            }
            let PathArguments::AngleBracketed(generic) = &last.arguments else {
                return Ret::Value(ty);
            };
            let types: Vec<&Type> = generic
                .args
                .iter()
                .filter_map(|a| match a {
                    GenericArgument::Type(t) => Some(t),
                    _ => None,
                })
                .collect();
            match types[..] {
                [ok, err] if generic.args.len() == 2 => Ret::Result { ok, err },
                _ => Ret::Value(ty),
            }
        }
        _ => Ret::Value(ty),
    }
}
