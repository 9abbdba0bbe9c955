//! Test functions: the classic continuous benchmarks and `mixed_service`,
//! exactly as the peer harness defines them (`bench/peers/functions.py`),
//! so that knobs and its peers are measured on the same work; and the
//! multi-objective ZDT1-3 and DTLZ2 ([`pareto`]), which report `f1`, `f2` (, `f3`).
//!
//! Continuous functions read the space's parameters in declaration order as
//! `x0..x{d-1}`. `mixed_service` reads `pool_size`, `cache_ttl_s`,
//! `gc_threshold` and `eviction` by name and is bit-for-bit identical to the
//! Python reference (it uses only `+ - * /`, in the documented order).

use std::collections::BTreeMap;
use std::f64::consts::{E, PI};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{EvalContext, EvalError, Evaluator, Measurement};

pub mod pareto;
use crate::error::{Error, Problem, Problems, Result};
use crate::space::{Config, Domain, Param, Space, Value};

/// The one metric a single-objective test function reports.
pub const METRIC: &str = "value";

/// The `evaluator:` section for a test function:
/// `{type: function, name: branin}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionSpec {
    /// One of [`Function::names`].
    pub name: String,
    /// Also report the analytic gradient (every continuous function but
    /// `mixed_service`), for optimizers that use one (`gradient`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradients: bool,
}

/// A test function knobs knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// Branin-Hoo (2-d).
    Branin,
    /// Hartmann 6-d.
    Hartmann6,
    /// Ackley (any dimension).
    Ackley,
    /// Rosenbrock (two dimensions or more).
    Rosenbrock,
    /// Rastrigin (any dimension).
    Rastrigin,
    /// Styblinski-Tang (any dimension).
    StyblinskiTang,
    /// A service-like function of named parameters of mixed types.
    MixedService,
    /// ZDT1: two objectives, convex front (two dimensions or more, in `[0, 1]`).
    Zdt1,
    /// ZDT2: two objectives, concave front.
    Zdt2,
    /// ZDT3: two objectives, disconnected front.
    Zdt3,
    /// DTLZ2: three objectives, spherical front (three dimensions or more, in `[0, 1]`).
    Dtlz2,
}

/// How many parameters a continuous function takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arity {
    Exactly(usize),
    AtLeast(usize),
}

impl Function {
    /// Every function, in the order of [`Function::names`].
    pub const ALL: [Function; 11] = [
        Function::Branin,
        Function::Hartmann6,
        Function::Ackley,
        Function::Rosenbrock,
        Function::Rastrigin,
        Function::StyblinskiTang,
        Function::MixedService,
        Function::Zdt1,
        Function::Zdt2,
        Function::Zdt3,
        Function::Dtlz2,
    ];

