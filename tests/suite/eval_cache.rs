//! The cache workload model: against an independent, deliberately naive
//! simulator (exact counts), against the analytical results for IRM traces
//! (Che's approximation for LRU, its FIFO counterpart, renewal theory for a
//! TTL cache), its key sampling against the full simulation, the properties
//! theory guarantees, and every kind of bad input.

use std::path::Path;

use knobs::Error;
use knobs::error::Problem;
use knobs::eval::EvalError;
use knobs::eval::workload::cache::{CacheModel, CacheResult, CacheSpec, Counts, METRICS, Policy, Request, Sampling};
use knobs::eval::workload::{Knob, Scenario, TextKnob};
use knobs::rng::Rng;
use knobs::space::{Config, Space, Value};

fn spec(keys: u64, zipf: f64) -> CacheSpec {
    CacheSpec { keys, zipf, ..CacheSpec::new(Knob::Fixed(100.0), Knob::Fixed(60.0)) }
}

fn scenario(step_s: f64, rates: &[f64]) -> Scenario {
    Scenario { step_s, rates: rates.to_vec(), start: 0, label: "test".to_string() }
}

fn build(spec: &CacheSpec, scenario: &Scenario, seed: u64) -> CacheModel {
    spec.build(scenario, Path::new("."), seed).unwrap_or_else(|e| panic!("{e}"))
}

fn zipf_popularity(keys: usize, s: f64) -> Vec<f64> {
    let w: Vec<f64> = (1..=keys).map(|k| (k as f64).powf(-s)).collect();
    let total: f64 = w.iter().sum();
    w.iter().map(|x| x / total).collect()
}

/// Bisection for the increasing function `f` to reach `target` on `(0, ∞)`.
fn solve(target: f64, f: impl Fn(f64) -> f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    while f(hi) < target {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if f(mid) < target { lo = mid } else { hi = mid }
    }
    0.5 * (lo + hi)
}

// ---------------------------------------------------------------------------
// 1. The naive reference simulator

/// One entry of the reference cache.
struct Entry {
    key: u32,
    inserted: f64,
    expiry: f64,
    inserted_seq: u64,
    last_use: u64,
    uses: u64,
    stale: bool,
}

/// What the reference measured over the counted (second) replay.
struct Reference {
    segments: Vec<Counts>,
    /// Sum over entries of their lifetime inside the counted replay.
    entry_seconds: f64,
    peak: usize,
}

/// The model's semantics written as plainly as possible: a `Vec` of entries
/// scanned linearly, expired entries dropped before each request, the
/// victim found by a minimum over the entries, memory as the sum of each
/// entry's lifetime within `[duration, 2 duration]`. The trace is replayed
/// twice and the second replay counted, as the model documents.
fn reference(
    requests: &[Request],
    segments: usize,
    duration: f64,
    capacity: u64,
    ttl: f64,
    policy: Policy,
) -> Reference {
    let mut cache: Vec<Entry> = Vec::new();
    let mut out = Reference { segments: vec![Counts::default(); segments], entry_seconds: 0.0, peak: 0 };
    let (window_start, window_end) = (duration, 2.0 * duration);
    let lifetime = |e: &Entry, removed: f64| (removed.min(window_end) - e.inserted.max(window_start)).max(0.0);
    let mut seq = 0u64;
    for pass in 0..2 {
        let shift = pass as f64 * duration;
        let counted = pass == 1;
        let mut i = 0;
        while i < cache.len() {
            if cache[i].expiry <= shift {
                let e = cache.remove(i);
                out.entry_seconds += lifetime(&e, e.expiry);
            } else {
                i += 1;
            }
        }
        if counted {
            out.peak = cache.len();
        }
        for r in requests {
            seq += 1;
            let t = r.time_s + shift;
            let mut i = 0;
            while i < cache.len() {
                if cache[i].expiry <= t {
                    let e = cache.remove(i);
                    out.entry_seconds += lifetime(&e, e.expiry);
                } else {
                    i += 1;
                }
            }
            let mut c = Counts::default();
            let found = cache.iter().position(|e| e.key == r.key);
            if r.write {
                c.writes += 1;
                c.backend += 1;
                if let Some(i) = found {
                    cache[i].stale = true;
                }
            } else {
                c.reads += 1;
                match found {
                    Some(i) => {
                        c.hits += 1;
                        if cache[i].stale {
                            c.stale_hits += 1;
                        }
                        cache[i].last_use = seq;
                        cache[i].uses += 1;
                    }
                    None => {
                        c.backend += 1;
                        if capacity > 0 {
                            if cache.len() as u64 >= capacity {
                                let victim = (0..cache.len())
                                    .min_by_key(|&i| {
                                        let e = &cache[i];
                                        match policy {
                                            Policy::Lru => (0, e.last_use),
                                            Policy::Lfu => (e.uses, e.last_use),
                                            Policy::Fifo => (0, e.inserted_seq),
                                        }
                                    })
                                    .unwrap();
                                let e = cache.remove(victim);
                                out.entry_seconds += lifetime(&e, t);
                            }
                            cache.push(Entry {
                                key: r.key,
                                inserted: t,
                                expiry: t + ttl,
                                inserted_seq: seq,
                                last_use: seq,
                                uses: 1,
                                stale: false,
                            });
                            if counted {
                                out.peak = out.peak.max(cache.len());
                            }
                        }
                    }
                }
            }
            if counted {
                let s = &mut out.segments[r.segment];
                s.reads += c.reads;
                s.hits += c.hits;
                s.stale_hits += c.stale_hits;
                s.writes += c.writes;
                s.backend += c.backend;
            }
        }
    }
    for e in &cache {
        out.entry_seconds += lifetime(e, e.expiry.min(window_end));
    }
    out
}

