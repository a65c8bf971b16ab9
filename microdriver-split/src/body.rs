//! Walking function bodies: call sites, method calls, closures, functions whose address is
//! taken, and deferrals.

use std::collections::HashMap;

use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::visit::{self, Visit};
use syn::{Expr, ExprClosure, ExprPath, FnArg, Member, Pat, Token};

use crate::model::{CallEdge, EdgeKind, FnId, FnInfo, FnKind, Mark, Unresolved};
use crate::resolve::{deref_guard, holder_method, Res, Ty};
use crate::tables::{Body, Ctx, ScopeId, Tables};

/// An indirect call site: resolved once every address-taken function is known.
#[derive(Debug, Clone)]
pub struct IndirectSite {
    /// Caller.
    pub from: FnId,
    /// Number of arguments.
    pub arity: usize,
    /// Parameter types of the callee's declared type, when known (see
    /// [`crate::resolve::sig_type`]).
    pub sig: Option<Vec<String>>,
    /// File.
    pub file: String,
    /// Line.
    pub line: usize,
    /// When the callee is a parameter of the function being walked (called in its own
    /// body, not from a closure): its index, `self` counted.
    pub param: Option<usize>,
}

/// What walking the bodies found.
#[derive(Debug, Default)]
pub struct Sink {
    /// Closures (their ids follow the collected functions).
    pub closures: Vec<FnInfo>,
    /// Resolved call edges.
    pub edges: Vec<CallEdge>,
    /// Indirect call sites.
    pub indirect: Vec<IndirectSite>,
    /// Functions whose address is taken.
    pub taken: Vec<FnId>,
    /// What could not be resolved.
    pub unresolved: Vec<Unresolved>,
    /// Per function: whether each parameter (`self` first) escapes, i.e. is used other
    /// than by being called in the function's own body.
    pub param_escapes: HashMap<FnId, Vec<bool>>,
    /// Closures and functions passed straight to a crate function's parameter.
    pub via_param: Vec<ViaParam>,
    /// Arguments other than a closure or a function path passed to a crate function's
    /// parameter: (the candidate callees, the parameter index).
    pub opaque_param_args: Vec<(Vec<FnId>, usize)>,
    /// Functions and closures passed to functions outside the crate.
    pub registrations: Vec<crate::model::Registration>,
}

/// A closure or function passed as an argument to crate functions: if none of them lets
/// that parameter escape, they call it (edges from them); otherwise it is address-taken.
#[derive(Debug, Clone)]
pub struct ViaParam {
    /// The function (or closure) whose body passes it.
    pub from: Option<FnId>,
    /// The closure or function passed.
    pub value: FnId,
    /// The functions it is passed to (all candidates of the call).
    pub targets: Vec<FnId>,
    /// The parameter index (`self` counted).
    pub index: usize,
    /// File of the call.
    pub file: String,
    /// Line of the call.
    pub line: usize,
}

/// Whether a callee name is recognisably a deferral: `defer`, or starting with `defer_`.
pub fn is_deferral_name(name: &str) -> bool {
    name == "defer" || name.starts_with("defer_")
}

/// Macros whose arguments are not expressions containing calls.
const INERT_MACROS: &[&str] = &[
    "macro_rules",
    "include_str",
    "include_bytes",
    "include",
    "concat",
    "env",
    "option_env",
    "stringify",
    "cfg",
    "compile_error",
    "line",
    "file",
    "column",
    "module_path",
    "cfg_if",
    // token templates: their bodies are code to generate, not code that runs here
    "quote",
    "quote_spanned",
    "parse_quote",
    "parse_quote_spanned",
    "Token",
];

/// Macros shaped `name!(expr, pattern [if guard])`.
const MATCHES_MACROS: &[&str] = &["matches", "assert_matches", "debug_assert_matches"];

/// Parses `expr, pattern [if guard] [, rest...]`: the expressions whose calls run.
fn parse_matches(input: syn::parse::ParseStream) -> syn::Result<Vec<Expr>> {
    let scrutinee: Expr = input.parse()?;
    let _: Token![,] = input.parse()?;
    let _ = Pat::parse_multi_with_leading_vert(input)?;
    let mut out = vec![scrutinee];
    if input.peek(Token![if]) {
        let _: Token![if] = input.parse()?;
        out.push(input.parse()?);
    }
    if input.peek(Token![,]) {
        let _: Token![,] = input.parse()?;
        let rest = Punctuated::<Expr, Token![,]>::parse_terminated(input)?;
        out.extend(rest);
    }
    Ok(out)
}

/// Walks every body in the tables.
pub fn walk_all(t: &Tables) -> Sink {
    let mut sink = Sink::default();
    for body in &t.bodies {
        let mut w = Walker::new(t, &mut sink, body.scope, body.ctx.clone(), Some(body.fn_id));
        w.run(body);
    }
    for (scope, name, expr) in &t.inits {
        let mut w = Walker::new(t, &mut sink, *scope, Ctx::default(), None);
        // Closures in initialisers are named after the const or static.
        w.base_path = name.clone();
        w.visit_expr(expr);
    }
    sink
}

