//! Cache model: a trace-driven simulation of a cache-aside cache with a TTL,
//! a capacity and an eviction policy (LRU, LFU, FIFO).
//!
//! [`CacheSpec::build`] makes the request trace once; each
//! [`CacheModel::evaluate`] replays it through one cache configuration in a
//! single pass of O(1) work per request.
//!
//! # What is modelled
//!
//! - **Cache-aside reads.** A read of a resident entry is a hit (served from
//!   the cache). Any other read is a miss: it goes to the backend and its
//!   value is inserted, first evicting one entry by the policy when the cache
//!   holds `capacity` entries.
//! - **Writes** go to the backend only. They neither populate nor invalidate
//!   the cache, so a resident copy of a written key is *stale* from then on
//!   and is served until it expires or is evicted.
//! - **TTL from insertion** (Redis `SET EX`): an entry expires `ttl_s`
//!   seconds after it was fetched; hits do not extend it. An entry is alive
//!   over `[fetched, fetched + ttl_s)`, so a read at exactly the expiry
//!   instant misses.
//! - **Active expiry**: an entry leaves the cache, and stops using memory, at
//!   its expiry instant, so memory reflects the TTL (a cache that only
//!   expires lazily would hold expired entries until they are evicted).
//! - **Eviction** when full: `lru` evicts the least recently used entry (a
//!   hit moves an entry to the front); `fifo` the earliest inserted (hits do
//!   not move it); `lfu` the entry with the fewest accesses since its
//!   insertion (the fetch counts as one, each hit adds one, stale hits too;
//!   no aging), ties broken by least recent use.
//! - Every entry takes `object_kb` of memory.
//!
//! # The trace
//!
//! **Generated** (default): the independent reference model (IRM). Requests
//! arrive as a Poisson process whose rate in segment `i` is `rates[i]`
//! (exponential gaps, restarted at each segment boundary), so the number in
//! a segment is Poisson(`rates[i] × step_s`), not a rounded mean. Each key
//! is drawn independently from Zipf(`zipf`) over `keys` keys, `p_k ∝ k^-s`
//! (an inverted cumulative table, binary search), and each request is a
//! write with probability `update_fraction`. The same seed gives the same
//! trace.
//!
//! **Recorded** (`trace:`): a CSV file `timestamp,key[,op]` (an optional
//! header; `op` is `read` or `write`, `read` when absent). The file gives
//! *which* keys are requested, in which order, and which requests are
//! writes; the scenario gives *when*: the rows, sorted by timestamp (ties
//! keep file order), are assigned in order to the same Poisson arrivals as a
//! generated trace, from the first row and around again when the scenario
//! needs more requests than the file holds. Key popularity, reuse order and
//! the read/write mix are the recording's; inter-arrival times are Poisson
//! at the scenario's rates, so a forecast peak replays the recorded mix at
//! the peak load. Timestamps only order the rows (they are read at
//! one-second resolution by [`crate::telemetry::parse_timestamp`]).
//!
//! # Warm start
//!
//! A production cache is warm when a load arrives. The model treats the
//! trace as one period of a periodic workload: it replays the trace once to
//! fill the cache (statistics discarded), then again, shifted by the
//! scenario's duration, and every metric comes from the second replay. A
//! cold cache would add up to one miss per distinct key, which on a short
//! trace can be a large share of all reads. This doubles the work per
//! evaluation.
//!
//! # Sampling
//!
//! When the scenario expects more requests than `max_requests`, the model
//! simulates a spatial (per-key) sample, as SHARDS does (Waldspurger et al.,
//! FAST '15): a share `R = max_requests / expected requests` of the *keys*
//! is kept with all their requests, and the cache is simulated with
//! `round(capacity × R)` entries (at least 1). A kept key sees exactly the
//! requests it would see in the full trace, so its request rate and TTL
//! behaviour are unchanged; between two of its requests the sample sees, in
//! expectation, `R` times as many distinct keys as the full trace, against a
//! cache `R` times as large, so its chance of being evicted meanwhile is
//! preserved (exactly what decides an LRU hit; approximately for the other
//! policies). Counts are scaled back to the full load, each exactly when
//! nothing is sampled:
//!
//! - reads and writes by the share of requests the kept keys carry;
//! - misses, and hits on a fresh copy, by the share of keys kept: a key has
//!   at most one miss per lifetime of its entry and a bounded number of
//!   fresh hits before the next write, so these are spread over the many
//!   cold keys, which a key sample represents well;
//! - hits as reads − misses, stale hits as hits − fresh hits: these gather on
//!   the few hottest keys, whose presence in a sample is luck;
//! - resident entries (memory) by the share of keys kept, capped at the full
//!   capacity.
//!
//! Keys are kept by *systematic* sampling over their popularity rank (one
//! key in every `1/R` ranks from a random offset; for a recording, ranked by
//! request count) rather than under a hash threshold: the key space is known
//! here, and every popularity level keeps a near-exact share. Both choices
//! cut the error that the hottest keys cause in plain SHARDS (hit rate read
//! as sampled hits / sampled reads); estimating misses rather than hits is
//! the idea of the paper's SHARDS_adj. Under Che's approximation for LRU
//! (Zipf 0.9, 100 000 keys, `R` = 0.1, capacity 1000), the part of the hit
//! rate's error that comes from which keys are kept has a standard deviation
//! of 0.095 for plain SHARDS, 0.021 with a hash and misses estimated, and
//! 0.0003 as done here.
//!
//! A generated trace is not filtered after the fact: requests for the kept
//! keys of an IRM trace form a Poisson process of rate `λ(t) × q` (`q` the
//! kept keys' total popularity), each key drawn from the popularity
//! conditioned on the kept set. Drawing that process directly is exactly
//! equivalent in distribution to filtering a full trace, at a cost
//! proportional to the sample instead of the full load.
//!
//! The simulated request count is about `max_requests × q / R`: above
//! `max_requests` when the sample holds keys hotter than their share. The
//! estimates need many kept keys and a simulated capacity well above 1
//! (SHARDS keeps thousands of keys); at least one key is always kept, but
//! with `keys × R` or `capacity × R` below about a hundred they are coarse,
//! and a build whose sample would still exceed [`MAX_REQUESTS`] requests is
//! refused.
//!
//! # Metrics
//!
//! Over the counted replay, in the full (unsampled) load's units:
//!
//! - `hit_rate`: reads served from the cache (fresh or stale) / reads (0
//!   when there are no reads); per segment in `hit_rates`.
//! - `stale_fraction`: reads served a stale copy / reads.
//! - `memory_mb_mean`: time-averaged resident entries × `object_kb` / 1024.
//! - `memory_mb_peak`: the most resident entries at any instant ×
//!   `object_kb` / 1024.
//! - `backend_rps_mean`: (read misses + writes) / duration.
//! - `backend_rps_peak`: the highest per-segment backend rate (per segment
//!   in `backend_rates`).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Knob, Metrics, Scenario, TextKnob};
use crate::error::{Error, Problem, ProblemList, Problems, Result};
use crate::eval::EvalError;
use crate::rng::Rng;
use crate::space::{Config, Space};
use crate::telemetry::{csv_rows, parse_timestamp};

