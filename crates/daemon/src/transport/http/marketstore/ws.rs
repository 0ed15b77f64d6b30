//! `GET /ws`: MarketStore's streaming. A client sends `{"streams": ["BTCUSDT/1Min/OHLCV",
//! "*/5Min/*"]}` (msgpack; each part a glob, `/` never matched by `*`), which replaces
//! its streams and is echoed back (`{"error": ...}` if a stream is not
//! `SYMBOL/TIMEFRAME/GROUP`); then it gets `{key: "SYM/1Min/OHLCV", data: {Epoch, Open,
//! ...}}` for every bar appended to a stored timeframe and every rollup bar updated
//! (live topics carry both).
//!
//! One [`Hub`] per HTTP face reads each live topic some client wants once, on a thread
//! of its own ([`crate::transport::live::pump`]), encodes each bar once, and queues it
//! for every client whose streams match, never waiting: a client [`WS_BACKLOG`]
//! messages behind is cut (a close frame, 1008, says why), and the topic goes on.
//! A topic nobody wants any more is let go at its next idle poll. New datasets and
//! timeframes are looked for at each subscribe and every [`RESCAN`].
//!
//! Each client is pinged every [`PING_EVERY`]; one that has not answered a ping within
//! [`PONG_TIMEOUT`], or has read nothing of what is sent to it for as long, is closed
//! (a peer behind a cut network sends no FIN, and would otherwise keep its task and its
//! subscription forever). A client that sends more than [`FLOOD_MESSAGES`] messages or
//! [`FLOOD_BYTES`] bytes in one second is cut with a close frame (1008) saying why.
//! Both are counted (`ringfeed_ws_keepalive_closes_total`, `ringfeed_ws_flood_closes_total`).
//! Tests shorten the keepalive with the environment variable [`KEEPALIVE_ENV`]
//! (`"PING_MS,TIMEOUT_MS"`); it is not meant for production.

use super::names;
use crate::auth::gate::Caller;
use crate::service::Service;
use crate::transport::live::{self, Ended, Flow, Seen};
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use globset::{GlobBuilder, GlobMatcher};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// Messages queued for one websocket client before it is cut.
pub const WS_BACKLOG: usize = 4096;
/// How often the hub looks for topics of new datasets while clients are connected.
pub const RESCAN: Duration = Duration::from_secs(1);
/// Streams one subscribe message may name.
const MAX_STREAMS: usize = 1024;
/// The largest message a client may send.
const MAX_MESSAGE: usize = 64 << 10;
/// How often each client is pinged.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered (or a send unread) before the client is closed:
/// three pings, so one lost on a congested link does not cut a live client.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(60);
/// Messages (of any kind) a client may send per second; a subscribe message replaces
/// every stream at once, so a real client sends a few.
pub const FLOOD_MESSAGES: u32 = 64;
/// Bytes a client may send per second (one largest message).
pub const FLOOD_BYTES: usize = 64 << 10;
/// How long a closing client gets to read its close frame and answer it.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Test-only override of [`PING_EVERY`] and [`PONG_TIMEOUT`]: `"PING_MS,TIMEOUT_MS"`.
pub const KEEPALIVE_ENV: &str = "RINGFEED_WS_KEEPALIVE_MS";

/// [`PING_EVERY`] and [`PONG_TIMEOUT`], or the test override of [`KEEPALIVE_ENV`].
fn keepalive() -> (Duration, Duration) {
    let ms = |v: &str| {
        v.trim()
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .map(Duration::from_millis)
    };
    std::env::var(KEEPALIVE_ENV)
        .ok()
        .and_then(|v| {
            let (p, t) = v.split_once(',')?;
            Some((ms(p)?, ms(t)?))
        })
        .unwrap_or((PING_EVERY, PONG_TIMEOUT))
}

/// One stream pattern: a glob per part of `SYMBOL/TIMEFRAME/GROUP`.
struct Stream {
    symbol: GlobMatcher,
    timeframe: GlobMatcher,
    group: GlobMatcher,
}

