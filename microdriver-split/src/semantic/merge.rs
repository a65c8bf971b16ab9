//! Running the walk over the crate's files and merging its edges into the syntax graph.

use std::collections::HashSet;
use std::path::PathBuf;

use petgraph::graph::{DiGraph, NodeIndex};
use ra_ap_hir::Semantics;
use ra_ap_paths::AbsPathBuf;
use ra_ap_syntax::AstNode;
use ra_ap_vfs::VfsPath;

use super::edges::Walk;
use super::ids::Ids;
use super::load::Loaded;
use crate::callgraph::CallGraph;
use crate::model::{Analysis, CallEdge, EdgeKind, FnInfo, Unresolved};

/// The syntax pass's edge kinds that guess what the semantic model knows: for a function
/// the model analysed, these are replaced by its edges.
const REPLACED: [EdgeKind; 5] = [
    EdgeKind::Direct,
    EdgeKind::MethodTyped,
    EdgeKind::MethodByName,
    EdgeKind::TraitDispatch,
    EdgeKind::NameFallback,
];

/// What the walk produced.
struct Walked {
    fns: Vec<FnInfo>,
    edges: Vec<CallEdge>,
    walked: HashSet<usize>,
    /// Calls through function pointers the model resolved (caller, file, line).
    resolved_indirect: HashSet<(usize, String, usize)>,
    unresolved: Vec<Unresolved>,
    has_std: bool,
}

/// Refines `graph` with the semantic model of the loaded crate.
pub(super) fn refine_with(graph: CallGraph, loaded: &Loaded) -> CallGraph {
    let walked = ra_ap_hir::attach_db(&loaded.db, || walk(&graph, loaded));
    if walked.walked.is_empty() {
        return graph.with_analysis(Analysis::Syntax {
            reason: "rust-analyzer loaded the crate but analysed none of its functions".into(),
        });
    }
    if !walked.has_std {
        return graph.with_analysis(Analysis::Syntax {
            reason: "the standard library's sources were not found \
                     (`rustup component add rust-src`)"
                .into(),
        });
    }
    merge(graph, walked)
}

fn walk(graph: &CallGraph, loaded: &Loaded) -> Walked {
    let sema = Semantics::new(&loaded.db);
    let mut ids = Ids::new(graph.fns.clone());
    let mut files: Vec<PathBuf> = ids.files().map(std::path::Path::to_path_buf).collect();
    files.sort();
    let mut walk = Walk::new(&sema, &loaded.vfs, &mut ids);
    for path in files {
        let Some(abs) = path.to_str().and_then(|s| AbsPathBuf::try_from(s).ok()) else {
            continue;
        };
        let Some((file_id, _)) = loaded.vfs.file_id(&VfsPath::from(abs)) else {
            continue;
        };
        let source = sema.parse_guess_edition(file_id);
        walk.file(source.syntax());
    }
    walk.finish();
    let has_std = walk.has_std();
    let edges = std::mem::take(&mut walk.edges);
    let walked = std::mem::take(&mut walk.walked);
    let unresolved = std::mem::take(&mut walk.unresolved);
    let resolved_indirect = std::mem::take(&mut walk.resolved_indirect);
    Walked {
        fns: ids.fns,
        edges,
        walked,
        resolved_indirect,
        unresolved,
        has_std,
    }
}

fn merge(graph: CallGraph, walked: Walked) -> CallGraph {
    let CallGraph {
        root,
        graph: old,
        cfg_notes,
        mut unresolved,
        registrations,
        ..
    } = graph;
    // The syntax pass's arity-matched edges of a call through a function pointer the model
    // resolved by its signature are replaced too (matched by caller and site).
    let replaced_indirect = |e: &CallEdge| {
        e.kind == EdgeKind::Indirect
            && walked
                .resolved_indirect
                .contains(&(e.from, e.file.clone(), e.line))
    };
    let kept = old
        .edge_weights()
        .filter(|e| !(walked.walked.contains(&e.from) && REPLACED.contains(&e.kind)))
        .filter(|e| !replaced_indirect(e))
        .cloned();
    let edges: Vec<CallEdge> = kept.chain(walked.edges).collect();
    let mut g = DiGraph::with_capacity(walked.fns.len(), edges.len());
    for f in &walked.fns {
        g.add_node(f.id);
    }
    let mut seen = HashSet::new();
    for e in edges {
        if seen.insert((e.from, e.to, e.kind)) {
            g.add_edge(NodeIndex::new(e.from), NodeIndex::new(e.to), e);
        }
    }
    unresolved.extend(walked.unresolved);
    CallGraph {
        root,
        fns: walked.fns,
        graph: g,
        cfg_notes,
        unresolved,
        registrations,
        analysis: Analysis::Semantic,
    }
}
