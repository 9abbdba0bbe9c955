//! SQLite storage: the embedded default, one file on a local disk.
//!
//! Durability and concurrency follow the storage contract: WAL with
//! `synchronous=FULL` (a commit survives power loss once it returns), a busy
//! timeout, and `BEGIN IMMEDIATE` for every transaction that may write (a
//! deferred transaction that upgrades to a write fails with SQLITE_BUSY at
//! once, ignoring the timeout). Trial numbers are unique by constraint.
//! Several processes, or several handles in one process, may share a file.
//!
//! `schema.rs` holds the migrations and the file checks, `rows.rs` the row
//! encodings and shared statements, `claim.rs` the claim primitives.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::trial::Trial;

use super::claim;
use super::common::{self, unsigned};
use super::lock::{self, Acquire};
use super::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, Owner, SpecDocument, Storage, StoredSnapshot, StudyRecord,
    StudySummary, TrialPage,
};

mod claim_tx;
mod rows;
mod schema;

use claim_tx::SqliteClaim;
use rows::*;
pub use schema::SCHEMA_VERSION;
use schema::{check_header, migrate};

/// How long a writer waits for another one before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Snapshots kept per study (the newest is the one used; a few older ones
/// help a post-mortem).
const SNAPSHOTS_KEPT: i64 = 3;

/// The database clock, as text that sorts in time order.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Why a call failed before it is put into words: SQLite's own errors are
/// named after the file by [`SqliteStorage::wrap`].
pub(super) enum Fail {
    Db(rusqlite::Error),
    Knobs(Error),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Knobs(e)
    }
}

impl From<serde_json::Error> for Fail {
    fn from(e: serde_json::Error) -> Self {
        Fail::Knobs(Error::json(e))
    }
}

pub(super) type R<T> = std::result::Result<T, Fail>;

/// The settings a connection actually runs with, as SQLite reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    /// `wal` for a file knobs opened.
    pub journal_mode: String,
    /// 0 off, 1 normal, 2 full, 3 extra.
    pub synchronous: i64,
    /// How long a connection waits for another's write lock.
    pub busy_timeout_ms: i64,
    /// Whether foreign keys are enforced.
    pub foreign_keys: bool,
    /// The schema version knobs wrote (a newer one is refused).
    pub user_version: i64,
}