impl Stream {
    fn parse(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split('/').collect();
        let [sym, tf, group] = parts[..] else {
            return Err(format!("{s} is an invalid stream"));
        };
        let glob = |p: &str| {
            GlobBuilder::new(p)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("{s} is an invalid stream: {e}"))
        };
        if [sym, tf, group].iter().any(|p| p.is_empty()) {
            return Err(format!("{s} is an invalid stream"));
        }
        Ok(Self {
            symbol: glob(sym)?,
            timeframe: glob(tf)?,
            group: glob(group)?,
        })
    }

    fn wants_topic(&self, t: &Topic) -> bool {
        self.timeframe.is_match(&t.timeframe)
            && (self.group.is_match(&t.group) || self.group.is_match(&t.dataset))
    }
}

/// A live topic as the face shows it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Topic {
    dataset: String,
    /// The ringfeed timeframe (`1m`).
    tf: String,
    /// MarketStore's spelling (`1Min`).
    timeframe: String,
    /// `OHLCV` for `[http] ohlcv_dataset`, else the dataset.
    group: String,
}

struct Client {
    streams: Vec<Stream>,
    caller: Arc<Caller>,
    tx: mpsc::Sender<Bytes>,
    cut: Arc<AtomicBool>,
}

impl Client {
    fn wants(&self, t: &Topic) -> bool {
        self.caller.may_read(&t.dataset) && self.streams.iter().any(|s| s.wants_topic(t))
    }
}

impl Client {
    /// Queues `msg` for this client (`id`); one whose queue is full is marked cut (it
    /// fell behind), and one whose queue is full or gone goes into `cut`.
    fn queue(&self, id: u64, msg: &Bytes, cut: &mut Vec<u64>) {
        match self.tx.try_send(msg.clone()) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.cut.store(true, Ordering::Relaxed);
                cut.push(id);
            }
            Err(TrySendError::Closed(_)) => cut.push(id),
        }
    }
}

#[derive(Default)]
struct State {
    next_id: u64,
    clients: HashMap<u64, Client>,
    /// Topics read now, each with the generation of its reader.
    topics: HashMap<Topic, u64>,
    last_scan: Option<Instant>,
}

/// The websocket clients of one HTTP face and the topics read for them.
pub struct Hub {
    service: Arc<Service>,
    ohlcv: Option<String>,
    state: Mutex<State>,
    /// How often clients are pinged, and how long a ping may go unanswered.
    keepalive: (Duration, Duration),
}

/// A client's place in the hub; leaving drops it.
pub struct Joined {
    hub: Arc<Hub>,
    id: u64,
}

impl Drop for Joined {
    fn drop(&mut self) {
        self.hub.lock().clients.remove(&self.id);
        let m = self.hub.service.metrics();
        m.ws_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Hub {
    /// A hub with no clients.
    pub fn new(service: Arc<Service>, ohlcv: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            service,
            ohlcv,
            state: Mutex::default(),
            keepalive: keepalive(),
        })
    }

