//! MarketStore's `/rpc` and `/ws` attacked: garbage and well-framed but wrong bodies,
//! bodies over the limit, clients that vanish mid-body, scopes, slow websocket clients.
//! Every test ends by checking the face still answers a real query. (pymarketstore
//! itself is run against the face in python/tests/test_marketstore.py.)

mod common;
mod flight_support;

use common::*;
use flight_support::{free_port, sha, OPS, READER};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn ms_daemon(extra: &str) -> (Daemon, u16) {
    let port = free_port();
    let d = Daemon::start_with(
        tempfile::tempdir().unwrap(),
        &format!("max_append_bytes = \"1MiB\"\n{extra}\n[http]\nlisten = \"127.0.0.1:{port}\"\nohlcv_dataset = \"test\"\n"),
    );
    d.client()
        .append("test", &bars(&["AAA", "BBB"], 0, 120))
        .unwrap();
    (d, port)
}

/// One POST on a fresh connection: (status, headers, body).
fn post(port: u16, content_type: &str, headers: &str, body: &[u8]) -> (u16, String, Vec<u8>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /rpc HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .unwrap();
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&out[..split]).to_string();
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let mut body = out[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (code, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(std::str::from_utf8(&b[..eol]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[eol + 2..eol + 2 + n]);
        b = &b[eol + 2 + n + 2..];
    }
}

fn msgpack(v: &Value) -> Vec<u8> {
    rmp_serde::to_vec_named(v).unwrap()
}

/// A msgpack reply as JSON, `bin` as an array of bytes.
fn decode(b: &[u8]) -> Value {
    fn json_of(v: rmpv::Value) -> Value {
        match v {
            rmpv::Value::Nil => Value::Null,
            rmpv::Value::Boolean(b) => json!(b),
            rmpv::Value::Integer(i) => i.as_i64().map_or_else(|| json!(i.as_u64()), |i| json!(i)),
            rmpv::Value::F32(f) => json!(f),
            rmpv::Value::F64(f) => json!(f),
            rmpv::Value::String(s) => json!(s.into_str()),
            rmpv::Value::Binary(b) => json!(b),
            rmpv::Value::Array(a) => Value::Array(a.into_iter().map(json_of).collect()),
            rmpv::Value::Map(m) => Value::Object(
                m.into_iter()
                    .map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), json_of(v)))
                    .collect(),
            ),
            rmpv::Value::Ext(..) => Value::Null,
        }
    }
    rmpv::decode::read_value(&mut &b[..])
        .map(json_of)
        .unwrap_or(Value::Null)
}

fn call(port: u16, method: &str, params: Value, auth: &str) -> (u16, Value) {
    let body = msgpack(&json!({"jsonrpc": "2.0", "id": "1", "method": method, "params": params}));
    let (code, _, body) = post(port, "application/x-msgpack", auth, &body);
    (code, decode(&body))
}

/// The rows of AAA, 1Min, through /rpc: the face still answers a real query.
fn still_answers(port: u16, auth: &str) {
    let (code, v) = call(
        port,
        "DataService.Query",
        json!({"requests": [{"destination": "AAA/1Min/OHLCV", "limit_record_count": 10}]}),
        auth,
    );
    assert_eq!(code, 200, "{v}");
    let r = &v["result"]["responses"][0]["result"];
    assert_eq!(r["length"], 10, "{v}");
    assert_eq!(
        r["lengths"]["AAA/1Min/OHLCV:Symbol/Timeframe/AttributeGroup"], 10,
        "{v}"
    );
}

