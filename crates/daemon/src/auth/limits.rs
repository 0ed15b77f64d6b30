//! Per-principal rate limits for the network faces: requests per second, bytes per second
//! out, and concurrent streams.
//!
//! ```toml
//! [limits.per_principal]
//! requests_per_s = 200
//! bytes_per_s = "200MiB"
//! streams = 16
//! ```
//!
//! Requests and bytes are token buckets holding one second of their rate (a burst of 200
//! requests, or 200 MiB, then the rate). A send larger than the bucket is let through
//! when the bucket is not in debt, and the debt then delays what follows: a stream is
//! slowed, never cut in the middle of a batch. Over a limit the caller gets a
//! [`LimitError`] with the time after which a retry succeeds (gRPC RESOURCE_EXHAUSTED).

use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The `[limits]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Limits each principal has on its own.
    pub per_principal: PrincipalLimits,
}

/// `[limits.per_principal]`: unset = unlimited.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalLimits {
    /// Requests (RPCs) per second.
    pub requests_per_s: Option<u32>,
    /// Bytes per second sent to the principal (`"200MiB"` or a number).
    #[serde(deserialize_with = "de_bytes_opt")]
    pub bytes_per_s: Option<u64>,
    /// Streams (DoGet, subscriptions) open at once.
    pub streams: Option<u32>,
}

fn de_bytes_opt<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    crate::config::de_bytes(d).map(Some)
}

/// Which limit a request hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `requests_per_s`.
    Requests,
    /// `bytes_per_s`.
    Bytes,
    /// `streams`.
    Streams,
}

/// A request over a limit (RESOURCE_EXHAUSTED), with when to retry.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{principal:?} is over its {what} limit ({limit}): retry after {} ms{}", retry_after.as_millis(), if matches!(kind, Limit::Streams) { " or close a stream" } else { "" })]
pub struct LimitError {
    /// Which limit.
    pub kind: Limit,
    /// The principal.
    pub principal: String,
    /// The limit's name in the config.
    pub what: &'static str,
    /// The limit, as configured.
    pub limit: String,
    /// A retry after this long can succeed.
    pub retry_after: Duration,
}

/// Counters of one principal, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Counters {
    /// Requests let through.
    pub requests: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Streams open now.
    pub streams: u32,
    /// Requests refused by a limit.
    pub refused: u64,
}

#[derive(Debug)]
struct Bucket {
    level: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            level: rate,
            rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + dt * self.rate).min(self.rate);
        self.last = now;
    }

    /// Take `n` when the bucket is not in debt (it may go into debt by the taking);
    /// else how long until it is out of it.
    fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.level < n.min(self.rate) {
            let missing = n.min(self.rate) - self.level;
            return Err(Duration::from_secs_f64(missing / self.rate));
        }
        self.level -= n;
        Ok(())
    }
}

#[derive(Debug)]
struct State {
    requests: Option<Bucket>,
    bytes: Option<Bucket>,
    counters: Counters,
}

/// The limits of every principal (shared by the faces' handlers).
#[derive(Debug)]
pub struct Limiter {
    cfg: PrincipalLimits,
    state: Mutex<HashMap<String, State>>,
}

impl Limiter {
    /// Limits as configured.
    pub fn new(cfg: PrincipalLimits) -> Arc<Self> {
        Arc::new(Limiter {
            cfg,
            state: Mutex::new(HashMap::new()),
        })
    }

    fn with<R>(&self, who: &str, now: Instant, f: impl FnOnce(&mut State) -> R) -> R {
        let mut map = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let cfg = &self.cfg;
        let st = map.entry(who.to_string()).or_insert_with(|| State {
            requests: cfg.requests_per_s.map(|r| Bucket::new(f64::from(r), now)),
            bytes: cfg.bytes_per_s.map(|b| Bucket::new(b as f64, now)),
            counters: Counters::default(),
        });
        f(st)
    }

    fn error(&self, kind: Limit, who: &str, retry_after: Duration) -> LimitError {
        let (what, limit) = match kind {
            Limit::Requests => (
                "requests_per_s",
                format!("{}/s", self.cfg.requests_per_s.unwrap_or(0)),
            ),
            Limit::Bytes => (
                "bytes_per_s",
                format!("{} B/s", self.cfg.bytes_per_s.unwrap_or(0)),
            ),
            Limit::Streams => ("streams", format!("{}", self.cfg.streams.unwrap_or(0))),
        };
        LimitError {
            kind,
            principal: who.to_string(),
            what,
            limit,
            retry_after,
        }
    }

    /// One request (RPC) of `who` at `now`.
    pub fn request(&self, who: &str, now: Instant) -> Result<(), LimitError> {
        let r = self.with(who, now, |st| {
            let r = st.requests.as_mut().map_or(Ok(()), |b| b.take(1.0, now));
            match r {
                Ok(()) => st.counters.requests += 1,
                Err(_) => st.counters.refused += 1,
            }
            r
        });
        r.map_err(|wait| self.error(Limit::Requests, who, wait))
    }

    /// `bytes` about to be sent to `who`: `Ok` to send now, or how long to wait first (a
    /// stream sleeps that long and asks again; it is not cut).
    pub fn send(&self, who: &str, bytes: u64, now: Instant) -> Result<(), LimitError> {
        let r = self.with(who, now, |st| {
            let r = st
                .bytes
                .as_mut()
                .map_or(Ok(()), |b| b.take(bytes as f64, now));
            if r.is_ok() {
                st.counters.bytes += bytes;
            }
            r
        });
        r.map_err(|wait| self.error(Limit::Bytes, who, wait))
    }

    /// Open a stream of `who`; it counts until the guard is dropped.
    pub fn open_stream(self: &Arc<Self>, who: &str) -> Result<StreamGuard, LimitError> {
        let max = self.cfg.streams;
        let ok = self.with(who, Instant::now(), |st| {
            if max.is_some_and(|m| st.counters.streams >= m) {
                st.counters.refused += 1;
                false
            } else {
                st.counters.streams += 1;
                true
            }
        });
        if !ok {
            return Err(self.error(Limit::Streams, who, Duration::from_secs(1)));
        }
        Ok(StreamGuard {
            limiter: Arc::clone(self),
            who: who.to_string(),
        })
    }

    /// Every principal's counters, by name.
    pub fn counters(&self) -> Vec<(String, Counters)> {
        let map = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(String, Counters)> =
            map.iter().map(|(k, s)| (k.clone(), s.counters)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// An open stream of a principal (see [`Limiter::open_stream`]).
#[derive(Debug)]
pub struct StreamGuard {
    limiter: Arc<Limiter>,
    who: String,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.limiter.with(&self.who, Instant::now(), |st| {
            st.counters.streams = st.counters.streams.saturating_sub(1)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(text: &str) -> Arc<Limiter> {
        #[derive(Deserialize)]
        struct W {
            limits: LimitsConfig,
        }
        Limiter::new(toml::from_str::<W>(text).unwrap().limits.per_principal)
    }

    #[test]
    fn requests_refill_at_their_rate_with_a_retry_hint() {
        let l = limiter("[limits.per_principal]\nrequests_per_s = 10\n");
        let t0 = Instant::now();
        for _ in 0..10 {
            l.request("a", t0).unwrap();
        }
        let e = l.request("a", t0).unwrap_err();
        assert_eq!(e.kind, Limit::Requests);
        assert!(
            e.retry_after > Duration::from_millis(90)
                && e.retry_after <= Duration::from_millis(100),
            "{e}"
        );
        assert!(e.to_string().contains("requests_per_s"), "{e}");
        // Another principal has its own bucket; time refills the first.
        l.request("b", t0).unwrap();
        l.request("a", t0 + Duration::from_millis(100)).unwrap();
        let c: HashMap<String, Counters> = l.counters().into_iter().collect();
        assert_eq!(
            (c["a"].requests, c["a"].refused, c["b"].requests),
            (11, 1, 1)
        );
    }

    #[test]
    fn bytes_slow_a_stream_down_without_cutting_a_batch() {
        let l = limiter("[limits.per_principal]\nbytes_per_s = \"1MiB\"\n");
        let t0 = Instant::now();
        // A 3 MiB batch goes through whole (the bucket was full), then the debt waits.
        l.send("a", 3 << 20, t0).unwrap();
        let e = l.send("a", 1, t0).unwrap_err();
        assert_eq!(e.kind, Limit::Bytes);
        assert!(e.retry_after >= Duration::from_secs(2), "{e}");
        assert!(l.send("a", 1, t0 + Duration::from_secs(3)).is_ok());
    }

    #[test]
    fn streams_count_until_dropped_and_unset_limits_let_everything_through() {
        let l = limiter("[limits.per_principal]\nstreams = 2\n");
        let a = l.open_stream("a").unwrap();
        let _b = l.open_stream("a").unwrap();
        let e = l.open_stream("a").unwrap_err();
        assert!(e.to_string().contains("close a stream"), "{e}");
        drop(a);
        let _c = l.open_stream("a").unwrap();
        let free = limiter("[limits.per_principal]\n");
        let t0 = Instant::now();
        for _ in 0..10_000 {
            free.request("x", t0).unwrap();
        }
        free.send("x", u64::MAX / 2, t0).unwrap();
    }
}
