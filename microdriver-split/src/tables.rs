//! The crate's item tables: scopes (modules and function bodies with items), functions,
//! types, traits and impls. Filled by [`crate::collect`], queried by [`crate::resolve`].

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

use crate::model::FnId;
use crate::model::FnInfo;

/// Index of a scope in [`Tables::scopes`].
pub type ScopeId = usize;

/// A module, or the body of a function that declares items.
#[derive(Debug, Default)]
pub struct Scope {
    /// Path from the crate root.
    pub path: Vec<String>,
    /// Enclosing scope.
    pub parent: Option<ScopeId>,
    /// True for a function body (lexically sees its parent's names).
    pub is_fn: bool,
    /// For a function body: the function.
    pub owner: Option<FnId>,
    /// Its file.
    pub file: String,
    /// Child modules.
    pub modules: HashMap<String, ScopeId>,
    /// Free functions.
    pub fns: HashMap<String, FnId>,
    /// Types (structs, enums, unions, aliases) to their keys.
    pub types: HashMap<String, String>,
    /// Traits to their keys.
    pub traits: HashMap<String, String>,
    /// Consts and statics (calling one is an indirect call).
    pub values: HashSet<String>,
    /// Functions declared in `extern` blocks (outside the crate).
    pub foreign: HashSet<String>,
    /// `use` imports: local name to the path as written.
    pub uses: HashMap<String, Vec<String>>,
    /// `use path::*` imports.
    pub globs: Vec<Vec<String>>,
}

/// Type-level context of a body: `Self`, and the trait bounds of generic parameters.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// Key of `Self` in an impl.
    pub self_key: Option<String>,
    /// Key of the trait, in a trait's default method.
    pub self_trait: Option<String>,
    /// Generic parameter name to trait keys of its bounds.
    pub generics: HashMap<String, Vec<String>>,
    /// Type parameters standing for known types (while expanding a generic alias).
    pub subst: HashMap<String, crate::resolve::Ty>,
    /// In an impl for a smart pointer to a trait object (`impl Tr for Box<dyn Tr>`): the
    /// type a dereferenced `self` has (`(**self).m()` dispatches on `dyn Tr`).
    pub self_deref: Option<crate::resolve::Ty>,
    /// Generic parameter name to the argument types of its `Fn*(..)` bound.
    pub fn_args: HashMap<String, Vec<syn::Type>>,
}

/// A trait of the crate.
#[derive(Debug, Default)]
pub struct TraitInfo {
    /// Default method bodies.
    pub defaults: HashMap<String, FnId>,
    /// Annotations on method declarations, inherited by impls that have none.
    pub marks: HashMap<String, crate::model::Mark>,
}

/// A struct's fields.
#[derive(Debug)]
pub struct StructInfo {
    /// Scope the struct is declared in.
    pub scope: ScopeId,
    /// Field name (or tuple index) to type.
    pub fields: HashMap<String, syn::Type>,
}

/// A function body waiting to be walked.
#[derive(Debug)]
pub struct Body {
    /// The function.
    pub fn_id: FnId,
    /// Scope its names resolve in.
    pub scope: ScopeId,
    /// `Self` and generics.
    pub ctx: Ctx,
    /// Parameters.
    pub inputs: Vec<syn::FnArg>,
    /// The body.
    pub block: syn::Block,
}

/// The return type of a function, with what is needed to interpret it.
#[derive(Debug)]
pub struct RetTy {
    /// As written.
    pub ty: syn::Type,
    /// Scope it resolves in.
    pub scope: ScopeId,
    /// `Self` and generics.
    pub ctx: Ctx,
}

/// Everything the collector found.
#[derive(Debug, Default)]
pub struct Tables {
    /// Scopes; the loader's modules first, with the same indices.
    pub scopes: Vec<Scope>,
    /// Functions (closures are added while walking bodies).
    pub fns: Vec<FnInfo>,
    /// Return types, by function.
    pub ret_types: HashMap<FnId, RetTy>,
    /// Traits by key.
    pub traits: HashMap<String, TraitInfo>,
    /// Structs by key.
    pub structs: HashMap<String, StructInfo>,
    /// Enum variants by enum key.
    pub enums: HashMap<String, HashSet<String>>,
    /// Fields of enum variants, by (enum key, variant).
    pub variant_fields: HashMap<(String, String), StructInfo>,
    /// Type aliases by key.
    pub aliases: HashMap<String, (syn::Type, ScopeId, Vec<String>)>,
    /// Methods (inherent and trait impls) by `Self` type key.
    pub type_methods: HashMap<String, Vec<FnId>>,
    /// Traits implemented, by type key.
    pub type_traits: HashMap<String, Vec<String>>,
    /// Impl methods by (trait key, method name).
    pub trait_impls: HashMap<(String, String), Vec<FnId>>,
    /// Methods of blanket impls (`impl<T> Trait for T`).
    pub blanket: Vec<FnId>,
    /// Every method (with `self`), by name.
    pub methods_by_name: HashMap<String, Vec<FnId>>,
    /// Every free function, by name.
    pub free_by_name: HashMap<String, Vec<FnId>>,
    /// Bodies to walk.
    pub bodies: Vec<Body>,
    /// Declared types of consts and statics, by (scope, name).
    pub value_types: HashMap<(ScopeId, String), syn::Type>,
    /// Initialisers of consts and statics (scanned for functions whose address is taken).
    /// (scope, path of the const/static, initialiser).
    pub inits: Vec<(ScopeId, String, syn::Expr)>,
    /// Memoised scope lookups: per query while the tables are being filled, for the
    /// whole analysis once they are frozen.
    pub memo: RefCell<HashMap<(ScopeId, String, bool), Option<crate::resolve::Res>>>,
    /// Nesting of alias expansions (alias cycles stop at a bound).
    pub alias_depth: Cell<usize>,
    /// Nesting of resolution queries (the memo is cleared at the outermost until frozen).
    pub query_depth: Cell<usize>,
    /// Set once collection is complete: the tables no longer change.
    pub frozen: Cell<bool>,
}
