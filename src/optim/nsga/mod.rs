//! `nsga2` and `nsga3`: evolutionary Pareto search (Deb et al. 2002; Deb and Jain 2014) on the
//! unit cube, run asynchronously over ask/tell like `genetic`.
//!
//! Both breed children from binary tournaments among the parents with the variation operators
//! every evolutionary optimizer here uses (SBX and polynomial mutation; integer genes move by a
//! level, categorical genes by uniform crossover and a change of choice). Once a generation's
//! worth of results (own or foreign points, in any order) has been told, survival sorts parents
//! and offspring into non-dominated fronts under constrained domination (feasible first, then by
//! violation) and keeps whole fronts while they fit; the front that does not fit is cut by
//! crowding distance (`nsga2`, [`crowding`]) or by niching around reference directions
//! (`nsga3`, [`reference`]: better spread with three or more objectives). Failed evaluations
//! never become parents.

mod crowding;
mod reference;

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::variation::{Breeder, Crossover, Grid, Mutation, Variation, ask_novel};
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Settled, Snapshot, StateCodec, Tickets,
};
use crate::cube::sobol_point;
use crate::error::Result;
use crate::pareto::{self, Member};

/// The registry name and state format of `nsga2`.
pub(crate) const NSGA2: StateCodec = StateCodec::new("nsga2", 1);
/// The registry name and state format of `nsga3`.
pub(crate) const NSGA3: StateCodec = StateCodec::new("nsga3", 1);
/// RNG stream of these optimizers.
const STREAM: u64 = 0x6E_7367_6132;

/// Options of `nsga2` and `nsga3`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NsgaConfig {
    /// Parents kept per generation (and offspring bred per generation). Default: a hundredth
    /// of the budget, between 20 and 100 (100 without a budget); for `nsga3` at least the
    /// number of reference directions.
    pub population: Option<usize>,
    /// Operator for continuous and integer genes (categorical genes always use uniform
    /// crossover).
    pub crossover: Crossover,
    /// Probability that a child is bred by crossover rather than copied from one parent.
    pub crossover_rate: f64,
    /// Operator for mutating genes.
    pub mutation: Mutation,
    /// Per-gene mutation probability; default `1/d`.
    pub mutation_rate: Option<f64>,
    /// `nsga3` only: divisions of each objective axis for the Das–Dennis reference directions;
    /// default: the most whose directions do not outnumber the population.
    pub divisions: Option<usize>,
}

impl Default for NsgaConfig {
    fn default() -> Self {
        NsgaConfig {
            population: None,
            crossover: Crossover::Sbx(15.0),
            crossover_rate: 0.9,
            mutation: Mutation::Polynomial(20.0),
            mutation_rate: None,
            divisions: None,
        }
    }
}

impl NsgaConfig {
    fn variation(&self) -> Variation {
        Variation {
            crossover: self.crossover,
            crossover_rate: self.crossover_rate,
            mutation: self.mutation,
            mutation_rate: self.mutation_rate,
        }
    }

    fn check(&self, name: &str) -> Result<()> {
        let mut check = OptionCheck::default();
        if let Some(p) = self.population
            && p < 4
        {
            check.bad("population", format!("must be at least 4 (got {p})"));
        }
        self.variation().check(&mut check);
        match (name, self.divisions) {
            ("nsga3", Some(0)) => check.bad("divisions", "must be at least 1 (got 0)"),
            ("nsga2", Some(_)) => {
                check.bad("divisions", "is an option of nsga3 (reference directions); nsga2 has none")
            }
            _ => {}
        }
        check.finish()
    }
}

/// How the front that does not fit whole is cut.
#[derive(Debug, Clone)]
enum Survival {
    /// NSGA-II: the most isolated points by crowding distance.
    Crowding,
    /// NSGA-III: the points that fill the emptiest reference directions.
    Reference(Vec<Vec<f64>>),
}

