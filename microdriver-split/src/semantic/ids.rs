//! Mapping rust-analyzer's functions onto the syntax pass's function identities, by file
//! and line (the line of the `fn` keyword, or of a closure's `|`), and adding the
//! functions only macro expansion reveals.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ra_ap_hir::{AsAssocItem, AssocItemContainer, Function, HasSource, Semantics};
use ra_ap_ide_db::RootDatabase;
use ra_ap_syntax::ast::{HasGenericParams, HasName, HasVisibility};
use ra_ap_syntax::{ast, AstNode, SyntaxNode};
use ra_ap_vfs::{FileId, Vfs};

use crate::model::{FnId, FnInfo, FnKind, Mark};

/// A file's text and line starts.
struct Text {
    path: PathBuf,
    text: String,
    line_starts: Vec<usize>,
}

impl Text {
    /// 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset)
    }
}

/// The function identities, old and new.
pub(super) struct Ids {
    /// Every function: the syntax pass's, then the ones macro expansion revealed.
    pub fns: Vec<FnInfo>,
    /// Functions (not closures) by canonical file and line.
    by_line: HashMap<(PathBuf, usize), Vec<FnId>>,
    /// Closures by canonical file and line, in id order.
    closures: HashMap<(PathBuf, usize), Vec<FnId>>,
    /// How many closures of a (file, line) the walk has met.
    closures_met: HashMap<(PathBuf, usize), usize>,
    /// Canonical file to the name the syntax pass gave it.
    pub names: HashMap<PathBuf, String>,
    /// The crate's files (canonical).
    texts: HashMap<FileId, Option<Text>>,
    /// Resolved functions.
    cache: HashMap<Function, Option<FnId>>,
}

fn canonical(file: &str) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file))
}

impl Ids {
    /// Indexes the syntax pass's functions.
    pub fn new(fns: Vec<FnInfo>) -> Ids {
        let mut ids = Ids {
            fns: Vec::new(),
            by_line: HashMap::new(),
            closures: HashMap::new(),
            closures_met: HashMap::new(),
            names: HashMap::new(),
            texts: HashMap::new(),
            cache: HashMap::new(),
        };
        for f in &fns {
            let path = canonical(&f.file);
            ids.names
                .entry(path.clone())
                .or_insert_with(|| f.file.clone());
            let map = if f.kind == FnKind::Closure {
                &mut ids.closures
            } else {
                &mut ids.by_line
            };
            map.entry((path, f.line)).or_default().push(f.id);
        }
        ids.fns = fns;
        ids
    }

    /// The crate's files, canonical.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.names.keys().map(PathBuf::as_path)
    }

    fn text(&mut self, vfs: &Vfs, file: FileId) -> Option<&Text> {
        self.texts
            .entry(file)
            .or_insert_with(|| {
                let path: &Path = vfs.file_path(file).as_path()?.as_ref();
                let path = std::fs::canonicalize(path).ok()?;
                let text = std::fs::read_to_string(&path).ok()?;
                let mut line_starts = vec![0];
                line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
                Some(Text {
                    path,
                    text,
                    line_starts,
                })
            })
            .as_ref()
    }

    /// The crate file and line a node comes from (a node in a macro expansion: the line
    /// of `fn NAME` when `name` is given and the expansion maps back to text holding it,
    /// else where the macro is called). `None` outside the crate.
    pub fn location(
        &mut self,
        sema: &Semantics<'_, RootDatabase>,
        vfs: &Vfs,
        node: &SyntaxNode,
        name: Option<&str>,
    ) -> Option<(PathBuf, usize)> {
        let range = sema.original_range(node);
        let file = range.file_id.file_id(sema.db);
        let names = std::mem::take(&mut self.names);
        let text = self.text(vfs, file);
        let in_crate = text.is_some_and(|t| names.contains_key(&t.path));
        self.names = names;
        if !in_crate {
            return None;
        }
        let text = self.text(vfs, file)?;
        let start = usize::from(range.range.start());
        let end = usize::from(range.range.end()).min(text.text.len());
        let mut offset = start;
        if let Some(name) = name {
            let span = text.text.get(start..end).unwrap_or_default();
            let pattern = format!("fn {name}");
            let hit = span.match_indices(&pattern).find(|(i, _)| {
                let after = span[i + pattern.len()..].chars().next();
                !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            if let Some((i, _)) = hit {
                offset = start + i;
            }
        }
        Some((text.path.clone(), text.line(offset)))
    }

    /// The id of a closure at a file and line: the next one the walk has not met yet.
    pub fn closure(&mut self, at: (PathBuf, usize)) -> Option<FnId> {
        let list = self.closures.get(&at)?;
        let met = self.closures_met.entry(at).or_insert(0);
        let id = list.get(*met).copied();
        *met += 1;
        id
    }

    /// The id of a function of the crate (a new node for one an item-level macro
    /// generates), or `None` for a function outside the crate.
    pub fn function(
        &mut self,
        sema: &Semantics<'_, RootDatabase>,
        vfs: &Vfs,
        f: Function,
    ) -> Option<FnId> {
        if let Some(id) = self.cache.get(&f) {
            return *id;
        }
        let id = self.lookup(sema, vfs, f);
        self.cache.insert(f, id);
        id
    }

    fn lookup(
        &mut self,
        sema: &Semantics<'_, RootDatabase>,
        vfs: &Vfs,
        f: Function,
    ) -> Option<FnId> {
        let db = sema.db;
        let src = f.source(db)?;
        let name = f.name(db).as_str().to_string();
        let node = src.value.syntax().clone();
        // Make the node known to the semantics (its file parsed or its macro expanded).
        let root = sema.parse_or_expand(src.file_id);
        let node = root
            .descendants()
            .find(|n| n.text_range() == node.text_range() && n.kind() == node.kind())
            .unwrap_or(node);
        let at = self.location(sema, vfs, &node, Some(&name))?;
        if let Some(id) = self.by_line.get(&at).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|&i| self.fns.get(i).is_some_and(|g| g.name == name))
        }) {
            return Some(id);
        }
        if !src.file_id.is_macro() {
            // A function the syntax pass did not see in a crate file (a `cfg` it left
            // out): no node for it.
            return None;
        }
        let func = ast::Fn::cast(node)?;
        let id = self.fns.len();
        let info = new_fn(sema, f, &func, id, &name, &at, self.names.get(&at.0));
        self.by_line.entry(at).or_default().push(id);
        self.fns.push(info);
        Some(id)
    }
}

