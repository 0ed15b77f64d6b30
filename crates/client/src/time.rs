//! The one time grammar of every face (CLI, Rust, Python, C++, socket, Flight).
//!
//! A point in time is one of:
//! - **an integer**, whose unit is detected from its magnitude, as `ringfeed
//!   ingest` does for CSV timestamps: below 10¹¹ seconds, below 10¹⁴
//!   milliseconds, below 10¹⁷ microseconds, else nanoseconds. Each unit covers
//!   1970 to 5138 (seconds, ms, µs) or 1973-03-03 to 2262 (ns), so a market
//!   timestamp in any unit lands where it was meant to; the only misread is a
//!   nanosecond count before 1973-03-03, which is read as microseconds. Use
//!   [`TimeSpec::Nanos`] (a `datetime` in Python) for an exact nanosecond.
//!   Negative integers (before 1970) are refused as ambiguous.
//! - **text**: `YYYY-MM-DD` (UTC midnight), `YYYY-MM-DD[T| ]HH:MM[:SS[.f]]`
//!   without a zone (read as UTC), RFC 3339 with a zone (`Z`, `+02:00`), or
//!   an integer as above written as text.
//!
//! A range is `[start, end)`; an empty or inverted range is an error in every
//! face ([`check_range`]), and so is an end outside [`MIN_NS`]..=[`MAX_NS`]
//! (about 1750 to 2189): the store adds bar lengths and margins to range
//! ends, which must not overflow. Leave an end out to mean "unbounded".
//!
//! ```
//! use ringfeed_client::time::parse_time;
//! let ns = 1_637_971_500_000_000_000;
//! assert_eq!(parse_time("1637971500").unwrap(), ns);          // seconds
//! assert_eq!(parse_time("1637971500000").unwrap(), ns);       // milliseconds
//! assert_eq!(parse_time("2021-11-27T00:05").unwrap(), ns);    // ISO, no zone = UTC
//! assert_eq!(parse_time("2021-11-27T01:05:00+01:00").unwrap(), ns);
//! ```

use serde::{Deserialize, Serialize};

/// Why a time or a range was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text is none of the accepted forms.
    #[error("cannot parse time {text:?}: use YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS] (UTC), RFC 3339 with a zone, or Unix time in s, ms, us or ns")]
    Unparsable {
        /// What was given.
        text: String,
    },
    /// A negative integer: its unit cannot be told from its magnitude.
    #[error("time {value} is negative (before 1970): its unit is ambiguous; give a date or RFC 3339 text")]
    Negative {
        /// What was given.
        value: i64,
    },
    /// The time does not fit in i64 nanoseconds (years 1677 to 2262).
    #[error(
        "time {text:?} is outside the range of nanosecond timestamps (1677-09-21 to 2262-04-11)"
    )]
    OutOfRange {
        /// What was given.
        text: String,
    },
    /// A range end too close to the ends of i64 nanoseconds.
    #[error("time {} ({ns} ns) is outside the range accepted for query and delete bounds ({} to {}); leave the bound out for an unbounded range", iso(*ns), iso(MIN_NS), iso(MAX_NS))]
    Beyond {
        /// The time, ns.
        ns: i64,
    },
    /// `start` is not before `end`.
    #[error("empty or inverted range: start {} is not before end {} (the range is [start, end))", iso(*start), iso(*end))]
    EmptyRange {
        /// Start, ns.
        start: i64,
        /// End, ns.
        end: i64,
    },
}

/// A point in time as a client gives it. On the wire: `{"ns": N}`, a bare
/// integer, or a string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeSpec {
    /// Exact nanoseconds since the Unix epoch (from a typed timestamp).
    Nanos(i64),
    /// An integer whose unit is detected from its magnitude (see the module doc).
    Int(i64),
    /// Text in the grammar of [`parse_time`].
    Text(String),
}

impl TimeSpec {
    /// ns since the Unix epoch.
    pub fn to_nanos(&self) -> Result<i64, TimeError> {
        match self {
            TimeSpec::Nanos(n) => Ok(*n),
            TimeSpec::Int(v) => int_to_nanos(*v),
            TimeSpec::Text(s) => parse_time(s),
        }
    }
}

impl From<&str> for TimeSpec {
    fn from(s: &str) -> Self {
        TimeSpec::Text(s.into())
    }
}

impl From<String> for TimeSpec {
    fn from(s: String) -> Self {
        TimeSpec::Text(s)
    }
}

/// The wire shape of a [`TimeSpec`].
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Wire {
    Int(i64),
    Nanos { ns: i64 },
    Text(String),
}

impl Serialize for TimeSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            TimeSpec::Nanos(ns) => Wire::Nanos { ns: *ns },
            TimeSpec::Int(v) => Wire::Int(*v),
            TimeSpec::Text(t) => Wire::Text(t.clone()),
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Wire::deserialize(d)? {
            Wire::Int(v) => TimeSpec::Int(v),
            Wire::Nanos { ns } => TimeSpec::Nanos(ns),
            Wire::Text(t) => TimeSpec::Text(t),
        })
    }
}

