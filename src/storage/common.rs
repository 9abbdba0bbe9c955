//! Rules, messages and encodings every backend shares, so that they refuse the
//! same inputs with the same words and store floats the same way.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::space::Value;
use crate::trial::TrialState;

use super::{Finished, NewTrial, Owner};

/// The study-name rule of [`crate::spec::check_study_name`], for a study being created or opened.
pub(crate) fn check_study_name(name: &str) -> Result<()> {
    crate::spec::check_study_name(name).map_err(|why| Error::Config(format!("study name {name:?}: {why}")))
}

/// Check trials before anything is written, so a refusal leaves no trace.
pub(crate) fn check_new_trials(study: &str, trials: &[NewTrial]) -> Result<()> {
    for (i, t) in trials.iter().enumerate() {
        if i64::try_from(t.batch).is_err() {
            return Err(Error::Config(format!("study `{study}`: new trial {i}: batch {} is too large", t.batch)));
        }
        if let Some(ticket) = t.ticket.filter(|&k| i64::try_from(k).is_err()) {
            return Err(Error::Config(format!("study `{study}`: new trial {i}: ticket {ticket} is too large")));
        }
        check_config_values(study, format_args!("new trial {i}"), &t.config)?;
    }
    Ok(())
}

/// Only finite numbers can be stored in a configuration.
fn check_config_values(study: &str, what: impl Display, config: &crate::space::Config) -> Result<()> {
    match config.iter().find(|(_, v)| matches!(v, Value::Float(f) if !f.is_finite())) {
        Some((name, v)) => Err(Error::Config(format!(
            "study `{study}`: {what}: config `{name}` is {v}; only finite values can be stored"
        ))),
        None => Ok(()),
    }
}

/// Check a finished trial; returns the elapsed time as it will be stored
/// (`-0.0` becomes `0.0`, as SQLite would store it).
pub(crate) fn check_finished(study: &str, f: &Finished) -> Result<Option<f64>> {
    if !f.state.is_finished() {
        return Err(Error::Config(format!(
            "study `{study}` trial {}: a trial can only be finished as complete, failed or pruned (got running)",
            f.number
        )));
    }
    match f.elapsed_s {
        None => Ok(None),
        Some(e) if e.is_finite() && e >= 0.0 => Ok(Some(e + 0.0)),
        Some(e) => Err(Error::Config(format!(
            "study `{study}` trial {}: elapsed_s must be finite and >= 0 (got {e})",
            f.number
        ))),
    }
}

/// Check a claim request and its idempotency key; returns the grace period in seconds.
pub(crate) fn check_claim(req: &super::ClaimRequest, key: Option<&str>) -> Result<f64> {
    super::check_claim_key(key)?;
    if req.worker.is_empty() {
        return Err(Error::Config("claim: worker must not be empty".into()));
    }
    if !(req.grace_s.is_finite() && req.grace_s >= 0.0) {
        return Err(Error::Config(format!("claim: grace_s must be finite and >= 0 (got {})", req.grace_s)));
    }
    Ok(req.grace_s)
}

/// Why a trial whose worker stopped heartbeating was failed instead of retried.
pub(crate) fn stale_reason(grace_s: f64, retries: impl Display) -> String {
    format!("stale: its worker stopped heartbeating for more than {grace_s} s, after {retries} retries")
}

/// Check a configuration about to be enqueued (the same rules as a new trial's).
pub(crate) fn check_enqueued(study: &str, config: &crate::space::Config) -> Result<()> {
    check_config_values(study, "enqueued configuration", config)
}

pub(crate) fn closed(study: &str) -> Error {
    Error::Locked(format!("study `{study}` is closed; it takes no new configurations"))
}

/// A plan named a queued configuration the claim did not read.
pub(crate) fn not_queued(study: &str, id: u64) -> Error {
    Error::Storage(format!("study `{study}`: queued configuration {id} was not among those this claim read"))
}

/// Check that every id a plan dequeues was handed to it.
pub(crate) fn check_dequeued(study: &str, queued: &[super::Queued], dequeued: &[u64]) -> Result<()> {
    match dequeued.iter().find(|id| !queued.iter().any(|q| q.id == **id)) {
        Some(&id) => Err(not_queued(study, id)),
        None => Ok(()),
    }
}