/// A told result as the population keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Individual {
    x: Vec<f64>,
    /// Objectives, lower is better.
    f: Vec<f64>,
    violation: f64,
    /// Its front at the last survival (0 = non-dominated).
    rank: usize,
    /// Crowding distance within its front (`nsga2`; finite: the extremes get `f64::MAX`).
    crowd: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
    next_sobol: u64,
    generation: u64,
    /// Current parents.
    parents: Vec<Individual>,
    /// Told offspring and foreign points since the last survival.
    pool: Vec<Individual>,
    pending: Pending<Candidate>,
    /// Keys of every point asked or told, in spaces without continuous dimensions.
    seen: BTreeSet<u64>,
}

/// NSGA-II or NSGA-III; see the module docs.
pub struct Nsga {
    codec: StateCodec,
    dims: Vec<Dim>,
    config: NsgaConfig,
    objectives: usize,
    population: usize,
    mutation_rate: f64,
    survival: Survival,
    sobol_seed: u64,
    grid: Grid,
    state: State,
}

/// Default population for a budget: about a hundred generations, between 20 and 100 (100
/// without a budget). The front is kept from every trial, not only the parents, so more
/// generations of a smaller population reach further than fewer of a large one (ZDT1 in 10
/// dimensions, 3,000 evaluations: hypervolume 0.871 with 20, 0.862 with 50, 0.780 with 100;
/// `tests::population_at_a_fixed_budget` prints them).
fn default_population(budget: Option<u64>) -> usize {
    budget.map_or(100, |b| ((b / 100) as usize).clamp(20, 100))
}

impl Nsga {
    /// `nsga2`: crowding-distance survival.
    pub fn nsga2(problem: &Problem, config: NsgaConfig) -> Result<Self> {
        config.check(NSGA2.name)?;
        Ok(Self::build(NSGA2, problem, config, Survival::Crowding))
    }

    /// `nsga3`: reference-direction survival.
    pub fn nsga3(problem: &Problem, config: NsgaConfig) -> Result<Self> {
        config.check(NSGA3.name)?;
        let m = problem.objectives.max(1);
        let wanted = config.population.unwrap_or_else(|| default_population(problem.budget));
        // The most divisions whose directions fit in the population (at least 1).
        let divisions = config.divisions.unwrap_or_else(|| pareto::divisions_within(m, wanted));
        let directions = pareto::reference_directions(m, divisions);
        let mut config = config;
        config.population = Some(config.population.unwrap_or(wanted).max(directions.len()));
        Ok(Self::build(NSGA3, problem, config, Survival::Reference(directions)))
    }

    fn build(codec: StateCodec, problem: &Problem, config: NsgaConfig, survival: Survival) -> Self {
        let d = problem.dim();
        let population = config.population.unwrap_or_else(|| default_population(problem.budget));
        Nsga {
            codec,
            dims: problem.dims.clone(),
            mutation_rate: config.mutation_rate.unwrap_or(1.0 / d.max(1) as f64),
            config,
            objectives: problem.objectives.max(1),
            population,
            survival,
            sobol_seed: problem.seed ^ STREAM.rotate_left(17),
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
        }
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
            .any(|y| y == x)
    }

    /// A binary tournament among the parents: the lower front wins, then the larger crowding
    /// distance (always equal under `nsga3`, whose tournament is by front alone).
    fn tournament(&mut self) -> usize {
        let n = self.state.parents.len();
        let (a, b) = (self.state.rng.below(n), self.state.rng.below(n));
        let (pa, pb) = (&self.state.parents[a], &self.state.parents[b]);
        if (pb.rank, -pb.crowd) < (pa.rank, -pa.crowd) { b } else { a }
    }

    fn breed(&mut self, boost: f64) -> Vec<f64> {
        let a = self.tournament();
        let b = self.tournament();
        let p1 = &self.state.parents[a].x;
        let p2 = &self.state.parents[b].x;
        let rate = (self.mutation_rate * boost).min(1.0);
        let mut child = self.config.variation().child(&self.dims, p1, p2, rate, &mut self.state.rng);
        self.grid.snap(&mut child);
        child
    }

