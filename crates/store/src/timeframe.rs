//! Timeframes: `tick`, fixed bars `N{s,m,h,d,w}` (`1m`, `5m`, `1h`, `1d`, `1w`) and
//! calendar bars `N{M,Y}` (`1M`, `3M`, `1Y`). Capital `M` is a month, lowercase `m` a
//! minute.

pub use chrono::Weekday;
use std::fmt;
use std::str::FromStr;

/// Nanoseconds in one second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;
/// Nanoseconds in one UTC day.
pub const NANOS_PER_DAY: i64 = 86_400 * NANOS_PER_SEC;
/// The mean Gregorian month (365.2425 / 12 days), in ns: how calendar timeframes sort
/// among fixed ones and how long-timeframe bounds measure them. Never a bucket width.
pub const MEAN_MONTH_NANOS: i64 = 2_629_746 * NANOS_PER_SEC;
/// The most months a calendar timeframe may span (`12000M` = `1000Y`).
pub const MAX_CALENDAR_MONTHS: u32 = 12_000;

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
    /// Weeks (`w`), aligned to Monday 00:00 UTC unless a week start says otherwise.
    Week,
    /// Calendar months (`M`): not a fixed duration.
    Month,
    /// Calendar years (`Y`), twelve months: not a fixed duration.
    Year,
}

impl Unit {
    /// Fixed length in ns; `None` for the calendar units.
    fn nanos(self) -> Option<i64> {
        let secs = match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month | Unit::Year => return None,
        };
        Some(NANOS_PER_SEC * secs)
    }

    /// Months in one unit; `None` for the fixed units.
    fn months(self) -> Option<u32> {
        match self {
            Unit::Month => Some(1),
            Unit::Year => Some(12),
            _ => None,
        }
    }

    /// True for months and years, whose length depends on the date.
    pub fn is_calendar(self) -> bool {
        self.months().is_some()
    }

    fn suffix(self) -> char {
        match self {
            Unit::Second => 's',
            Unit::Minute => 'm',
            Unit::Hour => 'h',
            Unit::Day => 'd',
            Unit::Week => 'w',
            Unit::Month => 'M',
            Unit::Year => 'Y',
        }
    }
}

