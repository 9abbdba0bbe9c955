//! Tests of the ranking, the evidence and the table.

use super::*;
use crate::objective::{Constraint, Direction, Objective};
use crate::space::{Domain, Param, Value};

fn space() -> Space {
    Space {
        params: vec![Param {
            name: "n".into(),
            domain: Domain::Int { low: 1, high: 10, log: false, step: 1 },
            default: Some(Value::Int(5)),
            when: vec![],
            risky: vec![],
        }],
        relations: vec![],
    }
}

fn trial(number: u64, n: i64, metrics: &[(&str, f64)]) -> Trial {
    Trial {
        number,
        batch: number,
        ticket: None,
        x: vec![(n as f64 - 0.5) / 10.0], // where n encodes in 1..=10
        config: Config::from([("n".to_string(), Value::Int(n))]),
        state: TrialState::Complete,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        elapsed_s: None,
        epoch: 0,
        baseline: n == 5,
        confirm: false,
    }
}

fn objectives(direction: Direction) -> Objectives {
    Objectives {
        objectives: vec![Objective { weight: 2.0, ..Objective::new("lat", direction) }],
        constraints: vec![Constraint::parse("err <= 0.1").unwrap()],
        pareto: false,
    }
}

#[test]
fn ranks_distinct_feasible_configs_with_improvement_over_the_baseline() {
    let trials = vec![
        trial(0, 5, &[("lat", 10.0), ("err", 0.0)]), // baseline
        trial(1, 3, &[("lat", 7.0), ("err", 0.0)]),
        trial(2, 3, &[("lat", 9.0), ("err", 0.0)]), // same config again: mean 8
        trial(3, 1, &[("lat", 1.0), ("err", 0.5)]), // best latency but infeasible
        trial(4, 8, &[("lat", 12.0), ("err", 0.0)]),
    ];
    let r = recommend("s", &space(), &objectives(Direction::Minimize), &trials, 10);
    let order: Vec<i64> = r.recommendations.iter().map(|x| x.config["n"].as_f64().unwrap() as i64).collect();
    assert_eq!(order, vec![3, 8], "infeasible n=1 is never recommended, the baseline n=5 has its own row");
    let best = &r.recommendations[0];
    assert_eq!((best.value, best.evaluations, best.trials.clone()), (8.0, 2, vec![1, 2]));
    assert_eq!(best.value_std, Some(2f64.sqrt()));
    let imp = best.improvement.as_ref().unwrap();
    assert_eq!((imp.absolute, imp.percent), (2.0, Some(20.0)));
    let worse = r.recommendations[1].improvement.as_ref().unwrap();
    assert_eq!((worse.absolute, worse.percent), (-2.0, Some(-20.0)));
    assert_eq!(r.baseline.as_ref().unwrap().value, 10.0);
}

#[test]
fn maximized_metrics_improve_upwards() {
    let trials = vec![trial(0, 5, &[("lat", 100.0), ("err", 0.0)]), trial(1, 2, &[("lat", 150.0), ("err", 0.0)])];
    let r = recommend("s", &space(), &objectives(Direction::Maximize), &trials, 1);
    assert_eq!(r.recommendations.len(), 1);
    let top = &r.recommendations[0];
    assert_eq!(top.value, 150.0);
    let imp = top.improvement.as_ref().unwrap();
    assert_eq!((imp.absolute, imp.percent), (50.0, Some(50.0)));
}

