//! `auto`: picks and switches among the other optimizers from what is known
//! before the first trial: the budget, the dimension, the parameter types
//! and the parallelism. It is the default when a spec names no optimizer.
//!
//! | situation | plan |
//! |---|---|
//! | budget ≤ 200 trials (evaluations are expensive) | `bayes` throughout |
//! | budget unknown (open-ended, e.g. cron adding trials) | `bayes` for 200 trials, then as for a large budget |
//! | larger budget, mostly (> half) categorical parameters | `bayes` for 100 trials, then `genetic` |
//! | larger budget, otherwise | `bayes` for `clamp(10·d, 50, 150)` trials, then `cmaes` from the best point found, with a step size of 0.15 |
//! | larger budget, all parameters continuous | as above, and the last 5% of the budget go to `gradient` (L-BFGS refinement from the best point; SPSA instead when the objective is noisy) |
//!
//! Noise is measured, not guessed: before the refinement, a GP is fitted to
//! the latest 200 trials; when its fitted noise variance exceeds 5% of the
//! (standardized) output variance, finite differences would chase the
//! noise, so the refinement uses SPSA.
//!
//! Why: a GP model is the most sample-efficient of the methods when every
//! evaluation counts, but its cost grows with the cube of the history, so
//! for large budgets (cheap evaluations) it hands over to CMA-ES, which
//! needs thousands of evaluations to shine and then beats every other
//! method on continuous problems; the genetic algorithm's crossover copes
//! with mostly unordered choices; a final quasi-Newton polish turns a
//! nearly converged point of a smooth problem into a precise one.
//!
//! A Pareto study (several objectives) gets `parego` (a GP per random scalarization) when the
//! budget is at most 200 trials or unknown, else `nsga2` for two objectives and `nsga3` for
//! three or more ([`pareto`]); `auto`'s options do not apply there.
//!
//! On a switch every observation so far is told to the next optimizer as a
//! point it did not propose (CMA-ES centres its first run on the best one).
//! Candidates still pending at a switch are told to the new optimizer when
//! their results arrive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::bayes::{Bayes, BayesConfig};
use super::cmaes::{CmaEs, CmaEsConfig};
use super::genetic::{Genetic, GeneticConfig};
use super::gradient::{Gradient, GradientConfig, Method};
use super::{Candidate, Dim, Observed, Optimizer, OptionCheck, Problem, Snapshot, StateCodec, Tickets, sanitized};
use crate::error::Result;

/// The registry name and state format of `auto`.
pub(crate) const CODEC: StateCodec = StateCodec::new("auto", 1);
/// Budgets up to this many trials are spent on the GP model only.
pub const SMALL_BUDGET: u64 = 200;

/// Options of `auto`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoConfig {
    /// Trials of the model-based (bayes) phase; default from the table above.
    pub model_trials: Option<u64>,
    /// Share of a known budget used for the final gradient refinement on
    /// all-continuous spaces (default 0.05; 0 turns it off).
    pub refine_share: Option<f64>,
}

/// An optimizer a phase runs, with its options: typed, and built directly,
/// so that an option renamed in its optimizer is a compile error here.
#[derive(Debug, Clone, PartialEq)]
pub enum PhaseOptimizer {
    /// Bayesian optimization (the model phase).
    Bayes(BayesConfig),
    /// CMA-ES, from the best point so far.
    Cmaes(CmaEsConfig),
    /// The genetic algorithm, for mostly categorical spaces.
    Genetic(GeneticConfig),
    /// The final local refinement.
    Gradient(GradientConfig),
}

impl PhaseOptimizer {
    /// The registry name of the optimizer.
    pub fn name(&self) -> &'static str {
        match self {
            PhaseOptimizer::Bayes(_) => super::bayes::CODEC.name,
            PhaseOptimizer::Cmaes(_) => super::cmaes::CODEC.name,
            PhaseOptimizer::Genetic(_) => super::genetic::CODEC.name,
            PhaseOptimizer::Gradient(_) => super::gradient::CODEC.name,
        }
    }

    fn build(&self, problem: &Problem) -> Result<Box<dyn Optimizer>> {
        Ok(match self {
            PhaseOptimizer::Bayes(c) => Box::new(Bayes::new(problem, c.clone())?),
            PhaseOptimizer::Cmaes(c) => Box::new(CmaEs::new(problem, c.clone())?),
            PhaseOptimizer::Genetic(c) => Box::new(Genetic::new(problem, c.clone())?),
            PhaseOptimizer::Gradient(c) => Box::new(Gradient::new(problem, c.clone())?),
        })
    }
}

