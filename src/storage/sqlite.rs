//! SQLite storage: the embedded default, one file on a local disk.
//!
//! Durability and concurrency follow the storage contract: WAL with
//! `synchronous=FULL` (a commit survives power loss once it returns), a busy
//! timeout, and `BEGIN IMMEDIATE` for every transaction that may write (a
//! deferred transaction that upgrades to a write fails with SQLITE_BUSY at
//! once, ignoring the timeout). Trial numbers are unique by constraint.
//! Several processes, or several handles in one process, may share a file.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::optim::Snapshot;
use crate::trial::Trial;

use super::common::{self, damaged, decoded, unsigned};
use super::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, Owner, Queued, SnapshotPoint, Storage, StoredSnapshot,
    StudyRecord, StudySummary, TrialPage,
};

/// How long a writer waits for another one before giving up.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Snapshots kept per study (the newest is the one used; a few older ones
/// help a post-mortem).
const SNAPSHOTS_KEPT: i64 = 3;

/// Marks the file as a knobs database ("knob").
const APPLICATION_ID: i64 = 0x6b6e_6f62;

/// The database clock, as text that sorts in time order.
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')";

/// Schema migrations: entry `i` takes the file from version `i` to `i + 1`.
/// Never edit a released entry; append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE studies (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE trials (
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        number INTEGER NOT NULL CHECK (number >= 0),
        batch INTEGER NOT NULL CHECK (batch >= 0),
        ticket INTEGER CHECK (ticket >= 0),
        x TEXT NOT NULL,
        config TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('running', 'complete', 'failed', 'pruned')),
        fail_reason TEXT,
        metrics TEXT NOT NULL DEFAULT '{}',
        elapsed_s REAL,
        worker TEXT NOT NULL,
        epoch INTEGER NOT NULL DEFAULT 0 CHECK (epoch >= 0),
        heartbeat_at TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        baseline INTEGER NOT NULL DEFAULT 0 CHECK (baseline IN (0, 1)),
        UNIQUE (study_id, number)
    );
    CREATE INDEX trials_by_state ON trials (study_id, state);
    CREATE TABLE snapshots (
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        batch INTEGER NOT NULL,
        point TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX snapshots_by_study ON snapshots (study_id, id);
    CREATE TABLE study_locks (
        study_id INTEGER PRIMARY KEY REFERENCES studies(id) ON DELETE CASCADE,
        owner_id TEXT NOT NULL,
        owner TEXT NOT NULL,
        acquired_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    );",
    // 2: shared studies (`claim`): which finished trials the shared optimizer has
    // been told, and how often a stale trial was handed to another worker.
    "ALTER TABLE trials ADD COLUMN told INTEGER NOT NULL DEFAULT 0 CHECK (told IN (0, 1));
    ALTER TABLE trials ADD COLUMN retries INTEGER NOT NULL DEFAULT 0 CHECK (retries >= 0);
    CREATE INDEX trials_untold ON trials (study_id, told);",
    // 3: the HTTP API: closed studies, and idempotency keys of asks with the
    // trials each returned (`[[number, epoch], …]`).
    "ALTER TABLE studies ADD COLUMN closed_at TEXT;
    CREATE TABLE claim_keys (
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        trials TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (study_id, key)
    );",
    // 4: claims find running and untold trials through partial indexes in
    // number order (without them SQLite's planner walked the study's whole
    // (study_id, number) index to honour `ORDER BY number`, so every claim
    // cost time in proportion to the study's size); enqueued configurations;
    // when a study was first claimed from (shared studies refuse `knobs run`);
    // idempotency keys found by age, to prune them.
    "DROP INDEX trials_untold;
    CREATE INDEX trials_untold ON trials (study_id, number) WHERE told = 0 AND state != 'running';
    CREATE INDEX trials_running ON trials (study_id, number) WHERE state = 'running';
    CREATE TABLE queued (
        id INTEGER PRIMARY KEY,
        study_id INTEGER NOT NULL REFERENCES studies(id) ON DELETE CASCADE,
        x TEXT NOT NULL,
        config TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX queued_by_study ON queued (study_id, id);
    ALTER TABLE studies ADD COLUMN shared_at TEXT;
    CREATE INDEX claim_keys_by_age ON claim_keys (study_id, created_at);",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// A claim's stale leases: running trials whose heartbeat is older than `?2`.
const STALE_SQL: &str = "SELECT id, retries FROM trials WHERE study_id = ?1 AND state = 'running'
    AND heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2) ORDER BY number";

/// A claim's finished trials not yet told to the shared optimizer.
fn untold_sql() -> String {
    format!(
        "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND told = 0 AND state != 'running' ORDER BY number"
    )
}

const TRIAL_COLUMNS: &str = "number, batch, ticket, x, config, state, fail_reason, metrics, elapsed_s, epoch, baseline";

/// The settings a connection actually runs with, as SQLite reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pragmas {
    pub journal_mode: String,
    /// 0 off, 1 normal, 2 full, 3 extra.
    pub synchronous: i64,
    pub busy_timeout_ms: i64,
    pub foreign_keys: bool,
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

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The durability settings in force on this handle's connection.
    pub fn pragmas(&self) -> Result<Pragmas> {
        let conn = self.lock();
        let one = |name: &str| -> Result<rusqlite::types::Value> {
            conn.pragma_query_value(None, name, |r| r.get(0)).map_err(|e| self.wrap(Error::Sqlite(e)))
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

    /// Name the file in SQLite's own errors.
    fn wrap(&self, e: Error) -> Error {
        match e {
            Error::Sqlite(e) => Error::Storage(format!("{}: {e}", self.path.display())),
            other => other,
        }
    }

    /// One `BEGIN IMMEDIATE` transaction, committed when `f` succeeds.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>, &Path) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let run = || -> Result<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx, &self.path)?;
            tx.commit()?;
            Ok(out)
        };
        run().map_err(|e| self.wrap(e))
    }

    /// One read transaction (a consistent view across its queries).
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>, &Path) -> Result<T>) -> Result<T> {
        let mut conn = self.lock();
        let run = || -> Result<T> {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let out = f(&tx, &self.path)?;
            tx.finish()?;
            Ok(out)
        };
        run().map_err(|e| self.wrap(e))
    }
}

