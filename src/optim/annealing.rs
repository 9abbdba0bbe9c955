//! `annealing`: simulated annealing on the unit cube with parallel chains,
//! step sizes that adapt to a target acceptance rate, a cooling schedule,
//! and restarts from the best point (with reheating) when a chain is stuck.
//!
//! The run starts with a scrambled Sobol design; the spread of its values
//! sets the initial temperature and its best points start the chains. Each
//! chain has at most one proposal pending, so `ask(n)` answers for up to
//! `chains` evaluations at once; a proposal is accepted or rejected when its
//! result is told, against the chain's state at that moment.

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::{
    Candidate, Dim, Observed, Optimizer, OptionCheck, Pending, Problem, Settled, Snapshot, StateCodec, Tickets,
    reflect, ticketed,
};
use crate::cube::sobol_point;
use crate::error::Result;

/// The registry name and state format of `annealing`.
pub(crate) const CODEC: StateCodec = StateCodec::new("annealing", 1);
/// RNG stream of this optimizer (independent of the other optimizers' streams).
const STREAM: u64 = 0x414E_4E45_414C;
/// Step sizes live in [MIN_STEP, MAX_STEP] (unit-cube units).
const MIN_STEP: f64 = 1e-12;
const MAX_STEP: f64 = 0.5;
/// How fast a step size follows the acceptance rate (log-step change per proposal).
const ADAPT: f64 = 0.2;
/// Steps per chain assumed by [`Cooling::Auto`] when the budget is unknown.
const DEFAULT_STEPS: f64 = 2000.0;

/// How the temperature falls with the steps `k` a chain has taken since it
/// started (or was last reheated).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cooling {
    /// Geometric cooling, `T = T0 * rate^k`, with the rate chosen from the
    /// budget so the temperature falls by a factor `1e-8` over the run
    /// (freezing into a local search at the end).
    Auto,
    /// Geometric cooling with a fixed rate per step, `T = T0 * rate^k`.
    Exponential(f64),
    /// `T = T0 / (1 + ln(1 + k))`: very slow; for open-ended runs that
    /// should never freeze.
    Logarithmic,
}

/// Which coordinates a proposal changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Moves {
    /// One coordinate per proposal, each with its own adaptive step (Corana
    /// et al. 1987): cheap progress on loosely coupled parameters.
    Single,
    /// Every coordinate at once (a Gaussian in the cube): better when
    /// parameters interact strongly.
    Full,
    /// Alternate between the two at random.
    Mixed,
}

/// Options of `annealing`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnnealingConfig {
    /// Independent chains, each with at most one pending proposal: the most
    /// evaluations that can run at once. Default `max(parallelism, 4)`.
    pub chains: Option<usize>,
    /// The cooling schedule (default `auto`).
    pub cooling: Cooling,
    /// Which coordinates a proposal changes (default `single`).
    pub moves: Moves,
    /// Acceptance rate the step sizes steer towards: higher means smaller,
    /// safer steps; lower means bolder ones.
    pub target_acceptance: f64,
    /// Initial step (standard deviation, fraction of the range).
    pub initial_step: f64,
    /// Size of the initial design. Default `max(chains, 2d + 2)`, at most a
    /// fifth of the budget.
    pub initial_samples: Option<usize>,
    /// Chain steps without improving the chain's best after which a chain
    /// that trails another one restarts from the overall best point (so the
    /// chains' effort drifts towards the most promising basin). Default
    /// `max(10, 2d)`: about two tries per coordinate.
    pub patience: Option<u64>,
    /// Temperature factor applied when a chain has converged (its steps
    /// collapsed) and restarts from the best (capped at the initial
    /// temperature); 1 restarts without reheating.
    pub reheat: f64,
}

impl Default for AnnealingConfig {
    fn default() -> Self {
        AnnealingConfig {
            chains: None,
            cooling: Cooling::Auto,
            moves: Moves::Single,
            target_acceptance: 0.4,
            initial_step: 0.15,
            initial_samples: None,
            patience: None,
            reheat: 10.0,
        }
    }
}