#[test]
fn the_model_predicts_recommendations_and_ranks_parameter_importance() {
    // Two ints; only `a` matters: lat = (a - 7)^2.
    let int = |name: &str| Param {
        name: name.into(),
        domain: Domain::Int { low: 1, high: 10, log: false, step: 1 },
        default: None,
        when: vec![],
        risky: vec![],
    };
    let space = Space { params: vec![int("a"), int("b")], relations: vec![] };
    let mut trials = Vec::new();
    for i in 0..30u64 {
        let (a, b) = (1 + (i * 7 % 10) as i64, 1 + (i * 3 % 10) as i64);
        let config = Config::from([("a".to_string(), Value::Int(a)), ("b".to_string(), Value::Int(b))]);
        let lat = ((a - 7) * (a - 7)) as f64;
        let mut t = trial(i, 0, &[("lat", lat), ("err", 0.0)]);
        t.x = space.encode(&config).unwrap();
        t.config = config;
        t.baseline = false;
        trials.push(t);
    }
    let recs = recommend("s", &space, &objectives(Direction::Minimize), &trials, 3);
    assert_eq!(recs.importance[0].param, "a", "{:?}", recs.importance);
    assert!(recs.importance[0].importance > 0.9, "{:?}", recs.importance);
    let best = &recs.recommendations[0];
    let p = best.predicted.as_ref().expect("a model with 30 trials");
    // The objective is 2·lat (weight 2); the best configs have lat = 0.
    assert!((p.mean - best.value).abs() < 0.5, "{p:?} vs {}", best.value);
    assert!(recs.table(&space).contains("parameter importance"));
    // Too few trials: no model, no importance.
    let few = recommend("s", &space, &objectives(Direction::Minimize), &trials[..4], 3);
    assert!(few.importance.is_empty() && few.recommendations[0].predicted.is_none());
}

fn floats(names: &[&str]) -> Space {
    let params = names
        .iter()
        .map(|n| Param {
            name: n.to_string(),
            domain: Domain::Float { low: 0.0, high: 1.0, log: false, step: None },
            default: None,
            when: vec![],
            risky: vec![],
        })
        .collect();
    Space { params, relations: Vec::new() }
}

/// A complete trial of `space` at `x` (unit cube = the values) with `lat`.
fn at(space: &Space, number: u64, x: &[f64], lat: f64) -> Trial {
    let config: Config = space.params.iter().zip(x).map(|(p, &v)| (p.name.clone(), Value::Float(v))).collect();
    let mut t = trial(number, 0, &[("lat", lat), ("err", 0.0)]);
    t.x = space.encode(&config).unwrap();
    t.config = config;
    t.baseline = false;
    t
}

/// Noise of sd ≈ 1 drawn from `k`.
fn noise(k: u64) -> f64 {
    let h = |j: u64| ((k * 2 + j).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * h(1).max(1e-12).ln()).sqrt() * (std::f64::consts::TAU * h(2)).cos()
}

#[test]
fn near_copies_are_one_candidate_and_values_are_shown_shortly() {
    let space = floats(&["a", "b"]);
    // Five probes of one point, then two real alternatives.
    let mut trials: Vec<Trial> =
        (0..5).map(|i| at(&space, i, &[0.4 + 1e-5 * i as f64, 0.6], 1.0 + 1e-3 * i as f64)).collect();
    trials.push(at(&space, 5, &[0.9, 0.1], 2.0));
    trials.push(at(&space, 6, &[0.1, 0.9], 3.0));
    let r = recommend("s", &space, &objectives(Direction::Minimize), &trials, 3);
    let values: Vec<f64> = r.recommendations.iter().map(|x| x.value).collect();
    assert_eq!(values, vec![1.0, 2.0, 3.0], "in the metric's units (the weight divided out)");
    assert_eq!(r.recommendations[0].similar, 4);
    let table = r.table(&space);
    assert!(table.contains("+4 similar") && !table.contains("0.40001"), "{table}");
}

#[test]
fn on_a_noisy_study_a_lucky_single_value_does_not_rank_first() {
    let space = floats(&["a"]);
    let truth = |a: f64| 40.0 * (a - 0.5).powi(2);
    let mut trials: Vec<Trial> = Vec::new();
    // A grid measured once each, and the optimum measured five times.
    for i in 0..21u64 {
        let a = i as f64 / 20.0;
        trials.push(at(&space, i, &[a], truth(a) + noise(i)));
    }
    for k in 0..5u64 {
        trials.push(at(&space, 21 + k, &[0.5], truth(0.5) + noise(21 + k)));
    }
    // One far point that measured 9 below its truth (7.4 above the optimum): the lowest value seen.
    trials.push(at(&space, 26, &[0.93], truth(0.93) - 9.0));
    let r = recommend("s", &space, &objectives(Direction::Minimize), &trials, 3);
    assert!(r.noise.noisy, "{:?}", r.noise);
    let sd = r.noise.std.unwrap();
    assert!((0.5..3.0).contains(&sd), "pooled noise {sd} (sd 1, and one 9-sd outlier)");
    let best = &r.recommendations[0];
    assert_eq!(best.config["a"], Value::Float(0.5), "{:?}", r.recommendations);
    assert_eq!(best.evaluations, 6, "the grid point and five repeats");
    let [lo, hi] = best.value_interval.unwrap();
    assert!(lo < best.value && best.value < hi && lo < truth(0.5) + 2.0 && hi > truth(0.5) - 2.0);
    // The model's ± is for a new measurement: it covers the noise, not only the model.
    let p = best.predicted.as_ref().unwrap();
    assert!(p.interval[1] - p.interval[0] > 2.0 * 1.6 * p.noise_std, "{p:?}");
    let lucky = r.recommendations.iter().find(|x| x.config["a"] == Value::Float(0.93));
    assert!(lucky.is_none_or(|l| l.rank > 1), "{:?}", r.recommendations);
}

