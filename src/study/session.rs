//! Ask and tell by parameter name, in memory: the type a Rust program uses
//! to tune something it evaluates itself (and what `knobs stdio` speaks
//! over its protocol). No storage, no evaluator: the caller measures.
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

use std::collections::HashMap;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::objective::{Direction, Objective, Objectives};
use crate::optim::{self, Observed, Optimizer, OptimizerOptions, OptimizerSpec, Problem};
use crate::recommend::{Recommendations, Recommender};
use crate::space::{Config, Space};
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
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { seed: 0, budget: None, parallelism: 1, maximize: false, options: Default::default() }
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

/// One optimizer over one space, asked and told by parameter name.
pub struct Session {
    space: Space,
    optimizer: Box<dyn Optimizer>,
    maximize: bool,
    pending: HashMap<u64, Vec<f64>>,
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
        let optimizer = optim::build(&spec, &problem)?;
        Ok(Session {
            space,
            optimizer,
            maximize: options.maximize,
            pending: HashMap::new(),
            best: None,
            told: Vec::new(),
        })
    }

    /// The space searched.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The optimizer's registry name.
    pub fn optimizer(&self) -> &'static str {
        self.optimizer.name()
    }

    /// Up to `n` configurations to evaluate (at least 1 unless the
    /// optimizer has finished: then none).
    pub fn ask(&mut self, n: usize) -> Result<Vec<Suggestion>> {
        if n == 0 {
            return Err(Error::Config("ask: n must be at least 1".into()));
        }
        let cands = super::asking::ask_valid(self.optimizer.as_mut(), &self.space, n)?;
        let mut out = Vec::with_capacity(cands.len());
        for mut c in cands {
            optim::clamp_unit(&mut c.x);
            out.push(Suggestion { id: c.ticket, params: self.space.decode(&c.x) });
            self.pending.insert(c.ticket, c.x);
        }
        Ok(out)
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
    /// Refused as a whole, telling nothing, when an id is not pending.
    pub fn tell_many(&mut self, results: &[(u64, Option<f64>)]) -> Result<()> {
        for (i, (id, _)) in results.iter().enumerate() {
            if !self.pending.contains_key(id) || results[..i].iter().any(|(j, _)| j == id) {
                return Err(Error::Config(format!("tell: id {id} is not pending (never asked, or told already)")));
            }
        }
        let mut obs = Vec::with_capacity(results.len());
        for &(id, value) in results {
            let x = self.pending.remove(&id).unwrap_or_default();
            let config = self.space.decode(&x);
            let (state, metrics) = match value.filter(|v| v.is_finite()) {
                Some(v) => (TrialState::Complete, [("value".to_string(), v)].into()),
                None => (TrialState::Failed { reason: "told as failed".into() }, Default::default()),
            };
            self.told.push(Trial {
                number: id,
                batch: 0,
                ticket: Some(id),
                x: x.clone(),
                config,
                state,
                metrics,
                elapsed_s: None,
                epoch: 0,
                baseline: false,
                confirm: false,
            });
            match value.filter(|v| v.is_finite()) {
                Some(v) => {
                    let v = if self.maximize { -v } else { v };
                    if self.best.as_ref().is_none_or(|(b, _)| v < *b) {
                        self.best = Some((v, self.space.decode(&x)));
                    }
                    obs.push(Observed::ok(Some(id), x, v));
                }
                None => obs.push(Observed::failed(Some(id), x)),
            }
        }
        self.optimizer.tell(&obs)
    }

    /// The best value told so far (in the caller's sign) and its configuration.
    pub fn best(&self) -> Option<(f64, &Config)> {
        self.best.as_ref().map(|(v, c)| (if self.maximize { -v } else { *v }, c))
    }

    /// What knobs recommends from the results told so far (metric `value`): ranked by an
    /// estimate that accounts for noise rather than by the best single value, with intervals
    /// (see [`crate::recommend::Recommender`]). Fits two GPs: call it at the end, not per tell.
    pub fn recommend(&self, top: usize) -> Recommendations {
        let direction = if self.maximize { Direction::Maximize } else { Direction::Minimize };
        let objectives = Objectives {
            objectives: vec![Objective { metric: "value".into(), direction, weight: 1.0 }],
            constraints: vec![],
        };
        let mut r = Recommender::new(&self.space, &objectives);
        for t in &self.told {
            r.add(t);
        }
        r.finish("session", top)
    }
}
