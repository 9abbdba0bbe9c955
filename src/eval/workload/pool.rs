//! A connection or worker pool as a multi-server queue.
//!
//! Requests arrive as a Poisson process at the scenario's rate λ (per
//! segment), each holds one of `c` connections (the pool size) for an
//! exponentially distributed service time of mean `1/μ` (declared, or the
//! mean of a recorded latency series), and waits first-come-first-served
//! when all are busy. Each segment is treated as stationary and starting
//! afresh (no backlog carried between segments): accurate when segments are
//! long compared with the queue's relaxation time, which for a 5-minute
//! segment holds unless the pool runs within a few percent of saturation.
//!
//! With offered load `a = λ/μ` (in connections):
//!
//! - **Unbounded queue, `a < c` (M/M/c, Erlang C).** Erlang B by the stable
//!   recursion `B₀ = 1, Bₖ = a·Bₖ₋₁ / (k + a·Bₖ₋₁)`; the probability of
//!   waiting `C = c·B / (c − a(1 − B))`; with `θ = cμ − λ` the wait is 0 with
//!   probability `1 − C` and else exponential of rate θ:
//!   `P(W > t) = C·e^(−θt)`, `E[W] = C/θ`; utilization `ρ = a/c`.
//! - **Unbounded queue, `a ≥ c` (overload).** No stationary regime: a fluid
//!   approximation. The backlog grows at `λ − cμ` from the segment's start,
//!   so a request arriving `s` seconds in waits `(λ − cμ)s / (cμ)`: waits are
//!   uniform on `[0, W_max]`, `W_max = (λ − cμ)T / (cμ)` for a segment of
//!   length `T`. The segment counts as overloaded; `ρ = 1`.
//! - **Queue limit `L` (M/M/c/K, `K = c + L`).** Stationary probabilities
//!   `pₙ ∝ aⁿ/n!` for `n ≤ c` and `p_c·(a/c)^(n−c)` above (computed in log
//!   space, any load). An arrival finding `K` in the system is rejected
//!   (`P_block = p_K`, by PASTA); an accepted one waits with probability
//!   `Σ_{n=c}^{K−1} pₙ / (1 − p_K)` and on average
//!   `Σ_{n=c}^{K−1} pₙ (n − c + 1)/(cμ) / (1 − p_K)`. One that finds `n ≥ c`
//!   waits for `n − c + 1` departures at rate `cμ`, an Erlang(n − c + 1, cμ)
//!   time, so with `r = cμ` and `Sⱼ = Σ_{n ≥ c+j}^{K−1} pₙ / (1 − p_K)`:
//!   `P(W > t) = Σⱼ e^(−rt)(rt)ʲ/j! · Sⱼ` (exact, O(L) per `t`, in log space).
//!   `ρ = λ(1 − P_block)/(cμ)`.
//!
//! Response time = wait + service. Its tail for an exponential wait is the
//! hypoexponential `P(W+S > t) = (1−C)e^(−μt) + C·(μe^(−θt) − θe^(−μt))/(μ − θ)`;
//! for the uniform overload wait it is integrated in closed form; for the
//! Erlang mixture, `P(W+S > t) = e^(−μt) + ∫₀ᵗ μe^(−μs) P(W > t − s) ds` by
//! 24-point Gauss-Legendre quadrature.
//!
//! Over a scenario, request metrics (waits, latencies, rejections) weight
//! each segment by its arrivals `λᵢTᵢ`; the p99s are quantiles of the
//! mixture (bisection on the mixed tail), not averages of per-segment p99s.
//! Utilization and overload are time-weighted. `memory_mb` and `cost` are
//! the per-connection terms times `c` (connections are held open).
//!
//! Metrics: `wait_mean_ms`, `wait_p99_ms`, `latency_mean_ms`,
//! `latency_p99_ms`, `utilization_mean`, `utilization_peak`,
//! `rejected_fraction`, `overloaded_fraction`, `throughput_rps`,
//! `connections`, `memory_mb`, `cost`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::model::{BuiltModel, RawSection, Section, SectionBox, SectionError, WorkloadModel, missing, names};
use super::{Knob, Metrics, Scenario, WorkloadSpec, tail_quantile};
use crate::error::{Error, Problem, Result};
use crate::eval::EvalError;
use crate::space::{Config, Space};
use crate::telemetry::{self, SeriesKind, TelemetryConfig};

