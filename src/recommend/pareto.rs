//! The recommendations of a Pareto study: the feasible configurations no other beats in every
//! objective (the front), each with every objective, its change against the baseline per
//! objective and what it trades; the knee and the best per objective marked; the hypervolume
//! and the reference point it is measured from; and which front members dominate the baseline.
//!
//! Each distinct configuration counts with the mean of its evaluations. The reference point
//! is, per objective, the spec's `reference` when given, else the worse of the baseline's value
//! and the front's worst, moved out by a tenth of the front's range (so that the ends of the
//! front count too).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::objective::Objectives;
use crate::pareto::{self, Member};
use crate::space::Config;

/// One objective's change against the baseline.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectiveChange {
    /// The objective's metric.
    pub metric: String,
    /// Difference in the metric's units, signed so that positive is better.
    pub absolute: f64,
    /// `absolute` relative to the baseline's value, in percent (when that is non-zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
}

/// A configuration on the front.
#[derive(Debug, Clone, Serialize)]
pub struct ParetoPoint {
    /// The configuration's parameter values.
    pub config: Config,
    /// Every objective's value (mean over its evaluations), in the spec's order and the
    /// metrics' units.
    pub objectives: Vec<f64>,
    /// Mean of each metric over its evaluations.
    pub metrics: BTreeMap<String, f64>,
    /// How many complete trials evaluated it.
    pub evaluations: usize,
    /// Numbers of the trials that evaluated it.
    pub trials: Vec<u64>,
    /// The balanced trade-off: the point whose worst objective, each scaled to the front's
    /// range, is best (see [`crate::pareto::knee`]).
    pub knee: bool,
    /// The objectives it is the best configuration of the front for.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub best_for: Vec<String>,
    /// Against the baseline, per objective (absent without a feasible, evaluated baseline).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub versus_baseline: Vec<ObjectiveChange>,
    /// The objectives it is better in than the baseline.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub better: Vec<String>,
    /// The objectives it gives up against the baseline to be better in the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub worse: Vec<String>,
}

/// The trade-offs a Pareto study found.
#[derive(Debug, Clone, Serialize)]
pub struct ParetoFront {
    /// The objectives' metrics, in the spec's order (the order of every point's `objectives`).
    pub objectives: Vec<String>,
    /// The front: the knee first, then the best for each objective, then the rest each as far
    /// as it can be from those before it (objectives scaled to the front's range), so that
    /// the first few rows show the whole range of trade-offs.
    pub pareto_front: Vec<ParetoPoint>,
    /// The volume of objective space the front dominates up to the reference point, in the
    /// product of the objectives' units.
    pub hypervolume: f64,
    /// Per objective, in the metrics' units: where the hypervolume is measured from.
    pub reference_point: Vec<f64>,
    /// Whether the reference point came from the spec (`spec`) or was derived (`derived`).
    pub reference_source: &'static str,
    /// Positions in `pareto_front` of the points that beat the baseline in every objective
    /// (empty when none does or there is no feasible baseline).
    pub baseline_dominated_by: Vec<usize>,
}

/// A distinct configuration as the recommender sums it up.
pub(super) struct Candidate<'a> {
    pub config: &'a Config,
    pub metrics: BTreeMap<String, f64>,
    pub evaluations: usize,
    pub trials: &'a [u64],
}

