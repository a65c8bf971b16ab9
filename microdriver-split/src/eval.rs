//! `eval`: runs the splitter on the labelled corpus as a new user would (the crate's family
//! template, no annotations) and scores its critical set against the labels.
//!
//! Precision is the share of labelled functions called critical that are hot; recall the
//! share of hot functions called critical. Totals add the counts of every crate (micro
//! average). A crate the splitter cannot analyse counts as predicting nothing. Labels
//! marked `expansion` (functions only a macro expansion holds) are scored only when the
//! semantic pass ran: the syntax pass cannot see them, so under it they are counted apart
//! (and one it does find is a wrong mark).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::callgraph::CallGraph;
use crate::cfg::CfgSet;
use crate::corpus::{self, CorpusCrate};
use crate::error::Result;
use crate::model::Analysis;
use crate::propagate::Split;
use crate::template::{RootReason, Template};

/// The score of one crate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CrateScore {
    /// crates.io name.
    pub name: String,
    /// Pinned version.
    pub version: String,
    /// Template run.
    pub template: String,
    /// Which analysis ran (`semantic`, `syntax (why)`), or why none could.
    pub analysis: String,
    /// Functions the analysis found.
    pub functions: usize,
    /// Hot, called critical.
    pub true_positives: Vec<String>,
    /// Not hot, called critical.
    pub false_positives: Vec<String>,
    /// Hot, not called critical.
    pub false_negatives: Vec<String>,
    /// Not hot, not called critical.
    pub true_negatives: usize,
    /// Functions the analysis found that have no label.
    pub unlabelled: Vec<String>,
    /// Labels naming a function the analysis did not find.
    pub stale_labels: Vec<String>,
    /// Labelled roots the template picked.
    pub roots_found: Vec<String>,
    /// Labelled roots the template missed.
    pub roots_missed: Vec<String>,
    /// Template roots that are not labelled roots.
    pub roots_extra: Vec<String>,
    /// Labels marked `expansion` left unscored because the syntax pass ran.
    pub expansion_unscored: usize,
    /// Labels marked `expansion` naming a function the syntax pass found (a wrong mark).
    pub wrong_expansion: Vec<String>,
}

/// Which analysis `eval` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// What `report` runs: the semantic model where it loads (feature `semantic`), else
    /// the syntax pass (`MICRODRIVER_ANALYSIS=syntax` forces it).
    Best,
    /// The syntax pass alone, whatever the features.
    Syntax,
}

/// The score of a corpus.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    /// Per crate, in file-name order.
    pub crates: Vec<CrateScore>,
    /// Total precision.
    pub precision: f64,
    /// Total recall.
    pub recall: f64,
}

/// `part / whole`, or `if_empty` when `whole` is zero.
fn ratio(part: usize, whole: usize, if_empty: f64) -> f64 {
    if whole == 0 {
        if_empty
    } else {
        #[allow(clippy::cast_precision_loss)] // counts of functions: far below 2^52
        let r = part as f64 / whole as f64;
        r
    }
}

impl CrateScore {
    /// Precision of this crate (1 when it called nothing critical and nothing is hot, 0
    /// when it called nothing critical but something is).
    pub fn precision(&self) -> f64 {
        let called = self.true_positives.len() + self.false_positives.len();
        let empty = if self.false_negatives.is_empty() {
            1.0
        } else {
            0.0
        };
        ratio(self.true_positives.len(), called, empty)
    }

    /// Recall of this crate (1 when nothing is hot).
    pub fn recall(&self) -> f64 {
        ratio(
            self.true_positives.len(),
            self.true_positives.len() + self.false_negatives.len(),
            1.0,
        )
    }
}

