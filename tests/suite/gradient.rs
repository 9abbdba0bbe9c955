//! The `gradient` optimizer on the problems it is for (smooth, cheap,
//! sometimes noisy), and the plumbing of evaluator gradients from a test
//! function through the study to the optimizer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use knobs::eval::functions::{self, Function};
use knobs::eval::{EvalContext, Evaluator, FunctionEvaluator, FunctionSpec};
use knobs::optim::gradient::{Differences, Gradient, GradientConfig, Method};
use knobs::optim::rng::Rng;
use knobs::optim::{self, Dim, Observed, Optimizer, OptimizerSpec, Problem};
use knobs::space::{Config, Space, Value};
use knobs::spec::Spec;
use knobs::storage::MemoryStorage;
use knobs::study::{RunOptions, Study};

fn build(dims: Vec<Dim>, seed: u64, config: GradientConfig) -> Gradient {
    Gradient::new(&Problem::new(dims, seed), config).expect("valid options")
}

/// A function of the unit cube: the value and, if it has one, the gradient.
type Objective<'a> = &'a dyn Fn(&[f64]) -> (Option<f64>, Option<Vec<f64>>);

/// Drive `opt` for up to `budget` evaluations in batches of `batch`; returns
/// the best value after each evaluation.
fn drive(opt: &mut dyn Optimizer, f: Objective, budget: usize, batch: usize) -> Vec<f64> {
    let mut trace = Vec::new();
    let mut best = f64::INFINITY;
    while trace.len() < budget {
        let cands = opt.ask(batch.min(budget - trace.len())).expect("ask");
        if cands.is_empty() {
            break;
        }
        let told: Vec<Observed> = cands
            .iter()
            .map(|c| {
                assert!(c.x.iter().all(|v| (0.0..=1.0).contains(v)), "out of the cube: {:?}", c.x);
                let (value, gradient) = f(&c.x);
                if let Some(v) = value {
                    best = best.min(v);
                }
                trace.push(best);
                let mut o = Observed::failed(Some(c.ticket), c.x.clone());
                (o.value, o.gradient) = (value, gradient);
                o
            })
            .collect();
        opt.tell(&told).expect("tell");
    }
    trace
}

