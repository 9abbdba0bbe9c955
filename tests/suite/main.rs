//! knobs' integration tests, linked once into one binary:
//! `cargo test --test suite` runs them all, `cargo test --test suite storage::`
//! one part. Each module says what it holds.

mod cli;
mod cli_refusals;
mod confirm;
mod eval_cache;
mod eval_command;
mod eval_functions;
mod eval_gc;
mod eval_pool;
mod eval_workload;
mod forecast;
mod gradient;
mod optimizers;
mod orphans;
mod pareto;
mod pg;
mod pgbench;
mod recommend;
mod server;
mod shared;
mod storage;
mod storage_postgres_claim;
mod study;
mod telemetry;
mod trajectories;