fn error_of(v: &Value) -> (i64, String) {
    (
        v["error"]["code"].as_i64().unwrap_or(0),
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[test]
fn a_query_reply_has_marketstores_shape_in_msgpack_and_json() {
    let (d, port) = ms_daemon("");
    let body = msgpack(
        &json!({"jsonrpc": "2.0", "id": 7, "method": "DataService.Query",
        "params": {"requests": [{"destination": "AAA,BBB/5Min/OHLCV", "epoch_start": T0 / 1_000_000_000, "epoch_end": T0 / 1_000_000_000 + 600}]}}),
    );
    let (code, head, raw) = post(port, "application/x-msgpack", "", &body);
    assert_eq!(code, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("marketstore-version: ringfeed-"),
        "{head}"
    );
    let v = decode(&raw);
    assert_eq!(v["id"], 7);
    assert_eq!(v["jsonrpc"], "2.0");
    assert_eq!(v["result"]["timezone"], "UTC");
    let r = &v["result"]["responses"][0]["result"];
    assert_eq!(
        r["names"],
        json!([
            "Epoch",
            "Open",
            "High",
            "Low",
            "Close",
            "Volume",
            "QuoteVolume",
            "Trades",
            "TakerBuyBase",
            "TakerBuyQuote"
        ])
    );
    assert_eq!(r["types"][0], "i8");
    // Both ends inclusive, as MarketStore's: 00:00, 00:05, 00:10 per symbol.
    assert_eq!(r["length"], 6);
    assert_eq!(
        r["startindex"]["BBB/5Min/OHLCV:Symbol/Timeframe/AttributeGroup"],
        3
    );
    // JSON: the same reply, column bytes in base64.
    let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": "j", "method": "DataService.Query",
        "params": [{"requests": [{"destination": "AAA/1Min/OHLCV", "limit_record_count": 1, "limit_from_start": true}]}]})).unwrap();
    let (code, _, raw) = post(port, "application/json; charset=UTF-8", "", &body);
    assert_eq!(code, 200);
    let v: Value = serde_json::from_slice(&raw).unwrap();
    let data = v["result"]["responses"][0]["result"]["data"][0]
        .as_str()
        .unwrap();
    use base64::Engine;
    let epoch = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    assert_eq!(
        i64::from_le_bytes(epoch[..8].try_into().unwrap()),
        T0 / 1_000_000_000
    );
    still_answers(port, "");
    drop(d);
}

