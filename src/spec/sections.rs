//! The sections of a spec file that are more than one value: objectives
//! and constraints, the optimizer, the budget. Each pushes every problem it
//! finds at its field path.

use std::time::Duration;

use serde_yaml::Value as Yaml;

use super::{BUDGET_KEYS, Budget, CONFIRM_KEYS, Confirm, ConfirmWhen, parse_duration};
use crate::error::Problem;
use crate::objective::{Bound, Constraint, Direction, Objective, Objectives};
use crate::optim::{self, OptimizerOptions, OptimizerSpec};
use crate::yaml::{self, join};

pub(super) fn parse_objectives(m: &serde_yaml::Mapping, p: &mut Vec<Problem>) -> Option<Objectives> {
    let before = p.len();
    let mut out = Objectives::default();
    let pareto = yaml::get(m, "pareto").and_then(|v| yaml::as_bool(v, "pareto", p)).unwrap_or(false);
    out.pareto = pareto;
    if let Some(list) = yaml::get(m, "objectives").and_then(|v| yaml::sequence(v, "objectives", p)) {
        if list.is_empty() {
            p.push(Problem::new("objectives", "is empty; give at least one metric to minimize or maximize"));
        }
        out.objectives.clear();
        for (i, item) in list.iter().enumerate() {
            let path = format!("objectives[{i}]");
            // Shorthand: `- latency_ms` means minimize it.
            if let Yaml::String(s) = item {
                out.objectives.push(Objective::new(s.clone(), Direction::Minimize));
                continue;
            }
            let Some(o) = yaml::mapping(item, &path, p) else { continue };
            yaml::check_keys(o, &path, &["metric", "direction", "weight", "reference"], p);
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
                Some(Some(_)) if pareto => {
                    p.push(Problem::new(
                        join(&path, "weight"),
                        "a Pareto study (`pareto: true`) weighs no objective: it finds the trade-offs \
                         instead; remove `weight`, or `pareto` for a weighted sum",
                    ));
                    None
                }
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
            let reference = match yaml::get(o, "reference").map(|v| yaml::as_f64(v, &join(&path, "reference"), p)) {
                None => Some(None),
                Some(Some(_)) if !pareto => {
                    p.push(Problem::new(
                        join(&path, "reference"),
                        "is the hypervolume's reference point of a Pareto study; add `pareto: true` or remove it",
                    ));
                    None
                }
                Some(Some(r)) => Some(Some(r)),
                Some(None) => None,
            };
            if let (Some(metric), Some(direction), Some(weight), Some(reference)) =
                (metric, direction, weight, reference)
            {
                if out.objectives.iter().any(|x| x.metric == metric) {
                    p.push(Problem::new(join(&path, "metric"), format!("`{metric}` is listed twice")));
                }
                out.objectives.push(Objective { metric, direction, weight, reference });
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
    if pareto && p.len() == before && out.objectives.len() < 2 {
        p.push(Problem::new(
            "pareto",
            format!(
                "Pareto search needs two or more objectives (the spec has {}); list them under `objectives`",
                out.objectives.len()
            ),
        ));
    }
    (p.len() == before).then_some(out)
}

pub(super) fn parse_optimizer(v: Option<&Yaml>, p: &mut Vec<Problem>) -> Option<OptimizerSpec> {
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
            let spec = OptimizerSpec { name, options: OptimizerOptions::from_map(options) };
            let found = optim::registry::check_options(&spec);
            let ok = found.is_empty();
            p.extend(found);
            ok.then_some(spec)
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

pub(super) fn parse_budget(v: Option<&Yaml>, p: &mut Vec<Problem>) -> Option<Budget> {
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

/// `confirm: false | true | {when, top, repeats, budget_share}`.
pub(super) fn parse_confirm(v: Option<&Yaml>, p: &mut Vec<Problem>) -> Option<Confirm> {
    let mut c = Confirm::default();
    let Some(v) = v else { return Some(c) };
    if let Yaml::Bool(on) = v {
        c.when = if *on { ConfirmWhen::Always } else { ConfirmWhen::Never };
        return Some(c);
    }
    let before = p.len();
    let m = yaml::mapping(v, "confirm", p)?;
    yaml::check_keys(m, "confirm", CONFIRM_KEYS, p);
    if let Some(w) = yaml::get(m, "when").and_then(|v| yaml::as_str(v, "confirm.when", p)) {
        match w {
            "auto" => c.when = ConfirmWhen::Auto,
            "always" => c.when = ConfirmWhen::Always,
            "never" => c.when = ConfirmWhen::Never,
            other => p.push(Problem::new("confirm.when", format!("must be auto, always or never (got `{other}`)"))),
        }
    }
    let mut count = |key: &str, low: u64, high: u64| {
        let path = format!("confirm.{key}");
        let n = yaml::get(m, key).and_then(|v| yaml::as_u64(v, &path, p))?;
        if !(low..=high).contains(&n) {
            p.push(Problem::new(&path, format!("must be {low} to {high} (got {n})")));
        }
        Some(n as usize)
    };
    if let Some(n) = count("top", 1, 20) {
        c.top = n;
    }
    if let Some(n) = count("repeats", 2, 100) {
        c.repeats = n;
    }
    if let Some(s) = yaml::get(m, "budget_share").and_then(|v| yaml::as_f64(v, "confirm.budget_share", p)) {
        if !(s > 0.0 && s <= 0.9) {
            p.push(Problem::new("confirm.budget_share", format!("must be more than 0 and at most 0.9 (got {s})")));
        }
        c.budget_share = s;
    }
    (p.len() == before).then_some(c)
}
