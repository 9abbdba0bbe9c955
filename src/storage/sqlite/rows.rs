//! Rows of the SQLite file: statements through the connection's cache, the
//! decoding of trial, study and snapshot rows (naming the row and column
//! when the file holds garbage), and the statements several calls share.

use std::path::Path;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::super::common::{self, damaged, decoded, unsigned};
use super::super::lock::RunLock;
use super::super::{NewTrial, Owner, SnapshotPoint, StoredSnapshot, StudyRecord};
use super::{NOW, R, SNAPSHOTS_KEPT};
use crate::error::Result;
use crate::optim::Snapshot;
use crate::trial::Trial;

/// A claim's stale leases: running trials whose heartbeat is older than `?2`.
pub(super) const STALE_SQL: &str = "SELECT number, retries FROM trials WHERE study_id = ?1 AND state = 'running'
    AND heartbeat_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2) ORDER BY number";

/// A claim's finished trials not yet told to the shared optimizer.
pub(super) fn untold_sql() -> String {
    format!(
        "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1 AND told = 0 AND state != 'running' ORDER BY number"
    )
}

pub(super) const TRIAL_COLUMNS: &str =
    "number, batch, ticket, x, config, state, fail_reason, metrics, elapsed_s, epoch, baseline, confirm";

/// Run a statement through the connection's statement cache: a claim runs a
/// dozen statements, and parsing them afresh each time was a measurable share
/// of its cost.
pub(super) fn exec(tx: &Transaction<'_>, sql: &str, args: impl rusqlite::Params) -> rusqlite::Result<usize> {
    tx.prepare_cached(sql)?.execute(args)
}

/// One row through the statement cache (see [`exec`]).
pub(super) fn row<T>(
    tx: &Transaction<'_>,
    sql: &str,
    args: impl rusqlite::Params,
    f: impl FnOnce(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    tx.prepare_cached(sql)?.query_row(args, f)
}

pub(super) fn study_id(tx: &Transaction<'_>, study: &str) -> R<i64> {
    row(tx, "SELECT id FROM studies WHERE name = ?1", [study], |r| r.get(0))
        .optional()?
        .ok_or_else(|| common::no_study(study).into())
}

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

pub(super) fn store_snapshot(tx: &Transaction<'_>, study_id: i64, snap: &StoredSnapshot) -> R<()> {
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
pub(super) fn col<T: rusqlite::types::FromSql>(row: &Row<'_>, idx: usize, where_: &str, name: &str) -> Result<T> {
    row.get(idx).map_err(|e| damaged(where_, format_args!("column `{name}`"), e))
}

/// A `trials` row (selected with [`TRIAL_COLUMNS`]) back into a [`Trial`].
pub(super) fn trial_from_row(row: &Row<'_>, path: &Path, study: &str) -> Result<Trial> {
    let place = format!("{} study `{study}`", path.display());
    let number: i64 = col(row, 0, &place, "number")?;
    let at = format!("{place} trial {number}");
    let at = at.as_str();
    let flag = |idx: usize, name: &str| match col::<i64>(row, idx, at, name)? {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(damaged(at, format_args!("column `{name}`"), format_args!("{other} is not 0 or 1"))),
    };
    let (baseline, confirm) = (flag(10, "baseline")?, flag(11, "confirm")?);
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
        confirm,
    }
    .decode(at)
}

pub(super) fn study_from_row(row: &Row<'_>, path: &Path, name: &str) -> Result<StudyRecord> {
    let at = format!("{} study `{name}`", path.display());
    let spec: String = col(row, 1, &at, "spec")?;
    Ok(StudyRecord {
        name: col(row, 0, &at, "name")?,
        spec: decoded(serde_json::from_str(&spec), &at, "spec")?,
        created_at: col(row, 2, &at, "created_at")?,
        closed: col::<Option<String>>(row, 3, &at, "closed_at")?.is_some(),
    })
}

pub(super) fn query_trials(
    tx: &Transaction<'_>,
    path: &Path,
    study: &str,
    sql: &str,
    args: impl rusqlite::Params,
) -> R<Vec<Trial>> {
    let mut stmt = tx.prepare_cached(sql)?;
    let mut rows = stmt.query(args)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(trial_from_row(row, path, study)?);
    }
    Ok(out)
}

