use super::*;

const C: InputKind = InputKind::Continuous;

fn hyper(d: usize, ls: f64, sf2: f64, sn2: f64) -> Hyper {
    Hyper { log_lengthscales: vec![ls.ln(); d], log_signal_var: sf2.ln(), log_noise_var: sn2.ln() }
}

#[test]
fn interpolates_training_points_without_noise() {
    let xs: Vec<Vec<f64>> = (0..6).map(|i| vec![i as f64 / 5.0, (i * i % 7) as f64 / 7.0]).collect();
    let ys: Vec<f64> = xs.iter().map(|x| (3.0 * x[0]).sin() + x[1]).collect();
    let gp = Gp::with_hyper(&[C, C], &xs, &ys, hyper(2, 0.4, 1.0, 1e-10)).unwrap();
    for (x, y) in xs.iter().zip(&ys) {
        let (m, v) = gp.predict(x);
        assert!((m - y).abs() < 1e-5, "mean {m} vs {y}");
        assert!(v < 1e-6, "variance {v} at a training point");
    }
    // Far from the data the variance returns towards the signal variance.
    let (_, v) = Gp::with_hyper(&[C, C], &xs[..1], &ys[..1], hyper(2, 0.1, 1.0, 1e-10)).unwrap().predict(&[1.0, 1.0]);
    assert!(v > 0.99, "{v}");
}

#[test]
fn training_means_match_predictions() {
    let xs: Vec<Vec<f64>> = (0..9).map(|i| vec![(i as f64 * 0.37).fract(), (i as f64 * 0.71).fract()]).collect();
    let ys: Vec<f64> = xs.iter().map(|x| x[0] - x[1] * x[1]).collect();
    let gp = Gp::with_hyper(&[C, C], &xs, &ys, hyper(2, 0.3, 1.0, 0.05)).unwrap();
    for (x, m) in xs.iter().zip(gp.train_means()) {
        assert!((gp.predict(x).0 - m).abs() < 1e-9, "{} vs {m}", gp.predict(x).0);
    }
}

#[test]
fn marginal_likelihood_matches_closed_form() {
    // Two points, y = (1, -1): by symmetry the GLS mean is 0, and
    // yᵀK⁻¹y = 2 / (s - k), |K| = s² - k² with s = σ_f² + σ_n².
    let xs = vec![vec![0.2], vec![0.7]];
    let ys = vec![1.0, -1.0];
    let (ls, sf2, sn2) = (0.3, 1.5, 0.01);
    let gp = Gp::with_hyper(&[C], &xs, &ys, hyper(1, ls, sf2, sn2)).unwrap();
    let r = 0.5 / ls;
    let k = sf2 * (1.0 + 5f64.sqrt() * r + 5.0 * r * r / 3.0) * (-(5f64.sqrt()) * r).exp();
    let s = sf2 + sn2;
    let expect = -0.5 * 2.0 / (s - k) - 0.5 * (s * s - k * k).ln() - (2.0 * std::f64::consts::PI).ln();
    assert!(gp.mean_constant().abs() < 1e-12);
    assert!((gp.log_marginal_likelihood() - expect).abs() < 1e-10, "{} vs {expect}", gp.log_marginal_likelihood());
}

#[test]
fn likelihood_gradient_matches_finite_differences() {
    let kinds = [C, InputKind::Ordinal { levels: 5 }, InputKind::Categorical { choices: 3 }];
    let xs: Vec<Vec<f64>> = (0..12)
        .map(|i| {
            let t = i as f64;
            vec![(t * 0.37).fract(), (t * 0.61).fract(), (t * 0.23).fract()]
        })
        .collect();
    let mut ys: Vec<f64> = xs.iter().map(|x| x[0] * x[0] - x[1] + if x[2] > 0.5 { 0.3 } else { 0.0 }).collect();
    // Repeats of two points, so that their spread enters the likelihood too.
    let mut xs = xs;
    for (i, dy) in [(1, 0.05), (1, -0.08), (4, 0.02)] {
        xs.push(xs[i].clone());
        ys.push(ys[i] + dy);
    }
    let tx: Vec<Vec<f64>> = xs.iter().map(|x| transform(&kinds, x, false)).collect();
    let trefs: Vec<&Vec<f64>> = tx.iter().collect();
    let data = FitData::new(&kinds, super::repeats::Repeats::group(&trefs, &ys));
    assert_eq!((data.n, data.spread.extra), (12, 3));
    let theta = vec![-0.5, 0.2, 0.1, 0.3, -5.0];
    let (_, g) = data.neg_log_posterior(&theta);
    for i in 0..theta.len() {
        let h = 1e-6;
        let mut tp = theta.clone();
        tp[i] += h;
        let mut tm = theta.clone();
        tm[i] -= h;
        let fd = (data.neg_log_posterior(&tp).0 - data.neg_log_posterior(&tm).0) / (2.0 * h);
        assert!((fd - g[i]).abs() < 1e-4 * (1.0 + fd.abs()), "theta[{i}]: analytic {} vs fd {fd}", g[i]);
    }
}

