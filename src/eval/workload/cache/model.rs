//! The cache model over one prepared trace: replays it through a
//! configuration's cache and scales the counts back to the full load.

use std::fmt;

use super::policy::{Fifo, Lfu, Lru, Policy};
use super::sim::{Counts, Run, replay_through};
use super::trace::Trace;
use super::{KEY_MASK, METRICS, WRITE_BIT};
use crate::eval::EvalError;
use crate::eval::workload::{Knob, Metrics, TextKnob};
use crate::space::Config;

/// What one cache configuration did over the scenario (definitions in the
/// module docs; rates and memory in the full load's units).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheResult {
    /// Reads served from the cache (fresh or stale) / reads.
    pub hit_rate: f64,
    /// Reads served a stale copy / reads.
    pub stale_fraction: f64,
    /// Time-averaged memory of the resident entries, MB.
    pub memory_mb_mean: f64,
    /// Most memory of resident entries at any instant, MB.
    pub memory_mb_peak: f64,
    /// Backend requests (read misses and writes) per second.
    pub backend_rps_mean: f64,
    /// The highest per-segment backend rate.
    pub backend_rps_peak: f64,
    /// Backend requests per second in each scenario segment.
    pub backend_rates: Vec<f64>,
    /// Hit rate in each scenario segment (0 for a segment without reads).
    pub hit_rates: Vec<f64>,
    /// The simulated requests (of the sample, when sampled).
    pub counts: Counts,
}

impl CacheResult {
    /// The metrics by the names in [`METRICS`].
    pub fn metrics(&self) -> Metrics {
        let values = [
            self.hit_rate,
            self.stale_fraction,
            self.memory_mb_mean,
            self.memory_mb_peak,
            self.backend_rps_mean,
            self.backend_rps_peak,
        ];
        METRICS.iter().zip(values).map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// How the simulated trace relates to the full load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// The target share of keys, `min(1, max_requests / expected requests)`.
    pub rate: f64,
    /// Share of the keys kept: the scale of capacity, memory, misses and
    /// fresh hits.
    pub key_share: f64,
    /// Share of the requests the kept keys carry (their total popularity,
    /// for a generated trace): the scale of reads and writes.
    pub request_share: f64,
}

/// One request of the simulated trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Request {
    /// Seconds since the start of the scenario.
    pub time_s: f64,
    /// Dense key id, `0..CacheModel::distinct_keys()`, in order of first request.
    pub key: u32,
    /// A write (else a read).
    pub write: bool,
    /// Scenario segment the request falls in.
    pub segment: usize,
}

/// The cache model over one prepared trace: cheap to evaluate many times.
#[derive(Clone)]
pub struct CacheModel {
    pub(super) trace: Trace,
    pub(super) step_s: f64,
    pub(super) rate: f64,
    pub(super) object_kb: f64,
    pub(super) capacity: Knob,
    pub(super) ttl_s: Knob,
    pub(super) policy: TextKnob,
}

impl fmt::Debug for CacheModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheModel")
            .field("requests", &self.trace.times.len())
            .field("distinct_keys", &self.trace.distinct)
            .field("segments", &self.segments())
            .field("step_s", &self.step_s)
            .field("sampling", &self.sampling())
            .finish_non_exhaustive()
    }
}

impl CacheModel {
    /// Simulate the configuration's capacity, TTL and policy.
    pub fn evaluate(&self, config: &Config) -> std::result::Result<CacheResult, EvalError> {
        let capacity = self.capacity.value(config)?;
        if !(capacity.is_finite() && capacity >= 1.0) {
            return Err(EvalError::Invalid(format!("cache.capacity: {capacity} entries; must be at least 1")));
        }
        let ttl_s = self.ttl_s.value(config)?;
        if ttl_s.is_nan() || ttl_s <= 0.0 {
            return Err(EvalError::Invalid(format!("cache.ttl_s: {ttl_s} s; must be > 0")));
        }
        let name = self.policy.value(config);
        let policy = Policy::from_name(name).ok_or_else(|| {
            EvalError::Invalid(format!("cache.policy: unknown policy `{name}`; valid: {}", Policy::NAMES.join(", ")))
        })?;
        Ok(self.simulate(capacity.round() as u64, ttl_s, policy))
    }

    /// Replay the trace through a cache of `capacity` entries (of the full
    /// load; scaled by the key share when sampled, 0 caches nothing) whose
    /// entries live `ttl_s` seconds (`f64::INFINITY`: no expiry; 0, negative
    /// or NaN: nothing is ever served).
    pub fn simulate(&self, capacity: u64, ttl_s: f64, policy: Policy) -> CacheResult {
        let ttl = if ttl_s > 0.0 { ttl_s } else { 0.0 };
        let n = self.trace.distinct;
        let simulated = self.simulated_capacity(capacity);
        let run = match policy {
            Policy::Lru => replay_through(&self.trace, self.duration_s(), simulated, ttl, Lru::new(n)),
            Policy::Lfu => replay_through(&self.trace, self.duration_s(), simulated, ttl, Lfu::new(n)),
            Policy::Fifo => replay_through(&self.trace, self.duration_s(), simulated, ttl, Fifo),
        };
        self.result(&run, capacity)
    }

