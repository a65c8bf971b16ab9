//! `apply`: refactors an unannotated driver crate into a split one (issue 19, section 3).
//!
//! From a split (the propagation split, or `cut`'s minimum cut) it decides:
//! - `#[critical]` on the kernel half's entry points (the template's roots) and on its
//!   *services*, the downcall targets: public free functions outside the critical set that
//!   take the device handle (a parameter type at least two entry roots take, e.g. `DevId`)
//!   and call straight into the critical set. They are where the user half reaches the
//!   device, so they run in the kernel half with what they reach. Other critical functions
//!   the user half calls (pure helpers: constructors, conversions) are linked into both
//!   halves and run in their caller's half: they get no stub.
//! - `#[upcall]` on the user half's entry points: public free functions outside the kernel
//!   half that the kernel side calls, i.e. the critical set, the crate's *host* code (the
//!   files that spawn the threads that call the entry roots: the operating system's part of
//!   the crate), or nothing in the crate at all (they are called from outside).
//!   `#[upcall(deferred)]` when the only kernel-half call sites ignore the result.
//! - a `microdriver-split.toml` with the template (and a comment listing the roots found).
//! - a **prompt** for every field of a type that crosses the cut (a parameter or result of
//!   an annotated function, and what its fields hold) and cannot cross as it is: raw
//!   pointers, references, trait objects, shared-state handles, types not known to
//!   implement `Marshal`. Each prompt is written on the field as
//!   `#[marshal(prompt = "...")]`, which the derive refuses until it is replaced by the
//!   answer; `--accept-guesses` writes the guesses it is sure of instead.
//!
//! Edits are insertions of whole lines before a function or field (indented like it):
//! the rest of the file, comments and formatting included, is left as it is. Functions that
//! cannot carry an annotation (methods, generic or `const` functions, arguments that cannot
//! cross) are listed as skipped, with the reason.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use quote::ToTokens;
use serde::Serialize;
use syn::spanned::Spanned;

use crate::callgraph::CallGraph;
use crate::cfg::CfgSet;
use crate::error::{Error, Result};
use crate::model::{EdgeKind, FnId, FnKind, Mark};
use crate::propagate::Split;
use crate::template::{normalise_type, Root, RootReason, Template};

/// Which split the annotations come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// Roots plus everything they reach.
    Propagation,
    /// `cut`'s minimum cut, from a profile of call frequencies (calls/s by edge).
    Cut {
        /// Calls per second by (caller, callee).
        freq: BTreeMap<(FnId, FnId), f64>,
        /// The cut's weights.
        weights: crate::cut::Weights,
    },
}

/// Options of [`plan`].
#[derive(Debug, Clone)]
pub struct Options {
    /// The split to annotate.
    pub source: Source,
    /// Write the guesses marked sure instead of prompting for them.
    pub accept_guesses: bool,
    /// Also judge fields that already carry a `#[marshal(...)]` annotation, as if they had
    /// none, and compare the guess with it (measures the guesses against a hand split).
    pub check_guesses: bool,
}

/// One annotation to write.
#[derive(Debug, Clone, Serialize)]
pub struct Annotation {
    /// The function.
    pub function: String,
    /// `file:line`.
    pub location: String,
    /// The attribute written.
    pub attribute: String,
    /// Why.
    pub why: String,
}

/// A function the split wants annotated that cannot carry the annotation.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The function.
    pub function: String,
    /// `file:line`.
    pub location: String,
    /// The attribute it would get.
    pub wanted: String,
    /// Why it cannot.
    pub why: String,
}

/// A question for the user: a field (or type) that cannot cross the cut as it is.
#[derive(Debug, Clone, Serialize)]
pub struct Prompt {
    /// File.
    pub file: String,
    /// Line of the field (or type).
    pub line: usize,
    /// The type that crosses.
    pub type_name: String,
    /// The field (empty for a prompt about the whole type).
    pub field: String,
    /// What it needs: `#[marshal(len = ...)]`, `skip`, `opaque`, a `TrackedPtr`,
    /// `#[derive(Marshal)]`.
    pub needs: String,
    /// The best guess, as the attribute's contents (`len = count`, `skip`).
    pub guess: String,
    /// Whether the guess is sure enough for `--accept-guesses` to write it.
    pub sure: bool,
    /// Why the field cannot cross, and where the guess comes from.
    pub why: String,
    /// With `check_guesses`: the annotation the field already has.
    pub existing: Option<String>,
}

impl Prompt {
    /// The diagnostic line.
    pub fn text(&self) -> String {
        let what = if self.field.is_empty() {
            format!("type `{}`", self.type_name)
        } else {
            format!("field `{}::{}`", self.type_name, self.field)
        };
        format!(
            "{}:{}: prompt: {what} crosses the cut and cannot cross as it is: {}; needs {}; \
             guess: #[marshal({})]{}",
            self.file,
            self.line,
            self.why,
            self.needs,
            self.guess,
            if self.sure { " (sure)" } else { "" }
        )
    }
}

/// What `apply` does to a crate.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// `propagation` or `cut`.
    pub split: String,
    /// The kernel half (function paths).
    pub kernel: Vec<String>,
    /// Annotations written.
    pub annotations: Vec<Annotation>,
    /// Wanted but impossible annotations.
    pub skipped: Vec<Skipped>,
    /// Critical functions the user half calls that get no stub (linked into both halves).
    pub shared: Vec<String>,
    /// Marshal prompts.
    pub prompts: Vec<Prompt>,
    /// What the user must do besides answering the prompts (a missing dependency).
    pub notes: Vec<String>,
    /// With `check_guesses`: fields annotated by hand that `apply` would not prompt for.
    pub hand_unprompted: Vec<String>,
    /// The `microdriver-split.toml` written (`None`: one is there already).
    pub toml: Option<String>,
    /// Line insertions by file: (0-based line index to insert before, lines).
    #[serde(skip)]
    pub edits: BTreeMap<PathBuf, Vec<(usize, String)>>,
    /// The crate directory.
    #[serde(skip)]
    pub crate_dir: PathBuf,
}

