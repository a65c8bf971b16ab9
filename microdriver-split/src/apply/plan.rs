//! The plan: which functions get which annotation, the shared code, the TOML.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::crossing::{last_ident, prompts, Prompt, Types, PRIMITIVES};
use super::edit::FileCache;
use super::{Options, Source};
use crate::callgraph::CallGraph;
use crate::cfg::CfgSet;
use crate::error::Result;
use crate::model::{EdgeKind, FnId, FnKind};
use crate::propagate::Split;
use crate::template::{normalise_type, Root, RootReason, Template};

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
    /// Of the skipped, the methods and closures (the attributes take free functions only:
    /// on drivers whose entry points are methods, most of what the split wants).
    pub skipped_methods: usize,
    /// Critical functions the user half calls that get no stub (linked into both halves).
    pub shared: Vec<String>,
    /// Marshal prompts.
    pub prompts: Vec<Prompt>,
    /// What the user must do besides answering the prompts (a missing dependency).
    pub notes: Vec<String>,
    /// Imports of `critical` / `upcall` edited because no attribute uses them once applied.
    pub imports: Vec<String>,
    /// With `check_guesses`: fields annotated by hand that `apply` would not prompt for.
    pub hand_unprompted: Vec<String>,
    /// The `microdriver-split.toml` written (`None`: one is there already).
    pub toml: Option<String>,
    /// Line insertions by file: (0-based line index to insert before, lines).
    #[serde(skip)]
    pub(super) edits: BTreeMap<PathBuf, Vec<(usize, String)>>,
    /// Lines replaced by file: (0-based line index, new text; `None`: removed).
    #[serde(skip)]
    pub(super) replaced: BTreeMap<PathBuf, BTreeMap<usize, Option<String>>>,
    /// The crate directory.
    #[serde(skip)]
    pub(super) crate_dir: PathBuf,
}

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
        skipped_methods: 0,
        shared: Vec::new(),
        prompts: Vec::new(),
        notes: Vec::new(),
        hand_unprompted: Vec::new(),
        toml: None,
        edits: BTreeMap::new(),
        replaced: BTreeMap::new(),
        imports: Vec::new(),
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
                if f.kind != FnKind::Free {
                    plan.skipped_methods += 1;
                }
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
    super::edit::drop_unused_imports(&src, &mut files, &mut plan);
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

impl Plan {
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
        for i in &self.imports {
            let _ = writeln!(out, "{i}");
        }
        for n in &self.notes {
            let _ = writeln!(out, "note: {n}");
        }
        let sure = self.prompts.iter().filter(|p| p.sure).count();
        let _ = writeln!(
            out,
            "apply ({} split): {} annotations, {} skipped{}, {} shared functions (linked into both halves), {} marshal prompts ({} sure guesses){}",
            self.split,
            self.annotations.len(),
            self.skipped.len(),
            match self.skipped_methods {
                0 => String::new(),
                n => format!(
                    " ({n} of them {}: #[critical] and #[upcall] take free functions only, so wrap each in a free function and annotate that)",
                    if n == 1 { "a method or closure" } else { "methods or closures" }
                ),
            },
            self.shared.len(),
            self.prompts.len(),
            sure,
            if self.toml.is_some() { ", microdriver-split.toml written" } else { "" }
        );
        out
    }
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
