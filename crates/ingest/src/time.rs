//! Timestamps in files: Unix times in any unit, ISO-8601 and compact dates,
//! strftime patterns, naive times in a zone.

use crate::field::trim;
use crate::TsFormat;
use chrono::{NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    lexical_core::parse::<u32>(b).ok()
}

/// Parse a timestamp into UTC ns. Naive date-times are in `tz` (UTC when `None`).
pub fn parse_ts(field: &[u8], fmt: &TsFormat, tz: Option<&Tz>) -> Result<i64, String> {
    let f = trim(field);
    let bad = || format!("cannot parse timestamp {:?}", String::from_utf8_lossy(f));
    let int = |mul: i64| -> Result<i64, String> {
        if let Ok(v) = lexical_core::parse::<i64>(f) {
            return v.checked_mul(mul).ok_or_else(bad);
        }
        let x = lexical_core::parse::<f64>(f).map_err(|_| bad())?;
        Ok((x * mul as f64).round() as i64)
    };
    match fmt {
        TsFormat::UnixS => int(1_000_000_000),
        TsFormat::UnixMs => int(1_000_000),
        TsFormat::UnixUs => int(1_000),
        TsFormat::UnixNs => int(1),
        TsFormat::Pattern(p) => {
            let s = std::str::from_utf8(f).map_err(|_| bad())?;
            let naive = NaiveDateTime::parse_from_str(s, p)
                .or_else(|_| {
                    NaiveDate::parse_from_str(s, p).map(|d| d.and_hms_opt(0, 0, 0).unwrap())
                })
                .map_err(|e| format!("cannot parse timestamp {s:?} with {p:?}: {e}"))?;
            naive_to_ns(naive, tz).ok_or_else(bad)
        }
        TsFormat::Auto => {
            // Fast path for plain integers (one parse instead of two); the magnitude is
            // classified on the value rounded to f64, exactly as the general path does.
            if !f.is_empty() && f.iter().all(u8::is_ascii_digit) {
                // Up to 18 digits cannot overflow an i64: accumulate them directly.
                let direct = (f.len() <= 18)
                    .then(|| f.iter().fold(0i64, |v, c| v * 10 + i64::from(c - b'0')));
                if let Some(v) = direct.or_else(|| lexical_core::parse::<i64>(f).ok()) {
                    let mag = (v as f64).abs();
                    let mul = if mag < 1e11 {
                        1_000_000_000
                    } else if mag < 1e14 {
                        1_000_000
                    } else if mag < 1e17 {
                        1_000
                    } else {
                        1
                    };
                    return v.checked_mul(mul).ok_or_else(bad);
                }
            }
            if !f.is_empty()
                && f.iter()
                    .all(|c| c.is_ascii_digit() || *c == b'-' || *c == b'.')
                && !f[1..].contains(&b'-')
            {
                let mag = lexical_core::parse::<f64>(f).map_err(|_| bad())?.abs();
                let mul = if mag < 1e11 {
                    1_000_000_000
                } else if mag < 1e14 {
                    1_000_000
                } else if mag < 1e17 {
                    1_000
                } else {
                    1
                };
                return int(mul);
            }
            parse_iso(f, tz).ok_or_else(bad)
        }
    }
}

pub(crate) fn naive_to_ns(n: NaiveDateTime, tz: Option<&Tz>) -> Option<i64> {
    match tz {
        None => n.and_utc().timestamp_nanos_opt(),
        Some(tz) => tz
            .from_local_datetime(&n)
            .earliest()
            .and_then(|d| d.timestamp_nanos_opt()),
    }
}

