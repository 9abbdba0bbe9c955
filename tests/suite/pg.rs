//! PostgreSQL for the tests: a fresh schema per test on the test server
//! (`KNOBS_TEST_POSTGRES`, else 127.0.0.1:5432/test), dropped when the test
//! ends, and a plain connection for what the storage API cannot do (raw
//! edits, checks).
//!
//! The PostgreSQL tests run when `KNOBS_TEST_POSTGRES` is set or a server
//! answers on 127.0.0.1:5432; otherwise each suite prints one line
//! `skipped: no PostgreSQL (set KNOBS_TEST_POSTGRES)` and its tests pass
//! without running, so that a clone on a laptop passes `cargo test`.
//! `KNOBS_REQUIRE_POSTGRES=1` (set by `.ci/run`) turns the skip into a
//! failure, so CI can never pass without them. Once a server is chosen, a
//! server that does not work fails the test.

#![allow(dead_code)] // benches/serve_load.rs includes this file too and uses part of it

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use knobs::storage::PostgresStorage;

pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// The server under test (`KNOBS_TEST_POSTGRES`, else the CI default).
pub fn base_url() -> String {
    std::env::var("KNOBS_TEST_POSTGRES").ok().filter(|s| !s.trim().is_empty()).unwrap_or_else(|| DEFAULT_URL.into())
}

/// Whether the PostgreSQL tests run: `KNOBS_TEST_POSTGRES` is set, or
/// something answers on 127.0.0.1:5432. Asked once per test binary.
pub fn available() -> bool {
    static ANSWER: OnceLock<bool> = OnceLock::new();
    *ANSWER.get_or_init(|| {
        if std::env::var("KNOBS_TEST_POSTGRES").is_ok_and(|s| !s.trim().is_empty()) {
            return true;
        }
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 5432));
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok()
    })
}

/// `None` (after saying so, once per suite) when the PostgreSQL tests are
/// skipped; panics instead under `KNOBS_REQUIRE_POSTGRES`.
pub fn skip(suite: &str) -> bool {
    if available() {
        return false;
    }
    if std::env::var("KNOBS_REQUIRE_POSTGRES").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "KNOBS_REQUIRE_POSTGRES is set but no PostgreSQL answers on 127.0.0.1:5432 and \
             KNOBS_TEST_POSTGRES is not set"
        );
    }
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    if SAID.lock().unwrap_or_else(|e| e.into_inner()).insert(suite.to_string()) {
        // Straight to the process's stderr: the test harness captures `eprintln!`.
        let _ = writeln!(std::io::stderr(), "{suite}: skipped: no PostgreSQL (set KNOBS_TEST_POSTGRES)");
    }
    true
}

/// A fresh schema for one test, or `return` from the test when PostgreSQL
/// tests are skipped (see the module docs).
#[macro_export]
macro_rules! pg_schema {
    ($case:expr) => {
        match $crate::pg::TestSchema::new_in(module_path!(), $case) {
            Some(schema) => schema,
            None => return,
        }
    };
}

pub fn base_config() -> tokio_postgres::Config {
    base_url().parse().unwrap_or_else(|e| panic!("KNOBS_TEST_POSTGRES is not a PostgreSQL URL: {e:?}"))
}

/// `host:port/db` of the test server, for messages (no password).
pub fn server() -> String {
    let c = base_config();
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "?".into(),
    };
    format!("{host}:{}/{}", c.get_ports().first().copied().unwrap_or(5432), c.get_dbname().unwrap_or("?"))
}

pub fn with_schema(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

pub struct Raw {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Raw {
    /// Connect with `schema` first on the search path.
    pub fn connect(schema: &str) -> Raw {
        let server = server();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
        let mut config = base_config();
        config.options(format!("-csearch_path={schema}"));
        config.connect_timeout(Duration::from_secs(10));
        let client = rt
            .block_on(async {
                let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                Ok::<_, tokio_postgres::Error>(client)
            })
            .unwrap_or_else(|e| {
                panic!(
                    "these tests need PostgreSQL at {server} (set KNOBS_TEST_POSTGRES to another server; \
                     .ci/run starts one): {}",
                    chain(&e)
                )
            });
        Raw { rt, client }
    }

    pub fn exec(&self, sql: &str) -> Result<(), String> {
        self.rt.block_on(self.client.batch_execute(sql)).map_err(|e| chain(&e))
    }

    pub fn must(&self, sql: &str) {
        self.exec(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn i64(&self, sql: &str) -> i64 {
        let row = self.rt.block_on(self.client.query_one(sql, &[])).unwrap_or_else(|e| panic!("{sql}: {}", chain(&e)));
        row.get(0)
    }
}

/// A schema of one test's own, dropped (best effort) when it goes away.
pub struct TestSchema {
    pub name: String,
    pub url: String,
}

impl TestSchema {
    /// A schema for `case` of `suite`, or `None` when PostgreSQL tests are skipped.
    pub fn new_in(suite: &str, case: &str) -> Option<TestSchema> {
        if skip(suite) {
            return None;
        }
        Some(TestSchema::new(case))
    }

    /// A schema for `case`; panics when no server works (benches need one).
    pub fn new(case: &str) -> TestSchema {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let case: String = case.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(36).collect::<String>();
        let name = format!("kt_{}_{}_{n}", case.to_ascii_lowercase(), std::process::id());
        // A leftover of an earlier run with the same pid would not be fresh.
        Raw::connect("public").must(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        TestSchema { url: with_schema(&base_url(), &name), name }
    }

    pub fn open(&self) -> PostgresStorage {
        PostgresStorage::open(&self.url).unwrap_or_else(|e| panic!("PostgreSQL storage on {}: {e}", server()))
    }

    pub fn raw(&self) -> Raw {
        Raw::connect(&self.name)
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let drop_it = || Raw::connect("public").exec(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        // Never a second panic while a failed test unwinds.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(drop_it));
    }
}
