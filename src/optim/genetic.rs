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
use super::variation::{Breeder, Grid, Variation, ask_novel, mutate_gene};
pub use super::variation::{Crossover, Mutation};
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Settled, Snapshot, StateCodec, Tickets,
};
use crate::cube::sobol_point;
use crate::error::Result;

/// The registry name and state format of `genetic`.
pub(crate) const CODEC: StateCodec = StateCodec::new("genetic", 1);
/// RNG stream of this optimizer (independent of the other optimizers' streams).
const STREAM: u64 = 0x6E_6574_6963;

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
    fn variation(&self) -> Variation {
        Variation {
            crossover: self.crossover,
            crossover_rate: self.crossover_rate,
            mutation: self.mutation,
            mutation_rate: self.mutation_rate,
        }
    }

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
        self.variation().check(&mut check);
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
    grid: Grid,
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
        Ok(Genetic {
            dims: problem.dims.clone(),
            config,
            population,
            offspring,
            mutation_rate,
            sobol_seed: problem.seed ^ STREAM.rotate_left(29),
            grid: Grid::new(&problem.dims),
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

    fn snap(&self, x: &mut [f64]) {
        self.grid.snap(x);
    }

    fn is_duplicate(&self, x: &[f64]) -> bool {
        if let Some(seen) = self.grid.was_seen(&self.state.seen, x) {
            return seen;
        }
        let s = &self.state;
        s.parents
            .iter()
            .map(|o| &o.x)
            .chain(s.pool.iter().map(|o| &o.x))
            .chain(s.pending.iter().map(|c| &c.x))
            .any(|y| y.as_slice() == x)
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
        let rate = (self.mutation_rate * boost).min(1.0);
        let mut child = self.config.variation().child(&self.dims, &p1, &p2, rate, &mut self.state.rng);
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

    fn remember(&mut self, x: &[f64]) {
        self.grid.remember(&mut self.state.seen, x);
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

impl Breeder for Genetic {
    fn grid(&self) -> &Grid {
        &self.grid
    }
    fn propose(&mut self, attempt: usize) -> Vec<f64> {
        if self.state.parents.is_empty() { self.sobol_next() } else { self.breed(1.0 + attempt as f64) }
    }
    fn is_duplicate(&self, x: &[f64]) -> bool {
        Genetic::is_duplicate(self, x)
    }
    fn rng(&mut self) -> &mut Rng {
        &mut self.state.rng
    }
    fn seen(&self) -> &BTreeSet<u64> {
        &self.state.seen
    }
    fn nothing_pending(&self) -> bool {
        self.state.pending.is_empty()
    }
    fn hand_out(&mut self, x: Vec<f64>) -> Candidate {
        self.remember(&x);
        self.state.pending.hand_out(&mut self.state.next_ticket, |ticket| Candidate { ticket, x })
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
        Ok(ask_novel(self, n.min(room.max(1))))
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
    use crate::optim::variation::discrete_key;

    fn problem(dims: Vec<Dim>) -> Problem {
        Problem::new(dims, 3)
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
