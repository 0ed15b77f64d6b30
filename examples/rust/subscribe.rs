//! Subscribes to a ring and prints each batch, its latency and a zero-copy check.
//!
//! cargo run --release -p ringfeed-arrow --example subscribe -- [NAME]
use arrow_array::{cast::AsArray, types::Float64Type};
use ringfeed_arrow::{Reader, StartAt};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "demo.bars".into());
    let deadline = Instant::now() + Duration::from_secs(30);
    let reader = loop {
        match Reader::open(&name, StartAt::Oldest) {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for {name}: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(e.into()),
        }
    };
    for batch in reader {
        let batch = batch?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos() as u64;
        let close = batch
            .column_by_name("close")
            .expect("close column")
            .as_primitive::<Float64Type>();
        println!(
            "rust  seq {:>3}  rows {:>6}  last close {:>10.2}  latency {:>6.1} us  zero-copy {}",
            batch.seq(),
            batch.num_rows(),
            close.value(close.len() - 1),
            now.saturating_sub(batch.ts_ns()) as f64 / 1e3,
            batch.is_zero_copy()
        );
    }
    Ok(())
}
