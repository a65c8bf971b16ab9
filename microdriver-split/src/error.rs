//! Errors the splitter reports. Every message says what to do about it.

use std::path::PathBuf;

/// Anything that stops an analysis or a command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path given on the command line is not a crate, a source directory or a file.
    #[error(
        "{0}: not a crate: expected a directory with src/lib.rs or src/main.rs, a directory \
         with lib.rs or main.rs, or a .rs file"
    )]
    NotACrate(PathBuf),
    /// A file could not be read.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A source file is not valid Rust.
    #[error("{path}:{line}:{column}: cannot parse: {message} (fix the syntax error; the splitter needs the whole crate)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What syn said.
        message: String,
    },
    /// A template file is malformed.
    #[error("{path}: bad template: {message} (see templates/net.toml for the format)")]
    Template {
        /// The template file, or the builtin name.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A profile file is malformed or names functions the crate does not have.
    #[error("{path}: bad profile: {message} (format: {{\"calls\": [{{\"caller\": \"mod::f\", \"callee\": \"mod::g\", \"per_second\": 1.0}}]}})")]
    Profile {
        /// The profile file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A function named on the command line (`--root`) is not in the crate.
    #[error("no function `{name}` in the crate{hint} (use the path printed by `cargo microdriver report`, e.g. `module::Type::method`)")]
    UnknownFunction {
        /// The name given.
        name: String,
        /// Candidates, when the name was ambiguous.
        hint: String,
    },
    /// The cut's constraints cannot be met.
    #[error("function `{0}` is both a critical root and #[upcall]: remove one of the annotations")]
    Conflict(String),
    /// The cut's weights are unusable.
    #[error(
        "invalid weights: --line-weight and --crossing-weight must be finite and >= 0 (got {0})"
    )]
    Weights(String),
    /// A corpus file is malformed.
    #[error("{path}: bad corpus file: {message} (see microdriver-split/tests/corpus/README.md for the format)")]
    Corpus {
        /// The corpus file or directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Cargo could not fetch a corpus crate.
    #[error("cannot fetch {name} {version} through cargo: {message} (the first run needs the crates.io registry; later runs work offline)")]
    Fetch {
        /// The crate.
        name: String,
        /// The pinned version.
        version: String,
        /// What cargo said.
        message: String,
    },
    /// Writing output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// JSON serialisation failed.
    #[error("cannot produce JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Result alias.
pub type Result<T> = std::result::Result<T, Error>;
