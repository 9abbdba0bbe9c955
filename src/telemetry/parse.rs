//! Reading series from CSV, JSON lines and Prometheus range-query JSON, with every bad row named.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDateTime};
use serde_json::Value;

use super::{BadRows, Series, TelemetryConfig};
use crate::error::{Error, Problem, ProblemList, Problems, Result};

const TIMESTAMP_FIELDS: [&str; 3] = ["timestamp", "ts", "time"];

const VALID_TIMESTAMP: &str =
    "expected `YYYY-MM-DD HH:MM:SS` (UTC), RFC 3339 with a zone like `2024-05-01T12:00:00Z`, or unix seconds";

/// A file format, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `.csv`: `timestamp,value` or `timestamp,metric_a,metric_b,...`.
    Csv,
    /// `.jsonl` / `.ndjson`: one JSON object per line.
    JsonLines,
    /// `.json`: a Prometheus range-query response.
    PrometheusJson,
}

impl Format {
    /// The format a path's extension names (any case); an unknown or missing extension is an
    /// error listing the accepted ones.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("csv") => Ok(Format::Csv),
            Some("jsonl" | "ndjson") => Ok(Format::JsonLines),
            Some("json") => Ok(Format::PrometheusJson),
            other => Err(Error::invalid(
                path.display().to_string(),
                "extension",
                format!(
                    "{} is not a telemetry format; expected .csv (timestamp,value or wide), \
                     .jsonl or .ndjson (JSON lines) or .json (Prometheus range query)",
                    match other {
                        Some(e) => format!("`.{e}`"),
                        None => "no extension".to_string(),
                    }
                ),
            )),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Csv => "CSV",
            Format::JsonLines => "JSON lines",
            Format::PrometheusJson => "Prometheus JSON",
        })
    }
}

/// Series as read from one file: in file order, not yet sorted or merged.
#[derive(Debug, Clone)]
pub struct Recording {
    /// Where it was read from (the path as given), for messages.
    pub source: String,
    /// The file's format.
    pub format: Format,
    /// Every series found in the file.
    pub series: Vec<Series>,
    /// Data rows seen (CSV records, non-blank JSON lines, Prometheus samples).
    pub rows_read: usize,
    /// Rows with at least one problem (dropped under [`BadRows::Skip`]).
    pub bad_rows: usize,
    /// What was wrong with the dropped rows (at most 50 listed, then a count).
    pub skipped: Vec<Problem>,
}

/// Reads one file, choosing the format by its extension.
pub fn read_file(path: &Path, config: &TelemetryConfig) -> Result<Recording> {
    let format = Format::from_path(path)?;
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(source.clone(), e))?;
    parse_str(&text, format, &source, config)
}

/// Parses `text` as `format`; `source` names the file in messages and gives single-value series
/// their name (its stem).
pub fn parse_str(text: &str, format: Format, source: &str, config: &TelemetryConfig) -> Result<Recording> {
    let mut c = Collector::new(source);
    match format {
        Format::Csv => read_csv(text, &mut c),
        Format::JsonLines => read_json_lines(text, &mut c),
        Format::PrometheusJson => read_prometheus(text, &mut c),
    }
    c.finish(format, config)
}

/// Parses a timestamp string; see the module docs for the accepted forms.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(t.and_utc().timestamp());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp());
    }
    s.parse::<f64>().ok().and_then(unix_seconds)
}

fn unix_seconds(x: f64) -> Option<i64> {
    // Beyond ±1e12 s (about 30 000 years) a number is not a unix time in seconds.
    (x.is_finite() && x.abs() < 1e12).then(|| x.round() as i64)
}

fn parse_value(s: &str) -> std::result::Result<f64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("missing value; expected a finite number like 12.5".into());
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("`{t}` is not finite; expected a finite number like 12.5")),
        Err(_) => Err(format!("`{t}` is not a number; expected a finite number like 12.5")),
    }
}

fn file_stem(source: &str) -> String {
    Path::new(source).file_stem().and_then(|s| s.to_str()).unwrap_or("value").to_string()
}

/// Gathers samples by series name in order of first appearance, and problems by row.
struct Collector {
    source: String,
    names: Vec<String>,
    index: HashMap<String, usize>,
    points: Vec<Vec<(i64, f64)>>,
    rows_read: usize,
    bad_rows: usize,
    problems: ProblemList,
    /// A problem with the file as a whole (empty, no header, wrong shape): no row can be read.
    fatal: Option<Problem>,
}

impl Collector {
    fn new(source: &str) -> Self {
        Collector {
            source: source.to_string(),
            names: Vec::new(),
            index: HashMap::new(),
            points: Vec::new(),
            rows_read: 0,
            bad_rows: 0,
            problems: ProblemList::default(),
            fatal: None,
        }
    }