/// Scores one crate whose sources are at `dir`.
pub fn score_crate(c: &CorpusCrate, dir: &Path, choice: Choice) -> Result<CrateScore> {
    let mut s = CrateScore {
        name: c.name.clone(),
        version: c.version.clone(),
        template: c.template.clone(),
        ..CrateScore::default()
    };
    let template = Template::load(&c.template)?;
    let analysed = match choice {
        Choice::Best => CallGraph::analyze(dir, &CfgSet::default()),
        Choice::Syntax => CallGraph::analyze_syntax(dir, &CfgSet::default()).map(|g| {
            g.with_analysis(Analysis::Syntax {
                reason: "chosen by eval".into(),
            })
        }),
    };
    let graph = match analysed {
        Ok(g) => g,
        Err(e) => {
            s.analysis = format!("failed: {e}");
            for (path, label) in &c.labels {
                if label.hot {
                    s.false_negatives.push(path.clone());
                } else {
                    s.true_negatives += 1;
                }
            }
            s.roots_missed = c.roots.iter().map(|r| r.path.clone()).collect();
            return Ok(s);
        }
    };
    s.analysis = graph.analysis.to_string();
    s.functions = graph.fns.len();
    let roots = template.roots(&graph, &[])?;
    let split = Split::propagate(&graph, &roots);
    for f in &graph.fns {
        let critical = split.critical[f.id];
        match c.labels.get(&f.path) {
            None => s.unlabelled.push(f.path.clone()),
            Some(l) => match (l.hot, critical) {
                (true, true) => s.true_positives.push(f.path.clone()),
                (false, true) => s.false_positives.push(f.path.clone()),
                (true, false) => s.false_negatives.push(f.path.clone()),
                (false, false) => s.true_negatives += 1,
            },
        }
    }
    let found: BTreeSet<&str> = graph.fns.iter().map(|f| f.path.as_str()).collect();
    let expanded = graph.analysis == Analysis::Semantic;
    if !expanded {
        for (p, l) in &c.labels {
            if l.expansion {
                if found.contains(p.as_str()) {
                    s.wrong_expansion.push(p.clone());
                } else {
                    s.expansion_unscored += 1;
                }
            }
        }
    }
    s.stale_labels = c
        .labels
        .iter()
        .filter(|(p, l)| !found.contains(p.as_str()) && (expanded || !l.expansion))
        .map(|(p, l)| {
            if l.hot {
                s.false_negatives.push(p.clone());
            }
            p.clone()
        })
        .collect();
    let picked: BTreeSet<&str> = roots
        .iter()
        .filter(|r| matches!(r.reason, RootReason::Template { .. }))
        .map(|r| graph.fns[r.fn_id].path.as_str())
        .collect();
    let labelled: BTreeSet<&str> = c.roots.iter().map(|r| r.path.as_str()).collect();
    s.roots_found = labelled
        .intersection(&picked)
        .map(|p| p.to_string())
        .collect();
    s.roots_missed = labelled
        .difference(&picked)
        .map(|p| p.to_string())
        .collect();
    s.roots_extra = picked
        .difference(&labelled)
        .map(|p| p.to_string())
        .collect();
    Ok(s)
}

/// Fetches (through cargo, into `cache`) and scores every crate of the corpus at `dir`
/// with the analysis `report` runs.
pub fn evaluate(dir: &Path, cache: &Path) -> Result<Evaluation> {
    evaluate_with(dir, cache, Choice::Best)
}

/// [`evaluate`] with the analysis chosen.
pub fn evaluate_with(dir: &Path, cache: &Path, choice: Choice) -> Result<Evaluation> {
    let mut crates = Vec::new();
    for c in corpus::load(dir)? {
        let src = corpus::fetch(&c.name, &c.version, cache)?;
        crates.push(score_crate(&c, &src, choice)?);
    }
    let (mut tp, mut fp, mut fnn) = (0, 0, 0);
    for s in &crates {
        tp += s.true_positives.len();
        fp += s.false_positives.len();
        fnn += s.false_negatives.len();
    }
    Ok(Evaluation {
        precision: ratio(tp, tp + fp, if fnn == 0 { 1.0 } else { 0.0 }),
        recall: ratio(tp, tp + fnn, 1.0),
        crates,
    })
}

impl Evaluation {
    /// Labelled functions in the whole corpus.
    pub fn labelled(&self) -> usize {
        self.crates
            .iter()
            .map(|s| {
                s.true_positives.len()
                    + s.false_positives.len()
                    + s.false_negatives.len()
                    + s.true_negatives
            })
            .sum()
    }

