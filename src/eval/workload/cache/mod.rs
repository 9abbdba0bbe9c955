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
//!
//! The files: `spec` (the `cache:` section and its checks), `trace` (making
//! the request trace, generated or recorded, sampled), `policy` (eviction
//! structures), `sim` (one replay through a cache) and `model` (a
//! configuration's metrics from a replay).

mod model;
mod policy;
mod sim;
mod spec;
mod trace;

pub use model::{CacheModel, CacheResult, Request, Sampling};
pub use policy::Policy;
pub use sim::Counts;
pub use spec::{Cache, CacheSpec};

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

#[cfg(test)]
mod tests;
