//! The command evaluator against small shell and Python programs written to
//! a temporary directory: metrics on stdout or in a file, substitution of
//! arguments and environment, and every way a run can go wrong.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use knobs::error::Problem;
use knobs::eval::command::{CommandEvaluator, CommandSpec, MetricsSource};
use knobs::eval::{EvalContext, EvalError, Evaluator, EvaluatorSpec, Measurement};
use knobs::space::{Config, Space, Value};
use tempfile::TempDir;

fn space(yaml: &str) -> Space {
    Space::parse(yaml, "test").unwrap_or_else(|e| panic!("{e}"))
}

fn one_param() -> Space {
    space("- {name: x, type: float, low: 0, high: 1}\n")
}

fn config(pairs: &[(&str, Value)]) -> Config {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

fn x(v: f64) -> Config {
    config(&[("x", Value::Float(v))])
}

fn ctx(dir: &Path, trial: u64) -> EvalContext {
    EvalContext { study: "s1".into(), trial, base_dir: dir.to_path_buf() }
}

/// A spec running `sh script.sh args...` with the script's text written to
/// the directory (running `sh` keeps the test free of exec-while-writing races).
fn sh(dir: &TempDir, script: &str, args: &[&str]) -> CommandSpec {
    std::fs::write(dir.path().join("script.sh"), script).unwrap();
    let mut command = vec!["sh".to_string(), "script.sh".to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    CommandSpec::new(command)
}

fn build(spec: &CommandSpec, space: &Space) -> CommandEvaluator {
    CommandEvaluator::new(spec, space).unwrap_or_else(|e| panic!("{e}"))
}

/// Evaluate, retrying a transient error (a freshly written executable can be
/// briefly busy while another test thread forks).
fn run(ev: &CommandEvaluator, c: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError> {
    for _ in 0..5 {
        match ev.evaluate(c, ctx) {
            Err(EvalError::Transient(_)) => std::thread::sleep(Duration::from_millis(50)),
            other => return other,
        }
    }
    ev.evaluate(c, ctx)
}

fn invalid(r: Result<Measurement, EvalError>) -> String {
    match r {
        Err(EvalError::Invalid(reason)) => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn problems(spec: &CommandSpec, space: &Space) -> Vec<Problem> {
    let mut p = Vec::new();
    spec.check(space, &mut p);
    p
}

/// A process is gone once /proc has no entry for it or it is a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next());
            state != Some('Z')
        }
    }
}

pub(crate) fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

pub(crate) fn read_pid(path: &Path) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------
// Success paths.
// ---------------------------------------------------------------------------

#[test]
fn metrics_are_the_last_json_object_line_of_stdout() {
    let dir = TempDir::new().unwrap();
    let spec = sh(
        &dir,
        r#"echo "starting with x=$1"
echo '{"latency_ms": 99}'
echo 'progress: {not json}'
echo '{"latency_ms": 12.5, "throughput": 100, "big": 1e300}'
echo '[1, 2, 3]'
echo "done" >&2
echo "bye"
"#,
        &["{x}"],
    );
    let ev = build(&spec, &one_param());
    let m = run(&ev, &x(0.25), &ctx(dir.path(), 0)).unwrap();
    assert_eq!(m.metrics.len(), 3, "{:?}", m.metrics);
    assert_eq!(m.metrics["latency_ms"], 12.5);
    assert_eq!(m.metrics["throughput"], 100.0);
    assert_eq!(m.metrics["big"], 1e300);
    assert!(m.elapsed > Duration::ZERO);
}

#[test]
fn metrics_from_a_file_in_the_workdir() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("work/out")).unwrap();
    std::fs::write(
        dir.path().join("work/bench.sh"),
        "echo 'not metrics'\nprintf '{\"cost\": %s,\\n \"trial\": %s}\\n' \"$1\" \"$KNOBS_TRIAL\" > \"out/$KNOBS_TRIAL.json\"\n",
    )
    .unwrap();
    let mut spec = CommandSpec::new(vec!["sh".into(), "bench.sh".into(), "{x}".into()]);
    spec.workdir = Some("work".into());
    spec.metrics = MetricsSource::File("out/{trial}.json".into());
    let ev = build(&spec, &one_param());
    let m = run(&ev, &x(0.5), &ctx(dir.path(), 7)).unwrap();
    assert_eq!(m.metrics["cost"], 0.5);
    assert_eq!(m.metrics["trial"], 7.0);

    // A file left from before that the run does not rewrite is not taken.
    std::fs::write(dir.path().join("work/stale.sh"), "exit 0\n").unwrap();
    std::fs::write(dir.path().join("work/out/8.json"), "{\"cost\": 1}").unwrap();
    let mut stale = spec.clone();
    stale.command = vec!["sh".into(), "stale.sh".into()];
    let reason = invalid(run(&build(&stale, &one_param()), &x(0.5), &ctx(dir.path(), 8)));
    assert!(reason.contains("did not write its metrics file") && reason.contains("unchanged"), "{reason}");
    // ... nor a file that does not exist.
    let reason = invalid(run(&build(&stale, &one_param()), &x(0.5), &ctx(dir.path(), 9)));
    assert!(reason.contains("did not write its metrics file") && reason.contains("9.json"), "{reason}");

    // A file that is not a JSON object.
    std::fs::write(dir.path().join("work/bad.sh"), "echo 'cost=3' > out/10.json\n").unwrap();
    let mut bad = spec.clone();
    bad.command = vec!["sh".into(), "bad.sh".into()];
    let reason = invalid(run(&build(&bad, &one_param()), &x(0.5), &ctx(dir.path(), 10)));
    assert!(reason.contains("not a JSON object") && reason.contains("cost=3"), "{reason}");
}

