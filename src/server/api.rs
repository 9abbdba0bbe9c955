//! The routes of `/v1`, `/healthz`, `/readyz` and `/metrics`, each documented
//! for the OpenAPI document with `utoipa`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::errors::{ApiError, ApiPath, ErrorBody, JsonBody, whole_number};
use super::openapi::BearerAuth;
use super::{AppState, MAX_ASK, MAX_PAGE};
use crate::error::Error;
use crate::spec::SpecFile;
use crate::storage::{StateFilter, Storage, TrialPage};
use crate::study::{Report, SharedStudy};
use crate::trial::{Trial, TrialState};

/// Longest client id and request id accepted (bytes); study names follow `spec::check_study_name`.
const MAX_ID: usize = 200;
/// Most recommendations one request may ask for.
const MAX_TOP: usize = 100;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "knobs",
        description = "Ask/tell API of knobs, the parameter-optimization engine: create studies from the same \
                       spec as the YAML files, ask for trials, tell their results, read recommendations. \
                       Every route but /healthz needs `Authorization: Bearer <token>`."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(ErrorBody, StateParam))
)]
pub struct ApiDoc;

pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(create_study, list_studies))
        .routes(routes!(get_study))
        .routes(routes!(close_study))
        .routes(routes!(ask))
        .routes(routes!(tell))
        .routes(routes!(heartbeat))
        .routes(routes!(enqueue))
        .routes(routes!(list_trials))
        .routes(routes!(recommendations))
        .route("/v1/openapi.json", axum::routing::get(openapi_doc))
}

/// Run storage work on a blocking thread.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("the request's thread failed: {e}")))?
}

fn check_id(field: &str, v: &str) -> Result<(), ApiError> {
    if v.is_empty() || v.len() > MAX_ID {
        return Err(ApiError::bad_request(field, format!("{field}: must be 1..{MAX_ID} bytes (got {})", v.len())));
    }
    Ok(())
}

// ---- health ---------------------------------------------------------------

/// Liveness: the process answers. Needs no token.
#[utoipa::path(get, path = "/healthz", security(()), responses((status = 200, description = "alive")))]
async fn healthz() -> Json<JsonValue> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: the storage is open and migrated.
#[utoipa::path(get, path = "/readyz", responses(
    (status = 200, description = "ready"),
    (status = 503, description = "the storage is not open yet", body = ErrorBody),
))]
async fn readyz(State(state): State<Arc<AppState>>) -> Result<Json<JsonValue>, ApiError> {
    state.storage()?;
    Ok(Json(serde_json::json!({ "status": "ready" })))
}

/// Counters, the ask latency histogram and trials by state, in the Prometheus text format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let studies = match state.storage() {
        Ok(storage) => blocking(move || Ok(storage.list_studies()?)).await?,
        Err(_) => Vec::new(),
    };
    let text = state.metrics.render(&studies);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

async fn openapi_doc() -> Response {
    static DOC: OnceLock<String> = OnceLock::new();
    let text = DOC.get_or_init(super::openapi_json).clone();
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

// ---- studies --------------------------------------------------------------

/// A spec as in the YAML files, as JSON: name, space, objectives, constraints,
/// optimizer, seed, budget, evaluator. The evaluator is optional: left out, it
/// is `{"type": "external"}` (the API's clients evaluate; they may declare the
/// metrics they report with `{"type": "external", "metrics": [...]}`). It may
/// also be `{"ref": NAME}` (one the server's config declares, for `knobs
/// worker`s sharing the study) or a `function` evaluator; evaluators that run
/// commands or read files are only declared in the server's config.
/// Only documents the body, which is read as JSON and checked by the spec parser.
pub struct SpecBody;

impl utoipa::PartialSchema for SpecBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        let object = || ObjectBuilder::new().schema_type(Type::Object);
        let list = |min: usize| ArrayBuilder::new().items(object()).min_items(Some(min));
        object()
            .description(Some("A spec, as the YAML files' (see the README's spec reference); its semantics are checked by the server, every problem reported."))
            .property("name", ObjectBuilder::new().schema_type(Type::String).min_length(Some(1)).max_length(Some(200)))
            .required("name")
            .property("space", list(1))
            .required("space")
            .property("objectives", list(1))
            .required("objectives")
            .property("constraints", list(0))
            .property("relations", list(0))
            .property("optimizer", ObjectBuilder::new())
            .property("seed", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)))
            .property("budget", object())
            .property("evaluator", object())
            .property("confirm", ObjectBuilder::new())
            .property("recommend", object())
            .property("parallelism", ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(1)))
            .property("description", ObjectBuilder::new().schema_type(Type::String))
            .into()
    }
}