/// Metric names, in the order [`CacheResult::metrics`] documents them.
pub const METRICS: &[&str] =
    &["hit_rate", "stale_fraction", "memory_mb_mean", "memory_mb_peak", "backend_rps_mean", "backend_rps_peak"];

/// The largest generated catalogue: the popularity table takes 8 bytes per
/// kept key. Larger catalogues can come from a recorded trace.
pub const MAX_KEYS: u64 = 10_000_000;

/// The largest `max_requests`: the trace takes 12 bytes per request.
pub const MAX_REQUESTS: u64 = 100_000_000;

/// Random streams derived from the build seed.
const STREAM_SAMPLE: u64 = 0xCAC0_0001;
const STREAM_TRACE: u64 = 0xCAC0_0002;

/// A key id in the trace holds the write flag in its top bit.
const WRITE_BIT: u32 = 1 << 31;
const KEY_MASK: u32 = WRITE_BIT - 1;
/// No key (end of a linked list).
const NIL: u32 = u32::MAX;

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
            None => generate(self, rate, offset, &mut arrivals)?,
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

/// An eviction policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Least recently used.
    Lru,
    /// Least frequently used since insertion, ties by least recently used.
    Lfu,
    /// First in, first out (insertion order).
    Fifo,
}

impl Policy {
    pub const ALL: [Policy; 3] = [Policy::Lru, Policy::Lfu, Policy::Fifo];
    /// The names used in a spec, in the order of [`Policy::ALL`].
    pub const NAMES: [&'static str; 3] = ["lru", "lfu", "fifo"];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "lru",
            Policy::Lfu => "lfu",
            Policy::Fifo => "fifo",
        }
    }

    pub fn from_name(name: &str) -> Option<Policy> {
        Policy::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Request counts of one replay (of the simulated, possibly sampled, trace).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub reads: u64,
    /// Reads served from the cache, fresh or stale.
    pub hits: u64,
    /// Reads served a copy older than a write to its key.
    pub stale_hits: u64,
    pub writes: u64,
    /// Requests sent to the backend: read misses and writes.
    pub backend: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.reads += other.reads;
        self.hits += other.hits;
        self.stale_hits += other.stale_hits;
        self.writes += other.writes;
        self.backend += other.backend;
    }
}

