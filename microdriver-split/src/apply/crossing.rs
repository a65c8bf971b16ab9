//! What crosses the cut: the crate's types, whether each can cross as it is, and the
//! marshal prompts (with their guesses) for the fields that cannot.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use quote::ToTokens;
use serde::Serialize;
use syn::spanned::Spanned;

use super::{Options, Plan};

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

#[derive(Debug, Clone)]
pub(super) struct FieldDecl {
    name: String,
    ty: syn::Type,
    line: usize,
    marshal: Option<String>,
}

impl FieldDecl {
    /// Field `index` of a struct, or of enum variant `variant` (named `Variant.field`).
    fn of(variant: Option<&syn::Ident>, index: usize, f: &syn::Field) -> FieldDecl {
        let field = f
            .ident
            .as_ref()
            .map_or_else(|| index.to_string(), ToString::to_string);
        FieldDecl {
            name: match variant {
                Some(v) => format!("{v}.{field}"),
                None => field,
            },
            ty: f.ty.clone(),
            line: f
                .ident
                .as_ref()
                .map_or_else(|| f.ty.span(), syn::Ident::span)
                .start()
                .line,
            marshal: marshal_attr(&f.attrs),
        }
    }
}

#[derive(Debug, Clone)]
struct TypeDecl {
    file: PathBuf,
    line: usize,
    derives_marshal: bool,
    fields: Vec<FieldDecl>,
}

#[derive(Debug, Default)]
pub(super) struct Types {
    decls: HashMap<String, TypeDecl>,
    aliases: HashMap<String, (Vec<String>, syn::Type)>,
    /// Names of the crate's statics.
    pub(super) statics: Vec<String>,
    /// Types with an `impl From<CallError> for T`.
    pub(super) from_call_error: HashSet<String>,
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
    pub(super) fn collect(src: &crate::parse::Source) -> Types {
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
                    .map(|(i, f)| FieldDecl::of(None, i, f))
                    .collect();
                self.add(&s.ident, &s.attrs, file, fields);
            }
            syn::Item::Enum(e) => {
                let fields = e
                    .variants
                    .iter()
                    .flat_map(|v| {
                        let variant = &v.ident;
                        v.fields
                            .iter()
                            .enumerate()
                            .map(move |(i, f)| FieldDecl::of(Some(variant), i, f))
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

pub(super) fn last_ident(ty: &syn::Type) -> Option<String> {
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
pub(super) const PRIMITIVES: &[&str] = &[
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
pub(super) struct Obstacle {
    pub(super) why: String,
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
    pub(super) fn check(
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

pub(super) fn prompts(
    types: &Types,
    crossing: &[(String, String)],
    opts: &Options,
    plan: &mut Plan,
) {
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
