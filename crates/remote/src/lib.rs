//! A `ringfeedd` on another host, over its Arrow Flight face (docs/flight.md): the local
//! client's operations with the same argument types ([`QuerySpec`], [`TimeSpec`],
//! [`InvalidRows`]), a bearer token and TLS.
//!
//! ```no_run
//! use ringfeed_remote::{RemoteClient, RemoteOptions};
//! let mut c = RemoteClient::connect(
//!     "grpc://127.0.0.1:8815",
//!     RemoteOptions { token: Some("...".into()), ..Default::default() },
//! ).unwrap();
//! let q = ringfeed_client::QuerySpec {
//!     dataset: "binance-spot".into(),
//!     symbols: vec!["BTCUSDT".into()],
//!     timeframe: "1h".into(),
//!     ..Default::default()
//! };
//! let batches = c.bars(&q).unwrap();
//! ```
//!
//! Blocking, like [`ringfeed_client::Client`]: each client runs a small tokio runtime of
//! its own. A crate apart from `ringfeed-client` so that the Python wheel and the C++
//! library, which link that one, carry no gRPC code.

use arrow_array::RecordBatch;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::{Action, FlightClient, FlightDescriptor, Ticket};
use futures::{StreamExt, TryStreamExt};
use ringfeed_client::protocol::{ChangesBody, ChangesSince, DeleteBody, WriteDownBody};
use ringfeed_client::{InvalidRows, QuerySpec, ReadyReport, ReplaySpec, TimeSpec};
use std::time::Duration;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// How to reach the daemon.
#[derive(Clone, Debug, Default)]
pub struct RemoteOptions {
    /// A bearer token (`ringfeedd --new-token NAME` makes one).
    pub token: Option<String>,
    /// PEM of the CA that signed the daemon's certificate (`grpc+tls://` URLs).
    pub tls_root_certs: Option<Vec<u8>>,
    /// PEM certificate chain and key of this client, for mutual TLS.
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// The name the daemon's certificate is for, when it is not the URL's host.
    pub tls_domain: Option<String>,
}