/// What one cache configuration did over the scenario (definitions in the
/// module docs; rates and memory in the full load's units).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheResult {
    pub hit_rate: f64,
    pub stale_fraction: f64,
    pub memory_mb_mean: f64,
    pub memory_mb_peak: f64,
    pub backend_rps_mean: f64,
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
    pub write: bool,
    /// Scenario segment the request falls in.
    pub segment: usize,
}

/// The precomputed trace, in time order.
#[derive(Clone)]
struct Trace {
    /// Seconds since the scenario's start.
    times: Vec<f64>,
    /// Dense key id, with [`WRITE_BIT`] set for a write.
    keys: Vec<u32>,
    /// `bounds[i]..bounds[i + 1]` are the requests of segment `i`.
    bounds: Vec<usize>,
    /// Distinct keys in `keys`.
    distinct: usize,
    key_share: f64,
    request_share: f64,
}

impl Trace {
    fn empty(segments: usize, key_share: f64, request_share: f64) -> Trace {
        Trace {
            times: Vec::new(),
            keys: Vec::new(),
            bounds: Vec::with_capacity(segments + 1),
            distinct: 0,
            key_share,
            request_share,
        }
    }
}

/// The cache model over one prepared trace: cheap to evaluate many times.
#[derive(Clone)]
pub struct CacheModel {
    trace: Trace,
    step_s: f64,
    rate: f64,
    object_kb: f64,
    capacity: Knob,
    ttl_s: Knob,
    policy: TextKnob,
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

    pub fn is_empty(&self) -> bool {
        self.trace.times.is_empty()
    }

    /// Distinct keys in the simulated trace.
    pub fn distinct_keys(&self) -> usize {
        self.trace.distinct
    }

    pub fn segments(&self) -> usize {
        self.trace.bounds.len() - 1
    }

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

// ---------------------------------------------------------------------------
// Trace construction

/// Poisson arrivals following the scenario's rates, scaled by a share.
struct Arrivals<'a> {
    scenario: &'a Scenario,
    rng: Rng,
}

impl<'a> Arrivals<'a> {
    fn new(scenario: &'a Scenario, rng: Rng) -> Self {
        Arrivals { scenario, rng }
    }

    /// Fill `trace` with arrivals at `share` × the scenario's rates, taking
    /// each request's key and write flag from `next`.
    fn fill(&mut self, trace: &mut Trace, share: f64, mut next: impl FnMut(&mut Rng) -> u32) {
        let step = self.scenario.step_s;
        let expected = (self.scenario.arrivals() * share).ceil();
        // Reserve for the mean plus four standard deviations.
        let reserve = expected + 4.0 * expected.sqrt();
        trace.times.reserve(reserve as usize);
        trace.keys.reserve(reserve as usize);
        trace.bounds.push(0);
        for (i, rate) in self.scenario.rates.iter().enumerate() {
            let lambda = rate * share;
            let start = i as f64 * step;
            let end = start + step;
            let mut t = start;
            if lambda > 0.0 {
                loop {
                    // 1 - U lies in (0, 1], so the gap is finite.
                    t += -(1.0 - self.rng.uniform()).ln() / lambda;
                    if t >= end {
                        break;
                    }
                    trace.times.push(t);
                    trace.keys.push(next(&mut self.rng));
                }
            }
            trace.bounds.push(trace.times.len());
        }
    }
}

/// Systematic sampling at `rate` from offset `u` in `[0, 1)`: item `i` is
/// kept iff `floor((i + 1) R + u) > floor(i R + u)`, one item in every `1/R`.
fn keeps(i: usize, rate: f64, u: f64) -> bool {
    ((i + 1) as f64 * rate + u).floor() > (i as f64 * rate + u).floor()
}

