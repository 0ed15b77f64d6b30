//! CSV input: the layout of a file's first line, rows parsed in parallel
//! parts into bar or tick buffers, and the line parser. Loaders in
//! [`super`] call [`load_csv`].

use super::*;
/// The separator, fields and header of a CSV's first non-blank line.
pub(super) struct Layout<'a> {
    pub(super) line: &'a [u8],
    pub(super) sep: u8,
    pub(super) fields: Vec<&'a [u8]>,
    pub(super) header: bool,
}

impl<'a> Layout<'a> {
    pub(super) fn of(first: &'a [u8], opts: &IngestOptions) -> Self {
        let sep = opts.separator.unwrap_or_else(|| {
            [b',', b';', b'\t', b'|']
                .into_iter()
                .max_by_key(|s| first.iter().filter(|c| *c == s).count())
                .unwrap_or(b',')
        });
        let fields: Vec<&[u8]> = first.split(|c| *c == sep).collect();
        let looks_header = parse_ts(fields[0], &opts.ts_format, opts.tz.as_ref()).is_err()
            && fields[0].iter().any(u8::is_ascii_alphabetic);
        Layout {
            line: first,
            sep,
            header: opts.header.unwrap_or(looks_header),
            fields,
        }
    }

    /// A CSV of bars, format not given, no column mapping, no header, and a first line
    /// of Binance's kline layout: read it as Binance kline CSV.
    pub(super) fn binance_kline(&self, format: Format, kind: Kind, opts: &IngestOptions) -> bool {
        opts.format.is_none()
            && format == Format::Csv
            && kind == Kind::Bars
            && opts.columns.is_empty()
            && !self.header
            && self.sep == b','
            && sniff_binance_kline(self.line).is_some()
    }
}

/// Row buffers the CSV parser fills: bars ([`BarBuf`]) or ticks ([`TickColumns`]).
pub(super) trait RowBuf: Default + Send {
    fn rows(&self) -> usize;
    /// Make room for `n` more rows.
    fn reserve(&mut self, n: usize);
    /// Drop every row, keeping the allocations.
    fn clear(&mut self);
    /// Append rows `a..b` of `src` (which may be emptied by the call when it moves all of them).
    fn extend_from(&mut self, src: &mut Self, a: usize, b: usize);
    /// Build the record batch of every row, updating the report's totals, and clear.
    fn take_batch(&mut self, report: &mut RowReport) -> Result<RecordBatch, ArrowError>;
}

/// A nullable column under construction: values, plus validity once a null arrives.
#[derive(Default)]
pub(super) struct OptVec<T> {
    vals: Vec<T>,
    /// Validity per row; empty while every row is valid.
    valid: Vec<bool>,
}

impl<T: Copy + Default> OptVec<T> {
    #[inline]
    pub(super) fn push(&mut self, v: Option<T>) {
        match v {
            Some(x) => {
                self.vals.push(x);
                if !self.valid.is_empty() {
                    self.valid.push(true);
                }
            }
            None => {
                if self.valid.is_empty() {
                    self.valid.resize(self.vals.len(), true);
                }
                self.vals.push(T::default());
                self.valid.push(false);
            }
        }
    }
    fn extend_from(&mut self, src: &Self, a: usize, b: usize) {
        let before = self.vals.len();
        self.vals.extend_from_slice(&src.vals[a..b]);
        let src_nulls = !src.valid.is_empty() && src.valid[a..b].contains(&false);
        if src_nulls || !self.valid.is_empty() {
            self.valid.resize(before, true);
            if src.valid.is_empty() {
                self.valid.resize(self.vals.len(), true);
            } else {
                self.valid.extend_from_slice(&src.valid[a..b]);
            }
        }
    }
    fn take(&mut self) -> (Vec<T>, Option<NullBuffer>) {
        let valid = std::mem::take(&mut self.valid);
        let nulls = (!valid.is_empty() && valid.contains(&false)).then(|| NullBuffer::from(valid));
        (std::mem::take(&mut self.vals), nulls)
    }
}

