//! The test functions against the peer harness's definitions (its
//! `functions.py`): mixed_service bit for bit against the harness's test
//! vectors (copied to `tests/fixtures/eval/mixed_service_vectors.json`), the
//! classic functions at their known minima and at random points against
//! Python (a standard-library port of the formulas in
//! `tests/fixtures/eval/reference.py`, or the harness's own `functions.py`
//! when `KNOBS_PEERS_DIR` names its folder and numpy is installed), and the
//! evaluator's spec checking.

use std::f64::consts::PI;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use knobs::error::Problem;
use knobs::eval::functions::{
    self, BENCHMARKS, Function, FunctionEvaluator, FunctionSpec, METRIC, ackley, benchmark, branin, hartmann6,
    mixed_service, rastrigin, rosenbrock, styblinski_tang,
};
use knobs::eval::{EvalContext, EvalError, Evaluator, EvaluatorSpec};
use knobs::space::{Config, Space, Value};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {} ({e})", path.display()))
}

/// Parse Python's `float.hex()` output (`-0x1.76ce46fb6a7fbp+12`, `0x0.0p+0`,
/// subnormals `0x0.0000000000001p-1022`, `inf`, `nan`).
fn parse_hex_float(s: &str) -> f64 {
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let sign = if neg { 1u64 << 63 } else { 0 };
    match body {
        "inf" => return f64::from_bits(sign | f64::INFINITY.to_bits()),
        "nan" => return f64::NAN,
        _ => {}
    }
    let body = body.strip_prefix("0x").unwrap_or_else(|| panic!("`{s}`: no 0x prefix"));
    let (mantissa, exp) = body.split_once('p').unwrap_or_else(|| panic!("`{s}`: no p exponent"));
    let exp: i64 = exp.parse().unwrap_or_else(|e| panic!("`{s}`: bad exponent: {e}"));
    let (lead, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    assert!(frac.len() <= 13, "`{s}`: more than 13 fraction digits");
    let frac_bits = if frac.is_empty() { 0 } else { u64::from_str_radix(frac, 16).expect("hex fraction") }
        << (4 * (13 - frac.len()));
    let bits = match lead {
        "1" => {
            assert!((-1022..=1023).contains(&exp), "`{s}`: exponent out of range");
            ((exp + 1023) as u64) << 52 | frac_bits
        }
        "0" if frac_bits == 0 => 0,
        "0" => {
            assert_eq!(exp, -1022, "`{s}`: subnormals are written with p-1022");
            frac_bits
        }
        _ => panic!("`{s}`: leading digit must be 0 or 1"),
    };
    f64::from_bits(sign | bits)
}

#[test]
fn hex_float_parser() {
    assert_eq!(parse_hex_float("0x1.0000000000000p+0"), 1.0);
    assert_eq!(parse_hex_float("0x1.8p+1"), 3.0);
    assert_eq!(parse_hex_float("-0x1.0p-1"), -0.5);
    assert_eq!(parse_hex_float("0x0.0p+0").to_bits(), 0);
    assert_eq!(parse_hex_float("-0x0.0p+0").to_bits(), (-0.0f64).to_bits());
    assert_eq!(parse_hex_float("0x0.0000000000001p-1022"), f64::from_bits(1));
    assert_eq!(parse_hex_float("0x1.fffffffffffffp+1023"), f64::MAX);
    assert_eq!(parse_hex_float("0x1.999999999999ap-4"), 0.1);
    assert_eq!(parse_hex_float("-inf"), f64::NEG_INFINITY);
}

#[test]
fn mixed_service_matches_every_vector_bit_for_bit() {
    let doc: serde_json::Value =
        serde_json::from_str(&fixture("mixed_service_vectors.json")).expect("vectors file is JSON");
    let vectors = doc["vectors"].as_array().expect("`vectors` list");
    assert!(vectors.len() >= 20, "expected at least 20 vectors, found {}", vectors.len());
    let mut failures = Vec::new();
    for v in vectors {
        let input = &v["input"];
        let c = input["pool_size"].as_i64().expect("pool_size");
        let t = input["cache_ttl_s"].as_f64().expect("cache_ttl_s");
        let g = input["gc_threshold"].as_i64().expect("gc_threshold");
        let k = input["eviction"].as_str().expect("eviction");
        let hex = v["output_hex"].as_str().expect("output_hex");
        let want = parse_hex_float(hex);
        assert_eq!(want, v["output"].as_f64().expect("output"), "output and output_hex disagree in {v}");
        let got = mixed_service(c, t, g, k);
        if got.to_bits() != want.to_bits() {
            failures.push(format!("mixed_service({c}, {t}, {g}, {k}) = {got:e}, expected {want:e} ({hex})"));
        }
    }
    assert!(failures.is_empty(), "not bit-for-bit:\n{}", failures.join("\n"));

    let f_star = parse_hex_float(doc["f_star_hex"].as_str().expect("f_star_hex"));
    assert_eq!(f_star.to_bits(), functions::MIXED_SERVICE_F_STAR.to_bits());
    let x = &doc["x_star"];
    let at_x_star = mixed_service(
        x["pool_size"].as_i64().unwrap(),
        x["cache_ttl_s"].as_f64().unwrap(),
        x["gc_threshold"].as_i64().unwrap(),
        x["eviction"].as_str().unwrap(),
    );
    assert_eq!(at_x_star.to_bits(), f_star.to_bits());
}

#[test]
fn mixed_service_rejects_inputs_outside_its_domain() {
    assert!(mixed_service(0, 100.0, 1000, "lru").is_nan());
    assert!(mixed_service(257, 100.0, 1000, "lru").is_nan());
    assert!(mixed_service(99, 0.5, 1000, "lru").is_nan());
    assert!(mixed_service(99, f64::NAN, 1000, "lru").is_nan());
    assert!(mixed_service(99, 100.0, 99, "lru").is_nan());
    assert!(mixed_service(99, 100.0, 1000, "random").is_nan());
    assert!(mixed_service(99, 100.0, 1000, "lru").is_finite());
}

fn close(got: f64, want: f64, tol: f64) -> bool {
    (got - want).abs() <= tol * want.abs().max(1.0)
}

#[test]
fn branin_has_its_three_global_minima() {
    let f_star = 5.0 / (4.0 * PI); // = s * t, exactly where the quadratic term vanishes
    assert!(close(f_star, 0.39788735772973816, 1e-15));
    for x in [[-PI, 12.275], [PI, 2.275], [3.0 * PI, 2.475]] {
        let v = branin(&x);
        assert!(close(v, 0.39788735772973816, 1e-13), "branin({x:?}) = {v}");
    }
    // Elsewhere it is higher, e.g. at the box corners.
    for x in [[-5.0, 0.0], [10.0, 15.0], [0.0, 0.0]] {
        assert!(branin(&x) > 0.4, "branin({x:?}) = {}", branin(&x));
    }
    assert!(close(branin(&[0.0, 0.0]), 55.602112642270262, 1e-12));
}

#[test]
fn hartmann6_minimum() {
    let x = [0.20168951, 0.15001069, 0.47687398, 0.27533243, 0.31165162, 0.65730053];
    let v = hartmann6(&x);
    let f_star = -3.322368011415515;
    assert!(v >= f_star - 1e-12, "hartmann6(x*) = {v} is below f* = {f_star}");
    assert!(v - f_star < 1e-9, "hartmann6(x*) = {v}, f* = {f_star}");
    // Moving away from x* makes it worse.
    for i in 0..6 {
        let mut y = x;
        y[i] += 0.01;
        assert!(hartmann6(&y) > v);
    }
    assert!(close(hartmann6(&[0.5; 6]), -0.5053149917022333, 1e-12), "{}", hartmann6(&[0.5; 6]));
}

#[test]
fn ackley_rastrigin_rosenbrock_styblinski_tang_minima() {
    for d in [1, 2, 5, 10] {
        assert!(ackley(&vec![0.0; d]).abs() < 1e-14, "ackley at 0 in {d}-D");
        assert_eq!(rastrigin(&vec![0.0; d]), 0.0, "rastrigin at 0 in {d}-D");
        let st = styblinski_tang(&vec![functions::STYBLINSKI_TANG_X1; d]);
        assert!(close(st, functions::STYBLINSKI_TANG_F1 * d as f64, 1e-14), "styblinski_tang in {d}-D: {st}");
        assert!(styblinski_tang(&vec![-2.9; d]) > st && styblinski_tang(&vec![-2.91; d]) > st);
    }
    for d in [2, 5, 10] {
        assert_eq!(rosenbrock(&vec![1.0; d]), 0.0, "rosenbrock at 1 in {d}-D");
        assert!(rosenbrock(&vec![0.9; d]) > 0.0);
    }
    // Values away from the minima, from the formulas by hand.
    assert_eq!(rosenbrock(&[0.0, 0.0]), 1.0);
    assert_eq!(rosenbrock(&[-1.0, 1.0, 2.0]), 4.0 + 100.0 + 0.0);
    assert!(close(rastrigin(&[0.5, -0.5]), 10.0 * 2.0 + 2.0 * (0.25 + 10.0), 1e-14));
    assert!(close(styblinski_tang(&[1.0, 2.0]), 0.5 * ((1.0 - 16.0 + 5.0) + (16.0 - 64.0 + 10.0)), 1e-15));
    assert!(close(
        ackley(&[1.0, 1.0]),
        -20.0 * (-0.2f64).exp() - std::f64::consts::E + 20.0 + std::f64::consts::E,
        1e-14
    ));
}

/// Deterministic pseudo-random numbers in [0, 1) (splitmix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn random_points_agree_with_python() {
    // (name, function, dimension, low, high)
    type Case = (&'static str, fn(&[f64]) -> f64, usize, f64, f64);
    let fns: [Case; 6] = [
        ("branin", branin, 2, -5.0, 15.0),
        ("hartmann6", hartmann6, 6, 0.0, 1.0),
        ("ackley", ackley, 10, -32.768, 32.768),
        ("rosenbrock", rosenbrock, 10, -5.0, 10.0),
        ("rastrigin", rastrigin, 10, -5.12, 5.12),
        ("styblinski_tang", styblinski_tang, 8, -5.0, 5.0),
    ];
    let mut rng = Rng(20261122);
    let mut points = Vec::new();
    for (name, f, d, lo, hi) in fns {
        for _ in 0..8 {
            let x: Vec<f64> = (0..d).map(|_| lo + (hi - lo) * rng.next()).collect();
            points.push((name, f, x));
        }
    }
    let input =
        serde_json::to_string(&points.iter().map(|(n, _, x)| serde_json::json!({"fn": n, "x": x})).collect::<Vec<_>>())
            .unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/eval/reference.py");
    let mut python = Command::new("python3");
    python.arg(&script);
    if let Some(dir) = std::env::var_os("KNOBS_PEERS_DIR") {
        python.arg(dir);
    }
    let mut child = python
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("this test needs python3 on PATH");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "reference.py failed: {stderr}");
    eprintln!("{}", stderr.trim());
    let hexes: Vec<String> = serde_json::from_slice(&out.stdout).expect("reference.py prints a JSON list");
    assert_eq!(hexes.len(), points.len());
    let mut failures = Vec::new();
    let mut exact = 0;
    for ((name, f, x), hex) in points.iter().zip(&hexes) {
        let want = parse_hex_float(hex);
        let got = f(x);
        exact += (got.to_bits() == want.to_bits()) as usize;
        // numpy's pairwise sums and libm differences allow a few ulps.
        if !close(got, want, 1e-13) {
            failures.push(format!("{name}({x:?}) = {got:e}, python says {want:e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{exact} of {} points bit-for-bit identical", points.len());
}

// ---------------------------------------------------------------------------
// The evaluator and its spec.
// ---------------------------------------------------------------------------

fn space(yaml: &str) -> Space {
    Space::parse(yaml, "test").unwrap_or_else(|e| panic!("{e}"))
}

fn ctx() -> EvalContext {
    EvalContext { study: "test".into(), trial: 0, base_dir: PathBuf::from(".") }
}

fn check(name: &str, space: &Space) -> Vec<Problem> {
    let mut problems = Vec::new();
    FunctionSpec { name: name.into(), gradients: false }.check(space, &mut problems);
    problems
}

fn config(pairs: &[(&str, Value)]) -> Config {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn spec_parses_from_yaml_and_refuses_unknown_fields() {
    let spec: EvaluatorSpec = serde_yaml::from_str("type: function\nname: branin\n").unwrap();
    assert_eq!(spec, EvaluatorSpec::Function(FunctionSpec { name: "branin".into(), gradients: false }));
    assert_eq!(spec.metrics(), Some(vec![METRIC.to_string()]));
    let err = serde_yaml::from_str::<EvaluatorSpec>("type: function\nname: branin\nnoise: 1\n").unwrap_err();
    assert!(err.to_string().contains("noise"), "{err}");
}

#[test]
fn evaluator_reads_parameters_in_declaration_order() {
    // Declared b, a: x0 = b, x1 = a, whatever the names.
    let s = space("- {name: b, type: float, low: -5, high: 10}\n- {name: a, type: int, low: 0, high: 15}\n");
    let ev = EvaluatorSpec::Function(FunctionSpec { name: "branin".into(), gradients: false })
        .build(&s, std::path::Path::new("."))
        .unwrap();
    let m = ev.evaluate(&config(&[("b", Value::Float(PI)), ("a", Value::Int(2))]), &ctx()).unwrap();
    assert_eq!(m.metrics.len(), 1);
    assert_eq!(m.metrics[METRIC], branin(&[PI, 2.0]));
    assert_eq!(ev.metrics(), vec![METRIC.to_string()]);
}

#[test]
fn evaluator_reports_bad_configurations_as_invalid() {
    let s = space("- {name: x0, type: float, low: -5, high: 5}\n- {name: x1, type: float, low: -5, high: 5}\n");
    let ev = FunctionEvaluator::new(&FunctionSpec { name: "rosenbrock".into(), gradients: false }, &s).unwrap();
    let missing = ev.evaluate(&config(&[("x0", Value::Float(1.0))]), &ctx()).unwrap_err();
    assert!(matches!(&missing, EvalError::Invalid(m) if m.contains("x1") && m.contains("missing")), "{missing:?}");
    let text = ev.evaluate(&config(&[("x0", Value::Float(1.0)), ("x1", Value::Str("a".into()))]), &ctx()).unwrap_err();
    assert!(matches!(&text, EvalError::Invalid(m) if m.contains("x1")), "{text:?}");
    let huge = ev.evaluate(&config(&[("x0", Value::Float(1e200)), ("x1", Value::Float(0.0))]), &ctx()).unwrap_err();
    assert!(matches!(&huge, EvalError::Invalid(m) if m.contains("inf")), "{huge:?}");
}

#[test]
fn every_benchmark_checks_and_reaches_f_star_at_x_star() {
    for name in BENCHMARKS {
        let b = benchmark(name).unwrap_or_else(|| panic!("benchmark({name})"));
        assert_eq!(b.name, name);
        assert_eq!(check(b.function.name(), &b.space), vec![], "{name}");
        let ev = EvaluatorSpec::Function(b.spec()).build(&b.space, std::path::Path::new(".")).unwrap();
        let v = ev.evaluate(&b.x_star, &ctx()).unwrap().metrics[METRIC];
        assert!(v >= b.f_star - 1e-12 && v - b.f_star < 1e-9, "{name}: f(x*) = {v}, f* = {}", b.f_star);
        // x* is inside the declared space.
        assert!(b.space.check_config(&b.x_star).is_ok(), "{name}: x* outside the space");
    }
    assert!(benchmark("rosenbrock").is_none());
    let dims: Vec<usize> = BENCHMARKS.iter().map(|n| benchmark(n).unwrap().space.dim()).collect();
    assert_eq!(dims, vec![2, 6, 10, 10, 10, 8, 4]);
    let ms = benchmark("mixed_service").unwrap();
    let v = FunctionEvaluator::new(&ms.spec(), &ms.space).unwrap().evaluate(&ms.x_star, &ctx()).unwrap();
    assert_eq!(v.metrics[METRIC].to_bits(), functions::MIXED_SERVICE_F_STAR.to_bits());
}

#[test]
fn check_names_the_valid_functions() {
    let s = space("- {name: x0, type: float, low: 0, high: 1}\n");
    let p = check("sphere", &s);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].path, "evaluator.name");
    for name in Function::names() {
        assert!(p[0].message.contains(name), "{}", p[0].message);
    }
    // A harness name gets a hint.
    let p = check("rosenbrock10", &s);
    assert!(p[0].message.contains("`rosenbrock`"), "{}", p[0].message);
    assert!(FunctionEvaluator::new(&FunctionSpec { name: "sphere".into(), gradients: false }, &s).is_err());
}

#[test]
fn check_reports_dimension_and_type_mismatches() {
    let three = space(
        "- {name: x0, type: float, low: 0, high: 1}\n- {name: x1, type: float, low: 0, high: 1}\n- {name: x2, type: float, low: 0, high: 1}\n",
    );
    let p = check("branin", &three);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].message.contains("exactly 2") && p[0].message.contains("declares 3"), "{}", p[0].message);
    let p = check("hartmann6", &three);
    assert!(p[0].message.contains("exactly 6"), "{}", p[0].message);
    let one = space("- {name: x0, type: float, low: 0, high: 1}\n");
    assert_eq!(check("rosenbrock", &one).len(), 1);
    assert!(check("ackley", &one).is_empty());

    let mixed = space(
        "- {name: x0, type: float, low: 0, high: 1}\n- {name: mode, type: categorical, choices: [a, b]}\n- {name: on, type: bool}\n- {name: x3, type: float, low: 0, high: 1, when: {mode: a}}\n",
    );
    let p = check("rastrigin", &mixed);
    let text: Vec<String> = p.iter().map(|p| p.to_string()).collect();
    assert_eq!(p.len(), 3, "{text:?}");
    assert!(text.iter().any(|t| t.contains("`mode` is categorical")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("`on` is bool")), "{text:?}");
    assert!(text.iter().any(|t| t.contains("`x3` is conditional")), "{text:?}");
    assert!(p.iter().all(|p| p.path == "evaluator.name"));
}