#[test]
fn arguments_and_environment_are_substituted_literally() {
    let dir = TempDir::new().unwrap();
    let s = space(
        r#"
- {name: ratio, type: float, low: 0, high: 1}
- {name: pool, type: int, low: 1, high: 512}
- {name: mode, type: categorical, choices: ["a b; touch canary", "$(touch canary)", plain]}
- {name: on, type: bool}
- {name: cache.ttl-s, type: float, low: 1, high: 1e9, log: true}
- {name: extra, type: int, low: 0, high: 9, when: {mode: plain}}
"#,
    );
    let mut spec = sh(
        &dir,
        r#"printf '%s\n' "$@" > args.txt
env | grep -E '^(KNOBS_|MY_)' | sort > env.txt
echo '{"ok": 1}'
"#,
        &["--ratio={ratio}", "{pool}", "{mode}", "{on}", "{cache.ttl-s}", "{{literal}}", "t{trial}", "[{extra}]"],
    );
    spec.env.insert("MY_POOL".into(), "pool={pool} trial={trial}".into());
    spec.params_env = true;
    let ev = build(&spec, &s);
    let c = config(&[
        ("ratio", Value::Float(0.1)),
        ("pool", Value::Int(42)),
        ("mode", Value::Str("a b; touch canary".into())),
        ("on", Value::Bool(true)),
        ("cache.ttl-s", Value::Float(3600.0000001)),
    ]);
    run(&ev, &c, &ctx(dir.path(), 3)).unwrap();
    let args = std::fs::read_to_string(dir.path().join("args.txt")).unwrap();
    let args: Vec<&str> = args.lines().collect();
    assert_eq!(
        args,
        vec!["--ratio=0.1", "42", "a b; touch canary", "true", "3600.0000001", "{literal}", "t3", "[]"],
        "args as received"
    );
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    let env: Vec<&str> = env.lines().collect();
    for want in [
        "KNOBS_PARAM_CACHE_TTL_S=3600.0000001",
        "KNOBS_PARAM_MODE=a b; touch canary",
        "KNOBS_PARAM_ON=true",
        "KNOBS_PARAM_POOL=42",
        "KNOBS_PARAM_RATIO=0.1",
        "KNOBS_STUDY=s1",
        "KNOBS_TRIAL=3",
        "MY_POOL=pool=42 trial=3",
    ] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert!(!env.iter().any(|l| l.starts_with("KNOBS_PARAM_EXTRA")), "inactive parameter passed: {env:?}");

    // Floats in shortest round-trip form, values never reach a shell.
    let c = config(&[
        ("ratio", Value::Float(1.0 / 3.0)),
        ("pool", Value::Int(7)),
        ("mode", Value::Str("$(touch canary)".into())),
        ("on", Value::Bool(false)),
        ("cache.ttl-s", Value::Float(5.0)),
    ]);
    run(&ev, &c, &ctx(dir.path(), 4)).unwrap();
    let args = std::fs::read_to_string(dir.path().join("args.txt")).unwrap();
    assert_eq!(args.lines().next(), Some("--ratio=0.3333333333333333"));
    assert_eq!(args.lines().nth(2), Some("$(touch canary)"));
    assert_eq!(args.lines().nth(4), Some("5"));
    assert!(!dir.path().join("canary").exists(), "a value was interpreted by a shell");
}

