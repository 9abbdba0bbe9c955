//! `genetic`: a real-coded genetic algorithm on the unit cube (tournament
//! selection, SBX/blend and uniform crossover, polynomial/Gaussian mutation,
//! elitist survival, duplicate avoidance), run asynchronously over ask/tell.
//!
//! Generations are pools rather than lock-step batches: offspring are bred
//! from the current parents whenever asked for, and once `offspring`
//! results (own or foreign points) have been told, survival picks the next
//! parents. Results may therefore arrive in any order and grouping, and a
//! late result simply joins the next survival.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Settled, Snapshot, StateCodec, Tickets, reflect,
};
use crate::cube::sobol_point;
use crate::error::Result;

/// The registry name and state format of `genetic`.
pub(crate) const CODEC: StateCodec = StateCodec::new("genetic", 1);
/// RNG stream of this optimizer (independent of the other optimizers' streams).
const STREAM: u64 = 0x6E_6574_6963;
/// Attempts at breeding a child that is not a duplicate before falling back
/// to random points.
const MAX_TRIES: usize = 40;

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

/// Options of `genetic`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeneticConfig {
    /// Parents kept per generation (and offspring bred per generation).
    /// Default: `max(20, 4 + 4d)`, capped at 200 and at a tenth of the
    /// budget (at least 10), so a small budget still sees generations.
    pub population: Option<usize>,
    /// Offspring told between two survivals (lambda). Default: the
    /// population; smaller values select more often (faster, greedier).
    pub offspring: Option<usize>,
    /// Tournament size: larger means stronger selection pressure (3 beats
    /// the binary tournament on most of our benchmarks).
    pub tournament: usize,
    /// Operator for continuous and integer genes (categorical genes always
    /// use uniform crossover, which never invents a choice).
    pub crossover: Crossover,
    /// Probability that a child is bred by crossover rather than copied from
    /// one parent (then only mutated).
    pub crossover_rate: f64,
    /// Operator for mutating genes (categorical genes always change choice).
    pub mutation: Mutation,
    /// Per-gene mutation probability; default `1/d`, so about one gene per
    /// child changes.
    pub mutation_rate: Option<f64>,
    /// `None`: (mu+lambda) survival, the best of parents and offspring live on
    /// (strongly elitist, fast). `Some(k)`: generational survival, the best
    /// `k` individuals overall plus the best offspring (keeps more diversity).
    pub elites: Option<usize>,
}

impl Default for GeneticConfig {
    fn default() -> Self {
        GeneticConfig {
            population: None,
            offspring: None,
            tournament: 3,
            crossover: Crossover::Sbx(15.0),
            crossover_rate: 0.9,
            mutation: Mutation::Polynomial(20.0),
            mutation_rate: None,
            elites: None,
        }
    }
}

impl GeneticConfig {
    fn check(&self) -> Result<()> {
        let mut check = OptionCheck::default();
        if let Some(p) = self.population
            && p < 4
        {
            check.bad("population", format!("must be at least 4 (got {p})"));
        }
        if self.offspring == Some(0) {
            check.bad("offspring", "must be at least 1 (got 0)");
        }
        if self.tournament < 1 {
            check.bad("tournament", "must be at least 1 (got 0)");
        }
        if !(0.0..=1.0).contains(&self.crossover_rate) {
            check.bad("crossover_rate", format!("must be in [0, 1] (got {})", self.crossover_rate));
        }
        match self.crossover {
            Crossover::Sbx(eta) if !(eta.is_finite() && eta >= 0.0) => {
                check.bad("crossover", format!("sbx eta must be a finite number >= 0 (got {eta})"));
            }
            Crossover::Blend(a) if !(a.is_finite() && a >= 0.0) => {
                check.bad("crossover", format!("blend alpha must be a finite number >= 0 (got {a})"));
            }
            _ => {}
        }
        match self.mutation {
            Mutation::Polynomial(eta) if !(eta.is_finite() && eta >= 0.0) => {
                check.bad("mutation", format!("polynomial eta must be a finite number >= 0 (got {eta})"));
            }
            Mutation::Gaussian(s) if !(s.is_finite() && s > 0.0) => {
                check.bad("mutation", format!("gaussian sigma must be a finite number > 0 (got {s})"));
            }
            _ => {}
        }
        if let Some(r) = self.mutation_rate
            && !(0.0..=1.0).contains(&r)
        {
            check.bad("mutation_rate", format!("must be in [0, 1] (got {r})"));
        }
        if let (Some(e), Some(p)) = (self.elites, self.population)
            && e > p
        {
            check.bad("elites", format!("must be at most `population` ({p}) (got {e})"));
        }
        check.finish()
    }
}