#[test]
fn check_reports_every_mixed_service_mismatch() {
    let s = space(
        "- {name: pool_size, type: float, low: 1, high: 256}\n- {name: cache_ttl_s, type: float, low: 0.5, high: 100}\n- {name: eviction, type: categorical, choices: [lru, random]}\n- {name: extra, type: int, low: 0, high: 3}\n",
    );
    let text: Vec<String> = check("mixed_service", &s).iter().map(|p| p.to_string()).collect();
    let has = |s: &str| text.iter().any(|t| t.contains(s));
    assert!(has("`extra`"), "{text:?}");
    assert!(has("`pool_size` must be an int"), "{text:?}");
    assert!(has("`gc_threshold`") && has("has none"), "{text:?}");
    assert!(has("`cache_ttl_s` must stay within [1, 86400]"), "{text:?}");
    assert!(has("`random`"), "{text:?}");
    assert_eq!(text.len(), 5, "{text:?}");

    let wide = space(
        "- {name: pool_size, type: int, low: 0, high: 300}\n- {name: cache_ttl_s, type: float, low: 1, high: 86400, log: true}\n- {name: gc_threshold, type: int, low: 100, high: 100000, log: true}\n- {name: eviction, type: categorical, choices: [lfu]}\n",
    );
    let text: Vec<String> = check("mixed_service", &wide).iter().map(|p| p.to_string()).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(text[0].contains("`pool_size` must stay within [1, 256]"), "{text:?}");
}

#[test]
fn mixed_service_evaluator_uses_the_exact_formula() {
    let b = benchmark("mixed_service").unwrap();
    let ev = FunctionEvaluator::new(&b.spec(), &b.space).unwrap();
    let c = config(&[
        ("pool_size", Value::Int(82)),
        ("cache_ttl_s", Value::Float(300.0)),
        ("gc_threshold", Value::Int(2000)),
        ("eviction", Value::Str("lfu".into())),
    ]);
    let v = ev.evaluate(&c, &ctx()).unwrap().metrics[METRIC];
    assert_eq!(v.to_bits(), parse_hex_float("0x1.6622c30a7453fp+6").to_bits());
    let mut bad = c.clone();
    bad.insert("eviction".into(), Value::Str("mru".into()));
    assert!(matches!(ev.evaluate(&bad, &ctx()), Err(EvalError::Invalid(m)) if m.contains("eviction")));
    let mut out = c.clone();
    out.insert("pool_size".into(), Value::Int(1000));
    assert!(matches!(ev.evaluate(&out, &ctx()), Err(EvalError::Invalid(m)) if m.contains("outside [1, 256]")));
}