#[test]
fn a_program_path_with_a_slash_is_relative_to_the_spec_directory() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let prog = dir.path().join("bin/run");
    std::fs::write(&prog, "#!/bin/sh\necho \"{\\\"x\\\": $1}\"\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    let spec = CommandSpec::new(vec!["./bin/run".into(), "{x}".into()]);
    let ev = build(&spec, &one_param());
    let m = run(&ev, &x(0.75), &ctx(dir.path(), 0)).unwrap();
    assert_eq!(m.metrics["x"], 0.75);
}

#[test]
fn a_relative_spec_directory_works_for_program_and_workdir() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    std::fs::create_dir_all(dir.path().join("bin")).unwrap();
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    let prog = dir.path().join("bin/run");
    std::fs::write(&prog, "#!/bin/sh\necho \"{\\\"in_work\\\": $(basename \"$PWD\" | grep -c '^work$')}\"\n").unwrap();
    std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).unwrap();
    // The same directory, relative to the test's working directory.
    let cwd = std::env::current_dir().unwrap();
    let ups = cwd.components().count() - 1;
    let relative = PathBuf::from("../".repeat(ups)).join(dir.path().strip_prefix("/").unwrap());
    assert!(relative.is_relative() && relative.join("bin/run").exists(), "{}", relative.display());
    let mut spec = CommandSpec::new(vec!["./bin/run".into()]);
    spec.workdir = Some("work".into());
    let ev = build(&spec, &one_param());
    let m = run(&ev, &x(0.5), &ctx(&relative, 0)).unwrap();
    assert_eq!(m.metrics["in_work"], 1.0);
}

// ---------------------------------------------------------------------------
// Failures of one configuration: Invalid, with a reason.
// ---------------------------------------------------------------------------

#[test]
fn non_zero_exit_is_invalid_with_the_tail_of_stderr() {
    let dir = TempDir::new().unwrap();
    let spec =
        sh(&dir, "for i in 1 2 3 4 5 6 7 8; do echo \"err line $i\" >&2; done\necho '{\"v\": 1}'\nexit 3\n", &[]);
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("exited with status 3"), "{reason}");
    assert!(reason.contains("err line 8") && reason.contains("err line 4"), "{reason}");
    assert!(!reason.contains("err line 3"), "more than the last lines quoted: {reason}");
}

#[test]
fn death_by_signal_is_invalid() {
    let dir = TempDir::new().unwrap();
    let spec = sh(&dir, "echo 'about to crash' >&2\nkill -SEGV $$\n", &[]);
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("killed by signal 11 (SIGSEGV"), "{reason}");
    assert!(reason.contains("about to crash"), "{reason}");
}

#[test]
fn nan_infinite_and_non_numeric_metrics_are_invalid() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("emit.py"),
        "import json, sys\nprint('log', file=sys.stderr)\nprint(json.dumps({'ok': 1.0, 'bad': float(sys.argv[1])}))\n",
    )
    .unwrap();
    let s = space("- {name: v, type: categorical, choices: [nan, inf, -inf, '2']}\n");
    let ev = build(&CommandSpec::new(vec!["python3".into(), "emit.py".into(), "{v}".into()]), &s);
    let eval = |v: &str| run(&ev, &config(&[("v", Value::Str(v.into()))]), &ctx(dir.path(), 0));
    let reason = invalid(eval("nan"));
    assert!(reason.contains("`bad` is NaN") && reason.contains("log"), "{reason}");
    let reason = invalid(eval("inf"));
    assert!(reason.contains("`bad` is infinite"), "{reason}");
    let reason = invalid(eval("-inf"));
    assert!(reason.contains("`bad` is negative infinite"), "{reason}");
    assert_eq!(eval("2").unwrap().metrics["bad"], 2.0);

    let spec = sh(&dir, "echo '{\"a\": \"fast\", \"b\": null, \"c\": 1}'\n", &[]);
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(
        reason.contains("`a` is not a number (got \"fast\")") && reason.contains("`b` is not a number"),
        "{reason}"
    );

    let spec = sh(&dir, "echo '{}'\n", &[]);
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("empty"), "{reason}");
}

