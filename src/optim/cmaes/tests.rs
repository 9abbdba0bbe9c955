//! Unit tests of `cmaes`: convergence, restarts, polishing, pending
//! results and snapshots.

use super::*;

fn build(dims: Vec<Dim>, seed: u64, config: CmaEsConfig) -> CmaEs {
    CmaEs::new(&Problem::new(dims, seed), config).expect("valid config")
}

/// Drive for `budget` evaluations in batches of `batch`; returns the best value.
fn drive(opt: &mut CmaEs, f: &dyn Fn(&[f64]) -> f64, budget: usize, batch: usize) -> (f64, Vec<Candidate>) {
    let mut best = f64::INFINITY;
    let mut asked = Vec::new();
    while asked.len() < budget {
        let cands = opt.ask(batch.min(budget - asked.len())).unwrap();
        if cands.is_empty() {
            break;
        }
        let told: Vec<Observed> = cands
            .iter()
            .map(|c| {
                let v = f(&c.x);
                best = best.min(v);
                Observed::ok(Some(c.ticket), c.x.clone(), v)
            })
            .collect();
        opt.tell(&told).unwrap();
        asked.extend(cands);
    }
    (best, asked)
}

/// Ellipsoid with condition 1e6 in a rotated frame, optimum off-centre.
fn rotated_ellipsoid(x: &[f64]) -> f64 {
    let n = x.len();
    let z: Vec<f64> = x.iter().enumerate().map(|(i, v)| v - (0.7 - 0.04 * i as f64)).collect();
    // A fixed rotation: a product of Givens rotations on neighbours.
    let mut r = z.clone();
    for i in 0..n - 1 {
        let (c, s) = ((0.3 + i as f64).cos(), (0.3 + i as f64).sin());
        let (a, b) = (r[i], r[i + 1]);
        r[i] = c * a - s * b;
        r[i + 1] = s * a + c * b;
    }
    r.iter().enumerate().map(|(i, v)| 1e6f64.powf(i as f64 / (n - 1) as f64) * v * v).sum()
}

#[test]
fn converges_on_a_rotated_ellipsoid_to_high_precision() {
    let config = CmaEsConfig { restarts: Restarts::None, ..Default::default() };
    let mut opt = build(vec![Dim::Continuous; 8], 3, config);
    let (best, _) = drive(&mut opt, &rotated_ellipsoid, 12_000, 10);
    assert!(best < 1e-10, "best {best}");
}

#[test]
fn converges_on_a_sphere_in_a_corner() {
    // Optimum on the faces of the cube: x0 = 0, x1 = 1, others inside.
    let f = |x: &[f64]| x[0] * x[0] + (1.0 - x[1]).powi(2) + x[2..].iter().map(|v| (v - 0.3).powi(2)).sum::<f64>();
    let mut opt = build(vec![Dim::Continuous; 5], 11, CmaEsConfig::default());
    let (best, asked) = drive(&mut opt, &f, 3000, 8);
    assert!(best < 1e-10, "best {best}");
    assert!(asked.iter().all(|c| c.x.iter().all(|v| (0.0..=1.0).contains(v))));
}

fn rastrigin(x: &[f64]) -> f64 {
    x.iter()
        .map(|u| {
            let z = -5.12 + 10.24 * u - 1.1;
            z * z - 10.0 * (2.0 * std::f64::consts::PI * z).cos() + 10.0
        })
        .sum()
}

#[test]
fn restarts_with_larger_populations_on_a_multimodal_function() {
    for restarts in [Restarts::Bipop, Restarts::Ipop] {
        let config = CmaEsConfig { restarts, ..Default::default() };
        let mut opt = build(vec![Dim::Continuous; 5], 1, config);
        let lambda0 = opt.state.default_lambda;
        let mut grew = false;
        let mut best = f64::INFINITY;
        for _ in 0..20 {
            best = best.min(drive(&mut opt, &rastrigin, 1000, 16).0);
            grew |= opt.population().is_some_and(|l| l > lambda0);
        }
        assert!(opt.restarts() >= 3, "{restarts:?}: {} restarts", opt.restarts());
        assert!(grew, "{restarts:?}: population never grew");
        assert!(best < 3.0, "{restarts:?}: best {best}");
    }
}