/// How a function value or closure is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// Stored, returned, or passed to crate code: an indirect-call target.
    Taken,
    /// Passed to code outside the crate, which calls it for the caller.
    External,
    /// Handed to a deferral: runs later in the user half.
    Deferred,
    /// Passed straight to a parameter of crate functions (see [`ViaParam`]).
    Param,
}

struct Walker<'a> {
    t: &'a Tables,
    sink: &'a mut Sink,
    scope: ScopeId,
    ctx: Ctx,
    current: Option<FnId>,
    env: HashMap<String, Ty>,
    file: String,
    base_path: String,
    closure_count: usize,
    /// Type of the next closure's first parameter (all parameters when the flag is set):
    /// the element type of `v.iter().map(|x| ..)` and friends.
    closure_hint: Option<(Ty, bool)>,
    /// The function whose body this is.
    owner: Option<FnId>,
    /// Its parameters by name (index with `self` counted).
    params: HashMap<String, usize>,
    /// Which of them escape.
    escaped: Vec<bool>,
    /// For a `Use::Param` argument: the callees and the parameter index.
    param_site: Option<(Vec<FnId>, usize)>,
    /// The outside function the arguments being walked are passed to.
    registrar: Option<String>,
}

/// Methods of iterators and `Option`/`Result` whose closure argument receives the element.
const ELEMENT_CLOSURES: &[&str] = &[
    "map",
    "for_each",
    "filter",
    "filter_map",
    "find",
    "find_map",
    "any",
    "all",
    "position",
    "flat_map",
    "inspect",
    "take_while",
    "skip_while",
    "map_while",
    "max_by_key",
    "min_by_key",
    "retain",
    "retain_mut",
    "sort_by_key",
    "sort_unstable_by_key",
    "and_then",
    "is_some_and",
    "is_ok_and",
    "is_none_or",
    "map_or",
    "map_or_else",
    "unwrap_or_else",
    "partition",
    "try_for_each",
];

/// Methods whose closure receives two elements.
const PAIR_CLOSURES: &[&str] = &[
    "sort_by",
    "sort_unstable_by",
    "max_by",
    "min_by",
    "dedup_by",
];

/// The element type a closure argument of `recv.method(..)` receives, if known.
fn element_hint(recv: &Ty, method: &str) -> Option<(Ty, bool)> {
    let Ty::Holder(name, inner) = deref_guard(recv.clone()) else {
        return None;
    };
    if !matches!(name.as_str(), "slice" | "Option" | "Result") {
        return None;
    }
    if ELEMENT_CLOSURES.contains(&method) {
        Some((*inner, false))
    } else if PAIR_CLOSURES.contains(&method) {
        Some((*inner, true))
    } else {
        None
    }
}

fn strip(mut e: &Expr) -> &Expr {
    loop {
        match e {
            Expr::Paren(p) => e = &p.expr,
            Expr::Group(g) => e = &g.expr,
            Expr::Reference(r) => e = &r.expr,
            _ => return e,
        }
    }
}

fn segs_of(p: &syn::Path) -> Vec<String> {
    p.segments.iter().map(|s| s.ident.to_string()).collect()
}

/// Binds every identifier in a pattern.
#[derive(Default)]
struct PatNames(Vec<String>);

impl<'ast> Visit<'ast> for PatNames {
    fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
        self.0.push(i.ident.to_string());
        visit::visit_pat_ident(self, i);
    }
}

impl<'a> Walker<'a> {
    fn new(
        t: &'a Tables,
        sink: &'a mut Sink,
        scope: ScopeId,
        ctx: Ctx,
        current: Option<FnId>,
    ) -> Self {
        let (file, base_path) = match current {
            Some(f) => (t.fns[f].file.clone(), t.fns[f].path.clone()),
            None => (t.scopes[scope].file.clone(), String::new()),
        };
        Walker {
            t,
            sink,
            scope,
            ctx,
            current,
            env: HashMap::new(),
            file,
            base_path,
            closure_count: 0,
            closure_hint: None,
            owner: current,
            params: HashMap::new(),
            escaped: Vec::new(),
            param_site: None,
            registrar: None,
        }
    }

    /// Records a function or closure passed to an outside function.
    fn register(&mut self, value: FnId, line: usize) {
        if let Some(with) = self.registrar.clone() {
            self.sink.registrations.push(crate::model::Registration {
                value,
                with,
                file: self.file.clone(),
                line,
            });
        }
    }

    fn run(&mut self, body: &Body) {
        self.escaped = vec![false; body.inputs.len()];
        for (i, input) in body.inputs.iter().enumerate() {
            match input {
                FnArg::Receiver(_) => {
                    self.params.insert("self".into(), i);
                }
                FnArg::Typed(pt) => {
                    if let Pat::Ident(id) = &*pt.pat {
                        self.params.insert(id.ident.to_string(), i);
                    }
                }
            }
        }
        for input in &body.inputs {
            match input {
                FnArg::Receiver(_) => {
                    let ty = match (&self.ctx.self_key, &self.ctx.self_trait) {
                        (Some(k), _) => Ty::Named(k.clone()),
                        (None, Some(t)) => Ty::Generic(vec![t.clone()]),
                        _ => Ty::Unknown,
                    };
                    self.env.insert("self".into(), ty);
                }
                FnArg::Typed(pt) => {
                    let ty = self.t.type_of(&pt.ty, self.scope, &self.ctx);
                    self.bind(&pt.pat, ty);
                }
            }
        }
        self.visit_block(&body.block);
        self.sink
            .param_escapes
            .insert(body.fn_id, std::mem::take(&mut self.escaped));
    }