fn total(segments: &[Counts]) -> Counts {
    segments.iter().fold(Counts::default(), |a, c| Counts {
        reads: a.reads + c.reads,
        hits: a.hits + c.hits,
        stale_hits: a.stale_hits + c.stale_hits,
        writes: a.writes + c.writes,
        backend: a.backend + c.backend,
    })
}

/// The documented full-load estimates from a replay's counts: reads and
/// writes scale by the request share, misses by the key share.
fn full_load(c: &Counts, sampling: Sampling) -> (f64, f64) {
    let reads = c.reads as f64 / sampling.request_share;
    let misses = (c.reads - c.hits) as f64 / sampling.key_share;
    let hit_rate = if c.reads == 0 { 0.0 } else { (reads - misses).max(0.0) / reads };
    (hit_rate, misses + c.writes as f64 / sampling.request_share)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
}

/// Compare `simulate` with the reference on one model, for every policy,
/// `capacities` (full-load) and `ttls`; returns the number of comparisons.
fn agree_with_reference(model: &CacheModel, object_kb: f64, capacities: &[u64], ttls: &[f64], what: &str) -> usize {
    let requests: Vec<Request> = model.requests().collect();
    let sampling = model.sampling();
    let step = model.duration_s() / model.segments() as f64;
    let mut compared = 0;
    for &policy in &Policy::ALL {
        for &capacity in capacities {
            for &ttl in ttls {
                let got = model.simulate(capacity, ttl, policy);
                let simulated = model.simulated_capacity(capacity);
                let want = reference(&requests, model.segments(), model.duration_s(), simulated, ttl, policy);
                let case = format!("{what}, {policy}, capacity {capacity} (simulated {simulated}), ttl {ttl}");
                assert_eq!(got.counts, total(&want.segments), "{case}: totals");
                for (s, c) in want.segments.iter().enumerate() {
                    let (hit_rate, backend) = full_load(c, sampling);
                    let backend_rate = backend / step;
                    if sampling.rate == 1.0 {
                        assert_eq!(got.hit_rates[s], c.hits as f64 / c.reads.max(1) as f64, "{case}: segment {s}");
                        assert_eq!(got.backend_rates[s], c.backend as f64 / step, "{case}: segment {s}");
                    }
                    assert!(close(got.hit_rates[s], hit_rate, 1e-12), "{case}: segment {s} hit rate");
                    assert!(close(got.backend_rates[s], backend_rate, 1e-12), "{case}: segment {s} backend");
                }
                let scale = |entries: f64| (entries / sampling.key_share).min(capacity as f64) * object_kb / 1024.0;
                let mean = scale(want.entry_seconds / model.duration_s());
                assert!(close(got.memory_mb_mean, mean, 1e-9), "{case}: memory mean {} vs {mean}", got.memory_mb_mean);
                assert_eq!(got.memory_mb_peak, scale(want.peak as f64), "{case}: memory peak");
                compared += 1;
            }
        }
    }
    compared
}