    /// The name used in a spec.
    pub fn name(self) -> &'static str {
        match self {
            Function::Branin => "branin",
            Function::Hartmann6 => "hartmann6",
            Function::Ackley => "ackley",
            Function::Rosenbrock => "rosenbrock",
            Function::Rastrigin => "rastrigin",
            Function::StyblinskiTang => "styblinski_tang",
            Function::MixedService => "mixed_service",
            Function::Zdt1 => "zdt1",
            Function::Zdt2 => "zdt2",
            Function::Zdt3 => "zdt3",
            Function::Dtlz2 => "dtlz2",
        }
    }

    /// The metrics it reports: `value`, or `f1`, `f2` (, `f3`) for the multi-objective ones.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Function::Zdt1 | Function::Zdt2 | Function::Zdt3 => &pareto::METRICS[..2],
            Function::Dtlz2 => &pareto::METRICS[..],
            _ => std::slice::from_ref(&METRIC),
        }
    }

    /// Whether its variables must lie in `[0, 1]` (the multi-objective functions').
    fn unit_box(self) -> bool {
        self.metrics().len() > 1
    }

    /// The function with this name in a spec.
    pub fn from_name(name: &str) -> Option<Function> {
        Function::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Every valid name, in a stable order.
    pub fn names() -> Vec<&'static str> {
        Function::ALL.iter().map(|f| f.name()).collect()
    }

    /// `None` for `mixed_service`, which takes named, mixed-type parameters.
    fn arity(self) -> Option<Arity> {
        match self {
            Function::Branin => Some(Arity::Exactly(2)),
            Function::Hartmann6 => Some(Arity::Exactly(6)),
            Function::Ackley | Function::Rastrigin | Function::StyblinskiTang => Some(Arity::AtLeast(1)),
            Function::Rosenbrock | Function::Zdt1 | Function::Zdt2 | Function::Zdt3 => Some(Arity::AtLeast(2)),
            Function::Dtlz2 => Some(Arity::AtLeast(3)),
            Function::MixedService => None,
        }
    }

    /// Evaluate a continuous function: one value per metric ([`Function::metrics`]); `None`
    /// for `mixed_service`.
    fn continuous(self, x: &[f64]) -> Option<Vec<f64>> {
        Some(vec![match self {
            Function::Zdt1 => return Some(pareto::zdt1(x).to_vec()),
            Function::Zdt2 => return Some(pareto::zdt2(x).to_vec()),
            Function::Zdt3 => return Some(pareto::zdt3(x).to_vec()),
            Function::Dtlz2 => return Some(pareto::dtlz2(x).to_vec()),
            Function::Branin => branin(x),
            Function::Hartmann6 => hartmann6(x),
            Function::Ackley => ackley(x),
            Function::Rosenbrock => rosenbrock(x),
            Function::Rastrigin => rastrigin(x),
            Function::StyblinskiTang => styblinski_tang(x),
            Function::MixedService => return None,
        }])
    }

    /// The analytic gradient of a single-objective continuous function (`None` for
    /// `mixed_service` and the multi-objective ones).
    pub fn gradient(self, x: &[f64]) -> Option<Vec<f64>> {
        Some(match self {
            Function::Branin => branin_gradient(x),
            Function::Hartmann6 => hartmann6_gradient(x),
            Function::Ackley => ackley_gradient(x),
            Function::Rosenbrock => rosenbrock_gradient(x),
            Function::Rastrigin => x.iter().map(|v| 2.0 * v + 20.0 * PI * (2.0 * PI * v).sin()).collect(),
            Function::StyblinskiTang => x.iter().map(|v| 2.0 * v * v * v - 16.0 * v + 2.5).collect(),
            Function::MixedService | Function::Zdt1 | Function::Zdt2 | Function::Zdt3 | Function::Dtlz2 => return None,
        })
    }
}

// ---------------------------------------------------------------------------
// Continuous functions. Powers follow numpy: `x ** 2` is `x * x`, `x ** 4`
// is libm's `pow`, sums run left to right.
// ---------------------------------------------------------------------------

/// Branin-Hoo on x0 ∈ [-5, 10], x1 ∈ [0, 15]; three global minima
/// (-π, 12.275), (π, 2.275), (3π, 2.475) with f* = 5/(4π) ≈ 0.397887.
/// Reads `x[0]` and `x[1]` (panics on fewer).
pub fn branin(x: &[f64]) -> f64 {
    let (a, b, c) = (1.0, 5.1 / (4.0 * (PI * PI)), 5.0 / PI);
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * PI));
    let (x1, x2) = (x[0], x[1]);
    let q = x2 - b * (x1 * x1) + c * x1 - r;
    a * (q * q) + s * (1.0 - t) * x1.cos() + s
}

/// Gradient of [`branin`].
pub fn branin_gradient(x: &[f64]) -> Vec<f64> {
    let (a, b, c) = (1.0, 5.1 / (4.0 * (PI * PI)), 5.0 / PI);
    let (r, s, t) = (6.0, 10.0, 1.0 / (8.0 * PI));
    let (x1, x2) = (x[0], x[1]);
    let q = x2 - b * (x1 * x1) + c * x1 - r;
    vec![2.0 * a * q * (c - 2.0 * b * x1) - s * (1.0 - t) * x1.sin(), 2.0 * a * q]
}

