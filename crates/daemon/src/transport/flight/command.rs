//! What a Flight client sends, as the protocol's types: tickets and command
//! descriptors are the JSON of a local `bars()` query
//! ([`ringfeed_client::protocol::QuerySpec`], parsed by its own serde rules:
//! the one time grammar, symbols as a string or a list); a path descriptor
//! is `[dataset, timeframe]`, as `ListFlights` gives; action bodies are small
//! JSON objects. Nothing here calls the service.

use crate::service::ServiceError;
use arrow_flight::flight_descriptor::DescriptorType;
use arrow_flight::FlightDescriptor;
use ringfeed_client::protocol::QuerySpec;
use ringfeed_client::protocol::{ChangesBody, DeleteBody, WriteDownBody};
use ringfeed_client::ReplaySpec;
use serde::Deserialize;

/// What a ticket or command looks like, for error messages.
pub const QUERY_EXAMPLE: &str = r#"{"dataset": "binance-spot", "symbols": ["BTCUSDT"], "timeframe": "1h", "start": "2021-01-01", "end": "2022-01-01"}"#;

/// Largest ticket, command or action body read (a query is a few hundred bytes).
pub const MAX_COMMAND_BYTES: usize = 64 << 10;

/// Why a client's bytes are not a command this face serves.
#[derive(Debug)]
pub enum CommandError {
    /// Malformed or invalid: `bad_request`.
    Bad(ServiceError),
    /// Well-formed, but for something not built yet.
    NotBuilt(String),
    /// Not a query: a subscribe ticket (see [`super::subscribe`]).
    Subscribe(Box<ReplaySpec>),
}

impl From<ServiceError> for CommandError {
    fn from(e: ServiceError) -> Self {
        CommandError::Bad(e)
    }
}

fn bad(message: String) -> CommandError {
    CommandError::Bad(ServiceError::bad_request(message))
}

/// The query a ticket (or a command descriptor's `cmd`) holds; `what`
/// names it in errors ("ticket", "descriptor command").
pub fn query(bytes: &[u8], what: &str) -> Result<QuerySpec, CommandError> {
    if bytes.len() > MAX_COMMAND_BYTES {
        return Err(bad(format!(
            "the {what} is {} bytes, over {MAX_COMMAND_BYTES}: a query is a small JSON object like {QUERY_EXAMPLE}",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        bad(format!(
            "the {what} is not UTF-8 JSON ({e}): send a JSON object like {QUERY_EXAMPLE}"
        ))
    })?;
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "the {what} is not valid JSON ({e}): send a JSON object like {QUERY_EXAMPLE}"
        ))
    })?;
    if let Some(sub) = value.get("subscribe") {
        if what != "ticket" {
            return Err(bad(format!(
                "a {what} cannot subscribe: send {{\"subscribe\": ...}} as a DoGet ticket"
            )));
        }
        let spec: ReplaySpec = serde_json::from_value(sub.clone()).map_err(|e| {
            bad(format!(
                "the subscribe ticket is {{\"subscribe\": {{\"dataset\", \"timeframe\", \"start\", \"symbols\"?}}}} ({e})"
            ))
        })?;
        return Err(CommandError::Subscribe(Box::new(spec)));
    }
    if !value.is_object() {
        return Err(bad(format!(
            "the {what} must be a JSON object like {QUERY_EXAMPLE}, not {}",
            kind_of(&value)
        )));
    }
    serde_json::from_value(value).map_err(|e| {
        bad(format!(
            "the {what} is not a query ({e}); fields: dataset, symbols (a string or a list), timeframe, start, end, fields, limit, from_end, offset, week_start; e.g. {QUERY_EXAMPLE}"
        ))
    })
}

