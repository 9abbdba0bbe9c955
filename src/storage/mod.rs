//! Storage: where studies, trials and optimizer snapshots live.
//!
//! One narrow contract ([`Storage`]) with one conformance suite
//! (`storage::conformance`, feature `conformance`) run on every backend. Writes happen at trial
//! boundaries only, one transaction each; a finished trial is never edited.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Problem, Problems, Result};
use crate::optim::Snapshot;
use crate::space::Config;
use crate::trial::{Trial, TrialState};

mod claim;
mod common;
#[cfg(feature = "conformance")]
pub mod conformance;
mod lock;
pub mod memory;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

pub use lock::{LOCK_GRACE, LOCK_HEARTBEAT};
pub use memory::MemoryStorage;
#[cfg(feature = "postgres")]
pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

/// Open a storage by URL or path: `memory:`, `sqlite:PATH` (or
/// `sqlite://PATH`), a plain path ending in `.db`, `.sqlite` or `.sqlite3`, or
/// `postgres://…` / `postgresql://…` (optionally `?schema=NAME`).
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
        #[cfg(feature = "postgres")]
        return Ok(Box::new(PostgresStorage::open(s)?));
        #[cfg(not(feature = "postgres"))]
        return Err(Error::Config(format!(
            "storage `{}`: this knobs was built without the `postgres` feature",
            s.split('@').next_back().unwrap_or("")
        )));
    }
    let path = std::path::Path::new(s);
    match path.extension().and_then(|e| e.to_str()) {
        Some("db" | "sqlite" | "sqlite3") => Ok(Box::new(SqliteStorage::open(path)?)),
        _ => Err(Error::Config(format!(
            "storage `{url_or_path}`: expected `memory:`, `sqlite:PATH`, a path ending in .db or `postgres://…`"
        ))),
    }
}

/// A study's spec as its storage keeps it: a JSON document the backend
/// writes when the study is created ([`SpecDocument::to_json`]) and hands
/// back unchanged ([`SpecDocument::from_json`]). Only the study reads what
/// is inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SpecDocument(serde_json::Value);

impl SpecDocument {
    /// The document as JSON text, as a backend stores it.
    pub fn to_json(&self) -> String {
        self.0.to_string()
    }

    /// A document from the JSON text a backend stored; `source` names where
    /// it was read (for the error).
    pub fn from_json(text: &str, source: &str) -> Result<SpecDocument> {
        serde_json::from_str(text).map(SpecDocument).map_err(|e| {
            Error::Invalid(Problems {
                source: source.into(),
                items: vec![Problem::new("spec", format!("not JSON: {e}"))],
            })
        })
    }

    pub(crate) fn new(value: serde_json::Value) -> SpecDocument {
        SpecDocument(value)
    }

    /// A top-level field of the document.
    pub(crate) fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }
}

/// A study as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyRecord {
    /// The study's name (unique in its storage).
    pub name: String,
    /// The checked spec the study was created with.
    pub spec: SpecDocument,
    /// When it was created, UTC, `YYYY-MM-DDTHH:MM:SS.mmmZ` by the storage's clock.
    pub created_at: String,
    /// Closed studies hand out no new trials ([`Storage::close_study`]).
    #[serde(default)]
    pub closed: bool,
}

/// One line of `knobs studies` (and of the API's study list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySummary {
    /// The study's name.
    pub name: String,
    /// When it was created (as [`StudyRecord::created_at`]).
    pub created_at: String,
    /// Trials in every state.
    pub trials: u64,
    /// Trials that completed with their metrics.
    pub complete: u64,
    /// Trials that failed (evaluator error, timeout, stale lease).
    pub failed: u64,
    /// Trials started and not finished yet (or whose worker died).
    pub running: u64,
}

/// A trial about to start (numbers are assigned by the storage).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrial {
    /// The optimizer batch (one `ask`) it came from, counting from 1.
    pub batch: u64,
    /// The optimizer's ticket for the candidate; `None` for a point the
    /// optimizer did not propose (the baseline, a queued configuration).
    pub ticket: Option<u64>,
    /// Its position in the unit cube, one coordinate per parameter.
    pub x: Vec<f64>,
    /// The configuration `x` decodes to.
    pub config: Config,
    /// Whether this is the baseline (today's values).
    pub baseline: bool,
    /// Whether this re-measures a configuration in the confirmation phase.
    pub confirm: bool,
}

