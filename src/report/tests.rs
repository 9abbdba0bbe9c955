//! The plots drawn and read back.

use super::convergence::ValueAxis;
use super::*;
use crate::objective::{Constraint, Direction, Objective, Objectives};
use crate::space::Config;
use crate::trial::{Trial, TrialState};
use std::collections::BTreeMap;

fn objectives(direction: Direction) -> Objectives {
    Objectives {
        objectives: vec![Objective::new("latency_ms", direction)],
        constraints: vec![Constraint::parse("err <= 0.1").unwrap()],
        pareto: false,
    }
}

fn trial(number: u64, state: TrialState, latency: f64, err: f64) -> Trial {
    let metrics: BTreeMap<String, f64> = if state == TrialState::Complete {
        [("latency_ms".to_string(), latency), ("err".to_string(), err)].into()
    } else {
        BTreeMap::new()
    };
    Trial {
        number,
        batch: number,
        ticket: None,
        x: vec![],
        config: Config::new(),
        state,
        metrics,
        elapsed_s: None,
        epoch: 0,
        baseline: number == 0,
        confirm: false,
    }
}

fn ok(number: u64, latency: f64) -> Trial {
    trial(number, TrialState::Complete, latency, 0.0)
}

#[test]
fn best_so_far_skips_failed_and_ignores_infeasible_trials() {
    let trials = vec![
        ok(3, 7.0),
        ok(0, 10.0), // baseline; out of order on purpose
        trial(1, TrialState::Failed { reason: "boom".into() }, 0.0, 0.0),
        trial(2, TrialState::Complete, 1.0, 0.5), // best value but infeasible
        ok(4, 9.0),
        trial(5, TrialState::Running, 0.0, 0.0),
    ];
    let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
    let got: Vec<(u64, f64, bool, Option<f64>)> =
        c.points.iter().map(|p| (p.trial, p.value, p.feasible, p.best)).collect();
    assert_eq!(
        got,
        vec![
            (0, 10.0, true, Some(10.0)),
            (2, 1.0, false, Some(10.0)),
            (3, 7.0, true, Some(7.0)),
            (4, 9.0, true, Some(7.0)),
        ]
    );
    assert_eq!(c.baseline, Some(BaselineLevel { value: 10.0, feasible: true }));
    assert_eq!(c.best(), Some(7.0));
    assert_eq!(c.label, "latency_ms");
}

#[test]
fn maximized_objectives_are_shown_in_their_own_units() {
    let trials = vec![ok(0, 100.0), ok(1, 150.0), ok(2, 120.0)];
    let c = Convergence::from_trials(&objectives(Direction::Maximize), &trials);
    let best: Vec<Option<f64>> = c.points.iter().map(|p| p.best).collect();
    assert_eq!(best, vec![Some(100.0), Some(150.0), Some(150.0)]);
}

#[test]
fn svg_has_title_axis_labels_and_baseline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("convergence.svg");
    let trials: Vec<Trial> = (0..40).map(|i| ok(i, 50.0 / (1.0 + i as f64) + (i % 3) as f64)).collect();
    let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
    convergence_plot(&path, "study demo: minimize latency_ms", &c).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    let texts = svg_texts(&svg);
    for text in ["study demo: minimize latency_ms", "trial", "latency_ms", "baseline (50)", "best so far (1.25)"] {
        assert!(texts.iter().any(|t| t == text), "no text {text:?} in the SVG; texts: {texts:?}");
    }
    assert_eq!(svg.matches("<circle").count(), 40 + 1, "one point per trial, one in the legend");
}

#[test]
fn png_is_a_valid_png_of_the_plot_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("convergence.png");
    // Values over four decades: the log axis path.
    let trials: Vec<Trial> = (0..60).map(|i| ok(i, 3000.0 / (1.0 + (i * i) as f64) + 0.2)).collect();
    let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
    assert!(ValueAxis::fit(&c).log, "values over four decades should get a log axis");
    convergence_plot(&path, "log axis", &c).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), CONVERGENCE_SIZE);
}

#[test]
fn no_complete_trials_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("convergence.svg");
    let trials = vec![trial(0, TrialState::Failed { reason: "boom".into() }, 0.0, 0.0)];
    let c = Convergence::from_trials(&objectives(Direction::Minimize), &trials);
    assert!(c.is_empty());
    let err = convergence_plot(&path, "empty", &c).unwrap_err().to_string();
    assert!(err.contains("no convergence plot without complete trials"), "{err}");
    assert!(!path.exists());
    let empty = Convergence::from_trials(&objectives(Direction::Minimize), &[]);
    assert!(convergence_plot(&path, "empty", &empty).is_err());
}

