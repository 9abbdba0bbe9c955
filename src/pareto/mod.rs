//! Pareto arithmetic shared by the multi-objective optimizers, the recommendations and the
//! reports: dominance (with constraints), non-dominated sorting, crowding distance, the knee of
//! a front, reference directions, and the hypervolume ([`hypervolume`]).
//!
//! Every objective vector here is sign-normalized: lower is better in every coordinate, as the
//! study hands them to optimizers ([`crate::optim::Observed::objectives`]).
//!
//! ```
//! use knobs::pareto::{fronts, hypervolume, Member};
//!
//! let points = [[1.0, 4.0], [2.0, 2.0], [4.0, 1.0], [3.0, 3.0]];
//! let members: Vec<Member> = points.iter().map(|p| Member::feasible(p)).collect();
//! assert_eq!(fronts(&members), vec![vec![0, 1, 2], vec![3]]);
//! let front: Vec<&[f64]> = points[..3].iter().map(|p| p.as_slice()).collect();
//! // Boxes up to the reference point (5, 5): 1×1 + 2×3 + 1×4.
//! assert_eq!(hypervolume(&front, &[5.0, 5.0]), 11.0);
//! ```

mod hypervolume;

pub use hypervolume::hypervolume;

use std::cmp::Ordering;

/// One point to sort: its objective vector (lower is better) and its total constraint
/// violation (0 when feasible).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Member<'a> {
    /// Sign-normalized objective values.
    pub objectives: &'a [f64],
    /// Total constraint violation, ≥ 0.
    pub violation: f64,
}

impl<'a> Member<'a> {
    /// A feasible point.
    pub fn feasible(objectives: &'a [f64]) -> Self {
        Member { objectives, violation: 0.0 }
    }

    /// Whether it violates no constraint.
    pub fn is_feasible(&self) -> bool {
        self.violation <= 0.0
    }

    /// Deb's constrained domination: a feasible point dominates every infeasible one, of two
    /// infeasible points the one with the smaller violation dominates, and of two feasible
    /// points the one that is no worse in every objective and better in one.
    pub fn dominates(&self, other: &Member) -> bool {
        match (self.is_feasible(), other.is_feasible()) {
            (true, false) => true,
            (false, true) => false,
            (false, false) => self.violation < other.violation,
            (true, true) => dominates(self.objectives, other.objectives),
        }
    }
}

/// Whether `a` Pareto-dominates `b` (minimization): no worse in every objective, better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// The non-dominated set of the vectors inserted so far (lower is better), kept as they come:
/// what a study's front is while it runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Archive(Vec<Vec<f64>>);

impl Archive {
    /// Add `v` unless a member equals or dominates it, dropping the members it dominates;
    /// whether it joined.
    pub fn insert(&mut self, v: Vec<f64>) -> bool {
        if self.0.iter().any(|a| *a == v || dominates(a, &v)) {
            return false;
        }
        self.0.retain(|a| !dominates(&v, a));
        self.0.push(v);
        true
    }

    /// The members, as slices.
    pub fn members(&self) -> Vec<&[f64]> {
        self.0.iter().map(Vec::as_slice).collect()
    }
}

