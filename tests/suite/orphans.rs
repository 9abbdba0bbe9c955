//! Evaluator processes do not outlive knobs: a `kill -9` of `knobs run`, or a second
//! Ctrl-C, takes the evaluator and what it started (a load generator) down with it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::eval_command::{alive, read_pid, wait_gone};

/// A study whose evaluator starts a sleeping grandchild (the "load generator"), writes both
/// pids, and sleeps far longer than the test.
fn long_running_study(dir: &Path) -> PathBuf {
    std::fs::write(
        dir.join("bench.sh"),
        "#!/bin/sh\nsleep 300 &\necho $! > \"load.$1.pid\"\necho $$ > \"bench.$1.pid\"\nsleep 300\necho '{\"value\": 1}'\n",
    )
    .unwrap();
    let spec = dir.join("orphans.yaml");
    std::fs::write(
        &spec,
        r#"
name: orphans
space:
  - {name: x, type: float, low: 0, high: 1}
evaluator:
  type: command
  command: [sh, bench.sh, "{trial}"]
  timeout_s: 600
optimizer: random
budget: {trials: 4}
parallelism: 2
"#,
    )
    .unwrap();
    spec
}

fn start(dir: &Path) -> Child {
    let spec = long_running_study(dir);
    Command::new(env!("CARGO_BIN_EXE_knobs"))
        .env("KNOBS_LOG", "warn")
        .arg("run")
        .arg(&spec)
        .arg("--storage")
        .arg(dir.join("k.db"))
        .arg("--out")
        .arg(dir.join("out"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The pids of both running trials' evaluators and load generators, once all are written.
fn running(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for trial in 0..2 {
        pids.push(read_pid(&dir.join(format!("bench.{trial}.pid"))));
        pids.push(read_pid(&dir.join(format!("load.{trial}.pid"))));
    }
    assert!(pids.iter().all(|&p| alive(p)), "the evaluators should be running");
    pids
}

fn assert_all_gone(pids: &[u32]) {
    for &pid in pids {
        let gone = wait_gone(pid);
        if !gone {
            // Do not leave it behind for the next test either.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        assert!(gone, "process {pid} outlived knobs by 5 s");
    }
}

#[test]
fn kill_9_of_knobs_takes_its_evaluators_and_their_children_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut knobs = start(dir.path());
    let pids = running(dir.path());
    knobs.kill().unwrap(); // SIGKILL: no handler of knobs runs
    knobs.wait().unwrap();
    assert_all_gone(&pids);
}

#[test]
fn a_second_ctrl_c_stops_the_evaluators_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut knobs = start(dir.path());
    let pids = running(dir.path());
    unsafe { libc::kill(knobs.id() as i32, libc::SIGINT) };
    // The first Ctrl-C waits for the trials in flight (300 s here)...
    std::thread::sleep(Duration::from_millis(300));
    assert!(knobs.try_wait().unwrap().is_none(), "one Ctrl-C must let the trials in flight finish");
    assert!(pids.iter().all(|&p| alive(p)), "one Ctrl-C must not touch the evaluators");
    // ...the second stops now, evaluators included.
    unsafe { libc::kill(knobs.id() as i32, libc::SIGINT) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while knobs.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "knobs did not stop on the second Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_all_gone(&pids);
}
