//! Subsets of data: which observations a GP is conditioned on when there
//! are too many for an O(n³) factorization.

/// Indices (ascending) of at most `max` of `values`: the `best` lowest, then
/// the most recent (highest index) of the rest. All of them when there are
/// no more than `max`.
pub fn best_and_recent(values: &[f64], max: usize, best: usize) -> Vec<usize> {
    let n = values.len();
    if n <= max {
        return (0..n).collect();
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut keep = vec![false; n];
    let best = best.min(max);
    order.iter().take(best).for_each(|&i| keep[i] = true);
    let recent = (0..n).rev().filter(|&i| !keep[i]).take(max - best).collect::<Vec<_>>();
    recent.into_iter().for_each(|i| keep[i] = true);
    (0..n).filter(|&i| keep[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_best_and_the_latest() {
        let v = [5.0, 0.0, 9.0, 1.0, 8.0, 7.0, 6.0];
        assert_eq!(best_and_recent(&v, 4, 2), vec![1, 3, 5, 6]);
        assert_eq!(best_and_recent(&v, 10, 2), (0..7).collect::<Vec<_>>());
        assert_eq!(best_and_recent(&v, 3, 5), vec![0, 1, 3]);
    }
}
