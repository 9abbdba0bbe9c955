//! `knobs stdio`: one optimizer behind the JSON-lines ask/tell protocol
//! (version 1 of the peer benchmark harness), on stdin/stdout.
//!
//! ```text
//! → {"op":"init","protocol":1,"budget":100,"seed":3,"direction":"minimize","space":{"params":[...]}}
//!   (knobs' extensions: a parameter's "default" makes the defaults the baseline, measured
//!   first; "confirm": false|true|{when,top,repeats,budget_share} as in a spec, default auto;
//!   "deterministic": true when the values are exact)
//! ← {"ok":true,"name":"knobs-cmaes","version":"0.1.0"}
//! → {"op":"ask","n":8}
//! ← {"ok":true,"trials":[{"id":0,"params":{"x0":0.25,...}}, ...]}
//! → {"op":"tell","results":[{"id":0,"value":1.5},{"id":1,"value":null,"status":"failed"}]}
//! ← {"ok":true}
//! → {"op":"close"}                  (or {"op":"close","recommend":true})
//! ← {"ok":true,"best":{"value":1.5,"params":{...}}}
//!   (with "recommend": also "recommended":{"value","params","evaluations","value_interval",
//!   "improvement"}, knobs' choice ranked by a noise-aware estimate rather than the best
//!   single value, "baseline", "better_than_baseline" (false: keep today's values),
//!   "warnings" and "confirmation", why the confirmation phase ended)
//!
//! With a budget, the last quarter of it confirms: the best distinct candidates and the
//! baseline are measured again, one round per ask; a phase that settles early gives the
//! rest of the budget back to the search.
//! ```
//! Exactly one response line per request; a bad request gets
//! `{"ok":false,"error":"..."}` and the session goes on. Logs go to stderr.
//! The search itself is the library's [`Session`]; this file only speaks
//! the protocol.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};
use crate::optim::{self, OptimizerOptions, OptimizerSpec};
use crate::space::Space;
use crate::spec::Confirm;
use crate::study::{Session, SessionOptions};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Request {
    Init {
        protocol: Option<u32>,
        budget: Option<u64>,
        seed: Option<u64>,
        direction: Option<String>,
        space: Json,
        parallelism: Option<usize>,
        /// The confirmation phase, as a spec's `confirm` (default `auto`).
        confirm: Option<Json>,
        /// The measurements are exact: no confirmation under `auto`, no noise assumed.
        #[serde(default)]
        deterministic: bool,
    },
    Ask {
        n: usize,
    },
    Tell {
        results: Vec<Told>,
    },
    Close {
        /// Also say what knobs recommends (ranked by a noise-aware estimate, not the best single
        /// value): `{"recommended": {"params": ..., "value": ...}}`.
        #[serde(default)]
        recommend: bool,
    },
}

#[derive(Deserialize)]
struct Told {
    id: Json,
    value: Option<f64>,
    status: Option<String>,
}

/// One session of the protocol, a line in and a reply out (what `knobs stdio` runs between
/// stdin and stdout; public so that it can be driven, and fuzzed, without a process).
pub struct Protocol {
    spec: OptimizerSpec,
    session: Option<Session>,
}

impl Protocol {
    /// A session of `optimizer` with its `key=value` options (values parse as JSON when they can).
    pub fn new(optimizer: &str, options: &[String]) -> Result<Protocol> {
        let spec = OptimizerSpec { name: optimizer.to_string(), options: OptimizerOptions::parse_pairs(options)? };
        optim::registry::check_name(optimizer).map_err(Error::Config)?;
        Ok(Protocol { spec, session: None })
    }

    /// The reply to one request line, and whether it closed the session. A malformed or
    /// refused request gets `{"ok": false, "error": ...}`, never an `Err`.
    pub fn reply(&mut self, line: &str) -> (Json, bool) {
        match serde_json::from_str::<Request>(line) {
            Ok(req) => {
                let close = matches!(req, Request::Close { .. });
                let reply = handle(req, &self.spec, &mut self.session)
                    .unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()}));
                (reply, close)
            }
            Err(e) => (json!({"ok": false, "error": format!("malformed request: {e}")}), false),
        }
    }
}