/// The gap between two consecutive reads of one key for which, in the
/// counted replay, fetch time + gap is exactly the later read's time.
fn exact_reuse_gap(model: &CacheModel) -> Option<f64> {
    let d = model.duration_s();
    let r: Vec<Request> = model.requests().filter(|r| !r.write).collect();
    r.iter().enumerate().find_map(|(i, a)| {
        let b = r[i + 1..].iter().find(|b| b.key == a.key)?;
        let gap = (b.time_s + d) - (a.time_s + d);
        ((a.time_s + d) + gap == b.time_s + d && gap > 0.0).then_some(gap)
    })
}

#[test]
fn simulate_matches_a_naive_reference_exactly_on_random_traces() {
    let mut rng = Rng::new(7, 0);
    let (mut compared, mut with_writes, mut boundaries) = (0, 0, 0);
    for seed in 0..24 {
        let keys = 5 + rng.below(56) as u64;
        let mut s = spec(keys, rng.range(0.0, 1.3));
        s.update_fraction = if seed % 2 == 0 { 0.15 } else { 0.0 };
        s.object_kb = rng.range(0.5, 4.0);
        let rates: Vec<f64> = (0..1 + rng.below(4)).map(|_| rng.range(0.5, 5.0)).collect();
        let sc = scenario(rng.range(20.0, 80.0), &rates);
        let model = build(&s, &sc, seed);
        assert_eq!(model.sampling().rate, 1.0);
        with_writes += model.requests().filter(|r| r.write).count();
        let mut ttls = vec![0.7, 4.0, 25.0, f64::INFINITY];
        // A TTL that ends exactly at a later read of the same key: the read
        // must miss (an entry lives over [fetched, fetched + ttl)).
        if let Some(ttl) = exact_reuse_gap(&model) {
            ttls.push(ttl);
            boundaries += 1;
        }
        let capacities = [1, 2, 3, keys / 3, keys, keys + 10];
        compared += agree_with_reference(&model, s.object_kb, &capacities, &ttls, "seed");
    }
    assert!(with_writes > 100, "the traces must exercise stale copies");
    assert!(boundaries >= 12, "only {boundaries} traces test the expiry instant");
    assert!(compared >= 24 * 3 * 6 * 4);
}

#[test]
fn simulate_matches_the_reference_on_sampled_traces() {
    // The sampled trace is simulated exactly as a trace; the scaling is the
    // documented one.
    for seed in 0..4 {
        let mut s = spec(400, 0.8);
        s.update_fraction = 0.1;
        s.max_requests = 300;
        let sc = scenario(100.0, &[4.0, 8.0]);
        let model = build(&s, &sc, seed);
        let sampling = model.sampling();
        assert!((sampling.rate - 300.0 / 1200.0).abs() < 1e-12);
        assert!((sampling.key_share - 0.25).abs() < 0.01, "{sampling:?}");
        agree_with_reference(&model, s.object_kb, &[1, 8, 40, 400], &[3.0, 30.0, f64::INFINITY], "sampled");
    }
}

// ---------------------------------------------------------------------------
// 2. Analytical results for IRM traces

#[test]
fn lru_without_ttl_matches_ches_approximation() {
    // Che, Tung and Wang (2002): with characteristic time T solving
    // Σ (1 - exp(-p_k T)) = C, the LRU hit rate is Σ p_k (1 - exp(-p_k T)).
    let (keys, s) = (10_000, 0.8);
    let model = build(&spec(keys as u64, s), &Scenario::constant(1000.0, 500.0), 11);
    let p = zipf_popularity(keys, s);
    for capacity in [100, 500, 2000] {
        let occupancy = |t: f64| p.iter().map(|&q| 1.0 - (-q * t).exp()).sum::<f64>();
        let tc = solve(capacity as f64, occupancy);
        let che: f64 = p.iter().map(|&q| q * (1.0 - (-q * tc).exp())).sum();
        let got = model.simulate(capacity, f64::INFINITY, Policy::Lru).hit_rate;
        println!("LRU C={capacity}: simulated {got:.4}, Che {che:.4}, error {:+.4}", got - che);
        assert!((got - che).abs() < 0.01, "capacity {capacity}: simulated {got}, Che {che}");
    }
}

#[test]
fn fifo_without_ttl_matches_its_characteristic_time_approximation() {
    // Martina, Garetto and Leonardi (2014): a FIFO key's hit probability is
    // p_k T / (1 + p_k T), with Σ p_k T / (1 + p_k T) = C.
    let (keys, s) = (10_000, 0.8);
    let model = build(&spec(keys as u64, s), &Scenario::constant(1000.0, 500.0), 12);
    let p = zipf_popularity(keys, s);
    for capacity in [100, 500, 2000] {
        let h = |q: f64, t: f64| q * t / (1.0 + q * t);
        let tc = solve(capacity as f64, |t| p.iter().map(|&q| h(q, t)).sum());
        let approx: f64 = p.iter().map(|&q| q * h(q, tc)).sum();
        let got = model.simulate(capacity, f64::INFINITY, Policy::Fifo).hit_rate;
        println!("FIFO C={capacity}: simulated {got:.4}, approximation {approx:.4}, error {:+.4}", got - approx);
        assert!((got - approx).abs() < 0.01, "capacity {capacity}: simulated {got}, approximation {approx}");
    }
}