/// `YYYY-MM-DD[( |T)HH:MM[:SS[.f+]]][Z|±HH[:]MM]` or `YYYYMMDD[ HHMMSS]`.
pub(crate) fn parse_iso(f: &[u8], tz: Option<&Tz>) -> Option<i64> {
    let (y, mo, d, mut rest) = if f.len() >= 10 && f[4] == b'-' && f[7] == b'-' {
        (
            digits(&f[0..4])?,
            digits(&f[5..7])?,
            digits(&f[8..10])?,
            &f[10..],
        )
    } else if f.len() >= 8 && f[..8].iter().all(u8::is_ascii_digit) {
        (
            digits(&f[0..4])?,
            digits(&f[4..6])?,
            digits(&f[6..8])?,
            &f[8..],
        )
    } else {
        return None;
    };
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let (mut h, mut mi, mut s, mut frac) = (0u32, 0u32, 0u32, 0i64);
    if !rest.is_empty() && (rest[0] == b' ' || rest[0] == b'T') {
        rest = &rest[1..];
        if rest.len() >= 6 && rest[..6].iter().all(u8::is_ascii_digit) {
            h = digits(&rest[0..2])?;
            mi = digits(&rest[2..4])?;
            s = digits(&rest[4..6])?;
            rest = &rest[6..];
        } else {
            h = digits(rest.get(0..2)?)?;
            if rest.get(2) != Some(&b':') {
                return None;
            }
            mi = digits(rest.get(3..5)?)?;
            rest = &rest[5..];
            if rest.first() == Some(&b':') {
                s = digits(rest.get(1..3)?)?;
                rest = &rest[3..];
            }
        }
        if rest.first() == Some(&b'.') || rest.first() == Some(&b',') {
            let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
            let mut v = 0i64;
            for (k, c) in rest[1..1 + n].iter().enumerate() {
                if k < 9 {
                    v = v * 10 + (c - b'0') as i64;
                }
            }
            for _ in n..9 {
                v *= 10;
            }
            frac = v;
            rest = &rest[1 + n..];
        }
    }
    if h > 23 || mi > 59 || s > 60 {
        return None;
    }
    let secs = |days: i64| days * 86_400 + (h * 3600 + mi * 60 + s) as i64;
    match rest {
        b"" => {
            if tz.is_none() {
                Some(secs(days_from_civil(y as i64, mo, d)) * 1_000_000_000 + frac)
            } else {
                let n = NaiveDate::from_ymd_opt(y as i32, mo, d)?.and_hms_nano_opt(
                    h,
                    mi,
                    s,
                    frac as u32,
                )?;
                naive_to_ns(n, tz)
            }
        }
        b"Z" | b"z" | b"+00:00" | b" UTC" => {
            Some(secs(days_from_civil(y as i64, mo, d)) * 1_000_000_000 + frac)
        }
        [sign @ (b'+' | b'-'), r @ ..] => {
            let r: Vec<u8> = r.iter().copied().filter(|c| *c != b':').collect();
            if r.len() != 4 {
                return None;
            }
            let off = (digits(&r[0..2])? * 3600 + digits(&r[2..4])? * 60) as i64;
            let off = if *sign == b'+' { off } else { -off };
            Some((secs(days_from_civil(y as i64, mo, d)) - off) * 1_000_000_000 + frac)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_format() {
        let a = TsFormat::Auto;
        let want = 1_637_971_200_000_000_000i64; // 2021-11-27T00:00:00Z
        assert_eq!(parse_ts(b"1637971200000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"1637971200000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"1637971200", &a, None), Ok(want));
        assert_eq!(parse_ts(b"1637971200000000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27 00:00:00.000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27T01:00:00+01:00", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27T00:00Z", &a, None), Ok(want));
        assert_eq!(parse_ts(b"20211127 000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27", &a, None), Ok(want));
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(parse_ts(b"20211126 190000", &a, Some(&ny)), Ok(want));
        let p = TsFormat::Pattern("%Y%m%d %H%M%S".into());
        assert_eq!(parse_ts(b"20211127 000000", &p, None), Ok(want));
        assert!(parse_ts(b"yesterday", &a, None).is_err());
        assert!(parse_ts(b"2021-13-01", &a, None).is_err());
    }
}
