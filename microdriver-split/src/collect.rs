//! Fills the item tables from the loaded modules: functions, methods, traits, types,
//! imports, and the bodies to walk.

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Attribute, FnArg, ImplItem, Item, ReturnType, Signature, TraitItem, UseTree};

use crate::cfg::CfgSet;
use crate::model::{CfgNote, FnId, FnInfo, FnKind, Mark};
use crate::parse::Source;
use crate::resolve::Ty;
use crate::tables::{Body, Ctx, RetTy, Scope, ScopeId, StructInfo, Tables, TraitInfo};

/// Builds the tables for a loaded crate. Returns them and the cfg notes for impl and trait
/// members.
pub fn collect(src: &Source, cfg: &CfgSet) -> (Tables, Vec<CfgNote>) {
    let mut c = Collector {
        t: Tables::default(),
        cfg,
        notes: Vec::new(),
        pending_scopes: Vec::new(),
        pending_impls: Vec::new(),
        generics: Vec::new(),
        decl_scope: Vec::new(),
    };
    for (i, m) in src.modules.iter().enumerate() {
        c.t.scopes.push(Scope {
            path: m.path.clone(),
            parent: m.parent,
            file: m.file.display().to_string(),
            ..Scope::default()
        });
        if let (Some(p), Some(name)) = (m.parent, m.path.last()) {
            c.t.scopes[p].modules.insert(name.clone(), i);
        }
        c.pending_scopes.push((i, m.items.clone()));
    }
    loop {
        if let Some((scope, items)) = c.pending_scopes.pop() {
            for item in items {
                c.declare(scope, item);
            }
            continue;
        }
        if c.pending_impls.is_empty() {
            break;
        }
        let impls = std::mem::take(&mut c.pending_impls);
        for (scope, imp) in impls {
            c.implement(scope, imp);
        }
    }
    c.finish();
    // A function nested in another's body: its lines are its own, not the outer one's.
    let spans: Vec<usize> = c.t.fns.iter().map(|f| f.lines).collect();
    for (f, &d) in c.decl_scope.iter().enumerate() {
        if let Some(owner) = c.t.scopes[d].owner {
            c.t.fns[owner].lines = c.t.fns[owner].lines.saturating_sub(spans[f]).max(1);
        }
    }
    c.t.memo.borrow_mut().clear();
    c.t.frozen.set(true);
    (c.t, c.notes)
}

struct Collector<'a> {
    t: Tables,
    cfg: &'a CfgSet,
    notes: Vec<CfgNote>,
    pending_scopes: Vec<(ScopeId, Vec<Item>)>,
    pending_impls: Vec<(ScopeId, syn::ItemImpl)>,
    generics: Vec<Vec<syn::Generics>>,
    decl_scope: Vec<ScopeId>,
}

/// Reads `#[critical]`, `#[critical(root)]`, `#[upcall]`, `#[upcall(deferred)]` (any path
/// ending in those names).
pub fn mark_of(attrs: &[Attribute]) -> Mark {
    for a in attrs {
        let Some(last) = a.path().segments.last() else {
            continue;
        };
        let name = last.ident.to_string();
        let args = match &a.meta {
            syn::Meta::List(l) => l.tokens.to_string(),
            _ => String::new(),
        };
        let has = |w: &str| {
            args.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|t| t == w)
        };
        match name.as_str() {
            "critical" if has("root") => return Mark::CriticalRoot,
            "critical" => return Mark::Critical,
            "upcall" if has("deferred") => return Mark::UpcallDeferred,
            "upcall" => return Mark::Upcall,
            _ => {}
        }
    }
    Mark::None
}

/// Collects every item nested anywhere in a function body (not inside nested items).
#[derive(Default)]
struct NestedItems(Vec<Item>);

impl<'ast> Visit<'ast> for NestedItems {
    fn visit_item(&mut self, i: &'ast Item) {
        self.0.push(i.clone());
    }
}

fn join(path: &[String], last: &str) -> String {
    if path.is_empty() {
        last.to_string()
    } else {
        format!("{}::{}", path.join("::"), last)
    }
}