#[test]
fn ttl_cache_matches_renewal_theory() {
    // Capacity ≥ keys, TTL T from insertion, Poisson requests at λ_k per key:
    // a cycle is one miss then the hits within T, so the hit probability is
    // λT / (1 + λT), the entry is resident T of every T + 1/λ seconds, and
    // the backend sees one read per cycle. With writes at a share w, a read
    // x seconds into the cycle is stale with probability 1 - exp(-wλx), so a
    // key's stale reads per cycle are r (T - (1 - exp(-wλT)) / (wλ)) with r =
    // (1 - w)λ its read rate, out of 1 + rT reads.
    let (keys, s, rate, ttl, w) = (1000usize, 0.8, 200.0, 2.0, 0.1);
    let mut sp = spec(keys as u64, s);
    sp.update_fraction = w;
    sp.object_kb = 2.0;
    let model = build(&sp, &Scenario::constant(rate, 2500.0), 13);
    let p = zipf_popularity(keys, s);
    let (mut hits, mut stale, mut resident, mut backend) = (0.0, 0.0, 0.0, 0.0);
    for &q in &p {
        let reads = (1.0 - w) * rate * q;
        let writes = w * rate * q;
        let cycle_reads = 1.0 + reads * ttl;
        // Shares of all reads, weighted by this key's share of reads (q).
        hits += q * reads * ttl / cycle_reads;
        stale += q * reads * (ttl - (1.0 - (-writes * ttl).exp()) / writes) / cycle_reads;
        resident += ttl / (ttl + 1.0 / reads);
        backend += reads / cycle_reads + writes;
    }
    for policy in Policy::ALL {
        let got = model.simulate(keys as u64, ttl, policy);
        println!(
            "TTL-only {policy}: hit {:.4} vs {hits:.4}, stale {:.4} vs {stale:.4}, entries {:.1} vs {resident:.1}, \
             backend {:.2} vs {backend:.2}/s",
            got.hit_rate,
            got.stale_fraction,
            got.memory_mb_mean * 1024.0 / 2.0,
            got.backend_rps_mean
        );
        assert!((got.hit_rate - hits).abs() < 0.01, "{policy}: hit rate {} vs {hits}", got.hit_rate);
        assert!((got.stale_fraction - stale).abs() < 0.01, "{policy}: stale {} vs {stale}", got.stale_fraction);
        let entries = got.memory_mb_mean * 1024.0 / 2.0;
        assert!(close(entries, resident, 0.02), "{policy}: mean entries {entries} vs {resident}");
        assert!(close(got.backend_rps_mean, backend, 0.02), "{policy}: backend {} vs {backend}", got.backend_rps_mean);
    }
}

// ---------------------------------------------------------------------------
// 3. Sampling

#[test]
fn sampling_ten_times_below_the_load_keeps_the_hit_rate() {
    let mut s = spec(100_000, 0.9);
    s.update_fraction = 0.05;
    let sc = Scenario::constant(1000.0, 1000.0);
    let (mut worst, mut worst_stale): (f64, f64) = (0.0, 0.0);
    for seed in [1, 2, 3] {
        s.max_requests = 2_000_000;
        let full = build(&s, &sc, seed);
        s.max_requests = 100_000;
        let sampled = build(&s, &sc, seed);
        assert_eq!(full.sampling().rate, 1.0);
        assert!((sampled.sampling().rate - 0.1).abs() < 1e-12);
        assert!(sampled.len() < 200_000, "simulated {} requests", sampled.len());
        for policy in Policy::ALL {
            for (capacity, ttl) in [(1000, f64::INFINITY), (10_000, f64::INFINITY), (10_000, 60.0), (100_000, 30.0)] {
                let a = full.simulate(capacity, ttl, policy);
                let b = sampled.simulate(capacity, ttl, policy);
                let case = format!("seed {seed}, {policy}, capacity {capacity}, ttl {ttl}");
                let error = b.hit_rate - a.hit_rate;
                worst = worst.max(error.abs());
                println!(
                    "{case}: hit {:.4} sampled {:.4} ({error:+.4}); backend {:.1} vs {:.1}/s; memory {:.2} vs {:.2} MB",
                    a.hit_rate, b.hit_rate, a.backend_rps_mean, b.backend_rps_mean, a.memory_mb_mean, b.memory_mb_mean
                );
                assert!(error.abs() < 0.02, "{case}: hit rate {} sampled {}", a.hit_rate, b.hit_rate);
                let stale_error = b.stale_fraction - a.stale_fraction;
                worst_stale = worst_stale.max(stale_error.abs());
                assert!(stale_error.abs() < 0.02, "{case}: stale {} sampled {}", a.stale_fraction, b.stale_fraction);
                // Backend load off by no more than 2% of the offered load.
                assert!((b.backend_rps_mean - a.backend_rps_mean).abs() < 0.02 * 1000.0, "{case}: backend");
                assert!(close(b.memory_mb_mean, a.memory_mb_mean, 0.1), "{case}: memory");
            }
        }
    }
    println!("worst error: hit rate {worst:.4}, stale fraction {worst_stale:.4}");
}

