use proptest::prelude::*;

use super::*;
use crate::error::Problem;

fn parse(yaml: &str) -> Result<Space, Vec<Problem>> {
    match Space::from_yaml(&serde_yaml::from_str(yaml).unwrap(), "space", "test") {
        Ok(s) => Ok(s),
        Err(crate::Error::Invalid(p)) => Err(p.items),
        Err(e) => panic!("{e}"),
    }
}

fn domain_strategy() -> impl Strategy<Value = Domain> {
    prop_oneof![
        (-1e6f64..1e6, 1e-6f64..1e6).prop_map(|(low, w)| Domain::Float { low, high: low + w, log: false, step: None }),
        (1e-6f64..1e3, 1.0f64..1e6).prop_map(|(low, f)| Domain::Float { low, high: low * f, log: true, step: None }),
        (-1e3f64..1e3, 1.0f64..1e3, 1u32..50).prop_map(|(low, w, k)| {
            let step = w / k as f64;
            Domain::Float { low, high: low + w, log: false, step: Some(step) }
        }),
        (-10_000i64..10_000, 0i64..10_000, 1i64..20).prop_map(|(low, w, step)| Domain::Int {
            low,
            high: low + w.max(step),
            log: false,
            step
        }),
        (1i64..1000, 0i64..1_000_000).prop_map(|(low, w)| Domain::Int { low, high: low + w, log: true, step: 1 }),
        (1usize..12)
            .prop_map(|n| Domain::Categorical { choices: (0..n).map(|i| Value::Str(format!("c{i}"))).collect() }),
        Just(Domain::Bool),
    ]
}

proptest! {
    #[test]
    fn decode_is_always_in_the_domain(d in domain_strategy(), u in -0.5f64..1.5) {
        let v = d.decode(u);
        prop_assert!(d.contains(&v), "{v:?} not in {d:?}");
        if let Domain::Int { .. } = d { prop_assert!(matches!(v, Value::Int(_))) }
    }

    #[test]
    fn encode_is_in_the_unit_cube_and_round_trips(d in domain_strategy(), u in 0.0f64..=1.0) {
        let v = d.decode(u);
        let e = d.encode(&v).expect("a decoded value encodes");
        prop_assert!((0.0..=1.0).contains(&e));
        let back = d.decode(e);
        match (&v, &back) {
            (Value::Float(a), Value::Float(b)) => prop_assert!((a - b).abs() <= 1e-9 * a.abs().max(1.0), "{a} vs {b}"),
            _ => prop_assert_eq!(&v, &back),
        }
    }

    #[test]
    fn steps_are_respected(low in -100.0f64..100.0, k in 1u32..40, w in 0.5f64..100.0, u in 0.0f64..=1.0) {
        let step = w / k as f64;
        let d = Domain::Float { low, high: low + w, log: false, step: Some(step) };
        let Value::Float(x) = d.decode(u) else { panic!() };
        let n = (x - low) / step;
        prop_assert!((n - n.round()).abs() < 1e-6, "{x} is off the grid {low} + k*{step}");
    }

    #[test]
    fn every_int_is_reachable_with_an_equal_share(low in -50i64..50, w in 0i64..30) {
        let d = Domain::Int { low, high: low + w, log: false, step: 1 };
        let n = (w + 1) as usize;
        let mut counts = vec![0usize; n];
        let samples = 100 * n;
        for i in 0..samples {
            let Value::Int(v) = d.decode((i as f64 + 0.5) / samples as f64) else { panic!() };
            counts[(v - low) as usize] += 1;
        }
        prop_assert!(counts.iter().all(|c| *c == 100), "{counts:?}");
    }
}