impl ToSchema for SpecBody {}

/// A parameter's value: a number, a choice's text, or true/false.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only documents a request body's values
pub enum ParamValue {
    Number(f64),
    Text(String),
    Bool(bool),
}

#[derive(Serialize, ToSchema)]
pub struct StudyList {
    #[schema(value_type = Vec<StudySummary>)]
    pub studies: Vec<crate::storage::StudySummary>,
}

// Documents `crate::storage::StudySummary`, which the storage defines
// without knowing about HTTP; the doc line below is the schema's description.
/// One line of `knobs studies` (and of the API's study list).
#[derive(ToSchema)]
#[allow(dead_code)] // only documents the body
pub struct StudySummary {
    pub name: String,
    pub created_at: String,
    #[schema(minimum = 0)]
    pub trials: u64,
    #[schema(minimum = 0)]
    pub complete: u64,
    #[schema(minimum = 0)]
    pub failed: u64,
    #[schema(minimum = 0)]
    pub running: u64,
}

#[derive(Serialize, ToSchema)]
pub struct StudyView {
    pub name: String,
    pub created_at: String,
    /// A closed study hands out no new trials.
    pub closed: bool,
    /// The checked spec, as stored.
    #[schema(value_type = Object)]
    pub spec: JsonValue,
    pub progress: Progress,
}

#[derive(Serialize, ToSchema)]
pub struct Progress {
    /// The study's trial budget (baseline included).
    pub budget: u64,
    pub trials: u64,
    pub running: u64,
    pub complete: u64,
    pub failed: u64,
    pub pruned: u64,
    /// Enqueued configurations not handed out yet.
    pub queued: u64,
    /// The best feasible complete trial so far (none in a Pareto study: see its
    /// recommendations for the front).
    pub best: Option<Best>,
}

#[derive(Serialize, ToSchema)]
pub struct Best {
    pub number: u64,
    /// The objective in its own units (the metric for one objective, else the weighted score).
    pub value: f64,
    #[schema(value_type = Object)]
    pub params: crate::space::Config,
}

/// Every trial of the study (in `state`, if given) in number order, read a
/// page at a time: a study's trials are never all in memory at once.
fn each_trial(
    storage: &Arc<dyn Storage>,
    study: &str,
    state: Option<StateFilter>,
    mut f: impl FnMut(&Trial),
) -> crate::error::Result<()> {
    let mut page = TrialPage { state, after: None, limit: 1000 };
    loop {
        let got = storage.trials_page(study, &page)?;
        got.iter().for_each(&mut f);
        match got.last() {
            Some(last) if got.len() == page.limit => page.after = Some(last.number),
            _ => return Ok(()),
        }
    }
}

