//! Tune a closure with knobs as a library: declare the space, then ask for
//! configurations and tell what each measured. `cargo run --example ask_tell`
//! (it needs none of the optional features).

use knobs::{Session, SessionOptions, Space, Value};

/// A stand-in for a real measurement: the latency of a service with a
/// connection pool and a cache TTL (best near pool 24, TTL 300 s, lfu).
fn latency_ms(pool: i64, ttl_s: f64, eviction: &str) -> f64 {
    let queueing = 400.0 / pool as f64 + 0.4 * pool as f64;
    let misses = 20.0 * (ttl_s.ln() - 300f64.ln()).powi(2);
    queueing + misses + if eviction == "lfu" { 0.0 } else { 3.0 }
}

fn main() -> knobs::Result<()> {
    let space = Space::builder()
        .int("pool", 1, 128)
        .default(64)
        .float("ttl_s", 1.0, 86_400.0)
        .log()
        .default(3600.0)
        .categorical("eviction", ["lru", "lfu"])
        .default("lru")
        .build()?;
    let mut session = Session::new(space, "auto", SessionOptions { budget: Some(60), seed: 7, ..Default::default() })?;
    for _ in 0..60 {
        for s in session.ask(1)? {
            let (Value::Int(pool), Value::Float(ttl), Value::Str(ev)) =
                (&s.params["pool"], &s.params["ttl_s"], &s.params["eviction"])
            else {
                unreachable!()
            };
            session.tell(s.id, Some(latency_ms(*pool, *ttl, ev)))?;
        }
    }
    let (best, params) = session.best().expect("60 results were told");
    let today = latency_ms(64, 3600.0, "lru");
    let settings: Vec<String> = params.iter().map(|(name, value)| format!("{name}={value}")).collect();
    println!("today: {today:.2} ms; best found: {best:.2} ms with {}", settings.join(" "));
    assert!(best < today, "the search must beat today's settings");
    Ok(())
}