/// Latest range bound accepted ([`range`]): i64::MAX ns less 2^61 ns (73
/// years of headroom for bar lengths and margins), early 2189.
pub const MAX_NS: i64 = i64::MAX - (1 << 61);
/// Earliest range bound accepted ([`range`]), symmetric to [`MAX_NS`].
pub const MIN_NS: i64 = -MAX_NS;

/// `ns` as RFC 3339 text (UTC), for messages.
pub fn iso(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// The wall clock, ns since the epoch (0 before 1970).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Multiplier to ns for an integer of this magnitude.
fn unit_of(magnitude: f64) -> i64 {
    if magnitude < 1e11 {
        1_000_000_000
    } else if magnitude < 1e14 {
        1_000_000
    } else if magnitude < 1e17 {
        1_000
    } else {
        1
    }
}

/// An integer time in s, ms, µs or ns (detected from its magnitude) as ns.
pub fn int_to_nanos(v: i64) -> Result<i64, TimeError> {
    if v < 0 {
        return Err(TimeError::Negative { value: v });
    }
    v.checked_mul(unit_of(v as f64))
        .ok_or_else(|| TimeError::OutOfRange {
            text: v.to_string(),
        })
}

/// Parses a time in the grammar of this module into ns since the epoch.
pub fn parse_time(s: &str) -> Result<i64, TimeError> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let s = s.trim();
    let unparsable = || TimeError::Unparsable { text: s.into() };
    if s.is_empty() {
        return Err(unparsable());
    }
    let body = s.strip_prefix('-').unwrap_or(s);
    if !body.is_empty() && body.bytes().all(|c| c.is_ascii_digit()) {
        let v: i64 = s
            .parse()
            .map_err(|_| TimeError::OutOfRange { text: s.into() })?;
        return int_to_nanos(v);
    }
    if !body.is_empty()
        && body.bytes().all(|c| c.is_ascii_digit() || c == b'.')
        && body.bytes().filter(|c| *c == b'.').count() == 1
    {
        // A fractional Unix time, e.g. 1637971500.25 seconds.
        let x: f64 = s.parse().map_err(|_| unparsable())?;
        if x < 0.0 {
            return Err(TimeError::Negative { value: x as i64 });
        }
        let ns = x * unit_of(x) as f64;
        return if ns < i64::MAX as f64 {
            Ok(ns.round() as i64)
        } else {
            Err(TimeError::OutOfRange { text: s.into() })
        };
    }
    // A trailing `Z` on the forms RFC 3339 lacks (`2021-11-27T00:00Z`) says UTC, which the
    // naive forms are anyway.
    let naive_text = s.strip_suffix('Z').unwrap_or(s);
    let naive = if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        d.naive_utc()
    } else if let Some(d) = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(naive_text, f).ok())
    {
        d
    } else if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0).ok_or_else(unparsable)?
    } else {
        return Err(unparsable());
    };
    naive
        .and_utc()
        .timestamp_nanos_opt()
        .ok_or_else(|| TimeError::OutOfRange { text: s.into() })
}

/// `[start, end)` must hold at least one instant when both ends are given.
pub fn check_range(start: Option<i64>, end: Option<i64>) -> Result<(), TimeError> {
    if let Some(ns) = [start, end]
        .into_iter()
        .flatten()
        .find(|ns| !(MIN_NS..=MAX_NS).contains(ns))
    {
        return Err(TimeError::Beyond { ns });
    }
    match (start, end) {
        (Some(start), Some(end)) if start >= end => Err(TimeError::EmptyRange { start, end }),
        _ => Ok(()),
    }
}