#[test]
fn prediction_gradients_match_finite_differences() {
    let xs: Vec<Vec<f64>> = (0..10).map(|i| vec![(i as f64 * 0.31).fract(), (i as f64 * 0.77).fract()]).collect();
    let ys: Vec<f64> = xs.iter().map(|x| (4.0 * x[0]).cos() * x[1]).collect();
    let gp = Gp::with_hyper(&[C, C], &xs, &ys, hyper(2, 0.3, 1.2, 1e-4)).unwrap();
    let x = [0.43, 0.58];
    let (m, v, dm, dv) = gp.predict_with_grad(&x);
    let (m0, v0) = gp.predict(&x);
    assert!((m - m0).abs() < 1e-12 && (v - v0).abs() < 1e-12);
    for j in 0..2 {
        let h = 1e-6;
        let mut p = x;
        p[j] += h;
        let mut q = x;
        q[j] -= h;
        let ((mp, vp), (mq, vq)) = (gp.predict(&p), gp.predict(&q));
        assert!((dm[j] - (mp - mq) / (2.0 * h)).abs() < 1e-5, "dmean[{j}]");
        assert!((dv[j] - (vp - vq) / (2.0 * h)).abs() < 1e-5, "dvar[{j}]");
    }
}

#[test]
fn adding_a_point_equals_conditioning_on_it() {
    let xs: Vec<Vec<f64>> = (0..8).map(|i| vec![(i as f64 * 0.41).fract(), (i as f64 * 0.13).fract()]).collect();
    let ys: Vec<f64> = xs.iter().map(|x| x[0] - 2.0 * x[1] * x[1]).collect();
    let h = hyper(2, 0.5, 1.0, 1e-3);
    let mut gp = Gp::with_hyper(&[C, C], &xs[..7], &ys[..7], h.clone()).unwrap();
    gp.add_point(&xs[7], ys[7]).unwrap();
    let mut full = Gp::with_hyper(&[C, C], &xs, &ys, h).unwrap();
    // The incremental update keeps the earlier constant mean.
    full.mean = gp.mean;
    full.alpha = full.chol.solve(&DVector::from_vec(ys.clone()).add_scalar(-full.mean));
    for x in [[0.1, 0.9], [0.5, 0.5], [0.95, 0.05]] {
        let (a, b) = (gp.predict(&x), full.predict(&x));
        assert!((a.0 - b.0).abs() < 1e-9 && (a.1 - b.1).abs() < 1e-9, "{a:?} vs {b:?}");
    }
}

#[test]
fn fitted_model_predicts_a_smooth_function() {
    let f = |x: &[f64]| (6.0 * x[0]).sin() + 0.5 * x[1];
    let xs: Vec<Vec<f64>> = (0..25).map(|i| crate::cube::sobol_point(i, 3, 7)).collect();
    let ys: Vec<f64> = xs.iter().map(|x| f(x)).collect();
    let gp = Gp::fit(&[C, C, C], &xs, &ys, &FitOptions::default()).unwrap();
    let mut err = 0.0;
    let mut spread = 0.0;
    for i in 100..150 {
        let x = crate::cube::sobol_point(i, 3, 11);
        err += (gp.predict(&x).0 - f(&x)).powi(2);
        spread += f(&x).powi(2);
    }
    assert!(err / spread < 0.05, "relative squared error {}", err / spread);
    // x2 does not matter: its length scale is the longest.
    let ls = gp.hyper().lengthscales();
    assert!(ls[2] > ls[0] && ls[2] > ls[1], "{ls:?}");
}

#[test]
fn ints_in_one_level_are_one_point() {
    let k = [InputKind::Ordinal { levels: 4 }];
    let gp = Gp::with_hyper(&k, &[vec![0.30], vec![0.9]], &[1.0, -1.0], hyper(1, 0.5, 1.0, 1e-8)).unwrap();
    // 0.30 and 0.45 both decode to level 1.
    let (m, v) = gp.predict(&[0.45]);
    assert!((m - 1.0).abs() < 1e-4 && v < 1e-6, "{m} {v}");
}

#[test]
fn contradictory_duplicates_are_handled_by_jitter_or_noise() {
    let xs = vec![vec![0.5], vec![0.5], vec![0.2]];
    let ys = vec![1.0, -1.0, 0.0];
    let gp = Gp::with_hyper(&[C], &xs, &ys, hyper(1, 0.3, 1.0, 1e-6)).unwrap();
    assert!(gp.predict(&[0.5]).0.abs() < 1e-3);
    let fitted = Gp::fit(&[C], &xs, &ys, &FitOptions::default()).unwrap();
    assert!(fitted.hyper().noise_var() > 1e-3, "noise should explain the contradiction");
}

