//! The pool model against an independent discrete-event simulation of a
//! FCFS multi-server queue with Poisson arrivals and exponential service.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use knobs::eval::workload::Scenario;
use knobs::eval::workload::pool::{PoolSpec, segment};
use knobs::rng::Rng;
use knobs::space::{Config, Space, Value};

/// Waits (seconds) of accepted requests, response times, and the number rejected.
struct Sim {
    waits: Vec<f64>,
    latencies: Vec<f64>,
    rejected: usize,
    arrivals: usize,
}

/// Simulate `c` servers of rate `mu`, `limit` waiting places (None: unbounded),
/// arrivals at `rates[i]` during `[i·step, (i+1)·step)`, starting empty.
/// Records only arrivals after `warmup` seconds.
fn simulate(rates: &[f64], step: f64, c: usize, mu: f64, limit: Option<usize>, warmup: f64, seed: u64) -> Sim {
    let mut rng = Rng::new(seed, 0);
    let exp = |rng: &mut Rng, rate: f64| -(1.0 - rng.uniform()).ln() / rate;
    // Time each server becomes free (integer nanoseconds so the heap is ordered).
    let mut free: BinaryHeap<Reverse<u64>> = (0..c).map(|_| Reverse(0)).collect();
    let mut departures: BinaryHeap<Reverse<u64>> = BinaryHeap::new();
    let ns = |t: f64| (t * 1e9) as u64;
    let mut sim = Sim { waits: Vec::new(), latencies: Vec::new(), rejected: 0, arrivals: 0 };
    let mut t: f64 = 0.0;
    for (i, &rate) in rates.iter().enumerate() {
        let end = (i + 1) as f64 * step;
        t = t.max(i as f64 * step);
        if rate <= 0.0 {
            continue;
        }
        loop {
            t += exp(&mut rng, rate);
            if t >= end {
                t = end;
                break;
            }
            while departures.peek().is_some_and(|d| d.0 <= ns(t)) {
                departures.pop();
            }
            let record = t >= warmup;
            if record {
                sim.arrivals += 1;
            }
            if let Some(l) = limit
                && departures.len() >= c + l
            {
                if record {
                    sim.rejected += 1;
                }
                continue;
            }
            let Reverse(f) = free.pop().unwrap();
            let start = t.max(f as f64 / 1e9);
            let s = exp(&mut rng, mu);
            free.push(Reverse(ns(start + s)));
            departures.push(Reverse(ns(start + s)));
            if record {
                sim.waits.push(start - t);
                sim.latencies.push(start - t + s);
            }
        }
    }
    sim
}

