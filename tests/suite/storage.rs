//! Storage: the conformance suite (`knobs::storage::conformance`) on every
//! backend, plus the SQLite-only and PostgreSQL-only tests below (files,
//! schema versions, concurrency across handles, durability settings).
//!
//! PostgreSQL tests need a server: `KNOBS_TEST_POSTGRES` (default
//! `postgres://postgres@127.0.0.1:5432/test`). Each test works in a fresh
//! schema of its own and drops it at the end; without a server they skip
//! (see `pg`).

use std::path::Path;

use knobs::Error;
use knobs::storage::conformance::*;
use knobs::storage::{self, MemoryStorage, Owner, PostgresStorage, SnapshotPoint, SqliteStorage, Storage};

fn memory(_case: &str) -> Option<Backend> {
    let storage = std::sync::Arc::new(MemoryStorage::new());
    let aged = storage.clone();
    let age = Box::new(move |study: &str, secs: f64| aged.age(study, secs));
    Some(Backend { storage, age, guard: Box::new(()) })
}

fn sqlite(_case: &str) -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("knobs.db");
    let storage = std::sync::Arc::new(SqliteStorage::open(&path).expect("open sqlite"));
    let age = Box::new(move |study: &str, secs: f64| {
        let shift = |table: &str, column: &str| {
            let sql = format!(
                "UPDATE {table} SET {column} = strftime('%Y-%m-%dT%H:%M:%fZ', {column}, ?2)
                 WHERE study_id = (SELECT id FROM studies WHERE name = ?1)"
            );
            raw(&path).execute(&sql, rusqlite::params![study, format!("-{secs} seconds")]).unwrap();
        };
        shift("trials", "heartbeat_at");
        shift("study_locks", "heartbeat_at");
        shift("claim_keys", "created_at");
    });
    Some(Backend { storage, age, guard: Box::new(dir) })
}

/// `None` when the PostgreSQL tests are skipped (see `pg`).
fn postgres(case: &str) -> Option<Backend> {
    let schema = pg::TestSchema::new_in(module_path!(), case)?;
    let storage = std::sync::Arc::new(schema.open());
    let name = schema.name.clone();
    let age = Box::new(move |study: &str, secs: f64| {
        let raw = pg::Raw::connect(&name);
        for (table, column) in
            [("trials", "heartbeat_at"), ("study_locks", "heartbeat_at"), ("claim_keys", "created_at")]
        {
            raw.must(&format!(
                "UPDATE {table} SET {column} = {column} - make_interval(secs => {secs})
                 WHERE study_id = (SELECT id FROM studies WHERE name = '{study}')"
            ));
        }
    });
    Some(Backend { storage, age, guard: Box::new(schema) })
}

knobs::storage_conformance!(memory, sqlite, postgres);

// ---------------------------------------------------------------- storage::open

#[test]
fn open_accepts_memory_sqlite_urls_and_db_paths() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    for url in
        ["memory:".to_string(), format!("sqlite:{d}/a.db"), format!("sqlite://{d}/b.sqlite"), format!("{d}/c.db")]
    {
        let s = storage::open(&url).unwrap_or_else(|e| panic!("{url}: {e}"));
        s.open_study("a", &spec("a")).unwrap();
        assert_eq!(s.list_studies().unwrap().len(), 1, "{url}");
    }
    assert!(dir.path().join("a.db").exists() && dir.path().join("b.sqlite").exists());
    assert!(dir.path().join("c.db").exists());
    for bad in ["", "memory", "results.txt", "sqlite:", "postgres:/localhost/knobs"] {
        match storage::open(bad) {
            Err(Error::Config(m)) => assert!(m.contains(&format!("`{bad}`")), "{m}"),
            Err(e) => panic!("{bad}: expected Error::Config, got {e}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
}

// ---------------------------------------------------------------- SQLite only

fn raw(path: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(path).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

#[test]
fn sqlite_data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("study.db");
    let me = Owner::current();
    let (record, told) = {
        let s = SqliteStorage::open(&path).unwrap();
        let record = s.open_study("a", &spec("a")).unwrap();
        s.acquire("a", &me).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 1.0 / 3.0), new_trial(1, 0.3)], "w", None).unwrap();
        let told = snap(1, SnapshotPoint::Told, "told");
        s.finish_trial("a", &complete(1, 0, 5e-324), Some(&told)).unwrap();
        s.reclaim_running("a", "w2").unwrap();
        (record, told)
    };
    let s = SqliteStorage::open(&path).unwrap();
    assert_eq!(s.find_study("a").unwrap(), Some(record));
    let trials = s.trials("a").unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[1].metrics["y"].to_bits(), 5e-324f64.to_bits());
    assert_eq!(trials[1].x, [1.0 / 3.0]);
    assert_eq!(trials.iter().map(|t| t.epoch).collect::<Vec<_>>(), [1, 0, 1]);
    assert_eq!(s.latest_snapshot("a").unwrap(), Some(told));
    assert!(matches!(s.acquire("a", &other_live_owner()), Err(Error::Locked(_))), "the lock persists");
    let next = s.start_trials("a", &[new_trial(2, 0.5)], "w", None).unwrap();
    assert_eq!(next[0].number, 3);
}