/// Assigns dense ids to keys in order of first request.
struct DenseIds {
    ids: Vec<u32>,
    next: u32,
}

impl DenseIds {
    fn new(n: usize) -> Self {
        DenseIds { ids: vec![NIL; n], next: 0 }
    }
    fn id(&mut self, key: usize) -> u32 {
        if self.ids[key] == NIL {
            self.ids[key] = self.next;
            self.next += 1;
        }
        self.ids[key]
    }
}

/// The generated IRM trace, sampled at `rate` (module docs).
fn generate(spec: &CacheSpec, rate: f64, offset: f64, arrivals: &mut Arrivals) -> Result<Trace> {
    let keys = spec.keys as usize;
    let rate = rate.max(1.0 / keys as f64);
    // Cumulative popularity of the kept ranks, and the whole catalogue's.
    let mut cumulative = Vec::with_capacity(((keys as f64 * rate).ceil() as usize).min(keys) + 1);
    let (mut total, mut kept) = (0.0, 0.0);
    for i in 0..keys {
        let w = ((i + 1) as f64).powf(-spec.zipf);
        total += w;
        if keeps(i, rate, offset) {
            kept += w;
            cumulative.push(kept);
        }
    }
    if cumulative.is_empty() {
        // Rounding at rate = 1/keys can leave nothing: keep the top key.
        kept = 1.0;
        cumulative.push(kept);
    }
    let request_share = kept / total;
    feasible(arrivals.scenario.arrivals() * request_share, keys, "keys")?;
    let key_share = cumulative.len() as f64 / keys as f64;
    let mut trace = Trace::empty(arrivals.scenario.rates.len(), key_share, request_share);
    let mut dense = DenseIds::new(cumulative.len());
    let last = cumulative.len() - 1;
    let writes = spec.update_fraction;
    arrivals.fill(&mut trace, request_share, |rng| {
        let u = rng.uniform() * kept;
        let rank = cumulative.partition_point(|&c| c <= u).min(last);
        let id = dense.id(rank);
        if writes > 0.0 && rng.chance(writes) { id | WRITE_BIT } else { id }
    });
    trace.distinct = dense.next as usize;
    Ok(trace)
}

/// A recorded trace, sorted by timestamp.
struct Recorded {
    /// Key id (in order of first appearance in the file) with the write bit.
    rows: Vec<u32>,
    keys: usize,
}

/// The recorded trace replayed over the scenario's arrivals, sampled at `rate`.
fn replay(recorded: Recorded, expected: f64, rate: f64, offset: f64, arrivals: &mut Arrivals) -> Result<Trace> {
    // The scenario uses about `expected` rows: sample over those.
    let used = &recorded.rows[..recorded.rows.len().min(expected.ceil().max(1.0) as usize)];
    let mut count = vec![0u64; recorded.keys];
    for r in used {
        count[(r & KEY_MASK) as usize] += 1;
    }
    let present = count.iter().filter(|&&c| c > 0).count();
    let rate = rate.max(1.0 / present as f64);
    // Rank the used keys by request count (ties by first appearance).
    let mut ranked: Vec<usize> = (0..recorded.keys).filter(|&k| count[k] > 0).collect();
    ranked.sort_by_key(|&k| std::cmp::Reverse(count[k]));
    let mut kept = vec![false; recorded.keys];
    for (i, &k) in ranked.iter().enumerate() {
        kept[k] = keeps(i, rate, offset);
    }
    if !kept.iter().any(|&k| k) {
        kept[ranked[0]] = true;
    }
    let mut dense = DenseIds::new(recorded.keys);
    let rows: Vec<u32> = used
        .iter()
        .filter(|&&r| kept[(r & KEY_MASK) as usize])
        .map(|&r| dense.id((r & KEY_MASK) as usize) | (r & WRITE_BIT))
        .collect();
    let request_share = rows.len() as f64 / used.len() as f64;
    feasible(arrivals.scenario.arrivals() * request_share, present, "trace")?;
    let key_share = kept.iter().filter(|&&k| k).count() as f64 / present as f64;
    let mut trace = Trace::empty(arrivals.scenario.rates.len(), key_share, request_share);
    let mut j = 0;
    arrivals.fill(&mut trace, request_share, |_| {
        let r = rows[j];
        j = if j + 1 == rows.len() { 0 } else { j + 1 };
        r
    });
    // Keys of rows never reached (a short scenario) are not in the trace.
    trace.distinct = trace.keys.iter().map(|k| (k & KEY_MASK) as usize + 1).max().unwrap_or(0);
    Ok(trace)
}