    fn series(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.points.push(Vec::new());
        self.index.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }

    fn push(&mut self, series: usize, t: i64, v: f64) {
        self.points[series].push((t, v));
    }

    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(path, message);
    }

    fn fatal(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.fatal = Some(Problem::new(path, message));
    }

    fn listed(&self) -> Vec<Problem> {
        self.problems.listed()
    }

    fn finish(self, format: Format, config: &TelemetryConfig) -> Result<Recording> {
        let invalid = |items: Vec<Problem>| Error::Invalid(Problems { source: self.source.clone(), items });
        if let Some(p) = &self.fatal {
            let mut items = vec![p.clone()];
            items.extend(self.listed());
            return Err(invalid(items));
        }
        if self.problems.total() > 0 && config.bad_rows == BadRows::Reject {
            return Err(invalid(self.listed()));
        }
        let empty: Vec<&String> =
            self.names.iter().zip(&self.points).filter(|(_, p)| p.is_empty()).map(|(n, _)| n).collect();
        if self.points.iter().all(Vec::is_empty) {
            let mut items = vec![Problem::new(
                "file",
                format!(
                    "no usable row among {} data rows; expected at least one row with a valid timestamp and a finite value",
                    self.rows_read
                ),
            )];
            items.extend(self.listed());
            return Err(invalid(items));
        }
        if !empty.is_empty() {
            let mut items: Vec<Problem> =
                empty.iter().map(|n| Problem::new(format!("series `{n}`"), "no usable value in any row")).collect();
            items.extend(self.listed());
            return Err(invalid(items));
        }
        let skipped = self.listed();
        let series = self
            .names
            .into_iter()
            .zip(self.points)
            .map(|(name, points)| Series { kind: config.kind_of(&name), name, points })
            .collect();
        Ok(Recording {
            source: self.source,
            format,
            series,
            rows_read: self.rows_read,
            bad_rows: self.bad_rows,
            skipped,
        })
    }
}

/// The records of a CSV reader with their line numbers, blank lines left
/// out; an unreadable record is an `Err` with what is wrong, and an I/O
/// error ends the rows.
pub fn csv_rows<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
) -> impl Iterator<Item = (u64, std::result::Result<csv::StringRecord, String>)> + '_ {
    let mut done = false;
    std::iter::from_fn(move || {
        while !done {
            let mut record = csv::StringRecord::new();
            match reader.read_record(&mut record) {
                Ok(false) => done = true,
                Ok(true) if record.iter().all(str::is_empty) => {}
                Ok(true) => return Some((record.position().map_or(0, |p| p.line()), Ok(record))),
                Err(e) => {
                    done = matches!(e.kind(), csv::ErrorKind::Io(_));
                    return Some((e.position().map_or(0, |p| p.line()), Err(format!("unreadable row: {e}"))));
                }
            }
        }
        None
    })
}

fn read_csv(text: &str, c: &mut Collector) {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(true).flexible(true).trim(csv::Trim::All).from_reader(text.as_bytes());
    let header = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => return c.fatal("line 1", format!("unreadable header: {e}; expected `timestamp,value`")),
    };
    if header.iter().all(str::is_empty) {
        return c.fatal("line 1", "the file is empty; expected a header `timestamp,value` then one row per sample");
    }
    if header.len() < 2 {
        return c.fatal(
            "line 1",
            format!(
                "header `{}` has no value column; expected `timestamp,value` or `timestamp,metric_a,metric_b,...`",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        );
    }
    if parse_timestamp(&header[0]).is_some() {
        return c.fatal(
            "line 1",
            format!("`{}` looks like data, not a header; expected a header like `timestamp,value`", &header[0]),
        );
    }
    let stem = file_stem(&c.source);
    let columns: Vec<String> = header.iter().skip(1).map(str::to_string).collect();
    let mut bad_header = false;
    // A set, not a scan of the columns before: 100,000 columns took 12 s that way.
    let mut seen = std::collections::HashSet::new();
    for (i, name) in columns.iter().enumerate() {
        if name.is_empty() {
            c.problem(format!("line 1, column {}", i + 2), "empty column name; expected a metric name");
            bad_header = true;
        } else if !seen.insert(name.as_str()) {
            c.problem(format!("line 1, column `{name}`"), "duplicate column name; expected unique metric names");
            bad_header = true;
        }
    }
    if bad_header {
        return c.fatal("line 1", "the header is not usable; fix the column names listed below");
    }
    let series: Vec<usize> = if columns.len() == 1 && columns[0] == "value" {
        vec![c.series(&stem)]
    } else {
        columns.iter().map(|n| c.series(n)).collect()
    };
    let ts_name = header[0].to_string();

    for (line, row) in csv_rows(&mut reader) {
        let record = match row {
            Ok(record) => record,
            Err(message) => {
                c.rows_read += 1;
                c.bad_rows += 1;
                c.problem(format!("line {line}"), message);
                continue;
            }
        };
        c.rows_read += 1;
        let before = c.problems.total();
        let t = parse_timestamp(&record[0]);
        if t.is_none() {
            c.problem(
                format!("line {line}, column `{ts_name}`"),
                format!("`{}` is not a timestamp; {VALID_TIMESTAMP}", &record[0]),
            );
        }
        if record.len() > header.len() {
            c.problem(
                format!("line {line}"),
                format!("{} fields but the header has {}; expected one value per column", record.len(), header.len()),
            );
        }
        for (k, name) in columns.iter().enumerate() {
            let Some(cell) = record.get(k + 1) else {
                c.problem(
                    format!("line {line}, column `{name}`"),
                    format!("missing column (the row has {} of {} fields)", record.len(), header.len()),
                );
                continue;
            };
            match parse_value(cell) {
                Ok(v) => {
                    if let Some(t) = t {
                        c.push(series[k], t, v);
                    }
                }
                Err(m) => c.problem(format!("line {line}, column `{name}`"), m),
            }
        }
        if c.problems.total() > before {
            c.bad_rows += 1;
        }
    }
    if c.rows_read == 0 {
        c.fatal("file", "no data rows after the header on line 1; expected one row per sample");
    }
}

