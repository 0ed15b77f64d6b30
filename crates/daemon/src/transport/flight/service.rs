//! The `FlightService` RPCs: each parses its input ([`super::command`]),
//! calls the [`Service`] on the blocking pool through the [`Boundary`], and
//! encodes the answer. Calls this increment does not serve answer
//! `UNIMPLEMENTED` with what is coming, never a hollow success.

use super::command::{self, Action, CommandError};
use super::status;
use super::stream::{flight_data, OpenResult};
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
    /// Numbers calls whose peer address is unknown (each its own client).
    unknown_peers: AtomicU64,
}

impl FlightFace {
    /// The face of `service`, within `boundary`'s limits.
    pub fn new(service: Arc<Service>, boundary: Arc<Boundary>) -> Self {
        Self {
            service,
            boundary,
            unknown_peers: AtomicU64::new(0),
        }
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
        let (service, boundary, slot) = (self.service.clone(), self.boundary.clone(), slot.clone());
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

    fn bad(&self, e: CommandError) -> Status {
        self.boundary.bad_request();
        match e {
            CommandError::Bad(e) => status(e),
            CommandError::NotBuilt(m) => Status::unimplemented(m),
        }
    }
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
        _: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Self::HandshakeStream>, Status> {
        Err(Status::unimplemented(
            "the Flight handshake (Basic user/password for a bearer token) is not built yet; this endpoint has no authentication and serves loopback only (docs/flight.md)",
        ))
    }

    async fn list_flights(
        &self,
        req: Request<Criteria>,
    ) -> Result<Response<Self::ListFlightsStream>, Status> {
        let slot = Arc::new(self.enter(&req)?);
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
        let infos: Vec<Result<FlightInfo, Status>> = listed_tfs.iter().map(listed).collect();
        Ok(Response::new(futures::stream::iter(infos).boxed()))
    }

    async fn get_flight_info(
        &self,
        req: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let slot = Arc::new(self.enter(&req)?);
        let descriptor = req.into_inner();
        let q = command::descriptor(&descriptor).map_err(|e| self.bad(e))?;
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
        let slot = Arc::new(self.enter(&req)?);
        let q = command::descriptor(req.get_ref()).map_err(|e| self.bad(e))?;
        let open = self.call(&slot, move |s| open_query(s, &q)).await?;
        let schema = SchemaResult::try_from(SchemaAsIpc::new(
            open.schema(),
            &ringfeed_arrow::codec::write_options(),
        ))
        .map_err(|e| status(ServiceError::internal(format!("encoding the schema: {e}"))))?;
        Ok(Response::new(schema))
    }

    async fn do_get(&self, req: Request<Ticket>) -> Result<Response<Self::DoGetStream>, Status> {
        let slot = Arc::new(self.enter(&req)?);
        let q = command::query(&req.get_ref().ticket, "ticket").map_err(|e| self.bad(e))?;
        let open = self.call(&slot, move |s| open_query(s, &q)).await?;
        // The slot moves into the stream, held until it ends.
        let slot = Arc::try_unwrap(slot).map_err(|_| {
            status(ServiceError::internal(
                "the call's boundary slot is still shared after the query",
            ))
        })?;
        Ok(Response::new(flight_data(
            open,
            slot,
            self.boundary.clone(),
        )))
    }

    async fn do_put(
        &self,
        _: Request<Streaming<FlightData>>,
    ) -> Result<Response<Self::DoPutStream>, Status> {
        Err(Status::unimplemented(
            "DoPut (appends over Flight) is not built yet: it comes with tokens and write scopes; append through the local socket (`ringfeed append`, or a local client's append)",
        ))
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
        let slot = Arc::new(self.enter(&req)?);
        let a = req.into_inner();
        let action = command::action(&a.r#type, &a.body).map_err(|e| self.bad(e))?;
        let boundary = self.boundary.clone();
        let body = self
            .call(&slot, move |s| {
                Ok(match action {
                    Action::Ping => json(&serde_json::json!({"ok": true})),
                    Action::Ready { dataset } => json(&s.ready(dataset.as_deref())?),
                    Action::Datasets => json(&s.datasets()),
                    Action::Stat => s.stat(boundary.connections()).into(),
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