impl AnnealingConfig {
    fn check(&self) -> Result<()> {
        let mut check = OptionCheck::default();
        if self.chains == Some(0) {
            check.bad("chains", "must be at least 1 (got 0)");
        }
        if let Cooling::Exponential(r) = self.cooling
            && !(r > 0.0 && r <= 1.0)
        {
            check.bad("cooling", format!("exponential rate must be in (0, 1] (got {r})"));
        }
        let t = self.target_acceptance;
        if !(t > 0.0 && t < 1.0) {
            check.bad("target_acceptance", format!("must be in (0, 1) (got {t})"));
        }
        let s = self.initial_step;
        if !(s > 0.0 && s <= MAX_STEP) {
            check.bad("initial_step", format!("must be in (0, {MAX_STEP}] (got {s})"));
        }
        if self.initial_samples == Some(0) {
            check.bad("initial_samples", "must be at least 1 (got 0)");
        }
        if self.patience == Some(0) {
            check.bad("patience", "must be at least 1 (got 0)");
        }
        if !(self.reheat.is_finite() && self.reheat >= 1.0) {
            check.bad("reheat", format!("must be a finite number >= 1 (got {})", self.reheat));
        }
        check.finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Chain {
    current: Observed,
    best: Observed,
    /// Step size per coordinate.
    step: Vec<f64>,
    /// Temperature at the chain's (re)start, and steps taken since.
    t_start: f64,
    clock: u64,
    since_best: u64,
    /// Proposals settled and accepted (for diagnostics and tests).
    proposals: u64,
    accepted: u64,
}

/// A pending proposal.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Proposal {
    ticket: u64,
    /// The chain that proposed it; `None` for a point of the initial design.
    chain: Option<usize>,
    x: Vec<f64>,
    /// The coordinate moved by a single-coordinate proposal (its step adapts).
    coord: Option<usize>,
    /// The uniform number that decides acceptance, drawn when proposed so the
    /// outcome does not depend on the order results come back in.
    u: f64,
}

ticketed!(Proposal);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    rng: Rng,
    next_ticket: Tickets,
    next_sobol: u64,
    /// Results of the initial design (and foreign points) until the chains start.
    samples: Vec<Observed>,
    chains: Vec<Chain>,
    /// Initial temperature (0 until the chains start).
    t0: f64,
    worst_feasible: Option<f64>,
    best: Option<Observed>,
    pending: Pending<Proposal>,
    /// Where the search for a chain to propose from starts (round robin).
    turn: usize,
    restarts: u64,
}

/// Simulated annealing; see the module docs.
pub struct Annealing {
    dims: Vec<Dim>,
    config: AnnealingConfig,
    chains: usize,
    initial_samples: usize,
    patience: u64,
    /// Per-step cooling factor of [`Cooling::Auto`] and [`Cooling::Exponential`].
    rate: f64,
    sobol_seed: u64,
    state: State,
}

impl Annealing {
    /// Check the options (every bad one is reported) and plan the design,
    /// the chains and the cooling for the problem.
    pub fn new(problem: &Problem, config: AnnealingConfig) -> Result<Self> {
        config.check()?;
        let d = problem.dim();
        let chains = config.chains.unwrap_or(problem.parallelism.max(4));
        let initial_samples = config.initial_samples.unwrap_or_else(|| {
            let n = chains.max(2 * d + 2);
            match problem.budget {
                Some(b) => n.min((b / 5) as usize).max(chains.min(n)),
                None => n,
            }
        });
        let patience = config.patience.unwrap_or((2 * d as u64).max(10));
        let rate = match config.cooling {
            Cooling::Exponential(r) => r,
            Cooling::Logarithmic => 1.0,
            Cooling::Auto => {
                let steps = match problem.budget {
                    Some(b) => (b.saturating_sub(initial_samples as u64) as f64 / chains as f64).max(10.0),
                    None => DEFAULT_STEPS,
                };
                (1e-8f64).powf(1.0 / steps)
            }
        };
        Ok(Annealing {
            dims: problem.dims.clone(),
            config,
            chains,
            initial_samples,
            patience,
            rate,
            sobol_seed: problem.seed ^ STREAM.rotate_left(41),
            state: State {
                rng: Rng::new(problem.seed, STREAM),
                next_ticket: Tickets::default(),
                next_sobol: 0,
                samples: Vec::new(),
                chains: Vec::new(),
                t0: 0.0,
                worst_feasible: None,
                best: None,
                pending: Pending::default(),
                turn: 0,
                restarts: 0,
            },
        })
    }

