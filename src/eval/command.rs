//! The command evaluator: runs an external program once per candidate and
//! reads its metrics from stdout or from a file.
//!
//! The program is started directly (never through a shell), in a process
//! group of its own, with a wall-clock timeout that kills the whole group.
//! Captured output is capped; whatever goes wrong with one configuration
//! (exit status, signal, timeout, garbage, NaN) fails that trial with a
//! reason, while a program that cannot be started at all stops the study.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::{EvalContext, EvalError, Evaluator, Measurement};
use crate::error::{Error, Problem, Problems, Result};
use crate::space::{Config, Space};

/// Default wall-clock limit of one run, in seconds.
pub const DEFAULT_TIMEOUT_S: f64 = 600.0;
/// Longest `timeout_s` accepted (7 days).
pub const MAX_TIMEOUT_S: f64 = 7.0 * 24.0 * 3600.0;
/// Default cap on captured stdout and on captured stderr (each), in bytes.
pub const DEFAULT_MAX_OUTPUT_BYTES: u64 = 1 << 20;
/// Bounds of `max_output_bytes`.
pub const MAX_OUTPUT_BYTES_RANGE: (u64, u64) = (1 << 10, 1 << 30);
/// The placeholder for the trial number.
pub const TRIAL_PLACEHOLDER: &str = "trial";
/// Prefix of the per-parameter environment variables (`params_env: true`).
pub const PARAM_ENV_PREFIX: &str = "KNOBS_PARAM_";

/// How long to wait for the output pipes to close after the program ended
/// and its group was killed (a descendant that left the group may hold them).
const PIPE_GRACE: Duration = Duration::from_secs(2);
/// Lines of stderr quoted in a failure reason.
const STDERR_TAIL_LINES: usize = 5;
/// Characters kept of each quoted line.
const QUOTED_LINE_CHARS: usize = 200;

/// The `evaluator:` section for an external program:
///
/// ```yaml
/// evaluator:
///   type: command
///   command: [./bench.sh, --pool, "{pool_size}", --ttl, "{cache_ttl_s}"]
///   env: {BENCH_OUT: "runs/{trial}.json"}
///   timeout_s: 120
///   metrics: {file: "runs/{trial}.json"}
/// ```
///
/// Every string except the keys of `env` is a template: `{name}` is the value
/// of parameter `name` (empty when the parameter is inactive), `{trial}` the
/// trial number, `{{` and `}}` literal braces. Values are written as ints
/// plainly, floats in Rust's shortest round-trip form (`0.1`, `3`, `1e-7` as
/// `0.0000001`), strings and bools as they are. Each element of `command` is
/// one argument as is: no shell, no word splitting, no globbing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program and its arguments. A program containing `/` is resolved
    /// against the spec's directory, a bare name is looked up on `PATH`.
    pub command: Vec<String>,
    /// Extra environment variables (name → template), on top of the
    /// inherited environment. `KNOBS_TRIAL` and `KNOBS_STUDY` are always set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Also pass every active parameter as `KNOBS_PARAM_<NAME>` (the name
    /// upper-cased, characters other than letters, digits and `_` as `_`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub params_env: bool,
    /// Working directory of the program, relative to the spec's directory
    /// (default: the spec's directory). It must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Wall-clock limit of one run in seconds; on expiry the program's whole
    /// process group is killed and the trial fails.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// Where the metrics come from: `stdout` (default) — the last line of
    /// stdout that is a JSON object `{"metric": number, ...}`; other lines
    /// are ignored — or `{file: path}` — a file holding one JSON object,
    /// written by the program (path relative to the working directory).
    #[serde(default)]
    pub metrics: MetricsSource,
    /// Cap on the captured stdout and on the captured stderr (each, bytes).
    /// Output beyond it is read and discarded (the last bytes are kept), so
    /// the program never blocks on a full pipe.
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: u64,
    /// Metrics every run must report; a run missing one fails.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics_required: Vec<String>,
}

fn default_timeout_s() -> f64 {
    DEFAULT_TIMEOUT_S
}

fn default_max_output_bytes() -> u64 {
    DEFAULT_MAX_OUTPUT_BYTES
}

/// Where a command's metrics come from: `stdout` or `{file: path}` in a spec.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MetricsSource {
    /// The last line of stdout that is a JSON object.
    #[default]
    Stdout,
    /// A JSON object in this file (a template, relative to the working
    /// directory), written during the run.
    File(String),
}

