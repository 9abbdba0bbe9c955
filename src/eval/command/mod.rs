//! The command evaluator: runs an external program once per candidate and
//! reads its metrics from stdout or from a file.
//!
//! The program is started directly (never through a shell), in a process
//! group of its own, with a wall-clock timeout that kills the whole group;
//! groups still running when knobs ends (a second Ctrl-C, `kill -9`) are
//! killed too (`reaper`).
//! Captured output is capped; whatever goes wrong with one configuration
//! (exit status, signal, timeout, garbage, NaN) fails that trial with a
//! reason, while a program that cannot be started at all stops the study.

//!
//! - `template`: the `{param}` / `{trial}` templates of every string;
//! - `compile`: checking a [`CommandSpec`] and compiling its templates;
//! - `evaluator`: one run of the program per configuration;
//! - `process`: starting, waiting for, killing and capturing the program;
//! - `reaper`: killing the programs still running when knobs ends, however it ends;
//! - `metrics`: reading the metrics from stdout or a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Problem;
use crate::space::Space;

mod compile;
mod evaluator;
mod metrics;
mod process;
mod reaper;
mod template;

pub use evaluator::CommandEvaluator;

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

    /// Check, without running it, that the program can be started: a path (with a `/`,
    /// relative to `base_dir` as when it runs) names an executable file; a bare name is an
    /// executable on `PATH`. A program given by a template (`{param}`) is checked when it runs.
    pub fn check_program(&self, base_dir: &Path) -> Option<Problem> {
        let program = self.command.first()?;
        if program.contains('{') || program.trim().is_empty() {
            return None;
        }
        let executable = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        let at = |why: String| Some(Problem::new("evaluator.command[0]", why));
        if !program.contains('/') {
            let path = std::env::var_os("PATH").unwrap_or_default();
            return match std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
                true => None,
                false => at(format!(
                    "program `{program}` not found on PATH (give a path, e.g. ./{program}, for a file here)"
                )),
            };
        }
        // Shown as written when the spec is in the current folder.
        let base = if base_dir == Path::new(".") { Path::new("") } else { base_dir };
        let path = program_path(base, program);
        if !path.exists() {
            at(format!("program {} does not exist", path.display()))
        } else if !executable(&path) {
            at(format!("program {} is not an executable file (chmod +x it?)", path.display()))
        } else {
            None
        }
    }
}

/// The program to start: a name with a `/` is a path relative to `base` (the spec's folder),
/// a bare name is looked up on `PATH` when it starts.
fn program_path(base: &Path, program: &str) -> PathBuf {
    if program.contains('/') { base.join(program) } else { PathBuf::from(program) }
}

/// `cache.ttl-s` → `KNOBS_PARAM_CACHE_TTL_S`.
pub fn param_env_name(param: &str) -> String {
    let tail: String =
        param.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{PARAM_ENV_PREFIX}{tail}")
}
