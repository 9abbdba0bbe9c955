//! Reading a run's metrics: the last JSON object line of stdout, or a JSON
//! file the program wrote; NaN, infinities and non-numbers are refused with
//! the metric's name.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::SystemTime;

use super::process::{Captured, clip};

const NAN_MARK: &str = "\u{1}NaN";
const INF_MARK: &str = "\u{1}Infinity";
const NEG_INF_MARK: &str = "\u{1}-Infinity";

/// Parse a JSON object of metrics. `None` when `text` is not a JSON object
/// (Python's bare `NaN` / `Infinity` tokens are understood, to say so).
fn parse_object(text: &str) -> Option<std::result::Result<BTreeMap<String, f64>, String>> {
    let value: serde_json::Value = serde_json::from_str(text).ok().or_else(|| {
        let relaxed = relax_json(text)?;
        serde_json::from_str(&relaxed).ok()
    })?;
    let serde_json::Value::Object(map) = value else { return None };
    let mut metrics = BTreeMap::new();
    let mut bad = Vec::new();
    for (name, v) in map {
        let x = match &v {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) if s == NAN_MARK => Some(f64::NAN),
            serde_json::Value::String(s) if s == INF_MARK => Some(f64::INFINITY),
            serde_json::Value::String(s) if s == NEG_INF_MARK => Some(f64::NEG_INFINITY),
            _ => None,
        };
        match x {
            Some(x) if x.is_nan() => bad.push(format!("`{name}` is NaN")),
            Some(x) if x.is_infinite() => {
                bad.push(format!("`{name}` is {}infinite", if x < 0.0 { "negative " } else { "" }))
            }
            Some(x) => {
                metrics.insert(name, x);
            }
            None => bad.push(format!("`{name}` is not a number (got {})", clip(&v.to_string()))),
        }
    }
    Some(if !bad.is_empty() {
        Err(format!("metric {}", bad.join(", metric ")))
    } else if metrics.is_empty() {
        Err("reported an empty metrics object".to_string())
    } else {
        Ok(metrics)
    })
}

/// Replace bare `NaN`, `Infinity`, `-Infinity` outside strings by marker
/// strings; `None` when there was none.
fn relax_json(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped, mut changed) = (false, false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let token = [("NaN", NAN_MARK), ("Infinity", INF_MARK), ("-Infinity", NEG_INF_MARK)]
                .into_iter()
                .find(|(t, _)| rest.starts_with(t));
            if let Some((t, mark)) = token {
                out.push_str(&serde_json::Value::String(mark.to_string()).to_string());
                rest = &rest[t.len()..];
                changed = true;
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some(out)
}

pub(super) fn stdout_metrics(stdout: &Captured) -> std::result::Result<BTreeMap<String, f64>, String> {
    let lines = stdout.lines();
    let mut malformed: Option<&str> = None;
    for line in lines.iter().rev() {
        let l = line.trim();
        if !l.starts_with('{') {
            continue;
        }
        match parse_object(l) {
            Some(result) => return result.map_err(|e| format!("{e} (stdout line `{}`)", clip(l))),
            None if l.ends_with('}') && malformed.is_none() => malformed = Some(l),
            None => {}
        }
    }
    let mut msg = if stdout.total == 0 {
        "printed nothing on stdout; expected a JSON object line of metrics like {\"latency_ms\": 12.5}".to_string()
    } else {
        let last = lines.iter().rev().find(|l| !l.trim().is_empty()).map(|l| clip(l.trim())).unwrap_or_default();
        format!(
            "printed no JSON object line on stdout ({} bytes{}; last line `{last}`); expected a line like {{\"latency_ms\": 12.5}}",
            stdout.total,
            if stdout.truncated() { ", only the last part kept" } else { "" }
        )
    };
    if let Some(m) = malformed {
        msg.push_str(&format!("; `{}` looks like one but is not valid JSON", clip(m)));
    }
    Err(msg)
}

/// Enough of a file's state to tell whether a run rewrote it.
#[derive(Debug, PartialEq)]
pub(super) enum FileState {
    Absent,
    Present { modified: Option<SystemTime>, len: u64, head: Vec<u8> },
}

impl FileState {
    pub(super) fn of(path: &Path) -> FileState {
        match std::fs::metadata(path) {
            Err(_) => FileState::Absent,
            Ok(m) => {
                let head = std::fs::File::open(path)
                    .and_then(|f| {
                        let mut v = Vec::new();
                        f.take(64 * 1024).read_to_end(&mut v)?;
                        Ok(v)
                    })
                    .unwrap_or_default();
                FileState::Present { modified: m.modified().ok(), len: m.len(), head }
            }
        }
    }
}

pub(super) fn read_metrics_file(
    path: &Path,
    before: &FileState,
    cap: usize,
) -> std::result::Result<BTreeMap<String, f64>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("did not write its metrics file {shown} ({e})"))?;
    if meta.len() > cap as u64 {
        return Err(format!("metrics file {shown} is {} bytes, more than the {cap} byte cap", meta.len()));
    }
    if before != &FileState::Absent && FileState::of(path) == *before {
        return Err(format!("did not write its metrics file {shown} (unchanged since before the run)"));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("could not read its metrics file {shown}: {e}"))?;
    let text = String::from_utf8_lossy(&bytes);
    let text = text.trim();
    match parse_object(text) {
        Some(result) => result.map_err(|e| format!("{e} (metrics file {shown})")),
        None => Err(format!(
            "metrics file {shown} is not a JSON object of metrics like {{\"latency_ms\": 12.5}} (starts with `{}`)",
            clip(text.lines().next().unwrap_or(""))
        )),
    }
}