fn study_view(storage: &Arc<dyn Storage>, shared: &SharedStudy) -> Result<StudyView, ApiError> {
    let spec = shared.spec();
    let record = storage
        .find_study(&spec.name)?
        .ok_or_else(|| Error::NotFound(format!("study `{}` does not exist", spec.name)))?;
    let counts = storage.list_studies()?.into_iter().find(|s| s.name == spec.name);
    let (trials, complete, failed, running) =
        counts.map_or((0, 0, 0, 0), |c| (c.trials, c.complete, c.failed, c.running));
    let mut best: Option<(f64, Trial)> = None;
    // A Pareto study has no best: its front is in the recommendations.
    each_trial(storage, &spec.name, Some(StateFilter::Complete), |t| {
        if let Some(o) = spec.objectives.score(&t.metrics).ok().filter(|_| !spec.objectives.pareto)
            && o.feasible()
            && best.as_ref().is_none_or(|(b, _)| o.score < *b)
        {
            best = Some((o.score, t.clone()));
        }
    })?;
    Ok(StudyView {
        name: record.name,
        created_at: record.created_at,
        closed: record.closed,
        spec: record.spec.get("spec").cloned().unwrap_or_default(),
        progress: Progress {
            budget: spec.budget.trials,
            trials,
            running,
            complete,
            failed,
            pruned: trials.saturating_sub(complete + failed + running),
            queued: storage.queued(&spec.name)?,
            best: best.map(|(score, t)| Best {
                number: t.number,
                value: spec.objectives.display_value(score),
                params: t.config,
            }),
        },
    })
}

/// Put the server's evaluator in place of `{"ref": NAME}`; refuse evaluators
/// that would run a command or read the server's files.
fn resolve_evaluator(body: &mut serde_json::Map<String, JsonValue>, state: &AppState) -> Result<(), ApiError> {
    let declared = || {
        let names: Vec<&str> = state.options.evaluators.keys().map(String::as_str).collect();
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    };
    let Some(JsonValue::Object(e)) = body.get("evaluator") else { return Ok(()) };
    if let Some(r) = e.get("ref") {
        if e.len() != 1 {
            return Err(ApiError::bad_request("evaluator", "evaluator: `ref` takes no other fields"));
        }
        let Some(name) = r.as_str() else {
            return Err(ApiError::bad_request("evaluator.ref", "evaluator.ref: must be the name of an evaluator"));
        };
        let Some(found) = state.options.evaluators.get(name) else {
            return Err(ApiError::bad_request(
                "evaluator.ref",
                format!("evaluator.ref: the server declares no evaluator `{name}`; it declares: {}", declared()),
            ));
        };
        body.insert("evaluator".into(), serde_json::to_value(found).map_err(ApiError::internal)?);
        return Ok(());
    }
    match e.get("type").and_then(JsonValue::as_str) {
        Some("function" | "external") | None => Ok(()),
        Some(kind) => Err(ApiError::bad_request(
            "evaluator",
            format!(
                "evaluator: a `{kind}` evaluator cannot come from an API request (it would run a command or read \
                 the server's files); declare it under `evaluators:` in the server's --config file and refer to \
                 it as {{\"ref\": NAME}} (declared: {})",
                declared()
            ),
        )),
    }
}