/// Metric names the pool model reports.
pub const METRICS: &[&str] = &[
    "wait_mean_ms",
    "wait_p99_ms",
    "latency_mean_ms",
    "latency_p99_ms",
    "utilization_mean",
    "utilization_peak",
    "rejected_fraction",
    "overloaded_fraction",
    "throughput_rps",
    "connections",
    "memory_mb",
    "cost",
];

/// Probability mass of the queue-length distribution left out of the
/// waiting-time tail (see [`segment`]).
const NEGLIGIBLE: f64 = 1e-12;

/// Most connections a pool may have (the M/M/c recursions are O(c)).
pub const MAX_SERVERS: f64 = 100_000.0;
/// Longest queue limit (the M/M/c/K distribution is O(K)).
pub const MAX_QUEUE_LIMIT: f64 = 1_000_000.0;

/// Mean service time: declared, or measured from a recorded latency series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServiceTime {
    /// Milliseconds.
    Declared(f64),
    /// A statistic of a recorded latency series.
    Measured(MeasuredServiceTime),
}

/// `service_time_ms: {series: latency.csv, stat: mean}`: a recorded latency
/// gauge, in milliseconds times `scale`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredServiceTime {
    /// Recorded latency series, relative to the spec file.
    pub series: String,
    #[serde(default)]
    /// Which series of a file that holds several.
    pub column: Option<String>,
    #[serde(default)]
    /// Which statistic is the mean service time.
    pub stat: Stat,
    /// Multiplies the recorded values to make milliseconds (e.g. 1000 for seconds).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Which statistic of a recorded latency series is the mean service time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    #[default]
    /// The mean of the recorded values.
    Mean,
    /// The median of the recorded values (robust to spikes).
    Median,
}

/// The `pool:` section of a workload evaluator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// Connections (servers), ≥ 1.
    pub size: Knob,
    /// Mean service time of one request on a connection.
    pub service_time_ms: ServiceTime,
    /// Waiting places beyond the connections; arrivals finding them full are
    /// rejected. Absent: an unbounded queue.
    #[serde(default)]
    pub queue_limit: Option<Knob>,
    #[serde(default)]
    /// Memory held by each open connection, MB.
    pub memory_mb_per_connection: f64,
    #[serde(default)]
    /// Cost of each open connection.
    pub cost_per_connection: f64,
}

impl PoolSpec {
    /// Check every field; paths start with `path` (e.g. `evaluator.pool`).
    pub fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        self.size.check(&format!("{path}.size"), space, 1.0, MAX_SERVERS, problems);
        if let Some(l) = &self.queue_limit {
            l.check(&format!("{path}.queue_limit"), space, 0.0, MAX_QUEUE_LIMIT, problems);
        }
        match &self.service_time_ms {
            ServiceTime::Declared(ms) if !(ms.is_finite() && *ms > 0.0) => problems.push(Problem::new(
                format!("{path}.service_time_ms"),
                format!("{ms} must be a number of milliseconds > 0, or {{series: FILE, stat: mean|median}}"),
            )),
            ServiceTime::Measured(m) if !(m.scale.is_finite() && m.scale > 0.0) => problems.push(Problem::new(
                format!("{path}.service_time_ms.scale"),
                format!("{} must be a number > 0", m.scale),
            )),
            _ => {}
        }
        for (name, v) in [
            ("memory_mb_per_connection", self.memory_mb_per_connection),
            ("cost_per_connection", self.cost_per_connection),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                problems.push(Problem::new(format!("{path}.{name}"), format!("{v} must be a number ≥ 0")));
            }
        }
    }

    /// Resolve the service time (reading a measured series relative to `base_dir`).
    pub fn build(&self, base_dir: &Path) -> Result<PoolModel> {
        let service_ms = match &self.service_time_ms {
            ServiceTime::Declared(ms) => *ms,
            ServiceTime::Measured(m) => measured_ms(m, base_dir)?,
        };
        Ok(PoolModel { spec: self.clone(), service_ms })
    }
}