fn json_number(v: &Value) -> std::result::Result<f64, String> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()).ok_or_else(|| format!("{n} is not a finite number")),
        Value::String(s) => parse_value(s),
        other => Err(format!("{other} is not a number; expected a finite number like 12.5")),
    }
}

fn json_timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_f64().and_then(unix_seconds),
        Value::String(s) => parse_timestamp(s),
        _ => None,
    }
}

fn read_json_lines(text: &str, c: &mut Collector) {
    let stem = file_stem(&c.source);
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        c.rows_read += 1;
        let before = c.problems.total();
        read_json_line(raw, line, &stem, c);
        if c.problems.total() > before {
            c.bad_rows += 1;
        }
    }
    if c.rows_read == 0 {
        c.fatal(
            "file",
            "the file is empty; expected one JSON object per line like {\"timestamp\": ..., \"value\": ...}",
        );
    }
}

fn read_json_line(raw: &str, line: usize, stem: &str, c: &mut Collector) {
    let obj = match serde_json::from_str::<Value>(raw) {
        Ok(Value::Object(o)) => o,
        Ok(_) => {
            return c
                .problem(format!("line {line}"), "not a JSON object; expected {\"timestamp\": ..., \"value\": ...}");
        }
        Err(e) => {
            return c.problem(format!("line {line}"), format!("not valid JSON ({e}); expected one object per line"));
        }
    };
    let Some((ts_key, ts_value)) = TIMESTAMP_FIELDS.iter().find_map(|k| obj.get(*k).map(|v| (*k, v))) else {
        return c.problem(format!("line {line}"), "no timestamp; expected a field `timestamp`, `ts` or `time`");
    };
    let t = json_timestamp(ts_value);
    if t.is_none() {
        c.problem(
            format!("line {line}, field `{ts_key}`"),
            format!("{ts_value} is not a timestamp; {VALID_TIMESTAMP}"),
        );
    }
    if let Some(metric) = obj.get("metric") {
        let Value::String(name) = metric else {
            return c.problem(
                format!("line {line}, field `metric`"),
                format!("{metric} is not a string; expected a metric name"),
            );
        };
        let Some(value) = obj.get("value") else {
            return c.problem(format!("line {line}, field `value`"), "missing; a line with `metric` needs a `value`");
        };
        match json_number(value) {
            Ok(v) => {
                if let Some(t) = t {
                    let s = c.series(name);
                    c.push(s, t, v);
                }
            }
            Err(m) => c.problem(format!("line {line}, field `value`"), m),
        }
        return;
    }
    let mut found = false;
    for (key, value) in &obj {
        if TIMESTAMP_FIELDS.contains(&key.as_str()) {
            continue;
        }
        let number = match value {
            Value::Number(_) => json_number(value),
            // `value` is the sample itself, so a string there must be a number; elsewhere it is a label.
            Value::String(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_) if key == "value" => {
                json_number(value)
            }
            Value::Null => {
                found = true;
                continue;
            }
            _ => continue,
        };
        found = true;
        match number {
            Ok(v) => {
                if let Some(t) = t {
                    let s = c.series(if key == "value" { stem } else { key });
                    c.push(s, t, v);
                }
            }
            Err(m) => c.problem(format!("line {line}, field `{key}`"), m),
        }
    }
    if !found {
        c.problem(format!("line {line}"), "no numeric field; expected `value` or a metric field with a number");
    }
}