/// Refuse a sample too large to simulate: with too few keys for the load,
/// even the smallest key sample carries more than [`MAX_REQUESTS`].
fn feasible(requests: f64, keys: usize, field: &str) -> Result<()> {
    if requests <= MAX_REQUESTS as f64 {
        return Ok(());
    }
    Err(Error::invalid(
        "cache model",
        format!("cache.{field}"),
        format!(
            "the sampled keys still carry {requests:.3e} requests, more than {MAX_REQUESTS} can be simulated: \
             {keys} keys are too few to sample this load by key; use more keys or a shorter scenario"
        ),
    ))
}

/// Read a trace file, naming every bad line.
fn read_trace(path: &Path) -> Result<Recorded> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(source.clone(), e))?;
    parse_trace(&text, &source)
}

/// Parse CSV `timestamp,key[,op]` with an optional header; `source` names
/// the file in messages.
fn parse_trace(text: &str, source: &str) -> Result<Recorded> {
    const VALID: &str = "expected unix seconds, `YYYY-MM-DD HH:MM:SS` (UTC) or RFC 3339 like `2024-05-01T12:00:00Z`";
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let mut problems = ProblemList::default();
    let mut problem = |line: u64, message: String| problems.push(format!("line {line}"), message);
    let mut ids: HashMap<String, u32> = HashMap::new();
    let mut rows: Vec<(i64, u32)> = Vec::new();
    let mut first = true;
    for (line, row) in csv_rows(&mut reader) {
        let record = match row {
            Ok(record) => record,
            Err(message) => {
                problem(line, message);
                continue;
            }
        };
        let ts = parse_timestamp(&record[0]);
        if std::mem::take(&mut first) && ts.is_none() {
            // A header: any names, but the shape of a row.
            if !(2..=3).contains(&record.len()) {
                problem(
                    line,
                    format!("header has {} columns; expected `timestamp,key` or `timestamp,key,op`", record.len()),
                );
            }
            continue;
        }
        let mut ok = true;
        if !(2..=3).contains(&record.len()) {
            problem(line, format!("{} fields; expected `timestamp,key` or `timestamp,key,op`", record.len()));
            continue;
        }
        if ts.is_none() {
            problem(line, format!("`{}` is not a timestamp; {VALID}", &record[0]));
            ok = false;
        }
        let key = &record[1];
        if key.is_empty() {
            problem(line, "empty key; expected the requested key".to_string());
            ok = false;
        }
        let write = match record.get(2).unwrap_or("") {
            "" => false,
            op if op.eq_ignore_ascii_case("read") => false,
            op if op.eq_ignore_ascii_case("write") => true,
            op => {
                problem(line, format!("`{op}` is not an op; expected `read` or `write`"));
                ok = false;
                false
            }
        };
        if !ok {
            continue;
        }
        let next = ids.len() as u32;
        let id = *ids.entry(key.to_string()).or_insert(next);
        if id >= KEY_MASK {
            problem(line, format!("more than {KEY_MASK} distinct keys; split the trace"));
            break;
        }
        rows.push((ts.unwrap_or_default(), if write { id | WRITE_BIT } else { id }));
    }
    let mut items = problems.listed();
    if items.is_empty() && rows.is_empty() {
        items.push(Problem::new("file", "no requests; expected rows `timestamp,key[,op]`"));
    }
    if !items.is_empty() {
        return Err(Error::Invalid(Problems { source: source.to_string(), items }));
    }
    // Stable: equal timestamps keep file order.
    rows.sort_by_key(|&(t, _)| t);
    Ok(Recorded { rows: rows.into_iter().map(|(_, r)| r).collect(), keys: ids.len() })
}

// ---------------------------------------------------------------------------
// Simulation

/// Links of intrusive doubly linked lists over key ids; a [`Chain`] is one
/// list's ends. A key is in at most one chain of a `Links` at a time.
struct Links {
    links: Vec<[u32; 2]>,
}

#[derive(Clone, Copy)]
struct Chain {
    head: u32,
    tail: u32,
}

impl Chain {
    const EMPTY: Chain = Chain { head: NIL, tail: NIL };
}

