//! The Flight face's side of [`crate::auth::gate`]: the caller of a gRPC request (its
//! `authorization` metadata and peer address), and a [`Refusal`] as a gRPC status:
//! - unauthenticated → `UNAUTHENTICATED`;
//! - outside the token's scopes → `PERMISSION_DENIED`;
//! - over a limit → `RESOURCE_EXHAUSTED`, with `retry-after-ms` in the metadata;
//! - a handshake on a daemon without tokens → `FAILED_PRECONDITION`.

pub use crate::auth::gate::{Caller, Gate, Refusal};
use tonic::metadata::MetadataMap;
use tonic::{Request, Status};

/// The metadata key of a refusal's retry hint, in milliseconds.
pub const RETRY_AFTER_KEY: &str = "retry-after-ms";

/// The caller of `req`, counted against its request rate.
pub fn caller<T>(gate: &Gate, req: &Request<T>, rpc: &str) -> Result<Caller, Status> {
    let peer = req
        .remote_addr()
        .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string());
    Ok(gate.caller(authorization(req.metadata()), &peer, rpc)?)
}

/// The Flight handshake: Basic in, the bearer token out.
pub fn handshake(gate: &Gate, metadata: &MetadataMap) -> Result<String, Status> {
    Ok(gate.exchange_basic(authorization(metadata))?)
}

fn authorization(metadata: &MetadataMap) -> Option<&str> {
    metadata.get("authorization").and_then(|v| v.to_str().ok())
}

impl From<Refusal> for Status {
    fn from(r: Refusal) -> Status {
        let retry = r.retry_after();
        let msg = r.to_string();
        let mut s = match r {
            Refusal::Unauthenticated(_) => Status::unauthenticated(msg),
            Refusal::Denied(_) => Status::permission_denied(msg),
            Refusal::Exhausted { .. } => Status::resource_exhausted(msg),
            Refusal::NoTokens => Status::failed_precondition(msg),
        };
        if let Some(v) = retry.and_then(|d| d.as_millis().to_string().parse().ok()) {
            s.metadata_mut().insert(RETRY_AFTER_KEY, v);
        }
        s
    }
}
