//! The claim primitives ([`ClaimTx`]) on a PostgreSQL transaction: the
//! study row is held `FOR UPDATE` from [`ClaimTx::hold`] on, and the reads
//! the planner needs are sent together (tokio-postgres pipelines them).

use deadpool_postgres::Transaction;

use super::super::claim::{ClaimTx, Hold, Read};
use super::super::common::{self, unsigned};
use super::super::{NewTrial, StoredSnapshot};
use super::rows::*;
use super::url::describe;
use super::{Fail, R, TRIAL_COLUMNS};
use crate::error::{Error, Result};
use crate::trial::Trial;

pub(super) struct PgClaim<'a, 't> {
    pub tx: &'a Transaction<'t>,
    /// `{target} study `name``, for messages.
    pub place: &'a str,
    pub study: &'a str,
    /// The study's id, once [`ClaimTx::hold`] locked its row.
    pub sid: Option<i64>,
}

/// Put a backend failure into words, naming the database.
fn db(place: &str) -> impl Fn(Fail) -> Error + '_ {
    move |f| match f {
        Fail::Knobs(e) => e,
        Fail::Db(e) => Error::Storage(format!("{place}: {}", describe(&e))),
        Fail::Pool(e) => Error::Unavailable(format!("{place}: {e}")),
    }
}

impl PgClaim<'_, '_> {
    fn sid(&self) -> Result<i64> {
        self.sid.ok_or_else(|| Error::Internal("claim: the study row is not held".into()))
    }

    async fn run<T>(&self, f: impl AsyncFnOnce(&Transaction<'_>, i64) -> R<T>) -> Result<T> {
        let sid = self.sid()?;
        f(self.tx, sid).await.map_err(db(self.place))
    }
}

impl ClaimTx for PgClaim<'_, '_> {
    async fn hold(&mut self) -> Result<Hold> {
        let (tx, place, study) = (self.tx, self.place, self.study);
        let held = async {
            let row = q_opt(tx, "SELECT id, shared_at IS NOT NULL FROM studies WHERE name = $1 FOR UPDATE", &[&study])
                .await?
                .ok_or_else(|| common::no_study(study))?;
            let sid: i64 = col(&row, 0, place, "id")?;
            let shared: bool = col(&row, 1, place, "shared_at")?;
            R::Ok((sid, shared, run_lock(tx, sid, place).await?))
        };
        let (sid, shared, run_lock) = held.await.map_err(db(place))?;
        self.sid = Some(sid);
        Ok(Hold { shared, run_lock })
    }

    async fn find_key(&mut self, key: &str, days: u32) -> Result<Option<String>> {
        let days = i32::try_from(days).unwrap_or(i32::MAX);
        self.run(async |tx, sid| {
            exec(
                tx,
                "DELETE FROM claim_keys WHERE study_id = $1 AND created_at < clock_timestamp() - make_interval(days => $2)",
                &[&sid, &days],
            )
            .await?;
            let row = q_opt(tx, "SELECT trials FROM claim_keys WHERE study_id = $1 AND key = $2", &[&sid, &key]).await?;
            Ok(row.map(|r| r.try_get(0)).transpose()?)
        })
        .await
    }

    async fn trials(&mut self, numbers: &[u64]) -> Result<Vec<Trial>> {
        let numbers: Vec<i64> = numbers.iter().map(|&n| to_i64(n)).collect();
        let place = self.place;
        self.run(async |tx, sid| {
            let sql =
                format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = $1 AND number = ANY($2) ORDER BY number");
            query_trials(tx, place, &sql, &[&sid, &numbers]).await
        })
        .await
    }

    async fn mark_shared(&mut self) -> Result<()> {
        self.run(async |tx, sid| {
            exec(tx, "UPDATE studies SET shared_at = clock_timestamp() WHERE id = $1", &[&sid]).await?;
            Ok(())
        })
        .await
    }

    async fn stale(&mut self, grace_s: f64) -> Result<Vec<(u64, u64)>> {
        let place = self.place;
        self.run(async |tx, sid| {
            // By the database's clock. Heartbeats that commit while this
            // statement waits for a row are seen (READ COMMITTED re-checks a
            // locked row), so a live trial is not taken.
            let rows = q(
                tx,
                "SELECT number, retries FROM trials
                 WHERE study_id = $1 AND state = 'running'
                   AND extract(epoch FROM clock_timestamp() - heartbeat_at)::float8 > $2
                 ORDER BY number FOR UPDATE",
                &[&sid, &grace_s],
            )
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let number = unsigned(col(row, 0, place, "number")?, place, "number")?;
                let retries: i32 = col(row, 1, place, "retries")?;
                out.push((number, unsigned(i64::from(retries), place, "retries")?));
            }
            Ok(out)
        })
        .await
    }

