//! Loading the analysed crate into rust-analyzer's database.

use std::path::{Path, PathBuf};

use ra_ap_ide_db::RootDatabase;
use ra_ap_load_cargo::{load_workspace_at, LoadCargoConfig, ProcMacroServerChoice};
use ra_ap_project_model::{CargoConfig, RustLibSource};
use ra_ap_vfs::Vfs;

/// The crate directory (the one with `Cargo.toml`) of a crate root file: its directory or
/// the one above (`src/lib.rs`), as the syntax pass finds roots.
pub(super) fn manifest_dir(root: &Path) -> Option<PathBuf> {
    let root = std::fs::canonicalize(root).ok()?;
    root.ancestors()
        .skip(1)
        .take(3)
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

/// A loaded crate: the database and the file system view it was loaded from.
pub(super) struct Loaded {
    /// rust-analyzer's database.
    pub db: RootDatabase,
    /// Its files.
    pub vfs: Vfs,
}

impl Loaded {
    /// Loads the cargo workspace of the crate at `dir` with its dependencies (cargo
    /// resolves them; `no_deps` would also cut the standard library's crates apart, and
    /// the std prelude with them) and the standard library's sources (needed for `Box`,
    /// `Iterator`, `Deref`, `Drop`, `Index` and the operator traits), without build
    /// scripts or proc-macro expansion (attribute macros are read as the items they are
    /// on). Errs with the reason when it cannot.
    pub fn load(dir: &Path) -> Result<Loaded, String> {
        let cargo_config = CargoConfig {
            sysroot: Some(RustLibSource::Discover),
            no_deps: false,
            ..CargoConfig::default()
        };
        let load_config = LoadCargoConfig {
            load_out_dirs_from_check: false,
            with_proc_macro_server: ProcMacroServerChoice::None,
            prefill_caches: false,
            num_worker_threads: 1,
            proc_macro_processes: 1,
        };
        let (db, vfs, _) = load_workspace_at(dir, &cargo_config, &load_config, &|_| {})
            .map_err(|e| format!("rust-analyzer could not load {}: {e}", dir.display()))?;
        Ok(Loaded { db, vfs })
    }
}
