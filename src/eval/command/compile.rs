//! Checking a [`CommandSpec`] against the space and compiling its templates
//! into what one run needs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::template::Template;
use super::{CommandSpec, MAX_OUTPUT_BYTES_RANGE, MAX_TIMEOUT_S, MetricsSource, param_env_name};
use crate::error::Problem;
use crate::space::Space;

/// Where a compiled command reads its metrics.
#[derive(Debug, Clone)]
pub(super) enum Metrics {
    Stdout,
    File(Template),
}

/// A checked [`CommandSpec`], its templates parsed.
#[derive(Debug, Clone)]
pub(super) struct Compiled {
    pub program: Template,
    pub args: Vec<Template>,
    pub env: Vec<(String, Template)>,
    /// (parameter, variable) for `params_env`.
    pub params_env: Vec<(String, String)>,
    pub workdir: Option<Template>,
    pub timeout: Duration,
    pub metrics: Metrics,
    pub max_output: usize,
    pub required: Vec<String>,
}

/// Parses templates against the parameter names, pushing what is wrong.
struct Templates<'a> {
    names: Vec<&'a str>,
}

impl Templates<'_> {
    fn parse(&self, text: &str, path: String, problems: &mut Vec<Problem>) -> Option<Template> {
        match Template::parse(text) {
            Ok(t) => {
                t.check(&self.names, &path, problems);
                Some(t)
            }
            Err(msg) => {
                problems.push(Problem::new(path, msg));
                None
            }
        }
    }
}

impl CommandSpec {
    /// Check and compile the templates; `None` when a problem was found.
    /// Problems come in the order of the spec's fields.
    pub(super) fn compile(&self, space: &Space, problems: &mut Vec<Problem>) -> Option<Compiled> {
        let before = problems.len();
        let templates = Templates { names: space.params.iter().map(|p| p.name.as_str()).collect() };
        let command = self.compile_command(&templates, problems);
        let env = self.compile_env(&templates, problems);
        let params_env = self.params_env(space, problems);
        let workdir = self.compile_workdir(&templates, problems);
        self.check_limits(problems);
        let metrics = self.compile_metrics(&templates, problems);
        self.check_required(problems);
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

    fn compile_command(&self, templates: &Templates, problems: &mut Vec<Problem>) -> Vec<Option<Template>> {
        if self.command.is_empty() {
            problems.push(Problem::new(
                "evaluator.command",
                "is empty; give the program and its arguments, e.g. [./bench.sh, --pool, \"{pool_size}\"]",
            ));
        } else if self.command[0].trim().is_empty() {
            problems.push(Problem::new("evaluator.command[0]", "the program must not be empty"));
        }
        self.command
            .iter()
            .enumerate()
            .map(|(i, a)| templates.parse(a, format!("evaluator.command[{i}]"), problems))
            .collect()
    }

    fn compile_env(&self, templates: &Templates, problems: &mut Vec<Problem>) -> Vec<(String, Template)> {
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
            if let Some(t) = templates.parse(value, path, problems) {
                env.push((var.clone(), t));
            }
        }
        env
    }

    /// (parameter, variable) of every parameter when `params_env` is on.
    fn params_env(&self, space: &Space, problems: &mut Vec<Problem>) -> Vec<(String, String)> {
        let mut params_env = Vec::new();
        if !self.params_env {
            return params_env;
        }
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
        params_env
    }

    fn compile_workdir(&self, templates: &Templates, problems: &mut Vec<Problem>) -> Option<Template> {
        match &self.workdir {
            Some(w) if w.trim().is_empty() => {
                problems.push(Problem::new(
                    "evaluator.workdir",
                    "must not be empty; leave it out for the spec's directory",
                ));
                None
            }
            Some(w) => templates.parse(w, "evaluator.workdir".into(), problems),
            None => None,
        }
    }

    fn check_limits(&self, problems: &mut Vec<Problem>) {
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
    }

    fn compile_metrics(&self, templates: &Templates, problems: &mut Vec<Problem>) -> Option<Metrics> {
        match &self.metrics {
            MetricsSource::Stdout => Some(Metrics::Stdout),
            MetricsSource::File(f) if f.trim().is_empty() => {
                problems.push(Problem::new("evaluator.metrics.file", "must name a file, e.g. \"out/{trial}.json\""));
                None
            }
            MetricsSource::File(f) => templates.parse(f, "evaluator.metrics.file".into(), problems).map(Metrics::File),
        }
    }

    fn check_required(&self, problems: &mut Vec<Problem>) {
        let mut seen = BTreeSet::new();
        for (i, m) in self.metrics_required.iter().enumerate() {
            if m.trim().is_empty() {
                problems.push(Problem::new(format!("evaluator.metrics_required[{i}]"), "must not be empty"));
            } else if !seen.insert(m) {
                problems
                    .push(Problem::new(format!("evaluator.metrics_required[{i}]"), format!("`{m}` is listed twice")));
            }
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
