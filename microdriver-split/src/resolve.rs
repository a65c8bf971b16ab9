//! Name and type resolution over the item tables: paths (with `use`, globs, `crate`,
//! `self`, `super`, `Self`), types (to keys), and method targets.

use quote::ToTokens;
use syn::{GenericArgument, PathArguments, Type, TypeParamBound};

use crate::model::{EdgeKind, FnId};
use crate::tables::{Ctx, ScopeId, Tables};

/// What a path resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Res {
    /// A module or function-body scope.
    Scope(ScopeId),
    /// A free function.
    Fn(FnId),
    /// A type, by key.
    Type(String),
    /// A trait, by key.
    Trait(String),
    /// A generic parameter (or `Self` in a trait) with its trait bounds.
    Generic(Vec<String>),
    /// Associated functions / trait methods, and how they were found.
    Fns(Vec<FnId>, EdgeKind),
    /// A const or static.
    Value,
    /// An enum variant or other constructor.
    Ctor,
    /// Something outside the crate.
    External,
    /// Nothing found.
    Unknown,
}

/// A type, as far as the analysis needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// A named type (crate types by path key, others by last segment).
    Named(String),
    /// A trait object.
    Dyn(Vec<String>),
    /// A generic parameter or `impl Trait`, with bounds.
    Generic(Vec<String>),
    /// A function pointer or `Fn*` object, with its parameter types when written
    /// (normalised; `_` for a type involving generics or inference).
    Callable(Option<Vec<String>>),
    /// A closure of the crate.
    Closure(FnId),
    /// A standard container or lock of one element type: `Option`, `Result`, `Vec`,
    /// `VecDeque`, slices and arrays (`slice`), `Mutex`, `RwLock`, `RefCell`, `Cell`,
    /// `ComboLock`, and `Guard` (a lock guard, which dereferences to its element).
    Holder(String, Box<Ty>),
    /// A tuple.
    Tuple(Vec<Ty>),
    /// Not known.
    Unknown,
}

const MAX_DEPTH: usize = 12;

/// A parameter type for signature matching: normalised (no paths, lifetimes or spaces),
/// or `_` when it involves a generic parameter, `Self`, `impl` or `_`.
pub fn sig_type(ty: &Type, ctx: &Ctx) -> String {
    let text = ty.to_token_stream().to_string();
    // Lifetimes (`'_`, `'a`) say nothing about the type: `'_` is not the `_` placeholder.
    let mut no_lifetimes = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\'' {
            while chars
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                chars.next();
            }
            continue;
        }
        no_lifetimes.push(c);
    }
    let generic = no_lifetimes
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .any(|w| w == "_" || w == "Self" || w == "impl" || ctx.generics.contains_key(w));
    if generic {
        "_".to_string()
    } else {
        crate::template::normalise_type(&text)
    }
}

/// Names from the standard prelude (never crate functions unless the crate defines them).
const PRELUDE: &[&str] = &[
    "Some",
    "None",
    "Ok",
    "Err",
    "Box",
    "Vec",
    "String",
    "Option",
    "Result",
    "drop",
    "Default",
    "Clone",
    "Copy",
    "Send",
    "Sync",
    "Sized",
    "Iterator",
    "IntoIterator",
    "From",
    "Into",
    "ToString",
    "ToOwned",
    "PartialEq",
    "Eq",
    "PartialOrd",
    "Ord",
    "AsRef",
    "AsMut",
    "Drop",
    "Fn",
    "FnMut",
    "FnOnce",
    "Extend",
    "TryFrom",
    "TryInto",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
    "f32",
    "f64",
    "bool",
    "char",
    "str",
    "std",
    "core",
    "alloc",
    "panic",
    "assert",
    "debug_assert",
];

/// The synthetic name of a lock guard holder.
pub const GUARD: &str = "Guard";

