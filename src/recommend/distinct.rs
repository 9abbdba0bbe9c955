//! Distinct alternatives: configurations a user would call the same are one
//! candidate, and the list prefers variety over probes of one point.
//!
//! Two configurations are the same candidate when every parameter is active
//! in both or neither and, where active, categoricals and bools are equal and
//! numbers lie within [`NEAR`] of each other on the parameter's own scale in
//! the unit cube (its log scale for log parameters; whole grid steps for ints
//! and stepped floats, so neighbouring values of an int with up to 20 values
//! stay distinct).

use crate::space::{Config, Domain, Space, Value};

/// Share of a numeric parameter's range within which two values are one candidate.
pub const NEAR: f64 = 0.05;

/// Whether `a` and `b` are the same candidate in `space` (see the module docs).
pub fn near(space: &Space, a: &Config, b: &Config) -> bool {
    space.params.iter().all(|p| match (a.get(&p.name), b.get(&p.name)) {
        (None, None) => true,
        (Some(x), Some(y)) => match p.domain {
            Domain::Categorical { .. } | Domain::Bool => x.same(y),
            _ => match (p.domain.encode(x), p.domain.encode(y)) {
                (Some(u), Some(v)) => (u - v).abs() < NEAR,
                _ => x.same(y),
            },
        },
        _ => false,
    })
}

/// One candidate: the indices (into the caller's list, best first) of the configurations it
/// merges, the best ranked first.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    /// Indices of the merged configurations, the representative first.
    pub members: Vec<usize>,
}

/// Merge configurations (ordered best first) into candidates: each joins the first
/// candidate whose representative it is near, else starts one. Candidates come out best first.
pub fn cluster(space: &Space, configs: &[&Config]) -> Vec<Cluster> {
    let mut out: Vec<Cluster> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        match out.iter_mut().find(|k| near(space, configs[k.members[0]], c)) {
            Some(k) => k.members.push(i),
            None => out.push(Cluster { members: vec![i] }),
        }
    }
    out
}

/// A chosen candidate and, when it is the best of a categorical choice the overall best does
/// not make, that choice (`param`, `value`).
#[derive(Debug, Clone, PartialEq)]
pub struct Pick {
    /// Index into the candidates.
    pub index: usize,
    /// The categorical choices it is the best of, where the overall best differs.
    pub best_with: Vec<(String, Value)>,
}

/// Choose up to `k` of `candidates` (best first): the best; then, in up to half of the
/// remaining places, the best candidate for each categorical or bool choice the best does not
/// make (best of those first); then the best of the rest. Returned best first.
pub fn select(space: &Space, candidates: &[&Config], k: usize) -> Vec<Pick> {
    if candidates.is_empty() || k == 0 {
        return vec![];
    }
    let best = candidates[0];
    // The best candidate of each choice the best does not make, with the choices it stands for.
    let mut alternatives: Vec<Pick> = Vec::new();
    for p in &space.params {
        if !matches!(p.domain, Domain::Categorical { .. } | Domain::Bool) {
            continue;
        }
        let mut seen: Vec<&Value> = best.get(&p.name).into_iter().collect();
        for (i, c) in candidates.iter().enumerate() {
            let Some(v) = c.get(&p.name) else { continue };
            if seen.iter().any(|s| s.same(v)) {
                continue;
            }
            seen.push(v);
            let entry = (p.name.clone(), v.clone());
            match alternatives.iter_mut().find(|a| a.index == i) {
                Some(a) => a.best_with.push(entry),
                None => alternatives.push(Pick { index: i, best_with: vec![entry] }),
            }
        }
    }
    alternatives.sort_by_key(|a| a.index);
    let mut picks = vec![Pick { index: 0, best_with: vec![] }];
    let variety = (k - 1).div_ceil(2);
    picks.extend(alternatives.iter().take(variety).cloned());
    let mut next = 1;
    while picks.len() < k && next < candidates.len() {
        if !picks.iter().any(|p| p.index == next) {
            let best_with = alternatives.iter().find(|a| a.index == next).map(|a| a.best_with.clone());
            picks.push(Pick { index: next, best_with: best_with.unwrap_or_default() });
        }
        next += 1;
    }
    picks.truncate(k);
    picks.sort_by_key(|p| p.index);
    picks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::space::Param;

    fn space() -> Space {
        let param =
            |name: &str, domain| Param { name: name.into(), domain, default: None, when: vec![], risky: vec![] };
        Space {
            params: vec![
                param("ttl", Domain::Float { low: 0.0, high: 1000.0, log: false, step: None }),
                param("workers", Domain::Int { low: 1, high: 16, log: false, step: 1 }),
                param("size", Domain::Int { low: 1, high: 100_000, log: false, step: 1 }),
                param(
                    "policy",
                    Domain::Categorical { choices: vec![Value::Str("lru".into()), Value::Str("lfu".into())] },
                ),
            ],
            relations: vec![],
        }
    }

    fn config(ttl: f64, workers: i64, size: i64, policy: &str) -> Config {
        Config::from([
            ("ttl".into(), Value::Float(ttl)),
            ("workers".into(), Value::Int(workers)),
            ("size".into(), Value::Int(size)),
            ("policy".into(), Value::Str(policy.into())),
        ])
    }

    #[test]
    fn near_copies_are_one_candidate_and_real_differences_are_not() {
        let s = space();
        let a = config(433.165, 4, 2119, "lfu");
        assert!(near(&s, &a, &config(433.16507, 4, 2119, "lfu")), "7e-5 apart in ttl");
        assert!(near(&s, &a, &config(470.0, 4, 6000, "lfu")), "within 5% of each range");
        assert!(!near(&s, &a, &config(433.165, 5, 2119, "lfu")), "neighbouring ints of a 16-value int differ");
        assert!(!near(&s, &a, &config(433.165, 4, 2119, "lru")), "another choice");
        assert!(!near(&s, &a, &config(490.0, 4, 2119, "lfu")), "ttl 5.7% apart");
    }

    #[test]
    fn clusters_merge_into_the_best_and_keep_order() {
        let s = space();
        let list = [
            config(433.165, 4, 2119, "lfu"),
            config(433.16507, 4, 2119, "lfu"),
            config(100.0, 4, 2119, "lfu"),
            config(433.2, 4, 2119, "lfu"),
        ];
        let refs: Vec<&Config> = list.iter().collect();
        let c = cluster(&s, &refs);
        assert_eq!(c, vec![Cluster { members: vec![0, 1, 3] }, Cluster { members: vec![2] }]);
    }

    #[test]
    fn selection_keeps_the_best_of_each_choice() {
        let s = space();
        // Four lfu candidates, then the best lru one at place 5.
        let list: Vec<Config> = (0..4)
            .map(|i| config(100.0 * (i + 1) as f64, 4, 2119, "lfu"))
            .chain([config(50.0, 8, 10, "lru"), config(900.0, 2, 10, "lru")])
            .collect();
        let refs: Vec<&Config> = list.iter().collect();
        let picks = select(&s, &refs, 3);
        let indices: Vec<usize> = picks.iter().map(|p| p.index).collect();
        assert_eq!(indices, vec![0, 1, 4], "the best lru candidate takes a place from the fourth lfu one");
        assert_eq!(picks[2].best_with, vec![("policy".to_string(), Value::Str("lru".into()))]);
        assert!(picks[0].best_with.is_empty() && picks[1].best_with.is_empty());
        // With room for everyone, plain order.
        assert_eq!(select(&s, &refs, 10).len(), 6);
        assert!(select(&s, &refs, 0).is_empty());
    }
}
