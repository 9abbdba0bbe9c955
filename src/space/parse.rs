//! Building a [`Space`] from the `space:` list of a spec, reporting every
//! problem of every parameter at once.

use serde_yaml::Value as Yaml;

use super::Value as V;
use super::{Condition, Domain, Param, Space, Value};
use crate::error::Problem;
use crate::yaml::{self, join};

/// Most parameters a space may declare.
pub const MAX_PARAMS: usize = 1024;

const KEYS: &[&str] =
    &["name", "type", "low", "high", "log", "step", "default", "choices", "when", "description", "risky"];
const TYPES: &[&str] = &["float", "int", "categorical", "bool"];

fn valid_name(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

/// Parse the `space` list. Returns the space only when no problem was found
/// in it (problems are pushed to `problems`, paths starting with `path`).
pub fn parse_space(v: &Yaml, path: &str, problems: &mut Vec<Problem>) -> Option<Space> {
    let before = problems.len();
    let list = yaml::sequence(v, path, problems)?;
    if list.is_empty() {
        problems.push(Problem::new(path, "declares no parameter; at least one is needed"));
        return None;
    }
    if list.len() > MAX_PARAMS {
        problems.push(Problem::new(
            path,
            format!("declares {} parameters; at most {MAX_PARAMS} are supported", list.len()),
        ));
        return None;
    }
    let mut params: Vec<Param> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let mut p_path = format!("{path}[{i}]");
        let Some(m) = yaml::mapping(item, &p_path, problems) else { continue };
        // Name first so that every later message can say which parameter.
        let name = match yaml::get(m, "name") {
            None => {
                problems.push(Problem::new(join(&p_path, "name"), "missing; every parameter needs a name"));
                None
            }
            Some(n) => match yaml::as_str(n, &join(&p_path, "name"), problems) {
                Some("") => {
                    problems.push(Problem::new(join(&p_path, "name"), "must not be empty"));
                    None
                }
                Some(s) if !valid_name(s) => {
                    problems.push(Problem::new(
                        join(&p_path, "name"),
                        format!("`{s}` may only contain letters, digits, `_`, `-` and `.`"),
                    ));
                    None
                }
                Some(s) => Some(s.to_string()),
                None => None,
            },
        };
        if let Some(n) = &name {
            p_path = format!("{path}.{n}");
            if seen.contains(n) {
                problems
                    .push(Problem::new(join(&p_path, "name"), format!("duplicate name `{n}`; names must be unique")));
            }
            seen.push(n.clone());
        }
        yaml::check_keys(m, &p_path, KEYS, problems);
        let domain = parse_domain(m, &p_path, problems);
        let default = yaml::get(m, "default").and_then(|d| as_value(d, &join(&p_path, "default"), problems));
        if let (Some(dom), Some(d)) = (&domain, &default)
            && !dom.contains(d)
        {
            problems.push(Problem::new(
                join(&p_path, "default"),
                format!("{d} is outside the domain; must be {}", dom.describe()),
            ));
        }
        let when =
            yaml::get(m, "when").map(|w| parse_when(w, &join(&p_path, "when"), &params, problems)).unwrap_or_default();
        let risky = parse_risky(m, &p_path, domain.as_ref(), problems);
        if let (Some(name), Some(domain)) = (name, domain) {
            params.push(Param { name, domain, default, when, risky });
        }
    }
    let with_default = params.iter().filter(|p| p.default.is_some()).count();
    if with_default > 0 && with_default < params.len() {
        let missing: Vec<&str> = params.iter().filter(|p| p.default.is_none()).map(|p| p.name.as_str()).collect();
        problems.push(Problem::new(
            path,
            format!(
                "{} has a default but {} not ({}); give every parameter a default (today's value, the baseline) or none",
                with_default,
                missing.len(),
                missing.join(", ")
            ),
        ));
    }
    if problems.len() > before {
        return None;
    }
    Some(Space { params, relations: Vec::new() })
}