/// Create a study (or return it unchanged when it exists with the same space,
/// objectives, optimizer and seed).
#[utoipa::path(post, path = "/v1/studies", request_body(content = SpecBody, example = json!({
    "name": "pool",
    "space": [
        {"name": "pool_size", "type": "int", "low": 1, "high": 64, "default": 8},
        {"name": "timeout_ms", "type": "float", "low": 10, "high": 5000, "log": true},
        {"name": "policy", "type": "categorical", "choices": ["lru", "lfu"]}
    ],
    "objectives": [{"metric": "p99_ms", "direction": "minimize"}],
    "optimizer": "auto",
    "budget": {"trials": 50}
})), responses(
    (status = 201, description = "created", body = StudyView),
    (status = 200, description = "the same study already exists", body = StudyView),
    (status = 400, description = "invalid spec; `field` names the first problem's path", body = ErrorBody),
    (status = 409, description = "a different study has this name", body = ErrorBody),
    (status = 413, description = "body too large", body = ErrorBody),
))]
async fn create_study(
    State(state): State<Arc<AppState>>,
    JsonBody(body): JsonBody<JsonValue>,
) -> Result<(StatusCode, Json<StudyView>), ApiError> {
    let storage = state.storage()?;
    let JsonValue::Object(mut body) = body else {
        return Err(ApiError::bad_request("(body)", "the body must be a JSON object: the study's spec"));
    };
    let name = match body.get("name") {
        Some(JsonValue::String(n)) => n.clone(),
        Some(_) => return Err(ApiError::bad_request("name", "name: must be a string")),
        None => return Err(ApiError::bad_request("name", "name: missing; the study's name is part of its URL")),
    };
    if let Err(why) = crate::spec::check_study_name(&name) {
        return Err(ApiError::bad_request("name", format!("name: {why}")));
    }
    // A study created over the API cannot steer where the server's or an operator's later
    // commands write or read files.
    for field in ["output", "storage"] {
        if body.contains_key(field) {
            return Err(ApiError::bad_request(
                field,
                format!(
                    "{field}: a spec sent over the API cannot name files; the server decides where its studies live"
                ),
            ));
        }
    }
    // The API's own clients evaluate the trials unless the spec says otherwise.
    body.entry("evaluator").or_insert_with(|| serde_json::json!({"type": "external"}));
    resolve_evaluator(&mut body, &state)?;
    let spec =
        SpecFile::from_json(&JsonValue::Object(body), "request body")?.check(&name, state.options.base_dir.clone())?;
    let st = state.clone();
    blocking(move || {
        let existed = storage.find_study(&spec.name)?.is_some();
        let shared = match SharedStudy::open(spec, storage.clone()) {
            Ok(s) => s,
            Err(Error::Config(m)) if existed => return Err(ApiError::new(StatusCode::CONFLICT, m)),
            Err(e) => return Err(e.into()),
        };
        let view = study_view(&storage, &shared)?;
        st.studies.lock().unwrap_or_else(|e| e.into_inner()).remove(&view.name);
        Ok((if existed { StatusCode::OK } else { StatusCode::CREATED }, Json(view)))
    })
    .await
}

/// Every study with its trial counts, oldest first.
#[utoipa::path(get, path = "/v1/studies", responses((status = 200, body = StudyList)))]
async fn list_studies(State(state): State<Arc<AppState>>) -> Result<Json<StudyList>, ApiError> {
    let storage = state.storage()?;
    blocking(move || {
        let studies = storage.list_studies()?;
        Ok(Json(StudyList { studies }))
    })
    .await
}

/// The study's spec and progress: trials by state, the best value, the budget.
#[utoipa::path(get, path = "/v1/studies/{name}", params(("name" = String, Path, description = "study name")),
    responses((status = 200, body = StudyView), (status = 404, body = ErrorBody)))]
async fn get_study(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<StudyView>, ApiError> {
    let storage = state.storage()?;
    blocking(move || {
        let shared = state.study(&storage, &name)?;
        Ok(Json(study_view(&storage, &shared)?))
    })
    .await
}

/// Close the study: asks hand out no new trials (409); running trials may still be told.
#[utoipa::path(post, path = "/v1/studies/{name}/close", params(("name" = String, Path, description = "study name")),
    responses((status = 200, body = StudyView), (status = 404, body = ErrorBody)))]
async fn close_study(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<StudyView>, ApiError> {
    let storage = state.storage()?;
    blocking(move || {
        let shared = state.study(&storage, &name)?;
        storage.close_study(&name)?;
        Ok(Json(study_view(&storage, &shared)?))
    })
    .await
}

// ---- ask / tell -----------------------------------------------------------

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// Trials wanted (1..=1000); fewer come back near the end of the budget.
    #[serde(default = "one", deserialize_with = "whole_number")]
    #[schema(minimum = 1, maximum = 1000)]
    pub n: u32,
    /// Who asks: the trials are leased to it (and must be heartbeaten).
    #[schema(min_length = 1, max_length = 200)]
    pub client_id: String,
    /// Idempotency key: asking again with the same client_id and request_id
    /// returns the same trials, also after a server restart.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 200)]
    pub request_id: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Serialize, ToSchema)]