/// Refuse files that are not ours or that a newer knobs wrote.
fn check_header(conn: &Connection, path: &Path) -> Result<()> {
    let shown = path.display();
    // One read transaction: another process may be creating the schema right now, and
    // reading the header and the table count apart could see half of that.
    let header = || -> rusqlite::Result<(i64, i64, i64)> {
        let tx = conn.unchecked_transaction()?;
        let app: i64 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let tables: i64 = row(&tx, "SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?;
        tx.finish()?;
        Ok((app, version, tables))
    };
    let (app, version, tables) = header().map_err(|e| Error::Storage(format!("{shown}: not a knobs database: {e}")))?;
    if app != APPLICATION_ID && (app != 0 || tables > 0) {
        return Err(Error::Storage(format!(
            "{shown}: not a knobs database (it holds other data); choose another file"
        )));
    }
    check_version(version, path)
}

fn check_version(version: i64, path: &Path) -> Result<()> {
    if version > i64::from(SCHEMA_VERSION) {
        return Err(Error::Storage(format!(
            "{} was written by a newer knobs (schema {version}, this binary knows {SCHEMA_VERSION}); upgrade knobs",
            path.display()
        )));
    }
    if version < 0 {
        return Err(Error::Storage(format!("{}: schema version {version} is invalid", path.display())));
    }
    Ok(())
}

/// Apply the missing migrations (inside the caller's IMMEDIATE transaction,
/// so two processes opening a new file at once do not both migrate).
fn migrate(tx: &Transaction<'_>, path: &Path) -> Result<()> {
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    check_version(version, path)?;
    for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", v as i64 + 1)?;
    }
    let app: i64 = tx.pragma_query_value(None, "application_id", |r| r.get(0))?;
    if app != APPLICATION_ID {
        tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    }
    Ok(())
}

/// Run a statement through the connection's statement cache: a claim runs a
/// dozen statements, and parsing them afresh each time was a measurable share
/// of its cost.
fn exec(tx: &Transaction<'_>, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(args)
}

/// One row through the statement cache (see [`exec`]).
fn row<T>(
    tx: &Transaction<'_>,
    sql: &str,
    args: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql)?.query_row(args, f)
}

