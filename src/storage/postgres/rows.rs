//! Rows of the PostgreSQL schema: statements through the connection's
//! statement cache, the decoding of trial, study and snapshot rows (naming
//! the row and column when the database holds garbage), and the statements
//! several calls share.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tokio_postgres::types::FromSql;

use super::super::common::{self, damaged, decoded, unsigned};
use super::super::lock::RunLock;
use super::super::{ClaimState, NewTrial, Owner, Queued, SnapshotPoint, StoredSnapshot, StudyRecord};
use super::url::describe;
use super::{R, SNAPSHOTS_KEPT};
use crate::error::Result;
use crate::optim::Snapshot;
use crate::trial::Trial;

pub(super) fn to_i64(v: u64) -> i64 {
    // Callers checked the range (common::check_new_trials).
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn point_label(p: SnapshotPoint) -> &'static str {
    match p {
        SnapshotPoint::Asked => "asked",
        SnapshotPoint::Told => "told",
    }
}

/// Read one column, naming the row and column when the database holds garbage.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, idx: usize, where_: &str, name: &str) -> Result<T> {
    row.try_get(idx).map_err(|e| damaged(where_, format_args!("column `{name}`"), describe(&e)))
}

/// A `trials` row (selected with [`TRIAL_COLUMNS`]) back into a [`Trial`].
pub(super) fn trial_from_row(row: &Row, place: &str) -> Result<Trial> {
    let number: i64 = col(row, 0, place, "number")?;
    let at = format!("{place} trial {number}");
    let at = at.as_str();
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
        baseline: col(row, 10, at, "baseline")?,
        confirm: col(row, 11, at, "confirm")?,
    }
    .decode(at)
}

pub(super) fn study_from_row(row: &Row, place: &str) -> Result<StudyRecord> {
    let spec: String = col(row, 1, place, "spec")?;
    Ok(StudyRecord {
        name: col(row, 0, place, "name")?,
        spec: decoded(serde_json::from_str(&spec), place, "spec")?,
        created_at: col(row, 2, place, "created_at")?,
        closed: col(row, 3, place, "closed")?,
    })
}

/// Statement parameters as tokio-postgres takes them.
pub(super) type Args<'a> = &'a [&'a (dyn tokio_postgres::types::ToSql + Sync)];

// Every statement goes through the connection's statement cache: a statement
// sent as text costs two round trips (parse, then execute), a cached one
// costs one, and a claim runs a dozen of them while holding the study's lock.
pub(super) async fn q(tx: &Transaction<'_>, sql: &str, args: Args<'_>) -> R<Vec<Row>> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query(&st, args).await?)
}

pub(super) async fn q_opt(tx: &Transaction<'_>, sql: &str, args: Args<'_>) -> R<Option<Row>> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query_opt(&st, args).await?)
}

pub(super) async fn q_one(tx: &Transaction<'_>, sql: &str, args: Args<'_>) -> R<Row> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.query_one(&st, args).await?)
}

pub(super) async fn exec(tx: &Transaction<'_>, sql: &str, args: Args<'_>) -> R<u64> {
    let st = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&st, args).await?)
}

/// The oldest queued configurations of the study (at most [`ClaimState::QUEUED_READ`]).
pub(super) async fn load_queued(tx: &Transaction<'_>, sid: i64, place: &str) -> R<Vec<Queued>> {
    let rows = q(
        tx,
        "SELECT id, x, config FROM queued WHERE study_id = $1 ORDER BY id LIMIT $2",
        &[&sid, &(ClaimState::QUEUED_READ as i64)],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: i64 = col(r, 0, place, "queued.id")?;
        let at = format!("{place} queued configuration {id}");
        let x: String = col(r, 1, &at, "x")?;
        let config: String = col(r, 2, &at, "config")?;
        out.push(Queued {
            id: unsigned(id, &at, "id")?,
            x: decoded(common::decode_floats(&x), &at, "x")?,
            config: decoded(serde_json::from_str(&config), &at, "config")?,
        });
    }
    Ok(out)
}

/// The study's id, optionally holding its row `FOR UPDATE` (the study's write
/// lock) until the transaction ends.
pub(super) async fn study_id(tx: &Transaction<'_>, study: &str, lock: bool) -> R<i64> {
    let sql = if lock {
        "SELECT id FROM studies WHERE name = $1 FOR UPDATE"
    } else {
        "SELECT id FROM studies WHERE name = $1"
    };
    match q_opt(tx, sql, &[&study]).await? {
        Some(row) => Ok(row.try_get(0)?),
        None => Err(common::no_study(study).into()),
    }
}