/// The number the study's next trial gets (inside a write transaction).
pub(super) fn next_number(tx: &Transaction<'_>, path: &Path, study: &str, sid: i64) -> R<u64> {
    let next: i64 =
        row(tx, "SELECT coalesce(max(number) + 1, 0) FROM trials WHERE study_id = ?1", [sid], |r| r.get(0))?;
    Ok(unsigned(next, &format!("{} study `{study}`", path.display()), "number")?)
}

/// Insert `trials` as running for `worker`, numbered from `first` (the study's next number).
pub(super) fn insert_trials(
    tx: &Transaction<'_>,
    sid: i64,
    first: u64,
    trials: &[NewTrial],
    encoded: &[(String, String)],
    worker: &str,
) -> R<Vec<Trial>> {
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO trials (study_id, number, batch, ticket, x, config, state, metrics, worker, epoch,
                             heartbeat_at, started_at, baseline, confirm)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running', '{{}}', ?7, 0, {NOW}, {NOW}, ?8, ?9)"
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
            t.baseline,
            t.confirm
        ])?;
        out.push(t.started(number));
    }
    Ok(out)
}

/// The row id and epoch of a running trial leased at `epoch`; the contract's
/// refusals otherwise (unknown trial, already finished, stale epoch).
pub(super) fn leased(
    tx: &Transaction<'_>,
    path: &Path,
    study: &str,
    sid: i64,
    number: u64,
    epoch: u64,
) -> R<(i64, u64)> {
    let Ok(num) = i64::try_from(number) else { return Err(common::no_trial(study, number).into()) };
    let at = format!("{} study `{study}` trial {number}", path.display());
    let row: Option<(i64, String, Option<String>, i64, String)> = tx
        .query_row(
            "SELECT id, state, fail_reason, epoch, worker FROM trials WHERE study_id = ?1 AND number = ?2",
            params![sid, num],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .optional()
        .map_err(|e| damaged(&at, "the row", e))?;
    let Some((id, state, reason, current, worker)) = row else { return Err(common::no_trial(study, number).into()) };
    let state = decoded(common::decode_state(&state, reason), &at, "state")?;
    if state.is_finished() {
        return Err(common::already_finished(study, number, &state).into());
    }
    let current = unsigned(current, &at, "epoch")?;
    if current != epoch {
        return Err(common::stale_epoch(study, number, epoch, current, &worker).into());
    }
    Ok((id, current))
}

pub(super) fn read_snapshot(tx: &Transaction<'_>, path: &Path, study: &str, sid: i64) -> R<Option<StoredSnapshot>> {
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
        other => return Err(damaged(&at, "column `point`", format_args!("unknown point `{other}`")).into()),
    };
    Ok(Some(StoredSnapshot {
        batch: unsigned(batch, &at, "batch")?,
        point,
        snapshot: decoded(serde_json::from_str::<Snapshot>(&json), &at, "snapshot")?,
    }))
}

pub(super) fn encode_new(trials: &[NewTrial]) -> Result<Vec<(String, String)>> {
    trials
        .iter()
        .map(|t| {
            Ok((common::encode_floats(&t.x), serde_json::to_string(&t.config).map_err(crate::error::Error::json)?))
        })
        .collect()
}

/// The study's run lock, with its heartbeat's age by the file's clock.
pub(super) fn run_lock(tx: &Transaction<'_>, path: &Path, study: &str, sid: i64) -> R<Option<RunLock>> {
    let at = format!("{} study `{study}`", path.display());
    let held: Option<(String, String, f64)> = tx
        .query_row(
            "SELECT owner, acquired_at, (julianday('now') - julianday(heartbeat_at)) * 86400.0
               FROM study_locks WHERE study_id = ?1",
            [sid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(|e| damaged(&at, "the lock row", e))?;
    let Some((owner, acquired_at, heartbeat_age_s)) = held else { return Ok(None) };
    let owner: Owner = serde_json::from_str(&owner).map_err(|e| damaged(&at, "the lock row", e))?;
    Ok(Some(RunLock { owner, acquired_at, heartbeat_age_s }))
}
