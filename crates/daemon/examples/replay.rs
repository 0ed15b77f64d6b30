//! Replays a topic from a time, then follows it live: the stored bars first,
//! then every live batch, with no gap and no duplicate at the seam.
//!
//! cargo run --release -p ringfeed-daemon --example replay -- SOCKET DATASET TIMEFRAME START
//! (START: "YYYY-MM-DD", RFC 3339 or ns; SOCKET "-" for the default socket)
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use ringfeed_arrow::ReadError;
use ringfeed_client::TimeSpec;
use ringfeed_client::{Client, ClientError};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [socket, dataset, tf, start] = &args[..] else {
        eprintln!("usage: replay SOCKET DATASET TIMEFRAME START");
        std::process::exit(2);
    };
    let socket = (socket != "-").then(|| Path::new(socket));
    let mut c = Client::connect(socket)?;
    let t = Instant::now();
    let mut r = c.replay(dataset, tf, TimeSpec::Text(start.into()), &[])?;
    println!(
        "rust  replay {dataset}/{tf} from {start}: {} stored bars, live from seq {} (set up in {:.2} ms)",
        r.history_rows(),
        r.seam(),
        t.elapsed().as_secs_f64() * 1e3
    );
    loop {
        let history = r.in_history();
        let b = match r.read(Duration::from_secs(3600)) {
            Ok(Some(b)) => b,
            Ok(None) => continue,
            Err(ClientError::Read {
                source: ReadError::Closed { .. } | ReadError::WriterGone { .. },
                ..
            }) => {
                println!("rust  the daemon closed {dataset}/{tf}: done");
                break;
            }
            Err(e) => return Err(e.into()),
        };
        let ts = b
            .column_by_name("ts")
            .expect("ts")
            .as_primitive::<TimestampNanosecondType>();
        let close = b
            .column_by_name("close")
            .expect("close")
            .as_primitive::<Float64Type>();
        let n = b.num_rows();
        let last = chrono_like(ts.value(n - 1));
        if history {
            println!(
                "rust  {tf} history {n:>4} bars, last {last} close {:>9.2}, zero-copy {}",
                close.value(n - 1),
                b.is_zero_copy()
            );
        } else {
            let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
            println!(
                "rust  {tf} live seq {:>3} rows {n} last {last} close {:>9.2} latency {:>6.0} us zero-copy {}",
                b.seq(),
                close.value(n - 1),
                now.saturating_sub(b.ts_ns()) as f64 / 1e3,
                b.is_zero_copy()
            );
        }
    }
    Ok(())
}

/// "HH:MM" of a UTC timestamp in ns.
fn chrono_like(ns: i64) -> String {
    let m = ns.div_euclid(60_000_000_000).rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}