/// One phase of the plan: an optimizer with its options, and how many
/// candidates it proposes (`None`: until the end).
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// The optimizer and its options.
    pub optimizer: PhaseOptimizer,
    /// Candidates it proposes before the next phase (`None`: until the end).
    pub trials: Option<u64>,
}

impl Phase {
    fn new(optimizer: PhaseOptimizer, trials: Option<u64>) -> Self {
        Phase { optimizer, trials }
    }
}

/// What `auto` decides at the switch into a phase, on top of the plan's
/// options: the refinement's method, from the measured noise. Serialized as
/// the options it sets (`{}` or `{"method": "spsa"}`), the shape snapshots
/// have always stored it in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Chosen {
    /// The gradient phase's method (`spsa` when the objective is noisy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<Method>,
}

impl Chosen {
    /// The phase's optimizer with these choices applied.
    fn apply(&self, optimizer: &PhaseOptimizer) -> PhaseOptimizer {
        let mut optimizer = optimizer.clone();
        if let (Some(method), PhaseOptimizer::Gradient(config)) = (self.method, &mut optimizer) {
            config.method = method;
        }
        optimizer
    }
}

fn bayes() -> PhaseOptimizer {
    PhaseOptimizer::Bayes(BayesConfig::default())
}

/// The plan `auto` follows for a problem (documented in the module table).
pub fn plan(problem: &Problem, config: &AutoConfig) -> Vec<Phase> {
    let d = problem.dim() as u64;
    let categorical = problem.dims.iter().filter(|d| d.is_categorical()).count() as u64;
    let all_continuous = problem.dims.iter().all(|d| matches!(d, Dim::Continuous));
    let mostly_categorical = 2 * categorical > d;
    match problem.budget {
        Some(b) if b <= SMALL_BUDGET && config.model_trials.is_none() => vec![Phase::new(bayes(), None)],
        budget => {
            let model = config.model_trials.unwrap_or(match (budget, mostly_categorical) {
                (None, _) => SMALL_BUDGET,
                (Some(_), true) => 100,
                (Some(_), false) => (10 * d).clamp(50, 150),
            });
            let mut phases = vec![Phase::new(bayes(), Some(model))];
            if mostly_categorical {
                phases.push(Phase::new(PhaseOptimizer::Genetic(GeneticConfig::default()), None));
                return phases;
            }
            let cmaes = CmaEsConfig { sigma0: 0.15, ..Default::default() };
            let mut cma = Phase::new(PhaseOptimizer::Cmaes(cmaes), None);
            let refine = config.refine_share.unwrap_or(0.05);
            match budget {
                Some(b) if all_continuous && refine > 0.0 && b > model => {
                    let polish = ((b - model) as f64 * refine).round() as u64;
                    cma.trials = Some(b - model - polish);
                    phases.push(cma);
                    if polish > 0 {
                        phases.push(Phase::new(PhaseOptimizer::Gradient(GradientConfig::default()), None));
                    }
                }
                _ => phases.push(cma),
            }
            phases
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Told {
    x: Vec<f64>,
    value: Option<f64>,
    violation: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    phase: usize,
    /// Candidates the current phase has proposed.
    asked_in_phase: u64,
    next_ticket: Tickets,
    /// Our ticket → (phase, the inner optimizer's ticket).
    tickets: BTreeMap<u64, (usize, u64)>,
    /// Every observation, kept while another phase may follow.
    history: Vec<Told>,
    /// Options chosen at the switch into the current phase (e.g. SPSA for
    /// a noisy refinement), on top of the plan's.
    #[serde(default)]
    chosen: Chosen,
    inner: Snapshot,
}

/// The `auto` optimizer: runs its plan's phases in turn (see the module docs).
pub struct Auto {
    problem: Problem,
    phases: Vec<Phase>,
    inner: Box<dyn Optimizer>,
    state: State,
}

/// Share of the standardized output variance above which the objective
/// counts as noisy.
const NOISY: f64 = 0.05;

/// Is the objective noisy? The noise variance of a GP fitted to the latest
/// (at most 200) successful trials, relative to the output variance.
fn noisy(dims: &[Dim], history: &[Told]) -> bool {
    let recent: Vec<&Told> = history.iter().rev().filter(|t| t.value.is_some()).take(200).collect();
    if recent.len() < 10 {
        return false;
    }
    let values: Vec<f64> = recent.iter().filter_map(|t| t.value).collect();
    let transform = crate::surrogate::OutputTransform::fit(&values);
    let xs: Vec<Vec<f64>> = recent.iter().map(|t| t.x.clone()).collect();
    let ys: Vec<f64> = values.iter().map(|&v| transform.forward(v)).collect();
    let kinds = crate::surrogate::gp::kinds_of(dims);
    crate::surrogate::Gp::fit(&kinds, &xs, &ys, &crate::surrogate::FitOptions::default())
        .map(|gp| gp.hyper().noise_var() > NOISY)
        .unwrap_or(false)
}

fn build_phase(
    problem: &Problem,
    phases: &[Phase],
    k: usize,
    used: u64,
    chosen: &Chosen,
) -> Result<Box<dyn Optimizer>> {
    let mut p = problem.clone();
    p.seed = problem.seed.wrapping_add(k as u64 * 0x51ED);
    p.budget = match phases[k].trials {
        Some(t) => Some(t),
        None => problem.budget.map(|b| b.saturating_sub(used).max(1)),
    };
    chosen.apply(&phases[k].optimizer).build(&p)
}

/// `auto` in a Pareto study: `parego` while evaluations are expensive (a budget of at most
/// [`SMALL_BUDGET`] trials, or none known); with more, `nsga2` for two objectives and `nsga3`
/// for more (reference directions keep the front spread where crowding distance no longer
/// does). At 100 evaluations `parego` reaches a hypervolume of 0.83 on ZDT1 (6 variables,
/// reference 1.1) where `nsga2` and random search reach 0 (median of 5 seeds; the
/// `parego::tests::model_tier_comparison` test prints it). The options of `auto` shape its
/// single-objective phases; here only their names are checked.
pub(crate) fn pareto(problem: &Problem, _config: AutoConfig) -> Result<Box<dyn Optimizer>> {
    use super::nsga::{Nsga, NsgaConfig};
    use super::parego::{ParEgo, ParEgoConfig};
    if problem.budget.is_none_or(|b| b <= SMALL_BUDGET) {
        return Ok(Box::new(ParEgo::new(problem, ParEgoConfig::default())?));
    }
    Ok(Box::new(match problem.objectives {
        0..=2 => Nsga::nsga2(problem, NsgaConfig::default())?,
        _ => Nsga::nsga3(problem, NsgaConfig::default())?,
    }))
}

impl Auto {
    /// Check the options (every bad one is reported), plan the phases for
    /// the problem and build the first.
    pub fn new(problem: &Problem, config: AutoConfig) -> Result<Self> {
        let mut check = OptionCheck::default();
        if config.model_trials == Some(0) {
            check.bad("model_trials", "must be at least 1");
        }
        if let Some(r) = config.refine_share
            && !(0.0..=0.5).contains(&r)
        {
            check.bad("refine_share", format!("must be between 0 and 0.5, not {r}"));
        }
        check.finish()?;
        let phases = plan(problem, &config);
        let inner = build_phase(problem, &phases, 0, 0, &Default::default())?;
        let state = State {
            phase: 0,
            asked_in_phase: 0,
            next_ticket: Tickets::default(),
            tickets: BTreeMap::new(),
            history: Vec::new(),
            chosen: Default::default(),
            inner: inner.snapshot()?,
        };
        Ok(Auto { problem: problem.clone(), phases, inner, state })
    }

    /// The phases this instance follows, and the index of the current one.
    pub fn phases(&self) -> (&[Phase], usize) {
        (&self.phases, self.state.phase)
    }

    /// Options chosen at the switch into the current phase.
    pub fn chosen(&self) -> &Chosen {
        &self.state.chosen
    }

    fn used(&self) -> u64 {
        self.state.history.len() as u64
    }

    fn switch(&mut self) -> Result<()> {
        let k = self.state.phase + 1;
        let mut chosen = Chosen::default();
        if matches!(self.phases[k].optimizer, PhaseOptimizer::Gradient(_))
            && noisy(&self.problem.dims, &self.state.history)
        {
            chosen.method = Some(Method::Spsa);
        }
        let used = self.used().max(self.state.next_ticket.peek());
        self.inner = build_phase(&self.problem, &self.phases, k, used, &chosen)?;
        self.state.chosen = chosen;
        let told: Vec<Observed> = self
            .state
            .history
            .iter()
            .map(|t| Observed {
                ticket: None,
                x: t.x.clone(),
                value: t.value,
                violation: t.violation,
                gradient: None,
                slacks: Vec::new(),
                objectives: Vec::new(),
            })
            .collect();
        self.inner.tell(&told)?;
        self.state.phase = k;
        self.state.asked_in_phase = 0;
        if k + 1 == self.phases.len() {
            // No later phase needs the history.
            self.state.history = Vec::new();
        }
        Ok(())
    }
}

impl Optimizer for Auto {
    fn name(&self) -> &'static str {
        CODEC.name
    }

    fn ask(&mut self, n: usize) -> Result<Vec<Candidate>> {
        let mut out = Vec::new();
        let mut idle_switches = 0;
        while out.is_empty() {
            let phase = &self.phases[self.state.phase];
            let last = self.state.phase + 1 == self.phases.len();
            let quota = phase.trials.map(|t| t.saturating_sub(self.state.asked_in_phase));
            if quota == Some(0) && !last {
                self.switch()?;
                continue;
            }
            let want = n.max(1).min(quota.unwrap_or(u64::MAX) as usize);
            let got = self.inner.ask(want)?;
            if got.is_empty() {
                // The phase has finished on its own: move on, or stop at the end.
                if last || idle_switches > self.phases.len() {
                    break;
                }
                idle_switches += 1;
                self.switch()?;
                continue;
            }
            for c in got {
                let ticket = self.state.next_ticket.issue();
                self.state.asked_in_phase += 1;
                self.state.tickets.insert(ticket, (self.state.phase, c.ticket));
                out.push(Candidate { ticket, x: c.x });
            }
            // The phase answered with its natural batch: that is the answer
            // (asking again would defeat a sequential optimizer).
            break;
        }
        Ok(out)
    }

    fn tell(&mut self, results: &[Observed]) -> Result<()> {
        let mut inner = Vec::with_capacity(results.len());
        for r in results {
            let mapped = r.ticket.and_then(|t| self.state.tickets.remove(&t));
            let ticket = match mapped {
                Some((phase, t)) if phase == self.state.phase => Some(t),
                _ => None,
            };
            if self.state.phase + 1 < self.phases.len() {
                // Sanitized, so that the history reads back from a snapshot as it was.
                let safe = sanitized(r.x.clone(), r);
                self.state.history.push(Told { x: safe.x, value: safe.value, violation: safe.violation });
            }
            inner.push(Observed { ticket, ..r.clone() });
        }
        self.inner.tell(&inner)
    }

    fn snapshot(&self) -> Result<Snapshot> {
        let mut state = self.state.clone();
        state.inner = self.inner.snapshot()?;
        CODEC.snapshot(&state, self.problem.dim())
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<()> {
        let state: State = CODEC.restore(snapshot, self.problem.dim())?;
        let mut inner = build_phase(&self.problem, &self.phases, state.phase, 0, &state.chosen)?;
        inner.restore(&state.inner)?;
        self.inner = inner;
        self.state = state;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(dims: Vec<Dim>, budget: Option<u64>) -> Problem {
        Problem { budget, ..Problem::new(dims, 1) }
    }

    fn names(p: &[Phase]) -> Vec<&str> {
        p.iter().map(|p| p.optimizer.name()).collect()
    }

    #[test]
    fn the_plan_follows_the_documented_table() {
        let c = AutoConfig::default();
        let cont = vec![Dim::Continuous; 10];
        assert_eq!(names(&plan(&problem(cont.clone(), Some(100)), &c)), ["bayes"]);
        assert_eq!(names(&plan(&problem(cont.clone(), Some(5000)), &c)), ["bayes", "cmaes", "gradient"]);
        let p = plan(&problem(cont.clone(), Some(5000)), &c);
        assert_eq!(p[0].trials, Some(100));
        assert_eq!(p[1].trials, Some(5000 - 100 - 245));
        assert_eq!(names(&plan(&problem(cont, None), &c)), ["bayes", "cmaes"]);
        let mixed = vec![Dim::Continuous, Dim::Integer { levels: 50 }];
        assert_eq!(names(&plan(&problem(mixed, Some(1000)), &c)), ["bayes", "cmaes"]);
        let cats = vec![Dim::Categorical { choices: 3 }, Dim::Categorical { choices: 4 }, Dim::Continuous];
        assert_eq!(names(&plan(&problem(cats, Some(1000)), &c)), ["bayes", "genetic"]);
    }

    #[test]
    fn switches_phases_and_keeps_proposing() {
        let mut opt = Auto::new(
            &problem(vec![Dim::Continuous; 2], Some(400)),
            AutoConfig { model_trials: Some(12), ..Default::default() },
        )
        .unwrap();
        let mut best = f64::INFINITY;
        let mut seen_phases = vec![];
        for _ in 0..60 {
            let cands = opt.ask(4).unwrap();
            assert!(!cands.is_empty());
            let obs: Vec<Observed> = cands
                .iter()
                .map(|c| {
                    let v = (c.x[0] - 0.3).powi(2) + (c.x[1] - 0.8).powi(2);
                    best = best.min(v);
                    Observed::ok(Some(c.ticket), c.x.clone(), v)
                })
                .collect();
            opt.tell(&obs).unwrap();
            seen_phases.push(opt.phases().1);
        }
        assert!(seen_phases.contains(&0) && seen_phases.contains(&1), "{seen_phases:?}");
        assert!(best < 1e-6, "best {best}");
    }

    #[test]
    fn choices_keep_the_snapshot_format_of_untyped_options() {
        // Snapshots stored `chosen` as the options map merged into the phase's.
        let spsa = Chosen { method: Some(Method::Spsa) };
        assert_eq!(serde_json::to_value(&spsa).unwrap(), serde_json::json!({"method": "spsa"}));
        assert_eq!(serde_json::to_value(Chosen::default()).unwrap(), serde_json::json!({}));
        assert_eq!(serde_json::from_value::<Chosen>(serde_json::json!({"method": "spsa"})).unwrap(), spsa);
        let gradient = PhaseOptimizer::Gradient(GradientConfig::default());
        let PhaseOptimizer::Gradient(applied) = spsa.apply(&gradient) else { panic!("the phase changed optimizer") };
        assert_eq!(applied, GradientConfig { method: Method::Spsa, ..Default::default() });
    }

    #[test]
    fn bad_options_are_reported() {
        let err = Auto::new(
            &problem(vec![Dim::Continuous], None),
            AutoConfig { model_trials: Some(0), refine_share: Some(2.0) },
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("optimizer.model_trials") && err.contains("optimizer.refine_share"), "{err}");
    }

    #[test]
    fn a_noisy_objective_is_refined_by_spsa_and_a_smooth_one_by_lbfgs() {
        for (noise, method) in [(0.0, None), (0.5, Some(Method::Spsa))] {
            let cfg = AutoConfig { model_trials: Some(15), refine_share: Some(0.2) };
            let mut opt = Auto::new(&problem(vec![Dim::Continuous; 2], Some(120)), cfg).unwrap();
            let mut k = 0u64;
            while opt.phases().1 < 2 {
                let cands = opt.ask(4).unwrap();
                assert!(!cands.is_empty(), "auto stopped asking before the refinement");
                let obs: Vec<Observed> = cands
                    .iter()
                    .map(|c| {
                        k += 1;
                        let jitter = noise * (((k as f64) * 12.9898).sin() * 43758.5453).fract();
                        Observed::ok(
                            Some(c.ticket),
                            c.x.clone(),
                            (c.x[0] - 0.3).powi(2) + (c.x[1] - 0.6).powi(2) + jitter,
                        )
                    })
                    .collect();
                opt.tell(&obs).unwrap();
                assert!(k < 200, "never reached the refinement");
            }
            assert_eq!(opt.phases().0[2].optimizer.name(), "gradient");
            assert_eq!(opt.chosen().method, method, "noise {noise}");
            // The choice survives a snapshot.
            let snap = opt.snapshot().unwrap();
            let mut again = Auto::new(
                &problem(vec![Dim::Continuous; 2], Some(120)),
                AutoConfig { model_trials: Some(15), refine_share: Some(0.2) },
            )
            .unwrap();
            again.restore(&snap).unwrap();
            assert_eq!(again.chosen(), opt.chosen());
            assert_eq!(again.ask(3).unwrap(), opt.ask(3).unwrap());
        }
    }
}
