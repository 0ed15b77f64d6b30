//! The web page's JSON endpoints: thin adapters over the service core, each a
//! function that parses the query string, checks the caller's scope, calls one
//! [`Service`] method on the blocking pool (through [`Boundary::call`], which turns
//! a panic into an `internal` answer), and encodes the answer.
//!
//! - `GET /api/datasets`: the datasets the caller may read, with their base, stored
//!   timeframes and symbols ([`Service::datasets`]).
//! - `GET /api/bars?dataset=&symbol=&timeframe=&start=&end=&limit=&from_end=&fields=`:
//!   a query through the shared result cache ([`Service::query`], the same path as
//!   every other face), its columns as JSON arrays (`ts` in ms since the epoch).
//! - `GET /api/ops`: the operational snapshot ([`Service::ops`]). Scope: admins see
//!   every topic and the host's other rings; any other caller sees the topics and hot
//!   days of the datasets it may read, and the daemon-wide counters (they name no
//!   dataset).
//!
//! Errors are JSON, `{"error": {"kind", "message"}}`, with the status of the kind
//! ([`status_of`]).

use super::face::HttpState;
use crate::auth::gate::Caller;
use crate::auth::Operation;
use crate::service::{ErrorKind, Service, ServiceError};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::time::TimeSpec;
use serde_json::{json, Map, Value};
use std::sync::Arc;

/// Bars `/api/bars` answers when no `limit` is given (the newest, unless `from_end=false`).
pub const DEFAULT_LIMIT: usize = 5_000;
/// The largest `limit` (per symbol) `/api/bars` takes: a JSON answer is built whole in
/// memory, and a chart gains nothing from more.
pub const MAX_LIMIT: usize = 200_000;

/// The JSON routes (behind the face's authentication).
pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/datasets", get(datasets))
        .route("/api/bars", get(bars))
        .route("/api/ops", get(ops))
}

/// A query string's parameters, percent-decoded, in order.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(uri: &Uri) -> Self {
        Params(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first non-empty value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// `key`, required.
    fn require(&self, key: &str, example: &str) -> Result<&str, ServiceError> {
        self.get(key).ok_or_else(|| {
            ServiceError::bad_request(format!(
                "missing query parameter `{key}` (e.g. {key}={example})"
            ))
        })
    }

    /// The symbols of `symbol=` / `symbols=` (comma lists; none: all).
    fn symbols(&self) -> Vec<String> {
        let items: Vec<&str> = self
            .0
            .iter()
            .filter(|(k, _)| k == "symbol" || k == "symbols")
            .map(|(_, v)| v.as_str())
            .collect();
        ringfeed_client::protocol::symbol_list(&items)
    }
}

/// The one mapping of the service's error kinds to HTTP statuses for this face's JSON.
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::BadRequest | ErrorKind::BadTimeframe => StatusCode::BAD_REQUEST,
        ErrorKind::UnknownDataset | ErrorKind::UnknownSymbol => StatusCode::NOT_FOUND,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::TooManyPending | ErrorKind::Busy => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A service error as a JSON answer.
pub fn error_response(e: ServiceError) -> Response {
    let body = json!({"error": {"kind": e.kind.as_str(), "message": e.message}});
    json_response(status_of(e.kind), &body)
}

/// `value` as a JSON answer with `status`.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        value.to_string(),
    )
        .into_response()
}

/// Runs `f` on the blocking pool, through the boundary (a panic is an `internal`
/// answer), and answers its value as JSON or its error.
async fn blocking_json(
    state: &HttpState,
    f: impl FnOnce(&Service) -> Result<Value, ServiceError> + Send + 'static,
) -> Response {
    let (service, boundary) = (state.service.clone(), state.boundary.clone());
    let r = tokio::task::spawn_blocking(move || boundary.call(|| f(&service)).and_then(|r| r))
        .await
        .unwrap_or_else(|e| {
            Err(ServiceError::internal(format!(
                "the request's task failed: {e}"
            )))
        });
    match r {
        Ok(v) => json_response(StatusCode::OK, &v),
        Err(e) => error_response(e),
    }
}

async fn datasets(
    State(state): State<HttpState>,
    Extension(c): Extension<Arc<Caller>>,
) -> Response {
    blocking_json(&state, move |service| {
        let Value::Object(all) = service.datasets() else {
            return Err(ServiceError::internal(
                "the dataset listing is not an object",
            ));
        };
        let list: Vec<Value> = all
            .into_iter()
            .filter(|(name, _)| c.may_read(name))
            .map(|(name, mut v)| {
                v["name"] = Value::String(name);
                v
            })
            .collect();
        Ok(json!({ "datasets": list }))
    })
    .await
}

