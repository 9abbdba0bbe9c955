//! One service: a cache in front of a database reached through a connection
//! pool, in a runtime with a garbage collector; end-to-end latency,
//! throughput and cost of a configuration of all three.
//!
//! Per segment `i` of the scenario (arrival rate `λᵢ`):
//!
//! 1. The [`cache`](super::cache) simulation replays the requests: a share
//!    `bᵢ = backendᵢ / λᵢ` of them (read misses and writes) goes to the
//!    database.
//! 2. The [`pool`](super::pool) serves the backend rate `backendᵢ` with its
//!    connections: a backend request waits `W` (M/M/c or M/M/c/K) and holds
//!    a connection for the database's service time `S`; a rejected one is an
//!    error.
//! 3. The [`gc`](super::gc) model (optional) pauses the service a share
//!    `fᵢ` of the time; a request arriving during a pause waits for the rest
//!    of it, taken as uniform on `[0, 2rᵢ]` where `rᵢ` is the model's mean
//!    residual pause (exact for pauses of one length).
//!
//! Latency of a request: `hit_ms` (front end + cache lookup), plus for a
//! backend request `miss_overhead_ms + W + S`, plus the GC delay `G`:
//! `L = hit + G + 1[backend]·(miss + W + S)`, with `G`, `W`, `S`
//! independent. Its tail in segment `i`:
//! `P(L > t) = (1 − bᵢ)·P(G > t − hit) + bᵢ·P(G + W + S > t − hit − miss)`,
//! where `P(G + X > x) = (1 − fᵢ)P(X > x) + fᵢ·E[P(X > x − U)]`, the last
//! term by 8-point Gauss-Legendre quadrature over the uniform residual `U`. The p99
//! over the scenario is the quantile of the arrival-weighted mixture.
//!
//! Metrics: `latency_mean_ms`, `latency_p99_ms`, `throughput_rps` (served
//! requests per second, rejected ones excluded), `error_fraction`
//! (rejected by the pool), `cost` (pool + cache memory + heap),
//! `memory_mb` (pool connections + cache peak + heap), and every metric of
//! the parts prefixed with `pool_`, `cache_` and `gc_`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::cache::{CacheModel, CacheResult, CacheSpec};
use super::gc::{GcModel, GcResult, GcSpec};
use super::model::{BuiltModel, RawSection, Section, SectionBox, SectionError, WorkloadModel};
use super::pool::{PoolModel, PoolResult, PoolSpec, Wait, integrate8};
use super::{Metrics, Scenario, WorkloadSpec, tail_quantile};
use crate::error::{Error, Problem, Result};
use crate::eval::EvalError;
use crate::space::{Config, Space};

/// The end-to-end metrics (the parts' metrics follow, prefixed).
pub const METRICS: &[&str] =
    &["latency_mean_ms", "latency_p99_ms", "throughput_rps", "error_fraction", "cost", "memory_mb"];

/// The `service:` section: what the parts do not know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Time of every request before the database: front end and cache lookup.
    #[serde(default = "hit_ms")]
    pub hit_ms: f64,
    /// Extra time of a backend request besides the pool's wait and service
    /// (network round trip, serialization).
    #[serde(default = "miss_overhead_ms")]
    pub miss_overhead_ms: f64,
    /// Cost of one GB of cache memory (at its peak), in the pool's cost units.
    #[serde(default)]
    pub cost_per_cache_gb: f64,
}

fn hit_ms() -> f64 {
    0.5
}
fn miss_overhead_ms() -> f64 {
    1.0
}

impl Default for ServiceSpec {
    fn default() -> Self {
        ServiceSpec { hit_ms: hit_ms(), miss_overhead_ms: miss_overhead_ms(), cost_per_cache_gb: 0.0 }
    }
}

impl ServiceSpec {
    /// Check every field; paths start with `path`.
    pub fn check(&self, path: &str, problems: &mut Vec<Problem>) {
        for (name, v) in [
            ("hit_ms", self.hit_ms),
            ("miss_overhead_ms", self.miss_overhead_ms),
            ("cost_per_cache_gb", self.cost_per_cache_gb),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(Problem::new(format!("{path}.{name}"), format!("{v} must be a number ≥ 0")));
            }
        }
    }
}