/// Why a remote call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// The URL is not `grpc://host:port` or `grpc+tls://host:port`.
    #[error("{0:?} is not a Flight URL: write grpc://host:port or grpc+tls://host:port")]
    Url(String),
    /// The connection could not be made (nothing listens, TLS refused, ...).
    #[error("cannot reach the daemon at {url}: {reason}; is its [flight] listen set, and the port open?")]
    Connect {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The daemon answered with an error: its gRPC code, its message (which says what to
    /// do) and the service's error kind when it sent one.
    #[error("{code:?}: {message}")]
    Status {
        /// The gRPC code (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, ...).
        code: tonic::Code,
        /// The daemon's message.
        message: String,
        /// The service's error kind (`unknown_dataset`, `busy`, ...), when given.
        kind: Option<String>,
    },
    /// An answer this client could not read.
    #[error("unexpected answer from the daemon: {0}")]
    Protocol(String),
    /// The runtime could not start.
    #[error("cannot start the client's runtime: {0}")]
    Runtime(std::io::Error),
}

impl From<FlightError> for RemoteError {
    fn from(e: FlightError) -> Self {
        match e {
            FlightError::Tonic(s) => {
                let kind = s
                    .metadata()
                    .get(ringfeed_client::protocol::ERROR_KIND_METADATA)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                // A transport failure's status says only "transport error"; its cause (a
                // refused certificate, a reset) is in the source chain.
                let mut message = s.message().to_string();
                let mut cause = std::error::Error::source(&s);
                while let Some(c) = cause {
                    let text = c.to_string();
                    if !message.contains(&text) {
                        message.push_str(": ");
                        message.push_str(&text);
                    }
                    cause = c.source();
                }
                RemoteError::Status {
                    code: s.code(),
                    message,
                    kind,
                }
            }
            other => RemoteError::Protocol(other.to_string()),
        }
    }
}

/// A client of one daemon's Flight face.
pub struct RemoteClient {
    rt: tokio::runtime::Runtime,
    flight: FlightClient,
    url: String,
}

impl RemoteClient {
    /// Connects to `url` (`grpc://host:port`, or `grpc+tls://host:port` with
    /// `opts.tls_root_certs`).
    pub fn connect(url: &str, opts: RemoteOptions) -> Result<Self, RemoteError> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("grpc+tls://") {
            (true, r)
        } else if let Some(r) = url
            .strip_prefix("grpc://")
            .or_else(|| url.strip_prefix("grpc+tcp://"))
        {
            (false, r)
        } else {
            return Err(RemoteError::Url(url.into()));
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(RemoteError::Runtime)?;
        let scheme = if tls { "https" } else { "http" };
        let connect_err = |reason: String| RemoteError::Connect {
            url: url.into(),
            reason,
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{rest}"))
            .map_err(|e| connect_err(e.to_string()))?
            .connect_timeout(Duration::from_secs(10));
        if tls {
            let mut cfg = ClientTlsConfig::new();
            if let Some(ca) = &opts.tls_root_certs {
                cfg = cfg.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &opts.client_identity {
                cfg = cfg.identity(Identity::from_pem(cert, key));
            }
            if let Some(d) = &opts.tls_domain {
                cfg = cfg.domain_name(d.clone());
            }
            endpoint = endpoint
                .tls_config(cfg)
                .map_err(|e| connect_err(e.to_string()))?;
        }
        let channel = rt
            .block_on(endpoint.connect())
            .map_err(|e| connect_err(format!("{e:?}")))?;
        let mut flight = FlightClient::new_from_inner(
            FlightServiceClient::new(channel)
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX),
        );
        if let Some(t) = &opts.token {
            flight
                .add_header("authorization", &format!("Bearer {t}"))
                .map_err(|e| connect_err(format!("the token is not valid header text: {e}")))?;
        }
        Ok(RemoteClient {
            rt,
            flight,
            url: url.into(),
        })
    }

    /// The URL this client talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn action(&mut self, kind: &str, body: serde_json::Value) -> Result<Vec<u8>, RemoteError> {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(&body).expect("JSON serialises")
        };
        let flight = &mut self.flight;
        self.rt
            .block_on(async {
                let parts: Vec<bytes::Bytes> = flight
                    .do_action(Action::new(kind, body))
                    .await?
                    .try_collect()
                    .await?;
                Ok::<_, FlightError>(parts.concat())
            })
            .map_err(RemoteError::from)
    }

    fn json<T: serde::de::DeserializeOwned>(
        &mut self,
        kind: &str,
        body: serde_json::Value,
    ) -> Result<T, RemoteError> {
        let bytes = self.action(kind, body)?;
        serde_json::from_slice(&bytes)
            .map_err(|e| RemoteError::Protocol(format!("{kind} answered {e}")))
    }

    /// Whether the daemon answers.
    pub fn ping(&mut self) -> Result<(), RemoteError> {
        self.action("ping", serde_json::Value::Null).map(|_| ())
    }

    /// Datasets, their base and stored timeframes, and symbols (those the token reads).
    pub fn datasets(&mut self) -> Result<serde_json::Value, RemoteError> {
        self.json("datasets", serde_json::Value::Null)
    }

    /// The readiness report of one dataset, or all.
    pub fn ready(&mut self, dataset: Option<&str>) -> Result<ReadyReport, RemoteError> {
        let body = match dataset {
            Some(d) => serde_json::json!({ "dataset": d }),
            None => serde_json::Value::Null,
        };
        self.json("ready", body)
    }

    /// The daemon's metrics as Prometheus text (an admin token).
    pub fn stat(&mut self) -> Result<String, RemoteError> {
        let b = self.action("stat", serde_json::Value::Null)?;
        String::from_utf8(b).map_err(|e| RemoteError::Protocol(e.to_string()))
    }

    /// A query's batches, in order.
    pub fn bars(&mut self, q: &QuerySpec) -> Result<Vec<RecordBatch>, RemoteError> {
        let ticket = serde_json::to_vec(q).expect("a query serialises");
        let flight = &mut self.flight;
        self.rt
            .block_on(async {
                flight
                    .do_get(Ticket::new(ticket))
                    .await?
                    .try_collect::<Vec<RecordBatch>>()
                    .await
            })
            .map_err(RemoteError::from)
    }

    /// Appends `batch` to `dataset` (one append: stored whole or refused whole); the rows
    /// stored once durable. A token with `write` on the dataset.
    pub fn append(
        &mut self,
        dataset: &str,
        batch: &RecordBatch,
        invalid: InvalidRows,
    ) -> Result<u64, RemoteError> {
        let cmd = serde_json::to_vec(&serde_json::json!({"dataset": dataset, "invalid": invalid}))
            .expect("JSON serialises");
        let data = arrow_flight::encode::FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(FlightDescriptor::new_cmd(cmd)))
            .build(futures::stream::iter([Ok(batch.clone())]));
        let flight = &mut self.flight;
        let acks: Vec<arrow_flight::PutResult> = self
            .rt
            .block_on(async { flight.do_put(data).await?.try_collect().await })
            .map_err(RemoteError::from)?;
        let mut rows = 0;
        for a in acks {
            let v: serde_json::Value = serde_json::from_slice(&a.app_metadata)
                .map_err(|e| RemoteError::Protocol(format!("a DoPut ack: {e}")))?;
            rows += v["rows"]
                .as_u64()
                .ok_or_else(|| RemoteError::Protocol(format!("a DoPut ack without rows: {v}")))?;
        }
        Ok(rows)
    }

    /// Deletes base bars of `symbol` (or all) in `[start, end)`; the daemon's summary. An
    /// admin token.
    pub fn delete(
        &mut self,
        dataset: &str,
        symbol: Option<&str>,
        start: TimeSpec,
        end: TimeSpec,
    ) -> Result<String, RemoteError> {
        let body = DeleteBody {
            dataset: dataset.into(),
            symbol: symbol.map(str::to_string),
            start,
            end,
        };
        let v: serde_json::Value =
            self.json("delete", serde_json::to_value(body).expect("JSON"))?;
        Ok(v["text"].as_str().unwrap_or_default().to_string())
    }

    /// The change log of `dataset` from `since` on (at most `limit` entries, capped by
    /// the daemon): what a follower applies besides the live rows. A token with read
    /// scope on the dataset.
    pub fn changes(
        &mut self,
        dataset: &str,
        since: u64,
        limit: Option<usize>,
    ) -> Result<ChangesSince, RemoteError> {
        let body = ChangesBody {
            dataset: dataset.into(),
            since,
            limit,
        };
        self.json("changes", serde_json::to_value(body).expect("JSON"))
    }

    /// Moves finished days to the cold tier now; the daemon's summary. An admin token.
    pub fn write_down(
        &mut self,
        dataset: Option<&str>,
        before: Option<&str>,
        all: bool,
    ) -> Result<String, RemoteError> {
        let body = WriteDownBody {
            dataset: dataset.map(str::to_string),
            before: before.map(str::to_string),
            all,
        };
        let v: serde_json::Value =
            self.json("write_down", serde_json::to_value(body).expect("JSON"))?;
        Ok(v["text"].as_str().unwrap_or_default().to_string())
    }

    /// The stored bars of (dataset, timeframe) from `start` (of `symbols`, empty for all),
    /// then every live batch, with no gap and no duplicate at the seam.
    pub fn replay(
        &mut self,
        dataset: &str,
        timeframe: &str,
        start: TimeSpec,
        symbols: &[String],
    ) -> Result<RemoteReplay, RemoteError> {
        let spec = ReplaySpec {
            dataset: dataset.into(),
            timeframe: timeframe.into(),
            start,
            symbols: symbols.to_vec(),
        };
        let ticket =
            serde_json::to_vec(&serde_json::json!({ "subscribe": spec })).expect("JSON serialises");
        let flight = &mut self.flight;
        let stream = self
            .rt
            .block_on(flight.do_get(Ticket::new(ticket)))
            .map_err(RemoteError::from)?;
        let history_rows = stream
            .headers()
            .get(ringfeed_client::protocol::HISTORY_ROWS_METADATA)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        // The stream is polled on the runtime; batches come through a channel, so a read
        // can wait with a timeout. The task never blocks a worker (an async send): the
        // client's other calls share the runtime while a reader is slow.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let task = self.rt.spawn(async move {
            let mut stream = stream;
            while let Some(item) = stream.next().await {
                let failed = item.is_err();
                if tx.send(item.map_err(RemoteError::from)).await.is_err() || failed {
                    return;
                }
            }
        });
        Ok(RemoteReplay {
            rx,
            task,
            runtime: self.rt.handle().clone(),
            history_rows,
        })
    }
}