const METRICS_EXPECTED: &str = "`stdout` or `{file: <path>}`";

impl Serialize for MetricsSource {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self {
            MetricsSource::Stdout => s.serialize_str("stdout"),
            MetricsSource::File(path) => {
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("file", path)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for MetricsSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MetricsSource;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(METRICS_EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<MetricsSource, E> {
                match v {
                    "stdout" => Ok(MetricsSource::Stdout),
                    other => Err(E::custom(format!("unknown metrics source `{other}`; expected {METRICS_EXPECTED}"))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<MetricsSource, A::Error> {
                use serde::de::Error;
                let mut file = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "file" if file.is_none() => file = Some(map.next_value::<String>()?),
                        "file" => return Err(A::Error::duplicate_field("file")),
                        other => return Err(A::Error::unknown_field(other, &["file"])),
                    }
                }
                file.map(MetricsSource::File).ok_or_else(|| A::Error::missing_field("file"))
            }
        }
        d.deserialize_any(V)
    }
}

impl CommandSpec {
    /// A spec with every optional field at its default.
    pub fn new(command: Vec<String>) -> Self {
        CommandSpec {
            command,
            env: BTreeMap::new(),
            params_env: false,
            workdir: None,
            timeout_s: DEFAULT_TIMEOUT_S,
            metrics: MetricsSource::Stdout,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            metrics_required: Vec::new(),
        }
    }

    /// Check the spec against the space; push every problem found.
    pub fn check(&self, space: &Space, problems: &mut Vec<Problem>) {
        self.compile(space, problems);
    }

