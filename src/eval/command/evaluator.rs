//! The command evaluator: renders a run from the compiled spec, starts the
//! program, and turns how it ended and what it printed into a measurement
//! or a reason.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use super::CommandSpec;
use super::compile::{Compiled, Metrics};
use super::metrics::{FileState, read_metrics_file, stdout_metrics};
use super::process::{Capture, End, signal_name, spawn_error, wait_and_kill_group, wait_pipes};
use super::reaper;
use super::template::Template;
use crate::error::{Error, Problem, Problems, Result};
use crate::eval::{EvalContext, EvalError, Evaluator, Measurement};
use crate::space::{Config, Space};

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
        // SAFETY: die_with_parent only makes one async-signal-safe call (prctl).
        unsafe { cmd.pre_exec(reaper::die_with_parent) };

        let start = Instant::now();
        let mut child = cmd.spawn().map_err(|e| spawn_error(&run.program, e))?;
        reaper::watch(child.id());
        let (done_tx, done_rx) = mpsc::channel();
        let stdout = child.stdout.take().map(|r| Capture::start(r, self.c.max_output, done_tx.clone()));
        let stderr = child.stderr.take().map(|r| Capture::start(r, self.c.max_output, done_tx));
        let end = wait_and_kill_group(&mut child, start + self.c.timeout);
        reaper::unwatch(child.id());
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
        let program = super::program_path(base, &program);
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
