//! The control-socket protocol. One frame per message, both directions:
//!
//! ```text
//! u32 LE  header length (≤ 1 MiB)
//! ...     header: one JSON object (`Request` or `Response`)
//! u64 LE  payload length (0 when none; an Arrow IPC stream for `append`)
//! ...     payload
//! ```
//!
//! Every request gets exactly one response: `{"ok": true, ...}` or
//! `{"ok": false, "error": {"kind": "...", "message": "..."}}`. Bulk data never
//! travels over the socket to readers: a query answer names a shared-memory
//! arena that the client maps.

pub use crate::time::TimeSpec;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Largest JSON header accepted.
pub const MAX_HEADER: u32 = 1 << 20;

/// What a client asks.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness.
    Ping,
    /// Metrics, as Prometheus text.
    Stat,
    /// Datasets, their timeframes and symbols.
    Datasets,
    /// Creates a dataset (idempotent: the same settings again is a no-op; other
    /// settings for an existing name are refused). Answers with a `text` summary.
    CreateDataset(DatasetSpec),
    /// Whether the service is ready, and how far each dataset's data goes
    /// (first/last bar per stored timeframe, hot days, symbols). Answers in `data`
    /// as a [`ReadyReport`].
    Ready {
        /// Only this dataset (default: all).
        #[serde(default)]
        dataset: Option<String>,
    },
    /// Whether queries and appends work right now: each subsystem (store
    /// lock, ingest lock, data directory, result cache, topics) checked with a
    /// bounded wait. Answers `ok: true` with a [`HealthReport`] in `data`
    /// (healthy or not: look at `healthy`).
    Health,
    /// Bars into a shared-memory arena.
    Query(QuerySpec),
    /// The client is done with a query arena (it has mapped what it needs).
    Release {
        /// Arena name from the query answer.
        arena: String,
    },
    /// The live topic ring of a dataset and timeframe.
    Subscribe {
        /// Dataset.
        dataset: String,
        /// Timeframe, e.g. "1m" or "5m".
        timeframe: String,
    },
    /// Rows for a dataset's base timeframe; the payload is an Arrow IPC stream.
    /// Every row is checked by the store's row rules (finite prices, high ≥ low,
    /// volume ≥ 0, ts a timestamp on the base timeframe's grid, ...).
    Append {
        /// Dataset.
        dataset: String,
        /// What to do with rows that break a rule (default: refuse the append).
        #[serde(default)]
        invalid: InvalidRows,
    },
    /// History of a topic from a time on, and the seam where live data takes
    /// over. Send after `subscribe` and after opening the topic reader: the
    /// answer's `arena` holds the history, and `seq` is the first topic seq it
    /// does not contain (skip live batches below it).
    Replay(ReplaySpec),
    /// Delete bars of the base timeframe in `[start, end)` (a correction; the rollups
    /// follow). Not published to live topics; cached results it changes are dropped.
    /// Answers with `rows` = the number of days touched.
    Delete {
        /// Dataset.
        dataset: String,
        /// Only this symbol (default: every symbol).
        #[serde(default)]
        symbol: Option<String>,
        /// First timestamp deleted.
        start: TimeSpec,
        /// First timestamp kept after the range.
        end: TimeSpec,
    },
    /// Move finished days of the hot tier into Parquet now (the daemon also does this by
    /// itself after each UTC midnight). Answers with `rows`, `bytes` and a `text` summary.
    WriteDown {
        /// Only this dataset (default: all).
        #[serde(default)]
        dataset: Option<String>,
        /// Days before this UTC date, "YYYY-MM-DD" (default: before today).
        #[serde(default)]
        before: Option<String>,
        /// Every day, today included.
        #[serde(default)]
        all: bool,
    },
    /// Set (or clear) a dataset's retention, then apply it at once: partitions wholly
    /// older than it are dropped (the daemon also applies it at each write-down).
    /// Answers with `rows` = rows dropped and a `text` summary.
    SetRetention {
        /// Dataset.
        dataset: String,
        /// How long rows are kept: "400d", "26w", "2y" (a year is 365 days); none keeps
        /// everything.
        #[serde(default)]
        retention: Option<String>,
        /// How long rollup bars are kept, when longer than `retention`.
        #[serde(default)]
        rollup_retention: Option<String>,
    },
    /// Remove the rows with `ts < before` of `symbol` (default every symbol), in every
    /// stored timeframe, hot and cold; the rollups of the day holding `before` are
    /// recomputed. Cached results it changes are dropped. Answers with `rows` = cold rows
    /// removed and a `text` summary.
    Trim {
        /// Dataset.
        dataset: String,
        /// Only this symbol (default: every symbol).
        #[serde(default)]
        symbol: Option<String>,
        /// First timestamp kept.
        before: TimeSpec,
    },
    /// Remove a dataset and its files; its live topics close and its cached results go.
    /// Refused (`bad_request`, saying what it holds) when it has rows and `yes` is not set.
    /// Answers with `rows` = base rows removed, `bytes` and a `text` summary.
    DropDataset {
        /// Dataset.
        dataset: String,
        /// Drop it even when it holds rows.
        #[serde(default)]
        yes: bool,
    },
}

