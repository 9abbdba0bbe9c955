//! The HTTP face (`knobs serve`): a JSON API under `/v1` over shared studies
//! ([`crate::study::SharedStudy`]), for a coordinator that asks for configurations and
//! tells results. The engine stays synchronous: every storage call runs on a
//! blocking thread (`spawn_blocking`).
//!
//! Every route but `/healthz` needs a bearer token; errors are JSON
//! `{error, field?}` with a status that says what happened (400 invalid, 401,
//! 404 unknown study or trial, 409 finished or reassigned trial or closed
//! study, 413 body too large, 503 not ready or timed out). The OpenAPI
//! document is generated from the handlers ([`openapi_json`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};

use crate::error::{Error, Result};
use crate::eval::EvaluatorSpec;
use crate::storage::Storage;
use crate::study::{Leases, SharedStudy};

mod api;
mod errors;
mod metrics;
mod openapi;

pub(crate) use errors::ApiError;
pub(crate) use metrics::Metrics;

/// The one route that needs no token (liveness), for `authenticate` and the OpenAPI document.
pub(crate) const OPEN_PATH: &str = "/healthz";
/// Largest request body accepted (bytes); larger ones get 413.
pub const DEFAULT_BODY_LIMIT: usize = 1 << 20;
/// Most trials one ask may request.
pub const MAX_ASK: u32 = 1000;
/// Most trials one page of `GET /v1/studies/{name}/trials` returns.
pub const MAX_PAGE: usize = 1000;

/// What the server runs with (from `knobs serve`'s flags and config file).
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Accepted bearer tokens; `None` turns authentication off (`--insecure-no-auth`).
    pub tokens: Option<Vec<String>>,
    /// Evaluators an API request may name with `{ref: NAME}`.
    pub evaluators: BTreeMap<String, EvaluatorSpec>,
    /// Relative paths in those evaluators resolve against this directory.
    pub base_dir: PathBuf,
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit: usize,
    /// A request taking longer is answered 503 and dropped.
    pub request_timeout: Duration,
    /// How long a claimed trial may go without a heartbeat, and how often
    /// it is re-leased before it fails.
    pub leases: Leases,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            tokens: None,
            evaluators: BTreeMap::new(),
            base_dir: PathBuf::from("."),
            body_limit: DEFAULT_BODY_LIMIT,
            request_timeout: Duration::from_secs(30),
            leases: Leases::default(),
        }
    }
}

/// The server's own config file (`knobs serve --config server.yaml`).
#[derive(Debug, Clone, Default)]
pub struct ServerConfig {
    /// Evaluators by name, each an `evaluator:` section as in a spec; the only
    /// way an API request gets an evaluator that runs a command.
    pub evaluators: BTreeMap<String, EvaluatorSpec>,
}

/// The config file as written, before each evaluator is checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    evaluators: BTreeMap<String, serde_yaml::Value>,
}

impl ServerConfig {
    /// Read, cap and parse the config file; every evaluator is checked to be
    /// a valid `evaluator:` section, and every bad one is reported.
    pub fn load(path: &Path) -> Result<ServerConfig> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(&shown, e))?;
        let value = crate::yaml::load(&text, &shown)?;
        let file: ConfigFile =
            serde_yaml::from_value(value).map_err(|e| Error::invalid(&shown, "(file)", e.to_string()))?;
        let mut problems = Vec::new();
        let mut evaluators = BTreeMap::new();
        for (name, spec) in file.evaluators {
            match serde_yaml::from_value::<EvaluatorSpec>(spec) {
                Ok(spec) => {
                    evaluators.insert(name, spec);
                }
                Err(e) => problems.push(crate::error::Problem::new(format!("evaluators.{name}"), e.to_string())),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(crate::error::Problems { source: shown, items: problems }));
        }
        Ok(ServerConfig { evaluators })
    }
}

/// State shared by every handler.
pub struct AppState {
    storage: OnceLock<Arc<dyn Storage>>,
    options: ServerOptions,
    metrics: Metrics,
    /// Studies already joined (their spec never changes once created).
    studies: Mutex<HashMap<String, Arc<SharedStudy>>>,
}

impl AppState {
    /// A server not ready yet: it answers `/readyz` 503 until
    /// [`AppState::set_storage`].
    pub fn new(options: ServerOptions) -> Arc<AppState> {
        Arc::new(AppState {
            storage: OnceLock::new(),
            options,
            metrics: Metrics::default(),
            studies: Mutex::new(HashMap::new()),
        })
    }

    /// Hand the opened (and migrated) storage to the server: it is ready.
    pub fn set_storage(&self, storage: Arc<dyn Storage>) {
        let _ = self.storage.set(storage);
    }

    /// Whether requests need a bearer token.
    pub fn requires_auth(&self) -> bool {
        self.options.tokens.is_some()
    }

    /// Whether the storage is open (`/readyz` answers 200).
    pub fn is_ready(&self) -> bool {
        self.storage.get().is_some()
    }

    fn storage(&self) -> std::result::Result<Arc<dyn Storage>, ApiError> {
        self.storage
            .get()
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the storage is not open yet; retry shortly"))
    }

    /// The study by name (joined once, then cached).
    fn study(&self, storage: &Arc<dyn Storage>, name: &str) -> Result<Arc<SharedStudy>> {
        if let Some(s) = self.studies.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(s.clone());
        }
        let joined = Arc::new(SharedStudy::join(name, storage.clone(), self.options.base_dir.clone())?);
        self.studies.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), joined.clone());
        Ok(joined)
    }
}

/// The whole application: routes, auth, body limit, timeout. The one
/// foreign type of the library's API, on purpose: an `axum::Router`, so a
/// program can serve it itself or nest it into its own axum application.
pub fn router(state: Arc<AppState>) -> Router {
    let (routes, _) = api::routes().split_for_parts();
    routes
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route; see /v1/openapi.json") })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("this route does not take {method}; see /v1/openapi.json for its methods"),
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .layer(DefaultBodyLimit::max(state.options.body_limit))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// The OpenAPI document, as served at `/v1/openapi.json` and checked into the
/// repository as `openapi.json`.
pub(crate) fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api::routes().split_for_parts().1;
    // After the routes are in: the document's own modifiers run before them.
    utoipa::Modify::modify(&openapi::CommonResponses, &mut doc);
    doc
}

/// The OpenAPI document as the text of the checked-in `openapi.json`.
pub fn openapi_json() -> String {
    let mut text = openapi().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

async fn time_limit(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let limit = state.options.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {} s and was abandoned; retry it", limit.as_secs_f64()),
        )
        .into_response(),
    }
}

async fn authenticate(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(tokens) = &state.options.tokens else { return next.run(req).await };
    if req.uri().path() == OPEN_PATH {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let ok = given.is_some_and(|g| {
        // Every token is compared, each in constant time, so the time taken
        // says nothing about which one (or which prefix) matched.
        tokens.iter().fold(false, |acc, t| acc | constant_time_eq(g.as_bytes(), t.as_bytes()))
    });
    if ok {
        return next.run(req).await;
    }
    let mut resp = ApiError::new(
        StatusCode::UNAUTHORIZED,
        if given.is_some() {
            "the bearer token is not valid"
        } else {
            "missing `Authorization: Bearer <token>` header"
        },
    )
    .into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// Equal bytes, compared in constant time (the `subtle` crate; a length
/// mismatch is answered at once, which reveals only the length).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    bool::from(subtle::ConstantTimeEq::ct_eq(a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_exactly() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }
}