#[test]
fn sqlite_newer_schema_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    drop(SqliteStorage::open(&path).unwrap());
    let known = knobs::storage::sqlite::SCHEMA_VERSION;
    raw(&path).pragma_update(None, "user_version", known + 7).unwrap();
    let err = SqliteStorage::open(&path).expect_err("a newer file must be refused");
    let Error::Storage(msg) = err else { panic!("expected Error::Storage, got {err:?}") };
    let want = format!("was written by a newer knobs (schema {}, this binary knows {known}); upgrade knobs", known + 7);
    assert!(msg.contains(&want) && msg.contains("new.db"), "{msg}");
    // Nothing was changed by the refused open.
    let version: u32 = raw(&path).pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    assert_eq!(version, known + 7);
}

#[test]
fn sqlite_foreign_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.db");
    std::fs::write(&text, "this is not a database, just some text that is long enough to hold a header..........")
        .unwrap();
    match SqliteStorage::open(&text) {
        Err(Error::Storage(m)) => assert!(m.contains("notes.db") && m.contains("not a knobs database"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
    let other = dir.path().join("other.db");
    raw(&other).execute_batch("CREATE TABLE mine (a INTEGER)").unwrap();
    match SqliteStorage::open(&other) {
        Err(Error::Storage(m)) => assert!(m.contains("other.db") && m.contains("not a knobs database"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
    let missing_dir = dir.path().join("no/such/dir/k.db");
    match SqliteStorage::open(&missing_dir) {
        Err(Error::Storage(m)) => assert!(m.contains("k.db"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
}

#[test]
fn sqlite_pragmas_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStorage::open(&dir.path().join("p.db")).unwrap();
    let p = s.pragmas().unwrap();
    assert_eq!(p.journal_mode, "wal");
    assert_eq!(p.synchronous, 2, "FULL");
    assert!(p.busy_timeout_ms >= 5_000, "{p:?}");
    assert!(p.foreign_keys);
    assert_eq!(p.user_version, i64::from(knobs::storage::sqlite::SCHEMA_VERSION));
    // WAL is a property of the file: a fresh connection sees it too.
    let mode: String = raw(&dir.path().join("p.db")).pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn sqlite_trial_numbers_are_unique_by_constraint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("u.db");
    let s = SqliteStorage::open(&path).unwrap();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    let dup = raw(&path).execute(
        "INSERT INTO trials (study_id, number, batch, x, config, state, worker, heartbeat_at, started_at)
         SELECT study_id, number, batch, x, config, state, worker, heartbeat_at, started_at FROM trials",
        [],
    );
    let err = dup.expect_err("a duplicate number must violate a constraint");
    assert!(err.to_string().contains("UNIQUE"), "{err}");
}

#[test]
fn sqlite_damaged_rows_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let s = SqliteStorage::open(&path).unwrap();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2)], "w", Some(&snap(1, SnapshotPoint::Asked, "s")))
        .unwrap();
    let expect_damaged = |r: knobs::Result<()>, needles: &[&str]| match r {
        Err(Error::Storage(m)) => {
            assert!(m.contains("d.db") && m.contains("damaged"), "{m}");
            for n in needles {
                assert!(m.contains(n), "{m} lacks {n}");
            }
        }
        other => panic!("expected Error::Storage, got {other:?}"),
    };
    let db = raw(&path);
    let cases: [(&str, &[&str]); 6] = [
        ("UPDATE trials SET x = 'not json' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET x = '[\"zero\"]' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET config = '[1, 2]' WHERE number = 1", &["trial 1", "`config`"]),
        ("UPDATE trials SET metrics = '{\"y\": true}' WHERE number = 1", &["trial 1", "`metrics`"]),
        ("UPDATE trials SET batch = 'soon' WHERE number = 1", &["trial 1", "`batch`"]),
        ("UPDATE trials SET state = 'exploded' WHERE number = 1", &["trial 1", "`state`"]),
    ];
    db.pragma_update(None, "ignore_check_constraints", true).unwrap();
    for (sql, needles) in cases {
        db.execute(sql, []).unwrap();
        expect_damaged(s.trials("a").map(drop), needles);
        // Restore the row for the next case.
        db.execute(
            "UPDATE trials SET x = '[0.2]', config = '{\"x\":0.2}', metrics = '{}', batch = 1, state = 'running'
             WHERE number = 1",
            [],
        )
        .unwrap();
        assert_eq!(s.trials("a").unwrap().len(), 2);
    }
    db.execute("UPDATE trials SET state = 'failed', fail_reason = NULL WHERE number = 1", []).unwrap();
    expect_damaged(s.finish_trial("a", &complete(1, 0, 1.0), None), &["trial 1", "`state`"]);
    db.execute("UPDATE snapshots SET snapshot = '{\"optimizer\": 3}'", []).unwrap();
    expect_damaged(s.latest_snapshot("a").map(drop), &["snapshot"]);
    db.execute("UPDATE studies SET spec = '{'", []).unwrap();
    expect_damaged(s.find_study("a").map(drop), &["study `a`", "`spec`"]);
}

#[test]
fn sqlite_two_handles_four_threads_number_uniquely() {
    const THREADS: usize = 4;
    const CALLS: usize = 50;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let handles = [SqliteStorage::open(&path).unwrap(), SqliteStorage::open(&path).unwrap()];
    handles[0].open_study("a", &spec("a")).unwrap();
    let got: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let s = &handles[i % 2];
                scope.spawn(move || {
                    let mut numbers = Vec::new();
                    for call in 0..CALLS {
                        let sn = snap(call as u64, SnapshotPoint::Asked, &format!("t{i}c{call}"));
                        let trials = s
                            .start_trials("a", &[new_trial(call as u64, i as f64 / 10.0)], &format!("w{i}"), Some(&sn))
                            .unwrap_or_else(|e| panic!("thread {i} call {call}: {e}"));
                        numbers.extend(trials.iter().map(|t| t.number));
                    }
                    numbers
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).collect()
    });
    let mut all: Vec<u64> = got.iter().flatten().copied().collect();
    for numbers in &got {
        assert_eq!(numbers.len(), CALLS);
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "each thread sees increasing numbers");
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..(THREADS * CALLS) as u64).collect();
    assert_eq!(all, expected, "unique, consecutive, none lost");
    for s in &handles {
        let stored: Vec<u64> = s.trials("a").unwrap().iter().map(|t| t.number).collect();
        assert_eq!(stored, expected);
    }
    let integrity: String = raw(&path).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
}

// ---------------------------------------------------------------- PostgreSQL only

use crate::pg;

#[test]
fn open_accepts_postgres_urls() {
    let db = crate::pg_schema!("open_urls");
    let url = db.url.clone();
    let s = storage::open(&url).unwrap_or_else(|e| panic!("{e}"));
    s.open_study("a", &spec("a")).unwrap();
    let other = url.replacen("postgres://", "postgresql://", 1);
    assert!(other.starts_with("postgresql://"), "{other}");
    let t = storage::open(&format!("  {other}  ")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.list_studies().unwrap().len(), 1, "the same schema through both spellings");
    drop((s, t));
    match storage::open("postgres://postgres@127.0.0.1:5432/test?schema=no-dashes").map(drop) {
        Err(Error::Config(m)) => {
            assert!(m.contains("no-dashes") && m.contains("letters, digits or underscores"), "{m}")
        }
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn postgres_data_survives_reopening() {
    let db = crate::pg_schema!("survives");
    let me = Owner::current();
    let (record, told) = {
        let s = db.open();
        let record = s.open_study("a", &spec("a")).unwrap();
        s.acquire("a", &me).unwrap();
        s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 1.0 / 3.0), new_trial(1, 0.3)], "w", None).unwrap();
        let told = snap(1, SnapshotPoint::Told, "told");
        s.finish_trial("a", &complete(1, 0, 5e-324), Some(&told)).unwrap();
        s.reclaim_running("a", "w2").unwrap();
        (record, told)
    };
    let s = db.open();
    assert_eq!(s.find_study("a").unwrap(), Some(record.clone()));
    let c = &record.created_at;
    assert!(c.len() == 24 && &c[10..11] == "T" && &c[19..20] == "." && c.ends_with('Z'), "SQLite's shape: {c}");
    let trials = s.trials("a").unwrap();
    assert_eq!(trials.len(), 3);
    assert_eq!(trials[1].metrics["y"].to_bits(), 5e-324f64.to_bits());
    assert_eq!(trials[1].x, [1.0 / 3.0]);
    assert_eq!(trials.iter().map(|t| t.epoch).collect::<Vec<_>>(), [1, 0, 1]);
    assert_eq!(s.latest_snapshot("a").unwrap(), Some(told));
    assert!(matches!(s.acquire("a", &other_live_owner()), Err(Error::Locked(_))), "the lock persists");
    let next = s.start_trials("a", &[new_trial(2, 0.5)], "w", None).unwrap();
    assert_eq!(next[0].number, 3);
    let version = db.raw().i64("SELECT version::bigint FROM knobs_schema");
    assert_eq!(version, i64::from(knobs::storage::postgres::SCHEMA_VERSION));
}