#[test]
fn garbage_and_wrong_bodies_get_marketstore_errors_and_the_face_keeps_serving() {
    let (d, port) = ms_daemon("");
    let cases: Vec<(&str, Vec<u8>, i64, &str)> = vec![
        (
            "not msgpack",
            b"\xc1\xc1\xc1 hello".to_vec(),
            -32700,
            "not a msgpack-RPC",
        ),
        (
            "truncated",
            msgpack(&json!({"jsonrpc": "2.0", "method": "DataService.Query"}))[..10].to_vec(),
            -32700,
            "not a msgpack-RPC",
        ),
        (
            "no version",
            msgpack(&json!({"method": "DataService.Query", "id": 1})),
            -32600,
            "jsonrpc must be 2.0",
        ),
        (
            "unknown method",
            msgpack(&json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Nuke"})),
            -32601,
            "can't find method",
        ),
        (
            "params a string",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": "x"}),
            ),
            -32600,
            "params",
        ),
        (
            "requests a number",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": {"requests": 5}}),
            ),
            -32600,
            "params",
        ),
        (
            "bad destination",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": {"requests": [{"destination": "AAA"}]}}),
            ),
            -32000,
            "proper format",
        ),
        (
            "bad timeframe",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": {"requests": [{"destination": "AAA/1Fortnight/OHLCV"}]}}),
            ),
            -32000,
            "timeframe",
        ),
        (
            "sql",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": {"requests": [{"is_sqlstatement": true, "sql_statement": "SELECT 1"}]}}),
            ),
            -32000,
            "SQL",
        ),
        (
            "epoch past the range",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": {"requests": [{"destination": "AAA/1Min/OHLCV", "epoch_start": i64::MAX, "limit_record_count": -4}]}}),
            ),
            -32000,
            "negative",
        ),
        (
            "unknown dataset",
            msgpack(
                &json!({"jsonrpc": "2.0", "id": 1, "method": "DataService.Query", "params": {"requests": [{"destination": "AAA/1Min/nope"}]}}),
            ),
            -32000,
            "unknown dataset",
        ),
    ];
    for (what, body, code, says) in cases {
        let (status, _, raw) = post(port, "application/x-msgpack", "", &body);
        assert_eq!(status, 200, "{what}");
        let v = decode(&raw);
        let (c, m) = error_of(&v);
        assert_eq!(c, code, "{what}: {v}");
        assert!(m.contains(says), "{what}: {m}");
    }
    // Not msgpack nor JSON: 415, as gorilla's rpc says it.
    let (status, _, _) = post(port, "text/plain", "", b"hello");
    assert_eq!(status, 415);
    // A body over max_append_bytes: 413 with the reason, before it is read.
    let big = vec![0x90u8; 2 << 20];
    let (status, _, raw) = post(port, "application/x-msgpack", "", &big);
    assert_eq!(status, 413);
    let v = decode(&raw);
    assert!(error_of(&v).1.contains("max_append_bytes"), "{v}");
    // A client that promises a body and vanishes.
    for _ in 0..5 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-msgpack\r\nContent-Length: 100000\r\n\r\n\x81\xa7jsonrpc").unwrap();
        drop(s);
    }
    // Writes that lie about their lengths, or ask for rows past them.
    let col = |n: usize| serde_bytes::ByteBuf::from(vec![0u8; n]);
    let lies = [
        json!({"types": ["i8", "f8"], "names": ["Epoch", "Open"], "data": [col(8), col(16)], "length": 1, "startindex": {"AAA/1Min/OHLCV": 0}, "lengths": {"AAA/1Min/OHLCV": 1}}),
        json!({"types": ["i8"], "names": ["Epoch"], "data": [col(8)], "length": 1099511627776i64, "startindex": {"AAA/1Min/OHLCV": 0}, "lengths": {"AAA/1Min/OHLCV": 1}}),
        json!({"types": ["i8"], "names": ["Epoch"], "data": [col(8)], "length": 1, "startindex": {"AAA/1Min/OHLCV": -3}, "lengths": {"AAA/1Min/OHLCV": 1}}),
        json!({"types": ["i8"], "names": ["Epoch"], "data": [col(8)], "length": 1, "startindex": {"AAA/1Min/OHLCV": 0}, "lengths": {"AAA/1Min/OHLCV": 9}}),
        json!({"types": ["U16"], "names": ["Epoch"], "data": [col(64)], "length": 1, "startindex": {"AAA/1Min/OHLCV": 0}, "lengths": {"AAA/1Min/OHLCV": 1}}),
        json!({"types": ["f8"], "names": ["Open"], "data": [col(8)], "length": 1, "startindex": {"AAA/1Min/OHLCV": 0}, "lengths": {"AAA/1Min/OHLCV": 1}}),
    ];
    for (i, ds) in lies.iter().enumerate() {
        let (status, v) = call(
            port,
            "DataService.Write",
            json!({"requests": [{"dataset": ds, "is_variable_length": false}]}),
            "",
        );
        assert_eq!(status, 200, "{i}: {v}");
        let err = v["result"]["responses"][0]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(!err.is_empty(), "write {i} was taken: {v}");
    }
    still_answers(port, "");
    d.client().ping().unwrap();
}

