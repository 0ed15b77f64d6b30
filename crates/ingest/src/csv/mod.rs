//! CSV input, Binance kline, generic OHLCV and trades alike: the layout of a file's
//! first line, then 8 MiB chunks of whole lines parsed on several threads
//! ([`parts`]) and replayed in file order into batches. Where the bytes come from
//! (file, zip, stdin) is [`input`]'s; one line into a row is [`crate::line`]'s.

mod input;
mod parts;

pub(crate) use input::open_input;
use input::progress;
use parts::{parse_parallel, parse_threads, Part};

use crate::line::LineParser;
use crate::rows::{flush_rows, move_rows, BarBuf, RowBuf};
use crate::{parse_ts, sniff_binance_kline, BadRow, Format, IngestError, IngestOptions, Sink};
use ringfeed_store::schema::{Kind, TickColumns};
use ringfeed_store::validate::RowReport;
use std::io::Read;
use std::path::Path;

/// The separator, fields and header of a CSV's first non-blank line.
pub(crate) struct Layout<'a> {
    pub(crate) line: &'a [u8],
    pub(crate) sep: u8,
    pub(crate) fields: Vec<&'a [u8]>,
    pub(crate) header: bool,
}

impl<'a> Layout<'a> {
    pub(crate) fn of(first: &'a [u8], opts: &IngestOptions) -> Self {
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
    pub(crate) fn binance_kline(&self, format: Format, kind: Kind, opts: &IngestOptions) -> bool {
        opts.format.is_none()
            && format == Format::Csv
            && kind == Kind::Bars
            && opts.columns.is_empty()
            && !self.header
            && self.sep == b','
            && sniff_binance_kline(self.line).is_some()
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn load_csv(
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
pub(crate) fn load_csv_rows<B: RowBuf>(
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
    let threads = parse_threads();
    let mut replay = Replay {
        rows: B::default(),
        pool: Vec::new(),
        line_no: 0,
        cap: opts.batch_rows.max(1),
        file: shown.display().to_string(),
        strict: opts.policy.strict,
        bar: &bar,
    };
    let mut parser: Option<LineParser> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    let mut eof = false;
    while !eof {
        // Up to 8 MiB more, read into the spare capacity (no zeroing first).
        let n = (&mut input)
            .take(8 << 20)
            .read_to_end(&mut buf)
            .map_err(ioerr)?;
        eof = n == 0;
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
        if parser.is_none() {
            (parser, start) =
                first_line(&buf, end, &mut replay.line_no, format, kind, opts, shown)?;
        }
        let Some(p) = parser.as_ref() else {
            buf.drain(..end.min(buf.len()));
            continue;
        };
        let region = &buf[start.min(end)..end];
        let parse = |line: &[u8], out: &mut B| parse_line(p, line, out);
        for part in parse_parallel(region, threads, &mut replay.pool, &parse) {
            replay.part(part, report, sink)?;
        }
        buf.drain(..end);
    }
    flush_rows(&mut replay.rows, report, sink)?;
    bar.finish_and_clear();
    Ok(())
}

/// The first non-blank line of `buf[..end]` fixes the separator, columns and header:
/// its parser, or `None` when the region is blank, and where the data starts (after
/// the blank lines and a header, which count into `line_no`).
fn first_line(
    buf: &[u8],
    end: usize,
    line_no: &mut u64,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    shown: &Path,
) -> Result<(Option<LineParser>, usize), IngestError> {
    let mut start = 0;
    while start < end {
        let stop = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i);
        let mut line = &buf[start..stop];
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            *line_no += 1;
            start = stop + 1;
            continue;
        }
        let (p, was_header) = LineParser::new(line, format, kind, opts, shown)?;
        if was_header {
            *line_no += 1;
            start = stop + 1;
        }
        return Ok((Some(p), start));
    }
    Ok((None, start))
}

/// The replay of parsed parts in file order, and what it carries from chunk to chunk.
struct Replay<'a, B> {
    /// The batch being built.
    rows: B,
    /// Part buffers, reused from chunk to chunk (no fresh pages to fault in each time).
    pool: Vec<B>,
    /// Lines before the region being parsed (blank ones and the header too).
    line_no: u64,
    /// Rows per batch.
    cap: usize,
    /// The file as bad rows name it.
    file: String,
    strict: bool,
    bar: &'a indicatif::ProgressBar,
}

impl<B: RowBuf> Replay<'_, B> {
    /// Move `part`'s rows to the batch up to each bad line, report the line (flagged,
    /// rejected, or the error of a strict load), then move the rest.
    fn part(
        &mut self,
        mut part: Part<B>,
        report: &mut RowReport,
        sink: &mut Sink<'_>,
    ) -> Result<(), IngestError> {
        let mut cursor = 0;
        let events = std::mem::take(&mut part.events);
        for ev in events {
            move_rows(
                &mut self.rows,
                &mut part.buf,
                cursor,
                ev.row,
                self.cap,
                report,
                sink,
            )?;
            cursor = ev.row;
            let row = BadRow {
                file: self.file.clone(),
                line: self.line_no + ev.line,
                reason: ev.reason,
            };
            if !ev.reject {
                report.flag(row);
            } else if self.strict {
                report.rows_read += ev.data_lines;
                self.bar.finish_and_clear();
                return Err(IngestError::Strict { row });
            } else {
                report.reject(row);
            }
        }
        let all = part.buf.rows();
        move_rows(
            &mut self.rows,
            &mut part.buf,
            cursor,
            all,
            self.cap,
            report,
            sink,
        )?;
        report.rows_read += part.data_lines;
        self.line_no += part.lines;
        self.pool.push(part.buf);
        Ok(())
    }
}
