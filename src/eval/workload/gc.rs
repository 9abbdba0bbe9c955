//! A generational garbage collector (young + old generation, stop-the-world,
//! throughput-collector-like) as an analytical model: collection
//! frequencies, pauses and overhead for a heap and nursery size under the
//! load of a [`Scenario`].
//!
//! # Assumptions
//!
//! - Every arrival allocates `alloc_kb_per_event` KB, so a segment with rate
//!   λ (events/s) allocates `a = λ · alloc_kb_per_event / 1024` MB/s at a
//!   steady rate. Each segment is treated as stationary (the generations are
//!   in their steady state at that rate).
//! - Object lifetimes are a two-class mixture of exponentials: a share
//!   `1 − q` of the allocated bytes is short-lived (mean `τ_s =
//!   short_lifetime_ms`), a share `q = long_fraction` long-lived (mean `τ_L =
//!   long_lifetime_s`). On top of that `live_mb` is always resident in the
//!   old generation.
//! - Tenuring threshold 1: whatever survives one minor collection is
//!   promoted to the old generation (no survivor spaces; their size would be
//!   part of `young_mb`). Exponential lifetimes are memoryless, so a promoted
//!   object lives on for another `τ` of its class on average.
//! - Pauses stop the world but not the arrivals: requests that arrive during
//!   a pause allocate just after it, so the allocation per second of wall
//!   time is still `a` (the pause only shifts it; this matters when the
//!   overhead is large, which is refused below anyway).
//!
//! # Formulas (per segment, allocation rate `a` > 0)
//!
//! Young generation `Y = young_mb`, old generation capacity `C = heap_mb −
//! young_mb`.
//!
//! - The young generation fills every `Δ = Y / a` seconds: `a / Y`
//!   collections per second.
//! - Survivors. Bytes are allocated uniformly over `Δ`; a byte of age `u`
//!   is alive with probability `e^{−u/τ}`, so the mean survival of a class is
//!   `s(τ) = (1/Δ)∫₀^Δ e^{−u/τ} du = (τ/Δ)(1 − e^{−Δ/τ})`, and each collection
//!   finds `S = Y · [(1 − q) s(τ_s) + q s(τ_L)]` MB alive (`S_s` and `S_L` by
//!   class).
//! - Old live data. Survivors are promoted in batches every `Δ`; a batch
//!   promoted `k` collections ago is still alive in the share `e^{−kΔ/τ}`,
//!   so just before a collection the promoted objects still alive are
//!   `Σ_{k≥1} S_c e^{−kΔ/τ_c} = S_c / (e^{Δ/τ_c} − 1)` per class — Little's
//!   law (promotion rate × mean remaining lifetime, `a q τ_L` for `Δ ≪ τ`)
//!   evaluated at the collection instant, which is half a batch below the
//!   time average. With the live set,
//!   `X = live_mb + S_s/(e^{Δ/τ_s} − 1) + S_L/(e^{Δ/τ_L} − 1)`.
//! - Out of memory: a full collection keeps `X + S` (the old generation's
//!   live data and the nursery's survivors, compacted into the old
//!   generation); if `X + S > C` the heap cannot hold it:
//!   [`EvalError::Invalid`]. (This is stricter than `X > C` by one promotion
//!   batch: the collection that found the old generation full must still
//!   place its survivors.)
//! - Major collections. When the young generation fills and the old one
//!   cannot take one more promotion batch (free old space `< S`), the
//!   collector runs a full collection of both generations instead of a minor
//!   one. After it the old generation holds `X + S` and grows by `S` per
//!   collection; the full collection comes when the occupancy before a
//!   collection exceeds `C − S`. With the batches arriving at a random phase
//!   the occupancy at that moment is on average `C − S/2`, so a cycle lasts
//!   `m = max(1, (C − X)/S − 1/2)` young collections (the fluid limit "free
//!   old space / promotion rate" less half a batch), one of them full:
//!   `majors/s = (a/Y) / m`, `minors/s = (a/Y) − majors/s`.
//! - Pauses. Minor: `P_m = minor_base_ms + minor_ms_per_mb · S` (copying the
//!   survivors). Major (full): `P_M = major_base_ms + major_ms_per_mb · (X +
//!   S)`: marking and compacting are proportional to the live data of both
//!   generations at the collection; dead objects are not traced (the sweep
//!   of the dead is taken as part of the base cost).
//! - Segment overhead (share of time paused): `f = (minors/s · P_m +
//!   majors/s · P_M) / 1000`. A segment with `f ≥ 0.98` is refused like the
//!   JVM's "GC overhead limit exceeded".
//! - Residual pause seen by a request arriving during a pause (length
//!   biased): `E[P²] / (2 E[P])` over the segment's pauses.
//!
//! A segment with no load allocates nothing: no collection, no pause (the
//! live set must still fit in the old generation).
//!
//! # Over the scenario
//!
//! Counts are summed over segments (`rate × step_s`) and divided by the
//! duration; the overhead is the time-weighted mean of the segments'; the
//! pause mean is over all pauses. The pause-length distribution is the
//! mixture of point masses `P_m` and `P_M` of every segment weighted by the
//! number of those pauses; `pause_p99_ms` is its 99th percentile (the
//! smallest length whose cumulative weight reaches 99%), `pause_max_ms` the
//! longest pause that happens at all. `footprint_overhead = heap_mb / L − 1`
//! where `L` is the most live data over the scenario (`X + S`, what a full
//! collection keeps; `live_mb` in a segment with no load): the heap held per
//! MB of live data beyond the live data itself. `cost = heap_mb / 1024 ·
//! cost_per_gb_hour`, per hour of running.
//!
//! `tests/eval_gc.rs` checks these formulas against a discrete-event
//! simulation of a heap of chunks (collection rates, pauses, overhead, p99
//! and residual pause agree within a few percent).