#[test]
fn postgres_schemas_keep_studies_apart() {
    let one = crate::pg_schema!("apart_one");
    let two = crate::pg_schema!("apart_two");
    let (s1, s2) = (one.open(), two.open());
    s1.open_study("a", &spec("one")).unwrap();
    s1.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    assert_eq!(s2.find_study("a").unwrap(), None);
    s2.open_study("a", &spec("two")).unwrap();
    assert!(s2.trials("a").unwrap().is_empty());
    assert_eq!(s1.find_study("a").unwrap().unwrap().spec, spec("one"));
    assert_eq!(s1.schema(), one.name);
    assert!(s1.target().contains(&one.name), "{}", s1.target());
}

#[test]
fn postgres_newer_schema_is_refused_clearly() {
    let db = crate::pg_schema!("newer");
    drop(db.open());
    let known = knobs::storage::postgres::SCHEMA_VERSION;
    db.raw().must(&format!("UPDATE knobs_schema SET version = {}", known + 7));
    let err = PostgresStorage::open(&db.url).expect_err("a newer schema must be refused");
    let Error::Storage(msg) = err else { panic!("expected Error::Storage, got {err:?}") };
    let want = format!("was written by a newer knobs (schema {}, this binary knows {known}); upgrade knobs", known + 7);
    assert!(msg.contains(&want) && msg.contains(&db.name), "{msg}");
    // Nothing was changed by the refused open.
    assert_eq!(db.raw().i64("SELECT version::bigint FROM knobs_schema"), i64::from(known + 7));
}