/// Holder names for standard containers, locks and guards.
pub fn holder_name(name: &str) -> Option<&'static str> {
    Some(match name {
        "Option" => "Option",
        "Result" | "LockResult" => "Result",
        "Vec" | "VecDeque" | "SmallVec" | "ArrayVec" => "slice",
        "Mutex" | "RwLock" | "RefCell" | "Cell" | "ComboLock" | "SpinLock" | "OnceCell"
        | "OnceLock" => "lock",
        "MutexGuard" | "RwLockReadGuard" | "RwLockWriteGuard" | "Ref" | "RefMut" | "ComboGuard" => {
            GUARD
        }
        _ => return None,
    })
}

/// The type of `recv.method()` for methods of standard holders that yield their element
/// (or keep the holder); `None` when the method is not one of those.
pub fn holder_method(recv: &Ty, method: &str) -> Option<Ty> {
    let Ty::Holder(name, inner) = recv else {
        return None;
    };
    let inner = (**inner).clone();
    let same = || Some(recv.clone());
    match (name.as_str(), method) {
        (
            "Option" | "Result",
            "unwrap" | "expect" | "unwrap_or" | "unwrap_or_default" | "unwrap_or_else"
            | "unwrap_unchecked",
        ) => Some(inner),
        (
            "Option" | "Result",
            "as_ref" | "as_mut" | "as_deref" | "as_deref_mut" | "take" | "cloned" | "copied"
            | "clone",
        ) => same(),
        (
            "slice",
            "iter" | "iter_mut" | "into_iter" | "drain" | "clone" | "filter" | "skip" | "take"
            | "rev" | "cloned" | "copied" | "peekable" | "skip_while" | "take_while" | "step_by"
            | "by_ref" | "values" | "values_mut",
        ) => same(),
        ("slice", "enumerate") => Some(Ty::Holder(
            "slice".into(),
            Box::new(Ty::Tuple(vec![Ty::Named("usize".into()), inner])),
        )),
        ("slice", "find" | "next" | "nth" | "max_by_key" | "min_by_key" | "max_by" | "min_by") => {
            Some(Ty::Holder("Option".into(), Box::new(inner)))
        }
        (
            "slice",
            "first" | "last" | "get" | "get_mut" | "first_mut" | "last_mut" | "pop" | "pop_front"
            | "pop_back" | "front" | "back" | "front_mut" | "back_mut",
        ) => Some(Ty::Holder("Option".into(), Box::new(inner))),
        (
            "lock",
            "lock" | "read" | "write" | "borrow" | "borrow_mut" | "try_lock" | "try_borrow"
            | "try_borrow_mut",
        ) => Some(Ty::Holder(GUARD.into(), Box::new(inner))),
        // `spin`'s locks: `Option` of a guard (std's: a `Result`; `Ok(g)` binds it alike).
        ("lock", "try_read" | "try_write") => Some(Ty::Holder(
            "Option".into(),
            Box::new(Ty::Holder(GUARD.into(), Box::new(inner))),
        )),
        // `conquer_once`'s `OnceCell::try_get`: a `Result` of the value.
        ("lock", "try_get") => Some(Ty::Holder("Result".into(), Box::new(inner))),
        ("lock", "get_mut" | "into_inner" | "get") => Some(inner),
        (GUARD, "unwrap" | "expect") => same(),
        _ => None,
    }
}

/// Strips lock guards (which dereference to their element).
pub fn deref_guard(ty: Ty) -> Ty {
    match ty {
        Ty::Holder(name, inner) if name == GUARD => deref_guard(*inner),
        other => other,
    }
}

/// Wrappers that method calls see through.
const TRANSPARENT: &[&str] = &["Box", "Arc", "Rc", "Pin", "Cow", "ManuallyDrop"];

impl Tables {
    /// The nearest enclosing module (not a function body).
    pub fn module_of(&self, mut scope: ScopeId) -> ScopeId {
        while self.scopes[scope].is_fn {
            match self.scopes[scope].parent {
                Some(p) => scope = p,
                None => break,
            }
        }
        scope
    }

    /// Resolves a path written in `scope`. `segs` are the identifiers; the last one is
    /// looked up in the value namespace first.
    pub fn resolve_path(&self, scope: ScopeId, ctx: &Ctx, segs: &[String]) -> Res {
        let outer = self.query_depth.get();
        if outer == 0 && !self.frozen.get() {
            self.memo.borrow_mut().clear();
        }
        self.query_depth.set(outer + 1);
        let res = self.resolve_path_depth(scope, ctx, segs, 0);
        self.query_depth.set(outer);
        res
    }

