//! The PostgreSQL example (configs/pgbench): a private instance started and
//! stopped by its own script, tuned with pgbench, the recommendation
//! re-measured beside the baseline. Skipped, saying why, where PostgreSQL's
//! programs are not installed.

use std::path::Path;
use std::process::Command;

#[test]
fn the_pgbench_example_tunes_a_private_postgres_and_cleans_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = Command::new(root.join("configs/pgbench/run.sh"))
        .env("KNOBS", env!("CARGO_BIN_EXE_knobs"))
        .env("TRIALS", "8")
        .env("PGBENCH_SECONDS", "1")
        .env("PGBENCH_SCALE", "1")
        .env("REMEASURE", "2")
        .env("OUT", out.path())
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    if run.status.code() == Some(77) {
        eprintln!("{}", stdout.trim()); // "skipped: PostgreSQL's `initdb` is not installed ..."
        assert!(stdout.starts_with("skipped: "), "{stdout}");
        return;
    }
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("study pgbench: "), "{stdout}");
    assert!(stdout.contains("re-measured improvement: "), "{stdout}");
    assert!(out.path().join("pgbench/recommendations.json").is_file());
    // The private instance is gone: its folder removed, no server left running on it.
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "the script left {left:?} behind");
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    let ps = String::from_utf8_lossy(&ps.stdout);
    assert!(!ps.contains(&tmp.path().display().to_string()), "a server still runs in the temporary folder");
}
