//! Workload scenarios from real telemetry, and workload evaluators declared
//! in experiment specs.

use std::path::PathBuf;

use knobs::eval::workload::{ScenarioKind, ScenarioSpec};
use knobs::spec::Spec;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/telemetry")
}

fn scenario(yaml: &str) -> knobs::eval::workload::Scenario {
    let spec: ScenarioSpec = serde_yaml::from_str(yaml).unwrap();
    let mut problems = Vec::new();
    spec.check("workload", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    spec.build(&data()).unwrap()
}

#[test]
fn raw_replays_the_recorded_window_as_rates() {
    let s = scenario("{series: elb_request_count_8c0756.csv, scenario: raw, window: 1d, until: '2014-04-17 00:00:00'}");
    assert_eq!(s.rates.len(), 288);
    assert_eq!(s.step_s, 300.0);
    // The last recorded bucket before the cut, as events per second.
    let text = std::fs::read_to_string(data().join("elb_request_count_8c0756.csv")).unwrap();
    let before: Vec<f64> = text
        .lines()
        .skip(1)
        .filter(|l| l < &"2014-04-17 00:00:00")
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    let last = *before.last().unwrap();
    assert!((s.rates[287] - last / 300.0).abs() < 1e-9, "{} vs {}", s.rates[287], last / 300.0);
    assert!(s.label.contains("raw load"), "{}", s.label);
}

#[test]
fn the_peak_is_the_top_of_the_forecast_upper_bound() {
    let base =
        "{series: elb_request_count_8c0756.csv, until: '2014-04-17 00:00:00', horizon: 7d, period: 1d, scale: 50";
    let p80 = scenario(&format!("{base}, level: 0.8}}"));
    let p95 = scenario(&format!("{base}, level: 0.95}}"));
    assert_eq!(p80.rates.len(), 1);
    assert_eq!(p80.step_s, 3600.0);
    // A wider interval has a higher top; both are above the mean recorded load.
    assert!(p95.peak() > p80.peak(), "{} {}", p95.peak(), p80.peak());
    let mean_rate = 61.8 / 300.0 * 50.0;
    assert!(p80.peak() > mean_rate, "{} vs mean {mean_rate}", p80.peak());
    assert!(p80.label.contains("upper bound"), "{}", p80.label);
}

#[test]
fn a_typical_day_folds_the_forecast_by_time_of_day() {
    let s = scenario(
        "{series: elb_request_count_8c0756.csv, scenario: typical_day, horizon: 2d, period: 1d, until: '2014-04-17 00:00:00'}",
    );
    assert_eq!(s.rates.len(), 288);
    assert_eq!(s.step_s, 300.0);
    assert!(s.rates.iter().all(|r| *r >= 0.0));
    // The ELB load has a daily cycle: the busiest hour is well above the quietest.
    let hourly: Vec<f64> = s.rates.chunks(12).map(|c| c.iter().sum::<f64>() / 12.0).collect();
    let (lo, hi) = hourly.iter().fold((f64::MAX, 0.0f64), |(a, b), v| (a.min(*v), b.max(*v)));
    assert!(hi > 1.5 * lo, "{hourly:?}");
    assert_eq!(ScenarioKind::default(), ScenarioKind::Peak);
}

#[test]
fn bad_workload_sections_report_every_field() {
    let spec: ScenarioSpec = serde_yaml::from_str(
        "{series: x.csv, scenario: raw, scale: -1, level: 2, horizon: 3 parsecs, until: yesterday, peak_duration: 1h}",
    )
    .unwrap();
    let mut problems = Vec::new();
    spec.check("evaluator.workload", &mut problems);
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    for want in ["scale", "level", "horizon", "until", "peak_duration"] {
        assert!(paths.contains(&format!("evaluator.workload.{want}").as_str()), "{want} not in {paths:?}");
    }
    // A missing file is a clear error naming it.
    let spec: ScenarioSpec = serde_yaml::from_str("{series: no-such-file.csv}").unwrap();
    let e = spec.build(&data()).unwrap_err().to_string();
    assert!(e.contains("no-such-file.csv"), "{e}");
    // Unknown keys are refused.
    assert!(serde_yaml::from_str::<ScenarioSpec>("{series: a.csv, horizn: 7d}").is_err());
}

const POOL_SPEC: &str = r#"
name: pool-test
space:
  - {name: pool_size, type: int, low: 1, high: 64, default: 32}
objectives:
  - {metric: cost, direction: minimize}
constraints:
  - "wait_p99_ms <= 20"
evaluator:
  type: pool
  workload: {series: elb_request_count_8c0756.csv, scale: 50, scenario: raw, window: 2d}
  pool: {size: pool_size, service_time_ms: {series: ec2_request_latency_system_failure.csv}, cost_per_connection: 1}
budget: {trials: 30}
"#;

#[test]
fn a_pool_spec_runs_and_finds_the_smallest_pool_that_meets_the_slo() {
    let spec = Spec::parse(POOL_SPEC, "pool.yaml", "pool", data()).unwrap();
    let storage: std::sync::Arc<dyn knobs::storage::Storage> =
        std::sync::Arc::new(knobs::storage::MemoryStorage::new());
    let mut study = knobs::study::Study::open(spec.clone(), storage, false).unwrap();
    study.run(&knobs::study::RunOptions::default()).unwrap();
    let recs = knobs::recommend::recommend(&spec.name, &spec.space, &spec.objectives, study.trials(), 3);
    let best = &recs.recommendations[0];
    let size = best.config["pool_size"].as_f64().unwrap();
    // Check against the model itself: one fewer connection breaks the SLO.
    let evaluator = spec.evaluator.build(&spec.space, &spec.base_dir).unwrap();
    let ctx = knobs::eval::EvalContext { study: "t".into(), trial: 0, base_dir: data() };
    let at = |n: i64| {
        let config = knobs::space::Config::from([("pool_size".to_string(), knobs::space::Value::Int(n))]);
        evaluator.evaluate(&config, &ctx).unwrap().metrics["wait_p99_ms"]
    };
    assert!(at(size as i64) <= 20.0, "recommended {size} misses the SLO");
    assert!(at(size as i64 - 1) > 20.0, "{} connections would do", size - 1.0);
}

#[test]
fn objectives_must_name_metrics_the_model_reports() {
    let text = POOL_SPEC.replace("metric: cost", "metric: hit_rate").replace("wait_p99_ms <= 20", "p99 <= 20");
    let e = Spec::parse(&text, "pool.yaml", "pool", data()).unwrap_err().to_string();
    assert!(e.contains("`hit_rate` is not reported"), "{e}");
    assert!(e.contains("`p99` is not reported"), "{e}");
    assert!(e.contains("wait_p99_ms"), "lists what it reports: {e}");
    // A section the type does not use, and a missing one, in the same report.
    let start = POOL_SPEC.find("  pool: {").unwrap();
    let end = start + POOL_SPEC[start..].find('\n').unwrap();
    let text = format!("{}  cache: {{capacity: 10, ttl_s: 60}}{}", &POOL_SPEC[..start], &POOL_SPEC[end..]);
    let e = Spec::parse(&text, "pool.yaml", "pool", data()).unwrap_err().to_string();
    assert!(e.contains("evaluator.pool: missing"), "{e}");
    assert!(e.contains("evaluator.cache: is not used by a `pool` evaluator"), "{e}");
}

/// The service's composition (cache → pool → database, GC pauses on top)
/// against a Monte Carlo simulation of requests: each is a cache hit or a
/// backend request with the cache's measured share, backend requests queue
/// in a simulated FCFS pool, and GC pauses of the model's length recur at
/// the model's frequency.
#[test]
fn the_service_latency_matches_a_simulation_of_its_requests() {
    use knobs::eval::workload::{WorkloadSpec, service::Service};
    let w: WorkloadSpec = serde_yaml::from_str(
        r#"
workload: {series: elb_request_count_8c0756.csv, scale: 50, until: '2014-04-17 00:00:00', horizon: 7d, period: 1d, level: 0.9}
pool: {size: 3, service_time_ms: 45}
cache: {capacity: 5000, ttl_s: 60, keys: 50000, zipf: 0.9}
gc: {heap_mb: 16384, young_mb: 256, alloc_kb_per_event: 4096, live_mb: 64, long_fraction: 0, minor_base_ms: 40, major_base_ms: 40, major_ms_per_mb: 0}
service: {hit_ms: 2, miss_overhead_ms: 3}
"#,
    )
    .unwrap();
    let e = w.build(&Service, &data()).unwrap();
    let m = e.score(&knobs::space::Config::new()).unwrap();
    let lambda = e.scenario().rates[0];
    let b = m["cache_backend_rps_mean"] / lambda;
    let pause = m["gc_pause_mean_ms"] / 1000.0;
    let every = pause / m["gc_gc_time_fraction"];
    // Majors are rare and, with these costs, as long as minors: one pause length.
    assert!(m["gc_major_per_hour"] < 5.0 && m["gc_pause_max_ms"] < 1.2 * m["gc_pause_mean_ms"], "{m:?}");
    let mut rng = knobs::rng::Rng::new(9, 0);
    let exp = |rng: &mut knobs::rng::Rng, rate: f64| -(1.0 - rng.uniform()).ln() / rate;
    let mut free = [0.0f64; 3];
    let (mut t, mut lat) = (0.0, Vec::new());
    let mu = 1000.0 / 45.0;
    while lat.len() < 400_000 {
        t += exp(&mut rng, lambda);
        let phase = t % every;
        let gc = if phase < pause { pause - phase } else { 0.0 };
        let mut l = 0.002 + gc;
        if rng.uniform() < b {
            // FCFS over 3 connections (arrivals of the backend stream).
            let k = (0..3).min_by(|&i, &j| free[i].total_cmp(&free[j])).unwrap();
            let start = t.max(free[k]);
            let s = exp(&mut rng, mu);
            free[k] = start + s;
            l += 0.003 + (start - t) + s;
        }
        lat.push(l);
    }
    let mean = lat.iter().sum::<f64>() / lat.len() as f64 * 1000.0;
    lat.sort_by(f64::total_cmp);
    let p99 = lat[(0.99 * lat.len() as f64) as usize] * 1000.0;
    let (mm, mp) = (m["latency_mean_ms"], m["latency_p99_ms"]);
    eprintln!("service: mean {mm:.3} vs simulated {mean:.3} ms; p99 {mp:.3} vs {p99:.3} ms; backend share {b:.3}");
    assert!((mm - mean).abs() <= 0.03 * mean, "mean {mm} vs {mean}");
    assert!((mp - p99).abs() <= 0.05 * p99, "p99 {mp} vs {p99}");
    assert!(m["throughput_rps"] > 0.99 * lambda);
}

/// Specs are stored as JSON and read back, and serde's messages reach the
/// user: a workload evaluator keeps the form and the messages of the
/// derived enum it once was, byte for byte, whatever order its sections
/// come in and whichever format reads it.
#[test]
fn a_workload_evaluator_keeps_its_stored_form_and_messages() {
    use knobs::eval::EvaluatorSpec;
    const STORED: &str = r#"{"type":"service","workload":{"series":"elb_request_count_8c0756.csv","column":null,"kind":"count","step":null,"scale":50.0,"scenario":"peak","horizon":"7d","level":0.8,"period":"1d","model":"mstl_ets","peak_duration":null,"until":"2014-04-17 00:00:00","window":null},"pool":{"size":"pool_size","service_time_ms":{"series":"ec2_request_latency_system_failure.csv","column":null,"stat":"median","scale":2.0},"queue_limit":20.0,"memory_mb_per_connection":3.0,"cost_per_connection":0.0},"cache":{"capacity":100.0,"ttl_s":60.0,"policy":"lru","keys":100000,"zipf":0.9,"update_fraction":0.0,"object_kb":1.0,"max_requests":1000000},"gc":{"heap_mb":"heap_mb","young_mb":"young_mb","alloc_kb_per_event":256.0,"live_mb":256.0,"short_lifetime_ms":50.0,"long_fraction":0.01,"long_lifetime_s":60.0,"minor_base_ms":1.0,"minor_ms_per_mb":0.5,"major_base_ms":20.0,"major_ms_per_mb":1.0,"cost_per_gb_hour":0.0},"service":{"hit_ms":2.0,"miss_overhead_ms":3.0,"cost_per_cache_gb":0.05},"seed":3}"#;
    let yaml = r#"
seed: 3
service: {hit_ms: 2, miss_overhead_ms: 3, cost_per_cache_gb: 0.05}
gc: {heap_mb: heap_mb, young_mb: young_mb}
type: service
cache: {capacity: 100, ttl_s: 60}
pool: {size: pool_size, service_time_ms: {series: ec2_request_latency_system_failure.csv, stat: median, scale: 2}, queue_limit: 20, memory_mb_per_connection: 3}
workload: {series: elb_request_count_8c0756.csv, scale: 50, until: '2014-04-17 00:00:00', horizon: 7d, period: 1d}
"#;
    let from_yaml = |text: &str| serde_yaml::from_value::<EvaluatorSpec>(serde_yaml::from_str(text).unwrap());
    let spec = from_yaml(yaml).unwrap();
    assert_eq!(serde_json::to_string(&spec).unwrap(), STORED);
    assert_eq!(serde_json::from_str::<EvaluatorSpec>(STORED).unwrap(), spec);

    let w = "workload: {series: a.csv}";
    for (text, message) in [
        (
            "{type: nope}".to_string(),
            "unknown variant `nope`, expected one of `function`, `command`, `pool`, `cache`, `gc`, `service`, `external`",
        ),
        (
            format!("{{type: gc, {w}, colour: red}}"),
            "unknown field `colour`, expected one of `workload`, `pool`, `cache`, `gc`, `service`, `seed`",
        ),
        (format!("{{type: pool, {w}, seed: -1}}"), "invalid value: integer `-1`, expected u64"),
        (
            format!("{{type: cache, {w}, cache: {{capacity: 1, ttl_s: 1, keys: 1.5}}}}"),
            "invalid type: floating point `1.5`, expected u64",
        ),
        ("{type: pool, pool: {size: 1, service_time_ms: 1}}".to_string(), "missing field `workload`"),
    ] {
        assert_eq!(from_yaml(&text).unwrap_err().to_string(), message, "{text}");
    }
    // JSON words a null as JSON does, inside a model's section too.
    let null =
        r#"{"type": "cache", "workload": {"series": "a.csv"}, "cache": {"capacity": 1, "ttl_s": 1, "keys": null}}"#;
    let e = serde_json::from_value::<EvaluatorSpec>(serde_json::from_str(null).unwrap()).unwrap_err();
    assert_eq!(e.to_string(), "invalid type: null, expected u64");
}
