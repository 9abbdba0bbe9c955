//! End-to-end tests of the `knobs` binary, as a user (or cron) runs it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn knobs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_knobs"));
    c.env("KNOBS_LOG", "warn");
    c
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn knobs");
    assert!(
        out.status.success(),
        "knobs failed ({:?}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `knobs run <spec> --storage <db> --out <out>`.
fn run_cmd(spec: &Path, db: &Path, out: &Path) -> Command {
    let mut c = knobs();
    c.arg("run").arg(spec).arg("--storage").arg(db).arg("--out").arg(out);
    c
}

/// Wait until `study` has at least `n` complete trials in `db` (a minute at most).
fn wait_for_complete(db: &Path, study: &str, n: usize) {
    let start = Instant::now();
    while count_complete(db, study) < n {
        assert!(start.elapsed() < Duration::from_secs(60), "{study}: no {n} complete trials within a minute");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("examples")).into_iter().flatten())
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_config_validates_and_runs_with_a_small_budget() {
    let files = configs();
    assert!(files.len() >= 3, "configs/ should hold the quickstart, examples and a command example");
    for file in files {
        let tmp = tempfile::tempdir().unwrap();
        run_ok(knobs().arg("validate").arg(&file));
        let trials = if file.to_string_lossy().contains("sqlite") { "4" } else { "24" };
        let out = run_ok(
            knobs()
                .arg("run")
                .arg(&file)
                .args(["--trials", trials, "--json", "--storage"])
                .arg(tmp.path().join("k.db"))
                .arg("--out")
                .arg(tmp.path()),
        );
        let v: Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: not JSON ({e}): {out}", file.display()));
        let recs =
            v["recommendations"].as_array().unwrap_or_else(|| panic!("{}: no recommendations array", file.display()));
        // A Pareto study recommends its front instead of a ranking.
        let front = v["pareto_front"].as_array().map_or(0, Vec::len);
        assert!(!recs.is_empty() || front > 0, "{}: no recommendation", file.display());
        assert_eq!(v["run"]["total_trials"].as_u64(), Some(trials.parse().unwrap()), "{}", file.display());
        let name = v["study"].as_str().unwrap();
        assert!(tmp.path().join(name).join("recommendations.yaml").is_file());
        assert!(tmp.path().join(name).join("recommendations.json").is_file());
    }
}

#[test]
fn validate_reports_every_problem_of_a_file_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yaml");
    std::fs::write(
        &bad,
        r#"
name: bad
space:
  - {name: pool, type: int, low: 10, high: 1, default: 5}
  - {name: ttl, type: float, low: 0, high: 100, log: true}
  - {name: pool, type: float, low: 0, high: .inf}
  - {name: mode, type: categorical, choices: [a, 1]}
  - {name: sz, type: int, low: 1, high: 10, step: 0, colour: red}
  - {name: "", type: bool}
optimizer: simulated_annealing
evaluator: {type: function, name: branin}
budget: {trials: 0, tim: 5m}
confirm: {top: 0, repeats: 1, budget_share: 2, when: maybe, rounds: 3}
"#,
    )
    .unwrap();
    let out = knobs().args(["validate", "--json"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let paths: Vec<String> =
        v["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap().to_string()).collect();
    for expected in [
        "space.pool.low",
        "space.ttl.low",
        "space.pool.name",
        "space.pool.high",
        "space.mode.choices",
        "space.sz.step",
        "space.sz.colour",
        "space[5].name",
        "optimizer.name",
        "budget.trials",
        "budget.tim",
        "confirm.top",
        "confirm.repeats",
        "confirm.budget_share",
        "confirm.when",
        "confirm.rounds",
    ] {
        assert!(paths.iter().any(|p| p == expected), "missing problem at {expected}; got {paths:?}");
    }
    // Human form too, each problem on its own line.
    let out = knobs().arg("validate").arg(&bad).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("must be > 0 for a log scale (got 0)"), "{text}");
    assert!(text.contains("did you mean `time`?"), "{text}");
}

/// A spec whose evaluator is a real program that takes a while per trial.
fn slow_spec(dir: &Path, name: &str, trials: u64, sleep_s: f64) -> PathBuf {
    let script = dir.join("eval.py");
    std::fs::write(
        &script,
        format!(
            "import sys, json, time\nx = [float(a) for a in sys.argv[1:]]\ntime.sleep({sleep_s})\n\
             print('working...')\nprint(json.dumps({{'value': sum((v - 0.3 * (i + 1)) ** 2 for i, v in enumerate(x))}}))\n"
        ),
    )
    .unwrap();
    let spec = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &spec,
        format!(
            r#"
name: {name}
seed: 3
space:
  - {{name: a, type: float, low: -1, high: 1, default: 0.5}}
  - {{name: b, type: float, low: -1, high: 1, default: 0.5}}
  - {{name: c, type: int, low: -5, high: 5, default: 0}}
evaluator:
  type: command
  command: [python3, eval.py, "{{a}}", "{{b}}", "{{c}}"]
  timeout_s: 30
optimizer: cmaes
budget: {{trials: {trials}}}
parallelism: 2
"#
        ),
    )
    .unwrap();
    spec
}

fn stored_trials(db: &Path, study: &str) -> Vec<Value> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT t.number, t.state, t.config, t.metrics FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.name = ?1 ORDER BY t.number")
        .unwrap();
    stmt.query_map([study], |r| {
        Ok(serde_json::json!({
            "number": r.get::<_, i64>(0)?,
            "state": r.get::<_, String>(1)?,
            "config": r.get::<_, String>(2)?,
            "metrics": r.get::<_, Option<String>>(3)?,
        }))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

fn count_complete(db: &Path, study: &str) -> usize {
    if !db.exists() {
        return 0;
    }
    let Ok(conn) = rusqlite::Connection::open(db) else { return 0 };
    conn.query_row(
        "SELECT count(*) FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.name = ?1 AND t.state = 'complete'",
        [study],
        |r| r.get::<_, i64>(0),
    )
    .unwrap_or(0) as usize
}

#[test]
fn sigkill_then_resume_loses_nothing_and_continues_the_same_trajectory() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = slow_spec(tmp.path(), "killme", 40, 0.05);

    // Uninterrupted reference run.
    let ref_db = tmp.path().join("ref.db");
    run_ok(run_cmd(&spec, &ref_db, tmp.path()).arg("--json"));
    let reference = stored_trials(&ref_db, "killme");
    assert_eq!(reference.len(), 40);

    // Killed run: SIGKILL once some trials are stored, mid-flight.
    let db = tmp.path().join("k.db");
    let mut child = run_cmd(&spec, &db, tmp.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_complete(&db, "killme", 9);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = stored_trials(&db, "killme");
    assert!(before.len() < 40, "the run finished before it was killed; slow the evaluator");

    // Without --resume: refused, nothing touched.
    let out = knobs().arg("run").arg(&spec).arg("--storage").arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));

    run_ok(run_cmd(&spec, &db, tmp.path()).arg("--resume").arg("--json"));
    let after = stored_trials(&db, "killme");
    assert_eq!(after.len(), 40, "the resumed study must end with the budget's trials");
    for t in &before {
        if t["state"] == "complete" {
            let n = t["number"].as_u64().unwrap() as usize;
            assert_eq!(&after[n], t, "a completed trial changed on resume");
        }
    }
    assert!(after.iter().all(|t| t["state"] == "complete"));
    // Same configurations and metrics as the run that was never interrupted.
    let strip = |v: &[Value]| v.iter().map(|t| (t["config"].clone(), t["metrics"].clone())).collect::<Vec<_>>();
    assert_eq!(strip(&after), strip(&reference), "resumed trajectory differs from the uninterrupted one");
}

#[test]
fn a_second_run_on_a_held_study_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = slow_spec(tmp.path(), "held", 30, 0.2);
    let db = tmp.path().join("k.db");
    let mut first = run_cmd(&spec, &db, tmp.path()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_complete(&db, "held", 1);
    let out = knobs().arg("run").arg(&spec).arg("--resume").arg("--storage").arg(&db).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Without --resume too: the live run is what stands in the way, not the flag.
    let plain = knobs().arg("run").arg(&spec).arg("--storage").arg(&db).output().unwrap();
    let plain_err = String::from_utf8_lossy(&plain.stderr);
    assert_eq!(plain.status.code(), Some(3), "{plain_err}");
    assert!(plain_err.contains("pid") && !plain_err.contains("add --resume"), "{plain_err}");
    // A cron line appending `--json` output to a log records the refusal too.
    let json = knobs().arg("run").arg(&spec).args(["--resume", "--json", "--storage"]).arg(&db).output().unwrap();
    first.kill().unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).expect("one JSON object on stdout");
    assert_eq!(
        (json.status.code(), v["exit_code"].as_i64(), v["ok"].as_bool()),
        (Some(3), Some(3), Some(false)),
        "{v}"
    );
    first.wait().unwrap();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("pid"), "the message should say which process holds the study: {err}");
}

