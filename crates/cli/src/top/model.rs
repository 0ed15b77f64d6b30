//! What `ringfeed top` shows, as plain data: one [`Sample`] per ring per
//! refresh, [`Row`]s with rates from the deltas between two refreshes, and the
//! sort. No terminal code here, so all of it is unit-tested.

use std::cmp::Ordering;
use std::time::Instant;

/// Whether a ring's writer lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Liveness {
    /// Nobody holds the writer lock: a leftover (`ringfeed rm --stale`).
    Gone,
    /// Could not tell (the arena could not be read).
    Unknown,
    /// A live process holds the writer lock.
    Alive,
}

impl Liveness {
    /// The word the table shows.
    pub fn label(self) -> &'static str {
        match self {
            Liveness::Alive => "alive",
            Liveness::Gone => "GONE",
            Liveness::Unknown => "?",
        }
    }
}

/// One ring as seen at one refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Arena name.
    pub name: String,
    /// The daemon topic ("dataset/timeframe") this ring carries, if any.
    pub topic: Option<String>,
    /// The arena's instance id: a re-created arena starts its counters over,
    /// so no rate is computed across two instances. 0 when unknown.
    pub instance: u64,
    /// Highest published seq (None: unreadable).
    pub write_seq: Option<u64>,
    /// Payload bytes published (None: unreadable, or a layout v2.0 arena).
    pub bytes: Option<u64>,
    /// Attached readers (well-formed rows).
    pub readers: Option<u32>,
    /// Batches the slowest reader is behind.
    pub max_lag: Option<u64>,
    /// Batches leased by readers.
    pub leases: Option<u64>,
    /// Age of the oldest lease, ns.
    pub oldest_lease_ns: Option<u64>,
    /// Writer liveness.
    pub writer: Liveness,
    /// What went wrong reading it, if something did.
    pub note: Option<String>,
}

impl Sample {
    /// A ring that could not be read: its name and why.
    pub fn unreadable(name: &str, why: String) -> Self {
        Sample {
            name: name.to_string(),
            topic: None,
            instance: 0,
            write_seq: None,
            bytes: None,
            readers: None,
            max_lag: None,
            leases: None,
            oldest_lease_ns: None,
            writer: Liveness::Unknown,
            note: Some(why),
        }
    }
}

/// Every ring at one moment.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// When the sampling started.
    pub at: Instant,
    /// The rings, in discovery order.
    pub samples: Vec<Sample>,
    /// The daemon's state: `None` when not asked; `Some(Ok(socket))`, or
    /// `Some(Err(why))` when it could not be reached.
    pub daemon: Option<Result<String, String>>,
}

/// A sample with the rates since the previous refresh.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// This refresh's figures.
    pub sample: Sample,
    /// Batches per second since the previous refresh.
    pub msgs_per_s: Option<f64>,
    /// Payload bytes per second since the previous refresh.
    pub bytes_per_s: Option<f64>,
}

/// The rate of a counter between two readings `secs` apart. `None` without a
/// previous reading, with no time between them, or when the counter went
/// backwards (the ring was re-created under the same name).
pub fn rate(prev: Option<u64>, now: Option<u64>, secs: f64) -> Option<f64> {
    let (p, n) = (prev?, now?);
    if secs <= 0.0 || n < p {
        return None;
    }
    Some((n - p) as f64 / secs)
}

/// Rows for `cur`, with rates against `prev` (matched by name and instance).
pub fn rows(prev: Option<&Snapshot>, cur: &Snapshot) -> Vec<Row> {
    cur.samples
        .iter()
        .map(|s| {
            let before = prev.and_then(|p| {
                p.samples
                    .iter()
                    .find(|b| b.name == s.name && b.instance == s.instance)
                    .map(|b| (b, cur.at.saturating_duration_since(p.at).as_secs_f64()))
            });
            let (msgs_per_s, bytes_per_s) = match before {
                Some((b, secs)) => (
                    rate(b.write_seq, s.write_seq, secs),
                    rate(b.bytes, s.bytes, secs),
                ),
                None => (None, None),
            };
            Row {
                sample: s.clone(),
                msgs_per_s,
                bytes_per_s,
            }
        })
        .collect()
}