/// `risky: [value, ...]`: choices of a categorical or bool parameter, at least one choice
/// left safe.
fn parse_risky(
    m: &serde_yaml::Mapping,
    path: &str,
    domain: Option<&Domain>,
    problems: &mut Vec<Problem>,
) -> Vec<Value> {
    let path = join(path, "risky");
    let Some(list) = yaml::get(m, "risky").and_then(|v| yaml::sequence(v, &path, problems)) else { return vec![] };
    let values: Vec<Value> =
        list.iter().enumerate().filter_map(|(i, v)| as_value(v, &format!("{path}[{i}]"), problems)).collect();
    let Some(domain) = domain else { return values };
    let choices = match domain {
        Domain::Categorical { choices } => choices.clone(),
        Domain::Bool => vec![Value::Bool(false), Value::Bool(true)],
        _ => {
            problems.push(Problem::new(&path, "only categorical and bool parameters have risky choices"));
            return vec![];
        }
    };
    for v in &values {
        if !choices.iter().any(|c| c.same(v)) {
            problems.push(Problem::new(&path, format!("{v} is not one of the choices ({})", domain.describe())));
        }
    }
    if choices.iter().all(|c| values.iter().any(|v| v.same(c))) {
        problems.push(Problem::new(&path, "marks every choice risky; leave at least one safe choice"));
    }
    values.iter().map(|v| domain.normalize(v)).collect()
}

fn parse_domain(m: &serde_yaml::Mapping, path: &str, problems: &mut Vec<Problem>) -> Option<Domain> {
    let ty = match yaml::get(m, "type") {
        None => {
            problems.push(Problem::new(join(path, "type"), format!("missing; must be one of {}", TYPES.join(", "))));
            return None;
        }
        Some(t) => yaml::as_str(t, &join(path, "type"), problems)?,
    };
    let unused = |keys: &[&str], problems: &mut Vec<Problem>| {
        for k in keys {
            if yaml::get(m, k).is_some() {
                problems.push(Problem::new(join(path, k), format!("is not used by a {ty} parameter; remove it")));
            }
        }
    };
    let log = yaml::get(m, "log").and_then(|v| yaml::as_bool(v, &join(path, "log"), problems)).unwrap_or(false);
    match ty {
        "float" => {
            unused(&["choices"], problems);
            let low = req(m, "low", path, problems, yaml::as_f64);
            let high = req(m, "high", path, problems, yaml::as_f64);
            let step = yaml::get(m, "step").and_then(|s| yaml::as_f64(s, &join(path, "step"), problems));
            let (low, high) = (low?, high?);
            let mut ok = check_bounds(low, high, log, path, problems);
            if let Some(s) = step {
                ok &= check_step(s, high - low, log, path, problems);
            }
            ok.then_some(Domain::Float { low, high, log, step })
        }
        "int" => {
            unused(&["choices"], problems);
            let low = req(m, "low", path, problems, yaml::as_i64);
            let high = req(m, "high", path, problems, yaml::as_i64);
            let step = yaml::get(m, "step").and_then(|s| yaml::as_i64(s, &join(path, "step"), problems));
            let (low, high) = (low?, high?);
            let mut ok = check_bounds(low as f64, high as f64, log, path, problems);
            let step = step.unwrap_or(1);
            ok &= check_step(step as f64, (high - low) as f64, log, path, problems);
            ok.then_some(Domain::Int { low, high, log, step })
        }
        "categorical" => {
            unused(&["low", "high", "log", "step"], problems);
            let c_path = join(path, "choices");
            let Some(raw) = yaml::get(m, "choices") else {
                problems.push(Problem::new(c_path, "missing; a categorical parameter needs a list of choices"));
                return None;
            };
            let list = yaml::sequence(raw, &c_path, problems)?;
            if list.is_empty() {
                problems.push(Problem::new(c_path, "is empty; give at least one choice"));
                return None;
            }
            let before = problems.len();
            let choices: Vec<Value> =
                list.iter().enumerate().filter_map(|(i, c)| as_value(c, &format!("{c_path}[{i}]"), problems)).collect();
            if problems.len() > before {
                return None;
            }
            let kinds: Vec<&str> =
                choices.iter().map(|c| if c.as_f64().is_some() { "number" } else { c.kind() }).collect();
            if kinds.iter().any(|k| *k != kinds[0]) {
                problems.push(Problem::new(
                    &c_path,
                    format!(
                        "mixes types ({}); all choices must be strings, or all numbers, or all bools",
                        kinds.join(", ")
                    ),
                ));
                return None;
            }
            for (i, c) in choices.iter().enumerate() {
                if choices[..i].iter().any(|d| d.same(c)) {
                    problems.push(Problem::new(format!("{c_path}[{i}]"), format!("duplicate choice `{c}`")));
                    return None;
                }
            }
            Some(Domain::Categorical { choices })
        }
        "bool" => {
            unused(&["low", "high", "log", "step", "choices"], problems);
            Some(Domain::Bool)
        }
        other => {
            problems.push(Problem::new(
                join(path, "type"),
                format!("unknown type `{other}`; must be one of {}", TYPES.join(", ")),
            ));
            None
        }
    }
}

