//! Unit tests of `gradient`: differences, discrete slopes, the cache's
//! storage and its bound.

use super::config::Fd;
use super::lbfgs::{Values, neighbours};
use super::*;

fn known(cost: f64) -> Known {
    Known { cost, gradient: None, failed: false }
}

#[test]
fn differences_stay_in_the_cube_and_are_one_level_wide_for_levels() {
    let fd = Fd { central: false, step: 1e-3 };
    assert_eq!(neighbours(Dim::Continuous, 0.5, fd), (0.5, 0.5 + 1e-3));
    assert_eq!(neighbours(Dim::Continuous, 1.0, fd), (1.0 - 1e-3, 1.0));
    let central = Fd { central: true, step: 1e-3 };
    assert_eq!(neighbours(Dim::Continuous, 0.0, central), (0.0, 1e-3));
    let int = Dim::Integer { levels: 4 };
    assert_eq!(neighbours(int, 0.375, fd), (0.125, 0.625));
    assert_eq!(neighbours(int, 0.125, fd), (0.125, 0.375));
    assert_eq!(neighbours(int, 0.875, fd), (0.625, 0.875));
    assert_eq!(neighbours(Dim::Categorical { choices: 1 }, 0.5, fd), (0.5, 0.5));
}

#[test]
fn a_discrete_coordinate_moves_only_towards_a_better_level() {
    let dims = [Dim::Integer { levels: 4 }];
    let fd = Fd { central: false, step: 1e-3 };
    let gradient_with = |costs: [f64; 4], at: usize| {
        let entries: Vec<(Vec<u64>, Known)> =
            (0..4).map(|k| (key(&[(k as f64 + 0.5) / 4.0]), known(costs[k]))).collect();
        let lookup = |k: &[u64]| entries.iter().find(|(e, _)| e.as_slice() == k).map(|(_, v)| v);
        let values = Values { dims: &dims, fd, known: &lookup, grads: None, expect_gradients: false };
        values.gradient(&[(at as f64 + 0.5) / 4.0]).unwrap()[0]
    };
    assert_eq!(gradient_with([3.0, 1.0, 2.0, 5.0], 1), 0.0, "level 1 beats both neighbours");
    assert_eq!(gradient_with([3.0, 1.0, 2.0, 5.0], 0), -8.0, "towards level 1");
    assert_eq!(gradient_with([3.0, 1.0, 2.0, 5.0], 2), 4.0, "towards level 1");
    assert_eq!(gradient_with([3.0, 1.0, 2.0, 0.5], 2), -6.0, "the steeper of two better levels");
    assert_eq!(gradient_with([0.0, 1.0, 2.0, 5.0], 0), 0.0, "best level on the edge");
}

#[test]
fn stencil_points_are_stored_as_one_changed_coordinate() {
    let mut start = Start { id: 0, x0: vec![0.5; 3], z0: vec![0.5; 3], points: Vec::new(), cache: Vec::new() };
    let x = vec![0.25, 0.5, 0.75];
    let mut s1 = x.clone();
    s1[1] = 0.5 + 1e-8;
    // The stencil point may be told before its line-search point.
    start.insert(&s1, Some((1, 0.5)), known(2.0));
    start.insert(&x, None, known(1.0));
    start.insert(&x, None, known(1.0));
    assert_eq!(start.points, vec![x.clone()]);
    assert_eq!(start.cache.len(), 2);
    let points: Vec<Vec<f64>> = start.cache.iter().map(|c| start.point(c)).collect();
    assert_eq!(points, vec![s1, x]);
}

#[test]
fn a_long_start_keeps_its_state_bounded() {
    // A 30-d valley that takes many iterations: the cache bound ends the
    // start (and the search restarts) before its state grows past it.
    let d = 30;
    let f = |x: &[f64]| x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum::<f64>();
    let mut opt = Gradient::new(&Problem::new(vec![Dim::Continuous; d], 3), GradientConfig::default()).unwrap();
    let mut largest = 0;
    for _ in 0..400 {
        let c = opt.ask(31).unwrap();
        let told: Vec<Observed> = c.iter().map(|c| Observed::ok(Some(c.ticket), c.x.clone(), f(&c.x))).collect();
        opt.tell(&told).unwrap();
        if let Some(Run::Lbfgs(s)) = &opt.state.run {
            largest = largest.max(s.size());
        }
    }
    assert!(opt.starts() >= 2, "the bound never ended a start");
    assert!(largest > CACHE_NUMBERS * 8 / 10, "the first start ended early ({largest} numbers)");
    assert!(largest < CACHE_NUMBERS + 40 * d, "state grew to {largest} numbers");
    let text = serde_json::to_string(&opt.snapshot().unwrap()).unwrap();
    assert!(text.len() < 2_000_000, "snapshot of {} bytes", text.len());
}