use serde::{Deserialize, Serialize};

use super::model::{BuiltModel, RawSection, Section, SectionBox, SectionError, WorkloadModel, missing, names};
use super::{Knob, Metrics, Scenario, WorkloadSpec};
use crate::error::{Error, Problem, Problems, Result};
use crate::eval::EvalError;
use crate::space::{Config, Space};

/// The scalar metrics of [`GcResult::metrics`], by name.
pub const METRICS: &[&str] = &[
    "minor_per_s",
    "major_per_hour",
    "pause_mean_ms",
    "pause_p99_ms",
    "pause_max_ms",
    "gc_time_fraction",
    "heap_mb",
    "footprint_overhead",
    "cost",
];

/// Share of time paused at which a configuration is refused (the JVM's
/// `GCTimeLimit` default).
pub const OVERHEAD_LIMIT: f64 = 0.98;

/// The percentile reported as `pause_p99_ms`.
const P99: f64 = 0.99;

/// The smallest generation size a knob may take, MB (the JVM refuses
/// smaller heaps).
const MIN_GENERATION_MB: f64 = 1.0;

/// The `gc:` section of a workload evaluator spec. Defaults are those of a
/// typical JVM web service: a request allocates 256 KB, mostly garbage
/// within 50 ms; 1% of the bytes (sessions, cache entries) live a minute;
/// 256 MB always resident; a parallel copying young collection (1 ms + 0.5
/// ms per MB survived) and a parallel mark-compact full collection (20 ms + 1
/// ms per MB live).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GcSpec {
    /// Total heap, MB (young + old).
    pub heap_mb: Knob,
    /// Young generation (nursery), MB; must be smaller than the heap.
    pub young_mb: Knob,
    /// KB allocated per arrival of the scenario (default 256).
    #[serde(default = "defaults::alloc_kb_per_event")]
    pub alloc_kb_per_event: f64,
    /// Long-lived data always resident in the old generation, MB (default 256).
    #[serde(default = "defaults::live_mb")]
    pub live_mb: f64,
    /// Mean lifetime of short-lived objects, ms (default 50).
    #[serde(default = "defaults::short_lifetime_ms")]
    pub short_lifetime_ms: f64,
    /// Share of allocated bytes that is long-lived, in [0, 1] (default 0.01).
    #[serde(default = "defaults::long_fraction")]
    pub long_fraction: f64,
    /// Mean lifetime of long-lived objects, s (default 60).
    #[serde(default = "defaults::long_lifetime_s")]
    pub long_lifetime_s: f64,
    /// Fixed cost of a minor collection, ms (default 1).
    #[serde(default = "defaults::minor_base_ms")]
    pub minor_base_ms: f64,
    /// Minor pause per MB copied (survivors), ms (default 0.5).
    #[serde(default = "defaults::minor_ms_per_mb")]
    pub minor_ms_per_mb: f64,
    /// Fixed cost of a major (full) collection, ms (default 20).
    #[serde(default = "defaults::major_base_ms")]
    pub major_base_ms: f64,
    /// Major pause per MB live in the heap at the collection (marked and
    /// compacted), ms (default 1).
    #[serde(default = "defaults::major_ms_per_mb")]
    pub major_ms_per_mb: f64,
    /// Cost of one GB of heap for an hour (default 0: no cost term).
    #[serde(default)]
    pub cost_per_gb_hour: f64,
}

