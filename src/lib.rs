//! knobs: an autonomous parameter-optimization engine.
//!
//! Data flows one way: a spec (YAML) is checked into a [`space::Space`],
//! objectives, an optimizer and an evaluator; a [`study::Study`] asks the
//! optimizer for points in the unit cube, decodes them into configurations,
//! evaluates them (in parallel), stores every trial, and tells the results
//! back; [`recommend`] ranks what was found against the baseline.

pub mod cli;
pub mod cube;
pub mod error;
pub mod eval;
pub mod forecast;
pub mod format;
pub mod objective;
pub mod optim;
pub mod recommend;
pub mod report;
pub mod rng;
pub mod server;
pub mod space;
pub mod spec;
pub mod stats;
pub mod storage;
pub mod study;
pub mod surrogate;
pub mod telemetry;
pub mod trial;
pub mod yaml;

pub use error::{Error, Result};