/// Bar rows under construction, column by column; symbols as runs, not one `String` a row.
#[derive(Default)]
pub(super) struct BarBuf {
    ts: Vec<i64>,
    /// Runs of equal symbols: (first row, symbol).
    sym: Vec<(usize, String)>,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    quote_volume: OptVec<f64>,
    trades: OptVec<i64>,
    taker_buy_base: OptVec<f64>,
    taker_buy_quote: OptVec<f64>,
}

impl BarBuf {
    /// Record the symbol of the row about to be pushed.
    #[inline]
    pub(super) fn symbol_str(&mut self, s: &str) {
        if self.sym.last().is_none_or(|(_, l)| l != s) {
            self.sym.push((self.ts.len(), s.to_string()));
        }
    }
    /// The same from CSV bytes (lossy UTF-8, as before).
    #[inline]
    pub(super) fn symbol_bytes(&mut self, b: &[u8]) {
        if self.sym.last().is_some_and(|(_, l)| l.as_bytes() == b) {
            return;
        }
        let s = String::from_utf8_lossy(b);
        self.symbol_str(&s);
    }
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn push(
        &mut self,
        ts: i64,
        o: f64,
        h: f64,
        l: f64,
        c: f64,
        v: f64,
        extra: (Option<f64>, Option<i64>, Option<f64>, Option<f64>),
    ) {
        self.ts.push(ts);
        self.open.push(o);
        self.high.push(h);
        self.low.push(l);
        self.close.push(c);
        self.volume.push(v);
        self.quote_volume.push(extra.0);
        self.trades.push(extra.1);
        self.taker_buy_base.push(extra.2);
        self.taker_buy_quote.push(extra.3);
    }
}

impl RowBuf for BarBuf {
    fn rows(&self) -> usize {
        self.ts.len()
    }
    fn reserve(&mut self, n: usize) {
        self.ts.reserve(n);
        for v in [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
            &mut self.quote_volume.vals,
            &mut self.taker_buy_base.vals,
            &mut self.taker_buy_quote.vals,
        ] {
            v.reserve(n);
        }
        self.trades.vals.reserve(n);
    }
    fn clear(&mut self) {
        self.ts.clear();
        self.sym.clear();
        for v in [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
            &mut self.quote_volume.vals,
            &mut self.taker_buy_base.vals,
            &mut self.taker_buy_quote.vals,
        ] {
            v.clear();
        }
        self.trades.vals.clear();
        for v in [
            &mut self.quote_volume.valid,
            &mut self.trades.valid,
            &mut self.taker_buy_base.valid,
            &mut self.taker_buy_quote.valid,
        ] {
            v.clear();
        }
    }
    fn extend_from(&mut self, src: &mut Self, a: usize, b: usize) {
        if self.ts.is_empty() && a == 0 && b == src.ts.len() {
            std::mem::swap(self, src);
            return;
        }
        let base = self.ts.len();
        // Runs of src overlapping a..b, re-based.
        let first = src.sym.partition_point(|(r, _)| *r <= a).saturating_sub(1);
        for (r, s) in &src.sym[first..] {
            if *r >= b {
                break;
            }
            let at = base + r.saturating_sub(a);
            if self.sym.last().is_none_or(|(_, l)| l != s) {
                self.sym.push((at, s.clone()));
            }
        }
        self.ts.extend_from_slice(&src.ts[a..b]);
        self.open.extend_from_slice(&src.open[a..b]);
        self.high.extend_from_slice(&src.high[a..b]);
        self.low.extend_from_slice(&src.low[a..b]);
        self.close.extend_from_slice(&src.close[a..b]);
        self.volume.extend_from_slice(&src.volume[a..b]);
        self.quote_volume.extend_from(&src.quote_volume, a, b);
        self.trades.extend_from(&src.trades, a, b);
        self.taker_buy_base.extend_from(&src.taker_buy_base, a, b);
        self.taker_buy_quote.extend_from(&src.taker_buy_quote, a, b);
    }
    fn take_batch(&mut self, report: &mut RowReport) -> Result<RecordBatch, ArrowError> {
        let mut b = std::mem::take(self);
        let n = b.ts.len();
        report.rows_ok += n as u64;
        if let (Some(lo), Some(hi)) = (b.ts.iter().min(), b.ts.iter().max()) {
            report.min_ts = Some(report.min_ts.map_or(*lo, |m| m.min(*lo)));
            report.max_ts = Some(report.max_ts.map_or(*hi, |m| m.max(*hi)));
        }
        let mut sym = StringViewBuilder::with_capacity(n);
        for (k, (first, s)) in b.sym.iter().enumerate() {
            let end = b.sym.get(k + 1).map_or(n, |r| r.0);
            for _ in *first..end {
                sym.append_value(s);
            }
            if !report.symbols.contains(s) {
                report.symbols.insert(s.clone());
            }
        }
        let f64s = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
        let opt = |o: &mut OptVec<f64>| -> ArrayRef {
            let (v, nulls) = o.take();
            Arc::new(Float64Array::new(v.into(), nulls))
        };
        let (tr, tr_nulls) = b.trades.take();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from(std::mem::take(&mut b.ts)).with_timezone("UTC"),
            ),
            Arc::new(sym.finish()),
            f64s(std::mem::take(&mut b.open)),
            f64s(std::mem::take(&mut b.high)),
            f64s(std::mem::take(&mut b.low)),
            f64s(std::mem::take(&mut b.close)),
            f64s(std::mem::take(&mut b.volume)),
            opt(&mut b.quote_volume),
            Arc::new(Int64Array::new(tr.into(), tr_nulls)),
            opt(&mut b.taker_buy_base),
            opt(&mut b.taker_buy_quote),
        ];
        RecordBatch::try_new(crate::schema::bar_schema(), cols)
    }
}