impl NewTrial {
    /// The trial as stored: `Running` at epoch 0 under `number`.
    pub fn started(&self, number: u64) -> Trial {
        Trial {
            number,
            batch: self.batch,
            ticket: self.ticket,
            x: self.x.clone(),
            config: self.config.clone(),
            state: TrialState::Running,
            metrics: Default::default(),
            elapsed_s: None,
            epoch: 0,
            baseline: self.baseline,
            confirm: self.confirm,
        }
    }
}

/// The outcome of one trial.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The trial's number in its study.
    pub number: u64,
    /// The lease epoch the finishing worker holds; a mismatch is refused.
    pub epoch: u64,
    /// `Complete`, `Failed` or `Pruned` (never `Running`).
    pub state: TrialState,
    /// What the evaluator measured, by metric name (may be partial for a
    /// failed trial).
    pub metrics: BTreeMap<String, f64>,
    /// Wall-clock seconds the evaluation took, when measured.
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
    /// The batch it was taken in.
    pub batch: u64,
    /// Whether it was taken after that batch's `ask` or after its `tell`.
    pub point: SnapshotPoint,
    /// The optimizer's state.
    pub snapshot: Snapshot,
}

/// Who holds a study: one process on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The host name the process runs on.
    pub host: String,
    /// Its process id on that host (checked for liveness there only).
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

    /// Whether a process with this owner's pid exists on this host (which
    /// says nothing about an owner on another host).
    pub fn process_exists(&self) -> bool {
        std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// What [`Storage::claim`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRequest {
    /// The worker that will evaluate the claimed trials (and heartbeat them).
    pub worker: String,
    /// A `Running` trial whose heartbeat is older than this many seconds is stale.
    pub grace_s: f64,
    /// How many times a stale trial is handed to another worker before it is failed.
    pub max_retries: u32,
}

/// What the storage read under the study's lock, handed to the planner of
/// [`Storage::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimState {
    /// The newest optimizer snapshot of the study.
    pub snapshot: Option<StoredSnapshot>,
    /// Finished trials not yet marked told (by a previous claim), by number.
    pub untold: Vec<Trial>,
    /// Stale trials this claim re-leased to the requesting worker (epoch + 1);
    /// they are returned by `claim` ahead of the new ones.
    pub retried: Vec<Trial>,
    /// Trials in the study, any state (including the re-leased ones).
    pub total: u64,
    /// Trials `Running` after the stale ones were re-leased or failed.
    pub running: u64,
    /// The highest batch number used so far (0 when none): the batch of the
    /// study's last trial, as batches never decrease with trial numbers.
    pub last_batch: u64,
    /// The study was closed: the planner should add no new trials.
    pub closed: bool,
    /// Configurations enqueued to be evaluated ([`Storage::enqueue`]), oldest
    /// first, at most [`ClaimState::QUEUED_READ`] of them.
    pub queued: Vec<Queued>,
}

impl ClaimState {
    /// The most queued configurations one claim reads.
    pub const QUEUED_READ: usize = 1000;
}

/// A configuration waiting in a study's queue ([`Storage::enqueue`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    /// Its place in the queue (increasing with arrival; not a trial number).
    pub id: u64,
    /// Its position in the unit cube, as [`crate::space::Space::encode`] gives it.
    pub x: Vec<f64>,
    /// The configuration, with every parameter set.
    pub config: Config,
}

/// Which trials one page of [`Storage::trials_page`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrialPage {
    /// Only trials in this state (`running`, `complete`, `failed` or `pruned`).
    pub state: Option<StateFilter>,
    /// Only trials numbered after this one.
    pub after: Option<u64>,
    /// At most this many trials (capped at [`TrialPage::MAX_LIMIT`]).
    pub limit: usize,
}

impl TrialPage {
    /// The most trials one page returns.
    pub const MAX_LIMIT: usize = 10_000;

    /// The limit as the backends apply it.
    pub fn capped_limit(&self) -> usize {
        self.limit.min(Self::MAX_LIMIT)
    }
}

/// A trial state without its payload, to filter by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateFilter {
    /// Started, not finished.
    Running,
    /// Finished with metrics.
    Complete,
    /// Finished with an error.
    Failed,
    /// Stopped early by a pruner.
    Pruned,
}