const H6_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const H6_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
/// Multiplied by 1e-4 at use, as the reference does (`1e-4 * 1312` is not
/// always the f64 nearest 0.1312).
const H6_P: [[f64; 6]; 4] = [
    [1312.0, 1696.0, 5569.0, 124.0, 8283.0, 5886.0],
    [2329.0, 4135.0, 8307.0, 3736.0, 1004.0, 9991.0],
    [2348.0, 1451.0, 3522.0, 2883.0, 3047.0, 6650.0],
    [4047.0, 8828.0, 8732.0, 5743.0, 1091.0, 381.0],
];

/// Hartmann 6-D on [0, 1]^6; f* ≈ -3.322368 near
/// (0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573).
/// Reads `x[0..6]` (panics on fewer).
pub fn hartmann6(x: &[f64]) -> f64 {
    let mut outer = 0.0;
    for i in 0..4 {
        let mut inner = 0.0;
        for j in 0..6 {
            let d = x[j] - 1e-4 * H6_P[i][j];
            inner += H6_A[i][j] * (d * d);
        }
        outer += H6_ALPHA[i] * (-inner).exp();
    }
    -outer
}

/// Gradient of [`hartmann6`].
pub fn hartmann6_gradient(x: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; 6];
    for i in 0..4 {
        let inner: f64 = (0..6).map(|j| H6_A[i][j] * (x[j] - 1e-4 * H6_P[i][j]).powi(2)).sum();
        let w = H6_ALPHA[i] * (-inner).exp();
        for j in 0..6 {
            g[j] += w * 2.0 * H6_A[i][j] * (x[j] - 1e-4 * H6_P[i][j]);
        }
    }
    g
}

/// Ackley (a = 20, b = 0.2, c = 2π), any dimension; f* = 0 at x = 0.
pub fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let s1 = x.iter().fold(0.0, |s, v| s + v * v) / d;
    let s2 = x.iter().fold(0.0, |s, v| s + (2.0 * PI * v).cos()) / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + E
}

/// Gradient of [`ackley`]; 0 at the origin, where the function has a kink.
pub fn ackley_gradient(x: &[f64]) -> Vec<f64> {
    let d = x.len() as f64;
    let r = (x.iter().map(|v| v * v).sum::<f64>() / d).sqrt();
    let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
    let outer = if r > 0.0 { 4.0 * (-0.2 * r).exp() / (d * r) } else { 0.0 };
    x.iter().map(|v| outer * v + 2.0 * PI / d * s2.exp() * (2.0 * PI * v).sin()).collect()
}

/// Rosenbrock, `Σ_{i<d-1} 100 (x_{i+1} - x_i²)² + (1 - x_i)²`; f* = 0 at x = 1.
pub fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2).fold(0.0, |s, w| {
        let a = w[1] - w[0] * w[0];
        let b = 1.0 - w[0];
        s + (100.0 * (a * a) + b * b)
    })
}

/// Gradient of [`rosenbrock`].
pub fn rosenbrock_gradient(x: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    for i in 0..x.len().saturating_sub(1) {
        let a = x[i + 1] - x[i] * x[i];
        g[i] += -400.0 * x[i] * a - 2.0 * (1.0 - x[i]);
        g[i + 1] += 200.0 * a;
    }
    g
}

/// Rastrigin, `10 d + Σ x_i² - 10 cos(2π x_i)`; f* = 0 at x = 0.
pub fn rastrigin(x: &[f64]) -> f64 {
    10.0 * x.len() as f64 + x.iter().fold(0.0, |s, v| s + (v * v - 10.0 * (2.0 * PI * v).cos()))
}

/// Minimiser of each coordinate of [`styblinski_tang`].
pub const STYBLINSKI_TANG_X1: f64 = -2.903534027771178;
/// Minimum of [`styblinski_tang`] per dimension.
pub const STYBLINSKI_TANG_F1: f64 = -39.16616570377142;

