//! The `FlightService` RPCs: each parses its input ([`super::command`]),
//! calls the [`Service`] on the blocking pool through the [`Boundary`], and
//! encodes the answer. Calls this increment does not serve answer
//! `UNIMPLEMENTED` with what is coming, never a hollow success.

use super::command::{self, Action, CommandError};
use super::gate::{self, Caller, Gate};
use super::status;
use super::stream::{flight_data, OpenResult};
use crate::auth::Operation;
use crate::service::{Service, ServiceError, StoredTimeframe};
use crate::transport::{Boundary, ConnectionSlot, Peer};
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::{
    Action as FlightAction, ActionType, Criteria, Empty, FlightData, FlightDescriptor,
    FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, PollInfo, PutResult,
    SchemaAsIpc, SchemaResult, Ticket,
};
use futures::stream::BoxStream;
use futures::StreamExt;
use ringfeed_client::protocol::QuerySpec;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tonic::{Request, Response, Status, Streaming};

/// The Flight face over one service.
pub struct FlightFace {
    service: Arc<Service>,
    boundary: Arc<Boundary>,
    /// Tokens, scopes, limits, audit.
    gate: Arc<Gate>,
    /// Numbers calls whose peer address is unknown (each its own client).
    unknown_peers: AtomicU64,
}

impl FlightFace {
    /// The face of `service`, within `boundary`'s limits.
    pub fn new(service: Arc<Service>, boundary: Arc<Boundary>, gate: Arc<Gate>) -> Self {
        Self {
            service,
            boundary,
            gate,
            unknown_peers: AtomicU64::new(0),
        }
    }

    /// Every call's way in: its caller (token checked, request rate counted), then a
    /// boundary slot for it.
    fn admit<T>(
        &self,
        req: &Request<T>,
        rpc: &str,
    ) -> Result<(Caller, Arc<ConnectionSlot>), Status> {
        let caller = gate::caller(&self.gate, req, rpc)?;
        Ok((caller, Arc::new(self.enter(req)?)))
    }

    /// A boundary slot for this call, counted against its peer address:
    /// `RESOURCE_EXHAUSTED` when the peer or the daemon is at its limit.
    fn enter<T>(&self, req: &Request<T>) -> Result<ConnectionSlot, Status> {
        let peer = match req.remote_addr() {
            Some(a) => Peer::Ip(a.ip()),
            None => Peer::Unknown(self.unknown_peers.fetch_add(1, Ordering::Relaxed)),
        };
        // A call is busy for its whole life, so the table never picks it to
        // close for a newcomer: nothing to do here.
        let close: crate::transport::Closer = Box::new(|| {});
        // A refusal is counted by the boundary (refused_connections).
        self.boundary.connection(peer, close).map_err(|refused| {
            status(ServiceError::new(
                crate::service::ErrorKind::Busy,
                refused.to_string(),
            ))
        })
    }

