//! Generates the `Marshal` impl (and, for `len` fields, hidden inherent length methods).
//!
//! Conventions of the generated code:
//! - every runtime item is named by absolute path (`::microdriver_rt::marshal::...`);
//! - parameters and locals start with `__` (`__enc`, `__dec`, `__field0`, `__value`) so
//!   they never collide with field names;
//! - whatever mentions a field's type carries that type's span, so a missing `Marshal`,
//!   `Opaque` or `Default` impl is reported at the field, not at the derive.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{parse_quote_spanned, DeriveInput, Expr, Generics, Ident, Member, WhereClause};

use crate::ast::{self, Enum, Field, Input, Struct};
use crate::attr::Container;
use crate::valid::Errors;

/// The runtime's marshal module.
fn rt() -> TokenStream {
    quote!(::microdriver_rt::marshal)
}

/// The runtime's marshal module, spanned at `span`: a path whose tokens all carry the
/// field's span makes rustc report an unmet bound at the field, not at the derive.
fn rt_at(span: Span) -> TokenStream {
    quote_spanned!(span=> ::microdriver_rt::marshal)
}

/// Expands `#[derive(Marshal)]`. On any error: the errors, plus a stub impl so that the
/// rest of the crate still type-checks and the user sees only the real mistakes.
pub fn derive(input: &DeriveInput) -> TokenStream {
    let mut errors = Errors::default();
    let parsed = Input::from_syn(input, &mut errors);
    if let Some(parsed) = &parsed {
        parsed.validate(&mut errors);
    }
    match (errors.finish(), parsed) {
        (Ok(()), Some(Input::Struct(s))) => impl_struct(&s),
        (Ok(()), Some(Input::Enum(e))) => impl_enum(&e),
        (Err(err), _) => {
            let err = err.to_compile_error();
            let fallback = fallback(input);
            quote!(#err #fallback)
        }
        // `from_syn` refuses an item only after pushing an error.
        (Ok(()), None) => fallback(input),
    }
}

/// The stand-in impl emitted next to errors.
fn fallback(input: &DeriveInput) -> TokenStream {
    let rt = rt();
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    quote! {
        #[automatically_derived]
        #[allow(single_use_lifetimes)]
        impl #impl_generics #rt::Marshal for #ident #ty_generics #where_clause {
            const MIN_WIRE_SIZE: usize = 0;
            fn encode(
                &self,
                _: &mut #rt::Encoder<'_>,
            ) -> ::core::result::Result<(), #rt::MarshalError> {
                ::core::result::Result::Err(#rt::__private::derive_failed())
            }
            fn decode(
                _: &mut #rt::Decoder<'_>,
            ) -> ::core::result::Result<Self, #rt::MarshalError> {
                ::core::result::Result::Err(#rt::__private::derive_failed())
            }
        }
    }
}