    /// Check and compile the templates; `None` when a problem was found.
    fn compile(&self, space: &Space, problems: &mut Vec<Problem>) -> Option<Compiled> {
        let before = problems.len();
        let names: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
        let template = |text: &str, path: String, problems: &mut Vec<Problem>| -> Option<Template> {
            match Template::parse(text) {
                Ok(t) => {
                    t.check(&names, &path, problems);
                    Some(t)
                }
                Err(msg) => {
                    problems.push(Problem::new(path, msg));
                    None
                }
            }
        };

        if self.command.is_empty() {
            problems.push(Problem::new(
                "evaluator.command",
                "is empty; give the program and its arguments, e.g. [./bench.sh, --pool, \"{pool_size}\"]",
            ));
        } else if self.command[0].trim().is_empty() {
            problems.push(Problem::new("evaluator.command[0]", "the program must not be empty"));
        }
        let command: Vec<Option<Template>> = self
            .command
            .iter()
            .enumerate()
            .map(|(i, a)| template(a, format!("evaluator.command[{i}]"), problems))
            .collect();

        let mut env = Vec::new();
        for (var, value) in &self.env {
            let path = format!("evaluator.env.{var}");
            if !valid_env_name(var) {
                problems.push(Problem::new(
                    &path,
                    format!(
                        "`{var}` is not a valid variable name; use letters, digits and `_`, not starting with a digit"
                    ),
                ));
            }
            if let Some(t) = template(value, path, problems) {
                env.push((var.clone(), t));
            }
        }

        let mut params_env = Vec::new();
        if self.params_env {
            let mut seen: BTreeMap<String, &str> = BTreeMap::new();
            for p in &space.params {
                let var = param_env_name(&p.name);
                if let Some(other) = seen.insert(var.clone(), &p.name) {
                    problems.push(Problem::new(
                        "evaluator.params_env",
                        format!("parameters `{other}` and `{}` would both be passed as {var}; rename one", p.name),
                    ));
                }
                params_env.push((p.name.clone(), var));
            }
        }

        let workdir = match &self.workdir {
            Some(w) if w.trim().is_empty() => {
                problems.push(Problem::new(
                    "evaluator.workdir",
                    "must not be empty; leave it out for the spec's directory",
                ));
                None
            }
            Some(w) => template(w, "evaluator.workdir".into(), problems),
            None => None,
        };

        if !self.timeout_s.is_finite() || self.timeout_s <= 0.0 || self.timeout_s > MAX_TIMEOUT_S {
            problems.push(Problem::new(
                "evaluator.timeout_s",
                format!(
                    "must be a number of seconds > 0 and at most {MAX_TIMEOUT_S} (7 days) (got {})",
                    self.timeout_s
                ),
            ));
        }
        let (lo, hi) = MAX_OUTPUT_BYTES_RANGE;
        if !(lo..=hi).contains(&self.max_output_bytes) {
            problems.push(Problem::new(
                "evaluator.max_output_bytes",
                format!("must be between {lo} and {hi} bytes (got {})", self.max_output_bytes),
            ));
        }

        let metrics = match &self.metrics {
            MetricsSource::Stdout => Some(Metrics::Stdout),
            MetricsSource::File(f) if f.trim().is_empty() => {
                problems.push(Problem::new("evaluator.metrics.file", "must name a file, e.g. \"out/{trial}.json\""));
                None
            }
            MetricsSource::File(f) => template(f, "evaluator.metrics.file".into(), problems).map(Metrics::File),
        };

        let mut seen = BTreeSet::new();
        for (i, m) in self.metrics_required.iter().enumerate() {
            if m.trim().is_empty() {
                problems.push(Problem::new(format!("evaluator.metrics_required[{i}]"), "must not be empty"));
            } else if !seen.insert(m) {
                problems
                    .push(Problem::new(format!("evaluator.metrics_required[{i}]"), format!("`{m}` is listed twice")));
            }
        }

        if problems.len() > before {
            return None;
        }
        let mut command = command.into_iter().flatten();
        Some(Compiled {
            program: command.next()?,
            args: command.collect(),
            env,
            params_env,
            workdir,
            timeout: Duration::try_from_secs_f64(self.timeout_s).ok()?,
            metrics: metrics?,
            max_output: usize::try_from(self.max_output_bytes).ok()?,
            required: self.metrics_required.clone(),
        })
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `cache.ttl-s` → `KNOBS_PARAM_CACHE_TTL_S`.
pub fn param_env_name(param: &str) -> String {
    let tail: String =
        param.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{PARAM_ENV_PREFIX}{tail}")
}

// ---------------------------------------------------------------------------
// Templates.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Lit(String),
    Param(String),
    Trial,
}

#[derive(Debug, Clone, PartialEq)]
struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    fn parse(text: &str) -> std::result::Result<Template, String> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    lit.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    lit.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') | None => {
                                return Err(format!(
                                    "`{{` without a matching `}}` in `{text}`; write `{{{{` for a literal brace"
                                ));
                            }
                            Some(ch) => name.push(ch),
                        }
                    }
                    let name = name.trim();
                    if name.is_empty() {
                        return Err(format!("empty placeholder `{{}}` in `{text}`; name a parameter or `{{trial}}`"));
                    }
                    if !lit.is_empty() {
                        pieces.push(Piece::Lit(std::mem::take(&mut lit)));
                    }
                    pieces.push(if name == TRIAL_PLACEHOLDER { Piece::Trial } else { Piece::Param(name.to_string()) });
                }
                '}' => {
                    return Err(format!("`}}` without a matching `{{` in `{text}`; write `}}}}` for a literal brace"));
                }
                _ => lit.push(c),
            }
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Template { pieces })
    }

    fn check(&self, names: &[&str], path: &str, problems: &mut Vec<Problem>) {
        for piece in &self.pieces {
            match piece {
                Piece::Param(p) if !names.contains(&p.as_str()) => {
                    const SHOWN: usize = 30;
                    let mut valid: Vec<String> = std::iter::once(TRIAL_PLACEHOLDER)
                        .chain(names.iter().copied())
                        .take(SHOWN)
                        .map(|n| format!("{{{n}}}"))
                        .collect();
                    if names.len() + 1 > SHOWN {
                        valid.push(format!("and {} more parameters", names.len() + 1 - SHOWN));
                    }
                    problems.push(Problem::new(
                        path,
                        format!("unknown placeholder `{{{p}}}`; valid: {}", valid.join(", ")),
                    ));
                }
                Piece::Trial if names.contains(&TRIAL_PLACEHOLDER) => problems.push(Problem::new(
                    path,
                    "`{trial}` is ambiguous: a parameter is also named `trial`; rename the parameter",
                )),
                _ => {}
            }
        }
    }

    fn render(&self, config: &Config, trial: u64) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Lit(s) => out.push_str(s),
                Piece::Param(p) => {
                    if let Some(v) = config.get(p) {
                        out.push_str(&v.to_string());
                    }
                }
                Piece::Trial => out.push_str(&trial.to_string()),
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The evaluator.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Metrics {
    Stdout,
    File(Template),
}