    /// The text `eval` prints: one line per crate (with what it got wrong), then the totals.
    /// `verbose` also lists every mismatch by name.
    pub fn text(&self, verbose: bool) -> String {
        let mut out = String::new();
        for s in &self.crates {
            let _ = writeln!(
                out,
                "{} {} ({}, {}): functions = {} hot = {} critical = {} precision = {:.3} recall = {:.3} roots = {}/{} (+{} extra)",
                s.name,
                s.version,
                s.template,
                s.analysis,
                s.functions,
                s.true_positives.len() + s.false_negatives.len(),
                s.true_positives.len() + s.false_positives.len(),
                s.precision(),
                s.recall(),
                s.roots_found.len(),
                s.roots_found.len() + s.roots_missed.len(),
                s.roots_extra.len(),
            );
            // (one, several, the list)
            let lists: [(&str, &str, &Vec<String>); 7] = [
                ("false positive", "false positives", &s.false_positives),
                ("false negative", "false negatives", &s.false_negatives),
                ("root missed", "roots missed", &s.roots_missed),
                ("root extra", "roots extra", &s.roots_extra),
                ("unlabelled", "unlabelled", &s.unlabelled),
                ("stale label", "stale labels", &s.stale_labels),
                (
                    "wrong expansion mark",
                    "wrong expansion marks",
                    &s.wrong_expansion,
                ),
            ];
            for (one, several, list) in lists {
                if list.is_empty() {
                    continue;
                }
                // Label drift is always listed by name: it must be fixed in the corpus.
                if verbose
                    || one == "unlabelled"
                    || one == "stale label"
                    || one == "wrong expansion mark"
                {
                    for p in list {
                        let _ = writeln!(out, "  {one}: {p}");
                    }
                } else {
                    let _ = writeln!(out, "  {several}: {}", list.len());
                }
            }
        }
        let _ = write!(
            out,
            "corpus: {} crates, {} labelled functions",
            self.crates.len(),
            self.labelled()
        );
        let unscored: usize = self.crates.iter().map(|s| s.expansion_unscored).sum();
        if unscored > 0 {
            let _ = write!(
                out,
                " (and {unscored} only in macro expansions, not scored: the syntax pass does not expand macros)"
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "precision = {:.3} recall = {:.3}",
            self.precision, self.recall
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::Label;

    fn names(n: usize, tag: &str) -> Vec<String> {
        (0..n).map(|i| format!("{tag}{i}")).collect()
    }

    #[test]
    fn scores_count_what_was_called_critical() {
        let s = CrateScore {
            true_positives: names(3, "tp"),
            false_positives: names(1, "fp"),
            false_negatives: names(2, "fn"),
            true_negatives: 10,
            ..CrateScore::default()
        };
        assert!((s.precision() - 0.75).abs() < 1e-9);
        assert!((s.recall() - 0.6).abs() < 1e-9);
        // Nothing called critical while something is hot: precision 0, not 1.
        let empty = CrateScore {
            false_negatives: names(2, "fn"),
            ..CrateScore::default()
        };
        assert_eq!(empty.precision(), 0.0);
        assert_eq!(empty.recall(), 0.0);
        let e = Evaluation {
            crates: vec![s, empty],
            precision: 0.75,
            recall: 3.0 / 7.0,
        };
        assert_eq!(e.labelled(), 18);
        let text = e.text(false);
        assert!(text.contains("false negatives: 2"), "{text}");
        assert!(
            text.ends_with("precision = 0.750 recall = 0.429\n"),
            "{text}"
        );
    }

    #[test]
    fn expansion_labels_are_scored_only_when_macros_were_expanded() {
        let label = |hot, expansion| Label {
            hot,
            reason: "test".into(),
            expansion,
        };
        let c = CorpusCrate {
            name: "semantic-fixture".into(),
            version: "0.1.0".into(),
            template: "none".into(),
            roots: Vec::new(),
            labels: [
                // Generated by `queue_kicker!`: the syntax pass cannot see it.
                ("macros::kick_queue".to_string(), label(true, true)),
                // A plain function wrongly marked.
                ("macros::ring_work".to_string(), label(false, true)),
                ("macros::hot_macro".to_string(), label(false, false)),
            ]
            .into_iter()
            .collect(),
            file: std::path::PathBuf::new(),
        };
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/semantic");
        let s = score_crate(&c, &dir, Choice::Syntax).expect("scores");
        assert!(s.analysis.starts_with("syntax"), "{}", s.analysis);
        assert_eq!(s.expansion_unscored, 1);
        assert_eq!(s.wrong_expansion, vec!["macros::ring_work".to_string()]);
        assert!(s.stale_labels.is_empty(), "{:?}", s.stale_labels);
        assert!(s.false_negatives.is_empty(), "{:?}", s.false_negatives);
        let e = Evaluation {
            crates: vec![s],
            precision: 1.0,
            recall: 1.0,
        };
        let text = e.text(false);
        assert!(
            text.contains("wrong expansion mark: macros::ring_work"),
            "{text}"
        );
        assert!(
            text.contains("(and 1 only in macro expansions, not scored"),
            "{text}"
        );
    }
}
