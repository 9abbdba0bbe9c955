//! NSGA-III's cut of the last front (Deb and Jain 2014): normalize the objectives by the ideal
//! point and the intercepts of the hyperplane through the extreme points, attach every point to
//! its nearest reference direction, then fill the directions that have the fewest members,
//! one point at a time.

use nalgebra::{DMatrix, DVector};

use super::Individual;
use crate::rng::Rng;

/// The `room` members of `front` (indices into `all`) that best fill the reference
/// directions, given the members already `chosen`.
pub(super) fn pick(
    all: &[Individual],
    chosen: &[usize],
    front: &[usize],
    room: usize,
    directions: &[Vec<f64>],
    rng: &mut Rng,
) -> Vec<usize> {
    let everyone: Vec<usize> = chosen.iter().chain(front).copied().collect();
    let normalized = normalize(all, &everyone);
    // Nearest direction and the perpendicular distance to it, for each of `everyone`.
    let nearest: Vec<(usize, f64)> = normalized.iter().map(|f| closest(f, directions)).collect();
    let mut members = vec![0usize; directions.len()];
    for &(j, _) in &nearest[..chosen.len()] {
        members[j] += 1;
    }
    // Candidates of the last front per direction: (position in `everyone`, distance).
    let mut waiting: Vec<Vec<(usize, f64)>> = vec![Vec::new(); directions.len()];
    for (k, &(j, d)) in nearest.iter().enumerate().skip(chosen.len()) {
        waiting[j].push((k, d));
    }
    let mut open: Vec<usize> = (0..directions.len()).collect();
    let mut picked = Vec::with_capacity(room);
    while picked.len() < room && !open.is_empty() {
        let least = open.iter().map(|&j| members[j]).min().unwrap_or(0);
        let ties: Vec<usize> = open.iter().copied().filter(|&j| members[j] == least).collect();
        let j = ties[rng.below(ties.len())];
        if waiting[j].is_empty() {
            open.retain(|&o| o != j);
            continue;
        }
        let at = if members[j] == 0 {
            // An empty direction takes its closest point.
            (0..waiting[j].len()).min_by(|&a, &b| waiting[j][a].1.total_cmp(&waiting[j][b].1)).unwrap_or(0)
        } else {
            rng.below(waiting[j].len())
        };
        let (k, _) = waiting[j].swap_remove(at);
        picked.push(everyone[k]);
        members[j] += 1;
    }
    picked
}

/// The objectives of `who`, translated by the ideal point and divided by the intercepts of
/// the hyperplane through the extreme points (each axis' worst value where that plane is
/// degenerate).
fn normalize(all: &[Individual], who: &[usize]) -> Vec<Vec<f64>> {
    let m = all[who[0]].f.len();
    let ideal: Vec<f64> = (0..m).map(|k| who.iter().map(|&i| all[i].f[k]).fold(f64::INFINITY, f64::min)).collect();
    let translated: Vec<Vec<f64>> =
        who.iter().map(|&i| all[i].f.iter().zip(&ideal).map(|(v, z)| v - z).collect()).collect();
    let worst: Vec<f64> = (0..m).map(|k| translated.iter().map(|f| f[k]).fold(0.0, f64::max)).collect();
    // Extreme point of axis k: the smallest achievement scalarizing value with weights e_k.
    let extremes: Vec<&Vec<f64>> = (0..m)
        .map(|k| {
            let asf =
                |f: &Vec<f64>| (0..m).map(|j| f[j] / if j == k { 1.0 } else { 1e-6 }).fold(f64::NEG_INFINITY, f64::max);
            translated.iter().min_by(|a, b| asf(a).total_cmp(&asf(b))).expect("`who` is not empty")
        })
        .collect();
    let intercepts = hyperplane_intercepts(&extremes)
        .filter(|a| a.iter().zip(&worst).all(|(a, w)| a.is_finite() && *a > 1e-10 && *a <= w * 1e6 + 1e-10))
        .unwrap_or(worst);
    translated
        .into_iter()
        .map(|f| f.iter().zip(&intercepts).map(|(v, a)| if *a > 1e-12 { v / a } else { *v }).collect())
        .collect()
}

/// The intercepts of the hyperplane through `m` points in `m` dimensions, if it is unique.
fn hyperplane_intercepts(points: &[&Vec<f64>]) -> Option<Vec<f64>> {
    let m = points.len();
    let a = DMatrix::from_fn(m, m, |r, c| points[r][c]);
    let b = a.lu().solve(&DVector::from_element(m, 1.0))?;
    Some(b.iter().map(|v| 1.0 / v).collect())
}

/// The reference direction nearest to `f` (perpendicular distance) and that distance.
fn closest(f: &[f64], directions: &[Vec<f64>]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, w) in directions.iter().enumerate() {
        let ww: f64 = w.iter().map(|v| v * v).sum();
        let t = if ww > 0.0 { f.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() / ww } else { 0.0 };
        let d: f64 = f.iter().zip(w).map(|(a, b)| (a - t * b).powi(2)).sum::<f64>().sqrt();
        if d < best.1 {
            best = (j, d);
        }
    }
    best
}