#[test]
fn polishes_the_best_run_to_full_precision() {
    // Offset optimum (f* = 100): runs stop at the relative tolerance and
    // restart; the best run must still end up refined.
    let f = |x: &[f64]| 100.0 + x.iter().enumerate().map(|(i, v)| (v - 0.2 - 0.1 * i as f64).powi(2)).sum::<f64>();
    let mut problem = Problem::new(vec![Dim::Continuous; 6], 17);
    problem.budget = Some(4000);
    let mut opt = CmaEs::new(&problem, CmaEsConfig::default()).unwrap();
    let (best, _) = drive(&mut opt, &f, 4000, 12);
    assert!(opt.restarts() >= 1, "expected restarts after the coarse stop");
    assert!(best - 100.0 < 1e-10, "regret {}", best - 100.0);
}

#[test]
fn without_restarts_it_converges_fully_then_finishes() {
    // Offset values: the relative tolerance stops the run early, and with
    // no restart to follow it is polished to full precision.
    let config = CmaEsConfig { restarts: Restarts::None, ..Default::default() };
    let mut opt = build(vec![Dim::Continuous; 2], 5, config);
    let f = |x: &[f64]| 5.0 + (x[0] - 0.2).powi(2) + (x[1] - 0.9).powi(2);
    let (best, asked) = drive(&mut opt, &f, 100_000, 6);
    assert!(asked.len() < 100_000, "never converged");
    assert!(best - 5.0 < 1e-10, "regret {}", best - 5.0);
    assert!(opt.ask(4).unwrap().is_empty());
    assert_eq!(opt.restarts(), 0);
}

#[test]
fn first_run_starts_from_the_best_foreign_point() {
    let config = CmaEsConfig { sigma0: 1e-3, ..Default::default() };
    let mut opt = build(vec![Dim::Continuous; 3], 2, config);
    opt.tell(&[
        Observed::ok(None, vec![0.9, 0.9, 0.9], 5.0),
        Observed::ok(None, vec![0.12, 0.34, 0.56], 1.0),
        Observed::failed(None, vec![0.5, 0.5, 0.5]),
    ])
    .unwrap();
    let c = opt.ask(20).unwrap();
    for cand in &c {
        for (v, t) in cand.x.iter().zip([0.12, 0.34, 0.56]) {
            assert!((v - t).abs() < 0.01, "{:?}", cand.x);
        }
    }
}

#[test]
fn tell_order_within_a_generation_does_not_matter() {
    let f = |x: &[f64]| rotated_ellipsoid(x);
    let mut a = build(vec![Dim::Continuous; 4], 8, CmaEsConfig::default());
    let mut b = build(vec![Dim::Continuous; 4], 8, CmaEsConfig::default());
    for _ in 0..30 {
        let ca = a.ask(100).unwrap();
        let cb = b.ask(100).unwrap();
        assert_eq!(ca, cb);
        let told: Vec<Observed> = ca.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
        a.tell(&told).unwrap();
        for o in told.iter().rev() {
            b.tell(std::slice::from_ref(o)).unwrap();
        }
    }
}

#[test]
fn extra_samples_while_results_are_pending() {
    let mut opt = build(vec![Dim::Continuous; 3], 4, CmaEsConfig::default());
    let lambda = opt.state.default_lambda;
    let first = opt.ask(100).unwrap();
    assert_eq!(first.len(), lambda, "one generation at a time");
    let extra = opt.ask(3).unwrap();
    assert_eq!(extra.len(), 3, "more samples of the same generation");
    // The extras and all but three of the first batch complete: lambda
    // results, so the generation updates; the late ones are ignored.
    let done: Vec<Observed> = first[3..]
        .iter()
        .chain(&extra)
        .map(|c| Observed::ok(Some(c.ticket), c.x.clone(), rotated_ellipsoid(&c.x)))
        .collect();
    opt.tell(&done).unwrap();
    assert_eq!(opt.state.run.as_ref().unwrap().generation, 1);
    let late: Vec<Observed> = first[..3].iter().map(|c| Observed::failed(Some(c.ticket), c.x.clone())).collect();
    opt.tell(&late).unwrap();
    assert_eq!(opt.ask(100).unwrap().len(), lambda);
}

