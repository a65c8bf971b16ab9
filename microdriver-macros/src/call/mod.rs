//! `#[upcall]` and `#[critical]`: stubs that route a call to the half that runs it.
//!
//! Layered like the derive: [`attr`] reads the attribute's arguments, [`ast`] parses the
//! function into a [`ast::Call`], [`valid`] checks it (spanned errors naming the argument
//! and the fix), [`expand`] generates the stub, the body function and the entry. On any
//! error the original function is emitted unchanged next to the errors, so the rest of the
//! crate still type-checks and the user sees only the real mistakes.

mod ast;
mod attr;
mod expand;
mod valid;

use proc_macro2::TokenStream;
use quote::quote;
use syn::ItemFn;

/// Which attribute is being expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `#[upcall]`: the body runs in the user half.
    Upcall,
    /// `#[critical]`: the body runs in the kernel half.
    Critical,
}

impl Side {
    /// The attribute's name, for messages.
    pub(crate) fn attr_name(self) -> &'static str {
        match self {
            Side::Upcall => "#[upcall]",
            Side::Critical => "#[critical]",
        }
    }
}

/// Expands `#[upcall(args)]` or `#[critical(args)]` on `item`.
pub(crate) fn expand(side: Side, args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new_spanned(
                &item,
                format!(
                    "{} applies to free functions (`fn name(arg: Type, ...) {{ ... }}`)",
                    side.attr_name()
                ),
            )
            .to_compile_error();
            return quote!(#item #err);
        }
    };
    let mut errors = valid::Errors::default();
    let options = attr::Options::parse(side, args, &mut errors);
    let call = ast::Call::from_syn(&func, side, options, &mut errors);
    call.validate(&mut errors);
    match errors.finish() {
        Ok(()) => expand::expand(&call),
        Err(err) => {
            let err = err.to_compile_error();
            quote!(#func #err)
        }
    }
}

#[cfg(test)]
mod tests;