/// Default population for dimension `d` and an optional budget.
fn default_population(d: usize, budget: Option<u64>) -> usize {
    let by_dim = (4 + 4 * d).clamp(20, 200);
    match budget {
        Some(b) => by_dim.min(((b / 10) as usize).max(10)),
        None => by_dim,
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
    /// Next index of the Sobol design (initial population, and fresh points
    /// while there are no parents yet).
    next_sobol: u64,
    generation: u64,
    /// Current parents, best first (never failed evaluations).
    parents: Vec<Observed>,
    /// Told offspring and foreign points since the last survival.
    pool: Vec<Observed>,
    pending: Pending<Candidate>,
    /// Keys of every point asked or told, for spaces without continuous
    /// dimensions (where duplicates are likely); empty otherwise.
    seen: BTreeSet<u64>,
}

/// The genetic algorithm; see the module docs.
pub struct Genetic {
    dims: Vec<Dim>,
    config: GeneticConfig,
    population: usize,
    offspring: usize,
    mutation_rate: f64,
    sobol_seed: u64,
    /// Number of distinct points when every dimension is discrete and the
    /// space is small enough to be exhausted; `None` otherwise.
    space_size: Option<u64>,
    all_discrete: bool,
    state: State,
}

impl Genetic {
    /// Check the options (every bad one is reported) and size the
    /// population for the problem.
    pub fn new(problem: &Problem, config: GeneticConfig) -> Result<Self> {
        config.check()?;
        let d = problem.dim();
        let population = config.population.unwrap_or_else(|| default_population(d, problem.budget));
        if let Some(e) = config.elites
            && e > population
        {
            let mut check = OptionCheck::default();
            check.bad("elites", format!("must be at most the population ({population}) (got {e})"));
            check.finish()?;
        }
        let mutation_rate = config.mutation_rate.unwrap_or(1.0 / d.max(1) as f64);
        let offspring = config.offspring.unwrap_or(population);
        let all_discrete = problem.dims.iter().all(|dim| dim.levels().is_some());
        let space_size = if all_discrete {
            problem
                .dims
                .iter()
                .try_fold(1u64, |acc, dim| acc.checked_mul(dim.levels().unwrap_or(1).max(1)))
                .filter(|&n| n <= 10_000_000)
        } else {
            None
        };
        Ok(Genetic {
            dims: problem.dims.clone(),
            config,
            population,
            offspring,
            mutation_rate,
            sobol_seed: problem.seed ^ STREAM.rotate_left(29),
            space_size,
            all_discrete,
            state: State {
                rng: Rng::new(problem.seed, STREAM),
                next_ticket: Tickets::default(),
                next_sobol: 0,
                generation: 0,
                parents: Vec::new(),
                pool: Vec::new(),
                pending: Pending::default(),
                seen: BTreeSet::new(),
            },
        })
    }

    /// Snap discrete genes to their bin centres (the value they decode to).
    fn snap(&self, x: &mut [f64]) {
        for (v, dim) in x.iter_mut().zip(&self.dims) {
            *v = if v.is_nan() { 0.5 } else { dim.snap(*v) };
        }
    }

    fn key(&self, x: &[f64]) -> u64 {
        discrete_key(&self.dims, x)
    }

    fn is_duplicate(&self, x: &[f64]) -> bool {
        if self.all_discrete {
            return self.state.seen.contains(&self.key(x));
        }
        let s = &self.state;
        s.parents
            .iter()
            .map(|o| &o.x)
            .chain(s.pool.iter().map(|o| &o.x))
            .chain(s.pending.iter().map(|c| &c.x))
            .any(|y| y.as_slice() == x)
    }

    fn exhausted(&self) -> bool {
        self.space_size.is_some_and(|n| self.state.seen.len() as u64 >= n)
    }

    /// Index of a tournament winner among the parents (sorted best first).
    fn tournament(&mut self) -> usize {
        let n = self.state.parents.len();
        (0..self.config.tournament).map(|_| self.state.rng.below(n)).min().unwrap_or(0)
    }

    fn sobol_next(&mut self) -> Vec<f64> {
        let mut x = sobol_point(self.state.next_sobol, self.dims.len(), self.sobol_seed);
        self.state.next_sobol += 1;
        self.snap(&mut x);
        x
    }

    /// Breed one child from two tournament winners; `boost` >= 1 raises the
    /// mutation rate when earlier attempts gave duplicates.
    fn breed(&mut self, boost: f64) -> Vec<f64> {
        let a = self.tournament();
        let mut b = self.tournament();
        if b == a && self.state.parents.len() > 1 {
            b = self.tournament();
        }
        let p1 = self.state.parents[a].x.clone();
        let p2 = self.state.parents[b].x.clone();
        let rng = &mut self.state.rng;
        let mut child = if rng.chance(self.config.crossover_rate) {
            crossover(&self.dims, &p1, &p2, self.config.crossover, rng)
        } else {
            p1.clone()
        };
        let rate = (self.mutation_rate * boost).min(1.0);
        for (gene, &dim) in child.iter_mut().zip(&self.dims) {
            if rng.chance(rate) {
                *gene = mutate_gene(dim, *gene, self.config.mutation, rng);
            }
        }
        self.snap(&mut child);
        if child == p1 || child == p2 {
            // A copy of a parent teaches nothing: change one gene that can change.
            let mutable: Vec<usize> = (0..child.len()).filter(|&j| self.dims[j].levels() != Some(1)).collect();
            if !mutable.is_empty() {
                let j = mutable[self.state.rng.below(mutable.len())];
                child[j] = mutate_gene(self.dims[j], child[j], self.config.mutation, &mut self.state.rng);
                self.snap(&mut child);
            }
        }
        child
    }

    /// The next point to evaluate, or `None` when a finite space is used up.
    fn next_point(&mut self, must_answer: bool) -> Option<Vec<f64>> {
        // A used-up space still answers while results are pending (the
        // contract allows an empty answer only when nothing is pending).
        if self.exhausted() && (!must_answer || self.state.pending.is_empty()) {
            return None;
        }
        let mut x = Vec::new();
        for attempt in 0..MAX_TRIES {
            x = if self.state.parents.is_empty() { self.sobol_next() } else { self.breed(1.0 + attempt as f64) };
            if !self.is_duplicate(&x) {
                return Some(x);
            }
        }
        for _ in 0..MAX_TRIES {
            x = self.state.rng.unit_point(self.dims.len());
            self.snap(&mut x);
            if !self.is_duplicate(&x) {
                return Some(x);
            }
        }
        // Only a (nearly) used-up discrete space gets here; re-evaluating is
        // better than answering nothing while results are still pending.
        Some(x)
    }

    fn remember(&mut self, x: &[f64]) {
        if self.all_discrete {
            let k = self.key(x);
            self.state.seen.insert(k);
        }
    }

    /// Pick the next parents from the parents and the pool.
    fn survive(&mut self) {
        let pool = std::mem::take(&mut self.state.pool);
        let mut all: Vec<Observed> = Vec::with_capacity(self.state.parents.len() + pool.len());
        // Generational survival only guarantees places to the elites.
        let (elders, offspring): (Vec<Observed>, Vec<Observed>) = match self.config.elites {
            None => (std::mem::take(&mut self.state.parents).into_iter().chain(pool).collect(), Vec::new()),
            Some(_) => (std::mem::take(&mut self.state.parents), pool),
        };
        let mut ranked: Vec<Observed> = elders.into_iter().filter(|o| o.value.is_some()).collect();
        let mut fresh: Vec<Observed> = offspring.into_iter().filter(|o| o.value.is_some()).collect();
        ranked.sort_by(|a, b| a.cmp_quality(b));
        fresh.sort_by(|a, b| a.cmp_quality(b));
        match self.config.elites {
            None => push_distinct(&mut all, ranked, self.population),
            Some(k) => {
                // The elites are the best k of parents and offspring together.
                let mut both: Vec<Observed> = ranked.iter().cloned().chain(fresh.iter().cloned()).collect();
                both.sort_by(|a, b| a.cmp_quality(b));
                push_distinct(&mut all, both, k);
                push_distinct(&mut all, fresh, self.population);
                // Too few offspring succeeded: refill from the old parents.
                push_distinct(&mut all, ranked, self.population);
                all.sort_by(|a, b| a.cmp_quality(b));
            }
        }
        self.state.parents = all;
        self.state.generation += 1;
    }

    fn accept(&mut self, o: &Observed) {
        let told = match self.state.pending.settle(o, self.dims.len()) {
            Settled::Own(_, told) => told,
            Settled::Foreign(mut told) => {
                // Its genes as this space decodes them.
                self.snap(&mut told.x);
                self.remember(&told.x);
                told
            }
            Settled::Unusable => return,
        };
        self.state.pool.push(told);
    }
}

/// Add members of `from` (sorted best first) to `to` until it holds `cap`,
/// skipping points already in `to`.
fn push_distinct(to: &mut Vec<Observed>, from: Vec<Observed>, cap: usize) {
    for o in from {
        if to.len() >= cap {
            break;
        }
        if !to.iter().any(|p| p.x == o.x) {
            to.push(o);
        }
    }
}

/// A stable hash of the bins a point falls in.
fn discrete_key(dims: &[Dim], x: &[f64]) -> u64 {
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
fn mutate_gene(dim: Dim, y: f64, op: Mutation, rng: &mut Rng) -> f64 {
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

impl Optimizer for Genetic {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        // At most what the current generation still needs: breeding further
        // ahead would breed from parents the pending results may replace (a
        // caller asking for its whole budget would get one generation of
        // thousands). When the generation is fully pending, one extra child.
        let room = self.offspring.saturating_sub(self.state.pool.len() + self.state.pending.len());
        let limit = n.min(room.max(1));
        let mut out = Vec::with_capacity(limit);
        while out.len() < limit {
            let Some(x) = self.next_point(out.is_empty()) else {
                break;
            };
            self.remember(&x);
            out.push(self.state.pending.hand_out(&mut self.state.next_ticket, |ticket| Candidate { ticket, x }));
        }
        Ok(out)
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            self.accept(o);
            if self.state.pool.len() >= self.offspring {
                self.survive();
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        CODEC.snapshot(&self.state, self.dims.len())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = CODEC.restore(snapshot, self.dims.len())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(dims: Vec<Dim>) -> Problem {
        Problem::new(dims, 3)
    }

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

    #[test]
    fn small_discrete_space_is_enumerated_without_duplicates_then_finishes() {
        let dims = vec![Dim::Categorical { choices: 3 }, Dim::Integer { levels: 4 }, Dim::Categorical { choices: 2 }];
        let mut ga = Genetic::new(&problem(dims.clone()), GeneticConfig::default()).unwrap();
        let mut keys = BTreeSet::new();
        loop {
            let cands = ga.ask(5).unwrap();
            if cands.is_empty() {
                break;
            }
            for c in &cands {
                assert!(keys.insert(discrete_key(&dims, &c.x)), "duplicate point {:?}", c.x);
            }
            let told: Vec<Observed> =
                cands.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), c.x.iter().sum())).collect();
            ga.tell(&told).unwrap();
            assert!(keys.len() <= 24);
        }
        assert_eq!(keys.len(), 24, "all 24 points should be evaluated before finishing");
    }

    #[test]
    fn a_foreign_point_joins_the_initial_population() {
        let mut ga = Genetic::new(&problem(vec![Dim::Continuous; 3]), GeneticConfig::default()).unwrap();
        let baseline = vec![0.2, 0.4, 0.6];
        ga.tell(&[Observed::ok(None, baseline.clone(), -100.0)]).unwrap();
        let pop = ga.population;
        let cands = ga.ask(pop).unwrap();
        let told: Vec<Observed> = cands.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), 1.0)).collect();
        ga.tell(&told).unwrap();
        assert_eq!(ga.state.generation, 1);
        assert_eq!(ga.state.parents[0].x, baseline, "the best (foreign) point must be a parent");
    }

    #[test]
    fn failed_evaluations_never_become_parents() {
        let mut ga = Genetic::new(&problem(vec![Dim::Continuous; 2]), GeneticConfig::default()).unwrap();
        for round in 0..10 {
            let cands = ga.ask(7).unwrap();
            let told: Vec<Observed> = cands
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if (i + round) % 2 == 0 {
                        Observed::failed(Some(c.ticket), c.x.clone())
                    } else {
                        Observed::ok(Some(c.ticket), c.x.clone(), c.x[0])
                    }
                })
                .collect();
            ga.tell(&told).unwrap();
        }
        assert!(ga.state.generation >= 1);
        assert!(ga.state.parents.iter().all(|o| o.value.is_some()));
    }

    #[test]
    fn population_scales_with_dimension_and_budget() {
        assert_eq!(default_population(2, None), 20);
        assert_eq!(default_population(10, None), 44);
        assert_eq!(default_population(100, None), 200);
        assert_eq!(default_population(10, Some(100)), 10);
        assert_eq!(default_population(10, Some(5000)), 44);
    }

    #[test]
    fn rejects_bad_options() {
        let p = problem(vec![Dim::Continuous; 2]);
        let bad = [
            GeneticConfig { population: Some(2), ..Default::default() },
            GeneticConfig { crossover_rate: 1.5, ..Default::default() },
            GeneticConfig { mutation: Mutation::Gaussian(0.0), ..Default::default() },
            GeneticConfig { population: Some(10), elites: Some(11), ..Default::default() },
        ];
        for c in bad {
            assert!(Genetic::new(&p, c).is_err());
        }
        let c: GeneticConfig = serde_json::from_str(r#"{"crossover": {"blend": 0.5}, "elites": 2}"#).unwrap();
        assert_eq!(c.crossover, Crossover::Blend(0.5));
        assert!(serde_json::from_str::<GeneticConfig>(r#"{"popsize": 3}"#).is_err());
    }
}