// ------------------------------------------------------------------------------------------
// The crate's types, for what can cross.
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct FieldDecl {
    name: String,
    ty: syn::Type,
    line: usize,
    marshal: Option<String>,
}

#[derive(Debug, Clone)]
struct TypeDecl {
    file: PathBuf,
    line: usize,
    derives_marshal: bool,
    fields: Vec<FieldDecl>,
}

#[derive(Debug, Default)]
struct Types {
    decls: HashMap<String, TypeDecl>,
    aliases: HashMap<String, (Vec<String>, syn::Type)>,
    /// Names of the crate's statics.
    statics: Vec<String>,
    /// Types with an `impl From<CallError> for T`.
    from_call_error: HashSet<String>,
}

fn marshal_attr(attrs: &[syn::Attribute]) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.path().is_ident("marshal"))
        .map(|a| match &a.meta {
            syn::Meta::List(l) => l.tokens.to_string(),
            _ => String::new(),
        })
}

fn derives_marshal(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("derive")
            && a.to_token_stream()
                .to_string()
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "Marshal")
    })
}

impl Types {
    fn collect(src: &crate::parse::Source) -> Types {
        let mut t = Types::default();
        for m in &src.modules {
            for item in &m.items {
                t.item(item, &m.file);
            }
        }
        t
    }

    fn item(&mut self, item: &syn::Item, file: &Path) {
        match item {
            syn::Item::Struct(s) => {
                let fields = s
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| FieldDecl {
                        name: f
                            .ident
                            .as_ref()
                            .map_or_else(|| i.to_string(), ToString::to_string),
                        ty: f.ty.clone(),
                        line: f
                            .ident
                            .as_ref()
                            .map_or_else(|| f.ty.span(), syn::Ident::span)
                            .start()
                            .line,
                        marshal: marshal_attr(&f.attrs),
                    })
                    .collect();
                self.add(&s.ident, &s.attrs, file, fields);
            }
            syn::Item::Enum(e) => {
                let fields = e
                    .variants
                    .iter()
                    .flat_map(|v| {
                        v.fields.iter().enumerate().map(move |(i, f)| FieldDecl {
                            name: format!(
                                "{}.{}",
                                v.ident,
                                f.ident
                                    .as_ref()
                                    .map_or_else(|| i.to_string(), ToString::to_string)
                            ),
                            ty: f.ty.clone(),
                            line: f
                                .ident
                                .as_ref()
                                .map_or_else(|| f.ty.span(), syn::Ident::span)
                                .start()
                                .line,
                            marshal: marshal_attr(&f.attrs),
                        })
                    })
                    .collect();
                self.add(&e.ident, &e.attrs, file, fields);
            }
            syn::Item::Type(a) => {
                let params = a
                    .generics
                    .type_params()
                    .map(|p| p.ident.to_string())
                    .collect();
                self.aliases
                    .insert(a.ident.to_string(), (params, (*a.ty).clone()));
            }
            syn::Item::Static(st) => {
                self.statics.push(st.ident.to_string());
            }
            syn::Item::Impl(i) => {
                let is_from_call_error = i.trait_.as_ref().is_some_and(|(_, p, _)| {
                    let text = p.to_token_stream().to_string().replace(' ', "");
                    text.ends_with("From<CallError>") || text.ends_with("::CallError>")
                });
                if is_from_call_error {
                    if let Some(name) = last_ident(&i.self_ty) {
                        self.from_call_error.insert(name);
                    }
                }
            }
            _ => {}
        }
    }

    fn add(
        &mut self,
        ident: &syn::Ident,
        attrs: &[syn::Attribute],
        file: &Path,
        fields: Vec<FieldDecl>,
    ) {
        self.decls.insert(
            ident.to_string(),
            TypeDecl {
                file: file.to_path_buf(),
                line: ident.span().start().line,
                derives_marshal: derives_marshal(attrs),
                fields,
            },
        );
    }
}

