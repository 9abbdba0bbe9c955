//! What `knobs run` refuses before the first trial, so that nothing is stored or written
//! where it should not be: names that would escape the output folder, an output folder that
//! cannot be written, an evaluator program that does not exist.

use std::process::Command;

use serde_json::Value;

fn knobs() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_knobs"));
    c.env("KNOBS_LOG", "warn");
    c
}

#[test]
fn a_study_name_cannot_name_a_folder_outside_the_output_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    for (file, name_line) in [("dots.yaml", "name: \"..\"\n"), ("-x.yaml", "")] {
        let spec = work.join(file);
        std::fs::write(
            &spec,
            format!(
                "{name_line}space:\n  - {{name: x, type: float, low: 0, high: 1}}\nevaluator: {{type: function, name: ackley}}\nbudget: {{trials: 3}}\n"
            ),
        )
        .unwrap();
        let out = knobs().current_dir(&work).args(["run", "--json", "--"]).arg(&spec).output().unwrap();
        // --json: one JSON object on stdout on this exit path too.
        let v: Value = serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
        assert_eq!(out.status.code(), Some(2), "{file}: {v}");
        assert_eq!((v["ok"].as_bool(), v["exit_code"].as_i64()), (Some(false), Some(2)), "{v}");
        let problems = v["problems"].as_array().unwrap();
        assert!(problems.iter().any(|p| p["path"] == "name"), "{file}: the problem should be at `name`: {v}");
    }
    // Nothing was written, least of all beside the work folder.
    assert!(!tmp.path().join("recommendations.yaml").exists());
    assert!(!work.join("knobs-out").exists());
}

#[test]
fn a_typo_in_the_program_costs_nothing_and_the_fixed_spec_just_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("typo.yaml");
    std::fs::write(
        &spec,
        "name: typo\nspace:\n  - {name: x, type: float, low: 0, high: 1, default: 0.5}\n\
         evaluator: {type: command, command: [./bench.sh, \"{x}\"]}\nbudget: {trials: 3}\n",
    )
    .unwrap();
    let db = tmp.path().join("k.db");
    let run = || knobs().arg("run").arg(&spec).arg("--storage").arg(&db).arg("--out").arg(tmp.path()).output().unwrap();
    // validate says so without running anything, and so does run, before storing a trial.
    let out = knobs().arg("validate").arg(&spec).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("evaluator.command[0]: program"), "{out:?}");
    let out = run();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    // Not executable yet: said as such.
    let script = tmp.path().join("bench.sh");
    std::fs::write(&script, "#!/bin/sh\necho \"{\\\"value\\\": $1}\"\n").unwrap();
    let out = run();
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an executable file"), "{out:?}");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Fixed: a plain run works (no --resume needed), and the baseline is trial 0.
    let out = run();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(
        &knobs()
            .args(["recommend", "typo", "--json", "--plots", "none", "--storage"])
            .arg(&db)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(v["baseline"].is_object(), "the baseline was measured: {v}");
}

#[test]
fn an_output_folder_that_cannot_be_written_is_found_before_the_first_trial() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = tmp.path().join("out.yaml");
    std::fs::write(
        &spec,
        "name: outcheck\nspace:\n  - {name: x, type: float, low: -5, high: 5}\n  - {name: y, type: float, low: -5, high: 5}\n\
         evaluator: {type: function, name: ackley}\nbudget: {trials: 3}\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("afile"), "").unwrap();
    let db = tmp.path().join("k.db");
    let out = knobs()
        .arg("run")
        .arg(&spec)
        .arg("--storage")
        .arg(&db)
        .arg("--out")
        .arg(tmp.path().join("afile/sub"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be written"), "{out:?}");
    let studies = knobs().args(["studies", "--json", "--storage"]).arg(&db).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&studies.stdout).trim(), "[]", "nothing may be stored");
}