/// Optional start and end specs as a checked ns range.
pub fn range(
    start: Option<&TimeSpec>,
    end: Option<&TimeSpec>,
) -> Result<(Option<i64>, Option<i64>), TimeError> {
    let start = start.map(TimeSpec::to_nanos).transpose()?;
    let end = end.map(TimeSpec::to_nanos).transpose()?;
    check_range(start, end)?;
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_637_971_500_000_000_000; // 2021-11-27T00:05:00Z

    #[test]
    fn integers_in_every_unit_mean_the_same_instant() {
        for v in [
            1_637_971_500,
            1_637_971_500_000,
            1_637_971_500_000_000,
            1_637_971_500_000_000_000,
        ] {
            assert_eq!(int_to_nanos(v).unwrap(), T, "{v}");
            assert_eq!(parse_time(&v.to_string()).unwrap(), T, "{v}");
            assert_eq!(TimeSpec::Int(v).to_nanos().unwrap(), T);
        }
        assert_eq!(parse_time("1637971500.5").unwrap(), T + 500_000_000);
        assert_eq!(int_to_nanos(0).unwrap(), 0);
        assert!(matches!(
            int_to_nanos(-5),
            Err(TimeError::Negative { value: -5 })
        ));
        assert!(matches!(
            parse_time("-1637971500"),
            Err(TimeError::Negative { .. })
        ));
    }

    #[test]
    fn iso_without_a_zone_is_utc() {
        for s in [
            "2021-11-27T00:05",
            "2021-11-27 00:05",
            "2021-11-27T00:05:00",
            "2021-11-27 00:05:00.000",
            "2021-11-27T00:05:00Z",
            "2021-11-27T01:05:00+01:00",
            " 2021-11-27T00:05:00Z ",
            "2021-11-27T00:05Z", // minutes with a Z: the `ringfeed delete --help` example
            "2021-11-27 00:05Z",
        ] {
            assert_eq!(parse_time(s).unwrap(), T, "{s}");
        }
        assert_eq!(parse_time("1970-01-02").unwrap(), 86_400_000_000_000);
        assert_eq!(
            parse_time("2021-11-27T00:05:00.25").unwrap(),
            T + 250_000_000
        );
    }

    #[test]
    fn bad_text_and_ranges_are_errors_that_say_what_to_do() {
        for s in [
            "",
            "yesterday",
            "2021-13-01",
            "2021-11-27T25:00",
            "1.2.3",
            "9999999999999999999",
        ] {
            let e = parse_time(s).unwrap_err();
            assert!(
                matches!(
                    e,
                    TimeError::Unparsable { .. } | TimeError::OutOfRange { .. }
                ),
                "{s}: {e}"
            );
        }
        assert!(parse_time("yesterday")
            .unwrap_err()
            .to_string()
            .contains("YYYY-MM-DD"));
        assert!(matches!(
            parse_time("3000-01-01"),
            Err(TimeError::OutOfRange { .. })
        ));
        assert!(check_range(Some(5), Some(5)).is_err());
        assert!(check_range(Some(6), Some(5)).is_err());
        assert!(check_range(Some(4), Some(5)).is_ok());
        assert!(check_range(None, Some(5)).is_ok());
        let e = range(Some(&"2022-01-01".into()), Some(&"2021-01-01".into())).unwrap_err();
        assert!(
            e.to_string()
                .contains("start 2022-01-01T00:00:00Z is not before end 2021-01-01T00:00:00Z"),
            "{e}"
        );
    }

    #[test]
    fn range_bounds_near_the_ends_of_i64_are_refused() {
        for v in [
            i64::MIN,
            i64::MIN + 1,
            MIN_NS - 1,
            MAX_NS + 1,
            i64::MAX - 1,
            i64::MAX,
        ] {
            let e = range(Some(&TimeSpec::Nanos(v)), None).unwrap_err();
            assert!(matches!(e, TimeError::Beyond { ns } if ns == v), "{v}: {e}");
            let e = range(None, Some(&TimeSpec::Nanos(v))).unwrap_err();
            assert!(e.to_string().contains("leave the bound out"), "{e}");
        }
        assert!(range(
            Some(&TimeSpec::Nanos(MIN_NS)),
            Some(&TimeSpec::Nanos(MAX_NS))
        )
        .is_ok());
        assert!(range(None, Some(&"2262-04-11".into())).is_err());
        assert!(range(None, Some(&"2100-01-01".into())).is_ok());
    }

    /// Nothing a client can send as a time panics (checked in debug builds,
    /// where overflow panics): extreme integers, their neighbours and random
    /// ones, as ints, ns, text and fractional text, alone and as ranges.
    #[test]
    fn no_time_input_panics() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut values: Vec<i64> = vec![0, 1, -1, 99_999_999_999, 100_000_000_000, MIN_NS, MAX_NS];
        for e in [
            i64::MIN,
            i64::MAX,
            MIN_NS,
            MAX_NS,
            10i64.pow(11),
            10i64.pow(14),
            10i64.pow(17),
        ] {
            values.extend((-3..=3).map(|d| e.saturating_add(d)));
        }
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x as i64);
            values.push((x >> (x % 63)) as i64);
        }
        for &a in &values {
            let _ = int_to_nanos(a);
            let _ = parse_time(&a.to_string());
            let _ = parse_time(&format!("{a}.5"));
            let _ = parse_time(&(a as f64 * 1e3).to_string());
        }
        for w in values.windows(2) {
            let (a, b) = (w[0], w[1]);
            for (s, e) in [
                (TimeSpec::Nanos(a), TimeSpec::Nanos(b)),
                (TimeSpec::Int(a), TimeSpec::Int(b)),
                (TimeSpec::Text(a.to_string()), TimeSpec::Nanos(b)),
            ] {
                if let Ok((Some(s), Some(e))) = range(Some(&s), Some(&e)) {
                    assert!(s < e && s >= MIN_NS && e <= MAX_NS);
                }
            }
        }
    }

    #[test]
    fn time_specs_round_trip_on_the_wire() {
        for (spec, json) in [
            (TimeSpec::Nanos(5), r#"{"ns":5}"#),
            (TimeSpec::Int(1_637_971_500_000), "1637971500000"),
            (TimeSpec::Text("2021-01-01".into()), r#""2021-01-01""#),
        ] {
            assert_eq!(serde_json::to_string(&spec).unwrap(), json);
            assert_eq!(serde_json::from_str::<TimeSpec>(json).unwrap(), spec);
        }
        assert_eq!(TimeSpec::Nanos(5).to_nanos().unwrap(), 5);
    }
}
