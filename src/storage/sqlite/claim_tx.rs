//! The claim primitives ([`ClaimTx`]) on a SQLite `BEGIN IMMEDIATE`
//! transaction, which already holds the file's write lock.

use std::path::Path;

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::claim::{ClaimTx, Hold, Read};
use super::super::common::{self, decoded, unsigned};
use super::super::{ClaimState, NewTrial, Queued, StoredSnapshot};
use super::rows::*;
use super::{Fail, NOW};
use crate::error::{Error, Result};
use crate::trial::Trial;

pub(super) struct SqliteClaim<'a, 't> {
    pub tx: &'a Transaction<'t>,
    pub path: &'a Path,
    pub study: &'a str,
    pub sid: i64,
}

/// Put a backend failure into words (the file's name is added by the caller's `write`).
fn db(f: impl Into<Fail>) -> Error {
    match f.into() {
        Fail::Knobs(e) => e,
        Fail::Db(e) => Error::Storage(e.to_string()),
    }
}

impl SqliteClaim<'_, '_> {
    fn place(&self) -> String {
        format!("{} study `{}`", self.path.display(), self.study)
    }

    fn trials_where(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Trial>> {
        query_trials(self.tx, self.path, self.study, sql, args).map_err(db)
    }
}

impl ClaimTx for SqliteClaim<'_, '_> {
    async fn hold(&mut self) -> Result<Hold> {
        let shared = row(self.tx, "SELECT shared_at IS NOT NULL FROM studies WHERE id = ?1", [self.sid], |r| r.get(0))
            .map_err(db)?;
        Ok(Hold { shared, run_lock: run_lock(self.tx, self.path, self.study, self.sid).map_err(db)? })
    }

    async fn find_key(&mut self, key: &str, days: u32) -> Result<Option<String>> {
        exec(
            self.tx,
            "DELETE FROM claim_keys WHERE study_id = ?1
               AND created_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2)",
            params![self.sid, format!("-{days} days")],
        )
        .map_err(db)?;
        row(self.tx, "SELECT trials FROM claim_keys WHERE study_id = ?1 AND key = ?2", params![self.sid, key], |r| {
            r.get(0)
        })
        .optional()
        .map_err(db)
    }

    async fn trials(&mut self, numbers: &[u64]) -> Result<Vec<Trial>> {
        let numbers = serde_json::to_string(numbers).map_err(Error::json)?;
        self.trials_where(
            &format!(
                "SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = ?1
                   AND number IN (SELECT value FROM json_each(?2)) ORDER BY number"
            ),
            params![self.sid, numbers],
        )
    }

    async fn mark_shared(&mut self) -> Result<()> {
        exec(self.tx, &format!("UPDATE studies SET shared_at = {NOW} WHERE id = ?1"), [self.sid]).map_err(db)?;
        Ok(())
    }

    async fn stale(&mut self, grace_s: f64) -> Result<Vec<(u64, u64)>> {
        let cutoff = format!("-{grace_s:.3} seconds");
        let rows: Vec<(i64, i64)> = {
            let mut stmt = self.tx.prepare_cached(STALE_SQL).map_err(db)?;
            stmt.query_map(params![self.sid, cutoff], |r| Ok((r.get(0)?, r.get(1)?)))
                .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
                .map_err(db)?
        };
        let at = self.place();
        rows.into_iter()
            .map(|(number, retries)| Ok((unsigned(number, &at, "number")?, unsigned(retries, &at, "retries")?)))
            .collect()
    }

    async fn re_lease(&mut self, numbers: &[u64], worker: &str) -> Result<Vec<Trial>> {
        for &n in numbers {
            exec(
                self.tx,
                &format!(
                    "UPDATE trials SET epoch = epoch + 1, retries = retries + 1, worker = ?3, heartbeat_at = {NOW}
                     WHERE study_id = ?1 AND number = ?2"
                ),
                params![self.sid, to_i64(n), worker],
            )
            .map_err(db)?;
        }
        self.trials(numbers).await
    }

    async fn fail(&mut self, number: u64, reason: &str) -> Result<()> {
        exec(
            self.tx,
            &format!(
                "UPDATE trials SET state = 'failed', fail_reason = ?3, heartbeat_at = {NOW}, finished_at = {NOW}
                 WHERE study_id = ?1 AND number = ?2"
            ),
            params![self.sid, to_i64(number), reason],
        )
        .map_err(db)?;
        Ok(())
    }