fn last_ident(ty: &syn::Type) -> Option<String> {
    match ty {
        syn::Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

/// Std and runtime types that implement `Marshal` when their parameters do.
const CROSSING_CONTAINERS: &[&str] = &[
    "Vec",
    "Option",
    "Box",
    "VecDeque",
    "HashMap",
    "BTreeMap",
    "Result",
    "ComboLock",
    "TrackedPtr",
    "PhantomData",
];
const PRIMITIVES: &[&str] = &[
    "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize", "f32",
    "f64", "bool", "char", "String", "str", "Duration",
];
/// Shared-state and thread handles: never meaningful in the other half.
const SHARED_STATE: &[&str] = &[
    "Arc",
    "Rc",
    "Weak",
    "Mutex",
    "RwLock",
    "Cell",
    "RefCell",
    "Condvar",
    "JoinHandle",
    "Sender",
    "Receiver",
    "SyncSender",
    "Thread",
    "Instant",
    "File",
];

/// Why a type cannot cross as it is, with what it needs and a guess.
#[derive(Debug, Clone)]
struct Obstacle {
    why: String,
    needs: String,
    guess: String,
    sure: bool,
}

fn obstacle(why: String, needs: &str, guess: &str, sure: bool) -> Obstacle {
    Obstacle {
        why,
        needs: needs.to_string(),
        guess: guess.to_string(),
        sure,
    }
}

fn is_device_memory(name: &str) -> bool {
    ["Dma", "Mmio", "Bar", "IoMem", "Irq", "Pci"]
        .iter()
        .any(|p| name.starts_with(p) || name.ends_with(&p.to_ascii_lowercase()))
        || name.ends_with("Mem")
}

impl Types {
    /// Whether `ty` can cross as it is (`top`: a function argument, where references to
    /// crossing types are fine). `crate_types` collects the crate types it holds.
    fn check(
        &self,
        ty: &syn::Type,
        top: bool,
        generics: &[String],
        crate_types: &mut Vec<String>,
    ) -> std::result::Result<(), Obstacle> {
        let text = ty.to_token_stream().to_string();
        match ty {
            syn::Type::Reference(r) if top => self.check(&r.elem, false, generics, crate_types),
            syn::Type::Reference(_) => Err(obstacle(
                format!("`{text}` is a reference (into state the other half does not share)"),
                "`skip`, or a `TrackedPtr`",
                "skip",
                false,
            )),
            syn::Type::Ptr(_) => Err(obstacle(
                format!("`{text}` is a raw pointer (its extent is unknown)"),
                "`#[marshal(len = ...)]`, `opaque` or `skip`",
                "opaque",
                false,
            )),
            syn::Type::BareFn(_) | syn::Type::TraitObject(_) | syn::Type::ImplTrait(_) => {
                Err(obstacle(
                    format!("`{text}` is code, not data: it has no wire form"),
                    "`skip`",
                    "skip",
                    false,
                ))
            }
            syn::Type::Tuple(t) => t
                .elems
                .iter()
                .try_for_each(|e| self.check(e, false, generics, crate_types)),
            syn::Type::Array(a) => self.check(&a.elem, false, generics, crate_types),
            syn::Type::Slice(s) => self.check(&s.elem, false, generics, crate_types),
            syn::Type::Paren(p) => self.check(&p.elem, top, generics, crate_types),
            syn::Type::Group(g) => self.check(&g.elem, top, generics, crate_types),
            syn::Type::Path(p) => {
                let Some(seg) = p.path.segments.last() else {
                    return Ok(());
                };
                let name = seg.ident.to_string();
                let args: Vec<&syn::Type> = match &seg.arguments {
                    syn::PathArguments::AngleBracketed(a) => a
                        .args
                        .iter()
                        .filter_map(|g| match g {
                            syn::GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                if PRIMITIVES.contains(&name.as_str()) || generics.contains(&name) || name == "Self"
                {
                    return Ok(());
                }
                if name == "NonNull" {
                    return Err(obstacle(
                        format!("`{text}` is a raw pointer (its extent is unknown)"),
                        "`#[marshal(len = ...)]`, `opaque` or `skip`",
                        "opaque",
                        false,
                    ));
                }
                if CROSSING_CONTAINERS.contains(&name.as_str()) {
                    if name == "Option"
                        && args.first().is_some_and(|a| {
                            matches!(a, syn::Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "NonNull"))
                        })
                    {
                        return Err(obstacle(
                            format!("`{text}` is a raw pointer (its extent is unknown)"),
                            "`#[marshal(len = ...)]`, `opaque` or `skip`",
                            "opaque",
                            false,
                        ));
                    }
                    return args
                        .iter()
                        .try_for_each(|a| self.check(a, false, generics, crate_types));
                }
                if let Some(decl) = self.decls.get(&name) {
                    if decl.derives_marshal {
                        crate_types.push(name);
                        return args
                            .iter()
                            .try_for_each(|a| self.check(a, false, generics, crate_types));
                    }
                    if is_device_memory(&name) {
                        return Err(obstacle(
                            format!("`{name}` is device memory or a device handle: it never leaves the kernel half"),
                            "`skip` (or `opaque` to carry its identity)",
                            "skip",
                            true,
                        ));
                    }
                    return Err(obstacle(
                        format!("`{name}` does not derive Marshal"),
                        "`skip`, or `#[derive(Marshal)]` on the type",
                        "skip",
                        false,
                    ));
                }
                if let Some((params, alias)) = self.aliases.get(&name) {
                    let mut g = generics.to_vec();
                    g.extend(params.iter().cloned());
                    self.check(alias, top, &g, crate_types)?;
                    return args
                        .iter()
                        .try_for_each(|a| self.check(a, false, generics, crate_types));
                }
                if SHARED_STATE.contains(&name.as_str()) || name.starts_with("Atomic") {
                    return Err(obstacle(
                        format!("`{text}` is shared state or a handle local to one process"),
                        "`skip` (or a `TrackedPtr` to share the object)",
                        "skip",
                        false,
                    ));
                }
                if is_device_memory(&name) {
                    return Err(obstacle(
                        format!("`{name}` is device memory or a device handle: it never leaves the kernel half"),
                        "`skip` (or `opaque` to carry its identity)",
                        "skip",
                        true,
                    ));
                }
                Err(obstacle(
                    format!("`{name}` is not known to implement Marshal"),
                    "`skip`, `opaque`, or a Marshal impl",
                    "skip",
                    false,
                ))
            }
            _ => Err(obstacle(
                format!("`{text}` has no wire form"),
                "`skip`",
                "skip",
                false,
            )),
        }
    }
}

/// Names that say an integer field counts something.
fn count_like(field: &str, ptr: &str) -> bool {
    let f = field.to_ascii_lowercase();
    let p = ptr.to_ascii_lowercase();
    ["len", "count", "n", "num", "size", "cnt", "nr"].contains(&f.as_str())
        || [
            format!("{p}_len"),
            format!("{p}_count"),
            format!("n_{p}"),
            format!("num_{p}"),
            format!("{p}_size"),
            format!("nr_{p}"),
        ]
        .contains(&f)
        || f.ends_with("_len")
        || f.ends_with("_count")
        || f.starts_with("num_")
        || f.starts_with("n_")
}

fn is_integer(ty: &syn::Type) -> bool {
    matches!(
        last_ident(ty).as_deref(),
        Some("u8" | "u16" | "u32" | "u64" | "usize" | "i32" | "i64" | "isize")
    )
}

// ------------------------------------------------------------------------------------------
// The plan.
// ------------------------------------------------------------------------------------------

/// Computes what `apply` would do to the crate at `crate_dir`.
pub fn plan(
    crate_dir: &Path,
    cfg: &CfgSet,
    graph: &CallGraph,
    template: &Template,
    template_text: &str,
    roots: &[Root],
    opts: &Options,
) -> Result<Plan> {
    let src = crate::parse::load(&graph.root, cfg)?;
    let types = Types::collect(&src);
    let entries: Vec<FnId> = roots
        .iter()
        .filter(|r| r.is_entry())
        .map(|r| r.fn_id)
        .collect();
    let split0 = Split::propagate(graph, roots);
    let host = host_fns(graph, &entries, &split0.critical);
    let handles = handle_types(graph, &entries);
    let mut files = FileCache::default();
    // The kernel half's state: the crate's statics the critical set names.
    let kernel_statics: Vec<&String> = types
        .statics
        .iter()
        .filter(|st| {
            graph
                .fns
                .iter()
                .any(|f| split0.critical[f.id] && files.body_mentions(f, st))
        })
        .collect();
    // Services: public free functions outside the critical set taking the device handle
    // and calling straight into it (or naming its state).
    let services: Vec<FnId> = graph
        .fns
        .iter()
        .filter(|f| {
            !split0.critical[f.id]
                && !host[f.id]
                && f.kind == FnKind::Free
                && f.public
                && !f.mark.is_upcall()
                && f.params
                    .iter()
                    .any(|p| handles.contains(&normalise_type(p)))
                && (graph.edges().any(|e| {
                    e.from == f.id
                        && e.kind.propagates()
                        && e.kind != EdgeKind::Inserted
                        && split0.critical[e.to]
                }) || kernel_statics.iter().any(|st| files.body_mentions(f, st)))
        })
        .map(|f| f.id)
        .collect();
    let mut all_roots = roots.to_vec();
    all_roots.extend(services.iter().map(|&s| Root {
        fn_id: s,
        reason: RootReason::Listed,
    }));
    let (split_name, kernel) = match &opts.source {
        Source::Propagation => ("propagation", Split::propagate(graph, &all_roots).critical),
        Source::Cut { freq, weights } => {
            let mut k = crate::cut::min_cut(graph, roots, freq, *weights)?;
            let (reached, _) = crate::propagate::reach(graph, &services);
            for (i, r) in reached.iter().enumerate() {
                k[i] |= *r;
            }
            ("cut", k)
        }
    };
    let mut plan = Plan {
        split: split_name.to_string(),
        kernel: graph
            .fns
            .iter()
            .filter(|f| kernel[f.id])
            .map(|f| f.path.clone())
            .collect(),
        annotations: Vec::new(),
        skipped: Vec::new(),
        shared: Vec::new(),
        prompts: Vec::new(),
        notes: Vec::new(),
        hand_unprompted: Vec::new(),
        toml: None,
        edits: BTreeMap::new(),
        crate_dir: crate_dir.to_path_buf(),
    };
    let mut crossing_types: Vec<(String, String)> = Vec::new();

    // #[critical]: entry roots and services.
    let mut wanted: Vec<(FnId, &str, String)> = Vec::new();
    for r in roots.iter().filter(|r| r.is_entry()) {
        let why = match &r.reason {
            RootReason::Template { role, why } => format!("{role} entry point: {why}"),
            other => format!("entry point ({other:?})"),
        };
        wanted.push((r.fn_id, "critical", why));
    }
    for &s in &services {
        let handle = graph.fns[s]
            .params
            .iter()
            .find(|p| handles.contains(&normalise_type(p)))
            .cloned()
            .unwrap_or_default();
        wanted.push((
            s,
            "critical",
            format!("downcall target: takes the device handle `{handle}` and calls into the critical set"),
        ));
    }
    // #[upcall]: user-half entry points.
    for f in &graph.fns {
        if kernel[f.id] || host[f.id] || f.kind != FnKind::Free || !f.public || f.mark.is_critical()
        {
            continue;
        }
        let callers: Vec<(FnId, EdgeKind, String, usize)> = graph
            .edges()
            .filter(|e| e.to == f.id && e.from != f.id)
            .map(|e| (e.from, e.kind, e.file.clone(), e.line))
            .collect();
        let from_kernel: Vec<_> = callers.iter().filter(|c| kernel[c.0]).collect();
        let from_host = callers.iter().any(|c| host[c.0]);
        let why = if !from_kernel.is_empty() {
            "the kernel half calls it".to_string()
        } else if from_host {
            "the crate's host code (which runs the kernel half) calls it".to_string()
        } else if callers.is_empty() {
            "a user-half entry point: nothing in the crate calls it".to_string()
        } else {
            continue;
        };
        let deferred = !from_kernel.is_empty()
            && f.ret.is_none()
            && f.params.iter().all(|p| !p.trim_start().starts_with('&'))
            && from_kernel
                .iter()
                .all(|c| result_ignored(&mut files, &c.2, c.3, &f.name));
        let attr = if deferred {
            "upcall(deferred)"
        } else {
            "upcall"
        };
        let why = if deferred {
            format!("{why} on the hot path and ignores the result")
        } else {
            why
        };
        wanted.push((f.id, attr, why));
    }
    for (id, attr, why) in wanted {
        let f = &graph.fns[id];
        let already = match attr {
            "critical" => f.mark.is_critical(),
            _ => f.mark.is_upcall(),
        };
        let attribute = format!("#[{attr}]");
        if let Err(reason) = annotatable(f, attr, &types) {
            if attr == "critical" || !f.mark.is_upcall() {
                plan.skipped.push(Skipped {
                    function: f.path.clone(),
                    location: f.location(),
                    wanted: attribute,
                    why: reason,
                });
            }
            continue;
        }
        for ty in f.params.iter().chain(f.ret.iter()) {
            crossing_types.push((ty.clone(), f.path.clone()));
        }
        if already {
            continue;
        }
        let Some((index, indent)) = files.fn_line(&f.file, f.line, &f.name) else {
            plan.skipped.push(Skipped {
                function: f.path.clone(),
                location: f.location(),
                wanted: attribute,
                why: "its `fn` line was not found in the source".into(),
            });
            continue;
        };
        let written = files.attr_text(&f.file, attr);
        plan.edits
            .entry(PathBuf::from(&f.file))
            .or_default()
            .push((index, format!("{indent}{written}")));
        plan.annotations.push(Annotation {
            function: f.path.clone(),
            location: f.location(),
            attribute,
            why,
        });
    }
    // Critical functions the user half calls that are not services: shared code.
    let service_set: HashSet<FnId> = services.iter().copied().collect();
    let mut shared = BTreeSet::new();
    for e in graph.edges() {
        if e.kind.propagates()
            && kernel[e.to]
            && !kernel[e.from]
            && !host[e.from]
            && !service_set.contains(&e.to)
            && !entries.contains(&e.to)
            && !graph.fns[e.to].mark.is_critical()
        {
            shared.insert(graph.fns[e.to].path.clone());
        }
    }
    plan.shared = shared.into_iter().collect();
    prompts(&types, &crossing_types, opts, &mut plan);
    // The prompts' edits.
    for p in &plan.prompts {
        if p.existing.is_some() || p.field.is_empty() {
            continue;
        }
        let text = if opts.accept_guesses && p.sure {
            format!("#[marshal({})]", p.guess)
        } else {
            format!(
                "#[marshal(prompt = \"{}; needs {}; guess: {}\")]",
                p.why.replace('"', "'").replace('`', ""),
                p.needs.replace('"', "'").replace('`', ""),
                p.guess
            )
        };
        let Some(indent) = files.indent_of(&p.file, p.line) else {
            continue;
        };
        plan.edits
            .entry(PathBuf::from(&p.file))
            .or_default()
            .push((p.line - 1, format!("{indent}{text}")));
    }
    let manifest = crate_dir.join("Cargo.toml");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        if !plan.annotations.is_empty() && !text.contains("microdriver-rt") {
            plan.notes.push(format!(
                "{}: the attributes written come from microdriver-rt: add it to [dependencies]",
                manifest.display()
            ));
        }
    }
    let toml_path = crate_dir.join("microdriver-split.toml");
    if !toml_path.is_file() {
        let mut text = format!(
            "# Written by `cargo microdriver apply` ({split_name} split, template `{}`).\n\
             # The roots it found:\n",
            template.family
        );
        for r in roots.iter().filter(|r| r.is_entry()) {
            let f = &graph.fns[r.fn_id];
            let why = match &r.reason {
                RootReason::Template { role, why } => format!("{role}: {why}"),
                other => format!("{other:?}"),
            };
            text.push_str(&format!("#   {}  [{why}]  {}\n", f.path, f.location()));
        }
        for &s in &services {
            text.push_str(&format!(
                "#   {}  [service: #[critical], the user half's downcall]\n",
                graph.fns[s].path
            ));
        }
        text.push('\n');
        text.push_str(template_text);
        plan.toml = Some(text);
    }
    Ok(plan)
}

/// Host functions: those of the files that spawn threads and call an entry root from
/// outside the critical set (the operating system's part of the crate: its interrupt
/// thread, its network stack entry points).
fn host_fns(graph: &CallGraph, entries: &[FnId], critical: &[bool]) -> Vec<bool> {
    let spawning: HashSet<&str> = graph
        .registrations
        .iter()
        .filter(|r| r.with.contains("spawn"))
        .map(|r| graph.fns[r.value].file.as_str())
        .collect();
    let calling: HashSet<&str> = graph
        .edges()
        .filter(|e| entries.contains(&e.to) && !critical[e.from])
        .map(|e| graph.fns[e.from].file.as_str())
        .collect();
    graph
        .fns
        .iter()
        .map(|f| {
            !critical[f.id]
                && spawning.contains(f.file.as_str())
                && calling.contains(f.file.as_str())
        })
        .collect()
}

/// The device handle: named by-value parameter types that at least two entry roots take
/// (or the one entry root, when there is one).
fn handle_types(graph: &CallGraph, entries: &[FnId]) -> HashSet<String> {
    let mut count: HashMap<String, usize> = HashMap::new();
    let mut n = 0;
    for &e in entries {
        let f = &graph.fns[e];
        if f.kind == FnKind::Closure {
            continue;
        }
        n += 1;
        let mut seen = HashSet::new();
        for p in &f.params {
            let t = normalise_type(p);
            let primitive = PRIMITIVES.contains(&t.as_str());
            if t.starts_with('&') || t.starts_with('*') || primitive || t.contains('<') {
                continue;
            }
            if t.chars().next().is_some_and(char::is_uppercase) && seen.insert(t.clone()) {
                *count.entry(t).or_default() += 1;
            }
        }
    }
    let need = if n <= 1 { 1 } else { 2 };
    count
        .into_iter()
        .filter(|(_, c)| *c >= need)
        .map(|(t, _)| t)
        .collect()
}

/// Whether `f` can carry `#[critical]` / `#[upcall]` (the macros' rules: a non-generic free
/// function whose arguments and result cross).
fn annotatable(
    f: &crate::model::FnInfo,
    attr: &str,
    types: &Types,
) -> std::result::Result<(), String> {
    if f.kind != FnKind::Free {
        return Err(format!(
            "a {} cannot carry the attribute (free functions only): move its body into a free function",
            match f.kind {
                FnKind::Closure => "closure",
                _ => "method",
            }
        ));
    }
    if !f.generics.is_empty() {
        return Err("generic: both halves register it once, with concrete types".into());
    }
    let mut inner = Vec::new();
    for p in &f.params {
        let ty: syn::Type = syn::parse_str(p).map_err(|e| format!("parameter `{p}`: {e}"))?;
        if matches!(&ty, syn::Type::Reference(r) if r.mutability.is_some() && last_ident(&r.elem).as_deref() == Some("str"))
        {
            return Err("a `&mut str` argument cannot cross".into());
        }
        types
            .check(&ty, true, &[], &mut inner)
            .map_err(|o| format!("argument `{p}` cannot cross: {}", o.why))?;
    }
    if let Some(ret) = &f.ret {
        let ty: syn::Type = syn::parse_str(ret).map_err(|e| format!("result `{ret}`: {e}"))?;
        types
            .check(&ty, false, &[], &mut inner)
            .map_err(|o| format!("its result `{ret}` cannot cross: {}", o.why))?;
        let is_result = last_ident(&ty).as_deref() == Some("Result");
        if attr.starts_with("upcall") && !is_result {
            return Err(format!(
                "an #[upcall] that returns a value must return Result<_, E> (it returns `{ret}`)"
            ));
        }
        if is_result {
            let err = result_error(&ty);
            if let Some(e) = err {
                if !types.from_call_error.contains(&e) {
                    return Err(format!(
                        "its error type `{e}` has no `impl From<CallError>`: add one so a dead half can be reported"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn result_error(ty: &syn::Type) -> Option<String> {
    let syn::Type::Path(p) = ty else { return None };
    let seg = p.path.segments.last()?;
    let syn::PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    a.args
        .iter()
        .filter_map(|g| match g {
            syn::GenericArgument::Type(t) => last_ident(t),
            _ => None,
        })
        .nth(1)
}

/// Whether the call at `file:line` of `name` is a statement whose value is dropped.
fn result_ignored(files: &mut FileCache, file: &str, line: usize, name: &str) -> bool {
    let Some(text) = files.line(file, line) else {
        return false;
    };
    let t = text.trim();
    let starts = t
        .split('(')
        .next()
        .is_some_and(|head| head == name || head.ends_with(&format!("::{name}")));
    starts && t.ends_with(");")
}

fn prompts(types: &Types, crossing: &[(String, String)], opts: &Options, plan: &mut Plan) {
    let mut queue: Vec<(String, String)> = Vec::new();
    for (ty, via) in crossing {
        let Ok(ty) = syn::parse_str::<syn::Type>(ty) else {
            continue;
        };
        let mut found = Vec::new();
        if let Err(o) = types.check(&ty, true, &[], &mut found) {
            // A crate type without the derive at the top: the type needs it.
            if let Some(name) = last_ident(strip_refs(&ty)) {
                if let Some(decl) = types.decls.get(&name) {
                    if !decl.derives_marshal {
                        push_unique(
                            plan,
                            Prompt {
                                file: decl.file.display().to_string(),
                                line: decl.line,
                                type_name: name.clone(),
                                field: String::new(),
                                needs: "`#[derive(Marshal)]`".into(),
                                guess: "derive".into(),
                                sure: false,
                                why: format!(
                                    "{} (it crosses as an argument or result of `{via}`)",
                                    o.why
                                ),
                                existing: None,
                            },
                        );
                        queue.push((name, via.clone()));
                    }
                }
            }
        }
        queue.extend(found.into_iter().map(|n| (n, via.clone())));
    }
    let mut seen = HashSet::new();
    while let Some((name, via)) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        let Some(decl) = types.decls.get(&name) else {
            continue;
        };
        for field in &decl.fields {
            if field.marshal.is_some() && !opts.check_guesses {
                continue;
            }
            let existing = field.marshal.clone();
            if existing
                .as_deref()
                .is_some_and(|m| m.trim() == "skip" || m.trim() == "opaque")
                && !opts.check_guesses
            {
                continue;
            }
            let mut inner = Vec::new();
            match types.check(&field.ty, false, &[], &mut inner) {
                Ok(()) => {
                    if let Some(m) = &existing {
                        plan.hand_unprompted.push(format!(
                            "{}:{}: {}::{} #[marshal({m})]",
                            decl.file.display(),
                            field.line,
                            name,
                            field.name
                        ));
                    }
                    if existing.as_deref().is_none_or(|m| m.trim() != "skip") {
                        queue.extend(inner.into_iter().map(|n| (n, via.clone())));
                    }
                }
                Err(mut o) => {
                    if is_pointer(&field.ty) {
                        let cands: Vec<&FieldDecl> = decl
                            .fields
                            .iter()
                            .filter(|s| s.name != field.name && is_integer(&s.ty))
                            .filter(|s| count_like(&s.name, &field.name))
                            .collect();
                        if let [one] = cands.as_slice() {
                            o.guess = format!("len = {}", one.name);
                            o.sure = true;
                            o.why = format!(
                                "{}; the sibling count field `{}` bounds it",
                                o.why, one.name
                            );
                        } else if !cands.is_empty() {
                            o.guess = format!("len = {}", cands[0].name);
                            o.sure = false;
                            o.why = format!(
                                "{}; sibling count fields: {}",
                                o.why,
                                cands
                                    .iter()
                                    .map(|c| c.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            );
                        }
                    }
                    push_unique(
                        plan,
                        Prompt {
                            file: decl.file.display().to_string(),
                            line: field.line,
                            type_name: name.clone(),
                            field: field.name.clone(),
                            needs: o.needs,
                            guess: o.guess,
                            sure: o.sure,
                            why: format!("{} (crosses with `{via}`)", o.why),
                            existing: existing.map(|e| e.replace(' ', "").replace('=', " = ")),
                        },
                    );
                }
            }
        }
    }
    plan.prompts
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
}

fn strip_refs(ty: &syn::Type) -> &syn::Type {
    match ty {
        syn::Type::Reference(r) => strip_refs(&r.elem),
        other => other,
    }
}

fn is_pointer(ty: &syn::Type) -> bool {
    let text = ty.to_token_stream().to_string();
    matches!(ty, syn::Type::Ptr(_)) || text.contains("NonNull")
}

fn push_unique(plan: &mut Plan, p: Prompt) {
    if !plan
        .prompts
        .iter()
        .any(|q| q.file == p.file && q.line == p.line)
    {
        plan.prompts.push(p);
    }
}

/// Source files read once.
#[derive(Default)]
struct FileCache(HashMap<String, Vec<String>>);

impl FileCache {
    fn lines(&mut self, file: &str) -> Option<&Vec<String>> {
        if !self.0.contains_key(file) {
            let text = std::fs::read_to_string(file).ok()?;
            self.0
                .insert(file.to_string(), text.lines().map(str::to_string).collect());
        }
        self.0.get(file)
    }

    fn line(&mut self, file: &str, line: usize) -> Option<String> {
        self.lines(file)?.get(line.checked_sub(1)?).cloned()
    }

    /// Whether the body of `f` names `word` (a whole identifier).
    fn body_mentions(&mut self, f: &crate::model::FnInfo, word: &str) -> bool {
        let Some(lines) = self.lines(&f.file) else {
            return false;
        };
        let from = f.line.saturating_sub(1);
        let to = f.end_line.min(lines.len());
        lines.get(from..to).is_some_and(|body| {
            body.iter().any(|l| {
                l.split(|c: char| !c.is_alphanumeric() && c != '_')
                    .any(|w| w == word)
            })
        })
    }

    fn indent_of(&mut self, file: &str, line: usize) -> Option<String> {
        let l = self.line(file, line)?;
        Some(l[..l.len() - l.trim_start().len()].to_string())
    }

    /// The 0-based index of the line to insert an attribute before (the first line of the
    /// signature, after doc comments and other attributes), and its indentation.
    fn fn_line(&mut self, file: &str, line: usize, name: &str) -> Option<(usize, String)> {
        let lines = self.lines(file)?;
        let mut i = line.checked_sub(1)?;
        let wanted = format!("fn {name}");
        if !lines.get(i)?.contains(&wanted) {
            return None;
        }
        // `pub` or qualifiers on a line of their own above `fn`.
        while i > 0 {
            let prev = lines[i - 1].trim();
            if ["pub", "pub(crate)", "pub(super)"].contains(&prev) {
                i -= 1;
            } else {
                break;
            }
        }
        let l = &lines[i];
        Some((i, l[..l.len() - l.trim_start().len()].to_string()))
    }

    /// `#[critical]` when the file imports the attribute, else its full path.
    fn attr_text(&mut self, file: &str, attr: &str) -> String {
        let base = attr.split('(').next().unwrap_or(attr);
        let imported = self.lines(file).is_some_and(|lines| {
            lines.iter().any(|l| {
                let t = l.trim_start();
                t.starts_with("use ")
                    && t.contains("microdriver_rt")
                    && t.split(|c: char| !c.is_alphanumeric() && c != '_')
                        .any(|w| w == base)
            })
        });
        if imported {
            format!("#[{attr}]")
        } else {
            format!("#[microdriver_rt::{attr}]")
        }
    }
}

impl Plan {
    /// The new text of each edited file.
    pub fn rewritten(&self) -> Result<Vec<(PathBuf, String, String)>> {
        let mut out = Vec::new();
        for (file, edits) in &self.edits {
            let old = std::fs::read_to_string(file).map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })?;
            let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
            let mut edits = edits.clone();
            edits.sort_by_key(|e| std::cmp::Reverse(e.0));
            edits.dedup();
            for (at, text) in edits {
                lines.insert(at.min(lines.len()), text);
            }
            let mut new = lines.join("\n");
            if old.ends_with('\n') {
                new.push('\n');
            }
            out.push((file.clone(), old, new));
        }
        Ok(out)
    }

    /// A unified diff of every edit (and of the new `microdriver-split.toml`).
    pub fn diff(&self) -> Result<String> {
        let mut out = String::new();
        for (file, old, new) in self.rewritten()? {
            out.push_str(&unified_diff(&file.display().to_string(), &old, &new));
        }
        if let Some(toml) = &self.toml {
            let path = self.crate_dir.join("microdriver-split.toml");
            out.push_str(&unified_diff(&path.display().to_string(), "", toml));
        }
        Ok(out)
    }

    /// Writes the edits and the TOML.
    pub fn write(&self) -> Result<()> {
        for (file, _, new) in self.rewritten()? {
            std::fs::write(&file, new).map_err(|source| Error::Io { path: file, source })?;
        }
        if let Some(toml) = &self.toml {
            let path = self.crate_dir.join("microdriver-split.toml");
            std::fs::write(&path, toml).map_err(|source| Error::Io { path, source })?;
        }
        Ok(())
    }

    /// The summary `apply` prints.
    pub fn text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        for a in &self.annotations {
            let _ = writeln!(
                out,
                "{}: {} on {} ({})",
                a.location, a.attribute, a.function, a.why
            );
        }
        for s in &self.skipped {
            let _ = writeln!(
                out,
                "{}: skipped: {} wants {}: {}",
                s.location, s.function, s.wanted, s.why
            );
        }
        for p in &self.prompts {
            let _ = writeln!(out, "{}", p.text());
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let sure = self.prompts.iter().filter(|p| p.sure).count();
        let _ = writeln!(
            out,
            "apply ({} split): {} annotations, {} skipped, {} shared functions (linked into both halves), {} marshal prompts ({} sure guesses){}",
            self.split,
            self.annotations.len(),
            self.skipped.len(),
            self.shared.len(),
            self.prompts.len(),
            sure,
            if self.toml.is_some() { ", microdriver-split.toml written" } else { "" }
        );
        out
    }
}

/// A unified diff of `old` to `new` (3 lines of context), for insertion-only edits and
/// any others.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence by dynamic programming on the (small) edited files.
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    // ops: (' ', a_idx, b_idx), ('-', a_idx, _), ('+', _, b_idx)
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(('+', i, j));
            j += 1;
        } else {
            ops.push(('-', i, j));
            i += 1;
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    if changed.is_empty() {
        return String::new();
    }
    let mut out = format!("--- a/{path}\n+++ b/{path}\n");
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(3);
        let mut end = changed[k];
        while k < changed.len() && changed[k] <= end + 6 {
            end = changed[k];
            k += 1;
        }
        let end = (end + 4).min(ops.len());
        let hunk = &ops[start..end];
        let a_start = hunk[0].1;
        let b_start = hunk[0].2;
        let a_len = hunk.iter().filter(|o| o.0 != '+').count();
        let b_len = hunk.iter().filter(|o| o.0 != '-').count();
        let a_from = if a_len == 0 { a_start } else { a_start + 1 };
        let b_from = if b_len == 0 { b_start } else { b_start + 1 };
        out.push_str(&format!("@@ -{a_from},{a_len} +{b_from},{b_len} @@\n"));
        for (c, ai, bi) in hunk {
            let text = match c {
                '+' => b[*bi],
                _ => a[*ai],
            };
            out.push(*c);
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

/// A static estimate of call frequencies for `--from-cut` without a profile: every call
/// edge the propagation split keeps inside the kernel half counts `hot_rate` calls/s
/// (the per-packet path), every other edge none.
pub fn static_profile(
    graph: &CallGraph,
    roots: &[Root],
    hot_rate: f64,
) -> BTreeMap<(FnId, FnId), f64> {
    let split = Split::propagate(graph, roots);
    graph
        .edges()
        .filter(|e| e.kind.propagates() && split.critical[e.from] && split.critical[e.to])
        .map(|e| ((e.from, e.to), hot_rate))
        .collect()
}

impl Plan {
    /// With `check_guesses`: how the guesses compare with the annotations already there.
    pub fn guess_line(&self) -> String {
        let judged: Vec<&Prompt> = self
            .prompts
            .iter()
            .filter(|p| p.existing.is_some())
            .collect();
        let right = judged
            .iter()
            .filter(|p| p.existing.as_deref().map(str::trim) == Some(p.guess.as_str()))
            .count();
        format!(
            "marshal prompts = {}, guesses right = {right} of the {} on hand-annotated fields ({} prompts on fields without one; {} hand annotations on fields it finds crossable as they are)",
            self.prompts.len(),
            judged.len(),
            self.prompts.len() - judged.len(),
            self.hand_unprompted.len()
        )
    }
}

/// Two splits of one crate compared function by function.
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Functions in both crates.
    pub functions: usize,
    /// On the same side in both.
    pub same: usize,
    /// Kernel half in the hand split only.
    pub hand_only: Vec<String>,
    /// Kernel half in the applied split only.
    pub applied_only: Vec<String>,
    /// Functions of one crate missing from the other.
    pub unmatched: usize,
    /// Functions the hand annotated (`#[critical]`, `#[upcall]`, ...).
    pub hand_marks: usize,
    /// Of those, annotated alike in the applied crate.
    pub same_marks: usize,
    /// Annotated functions whose annotation differs or is missing: (path, hand, applied).
    pub mark_differences: Vec<(String, String, String)>,
}

/// Compares the hand split with the applied one (functions matched by path).
pub fn agreement(hand: &CallGraph, hs: &[bool], applied: &CallGraph, aps: &[bool]) -> Agreement {
    let by_path: HashMap<&str, FnId> = applied
        .fns
        .iter()
        .map(|f| (f.path.as_str(), f.id))
        .collect();
    let mut out = Agreement {
        functions: 0,
        same: 0,
        hand_only: Vec::new(),
        applied_only: Vec::new(),
        unmatched: 0,
        hand_marks: 0,
        same_marks: 0,
        mark_differences: Vec::new(),
    };
    for f in &hand.fns {
        let Some(&a) = by_path.get(f.path.as_str()) else {
            out.unmatched += 1;
            continue;
        };
        out.functions += 1;
        let (hm, am) = (f.mark, applied.fns[a].mark);
        if hm != Mark::None {
            out.hand_marks += 1;
        }
        if hm != Mark::None && hm == am {
            out.same_marks += 1;
        } else if hm != am {
            out.mark_differences
                .push((f.path.clone(), format!("{hm:?}"), format!("{am:?}")));
        }
        match (hs[f.id], aps[a]) {
            (x, y) if x == y => out.same += 1,
            (true, _) => out.hand_only.push(f.path.clone()),
            _ => out.applied_only.push(f.path.clone()),
        }
    }
    out.unmatched += applied.fns.len().saturating_sub(out.functions);
    out
}

impl Agreement {
    /// The percentage of functions on the same side.
    pub fn percent(&self) -> f64 {
        if self.functions == 0 {
            return 0.0;
        }
        100.0 * self.same as f64 / self.functions as f64
    }

    /// The report.
    pub fn text(&self, verbose: bool) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if verbose {
            for p in &self.hand_only {
                let _ = writeln!(out, "  kernel half by hand only: {p}");
            }
            for p in &self.applied_only {
                let _ = writeln!(out, "  kernel half by apply only: {p}");
            }
            for (p, h, a) in &self.mark_differences {
                let _ = writeln!(out, "  annotation differs: {p}: hand {h}, apply {a}");
            }
        }
        let _ = writeln!(
            out,
            "annotations: {} of the {} functions the hand annotated are annotated alike; {} written where the hand wrote none",
            self.same_marks,
            self.hand_marks,
            self.mark_differences.iter().filter(|d| d.1 == "None").count()
        );
        let _ = writeln!(
            out,
            "apply agreement with the hand split = {:.1}% ({} of {} functions on the same side; {} in the kernel half by hand only, {} by apply only; {} unmatched)",
            self.percent(),
            self.same,
            self.functions,
            self.hand_only.len(),
            self.applied_only.len(),
            self.unmatched
        );
        out
    }
}