    /// Runs `f` over the service on the blocking pool, inside the boundary
    /// (a panic is an `INTERNAL` answer), with `slot` busy meanwhile.
    async fn call<T: Send + 'static>(
        &self,
        slot: &Arc<ConnectionSlot>,
        f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
    ) -> Result<T, Status> {
        run_blocking(&self.service, &self.boundary, slot, f).await
    }

    /// `DoGet` of a subscribe ticket: history, then live (see [`super::subscribe`]).
    async fn subscribe(
        &self,
        caller: Caller,
        slot: Arc<ConnectionSlot>,
        spec: ringfeed_client::ReplaySpec,
    ) -> Result<Response<BoxStream<'static, Result<FlightData, Status>>>, Status> {
        self.gate
            .allow(&caller, Operation::Read(&spec.dataset), "subscribe")?;
        let streaming = self.gate.open_stream(&caller, "subscribe")?;
        let sub = self
            .call(&slot, move |s| super::subscribe::open(s, &spec))
            .await?;
        let slot = Arc::try_unwrap(slot).map_err(|_| {
            status(ServiceError::internal(
                "the call's boundary slot is still shared after the subscription opened",
            ))
        })?;
        // The history holds the call's boundary slot; the live part, a stream of the
        // principal's limits.
        let history_rows = sub.history_rows;
        let history = flight_data(sub.history, slot, self.boundary.clone());
        let data =
            super::subscribe::until_error(history.chain(super::subscribe::live(sub.live)).boxed());
        let mut response = Response::new(throttled(data, &self.gate, caller, streaming));
        response
            .metadata_mut()
            .insert(super::subscribe::HISTORY_ROWS_KEY, history_rows.into());
        Ok(response)
    }

    fn bad(&self, e: CommandError) -> Status {
        self.boundary.bad_request();
        match e {
            CommandError::Bad(e) => status(e),
            CommandError::NotBuilt(m) => Status::unimplemented(m),
            CommandError::Subscribe(_) => {
                Status::invalid_argument("a subscribe ticket is for DoGet only")
            }
        }
    }
}

/// [`FlightFace::call`] for a task that outlives the call's `&self` (a DoPut's).
async fn run_blocking<T: Send + 'static>(
    service: &Arc<Service>,
    boundary: &Arc<Boundary>,
    slot: &Arc<ConnectionSlot>,
    f: impl FnOnce(&Service) -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, Status> {
    let (service, boundary, slot) = (service.clone(), boundary.clone(), slot.clone());
    tokio::task::spawn_blocking(move || {
        slot.busy(true);
        let r = boundary.call(|| f(&service)).and_then(|r| r);
        slot.busy(false);
        r
    })
    .await
    .map_err(|e| {
        status(ServiceError::internal(format!(
            "the call was cancelled: {e}"
        )))
    })?
    .map_err(status)
}

/// The receiving end of a channel as a response stream.
fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> BoxStream<'static, T> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

/// A query answered through the result cache and attached, its hold on the
/// cache already handed to the reader.
fn open_query(service: &Service, q: &QuerySpec) -> Result<OpenResult, ServiceError> {
    let mut session = service.session();
    let answer = service.query(q, &mut session)?;
    let open = OpenResult::open(&answer);
    // Attached (or failed): the reader keeps the result from here.
    drop(session);
    open
}

fn info(
    descriptor: FlightDescriptor,
    schema: &arrow_schema::Schema,
    ticket: Vec<u8>,
    rows: Option<u64>,
    bytes: Option<u64>,
) -> Result<FlightInfo, Status> {
    let n = |v: Option<u64>| v.and_then(|v| i64::try_from(v).ok()).unwrap_or(-1);
    Ok(FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| status(ServiceError::internal(format!("encoding the schema: {e}"))))?
        .with_descriptor(descriptor)
        .with_endpoint(FlightEndpoint::new().with_ticket(Ticket::new(ticket)))
        .with_total_records(n(rows))
        .with_total_bytes(n(bytes))
        .with_ordered(true))
}

fn listed(t: &StoredTimeframe) -> Result<FlightInfo, Status> {
    let q = QuerySpec {
        dataset: t.dataset.clone(),
        timeframe: t.timeframe.clone(),
        ..Default::default()
    };
    info(
        FlightDescriptor::new_path(vec![t.dataset.clone(), t.timeframe.clone()]),
        &t.schema,
        command::ticket(&q),
        t.rows,
        None,
    )
}