#[test]
fn sampling_a_recorded_trace_keeps_the_hit_rate() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(3, 0);
    let p = zipf_popularity(20_000, 0.9);
    let cdf: Vec<f64> = p
        .iter()
        .scan(0.0, |a, &q| {
            *a += q;
            Some(*a)
        })
        .collect();
    let mut csv = String::from("timestamp,key,op\n");
    for i in 0..300_000 {
        let k = cdf.partition_point(|&c| c <= rng.uniform()).min(cdf.len() - 1);
        let op = if rng.chance(0.05) { "write" } else { "read" };
        csv.push_str(&format!("{},user:{k},{op}\n", 1_700_000_000 + i / 100));
    }
    std::fs::write(dir.path().join("keys.csv"), csv).unwrap();
    let mut s = spec(1, 0.0);
    s.trace = Some("keys.csv".to_string());
    let sc = Scenario::constant(100.0, 3000.0);
    s.max_requests = 1_000_000;
    let full = s.build(&sc, dir.path(), 1).unwrap();
    s.max_requests = 30_000;
    let sampled = s.build(&sc, dir.path(), 1).unwrap();
    assert!((sampled.sampling().rate - 0.1).abs() < 1e-12);
    for policy in Policy::ALL {
        for (capacity, ttl) in [(500, f64::INFINITY), (2000, 120.0)] {
            let (a, b) = (full.simulate(capacity, ttl, policy), sampled.simulate(capacity, ttl, policy));
            println!("recorded {policy} C={capacity} ttl={ttl}: hit {:.4} sampled {:.4}", a.hit_rate, b.hit_rate);
            assert!((a.hit_rate - b.hit_rate).abs() < 0.02, "{policy} {capacity}: {} vs {}", a.hit_rate, b.hit_rate);
            assert!(a.stale_fraction > 0.0);
        }
    }
}

// ---------------------------------------------------------------------------
// 4. What theory guarantees

#[test]
fn lru_hit_rate_never_falls_as_capacity_grows() {
    // LRU's inclusion property: on the same trace a larger cache holds a
    // superset of a smaller one, so every hit stays a hit.
    let model = build(&spec(2000, 0.7), &Scenario::constant(100.0, 1000.0), 21);
    let mut last = Counts::default();
    for capacity in [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1999, 2000] {
        let got = model.simulate(capacity, f64::INFINITY, Policy::Lru).counts;
        assert!(got.hits >= last.hits, "capacity {capacity}: {} hits, fewer than {}", got.hits, last.hits);
        last = got;
    }
    // A cache holding every key, warm from the first replay, misses nothing.
    assert_eq!(last.hits, last.reads);
}

#[test]
fn stale_fraction_grows_with_ttl_and_is_zero_without_writes() {
    let mut s = spec(5000, 0.9);
    s.update_fraction = 0.1;
    let model = build(&s, &Scenario::constant(200.0, 1000.0), 22);
    let mut last = -1.0;
    for ttl in [1.0, 5.0, 25.0, 125.0] {
        let got = model.simulate(5000, ttl, Policy::Lru);
        assert!(got.stale_fraction > last, "ttl {ttl}: stale {} not above {last}", got.stale_fraction);
        assert!(got.stale_fraction <= got.hit_rate);
        last = got.stale_fraction;
    }
    s.update_fraction = 0.0;
    let model = build(&s, &Scenario::constant(200.0, 1000.0), 22);
    let got = model.simulate(5000, 125.0, Policy::Lru);
    assert_eq!(got.stale_fraction, 0.0);
    assert!(got.hit_rate > 0.5);
}

