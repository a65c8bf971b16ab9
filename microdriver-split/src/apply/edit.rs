//! The source edits: the file cache that places them, the rewritten files, the unified
//! diff `--dry-run` prints.

use std::collections::HashMap;
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