#[test]
fn garbage_output_is_invalid() {
    let dir = TempDir::new().unwrap();
    let spec = sh(&dir, "echo 'latency: 12ms'\necho \"{'latency': 12}\"\necho 'the end'\n", &[]);
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("no JSON object line") && reason.contains("the end"), "{reason}");
    assert!(reason.contains("{'latency': 12}") && reason.contains("not valid JSON"), "{reason}");

    let spec = sh(&dir, "exit 0\n", &[]);
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("printed nothing on stdout"), "{reason}");
}

#[test]
fn required_metrics_must_be_reported() {
    let dir = TempDir::new().unwrap();
    let mut spec = sh(&dir, "echo '{\"latency_ms\": 3}'\n", &[]);
    spec.metrics_required = vec!["latency_ms".into(), "errors".into(), "cost".into()];
    let ev = build(&spec, &one_param());
    assert_eq!(ev.metrics(), vec!["latency_ms", "errors", "cost"]);
    let reason = invalid(run(&ev, &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("required metrics errors, cost") && reason.contains("reported: latency_ms"), "{reason}");
}

#[test]
fn timeout_kills_the_whole_process_group() {
    let dir = TempDir::new().unwrap();
    let mut spec = sh(&dir, "sleep 60 &\necho $! > grandchild.pid\necho 'waiting' >&2\nsleep 60\n", &[]);
    spec.timeout_s = 1.0;
    let ev = build(&spec, &one_param());
    let start = Instant::now();
    let reason = invalid(run(&ev, &x(0.5), &ctx(dir.path(), 0)));
    let took = start.elapsed();
    assert!(reason.contains("timed out after 1s") && reason.contains("waiting"), "{reason}");
    assert!(took < Duration::from_secs(5), "returned {took:?} after a 1s timeout");
    let pid = read_pid(&dir.path().join("grandchild.pid"));
    assert!(wait_gone(pid), "grandchild {pid} survived the timeout");
}

#[test]
fn leftovers_of_a_finished_run_are_killed_and_do_not_hold_it_up() {
    let dir = TempDir::new().unwrap();
    // The background sleep keeps stdout open; the run must not wait for it.
    let mut spec = sh(&dir, "sleep 60 &\necho $! > grandchild.pid\necho '{\"v\": 1}'\n", &[]);
    spec.timeout_s = 30.0;
    let m = run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)).unwrap();
    assert_eq!(m.metrics["v"], 1.0);
    let pid = read_pid(&dir.path().join("grandchild.pid"));
    assert!(wait_gone(pid), "grandchild {pid} left running");
}

#[test]
fn a_descendant_that_leaves_the_group_holding_stdout_does_not_hang_the_run() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("escape.py"),
        r#"import os, time
pid = os.fork()
if pid == 0:
    os.setsid()
    time.sleep(30)
    os._exit(0)
with open("escaped.pid", "w") as f:
    f.write(str(pid))
print('{"v": 3}', flush=True)
"#,
    )
    .unwrap();
    let mut spec = CommandSpec::new(vec!["python3".into(), "escape.py".into()]);
    spec.timeout_s = 60.0;
    let result = run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0));
    let pid = read_pid(&dir.path().join("escaped.pid"));
    let _ = std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status();
    assert_eq!(result.unwrap().metrics["v"], 3.0);
}

#[test]
fn huge_output_is_capped_without_hanging() {
    let dir = TempDir::new().unwrap();
    // 20 MB on each stream, no newline, then the metrics line: the capture
    // keeps the end, and the program never blocks on a full pipe (the
    // timeout would turn a hang into a failure).
    let script = "head -c 20000000 /dev/zero | tr '\\0' x >&2\nhead -c 20000000 /dev/zero | tr '\\0' y\necho\necho '{\"v\": 2}'\n";
    let mut spec = sh(&dir, script, &[]);
    spec.timeout_s = 120.0;
    let m = run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)).unwrap();
    assert_eq!(m.metrics["v"], 2.0);

    // Garbage past the cap: the reason says how much there was.
    let mut spec = sh(&dir, "head -c 5000000 /dev/zero | tr '\\0' z\nexit 0\n", &[]);
    spec.max_output_bytes = 4096;
    spec.timeout_s = 120.0;
    let reason = invalid(run(&build(&spec, &one_param()), &x(0.5), &ctx(dir.path(), 0)));
    assert!(reason.contains("5000000 bytes, only the last part kept"), "{reason}");
    assert!(reason.len() < 2000, "reason not capped: {} bytes", reason.len());
}