    /// The state; a panic under the lock leaves it whole (each change is one step).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| {
            self.state.clear_poison();
            p.into_inner()
        })
    }

    /// Clients now connected.
    pub fn clients(&self) -> usize {
        self.lock().clients.len()
    }

    fn join(
        self: &Arc<Self>,
        caller: Arc<Caller>,
        tx: mpsc::Sender<Bytes>,
        cut: Arc<AtomicBool>,
    ) -> Joined {
        self.service
            .metrics()
            .ws_clients
            .fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        st.next_id += 1;
        let id = st.next_id;
        st.clients.insert(
            id,
            Client {
                streams: Vec::new(),
                caller,
                tx,
                cut,
            },
        );
        Joined {
            hub: self.clone(),
            id,
        }
    }

    /// Replaces client `id`'s streams, then reads every topic they want (blocking).
    fn subscribe(self: &Arc<Self>, id: u64, streams: &[String]) -> Result<(), String> {
        if streams.len() > MAX_STREAMS {
            return Err(format!(
                "{} streams: subscribe to at most {MAX_STREAMS}",
                streams.len()
            ));
        }
        let parsed = streams
            .iter()
            .map(|s| Stream::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(c) = self.lock().clients.get_mut(&id) {
            c.streams = parsed;
        }
        self.scan();
        Ok(())
    }

    /// Looks for new topics if the last look is older than [`RESCAN`] (blocking).
    fn rescan_if_due(self: &Arc<Self>) {
        let due = self.lock().last_scan.is_none_or(|t| t.elapsed() >= RESCAN);
        if due {
            self.scan();
        }
    }

    /// Starts a reader for every stored topic some client wants and none reads yet.
    fn scan(self: &Arc<Self>) {
        let stored = self.service.stored_timeframes(None);
        let mut st = self.lock();
        st.last_scan = Some(Instant::now());
        for t in stored {
            let topic = Topic {
                group: names::group_of(&t.dataset, self.ohlcv.as_deref()),
                timeframe: names::timeframe_to_ms(&t.timeframe),
                dataset: t.dataset,
                tf: t.timeframe,
            };
            if st.topics.contains_key(&topic) || !st.clients.values().any(|c| c.wants(&topic)) {
                continue;
            }
            let reader = self
                .service
                .subscribe(&topic.dataset, &topic.tf)
                .map_err(|e| e.to_string())
                .and_then(|name| {
                    ringfeed_arrow::Reader::open(&name, ringfeed_arrow::StartAt::Next)
                        .map_err(|e| e.to_string())
                });
            let reader = match reader {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(dataset = %topic.dataset, timeframe = %topic.tf, error = %e, "websocket hub: cannot read the live topic");
                    continue;
                }
            };
            st.next_id += 1;
            let generation = st.next_id;
            st.topics.insert(topic.clone(), generation);
            live::pump(
                "ringfeedd-ws-topic",
                reader,
                0,
                self.clone().sink(topic, generation),
            );
        }
    }

    /// The sink of one topic's reader: each batch encoded once, queued for the clients
    /// that want it; a client whose queue is full is cut. Ends when nobody wants it.
    fn sink(
        self: Arc<Self>,
        topic: Topic,
        generation: u64,
    ) -> impl FnMut(Seen) -> Flow + Send + 'static {
        let leaving = Leaving {
            hub: self.clone(),
            topic: topic.clone(),
            generation,
        };
        move |seen| {
            let _held = &leaving;
            let (messages, gap) = match &seen {
                Seen::Batch(b) => (encode(b.record_batch(), &topic), None),
                Seen::Idle => (Vec::new(), None),
                // The hub's reader was lapped: the bars in between are gone from this
                // stream. Every client of the topic is told (and the hub reads on).
                Seen::Lost(missed) => {
                    self.service
                        .metrics()
                        .ws_lost_batches
                        .fetch_add(*missed, Ordering::Relaxed);
                    tracing::warn!(dataset = %topic.dataset, timeframe = %topic.tf, missed, "websocket hub: the live topic lapped its reader; its clients are told bars are missing");
                    let error = format!(
                        "{missed} live batches of {}/{} were lost to this server's reader (a burst faster than it reads): bars are missing from this stream since the last one; query them with /rpc (DataService.Query)",
                        topic.dataset, topic.tf
                    );
                    let notice =
                        rmp_serde::to_vec_named(&ErrorMessage { error }).unwrap_or_default();
                    (Vec::new(), Some(Bytes::from(notice)))
                }
            };
            let mut st = self.lock();
            let wanted: Vec<u64> = st
                .clients
                .iter()
                .filter(|(_, c)| c.wants(&topic))
                .map(|(id, _)| *id)
                .collect();
            if wanted.is_empty() {
                if st.topics.get(&topic) == Some(&generation) {
                    st.topics.remove(&topic);
                }
                return Flow::Stop(Ended::Left);
            }
            let mut cut = Vec::new();
            if let Some(notice) = gap {
                for id in &wanted {
                    if let Some(c) = st.clients.get(id) {
                        c.queue(*id, &notice, &mut cut);
                    }
                }
                for id in cut.drain(..) {
                    st.clients.remove(&id);
                }
            }
            for (symbol, msg) in &messages {
                for id in &wanted {
                    let Some(c) = st.clients.get(id) else {
                        continue;
                    };
                    if !c
                        .streams
                        .iter()
                        .any(|s| s.wants_topic(&topic) && s.symbol.is_match(symbol))
                    {
                        continue;
                    }
                    c.queue(*id, msg, &mut cut);
                }
                // A cut client's sender goes at once: its queue drains, then it ends.
                for id in cut.drain(..) {
                    st.clients.remove(&id);
                }
            }
            Flow::Go
        }
    }
}

