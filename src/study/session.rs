//! Ask and tell by parameter name, in memory: the type a Rust program uses
//! to tune something it evaluates itself (and what `knobs stdio` speaks
//! over its protocol). No storage, no evaluator: the caller measures.
//!
//! When every parameter has a default, the defaults are the baseline and are
//! asked first. With a known budget the last asks are the confirmation phase
//! ([`SessionOptions::confirm`]): the best distinct candidates and the baseline
//! measured again side by side, so that [`Session::recommend`] rests on
//! repeated measurements; measurements that repeat exactly give that budget
//! back to the search.
//!
//! ```
//! use knobs::space::{Space, Value};
//! use knobs::study::{Session, SessionOptions};
//!
//! let space = Space::builder().float("x", -5.0, 5.0).int("n", 1, 20).build().unwrap();
//! let mut session = Session::new(space, "auto", SessionOptions { budget: Some(30), ..Default::default() }).unwrap();
//! for _ in 0..30 {
//!     for s in session.ask(1).unwrap() {
//!         let (Value::Float(x), Value::Int(n)) = (&s.params["x"], &s.params["n"]) else { unreachable!() };
//!         session.tell(s.id, Some((x - 1.0).powi(2) + (*n as f64 - 7.0).abs())).unwrap();
//!     }
//! }
//! let (best, params) = session.best().unwrap();
//! assert!(best < 3.0, "{best} at {params:?}");
//! ```

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::confirm::{ConfirmStop, Next, Plan, next_round};
use super::observed;
use crate::error::{Error, Result};
use crate::objective::{Direction, Objective, Objectives};
use crate::optim::{self, Optimizer, OptimizerOptions, OptimizerSpec, Problem};
use crate::recommend::{Recommendations, Recommender};
use crate::space::{Config, Space};
use crate::spec::Confirm;
use crate::trial::{Trial, TrialState};

/// How a session searches.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionOptions {
    /// Same seed (and the same sequence of asks and tells) ⇒ the same suggestions.
    pub seed: u64,
    /// Evaluations planned, when known: sizes populations and schedules,
    /// and lets `auto` choose its plan.
    pub budget: Option<u64>,
    /// Evaluations that run at once (a hint for batch sizes).
    pub parallelism: usize,
    /// Larger values are better (the default minimizes).
    pub maximize: bool,
    /// The optimizer's options (those of its spec section).
    pub options: OptimizerOptions,
    /// The confirmation phase (as a spec's `confirm`): with a known `budget`, the last
    /// `budget_share` of it re-measures the best distinct candidates, and the baseline when the
    /// space has defaults, round by round, so that the recommendation rests on repeated
    /// measurements. `auto` (the default) runs it unless `deterministic` is set, and gives the
    /// budget back to the search when repeats come out identical.
    pub confirm: Confirm,
    /// The caller's measurements are exact (the same configuration always gives the same
    /// value): no confirmation under `auto`, no noise in the recommendations.
    pub deterministic: bool,
    /// Two or more objectives make a Pareto session: results are told as one value per
    /// objective ([`Session::tell_vectors`]) and [`Session::recommend`] gives the front
    /// (`maximize` then does not apply: each objective has its direction). Empty (the
    /// default): one objective, the metric `value`.
    pub objectives: Vec<Objective>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            seed: 0,
            budget: None,
            parallelism: 1,
            maximize: false,
            options: Default::default(),
            confirm: Confirm::default(),
            deterministic: false,
            objectives: Vec::new(),
        }
    }
}

/// A configuration to evaluate, and the id to tell its result under.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Suggestion {
    /// Tell the result under this id.
    pub id: u64,
    /// The configuration, by parameter name (active parameters only).
    pub params: Config,
}

/// A suggestion handed out and not yet told.
struct Asked {
    x: Vec<f64>,
    /// The configuration handed out.
    config: Config,
    /// The optimizer's ticket; `None` for the baseline and confirmation measurements.
    ticket: Option<u64>,
    baseline: bool,
    confirm: bool,
    /// The confirmation round it belongs to (0 for the search).
    round: u64,
}

/// Where a session is: searching, re-measuring its best candidates, or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Search,
    Confirm,
    Done,
}