fn measured_ms(m: &MeasuredServiceTime, base_dir: &Path) -> Result<f64> {
    let path = base_dir.join(&m.series);
    let config =
        TelemetryConfig { default_kind: SeriesKind::Gauge, outliers: None, changepoints: None, ..Default::default() };
    let loaded = telemetry::load(&path, &config)?;
    let series = loaded.pick(m.column.as_deref(), "pool.service_time_ms.column")?;
    let mut v: Vec<f64> = series.points.iter().map(|p| p.1 * m.scale).collect();
    let ms = match m.stat {
        Stat::Mean => v.iter().sum::<f64>() / v.len() as f64,
        Stat::Median => crate::stats::median(&mut v),
    };
    if ms.is_finite() && ms > 0.0 {
        Ok(ms)
    } else {
        Err(Error::Config(format!(
            "pool.service_time_ms: the {:?} of {} is {ms} ms; a service time must be > 0",
            m.stat,
            path.display()
        )))
    }
}

/// The queue of one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentQueue {
    /// Arrivals in the segment (λT), the weight of its requests.
    pub arrivals: f64,
    /// Segment length, seconds.
    pub duration_s: f64,
    /// Service rate of one connection, per second.
    pub mu: f64,
    /// Share of arrivals rejected (queue full).
    pub rejected: f64,
    /// Utilization of the connections.
    pub utilization: f64,
    /// How an accepted request waits.
    pub wait: Wait,
}

/// The waiting time of an accepted request, in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// 0 with probability `1 − p`, else exponential of rate `rate`.
    Exponential {
        /// Probability of waiting at all.
        p: f64,
        /// Rate of the exponential wait, per second.
        rate: f64,
    },
    /// Uniform on `[0, max]` (overload, fluid).
    Uniform {
        /// The longest wait, seconds.
        max: f64,
    },
    /// Erlang(j + 1, rate) with probability `suffix[j] − suffix[j + 1]`
    /// (a queue limit): `P(W > t) = Σⱼ Poisson(j; rate·t) · suffix[j]`.
    Erlangs {
        /// Departure rate of the whole pool (`cμ`), per second.
        rate: f64,
        /// `Sⱼ`: probability of waiting for more than `j` departures.
        suffix: Vec<f64>,
    },
}

/// 24-point Gauss-Legendre nodes and weights on [−1, 1] (positive half).
const GL_X: [f64; 12] = [
    0.0640568928626056,
    0.1911188674736163,
    0.3150426796961634,
    0.4337935076260451,
    0.5454214713888396,
    0.6480936519369755,
    0.7401241915785544,
    0.820_001_985_973_903,
    0.8864155270044011,
    0.9382745520027328,
    0.9747285559713095,
    0.9951872199970214,
];
const GL_W: [f64; 12] = [
    0.1279381953467522,
    0.1258374563468283,
    0.1216704729278034,
    0.1155056680537256,
    0.1074442701159656,
    0.0976186521041139,
    0.0861901615319533,
    0.0733464814110803,
    0.0592985849154368,
    0.0442774388174198,
    0.0285313886289337,
    0.0123412297999872,
];

/// 8-point Gauss-Legendre nodes and weights on [−1, 1] (positive half).
const GL8_X: [f64; 4] =
    [0.183_434_642_495_649_8, 0.525_532_409_916_329, 0.796_666_477_413_626_7, 0.960_289_856_497_536_3];
const GL8_W: [f64; 4] =
    [0.362_683_783_378_362, 0.313_706_645_877_887_3, 0.222_381_034_453_374_5, 0.101_228_536_290_376_3];

/// `∫₀ᵗ f(s) ds` by 8-point Gauss-Legendre: for smooth averages where the
/// 24-point rule would cost three times as much for digits nobody reads.
pub fn integrate8(t: f64, f: impl Fn(f64) -> f64) -> f64 {
    let h = 0.5 * t;
    GL8_X.iter().zip(&GL8_W).map(|(x, w)| w * (f(h * (1.0 - x)) + f(h * (1.0 + x)))).sum::<f64>() * h
}

/// `∫₀ᵗ f(s) ds` by 24-point Gauss-Legendre (smooth `f`).
pub fn integrate(t: f64, f: impl Fn(f64) -> f64) -> f64 {
    let h = 0.5 * t;
    GL_X.iter().zip(&GL_W).map(|(x, w)| w * (f(h * (1.0 - x)) + f(h * (1.0 + x)))).sum::<f64>() * h
}

