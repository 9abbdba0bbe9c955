//! `knobs evaluate`: score given configurations with a spec's evaluator,
//! without a study: the baseline, a recommendation, a what-if.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;

use crate::error::{Error, Result};
use crate::space::{Config, Value};
use crate::spec::Spec;
use crate::study::Evaluations;

/// Arguments of `knobs evaluate` (the option help says what each one does).
#[derive(Args, Debug)]
pub struct EvaluateArgs {
    /// The experiment spec (YAML) whose evaluator and objectives to use.
    pub spec: PathBuf,
    /// Configurations to score: a YAML/JSON mapping `name: value`, or a recommendations.yaml/json
    /// written by `knobs run` (each recommendation is scored; of a Pareto study, each point of its
    /// front). Repeatable.
    #[arg(long = "config", value_name = "FILE")]
    pub configs: Vec<PathBuf>,
    /// Set a parameter (value read as YAML: 12, 0.5, lru, true) in every `--config` configuration, or
    /// without `--config` in a copy of the baseline scored beside it. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Leave out the baseline (scored first by default when the space has defaults).
    #[arg(long)]
    pub no_baseline: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

/// One configuration to score, with where it came from.
struct Candidate {
    label: String,
    config: Config,
}

fn yaml_value(v: &serde_yaml::Value) -> Option<Value> {
    serde_yaml::from_value::<Value>(v.clone()).ok()
}

/// Read the configurations of one `--config` file.
fn read_configs(path: &Path) -> Result<Vec<Candidate>> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&shown, e))?;
    let root = crate::yaml::load(&text, &shown)?;
    let mapping_config = |m: &serde_yaml::Mapping, at: &str| -> Result<Config> {
        let mut config = Config::new();
        let mut bad = Vec::new();
        for (k, v) in m {
            let key = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
            match yaml_value(v) {
                Some(value) => {
                    config.insert(key, value);
                }
                None => bad.push(crate::error::Problem::new(format!("{at}{key}"), "must be a number, string or bool")),
            }
        }
        if bad.is_empty() {
            Ok(config)
        } else {
            Err(Error::Invalid(crate::error::Problems { source: shown.clone(), items: bad }))
        }
    };
    let Some(m) = root.as_mapping() else {
        return Err(Error::invalid(
            &shown,
            "(file)",
            "must be a mapping of parameter names to values, or recommendations",
        ));
    };
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("config").to_string();
    // A Pareto study's file lists its front under `pareto_front` (and no recommendations).
    let front = m.get("pareto_front").and_then(|v| v.as_sequence()).filter(|f| !f.is_empty());
    let (list, key) = match front {
        Some(f) => (Some(f), "pareto_front"),
        None => (m.get("recommendations").and_then(|v| v.as_sequence()), "recommendations"),
    };
    match list {
        Some(recs) => {
            let mut out = Vec::new();
            for (i, r) in recs.iter().enumerate() {
                let Some(c) = r.get("config").and_then(|c| c.as_mapping()) else {
                    return Err(Error::invalid(&shown, format!("{key}[{i}].config"), "missing"));
                };
                let rank = r.get("rank").and_then(|v| v.as_u64()).unwrap_or(i as u64 + 1);
                // results/<study>/recommendations.yaml → "<study> #1"; a front's knee says so.
                let study = path.parent().and_then(|d| d.file_name()).and_then(|n| n.to_str());
                let prefix = match (stem.as_str(), study) {
                    ("recommendations", Some(study)) => format!("{study} #"),
                    _ => format!("{stem} #"),
                };
                let knee = r.get("knee").and_then(|v| v.as_bool()) == Some(true);
                out.push(Candidate {
                    label: format!("{prefix}{rank}{}", if knee { " (knee)" } else { "" }),
                    config: mapping_config(c, &format!("{key}[{i}].config."))?,
                });
            }
            Ok(out)
        }
        None => Ok(vec![Candidate { label: stem, config: mapping_config(m, "")? }]),
    }
}

/// `name=value` → (name, value read as YAML).
fn parse_set(s: &str) -> Result<(String, Value)> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("--set `{s}`: write NAME=VALUE, e.g. --set pool_size=12")))?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(v).map_err(|e| Error::Config(format!("--set `{s}`: {e}")))?;
    let value = yaml_value(&yaml)
        .ok_or_else(|| Error::Config(format!("--set `{s}`: the value must be a number, string or bool")))?;
    Ok((k.trim().to_string(), value))
}

