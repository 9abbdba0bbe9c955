//! Variation operators of the evolutionary optimizers (`genetic`, `nsga2`, `nsga3`) on the unit
//! cube: crossover and mutation that respect integer and categorical genes, and a key for the
//! bins a point falls in (to avoid evaluating a discrete point twice).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{Candidate, Dim, OptionCheck, reflect};

/// Attempts at breeding a point that is not a duplicate before falling back to random points.
const MAX_TRIES: usize = 40;

/// The grid of a space as the evolutionary optimizers see it: genes snap to the value they
/// decode to, and in a space without continuous dimensions (where duplicates are likely) the
/// bins of every point asked or told are remembered, so that no point is asked twice and a
/// small space is known to be used up.
#[derive(Debug, Clone)]
pub(crate) struct Grid {
    dims: Vec<Dim>,
    all_discrete: bool,
    /// Number of distinct points when the space is all discrete and small enough to use up.
    size: Option<u64>,
}

impl Grid {
    pub(crate) fn new(dims: &[Dim]) -> Grid {
        let all_discrete = dims.iter().all(|dim| dim.levels().is_some());
        Grid { dims: dims.to_vec(), all_discrete, size: if all_discrete { finite_space_size(dims) } else { None } }
    }

    /// Snap discrete genes to their bin centres (the value they decode to); NaN to the middle.
    pub(crate) fn snap(&self, x: &mut [f64]) {
        for (v, dim) in x.iter_mut().zip(&self.dims) {
            *v = if v.is_nan() { 0.5 } else { dim.snap(*v) };
        }
    }

    /// Remember `x` in `seen` (all-discrete spaces only).
    pub(crate) fn remember(&self, seen: &mut BTreeSet<u64>, x: &[f64]) {
        if self.all_discrete {
            seen.insert(discrete_key(&self.dims, x));
        }
    }

    /// In an all-discrete space, whether `x` was seen; `None` elsewhere (the caller compares
    /// points).
    pub(crate) fn was_seen(&self, seen: &BTreeSet<u64>, x: &[f64]) -> Option<bool> {
        self.all_discrete.then(|| seen.contains(&discrete_key(&self.dims, x)))
    }

    /// Whether every point of a small all-discrete space was seen.
    pub(crate) fn exhausted(&self, seen: &BTreeSet<u64>) -> bool {
        self.size.is_some_and(|n| seen.len() as u64 >= n)
    }
}

/// What differs between the evolutionary optimizers when they look for a new point.
pub(crate) trait Breeder {
    /// The space's grid.
    fn grid(&self) -> &Grid;
    /// The `attempt`-th try (from 0) at a new point: a design point while there are no
    /// parents, else a child (more mutation with each attempt).
    fn propose(&mut self, attempt: usize) -> Vec<f64>;
    /// Whether `x` was asked or told already.
    fn is_duplicate(&self, x: &[f64]) -> bool;
    /// The optimizer's random stream.
    fn rng(&mut self) -> &mut Rng;
    /// The bins of the points asked or told (see [`Grid::remember`]).
    fn seen(&self) -> &BTreeSet<u64>;
    /// Whether no candidate is pending.
    fn nothing_pending(&self) -> bool;
    /// Remember `x` and hand it out under a fresh ticket.
    fn hand_out(&mut self, x: Vec<f64>) -> Candidate;
}

/// Up to `limit` new candidates ([`novel_point`] each); fewer once a small all-discrete space
/// is used up, and then none unless nothing is pending (the contract allows an empty answer
/// only when nothing is).
pub(crate) fn ask_novel(breeder: &mut impl Breeder, limit: usize) -> Vec<Candidate> {
    let mut out = Vec::with_capacity(limit);
    while out.len() < limit {
        if breeder.grid().exhausted(breeder.seen()) && (!out.is_empty() || breeder.nothing_pending()) {
            break;
        }
        let x = novel_point(breeder);
        out.push(breeder.hand_out(x));
    }
    out
}

