//! Walking the crate's bodies with rust-analyzer's semantics: the call edges.

use std::collections::{HashMap, HashSet};

use ra_ap_hir::{
    Adjust, AsAssocItem, AssocItemContainer, Callable, CallableKind, Crate, DropGlue, Function,
    Impl, ModuleDef, Mutability, OverloadedDeref, PathResolution, PointerCast, Semantics, Trait,
    Type,
};
use ra_ap_ide_db::famous_defs::FamousDefs;
use ra_ap_ide_db::RootDatabase;
use ra_ap_syntax::{ast, AstNode, SyntaxNode};
use ra_ap_vfs::Vfs;

use super::ids::Ids;
use crate::model::{CallEdge, EdgeKind, FnId, Mark, Unresolved};

/// How deep macro expansions nest, and how deep `Drop` is looked for in field types.
const MAX_DEPTH: usize = 32;
const MAX_DROP_DEPTH: usize = 4;

/// A `dyn Trait` method call, resolved once every coercion of the crate is known.
struct DynSite {
    from: FnId,
    tr: Trait,
    name: String,
    file: String,
    line: usize,
}

/// A call through a function pointer, resolved once every address-taken function is known.
struct PtrSite<'db> {
    from: FnId,
    params: Vec<Type<'db>>,
    ret: Type<'db>,
    file: String,
    line: usize,
}

/// A closure or function coerced to a `dyn Fn*` somewhere in the crate, with its signature.
enum FnValue {
    /// A closure, by where its expression is (its id is known once the walk met it).
    Closure((ra_ap_vfs::FileId, ra_ap_syntax::TextRange)),
    /// A function item.
    Function(Function),
}

