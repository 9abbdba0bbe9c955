//! The hypervolume indicator: the volume of objective space that a set of points dominates,
//! bounded by a reference point (all objectives minimized). Exact, by slicing along the last
//! objective down to a sweep in two dimensions: `O(n log n)` for two objectives,
//! `O(n² log n)` for three, which is what fronts of a few hundred points need.

use std::cmp::Ordering;

/// The hypervolume of `points` with respect to `reference`: the measure of the set of vectors
/// that some point weakly dominates and that are below the reference in every objective.
/// Points not strictly below the reference in every objective add nothing; so do dominated
/// points. 0 for an empty set.
///
/// ```
/// use knobs::pareto::hypervolume;
///
/// let front: Vec<&[f64]> = vec![&[1.0, 2.0, 3.0], &[3.0, 1.0, 2.0]];
/// // Two boxes of 4·3·2 = 24 and 2·4·3 = 24 that overlap in 2·3·2 = 12.
/// assert_eq!(hypervolume(&front, &[5.0, 5.0, 5.0]), 36.0);
/// ```
pub fn hypervolume(points: &[&[f64]], reference: &[f64]) -> f64 {
    let inside: Vec<Vec<f64>> = points
        .iter()
        .filter(|p| p.len() == reference.len() && p.iter().zip(reference).all(|(v, r)| v.is_finite() && v < r))
        .map(|p| p.to_vec())
        .collect();
    if inside.is_empty() || reference.is_empty() {
        return 0.0;
    }
    slices(inside, reference)
}

fn by(k: usize) -> impl Fn(&Vec<f64>, &Vec<f64>) -> Ordering {
    move |a, b| a[k].partial_cmp(&b[k]).unwrap_or(Ordering::Equal)
}

/// Points all strictly inside the reference box.
fn slices(mut points: Vec<Vec<f64>>, reference: &[f64]) -> f64 {
    let m = reference.len();
    match m {
        1 => reference[0] - points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min),
        2 => {
            points.sort_by(by(0));
            let mut volume = 0.0;
            let mut ceiling = reference[1];
            for p in &points {
                if p[1] < ceiling {
                    // From this point's first objective to the reference's, everything below the
                    // ceiling and above p[1] is newly dominated.
                    volume += (reference[0] - p[0]) * (ceiling - p[1]);
                    ceiling = p[1];
                }
            }
            volume
        }
        _ => {
            let last = m - 1;
            points.sort_by(by(last));
            let mut volume = 0.0;
            let mut below: Vec<Vec<f64>> = Vec::with_capacity(points.len());
            for i in 0..points.len() {
                let p = &points[i];
                let projected = p[..last].to_vec();
                // Keep only the non-dominated projections: a dominated one adds nothing.
                if !below.iter().any(|q| q.iter().zip(&projected).all(|(a, b)| a <= b)) {
                    below.retain(|q| !projected.iter().zip(q).all(|(a, b)| a <= b));
                    below.push(projected);
                }
                let top = points.get(i + 1).map_or(reference[last], |q| q[last]);
                let height = top - p[last];
                if height > 0.0 {
                    volume += slices(below.clone(), &reference[..last]) * height;
                }
            }
            volume
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Monte Carlo estimate of the dominated volume, for cross-checking.
    fn sampled(points: &[Vec<f64>], reference: &[f64], n: usize, rng: &mut Rng) -> f64 {
        let hits = (0..n)
            .filter(|_| {
                let y: Vec<f64> = reference.iter().map(|r| rng.uniform() * r).collect();
                points.iter().any(|p| p.iter().zip(&y).all(|(a, b)| a <= b))
            })
            .count();
        hits as f64 / n as f64 * reference.iter().product::<f64>()
    }

    #[test]
    fn two_objectives_by_hand() {
        let pts: Vec<&[f64]> = vec![&[1.0, 4.0], &[2.0, 2.0], &[4.0, 1.0], &[3.0, 3.0]];
        assert_eq!(hypervolume(&pts, &[5.0, 5.0]), 11.0);
        // Outside the reference, or on its boundary: nothing.
        assert_eq!(hypervolume(&[&[5.0, 1.0], &[6.0, 0.0]], &[5.0, 5.0]), 0.0);
        assert_eq!(hypervolume(&[], &[1.0, 1.0]), 0.0);
        assert_eq!(hypervolume(&[&[f64::NAN, 0.0]], &[1.0, 1.0]), 0.0);
        // Duplicates count once.
        assert_eq!(hypervolume(&[&[1.0, 1.0], &[1.0, 1.0]], &[2.0, 2.0]), 1.0);
    }

    #[test]
    fn agrees_with_sampling_in_three_and_four_objectives() {
        let mut rng = Rng::new(11, 3);
        for m in [3usize, 4] {
            // Points on a concave front inside [0, 1]^m, reference at 1.1.
            let points: Vec<Vec<f64>> = (0..25)
                .map(|_| {
                    let v: Vec<f64> = (0..m).map(|_| rng.normal().abs() + 1e-3).collect();
                    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
                    v.iter().map(|x| x / norm).collect()
                })
                .collect();
            let reference = vec![1.1; m];
            let refs: Vec<&[f64]> = points.iter().map(|p| p.as_slice()).collect();
            let exact = hypervolume(&refs, &reference);
            let estimate = sampled(&points, &reference, 200_000, &mut rng);
            let total: f64 = reference.iter().product();
            assert!((exact - estimate).abs() < 0.01 * total, "m = {m}: exact {exact}, sampled {estimate}");
        }
    }

    #[test]
    fn the_sphere_front_approaches_its_known_volume() {
        // DTLZ2's front is the positive unit sphere; with reference (1,1,1) the dominated volume
        // tends to 1 - π/6 as the front fills in.
        let n = 40;
        let mut points = Vec::new();
        for i in 0..=n {
            for j in 0..=n {
                let (a, b) = (
                    i as f64 / n as f64 * std::f64::consts::FRAC_PI_2,
                    j as f64 / n as f64 * std::f64::consts::FRAC_PI_2,
                );
                points.push(vec![a.cos() * b.cos(), a.cos() * b.sin(), a.sin()]);
            }
        }
        let refs: Vec<&[f64]> = points.iter().map(|p| p.as_slice()).collect();
        let hv = hypervolume(&refs, &[1.0, 1.0, 1.0]);
        let limit = 1.0 - std::f64::consts::PI / 6.0;
        assert!(hv < limit && hv > limit - 0.03, "{hv} vs {limit}");
    }
}
