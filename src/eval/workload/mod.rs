//! Workload models: evaluators that score a configuration against a model of
//! the system under a workload taken from recorded telemetry and its forecast.
//!
//! - [`scenario`]: the load a configuration must serve (the peak of the
//!   forecast's upper bound, a typical day, or the raw recorded window), as
//!   arrival rates per fixed-length segment.
//! - [`pool`]: a connection / worker pool as an M/M/c queue (Erlang C), with
//!   an optional queue limit (M/M/c/K).
//! - [`cache`]: trace-driven simulation of a cache with TTL, capacity and
//!   eviction policy.
//! - [`gc`]: a generational garbage-collector model.
//! - [`service`]: the three combined into one service's end-to-end latency,
//!   throughput and cost.
//!
//! Model inputs that the search tunes are [`Knob`]s: a fixed number, or the
//! name of a parameter of the space.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EvalError;
use crate::error::Problem;
use crate::space::{Config, Domain, Space, Value};

pub mod cache;
pub mod gc;
pub mod pool;
pub mod scenario;
pub mod service;

pub use scenario::{Scenario, ScenarioKind, ScenarioSpec};

/// A numeric model input: a fixed number (`12.5`) or the name of a float,
/// int or bool parameter of the space (`pool_size`), read from each
/// configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Knob {
    Fixed(f64),
    Param(String),
}

impl Knob {
    /// Check the knob: a fixed value must lie in `[min, max]`; a parameter
    /// must exist, be numeric, and its whole range must lie in `[min, max]`.
    pub fn check(&self, path: &str, space: &Space, min: f64, max: f64, problems: &mut Vec<Problem>) {
        let range = || {
            if max.is_finite() { format!("between {min} and {max}") } else { format!("at least {min}") }
        };
        match self {
            Knob::Fixed(v) => {
                if !(v.is_finite() && *v >= min && *v <= max) {
                    problems.push(Problem::new(path, format!("{v} is out of range; must be {}", range())));
                }
            }
            Knob::Param(name) => match space.param(name) {
                None => problems.push(Problem::new(
                    path,
                    format!(
                        "`{name}` is not a parameter of the space; write a number or one of: {}",
                        space.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                )),
                Some(_) => match self.range(space) {
                    None => problems.push(Problem::new(
                        path,
                        format!("parameter `{name}` is categorical; this input needs a float, int or bool"),
                    )),
                    Some((lo, hi)) if lo < min || hi > max => problems.push(Problem::new(
                        path,
                        format!("parameter `{name}` ranges over [{lo}, {hi}]; this input must be {}", range()),
                    )),
                    Some(_) => {}
                },
            },
        }
    }

    /// The values the knob can take: its number, or its parameter's range
    /// (`None` for a categorical or unknown parameter).
    pub fn range(&self, space: &Space) -> Option<(f64, f64)> {
        match self {
            Knob::Fixed(v) => Some((*v, *v)),
            Knob::Param(name) => match &space.param(name)?.domain {
                Domain::Float { low, high, .. } => Some((*low, *high)),
                Domain::Int { low, high, .. } => Some((*low as f64, *high as f64)),
                Domain::Bool => Some((0.0, 1.0)),
                Domain::Categorical { .. } => None,
            },
        }
    }

    /// The value in `config` (a parameter missing from the configuration,
    /// e.g. switched off by `when`, is an invalid trial).
    pub fn value(&self, config: &Config) -> Result<f64, EvalError> {
        match self {
            Knob::Fixed(v) => Ok(*v),
            Knob::Param(name) => match config.get(name) {
                Some(Value::Float(v)) => Ok(*v),
                Some(Value::Int(v)) => Ok(*v as f64),
                Some(Value::Bool(b)) => Ok(if *b { 1.0 } else { 0.0 }),
                Some(Value::Str(s)) => Err(EvalError::Invalid(format!("parameter `{name}` is `{s}`, not a number"))),
                None => Err(EvalError::Invalid(format!("parameter `{name}` is not set in this configuration"))),
            },
        }
    }
}

/// A text model input (e.g. an eviction policy): a fixed choice (`lru`) or
/// the name of a categorical parameter whose choices are valid values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TextKnob(pub String);

impl TextKnob {
    /// Check the knob against the `valid` values.
    pub fn check(&self, path: &str, space: &Space, valid: &[&str], problems: &mut Vec<Problem>) {
        match space.param(&self.0) {
            Some(p) => match &p.domain {
                Domain::Categorical { choices } => {
                    for c in choices {
                        let text = match c {
                            Value::Str(s) => s.clone(),
                            other => format!("{other:?}"),
                        };
                        if !valid.contains(&text.as_str()) {
                            problems.push(Problem::new(
                                path,
                                format!("parameter `{}` has the choice `{text}`; valid: {}", self.0, valid.join(", ")),
                            ));
                        }
                    }
                }
                _ => problems.push(Problem::new(path, format!("parameter `{}` must be categorical", self.0))),
            },
            None if valid.contains(&self.0.as_str()) => {}
            None => problems.push(Problem::new(
                path,
                format!("`{}` is neither a valid value ({}) nor a categorical parameter", self.0, valid.join(", ")),
            )),
        }
    }

