//! `knobs serve` end to end: the real binary on a random loopback port,
//! driven by a real HTTP client (ureq). PostgreSQL tests need the test
//! server (`KNOBS_TEST_POSTGRES`, default 127.0.0.1:5432/test) and fail
//! without it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789abcdef";

/// A running `knobs serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
    agent: ureq::Agent,
}

impl Server {
    fn start(storage: &str, extra: &[&str]) -> Server {
        Server::try_start(storage, extra, Some(TOKEN)).expect("server starts")
    }

    fn try_start(storage: &str, extra: &[&str], token: Option<&str>) -> Result<Server, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_knobs"));
        cmd.args(["serve", "--port", "0", "--storage", storage]).args(extra);
        cmd.env_remove("KNOBS_TOKEN").env("KNOBS_LOG", "knobs=warn");
        if let Some(t) = token {
            cmd.env("KNOBS_TOKEN", t);
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn knobs serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read stdout");
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.wait();
            let mut err = String::new();
            let _ = child.stderr.take().expect("stderr").read_to_string(&mut err);
            return Err(format!("first stdout line: {line:?}; stderr: {err}"));
        };
        // Drain stderr so the server never blocks on a full pipe.
        let mut stderr = child.stderr.take().expect("stderr");
        std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let server = Server { child, base: format!("http://{addr}"), agent };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if server.get("/readyz").0 == 200 {
                return Ok(server);
            }
            assert!(Instant::now() < deadline, "server at {addr} not ready within 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    fn request(&self, method: &str, path: &str, body: Option<&str>, token: Option<&str>) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let result = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (_, body) => {
                let mut r = self.agent.post(&url).header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.send(body.unwrap_or("{}"))
            }
        };
        let mut resp = result.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().unwrap_or_default();
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        self.request("GET", path, None, Some(TOKEN))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.request("POST", path, Some(&body.to_string()), Some(TOKEN))
    }

    fn post_raw(&self, path: &str, body: &str) -> (u16, Value) {
        self.request("POST", path, Some(body), Some(TOKEN))
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spec(name: &str, trials: u64) -> Value {
    json!({
        "name": name,
        "seed": 7,
        "space": [
            {"name": "x", "type": "float", "low": -5.0, "high": 10.0, "default": 2.0},
            {"name": "y", "type": "float", "low": 0.0, "high": 15.0, "default": 5.0},
        ],
        "objectives": [{"metric": "value", "direction": "minimize"}],
        "optimizer": "random",
        "budget": {"trials": trials},
        "evaluator": {"type": "function", "name": "branin"},
    })
}

fn value_of(params: &Value) -> f64 {
    let (x, y) = (params["x"].as_f64().unwrap(), params["y"].as_f64().unwrap());
    (x - 1.0).powi(2) + (y - 4.0).powi(2)
}

fn sqlite_url(dir: &Path) -> String {
    dir.join("knobs.db").display().to_string()
}

fn ask(s: &Server, study: &str, n: u32, request_id: &str) -> (u16, Value) {
    s.post(&format!("/v1/studies/{study}/ask"), &json!({"n": n, "client_id": "c1", "request_id": request_id}))
}

fn tell(s: &Server, study: &str, trial: &Value, value: f64) -> (u16, Value) {
    s.post(
        &format!("/v1/studies/{study}/trials/{}/tell", trial["number"]),
        &json!({"epoch": trial["epoch"], "state": "complete", "metrics": {"value": value}, "elapsed_s": 0.01}),
    )
}

fn assert_error(got: (u16, Value), status: u16, field: Option<&str>) -> String {
    assert_eq!(got.0, status, "{}", got.1);
    let error = got.1["error"].as_str().unwrap_or_else(|| panic!("no `error` in {}", got.1)).to_string();
    if let Some(f) = field {
        assert_eq!(got.1["field"], f, "{}", got.1);
    }
    error
}

#[test]
fn create_ask_tell_recommend() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()), &[]);
    let (status, created) = s.post("/v1/studies", &spec("flow", 12));
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["name"], "flow");
    assert_eq!(created["progress"]["budget"], 12);
    // Creating the same study again is a no-op; a different one under the name is a conflict.
    assert_eq!(s.post("/v1/studies", &spec("flow", 12)).0, 200);
    let mut other = spec("flow", 12);
    other["seed"] = json!(8);
    assert_error(s.post("/v1/studies", &other), 409, None);

    let mut told = 0;
    let mut first = true;
    loop {
        let (status, asked) = ask(&s, "flow", 5, &format!("r{told}"));
        assert_eq!(status, 200, "{asked}");
        let trials = asked["trials"].as_array().unwrap().clone();
        if first {
            assert_eq!(trials.len(), 5);
            assert_eq!(trials[0]["baseline"], true, "the baseline comes first");
            assert_eq!(trials[0]["params"], json!({"x": 2.0, "y": 5.0}));
            first = false;
        }
        if trials.is_empty() {
            assert_eq!(asked["exhausted"], true);
            break;
        }
        for t in &trials {
            let hb =
                s.post(&format!("/v1/studies/flow/trials/{}/heartbeat", t["number"]), &json!({"epoch": t["epoch"]}));
            assert_eq!(hb.0, 200, "{}", hb.1);
            let (status, ack) = tell(&s, "flow", t, value_of(&t["params"]));
            assert_eq!(status, 200, "{ack}");
            told += 1;
        }
    }
    assert_eq!(told, 12, "the budget");

    let (_, study) = s.get("/v1/studies/flow");
    assert_eq!(study["progress"]["complete"], 12);
    assert_eq!(study["progress"]["running"], 0);
    let best = &study["progress"]["best"];
    assert!((best["value"].as_f64().unwrap() - value_of(&best["params"])).abs() < 1e-9, "{best}");
    let (_, list) = s.get("/v1/studies");
    assert_eq!(list["studies"][0]["name"], "flow");
    assert_eq!(list["studies"][0]["complete"], 12);

    // Pages: by number, never more than asked for.
    let (_, p1) = s.get("/v1/studies/flow/trials?limit=5");
    let numbers =
        |p: &Value| p["trials"].as_array().unwrap().iter().map(|t| t["number"].as_u64().unwrap()).collect::<Vec<_>>();
    assert_eq!(numbers(&p1), [0, 1, 2, 3, 4]);
    assert_eq!(p1["next_after"], 4);
    let (_, p3) = s.get("/v1/studies/flow/trials?limit=5&after=9");
    assert_eq!(numbers(&p3), [10, 11]);
    assert!(p3["next_after"].is_null());
    let (_, running) = s.get("/v1/studies/flow/trials?state=running");
    assert!(running["trials"].as_array().unwrap().is_empty());
    assert_error(s.get("/v1/studies/flow/trials?limit=0"), 400, Some("limit"));
    assert_error(s.get("/v1/studies/flow/trials?colour=red"), 400, Some("(query)"));

    // Recommendations: the CLI's JSON, with the baseline and improvement evidence.
    let (status, recs) = s.get("/v1/studies/flow/recommendations?top=3");
    assert_eq!(status, 200, "{recs}");
    assert_eq!(recs["study"], "flow");
    assert_eq!(recs["complete"], 12);
    assert!(recs["baseline"].is_object(), "{recs}");
    let list = recs["recommendations"].as_array().unwrap();
    assert!(!list.is_empty() && list.len() <= 3, "{recs}");
    assert_eq!(list[0]["value"], best["value"], "{recs}");

    let (status, metrics) = s.get("/metrics");
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(text.contains("knobs_tells_total{state=\"complete\"} 12"), "{text}");
    assert!(text.contains("knobs_trials{state=\"complete\"} 12"), "{text}");
    assert!(text.contains("knobs_ask_duration_seconds_count "), "{text}");

    // Closed: no more asks.
    let (status, closed) = s.post("/v1/studies/flow/close", &json!({}));
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["closed"], true);
    assert_error(ask(&s, "flow", 1, "after-close"), 409, None);
}

