//! `DataService.Write`, `Create`, `Destroy` and `GetInfo`: the methods on time buckets
//! (here: datasets and their symbols), in MarketStore's reply shapes.

use super::columns::{self, Dataset};
use super::names::{self, Tbk};
use super::rpc::{readable, Ctx, Failure};
use super::VERSION;
use crate::auth::Operation;
use crate::service::Service;
use axum::http::StatusCode;
use ringfeed_client::time::{MAX_NS, MIN_NS};
use ringfeed_client::{DatasetSpec, InvalidRows, TimeSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

// ---- DataService.Write / Create / Destroy ------------------------------------------------

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct MultiWriteRequest {
    requests: Vec<WriteRequest>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct WriteRequest {
    dataset: Dataset,
    #[allow(dead_code)]
    is_variable_length: bool,
}

#[derive(Serialize)]
struct ServerResponse {
    error: String,
    version: &'static str,
}

impl ServerResponse {
    fn of(r: Result<(), Failure>) -> Self {
        Self {
            error: r.err().map(|f| f.message).unwrap_or_default(),
            version: VERSION,
        }
    }
}

#[derive(Serialize)]
pub(super) struct MultiServerResponse {
    responses: Option<Vec<ServerResponse>>,
}

/// The base timeframe of `dataset`, if it exists.
fn base_of(service: &Service, dataset: &str) -> Option<String> {
    service
        .datasets()
        .get(dataset)
        .and_then(|e| e.get("base"))
        .and_then(|b| b.as_str())
        .map(str::to_string)
}

pub(super) fn write(ctx: &Ctx<'_>, req: MultiWriteRequest) -> Result<MultiServerResponse, Failure> {
    // As MarketStore: a response per failed request only (none: `null`).
    let mut failures = Vec::new();
    for r in &req.requests {
        if let Err(f) = write_one(ctx, &r.dataset) {
            if f.status != StatusCode::OK {
                return Err(f); // the face's refusals end the call
            }
            failures.push(ServerResponse::of(Err(f)));
        }
    }
    Ok(MultiServerResponse {
        responses: (!failures.is_empty()).then_some(failures),
    })
}

fn write_one(ctx: &Ctx<'_>, d: &Dataset) -> Result<(), Failure> {
    for (key, &start) in &d.startindex {
        let len = *d.lengths.get(key).ok_or_else(|| {
            Failure::server(format!("key {key:?} has a startindex but no lengths entry"))
        })?;
        let tbk = Tbk::parse(key).map_err(Failure::server)?;
        let [symbol] = &tbk.symbols[..] else {
            return Err(Failure::server(format!(
                "write key {key:?} must name one symbol"
            )));
        };
        if symbol == "*" {
            return Err(Failure::server(format!(
                "write key {key:?} must name a symbol, not *"
            )));
        }
        let dataset = ctx.dataset(&tbk.group)?;
        ctx.allow(Operation::Write(&dataset), "DataService.Write")?;
        let timeframe = names::timeframe_to_rf(&tbk.timeframe).map_err(Failure::server)?;
        match base_of(ctx.service, &dataset) {
            Some(base) if base == timeframe => {}
            Some(base) => {
                return Err(Failure::server(format!(
                    "{dataset} stores {} bars (its base timeframe) and rolls them up itself: write {symbol}/{}/{} instead",
                    names::timeframe_to_ms(&base),
                    names::timeframe_to_ms(&base),
                    tbk.group
                )))
            }
            None => {
                // MarketStore creates a bucket on first write; here that creates the
                // dataset, so it takes the admin scope.
                ctx.allow(Operation::Admin, "DataService.Write (creating a dataset)")?;
                ctx.service.create_dataset(&DatasetSpec {
                    dataset: dataset.clone(),
                    base: timeframe.clone(),
                    ..Default::default()
                })?;
            }
        }
        let batch = columns::to_batch(d, symbol, start, len).map_err(Failure::server)?;
        ctx.service
            .append(&dataset, &[batch], InvalidRows::Refuse)?;
    }
    Ok(())
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct MultiCreateRequest {
    requests: Vec<CreateRequest>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct CreateRequest {
    key: String,
    column_types: Vec<String>,
    column_names: Vec<String>,
}

pub(super) fn create(
    ctx: &Ctx<'_>,
    req: MultiCreateRequest,
) -> Result<MultiServerResponse, Failure> {
    ctx.allow(Operation::Admin, "DataService.Create")?;
    let responses = req
        .requests
        .iter()
        .map(|r| ServerResponse::of(create_one(ctx, r)))
        .collect();
    Ok(MultiServerResponse {
        responses: Some(responses),
    })
}

fn create_one(ctx: &Ctx<'_>, r: &CreateRequest) -> Result<(), Failure> {
    let tbk = Tbk::parse(&r.key).map_err(Failure::server)?;
    if r.column_names.len() != r.column_types.len() {
        return Err(Failure::server(
            "column_names and column_types must be as many",
        ));
    }
    if let Some(t) = r
        .column_types
        .iter()
        .find(|t| columns::numpy_width(t).is_none())
    {
        return Err(Failure::server(format!("unexpected data type:{t}")));
    }
    let dataset = ctx.dataset(&tbk.group)?;
    let base = names::timeframe_to_rf(&tbk.timeframe).map_err(Failure::server)?;
    ctx.service.create_dataset(&DatasetSpec {
        dataset,
        base,
        ..Default::default()
    })?;
    Ok(())
}

#[derive(Default, Deserialize)]
#[serde(default)]
pub(super) struct MultiKeyRequest {
    requests: Vec<KeyRequest>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct KeyRequest {
    key: String,
}

pub(super) fn destroy(ctx: &Ctx<'_>, req: MultiKeyRequest) -> Result<MultiServerResponse, Failure> {
    ctx.allow(Operation::Admin, "DataService.Destroy")?;
    let responses = req
        .requests
        .iter()
        .map(|r| ServerResponse::of(destroy_one(ctx, &r.key)))
        .collect();
    Ok(MultiServerResponse {
        responses: Some(responses),
    })
}

/// `SYM/TF/GROUP`: every bar of SYM in the dataset (in every timeframe: rollups are
/// the base's); `*/TF/GROUP`: the whole dataset.
fn destroy_one(ctx: &Ctx<'_>, key: &str) -> Result<(), Failure> {
    let tbk = Tbk::parse(key).map_err(Failure::server)?;
    let dataset = ctx.dataset(&tbk.group)?;
    if tbk.all_symbols() {
        ctx.service.drop_dataset(&dataset, true)?;
        return Ok(());
    }
    let known: BTreeSet<String> = readable(ctx)
        .into_iter()
        .filter(|(d, _, _)| *d == dataset)
        .flat_map(|(_, _, s)| s)
        .collect();
    for s in &tbk.symbols {
        if !known.contains(s) {
            return Err(Failure::server(format!(
                "removal of {key} failed: {dataset} holds no symbol {s}"
            )));
        }
        ctx.service.delete(
            &dataset,
            Some(s.clone()),
            &TimeSpec::Nanos(MIN_NS),
            &TimeSpec::Nanos(MAX_NS),
        )?;
    }
    Ok(())
}

// ---- DataService.GetInfo ---------------------------------------------------------------

#[derive(Serialize)]
pub(super) struct MultiGetInfoResponse {
    responses: Vec<GetInfoResponse>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetInfoResponse {
    latest_year: i64,
    time_frame: i64,
    #[serde(rename = "DSV")]
    dsv: Option<Vec<DataShape>>,
    record_type: i8,
    server_resp: ServerResponse,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct DataShape {
    name: String,
    r#type: u8,
}

/// MarketStore's element type numbers (`io.EnumElementType`).
fn element_type(numpy: &str) -> u8 {
    match numpy {
        "f4" => 0,
        "i4" => 1,
        "f8" => 2,
        "i8" => 3,
        "i1" => 5,
        "i2" => 9,
        "u1" => 10,
        "u2" => 11,
        "u4" => 12,
        "u8" => 13,
        _ => 7,
    }
}

pub(super) fn get_info(
    ctx: &Ctx<'_>,
    req: MultiKeyRequest,
) -> Result<MultiGetInfoResponse, Failure> {
    let mut responses = Vec::new();
    for r in &req.requests {
        responses.push(match get_info_one(ctx, &r.key) {
            Ok(x) => x,
            Err(f) if f.status == StatusCode::OK => GetInfoResponse {
                latest_year: 0,
                time_frame: 0,
                dsv: None,
                record_type: 0,
                server_resp: ServerResponse::of(Err(Failure::server(format!(
                    "unable to get info about key {}: {}",
                    r.key, f.message
                )))),
            },
            Err(f) => return Err(f),
        });
    }
    Ok(MultiGetInfoResponse { responses })
}

fn get_info_one(ctx: &Ctx<'_>, key: &str) -> Result<GetInfoResponse, Failure> {
    let tbk = Tbk::parse(key).map_err(Failure::server)?;
    let dataset = ctx.dataset(&tbk.group)?;
    ctx.allow(Operation::Read(&dataset), "DataService.GetInfo")?;
    let timeframe = names::timeframe_to_rf(&tbk.timeframe).map_err(Failure::server)?;
    let stored = ctx.service.stored_timeframes(Some(&dataset));
    let t = stored
        .iter()
        .find(|t| t.timeframe == timeframe)
        .or_else(|| stored.first())
        .ok_or_else(|| Failure::server(format!("no dataset {dataset}")))?;
    let tick = timeframe == "tick";
    let mut dsv = vec![DataShape {
        name: "Epoch".into(),
        r#type: 4,
    }];
    if tick {
        dsv.push(DataShape {
            name: "Nanoseconds".into(),
            r#type: 1,
        });
    }
    let empty: Vec<arrow_array::RecordBatch> = vec![];
    let shape = columns::from_batches(&empty, &t.schema, &tbk.timeframe, &tbk.group, false)
        .map_err(Failure::server)?;
    for (n, ty) in shape.names.iter().zip(&shape.types).skip(1) {
        dsv.push(DataShape {
            name: n.clone(),
            r#type: element_type(ty),
        });
    }
    let latest_year = ctx
        .service
        .ready(Some(&dataset))
        .ok()
        .and_then(|r| r.datasets.into_iter().next())
        .and_then(|d| d.timeframes.into_iter().filter_map(|t| t.last_ts).max())
        .and_then(|ns| {
            ringfeed_client::time::iso(ns)
                .get(..4)
                .and_then(|y| y.parse().ok())
        })
        .unwrap_or(0);
    let time_frame = timeframe
        .parse::<ringfeed_store::Timeframe>()
        .ok()
        .and_then(|t| t.nanos())
        .unwrap_or(0);
    Ok(GetInfoResponse {
        latest_year,
        time_frame,
        dsv: Some(dsv),
        record_type: i8::from(tick),
        server_resp: ServerResponse::of(Ok(())),
    })
}