    /// The value in `config`: the parameter's choice, or the fixed text.
    pub fn value<'a>(&'a self, config: &'a Config) -> &'a str {
        match config.get(&self.0) {
            Some(Value::Str(s)) => s,
            _ => &self.0,
        }
    }
}

/// Metrics of a model, by name, in the order of declaration.
pub type Metrics = BTreeMap<String, f64>;

/// Reject a metric that is not a finite number (a model bug, not a bad
/// configuration, but never passed on as NaN).
/// Negative zeros (empty float sums) are written as 0.
pub fn finite(metrics: Metrics) -> Result<Metrics, EvalError> {
    match metrics.iter().find(|(_, v)| !v.is_finite()) {
        Some((k, v)) => Err(EvalError::Invalid(format!("model produced {k} = {v}"))),
        None => Ok(metrics.into_iter().map(|(k, v)| (k, v + 0.0)).collect()),
    }
}

/// The smallest `t ≥ 0` with `tail(t) ≤ p`, for a non-increasing tail
/// function (`tail(t) = P(X > t)`), to a relative precision of about 1e-7.
/// `scale` is a typical size of `X` to start the bracket from.
pub fn tail_quantile(tail: impl Fn(f64) -> f64, p: f64, scale: f64) -> f64 {
    if tail(0.0) <= p {
        return 0.0;
    }
    let mut hi = scale.max(1e-12);
    let mut doublings = 0;
    while tail(hi) > p {
        hi *= 2.0;
        doublings += 1;
        if doublings > 200 {
            return hi;
        }
    }
    let mut lo = 0.0;
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if tail(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-7 * hi {
            break;
        }
    }
    hi
}

/// Which model a workload evaluator runs (the spec's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Pool,
    Cache,
    Gc,
    Service,
}

impl ModelKind {
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Pool => "pool",
            ModelKind::Cache => "cache",
            ModelKind::Gc => "gc",
            ModelKind::Service => "service",
        }
    }
}

/// The `evaluator:` section of a workload evaluator: the workload, and the
/// sections of the model(s) the `type` names.
///
/// ```yaml
/// evaluator:
///   type: pool                 # pool | cache | gc | service
///   workload: {series: data/elb_request_count_8c0756.csv, scenario: peak, horizon: 7d}
///   pool: {size: pool_size, service_time_ms: 12, cost_per_connection: 1}
/// ```
///
/// `service` takes `pool` and `cache` (and `gc` when the runtime collects
/// garbage) plus an optional `service` section (see [`service::ServiceSpec`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadSpec {
    pub workload: ScenarioSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<pool::PoolSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<cache::CacheSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<gc::GcSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<service::ServiceSpec>,
    /// Seed of generated request traces (the same trace for every trial, so
    /// that configurations are compared on the same requests).
    #[serde(default)]
    pub seed: u64,
}

