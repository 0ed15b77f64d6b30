//! `POST /rpc`: MarketStore's `DataService` methods, each a thin adapter over the
//! [`Service`]: decode the params, check the caller's scope per dataset, call the
//! service on the blocking pool inside the [`crate::transport::Boundary`], encode the
//! reply in MarketStore's shape.

use super::columns::{self, Dataset};
use super::names::{self, Tbk};
use super::wire::{
    Codec, Head, Reply, WithParams, ERR_INVALID_REQUEST, ERR_NO_METHOD, ERR_PARSE, ERR_SERVER,
};
use super::{buckets, VERSION};
use crate::auth::gate::Caller;
use crate::auth::Operation;
use crate::service::{Service, ServiceError};
use crate::transport::http::face::{refusal_response, HttpState};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::time::{MAX_NS, MIN_NS};
use ringfeed_client::TimeSpec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// Why a call failed: an RPC error object, answered with `status` (200 for every
/// failure MarketStore itself reports; the face's own refusals keep theirs).
pub struct Failure {
    pub(super) status: StatusCode,
    headers: HeaderMap,
    code: i32,
    pub(super) message: String,
}

impl Failure {
    fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
            code,
            message: message.into(),
        }
    }

    pub(super) fn server(message: impl Into<String>) -> Self {
        Self::new(ERR_SERVER, message)
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Self::server(e.message)
    }
}

impl From<crate::auth::gate::Refusal> for Failure {
    fn from(r: crate::auth::gate::Refusal) -> Self {
        let message = r.to_string();
        let resp = refusal_response(r);
        Self {
            status: resp.status(),
            headers: resp.headers().clone(),
            code: ERR_SERVER,
            message,
        }
    }
}

/// The reply to every `/rpc` request, with MarketStore's version header.
fn answer(codec: Codec, status: StatusCode, mut headers: HeaderMap, body: Vec<u8>) -> Response {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(codec.content_type()),
    );
    headers.insert("marketstore-version", HeaderValue::from_static(VERSION));
    (status, headers, body).into_response()
}

fn failed(codec: Codec, id: Option<serde_json::Value>, f: Failure) -> Response {
    let body = codec.encode(&Reply::<()>::error(id, f.code, f.message));
    answer(codec, f.status, f.headers, body)
}

/// `HEAD`/`GET /rpc`: 405 (POST only), with the version header, which
/// pymarketstore's `server_version()` reads from a `HEAD`.
pub async fn not_post() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [("marketstore-version", VERSION), ("allow", "POST")],
        "rpc: POST method required\n",
    )
        .into_response()
}

/// `POST /rpc`.
pub async fn rpc(
    State(state): State<HttpState>,
    Extension(caller): Extension<Arc<Caller>>,
    req: Request,
) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let Some(codec) = Codec::of(&content_type) else {
        state.boundary.bad_request();
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [("marketstore-version", VERSION)],
            format!("rpc: unrecognized Content-Type {content_type:?}: send application/x-msgpack or application/json\n"),
        )
            .into_response();
    };
    let limit = state.service.config().max_append_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_big = || {
        Failure::new(
            ERR_INVALID_REQUEST,
            format!("the request body is larger than this daemon's max_append_bytes ({limit} bytes): write fewer rows per call"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    };
    if declared.is_some_and(|n| n > limit) {
        state.boundary.bad_request();
        return failed(codec, None, too_big());
    }
    let Some(_budget) = state.boundary.reserve_payload(declared.unwrap_or(limit)) else {
        return failed(
            codec,
            None,
            Failure::server("the daemon holds as many request bodies as it may (max_inflight_bytes); retry shortly")
                .with_status(StatusCode::SERVICE_UNAVAILABLE),
        );
    };
    let body = match axum::body::to_bytes(
        req.into_body(),
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await
    {
        Ok(b) => b,
        Err(_) => {
            state.boundary.bad_request();
            return failed(codec, None, too_big());
        }
    };
    let head: Head = match codec.decode(&body) {
        Ok(h) => h,
        Err(e) => {
            state.boundary.bad_request();
            return failed(
                codec,
                None,
                Failure::new(
                    ERR_PARSE,
                    format!("the body is not a msgpack-RPC request: {e}"),
                ),
            );
        }
    };
    let id = head.id.clone();
    if head.jsonrpc.as_deref() != Some("2.0") {
        state.boundary.bad_request();
        return failed(
            codec,
            id,
            Failure::new(ERR_INVALID_REQUEST, "jsonrpc must be 2.0"),
        );
    }
    let method = head.method.unwrap_or_default();
    let c = Call {
        state: state.clone(),
        caller,
        codec,
        body,
        id: id.clone(),
    };
    let reply = match method.as_str() {
        "DataService.Query" => c.run(query).await,
        "DataService.ListSymbols" => c.run(list_symbols).await,
        "DataService.Write" => c.run(buckets::write).await,
        "DataService.Create" => c.run(buckets::create).await,
        "DataService.Destroy" => c.run(buckets::destroy).await,
        "DataService.GetInfo" => c.run(buckets::get_info).await,
        m => Err(Failure::new(
            ERR_NO_METHOD,
            format!("rpc: can't find method {m:?}: ringfeed serves DataService.Query, ListSymbols, Write, Create, Destroy and GetInfo"),
        )),
    };
    match reply {
        // A notification (no id) gets no body, as MarketStore answers it.
        Ok(_) if id.is_none() => answer(codec, StatusCode::OK, HeaderMap::new(), Vec::new()),
        Ok(body) => answer(codec, StatusCode::OK, HeaderMap::new(), body),
        Err(f) => {
            if f.code != ERR_SERVER {
                state.boundary.bad_request();
            }
            failed(codec, id, f)
        }
    }
}

/// One call: what every method needs.
struct Call {
    state: HttpState,
    caller: Arc<Caller>,
    codec: Codec,
    body: bytes::Bytes,
    id: Option<serde_json::Value>,
}

/// What a method sees, on the blocking pool.
pub(super) struct Ctx<'a> {
    pub(super) service: &'a Service,
    gate: &'a crate::auth::gate::Gate,
    pub(super) caller: &'a Caller,
    pub(super) ohlcv: Option<&'a str>,
}

impl Ctx<'_> {
    pub(super) fn allow(&self, op: Operation<'_>, call: &str) -> Result<(), Failure> {
        self.gate
            .allow(self.caller, op, call)
            .map_err(Failure::from)
    }

    pub(super) fn dataset(&self, group: &str) -> Result<String, Failure> {
        names::dataset_of(group, self.ohlcv).map_err(Failure::server)
    }
}