/// The query `/api/bars` asks for.
fn bars_spec(p: &Params) -> Result<QuerySpec, ServiceError> {
    let time = |s: &str| match s.parse::<i64>() {
        Ok(i) => TimeSpec::Int(i),
        Err(_) => TimeSpec::Text(s.to_string()),
    };
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(ServiceError::bad_request(format!(
                    "limit={s:?}: give a whole number of bars from 1 to {MAX_LIMIT} (more at once is for the Flight face or the local client)"
                )))
            }
        },
    };
    let from_end = match p.get("from_end") {
        None | Some("true" | "1") => true,
        Some("false" | "0") => false,
        Some(s) => {
            return Err(ServiceError::bad_request(format!(
                "from_end={s:?}: give true (the newest bars, the default) or false (the oldest)"
            )))
        }
    };
    Ok(QuerySpec {
        dataset: p.require("dataset", "binance-spot")?.to_string(),
        symbols: p.symbols(),
        timeframe: p.require("timeframe", "1m")?.to_string(),
        offset: p.get("offset").map(str::to_string),
        start: p.get("start").map(time),
        end: p.get("end").map(time),
        fields: p
            .get("fields")
            .map(|f| f.split(',').map(|s| s.trim().to_string()).collect()),
        limit: Some(limit),
        from_end,
        week_start: p.get("week_start").map(str::to_string),
    })
}

async fn bars(
    State(state): State<HttpState>,
    Extension(c): Extension<Arc<Caller>>,
    uri: Uri,
) -> Response {
    let spec = match bars_spec(&Params::of(&uri)) {
        Ok(s) => s,
        Err(e) => return error_response(e),
    };
    if let Err(r) = state.allow(&c, Operation::Read(&spec.dataset), "/api/bars") {
        return r;
    }
    blocking_json(&state, move |service| read_bars(service, &spec)).await
}

/// A query's answer as JSON columns ([`super::query_batches`]).
fn read_bars(service: &Service, spec: &QuerySpec) -> Result<Value, ServiceError> {
    let super::QueryBatches {
        answer, batches, ..
    } = super::query_batches(service, spec)?;
    Ok(json!({
        "dataset": spec.dataset,
        "timeframe": spec.timeframe,
        "rows": answer.rows,
        "cached": answer.cached,
        "columns": columns(&batches)?,
    }))
}

/// Batches as JSON columns, one array per field across every batch: timestamps as
/// integer ms since the epoch (floored), numbers as JSON numbers (NaN and infinities as
/// `null`), booleans as booleans, everything else as text.
pub fn columns(batches: &[RecordBatch]) -> Result<Map<String, Value>, ServiceError> {
    let mut out = Map::new();
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let cast_err = |name: &str, e: arrow_schema::ArrowError| {
        ServiceError::internal(format!("column {name} as JSON: {e}"))
    };
    for (i, field) in first.schema().fields().iter().enumerate() {
        let mut values = Vec::new();
        for b in batches {
            let col = b.column(i);
            match col.data_type() {
                DataType::Timestamp(unit, _) => {
                    let per_ms: i64 = match unit {
                        TimeUnit::Second => -1_000,
                        TimeUnit::Millisecond => 1,
                        TimeUnit::Microsecond => 1_000,
                        TimeUnit::Nanosecond => 1_000_000,
                    };
                    let ints = arrow_cast::cast(col, &DataType::Int64)
                        .map_err(|e| cast_err(field.name(), e))?;
                    let ints = ints
                        .as_any()
                        .downcast_ref::<arrow_array::Int64Array>()
                        .ok_or_else(|| ServiceError::internal("a cast to Int64 gave no Int64"))?;
                    values.extend(ints.iter().map(|v| match v {
                        Some(v) if per_ms < 0 => json!(v.saturating_mul(-per_ms)),
                        Some(v) => json!(v.div_euclid(per_ms)),
                        None => Value::Null,
                    }));
                }
                DataType::Boolean => {
                    let b = col
                        .as_any()
                        .downcast_ref::<arrow_array::BooleanArray>()
                        .ok_or_else(|| ServiceError::internal("a Boolean column is not one"))?;
                    values.extend(b.iter().map(|v| v.map_or(Value::Null, Value::Bool)));
                }
                t if t.is_numeric() => {
                    let f = arrow_cast::cast(col, &DataType::Float64)
                        .map_err(|e| cast_err(field.name(), e))?;
                    let f = f
                        .as_any()
                        .downcast_ref::<arrow_array::Float64Array>()
                        .ok_or_else(|| {
                            ServiceError::internal("a cast to Float64 gave no Float64")
                        })?;
                    values.extend(f.iter().map(|v| {
                        v.and_then(serde_json::Number::from_f64)
                            .map_or(Value::Null, Value::Number)
                    }));
                }
                _ => {
                    let s = arrow_cast::cast(col, &DataType::Utf8)
                        .map_err(|e| cast_err(field.name(), e))?;
                    let s = s
                        .as_any()
                        .downcast_ref::<arrow_array::StringArray>()
                        .ok_or_else(|| ServiceError::internal("a cast to Utf8 gave no Utf8"))?;
                    values.extend(s.iter().map(|v| v.map_or(Value::Null, |v| json!(v))));
                }
            }
        }
        out.insert(field.name().clone(), Value::Array(values));
    }
    Ok(out)
}