mod defaults {
    pub fn alloc_kb_per_event() -> f64 {
        256.0
    }
    pub fn live_mb() -> f64 {
        256.0
    }
    pub fn short_lifetime_ms() -> f64 {
        50.0
    }
    pub fn long_fraction() -> f64 {
        0.01
    }
    pub fn long_lifetime_s() -> f64 {
        60.0
    }
    pub fn minor_base_ms() -> f64 {
        1.0
    }
    pub fn minor_ms_per_mb() -> f64 {
        0.5
    }
    pub fn major_base_ms() -> f64 {
        20.0
    }
    pub fn major_ms_per_mb() -> f64 {
        1.0
    }
}

impl GcSpec {
    /// A spec with the given heap and young generation and the defaults for
    /// everything else.
    pub fn new(heap_mb: Knob, young_mb: Knob) -> GcSpec {
        GcSpec {
            heap_mb,
            young_mb,
            alloc_kb_per_event: defaults::alloc_kb_per_event(),
            live_mb: defaults::live_mb(),
            short_lifetime_ms: defaults::short_lifetime_ms(),
            long_fraction: defaults::long_fraction(),
            long_lifetime_s: defaults::long_lifetime_s(),
            minor_base_ms: defaults::minor_base_ms(),
            minor_ms_per_mb: defaults::minor_ms_per_mb(),
            major_base_ms: defaults::major_base_ms(),
            major_ms_per_mb: defaults::major_ms_per_mb(),
            cost_per_gb_hour: 0.0,
        }
    }