/// A dataset to create: its base timeframe and rollups.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    /// Name: letters, digits, `-`, `_` and `.`.
    pub dataset: String,
    /// Finest stored timeframe, e.g. "1m" (or "tick").
    pub base: String,
    /// Timeframes rolled up on write, e.g. ["5m", "1h", "1d"]; `[]` for none
    /// (default: the ladder 5m, 15m, 1h, 1d above the base, as `ringfeed ingest`).
    #[serde(default)]
    pub rollups: Option<Vec<String>>,
    /// WAL sync policy: "always" (default), "never" or "every:<ms>".
    #[serde(default)]
    pub fsync: Option<String>,
    /// First day of the week of `1w` bars resampled on read: "mon" (default), "tue",
    /// ..., "sun"; a query may ask for another ([`QuerySpec::week_start`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week_start: Option<String>,
    /// How long rows are kept, e.g. "400d", "26w", "2y" (default: forever).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// How long rollup bars are kept when longer than `retention`, e.g. "10y".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollup_retention: Option<String>,
}

/// What an append does with rows that break the store's row rules.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum InvalidRows {
    /// Store nothing and answer `bad_request` naming the first bad rows (the default:
    /// a bad row is never dropped silently, and nothing is half-stored).
    #[default]
    Refuse,
    /// Store the good rows; the answer's report counts and lists the rejected ones.
    Skip,
    /// Store every readable row; rule-breaking ones are counted and listed as flagged.
    Keep,
}

/// What the store's row rules made of an append.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AppendReport {
    /// Rows received.
    pub rows_read: u64,
    /// Rows stored (flagged ones included).
    pub rows_stored: u64,
    /// Rows rejected (not stored).
    pub rejected: u64,
    /// Rows stored although they break a rule ([`InvalidRows::Keep`]).
    pub flagged: u64,
    /// The first rejected rows: `append:<row>: <reason>` (row numbers 1-based).
    #[serde(default)]
    pub rejects: Vec<String>,
    /// The first flagged rows, same form.
    #[serde(default)]
    pub flags: Vec<String>,
    /// Set when the rows were stored but publishing them to a live topic
    /// failed: what failed. They stay queued in the daemon and reach
    /// subscribers, in order, before the topic's next publication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unpublished: Option<String>,
}

/// The body of a remote `delete` (the Flight face's action; the socket's is
/// [`Request::Delete`]): base bars of `symbol` (or all) in `[start, end)`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Dataset.
    pub dataset: String,
    /// One symbol, or every symbol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symbol: Option<String>,
    /// First instant deleted (the one time grammar).
    pub start: TimeSpec,
    /// First instant kept.
    pub end: TimeSpec,
}

/// The Flight response metadata key of an error's kind (`ErrorKind`'s name): a client
/// tells a refused token from an unknown dataset without parsing the message.
pub const ERROR_KIND_METADATA: &str = "x-ringfeed-error-kind";

/// The Flight response metadata key of a subscription's history rows: what the stream
/// sends before its first live batch.
pub const HISTORY_ROWS_METADATA: &str = "x-ringfeed-history-rows";

/// The body of a remote `changes` action: a dataset's change log from `since` on.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ChangesBody {
    /// Dataset.
    pub dataset: String,
    /// First sequence number wanted (a follower's `next_seq` from its last answer; 0:
    /// the whole log).
    #[serde(default)]
    pub since: u64,
    /// At most this many entries (default and cap: [`CHANGES_LIMIT`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

/// Most entries one `changes` answer holds; ask again from its `next_seq` for more.
pub const CHANGES_LIMIT: usize = 10_000;

/// What a change-log entry asks of a follower.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Rows in the range were inserted or replaced below the symbol's newest bar: copy
    /// the primary's range over the local one.
    Rewrite,
    /// Rows in the range may have been removed (a delete, a trim, merged older entries):
    /// delete the local range, then copy the primary's.
    Remove,
}