#[test]
fn improvement_comes_with_an_interval_and_a_probability() {
    // Baseline n=5 measured 4 times at 10 ± 1, n=3 four times at 8 ± 1.
    let mut trials = Vec::new();
    for k in 0..4u64 {
        trials.push(trial(2 * k, 5, &[("lat", 10.0 + noise(k)), ("err", 0.0)]));
        trials.push(trial(2 * k + 1, 3, &[("lat", 8.0 + noise(100 + k)), ("err", 0.0)]));
    }
    let r = recommend("s", &space(), &objectives(Direction::Minimize), &trials, 3);
    let imp = r.recommendations[0].improvement.as_ref().unwrap();
    let [lo, hi] = imp.interval.unwrap();
    assert!(lo < imp.absolute && imp.absolute < hi, "{imp:?}");
    let [plo, phi] = imp.interval_percent.unwrap();
    let base = r.baseline.as_ref().unwrap().value;
    assert!((plo - 100.0 * lo / base).abs() < 1e-9 && (phi - 100.0 * hi / base).abs() < 1e-9, "{imp:?}");
    assert!(imp.probability_better.unwrap() > 0.9, "{imp:?}");
    assert_eq!(r.better_than_baseline, Some(true));
    let table = r.table(&space());
    assert!(table.contains("P(better)") && table.contains(" ±"), "{table}");
}

#[test]
fn warnings_name_what_deserves_a_second_look() {
    // `cost` never varies; the baseline failed; nothing is clearly better.
    let objectives = Objectives {
        objectives: vec![Objective::new("lat", Direction::Minimize), Objective::new("cost", Direction::Minimize)],
        constraints: vec![],
        pareto: false,
    };
    let mut failed = trial(0, 5, &[]);
    failed.state = TrialState::Failed { reason: "exit 127: ./bench: not found".into() };
    let mut trials = vec![failed];
    trials.extend([1u64, 2, 3, 4, 6].map(|i| trial(i, i as i64, &[("lat", i as f64), ("cost", 0.0)])));
    let r = recommend("s", &space(), &objectives, &trials, 3);
    let kinds: Vec<WarningKind> = r.warnings.iter().map(|w| w.kind).collect();
    assert_eq!(kinds, vec![WarningKind::ConstantObjective, WarningKind::BaselineFailed], "{:?}", r.warnings);
    assert!(r.warnings[0].message.contains("`cost` was 0 in all 5"), "{}", r.warnings[0].message);
    assert!(r.warnings[1].message.contains("not found"), "{}", r.warnings[1].message);
    assert!(r.table(&space()).contains("warning: objective `cost`"));
    // A baseline as good as the rest: no clear gain.
    let same: Vec<Trial> = (0..6u64)
        .map(|i| trial(i, if i % 2 == 0 { 5 } else { 3 }, &[("lat", 10.0 + noise(i)), ("err", 0.0)]))
        .collect();
    let r = recommend("s", &space(), &self::objectives(Direction::Minimize), &same, 3);
    assert_eq!(r.better_than_baseline, Some(false));
    assert!(r.warnings.iter().any(|w| w.kind == WarningKind::NoClearGain), "{:?}", r.warnings);
    assert!(r.table(&space()).contains("unclear"), "{}", r.table(&space()));
}