/// The resolution of a stored or requested series: raw ticks, bars of a fixed duration,
/// or calendar bars (months, years).
///
/// Spellings of one duration are one timeframe: `60m`, `3600s` and `1h` parse to the same
/// value, compare equal, hash alike and print as `1h` (the largest unit among s, m, h and
/// d that divides the duration: see [`Timeframe::normalized`]). So a stored `1h` rollup
/// answers a query for `60m`, and `60m` names the same files as `1h`. Weeks stay apart
/// from `7d`: a week starts on Monday, seven days start at the epoch (a Thursday).
/// Likewise `12M` is `1Y`, but no month is `30d`.
///
/// Calendar timeframes have no fixed duration: [`Timeframe::nanos`] is `None` for them
/// (as for ticks; tell them apart with [`Timeframe::is_calendar`]) and
/// [`Timeframe::months`] gives their span. They sort among the fixed ones by the mean
/// Gregorian month (`4w` < `1M` < `5w`).
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
/// let m: Timeframe = "1mo".parse().unwrap();
/// assert_eq!((m.to_string(), m.nanos(), m.months()), ("1M".into(), None, Some(1)));
/// assert_eq!("12M".parse::<Timeframe>().unwrap().to_string(), "1Y");
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
    /// The text is not `tick`, `N{s,m,h,d,w}` or `N{M,Y}`.
    #[error("invalid timeframe {0:?}: write `tick` or a count and a unit, like 1m, 5m, 1h, 1d, 1w, 1M or 1Y (units s, m = minutes, h, d, w, M = months, Y = years)")]
    Syntax(String),
    /// The count is zero or too large.
    #[error("invalid timeframe {0:?}: the count must be between 1 and 1000000")]
    Count(String),
    /// A calendar count beyond [`MAX_CALENDAR_MONTHS`].
    #[error("invalid timeframe {0:?}: a calendar timeframe spans at most 12000M (1000Y)")]
    CalendarCount(String),
    /// A calendar timeframe where a fixed duration is needed (an offset).
    #[error("{0:?} is a calendar span, not a fixed duration: give a duration in s, m, h, d or w, like 15m or -1h")]
    NotADuration(String),
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

    /// The same span in the largest unit that divides it: among s, m, h and d for
    /// durations (`60m` → `1h`, `90m` stays, `48h` → `2d`, `120s` → `2m`), and `12M` →
    /// `1Y` for months. Weeks and days stay apart (their buckets start on different days).
    pub const fn normalized(self) -> Self {
        let Timeframe::Bars { mut n, mut unit } = self else {
            return self;
        };
        loop {
            let (next, by) = match unit {
                Unit::Second => (Unit::Minute, 60),
                Unit::Minute => (Unit::Hour, 60),
                Unit::Hour => (Unit::Day, 24),
                Unit::Month => (Unit::Year, 12),
                Unit::Day | Unit::Week | Unit::Year => break,
            };
            if n % by != 0 {
                break;
            }
            n /= by;
            unit = next;
        }
        Timeframe::Bars { n, unit }
    }

    /// What equality, hashing and order look at: ticks first, then bars by (mean)
    /// length; at one length fixed before weeks before calendar spans.
    fn key(&self) -> (bool, i128, u8) {
        match self {
            Timeframe::Tick => (false, 0, 0),
            Timeframe::Bars { n, unit } => match (unit.nanos(), unit.months()) {
                (Some(ns), _) => (
                    true,
                    i128::from(*n) * i128::from(ns),
                    u8::from(*unit == Unit::Week),
                ),
                (None, m) => (
                    true,
                    i128::from(*n) * i128::from(m.unwrap_or(0)) * i128::from(MEAN_MONTH_NANOS),
                    2,
                ),
            },
        }
    }

    /// Duration of one bar in nanoseconds; `None` for ticks and for calendar timeframes
    /// (`1M`, `1Y`), which have no fixed duration: check [`Timeframe::is_calendar`]
    /// before reading `None` as "ticks".
    pub fn nanos(&self) -> Option<i64> {
        match self {
            Timeframe::Tick => None,
            Timeframe::Bars { n, unit } => unit.nanos().map(|u| i64::from(*n) * u),
        }
    }

    /// Months spanned by one bar of a calendar timeframe (`1M` → 1, `1Y` → 12); `None`
    /// for ticks and fixed timeframes.
    pub fn months(&self) -> Option<u32> {
        match self {
            Timeframe::Tick => None,
            Timeframe::Bars { n, unit } => unit.months().map(|m| n.saturating_mul(m)),
        }
    }

    /// True for months and years.
    pub fn is_calendar(&self) -> bool {
        self.months().is_some()
    }

    /// Length in ns without overflow, calendar spans at the mean Gregorian month; `None`
    /// for ticks and for lengths past `i64`. For bounds and sorting, never for buckets.
    pub fn approx_nanos(&self) -> Option<i64> {
        match self {
            Timeframe::Tick => None,
            Timeframe::Bars { n, unit } => match unit.nanos() {
                Some(u) => i64::from(*n).checked_mul(u),
                None => i64::from(self.months()?).checked_mul(MEAN_MONTH_NANOS),
            },
        }
    }

    /// True for bars of a day or longer (`1d`, `2d`, `1w`, `1M`, `1Y`): those a trading
    /// session shapes.
    pub fn spans_days(&self) -> bool {
        self.is_calendar() || self.nanos() >= Some(NANOS_PER_DAY)
    }

    /// Default alignment of bucket starts relative to the Unix epoch: weeks start on Monday
    /// (the epoch was a Thursday), everything else at the epoch.
    pub fn default_offset(&self) -> i64 {
        self.week_offset(Weekday::Mon)
    }

    /// Alignment of bucket starts when weeks start on `first`: for weeks, the days from
    /// the epoch (a Thursday) to `first` (Monday: 4 days, Sunday: 3, Thursday: 0); `0`
    /// for every other timeframe.
    pub fn week_offset(&self, first: Weekday) -> i64 {
        match self {
            Timeframe::Bars {
                unit: Unit::Week, ..
            } => {
                let days = (i64::from(first.num_days_from_monday()) + 4).rem_euclid(7);
                days * NANOS_PER_DAY
            }
            _ => 0,
        }
    }

    /// Whether every bar of `inner` (aligned at its default offset) lies inside one
    /// bucket of `self` aligned at `offset`, so buckets of `self` can be built from bars
    /// of `inner`. Ticks nest in everything. Fixed in fixed: the width divides and the
    /// alignments agree. In calendar spans (whose boundaries are midnights + `offset`):
    /// fixed bars that divide a day and sit on the boundaries, and calendar spans whose
    /// months divide (at offset 0). A calendar span never nests in a fixed one.
    pub fn nests(&self, inner: Timeframe, offset: i64) -> bool {
        if self.is_tick() {
            return false;
        }
        if inner.is_tick() {
            return true;
        }
        match (self.nanos(), inner.nanos(), self.months(), inner.months()) {
            (Some(outer), Some(n), _, _) => {
                outer % n == 0 && offset.rem_euclid(n) == inner.default_offset().rem_euclid(n)
            }
            (None, Some(n), Some(_), _) => {
                NANOS_PER_DAY % n == 0
                    && inner.default_offset().rem_euclid(n) == 0
                    && offset.rem_euclid(n) == 0
            }
            (None, None, Some(outer), Some(m)) => outer % m == 0 && offset == 0,
            _ => false,
        }
    }

    /// The name of the timeframe's directories (`tf=<name>` in the cold tier): the
    /// normalized spelling, except calendar spans, which are spelled in lowercase so that
    /// no two names differ in case only (`1M` would collide with the minute `1m` on a
    /// case-insensitive file system): `1mo`, `3mo`, `1y`, `2y`. Every name parses back to
    /// the same timeframe.
    pub fn dir_name(&self) -> String {
        match self.months() {
            Some(m) if m % 12 == 0 => format!("{}y", m / 12),
            Some(m) => format!("{m}mo"),
            None => self.to_string(),
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

/// Prints the normalized spelling (also the name of its directories, except for calendar
/// spans: see [`Timeframe::dir_name`]).
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
        // Case matters for M (months) against m (minutes); the longer aliases cannot be
        // read as anything else.
        let unit = match suf {
            "s" | "S" | "sec" => Unit::Second,
            "m" | "min" | "T" => Unit::Minute,
            "h" | "H" => Unit::Hour,
            "d" | "D" => Unit::Day,
            "w" | "W" => Unit::Week,
            "M" | "mo" | "mon" => Unit::Month,
            "Y" | "y" => Unit::Year,
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
        let tf = Timeframe::Bars { n, unit };
        if tf.months().is_some_and(|m| m > MAX_CALENDAR_MONTHS) {
            return Err(TimeframeError::CalendarCount(s.into()));
        }
        Ok(tf.normalized())
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
    if tf.is_calendar() {
        return Err(TimeframeError::NotADuration(s.into()));
    }
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

    #[test]
    fn calendar_spellings_parse_print_and_sort() {
        let tf = |s: &str| s.parse::<Timeframe>().unwrap();
        for (spelled, printed, months) in [
            ("1M", "1M", 1),
            ("3M", "3M", 3),
            ("1mo", "1M", 1),
            ("6mon", "6M", 6),
            ("12M", "1Y", 12),
            ("18M", "18M", 18),
            ("24M", "2Y", 24),
            ("1Y", "1Y", 12),
            ("2y", "2Y", 24),
            ("Y", "1Y", 12),
        ] {
            let t = tf(spelled);
            assert_eq!(t.to_string(), printed, "{spelled}");
            assert_eq!(tf(printed), t, "{printed} round-trips");
            assert_eq!(t.months(), Some(months), "{spelled}");
            assert!(t.is_calendar() && !t.is_tick() && t.spans_days());
            assert_eq!(t.nanos(), None, "{spelled} has no fixed duration");
            assert_eq!(t.default_offset(), 0);
        }
        // Lowercase m stays minutes; M is never minutes.
        assert_eq!(tf("1m"), Timeframe::minutes(1));
        assert_ne!(tf("1m"), tf("1M"));
        assert_eq!(tf("1m").nanos(), Some(60 * NANOS_PER_SEC));
        // No month is a fixed number of days, and a year is not 365 days.
        assert_ne!(tf("1M"), tf("30d"));
        assert_ne!(tf("1Y"), tf("365d"));
        let mean_month = Timeframe::Bars {
            n: 2_629_746,
            unit: Unit::Second,
        };
        assert_ne!(tf("1M"), mean_month, "a month is not its mean length");
        // Order by mean length: 4w < 1M < 5w < 3M < 1Y < 2Y.
        let ladder = ["tick", "1d", "4w", "1M", "5w", "3M", "1Y", "18M", "2Y"].map(tf);
        assert!(ladder.windows(2).all(|w| w[0] < w[1]), "{ladder:?}");
        // Raw, un-normalized values are equal to their normal form.
        let raw = Timeframe::Bars {
            n: 12,
            unit: Unit::Month,
        };
        assert_eq!(raw, tf("1Y"));
        assert_eq!(raw.to_string(), "1Y");
        // Bounds, and calendar spans are not offsets.
        assert_eq!(tf("12000M"), tf("1000Y"));
        for bad in ["12001M", "1001Y", "0M", "1MO", "1mth", "1yr"] {
            assert!(bad.parse::<Timeframe>().is_err(), "{bad}");
        }
        assert!(matches!(
            "1001Y".parse::<Timeframe>(),
            Err(TimeframeError::CalendarCount(_))
        ));
        assert!(matches!(
            parse_duration("-1M"),
            Err(TimeframeError::NotADuration(_))
        ));
        assert_eq!(tf("1Y").approx_nanos(), Some(12 * MEAN_MONTH_NANOS));
        assert_eq!(tf("1000000w").approx_nanos(), None, "overflow is None");
    }

    #[test]
    fn what_nests_in_what() {
        let tf = |s: &str| s.parse::<Timeframe>().unwrap();
        let m = tf("1M");
        // A month is built from days and from anything that divides a day.
        for inner in ["tick", "1s", "1m", "5m", "1h", "8h", "1d"] {
            assert!(m.nests(tf(inner), 0), "{inner} in 1M");
            assert!(tf("1Y").nests(tf(inner), 0), "{inner} in 1Y");
        }
        // Not from widths that straddle midnights, weeks, or an off-boundary offset.
        for inner in ["7h", "2d", "1w", "7d"] {
            assert!(!m.nests(tf(inner), 0), "{inner} not in 1M");
        }
        assert!(m.nests(tf("1h"), 3600 * NANOS_PER_SEC));
        assert!(!m.nests(tf("1h"), 1800 * NANOS_PER_SEC));
        // A year from months and quarters; a quarter from months, not from 2M.
        assert!(tf("1Y").nests(tf("1M"), 0) && tf("1Y").nests(tf("3M"), 0));
        assert!(tf("3M").nests(m, 0) && !tf("3M").nests(tf("2M"), 0));
        assert!(!m.nests(tf("1Y"), 0) && !m.nests(m, 3600 * NANOS_PER_SEC));
        // Fixed timeframes never hold calendar ones; fixed-in-fixed is unchanged.
        assert!(!tf("1000w").nests(m, 0) && !tf("1d").nests(m, 0));
        assert!(tf("1h").nests(tf("5m"), 0) && !tf("1h").nests(tf("7m"), 0));
        assert!(tf("1w").nests(tf("1d"), tf("1w").default_offset()));
        assert!(!Timeframe::Tick.nests(Timeframe::Tick, 0));
    }

    #[test]
    fn week_offsets_follow_the_first_day() {
        let w: Timeframe = "1w".parse().unwrap();
        // The epoch, 1970-01-01, was a Thursday.
        for (day, after_epoch) in [
            (Weekday::Thu, 0),
            (Weekday::Fri, 1),
            (Weekday::Sun, 3),
            (Weekday::Mon, 4),
            (Weekday::Wed, 6),
        ] {
            assert_eq!(w.week_offset(day), after_epoch * NANOS_PER_DAY, "{day}");
        }
        assert_eq!(w.default_offset(), w.week_offset(Weekday::Mon));
        assert_eq!(
            "1d".parse::<Timeframe>().unwrap().week_offset(Weekday::Sun),
            0
        );
    }
}
