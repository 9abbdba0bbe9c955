//! PostgreSQL storage: one study shared by many workers on many machines.
//!
//! The engine is synchronous, so each handle owns a small tokio runtime and
//! blocks on it (from plain threads or from `spawn_blocking` threads of
//! another runtime; never from async code); a deadpool pool keeps a few
//! connections. Every method is one transaction. Writers that number trials
//! (`start_trials`, `claim`) hold the study row `FOR UPDATE`, so numbering is
//! gap-free, and numbers are unique by constraint besides. Lease times come
//! from the database's clock. The URL may carry `?schema=NAME` to keep knobs'
//! tables in a schema of their own (default `public`).

//!
//! `url.rs` reads the URL (and keeps passwords out of messages),
//! `schema.rs` holds the migrations, `rows.rs` the row encodings and shared
//! statements, `claim_tx.rs` the claim primitives.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, TimeoutType, Transaction};
use tokio_postgres::{IsolationLevel, NoTls};

use crate::error::{Error, Result};
use crate::trial::Trial;

use super::claim;
use super::common::{self, damaged, unsigned};
use super::lock::{self, Acquire};
use super::{
    ClaimPlan, ClaimRequest, ClaimState, Finished, NewTrial, Owner, SpecDocument, Storage, StoredSnapshot, StudyRecord,
    StudySummary, TrialPage,
};

/// A `timestamptz` column as the text SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ')` gives.
macro_rules! utc {
    ($col:literal) => {
        concat!("to_char(", $col, " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
    };
}

mod claim_tx;
mod rows;
mod schema;
mod url;

use claim_tx::PgClaim;
use rows::*;
pub use schema::SCHEMA_VERSION;
use schema::{MIGRATIONS, check_version, schema_key};
pub use url::DEFAULT_SCHEMA;
use url::{describe, describe_target, redact, split_schema};

/// Connections per handle: one per concurrent call, a few calls at once.
const POOL_SIZE: usize = 4;

/// Threads of the runtime that drives the connections.
const RUNTIME_THREADS: usize = 2;

/// How long a connection attempt may take (unless the URL says otherwise).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a call waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// Snapshots kept per study (as in SQLite).
pub(super) const SNAPSHOTS_KEPT: i64 = 3;

/// First key of the advisory lock taken while migrating ("knob").
const MIGRATION_LOCK: i32 = 0x6b6e_6f62;

pub(super) const TRIAL_COLUMNS: &str =
    "number, batch, ticket, x, config, state, fail_reason, metrics, elapsed_s, epoch, baseline, confirm";

/// A study's record by name (see `study_from_row`).
pub(super) const STUDY_BY_NAME: &str =
    concat!("SELECT name, spec, ", utc!("created_at"), ", closed_at IS NOT NULL FROM studies WHERE name = $1");

/// A study store in one PostgreSQL schema.
pub struct PostgresStorage {
    pool: Pool,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Where the data lives, for messages (never the password).
    target: String,
    schema: String,
}

impl fmt::Debug for PostgresStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStorage").field("target", &self.target).finish_non_exhaustive()
    }
}

/// Why a call failed before it is put into words: the database's own errors
/// are named after the target by [`PostgresStorage::wrap`].
pub(super) enum Fail {
    Db(tokio_postgres::Error),
    Pool(PoolError),
    Knobs(Error),
}

impl From<tokio_postgres::Error> for Fail {
    fn from(e: tokio_postgres::Error) -> Self {
        Fail::Db(e)
    }
}

