//! `#[cfg(...)]` evaluation.
//!
//! The splitter analyses the union of all configurations: a predicate it cannot decide
//! (a feature, a target, `loom`) keeps the item. Only predicates that are definitely false
//! drop an item: `test` (unless `--cfg test` was given), names switched off with
//! `--no-cfg`, and the constant-false forms `any()` / `not(all())`.

use std::collections::BTreeSet;

use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::{Attribute, Expr, Lit, Meta, Token};

/// The configuration the analysis assumes.
#[derive(Debug, Clone)]
pub struct CfgSet {
    /// Names (`test`, `loom`) or `key="value"` pairs known to be set.
    pub on: BTreeSet<String>,
    /// Names or pairs known to be unset.
    pub off: BTreeSet<String>,
}

impl Default for CfgSet {
    fn default() -> Self {
        CfgSet {
            on: BTreeSet::new(),
            off: ["test".to_string()].into_iter().collect(),
        }
    }
}

/// Three-valued truth: `Unknown` keeps the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Definitely set.
    True,
    /// Definitely unset.
    False,
    /// Depends on the build; the item is kept.
    Unknown,
}

impl CfgSet {
    /// Builds the set from `--cfg` / `--no-cfg` values.
    pub fn new(on: &[String], off: &[String]) -> Self {
        let mut set = CfgSet::default();
        for o in on {
            let key = normalise(o);
            set.off.remove(&key);
            set.on.insert(key);
        }
        for o in off {
            let key = normalise(o);
            set.on.remove(&key);
            set.off.insert(key);
        }
        set
    }

    /// Evaluates every `#[cfg]` on an item. Returns the predicates (as source text) and
    /// whether the item is kept.
    pub fn eval_attrs(&self, attrs: &[Attribute]) -> (Vec<String>, bool) {
        let mut preds = Vec::new();
        let mut keep = true;
        for attr in attrs {
            if !attr.path().is_ident("cfg") {
                continue;
            }
            let Meta::List(list) = &attr.meta else {
                continue;
            };
            preds.push(list.tokens.to_string());
            // An unparsable predicate is undecidable: keep the item.
            if let Ok(meta) = list.parse_args::<Meta>() {
                if self.eval(&meta) == Truth::False {
                    keep = false;
                }
            }
        }
        (preds, keep)
    }

    /// Evaluates one predicate.
    pub fn eval(&self, meta: &Meta) -> Truth {
        match meta {
            Meta::Path(p) => self.lookup(&p.to_token_stream().to_string()),
            Meta::NameValue(nv) => {
                let value = match &nv.value {
                    Expr::Lit(l) => match &l.lit {
                        Lit::Str(s) => s.value(),
                        other => other.to_token_stream().to_string(),
                    },
                    other => other.to_token_stream().to_string(),
                };
                let key = format!("{}=\"{}\"", nv.path.to_token_stream(), value);
                self.lookup(&key)
            }
            Meta::List(list) => {
                let name = list.path.to_token_stream().to_string();
                let args = list
                    .parse_args_with(Punctuated::<Meta, Token![,]>::parse_terminated)
                    .map(|p| p.into_iter().collect::<Vec<_>>());
                let Ok(args) = args else {
                    return Truth::Unknown;
                };
                let vals: Vec<Truth> = args.iter().map(|m| self.eval(m)).collect();
                match name.as_str() {
                    "all" => {
                        if vals.contains(&Truth::False) {
                            Truth::False
                        } else if vals.iter().all(|v| *v == Truth::True) {
                            Truth::True
                        } else {
                            Truth::Unknown
                        }
                    }
                    "any" => {
                        if vals.contains(&Truth::True) {
                            Truth::True
                        } else if vals.iter().all(|v| *v == Truth::False) {
                            Truth::False
                        } else {
                            Truth::Unknown
                        }
                    }
                    "not" => match vals.as_slice() {
                        [Truth::True] => Truth::False,
                        [Truth::False] => Truth::True,
                        _ => Truth::Unknown,
                    },
                    _ => Truth::Unknown,
                }
            }
        }
    }

    fn lookup(&self, key: &str) -> Truth {
        let key = normalise(key);
        if self.on.contains(&key) {
            Truth::True
        } else if self.off.contains(&key) {
            Truth::False
        } else {
            Truth::Unknown
        }
    }
}

fn normalise(s: &str) -> String {
    s.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(set: &CfgSet, src: &str) -> Truth {
        let meta: Meta = syn::parse_str(src).expect("test predicate parses");
        set.eval(&meta)
    }

    #[test]
    fn test_is_off_by_default_and_features_unknown() {
        let set = CfgSet::default();
        assert_eq!(eval(&set, "test"), Truth::False);
        assert_eq!(eval(&set, "not(test)"), Truth::True);
        assert_eq!(eval(&set, "feature = \"x\""), Truth::Unknown);
        assert_eq!(eval(&set, "all(test, feature = \"x\")"), Truth::False);
        assert_eq!(eval(&set, "any(test, feature = \"x\")"), Truth::Unknown);
        assert_eq!(eval(&set, "any()"), Truth::False);
        assert_eq!(eval(&set, "all()"), Truth::True);
    }

    #[test]
    fn command_line_switches() {
        let set = CfgSet::new(&["test".into()], &["feature = \"x\"".into()]);
        assert_eq!(eval(&set, "test"), Truth::True);
        assert_eq!(eval(&set, "feature=\"x\""), Truth::False);
    }
}