#[derive(Debug, Clone)]
struct Compiled {
    program: Template,
    args: Vec<Template>,
    env: Vec<(String, Template)>,
    /// (parameter, variable) for `params_env`.
    params_env: Vec<(String, String)>,
    workdir: Option<Template>,
    timeout: Duration,
    metrics: Metrics,
    max_output: usize,
    required: Vec<String>,
}

/// Runs a [`CommandSpec`] once per configuration.
#[derive(Debug, Clone)]
pub struct CommandEvaluator {
    c: Compiled,
}

impl CommandEvaluator {
    /// Build the evaluator; fails with every problem [`CommandSpec::check`] finds.
    pub fn new(spec: &CommandSpec, space: &Space) -> Result<Self> {
        let mut problems = Vec::new();
        match spec.compile(space, &mut problems) {
            Some(c) if problems.is_empty() => Ok(CommandEvaluator { c }),
            _ => {
                if problems.is_empty() {
                    problems.push(Problem::new("evaluator", "could not be compiled"));
                }
                Err(Error::Invalid(Problems { source: "spec".into(), items: problems }))
            }
        }
    }
}

/// What ended the run.
enum End {
    Exited(ExitStatus),
    TimedOut,
}

/// One run, rendered.
struct Run {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    env_remove: Vec<String>,
    cwd: PathBuf,
    metrics_file: Option<PathBuf>,
}