impl Wait {
    /// `P(W > t)`.
    pub fn tail(&self, t: f64) -> f64 {
        match *self {
            Wait::Exponential { p, rate } => {
                if p <= 0.0 {
                    0.0
                } else {
                    p * (-rate * t).exp()
                }
            }
            Wait::Uniform { max } => {
                if t >= max {
                    0.0
                } else {
                    1.0 - t / max
                }
            }
            Wait::Erlangs { rate, ref suffix } => {
                if t <= 0.0 {
                    return suffix.first().copied().unwrap_or(0.0);
                }
                let x = rate * t;
                let lx = x.ln();
                let mut log_term = -x; // ln Poisson(0; x)
                let mut sum = 0.0;
                for (j, s) in suffix.iter().enumerate() {
                    if j > 0 {
                        log_term += lx - (j as f64).ln();
                    }
                    sum += log_term.exp() * s;
                }
                sum.min(1.0)
            }
        }
    }

    /// `E[W]`.
    pub fn mean(&self) -> f64 {
        match *self {
            Wait::Exponential { p, rate } => {
                if p <= 0.0 {
                    0.0
                } else {
                    p / rate
                }
            }
            Wait::Uniform { max } => max / 2.0,
            Wait::Erlangs { rate, ref suffix } => suffix.iter().sum::<f64>() / rate,
        }
    }

    /// `P(W + S > t)` for an independent service time `S ~ Exp(mu)`.
    pub fn tail_plus_service(&self, t: f64, mu: f64) -> f64 {
        if t <= 0.0 {
            return 1.0;
        }
        let es = (-mu * t).exp();
        match *self {
            Wait::Exponential { p, rate } => (1.0 - p) * es + p * hypoexponential_tail(rate, mu, t),
            Wait::Uniform { max } => {
                if max <= 0.0 {
                    return es;
                }
                if t >= max {
                    // (1/max) ∫₀^max e^(−μ(t−u)) du
                    ((-mu * (t - max)).exp() - es) / (mu * max)
                } else {
                    // waits above t, plus those below t whose service outlasts t − u
                    (max - t + (1.0 - es) / mu) / max
                }
            }
            Wait::Erlangs { .. } => (es + integrate(t, |s| mu * (-mu * s).exp() * self.tail(t - s))).min(1.0),
        }
    }
}

/// `P(X + Y > t)` for independent `X ~ Exp(a)`, `Y ~ Exp(b)`.
pub fn hypoexponential_tail(a: f64, b: f64, t: f64) -> f64 {
    if (a - b).abs() <= 1e-9 * a.max(b) {
        let r = 0.5 * (a + b);
        return (1.0 + r * t) * (-r * t).exp();
    }
    ((b * (-a * t).exp() - a * (-b * t).exp()) / (b - a)).clamp(0.0, 1.0)
}

/// Erlang B with `c` servers and offered load `a`, by the stable recursion.
pub fn erlang_b(c: u64, a: f64) -> f64 {
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    b
}

/// Erlang C: the probability of waiting in an M/M/c queue (`a < c`).
pub fn erlang_c(c: u64, a: f64) -> f64 {
    let b = erlang_b(c, a);
    let c = c as f64;
    (c * b / (c - a * (1.0 - b))).clamp(0.0, 1.0)
}