/// A node for a function that only macro expansion reveals, located at the macro call.
fn new_fn(
    sema: &Semantics<'_, RootDatabase>,
    f: Function,
    func: &ast::Fn,
    id: FnId,
    name: &str,
    at: &(PathBuf, usize),
    file: Option<&String>,
) -> FnInfo {
    let db = sema.db;
    let mut path: Vec<String> = f
        .module(db)
        .path_to_root(db)
        .into_iter()
        .rev()
        .filter_map(|m| m.name(db).map(|n| n.as_str().to_string()))
        .collect();
    let (kind, self_ty, trait_name) = match f.as_assoc_item(db).map(|a| a.container(db)) {
        Some(AssocItemContainer::Impl(i)) => {
            let self_ty = i
                .self_ty(db)
                .as_adt()
                .map(|a| a.name(db).as_str().to_string());
            let trait_name = i.trait_(db).map(|t| t.name(db).as_str().to_string());
            let kind = if trait_name.is_some() {
                FnKind::TraitImpl
            } else {
                FnKind::Inherent
            };
            (kind, self_ty, trait_name)
        }
        Some(AssocItemContainer::Trait(t)) => (
            FnKind::TraitDefault,
            None,
            Some(t.name(db).as_str().to_string()),
        ),
        None => (FnKind::Free, None, None),
    };
    match (&self_ty, &trait_name, kind) {
        (Some(s), Some(t), FnKind::TraitImpl) => path.push(format!("<{s} as {t}>")),
        (Some(s), _, _) => path.push(s.clone()),
        (None, Some(t), FnKind::TraitDefault) => path.push(t.clone()),
        _ => {}
    }
    path.push(name.to_string());
    let params = func.param_list();
    let has_self = params.as_ref().and_then(|p| p.self_param()).is_some();
    let typed: Vec<String> = params
        .iter()
        .flat_map(|p| p.params())
        .map(|p| {
            p.ty()
                .map(|t| t.syntax().text().to_string())
                .unwrap_or_default()
        })
        .collect();
    let generics = func
        .generic_param_list()
        .iter()
        .flat_map(|g| g.type_or_const_params())
        .filter_map(|p| match p {
            ast::TypeOrConstParam::Type(t) => t.name().map(|n| n.text().to_string()),
            ast::TypeOrConstParam::Const(_) => None,
        })
        .collect();
    let lines = func.syntax().text().to_string().lines().count().max(1);
    FnInfo {
        id,
        path: path.join("::"),
        name: name.to_string(),
        kind,
        self_ty,
        trait_name,
        file: file.cloned().unwrap_or_else(|| at.0.display().to_string()),
        line: at.1,
        end_line: at.1,
        lines,
        arity: typed.len() + usize::from(has_self),
        has_self,
        params: typed,
        generics,
        ret: func
            .ret_type()
            .and_then(|r| r.ty())
            .map(|t| t.syntax().text().to_string()),
        mark: Mark::None,
        public: func.visibility().is_some() || kind == FnKind::TraitImpl,
        address_taken: false,
        parent: None,
    }
}
