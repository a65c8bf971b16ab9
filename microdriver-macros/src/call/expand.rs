//! Generates, for an annotated function `name`:
//! - the public stub `name` (the original signature, docs and attributes), which asks the
//!   runtime for the route and either calls the body directly or crosses the split;
//! - the body function `__microdriver_body_name` (the original body, `#[inline]` and the
//!   like);
//! - in an anonymous `const`, the handler that serves the call in the other half, and its
//!   registration in the entry table.
//!
//! Runtime items are named by absolute path. Whatever mentions an argument's type carries
//! that type's span, so a missing `Marshal` impl (or `From<CallError>` for the error
//! type) is reported at the type, not at the attribute.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, Ident, LitStr, Pat, Type};

use super::ast::{ArgKind, Call, Ret};
use super::Side;

fn private() -> TokenStream {
    quote!(::microdriver_rt::lrpc::__private)
}

/// `<ty as ::microdriver_rt::marshal::Marshal>`, spanned at `ty`.
fn marshal_of(ty: &impl ToTokens) -> TokenStream {
    let span = ty
        .to_token_stream()
        .into_iter()
        .next()
        .map_or_else(Span::call_site, |t| t.span());
    quote_spanned!(span=> <#ty as ::microdriver_rt::marshal::Marshal>)
}

fn span_of(ty: &Type) -> Span {
    ty.span()
}

/// Attributes that belong on the body function only.
fn body_only(attr: &Attribute) -> bool {
    [
        "inline",
        "cold",
        "track_caller",
        "optimize",
        "target_feature",
    ]
    .iter()
    .any(|name| attr.path().is_ident(name))
}

/// Attributes that belong on every generated item.
fn everywhere(attr: &Attribute) -> bool {
    ["cfg", "allow", "warn", "deny", "expect", "forbid"]
        .iter()
        .any(|name| attr.path().is_ident(name))
}

pub(crate) fn expand(call: &Call<'_>) -> TokenStream {
    let func = call.func;
    let p = private();
    let name = &func.sig.ident;
    let body_name = format_ident!("__microdriver_body_{}", name.unraw());
    let entry_name_lit = LitStr::new(&format!("::{}", name.unraw()), Span::call_site());
    let entry_name = quote!(::core::concat!(::core::module_path!(), #entry_name_lit));
    let signature = LitStr::new(&func.sig.to_token_stream().to_string(), Span::call_site());

    let stub_attrs: Vec<&Attribute> = func.attrs.iter().filter(|a| !body_only(a)).collect();
    let body_attrs: Vec<&Attribute> = func
        .attrs
        .iter()
        .filter(|a| body_only(a) || everywhere(a))
        .collect();
    let shared_attrs: Vec<&Attribute> = func.attrs.iter().filter(|a| everywhere(a)).collect();

    // The stub's signature: the original, with `mut` dropped from bindings (the stub only
    // passes its arguments on).
    let mut stub_sig = func.sig.clone();
    for input in &mut stub_sig.inputs {
        if let FnArg::Typed(typed) = input {
            if let Pat::Ident(p) = &mut *typed.pat {
                p.mutability = None;
            }
        }
    }
    let vis = &func.vis;
    let body_sig = {
        let mut sig = func.sig.clone();
        sig.ident = body_name.clone();
        sig
    };
    let block = &func.block;

    let idents: Vec<&Ident> = call.args.iter().filter_map(|a| a.ident).collect();
    let (route, cross_fn, served) = match call.side {
        Side::Upcall => (
            quote!(#p::upcall_route),
            quote!(#p::upcall),
            quote!(#p::Served::ByUser),
        ),
        Side::Critical => (
            quote!(#p::critical_route),
            quote!(#p::downcall),
            quote!(#p::Served::ByKernel),
        ),
    };

    let encode_args = encode_args(call);
    let decode_values = decode_values(call);
    let cross = if call.options.deferred.is_some() {
        quote! {
            ::microdriver_rt::lrpc::defer(move || {
                let mut __state = (#(#idents,)*);
                let _ = #p::upcall_or_log(#entry_name, &mut __state, #encode_args, #decode_values);
            })
        }
    } else {
        let crossing =
            |f: TokenStream| quote!(#f(#entry_name, &mut __state, #encode_args, #decode_values));
        let result = match (&call.ret, call.side) {
            (Ret::Result { err, .. }, _) => {
                let span = span_of(err);
                let from = quote_spanned!(span=>
                    <#err as __MicrodriverFromCallError>::__from_call_error);
                let crossing = crossing(cross_fn.clone());
                quote! {
                    /// `From<CallError>`, with a message that says why it is needed.
                    #[diagnostic::on_unimplemented(
                        message = "`{Self}` cannot report a failed call across the split: it does not implement `From<CallError>`",
                        label = "this error type needs `From<microdriver_rt::CallError>`",
                        note = "add `impl From<microdriver_rt::CallError> for {Self}` (e.g. a variant that carries the `CallError`), so a dead or unreachable other half can be reported"
                    )]
                    trait __MicrodriverFromCallError: ::core::marker::Sized {
                        fn __from_call_error(error: ::microdriver_rt::lrpc::CallError) -> Self;
                    }
                    impl<E: ::core::convert::From<::microdriver_rt::lrpc::CallError>> __MicrodriverFromCallError for E {
                        fn __from_call_error(error: ::microdriver_rt::lrpc::CallError) -> Self {
                            ::core::convert::From::from(error)
                        }
                    }
                    match #crossing {
                        ::core::result::Result::Ok(__ret) => __ret,
                        ::core::result::Result::Err(__e) => ::core::result::Result::Err(#from(__e)),
                    }
                }
            }
            (_, Side::Upcall) => {
                let crossing = crossing(quote!(#p::upcall_or_log));
                quote! { let _ = #crossing; }
            }
            (_, Side::Critical) => crossing(quote!(#p::downcall_or_exit)),
        };
        quote! {
            let mut __state = (#(#idents,)*);
            #result
        }
    };

    let handler = handler(call, &body_name);
    let assertions = assertions(call);

    quote! {
        #(#stub_attrs)*
        #vis #stub_sig {
            match #route() {
                #p::Route::Direct => #body_name(#(#idents),*),
                #p::Route::Cross => { #cross }
            }
        }

        #(#body_attrs)*
        #[doc(hidden)]
        #body_sig #block

        #(#shared_attrs)*
        const _: () = {
            #handler
            #assertions
            #p::inventory::submit! {
                #p::Entry {
                    name: #entry_name,
                    signature: #signature,
                    served: #served,
                    handler: __handler,
                }
            }
        };
    }
}

/// The stub's closure that encodes the arguments from the state tuple.
fn encode_args(call: &Call<'_>) -> TokenStream {
    if call.args.is_empty() {
        return quote!(|_, _| ::core::result::Result::Ok(()));
    }
    let encodes = call.args.iter().enumerate().map(|(i, arg)| {
        let index = syn::Index::from(i);
        let field = quote!(__s.#index);
        match arg.kind {
            ArgKind::Owned => {
                let m = marshal_of(arg.ty);
                quote!(#m::encode(&#field, __enc)?;)
            }
            ArgKind::Ref(ty) | ArgKind::RefMut(ty) => {
                let m = marshal_of(ty);
                quote!(#m::encode(&*#field, __enc)?;)
            }
            ArgKind::Slice(elem) | ArgKind::SliceMut(elem) => {
                let span = span_of(elem);
                let name = arg_name(arg.ident, i);
                quote_spanned! {span=>
                    ::microdriver_rt::marshal::__private::encode_prefix::<#elem>(
                        &*#field, #field.len(), "slice argument", #name, __enc)?;
                }
            }
            ArgKind::Str => quote! {
                __enc.put_len(#field.len());
                __enc.put_bytes(#field.as_bytes());
            },
            ArgKind::StrMut | ArgKind::RawPtr | ArgKind::ImplTrait => quote!(),
        }
    });
    quote! {
        |__s, __enc| {
            #(#encodes)*
            ::core::result::Result::Ok(())
        }
    }
}

fn arg_name(ident: Option<&Ident>, i: usize) -> LitStr {
    LitStr::new(
        &ident.map_or_else(|| format!("#{i}"), |id| id.unraw().to_string()),
        Span::call_site(),
    )
}

/// The stub's closure that decodes the reply: the return value, then every `&mut`
/// argument back into the caller's value.
fn decode_values(call: &Call<'_>) -> TokenStream {
    let ret = match &call.ret {
        Ret::Unit => quote!(()),
        Ret::Result { ok, err, .. } => {
            let ok_m = marshal_of(*ok);
            let err_m = marshal_of(*err);
            quote! {{
                let __offset = __dec.position();
                match __dec.take_u8()? {
                    0 => ::core::result::Result::Ok(#ok_m::decode(__dec)?),
                    1 => ::core::result::Result::Err(#err_m::decode(__dec)?),
                    __tag => return ::core::result::Result::Err(
                        ::microdriver_rt::marshal::MarshalError::BadTag {
                            what: "Result",
                            tag: ::core::primitive::u64::from(__tag),
                            offset: __offset,
                        }),
                }
            }}
        }
        Ret::Value(ty) | Ret::ImplTrait(ty) => {
            let m = marshal_of(*ty);
            quote!(#m::decode(__dec)?)
        }
    };
    // Slices are decoded and length-checked first and copied in only once the whole reply
    // has decoded, so a bad reply leaves them untouched. (`&mut T` arguments are decoded
    // in place with `decode_into`, which is all-or-nothing per value.)
    let mut back = Vec::new();
    let mut apply = Vec::new();
    for (i, arg) in call.args.iter().enumerate() {
        let index = syn::Index::from(i);
        let field = quote!(__s.#index);
        match arg.kind {
            ArgKind::RefMut(ty) => {
                let m = marshal_of(ty);
                back.push(quote!(#m::decode_into(&mut *#field, __dec)?;));
            }
            ArgKind::SliceMut(elem) => {
                let m = marshal_of(&quote_spanned!(span_of(elem)=> ::std::vec::Vec<#elem>));
                let name = arg_name(arg.ident, i);
                let staged = format_ident!("__back{}", i);
                back.push(quote! {
                    let #staged = #m::decode(__dec)?;
                    if #staged.len() != #field.len() {
                        return ::core::result::Result::Err(
                            ::microdriver_rt::marshal::MarshalError::LengthMismatch {
                                ty: "slice argument",
                                field: #name,
                                expected: #field.len(),
                                found: #staged.len(),
                            });
                    }
                });
                apply.push(quote! {
                    for (__slot, __value) in #field.iter_mut().zip(#staged) {
                        *__slot = __value;
                    }
                });
            }
            _ => {}
        }
    }
    let uses_state = !back.is_empty();
    let uses_dec = !matches!(call.ret, Ret::Unit) || !back.is_empty();
    let s = if uses_state { quote!(__s) } else { quote!(_) };
    let d = if uses_dec { quote!(__dec) } else { quote!(_) };
    quote! {
        |#s, #d| {
            let __ret = #ret;
            #(#back)*
            #(#apply)*
            ::core::result::Result::Ok(__ret)
        }
    }
}

/// The handler that serves the call on the other half.
fn handler(call: &Call<'_>, body_name: &Ident) -> TokenStream {
    let mut decodes = Vec::new();
    let mut passes = Vec::new();
    let mut backs = Vec::new();
    for (i, arg) in call.args.iter().enumerate() {
        let local = format_ident!("__a{}", i);
        match arg.kind {
            ArgKind::Owned => {
                let m = marshal_of(arg.ty);
                decodes.push(quote!(let #local = #m::decode(&mut __dec)?;));
                passes.push(quote!(#local));
            }
            ArgKind::Ref(ty) => {
                let m = marshal_of(ty);
                decodes.push(quote!(let #local = #m::decode(&mut __dec)?;));
                passes.push(quote!(&#local));
            }
            ArgKind::RefMut(ty) => {
                let m = marshal_of(ty);
                decodes.push(quote!(let mut #local = #m::decode(&mut __dec)?;));
                passes.push(quote!(&mut #local));
                backs.push(quote!(#m::encode(&#local, __enc)?;));
            }
            ArgKind::Slice(elem) => {
                let m = marshal_of(&quote_spanned!(span_of(elem)=> ::std::vec::Vec<#elem>));
                decodes.push(quote!(let #local = #m::decode(&mut __dec)?;));
                passes.push(quote!(&#local[..]));
            }
            ArgKind::SliceMut(elem) => {
                let m = marshal_of(&quote_spanned!(span_of(elem)=> ::std::vec::Vec<#elem>));
                decodes.push(quote!(let mut #local = #m::decode(&mut __dec)?;));
                passes.push(quote!(&mut #local[..]));
                backs.push(quote!(#m::encode(&#local, __enc)?;));
            }
            ArgKind::Str => {
                decodes.push(quote! {
                    let #local = <::std::string::String as ::microdriver_rt::marshal::Marshal>::decode(&mut __dec)?;
                });
                passes.push(quote!(&#local[..]));
            }
            ArgKind::StrMut | ArgKind::RawPtr | ArgKind::ImplTrait => {}
        }
    }
    let invoke = quote!(#body_name(#(#passes),*));
    let run = match &call.ret {
        Ret::Unit => quote!(#invoke;),
        Ret::Result { ok, err, .. } => {
            let ok_m = marshal_of(*ok);
            let err_m = marshal_of(*err);
            quote! {
                match &#invoke {
                    ::core::result::Result::Ok(__v) => {
                        __enc.put_u8(0);
                        #ok_m::encode(__v, __enc)?;
                    }
                    ::core::result::Result::Err(__e) => {
                        __enc.put_u8(1);
                        #err_m::encode(__e, __enc)?;
                    }
                }
            }
        }
        Ret::Value(ty) | Ret::ImplTrait(ty) => {
            let m = marshal_of(*ty);
            quote!(#m::encode(&#invoke, __enc)?;)
        }
    };
    let dec_binding = if call.args.is_empty() {
        quote!(__dec)
    } else {
        quote!(mut __dec)
    };
    quote! {
        fn __handler(
            #dec_binding: ::microdriver_rt::marshal::Decoder<'_>,
            __enc: &mut ::microdriver_rt::marshal::Encoder<'_>,
        ) -> ::core::result::Result<(), ::microdriver_rt::marshal::MarshalError> {
            #(#decodes)*
            __dec.finish()?;
            #run
            #(#backs)*
            ::core::result::Result::Ok(())
        }
    }
}

/// Spanned checks that produce errors at the argument's type rather than in the stub.
fn assertions(call: &Call<'_>) -> TokenStream {
    if call.options.deferred.is_none() {
        return quote!();
    }
    let checks = call.args.iter().map(|arg| {
        let ty = arg.ty;
        quote_spanned!(span_of(ty)=> __deferred_argument_is_send::<#ty>();)
    });
    quote! {
        #[allow(dead_code)]
        fn __deferred_arguments() {
            fn __deferred_argument_is_send<T: ::core::marker::Send + 'static>() {}
            #(#checks)*
        }
    }
}