pub(super) async fn query_trials(
    tx: &Transaction<'_>,
    place: &str,
    sql: &str,
    args: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> R<Vec<Trial>> {
    let rows = q(tx, sql, args).await?;
    Ok(rows.iter().map(|row| trial_from_row(row, place)).collect::<Result<_>>()?)
}

/// The number the study's next trial gets (the caller holds the study row).
pub(super) async fn next_number(tx: &Transaction<'_>, sid: i64, place: &str) -> R<u64> {
    let next: i64 =
        q_one(tx, "SELECT coalesce(max(number) + 1, 0) FROM trials WHERE study_id = $1", &[&sid]).await?.try_get(0)?;
    Ok(unsigned(next, place, "number")?)
}

/// Insert new trials as `Running` for `worker`, numbered from `first` (the
/// study's next number; the caller holds the study row), in one statement.
pub(super) async fn insert_trials(
    tx: &Transaction<'_>,
    sid: i64,
    first: u64,
    trials: &[NewTrial],
    worker: &str,
) -> R<Vec<Trial>> {
    if trials.is_empty() {
        return Ok(Vec::new());
    }
    let out: Vec<Trial> = trials.iter().zip(first..).map(|(t, number)| t.started(number)).collect();
    let numbers: Vec<i64> = out.iter().map(|t| to_i64(t.number)).collect();
    let batches: Vec<i64> = trials.iter().map(|t| to_i64(t.batch)).collect();
    let tickets: Vec<Option<i64>> = trials.iter().map(|t| t.ticket.map(to_i64)).collect();
    let xs: Vec<String> = trials.iter().map(|t| common::encode_floats(&t.x)).collect();
    let configs: Vec<String> = trials.iter().map(|t| serde_json::to_string(&t.config)).collect::<Result<_, _>>()?;
    let baselines: Vec<bool> = trials.iter().map(|t| t.baseline).collect();
    let confirms: Vec<bool> = trials.iter().map(|t| t.confirm).collect();
    exec(
        tx,
        "INSERT INTO trials (study_id, number, batch, ticket, x, config, state, metrics, worker, epoch,
                             heartbeat_at, started_at, baseline, confirm)
         SELECT $1, u.number, u.batch, u.ticket, u.x, u.config, 'running', '{}', $2, 0,
                clock_timestamp(), clock_timestamp(), u.baseline, u.confirm
         FROM unnest($3::bigint[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::boolean[],
                     $9::boolean[])
              AS u(number, batch, ticket, x, config, baseline, confirm)",
        &[&sid, &worker, &numbers, &batches, &tickets, &xs, &configs, &baselines, &confirms],
    )
    .await?;
    Ok(out)
}

pub(super) async fn store_snapshot(tx: &Transaction<'_>, sid: i64, snap: &StoredSnapshot) -> R<()> {
    let json = serde_json::to_string(&snap.snapshot)?;
    exec(
        tx,
        "INSERT INTO snapshots (study_id, batch, point, snapshot, created_at)
         VALUES ($1, $2, $3, $4, clock_timestamp())",
        &[&sid, &to_i64(snap.batch), &point_label(snap.point), &json],
    )
    .await?;
    exec(
        tx,
        "DELETE FROM snapshots WHERE study_id = $1 AND id NOT IN
           (SELECT id FROM snapshots WHERE study_id = $1 ORDER BY id DESC LIMIT $2)",
        &[&sid, &SNAPSHOTS_KEPT],
    )
    .await?;
    Ok(())
}

pub(super) async fn load_snapshot(tx: &Transaction<'_>, sid: i64, place: &str) -> R<Option<StoredSnapshot>> {
    let row =
        q_opt(tx, "SELECT batch, point, snapshot FROM snapshots WHERE study_id = $1 ORDER BY id DESC LIMIT 1", &[&sid])
            .await?;
    let Some(row) = row else { return Ok(None) };
    let at = format!("{place} snapshot");
    let at = at.as_str();
    let point: String = col(&row, 1, at, "point")?;
    let point = match point.as_str() {
        "asked" => SnapshotPoint::Asked,
        "told" => SnapshotPoint::Told,
        other => return Err(damaged(at, "column `point`", format_args!("unknown point `{other}`")).into()),
    };
    let json: String = col(&row, 2, at, "snapshot")?;
    Ok(Some(StoredSnapshot {
        batch: unsigned(col(&row, 0, at, "batch")?, at, "batch")?,
        point,
        snapshot: decoded(serde_json::from_str::<Snapshot>(&json), at, "snapshot")?,
    }))
}

/// The running trial `number` leased at `epoch`, its row held `FOR UPDATE`;
/// the contract's refusals otherwise. Returns the row id.
pub(super) async fn leased(
    tx: &Transaction<'_>,
    sid: i64,
    place: &str,
    study: &str,
    number: u64,
    epoch: u64,
) -> R<i64> {
    let Ok(num) = i64::try_from(number) else { return Err(common::no_trial(study, number).into()) };
    let at = format!("{place} trial {number}");
    let at = at.as_str();
    let row = q_opt(
        tx,
        "SELECT id, state, fail_reason, epoch, worker FROM trials WHERE study_id = $1 AND number = $2 FOR UPDATE",
        &[&sid, &num],
    )
    .await?;
    let Some(row) = row else { return Err(common::no_trial(study, number).into()) };
    let state: String = col(&row, 1, at, "state")?;
    let state = decoded(common::decode_state(&state, col(&row, 2, at, "fail_reason")?), at, "state")?;
    if state.is_finished() {
        return Err(common::already_finished(study, number, &state).into());
    }
    let current = unsigned(col(&row, 3, at, "epoch")?, at, "epoch")?;
    if current != epoch {
        let worker: String = col(&row, 4, at, "worker")?;
        return Err(common::stale_epoch(study, number, epoch, current, &worker).into());
    }
    Ok(col(&row, 0, at, "id")?)
}

/// The study's run lock, with its heartbeat's age by the database's clock.
pub(super) async fn run_lock(tx: &Transaction<'_>, sid: i64, place: &str) -> R<Option<RunLock>> {
    let row = q_opt(
        tx,
        concat!(
            "SELECT owner, ",
            utc!("acquired_at"),
            ", extract(epoch FROM clock_timestamp() - heartbeat_at)::float8 FROM study_locks WHERE study_id = $1"
        ),
        &[&sid],
    )
    .await?;
    let Some(row) = row else { return Ok(None) };
    let owner: String = col(&row, 0, place, "study_locks.owner")?;
    let owner: Owner = serde_json::from_str(&owner).map_err(|e| damaged(place, "the lock row", e))?;
    Ok(Some(RunLock {
        owner,
        acquired_at: col(&row, 1, place, "study_locks.acquired_at")?,
        heartbeat_age_s: col(&row, 2, place, "study_locks.heartbeat_at")?,
    }))
}