#[test]
fn per_segment_backend_rates_follow_a_two_level_scenario() {
    let model = build(&spec(10_000, 0.9), &scenario(500.0, &[200.0, 800.0]), 23);
    // Without TTL the IRM miss ratio does not depend on the rate: the
    // backend follows the load, 4x.
    let got = model.simulate(500, f64::INFINITY, Policy::Lru);
    assert_eq!(got.backend_rates.len(), 2);
    let ratio = got.backend_rates[1] / got.backend_rates[0];
    assert!((ratio - 4.0).abs() < 0.2, "backend {:?}, ratio {ratio}", got.backend_rates);
    assert!((got.hit_rates[0] - got.hit_rates[1]).abs() < 0.01, "{:?}", got.hit_rates);
    assert!(close(got.backend_rps_mean, (got.backend_rates[0] + got.backend_rates[1]) / 2.0, 1e-12));
    assert_eq!(got.backend_rps_peak, got.backend_rates[1]);
    // With a TTL a faster key is hit more often before it expires: the hit
    // rate rises with the load and the backend grows less than the load.
    let got = model.simulate(10_000, 2.0, Policy::Lru);
    assert!(got.hit_rates[1] > got.hit_rates[0] + 0.05, "{:?}", got.hit_rates);
    let ratio = got.backend_rates[1] / got.backend_rates[0];
    assert!(ratio > 1.5 && ratio < 3.8, "backend {:?}, ratio {ratio}", got.backend_rates);
}

#[test]
fn memory_follows_capacity_and_object_size() {
    let mut s = spec(10_000, 0.9);
    s.object_kb = 4.0;
    let model = build(&s, &Scenario::constant(500.0, 500.0), 24);
    for policy in Policy::ALL {
        let got = model.simulate(1000, f64::INFINITY, policy);
        // Warm and full all the time: exactly 1000 entries of 4 KiB.
        assert_eq!(got.memory_mb_peak, 1000.0 * 4.0 / 1024.0, "{policy}");
        assert!(close(got.memory_mb_mean, got.memory_mb_peak, 1e-12), "{policy}: {got:?}");
        let short = model.simulate(1000, 0.5, policy);
        assert!(short.memory_mb_mean < 0.5 * got.memory_mb_mean, "{policy}: a short TTL must free memory");
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_and_results() {
    let mut s = spec(1000, 0.9);
    s.update_fraction = 0.2;
    let sc = scenario(100.0, &[5.0, 20.0]);
    let (a, b, c) = (build(&s, &sc, 5), build(&s, &sc, 5), build(&s, &sc, 6));
    assert!(a.requests().eq(b.requests()));
    assert!(!a.requests().eq(c.requests()));
    assert_eq!(a.simulate(50, 10.0, Policy::Lfu), b.simulate(50, 10.0, Policy::Lfu));
    // Requests lie inside their segment, in time order.
    let step = sc.step_s;
    let r: Vec<Request> = a.requests().collect();
    assert!(r.windows(2).all(|w| w[0].time_s <= w[1].time_s));
    assert!(r.iter().all(|q| q.time_s >= q.segment as f64 * step && q.time_s < (q.segment + 1) as f64 * step));
    // Poisson counts: 500 and 2000 expected per segment.
    let n1 = r.iter().filter(|q| q.segment == 1).count() as f64;
    assert!((n1 - 2000.0).abs() < 5.0 * 2000f64.sqrt(), "{n1} requests in segment 1");
    let writes = r.iter().filter(|q| q.write).count() as f64 / r.len() as f64;
    assert!((writes - 0.2).abs() < 0.03, "write share {writes}");
}

#[test]
fn a_recorded_trace_supplies_the_keys_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    let rows = "timestamp,key,op\n2024-05-01 00:00:02,b,write\n2024-05-01 00:00:01,a\n1714521603,c,read\n";
    std::fs::write(dir.path().join("t.csv"), rows).unwrap();
    let mut s = spec(1, 0.0);
    s.trace = Some("t.csv".to_string());
    let model = s.build(&Scenario::constant(1.0, 30.0), dir.path(), 1).unwrap();
    // a, b (write), c, then around again; ids in order of first request.
    let keys: Vec<(u32, bool)> = model.requests().map(|r| (r.key, r.write)).collect();
    assert!(keys.len() > 10, "{} requests", keys.len());
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(*k, [(0, false), (1, true), (2, false)][i % 3], "request {i}");
    }
    assert_eq!(model.distinct_keys(), 3);
    // Only a and c are read; b's write goes to the backend: 2 of 3 requests
    // hit in a warm cache of 2.
    let got = model.simulate(2, f64::INFINITY, Policy::Lru);
    assert_eq!(got.counts.hits, got.counts.reads);
}

