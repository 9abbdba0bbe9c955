//! NSGA-II's cut of the last front: keep its most isolated points, by crowding distance.

use super::Individual;
use crate::pareto::crowding_distance;

/// The `room` members of `front` (indices into `all`) with the largest crowding distance.
pub(super) fn pick(all: &[Individual], front: &[usize], room: usize) -> Vec<usize> {
    let points: Vec<&[f64]> = front.iter().map(|&i| all[i].f.as_slice()).collect();
    let distance = crowding_distance(&points);
    let mut order: Vec<usize> = (0..front.len()).collect();
    // Larger distance first; ties keep the front's order (deterministic).
    order.sort_by(|&a, &b| distance[b].total_cmp(&distance[a]).then(a.cmp(&b)));
    order.into_iter().take(room).map(|k| front[k]).collect()
}

/// Each survivor's crowding distance within its front, for the tournaments (finite: the
/// extremes get `f64::MAX`, which a snapshot can store).
pub(super) fn assign(parents: &mut [Individual]) {
    let Some(last) = parents.iter().map(|p| p.rank).max() else { return };
    for rank in 0..=last {
        let members: Vec<usize> = (0..parents.len()).filter(|&i| parents[i].rank == rank).collect();
        let points: Vec<&[f64]> = members.iter().map(|&i| parents[i].f.as_slice()).collect();
        let distance = crowding_distance(&points);
        for (k, &i) in members.iter().enumerate() {
            parents[i].crowd = distance[k].min(f64::MAX);
        }
    }
}
