//! Reading YAML safely and walking it while collecting every problem.
//!
//! Files are size-capped before parsing; the parser refuses alias bombs
//! (yaml_serde limits alias expansion) and we refuse nesting deeper than
//! [`MAX_DEPTH`], flow collections (`[`, `{`) by a linear scan *before*
//! parsing: the parser's time grows with the square of their depth (60,000
//! nested `{a: ` took 15 s), while block nesting costs indentation and stays
//! fast. The walker helpers never stop at the first problem: they
//! push a [`Problem`] naming the field path and return `None`.

use serde_yaml::{Mapping, Value};

use crate::error::{Error, Problem, Problems, Result};

/// Largest spec file we parse.
pub const MAX_BYTES: usize = 1 << 20;
/// Deepest nesting a spec may have.
pub const MAX_DEPTH: usize = 32;

/// Parse YAML text (named `source` in messages) with the size and depth caps.
pub fn load(text: &str, source: &str) -> Result<Value> {
    let fail =
        |msg: String| Error::Invalid(Problems { source: source.to_string(), items: vec![Problem::new("(file)", msg)] });
    if text.len() > MAX_BYTES {
        return Err(fail(format!("{} bytes is larger than the {} byte limit for a spec", text.len(), MAX_BYTES)));
    }
    if let Some(line) = flow_too_deep(text, MAX_DEPTH) {
        return Err(fail(format!("nested deeper than {MAX_DEPTH} levels (line {line})")));
    }
    let value: Value = serde_yaml::from_str(text).map_err(|e| fail(format!("not valid YAML: {e}")))?;
    if depth(&value) > MAX_DEPTH {
        return Err(fail(format!("nested deeper than {MAX_DEPTH} levels")));
    }
    Ok(value)
}

/// The line at which flow collections (`[…]`, `{…}`) nest deeper than `limit`, if they do:
/// one pass, skipping comments and quoted scalars. A bracket counts where a value may start
/// (line start, after `: `, `- `, `? `, `,`, an opening bracket, an anchor or a tag) and
/// anywhere inside a flow collection, as in YAML; elsewhere it is part of a plain scalar.
fn flow_too_deep(text: &str, limit: usize) -> Option<usize> {
    let b = text.as_bytes();
    let blank = |i: usize| b.get(i).is_none_or(|c| c.is_ascii_whitespace());
    let (mut depth, mut line, mut i) = (0usize, 1usize, 0usize);
    let mut value_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                value_start = true;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' if i == 0 || b[i - 1].is_ascii_whitespace() => {
                while i + 1 < b.len() && b[i + 1] != b'\n' {
                    i += 1;
                }
            }
            b'\'' | b'"' if value_start => {
                // A quoted scalar: '' escapes a single quote, \ escapes in double quotes.
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\n' => line += 1,
                        b'\\' if c == b'"' => i += 1,
                        q if q == c => {
                            if c == b'\'' && b.get(i + 1) == Some(&b'\'') {
                                i += 1;
                            } else {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                value_start = false;
            }
            b'[' | b'{' if value_start || depth > 0 => {
                depth += 1;
                if depth > limit {
                    return Some(line);
                }
                value_start = true;
            }
            b']' | b'}' if depth > 0 => {
                depth -= 1;
                value_start = false;
            }
            b',' if depth > 0 => value_start = true,
            b':' | b'-' | b'?' if blank(i + 1) || (c == b':' && depth > 0) => value_start = true,
            b'&' | b'!' if value_start => {
                while !blank(i + 1) {
                    i += 1;
                }
            }
            _ => value_start = false,
        }
        i += 1;
    }
    None
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Sequence(s) => 1 + s.iter().map(depth).max().unwrap_or(0),
        Value::Mapping(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Tagged(t) => 1 + depth(&t.value),
        _ => 0,
    }
}

/// Join a path and a key: `join("space.pool", "low")` → `space.pool.low`.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

pub fn mapping<'v>(v: &'v Value, path: &str, problems: &mut Vec<Problem>) -> Option<&'v Mapping> {
    match v {
        Value::Mapping(m) => Some(m),
        other => {
            problems.push(Problem::new(path, format!("must be a mapping (key: value), got {}", type_name(other))));
            None
        }
    }
}

pub fn sequence<'v>(v: &'v Value, path: &str, problems: &mut Vec<Problem>) -> Option<&'v Vec<Value>> {
    match v {
        Value::Sequence(s) => Some(s),
        other => {
            problems.push(Problem::new(path, format!("must be a list, got {}", type_name(other))));
            None
        }
    }
}