/// Forgets a topic's reader when its thread ends, whatever the reason (unless a newer
/// reader of the topic took its place).
struct Leaving {
    hub: Arc<Hub>,
    topic: Topic,
    generation: u64,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let mut st = self.hub.lock();
        if st.topics.get(&self.topic) == Some(&self.generation) {
            st.topics.remove(&self.topic);
            // Lapped or failed while wanted: read it again at the next tick.
            st.last_scan = None;
        }
    }
}

/// One row of a bar batch as MarketStore's `data` map.
struct Row<'a> {
    batch: &'a RecordBatch,
    names: &'a [(usize, String)],
    ts: i64,
    tick: bool,
    row: usize,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.names.len() + 1 + usize::from(self.tick)))?;
        m.serialize_entry("Epoch", &self.ts.div_euclid(1_000_000_000))?;
        if self.tick {
            m.serialize_entry("Nanoseconds", &(self.ts.rem_euclid(1_000_000_000) as i32))?;
        }
        for (i, name) in self.names {
            let c = self.batch.column(*i);
            let r = self.row;
            let null = c.is_null(r);
            macro_rules! num {
                ($t:ty, $z:expr) => {{
                    let v = if null {
                        $z
                    } else {
                        c.as_primitive::<$t>().value(r)
                    };
                    m.serialize_entry(name, &v)?
                }};
            }
            match c.data_type() {
                DataType::Float64 => num!(Float64Type, f64::NAN),
                DataType::Float32 => num!(Float32Type, f32::NAN),
                DataType::Int64 => num!(Int64Type, 0),
                DataType::Int32 => num!(Int32Type, 0),
                DataType::Int16 => num!(Int16Type, 0),
                DataType::Int8 => num!(Int8Type, 0),
                DataType::UInt64 => num!(UInt64Type, 0),
                DataType::UInt32 => num!(UInt32Type, 0),
                DataType::UInt16 => num!(UInt16Type, 0),
                DataType::UInt8 => num!(UInt8Type, 0),
                _ => {}
            }
        }
        m.end()
    }
}

#[derive(Serialize)]
struct Payload<'a> {
    key: &'a str,
    data: Row<'a>,
}

/// Each row of `b` as a `{key, data}` message, with its symbol.
fn encode(b: &RecordBatch, topic: &Topic) -> Vec<(String, Bytes)> {
    let schema = b.schema();
    let names: Vec<(usize, String)> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| super::columns::numpy_of(f.data_type()).is_some() && f.name() != "ts")
        .map(|(i, f)| (i, names::column_to_ms(f.name())))
        .collect();
    let ts = b.column_by_name("ts").and_then(|c| match c.data_type() {
        DataType::Timestamp(..) => {
            Some(c.as_primitive::<TimestampNanosecondType>().values().clone())
        }
        _ => None,
    });
    let symbols = b
        .column_by_name("symbol")
        .and_then(|c| arrow_cast::cast(c, &DataType::Utf8View).ok());
    let (Some(ts), Some(symbols)) = (ts, symbols) else {
        tracing::error!(dataset = %topic.dataset, "a live batch without ts or symbol: not streamed");
        return Vec::new();
    };
    let symbols = symbols.as_string_view();
    let tick = topic.tf == "tick";
    (0..b.num_rows())
        .map(|row| {
            let symbol = symbols.value(row).to_string();
            let key = format!("{symbol}/{}/{}", topic.timeframe, topic.group);
            let p = Payload {
                key: &key,
                data: Row {
                    batch: b,
                    names: &names,
                    ts: ts[row],
                    tick,
                    row,
                },
            };
            let bytes = rmp_serde::to_vec_named(&p).unwrap_or_default();
            (symbol, Bytes::from(bytes))
        })
        .collect()
}

#[derive(Deserialize, Serialize)]
struct Subscribe {
    streams: Vec<String>,
}

#[derive(Serialize)]
struct ErrorMessage {
    error: String,
}

/// `GET /ws`: upgrades, then serves the client until it leaves, is cut, or the daemon stops.
pub async fn upgrade(
    Extension(hub): Extension<Arc<Hub>>,
    Extension(caller): Extension<Arc<Caller>>,
    ws: WebSocketUpgrade,
) -> Response {
    ws.max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve(hub, caller, socket))
}