/// The columns of the table, in display order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Arena name.
    Name,
    /// Daemon topic.
    Topic,
    /// Batches per second.
    Msgs,
    /// MB per second.
    Mb,
    /// Attached readers.
    Readers,
    /// Slowest reader's lag.
    Lag,
    /// Leased batches.
    Leases,
    /// Oldest lease's age.
    LeaseAge,
    /// Writer liveness.
    Writer,
}

impl Column {
    /// Every column, in display (and `s` cycling) order.
    pub const ALL: [Column; 9] = [
        Column::Name,
        Column::Topic,
        Column::Msgs,
        Column::Mb,
        Column::Readers,
        Column::Lag,
        Column::Leases,
        Column::LeaseAge,
        Column::Writer,
    ];

    /// The header, as printed (one word, so `--once` output splits on whitespace).
    pub fn title(self) -> &'static str {
        match self {
            Column::Name => "NAME",
            Column::Topic => "TOPIC",
            Column::Msgs => "MSGS/S",
            Column::Mb => "MB/S",
            Column::Readers => "READERS",
            Column::Lag => "LAG",
            Column::Leases => "LEASES",
            Column::LeaseAge => "OLDEST_LEASE",
            Column::Writer => "WRITER",
        }
    }

    /// The name `--sort` takes and the title bar shows.
    pub fn key(self) -> &'static str {
        match self {
            Column::Name => "name",
            Column::Topic => "topic",
            Column::Msgs => "msgs",
            Column::Mb => "mb",
            Column::Readers => "readers",
            Column::Lag => "lag",
            Column::Leases => "leases",
            Column::LeaseAge => "lease-age",
            Column::Writer => "writer",
        }
    }

    /// Parses a `--sort` value (the key or the header, any case).
    pub fn parse(s: &str) -> Option<Column> {
        let s = s.to_ascii_lowercase();
        Column::ALL
            .into_iter()
            .find(|c| c.key() == s || c.title().to_ascii_lowercase() == s)
    }

    /// The next column (`s`), or the previous one (`S`), wrapping.
    pub fn cycle(self, forward: bool) -> Column {
        let i = Column::ALL.iter().position(|&c| c == self).unwrap_or(0);
        let n = Column::ALL.len();
        Column::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }

    /// Whether the natural order is ascending: names A to Z, writers gone
    /// first; numbers highest first, as in `top`.
    pub fn ascending(self) -> bool {
        matches!(self, Column::Name | Column::Topic | Column::Writer)
    }
}

/// The sort the table is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The column.
    pub column: Column,
    /// Reversed from the column's natural order (`r`).
    pub reversed: bool,
}

impl Sort {
    /// Whether rows go smallest first.
    pub fn ascending(self) -> bool {
        self.column.ascending() != self.reversed
    }

    /// "msgs/s, highest first" for the title bar.
    pub fn describe(self) -> String {
        let dir = match (self.column, self.ascending()) {
            (Column::Writer, true) => "gone first",
            (Column::Writer, false) => "alive first",
            (Column::Name | Column::Topic, true) => "A-Z",
            (Column::Name | Column::Topic, false) => "Z-A",
            (_, true) => "lowest first",
            (_, false) => "highest first",
        };
        format!("{}, {dir}", self.column.key())
    }
}

/// Compares two options so that `None` (unknown) always goes last, whatever
/// the direction.
fn cmp_known<T: PartialOrd>(a: &Option<T>, b: &Option<T>, ascending: bool) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
            if ascending {
                o
            } else {
                o.reverse()
            }
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