impl Links {
    fn new(n: usize) -> Self {
        Links { links: vec![[NIL, NIL]; n] }
    }

    fn push_back(&mut self, chain: &mut Chain, k: u32) {
        self.links[k as usize] = [chain.tail, NIL];
        match chain.tail {
            NIL => chain.head = k,
            t => self.links[t as usize][1] = k,
        }
        chain.tail = k;
    }

    fn unlink(&mut self, chain: &mut Chain, k: u32) {
        let [prev, next] = self.links[k as usize];
        match prev {
            NIL => chain.head = next,
            p => self.links[p as usize][1] = next,
        }
        match next {
            NIL => chain.tail = prev,
            n => self.links[n as usize][0] = prev,
        }
    }
}

/// What a policy keeps track of to choose a victim.
trait Eviction {
    fn inserted(&mut self, key: u32);
    fn hit(&mut self, key: u32);
    fn removed(&mut self, key: u32);
    /// The entry to evict from a full cache whose earliest-inserted entry is
    /// `oldest`.
    fn victim(&self, oldest: u32) -> u32;
}

/// FIFO: the earliest inserted, which the expiry order already gives.
struct Fifo;

impl Eviction for Fifo {
    fn inserted(&mut self, _: u32) {}
    fn hit(&mut self, _: u32) {}
    fn removed(&mut self, _: u32) {}
    fn victim(&self, oldest: u32) -> u32 {
        oldest
    }
}

/// LRU: a recency list, least recent at the head.
struct Lru {
    links: Links,
    chain: Chain,
}

impl Lru {
    fn new(n: usize) -> Self {
        Lru { links: Links::new(n), chain: Chain::EMPTY }
    }
}

impl Eviction for Lru {
    fn inserted(&mut self, key: u32) {
        self.links.push_back(&mut self.chain, key);
    }
    fn hit(&mut self, key: u32) {
        if self.chain.tail != key {
            self.links.unlink(&mut self.chain, key);
            self.links.push_back(&mut self.chain, key);
        }
    }
    fn removed(&mut self, key: u32) {
        self.links.unlink(&mut self.chain, key);
    }
    fn victim(&self, _: u32) -> u32 {
        self.chain.head
    }
}

/// LFU in O(1) per operation (Shah, Mitra and Matani, 2010): a list of
/// buckets in increasing access count, each holding its entries in the order
/// they reached that count, which is the order of their last access.
struct Lfu {
    links: Links,
    bucket_of: Vec<u32>,
    buckets: Vec<Bucket>,
    free: Vec<u32>,
    /// The lowest-count bucket.
    first: u32,
}

struct Bucket {
    count: u64,
    entries: Chain,
    prev: u32,
    next: u32,
}

impl Lfu {
    fn new(n: usize) -> Self {
        Lfu { links: Links::new(n), bucket_of: vec![NIL; n], buckets: Vec::new(), free: Vec::new(), first: NIL }
    }

    /// A new empty bucket for `count` between `prev` and `next`.
    fn open(&mut self, count: u64, prev: u32, next: u32) -> u32 {
        let bucket = Bucket { count, entries: Chain::EMPTY, prev, next };
        let b = match self.free.pop() {
            Some(b) => {
                self.buckets[b as usize] = bucket;
                b
            }
            None => {
                self.buckets.push(bucket);
                (self.buckets.len() - 1) as u32
            }
        };
        match prev {
            NIL => self.first = b,
            p => self.buckets[p as usize].next = b,
        }
        if next != NIL {
            self.buckets[next as usize].prev = b;
        }
        b
    }

    /// Take `key` out of its bucket, closing the bucket if it empties.
    fn take(&mut self, key: u32) -> u32 {
        let b = self.bucket_of[key as usize];
        let bucket = &mut self.buckets[b as usize];
        self.links.unlink(&mut bucket.entries, key);
        if bucket.entries.head == NIL {
            let (prev, next) = (bucket.prev, bucket.next);
            match prev {
                NIL => self.first = next,
                p => self.buckets[p as usize].next = next,
            }
            if next != NIL {
                self.buckets[next as usize].prev = prev;
            }
            self.free.push(b);
        }
        b
    }

    fn put(&mut self, key: u32, b: u32) {
        self.links.push_back(&mut self.buckets[b as usize].entries, key);
        self.bucket_of[key as usize] = b;
    }
}