    /// Check the spec against the space; push every problem found, with
    /// paths under `path` (e.g. `evaluator.gc.young_mb`).
    pub fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        self.check_fields(path, Some(space), problems);
    }

    /// The model, after checking every number of the spec (the knobs that
    /// name parameters are checked by [`GcSpec::check`], which needs the
    /// space); problems are reported under `gc.`.
    pub fn build(&self) -> Result<GcModel> {
        let mut problems = Vec::new();
        self.check_fields("gc", None, &mut problems);
        if problems.is_empty() {
            Ok(GcModel { spec: self.clone() })
        } else {
            Err(Error::Invalid(Problems { source: "spec".into(), items: problems }))
        }
    }

    /// Every check; knobs naming a parameter are checked only with a space.
    fn check_fields(&self, path: &str, space: Option<&Space>, problems: &mut Vec<Problem>) {
        let at = |field: &str| format!("{path}.{field}");
        let knobs = [(&self.heap_mb, "heap_mb"), (&self.young_mb, "young_mb")];
        let mut ranges = [None, None];
        for ((knob, field), range) in knobs.into_iter().zip(ranges.iter_mut()) {
            let before = problems.len();
            match (knob, space) {
                (Knob::Param(_), None) => continue,
                (_, Some(space)) => knob.check(&at(field), space, MIN_GENERATION_MB, f64::INFINITY, problems),
                (Knob::Fixed(_), None) => knob.check(
                    &at(field),
                    &Space { params: Vec::new(), relations: Vec::new() },
                    MIN_GENERATION_MB,
                    f64::INFINITY,
                    problems,
                ),
            }
            if problems.len() == before {
                // Without a space only a fixed number has a range.
                *range = knob.range(space.unwrap_or(&Space { params: Vec::new(), relations: Vec::new() }));
            }
        }
        if let [Some((_, heap_hi)), Some((young_lo, _))] = ranges
            && young_lo >= heap_hi
        {
            problems.push(Problem::new(
                at("young_mb"),
                format!(
                    "must be smaller than heap_mb, but young_mb is at least {young_lo} MB and heap_mb at most \
                     {heap_hi} MB: every configuration would fail"
                ),
            ));
        }

        let mut number = |field: &str, v: f64, ok: bool, valid: &str| {
            if !(v.is_finite() && ok) {
                problems.push(Problem::new(at(field), format!("must be {valid} (got {v})")));
            }
        };
        let positive = "a number > 0";
        let non_negative = "a number ≥ 0";
        number("alloc_kb_per_event", self.alloc_kb_per_event, self.alloc_kb_per_event > 0.0, positive);
        number("live_mb", self.live_mb, self.live_mb > 0.0, positive);
        number("short_lifetime_ms", self.short_lifetime_ms, self.short_lifetime_ms > 0.0, positive);
        number(
            "long_fraction",
            self.long_fraction,
            (0.0..=1.0).contains(&self.long_fraction),
            "a share between 0 and 1",
        );
        number("long_lifetime_s", self.long_lifetime_s, self.long_lifetime_s > 0.0, positive);
        number("minor_base_ms", self.minor_base_ms, self.minor_base_ms >= 0.0, non_negative);
        number("minor_ms_per_mb", self.minor_ms_per_mb, self.minor_ms_per_mb >= 0.0, non_negative);
        number("major_base_ms", self.major_base_ms, self.major_base_ms >= 0.0, non_negative);
        number("major_ms_per_mb", self.major_ms_per_mb, self.major_ms_per_mb >= 0.0, non_negative);
        number("cost_per_gb_hour", self.cost_per_gb_hour, self.cost_per_gb_hour >= 0.0, non_negative);
    }
}

/// A checked [`GcSpec`], ready to evaluate configurations.
#[derive(Debug, Clone, PartialEq)]
pub struct GcModel {
    spec: GcSpec,
}

/// What the model predicts for one configuration over a scenario.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GcResult {
    /// Mean minor (young-only) collections per second.
    pub minor_per_s: f64,
    /// Mean major (full) collections per hour.
    pub major_per_hour: f64,
    /// Mean pause over all pauses, ms (0 without any).
    pub pause_mean_ms: f64,
    /// 99th percentile of the pause lengths over all pauses, ms.
    pub pause_p99_ms: f64,
    /// Longest pause, ms.
    pub pause_max_ms: f64,
    /// Share of wall time paused.
    pub gc_time_fraction: f64,
    /// The heap, MB.
    pub heap_mb: f64,
    /// `heap / most live data − 1`.
    pub footprint_overhead: f64,
    /// Cost of the heap per hour.
    pub cost: f64,
    /// Per scenario segment: share of time paused.
    pub pause_fraction: Vec<f64>,
    /// Per segment: mean remaining pause seen by a request arriving during a
    /// pause, `E[P²] / (2 E[P])`, ms (0 without pauses).
    pub residual_ms: Vec<f64>,
}

impl GcResult {
    /// The scalar fields, named as in [`METRICS`].
    pub fn metrics(&self) -> Metrics {
        let values = [
            self.minor_per_s,
            self.major_per_hour,
            self.pause_mean_ms,
            self.pause_p99_ms,
            self.pause_max_ms,
            self.gc_time_fraction,
            self.heap_mb,
            self.footprint_overhead,
            self.cost,
        ];
        METRICS.iter().zip(values).map(|(k, v)| (k.to_string(), v)).collect()
    }
}

/// The steady state of the generations at one allocation rate.
#[derive(Debug, Clone, Copy)]
struct Steady {
    /// MB alive in the young generation when it fills (`S`).
    survivors: f64,
    /// MB alive in the old generation just before a collection (`X`).
    old_live: f64,
}