/// Every metric name of a service, end-to-end first.
pub fn metric_names(with_gc: bool) -> Vec<String> {
    let mut names: Vec<String> = METRICS.iter().map(|s| s.to_string()).collect();
    names.extend(super::pool::METRICS.iter().map(|m| format!("pool_{m}")));
    names.extend(super::cache::METRICS.iter().map(|m| format!("cache_{m}")));
    if with_gc {
        names.extend(super::gc::METRICS.iter().map(|m| format!("gc_{m}")));
    }
    names
}

/// The three parts, built over one scenario.
pub struct ServiceModel {
    spec: ServiceSpec,
    pool: PoolModel,
    cache: CacheModel,
    gc: Option<GcModel>,
}

impl ServiceModel {
    /// The parts from their sections of `w`, the cache's trace made for `scenario`.
    pub fn build(w: &WorkloadSpec, scenario: &Scenario, base_dir: &Path) -> Result<ServiceModel> {
        let missing = |s: &str| Error::Config(format!("evaluator.{s}: missing; a service needs it"));
        Ok(ServiceModel {
            spec: w.section::<ServiceSpec>().cloned().unwrap_or_default(),
            pool: w.section::<PoolSpec>().ok_or_else(|| missing("pool"))?.build(base_dir)?,
            cache: w.section::<CacheSpec>().ok_or_else(|| missing("cache"))?.build(scenario, base_dir, w.seed)?,
            gc: w.section::<GcSpec>().map(|g| g.build()).transpose()?,
        })
    }

    /// End-to-end and per-part metrics of a configuration over `scenario`.
    pub fn evaluate(&self, config: &Config, scenario: &Scenario) -> std::result::Result<Metrics, EvalError> {
        let cache = self.cache.evaluate(config)?;
        if cache.backend_rates.len() != scenario.rates.len() {
            return Err(EvalError::Invalid(format!(
                "the cache reported {} segments for a scenario of {}",
                cache.backend_rates.len(),
                scenario.rates.len()
            )));
        }
        let (c, limit) = self.pool.sizes(config)?;
        let pool = self.pool.run(c, limit, &cache.backend_rates, scenario.step_s);
        let gc = self.gc.as_ref().map(|g| g.evaluate(config, scenario)).transpose()?;
        Ok(self.combine(scenario, &cache, &pool, gc.as_ref()))
    }

    fn combine(&self, scenario: &Scenario, cache: &CacheResult, pool: &PoolResult, gc: Option<&GcResult>) -> Metrics {
        let hit = self.spec.hit_ms / 1000.0;
        let miss = self.spec.miss_overhead_ms / 1000.0;
        let segments: Vec<Segment> = scenario
            .rates
            .iter()
            .zip(&pool.segments)
            .enumerate()
            .map(|(i, (&rate, q))| {
                let backend = if rate > 0.0 { (cache.backend_rates[i] / rate).clamp(0.0, 1.0) } else { 0.0 };
                let (pause, residual) = gc.map_or((0.0, 0.0), |g| {
                    (
                        g.pause_fraction.get(i).copied().unwrap_or(0.0),
                        g.residual_ms.get(i).copied().unwrap_or(0.0) / 1000.0,
                    )
                });
                Segment {
                    served: rate * scenario.step_s * (1.0 - backend * q.rejected),
                    backend: backend * (1.0 - q.rejected) / (1.0 - backend * q.rejected).max(1e-300),
                    pause: pause.clamp(0.0, 1.0),
                    residual,
                    wait: &q.wait,
                    mu: q.mu,
                }
            })
            .collect();
        let total: f64 = segments.iter().map(|s| s.served).sum();
        let tail = |t: f64| -> f64 {
            if total <= 0.0 {
                return 0.0;
            }
            segments.iter().filter(|s| s.served > 0.0).map(|s| s.served * s.tail(t, hit, miss)).sum::<f64>() / total
        };
        let mean = if total > 0.0 {
            segments
                .iter()
                .map(|s| s.served * (hit + s.pause * s.residual + s.backend * (miss + s.wait.mean() + 1.0 / s.mu)))
                .sum::<f64>()
                / total
        } else {
            0.0
        };
        let p99 = tail_quantile(tail, 0.01, mean.max(1e-6));
        let arrivals = scenario.arrivals();
        let pm = pool.metrics();
        let cm = cache.metrics();
        let gm = gc.map(GcResult::metrics);
        let cache_cost = cache.memory_mb_peak / 1024.0 * self.spec.cost_per_cache_gb;
        let mut out = Metrics::from([
            ("latency_mean_ms".into(), 1000.0 * mean),
            ("latency_p99_ms".into(), 1000.0 * p99),
            ("throughput_rps".into(), total / scenario.duration_s().max(1e-300)),
            ("error_fraction".into(), if arrivals > 0.0 { 1.0 - total / arrivals } else { 0.0 }),
            ("cost".into(), pm["cost"] + cache_cost + gm.as_ref().map_or(0.0, |g| g["cost"])),
            ("memory_mb".into(), pm["memory_mb"] + cache.memory_mb_peak + gc.map_or(0.0, |g| g.heap_mb)),
        ]);
        out.extend(pm.into_iter().map(|(k, v)| (format!("pool_{k}"), v)));
        out.extend(cm.into_iter().map(|(k, v)| (format!("cache_{k}"), v)));
        if let Some(g) = gm {
            out.extend(g.into_iter().map(|(k, v)| (format!("gc_{k}"), v)));
        }
        out
    }
}