#[test]
fn a_retried_ask_returns_the_same_trials_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let mut s = Server::start(&url, &[]);
    assert_eq!(s.post("/v1/studies", &spec("idem", 50)).0, 201);
    let (_, first) = ask(&s, "idem", 3, "req-1");
    let (_, again) = ask(&s, "idem", 3, "req-1");
    assert_eq!(again["trials"], first["trials"]);
    assert_eq!(again["replayed"], true);
    // Another request id, or another client with the same request id, gets new trials.
    let (_, next) = ask(&s, "idem", 2, "req-2");
    assert_eq!(next["trials"][0]["number"], 3);
    let (_, other) = s.post("/v1/studies/idem/ask", &json!({"n": 1, "client_id": "c2", "request_id": "req-1"}));
    assert_eq!(other["trials"][0]["number"], 5);
    s.kill();

    let s = Server::start(&url, &[]);
    let (_, after) = ask(&s, "idem", 3, "req-1");
    assert_eq!(after["trials"], first["trials"], "the key survives a restart");
    let (_, trials) = s.get("/v1/studies/idem/trials");
    assert_eq!(trials["trials"].as_array().unwrap().len(), 6, "no trial was added by the retries");
}

#[test]
fn enqueued_configurations_come_first_and_bad_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()), &[]);
    // No evaluator: the API's clients evaluate (`external`).
    let mut external = spec("q", 10);
    external.as_object_mut().unwrap().remove("evaluator");
    let (status, created) = s.post("/v1/studies", &external);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["spec"]["evaluator"], json!({"type": "external"}));
    // Declared metrics are checked against the objectives.
    let mut wrong = spec("q2", 10);
    wrong["evaluator"] = json!({"type": "external", "metrics": ["latency"]});
    let e = assert_error(s.post("/v1/studies", &wrong), 400, None);
    assert!(e.contains("latency"), "{e}");
    // A worker cannot evaluate an external study, and says why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_knobs"))
        .args(["worker", "--study", "q", "--storage", &sqlite_url(dir.path()), "--trials", "1", "--no-wait"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("external"), "{stderr}");
    // `y` left out takes its default (5.0).
    let (status, body) = s.post("/v1/studies/q/enqueue", &json!({"params": {"x": 1.0, "y": 4.0}}));
    assert_eq!((status, body["queued"].as_u64()), (202, Some(1)), "{body}");
    assert_eq!(s.post("/v1/studies/q/enqueue", &json!({"params": {"x": 3.0}})).1["queued"], 2);
    assert_eq!(s.get("/v1/studies/q").1["progress"]["queued"], 2);
    // Unknown, out-of-domain and ill-typed parameters: 400 naming the parameter; nothing queued.
    assert_error(s.post("/v1/studies/q/enqueue", &json!({"params": {"z": 1.0}})), 400, Some("params.z"));
    let e = assert_error(s.post("/v1/studies/q/enqueue", &json!({"params": {"x": 99.0}})), 400, Some("params.x"));
    assert!(e.contains("99"), "{e}");
    assert_error(s.post("/v1/studies/q/enqueue", &json!({"params": {"x": "big"}})), 400, Some("params.x"));
    assert_error(s.post("/v1/studies/q/enqueue", &json!({"params": {}, "extra": 1})), 400, Some("extra"));
    assert_error(s.post("/v1/studies/nope/enqueue", &json!({"params": {}})), 404, None);
    // The baseline first, then the queue in order, then the optimizer.
    let (_, asked) = ask(&s, "q", 4, "a");
    let trials = asked["trials"].as_array().unwrap();
    assert_eq!(trials[0]["baseline"], true);
    assert_eq!(trials[1]["params"], json!({"x": 1.0, "y": 4.0}));
    assert_eq!(trials[2]["params"], json!({"x": 3.0, "y": 5.0}));
    assert_eq!(trials.len(), 4);
    assert_eq!(s.get("/v1/studies/q").1["progress"]["queued"], 0);
    // Their results count like any other: the enqueued (1, 4) is the optimum of value_of.
    for t in trials {
        assert_eq!(tell(&s, "q", t, value_of(&t["params"])).0, 200);
    }
    assert_eq!(ask(&s, "q", 1, "b").0, 200, "the optimizer takes the foreign points");
    assert_eq!(s.get("/v1/studies/q").1["progress"]["best"]["params"], json!({"x": 1.0, "y": 4.0}));
    // A closed study takes no new configurations.
    assert_eq!(s.post("/v1/studies/q/close", &json!({})).0, 200);
    assert_error(s.post("/v1/studies/q/enqueue", &json!({"params": {"x": 0.0}})), 409, None);
}

