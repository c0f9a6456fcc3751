//! The dashboard's files, embedded in the binary at build time (three.js
//! from npm, see `host/dashboard/package.json`): nothing is loaded from a
//! CDN, and the page runs under a strict content security policy.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../../dashboard/index.html");
const APP: &str = include_str!("../../dashboard/app.js");
const STYLE: &str = include_str!("../../dashboard/style.css");
const THREE: &str = include_str!("../../dashboard/node_modules/three/build/three.module.min.js");

/// The dashboard's policy: its own scripts and styles only; frames only
/// from this server (the artifacts' documents, sandboxed again there).
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// `/` and `/assets/*`.
pub fn router<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", APP) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/assets/three.module.js",
            get(|| async { asset("text/javascript; charset=utf-8", THREE) }),
        )
}
