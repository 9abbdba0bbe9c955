//! Evaluators: the only part of knobs that touches the workload.
//!
//! An evaluator turns a configuration into metrics. It never sees the
//! optimizer. Built-ins: test functions ([`functions`]), external
//! programs ([`command`]) and workload models fed by telemetry
//! ([`workload`]: `pool`, `cache`, `gc`, `service`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Problem, Result};
use crate::space::{Config, Space};

pub mod command;
pub mod functions;
pub mod workload;

pub use command::{CommandEvaluator, CommandSpec};
pub use functions::{FunctionEvaluator, FunctionSpec};

/// What an evaluation measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub metrics: BTreeMap<String, f64>,
    /// Derivatives the evaluator could give: metric → (parameter → d metric
    /// / d parameter, in the parameter's own units). Empty when it gives none;
    /// the study passes them to the optimizer when the score is one metric.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub gradients: BTreeMap<String, BTreeMap<String, f64>>,
    pub elapsed: Duration,
}

impl Measurement {
    /// Metrics without gradients.
    pub fn new(metrics: BTreeMap<String, f64>, elapsed: Duration) -> Self {
        Measurement { metrics, gradients: BTreeMap::new(), elapsed }
    }
}

/// Why an evaluation did not produce a measurement.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum EvalError {
    /// Worth retrying (e.g. a resource was busy).
    #[error("transient: {0}")]
    Transient(String),
    /// This configuration failed (crash, timeout, garbage output, NaN): the
    /// trial fails, the study goes on.
    #[error("{0}")]
    Invalid(String),
    /// The evaluator cannot work at all (e.g. the program does not exist):
    /// the study stops.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// What the study tells the evaluator about the trial it evaluates.
#[derive(Debug, Clone)]
pub struct EvalContext {
    pub study: String,
    pub trial: u64,
    /// Directory relative paths in the evaluator spec are resolved against
    /// (the directory of the spec file).
    pub base_dir: PathBuf,
}

pub trait Evaluator: Send + Sync {
    fn evaluate(&self, config: &Config, ctx: &EvalContext) -> Result<Measurement, EvalError>;
    /// Metrics this evaluator is known to report (empty if unknown up front).
    fn metrics(&self) -> Vec<String> {
        Vec::new()
    }
}

/// `{type: external}`: knobs does not evaluate the trials; the clients of
/// `knobs serve` do, and tell the results over HTTP. Studies created through
/// the API without an evaluator get this one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalSpec {
    /// The metrics the clients report, if declared: the objectives and
    /// constraints are then checked against them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
}

/// The `evaluator:` section of a spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EvaluatorSpec {
    Function(FunctionSpec),
    Command(CommandSpec),
    Pool(workload::WorkloadSpec),
    Cache(workload::WorkloadSpec),
    Gc(workload::WorkloadSpec),
    Service(workload::WorkloadSpec),
    External(ExternalSpec),
}

impl EvaluatorSpec {
    /// Check the evaluator against the space; push every problem found
    /// (paths start with `evaluator`).
    pub fn check(&self, space: &Space, problems: &mut Vec<Problem>) {
        match self {
            EvaluatorSpec::Function(f) => f.check(space, problems),
            EvaluatorSpec::Command(c) => c.check(space, problems),
            EvaluatorSpec::External(e) => {
                if e.metrics.as_ref().is_some_and(|m| m.is_empty() || m.iter().any(String::is_empty)) {
                    problems.push(Problem::new(
                        "evaluator.metrics",
                        "name at least one metric, none empty, or leave it out",
                    ));
                }
            }
            other => {
                if let Some((kind, w)) = other.workload() {
                    w.check(kind, space, problems)
                }
            }
        }
    }

    /// The workload model this spec names, if it names one.
    pub fn workload(&self) -> Option<(workload::ModelKind, &workload::WorkloadSpec)> {
        use workload::ModelKind;
        match self {
            EvaluatorSpec::Pool(w) => Some((ModelKind::Pool, w)),
            EvaluatorSpec::Cache(w) => Some((ModelKind::Cache, w)),
            EvaluatorSpec::Gc(w) => Some((ModelKind::Gc, w)),
            EvaluatorSpec::Service(w) => Some((ModelKind::Service, w)),
            EvaluatorSpec::Function(_) | EvaluatorSpec::Command(_) | EvaluatorSpec::External(_) => None,
        }
    }

    /// Build the evaluator (after `check` found no problem); relative paths
    /// (telemetry, traces) are resolved against `base_dir`.
    pub fn build(&self, space: &Space, base_dir: &std::path::Path) -> Result<Box<dyn Evaluator>> {
        Ok(match self {
            EvaluatorSpec::Function(f) => Box::new(FunctionEvaluator::new(f, space)?),
            EvaluatorSpec::Command(c) => Box::new(CommandEvaluator::new(c, space)?),
            EvaluatorSpec::Pool(w) => Box::new(w.build(workload::ModelKind::Pool, base_dir)?),
            EvaluatorSpec::Cache(w) => Box::new(w.build(workload::ModelKind::Cache, base_dir)?),
            EvaluatorSpec::Gc(w) => Box::new(w.build(workload::ModelKind::Gc, base_dir)?),
            EvaluatorSpec::Service(w) => Box::new(w.build(workload::ModelKind::Service, base_dir)?),
            EvaluatorSpec::External(_) => {
                return Err(crate::error::Error::Config(
                    "evaluator: an `external` study is evaluated by the clients of `knobs serve`, who ask for \
                     trials and tell results over HTTP; to evaluate here, give the spec a `function`, `command` \
                     or workload-model evaluator"
                        .into(),
                ));
            }
        })
    }

    /// Metrics this evaluator reports, when known before running.
    pub fn metrics(&self) -> Option<Vec<String>> {
        match self {
            EvaluatorSpec::Function(_) => Some(vec![functions::METRIC.to_string()]),
            EvaluatorSpec::Command(_) => None,
            EvaluatorSpec::External(e) => e.metrics.clone(),
            other => other.workload().map(|(kind, w)| w.metrics(kind)),
        }
    }
}