/// A point `breeder` has not asked or been told: its proposals first, then random points; when
/// neither gives one (a nearly used-up discrete space), the last random point (re-evaluating
/// beats answering nothing while results are still pending).
pub(crate) fn novel_point(breeder: &mut impl Breeder) -> Vec<f64> {
    let mut x = Vec::new();
    for attempt in 0..MAX_TRIES {
        x = breeder.propose(attempt);
        if !breeder.is_duplicate(&x) {
            return x;
        }
    }
    let d = breeder.grid().dims.len();
    for _ in 0..MAX_TRIES {
        x = breeder.rng().unit_point(d);
        breeder.grid().snap(&mut x);
        if !breeder.is_duplicate(&x) {
            return x;
        }
    }
    x
}

/// How two parents' continuous and integer genes are recombined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Crossover {
    /// Simulated binary crossover with distribution index `eta`: large values
    /// keep children near their parents, small values spread them out.
    Sbx(f64),
    /// BLX-alpha: a child gene is uniform on the parents' interval widened by
    /// `alpha` times its length on both sides.
    Blend(f64),
}

/// How a gene is perturbed when it mutates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mutation {
    /// Deb's bounded polynomial mutation with distribution index `eta`
    /// (about `1/(eta+1)` of the range per step; respects the bounds).
    Polynomial(f64),
    /// A normal step with this standard deviation (unit-cube units), folded
    /// back into `[0,1]`.
    Gaussian(f64),
}

/// The variation options the evolutionary optimizers share, as their configs hold them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Variation {
    pub crossover: Crossover,
    pub crossover_rate: f64,
    pub mutation: Mutation,
    pub mutation_rate: Option<f64>,
}

impl Variation {
    /// Report every bad value at its option's path.
    pub(crate) fn check(&self, check: &mut OptionCheck) {
        if !(0.0..=1.0).contains(&self.crossover_rate) {
            check.bad("crossover_rate", format!("must be in [0, 1] (got {})", self.crossover_rate));
        }
        match self.crossover {
            Crossover::Sbx(eta) if !(eta.is_finite() && eta >= 0.0) => {
                check.bad("crossover", format!("sbx eta must be a finite number >= 0 (got {eta})"))
            }
            Crossover::Blend(a) if !(a.is_finite() && a >= 0.0) => {
                check.bad("crossover", format!("blend alpha must be a finite number >= 0 (got {a})"))
            }
            _ => {}
        }
        match self.mutation {
            Mutation::Polynomial(eta) if !(eta.is_finite() && eta >= 0.0) => {
                check.bad("mutation", format!("polynomial eta must be a finite number >= 0 (got {eta})"))
            }
            Mutation::Gaussian(s) if !(s.is_finite() && s > 0.0) => {
                check.bad("mutation", format!("gaussian sigma must be a finite number > 0 (got {s})"))
            }
            _ => {}
        }
        if let Some(r) = self.mutation_rate
            && !(0.0..=1.0).contains(&r)
        {
            check.bad("mutation_rate", format!("must be in [0, 1] (got {r})"));
        }
    }

    /// A child of `p1` and `p2`: recombined with probability `crossover_rate` (else a copy of
    /// `p1`), then each gene mutated with probability `rate`. Not snapped to the grid.
    pub(crate) fn child(&self, dims: &[Dim], p1: &[f64], p2: &[f64], rate: f64, rng: &mut Rng) -> Vec<f64> {
        let mut child =
            if rng.chance(self.crossover_rate) { crossover(dims, p1, p2, self.crossover, rng) } else { p1.to_vec() };
        for (gene, &dim) in child.iter_mut().zip(dims) {
            if rng.chance(rate) {
                *gene = mutate_gene(dim, *gene, self.mutation, rng);
            }
        }
        child
    }
}

/// The number of distinct points of a space whose every dimension is discrete, when it is
/// small enough (at most ten million) to be used up; `None` otherwise.
fn finite_space_size(dims: &[Dim]) -> Option<u64> {
    dims.iter().try_fold(1u64, |acc, dim| acc.checked_mul(dim.levels()?.max(1))).filter(|&n| n <= 10_000_000)
}