#[test]
fn postgres_foreign_schemas_and_bad_schema_names_are_refused() {
    let db = crate::pg_schema!("foreign");
    let raw = pg::Raw::connect("public");
    raw.must(&format!("CREATE SCHEMA {0}; CREATE TABLE {0}.trials (a INTEGER)", db.name));
    match PostgresStorage::open(&db.url) {
        Err(Error::Storage(m)) => assert!(m.contains(&db.name) && m.contains("not a knobs schema"), "{m}"),
        other => panic!("expected Error::Storage, got {other:?}"),
    }
    let base = pg::base_url();
    for bad in ["", "a-b", "a;drop", "\"x\"", &"s".repeat(64)] {
        match PostgresStorage::open(&pg::with_schema(&base, bad)) {
            Err(Error::Config(m)) => assert!(m.contains("schema"), "{m}"),
            other => panic!("schema {bad:?}: expected Error::Config, got {other:?}"),
        }
    }
}

#[test]
fn postgres_concurrent_opens_migrate_once() {
    let db = crate::pg_schema!("concurrent_open");
    let opened: Vec<PostgresStorage> = std::thread::scope(|scope| {
        let openers: Vec<_> = (0..4).map(|_| scope.spawn(|| PostgresStorage::open(&db.url))).collect();
        openers.into_iter().map(|o| o.join().expect("opener thread").unwrap_or_else(|e| panic!("{e}"))).collect()
    });
    opened[0].open_study("a", &spec("a")).unwrap();
    assert_eq!(opened[3].list_studies().unwrap().len(), 1);
    let raw = db.raw();
    assert_eq!(raw.i64("SELECT count(*) FROM knobs_schema"), 1);
    assert_eq!(
        raw.i64("SELECT version::bigint FROM knobs_schema"),
        i64::from(knobs::storage::postgres::SCHEMA_VERSION)
    );
}