/// The front of `candidates` (feasible, allowed ones), compared with the `baseline`'s mean
/// metrics when it is feasible.
pub(super) fn front(
    objectives: &Objectives,
    candidates: Vec<Candidate>,
    baseline: Option<&BTreeMap<String, f64>>,
) -> ParetoFront {
    let signed: Vec<Option<Vec<f64>>> = candidates.iter().map(|c| objectives.signed_values(&c.metrics).ok()).collect();
    let usable: Vec<usize> = (0..candidates.len()).filter(|&i| signed[i].is_some()).collect();
    let members: Vec<Member> = usable.iter().map(|&i| Member::feasible(signed[i].as_deref().unwrap_or(&[]))).collect();
    let on_front: Vec<usize> = pareto::non_dominated(&members).into_iter().map(|k| usable[k]).collect();
    let vectors: Vec<&[f64]> = on_front.iter().map(|&i| signed[i].as_deref().unwrap_or(&[])).collect();
    let m = objectives.objectives.len();
    let base_signed = baseline.and_then(|b| objectives.signed_values(b).ok());

    // Order: knee, the best per objective, then the rest as spread out as they can be.
    let knee = pareto::knee(&vectors);
    let best: Vec<Option<usize>> = (0..m)
        .map(|k| (0..vectors.len()).min_by(|&a, &b| vectors[a][k].total_cmp(&vectors[b][k]).then(a.cmp(&b))))
        .collect();
    let mut order: Vec<usize> = knee.into_iter().collect();
    for b in best.iter().flatten() {
        if !order.contains(b) {
            order.push(*b);
        }
    }
    spread(&vectors, &mut order);

    let unsign = |k: usize, v: f64| objectives.objectives[k].signed(v);
    let (reference, reference_source) = reference_point(objectives, &vectors, base_signed.as_deref());
    let hypervolume = pareto::hypervolume(&vectors, &reference);
    let names: Vec<String> = objectives.objectives.iter().map(|o| o.metric.clone()).collect();
    let pareto_front: Vec<ParetoPoint> = order
        .iter()
        .map(|&f| {
            let c = &candidates[on_front[f]];
            let v = vectors[f];
            let versus: Vec<ObjectiveChange> = base_signed
                .as_ref()
                .map(|b| {
                    (0..m)
                        .map(|k| {
                            let absolute = b[k] - v[k];
                            let base_value = unsign(k, b[k]);
                            ObjectiveChange {
                                metric: names[k].clone(),
                                absolute,
                                percent: (base_value != 0.0).then(|| 100.0 * absolute / base_value.abs()),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            ParetoPoint {
                config: (*c.config).clone(),
                objectives: (0..m).map(|k| unsign(k, v[k])).collect(),
                metrics: c.metrics.clone(),
                evaluations: c.evaluations,
                trials: c.trials.to_vec(),
                knee: knee == Some(f),
                best_for: (0..m).filter(|&k| best[k] == Some(f)).map(|k| names[k].clone()).collect(),
                better: versus.iter().filter(|d| d.absolute > 0.0).map(|d| d.metric.clone()).collect(),
                worse: versus.iter().filter(|d| d.absolute < 0.0).map(|d| d.metric.clone()).collect(),
                versus_baseline: versus,
            }
        })
        .collect();
    let baseline_dominated_by = match &base_signed {
        Some(b) => {
            order.iter().enumerate().filter(|(_, f)| pareto::dominates(vectors[**f], b)).map(|(i, _)| i).collect()
        }
        None => Vec::new(),
    };
    ParetoFront {
        objectives: names,
        pareto_front,
        hypervolume,
        reference_point: (0..m).map(|k| unsign(k, reference[k])).collect(),
        reference_source,
        baseline_dominated_by,
    }
}

/// Append to `order` (indices of `front` already chosen) every other point of the front,
/// each time the one farthest from its nearest chosen point, objectives scaled to the front's
/// range (ties to the lower index).
fn spread(front: &[&[f64]], order: &mut Vec<usize>) {
    let Some(first) = front.first() else { return };
    let m = first.len();
    let lo: Vec<f64> = (0..m).map(|k| front.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min)).collect();
    let hi: Vec<f64> = (0..m).map(|k| front.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max)).collect();
    let scaled: Vec<Vec<f64>> = front
        .iter()
        .map(|p| (0..m).map(|k| if hi[k] > lo[k] { (p[k] - lo[k]) / (hi[k] - lo[k]) } else { 0.0 }).collect())
        .collect();
    let distance =
        |a: usize, b: usize| -> f64 { scaled[a].iter().zip(&scaled[b]).map(|(x, y)| (x - y) * (x - y)).sum() };
    let mut nearest: Vec<f64> =
        (0..front.len()).map(|i| order.iter().map(|&c| distance(i, c)).fold(f64::INFINITY, f64::min)).collect();
    if order.is_empty() {
        order.push(0);
        nearest = (0..front.len()).map(|i| distance(i, 0)).collect();
    }
    while order.len() < front.len() {
        let next = (0..front.len())
            .filter(|i| !order.contains(i))
            .max_by(|&a, &b| nearest[a].total_cmp(&nearest[b]).then(b.cmp(&a)))
            .expect("a point is left");
        order.push(next);
        for (i, d) in nearest.iter_mut().enumerate() {
            *d = d.min(distance(i, next));
        }
    }
}

/// The reference point in signed units (lower is better), and where it came from.
fn reference_point(objectives: &Objectives, front: &[&[f64]], baseline: Option<&[f64]>) -> (Vec<f64>, &'static str) {
    let given: Vec<Option<f64>> = objectives.objectives.iter().map(|o| o.reference.map(|r| o.signed(r))).collect();
    let all_given = given.iter().all(Option::is_some);
    let point = given
        .iter()
        .enumerate()
        .map(|(k, g)| {
            g.unwrap_or_else(|| {
                let lo = front.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min);
                let hi = front.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max);
                let worst = baseline.map_or(hi, |b| b[k].max(hi));
                let range = if hi > lo { hi - lo } else { worst.abs().max(1.0) * 0.1 };
                worst + 0.1 * range
            })
        })
        .collect();
    (point, if all_given { "spec" } else { "derived" })
}
