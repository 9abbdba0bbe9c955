//! The `cache:` section of a workload evaluator: its fields, defaults and
//! checks, and building the model (making the trace once).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::CacheModel;
use super::policy::Policy;
use super::trace::{Arrivals, Catalogue, generate, read_trace, replay};
use super::{MAX_KEYS, MAX_REQUESTS, METRICS, STREAM_SAMPLE, STREAM_TRACE};
use crate::error::{Error, Problem, Problems, Result};
use crate::eval::EvalError;
use crate::eval::workload::model::{missing, names};
use crate::eval::workload::{
    BuiltModel, Knob, Metrics, RawSection, Scenario, Section, SectionBox, SectionError, TextKnob, WorkloadModel,
    WorkloadSpec,
};
use crate::rng::Rng;
use crate::space::{Config, Space};

fn default_policy() -> TextKnob {
    TextKnob("lru".to_string())
}
fn default_keys() -> u64 {
    100_000
}
fn default_zipf() -> f64 {
    0.9
}
fn default_object_kb() -> f64 {
    1.0
}
fn default_max_requests() -> u64 {
    1_000_000
}

/// The `cache:` section of a workload evaluator spec.
///
/// ```yaml
/// cache:
///   capacity: cache_entries   # a parameter of the space, or a number
///   ttl_s: cache_ttl_s
///   policy: eviction          # lru | lfu | fifo, or a categorical parameter
///   keys: 200000
///   zipf: 0.9
///   update_fraction: 0.05
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSpec {
    /// Most resident entries (at least 1; a fractional value is rounded).
    pub capacity: Knob,
    /// Seconds from insertion (fetch) to expiry; not refreshed by hits; > 0.
    pub ttl_s: Knob,
    /// Eviction policy: `lru`, `lfu` or `fifo` (default `lru`).
    #[serde(default = "default_policy")]
    pub policy: TextKnob,
    /// Catalogue size of the generated trace (default 100 000; at most
    /// [`MAX_KEYS`]). Ignored with a recorded `trace`.
    #[serde(default = "default_keys")]
    pub keys: u64,
    /// Zipf popularity exponent `s >= 0` of the generated trace (default
    /// 0.9; 0 is uniform). Ignored with a recorded `trace`.
    #[serde(default = "default_zipf")]
    pub zipf: f64,
    /// Share of generated requests that are writes, in `[0, 1)` (default 0).
    #[serde(default)]
    pub update_fraction: f64,
    /// Memory per entry, KiB (default 1).
    #[serde(default = "default_object_kb")]
    pub object_kb: f64,
    /// A recorded key trace (CSV `timestamp,key[,op]`) instead of the
    /// generated one; relative to the spec's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Requests to simulate at most, roughly (default 1 000 000, at most
    /// [`MAX_REQUESTS`]); above it the model samples keys (module docs).
    #[serde(default = "default_max_requests")]
    pub max_requests: u64,
}

impl CacheSpec {
    /// A spec with every optional field at its default.
    pub fn new(capacity: Knob, ttl_s: Knob) -> Self {
        CacheSpec {
            capacity,
            ttl_s,
            policy: default_policy(),
            keys: default_keys(),
            zipf: default_zipf(),
            update_fraction: 0.0,
            object_kb: default_object_kb(),
            trace: None,
            max_requests: default_max_requests(),
        }
    }

