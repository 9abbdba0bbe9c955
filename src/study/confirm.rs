//! The confirmation phase: before a study reports its final ranking, its
//! best distinct candidates (rounded to the precision that matters, so that
//! what is printed is what was measured) and the baseline are measured
//! again, one round per batch — baseline, A, B, … side by side, so that
//! drift in the system hits them alike — until the ranking of the top is
//! settled or the phase's budget is spent. A phase that ends early gives the
//! trials it did not use back to the search ([`ConfirmStop::returns_budget`]):
//! the budget is spent looking for better, and what the search finds after
//! the phase goes ahead of the confirmed leader only when it beats it beyond
//! what the noise could do ([`crate::recommend`]).
//!
//! The plan is a pure function of the stored trials ([`next_round`]): a run
//! killed mid-phase resumes where it was, and a later run (a cron job adding
//! trials) starts a new phase with the candidates it finds best then.
//! Confirmation trials are ordinary trials marked `confirm`; the
//! recommendations compare each candidate with the baseline measured in the
//! same rounds ([`crate::recommend`]).

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use serde::Serialize;

use super::progress::Progress;
use super::run::{StopReason, Study};
use crate::error::{Error, Result};
use crate::objective::Objectives;
use crate::recommend::Recommender;
use crate::recommend::evidence::paired_difference;
use crate::space::{Config, Space};
use crate::spec::{Confirm, ConfirmWhen, Spec};
use crate::storage::NewTrial;
use crate::trial::{Trial, TrialState};

/// A candidate is dropped from further rounds, and the top called settled, at this
/// probability of being worse than the leader (or of the leader beating the baseline, or not).
const SETTLED: f64 = 0.95;
/// Rounds measured before the ranking can be called settled.
const MIN_ROUNDS: usize = 3;

/// Why a confirmation phase ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmStop {
    /// The leader beats the other candidates, and beats or loses to the baseline, with 95%
    /// probability.
    Settled,
    /// Every candidate was measured `repeats` times.
    Repeats,
    /// Repeated measurements came out identical: the evaluator is deterministic.
    Deterministic,
    /// The phase's share of the budget is spent.
    Budget,
    /// There was nothing to confirm (no feasible candidate).
    NothingToConfirm,
    /// The run's time budget ran out.
    Time,
    /// Interrupted (Ctrl-C / SIGTERM).
    Interrupted,
    /// Too many trials failed in a row.
    Failing,
}

impl ConfirmStop {
    /// One line for people.
    pub fn describe(&self) -> &'static str {
        match self {
            ConfirmStop::Settled => "the ranking of the top is settled",
            ConfirmStop::Repeats => "every candidate was measured the most times allowed",
            ConfirmStop::Deterministic => "repeated measurements were identical (deterministic evaluator)",
            ConfirmStop::Budget => "its budget was spent",
            ConfirmStop::NothingToConfirm => "no feasible candidate to confirm",
            ConfirmStop::Time => "the time budget ran out",
            ConfirmStop::Interrupted => "interrupted",
            ConfirmStop::Failing => "too many trials failed in a row",
        }
    }

    /// Whether the trials the phase did not use go back to the search: the top is settled,
    /// every candidate was measured as often as allowed, or the repeats were identical. (A
    /// budget, time or failure stop leaves nothing to give; a closing challenger, if the
    /// search finds one, is ranked against the confirmed leader by the recommendations.)
    pub fn returns_budget(&self) -> bool {
        matches!(self, ConfirmStop::Settled | ConfirmStop::Repeats | ConfirmStop::Deterministic)
    }
}

/// What the confirmation phase of a run did.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmReport {
    /// Rounds run by this run.
    pub rounds: u64,
    /// Trials those rounds took.
    pub trials: u64,
    /// Why the phase ended.
    pub stop: ConfirmStop,
}

/// The next round: configurations to measure side by side, each with whether it is the
/// baseline; or why the phase is over.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Measure these (the baseline first), one batch.
    Round(Vec<(Config, bool)>),
    /// The phase is over.
    Done(ConfirmStop),
}

/// What a confirmation phase is planned from: the space (its defaults are the baseline), the
/// objectives, the phase's settings and how recommendations are ranked. A [`Study`] plans from
/// its spec; a [`super::Session`] from its options.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    /// The space searched; its defaults, when every parameter has one, are the baseline.
    pub space: &'a Space,
    /// How trials are scored.
    pub objectives: &'a Objectives,
    /// `top`, `repeats`, `budget_share`, `when`.
    pub settings: &'a Confirm,
    /// Risky choices may be recommended (and so confirmed).
    pub allow_risky: bool,
    /// The evaluator is known to be deterministic.
    pub deterministic: bool,
}