#[test]
fn scopes_hold_per_method_and_dataset() {
    let (d, port) = ms_daemon(&format!(
        "[[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"test\"]\n\
         [[auth.tokens]]\nname = \"ops\"\nsha256 = \"{}\"\nread = [\"*\"]\nwrite = [\"*\"]\nadmin = true\n",
        sha(READER),
        sha(OPS)
    ));
    let reader = format!("Authorization: Bearer {READER}\r\n");
    let ops = format!("Authorization: Bearer {OPS}\r\n");
    // No token: 401 before any method runs.
    let (status, _) = call(port, "DataService.ListSymbols", json!({}), "");
    assert_eq!(status, 401);
    still_answers(port, &reader);
    let (status, v) = call(
        port,
        "DataService.ListSymbols",
        json!({"format": "symbol"}),
        &reader,
    );
    assert_eq!(
        (status, &v["result"]["Results"]),
        (200, &json!(["AAA", "BBB"])),
        "{v}"
    );
    // A reader may not write nor destroy: 403, the body in MarketStore's shape.
    let ds = json!({"types": ["i8", "f8", "f8", "f8", "f8", "f8"], "names": ["Epoch", "Open", "High", "Low", "Close", "Volume"],
        "data": [serde_bytes::ByteBuf::from((T0 / 1_000_000_000 + 86_400).to_le_bytes().to_vec()), serde_bytes::ByteBuf::from(1f64.to_le_bytes().to_vec()), serde_bytes::ByteBuf::from(2f64.to_le_bytes().to_vec()), serde_bytes::ByteBuf::from(0.5f64.to_le_bytes().to_vec()), serde_bytes::ByteBuf::from(1.5f64.to_le_bytes().to_vec()), serde_bytes::ByteBuf::from(3f64.to_le_bytes().to_vec())],
        "length": 1, "startindex": {"CCC/1Min/OHLCV": 0}, "lengths": {"CCC/1Min/OHLCV": 1}});
    let (status, v) = call(
        port,
        "DataService.Write",
        json!({"requests": [{"dataset": ds.clone()}]}),
        &reader,
    );
    assert_eq!(status, 403, "{v}");
    assert_eq!(error_of(&v).0, -32000, "{v}");
    let (status, _) = call(
        port,
        "DataService.Destroy",
        json!({"requests": [{"key": "AAA/1Min/OHLCV"}]}),
        &reader,
    );
    assert_eq!(status, 403);
    // The ops token may; its write is queried back by the reader.
    let (status, v) = call(
        port,
        "DataService.Write",
        json!({"requests": [{"dataset": ds}]}),
        &ops,
    );
    assert_eq!(
        (status, &v["result"]["responses"]),
        (200, &Value::Null),
        "{v}"
    );
    let (_, v) = call(
        port,
        "DataService.Query",
        json!({"requests": [{"destination": "CCC/1Min/OHLCV"}]}),
        &reader,
    );
    assert_eq!(v["result"]["responses"][0]["result"]["length"], 1, "{v}");
    still_answers(port, &reader);
    drop(d);
}

type Ws = tungstenite::WebSocket<TcpStream>;

/// A websocket client; `small` gives its socket a small receive buffer, so that a
/// client that does not read backs up into the daemon soon.
fn ws_connect(port: u16, small: bool) -> Ws {
    let stream = if small {
        use rustix::net::{connect, socket, sockopt, AddressFamily, SocketType};
        let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        sockopt::set_socket_recv_buffer_size(&fd, 4096).unwrap();
        connect(
            &fd,
            &std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port),
        )
        .unwrap();
        TcpStream::from(fd)
    } else {
        TcpStream::connect(("127.0.0.1", port)).unwrap()
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (ws, _) = tungstenite::client(format!("ws://127.0.0.1:{port}/ws"), stream).unwrap();
    ws
}

fn ws_subscribe(ws: &mut Ws, streams: &[&str]) -> Value {
    ws.send(tungstenite::Message::Binary(
        msgpack(&json!({"streams": streams})).into(),
    ))
    .unwrap();
    next_msg(ws)
}

/// The next data message or close (within 30 s: the daemon's pings, every 20 s, would
/// otherwise keep a read waiting for a message that never comes alive forever).
fn next_msg(ws: &mut Ws) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match ws.read().unwrap() {
            tungstenite::Message::Binary(b) => return decode(&b),
            tungstenite::Message::Close(c) => {
                return json!({"closed": c.map(|c| c.reason.to_string())})
            }
            _ => assert!(
                Instant::now() < deadline,
                "no message within 30 s (pings only)"
            ),
        }
    }
}