fn space(yaml: &str) -> Space {
    Space::parse(yaml, "test").unwrap()
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn p99(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[(0.99 * s.len() as f64) as usize]
}

fn close(what: &str, model: f64, sim: f64, rel: f64) {
    let err = (model - sim).abs() / sim.abs().max(1e-12);
    assert!(
        err <= rel,
        "{what}: model {model:.6} vs simulation {sim:.6} ({:.1}% off, allowed {:.1}%)",
        100.0 * err,
        100.0 * rel
    );
    eprintln!("{what}: model {model:.6} simulation {sim:.6} ({:.2}% off)", 100.0 * err);
}

fn pool(yaml: &str) -> knobs::eval::workload::pool::PoolModel {
    let spec: PoolSpec = serde_yaml::from_str(yaml).unwrap();
    spec.build(std::path::Path::new(".")).unwrap()
}

#[test]
fn erlang_c_matches_the_simulation() {
    // 8 connections of 20 ms at 85% utilization.
    let (c, mu, lambda) = (8, 50.0, 340.0);
    let sim = simulate(&[lambda], 2000.0, c, mu, None, 20.0, 1);
    let model = pool("{size: 8, service_time_ms: 20}");
    let m = model.evaluate(&Config::new(), &Scenario::constant(lambda, 2000.0)).unwrap();
    let waited = sim.waits.iter().filter(|w| **w > 0.0).count() as f64 / sim.waits.len() as f64;
    let seg = segment(lambda, 2000.0, c as u64, mu, None);
    close("P(wait > 0)", seg.wait.tail(0.0), waited, 0.03);
    close("mean wait (ms)", m["wait_mean_ms"], 1000.0 * mean(&sim.waits), 0.05);
    close("p99 wait (ms)", m["wait_p99_ms"], 1000.0 * p99(&sim.waits), 0.05);
    close("mean latency (ms)", m["latency_mean_ms"], 1000.0 * mean(&sim.latencies), 0.03);
    close("p99 latency (ms)", m["latency_p99_ms"], 1000.0 * p99(&sim.latencies), 0.04);
    close("utilization", m["utilization_mean"], 0.85, 1e-9);
    assert_eq!(m["rejected_fraction"], 0.0);
}

#[test]
fn a_queue_limit_matches_the_simulation() {
    // 4 connections, 6 waiting places, 95% offered load: many rejections.
    let (c, mu, lambda) = (4, 10.0, 38.0);
    let sim = simulate(&[lambda], 20000.0, c, mu, Some(6), 100.0, 2);
    let model = pool("{size: 4, service_time_ms: 100, queue_limit: 6}");
    let m = model.evaluate(&Config::new(), &Scenario::constant(lambda, 20000.0)).unwrap();
    close("rejected fraction", m["rejected_fraction"], sim.rejected as f64 / sim.arrivals as f64, 0.05);
    close("mean wait (ms)", m["wait_mean_ms"], 1000.0 * mean(&sim.waits), 0.05);
    close("p99 wait (ms)", m["wait_p99_ms"], 1000.0 * p99(&sim.waits), 0.05);
    close("p99 latency (ms)", m["latency_p99_ms"], 1000.0 * p99(&sim.latencies), 0.05);
    close("mean latency (ms)", m["latency_mean_ms"], 1000.0 * mean(&sim.latencies), 0.03);
}

#[test]
fn overload_follows_the_fluid_approximation() {
    // 130% load for one minute, starting empty: the backlog grows linearly.
    let (c, mu, lambda) = (4, 50.0, 260.0);
    let mut waits = Vec::new();
    for seed in 0..20 {
        waits.extend(simulate(&[lambda], 60.0, c, mu, None, 0.0, 100 + seed).waits);
    }
    let model = pool("{size: 4, service_time_ms: 20}");
    let m = model.evaluate(&Config::new(), &Scenario::constant(lambda, 60.0)).unwrap();
    close("mean wait in overload (ms)", m["wait_mean_ms"], 1000.0 * mean(&waits), 0.05);
    close("p99 wait in overload (ms)", m["wait_p99_ms"], 1000.0 * p99(&waits), 0.05);
    assert_eq!(m["overloaded_fraction"], 1.0);
    assert_eq!(m["utilization_peak"], 1.0);
    close("throughput in overload (1/s)", m["throughput_rps"], 200.0, 1e-9);
}

#[test]
fn a_varying_load_is_the_arrival_weighted_mixture() {
    // Quiet and busy segments of 10 minutes, pool size from the configuration.
    let rates = [100.0, 330.0, 150.0, 300.0];
    let sim = simulate(&rates, 600.0, 8, 50.0, None, 0.0, 3);
    let space = space("- {name: pool_size, type: int, low: 1, high: 64}");
    let spec: PoolSpec =
        serde_yaml::from_str("{size: pool_size, service_time_ms: 20, cost_per_connection: 2.5}").unwrap();
    let mut problems = Vec::new();
    spec.check("pool", &space, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    let model = spec.build(std::path::Path::new(".")).unwrap();
    let scenario = Scenario { step_s: 600.0, rates: rates.to_vec(), start: 0, label: "test".into() };
    let config = Config::from([("pool_size".to_string(), Value::Int(8))]);
    let m = model.evaluate(&config, &scenario).unwrap();
    close("mean wait (ms)", m["wait_mean_ms"], 1000.0 * mean(&sim.waits), 0.06);
    close("p99 wait (ms)", m["wait_p99_ms"], 1000.0 * p99(&sim.waits), 0.06);
    close("p99 latency (ms)", m["latency_p99_ms"], 1000.0 * p99(&sim.latencies), 0.05);
    assert_eq!(m["cost"], 20.0);
    // More connections never wait longer.
    let bigger = model.evaluate(&Config::from([("pool_size".to_string(), Value::Int(9))]), &scenario).unwrap();
    assert!(bigger["wait_p99_ms"] < m["wait_p99_ms"]);
}

#[test]
fn bad_pool_specs_name_every_field() {
    let space = space("- {name: mode, type: categorical, choices: [a, b]}");
    let spec: PoolSpec =
        serde_yaml::from_str("{size: mode, service_time_ms: -3, queue_limit: missing, memory_mb_per_connection: -1}")
            .unwrap();
    let mut problems = Vec::new();
    spec.check("evaluator.pool", &space, &mut problems);
    let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "evaluator.pool.size",
            "evaluator.pool.queue_limit",
            "evaluator.pool.service_time_ms",
            "evaluator.pool.memory_mb_per_connection"
        ],
        "{problems:?}"
    );
    assert!(problems[0].message.contains("categorical"));
    assert!(problems[1].message.contains("not a parameter"));
    assert!(serde_yaml::from_str::<PoolSpec>("{size: 4, service_time_ms: 20, colour: red}").is_err());
}