async fn serve(hub: Arc<Hub>, caller: Arc<Caller>, mut socket: WebSocket) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(WS_BACKLOG);
    let cut = Arc::new(AtomicBool::new(false));
    let joined = hub.join(caller, tx, cut.clone());
    let metrics = hub.service.metrics().clone();
    let (ping_every, pong_timeout) = hub.keepalive;
    let mut tick = tokio::time::interval(RESCAN);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when a ping is unanswered (none while every ping sent was answered).
    let mut unanswered: Option<Instant> = None;
    let mut rate = Rate::new();
    let no_pong = || {
        metrics.ws_keepalive_closes.fetch_add(1, Ordering::Relaxed);
        format!(
            "no pong within {} s of a ping (or nothing read of what was sent): the client is taken as gone",
            pong_timeout.as_secs_f64()
        )
    };
    // Every send is bounded by the pong timeout: a peer that reads nothing for that
    // long is gone (or as good as), and a blocked send would stall the pings too.
    macro_rules! send {
        ($m:expr) => {
            match tokio::time::timeout(pong_timeout, socket.send($m)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break None,
                Err(_) => {
                    let why = no_pong();
                    tracing::info!(reason = %why, "websocket client closed");
                    break None;
                }
            }
        };
    }
    let close: Option<(u16, String)> = loop {
        tokio::select! {
            m = socket.recv() => {
                let m = match m {
                    Some(Ok(m)) => m,
                    None | Some(Err(_)) => break None,
                };
                if let Some(why) = rate.over(&m) {
                    metrics.ws_flood_closes.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(reason = %why, "websocket client cut");
                    break Some((1008, why));
                }
                let text = match m {
                    Message::Binary(b) => b,
                    Message::Text(t) => Bytes::from(t.as_str().to_owned()),
                    Message::Close(_) => break None,
                    Message::Pong(_) => {
                        unanswered = None;
                        continue;
                    }
                    Message::Ping(_) => continue, // answered by the socket
                };
                let reply = match rmp_serde::from_slice::<Subscribe>(&text)
                    .or_else(|_| serde_json::from_slice::<Subscribe>(&text))
                {
                    Ok(sub) => {
                        let (h, id) = (hub.clone(), joined.id);
                        let streams = sub.streams.clone();
                        let r = tokio::task::spawn_blocking(move || h.subscribe(id, &streams)).await;
                        match r {
                            Ok(Ok(())) => rmp_serde::to_vec_named(&sub),
                            Ok(Err(e)) => rmp_serde::to_vec_named(&ErrorMessage { error: e }),
                            Err(e) => rmp_serde::to_vec_named(&ErrorMessage { error: format!("subscribing failed: {e}") }),
                        }
                    }
                    Err(e) => rmp_serde::to_vec_named(&ErrorMessage {
                        error: format!("send {{\"streams\": [\"SYMBOL/TIMEFRAME/GROUP\", ...]}} in msgpack: {e}"),
                    }),
                };
                send!(Message::Binary(reply.unwrap_or_default().into()));
            }
            out = rx.recv() => match out {
                Some(m) => send!(Message::Binary(m)),
                None => {
                    let reason = if cut.load(Ordering::Relaxed) {
                        format!("this client fell {WS_BACKLOG} messages behind and was cut; read faster, or subscribe to fewer streams")
                    } else {
                        "the daemon let this client go".to_string()
                    };
                    break Some((1008, reason));
                }
            },
            _ = ping.tick() => {
                if unanswered.is_some_and(|t| t.elapsed() >= pong_timeout) {
                    break Some((1001, no_pong()));
                }
                unanswered.get_or_insert_with(Instant::now);
                send!(Message::Ping(Bytes::new()));
            }
            _ = tick.tick() => {
                let h = hub.clone();
                let _ = tokio::task::spawn_blocking(move || h.rescan_if_due()).await;
            }
        }
    };
    drop(joined);
    if let Some((code, reason)) = close {
        close_with(socket, code, reason).await;
    }
}