    fn snap(&self, x: &mut [f64]) {
        for (v, dim) in x.iter_mut().zip(&self.dims) {
            *v = if v.is_nan() { 0.5 } else { dim.snap(*v) };
        }
    }

    fn temperature(&self, chain: &Chain) -> f64 {
        let k = chain.clock as f64;
        match self.config.cooling {
            Cooling::Auto | Cooling::Exponential(_) => chain.t_start * self.rate.powf(k),
            Cooling::Logarithmic => chain.t_start / (1.0 + (1.0 + k).ln()),
        }
    }

    fn penalized(&self, o: &Observed) -> f64 {
        o.penalized(self.state.worst_feasible.unwrap_or(0.0))
    }

    /// Coordinates a proposal can change (a one-level dimension cannot).
    fn movable(&self) -> Vec<usize> {
        (0..self.dims.len()).filter(|&j| self.dims[j].levels().is_none_or(|n| n > 1)).collect()
    }

    /// Move coordinate `j` of `x` by a step of standard deviation `step`:
    /// continuous ones by a reflected Gaussian, integers by at least one
    /// level, categoricals to a different choice.
    fn move_coord(&mut self, x: &mut [f64], j: usize, step: f64) {
        let rng = &mut self.state.rng;
        match self.dims[j] {
            Dim::Continuous => x[j] = reflect(x[j] + step * rng.normal()),
            dim @ Dim::Integer { levels } => {
                let n = levels as f64;
                let before = dim.snap(x[j]);
                let delta = step * rng.normal();
                let after = dim.snap(reflect(before + delta));
                x[j] = if after != before {
                    after
                } else {
                    let k = (before * n).floor();
                    let up = if k <= 0.0 {
                        true
                    } else if k >= n - 1.0 {
                        false
                    } else {
                        delta > 0.0
                    };
                    (if up { k + 1.0 } else { k - 1.0 } + 0.5) / n
                };
            }
            dim @ Dim::Categorical { choices } => {
                let n = choices as usize;
                let k = ((dim.snap(x[j]) * n as f64).floor() as usize).min(n - 1);
                let mut c = rng.below(n - 1);
                if c >= k {
                    c += 1;
                }
                x[j] = (c as f64 + 0.5) / n as f64;
            }
        }
    }

    /// A proposal from chain `c`.
    fn propose(&mut self, c: usize) -> Proposal {
        let mut x = self.state.chains[c].current.x.clone();
        let movable = self.movable();
        let single = match self.config.moves {
            Moves::Single => true,
            Moves::Full => false,
            Moves::Mixed => self.state.rng.chance(0.5),
        };
        let mut coord = None;
        if !movable.is_empty() {
            if single || movable.len() == 1 {
                let j = movable[self.state.rng.below(movable.len())];
                let step = self.state.chains[c].step[j];
                self.move_coord(&mut x, j, step);
                coord = Some(j);
            } else {
                // Full moves change every ordered coordinate and, with
                // probability 1/d each, the categorical ones (at least one
                // coordinate always changes).
                let p_cat = 1.0 / movable.len() as f64;
                let before = x.clone();
                for &j in &movable {
                    if !self.dims[j].is_categorical() || self.state.rng.chance(p_cat) {
                        let step = self.state.chains[c].step[j];
                        self.move_coord(&mut x, j, step);
                    }
                }
                if x == before {
                    let j = movable[self.state.rng.below(movable.len())];
                    let step = self.state.chains[c].step[j];
                    self.move_coord(&mut x, j, step);
                }
            }
        }
        self.snap(&mut x);
        let u = self.state.rng.uniform();
        Proposal { ticket: self.state.next_ticket.issue(), chain: Some(c), x, coord, u }
    }

    fn design_point(&mut self) -> Proposal {
        let mut x = sobol_point(self.state.next_sobol, self.dims.len(), self.sobol_seed);
        self.state.next_sobol += 1;
        self.snap(&mut x);
        Proposal { ticket: self.state.next_ticket.issue(), chain: None, x, coord: None, u: 0.0 }
    }

