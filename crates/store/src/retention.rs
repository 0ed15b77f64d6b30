//! How long a dataset keeps its rows: a span of whole days, spelled `400d`, `26w` or `2y`
//! (a year is 365 days), and the day before which partitions are dropped.
//!
//! ```
//! use ringfeed_store::retention::RetentionSpec;
//! let r: RetentionSpec = "26w".parse().unwrap();
//! assert_eq!(r.days(), 182);
//! assert_eq!(r.to_string(), "26w");
//! // At 2024-03-10T12:00Z, 90 days keep 2023-12-11 and later: days before it are dropped.
//! let now = 19_792 * 86_400_000_000_000 + 43_200_000_000_000;
//! assert_eq!("90d".parse::<RetentionSpec>().unwrap().cutoff_day(now), 19_702);
//! assert!("90".parse::<RetentionSpec>().is_err());
//! ```

use crate::timeframe::NANOS_PER_DAY;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// The longest retention accepted (1,000 years): past it a cutoff is meaningless.
const MAX_DAYS: u64 = 365_000;

/// A retention span in whole days, kept in the spelling it was given (`400d`, `26w`, `2y`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetentionSpec {
    count: u32,
    unit: RetentionUnit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum RetentionUnit {
    Day,
    Week,
    Year,
}

impl RetentionUnit {
    fn days(self) -> u64 {
        match self {
            RetentionUnit::Day => 1,
            RetentionUnit::Week => 7,
            RetentionUnit::Year => 365,
        }
    }

    fn letter(self) -> char {
        match self {
            RetentionUnit::Day => 'd',
            RetentionUnit::Week => 'w',
            RetentionUnit::Year => 'y',
        }
    }
}

impl RetentionSpec {
    /// A retention of `days` days.
    pub fn days_of(days: u32) -> Self {
        RetentionSpec {
            count: days,
            unit: RetentionUnit::Day,
        }
    }

    /// The span in days.
    pub fn days(&self) -> i64 {
        (self.count as u64 * self.unit.days()) as i64
    }

    /// The first UTC day kept at `now` (ns since the epoch): the day holding
    /// `now - span`. Partitions whose last day is before it are dropped, so a retention
    /// keeps at least its span (whole partitions only, never a rewrite).
    pub fn cutoff_day(&self, now: i64) -> i64 {
        now.saturating_sub(self.days().saturating_mul(NANOS_PER_DAY))
            .div_euclid(NANOS_PER_DAY)
    }
}

/// Why a retention spelling was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionParseError {
    /// Not a count followed by `d`, `w` or `y`.
    #[error("retention {0:?}: write a whole number of days, weeks or years, such as 400d, 26w or 2y (a year is 365 days), or `none` to keep everything")]
    Spelling(String),
    /// Zero, or longer than 1,000 years.
    #[error("retention {0:?}: give at least 1d and at most 1000y")]
    Range(String),
}

impl FromStr for RetentionSpec {
    type Err = RetentionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let spelling = || RetentionParseError::Spelling(s.to_string());
        let unit = match t.chars().last().ok_or_else(spelling)? {
            'd' | 'D' => RetentionUnit::Day,
            'w' | 'W' => RetentionUnit::Week,
            'y' | 'Y' => RetentionUnit::Year,
            _ => return Err(spelling()),
        };
        let digits = &t[..t.len() - 1];
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(spelling());
        }
        let count: u32 = digits
            .parse()
            .map_err(|_| RetentionParseError::Range(s.to_string()))?;
        if count == 0 || count as u64 * unit.days() > MAX_DAYS {
            return Err(RetentionParseError::Range(s.to_string()));
        }
        Ok(RetentionSpec { count, unit })
    }
}

impl fmt::Display for RetentionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.letter())
    }
}

impl Serialize for RetentionSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for RetentionSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_and_refusals() {
        for (s, days) in [("400d", 400), ("26w", 182), ("2y", 730), (" 7D ", 7)] {
            assert_eq!(s.parse::<RetentionSpec>().unwrap().days(), days, "{s}");
        }
        for bad in [
            "",
            "d",
            "10",
            "10m",
            "-5d",
            "1.5y",
            "0d",
            "1001y",
            "99999999999d",
        ] {
            assert!(bad.parse::<RetentionSpec>().is_err(), "{bad:?} accepted");
        }
        let msg = "10m".parse::<RetentionSpec>().unwrap_err().to_string();
        assert!(msg.contains("400d, 26w or 2y"), "{msg}");
    }

    #[test]
    fn cutoff_keeps_at_least_the_span() {
        let r = RetentionSpec::days_of(1);
        // At midnight of day 10, one day back is midnight of day 9: day 9 is kept.
        assert_eq!(r.cutoff_day(10 * NANOS_PER_DAY), 9);
        assert_eq!(r.cutoff_day(10 * NANOS_PER_DAY + 1), 9);
        assert_eq!(r.cutoff_day(11 * NANOS_PER_DAY - 1), 9);
        assert_eq!(
            RetentionSpec::days_of(3).cutoff_day(i64::MIN),
            i64::MIN / NANOS_PER_DAY - 1
        );
    }
}