/// Styblinski-Tang, `0.5 Σ x_i⁴ - 16 x_i² + 5 x_i`; f* = -39.16616570377142 d
/// at x_i = -2.903534027771178.
pub fn styblinski_tang(x: &[f64]) -> f64 {
    0.5 * x.iter().fold(0.0, |s, v| s + (v.powf(4.0) - 16.0 * (v * v) + 5.0 * v))
}

// ---------------------------------------------------------------------------
// mixed_service: a mixed-variable service configuration cost (ms/request).
// Only + - * / in exactly the reference's order, no fused multiply-add.
// ---------------------------------------------------------------------------

const MS_LAMBDA: f64 = 400.0;
const MS_MU: f64 = 5.0;

/// Valid range of `pool_size`.
pub const MS_POOL_SIZE: (i64, i64) = (1, 256);
/// Valid range of `cache_ttl_s`.
pub const MS_CACHE_TTL_S: (f64, f64) = (1.0, 86400.0);
/// Valid range of `gc_threshold`.
pub const MS_GC_THRESHOLD: (i64, i64) = (100, 100000);
/// Valid values of `eviction`.
pub const MS_EVICTIONS: [&str; 3] = ["lru", "lfu", "fifo"];
/// The exact optimum of `mixed_service`.
pub const MIXED_SERVICE_F_STAR: f64 = 15.495878538661644;

/// (hit-rate cap, bookkeeping offset) of an eviction policy.
fn eviction_terms(eviction: &str) -> Option<(f64, f64)> {
    match eviction {
        "lru" => Some((0.97, 0.0)),
        "lfu" => Some((0.99, 0.6)),
        "fifo" => Some((0.90, -0.4)),
        _ => None,
    }
}

/// M/M/c queueing delay of the worker pool (Erlang C), or a saturated
/// penalty that still points towards larger pools when c ≤ 80.
fn ms_queue_ms(c: i64) -> f64 {
    let a = MS_LAMBDA / MS_MU;
    let cf = c as f64;
    let mut b = 1.0;
    for k in 1..=c {
        let ab = a * b;
        b = ab / (k as f64 + ab);
    }
    if c > 80 {
        let pw = (cf * b) / (cf - a * (1.0 - b));
        let wq = pw / (cf * MS_MU - MS_LAMBDA);
        1000.0 * wq
    } else {
        2000.0 + 50.0 * (80.0 - cf)
    }
}

/// The `mixed_service` cost in milliseconds per request (lower is better).
///
/// Valid inputs: `pool_size` in [1, 256], `cache_ttl_s` in [1, 86400],
/// `gc_threshold` in [100, 100000], `eviction` one of `lru`, `lfu`, `fifo`;
/// anything else gives NaN (the reference raises).
pub fn mixed_service(pool_size: i64, cache_ttl_s: f64, gc_threshold: i64, eviction: &str) -> f64 {
    let (c, t, g) = (pool_size, cache_ttl_s, gc_threshold);
    let in_range = (MS_POOL_SIZE.0..=MS_POOL_SIZE.1).contains(&c)
        && (MS_GC_THRESHOLD.0..=MS_GC_THRESHOLD.1).contains(&g)
        && (MS_CACHE_TTL_S.0..=MS_CACHE_TTL_S.1).contains(&t);
    let Some((e, off)) = eviction_terms(eviction).filter(|_| in_range) else {
        return f64::NAN;
    };
    let (cf, gf) = (c as f64, g as f64);
    let x = t / 30.0;
    let h = e * (x / (1.0 + x));
    let miss = 40.0 * (1.0 - h);
    let stale = 25.0 * (t / (t + 3600.0));
    let mem = 0.08 * cf;
    let gc = (800.0 * (1.0 + 0.004 * cf)) / gf + gf / 4000.0;
    // Summed left to right, in the reference's order.
    ms_queue_ms(c) + mem + miss + stale + gc + off
}

// ---------------------------------------------------------------------------
// Peer-harness problem definitions.
// ---------------------------------------------------------------------------