impl<'a> Plan<'a> {
    /// The plan of a study run from `spec`.
    pub fn of(spec: &'a Spec) -> Plan<'a> {
        Plan {
            space: &spec.space,
            objectives: &spec.objectives,
            settings: &spec.confirm,
            allow_risky: spec.allow_risky,
            deterministic: spec.evaluator.deterministic(),
        }
    }

    /// The trials a run of `new` trials keeps for confirmation: none when confirmation is
    /// off (`when: never`, or `auto` with a deterministic evaluator); else `budget_share` of
    /// them rounded up to whole rounds (the baseline, when there is one, and `top`
    /// candidates), at least three rounds and at most `repeats`, at most half; none when
    /// three rounds do not fit in half.
    pub fn reserve(&self, new: u64) -> u64 {
        let c = self.settings;
        let on = match c.when {
            ConfirmWhen::Never => false,
            ConfirmWhen::Always => true,
            ConfirmWhen::Auto => !self.deterministic,
        };
        // A Pareto study's front is not re-measured yet: its confirmation compares every
        // objective, which the rounds below do not.
        if !on || self.objectives.pareto {
            return 0;
        }
        let round = c.top as u64 + u64::from(self.space.baseline().is_some());
        // No more rounds than a candidate may be measured (`repeats`): the rest would go unused.
        let rounds = ((new as f64 * c.budget_share / round as f64).ceil() as u64).max(3).min(c.repeats as u64);
        let least = (MIN_ROUNDS as u64).min(c.repeats as u64) * round;
        if least > new / 2 {
            // Too few trials for the rounds that could settle anything: search with them all.
            return 0;
        }
        (rounds * round).min(new / 2)
    }
}

fn key(c: &Config) -> String {
    serde_json::to_string(c).unwrap_or_default()
}

/// The trials of the current phase: the confirmation trials after the last search trial.
fn current_phase(trials: &[Trial]) -> &[Trial] {
    let start = trials.iter().rposition(|t| !t.confirm).map_or(0, |i| i + 1);
    &trials[start..]
}

/// Whether every configuration measured more than once got the same score each time (and
/// at least one was).
fn deterministic(objectives: &Objectives, trials: &[Trial]) -> bool {
    let mut scores: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for t in trials.iter().filter(|t| t.state == TrialState::Complete) {
        if let Ok(o) = objectives.score(&t.metrics) {
            scores.entry(key(&t.config)).or_default().push(o.score);
        }
    }
    let repeated: Vec<&Vec<f64>> = scores.values().filter(|v| v.len() > 1).collect();
    !repeated.is_empty() && repeated.iter().all(|v| v.iter().all(|&s| s == v[0]))
}

/// The feasible configuration with the best single score, if any (not the baseline's trials,
/// which the rounds measure anyway).
fn best_measured(plan: &Plan, trials: &[Trial]) -> Option<Config> {
    trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && !t.baseline)
        .filter_map(|t| plan.objectives.score(&t.metrics).ok().filter(|o| o.feasible()).map(|o| (o.score, t)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, t)| t.config.clone())
}

/// Probability that `a` is better (lower) than `b` from their scores in the same rounds;
/// `None` with fewer than two such rounds.
fn paired_better(rounds: &[BTreeMap<String, f64>], a: &str, b: &str) -> Option<f64> {
    let pairs: Vec<(f64, f64)> = rounds.iter().filter_map(|r| Some((*r.get(b)?, *r.get(a)?))).collect();
    paired_difference(&pairs)?.probability_better
}