fn study_id(tx: &Transaction<'_>, study: &str) -> Result<i64> {
    row(tx, "SELECT id FROM studies WHERE name = ?1", [study], |r| r.get(0))
        .optional()?
        .ok_or_else(|| common::no_study(study))
}

fn to_i64(v: u64) -> i64 {
    // Callers checked the range (common::check_new_trials).
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn point_label(p: SnapshotPoint) -> &'static str {
    match p {
        SnapshotPoint::Asked => "asked",
        SnapshotPoint::Told => "told",
    }
}

fn store_snapshot(tx: &Transaction<'_>, study_id: i64, snap: &StoredSnapshot) -> Result<()> {
    let json = serde_json::to_string(&snap.snapshot)?;
    exec(
        tx,
        &format!("INSERT INTO snapshots (study_id, batch, point, snapshot, created_at) VALUES (?1, ?2, ?3, ?4, {NOW})"),
        params![study_id, to_i64(snap.batch), point_label(snap.point), json],
    )?;
    exec(
        tx,
        "DELETE FROM snapshots WHERE study_id = ?1 AND id NOT IN
           (SELECT id FROM snapshots WHERE study_id = ?1 ORDER BY id DESC LIMIT ?2)",
        params![study_id, SNAPSHOTS_KEPT],
    )?;
    Ok(())
}

/// Read one column, naming the row and column when the file holds garbage.
fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize, where_: &str, name: &str) -> Result<T> {
    row.get(idx).map_err(|e| damaged(where_, format_args!("column `{name}`"), e))
}

/// A `trials` row (selected with [`TRIAL_COLUMNS`]) back into a [`Trial`].
fn trial_from_row(row: &Row<'_>, path: &Path, study: &str) -> Result<Trial> {
    let place = format!("{} study `{study}`", path.display());
    let number: i64 = col(row, 0, &place, "number")?;
    let at = format!("{place} trial {number}");
    let at = at.as_str();
    let baseline = match col::<i64>(row, 10, at, "baseline")? {
        0 => false,
        1 => true,
        other => return Err(damaged(at, "column `baseline`", format_args!("{other} is not 0 or 1"))),
    };
    common::TrialColumns {
        number,
        batch: col(row, 1, at, "batch")?,
        ticket: col(row, 2, at, "ticket")?,
        x: col(row, 3, at, "x")?,
        config: col(row, 4, at, "config")?,
        state: col(row, 5, at, "state")?,
        fail_reason: col(row, 6, at, "fail_reason")?,
        metrics: col(row, 7, at, "metrics")?,
        elapsed_s: col(row, 8, at, "elapsed_s")?,
        epoch: col(row, 9, at, "epoch")?,
        baseline,
    }
    .decode(at)
}

fn study_from_row(row: &Row<'_>, path: &Path, name: &str) -> Result<StudyRecord> {
    let at = format!("{} study `{name}`", path.display());
    let spec: String = col(row, 1, &at, "spec")?;
    Ok(StudyRecord {
        name: col(row, 0, &at, "name")?,
        spec: decoded(serde_json::from_str(&spec), &at, "spec")?,
        created_at: col(row, 2, &at, "created_at")?,
        closed: col::<Option<String>>(row, 3, &at, "closed_at")?.is_some(),
    })
}

fn query_trials(
    tx: &Transaction<'_>,
    path: &Path,
    study: &str,
    sql: &str,
    args: impl rusqlite::Params,
) -> Result<Vec<Trial>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(trial_from_row(row, path, study)?);
    }
    Ok(out)
}

/// The number the study's next trial gets (inside a write transaction).
fn next_number(tx: &Transaction<'_>, path: &Path, study: &str, sid: i64) -> Result<u64> {
    let next: i64 =
        row(tx, "SELECT coalesce(max(number) + 1, 0) FROM trials WHERE study_id = ?1", [sid], |r| r.get(0))?;
    unsigned(next, &format!("{} study `{study}`", path.display()), "number")
}

