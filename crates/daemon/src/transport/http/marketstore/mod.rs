//! MarketStore's HTTP API on the HTTP face, so that pymarketstore and scripts that POST
//! msgpack to `/rpc` work unchanged (docs/marketstore.md):
//! - `POST /rpc` ([`rpc`]): msgpack-RPC 2.0 (`application/x-msgpack`, or JSON) with
//!   `DataService.Query`, `ListSymbols`, `Write`, `Create`, `Destroy`, `GetInfo`;
//! - `GET /ws` ([`ws`]): MarketStore's streaming of every appended and rolled-up bar.
//!
//! The attribute group of a key is the dataset (`OHLCV`: `[http] ohlcv_dataset`); its
//! timeframe is ringfeed's, stored or resampled on read ([`names`]); bars travel as
//! MarketStore's column-bytes dataset ([`columns`]); the envelope is [`wire`].

pub mod buckets;
pub mod columns;
pub mod names;
pub mod rpc;
pub mod wire;
pub mod ws;

use super::face::HttpState;
use axum::routing::{get, post};
use axum::{Extension, Router};

/// What the `Marketstore-Version` header and every reply's `version` say.
pub const VERSION: &str = concat!("ringfeed-", env!("CARGO_PKG_VERSION"));

/// The face's MarketStore routes: `/rpc` and `/ws`, with one websocket [`ws::Hub`].
pub fn routes(state: &HttpState) -> Router<HttpState> {
    let hub = ws::Hub::new(state.service.clone(), state.ohlcv_dataset.clone());
    Router::new()
        .route(
            "/rpc",
            post(rpc::rpc).get(rpc::not_post).head(rpc::not_post),
        )
        .route("/ws", get(ws::upgrade))
        .layer(Extension(hub))
}