/// Sorts `rows` by `sort`; ties (and unknowns among themselves) by name, A to Z.
pub fn sort_rows(rows: &mut [Row], sort: Sort) {
    let asc = sort.ascending();
    rows.sort_by(|a, b| {
        let (x, y) = (&a.sample, &b.sample);
        let primary = match sort.column {
            Column::Name => cmp_known(&Some(&x.name), &Some(&y.name), asc),
            Column::Topic => cmp_known(&x.topic, &y.topic, asc),
            Column::Msgs => cmp_known(&a.msgs_per_s, &b.msgs_per_s, asc),
            Column::Mb => cmp_known(&a.bytes_per_s, &b.bytes_per_s, asc),
            Column::Readers => cmp_known(&x.readers, &y.readers, asc),
            Column::Lag => cmp_known(&x.max_lag, &y.max_lag, asc),
            Column::Leases => cmp_known(&x.leases, &y.leases, asc),
            Column::LeaseAge => cmp_known(&x.oldest_lease_ns, &y.oldest_lease_ns, asc),
            Column::Writer => cmp_known(&Some(x.writer), &Some(y.writer), asc),
        };
        primary.then_with(|| x.name.cmp(&y.name))
    });
}

/// A rate for the table: "-" when unknown, one decimal below 100.
pub fn fmt_rate(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v < 100.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.0}"),
    }
}

/// Bytes per second as MB/s (10^6), two decimals.
pub fn fmt_mb(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.2}", v / 1e6))
}

/// A count, or "-".
pub fn fmt_count<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// A duration in ns as one word: "850ms", "12.3s", "4m05s", "2h07m".
pub fn age(ns: u64) -> String {
    let ms = ns / 1_000_000;
    let s = ns / 1_000_000_000;
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{:.1}s", ns as f64 / 1e9)
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s / 60) % 60)
    }
}