#[test]
fn log_scale_is_uniform_in_log_space() {
    let d = Domain::Float { low: 1.0, high: 1e6, log: true, step: None };
    // Equal steps in u are equal ratios in x.
    for i in 0..=6 {
        let Value::Float(x) = d.decode(i as f64 / 6.0) else { panic!() };
        assert!((x.log10() - i as f64).abs() < 1e-9, "u = {}/6 gave {x}", i);
    }
    let d = Domain::Int { low: 1, high: 1000, log: true, step: 1 };
    let below_10 = (0..10_000).filter(|i| matches!(d.decode(*i as f64 / 10_000.0), Value::Int(v) if v < 10)).count();
    // ln(9.5/0.5)/ln(1000.5/0.5) of the cube decodes below 10.
    let expected = (9.5f64 / 0.5).ln() / (1000.5f64 / 0.5).ln() * 10_000.0;
    assert!((below_10 as f64 - expected).abs() < 20.0, "{below_10} vs {expected}");
}

#[test]
fn conditional_parameters_are_active_only_when_their_condition_holds() {
    let s = parse(
        "- {name: eviction, type: categorical, choices: [lru, lfu], default: lru}\n\
         - {name: lfu_decay, type: float, low: 0.1, high: 0.9, default: 0.5, when: {eviction: lfu}}\n",
    )
    .unwrap();
    let lru = s.decode(&[0.1, 0.7]);
    assert_eq!(lru.len(), 1);
    let lfu = s.decode(&[0.9, 0.7]);
    assert!(lfu.contains_key("lfu_decay"));
    assert_eq!(s.baseline().unwrap().len(), 1);
    let x = s.encode(&lfu).unwrap();
    assert_eq!(s.decode(&x), lfu);
}

#[test]
fn validation_reports_every_problem_with_its_path() {
    let errs = parse(
        "- {name: a, type: float, low: 5, high: 1}\n\
         - {name: b, type: float, low: 0, high: 10, log: true}\n\
         - {name: c, type: float, low: -.inf, high: 1}\n\
         - {name: d, type: int, low: 1, high: 10, step: 20}\n\
         - {name: e, type: int, low: 1, high: 10, step: -1}\n\
         - {name: f, type: categorical, choices: []}\n\
         - {name: g, type: categorical, choices: [x, x]}\n\
         - {name: h, type: categorical, choices: [x, 2]}\n\
         - {name: a, type: bool}\n\
         - {name: '', type: bool}\n\
         - {name: i, type: int, low: 1, high: 5, defualt: 3}\n\
         - {name: j, type: int, low: 1, high: 5, default: 9}\n\
         - {name: k, type: float, low: 1, high: 5, step: 0.5, default: 1.2}\n\
         - {name: l, type: float, low: 1, high: 5, when: {zzz: 1}}\n\
         - {name: m, type: wobbly}\n",
    )
    .unwrap_err();
    let find = |path: &str, needle: &str| {
        assert!(
            errs.iter().any(|p| p.path == path && p.message.contains(needle)),
            "no problem at {path} containing `{needle}`; got:\n{}",
            errs.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
        )
    };
    find("space.a.low", "must be <= high");
    find("space.b.low", "must be > 0 for a log scale (got 0)");
    find("space.c.low", "finite");
    find("space.d.step", "larger than the range");
    find("space.e.step", "must be > 0");
    find("space.f.choices", "empty");
    find("space.g.choices[1]", "duplicate");
    find("space.h.choices", "mixes types");
    find("space.a.name", "duplicate");
    find("space[9].name", "must not be empty");
    find("space.i.defualt", "did you mean `default`");
    find("space.j.default", "outside the domain");
    find("space.k.default", "outside the domain");
    find("space.l.when.zzz", "not a parameter declared before");
    find("space.m.type", "unknown type");
}

#[test]
fn parameter_count_limits() {
    assert!(parse("[]").unwrap_err()[0].message.contains("at least one"));
    let many: String = (0..=MAX_PARAMS).map(|i| format!("- {{name: p{i}, type: bool}}\n")).collect();
    assert!(parse(&many).unwrap_err()[0].message.contains("at most 1024"));
    let ok: String = (0..MAX_PARAMS).map(|i| format!("- {{name: p{i}, type: bool}}\n")).collect();
    assert_eq!(parse(&ok).unwrap().dim(), MAX_PARAMS);
}

