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
/// Spellings of one duration are one timeframe: `60m`, `3600s` and `1h` parse to the same
/// value, compare equal, hash alike and print as `1h` (the largest unit among s, m, h and
/// d that divides the duration: see [`Timeframe::normalized`]). So a stored `1h` rollup
/// answers a query for `60m`, and `60m` names the same files as `1h`. Weeks stay apart
/// from `7d`: a week starts on Monday, seven days start at the epoch (a Thursday).
///
/// ```
/// use ringfeed_store::Timeframe;
/// let tf: Timeframe = "15m".parse().unwrap();
/// assert_eq!(tf.nanos(), Some(15 * 60 * 1_000_000_000));
/// assert_eq!(tf.to_string(), "15m");
/// assert_eq!("tick".parse::<Timeframe>().unwrap(), Timeframe::Tick);
/// let h: Timeframe = "60m".parse().unwrap();
/// assert_eq!(h, "1h".parse().unwrap());
/// assert_eq!(h.to_string(), "1h");
/// assert_eq!("1440m".parse::<Timeframe>().unwrap().to_string(), "1d");
/// ```
#[derive(Clone, Copy, Debug)]
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
    /// Bars of `n` minutes (normalized: `minutes(60)` is `1h`).
    pub const fn minutes(n: u32) -> Self {
        Timeframe::Bars {
            n,
            unit: Unit::Minute,
        }
        .normalized()
    }

    /// The same duration in the largest unit among s, m, h and d that divides it:
    /// `60m` → `1h`, `90m` stays, `48h` → `2d`, `120s` → `2m`. Weeks and days stay
    /// apart (their buckets start on different days).
    pub const fn normalized(self) -> Self {
        let Timeframe::Bars { mut n, mut unit } = self else {
            return self;
        };
        loop {
            let (next, by) = match unit {
                Unit::Second => (Unit::Minute, 60),
                Unit::Minute => (Unit::Hour, 60),
                Unit::Hour => (Unit::Day, 24),
                Unit::Day | Unit::Week => break,
            };
            if n % by != 0 {
                break;
            }
            n /= by;
            unit = next;
        }
        Timeframe::Bars { n, unit }
    }

    /// What equality, hashing and order look at: ticks first, then bars by duration;
    /// weeks after days of the same length.
    fn key(&self) -> (bool, i64, bool) {
        match self {
            Timeframe::Tick => (false, 0, false),
            Timeframe::Bars { unit, .. } => (true, self.nanos().unwrap_or(0), *unit == Unit::Week),
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

impl PartialEq for Timeframe {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Timeframe {}

impl std::hash::Hash for Timeframe {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialOrd for Timeframe {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timeframe {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// Prints the normalized spelling, which is also the name of the timeframe's directories.
impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.normalized() {
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
        Ok(Timeframe::Bars { n, unit }.normalized())
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

    #[test]
    fn spellings_of_one_duration_are_one_timeframe() {
        let tf = |s: &str| s.parse::<Timeframe>().unwrap();
        for (a, b) in [
            ("60m", "1h"),
            ("3600s", "1h"),
            ("24h", "1d"),
            ("1440m", "1d"),
            ("120m", "2h"),
            ("60s", "1m"),
            ("48h", "2d"),
        ] {
            assert_eq!(tf(a), tf(b), "{a} = {b}");
            assert_eq!(tf(a).to_string(), b);
            let s = std::hash::RandomState::new();
            use std::hash::BuildHasher;
            assert_eq!(s.hash_one(tf(a)), s.hash_one(tf(b)));
        }
        // Built by hand, not normalized: still equal, and printed normalized.
        let raw = Timeframe::Bars {
            n: 60,
            unit: Unit::Minute,
        };
        assert_eq!(raw, tf("1h"));
        assert_eq!(raw.to_string(), "1h");
        assert_eq!(Timeframe::minutes(60), tf("1h"));
        // Durations that need the smaller unit keep it; weeks are not 7 days.
        assert_eq!(tf("90m").to_string(), "90m");
        assert_eq!(tf("7d").to_string(), "7d");
        assert_ne!(tf("7d"), tf("1w"));
        assert!(tf("1m") < tf("5m") && tf("5m") < tf("1h") && Timeframe::Tick < tf("1s"));
    }
}
