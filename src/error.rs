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
    /// The file (or request, or other input) they were found in.
    pub source: String,
    /// Every problem, in the order found.
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

    /// Count a problem at `path`, and keep it while fewer than [`Self::MAX`] are kept.
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

/// The library's error. Each variant belongs to one [`ErrorKind`], which
/// decides the exit code of the command line and the HTTP status of the API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A spec (experiment file, space, protocol message, request) failed
    /// validation: every problem, each with its field path.
    #[error("{0}")]
    Invalid(Problems),
    /// A value given directly (an argument, an option, a call) is wrong.
    #[error("{0}")]
    Config(String),
    /// An optimizer could not proceed.
    #[error("optimizer {name}: {message}")]
    Optimizer {
        /// The optimizer's registry name.
        name: String,
        /// What went wrong.
        message: String,
    },
    /// The evaluator reported a fatal error: the study stops.
    #[error("evaluator: {0}")]
    Evaluator(String),
    /// Storage failed for good or holds something this binary cannot use
    /// (a damaged row, a newer schema).
    #[error("storage: {0}")]
    Storage(String),
    /// Storage could not be reached or was busy (a lost connection, a
    /// timeout, a lock held too long): the same call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The storage refused to change a trial that is already finished or now
    /// leased to another worker (a newer epoch): the result must not count.
    /// Not a failure of the storage itself.
    #[error("{0}")]
    Refused(String),
    /// Another process holds the study, or the study is closed or shared.
    #[error("{0}")]
    Locked(String),
    /// The study or trial does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Reading or writing a named file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A fault inside knobs (a value that could not be encoded, a thread
    /// that could not start): not the caller's doing.
    #[error("internal: {0}")]
    Internal(String),
}

/// What kind of failure an [`Error`] is: what a caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: fix the spec, the request or the arguments (exit 2, HTTP 400).
    BadInput,
    /// Refused in the state the study is in: a finished or re-leased trial
    /// (exit 1, HTTP 409).
    Refused,
    /// Held by another process, closed or shared (exit 3, HTTP 409).
    Locked,
    /// No such study or trial (exit 1, HTTP 404).
    NotFound,
    /// A transient storage fault: retry later (exit 1, HTTP 503).
    Unavailable,
    /// Everything else: the evaluator, the storage's contents, knobs itself (exit 1, HTTP 500).
    Internal,
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Invalid(_) | Error::Config(_) => ErrorKind::BadInput,
            Error::Refused(_) => ErrorKind::Refused,
            Error::Locked(_) => ErrorKind::Locked,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::Optimizer { .. }
            | Error::Evaluator(_)
            | Error::Storage(_)
            | Error::Io { .. }
            | Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A single-problem validation error.
    pub fn invalid(source: impl Into<String>, path: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid(Problems { source: source.into(), items: vec![Problem::new(path, message)] })
    }

    /// An I/O error on the file `path`.
    pub fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// An optimizer's error.
    pub fn optimizer(name: &str, message: impl Into<String>) -> Self {
        Error::Optimizer { name: name.to_string(), message: message.into() }
    }

    /// A value that could not be written as JSON (a fault of knobs, not of the caller).
    pub(crate) fn json(e: serde_json::Error) -> Self {
        Error::Internal(format!("JSON: {e}"))
    }
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