#[test]
fn finished_reassigned_and_unknown_trials_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()), &[]);
    assert_eq!(s.post("/v1/studies", &spec("r", 10)).0, 201);
    let (_, asked) = ask(&s, "r", 2, "a");
    let t0 = asked["trials"][0].clone();
    let t1 = asked["trials"][1].clone();
    assert_eq!(tell(&s, "r", &t0, 1.0).0, 200);
    // The same tell again (a retry after a lost response) is the same success...
    let (status, again) = tell(&s, "r", &t0, 1.0);
    assert_eq!((status, again["state"].as_str()), (200, Some("complete")), "{again}");
    // ...a different result for a finished trial is not.
    let e = assert_error(tell(&s, "r", &t0, 2.0), 409, None);
    assert!(e.contains("already complete"), "{e}");
    assert_error(s.post("/v1/studies/r/trials/0/heartbeat", &json!({"epoch": 0})), 409, None);
    // A stale epoch: the lease moved on (or never was).
    let stale = json!({"epoch": 3, "state": "failed", "reason": "late"});
    let e = assert_error(s.post("/v1/studies/r/trials/1/tell", &stale), 409, None);
    assert!(e.contains("never given out") && !e.contains("reclaimed"), "{e}");
    assert_error(s.post("/v1/studies/r/trials/1/heartbeat", &json!({"epoch": 3})), 409, None);
    // No body, or the wrong method: still a JSON error that says what to do.
    let e = assert_error(s.post_raw("/v1/studies/r/trials/1/heartbeat", ""), 400, None);
    assert!(e.contains("body is empty"), "{e}");
    let e = assert_error(s.get("/v1/studies/r/trials/1/tell"), 405, None);
    assert!(e.contains("does not take GET"), "{e}");
    // Failed with a reason is fine at the right epoch.
    let failed = json!({"epoch": t1["epoch"], "state": "failed", "reason": "OOM"});
    assert_eq!(s.post("/v1/studies/r/trials/1/tell", &failed).0, 200);
    let (_, page) = s.get("/v1/studies/r/trials?state=failed");
    assert_eq!(page["trials"][0]["reason"], "OOM");
    // Unknown study or trial: 404.
    assert_error(s.get("/v1/studies/nope"), 404, None);
    assert_error(ask(&s, "nope", 1, "x"), 404, None);
    assert_error(tell(&s, "nope", &t0, 1.0), 404, None);
    assert_error(
        s.post("/v1/studies/r/trials/99/tell", &json!({"epoch": 0, "state": "complete", "metrics": {"value": 1.0}})),
        404,
        None,
    );
    assert_error(s.post("/v1/studies/r/trials/99/heartbeat", &json!({"epoch": 0})), 404, None);
    assert_error(s.get("/v1/nothing-here"), 404, None);
    // A complete trial needs the objective's metric.
    let (_, more) = ask(&s, "r", 1, "b");
    let t = &more["trials"][0];
    let missing = json!({"epoch": t["epoch"], "state": "complete", "metrics": {"latency": 1.0}});
    let e = assert_error(s.post(&format!("/v1/studies/r/trials/{}/tell", t["number"]), &missing), 400, Some("metrics"));
    assert!(e.contains("`value`"), "{e}");
}

