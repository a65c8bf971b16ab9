//! Edition-2015 sources: what syn (which parses today's Rust) rejects in them, rewritten
//! on the token stream before parsing, spans kept: `async`, `await`, `try` (and `dyn`
//! where it is not a trait-object keyword) used as identifiers become raw identifiers,
//! and anonymous trait-method parameters (`fn f(&self, u32);`) get a `_:` pattern.

use std::path::Path;

use proc_macro2::{Delimiter, Group, Ident, Punct, Spacing, Span, TokenStream, TokenTree};

/// The edition of the crate whose root file is `root`, from the nearest `Cargo.toml` with
/// a `[package]` table (2015 when it has no `edition` key); `None` without a manifest or
/// when the edition is inherited from a workspace.
pub fn crate_edition(root: &Path) -> Option<String> {
    for dir in root.ancestors().skip(1).take(4) {
        let manifest = dir.join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let Ok(value) = text.parse::<toml::Table>() else {
            return None;
        };
        let Some(package) = value.get("package").and_then(toml::Value::as_table) else {
            continue;
        };
        return match package.get("edition") {
            None => Some("2015".to_string()),
            Some(toml::Value::String(e)) => Some(e.clone()),
            Some(_) => None,
        };
    }
    None
}

/// Rewrites an edition-2015 token stream so that syn parses it.
pub fn rewrite_2015(ts: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = ts.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::with_capacity(tokens.len());
    let mut i = 0;
    while i < tokens.len() {
        let tt = &tokens[i];
        match tt {
            TokenTree::Group(g) => out.push(TokenTree::Group(regroup(g, rewrite_2015(g.stream())))),
            TokenTree::Ident(id) => {
                let name = id.to_string();
                // `dyn` before a bound (`dyn Trait`, `dyn ?Sized`, `dyn 'a`, `dyn ::p::T`)
                // is the trait-object keyword; anywhere else it is an identifier.
                let keyword_dyn = name == "dyn"
                    && match tokens.get(i + 1) {
                        Some(TokenTree::Ident(_)) => true,
                        Some(TokenTree::Punct(p)) => matches!(p.as_char(), '?' | '\'' | ':'),
                        _ => false,
                    };
                if matches!(name.as_str(), "async" | "await" | "try")
                    || name == "dyn" && !keyword_dyn
                {
                    out.push(TokenTree::Ident(Ident::new_raw(&name, id.span())));
                } else {
                    out.push(tt.clone());
                }
                // `fn name <generics> ( params )`: give anonymous parameters a pattern.
                if name == "fn" {
                    if let Some(TokenTree::Ident(fn_name)) = tokens.get(i + 1) {
                        out.push(TokenTree::Ident(fn_name.clone()));
                        let mut j = i + 2;
                        if matches!(tokens.get(j), Some(TokenTree::Punct(p)) if p.as_char() == '<')
                        {
                            // Generic parameters: copy through the matching `>` (not the
                            // `>` of an `->`).
                            let mut depth = 0usize;
                            let mut prev_minus = false;
                            while let Some(t) = tokens.get(j) {
                                if let TokenTree::Punct(p) = t {
                                    match p.as_char() {
                                        '<' => depth += 1,
                                        '>' if !prev_minus => depth = depth.saturating_sub(1),
                                        _ => {}
                                    }
                                    prev_minus =
                                        p.as_char() == '-' && p.spacing() == Spacing::Joint;
                                } else {
                                    prev_minus = false;
                                }
                                out.push(match t {
                                    TokenTree::Group(g) => {
                                        TokenTree::Group(regroup(g, rewrite_2015(g.stream())))
                                    }
                                    other => other.clone(),
                                });
                                j += 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                        }
                        if let Some(TokenTree::Group(g)) = tokens.get(j) {
                            if g.delimiter() == Delimiter::Parenthesis {
                                let params = name_anonymous_params(rewrite_2015(g.stream()));
                                out.push(TokenTree::Group(regroup(g, params)));
                                i = j + 1;
                                continue;
                            }
                        }
                        i = j;
                        continue;
                    }
                }
            }
            other => out.push(other.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}

fn regroup(g: &Group, stream: TokenStream) -> Group {
    let mut new = Group::new(g.delimiter(), stream);
    new.set_span(g.span());
    new
}

/// In a parameter list, prefixes `_:` to every parameter that has no pattern.
fn name_anonymous_params(params: TokenStream) -> TokenStream {
    let tokens: Vec<TokenTree> = params.into_iter().collect();
    let mut out: Vec<TokenTree> = Vec::new();
    let mut segment: Vec<TokenTree> = Vec::new();
    let mut angle = 0usize;
    let mut prev_joint_minus = false;
    for tt in tokens {
        if let TokenTree::Punct(p) = &tt {
            match p.as_char() {
                '<' => angle += 1,
                '>' if !prev_joint_minus => angle = angle.saturating_sub(1),
                ',' if angle == 0 => {
                    flush(&mut segment, &mut out);
                    out.push(tt);
                    prev_joint_minus = false;
                    continue;
                }
                _ => {}
            }
            prev_joint_minus = p.as_char() == '-' && p.spacing() == Spacing::Joint;
        } else {
            prev_joint_minus = false;
        }
        segment.push(tt);
    }
    flush(&mut segment, &mut out);
    out.into_iter().collect()
}

fn flush(segment: &mut Vec<TokenTree>, out: &mut Vec<TokenTree>) {
    if segment.is_empty() {
        return;
    }
    let has_self = segment
        .iter()
        .any(|t| matches!(t, TokenTree::Ident(i) if i == "self"));
    if !has_self && !has_pattern_colon(segment) {
        out.push(TokenTree::Ident(Ident::new("_", Span::call_site())));
        out.push(TokenTree::Punct(Punct::new(':', Spacing::Alone)));
    }
    out.append(segment);
}

/// Whether a parameter has a `pattern: Type` colon (a `:` that is not half of `::`) at its
/// top level, before any `<`.
fn has_pattern_colon(segment: &[TokenTree]) -> bool {
    let mut prev_colon_joint = false;
    for (k, t) in segment.iter().enumerate() {
        let TokenTree::Punct(p) = t else {
            prev_colon_joint = false;
            continue;
        };
        match p.as_char() {
            '<' => return false,
            ':' => {
                let next_colon =
                    matches!(segment.get(k + 1), Some(TokenTree::Punct(n)) if n.as_char() == ':');
                if p.spacing() == Spacing::Alone && !prev_colon_joint && !next_colon {
                    return true;
                }
                prev_colon_joint = p.spacing() == Spacing::Joint;
            }
            _ => prev_colon_joint = false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parses(src: &str) -> bool {
        let ts: TokenStream = src.parse().expect("tokenizes");
        syn::parse2::<syn::File>(rewrite_2015(ts)).is_ok()
    }

    #[test]
    fn anonymous_parameters_and_old_keywords() {
        assert!(parses(
            "trait T { fn f(&self, u32) -> bool; fn g(u8, &[u8], ::std::vec::Vec<u8>); }"
        ));
        assert!(parses(
            "trait T { fn h<A: Into<u8>>(&mut self, HashMap<u8, u16>, fn(u8) -> u8); }"
        ));
        assert!(parses(
            "fn f() { let async = 1; let await = async; let dyn = await; }"
        ));
        assert!(parses(
            "fn f() -> Result<u8, ()> { let x = try!(g()); Ok(x) }"
        ));
        assert!(parses("fn f(h: &mut dyn T, b: Box<dyn ?Sized>) {}"));
        assert!(parses("fn f(x: u8, (a, b): (u8, u8)) {}"));
    }
}