/// Sends a close frame saying why, then reads (and drops) what the client still sends
/// until it answers the close or [`CLOSE_GRACE`] passes: closing with its data unread
/// would reset the connection, and the close frame could be lost.
async fn close_with(mut socket: WebSocket, code: u16, reason: String) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if socket.send(frame).await.is_ok() {
            while let Some(Ok(m)) = socket.recv().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        }
    })
    .await;
}

/// What one client sent in the current second.
struct Rate {
    since: Instant,
    messages: u32,
    bytes: usize,
}

impl Rate {
    fn new() -> Self {
        Self {
            since: Instant::now(),
            messages: 0,
            bytes: 0,
        }
    }

    /// Counts `m`; why the client is cut if this second is now over a bound.
    fn over(&mut self, m: &Message) -> Option<String> {
        if self.since.elapsed() >= Duration::from_secs(1) {
            *self = Self::new();
        }
        self.messages += 1;
        self.bytes += match m {
            Message::Binary(b) | Message::Ping(b) | Message::Pong(b) => b.len(),
            Message::Text(t) => t.len(),
            Message::Close(_) => 0,
        };
        if self.messages > FLOOD_MESSAGES {
            Some(format!("this client sent more than {FLOOD_MESSAGES} messages in one second and was cut; one subscribe message names every stream it wants"))
        } else if self.bytes > FLOOD_BYTES {
            Some(format!("this client sent more than {} KiB in one second and was cut; one subscribe message names every stream it wants", FLOOD_BYTES >> 10))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_glob_each_part_and_never_across_slashes() {
        let t = Topic {
            dataset: "spot".into(),
            tf: "1m".into(),
            timeframe: "1Min".into(),
            group: "OHLCV".into(),
        };
        assert!(Stream::parse("*/*/*").unwrap().wants_topic(&t));
        assert!(Stream::parse("BTC/1Min/OHLCV").unwrap().wants_topic(&t));
        assert!(Stream::parse("BTC/1Min/spot").unwrap().wants_topic(&t));
        assert!(!Stream::parse("BTC/5Min/*").unwrap().wants_topic(&t));
        let s = Stream::parse("BTC*/*/*").unwrap();
        assert!(s.symbol.is_match("BTCUSDT") && !s.symbol.is_match("ETH"));
        for bad in ["BTC/1Min", "a/b/c/d", "//", "BTC/[/x"] {
            assert!(Stream::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn each_bar_is_one_well_formed_message_keyed_by_symbol() {
        use arrow_array::{
            BooleanArray, Float64Array, Int64Array, StringArray, TimestampNanosecondArray,
        };
        let b = RecordBatch::try_from_iter([
            (
                "ts",
                Arc::new(
                    TimestampNanosecondArray::from(vec![60_000_000_000, 61_500_000_000])
                        .with_timezone("UTC"),
                ) as arrow_array::ArrayRef,
            ),
            ("symbol", Arc::new(StringArray::from(vec!["A", "B"])) as _),
            (
                "open",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as _,
            ),
            (
                "trades",
                Arc::new(Int64Array::from(vec![Some(3), None])) as _,
            ),
            (
                "complete",
                Arc::new(BooleanArray::from(vec![true, false])) as _,
            ),
        ])
        .unwrap();
        for (tf, tick) in [("5m", false), ("tick", true)] {
            let t = Topic {
                dataset: "spot".into(),
                tf: tf.into(),
                timeframe: names::timeframe_to_ms(tf),
                group: "OHLCV".into(),
            };
            let msgs = encode(&b, &t);
            assert_eq!(msgs.len(), 2);
            let v: serde_json::Value = rmp_serde::from_slice(&msgs[0].1).unwrap();
            assert_eq!(v["key"], format!("A/{}/OHLCV", t.timeframe));
            assert_eq!(v["data"]["Epoch"], 60);
            assert_eq!(v["data"]["Open"], 1.5);
            assert_eq!(v["data"]["Trades"], 3);
            assert_eq!(v["data"].get("Complete"), None);
            let w: serde_json::Value = rmp_serde::from_slice(&msgs[1].1).unwrap();
            assert_eq!(msgs[1].0, "B");
            assert_eq!(w["data"]["Trades"], 0);
            assert_eq!(w["data"].get("Nanoseconds").is_some(), tick);
            if tick {
                assert_eq!(w["data"]["Nanoseconds"], 500_000_000);
            }
        }
    }
}