#[test]
fn malformed_requests_get_the_documented_status() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()), &["--max-body", "65536"]);
    assert_eq!(s.post("/v1/studies", &spec("m", 10)).0, 201);

    let e = assert_error(s.post_raw("/v1/studies/m/ask", "{\"n\": 1,"), 400, None);
    assert!(e.contains("not valid JSON"), "{e}");
    let e = assert_error(
        s.post("/v1/studies/m/ask", &json!({"n": 1, "client_id": "c", "colour": "red"})),
        400,
        Some("colour"),
    );
    assert!(e.contains("unknown field"), "{e}");
    assert_error(s.post("/v1/studies/m/ask", &json!({"n": 0, "client_id": "c"})), 400, Some("n"));
    assert_error(s.post("/v1/studies/m/ask", &json!({"n": 5000, "client_id": "c"})), 400, Some("n"));
    assert_error(s.post("/v1/studies/m/ask", &json!({"n": -1, "client_id": "c"})), 400, Some("n"));
    assert_error(s.post("/v1/studies/m/ask", &json!({"n": 1})), 400, Some("client_id"));
    assert_error(s.post("/v1/studies/m/trials/0/tell", &json!({"epoch": 0, "state": "done"})), 400, Some("state"));
    // A path segment whose percent-encoding is not UTF-8 gets the JSON error too (fuzzing found
    // axum's plain-text answer here).
    for path in ["/v1/studies/m/trials/1%ff/tell", "/v1/studies/%c3%28/ask"] {
        let (status, body) = raw_post(s.addr(), path, "{\"epoch\": 0, \"state\": \"failed\"}", Some(TOKEN));
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("\"error\"") && body.contains("UTF-8"), "{path}: {body}");
    }

    // Spec problems are reported with their field path.
    let mut unknown = spec("u", 10);
    unknown["colour"] = json!("red");
    assert_error(s.post("/v1/studies", &unknown), 400, Some("colour"));
    let mut inverted = spec("inv", 10);
    inverted["space"][0]["low"] = json!(20.0);
    let e = assert_error(s.post("/v1/studies", &inverted), 400, Some("space.x.low"));
    assert!(e.contains("must be <= high"), "{e}");
    // NaN is not JSON: a NaN bound is a malformed body.
    let nan = spec("nan", 10).to_string().replace("-5.0", "NaN");
    assert!(nan.contains("NaN"));
    let e = assert_error(s.post_raw("/v1/studies", &nan), 400, None);
    assert!(e.contains("not valid JSON"), "{e}");
    let mut nameless = spec("x", 10);
    nameless.as_object_mut().unwrap().remove("name");
    assert_error(s.post("/v1/studies", &nameless), 400, Some("name"));
    for bad in ["bad/name", "..", ".", "-x"] {
        assert_error(s.post("/v1/studies", &spec(bad, 10)), 400, Some("name"));
    }
    // A spec from the API cannot say where files go.
    for (field, path) in [("output", "/tmp/evil-out"), ("storage", "/tmp/evil.db")] {
        let mut steer = spec("steer", 10);
        steer[field] = json!(path);
        let e = assert_error(s.post("/v1/studies", &steer), 400, Some(field));
        assert!(e.contains("cannot name files"), "{e}");
    }
    assert_error(s.post_raw("/v1/studies", "[1, 2]"), 400, None);

    // Evaluators that run commands never come from a request.
    let mut command = spec("cmd", 10);
    command["evaluator"] = json!({"type": "command", "command": ["sh", "-c", "touch /tmp/knobs-pwned"]});
    let e = assert_error(s.post("/v1/studies", &command), 400, Some("evaluator"));
    assert!(e.contains("server's --config"), "{e}");
    assert!(s.get("/v1/studies/cmd").0 == 404, "nothing was created");
    let mut unknown_ref = spec("ref", 10);
    unknown_ref["evaluator"] = json!({"ref": "bench"});
    assert_error(s.post("/v1/studies", &unknown_ref), 400, Some("evaluator.ref"));

    // Too large: 413, before the body is parsed.
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(100_000));
    let (status, body) = raw_post(s.addr(), "/v1/studies", &huge, Some(TOKEN));
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"error\""), "{body}");

    // Tokens: missing or wrong is 401; /healthz needs none.
    let e = assert_error(s.request("GET", "/v1/studies", None, None), 401, None);
    assert!(!e.contains(TOKEN));
    assert_error(s.request("GET", "/v1/studies", None, Some("wrong-token-0123456789")), 401, None);
    assert_error(s.request("POST", "/v1/studies", Some(&spec("t", 5).to_string()), None), 401, None);
    assert_error(s.request("GET", "/metrics", None, None), 401, None);
    let (status, health) = s.request("GET", "/healthz", None, None);
    assert_eq!((status, health["status"].as_str()), (200, Some("ok")));
}

