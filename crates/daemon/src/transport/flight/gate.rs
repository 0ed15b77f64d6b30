//! Who calls the Flight face, and whether they may: the bearer token of each call
//! ([`crate::auth::Auth`]), its scopes, the per-principal rate limits
//! ([`crate::auth::limits`]), the Basic-to-bearer handshake, and the audit log.
//!
//! With no `[[auth.tokens]]` configured the face serves loopback only (checked at start)
//! and every caller is `anonymous@<peer ip>`, still rate limited. With tokens, every call
//! but the handshake needs `authorization: Bearer <token>`:
//! - no or an unknown token → `UNAUTHENTICATED`;
//! - a dataset outside the token's scopes → `PERMISSION_DENIED`;
//! - over a limit → `RESOURCE_EXHAUSTED`, with `retry-after-ms` in the metadata.
//!
//! Auth failures and refusals are logged on the `ringfeed::audit` target with the
//! principal (or peer), the call and the reason.

use crate::auth::limits::{Limiter, StreamGuard};
use crate::auth::{Auth, AuthError, Operation, Principal};
use base64::Engine;
use std::sync::Arc;
use std::time::Instant;
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// The metadata key of a refusal's retry hint, in milliseconds.
pub const RETRY_AFTER_KEY: &str = "retry-after-ms";

/// Auth and limits of the Flight face.
pub struct Gate {
    auth: Auth,
    limiter: Arc<Limiter>,
}

/// A call's caller.
pub struct Caller {
    /// The verified principal; `None` when the daemon has no tokens (loopback only).
    pub principal: Option<Arc<Principal>>,
    /// The name limits and logs use: the principal's, or `anonymous@<peer>`.
    pub name: String,
}

impl Caller {
    /// Whether the caller may read `dataset` (for filtering listings; always, without
    /// tokens).
    pub fn may_read(&self, dataset: &str) -> bool {
        self.principal
            .as_ref()
            .is_none_or(|p| p.check(Operation::Read(dataset)).is_ok())
    }
}

impl Gate {
    /// From the daemon's `[auth]` and `[limits]` (validated at start).
    pub fn new(auth: Auth, limiter: Arc<Limiter>) -> Self {
        Gate { auth, limiter }
    }

    /// Whether tokens are required.
    pub fn enabled(&self) -> bool {
        self.auth.is_enabled()
    }

    /// The caller of `req`, counted against its request rate.
    pub fn caller<T>(&self, req: &Request<T>, rpc: &str) -> Result<Caller, Status> {
        let peer = req
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
        let caller = if self.auth.is_enabled() {
            let header = req
                .metadata()
                .get("authorization")
                .and_then(|v| v.to_str().ok());
            match self.auth.verify_header(header) {
                Ok(p) => Caller {
                    name: p.name.clone(),
                    principal: Some(p),
                },
                Err(e) => {
                    tracing::warn!(target: "ringfeed::audit", %peer, rpc, outcome = "unauthenticated", "{e}");
                    return Err(Status::unauthenticated(e.to_string()));
                }
            }
        } else {
            Caller {
                principal: None,
                name: format!("anonymous@{peer}"),
            }
        };
        self.limiter
            .request(&caller.name, Instant::now())
            .map_err(|e| exhausted(&caller.name, rpc, &e))?;
        Ok(caller)
    }

    /// `Ok` when `op` is in the caller's scopes (always, without tokens).
    pub fn allow(&self, c: &Caller, op: Operation<'_>, rpc: &str) -> Result<(), Status> {
        let Some(p) = &c.principal else {
            return Ok(());
        };
        p.check(op).map_err(|e| {
            tracing::warn!(target: "ringfeed::audit", principal = %p.name, rpc, outcome = "denied", "{e}");
            match e {
                AuthError::Denied { .. } => Status::permission_denied(e.to_string()),
                e => Status::unauthenticated(e.to_string()),
            }
        })
    }

    /// A stream of the caller, counted until the guard drops.
    pub fn open_stream(&self, c: &Caller, rpc: &str) -> Result<StreamGuard, Status> {
        self.limiter
            .open_stream(&c.name)
            .map_err(|e| exhausted(&c.name, rpc, &e))
    }

    /// The limiter, for a stream's bytes.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The Flight handshake: `authorization: Basic base64(name:token)` in, the bearer
    /// token out (what pyarrow's `authenticate_basic_token` does). The name must be the
    /// token's principal.
    pub fn handshake(&self, metadata: &MetadataMap) -> Result<String, Status> {
        if !self.auth.is_enabled() {
            return Err(Status::failed_precondition(
                "this daemon has no [[auth.tokens]]: there is nothing to authenticate (it serves loopback only); call the other RPCs directly",
            ));
        }
        let refuse = |why: &str| {
            tracing::warn!(target: "ringfeed::audit", rpc = "handshake", outcome = "unauthenticated", "{why}");
            Status::unauthenticated(why.to_string())
        };
        let basic = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|h| {
                let (scheme, rest) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("basic").then(|| rest.trim())
            })
            .ok_or_else(|| {
                refuse("the handshake needs `authorization: Basic base64(principal:token)`")
            })?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| refuse("the Basic credentials are not base64 of `principal:token`"))?;
        let (name, token) = decoded
            .split_once(':')
            .ok_or_else(|| refuse("the Basic credentials are not `principal:token`"))?;
        let p = self
            .auth
            .verify(token)
            .map_err(|e| refuse(&e.to_string()))?;
        if p.name != name {
            return Err(refuse(&format!(
                "the token is not {name:?}'s: give the principal name its [[auth.tokens]] entry has"
            )));
        }
        tracing::info!(target: "ringfeed::audit", principal = %p.name, rpc = "handshake", outcome = "ok");
        Ok(token.to_string())
    }

    /// Per-principal counters as Prometheus text (appended to `stat` and `/metrics`).
    pub fn counters_text(&self) -> String {
        let counters = self.limiter.counters();
        let metrics: [Metric; 4] = [
            (
                "requests_total",
                "counter",
                "Flight calls let through",
                |c| c.requests,
            ),
            (
                "refused_total",
                "counter",
                "Flight calls refused by a limit",
                |c| c.refused,
            ),
            ("bytes_total", "counter", "Bytes sent over Flight", |c| {
                c.bytes
            }),
            ("streams", "gauge", "Flight streams open", |c| {
                u64::from(c.streams)
            }),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in metrics {
            let name = format!("ringfeed_flight_principal_{name}");
            out.push_str(&format!(
                "# HELP {name} {help}, per principal\n# TYPE {name} {kind}\n"
            ));
            for (who, c) in &counters {
                out.push_str(&format!("{name}{{principal=\"{who}\"}} {}\n", value(c)));
            }
        }
        out
    }
}

/// A per-principal metric: name suffix, Prometheus type, help, and its value.
type Metric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::auth::limits::Counters) -> u64,
);

fn exhausted(who: &str, rpc: &str, e: &crate::auth::limits::LimitError) -> Status {
    tracing::info!(target: "ringfeed::audit", principal = %who, rpc, outcome = "limited", "{e}");
    let mut s = Status::resource_exhausted(e.to_string());
    if let Ok(v) = e.retry_after.as_millis().to_string().parse() {
        s.metadata_mut().insert(RETRY_AFTER_KEY, v);
    }
    s
}
