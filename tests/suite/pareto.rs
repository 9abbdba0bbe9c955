//! Pareto studies end to end: the spec's checks, a study of a two-objective function with
//! `nsga2` and `auto`, its front in the recommendations, and protocol 2 of `knobs stdio`.

use std::path::PathBuf;
use std::sync::Arc;

use knobs::recommend::recommend;
use knobs::spec::Spec;
use knobs::stdio::Protocol;
use knobs::storage::{MemoryStorage, Storage};
use knobs::study::{RunOptions, StopReason, Study};
use serde_json::{Value, json};

fn zdt1_spec(extra: &str) -> String {
    let params: String =
        (0..6).map(|i| format!("  - {{name: x{i}, type: float, low: 0, high: 1, default: 0.5}}\n")).collect();
    format!("name: z\nseed: 3\nspace:\n{params}evaluator: {{type: function, name: zdt1}}\n{extra}\n")
}

fn problems(text: &str) -> Vec<String> {
    match Spec::parse(text, "t.yaml", "t", PathBuf::from(".")) {
        Ok(_) => Vec::new(),
        Err(e) => e.to_string().lines().map(str::to_string).collect(),
    }
}

#[test]
fn the_spec_refuses_what_a_pareto_study_cannot_mean_all_at_once() {
    let text = zdt1_spec(
        "pareto: true\nobjectives:\n  - {metric: f1, weight: 2}\n  - {metric: f2, reference: 3}\noptimizer: cmaes\nbudget: {trials: 50, target: 0.1}",
    );
    let all = problems(&text).join("\n");
    assert!(all.contains("objectives[0].weight") && all.contains("weighs no objective"), "{all}");
    assert!(all.contains("budget.target"), "{all}");
    // One objective is no Pareto study; a reference point needs one.
    let one = problems(&zdt1_spec("pareto: true\nobjectives: [f1]\nbudget: {trials: 50}")).join("\n");
    assert!(one.contains("pareto") && one.contains("two or more objectives"), "{one}");
    let stray =
        problems(&zdt1_spec("objectives:\n  - {metric: f1, reference: 2}\n  - f2\nbudget: {trials: 50}")).join("\n");
    assert!(stray.contains("objectives[0].reference") && stray.contains("pareto: true"), "{stray}");
    // A single-objective optimizer is refused, naming the ones that can.
    let cmaes =
        problems(&zdt1_spec("pareto: true\nobjectives: [f1, f2]\noptimizer: cmaes\nbudget: {trials: 50}")).join("\n");
    assert!(cmaes.contains("optimizer.name") && cmaes.contains("nsga2") && cmaes.contains("nsga3"), "{cmaes}");
    // The function's box is checked too.
    let wide = problems(
        &zdt1_spec("pareto: true\nobjectives: [f1, f2]\nbudget: {trials: 50}").replace("high: 1,", "high: 2,"),
    );
    assert!(wide.join("\n").contains("defined on [0, 1]"), "{wide:?}");
    assert!(problems(&zdt1_spec("pareto: true\nobjectives: [f1, f2]\nbudget: {trials: 50}")).is_empty());
}

fn run(extra: &str) -> (Study, knobs::RunReport) {
    let spec = Spec::parse(&zdt1_spec(extra), "t.yaml", "z", PathBuf::from(".")).unwrap_or_else(|e| panic!("{e}"));
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let mut study = Study::open(spec, storage, false).unwrap();
    let report = study.run(&RunOptions::default()).unwrap();
    (study, report)
}

#[test]
fn a_study_finds_a_front_that_beats_the_baseline_and_covers_both_ends() {
    for optimizer in ["nsga2", "auto"] {
        let (study, report) =
            run(&format!("pareto: true\nobjectives: [f1, f2]\noptimizer: {optimizer}\nbudget: {{trials: 600}}"));
        assert_eq!(report.stop, StopReason::Trials);
        let s = study.spec();
        let recs = recommend("z", &s.space, &s.objectives, study.trials(), 5);
        let front = recs.pareto.as_ref().expect("a Pareto study has a front");
        assert!(front.pareto_front.len() >= 10, "{optimizer}: {} points", front.pareto_front.len());
        // The baseline (0.5, 3.84) is beaten in both objectives by much of the front.
        assert!(front.baseline_dominated_by.len() >= 5, "{optimizer}: {:?}", front.baseline_dominated_by);
        let f1: Vec<f64> = front.pareto_front.iter().map(|p| p.objectives[0]).collect();
        assert!(f1.iter().any(|&v| v < 0.05) && f1.iter().any(|&v| v > 0.3), "{optimizer}: ends of the front {f1:?}");
        // Close to the true front f2 = 1 - sqrt(f1): g stays below 1.2 for the knee.
        let knee = front.pareto_front.iter().find(|p| p.knee).unwrap();
        assert!(
            knee.objectives[1] < 1.2 * (1.0 - knee.objectives[0].sqrt()) + 0.05,
            "{optimizer}: knee {:?}",
            knee.objectives
        );
        assert!(front.hypervolume > 0.0);
    }
}

