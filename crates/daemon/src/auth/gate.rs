//! Who calls a network face, and whether they may — written once for every face
//! (Arrow Flight, HTTP): the bearer token of each call ([`Auth`]), its scopes, the
//! per-principal rate limits ([`super::limits`]), the Basic-to-bearer exchange, and the
//! audit log. A face turns a [`Refusal`] into its own status (gRPC code, HTTP status).
//!
//! With no `[[auth.tokens]]` configured the faces serve loopback only (checked at start)
//! and every caller is `anonymous@<peer ip>`, still rate limited. With tokens, every call
//! needs `authorization: Bearer <token>`:
//! - no or an unknown token → [`Refusal::Unauthenticated`];
//! - a dataset outside the token's scopes → [`Refusal::Denied`];
//! - over a limit → [`Refusal::Exhausted`], with when to retry.
//!
//! Auth failures and refusals are logged on the `ringfeed::audit` target with the
//! principal (or peer), the call and the reason.

use super::limits::{LimitError, Limiter, StreamGuard};
use super::{Auth, AuthError, Operation, Principal};
use base64::Engine;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Auth and limits of the network faces (one per daemon, shared by every face, so a
/// principal's limits count across faces).
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

/// Why a call was refused; each face maps it to its status.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// No, a malformed or an unknown token (gRPC UNAUTHENTICATED, HTTP 401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Outside the principal's scopes (gRPC PERMISSION_DENIED, HTTP 403).
    #[error("{0}")]
    Denied(String),
    /// Over a limit (gRPC RESOURCE_EXHAUSTED, HTTP 429), retry after the given time.
    #[error("{error}")]
    Exhausted {
        /// The limit and the principal.
        error: LimitError,
    },
    /// The exchange is not possible: the daemon has no tokens (gRPC FAILED_PRECONDITION,
    /// HTTP 400).
    #[error("this daemon has no [[auth.tokens]]: there is nothing to authenticate (it serves loopback only); call the other requests directly")]
    NoTokens,
}

impl Refusal {
    /// When a retry can succeed (only for [`Refusal::Exhausted`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::Exhausted { error } => Some(error.retry_after),
            _ => None,
        }
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

    /// The caller presenting `authorization` (the header's value) from `peer`, counted
    /// against its request rate. `call` names the request in the audit log.
    pub fn caller(
        &self,
        authorization: Option<&str>,
        peer: &str,
        call: &str,
    ) -> Result<Caller, Refusal> {
        let caller = if self.auth.is_enabled() {
            match self.auth.verify_header(authorization) {
                Ok(p) => Caller {
                    name: p.name.clone(),
                    principal: Some(p),
                },
                Err(e) => {
                    tracing::warn!(target: "ringfeed::audit", %peer, call, outcome = "unauthenticated", "{e}");
                    return Err(Refusal::Unauthenticated(e.to_string()));
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
            .map_err(|e| exhausted(&caller.name, call, e))?;
        Ok(caller)
    }

    /// `Ok` when `op` is in the caller's scopes (always, without tokens).
    pub fn allow(&self, c: &Caller, op: Operation<'_>, call: &str) -> Result<(), Refusal> {
        let Some(p) = &c.principal else {
            return Ok(());
        };
        p.check(op).map_err(|e| {
            tracing::warn!(target: "ringfeed::audit", principal = %p.name, call, outcome = "denied", "{e}");
            match e {
                AuthError::Denied { .. } => Refusal::Denied(e.to_string()),
                e => Refusal::Unauthenticated(e.to_string()),
            }
        })
    }

    /// A stream of the caller, counted until the guard drops.
    pub fn open_stream(&self, c: &Caller, call: &str) -> Result<StreamGuard, Refusal> {
        self.limiter
            .open_stream(&c.name)
            .map_err(|e| exhausted(&c.name, call, e))
    }

    /// The limiter, for a stream's bytes.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// The Basic-to-bearer exchange: `authorization: Basic base64(name:token)` in, the
    /// bearer token out (what pyarrow's `authenticate_basic_token` does). The name must be
    /// the token's principal.
    pub fn exchange_basic(&self, authorization: Option<&str>) -> Result<String, Refusal> {
        if !self.auth.is_enabled() {
            return Err(Refusal::NoTokens);
        }
        let refuse = |why: &str| {
            tracing::warn!(target: "ringfeed::audit", call = "handshake", outcome = "unauthenticated", "{why}");
            Refusal::Unauthenticated(why.to_string())
        };
        let basic = super::credentials(authorization, "basic").ok_or_else(|| {
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
        tracing::info!(target: "ringfeed::audit", principal = %p.name, call = "handshake", outcome = "ok");
        Ok(token.to_string())
    }

    /// Per-principal counters as Prometheus text (appended to `stat` and `/metrics`).
    pub fn counters_text(&self) -> String {
        let counters = self.limiter.counters();
        let metrics: [Metric; 4] = [
            (
                "requests_total",
                "counter",
                "Network calls let through (Flight and HTTP)",
                |c| c.requests,
            ),
            (
                "refused_total",
                "counter",
                "Network calls refused by a limit",
                |c| c.refused,
            ),
            (
                "bytes_total",
                "counter",
                "Bytes sent over the network faces",
                |c| c.bytes,
            ),
            ("streams", "gauge", "Network streams open", |c| {
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
    fn(&super::limits::Counters) -> u64,
);

fn exhausted(who: &str, call: &str, error: LimitError) -> Refusal {
    tracing::info!(target: "ringfeed::audit", principal = %who, call, outcome = "limited", "{error}");
    Refusal::Exhausted { error }
}