impl Evaluator for CommandEvaluator {
    fn evaluate(&self, config: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError> {
        let run = self.render(config, ctx)?;
        let before = run.metrics_file.as_deref().map(FileState::of);

        let mut cmd = Command::new(&run.program);
        cmd.args(&run.args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        for var in &run.env_remove {
            cmd.env_remove(var);
        }
        cmd.envs(run.env.iter().map(|(k, v)| (k, v)));
        cmd.current_dir(&run.cwd);

        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| spawn_error(&run.program, e))?;
        let (done_tx, done_rx) = mpsc::channel();
        let stdout = child.stdout.take().map(|r| Capture::start(r, self.c.max_output, done_tx.clone()));
        let stderr = child.stderr.take().map(|r| Capture::start(r, self.c.max_output, done_tx));
        let end = wait_and_kill_group(&mut child, start + self.c.timeout);
        let elapsed = start.elapsed();
        let pipes_closed = wait_pipes(&done_rx, [stdout.is_some(), stderr.is_some()].iter().filter(|b| **b).count());
        let stdout = stdout.map(|c| c.take()).unwrap_or_default();
        let stderr = stderr.map(|c| c.take()).unwrap_or_default();

        let fail = |what: String| {
            let mut reason = what;
            if !pipes_closed {
                reason.push_str(
                    "; its output pipes were still open 2s after it ended (a descendant left its process group?)",
                );
            }
            reason.push_str(&stderr.tail_note());
            EvalError::Invalid(reason)
        };
        let status = match end {
            Err(e) => return Err(fail(format!("could not wait for the program: {e}"))),
            Ok(End::TimedOut) => {
                return Err(fail(format!(
                    "timed out after {}s; its process group was killed",
                    self.c.timeout.as_secs_f64()
                )));
            }
            Ok(End::Exited(status)) => status,
        };
        if let Some(sig) = status.signal() {
            let core = if status.core_dumped() { ", core dumped" } else { "" };
            return Err(fail(format!("killed by signal {sig} ({}{core})", signal_name(sig))));
        }
        if !status.success() {
            let code = status.code().map_or_else(|| "unknown".to_string(), |c| c.to_string());
            return Err(fail(format!("exited with status {code}")));
        }

        let metrics = match (&run.metrics_file, before) {
            (Some(path), Some(before)) => read_metrics_file(path, &before, self.c.max_output),
            _ => stdout_metrics(&stdout),
        }
        .map_err(fail)?;
        let missing: Vec<&str> =
            self.c.required.iter().filter(|m| !metrics.contains_key(*m)).map(String::as_str).collect();
        if !missing.is_empty() {
            let reported: Vec<&str> = metrics.keys().map(String::as_str).collect();
            return Err(fail(format!(
                "did not report the required metric{} {} (reported: {})",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if reported.is_empty() { "none".to_string() } else { reported.join(", ") }
            )));
        }
        if !pipes_closed {
            tracing::warn!(
                program = %run.program.display(),
                "output pipes still open 2s after the program ended (a descendant left its process group?)"
            );
        }
        Ok(Measurement::new(metrics, elapsed))
    }

    fn metrics(&self) -> Vec<String> {
        self.c.required.clone()
    }
}

impl CommandEvaluator {
    fn render(&self, config: &Config, ctx: &EvalContext) -> Result<Run, EvalError> {
        let c = &self.c;
        let render = |t: &Template| t.render(config, ctx.trial);
        let no_nul = |what: &str, s: String| {
            if s.contains('\0') {
                Err(EvalError::Invalid(format!("{what} contains a NUL byte after substitution; it cannot be passed")))
            } else {
                Ok(s)
            }
        };
        // Absolute, so that the program and the working directory do not
        // depend on how the child resolves one against the other.
        let base = if ctx.base_dir.as_os_str().is_empty() { PathBuf::from(".") } else { ctx.base_dir.clone() };
        let base = std::path::absolute(&base).unwrap_or(base);
        let base = &base;
        let program = no_nul("the program", render(&c.program))?;
        if program.is_empty() {
            return Err(EvalError::Invalid("the program is empty after substitution (an inactive parameter?)".into()));
        }
        let program = if program.contains('/') { base.join(&program) } else { PathBuf::from(program) };
        let args = c.args.iter().map(|a| no_nul("an argument", render(a))).collect::<Result<Vec<_>, _>>()?;

        let mut env =
            vec![("KNOBS_TRIAL".to_string(), ctx.trial.to_string()), ("KNOBS_STUDY".to_string(), ctx.study.clone())];
        let mut env_remove = Vec::new();
        for (param, var) in &c.params_env {
            match config.get(param) {
                Some(v) => env.push((var.clone(), no_nul(var, v.to_string())?)),
                None => env_remove.push(var.clone()),
            }
        }
        for (var, t) in &c.env {
            env.push((var.clone(), no_nul(var, render(t))?));
        }

        let cwd = match &c.workdir {
            Some(w) => base.join(no_nul("the workdir", render(w))?),
            None => base.clone(),
        };
        if !cwd.is_dir() {
            return Err(EvalError::Fatal(format!("working directory {} does not exist", cwd.display())));
        }
        let metrics_file = match &c.metrics {
            Metrics::Stdout => None,
            Metrics::File(t) => Some(cwd.join(no_nul("the metrics file", render(t))?)),
        };
        Ok(Run { program, args, env, env_remove, cwd, metrics_file })
    }
}

fn spawn_error(program: &Path, e: io::Error) -> EvalError {
    let shown = program.display();
    let on_path = program.components().count() == 1 && !program.is_absolute();
    match e.raw_os_error() {
        _ if e.kind() == io::ErrorKind::NotFound && on_path => {
            EvalError::Fatal(format!("program `{shown}` not found on PATH"))
        }
        _ if e.kind() == io::ErrorKind::NotFound => EvalError::Fatal(format!("program {shown} does not exist")),
        _ if e.kind() == io::ErrorKind::PermissionDenied => {
            EvalError::Fatal(format!("program {shown} cannot be executed (permission denied; is it executable?)"))
        }
        Some(libc::ENOEXEC) => {
            EvalError::Fatal(format!("program {shown} is not an executable format (missing `#!` line?)"))
        }
        // Temporary: the file is being written, or out of processes/memory/fds.
        Some(libc::ETXTBSY | libc::EAGAIN | libc::ENOMEM | libc::EMFILE | libc::ENFILE) => {
            EvalError::Transient(format!("could not start {shown}: {e}"))
        }
        _ => EvalError::Fatal(format!("could not start {shown}: {e}")),
    }
}

// ---------------------------------------------------------------------------
// Waiting, killing, capturing.
// ---------------------------------------------------------------------------

/// Wait until the child ends or the deadline passes, then SIGKILL its whole
/// process group (stragglers included) and reap it. The group is killed
/// while the leader is still unreaped, so its id cannot have been reused.
fn wait_and_kill_group(child: &mut Child, deadline: Instant) -> io::Result<End> {
    let pid = child.id() as libc::pid_t;
    let mut nap = Duration::from_millis(1);
    let end = loop {
        match exited_unreaped(child) {
            Ok(true) => break None,
            Ok(false) => {}
            Err(e) => {
                kill_group(pid);
                let _ = child.wait();
                return Err(e);
            }
        }
        let now = Instant::now();
        if now >= deadline {
            break Some(End::TimedOut);
        }
        thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    };
    kill_group(pid);
    let status = child.wait()?;
    Ok(end.unwrap_or(End::Exited(status)))
}

fn kill_group(pid: libc::pid_t) {
    // Never -1 or -0 (every process / our own group).
    if pid > 1 {
        // SAFETY: kill has no memory-safety preconditions; ESRCH (group gone) is fine.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// Has the child ended? Leaves it a zombie so that its pid (the group id)
/// stays reserved until we reap it.
#[cfg(target_os = "linux")]
fn exited_unreaped(child: &mut Child) -> io::Result<bool> {
    loop {
        // SAFETY: siginfo_t is plain data; waitid writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                child.id() as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: waitid filled `info` (si_pid stays 0 when nothing happened).
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn exited_unreaped(child: &mut Child) -> io::Result<bool> {
    Ok(child.try_wait()?.is_some())
}

/// Wait (a bounded time) for `n` readers to reach end of file.
fn wait_pipes(done: &Receiver<()>, n: usize) -> bool {
    let deadline = Instant::now() + PIPE_GRACE;
    (0..n).all(|_| done.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok())
}

/// The last `cap` bytes of a stream, and how many bytes it carried.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    total: u64,
}

impl Captured {
    fn truncated(&self) -> bool {
        self.total > self.bytes.len() as u64
    }

    /// Lines of the captured text; a first line cut by the cap is dropped.
    fn lines(&self) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.bytes);
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        if self.truncated() && !lines.is_empty() {
            lines.remove(0);
        }
        lines
    }

    /// `; stderr tail: a | b | c`, or nothing when stderr was empty.
    fn tail_note(&self) -> String {
        let lines: Vec<String> = self.lines().into_iter().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            return String::new();
        }
        let tail = &lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..];
        let quoted: Vec<String> = tail.iter().map(|l| clip(l.trim_end())).collect();
        format!("; stderr tail: {}", quoted.join(" | "))
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= QUOTED_LINE_CHARS {
        s.to_string()
    } else {
        let cut: String = s.chars().take(QUOTED_LINE_CHARS).collect();
        format!("{cut}…")
    }
}

/// A reader thread draining one pipe into a capped buffer.
struct Capture {
    shared: Arc<Mutex<Captured>>,
}

impl Capture {
    fn start(mut reader: impl Read + Send + 'static, cap: usize, done: Sender<()>) -> Capture {
        let shared = Arc::new(Mutex::new(Captured::default()));
        let sink = Arc::clone(&shared);
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut c = sink.lock().unwrap_or_else(|e| e.into_inner());
                        c.total += n as u64;
                        c.bytes.extend_from_slice(&buf[..n]);
                        if c.bytes.len() > 2 * cap {
                            let excess = c.bytes.len() - cap;
                            c.bytes.drain(..excess);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let mut c = sink.lock().unwrap_or_else(|e| e.into_inner());
            if c.bytes.len() > cap {
                let excess = c.bytes.len() - cap;
                c.bytes.drain(..excess);
            }
            drop(c);
            let _ = done.send(());
        });
        Capture { shared }
    }

