//! The raw spec document ([`SpecFile`]): YAML (or JSON) of any shape,
//! turned into a checked [`Spec`] by [`SpecFile::check`], which reports every
//! problem of the document at once, each at its field path.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use serde_yaml::{Mapping, Value as Yaml};

use super::sections::{parse_budget, parse_confirm, parse_objectives, parse_optimizer};
use super::{Checked, KEYS, Spec};
use crate::error::{Error, Problem, Problems, Result};
use crate::eval::EvaluatorSpec;
use crate::objective::Objectives;
use crate::optim::registry;
use crate::space::{Space, parse_space};
use crate::yaml;

/// A spec document as written: not checked yet.
///
/// ```
/// use knobs::spec::SpecFile;
///
/// let file = SpecFile::parse("space: [{name: x, type: float, low: 0, high: 1}]\nevaluator: {type: function, name: branin}\nbudget: {trials: 0}", "inline").unwrap();
/// let err = file.check("demo", ".".into()).unwrap_err().to_string();
/// assert!(err.contains("budget.trials: must be at least 1"), "{err}");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SpecFile {
    root: Yaml,
    source: String,
}

impl<'de> Deserialize<'de> for SpecFile {
    /// Any document deserializes; [`SpecFile::check`] says what is wrong with it.
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(SpecFile { root: Yaml::deserialize(d)?, source: "spec".into() })
    }
}

impl SpecFile {
    /// Read YAML text (capped in size and depth); `source` names it in messages.
    pub fn parse(text: &str, source: &str) -> Result<SpecFile> {
        Ok(SpecFile { root: yaml::load(text, source)?, source: source.to_string() })
    }

    /// A document given as JSON (as the HTTP API receives it).
    #[cfg(feature = "server")]
    pub(crate) fn from_json(value: &serde_json::Value, source: &str) -> Result<SpecFile> {
        let root = serde_yaml::to_value(value)
            .map_err(|e| Error::invalid(source, "(file)", format!("not a spec document: {e}")))?;
        Ok(SpecFile { root, source: source.to_string() })
    }

    /// Check every section; `default_name` names the study when the document
    /// does not, relative paths in it resolve against `base_dir`.
    pub fn check(&self, default_name: &str, base_dir: PathBuf) -> Result<Spec> {
        let source = self.source.as_str();
        let mut p: Vec<Problem> = Vec::new();
        let fail = |p: Vec<Problem>| Error::Invalid(Problems { source: source.to_string(), items: p });
        let Some(m) = yaml::mapping(&self.root, "(file)", &mut p) else { return Err(fail(p)) };
        yaml::check_keys(m, "", KEYS, &mut p);
        let name = check_name(m, default_name, &mut p);
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
        let space = space.map(|s| with_relations(s, yaml::get(m, "relations"), &mut p));
        let objectives = parse_objectives(m, &mut p);
        let optimizer = parse_optimizer(yaml::get(m, "optimizer"), &mut p);
        let evaluator = check_evaluator(m, space.as_ref(), objectives.as_ref(), &mut p);
        let budget = parse_budget(yaml::get(m, "budget"), &mut p);
        // Read again here so that these are reported with the objectives' own problems.
        let pareto = yaml::get(m, "pareto").and_then(|v| v.as_bool()).unwrap_or(false);
        if let Some(Err(e)) = optimizer.as_ref().filter(|_| pareto).map(|o| registry::check_objectives(&o.name, 2)) {
            p.push(Problem::new("optimizer.name", e));
        }
        if let Some(b) = &budget
            && pareto
            && b.target.is_some()
        {
            p.push(Problem::new(
                "budget.target",
                "a Pareto study has no single value to reach; stop it by trials, time or patience (trials \
                 without a new point on the front)",
            ));
        }
        let parallelism = check_parallelism(m, &mut p);
        let storage = yaml::get(m, "storage").and_then(|v| yaml::as_str(v, "storage", &mut p)).map(str::to_string);
        let output = yaml::get(m, "output").and_then(|v| yaml::as_str(v, "output", &mut p)).map(str::to_string);
        let (top_k, allow_risky) = check_recommend(m, &mut p);
        let confirm = parse_confirm(yaml::get(m, "confirm"), &mut p);
        if !p.is_empty() {
            return Err(fail(p));
        }
        let (Some(name), Some(space), Some(objectives), Some(optimizer), Some(evaluator), Some(budget)) =
            (name, space, objectives, optimizer, evaluator, budget)
        else {
            return Err(fail(vec![Problem::new("(file)", "incomplete spec")]));
        };
        Spec {
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
            allow_risky,
            confirm: confirm.unwrap_or_default(),
            base_dir,
            checked: Checked,
        }
        .checked(source)
    }
}

