//! Trial records shared by the study and every storage backend.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::space::Config;

/// Where a trial is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrialState {
    /// Asked and being evaluated (or left so by a run that was killed).
    Running,
    /// Evaluated; its metrics are in [`Trial::metrics`].
    Complete,
    /// The evaluation failed.
    Failed {
        /// Why, as the evaluator or the client said it.
        reason: String,
    },
    /// Stopped early without a result; storages and the API accept it, though no part of knobs
    /// prunes a trial yet.
    Pruned,
}

impl TrialState {
    /// The state's lower-case name, as stored and printed (`running`, `complete`, `failed`, `pruned`).
    pub fn label(&self) -> &'static str {
        match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Failed { .. } => "failed",
            TrialState::Pruned => "pruned",
        }
    }
    /// True for every state but [`TrialState::Running`].
    pub fn is_finished(&self) -> bool {
        !matches!(self, TrialState::Running)
    }
}

/// A trial as stored: what was asked, and (once finished) what was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Per-study number, unique, from 0.
    pub number: u64,
    /// The ask batch the trial belongs to (the baseline is batch 0).
    pub batch: u64,
    /// The optimizer's ticket for this point (`None` for the baseline and foreign points).
    pub ticket: Option<u64>,
    /// The point in the unit cube the optimizer proposed.
    pub x: Vec<f64>,
    /// The decoded configuration.
    pub config: Config,
    /// Where the trial is in its life.
    pub state: TrialState,
    /// Metrics reported by the evaluator (empty unless complete).
    pub metrics: BTreeMap<String, f64>,
    /// Seconds the evaluation took.
    pub elapsed_s: Option<f64>,
    /// Lease epoch: bumped whenever another worker reclaims the trial.
    pub epoch: u64,
    /// True for the baseline (the spec's defaults).
    pub baseline: bool,
    /// True for a re-measurement of the confirmation phase: the best candidates and the
    /// baseline measured again side by side, one batch per round.
    #[serde(default)]
    pub confirm: bool,
}