/// One POST over a plain socket: the client writes the whole body even when
/// the server answers early, and reads the status and body.
fn raw_post(addr: &str, path: &str, body: &str, token: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).and_then(|_| stream.write_all(body.as_bytes()));
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text)
}

#[test]
fn evaluators_are_named_from_the_server_config() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.yaml");
    std::fs::write(
        &config,
        "evaluators:\n  bench:\n    type: command\n    command: [\"python3\", \"bench.py\", \"--x\", \"{x}\"]\n",
    )
    .unwrap();
    let s = Server::start(&sqlite_url(dir.path()), &["--config", config.to_str().unwrap()]);
    let mut by_ref = spec("byref", 10);
    by_ref["evaluator"] = json!({"ref": "bench"});
    let (status, created) = s.post("/v1/studies", &by_ref);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["spec"]["evaluator"]["type"], "command");
    let mut extra = spec("byref2", 10);
    extra["evaluator"] = json!({"ref": "bench", "command": ["rm", "-rf", "/"]});
    assert_error(s.post("/v1/studies", &extra), 400, Some("evaluator"));
}

#[test]
fn serving_without_a_token_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite_url(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_knobs"))
        .args(["serve", "--port", "0", "--storage", &url])
        .env_remove("KNOBS_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("KNOBS_TOKEN"));
    assert!(out.stdout.is_empty(), "never listened");
    // A token file works; --insecure-no-auth serves without one.
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# ops\n\n{TOKEN}\n")).unwrap();
    let s = Server::try_start(&url, &["--token-file", tokens.to_str().unwrap()], None).unwrap();
    assert_eq!(s.get("/v1/studies").0, 200);
    drop(s);
    let open = Server::try_start(&url, &["--insecure-no-auth"], None).unwrap();
    assert_eq!(open.request("GET", "/v1/studies", None, None).0, 200);
}

#[test]
fn openapi_document_matches_the_checked_in_file() {
    let checked_in = include_str!("../../openapi.json");
    let printed = Command::new(env!("CARGO_BIN_EXE_knobs")).args(["serve", "--print-openapi"]).output().unwrap();
    assert!(printed.status.success());
    let printed = String::from_utf8(printed.stdout).unwrap();
    assert!(
        printed == checked_in,
        "openapi.json is out of date; regenerate it with `cargo run -- serve --print-openapi > openapi.json`"
    );
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&sqlite_url(dir.path()), &[]);
    let (status, served) = s.get("/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(served, serde_json::from_str::<Value>(checked_in).unwrap());
    for path in ["/v1/studies", "/v1/studies/{name}/ask", "/v1/studies/{name}/trials/{number}/tell", "/metrics"] {
        assert!(served["paths"][path].is_object(), "{path} is documented");
    }
}

#[test]
fn postgres_storage_serves_the_same_flow() {
    let schema = crate::pg_schema!("server_flow");
    let s = Server::start(&schema.url, &[]);
    assert_eq!(s.post("/v1/studies", &spec("pgflow", 6)).0, 201);
    let (_, first) = ask(&s, "pgflow", 4, "k");
    assert_eq!(ask(&s, "pgflow", 4, "k").1["trials"], first["trials"]);
    let mut told = 0;
    for round in 0..5 {
        let (_, asked) = ask(&s, "pgflow", 4, &format!("k{round}"));
        let trials: Vec<Value> = if round == 0 { first["trials"].as_array().unwrap().clone() } else { vec![] };
        for t in trials.iter().chain(asked["trials"].as_array().unwrap()) {
            assert_eq!(tell(&s, "pgflow", t, value_of(&t["params"])).0, 200);
            told += 1;
        }
    }
    assert_eq!(told, 6);
    let (_, study) = s.get("/v1/studies/pgflow");
    assert_eq!(study["progress"]["complete"], 6, "{study}");
    let (status, recs) = s.get("/v1/studies/pgflow/recommendations");
    assert_eq!(status, 200, "{recs}");
    assert!(!recs["recommendations"].as_array().unwrap().is_empty());
    assert_eq!(schema.raw().i64("SELECT count(*) FROM claim_keys"), 6);
}

#[test]
fn kill_9_during_tells_loses_no_acknowledged_tell() {
    let dir = tempfile::tempdir().unwrap();
    kill_9_during_tells(&sqlite_url(dir.path()));
    let conn = rusqlite::Connection::open(dir.path().join("knobs.db")).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn kill_9_during_tells_loses_no_acknowledged_tell_in_postgres() {
    let schema = crate::pg_schema!("server_kill");
    kill_9_during_tells(&schema.url);
    // Consistent rows: numbers 0..n once each, every finished trial with its finish time.
    let raw = schema.raw();
    assert_eq!(raw.i64("SELECT count(*) - count(DISTINCT number) FROM trials"), 0);
    assert_eq!(raw.i64("SELECT count(*) - (max(number) + 1) FROM trials"), 0);
    assert_eq!(raw.i64("SELECT count(*) FROM trials WHERE state <> 'running' AND finished_at IS NULL"), 0);
}

/// Stream asks and tells, `kill -9` the server mid-stream, restart it: every
/// acknowledged tell is stored with its value, and the study still serves.
fn kill_9_during_tells(url: &str) {
    let url = url.to_string();
    let s = Arc::new(Mutex::new(Server::start(&url, &[])));
    let (base, addr) = {
        let g = s.lock().unwrap();
        assert_eq!(g.post("/v1/studies", &spec("crash", 100_000)).0, 201);
        (g.base.clone(), g.addr().to_string())
    };
    let acked: Arc<Mutex<Vec<(u64, f64)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // A stream of asks and tells until the server dies (bounded in count and time).
    let streamer = {
        let (acked, stop) = (acked.clone(), stop.clone());
        std::thread::spawn(move || {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into();
            let post = |path: &str, body: Value| -> Option<(u16, Value)> {
                let mut r = agent
                    .post(&format!("{base}{path}"))
                    .header("Authorization", format!("Bearer {TOKEN}"))
                    .header("Content-Type", "application/json")
                    .send(body.to_string())
                    .ok()?;
                let status = r.status().as_u16();
                Some((status, serde_json::from_str(&r.body_mut().read_to_string().ok()?).ok()?))
            };
            let start = Instant::now();
            for i in 0..5000 {
                if stop.load(Ordering::SeqCst) || start.elapsed() > Duration::from_secs(60) {
                    return;
                }
                let Some((200, asked)) =
                    post("/v1/studies/crash/ask", json!({"n": 4, "client_id": "k", "request_id": format!("r{i}")}))
                else {
                    return;
                };
                for t in asked["trials"].as_array().unwrap() {
                    let v = value_of(&t["params"]);
                    let body = json!({"epoch": t["epoch"], "state": "complete", "metrics": {"value": v}});
                    match post(&format!("/v1/studies/crash/trials/{}/tell", t["number"]), body) {
                        Some((200, _)) => acked.lock().unwrap().push((t["number"].as_u64().unwrap(), v)),
                        _ => return,
                    }
                }
            }
        })
    };
    // Let some tells land, then kill -9 mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 40 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    s.lock().unwrap().kill();
    stop.store(true, Ordering::SeqCst);
    streamer.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40, "only {} tells before the kill", acked.len());
    let _ = addr;

    let s = Server::start(&url, &[]);
    let mut stored = std::collections::BTreeMap::new();
    let mut after = String::new();
    loop {
        let (status, page) = s.get(&format!("/v1/studies/crash/trials?state=complete&limit=1000{after}"));
        assert_eq!(status, 200, "{page}");
        for t in page["trials"].as_array().unwrap() {
            stored.insert(t["number"].as_u64().unwrap(), t["metrics"]["value"].as_f64().unwrap());
        }
        match page["next_after"].as_u64() {
            Some(n) => after = format!("&after={n}"),
            None => break,
        }
    }
    for (number, value) in &acked {
        assert_eq!(stored.get(number), Some(value), "acknowledged tell of trial {number} is stored");
    }
    assert_eq!(ask(&s, "crash", 1, "after-restart").0, 200);
}