/// One problem of the peer harness: the function, its space (same names,
/// bounds and scales as `functions.py`), its known minimum and one minimiser.
#[derive(Debug, Clone, PartialEq)]
pub struct Benchmark {
    /// Harness name, e.g. `rosenbrock10`.
    pub name: &'static str,
    /// The function it evaluates ([`FunctionSpec::name`]).
    pub function: Function,
    /// Parameters without defaults (the harness has no baseline).
    pub space: Space,
    /// The known global minimum.
    pub f_star: f64,
    /// One known minimiser (to a few digits for hartmann6).
    pub x_star: Config,
}

impl Benchmark {
    /// The evaluator spec that evaluates this problem over [`Benchmark::space`].
    pub fn spec(&self) -> FunctionSpec {
        FunctionSpec { name: self.function.name().to_string(), gradients: false }
    }
}

/// Names of the peer-harness problems, in the harness's order.
pub const BENCHMARKS: [&str; 7] =
    ["branin", "hartmann6", "ackley10", "rosenbrock10", "rastrigin10", "styblinski_tang8", "mixed_service"];

fn float_param(name: String, low: f64, high: f64, log: bool) -> Param {
    Param {
        name,
        domain: Domain::Float { low, high, log, step: None },
        default: None,
        when: Vec::new(),
        risky: Vec::new(),
    }
}

fn int_param(name: &str, low: i64, high: i64, log: bool) -> Param {
    Param {
        name: name.to_string(),
        domain: Domain::Int { low, high, log, step: 1 },
        default: None,
        when: Vec::new(),
        risky: Vec::new(),
    }
}

fn boxed(name: &'static str, function: Function, bounds: &[(f64, f64)], f_star: f64, x_star: &[f64]) -> Benchmark {
    let params = bounds.iter().enumerate().map(|(i, &(lo, hi))| float_param(format!("x{i}"), lo, hi, false)).collect();
    let x_star = x_star.iter().enumerate().map(|(i, &v)| (format!("x{i}"), Value::Float(v))).collect();
    Benchmark { name, function, space: Space { params, relations: Vec::new() }, f_star, x_star }
}

/// The peer-harness problem called `name` (one of [`BENCHMARKS`]).
pub fn benchmark(name: &str) -> Option<Benchmark> {
    Some(match name {
        "branin" => boxed("branin", Function::Branin, &[(-5.0, 10.0), (0.0, 15.0)], 0.39788735772973816, &[PI, 2.275]),
        "hartmann6" => boxed(
            "hartmann6",
            Function::Hartmann6,
            &[(0.0, 1.0); 6],
            -3.322368011415515,
            &[0.20168951, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730053],
        ),
        "ackley10" => boxed("ackley10", Function::Ackley, &[(-32.768, 32.768); 10], 0.0, &[0.0; 10]),
        "rosenbrock10" => boxed("rosenbrock10", Function::Rosenbrock, &[(-5.0, 10.0); 10], 0.0, &[1.0; 10]),
        "rastrigin10" => boxed("rastrigin10", Function::Rastrigin, &[(-5.12, 5.12); 10], 0.0, &[0.0; 10]),
        "styblinski_tang8" => boxed(
            "styblinski_tang8",
            Function::StyblinskiTang,
            &[(-5.0, 5.0); 8],
            STYBLINSKI_TANG_F1 * 8.0,
            &[STYBLINSKI_TANG_X1; 8],
        ),
        "mixed_service" => {
            let params = vec![
                int_param("pool_size", MS_POOL_SIZE.0, MS_POOL_SIZE.1, false),
                float_param("cache_ttl_s".into(), MS_CACHE_TTL_S.0, MS_CACHE_TTL_S.1, true),
                int_param("gc_threshold", MS_GC_THRESHOLD.0, MS_GC_THRESHOLD.1, true),
                Param {
                    name: "eviction".into(),
                    domain: Domain::Categorical {
                        choices: MS_EVICTIONS.iter().map(|s| Value::Str(s.to_string())).collect(),
                    },
                    default: None,
                    when: Vec::new(),
                    risky: Vec::new(),
                },
            ];
            let x_star = [
                ("pool_size", Value::Int(99)),
                ("cache_ttl_s", Value::Float(433.4026962176557)),
                ("gc_threshold", Value::Int(2114)),
                ("eviction", Value::Str("lfu".into())),
            ];
            Benchmark {
                name: "mixed_service",
                function: Function::MixedService,
                space: Space { params, relations: Vec::new() },
                f_star: MIXED_SERVICE_F_STAR,
                x_star: x_star.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            }
        }
        _ => return None,
    })
}

