//! The attribute's own arguments: `#[upcall]`, `#[upcall(deferred)]`, `#[critical]`.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;

use super::valid::Errors;
use super::Side;

/// What the attribute's arguments asked for.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Options {
    /// `#[upcall(deferred)]`: the kernel-half caller posts the call and returns at once.
    pub deferred: Option<proc_macro2::Span>,
}

impl Options {
    /// Reads the arguments; unknown ones become spanned errors listing the valid ones.
    pub(crate) fn parse(side: Side, args: TokenStream, errors: &mut Errors) -> Options {
        let mut options = Options::default();
        if args.is_empty() {
            return options;
        }
        let parser = syn::meta::parser(|meta: ParseNestedMeta<'_>| {
            if side == Side::Upcall && meta.path.is_ident("deferred") {
                if options.deferred.is_some() {
                    return Err(meta.error("`deferred` is given twice; remove one"));
                }
                if !meta.input.is_empty() && !meta.input.peek(syn::Token![,]) {
                    return Err(
                        meta.error("`deferred` takes no value: write `#[upcall(deferred)]`")
                    );
                }
                options.deferred = Some(
                    meta.path
                        .get_ident()
                        .map_or_else(proc_macro2::Span::call_site, syn::Ident::span),
                );
                return Ok(());
            }
            let path = &meta.path;
            let name = quote::quote!(#path).to_string().replace(' ', "");
            Err(meta.error(match side {
                Side::Upcall => format!(
                    "unknown #[upcall] argument `{name}`; the valid arguments are: `deferred` \
                     (write `#[upcall]` or `#[upcall(deferred)]`)"
                ),
                Side::Critical => format!(
                    "unknown #[critical] argument `{name}`; #[critical] takes no arguments \
                     (write `#[critical]`)"
                ),
            }))
        });
        if let Err(err) = syn::parse::Parser::parse2(parser, args) {
            errors.push(err);
        }
        options
    }
}
