//! `knobs stdio`: one optimizer behind the JSON-lines ask/tell protocol
//! (version 1 of the peer benchmark harness, and version 2 for several objectives), on
//! stdin/stdout.
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
//!
//! Protocol 2 (several objectives, a Pareto search) differs in three messages:
//!
//! → {"op":"init","protocol":2,"budget":100,"seed":3,"space":{...},
//!    "objectives":[{"name":"latency","direction":"minimize"},{"name":"cost"}]}
//!   (two or more objectives; `direction` defaults to minimize; no top-level "direction")
//! → {"op":"tell","results":[{"id":0,"values":[12.5,3.0]},{"id":1,"values":null,"status":"failed"}]}
//! → {"op":"close","recommend":true}
//! ← {"ok":true,"front":[{"values":[12.5,3.0],"params":{...}}, ...]}
//!   ("front": every non-dominated configuration told, by its values; with "recommend":
//!   also "recommended", knobs' front with the knee and the best per objective marked
//!   (as `knobs recommend --json` writes `pareto_front`), "hypervolume", "reference_point")
//! ```
//! Exactly one response line per request; a bad request gets
//! `{"ok":false,"error":"..."}` and the session goes on. Logs go to stderr.
//! The search itself is the library's [`Session`]; this file only speaks
//! the protocol.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::{Value as Json, json};

use crate::error::{Error, Result};
use crate::objective::{Direction, Objective};
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
        /// Protocol 2: the objectives of a Pareto search, in the order of told `values`.
        objectives: Option<Vec<InitObjective>>,
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
    /// Protocol 2: one value per objective.
    values: Option<Vec<f64>>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitObjective {
    name: String,
    direction: Option<String>,
}

fn direction(d: Option<&str>, path: &str) -> Result<Direction> {
    match d {
        None | Some("minimize") => Ok(Direction::Minimize),
        Some("maximize") => Ok(Direction::Maximize),
        Some(d) => Err(Error::Config(format!("{path}: `{d}` must be minimize or maximize"))),
    }
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
        Request::Init {
            protocol,
            budget,
            seed,
            direction: dir,
            objectives,
            space,
            parallelism,
            confirm,
            deterministic,
        } => {
            let protocol = protocol.unwrap_or(1);
            if !(1..=2).contains(&protocol) {
                return Err(Error::Config(format!(
                    "protocol {protocol} is not supported; this knobs speaks protocols 1 and 2"
                )));
            }
            let maximize = direction(dir.as_deref(), "direction")? == Direction::Maximize;
            let objectives = match (protocol, objectives) {
                (1, Some(_)) => {
                    return Err(Error::Config("objectives: several objectives need protocol 2".into()));
                }
                (2, None) => {
                    return Err(Error::Config("protocol 2 needs `objectives`: a list of {name, direction}".into()));
                }
                (2, Some(list)) if list.len() < 2 => {
                    return Err(Error::Config(format!(
                        "objectives: a Pareto search needs two or more (got {}); use protocol 1 for one",
                        list.len()
                    )));
                }
                (_, Some(list)) => {
                    if dir.is_some() {
                        return Err(Error::Config(
                            "direction: give each objective its direction instead (protocol 2)".into(),
                        ));
                    }
                    let mut out: Vec<Objective> = Vec::with_capacity(list.len());
                    for (i, o) in list.into_iter().enumerate() {
                        if out.iter().any(|x| x.metric == o.name) {
                            return Err(Error::Config(format!("objectives[{i}].name: `{}` is listed twice", o.name)));
                        }
                        let d = direction(o.direction.as_deref(), &format!("objectives[{i}].direction"))?;
                        out.push(Objective::new(o.name, d));
                    }
                    out
                }
                (_, None) => Vec::new(),
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
                objectives,
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
            let pareto = s.objectives() > 1;
            let mut told = Vec::with_capacity(results.len());
            for r in results {
                let id = r.id.as_u64().ok_or_else(|| Error::Config(format!("tell: id {} was never asked", r.id)))?;
                let failed = r.status.as_deref().is_some_and(|st| st != "ok");
                match (pareto, r.value.is_some(), r.values.is_some()) {
                    (true, true, _) => {
                        return Err(Error::Config(format!(
                            "tell: id {id}: this session has several objectives; send `values`"
                        )));
                    }
                    (false, _, true) => {
                        return Err(Error::Config(format!(
                            "tell: id {id}: `values` needs protocol 2 with objectives; send `value`"
                        )));
                    }
                    _ => {}
                }
                // One objective is a vector of one.
                let values = if pareto { r.values } else { r.value.map(|v| vec![v]) };
                told.push((id, values.filter(|_| !failed)));
            }
            s.tell_vectors(&told)?;
            Ok(json!({"ok": true}))
        }
        Request::Close { recommend } if session.as_ref().is_some_and(|s| s.objectives() > 1) => {
            let s = session.as_ref().expect("checked above");
            let front: Vec<Json> =
                s.front().into_iter().map(|(values, params)| json!({"values": values, "params": params})).collect();
            let mut reply = json!({"ok": true, "front": front});
            if recommend {
                let recs = s.recommend(0);
                if let Some(f) = recs.pareto {
                    reply["recommended"] = json!(f.pareto_front);
                    reply["hypervolume"] = json!(f.hypervolume);
                    reply["reference_point"] = json!(f.reference_point);
                }
                reply["warnings"] = json!(recs.warnings);
            }
            Ok(reply)
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