#[test]
fn postgres_trial_numbers_are_unique_by_constraint() {
    let db = crate::pg_schema!("unique");
    let s = db.open();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1)], "w", None).unwrap();
    let dup = db.raw().exec(
        "INSERT INTO trials (study_id, number, batch, x, config, state, worker, heartbeat_at, started_at)
         SELECT study_id, number, batch, x, config, state, worker, heartbeat_at, started_at FROM trials",
    );
    let err = dup.expect_err("a duplicate number must violate a constraint");
    assert!(err.contains("duplicate key") && err.contains("trials_study_id_number_key"), "{err}");
}

#[test]
fn postgres_damaged_rows_are_clear_errors() {
    let db = crate::pg_schema!("damaged");
    let s = db.open();
    s.open_study("a", &spec("a")).unwrap();
    s.start_trials("a", &[new_trial(1, 0.1), new_trial(1, 0.2)], "w", Some(&snap(1, SnapshotPoint::Asked, "s")))
        .unwrap();
    let expect_damaged = |r: knobs::Result<()>, needles: &[&str]| match r {
        Err(Error::Storage(m)) => {
            assert!(m.contains(&db.name) && m.contains("damaged"), "{m}");
            for n in needles {
                assert!(m.contains(n), "{m} lacks {n}");
            }
        }
        other => panic!("expected Error::Storage, got {other:?}"),
    };
    let raw = db.raw();
    // Garbage the constraints would stop, as if an older tool or a hand edit wrote it.
    raw.must("ALTER TABLE trials DROP CONSTRAINT trials_state_check, DROP CONSTRAINT trials_batch_check");
    let cases: [(&str, &[&str]); 6] = [
        ("UPDATE trials SET x = 'not json' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET x = '[\"zero\"]' WHERE number = 1", &["trial 1", "`x`"]),
        ("UPDATE trials SET config = '[1, 2]' WHERE number = 1", &["trial 1", "`config`"]),
        ("UPDATE trials SET metrics = '{\"y\": true}' WHERE number = 1", &["trial 1", "`metrics`"]),
        ("UPDATE trials SET batch = -5 WHERE number = 1", &["trial 1", "`batch`", "negative"]),
        ("UPDATE trials SET state = 'exploded' WHERE number = 1", &["trial 1", "`state`"]),
    ];
    for (sql, needles) in cases {
        raw.must(sql);
        expect_damaged(s.trials("a").map(drop), needles);
        // Restore the row for the next case.
        raw.must(
            "UPDATE trials SET x = '[0.2]', config = '{\"x\":0.2}', metrics = '{}', batch = 1, state = 'running'
             WHERE number = 1",
        );
        assert_eq!(s.trials("a").unwrap().len(), 2);
    }
    raw.must("UPDATE trials SET state = 'failed', fail_reason = NULL WHERE number = 1");
    expect_damaged(s.finish_trial("a", &complete(1, 0, 1.0), None), &["trial 1", "`state`"]);
    expect_damaged(s.heartbeat("a", 1, 0), &["trial 1", "`state`"]);
    raw.must("UPDATE snapshots SET snapshot = '{\"optimizer\": 3}'");
    expect_damaged(s.latest_snapshot("a").map(drop), &["snapshot"]);
    raw.must("UPDATE snapshots SET snapshot = '{}', point = 'sideways'");
    expect_damaged(s.latest_snapshot("a").map(drop), &["snapshot", "`point`"]);
    raw.must("UPDATE studies SET spec = '{'");
    expect_damaged(s.find_study("a").map(drop), &["study `a`", "`spec`"]);
    drop(s);
    raw.must("INSERT INTO knobs_schema (version) VALUES (1)");
    expect_damaged(PostgresStorage::open(&db.url).map(drop), &["knobs_schema"]);
}