// ---------------------------------------------------------------------------
// The evaluator cannot work at all: Fatal.
// ---------------------------------------------------------------------------

#[test]
fn a_missing_or_non_executable_program_is_fatal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new().unwrap();
    let fatal = |spec: CommandSpec| match build(&spec, &one_param()).evaluate(&x(0.5), &ctx(dir.path(), 0)) {
        Err(EvalError::Fatal(m)) => m,
        other => panic!("expected Fatal, got {other:?}"),
    };
    let m = fatal(CommandSpec::new(vec!["./no-such-program".into()]));
    assert!(m.contains("no-such-program") && m.contains("does not exist"), "{m}");
    let m = fatal(CommandSpec::new(vec!["knobs-no-such-program-on-path".into()]));
    assert!(m.contains("not found on PATH"), "{m}");
    std::fs::write(dir.path().join("plain.txt"), "echo hi\n").unwrap();
    std::fs::set_permissions(dir.path().join("plain.txt"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let m = fatal(CommandSpec::new(vec!["./plain.txt".into()]));
    assert!(m.contains("plain.txt") && m.contains("permission denied"), "{m}");
    let mut spec = CommandSpec::new(vec!["sh".into(), "-c".into(), "true".into()]);
    spec.workdir = Some("missing-dir".into());
    let m = fatal(spec);
    assert!(m.contains("working directory") && m.contains("missing-dir"), "{m}");
}

// ---------------------------------------------------------------------------
// The spec.
// ---------------------------------------------------------------------------

#[test]
fn spec_parses_from_yaml_with_defaults_and_refuses_unknown_fields() {
    let spec: EvaluatorSpec = serde_yaml::from_str("type: command\ncommand: [./bench, '{x}']\n").unwrap();
    let EvaluatorSpec::Command(c) = &spec else { panic!("{spec:?}") };
    assert_eq!(c, &CommandSpec::new(vec!["./bench".into(), "{x}".into()]));
    assert_eq!(c.timeout_s, 600.0);
    assert_eq!(c.max_output_bytes, 1 << 20);
    assert_eq!(c.metrics, MetricsSource::Stdout);

    let yaml = r#"
type: command
command: [python3, bench.py, --ttl, "{x}"]
env: {MODE: fast}
params_env: true
workdir: runs
timeout_s: 30
metrics: {file: "out/{trial}.json"}
max_output_bytes: 65536
metrics_required: [latency_ms]
"#;
    let spec: EvaluatorSpec = serde_yaml::from_str(yaml).unwrap();
    let EvaluatorSpec::Command(c) = &spec else { panic!("{spec:?}") };
    assert_eq!(c.metrics, MetricsSource::File("out/{trial}.json".into()));
    assert_eq!((c.timeout_s, c.max_output_bytes, c.params_env), (30.0, 65536, true));
    assert!(problems(c, &one_param()).is_empty());
    let back: EvaluatorSpec = serde_yaml::from_str(&serde_yaml::to_string(&spec).unwrap()).unwrap();
    assert_eq!(back, spec);
    let json: EvaluatorSpec = serde_json::from_str(&serde_json::to_string(&spec).unwrap()).unwrap();
    assert_eq!(json, spec);
    let stdout: EvaluatorSpec = serde_yaml::from_str("type: command\ncommand: [a]\nmetrics: stdout\n").unwrap();
    assert!(matches!(stdout, EvaluatorSpec::Command(CommandSpec { metrics: MetricsSource::Stdout, .. })));

    let err = serde_yaml::from_str::<EvaluatorSpec>("type: command\ncommand: [a]\ncmd: 'rm -rf /'\n").unwrap_err();
    assert!(err.to_string().contains("cmd"), "{err}");
    let err = serde_yaml::from_str::<EvaluatorSpec>("type: command\ncommand: [a]\nmetrics: stderr\n").unwrap_err();
    assert!(err.to_string().contains("`stdout` or `{file: <path>}`"), "{err}");
    let err = serde_yaml::from_str::<EvaluatorSpec>("type: command\ncommand: [a]\nmetrics: {file: a, path: b}\n")
        .unwrap_err();
    assert!(err.to_string().contains("path"), "{err}");
}

#[test]
fn check_reports_every_problem_with_its_path() {
    let s = space("- {name: pool, type: int, low: 1, high: 8}\n- {name: ratio, type: float, low: 0, high: 1}\n");
    let mut spec = CommandSpec::new(vec!["./bench".into(), "{pool}".into(), "{poool}".into(), "{ratio".into()]);
    spec.env.insert("BAD-NAME".into(), "{pool}".into());
    spec.env.insert("GOOD".into(), "x}".into());
    spec.timeout_s = 0.0;
    spec.max_output_bytes = 10;
    spec.metrics = MetricsSource::File("{nope}.json".into());
    spec.metrics_required = vec!["a".into(), "a".into(), "".into()];
    let p = problems(&spec, &s);
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    let has =
        |path: &str, words: &[&str]| p.iter().any(|p| p.path == path && words.iter().all(|w| p.message.contains(w)));
    assert!(
        has("evaluator.command[2]", &["unknown placeholder `{poool}`", "{trial}", "{pool}", "{ratio}"]),
        "{text:#?}"
    );
    assert!(has("evaluator.command[3]", &["without a matching", "{{"]), "{text:#?}");
    assert!(has("evaluator.env.BAD-NAME", &["not a valid variable name"]), "{text:#?}");
    assert!(has("evaluator.env.GOOD", &["`}` without a matching"]), "{text:#?}");
    assert!(has("evaluator.timeout_s", &["> 0", "got 0"]), "{text:#?}");
    assert!(has("evaluator.max_output_bytes", &["got 10"]), "{text:#?}");
    assert!(has("evaluator.metrics.file", &["`{nope}`"]), "{text:#?}");
    assert!(has("evaluator.metrics_required[1]", &["twice"]), "{text:#?}");
    assert!(has("evaluator.metrics_required[2]", &["empty"]), "{text:#?}");
    assert_eq!(p.len(), 9, "{text:#?}");
    let err = EvaluatorSpec::Command(spec)
        .build(&s, std::path::Path::new("."))
        .err()
        .expect("build refuses a spec with problems");
    // ...and the program, which does not exist, all at once.
    assert!(err.to_string().contains("10 problems"), "{err}");
    assert!(err.to_string().contains("evaluator.command[0]: program ./bench does not exist"), "{err}");

    let p = problems(&CommandSpec::new(vec![]), &s);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "evaluator.command");
    let mut spec = CommandSpec::new(vec!["run".into()]);
    for t in [f64::NAN, -1.0, f64::INFINITY, 1e12] {
        spec.timeout_s = t;
        assert_eq!(problems(&spec, &s).len(), 1, "timeout_s {t}");
    }
}