fn kind_of(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The query a descriptor names: a command holds the query's JSON; a path
/// is `[dataset, timeframe]` (every symbol, every column, all of time).
pub fn descriptor(d: &FlightDescriptor) -> Result<QuerySpec, CommandError> {
    match DescriptorType::try_from(d.r#type) {
        Ok(DescriptorType::Cmd) => query(&d.cmd, "descriptor command"),
        Ok(DescriptorType::Path) => match d.path.as_slice() {
            [dataset, timeframe] => Ok(QuerySpec {
                dataset: dataset.clone(),
                timeframe: timeframe.clone(),
                ..Default::default()
            }),
            p => Err(bad(format!(
                "a descriptor path is [dataset, timeframe] (as ListFlights lists them), not {} element(s) {p:?}; for anything narrower send a command descriptor like {QUERY_EXAMPLE}",
                p.len()
            ))),
        },
        _ => Err(bad(format!(
            "descriptor type {} is neither PATH nor CMD",
            d.r#type
        ))),
    }
}

/// The ticket that fetches `q` (what `GetFlightInfo` hands out).
pub fn ticket(q: &QuerySpec) -> Vec<u8> {
    serde_json::to_vec(q).expect("a query spec serialises")
}

/// The actions served, and what each does (`ListActions`).
pub const ACTIONS: [(&str, &str); 7] = [
    ("ping", "answers {\"ok\": true}: the daemon is up"),
    (
        "ready",
        "body {\"dataset\": NAME} or empty: whether queries and appends work, and how far each dataset's data goes (JSON)",
    ),
    (
        "datasets",
        "datasets, their base and stored timeframes, and symbols (JSON)",
    ),
    (
        "changes",
        "body {\"dataset\": NAME, \"since\": SEQ, \"limit\"?: N}: the dataset's change log from SEQ on (deletes, trims, rows written below a symbol's newest bar), what followers apply besides live rows (JSON)",
    ),
    (
        "stat",
        "the daemon's metrics as Prometheus text (what `ringfeed stat` prints); admin",
    ),
    (
        "delete",
        "body {\"dataset\", \"start\", \"end\", \"symbol\"?}: delete base bars in [start, end) (rollups follow); admin",
    ),
    (
        "write_down",
        "body {\"dataset\"?, \"before\"?: \"YYYY-MM-DD\", \"all\"?: bool} or empty: move finished days to Parquet now; admin",
    ),
];

/// An action to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Liveness.
    Ping,
    /// Readiness of one dataset, or all.
    Ready {
        /// One dataset, or every one.
        dataset: Option<String>,
    },
    /// The dataset listing.
    Datasets,
    /// A dataset's change log from a sequence number on.
    Changes(ChangesBody),
    /// The metrics text.
    Stat,
    /// A correction: delete base bars in `[start, end)`.
    Delete(DeleteBody),
    /// Move finished days to the cold tier now.
    WriteDown(WriteDownBody),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReadyBody {
    #[serde(default)]
    dataset: Option<String>,
}

/// A JSON action body of type `T`, or `T::default()` for an empty body when `empty`
/// is given.
fn body<T: serde::de::DeserializeOwned>(
    kind: &str,
    body: &[u8],
    shape: &str,
    empty: Option<T>,
) -> Result<T, CommandError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        if let Some(e) = empty {
            return Ok(e);
        }
    }
    if body.len() > MAX_COMMAND_BYTES {
        return Err(bad(format!(
            "the {kind} body is {} bytes; it is {shape}",
            body.len()
        )));
    }
    serde_json::from_slice(body).map_err(|e| bad(format!("the {kind} body is {shape} ({e})")))
}