    /// Marks a parameter as escaping.
    fn escape(&mut self, name: &str) {
        if let Some(&i) = self.params.get(name) {
            if let Some(e) = self.escaped.get_mut(i) {
                *e = true;
            }
        }
    }

    /// Records a value passed straight to a crate function's parameter.
    fn via_param(&mut self, value: FnId, line: usize) {
        match self.param_site.clone() {
            Some((targets, index)) => self.sink.via_param.push(ViaParam {
                from: self.current,
                value,
                targets,
                index,
                file: self.file.clone(),
                line,
            }),
            None => self.sink.taken.push(value),
        }
    }

    fn bind(&mut self, pat: &Pat, ty: Ty) {
        match pat {
            Pat::Ident(i) if i.subpat.is_none() => {
                self.env.insert(i.ident.to_string(), ty);
            }
            Pat::Type(pt) => {
                let ty = self.t.type_of(&pt.ty, self.scope, &self.ctx);
                self.bind(&pt.pat, ty);
            }
            Pat::Reference(r) => self.bind(&r.pat, ty),
            Pat::Paren(p) => self.bind(&p.pat, ty),
            Pat::Or(o) => {
                for case in &o.cases {
                    self.bind(case, ty.clone());
                }
            }
            Pat::TupleStruct(ts) => {
                let variant = ts
                    .path
                    .segments
                    .last()
                    .map(|s| s.ident.to_string())
                    .unwrap_or_default();
                let holder = match (&ty, variant.as_str()) {
                    (Ty::Holder(h, inner), "Some" | "Ok") if h == "Option" || h == "Result" => {
                        Some((**inner).clone())
                    }
                    _ => None,
                };
                let fields = self.pattern_fields(&ts.path, &ty);
                let mut after_rest = false;
                for (i, p) in ts.elems.iter().enumerate() {
                    if matches!(p, Pat::Rest(_)) {
                        after_rest = true;
                        continue;
                    }
                    let ty = match (&holder, &fields) {
                        (Some(inner), _) if i == 0 => inner.clone(),
                        (_, Some(f)) if !after_rest => {
                            f.get(&i.to_string()).cloned().unwrap_or(Ty::Unknown)
                        }
                        _ => Ty::Unknown,
                    };
                    self.bind(p, ty);
                }
            }
            Pat::Struct(ps) => {
                let fields = self.pattern_fields(&ps.path, &ty);
                for fp in &ps.fields {
                    let member = match &fp.member {
                        Member::Named(i) => i.to_string(),
                        Member::Unnamed(i) => i.index.to_string(),
                    };
                    let ty = fields
                        .as_ref()
                        .and_then(|f| f.get(&member).cloned())
                        .unwrap_or(Ty::Unknown);
                    self.bind(&fp.pat, ty);
                }
            }
            Pat::Tuple(t) => {
                let elems = match ty {
                    Ty::Tuple(v) if v.len() == t.elems.len() => v,
                    _ => vec![Ty::Unknown; t.elems.len()],
                };
                for (p, ty) in t.elems.iter().zip(elems) {
                    self.bind(p, ty);
                }
            }
            other => {
                let mut names = PatNames::default();
                names.visit_pat(other);
                for n in names.0 {
                    self.env.insert(n, Ty::Unknown);
                }
            }
        }
    }

    /// Field types of the struct or enum variant a pattern path names (`Adapter { .. }`,
    /// `Request::Set(..)`, `Self::Set { .. }`, or a bare variant of the scrutinee's enum).
    fn pattern_fields(&self, path: &syn::Path, scrutinee: &Ty) -> Option<HashMap<String, Ty>> {
        let segs = segs_of(path);
        let info = match self.t.resolve_path(self.scope, &self.ctx, &segs) {
            Res::Type(k) => self.t.structs.get(&k),
            _ => {
                let variant = segs.last()?.clone();
                let enum_key = if segs.len() > 1 {
                    match self
                        .t
                        .resolve_path(self.scope, &self.ctx, &segs[..segs.len() - 1])
                    {
                        Res::Type(k) => Some(self.t.dealias(&k)),
                        _ => None,
                    }
                } else {
                    None
                };
                let enum_key = enum_key.or_else(|| match scrutinee {
                    Ty::Named(k) => Some(k.clone()),
                    _ => None,
                })?;
                self.t.variant_fields.get(&(enum_key, variant))
            }
        }?;
        Some(
            info.fields
                .iter()
                .map(|(n, ty)| (n.clone(), self.t.type_of(ty, info.scope, &Ctx::default())))
                .collect(),
        )
    }

