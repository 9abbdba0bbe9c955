//! The one engine every face drives: the CLI's `run`, `worker` and
//! `evaluate`, the HTTP server, `knobs stdio` and Rust programs.
//!
//! - [`Study`] (`run.rs`): one process holds a study and runs the batch
//!   ask → evaluate → tell loop until a stop condition holds;
//! - [`SharedStudy`] (`shared.rs`): many workers and the API claim trials
//!   from one study, tell their results and heartbeat their leases;
//! - [`run_worker`] (`worker.rs`): the loop a `knobs worker` runs on a shared study;
//! - [`Session`] (`session.rs`): ask and tell by parameter name, in memory,
//!   for a program that evaluates configurations itself;
//! - `evaluation.rs`: the one evaluation path (threads, retries, panics
//!   caught, results judged) all of them use;
//! - `stored.rs`: a study's spec as storage keeps it, read and checked in one place;
//! - `confirm.rs`: the confirmation phase a run ends with;
//! - [`recommendations`]: a study's ranking as its spec asks for it.

mod asking;
mod confirm;
mod evaluation;
mod progress;
mod run;
mod session;
mod shared;
mod stored;
mod worker;

pub use confirm::{ConfirmReport, ConfirmStop, Next, Plan, next_round};
pub use evaluation::{Evaluations, Judged, evaluate};
pub(crate) use run::observed;
pub use run::{RunOptions, RunReport, StopReason, Study};
pub use session::{Session, SessionOptions, Suggestion};
pub use shared::{Claimed, Leases, Report, SharedStudy};
pub use stored::read_spec;
pub use worker::{WorkerOptions, WorkerReport, WorkerStop, run_worker};

/// The top `top` recommendations of a study run from `spec`, with risky configurations
/// recommended when the spec's `recommend.allow_risky` or `allow_risky` says so.
pub fn recommendations(
    spec: &crate::spec::Spec,
    trials: &[crate::trial::Trial],
    top: usize,
    allow_risky: bool,
) -> crate::recommend::Recommendations {
    let mut r = crate::recommend::Recommender::new(&spec.space, &spec.objectives)
        .allow_risky(spec.allow_risky || allow_risky)
        .deterministic(spec.evaluator.deterministic());
    for t in trials {
        r.add(t);
    }
    r.finish(&spec.name, top)
}