/// A remote subscription: history, then live batches ([`RemoteClient::replay`]).
pub struct RemoteReplay {
    rx: tokio::sync::mpsc::Receiver<Result<RecordBatch, RemoteError>>,
    task: tokio::task::JoinHandle<()>,
    runtime: tokio::runtime::Handle,
    history_rows: Option<u64>,
}

impl RemoteReplay {
    /// Rows of the history the daemon sends before the live batches (`None` from a
    /// daemon that does not say): the first this many rows read are history.
    pub fn history_rows(&self) -> Option<u64> {
        self.history_rows
    }

    /// The next batch if one has arrived, without waiting.
    pub fn try_read(&mut self) -> Result<Option<RecordBatch>, RemoteError> {
        match self.rx.try_recv() {
            Ok(r) => r.map(Some),
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => Ok(None),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => {
                Err(RemoteError::Protocol("the subscription ended".into()))
            }
        }
    }

    /// The next batch, waiting up to `timeout`; `Ok(None)` on timeout. The daemon's
    /// status when it ends the subscription (e.g. `ResourceExhausted` for a subscriber
    /// that fell behind), and [`RemoteError::Protocol`] once the stream is over. Blocking:
    /// call it from a thread, not from inside an async runtime.
    pub fn read(&mut self, timeout: Duration) -> Result<Option<RecordBatch>, RemoteError> {
        let rx = &mut self.rx;
        match self
            .runtime
            .block_on(async { tokio::time::timeout(timeout, rx.recv()).await })
        {
            Ok(Some(r)) => r.map(Some),
            Err(_elapsed) => Ok(None),
            Ok(None) => Err(RemoteError::Protocol("the subscription ended".into())),
        }
    }
}

impl Drop for RemoteReplay {
    fn drop(&mut self) {
        self.task.abort(); // cancels the call: the daemon ends the subscription
    }
}
