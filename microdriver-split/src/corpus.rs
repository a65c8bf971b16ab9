//! The labelled corpus: third-party driver crates from crates.io, pinned by version, each
//! function labelled hot (kernel half) or not by reading the code, with a reason each.
//!
//! A corpus directory holds one TOML file per crate:
//!
//! ```toml
//! crate = "e1000-driver"
//! version = "0.1.0"
//! template = "net"            # the family template the evaluation runs
//!
//! [[roots]]                   # the real entry points of the hot path
//! path = "e1000::E1000Device::e1000_transmit"
//! role = "transmit"
//! reason = "sends one frame: the driver's TX entry"
//!
//! [labels]                    # every function of the crate, hot or not
//! "e1000::E1000Device::e1000_transmit" = { hot = true, reason = "TX entry" }
//! # a function only a macro expansion holds (found by the semantic pass alone)
//! "regs::CTRL::reset" = { hot = false, reason = "setup only", expansion = true }
//! ```
//!
//! The sources are never in the repository: [`fetch`] has cargo fetch the pinned version
//! into its registry cache through a throwaway manifest under the cache directory, and
//! reads where cargo unpacked it (offline first, so it works without a network once
//! fetched).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::error::{Error, Result};

/// One labelled crate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusCrate {
    /// The crates.io name.
    #[serde(rename = "crate")]
    pub name: String,
    /// The exact version labelled.
    pub version: String,
    /// The builtin family template (or `none`) the evaluation runs.
    pub template: String,
    /// The real entry points of the hot path.
    #[serde(default)]
    pub roots: Vec<LabelledRoot>,
    /// Function path (as `report` prints it) -> label.
    pub labels: BTreeMap<String, Label>,
    /// The TOML file it came from (set on load).
    #[serde(skip)]
    pub file: PathBuf,
}

/// A real entry point of a crate's hot path.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelledRoot {
    /// Function path.
    pub path: String,
    /// Its role (`interrupt`, `transmit`, `receive`, `submit`, ...).
    pub role: String,
    /// Why it is an entry point, from reading the code.
    pub reason: String,
}

/// Whether a function is hot, and why.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Label {
    /// In the kernel half: reached from an entry point of the hot path.
    pub hot: bool,
    /// Why, from reading the code.
    pub reason: String,
    /// The function exists only in a macro expansion (`expansion = true`): the semantic
    /// pass finds it (one node per name per macro call), the syntax pass cannot, so it is
    /// scored only when the analysis expanded macros.
    #[serde(default)]
    pub expansion: bool,
}

/// Loads every `*.toml` of a corpus directory, sorted by file name.
pub fn load(dir: &Path) -> Result<Vec<CorpusCrate>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::Corpus {
            path: dir.to_path_buf(),
            message: "no *.toml crate files in this directory".into(),
        });
    }
    files.iter().map(|f| load_one(f)).collect()
}

fn load_one(file: &Path) -> Result<CorpusCrate> {
    let text = std::fs::read_to_string(file).map_err(|source| Error::Io {
        path: file.to_path_buf(),
        source,
    })?;
    let mut c: CorpusCrate = toml::from_str(&text).map_err(|e| Error::Corpus {
        path: file.to_path_buf(),
        message: e.to_string(),
    })?;
    let bad = |message: String| Error::Corpus {
        path: file.to_path_buf(),
        message,
    };
    if c.name.is_empty()
        || !c
            .name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    {
        return Err(bad(format!("`{}` is not a crates.io name", c.name)));
    }
    if c.version.is_empty()
        || !c
            .version
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ".-+".contains(ch))
    {
        return Err(bad(format!(
            "`{}` is not an exact version (write e.g. 0.1.0)",
            c.version
        )));
    }
    if let Some((p, _)) = c.labels.iter().find(|(_, l)| l.reason.trim().is_empty()) {
        return Err(bad(format!("label `{p}` has no reason")));
    }
    for r in &c.roots {
        match c.labels.get(&r.path) {
            Some(l) if l.hot => {}
            Some(_) => return Err(bad(format!("root `{}` is labelled not hot", r.path))),
            None => return Err(bad(format!("root `{}` has no label", r.path))),
        }
    }
    c.file = file.to_path_buf();
    Ok(c)
}