/// A study store in one SQLite file.
#[derive(Debug)]
pub struct SqliteStorage {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStorage {
    /// Open (or create) the file and bring its schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        let shown = path.display();
        let conn =
            Connection::open(path).map_err(|e| Error::Storage(format!("{shown}: cannot open the SQLite file: {e}")))?;
        let setup = |e: rusqlite::Error| Error::Storage(format!("{shown}: cannot set up the SQLite connection: {e}"));
        conn.busy_timeout(BUSY_TIMEOUT).map_err(setup)?;
        conn.set_prepared_statement_cache_capacity(64);
        conn.pragma_update(None, "foreign_keys", true).map_err(setup)?;
        // Refuse a foreign or newer file before changing anything in it.
        check_header(&conn, path)?;
        // Switching to WAL needs the file to itself, and SQLite reports a busy file at once here
        // (no busy handler): several processes creating one file together retry for a while.
        let start = std::time::Instant::now();
        let mode: String = loop {
            match conn.pragma_update_and_check(None, "journal_mode", "wal", |r| r.get::<_, String>(0)) {
                Err(rusqlite::Error::SqliteFailure(e, _))
                    if e.code == rusqlite::ErrorCode::DatabaseBusy && start.elapsed() < BUSY_TIMEOUT =>
                {
                    std::thread::sleep(Duration::from_millis(5 + u64::from(std::process::id() % 20)));
                }
                other => break other.map_err(setup)?,
            }
        };
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Storage(format!(
                "{shown}: SQLite refused WAL journal mode (got `{mode}`); keep the file on a local disk"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL").map_err(setup)?;
        let storage = SqliteStorage { path: path.to_path_buf(), conn: Mutex::new(conn) };
        storage.write(migrate)?;
        Ok(storage)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability settings in force on this handle's connection.
    pub fn pragmas(&self) -> Result<Pragmas> {
        let conn = self.lock();
        let one = |name: &str| -> Result<rusqlite::types::Value> {
            conn.pragma_query_value(None, name, |r| r.get(0)).map_err(|e| self.wrap(Fail::Db(e)))
        };
        let int = |name: &str| -> Result<i64> {
            match one(name)? {
                rusqlite::types::Value::Integer(i) => Ok(i),
                other => Err(Error::Storage(format!("PRAGMA {name} returned {other:?}"))),
            }
        };
        let journal_mode = match one("journal_mode")? {
            rusqlite::types::Value::Text(s) => s,
            other => return Err(Error::Storage(format!("PRAGMA journal_mode returned {other:?}"))),
        };
        Ok(Pragmas {
            journal_mode,
            synchronous: int("synchronous")?,
            busy_timeout_ms: int("busy_timeout")?,
            foreign_keys: int("foreign_keys")? == 1,
            user_version: int("user_version")?,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic inside a transaction dropped it (rolled back): the
        // connection itself is still usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Name the file in SQLite's own errors; a database busy past the
    /// timeout is a transient fault.
    fn wrap(&self, f: Fail) -> Error {
        match f {
            Fail::Knobs(e) => e,
            Fail::Db(e) if is_busy(&e) => Error::Unavailable(format!("{}: {e}", self.path.display())),
            Fail::Db(e) => Error::Storage(format!("{}: {e}", self.path.display())),
        }
    }

    /// One `BEGIN IMMEDIATE` transaction, committed when `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>, &Path) -> R<T>) -> Result<T> {
        let mut conn = self.lock();
        let run = || -> R<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx, &self.path)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.wrap(e))
    }

    /// One read transaction (a consistent view across its queries).
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>, &Path) -> R<T>) -> Result<T> {
        let mut conn = self.lock();
        let run = || -> R<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx, &self.path)?;
            tx.finish()?;
            Ok(out)
        };
        run().map_err(|e| self.wrap(e))
    }
}

impl Storage for SqliteStorage {
    fn open_study(&self, name: &str, spec: &SpecDocument) -> Result<StudyRecord> {
        common::check_study_name(name)?;
        let spec = spec.to_json();
        self.write(|tx, path| {
            exec(
                tx,
                &format!(
                    "INSERT INTO studies (name, spec, created_at) VALUES (?1, ?2, {NOW}) ON CONFLICT (name) DO NOTHING"
                ),
                params![name, spec],
            )?;
            let mut stmt =
                tx.prepare_cached("SELECT name, spec, created_at, closed_at FROM studies WHERE name = ?1")?;
            let mut rows = stmt.query([name])?;
            match rows.next()? {
                Some(row) => Ok(study_from_row(row, path, name)?),
                None => Err(common::no_study(name).into()),
            }
        })
    }

    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>> {
        self.read(|tx, path| {
            let mut stmt =
                tx.prepare_cached("SELECT name, spec, created_at, closed_at FROM studies WHERE name = ?1")?;
            let mut rows = stmt.query([name])?;
            match rows.next()? {
                Some(row) => Ok(Some(study_from_row(row, path, name)?)),
                None => Ok(None),
            }
        })
    }