    fn remember(&mut self, x: &[f64]) {
        self.grid.remember(&mut self.state.seen, x);
    }

    /// Keep the best `population` of parents and pool, front by front.
    fn survive(&mut self) {
        let mut all: Vec<Individual> = Vec::new();
        for i in std::mem::take(&mut self.state.parents).into_iter().chain(std::mem::take(&mut self.state.pool)) {
            if !all.iter().any(|o| o.x == i.x) {
                all.push(i);
            }
        }
        let members: Vec<Member> = all.iter().map(|i| Member { objectives: &i.f, violation: i.violation }).collect();
        let fronts = pareto::fronts(&members);
        let mut keep: Vec<(usize, usize)> = Vec::new();
        for (rank, front) in fronts.iter().enumerate() {
            let room = self.population - keep.len();
            if room == 0 {
                break;
            }
            if front.len() <= room {
                keep.extend(front.iter().map(|&i| (i, rank)));
                continue;
            }
            let feasible = members[front[0]].is_feasible();
            let chosen: Vec<usize> = keep.iter().map(|&(i, _)| i).collect();
            let picked = match (&self.survival, feasible) {
                (Survival::Reference(directions), true) => {
                    reference::pick(&all, &chosen, front, room, directions, &mut self.state.rng)
                }
                _ => crowding::pick(&all, front, room),
            };
            keep.extend(picked.into_iter().map(|i| (i, rank)));
            break;
        }
        let mut parents: Vec<Individual> =
            keep.iter().map(|&(i, rank)| Individual { rank, crowd: 0.0, ..all[i].clone() }).collect();
        if matches!(self.survival, Survival::Crowding) {
            crowding::assign(&mut parents);
        }
        self.state.parents = parents;
        self.state.generation += 1;
    }

    fn accept(&mut self, o: &Observed) {
        let told = match self.state.pending.settle(o, self.dims.len()) {
            Settled::Own(_, told) => told,
            Settled::Foreign(mut told) => {
                self.grid.snap(&mut told.x);
                self.remember(&told.x);
                told
            }
            Settled::Unusable => return,
        };
        // A failed evaluation, or one with another number of objectives, is kept with no
        // objectives: it used a place in the generation, and `tell` drops it before survival.
        let f = told.objective_vector().map(|f| f.into_owned()).filter(|f| f.len() == self.objectives);
        self.state.pool.push(Individual {
            x: told.x,
            f: f.unwrap_or_default(),
            violation: told.violation,
            rank: 0,
            crowd: 0.0,
        });
    }
}

impl Breeder for Nsga {
    fn grid(&self) -> &Grid {
        &self.grid
    }
    fn propose(&mut self, attempt: usize) -> Vec<f64> {
        if !self.state.parents.is_empty() {
            return self.breed(1.0 + attempt as f64);
        }
        let mut x = sobol_point(self.state.next_sobol, self.dims.len(), self.sobol_seed);
        self.state.next_sobol += 1;
        self.grid.snap(&mut x);
        x
    }
    fn is_duplicate(&self, x: &[f64]) -> bool {
        Nsga::is_duplicate(self, x)
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

impl Optimizer for Nsga {
    fn name(&self) -> &'static str {
        self.codec.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let room = self.population.saturating_sub(self.state.pool.len() + self.state.pending.len());
        Ok(ask_novel(self, n.min(room.max(1))))
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            self.accept(o);
            if self.state.pool.len() >= self.population {
                // Failed points held their place in the generation; they do not survive.
                self.state.pool.retain(|i| !i.f.is_empty());
                self.survive();
            }
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<Snapshot> {
        self.codec.snapshot(&self.state, self.dims.len())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        self.state = self.codec.restore(snapshot, self.dims.len())?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
