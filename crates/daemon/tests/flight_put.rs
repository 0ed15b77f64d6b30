//! Writes and live data over Flight, end to end: DoPut appends (acks once durable,
//! scopes, bad and oversized batches, kill -9), and subscribe tickets (history then
//! live without gap or duplicate; a stalled subscriber cut, holding nobody).

mod common;
mod flight_support;

use arrow_array::RecordBatch;
use arrow_flight::{FlightClient, FlightDescriptor, Ticket};
use common::*;
use flight_support::*;
use futures::{StreamExt, TryStreamExt};
use ringfeed_client::protocol::QuerySpec;
use std::time::Duration;

// ---- DoPut ----

const WRITER: &str = "writer-token-0123456789";

/// A Flight daemon in `dir` (kept across a kill -9) whose "writer" token may append to
/// `test` and "reader" only read, with small appends allowed.
fn put_daemon(dir: tempfile::TempDir, port: u16) -> Daemon {
    Daemon::start_with(
        dir,
        &format!(
            "chunk_rows = {CHUNK_ROWS}\nmax_append_bytes = \"256KiB\"\n[flight]\nlisten = \"127.0.0.1:{port}\"\n\
             [[auth.tokens]]\nname = \"writer\"\nsha256 = \"{}\"\nread = [\"*\"]\nwrite = [\"test\"]\n\
             [[auth.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nread = [\"*\"]\n",
            sha(WRITER),
            sha(READER)
        ),
    )
}

/// DoPut of `batches` to path [dataset]: the acks' row counts, or the status.
async fn put(
    c: &mut FlightClient,
    dataset: &str,
    batches: Vec<RecordBatch>,
) -> Result<Vec<u64>, tonic::Status> {
    let data = arrow_flight::encode::FlightDataEncoderBuilder::new()
        .with_flight_descriptor(Some(FlightDescriptor::new_path(vec![dataset.into()])))
        .build(futures::stream::iter(batches.into_iter().map(Ok)));
    let acks: Vec<arrow_flight::PutResult> = match c.do_put(data).await {
        Ok(s) => s.try_collect().await.map_err(status_of)?,
        Err(e) => return Err(status_of(e)),
    };
    Ok(acks
        .iter()
        .map(|a| {
            let v: serde_json::Value = serde_json::from_slice(&a.app_metadata).unwrap();
            v["rows"].as_u64().unwrap()
        })
        .collect())
}

#[test]
fn do_put_acks_durable_appends_refuses_bad_ones_and_survives_kill_9() {
    let port = free_port();
    let d = put_daemon(tempfile::tempdir().unwrap(), port);
    let rt = runtime();
    within(&rt, "the DoPut checks", async {
        let mut w = connect_as(port, Some(WRITER)).await;
        // Five batches, five acks, each once durable.
        let batches: Vec<RecordBatch> = (0..5).map(|k| bars(&["W"], k * 100, 100)).collect();
        assert_eq!(put(&mut w, "test", batches).await.unwrap(), vec![100; 5]);
        // Without write scope: PERMISSION_DENIED, nothing stored.
        let mut r = connect_as(port, Some(READER)).await;
        let e = put(&mut r, "test", vec![bars(&["R"], 0, 10)])
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
        // A batch that breaks the row rules: refused whole, with the row named.
        let bad = bars(&["BAD"], 0, 10);
        let cols: Vec<arrow_array::ArrayRef> = bad
            .schema()
            .fields()
            .iter()
            .zip(bad.columns())
            .map(|(f, c)| match f.name().as_str() {
                "high" => std::sync::Arc::new(arrow_array::Float64Array::from(vec![-1.0; 10])) as _,
                _ => c.clone(),
            })
            .collect();
        let bad = RecordBatch::try_new(bad.schema(), cols).unwrap();
        let e = put(&mut w, "test", vec![bad]).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        // A batch over max_append_bytes: refused by size, the daemon unhurt.
        let big = bars(&["BIG"], 0, 20_000);
        let e = put(&mut w, "test", vec![big]).await.unwrap_err();
        assert!(
            matches!(
                e.code(),
                tonic::Code::OutOfRange
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::InvalidArgument
            ),
            "{e:?}"
        );
        // An unknown dataset: NOT_FOUND (a token for it would be needed anyway).
        let e = put(&mut w, "nope", vec![bars(&["W"], 0, 1)])
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.code(),
                tonic::Code::PermissionDenied | tonic::Code::NotFound
            ),
            "{e:?}"
        );
    });
    let syms = d.client().datasets().unwrap();
    let listed = serde_json::to_string(&syms).unwrap();
    assert!(
        listed.contains("\"W\"") && !listed.contains("\"BAD\"") && !listed.contains("\"R\""),
        "{listed}"
    );
    // kill -9, restart on the same data: every acknowledged row is there.
    let mut d = d;
    d.child.kill().unwrap();
    d.child.wait().unwrap();
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    drop(d);
    let d = put_daemon(dir, port);
    let q1 = QuerySpec {
        symbols: vec!["W".into()],
        ..q("1m")
    };
    assert_eq!(local(&d, &q1).num_rows(), 500);
    let (got, _) = within(&rt, "a query after the restart", async {
        fetch(&mut connect_as(port, Some(READER)).await, json_ticket(&q1)).await
    })
    .unwrap();
    assert_eq!(got.num_rows(), 500);
}