impl RowBuf for TickColumns {
    fn rows(&self) -> usize {
        self.ts.len()
    }
    fn reserve(&mut self, n: usize) {
        self.ts.reserve(n);
        self.symbol.reserve(n);
        self.price.reserve(n);
        self.size.reserve(n);
        self.side.reserve(n);
        self.trade_id.reserve(n);
    }
    fn clear(&mut self) {
        self.ts.clear();
        self.symbol.clear();
        self.price.clear();
        self.size.clear();
        self.side.clear();
        self.trade_id.clear();
    }
    fn extend_from(&mut self, src: &mut Self, a: usize, b: usize) {
        if self.ts.is_empty() && a == 0 && b == src.ts.len() {
            std::mem::swap(self, src);
            return;
        }
        self.ts.extend_from_slice(&src.ts[a..b]);
        self.symbol
            .extend(src.symbol[a..b].iter_mut().map(std::mem::take));
        self.price.extend_from_slice(&src.price[a..b]);
        self.size.extend_from_slice(&src.size[a..b]);
        self.side.extend_from_slice(&src.side[a..b]);
        self.trade_id.extend_from_slice(&src.trade_id[a..b]);
    }
    fn take_batch(&mut self, report: &mut RowReport) -> Result<RecordBatch, ArrowError> {
        for (t, s) in self.ts.iter().zip(&self.symbol) {
            report.accept(*t);
            if !report.symbols.contains(s) {
                report.symbols.insert(s.clone());
            }
        }
        std::mem::take(self).into_batch()
    }
}

/// A bad or flagged line met while parsing a part of a chunk.
pub(super) struct Event {
    /// Rows pushed before it (a flagged row is the row at this index).
    row: usize,
    /// Line number within the part, 1-based.
    line: u64,
    /// Data lines parsed up to and including it.
    data_lines: u64,
    reject: bool,
    reason: String,
}

/// The result of parsing one run of whole lines.
pub(super) struct Part<B> {
    buf: B,
    events: Vec<Event>,
    /// Lines (blank ones too).
    lines: u64,
    /// Non-blank data lines.
    data_lines: u64,
}