/// `relations: ["young_mb < heap_mb", ...]`, each checked against the space, and the
/// baseline checked against them.
fn with_relations(mut space: Space, v: Option<&Yaml>, p: &mut Vec<Problem>) -> Space {
    let Some(list) = v.and_then(|v| yaml::sequence(v, "relations", p)) else { return space };
    for (i, item) in list.iter().enumerate() {
        let path = format!("relations[{i}]");
        let Some(text) = yaml::as_str(item, &path, p) else { continue };
        match crate::space::Relation::parse(text, &space) {
            Ok(r) => space.relations.push(r),
            Err(e) => p.push(Problem::new(path, e)),
        }
    }
    if let Some(b) = space.baseline() {
        for (i, r) in space.relations.iter().enumerate() {
            if r.violation(&b) > 0.0 {
                p.push(Problem::new(
                    format!("relations[{i}]"),
                    format!("the defaults (the baseline) break `{}`; fix the defaults or the relation", r.text),
                ));
            }
        }
    }
    space
}

fn check_name(m: &Mapping, default_name: &str, p: &mut Vec<Problem>) -> Option<String> {
    match yaml::get(m, "name") {
        Some(v) => match yaml::as_str(v, "name", p) {
            Some(s) => match super::check_study_name(s) {
                Ok(()) => Some(s.to_string()),
                Err(why) => {
                    p.push(Problem::new("name", why));
                    None
                }
            },
            None => None,
        },
        None => match super::check_study_name(default_name) {
            Ok(()) => Some(default_name.to_string()),
            Err(why) => {
                p.push(Problem::new(
                    "name",
                    format!("missing, and the default {default_name:?} (from the file name) {why}"),
                ));
                None
            }
        },
    }
}

/// The evaluator section, checked against the space, and the objectives'
/// metrics checked against what it reports.
fn check_evaluator(
    m: &Mapping,
    space: Option<&Space>,
    objectives: Option<&Objectives>,
    p: &mut Vec<Problem>,
) -> Option<EvaluatorSpec> {
    let evaluator: Option<EvaluatorSpec> = match yaml::get(m, "evaluator") {
        Some(v) => yaml::typed(v, "evaluator", p),
        None => {
            let types: Vec<&str> = EvaluatorSpec::types().iter().filter(|t| **t != "external").copied().collect();
            p.push(Problem::new(
                "evaluator",
                format!(
                    "missing; say how to measure a configuration (type: {}, or external when API clients evaluate)",
                    types.join(", ")
                ),
            ));
            None
        }
    };
    if let (Some(e), Some(s)) = (&evaluator, space) {
        e.check(s, p);
    }
    if let (Some(e), Some(o)) = (&evaluator, objectives) {
        check_metrics(e, o, p);
    }
    evaluator
}

/// Every metric the objectives and constraints need is one the evaluator reports (when it says).
pub(crate) fn check_metrics(evaluator: &EvaluatorSpec, objectives: &Objectives, p: &mut Vec<Problem>) {
    let Some(known) = evaluator.metrics() else { return };
    for (i, metric) in objectives.required_metrics().iter().enumerate() {
        if !known.iter().any(|k| k == metric) {
            p.push(Problem::new(
                if i < objectives.objectives.len() {
                    format!("objectives[{i}].metric")
                } else {
                    "constraints".to_string()
                },
                format!("`{metric}` is not reported by this evaluator; it reports: {}", known.join(", ")),
            ));
        }
    }
}

fn check_parallelism(m: &Mapping, p: &mut Vec<Problem>) -> usize {
    let Some(v) = yaml::get(m, "parallelism") else { return 1 };
    match yaml::as_u64(v, "parallelism", p) {
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
    }
}

fn check_recommend(m: &Mapping, p: &mut Vec<Problem>) -> (usize, bool) {
    let mut top_k = 5;
    let mut allow_risky = false;
    if let Some(r) = yaml::get(m, "recommend").and_then(|v| yaml::mapping(v, "recommend", p)) {
        yaml::check_keys(r, "recommend", &["top", "allow_risky"], p);
        if let Some(b) = yaml::get(r, "allow_risky").and_then(|v| yaml::as_bool(v, "recommend.allow_risky", p)) {
            allow_risky = b;
        }
        if let Some(t) = yaml::get(r, "top").and_then(|v| yaml::as_u64(v, "recommend.top", p)) {
            if t == 0 {
                p.push(Problem::new("recommend.top", "must be at least 1"));
            }
            top_k = t.max(1) as usize;
        }
    }
    (top_k, allow_risky)
}