/// A stable hash of the bins a point falls in.
pub(crate) fn discrete_key(dims: &[Dim], x: &[f64]) -> u64 {
    let mut h: u64 = 0x243F_6A88_85A3_08D3;
    for (dim, &u) in dims.iter().zip(x) {
        let k = match dim.levels() {
            Some(n) => ((u.clamp(0.0, 1.0) * n as f64).floor() as u64).min(n.saturating_sub(1)),
            None => u.to_bits(),
        };
        h = splitmix(h ^ k);
    }
    h
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Recombine two parents into one child: categorical genes uniformly (each
/// from one parent), the others with SBX or blend crossover.
fn crossover(dims: &[Dim], p1: &[f64], p2: &[f64], op: Crossover, rng: &mut Rng) -> Vec<f64> {
    let mut child = p1.to_vec();
    for j in 0..child.len() {
        if dims[j].is_categorical() {
            if rng.chance(0.5) {
                child[j] = p2[j];
            }
            continue;
        }
        child[j] = match op {
            // Per-variable exchange probability 1/2, as in Deb's NSGA-II.
            Crossover::Sbx(eta) => {
                if rng.chance(0.5) {
                    sbx(p1[j], p2[j], eta, rng)
                } else {
                    p1[j]
                }
            }
            Crossover::Blend(alpha) => {
                let (lo, hi) = (p1[j].min(p2[j]), p1[j].max(p2[j]));
                let w = hi - lo;
                rng.range(lo - alpha * w, hi + alpha * w).clamp(0.0, 1.0)
            }
        };
    }
    child
}

/// Bounded simulated binary crossover on `[0,1]` (Deb & Agrawal 1995, in the
/// bounded form of the NSGA-II reference code): one of the two children.
fn sbx(a: f64, b: f64, eta: f64, rng: &mut Rng) -> f64 {
    let (y1, y2) = (a.min(b), a.max(b));
    if y2 - y1 < 1e-14 {
        return a;
    }
    let u = rng.uniform();
    let spread = |beta: f64| {
        let alpha = 2.0 - beta.powf(-(eta + 1.0));
        if u <= 1.0 / alpha {
            (u * alpha).powf(1.0 / (eta + 1.0))
        } else {
            (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
        }
    };
    let c1 = 0.5 * ((y1 + y2) - spread(1.0 + 2.0 * y1 / (y2 - y1)) * (y2 - y1));
    let c2 = 0.5 * ((y1 + y2) + spread(1.0 + 2.0 * (1.0 - y2) / (y2 - y1)) * (y2 - y1));
    let c = if rng.chance(0.5) { c1 } else { c2 };
    if c.is_finite() { c.clamp(0.0, 1.0) } else { a }
}

/// Deb's bounded polynomial mutation of `y` in `[0,1]`.
fn polynomial(y: f64, eta: f64, rng: &mut Rng) -> f64 {
    let u = rng.uniform();
    let p = 1.0 / (eta + 1.0);
    let dq = if u < 0.5 {
        let xy = 1.0 - y;
        let val = 2.0 * u + (1.0 - 2.0 * u) * xy.powf(eta + 1.0);
        val.powf(p) - 1.0
    } else {
        let xy = y;
        let val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * xy.powf(eta + 1.0);
        1.0 - val.powf(p)
    };
    (y + dq).clamp(0.0, 1.0)
}

/// Mutate one gene: continuous genes by the configured operator, integer
/// genes by at least one level, categorical genes to a different choice.
pub(crate) fn mutate_gene(dim: Dim, y: f64, op: Mutation, rng: &mut Rng) -> f64 {
    let step = |y: f64, rng: &mut Rng| match op {
        Mutation::Polynomial(eta) => polynomial(y, eta, rng),
        Mutation::Gaussian(sigma) => reflect(y + sigma * rng.normal()),
    };
    match dim {
        Dim::Continuous => step(y, rng),
        Dim::Integer { levels } => {
            if levels <= 1 {
                return dim.snap(y);
            }
            let n = levels as f64;
            let before = dim.snap(y);
            let after = dim.snap(step(before, rng));
            if after != before {
                return after;
            }
            let k = (before * n).floor();
            let up = if k <= 0.0 {
                true
            } else if k >= n - 1.0 {
                false
            } else {
                rng.chance(0.5)
            };
            let k = if up { k + 1.0 } else { k - 1.0 };
            (k + 0.5) / n
        }
        Dim::Categorical { choices } => {
            if choices <= 1 {
                return dim.snap(y);
            }
            let n = choices as usize;
            let k = ((y.clamp(0.0, 1.0) * n as f64).floor() as usize).min(n - 1);
            let mut j = rng.below(n - 1);
            if j >= k {
                j += 1;
            }
            (j as f64 + 0.5) / n as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossover_keeps_categorical_genes_from_a_parent() {
        let dims = vec![Dim::Categorical { choices: 5 }, Dim::Continuous, Dim::Categorical { choices: 3 }];
        let p1 = vec![0.1, 0.2, 0.5];
        let p2 = vec![0.9, 0.8, 1.0 / 6.0];
        let mut rng = Rng::new(1, 2);
        let (mut from1, mut from2) = (0, 0);
        for op in [Crossover::Sbx(15.0), Crossover::Blend(0.5)] {
            for _ in 0..500 {
                let c = crossover(&dims, &p1, &p2, op, &mut rng);
                for j in [0, 2] {
                    assert!(c[j] == p1[j] || c[j] == p2[j], "gene {j} = {} came from neither parent", c[j]);
                    if c[j] == p1[j] { from1 += 1 } else { from2 += 1 }
                }
                assert!((0.0..=1.0).contains(&c[1]));
            }
        }
        assert!(from1 > 800 && from2 > 800, "uniform crossover must take both parents' genes ({from1}/{from2})");
    }

    #[test]
    fn sbx_children_stay_in_bounds_and_near_parents() {
        let mut rng = Rng::new(4, 5);
        let mut near = 0;
        for _ in 0..2000 {
            let c = sbx(0.3, 0.5, 15.0, &mut rng);
            assert!((0.0..=1.0).contains(&c));
            if (0.2..=0.6).contains(&c) {
                near += 1;
            }
        }
        assert!(near > 1800, "sbx with eta 15 should stay close to the parents ({near}/2000)");
        for _ in 0..200 {
            let c = sbx(0.0, 1.0, 2.0, &mut rng);
            assert!((0.0..=1.0).contains(&c));
        }
    }

    #[test]
    fn integer_mutation_moves_at_least_one_level_and_categorical_changes_choice() {
        let mut rng = Rng::new(7, 8);
        let int = Dim::Integer { levels: 50 };
        let cat = Dim::Categorical { choices: 4 };
        for k in [0.0, 10.0, 49.0] {
            let y = (k + 0.5) / 50.0;
            for op in [Mutation::Polynomial(20.0), Mutation::Polynomial(500.0), Mutation::Gaussian(1e-6)] {
                let m = mutate_gene(int, y, op, &mut rng);
                assert_ne!(int.snap(m), y, "integer gene did not move (level {k}, {op:?})");
                assert!((0.0..=1.0).contains(&m));
            }
        }
        for k in 0..4 {
            let y = (k as f64 + 0.5) / 4.0;
            let mut hit = [false; 4];
            for _ in 0..200 {
                let m = mutate_gene(cat, y, Mutation::Polynomial(20.0), &mut rng);
                let j = (m * 4.0).floor() as usize;
                assert_ne!(j, k, "categorical mutation kept the same choice");
                hit[j] = true;
            }
            assert_eq!(hit.iter().filter(|h| **h).count(), 3, "every other choice must be reachable");
        }
    }
}
