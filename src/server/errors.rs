//! Errors as the API answers them: JSON `{error, field?, problems?}` with a
//! status that says what happened.

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, ErrorKind, Problem};

/// The body of every error response.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what would be valid.
    pub error: String,
    /// The field path of the (first) offending field, e.g. `space[0].low` or `n`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// Every problem found in a spec, when there are several.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<ProblemBody>)]
    pub problems: Vec<Problem>,
}

/// One problem of a spec.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProblemBody {
    pub path: String,
    pub message: String,
}

/// An error response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, body: ErrorBody { error: error.into(), field: None, problems: Vec::new() } }
    }

    pub fn field(status: StatusCode, field: impl Into<String>, error: impl Into<String>) -> Self {
        let mut e = ApiError::new(status, error);
        e.body.field = Some(field.into());
        e
    }

    pub fn bad_request(field: impl Into<String>, error: impl Into<String>) -> Self {
        ApiError::field(StatusCode::BAD_REQUEST, field, error)
    }

    pub fn internal(error: impl std::fmt::Display) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e.kind() {
            ErrorKind::BadInput => StatusCode::BAD_REQUEST,
            ErrorKind::Refused | ErrorKind::Locked => StatusCode::CONFLICT,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        match e {
            Error::Invalid(p) => {
                let field = p.items.first().map(|i| i.path.clone());
                let error = p.items.iter().map(|i| i.to_string()).collect::<Vec<_>>().join("; ");
                ApiError { status, body: ErrorBody { error, field, problems: p.items } }
            }
            other => {
                if status.is_server_error() {
                    tracing::error!("request failed: {other}");
                }
                ApiError::new(status, other.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

/// A JSON request body: 413 over the size limit, 400 for bad JSON or an
/// unknown or ill-typed field, naming the field's path.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the request body is larger than the server accepts")
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, format!("cannot read the request body: {e}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "the request body is empty; this route takes a JSON object (see /v1/openapi.json)",
            ));
        }
        parse_json(&bytes).map(JsonBody)
    }
}

/// The path's parameters (axum's `Path`), refused as an [`ApiError`] (JSON) rather than with
/// axum's plain-text answer, e.g. for a segment whose percent-encoding is not UTF-8.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(e) => Err(ApiError::bad_request("(path)", format!("the URL's path: {}", e.body_text()))),
        }
    }
}

/// Parse JSON, naming the path of the field that is wrong.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        if inner.is_syntax() || inner.is_eof() {
            return ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {message}"));
        }
        // The path ends at the offending field, an unknown one included; a
        // missing one is named only in serde's message.
        let parent = if path == "." { String::new() } else { path };
        let field = match message.strip_prefix("missing field `").and_then(|m| m.split_once('`')) {
            Some((name, _)) if parent.is_empty() => name.to_string(),
            Some((name, _)) => format!("{parent}.{name}"),
            None if parent.is_empty() => "(body)".to_string(),
            None => parent,
        };
        ApiError::bad_request(&field, format!("{field}: {message}"))
    })?;
    de.end().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))?;
    Ok(value)
}

/// A whole number also when written `3.0`, as JSON Schema's `integer` (what the OpenAPI
/// document declares) allows; serde's integers refuse it.
pub fn whole_number<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<u64>,
{
    use serde::Deserialize;
    use serde::de::Error as _;
    let n = serde_json::Number::deserialize(de)?;
    // Beyond 2^53 a float no longer holds every whole number.
    let exact = (1u64 << 53) as f64;
    let whole =
        n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..=exact).contains(f)).map(|f| f as u64));
    whole
        .and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| D::Error::custom(format!("expected a whole number >= 0 in range, got {n}")))
}

#[cfg(test)]
mod tests {
    use super::whole_number;

    #[derive(serde::Deserialize, Debug)]
    struct Epoch {
        #[serde(deserialize_with = "whole_number")]
        epoch: u32,
    }

    fn parse(text: &str) -> Result<u32, String> {
        serde_json::from_str::<Epoch>(text).map(|e| e.epoch).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_written_as_floats_are_accepted_and_the_rest_refused() {
        assert_eq!(parse(r#"{"epoch": 7}"#), Ok(7));
        assert_eq!(parse(r#"{"epoch": 534485.0}"#), Ok(534485));
        for bad in ["1.5", "-1", "-1.0", "1e300", "5000000000", "\"3\"", "null"] {
            let got = parse(&format!(r#"{{"epoch": {bad}}}"#));
            assert!(got.is_err(), "{bad} was accepted: {got:?}");
        }
        assert!(parse(r#"{"epoch": 1.5}"#).unwrap_err().contains("whole number"));
    }
}