/// Trials of `f` on the unit cube of `d` dimensions: most of them crowded around `centre` (as
/// an optimizer leaves them), the rest spread out.
fn clustered(space: &Space, f: &dyn Fn(&[f64]) -> f64, centre: f64) -> Vec<Trial> {
    let d = space.dim();
    (0..300u64)
        .map(|i| {
            let x: Vec<f64> = if i % 10 < 7 {
                (0..d).map(|j| (centre + 0.03 * noise(i * 8 + j as u64)).clamp(0.0, 1.0)).collect()
            } else {
                crate::cube::sobol_point(i, d, 3)
            };
            at(space, i, &x, f(&x))
        })
        .collect()
}

#[test]
fn importance_does_not_depend_on_where_the_trials_crowd() {
    let space = floats(&["a", "b", "c", "d"]);
    let sphere = |x: &[f64]| x.iter().map(|v| (v - 0.3).powi(2)).sum::<f64>();
    // A cone (Ackley's global shape): symmetric, not separable.
    let cone = |x: &[f64]| sphere(x).sqrt();
    for (name, f, centre) in [("sphere", &sphere as &dyn Fn(&[f64]) -> f64, 0.3), ("cone", &cone, 0.3)] {
        let r = recommend("s", &space, &objectives(Direction::Minimize), &clustered(&space, f, centre), 3);
        let shares: Vec<f64> = r.importance.iter().map(|i| i.importance).collect();
        assert_eq!(shares.len(), 4);
        for s in &shares {
            assert!((s - 0.25).abs() < 0.05, "{name}: {:?}", r.importance);
        }
        // Near the best the parameters are alike too (a symmetric function is symmetric there).
        let near: Vec<f64> = r.importance.iter().map(|i| i.near_best.unwrap()).collect();
        let (lo, hi) = near.iter().fold((1.0f64, 0.0f64), |(l, h), &v| (l.min(v), h.max(v)));
        assert!(hi - lo < 0.06 && lo > 0.05, "{name} near the best: {:?}", r.importance);
    }
}

#[test]
fn risky_choices_are_left_out_unless_allowed() {
    let mut space = space();
    space.params[0].risky = vec![Value::Int(9)];
    // n = 9 is the best by far, and risky.
    let trials: Vec<Trial> = [5i64, 9, 3, 7]
        .iter()
        .enumerate()
        .map(|(i, &n)| trial(i as u64, n, &[("lat", if n == 9 { 1.0 } else { n as f64 }), ("err", 0.0)]))
        .collect();
    let objectives = objectives(Direction::Minimize);
    let safe = recommend("s", &space, &objectives, &trials, 5);
    let ns: Vec<&Value> = safe.recommendations.iter().map(|r| &r.config["n"]).collect();
    assert_eq!(ns, vec![&Value::Int(3), &Value::Int(7)], "n = 5 is the baseline");
    let risky = safe.risky_best.as_ref().expect("the best risky configuration is reported");
    assert_eq!((risky.value, risky.risky[0].param.as_str()), (1.0, "n"));
    assert!(safe.table(&space).contains("not recommended: the best configuration with risky choices (n=9)"));
    let mut r = Recommender::new(&space, &objectives).allow_risky(true);
    trials.iter().for_each(|t| r.add(t));
    let all = r.finish("s", 5);
    assert_eq!(all.recommendations[0].config["n"], Value::Int(9));
    assert!(all.risky_best.is_none());
}

#[test]
fn after_a_confirmation_only_a_clearly_better_new_measurement_goes_first() {
    let confirmed = |number: u64, round: u64, n: i64, lat: f64| Trial {
        batch: round,
        confirm: true,
        ..trial(number, n, &[("lat", lat), ("err", 0.0)])
    };
    let mut trials = vec![trial(0, 5, &[("lat", 10.0), ("err", 0.0)]), trial(1, 3, &[("lat", 8.0), ("err", 0.0)])];
    for (k, (base, cand)) in [(10.05, 8.02), (9.95, 7.98), (10.0, 8.05)].into_iter().enumerate() {
        let round = 100 + k as u64;
        trials.push(confirmed(2 + 2 * k as u64, round, 5, base));
        trials.push(confirmed(3 + 2 * k as u64, round, 3, cand));
    }
    // The search after the phase: n=9 measured once a hair better than the confirmed n=3 (well
    // within the noise), n=8 measured once far better than anything the noise could make.
    trials.push(trial(8, 9, &[("lat", 7.99), ("err", 0.0)]));
    let r = recommend("s", &space(), &objectives(Direction::Minimize), &trials, 10);
    let order: Vec<i64> = r.recommendations.iter().map(|x| x.config["n"].as_f64().unwrap() as i64).collect();
    assert_eq!(order[0], 3, "one lucky-looking value does not displace the confirmed leader: {order:?}");
    trials.push(trial(9, 8, &[("lat", 2.0), ("err", 0.0)]));
    let r = recommend("s", &space(), &objectives(Direction::Minimize), &trials, 10);
    let order: Vec<i64> = r.recommendations.iter().map(|x| x.config["n"].as_f64().unwrap() as i64).collect();
    assert_eq!(&order[..2], &[8, 3], "a clear improvement goes first, the confirmed leader second: {order:?}");
}