impl Eviction for Lfu {
    fn inserted(&mut self, key: u32) {
        let b = match self.first {
            f if f != NIL && self.buckets[f as usize].count == 1 => f,
            f => self.open(1, NIL, f),
        };
        self.put(key, b);
    }

    fn hit(&mut self, key: u32) {
        let b = self.bucket_of[key as usize];
        let Bucket { count, next, entries, .. } = self.buckets[b as usize];
        let alone = entries.head == entries.tail;
        if alone && (next == NIL || self.buckets[next as usize].count > count + 1) {
            // The only entry at this count: the bucket itself moves up.
            self.buckets[b as usize].count = count + 1;
            return;
        }
        let target = if next != NIL && self.buckets[next as usize].count == count + 1 {
            next
        } else {
            self.open(count + 1, b, next)
        };
        self.take(key);
        self.put(key, target);
    }

    fn removed(&mut self, key: u32) {
        self.take(key);
    }

    fn victim(&self, _: u32) -> u32 {
        self.buckets[self.first as usize].entries.head
    }
}

/// Per-key state of the simulated cache.
#[derive(Clone, Copy)]
struct Slot {
    expiry: f64,
    resident: bool,
    stale: bool,
}

/// What one replay measured, in simulated units.
struct Run {
    segments: Vec<Counts>,
    /// Integral of resident entries over the counted replay.
    entry_seconds: f64,
    peak: u64,
}

/// The cache's contents and the resident-entry integral.
struct Cache<E> {
    slots: Vec<Slot>,
    /// Resident keys in insertion order, which is also expiry order (one TTL).
    order: Links,
    chain: Chain,
    eviction: E,
    ttl: f64,
    resident: u64,
    /// Time of the last change in `resident`, and the integral up to it.
    last: f64,
    entry_seconds: f64,
    peak: u64,
}

impl<E: Eviction> Cache<E> {
    fn advance(&mut self, t: f64) {
        self.entry_seconds += self.resident as f64 * (t - self.last);
        self.last = t;
    }

    /// Remove every entry whose expiry is at or before `t`, each at its
    /// expiry instant.
    fn expire(&mut self, t: f64) {
        while self.chain.head != NIL {
            let k = self.chain.head;
            let expiry = self.slots[k as usize].expiry;
            if expiry > t {
                break;
            }
            self.advance(expiry);
            self.remove(k);
        }
    }

    fn remove(&mut self, k: u32) {
        self.slots[k as usize].resident = false;
        self.order.unlink(&mut self.chain, k);
        self.eviction.removed(k);
        self.resident -= 1;
    }

    fn insert(&mut self, k: u32, t: f64) {
        self.slots[k as usize] = Slot { expiry: t + self.ttl, resident: true, stale: false };
        self.order.push_back(&mut self.chain, k);
        self.eviction.inserted(k);
        self.resident += 1;
        self.peak = self.peak.max(self.resident);
    }
}