#[test]
fn single_trial_all_equal_and_all_infeasible_values_draw() {
    let dir = tempfile::tempdir().unwrap();
    let o = objectives(Direction::Minimize);
    let cases: Vec<(&str, Vec<Trial>)> = vec![
        ("single", vec![ok(0, 5.0)]),
        ("equal", (0..10).map(|i| ok(i, 2.5)).collect()),
        ("zeros", (0..10).map(|i| ok(i, 0.0)).collect()),
        ("infeasible", (0..5).map(|i| trial(i, TrialState::Complete, i as f64, 1.0)).collect()),
        ("negative", (0..10).map(|i| ok(i, -1000.0 * i as f64)).collect()),
    ];
    for (name, trials) in cases {
        let c = Convergence::from_trials(&o, &trials);
        let ValueAxis { lo, hi, .. } = ValueAxis::fit(&c);
        assert!(lo < hi, "{name}: empty y range {lo}..{hi}");
        for ext in ["svg", "png"] {
            let path = dir.path().join(format!("{name}.{ext}"));
            convergence_plot(&path, name, &c).unwrap_or_else(|e| panic!("{name}.{ext}: {e}"));
            assert!(std::fs::metadata(&path).unwrap().len() > 0, "{name}.{ext} is empty");
        }
    }
    let texts = svg_texts(&std::fs::read_to_string(dir.path().join("infeasible.svg")).unwrap());
    assert!(texts.iter().any(|t| t == "infeasible trial"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("best so far")), "no feasible trial, no best line: {texts:?}");
}

#[test]
fn unknown_extensions_are_refused() {
    let c = Convergence::from_trials(&objectives(Direction::Minimize), &[ok(0, 1.0)]);
    let err = convergence_plot(Path::new("plot.jpg"), "t", &c).unwrap_err().to_string();
    assert!(err.contains("must end in .svg or .png"), "{err}");
    assert_eq!(PlotFormat::from_path(Path::new("a/B.PNG")).unwrap(), PlotFormat::Png);
}

#[test]
fn importance_plot_draws_bars_most_important_first() {
    let dir = tempfile::tempdir().unwrap();
    let importances = vec![
        ("cache_ttl_s".to_string(), 0.15),
        ("pool_size".to_string(), 0.7),
        ("a_parameter_with_a_rather_long_name_indeed_that_goes_on".to_string(), 0.05),
        ("eviction".to_string(), 1.0),
        ("gc_threshold".to_string(), 0.0),
    ];
    let svg_path = dir.path().join("importance.svg");
    importance_plot(&svg_path, "demo: parameter importance", &importances).unwrap();
    let texts = svg_texts(&std::fs::read_to_string(&svg_path).unwrap());
    for text in ["demo: parameter importance", "importance", "pool_size", "0.70", "1.00", "0.00"] {
        assert!(texts.iter().any(|t| t == text), "no text {text:?} in the SVG; texts: {texts:?}");
    }
    // Most important on top: SVG y grows downwards.
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let y = |name: &str| svg_text_y(&svg, name).unwrap_or_else(|| panic!("no label {name}"));
    let long = texts.iter().find(|t| t.starts_with("a_parameter_with")).expect("the long name, shortened");
    assert!(long.ends_with('…') && long.len() < importances[2].0.len(), "{long}");
    let order = ["eviction", "pool_size", "cache_ttl_s", long.as_str(), "gc_threshold"];
    assert!(order.windows(2).all(|w| y(w[0]) < y(w[1])), "{:?}", order.map(|n| (n, y(n))));

    let png_path = dir.path().join("importance.png");
    importance_plot(&png_path, "demo: parameter importance", &importances).unwrap();
    assert_eq!(png_size(&std::fs::read(&png_path).unwrap()), (900, 110 + 34 * 5));
}

#[test]
fn importance_plot_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("importance.svg");
    assert!(importance_plot(&path, "t", &[]).unwrap_err().to_string().contains("without parameters"));
    let bad = vec![("a".to_string(), 1.5), ("b".to_string(), f64::NAN), ("c".to_string(), 0.5)];
    let err = importance_plot(&path, "t", &bad).unwrap_err().to_string();
    assert!(err.contains("`a` must be in [0, 1] (got 1.5)") && err.contains("`b`"), "{err}");
    assert!(!err.contains("`c`"), "{err}");
    assert!(!path.exists());
}

