//! The rules an annotated function must follow. Every error is spanned at the offending
//! argument, type or keyword, names it, and says what would fix it.

use quote::ToTokens;
use syn::Error;

use super::ast::{ArgKind, Call, Ret};
use super::Side;

/// Errors collected across all checks, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<Error>);

impl Errors {
    /// Adds one.
    pub(crate) fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// `Err` with every error, if there were any.
    pub(crate) fn finish(self) -> Result<(), Error> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Tokens as a user would write them (`&str`, not `& str`), for messages.
fn text(tokens: &impl ToTokens) -> String {
    let mut out = tokens.to_token_stream().to_string();
    for (from, to) in [
        ("& ", "&"),
        ("* const ", "*const "),
        ("* mut ", "*mut "),
        (" :: ", "::"),
        (":: ", "::"),
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" ,", ","),
        ("( ", "("),
        (" )", ")"),
        ("' ", "'"),
    ] {
        out = out.replace(from, to);
    }
    out
}

impl Call<'_> {
    /// Checks every rule, pushing one error per violation.
    pub(crate) fn validate(&self, errors: &mut Errors) {
        let attr = self.side.attr_name();
        let sig = &self.func.sig;
        let name = &sig.ident;
        if let Some(asyncness) = &sig.asyncness {
            errors.push(Error::new_spanned(
                asyncness,
                format!("{attr} functions cannot be `async`: remove `async` from `{name}` (a call across the split already blocks only its caller)"),
            ));
        }
        if let Some(constness) = &sig.constness {
            errors.push(Error::new_spanned(
                constness,
                format!("{attr} functions cannot be `const`: remove `const` from `{name}`"),
            ));
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.push(Error::new_spanned(
                unsafety,
                format!("{attr} functions cannot be `unsafe`: remove `unsafe` from `{name}` and keep the unsafe operations inside its body"),
            ));
        }
        if let Some(abi) = &sig.abi {
            errors.push(Error::new_spanned(
                abi,
                format!("{attr} functions cannot have an `extern` ABI: remove it from `{name}`"),
            ));
        }
        if let Some(variadic) = &sig.variadic {
            errors.push(Error::new_spanned(
                variadic,
                format!("{attr} functions cannot be variadic: remove `...` from `{name}`"),
            ));
        }
        if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
            let span_of = sig.generics.params.to_token_stream();
            let tokens = if span_of.is_empty() {
                sig.generics.where_clause.to_token_stream()
            } else {
                sig.generics.to_token_stream()
            };
            errors.push(Error::new_spanned(
                tokens,
                format!("{attr} functions cannot be generic: both halves register `{name}` once, with concrete types; remove the generic parameters (and `where` clause) from `{name}`, e.g. write one annotated function per concrete type (elided reference lifetimes are fine)"),
            ));
        }
        for arg in &self.args {
            self.check_arg(arg, errors);
        }
        match &self.ret {
            Ret::ImplTrait(ty) => errors.push(Error::new_spanned(
                ty,
                format!("{attr} functions cannot return `impl Trait`: the value crosses the split, so `{name}` must return a concrete type that implements `Marshal`"),
            )),
            Ret::Value(ty) if self.side == Side::Upcall => errors.push(Error::new_spanned(
                ty,
                format!("an #[upcall] that returns a value must return Result<_, E> with E: From<CallError>, so a dead user half can be reported: change `{name}` to return `Result<{}, E>`", text(ty)),
            )),
            _ => {}
        }
        if self.options.deferred.is_some() && !matches!(self.ret, Ret::Unit) {
            errors.push(Error::new_spanned(
                &sig.output,
                format!("#[upcall(deferred)] functions return at once, before the user half runs them: remove the return type of `{name}` (it must return `()`), or drop `deferred` to wait for the result"),
            ));
        }
    }

    fn check_arg(&self, arg: &super::ast::Arg<'_>, errors: &mut Errors) {
        let attr = self.side.attr_name();
        let pat = text(arg.pat);
        if arg.ident.is_none() {
            errors.push(Error::new_spanned(
                arg.pat,
                format!("argument `{pat}` of {attr} function `{}`: only plain names (`x` or `mut x`) can cross the split; bind the argument to a name and destructure it in the body", self.func.sig.ident),
            ));
        }
        let name = arg.ident.map_or(pat, ToString::to_string);
        let ty = text(arg.ty);
        match arg.kind {
            ArgKind::RawPtr => errors.push(Error::new_spanned(
                arg.ty,
                format!("argument `{name}: {ty}` cannot cross the split: pass a reference, a `TrackedPtr`, or a type whose pointer field is annotated `#[marshal(opaque)]`"),
            )),
            ArgKind::ImplTrait => errors.push(Error::new_spanned(
                arg.ty,
                format!("argument `{name}: {ty}` cannot cross the split: `impl Trait` has no wire form; take a concrete type that implements `Marshal`"),
            )),
            ArgKind::StrMut => errors.push(Error::new_spanned(
                arg.ty,
                format!("argument `{name}: {ty}` cannot cross the split: a `&mut str` cannot change length; take `&mut String` instead"),
            )),
            _ => {}
        }
        if self.options.deferred.is_some() && !matches!(arg.kind, ArgKind::Owned) {
            errors.push(Error::new_spanned(
                arg.ty,
                format!("argument `{name}: {ty}` of #[upcall(deferred)] function `{}` is a reference, but a deferred upcall runs after its caller has returned: take the argument by value (an owned type that is `Send + 'static`, e.g. `Vec<T>` or `String` instead of a slice or `&str`), or drop `deferred`", self.func.sig.ident),
            ));
        }
    }
}