    fn edge(&mut self, to: FnId, kind: EdgeKind, line: usize) {
        if let Some(from) = self.current {
            self.sink.edges.push(CallEdge {
                from,
                to,
                kind,
                file: self.file.clone(),
                line,
            });
        }
    }

    fn unresolved(&mut self, line: usize, what: String, reason: &str) {
        self.sink.unresolved.push(Unresolved {
            file: self.file.clone(),
            line,
            what,
            reason: reason.to_string(),
        });
    }

    /// Creates the node for a closure and walks its body.
    fn closure(&mut self, c: &ExprClosure, how: Use) -> FnId {
        let id = self.t.fns.len() + self.sink.closures.len();
        let name = format!("{{closure#{}}}", self.closure_count);
        self.closure_count += 1;
        let start = c.span().start().line;
        let end = c.body.span().end().line.max(start);
        let path = if self.base_path.is_empty() {
            name.clone()
        } else {
            format!("{}::{name}", self.base_path)
        };
        self.sink.closures.push(FnInfo {
            id,
            path,
            name,
            kind: FnKind::Closure,
            self_ty: None,
            trait_name: None,
            file: self.file.clone(),
            line: start,
            end_line: end,
            lines: end - start + 1,
            arity: c.inputs.len(),
            has_self: false,
            params: c
                .inputs
                .iter()
                .map(|p| match p {
                    Pat::Type(pt) => crate::resolve::sig_type(&pt.ty, &self.ctx),
                    _ => "_".to_string(),
                })
                .collect(),
            generics: Vec::new(),
            ret: None,
            mark: Mark::None,
            public: false,
            address_taken: false,
            parent: self.current,
        });
        match how {
            Use::Taken => self.sink.taken.push(id),
            Use::Param => self.via_param(id, start),
            Use::External => {
                self.register(id, start);
                self.edge(id, EdgeKind::PassedToExternal, start);
            }
            Use::Deferred => self.edge(id, EdgeKind::Deferred, start),
        }
        let saved = self.current.replace(id);
        let hint = self.closure_hint.take();
        for (i, p) in c.inputs.iter().enumerate() {
            let ty = match &hint {
                Some((ty, all)) if i == 0 || *all => ty.clone(),
                _ => Ty::Unknown,
            };
            self.bind(p, ty);
        }
        self.visit_expr(&c.body);
        self.current = saved;
        id
    }

    /// A function used as a value.
    fn fn_value(&mut self, fns: &[FnId], how: Use, line: usize) {
        for &f in fns {
            match how {
                Use::Taken => self.sink.taken.push(f),
                Use::Param => self.via_param(f, line),
                Use::External => {
                    self.register(f, line);
                    self.edge(f, EdgeKind::PassedToExternal, line);
                }
                Use::Deferred => self.edge(f, EdgeKind::Deferred, line),
            }
        }
    }

    /// Functions a value path names, if any (locals excluded).
    fn path_fns(&self, p: &ExprPath) -> Vec<FnId> {
        let segs = segs_of(&p.path);
        if p.qself.is_none() && segs.len() == 1 && self.env.contains_key(&segs[0]) {
            return Vec::new();
        }
        match self.resolve_expr_path(p) {
            Res::Fn(f) => vec![f],
            Res::Fns(fs, _) => fs,
            _ => Vec::new(),
        }
    }

    fn resolve_expr_path(&self, p: &ExprPath) -> Res {
        let segs = segs_of(&p.path);
        let Some(q) = &p.qself else {
            return self.t.resolve_path(self.scope, &self.ctx, &segs);
        };
        let Some(method) = segs.last() else {
            return Res::Unknown;
        };
        let ty = self.t.type_of(&q.ty, self.scope, &self.ctx);
        if q.position == 0 {
            // `<T>::m`
            let (fs, kind) = self.t.method_targets(&ty, method, usize::MAX);
            return Res::Fns(
                fs,
                if kind == EdgeKind::MethodTyped {
                    EdgeKind::Direct
                } else {
                    kind
                },
            );
        }
        // `<T as Trait>::m`
        let trait_segs = &segs[..q.position.min(segs.len())];
        let trait_key = match self.t.resolve_path(self.scope, &self.ctx, trait_segs) {
            Res::Trait(k) => k,
            _ => trait_segs.last().cloned().unwrap_or_default(),
        };
        let all = self.t.dispatch(&trait_key, method);
        if let Ty::Named(k) = ty {
            let own: Vec<FnId> = self
                .t
                .assoc(&k, method)
                .into_iter()
                .filter(|f| all.contains(f))
                .collect();
            if !own.is_empty() {
                return Res::Fns(own, EdgeKind::Direct);
            }
        }
        Res::Fns(all, EdgeKind::TraitDispatch)
    }