#[test]
fn a_slow_websocket_client_is_cut_and_never_stalls_the_topic() {
    let (d, port) = ms_daemon("");
    // Garbage and bad streams get `{error}`; the socket stays usable.
    let mut fast = ws_connect(port, false);
    fast.send(tungstenite::Message::Binary(
        b"\xc1nonsense".to_vec().into(),
    ))
    .unwrap();
    assert!(next_msg(&mut fast)["error"]
        .as_str()
        .unwrap()
        .contains("streams"));
    assert!(ws_subscribe(&mut fast, &["AAA/1Min"])["error"]
        .as_str()
        .unwrap()
        .contains("invalid stream"));
    assert_eq!(
        ws_subscribe(&mut fast, &["FAST/1Min/*"]),
        json!({"streams": ["FAST/1Min/*"]})
    );
    let mut slow = ws_connect(port, true);
    assert_eq!(
        ws_subscribe(&mut slow, &["*/*/*"]),
        json!({"streams": ["*/*/*"]})
    );
    // A flood the slow client never reads: far more than its backlog and the socket buffers.
    let mut c = d.client();
    // (In appends of one topic slot each, so the hub's reader keeps up with the ring.)
    for k in 0..160 {
        c.append("test", &bars(&["SLOW"], 200 + k * 1000, 1000))
            .unwrap();
    }
    // The topic went on: a bar after the flood reaches the fast client. (On a loaded
    // machine the hub's reader may be lapped by the flood; it then rejoins the topic at
    // its next rescan, so a bar is sent every half second until one arrives.)
    fast.get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut minute = 500_000;
    let m = loop {
        assert!(
            Instant::now() < deadline,
            "no FAST bar reached the fast client"
        );
        c.append("test", &bars(&["FAST"], minute, 1)).unwrap();
        match fast.read() {
            Ok(tungstenite::Message::Binary(b)) => break decode(&b),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("the fast client's socket failed: {e}"),
        }
        minute += 1;
    };
    assert_eq!(m["key"], "FAST/1Min/OHLCV", "{m}");
    let epoch = m["data"]["Epoch"].as_i64().unwrap();
    assert!(
        (T0 / 1_000_000_000 + 500_000 * 60..=T0 / 1_000_000_000 + minute * 60).contains(&epoch),
        "{m}"
    );
    // The slow one, read at last: what was queued, then a close frame saying why.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut read = 0u64;
    let why = loop {
        assert!(
            Instant::now() < deadline,
            "the slow client was never cut ({read} messages read)"
        );
        let m = next_msg(&mut slow);
        if let Some(c) = m.get("closed") {
            break c.clone();
        }
        read += 1;
    };
    assert!(why.as_str().unwrap_or_default().contains("behind"), "{why}");
    assert!(
        read < 160 * 1000,
        "the slow client got everything ({read}): it was not cut"
    );
    still_answers(port, "");
}

