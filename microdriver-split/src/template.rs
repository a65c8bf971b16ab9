//! Critical roots: `#[critical]` / `#[critical(root)]` annotations, functions named on
//! the command line, and a per-family template (TOML) of root signatures.

use serde::{Deserialize, Serialize};

use crate::callgraph::CallGraph;
use crate::error::{Error, Result};
use crate::model::{FnId, FnInfo, FnKind, Mark};

/// The builtin network-driver template.
pub const NET_TEMPLATE: &str = include_str!("../templates/net.toml");
/// The builtin block (storage) driver template.
pub const BLOCK_TEMPLATE: &str = include_str!("../templates/block.toml");
/// The builtin sound (PCM) driver template.
pub const SOUND_TEMPLATE: &str = include_str!("../templates/sound.toml");
/// The builtin serial (UART) driver template.
pub const SERIAL_TEMPLATE: &str = include_str!("../templates/serial.toml");
/// The builtin family templates (`none` aside).
pub const BUILTINS: &[&str] = &["net", "block", "sound", "serial"];

/// A family template.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Template {
    /// The driver family.
    pub family: String,
    /// What the roots are.
    #[serde(default)]
    pub description: String,
    /// Roles a driver of this family has at least one of (none: no expectation).
    #[serde(default)]
    pub expect: Vec<String>,
    /// Globs on names that are never roots by name or signature alone (configuration
    /// verbs: `enable_*`, `clear_*`, ...); trait implementations and registered handlers
    /// are roots whatever their name.
    #[serde(default)]
    pub not_names: Vec<String>,
    /// Root rules.
    #[serde(default)]
    pub roots: Vec<RootRule>,
}

/// One root rule: a conjunction of constraints.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RootRule {
    /// The role of the roots it finds (`interrupt`, `transmit`, `poll`).
    pub role: String,
    /// Globs on the function name.
    #[serde(default)]
    pub names: Vec<String>,
    /// Identifiers one of which must appear in the return type.
    #[serde(default)]
    pub returns: Vec<String>,
    /// Parameter type patterns (`self` excluded).
    #[serde(default)]
    pub params: Option<Vec<String>>,
    /// Types one of which some parameter's type contains (after normalisation:
    /// `"[u8]"` matches `&mut [u8]`).
    #[serde(default)]
    pub takes: Vec<String>,
    /// `Trait::method` the function must implement (globs on both parts).
    #[serde(default)]
    pub trait_methods: Vec<String>,
    /// Globs on the name of the function the candidate is passed to as a value
    /// (`request_irq`): functions registered as handlers with it.
    #[serde(default)]
    pub registered_with: Vec<String>,
}

/// Why a rule matched, strongest kind of evidence first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evidence {
    /// Implements one of the family's framework trait methods.
    Trait,
    /// Passed to a handler-registration function.
    Registered,
    /// Its signature (parameter or return types) fits, with or without a name.
    Signature,
    /// Its name alone: the last hint.
    Name,
}

/// Why a function is a root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
pub enum RootReason {
    /// Named with `--root`.
    Listed,
    /// `#[critical(root)]`.
    Annotated,
    /// Matched a template rule.
    Template {
        /// The role (`interrupt`, `transmit`, ...).
        role: String,
        /// The evidence: the trait it implements, where it was registered, the
        /// signature or the name that matched.
        why: String,
    },
    /// Plain `#[critical]`: kept in the kernel half, but must itself be reached from an
    /// entry root (see `check`).
    Critical,
}

/// A critical root.
#[derive(Debug, Clone, Serialize)]
pub struct Root {
    /// The function.
    pub fn_id: FnId,
    /// Why.
    pub reason: RootReason,
}

impl Root {
    /// Entry roots are every root except plain `#[critical]` functions.
    pub fn is_entry(&self) -> bool {
        self.reason != RootReason::Critical
    }
}

