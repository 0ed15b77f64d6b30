//! Timeframes: `tick` or `N{s,m,h,d,w}` (`1m`, `5m`, `1h`, `1d`, `1w`).

use std::fmt;
use std::str::FromStr;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in one UTC day.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;

/// Unit of a bar timeframe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// Seconds (`s`).
    Second,
    /// Minutes (`m`).
    Minute,
    /// Hours (`h`).
    Hour,
    /// Days (`d`).
    Day,
    /// Weeks (`w`), aligned to Monday 00:00 UTC.
    Week,
}

impl Unit {
    fn nanos(self) -> i64 {
        NANOS_PER_SEC
            * match self {
                Unit::Second => 1,
                Unit::Minute => 60,
                Unit::Hour => 3600,
                Unit::Day => 86_400,
                Unit::Week => 7 * 86_400,
            }
    }
    fn suffix(self) -> char {
        match self {
            Unit::Second => 's',
            Unit::Minute => 'm',
            Unit::Hour => 'h',
            Unit::Day => 'd',
            Unit::Week => 'w',
        }
    }
}

/// The resolution of a stored or requested series: raw ticks or bars of a fixed duration.
///
/// ```
/// use ringfeed_store::Timeframe;
/// let tf: Timeframe = "15m".parse().unwrap();
/// assert_eq!(tf.nanos(), Some(15 * 60 * 1_000_000_000));
/// assert_eq!(tf.to_string(), "15m");
/// assert_eq!("tick".parse::<Timeframe>().unwrap(), Timeframe::Tick);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timeframe {
    /// Individual trades (tick schema).
    Tick,
    /// Bars of `n` units (bar schema).
    Bars {
        /// Number of units, at least 1.
        n: u32,
        /// The unit.
        unit: Unit,
    },
}

/// Why a timeframe string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeframeError {
    /// The text is not `tick` or `N{s,m,h,d,w}`.
    #[error("invalid timeframe {0:?}: write `tick` or a count and a unit, like 1m, 5m, 1h, 1d or 1w (units s, m, h, d, w)")]
    Syntax(String),
    /// The count is zero or too large.
    #[error("invalid timeframe {0:?}: the count must be between 1 and 1000000")]
    Count(String),
}

impl Timeframe {
    /// Bars of `n` minutes.
    pub const fn minutes(n: u32) -> Self {
        Timeframe::Bars {
            n,
            unit: Unit::Minute,
        }
    }

    /// Duration of one bar in nanoseconds; `None` for ticks.
    pub fn nanos(&self) -> Option<i64> {
        match self {
            Timeframe::Tick => None,
            Timeframe::Bars { n, unit } => Some(i64::from(*n) * unit.nanos()),
        }
    }

    /// Default alignment of bucket starts relative to the Unix epoch: weeks start on Monday
    /// (the epoch was a Thursday), everything else at the epoch.
    pub fn default_offset(&self) -> i64 {
        match self {
            Timeframe::Bars {
                unit: Unit::Week, ..
            } => 4 * NANOS_PER_DAY,
            _ => 0,
        }
    }

    /// True for the tick resolution.
    pub fn is_tick(&self) -> bool {
        matches!(self, Timeframe::Tick)
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timeframe::Tick => f.write_str("tick"),
            Timeframe::Bars { n, unit } => write!(f, "{n}{}", unit.suffix()),
        }
    }
}

impl FromStr for Timeframe {
    type Err = TimeframeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.eq_ignore_ascii_case("tick") || t.eq_ignore_ascii_case("ticks") {
            return Ok(Timeframe::Tick);
        }
        let split = t
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| TimeframeError::Syntax(s.into()))?;
        let (num, suf) = t.split_at(split);
        let unit = match suf {
            "s" | "S" | "sec" => Unit::Second,
            "m" | "min" | "T" => Unit::Minute,
            "h" | "H" => Unit::Hour,
            "d" | "D" => Unit::Day,
            "w" | "W" => Unit::Week,
            _ => return Err(TimeframeError::Syntax(s.into())),
        };
        let n: u32 = if num.is_empty() {
            1
        } else {
            num.parse().map_err(|_| TimeframeError::Count(s.into()))?
        };
        if n == 0 || n > 1_000_000 {
            return Err(TimeframeError::Count(s.into()));
        }
        Ok(Timeframe::Bars { n, unit })
    }
}

/// Parse a duration like `90s`, `15m`, `-1h` or `0` into nanoseconds (used for offsets).
pub fn parse_duration(s: &str) -> Result<i64, TimeframeError> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t),
    };
    let tf: Timeframe = body.parse()?;
    let n = tf.nanos().ok_or_else(|| TimeframeError::Syntax(s.into()))?;
    Ok(if neg { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "1s", "30s", "1m", "5m", "15m", "1h", "4h", "1d", "1w", "tick",
        ] {
            let tf: Timeframe = s.parse().unwrap();
            assert_eq!(tf.to_string(), s);
        }
        assert_eq!(
            "1h".parse::<Timeframe>().unwrap().nanos(),
            Some(3_600_000_000_000)
        );
        assert!("0m".parse::<Timeframe>().is_err());
        assert!("5x".parse::<Timeframe>().is_err());
        assert!("m5".parse::<Timeframe>().is_err());
        assert!("".parse::<Timeframe>().is_err());
        assert_eq!(parse_duration("-15m").unwrap(), -900 * NANOS_PER_SEC);
    }
}
