//! The splitter: builds a driver crate's static call graph (including indirect calls),
//! finds its critical roots (annotations and a per-family template), propagates
//! criticality, and reports, checks, draws and optimises the kernel/user split.
//!
//! ```no_run
//! use microdriver_split::{CallGraph, cfg::CfgSet, template::Template, propagate::Split};
//! let graph = CallGraph::analyze("examples/e1000".as_ref(), &CfgSet::default())?;
//! let roots = Template::builtin("net")?.roots(&graph, &[])?;
//! let split = Split::propagate(&graph, &roots);
//! println!("{} critical functions", split.critical.len());
//! # Ok::<(), microdriver_split::error::Error>(())
//! ```

pub mod apply;
pub mod body;
pub mod callgraph;
pub mod cfg;
pub mod check;
pub mod cli;
pub mod collect;
pub mod corpus;
pub mod cut;
pub mod dot;
pub mod edition;
pub mod error;
pub mod eval;
pub mod model;
pub mod parse;
pub mod profile;
pub mod propagate;
pub mod report;
pub mod resolve;
pub mod semantic;
pub mod tables;
pub mod template;

pub use callgraph::CallGraph;