/// Whether the caller holds the admin scope (always, without tokens), asked without
/// logging a refusal: the operations view shows admins more, it refuses no one.
fn is_admin(c: &Caller) -> bool {
    c.principal
        .as_ref()
        .is_none_or(|p| p.check(Operation::Admin).is_ok())
}

async fn ops(State(state): State<HttpState>, Extension(c): Extension<Arc<Caller>>) -> Response {
    let connections = state.boundary.connections();
    blocking_json(&state, move |service| {
        let admin = is_admin(&c);
        let snapshot = service.ops(|d| admin || c.may_read(d));
        let mut v = serde_json::to_value(&snapshot)
            .map_err(|e| ServiceError::internal(format!("the snapshot as JSON: {e}")))?;
        v["connections"] = json!(connections);
        v["admin"] = json!(admin);
        v["host_rings"] = if admin {
            serde_json::to_value(service.host_rings())
                .map_err(|e| ServiceError::internal(format!("the host rings as JSON: {e}")))?
        } else {
            Value::Null
        };
        Ok(v)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Float64Array, StringArray, TimestampNanosecondArray};
    use arrow_schema::{Field, Schema};

    #[test]
    fn columns_are_json_arrays_with_ms_timestamps_and_null_for_nan() {
        let schema = Arc::new(Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("close", DataType::Float64, true),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(
                    TimestampNanosecondArray::from(vec![1_609_459_200_000_000_000, -1])
                        .with_timezone("UTC"),
                ),
                Arc::new(StringArray::from(vec!["A", "B"])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
            ],
        )
        .unwrap();
        let c = columns(&[b.clone(), b]).unwrap();
        assert_eq!(
            c["ts"],
            json!([1_609_459_200_000i64, -1, 1_609_459_200_000i64, -1])
        );
        assert_eq!(c["symbol"], json!(["A", "B", "A", "B"]));
        assert_eq!(c["close"], json!([1.5, null, 1.5, null]));
        assert!(columns(&[]).unwrap().is_empty());
    }

    #[test]
    fn bars_parameters_are_checked_and_defaulted() {
        let p = |q: &str| Params::of(&format!("/api/bars?{q}").parse::<Uri>().unwrap());
        let s = bars_spec(&p("dataset=d&symbol=A%2CB&timeframe=1m")).unwrap();
        assert_eq!(s.symbols, vec!["A", "B"]);
        assert_eq!((s.limit, s.from_end), (Some(DEFAULT_LIMIT), true));
        let s = bars_spec(&p(
            "dataset=d&timeframe=5m&start=1609459200&limit=3&from_end=false",
        ))
        .unwrap();
        assert_eq!(s.start, Some(TimeSpec::Int(1_609_459_200)));
        assert_eq!((s.limit, s.from_end), (Some(3), false));
        for bad in [
            "timeframe=1m",
            "dataset=d",
            "dataset=d&timeframe=1m&limit=0",
            "dataset=d&timeframe=1m&limit=999999999",
            "dataset=d&timeframe=1m&limit=-3",
            "dataset=d&timeframe=1m&from_end=maybe",
        ] {
            let e = bars_spec(&p(bad)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::BadRequest, "{bad}: {e:?}");
        }
    }
}