#[test]
fn ctrl_c_stops_after_the_trials_in_flight_and_resume_finishes() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = slow_spec(tmp.path(), "sigint", 30, 0.05);
    let db = tmp.path().join("k.db");
    let child = run_cmd(&spec, &db, tmp.path()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_for_complete(&db, "sigint", 5);
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    let stored = stored_trials(&db, "sigint");
    assert!(stored.iter().all(|t| t["state"] == "complete"), "Ctrl-C must let the trials in flight finish");
    assert!(stored.len() < 30);
    run_ok(run_cmd(&spec, &db, tmp.path()).arg("--resume"));
    assert_eq!(stored_trials(&db, "sigint").len(), 30);
}

#[test]
fn recommend_and_studies_read_the_stored_study() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.yaml");
    let db = tmp.path().join("k.db");
    run_ok(
        knobs()
            .arg("run")
            .arg(&spec)
            .args(["--trials", "30", "--json", "--storage"])
            .arg(&db)
            .arg("--out")
            .arg(tmp.path()),
    );
    let v: Value = serde_json::from_str(&run_ok(
        knobs().args(["recommend", "quickstart", "--json", "--top", "3", "--plots", "none", "--storage"]).arg(&db),
    ))
    .unwrap();
    let recs = v["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 3);
    assert!(recs[0]["value"].as_f64().unwrap() <= recs[1]["value"].as_f64().unwrap());
    assert!(v["baseline"]["value"].as_f64().unwrap() >= recs[0]["value"].as_f64().unwrap());
    let table = run_ok(knobs().args(["recommend", "quickstart", "--storage"]).arg(&db).arg("--out").arg(tmp.path()));
    assert!(table.contains("base") && table.contains("pool_size"), "{table}");
    let list: Value = serde_json::from_str(&run_ok(knobs().args(["studies", "--json", "--storage"]).arg(&db))).unwrap();
    assert_eq!(list[0]["name"], "quickstart");
    assert_eq!(list[0]["trials"], 30);
    let out = knobs().args(["recommend", "nosuch", "--storage"]).arg(&db).output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("quickstart"), "should list the studies that exist");
}