    /// Check the spec against the space; push every problem found (paths
    /// start with `path`, e.g. `evaluator.cache`).
    pub fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        self.capacity.check(&format!("{path}.capacity"), space, 1.0, f64::INFINITY, problems);
        check_ttl(&self.ttl_s, &format!("{path}.ttl_s"), space, problems);
        self.policy.check(&format!("{path}.policy"), space, &Policy::NAMES, problems);
        self.check_fields(path, problems);
    }

    /// The checks that need no space.
    fn check_fields(&self, path: &str, problems: &mut Vec<Problem>) {
        let mut bad = |field: &str, message: String| problems.push(Problem::new(format!("{path}.{field}"), message));
        if !(1..=MAX_KEYS).contains(&self.keys) {
            bad("keys", format!("{} keys; must be between 1 and {MAX_KEYS}", self.keys));
        }
        if !(self.zipf.is_finite() && self.zipf >= 0.0) {
            bad("zipf", format!("{} is not a Zipf exponent; must be a number >= 0 (0 is uniform)", self.zipf));
        }
        if !(0.0..1.0).contains(&self.update_fraction) {
            bad(
                "update_fraction",
                format!("{} is not a share of requests; must be at least 0 and below 1", self.update_fraction),
            );
        } else if self.update_fraction > 0.0 && self.trace.is_some() {
            bad(
                "update_fraction",
                "applies to the generated trace only; with `trace` the op column (read|write) marks the writes"
                    .to_string(),
            );
        }
        if !(self.object_kb.is_finite() && self.object_kb > 0.0) {
            bad("object_kb", format!("{} KiB per entry; must be > 0", self.object_kb));
        }
        if !(1..=MAX_REQUESTS).contains(&self.max_requests) {
            bad("max_requests", format!("{}; must be between 1 and {MAX_REQUESTS}", self.max_requests));
        }
        if self.trace.as_deref().is_some_and(|t| t.trim().is_empty()) {
            bad("trace", "empty path; expected a CSV file `timestamp,key[,op]`".to_string());
        }
    }

    /// Make the request trace for `scenario` (generated from `seed`, or read
    /// from `trace` relative to `base_dir`): the one-time work behind every
    /// evaluation.
    pub fn build(&self, scenario: &Scenario, base_dir: &Path, seed: u64) -> Result<CacheModel> {
        let mut problems = Vec::new();
        self.check_fields("cache", &mut problems);
        check_scenario(scenario, &mut problems);
        if !problems.is_empty() {
            return Err(Error::Invalid(Problems { source: "cache model".to_string(), items: problems }));
        }
        let expected = scenario.arrivals();
        let rate = (self.max_requests as f64 / expected).min(1.0);
        let offset = Rng::new(seed, STREAM_SAMPLE).uniform();
        let mut arrivals = Arrivals::new(scenario, Rng::new(seed, STREAM_TRACE));
        let trace = match &self.trace {
            None => {
                let catalogue = Catalogue { keys: self.keys, zipf: self.zipf, update_fraction: self.update_fraction };
                generate(&catalogue, rate, offset, &mut arrivals)?
            }
            Some(file) => {
                let recorded = read_trace(&base_dir.join(file))?;
                replay(recorded, expected, rate, offset, &mut arrivals)?
            }
        };
        Ok(CacheModel {
            trace,
            step_s: scenario.step_s,
            rate,
            object_kb: self.object_kb,
            capacity: self.capacity.clone(),
            ttl_s: self.ttl_s.clone(),
            policy: self.policy.clone(),
        })
    }
}

/// A TTL must be > 0 seconds: a fixed value, or every value of a parameter.
fn check_ttl(knob: &Knob, path: &str, space: &Space, problems: &mut Vec<Problem>) {
    const VALID: &str = "must be > 0 seconds (an entry that expires at once is never served)";
    let name = match knob {
        Knob::Fixed(v) if v.is_finite() && *v > 0.0 => return,
        Knob::Fixed(v) => return problems.push(Problem::new(path, format!("{v} is not a TTL; {VALID}"))),
        Knob::Param(name) => name,
    };
    let before = problems.len();
    knob.check(path, space, 0.0, f64::INFINITY, problems);
    if problems.len() > before {
        return;
    }
    let low = knob.range(space).map_or(0.0, |r| r.0);
    if low <= 0.0 {
        problems.push(Problem::new(path, format!("parameter `{name}` can be {low}, which is not a TTL; {VALID}")));
    }
}

fn check_scenario(scenario: &Scenario, problems: &mut Vec<Problem>) {
    let path = "cache.scenario";
    let before = problems.len();
    if !(scenario.step_s.is_finite() && scenario.step_s > 0.0) {
        problems.push(Problem::new(path, format!("step of {} s; must be > 0", scenario.step_s)));
    }
    if scenario.rates.is_empty() {
        problems.push(Problem::new(path, "no segments; expected at least one arrival rate"));
    }
    for (i, r) in scenario.rates.iter().enumerate() {
        if !(r.is_finite() && *r >= 0.0) {
            problems.push(Problem::new(format!("{path}.rates[{i}]"), format!("{r}/s; must be a finite rate >= 0")));
        }
    }
    if problems.len() == before && scenario.arrivals() <= 0.0 {
        problems.push(Problem::new(path, "every rate is 0: no request to simulate"));
    }
}

/// `type: cache`: the cache alone, from its `cache:` section.
pub struct Cache;

impl WorkloadModel for Cache {
    fn name(&self) -> &'static str {
        "cache"
    }

    fn parse_section(&self, raw: RawSection) -> std::result::Result<SectionBox, SectionError> {
        raw.parse::<CacheSpec>()
    }

    fn metrics(&self, _: &WorkloadSpec) -> Vec<String> {
        names(METRICS)
    }

    fn build(&self, spec: &WorkloadSpec, scenario: &Scenario, base_dir: &Path) -> Result<Box<dyn BuiltModel>> {
        let section = spec.section::<CacheSpec>().ok_or_else(|| missing("cache"))?;
        Ok(Box::new(section.build(scenario, base_dir, spec.seed)?))
    }
}

impl Section for CacheSpec {
    fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        CacheSpec::check(self, path, space, problems)
    }
}

impl BuiltModel for CacheModel {
    fn score(&self, config: &Config, _: &Scenario) -> std::result::Result<Metrics, EvalError> {
        Ok(self.evaluate(config)?.metrics())
    }
}