/// One optimizer over one space, asked and told by parameter name.
pub struct Session {
    space: Space,
    objectives: Objectives,
    optimizer: Box<dyn Optimizer>,
    maximize: bool,
    budget: Option<u64>,
    confirm: Confirm,
    deterministic: bool,
    /// Trials the search may take before the confirmation phase (the whole budget without one).
    search_budget: Option<u64>,
    phase: Phase,
    /// Why the confirmation phase ended, once it has.
    confirm_stop: Option<ConfirmStop>,
    /// Suggestions handed out so far (the next id).
    asked: u64,
    rounds: u64,
    /// The rest of the current confirmation round, not handed out yet.
    queue: Vec<(Config, bool)>,
    pending: HashMap<u64, Asked>,
    best: Option<(f64, Config)>,
    /// Every told result as a trial (metric `value`, in the caller's sign), for [`Session::recommend`].
    told: Vec<Trial>,
}

impl Session {
    /// A session of the optimizer named `optimizer` (see
    /// [`crate::optim::names`]) over `space`.
    pub fn new(space: Space, optimizer: &str, options: SessionOptions) -> Result<Session> {
        let spec = OptimizerSpec { name: optimizer.to_string(), options: options.options };
        let mut problem = Problem::new(space.dims(), options.seed);
        problem.budget = options.budget;
        problem.parallelism = options.parallelism.max(1);
        let direction = if options.maximize { Direction::Maximize } else { Direction::Minimize };
        let objectives = match options.objectives.len() {
            0 => {
                Objectives { objectives: vec![Objective::new("value", direction)], constraints: vec![], pareto: false }
            }
            1 => Objectives { objectives: options.objectives, constraints: vec![], pareto: false },
            m => {
                problem.objectives = m;
                Objectives { objectives: options.objectives, constraints: vec![], pareto: true }
            }
        };
        let optimizer = optim::build(&spec, &problem)?;
        let maximize = !objectives.pareto && objectives.objectives[0].direction == Direction::Maximize;
        let mut session = Session {
            space,
            objectives,
            maximize,
            optimizer,
            budget: options.budget,
            confirm: options.confirm,
            deterministic: options.deterministic,
            search_budget: options.budget,
            phase: Phase::Search,
            confirm_stop: None,
            asked: 0,
            rounds: 0,
            queue: Vec::new(),
            pending: HashMap::new(),
            best: None,
            told: Vec::new(),
        };
        if let Some(b) = options.budget {
            session.search_budget = Some(b - session.plan().reserve(b));
        }
        Ok(session)
    }