impl StateFilter {
    /// The label the backends store (as [`TrialState::label`]).
    pub fn label(self) -> &'static str {
        match self {
            StateFilter::Running => "running",
            StateFilter::Complete => "complete",
            StateFilter::Failed => "failed",
            StateFilter::Pruned => "pruned",
        }
    }

    /// Whether a trial in `state` passes this filter.
    pub fn matches(self, state: &TrialState) -> bool {
        state.label() == self.label()
    }
}

/// What the planner of [`Storage::claim`] decided, written in the same
/// transaction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClaimPlan {
    /// New trials to insert as `Running` for the worker, numbered after the last.
    pub new: Vec<NewTrial>,
    /// Numbers of trials (from `untold`) now told to the optimizer.
    pub told: Vec<u64>,
    /// The optimizer's snapshot after telling and asking.
    pub snapshot: Option<StoredSnapshot>,
    /// Ids of queued configurations (from `queued`) this plan turned into new
    /// trials; they leave the queue in the same transaction.
    pub dequeued: Vec<u64>,
}

/// The storage contract. Every method is one transaction.
///
/// A study writes every trial to its storage as it goes, so any program
/// can read what a run did, while it runs or long after:
///
/// ```
/// use std::path::PathBuf;
/// use std::sync::Arc;
/// use knobs::{MemoryStorage, RunOptions, Spec, Storage, Study, TrialState};
///
/// let spec = Spec::parse(
///     "space:\n  - {name: x1, type: float, low: -5, high: 10, default: 0}\n  \
///      - {name: x2, type: float, low: 0, high: 15, default: 0}\n\
///      evaluator: {type: function, name: branin}\nbudget: {trials: 12}",
///     "doc", "demo", PathBuf::from("."),
/// )?;
/// let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
/// Study::open(spec, storage.clone(), false)?.run(&RunOptions::default())?;
///
/// let trials = storage.trials("demo")?;
/// assert_eq!(trials.len(), 12);
/// assert!(trials.iter().all(|t| t.state == TrialState::Complete && t.metrics.contains_key("value")));
/// assert_eq!(storage.list_studies()?[0].trials, 12);
/// // A second run of the same study must wait for the first (or take over its lock once it is silent).
/// let me = knobs::storage::Owner::current();
/// storage.acquire("demo", &me)?;
/// storage.release("demo", &me)?;
/// # Ok::<(), knobs::Error>(())
/// ```
///
/// A new backend implements these methods and runs the conformance suite
/// (`storage::conformance`, feature `conformance`) in its tests.
pub trait Storage: Send + Sync {
    /// Create the study if it does not exist; return it either way.
    fn open_study(&self, name: &str, spec: &SpecDocument) -> Result<StudyRecord>;
    /// The study, if it exists.
    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>>;
    /// Every study with its trial counts, oldest first.
    fn list_studies(&self) -> Result<Vec<StudySummary>>;
    /// Take the study's run lock for this owner, or refresh its heartbeat
    /// when the owner holds it already (a holder calls this every
    /// [`LOCK_HEARTBEAT`]). Fails with [`crate::error::Error::Locked`] when
    /// another owner holds it and is alive: it heartbeat within
    /// [`LOCK_GRACE`] (by the storage's clock) and, on this host, its
    /// process exists. A dead owner's lock is taken over, from any host.
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

    /// Shared studies: many workers, in many processes on many machines,
    /// ask → evaluate → tell against one study. One transaction holding the
    /// study's write lock (SQLite `BEGIN IMMEDIATE`, PostgreSQL
    /// `SELECT … FOR UPDATE` on the study row), in this order:
    ///
    /// 1. every `Running` trial whose heartbeat is older than `grace_s`
    ///    (by the database's clock) is stale: one that has been retried fewer than
    ///    `max_retries` times is re-leased to `req.worker` (epoch + 1, retries + 1,
    ///    heartbeat now), the others are failed with a reason naming the staleness;
    /// 2. `plan` is called with the [`ClaimState`] read under the lock;
    /// 3. the plan's new trials are inserted (`Running`, held by `req.worker`,
    ///    numbered after the study's last trial), its `told` trials marked told, its
    ///    snapshot stored.
    ///
    /// Returns the re-leased trials followed by the new ones. An error from
    /// `plan` rolls everything back.
    fn claim(
        &self,
        study: &str,
        req: &ClaimRequest,
        plan: &mut dyn FnMut(&ClaimState) -> Result<ClaimPlan>,
    ) -> Result<Vec<Trial>> {
        self.claim_keyed(study, req, None, plan)
    }