impl Call {
    /// Decodes the params as `P`, runs `f` on the blocking pool inside the boundary,
    /// encodes its result.
    async fn run<P, R>(self, f: fn(&Ctx<'_>, P) -> Result<R, Failure>) -> Result<Vec<u8>, Failure>
    where
        P: DeserializeOwned + Default + Send + 'static,
        R: Serialize + Send + 'static,
    {
        let params: WithParams<P> = self.codec.decode(&self.body).map_err(|e| {
            Failure::new(
                ERR_INVALID_REQUEST,
                format!("the params do not fit the method: {e}"),
            )
        })?;
        let params = params.params.map(|p| p.0).unwrap_or_default();
        drop(self.body);
        let Call {
            state,
            caller,
            codec,
            id,
            ..
        } = self;
        let boundary = state.boundary.clone();
        let result = tokio::task::spawn_blocking(move || {
            let ctx = Ctx {
                service: &state.service,
                gate: &state.gate,
                caller: &caller,
                ohlcv: state.ohlcv_dataset.as_deref(),
            };
            boundary
                .call(|| f(&ctx, params))
                .map_err(Failure::from)
                .and_then(|r| r)
        })
        .await
        .map_err(|e| Failure::server(format!("the call was cancelled: {e}")))??;
        Ok(codec.encode(&Reply::ok(id, result)))
    }
}

// ---- DataService.Query -------------------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(default)]
struct MultiQueryRequest {
    requests: Vec<QueryRequest>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct QueryRequest {
    is_sqlstatement: bool,
    destination: String,
    epoch_start: Option<i64>,
    epoch_start_nanos: Option<i64>,
    epoch_end: Option<i64>,
    epoch_end_nanos: Option<i64>,
    limit_record_count: Option<i64>,
    limit_from_start: Option<bool>,
    columns: Option<Vec<String>>,
    functions: Option<Vec<String>>,
}

#[derive(Serialize)]
struct MultiQueryResponse {
    responses: Vec<QueryResponse>,
    version: &'static str,
    timezone: &'static str,
}

#[derive(Serialize)]
struct QueryResponse {
    result: Dataset,
}

/// `s` seconds and `ns` nanoseconds as ns, `None` when past the range queries take.
fn instant(s: i64, ns: Option<i64>) -> Option<i64> {
    s.checked_mul(1_000_000_000)?
        .checked_add(ns.unwrap_or(0))
        .filter(|t| (MIN_NS..=MAX_NS).contains(t))
}

fn query(ctx: &Ctx<'_>, req: MultiQueryRequest) -> Result<MultiQueryResponse, Failure> {
    let mut responses = Vec::with_capacity(req.requests.len());
    for r in &req.requests {
        responses.push(QueryResponse {
            result: query_one(ctx, r)?,
        });
    }
    Ok(MultiQueryResponse {
        responses,
        version: VERSION,
        timezone: "UTC",
    })
}

fn query_one(ctx: &Ctx<'_>, r: &QueryRequest) -> Result<Dataset, Failure> {
    if r.is_sqlstatement {
        return Err(Failure::server(
            "SQL statements are not served by ringfeed's MarketStore face: query a destination (SYM/1Min/OHLCV)",
        ));
    }
    if r.functions.as_ref().is_some_and(|f| !f.is_empty()) {
        return Err(Failure::server(
            "query functions are not served by ringfeed's MarketStore face: ask for a timeframe instead (bars are resampled on read)",
        ));
    }
    let tbk = Tbk::parse(&r.destination).map_err(Failure::server)?;
    let dataset = ctx.dataset(&tbk.group)?;
    ctx.allow(Operation::Read(&dataset), "DataService.Query")?;
    let timeframe = names::timeframe_to_rf(&tbk.timeframe).map_err(Failure::server)?;
    let limit = match r.limit_record_count {
        Some(n) if n < 0 => {
            return Err(Failure::server(format!(
                "limit_record_count {n} is negative"
            )))
        }
        Some(0) | None => None,
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let fields = r.columns.as_ref().filter(|c| !c.is_empty()).map(|cols| {
        cols.iter()
            .filter(|c| !matches!(c.as_str(), "Epoch" | "Nanoseconds"))
            .map(|c| names::column_to_rf(c))
            .collect::<Vec<_>>()
    });
    let spec = QuerySpec {
        dataset,
        symbols: if tbk.all_symbols() {
            vec![]
        } else {
            tbk.symbols.clone()
        },
        timeframe: timeframe.clone(),
        // MarketStore's range is inclusive at both ends; ringfeed's end is exclusive.
        start: r
            .epoch_start
            .and_then(|s| instant(s, r.epoch_start_nanos))
            .map(TimeSpec::Nanos),
        end: r
            .epoch_end
            .and_then(|s| instant(s, r.epoch_end_nanos))
            .and_then(|t| t.checked_add(1))
            .map(TimeSpec::Nanos),
        fields,
        limit,
        from_end: !r.limit_from_start.unwrap_or(false),
        ..Default::default()
    };
    let super::super::QueryBatches {
        batches, schema, ..
    } = super::super::query_batches(ctx.service, &spec)?;
    let mut d = columns::from_batches(
        &batches,
        &schema,
        &tbk.timeframe,
        &tbk.group,
        timeframe == "tick",
    )
    .map_err(Failure::server)?;
    // A symbol asked for by name and without rows still gets its (empty) key.
    if !tbk.all_symbols() {
        for s in &tbk.symbols {
            let key = names::reply_key(s, &tbk.timeframe, &tbk.group);
            d.startindex.entry(key.clone()).or_insert(d.length);
            d.lengths.entry(key).or_insert(0);
        }
    }
    Ok(d)
}

// ---- DataService.ListSymbols ---------------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(default)]
struct ListSymbolsRequest {
    format: String,
}

#[derive(Serialize)]
struct ListSymbolsResponse {
    #[serde(rename = "Results")]
    results: Vec<String>,
}

/// Every (dataset, stored timeframes, symbols) the caller may read.
pub(super) fn readable(ctx: &Ctx<'_>) -> Vec<(String, Vec<String>, Vec<String>)> {
    let v = ctx.service.datasets();
    let strings = |x: Option<&serde_json::Value>| -> Vec<String> {
        x.and_then(|a| a.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    v.as_object()
        .map(|m| {
            m.iter()
                .filter(|(name, _)| ctx.caller.may_read(name))
                .map(|(name, e)| {
                    (
                        name.clone(),
                        strings(e.get("timeframes")),
                        strings(e.get("symbols")),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn list_symbols(ctx: &Ctx<'_>, req: ListSymbolsRequest) -> Result<ListSymbolsResponse, Failure> {
    let mut out = BTreeSet::new();
    for (dataset, tfs, symbols) in readable(ctx) {
        let group = names::group_of(&dataset, ctx.ohlcv);
        for s in &symbols {
            if req.format == "tbk" {
                for tf in &tfs {
                    out.insert(format!("{s}/{}/{group}", names::timeframe_to_ms(tf)));
                }
            } else {
                out.insert(s.clone());
            }
        }
    }
    Ok(ListSymbolsResponse {
        results: out.into_iter().collect(),
    })
}