pub struct AskResponse {
    pub trials: Vec<AskedTrial>,
    /// Nothing more will be handed out: the budget is fully started or the optimizer finished.
    pub exhausted: bool,
    /// These trials were returned before to the same client_id and request_id.
    pub replayed: bool,
}

#[derive(Serialize, ToSchema)]
pub struct AskedTrial {
    pub number: u64,
    /// The lease epoch to tell and heartbeat with.
    pub epoch: u64,
    /// The configuration to evaluate.
    #[schema(value_type = Object)]
    pub params: crate::space::Config,
    /// The baseline: the spec's defaults.
    pub baseline: bool,
}

/// Ask for up to `n` trials to evaluate.
#[utoipa::path(post, path = "/v1/studies/{name}/ask", params(("name" = String, Path, description = "study name")),
    request_body = AskRequest, responses(
    (status = 200, body = AskResponse),
    (status = 400, body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the study is closed", body = ErrorBody),
))]
async fn ask(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    JsonBody(req): JsonBody<AskRequest>,
) -> Result<Json<AskResponse>, ApiError> {
    if req.n == 0 || req.n > MAX_ASK {
        return Err(ApiError::bad_request("n", format!("n: must be 1..={MAX_ASK} (got {})", req.n)));
    }
    check_id("client_id", &req.client_id)?;
    if let Some(r) = &req.request_id {
        check_id("request_id", r)?;
    }
    let storage = state.storage()?;
    blocking(move || {
        let start = Instant::now();
        let shared = state.study(&storage, &name)?;
        let key = req.request_id.as_ref().map(|r| serde_json::json!([req.client_id, r]).to_string());
        let worker = format!("api:{}", req.client_id);
        let claimed = shared.ask_keyed(&worker, req.n as usize, state.options.leases, key.as_deref())?;
        if claimed.closed && claimed.trials.is_empty() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("study `{name}` is closed; it hands out no new trials"),
            ));
        }
        state.metrics.ask(claimed.trials.len(), start.elapsed());
        Ok(Json(AskResponse {
            exhausted: claimed.exhausted,
            replayed: claimed.replayed,
            trials: claimed
                .trials
                .into_iter()
                .map(|t| AskedTrial { number: t.number, epoch: t.epoch, params: t.config, baseline: t.baseline })
                .collect(),
        }))
    })
    .await
}

#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum TellState {
    Complete,
    Failed,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TellRequest {
    /// The epoch the trial was asked (or re-leased) at.
    #[serde(deserialize_with = "whole_number")]
    pub epoch: u64,
    pub state: TellState,
    /// What was measured; `complete` needs every metric the objectives and constraints name.
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Why the trial failed.
    #[serde(default)]
    pub reason: Option<String>,
    /// Seconds the evaluation took.
    #[serde(default)]
    pub elapsed_s: Option<f64>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    /// The epoch the trial was asked (or re-leased) at.
    #[serde(deserialize_with = "whole_number")]
    pub epoch: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Ack {
    pub number: u64,
    pub state: String,
}

fn trial_number(number: &str) -> Result<u64, ApiError> {
    number.parse().map_err(|_| ApiError::bad_request("number", format!("number: `{number}` is not a trial number")))
}

/// Tell a trial's result: complete with its metrics, or failed with a reason.
#[utoipa::path(post, path = "/v1/studies/{name}/trials/{number}/tell",
    params(("name" = String, Path, description = "study name"), ("number" = u64, Path, description = "trial number")),
    request_body = TellRequest, responses(
    (status = 200, description = "stored; the same result told again (a retry) gets the same answer", body = Ack),
    (status = 400, body = ErrorBody),
    (status = 404, description = "unknown study or trial", body = ErrorBody),
    (status = 409, description = "the trial is finished, or was re-leased (stale epoch)", body = ErrorBody),
))]
async fn tell(
    State(state): State<Arc<AppState>>,
    ApiPath((name, number)): ApiPath<(String, String)>,
    JsonBody(req): JsonBody<TellRequest>,
) -> Result<Json<Ack>, ApiError> {
    let number = trial_number(&number)?;
    let storage = state.storage()?;
    blocking(move || {
        let shared = state.study(&storage, &name)?;
        let complete = req.state == TellState::Complete;
        let report = match req.state {
            TellState::Complete => Report::Complete { metrics: req.metrics, elapsed_s: req.elapsed_s },
            TellState::Failed => Report::Failed {
                reason: req.reason.unwrap_or_else(|| "failed (no reason given)".into()),
                metrics: req.metrics,
                elapsed_s: req.elapsed_s,
            },
        };
        match shared.tell(number, req.epoch, report) {
            Ok(stored) => {
                state.metrics.tell(complete);
                Ok(Json(Ack { number, state: stored.label().into() }))
            }
            Err(e) => {
                if matches!(e, Error::Refused(_)) {
                    state.metrics.tell_refused();
                }
                Err(e.into())
            }
        }
    })
    .await
}

