//! The recommendations as a plain-text table for terminals, with the notes
//! that say how to read it, the importance and the warnings.

use crate::format::{fmt_num, fmt_spread};
use crate::space::{Space, Value};

use super::pareto::ParetoFront;
use super::{CONFIDENT, Improvement, NoiseSource, Recommendation, Recommendations};

fn fmt_value(v: &Value) -> String {
    match v {
        Value::Float(f) => fmt_num(*f),
        other => other.to_string(),
    }
}

/// `12.3` as `+12.3%`.
fn pct(p: f64) -> String {
    format!("{p:+.1}%")
}

/// The "vs baseline" cell: the improvement with its interval when it is clear either way,
/// only the interval when it is not.
fn versus(imp: &Improvement, noisy: bool) -> String {
    let point = imp.percent.map_or_else(|| format!("{:+}", fmt_num(imp.absolute)), pct);
    let interval = match (imp.interval_percent, imp.interval) {
        _ if !noisy => None,
        (Some([lo, hi]), _) => Some(format!("[{}, {}]", pct(lo), pct(hi))),
        (None, Some([lo, hi])) => Some(format!("[{:+}, {:+}]", fmt_num(lo), fmt_num(hi))),
        _ => None,
    };
    match (imp.probability_better, interval) {
        (Some(p), Some(i)) if p < CONFIDENT && p > 1.0 - CONFIDENT => format!("unclear {i}"),
        (_, Some(i)) => format!("{point} {i}"),
        (_, None) => point,
    }
}

/// `mean ±half-width` of an interval around `mean`.
fn plus_minus(mean: f64, interval: Option<[f64; 2]>) -> String {
    match interval {
        Some([lo, hi]) if hi > lo && (hi - lo) > 1e-9 * mean.abs() => {
            format!("{} ±{}", fmt_num(mean), fmt_spread((hi - lo) / 2.0))
        }
        _ => fmt_num(mean),
    }
}

fn note(r: &Recommendation) -> String {
    let choices: Vec<String> = r.best_with.iter().map(|c| format!("{}={}", c.param, fmt_value(&c.value))).collect();
    let mut parts: Vec<String> =
        if choices.is_empty() { vec![] } else { vec![format!("best with {}", choices.join(", "))] };
    if r.similar > 0 {
        parts.push(format!("+{} similar", r.similar));
    }
    parts.join("; ")
}

/// Rows (the first is the header) as aligned columns with a rule under the header.
fn grid(rows: &[Vec<String>]) -> String {
    let width = rows.iter().map(Vec::len).max().unwrap_or(0);
    let cell = |r: &Vec<String>, c: usize| r.get(c).map_or(0, |s| s.chars().count());
    let widths: Vec<usize> = (0..width).map(|c| rows.iter().map(|r| cell(r, c)).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
        if i == 0 {
            out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
            out.push('\n');
        }
    }
    out
}

/// At most this many points of a front are printed (all are in the YAML and JSON).
const FRONT_ROWS: usize = 15;