/// One entry of a dataset's change log.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Change {
    /// Its sequence number (merged older entries may share one).
    pub seq: u64,
    /// What a follower does with it.
    pub kind: ChangeKind,
    /// One symbol, or (`None`) every symbol.
    pub symbol: Option<String>,
    /// First base-bar instant changed, ns (`i64::MIN`: from the first bar, a trim).
    pub start: i64,
    /// First instant not changed, ns.
    pub end: i64,
}

/// A `changes` answer: the entries of a dataset's change log from `since` on. A
/// primary's store logs every change a follower's resume point would not see (deletes,
/// trims, rows written below a symbol's newest bar) before making it; see
/// docs/scale-out.md.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChangesSince {
    /// The log's identity: a new one when the dataset was dropped and made again (a
    /// follower then copies everything again).
    pub log_id: String,
    /// Entries before it were merged into the first ones returned.
    pub first_seq: u64,
    /// Ask from here next time, once every returned entry is applied.
    pub next_seq: u64,
    /// The entries, in sequence order.
    pub changes: Vec<Change>,
}

/// The body of a remote `write_down` (the socket's is [`Request::WriteDown`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WriteDownBody {
    /// One dataset, or every one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset: Option<String>,
    /// Days before this `YYYY-MM-DD` (default: before today).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// Every day, today's too.
    #[serde(default)]
    pub all: bool,
}

/// A replay request: the history half of `subscribe(..., start=T)`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReplaySpec {
    /// Dataset.
    pub dataset: String,
    /// A live topic's timeframe (the base timeframe or a rollup).
    pub timeframe: String,
    /// First bar of the history (see [`crate::time`]).
    pub start: TimeSpec,
    /// Symbols of the history; empty or `["*"]` means all. Items may hold
    /// comma-separated lists ([`symbol_list`]). The client applies the same
    /// filter to live batches.
    #[serde(default, deserialize_with = "de_symbols")]
    pub symbols: Vec<String>,
}

/// A bars query.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct QuerySpec {
    /// Dataset.
    pub dataset: String,
    /// Symbols; empty or `["*"]` means all. A string or a list; items may hold
    /// comma-separated lists ([`symbol_list`]).
    #[serde(default, deserialize_with = "de_symbols")]
    pub symbols: Vec<String>,
    /// Timeframe: stored, or resampled on read (e.g. "1m", "7m", "1h").
    pub timeframe: String,
    /// Bucket offset for resampling, e.g. "15m".
    #[serde(default)]
    pub offset: Option<String>,
    /// First bar included (see [`crate::time`]).
    #[serde(default)]
    pub start: Option<TimeSpec>,
    /// First bar excluded.
    #[serde(default)]
    pub end: Option<TimeSpec>,
    /// Columns besides ts and symbol.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// At most this many bars per symbol.
    #[serde(default)]
    pub limit: Option<usize>,
    /// Take the limit from the end.
    #[serde(default)]
    pub from_end: bool,
    /// First day of the week for week timeframes ("sun", "mon", ...; default: the
    /// dataset's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub week_start: Option<String>,
}

/// What kind of failure an error answer reports. Every face maps it the same
/// way (a Python exception attribute, a C++ kind, a Flight status code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request is malformed or its arguments are invalid.
    BadRequest,
    /// No such dataset.
    UnknownDataset,
    /// No such symbol in the dataset.
    UnknownSymbol,
    /// The timeframe cannot be parsed, or has no live topic.
    BadTimeframe,
    /// A result or payload is over a configured limit.
    TooLarge,
    /// The client holds too many unreleased results.
    TooManyPending,
    /// The daemon is at its connection limit; retry later.
    Busy,
    /// The store failed (I/O, a full disk, corruption).
    Store,
    /// A shared-memory ring failed.
    Ring,
    /// A bug in the daemon (a caught panic, a broken invariant).
    Internal,
    /// The dataset is followed from another daemon (a follower's copy): write to the
    /// primary the message names, and the follower gets the change from it.
    Followed,
}

impl ErrorKind {
    /// Every kind, for tables and tests.
    pub const ALL: [ErrorKind; 11] = [
        ErrorKind::BadRequest,
        ErrorKind::UnknownDataset,
        ErrorKind::UnknownSymbol,
        ErrorKind::BadTimeframe,
        ErrorKind::TooLarge,
        ErrorKind::TooManyPending,
        ErrorKind::Busy,
        ErrorKind::Store,
        ErrorKind::Ring,
        ErrorKind::Internal,
        ErrorKind::Followed,
    ];