// ---- subscribe tickets ----

fn subscribe_ticket(start_ns: i64, symbols: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "subscribe": {"dataset": "test", "timeframe": "1m", "start": start_ns, "symbols": symbols}
    }))
    .unwrap()
}

/// (ts, symbol) of a bar batch's rows.
fn keys(b: &RecordBatch) -> Vec<(i64, String)> {
    use arrow_array::cast::AsArray;
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let sym = arrow_cast::cast(
        b.column_by_name("symbol").unwrap(),
        &arrow_schema::DataType::Utf8,
    )
    .unwrap();
    let sym = sym.as_string::<i32>();
    (0..b.num_rows())
        .map(|i| (ts.value(i), sym.value(i).to_string()))
        .collect()
}

#[test]
fn a_subscribe_ticket_streams_history_then_live_without_gap_or_duplicate() {
    let (d, port) = flight_daemon();
    let mut c = d.client();
    c.append("test", &bars(&["A", "B"], 0, 30)).unwrap();
    let rt = runtime();
    let got = within(&rt, "a subscription", async {
        let mut f = connect(port).await;
        let mut stream = f
            .do_get(Ticket::new(subscribe_ticket(T0 + 10 * MIN, "B")))
            .await
            .unwrap();
        // Live appends while the history streams: minutes 30..40, both symbols.
        let sock = d.socket.clone();
        let feeder = std::thread::spawn(move || {
            let mut c = ringfeed_client::Client::connect(Some(&sock)).unwrap();
            for m in 30..40 {
                c.append("test", &bars(&["A", "B"], m, 1)).unwrap();
            }
        });
        let mut got: Vec<(i64, String)> = Vec::new();
        while got.len() < 30 {
            let b = stream
                .next()
                .await
                .expect("the subscription goes on")
                .unwrap();
            got.extend(keys(&b));
        }
        feeder.join().unwrap();
        got
    });
    // B only, minutes 10..39, each once, in order.
    let want: Vec<(i64, String)> = (10..40).map(|m| (T0 + m * MIN, "B".to_string())).collect();
    assert_eq!(got, want);
    still_serves_symbol(&rt, &d, port, "A");
}