/// One segment's collections.
struct Segment {
    /// What a full collection keeps, MB (`X + S`).
    kept: f64,
    /// Minor and major collections per second.
    minor_s: f64,
    major_s: f64,
    /// Their pauses, ms.
    minor_ms: f64,
    major_ms: f64,
}

/// Sizes the model can work with, and a scenario of segments.
fn check_inputs(heap_mb: f64, young_mb: f64, scenario: &Scenario) -> std::result::Result<(), EvalError> {
    if !(heap_mb.is_finite() && young_mb.is_finite() && young_mb > 0.0) {
        return Err(EvalError::Invalid(format!(
            "gc: heap_mb = {heap_mb} and young_mb = {young_mb} must be finite and young_mb > 0"
        )));
    }
    if young_mb >= heap_mb {
        return Err(EvalError::Invalid(format!(
            "gc: the young generation ({young_mb} MB) must be smaller than the heap ({heap_mb} MB)"
        )));
    }
    if !(scenario.step_s.is_finite() && scenario.step_s > 0.0) || scenario.rates.is_empty() {
        return Err(EvalError::Invalid(format!(
            "gc: the scenario needs segments of a positive length (step_s = {}, {} segments)",
            scenario.step_s,
            scenario.rates.len()
        )));
    }
    Ok(())
}

/// For `x = Δ/τ`: the mean survival over one fill period `(1 − e^{−x}) / x`
/// and the promoted batches still alive per batch `1 / (e^x − 1) = e^{−x} /
/// (1 − e^{−x})`, from one `exp_m1` (accurate for small `x`).
fn survival(x: f64) -> (f64, f64) {
    let em = (-x).exp_m1(); // e^{−x} − 1, in (−1, 0]
    let mean = if x < 1e-9 { 1.0 - 0.5 * x } else { -em / x };
    (mean, (1.0 + em) / -em)
}

impl GcModel {
    /// Evaluate a configuration: the heap and young sizes are read from it.
    pub fn evaluate(&self, config: &Config, scenario: &Scenario) -> std::result::Result<GcResult, EvalError> {
        let heap = self.spec.heap_mb.value(config)?;
        let young = self.spec.young_mb.value(config)?;
        self.model(heap, young, scenario)
    }

    /// The model for a heap and young generation of the given sizes (MB).
    /// An out-of-memory configuration (see the module doc), more than
    /// [`OVERHEAD_LIMIT`] of a segment paused, or a malformed scenario is
    /// [`EvalError::Invalid`].
    pub fn model(&self, heap_mb: f64, young_mb: f64, scenario: &Scenario) -> std::result::Result<GcResult, EvalError> {
        check_inputs(heap_mb, young_mb, scenario)?;
        let n = scenario.rates.len();
        let step = scenario.step_s;
        let mut pause_fraction = Vec::with_capacity(n);
        let mut residual_ms = Vec::with_capacity(n);
        // (pause length ms, number of such pauses)
        let mut atoms: Vec<(f64, f64)> = Vec::with_capacity(2 * n);
        let (mut minors, mut majors, mut paused_ms) = (0.0, 0.0, 0.0);
        let mut most_live: f64 = 0.0;
        for (i, &rate) in scenario.rates.iter().enumerate() {
            let g = self.segment(i, rate, heap_mb, young_mb)?;
            most_live = most_live.max(g.kept);
            let busy_ms = g.minor_s * g.minor_ms + g.major_s * g.major_ms;
            pause_fraction.push(busy_ms / 1000.0);
            residual_ms.push(if busy_ms > 0.0 {
                (g.minor_s * g.minor_ms * g.minor_ms + g.major_s * g.major_ms * g.major_ms) / (2.0 * busy_ms)
            } else {
                0.0
            });
            minors += g.minor_s * step;
            majors += g.major_s * step;
            paused_ms += busy_ms * step;
            atoms.push((g.minor_ms, g.minor_s * step));
            atoms.push((g.major_ms, g.major_s * step));
        }
        let duration = step * n as f64;
        let pauses = minors + majors;
        atoms.retain(|a| a.1 > 0.0);
        let pause_max_ms = atoms.iter().map(|a| a.0).fold(0.0, f64::max);
        let result = GcResult {
            minor_per_s: minors / duration,
            major_per_hour: majors / duration * 3600.0,
            pause_mean_ms: if pauses > 0.0 { paused_ms / pauses } else { 0.0 },
            pause_p99_ms: quantile(&mut atoms, P99),
            pause_max_ms,
            gc_time_fraction: pause_fraction.iter().sum::<f64>() / n as f64,
            heap_mb,
            footprint_overhead: heap_mb / most_live - 1.0,
            cost: heap_mb / 1024.0 * self.spec.cost_per_gb_hour,
            pause_fraction,
            residual_ms,
        };
        match result.metrics().into_iter().find(|(_, v)| !v.is_finite()) {
            Some((k, v)) => Err(EvalError::Invalid(format!(
                "gc: model produced {k} = {v} (heap {heap_mb} MB, young {young_mb} MB)"
            ))),
            None => Ok(result),
        }
    }