/// Report every key of `m` that is not in `allowed` (and non-string keys).
pub fn check_keys(m: &Mapping, path: &str, allowed: &[&str], problems: &mut Vec<Problem>) {
    for k in m.keys() {
        match k.as_str() {
            Some(k) if allowed.contains(&k) => {}
            Some(k) => {
                let hint = closest(k, allowed).map(|c| format!("did you mean `{c}`? ")).unwrap_or_default();
                problems.push(Problem::new(
                    join(path, k),
                    format!("unknown key; {hint}valid keys: {}", allowed.join(", ")),
                ));
            }
            None => problems.push(Problem::new(path, format!("keys must be strings, got {}", type_name(k)))),
        }
    }
}

fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(word, o), *o))
        .filter(|(d, o)| *d <= 2.max(o.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push((prev[j] + (ca != *cb) as usize).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

pub fn get<'v>(m: &'v Mapping, key: &str) -> Option<&'v Value> {
    m.get(key).filter(|v| !v.is_null())
}

pub fn as_f64(v: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<f64> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Some(x),
            _ => {
                problems.push(Problem::new(path, format!("must be a finite number (got {n})")));
                None
            }
        },
        // The YAML reader keeps a number too large for a double (1e400) as text.
        Value::String(text) if text.trim().parse::<f64>().is_ok_and(|x| x.is_infinite()) => {
            problems.push(Problem::new(path, format!("must be a finite number, within ±1.8e308 (got {text})")));
            None
        }
        other => {
            problems.push(Problem::new(path, format!("must be a number, got {}", type_name(other))));
            None
        }
    }
}

pub fn as_i64(v: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<i64> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i),
            None => match n.as_f64() {
                Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
                _ => {
                    problems.push(Problem::new(path, format!("must be an integer (got {n})")));
                    None
                }
            },
        },
        other => {
            problems.push(Problem::new(path, format!("must be an integer, got {}", type_name(other))));
            None
        }
    }
}

pub fn as_u64(v: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<u64> {
    let i = as_i64(v, path, problems)?;
    if i < 0 {
        problems.push(Problem::new(path, format!("must be >= 0 (got {i})")));
        return None;
    }
    Some(i as u64)
}

pub fn as_bool(v: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => {
            problems.push(Problem::new(path, format!("must be true or false, got {}", type_name(other))));
            None
        }
    }
}

pub fn as_str<'v>(v: &'v Value, path: &str, problems: &mut Vec<Problem>) -> Option<&'v str> {
    match v {
        Value::String(s) => Some(s),
        other => {
            problems.push(Problem::new(path, format!("must be a string, got {}", type_name(other))));
            None
        }
    }
}

/// Deserialize a sub-tree into a typed struct, reporting a failure as a problem at `path`.
pub fn typed<T: serde::de::DeserializeOwned>(v: &Value, path: &str, problems: &mut Vec<Problem>) -> Option<T> {
    match serde_yaml::from_value::<T>(v.clone()) {
        Ok(t) => Some(t),
        Err(e) => {
            problems.push(Problem::new(path, e.to_string()));
            None
        }
    }
}

/// Parse `"90s"`, `"10m"`, `"2h"`, `"1d"`, `"1w"`, `"500ms"` or a number of
/// seconds (used for budgets, telemetry steps and horizons).
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, "s"),
    };
    let n: f64 = num.trim().parse().ok()?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" | "sec" => n,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        "w" => n * 7.0 * 86400.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| std::time::Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> String {
        match load(text, "t") {
            Err(e) => e.to_string(),
            Ok(v) => panic!("accepted: {v:?}"),
        }
    }

    #[test]
    fn deep_flow_nesting_is_refused_before_parsing_with_its_line() {
        // Each of these took the parser from seconds to minutes at 1 MiB.
        for hostile in ["{a: ".repeat(60_000), "[".repeat(1_000_000), "[{a: ".repeat(30_000), "[ ".repeat(100_000)] {
            let e = refused(&hostile);
            assert!(e.contains("nested deeper than 32 levels (line 1)"), "{e}");
        }
        let e = refused(&format!("name: x\nspace:\n  - {}\n", "[".repeat(40)));
        assert!(e.contains("(line 3)"), "{e}");
    }

    #[test]
    fn brackets_that_are_text_do_not_count() {
        let deep = "[".repeat(40);
        for text in [
            format!("a: '{deep}'\n"),
            format!("a: \"{deep}\\\" {deep}\"\n"),
            format!("a: 'it''s {deep}'\n"),
            format!("a: x{deep}\n"),
            format!("# {deep}\na: 1\n"),
            format!("a: 1 # {deep}\n"),
            format!("a: [b, 'c{deep}', \"d{deep}\"]\n"),
        ] {
            assert!(load(&text, "t").is_ok(), "{text}: {:?}", load(&text, "t"));
        }
        // Thirty levels are fine, thirty-three are not; anchors and tags do not hide one.
        assert!(load(&format!("a: {}{}\n", "[".repeat(30), "]".repeat(30)), "t").is_ok());
        refused(&format!("a: {}\n", "[&x ".repeat(33)));
        refused(&format!("a: &x {}\n", "[".repeat(33)));
    }
}
