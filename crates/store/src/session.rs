//! Exchange sessions: regular trading hours in a time zone, e.g. 09:30–16:00
//! America/New_York. Daily and weekly bars of a dataset with a session are built from the
//! bars inside the session only, and are labelled with the session's opening instant.

use chrono::{Duration, NaiveDate, NaiveTime, TimeZone};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

use crate::timeframe::NANOS_PER_DAY;

/// A daily trading session.
///
/// ```
/// use ringfeed_store::Session;
/// let s: Session = "09:30-16:00 America/New_York".parse().unwrap();
/// assert_eq!(s.tz, "America/New_York");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// IANA time zone name.
    pub tz: String,
    /// Local opening time, `HH:MM`.
    pub open: String,
    /// Local closing time, `HH:MM` (exclusive; earlier than `open` = the next day).
    pub close: String,
}

/// Why a session specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The text is not `HH:MM-HH:MM ZONE`.
    #[error("invalid session {0:?}: write it as `HH:MM-HH:MM Area/City`, e.g. `09:30-16:00 America/New_York`")]
    Syntax(String),
    /// The zone is not an IANA time zone name.
    #[error(
        "unknown time zone {0:?}: use an IANA name such as America/New_York, Europe/London or UTC"
    )]
    Zone(String),
    /// Opening and closing times are equal.
    #[error("session {0:?} opens and closes at the same time; give distinct times")]
    Empty(String),
}

impl std::str::FromStr for Session {
    type Err = SessionError;
    fn from_str(s: &str) -> Result<Self, SessionError> {
        let syntax = || SessionError::Syntax(s.into());
        let (hours, tz) = s
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(syntax)?;
        let (open, close) = hours.split_once('-').ok_or_else(syntax)?;
        let sess = Session {
            tz: tz.trim().into(),
            open: open.into(),
            close: close.into(),
        };
        sess.calendar()?;
        Ok(sess)
    }
}

impl std::fmt::Display for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{} {}", self.open, self.close, self.tz)
    }
}

/// Parse an IANA zone name.
pub fn parse_tz(name: &str) -> Result<Tz, SessionError> {
    name.parse::<Tz>()
        .map_err(|_| SessionError::Zone(name.into()))
}

impl Session {
    /// Resolve the zone and times into a calendar that maps instants to sessions.
    pub fn calendar(&self) -> Result<Calendar, SessionError> {
        let t = |x: &str| {
            NaiveTime::parse_from_str(x, "%H:%M")
                .map_err(|_| SessionError::Syntax(self.to_string()))
        };
        let (open, close) = (t(&self.open)?, t(&self.close)?);
        if open == close {
            return Err(SessionError::Empty(self.to_string()));
        }
        Ok(Calendar {
            tz: parse_tz(&self.tz)?,
            open,
            close,
            cache: HashMap::new(),
        })
    }
}

/// Session windows in UTC ns, cached per UTC day.
#[derive(Clone, Debug)]
pub struct Calendar {
    tz: Tz,
    open: NaiveTime,
    close: NaiveTime,
    cache: HashMap<i64, [(i64, i64, i64); 3]>,
}

fn local_ns(tz: &Tz, date: NaiveDate, t: NaiveTime) -> i64 {
    let naive = date.and_time(t);
    let dt = tz
        .from_local_datetime(&naive)
        .earliest()
        // A time inside a DST gap: take the instant an hour later.
        .or_else(|| {
            tz.from_local_datetime(&(naive + Duration::hours(1)))
                .earliest()
        })
        .expect("a local time exists within an hour of any gap");
    dt.timestamp_nanos_opt().unwrap_or(i64::MAX)
}

impl Calendar {
    /// The session of local date `d` as `(open, close)` in UTC ns.
    pub fn session_of_date(&self, d: NaiveDate) -> (i64, i64) {
        let open = local_ns(&self.tz, d, self.open);
        let cd = if self.close <= self.open {
            d.succ_opt().unwrap_or(d)
        } else {
            d
        };
        (open, local_ns(&self.tz, cd, self.close))
    }

    /// The session containing `ts` as `(local date as days since epoch, open, close)`.
    pub fn session_at(&mut self, ts: i64) -> Option<(i64, i64, i64)> {
        let day = ts.div_euclid(NANOS_PER_DAY);
        let cands = match self.cache.get(&day) {
            Some(c) => *c,
            None => {
                let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
                let mut out = [(0, 0, 0); 3];
                for (k, delta) in [-1i64, 0, 1].into_iter().enumerate() {
                    let d = epoch + Duration::days(day + delta);
                    let (o, c) = self.session_of_date(d);
                    out[k] = (day + delta, o, c);
                }
                self.cache.insert(day, out);
                out
            }
        };
        cands.into_iter().find(|&(_, o, c)| o <= ts && ts < c)
    }
}
