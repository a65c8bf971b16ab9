//! Loading a crate's source: the root file, every `mod` it declares (following
//! `#[path]`), inline modules, and `#[cfg]` filtering of items.

use std::path::{Path, PathBuf};

use syn::spanned::Spanned;
use syn::{Attribute, Expr, Item, Lit, Meta};

use crate::cfg::CfgSet;
use crate::error::{Error, Result};
use crate::model::{CfgNote, Unresolved};

/// One module: inline or from its own file.
#[derive(Debug)]
pub struct Module {
    /// Path from the crate root (empty for the root).
    pub path: Vec<String>,
    /// Index of the parent module.
    pub parent: Option<usize>,
    /// The file the module's items are in.
    pub file: PathBuf,
    /// Where `mod child;` declarations look for files.
    pub dir: PathBuf,
    /// The module's items, `cfg`-filtered; nested modules are removed (they are modules
    /// of their own).
    pub items: Vec<Item>,
}

/// A loaded crate.
#[derive(Debug, Default)]
pub struct Source {
    /// The crate root file.
    pub root: PathBuf,
    /// All modules, the root first.
    pub modules: Vec<Module>,
    /// Every `cfg`-gated item seen, and whether it was kept.
    pub cfg_notes: Vec<CfgNote>,
    /// Module files that could not be found, item macros not expanded.
    pub unresolved: Vec<Unresolved>,
    /// The crate is of edition 2015 (parsed with [`crate::edition::rewrite_2015`]).
    pub edition2015: bool,
}

/// Finds the root file for a path given on the command line.
pub fn find_root(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    for cand in ["src/lib.rs", "src/main.rs", "lib.rs", "main.rs"] {
        let p = path.join(cand);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(Error::NotACrate(path.to_path_buf()))
}

/// Parses one file (of a crate of edition 2018 or later).
pub fn parse_file(path: &Path) -> Result<syn::File> {
    parse_file_in(path, false)
}

/// Parses one file; `edition2015` rewrites what syn does not accept from that edition
/// (see [`crate::edition`]).
pub fn parse_file_in(path: &Path, edition2015: bool) -> Result<syn::File> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed = if edition2015 {
        // Drop a shebang line the tokenizer would reject, keeping line numbers.
        let body = match text.strip_prefix("#!") {
            Some(rest) if !rest.starts_with('[') => {
                let nl = rest.find('\n').map_or(rest.len(), |i| i);
                format!("\n{}", &rest[nl..])
            }
            _ => text.clone(),
        };
        body.parse::<proc_macro2::TokenStream>()
            .map_err(|e| syn::Error::new(e.span(), e.to_string()))
            .and_then(|ts| syn::parse2::<syn::File>(crate::edition::rewrite_2015(ts)))
    } else {
        syn::parse_file(&text)
    };
    parsed.map_err(|e| {
        let start = e.span().start();
        Error::Parse {
            path: path.to_path_buf(),
            line: start.line,
            column: start.column + 1,
            message: e.to_string(),
        }
    })
}

/// Loads the crate rooted at `root` (a `.rs` file).
pub fn load(root: &Path, cfg: &CfgSet) -> Result<Source> {
    let edition2015 = crate::edition::crate_edition(root).as_deref() == Some("2015");
    let file = parse_file_in(root, edition2015)?;
    let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut src = Source {
        root: root.to_path_buf(),
        edition2015,
        ..Source::default()
    };
    let mut loader = Loader {
        cfg,
        src: &mut src,
        edition2015,
    };
    loader.add_module(Vec::new(), None, root.to_path_buf(), dir, true, file.items)?;
    Ok(src)
}

struct Loader<'a> {
    cfg: &'a CfgSet,
    src: &'a mut Source,
    edition2015: bool,
}

/// The string value of a `#[path = "..."]` attribute.
fn path_attr(attrs: &[Attribute]) -> Option<String> {
    attrs.iter().find_map(|a| {
        if !a.path().is_ident("path") {
            return None;
        }
        let Meta::NameValue(nv) = &a.meta else {
            return None;
        };
        match &nv.value {
            Expr::Lit(l) => match &l.lit {
                Lit::Str(s) => Some(s.value()),
                _ => None,
            },
            _ => None,
        }
    })
}