    /// Segment `i` at arrival rate `rate` (module doc, "Formulas"); an
    /// idle segment collects nothing but must still hold the live set.
    fn segment(&self, i: usize, rate: f64, heap_mb: f64, young_mb: f64) -> std::result::Result<Segment, EvalError> {
        let s = &self.spec;
        if !(rate.is_finite() && rate >= 0.0) {
            return Err(EvalError::Invalid(format!("gc: segment {i} has the arrival rate {rate}")));
        }
        let old_capacity = heap_mb - young_mb;
        let alloc = rate * s.alloc_kb_per_event / 1024.0;
        let st =
            if alloc > 0.0 { self.steady(alloc, young_mb) } else { Steady { survivors: 0.0, old_live: s.live_mb } };
        let kept = st.old_live + st.survivors;
        if kept > old_capacity {
            return Err(EvalError::Invalid(format!(
                "gc: out of memory in segment {i} ({rate}/s, {alloc:.1} MB/s allocated): the old generation \
                 (heap {heap_mb} MB − young {young_mb} MB = {old_capacity} MB) cannot hold what a full \
                 collection keeps ({kept:.1} MB: live set {} MB + promoted objects still alive {:.1} MB + \
                 nursery survivors {:.1} MB)",
                s.live_mb,
                st.old_live - s.live_mb,
                st.survivors
            )));
        }
        if alloc <= 0.0 {
            return Ok(Segment { kept, minor_s: 0.0, major_s: 0.0, minor_ms: 0.0, major_ms: 0.0 });
        }
        let per_s = alloc / young_mb;
        let cycle = ((old_capacity - st.old_live) / st.survivors - 0.5).max(1.0);
        let major_s = per_s / cycle;
        let minor_s = per_s - major_s;
        let minor_ms = s.minor_base_ms + s.minor_ms_per_mb * st.survivors;
        let major_ms = s.major_base_ms + s.major_ms_per_mb * kept;
        let fraction = (minor_s * minor_ms + major_s * major_ms) / 1000.0;
        if fraction >= OVERHEAD_LIMIT {
            return Err(EvalError::Invalid(format!(
                "gc: overhead limit exceeded in segment {i} ({rate}/s): {:.1}% of the time paused ({minor_s:.2} \
                 minor collections/s of {minor_ms:.1} ms, {major_s:.3} full/s of {major_ms:.1} ms) with heap \
                 {heap_mb} MB, young {young_mb} MB",
                100.0 * fraction
            )));
        }
        Ok(Segment { kept, minor_s, major_s, minor_ms, major_ms })
    }

    /// Survivors per young collection and old live data at allocation rate
    /// `alloc` > 0 MB/s (module doc, "Survivors" and "Old live data").
    fn steady(&self, alloc: f64, young_mb: f64) -> Steady {
        let s = &self.spec;
        let fill_s = young_mb / alloc;
        let mut survivors = 0.0;
        let mut old_live = s.live_mb;
        for (share, lifetime_s) in
            [(1.0 - s.long_fraction, s.short_lifetime_ms / 1000.0), (s.long_fraction, s.long_lifetime_s)]
        {
            let (mean, still_alive) = survival(fill_s / lifetime_s);
            let batch = young_mb * share * mean;
            survivors += batch;
            if batch > 0.0 {
                old_live += batch * still_alive;
            }
        }
        Steady { survivors, old_live }
    }
}