/// An action by name, with its body (empty, or a JSON object).
pub fn action(kind: &str, payload: &[u8]) -> Result<Action, CommandError> {
    let no_body = |name: &str| {
        let t = std::str::from_utf8(payload).unwrap_or("?").trim();
        if t.is_empty() || t == "{}" {
            Ok(())
        } else {
            Err(bad(format!(
                "action {name:?} takes no body (got {} bytes); send it empty",
                payload.len()
            )))
        }
    };
    match kind {
        "ping" => no_body(kind).map(|()| Action::Ping),
        "datasets" => no_body(kind).map(|()| Action::Datasets),
        "stat" => no_body(kind).map(|()| Action::Stat),
        "ready" => body::<ReadyBody>(
            kind,
            payload,
            "{\"dataset\": NAME} or empty",
            Some(ReadyBody::default()),
        )
        .map(|b| Action::Ready { dataset: b.dataset }),
        "delete" => body::<DeleteBody>(
            kind,
            payload,
            "{\"dataset\": NAME, \"start\": TIME, \"end\": TIME, \"symbol\": SYMBOL (optional)}",
            None,
        )
        .map(Action::Delete),
        "changes" => body::<ChangesBody>(
            kind,
            payload,
            "{\"dataset\": NAME, \"since\": SEQ, \"limit\": N (optional)}",
            None,
        )
        .map(Action::Changes),
        "write_down" => body::<WriteDownBody>(
            kind,
            payload,
            "{\"dataset\": NAME, \"before\": \"YYYY-MM-DD\", \"all\": BOOL} (each optional) or empty",
            Some(WriteDownBody::default()),
        )
        .map(Action::WriteDown),
        "append" | "subscribe" => Err(CommandError::NotBuilt(format!(
            "action {kind:?} is not an action: appends are DoPut with descriptor path [dataset]; subscriptions over Flight are not built yet (use the local socket)"
        ))),
        other => Err(bad(format!(
            "unknown action {other:?}: the actions are {}",
            ACTIONS.map(|(n, _)| n).join(", ")
        ))),
    }
}