/// The impl's where clause: the type's own, the `P: Marshal` bound for each type parameter
/// (or the container's `bound = "..."`), `T: Default` for skipped fields and `T: Opaque`
/// for opaque ones, each spanned at what it is about. A missing impl is then reported once,
/// at the predicate, and the bodies (which may assume it) add nothing.
fn where_clause<'a>(
    generics: &Generics,
    attrs: &Container,
    fields: impl Iterator<Item = &'a Field<'a>>,
) -> WhereClause {
    let mut clause = generics
        .where_clause
        .clone()
        .unwrap_or_else(|| WhereClause {
            where_token: Default::default(),
            predicates: Punctuated::new(),
        });
    match &attrs.bound {
        Some(bound) => clause.predicates.extend(bound.iter().cloned()),
        None => {
            for param in generics.type_params() {
                let ident = &param.ident;
                let rts = rt_at(ident.span());
                clause
                    .predicates
                    .push(parse_quote_spanned!(ident.span()=> #ident: #rts::Marshal));
            }
        }
    }
    for field in fields {
        let ty = field.ty;
        let rts = rt_at(field.ty_span());
        if field.attrs.skip.is_some() {
            clause
                .predicates
                .push(parse_quote_spanned!(field.ty_span()=> #ty: ::core::default::Default));
        } else if field.attrs.opaque.is_some() {
            clause
                .predicates
                .push(parse_quote_spanned!(field.ty_span()=> #ty: #rts::Opaque));
        }
    }
    clause
}

/// Rewrites a bare sibling field name in a `len` expression (`count`) to `self.count`.
struct SiblingFields<'a> {
    names: &'a [&'a Ident],
}

impl VisitMut for SiblingFields<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Path(path) = expr {
            if path.qself.is_none() && path.attrs.is_empty() {
                if let Some(ident) = path.path.get_ident() {
                    if self.names.contains(&ident) {
                        let ident = ident.clone();
                        *expr = parse_quote_spanned!(ident.span()=> self.#ident);
                        return;
                    }
                }
            }
        }
        visit_mut::visit_expr_mut(self, expr);
    }

    fn visit_expr_call_mut(&mut self, call: &mut syn::ExprCall) {
        // `count(x)` calls a function named `count`, not the field.
        if !matches!(*call.func, Expr::Path(_)) {
            self.visit_expr_mut(&mut call.func);
        }
        for arg in &mut call.args {
            self.visit_expr_mut(arg);
        }
    }
}

/// The span of the first `self` in a `len` expression. The hidden method's `self` parameter
/// takes it, so that an expression passed through a `macro_rules!` argument (whose `self`
/// has that macro's hygiene) still finds its receiver.
fn self_span(tokens: TokenStream) -> Option<Span> {
    tokens.into_iter().find_map(|tt| match tt {
        proc_macro2::TokenTree::Ident(ident) if ident == "self" => Some(ident.span()),
        proc_macro2::TokenTree::Group(group) => self_span(group.stream()),
        _ => None,
    })
}

/// The hidden method that evaluates a field's `len` expression.
fn len_method(field: &Field<'_>) -> Ident {
    format_ident!("__microdriver_len_{}", field.name)
}

/// What one struct field contributes to each part of the impl.
#[derive(Default)]
struct Parts {
    encode: Vec<TokenStream>,
    decode: Vec<TokenStream>,
    inits: Vec<TokenStream>,
    checks: Vec<TokenStream>,
    adopt: Vec<TokenStream>,
    min: Vec<TokenStream>,
    layout: Vec<TokenStream>,
    /// `check_update` steps (plain fields: recurse).
    check: Vec<TokenStream>,
    /// `keep_local` steps (skipped fields: take the old value; plain fields: recurse).
    keep: Vec<TokenStream>,
    len_methods: Vec<TokenStream>,
    all_plain: bool,
}

fn impl_struct(s: &Struct<'_>) -> TokenStream {
    let rt = rt();
    let ident = s.ident;
    let name = ast::unraw(ident);
    let (impl_generics, ty_generics, own_where) = s.generics.split_for_impl();
    let where_clause = where_clause(s.generics, &s.attrs, s.fields.iter());
    let sibling_names: Vec<&Ident> = s
        .fields
        .iter()
        .filter_map(|f| match &f.member {
            Member::Named(ident) => Some(ident),
            Member::Unnamed(_) => None,
        })
        .collect();

    let mut p = Parts {
        all_plain: true,
        ..Parts::default()
    };
    for (i, field) in s.fields.iter().enumerate() {
        let member = &field.member;
        let ty = field.ty;
        let span = field.ty_span();
        let rts = rt_at(span);
        let local = format_ident!("__field{}", i);
        let field_name = &field.name;
        // A packed struct's fields may be unaligned: copy them out instead of borrowing.
        let read = if s.packed {
            quote_spanned!(span=> &{ self.#member })
        } else {
            quote!(&self.#member)
        };

        if field.attrs.skip.is_some() {
            p.all_plain = false;
            let default = quote_spanned!(span=> <#ty as ::core::default::Default>::default);
            p.inits.push(quote!(#member: #default()));
            p.keep.push(if s.packed {
                quote_spanned!(span=> self.#member = __old.#member;)
            } else {
                let swap = quote_spanned!(span=> ::core::mem::swap::<#ty>);
                quote!(#swap(&mut self.#member, &mut __old.#member);)
            });
        } else if field.attrs.opaque.is_some() {
            p.all_plain = false;
            let encode = quote_spanned!(span=> #rts::__private::encode_opaque::<#ty>);
            let decode = quote_spanned!(span=> #rts::__private::decode_opaque::<#ty>);
            p.encode.push(quote!(#encode(#read, __enc)?;));
            p.decode.push(quote!(let #local = #decode(__dec)?;));
            p.inits.push(quote!(#member: #local));
            p.min.push(quote!(8usize));
        } else if let Some(len) = &field.attrs.len {
            p.all_plain = false;
            let method = len_method(field);
            let mut expr = len.expr.clone();
            SiblingFields {
                names: &sibling_names,
            }
            .visit_expr_mut(&mut expr);
            let receiver = syn::token::SelfValue {
                span: self_span(quote!(#expr)).unwrap_or_else(Span::call_site),
            };
            p.len_methods.push(quote! {
                #[doc(hidden)]
                #[inline]
                #[allow(
                    non_snake_case,
                    unused_parens,
                    clippy::unnecessary_cast,
                    clippy::cast_possible_truncation,
                    clippy::cast_possible_wrap,
                    clippy::cast_sign_loss,
                    clippy::cast_lossless,
                )]
                fn #method(&#receiver) -> usize {
                    (#expr) as usize
                }
            });
            if let Some(elem) = ast::raw_array_elem(ty) {
                let encode = quote_spanned!(span=> #rts::__private::encode_raw_array::<#elem, #ty>);
                let decode = quote_spanned!(span=> #rts::__private::decode_raw_array::<#elem>);
                p.encode.push(quote! {
                    // The `len` annotation is the author's promise that the pointer is null
                    // or points to that many initialised elements the struct owns.
                    #[allow(clippy::undocumented_unsafe_blocks)]
                    unsafe {
                        #encode(self.#member, self.#method(), #name, #field_name, __enc)
                    }?;
                });
                p.decode.push(quote!(let #local = #decode(__dec)?;));
                p.inits
                    .push(quote!(#member: <#ty as #rt::__private::RawArrayPtr<#elem>>::null()));
                p.checks.push(quote! {
                    #rt::__private::check_len(#local.len(), __value.#method(), #name, #field_name)?;
                });
                p.adopt
                    .push(quote!(__value.#member = #local.into_ptr::<#ty>();));
                p.min.push(quote!(1usize));
            } else {
                let encode = quote_spanned!(span=> #rts::__private::encode_prefix);
                let decode = quote_spanned!(span=> <#ty as #rts::Marshal>::decode);
                p.encode.push(quote! {
                    #encode(&self.#member[..], self.#method(), #name, #field_name, __enc)?;
                });
                p.decode.push(quote!(let #local = #decode(__dec)?;));
                p.inits.push(quote!(#member: #local));
                p.checks.push(quote! {
                    #rt::__private::check_len(
                        __value.#member.len(), __value.#method(), #name, #field_name,
                    )?;
                });
                p.min
                    .push(quote_spanned!(span=> <#ty as #rts::Marshal>::MIN_WIRE_SIZE));
            }
        } else {
            let encode = quote_spanned!(span=> <#ty as #rts::Marshal>::encode);
            let decode = quote_spanned!(span=> <#ty as #rts::Marshal>::decode);
            p.encode.push(quote!(#encode(#read, __enc)?;));
            p.decode.push(quote!(let #local = #decode(__dec)?;));
            p.inits.push(quote!(#member: #local));
            let check = quote_spanned!(span=> <#ty as #rts::Marshal>::check_update);
            if s.packed {
                // Unaligned fields are copied out (as `encode` does); nothing is kept
                // below them.
                p.check
                    .push(quote!(#check(&{ self.#member }, &{ __new.#member })?;));
            } else {
                let keep = quote_spanned!(span=> <#ty as #rts::Marshal>::keep_local);
                p.check
                    .push(quote!(#check(&self.#member, &__new.#member)?;));
                p.keep
                    .push(quote!(#keep(&mut self.#member, &mut __old.#member);));
            }
            p.min
                .push(quote_spanned!(span=> <#ty as #rts::Marshal>::MIN_WIRE_SIZE));
            p.layout.push(quote_spanned! {span=>
                (
                    <#ty as #rts::Marshal>::LAYOUT,
                    ::core::mem::size_of::<#ty>(),
                    ::core::mem::offset_of!(Self, #member),
                )
            });
        }
    }

    let Parts {
        encode,
        decode,
        inits,
        checks,
        adopt,
        min,
        layout,
        check,
        keep,
        len_methods,
        all_plain,
    } = p;

    let layout = all_plain.then(|| {
        quote! {
            const LAYOUT: #rt::WireLayout = if #rt::__private::struct_is_memcpy(
                &[#(#layout),*],
                ::core::mem::size_of::<Self>(),
            ) {
                // `struct_is_memcpy` checked that every field is memcpy-able and that they
                // tile the struct with no padding.
                #[allow(clippy::undocumented_unsafe_blocks)]
                unsafe {
                    #rt::WireLayout::memcpy()
                }
            } else {
                #rt::WireLayout::ENCODED
            };
        }
    });

    let value_mut = (!adopt.is_empty()).then(|| quote!(mut));
    let update = update_methods(&check, &keep);
    let len_impl = (!len_methods.is_empty()).then(|| {
        quote! {
            #[allow(single_use_lifetimes)]
            impl #impl_generics #ident #ty_generics #own_where {
                #(#len_methods)*
            }
        }
    });
    let unused_enc = encode.is_empty().then(|| quote!(let _ = __enc;));
    let unused_dec = decode.is_empty().then(|| quote!(let _ = __dec;));

    quote! {
        #len_impl

        #[automatically_derived]
        #[allow(single_use_lifetimes)]
        impl #impl_generics #rt::Marshal for #ident #ty_generics #where_clause {
            const MIN_WIRE_SIZE: usize = #rt::__private::sum_min(&[#(#min),*]);
            #layout

            fn encode(
                &self,
                __enc: &mut #rt::Encoder<'_>,
            ) -> ::core::result::Result<(), #rt::MarshalError> {
                #unused_enc
                #(#encode)*
                ::core::result::Result::Ok(())
            }

            fn decode(
                __dec: &mut #rt::Decoder<'_>,
            ) -> ::core::result::Result<Self, #rt::MarshalError> {
                #unused_dec
                #(#decode)*
                let #value_mut __value = Self { #(#inits),* };
                #(#checks)*
                #(#adopt)*
                ::core::result::Result::Ok(__value)
            }

            #update
        }
    }
}

/// `check_update` and `keep_local` (what `decode_into` uses to update a value in place),
/// each only when it has something to do: the trait's defaults accept everything and keep
/// nothing.
fn update_methods(check: &[TokenStream], keep: &[TokenStream]) -> TokenStream {
    let rt = rt();
    let check = (!check.is_empty()).then(|| {
        quote! {
            fn check_update(
                &self,
                __new: &Self,
            ) -> ::core::result::Result<(), #rt::MarshalError> {
                #(#check)*
                ::core::result::Result::Ok(())
            }
        }
    });
    let keep = (!keep.is_empty()).then(|| {
        quote! {
            fn keep_local(&mut self, __old: &mut Self) {
                #(#keep)*
            }
        }
    });
    quote!(#check #keep)
}

fn impl_enum(e: &Enum<'_>) -> TokenStream {
    let rt = rt();
    let ident = e.ident;
    let name = ast::unraw(ident);
    let (impl_generics, ty_generics, _) = e.generics.split_for_impl();
    let where_clause = where_clause(
        e.generics,
        &e.attrs,
        e.variants.iter().flat_map(|v| &v.fields),
    );

    let mut encode_arms = Vec::new();
    let mut decode_arms = Vec::new();
    let mut check_arms = Vec::new();
    let mut keep_arms = Vec::new();
    for (index, variant) in e.variants.iter().enumerate() {
        let vident = variant.ident;
        let tag = Literal::u64_suffixed(index as u64);
        let mut bind = Vec::new();
        let mut encode = Vec::new();
        let mut decode = Vec::new();
        let mut inits = Vec::new();
        let mut pair_self = Vec::new();
        let mut pair_other = Vec::new();
        let mut check = Vec::new();
        let mut keep = Vec::new();
        for (i, field) in variant.fields.iter().enumerate() {
            let member = &field.member;
            let ty = field.ty;
            let span = field.ty_span();
            let rts = rt_at(span);
            let local = format_ident!("__field{}", i);
            if field.attrs.skip.is_some() {
                let default = quote_spanned!(span=> <#ty as ::core::default::Default>::default);
                inits.push(quote!(#member: #default()));
                let (mine, other) = (format_ident!("__self{}", i), format_ident!("__other{}", i));
                pair_self.push(quote!(#member: #mine));
                pair_other.push(quote!(#member: #other));
                let swap = quote_spanned!(span=> ::core::mem::swap::<#ty>);
                keep.push(quote!(#swap(#mine, #other);));
                continue;
            }
            if field.attrs.opaque.is_none() {
                let (mine, other) = (format_ident!("__self{}", i), format_ident!("__other{}", i));
                pair_self.push(quote!(#member: #mine));
                pair_other.push(quote!(#member: #other));
                let check_fn = quote_spanned!(span=> <#ty as #rts::Marshal>::check_update);
                let keep_fn = quote_spanned!(span=> <#ty as #rts::Marshal>::keep_local);
                check.push(quote!(#check_fn(#mine, #other)?;));
                keep.push(quote!(#keep_fn(#mine, #other);));
            }
            let (encode_fn, decode_fn) = if field.attrs.opaque.is_some() {
                (
                    quote_spanned!(span=> #rts::__private::encode_opaque::<#ty>),
                    quote_spanned!(span=> #rts::__private::decode_opaque::<#ty>),
                )
            } else {
                (
                    quote_spanned!(span=> <#ty as #rts::Marshal>::encode),
                    quote_spanned!(span=> <#ty as #rts::Marshal>::decode),
                )
            };
            bind.push(quote!(#member: #local));
            encode.push(quote!(#encode_fn(#local, __enc)?;));
            decode.push(quote!(let #local = #decode_fn(__dec)?;));
            inits.push(quote!(#member: #local));
        }
        encode_arms.push(quote! {
            Self::#vident { #(#bind,)* .. } => {
                __enc.put_varint(#tag);
                #(#encode)*
            }
        });
        decode_arms.push(quote! {
            #tag => {
                #(#decode)*
                ::core::result::Result::Ok(Self::#vident { #(#inits),* })
            }
        });
        // Both methods compare two values of the same variant field by field (another
        // variant shares nothing with this one).
        let pair =
            quote!((Self::#vident { #(#pair_self,)* .. }, Self::#vident { #(#pair_other,)* .. }));
        if !check.is_empty() {
            check_arms.push(quote!(#pair => { #(#check)* }));
        }
        if !keep.is_empty() {
            keep_arms.push(quote!(#pair => { #(#keep)* }));
        }
    }

    let encode_body = if e.variants.is_empty() {
        quote! {
            let _ = __enc;
            match *self {}
        }
    } else {
        quote! {
            match self {
                #(#encode_arms)*
            }
            ::core::result::Result::Ok(())
        }
    };

    let other = (e.variants.len() > 1).then(|| quote!(_ => {}));
    let check_update = (!check_arms.is_empty()).then(|| {
        quote! {
            fn check_update(
                &self,
                __new: &Self,
            ) -> ::core::result::Result<(), #rt::MarshalError> {
                match (self, __new) {
                    #(#check_arms)*
                    #other
                }
                ::core::result::Result::Ok(())
            }
        }
    });
    let keep_local = (!keep_arms.is_empty()).then(|| {
        quote! {
            fn keep_local(&mut self, __old: &mut Self) {
                match (self, __old) {
                    #(#keep_arms)*
                    #other
                }
            }
        }
    });

    quote! {
        #[automatically_derived]
        #[allow(single_use_lifetimes)]
        impl #impl_generics #rt::Marshal for #ident #ty_generics #where_clause {
            // The tag alone; summing the variants' fields would make recursive enums
            // (`Cons(u32, Box<List>)`) a const cycle.
            const MIN_WIRE_SIZE: usize = 1;

            fn encode(
                &self,
                __enc: &mut #rt::Encoder<'_>,
            ) -> ::core::result::Result<(), #rt::MarshalError> {
                #encode_body
            }

            fn decode(
                __dec: &mut #rt::Decoder<'_>,
            ) -> ::core::result::Result<Self, #rt::MarshalError> {
                let __offset = __dec.position();
                let __tag = __dec.take_varint()?;
                match __tag {
                    #(#decode_arms)*
                    _ => ::core::result::Result::Err(#rt::MarshalError::BadTag {
                        what: #name,
                        tag: __tag,
                        offset: __offset,
                    }),
                }
            }

            #check_update
            #keep_local
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(expr: &str, fields: &[&str]) -> String {
        let idents: Vec<Ident> = fields.iter().map(|f| format_ident!("{}", f)).collect();
        let names: Vec<&Ident> = idents.iter().collect();
        let mut expr: Expr = syn::parse_str(expr).unwrap();
        SiblingFields { names: &names }.visit_expr_mut(&mut expr);
        quote!(#expr).to_string()
    }

    #[test]
    fn bare_sibling_names_become_self_fields() {
        assert_eq!(rewrite("count", &["count"]), "self . count");
        assert_eq!(rewrite("count * 2 + 1", &["count"]), "self . count * 2 + 1");
        assert_eq!(rewrite("self.count", &["count"]), "self . count");
        assert_eq!(
            rewrite("self.ring_len()", &["ring_len"]),
            "self . ring_len ()"
        );
        // A function call, a path and an unknown name are left alone.
        assert_eq!(rewrite("count(n)", &["count", "n"]), "count (self . n)");
        assert_eq!(rewrite("Self::N", &["N"]), "Self :: N");
        assert_eq!(rewrite("other", &["count"]), "other");
    }

    fn expand(src: &str) -> String {
        derive(&syn::parse_str(src).unwrap()).to_string()
    }

    #[test]
    fn errors_come_with_a_stub_impl() {
        let out = expand("struct S { p: *mut u8 }");
        assert!(out.contains("compile_error"), "{out}");
        assert!(out.contains("derive_failed"), "{out}");
        assert!(
            out.contains("impl :: microdriver_rt :: marshal :: Marshal for S"),
            "{out}"
        );
        // All mistakes are reported together.
        let out =
            expand("struct S { p: *mut u8, #[marshal(lenght = 1)] v: Vec<u8>, r: &'static u8 }");
        assert_eq!(out.matches("compile_error").count(), 3, "{out}");
        let out = expand("union U { a: u32 }");
        assert!(
            out.contains("compile_error") && out.contains("derive_failed"),
            "{out}"
        );
    }

    #[test]
    fn layout_only_for_all_plain_structs() {
        assert!(expand("struct S { a: u32, b: u32 }").contains("const LAYOUT"));
        assert!(!expand("struct S { a: u32, #[marshal(skip)] b: u32 }").contains("const LAYOUT"));
        assert!(!expand("struct S { #[marshal(opaque)] a: u64 }").contains("const LAYOUT"));
        assert!(!expand("enum E { A(u32) }").contains("const LAYOUT"));
    }

    #[test]
    fn in_place_updates_recurse_and_keep_skipped_fields() {
        let plain = expand("struct S { a: u32 }");
        assert!(plain.contains("check_update") && plain.contains("keep_local"));
        let skipped = expand("struct S { #[marshal(skip)] a: u32 }");
        assert!(!skipped.contains("check_update") && skipped.contains("swap"));
        assert!(!expand("struct S { #[marshal(opaque)] a: u64 }").contains("keep_local"));
        let e = expand("enum E { A { #[marshal(skip)] a: u32, b: u8 }, B }");
        assert!(e.contains("check_update") && e.contains("keep_local") && e.contains("swap"));
        assert!(!expand("struct S { a: u32 }").contains("decode_into"));
    }
}