    /// The wire name, e.g. `"unknown_dataset"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::UnknownDataset => "unknown_dataset",
            ErrorKind::UnknownSymbol => "unknown_symbol",
            ErrorKind::BadTimeframe => "bad_timeframe",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::TooManyPending => "too_many_pending",
            ErrorKind::Busy => "busy",
            ErrorKind::Store => "store",
            ErrorKind::Ring => "ring",
            ErrorKind::Internal => "internal",
            ErrorKind::Followed => "followed",
        }
    }

    /// The kind named `s`; a name this client does not know (a newer daemon) is `Internal`.
    pub fn parse(s: &str) -> ErrorKind {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .unwrap_or(ErrorKind::Internal)
    }
}

impl PartialEq<str> for ErrorKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer's body.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireError {
    /// Machine-readable kind, an [`ErrorKind`] name (kept a string on the wire so
    /// that an older client can read a newer daemon's kinds).
    pub kind: String,
    /// Human message that says what to do.
    pub message: String,
}

/// What a `health` request found.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HealthReport {
    /// Every check passed: queries and appends work.
    pub healthy: bool,
    /// One entry per subsystem.
    pub checks: Vec<HealthCheck>,
}

/// One subsystem's state.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HealthCheck {
    /// "store", "ingest", "data_dir", "writable", "integrity", "cache" or "topics".
    pub name: String,
    /// Whether it works.
    pub ok: bool,
    /// What was found (and, when not ok, what to do).
    pub detail: String,
}

/// A response header.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Response {
    /// Success?
    pub ok: bool,
    /// Set when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    /// Arena to map (query, subscribe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arena: Option<String>,
    /// Batches in the arena (query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batches: Option<u64>,
    /// Rows (query, append, write-down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes of the result (query) or of Parquet written (write-down).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Whether the answer came from the cache (query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<bool>,
    /// Replay seam: the first live topic seq not in the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// Free-form payload (stat text, dataset listing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Structured payload (datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
    /// What the row rules made of an append.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<AppendReport>,
}

impl Response {
    /// `{"ok": true}`.
    pub fn ok() -> Self {
        Self {
            ok: true,
            ..Default::default()
        }
    }
    /// An error response.
    pub fn err(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            ok: false,
            error: Some(WireError {
                kind: kind.as_str().into(),
                message: message.into(),
            }),
            ..Default::default()
        }
    }
}

/// Symbols as given (a string, a list, items with commas) as a flat list of
/// names: `"A,B"`, `["A", "B"]` and `["A,B"]` are the same. `"*"` or nothing
/// means every symbol (an empty list).
pub fn symbol_list<S: AsRef<str>>(items: &[S]) -> Vec<String> {
    let out: Vec<String> = items
        .iter()
        .flat_map(|s| s.as_ref().split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if out.iter().any(|s| s == "*") {
        vec![]
    } else {
        out
    }
}

fn de_symbols<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => vec![],
        Some(OneOrMany::One(s)) => symbol_list(&[s]),
        Some(OneOrMany::Many(v)) => symbol_list(&v),
    })
}

/// The answer to [`Request::Ready`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct ReadyReport {
    /// Queries and appends work (the store is open and writable).
    pub ready: bool,
    /// Why not, when `ready` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// One entry per dataset asked about.
    pub datasets: Vec<DatasetReady>,
}

/// How far one dataset's data goes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct DatasetReady {
    /// Dataset name.
    pub dataset: String,
    /// Its base (finest stored) timeframe.
    pub base: String,
    /// Symbols with data.
    pub symbols: Vec<String>,
    /// One entry per stored timeframe (the base first, then the rollups).
    pub timeframes: Vec<TimeframeReady>,
}

/// The extent of one stored timeframe.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct TimeframeReady {
    /// Timeframe, e.g. "1m".
    pub timeframe: String,
    /// Open time of the first bar, ns since the epoch (none when empty).
    pub first_ts: Option<i64>,
    /// Open time of the last bar, ns since the epoch (none when empty).
    pub last_ts: Option<i64>,
    /// Days in the hot tier (WAL), as "YYYY-MM-DD".
    pub hot_days: Vec<String>,
    /// Days in the cold tier (Parquet).
    pub cold_days: u64,
}