    /// The next chain to propose from: one without a pending proposal,
    /// round robin; when every chain is busy (and nothing else was answered)
    /// the one with the fewest pending proposals.
    fn next_chain(&mut self, must_answer: bool) -> Option<usize> {
        let n = self.state.chains.len();
        let busy = |c: usize| self.state.pending.iter().filter(|p| p.chain == Some(c)).count();
        let start = self.state.turn;
        let free = (0..n).map(|k| (start + k) % n).find(|&c| busy(c) == 0);
        let pick = match free {
            Some(c) => Some(c),
            None if must_answer => (0..n).map(|k| (start + k) % n).min_by_key(|&c| busy(c)),
            None => None,
        }?;
        self.state.turn = (pick + 1) % n;
        Some(pick)
    }

    fn note(&mut self, o: &Observed) {
        if o.is_feasible() {
            let v = o.value.unwrap_or(0.0);
            self.state.worst_feasible = Some(self.state.worst_feasible.map_or(v, |w| w.max(v)));
        }
        if o.value.is_some() && self.state.best.as_ref().is_none_or(|b| o.cmp_quality(b).is_lt()) {
            self.state.best = Some(o.clone());
        }
    }

    /// Start the chains from the best points of the initial design.
    fn start_chains(&mut self) {
        let mut samples = std::mem::take(&mut self.state.samples);
        samples.sort_by(|a, b| a.cmp_quality(b));
        let mut starts: Vec<Observed> = Vec::new();
        for s in &samples {
            if !starts.iter().any(|t| t.x == s.x) {
                starts.push(s.clone());
            }
        }
        if starts.is_empty() {
            // No sample at all (cannot happen through `tell`): start anywhere.
            let x = sobol_point(self.state.next_sobol, self.dims.len(), self.sobol_seed);
            starts.push(Observed::failed(None, x));
        }
        // Temperature: an uphill move as large as the spread of the design's
        // values is accepted with probability 1/e at first.
        let mut values: Vec<f64> = samples.iter().filter(|o| o.is_feasible()).filter_map(|o| o.value).collect();
        if values.len() < 2 {
            values = samples.iter().map(|o| self.penalized(o)).filter(|v| v.is_finite()).collect();
        }
        self.state.t0 = spread(&values);
        let d = self.dims.len();
        self.state.chains = (0..self.chains)
            .map(|i| {
                let s = starts[i % starts.len()].clone();
                Chain {
                    current: s.clone(),
                    best: s,
                    step: vec![self.config.initial_step; d],
                    t_start: self.state.t0,
                    clock: 0,
                    since_best: 0,
                    proposals: 0,
                    accepted: 0,
                }
            })
            .collect();
    }

    /// Accept or reject a told proposal of chain `c`.
    fn settle(&mut self, c: usize, p: Proposal, o: Observed) {
        let target = self.config.target_acceptance;
        let t = self.temperature(&self.state.chains[c]);
        let new = self.penalized(&o);
        let old = self.penalized(&self.state.chains[c].current);
        // Anything beats a failed point, and a chain on one must move on.
        let accept = old == f64::INFINITY || new <= old || (t > 0.0 && p.u < (-(new - old) / t).exp());
        let factor = if accept { (ADAPT * (1.0 - target)).exp() } else { (-ADAPT * target).exp() };
        let chain = &mut self.state.chains[c];
        match p.coord {
            Some(j) if !self.dims[j].is_categorical() => {
                chain.step[j] = (chain.step[j] * factor).clamp(MIN_STEP, MAX_STEP);
            }
            Some(_) => {}
            None => {
                // A full move adapts every step together (their ratios persist).
                for s in chain.step.iter_mut() {
                    *s = (*s * factor).clamp(MIN_STEP, MAX_STEP);
                }
            }
        }
        chain.clock += 1;
        chain.since_best += 1;
        chain.proposals += 1;
        chain.accepted += u64::from(accept);
        if o.value.is_some() && o.cmp_quality(&chain.best).is_lt() {
            chain.best = o.clone();
            chain.since_best = 0;
        }
        if accept {
            chain.current = o;
        }
        // Stuck: no progress for `patience` steps while another chain holds
        // a better point (the leading chain keeps refining its own basin),
        // or steps collapsed to nothing (converged: reheat to escape).
        let lagging = chain.since_best >= self.patience
            && self.state.best.as_ref().is_some_and(|b| b.cmp_quality(&chain.best).is_lt());
        if chain.since_best >= self.patience {
            chain.since_best = 0;
        }
        let frozen = !self.dims.is_empty()
            && chain.step.iter().zip(&self.dims).all(|(s, dim)| dim.is_categorical() || *s <= 1e-9);
        if frozen {
            self.restart(c, true);
        } else if lagging {
            self.restart(c, false);
        }
    }

