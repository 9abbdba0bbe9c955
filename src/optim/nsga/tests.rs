use super::*;
use crate::optim::random::{RandomConfig, RandomSearch};
use crate::pareto::hypervolume;

fn problem(d: usize, m: usize, budget: u64) -> Problem {
    Problem { budget: Some(budget), objectives: m, ..Problem::new(vec![Dim::Continuous; d], 5) }
}

/// The multi-objective test functions of the function evaluator, as vectors.
pub(crate) fn zdt1(x: &[f64]) -> Vec<f64> {
    crate::eval::functions::pareto::zdt1(x).to_vec()
}
pub(crate) fn zdt2(x: &[f64]) -> Vec<f64> {
    crate::eval::functions::pareto::zdt2(x).to_vec()
}
pub(crate) fn dtlz2(x: &[f64]) -> Vec<f64> {
    crate::eval::functions::pareto::dtlz2(x).to_vec()
}

/// Run an optimizer for `budget` evaluations, at most `batch` at a time; every result seen.
pub(crate) fn run(opt: &mut dyn Optimizer, f: fn(&[f64]) -> Vec<f64>, budget: usize, batch: usize) -> Vec<Vec<f64>> {
    let mut seen = Vec::new();
    while seen.len() < budget {
        let asked = opt.ask(batch.min(budget - seen.len())).unwrap();
        assert!(!asked.is_empty());
        let told: Vec<Observed> = asked
            .iter()
            .map(|c| {
                let v = f(&c.x);
                seen.push(v.clone());
                Observed::vector(Some(c.ticket), c.x.clone(), v)
            })
            .collect();
        opt.tell(&told).unwrap();
    }
    seen
}

/// The hypervolume of every point seen.
pub(crate) fn hv(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let refs: Vec<&[f64]> = points.iter().map(|p| p.as_slice()).collect();
    hypervolume(&refs, reference)
}

#[test]
fn nsga2_approaches_the_zdt1_front_and_beats_random_search() {
    let p = problem(10, 2, 3000);
    let mut nsga = Nsga::nsga2(&p, NsgaConfig::default()).unwrap();
    let found = hv(&run(&mut nsga, zdt1, 3000, 7), &[1.1, 1.1]);
    let mut random = RandomSearch::new(&p, RandomConfig::default());
    let by_chance = hv(&run(&mut random, zdt1, 3000, 7), &[1.1, 1.1]);
    // The true front's hypervolume to (1.1, 1.1) is 0.1 + 2/3 + 0.11 = 0.8767.
    assert!(found > 0.85 && found <= 0.8767 + 1e-9, "nsga2 {found}");
    assert!(found > by_chance + 0.1, "nsga2 {found} vs random {by_chance}");
}

#[test]
fn nsga3_spreads_over_the_dtlz2_sphere() {
    let p = problem(7, 3, 4000);
    let mut nsga = Nsga::nsga3(&p, NsgaConfig::default()).unwrap();
    let seen = run(&mut nsga, dtlz2, 4000, 10);
    let found = hv(&seen, &[1.1, 1.1, 1.1]);
    let mut random = RandomSearch::new(&p, RandomConfig::default());
    let by_chance = hv(&run(&mut random, dtlz2, 4000, 10), &[1.1, 1.1, 1.1]);
    // The sphere's: 1.1³ - π/6 = 0.8074.
    assert!(found > 0.70 && found < 0.8075, "nsga3 {found}");
    assert!(found > by_chance + 0.1, "nsga3 {found} vs random {by_chance}");
    // The parents lie near the sphere and cover every octant's corner region.
    let parents = &nsga.state.parents;
    let near = parents.iter().filter(|i| (i.f.iter().map(|v| v * v).sum::<f64>().sqrt() - 1.0).abs() < 0.05).count();
    assert!(near * 10 >= parents.len() * 8, "{near} of {} parents within 5% of the sphere", parents.len());
    for k in 0..3 {
        assert!(parents.iter().any(|i| i.f[k] > 0.9), "no parent near the end of objective {k}");
    }
}