/// The queue of a segment with arrival rate `lambda` (per second) lasting
/// `duration_s`, `c` connections of service rate `mu`, and `limit` waiting
/// places (`None`: unbounded).
pub fn segment(lambda: f64, duration_s: f64, c: u64, mu: f64, limit: Option<u64>) -> SegmentQueue {
    let arrivals = lambda * duration_s;
    let cf = c as f64;
    let a = lambda / mu;
    let base = SegmentQueue {
        arrivals,
        duration_s,
        mu,
        rejected: 0.0,
        utilization: 0.0,
        wait: Wait::Exponential { p: 0.0, rate: 1.0 },
    };
    if lambda <= 0.0 {
        return base;
    }
    match limit {
        None if a < cf => {
            let p = erlang_c(c, a);
            SegmentQueue { utilization: a / cf, wait: Wait::Exponential { p, rate: cf * mu - lambda }, ..base }
        }
        None => {
            let max = (lambda - cf * mu) * duration_s / (cf * mu);
            SegmentQueue { utilization: 1.0, wait: Wait::Uniform { max }, ..base }
        }
        Some(l) => {
            // log pₙ up to a constant for n ≤ c; above c the states form a
            // geometric series of ratio r = a/c, summed in closed form so
            // that a long queue limit costs nothing on a quiet pool.
            let mut logs = Vec::with_capacity(c as usize + 1);
            let mut lr = 0.0;
            logs.push(0.0);
            for n in 1..=c {
                lr += (a / n as f64).ln();
                logs.push(lr);
            }
            let lc = logs[c as usize];
            let (r, ln_r, lf) = (a / cf, (a / cf).ln(), l as f64);
            let top = logs.iter().copied().fold(lc + lf * ln_r.max(0.0), f64::max);
            let head: f64 = logs.iter().map(|v| (v - top).exp()).sum();
            let at = |i: f64| (lc - top + i * ln_r).exp(); // weight of state c + i
            let near_one = (r - 1.0).abs() < 1e-9;
            // Σ_{i=from}^{to−1} weight(c + i)
            let run = |from: f64, to: f64| -> f64 {
                if to <= from {
                    0.0
                } else if near_one {
                    (to - from) * at(0.0)
                } else {
                    (at(from) - at(to)) / (1.0 - r)
                }
            };
            let z = head + run(1.0, lf + 1.0);
            let blocked = at(lf) / z;
            let accepted = 1.0 - blocked;
            let wait = if accepted > 0.0 {
                // Sⱼ = Σ_{n=c+j}^{K−1} pₙ / (1 − p_K). Terms below 1e-12
                // cannot move a tail probability that matters (a lightly
                // loaded pool has all of them there): they are left out.
                let mut suffix = Vec::new();
                for j in 0..l {
                    let sj = run(j as f64, lf) / (z * accepted);
                    if sj < NEGLIGIBLE {
                        break;
                    }
                    suffix.push(sj);
                }
                if suffix.is_empty() {
                    Wait::Exponential { p: 0.0, rate: 1.0 }
                } else {
                    Wait::Erlangs { rate: cf * mu, suffix }
                }
            } else {
                Wait::Exponential { p: 0.0, rate: 1.0 }
            };
            SegmentQueue { rejected: blocked, utilization: (lambda * accepted / (cf * mu)).min(1.0), wait, ..base }
        }
    }
}

/// The pool's queues over a scenario and their aggregate metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolResult {
    /// The queue of each scenario segment.
    pub segments: Vec<SegmentQueue>,
    /// Pool size.
    pub connections: f64,
    /// Memory of the open connections, MB.
    pub memory_mb: f64,
    /// Cost of the open connections.
    pub cost: f64,
    /// Accepted requests over the scenario (the weight of every mixture).
    accepted: f64,
}

impl PoolResult {
    fn new(segments: Vec<SegmentQueue>, connections: f64, memory_mb: f64, cost: f64) -> PoolResult {
        let accepted = segments.iter().map(|s| s.arrivals * (1.0 - s.rejected)).sum();
        PoolResult { segments, connections, memory_mb, cost, accepted }
    }

    /// The arrival-weighted mean of `f` over accepted requests.
    fn over_accepted(&self, f: impl Fn(&SegmentQueue) -> f64) -> f64 {
        if self.accepted <= 0.0 {
            return 0.0;
        }
        self.segments.iter().map(|s| s.arrivals * (1.0 - s.rejected) * f(s)).sum::<f64>() / self.accepted
    }

    /// `P(W > t)` over every accepted request of the scenario.
    pub fn wait_tail(&self, t: f64) -> f64 {
        self.over_accepted(|s| s.wait.tail(t))
    }

    /// `P(W + S > t)` over every accepted request.
    pub fn latency_tail(&self, t: f64) -> f64 {
        self.over_accepted(|s| s.wait.tail_plus_service(t, s.mu))
    }

    /// Mean wait of accepted requests, seconds.
    pub fn wait_mean(&self) -> f64 {
        self.over_accepted(|s| s.wait.mean())
    }

    /// Mean service time, seconds.
    pub fn service_mean(&self) -> f64 {
        self.segments.first().map_or(0.0, |s| 1.0 / s.mu)
    }