/// Serve the protocol until `close` or end of input.
pub fn serve(optimizer: &str, options: &[String]) -> Result<i32> {
    let mut protocol = Protocol::new(optimizer, options)?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = String::new();
    let mut input = stdin.lock();
    loop {
        line.clear();
        if input.read_line(&mut line).map_err(|e| Error::io("stdin", e))? == 0 {
            return Ok(0);
        }
        if line.trim().is_empty() {
            continue;
        }
        let (reply, close) = protocol.reply(&line);
        serde_json::to_writer(&mut out, &reply).map_err(Error::json)?;
        out.write_all(b"\n").map_err(|e| Error::io("stdout", e))?;
        out.flush().map_err(|e| Error::io("stdout", e))?;
        if close {
            return Ok(0);
        }
    }
}

fn handle(req: Request, spec: &OptimizerSpec, session: &mut Option<Session>) -> Result<Json> {
    match req {
        Request::Init { protocol, budget, seed, direction, space, parallelism, confirm, deterministic } => {
            if let Some(p) = protocol.filter(|p| *p != 1) {
                return Err(Error::Config(format!("protocol {p} is not supported; this knobs speaks protocol 1")));
            }
            let maximize = match direction.as_deref() {
                None | Some("minimize") => false,
                Some("maximize") => true,
                Some(d) => return Err(Error::Config(format!("direction `{d}` must be minimize or maximize"))),
            };
            let params = space.get("params").cloned().unwrap_or(space);
            let space = Space::from_json(&params, "space.params", "init")?;
            let options = SessionOptions {
                seed: seed.unwrap_or(0),
                budget,
                parallelism: parallelism.unwrap_or(1).max(1),
                maximize,
                options: spec.options.clone(),
                confirm: match &confirm {
                    Some(c) => Confirm::from_json(c, "confirm", "init")?,
                    None => Confirm::default(),
                },
                deterministic,
            };
            *session = Some(Session::new(space, &spec.name, options)?);
            Ok(json!({"ok": true, "name": format!("knobs-{}", spec.name), "version": env!("CARGO_PKG_VERSION")}))
        }
        Request::Ask { n } => {
            let s = session.as_mut().ok_or_else(|| Error::Config("ask before init".into()))?;
            let trials = s.ask(n)?;
            if trials.is_empty() {
                Ok(json!({"ok": true, "trials": [], "done": true}))
            } else {
                Ok(json!({"ok": true, "trials": trials}))
            }
        }
        Request::Tell { results } => {
            let s = session.as_mut().ok_or_else(|| Error::Config("tell before init".into()))?;
            let mut told = Vec::with_capacity(results.len());
            for r in results {
                let id = r.id.as_u64().ok_or_else(|| Error::Config(format!("tell: id {} was never asked", r.id)))?;
                let failed = r.status.as_deref().is_some_and(|st| st != "ok");
                told.push((id, r.value.filter(|_| !failed)));
            }
            s.tell_many(&told)?;
            Ok(json!({"ok": true}))
        }
        Request::Close { recommend } => {
            let best = session.as_ref().and_then(|s| s.best().map(|(v, c)| json!({"value": v, "params": c})));
            let mut reply = json!({"ok": true, "best": best});
            if recommend && let Some(s) = session.as_ref() {
                let recs = s.recommend(1);
                reply["recommended"] = recs.recommendations.first().map_or(Json::Null, |r| {
                    json!({
                        "value": r.value,
                        "params": r.config,
                        "evaluations": r.evaluations,
                        "value_interval": r.value_interval,
                        "improvement": r.improvement,
                    })
                });
                reply["baseline"] =
                    recs.baseline.as_ref().map_or(Json::Null, |b| json!({"value": b.value, "params": b.config}));
                reply["better_than_baseline"] = json!(recs.better_than_baseline);
                reply["warnings"] = json!(recs.warnings);
                reply["confirmation"] = json!(s.confirmation());
            }
            Ok(reply)
        }
    }
}
