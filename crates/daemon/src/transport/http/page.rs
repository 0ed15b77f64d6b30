//! The web page's files (docs/web.md): `GET /` and its script, style and chart
//! library, embedded in the daemon at build time, so a single binary serves the page
//! with no files to install beside it.
//!
//! They hold no data, so they are served without a token (every data request the page
//! makes goes through the face's authentication: `/api/*` and `/ws` with the
//! `access_token` the page was opened with). Its libraries from npm (`lightweight-charts`
//! and `@msgpack/msgpack`, pinned in `web/package-lock.json`) are fetched by
//! `scripts/build_web.sh` and embedded by the crate's `build.rs`; a daemon built without
//! them serves the page, whose chart then says to run that script (`/vendor/*` answers
//! 503).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/index.html"));
const APP: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/app.js"));
const NET: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/net.js"));
const OPS: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/ops.js"));
const STYLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/style.css"));
/// The npm libraries; empty when the daemon was built before `scripts/build_web.sh` ran.
const CHART_LIB: &str = include_str!(concat!(env!("OUT_DIR"), "/chart-lib.mjs"));
const MSGPACK_LIB: &str = include_str!(concat!(env!("OUT_DIR"), "/msgpack.min.js"));

/// Whether this build embeds the page's libraries from npm.
pub fn has_libraries() -> bool {
    !CHART_LIB.is_empty() && !MSGPACK_LIB.is_empty()
}

/// The page's routes (public: they hold no data).
pub fn public() -> Router {
    Router::new()
        .route("/", get(|| file(INDEX, "text/html; charset=utf-8")))
        .route(
            "/index.html",
            get(|| file(INDEX, "text/html; charset=utf-8")),
        )
        .route(
            "/app.js",
            get(|| file(APP, "text/javascript; charset=utf-8")),
        )
        .route(
            "/net.js",
            get(|| file(NET, "text/javascript; charset=utf-8")),
        )
        .route(
            "/ops.js",
            get(|| file(OPS, "text/javascript; charset=utf-8")),
        )
        .route("/style.css", get(|| file(STYLE, "text/css; charset=utf-8")))
        .route("/vendor/lightweight-charts.mjs", get(|| library(CHART_LIB)))
        .route("/vendor/msgpack.min.js", get(|| library(MSGPACK_LIB)))
}

async fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The files change only with the daemon: a reload after an upgrade gets them.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn library(body: &'static str) -> Response {
    if body.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "this ringfeedd was built without the web page's libraries: run scripts/build_web.sh (npm ci in web/), then rebuild the daemon\n",
        )
            .into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        body,
    )
        .into_response()
}