/// A function's signature as a pointer to it: parameter types and return type (regions
/// erased).
type Signature<'db> = (Vec<Type<'db>>, Type<'db>);

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
                    Some(tr) => self.dispatch_generic(from, tr, f, node),
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

    /// Notes a function of the crate used as a value (a path to it that is not the callee
    /// of a call): its address can reach a function pointer.
    fn address_taken(&mut self, node: &SyntaxNode) {
        let Some(pe) = ast::PathExpr::cast(node.clone()) else {
            return;
        };
        let callee = node
            .parent()
            .and_then(ast::CallExpr::cast)
            .and_then(|c| c.expr())
            .is_some_and(|e| e.syntax() == node);
        if callee {
            return;
        }
        let Some(path) = pe.path() else {
            return;
        };
        if let Some(PathResolution::Def(ModuleDef::Function(f))) = self.sema.resolve_path(&path) {
            if !self.taken.contains(&f) {
                self.taken.push(f);
            }
        }
    }

    /// A provided method of another crate's trait (`Iterator::sum`, whose body is in the
    /// standard library) called on a value whose type implements that trait in this
    /// crate: the other crate's body calls back into the impl, so every method of the
    /// crate's impl for the receiver's type is called on the caller's behalf
    /// (`PassedToExternal` edges from the caller).
    fn calls_back(
        &mut self,
        from: FnId,
        tr: Trait,
        f: Function,
        receiver: Option<ast::Expr>,
        node: &SyntaxNode,
    ) {
        let db = self.sema.db;
        let ours = self.krate;
        if ours.is_none() || Some(tr.module(db).krate(db)) == ours || !f.has_body(db) {
            return;
        }
        let Some(ty) = receiver.and_then(|r| self.sema.type_of_expr(&r)) else {
            return;
        };
        self.impl_methods_called_back(from, &ty.original, tr, node);
    }

    /// `for x in iterable`: the loop calls `IntoIterator::into_iter` on the iterable and
    /// `Iterator::next` on what that returns; where the iterable's type implements either
    /// in this crate, those impls' methods are called.
    fn for_loop(&mut self, from: FnId, e: &ast::ForExpr, node: &SyntaxNode) {
        let Some(ty) = e.iterable().and_then(|i| self.sema.type_of_expr(&i)) else {
            return;
        };
        for tr in [self.into_iterator, self.iterator].into_iter().flatten() {
            self.impl_methods_called_back(from, &ty.original, tr, node);
        }
    }

    /// Edges from `from` to every method of this crate's impl of `tr` for `ty` (or for
    /// the type it refers to).
    fn impl_methods_called_back(
        &mut self,
        from: FnId,
        ty: &Type<'db>,
        tr: Trait,
        node: &SyntaxNode,
    ) {
        let db = self.sema.db;
        let Some(ours) = self.krate else {
            return;
        };
        let mut methods = Vec::new();
        for t in [ty.clone(), ty.strip_references()] {
            for imp in Impl::all_for_type(db, t) {
                if imp.trait_(db) == Some(tr) && imp.module(db).krate(db) == ours {
                    methods.extend(imp.items(db).into_iter().filter_map(|i| i.as_function()));
                }
            }
        }
        methods.dedup();
        for m in methods {
            self.call(from, m, node, EdgeKind::PassedToExternal);
        }
    }

    /// `Deref`/`DerefMut` calls of autoderef, and unsizing coercions to `dyn Trait`.
    fn adjustments(&mut self, from: FnId, e: &ast::Expr, node: &SyntaxNode) {
        for adj in self.sema.expr_adjustments(e).unwrap_or_default() {
            match adj.kind {
                Adjust::Deref(Some(OverloadedDeref(m))) => {
                    let (tr, name) = if m == Mutability::Mut {
                        (self.deref_mut, "deref_mut")
                    } else {
                        (self.deref, "deref")
                    };
                    if let Some(f) = tr.and_then(|tr| self.impl_method(&adj.source, tr, name)) {
                        self.call(from, f, node, EdgeKind::Inserted);
                    }
                }
                Adjust::Pointer(PointerCast::Unsize) => {
                    self.coercion(&adj.source, &adj.target, node);
                }
                _ => {}
            }
        }
    }

    /// A compiler-inserted call of `f` (an operator or `Index` method) on `operand`: when
    /// the model names the trait's method, the impl for the operand's type.
    fn inserted(&mut self, from: FnId, f: Function, operand: Option<ast::Expr>, node: &SyntaxNode) {
        let target = match self.trait_of(f) {
            Some(tr) => operand
                .and_then(|o| self.sema.type_of_expr(&o))
                .and_then(|t| self.impl_method(&t.original, tr, f.name(self.sema.db).as_str())),
            None => Some(f),
        };
        if let Some(f) = target {
            self.call(from, f, node, EdgeKind::Inserted);
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

    /// A call through a function pointer or a `dyn Fn*`: its signature and where it is.
    fn ptr_site(&mut self, from: FnId, c: &Callable<'db>, node: &SyntaxNode) -> PtrSite<'db> {
        let (file, line) = self.site(node);
        PtrSite {
            from,
            params: c.params().iter().map(|p| p.ty().clone()).collect(),
            ret: c.return_type(),
            file,
            line,
        }
    }

    /// Records the concrete types of `source` that implement the trait of the `dyn` in
    /// `target` (the coercion happens at `node`); for a `dyn Fn*`, the closures and
    /// functions in `source` with their signatures.
    fn coercion(&mut self, source: &Type<'db>, target: &Type<'db>, node: &SyntaxNode) {
        let Some(tr) = dyn_of(target, 0) else {
            return;
        };
        if is_fn_trait(self.sema.db, tr) {
            self.fn_coercion(source, node);
            return;
        }
        let mut found = Vec::new();
        concrete(self.sema.db, source, tr, 0, &mut found);
        for c in found {
            if !self.coerced.iter().any(|(t, ty)| *t == tr && *ty == c) {
                self.coerced.push((tr, c));
            }
        }
    }

    /// The closures and functions in `source` (itself, behind references, in type
    /// arguments: `Box<closure>`) coerced to a `dyn Fn*` at `node`; a closure is found by
    /// its expression under `node` (where it is written).
    fn fn_coercion(&mut self, source: &Type<'db>, node: &SyntaxNode) {
        let db = self.sema.db;
        let mut found = Vec::new();
        fn_values_in(db, source, 0, &mut found);
        for ty in found {
            let Some(c) = ty.as_callable(db) else {
                continue;
            };
            let sig = (
                c.params().iter().map(|p| p.ty().clone()).collect(),
                c.return_type(),
            );
            let value = match c.kind() {
                CallableKind::Function(f) => Some(FnValue::Function(f)),
                CallableKind::Closure(_) => {
                    let closures: Vec<ast::ClosureExpr> = node
                        .descendants()
                        .filter_map(ast::ClosureExpr::cast)
                        .collect();
                    // The closure of that type; the only one, if types do not compare.
                    let of_type = closures.iter().find(|e| {
                        self.sema
                            .type_of_expr(&ast::Expr::ClosureExpr((*e).clone()))
                            .is_some_and(|t| t.original == ty)
                    });
                    of_type
                        .or(if closures.len() == 1 {
                            closures.first()
                        } else {
                            None
                        })
                        .map(|e| {
                            let range = self.sema.original_range(e.syntax());
                            FnValue::Closure((range.file_id.file_id(db), range.range))
                        })
                }
                _ => None,
            };
            if let Some(value) = value {
                self.fn_values.push((sig, value));
            }
        }
    }

    /// `Drop::drop` of `ty` and of the types it owns, as edges from `from`.
    fn drops(&mut self, from: FnId, ty: &Type<'db>, node: &SyntaxNode) {
        let Some(drop) = self.drop else {
            return;
        };
        let mut found = Vec::new();
        drop_fns(self.sema.db, ty, drop, 0, &mut found);
        for f in found {
            self.call(from, f, node, EdgeKind::Inserted);
        }
    }

    /// Resolves the calls through function pointers now that every address-taken function
    /// is known: each goes to the address-taken functions of exactly its signature. A site
    /// the model finds no such function for, or where a generic function's address is
    /// taken (its signature is not known here), is left to the syntax pass's arity match.
    fn finish_pointers(&mut self) {
        let db = self.sema.db;
        let signatures: Vec<(Function, Option<Signature<'db>>)> = self
            .taken
            .iter()
            .map(|&f| {
                let ty = f.fn_ptr_type(db);
                let sig = (ty.generic_params(db).is_empty())
                    .then(|| ty.as_callable(db))
                    .flatten()
                    .map(|c| {
                        let params = c.params().iter().map(|p| p.ty().clone()).collect();
                        (params, c.return_type())
                    });
                (f, sig)
            })
            .collect();
        for site in std::mem::take(&mut self.ptr_sites) {
            // (Whether `num_params` counts `self` is not assumed: one either way.)
            let uncertain = signatures
                .iter()
                .any(|(f, sig)| sig.is_none() && f.num_params(db).abs_diff(site.params.len()) <= 1);
            let targets: Vec<Function> = signatures
                .iter()
                .filter(|(_, sig)| {
                    sig.as_ref()
                        .is_some_and(|(params, ret)| *params == site.params && *ret == site.ret)
                })
                .map(|(f, _)| *f)
                .collect();
            if uncertain || targets.is_empty() {
                continue;
            }
            self.resolved_indirect
                .insert((site.from, site.file.clone(), site.line));
            for f in targets {
                if let Some(to) = self.ids.function(self.sema, self.vfs, f) {
                    self.edges.push(CallEdge {
                        from: site.from,
                        to,
                        kind: EdgeKind::Indirect,
                        file: site.file.clone(),
                        line: site.line,
                    });
                }
            }
        }
    }

    /// Resolves the calls through a `dyn Fn*` now that every coercion is known: each goes
    /// to the closures and functions coerced to a `dyn Fn*` of exactly its signature. A call
    /// none matches is left to the syntax pass.
    fn finish_dyn_fns(&mut self) {
        for site in std::mem::take(&mut self.dyn_fn_sites) {
            let mut targets = Vec::new();
            for ((params, ret), value) in &self.fn_values {
                if *params != site.params || *ret != site.ret {
                    continue;
                }
                let id = match value {
                    FnValue::Closure(at) => self.closure_at.get(at).copied(),
                    FnValue::Function(f) => self.ids.function(self.sema, self.vfs, *f),
                };
                targets.extend(id);
            }
            if targets.is_empty() {
                continue;
            }
            self.resolved_indirect
                .insert((site.from, site.file.clone(), site.line));
            for to in targets {
                self.edges.push(CallEdge {
                    from: site.from,
                    to,
                    kind: EdgeKind::Indirect,
                    file: site.file.clone(),
                    line: site.line,
                });
            }
        }
    }

    /// Resolves the `dyn Trait` calls now that every coercion is known, and the calls
    /// through function pointers and `dyn Fn*` now that every address-taken function and
    /// every coercion is.
    pub fn finish(&mut self) {
        self.finish_pointers();
        self.finish_dyn_fns();
        for site in std::mem::take(&mut self.dyn_sites) {
            let targets: Vec<Function> = self
                .coerced
                .iter()
                .filter(|(t, _)| *t == site.tr)
                .filter_map(|(_, ty)| self.impl_method(ty, site.tr, &site.name))
                .collect();
            if targets.is_empty() {
                self.unresolved.push(Unresolved {
                    file: site.file.clone(),
                    line: site.line,
                    what: format!(
                        "dyn {}::{} call",
                        site.tr.name(self.sema.db).as_str(),
                        site.name
                    ),
                    reason: "no type of the crate is coerced to that dyn Trait; no edge".into(),
                });
            }
            for f in targets {
                if let Some(to) = self.ids.function(self.sema, self.vfs, f) {
                    self.edges.push(CallEdge {
                        from: site.from,
                        to,
                        kind: EdgeKind::TraitDispatch,
                        file: site.file.clone(),
                        line: site.line,
                    });
                }
            }
        }
    }
}

fn method_named(imp: Impl, db: &RootDatabase, name: &str) -> Option<Function> {
    imp.items(db)
        .into_iter()
        .filter_map(|i| i.as_function())
        .find(|f| f.name(db).as_str() == name)
}

/// Whether `tr` is one of the standard library's `Fn`, `FnMut`, `FnOnce`.
fn is_fn_trait(db: &RootDatabase, tr: Trait) -> bool {
    matches!(tr.name(db).as_str(), "Fn" | "FnMut" | "FnOnce")
        && tr.module(db).krate(db).origin(db).is_lang()
}

/// The closure and function-item types in `ty` (itself, behind references, in type
/// arguments).
fn fn_values_in<'db>(
    db: &'db RootDatabase,
    ty: &Type<'db>,
    depth: usize,
    out: &mut Vec<Type<'db>>,
) {
    if depth > MAX_DROP_DEPTH {
        return;
    }
    let ty = ty.strip_references();
    if ty.is_closure()
        || ty
            .as_callable(db)
            .is_some_and(|c| matches!(c.kind(), CallableKind::Function(_)))
    {
        out.push(ty.clone());
        return;
    }
    for a in ty.type_arguments() {
        fn_values_in(db, &a, depth + 1, out);
    }
}

/// The trait of a `dyn Trait` in `ty` (behind references and smart pointers).
fn dyn_of(ty: &Type<'_>, depth: usize) -> Option<Trait> {
    if depth > MAX_DROP_DEPTH {
        return None;
    }
    let ty = ty.strip_references();
    ty.as_dyn_trait()
        .or_else(|| ty.type_arguments().find_map(|a| dyn_of(&a, depth + 1)))
}

/// The types in `ty` (itself, behind references, in type arguments) that implement `tr`.
fn concrete<'db>(
    db: &'db RootDatabase,
    ty: &Type<'db>,
    tr: Trait,
    depth: usize,
    out: &mut Vec<Type<'db>>,
) {
    if depth > MAX_DROP_DEPTH {
        return;
    }
    let ty = ty.strip_references();
    if ty.as_dyn_trait().is_none() && ty.impls_trait(db, tr, &[]) {
        out.push(ty.clone());
    }
    for a in ty.type_arguments() {
        concrete(db, &a, tr, depth + 1, out);
    }
}

/// The `Drop::drop` impls run when a value of `ty` is dropped: its own and its fields'
/// and type arguments' (drop glue).
fn drop_fns<'db>(
    db: &'db RootDatabase,
    ty: &Type<'db>,
    drop: Trait,
    depth: usize,
    out: &mut Vec<Function>,
) {
    if depth > MAX_DROP_DEPTH || ty.is_reference() || ty.drop_glue(db) == DropGlue::None {
        return;
    }
    for imp in Impl::all_for_type(db, ty.clone()) {
        if imp.trait_(db) == Some(drop) {
            out.extend(method_named(imp, db, "drop"));
        }
    }
    for (_, field) in ty.fields(db) {
        drop_fns(db, &field, drop, depth + 1, out);
    }
    for a in ty.type_arguments() {
        drop_fns(db, &a, drop, depth + 1, out);
    }
}