/// The default cache directory for a corpus: `target/microdriver-corpus` of the nearest
/// ancestor holding a `Cargo.lock` (the workspace), else of the current directory.
pub fn default_cache(corpus_dir: &Path) -> PathBuf {
    let abs = std::fs::canonicalize(corpus_dir).unwrap_or_else(|_| corpus_dir.to_path_buf());
    abs.ancestors()
        .find(|d| d.join("Cargo.lock").is_file())
        .map_or_else(|| PathBuf::from("target"), |d| d.join("target"))
        .join("microdriver-corpus")
}

/// Has cargo fetch `name` at exactly `version` and returns the directory it was unpacked
/// to. Tries offline first (works without a network once fetched), then online.
pub fn fetch(name: &str, version: &str, cache: &Path) -> Result<PathBuf> {
    let dir = cache.join(format!("{name}-{version}"));
    let manifest = dir.join("Cargo.toml");
    let io = |path: &Path, source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir.join("src")).map_err(|e| io(&dir, e))?;
    let pkg = format!("corpus-{}", name.replace('_', "-"));
    let text = format!(
        "# Throwaway manifest: makes cargo fetch the corpus crate; never built.\n\
         [package]\nname = \"{pkg}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
         [dependencies]\n{name} = \"={version}\"\n\n[workspace]\n"
    );
    std::fs::write(&manifest, text).map_err(|e| io(&manifest, e))?;
    let lib = dir.join("src/lib.rs");
    std::fs::write(&lib, "").map_err(|e| io(&lib, e))?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut last_error = String::new();
    for offline in [true, false] {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        let out = cmd.output().map_err(|e| Error::Fetch {
            name: name.into(),
            version: version.into(),
            message: format!("cannot run cargo: {e}"),
        })?;
        if !out.status.success() {
            last_error = String::from_utf8_lossy(&out.stderr).trim().to_string();
            continue;
        }
        return package_dir(&out.stdout, name, version);
    }
    Err(Error::Fetch {
        name: name.into(),
        version: version.into(),
        message: last_error,
    })
}

#[derive(Deserialize)]
struct Metadata {
    packages: Vec<MetaPackage>,
}

#[derive(Deserialize)]
struct MetaPackage {
    name: String,
    version: String,
    manifest_path: PathBuf,
}

fn package_dir(json: &[u8], name: &str, version: &str) -> Result<PathBuf> {
    let err = |message: String| Error::Fetch {
        name: name.into(),
        version: version.into(),
        message,
    };
    let meta: Metadata = serde_json::from_slice(json)
        .map_err(|e| err(format!("cargo metadata printed unreadable JSON: {e}")))?;
    meta.packages
        .into_iter()
        .find(|p| p.name == name && p.version == version)
        .and_then(|p| p.manifest_path.parent().map(Path::to_path_buf))
        .ok_or_else(|| err("cargo resolved the manifest but not to this package".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_exact_package() {
        let json = br#"{"packages":[
            {"name":"log","version":"0.4.0","manifest_path":"/r/log-0.4.0/Cargo.toml"},
            {"name":"drv","version":"0.2.0","manifest_path":"/r/drv-0.2.0/Cargo.toml"}]}"#;
        assert_eq!(
            package_dir(json, "drv", "0.2.0").expect("found"),
            PathBuf::from("/r/drv-0.2.0")
        );
        assert!(package_dir(json, "drv", "0.3.0").is_err());
        assert!(package_dir(b"not json", "drv", "0.2.0").is_err());
    }

    #[test]
    fn crate_files_are_checked() {
        let dir = std::env::temp_dir().join(format!("md-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let f = dir.join("a.toml");
        let good = "crate = \"drv\"\nversion = \"0.1.0\"\ntemplate = \"net\"\n\
                    [[roots]]\npath = \"tx\"\nrole = \"transmit\"\nreason = \"sends\"\n\
                    [labels]\ntx = { hot = true, reason = \"TX entry\" }\n";
        std::fs::write(&f, good).expect("write");
        assert_eq!(load(&dir).expect("loads")[0].labels.len(), 1);
        for bad in [
            good.replace("0.1.0", "^0.1"),
            good.replace("TX entry", " "),
            good.replace("hot = true", "hot = false"),
            good.replace("path = \"tx\"", "path = \"rx\""),
            good.replace("drv", "../x"),
        ] {
            std::fs::write(&f, bad).expect("write");
            assert!(load(&dir).is_err());
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