/// Replay `trace` twice through the cache; count the second replay (module
/// docs, "Warm start").
fn replay_through<E: Eviction>(trace: &Trace, duration: f64, capacity: u64, ttl: f64, eviction: E) -> Run {
    let n = trace.distinct;
    let mut cache = Cache {
        slots: vec![Slot { expiry: 0.0, resident: false, stale: false }; n],
        order: Links::new(n),
        chain: Chain::EMPTY,
        eviction,
        ttl,
        resident: 0,
        last: 0.0,
        entry_seconds: 0.0,
        peak: 0,
    };
    let segments = trace.bounds.len() - 1;
    let mut counts = vec![Counts::default(); segments];
    for pass in 0..2 {
        let shift = pass as f64 * duration;
        cache.expire(shift);
        cache.advance(shift);
        cache.entry_seconds = 0.0;
        cache.peak = cache.resident;
        counts.fill(Counts::default());
        for (s, c) in counts.iter_mut().enumerate() {
            for i in trace.bounds[s]..trace.bounds[s + 1] {
                let t = trace.times[i] + shift;
                cache.expire(t);
                let raw = trace.keys[i];
                let k = raw & KEY_MASK;
                let slot = cache.slots[k as usize];
                if raw & WRITE_BIT != 0 {
                    c.writes += 1;
                    c.backend += 1;
                    if slot.resident {
                        cache.slots[k as usize].stale = true;
                    }
                    continue;
                }
                c.reads += 1;
                if slot.resident {
                    c.hits += 1;
                    c.stale_hits += slot.stale as u64;
                    cache.eviction.hit(k);
                    continue;
                }
                c.backend += 1;
                if capacity == 0 {
                    continue;
                }
                cache.advance(t);
                if cache.resident >= capacity {
                    let victim = cache.eviction.victim(cache.chain.head);
                    cache.remove(victim);
                }
                cache.insert(k, t);
            }
        }
    }
    let end = 2.0 * duration;
    cache.expire(end);
    cache.advance(end);
    Run { segments: counts, entry_seconds: cache.entry_seconds, peak: cache.peak }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive an eviction structure against a plain model of it: every
    /// victim must agree.
    fn check_policy<E: Eviction>(mut e: E, policy: Policy, seed: u64) {
        let n = 40u32;
        let mut rng = Rng::new(seed, 1);
        // (key, inserted seq, last access seq, accesses)
        let mut model: Vec<(u32, u64, u64, u64)> = Vec::new();
        let mut oldest: Vec<u32> = Vec::new();
        for seq in 0..5000u64 {
            let k = rng.below(n as usize) as u32;
            match model.iter().position(|m| m.0 == k) {
                Some(i) if rng.chance(0.2) => {
                    model.remove(i);
                    oldest.retain(|&o| o != k);
                    e.removed(k);
                }
                Some(i) => {
                    model[i].2 = seq;
                    model[i].3 += 1;
                    e.hit(k);
                }
                None if model.len() >= 10 => {
                    let expected = match policy {
                        Policy::Lru => model.iter().min_by_key(|m| m.2),
                        Policy::Lfu => model.iter().min_by_key(|m| (m.3, m.2)),
                        Policy::Fifo => model.iter().min_by_key(|m| m.1),
                    }
                    .map(|m| m.0)
                    .unwrap();
                    assert_eq!(e.victim(oldest[0]), expected, "{policy} at step {seq}");
                    model.retain(|m| m.0 != expected);
                    oldest.retain(|&o| o != expected);
                    e.removed(expected);
                }
                None => {
                    model.push((k, seq, seq, 1));
                    oldest.push(k);
                    e.inserted(k);
                }
            }
        }
    }

    #[test]
    fn eviction_structures_choose_the_documented_victim() {
        for seed in 0..5 {
            check_policy(Lru::new(40), Policy::Lru, seed);
            check_policy(Lfu::new(40), Policy::Lfu, seed);
            check_policy(Fifo, Policy::Fifo, seed);
        }
    }

    #[test]
    fn systematic_sampling_keeps_one_item_per_stride() {
        for &(n, rate) in &[(1000usize, 0.1), (997, 0.013), (50, 1.0), (10, 0.35)] {
            for u in [0.0, 0.37, 0.999] {
                let kept = (0..n).filter(|&i| keeps(i, rate, u)).count() as f64;
                assert!((kept - n as f64 * rate).abs() <= 1.0, "n {n} rate {rate} u {u}: kept {kept}");
            }
        }
    }

    #[test]
    fn trace_csv_header_ops_and_order() {
        let text = "timestamp,key,op\n20,b,write\n10,a\n10,c,READ\n\n30,a,read\n";
        let r = parse_trace(text, "t.csv").unwrap();
        assert_eq!(r.keys, 3);
        // Sorted by time, ties in file order; ids in order of first appearance.
        assert_eq!(r.rows, vec![1, 2, WRITE_BIT, 1]);
        let no_header = parse_trace("1700000000,x\n1700000001,y,write\n", "t.csv").unwrap();
        assert_eq!(no_header.rows, vec![0, 1 | WRITE_BIT]);
    }

    #[test]
    fn trace_csv_names_every_bad_line() {
        let text = "ts,key\nsoon,a\n5,\n6,a,delete\n7\n8,b\n";
        let Err(Error::Invalid(p)) = parse_trace(text, "keys.csv") else { panic!("accepted a bad trace") };
        assert_eq!(p.source, "keys.csv");
        let paths: Vec<&str> = p.items.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(paths, ["line 2", "line 3", "line 4", "line 5"], "{p}");
        assert!(p.items[0].message.contains("`soon` is not a timestamp"), "{p}");
        assert!(p.items[2].message.contains("`delete` is not an op"), "{p}");
        assert!(matches!(parse_trace("key\n", "k.csv"), Err(Error::Invalid(_))));
        assert!(matches!(parse_trace("", "k.csv"), Err(Error::Invalid(_))));
    }
}