/// `type: service`: the pool, the cache and (when given) the collector
/// combined, with the optional `service:` section.
pub struct Service;

impl WorkloadModel for Service {
    fn name(&self) -> &'static str {
        "service"
    }

    fn parse_section(&self, raw: RawSection) -> std::result::Result<SectionBox, SectionError> {
        raw.parse::<ServiceSpec>()
    }

    fn required(&self) -> Vec<&'static str> {
        vec!["pool", "cache"]
    }

    fn optional(&self) -> Vec<&'static str> {
        vec!["gc", "service"]
    }

    fn metrics(&self, spec: &WorkloadSpec) -> Vec<String> {
        metric_names(spec.section::<GcSpec>().is_some())
    }

    fn build(&self, spec: &WorkloadSpec, scenario: &Scenario, base_dir: &Path) -> Result<Box<dyn BuiltModel>> {
        Ok(Box::new(ServiceModel::build(spec, scenario, base_dir)?))
    }
}

impl Section for ServiceSpec {
    fn check(&self, path: &str, _: &Space, problems: &mut Vec<Problem>) {
        ServiceSpec::check(self, path, problems)
    }
}

impl BuiltModel for ServiceModel {
    fn score(&self, config: &Config, scenario: &Scenario) -> std::result::Result<Metrics, EvalError> {
        self.evaluate(config, scenario)
    }
}

/// One segment as a served request sees it.
struct Segment<'a> {
    /// Served requests (the mixture weight).
    served: f64,
    /// Share of served requests that went to the database.
    backend: f64,
    /// Share of time paused by GC, and the mean residual pause (s).
    pause: f64,
    residual: f64,
    wait: &'a Wait,
    mu: f64,
}

impl Segment<'_> {
    /// `P(L > t)` for a served request of this segment.
    fn tail(&self, t: f64, hit: f64, miss: f64) -> f64 {
        let x = t - hit;
        let db = |y: f64| if y <= 0.0 { 1.0 } else { self.wait.tail_plus_service(y, self.mu) };
        let front = |y: f64| if y < 0.0 { 1.0 } else { 0.0 };
        // Without GC.
        let plain = (1.0 - self.backend) * front(x) + self.backend * db(x - miss);
        if self.pause <= 0.0 || self.residual <= 0.0 {
            return plain;
        }
        // With a pause residual U ~ Uniform(0, 2r).
        let width = 2.0 * self.residual;
        let front_gc = if x < 0.0 { 1.0 } else { (1.0 - x / width).max(0.0) };
        let db_gc = integrate8(width, |u| db(x - miss - u)) / width;
        (1.0 - self.pause) * plain + self.pause * ((1.0 - self.backend) * front_gc + self.backend * db_gc)
    }
}