/// Insert `trials` as running for `worker`, numbered from `first` (the study's next number).
fn insert_trials(
    tx: &Transaction<'_>,
    sid: i64,
    first: u64,
    trials: &[NewTrial],
    encoded: &[(String, String)],
    worker: &str,
) -> Result<Vec<Trial>> {
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO trials (study_id, number, batch, ticket, x, config, state, metrics, worker, epoch,
                             heartbeat_at, started_at, baseline)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', '{{}}', ?7, 0, {NOW}, {NOW}, ?8)"
    ))?;
    let mut out = Vec::with_capacity(trials.len());
    for ((t, (x, config)), number) in trials.iter().zip(encoded).zip(first..) {
        insert.execute(params![
            sid,
            to_i64(number),
            to_i64(t.batch),
            t.ticket.map(to_i64),
            x,
            config,
            worker,
            t.baseline
        ])?;
        out.push(t.started(number));
    }
    Ok(out)
}

/// The row id and epoch of a running trial leased at `epoch`; the contract's
/// refusals otherwise (unknown trial, already finished, stale epoch).
fn leased(tx: &Transaction<'_>, path: &Path, study: &str, sid: i64, number: u64, epoch: u64) -> Result<(i64, u64)> {
    let Ok(num) = i64::try_from(number) else { return Err(common::no_trial(study, number)) };
    let at = format!("{} study `{study}` trial {number}", path.display());
    let row: Option<(i64, String, Option<String>, i64, String)> = tx
        .query_row(
            "SELECT id, state, fail_reason, epoch, worker FROM trials WHERE study_id = ?1 AND number = ?2",
            params![sid, num],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(|e| damaged(&at, "the row", e))?;
    let Some((id, state, reason, current, worker)) = row else { return Err(common::no_trial(study, number)) };
    let state = decoded(common::decode_state(&state, reason), &at, "state")?;
    if state.is_finished() {
        return Err(common::already_finished(study, number, &state));
    }
    let current = unsigned(current, &at, "epoch")?;
    if current != epoch {
        return Err(common::stale_epoch(study, number, epoch, current, &worker));
    }
    Ok((id, current))
}

fn read_snapshot(tx: &Transaction<'_>, path: &Path, study: &str, sid: i64) -> Result<Option<StoredSnapshot>> {
    let row: Option<(i64, String, String)> = tx
        .query_row(
            "SELECT batch, point, snapshot FROM snapshots WHERE study_id = ?1 ORDER BY id DESC LIMIT 1",
            [sid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| damaged(format_args!("{} study `{study}`", path.display()), "the latest snapshot", e))?;
    let Some((batch, point, json)) = row else { return Ok(None) };
    let at = format!("{} study `{study}` snapshot", path.display());
    let point = match point.as_str() {
        "asked" => SnapshotPoint::Asked,
        "told" => SnapshotPoint::Told,
        other => return Err(damaged(&at, "column `point`", format_args!("unknown point `{other}`"))),
    };
    Ok(Some(StoredSnapshot {
        batch: unsigned(batch, &at, "batch")?,
        point,
        snapshot: decoded(serde_json::from_str::<Snapshot>(&json), &at, "snapshot")?,
    }))
}

fn encode_new(trials: &[NewTrial]) -> Result<Vec<(String, String)>> {
    trials.iter().map(|t| Ok((common::encode_floats(&t.x), serde_json::to_string(&t.config)?))).collect()
}

impl Storage for SqliteStorage {
    fn open_study(&self, name: &str, spec: &serde_json::Value) -> Result<StudyRecord> {
        common::check_study_name(name)?;
        let spec = serde_json::to_string(spec)?;
        self.write(|tx, path| {
            exec(
                tx,
                &format!(
                    "INSERT INTO studies (name, spec, created_at) VALUES (?1, ?2, {NOW}) ON CONFLICT (name) DO NOTHING"
                ),
                params![name, spec],
            )?;
            tx.query_row_and_then(
                "SELECT name, spec, created_at, closed_at FROM studies WHERE name = ?1",
                [name],
                |row| study_from_row(row, path, name),
            )
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
        let owner_json = serde_json::to_string(owner)?;
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            if row(tx, "SELECT shared_at IS NOT NULL FROM studies WHERE id = ?1", [sid], |r| r.get::<_, bool>(0))? {
                return Err(common::shared_study(study));
            }
            let held: Option<(String, String, String)> = tx
                .query_row("SELECT owner_id, owner, acquired_at FROM study_locks WHERE study_id = ?1", [sid], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .optional()
                .map_err(|e| damaged(format_args!("{} study `{study}`", path.display()), "the lock row", e))?;
            if let Some((held_id, held_owner, since)) = held {
                if held_id == owner.id {
                    exec(tx, &format!("UPDATE study_locks SET heartbeat_at = {NOW} WHERE study_id = ?1"), [sid])?;
                    return Ok(());
                }
                let holder: Owner = serde_json::from_str(&held_owner)
                    .map_err(|e| damaged(format_args!("{} study `{study}`", path.display()), "the lock row", e))?;
                if holder.is_alive() {
                    return Err(common::locked(study, &holder, &since));
                }
            }
            exec(
                tx,
                &format!(
                    "INSERT OR REPLACE INTO study_locks (study_id, owner_id, owner, acquired_at, heartbeat_at)
                     VALUES (?1, ?2, ?3, {NOW}, {NOW})"
                ),
                params![sid, owner.id, owner_json],
            )?;
            Ok(())
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
                return Err(Error::Storage(format!("{at}: changed under an IMMEDIATE transaction; not finished")));
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
        let grace = common::check_claim(req, key)?;
        self.write(|tx, path| {
            let sid = study_id(tx, study)?;
            let at = format!("{} study `{study}`", path.display());
            // 0. A key seen before: the trials it claimed, nothing new.
            if let Some(k) = key {
                let stored: Option<String> = tx
                    .query_row("SELECT trials FROM claim_keys WHERE study_id = ?1 AND key = ?2", params![sid, k], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if let Some(text) = stored {
                    let claimed = decoded(super::decode_claimed(&text), &at, "claim_keys.trials")?;
                    let numbers = serde_json::to_string(&claimed.iter().map(|c| c.0).collect::<Vec<_>>())?;
                    let found = query_trials(
                        tx,
                        path,
                        study,
                        &format!(
                            "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1
                               AND number IN (SELECT value FROM json_each(?2)) ORDER BY number"
                        ),
                        params![sid, numbers],
                    )?;
                    return super::replayed(&claimed, found, study);
                }
            }
            // A live `knobs run` holding the study keeps claims out; the first claim marks it shared.
            let (shared, held): (bool, Option<(String, String)>) = row(
                tx,
                "SELECT s.shared_at IS NOT NULL, l.owner, l.acquired_at
                   FROM studies s LEFT JOIN study_locks l ON l.study_id = s.id WHERE s.id = ?1",
                [sid],
                |r| Ok((r.get(0)?, r.get::<_, Option<String>>(1)?.zip(r.get::<_, Option<String>>(2)?))),
            )?;
            if let Some((owner, since)) = held {
                let holder: Owner = decoded(serde_json::from_str(&owner), &at, "study_locks.owner")?;
                if holder.is_alive() {
                    return Err(common::run_holds(study, &holder, &since));
                }
            }
            if !shared {
                exec(tx, &format!("UPDATE studies SET shared_at = {NOW} WHERE id = ?1"), [sid])?;
            }
            // 1. Stale leases: re-lease or fail.
            let cutoff = format!("-{grace:.3} seconds");
            let stale: Vec<(i64, i64)> = {
                let mut stmt = tx.prepare_cached(STALE_SQL)?;
                stmt.query_map(params![sid, cutoff], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?
            };
            let mut retried_ids = Vec::new();
            for (id, retries) in stale {
                if unsigned(retries, &at, "retries")? < u64::from(req.max_retries) {
                    exec(tx,
                        &format!(
                            "UPDATE trials SET epoch = epoch + 1, retries = retries + 1, worker = ?2, heartbeat_at = {NOW}
                             WHERE id = ?1"
                        ),
                        params![id, req.worker],
                    )?;
                    retried_ids.push(id);
                } else {
                    exec(tx,
                        &format!(
                            "UPDATE trials SET state = 'failed', fail_reason = ?2, heartbeat_at = {NOW}, finished_at = {NOW}
                             WHERE id = ?1"
                        ),
                        params![id, common::stale_reason(grace, retries)],
                    )?;
                }
            }
            let mut retried = Vec::with_capacity(retried_ids.len());
            for id in retried_ids {
                retried.extend(query_trials(tx, path, study, &format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = ?1"), [id])?);
            }
            // 2. The state the planner sees.
            let untold = query_trials(
                tx,
                path,
                study,
                &untold_sql(),
                [sid],
            )?;
            let (total, running, last_batch): (i64, i64, i64) = row(tx,
                // Index lookups, not scans, so a claim costs the same in a study of 100,000 trials:
                // numbers are consecutive from 0 and batches never decrease with numbers.
                "SELECT coalesce((SELECT number + 1 FROM trials WHERE study_id = ?1 ORDER BY number DESC LIMIT 1), 0),
                        (SELECT count(*) FROM trials WHERE study_id = ?1 AND state = 'running'),
                        coalesce((SELECT batch FROM trials WHERE study_id = ?1 ORDER BY number DESC LIMIT 1), 0)",
                [sid],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let queued = {
                let mut stmt = tx.prepare_cached("SELECT id, x, config FROM queued WHERE study_id = ?1 ORDER BY id LIMIT ?2")?;
                let mut rows = stmt.query(params![sid, ClaimState::QUEUED_READ as i64])?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let id: i64 = col(r, 0, &at, "queued.id")?;
                    let place = format!("{at} queued configuration {id}");
                    let x: String = col(r, 1, &place, "x")?;
                    let config: String = col(r, 2, &place, "config")?;
                    out.push(Queued {
                        id: unsigned(id, &place, "id")?,
                        x: decoded(common::decode_floats(&x), &place, "x")?,
                        config: decoded(serde_json::from_str(&config), &place, "config")?,
                    });
                }
                out
            };
            let state = ClaimState {
                queued,
                snapshot: read_snapshot(tx, path, study, sid)?,
                untold,
                retried,
                total: unsigned(total, &at, "count")?,
                running: unsigned(running, &at, "count")?,
                last_batch: unsigned(last_batch, &at, "batch")?,
                closed: tx
                    .query_row("SELECT closed_at IS NOT NULL FROM studies WHERE id = ?1", [sid], |r| r.get(0))?,
            };
            // 3. The plan, written in the same transaction.
            let p = plan(&state)?;
            common::check_new_trials(study, &p.new)?;
            common::check_dequeued(study, &state.queued, &p.dequeued)?;
            for id in &p.dequeued {
                exec(tx, "DELETE FROM queued WHERE id = ?1 AND study_id = ?2", params![to_i64(*id), sid])?;
            }
            let encoded = encode_new(&p.new)?;
            let new = insert_trials(tx, sid, state.total, &p.new, &encoded, &req.worker)?;
            for number in &p.told {
                let Ok(num) = i64::try_from(*number) else { return Err(common::no_trial(study, *number)) };
                let exists: Option<i64> = tx
                    .query_row("SELECT 1 FROM trials WHERE study_id = ?1 AND number = ?2", params![sid, num], |r| r.get(0))
                    .optional()?;
                if exists.is_none() {
                    return Err(common::no_trial(study, *number));
                }
                exec(tx,
                    "UPDATE trials SET told = 1 WHERE study_id = ?1 AND number = ?2 AND state != 'running'",
                    params![sid, num],
                )?;
            }
            if let Some(snap) = &p.snapshot {
                store_snapshot(tx, sid, snap)?;
            }
            let mut out = state.retried;
            out.extend(new);
            if let Some(k) = key {
                // Drop the study's keys past their retention, then store this one.
                exec(
                    tx,
                    "DELETE FROM claim_keys WHERE study_id = ?1
                       AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2)",
                    params![sid, format!("-{} days", super::CLAIM_KEY_DAYS)],
                )?;
                exec(tx,
                    &format!("INSERT INTO claim_keys (study_id, key, trials, created_at) VALUES (?1, ?2, ?3, {NOW})"),
                    params![sid, k, super::encode_claimed(&out)],
                )?;
            }
            Ok(out)
        })
    }

    fn enqueue(&self, study: &str, x: &[f64], config: &crate::space::Config) -> Result<u64> {
        common::check_enqueued(study, config)?;
        let (x, config) = (common::encode_floats(x), serde_json::to_string(config)?);
        self.write(|tx, _| {
            let sid = study_id(tx, study)?;
            let closed: bool = row(tx, "SELECT closed_at IS NOT NULL FROM studies WHERE id = ?1", [sid], |r| r.get(0))?;
            if closed {
                return Err(common::closed(study));
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