/// A metric's value in the daemon's stat text (the line starting with `name `).
fn metric(d: &Daemon, name: &str) -> Option<f64> {
    let text = d.client().stat().unwrap();
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|r| r.starts_with(' ')))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Waits (up to 30 s) until metric `name` is `want`.
fn wait_metric(d: &Daemon, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(d, name) != Some(want) {
        assert!(
            Instant::now() < deadline,
            "{name} is {:?}, not {want}",
            metric(d, name)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `e` is a read timeout (the socket is alive, nothing came).
fn timed_out(e: &tungstenite::Error) -> bool {
    matches!(e, tungstenite::Error::Io(io) if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

/// A websocket client by hand: the upgrade, one subscribe message (masked, as a client
/// must), then nothing: it never reads, so never answers a ping.
fn silent_ws(port: u16, streams: &[&str]) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8];
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let body = msgpack(&json!({ "streams": streams }));
    assert!(body.len() < 126);
    // FIN + binary; masked, with a zero mask key (the payload goes as is).
    let mut frame = vec![0x82, 0x80 | body.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(&body);
    s.write_all(&frame).unwrap();
    s
}

/// The frames a server sent (unmasked): (opcode, payload), to the last whole one.
fn server_frames(mut b: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while b.len() >= 2 {
        let (len, at) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => (
                u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize,
                10,
            ),
            126 | 127 => break,
            n => (n as usize, 2),
        };
        if b.len() < at + len {
            break;
        }
        out.push((b[0] & 0x0f, b[at..at + len].to_vec()));
        b = &b[at + len..];
    }
    out
}

/// Reads `ws` (so it answers pings) for `d`, or until a message comes; that message.
fn read_for(ws: &mut Ws, d: Duration) -> Option<Value> {
    let until = Instant::now() + d;
    while Instant::now() < until {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => return Some(decode(&b)),
            Ok(_) => {}
            Err(e) if timed_out(&e) => {}
            Err(e) => panic!("the live client lost its socket: {e}"),
        }
    }
    None
}

#[test]
fn a_websocket_client_that_answers_no_ping_is_closed_and_counted() {
    // Pings every 200 ms, a client closed after 1 s without a pong (the test override of
    // the 20 s / 60 s constants).
    let port = free_port();
    let d = Daemon::start_with_env(
        tempfile::tempdir().unwrap(),
        &format!("[http]\nlisten = \"127.0.0.1:{port}\"\nohlcv_dataset = \"test\"\n"),
        &[("RINGFEED_WS_KEEPALIVE_MS", "200,1000")],
    );
    d.client().append("test", &bars(&["AAA"], 0, 30)).unwrap();
    let mut live = ws_connect(port, false);
    assert_eq!(
        ws_subscribe(&mut live, &["LIVE/1Min/*"]),
        json!({"streams": ["LIVE/1Min/*"]})
    );
    // Upgraded and subscribed, then silent (reads nothing, answers no ping): a peer
    // behind a cut network.
    let mut gone = silent_ws(port, &["*/*/*"]);
    wait_metric(&d, "ringfeed_ws_clients", 2.0);
    live.get_mut()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(&d, "ringfeed_ws_keepalive_closes_total") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "the silent client was never closed"
        );
        assert_eq!(read_for(&mut live, Duration::from_millis(200)), None);
    }
    // Its task and subscription are gone; the live client, reading all along, stays
    // through several more timeouts and still gets its bars.
    assert_eq!(read_for(&mut live, Duration::from_secs(3)), None);
    assert_eq!(metric(&d, "ringfeed_ws_keepalive_closes_total"), Some(1.0));
    assert_eq!(metric(&d, "ringfeed_ws_clients"), Some(1.0));
    d.client().append("test", &bars(&["LIVE"], 100, 1)).unwrap();
    let m = read_for(&mut live, Duration::from_secs(30)).expect("a bar for the live client");
    assert_eq!(m["key"], "LIVE/1Min/OHLCV", "{m}");
    // The silent one, read at last: the pings it never answered, then a close frame
    // (1001) saying why, then the end of the connection.
    gone.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut got = Vec::new();
    let _ = gone.read_to_end(&mut got);
    let frames = server_frames(&got);
    let (op, payload) = frames.last().expect("frames").clone();
    assert_eq!(op, 0x8, "the last frame closes: {frames:?}");
    assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), 1001);
    let why = String::from_utf8_lossy(&payload[2..]);
    assert!(why.contains("no pong within 1 s"), "{why}");
    assert!(
        frames.iter().filter(|(op, _)| *op == 0x9).count() >= 2,
        "pinged before: {frames:?}"
    );
    still_answers(port, "");
}