/// Parse whole lines (`bytes` ends with a newline, or at the end of the input).
pub(super) fn parse_part<B: RowBuf>(
    bytes: &[u8],
    mut buf: B,
    parse: &(impl Fn(&[u8], &mut B) -> Result<Option<String>, String> + Sync),
) -> Part<B> {
    buf.clear();
    let mut part = Part {
        buf,
        events: Vec::new(),
        lines: 0,
        data_lines: 0,
    };
    // Room for the rows, guessed from the lines in the first 4 KiB (+10 %).
    let sample = &bytes[..bytes.len().min(4096)];
    let lines = memchr::memchr_iter(b'\n', sample).count();
    if let Some(line_len) = sample.len().checked_div(lines) {
        part.buf
            .reserve(bytes.len() / line_len.max(1) * 11 / 10 + 1);
    }
    let mut start = 0;
    while start < bytes.len() {
        let stop = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let mut line = &bytes[start..stop];
        start = stop + 1;
        part.lines += 1;
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        part.data_lines += 1;
        let row = part.buf.rows();
        let (reject, reason) = match parse(line, &mut part.buf) {
            Ok(None) => continue,
            Ok(Some(flag)) => (false, flag),
            Err(reason) => (true, reason),
        };
        part.events.push(Event {
            row,
            line: part.lines,
            data_lines: part.data_lines,
            reject,
            reason,
        });
    }
    part
}

/// Split `bytes` (whole lines) into about `n` runs of whole lines and parse them in
/// parallel. Parts of less than 256 KiB are not worth a thread.
pub(super) fn parse_parallel<B: RowBuf>(
    bytes: &[u8],
    n: usize,
    pool: &mut Vec<B>,
    parse: &(impl Fn(&[u8], &mut B) -> Result<Option<String>, String> + Sync),
) -> Vec<Part<B>> {
    let n = n.clamp(1, (bytes.len() / (256 << 10)).max(1));
    let mut cuts = vec![0];
    for k in 1..n {
        let target = (bytes.len() * k / n).max(*cuts.last().unwrap());
        match memchr::memchr(b'\n', &bytes[target..]) {
            Some(i) => cuts.push(target + i + 1),
            None => break,
        }
    }
    cuts.push(bytes.len());
    cuts.dedup();
    let mut take = || pool.pop().unwrap_or_default();
    if cuts.len() <= 2 {
        return vec![parse_part(bytes, take(), parse)];
    }
    let first = take();
    let rest: Vec<B> = (2..cuts.len()).map(|_| take()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .skip(1)
            .zip(rest)
            .map(|(w, buf)| {
                let piece = &bytes[w[0]..w[1]];
                scope.spawn(move || parse_part(piece, buf, parse))
            })
            .collect();
        let mut parts = vec![parse_part(&bytes[..cuts[1]], first, parse)];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("parser thread")),
        );
        parts
    })
}

/// Threads for CSV parsing: the available CPUs, at most 4.
pub(super) fn parse_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[allow(clippy::too_many_arguments)]
pub(super) fn load_csv(
    path: Option<&Path>,
    shown: &Path,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    if kind == Kind::Ticks {
        load_csv_rows::<TickColumns>(path, shown, format, kind, opts, report, sink, |p, l, o| {
            p.tick(l, o)
        })
    } else {
        load_csv_rows::<BarBuf>(path, shown, format, kind, opts, report, sink, |p, l, o| {
            p.bar(l, o)
        })
    }
}