#[test]
fn check_reports_ambiguous_names() {
    let s = space("- {name: trial, type: int, low: 1, high: 8}\n");
    let p = problems(&CommandSpec::new(vec!["run".into(), "{trial}".into()]), &s);
    assert_eq!(p.len(), 1);
    assert!(p[0].message.contains("ambiguous"), "{}", p[0].message);

    let s = space("- {name: a-b, type: int, low: 1, high: 8}\n- {name: a_b, type: int, low: 1, high: 8}\n");
    let mut spec = CommandSpec::new(vec!["run".into()]);
    assert!(problems(&spec, &s).is_empty());
    spec.params_env = true;
    let p = problems(&spec, &s);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "evaluator.params_env");
    assert!(p[0].message.contains("KNOBS_PARAM_A_B"), "{}", p[0].message);
}

#[test]
fn evaluations_run_in_parallel() {
    let dir = TempDir::new().unwrap();
    let spec = sh(&dir, "echo \"{\\\"t\\\": $KNOBS_TRIAL, \\\"x\\\": $1}\"\n", &["{x}"]);
    let ev = build(&spec, &one_param());
    let results: Vec<(u64, Measurement)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let (ev, dir) = (&ev, dir.path());
                scope.spawn(move || (t, run(ev, &x(t as f64 / 8.0), &ctx(dir, t)).unwrap()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (t, m) in results {
        assert_eq!(m.metrics["t"], t as f64);
        assert_eq!(m.metrics["x"], t as f64 / 8.0);
    }
}