    fn resolve_path_depth(&self, scope: ScopeId, ctx: &Ctx, segs: &[String], depth: usize) -> Res {
        let Some((first, rest)) = segs.split_first() else {
            return Res::Unknown;
        };
        if depth > MAX_DEPTH {
            return Res::Unknown;
        }
        let last = rest.is_empty();
        let mut res = match first.as_str() {
            "crate" => Res::Scope(0),
            "self" if !last => Res::Scope(self.module_of(scope)),
            "super" => {
                let m = self.module_of(scope);
                match self.scopes[m].parent {
                    Some(p) => Res::Scope(self.module_of(p)),
                    None => Res::Unknown,
                }
            }
            "Self" => match (&ctx.self_key, &ctx.self_trait) {
                (Some(k), _) => Res::Type(k.clone()),
                (None, Some(t)) => Res::Generic(vec![t.clone()]),
                _ => Res::Unknown,
            },
            name => {
                if let Some(bounds) = ctx.generics.get(name) {
                    Res::Generic(bounds.clone())
                } else if !last
                    && PRIMITIVES.contains(&name)
                    && self.type_methods.contains_key(name)
                {
                    // `u16::from_parts(..)`: a crate trait implemented for a primitive.
                    Res::Type(name.to_string())
                } else {
                    self.lookup_lexical(scope, name, last, depth)
                }
            }
        };
        if res == Res::Unknown && !rest.is_empty() {
            // `foo::bar` with an unknown `foo` is another crate's path.
            res = Res::External;
        }
        for (i, seg) in rest.iter().enumerate() {
            let last = i + 1 == rest.len();
            res = self.step(res, seg, last, depth);
        }
        res
    }

    fn lookup_lexical(&self, scope: ScopeId, name: &str, last: bool, depth: usize) -> Res {
        let mut s = Some(scope);
        while let Some(id) = s {
            if let Some(r) = self.lookup_in(id, name, last, depth) {
                return r;
            }
            s = if self.scopes[id].is_fn {
                self.scopes[id].parent
            } else {
                None
            };
        }
        if PRELUDE.contains(&name) {
            Res::External
        } else {
            Res::Unknown
        }
    }

    /// Looks `name` up in one scope (items, then `use`, then globs), memoised: imports
    /// can form cycles (`use super::*` / `pub use child::*`), and without the memo a
    /// lookup through nested globs and `use` chains is exponential. A lookup already in
    /// progress (a cycle) finds nothing.
    fn lookup_in(&self, scope: ScopeId, name: &str, last: bool, depth: usize) -> Option<Res> {
        let key = (scope, name.to_string(), last);
        if let Some(r) = self.memo.borrow().get(&key) {
            return r.clone();
        }
        self.memo.borrow_mut().insert(key.clone(), None);
        let r = self.lookup_in_uncached(scope, name, last, depth);
        self.memo.borrow_mut().insert(key, r.clone());
        r
    }

    fn lookup_in_uncached(
        &self,
        scope: ScopeId,
        name: &str,
        last: bool,
        depth: usize,
    ) -> Option<Res> {
        if depth > MAX_DEPTH {
            return None;
        }
        let sc = &self.scopes[scope];
        let value = || {
            sc.fns
                .get(name)
                .map(|f| Res::Fn(*f))
                .or_else(|| sc.values.contains(name).then_some(Res::Value))
                .or_else(|| sc.foreign.contains(name).then_some(Res::External))
        };
        let ty = || {
            sc.modules
                .get(name)
                .map(|m| Res::Scope(*m))
                .or_else(|| sc.types.get(name).map(|k| Res::Type(k.clone())))
                .or_else(|| sc.traits.get(name).map(|k| Res::Trait(k.clone())))
        };
        let found = if last {
            value().or_else(ty)
        } else {
            ty().or_else(value)
        };
        if found.is_some() {
            return found;
        }
        if let Some(path) = sc.uses.get(name) {
            // A `use` path resolves from the scope it is written in.
            let r = self.resolve_path_depth(scope, &Ctx::default(), path, depth + 1);
            if r != Res::Unknown {
                return Some(r);
            }
            return Some(Res::External);
        }
        for glob in &sc.globs {
            if let Res::Scope(g) = self.resolve_path_depth(scope, &Ctx::default(), glob, depth + 1)
            {
                if g != scope {
                    if let Some(r) = self.lookup_in(g, name, last, depth + 1) {
                        return Some(r);
                    }
                }
            } else if let Res::Type(key) =
                self.resolve_path_depth(scope, &Ctx::default(), glob, depth + 1)
            {
                // `use Enum::*`
                if self.enums.get(&key).is_some_and(|v| v.contains(name)) {
                    return Some(Res::Ctor);
                }
            }
        }
        None
    }