/// Simple glob: `*` matches any run of characters.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let last = rest.last().copied().unwrap_or_default();
    for mid in &rest[..rest.len() - 1] {
        match remaining.find(mid) {
            Some(i) => remaining = &remaining[i + mid.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// Normalises a type for comparison: no whitespace, lifetimes or path prefixes.
pub fn normalise_type(ty: &str) -> String {
    let compact: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    let mut out = String::new();
    let mut chars = compact.chars().peekable();
    let mut word = String::new();
    while let Some(c) = chars.next() {
        if c == '\'' {
            // lifetime: skip it and a following comma
            while chars
                .peek()
                .is_some_and(|c| c.is_alphanumeric() || *c == '_')
            {
                chars.next();
            }
            if chars.peek() == Some(&',') {
                chars.next();
            }
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            word.clear();
            continue;
        }
        out.push_str(&word);
        word.clear();
        out.push(c);
    }
    out.push_str(&word);
    out.replace("<>", "")
}

fn params_match(patterns: &[String], params: &[String]) -> bool {
    let mut i = 0;
    for p in patterns {
        if p == ".." {
            return true;
        }
        let Some(actual) = params.get(i) else {
            return false;
        };
        if p != "_" && normalise_type(p) != normalise_type(actual) {
            return false;
        }
        i += 1;
    }
    i == params.len()
}

impl RootRule {
    fn is_empty(&self) -> bool {
        self.names.is_empty()
            && self.returns.is_empty()
            && self.params.is_none()
            && self.takes.is_empty()
            && self.trait_methods.is_empty()
            && self.registered_with.is_empty()
    }

    /// Whether a function satisfies every constraint of the rule, and why: `None` when it
    /// does not. `not_names` vetoes matches that rest on the name or signature alone.
    pub fn matches(
        &self,
        f: &FnInfo,
        graph: &CallGraph,
        not_names: &[String],
    ) -> Option<(Evidence, String)> {
        if self.is_empty() || f.kind == FnKind::Closure && self.registered_with.is_empty() {
            return None;
        }
        let mut evidence = Evidence::Name;
        let mut why: Vec<String> = Vec::new();
        if !self.trait_methods.is_empty() {
            let t = f.trait_name.as_ref()?;
            let hit = self.trait_methods.iter().find(|tm| {
                tm.split_once("::")
                    .is_some_and(|(gt, gm)| glob(gt, t) && glob(gm, &f.name))
            })?;
            evidence = Evidence::Trait;
            why.push(format!("implements {t}::{} (rule `{hit}`)", f.name));
        }
        if !self.registered_with.is_empty() {
            let r = graph.registrations.iter().find(|r| {
                r.value == f.id && self.registered_with.iter().any(|g| glob(g, &r.with))
            })?;
            evidence = evidence.min(Evidence::Registered);
            why.push(format!(
                "registered as a handler with {} at {}:{}",
                r.with, r.file, r.line
            ));
        }
        if !self.returns.is_empty() {
            let ret = f.ret.clone().unwrap_or_default();
            let words: Vec<&str> = ret
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .collect();
            let hit = self.returns.iter().find(|r| words.contains(&r.as_str()))?;
            evidence = evidence.min(Evidence::Signature);
            why.push(format!("returns {hit}"));
        }
        if !self.takes.is_empty() {
            let hit = self.takes.iter().find(|t| {
                let want = normalise_type(t);
                f.params.iter().any(|p| normalise_type(p).contains(&want))
            })?;
            evidence = evidence.min(Evidence::Signature);
            why.push(format!("takes {hit}"));
        }
        if let Some(p) = &self.params {
            if !params_match(p, &f.params) {
                return None;
            }
            evidence = evidence.min(Evidence::Signature);
            why.push(format!("parameters fit ({})", p.join(", ")));
        }
        if !self.names.is_empty() {
            let hit = self.names.iter().find(|g| glob(g, &f.name))?;
            if evidence == Evidence::Name && !f.public {
                // An entry point is called from outside the crate: a name alone does not
                // make a private helper (`fn quiesce_rx`) a root.
                return None;
            }
            if evidence == Evidence::Name {
                why.push(format!("name matches `{hit}` (a hint only)"));
            } else {
                why.push(format!("name matches `{hit}`"));
            }
        }
        if evidence >= Evidence::Signature && not_names.iter().any(|g| glob(g, &f.name)) {
            return None;
        }
        Some((evidence, why.join("; ")))
    }
}

impl Template {
    /// Parses a template from TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Template> {
        let t: Template = toml::from_str(text).map_err(|e| Error::Template {
            path: origin.to_string(),
            message: e.to_string(),
        })?;
        if let Some(r) = t.roots.iter().find(|r| r.is_empty()) {
            return Err(Error::Template {
                path: origin.to_string(),
                message: format!("rule for role `{}` has no constraint (give names, returns, params, takes, trait_methods or registered_with)", r.role),
            });
        }
        Ok(t)
    }

    /// A builtin template: `net`, `block`, `sound`, `serial`, or `none` (no template roots).
    pub fn builtin(name: &str) -> Result<Template> {
        match name {
            "net" => Self::parse(NET_TEMPLATE, "builtin:net"),
            "block" => Self::parse(BLOCK_TEMPLATE, "builtin:block"),
            "sound" => Self::parse(SOUND_TEMPLATE, "builtin:sound"),
            "serial" => Self::parse(SERIAL_TEMPLATE, "builtin:serial"),
            "none" => Ok(Template {
                family: "none".into(),
                ..Template::default()
            }),
            other => Err(Error::Template {
                path: other.to_string(),
                message: "no such builtin template (builtins: net, block, sound, serial, none; or give a .toml path)"
                    .into(),
            }),
        }
    }

    /// A builtin name (`net`, `block`, `sound`, `none`) or a path to a TOML file.
    pub fn load(spec: &str) -> Result<Template> {
        if spec == "none" || BUILTINS.contains(&spec) {
            return Self::builtin(spec);
        }
        let text = std::fs::read_to_string(spec).map_err(|source| Error::Io {
            path: spec.into(),
            source,
        })?;
        Self::parse(&text, spec)
    }

    /// All roots of a graph: `--root` functions, `#[critical(root)]`, template matches and
    /// plain `#[critical]` functions, each once (in that order of precedence).
    pub fn roots(&self, graph: &CallGraph, listed: &[String]) -> Result<Vec<Root>> {
        let mut reasons: Vec<Option<RootReason>> = vec![None; graph.fns.len()];
        for name in listed {
            let id = graph.find(name)?;
            reasons[id] = Some(RootReason::Listed);
        }
        for f in &graph.fns {
            if reasons[f.id].is_some() {
                continue;
            }
            reasons[f.id] = if f.mark == Mark::CriticalRoot {
                Some(RootReason::Annotated)
            } else if let Some((role, why)) = self.best_match(f, graph) {
                Some(RootReason::Template { role, why })
            } else if f.mark == Mark::Critical {
                Some(RootReason::Critical)
            } else {
                None
            };
        }
        Ok(reasons
            .into_iter()
            .enumerate()
            .filter_map(|(fn_id, r)| r.map(|reason| Root { fn_id, reason }))
            .collect())
    }
}

impl Template {
    /// The strongest rule match of `f` (trait, then registration, then signature, then
    /// name; the first rule among equals): its role and why.
    pub fn best_match(&self, f: &FnInfo, graph: &CallGraph) -> Option<(String, String)> {
        self.roots
            .iter()
            .filter_map(|r| {
                r.matches(f, graph, &self.not_names)
                    .map(|(ev, why)| (ev, r.role.clone(), why))
            })
            .min_by_key(|(ev, _, _)| *ev)
            .map(|(_, role, why)| (role, why))
    }

    /// The functions of `graph` this template's rules match, with their roles.
    fn matches<'g>(&self, graph: &'g CallGraph) -> Vec<(&'g FnInfo, String)> {
        graph
            .fns
            .iter()
            .filter_map(|f| self.best_match(f, graph).map(|(role, _)| (f, role)))
            .collect()
    }

    /// Whether the crate looks like a driver of this family: some function takes one of
    /// the roles in `expect` (always true without an expectation).
    fn fits(&self, graph: &CallGraph) -> bool {
        self.fits_found(&self.matches(graph))
    }

    /// Whether `found` (this template's matches) includes a role in `expect`.
    fn fits_found(&self, found: &[(&FnInfo, String)]) -> bool {
        self.expect.is_empty()
            || found
                .iter()
                .any(|(_, role)| self.expect.iter().any(|e| e == role))
    }

    /// Warnings when the roots this template found do not look like its family: none at
    /// all, or none of the roles a driver of the family has. Each names what was found and
    /// a builtin template whose expected roles the crate does have, if there is one.
    pub fn family_warnings(&self, graph: &CallGraph) -> Vec<String> {
        if self.family == "none" {
            return Vec::new();
        }
        let found = self.matches(graph);
        if self.fits_found(&found) {
            return Vec::new();
        }
        let mut warning = if found.is_empty() {
            format!(
                "template `{}` found no roots in this crate (no implementation of its framework traits, no function registered as a handler, no signature or name that fits): it may not be a {} driver",
                self.family, self.family
            )
        } else {
            let list: Vec<String> = found
                .iter()
                .take(6)
                .map(|(f, role)| format!("{} ({role})", f.path))
                .collect();
            format!(
                "template `{}` found only {} ({}), none of the roles a {} driver has ({}): it may not be a {} driver",
                self.family,
                if found.len() == 1 { "one root" } else { "roots" },
                list.join(", "),
                self.family,
                self.expect.join(", "),
                self.family
            )
        };
        let better: Vec<&str> = BUILTINS
            .iter()
            .copied()
            .filter(|name| *name != self.family)
            .filter(|name| Template::builtin(name).is_ok_and(|t| t.fits(graph)))
            .collect();
        match better.as_slice() {
            [] => warning.push_str(
                "; name its entry points with --root or #[critical(root)], or write a template",
            ),
            names => {
                let names: Vec<String> = names.iter().map(|n| format!("--template {n}")).collect();
                warning.push_str(&format!(
                    "; it looks like another family: try {}",
                    names.join(" or ")
                ));
            }
        }
        vec![warning]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*_intr", "e1000_intr"));
        assert!(!glob("*_intr", "e1000_intr_x"));
        assert!(glob("intr", "intr"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXc"));
        assert!(glob("*", ""));
    }

    #[test]
    fn types_normalise() {
        assert_eq!(normalise_type("& 'a crate :: hw :: Adapter"), "&Adapter");
        assert_eq!(normalise_type("Option < & mut Ring >"), "Option<&mutRing>");
        assert_eq!(normalise_type("Foo<'a>"), "Foo");
    }

    #[test]
    fn net_template_parses() {
        let t = Template::builtin("net").expect("builtin parses");
        assert_eq!(t.family, "net");
        let roles: std::collections::BTreeSet<&str> =
            t.roots.iter().map(|r| r.role.as_str()).collect();
        assert_eq!(
            roles.into_iter().collect::<Vec<_>>(),
            ["interrupt", "poll", "receive", "transmit"]
        );
    }

    #[test]
    fn every_builtin_parses_and_expects_roles_it_has() {
        for name in BUILTINS {
            let t = Template::builtin(name).expect("builtin parses");
            assert_eq!(t.family, *name);
            assert!(!t.expect.is_empty(), "{name} expects no role");
            for role in &t.expect {
                assert!(
                    t.roots.iter().any(|r| &r.role == role),
                    "{name} expects `{role}` but has no rule for it"
                );
            }
        }
    }

    #[test]
    fn empty_rule_rejected() {
        let err = Template::parse("family = \"x\"\n[[roots]]\nrole = \"r\"\n", "t.toml");
        assert!(err.is_err());
    }
}