    /// An argument of a call to `callees` (crate functions) at parameter `index`.
    fn param_arg(&mut self, e: &Expr, how: Use, callees: &[FnId], index: usize) {
        if how == Use::Taken && !callees.is_empty() {
            let value = match strip(e) {
                Expr::Closure(_) => true,
                Expr::Path(p) => !self.path_fns(p).is_empty(),
                _ => false,
            };
            if !value {
                self.sink.opaque_param_args.push((callees.to_vec(), index));
            }
            if matches!(strip(e), Expr::Closure(_)) {
                if let Some(ty) = self.fn_param_arg_ty(callees[0], index) {
                    self.closure_hint = Some((ty, false));
                }
            }
            self.param_site = Some((callees.to_vec(), index));
            self.arg(e, Use::Param);
            self.param_site = None;
        } else {
            self.arg(e, how);
        }
    }

    /// The type of the first argument a crate function's parameter `index` (`self`
    /// counted) is called with, when that parameter is an `impl Fn*(A, ..)` or a generic
    /// `F: Fn*(A, ..)`: the type a closure passed there gets for its first parameter.
    fn fn_param_arg_ty(&self, callee: FnId, index: usize) -> Option<Ty> {
        let body = self.t.bodies.iter().find(|b| b.fn_id == callee)?;
        let FnArg::Typed(pt) = body.inputs.get(index)? else {
            return None;
        };
        let mut ty: &syn::Type = &pt.ty;
        while let syn::Type::Reference(r) = ty {
            ty = &r.elem;
        }
        let args = match ty {
            syn::Type::ImplTrait(it) => it.bounds.iter().find_map(|b| match b {
                syn::TypeParamBound::Trait(t) => crate::resolve::fn_bound_args(t),
                _ => None,
            })?,
            syn::Type::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => body
                .ctx
                .fn_args
                .get(&p.path.segments[0].ident.to_string())?
                .clone(),
            _ => return None,
        };
        let first = args.first()?;
        match self.t.type_of(first, body.scope, &body.ctx) {
            Ty::Unknown => None,
            t => Some(t),
        }
    }

    /// Handles one argument of a call.
    fn arg(&mut self, e: &Expr, how: Use) {
        match strip(e) {
            Expr::Closure(c) => {
                self.closure(c, how);
            }
            Expr::Path(p) => {
                self.closure_hint = None;
                let fns = self.path_fns(p);
                if fns.is_empty() {
                    self.visit_expr(e);
                } else {
                    self.fn_value(&fns, how, p.span().start().line);
                }
            }
            _ => self.visit_expr(e),
        }
    }