/// `data` with its bytes counted against the caller's `bytes_per_s`: a message over the
/// rate waits (the stream slows down; a batch is never cut). The stream guard counts the
/// stream until it ends.
fn throttled(
    data: BoxStream<'static, Result<FlightData, Status>>,
    gate: &Arc<Gate>,
    caller: Caller,
    guard: crate::auth::limits::StreamGuard,
) -> BoxStream<'static, Result<FlightData, Status>> {
    let limiter = gate.limiter().clone();
    let who: Arc<str> = caller.name.into();
    data.then(move |item| {
        let (limiter, who) = (limiter.clone(), who.clone());
        let _counted = &guard;
        async move {
            if let Ok(d) = &item {
                let n = (d.data_header.len() + d.data_body.len()) as u64;
                while let Err(e) = limiter.send(&who, n, std::time::Instant::now()) {
                    tokio::time::sleep(e.retry_after).await;
                }
            }
            item
        }
    })
    .boxed()
}

/// `{dataset: ...}` without the datasets `c` may not read.
fn filter_datasets(c: &Caller, v: &mut serde_json::Value) {
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, _| c.may_read(k));
    }
}

/// A ready report's `datasets` list without those `c` may not read.
fn filter_ready(c: &Caller, v: &mut serde_json::Value) {
    if let Some(list) = v.get_mut("datasets").and_then(|d| d.as_array_mut()) {
        list.retain(|d| {
            d.get("dataset")
                .and_then(|n| n.as_str())
                .is_some_and(|n| c.may_read(n))
        });
    }
}

fn one<T: Send + 'static>(item: T) -> BoxStream<'static, Result<T, Status>> {
    futures::stream::once(async move { Ok(item) }).boxed()
}

fn json(v: &impl serde::Serialize) -> bytes::Bytes {
    serde_json::to_vec(v).expect("serialisable").into()
}

#[tonic::async_trait]
impl FlightService for FlightFace {
    type HandshakeStream = BoxStream<'static, Result<HandshakeResponse, Status>>;
    type ListFlightsStream = BoxStream<'static, Result<FlightInfo, Status>>;
    type DoGetStream = BoxStream<'static, Result<FlightData, Status>>;
    type DoPutStream = BoxStream<'static, Result<PutResult, Status>>;
    type DoActionStream = BoxStream<'static, Result<arrow_flight::Result, Status>>;
    type ListActionsStream = BoxStream<'static, Result<ActionType, Status>>;
    type DoExchangeStream = BoxStream<'static, Result<FlightData, Status>>;

