//! Load on `knobs serve`: ask+tell round trips per second over HTTP on
//! loopback with concurrent clients, and their latency percentiles.
//!
//! `cargo bench --bench serve_load [random|bayes]` runs random and bayes on
//! SQLite and on PostgreSQL (`KNOBS_TEST_POSTGRES`, default the test server).
//! `KNOBS_LOAD_SECS` (default 10) sets each run's length, `KNOBS_LOAD_CLIENTS`
//! (default 8) the number of concurrent clients. Each client loops: ask one
//! trial, tell it complete with the branin value of its parameters.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../tests/common/pg.rs"]
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
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let results: Vec<(Vec<f64>, Vec<f64>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                let base = server.base.clone();
                let study = study.clone();
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
                            &json!({"n": 1, "client_id": format!("c{c}"), "request_id": format!("r{req}")}),
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
}

fn main() {
    let secs: f64 = std::env::var("KNOBS_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let clients: usize = std::env::var("KNOBS_LOAD_CLIENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    let only: Option<String> = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let dir = tempfile::tempdir().unwrap();
    for optimizer in ["random", "bayes"] {
        if only.as_deref().is_some_and(|o| o != optimizer) {
            continue;
        }
        let db = dir.path().join(format!("{optimizer}.db"));
        run("sqlite", db.to_str().unwrap(), optimizer, clients, secs);
        // A fresh schema on KNOBS_TEST_POSTGRES (default 127.0.0.1:5432/test), dropped afterwards.
        let schema = pg::TestSchema::new(&format!("bench_{optimizer}"));
        run("postgres", &schema.url, optimizer, clients, secs);
    }
}