/// Writes one frame.
pub fn write_frame<W: Write>(w: &mut W, header: &impl Serialize, payload: &[u8]) -> io::Result<()> {
    let h = serde_json::to_vec(header).map_err(io::Error::other)?;
    let mut buf = Vec::with_capacity(12 + h.len());
    buf.extend_from_slice(&(h.len() as u32).to_le_bytes());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    w.write_all(&buf)?;
    w.write_all(payload)?;
    w.flush()
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Eof,
    /// Socket error or a connection cut mid-frame.
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    /// A length field exceeds its limit.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Header or payload.
        what: &'static str,
        /// Length announced.
        len: u64,
        /// The limit.
        max: u64,
    },
    /// The header is not the JSON expected.
    #[error("malformed request header: {0}")]
    Json(String),
}

/// Reads one frame: the parsed header and the payload.
pub fn read_frame<R: Read, T: for<'de> Deserialize<'de>>(
    r: &mut R,
    max_payload: u64,
) -> Result<(T, Vec<u8>), FrameError> {
    let mut len4 = [0u8; 4];
    match r.read_exact(&mut len4) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Err(FrameError::Eof),
        Err(e) => return Err(e.into()),
    }
    let hlen = u32::from_le_bytes(len4);
    if hlen > MAX_HEADER {
        return Err(FrameError::TooLarge {
            what: "header",
            len: hlen as u64,
            max: MAX_HEADER as u64,
        });
    }
    let mut h = vec![0u8; hlen as usize];
    r.read_exact(&mut h)?;
    let mut len8 = [0u8; 8];
    r.read_exact(&mut len8)?;
    let plen = u64::from_le_bytes(len8);
    if plen > max_payload {
        return Err(FrameError::TooLarge {
            what: "payload",
            len: plen,
            max: max_payload,
        });
    }
    let mut payload = vec![0u8; plen as usize];
    r.read_exact(&mut payload)?;
    let header = serde_json::from_slice(&h).map_err(|e| FrameError::Json(e.to_string()))?;
    Ok((header, payload))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let req = Request::Query(QuerySpec {
            dataset: "d".into(),
            timeframe: "5m".into(),
            start: Some(TimeSpec::Text("2021-01-01".into())),
            end: Some(TimeSpec::Nanos(5)),
            ..Default::default()
        });
        let mut buf = vec![];
        write_frame(&mut buf, &req, b"xyz").unwrap();
        let (back, payload): (Request, _) = read_frame(&mut &buf[..], 10).unwrap();
        assert_eq!(back, req);
        assert_eq!(payload, b"xyz");
    }

    #[test]
    fn oversize_and_malformed_frames_are_errors() {
        let mut buf = vec![];
        write_frame(&mut buf, &Request::Ping, &[0u8; 100]).unwrap();
        assert!(matches!(
            read_frame::<_, Request>(&mut &buf[..], 10),
            Err(FrameError::TooLarge {
                what: "payload",
                ..
            })
        ));
        let mut bad = vec![];
        bad.extend_from_slice(&5u32.to_le_bytes());
        bad.extend_from_slice(b"{nope");
        bad.extend_from_slice(&0u64.to_le_bytes());
        assert!(matches!(
            read_frame::<_, Request>(&mut &bad[..], 10),
            Err(FrameError::Json(_))
        ));
        let huge = (MAX_HEADER + 1).to_le_bytes();
        assert!(matches!(
            read_frame::<_, Request>(&mut &huge[..], 10),
            Err(FrameError::TooLarge { what: "header", .. })
        ));
        assert!(matches!(
            read_frame::<_, Request>(&mut &b""[..], 10),
            Err(FrameError::Eof)
        ));
    }

    #[test]
    fn symbols_are_one_list_whatever_their_form() {
        let q = |j: &str| serde_json::from_str::<QuerySpec>(j).unwrap().symbols;
        let ab = vec!["A".to_string(), "B".to_string()];
        assert_eq!(q(r#"{"dataset":"d","timeframe":"1m","symbols":"A,B"}"#), ab);
        assert_eq!(
            q(r#"{"dataset":"d","timeframe":"1m","symbols":["A","B"]}"#),
            ab
        );
        assert_eq!(
            q(r#"{"dataset":"d","timeframe":"1m","symbols":["A, B"]}"#),
            ab
        );
        assert!(q(r#"{"dataset":"d","timeframe":"1m","symbols":"*"}"#).is_empty());
        assert!(q(r#"{"dataset":"d","timeframe":"1m"}"#).is_empty());
        assert!(q(r#"{"dataset":"d","timeframe":"1m","symbols":null}"#).is_empty());
    }

    #[test]
    fn error_kinds_round_trip_their_names() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), k);
        }
        assert_eq!(ErrorKind::parse("from_the_future"), ErrorKind::Internal);
    }
}