pub(crate) fn no_study(name: &str) -> Error {
    Error::NotFound(format!("study `{name}` does not exist"))
}

pub(crate) fn no_trial(study: &str, number: u64) -> Error {
    Error::NotFound(format!("study `{study}` has no trial {number}"))
}

pub(crate) fn already_finished(study: &str, number: u64, state: &TrialState) -> Error {
    Error::Refused(format!(
        "study `{study}` trial {number} is already {}; a finished trial is never edited",
        state.label()
    ))
}

pub(crate) fn stale_epoch(study: &str, number: u64, given: u64, current: u64, worker: &str) -> Error {
    if given > current {
        return Error::Refused(format!(
            "study `{study}` trial {number}: lease epoch {given} was never given out (the trial is at epoch \
             {current}, held by worker `{worker}`); tell with the epoch the ask returned"
        ));
    }
    Error::Refused(format!(
        "study `{study}` trial {number}: lease epoch {given} is stale (the trial was reclaimed and is now \
         epoch {current}, held by worker `{worker}`); this result is refused so it is not counted twice"
    ))
}

/// `knobs run` refused on a study that workers or the API share.
pub(crate) fn shared_study(study: &str) -> Error {
    Error::Config(format!(
        "study `{study}` is shared: `knobs worker`s or `knobs serve` claim trials from it, and `knobs run` would \
         take over their running trials; add trials with `knobs worker --study {study}`, or start a new study \
         with `--warm-start {study}`"
    ))
}

/// A claim refused while a live `knobs run` holds the study.
pub(crate) fn run_holds(study: &str, holder: &Owner, since: &str) -> Error {
    Error::Locked(format!(
        "`knobs run` (pid {} on host {}) holds study `{study}` since {since}; a study is run by one `knobs run` \
         or shared by workers and the API, not both; wait for the run to finish",
        holder.pid, holder.host
    ))
}

pub(crate) fn locked(study: &str, holder: &Owner, since: &str) -> Error {
    Error::Locked(format!(
        "another knobs run (pid {} on host {}) holds study `{study}` since {since}; wait for it to finish or stop it",
        holder.pid, holder.host
    ))
}

/// A float as JSON: a number when finite, else `"NaN"`, `"inf"` or `"-inf"`
/// (JSON has no non-finite numbers).
fn float_json(v: f64) -> Json {
    match serde_json::Number::from_f64(v) {
        Some(n) => Json::Number(n),
        None if v.is_nan() => Json::String("NaN".into()),
        None if v > 0.0 => Json::String("inf".into()),
        None => Json::String("-inf".into()),
    }
}

fn json_float(v: &Json) -> std::result::Result<f64, String> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| format!("number {n} is not a float")),
        Json::String(s) if s == "NaN" => Ok(f64::NAN),
        Json::String(s) if s == "inf" => Ok(f64::INFINITY),
        Json::String(s) if s == "-inf" => Ok(f64::NEG_INFINITY),
        other => Err(format!("expected a number, got {other}")),
    }
}

pub(crate) fn encode_floats(xs: &[f64]) -> String {
    Json::Array(xs.iter().map(|&v| float_json(v)).collect()).to_string()
}

pub(crate) fn decode_floats(text: &str) -> std::result::Result<Vec<f64>, String> {
    match serde_json::from_str::<Json>(text).map_err(|e| e.to_string())? {
        Json::Array(items) => items.iter().map(json_float).collect(),
        _ => Err("expected a JSON array".into()),
    }
}

pub(crate) fn encode_metrics(m: &BTreeMap<String, f64>) -> String {
    Json::Object(m.iter().map(|(k, &v)| (k.clone(), float_json(v))).collect()).to_string()
}

pub(crate) fn decode_metrics(text: &str) -> std::result::Result<BTreeMap<String, f64>, String> {
    match serde_json::from_str::<Json>(text).map_err(|e| e.to_string())? {
        Json::Object(items) => items
            .iter()
            .map(|(k, v)| json_float(v).map(|f| (k.clone(), f)).map_err(|e| format!("`{k}`: {e}")))
            .collect(),
        _ => Err("expected a JSON object".into()),
    }
}