#[test]
fn a_pareto_study_recommends_its_front_against_the_baseline() {
    // Minimize latency, maximize throughput; n=5 is the baseline.
    let objectives = Objectives {
        objectives: vec![Objective::new("lat", Direction::Minimize), Objective::new("rps", Direction::Maximize)],
        constraints: vec![Constraint::parse("err <= 0.1").unwrap()],
        pareto: true,
    };
    let trials = vec![
        trial(0, 5, &[("lat", 10.0), ("rps", 100.0), ("err", 0.0)]), // baseline
        trial(1, 1, &[("lat", 4.0), ("rps", 60.0), ("err", 0.0)]),   // fastest, fewer rps
        trial(2, 3, &[("lat", 6.0), ("rps", 120.0), ("err", 0.0)]),  // beats the baseline in both
        trial(3, 3, &[("lat", 8.0), ("rps", 120.0), ("err", 0.0)]),  // same config: mean lat 7
        trial(4, 8, &[("lat", 20.0), ("rps", 200.0), ("err", 0.0)]), // most rps, slow
        trial(5, 9, &[("lat", 21.0), ("rps", 150.0), ("err", 0.0)]), // dominated by n=8
        trial(6, 2, &[("lat", 1.0), ("rps", 500.0), ("err", 0.9)]),  // best of all but infeasible
    ];
    let r = recommend("s", &space(), &objectives, &trials, 3);
    assert!(r.recommendations.is_empty(), "no single configuration is best in a Pareto study");
    let f = r.pareto.as_ref().expect("a front");
    let n: Vec<i64> = f.pareto_front.iter().map(|p| p.config["n"].as_f64().unwrap() as i64).collect();
    // Every non-dominated feasible configuration, whatever k is: the knee (n=3) first, then the
    // best latency (n=1) and the best throughput (n=8).
    assert_eq!(n, vec![3, 1, 8]);
    let knee = &f.pareto_front[0];
    assert!(knee.knee && knee.evaluations == 2);
    assert_eq!(knee.objectives, vec![7.0, 120.0], "means over evaluations, in the metrics' units");
    assert_eq!(knee.versus_baseline[0].percent, Some(30.0));
    assert_eq!(knee.versus_baseline[1].percent, Some(20.0));
    assert_eq!((knee.better.len(), knee.worse.len()), (2, 0));
    assert_eq!(f.pareto_front[1].best_for, vec!["lat".to_string()]);
    assert_eq!(
        (f.pareto_front[1].better.clone(), f.pareto_front[1].worse.clone()),
        (vec!["lat".into()], vec!["rps".into()])
    );
    assert_eq!(f.baseline_dominated_by, vec![0]);
    // The reference point: the baseline's or the front's worst, a tenth of the range further.
    assert_eq!(f.reference_source, "derived");
    assert!(
        (f.reference_point[0] - 21.6).abs() < 1e-9 && (f.reference_point[1] - 46.0).abs() < 1e-9,
        "{:?}",
        f.reference_point
    );
    let hv = crate::pareto::hypervolume(&[&[7.0, -120.0], &[4.0, -60.0], &[20.0, -200.0]], &[21.6, -46.0]);
    assert!((f.hypervolume - hv).abs() < 1e-9);
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["pareto_front"].as_array().unwrap().len(), 3);
    assert!(json["hypervolume"].is_number() && json["reference_point"].is_array());
    let table = r.table(&space());
    assert!(
        table.contains("front: 3 configurations") && table.contains("knee") && table.contains("best rps"),
        "{table}"
    );
}
