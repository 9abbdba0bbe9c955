//! A study's spec as storage keeps it, in one place: what is written when a
//! study is created, how it is read back (by `knobs worker --study`,
//! `knobs recommend NAME`, the server), and the check that a spec opening an
//! existing study did not change what shapes the search.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Problem, Problems, Result};
use crate::eval::EvaluatorSpec;
use crate::objective::Objectives;
use crate::optim::OptimizerSpec;
use crate::space::Space;
use crate::spec::{Budget, Checked, Spec};
use crate::storage::{SpecDocument, StudyRecord};

/// A spec as a study stores it: its identity beside the whole spec.
pub(crate) fn stored_spec(spec: &Spec) -> SpecDocument {
    SpecDocument::new(serde_json::json!({ "identity": spec.identity(), "spec": spec }))
}

/// A spec as [`stored_spec`] writes it (the serialized [`Spec`]).
#[derive(Deserialize)]
struct StoredSpec {
    name: String,
    description: Option<String>,
    seed: u64,
    space: Space,
    objectives: Objectives,
    optimizer: OptimizerSpec,
    evaluator: EvaluatorSpec,
    budget: Budget,
    parallelism: usize,
    storage: Option<String>,
    output: Option<String>,
    top_k: usize,
    #[serde(default)]
    allow_risky: bool,
    /// Absent from studies stored before confirmation existed.
    #[serde(default)]
    confirm: crate::spec::Confirm,
}

/// The spec a study was created with, checked again as a spec file is
/// (space, evaluator against the space, metrics, optimizer options);
/// relative paths in it resolve against `base_dir`.
pub fn read_spec(record: &StudyRecord, base_dir: PathBuf) -> Result<Spec> {
    let name = &record.name;
    let stored = record.spec.get("spec").cloned().ok_or_else(|| {
        Error::Storage(format!("study `{name}`: its stored spec has no `spec` field; it was not created by knobs"))
    })?;
    let s: StoredSpec = serde_json::from_value(stored)
        .map_err(|e| Error::Storage(format!("study `{name}`: its stored spec cannot be read by this knobs: {e}")))?;
    let source = format!("the stored spec of study `{name}`");
    s.space.recheck(&source)?;
    let mut problems = Vec::new();
    s.evaluator.check(&s.space, &mut problems);
    crate::spec::check_metrics(&s.evaluator, &s.objectives, &mut problems);
    if s.parallelism == 0 || s.top_k == 0 || s.budget.trials == 0 {
        problems.push(Problem::new("(file)", "parallelism, recommend.top and budget.trials must be at least 1"));
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(Problems { source, items: problems }));
    }
    Spec {
        name: s.name,
        description: s.description,
        seed: s.seed,
        space: s.space,
        objectives: s.objectives,
        optimizer: s.optimizer,
        evaluator: s.evaluator,
        budget: s.budget,
        parallelism: s.parallelism,
        storage: s.storage,
        output: s.output,
        top_k: s.top_k,
        allow_risky: s.allow_risky,
        confirm: s.confirm,
        base_dir,
        checked: Checked,
    }
    .checked(&source)
}

/// Refuse a spec whose space, objectives, optimizer or seed differ from those
/// the stored study was created with, saying what changed.
pub(crate) fn check_identity(spec: &Spec, existing: &StudyRecord) -> Result<()> {
    let old = existing.spec.get("identity").cloned().unwrap_or_default();
    if old == spec.identity() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "study `{}` was created with a different {}; a study's space, objectives, optimizer and seed \
         cannot change. Give the spec a new `name` to start a new study",
        spec.name,
        identity_diff(&old, &spec.identity())
    )))
}

fn identity_diff(old: &serde_json::Value, new: &serde_json::Value) -> String {
    let keys = ["space", "objectives", "optimizer", "seed"];
    let changed: Vec<&str> = keys.iter().copied().filter(|k| old.get(*k) != new.get(*k)).collect();
    if changed.is_empty() { "spec".to_string() } else { changed.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(spec: serde_json::Value) -> StudyRecord {
        StudyRecord { name: "s".into(), spec: SpecDocument::new(spec), created_at: String::new(), closed: false }
    }

    #[test]
    fn a_stored_spec_reads_back_equal_and_is_checked_again() {
        let text = "name: s\nspace:\n  - {name: x, type: float, low: 0, high: 1, default: 0.5}\n  \
                    - {name: n, type: int, low: 1, high: 64, log: true, default: 8}\n\
                    evaluator: {type: function, name: branin}\noptimizer: {name: cmaes, population: 8}\n\
                    budget: {trials: 30, time: 90s}";
        let spec = Spec::parse(text, "t", "s", PathBuf::from("/base")).unwrap();
        let stored = serde_json::to_value(stored_spec(&spec)).unwrap();
        let back = read_spec(&record(stored.clone()), PathBuf::from("/base")).unwrap();
        assert_eq!(back, spec);
        // Damage that a checked spec never has is refused, with where it is.
        let mut bad = stored.clone();
        bad["spec"]["space"]["params"][0]["domain"]["low"] = serde_json::json!(2.0);
        let err = read_spec(&record(bad), PathBuf::new()).unwrap_err().to_string();
        assert!(err.contains("stored spec of study `s`") && err.contains("space.x.low"), "{err}");
        let mut bad = stored;
        bad["spec"]["optimizer"]["options"]["population"] = serde_json::json!(-3);
        assert!(read_spec(&record(bad), PathBuf::new()).is_err());
    }
}