    /// The cache size simulated for a full-load `capacity`: scaled by the key
    /// share and rounded (at least 1 unless 0), at most the distinct keys of
    /// the trace (a larger cache never evicts).
    pub fn simulated_capacity(&self, capacity: u64) -> u64 {
        if capacity == 0 {
            return 0;
        }
        let scaled = if self.trace.key_share < 1.0 {
            ((capacity as f64 * self.trace.key_share).round() as u64).max(1)
        } else {
            capacity
        };
        scaled.min(self.trace.distinct.max(1) as u64)
    }

    /// How the simulated trace relates to the full load.
    pub fn sampling(&self) -> Sampling {
        Sampling { rate: self.rate, key_share: self.trace.key_share, request_share: self.trace.request_share }
    }

    /// The simulated trace, in time order.
    pub fn requests(&self) -> impl Iterator<Item = Request> + '_ {
        let t = &self.trace;
        (0..self.segments()).flat_map(move |s| {
            (t.bounds[s]..t.bounds[s + 1]).map(move |i| Request {
                time_s: t.times[i],
                key: t.keys[i] & KEY_MASK,
                write: t.keys[i] & WRITE_BIT != 0,
                segment: s,
            })
        })
    }

    /// Requests in the simulated trace.
    pub fn len(&self) -> usize {
        self.trace.times.len()
    }

    /// No request at all.
    pub fn is_empty(&self) -> bool {
        self.trace.times.is_empty()
    }

    /// Distinct keys in the simulated trace.
    pub fn distinct_keys(&self) -> usize {
        self.trace.distinct
    }

    /// Scenario segments.
    pub fn segments(&self) -> usize {
        self.trace.bounds.len() - 1
    }

    /// Length of the scenario, seconds.
    pub fn duration_s(&self) -> f64 {
        self.step_s * self.segments() as f64
    }

    /// Scale a replay's counts to the full load; `capacity` is the full-load one.
    fn result(&self, run: &Run, capacity: u64) -> CacheResult {
        let mut total = Counts::default();
        for c in &run.segments {
            total.add(c);
        }
        let segments: Vec<Estimate> = run.segments.iter().map(|c| self.estimate(c)).collect();
        let all = self.estimate(&total);
        let backend_rates: Vec<f64> = segments.iter().map(|e| e.backend / self.step_s).collect();
        // Memory in full-load entries: scaled by the key share, never above
        // the full cache (the simulated capacity is rounded).
        let full_entries = |entries: f64| (entries / self.trace.key_share).min(capacity as f64);
        let mb = |entries: f64| entries * self.object_kb / 1024.0;
        let duration = self.duration_s();
        CacheResult {
            hit_rate: all.hit_rate(),
            stale_fraction: all.stale_fraction(),
            memory_mb_mean: mb(full_entries(run.entry_seconds / duration)),
            memory_mb_peak: mb(full_entries(run.peak as f64)),
            backend_rps_mean: all.backend / duration,
            backend_rps_peak: backend_rates.iter().copied().fold(0.0, f64::max),
            hit_rates: segments.iter().map(Estimate::hit_rate).collect(),
            backend_rates,
            counts: total,
        }
    }

    /// Full-load counts from simulated ones (module docs, "Sampling"):
    /// reads and writes by the request share; misses and fresh hits, which
    /// come from the many cold keys, by the key share; hits and stale hits,
    /// which come from the few hot keys, as the differences.
    fn estimate(&self, c: &Counts) -> Estimate {
        let (requests, keys) = (self.trace.request_share, self.trace.key_share);
        let reads = c.reads as f64 / requests;
        let misses = (c.reads - c.hits) as f64 / keys;
        let fresh = (c.hits - c.stale_hits) as f64 / keys;
        let hits = (reads - misses).max(0.0);
        Estimate { reads, hits, stale_hits: (hits - fresh).max(0.0), backend: misses + c.writes as f64 / requests }
    }
}

/// Estimated full-load counts (exact when not sampled).
struct Estimate {
    reads: f64,
    hits: f64,
    stale_hits: f64,
    backend: f64,
}

impl Estimate {
    fn hit_rate(&self) -> f64 {
        if self.reads > 0.0 { self.hits / self.reads } else { 0.0 }
    }
    fn stale_fraction(&self) -> f64 {
        if self.reads > 0.0 { self.stale_hits / self.reads } else { 0.0 }
    }
}