    /// Among several crate methods named `name` for a receiver of unknown type, the one
    /// whose `Self` type the caller's own struct names in its fields (`desc:
    /// CoherentArray<TxDesc>` in `TxQueue::reclaim` picks `TxDesc::is_done` over
    /// `RxDesc::is_done`): the receiver most likely comes out of that field. `None` unless
    /// exactly one candidate is named there (and never for names common outside the crate).
    fn hinted_by_fields(&self, all: &[FnId], name: &str) -> Option<FnId> {
        use quote::ToTokens;
        if all.len() < 2 || crate::resolve::COMMON_METHOD_NAMES.contains(&name) {
            return None;
        }
        let owner = self.owner.and_then(|o| self.t.fns.get(o))?;
        let self_ty = owner.self_ty.as_deref()?;
        let suffix = format!("::{self_ty}");
        let words: std::collections::HashSet<String> = self
            .t
            .structs
            .iter()
            .filter(|(k, _)| k.as_str() == self_ty || k.ends_with(&suffix))
            .flat_map(|(_, s)| s.fields.values())
            .flat_map(|ty| {
                ty.to_token_stream()
                    .to_string()
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .filter(|w| !w.is_empty())
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        let hits: Vec<FnId> = all
            .iter()
            .copied()
            .filter(|f| {
                self.t.fns[*f]
                    .self_ty
                    .as_deref()
                    .is_some_and(|t| t != self_ty && words.contains(t))
            })
            .collect();
        match hits.as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// Edges to resolved call targets; `#[upcall(deferred)]` targets get deferral edges.
    fn call_edges(&mut self, targets: &[FnId], kind: EdgeKind, line: usize) {
        for &f in targets {
            let k = if self.t.fns[f].mark == Mark::UpcallDeferred {
                EdgeKind::Deferred
            } else {
                kind
            };
            self.edge(f, k, line);
        }
    }

    fn infer(&self, e: &Expr) -> Ty {
        match e {
            Expr::Paren(p) => self.infer(&p.expr),
            Expr::Group(g) => self.infer(&g.expr),
            Expr::Reference(r) => self.infer(&r.expr),
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => {
                let inner = self.infer(&u.expr);
                match (&inner, &self.ctx.self_key, &self.ctx.self_deref) {
                    (Ty::Named(k), Some(sk), Some(target)) if k == sk => target.clone(),
                    _ => inner,
                }
            }
            Expr::Cast(c) => self.t.type_of(&c.ty, self.scope, &self.ctx),
            Expr::Path(p) => {
                let segs = segs_of(&p.path);
                if segs.len() == 1 {
                    if let Some(ty) = self.env.get(&segs[0]) {
                        return ty.clone();
                    }
                    // A static or const of the function's body or of its module: its
                    // declared type.
                    let mut scope = Some(self.scope);
                    while let Some(s) = scope {
                        if let Some(ty) = self.t.value_types.get(&(s, segs[0].clone())) {
                            return self.t.type_of(ty, s, &Ctx::default());
                        }
                        scope = self.t.scopes[s]
                            .is_fn
                            .then(|| self.t.scopes[s].parent)
                            .flatten();
                    }
                }
                match self.resolve_expr_path(p) {
                    Res::Fn(_) | Res::Fns(..) => Ty::Callable(None),
                    // a unit struct used as a value
                    Res::Type(k) => Ty::Named(k),
                    _ => Ty::Unknown,
                }
            }
            Expr::Try(t) => match self.infer(&t.expr) {
                Ty::Holder(name, inner) if name == "Option" || name == "Result" => *inner,
                other => other,
            },
            Expr::Index(i) => match deref_guard(self.infer(&i.expr)) {
                Ty::Holder(name, inner) if name == "slice" => *inner,
                _ => Ty::Unknown,
            },
            Expr::Tuple(t) => Ty::Tuple(t.elems.iter().map(|e| self.infer(e)).collect()),
            Expr::Field(f) => {
                let base = deref_guard(self.infer(&f.base));
                if let (Ty::Tuple(elems), Member::Unnamed(i)) = (&base, &f.member) {
                    return elems.get(i.index as usize).cloned().unwrap_or(Ty::Unknown);
                }
                let Ty::Named(key) = base else {
                    return Ty::Unknown;
                };
                let Some(st) = self.t.structs.get(&key) else {
                    return Ty::Unknown;
                };
                let member = match &f.member {
                    Member::Named(i) => i.to_string(),
                    Member::Unnamed(i) => i.index.to_string(),
                };
                match st.fields.get(&member) {
                    Some(ty) => self.t.type_of(ty, st.scope, &Ctx::default()),
                    None => Ty::Unknown,
                }
            }
            Expr::Struct(s) => match self
                .t
                .resolve_path(self.scope, &self.ctx, &segs_of(&s.path))
            {
                Res::Type(k) => Ty::Named(k),
                _ => Ty::Unknown,
            },
            Expr::Call(c) => match strip(&c.func) {
                Expr::Path(p) => match self.resolve_expr_path(p) {
                    Res::Fn(f) => self.t.ret_ty(f),
                    Res::Fns(fs, _) if fs.len() == 1 => self.t.ret_ty(fs[0]),
                    Res::Type(k) => Ty::Named(k),
                    _ => Ty::Unknown,
                },
                _ => Ty::Unknown,
            },
            Expr::MethodCall(m) => {
                let recv = self.infer(&m.receiver);
                let method = m.method.to_string();
                if let Some(ty) = holder_method(&recv, &method) {
                    return ty;
                }
                if matches!(method.as_str(), "clone" | "to_owned") && m.args.is_empty() {
                    // A guard derefs to its element, which is what gets cloned.
                    return deref_guard(recv);
                }
                let (fs, _) = self
                    .t
                    .method_targets(&recv, &m.method.to_string(), m.args.len() + 1);
                if fs.len() == 1 {
                    self.t.ret_ty(fs[0])
                } else {
                    Ty::Unknown
                }
            }
            _ => Ty::Unknown,
        }
    }
}

impl Walker<'_> {
    /// `From::from` impls of the crate for the error type of the function being walked
    /// (`fn f() -> Result<T, E>`): what its `?` calls to convert an error.
    fn try_conversions(&self) -> Vec<FnId> {
        let Some(ret) = self.owner.and_then(|o| self.t.ret_types.get(&o)) else {
            return Vec::new();
        };
        let syn::Type::Path(p) = &ret.ty else {
            return Vec::new();
        };
        let Some(last) = p.path.segments.last() else {
            return Vec::new();
        };
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return Vec::new();
        };
        let types: Vec<&syn::Type> = args
            .args
            .iter()
            .filter_map(|a| match a {
                syn::GenericArgument::Type(t) => Some(t),
                _ => None,
            })
            .collect();
        let [_, err] = types.as_slice() else {
            return Vec::new();
        };
        match self.t.type_of(err, ret.scope, &ret.ctx) {
            Ty::Named(k) => self
                .t
                .assoc(&k, "from")
                .into_iter()
                .filter(|f| self.t.fns[*f].trait_name.as_deref() == Some("From"))
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl<'ast> Visit<'ast> for Walker<'_> {
    fn visit_expr_try(&mut self, t: &'ast syn::ExprTry) {
        self.visit_expr(&t.expr);
        if self.current == self.owner {
            let line = t.question_token.span.start().line;
            // Which impl runs depends on the operand's error type, which the syntax does
            // not give: only an error type with a single `From` impl gets the edge.
            let targets = self.try_conversions();
            if targets.len() == 1 {
                self.call_edges(&targets, EdgeKind::Inserted, line);
            }
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {
        // Nested items are functions of their own, collected separately.
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        let mut ty = Ty::Unknown;
        if let Some(init) = &local.init {
            match strip(&init.expr) {
                Expr::Closure(c) => {
                    let id = self.closure(c, Use::Taken);
                    ty = Ty::Closure(id);
                }
                _ => {
                    ty = self.infer(&init.expr);
                    self.visit_expr(&init.expr);
                }
            }
            if let Some((_, diverge)) = &init.diverge {
                self.visit_expr(diverge);
            }
        }
        self.bind(&local.pat, ty);
    }

    fn visit_expr_for_loop(&mut self, f: &'ast syn::ExprForLoop) {
        self.visit_expr(&f.expr);
        let elem = match deref_guard(self.infer(&f.expr)) {
            Ty::Holder(name, inner) if name == "slice" => *inner,
            _ => Ty::Unknown,
        };
        self.bind(&f.pat, elem);
        self.visit_block(&f.body);
    }

    fn visit_expr_let(&mut self, l: &'ast syn::ExprLet) {
        self.visit_expr(&l.expr);
        let ty = deref_guard(self.infer(&l.expr));
        self.bind(&l.pat, ty);
    }

    fn visit_expr_match(&mut self, m: &'ast syn::ExprMatch) {
        self.visit_expr(&m.expr);
        let ty = deref_guard(self.infer(&m.expr));
        for arm in &m.arms {
            self.bind(&arm.pat, ty.clone());
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
            }
            self.visit_expr(&arm.body);
        }
    }

    fn visit_expr_closure(&mut self, c: &'ast ExprClosure) {
        self.closure(c, Use::Taken);
    }

    fn visit_expr_path(&mut self, p: &'ast ExprPath) {
        if p.qself.is_none() && p.path.segments.len() == 1 {
            self.escape(&p.path.segments[0].ident.to_string());
        }
        let fns = self.path_fns(p);
        if !fns.is_empty() {
            self.sink.taken.extend(fns);
        }
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        let line = call.func.span().start().line;
        let arity = call.args.len();
        let mut how = Use::Taken;
        let mut callees: Vec<FnId> = Vec::new();
        let mut registrar = None;
        match strip(&call.func) {
            Expr::Path(p) => {
                let segs = segs_of(&p.path);
                let last = segs.last().cloned().unwrap_or_default();
                let local = p.qself.is_none() && segs.len() == 1 && self.env.contains_key(&last);
                if local {
                    if self.current != self.owner {
                        // Called from a closure, which may itself be stored.
                        self.escape(&last);
                    }
                    match self.env.get(&last) {
                        Some(Ty::Closure(id)) => {
                            let id = *id;
                            self.edge(id, EdgeKind::LocalClosure, line);
                        }
                        Some(Ty::Callable(sig)) => {
                            let sig = sig.clone();
                            self.indirect(arity, sig, line);
                            self.mark_param_site(&last);
                        }
                        _ => {
                            self.indirect(arity, None, line);
                            self.mark_param_site(&last);
                        }
                    }
                } else if is_deferral_name(&last) {
                    how = Use::Deferred;
                } else {
                    match self.resolve_expr_path(p) {
                        Res::Fn(f) => {
                            self.call_edges(&[f], EdgeKind::Direct, line);
                            callees = vec![f];
                        }
                        Res::Fns(fs, kind) if !fs.is_empty() => {
                            self.call_edges(&fs, kind, line);
                            callees = fs;
                        }
                        Res::Fns(..) => {
                            self.unresolved(
                                line,
                                format!("call {}", segs.join("::")),
                                "trait or associated function with no implementation in the crate; no edge",
                            );
                        }
                        Res::Value => self.indirect(arity, None, line),
                        Res::Unknown if segs.len() == 1 => {
                            let fallback =
                                self.t.free_by_name.get(&last).cloned().unwrap_or_default();
                            let reason = if fallback.is_empty() {
                                "unknown name (a prelude or macro-generated function?); no edge"
                            } else {
                                "unknown name; edges to every free function of that name"
                            };
                            self.unresolved(line, format!("call {last}"), reason);
                            self.call_edges(&fallback, EdgeKind::NameFallback, line);
                        }
                        Res::Unknown => {
                            self.unresolved(
                                line,
                                format!("call {}", segs.join("::")),
                                "path into the crate that names no function; no edge",
                            );
                        }
                        _ => {
                            // Outside the crate (or a constructor). Constructors and
                            // `new`-like functions store their argument: it escapes.
                            let ctor = last.chars().next().is_some_and(char::is_uppercase)
                                || matches!(last.as_str(), "new" | "pin" | "from" | "new_uninit");
                            how = if ctor { Use::Taken } else { Use::External };
                            registrar = Some(last.clone());
                        }
                    }
                }
            }
            other => {
                self.visit_expr(other);
                let sig = match self.infer(other) {
                    Ty::Callable(sig) => sig,
                    _ => None,
                };
                self.indirect(arity, sig, line);
            }
        }
        self.registrar = registrar;
        for (i, a) in call.args.iter().enumerate() {
            self.param_arg(a, how, &callees, i);
        }
        self.registrar = None;
    }

    fn visit_expr_method_call(&mut self, mc: &'ast syn::ExprMethodCall) {
        self.visit_expr(&mc.receiver);
        let name = mc.method.to_string();
        let line = mc.method.span().start().line;
        if is_deferral_name(&name) {
            for a in &mc.args {
                self.arg(a, Use::Deferred);
            }
            return;
        }
        let recv = self.infer(&mc.receiver);
        let (mut targets, kind) = self.t.method_targets(&recv, &name, mc.args.len() + 1);
        if self.ctx.self_deref.is_some()
            && matches!(strip(&mc.receiver), Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)))
        {
            // `(**self).m()` in `impl Tr for Box<dyn Tr>`: the boxed value's impls, not
            // this forwarding impl.
            targets.retain(|t| Some(*t) != self.owner);
        }
        if kind == EdgeKind::MethodByName && targets.is_empty() {
            let all = self.t.by_name(&name, Some(mc.args.len() + 1));
            if let Some(hinted) = self.hinted_by_fields(&all, &name) {
                targets = vec![hinted];
            } else if !all.is_empty() {
                let names: Vec<&str> = all.iter().map(|f| self.t.fns[*f].path.as_str()).collect();
                let reason = format!(
                    "receiver type unknown; {} crate method(s) of that name ({}){}: no edge \
                     (state the receiver's type, or run the semantic analysis)",
                    all.len(),
                    names.join(", "),
                    if all.len() == 1 {
                        ", a name common outside the crate"
                    } else {
                        ""
                    }
                );
                self.unresolved(line, format!("method call .{name}()"), &reason);
            }
        }
        self.call_edges(&targets, kind, line);
        let how = if targets.is_empty() {
            Use::External
        } else {
            Use::Taken
        };
        let hint = element_hint(&recv, &name);
        self.registrar = targets.is_empty().then(|| name.clone());
        for (i, a) in mc.args.iter().enumerate() {
            self.closure_hint = hint.clone();
            self.param_arg(a, how, &targets, i + 1);
        }
        self.registrar = None;
        self.closure_hint = None;
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        let name = m
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        if INERT_MACROS.contains(&name.as_str()) {
            return;
        }
        let line = m.path.span().start().line;
        if MATCHES_MACROS.contains(&name.as_str()) {
            if let Ok(exprs) = m.parse_body_with(parse_matches) {
                for e in &exprs {
                    self.visit_expr(e);
                }
                return;
            }
        }
        let parsed = m.parse_body_with(Punctuated::<Expr, Token![,]>::parse_terminated);
        match parsed {
            Ok(args) => {
                let how = if is_deferral_name(&name) {
                    Use::Deferred
                } else {
                    Use::External
                };
                for a in &args {
                    if how == Use::Deferred {
                        self.arg(a, how);
                    } else {
                        self.visit_expr(a);
                    }
                }
            }
            Err(_) => {
                // `vec![x; n]` and friends.
                let semi = m.parse_body_with(|input: syn::parse::ParseStream| {
                    let a: Expr = input.parse()?;
                    let _: Token![;] = input.parse()?;
                    let b: Expr = input.parse()?;
                    Ok((a, b))
                });
                match semi {
                    Ok((a, b)) => {
                        self.visit_expr(&a);
                        self.visit_expr(&b);
                    }
                    Err(_) => self.unresolved(
                        line,
                        format!("{name}!(..)"),
                        "macro arguments are not expressions; calls inside are not seen",
                    ),
                }
            }
        }
    }
}

impl Walker<'_> {
    fn indirect(&mut self, arity: usize, sig: Option<Vec<String>>, line: usize) {
        if let Some(from) = self.current {
            self.sink.indirect.push(IndirectSite {
                from,
                arity,
                sig: sig.filter(|s| s.len() == arity),
                file: self.file.clone(),
                line,
                param: None,
            });
        }
    }

    /// The indirect site just recorded calls `name`: when that is a parameter of the
    /// function being walked (and the call is in its own body), note which one.
    fn mark_param_site(&mut self, name: &str) {
        if self.current != self.owner {
            return;
        }
        let Some(&index) = self.params.get(name) else {
            return;
        };
        // Only a generic (`F: FnOnce(..)`) or `impl Fn` parameter: it is monomorphised
        // per call site, so its values are exactly what the call sites pass. A fn pointer
        // or `dyn Fn` parameter may carry any address-taken function: it keeps the fan-out.
        let Some(owner) = self.owner.and_then(|o| self.t.fns.get(o)) else {
            return;
        };
        let declared = if owner.has_self {
            index.checked_sub(1).and_then(|i| owner.params.get(i))
        } else {
            owner.params.get(index)
        };
        let Some(declared) = declared else {
            return;
        };
        let ty = declared
            .trim_start_matches(['&', ' '])
            .trim_start_matches("mut ");
        let monomorphic = ty.starts_with("impl ") || owner.generics.iter().any(|g| g == ty.trim());
        if !monomorphic {
            return;
        }
        if let Some(site) = self.sink.indirect.last_mut() {
            site.param = Some(index);
        }
    }
}