// ---------------------------------------------------------------------------
// Spec checking and the evaluator.
// ---------------------------------------------------------------------------

const PATH: &str = "evaluator.name";

fn is_numeric(d: &Domain) -> bool {
    matches!(d, Domain::Float { .. } | Domain::Int { .. })
}

fn kind(d: &Domain) -> &'static str {
    match d {
        Domain::Float { .. } => "float",
        Domain::Int { .. } => "int",
        Domain::Categorical { .. } => "categorical",
        Domain::Bool => "bool",
    }
}

impl FunctionSpec {
    /// Check the function against the space; push every mismatch.
    pub fn check(&self, space: &Space, problems: &mut Vec<Problem>) {
        let Some(function) = Function::from_name(&self.name) else {
            let mut msg = format!("unknown function `{}`; valid: {}", self.name, Function::names().join(", "));
            if let Some(b) = benchmark(&self.name) {
                msg.push_str(&format!(
                    " (`{}` is the harness problem `{}` over {} parameters)",
                    b.name,
                    b.function.name(),
                    b.space.dim()
                ));
            }
            problems.push(Problem::new(PATH, msg));
            return;
        };
        let name = function.name();
        match function.arity() {
            Some(arity) => check_continuous(name, arity, space, problems),
            None => check_mixed_service(space, problems),
        }
        if function.unit_box() {
            check_unit_box(name, space, problems);
        }
        if self.gradients && (function.arity().is_none() || function.unit_box()) {
            problems.push(Problem::new(
                "evaluator.gradients",
                format!(
                    "function `{name}` has no analytic gradient; only the single-objective continuous functions do"
                ),
            ));
        }
    }
}

fn check_continuous(name: &str, arity: Arity, space: &Space, problems: &mut Vec<Problem>) {
    let d = space.dim();
    match arity {
        Arity::Exactly(n) if d != n => problems.push(Problem::new(
            PATH,
            format!(
                "function `{name}` takes exactly {n} parameters (read in order as x0..x{}); the space declares {d}",
                n - 1
            ),
        )),
        Arity::AtLeast(n) if d < n => problems.push(Problem::new(
            PATH,
            format!(
                "function `{name}` takes at least {n} parameter{}; the space declares {d}",
                if n == 1 { "" } else { "s" }
            ),
        )),
        _ => {}
    }
    for p in &space.params {
        if !is_numeric(&p.domain) {
            problems.push(Problem::new(
                PATH,
                format!("function `{name}` needs float or int parameters; `{}` is {}", p.name, kind(&p.domain)),
            ));
        }
        if !p.when.is_empty() {
            problems.push(Problem::new(
                PATH,
                format!(
                    "function `{name}` needs every parameter in every configuration; `{}` is conditional (`when`)",
                    p.name
                ),
            ));
        }
    }
}

/// The multi-objective functions are defined on `[0, 1]` in every variable.
fn check_unit_box(name: &str, space: &Space, problems: &mut Vec<Problem>) {
    for p in &space.params {
        let (low, high) = match p.domain {
            Domain::Float { low, high, .. } => (low, high),
            Domain::Int { low, high, .. } => (low as f64, high as f64),
            _ => continue,
        };
        if low < 0.0 || high > 1.0 {
            problems.push(Problem::new(
                PATH,
                format!(
                    "function `{name}` is defined on [0, 1] in every variable; `{}` allows [{low}, {high}]",
                    p.name
                ),
            ));
        }
    }
}

