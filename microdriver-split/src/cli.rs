//! The `cargo microdriver` command line.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::callgraph::CallGraph;
use crate::cfg::CfgSet;
use crate::check::{check_with, Options as CheckOptions};
use crate::cut::{self, Weights};
use crate::dot;
use crate::error::Result;
use crate::profile::Profile;
use crate::propagate::Split;
use crate::report::Report;
use crate::template::{Root, Template};

/// Splits a driver crate into a kernel half and a user half.
#[derive(Debug, Parser)]
#[command(name = "cargo-microdriver", bin_name = "cargo microdriver", version)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Figure-2-style table: functions, critical functions, lines, roots, crossing edges.
    Report {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Exit non-zero when the annotations disagree with the analysis.
    Check {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Print the diagnostics as JSON.
        #[arg(long)]
        json: bool,
        /// Report every plain #[critical] function no entry root reaches, even when the
        /// user half calls it (a downcall target).
        #[arg(long)]
        strict_critical: bool,
    },
    /// Graphviz DOT of the call graph coloured by half.
    Graph {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Write DOT here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Also render SVG here (default with `-o FILE.dot`: `FILE.svg`). Needs Graphviz
        /// `dot`; skipped with a note when it is not installed.
        #[arg(long)]
        svg: Option<PathBuf>,
    },
    /// Why a function is critical: the call chain from a root, with each call site.
    Why {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// The function (path as `report` prints it, or a unique suffix).
        function: String,
    },
    /// Minimum cut of the call graph weighted by a call-frequency profile.
    Cut {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Profile: {"calls": [{"caller": "m::f", "callee": "m::g", "per_second": 1.0}]}.
        #[arg(long)]
        profile: PathBuf,
        /// Cost of one line of code in the kernel half.
        #[arg(long, default_value_t = 1.0)]
        line_weight: f64,
        /// Cost of one crossing per second.
        #[arg(long, default_value_t = 1.0)]
        crossing_weight: f64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Refactor an unannotated crate into a split one: writes `#[critical]`, `#[upcall]`,
    /// `#[upcall(deferred)]`, a `microdriver-split.toml`, and a `#[marshal(prompt = ..)]`
    /// (which the build refuses until answered) on every field that cannot cross the cut.
    Apply {
        /// Common options.
        #[command(flatten)]
        common: Common,
        /// Print a unified diff of the edits instead of writing them.
        #[arg(long)]
        dry_run: bool,
        /// Annotate `cut`'s minimum cut instead of the propagation split.
        #[arg(long)]
        from_cut: bool,
        /// The profile for `--from-cut` (as `cut --profile`). Without one, every call edge
        /// the propagation split keeps inside the kernel half counts `--hot-rate` calls/s
        /// and every other edge none (a static estimate: a NIC's per-packet path).
        #[arg(long, requires = "from_cut")]
        profile: Option<PathBuf>,
        /// Calls/s of a kernel-half edge in the static estimate.
        #[arg(long, default_value_t = 100_000.0)]
        hot_rate: f64,
        /// Cost of one line of code in the kernel half (`--from-cut`).
        #[arg(long, default_value_t = 1.0)]
        line_weight: f64,
        /// Cost of one crossing per second (`--from-cut`).
        #[arg(long, default_value_t = 1.0)]
        crossing_weight: f64,
        /// Write the guesses it is sure of instead of prompting for them.
        #[arg(long)]
        accept_guesses: bool,
        /// Also judge fields that already have a `#[marshal]` annotation and compare the
        /// guess with it (prints `marshal prompts = N, guesses right = R of H`).
        #[arg(long)]
        check_guesses: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Compare the splits of two copies of a crate function by function (a hand split and
    /// `apply`'s): prints `apply agreement with the hand split = X%`.
    Compare {
        /// The hand-split crate.
        hand: PathBuf,
        /// The crate `apply` annotated.
        applied: PathBuf,
        /// Root template for both (default: each crate's own, else `net`).
        #[arg(long)]
        template: Option<String>,
        /// List every function on different sides.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Score the splitter on a labelled corpus of crates.io drivers (fetched through cargo):
    /// prints one line per crate and `precision = X recall = Y`.
    Eval {
        /// The corpus directory (one TOML file per crate).
        corpus: PathBuf,
        /// Where the throwaway manifests that make cargo fetch the crates go
        /// (default: `target/microdriver-corpus` of the enclosing workspace).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// List every mismatch by function.
        #[arg(short, long)]
        verbose: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Options every subcommand takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The crate: a directory with src/lib.rs (or src/main.rs), a source directory, or a
    /// root file.
    pub path: PathBuf,
    /// Root template: a builtin (`net`, `block`, `sound`), `none`, or a TOML file.
    /// Default: the crate's own `microdriver-split.toml` if it has one, else `net`.
    #[arg(long)]
    pub template: Option<String>,
    /// Extra critical root (function path as printed by `report`); repeatable.
    #[arg(long = "root")]
    pub roots: Vec<String>,
    /// Treat a cfg as set (`test`, `feature="x"`); repeatable.
    #[arg(long = "cfg")]
    pub cfg: Vec<String>,
    /// Treat a cfg as unset; repeatable.
    #[arg(long = "no-cfg")]
    pub no_cfg: Vec<String>,
}

impl Common {
    /// Analyses the crate and finds its roots.
    pub fn load(&self) -> Result<(CallGraph, Template, Vec<Root>)> {
        let cfg = CfgSet::new(&self.cfg, &self.no_cfg);
        let graph = CallGraph::analyze(&self.path, &cfg)?;
        let spec = match &self.template {
            Some(t) => t.clone(),
            None => crate_template(&self.path).unwrap_or_else(|| "net".to_string()),
        };
        let template = Template::load(&spec)?;
        let roots = template.roots(&graph, &self.roots)?;
        Ok((graph, template, roots))
    }
}

/// The crate's own template, `microdriver-split.toml` next to its `Cargo.toml` (looked up
/// from a crate directory, or from its `src` directory).
pub fn crate_template(path: &std::path::Path) -> Option<String> {
    let mut dirs = vec![path.to_path_buf()];
    if path.is_file() {
        dirs = path
            .ancestors()
            .skip(1)
            .take(2)
            .map(std::path::Path::to_path_buf)
            .collect();
    } else if path.file_name().is_some_and(|n| n == "src") {
        dirs.extend(path.parent().map(std::path::Path::to_path_buf));
    }
    dirs.into_iter()
        .map(|d| d.join("microdriver-split.toml"))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// The crate directory of a path given on the command line (a crate directory, its `src`
/// directory, or a root file in it).
fn crate_dir(path: &std::path::Path) -> PathBuf {
    let mut dir = if path.is_file() {
        path.parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    } else {
        path.to_path_buf()
    };
    if dir.file_name().is_some_and(|n| n == "src") && !dir.join("Cargo.toml").is_file() {
        dir = dir
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
    }
    dir
}

/// The TOML text of a template spec (a builtin's, or the file's).
fn template_text(spec: &str) -> Result<String> {
    use crate::template::{BLOCK_TEMPLATE, NET_TEMPLATE, SERIAL_TEMPLATE, SOUND_TEMPLATE};
    Ok(match spec {
        "net" => NET_TEMPLATE.to_string(),
        "block" => BLOCK_TEMPLATE.to_string(),
        "sound" => SOUND_TEMPLATE.to_string(),
        "serial" => SERIAL_TEMPLATE.to_string(),
        "none" => "family = \"none\"\n".to_string(),
        path => std::fs::read_to_string(path).map_err(|source| crate::error::Error::Io {
            path: path.into(),
            source,
        })?,
    })
}

/// Drops the `microdriver` argument cargo inserts when running `cargo microdriver`.
pub fn normalise_args(args: Vec<OsString>) -> Vec<OsString> {
    let mut args = args;
    if args.get(1).is_some_and(|a| a == "microdriver") {
        args.remove(1);
    }
    args
}

/// Runs the command line; returns the exit code (0 ok, 1 disagreements found).
pub fn run(args: Vec<OsString>, out: &mut dyn Write, err: &mut dyn Write) -> Result<i32> {
    let cli = match Cli::try_parse_from(normalise_args(args)) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            if e.use_stderr() {
                write!(err, "{e}")?;
            } else {
                write!(out, "{e}")?;
            }
            return Ok(code);
        }
    };
    match cli.command {
        Command::Report { common, json } => {
            let (graph, template, roots) = common.load()?;
            let split = Split::propagate(&graph, &roots);
            let mut report = Report::new(&graph, &split, &template.family);
            report.warnings = template.family_warnings(&graph);
            if json {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", report.text(&graph))?;
            }
            Ok(0)
        }
        Command::Check {
            common,
            json,
            strict_critical,
        } => {
            let (graph, template, roots) = common.load()?;
            for warning in template.family_warnings(&graph) {
                writeln!(err, "warning: {warning}")?;
            }
            let diags = check_with(&graph, &roots, CheckOptions { strict_critical });
            if json {
                serde_json::to_writer_pretty(&mut *out, &diags)?;
                writeln!(out)?;
                return Ok(i32::from(!diags.is_empty()));
            }
            for d in &diags {
                writeln!(out, "{d}")?;
            }
            if diags.is_empty() {
                writeln!(
                    out,
                    "check: {} functions, annotations agree with the analysis",
                    graph.fns.len()
                )?;
                Ok(0)
            } else {
                writeln!(out, "check: {} disagreement(s)", diags.len())?;
                Ok(1)
            }
        }
        Command::Graph {
            common,
            output,
            svg,
        } => {
            let (graph, _, roots) = common.load()?;
            let split = Split::propagate(&graph, &roots);
            let text = dot::to_dot(&graph, &split);
            match &output {
                Some(p) => std::fs::write(p, &text)?,
                None => write!(out, "{text}")?,
            }
            // With `-o g.dot`, an SVG is rendered next to it unless `--svg` says where.
            let svg = svg.or_else(|| output.as_ref().map(|p| p.with_extension("svg")));
            if let Some(svg) = svg {
                if dot::write_svg(&text, &svg)? {
                    writeln!(err, "wrote {}", svg.display())?;
                } else {
                    writeln!(err, "graphviz `dot` not found; skipped {}", svg.display())?;
                }
            }
            Ok(0)
        }
        Command::Why { common, function } => {
            let (graph, _, roots) = common.load()?;
            let split = Split::propagate(&graph, &roots);
            let target = graph.find(&function)?;
            let f = &graph.fns[target];
            if !split.critical[target] {
                writeln!(
                    out,
                    "{} ({}) is not critical: no root reaches it",
                    f.path,
                    f.location()
                )?;
                return Ok(0);
            }
            let chain = split.chain(target);
            writeln!(out, "{} ({}) is critical:", f.path, f.location())?;
            if let Some(root) = roots.iter().find(|r| Some(&r.fn_id) == chain.first()) {
                let r = &graph.fns[root.fn_id];
                writeln!(
                    out,
                    "  root {} ({:?})  {}",
                    r.path,
                    root.reason,
                    r.location()
                )?;
            }
            for pair in chain.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                let edge = graph
                    .edges()
                    .find(|e| e.from == a && e.to == b && e.kind.propagates());
                if let Some(e) = edge {
                    writeln!(
                        out,
                        "  -> {}  ({:?} call at {}:{})",
                        graph.fns[b].path, e.kind, e.file, e.line
                    )?;
                }
            }
            Ok(0)
        }
        Command::Cut {
            common,
            profile,
            line_weight,
            crossing_weight,
            json,
        } => {
            let (graph, _, roots) = common.load()?;
            let freq = Profile::load(&profile)?.resolve(&graph, &profile)?;
            let w = Weights {
                line_weight,
                crossing_weight,
            };
            let outcome = cut::compare(&graph, &roots, &freq, w)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &outcome)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", outcome.text())?;
            }
            Ok(0)
        }
        Command::Apply {
            common,
            dry_run,
            from_cut,
            profile,
            hot_rate,
            line_weight,
            crossing_weight,
            accept_guesses,
            check_guesses,
            json,
        } => {
            let (graph, template, roots) = common.load()?;
            let spec = common
                .template
                .clone()
                .or_else(|| crate_template(&common.path))
                .unwrap_or_else(|| "net".to_string());
            let template_text = template_text(&spec)?;
            let source = if from_cut {
                let freq = match &profile {
                    Some(p) => Profile::load(p)?.resolve(&graph, p)?,
                    None => crate::apply::static_profile(&graph, &roots, hot_rate),
                };
                crate::apply::Source::Cut {
                    freq,
                    weights: Weights {
                        line_weight,
                        crossing_weight,
                    },
                }
            } else {
                crate::apply::Source::Propagation
            };
            let opts = crate::apply::Options {
                source,
                accept_guesses,
                check_guesses,
            };
            let cfg = CfgSet::new(&common.cfg, &common.no_cfg);
            let crate_dir = crate_dir(&common.path);
            let plan = crate::apply::plan(
                &crate_dir,
                &cfg,
                &graph,
                &template,
                &template_text,
                &roots,
                &opts,
            )?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &plan)?;
                writeln!(out)?;
            } else {
                if dry_run {
                    write!(out, "{}", plan.diff()?)?;
                }
                write!(out, "{}", plan.text())?;
                if check_guesses {
                    writeln!(out, "{}", plan.guess_line())?;
                }
            }
            if !dry_run {
                plan.write()?;
            }
            Ok(0)
        }
        Command::Compare {
            hand,
            applied,
            template,
            verbose,
        } => {
            let load = |path: &PathBuf| -> Result<(CallGraph, Vec<bool>)> {
                let common = Common {
                    path: path.clone(),
                    template: template.clone(),
                    roots: Vec::new(),
                    cfg: Vec::new(),
                    no_cfg: Vec::new(),
                };
                let (graph, _, roots) = common.load()?;
                let split = Split::propagate(&graph, &roots);
                Ok((graph, split.critical))
            };
            let (hg, hs) = load(&hand)?;
            let (ag, asplit) = load(&applied)?;
            let outcome = crate::apply::agreement(&hg, &hs, &ag, &asplit);
            write!(out, "{}", outcome.text(verbose))?;
            Ok(0)
        }
        Command::Eval {
            corpus,
            cache,
            verbose,
            json,
        } => {
            let cache = cache.unwrap_or_else(|| crate::corpus::default_cache(&corpus));
            let outcome = crate::eval::evaluate(&corpus, &cache)?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &outcome)?;
                writeln!(out)?;
            } else {
                write!(out, "{}", outcome.text(verbose))?;
            }
            Ok(0)
        }
    }
}
