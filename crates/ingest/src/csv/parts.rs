//! A chunk of whole CSV lines cut into parts at line ends and parsed on several
//! threads; each part keeps its rows and its bad lines for the replay in file order.

use crate::rows::RowBuf;

/// A bad or flagged line met while parsing a part of a chunk.
pub(super) struct Event {
    /// Rows pushed before it (a flagged row is the row at this index).
    pub(super) row: usize,
    /// Line number within the part, 1-based.
    pub(super) line: u64,
    /// Data lines parsed up to and including it.
    pub(super) data_lines: u64,
    pub(super) reject: bool,
    pub(super) reason: String,
}

/// The result of parsing one run of whole lines.
pub(super) struct Part<B> {
    pub(super) buf: B,
    pub(super) events: Vec<Event>,
    /// Lines (blank ones too).
    pub(super) lines: u64,
    /// Non-blank data lines.
    pub(super) data_lines: u64,
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