    /// Restart a stuck chain from the best point found; a converged chain is
    /// also reheated and given fresh steps.
    fn restart(&mut self, c: usize, reheat: bool) {
        let t = self.temperature(&self.state.chains[c]);
        let t0 = self.state.t0;
        let factor = self.config.reheat;
        let step = self.config.initial_step;
        let best = self.state.best.clone();
        let chain = &mut self.state.chains[c];
        if let Some(b) = best {
            chain.current = b.clone();
            chain.best = b;
        }
        chain.since_best = 0;
        if reheat {
            chain.t_start = (t * factor).min(t0.max(t));
            chain.clock = 0;
            for s in chain.step.iter_mut() {
                *s = step;
            }
        }
        self.state.restarts += 1;
    }

    /// A point this optimizer did not propose (or an initial-design point
    /// told after the chains started).
    fn adopt(&mut self, o: Observed) {
        let was_best = self.state.best.as_ref().is_none_or(|b| o.value.is_some() && o.cmp_quality(b).is_lt());
        self.note(&o);
        if self.state.chains.is_empty() {
            self.state.samples.push(o);
            return;
        }
        // A new overall best moves the chain that is worst off onto it.
        if was_best && o.value.is_some() {
            let worst = (0..self.state.chains.len())
                .max_by(|&a, &b| self.state.chains[a].current.cmp_quality(&self.state.chains[b].current));
            if let Some(w) = worst {
                let chain = &mut self.state.chains[w];
                chain.current = o.clone();
                if o.cmp_quality(&chain.best).is_lt() {
                    chain.best = o;
                }
            }
        }
    }

    fn accept(&mut self, o: &Observed) {
        match self.state.pending.settle(o, self.dims.len()) {
            Settled::Own(p, result) => match p.chain {
                Some(c) if c < self.state.chains.len() => {
                    self.note(&result);
                    self.settle(c, p, result);
                }
                _ => self.adopt(result),
            },
            Settled::Foreign(result) => self.adopt(result),
            Settled::Unusable => {}
        }
        if self.state.chains.is_empty() && self.state.samples.len() >= self.initial_samples {
            self.start_chains();
        }
    }
}

/// Standard deviation of the values (a positive fallback when they do not
/// spread: one value, or all equal).
fn spread(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return values.first().map_or(1.0, |v| v.abs().max(1.0));
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let sd = var.sqrt();
    if sd.is_finite() && sd > 0.0 { sd.min(f64::MAX / 4.0) } else { (mean.abs() * 1e-3).clamp(1e-9, 1.0) }
}