/// Runs `knobs evaluate`: returns exit code 1 when any configuration's evaluation failed, else 0.
pub fn evaluate_cmd(args: EvaluateArgs) -> Result<i32> {
    let spec = Spec::load(&args.spec)?;
    let sets: Vec<(String, Value)> = args.sets.iter().map(|s| parse_set(s)).collect::<Result<_>>()?;
    let baseline = spec.space.baseline();
    let mut candidates = Vec::new();
    if !args.no_baseline
        && let Some(b) = &baseline
    {
        candidates.push(Candidate { label: "baseline".into(), config: b.clone() });
    }
    let mut changed = Vec::new();
    for path in &args.configs {
        changed.extend(read_configs(path)?);
    }
    if changed.is_empty() && !sets.is_empty() {
        // A what-if: the baseline with the --set values.
        changed.push(Candidate { label: "with --set".into(), config: baseline.clone().unwrap_or_default() });
    }
    if candidates.is_empty() && changed.is_empty() {
        return Err(Error::Config(
            "nothing to evaluate: the space has no defaults (baseline); give --config FILE or --set NAME=VALUE".into(),
        ));
    }
    for c in &mut changed {
        for (k, v) in &sets {
            c.config.insert(k.clone(), v.clone());
        }
    }
    candidates.extend(changed);
    // Check every configuration against the space.
    let mut problems = Vec::new();
    for c in &mut candidates {
        match spec.space.check_config(&c.config) {
            Ok(checked) => c.config = checked,
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| crate::error::Problem::new(c.label.clone(), e.to_string())))
            }
        }
    }
    if !problems.is_empty() {
        return Err(Error::Invalid(crate::error::Problems { source: "configurations".into(), items: problems }));
    }
    // One at a time, so that configurations measured on a real system do not load it together.
    let evaluator = Arc::from(spec.evaluator.build(&spec.space, &spec.base_dir)?);
    let evals = Evaluations::new(evaluator, 1, &spec.name, spec.base_dir.clone())?;
    let mut rows = Vec::new();
    for (i, c) in candidates.iter().enumerate() {
        let row = match evals.evaluate(i as u64, &c.config) {
            Ok(m) => {
                let outcome = spec.objectives.score(&m.metrics);
                serde_json::json!({
                    "label": c.label,
                    "config": c.config,
                    "metrics": m.metrics,
                    "objective": outcome.as_ref().ok().map(|o| spec.objectives.display_value(o.score)),
                    "feasible": outcome.as_ref().ok().map(|o| o.feasible()),
                    "seconds": m.elapsed.as_secs_f64(),
                })
            }
            Err(e) => serde_json::json!({"label": c.label, "config": c.config, "error": e.to_string()}),
        };
        rows.push(row);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"study": spec.name, "evaluations": rows}))
                .map_err(Error::json)?
        );
    } else {
        print_table(&spec, &rows);
    }
    Ok(if rows.iter().any(|r| r.get("error").is_some()) { 1 } else { 0 })
}

fn print_table(spec: &Spec, rows: &[serde_json::Value]) {
    let labels: Vec<String> = rows.iter().map(|r| r["label"].as_str().unwrap_or("?").to_string()).collect();
    let mut names: Vec<String> = spec.space.params.iter().map(|p| p.name.clone()).collect();
    let mut metric_names: Vec<String> = Vec::new();
    for r in rows {
        if let Some(m) = r["metrics"].as_object() {
            for k in m.keys() {
                if !metric_names.contains(k) {
                    metric_names.push(k.clone());
                }
            }
        }
    }
    let width = names.iter().chain(&metric_names).map(String::len).max().unwrap_or(8).max(9);
    let col = labels.iter().map(String::len).max().unwrap_or(8).max(12);
    let line = |name: &str, cells: Vec<String>| {
        let mut s = format!("{name:<width$}");
        for c in cells {
            s.push_str(&format!("  {c:>col$}"));
        }
        println!("{s}");
    };
    line("", labels.clone());
    let cell = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN) + 0.0; // no "-0"
            if x == x.trunc() && x.abs() < 1e9 { format!("{x:.0}") } else { format!("{x:.4}") }
        }
        serde_json::Value::Null => "-".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for n in names.drain(..) {
        line(&n, rows.iter().map(|r| cell(&r["config"][&n])).collect());
    }
    line(&"-".repeat(width), vec!["-".repeat(col); rows.len()]);
    line("objective", rows.iter().map(|r| cell(&r["objective"])).collect());
    line("feasible", rows.iter().map(|r| cell(&r["feasible"])).collect());
    for m in &metric_names {
        line(m, rows.iter().map(|r| cell(&r["metrics"][m])).collect());
    }
    println!("objective: {}", spec.objectives.describe());
    for r in rows {
        if let Some(e) = r.get("error") {
            println!("{}: failed: {}", r["label"].as_str().unwrap_or("?"), e.as_str().unwrap_or(""));
        }
    }
}