    fn plan(&self) -> Plan<'_> {
        Plan {
            space: &self.space,
            objectives: &self.objectives,
            settings: &self.confirm,
            allow_risky: false,
            deterministic: self.deterministic,
        }
    }

    /// Why the confirmation phase ended, once it has (`None` while it has not run or runs).
    pub fn confirmation(&self) -> Option<ConfirmStop> {
        let spent = self.phase == Phase::Confirm && self.budget == Some(self.asked);
        self.confirm_stop.or(spent.then_some(ConfirmStop::Budget))
    }

    /// The space searched.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The optimizer's registry name.
    pub fn optimizer(&self) -> &'static str {
        self.optimizer.name()
    }

    /// Up to `n` configurations to evaluate (at least 1 unless the session has finished: then
    /// none). The first is the baseline when every parameter has a default. With a known
    /// budget, the last asks are confirmation rounds: the baseline and the best candidates
    /// measured again side by side; a round is handed out whole (up to `n`) and the next one
    /// is planned once it is told, so while part of a round is out, `ask` returns nothing
    /// more until it is told.
    pub fn ask(&mut self, n: usize) -> Result<Vec<Suggestion>> {
        if n == 0 {
            return Err(Error::Config("ask: n must be at least 1".into()));
        }
        let left = self.budget.map(|b| b.saturating_sub(self.asked));
        if left == Some(0) || self.phase == Phase::Done {
            return Ok(Vec::new());
        }
        let n = left.map_or(n, |l| n.min(l as usize));
        if self.asked == 0
            && let Some(base) = self.space.baseline()
        {
            let x = self.space.encode(&base).map_err(Error::Config)?;
            return Ok(vec![self.hand_out(x, Some(base), None, true, false)]);
        }
        if self.phase == Phase::Search && self.search_budget.is_some_and(|s| self.asked >= s) {
            if !self.pending.is_empty() {
                return Ok(Vec::new());
            }
            self.phase = Phase::Confirm;
        }
        if self.phase == Phase::Confirm {
            return self.ask_confirm(n);
        }
        let n = self.search_budget.map_or(n, |s| n.min((s - self.asked) as usize));
        let cands = super::asking::ask_valid(self.optimizer.as_mut(), &self.space, n)?;
        // ask_valid clamps to the unit cube.
        Ok(cands.into_iter().map(|c| self.hand_out(c.x, None, Some(c.ticket), false, false)).collect())
    }

    /// The next part of a confirmation round (planned when the previous one is told).
    fn ask_confirm(&mut self, n: usize) -> Result<Vec<Suggestion>> {
        if self.queue.is_empty() {
            if !self.pending.is_empty() {
                return Ok(Vec::new());
            }
            let left = self.budget.unwrap_or(0).saturating_sub(self.asked);
            match next_round(&self.plan(), &self.told, left) {
                Next::Round(round) => {
                    self.rounds += 1;
                    self.queue = round;
                    self.queue.reverse();
                }
                Next::Done(stop) => {
                    self.confirm_stop = Some(stop);
                    if stop.returns_budget() {
                        // Settled early (or identical repeats): the rest goes back to the search.
                        self.search_budget = self.budget;
                        self.phase = Phase::Search;
                        return self.ask(n);
                    }
                    self.phase = Phase::Done;
                    return Ok(Vec::new());
                }
            }
        }
        let mut out = Vec::new();
        while out.len() < n
            && let Some((config, baseline)) = self.queue.pop()
        {
            let x = self.space.encode(&config).map_err(Error::Config)?;
            out.push(self.hand_out(x, Some(config), None, baseline, true));
        }
        Ok(out)
    }

    /// Hand out the point `x`: as `config` when given (the baseline and confirmation
    /// candidates are measured exactly as written, not as their cube position decodes),
    /// else as `x` decodes.
    fn hand_out(
        &mut self,
        x: Vec<f64>,
        config: Option<Config>,
        ticket: Option<u64>,
        baseline: bool,
        confirm: bool,
    ) -> Suggestion {
        let id = self.asked;
        self.asked += 1;
        let params = config.unwrap_or_else(|| self.space.decode(&x));
        let round = if confirm { self.rounds } else { 0 };
        self.pending.insert(id, Asked { x, config: params.clone(), ticket, baseline, confirm, round });
        Suggestion { id, params }
    }

    /// Ids asked and not yet told.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Tell one result: the value measured, or `None` when the evaluation
    /// failed (a non-finite value counts as failed).
    pub fn tell(&mut self, id: u64, value: Option<f64>) -> Result<()> {
        self.tell_many(&[(id, value)])
    }

    /// Tell several results at once (the optimizer sees them together).
    /// Refused as a whole, telling nothing, when an id is not pending, or in a Pareto session
    /// (which [`Session::tell_vectors`] tells).
    pub fn tell_many(&mut self, results: &[(u64, Option<f64>)]) -> Result<()> {
        if self.objectives.pareto {
            return Err(Error::Config(format!(
                "tell: this session has {} objectives; tell one value per objective",
                self.objectives.objectives.len()
            )));
        }
        let metric = self.objectives.objectives[0].metric.clone();
        let told: Vec<(u64, Option<BTreeMap<String, f64>>)> = results
            .iter()
            .map(|&(id, v)| (id, v.filter(|v| v.is_finite()).map(|v| [(metric.clone(), v)].into())))
            .collect();
        self.record(&told)
    }

    /// Tell results as one value per objective, in the order of [`SessionOptions::objectives`]
    /// (a vector of one without them; `None`, or a non-finite value: the evaluation failed).
    /// Refused as a whole, telling nothing, when an id is not pending or a vector has another
    /// length.
    pub fn tell_vectors(&mut self, results: &[(u64, Option<Vec<f64>>)]) -> Result<()> {
        let names: Vec<String> = self.objectives.objectives.iter().map(|o| o.metric.clone()).collect();
        let mut told = Vec::with_capacity(results.len());
        for (id, values) in results {
            let metrics = match values {
                Some(v) if v.len() != names.len() => {
                    return Err(Error::Config(format!(
                        "tell: id {id} has {} values; this session has {} objectives ({})",
                        v.len(),
                        names.len(),
                        names.join(", ")
                    )));
                }
                Some(v) if v.iter().all(|x| x.is_finite()) => {
                    Some(names.iter().cloned().zip(v.iter().copied()).collect())
                }
                _ => None,
            };
            told.push((*id, metrics));
        }
        self.record(&told)
    }

    /// Record told metrics (`None`: failed) as trials and tell the optimizer.
    fn record(&mut self, results: &[(u64, Option<BTreeMap<String, f64>>)]) -> Result<()> {
        for (i, (id, _)) in results.iter().enumerate() {
            if !self.pending.contains_key(id) || results[..i].iter().any(|(j, _)| j == id) {
                return Err(Error::Config(format!("tell: id {id} is not pending (never asked, or told already)")));
            }
        }
        let mut obs = Vec::with_capacity(results.len());
        for (id, metrics) in results {
            let Some(Asked { x, config, ticket, baseline, confirm, round }) = self.pending.remove(id) else {
                continue;
            };
            let (state, metrics) = match metrics {
                Some(m) => (TrialState::Complete, m.clone()),
                None => (TrialState::Failed { reason: "told as failed".into() }, Default::default()),
            };
            let trial = Trial {
                number: *id,
                batch: round,
                ticket,
                x,
                config,
                state,
                metrics,
                elapsed_s: None,
                epoch: 0,
                baseline,
                confirm,
            };
            let o = observed(&self.objectives, &trial, ticket, None);
            if let Some(v) = o.value.filter(|_| !self.objectives.pareto)
                && self.best.as_ref().is_none_or(|(b, _)| v < *b)
            {
                self.best = Some((v, trial.config.clone()));
            }
            obs.push(o);
            self.told.push(trial);
        }
        self.optimizer.tell(&obs)
    }

    /// How many objectives results carry (1, or two and more in a Pareto session).
    pub fn objectives(&self) -> usize {
        self.objectives.objectives.len()
    }

    /// Every configuration told so far that no other told one beats in every objective, with
    /// its values (in the caller's signs, the objectives' order), in the order told. A
    /// configuration told several times counts with its first measurement here (see
    /// [`Session::recommend`] for the means).
    pub fn front(&self) -> Vec<(Vec<f64>, &Config)> {
        let told: Vec<(&Trial, Vec<f64>)> = self
            .told
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .filter_map(|t| Some((t, self.objectives.signed_values(&t.metrics).ok()?)))
            .collect();
        let members: Vec<crate::pareto::Member> =
            told.iter().map(|(_, v)| crate::pareto::Member::feasible(v)).collect();
        let mut seen: Vec<&Config> = Vec::new();
        let mut out = Vec::new();
        for i in crate::pareto::non_dominated(&members) {
            let (t, v) = &told[i];
            if seen.contains(&&t.config) {
                continue;
            }
            seen.push(&t.config);
            let values = v.iter().zip(&self.objectives.objectives).map(|(x, o)| o.signed(*x)).collect();
            out.push((values, &t.config));
        }
        out
    }

    /// The best value told so far (in the caller's sign) and its configuration; `None` in a
    /// Pareto session (see [`Session::recommend`] for its front).
    pub fn best(&self) -> Option<(f64, &Config)> {
        self.best.as_ref().map(|(v, c)| (if self.maximize { -v } else { *v }, c))
    }

    /// What knobs recommends from the results told so far (metric `value`): ranked by an
    /// estimate that accounts for noise rather than by the best single value, with intervals
    /// (see [`crate::recommend::Recommender`]). Fits two GPs: call it at the end, not per tell.
    pub fn recommend(&self, top: usize) -> Recommendations {
        let mut r = Recommender::new(&self.space, &self.objectives).deterministic(self.deterministic);
        for t in &self.told {
            r.add(t);
        }
        r.finish("session", top)
    }
}