fn flatten_use(tree: &UseTree, prefix: &mut Vec<String>, scope: &mut Scope) {
    match tree {
        UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            flatten_use(&p.tree, prefix, scope);
            prefix.pop();
        }
        UseTree::Name(n) => {
            let name = n.ident.to_string();
            let mut full = prefix.clone();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    scope.uses.insert(last.clone(), full);
                }
            } else {
                full.push(name.clone());
                scope.uses.insert(name, full);
            }
        }
        UseTree::Rename(r) => {
            let alias = r.rename.to_string();
            if alias == "_" {
                return;
            }
            let mut full = prefix.clone();
            if r.ident != "self" {
                full.push(r.ident.to_string());
            }
            scope.uses.insert(alias, full);
        }
        UseTree::Glob(_) => scope.globs.push(prefix.clone()),
        UseTree::Group(g) => {
            for t in &g.items {
                flatten_use(t, prefix, scope);
            }
        }
    }
}

impl Collector<'_> {
    fn keep(
        &mut self,
        attrs: &[Attribute],
        span: proc_macro2::Span,
        what: String,
        scope: ScopeId,
    ) -> bool {
        let (preds, keep) = self.cfg.eval_attrs(attrs);
        if !preds.is_empty() {
            self.notes.push(CfgNote {
                file: self.t.scopes[scope].file.clone(),
                line: span.start().line,
                item: what,
                predicate: preds.join(" && "),
                included: keep,
            });
        }
        keep
    }

    fn declare(&mut self, scope: ScopeId, item: Item) {
        let path = self.t.scopes[scope].path.clone();
        match item {
            Item::Fn(f) => {
                let name = f.sig.ident.to_string();
                let id = self.add_fn(
                    scope,
                    join(&path, &name),
                    FnKind::Free,
                    &f.sig,
                    &f.attrs,
                    (None, None),
                    f.block.brace_token.span.close().end().line,
                );
                self.t.fns[id].public = matches!(f.vis, syn::Visibility::Public(_));
                self.t.scopes[scope].fns.insert(name.clone(), id);
                self.t
                    .free_by_name
                    .entry(name.clone())
                    .or_default()
                    .push(id);
                let body_scope = self.nested_scope(scope, &path, &name, &f.block);
                let generics = vec![f.sig.generics.clone()];
                self.push_body(id, body_scope, Ctx::default(), generics, &f.sig, *f.block);
            }
            Item::Struct(s) => {
                let name = s.ident.to_string();
                let key = join(&path, &name);
                let mut fields = std::collections::HashMap::new();
                for (i, field) in s.fields.iter().enumerate() {
                    let fname = field
                        .ident
                        .as_ref()
                        .map_or_else(|| i.to_string(), ToString::to_string);
                    fields.insert(fname, field.ty.clone());
                }
                self.t
                    .structs
                    .insert(key.clone(), StructInfo { scope, fields });
                self.t.scopes[scope].types.insert(name, key);
            }
            Item::Enum(e) => {
                let name = e.ident.to_string();
                let key = join(&path, &name);
                let variants = e.variants.iter().map(|v| v.ident.to_string()).collect();
                self.t.enums.insert(key.clone(), variants);
                for v in &e.variants {
                    let fields = v
                        .fields
                        .iter()
                        .enumerate()
                        .map(|(i, f)| {
                            let n = f
                                .ident
                                .as_ref()
                                .map_or_else(|| i.to_string(), ToString::to_string);
                            (n, f.ty.clone())
                        })
                        .collect();
                    self.t.variant_fields.insert(
                        (key.clone(), v.ident.to_string()),
                        StructInfo { scope, fields },
                    );
                }
                self.t.scopes[scope].types.insert(name, key);
            }
            Item::Union(u) => {
                let name = u.ident.to_string();
                let key = join(&path, &name);
                self.t.structs.insert(
                    key.clone(),
                    StructInfo {
                        scope,
                        fields: Default::default(),
                    },
                );
                self.t.scopes[scope].types.insert(name, key);
            }
            Item::Type(a) => {
                let name = a.ident.to_string();
                let key = join(&path, &name);
                let params = a
                    .generics
                    .type_params()
                    .map(|p| p.ident.to_string())
                    .collect();
                self.t.aliases.insert(key.clone(), (*a.ty, scope, params));
                self.t.scopes[scope].types.insert(name, key);
            }
            Item::Trait(tr) => {
                let name = tr.ident.to_string();
                let key = join(&path, &name);
                self.t.scopes[scope]
                    .traits
                    .insert(name.clone(), key.clone());
                let mut info = TraitInfo::default();
                let base = Ctx {
                    self_trait: Some(key.clone()),
                    ..Ctx::default()
                };
                for ti in tr.items {
                    let m = match ti {
                        TraitItem::Fn(m) => m,
                        TraitItem::Const(c) => {
                            if let Some((_, e)) = c.default {
                                self.t.inits.push((scope, format!("{key}::{}", c.ident), e));
                            }
                            continue;
                        }
                        _ => continue,
                    };
                    let mname = m.sig.ident.to_string();
                    if !self.keep(
                        &m.attrs,
                        m.sig.ident.span(),
                        format!("fn {key}::{mname}"),
                        scope,
                    ) {
                        continue;
                    }
                    let mark = mark_of(&m.attrs);
                    if mark != Mark::None {
                        info.marks.insert(mname.clone(), mark);
                    }
                    let Some(block) = m.default else { continue };
                    let id = self.add_fn(
                        scope,
                        format!("{key}::{mname}"),
                        FnKind::TraitDefault,
                        &m.sig,
                        &m.attrs,
                        (None, Some(name.clone())),
                        block.brace_token.span.close().end().line,
                    );
                    self.t.fns[id].public = matches!(tr.vis, syn::Visibility::Public(_));
                    info.defaults.insert(mname.clone(), id);
                    if self.t.fns[id].has_self {
                        self.t
                            .methods_by_name
                            .entry(mname.clone())
                            .or_default()
                            .push(id);
                    }
                    let body_scope =
                        self.nested_scope(scope, &path, &format!("{name}::{mname}"), &block);
                    let generics = vec![tr.generics.clone(), m.sig.generics.clone()];
                    self.push_body(id, body_scope, base.clone(), generics, &m.sig, block);
                }
                self.t.traits.insert(key, info);
            }
            Item::Use(u) => {
                let sc = &mut self.t.scopes[scope];
                flatten_use(&u.tree, &mut Vec::new(), sc);
            }
            Item::Const(c) => {
                self.t.scopes[scope].values.insert(c.ident.to_string());
                self.t
                    .value_types
                    .insert((scope, c.ident.to_string()), (*c.ty).clone());
                self.t
                    .inits
                    .push((scope, join(&path, &c.ident.to_string()), *c.expr));
            }
            Item::Static(s) => {
                self.t.scopes[scope].values.insert(s.ident.to_string());
                self.t
                    .value_types
                    .insert((scope, s.ident.to_string()), (*s.ty).clone());
                self.t
                    .inits
                    .push((scope, join(&path, &s.ident.to_string()), *s.expr));
            }
            Item::ExternCrate(e) => {
                if let Some((_, alias)) = e.rename {
                    self.t.scopes[scope]
                        .uses
                        .insert(alias.to_string(), vec![e.ident.to_string()]);
                }
            }
            Item::ForeignMod(fm) => {
                for fi in fm.items {
                    if let syn::ForeignItem::Fn(f) = fi {
                        self.t.scopes[scope].foreign.insert(f.sig.ident.to_string());
                    }
                }
            }
            Item::Impl(i) => self.pending_impls.push((scope, i)),
            _ => {}
        }
    }

    /// Gives a function body with nested items its own scope.
    fn nested_scope(
        &mut self,
        scope: ScopeId,
        path: &[String],
        name: &str,
        block: &syn::Block,
    ) -> ScopeId {
        let mut nested = NestedItems::default();
        for stmt in &block.stmts {
            nested.visit_stmt(stmt);
        }
        if nested.0.is_empty() {
            return scope;
        }
        let id = self.t.scopes.len();
        let mut p = path.to_vec();
        p.extend(name.split("::").map(str::to_string));
        let file = self.t.scopes[scope].file.clone();
        self.t.scopes.push(Scope {
            path: p,
            parent: Some(scope),
            is_fn: true,
            owner: self.t.fns.len().checked_sub(1),
            file,
            ..Scope::default()
        });
        let kept: Vec<Item> = nested
            .0
            .into_iter()
            .filter(|i| {
                let attrs = crate::parse::item_attrs(i).cloned().unwrap_or_default();
                self.keep(&attrs, i.span(), format!("item in fn {name}"), scope)
            })
            .collect();
        self.pending_scopes.push((id, kept));
        id
    }

    fn implement(&mut self, scope: ScopeId, imp: syn::ItemImpl) {
        let mut ctx = Ctx::default();
        self.t.add_generics(&imp.generics, scope, &mut ctx);
        let self_ty = self.t.type_of(&imp.self_ty, scope, &ctx);
        let (self_key, blanket) = match &self_ty {
            Ty::Named(k) => (k.clone(), false),
            Ty::Generic(_) => (
                pretty_type(&imp.self_ty.to_token_stream().to_string()),
                true,
            ),
            _ => (
                pretty_type(&imp.self_ty.to_token_stream().to_string()),
                false,
            ),
        };
        let self_name = self_key
            .rsplit("::")
            .next()
            .unwrap_or(&self_key)
            .to_string();
        ctx.self_key = Some(self_key.clone());
        if matches!(self_ty, Ty::Dyn(_)) {
            ctx.self_deref = Some(self_ty.clone());
        }
        let trait_key = imp
            .trait_
            .as_ref()
            .map(|(_, p, _)| self.t.trait_key(p, scope, &ctx));
        let path = self.t.scopes[scope].path.clone();
        if let Some(tk) = &trait_key {
            self.t
                .type_traits
                .entry(self_key.clone())
                .or_default()
                .push(tk.clone());
        }
        for item in imp.items {
            let m = match item {
                ImplItem::Fn(m) => m,
                ImplItem::Const(c) => {
                    let name = join(&path, &format!("{self_name}::{}", c.ident));
                    self.t.inits.push((scope, name, c.expr));
                    continue;
                }
                _ => continue,
            };
            let mname = m.sig.ident.to_string();
            if !self.keep(
                &m.attrs,
                m.sig.ident.span(),
                format!("fn {self_name}::{mname}"),
                scope,
            ) {
                continue;
            }
            let (display, kind, trait_name) = match &trait_key {
                Some(tk) => {
                    let tname = tk.rsplit("::").next().unwrap_or(tk).to_string();
                    (
                        format!("<{self_name} as {tname}>"),
                        FnKind::TraitImpl,
                        Some(tname),
                    )
                }
                None => (self_name.clone(), FnKind::Inherent, None),
            };
            let id = self.add_fn(
                scope,
                join(&path, &format!("{display}::{mname}")),
                kind,
                &m.sig,
                &m.attrs,
                (Some(self_name.clone()), trait_name),
                m.block.brace_token.span.close().end().line,
            );
            // Trait impl methods are as visible as the trait; take them as public.
            self.t.fns[id].public =
                trait_key.is_some() || matches!(m.vis, syn::Visibility::Public(_));
            if self.t.fns[id].mark == Mark::None {
                // Inherit `#[critical]`/`#[upcall]` from the impl block, then from the
                // trait's declaration of the method.
                let inherited = match mark_of(&imp.attrs) {
                    Mark::None => trait_key
                        .as_ref()
                        .and_then(|tk| self.t.traits.get(tk))
                        .and_then(|ti| ti.marks.get(&mname).copied())
                        .unwrap_or(Mark::None),
                    m => m,
                };
                self.t.fns[id].mark = inherited;
            }
            if blanket {
                self.t.blanket.push(id);
            } else {
                self.t
                    .type_methods
                    .entry(self_key.clone())
                    .or_default()
                    .push(id);
            }
            if let Some(tk) = &trait_key {
                self.t
                    .trait_impls
                    .entry((tk.clone(), mname.clone()))
                    .or_default()
                    .push(id);
            }
            if self.t.fns[id].has_self {
                self.t
                    .methods_by_name
                    .entry(mname.clone())
                    .or_default()
                    .push(id);
            }
            let body_scope =
                self.nested_scope(scope, &path, &format!("{self_name}::{mname}"), &m.block);
            let generics = vec![m.sig.generics.clone()];
            self.push_body(id, body_scope, ctx.clone(), generics, &m.sig, m.block);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn add_fn(
        &mut self,
        scope: ScopeId,
        path: String,
        kind: FnKind,
        sig: &Signature,
        attrs: &[Attribute],
        (self_ty, trait_name): (Option<String>, Option<String>),
        end_line: usize,
    ) -> FnId {
        let id = self.t.fns.len();
        self.decl_scope.push(scope);
        let line = sig.fn_token.span.start().line;
        let has_self = matches!(sig.inputs.first(), Some(FnArg::Receiver(_)));
        let params = sig
            .inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => Some(t.ty.to_token_stream().to_string()),
                FnArg::Receiver(_) => None,
            })
            .collect();
        let ret = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, t) => Some(t.to_token_stream().to_string()),
        };
        self.t.fns.push(FnInfo {
            id,
            path,
            name: sig.ident.to_string(),
            kind,
            self_ty,
            trait_name,
            file: self.t.scopes[scope].file.clone(),
            line,
            end_line,
            lines: end_line.saturating_sub(line) + 1,
            arity: sig.inputs.len(),
            has_self,
            params,
            generics: sig
                .generics
                .type_params()
                .map(|p| p.ident.to_string())
                .collect(),
            ret,
            mark: mark_of(attrs),
            public: false,
            address_taken: false,
            parent: None,
        });
        id
    }

    /// Queues a body; generic bounds are resolved once every name is declared.
    fn push_body(
        &mut self,
        fn_id: FnId,
        scope: ScopeId,
        ctx: Ctx,
        generics: Vec<syn::Generics>,
        sig: &Signature,
        block: syn::Block,
    ) {
        if let ReturnType::Type(_, t) = &sig.output {
            self.t.ret_types.insert(
                fn_id,
                RetTy {
                    ty: (**t).clone(),
                    scope,
                    ctx: ctx.clone(),
                },
            );
        }
        self.generics.push(generics);
        self.t.bodies.push(Body {
            fn_id,
            scope,
            ctx,
            inputs: sig.inputs.iter().cloned().collect(),
            block,
        });
    }

    /// Resolves the generic bounds of every queued body.
    fn finish(&mut self) {
        for (i, generics) in self.generics.iter().enumerate() {
            let scope = self.t.bodies[i].scope;
            let mut ctx = self.t.bodies[i].ctx.clone();
            for g in generics {
                self.t.add_generics(g, scope, &mut ctx);
            }
            let fn_id = self.t.bodies[i].fn_id;
            if let Some(r) = self.t.ret_types.get_mut(&fn_id) {
                r.ctx = ctx.clone();
            }
            self.t.bodies[i].ctx = ctx;
        }
    }
}

/// A type's token text without the spaces the tokenizer puts around punctuation:
/// `Box < dyn Port >` becomes `Box<dyn Port>`.
fn pretty_type(text: &str) -> String {
    let mut out = text.to_string();
    for (from, to) in [
        (" < ", "<"),
        ("< ", "<"),
        (" <", "<"),
        (" >", ">"),
        (" :: ", "::"),
        (" ,", ","),
        ("& ", "&"),
        ("[ ", "["),
        (" ]", "]"),
        (" ;", ";"),
    ] {
        out = out.replace(from, to);
    }
    out
}