#[test]
fn a_subscriber_that_stops_reading_is_cut_and_holds_nobody() {
    let (d, port) = flight_daemon();
    let mut c = d.client();
    c.append("test", &bars(&["A"], 0, 1)).unwrap();
    let rt = runtime();
    within(&rt, "a stalled subscriber", async {
        let mut slow = connect(port).await;
        let mut stream = slow
            .do_get(Ticket::new(subscribe_ticket(T0, "A")))
            .await
            .unwrap();
        stream.next().await.unwrap().unwrap(); // the history, then nothing read
                                               // More live batches than the backlog, and more bytes than HTTP/2's windows
                                               // hold, while it reads nothing; the writer is never held up.
        let t = std::time::Instant::now();
        let n = ringfeed_daemon::transport::flight::LIVE_BACKLOG as i64 + 100;
        for k in 0..n {
            c.append("test", &bars(&["A"], 1 + k * 1000, 1000)).unwrap();
        }
        assert!(
            t.elapsed() < Duration::from_secs(90),
            "appends waited for the subscriber"
        );
        // Reading now: what was queued, then the cut, saying why.
        let (mut cut, mut rows) = (None, 0);
        while let Ok(Some(item)) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await
        {
            match item {
                Ok(b) => rows += b.num_rows(),
                Err(e) => {
                    cut = Some(status_of(e));
                    break;
                }
            }
        }
        eprintln!("rows received before the cut: {rows} of {}", n * 1000);
        let e = cut.expect("a stalled subscriber is cut");
        assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
        assert!(e.message().contains("behind"), "{e:?}");
        // Bad tickets: a clear INVALID_ARGUMENT.
        let bad =
            serde_json::to_vec(&serde_json::json!({"subscribe": {"dataset": "test"}})).unwrap();
        let e = status_of(
            connect(port)
                .await
                .do_get(Ticket::new(bad))
                .await
                .unwrap_err(),
        );
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
        assert!(e.message().contains("subscribe"), "{e:?}");
    });
    still_serves_symbol(&rt, &d, port, "A");
}

#[test]
fn a_writer_that_vanishes_mid_do_put_loses_nothing_acknowledged() {
    let port = free_port();
    let d = put_daemon(tempfile::tempdir().unwrap(), port);
    let rt = runtime();
    let acked = within(&rt, "a DoPut cut short", async {
        let mut w = connect_as(port, Some(WRITER)).await;
        // Batches trickle in; the client takes acks as they come, then vanishes (its
        // connection dropped) with its request stream still open.
        let (tx, rx) = futures::channel::mpsc::unbounded::<RecordBatch>();
        let data = arrow_flight::encode::FlightDataEncoderBuilder::new()
            .with_flight_descriptor(Some(FlightDescriptor::new_path(vec!["test".into()])))
            .build(rx.map(Ok));
        // The first batch goes before the call: the daemon answers once it has the
        // descriptor, which travels with it.
        tx.unbounded_send(bars(&["V"], 0, 10)).unwrap();
        let mut acks = w.do_put(data).await.unwrap();
        let mut acked = 0u64;
        for k in 1..=5 {
            let a = acks.next().await.expect("an ack").unwrap();
            let v: serde_json::Value = serde_json::from_slice(&a.app_metadata).unwrap();
            acked += v["rows"].as_u64().unwrap();
            if k < 5 {
                tx.unbounded_send(bars(&["V"], k * 10, 10)).unwrap();
            }
        }
        // A sixth batch sent, and the client gone before its ack.
        tx.unbounded_send(bars(&["V"], 50, 10)).unwrap();
        drop(acks);
        drop(w);
        drop(tx);
        acked
    });
    assert_eq!(acked, 50);
    // Every acknowledged row is there (the unacknowledged batch may or may not be), and
    // the daemon still takes and answers writes.
    std::thread::sleep(Duration::from_millis(200));
    let q1 = QuerySpec {
        symbols: vec!["V".into()],
        ..q("1m")
    };
    let n = local(&d, &q1).num_rows();
    assert!(n == 50 || n == 60, "{n} rows of V after 50 acknowledged");
    within(&rt, "a DoPut after the vanished one", async {
        let mut w = connect_as(port, Some(WRITER)).await;
        assert_eq!(
            put(&mut w, "test", vec![bars(&["V"], 100, 5)])
                .await
                .unwrap(),
            vec![5]
        );
    });
    assert_eq!(local(&d, &q1).num_rows(), n + 5);
}