/// Stored state label and failure reason back into a [`TrialState`].
pub(crate) fn decode_state(label: &str, reason: Option<String>) -> std::result::Result<TrialState, String> {
    match (label, reason) {
        ("running", _) => Ok(TrialState::Running),
        ("complete", _) => Ok(TrialState::Complete),
        ("pruned", _) => Ok(TrialState::Pruned),
        ("failed", Some(reason)) => Ok(TrialState::Failed { reason }),
        ("failed", None) => Err("failed without a reason".into()),
        (other, _) => Err(format!("unknown state `{other}`")),
    }
}

pub(crate) fn fail_reason(state: &TrialState) -> Option<&str> {
    match state {
        TrialState::Failed { reason } => Some(reason),
        _ => None,
    }
}

/// A stored integer that must not be negative.
pub(crate) fn unsigned(v: i64, where_: &str, name: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| damaged(where_, format_args!("column `{name}`"), format_args!("negative: {v}")))
}

/// A column's decoded value, or a damaged-data error naming it.
pub(crate) fn decoded<T>(r: std::result::Result<T, impl Display>, where_: &str, name: &str) -> Result<T> {
    r.map_err(|e| damaged(where_, format_args!("column `{name}`"), e))
}

/// A `trials` row as the SQL backends store it (JSON text for `x`, `config`
/// and `metrics`), read by each backend from its own row type and decoded here.
pub(crate) struct TrialColumns {
    pub number: i64,
    pub batch: i64,
    pub ticket: Option<i64>,
    pub x: String,
    pub config: String,
    pub state: String,
    pub fail_reason: Option<String>,
    pub metrics: String,
    pub elapsed_s: Option<f64>,
    pub epoch: i64,
    pub baseline: bool,
    pub confirm: bool,
}

impl TrialColumns {
    /// The trial, with damaged columns named at `at` (the place and trial number).
    pub(crate) fn decode(self, at: &str) -> Result<crate::trial::Trial> {
        Ok(crate::trial::Trial {
            number: unsigned(self.number, at, "number")?,
            batch: unsigned(self.batch, at, "batch")?,
            ticket: self.ticket.map(|t| unsigned(t, at, "ticket")).transpose()?,
            x: decoded(decode_floats(&self.x), at, "x")?,
            config: decoded(serde_json::from_str::<crate::space::Config>(&self.config), at, "config")?,
            state: decoded(decode_state(&self.state, self.fail_reason), at, "state")?,
            metrics: decoded(decode_metrics(&self.metrics), at, "metrics")?,
            elapsed_s: self.elapsed_s,
            epoch: unsigned(self.epoch, at, "epoch")?,
            baseline: self.baseline,
            confirm: self.confirm,
        })
    }
}

/// A message for data that this binary cannot read back.
pub(crate) fn damaged(where_: impl Display, what: impl Display, why: impl Display) -> Error {
    Error::Storage(format!("{where_}: {what} is damaged ({why}); the file was edited or corrupted outside knobs"))
}

/// Now, UTC, in the format SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ')` gives.
pub(crate) fn now_utc() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_round_trip_bit_for_bit() {
        let xs = [0.0, -0.0, 5e-324, f64::MIN_POSITIVE, 1.0 / 3.0, f64::MAX, -f64::MAX, 1e300, f64::INFINITY];
        let back = decode_floats(&encode_floats(&xs)).unwrap();
        assert_eq!(xs.map(f64::to_bits).to_vec(), back.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
        assert!(decode_floats(&encode_floats(&[f64::NAN])).unwrap()[0].is_nan());
        assert!(decode_floats("[\"x\"]").is_err());
        assert!(decode_metrics("[1]").is_err());
    }

    #[test]
    fn now_has_sqlite_shape() {
        let s = now_utc();
        assert_eq!(s.len(), 24, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z') && &s[10..11] == "T", "{s}");
    }
}