/// The text of every `<text>` element of an SVG, trimmed.
fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
        .collect()
}

/// The y position of the first `<text>` element whose text is `text`.
fn svg_text_y(svg: &str, text: &str) -> Option<f64> {
    svg.split("<text").skip(1).find_map(|t| {
        let (attrs, rest) = t.split_once('>')?;
        (rest.split_once("</text>")?.0.trim() == text).then_some(())?;
        attrs.split_once(" y=\"")?.1.split_once('"')?.0.parse().ok()
    })
}

/// Check a PNG's structure (signature, every chunk's CRC, IHDR first,
/// image data present, IEND last) and return its width and height.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "no PNG signature");
    let mut at = 8;
    let mut chunks: Vec<[u8; 4]> = Vec::new();
    let mut size = (0, 0);
    while at < bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().unwrap();
        let data = &bytes[at + 8..at + 8 + len];
        let crc = u32::from_be_bytes(bytes[at + 8 + len..at + 12 + len].try_into().unwrap());
        assert_eq!(crc32(&bytes[at + 4..at + 8 + len]), crc, "bad CRC in chunk {:?}", String::from_utf8_lossy(&kind));
        if &kind == b"IHDR" {
            size = (
                u32::from_be_bytes(data[0..4].try_into().unwrap()),
                u32::from_be_bytes(data[4..8].try_into().unwrap()),
            );
        }
        chunks.push(kind);
        at += 12 + len;
    }
    assert_eq!(chunks.first(), Some(b"IHDR"));
    assert_eq!(chunks.last(), Some(b"IEND"));
    assert!(chunks.iter().any(|c| c == b"IDAT"), "no image data");
    size
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[test]
fn a_front_is_drawn_and_its_hypervolume_grows_to_the_fronts() {
    let objectives = Objectives {
        objectives: vec![
            Objective::new("latency_ms", Direction::Minimize),
            Objective::new("cost", Direction::Minimize),
        ],
        constraints: vec![],
        pareto: true,
    };
    let pairs = [(5.0, 5.0), (3.0, 4.0), (4.0, 2.0), (1.0, 6.0), (6.0, 1.0), (4.5, 4.5)];
    let trials: Vec<Trial> = pairs
        .iter()
        .enumerate()
        .map(|(i, &(l, c))| Trial {
            metrics: [("latency_ms".to_string(), l), ("cost".to_string(), c)].into(),
            ..trial(i as u64, TrialState::Complete, 0.0, 0.0)
        })
        .collect();
    let reference = [7.0, 7.0];
    let history = hypervolume_history(&objectives, &trials, &reference);
    assert_eq!(history.first(), Some(&(0, 4.0)));
    assert!(history.windows(2).all(|w| w[1].1 >= w[0].1), "{history:?}");
    let front: Vec<&[f64]> = vec![&[3.0, 4.0], &[4.0, 2.0], &[1.0, 6.0], &[6.0, 1.0]];
    assert_eq!(history.last().map(|h| (h.0, h.1)), Some((5, crate::pareto::hypervolume(&front, &reference))));

    let data = FrontData {
        names: vec!["latency_ms".into(), "cost".into()],
        trials: pairs.iter().map(|&(l, c)| vec![l, c]).collect(),
        front: front.iter().map(|p| p.to_vec()).collect(),
        knee: Some(0),
        baseline: Some(vec![5.0, 5.0]),
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("front.svg");
    front_plot(&path, "a front", &data).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    for text in ["a front", "latency_ms", "cost", "knee", "baseline", "front (4 configurations)"] {
        assert!(svg.contains(text), "{text} missing from the plot");
    }
    // Three objectives: a scatter matrix, one panel per pair, each objective's name on the diagonal.
    let three = FrontData {
        names: vec!["a".into(), "b".into(), "c".into()],
        trials: vec![vec![1.0, 2.0, 3.0]],
        front: vec![vec![1.0, 2.0, 3.0], vec![2.0, 1.0, 3.0]],
        knee: None,
        baseline: None,
    };
    front_plot(&path, "three", &three).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.contains(">\na\n<") && svg.contains(">\nc\n<") && svg.contains("front (2 configurations)"));
    // Nothing to draw is an error saying so.
    let empty = FrontData { front: vec![], ..three };
    assert!(front_plot(&path, "t", &empty).unwrap_err().to_string().contains("no front plot"));
    assert!(hypervolume_plot(&dir.path().join("h.svg"), "t", &history[..1]).is_err());
}
