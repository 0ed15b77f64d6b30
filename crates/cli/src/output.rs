//! How `ringfeed query` prints a result: a bounded table, CSV or JSON, with
//! timestamps as ISO-8601 and floats without representation noise.

use anyhow::Result;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use std::io::Write;

pub(crate) fn iso(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let sub = ns.rem_euclid(1_000_000_000) as u32;
    match chrono_like(secs, sub) {
        Some(s) => s,
        None => ns.to_string(),
    }
}

fn chrono_like(secs: i64, sub: u32) -> Option<String> {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let date = ringfeed_store::store::day_string(days);
    let t = format!("{:02}:{:02}:{:02}", rem / 3600, rem % 3600 / 60, rem % 60);
    Some(if sub == 0 {
        format!("{date}T{t}Z")
    } else {
        format!("{date}T{t}.{sub:09}Z")
    })
}

/// Timestamps as ISO-8601 strings (arrow's formatter needs chrono-tz for named zones).
pub(crate) fn display_batch(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampNanosecondType;
    let mut fields = Vec::new();
    let mut cols: Vec<arrow_array::ArrayRef> = Vec::new();
    for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
        if let arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, _) =
            f.data_type()
        {
            let ts = c.as_primitive::<TimestampNanosecondType>();
            let s: arrow_array::StringArray = ts.iter().map(|v| v.map(iso)).collect();
            fields.push(arrow_schema::Field::new(
                f.name(),
                arrow_schema::DataType::Utf8,
                true,
            ));
            cols.push(std::sync::Arc::new(s));
        } else {
            fields.push(f.as_ref().clone());
            cols.push(c.clone());
        }
    }
    Ok(RecordBatch::try_new(
        std::sync::Arc::new(arrow_schema::Schema::new(fields)),
        cols,
    )?)
}

fn formatters(batch: &RecordBatch) -> Result<Vec<ArrayFormatter<'_>>> {
    let opts = FormatOptions::default().with_null("");
    batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).map_err(Into::into))
        .collect()
}

/// The text of one cell: floats through [`crate::decimal::decimal`], the rest as Arrow
/// displays them (nulls empty).
fn cell(batch: &RecordBatch, fmts: &[ArrayFormatter<'_>], j: usize, i: usize) -> String {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;
    let col = batch.column(j);
    match col.as_primitive_opt::<Float64Type>() {
        Some(f) if f.is_valid(i) => crate::decimal::decimal(f.value(i)),
        _ => fmts[j].value(i).to_string(),
    }
}

/// A table for people: columns that are null in every row are left out (and named
/// below), and with `shown = Some(n)` only the first and last `n` rows are printed.
pub(crate) fn write_table(
    out: &mut impl Write,
    batch: &RecordBatch,
    shown: Option<usize>,
) -> Result<()> {
    let fmts = formatters(batch)?;
    let schema = batch.schema();
    let n = batch.num_rows();
    let (kept, empty): (Vec<usize>, Vec<usize>) =
        (0..batch.num_columns()).partition(|j| n == 0 || batch.column(*j).null_count() < n);
    let names: Vec<String> = kept
        .iter()
        .map(|j| schema.field(*j).name().clone())
        .collect();
    // Rows printed, and where the gap goes.
    let (head, tail) = match shown {
        Some(k) if n > 2 * k => (0..k, n - k..n),
        _ => (0..n, n..n),
    };
    let row =
        |i: usize| -> Vec<String> { kept.iter().map(|j| cell(batch, &fmts, *j, i)).collect() };
    let top: Vec<Vec<String>> = head.clone().map(row).collect();
    let bottom: Vec<Vec<String>> = tail.clone().map(row).collect();
    let widths: Vec<usize> = names
        .iter()
        .enumerate()
        .map(|(j, name)| {
            top.iter()
                .chain(&bottom)
                .map(|r| r[j].chars().count())
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, row: &[String]| -> std::io::Result<()> {
        let s: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:>w$}"))
            .collect();
        writeln!(out, "{}", s.join("  ").trim_end())
    };
    line(out, &names)?;
    for r in &top {
        line(out, r)?;
    }
    let skipped = n - head.len() - tail.len();
    if skipped > 0 {
        writeln!(
            out,
            "… {skipped} rows not shown (--rows N or --all to see more) …"
        )?;
    }
    for r in &bottom {
        line(out, r)?;
    }
    writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" })?;
    if !empty.is_empty() && n > 0 {
        let empty: Vec<&str> = empty
            .iter()
            .map(|j| schema.field(*j).name().as_str())
            .collect();
        writeln!(out, "(not shown, empty in every row: {})", empty.join(", "))?;
    }
    Ok(())
}

pub(crate) fn write_text(out: &mut impl Write, batch: &RecordBatch, json: bool) -> Result<()> {
    let schema = batch.schema();
    let fmts = formatters(batch)?;
    if !json {
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        writeln!(out, "{}", names.join(","))?;
    }
    for i in 0..batch.num_rows() {
        if json {
            let mut m = serde_json::Map::new();
            for (j, f) in schema.fields().iter().enumerate() {
                let col = batch.column(j);
                let v = if col.is_null(i) {
                    serde_json::Value::Null
                } else {
                    use arrow_array::cast::AsArray;
                    use arrow_array::types::{Float64Type, Int64Type};
                    match col.data_type() {
                        arrow_schema::DataType::Float64 => serde_json::json!(
                            crate::decimal::rounded(col.as_primitive::<Float64Type>().value(i))
                        ),
                        arrow_schema::DataType::Int64 => {
                            serde_json::json!(col.as_primitive::<Int64Type>().value(i))
                        }
                        arrow_schema::DataType::Boolean => {
                            serde_json::json!(col.as_boolean().value(i))
                        }
                        _ => serde_json::Value::String(fmts[j].value(i).to_string()),
                    }
                };
                m.insert(f.name().clone(), v);
            }
            writeln!(out, "{}", serde_json::Value::Object(m))?;
        } else {
            let row: Vec<String> = (0..fmts.len()).map(|j| cell(batch, &fmts, j, i)).collect();
            writeln!(out, "{}", row.join(","))?;
        }
    }
    Ok(())
}
