//! The HTTP API's requests: each line of the input is one request, `METHOD PATH BODY`, to a
//! fresh server on in-memory storage, so one line can create a study and the next ones ask,
//! tell, enqueue and list in it. No request may get a 5xx, and every error must be a JSON
//! object with an `error` string (what a client of the API is promised).
#![no_main]

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Method, Request, header};
use knobs::server::{AppState, ServerOptions, router};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let state = AppState::new(ServerOptions::default());
    state.set_storage(Arc::new(knobs::MemoryStorage::new()));
    let app = router(state);
    runtime().block_on(async {
        for line in text.lines().take(32) {
            let mut parts = line.splitn(3, ' ');
            let (Some(method), Some(path)) = (parts.next(), parts.next()) else { continue };
            let body = parts.next().unwrap_or("").to_string();
            let Ok(method) = Method::from_bytes(method.as_bytes()) else { continue };
            let Ok(request) = Request::builder()
                .method(method.clone())
                .uri(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body))
            else {
                continue;
            };
            let response = app.clone().oneshot(request).await.expect("the router never fails");
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("a whole body");
            let shown = String::from_utf8_lossy(&bytes);
            assert!(status.as_u16() < 500, "{method} {path} answered {status}: {shown}");
            if !status.is_success() {
                let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    panic!("{method} {path} answered {status} with a body that is not JSON ({e}): {shown}")
                });
                assert!(json["error"].is_string(), "{method} {path} answered {status} without an error: {shown}");
            }
        }
    });
});