#[test]
fn a_websocket_client_that_floods_is_cut_with_a_reason_and_counted() {
    let (d, port) = ms_daemon("");
    // Well-framed but wrong subscribe messages, far more than 64 in a second.
    let mut flood = ws_connect(port, false);
    for k in 0..500 {
        let m = if k % 2 == 0 {
            tungstenite::Message::Text(r#"{"streams": ["AAA/1Min"]}"#.into())
        } else {
            tungstenite::Message::Binary(b"\xc1nonsense".to_vec().into())
        };
        if flood.send(m).is_err() {
            break;
        }
    }
    let mut replies = 0;
    let why = loop {
        let m = next_msg(&mut flood);
        if let Some(c) = m.get("closed") {
            break c.clone();
        }
        assert!(m.get("error").is_some(), "{m}");
        replies += 1;
    };
    assert!(
        why.as_str().unwrap_or_default().contains("64 messages"),
        "{why}"
    );
    assert!(replies <= 64, "{replies} messages were answered");
    // Few messages, but more bytes than the bound in one second.
    let mut big = ws_connect(port, false);
    for _ in 0..3 {
        if big
            .send(tungstenite::Message::Binary(vec![b'x'; 40 << 10].into()))
            .is_err()
        {
            break;
        }
    }
    let why = loop {
        let m = next_msg(&mut big);
        if let Some(c) = m.get("closed") {
            break c.clone();
        }
    };
    assert!(why.as_str().unwrap_or_default().contains("64 KiB"), "{why}");
    assert_eq!(metric(&d, "ringfeed_ws_flood_closes_total"), Some(2.0));
    wait_metric(&d, "ringfeed_ws_clients", 0.0);
    // A client that sends what a real one sends is served: subscribed, it gets a bar.
    let mut ok = ws_connect(port, false);
    assert_eq!(
        ws_subscribe(&mut ok, &["NEW/1Min/*"]),
        json!({"streams": ["NEW/1Min/*"]})
    );
    d.client().append("test", &bars(&["NEW"], 200, 1)).unwrap();
    assert_eq!(next_msg(&mut ok)["key"], "NEW/1Min/OHLCV");
    assert_eq!(metric(&d, "ringfeed_ws_keepalive_closes_total"), Some(0.0));
    still_answers(port, "");
}

#[test]
fn a_hub_reader_lapped_by_a_burst_tells_its_clients_bars_are_missing() {
    // Two small slots: one append of 3000 bars publishes a burst of many batches, which
    // laps the hub's reader while it encodes a row per message.
    let (d, port) = ms_daemon("[topics]\nslots = 2\nslot_bytes = \"16KiB\"\n");
    let mut ws = ws_connect(port, false);
    assert_eq!(
        ws_subscribe(&mut ws, &["LAP/1Min/*"]),
        json!({"streams": ["LAP/1Min/*"]})
    );
    let mut c = d.client();
    c.append("test", &bars(&["LAP"], 1_000, 3_000)).unwrap();
    // Read until the last bar arrives or the stream is quiet: every bar is there, or the
    // client was told some are missing. Never a silent gap.
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let (mut bars_seen, mut notices) = (0usize, Vec::new());
    loop {
        match ws.read() {
            Ok(tungstenite::Message::Binary(b)) => {
                let m = decode(&b);
                if let Some(e) = m.get("error") {
                    notices.push(e.as_str().unwrap_or_default().to_string());
                } else {
                    assert_eq!(m["key"], "LAP/1Min/OHLCV", "{m}");
                    bars_seen += 1;
                    if m["data"]["Epoch"] == T0 / 1_000_000_000 + (1_000 + 2_999) * 60 {
                        break;
                    }
                }
            }
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break
            }
            Err(e) => panic!("the socket failed: {e}"),
        }
    }
    let lost = metric(&d, "ringfeed_ws_lost_batches_total").unwrap_or(0.0);
    eprintln!(
        "{bars_seen} bars, {} notices, {lost} batches lost",
        notices.len()
    );
    if bars_seen < 3_000 {
        assert!(
            !notices.is_empty() && lost > 0.0,
            "{bars_seen} of 3000 bars and no notice: a silent gap"
        );
    }
    for n in &notices {
        assert!(
            n.contains("lost") && n.contains("test/1m") && n.contains("/rpc"),
            "{n}"
        );
    }
    assert!(
        lost > 0.0,
        "the burst did not lap the hub's reader ({bars_seen} bars): the test needs a smaller ring"
    );
    still_answers(port, "");
}
