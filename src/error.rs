//! The library's one error type and its `Result` alias.

use std::fmt;

/// One problem found while checking a spec: where it is and what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Field path, e.g. `space[2].low` or `objectives[0].metric`.
    pub path: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl Problem {
    /// A problem at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem { path: path.into(), message: message.into() }
    }

    /// The same problem one level down: `prefix.path` (or `prefix` when the path is empty).
    pub fn under(self, prefix: &str) -> Self {
        let path = if self.path.is_empty() { prefix.to_string() } else { format!("{prefix}.{}", self.path) };
        Problem { path, ..self }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { write!(f, "{}", self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// Every problem of one spec file, reported together.
#[derive(Debug, Clone)]
pub struct Problems {
    pub source: String,
    pub items: Vec<Problem>,
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.items.len();
        write!(f, "{}: {} problem{} found", self.source, n, if n == 1 { "" } else { "s" })?;
        for p in &self.items {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// Problems found row by row in a file: the first [`ProblemList::MAX`]
/// are kept, the rest only counted, so that a file of a million bad rows
/// still gives a readable error.
#[derive(Debug, Clone, Default)]
pub struct ProblemList {
    items: Vec<Problem>,
    total: usize,
}

impl ProblemList {
    /// Most problems listed for one file.
    pub const MAX: usize = 50;

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.total += 1;
        if self.items.len() < Self::MAX {
            self.items.push(Problem::new(path, message));
        }
    }

    /// Every problem pushed, listed or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The kept problems, and a last line counting those left out.
    pub fn listed(&self) -> Vec<Problem> {
        let mut items = self.items.clone();
        if self.total > items.len() {
            items.push(Problem::new("...", format!("and {} more problems not listed", self.total - items.len())));
        }
        items
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A spec (experiment file, space, protocol message) failed validation.
    #[error("{0}")]
    Invalid(Problems),
    /// A value given to the library directly (not from a file) is wrong.
    #[error("{0}")]
    Config(String),
    /// An optimizer could not proceed.
    #[error("optimizer {name}: {message}")]
    Optimizer { name: String, message: String },
    /// The evaluator reported a fatal error: the study stops.
    #[error("evaluator: {0}")]
    Evaluator(String),
    /// Storage failed or holds something this binary cannot use.
    #[error("storage: {0}")]
    Storage(String),
    /// The storage refused to change a trial that is already finished or now
    /// leased to another worker (a newer epoch): the result must not count.
    /// Not a failure of the storage itself.
    #[error("{0}")]
    Refused(String),
    /// Another process holds the study.
    #[error("{0}")]
    Locked(String),
    /// The study does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl Error {
    /// A single-problem validation error.
    pub fn invalid(source: impl Into<String>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(Problems { source: source.into(), items: vec![Problem::new(path, message)] })
    }

    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub fn optimizer(name: &str, message: impl Into<String>) -> Self {
        Error::Optimizer { name: name.to_string(), message: message.into() }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
