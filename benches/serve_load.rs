//! Load on `knobs serve`: ask+tell round trips per second over HTTP on
//! loopback with concurrent clients, and their latency percentiles.
//!
//! `cargo bench --bench serve_load scale` runs the scale check instead (see
//! [`scale`]). `cargo bench --bench serve_load [random|bayes]` runs random and bayes on
//! SQLite and on PostgreSQL (`KNOBS_TEST_POSTGRES`, default the test server).
//! `KNOBS_LOAD_SECS` (default 10) sets each run's length, `KNOBS_LOAD_CLIENTS`
//! (default 8) the number of concurrent clients, `KNOBS_LOAD_STORAGE`
//! (`sqlite` or `postgres`) keeps one backend. Each client loops: ask one
//! trial, tell it complete with the branin value of its parameters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/suite/pg.rs"]
mod pg;

const TOKEN: &str = "bench-token-0123456789abcdef";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn start(storage: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_knobs"))
        .args(["serve", "--port", "0", "--storage", storage])
        .env("KNOBS_TOKEN", TOKEN)
        .env("KNOBS_LOG", "knobs=warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn knobs serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on http://").unwrap_or_else(|| panic!("{line}")).to_string();
    let server = Server { child, base: format!("http://{addr}") };
    let a = agent();
    let deadline = Instant::now() + Duration::from_secs(60);
    while a
        .get(format!("{}/readyz", server.base))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .call()
        .map_or(0, |r| r.status().as_u16())
        != 200
    {
        assert!(Instant::now() < deadline, "not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

fn post(a: &ureq::Agent, url: &str, body: &Value) -> (u16, Value) {
    let mut r = a
        .post(url)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status().as_u16();
    (status, serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap_or(Value::Null))
}

fn branin(x0: f64, x1: f64) -> f64 {
    let pi = std::f64::consts::PI;
    let b = 5.1 / (4.0 * pi * pi);
    let c = 5.0 / pi;
    (x1 - b * x0 * x0 + c * x0 - 6.0).powi(2) + 10.0 * (1.0 - 1.0 / (8.0 * pi)) * x0.cos() + 10.0
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn run(label: &str, storage: &str, optimizer: &str, clients: usize, secs: f64) {
    let server = start(storage);
    let study = create(&server, optimizer);
    measure(label, &server, &study, optimizer, clients, secs);
}

/// Create the benchmark's study (branin over two floats) and return its name.
fn create(server: &Server, optimizer: &str) -> String {
    let study = format!("load-{optimizer}");
    let spec = json!({
        "name": study, "seed": 1,
        "space": [{"name": "x0", "type": "float", "low": -5, "high": 10}, {"name": "x1", "type": "float", "low": 0, "high": 15}],
        "objectives": [{"metric": "value", "direction": "minimize"}],
        "evaluator": {"type": "function", "name": "branin"},
        "optimizer": optimizer, "budget": {"trials": 10_000_000}
    });
    let (status, body) = post(&agent(), &format!("{}/v1/studies", server.base), &spec);
    assert!(status == 200 || status == 201, "create: {status} {body}");
    study
}

/// `clients` threads ask+tell for `secs` seconds; prints one line and returns
/// the round trips' p50 and p99 in milliseconds.
fn measure(label: &str, server: &Server, study: &str, optimizer: &str, clients: usize, secs: f64) -> (f64, f64) {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let results: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let base = server.base.clone();
                let study = study.to_string();
                s.spawn(move || {
                    let a = agent();
                    let (mut round, mut asks) = (Vec::new(), Vec::new());
                    let mut req = 0u64;
                    while Instant::now() < deadline {
                        let t0 = Instant::now();
                        req += 1;
                        let (st, v) = post(
                            &a,
                            &format!("{base}/v1/studies/{study}/ask"),
                            &json!({"n": 1, "client_id": format!("c{c}"), "request_id": format!("{label}-r{req}").replace('/', "-")}),
                        );
                        assert_eq!(st, 200, "ask: {v}");
                        let t1 = Instant::now();
                        let t = &v["trials"][0];
                        let y = branin(t["params"]["x0"].as_f64().unwrap(), t["params"]["x1"].as_f64().unwrap());
                        let url = format!("{base}/v1/studies/{study}/trials/{}/tell", t["number"]);
                        let (st, v) =
                            post(&a, &url, &json!({"epoch": t["epoch"], "state": "complete", "metrics": {"value": y}}));
                        assert_eq!(st, 200, "tell: {v}");
                        asks.push((t1 - t0).as_secs_f64() * 1e3);
                        round.push(t0.elapsed().as_secs_f64() * 1e3);
                    }
                    (round, asks)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    let mut round: Vec<f64> = results.iter().flat_map(|r| r.0.iter().copied()).collect();
    let mut asks: Vec<f64> = results.iter().flat_map(|r| r.1.iter().copied()).collect();
    round.sort_by(f64::total_cmp);
    asks.sort_by(f64::total_cmp);
    println!(
        "{label:<11} {optimizer:<7} clients {clients}  {:>7} round trips in {elapsed:.1} s = {:>7.0}/s   round trip p50 {:>6.2} ms p99 {:>7.2} ms   ask p50 {:>6.2} ms p99 {:>7.2} ms",
        round.len(),
        round.len() as f64 / elapsed,
        pct(&round, 0.5),
        pct(&round, 0.99),
        pct(&asks, 0.5),
        pct(&asks, 0.99),
    );
    (pct(&round, 0.5), pct(&round, 0.99))
}

/// Peak resident memory of a process (VmHWM), in MB.
fn peak_rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Through the API: ask `trials` trials in batches of 100 (each told well within the lease) and tell every one
/// complete, from `clients` threads, calling `between` after every 10,000.
fn fill(server: &Server, study: &str, trials: usize, clients: usize, between: &dyn Fn()) {
    let mut done = 0;
    while done < trials {
        let chunk = 10_000.min(trials - done);
        fill_chunk(server, study, chunk, clients);
        between();
        done += chunk;
    }
}

fn fill_chunk(server: &Server, study: &str, trials: usize, clients: usize) {
    let batches = trials.div_ceil(100);
    std::thread::scope(|s| {
        for c in 0..clients {
            let base = server.base.clone();
            s.spawn(move || {
                let a = agent();
                for b in (c..batches).step_by(clients) {
                    let n = 100.min(trials - b * 100);
                    let (st, v) = post(
                        &a,
                        &format!("{base}/v1/studies/{study}/ask"),
                        &json!({"n": n, "client_id": format!("fill{c}")}),
                    );
                    assert_eq!(st, 200, "ask: {v}");
                    for t in v["trials"].as_array().unwrap() {
                        let y = branin(t["params"]["x0"].as_f64().unwrap(), t["params"]["x1"].as_f64().unwrap());
                        let url = format!("{base}/v1/studies/{study}/trials/{}/tell", t["number"]);
                        let (st, v) =
                            post(&a, &url, &json!({"epoch": t["epoch"], "state": "complete", "metrics": {"value": y}}));
                        assert_eq!(st, 200, "tell: {v}");
                    }
                }
            });
        }
    });
}

/// GET with the token; the status and the body as JSON (bodies up to 1 GiB).
fn get(a: &ureq::Agent, url: &str) -> (u16, Value) {
    let mut r =
        a.get(url).header("Authorization", format!("Bearer {TOKEN}")).call().unwrap_or_else(|e| panic!("{url}: {e}"));
    let status = r.status().as_u16();
    let text = r.body_mut().with_config().limit(1 << 30).read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The scale check: ask+tell latency in an empty study and in one of
/// `KNOBS_LOAD_TRIALS` (default 100,000) trials, then every trial listed page
/// by page and the recommendations asked for; the server's peak RSS after each.
fn scale(label: &str, storage: &str, clients: usize, secs: f64, between: &dyn Fn()) {
    let trials: usize = std::env::var("KNOBS_LOAD_TRIALS").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let server = start(storage);
    let pid = server.child.id();
    let study = create(&server, "random");
    let empty = measure(&format!("{label}/empty"), &server, &study, "random", clients, secs);
    let t = Instant::now();
    fill(&server, &study, trials, clients, between);
    println!(
        "{label}: filled to {trials}+ trials through the API in {:.0} s; peak RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        peak_rss_mb(pid)
    );
    let full = measure(&format!("{label}/{}k", trials / 1000), &server, &study, "random", clients, secs);
    println!(
        "{label}: round trip at {trials}+ trials vs empty: p50 {:.2} vs {:.2} ms ({:.2}x), p99 {:.2} vs {:.2} ms ({:.2}x); peak RSS {:.0} MB",
        full.0,
        empty.0,
        full.0 / empty.0,
        full.1,
        empty.1,
        full.1 / empty.1,
        peak_rss_mb(pid)
    );
    let a = agent();
    let (mut after, mut listed, t) = (None::<u64>, 0usize, Instant::now());
    loop {
        let mut url = format!("{}/v1/studies/{study}/trials?limit=1000", server.base);
        if let Some(n) = after {
            url.push_str(&format!("&after={n}"));
        }
        let (st, v) = get(&a, &url);
        assert_eq!(st, 200, "list: {v}");
        listed += v["trials"].as_array().unwrap().len();
        match v["next_after"].as_u64() {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    println!(
        "{label}: listed {listed} trials in pages of 1000 in {:.1} s; peak RSS {:.0} MB",
        t.elapsed().as_secs_f64(),
        peak_rss_mb(pid)
    );
    let t = Instant::now();
    let (st, v) = get(&a, &format!("{}/v1/studies/{study}/recommendations", server.base));
    assert_eq!(st, 200, "recommendations: {v}");
    println!("{label}: recommendations in {:.1} s; peak RSS {:.0} MB", t.elapsed().as_secs_f64(), peak_rss_mb(pid));
}

fn main() {
    let secs: f64 = std::env::var("KNOBS_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let clients: usize = std::env::var("KNOBS_LOAD_CLIENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if only.as_deref() == Some("scale") {
        let dir = tempfile::tempdir().unwrap();
        let backend = std::env::var("KNOBS_LOAD_STORAGE").ok();
        if backend.as_deref().is_none_or(|b| b == "sqlite") {
            scale("sqlite", dir.path().join("scale.db").to_str().unwrap(), clients, secs, &|| {});
        }
        if backend.as_deref().is_none_or(|b| b == "postgres") {
            let schema = pg::TestSchema::new("bench_scale");
            // This machine's server runs with autovacuum off; every trial row is updated twice after
            // its insert, so without vacuuming the claims' partial indexes fill with dead entries.
            // VACUUM ANALYZE after every 10,000 trials stands in for autovacuum (whose default
            // threshold is a fifth of the table dead).
            let vacuum = || schema.raw().must("VACUUM ANALYZE trials");
            scale("postgres", &schema.url, clients, secs, &vacuum);
        }
        return;
    }
    let backend = std::env::var("KNOBS_LOAD_STORAGE").ok();
    let wants = |b: &str| backend.as_deref().is_none_or(|w| w == b);
    let dir = tempfile::tempdir().unwrap();
    for optimizer in ["random", "bayes"] {
        if only.as_deref().is_some_and(|o| o != optimizer) {
            continue;
        }
        let db = dir.path().join(format!("{optimizer}.db"));
        if wants("sqlite") {
            run("sqlite", db.to_str().unwrap(), optimizer, clients, secs);
        }
        if wants("postgres") {
            // A fresh schema on KNOBS_TEST_POSTGRES (default 127.0.0.1:5432/test), dropped afterwards.
            let schema = pg::TestSchema::new(&format!("bench_{optimizer}"));
            run("postgres", &schema.url, optimizer, clients, secs);
        }
    }
}