impl WorkloadSpec {
    /// Check the sections the model needs, and that no other is given.
    pub fn check(&self, kind: ModelKind, space: &Space, problems: &mut Vec<Problem>) {
        self.workload.check("evaluator.workload", problems);
        let need = |section: &str| -> bool {
            match kind {
                ModelKind::Pool => section == "pool",
                ModelKind::Cache => section == "cache",
                ModelKind::Gc => section == "gc",
                ModelKind::Service => matches!(section, "pool" | "cache" | "gc" | "service"),
            }
        };
        let required: &[&str] = match kind {
            ModelKind::Pool => &["pool"],
            ModelKind::Cache => &["cache"],
            ModelKind::Gc => &["gc"],
            ModelKind::Service => &["pool", "cache"],
        };
        let present = [
            ("pool", self.pool.is_some()),
            ("cache", self.cache.is_some()),
            ("gc", self.gc.is_some()),
            ("service", self.service.is_some()),
        ];
        for (section, is) in present {
            if is && !need(section) {
                problems.push(Problem::new(
                    format!("evaluator.{section}"),
                    format!("is not used by a `{}` evaluator; remove it or use `type: service`", kind.name()),
                ));
            }
            if !is && required.contains(&section) {
                problems.push(Problem::new(
                    format!("evaluator.{section}"),
                    format!("missing; a `{}` evaluator needs its `{section}:` section", kind.name()),
                ));
            }
        }
        if let Some(p) = &self.pool {
            p.check("evaluator.pool", space, problems);
        }
        if let Some(c) = &self.cache {
            c.check("evaluator.cache", space, problems);
        }
        if let Some(g) = &self.gc {
            g.check("evaluator.gc", space, problems);
        }
        if let Some(s) = &self.service {
            s.check("evaluator.service", problems);
        }
    }

    /// Metrics the model reports.
    pub fn metrics(&self, kind: ModelKind) -> Vec<String> {
        let own = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        match kind {
            ModelKind::Pool => own(pool::METRICS),
            ModelKind::Cache => own(cache::METRICS),
            ModelKind::Gc => own(gc::METRICS),
            ModelKind::Service => service::metric_names(self.gc.is_some()),
        }
    }

    /// Build the scenario (reading and forecasting the telemetry) and the model.
    pub fn build(&self, kind: ModelKind, base_dir: &std::path::Path) -> crate::Result<WorkloadEvaluator> {
        let scenario = self.workload.build(base_dir)?;
        tracing::info!("workload: {}", scenario.label);
        let missing = |s: &str| crate::Error::Config(format!("evaluator.{s}: missing"));
        let model = match kind {
            ModelKind::Pool => Built::Pool(self.pool.as_ref().ok_or_else(|| missing("pool"))?.build(base_dir)?),
            ModelKind::Cache => Built::Cache(
                self.cache.as_ref().ok_or_else(|| missing("cache"))?.build(&scenario, base_dir, self.seed)?,
            ),
            ModelKind::Gc => Built::Gc(self.gc.as_ref().ok_or_else(|| missing("gc"))?.build()?),
            ModelKind::Service => Built::Service(Box::new(service::ServiceModel::build(self, &scenario, base_dir)?)),
        };
        Ok(WorkloadEvaluator { metrics: self.metrics(kind), scenario, model })
    }
}

enum Built {
    Pool(pool::PoolModel),
    Cache(cache::CacheModel),
    Gc(gc::GcModel),
    Service(Box<service::ServiceModel>),
}

/// A workload model over its scenario, as an [`super::Evaluator`].
pub struct WorkloadEvaluator {
    /// What the model reports (known from the spec).
    metrics: Vec<String>,
    scenario: Scenario,
    model: Built,
}

impl WorkloadEvaluator {
    /// The load the configurations are scored against.
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    /// The model's metrics for one configuration.
    pub fn score(&self, config: &Config) -> Result<Metrics, EvalError> {
        let m = match &self.model {
            Built::Pool(p) => p.evaluate(config, &self.scenario)?,
            Built::Cache(c) => c.evaluate(config)?.metrics(),
            Built::Gc(g) => g.evaluate(config, &self.scenario)?.metrics(),
            Built::Service(s) => s.evaluate(config, &self.scenario)?,
        };
        finite(m)
    }
}

impl super::Evaluator for WorkloadEvaluator {
    fn evaluate(&self, config: &Config, _ctx: &super::EvalContext) -> Result<super::Measurement, EvalError> {
        let start = std::time::Instant::now();
        let metrics = self.score(config)?;
        Ok(super::Measurement::new(metrics, start.elapsed()))
    }

    fn metrics(&self) -> Vec<String> {
        self.metrics.clone()
    }
}