#[test]
fn defaults_all_or_none() {
    let errs = parse("- {name: a, type: bool, default: true}\n- {name: b, type: bool}\n").unwrap_err();
    assert!(errs[0].message.contains("give every parameter a default"), "{errs:?}");
}

#[test]
fn yaml_bombs_and_deep_nesting_are_refused() {
    let bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n\
                c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n\
                e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n\
                g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\nh: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n\
                i: [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
    assert!(crate::yaml::load(bomb, "bomb.yaml").is_err(), "an alias bomb must be refused");
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(crate::yaml::load(&deep, "deep.yaml").is_err());
    let big = "a: 1\n".repeat(crate::yaml::MAX_BYTES / 5 + 1);
    assert!(crate::yaml::load(&big, "big.yaml").unwrap_err().to_string().contains("limit"));
}

#[test]
fn rounding_keeps_what_matters() {
    let float = |low: f64, high: f64, log: bool| Domain::Float { low, high, log, step: None };
    let r = |d: &Domain, x: f64| d.round(&Value::Float(x)).as_f64().unwrap();
    // Four significant digits of the range: 1..3600 to whole units, 0..1 to thousandths.
    assert_eq!(r(&float(1.0, 3600.0, false), 432.8855572281266), 433.0);
    assert_eq!(r(&float(-32.768, 32.768, false), 0.017832), 0.02);
    assert_eq!(r(&float(0.0, 1.0, false), 0.123456), 0.123);
    assert_eq!(r(&float(0.0, 100000.0, false), 12345.6), 12300.0);
    // Log scale: four significant digits of the value itself.
    assert_eq!(r(&float(1e-6, 1.0, true), 0.000123456), 0.0001235);
    // Never outside the bounds; ints, steps and choices unchanged.
    assert_eq!(r(&float(0.0, 0.99999, false), 0.99999), 0.99999);
    let int = Domain::Int { low: 1, high: 10, log: false, step: 1 };
    assert_eq!(int.round(&Value::Int(7)), Value::Int(7));
    let space = Space::parse(
        "- {name: ttl, type: float, low: 1, high: 3600}\n- {name: mode, type: categorical, choices: [a, b]}\n",
        "t",
    )
    .unwrap();
    let c = Config::from([("ttl".to_string(), Value::Float(432.886)), ("mode".to_string(), Value::Str("a".into()))]);
    let rounded = space.round(&c);
    assert_eq!((rounded["ttl"].as_f64(), &rounded["mode"]), (Some(433.0), &Value::Str("a".into())));
}

#[test]
fn risky_choices_are_checked_and_found() {
    let space = parse(
        "- {name: sync, type: categorical, choices: ['off', normal, full], default: full, risky: ['off']}\n\
         - {name: fast, type: bool, default: false, risky: [true]}\n",
    )
    .unwrap();
    let c = Config::from([("sync".to_string(), Value::Str("off".into())), ("fast".to_string(), Value::Bool(false))]);
    assert_eq!(space.risky_choices(&c), vec![("sync".to_string(), Value::Str("off".into()))]);
    assert!(space.risky_choices(&space.baseline().unwrap()).is_empty());
    let errs = parse(
        "- {name: a, type: categorical, choices: [x, y], risky: [z]}\n\
         - {name: b, type: bool, risky: [true, false]}\n\
         - {name: c, type: int, low: 1, high: 3, risky: [2]}\n",
    )
    .unwrap_err();
    let text: Vec<String> = errs.iter().map(|p| format!("{}: {}", p.path, p.message)).collect();
    assert!(text.iter().any(|t| t.starts_with("space.a.risky: z is not one of the choices")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("space.b.risky: marks every choice risky")), "{text:?}");
    assert!(text.iter().any(|t| t.starts_with("space.c.risky: only categorical and bool")), "{text:?}");
}