/// The CSV loader: reads 8 MiB chunks, detects the format on the first non-blank line,
/// parses the chunk's lines on several threads, then replays the parts in file order:
/// rows move to the batch being built (handed to `sink` every `batch_rows` rows, exactly
/// as a line-by-line loop would), bad lines are reported with their line numbers, and
/// `strict` stops at the first bad line in file order.
#[allow(clippy::too_many_arguments)]
pub(super) fn load_csv_rows<B: RowBuf>(
    path: Option<&Path>,
    shown: &Path,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
    parse_line: impl Fn(&LineParser, &[u8], &mut B) -> Result<Option<String>, String> + Sync,
) -> Result<(), IngestError> {
    let ioerr = |source| IngestError::Io {
        path: shown.to_path_buf(),
        source,
    };
    let mut archive = None;
    let (mut input, total): (Box<dyn Read>, _) = match path {
        Some(p) => open_input(p, &mut archive)?,
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let bar = progress(opts.progress, total, shown);
    let file = shown.display().to_string();
    let threads = parse_threads();
    let cap = opts.batch_rows.max(1);
    let mut parser: Option<LineParser> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    let mut line_no = 0u64;
    let mut eof = false;
    let mut rows = B::default();
    // Part buffers are reused from chunk to chunk (no fresh pages to fault in each time).
    let mut pool: Vec<B> = Vec::new();
    while !eof {
        // Up to 8 MiB more, read into the spare capacity (no zeroing first).
        let n = (&mut input)
            .take(8 << 20)
            .read_to_end(&mut buf)
            .map_err(ioerr)?;
        if n == 0 {
            eof = true;
        }
        bar.inc(n as u64);
        let end = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let mut start = 0;
        // The first non-blank line fixes the separator, columns and header.
        while parser.is_none() && start < end {
            let stop = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i);
            let mut line = &buf[start..stop];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                line_no += 1;
                start = stop + 1;
                continue;
            }
            let (p, was_header) = LineParser::new(line, format, kind, opts, shown)?;
            parser = Some(p);
            if was_header {
                line_no += 1;
                start = stop + 1;
            }
        }
        let Some(p) = parser.as_ref() else {
            buf.drain(..end.min(buf.len()));
            continue;
        };
        let region = &buf[start.min(end)..end];
        let parse = |line: &[u8], out: &mut B| parse_line(p, line, out);
        for mut part in parse_parallel(region, threads, &mut pool, &parse) {
            let mut cursor = 0;
            let events = std::mem::take(&mut part.events);
            for ev in events {
                move_rows(&mut rows, &mut part.buf, cursor, ev.row, cap, report, sink)?;
                cursor = ev.row;
                let row = BadRow {
                    file: file.clone(),
                    line: line_no + ev.line,
                    reason: ev.reason,
                };
                if !ev.reject {
                    report.flag(row);
                } else if opts.policy.strict {
                    report.rows_read += ev.data_lines;
                    bar.finish_and_clear();
                    return Err(IngestError::Strict { row });
                } else {
                    report.reject(row);
                }
            }
            let all = part.buf.rows();
            move_rows(&mut rows, &mut part.buf, cursor, all, cap, report, sink)?;
            report.rows_read += part.data_lines;
            line_no += part.lines;
            pool.push(part.buf);
        }
        buf.drain(..end);
    }
    flush_rows(&mut rows, report, sink)?;
    bar.finish_and_clear();
    Ok(())
}

/// Hand every buffered row to `sink` as one batch.
pub(super) fn flush_rows<B: RowBuf>(
    rows: &mut B,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    if rows.rows() == 0 {
        return Ok(());
    }
    let batch = rows
        .take_batch(report)
        .map_err(|e| IngestError::Sink(Box::new(e)))?;
    sink(batch).map_err(IngestError::Sink)
}

/// Move rows `a..b` of `src` to `rows`, flushing whenever `rows` reaches `cap`.
pub(super) fn move_rows<B: RowBuf>(
    rows: &mut B,
    src: &mut B,
    mut a: usize,
    b: usize,
    cap: usize,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    while a < b {
        let take = (cap - rows.rows()).min(b - a);
        rows.extend_from(src, a, a + take);
        a += take;
        if rows.rows() >= cap {
            flush_rows(rows, report, sink)?;
        }
    }
    Ok(())
}

pub(super) fn progress(on: bool, total: Option<u64>, path: &Path) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !on || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b.set_message(path.display().to_string());
    b
}