    /// The metrics named in [`METRICS`].
    pub fn metrics(&self) -> Metrics {
        let time: f64 = self.segments.iter().map(|s| s.duration_s).sum::<f64>().max(1e-300);
        let arrivals: f64 = self.segments.iter().map(|s| s.arrivals).sum();
        let service = self.service_mean();
        let wait_mean = self.wait_mean();
        let scale = service.max(wait_mean).max(1e-6);
        let wait_p99 = tail_quantile(|t| self.wait_tail(t), 0.01, scale);
        let latency_p99 = tail_quantile(|t| self.latency_tail(t), 0.01, scale);
        // An overloaded segment serves at full capacity; the rest queue beyond it.
        let served: f64 = self
            .segments
            .iter()
            .map(|s| match s.wait {
                Wait::Uniform { .. } => self.connections * s.mu * s.duration_s,
                _ => s.arrivals * (1.0 - s.rejected),
            })
            .sum();
        let overloaded: f64 =
            self.segments.iter().filter(|s| matches!(s.wait, Wait::Uniform { .. })).map(|s| s.duration_s).sum();
        Metrics::from([
            ("wait_mean_ms".into(), 1000.0 * wait_mean),
            ("wait_p99_ms".into(), 1000.0 * wait_p99),
            ("latency_mean_ms".into(), 1000.0 * (wait_mean + service)),
            ("latency_p99_ms".into(), 1000.0 * latency_p99),
            ("utilization_mean".into(), self.segments.iter().map(|s| s.utilization * s.duration_s).sum::<f64>() / time),
            ("utilization_peak".into(), self.segments.iter().map(|s| s.utilization).fold(0.0, f64::max)),
            (
                "rejected_fraction".into(),
                if arrivals > 0.0 {
                    self.segments.iter().map(|s| s.arrivals * s.rejected).sum::<f64>() / arrivals
                } else {
                    0.0
                },
            ),
            ("overloaded_fraction".into(), overloaded / time),
            ("throughput_rps".into(), served / time),
            ("connections".into(), self.connections),
            ("memory_mb".into(), self.memory_mb),
            ("cost".into(), self.cost),
        ])
    }
}

/// The pool model, its service time resolved.
#[derive(Debug, Clone)]
pub struct PoolModel {
    spec: PoolSpec,
    /// Mean service time, milliseconds.
    pub service_ms: f64,
}

impl PoolModel {
    /// Pool size and queue limit of a configuration.
    pub fn sizes(&self, config: &Config) -> std::result::Result<(u64, Option<u64>), EvalError> {
        let c = self.spec.size.value(config)?.round();
        if !(1.0..=MAX_SERVERS).contains(&c) {
            return Err(EvalError::Invalid(format!("pool size {c} is outside 1..{MAX_SERVERS}")));
        }
        let limit = match &self.spec.queue_limit {
            None => None,
            Some(k) => {
                let l = k.value(config)?.round();
                if !(0.0..=MAX_QUEUE_LIMIT).contains(&l) {
                    return Err(EvalError::Invalid(format!("queue limit {l} is outside 0..{MAX_QUEUE_LIMIT}")));
                }
                Some(l as u64)
            }
        };
        Ok((c as u64, limit))
    }

    /// The pool under `rates` (per second, one per segment of `step_s`).
    pub fn run(&self, c: u64, limit: Option<u64>, rates: &[f64], step_s: f64) -> PoolResult {
        let mu = 1000.0 / self.service_ms;
        PoolResult::new(
            rates.iter().map(|&l| segment(l, step_s, c, mu, limit)).collect(),
            c as f64,
            c as f64 * self.spec.memory_mb_per_connection,
            c as f64 * self.spec.cost_per_connection,
        )
    }

    /// The pool's metrics for a configuration over `scenario`.
    pub fn evaluate(&self, config: &Config, scenario: &Scenario) -> std::result::Result<Metrics, EvalError> {
        let (c, limit) = self.sizes(config)?;
        Ok(self.run(c, limit, &scenario.rates, scenario.step_s).metrics())
    }
}

/// `type: pool`: the pool alone, from its `pool:` section.
pub struct Pool;

impl WorkloadModel for Pool {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn parse_section(&self, raw: RawSection) -> std::result::Result<SectionBox, SectionError> {
        raw.parse::<PoolSpec>()
    }