#[test]
fn run_and_recommend_write_a_convergence_plot_beside_the_recommendations() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/quickstart.yaml");
    let db = tmp.path().join("k.db");
    let out = tmp.path().join("out");

    // Default: SVG, named in the JSON with the recommendations files.
    let v: Value = serde_json::from_str(&run_ok(run_cmd(&spec, &db, &out).args(["--trials", "20", "--json"]))).unwrap();
    let dir = out.join("quickstart");
    let svg_path = dir.join("convergence.svg");
    assert!(dir.join("recommendations.json").is_file());
    assert_eq!(v["files"]["convergence"].as_str(), Some(svg_path.to_str().unwrap()), "{}", v["files"]);
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("quickstart: minimize value") && svg.contains("baseline ("));

    // `recommend` redraws it from the stored study, here as PNG, and says where.
    let png_dir = tmp.path().join("png");
    let text = run_ok(
        knobs().args(["recommend", "quickstart", "--plots", "png", "--storage"]).arg(&db).arg("--out").arg(&png_dir),
    );
    let png_path = png_dir.join("quickstart/convergence.png");
    assert!(text.contains(&format!("written to {}", png_path.display())), "{text}");
    assert!(std::fs::read(&png_path).unwrap().starts_with(b"\x89PNG\r\n\x1a\n"));

    // --plots none: the recommendations, and no plot of any format.
    let none = tmp.path().join("none");
    let v: Value = serde_json::from_str(&run_ok(
        knobs()
            .arg("run")
            .arg(&spec)
            .args(["--trials", "20", "--json", "--plots", "none", "--storage", "memory:", "--out"])
            .arg(&none),
    ))
    .unwrap();
    assert!(v["files"]["convergence"].is_null(), "{}", v["files"]);
    let written: Vec<String> = std::fs::read_dir(none.join("quickstart"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(written.iter().any(|f| f == "recommendations.yaml"), "{written:?}");
    assert!(!written.iter().any(|f| f.starts_with("convergence")), "--plots none wrote {written:?}");
}

/// A `knobs stdio` process and its pipes: one JSON line in, one out.
struct StdioSession {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
    optimizer: String,
}

impl StdioSession {
    fn start(optimizer: &str) -> StdioSession {
        let mut child = knobs()
            .args(["stdio", "--optimizer", optimizer])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        StdioSession { child, stdin, stdout, optimizer: optimizer.into() }
    }

    fn call(&mut self, msg: &str) -> Value {
        self.stdin.write_all(msg.as_bytes()).unwrap();
        self.stdin.write_all(b"\n").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{}: bad reply {line:?}: {e}", self.optimizer))
    }
}

#[test]
fn stdio_protocol_round_trip() {
    for optimizer in knobs::optim::names() {
        let mut session = StdioSession::start(optimizer);
        let mut call = |msg: &str| session.call(msg);
        let init = r#"{"op":"init","protocol":1,"budget":40,"seed":3,"direction":"minimize","space":{"params":[
            {"name":"pool_size","type":"int","low":1,"high":256,"log":false},
            {"name":"cache_ttl_s","type":"float","low":1.0,"high":86400.0,"log":true},
            {"name":"gc_threshold","type":"int","low":100,"high":100000,"log":true},
            {"name":"eviction","type":"categorical","choices":["lru","lfu","fifo"]}]}}"#
            .replace('\n', " ");
        let r = call(&init);
        assert_eq!(r["ok"], true, "{optimizer}: {r}");
        assert_eq!(call("this is not json")["ok"], false);
        let mut told = 0;
        while told < 40 {
            let r = call(&format!(r#"{{"op":"ask","n":{}}}"#, 40 - told));
            assert_eq!(r["ok"], true, "{optimizer}: {r}");
            let trials = r["trials"].as_array().unwrap();
            assert!(!trials.is_empty() && trials.len() <= 40 - told);
            let mut results = Vec::new();
            for (i, t) in trials.iter().enumerate() {
                let p = &t["params"];
                let pool = p["pool_size"].as_i64().expect("int as a JSON integer");
                assert!((1..=256).contains(&pool));
                let ttl = p["cache_ttl_s"].as_f64().unwrap();
                assert!((1.0..=86400.0).contains(&ttl));
                assert!(["lru", "lfu", "fifo"].contains(&p["eviction"].as_str().unwrap()));
                let value = if i == 0 { Value::Null } else { serde_json::json!((pool as f64 - 99.0).abs() + ttl.ln()) };
                results.push(
                    serde_json::json!({"id": t["id"], "value": value, "status": if i == 0 { "failed" } else { "ok" }}),
                );
            }
            told += trials.len();
            let r = call(&serde_json::json!({"op": "tell", "results": results}).to_string());
            assert_eq!(r["ok"], true, "{optimizer}: {r}");
        }
        let r = call(r#"{"op":"tell","results":[{"id":999999,"value":1.0}]}"#);
        assert_eq!(r["ok"], false, "telling an unknown id must be refused");
        let r = call(r#"{"op":"close","recommend":true}"#);
        assert_eq!(r["ok"], true);
        assert!(r["best"]["value"].is_number());
        // Deterministic values: knobs' recommendation is a configuration it measured, as good.
        let rec = &r["recommended"];
        assert!(rec["params"]["pool_size"].is_i64(), "{optimizer}: {r}");
        assert!(rec["value"].as_f64().unwrap() <= r["best"]["value"].as_f64().unwrap() + 1e-9, "{optimizer}: {r}");
        assert!(session.child.wait().unwrap().success());
    }
}

/// Drive `knobs stdio` to the end of its budget with `value(pool_size, draw)` (`draw` a
/// standard normal from a fixed stream) and return the close reply.
fn stdio_session(budget: usize, value: impl Fn(f64, f64) -> f64) -> Value {
    let mut session = StdioSession::start("auto");
    let init = serde_json::json!({"op": "init", "protocol": 1, "budget": budget, "seed": 5, "space": {"params": [
        {"name": "pool_size", "type": "int", "low": 1, "high": 256, "log": false, "default": 99},
        {"name": "ratio", "type": "float", "low": 0.0, "high": 1.0, "log": false, "default": 0.5}]}});
    assert_eq!(session.call(&init.to_string())["ok"], true);
    let mut rng = knobs::rng::Rng::new(11, 1);
    let mut told = 0;
    while told < budget {
        let r = session.call(r#"{"op":"ask","n":1}"#);
        let Some(trials) = r["trials"].as_array().filter(|t| !t.is_empty()) else { break };
        let results: Vec<Value> = trials
            .iter()
            .map(|t| {
                let pool = t["params"]["pool_size"].as_f64().unwrap();
                serde_json::json!({"id": t["id"], "value": value(pool, rng.normal())})
            })
            .collect();
        told += results.len();
        assert_eq!(session.call(&serde_json::json!({"op": "tell", "results": results}).to_string())["ok"], true);
    }
    let r = session.call(r#"{"op":"close","recommend":true}"#);
    assert!(session.child.wait().unwrap().success());
    r
}

#[test]
fn stdio_says_when_to_keep_todays_values() {
    // Today's pool size (99) is the best there is, and measurements are noisy: the reply must
    // say not to deploy, as the table does.
    let r = stdio_session(40, |pool, z| (pool - 99.0).abs() * 0.05 + 10.0 + z);
    assert_eq!(r["better_than_baseline"], false, "{r}");
    let kinds: Vec<&str> = r["warnings"].as_array().unwrap().iter().filter_map(|w| w["kind"].as_str()).collect();
    assert!(kinds.contains(&"no_clear_gain"), "{r}");
    // Far from today's value the gain is real, and the reply says so.
    let r = stdio_session(40, |pool, z| (pool - 200.0).abs() * 0.5 + 10.0 + z);
    assert_eq!(r["better_than_baseline"], true, "{r}");
    assert!(r["recommended"]["improvement"]["probability_better"].as_f64().unwrap() >= 0.8, "{r}");
}

#[test]
fn storage_in_the_spec_is_relative_to_the_spec_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tuning");
    std::fs::create_dir(&dir).unwrap();
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/examples/random.yaml"))
        .unwrap()
        .replace("budget: {trials: 200}", "budget: {trials: 5}\nstorage: here.db\noutput: results");
    std::fs::write(dir.join("spec.yaml"), text).unwrap();
    // Run from another directory, as cron does.
    run_ok(knobs().current_dir(tmp.path()).args(["run", "tuning/spec.yaml", "--json"]));
    assert_eq!(count_complete(&dir.join("here.db"), "example-random"), 5);
    assert!(dir.join("results/example-random/recommendations.json").is_file());
    assert!(!tmp.path().join("knobs.db").exists() && !tmp.path().join("here.db").exists());
}

#[test]
fn every_bad_optimizer_option_is_reported_at_its_path() {
    let tmp = tempfile::tempdir().unwrap();
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/examples/random.yaml")).unwrap();
    for (optimizer, expected) in [
        ("{name: annealing, chains: 0, target_acceptance: 2}", ["optimizer.chains", "optimizer.target_acceptance"]),
        ("{name: cmaes, population: 1, sigma0: 0}", ["optimizer.population", "optimizer.sigma0"]),
        ("{name: swarm, particles: 1, max_velocity: 3}", ["optimizer.particles", "optimizer.max_velocity"]),
        ("{name: genetic, tournament: 0, crossover_rate: 2}", ["optimizer.tournament", "optimizer.crossover_rate"]),
    ] {
        let spec = tmp.path().join("s.yaml");
        std::fs::write(&spec, base.replace("optimizer: random", &format!("optimizer: {optimizer}"))).unwrap();
        let out = knobs().args(["validate", "--json"]).arg(&spec).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{optimizer}");
        let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
        let paths: Vec<&str> = v["problems"].as_array().unwrap().iter().map(|p| p["path"].as_str().unwrap()).collect();
        assert_eq!(paths, expected, "{optimizer}");
    }
}

fn telemetry(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/telemetry").join(file)
}

#[test]
fn forecast_prints_json_and_plots_a_recorded_series() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_ok(
        knobs()
            .args(["forecast", "--kind", "count", "--period", "1d", "--horizon", "2h", "--json", "--out"])
            .arg(dir.path())
            .arg(telemetry("elb_request_count_8c0756.csv")),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let f = &v[0];
    assert_eq!(f["step_s"], 300);
    assert_eq!(f["periods"][0], 288);
    assert_eq!(f["timestamps"].as_array().unwrap().len(), 24, "2 h of 5-minute steps");
    let (p, lo, hi) = (&f["point"], &f["lower"], &f["upper"]);
    for i in 0..24 {
        let (p, lo, hi) = (p[i].as_f64().unwrap(), lo[i].as_f64().unwrap(), hi[i].as_f64().unwrap());
        assert!(0.0 <= lo && lo <= p && p <= hi, "step {i}: {lo} {p} {hi}");
    }
    assert!(dir.path().join("forecast-elb_request_count_8c0756.svg").exists());
}

#[test]
fn forecast_backtest_reports_every_model_and_bad_input_is_clear() {
    let out = run_ok(
        knobs().args(["forecast", "backtest", "--period", "1d", "--json"]).arg(telemetry("art_daily_small_noise.csv")),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let models: Vec<&str> = v.as_array().unwrap().iter().map(|b| b["model"].as_str().unwrap()).collect();
    assert_eq!(models, ["mstl-ets(288)", "seasonal-naive(288)"]);
    assert!(v[0]["mase"].as_f64().unwrap() < v[1]["mase"].as_f64().unwrap(), "{v}");
    let bad = knobs()
        .args(["forecast", "--horizon", "3 parsecs"])
        .arg(telemetry("art_daily_small_noise.csv"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a duration"));
    let missing = knobs().args(["forecast", "no-such-file.csv"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-file.csv"));
}

#[test]
fn telemetry_reports_gaps_outliers_and_changepoints_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let rds = telemetry("rds_cpu_utilization_cc0c53.csv");
    let text = run_ok(knobs().args(["telemetry", "--out"]).arg(dir.path()).arg(&rds));
    assert!(text.contains("1 gap, 1 empty bucket filled by linear interpolation"), "{text}");
    assert!(text.contains("1 changepoint (level shifts; the series is kept whole):"), "{text}");
    assert!(text.contains("2014-02-25 06:30:00  level"), "{text}");
    assert!(dir.path().join("telemetry-rds_cpu_utilization_cc0c53.svg").exists());

    let out = run_ok(
        knobs()
            .args(["telemetry", "--json", "--plots", "none"])
            .arg(&rds)
            .arg(telemetry("elb_request_count_8c0756.csv")),
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let rds = &v[0]["series"][0];
    assert_eq!(rds["changepoints"].as_array().unwrap().len(), 1);
    assert!(
        rds["changepoints"][0]["after"].as_f64().unwrap() > 2.0 * rds["changepoints"][0]["before"].as_f64().unwrap()
    );
    assert_eq!(v[1]["series"][0]["changepoints"].as_array().unwrap().len(), 0);
    assert_eq!(v[1]["series"][0]["missing_buckets"], 8);

    // A bad setting names the flag's field and exits 2.
    let bad = knobs()
        .args(["telemetry", "--min-change=-1", "--plots", "none"])
        .arg(telemetry("rds_cpu_utilization_cc0c53.csv"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("changepoints.min_change"));
}

#[test]
fn warm_start_re_evaluates_the_earlier_studys_best_first_and_cron_may_keep_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("k.db");
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/examples/random.yaml")).unwrap();
    let old = tmp.path().join("old.yaml");
    std::fs::write(&old, base.replace("name: example-random", "name: last-month").replace("trials: 200", "trials: 40"))
        .unwrap();
    run_ok(run_cmd(&old, &db, tmp.path()).args(["--plots", "none"]));
    let new = tmp.path().join("new.yaml");
    std::fs::write(&new, base.replace("name: example-random", "name: this-month").replace("seed: 3", "seed: 4"))
        .unwrap();

    let storage = knobs::storage::open(db.to_str().unwrap()).unwrap();
    let mut earlier = storage.trials("last-month").unwrap();
    earlier.sort_by(|a, b| a.metrics["value"].total_cmp(&b.metrics["value"]));
    let out = run_ok(run_cmd(&new, &db, tmp.path()).args([
        "--trials",
        "10",
        "--warm-start",
        "last-month",
        "--warm-start-top",
        "3",
        "--json",
        "--plots",
        "none",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["run"]["new_trials"], 10);
    let trials = storage.trials("this-month").unwrap();
    // The first batch is the earlier study's three best, in order, as points the optimizer did not propose.
    let first: Vec<_> = trials.iter().filter(|t| t.batch == trials[0].batch).collect();
    assert_eq!(first.len(), 3);
    for (t, e) in first.iter().zip(&earlier) {
        assert_eq!(t.config, e.config);
        assert_eq!(t.ticket, None);
        assert_eq!(t.metrics["value"], e.metrics["value"], "re-measured: branin is deterministic");
    }
    assert!(trials[3..].iter().all(|t| t.ticket.is_some()), "then the optimizer's own points");

    // The same cron line again: the study has trials, the flag is ignored, 5 more are added.
    let out = run_ok(run_cmd(&new, &db, tmp.path()).args([
        "--resume",
        "--add-trials",
        "5",
        "--warm-start",
        "last-month",
        "--json",
        "--plots",
        "none",
    ]));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["run"]["new_trials"].as_u64(), v["run"]["total_trials"].as_u64()), (Some(5), Some(15)));

    // An unknown earlier study is a clear error.
    let other = tmp.path().join("other.yaml");
    std::fs::write(&other, base.replace("name: example-random", "name: fresh")).unwrap();
    let out = run_cmd(&other, &db, tmp.path()).args(["--warm-start", "nope"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("study `nope` does not exist"));
}

#[test]
fn validate_checks_relations_against_the_space_and_the_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("rel.yaml");
    std::fs::write(
        &spec,
        "space:\n  - {name: young_mb, type: int, low: 16, high: 4096, default: 512}\n  \
         - {name: heap_mb, type: int, low: 64, high: 8192, default: 256}\n  \
         - {name: mode, type: categorical, choices: [a, b], default: a}\n\
         relations: [\"young_mb < heap_mb\", \"mode < 3\", \"young < heap_mb\"]\n\
         evaluator: {type: function, name: branin}\n",
    )
    .unwrap();
    let out = knobs().args(["validate", "--json"]).arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    let problems: Vec<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}: {}", p["path"].as_str().unwrap(), p["message"].as_str().unwrap()))
        .collect();
    let has = |s: &str| problems.iter().any(|p| p.starts_with(s));
    assert!(has("relations[1]: `mode` in `mode < 3` is not numeric"), "{problems:?}");
    assert!(has("relations[2]: `young` in `young < heap_mb` is not a parameter"), "{problems:?}");
    assert!(has("relations[0]: the defaults (the baseline) break `young_mb < heap_mb`"), "{problems:?}");
}