/// What the confirmation phase measures next, given every trial of the study and how many
/// trials it may still take.
pub fn next_round(plan: &Plan, trials: &[Trial], budget_left: u64) -> Next {
    let settings = plan.settings;
    if plan.objectives.pareto {
        return Next::Done(ConfirmStop::NothingToConfirm);
    }
    let phase = current_phase(trials);
    if !phase.is_empty() && deterministic(plan.objectives, trials) {
        return Next::Done(ConfirmStop::Deterministic);
    }
    let baseline = plan.space.baseline();
    let base_key = baseline.as_ref().map(key);
    // The candidates: those of the phase under way, else the best distinct ones now.
    let mut candidates: Vec<Config> = Vec::new();
    let push = |c: Config, list: &mut Vec<Config>| {
        if Some(key(&c)) != base_key && !list.iter().any(|x| key(x) == key(&c)) {
            list.push(c);
        }
    };
    if phase.is_empty() {
        let mut r = Recommender::new(plan.space, plan.objectives)
            .allow_risky(plan.allow_risky)
            .deterministic(plan.deterministic)
            .without_importance();
        for t in trials {
            r.add(t);
        }
        for rec in r.finish("confirm", settings.top).recommendations {
            push(plan.space.round(&rec.config), &mut candidates);
        }
        // The best single measurement competes too when the ranking left it out: the model
        // may be wrong where it is, and the side-by-side rounds, not the model, decide.
        if let Some(best) = best_measured(plan, trials).map(|c| plan.space.round(&c))
            && !candidates.iter().any(|c| key(c) == key(&best))
            && Some(key(&best)) != base_key
        {
            if candidates.len() >= settings.top && settings.top >= 2 {
                candidates.pop();
            }
            push(best, &mut candidates);
        }
    } else {
        for t in phase.iter().filter(|t| !t.baseline) {
            push(t.config.clone(), &mut candidates);
        }
    }
    if candidates.is_empty() {
        return Next::Done(ConfirmStop::NothingToConfirm);
    }
    // Each round's scores by configuration, and how often each was tried.
    let mut rounds: BTreeMap<u64, BTreeMap<String, f64>> = BTreeMap::new();
    let mut tried: BTreeMap<String, usize> = BTreeMap::new();
    for t in phase {
        *tried.entry(key(&t.config)).or_default() += 1;
        if t.state == TrialState::Complete
            && let Ok(o) = plan.objectives.score(&t.metrics)
        {
            rounds.entry(t.batch).or_default().insert(key(&t.config), o.score);
        }
    }
    let rounds: Vec<BTreeMap<String, f64>> = rounds.into_values().collect();
    let keys: Vec<String> = candidates.iter().map(key).collect();
    let mean = |k: &str| {
        let v: Vec<f64> = rounds.iter().filter_map(|r| r.get(k).copied()).collect();
        if v.is_empty() { f64::INFINITY } else { v.iter().sum::<f64>() / v.len() as f64 }
    };
    let leader = keys.iter().min_by(|a, b| mean(a).total_cmp(&mean(b))).cloned().unwrap_or_default();
    // Candidates clearly worse than the leader need no more rounds.
    let open: Vec<usize> = (0..keys.len())
        .filter(|&i| keys[i] == leader || paired_better(&rounds, &leader, &keys[i]).is_none_or(|p| p < SETTLED))
        .collect();
    let vs_base = base_key.as_ref().and_then(|b| paired_better(&rounds, &leader, b));
    let base_settled = base_key.is_none() || vs_base.is_some_and(|p| !(1.0 - SETTLED..SETTLED).contains(&p));
    if rounds.len() >= MIN_ROUNDS && open.len() == 1 && base_settled {
        return Next::Done(ConfirmStop::Settled);
    }
    let due: Vec<&Config> = open
        .iter()
        .filter(|&&i| tried.get(&keys[i]).copied().unwrap_or(0) < settings.repeats)
        .map(|&i| &candidates[i])
        .collect();
    if due.is_empty() {
        return Next::Done(ConfirmStop::Repeats);
    }
    let mut round: Vec<(Config, bool)> = baseline.into_iter().map(|b| (b, true)).collect();
    round.extend(due.into_iter().map(|c| (c.clone(), false)));
    // A round is worth running only with the baseline and one candidate (or one candidate
    // when there is no baseline).
    let least = if base_key.is_some() { 2 } else { 1 };
    if (budget_left as usize) < least {
        return Next::Done(ConfirmStop::Budget);
    }
    round.truncate(budget_left as usize);
    Next::Round(round)
}