impl Recommendations {
    /// A plain-text table for terminals.
    pub fn table(&self, space: &Space) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "study {}: {} trials ({} complete, {} failed); objective: {}\n",
            self.study, self.trials, self.complete, self.failed, self.objective
        ));
        if !self.constraints.is_empty() {
            out.push_str(&format!("constraints: {}\n", self.constraints.join(", ")));
        }
        if let Some(front) = &self.pareto {
            out.push_str(&self.front_table(front, space));
            for w in &self.warnings {
                out.push_str(&format!("warning: {}\n", w.message));
            }
            return out;
        }
        let params: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
        let model = self.recommendations.iter().any(|r| r.predicted.is_some());
        let odds = self.noise.noisy
            && self
                .recommendations
                .iter()
                .any(|r| r.improvement.as_ref().is_some_and(|i| i.probability_better.is_some()));
        let notes = self.recommendations.iter().any(|r| !note(r).is_empty());
        let mut header: Vec<String> = vec!["rank".into(), "value".into(), "vs baseline".into()];
        if odds {
            header.push("P(better)".into());
        }
        header.push("evals".into());
        if model {
            header.push("model".into());
        }
        header.extend(params.iter().map(|p| p.to_string()));
        if notes {
            header.push("note".into());
        }
        let width = header.len();
        let mut rows: Vec<Vec<String>> = vec![header];
        let cells = |config: &crate::space::Config| -> Vec<String> {
            params.iter().map(|p| config.get(*p).map(fmt_value).unwrap_or_else(|| "-".into())).collect()
        };
        if let Some(b) = &self.baseline {
            let mut row = vec![
                "base".to_string(),
                format!(
                    "{}{}",
                    plus_minus(b.value, b.value_interval.filter(|_| self.noise.noisy)),
                    if b.feasible { "" } else { " (infeasible)" }
                ),
                "-".into(),
            ];
            if odds {
                row.push("".into());
            }
            row.push(b.evaluations.to_string());
            if model {
                row.push("".into());
            }
            row.extend(cells(&b.config));
            row.resize(width, String::new());
            rows.push(row);
        }
        for r in &self.recommendations {
            let mut row = vec![
                r.rank.to_string(),
                plus_minus(r.value, r.value_interval.filter(|_| self.noise.noisy)),
                r.improvement.as_ref().map_or("-".into(), |i| versus(i, self.noise.noisy)),
            ];
            if odds {
                let p = r.improvement.as_ref().and_then(|i| i.probability_better);
                row.push(p.map_or("-".into(), |p| format!("{p:.2}")));
            }
            row.push(r.evaluations.to_string());
            if model {
                row.push(r.predicted.as_ref().map_or("-".into(), |p| plus_minus(p.mean, Some(p.interval))));
            }
            row.extend(cells(&r.config));
            if notes {
                row.push(note(r));
            }
            rows.push(row);
        }
        out.push_str(&grid(&rows));
        if self.recommendations.is_empty() {
            out.push_str("no feasible configuration found yet\n");
        }
        if let Some(r) = &self.risky_best {
            let choices: Vec<String> = r.risky.iter().map(|c| format!("{}={}", c.param, fmt_value(&c.value))).collect();
            let gain = match r.improvement.as_ref().and_then(|i| i.percent) {
                Some(p) => format!(" ({} vs baseline)", pct(p)),
                None => String::new(),
            };
            out.push_str(&format!(
                "not recommended: the best configuration with risky choices ({}) measured {}{gain}; \
                 `recommend: {{allow_risky: true}}` or `knobs recommend --allow-risky` lists such configurations\n",
                choices.join(", "),
                fmt_num(r.value),
            ));
        }
        out.push_str(&self.legend(model, odds));
        for w in &self.warnings {
            out.push_str(&format!("warning: {}\n", w.message));
        }
        out
    }

    /// A Pareto study's front: one row per point (the knee and the best per objective
    /// first), every objective, the change against the baseline, the parameters.
    fn front_table(&self, front: &ParetoFront, space: &Space) -> String {
        let mut out = String::new();
        let names = &front.objectives;
        let reference: Vec<String> = front.reference_point.iter().map(|v| fmt_num(*v)).collect();
        out.push_str(&format!(
            "front: {} configuration{} no other beats in every objective; hypervolume {} up to ({}) ({})\n",
            front.pareto_front.len(),
            if front.pareto_front.len() == 1 { "" } else { "s" },
            fmt_num(front.hypervolume),
            reference.join(", "),
            if front.reference_source == "spec" { "the spec's reference point" } else { "derived reference point" }
        ));
        let params: Vec<&str> = space.params.iter().map(|p| p.name.as_str()).collect();
        let mut header: Vec<String> = vec!["#".into()];
        header.extend(names.iter().cloned());
        header.push("vs baseline".into());
        header.extend(params.iter().map(|p| p.to_string()));
        header.push("note".into());
        let mut rows = vec![header];
        let cells = |config: &crate::space::Config| -> Vec<String> {
            params.iter().map(|p| config.get(*p).map(fmt_value).unwrap_or_else(|| "-".into())).collect()
        };
        if let Some(b) = &self.baseline {
            let mut row = vec!["base".to_string()];
            row.extend(names.iter().map(|n| b.metrics.get(n).map_or("-".into(), |v| fmt_num(*v))));
            row.push(if b.feasible { "-".into() } else { "(infeasible)".into() });
            row.extend(cells(&b.config));
            rows.push(row);
        }
        for (i, p) in front.pareto_front.iter().take(FRONT_ROWS).enumerate() {
            let mut row = vec![(i + 1).to_string()];
            row.extend(p.objectives.iter().map(|v| fmt_num(*v)));
            let versus: Vec<String> = p
                .versus_baseline
                .iter()
                .map(|d| {
                    format!("{} {}", d.metric, d.percent.map_or_else(|| format!("{:+}", fmt_num(d.absolute)), pct))
                })
                .collect();
            row.push(if versus.is_empty() { "-".into() } else { versus.join(", ") });
            row.extend(cells(&p.config));
            let mut notes = Vec::new();
            if p.knee {
                notes.push("knee".to_string());
            }
            if !p.best_for.is_empty() {
                notes.push(format!("best {}", p.best_for.join(", ")));
            }
            if front.baseline_dominated_by.contains(&i) {
                notes.push("beats baseline in all".into());
            }
            row.push(notes.join("; "));
            rows.push(row);
        }
        out.push_str(&grid(&rows));
        if front.pareto_front.is_empty() {
            out.push_str("no feasible configuration found yet\n");
        } else if front.pareto_front.len() > FRONT_ROWS {
            out.push_str(&format!(
                "({} more on the front: every point is in recommendations.yaml and --json)\n",
                front.pareto_front.len() - FRONT_ROWS
            ));
        }
        match (&self.baseline, front.baseline_dominated_by.len()) {
            (Some(b), 0) if b.feasible => out.push_str(
                "baseline: no configuration found beats it in every objective; each point of the front trades \
                 one objective for another\n",
            ),
            (Some(b), n) if b.feasible => out.push_str(&format!(
                "baseline: {n} of the front beat{} it in every objective (marked)\n",
                if n == 1 { "s" } else { "" }
            )),
            _ => {}
        }
        out.push_str(
            "vs baseline: per objective, better than today's values by this much (positive = better); \
             knee: the most balanced trade-off\n",
        );
        out
    }

    fn legend(&self, model: bool, odds: bool) -> String {
        let mut out = String::new();
        let ci = format!("{:.0}%", 100.0 * super::COVERAGE);
        out.push_str(&format!(
            "value: mean over its evaluations{}\n",
            if self.noise.noisy { format!(", ± half its {ci} interval") } else { String::new() }
        ));
        out.push_str(&format!(
            "vs baseline: better than today's values (the spec's defaults) by this much, positive = better{}{}\n",
            if self.noise.noisy { format!(", with its {ci} interval") } else { String::new() },
            if odds { "; `unclear` when neither better nor worse with 80% probability" } else { "" }
        ));
        if odds {
            out.push_str("P(better): the probability that it beats the baseline\n");
        }
        let source = match self.noise.source {
            NoiseSource::Repeats => "repeated measurements",
            NoiseSource::Model => "the model",
            NoiseSource::RepeatsAndModel => "repeated measurements and the model",
            NoiseSource::Unknown | NoiseSource::Deterministic => "",
        };
        match self.noise.std {
            Some(s) if self.noise.noisy => out.push_str(&format!(
                "noise: one measurement varies by ±{} (one std, from {source}); ranked by the model's estimate, \
                 not by single lucky values\n",
                fmt_spread(s)
            )),
            Some(0.0) if self.noise.source == NoiseSource::Repeats => {
                out.push_str("noise: none (repeated measurements were identical)\n")
            }
            _ => {}
        }
        if model {
            out.push_str(&format!(
                "model: the Gaussian process's prediction for a new measurement, ± half its {ci} interval \
                 (model uncertainty and noise)\n"
            ));
        }
        if !self.importance.is_empty() {
            let near = self.importance.iter().any(|i| i.near_best.is_some());
            let parts: Vec<String> = self
                .importance
                .iter()
                .map(|i| match i.near_best {
                    Some(n) => format!("{} {:.0}% / {:.0}%", i.param, 100.0 * i.importance, 100.0 * n),
                    None => format!("{} {:.0}%", i.param, 100.0 * i.importance),
                })
                .collect();
            let rest = 1.0 - self.importance.iter().map(|i| i.importance).sum::<f64>();
            let pairs: Vec<String> = self
                .interactions
                .iter()
                .take(3)
                .map(|i| format!("{}×{} {:.0}%", i.params[0], i.params[1], 100.0 * i.importance))
                .collect();
            out.push_str(&format!(
                "parameter importance (share of the variation the model sees over the whole space{}): {}{}{}\n",
                if near { " / within 10% of each range around rank 1" } else { "" },
                parts.join(", "),
                if rest >= 0.005 { format!("; interactions {:.0}%", 100.0 * rest) } else { String::new() },
                if pairs.is_empty() { String::new() } else { format!(" ({})", pairs.join(", ")) }
            ));
        }
        out
    }
}
