//! The recommendations as a plain-text table for terminals, with the notes
//! that say how to read it, the importance and the warnings.

use crate::format::{fmt_num, fmt_spread};
use crate::space::{Space, Value};

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
        let widths: Vec<usize> =
            (0..width).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
        for (i, row) in rows.iter().enumerate() {
            let line: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            out.push_str(line.join("  ").trim_end());
            out.push('\n');
            if i == 0 {
                out.push_str(&widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "));
                out.push('\n');
            }
        }
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