    async fn re_lease(&mut self, numbers: &[u64], worker: &str) -> Result<Vec<Trial>> {
        let numbers: Vec<i64> = numbers.iter().map(|&n| to_i64(n)).collect();
        let place = self.place;
        self.run(async |tx, sid| {
            exec(
                tx,
                "UPDATE trials SET epoch = epoch + 1, retries = retries + 1, worker = $3,
                        heartbeat_at = clock_timestamp()
                 WHERE study_id = $1 AND number = ANY($2)",
                &[&sid, &numbers, &worker],
            )
            .await?;
            let sql =
                format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE study_id = $1 AND number = ANY($2) ORDER BY number");
            query_trials(tx, place, &sql, &[&sid, &numbers]).await
        })
        .await
    }

    async fn fail(&mut self, number: u64, reason: &str) -> Result<()> {
        let number = to_i64(number);
        self.run(async |tx, sid| {
            exec(
                tx,
                "UPDATE trials SET state = 'failed', fail_reason = $3,
                        heartbeat_at = clock_timestamp(), finished_at = clock_timestamp()
                 WHERE study_id = $1 AND number = $2",
                &[&sid, &number, &reason],
            )
            .await?;
            Ok(())
        })
        .await
    }

    async fn read(&mut self) -> Result<Read> {
        let place = self.place;
        self.run(async |tx, sid| {
            let untold_sql = format!(
                "SELECT {TRIAL_COLUMNS} FROM trials
                 WHERE study_id = $1 AND state <> 'running' AND NOT told ORDER BY number"
            );
            let by_study: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&sid];
            let (untold, counts, snapshot, queued) = tokio::try_join!(
                query_trials(tx, place, &untold_sql, &by_study),
                q_one(
                    tx,
                    // Index lookups, not scans (see the SQLite backend): numbers are consecutive
                    // from 0 and batches never decrease with numbers.
                    "SELECT coalesce((SELECT number + 1 FROM trials WHERE study_id = $1 ORDER BY number DESC LIMIT 1), 0)::BIGINT,
                            (SELECT count(*) FROM trials WHERE study_id = $1 AND state = 'running')::BIGINT,
                            coalesce((SELECT batch FROM trials WHERE study_id = $1 ORDER BY number DESC LIMIT 1), 0)::BIGINT,
                            (SELECT closed_at IS NOT NULL FROM studies WHERE id = $1)",
                    &by_study,
                ),
                load_snapshot(tx, sid, place),
                load_queued(tx, sid, place),
            )?;
            Ok(Read {
                snapshot,
                untold,
                total: unsigned(col(&counts, 0, place, "count")?, place, "count")?,
                running: unsigned(col(&counts, 1, place, "count")?, place, "count")?,
                last_batch: unsigned(col(&counts, 2, place, "batch")?, place, "batch")?,
                closed: col(&counts, 3, place, "closed_at")?,
                queued,
            })
        })
        .await
    }

    async fn dequeue(&mut self, ids: &[u64]) -> Result<()> {
        let ids: Vec<i64> = ids.iter().map(|&id| to_i64(id)).collect();
        self.run(async |tx, sid| {
            exec(tx, "DELETE FROM queued WHERE study_id = $1 AND id = ANY($2)", &[&sid, &ids]).await?;
            Ok(())
        })
        .await
    }

    async fn mark_told(&mut self, numbers: &[u64]) -> Result<Vec<u64>> {
        let wanted: Vec<i64> = numbers.iter().filter_map(|&n| i64::try_from(n).ok()).collect();
        self.run(async |tx, sid| {
            // Running trials named by the plan are left untold.
            let rows = q(
                tx,
                "UPDATE trials SET told = told OR state <> 'running'
                 WHERE study_id = $1 AND number = ANY($2) RETURNING number",
                &[&sid, &wanted],
            )
            .await?;
            let mut found = Vec::with_capacity(rows.len());
            for r in &rows {
                found.push(r.try_get::<_, i64>(0)?.unsigned_abs());
            }
            Ok(found)
        })
        .await
    }

    async fn insert(&mut self, first: u64, trials: &[NewTrial], worker: &str) -> Result<Vec<Trial>> {
        self.run(async |tx, sid| insert_trials(tx, sid, first, trials, worker).await).await
    }

    async fn store_snapshot(&mut self, snapshot: &StoredSnapshot) -> Result<()> {
        self.run(async |tx, sid| store_snapshot(tx, sid, snapshot).await).await
    }

    async fn store_key(&mut self, key: &str, claimed: &str) -> Result<()> {
        self.run(async |tx, sid| {
            exec(
                tx,
                "INSERT INTO claim_keys (study_id, key, trials, created_at) VALUES ($1, $2, $3, clock_timestamp())",
                &[&sid, &key, &claimed],
            )
            .await?;
            Ok(())
        })
        .await
    }
}
