//! Dynamic dispatch: what a call through a `dyn Trait`, a function pointer or a `dyn Fn*`
//! can reach. The walk records the sites and what can reach them (types coerced to a
//! `dyn`, closures and functions coerced to a `dyn Fn*`, functions used as values); once
//! every file is walked, each site goes to what can actually reach it, matched by trait or
//! by exact signature.

use ra_ap_hir::{Callable, CallableKind, Function, ModuleDef, PathResolution, Trait, Type};
use ra_ap_ide_db::RootDatabase;
use ra_ap_syntax::{ast, AstNode, SyntaxNode};

use super::{Walk, MAX_DROP_DEPTH};
use crate::model::{CallEdge, EdgeKind, FnId, Unresolved};

/// A `dyn Trait` method call, resolved once every coercion of the crate is known.
pub(super) struct DynSite {
    pub(super) from: FnId,
    pub(super) tr: Trait,
    pub(super) name: String,
    pub(super) file: String,
    pub(super) line: usize,
}

/// A call through a function pointer, resolved once every address-taken function is known.
pub(super) struct PtrSite<'db> {
    pub(super) from: FnId,
    pub(super) params: Vec<Type<'db>>,
    pub(super) ret: Type<'db>,
    pub(super) file: String,
    pub(super) line: usize,
}

/// A closure or function coerced to a `dyn Fn*` somewhere in the crate, with its signature.
pub(super) enum FnValue {
    /// A closure, by where its expression is (its id is known once the walk met it).
    Closure((ra_ap_vfs::FileId, ra_ap_syntax::TextRange)),
    /// A function item.
    Function(Function),
}

/// A function's signature as a pointer to it: parameter types and return type (regions
/// erased).
pub(super) type Signature<'db> = (Vec<Type<'db>>, Type<'db>);

impl<'db> Walk<'_, 'db> {
    /// Notes a function of the crate used as a value (a path to it that is not the callee
    /// of a call): its address can reach a function pointer.
    pub(super) fn address_taken(&mut self, node: &SyntaxNode) {
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

    /// A call through a function pointer or a `dyn Fn*`: its signature and where it is.
    pub(super) fn ptr_site(
        &mut self,
        from: FnId,
        c: &Callable<'db>,
        node: &SyntaxNode,
    ) -> PtrSite<'db> {
        let (file, line) = self.site(node);
        let (params, ret) = signature(c);
        PtrSite {
            from,
            params,
            ret,
            file,
            line,
        }
    }

    /// Records the concrete types of `source` that implement the trait of the `dyn` in
    /// `target` (the coercion happens at `node`); for a `dyn Fn*`, the closures and
    /// functions in `source` with their signatures.
    pub(super) fn coercion(&mut self, source: &Type<'db>, target: &Type<'db>, node: &SyntaxNode) {
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
            let sig = signature(&c);
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

    /// Resolves the calls through function pointers now that every address-taken function
    /// is known: each goes to the address-taken functions of exactly its signature. A site
    /// the model finds no such function for, or where a generic function's address is
    /// taken (its signature is not known here), is left to the syntax pass's arity match.
    pub(super) fn finish_pointers(&mut self) {
        let db = self.sema.db;
        let signatures: Vec<(Function, Option<Signature<'db>>)> = self
            .taken
            .iter()
            .map(|&f| {
                let ty = f.fn_ptr_type(db);
                let sig = (ty.generic_params(db).is_empty())
                    .then(|| ty.as_callable(db))
                    .flatten()
                    .map(|c| signature(&c));
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
            let targets = self.crate_fns(targets);
            self.site_edges(
                site.from,
                &site.file,
                site.line,
                targets,
                EdgeKind::Indirect,
            );
        }
    }

    /// The ids of those of `fns` that are functions of the crate.
    fn crate_fns(&mut self, fns: Vec<Function>) -> Vec<FnId> {
        fns.into_iter()
            .filter_map(|f| self.ids.function(self.sema, self.vfs, f))
            .collect()
    }

    /// Edges from `from` to each of `targets`, for the call at `file`:`line`.
    fn site_edges(
        &mut self,
        from: FnId,
        file: &str,
        line: usize,
        targets: Vec<FnId>,
        kind: EdgeKind,
    ) {
        for to in targets {
            self.edges.push(CallEdge {
                from,
                to,
                kind,
                file: file.to_string(),
                line,
            });
        }
    }

    /// Resolves the calls through a `dyn Fn*` now that every coercion is known: each goes
    /// to the closures and functions coerced to a `dyn Fn*` of exactly its signature. A call
    /// none matches is left to the syntax pass.
    pub(super) fn finish_dyn_fns(&mut self) {
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
            self.site_edges(
                site.from,
                &site.file,
                site.line,
                targets,
                EdgeKind::Indirect,
            );
        }
    }

    /// Resolves the `dyn Trait` method calls: each goes to the impls of the types coerced
    /// to that `dyn Trait` in the crate.
    pub(super) fn finish_dyn_traits(&mut self) {
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
            let targets = self.crate_fns(targets);
            self.site_edges(
                site.from,
                &site.file,
                site.line,
                targets,
                EdgeKind::TraitDispatch,
            );
        }
    }
}

/// A callable's signature.
fn signature<'db>(c: &Callable<'db>) -> Signature<'db> {
    (
        c.params().iter().map(|p| p.ty().clone()).collect(),
        c.return_type(),
    )
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