    async fn handshake(
        &self,
        req: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        let token = gate::handshake(&self.gate, req.metadata())?;
        let mut resp = Response::new(one(HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        }));
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::invalid_argument("the token is not valid header text"))?;
        resp.metadata_mut().insert("authorization", bearer);
        Ok(resp)
    }

    async fn list_flights(
        &self,
        req: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let (caller, slot) = self.admit(&req, "list_flights")?;
        let criteria = req.into_inner().expression;
        let dataset =
            match std::str::from_utf8(&criteria) {
                Ok(s) if s.trim().is_empty() => None,
                Ok(s) => Some(s.trim().to_string()),
                Err(_) => return Err(self.bad(CommandError::Bad(ServiceError::bad_request(
                    "ListFlights criteria are a dataset name (UTF-8), or empty for every dataset",
                )))),
            };
        let listed_tfs = self
            .call(&slot, move |s| Ok(s.stored_timeframes(dataset.as_deref())))
            .await?;
        let infos: Vec<Result<FlightInfo, Status>> = listed_tfs
            .iter()
            .filter(|t| caller.may_read(&t.dataset))
            .map(listed)
            .collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(
        &self,
        req: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let (caller, slot) = self.admit(&req, "get_flight_info")?;
        let descriptor = req.into_inner();
        let q = command::descriptor(&descriptor).map_err(|e| self.bad(e))?;
        self.gate
            .allow(&caller, Operation::Read(&q.dataset), "get_flight_info")?;
        let ticket = command::ticket(&q);
        let open = self.call(&slot, move |s| open_query(s, &q)).await?;
        let answer = open.answer();
        let info = info(
            descriptor,
            open.schema(),
            ticket,
            Some(answer.rows),
            Some(answer.bytes),
        )?;
        Ok(Response::new(info))
    }

    async fn poll_flight_info(
        &self,
        _: Request<FlightDescriptor>,
    ) -> Result<Response<PollInfo>, Status> {
        Err(Status::unimplemented(
            "PollFlightInfo is not served: queries answer at once, so use GetFlightInfo",
        ))
    }

    async fn get_schema(
        &self,
        req: Request<FlightDescriptor>,
    ) -> Result<Response<SchemaResult>, Status> {
        let (caller, slot) = self.admit(&req, "get_schema")?;
        let q = command::descriptor(req.get_ref()).map_err(|e| self.bad(e))?;
        self.gate
            .allow(&caller, Operation::Read(&q.dataset), "get_schema")?;
        let open = self.call(&slot, move |s| open_query(s, &q)).await?;
        let schema = SchemaResult::try_from(SchemaAsIpc::new(
            open.schema(),
            &ringfeed_arrow::codec::write_options(),
        ))
        .map_err(|e| status(ServiceError::internal(format!("encoding the schema: {e}"))))?;
        Ok(Response::new(schema))
    }

    async fn do_get(&self, req: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let (caller, slot) = self.admit(&req, "do_get")?;
        let q = match command::query(&req.get_ref().ticket, "ticket") {
            Ok(q) => q,
            Err(CommandError::Subscribe(spec)) => {
                return self.subscribe(caller, slot, *spec).await;
            }
            Err(e) => return Err(self.bad(e)),
        };
        self.gate
            .allow(&caller, Operation::Read(&q.dataset), "do_get")?;
        let streaming = self.gate.open_stream(&caller, "do_get")?;
        let open = self.call(&slot, move |s| open_query(s, &q)).await?;
        // The slot moves into the stream, held until it ends.
        let slot = Arc::try_unwrap(slot).map_err(|_| {
            status(ServiceError::internal(
                "the call's boundary slot is still shared after the query",
            ))
        })?;
        let data = flight_data(open, slot, self.boundary.clone());
        Ok(Response::new(throttled(
            data, &self.gate, caller, streaming,
        )))
    }

    /// Appends: descriptor path `[dataset]` (or a command `{"dataset", "invalid"}`), then
    /// record batches; each batch is one append (validated and stored whole, or refused
    /// whole), acknowledged by a `PutResult` (`{"rows": N, "report": ...}`) once durable.
    /// A refused batch ends the call with its status; the batches acknowledged before it
    /// stay stored.
    async fn do_put(
        &self,
        req: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        let (caller, slot) = self.admit(&req, "do_put")?;
        let mut input = req.into_inner();
        let first = input.message().await?.ok_or_else(|| {
            Status::invalid_argument(
                "DoPut sent nothing: send a descriptor path [dataset], then record batches",
            )
        })?;
        let descriptor = first.flight_descriptor.clone().ok_or_else(|| {
            Status::invalid_argument(
                "DoPut's first message has no descriptor: give the path [dataset]",
            )
        })?;
        let (dataset, invalid) = command::put_target(&descriptor).map_err(|e| self.bad(e))?;
        self.gate
            .allow(&caller, Operation::Write(&dataset), "do_put")?;
        let data = futures::stream::once(async move { Ok(first) })
            .chain(input.map(|r| r.map_err(arrow_flight::error::FlightError::from)));
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(data);
        let (service, boundary) = (self.service.clone(), self.boundary.clone());
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<PutResult, Status>>(2);
        tokio::spawn(async move {
            let _slot = &slot; // held until the last batch is stored
            while let Some(next) = batches.next().await {
                let batch = match next {
                    Ok(b) => b,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::invalid_argument(format!(
                                "DoPut data is not Arrow record batches: {e}"
                            ))))
                            .await;
                        return;
                    }
                };
                let ds = dataset.clone();
                let stored = run_blocking(&service, &boundary, &slot, move |s| {
                    s.append(&ds, &[batch], invalid)
                })
                .await;
                let ack = stored.map(|o| {
                    tracing::info!(target: "ringfeed::audit", principal = %caller.name, rpc = "do_put", dataset = %dataset, rows = o.rows, outcome = "stored");
                    PutResult {
                        app_metadata: json(&serde_json::json!({"rows": o.rows, "report": o.report})),
                    }
                });
                let failed = ack.is_err();
                if tx.send(ack).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream_of(rx)))
    }

    async fn do_exchange(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoExchangeStream>, Status> {
        Err(Status::unimplemented(
            "DoExchange is not served; live subscriptions over Flight are planned as DoGet tickets {\"subscribe\": ...}",
        ))
    }

    async fn do_action(
        &self,
        req: Request<FlightAction>,
    ) -> Result<Response<Self::DoActionStream>, Status> {
        let (caller, slot) = self.admit(&req, "do_action")?;
        let a = req.into_inner();
        let action = command::action(&a.r#type, &a.body).map_err(|e| self.bad(e))?;
        match &action {
            Action::Ready {
                dataset: Some(d), ..
            } => self.gate.allow(&caller, Operation::Read(d), "ready")?,
            Action::Changes(b) => {
                self.gate
                    .allow(&caller, Operation::Read(&b.dataset), "changes")?
            }
            Action::Stat => self.gate.allow(&caller, Operation::Admin, "stat")?,
            Action::Delete(_) => self.gate.allow(&caller, Operation::Admin, "delete")?,
            Action::WriteDown(_) => self.gate.allow(&caller, Operation::Admin, "write_down")?,
            _ => {}
        }
        let boundary = self.boundary.clone();
        let gate = self.gate.clone();
        let body = self
            .call(&slot, move |s| {
                Ok(match action {
                    Action::Ping => json(&serde_json::json!({"ok": true})),
                    Action::Ready { dataset } => {
                        let mut v = serde_json::to_value(s.ready(dataset.as_deref())?)
                            .map_err(|e| ServiceError::internal(e.to_string()))?;
                        filter_ready(&caller, &mut v);
                        json(&v)
                    }
                    Action::Datasets => {
                        let mut v = s.datasets();
                        filter_datasets(&caller, &mut v);
                        json(&v)
                    }
                    Action::Changes(b) => json(&s.changes(&b.dataset, b.since, b.limit)?),
                    Action::Stat => {
                        let mut text = s.stat(boundary.connections());
                        text.push_str(&gate.counters_text());
                        text.into()
                    }
                    Action::Delete(b) => {
                        let o = s.delete(&b.dataset, b.symbol.clone(), &b.start, &b.end)?;
                        tracing::info!(target: "ringfeed::audit", principal = %caller.name, rpc = "delete", dataset = %b.dataset, symbol = ?b.symbol, days = o.days, outcome = "done");
                        json(&serde_json::json!({"days": o.days, "text": o.text}))
                    }
                    Action::WriteDown(b) => {
                        let o = s.write_down(b.dataset.as_deref(), b.before.as_deref(), b.all)?;
                        tracing::info!(target: "ringfeed::audit", principal = %caller.name, rpc = "write_down", dataset = ?b.dataset, rows = o.rows, outcome = "done");
                        json(&serde_json::json!({"rows": o.rows, "bytes": o.bytes, "text": o.text}))
                    }
                })
            })
            .await?;
        Ok(Response::new(one(arrow_flight::Result { body })))
    }

    async fn list_actions(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<Self::ListActionsStream>, Status> {
        let actions: Vec<Result<ActionType, Status>> = command::ACTIONS
            .iter()
            .map(|(name, what)| {
                Ok(ActionType {
                    r#type: name.to_string(),
                    description: what.to_string(),
                })
            })
            .collect();
        Ok(Response::new(futures::stream::iter(actions).boxed()))
    }
}