    /// [`Storage::claim`] under an idempotency key (a client's request id).
    /// The first call with `key` claims as `claim` does and stores the key
    /// with the numbers and epochs of the trials it returned, in the same
    /// transaction. A later call with the same key claims nothing, does not
    /// call `plan`, and returns those trials as they are now, each with the
    /// epoch it was claimed at (so a trial re-leased since is refused on tell).
    /// `None` is a plain claim. Keys are kept [`CLAIM_KEY_DAYS`].
    fn claim_keyed(
        &self,
        study: &str,
        req: &ClaimRequest,
        key: Option<&str>,
        plan: &mut dyn FnMut(&ClaimState) -> Result<ClaimPlan>,
    ) -> Result<Vec<Trial>>;

    /// Add a configuration to the study's queue: the next claims hand queued
    /// configurations out (as new trials, oldest first) before asking the
    /// optimizer. Returns how many configurations wait in the queue now.
    /// Refused on a closed study.
    fn enqueue(&self, study: &str, x: &[f64], config: &Config) -> Result<u64>;

    /// How many configurations wait in the study's queue.
    fn queued(&self, study: &str) -> Result<u64>;

    /// Close the study: claims see [`ClaimState::closed`] and add no new
    /// trials; running trials may still be finished. Closing twice is fine.
    fn close_study(&self, study: &str) -> Result<()>;

    /// One page of the study's trials by number (never the whole study).
    fn trials_page(&self, study: &str, page: &TrialPage) -> Result<Vec<Trial>>;

    /// One trial, if the study has it.
    fn trial(&self, study: &str, number: u64) -> Result<Option<Trial>> {
        let page = TrialPage { state: None, after: number.checked_sub(1), limit: 1 };
        Ok(self.trials_page(study, &page)?.into_iter().find(|t| t.number == number))
    }

    /// Keep a claimed trial's lease alive. Refused (with the same errors as
    /// [`Storage::finish_trial`]) when the trial is finished or its epoch moved on,
    /// which tells the worker to abandon it.
    fn heartbeat(&self, study: &str, number: u64, epoch: u64) -> Result<()>;
}

/// Longest idempotency key accepted (bytes).
pub const MAX_CLAIM_KEY: usize = 512;

/// How long an idempotency key of [`Storage::claim_keyed`] is kept: a retry
/// within a day returns the same trials; keys older than that are removed by
/// the next keyed claim on the study (so they do not pile up forever).
pub const CLAIM_KEY_DAYS: u32 = 1;

fn check_claim_key(key: Option<&str>) -> Result<()> {
    match key {
        Some(k) if k.is_empty() || k.len() > MAX_CLAIM_KEY => Err(Error::Config(format!(
            "claim: an idempotency key must be 1..{MAX_CLAIM_KEY} bytes (got {} bytes)",
            k.len()
        ))),
        _ => Ok(()),
    }
}

/// The trials a keyed claim returned, as stored beside its key: `[[number, epoch], …]`.
fn encode_claimed(trials: &[Trial]) -> String {
    serde_json::Value::Array(trials.iter().map(|t| serde_json::json!([t.number, t.epoch])).collect()).to_string()
}

fn decode_claimed(text: &str) -> std::result::Result<Vec<(u64, u64)>, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// Stored trials in the order a keyed claim returned them, each at the epoch it
/// was claimed at; a number the study lacks is damage.
fn replayed(claimed: &[(u64, u64)], mut found: Vec<Trial>, study: &str) -> Result<Vec<Trial>> {
    claimed
        .iter()
        .map(|&(number, epoch)| {
            let i = found.iter().position(|t| t.number == number).ok_or_else(|| {
                common::damaged(
                    format_args!("study `{study}`"),
                    "a stored claim key",
                    format_args!("it names trial {number}, which does not exist"),
                )
            })?;
            let mut t = found.swap_remove(i);
            t.epoch = epoch;
            Ok(t)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::SpecDocument;

    #[test]
    fn a_spec_document_survives_its_text_and_bad_text_names_where_it_was_read() {
        let doc = SpecDocument::new(serde_json::json!({ "tag": "a", "low": 0.1, "tiny": 5e-324 }));
        assert_eq!(SpecDocument::from_json(&doc.to_json(), "row 1").unwrap(), doc);
        let err = SpecDocument::from_json("{not json", "studies row 7").unwrap_err().to_string();
        assert!(err.contains("studies row 7") && err.contains("not JSON"), "{err}");
    }
}
