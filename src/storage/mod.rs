//! Storage: where studies, trials and optimizer snapshots live.
//!
//! One narrow contract ([`Storage`]) with one conformance suite
//! (`tests/storage.rs`) run on every backend. Writes happen at trial
//! boundaries only, one transaction each; a finished trial is never edited.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::optim::Snapshot;
use crate::space::Config;
use crate::trial::{Trial, TrialState};

mod common;
pub mod memory;
pub mod sqlite;

pub use memory::MemoryStorage;
pub use sqlite::SqliteStorage;

/// Open a storage by URL or path: `memory:`, `sqlite:PATH` (or
/// `sqlite://PATH`), or a plain path ending in `.db`, `.sqlite` or `.sqlite3`.
pub fn open(url_or_path: &str) -> Result<Box<dyn Storage>> {
    let s = url_or_path.trim();
    if s == "memory:" || s == "memory://" {
        return Ok(Box::new(MemoryStorage::new()));
    }
    if let Some(path) = s.strip_prefix("sqlite://").or_else(|| s.strip_prefix("sqlite:")) {
        if path.is_empty() {
            return Err(Error::Config(format!("storage `{url_or_path}`: `sqlite:` needs a file path after it")));
        }
        return Ok(Box::new(SqliteStorage::open(std::path::Path::new(path))?));
    }
    if s.starts_with("postgres://") || s.starts_with("postgresql://") {
        return Err(Error::Config(format!(
            "storage `{url_or_path}`: PostgreSQL storage is not available in this build; use `sqlite:PATH`"
        )));
    }
    let path = std::path::Path::new(s);
    match path.extension().and_then(|e| e.to_str()) {
        Some("db" | "sqlite" | "sqlite3") => Ok(Box::new(SqliteStorage::open(path)?)),
        _ => Err(Error::Config(format!(
            "storage `{url_or_path}`: expected `memory:`, `sqlite:PATH` or a path ending in .db"
        ))),
    }
}

/// A study as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    pub name: String,
    /// The checked spec the study was created with (JSON).
    pub spec: serde_json::Value,
    pub created_at: String,
}

/// One line of `knobs studies`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    pub name: String,
    pub created_at: String,
    pub trials: u64,
    pub complete: u64,
    pub failed: u64,
    pub running: u64,
}

/// A trial about to start (numbers are assigned by the storage).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    pub batch: u64,
    pub ticket: Option<u64>,
    pub x: Vec<f64>,
    pub config: Config,
    pub baseline: bool,
}

/// The outcome of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub number: u64,
    /// The lease epoch the finishing worker holds; a mismatch is refused.
    pub epoch: u64,
    /// `Complete`, `Failed` or `Pruned` (never `Running`).
    pub state: TrialState,
    pub metrics: BTreeMap<String, f64>,
    pub elapsed_s: Option<f64>,
}

/// When an optimizer snapshot was taken relative to its batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotPoint {
    /// Right after `ask`: the batch's candidates are pending.
    Asked,
    /// Right after `tell`: the batch is fully told.
    Told,
}

/// An optimizer snapshot with the batch it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSnapshot {
    pub batch: u64,
    pub point: SnapshotPoint,
    pub snapshot: Snapshot,
}

/// Who holds a study: one process on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub host: String,
    pub pid: u32,
    /// Unique per process start (host:pid:start-nanos).
    pub id: String,
}

impl Owner {
    /// The current process.
    pub fn current() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string());
        let pid = std::process::id();
        let nanos =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        Owner { id: format!("{host}:{pid}:{nanos}"), host, pid }
    }

    /// Whether this owner's process still runs (only knowable on this host;
    /// an owner on another host is assumed alive).
    pub fn is_alive(&self) -> bool {
        let here = Owner::current();
        if here.host != self.host {
            return true;
        }
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// The storage contract. Every method is one transaction.
pub trait Storage: Send + Sync {
    /// Create the study if it does not exist; return it either way.
    fn open_study(&self, name: &str, spec: &serde_json::Value) -> Result<StudyRecord>;
    /// The study, if it exists.
    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>>;
    /// Every study with its trial counts, oldest first.
    fn list_studies(&self) -> Result<Vec<StudySummary>>;
    /// Take the study for this owner. Fails with [`crate::error::Error::Locked`]
    /// when a live owner holds it; a dead owner's hold is taken over.
    fn acquire(&self, study: &str, owner: &Owner) -> Result<()>;
    /// Give the study back (no-op if `owner` does not hold it).
    fn release(&self, study: &str, owner: &Owner) -> Result<()>;
    /// Insert trials as `Running`, held by `worker`, numbered consecutively
    /// after the study's last trial; stores `snapshot` in the same transaction.
    fn start_trials(
        &self,
        study: &str,
        trials: &[NewTrial],
        worker: &str,
        snapshot: Option<&StoredSnapshot>,
    ) -> Result<Vec<Trial>>;
    /// Finish one running trial; stores `snapshot` in the same transaction.
    /// Refused when the trial is already finished or its epoch moved on.
    fn finish_trial(&self, study: &str, finished: &Finished, snapshot: Option<&StoredSnapshot>) -> Result<()>;
    /// Take over every `Running` trial of the study for `worker` (epoch + 1);
    /// returns them as they now are.
    fn reclaim_running(&self, study: &str, worker: &str) -> Result<Vec<Trial>>;
    /// Every trial of the study, by number.
    fn trials(&self, study: &str) -> Result<Vec<Trial>>;
    /// The most recent optimizer snapshot.
    fn latest_snapshot(&self, study: &str) -> Result<Option<StoredSnapshot>>;
}
