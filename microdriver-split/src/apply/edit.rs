//! The source edits: the file cache that places them, the rewritten files, the unified
//! diff `--dry-run` prints.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;

use super::Plan;
use crate::error::{Error, Result};

/// Source files read once.
#[derive(Default)]
pub(super) struct FileCache(HashMap<String, Vec<String>>);

impl FileCache {
    pub(super) fn lines(&mut self, file: &str) -> Option<&Vec<String>> {
        if !self.0.contains_key(file) {
            let text = std::fs::read_to_string(file).ok()?;
            self.0
                .insert(file.to_string(), text.lines().map(str::to_string).collect());
        }
        self.0.get(file)
    }

    pub(super) fn line(&mut self, file: &str, line: usize) -> Option<String> {
        self.lines(file)?.get(line.checked_sub(1)?).cloned()
    }

    /// Whether the body of `f` names `word` (a whole identifier).
    pub(super) fn body_mentions(&mut self, f: &crate::model::FnInfo, word: &str) -> bool {
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

    pub(super) fn indent_of(&mut self, file: &str, line: usize) -> Option<String> {
        let l = self.line(file, line)?;
        Some(l[..l.len() - l.trim_start().len()].to_string())
    }

    /// The 0-based index of the line to insert an attribute before (the first line of the
    /// signature, after doc comments and other attributes), and its indentation.
    pub(super) fn fn_line(
        &mut self,
        file: &str,
        line: usize,
        name: &str,
    ) -> Option<(usize, String)> {
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
    pub(super) fn attr_text(&mut self, file: &str, attr: &str) -> String {
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
        let files: BTreeSet<&PathBuf> = self.edits.keys().chain(self.replaced.keys()).collect();
        for file in files {
            let old = std::fs::read_to_string(file).map_err(|source| Error::Io {
                path: file.clone(),
                source,
            })?;
            // Replaced lines keep their slot (`None`: removed) until the insertions, made
            // by index into the old file, are done.
            let replaced = self.replaced.get(file);
            let mut lines: Vec<Option<String>> = old
                .lines()
                .enumerate()
                .map(|(i, l)| match replaced.and_then(|r| r.get(&i)) {
                    Some(new) => new.clone(),
                    None => Some(l.to_string()),
                })
                .collect();
            let mut edits = self.edits.get(file).cloned().unwrap_or_default();
            edits.sort_by_key(|e| std::cmp::Reverse(e.0));
            edits.dedup();
            for (at, text) in edits {
                lines.insert(at.min(lines.len()), Some(text));
            }
            let mut new = lines.into_iter().flatten().collect::<Vec<_>>().join("\n");
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
}

/// A unified diff of `old` to `new` (3 lines of context), for insertion-only edits and
/// any others.
fn unified_diff(path: &str, old: &str, new: &str) -> String {
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

/// The attributes `apply` writes by their short name where the file imports them.
const ATTRIBUTES: [&str; 2] = ["critical", "upcall"];

/// Whether `line` is the attribute `name` (`#[name]` or `#[name(...)]`).
fn is_attribute(line: &str, name: &str) -> bool {
    let t = line.trim_start();
    t.strip_prefix("#[")
        .and_then(|rest| rest.strip_prefix(name))
        .is_some_and(|rest| rest.starts_with(']') || rest.starts_with('('))
}

/// Whether the module glob-imports its parent (`use super::*;`), and so the parent's
/// private imports.
fn globs_parent(m: &crate::parse::Module) -> bool {
    m.items.iter().any(|item| {
        let syn::Item::Use(u) = item else {
            return false;
        };
        matches!(&u.tree, syn::UseTree::Path(p)
            if p.ident == "super" && matches!(&*p.tree, syn::UseTree::Glob(_)))
    })
}

/// Plans the removal of the `critical` / `upcall` imports from `microdriver_rt` that no
/// attribute uses once the edits are made (in the file, or in a module that glob-imports
/// it), so the applied crate builds without unused-import warnings. Only one-line
/// `use microdriver_rt::name;` and `use microdriver_rt::{a, b};` imports are edited.
pub(super) fn drop_unused_imports(
    src: &crate::parse::Source,
    files: &mut FileCache,
    plan: &mut Plan,
) {
    let names: Vec<String> = src
        .modules
        .iter()
        .map(|m| m.file.display().to_string())
        .collect();
    // Which attributes each file carries once applied.
    let mut used: HashMap<String, [bool; 2]> = HashMap::new();
    for name in &names {
        let inserted = plan.edits.get(&PathBuf::from(name));
        let lines = files.lines(name).cloned().unwrap_or_default();
        let all = lines
            .iter()
            .map(String::as_str)
            .chain(inserted.into_iter().flatten().map(|e| e.1.as_str()));
        let mut u = [false; 2];
        for line in all {
            for (k, attr) in ATTRIBUTES.iter().enumerate() {
                u[k] |= is_attribute(line, attr);
            }
        }
        used.insert(name.clone(), u);
    }
    // A module that glob-imports its parent uses the parent's imports.
    loop {
        let mut changed = false;
        for (i, m) in src.modules.iter().enumerate() {
            let Some(p) = m.parent else { continue };
            if !globs_parent(m) {
                continue;
            }
            let child = used.get(&names[i]).copied().unwrap_or_default();
            let parent = used.entry(names[p].clone()).or_default();
            for k in 0..ATTRIBUTES.len() {
                if child[k] && !parent[k] {
                    parent[k] = true;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut done = HashSet::new();
    for name in &names {
        if !done.insert(name.clone()) {
            continue;
        }
        let u = used.get(name).copied().unwrap_or_default();
        let Some(lines) = files.lines(name).cloned() else {
            continue;
        };
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim();
            let Some(body) = t
                .strip_prefix("use microdriver_rt::")
                .and_then(|b| b.strip_suffix(';'))
            else {
                continue;
            };
            let imported: Vec<&str> = match body.strip_prefix('{').and_then(|b| b.strip_suffix('}'))
            {
                Some(group) => group
                    .split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .collect(),
                None => vec![body.trim()],
            };
            let unused: Vec<&str> = imported
                .iter()
                .copied()
                .filter(|n| ATTRIBUTES.iter().zip(u).any(|(a, used)| n == a && !used))
                .collect();
            if unused.is_empty() {
                continue;
            }
            let keep: Vec<&str> = imported
                .iter()
                .copied()
                .filter(|n| !unused.contains(n))
                .collect();
            let indent = &line[..line.len() - line.trim_start().len()];
            let replaced = plan.replaced.entry(PathBuf::from(name)).or_default();
            match keep.as_slice() {
                [] => {
                    replaced.insert(i, None);
                    // Not two blank lines where the import was.
                    let blank = |j: usize| lines.get(j).is_none_or(|l| l.trim().is_empty());
                    if i > 0 && blank(i - 1) && i + 1 < lines.len() && blank(i + 1) {
                        replaced.insert(i + 1, None);
                    }
                }
                [one] => {
                    replaced.insert(i, Some(format!("{indent}use microdriver_rt::{one};")));
                }
                many => {
                    replaced.insert(
                        i,
                        Some(format!(
                            "{indent}use microdriver_rt::{{{}}};",
                            many.join(", ")
                        )),
                    );
                }
            }
            plan.imports.push(format!(
                "{name}:{}: `{}` no longer imports {}: no attribute uses it once applied",
                i + 1,
                t,
                unused
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
}
