//! The calls the compiler inserts (operators, `Index`/`IndexMut`, `Deref`/`DerefMut` on
//! autoderef, `Drop` of locals) and the ones another crate's code makes back into this
//! one (a provided trait method of the standard library on a value of a type this crate
//! implements the trait for, a `for` loop over one).

use ra_ap_hir::{
    Adjust, DropGlue, Function, Impl, Mutability, OverloadedDeref, PointerCast, Trait, Type,
};
use ra_ap_ide_db::RootDatabase;
use ra_ap_syntax::{ast, SyntaxNode};

use super::{method_named, Walk, MAX_DROP_DEPTH};
use crate::model::{EdgeKind, FnId};

impl<'db> Walk<'_, 'db> {
    /// A provided method of another crate's trait (`Iterator::sum`, whose body is in the
    /// standard library) called on a value whose type implements that trait in this
    /// crate: the other crate's body calls back into the impl, so every method of the
    /// crate's impl for the receiver's type is called on the caller's behalf
    /// (`PassedToExternal` edges from the caller).
    pub(super) fn calls_back(
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
    pub(super) fn for_loop(&mut self, from: FnId, e: &ast::ForExpr, node: &SyntaxNode) {
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
    pub(super) fn adjustments(&mut self, from: FnId, e: &ast::Expr, node: &SyntaxNode) {
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
    pub(super) fn inserted(
        &mut self,
        from: FnId,
        f: Function,
        operand: Option<ast::Expr>,
        node: &SyntaxNode,
    ) {
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

    /// `Drop::drop` of `ty` and of the types it owns, as edges from `from`.
    pub(super) fn drops(&mut self, from: FnId, ty: &Type<'db>, node: &SyntaxNode) {
        let Some(drop) = self.drop else {
            return;
        };
        let mut found = Vec::new();
        drop_fns(self.sema.db, ty, drop, 0, &mut found);
        for f in found {
            self.call(from, f, node, EdgeKind::Inserted);
        }
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