impl Study {
    /// The confirmation plan of this study: its spec's, with whether the evaluator it runs
    /// (which a program may have given in place of the spec's) is deterministic.
    pub(super) fn plan(&self) -> Plan<'_> {
        Plan { deterministic: self.evals.evaluator().deterministic(), ..Plan::of(&self.spec) }
    }

    /// Run confirmation rounds until the phase is over or the study has `total` trials (or
    /// `time` has passed since `start`).
    pub(super) fn confirm_rounds(
        &mut self,
        total: u64,
        start: Instant,
        time: Option<Duration>,
        progress: &Progress,
    ) -> Result<ConfirmReport> {
        let mut report = ConfirmReport { rounds: 0, trials: 0, stop: ConfirmStop::Budget };
        loop {
            if let Some(stop) = self.must_stop(total, start, time) {
                report.stop = match stop {
                    StopReason::Interrupted => ConfirmStop::Interrupted,
                    StopReason::Failures { .. } => ConfirmStop::Failing,
                    StopReason::Time => ConfirmStop::Time,
                    _ => ConfirmStop::Budget,
                };
                break;
            }
            let left = total - self.trials.len() as u64;
            let round = match next_round(&self.plan(), &self.trials, left) {
                Next::Done(stop) => {
                    report.stop = stop;
                    break;
                }
                Next::Round(round) => round,
            };
            let new = round
                .into_iter()
                .map(|(config, baseline)| {
                    let x = self.spec.space.encode(&config).map_err(Error::Config)?;
                    Ok(NewTrial { batch: 0, ticket: None, x, config, baseline, confirm: true })
                })
                .collect::<Result<Vec<NewTrial>>>()?;
            report.rounds += 1;
            report.trials += new.len() as u64;
            tracing::info!(study = %self.spec.name, round = report.rounds, trials = new.len(), "confirming the best candidates beside the baseline");
            let started = self.start_foreign(new)?;
            self.evaluate_batch(started, progress)?;
        }
        tracing::info!(study = %self.spec.name, rounds = report.rounds, trials = report.trials, "confirmation over: {}", report.stop.describe());
        Ok(report)
    }

    /// Confirm the best candidates of the study as it is now, in at most `trials` more trials
    /// (what `knobs confirm` does): the same rounds a run ends with, whatever `confirm.when`
    /// says.
    pub fn confirm(&mut self, trials: u64, progress: bool) -> Result<ConfirmReport> {
        let start = Instant::now();
        let before = self.trials.len() as u64;
        let total = before + trials;
        let progress = Progress::new(progress, total, before, &self.spec);
        if let Some(batch) = self.pending_batch.take() {
            // What a killed run started is finished first.
            let trials: Vec<Trial> = self.trials.iter().filter(|t| t.batch == batch).cloned().collect();
            self.evaluate_batch(trials, &progress)?;
        }
        let report = self.confirm_rounds(total, start, None, &progress)?;
        progress.finish(self.tally.finished, None, report.stop.describe());
        Ok(report)
    }
}

/// What the next claim of a shared study (workers, `knobs serve`) takes once its search has
/// used the trials it may ([`Plan::reserve`] keeps the rest for confirmation).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum SharedStep {
    /// Search on, up to this many trials in the study (a phase that ended early gives the
    /// rest of the budget back).
    Search(u64),
    /// Hand these out as confirmation trials of `batch` (`None`: a new round, the next
    /// batch). A round may be handed out over several claims: its composition is a function
    /// of the finished rounds before it, so every claim agrees on it.
    Round { batch: Option<u64>, items: Vec<(Config, bool)> },
    /// Trials are running whose results the next round needs.
    Wait,
    /// The phase is over.
    Done(ConfirmStop),
}

/// The step of a shared study with `trials` (every trial, by number) and a budget of
/// `budget` trials, for a claim of at most `want`.
pub(super) fn shared_step(plan: &Plan, trials: &[Trial], budget: u64, want: usize) -> SharedStep {
    let total = trials.len() as u64;
    if trials.iter().any(|t| t.confirm) && deterministic(plan.objectives, trials) {
        return SharedStep::Search(budget);
    }
    // A phase of this budget that ended early gave the rest back: search trials after it
    // mean the search has it (the phase's end was decided, below, when they began).
    let share = budget.saturating_sub(plan.reserve(budget)) as usize;
    if let Some(end) = trials.iter().rposition(|t| t.confirm)
        && end >= share
        && end + 1 < trials.len()
    {
        return SharedStep::Search(budget);
    }
    let running = |ts: &[Trial]| ts.iter().any(|t| t.state == TrialState::Running);
    let phase_start = trials.iter().rposition(|t| !t.confirm).map_or(0, |i| i + 1);
    if running(&trials[..phase_start]) {
        return SharedStep::Wait;
    }
    // The rest of the round under way, planned as it was when its first trial was handed out.
    if let Some(last) = trials[phase_start..].last() {
        let start = phase_start + trials[phase_start..].iter().position(|t| t.batch == last.batch).unwrap_or(0);
        let handed = trials.len() - start;
        if let Next::Round(round) = next_round(plan, &trials[..start], budget.saturating_sub(start as u64))
            && handed < round.len()
        {
            let items = round.into_iter().skip(handed).take(want).collect();
            return SharedStep::Round { batch: Some(last.batch), items };
        }
        if running(&trials[phase_start..]) {
            return SharedStep::Wait;
        }
    }
    match next_round(plan, trials, budget.saturating_sub(total)) {
        Next::Round(round) => SharedStep::Round { batch: None, items: round.into_iter().take(want).collect() },
        Next::Done(stop) if stop.returns_budget() => SharedStep::Search(budget),
        Next::Done(stop) => SharedStep::Done(stop),
    }
}