    fn step(&self, res: Res, seg: &str, last: bool, depth: usize) -> Res {
        match res {
            Res::Scope(id) if seg == "super" => match self.scopes[self.module_of(id)].parent {
                Some(p) => Res::Scope(self.module_of(p)),
                None => Res::Unknown,
            },
            Res::Scope(id) if seg == "self" => Res::Scope(id),
            Res::Scope(id) => self
                .lookup_in(id, seg, last, depth + 1)
                .unwrap_or(Res::Unknown),
            Res::Type(key) => {
                let key = self.dealias(&key);
                if self.enums.get(&key).is_some_and(|v| v.contains(seg)) {
                    return Res::Ctor;
                }
                let fns = self.assoc(&key, seg);
                if fns.is_empty() {
                    // Derived or external-trait methods (`Type::default`).
                    Res::External
                } else {
                    Res::Fns(fns, EdgeKind::Direct)
                }
            }
            Res::Trait(key) => Res::Fns(self.dispatch(&key, seg), EdgeKind::TraitDispatch),
            Res::Generic(bounds) => {
                let fns = self.dispatch_all(&bounds, seg);
                if fns.is_empty() {
                    Res::Fns(self.by_name(seg, None), EdgeKind::MethodByName)
                } else {
                    Res::Fns(fns, EdgeKind::TraitDispatch)
                }
            }
            Res::External => Res::External,
            _ => Res::Unknown,
        }
    }

