//! The analysis results: functions, call edges, and what could not be resolved.

use serde::Serialize;

/// Index of a function in [`crate::CallGraph::fns`] (and its node index in the graph).
pub type FnId = usize;

/// What kind of function a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FnKind {
    /// A free function (including one nested in another function's body).
    Free,
    /// A method in an inherent `impl Type`.
    Inherent,
    /// A method in an `impl Trait for Type`.
    TraitImpl,
    /// A trait's default method body.
    TraitDefault,
    /// A closure; its parent is the function it is written in.
    Closure,
}

/// The splitting annotation on a function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mark {
    /// No annotation.
    None,
    /// `#[critical]`: stays in the kernel half; must be reached from a root.
    Critical,
    /// `#[critical(root)]`: an entry point of the kernel half.
    CriticalRoot,
    /// `#[upcall]`: runs in the user half.
    Upcall,
    /// `#[upcall(deferred)]`: runs in the user half; calling it posts a deferred upcall.
    UpcallDeferred,
}

impl Mark {
    /// True for both `#[upcall]` forms.
    pub fn is_upcall(self) -> bool {
        matches!(self, Mark::Upcall | Mark::UpcallDeferred)
    }
    /// True for both `#[critical]` forms.
    pub fn is_critical(self) -> bool {
        matches!(self, Mark::Critical | Mark::CriticalRoot)
    }
}

/// One function (or closure) of the crate.
#[derive(Debug, Clone, Serialize)]
pub struct FnInfo {
    /// Its index.
    pub id: FnId,
    /// Its path from the crate root without `crate::`: `module::f`, `module::Type::m`,
    /// `module::<Type as Trait>::m`, `module::Trait::m` (default body),
    /// `module::f::{closure#0}`.
    pub path: String,
    /// The bare name (`{closure#0}` for closures).
    pub name: String,
    /// Its kind.
    pub kind: FnKind,
    /// The `Self` type of a method (last path segment).
    pub self_ty: Option<String>,
    /// The trait of a trait-impl method or default body (last path segment).
    pub trait_name: Option<String>,
    /// Source file.
    pub file: String,
    /// First line (the `fn` keyword, or the closure's `|`).
    pub line: usize,
    /// Last line (closing brace).
    pub end_line: usize,
    /// Lines of code counted for it: its span minus the spans of closures written in it.
    pub lines: usize,
    /// Number of parameters, `self` included.
    pub arity: usize,
    /// Whether it takes `self`.
    pub has_self: bool,
    /// Parameter types as written (without `self`).
    pub params: Vec<String>,
    /// Generic type parameters (their types match anything in signature matching).
    pub generics: Vec<String>,
    /// Return type as written (`None` for `()`).
    pub ret: Option<String>,
    /// Its annotation.
    pub mark: Mark,
    /// Declared `pub` (or a trait impl method): callable from outside the analysed
    /// library target (its binaries, tests, other crates). Module privacy is ignored.
    pub public: bool,
    /// Whether its address is taken (or it is coerced to a function pointer / `dyn Fn`),
    /// so that indirect calls of the same arity may reach it.
    pub address_taken: bool,
    /// For closures: the function it is written in.
    pub parent: Option<FnId>,
}

impl FnInfo {
    /// `file:line` for diagnostics.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// How a call edge was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A call by path (`f()`, `m::f()`, `Type::f()`, `Self::f()`).
    Direct,
    /// A method call whose receiver type the source states.
    MethodTyped,
    /// A method call on a receiver of unknown type: to every method of that name.
    MethodByName,
    /// A call of a trait method (trait object, generic bound, `Trait::m`): to every impl.
    TraitDispatch,
    /// A call through a function pointer, `dyn Fn`, closure variable or field: to every
    /// address-taken function (or closure) of the same arity.
    Indirect,
    /// A function or closure handed to code outside the crate (`iter.map(f)`), which
    /// calls it on the caller's behalf.
    PassedToExternal,
    /// A call of a closure bound to a local variable.
    LocalClosure,
    /// A closure or function passed straight to a parameter of a crate function that only
    /// calls that parameter (never stores it or passes it on): called during that call, on
    /// the caller's behalf (the edge is from the caller).
    ViaParameter,
    /// A call by a path that could not be resolved, to every free function of that name.
    NameFallback,
    /// A call the compiler inserts: `?` converting the error through the crate's
    /// `From` impl for the function's error type; with the semantic analysis also an
    /// operator or `Index`/`IndexMut` through its trait impl, `Deref`/`DerefMut` on
    /// autoderef, and `Drop` of a local whose type (or a field of it) implements `Drop`.
    Inserted,
    /// A deferral: the caller posts a deferred upcall; not a call edge into the critical
    /// set.
    Deferred,
}

impl EdgeKind {
    /// Whether criticality propagates along the edge.
    pub fn propagates(self) -> bool {
        self != EdgeKind::Deferred
    }
}

/// One call edge (the first call site found for that caller, callee and kind).
#[derive(Debug, Clone, Serialize)]
pub struct CallEdge {
    /// Caller.
    pub from: FnId,
    /// Callee.
    pub to: FnId,
    /// How it was found.
    pub kind: EdgeKind,
    /// File of the call site.
    pub file: String,
    /// Line of the call site.
    pub line: usize,
}

/// A `#[cfg]`-gated item, and whether the analysis kept it.
#[derive(Debug, Clone, Serialize)]
pub struct CfgNote {
    /// File.
    pub file: String,
    /// Line.
    pub line: usize,
    /// The item.
    pub item: String,
    /// The predicate(s).
    pub predicate: String,
    /// Whether the item was analysed.
    pub included: bool,
}

/// A function or closure passed as a value to a function outside the crate (a
/// registration such as `request_irq(n, handler)`).
#[derive(Debug, Clone, Serialize)]
pub struct Registration {
    /// The function or closure passed.
    pub value: FnId,
    /// The last segment of the function (or the method) it was passed to.
    pub with: String,
    /// File of the call.
    pub file: String,
    /// Line of the call.
    pub line: usize,
}

/// Something the analysis could not resolve.
#[derive(Debug, Clone, Serialize)]
pub struct Unresolved {
    /// File.
    pub file: String,
    /// Line.
    pub line: usize,
    /// The construct.
    pub what: String,
    /// Why, and what the analysis did instead.
    pub reason: String,
}

/// Which analysis built the call graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum Analysis {
    /// rust-analyzer's semantic model (name, type, method and trait resolution, macro
    /// expansion, compiler-inserted calls); the syntax pass supplies the function
    /// identities and the indirect-call, closure and deferral edges.
    Semantic,
    /// The syntax pass alone.
    Syntax {
        /// Why the semantic model did not run.
        reason: String,
    },
}

impl std::fmt::Display for Analysis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Analysis::Semantic => write!(f, "semantic"),
            Analysis::Syntax { reason } => write!(f, "syntax ({reason})"),
        }
    }
}
