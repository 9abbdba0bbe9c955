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
//!
//! # How a model plugs in
//!
//! A spec names a model by its `type:` and gives the model's own section
//! under the same name, next to the `workload:` every model shares:
//!
//! ```yaml
//! evaluator:
//!   type: pool
//!   workload: {series: load.csv, scenario: peak}
//!   pool: {size: pool_size, service_time_ms: 12}
//! ```
//!
//! Everything else is read from [`MODELS`]: the `type` names serde accepts,
//! the sections a [`WorkloadSpec`] reads and writes (in table order), which
//! sections each type needs or refuses, the metrics a spec's objectives may
//! name, and how the evaluator is built and scores.
//!
//! # Adding a model
//!
//! 1. Write `src/eval/workload/NAME.rs` with:
//!    - the section's type (`#[derive(Debug, Clone, PartialEq, Serialize,
//!      Deserialize)]`, `#[serde(deny_unknown_fields)]`) implementing
//!      [`Section`]: `check` pushes every problem at `{path}.{field}`;
//!    - the built model implementing [`BuiltModel`]: `score` turns a
//!      configuration into metrics over the scenario;
//!    - a unit struct implementing [`WorkloadModel`]: its `name` (the `type:`
//!      and the section's key), `parse_section` (`raw.parse::<NameSpec>()`),
//!      `metrics` and `build` (reading its section with
//!      [`WorkloadSpec::section`]); override `required` / `optional` when it
//!      reads other models' sections too, as [`service::Service`] does.
//! 2. Add `pub mod NAME;` below and the unit struct to [`MODELS`], at the
//!    end: the table's order is the order sections are written in, and
//!    stored specs are compared as written.
//!
//! Nothing else names a model: [`crate::eval::EvaluatorSpec`] reads any
//! `type:` in the table (with serde's wording for an unknown one), and a
//! [`WorkloadSpec`] any section.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::EvalError;
use crate::error::Problem;
use crate::space::{Config, Domain, Space, Value};

pub mod cache;
pub mod gc;
mod model;
pub mod pool;
pub mod scenario;
pub mod service;
mod spec;

pub use model::{BuiltModel, RawSection, Section, SectionBox, SectionError, WorkloadModel};
pub use scenario::{Scenario, ScenarioKind, ScenarioSpec};
pub use spec::{WorkloadEvaluator, WorkloadSpec};

/// Every workload model, one line each; a spec writes their sections in
/// this order.
pub static MODELS: &[&dyn WorkloadModel] = &[&pool::Pool, &cache::Cache, &gc::Gc, &service::Service];

/// The model whose `type:` is `name`.
pub fn model(name: &str) -> Option<&'static dyn WorkloadModel> {
    MODELS.iter().copied().find(|m| m.name() == name)
}

/// A numeric model input: a fixed number (`12.5`) or the name of a float,
/// int or bool parameter of the space (`pool_size`), read from each
/// configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Knob {
    /// A fixed number.
    Fixed(f64),
    /// The name of a parameter of the space.
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
