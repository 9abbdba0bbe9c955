//! `knobs confirm`: re-measure a stored study's best candidates beside the
//! baseline (the confirmation phase a run ends with; see `crate::study`).

use clap::Args;

use super::{ReportArgs, StoreArgs, emit, install_signal_handlers, stored_study};
use crate::error::Error;
use crate::study::{ConfirmStop, Study};

/// `knobs confirm` arguments.
#[derive(Args, Debug)]
pub struct ConfirmArgs {
    /// A study name, or the spec file it was run from.
    study: String,
    #[command(flatten)]
    store: StoreArgs,
    /// At most this many trials (default: (top + 1) × repeats, every round in full).
    #[arg(long)]
    trials: Option<u64>,
    /// How many distinct candidates to re-measure beside the baseline (default: the spec's
    /// confirm.top, else 3).
    #[arg(long)]
    top: Option<usize>,
    /// At most this many confirmation measurements of each (default: the spec's
    /// confirm.repeats, else 5).
    #[arg(long)]
    repeats: Option<usize>,
    #[command(flatten)]
    pub(super) report: ReportArgs,
}

/// Run `knobs confirm`.
pub fn confirm_cmd(args: ConfirmArgs, quiet: bool) -> crate::Result<i32> {
    let (mut spec, storage) = stored_study(&args.study, &args.store)?;
    if let Some(top) = args.top {
        if !(1..=20).contains(&top) {
            return Err(Error::invalid("--top", "--top", format!("must be 1 to 20 (got {top})")));
        }
        spec.confirm.top = top;
    }
    if let Some(repeats) = args.repeats {
        if !(2..=100).contains(&repeats) {
            return Err(Error::invalid("--repeats", "--repeats", format!("must be 2 to 100 (got {repeats})")));
        }
        spec.confirm.repeats = repeats;
    }
    let trials = args.trials.unwrap_or(((spec.confirm.top + 1) * spec.confirm.repeats) as u64);
    super::writable_dir(&super::output_dir(args.report.out.as_deref(), &spec))?;
    let mut study = Study::open(spec.clone(), storage, true)?;
    install_signal_handlers(study.stop_flag());
    let started = std::time::Instant::now();
    let report = study.confirm(trials, args.report.progress(quiet))?;
    let out = args.report.outputs(None);
    let summary = format!(
        "{} confirmation rounds, {} trials in {:.1}s ({})",
        report.rounds,
        report.trials,
        started.elapsed().as_secs_f64(),
        report.stop.describe()
    );
    emit(&spec, study.trials(), &out, ("confirmation", serde_json::to_value(&report).map_err(Error::json)?), &summary)?;
    Ok(match report.stop {
        ConfirmStop::Failing => 4,
        ConfirmStop::Interrupted => 130,
        _ => 0,
    })
}