impl Loader<'_> {
    /// Adds a module; `file_level` says whether its items are the top of `file` (so that
    /// `#[path]` is relative to the file's directory) or an inline module's body.
    fn add_module(
        &mut self,
        path: Vec<String>,
        parent: Option<usize>,
        file: PathBuf,
        dir: PathBuf,
        file_level: bool,
        items: Vec<Item>,
    ) -> Result<()> {
        let index = self.src.modules.len();
        self.src.modules.push(Module {
            path: path.clone(),
            parent,
            file: file.clone(),
            dir: dir.clone(),
            items: Vec::new(),
        });
        let mut kept = Vec::new();
        let mut queue: std::collections::VecDeque<Item> = items.into();
        while let Some(item) = queue.pop_front() {
            if !self.keep(&item, &file, &path) {
                continue;
            }
            if let Item::Macro(m) = &item {
                if let Some(included) = self.item_macro(m, &file)? {
                    for (k, it) in included.into_iter().enumerate() {
                        queue.insert(k, it);
                    }
                }
                kept.push(item);
                continue;
            }
            let Item::Mod(m) = item else {
                kept.push(item);
                continue;
            };
            let name = m.ident.to_string();
            let mut child_path = path.clone();
            child_path.push(name.clone());
            let explicit = path_attr(&m.attrs);
            match m.content {
                Some((_, inner)) => {
                    let child_dir = match &explicit {
                        Some(p) => dir.join(p),
                        None => dir.join(&name),
                    };
                    self.add_module(
                        child_path,
                        Some(index),
                        file.clone(),
                        child_dir,
                        false,
                        inner,
                    )?;
                }
                None => {
                    let line = m.ident.span().start().line;
                    let (candidates, mod_rs_like) = match &explicit {
                        Some(p) => {
                            let base = if file_level {
                                file.parent().map(Path::to_path_buf).unwrap_or_default()
                            } else {
                                dir.clone()
                            };
                            (vec![base.join(p)], true)
                        }
                        None => (
                            vec![
                                dir.join(format!("{name}.rs")),
                                dir.join(&name).join("mod.rs"),
                            ],
                            false,
                        ),
                    };
                    let Some(found) = candidates.iter().find(|c| c.is_file()).cloned() else {
                        let tried: Vec<String> =
                            candidates.iter().map(|c| c.display().to_string()).collect();
                        self.src.unresolved.push(Unresolved {
                            file: file.display().to_string(),
                            line,
                            what: format!("mod {name}"),
                            reason: format!("module file not found (tried {})", tried.join(", ")),
                        });
                        continue;
                    };
                    let parsed = parse_file_in(&found, self.edition2015)?;
                    let is_mod_rs = mod_rs_like
                        || found
                            .file_name()
                            .is_some_and(|n| n == "mod.rs" || n == "lib.rs" || n == "main.rs");
                    let child_dir = if is_mod_rs {
                        found.parent().map(Path::to_path_buf).unwrap_or_default()
                    } else {
                        dir.join(&name)
                    };
                    self.add_module(
                        child_path,
                        Some(index),
                        found,
                        child_dir,
                        true,
                        parsed.items,
                    )?;
                }
            }
        }
        self.src.modules[index].items = kept;
        Ok(())
    }

    /// An item-level macro: `include!("file.rs")` returns the file's items (they belong
    /// to the module); a `macro_rules!` definition or any other item macro is listed as
    /// unresolved, since the items it expands to are not analysed.
    fn item_macro(&mut self, m: &syn::ItemMacro, file: &Path) -> Result<Option<Vec<Item>>> {
        let name = m
            .mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let line = m.mac.path.span().start().line;
        let note = |what: String, reason: &str| Unresolved {
            file: file.display().to_string(),
            line,
            what,
            reason: reason.to_string(),
        };
        if let Some(ident) = &m.ident {
            self.src.unresolved.push(note(
                format!("macro_rules! {ident}"),
                "macro definition: items its item-level invocations generate are not analysed \
                 (calls in its expression-level invocations' arguments are)",
            ));
            return Ok(None);
        }
        if name == "include" {
            if let Ok(lit) = m.mac.parse_body::<syn::LitStr>() {
                let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                let target = dir.join(lit.value());
                if target.is_file() {
                    let parsed = parse_file_in(&target, self.edition2015)?;
                    return Ok(Some(parsed.items));
                }
                self.src.unresolved.push(note(
                    format!("include!(\"{}\")", lit.value()),
                    "included file not found (generated by a build script?): its items are not analysed",
                ));
                return Ok(None);
            }
            self.src.unresolved.push(note(
                "include!(..)".to_string(),
                "include! of a computed path (concat!/env!): its items are not analysed",
            ));
            return Ok(None);
        }
        self.src.unresolved.push(note(
            format!("{name}!"),
            "item macro not expanded: the items it generates are not analysed",
        ));
        Ok(None)
    }

    /// Applies `#[cfg]` (and drops `#[test]` functions), noting every gated item.
    fn keep(&mut self, item: &Item, file: &Path, module: &[String]) -> bool {
        let Some(attrs) = item_attrs(item) else {
            return true;
        };
        let (preds, mut keep) = self.cfg.eval_attrs(attrs);
        let is_test = attrs.iter().any(|a| a.path().is_ident("test"));
        if preds.is_empty() && !is_test {
            return true;
        }
        let mut preds = preds;
        if is_test {
            preds.push("#[test]".to_string());
            keep = keep && self.cfg.on.contains("test");
        }
        self.src.cfg_notes.push(CfgNote {
            file: file.display().to_string(),
            line: item.span().start().line,
            item: describe(item, module),
            predicate: preds.join(" && "),
            included: keep,
        });
        keep
    }
}

/// Same filtering for impl and trait members: returns the predicate text and the verdict.
pub fn item_attrs(item: &Item) -> Option<&Vec<Attribute>> {
    Some(match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => return None,
    })
}

/// A short description of an item for the cfg report.
fn describe(item: &Item, module: &[String]) -> String {
    let prefix = if module.is_empty() {
        String::new()
    } else {
        format!("{}::", module.join("::"))
    };
    match item {
        Item::Fn(f) => format!("fn {prefix}{}", f.sig.ident),
        Item::Mod(m) => format!("mod {prefix}{}", m.ident),
        Item::Struct(s) => format!("struct {prefix}{}", s.ident),
        Item::Enum(e) => format!("enum {prefix}{}", e.ident),
        Item::Trait(t) => format!("trait {prefix}{}", t.ident),
        Item::Impl(i) => {
            use quote::ToTokens;
            format!("impl {}", i.self_ty.to_token_stream())
        }
        Item::Use(_) => format!(
            "use in {}",
            if prefix.is_empty() { "crate" } else { &prefix }
        ),
        Item::Const(c) => format!("const {prefix}{}", c.ident),
        Item::Static(s) => format!("static {prefix}{}", s.ident),
        _ => format!(
            "item in {}",
            if prefix.is_empty() { "crate" } else { &prefix }
        ),
    }
}