impl From<PoolError> for Fail {
    fn from(e: PoolError) -> Self {
        Fail::Pool(e)
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

impl PostgresStorage {
    /// Connect to `postgres://user[:password]@host[:port]/db[?schema=NAME&…]`
    /// and bring the schema up to date (creating it when missing).
    pub fn open(url: &str) -> Result<Self> {
        let shown = redact(url);
        let (rest, schema) = split_schema(url).map_err(|why| Error::Config(format!("storage `{shown}`: {why}")))?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| Error::Config(format!("storage `{shown}`: not a PostgreSQL URL: {}", describe(&e))))?;
        let target = describe_target(&config, &schema);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("knobs");
        }
        // A startup option, not a `SET`: it is the session's default, so it
        // survives `RESET ALL` and `DISCARD ALL`.
        let search_path = format!("-csearch_path=\"{schema}\"");
        let options = match config.get_options().map(str::trim) {
            Some(o) if !o.is_empty() => format!("{o} {search_path}"),
            _ => search_path,
        };
        config.options(options);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("knobs-postgres")
            .enable_all()
            .build()
            .map_err(|e| Error::Storage(format!("{target}: cannot start the client runtime: {e}")))?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| Error::Storage(format!("{target}: cannot build the connection pool: {e}")))?;
        let storage = PostgresStorage { pool, runtime: Some(runtime), target, schema };
        storage.block(storage.migrate())?;
        Ok(storage)
    }

    /// The schema holding knobs' tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Where the data lives, as messages name it (user, hosts, database,
    /// schema; never the password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Run one call on this handle's runtime.
    fn block<T>(&self, fut: impl Future<Output = R<T>>) -> Result<T> {
        let Some(runtime) = &self.runtime else {
            return Err(Error::Storage(format!("{}: the storage is closed", self.target)));
        };
        runtime.block_on(fut).map_err(|f| self.wrap(f))
    }

    /// Name the database in its own errors.
    fn wrap(&self, f: Fail) -> Error {
        match f {
            Fail::Knobs(e) => e,
            Fail::Db(e) if transient(&e) => Error::Unavailable(format!("{}: {}", self.target, describe(&e))),
            Fail::Db(e) => Error::Storage(format!("{}: {}", self.target, describe(&e))),
            Fail::Pool(PoolError::Backend(e)) if transient(&e) => {
                Error::Unavailable(format!("{}: cannot connect: {}", self.target, describe(&e)))
            }
            Fail::Pool(PoolError::Backend(e)) => {
                Error::Storage(format!("{}: cannot connect: {}", self.target, describe(&e)))
            }
            Fail::Pool(PoolError::Timeout(TimeoutType::Wait)) => Error::Unavailable(format!(
                "{}: no pooled connection became free within {} s",
                self.target,
                WAIT_TIMEOUT.as_secs()
            )),
            Fail::Pool(PoolError::Timeout(_)) => Error::Unavailable(format!(
                "{}: cannot connect: no answer within {} s",
                self.target,
                CONNECT_TIMEOUT.as_secs()
            )),
            Fail::Pool(e) => Error::Storage(format!("{}: connection pool: {e}", self.target)),
        }
    }

    /// `{target} study `name``, the start of every message about a row.
    fn place(&self, study: &str) -> String {
        format!("{} study `{study}`", self.target)
    }

    /// One read-write transaction (READ COMMITTED; writers lock what they
    /// depend on), committed when `f` succeeds and rolled back otherwise.
    async fn write<T>(&self, f: impl AsyncFnOnce(&Transaction<'_>) -> R<T>) -> R<T> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let out = f(&tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// One read-only transaction with a consistent view across its queries.
    async fn read<T>(&self, f: impl AsyncFnOnce(&Transaction<'_>) -> R<T>) -> R<T> {
        let mut client = self.pool.get().await?;
        let tx =
            client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
        let out = f(&tx).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Create the schema if missing and apply the missing migrations, under
    /// an advisory lock so two processes opening at once do not both migrate.
    async fn migrate(&self) -> R<()> {
        let target = &self.target;
        let schema = &self.schema;
        self.write(async |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1::int4, $2::int4)", &[&MIGRATION_LOCK, &schema_key(schema)])
                .await?;
            // Checked first: `CREATE SCHEMA IF NOT EXISTS` needs the right to
            // create even when the schema exists.
            if tx.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[schema]).await?.is_none() {
                tx.batch_execute(&format!("CREATE SCHEMA \"{schema}\"")).await?;
            }
            let current: Option<String> = tx.query_one("SELECT current_schema()::text", &[]).await?.try_get(0)?;
            if current.as_deref() != Some(schema.as_str()) {
                return Err(Error::Storage(format!(
                    "{target}: the connection's search_path does not start with schema `{schema}` (current \
                     schema: {}); a connection pooler that drops startup options cannot be used",
                    current.as_deref().unwrap_or("none")
                ))
                .into());
            }
            let tables: Vec<String> = tx
                .query("SELECT tablename::text FROM pg_tables WHERE schemaname = $1", &[schema])
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
            if !tables.iter().any(|t| t == "knobs_schema") {
                let ours = ["studies", "trials", "snapshots", "study_locks"];
                let clash: Vec<&str> = tables.iter().map(String::as_str).filter(|t| ours.contains(t)).collect();
                if !clash.is_empty() {
                    return Err(Error::Storage(format!(
                        "{target}: not a knobs schema (it holds tables {} but no `knobs_schema`); choose another \
                         schema with `?schema=NAME`",
                        clash.join(", ")
                    ))
                    .into());
                }
                tx.batch_execute(
                    "CREATE TABLE knobs_schema (version INTEGER NOT NULL);
                     INSERT INTO knobs_schema (version) VALUES (0);",
                )
                .await?;
            }
            let rows = tx.query("SELECT version FROM knobs_schema", &[]).await?;
            let version: i32 = match rows.as_slice() {
                [row] => col(row, 0, target, "knobs_schema.version")?,
                _ => {
                    return Err(
                        damaged(target, "table `knobs_schema`", format_args!("{} rows, not 1", rows.len())).into()
                    );
                }
            };
            check_version(version, target)?;
            for (v, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
                tx.batch_execute(sql).await?;
                tx.execute("UPDATE knobs_schema SET version = $1", &[&(v as i32 + 1)]).await?;
            }
            Ok(())
        })
        .await
    }
}