#[test]
fn non_finite_data_is_a_clear_error() {
    let err = Gp::with_hyper(&[C], &[vec![0.5]], &[f64::NAN], hyper(1, 0.3, 1.0, 1e-6)).unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    assert!(Gp::with_hyper(&[C], &[], &[], hyper(1, 0.3, 1.0, 1e-6)).is_err());
}

/// The GP's likelihood and posterior with repeats as counted rows, against the textbook
/// formulas on every row (a dense covariance with the duplicates in it).
#[test]
fn repeats_as_counted_rows_equal_every_row() {
    use nalgebra::{DMatrix, DVector};
    let xs = vec![vec![0.2], vec![0.2], vec![0.2], vec![0.7], vec![0.45], vec![0.7]];
    let ys = vec![1.0, 1.3, 0.8, -0.5, 0.1, -0.2];
    let (ls, sf2, sn2) = (0.3, 1.2, 0.05);
    let gp = Gp::with_hyper(&[C], &xs, &ys, hyper(1, ls, sf2, sn2)).unwrap();
    assert_eq!(gp.len(), 3);
    let k = |a: f64, b: f64| {
        let r = (a - b).abs() / ls;
        sf2 * (1.0 + 5f64.sqrt() * r + 5.0 * r * r / 3.0) * (-(5f64.sqrt()) * r).exp()
    };
    let n = xs.len();
    let kf = DMatrix::from_fn(n, n, |i, j| k(xs[i][0], xs[j][0]) + if i == j { sn2 } else { 0.0 });
    let chol = kf.clone().cholesky().unwrap();
    let y = DVector::from_vec(ys.clone());
    let ones = DVector::from_element(n, 1.0);
    let ki1 = chol.solve(&ones);
    let mean = ki1.dot(&y) / ki1.dot(&ones);
    let alpha = chol.solve(&y.add_scalar(-mean));
    let logdet = kf.determinant().ln();
    let lml =
        -0.5 * y.add_scalar(-mean).dot(&alpha) - 0.5 * logdet - 0.5 * n as f64 * (2.0 * std::f64::consts::PI).ln();
    assert!((gp.mean_constant() - mean).abs() < 1e-10, "{} vs {mean}", gp.mean_constant());
    assert!((gp.log_marginal_likelihood() - lml).abs() < 1e-9, "{} vs {lml}", gp.log_marginal_likelihood());
    for x in [0.0, 0.2, 0.33, 0.7, 1.0] {
        let kx = DVector::from_fn(n, |i, _| k(x, xs[i][0]));
        let mu = mean + kx.dot(&alpha);
        let var = sf2 - kx.dot(&chol.solve(&kx));
        let (m, v) = gp.predict(&[x]);
        assert!((m - mu).abs() < 1e-9 && (v - var).abs() < 1e-9, "at {x}: ({m}, {v}) vs ({mu}, {var})");
    }
    // Training means per row as given: a repeated point's for each of its rows.
    let means = gp.train_means();
    assert_eq!(means.len(), n);
    assert_eq!((means[0], means[3]), (means[2], means[5]));
    assert!((means[1] - gp.predict(&[0.2]).0).abs() < 1e-9);
}

#[test]
fn joint_draws_have_the_posterior_means_variances_and_correlations() {
    let xs: Vec<Vec<f64>> = (0..8).map(|i| vec![(i as f64 * 0.37).fract(), (i as f64 * 0.61).fract()]).collect();
    let ys: Vec<f64> = xs.iter().map(|x| x[0] * 2.0 - x[1]).collect();
    let gp = Gp::with_hyper(&[C, C], &xs, &ys, hyper(2, 0.3, 1.0, 0.05)).unwrap();
    // Two far-apart points, and two that nearly coincide (their draws move together).
    let at = vec![vec![0.1, 0.9], vec![0.95, 0.05], vec![0.5, 0.5], vec![0.501, 0.5]];
    let mut rng = crate::rng::Rng::new(7, 1);
    let draws: Vec<Vec<f64>> = (0..4000).map(|_| gp.sample_joint(&at, &mut rng).unwrap()).collect();
    let n = draws.len() as f64;
    for (j, x) in at.iter().enumerate() {
        let (m, v) = gp.predict(x);
        let mean = draws.iter().map(|d| d[j]).sum::<f64>() / n;
        let var = draws.iter().map(|d| (d[j] - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - m).abs() < 4.0 * (v / n).sqrt() + 1e-9, "point {j}: mean {mean} vs {m}");
        assert!((var / v - 1.0).abs() < 0.1, "point {j}: variance {var} vs {v}");
    }
    let diff = draws.iter().map(|d| (d[2] - d[3]).powi(2)).sum::<f64>() / n;
    assert!(diff < 1e-3 * gp.predict(&at[2]).1, "nearly one point, drawn apart: {diff}");
}
