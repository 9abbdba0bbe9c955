//! Claims with idempotency keys, closed studies, pages and the queue.

use super::*;

/// A claim retried with the same idempotency key returns the same trials without planning or
/// storing anything new.
pub fn keyed_claims_return_the_same_trials(s: &dyn Storage) {
    s.open_study("a", &spec("a")).unwrap();
    let calls = std::cell::Cell::new(0);
    let first = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
    assert_eq!(first.iter().map(|t| t.number).collect::<Vec<_>>(), [0, 1]);
    // The retry: same trials, no planning, nothing new stored.
    let again = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
    assert_eq!(again, first);
    assert_eq!(calls.get(), 1, "a replayed key does not plan");
    assert_eq!(s.trials("a").unwrap().len(), 2);
    // Another key, or none, claims anew.
    let other = s.claim_keyed("a", &claim_req("w1"), Some("k2"), &mut plan_n(1, &calls)).unwrap();
    assert_eq!(other[0].number, 2);
    let plain = s.claim("a", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap();
    assert_eq!(plain[0].number, 3);
    // A finished trial is replayed as it is now, at the epoch it was claimed at.
    s.finish_trial("a", &complete(0, 0, 1.5), None).unwrap();
    let replay = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
    assert_eq!(replay.iter().map(|t| (t.number, t.epoch)).collect::<Vec<_>>(), [(0, 0), (1, 0)]);
    assert_eq!(replay[0].state, TrialState::Complete);
    // After the lease moved on, the replay keeps the old epoch: its tell is refused.
    s.reclaim_running("a", "w2").unwrap();
    let replay = s.claim_keyed("a", &claim_req("w1"), Some("k1"), &mut plan_n(2, &calls)).unwrap();
    assert_eq!(replay[1].epoch, 0);
    assert!(storage_message(s.finish_trial("a", &complete(1, replay[1].epoch, 1.0), None)).contains("stale"));
    // Keys are per study; a failed plan stores no key.
    s.open_study("b", &spec("b")).unwrap();
    let in_b = s.claim_keyed("b", &claim_req("w1"), Some("k1"), &mut plan_n(1, &calls)).unwrap();
    assert_eq!(in_b[0].number, 0);
    let failing =
        s.claim_keyed("b", &claim_req("w1"), Some("k3"), &mut |_: &ClaimState| Err(Error::Config("no".into())));
    assert!(failing.is_err());
    let after = s.claim_keyed("b", &claim_req("w1"), Some("k3"), &mut plan_n(1, &calls)).unwrap();
    assert_eq!(after[0].number, 1);
    assert!(matches!(s.claim_keyed("a", &claim_req("w1"), Some(""), &mut plan_n(1, &calls)), Err(Error::Config(_))));
}

/// A closed study plans no new trials (the plan is told it is closed); its
/// running trials may still be finished, and closing twice is no error.
pub fn closed_studies_plan_no_new_trials(s: &dyn Storage) {
    s.open_study("a", &spec("a")).unwrap();
    let calls = std::cell::Cell::new(0);
    s.claim("a", &claim_req("w1"), &mut plan_n(2, &calls)).unwrap();
    assert!(!s.find_study("a").unwrap().unwrap().closed);
    s.close_study("a").unwrap();
    s.close_study("a").unwrap();
    assert!(s.find_study("a").unwrap().unwrap().closed);
    let mut seen = None;
    let got = s
        .claim("a", &claim_req("w1"), &mut |st: &ClaimState| {
            seen = Some(st.closed);
            Ok(ClaimPlan::default())
        })
        .unwrap();
    assert!(got.is_empty());
    assert_eq!(seen, Some(true));
    // Running trials of a closed study may still be finished.
    s.finish_trial("a", &complete(0, 0, 1.0), None).unwrap();
    assert!(matches!(s.close_study("nope"), Err(Error::NotFound(_))));
}

/// Enqueued configurations become trials in arrival order, each exactly once, and leave the
/// queue in the same transaction.
pub fn queued_configurations_are_handed_out_once_in_order(s: &dyn Storage) {
    s.open_study("a", &spec("a")).unwrap();
    s.open_study("b", &spec("b")).unwrap();
    let config = |v: f64| crate::space::Config::from([("x".to_string(), crate::space::Value::Float(v))]);
    assert_eq!(s.queued("a").unwrap(), 0);
    assert_eq!(s.enqueue("a", &[0.25], &config(2.5)).unwrap(), 1);
    assert_eq!(s.enqueue("a", &[0.75], &config(7.5)).unwrap(), 2);
    assert_eq!(s.enqueue("b", &[0.5], &config(5.0)).unwrap(), 1);
    assert_eq!(s.queued("a").unwrap(), 2);
    // Non-finite configuration values are refused, and nothing is queued.
    assert!(matches!(s.enqueue("a", &[0.1], &config(f64::INFINITY)), Err(Error::Config(_))));
    assert!(matches!(s.enqueue("nope", &[0.1], &config(1.0)), Err(Error::NotFound(_))));
    // The planner sees the queue oldest first; what it takes leaves the queue with the claim.
    let mut seen = Vec::new();
    let got = s
        .claim("a", &claim_req("w1"), &mut |st: &ClaimState| {
            seen = st.queued.clone();
            let q = &st.queued[0];
            Ok(ClaimPlan {
                new: vec![NewTrial {
                    batch: 1,
                    ticket: None,
                    x: q.x.clone(),
                    config: q.config.clone(),
                    baseline: false,
                    confirm: false,
                }],
                dequeued: vec![q.id],
                ..ClaimPlan::default()
            })
        })
        .unwrap();
    assert_eq!(seen.iter().map(|q| q.x.clone()).collect::<Vec<_>>(), [vec![0.25], vec![0.75]]);
    assert_eq!(seen[0].config, config(2.5));
    assert!(seen[0].id < seen[1].id);
    assert_eq!((got[0].number, got[0].ticket, got[0].config.clone()), (0, None, config(2.5)));
    assert_eq!(s.queued("a").unwrap(), 1);
    assert_eq!(s.queued("b").unwrap(), 1, "queues are per study");
    // A plan that names an id it was not given rolls back: the queue and trials stay.
    let bad = s.claim("a", &claim_req("w1"), &mut |_: &ClaimState| {
        Ok(ClaimPlan { new: vec![new_trial(2, 0.1)], dequeued: vec![u64::MAX], ..ClaimPlan::default() })
    });
    assert!(bad.is_err());
    assert_eq!((s.queued("a").unwrap(), s.trials("a").unwrap().len()), (1, 1));
    let mut rest = Vec::new();
    s.claim("a", &claim_req("w1"), &mut |st: &ClaimState| {
        rest = st.queued.iter().map(|q| q.x.clone()).collect();
        Ok(ClaimPlan { dequeued: st.queued.iter().map(|q| q.id).collect(), ..ClaimPlan::default() })
    })
    .unwrap();
    assert_eq!(rest, [vec![0.75]]);
    assert_eq!(s.queued("a").unwrap(), 0);
    // A closed study takes no new configurations.
    s.close_study("b").unwrap();
    assert!(matches!(s.enqueue("b", &[0.5], &config(5.0)), Err(Error::Locked(_))));
}

/// A live run's lock keeps claims out (nothing planned or stored); once the
/// study is released and claimed from, it is shared and a run is refused; a
/// dead run's leftover lock keeps no worker out.
pub fn a_run_and_shared_claims_exclude_each_other(s: &dyn Storage) {
    let calls = std::cell::Cell::new(0);
    // A live `knobs run` holds the study: claims are refused, nothing is stored.
    s.open_study("a", &spec("a")).unwrap();
    let me = Owner::current();
    s.acquire("a", &me).unwrap();
    let e = s.claim("a", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap_err();
    assert!(matches!(&e, Error::Locked(m) if m.contains("knobs run")), "{e}");
    assert_eq!((calls.get(), s.trials("a").unwrap().len()), (0, 0));
    // Once it released the study, workers may share it; from then on `knobs run` is refused.
    s.release("a", &me).unwrap();
    s.claim("a", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap();
    let e = s.acquire("a", &me).unwrap_err();
    assert!(matches!(&e, Error::Config(m) if m.contains("shared")), "{e}");
    // A dead run's leftover lock does not keep workers out.
    s.open_study("b", &spec("b")).unwrap();
    s.acquire("b", &dead_owner()).unwrap();
    assert_eq!(s.claim("b", &claim_req("w1"), &mut plan_n(1, &calls)).unwrap().len(), 1);
}

/// `trials_page` pages by number and filters by state; a page of everything equals `trials`.
pub fn trials_are_paged_by_number_and_state(s: &dyn Storage) {
    s.open_study("a", &spec("a")).unwrap();
    s.open_study("b", &spec("b")).unwrap();
    s.start_trials("b", &[new_trial(1, 0.9)], "w", None).unwrap();
    let batch: Vec<NewTrial> = (0..7).map(|i| new_trial(1, i as f64 / 10.0)).collect();
    s.start_trials("a", &batch, "w", None).unwrap();
    for n in [1, 2, 5] {
        s.finish_trial("a", &complete(n, 0, n as f64), None).unwrap();
    }
    let page = |state, after, limit| {
        s.trials_page("a", &TrialPage { state, after, limit }).unwrap().iter().map(|t| t.number).collect::<Vec<_>>()
    };
    assert_eq!(page(None, None, 3), [0, 1, 2]);
    assert_eq!(page(None, Some(2), 3), [3, 4, 5]);
    assert_eq!(page(None, Some(5), 3), [6]);
    assert!(page(None, Some(6), 3).is_empty());
    assert!(page(None, Some(u64::MAX), 3).is_empty());
    assert_eq!(page(Some(StateFilter::Complete), None, 10), [1, 2, 5]);
    assert_eq!(page(Some(StateFilter::Complete), Some(1), 1), [2]);
    assert_eq!(page(Some(StateFilter::Running), Some(2), 10), [3, 4, 6]);
    assert!(page(Some(StateFilter::Failed), None, 10).is_empty());
    assert_eq!(
        s.trials_page("a", &TrialPage { state: None, after: None, limit: 100 }).unwrap(),
        s.trials("a").unwrap()
    );
    assert_eq!(s.trial("a", 5).unwrap().map(|t| t.state), Some(TrialState::Complete));
    assert_eq!(s.trial("a", 7).unwrap(), None);
    assert!(matches!(s.trials_page("nope", &TrialPage::default()), Err(Error::NotFound(_))));
}
