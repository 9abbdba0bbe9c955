//! The command-line face: parses arguments (clap), calls the library, and
//! prints tables or `--json`. Holds no logic the library lacks.

// Doc comments here are also `--help` text, which writes placeholders as <name>.
#![allow(rustdoc::invalid_html_tags)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::error::{Error, ErrorKind};
use crate::recommend::Recommendations;
use crate::report::{self, Convergence, PlotFormat};
use crate::spec::Spec;
use crate::storage::{self, Storage};
use crate::study::{RunOptions, StopReason, Study};
use crate::trial::Trial;

pub mod confirm;
pub mod evaluate;
pub mod forecast;
pub mod serve;
pub mod telemetry;
pub mod worker;

const EXIT_CODES: &str = "\
Exit codes:
  0    success (for `run`: the budget, time, target or patience stopped the run)
  1    runtime failure: evaluator fatal error, storage or I/O error
  2    invalid spec, protocol message or arguments (every problem is listed)
  3    the study is held by another running knobs process
  4    the run stopped because too many trials failed in a row
  130  interrupted by Ctrl-C / SIGTERM; finished trials are stored, run again with --resume";

#[derive(Parser, Debug)]
#[command(
    name = "knobs",
    version,
    about = "Tune the knobs of real systems: declare a parameter space, search it, get ranked configurations.",
    long_about = "Tune the knobs of real systems.\n\n\
        Declare the parameters (pool sizes, TTLs, thresholds, ...) with today's values as defaults in a YAML spec, \
        say how to measure a configuration (a command that prints JSON metrics, or a test function), and knobs \
        searches the space, stores every trial, and prints ranked recommendations with their improvement over \
        today's values.\n\n\
        Quick start:\n  knobs run configs/quickstart.yaml\n  knobs recommend quickstart\n\n\
        Scheduled tuning (cron):\n  knobs run tune.yaml --resume --add-trials 50 --json",
    after_help = EXIT_CODES
)]
/// The `knobs` command line: a subcommand plus the global `-v`/`-q` logging flags; [`main`] parses
/// and runs it.
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v: debug, -vv: trace). Logs go to stderr; KNOBS_LOG=<filter> overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Search a spec's space, store every trial, print ranked recommendations.
    #[command(after_help = EXIT_CODES)]
    Run(RunArgs),
    /// Check spec files and report every problem of each, with field paths.
    #[command(after_help = EXIT_CODES)]
    Validate {
        /// Spec files (YAML).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// One JSON object per file on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Reprint the ranked recommendations of a stored study.
    #[command(after_help = EXIT_CODES)]
    Recommend {
        /// A study name, or the spec file it was run from.
        study: String,
        #[command(flatten)]
        store: StoreArgs,
        /// How many configurations to list (default: the spec's recommend.top, else 5).
        #[arg(long)]
        top: Option<usize>,
        /// List configurations that make choices the spec marks `risky` too.
        #[arg(long)]
        allow_risky: bool,
        /// Directory for the plots (default: the spec's `output`, else ./knobs-out; a study named without
        /// its spec file resolves a relative `output` against the current directory).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        plots: PlotArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Re-measure a stored study's best distinct candidates beside the baseline, round by round
    /// (baseline, A, B, … side by side, so that drift in the system hits them alike), until the
    /// ranking of the top is settled; then print the recommendations with the improvement each
    /// confirmed. A run does this by itself when its evaluator is not deterministic (the spec's
    /// `confirm`); this is for a study that was not, or that needs more.
    ///
    /// Examples:
    ///   knobs confirm configs/sqlite-inserts.yaml
    ///   knobs confirm my-study --storage tuning.db --top 2 --repeats 8
    #[command(after_help = EXIT_CODES, verbatim_doc_comment)]
    Confirm(confirm::ConfirmArgs),
    /// Forecast a recorded series (`knobs forecast series.csv --horizon 1d`), or backtest the models
    /// (`knobs forecast backtest a.csv b.csv`).
    ///
    /// Models: MSTL decomposition with an AutoETS trend (augurs), and the seasonal naive baseline.
    /// Seasonal periods are detected by a periodogram unless `--period` is given. The forecast is
    /// printed as a table (or `--json`) and plotted to knobs-out/forecast-<series>.svg.
    #[command(after_help = EXIT_CODES)]
    Forecast(forecast::ForecastCmd),
    /// Read recordings and report what preparing them did: the step each series was resampled to,
    /// gaps filled, outliers (rolling median and MAD) and changepoints (sustained level shifts, augurs'
    /// Bayesian online changepoint detection) flagged, bad rows. Plots each series with its flags to
    /// knobs-out/telemetry-<series>.svg.
    #[command(after_help = EXIT_CODES)]
    Telemetry(telemetry::TelemetryArgs),
    /// Join a shared study and run ask → evaluate → tell until its budget is used: any number of
    /// workers on any number of machines share one study through PostgreSQL (or, on one machine, a
    /// SQLite file). Running trials are heartbeaten; a trial whose worker stopped heartbeating for
    /// --grace is retried once by another worker, and the stale worker's late result is refused.
    #[command(after_help = EXIT_CODES)]
    Worker(worker::WorkerArgs),
    /// Score configurations with a spec's evaluator, without a study: the baseline, the
    /// recommendations of a run (`--config knobs-out/NAME/recommendations.yaml`), or a what-if
    /// (`--set pool_size=12`). Prints one column per configuration: parameters, objective,
    /// feasibility and every metric.
    #[command(after_help = EXIT_CODES)]
    Evaluate(evaluate::EvaluateArgs),
    /// Serve the HTTP ask/tell API (JSON under /v1; OpenAPI at /v1/openapi.json): studies created over
    /// the API (without an evaluator: the clients evaluate), batch asks with idempotency keys, tells,
    /// heartbeats, enqueued configurations, recommendations, /metrics. Every route but /healthz needs a
    /// bearer token (KNOBS_TOKEN or --token-file).
    #[command(after_help = EXIT_CODES)]
    Serve(serve::ServeArgs),
    /// List the studies in a storage file with their trial counts.
    Studies {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// List the optimizers a spec can name.
    Optimizers {
        #[arg(long)]
        json: bool,
    },
    /// Serve one optimizer over stdin/stdout: the JSON-lines ask/tell protocol (version 1).
    ///
    /// Messages, one JSON object per line: init (space, budget, seed), ask (n), tell (results),
    /// close. Any program in any language can drive knobs this way; the peer benchmark harness
    /// does.
    ///
    /// Parameters with a "default" make those values the baseline, measured first. With a
    /// budget, the last quarter of it confirms: the best candidates and the baseline are
    /// measured again side by side ("confirm": false in init turns it off; "deterministic":
    /// true says the values are exact). {"op":"close","recommend":true} returns what knobs
    /// recommends, with its interval and its improvement over the baseline.
    ///
    /// Example:
    ///   printf '%s\n' \
    ///     '{"op":"init","budget":20,"space":{"params":[{"name":"x","type":"float","low":0,"high":1}]}}' \
    ///     '{"op":"ask","n":4}' '{"op":"close"}' | knobs stdio --optimizer bayes
    #[command(verbatim_doc_comment)]
    Stdio {
        /// Registry name of the optimizer (see `knobs optimizers`).
        #[arg(long, default_value = "auto")]
        optimizer: String,
        /// Optimizer option as key=value (value parsed as JSON when it can be); repeatable.
        #[arg(long = "option", value_name = "KEY=VALUE")]
        options: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct StoreArgs {
    /// Storage: a SQLite file path (default ./knobs.db, or the spec's `storage`), `memory:`, or a PostgreSQL URL
    /// (`postgres://user@host:5432/db`, `?schema=NAME` to keep knobs' tables apart) shared by many workers.
    #[arg(long)]
    storage: Option<String>,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// Write the plots (convergence and importance; for a Pareto study the front and the
    /// hypervolume) as .svg or .png to the output directory, beside the recommendations;
    /// `none` writes none.
    #[arg(long, value_enum, default_value_t = Plots::Svg)]
    plots: Plots,
}

/// The `--plots` choice: `svg` or `png` writes the plots in that format, `none` writes none.
///
/// The variants are described here rather than one by one: a doc comment on a variant would
/// become its help text and change the list of values in `--help`.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Plots {
    Svg,
    Png,
    None,
}

impl Plots {
    /// The plot file format chosen, or `None` when no plot is to be written.
    pub fn format(self) -> Option<PlotFormat> {
        match self {
            Plots::Svg => Some(PlotFormat::Svg),
            Plots::Png => Some(PlotFormat::Png),
            Plots::None => None,
        }
    }
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The experiment spec (YAML).
    spec: PathBuf,
    /// Continue the stored study (re-running trials an interrupted run left unfinished).
    #[arg(long)]
    resume: bool,
    /// Total trials for the study (overrides budget.trials).
    #[arg(long, conflicts_with = "add_trials")]
    trials: Option<u64>,
    /// Run this many trials beyond those already stored (for scheduled runs).
    #[arg(long)]
    add_trials: Option<u64>,
    /// Seed a new study from an earlier one in the same storage (re-tuning after the workload
    /// changed): its best configurations are evaluated first, right after the baseline, and the
    /// search goes on from there. Ignored once the study has trials, so a cron line may keep it.
    #[arg(long, value_name = "STUDY")]
    warm_start: Option<String>,
    /// How many of the earlier study's best configurations --warm-start re-evaluates.
    #[arg(long, default_value_t = 5, requires = "warm_start")]
    warm_start_top: usize,
    #[command(flatten)]
    store: StoreArgs,
    /// How many configurations to recommend (default: the spec's recommend.top, else 5).
    #[arg(long)]
    top: Option<usize>,
    #[command(flatten)]
    report: ReportArgs,
}

/// Where a command that runs trials writes its recommendations, and how it reports.
#[derive(Args, Debug)]
struct ReportArgs {
    /// Directory for recommendations.{yaml,json} (default: the spec's `output`, else ./knobs-out).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    plots: PlotArgs,
    /// Print one JSON object (what ran + the recommendations) on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// No progress bar even on a terminal.
    #[arg(long)]
    no_progress: bool,
}

impl ReportArgs {
    /// Whether to draw a progress bar.
    fn progress(&self, quiet: bool) -> bool {
        !self.no_progress && !self.json && !quiet
    }

    fn outputs(&self, top: Option<usize>) -> Outputs<'_> {
        Outputs { out: self.out.as_deref(), top, plots: self.plots.plots, json: self.json }
    }
}

impl Command {
    /// Whether the command was asked for JSON on stdout (then its errors are JSON too).
    fn wants_json(&self) -> bool {
        match self {
            Command::Run(a) => a.report.json,
            Command::Confirm(a) => a.report.json,
            Command::Validate { json, .. }
            | Command::Recommend { json, .. }
            | Command::Studies { json, .. }
            | Command::Optimizers { json } => *json,
            Command::Forecast(f) => match &f.backtest {
                Some(forecast::ForecastSub::Backtest(b)) => b.json,
                None => f.args.json,
            },
            Command::Evaluate(a) => a.json,
            Command::Telemetry(a) => a.json,
            Command::Worker(a) => a.json,
            Command::Serve(_) | Command::Stdio { .. } => false,
        }
    }
}

/// The JSON object a `--json` command prints on stdout when it fails: what went wrong, every
/// problem with its field path when the input was bad, and the exit code.
fn error_json(e: &Error, code: i32) -> serde_json::Value {
    let mut v = serde_json::json!({"ok": false, "error": e.to_string(), "exit_code": code});
    if let Error::Invalid(p) = e {
        v["source"] = p.source.clone().into();
        v["problems"] = serde_json::to_value(&p.items).unwrap_or_default();
    }
    v
}

/// Exit code for an error.
fn code(e: &Error) -> i32 {
    match e.kind() {
        ErrorKind::BadInput => 2,
        ErrorKind::Locked => 3,
        ErrorKind::Refused | ErrorKind::NotFound | ErrorKind::Unavailable | ErrorKind::Internal => 1,
    }
}

fn init_logging(cli: &Cli) {
    let default = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = std::env::var("KNOBS_LOG").unwrap_or_else(|_| format!("knobs={default},warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Parse the command line, run, return the exit code.
pub fn main() -> i32 {
    // Die quietly on a closed pipe (`knobs studies | head`) like other Unix tools.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logging(&cli);
    let json = cli.command.wants_json();
    let result = match cli.command {
        Command::Run(args) => run(args, cli.quiet),
        Command::Validate { specs, json } => validate(&specs, json),
        Command::Recommend { study, store, top, allow_risky, out, plots, json } => {
            recommend_cmd(&study, store, top, allow_risky, out.as_deref(), plots.plots, json)
        }
        Command::Confirm(args) => confirm::confirm_cmd(args, cli.quiet),
        Command::Forecast(f) => match f.backtest {
            Some(forecast::ForecastSub::Backtest(b)) => forecast::backtest_cmd(b),
            None => forecast::forecast_cmd(f.args),
        },
        Command::Evaluate(args) => evaluate::evaluate_cmd(args),
        Command::Telemetry(args) => telemetry::telemetry_cmd(args),
        Command::Worker(args) => {
            let flag = Arc::new(AtomicBool::new(false));
            install_signal_handlers(flag.clone());
            worker::worker_cmd(args, flag)
        }
        Command::Serve(args) => serve::serve_cmd(args),
        Command::Studies { store, json } => studies(store, json),
        Command::Optimizers { json } => optimizers(json),
        Command::Stdio { optimizer, options } => crate::stdio::serve(&optimizer, &options),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let code = code(&e);
            if json {
                println!("{}", error_json(&e, code));
            }
            code
        }
    }
}

fn open_storage(cli: Option<&str>, spec: Option<&Spec>) -> crate::Result<Arc<dyn Storage>> {
    // The command line wins; a path in the spec is relative to the spec's directory.
    let location = match (cli, spec) {
        (Some(c), _) => c.to_string(),
        (None, Some(sp)) => match sp.storage.as_deref() {
            Some(s) if s.starts_with("memory:") => s.to_string(),
            Some(s) => sp.resolve(s.trim_start_matches("sqlite:")).display().to_string(),
            None => "knobs.db".to_string(),
        },
        (None, None) => "knobs.db".to_string(),
    };
    Ok(Arc::from(storage::open(&location)?))
}

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    if INTERRUPTS.fetch_add(1, Ordering::SeqCst) >= 1 {
        // Second signal: stop now. Unfinished trials are re-run on --resume.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
            libc::raise(sig);
        }
    }
}

/// First Ctrl-C/SIGTERM: finish the trials in flight, then stop; second: exit at once.
fn install_signal_handlers(flag: Arc<AtomicBool>) {
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    std::thread::spawn(move || {
        loop {
            if INTERRUPTS.load(Ordering::SeqCst) > 0 {
                flag.store(true, Ordering::SeqCst);
                eprintln!(
                    "\nstopping after the trials in flight; press Ctrl-C again to quit now (they re-run on --resume)"
                );
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
}

fn output_dir(args_out: Option<&Path>, spec: &Spec) -> PathBuf {
    match (args_out, &spec.output) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(o)) => spec.resolve(o),
        (None, None) => PathBuf::from("knobs-out"),
    }
    .join(&spec.name)
}

/// Create `dir` if needed and check that files can be written in it.
fn writable_dir(dir: &Path) -> crate::Result<()> {
    let fail = |e: std::io::Error| {
        Error::Config(format!(
            "output folder {} cannot be written ({e}); give another with --out (or the spec's `output`)",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".knobs-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(fail)?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

fn write_outputs(dir: &Path, recs: &Recommendations) -> crate::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let yaml_path = dir.join("recommendations.yaml");
    let json_path = dir.join("recommendations.json");
    let yaml = serde_yaml::to_string(recs).map_err(|e| Error::Config(format!("cannot write YAML: {e}")))?;
    std::fs::write(&yaml_path, yaml).map_err(|e| Error::io(yaml_path.display().to_string(), e))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(recs).map_err(Error::json)?)
        .map_err(|e| Error::io(json_path.display().to_string(), e))?;
    Ok((yaml_path, json_path))
}

/// Write the plots of a study into `dir` (created if missing); returns what
/// was written, by name. A plot that cannot be drawn yet (no complete trial)
/// is skipped with a warning saying why.
fn write_plots(
    dir: &Path,
    spec: &Spec,
    trials: &[crate::trial::Trial],
    recs: &Recommendations,
    plots: Plots,
) -> crate::Result<Vec<(&'static str, PathBuf)>> {
    let Some(format) = plots.format() else { return Ok(Vec::new()) };
    if let Some(front) = &recs.pareto {
        return write_front_plots(dir, spec, trials, recs, front, format);
    }
    let convergence = Convergence::from_trials(&spec.objectives, trials);
    if convergence.is_empty() {
        tracing::warn!(study = %spec.name, "no convergence plot: the study has no complete trial yet");
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let path = dir.join(format!("convergence.{}", format.extension()));
    let title = format!("{}: {}", spec.name, spec.objectives.describe());
    report::convergence_plot(&path, &title, &convergence)?;
    let mut written = vec![("convergence", path)];
    if !recs.importance.is_empty() {
        let path = dir.join(format!("importance.{}", format.extension()));
        let imps: Vec<(String, f64)> = recs.importance.iter().map(|i| (i.param.clone(), i.importance)).collect();
        report::importance_plot(&path, &format!("{}: parameter importance (GP main effects)", spec.name), &imps)?;
        written.push(("importance", path));
    }
    Ok(written)
}

/// A Pareto study's plots: the front and the hypervolume against trials.
fn write_front_plots(
    dir: &Path,
    spec: &Spec,
    trials: &[crate::trial::Trial],
    recs: &Recommendations,
    front: &crate::recommend::pareto::ParetoFront,
    format: PlotFormat,
) -> crate::Result<Vec<(&'static str, PathBuf)>> {
    if front.pareto_front.is_empty() {
        tracing::warn!(study = %spec.name, "no front plot: the study has no feasible complete trial yet");
        return Ok(Vec::new());
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let objectives = &spec.objectives;
    let baseline = recs.baseline.as_ref().filter(|b| b.feasible).and_then(|b| {
        objectives.objectives.iter().map(|o| b.metrics.get(&o.metric).copied()).collect::<Option<Vec<f64>>>()
    });
    let data = report::FrontData::new(objectives, trials, front, baseline);
    let path = dir.join(format!("front.{}", format.extension()));
    report::front_plot(&path, &format!("{}: {}", spec.name, objectives.describe()), &data)?;
    let mut written = vec![("front", path)];
    let reference: Vec<f64> =
        objectives.objectives.iter().zip(&front.reference_point).map(|(o, r)| o.signed(*r)).collect();
    let history = report::hypervolume_history(objectives, trials, &reference);
    if history.len() >= 2 {
        let path = dir.join(format!("hypervolume.{}", format.extension()));
        let reference: Vec<String> = front.reference_point.iter().map(|v| crate::format::fmt_num(*v)).collect();
        let title = format!("{}: hypervolume up to ({})", spec.name, reference.join(", "));
        report::hypervolume_plot(&path, &title, &history)?;
        written.push(("hypervolume", path));
    }
    Ok(written)
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn run(args: RunArgs, quiet: bool) -> crate::Result<i32> {
    let spec = Spec::load(&args.spec)?;
    // Before the first trial: an output folder that cannot be written is found now, not
    // after the whole search.
    writable_dir(&output_dir(args.report.out.as_deref(), &spec))?;
    let storage = open_storage(args.store.storage.as_deref(), Some(&spec))?;
    let mut study = Study::open(spec.clone(), storage, args.resume)?;
    if let Some(from) = &args.warm_start {
        if study.trials().is_empty() {
            let n = study.warm_start(from, args.warm_start_top)?;
            tracing::info!(from = %from, configurations = n, "warm start: evaluating the earlier study's best first");
        } else {
            tracing::info!(from = %from, "study already has trials; --warm-start only seeds a new study and is ignored");
        }
    }
    install_signal_handlers(study.stop_flag());
    let opts = RunOptions { trials: args.trials, add_trials: args.add_trials, progress: args.report.progress(quiet) };
    let report = study.run(&opts)?;
    let mut said = report.stop.describe();
    if let Some(c) = &report.confirmation {
        said.push_str(&format!("; {} trials confirmed the best beside the baseline ({})", c.trials, c.stop.describe()));
    }
    let out = args.report.outputs(args.top);
    let summary = format!("{} new trials in {:.1}s ({said})", report.new_trials, report.elapsed_s);
    emit(&spec, study.trials(), &out, ("run", serde_json::to_value(&report).map_err(Error::json)?), &summary)?;
    Ok(match report.stop {
        StopReason::Failures { .. } => 4,
        StopReason::Interrupted => 130,
        _ => 0,
    })
}

/// Where and how a command that ran trials reports its recommendations.
struct Outputs<'a> {
    out: Option<&'a Path>,
    top: Option<usize>,
    plots: Plots,
    json: bool,
}

/// Rank `trials`, write recommendations.{yaml,json} and the plots, and print the table with
/// `summary` (or, with `--json`, one object with `report` under its key and the files).
fn emit(
    spec: &Spec,
    trials: &[Trial],
    o: &Outputs<'_>,
    report: (&str, serde_json::Value),
    summary: &str,
) -> crate::Result<()> {
    let recs = crate::study::recommendations(spec, trials, o.top.unwrap_or(spec.top_k), false);
    let dir = output_dir(o.out, spec);
    let (yaml_path, json_path) = write_outputs(&dir, &recs)?;
    let plots = write_plots(&dir, spec, trials, &recs, o.plots)?;
    if o.json {
        let mut v = serde_json::to_value(&recs).map_err(Error::json)?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert(report.0.into(), report.1);
            let mut files =
                serde_json::json!({"yaml": yaml_path.display().to_string(), "json": json_path.display().to_string()});
            for (name, path) in &plots {
                files[*name] = path.display().to_string().into();
            }
            m.insert("files".into(), files);
        }
        println!("{}", serde_json::to_string(&v).map_err(Error::json)?);
    } else {
        print!("{}", recs.table(&spec.space));
        let written: Vec<String> = [&yaml_path, &json_path]
            .into_iter()
            .chain(plots.iter().map(|(_, p)| p))
            .map(|p| p.display().to_string())
            .collect();
        println!("{summary}; written to {}", and_list(&written));
    }
    Ok(())
}

fn validate(specs: &[PathBuf], json: bool) -> crate::Result<i32> {
    let mut bad = 0;
    for path in specs {
        // What can be checked without running anything: the command's program too.
        let checked = Spec::load(path).and_then(|spec| match spec.evaluator.check_runnable(&spec.base_dir) {
            Some(p) => {
                Err(Error::Invalid(crate::error::Problems { source: path.display().to_string(), items: vec![p] }))
            }
            None => Ok(spec),
        });
        match checked {
            Ok(spec) => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "ok": true, "study": spec.name})
                    );
                } else {
                    println!(
                        "ok: {} (study `{}`: {} parameters, optimizer {}, {} trials)",
                        path.display(),
                        spec.name,
                        spec.space.dim(),
                        spec.optimizer.name,
                        spec.budget.trials
                    );
                }
            }
            Err(e) => {
                bad += 1;
                if json {
                    let problems = match &e {
                        Error::Invalid(p) => serde_json::to_value(&p.items).map_err(Error::json)?,
                        other => serde_json::json!([{"path": "(file)", "message": other.to_string()}]),
                    };
                    println!(
                        "{}",
                        serde_json::json!({"file": path.display().to_string(), "ok": false, "problems": problems})
                    );
                } else {
                    println!("{e}");
                }
            }
        }
    }
    Ok(if bad > 0 { 2 } else { 0 })
}

/// A stored study named on the command line (by name, or by the spec file it was run from)
/// with its spec (the file's, else the stored one) and its storage.
fn stored_study(study: &str, store: &StoreArgs) -> crate::Result<(Spec, Arc<dyn Storage>)> {
    let as_file = Path::new(study);
    let from_file = (study.ends_with(".yaml") || study.ends_with(".yml")) && as_file.is_file();
    let file_spec = if from_file { Some(Spec::load(as_file)?) } else { None };
    let storage = open_storage(store.storage.as_deref(), file_spec.as_ref())?;
    let name = file_spec.as_ref().map(|s| s.name.clone()).unwrap_or_else(|| study.to_string());
    let Some(record) = storage.find_study(&name)? else {
        let known: Vec<String> = storage.list_studies()?.into_iter().map(|s| s.name).collect();
        return Err(Error::NotFound(format!(
            "no study `{name}` in this storage; studies here: {}",
            if known.is_empty() { "none".to_string() } else { known.join(", ") }
        )));
    };
    let spec: Spec = match file_spec {
        Some(s) => s,
        None => crate::study::read_spec(&record, std::env::current_dir().map_err(|e| Error::io(".", e))?)?,
    };
    Ok((spec, storage))
}

fn recommend_cmd(
    study: &str,
    store: StoreArgs,
    top: Option<usize>,
    allow_risky: bool,
    out: Option<&Path>,
    plots: Plots,
    json: bool,
) -> crate::Result<i32> {
    let (spec, storage) = stored_study(study, &store)?;
    let name = spec.name.clone();
    let trials = storage.trials(&name)?;
    let recs = crate::study::recommendations(&spec, &trials, top.unwrap_or(spec.top_k), allow_risky);
    let plots = write_plots(&output_dir(out, &spec), &spec, &trials, &recs, plots)?;
    if json {
        let mut v = serde_json::to_value(&recs).map_err(Error::json)?;
        if let serde_json::Value::Object(m) = &mut v {
            let files: serde_json::Map<String, serde_json::Value> =
                plots.iter().map(|(name, path)| (name.to_string(), path.display().to_string().into())).collect();
            m.insert("files".into(), files.into());
        }
        println!("{}", serde_json::to_string(&v).map_err(Error::json)?);
    } else {
        print!("{}", recs.table(&spec.space));
        if !plots.is_empty() {
            let written: Vec<String> = plots.iter().map(|(_, p)| p.display().to_string()).collect();
            println!("written to {}", and_list(&written));
        }
    }
    Ok(0)
}

fn studies(store: StoreArgs, json: bool) -> crate::Result<i32> {
    let storage = open_storage(store.storage.as_deref(), None)?;
    let list = storage.list_studies()?;
    if json {
        println!("{}", serde_json::to_string(&list).map_err(Error::json)?);
    } else if list.is_empty() {
        println!("no studies yet; start one with `knobs run <spec.yaml>`");
    } else {
        println!("{:<30} {:>7} {:>9} {:>7} {:>8}  created", "study", "trials", "complete", "failed", "running");
        for s in list {
            println!(
                "{:<30} {:>7} {:>9} {:>7} {:>8}  {}",
                s.name, s.trials, s.complete, s.failed, s.running, s.created_at
            );
        }
    }
    Ok(0)
}

fn optimizers(json: bool) -> crate::Result<i32> {
    let list = crate::optim::registry::summaries();
    if json {
        let v: Vec<_> = list.iter().map(|(n, s)| serde_json::json!({"name": n, "summary": s})).collect();
        println!("{}", serde_json::to_string(&v).map_err(Error::json)?);
    } else {
        for (n, s) in list {
            println!("{n:<10} {s}");
        }
    }
    Ok(0)
}
