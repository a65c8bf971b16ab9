//! Call-frequency profiles for `cut`.
//!
//! Format (JSON):
//! ```json
//! {"calls": [{"caller": "hot::xmit", "callee": "hw::write_reg", "per_second": 125000.0}]}
//! ```
//! Names are function paths as `report` prints them (a leading `crate::` is accepted, and
//! so is any unique suffix such as `Ring::push`). Calls the profile does not list have
//! frequency 0. A profiled call the static graph lacks still counts (it was observed).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::callgraph::CallGraph;
use crate::error::{Error, Result};
use crate::model::FnId;

/// A profile file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Observed calls.
    pub calls: Vec<ProfiledCall>,
}

/// One observed caller/callee pair.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfiledCall {
    /// Calling function.
    pub caller: String,
    /// Called function.
    pub callee: String,
    /// Calls per second.
    pub per_second: f64,
}

impl Profile {
    /// Reads a profile file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| Error::Profile {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Resolves names to functions and sums frequencies per (caller, callee).
    pub fn resolve(&self, graph: &CallGraph, path: &Path) -> Result<BTreeMap<(FnId, FnId), f64>> {
        let mut out = BTreeMap::new();
        for (i, c) in self.calls.iter().enumerate() {
            if !c.per_second.is_finite() || c.per_second < 0.0 {
                return Err(Error::Profile {
                    path: path.to_path_buf(),
                    message: format!(
                        "calls[{i}]: per_second must be a finite number >= 0, got {}",
                        c.per_second
                    ),
                });
            }
            let find = |name: &str| {
                graph.find(name).map_err(|e| Error::Profile {
                    path: path.to_path_buf(),
                    message: format!("calls[{i}]: {e}"),
                })
            };
            let key = (find(&c.caller)?, find(&c.callee)?);
            *out.entry(key).or_insert(0.0) += c.per_second;
        }
        Ok(out)
    }
}