impl Optimizer for Annealing {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let p = if self.state.chains.is_empty() {
                // The design, then the chains: never more design points than
                // planned in one ask (a caller asking for its whole budget
                // would otherwise get a budget of random points).
                if !out.is_empty() && self.state.next_sobol as usize >= self.initial_samples {
                    break;
                }
                self.design_point()
            } else {
                match self.next_chain(out.is_empty()) {
                    Some(c) => self.propose(c),
                    None => break,
                }
            };
            out.push(Candidate { ticket: p.ticket, x: p.x.clone() });
            self.state.pending.push(p);
        }
        Ok(out)
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        for o in results {
            self.accept(o);
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

    fn drive(sa: &mut Annealing, f: impl Fn(&[f64]) -> f64, evals: usize, batch: usize) -> Vec<Candidate> {
        let mut all = Vec::new();
        while all.len() < evals {
            let c = sa.ask(batch).unwrap();
            assert!(!c.is_empty(), "ask({batch}) answered nothing after {} of {evals} evaluations", all.len());
            let told: Vec<Observed> = c.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
            sa.tell(&told).unwrap();
            all.extend(c);
        }
        all
    }

    #[test]
    fn step_size_adapts_to_the_landscape() {
        // A narrow valley: large steps are rejected once the temperature is
        // low, so the steps must shrink well below the initial one.
        let mut p = Problem::new(vec![Dim::Continuous; 2], 1);
        p.budget = Some(3000);
        let mut sa = Annealing::new(&p, AnnealingConfig::default()).unwrap();
        drive(&mut sa, |x| 1e4 * ((x[0] - 0.3).powi(2) + (x[1] - 0.7).powi(2)), 3000, 4);
        for c in &sa.state.chains {
            assert!(c.step.iter().all(|s| *s < 0.02), "steps did not shrink: {:?}", c.step);
        }
        assert!(sa.state.best.as_ref().unwrap().value.unwrap() < 1e-3);

        // A flat function accepts everything: steps grow to their cap.
        let mut sa = Annealing::new(&p, AnnealingConfig { patience: Some(100_000), ..Default::default() }).unwrap();
        drive(&mut sa, |_| 0.0, 400, 4);
        for c in &sa.state.chains {
            assert!(c.step.iter().all(|s| *s > 0.4), "steps did not grow: {:?}", c.step);
        }
    }

    #[test]
    fn acceptance_rate_tracks_the_target() {
        for target in [0.25, 0.45] {
            let mut p = Problem::new(vec![Dim::Continuous; 3], 2);
            p.budget = Some(4000);
            // Steady cooling, far from frozen: the step sizes steer the
            // acceptance rate.
            let config = AnnealingConfig {
                cooling: Cooling::Exponential(0.995),
                target_acceptance: target,
                ..Default::default()
            };
            let mut sa = Annealing::new(&p, config).unwrap();
            let f = |x: &[f64]| 100.0 * x.iter().map(|v| (v - 0.6).powi(2)).sum::<f64>();
            drive(&mut sa, f, 1000, 4);
            let count =
                |sa: &Annealing| sa.state.chains.iter().fold((0, 0), |(p, a), c| (p + c.proposals, a + c.accepted));
            let (p0, a0) = count(&sa);
            drive(&mut sa, f, 2000, 4);
            let (p1, a1) = count(&sa);
            let rate = (a1 - a0) as f64 / (p1 - p0) as f64;
            let steps: Vec<&Vec<f64>> = sa.state.chains.iter().map(|c| &c.step).collect();
            assert!((rate - target).abs() < 0.06, "acceptance rate {rate} for target {target} {steps:?}");
            assert!(sa.state.chains.iter().all(|c| c.step.iter().all(|s| *s < MAX_STEP)));
        }
    }

    #[test]
    fn chains_have_at_most_one_pending_proposal() {
        let mut p = Problem::new(vec![Dim::Continuous; 2], 3);
        p.parallelism = 3;
        let mut sa = Annealing::new(&p, AnnealingConfig::default()).unwrap();
        assert_eq!(sa.chains, 4);
        drive(&mut sa, |x| x[0], 40, 40); // the initial design
        assert_eq!(sa.state.chains.len(), 4);
        let a = sa.ask(10).unwrap();
        assert_eq!(a.len(), 4, "one proposal per chain");
        // Every chain busy: one extra proposal rather than none.
        let b = sa.ask(10).unwrap();
        assert_eq!(b.len(), 1);
        // Results in reverse order, one at a time.
        for c in a.iter().chain(&b).rev() {
            sa.tell(&[Observed::ok(Some(c.ticket), c.x.clone(), c.x[0])]).unwrap();
        }
        assert!(sa.state.pending.is_empty());
        assert_eq!(sa.ask(10).unwrap().len(), 4);
    }

    #[test]
    fn temperature_starts_from_the_spread_and_cools() {
        let mut p = Problem::new(vec![Dim::Continuous; 2], 4);
        p.budget = Some(1000);
        let mut sa = Annealing::new(&p, AnnealingConfig::default()).unwrap();
        let n = sa.initial_samples;
        drive(&mut sa, |x| 100.0 * x[0] + x[1], n, 50);
        let t0 = sa.state.t0;
        assert!(t0 > 10.0 && t0 < 60.0, "t0 {t0} should be near the spread of 100 * U(0,1)");
        drive(&mut sa, |x| 100.0 * x[0] + x[1], 900, 4);
        let c = &sa.state.chains[0];
        assert!(sa.temperature(c) < t0 * 1e-3);
        let log = Annealing::new(&p, AnnealingConfig { cooling: Cooling::Logarithmic, ..Default::default() }).unwrap();
        let chain = Chain { clock: 1000, ..c.clone() };
        let t = log.temperature(&chain);
        assert!(t < chain.t_start / 7.0 && t > chain.t_start / 9.0);
    }

    #[test]
    fn discrete_moves_change_the_value() {
        let dims = vec![Dim::Categorical { choices: 3 }, Dim::Integer { levels: 100 }, Dim::Integer { levels: 1 }];
        let mut sa = Annealing::new(&Problem::new(dims.clone(), 5), AnnealingConfig::default()).unwrap();
        for _ in 0..300 {
            let mut x = vec![0.5, 0.505, 0.5];
            let before = x.clone();
            sa.move_coord(&mut x, 0, 1e-9);
            assert_ne!(dims[0].snap(x[0]), dims[0].snap(before[0]), "a categorical move must change the choice");
            sa.move_coord(&mut x, 1, 1e-9);
            assert!((x[1] * 100.0 - 50.5).abs() > 0.99, "an integer move must change the level: {}", x[1]);
        }
        assert_eq!(sa.movable(), vec![0, 1]);
    }

    #[test]
    fn restarts_a_stuck_chain_from_the_best() {
        let mut p = Problem::new(vec![Dim::Continuous; 2], 6);
        p.budget = Some(2000);
        let config = AnnealingConfig { patience: Some(30), ..Default::default() };
        let mut sa = Annealing::new(&p, config).unwrap();
        // Two basins: chains in the poor one are moved to the better one.
        let f = |x: &[f64]| if x[0] < 0.5 { (x[0] - 0.2).powi(2) } else { (x[0] - 0.8).powi(2) - 0.1 };
        drive(&mut sa, f, 2000, 4);
        assert!(sa.state.restarts > 0);
        let best = sa.state.best.clone().unwrap();
        assert!(best.value.unwrap() < -0.099);
    }

    #[test]
    fn foreign_points_join_the_design_and_failures_are_walked_out_of() {
        let mut p = Problem::new(vec![Dim::Continuous; 2], 7);
        p.budget = Some(500);
        let mut sa = Annealing::new(&p, AnnealingConfig::default()).unwrap();
        sa.tell(&[Observed::ok(None, vec![0.25, 0.75], -5.0)]).unwrap();
        assert_eq!(sa.state.samples.len(), 1);
        let n = sa.initial_samples;
        drive(&mut sa, |_| 0.0, n, 100);
        assert!(sa.state.chains.iter().any(|c| c.current.x == vec![0.25, 0.75]), "the baseline starts a chain");
        // A crash region: chains keep moving and never sit on a failed point.
        let mut n = 0;
        while n < 300 {
            let c = sa.ask(4).unwrap();
            assert!(!c.is_empty(), "ask(4) answered nothing after {n} of 300 evaluations");
            let told: Vec<Observed> = c
                .iter()
                .map(|c| {
                    if c.x[0] > 0.3 {
                        Observed::failed(Some(c.ticket), c.x.clone())
                    } else {
                        Observed::ok(Some(c.ticket), c.x.clone(), c.x[1])
                    }
                })
                .collect();
            n += told.len();
            sa.tell(&told).unwrap();
        }
        assert!(sa.state.chains.iter().all(|c| c.current.value.is_some()));
    }

    #[test]
    fn rejects_bad_options() {
        let p = Problem::new(vec![Dim::Continuous; 2], 1);
        for c in [
            AnnealingConfig { chains: Some(0), ..Default::default() },
            AnnealingConfig { cooling: Cooling::Exponential(1.5), ..Default::default() },
            AnnealingConfig { target_acceptance: 1.0, ..Default::default() },
            AnnealingConfig { reheat: 0.5, ..Default::default() },
        ] {
            assert!(Annealing::new(&p, c).is_err());
        }
        let c: AnnealingConfig =
            serde_json::from_str(r#"{"cooling": {"exponential": 0.99}, "moves": "full"}"#).unwrap();
        assert_eq!(c.cooling, Cooling::Exponential(0.99));
        let c: AnnealingConfig = serde_json::from_str(r#"{"cooling": "logarithmic"}"#).unwrap();
        assert_eq!(c.cooling, Cooling::Logarithmic);
        assert!(serde_json::from_str::<AnnealingConfig>(r#"{"temperature": 3}"#).is_err());
    }
}