impl Drop for PostgresStorage {
    fn drop(&mut self) {
        self.pool.close();
        // Never blocks, so a handle may also be dropped inside async code.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Storage for PostgresStorage {
    fn open_study(&self, name: &str, spec: &SpecDocument) -> Result<StudyRecord> {
        common::check_study_name(name)?;
        let spec = spec.to_json();
        let place = self.place(name);
        self.block(self.write(async |tx| {
            exec(
                tx,
                "INSERT INTO studies (name, spec, created_at) VALUES ($1, $2, clock_timestamp())
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &spec],
            )
            .await?;
            let row = q_one(tx, STUDY_BY_NAME, &[&name]).await?;
            Ok(study_from_row(&row, &place)?)
        }))
    }

    fn find_study(&self, name: &str) -> Result<Option<StudyRecord>> {
        let place = self.place(name);
        self.block(self.read(async |tx| {
            let row = q_opt(tx, STUDY_BY_NAME, &[&name]).await?;
            Ok(row.map(|row| study_from_row(&row, &place)).transpose()?)
        }))
    }

    fn list_studies(&self) -> Result<Vec<StudySummary>> {
        let at = format!("{} studies", self.target);
        self.block(self.read(async |tx| {
            let rows = q(
                tx,
                concat!(
                    "SELECT s.name, ",
                    utc!("s.created_at"),
                    ", count(t.id),
                                count(t.id) FILTER (WHERE t.state = 'complete'),
                                count(t.id) FILTER (WHERE t.state = 'failed'),
                                count(t.id) FILTER (WHERE t.state = 'running')
                         FROM studies s LEFT JOIN trials t ON t.study_id = s.id
                         GROUP BY s.id ORDER BY s.id"
                ),
                &[],
            )
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let count = |i: usize, what: &str| -> Result<u64> { unsigned(col(row, i, &at, what)?, &at, what) };
                out.push(StudySummary {
                    name: col(row, 0, &at, "name")?,
                    created_at: col(row, 1, &at, "created_at")?,
                    trials: count(2, "trials")?,
                    complete: count(3, "complete")?,
                    failed: count(4, "failed")?,
                    running: count(5, "running")?,
                });
            }
            Ok(out)
        }))
    }

    fn acquire(&self, study: &str, owner: &Owner) -> Result<()> {
        let owner_json = serde_json::to_string(owner).map_err(Error::json)?;
        let place = self.place(study);
        self.block(self.write(async |tx| {
            // The study row serializes acquirers: two cannot both see no holder.
            let sid = study_id(tx, study, true).await?;
            let shared: bool =
                q_one(tx, "SELECT shared_at IS NOT NULL FROM studies WHERE id = $1", &[&sid]).await?.try_get(0)?;
            if shared {
                return Err(common::shared_study(study).into());
            }
            match lock::acquire(run_lock(tx, sid, &place).await?, owner) {
                Acquire::Refuse(held) => Err(common::locked(study, &held.owner, &held.acquired_at).into()),
                Acquire::Refresh => {
                    exec(tx, "UPDATE study_locks SET heartbeat_at = clock_timestamp() WHERE study_id = $1", &[&sid])
                        .await?;
                    Ok(())
                }
                Acquire::Take => {
                    exec(
                        tx,
                        "INSERT INTO study_locks (study_id, owner_id, owner, acquired_at, heartbeat_at)
                         VALUES ($1, $2, $3, clock_timestamp(), clock_timestamp())
                         ON CONFLICT (study_id) DO UPDATE SET owner_id = excluded.owner_id, owner = excluded.owner,
                             acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at",
                        &[&sid, &owner.id, &owner_json],
                    )
                    .await?;
                    Ok(())
                }
            }
        }))
    }

    fn release(&self, study: &str, owner: &Owner) -> Result<()> {
        self.block(self.write(async |tx| {
            exec(
                tx,
                "DELETE FROM study_locks WHERE owner_id = $2 AND study_id = (SELECT id FROM studies WHERE name = $1)",
                &[&study, &owner.id],
            )
            .await?;
            Ok(())
        }))
    }

    fn start_trials(
        &self,
        study: &str,
        trials: &[NewTrial],
        worker: &str,
        snapshot: Option<&StoredSnapshot>,
    ) -> Result<Vec<Trial>> {
        common::check_new_trials(study, trials)?;
        let place = self.place(study);
        self.block(self.write(async |tx| {
            let sid = study_id(tx, study, true).await?;
            let first = next_number(tx, sid, &place).await?;
            let out = insert_trials(tx, sid, first, trials, worker).await?;
            if let Some(snap) = snapshot {
                store_snapshot(tx, sid, snap).await?;
            }
            Ok(out)
        }))
    }

    fn finish_trial(&self, study: &str, finished: &Finished, snapshot: Option<&StoredSnapshot>) -> Result<()> {
        let elapsed_s = common::check_finished(study, finished)?;
        let metrics = common::encode_metrics(&finished.metrics);
        let place = self.place(study);
        let number = finished.number;
        self.block(self.write(async |tx| {
            // With a snapshot, hold the study row so snapshots are stored in
            // the order their transactions commit (study row before trial
            // row, as in `claim`).
            let sid = study_id(tx, study, snapshot.is_some()).await?;
            let id = leased(tx, sid, &place, study, number, finished.epoch).await?;
            let changed = exec(
                tx,
                "UPDATE trials SET state = $2, fail_reason = $3, metrics = $4, elapsed_s = $5,
                            heartbeat_at = clock_timestamp(), finished_at = clock_timestamp()
                     WHERE id = $1 AND state = 'running' AND epoch = $6",
                &[
                    &id,
                    &finished.state.label(),
                    &common::fail_reason(&finished.state),
                    &metrics,
                    &elapsed_s,
                    &to_i64(finished.epoch),
                ],
            )
            .await?;
            if changed != 1 {
                return Err(Error::Storage(format!(
                    "{place} trial {number}: changed while its row was locked; not finished"
                ))
                .into());
            }
            if let Some(snap) = snapshot {
                store_snapshot(tx, sid, snap).await?;
            }
            Ok(())
        }))
    }

    fn reclaim_running(&self, study: &str, worker: &str) -> Result<Vec<Trial>> {
        let place = self.place(study);
        self.block(self.write(async |tx| {
            let sid = study_id(tx, study, true).await?;
            exec(
                tx,
                "UPDATE trials SET epoch = epoch + 1, worker = $2, heartbeat_at = clock_timestamp()
                 WHERE study_id = $1 AND state = 'running'",
                &[&sid, &worker],
            )
            .await?;
            query_trials(
                tx,
                &place,
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = $1 AND state = 'running' ORDER BY number"
                ),
                &[&sid],
            )
            .await
        }))
    }

    fn trials(&self, study: &str) -> Result<Vec<Trial>> {
        let place = self.place(study);
        self.block(self.read(async |tx| {
            let sid = study_id(tx, study, false).await?;
            query_trials(
                tx,
                &place,
                &format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = $1 ORDER BY number"),
                &[&sid],
            )
            .await
        }))
    }

    fn latest_snapshot(&self, study: &str) -> Result<Option<StoredSnapshot>> {
        let place = self.place(study);
        self.block(self.read(async |tx| {
            let sid = study_id(tx, study, false).await?;
            load_snapshot(tx, sid, &place).await
        }))
    }

    fn claim_keyed(
        &self,
        study: &str,
        req: &ClaimRequest,
        key: Option<&str>,
        plan: &mut dyn FnMut(&ClaimState) -> Result<ClaimPlan>,
    ) -> Result<Vec<Trial>> {
        let place = self.place(study);
        self.block(self.write(async |tx| {
            let mut claim = PgClaim { tx, place: &place, study, sid: None };
            Ok(claim::claim(&mut claim, study, req, key, plan).await?)
        }))
    }

    fn enqueue(&self, study: &str, x: &[f64], config: &crate::space::Config) -> Result<u64> {
        common::check_enqueued(study, config)?;
        let (x, config) = (common::encode_floats(x), serde_json::to_string(config).map_err(Error::json)?);
        self.block(self.write(async |tx| {
            let sid = study_id(tx, study, true).await?;
            let closed: bool =
                q_one(tx, "SELECT closed_at IS NOT NULL FROM studies WHERE id = $1", &[&sid]).await?.try_get(0)?;
            if closed {
                return Err(common::closed(study).into());
            }
            exec(
                tx,
                "INSERT INTO queued (study_id, x, config, created_at) VALUES ($1, $2, $3, clock_timestamp())",
                &[&sid, &x, &config],
            )
            .await?;
            let n: i64 = q_one(tx, "SELECT count(*) FROM queued WHERE study_id = $1", &[&sid]).await?.try_get(0)?;
            Ok(n.unsigned_abs())
        }))
    }

    fn queued(&self, study: &str) -> Result<u64> {
        self.block(self.read(async |tx| {
            let sid = study_id(tx, study, false).await?;
            let n: i64 = q_one(tx, "SELECT count(*) FROM queued WHERE study_id = $1", &[&sid]).await?.try_get(0)?;
            Ok(n.unsigned_abs())
        }))
    }

    fn close_study(&self, study: &str) -> Result<()> {
        self.block(self.write(async |tx| {
            let sid = study_id(tx, study, true).await?;
            exec(tx, "UPDATE studies SET closed_at = coalesce(closed_at, clock_timestamp()) WHERE id = $1", &[&sid])
                .await?;
            Ok(())
        }))
    }

    fn trials_page(&self, study: &str, page: &TrialPage) -> Result<Vec<Trial>> {
        let after = page.after.map_or(-1, to_i64);
        let limit = page.capped_limit() as i64;
        let state = page.state.map(|s| s.label());
        let place = self.place(study);
        self.block(self.read(async |tx| {
            let sid = study_id(tx, study, false).await?;
            query_trials(
                tx,
                &place,
                &format!(
                    "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = $1 AND number > $2
                       AND ($3::text IS NULL OR state = $3) ORDER BY number LIMIT $4"
                ),
                &[&sid, &after, &state, &limit],
            )
            .await
        }))
    }

    fn heartbeat(&self, study: &str, number: u64, epoch: u64) -> Result<()> {
        let place = self.place(study);
        self.block(self.write(async |tx| {
            let sid = study_id(tx, study, false).await?;
            let id = leased(tx, sid, &place, study, number, epoch).await?;
            exec(tx, "UPDATE trials SET heartbeat_at = clock_timestamp() WHERE id = $1", &[&id]).await?;
            Ok(())
        }))
    }
}

/// Failures that may pass: the connection (class 08), a serialization
/// failure or deadlock (40001, 40P01), the server shutting down or out of
/// resources (57P, 53).
fn transient(e: &tokio_postgres::Error) -> bool {
    match e.code() {
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c == "40001" || c == "40P01" || c.starts_with("57P") || c.starts_with("53")
        }
        // No SQLSTATE: the connection itself failed.
        None => e.is_closed() || e.as_db_error().is_none(),
    }
}