#[test]
fn postgres_two_handles_four_threads_number_uniquely() {
    const THREADS: usize = 4;
    const CALLS: usize = 50;
    let db = crate::pg_schema!("two_handles");
    let handles = [db.open(), db.open()];
    handles[0].open_study("a", &spec("a")).unwrap();
    let got: Vec<Vec<u64>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|i| {
                let s = &handles[i % 2];
                scope.spawn(move || {
                    let mut numbers = Vec::new();
                    for call in 0..CALLS {
                        let sn = snap(call as u64, SnapshotPoint::Asked, &format!("t{i}c{call}"));
                        let trials = s
                            .start_trials("a", &[new_trial(call as u64, i as f64 / 10.0)], &format!("w{i}"), Some(&sn))
                            .unwrap_or_else(|e| panic!("thread {i} call {call}: {e}"));
                        numbers.extend(trials.iter().map(|t| t.number));
                    }
                    numbers
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("worker thread")).collect()
    });
    let mut all: Vec<u64> = got.iter().flatten().copied().collect();
    for numbers in &got {
        assert_eq!(numbers.len(), CALLS);
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "each thread sees increasing numbers");
    }
    all.sort_unstable();
    let expected: Vec<u64> = (0..(THREADS * CALLS) as u64).collect();
    assert_eq!(all, expected, "unique, consecutive, none lost");
    for s in &handles {
        let stored: Vec<u64> = s.trials("a").unwrap().iter().map(|t| t.number).collect();
        assert_eq!(stored, expected);
    }
    assert_eq!(db.raw().i64("SELECT count(*) FROM snapshots"), 3, "older snapshots are pruned");
}

#[test]
fn postgres_connection_errors_name_the_server_but_never_the_password() {
    if pg::skip(module_path!()) {
        return;
    }
    let password = "s3cret-Pw-123";
    let config = pg::base_config();
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let cases: [(String, Vec<String>); 2] = [
        // Nothing listens on port 1.
        (format!("postgres://knobs_user:{password}@127.0.0.1:1/test?schema=k"), vec!["127.0.0.1:1/test".into()]),
        (
            format!("postgres://postgres:{password}@{host}:{port}/knobs_no_such_db?schema=k"),
            vec![format!("{host}:{port}/knobs_no_such_db"), "does not exist".into()],
        ),
    ];
    for (url, needles) in &cases {
        for opened in [PostgresStorage::open(url).map(drop), storage::open(url).map(drop)] {
            let err = opened.expect_err("must not connect");
            let msg = err.to_string();
            // Nothing listening is a fault that may pass; a missing database is not.
            if url.contains(":1/") {
                assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
            } else {
                assert!(matches!(err, Error::Storage(_)), "{err:?}");
            }
            assert!(!msg.contains(password) && !format!("{err:?}").contains(password), "password leaked: {msg}");
            for n in needles {
                assert!(msg.contains(n.as_str()), "{msg} lacks {n}");
            }
        }
    }
    // A URL that does not parse is named with its password masked.
    let bad = format!("postgres://postgres:{password}@127.0.0.1:notaport/test");
    match PostgresStorage::open(&bad) {
        Err(Error::Config(m)) => assert!(!m.contains(password) && m.contains("postgres:***@127.0.0.1"), "{m}"),
        other => panic!("expected Error::Config, got {other:?}"),
    }
}

#[test]
fn postgres_works_from_spawn_blocking_threads_of_another_runtime() {
    let db = crate::pg_schema!("spawn_blocking");
    let s = std::sync::Arc::new(db.open());
    s.open_study("a", &spec("a")).unwrap();
    let server = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let numbers: Vec<u64> = server.block_on(async {
        let calls: Vec<_> = (0..4)
            .map(|i| {
                let s = s.clone();
                tokio::task::spawn_blocking(move || s.start_trials("a", &[new_trial(1, i as f64 / 10.0)], "w", None))
            })
            .collect();
        let mut numbers = Vec::new();
        for c in calls {
            numbers.extend(c.await.expect("blocking task").unwrap_or_else(|e| panic!("{e}")).iter().map(|t| t.number));
        }
        numbers
    });
    let mut sorted = numbers.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2, 3]);
    // The handle may even be dropped on the server's runtime.
    server.block_on(async move { drop(s) });
}

/// Eight handles creating one new file at the same moment (as eight `knobs worker`s
/// started together do): every one opens it, none calls it a foreign file.
#[test]
fn sqlite_many_handles_creating_one_file_at_once_all_open_it() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("new{round}.db"));
        let barrier = std::sync::Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    barrier.wait();
                    SqliteStorage::open(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
                });
            }
        });
    }
}