    /// The type an alias use stands for, its generic parameters replaced by the use's
    /// arguments (`type Shared<T> = Mutex<T>;` makes `Shared<Ring>` a lock of `Ring`).
    fn expand_alias(&self, key: &str, args: &PathArguments, scope: ScopeId, ctx: &Ctx) -> Ty {
        let Some((ty, alias_scope, params)) = self.aliases.get(key) else {
            return Ty::Named(key.to_string());
        };
        let depth = self.alias_depth.get();
        if depth > MAX_DEPTH {
            return Ty::Named(key.to_string());
        }
        let given: Vec<Ty> = match args {
            PathArguments::AngleBracketed(a) => a
                .args
                .iter()
                .filter_map(|g| match g {
                    GenericArgument::Type(t) => Some(self.type_of(t, scope, ctx)),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        let inner = Ctx {
            subst: params.iter().cloned().zip(given).collect(),
            ..Ctx::default()
        };
        self.alias_depth.set(depth + 1);
        let out = match self.type_of(ty, *alias_scope, &inner) {
            Ty::Unknown => Ty::Named(key.to_string()),
            other => other,
        };
        self.alias_depth.set(depth);
        out
    }

    /// Follows type aliases.
    pub fn dealias(&self, key: &str) -> String {
        let mut key = key.to_string();
        for _ in 0..MAX_DEPTH {
            let Some((ty, scope, _)) = self.aliases.get(&key) else {
                break;
            };
            match self.type_of(ty, *scope, &Ctx::default()) {
                Ty::Named(k) if k != key => key = k,
                _ => break,
            }
        }
        key
    }

    /// Associated functions named `name` of a type: its own methods, then trait default
    /// bodies of traits it implements, plus blanket impls.
    pub fn assoc(&self, key: &str, name: &str) -> Vec<FnId> {
        let mut out: Vec<FnId> = self
            .type_methods
            .get(key)
            .into_iter()
            .flatten()
            .copied()
            .filter(|f| self.fns[*f].name == name)
            .collect();
        if out.is_empty() {
            for t in self.type_traits.get(key).into_iter().flatten() {
                if let Some(d) = self.traits.get(t).and_then(|ti| ti.defaults.get(name)) {
                    out.push(*d);
                }
            }
        }
        out.extend(
            self.blanket
                .iter()
                .copied()
                .filter(|f| self.fns[*f].name == name),
        );
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A trait method call: every impl of it, and the default body.
    pub fn dispatch(&self, trait_key: &str, name: &str) -> Vec<FnId> {
        let mut out: Vec<FnId> = self
            .trait_impls
            .get(&(trait_key.to_string(), name.to_string()))
            .cloned()
            .unwrap_or_default();
        if let Some(d) = self
            .traits
            .get(trait_key)
            .and_then(|t| t.defaults.get(name))
        {
            out.push(*d);
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn dispatch_all(&self, traits: &[String], name: &str) -> Vec<FnId> {
        let mut out: Vec<FnId> = traits.iter().flat_map(|t| self.dispatch(t, name)).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every method named `name` taking `self` (with `arity` parameters, when given).
    pub fn by_name(&self, name: &str, arity: Option<usize>) -> Vec<FnId> {
        self.methods_by_name
            .get(name)
            .into_iter()
            .flatten()
            .copied()
            .filter(|f| self.fns[*f].has_self && arity.is_none_or(|a| self.fns[*f].arity == a))
            .collect()
    }

    /// Targets of `receiver.name(..)` on a receiver of unknown type: the method of that
    /// name and arity when the crate has exactly one, and the name is not one that types
    /// outside the crate commonly have (`len`, `push`, `read`, ...); otherwise none (the
    /// caller lists the call as unresolved). Fanning out to every method of the name made
    /// one ambiguous call pull in much of a crate.
    pub fn unknown_receiver_targets(&self, name: &str, arity: usize) -> Vec<FnId> {
        if COMMON_METHOD_NAMES.contains(&name) {
            return Vec::new();
        }
        let all = self.by_name(name, Some(arity));
        if all.len() == 1 {
            all
        } else {
            Vec::new()
        }
    }

    /// The targets of `receiver.name(..)` given the receiver's type.
    pub fn method_targets(&self, recv: &Ty, method: &str, arity: usize) -> (Vec<FnId>, EdgeKind) {
        let name = method;
        match recv {
            Ty::Named(key) => {
                let key = self.dealias(key);
                (self.assoc(&key, name), EdgeKind::MethodTyped)
            }
            Ty::Dyn(traits) | Ty::Generic(traits) => {
                let fns = self.dispatch_all(traits, name);
                if fns.is_empty() && traits.iter().all(|t| !self.traits.contains_key(t)) {
                    (
                        self.unknown_receiver_targets(name, arity),
                        EdgeKind::MethodByName,
                    )
                } else {
                    (fns, EdgeKind::TraitDispatch)
                }
            }
            Ty::Callable(_) | Ty::Closure(_) | Ty::Tuple(_) => (Vec::new(), EdgeKind::MethodTyped),
            Ty::Holder(name, inner) => {
                let own = self.assoc(name, method);
                if own.is_empty() && name == GUARD {
                    self.method_targets(inner, method, arity)
                } else {
                    (own, EdgeKind::MethodTyped)
                }
            }
            Ty::Unknown => (
                self.unknown_receiver_targets(name, arity),
                EdgeKind::MethodByName,
            ),
        }
    }

    /// Interprets a type written in `scope`.
    pub fn type_of(&self, ty: &Type, scope: ScopeId, ctx: &Ctx) -> Ty {
        match ty {
            Type::Reference(r) => self.type_of(&r.elem, scope, ctx),
            Type::Paren(p) => self.type_of(&p.elem, scope, ctx),
            Type::Group(g) => self.type_of(&g.elem, scope, ctx),
            Type::Ptr(p) => self.type_of(&p.elem, scope, ctx),
            Type::Tuple(t) => Ty::Tuple(
                t.elems
                    .iter()
                    .map(|e| self.type_of(e, scope, ctx))
                    .collect(),
            ),
            Type::Slice(sl) => {
                Ty::Holder("slice".into(), Box::new(self.type_of(&sl.elem, scope, ctx)))
            }
            Type::Array(a) => {
                Ty::Holder("slice".into(), Box::new(self.type_of(&a.elem, scope, ctx)))
            }
            Type::BareFn(f) => Ty::Callable(Some(
                f.inputs.iter().map(|a| sig_type(&a.ty, ctx)).collect(),
            )),
            Type::TraitObject(t) => self.bounds_ty(&t.bounds, scope, ctx, true),
            Type::ImplTrait(t) => self.bounds_ty(&t.bounds, scope, ctx, false),
            Type::Path(p) => {
                if p.qself.is_some() {
                    return Ty::Unknown;
                }
                let Some(last) = p.path.segments.last() else {
                    return Ty::Unknown;
                };
                let name = last.ident.to_string();
                if let Some(holder) = holder_name(&name) {
                    let inner = match &last.arguments {
                        PathArguments::AngleBracketed(args) => args
                            .args
                            .iter()
                            .find_map(|a| match a {
                                GenericArgument::Type(t) => Some(self.type_of(t, scope, ctx)),
                                _ => None,
                            })
                            .unwrap_or(Ty::Unknown),
                        _ => Ty::Unknown,
                    };
                    return Ty::Holder(holder.to_string(), Box::new(inner));
                }
                if TRANSPARENT.contains(&name.as_str()) {
                    if let PathArguments::AngleBracketed(args) = &last.arguments {
                        if let Some(GenericArgument::Type(inner)) = args.args.first() {
                            return self.type_of(inner, scope, ctx);
                        }
                    }
                }
                let segs: Vec<String> = p
                    .path
                    .segments
                    .iter()
                    .map(|s| s.ident.to_string())
                    .collect();
                if segs.len() == 1 {
                    if let Some(t) = ctx.subst.get(&name) {
                        return t.clone();
                    }
                }
                match self.resolve_path(scope, ctx, &segs) {
                    Res::Type(k) if self.aliases.contains_key(&k) => {
                        self.expand_alias(&k, &last.arguments, scope, ctx)
                    }
                    Res::Type(k) => Ty::Named(self.dealias(&k)),
                    Res::Trait(k) => Ty::Dyn(vec![k]),
                    Res::Generic(b) => Ty::Generic(b),
                    _ => Ty::Named(name),
                }
            }
            _ => Ty::Unknown,
        }
    }

    fn bounds_ty<'a>(
        &self,
        bounds: impl IntoIterator<Item = &'a TypeParamBound>,
        scope: ScopeId,
        ctx: &Ctx,
        is_dyn: bool,
    ) -> Ty {
        let mut traits = Vec::new();
        for b in bounds {
            if let TypeParamBound::Trait(t) = b {
                let key = self.trait_key(&t.path, scope, ctx);
                if matches!(key.as_str(), "Fn" | "FnMut" | "FnOnce") {
                    let sig = match t.path.segments.last().map(|s| &s.arguments) {
                        Some(PathArguments::Parenthesized(p)) => {
                            Some(p.inputs.iter().map(|ty| sig_type(ty, ctx)).collect())
                        }
                        _ => None,
                    };
                    return Ty::Callable(sig);
                }
                traits.push(key);
            }
        }
        if is_dyn {
            Ty::Dyn(traits)
        } else {
            Ty::Generic(traits)
        }
    }

    /// The key of a trait path: the crate trait's key, or the last segment for others.
    pub fn trait_key(&self, path: &syn::Path, scope: ScopeId, ctx: &Ctx) -> String {
        let segs: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        match self.resolve_path(scope, ctx, &segs) {
            Res::Trait(k) => k,
            _ => segs.last().cloned().unwrap_or_default(),
        }
    }

    /// Bounds of generic parameters (from `<T: Tr>` and `where T: Tr`), added to `ctx`.
    pub fn add_generics(&self, generics: &syn::Generics, scope: ScopeId, ctx: &mut Ctx) {
        for p in generics.type_params() {
            ctx.generics.entry(p.ident.to_string()).or_default();
        }
        let snapshot = ctx.clone();
        for p in generics.type_params() {
            let mut keys = Vec::new();
            for b in &p.bounds {
                if let TypeParamBound::Trait(t) = b {
                    keys.push(self.trait_key(&t.path, scope, &snapshot));
                    if let Some(args) = fn_bound_args(t) {
                        ctx.fn_args.insert(p.ident.to_string(), args);
                    }
                }
            }
            ctx.generics
                .entry(p.ident.to_string())
                .or_default()
                .extend(keys);
        }
        if let Some(wc) = &generics.where_clause {
            for pred in &wc.predicates {
                if let syn::WherePredicate::Type(pt) = pred {
                    let name = pt.bounded_ty.to_token_stream().to_string();
                    if let Some(entry) = ctx.generics.get(&name).map(|_| ()) {
                        let () = entry;
                        for b in &pt.bounds {
                            if let TypeParamBound::Trait(t) = b {
                                if let Some(args) = fn_bound_args(t) {
                                    ctx.fn_args.insert(name.clone(), args);
                                }
                            }
                        }
                        let keys: Vec<String> = pt
                            .bounds
                            .iter()
                            .filter_map(|b| match b {
                                TypeParamBound::Trait(t) => {
                                    Some(self.trait_key(&t.path, scope, &snapshot))
                                }
                                _ => None,
                            })
                            .collect();
                        ctx.generics.entry(name).or_default().extend(keys);
                    }
                }
            }
        }
    }

    /// The type a function returns, if it names one.
    pub fn ret_ty(&self, f: FnId) -> Ty {
        match self.ret_types.get(&f) {
            Some(r) => self.type_of(&r.ty, r.scope, &r.ctx),
            None => Ty::Unknown,
        }
    }
}

/// The argument types of an `Fn(..)`/`FnMut(..)`/`FnOnce(..)` bound.
pub fn fn_bound_args(t: &syn::TraitBound) -> Option<Vec<Type>> {
    let last = t.path.segments.last()?;
    if !matches!(last.ident.to_string().as_str(), "Fn" | "FnMut" | "FnOnce") {
        return None;
    }
    match &last.arguments {
        PathArguments::Parenthesized(p) => Some(p.inputs.iter().cloned().collect()),
        _ => None,
    }
}

/// Primitive types, which crate traits may be implemented for.
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "bool", "char", "str",
];

/// Method names that std, core and common crates' types have: a call of one on a receiver
/// of unknown type is taken to leave the crate rather than to reach a crate method of the
/// same name.
pub const COMMON_METHOD_NAMES: &[&str] = &[
    "len",
    "is_empty",
    "push",
    "pop",
    "get",
    "get_mut",
    "set",
    "insert",
    "remove",
    "clear",
    "contains",
    "iter",
    "iter_mut",
    "into_iter",
    "next",
    "map",
    "and_then",
    "ok",
    "err",
    "unwrap",
    "expect",
    "as_ref",
    "as_mut",
    "as_ptr",
    "as_mut_ptr",
    "as_slice",
    "clone",
    "to_vec",
    "to_owned",
    "to_string",
    "into",
    "from",
    "try_into",
    "read",
    "write",
    "flush",
    "lock",
    "try_lock",
    "borrow",
    "borrow_mut",
    "load",
    "store",
    "swap",
    "take",
    "replace",
    "fill",
    "copy_from_slice",
    "extend",
    "drain",
    "first",
    "last",
    "split_at",
    "chunks",
    "fmt",
    "eq",
    "cmp",
    "partial_cmp",
    "hash",
    "drop",
    "deref",
    "deref_mut",
    "index",
    "index_mut",
    "add",
    "sub",
    "mul",
    "div",
    "wait",
    "wake",
    "transfer",
    "read_volatile",
    "write_volatile",
    "bytes",
    "wrapping_add",
    "modify",
    "is_set",
    "matches_all",
];