    /// What was captured so far (all of it once the reader is done).
    fn take(self) -> Captured {
        std::mem::take(&mut *self.shared.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

// ---------------------------------------------------------------------------
// Metrics.
// ---------------------------------------------------------------------------

const NAN_MARK: &str = "\u{1}NaN";
const INF_MARK: &str = "\u{1}Infinity";
const NEG_INF_MARK: &str = "\u{1}-Infinity";

/// Parse a JSON object of metrics. `None` when `text` is not a JSON object
/// (Python's bare `NaN` / `Infinity` tokens are understood, to say so).
fn parse_object(text: &str) -> Option<std::result::Result<BTreeMap<String, f64>, String>> {
    let value: serde_json::Value = serde_json::from_str(text).ok().or_else(|| {
        let relaxed = relax_json(text)?;
        serde_json::from_str(&relaxed).ok()
    })?;
    let serde_json::Value::Object(map) = value else { return None };
    let mut metrics = BTreeMap::new();
    let mut bad = Vec::new();
    for (name, v) in map {
        let x = match &v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) if s == NAN_MARK => Some(f64::NAN),
            serde_json::Value::String(s) if s == INF_MARK => Some(f64::INFINITY),
            serde_json::Value::String(s) if s == NEG_INF_MARK => Some(f64::NEG_INFINITY),
            _ => None,
        };
        match x {
            Some(x) if x.is_nan() => bad.push(format!("`{name}` is NaN")),
            Some(x) if x.is_infinite() => {
                bad.push(format!("`{name}` is {}infinite", if x < 0.0 { "negative " } else { "" }))
            }
            Some(x) => {
                metrics.insert(name, x);
            }
            None => bad.push(format!("`{name}` is not a number (got {})", clip(&v.to_string()))),
        }
    }
    Some(if !bad.is_empty() {
        Err(format!("metric {}", bad.join(", metric ")))
    } else if metrics.is_empty() {
        Err("reported an empty metrics object".to_string())
    } else {
        Ok(metrics)
    })
}

/// Replace bare `NaN`, `Infinity`, `-Infinity` outside strings by marker
/// strings; `None` when there was none.
fn relax_json(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let token = [("NaN", NAN_MARK), ("Infinity", INF_MARK), ("-Infinity", NEG_INF_MARK)]
                .into_iter()
                .find(|(t, _)| rest.starts_with(t));
            if let Some((t, mark)) = token {
                out.push_str(&serde_json::Value::String(mark.to_string()).to_string());
                rest = &rest[t.len()..];
                changed = true;
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

fn stdout_metrics(stdout: &Captured) -> std::result::Result<BTreeMap<String, f64>, String> {
    let lines = stdout.lines();
    let mut malformed: Option<&str> = None;
    for line in lines.iter().rev() {
        let l = line.trim();
        if !l.starts_with('{') {
            continue;
        }
        match parse_object(l) {
            Some(result) => return result.map_err(|e| format!("{e} (stdout line `{}`)", clip(l))),
            None if l.ends_with('}') && malformed.is_none() => malformed = Some(l),
            None => {}
        }
    }
    let mut msg = if stdout.total == 0 {
        "printed nothing on stdout; expected a JSON object line of metrics like {\"latency_ms\": 12.5}".to_string()
    } else {
        let last = lines.iter().rev().find(|l| !l.trim().is_empty()).map(|l| clip(l.trim())).unwrap_or_default();
        format!(
            "printed no JSON object line on stdout ({} bytes{}; last line `{last}`); expected a line like {{\"latency_ms\": 12.5}}",
            stdout.total,
            if stdout.truncated() { ", only the last part kept" } else { "" }
        )
    };
    if let Some(m) = malformed {
        msg.push_str(&format!("; `{}` looks like one but is not valid JSON", clip(m)));
    }
    Err(msg)
}

/// Enough of a file's state to tell whether a run rewrote it.
#[derive(Debug, PartialEq)]
enum FileState {
    Absent,
    Present { modified: Option<SystemTime>, len: u64, head: Vec<u8> },
}

impl FileState {
    fn of(path: &Path) -> FileState {
        match std::fs::metadata(path) {
            Err(_) => FileState::Absent,
            Ok(m) => {
                let head = std::fs::File::open(path)
                    .and_then(|f| {
                        let mut v = Vec::new();
                        f.take(64 * 1024).read_to_end(&mut v)?;
                        Ok(v)
                    })
                    .unwrap_or_default();
                FileState::Present { modified: m.modified().ok(), len: m.len(), head }
            }
        }
    }
}

fn read_metrics_file(
    path: &Path,
    before: &FileState,
    cap: usize,
) -> std::result::Result<BTreeMap<String, f64>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("did not write its metrics file {shown} ({e})"))?;
    if meta.len() > cap as u64 {
        return Err(format!("metrics file {shown} is {} bytes, more than the {cap} byte cap", meta.len()));
    }
    if before != &FileState::Absent && FileState::of(path) == *before {
        return Err(format!("did not write its metrics file {shown} (unchanged since before the run)"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("could not read its metrics file {shown}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    match parse_object(text) {
        Some(result) => result.map_err(|e| format!("{e} (metrics file {shown})")),
        None => Err(format!(
            "metrics file {shown} is not a JSON object of metrics like {{\"latency_ms\": 12.5}} (starts with `{}`)",
            clip(text.lines().next().unwrap_or(""))
        )),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGTRAP => "SIGTRAP",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGUSR2 => "SIGUSR2",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGXCPU => "SIGXCPU",
        libc::SIGXFSZ => "SIGXFSZ",
        _ => "signal",
    }
}