    fn metrics(&self, _: &WorkloadSpec) -> Vec<String> {
        names(METRICS)
    }

    fn build(&self, spec: &WorkloadSpec, _: &Scenario, base_dir: &Path) -> Result<Box<dyn BuiltModel>> {
        Ok(Box::new(spec.section::<PoolSpec>().ok_or_else(|| missing("pool"))?.build(base_dir)?))
    }
}

impl Section for PoolSpec {
    fn check(&self, path: &str, space: &Space, problems: &mut Vec<Problem>) {
        PoolSpec::check(self, path, space, problems)
    }
}

impl BuiltModel for PoolModel {
    fn score(&self, config: &Config, scenario: &Scenario) -> std::result::Result<Metrics, EvalError> {
        self.evaluate(config, scenario)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_textbook_values() {
        // 2 servers, a = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // 1 server: C = ρ.
        assert!((erlang_c(1, 0.7) - 0.7).abs() < 1e-12);
        // Large pools do not overflow.
        let c = erlang_c(5000, 4900.0);
        assert!(c > 0.0 && c < 1.0, "{c}");
    }

    #[test]
    fn a_huge_queue_limit_is_the_unbounded_queue() {
        let (lambda, mu) = (9.0, 1.0);
        let inf = segment(lambda, 60.0, 10, mu, None);
        let big = segment(lambda, 60.0, 10, mu, Some(100_000));
        assert!((inf.wait.mean() - big.wait.mean()).abs() < 1e-9 * inf.wait.mean());
        assert!(big.rejected < 1e-12);
        assert!((inf.wait.tail(0.5) - big.wait.tail(0.5)).abs() < 1e-9);
        assert!(
            (inf.wait.tail_plus_service(0.5, mu)
                - segment(lambda, 60.0, 10, mu, Some(400)).wait.tail_plus_service(0.5, mu))
            .abs()
                < 1e-6
        );
    }

    #[test]
    fn the_closed_form_queue_limit_matches_the_state_by_state_sum() {
        for (c, l, a) in [(4u64, 6u64, 3.8), (3, 50, 3.0), (5, 20, 9.0), (10, 1000, 2.0), (2, 3, 2.0 + 1e-12)] {
            let mu = 1.0;
            let q = segment(a * mu, 60.0, c, mu, Some(l));
            // pₙ by direct products.
            let k = c + l;
            let mut w = vec![1.0f64];
            for n in 1..=k {
                let prev = w[n as usize - 1];
                w.push(prev * a / n.min(c) as f64);
            }
            let z: f64 = w.iter().sum();
            let blocked = w[k as usize] / z;
            let mean: f64 =
                (c..k).map(|n| w[n as usize] / z * (n - c + 1) as f64 / (c as f64 * mu)).sum::<f64>() / (1.0 - blocked);
            assert!(
                (q.rejected - blocked).abs() < 1e-12 * blocked.max(1.0),
                "{c} {l} {a}: {} vs {blocked}",
                q.rejected
            );
            // Terms under 1e-12 are left out of the wait: a relative 1e-6 at most here.
            assert!(
                (q.wait.mean() - mean).abs() <= 1e-6 * mean.max(1e-12) + 1e-13,
                "{c} {l} {a}: {} vs {mean}",
                q.wait.mean()
            );
        }
    }

    #[test]
    fn tails_are_probabilities_and_decrease() {
        let erlangs = Wait::Erlangs { rate: 4.0, suffix: vec![0.5, 0.3, 0.1] };
        for w in [Wait::Exponential { p: 0.4, rate: 3.0 }, Wait::Uniform { max: 2.0 }, erlangs] {
            let mut last = 1.0;
            for i in 0..200 {
                let t = i as f64 * 0.05;
                let v = w.tail_plus_service(t, 2.0);
                assert!((0.0..=1.0 + 1e-12).contains(&v) && v <= last + 1e-12, "{w:?} {t} {v}");
                last = v;
            }
        }
        // The two branches of the uniform formula meet at t = max.
        let w = Wait::Uniform { max: 1.5 };
        let (a, b) = (w.tail_plus_service(1.5 - 1e-9, 2.0), w.tail_plus_service(1.5 + 1e-9, 2.0));
        assert!((a - b).abs() < 1e-6, "{a} {b}");
    }
}
