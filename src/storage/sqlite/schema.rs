//! The SQLite file's schema: migrations, and the checks that refuse a
//! foreign or newer file before anything in it changes.

use std::path::Path;

use rusqlite::{Connection, Transaction};

use super::{R, row};
use crate::error::{Error, Result};

/// Marks the file as a knobs database ("knob").
const APPLICATION_ID: i64 = 0x6b6e_6f62;

/// Schema migrations: entry `i` takes the file from version `i` to `i + 1`.
/// Never edit a released entry; append a new one.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 5: confirmation: trials that re-measure the best candidates and the
    // baseline side by side.
    "ALTER TABLE trials ADD COLUMN confirm INTEGER NOT NULL DEFAULT 0 CHECK (confirm IN (0, 1));",
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

/// Refuse files that are not ours or that a newer knobs wrote.
pub(super) fn check_header(conn: &Connection, path: &Path) -> Result<()> {
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
pub(super) fn migrate(tx: &Transaction<'_>, path: &Path) -> R<()> {
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