/// What a DoPut appends to: descriptor path `[dataset]`, or a command
/// `{"dataset": NAME, "invalid": "refuse"|"skip"|"keep"}`.
pub fn put_target(
    d: &arrow_flight::FlightDescriptor,
) -> Result<(String, ringfeed_client::protocol::InvalidRows), CommandError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Put {
        dataset: String,
        #[serde(default)]
        invalid: ringfeed_client::protocol::InvalidRows,
    }
    match DescriptorType::try_from(d.r#type) {
        Ok(DescriptorType::Path) => match &d.path[..] {
            [dataset] => Ok((dataset.clone(), Default::default())),
            other => Err(bad(format!(
                "a DoPut descriptor path is [dataset], not {other:?}"
            ))),
        },
        Ok(DescriptorType::Cmd) => {
            let p: Put = serde_json::from_slice(&d.cmd).map_err(|e| {
                bad(format!(
                    "a DoPut command is {{\"dataset\": NAME, \"invalid\": \"refuse\"|\"skip\"|\"keep\"}} ({e})"
                ))
            })?;
            Ok((p.dataset, p.invalid))
        }
        _ => Err(bad(
            "a DoPut descriptor is a path [dataset] or a command {\"dataset\": NAME}".to_string(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfeed_client::time::TimeSpec;

    fn bad_message(r: Result<impl std::fmt::Debug, CommandError>) -> String {
        match r {
            Err(CommandError::Bad(e)) => e.message,
            other => panic!("expected a bad request, got {other:?}"),
        }
    }

    #[test]
    fn a_ticket_is_the_local_query_json() {
        let q = query(
            br#"{"dataset": "d", "symbols": "A,B", "timeframe": "1h", "start": "2021-01-01", "end": 1612137600, "fields": ["close"], "limit": 5, "from_end": true}"#,
            "ticket",
        )
        .unwrap();
        assert_eq!(q.dataset, "d");
        assert_eq!(q.symbols, vec!["A", "B"], "the client's symbol-list rule");
        assert_eq!(q.start, Some(TimeSpec::Text("2021-01-01".into())));
        assert_eq!(q.end, Some(TimeSpec::Int(1_612_137_600)));
        assert_eq!(q.fields, Some(vec!["close".to_string()]));
        assert_eq!((q.limit, q.from_end), (Some(5), true));
        // The ticket handed out parses back to the same query.
        assert_eq!(query(&ticket(&q), "ticket").unwrap(), q);
    }

    #[test]
    fn malformed_tickets_say_what_is_wrong() {
        let m = bad_message(query(&[0xff, 0xfe, 0x00], "ticket"));
        assert!(m.contains("not UTF-8"), "{m}");
        let m = bad_message(query(b"{\"dataset\": ", "ticket"));
        assert!(m.contains("not valid JSON"), "{m}");
        let m = bad_message(query(b"[1, 2]", "ticket"));
        assert!(m.contains("an array"), "{m}");
        let m = bad_message(query(br#"{"dataset": 5, "timeframe": "1m"}"#, "ticket"));
        assert!(m.contains("invalid type") && m.contains("dataset"), "{m}");
        let m = bad_message(query(br#"{"dataset": "d"}"#, "ticket"));
        assert!(m.contains("timeframe"), "{m}");
        let m = bad_message(query(
            br#"{"dataset": "d", "timeframe": "1m", "symbol": "A"}"#,
            "ticket",
        ));
        assert!(m.contains("unknown field `symbol`"), "{m}");
        let m = bad_message(query(&vec![b' '; MAX_COMMAND_BYTES + 1], "ticket"));
        assert!(m.contains("bytes"), "{m}");
        // A subscribe ticket is told apart; without `start` it is refused with the shape.
        let m = bad_message(query(
            br#"{"subscribe": {"dataset": "d", "timeframe": "1m"}}"#,
            "ticket",
        ));
        assert!(m.contains("missing field `start`"), "{m}");
        assert!(matches!(
            query(
                br#"{"subscribe": {"dataset": "d", "timeframe": "1m", "start": 0}}"#,
                "ticket"
            ),
            Err(CommandError::Subscribe(_))
        ));
        let m = bad_message(query(
            br#"{"subscribe": {"dataset": "d", "timeframe": "1m", "start": 0}}"#,
            "descriptor command",
        ));
        assert!(m.contains("DoGet ticket"), "{m}");
    }

    #[test]
    fn descriptors_are_a_path_or_a_command() {
        let q = descriptor(&FlightDescriptor::new_path(vec!["d".into(), "5m".into()])).unwrap();
        assert_eq!((q.dataset.as_str(), q.timeframe.as_str()), ("d", "5m"));
        let m = bad_message(descriptor(&FlightDescriptor::new_path(vec!["d".into()])));
        assert!(m.contains("[dataset, timeframe]"), "{m}");
        let q = descriptor(&FlightDescriptor::new_cmd(
            r#"{"dataset": "d", "timeframe": "1m"}"#,
        ))
        .unwrap();
        assert_eq!(q.timeframe, "1m");
    }

    #[test]
    fn actions_and_their_bodies() {
        assert_eq!(action("ping", b"").unwrap(), Action::Ping);
        assert_eq!(
            action("ready", br#"{"dataset": "d"}"#).unwrap(),
            Action::Ready {
                dataset: Some("d".into())
            }
        );
        assert_eq!(
            action("ready", b"").unwrap(),
            Action::Ready { dataset: None }
        );
        let m = bad_message(action("ready", br#"{"dataset": 1}"#));
        assert!(m.contains("invalid type"), "{m}");
        let m = bad_message(action("ping", b"hello"));
        assert!(m.contains("no body"), "{m}");
        let m = bad_message(action("reboot", b""));
        assert!(m.contains("ping, ready, datasets, changes, stat"), "{m}");
        assert_eq!(
            action("changes", br#"{"dataset": "d", "since": 7}"#).unwrap(),
            Action::Changes(ChangesBody {
                dataset: "d".into(),
                since: 7,
                limit: None
            })
        );
        let m = bad_message(action("changes", b""));
        assert!(m.contains("\"since\""), "{m}");
        let m = bad_message(action("changes", br#"{"dataset": "d", "since": -1}"#));
        assert!(m.contains("since"), "{m}");
        let m = bad_message(action("delete", b""));
        assert!(m.contains("\"start\""), "{m}");
        assert!(matches!(
            action(
                "delete",
                br#"{"dataset": "d", "start": 0, "end": "2021-01-02"}"#
            ),
            Ok(Action::Delete(_))
        ));
        assert_eq!(
            action("write_down", b"").unwrap(),
            Action::WriteDown(WriteDownBody::default())
        );
        assert!(matches!(
            action("append", b""),
            Err(CommandError::NotBuilt(_))
        ));
    }
}