#[test]
fn infeasible_and_failed_points_give_way_to_feasible_ones() {
    let p = problem(3, 2, 400);
    let mut nsga = Nsga::nsga2(&p, NsgaConfig { population: Some(20), ..Default::default() }).unwrap();
    for round in 0..20 {
        let asked = nsga.ask(20).unwrap();
        let told: Vec<Observed> = asked
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if (i + round) % 5 == 0 {
                    return Observed::failed(Some(c.ticket), c.x.clone());
                }
                // Feasible only where x0 >= 0.5; the objectives pull x0 to 0.
                let mut o = Observed::vector(Some(c.ticket), c.x.clone(), vec![c.x[0], 1.0 - c.x[0] + c.x[1]]);
                o.violation = (0.5 - c.x[0]).max(0.0);
                o
            })
            .collect();
        nsga.tell(&told).unwrap();
    }
    let parents = &nsga.state.parents;
    assert!(nsga.state.generation >= 10);
    assert!(parents.iter().all(|i| !i.f.is_empty()), "a failed point became a parent");
    assert!(parents.iter().all(|i| i.violation == 0.0), "an infeasible parent outlived feasible points");
    assert!(parents.iter().any(|i| i.x[0] < 0.52), "the front should reach the feasible boundary");
}

#[test]
fn snapshots_continue_the_same_trajectory_and_stay_finite() {
    let p = problem(4, 2, 200);
    let mut a = Nsga::nsga2(&p, NsgaConfig { population: Some(8), ..Default::default() }).unwrap();
    run(&mut a, zdt1, 40, 3);
    // Crowding distances of the extremes are stored as finite numbers.
    let snap = a.snapshot().unwrap();
    let text = serde_json::to_string(&snap).unwrap();
    let mut b = Nsga::nsga2(&p, NsgaConfig { population: Some(8), ..Default::default() }).unwrap();
    b.restore(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(a.ask(3).unwrap(), b.ask(3).unwrap());
}

#[test]
fn options_are_checked_and_one_objective_optimizers_refuse_a_pareto_study() {
    let p = problem(2, 2, 100);
    let err = Nsga::nsga2(&p, NsgaConfig { divisions: Some(4), population: Some(2), ..Default::default() })
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("optimizer.divisions") && err.contains("optimizer.population"), "{err}");
    let three = problem(2, 3, 100);
    let n3 = Nsga::nsga3(&three, NsgaConfig { population: Some(10), ..Default::default() }).unwrap();
    // Divisions 3 give 10 directions in three objectives.
    assert!(matches!(&n3.survival, Survival::Reference(d) if d.len() == 10));
    let err = crate::optim::build(&crate::optim::OptimizerSpec::named("cmaes"), &p).err().unwrap().to_string();
    assert!(err.contains("searches one objective") && err.contains("nsga2"), "{err}");
    // `auto`: the model while evaluations are few, NSGA-III beyond.
    let auto = crate::optim::build(&crate::optim::OptimizerSpec::named("auto"), &three).unwrap();
    assert_eq!(auto.name(), "parego");
    let large = Problem { budget: Some(5000), ..three.clone() };
    assert_eq!(crate::optim::build(&crate::optim::OptimizerSpec::named("auto"), &large).unwrap().name(), "nsga3");
    let large2 = Problem { budget: Some(5000), ..p.clone() };
    assert_eq!(crate::optim::build(&crate::optim::OptimizerSpec::named("auto"), &large2).unwrap().name(), "nsga2");
}

/// The figures behind the default population (`default_population`'s docs): ZDT1 in 10
/// variables, 3,000 evaluations, populations 20, 50 and 100 (run with `cargo test --release
/// --lib -- nsga::tests::population_at_a_fixed_budget --ignored --nocapture`).
#[test]
#[ignore]
fn population_at_a_fixed_budget() {
    let hvs: Vec<f64> = [20, 50, 100]
        .iter()
        .map(|&population| {
            let mut nsga =
                Nsga::nsga2(&problem(10, 2, 3000), NsgaConfig { population: Some(population), ..Default::default() })
                    .unwrap();
            let h = hv(&run(&mut nsga, zdt1, 3000, 7), &[1.1, 1.1]);
            eprintln!("population {population}: hypervolume {h:.3}");
            h
        })
        .collect();
    assert!(hvs[0] > hvs[2], "{hvs:?}");
}