fn req<T>(
    m: &serde_yaml::Mapping,
    key: &str,
    path: &str,
    problems: &mut Vec<Problem>,
    conv: fn(&Yaml, &str, &mut Vec<Problem>) -> Option<T>,
) -> Option<T> {
    match yaml::get(m, key) {
        Some(v) => conv(v, &join(path, key), problems),
        None => {
            problems.push(Problem::new(join(path, key), "missing; numeric parameters need low and high"));
            None
        }
    }
}

fn check_bounds(low: f64, high: f64, log: bool, path: &str, problems: &mut Vec<Problem>) -> bool {
    let mut ok = true;
    if low > high {
        problems.push(Problem::new(join(path, "low"), format!("must be <= high (got low {low} > high {high})")));
        ok = false;
    }
    if log && low <= 0.0 {
        problems.push(Problem::new(join(path, "low"), format!("must be > 0 for a log scale (got {low})")));
        ok = false;
    }
    ok
}

fn check_step(step: f64, range: f64, log: bool, path: &str, problems: &mut Vec<Problem>) -> bool {
    if step <= 0.0 {
        problems.push(Problem::new(join(path, "step"), format!("must be > 0 (got {step})")));
        return false;
    }
    if range > 0.0 && step > range {
        problems
            .push(Problem::new(join(path, "step"), format!("{step} is larger than the range high - low = {range}")));
        return false;
    }
    if log && step != 1.0 {
        problems.push(Problem::new(
            join(path, "step"),
            format!("a log scale cannot be combined with a step (got {step}); drop one of them"),
        ));
        return false;
    }
    true
}

fn parse_when(v: &Yaml, path: &str, earlier: &[Param], problems: &mut Vec<Problem>) -> Vec<Condition> {
    let Some(m) = yaml::mapping(v, path, problems) else { return Vec::new() };
    let mut out = Vec::new();
    for (k, val) in m {
        let Some(param) = k.as_str() else {
            problems.push(Problem::new(path, "keys must be parameter names"));
            continue;
        };
        let c_path = join(path, param);
        let Some(parent) = earlier.iter().find(|p| p.name == param) else {
            problems.push(Problem::new(
                c_path,
                format!("`{param}` is not a parameter declared before this one; conditions may only refer to earlier parameters"),
            ));
            continue;
        };
        let values: Vec<Value> = match val {
            Yaml::Sequence(s) => {
                s.iter().enumerate().filter_map(|(i, x)| as_value(x, &format!("{c_path}[{i}]"), problems)).collect()
            }
            other => as_value(other, &c_path, problems).into_iter().collect(),
        };
        let mut ok = !values.is_empty();
        for x in &values {
            if !parent.domain.contains(x) {
                problems.push(Problem::new(
                    &c_path,
                    format!("{x} is not a value of `{param}`; must be {}", parent.domain.describe()),
                ));
                ok = false;
            }
        }
        if ok {
            out.push(Condition { param: param.to_string(), any_of: values });
        }
    }
    out
}

/// A scalar as a parameter value (strings, bools, ints, finite floats).
fn as_value(v: &Yaml, path: &str, problems: &mut Vec<Problem>) -> Option<V> {
    match v {
        Yaml::Bool(b) => Some(V::Bool(*b)),
        Yaml::String(s) => Some(V::Str(s.clone())),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(V::Int(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.is_finite() => Some(V::Float(f)),
                    _ => {
                        problems.push(Problem::new(path, format!("must be finite (got {n})")));
                        None
                    }
                }
            }
        }
        other => {
            problems
                .push(Problem::new(path, format!("must be a string, number or bool, got {}", yaml::type_name(other))));
            None
        }
    }
}
