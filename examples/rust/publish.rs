//! Publishes synthetic 1-minute bars for a few symbols into a ring.
//!
//! cargo run --release -p ringfeed-arrow --example publish -- [NAME] [BATCHES] [ROWS]
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use ringfeed_arrow::{ohlcv_schema, OnFull, RingOptions, Writer};
use std::{sync::Arc, time::Duration};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.get(1).map_or("demo.bars", |s| s.as_str());
    let batches: u64 = args.get(2).map_or(Ok(20), |s| s.parse())?;
    let rows: usize = args.get(3).map_or(Ok(1000), |s| s.parse())?;
    let schema = Arc::new(ohlcv_schema());
    let opts = RingOptions {
        slots: 16,
        slot_bytes: 8 << 20,
        on_full: OnFull::Block(Duration::from_secs(10)),
        force: true,
        ..Default::default()
    };
    let mut w = Writer::create(name, &schema, opts)?;
    w.ring_mut().wait_for_readers(1, Duration::from_secs(10));
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ADAUSDT"];
    let mut price = [42_000.0, 3_000.0, 150.0, 0.5];
    let t0 = 1_735_689_600_000_000_000i64; // 2025-01-01T00:00:00Z
    for b in 0..batches {
        let (mut ts, mut sym, mut o, mut h, mut l, mut c, mut v) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for r in 0..rows {
            let k = r % symbols.len();
            let minute = (b as i64 * rows as i64 + r as i64) / symbols.len() as i64;
            let open = price[k];
            let close =
                open * (1.0 + 0.001 * (((minute * 7919 + k as i64) % 21) as f64 - 10.0) / 10.0);
            price[k] = close;
            ts.push(t0 + minute * 60_000_000_000);
            sym.push(symbols[k]);
            o.push(open);
            h.push(open.max(close) * 1.0005);
            l.push(open.min(close) * 0.9995);
            c.push(close);
            v.push(1.0 + (minute % 13) as f64);
        }
        let col = |x: Vec<f64>| Arc::new(Float64Array::from(x)) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
                Arc::new(StringViewArray::from(sym)),
                col(o),
                col(h),
                col(l),
                col(c),
                col(v),
            ],
        )?;
        let seq = w.write(&batch)?;
        println!("published seq {seq}: {rows} bars");
        std::thread::sleep(Duration::from_millis(50));
    }
    w.close();
    Ok(())
}