    fn list_studies(&self) -> Result<Vec<StudySummary>> {
        self.read(|tx, path| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, s.created_at, count(t.id),
                        coalesce(sum(t.state = 'complete'), 0),
                        coalesce(sum(t.state = 'failed'), 0),
                        coalesce(sum(t.state = 'running'), 0)
                 FROM studies s LEFT JOIN trials t ON t.study_id = s.id
                 GROUP BY s.id ORDER BY s.id",
            )?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let at = format!("{} studies", path.display());
                let name: String = col(row, 0, &at, "name")?;
                let count = |i: usize, what: &str| -> Result<u64> { unsigned(col(row, i, &at, what)?, &at, what) };
                out.push(StudySummary {
                    created_at: col(row, 1, &at, "created_at")?,
                    trials: count(2, "trials")?,
                    complete: count(3, "complete")?,
                    failed: count(4, "failed")?,
                    running: count(5, "running")?,
                    name,
                });
            }
            Ok(out)
        })
    }

    fn acquire(&self, study: &str, owner: &Owner) -> Result<()> {
        let owner_json = serde_json::to_string(owner).map_err(Error::json)?;
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            if row(tx, "SELECT shared_at IS NOT NULL FROM studies WHERE id = ?1", [sid], |r| r.get::<_, bool>(0))? {
                return Err(common::shared_study(study).into());
            }
            match lock::acquire(run_lock(tx, path, study, sid)?, owner) {
                Acquire::Refuse(held) => Err(common::locked(study, &held.owner, &held.acquired_at).into()),
                Acquire::Refresh => {
                    exec(tx, &format!("UPDATE study_locks SET heartbeat_at = {NOW} WHERE study_id = ?1"), [sid])?;
                    Ok(())
                }
                Acquire::Take => {
                    exec(
                        tx,
                        &format!(
                            "INSERT OR REPLACE INTO study_locks (study_id, owner_id, owner, acquired_at, heartbeat_at)
                             VALUES (?1, ?2, ?3, {NOW}, {NOW})"
                        ),
                        params![sid, owner.id, owner_json],
                    )?;
                    Ok(())
                }
            }
        })
    }

    fn release(&self, study: &str, owner: &Owner) -> Result<()> {
        self.write(|tx, _| {
            exec(
                tx,
                "DELETE FROM study_locks WHERE owner_id = ?2 AND study_id = (SELECT id FROM studies WHERE name = ?1)",
                params![study, owner.id],
            )?;
            Ok(())
        })
    }

    fn start_trials(
        &self,
        study: &str,
        trials: &[NewTrial],
        worker: &str,
        snapshot: Option<&StoredSnapshot>,
    ) -> Result<Vec<Trial>> {
        common::check_new_trials(study, trials)?;
        let encoded = encode_new(trials)?;
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            let first = next_number(tx, path, study, sid)?;
            let out = insert_trials(tx, sid, first, trials, &encoded, worker)?;
            if let Some(snap) = snapshot {
                store_snapshot(tx, sid, snap)?;
            }
            Ok(out)
        })
    }

    fn finish_trial(&self, study: &str, finished: &Finished, snapshot: Option<&StoredSnapshot>) -> Result<()> {
        let elapsed_s = common::check_finished(study, finished)?;
        let metrics = common::encode_metrics(&finished.metrics);
        let number = finished.number;
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            let (id, epoch) = leased(tx, path, study, sid, number, finished.epoch)?;
            let at = format!("{} study `{study}` trial {number}", path.display());
            let changed = exec(
                tx,
                &format!(
                    "UPDATE trials SET state = ?2, fail_reason = ?3, metrics = ?4, elapsed_s = ?5,
                            heartbeat_at = {NOW}, finished_at = {NOW}
                     WHERE id = ?1 AND state = 'running' AND epoch = ?6"
                ),
                params![
                    id,
                    finished.state.label(),
                    common::fail_reason(&finished.state),
                    metrics,
                    elapsed_s,
                    to_i64(epoch)
                ],
            )?;
            if changed != 1 {
                return Err(
                    Error::Storage(format!("{at}: changed under an IMMEDIATE transaction; not finished")).into()
                );
            }
            if let Some(snap) = snapshot {
                store_snapshot(tx, sid, snap)?;
            }
            Ok(())
        })
    }

    fn reclaim_running(&self, study: &str, worker: &str) -> Result<Vec<Trial>> {
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            exec(
                tx,
                &format!(
                    "UPDATE trials SET epoch = epoch + 1, worker = ?2, heartbeat_at = {NOW}
                     WHERE study_id = ?1 AND state = 'running'"
                ),
                params![sid, worker],
            )?;
            query_trials(
                tx,
                path,
                study,
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND state = 'running' ORDER BY number"
                ),
                [sid],
            )
        })
    }

    fn trials(&self, study: &str) -> Result<Vec<Trial>> {
        self.read(|tx, path| {
            let sid = study_id(tx, study)?;
            query_trials(
                tx,
                path,
                study,
                &format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 ORDER BY number"),
                [sid],
            )
        })
    }

    fn latest_snapshot(&self, study: &str) -> Result<Option<StoredSnapshot>> {
        self.read(|tx, path| {
            let sid = study_id(tx, study)?;
            read_snapshot(tx, path, study, sid)
        })
    }

    fn claim_keyed(
        &self,
        study: &str,
        req: &ClaimRequest,
        key: Option<&str>,
        plan: &mut dyn FnMut(&ClaimState) -> Result<ClaimPlan>,
    ) -> Result<Vec<Trial>> {
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            let mut claim = SqliteClaim { tx, path, study, sid };
            Ok(claim::ready(claim::claim(&mut claim, study, req, key, plan))?)
        })
    }

    fn enqueue(&self, study: &str, x: &[f64], config: &crate::space::Config) -> Result<u64> {
        common::check_enqueued(study, config)?;
        let (x, config) = (common::encode_floats(x), serde_json::to_string(config).map_err(Error::json)?);
        self.write(|tx, _| {
            let sid = study_id(tx, study)?;
            let closed: bool = row(tx, "SELECT closed_at IS NOT NULL FROM studies WHERE id = ?1", [sid], |r| r.get(0))?;
            if closed {
                return Err(common::closed(study).into());
            }
            exec(
                tx,
                &format!("INSERT INTO queued (study_id, x, config, created_at) VALUES (?1, ?2, ?3, {NOW})"),
                params![sid, x, config],
            )?;
            let n: i64 = row(tx, "SELECT count(*) FROM queued WHERE study_id = ?1", [sid], |r| r.get(0))?;
            Ok(n.unsigned_abs())
        })
    }

    fn queued(&self, study: &str) -> Result<u64> {
        self.read(|tx, _| {
            let sid = study_id(tx, study)?;
            let n: i64 = row(tx, "SELECT count(*) FROM queued WHERE study_id = ?1", [sid], |r| r.get(0))?;
            Ok(n.unsigned_abs())
        })
    }

    fn close_study(&self, study: &str) -> Result<()> {
        self.write(|tx, _| {
            let sid = study_id(tx, study)?;
            exec(tx, &format!("UPDATE studies SET closed_at = coalesce(closed_at, {NOW}) WHERE id = ?1"), [sid])?;
            Ok(())
        })
    }

    fn trials_page(&self, study: &str, page: &TrialPage) -> Result<Vec<Trial>> {
        let after = page.after.map_or(-1, to_i64);
        let limit = page.capped_limit() as i64;
        let state = page.state.map(|s| s.label());
        self.read(|tx, path| {
            let sid = study_id(tx, study)?;
            query_trials(
                tx,
                path,
                study,
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND number > ?2
                       AND (?3 IS NULL OR state = ?3) ORDER BY number LIMIT ?4"
                ),
                params![sid, after, state, limit],
            )
        })
    }

    fn heartbeat(&self, study: &str, number: u64, epoch: u64) -> Result<()> {
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            let (id, _) = leased(tx, path, study, sid, number, epoch)?;
            exec(tx, &format!("UPDATE trials SET heartbeat_at = {NOW} WHERE id = ?1"), [id])?;
            Ok(())
        })
    }
}

/// SQLite gave up waiting for another writer.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim's searches must go through the partial indexes: walking the
    /// study's whole number index made every claim cost time in proportion to
    /// the study's size (migration 4).
    #[test]
    fn claim_queries_use_the_partial_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(&dir.path().join("plan.db")).unwrap();
        let conn = storage.lock();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = stmt.query_map(params![1, "-60 seconds"], |r| r.get::<_, String>(3)).unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        let stale = plan(STALE_SQL);
        assert!(stale.contains("USING INDEX trials_running"), "{stale}");
        let untold = plan(&untold_sql().replace("?1", "?1 AND ?2 IS NOT NULL"));
        assert!(untold.contains("USING INDEX trials_untold"), "{untold}");
    }
}