fn check_mixed_service(space: &Space, problems: &mut Vec<Problem>) {
    const NAMES: [&str; 4] = ["pool_size", "cache_ttl_s", "gc_threshold", "eviction"];
    let fail =
        |problems: &mut Vec<Problem>, msg: String| problems.push(Problem::new(PATH, format!("mixed_service: {msg}")));
    for p in &space.params {
        if !NAMES.contains(&p.name.as_str()) {
            fail(problems, format!("parameter `{}` is not one it reads ({})", p.name, NAMES.join(", ")));
        } else if !p.when.is_empty() {
            fail(problems, format!("`{}` must not be conditional (`when`)", p.name));
        }
    }
    let int_check = |problems: &mut Vec<Problem>, name: &str, (lo, hi): (i64, i64)| match space.param(name) {
        None => fail(problems, format!("needs an int parameter `{name}` in [{lo}, {hi}]; the space has none")),
        Some(p) => match p.domain {
            Domain::Int { low, high, .. } if low >= lo && high <= hi => {}
            Domain::Int { low, high, .. } => {
                fail(problems, format!("`{name}` must stay within [{lo}, {hi}]; the space allows [{low}, {high}]"))
            }
            ref other => fail(problems, format!("`{name}` must be an int in [{lo}, {hi}]; it is {}", kind(other))),
        },
    };
    int_check(problems, "pool_size", MS_POOL_SIZE);
    int_check(problems, "gc_threshold", MS_GC_THRESHOLD);
    let (lo, hi) = MS_CACHE_TTL_S;
    let ttl_range = match space.param("cache_ttl_s").map(|p| &p.domain) {
        None => {
            fail(problems, format!("needs a float parameter `cache_ttl_s` in [{lo}, {hi}]; the space has none"));
            None
        }
        Some(Domain::Float { low, high, .. }) => Some((*low, *high)),
        Some(Domain::Int { low, high, .. }) => Some((*low as f64, *high as f64)),
        Some(other) => {
            fail(problems, format!("`cache_ttl_s` must be a float in [{lo}, {hi}]; it is {}", kind(other)));
            None
        }
    };
    if let Some((low, high)) = ttl_range.filter(|&(low, high)| low < lo || high > hi) {
        fail(problems, format!("`cache_ttl_s` must stay within [{lo}, {hi}]; the space allows [{low}, {high}]"));
    }
    match space.param("eviction").map(|p| &p.domain) {
        None => fail(
            problems,
            format!("needs a categorical parameter `eviction` with choices from [{}]", MS_EVICTIONS.join(", ")),
        ),
        Some(Domain::Categorical { choices }) => {
            for c in choices {
                if !matches!(c, Value::Str(s) if MS_EVICTIONS.contains(&s.as_str())) {
                    fail(problems, format!("`eviction` choice `{c}` is not one of [{}]", MS_EVICTIONS.join(", ")));
                }
            }
        }
        Some(other) => fail(
            problems,
            format!(
                "`eviction` must be categorical with choices from [{}]; it is {}",
                MS_EVICTIONS.join(", "),
                kind(other)
            ),
        ),
    }
}

/// A gradient by parameter name.
type Gradient = BTreeMap<String, f64>;

/// Evaluates one [`Function`] over a checked space.
#[derive(Debug, Clone)]
pub struct FunctionEvaluator {
    function: Function,
    /// Report the analytic gradient too.
    gradients: bool,
    /// Parameter names in declaration order (x0, x1, ... for continuous functions).
    params: Vec<String>,
}

impl FunctionEvaluator {
    /// Build the evaluator; fails with every problem [`FunctionSpec::check`] finds.
    pub fn new(spec: &FunctionSpec, space: &Space) -> Result<Self> {
        let mut problems = Vec::new();
        spec.check(space, &mut problems);
        let function = match Function::from_name(&spec.name) {
            Some(f) if problems.is_empty() => f,
            _ => return Err(Error::Invalid(Problems { source: "spec".into(), items: problems })),
        };
        Ok(FunctionEvaluator {
            function,
            gradients: spec.gradients,
            params: space.params.iter().map(|p| p.name.clone()).collect(),
        })
    }