fn read_prometheus(text: &str, c: &mut Collector) {
    let doc: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) if text.trim().is_empty() => {
            return c.fatal("file", format!("the file is empty ({e}); expected a Prometheus range-query response"));
        }
        Err(e) => return c.fatal(format!("line {}, column {}", e.line(), e.column()), format!("not valid JSON: {e}")),
    };
    let status = doc.get("status").and_then(Value::as_str);
    if status != Some("success") {
        let why = doc.get("error").and_then(Value::as_str).unwrap_or("");
        return c.fatal("status", format!("{status:?} {why}; expected \"success\" (a Prometheus query response)"));
    }
    let kind = doc.pointer("/data/resultType").and_then(Value::as_str);
    if kind != Some("matrix") {
        return c.fatal(
            "data.resultType",
            format!("{kind:?}; expected \"matrix\" (the response of a range query, /api/v1/query_range)"),
        );
    }
    let Some(results) = doc.pointer("/data/result").and_then(Value::as_array) else {
        return c.fatal("data.result", "missing or not an array; expected a list of series");
    };
    for (r, result) in results.iter().enumerate() {
        let name = prometheus_name(result.get("metric"));
        let Some(values) = result.get("values").and_then(Value::as_array) else {
            c.problem(
                format!("data.result[{r}].values"),
                "missing or not an array; expected [[unix_seconds, \"value\"], ...]",
            );
            continue;
        };
        let s = c.series(&name);
        for (k, pair) in values.iter().enumerate() {
            c.rows_read += 1;
            let path = format!("data.result[{r}].values[{k}]");
            let Some([ts, value]) = pair.as_array().map(Vec::as_slice) else {
                c.bad_rows += 1;
                c.problem(path, format!("{pair} is not a pair; expected [unix_seconds, \"value\"]"));
                continue;
            };
            let before = c.problems.total();
            let t = json_timestamp(ts);
            if t.is_none() {
                c.problem(format!("{path}[0]"), format!("{ts} is not a timestamp; expected unix seconds"));
            }
            match json_number(value) {
                Ok(v) => {
                    if let Some(t) = t {
                        c.push(s, t, v);
                    }
                }
                Err(m) => c.problem(format!("{path}[1]"), m),
            }
            if c.problems.total() > before {
                c.bad_rows += 1;
            }
        }
    }
    if c.rows_read == 0 && c.problems.total() == 0 {
        c.fatal("data.result", "no samples; expected at least one series with values");
    }
}

/// `__name__{a="x",b="y"}`, labels sorted; `{a="x"}` without a name; `series` when there is nothing.
fn prometheus_name(metric: Option<&Value>) -> String {
    let Some(Value::Object(labels)) = metric else {
        return "series".to_string();
    };
    let name = labels.get("__name__").and_then(Value::as_str).unwrap_or("");
    let mut rest: Vec<(&String, String)> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
        .collect();
    rest.sort();
    let body: Vec<String> = rest.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    match (name.is_empty(), body.is_empty()) {
        (true, true) => "series".to_string(),
        (false, true) => name.to_string(),
        _ => format!("{name}{{{}}}", body.join(",")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_form() {
        assert_eq!(parse_timestamp("2014-04-10 00:04:00"), Some(1_397_088_240));
        assert_eq!(parse_timestamp("2014-04-10T02:04:00+02:00"), Some(1_397_088_240));
        assert_eq!(parse_timestamp("2014-04-10T00:04:00Z"), Some(1_397_088_240));
        assert_eq!(parse_timestamp("1397088240"), Some(1_397_088_240));
        assert_eq!(parse_timestamp("1397088239.6"), Some(1_397_088_240));
        assert_eq!(parse_timestamp("2014-04-10"), None);
        assert_eq!(parse_timestamp("2014-04-10T00:04:00"), None, "RFC 3339 needs a zone");
        assert_eq!(parse_timestamp("NaN"), None);
    }

    #[test]
    fn prometheus_names_sort_labels() {
        let m: Value = serde_json::json!({"job": "api", "__name__": "up", "instance": "a:9090"});
        assert_eq!(prometheus_name(Some(&m)), "up{instance=\"a:9090\",job=\"api\"}");
        assert_eq!(prometheus_name(Some(&serde_json::json!({"__name__": "up"}))), "up");
        assert_eq!(prometheus_name(Some(&serde_json::json!({}))), "series");
    }
}