/// Keep a trial's lease alive while it is evaluated (more often than the server's grace period).
#[utoipa::path(post, path = "/v1/studies/{name}/trials/{number}/heartbeat",
    params(("name" = String, Path, description = "study name"), ("number" = u64, Path, description = "trial number")),
    request_body = HeartbeatRequest, responses(
    (status = 200, body = Ack),
    (status = 404, description = "unknown study or trial", body = ErrorBody),
    (status = 409, description = "the trial is finished, or was re-leased (stale epoch): abandon it", body = ErrorBody),
))]
async fn heartbeat(
    State(state): State<Arc<AppState>>,
    ApiPath((name, number)): ApiPath<(String, String)>,
    JsonBody(req): JsonBody<HeartbeatRequest>,
) -> Result<Json<Ack>, ApiError> {
    let number = trial_number(&number)?;
    let storage = state.storage()?;
    blocking(move || {
        state.study(&storage, &name)?.heartbeat(number, req.epoch)?;
        Ok(Json(Ack { number, state: "running".into() }))
    })
    .await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// The configuration to evaluate; parameters left out take the spec's defaults.
    #[schema(value_type = BTreeMap<String, ParamValue>)]
    pub params: crate::space::Config,
}

#[derive(Serialize, ToSchema)]
pub struct EnqueueResponse {
    /// Configurations waiting in the study's queue now, this one included.
    pub queued: u64,
}

/// Enqueue a configuration (a known-good or today's production one): the next
/// asks hand it out before the optimizer's own proposals, and its result is
/// told to the optimizer like any other.
#[utoipa::path(post, path = "/v1/studies/{name}/enqueue", params(("name" = String, Path, description = "study name")),
    request_body = EnqueueRequest, responses(
    (status = 202, description = "queued", body = EnqueueResponse),
    (status = 400, description = "a parameter is unknown, missing (and has no default) or outside its domain; `field` is `params.NAME`", body = ErrorBody),
    (status = 404, body = ErrorBody),
    (status = 409, description = "the study is closed", body = ErrorBody),
))]
async fn enqueue(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    JsonBody(req): JsonBody<EnqueueRequest>,
) -> Result<(StatusCode, Json<EnqueueResponse>), ApiError> {
    let storage = state.storage()?;
    blocking(move || {
        let shared = state.study(&storage, &name)?;
        let queued = shared.enqueue(&req.params)?;
        Ok((StatusCode::ACCEPTED, Json(EnqueueResponse { queued })))
    })
    .await
}

// ---- trials and recommendations ------------------------------------------

