//! `knobs stdio`: one optimizer behind the JSON-lines ask/tell protocol
//! (version 1 of the peer benchmark harness), on stdin/stdout.
//!
//! ```text
//! → {"op":"init","protocol":1,"budget":100,"seed":3,"direction":"minimize","space":{"params":[...]}}
//! ← {"ok":true,"name":"knobs-cmaes","version":"0.1.0"}
//! → {"op":"ask","n":8}
//! ← {"ok":true,"trials":[{"id":0,"params":{"x0":0.25,...}}, ...]}
//! → {"op":"tell","results":[{"id":0,"value":1.5},{"id":1,"value":null,"status":"failed"}]}
//! ← {"ok":true}
//! → {"op":"close"}
//! ← {"ok":true,"best":{"value":1.5,"params":{...}}}
//! ```
//! Exactly one response line per request; a bad request gets
//! `{"ok":false,"error":"..."}` and the session goes on. Logs go to stderr.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};
use crate::optim::{self, Observed, Optimizer, OptimizerSpec, Problem};
use crate::space::{Config, Space};

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
    },
    Ask {
        n: usize,
    },
    Tell {
        results: Vec<Told>,
    },
    Close {},
}

#[derive(Deserialize)]
struct Told {
    id: Json,
    value: Option<f64>,
    status: Option<String>,
}

struct Session {
    space: Space,
    optimizer: Box<dyn Optimizer>,
    maximize: bool,
    pending: HashMap<u64, Vec<f64>>,
    best: Option<(f64, Config)>,
}

/// Options given as `key=value` on the command line; values parse as JSON when they can.
fn parse_options(options: &[String]) -> Result<serde_json::Map<String, Json>> {
    let mut map = serde_json::Map::new();
    for o in options {
        let Some((k, v)) = o.split_once('=') else {
            return Err(Error::Config(format!("--option `{o}` must be KEY=VALUE")));
        };
        let value = serde_json::from_str(v).unwrap_or_else(|_| Json::String(v.to_string()));
        map.insert(k.trim().to_string(), value);
    }
    Ok(map)
}

/// Serve the protocol until `close` or end of input.
pub fn serve(optimizer: &str, options: &[String]) -> Result<i32> {
    let spec = OptimizerSpec { name: optimizer.to_string(), options: parse_options(options)? };
    optim::registry::check_name(optimizer).map_err(Error::Config)?;
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut session: Option<Session> = None;
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
        let (reply, close) = match serde_json::from_str::<Request>(&line) {
            Ok(req) => {
                let close = matches!(req, Request::Close {});
                (
                    handle(req, &spec, &mut session).unwrap_or_else(|e| json!({"ok": false, "error": e.to_string()})),
                    close,
                )
            }
            Err(e) => (json!({"ok": false, "error": format!("malformed request: {e}")}), false),
        };
        serde_json::to_writer(&mut out, &reply)?;
        out.write_all(b"\n").map_err(|e| Error::io("stdout", e))?;
        out.flush().map_err(|e| Error::io("stdout", e))?;
        if close {
            return Ok(0);
        }
    }
}

fn handle(req: Request, spec: &OptimizerSpec, session: &mut Option<Session>) -> Result<Json> {
    match req {
        Request::Init { protocol, budget, seed, direction, space, parallelism } => {
            if let Some(p) = protocol.filter(|p| *p != 1) {
                return Err(Error::Config(format!("protocol {p} is not supported; this knobs speaks protocol 1")));
            }
            let maximize = match direction.as_deref() {
                None | Some("minimize") => false,
                Some("maximize") => true,
                Some(d) => return Err(Error::Config(format!("direction `{d}` must be minimize or maximize"))),
            };
            let params = space.get("params").cloned().unwrap_or(space);
            let yaml: serde_yaml::Value =
                serde_yaml::to_value(&params).map_err(|e| Error::Config(format!("space: {e}")))?;
            let space = Space::from_yaml(&yaml, "space.params", "init")?;
            let mut problem = Problem::new(space.dims(), seed.unwrap_or(0));
            problem.budget = budget;
            problem.parallelism = parallelism.unwrap_or(1).max(1);
            let optimizer = optim::build(spec, &problem)?;
            *session = Some(Session { space, optimizer, maximize, pending: HashMap::new(), best: None });
            Ok(json!({"ok": true, "name": format!("knobs-{}", spec.name), "version": env!("CARGO_PKG_VERSION")}))
        }
        Request::Ask { n } => {
            let s = session.as_mut().ok_or_else(|| Error::Config("ask before init".into()))?;
            if n == 0 {
                return Err(Error::Config("ask: n must be at least 1".into()));
            }
            let cands = s.optimizer.ask(n)?;
            let mut trials = Vec::with_capacity(cands.len());
            for mut c in cands {
                optim::clamp_unit(&mut c.x);
                let params = s.space.decode(&c.x);
                trials.push(json!({"id": c.ticket, "params": params}));
                s.pending.insert(c.ticket, c.x);
            }
            if trials.is_empty() {
                Ok(json!({"ok": true, "trials": [], "done": true}))
            } else {
                Ok(json!({"ok": true, "trials": trials}))
            }
        }
        Request::Tell { results } => {
            let s = session.as_mut().ok_or_else(|| Error::Config("tell before init".into()))?;
            let mut obs = Vec::with_capacity(results.len());
            for r in &results {
                let id = r.id.as_u64().ok_or_else(|| Error::Config(format!("tell: id {} was never asked", r.id)))?;
                if !s.pending.contains_key(&id) {
                    return Err(Error::Config(format!("tell: id {id} is not pending (never asked, or told already)")));
                }
            }
            for r in results {
                let id = r.id.as_u64().unwrap_or_default();
                let x = s.pending.remove(&id).unwrap_or_default();
                let failed = r.status.as_deref().is_some_and(|st| st != "ok");
                match r.value.filter(|v| v.is_finite() && !failed) {
                    Some(v) => {
                        let v = if s.maximize { -v } else { v };
                        if s.best.as_ref().is_none_or(|(b, _)| v < *b) {
                            s.best = Some((v, s.space.decode(&x)));
                        }
                        obs.push(Observed::ok(Some(id), x, v));
                    }
                    None => obs.push(Observed::failed(Some(id), x)),
                }
            }
            s.optimizer.tell(&obs)?;
            Ok(json!({"ok": true}))
        }
        Request::Close {} => {
            let best = session.as_ref().and_then(|s| {
                s.best.as_ref().map(|(v, c)| json!({"value": if s.maximize { -v } else { *v }, "params": c}))
            });
            Ok(json!({"ok": true, "best": best}))
        }
    }
}