    async fn read(&mut self) -> Result<Read> {
        let at = self.place();
        let untold = self.trials_where(&untold_sql(), [self.sid])?;
        let (total, running, last_batch, closed): (i64, i64, i64, bool) = row(
            self.tx,
            // Index lookups, not scans, so a claim costs the same in a study of 100,000 trials:
            // numbers are consecutive from 0 and batches never decrease with numbers.
            "SELECT coalesce((SELECT number + 1 FROM trials WHERE study_id = ?1 ORDER BY number DESC LIMIT 1), 0),
                    (SELECT count(*) FROM trials WHERE study_id = ?1 AND state = 'running'),
                    coalesce((SELECT batch FROM trials WHERE study_id = ?1 ORDER BY number DESC LIMIT 1), 0),
                    (SELECT closed_at IS NOT NULL FROM studies WHERE id = ?1)",
            [self.sid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .map_err(db)?;
        Ok(Read {
            snapshot: read_snapshot(self.tx, self.path, self.study, self.sid).map_err(db)?,
            untold,
            total: unsigned(total, &at, "count")?,
            running: unsigned(running, &at, "count")?,
            last_batch: unsigned(last_batch, &at, "batch")?,
            closed,
            queued: self.queued(&at).map_err(db)?,
        })
    }

    async fn dequeue(&mut self, ids: &[u64]) -> Result<()> {
        for &id in ids {
            exec(self.tx, "DELETE FROM queued WHERE id = ?1 AND study_id = ?2", params![to_i64(id), self.sid])
                .map_err(db)?;
        }
        Ok(())
    }

    async fn mark_told(&mut self, numbers: &[u64]) -> Result<Vec<u64>> {
        let mut found = Vec::with_capacity(numbers.len());
        for &n in numbers {
            let Ok(num) = i64::try_from(n) else { continue };
            let exists: Option<i64> =
                row(self.tx, "SELECT 1 FROM trials WHERE study_id = ?1 AND number = ?2", params![self.sid, num], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(db)?;
            if exists.is_some() {
                exec(
                    self.tx,
                    "UPDATE trials SET told = 1 WHERE study_id = ?1 AND number = ?2 AND state != 'running'",
                    params![self.sid, num],
                )
                .map_err(db)?;
                found.push(n);
            }
        }
        Ok(found)
    }

    async fn insert(&mut self, first: u64, trials: &[NewTrial], worker: &str) -> Result<Vec<Trial>> {
        let encoded = encode_new(trials)?;
        insert_trials(self.tx, self.sid, first, trials, &encoded, worker).map_err(db)
    }

    async fn store_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()> {
        store_snapshot(self.tx, self.sid, snapshot).map_err(db)
    }

    async fn store_key(&mut self, key: &str, claimed: &str) -> Result<()> {
        exec(
            self.tx,
            &format!("INSERT INTO claim_keys (study_id, key, trials, created_at) VALUES (?1, ?2, ?3, {NOW})"),
            params![self.sid, key, claimed],
        )
        .map_err(db)?;
        Ok(())
    }
}

impl SqliteClaim<'_, '_> {
    /// The oldest queued configurations (at most [`ClaimState::QUEUED_READ`]).
    fn queued(&self, at: &str) -> super::R<Vec<Queued>> {
        let mut stmt =
            self.tx.prepare_cached("SELECT id, x, config FROM queued WHERE study_id = ?1 ORDER BY id LIMIT ?2")?;
        let mut rows = stmt.query(params![self.sid, ClaimState::QUEUED_READ as i64])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let id: i64 = col(r, 0, at, "queued.id")?;
            let place = format!("{at} queued configuration {id}");
            let x: String = col(r, 1, &place, "x")?;
            let config: String = col(r, 2, &place, "config")?;
            out.push(Queued {
                id: unsigned(id, &place, "id")?,
                x: decoded(common::decode_floats(&x), &place, "x")?,
                config: decoded(serde_json::from_str(&config), &place, "config")?,
            });
        }
        Ok(out)
    }
}