#[test]
fn patience_counts_trials_without_a_new_point_on_the_front() {
    let (study, report) =
        run("pareto: true\nobjectives: [f1, f2]\noptimizer: random\nbudget: {trials: 5000, patience: 40}");
    assert_eq!(report.stop, StopReason::Patience);
    assert!(study.trials().len() < 5000);
}

fn reply(p: &mut Protocol, request: Value) -> Value {
    let (r, _) = p.reply(&request.to_string());
    r
}

#[test]
fn stdio_protocol_2_tells_vectors_and_closes_with_the_front() {
    let mut p = Protocol::new("nsga2", &[]).unwrap();
    let space = json!({"params": [
        {"name": "x0", "type": "float", "low": 0.0, "high": 1.0},
        {"name": "x1", "type": "float", "low": 0.0, "high": 1.0}]});
    // Protocol 1 refuses objectives; protocol 2 needs two or more.
    let r = reply(
        &mut p,
        json!({"op": "init", "protocol": 1, "space": space, "objectives": [{"name": "a"}, {"name": "b"}]}),
    );
    assert_eq!(r["ok"], false, "{r}");
    let r = reply(&mut p, json!({"op": "init", "protocol": 2, "space": space, "objectives": [{"name": "a"}]}));
    assert_eq!(r["ok"], false, "{r}");
    let init = json!({"op": "init", "protocol": 2, "budget": 200, "seed": 1, "space": space,
        "objectives": [{"name": "a", "direction": "minimize"}, {"name": "b", "direction": "maximize"}]});
    assert_eq!(reply(&mut p, init)["ok"], true);
    let mut told = 0;
    while told < 200 {
        let asked = reply(&mut p, json!({"op": "ask", "n": 10}));
        let trials = asked["trials"].as_array().unwrap().clone();
        assert!(!trials.is_empty(), "{asked}");
        let results: Vec<Value> = trials
            .iter()
            .map(|t| {
                let (x0, x1) = (t["params"]["x0"].as_f64().unwrap(), t["params"]["x1"].as_f64().unwrap());
                // Minimize a = x0, maximize b = sqrt(x0) - x1: the front is b = sqrt(a), x1 = 0.
                json!({"id": t["id"], "values": [x0, x0.sqrt() - x1]})
            })
            .collect();
        told += results.len();
        // A scalar value is refused in a Pareto session.
        let bad = reply(&mut p, json!({"op": "tell", "results": [{"id": trials[0]["id"], "value": 1.0}]}));
        assert_eq!(bad["ok"], false, "{bad}");
        assert_eq!(reply(&mut p, json!({"op": "tell", "results": results}))["ok"], true);
    }
    let closed = reply(&mut p, json!({"op": "close", "recommend": true}));
    let front = closed["front"].as_array().unwrap();
    assert!(front.len() >= 5, "{closed}");
    for point in front {
        let b = point["values"][1].as_f64().unwrap();
        let a = point["values"][0].as_f64().unwrap();
        assert!(b > a.sqrt() - 0.1, "front point {point} is far from b = sqrt(a)");
    }
    assert!(closed["recommended"].as_array().is_some_and(|r| r.len() == front.len()), "{closed}");
    assert!(closed["hypervolume"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_cli_writes_the_front_and_evaluate_scores_every_point_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/examples/parego.yaml");
    let knobs = || {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_knobs"));
        c.env("KNOBS_LOG", "warn");
        c
    };
    let out = knobs()
        .arg("run")
        .arg(&spec)
        .args(["--trials", "20", "--json", "--storage"])
        .arg(dir.path().join("k.db"))
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let front = v["pareto_front"].as_array().unwrap().len();
    assert!(front >= 2 && v["hypervolume"].as_f64().unwrap() > 0.0, "{v}");
    let recs = dir.path().join("example-parego/recommendations.yaml");
    for plot in ["front.svg", "hypervolume.svg"] {
        assert!(dir.path().join("example-parego").join(plot).is_file(), "{plot} missing");
    }
    let out = knobs().arg("evaluate").arg(&spec).arg("--config").arg(&recs).arg("--json").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    let labels: Vec<&str> = e["evaluations"].as_array().unwrap().iter().filter_map(|r| r["label"].as_str()).collect();
    // The baseline and every point of the front, the knee named.
    assert_eq!(labels.len(), front + 1, "{labels:?}");
    assert!(labels.iter().any(|l| l.ends_with("(knee)")), "{labels:?}");
}
