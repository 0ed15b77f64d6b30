//! Protocol specs as store values: timeframes and dataset settings, checked
//! with the errors every face reports.

use super::error::{ErrorKind, ServiceError};
use ringfeed_client::DatasetSpec;

/// Longest timeframe (and offset) a client may ask for: 1000 weeks, about 19
/// years. The store's counts go to 1,000,000 of any unit, and 1,000,000 days
/// or weeks overflow i64 nanoseconds (a panic in debug builds, a wrapped
/// bucket width in release ones).
pub const MAX_TIMEFRAME_NS: i64 = 1000 * 7 * 86_400 * 1_000_000_000;

/// `s` as a timeframe; `what` names the argument in the error ("timeframe", "rollup").
pub(super) fn parse_timeframe(
    s: &str,
    what: &str,
) -> Result<ringfeed_store::Timeframe, ServiceError> {
    let tf: ringfeed_store::Timeframe = s
        .parse()
        .map_err(|e| ServiceError::new(ErrorKind::BadTimeframe, format!("{what} {s:?}: {e}")))?;
    checked_nanos(&tf).ok_or_else(|| {
        ServiceError::new(
            ErrorKind::BadTimeframe,
            format!("{what} {s:?} is longer than 1000 weeks: ask for a shorter one"),
        )
    })?;
    Ok(tf)
}

/// The length of `tf` in ns, computed without overflow from its canonical
/// spelling ("5m", "2w", "1M", "tick"; months and years at their mean
/// Gregorian length), if it is at most [`MAX_TIMEFRAME_NS`]
/// (`Some(0)` for ticks). `Timeframe::nanos` multiplies unchecked.
fn checked_nanos(tf: &ringfeed_store::Timeframe) -> Option<i64> {
    let text = tf.to_string();
    if tf.is_tick() {
        return Some(0);
    }
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let secs: i64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        // Calendar spans at their mean length: up to 19Y (228M) pass.
        "M" => 2_629_746,
        "Y" => 31_556_952,
        _ => return None,
    };
    n.parse::<i64>()
        .ok()?
        .checked_mul(secs)?
        .checked_mul(1_000_000_000)
        .filter(|&ns| ns <= MAX_TIMEFRAME_NS)
}

/// A resampling offset ("15m", "-1h", "0") in ns, bounded like timeframes.
pub(super) fn parse_offset(s: &str) -> Result<i64, ServiceError> {
    let t = s.trim();
    let body = t.strip_prefix('-').unwrap_or(t);
    if body != "0" {
        parse_timeframe(body, "offset")?;
    }
    ringfeed_store::timeframe::parse_duration(s)
        .map_err(|e| ServiceError::bad_request(format!("offset {s:?}: {e}")))
}

/// A dataset's store settings from its spec (a client's `create_dataset`, or
/// `[datasets.NAME]` in the daemon's config): base timeframe, rollups (default:
/// the store's ladder above the base), fsync policy.
pub(super) fn dataset_config(
    spec: &DatasetSpec,
) -> Result<ringfeed_store::DatasetConfig, ServiceError> {
    let mut cfg = ringfeed_store::DatasetConfig::new(parse_timeframe(&spec.base, "base")?);
    if let Some(rollups) = &spec.rollups {
        cfg.rollups = rollups
            .iter()
            .map(|r| parse_timeframe(r, "rollup"))
            .collect::<Result<_, _>>()?;
    }
    if let Some(f) = &spec.fsync {
        cfg.fsync = f
            .parse()
            .map_err(|e| ServiceError::bad_request(format!("fsync {f:?}: {e}")))?;
    }
    if let Some(d) = &spec.week_start {
        cfg.week_start = parse_weekday(d)?;
    }
    cfg.retention = parse_retention(spec.retention.as_deref())?;
    cfg.rollup_retention = parse_retention(spec.rollup_retention.as_deref())?;
    Ok(cfg)
}

/// A week start: `mon`, `Monday`, `sun`, ... (any case).
pub(super) fn parse_weekday(s: &str) -> Result<ringfeed_store::timeframe::Weekday, ServiceError> {
    s.trim().parse().map_err(|_| {
        ServiceError::bad_request(format!(
            "week_start {s:?} is not a weekday: write mon, tue, wed, thu, fri, sat or sun"
        ))
    })
}

/// A retention spelling ("400d", "26w", "2y"; "none" or absent: keep everything).
pub(super) fn parse_retention(
    s: Option<&str>,
) -> Result<Option<ringfeed_store::retention::RetentionSpec>, ServiceError> {
    match s.map(str::trim) {
        None | Some("none") | Some("") => Ok(None),
        Some(r) => r
            .parse()
            .map(Some)
            .map_err(|e| ServiceError::bad_request(format!("{e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_timeframes_are_bounded_like_the_others() {
        for ok in ["1M", "3M", "1Y", "19Y", "228M", "1000w"] {
            assert!(parse_timeframe(ok, "timeframe").is_ok(), "{ok}");
        }
        for long in ["20Y", "240M", "1001w"] {
            let e = parse_timeframe(long, "timeframe").unwrap_err();
            assert!(e.to_string().contains("1000 weeks"), "{long}: {e}");
        }
        assert!(parse_offset("1M").is_err(), "a month is not an offset");
    }
}