/// Non-dominated sorting (Deb et al. 2002): the indices of `members` by front, the first front
/// being the non-dominated ones; within a front, indices ascend.
pub fn fronts(members: &[Member]) -> Vec<Vec<usize>> {
    let n = members.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominates_list: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if members[i].dominates(&members[j]) {
                dominates_list[i].push(j);
                dominated_by[j] += 1;
            } else if members[j].dominates(&members[i]) {
                dominates_list[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominates_list[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::take(&mut current));
        current = next;
    }
    out
}

/// The indices of the non-dominated members (the first of [`fronts`]).
pub fn non_dominated(members: &[Member]) -> Vec<usize> {
    (0..members.len()).filter(|&i| !members.iter().any(|m| m.dominates(&members[i]))).collect()
}

/// Crowding distance of each point of one front (Deb et al. 2002): the sum over objectives of
/// the gap between its neighbours, divided by the front's extent in that objective; the
/// extremes of every objective get infinity.
pub fn crowding_distance(front: &[&[f64]]) -> Vec<f64> {
    let n = front.len();
    let mut distance = vec![0.0; n];
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    let mut order: Vec<usize> = (0..n).collect();
    for k in 0..front[0].len() {
        let column: Vec<f64> = front.iter().map(|p| p[k]).collect();
        order.sort_by(|&a, &b| column[a].partial_cmp(&column[b]).unwrap_or(Ordering::Equal).then(a.cmp(&b)));
        let (lo, hi) = (column[order[0]], column[order[n - 1]]);
        distance[order[0]] = f64::INFINITY;
        distance[order[n - 1]] = f64::INFINITY;
        let extent = hi - lo;
        if extent <= 0.0 || !extent.is_finite() {
            continue;
        }
        for w in order.windows(3) {
            distance[w[1]] += (column[w[2]] - column[w[0]]) / extent;
        }
    }
    distance
}

/// The knee of a front: after scaling every objective to `[0, 1]` over the front (0 = the
/// front's best), the point whose worst scaled objective is best, i.e. the most balanced
/// trade-off; ties go to the smaller sum of scaled objectives, then to the lower index. This
/// finds the middle of convex and concave fronts alike. `None` for an empty front.
pub fn knee(front: &[&[f64]]) -> Option<usize> {
    let first = front.first()?;
    let m = first.len();
    let lo: Vec<f64> = (0..m).map(|k| front.iter().map(|p| p[k]).fold(f64::INFINITY, f64::min)).collect();
    let hi: Vec<f64> = (0..m).map(|k| front.iter().map(|p| p[k]).fold(f64::NEG_INFINITY, f64::max)).collect();
    let key = |p: &[f64]| -> (f64, f64) {
        let scaled = (0..m).map(|k| if hi[k] > lo[k] { (p[k] - lo[k]) / (hi[k] - lo[k]) } else { 0.0 });
        scaled.fold((0.0f64, 0.0), |(worst, sum), v| (worst.max(v), sum + v))
    };
    let mut best = 0;
    let mut best_key = (f64::INFINITY, f64::INFINITY);
    for (i, p) in front.iter().enumerate() {
        let k = key(p);
        if k < best_key {
            best = i;
            best_key = k;
        }
    }
    Some(best)
}

/// Das and Dennis's structured reference directions: every point of the unit simplex in `m`
/// dimensions whose coordinates are multiples of `1 / divisions` (there are
/// `C(divisions + m - 1, m - 1)` of them).
pub fn reference_directions(m: usize, divisions: usize) -> Vec<Vec<f64>> {
    fn fill(left: usize, k: usize, m: usize, p: usize, cur: &mut Vec<usize>, out: &mut Vec<Vec<f64>>) {
        if k == m - 1 {
            cur.push(left);
            out.push(cur.iter().map(|&c| c as f64 / p as f64).collect());
            cur.pop();
            return;
        }
        for c in 0..=left {
            cur.push(c);
            fill(left - c, k + 1, m, p, cur, out);
            cur.pop();
        }
    }
    let mut out = Vec::new();
    if m == 0 || divisions == 0 {
        return out;
    }
    fill(divisions, 0, m, divisions, &mut Vec::with_capacity(m), &mut out);
    out
}

/// How many directions [`reference_directions`] gives for `divisions` in `m` objectives:
/// `C(divisions + m - 1, m - 1)` (saturating).
pub fn reference_count(m: usize, divisions: usize) -> usize {
    let mut c: usize = 1;
    for i in 1..m {
        c = c.saturating_mul(divisions + i) / i;
    }
    c
}

/// The most divisions (at least 1, at most 200) whose [`reference_directions`] in `m`
/// objectives are no more than `most`.
pub fn divisions_within(m: usize, most: usize) -> usize {
    let mut p = 1;
    while p < 200 && reference_count(m, p + 1) <= most {
        p += 1;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constrained_domination_puts_feasible_first_then_smaller_violation() {
        let a = [1.0, 1.0];
        let b = [0.0, 0.0];
        let feasible = Member::feasible(&a);
        let slightly = Member { objectives: &b, violation: 0.1 };
        let badly = Member { objectives: &b, violation: 2.0 };
        assert!(feasible.dominates(&slightly) && !slightly.dominates(&feasible));
        assert!(slightly.dominates(&badly) && !badly.dominates(&slightly));
        assert!(!feasible.dominates(&feasible), "nothing dominates itself");
        assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]) && !dominates(&[1.0, 2.0], &[2.0, 1.0]));
    }

    #[test]
    fn sorting_finds_the_layers_and_infeasible_points_come_last() {
        let pts = [[1.0, 5.0], [2.0, 3.0], [3.0, 4.0], [4.0, 1.0], [5.0, 5.0], [0.0, 0.0]];
        let mut members: Vec<Member> = pts.iter().map(|p| Member::feasible(p)).collect();
        members[5].violation = 1.0;
        let f = fronts(&members);
        assert_eq!(f, vec![vec![0, 1, 3], vec![2], vec![4], vec![5]]);
        assert_eq!(non_dominated(&members), vec![0, 1, 3]);
        assert_eq!(f.iter().map(Vec::len).sum::<usize>(), pts.len());
    }

    #[test]
    fn the_archive_keeps_what_nothing_dominates() {
        let mut a = Archive::default();
        assert!(a.insert(vec![3.0, 3.0]));
        assert!(a.insert(vec![1.0, 5.0]));
        assert!(!a.insert(vec![3.0, 3.0]), "a copy adds nothing");
        assert!(!a.insert(vec![4.0, 4.0]), "a dominated point is refused");
        assert!(a.insert(vec![2.0, 2.0]), "it joins and drops (3, 3)");
        assert_eq!(a.members(), vec![&[1.0, 5.0][..], &[2.0, 2.0][..]]);
    }

    #[test]
    fn crowding_gives_extremes_infinity_and_rewards_isolated_points() {
        let pts = [[0.0, 4.0], [1.0, 3.0], [1.1, 2.9], [4.0, 0.0]];
        let front: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        let d = crowding_distance(&front);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // Point 2 has a far neighbour (4, 0) on one side; point 1 is squeezed.
        assert!(d[2] > d[1], "{d:?}");
        assert!((d[1] - (1.1 / 4.0 + 1.1 / 4.0)).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn the_knee_is_the_balanced_point_on_convex_and_concave_fronts() {
        let pts = [[0.0, 10.0], [1.0, 2.0], [5.0, 1.0], [10.0, 0.0]];
        let front: Vec<&[f64]> = pts.iter().map(|p| p.as_slice()).collect();
        assert_eq!(knee(&front), Some(1));
        // A quarter circle: the middle, not an end.
        let arc: Vec<[f64; 2]> =
            (0..=8).map(|i| f64::from(i) * std::f64::consts::FRAC_PI_2 / 8.0).map(|a| [a.cos(), a.sin()]).collect();
        let front: Vec<&[f64]> = arc.iter().map(|p| p.as_slice()).collect();
        assert_eq!(knee(&front), Some(4));
        assert_eq!(knee(&[]), None);
    }

    #[test]
    fn reference_directions_cover_the_simplex() {
        let r = reference_directions(3, 4);
        assert_eq!(r.len(), 15);
        assert!(r.iter().all(|w| (w.iter().sum::<f64>() - 1.0).abs() < 1e-12 && w.iter().all(|&v| v >= 0.0)));
        assert_eq!(
            reference_directions(2, 3),
            vec![vec![0.0, 1.0], vec![1.0 / 3.0, 2.0 / 3.0], vec![2.0 / 3.0, 1.0 / 3.0], vec![1.0, 0.0]]
        );
        assert_eq!((reference_count(3, 12), reference_directions(3, 12).len()), (91, 91));
        assert_eq!((divisions_within(3, 91), divisions_within(3, 90)), (12, 11));
        assert_eq!(divisions_within(2, 1), 1, "at least one division, even past the limit");
    }
}
