//! The HTTP face (`[http] listen` / `--http`): one axum router over the [`Service`],
//! with the network faces' auth and limits ([`crate::auth::gate`]) in one middleware.
//!
//! Every route but the web page's static files goes through [`authenticate`]: the
//! caller's bearer token comes from `authorization: Bearer <token>` or, for browsers and
//! websockets (which cannot set headers), an `access_token` query parameter (RFC 6750
//! §2.3). A refusal is answered here, before any handler runs: 401 (no or unknown
//! token), 429 with `Retry-After` (over a limit). Handlers find the [`Caller`] in the
//! request's extensions and check scopes per dataset with [`HttpState::allow`] (403).
//!
//! Routes (each in a module of its own, a thin adapter over the service core):
//! - `GET /metrics`: the service's metrics and the per-principal counters (admin scope
//!   when tokens are configured: the text names every principal);
//! - `POST /rpc`, `GET /ws`: MarketStore's API ([`super::marketstore`]; read, write or
//!   admin scope per method and dataset);
//! - the web page: its files at `/` ([`super::page`], public) and its JSON at `/api/*`
//!   ([`super::api`]); its live bars come from `/ws`.

use super::{metrics_text, PeerAddr, Render};
use crate::auth::gate::{Caller, Gate, Refusal};
use crate::auth::Operation;
use crate::service::Service;
use crate::transport::Boundary;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use std::sync::Arc;

/// What every route of the face shares.
#[derive(Clone)]
pub struct HttpState {
    /// The service core.
    pub service: Arc<Service>,
    /// Connection caps and payload budgets, shared with the other faces.
    pub boundary: Arc<Boundary>,
    /// Tokens, scopes and per-principal limits, shared with the other faces.
    pub gate: Arc<Gate>,
    /// The metrics text (`/metrics`).
    pub render: Render,
    /// `[http] ohlcv_dataset`: the dataset MarketStore's `OHLCV` attribute group names.
    pub ohlcv_dataset: Option<String>,
}

impl HttpState {
    /// `Ok` when `op` is in the caller's scopes; else the refusal as a response (403).
    #[allow(clippy::result_large_err)]
    pub fn allow(&self, c: &Caller, op: Operation<'_>, call: &str) -> Result<(), Response> {
        self.gate.allow(c, op, call).map_err(refusal_response)
    }
}

/// The face's router: the protected routes behind [`authenticate`].
pub fn router(state: HttpState) -> Router {
    let protected = Router::new()
        .route("/metrics", get(metrics))
        .merge(super::marketstore::routes(&state))
        .merge(super::api::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
        .with_state(state);
    Router::new()
        .merge(protected)
        .merge(super::page::public())
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                "no such path: ringfeedd's HTTP face serves the web page at /, /api/*, GET /metrics, POST /rpc and GET /ws\n",
            )
        })
}

/// Middleware: the caller of every protected request, or the refusal.
pub async fn authenticate(
    State(state): State<HttpState>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<PeerAddr>()
        .map_or_else(|| "unknown".to_string(), |p| p.0.ip().to_string());
    let token_param = req.uri().query().and_then(access_token);
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| token_param.map(|t| format!("Bearer {t}")));
    let call = req.uri().path().to_string();
    match state.gate.caller(header.as_deref(), &peer, &call) {
        Ok(c) => {
            req.extensions_mut().insert(Arc::new(c));
            next.run(req).await
        }
        Err(r) => refusal_response(r),
    }
}

/// The `access_token` query parameter, percent-decoded.
fn access_token(query: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find_map(|(k, v)| (k == "access_token").then(|| v.into_owned()))
}

/// A refusal as an HTTP response: 401, 403, 429 (with `Retry-After`, whole seconds,
/// rounded up, and `retry-after-ms`), or 400.
pub fn refusal_response(r: Refusal) -> Response {
    let status = match r {
        Refusal::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
        Refusal::Denied(_) => StatusCode::FORBIDDEN,
        Refusal::Exhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
        Refusal::NoTokens => StatusCode::BAD_REQUEST,
    };
    let mut resp = (status, format!("{r}\n")).into_response();
    if let Some(d) = r.retry_after() {
        let h = resp.headers_mut();
        let secs = d.as_millis().div_ceil(1000).max(1);
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            h.insert(header::RETRY_AFTER, v);
        }
        if let Ok(v) = HeaderValue::from_str(&d.as_millis().to_string()) {
            h.insert(crate::transport::flight::RETRY_AFTER_KEY, v);
        }
    }
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

async fn metrics(State(state): State<HttpState>, Extension(c): Extension<Arc<Caller>>) -> Response {
    if let Err(r) = state.allow(&c, Operation::Admin, "/metrics") {
        return r;
    }
    metrics_text(state.render.clone()).await.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_is_found_and_percent_decoded() {
        assert_eq!(
            access_token("a=1&access_token=x%2By%3D&b=2").as_deref(),
            Some("x+y=")
        );
        assert_eq!(access_token("access_token=abc").as_deref(), Some("abc"));
        assert_eq!(access_token("token=abc"), None);
        assert_eq!(access_token("access_token=%zz%4").as_deref(), Some("%zz%4"));
        assert_eq!(access_token("access_token=é%C3%A9").as_deref(), Some("éé"));
    }
}
