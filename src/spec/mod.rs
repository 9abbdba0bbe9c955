//! The experiment spec: one YAML file declaring what to tune (space), what
//! to optimize (objectives, constraints), how to search (optimizer, budget,
//! parallelism, seed) and how to measure (evaluator).
//!
//! The raw document is a [`SpecFile`] (`file.rs`); its `check` walks every
//! section (`sections.rs`) and reports every problem of the file at once;
//! only a fully valid file becomes a [`Spec`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::eval::EvaluatorSpec;
use crate::objective::Objectives;
use crate::optim::{self, OptimizerSpec};
use crate::space::Space;
use crate::yaml;

mod file;
mod name;
mod sections;

pub use file::SpecFile;
pub(crate) use file::check_metrics;
pub use name::check_study_name;

const KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "space",
    "objectives",
    "pareto",
    "constraints",
    "optimizer",
    "evaluator",
    "budget",
    "parallelism",
    "storage",
    "output",
    "recommend",
    "confirm",
    "relations",
];
const BUDGET_KEYS: &[&str] = &["trials", "time", "target", "patience", "max_consecutive_failures"];
const CONFIRM_KEYS: &[&str] = &["when", "top", "repeats", "budget_share"];

/// When the confirmation phase runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmWhen {
    /// When the evaluator is not known to be deterministic (a command, a real system).
    #[default]
    Auto,
    /// Always, even for a deterministic evaluator.
    Always,
    /// Never.
    Never,
}

/// The confirmation phase: before a study reports its final ranking, its best distinct
/// candidates and the baseline are measured again side by side, round by round (baseline, A,
/// B, … in one batch, so that drift in the system hits them alike), until the ranking of the
/// top is settled or the phase's budget is spent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Confirm {
    /// When it runs.
    pub when: ConfirmWhen,
    /// How many distinct candidates are re-measured beside the baseline.
    pub top: usize,
    /// At most this many confirmation measurements of each.
    pub repeats: usize,
    /// At most this share of the run's trial budget goes to it (reserved at the end).
    pub budget_share: f64,
}

impl Default for Confirm {
    fn default() -> Self {
        Confirm { when: ConfirmWhen::Auto, top: 3, repeats: 5, budget_share: 0.25 }
    }
}

impl Confirm {
    /// A `confirm` section given as JSON (`false`, `true` or `{when, top, repeats,
    /// budget_share}`), checked as a spec's is; every problem names `path` and `source`.
    pub(crate) fn from_json(v: &serde_json::Value, path: &str, source: &str) -> crate::Result<Confirm> {
        let fail = |items| crate::error::Error::Invalid(crate::error::Problems { source: source.to_string(), items });
        let yaml: serde_yaml::Value = serde_yaml::to_value(v)
            .map_err(|e| fail(vec![crate::error::Problem::new(path, format!("not a confirm section: {e}"))]))?;
        let mut problems = Vec::new();
        sections::parse_confirm(Some(&yaml), &mut problems).ok_or_else(|| {
            for p in &mut problems {
                p.path = p.path.replacen("confirm", path, 1);
            }
            fail(problems)
        })
    }
}

/// When a run stops (whichever comes first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Total trials of the study, baseline included.
    pub trials: u64,
    /// Wall time of one run.
    pub time: Option<Duration>,
    /// Stop once the best value reaches this (in the objective's units).
    pub target: Option<f64>,
    /// Stop after this many finished trials without improvement.
    pub patience: Option<u64>,
    /// Stop after this many failed trials in a row.
    pub max_consecutive_failures: u64,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { trials: 100, time: None, target: None, patience: None, max_consecutive_failures: 10 }
    }
}

/// A checked experiment spec.
///
/// A `Spec` exists only checked: it comes from [`SpecFile::check`] (what
/// [`Spec::load`] and [`Spec::parse`] do) or from a stored study read back
/// through the same checks; it cannot be built field by field or
/// deserialized. Its fields may be read (and, by a caller who takes the
/// responsibility, changed).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// The study's name (the spec's `name`, or the file's stem).
    pub name: String,
    /// Free text for people.
    pub description: Option<String>,
    /// Seeds the optimizer and the evaluator: same spec and seed, same trials.
    pub seed: u64,
    /// The parameters searched.
    pub space: Space,
    /// What is minimized or maximized, and the constraints.
    pub objectives: Objectives,
    /// The optimizer and its options.
    pub optimizer: OptimizerSpec,
    /// How a configuration is measured.
    pub evaluator: EvaluatorSpec,
    /// When the study stops (trials, time, no improvement).
    pub budget: Budget,
    /// Evaluations run at once.
    pub parallelism: usize,
    /// Storage location as written (resolved against `base_dir`).
    pub storage: Option<String>,
    /// Output directory as written (resolved against `base_dir`).
    pub output: Option<String>,
    /// How many recommendations to emit.
    pub top_k: usize,
    /// Recommend configurations that make risky choices too (`recommend.allow_risky`).
    pub allow_risky: bool,
    /// The confirmation phase.
    pub confirm: Confirm,
    /// Directory of the spec file: relative paths in it are relative to this.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// Only this crate builds one (after checking it).
    #[serde(skip)]
    pub(crate) checked: Checked,
}

/// The mark of a checked [`Spec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Checked;

pub use crate::yaml::parse_duration;

impl Spec {
    /// Read, cap, parse and check a spec file.
    pub fn load(path: &Path) -> Result<Spec> {
        let shown = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(&shown, e))?;
        if meta.len() > yaml::MAX_BYTES as u64 {
            return Err(Error::invalid(
                &shown,
                "(file)",
                format!("{} bytes is over the {} byte limit", meta.len(), yaml::MAX_BYTES),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&shown, e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("study");
        Spec::parse(&text, &shown, stem, base)
    }

    /// Parse spec text; `default_name` names the study when the file does not.
    pub fn parse(text: &str, source: &str, default_name: &str, base_dir: PathBuf) -> Result<Spec> {
        SpecFile::parse(text, source)?.check(default_name, base_dir)
    }

    /// The last check of every spec, from a file or from storage: build the
    /// optimizer once, so that its options are checked now, not mid-run.
    pub(crate) fn checked(self, source: &str) -> Result<Spec> {
        optim::build(&self.optimizer, &self.problem()).map_err(|e| match e {
            Error::Invalid(mut ps) => {
                ps.source = source.to_string();
                Error::Invalid(ps)
            }
            other => Error::invalid(source, "optimizer", other.to_string()),
        })?;
        Ok(self)
    }

    /// The optimizer's view of this spec.
    pub fn problem(&self) -> optim::Problem {
        let mut p = optim::Problem::new(self.space.dims(), self.seed);
        p.budget = Some(self.budget.trials);
        p.parallelism = self.parallelism;
        if self.objectives.pareto {
            p.objectives = self.objectives.objectives.len();
        }
        p
    }

    /// A path from the spec, resolved against the spec's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }

    /// What must not change between runs of one study (everything that
    /// shapes the search); budget, parallelism, paths and which choices are risky (they
    /// only keep configurations out of the recommendations) may change.
    pub(crate) fn identity(&self) -> serde_json::Value {
        let mut space = self.space.clone();
        space.params.iter_mut().for_each(|p| p.risky.clear());
        serde_json::json!({
            "space": space,
            "objectives": self.objectives,
            "optimizer": self.optimizer,
            "seed": self.seed,
        })
    }
}
