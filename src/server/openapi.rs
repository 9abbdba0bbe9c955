//! The OpenAPI document's shared parts: the bearer scheme, and the answers any route can give
//! besides its own — 401 without a valid token (every route but `/healthz`), 400 for a bad
//! study name, parameter or body (`/v1`), 413 for a body over the limit (routes that take one),
//! 503 while the storage is not open or when a request outlives the server's timeout — so
//! that a client generated from the document, or a tool that checks answers against it,
//! knows them all.

use utoipa::Modify;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};

/// Declares the `bearer` security scheme the document's `security` names.
pub(super) struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Adds the answers every route shares to each operation that does not document them itself
/// (applied to the whole document, once the routes are in it).
pub(super) struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            for op in ops.into_iter().flatten() {
                // The same rule as the server's `authenticate`.
                if path != super::OPEN_PATH {
                    add(op, "401", "no valid `Authorization: Bearer <token>` header");
                    add(op, "503", "the storage is not open yet, or the request took longer than the server's timeout");
                }
                if path.starts_with("/v1/") {
                    add(op, "400", "an invalid study name, trial number, query parameter or body; `field` names it");
                }
                if op.request_body.is_some() {
                    add(op, "413", "the body is larger than the server accepts");
                }
            }
        }
    }
}

fn add(op: &mut Operation, status: &str, description: &str) {
    op.responses.responses.entry(status.to_string()).or_insert_with(|| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build(),
                )
                .build(),
        )
    });
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_documents_the_answers_it_can_give() {
        let doc = super::super::openapi();
        let mut checked = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.post].into_iter().flatten() {
                let has = |s: &str| op.responses.responses.contains_key(s);
                assert_eq!(has("401"), path != "/healthz", "{path}: 401");
                assert_eq!(has("503"), path != "/healthz", "{path}: 503");
                if path.starts_with("/v1/") {
                    assert!(has("400"), "{path}: 400");
                }
                assert_eq!(has("413"), op.request_body.is_some(), "{path}: 413");
                checked += 1;
            }
        }
        assert!(checked >= 13, "only {checked} operations in the document");
    }
}