#[derive(Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum StateParam {
    Running,
    Complete,
    Failed,
    Pruned,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrialsQuery {
    /// Only trials in this state.
    pub state: Option<StateParam>,
    /// Only trials numbered after this one (the previous page's `next_after`).
    pub after: Option<u64>,
    /// Trials per page (1..=1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct TrialView {
    pub number: u64,
    pub epoch: u64,
    /// running, complete, failed or pruned.
    pub state: String,
    #[schema(value_type = Object)]
    pub params: crate::space::Config,
    pub metrics: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub elapsed_s: Option<f64>,
    pub baseline: bool,
    /// A re-measurement of the confirmation phase.
    pub confirm: bool,
}

impl From<Trial> for TrialView {
    fn from(t: Trial) -> Self {
        let reason = match &t.state {
            TrialState::Failed { reason } => Some(reason.clone()),
            _ => None,
        };
        TrialView {
            number: t.number,
            epoch: t.epoch,
            state: t.state.label().into(),
            params: t.config,
            metrics: t.metrics,
            reason,
            elapsed_s: t.elapsed_s,
            baseline: t.baseline,
            confirm: t.confirm,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct TrialsPage {
    pub trials: Vec<TrialView>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
}

/// One page of the study's trials by number, optionally in one state.
#[utoipa::path(get, path = "/v1/studies/{name}/trials",
    params(("name" = String, Path, description = "study name"), TrialsQuery),
    responses((status = 200, body = TrialsPage), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_trials(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    query: Result<Query<TrialsQuery>, QueryRejection>,
) -> Result<Json<TrialsPage>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("(query)", e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request("limit", format!("limit: must be 1..={MAX_PAGE} (got {limit})")));
    }
    let filter = q.state.map(|s| match s {
        StateParam::Running => StateFilter::Running,
        StateParam::Complete => StateFilter::Complete,
        StateParam::Failed => StateFilter::Failed,
        StateParam::Pruned => StateFilter::Pruned,
    });
    let storage = state.storage()?;
    blocking(move || {
        let page = TrialPage { state: filter, after: q.after, limit };
        let trials = storage.trials_page(&name, &page)?;
        let next_after = if trials.len() == limit { trials.last().map(|t| t.number) } else { None };
        Ok(Json(TrialsPage { trials: trials.into_iter().map(TrialView::from).collect(), next_after }))
    })
    .await
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RecommendationsQuery {
    /// How many configurations (1..=100; default: the spec's recommend.top).
    #[param(minimum = 1, maximum = 100)]
    pub top: Option<usize>,
}

/// The top configurations with the same evidence as `knobs recommend --json`:
/// improvement over the baseline with uncertainty, model predictions, parameter importance.
#[utoipa::path(get, path = "/v1/studies/{name}/recommendations",
    params(("name" = String, Path, description = "study name"), RecommendationsQuery),
    responses((status = 200, description = "as `knobs recommend --json`", body = Object), (status = 404, body = ErrorBody)))]
async fn recommendations(
    State(state): State<Arc<AppState>>,
    ApiPath(name): ApiPath<String>,
    query: Result<Query<RecommendationsQuery>, QueryRejection>,
) -> Result<Json<JsonValue>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("(query)", e.body_text()))?;
    if let Some(top) = q.top.filter(|&t| t == 0 || t > MAX_TOP) {
        return Err(ApiError::bad_request("top", format!("top: must be 1..={MAX_TOP} (got {top})")));
    }
    let storage = state.storage()?;
    blocking(move || {
        let shared = state.study(&storage, &name)?;
        let spec = shared.spec();
        let mut r = crate::recommend::Recommender::new(&spec.space, &spec.objectives)
            .allow_risky(spec.allow_risky)
            .deterministic(spec.evaluator.deterministic());
        each_trial(&storage, &name, None, |t| r.add(t))?;
        let recs = r.finish(&name, q.top.unwrap_or(spec.top_k));
        Ok(Json(serde_json::to_value(&recs).map_err(ApiError::internal)?))
    })
    .await
}