/// The cells of a row, in [`Column::ALL`] order.
pub fn cells(r: &Row) -> [String; 9] {
    let s = &r.sample;
    [
        s.name.clone(),
        s.topic.clone().unwrap_or_else(|| "-".into()),
        fmt_rate(r.msgs_per_s),
        fmt_mb(r.bytes_per_s),
        fmt_count(s.readers),
        fmt_count(s.max_lag),
        fmt_count(s.leases),
        s.oldest_lease_ns.map_or_else(|| "-".into(), age),
        s.writer.label().into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample(name: &str, seq: u64, bytes: u64) -> Sample {
        Sample {
            name: name.into(),
            topic: None,
            instance: 7,
            write_seq: Some(seq),
            bytes: Some(bytes),
            readers: Some(0),
            max_lag: Some(0),
            leases: Some(0),
            oldest_lease_ns: None,
            writer: Liveness::Alive,
            note: None,
        }
    }

    fn snap(at: Instant, samples: Vec<Sample>) -> Snapshot {
        Snapshot {
            at,
            samples,
            daemon: None,
        }
    }

    #[test]
    fn rates_are_deltas_over_the_time_between_refreshes() {
        assert_eq!(rate(Some(10), Some(30), 2.0), Some(10.0));
        assert_eq!(rate(Some(10), Some(10), 0.5), Some(0.0));
        assert_eq!(rate(None, Some(10), 1.0), None, "first refresh: no rate");
        assert_eq!(rate(Some(10), None, 1.0), None, "unreadable now");
        assert_eq!(rate(Some(10), Some(20), 0.0), None, "no time passed");
        assert_eq!(rate(Some(50), Some(20), 1.0), None, "counter went back");
    }

    #[test]
    fn rows_match_the_previous_refresh_by_name_and_instance() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(500);
        let prev = snap(t0, vec![sample("a", 100, 1_000), sample("b", 5, 0)]);
        let mut b_new = sample("b", 1, 10);
        b_new.instance = 8; // re-created: counters start over
        let cur = snap(
            t1,
            vec![sample("a", 150, 501_000), b_new, sample("c", 9, 9)],
        );
        let rows = rows(Some(&prev), &cur);
        assert_eq!(rows[0].msgs_per_s, Some(100.0));
        assert_eq!(rows[0].bytes_per_s, Some(1_000_000.0));
        assert_eq!(rows[1].msgs_per_s, None, "another instance");
        assert_eq!(rows[2].msgs_per_s, None, "new ring");
        // The first refresh has no rates at all.
        assert!(super::rows(None, &cur)
            .iter()
            .all(|r| r.msgs_per_s.is_none()));
        // A v2.0 arena has no byte count: msgs/s but no MB/s.
        let mut old = sample("a", 100, 0);
        old.bytes = None;
        let mut now = sample("a", 110, 0);
        now.bytes = None;
        let r = super::rows(Some(&snap(t0, vec![old])), &snap(t1, vec![now]));
        assert_eq!((r[0].msgs_per_s, r[0].bytes_per_s), (Some(20.0), None));
    }

    fn row(name: &str, msgs: Option<f64>, writer: Liveness) -> Row {
        let mut s = sample(name, 0, 0);
        s.writer = writer;
        Row {
            sample: s,
            msgs_per_s: msgs,
            bytes_per_s: None,
        }
    }

    fn names(rows: &[Row]) -> Vec<&str> {
        rows.iter().map(|r| r.sample.name.as_str()).collect()
    }

    #[test]
    fn sorting_puts_unknowns_last_either_way_and_breaks_ties_by_name() {
        let mut rows = vec![
            row("d", None, Liveness::Alive),
            row("b", Some(5.0), Liveness::Gone),
            row("a", Some(5.0), Liveness::Alive),
            row("c", Some(90.0), Liveness::Unknown),
        ];
        let mut sort = Sort {
            column: Column::Msgs,
            reversed: false,
        };
        sort_rows(&mut rows, sort);
        assert_eq!(names(&rows), ["c", "a", "b", "d"], "highest first");
        sort.reversed = true;
        sort_rows(&mut rows, sort);
        assert_eq!(names(&rows), ["a", "b", "c", "d"], "lowest first, - last");
        sort_rows(
            &mut rows,
            Sort {
                column: Column::Name,
                reversed: true,
            },
        );
        assert_eq!(names(&rows), ["d", "c", "b", "a"]);
        sort_rows(
            &mut rows,
            Sort {
                column: Column::Writer,
                reversed: false,
            },
        );
        assert_eq!(names(&rows), ["b", "c", "a", "d"], "gone first");
    }

    #[test]
    fn columns_cycle_parse_and_describe_their_order() {
        assert_eq!(Column::Name.cycle(true), Column::Topic);
        assert_eq!(Column::Name.cycle(false), Column::Writer);
        assert_eq!(Column::Writer.cycle(true), Column::Name);
        let mut c = Column::Name;
        for _ in 0..Column::ALL.len() {
            c = c.cycle(true);
        }
        assert_eq!(c, Column::Name, "s visits every column once");
        assert_eq!(Column::parse("MSGS/S"), Some(Column::Msgs));
        assert_eq!(Column::parse("lease-age"), Some(Column::LeaseAge));
        assert_eq!(Column::parse("nope"), None);
        let s = |column, reversed| Sort { column, reversed }.describe();
        assert_eq!(s(Column::Msgs, false), "msgs, highest first");
        assert_eq!(s(Column::Msgs, true), "msgs, lowest first");
        assert_eq!(s(Column::Name, false), "name, A-Z");
        assert_eq!(s(Column::Name, true), "name, Z-A");
        assert_eq!(s(Column::Writer, false), "writer, gone first");
    }

    #[test]
    fn cells_are_single_words() {
        for ns in [
            0,
            999_999_999,
            12_340_000_000,
            245 * 1_000_000_000,
            7_620 * 1_000_000_000,
        ] {
            assert!(!age(ns).contains(' '), "{}", age(ns));
        }
        assert_eq!(age(850_000_000), "850ms");
        assert_eq!(age(12_340_000_000), "12.3s");
        assert_eq!(age(245_000_000_000), "4m05s");
        assert_eq!(age(7_620_000_000_000), "2h07m");
        assert_eq!(fmt_rate(Some(12.34)), "12.3");
        assert_eq!(fmt_rate(Some(1234.6)), "1235");
        assert_eq!(fmt_mb(Some(2_500_000.0)), "2.50");
        let r = row("x", None, Liveness::Gone);
        let c = cells(&r);
        assert!(c.iter().all(|c| !c.is_empty() && !c.contains(' ')), "{c:?}");
    }
}