/// Evaluations until the best value first fell below `target`.
fn evaluations_to(trace: &[f64], target: f64) -> Option<usize> {
    trace.iter().position(|&v| v < target).map(|i| i + 1)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Rosenbrock on [-2, 2]^d in cube coordinates (optimum at u = 0.75), with
/// its gradient in cube coordinates.
fn rosenbrock(x: &[f64]) -> (f64, Vec<f64>) {
    let z: Vec<f64> = x.iter().map(|u| -2.0 + 4.0 * u).collect();
    let g = functions::rosenbrock_gradient(&z).into_iter().map(|g| 4.0 * g).collect();
    (functions::rosenbrock(&z), g)
}

fn rosenbrock_value(x: &[f64]) -> (Option<f64>, Option<Vec<f64>>) {
    (Some(rosenbrock(x).0), None)
}

fn rosenbrock_with_gradient(x: &[f64]) -> (Option<f64>, Option<Vec<f64>>) {
    let (v, g) = rosenbrock(x);
    (Some(v), Some(g))
}

/// A rotated, ill-conditioned (1e3) quadratic with its optimum off-centre.
fn quadratic(x: &[f64]) -> f64 {
    let n = x.len();
    let mut r: Vec<f64> = x.iter().enumerate().map(|(i, v)| v - (0.62 - 0.05 * i as f64)).collect();
    for i in 0..n - 1 {
        let (c, s) = ((0.4 + i as f64).cos(), (0.4 + i as f64).sin());
        let (a, b) = (r[i], r[i + 1]);
        r[i] = c * a - s * b;
        r[i + 1] = s * a + c * b;
    }
    r.iter().enumerate().map(|(i, v)| 1e3f64.powf(i as f64 / (n - 1) as f64) * v * v).sum()
}

#[test]
fn converges_on_a_smooth_quadratic_to_high_precision() {
    for differences in [Differences::Forward, Differences::Central] {
        let config = GradientConfig { differences: Some(differences), ..Default::default() };
        let mut opt = build(vec![Dim::Continuous; 6], 3, config);
        let trace = drive(&mut opt, &|x| (Some(quadratic(x)), None), 1500, 8);
        let best = *trace.last().unwrap();
        assert!(best < 1e-10, "{differences:?}: best {best}");
    }
}

#[test]
fn converges_on_rosenbrock_4d_far_better_than_random_search() {
    let budget = 1500;
    let mut ours = Vec::new();
    let mut random = Vec::new();
    for seed in 0..5 {
        let mut opt = build(vec![Dim::Continuous; 4], 40 + seed, GradientConfig::default());
        ours.push(*drive(&mut opt, &rosenbrock_value, budget, 5).last().unwrap());
        let mut rs =
            optim::build(&OptimizerSpec::named("random"), &Problem::new(vec![Dim::Continuous; 4], 40 + seed)).unwrap();
        random.push(*drive(rs.as_mut(), &rosenbrock_value, budget, 5).last().unwrap());
    }
    let (ours, random) = (median(ours), median(random));
    assert!(ours < 1e-6, "median best {ours}");
    assert!(ours < random * 1e-6, "median best {ours} vs random search's {random}");
}

#[test]
fn evaluator_gradients_reduce_the_evaluations_needed() {
    let mut fd = Vec::new();
    let mut analytic = Vec::new();
    for seed in 0..5 {
        let mut a = build(vec![Dim::Continuous; 4], 60 + seed, GradientConfig::default());
        let mut b = build(vec![Dim::Continuous; 4], 60 + seed, GradientConfig::default());
        let ta = drive(&mut a, &rosenbrock_value, 5000, 5);
        let tb = drive(&mut b, &rosenbrock_with_gradient, 5000, 5);
        fd.push(evaluations_to(&ta, 1e-6).expect("finite differences reach 1e-6") as f64);
        analytic.push(evaluations_to(&tb, 1e-6).expect("analytic gradients reach 1e-6") as f64);
    }
    let (fd, analytic) = (median(fd), median(analytic));
    eprintln!("rosenbrock 4-d to 1e-6: median {fd} evaluations (finite differences), {analytic} (analytic)");
    assert!(analytic * 2.5 < fd, "analytic gradients: {analytic} evaluations, finite differences: {fd}");
}

#[test]
fn integer_and_categorical_coordinates_keep_moving_to_their_best_levels() {
    let level = |u: f64, n: f64| (u * n).floor().min(n - 1.0);
    let f = move |x: &[f64]| {
        (x[0] - 0.3).powi(2) + (x[1] - 0.8).powi(2) + 0.1 * (level(x[2], 6.0) - 4.0).abs() + 0.1 * level(x[3], 3.0)
    };
    let dims = vec![Dim::Continuous, Dim::Continuous, Dim::Integer { levels: 6 }, Dim::Categorical { choices: 3 }];
    for seed in 0..8 {
        let mut opt = build(dims.clone(), seed, GradientConfig::default());
        let trace = drive(&mut opt, &|x| (Some(f(x)), None), 600, 4);
        eprintln!("mixed, seed {seed}: {:?} evaluations to 1e-8", evaluations_to(&trace, 1e-8));
        let best = *trace.last().unwrap();
        assert!(best < 1e-8, "seed {seed}: best {best}");
    }
}

#[test]
fn spsa_makes_progress_on_a_noisy_quadratic() {
    let target = [0.7, 0.25, 0.6, 0.4, 0.8];
    let truth = move |x: &[f64]| x.iter().zip(target).map(|(v, t)| 10.0 * (v - t).powi(2)).sum::<f64>();
    let mut improved = 0;
    for seed in 0..5 {
        let noise = std::cell::RefCell::new(Rng::new(seed, 99));
        let noisy = |x: &[f64]| (Some(truth(x) + 0.1 * noise.borrow_mut().normal()), None);
        let mut problem = Problem::new(vec![Dim::Continuous; 5], seed);
        problem.budget = Some(2000);
        let config = GradientConfig { method: Method::Spsa, ..Default::default() };
        let mut opt = Gradient::new(&problem, config).unwrap();
        let mut asked = Vec::new();
        while asked.len() < 2000 {
            let cands = opt.ask(4).unwrap();
            assert!(!cands.is_empty(), "spsa stopped asking after {} of 2000 evaluations", asked.len());
            let told: Vec<Observed> = cands
                .iter()
                .map(|c| {
                    let (v, g) = noisy(&c.x);
                    let mut o = Observed::failed(Some(c.ticket), c.x.clone());
                    (o.value, o.gradient) = (v, g);
                    o
                })
                .collect();
            opt.tell(&told).unwrap();
            asked.extend(cands);
        }
        // Each pair of points is θ ± c Δ: its midpoint is the iterate. The
        // true value there, at the start and near the end (a random point's
        // is about 3.4 on average).
        let iterates: Vec<f64> = asked
            .chunks(2)
            .map(|p| truth(&p[0].x.iter().zip(&p[1].x).map(|(a, b)| (a + b) / 2.0).collect::<Vec<f64>>()))
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (first, last) = (mean(&iterates[..5]), mean(&iterates[iterates.len() - 50..]));
        eprintln!("spsa seed {seed}: true value {first:.3} at the start, {last:.2e} at the end");
        assert!(last < 0.03, "seed {seed}: mean true value {last} near the end");
        if last < first / 50.0 {
            improved += 1;
        }
    }
    assert!(improved >= 4, "only {improved} of 5 runs improved 50-fold");
}

#[test]
fn asks_a_point_with_its_whole_stencil_as_one_batch() {
    let mut opt = build(vec![Dim::Continuous; 5], 1, GradientConfig::default());
    let first = opt.ask(100).unwrap();
    assert_eq!(first.len(), 6, "point plus forward stencil");
    let central = GradientConfig { differences: Some(Differences::Central), ..Default::default() };
    let mut opt = build(vec![Dim::Continuous; 5], 1, central);
    assert_eq!(opt.ask(100).unwrap().len(), 11, "point plus central stencil");
    // Once the evaluator has given a gradient, a point is asked alone.
    let mut opt = build(vec![Dim::Continuous; 5], 1, GradientConfig::default());
    let c = opt.ask(1).unwrap();
    let (v, g) = rosenbrock_with_gradient(&c[0].x);
    opt.tell(&[Observed::ok(Some(c[0].ticket), c[0].x.clone(), v.unwrap()).with_gradient(g.unwrap())]).unwrap();
    for _ in 0..20 {
        let c = opt.ask(100).unwrap();
        assert_eq!(c.len(), 1, "a line-search point alone");
        let (v, g) = rosenbrock_with_gradient(&c[0].x);
        opt.tell(&[Observed::ok(Some(c[0].ticket), c[0].x.clone(), v.unwrap()).with_gradient(g.unwrap())]).unwrap();
    }
}

#[test]
fn pending_stencil_points_are_not_asked_twice() {
    let mut opt = build(vec![Dim::Continuous; 3], 2, GradientConfig::default());
    let a = opt.ask(2).unwrap();
    let b = opt.ask(2).unwrap();
    let c = opt.ask(10).unwrap();
    assert_eq!((a.len(), b.len()), (2, 2));
    // The rest of the stencil: the first start is still waiting for all of it.
    assert_eq!(c.len(), 10, "design points while the start waits");
    let xs: Vec<&Vec<f64>> = a.iter().chain(&b).map(|c| &c.x).collect();
    assert!(c.iter().all(|c| !xs.contains(&&c.x)));
    let all: Vec<Observed> =
        a.iter().chain(&b).chain(&c).map(|c| Observed::ok(Some(c.ticket), c.x.clone(), quadratic(&c.x))).collect();
    opt.tell(&all).unwrap();
    assert!(!opt.ask(4).unwrap().is_empty());
}

#[test]
fn first_start_is_the_best_foreign_point() {
    let mut opt = build(vec![Dim::Continuous; 3], 2, GradientConfig::default());
    opt.tell(&[
        Observed::ok(None, vec![0.9, 0.9, 0.9], 5.0),
        Observed::ok(None, vec![0.12, 0.34, 0.56], 1.0),
        Observed::failed(None, vec![0.5, 0.5, 0.5]),
    ])
    .unwrap();
    // The start point is known: the first ask is its stencil.
    let c = opt.ask(10).unwrap();
    assert_eq!(c.len(), 3);
    for cand in &c {
        for (v, t) in cand.x.iter().zip([0.12, 0.34, 0.56]) {
            assert!((v - t).abs() < 1e-6, "{:?}", cand.x);
        }
    }
}

#[test]
fn finishes_after_max_starts_and_restarts_otherwise() {
    let f = |x: &[f64]| (Some(quadratic(x)), None);
    let config = GradientConfig { max_starts: Some(2), ..Default::default() };
    let mut opt = build(vec![Dim::Continuous; 3], 5, config);
    let trace = drive(&mut opt, &f, 100_000, 4);
    assert!(trace.len() < 100_000, "never finished");
    assert!(opt.ask(4).unwrap().is_empty());
    assert_eq!(opt.starts(), 2);
    let mut opt = build(vec![Dim::Continuous; 3], 5, GradientConfig::default());
    drive(&mut opt, &f, 3000, 4);
    assert!(opt.starts() >= 3, "{} starts", opt.starts());
}

#[test]
fn snapshot_mid_line_search_resumes_identically() {
    for method in [Method::Lbfgs, Method::Spsa] {
        let config = GradientConfig { method, ..Default::default() };
        let f = |x: &[f64]| (Some(rosenbrock(x).0), None);
        let dims = vec![Dim::Continuous, Dim::Integer { levels: 5 }, Dim::Continuous];
        let mut whole = build(dims.clone(), 8, config.clone());
        let all = drive(&mut whole, &f, 700, 3);
        for cut in [3, 50, 301] {
            let mut a = build(dims.clone(), 8, config.clone());
            let head = drive(&mut a, &f, cut, 3);
            let text = serde_json::to_string(&a.snapshot().unwrap()).unwrap();
            let mut b = build(dims.clone(), 8, config.clone());
            b.restore(&serde_json::from_str(&text).unwrap()).unwrap();
            let tail = drive(&mut b, &f, 700 - head.len(), 3);
            let joined: Vec<f64> =
                head.iter().copied().chain(tail.iter().map(|v| v.min(*head.last().unwrap()))).collect();
            assert_eq!(joined, all, "{method:?}: resumed after {cut}");
        }
    }
}

#[test]
fn rejects_bad_options_all_at_once() {
    let p = Problem::new(vec![Dim::Continuous; 2], 1);
    let bad = GradientConfig {
        fd_step: Some(0.0),
        memory: Some(0),
        max_iters: Some(0),
        perturbation: Some(0.1),
        ..Default::default()
    };
    let err = Gradient::new(&p, bad).err().expect("bad options").to_string();
    for option in ["optimizer.fd_step", "optimizer.memory", "optimizer.max_iters", "optimizer.perturbation"] {
        assert!(err.contains(option), "{option} not reported in: {err}");
    }
    let spsa = GradientConfig { method: Method::Spsa, differences: Some(Differences::Central), ..Default::default() };
    assert!(Gradient::new(&p, spsa).err().unwrap().to_string().contains("optimizer.differences"));
    assert!(Gradient::new(&Problem::new(vec![], 1), GradientConfig::default()).is_err());
    let unknown: Result<GradientConfig, _> = serde_json::from_str(r#"{"method": "lbfgs", "steps": 3}"#);
    assert!(unknown.is_err());
    let ok: GradientConfig = serde_json::from_str(r#"{"method": "spsa", "pairs": 3}"#).unwrap();
    assert_eq!((ok.method, ok.pairs), (Method::Spsa, Some(3)));
}

// ---------------------------------------------------------------------------
// Evaluator gradients: the test functions, the space's chain rule, the study.
// ---------------------------------------------------------------------------

#[test]
fn test_function_gradients_match_finite_differences() {
    let points: [&[f64]; 3] = [&[0.3, -1.2, 2.1, 0.7, -0.4, 1.9], &[1.7, 0.2, -2.5, 3.0, 0.05, -0.9], &[0.5; 6]];
    for f in Function::ALL {
        for x in points {
            let x: Vec<f64> = match f {
                Function::Branin => x[..2].to_vec(),
                Function::Hartmann6 => x.iter().map(|v| v.abs() / 3.0).collect(),
                _ => x.to_vec(),
            };
            let Some(g) = f.gradient(&x) else {
                // Only mixed_service and the multi-objective functions have none.
                assert!(f == Function::MixedService || f.metrics().len() > 1, "{f:?} has no gradient");
                continue;
            };
            let value = |x: &[f64]| {
                let ev =
                    FunctionEvaluator::new(&FunctionSpec { name: f.name().into(), gradients: false }, &space(x.len()))
                        .unwrap();
                ev.evaluate(&config(x), &ctx()).unwrap().metrics["value"]
            };
            for i in 0..x.len() {
                let h = 1e-6;
                let (mut lo, mut hi) = (x.clone(), x.clone());
                lo[i] -= h;
                hi[i] += h;
                let fd = (value(&hi) - value(&lo)) / (2.0 * h);
                assert!((fd - g[i]).abs() <= 1e-5 * fd.abs().max(1.0), "{}: d/dx{i} {} vs {fd}", f.name(), g[i]);
            }
        }
    }
}

fn space(d: usize) -> Space {
    let params = (0..d).map(|i| format!("  - {{name: x{i}, type: float, low: -5, high: 5}}")).collect::<Vec<_>>();
    Space::parse(&params.join("\n"), "test").unwrap()
}

fn config(x: &[f64]) -> Config {
    x.iter().enumerate().map(|(i, v)| (format!("x{i}"), Value::Float(*v))).collect()
}

fn ctx() -> EvalContext {
    EvalContext { study: "t".into(), trial: 0, base_dir: PathBuf::from(".") }
}

#[test]
fn function_evaluator_reports_gradients_only_when_asked() {
    let s = space(3);
    let plain = FunctionEvaluator::new(&FunctionSpec { name: "rosenbrock".into(), gradients: false }, &s).unwrap();
    assert!(plain.evaluate(&config(&[0.5, 1.0, 2.0]), &ctx()).unwrap().gradients.is_empty());
    let with = FunctionEvaluator::new(&FunctionSpec { name: "rosenbrock".into(), gradients: true }, &s).unwrap();
    let m = with.evaluate(&config(&[0.5, 1.0, 2.0]), &ctx()).unwrap();
    let g = &m.gradients["value"];
    assert_eq!(g.keys().collect::<Vec<_>>(), ["x0", "x1", "x2"]);
    assert_eq!(g["x0"], functions::rosenbrock_gradient(&[0.5, 1.0, 2.0])[0]);
    let mut problems = Vec::new();
    FunctionSpec { name: "mixed_service".into(), gradients: true }.check(&s, &mut problems);
    assert!(problems.iter().any(|p| p.to_string().contains("evaluator.gradients")), "{problems:?}");
}

#[test]
fn space_maps_gradients_to_the_cube_by_the_chain_rule() {
    let s = Space::parse(
        "- {name: a, type: float, low: -2, high: 6}\n\
         - {name: b, type: float, low: 1, high: 1000, log: true}\n\
         - {name: n, type: int, low: 1, high: 9}\n\
         - {name: c, type: categorical, choices: [x, y]}\n\
         - {name: m, type: int, low: 1, high: 100, log: true}\n\
         - {name: w, type: float, low: 1, high: 2, when: {c: y}}",
        "test",
    )
    .unwrap();
    // f = 3a + 2 ln b + m (+ anything of n, c and the inactive w).
    let x = [0.3, 0.6, 0.5, 0.2, 0.4, 0.9];
    let b = s.decode(&x)["b"].as_f64().unwrap();
    let grads: BTreeMap<String, f64> =
        [("a".into(), 3.0), ("b".into(), 2.0 / b), ("n".into(), 5.0), ("c".into(), 1.0), ("m".into(), 1.0)].into();
    let g = s.unit_gradient(&x, &grads).unwrap();
    assert!((g[0] - 24.0).abs() < 1e-12, "d/du_a = 3 * 8: {}", g[0]);
    assert!((g[1] - 2.0 * 1000f64.ln()).abs() < 1e-9, "d/du_b = 2/b * b ln 1000: {}", g[1]);
    assert_eq!(&g[2..4], &[0.0, 0.0], "linear int and categorical");
    // The log int's value before rounding, differentiated numerically.
    let (lo, hi) = (0.5f64.ln(), 100.5f64.ln());
    let m = |u: f64| (lo + u * (hi - lo)).exp();
    let numeric = (m(0.4 + 1e-7) - m(0.4 - 1e-7)) / 2e-7;
    assert!((g[4] - numeric).abs() < 1e-5 * numeric, "log int: {} vs {numeric}", g[4]);
    assert_eq!(g[5], 0.0, "inactive");
    let partial: BTreeMap<String, f64> = [("a".into(), 3.0), ("m".into(), 1.0)].into();
    assert!(s.unit_gradient(&x, &partial).is_none(), "b's derivative is missing");
}

fn study_spec(gradients: bool, objective: &str) -> Spec {
    let text = format!(
        "name: g\nseed: 4\nspace:\n\
         - {{name: x0, type: float, low: -2, high: 2}}\n\
         - {{name: x1, type: float, low: -2, high: 2}}\n\
         - {{name: x2, type: float, low: -2, high: 2}}\n\
         - {{name: x3, type: float, low: -2, high: 2}}\n\
         evaluator: {{type: function, name: rosenbrock, gradients: {gradients}}}\n\
         {objective}\
         optimizer: {{name: gradient}}\nbudget: {{trials: 4000, target: 1.0e-6}}\n"
    );
    Spec::parse(&text, "test.yaml", "g", PathBuf::from(".")).unwrap_or_else(|e| panic!("{e}"))
}

fn trials_to_target(spec: Spec) -> usize {
    let mut study = Study::open(spec, Arc::new(MemoryStorage::new()), false).unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    assert_eq!(report.stop, knobs::study::StopReason::Target, "{report:?}");
    study.trials().len()
}

#[test]
fn a_study_passes_evaluator_gradients_to_the_optimizer() {
    let plain = trials_to_target(study_spec(false, ""));
    let with = trials_to_target(study_spec(true, ""));
    eprintln!("study, rosenbrock 4-d to 1e-6: {plain} trials without gradients, {with} with");
    assert!(with * 2 < plain, "{with} trials with gradients, {plain} without");
    // A weighted objective: the weight scales the gradient with the score.
    let neg = "objectives: [{metric: value, direction: minimize, weight: 2}]\n";
    let weighted = trials_to_target(study_spec(true, neg));
    assert!(weighted * 2 < plain, "{weighted} trials with a weighted objective");
}