    /// The function evaluated.
    pub fn function(&self) -> Function {
        self.function
    }

    /// The value of each metric ([`Function::metrics`]), and the gradient (parameter →
    /// derivative) when asked for one.
    fn value(&self, config: &Config) -> Result<(Vec<f64>, Option<Gradient>), EvalError> {
        let get =
            |name: &str| config.get(name).ok_or_else(|| EvalError::Invalid(format!("parameter `{name}` is missing")));
        let not =
            |name: &str, v: &Value, what: &str| EvalError::Invalid(format!("parameter `{name}` = {v} is not {what}"));
        if self.function == Function::MixedService {
            let int = |name: &str| -> Result<i64, EvalError> {
                match get(name)? {
                    Value::Int(i) => Ok(*i),
                    Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(*f as i64),
                    v => Err(not(name, v, "an integer")),
                }
            };
            let c = int("pool_size")?;
            let g = int("gc_threshold")?;
            let t = get("cache_ttl_s")?;
            let t = t.as_f64().ok_or_else(|| not("cache_ttl_s", t, "a number"))?;
            let k = match get("eviction")? {
                Value::Str(s) if MS_EVICTIONS.contains(&s.as_str()) => s.as_str(),
                v => return Err(not("eviction", v, &format!("one of [{}]", MS_EVICTIONS.join(", ")))),
            };
            let out = |name: &str, v: String, lo: String, hi: String| {
                EvalError::Invalid(format!("parameter `{name}` = {v} is outside [{lo}, {hi}]"))
            };
            if !(MS_POOL_SIZE.0..=MS_POOL_SIZE.1).contains(&c) {
                return Err(out("pool_size", c.to_string(), MS_POOL_SIZE.0.to_string(), MS_POOL_SIZE.1.to_string()));
            }
            if !(MS_GC_THRESHOLD.0..=MS_GC_THRESHOLD.1).contains(&g) {
                return Err(out(
                    "gc_threshold",
                    g.to_string(),
                    MS_GC_THRESHOLD.0.to_string(),
                    MS_GC_THRESHOLD.1.to_string(),
                ));
            }
            if !(MS_CACHE_TTL_S.0..=MS_CACHE_TTL_S.1).contains(&t) {
                return Err(out(
                    "cache_ttl_s",
                    t.to_string(),
                    MS_CACHE_TTL_S.0.to_string(),
                    MS_CACHE_TTL_S.1.to_string(),
                ));
            }
            return Ok((vec![mixed_service(c, t, g, k)], None));
        }
        let x = self
            .params
            .iter()
            .map(|name| {
                let v = get(name)?;
                v.as_f64().ok_or_else(|| not(name, v, "a number"))
            })
            .collect::<Result<Vec<f64>, EvalError>>()?;
        let gradient = if self.gradients { self.function.gradient(&x) } else { None };
        let gradient = gradient.map(|g| self.params.iter().cloned().zip(g).collect());
        Ok((self.function.continuous(&x).unwrap_or_else(|| vec![f64::NAN]), gradient))
    }
}

impl Evaluator for FunctionEvaluator {
    fn evaluate(&self, config: &Config, _ctx: &EvalContext) -> Result<Measurement, EvalError> {
        let start = Instant::now();
        let (values, gradient) = self.value(config)?;
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(EvalError::Invalid(format!("{} evaluated to {bad}", self.function.name())));
        }
        let metrics = self.function.metrics().iter().map(|m| m.to_string()).zip(values).collect();
        let mut m = Measurement::new(metrics, start.elapsed());
        if let Some(g) = gradient.filter(|g| g.values().all(|v| v.is_finite())) {
            m.gradients.insert(METRIC.to_string(), g);
        }
        Ok(m)
    }

    fn metrics(&self) -> Vec<String> {
        self.function.metrics().iter().map(|m| m.to_string()).collect()
    }

    fn deterministic(&self) -> bool {
        true
    }
}