#[test]
fn discrete_coordinates_keep_moving() {
    // Continuous part converges; the integer part must still try other
    // levels near the end of the run instead of freezing.
    let dims = vec![Dim::Continuous, Dim::Continuous, Dim::Integer { levels: 6 }, Dim::Categorical { choices: 3 }];
    let level = |u: f64, n: f64| (u * n).floor().min(n - 1.0);
    let f = move |x: &[f64]| {
        (x[0] - 0.3).powi(2) + (x[1] - 0.8).powi(2) + 0.1 * (level(x[2], 6.0) - 4.0).abs() + 0.1 * level(x[3], 3.0)
    };
    let config = CmaEsConfig { restarts: Restarts::None, ..Default::default() };
    let mut opt = build(dims, 6, config);
    let (best, asked) = drive(&mut opt, &f, 20_000, 8);
    assert!(best < 1e-8, "best {best}");
    let tail = &asked[asked.len().saturating_sub(400)..];
    let others = tail.iter().filter(|c| level(c.x[2], 6.0) != 4.0).count();
    assert!(others > 0, "integer coordinate froze");
    assert!(others < tail.len() / 2, "integer coordinate never settled ({others} of {})", tail.len());
}

#[test]
fn snapshot_restores_mid_generation_with_extras() {
    let f = |x: &[f64]| rotated_ellipsoid(x);
    let mut a = build(vec![Dim::Continuous; 5], 12, CmaEsConfig::default());
    drive(&mut a, &f, 200, 7);
    let p1 = a.ask(100).unwrap();
    let p2 = a.ask(4).unwrap();
    let text = serde_json::to_string(&a.snapshot().unwrap()).unwrap();
    let mut b = build(vec![Dim::Continuous; 5], 12, CmaEsConfig::default());
    b.restore(&serde_json::from_str(&text).unwrap()).unwrap();
    for o in [&p2, &p1] {
        let told: Vec<Observed> = o.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
        a.tell(&told).unwrap();
        b.tell(&told).unwrap();
    }
    assert_eq!(drive(&mut a, &f, 300, 5).1, drive(&mut b, &f, 300, 5).1);
}

#[test]
fn resumes_identically_with_a_paused_run_in_the_snapshot() {
    let f = |x: &[f64]| 100.0 + x.iter().enumerate().map(|(i, v)| (v - 0.2 - 0.1 * i as f64).powi(2)).sum::<f64>();
    let make = || {
        let mut problem = Problem::new(vec![Dim::Continuous; 4], 23);
        problem.budget = Some(3000);
        CmaEs::new(&problem, CmaEsConfig::default()).unwrap()
    };
    let (_, all) = drive(&mut make(), &f, 3000, 7);
    let mut saw_paused = false;
    for cut in [350, 700, 1400, 2100, 2800] {
        let mut first = make();
        let (_, head) = drive(&mut first, &f, cut, 7);
        saw_paused |= first.state.paused.is_some();
        let text = serde_json::to_string(&first.snapshot().unwrap()).unwrap();
        let mut second = make();
        second.restore(&serde_json::from_str(&text).unwrap()).unwrap();
        let (_, tail) = drive(&mut second, &f, 3000 - head.len(), 7);
        let joined: Vec<Candidate> = head.into_iter().chain(tail).collect();
        assert_eq!(joined, all, "resumed after {cut}");
    }
    assert!(saw_paused, "no snapshot held a paused run");
}

#[test]
fn rejects_bad_options() {
    let p = Problem::new(vec![Dim::Continuous; 2], 1);
    assert!(CmaEs::new(&p, CmaEsConfig { population: Some(1), ..Default::default() }).is_err());
    assert!(CmaEs::new(&p, CmaEsConfig { sigma0: 0.0, ..Default::default() }).is_err());
    let bad: std::result::Result<CmaEsConfig, _> = serde_json::from_str(r#"{"popsize": 10}"#);
    assert!(bad.is_err());
    let ok: CmaEsConfig = serde_json::from_str(r#"{"restarts": "ipop", "max_restarts": 3}"#).unwrap();
    assert_eq!(ok.restarts, Restarts::Ipop);
    assert_eq!(ok.sigma0, 0.25);
}
