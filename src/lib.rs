//! knobs: an autonomous parameter-optimization engine.
//!
//! Declare a parameter [`Space`] (today's values as the baseline), say how
//! to measure a configuration (an [`Evaluator`], or your own code through a
//! [`Session`]), and search it with an [`Optimizer`]; every trial of a
//! [`Study`] is kept in a [`Storage`] and [`recommend()`] ranks what was found
//! against the baseline.
//!
//! Tune a closure:
//!
//! ```
//! use knobs::{Session, SessionOptions, Space, Value};
//!
//! let space = Space::builder().float("x", -5.0, 5.0).int("workers", 1, 64).build()?;
//! let mut session = Session::new(space, "auto", SessionOptions { budget: Some(40), ..Default::default() })?;
//! for _ in 0..40 {
//!     for s in session.ask(1)? {
//!         let (Value::Float(x), Value::Int(w)) = (&s.params["x"], &s.params["workers"]) else { unreachable!() };
//!         session.tell(s.id, Some((x - 1.0).powi(2) + (*w as f64 - 12.0).abs() / 10.0))?;
//!     }
//! }
//! let (best, params) = session.best().expect("a result was told");
//! assert!(best < 2.0, "{best} at {params:?}");
//! # Ok::<(), knobs::Error>(())
//! ```
//!
//! Data flows one way: a spec (YAML) is checked into a [`Spec`]; a
//! [`Study`] asks the optimizer for points in the unit cube, decodes them
//! into configurations, evaluates them (in parallel), stores every trial,
//! and tells the results back.
//!
//! Features (all on by default): `cli` (the `knobs` binary), `server` (the
//! HTTP API), `postgres` (PostgreSQL storage), `plots` (SVG/PNG reports),
//! `forecast` (telemetry, forecasts and the workload models fed by them).
//! With `default-features = false` the library is spaces, optimizers, the
//! Gaussian process, the function and command evaluators, studies, sessions
//! and SQLite storage.

#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod cube;
pub mod error;
pub mod eval;
#[cfg(feature = "forecast")]
pub mod forecast;
pub mod format;
pub mod objective;
pub mod optim;
pub mod pareto;
pub mod recommend;
#[cfg(feature = "plots")]
pub mod report;
pub mod rng;
#[cfg(feature = "server")]
pub mod server;
pub mod space;
pub mod spec;
pub mod stats;
pub mod stdio;
pub mod storage;
pub mod study;
pub mod surrogate;
#[cfg(feature = "forecast")]
pub mod telemetry;
pub mod trial;
pub(crate) mod yaml;

pub use error::{Error, ErrorKind, Problem, Problems, Result};
pub use eval::{EvalContext, EvalError, Evaluator, EvaluatorSpec, Measurement};
#[cfg(feature = "forecast")]
pub use forecast::Forecaster;
pub use objective::{Direction, Objectives};
pub use optim::{Optimizer, OptimizerSpec};
pub use recommend::{Recommendations, recommend};
pub use space::{Config, Space, SpaceBuilder, Value};
pub use spec::{Spec, SpecFile};
pub use storage::{MemoryStorage, SqliteStorage, Storage};
pub use study::{RunOptions, RunReport, Session, SessionOptions, SharedStudy, StopReason, Study, Suggestion};
pub use trial::{Trial, TrialState};