/// `type: gc`: the collector alone, from its `gc:` section.
pub struct Gc;

impl WorkloadModel for Gc {
    fn name(&self) -> &'static str {
        "gc"
    }

    fn parse_section(&self, raw: RawSection) -> std::result::Result<SectionBox, SectionError> {
        raw.parse::<GcSpec>()
    }

    fn metrics(&self, _: &WorkloadSpec) -> Vec<String> {
        names(METRICS)
    }

    fn build(&self, spec: &WorkloadSpec, _: &Scenario, _: &std::path::Path) -> Result<Box<dyn BuiltModel>> {
        Ok(Box::new(spec.section::<GcSpec>().ok_or_else(|| missing("gc"))?.build()?))
    }
}

impl Section for GcSpec {
    fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        GcSpec::check(self, path, space, problems)
    }
}

impl BuiltModel for GcModel {
    fn score(&self, config: &Config, scenario: &Scenario) -> std::result::Result<Metrics, EvalError> {
        Ok(self.evaluate(config, scenario)?.metrics())
    }
}

/// The `p`-quantile of a weighted set of point masses `(value, weight)`
/// (weights > 0): the smallest value whose cumulative weight reaches `p` of
/// the total; 0 for an empty set. A weighted quickselect (expected linear
/// time; a full sort of two atoms per segment cost as much as the rest of
/// the model): partition around the middle element, keep the side where the
/// cumulative weight crosses the target. Reorders `atoms`.
fn quantile(atoms: &mut [(f64, f64)], p: f64) -> f64 {
    let by_value = |a: &(f64, f64), b: &(f64, f64)| a.0.total_cmp(&b.0);
    let target = p * atoms.iter().map(|a| a.1).sum::<f64>();
    // Weight of the atoms known to lie below `rest`.
    let mut below = 0.0;
    let mut rest = atoms;
    while rest.len() > 16 {
        let mid = rest.len() / 2;
        let (left, pivot, right) = rest.select_nth_unstable_by(mid, by_value);
        let left_weight: f64 = left.iter().map(|a| a.1).sum();
        if below + left_weight >= target {
            rest = left;
        } else if below + left_weight + pivot.1 >= target {
            return pivot.0;
        } else {
            below += left_weight + pivot.1;
            rest = right;
        }
    }
    rest.sort_unstable_by(by_value);
    for &(value, weight) in rest.iter() {
        below += weight;
        if below >= target {
            return value;
        }
    }
    rest.last().map_or(0.0, |a| a.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> GcModel {
        GcSpec::new(Knob::Fixed(4096.0), Knob::Fixed(512.0)).build().expect("defaults are valid")
    }

    #[test]
    fn survival_matches_its_limits_and_the_integral() {
        assert!((survival(0.0).0 - 1.0).abs() < 1e-15);
        assert!((survival(1e-12).0 - 1.0).abs() < 1e-12);
        assert!((survival(50.0).0 - 1.0 / 50.0).abs() < 1e-15);
        // Σ_{k≥1} e^{−kx}, the geometric series.
        for x in [1e-5, 0.03, 1.0, 12.0] {
            let series: f64 = (1..2_000_000).map(|k| (-(k as f64) * x).exp()).sum();
            let (_, alive) = survival(x);
            assert!((alive - series).abs() / series < 1e-6, "x = {x}: {alive} vs {series}");
        }
        // Midpoint rule on (1/x)∫₀^x e^{−u} du.
        let x = 2.5;
        let k = 100_000;
        let integral: f64 = (0..k).map(|j| (-(j as f64 + 0.5) * x / k as f64).exp()).sum::<f64>() / k as f64;
        assert!((survival(x).0 - integral).abs() < 1e-9, "{} vs {integral}", survival(x).0);
    }

    #[test]
    fn old_live_data_tends_to_littles_law_for_long_lifetimes() {
        // Δ ≪ τ_L: promoted long-lived data alive ≈ a q τ_L (less half a batch).
        let mut spec = GcSpec::new(Knob::Fixed(8192.0), Knob::Fixed(64.0));
        spec.long_lifetime_s = 3600.0;
        let m = spec.build().unwrap();
        let alloc = 100.0;
        let st = m.steady(alloc, 64.0);
        let little = alloc * spec.long_fraction * spec.long_lifetime_s;
        let promoted = st.old_live - spec.live_mb;
        assert!((promoted - little).abs() / little < 0.01, "{promoted} vs Little {little}");
    }

    #[test]
    fn quantile_of_point_masses() {
        let mut atoms = vec![(10.0, 98.0), (200.0, 1.5), (5.0, 0.5)];
        assert_eq!(quantile(&mut atoms, 0.99), 200.0);
        assert_eq!(quantile(&mut atoms, 0.5), 10.0);
        assert_eq!(quantile(&mut atoms, 0.001), 5.0);
        assert_eq!(quantile(&mut [], 0.99), 0.0);
    }

    #[test]
    fn quickselect_quantile_agrees_with_a_sorted_scan() {
        let mut rng = crate::rng::Rng::new(11, 0);
        for trial in 0..200 {
            let n = 1 + rng.below(3000);
            // Few distinct values in some trials: ties across partitions.
            let distinct = if trial % 3 == 0 { 1 + rng.below(5) } else { n };
            let atoms: Vec<(f64, f64)> = (0..n).map(|_| (rng.below(distinct) as f64, rng.range(0.01, 10.0))).collect();
            let p = [0.5, 0.9, 0.99, 0.999][trial % 4];
            let mut sorted = atoms.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let target = p * sorted.iter().map(|a| a.1).sum::<f64>();
            let mut cumulative = 0.0;
            let expected = sorted
                .iter()
                .find(|a| {
                    cumulative += a.1;
                    cumulative >= target
                })
                .map_or(sorted[n - 1].0, |a| a.0);
            assert_eq!(quantile(&mut atoms.clone(), p), expected, "trial {trial}, n = {n}, p = {p}");
        }
    }

    #[test]
    fn an_idle_scenario_has_no_pauses() {
        let r = model().model(4096.0, 512.0, &Scenario::constant(0.0, 3600.0)).unwrap();
        assert_eq!(r.minor_per_s, 0.0);
        assert_eq!(r.major_per_hour, 0.0);
        assert_eq!(r.pause_p99_ms, 0.0);
        assert_eq!(r.gc_time_fraction, 0.0);
        assert_eq!(r.pause_fraction, vec![0.0]);
        assert!((r.footprint_overhead - (4096.0 / 256.0 - 1.0)).abs() < 1e-12);
    }

    #[test]
    fn collections_per_second_add_up_to_the_fill_rate() {
        let r = model().model(4096.0, 512.0, &Scenario::constant(400.0, 3600.0)).unwrap();
        let fills = 400.0 * 256.0 / 1024.0 / 512.0;
        assert!((r.minor_per_s + r.major_per_hour / 3600.0 - fills).abs() < 1e-12);
        assert!(r.major_per_hour > 0.0 && r.pause_max_ms > r.pause_p99_ms);
    }

    #[test]
    fn p99_is_the_major_pause_when_majors_are_over_one_percent() {
        // Half the segments idle: the mixture is weighted by counts, not segments.
        let sc = Scenario { step_s: 60.0, rates: vec![2000.0, 0.0], start: 0, label: "t".into() };
        let r = model().model(2048.0, 256.0, &sc).unwrap();
        let share = r.major_per_hour / 3600.0 / (r.minor_per_s + r.major_per_hour / 3600.0);
        assert!(share > 0.01, "{share}");
        assert_eq!(r.pause_p99_ms, r.pause_max_ms);
        assert_eq!(r.pause_fraction[1], 0.0);
        assert!(r.residual_ms[0] > r.pause_mean_ms / 2.0);
    }
}