// ---------------------------------------------------------------------------
// The evaluator face

fn space(yaml: &str) -> Space {
    Space::parse(yaml, "test").unwrap_or_else(|e| panic!("{e}"))
}

fn tuned_space() -> Space {
    space(
        "- {name: entries, type: int, low: 10, high: 5000}\n\
         - {name: ttl, type: float, low: 1, high: 600}\n\
         - {name: eviction, type: categorical, choices: [lru, lfu, fifo]}\n",
    )
}

fn config(pairs: &[(&str, Value)]) -> Config {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn evaluate_reads_the_knobs_from_the_configuration() {
    let yaml = "capacity: entries\nttl_s: ttl\npolicy: eviction\nkeys: 2000\nupdate_fraction: 0.05\n";
    let s: CacheSpec = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(s.zipf, 0.9);
    assert_eq!(s.max_requests, 1_000_000);
    let mut problems = Vec::new();
    s.check("evaluator.cache", &tuned_space(), &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let model = build(&s, &Scenario::constant(100.0, 300.0), 1);
    let c = config(&[
        ("entries", Value::Int(300)),
        ("ttl", Value::Float(30.0)),
        ("eviction", Value::Str("lfu".to_string())),
    ]);
    let got: CacheResult = model.evaluate(&c).unwrap();
    assert_eq!(got, model.simulate(300, 30.0, Policy::Lfu));
    let metrics = got.metrics();
    assert_eq!(metrics.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut m = METRICS.to_vec();
        m.sort();
        m
    });
    assert_eq!(metrics["hit_rate"], got.hit_rate);
    assert!(metrics.values().all(|v| v.is_finite()));
    // A missing parameter or an impossible value fails the trial only.
    let missing = config(&[("ttl", Value::Float(30.0)), ("eviction", Value::Str("lru".to_string()))]);
    assert!(matches!(model.evaluate(&missing), Err(EvalError::Invalid(m)) if m.contains("entries")));
    let bad = config(&[
        ("entries", Value::Int(300)),
        ("ttl", Value::Float(30.0)),
        ("eviction", Value::Str("arc".to_string())),
    ]);
    assert!(matches!(model.evaluate(&bad), Err(EvalError::Invalid(m)) if m.contains("arc") && m.contains("lru")));
    let zero =
        config(&[("entries", Value::Int(0)), ("ttl", Value::Float(30.0)), ("eviction", Value::Str("lru".to_string()))]);
    assert!(matches!(model.evaluate(&zero), Err(EvalError::Invalid(m)) if m.contains("capacity")));
}

// ---------------------------------------------------------------------------
// 5. Bad input

fn paths(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn check_reports_every_bad_field_at_once() {
    let s = CacheSpec {
        capacity: Knob::Fixed(0.0),
        ttl_s: Knob::Fixed(-1.0),
        policy: TextKnob("mru".to_string()),
        keys: 0,
        zipf: -0.5,
        update_fraction: 1.0,
        object_kb: 0.0,
        trace: None,
        max_requests: 0,
    };
    let mut problems = Vec::new();
    s.check("evaluator.cache", &tuned_space(), &mut problems);
    let mut got = paths(&problems);
    got.sort();
    let want = [
        "evaluator.cache.capacity",
        "evaluator.cache.keys",
        "evaluator.cache.max_requests",
        "evaluator.cache.object_kb",
        "evaluator.cache.policy",
        "evaluator.cache.ttl_s",
        "evaluator.cache.update_fraction",
        "evaluator.cache.zipf",
    ];
    assert_eq!(got, want, "{problems:#?}");
    let message = |path: &str| &problems.iter().find(|p| p.path.ends_with(path)).unwrap().message;
    assert!(message("policy").contains("lru, lfu, fifo"), "{}", message("policy"));
    assert!(message("zipf").contains(">= 0"));
    assert!(message("update_fraction").contains("below 1"));
}

#[test]
fn check_refuses_parameters_that_do_not_fit() {
    let sp = space(
        "- {name: ttl0, type: float, low: 0, high: 60}\n\
         - {name: algo, type: categorical, choices: [lru, arc]}\n\
         - {name: size, type: int, low: 0, high: 100}\n",
    );
    let s = CacheSpec {
        policy: TextKnob("algo".to_string()),
        ..CacheSpec::new(Knob::Param("size".to_string()), Knob::Param("ttl0".to_string()))
    };
    let mut problems = Vec::new();
    s.check("evaluator.cache", &sp, &mut problems);
    assert_eq!(paths(&problems), ["evaluator.cache.capacity", "evaluator.cache.ttl_s", "evaluator.cache.policy"]);
    assert!(problems[1].message.contains("`ttl0` can be 0"), "{}", problems[1]);
    assert!(problems[2].message.contains("`arc`"), "{}", problems[2]);
    let unknown = CacheSpec::new(Knob::Param("nope".to_string()), Knob::Fixed(1.0));
    let mut problems = Vec::new();
    unknown.check("evaluator.cache", &sp, &mut problems);
    assert_eq!(paths(&problems), ["evaluator.cache.capacity"]);
    assert!(problems[0].message.contains("`nope` is not a parameter"));
    // update_fraction only applies to the generated trace.
    let with_trace = CacheSpec {
        trace: Some("t.csv".to_string()),
        update_fraction: 0.1,
        ..CacheSpec::new(Knob::Fixed(5.0), Knob::Fixed(1.0))
    };
    let mut problems = Vec::new();
    with_trace.check("evaluator.cache", &sp, &mut problems);
    assert_eq!(paths(&problems), ["evaluator.cache.update_fraction"]);
}

#[test]
fn yaml_refuses_unknown_fields_and_needs_capacity_and_ttl() {
    let e = serde_yaml::from_str::<CacheSpec>("capacity: 10\nttl_s: 5\nttl: 5\n").unwrap_err().to_string();
    assert!(e.contains("ttl"), "{e}");
    let e = serde_yaml::from_str::<CacheSpec>("capacity: 10\n").unwrap_err().to_string();
    assert!(e.contains("ttl_s"), "{e}");
}

#[test]
fn build_names_the_field_the_file_and_every_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let sc = Scenario::constant(10.0, 100.0);
    // Fields are checked again at build time.
    let s = CacheSpec { zipf: f64::NAN, object_kb: -1.0, ..spec(100, 0.9) };
    let Err(Error::Invalid(p)) = s.build(&sc, dir.path(), 1) else { panic!("built a bad spec") };
    assert_eq!(paths(&p.items), ["cache.zipf", "cache.object_kb"], "{p}");
    // A scenario without load.
    let Err(Error::Invalid(p)) = spec(100, 0.9).build(&scenario(60.0, &[0.0, 0.0]), dir.path(), 1) else {
        panic!("built without arrivals")
    };
    assert!(p.to_string().contains("every rate is 0"), "{p}");
    // Too few keys to sample a huge load by key.
    let Err(Error::Invalid(p)) = spec(10, 0.9).build(&Scenario::constant(1e6, 1e6), dir.path(), 1) else {
        panic!("built an unsimulable sample")
    };
    assert_eq!(paths(&p.items), ["cache.keys"], "{p}");
    // A missing file is named.
    let missing = CacheSpec { trace: Some("nope.csv".to_string()), ..spec(100, 0.9) };
    let e = missing.build(&sc, dir.path(), 1).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("nope.csv"), "{e}");
    // Every bad line is listed, with the file.
    std::fs::write(dir.path().join("bad.csv"), "ts,key,op\n1,a\nlater,b\n3,,read\n4,c,delete\n5,d,read,extra\n6,e\n")
        .unwrap();
    let bad = CacheSpec { trace: Some("bad.csv".to_string()), ..spec(100, 0.9) };
    let Err(Error::Invalid(p)) = bad.build(&sc, dir.path(), 1) else { panic!("read a bad trace") };
    assert!(p.source.ends_with("bad.csv"), "{p}");
    assert_eq!(paths(&p.items), ["line 3", "line 4", "line 5", "line 6"], "{p}");
    let text = p.to_string();
    for needle in ["`later` is not a timestamp", "empty key", "`delete` is not an op", "4 fields"] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // A file with a header only.
    std::fs::write(dir.path().join("empty.csv"), "timestamp,key\n").unwrap();
    let empty = CacheSpec { trace: Some("empty.csv".to_string()), ..spec(100, 0.9) };
    let Err(Error::Invalid(p)) = empty.build(&sc, dir.path(), 1) else { panic!("read an empty trace") };
    assert!(p.to_string().contains("no requests"), "{p}");
}
