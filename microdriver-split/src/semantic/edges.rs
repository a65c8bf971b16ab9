//! Walking the crate's bodies with rust-analyzer's semantics: the call edges. Calls by name, method
//! and generic trait dispatch are here; dynamic dispatch in `dispatch`, compiler-inserted
//! calls and calls back from the standard library in `inserted`.

use std::collections::{HashMap, HashSet};

use ra_ap_hir::{
    AsAssocItem, AssocItemContainer, Callable, CallableKind, Crate, Function, HasSource, Impl,
    ModuleDef, PathResolution, Semantics, Trait, Type,
};
use ra_ap_ide_db::famous_defs::FamousDefs;
use ra_ap_ide_db::RootDatabase;
use ra_ap_syntax::{ast, AstNode, SyntaxNode};
use ra_ap_vfs::Vfs;

mod dispatch;
mod inserted;

use dispatch::{DynSite, FnValue, PtrSite, Signature};

use super::ids::Ids;
use crate::model::{CallEdge, EdgeKind, FnId, Mark, Unresolved};

/// How deep macro expansions nest, and how deep `Drop` is looked for in field types.
const MAX_DEPTH: usize = 32;
const MAX_DROP_DEPTH: usize = 4;

/// The walk's state.
pub(super) struct Walk<'a, 'db> {
    sema: &'a Semantics<'db, RootDatabase>,
    vfs: &'a Vfs,
    /// The function identities.
    pub ids: &'a mut Ids,
    /// Edges found.
    pub edges: Vec<CallEdge>,
    /// Functions and closures whose bodies the model analysed.
    pub walked: HashSet<FnId>,
    /// What the model could not resolve.
    pub unresolved: Vec<Unresolved>,
    /// Types coerced to a `dyn Trait` somewhere in the crate.
    coerced: Vec<(Trait, Type<'db>)>,
    dyn_sites: Vec<DynSite>,
    /// Functions of the crate used as values (their address taken), anywhere in it.
    taken: Vec<Function>,
    ptr_sites: Vec<PtrSite<'db>>,
    /// Calls through a `dyn Fn*` (a boxed callback in a field, say).
    dyn_fn_sites: Vec<PtrSite<'db>>,
    /// Closures and functions coerced to a `dyn Fn*`, with their signatures.
    fn_values: Vec<(Signature<'db>, FnValue)>,
    /// The closures the walk met, by where their expressions are.
    closure_at: HashMap<(ra_ap_vfs::FileId, ra_ap_syntax::TextRange), FnId>,
    /// Calls through a function pointer the model resolved (caller, file, line): the
    /// syntax pass's arity-matched edges for them are replaced.
    pub resolved_indirect: HashSet<(FnId, String, usize)>,
    krate: Option<Crate>,
    /// The crate's impls of each trait met in a generic call.
    impls: HashMap<Trait, Vec<Impl>>,
    deref: Option<Trait>,
    deref_mut: Option<Trait>,
    drop: Option<Trait>,
    iterator: Option<Trait>,
    into_iterator: Option<Trait>,
    depth: usize,
}

impl<'a, 'db> Walk<'a, 'db> {
    pub fn new(sema: &'a Semantics<'db, RootDatabase>, vfs: &'a Vfs, ids: &'a mut Ids) -> Self {
        Walk {
            sema,
            vfs,
            ids,
            edges: Vec::new(),
            walked: HashSet::new(),
            unresolved: Vec::new(),
            coerced: Vec::new(),
            dyn_sites: Vec::new(),
            taken: Vec::new(),
            ptr_sites: Vec::new(),
            dyn_fn_sites: Vec::new(),
            fn_values: Vec::new(),
            closure_at: HashMap::new(),
            resolved_indirect: HashSet::new(),
            krate: None,
            impls: HashMap::new(),
            deref: None,
            deref_mut: None,
            drop: None,
            iterator: None,
            into_iterator: None,
            depth: 0,
        }
    }

    /// Whether the standard library's traits resolved (else `Deref`, `Drop`, `Index` and
    /// operators cannot be seen).
    pub fn has_std(&self) -> bool {
        self.drop.is_some() && self.deref.is_some()
    }

    /// Walks one source file of the crate.
    pub fn file(&mut self, root: &SyntaxNode) {
        self.walk(root, None);
    }

    fn walk(&mut self, node: &SyntaxNode, owner: Option<FnId>) {
        for child in node.children() {
            let mut here = owner;
            if let Some(f) = ast::Fn::cast(child.clone()) {
                here = self.enter_fn(&f);
            } else if ast::ClosureExpr::can_cast(child.kind())
                && !self.sema.hir_file_for(&child).is_macro()
            {
                if let Some(id) = self
                    .ids
                    .location(self.sema, self.vfs, &child, None)
                    .and_then(|at| self.ids.closure(at))
                {
                    self.walked.insert(id);
                    let range = self.sema.original_range(&child);
                    self.closure_at
                        .insert((range.file_id.file_id(self.sema.db), range.range), id);
                    here = Some(id);
                }
            } else if let Some(mc) = ast::MacroCall::cast(child.clone()) {
                if self.depth < MAX_DEPTH {
                    if let Some(expansion) = self.sema.expand_macro_call(&mc) {
                        self.depth += 1;
                        self.walk(&expansion.value, owner);
                        self.depth -= 1;
                    }
                }
                continue;
            }
            self.address_taken(&child);
            if let Some(from) = here {
                self.visit(&child, from);
            }
            self.walk(&child, here);
        }
    }

    fn enter_fn(&mut self, f: &ast::Fn) -> Option<FnId> {
        let def = self.sema.to_def(f)?;
        if self.krate.is_none() {
            let krate = def.module(self.sema.db).krate(self.sema.db);
            let famous = FamousDefs(self.sema, krate);
            self.deref = famous.core_ops_Deref();
            self.deref_mut = famous.core_ops_DerefMut();
            self.drop = famous.core_ops_Drop();
            self.iterator = famous.core_iter_Iterator();
            self.into_iterator = famous.core_iter_IntoIterator();
            self.krate = Some(krate);
        }
        let id = self.ids.function(self.sema, self.vfs, def)?;
        self.walked.insert(id);
        Some(id)
    }

    /// The edges of one node of a body.
    fn visit(&mut self, node: &SyntaxNode, from: FnId) {
        let sema = self.sema;
        if let Some(call) = ast::CallExpr::cast(node.clone()) {
            let callee = call.expr().and_then(|e| sema.resolve_expr_as_callable(&e));
            match callee.as_ref().map(Callable::kind) {
                Some(CallableKind::Function(f)) => match self.trait_of(f) {
                    Some(tr) => match self.impl_called_by_path(&call) {
                        Some(g) => self.call(from, g, node, EdgeKind::Direct),
                        None => self.dispatch_generic(from, tr, f, node),
                    },
                    None => self.call(from, f, node, EdgeKind::Direct),
                },
                Some(CallableKind::FnPtr) => {
                    if let Some(c) = callee {
                        let site = self.ptr_site(from, &c, node);
                        self.ptr_sites.push(site);
                    }
                }
                Some(CallableKind::FnImpl(_)) => {
                    let through_dyn =
                        call.expr()
                            .and_then(|e| sema.type_of_expr(&e))
                            .is_some_and(|t| {
                                t.original
                                    .autoderef(sema.db)
                                    .any(|t| t.as_dyn_trait().is_some())
                            });
                    if let (true, Some(c)) = (through_dyn, callee) {
                        let site = self.ptr_site(from, &c, node);
                        self.dyn_fn_sites.push(site);
                    }
                }
                _ => {}
            }
        } else if let Some(mc) = ast::MethodCallExpr::cast(node.clone()) {
            if let Some(f) = sema.resolve_method_call(&mc) {
                match self.trait_of(f) {
                    Some(tr) if self.receiver_is_dyn(&mc, tr) => {
                        let (file, line) = self.site(node);
                        self.dyn_sites.push(DynSite {
                            from,
                            tr,
                            name: f.name(sema.db).as_str().to_string(),
                            file,
                            line,
                        });
                    }
                    Some(tr) => {
                        self.dispatch_generic(from, tr, f, node);
                        self.calls_back(from, tr, f, mc.receiver(), node);
                    }
                    None => self.call(from, f, node, EdgeKind::MethodTyped),
                }
            }
        } else if let Some(e) = ast::ForExpr::cast(node.clone()) {
            self.for_loop(from, &e, node);
        } else if let Some(e) = ast::BinExpr::cast(node.clone()) {
            if let Some(f) = sema.resolve_bin_expr(&e) {
                self.inserted(from, f, e.lhs(), node);
            }
        } else if let Some(e) = ast::PrefixExpr::cast(node.clone()) {
            if let Some(f) = sema.resolve_prefix_expr(&e) {
                self.inserted(from, f, e.expr(), node);
            }
        } else if let Some(e) = ast::IndexExpr::cast(node.clone()) {
            if let Some(f) = sema.resolve_index_expr(&e) {
                self.inserted(from, f, e.base(), node);
            }
        } else if let Some(e) = ast::CastExpr::cast(node.clone()) {
            let target = sema.type_of_expr(&ast::Expr::CastExpr(e.clone()));
            let source = e.expr().and_then(|x| sema.type_of_expr(&x));
            if let (Some(t), Some(s)) = (target, source) {
                self.coercion(&s.original, &t.original, node);
            }
        } else if let Some(p) = ast::IdentPat::cast(node.clone()) {
            // A binding (`let`, parameter, `match` arm): its value is dropped in this body
            // unless it is a reference.
            if let Some(ty) = sema.type_of_binding_in_pat(&p) {
                self.drops(from, &ty, node);
            }
        } else if let Some(s) = ast::LetStmt::cast(node.clone()) {
            // `let _ = value;` drops the value at once.
            if let (Some(ast::Pat::WildcardPat(_)), Some(init)) = (s.pat(), s.initializer()) {
                if let Some(ty) = sema.type_of_expr(&init) {
                    self.drops(from, &ty.original, node);
                }
            }
        }
        if let Some(e) = ast::Expr::cast(node.clone()) {
            self.adjustments(from, &e, node);
        }
    }

    /// The trait a function is declared in (not implemented in).
    fn trait_of(&self, f: Function) -> Option<Trait> {
        match f.as_assoc_item(self.sema.db)?.container(self.sema.db) {
            AssocItemContainer::Trait(t) => Some(t),
            AssocItemContainer::Impl(_) => None,
        }
    }

    fn receiver_is_dyn(&self, mc: &ast::MethodCallExpr, tr: Trait) -> bool {
        let Some(ty) = mc.receiver().and_then(|r| self.sema.type_of_expr(&r)) else {
            return false;
        };
        let mut chain = ty.original.autoderef(self.sema.db);
        chain.any(|t| t.as_dyn_trait() == Some(tr))
    }

    /// `file` name and line of a node in the crate (the macro call for expanded code).
    fn site(&mut self, node: &SyntaxNode) -> (String, usize) {
        match self.ids.location(self.sema, self.vfs, node, None) {
            Some((path, line)) => {
                let file = self
                    .ids
                    .names
                    .get(&path)
                    .cloned()
                    .unwrap_or_else(|| path.display().to_string());
                (file, line)
            }
            None => (String::new(), 0),
        }
    }

    /// An edge to `f` when it is a function of the crate (`Deferred` to an
    /// `#[upcall(deferred)]` function).
    fn call(&mut self, from: FnId, f: Function, node: &SyntaxNode, kind: EdgeKind) {
        let Some(to) = self.ids.function(self.sema, self.vfs, f) else {
            return;
        };
        let kind = if self.ids.fns[to].mark == Mark::UpcallDeferred {
            EdgeKind::Deferred
        } else {
            kind
        };
        let (file, line) = self.site(node);
        self.edges.push(CallEdge {
            from,
            to,
            kind,
            file,
            line,
        });
    }

    /// The impl method a trait function called by path goes to once inference knows its
    /// `Self` type (`Type::default()`, `Type::from(x)`: that type's impl, which may be
    /// outside the crate), or `None` to dispatch to every impl: `Self` still generic, the
    /// trait's default body, a derived impl (the compiler's body calls the fields' impls),
    /// or an impl outside the crate instantiated with a type of the crate (its body may
    /// call back into the crate's impls).
    fn impl_called_by_path(&self, call: &ast::CallExpr) -> Option<Function> {
        let db = self.sema.db;
        let ast::Expr::PathExpr(p) = call.expr()? else {
            return None;
        };
        let (resolution, subst) = self.sema.resolve_path_with_subst(&p.path()?)?;
        let PathResolution::Def(ModuleDef::Function(g)) = resolution else {
            return None;
        };
        let AssocItemContainer::Impl(imp) = g.as_assoc_item(db)?.container(db) else {
            return None;
        };
        imp.source(db)?;
        let krate = self.krate?;
        if imp.module(db).krate(db) != krate {
            let mut crate_type = false;
            for (_, ty) in subst?.types(db) {
                ty.walk(db, |t| {
                    crate_type |= t.as_adt().is_some_and(|a| a.module(db).krate(db) == krate);
                });
            }
            if crate_type {
                return None;
            }
        }
        Some(g)
    }

    /// A trait method called on a generic receiver: every impl of the trait in the crate
    /// (and the default body, for impls that do not override it).
    fn dispatch_generic(&mut self, from: FnId, tr: Trait, f: Function, node: &SyntaxNode) {
        let db = self.sema.db;
        let Some(krate) = self.krate else {
            return;
        };
        let name = f.name(db).as_str().to_string();
        let impls = self
            .impls
            .entry(tr)
            .or_insert_with(|| {
                Impl::all_in_crate(db, krate)
                    .into_iter()
                    .filter(|i| i.trait_(db) == Some(tr))
                    .collect()
            })
            .clone();
        for imp in impls {
            let m = method_named(imp, db, &name).unwrap_or(f);
            self.call(from, m, node, EdgeKind::TraitDispatch);
        }
        if f.has_body(db) {
            self.call(from, f, node, EdgeKind::TraitDispatch);
        }
    }

    /// The method `name` of `tr`'s impl for `ty` (or the trait's default body).
    fn impl_method(&self, ty: &Type<'db>, tr: Trait, name: &str) -> Option<Function> {
        let db = self.sema.db;
        let ty = ty.strip_references();
        Impl::all_for_type(db, ty)
            .into_iter()
            .filter(|i| i.trait_(db) == Some(tr))
            .find_map(|i| method_named(i, db, name))
            .or_else(|| {
                tr.items(db)
                    .into_iter()
                    .filter_map(|i| i.as_function())
                    .find(|f| f.name(db).as_str() == name && f.has_body(db))
            })
    }

    /// Resolves the calls through `dyn Trait`, function pointers and `dyn Fn*` now that
    /// every coercion and every address-taken function is known (see `dispatch`).
    pub fn finish(&mut self) {
        self.finish_pointers();
        self.finish_dyn_fns();
        self.finish_dyn_traits();
    }
}

fn method_named(imp: Impl, db: &RootDatabase, name: &str) -> Option<Function> {
    imp.items(db)
        .into_iter()
        .filter_map(|i| i.as_function())
        .find(|f| f.name(db).as_str() == name)
}
