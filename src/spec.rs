//! The experiment spec: one YAML file declaring what to tune (space), what
//! to optimize (objectives, constraints), how to search (optimizer, budget,
//! parallelism, seed) and how to measure (evaluator).
//!
//! Raw YAML goes through [`Spec::parse`], which walks every section and
//! reports every problem of the file at once; only a fully valid file
//! becomes a [`Spec`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_yaml::Value as Yaml;

use crate::error::{Error, Problem, Problems, Result};
use crate::eval::EvaluatorSpec;
use crate::objective::{Bound, Constraint, Direction, Objective, Objectives};
use crate::optim::{self, OptimizerSpec};
use crate::space::{Space, parse_space};
use crate::yaml::{self, join};

const KEYS: &[&str] = &[
    "name",
    "description",
    "seed",
    "space",
    "objectives",
    "constraints",
    "optimizer",
    "evaluator",
    "budget",
    "parallelism",
    "storage",
    "output",
    "recommend",
];
const BUDGET_KEYS: &[&str] = &["trials", "time", "target", "patience", "max_consecutive_failures"];

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    pub name: String,
    pub description: Option<String>,
    pub seed: u64,
    pub space: Space,
    pub objectives: Objectives,
    pub optimizer: OptimizerSpec,
    pub evaluator: EvaluatorSpec,
    pub budget: Budget,
    pub parallelism: usize,
    /// Storage location as written (resolved against `base_dir`).
    pub storage: Option<String>,
    /// Output directory as written (resolved against `base_dir`).
    pub output: Option<String>,
    /// How many recommendations to emit.
    pub top_k: usize,
    /// Directory of the spec file: relative paths in it are relative to this.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

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
        let root = yaml::load(text, source)?;
        let mut p: Vec<Problem> = Vec::new();
        let fail = |p: Vec<Problem>| Error::Invalid(Problems { source: source.to_string(), items: p });
        let Some(m) = yaml::mapping(&root, "(file)", &mut p) else { return Err(fail(p)) };
        yaml::check_keys(m, "", KEYS, &mut p);

        let name = match yaml::get(m, "name") {
            Some(v) => match yaml::as_str(v, "name", &mut p) {
                Some(s) if s.trim().is_empty() => {
                    p.push(Problem::new("name", "must not be empty"));
                    None
                }
                Some(s) if s.len() > 200 => {
                    p.push(Problem::new("name", "must be at most 200 characters"));
                    None
                }
                other => other.map(str::to_string),
            },
            None => Some(default_name.to_string()),
        };
        let description =
            yaml::get(m, "description").and_then(|v| yaml::as_str(v, "description", &mut p)).map(str::to_string);
        let seed = yaml::get(m, "seed").and_then(|v| yaml::as_u64(v, "seed", &mut p)).unwrap_or(0);

        let space = match yaml::get(m, "space") {
            Some(v) => parse_space(v, "space", &mut p),
            None => {
                p.push(Problem::new(
                    "space",
                    "missing; declare the parameters to tune (a list of name/type/low/high/default)",
                ));
                None
            }
        };
        let objectives = parse_objectives(m, &mut p);
        let optimizer = parse_optimizer(yaml::get(m, "optimizer"), &mut p);
        let evaluator: Option<EvaluatorSpec> = match yaml::get(m, "evaluator") {
            Some(v) => yaml::typed(v, "evaluator", &mut p),
            None => {
                p.push(Problem::new(
                    "evaluator",
                    format!(
                        "missing; say how to measure a configuration (type: {}, or external when API clients evaluate)",
                        EvaluatorSpec::types()
                            .iter()
                            .filter(|t| **t != "external")
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
                None
            }
        };
        if let (Some(e), Some(s)) = (&evaluator, &space) {
            e.check(s, &mut p);
        }
        if let (Some(e), Some(o)) = (&evaluator, &objectives)
            && let Some(known) = e.metrics()
        {
            for (i, metric) in o.required_metrics().iter().enumerate() {
                if !known.iter().any(|k| k == metric) {
                    p.push(Problem::new(
                        if i < o.objectives.len() {
                            format!("objectives[{i}].metric")
                        } else {
                            "constraints".to_string()
                        },
                        format!("`{metric}` is not reported by this evaluator; it reports: {}", known.join(", ")),
                    ));
                }
            }
        }
        let budget = parse_budget(yaml::get(m, "budget"), &mut p);
        let parallelism = match yaml::get(m, "parallelism") {
            Some(v) => match yaml::as_u64(v, "parallelism", &mut p) {
                Some(0) => {
                    p.push(Problem::new("parallelism", "must be at least 1"));
                    1
                }
                Some(n) if n > 1024 => {
                    p.push(Problem::new("parallelism", format!("{n} is more than the 1024 supported")));
                    1
                }
                Some(n) => n as usize,
                None => 1,
            },
            None => 1,
        };
        let storage = yaml::get(m, "storage").and_then(|v| yaml::as_str(v, "storage", &mut p)).map(str::to_string);
        let output = yaml::get(m, "output").and_then(|v| yaml::as_str(v, "output", &mut p)).map(str::to_string);
        let mut top_k = 5;
        if let Some(r) = yaml::get(m, "recommend").and_then(|v| yaml::mapping(v, "recommend", &mut p)) {
            yaml::check_keys(r, "recommend", &["top"], &mut p);
            if let Some(t) = yaml::get(r, "top").and_then(|v| yaml::as_u64(v, "recommend.top", &mut p)) {
                if t == 0 {
                    p.push(Problem::new("recommend.top", "must be at least 1"));
                }
                top_k = t.max(1) as usize;
            }
        }

        if !p.is_empty() {
            return Err(fail(p));
        }
        let (Some(name), Some(space), Some(objectives), Some(optimizer), Some(evaluator), Some(budget)) =
            (name, space, objectives, optimizer, evaluator, budget)
        else {
            return Err(fail(vec![Problem::new("(file)", "incomplete spec")]));
        };
        let spec = Spec {
            name,
            description,
            seed,
            space,
            objectives,
            optimizer,
            evaluator,
            budget,
            parallelism,
            storage,
            output,
            top_k,
            base_dir,
        };
        // Build the optimizer once so that its options are checked now, not mid-run.
        optim::build(&spec.optimizer, &spec.problem()).map_err(|e| match e {
            Error::Invalid(mut ps) => {
                ps.source = source.to_string();
                Error::Invalid(ps)
            }
            other => Error::invalid(source, "optimizer", other.to_string()),
        })?;
        Ok(spec)
    }

    /// The optimizer's view of this spec.
    pub fn problem(&self) -> optim::Problem {
        let mut p = optim::Problem::new(self.space.dims(), self.seed);
        p.budget = Some(self.budget.trials);
        p.parallelism = self.parallelism;
        p
    }

    /// A path from the spec, resolved against the spec's directory.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }

    /// What must not change between runs of one study (everything that
    /// shapes the search); budget, parallelism and paths may change.
    pub fn identity(&self) -> serde_json::Value {
        serde_json::json!({
            "space": self.space,
            "objectives": self.objectives,
            "optimizer": self.optimizer,
            "seed": self.seed,
        })
    }
}

fn parse_objectives(m: &serde_yaml::Mapping, p: &mut Vec<Problem>) -> Option<Objectives> {
    let before = p.len();
    let mut out = Objectives::default();
    if let Some(list) = yaml::get(m, "objectives").and_then(|v| yaml::sequence(v, "objectives", p)) {
        if list.is_empty() {
            p.push(Problem::new("objectives", "is empty; give at least one metric to minimize or maximize"));
        }
        out.objectives.clear();
        for (i, item) in list.iter().enumerate() {
            let path = format!("objectives[{i}]");
            // Shorthand: `- latency_ms` means minimize it.
            if let Yaml::String(s) = item {
                out.objectives.push(Objective { metric: s.clone(), direction: Direction::Minimize, weight: 1.0 });
                continue;
            }
            let Some(o) = yaml::mapping(item, &path, p) else { continue };
            yaml::check_keys(o, &path, &["metric", "direction", "weight"], p);
            let metric = match yaml::get(o, "metric") {
                Some(v) => yaml::as_str(v, &join(&path, "metric"), p).map(str::to_string),
                None => {
                    p.push(Problem::new(join(&path, "metric"), "missing; name the metric the evaluator reports"));
                    None
                }
            };
            let direction = match yaml::get(o, "direction").map(|v| yaml::as_str(v, &join(&path, "direction"), p)) {
                None => Some(Direction::Minimize),
                Some(Some("minimize")) => Some(Direction::Minimize),
                Some(Some("maximize")) => Some(Direction::Maximize),
                Some(Some(other)) => {
                    p.push(Problem::new(join(&path, "direction"), format!("`{other}` must be minimize or maximize")));
                    None
                }
                Some(None) => None,
            };
            let weight = match yaml::get(o, "weight").map(|v| yaml::as_f64(v, &join(&path, "weight"), p)) {
                None => Some(1.0),
                Some(Some(w)) if w > 0.0 => Some(w),
                Some(Some(w)) => {
                    p.push(Problem::new(
                        join(&path, "weight"),
                        format!("must be > 0 (got {w}); use direction to flip a metric"),
                    ));
                    None
                }
                Some(None) => None,
            };
            if let (Some(metric), Some(direction), Some(weight)) = (metric, direction, weight) {
                if out.objectives.iter().any(|x| x.metric == metric) {
                    p.push(Problem::new(join(&path, "metric"), format!("`{metric}` is listed twice")));
                }
                out.objectives.push(Objective { metric, direction, weight });
            }
        }
    }
    if let Some(list) = yaml::get(m, "constraints").and_then(|v| yaml::sequence(v, "constraints", p)) {
        for (i, item) in list.iter().enumerate() {
            let path = format!("constraints[{i}]");
            match item {
                Yaml::String(s) => match Constraint::parse(s) {
                    Ok(c) => out.constraints.push(c),
                    Err(e) => p.push(Problem::new(path, e)),
                },
                Yaml::Mapping(c) => {
                    yaml::check_keys(c, &path, &["metric", "max", "min"], p);
                    let metric = yaml::get(c, "metric").and_then(|v| yaml::as_str(v, &join(&path, "metric"), p));
                    let max = yaml::get(c, "max").and_then(|v| yaml::as_f64(v, &join(&path, "max"), p));
                    let min = yaml::get(c, "min").and_then(|v| yaml::as_f64(v, &join(&path, "min"), p));
                    match (metric, max, min) {
                        (None, ..) => p.push(Problem::new(join(&path, "metric"), "missing")),
                        (Some(m), Some(b), None) => {
                            out.constraints.push(Constraint { metric: m.into(), op: Bound::AtMost, bound: b })
                        }
                        (Some(m), None, Some(b)) => {
                            out.constraints.push(Constraint { metric: m.into(), op: Bound::AtLeast, bound: b })
                        }
                        (Some(_), ..) => p.push(Problem::new(&path, "give exactly one of max or min")),
                    }
                }
                _ => p.push(Problem::new(path, "must be a string like `p99_latency_ms <= 50` or {metric, max|min}")),
            }
        }
    }
    (p.len() == before).then_some(out)
}

fn parse_optimizer(v: Option<&Yaml>, p: &mut Vec<Problem>) -> Option<OptimizerSpec> {
    let check_name = |n: &str, p: &mut Vec<Problem>| match optim::registry::check_name(n) {
        Ok(()) => true,
        Err(e) => {
            p.push(Problem::new("optimizer.name", e));
            false
        }
    };
    match v {
        None => Some(OptimizerSpec::named("auto")),
        Some(Yaml::String(s)) => check_name(s, p).then(|| OptimizerSpec::named(s)),
        Some(Yaml::Mapping(m)) => {
            let name = match yaml::get(m, "name") {
                Some(n) => yaml::as_str(n, "optimizer.name", p)?.to_string(),
                None => {
                    p.push(Problem::new("optimizer.name", format!("missing; one of {}", optim::names().join(", "))));
                    return None;
                }
            };
            if !check_name(&name, p) {
                return None;
            }
            let mut rest = m.clone();
            rest.remove("name");
            let options: serde_json::Value = match serde_yaml::from_value(Yaml::Mapping(rest)) {
                Ok(v) => v,
                Err(e) => {
                    p.push(Problem::new("optimizer", format!("options must be plain values: {e}")));
                    return None;
                }
            };
            let serde_json::Value::Object(options) = options else { return None };
            Some(OptimizerSpec { name, options })
        }
        Some(other) => {
            p.push(Problem::new(
                "optimizer",
                format!("must be a name or a mapping with `name`, got {}", yaml::type_name(other)),
            ));
            None
        }
    }
}

fn parse_budget(v: Option<&Yaml>, p: &mut Vec<Problem>) -> Option<Budget> {
    let mut b = Budget::default();
    let Some(v) = v else { return Some(b) };
    let before = p.len();
    let m = yaml::mapping(v, "budget", p)?;
    yaml::check_keys(m, "budget", BUDGET_KEYS, p);
    if let Some(t) = yaml::get(m, "trials").and_then(|v| yaml::as_u64(v, "budget.trials", p)) {
        if t == 0 {
            p.push(Problem::new("budget.trials", "must be at least 1"));
        }
        b.trials = t;
    }
    if let Some(t) = yaml::get(m, "time") {
        let d = match t {
            Yaml::Number(n) => n.as_f64().filter(|s| s.is_finite() && *s > 0.0).map(Duration::from_secs_f64),
            Yaml::String(s) => parse_duration(s).filter(|d| !d.is_zero()),
            _ => None,
        };
        match d {
            Some(d) => b.time = Some(d),
            None => {
                p.push(Problem::new("budget.time", "must be a positive duration like 90s, 10m, 2h, 1d (or seconds)"))
            }
        }
    }
    b.target = yaml::get(m, "target").and_then(|v| yaml::as_f64(v, "budget.target", p));
    if let Some(n) = yaml::get(m, "patience").and_then(|v| yaml::as_u64(v, "budget.patience", p)) {
        if n == 0 {
            p.push(Problem::new("budget.patience", "must be at least 1"));
        }
        b.patience = Some(n);
    }
    if let Some(n) =
        yaml::get(m, "max_consecutive_failures").and_then(|v| yaml::as_u64(v, "budget.max_consecutive_failures", p))
    {
        if n == 0 {
            p.push(Problem::new("budget.max_consecutive_failures", "must be at least 1"));
        }
        b.max_consecutive_failures = n;
    }
    (p.len() == before).then_some(b)
}
