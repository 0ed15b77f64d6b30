//! Daemon configuration: sane defaults, or one TOML file.
//!
//! ```toml
//! data_dir = "./ringfeed-data"
//! socket = "/run/user/1000/ringfeed.sock"
//! metrics = "127.0.0.1:9464"
//! memory_budget = "2GiB"
//! write_down_delay = "10m"   # after UTC midnight; "off" keeps every day hot
//!
//! [topics]
//! slots = 32
//! slot_bytes = "256KiB"
//!
//! [flight]                  # optional: the Arrow Flight face (docs/flight.md)
//! listen = "127.0.0.1:8815"
//!
//! [http]                    # optional: MarketStore's /rpc and /ws, the web page, /metrics
//! listen = "127.0.0.1:5993"
//! ohlcv_dataset = "binance-spot"
//!
//! [follow]                 # optional: follow a primary's datasets (docs/scale-out.md)
//! url = "grpc://primary:8815"
//! token_file = "follower.token"
//!
//! [lake]                    # optional: finished partitions to object storage (docs/scale-out.md)
//! url = "s3://bucket/ringfeed"
//! lake_retention = "10y"
//!
//! [datasets.binance-spot]
//! base = "1m"
//! rollups = ["5m", "15m", "1h", "1d"]
//! fsync = "always"
//! retention = "400d"          # optional: partitions older are dropped at write-down
//! rollup_retention = "10y"    # optional: rollups kept longer than the base bars
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path:?}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The TOML is invalid or has unknown keys.
    #[error("invalid config {path:?}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said (with line and column).
        message: String,
    },
    /// A value is out of range.
    #[error("invalid config value for {key}: {message}")]
    Value {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The `[auth]` tokens are invalid.
    #[error("invalid config [auth]: {0}")]
    Auth(#[from] crate::auth::AuthConfigError),
}

/// Topic ring sizing (one ring per dataset and timeframe).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TopicConfig {
    /// Batches each topic ring keeps.
    pub slots: u32,
    /// Largest encoded batch per slot; larger appends are split.
    #[serde(deserialize_with = "de_bytes")]
    pub slot_bytes: u64,
    /// Subscribers per topic.
    pub max_readers: u32,
}

impl Default for TopicConfig {
    fn default() -> Self {
        Self {
            slots: 32,
            slot_bytes: 256 << 10,
            max_readers: 16,
        }
    }
}

/// The Arrow Flight face (`[flight]`): off unless `listen` is given.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FlightConfig {
    /// Address of the gRPC endpoint, e.g. `127.0.0.1:8815`.
    pub listen: Option<SocketAddr>,
    /// Serve Flight on a non-loopback address with no `[[auth.tokens]]`:
    /// anyone who reaches the port reads every dataset. Unsafe; off by
    /// default, and a non-loopback `listen` without tokens or this refuses
    /// to start.
    pub allow_unauthenticated_remote: bool,
    /// TLS for the endpoint (`[flight.tls]`); plaintext when absent.
    pub tls: Option<FlightTls>,
}

/// `[flight.tls]`: PEM files, relative to the config file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FlightTls {
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// CA certificates whose clients are accepted (mutual TLS): a client without a
    /// certificate signed by one of them is refused at the handshake.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

/// The PEM text of `[flight.tls]`'s files: certificate chain, key, client CA.
pub type TlsPem = (Vec<u8>, Vec<u8>, Option<Vec<u8>>);

impl FlightTls {
    /// The three files as PEM text, or which one could not be read.
    pub fn load(&self) -> Result<TlsPem, ConfigError> {
        let read = |key: &str, p: &Path| {
            std::fs::read(p).map_err(|e| ConfigError::Value {
                key: format!("flight.tls.{key}"),
                message: format!("cannot read {}: {e}", p.display()),
            })
        };
        Ok((
            read("cert", &self.cert)?,
            read("key", &self.key)?,
            self.client_ca
                .as_deref()
                .map(|p| read("client_ca", p))
                .transpose()?,
        ))
    }

    /// The paths taken relative to `base` (the config file's directory).
    pub fn relative_to(&mut self, base: &Path) {
        self.cert = base.join(&self.cert);
        self.key = base.join(&self.key);
        if let Some(ca) = &self.client_ca {
            self.client_ca = Some(base.join(ca));
        }
    }
}

impl FlightConfig {
    /// Whether this listen address may be served: loopback, with tokens
    /// (`auth`), or explicitly allowed.
    pub fn check(&self, auth: bool) -> Result<(), ConfigError> {
        check_listen(
            "flight",
            self.listen,
            auth,
            self.allow_unauthenticated_remote,
        )
    }
}

/// The HTTP face (`[http]`): MarketStore's `/rpc` and `/ws`, the web page, and the
/// metrics; off unless `listen` is given.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address of the listener, e.g. `127.0.0.1:5993` (MarketStore's port).
    pub listen: Option<SocketAddr>,
    /// The dataset MarketStore's attribute group `OHLCV` names (other attribute groups
    /// name a dataset directly).
    pub ohlcv_dataset: Option<String>,
    /// Serve HTTP on a non-loopback address with no `[[auth.tokens]]` (unsafe; as
    /// `[flight] allow_unauthenticated_remote`).
    pub allow_unauthenticated_remote: bool,
}

impl HttpConfig {
    /// Whether this listen address may be served: loopback, with tokens
    /// (`auth`), or explicitly allowed.
    pub fn check(&self, auth: bool) -> Result<(), ConfigError> {
        check_listen("http", self.listen, auth, self.allow_unauthenticated_remote)
    }
}

/// A network face's listen address (`[face] listen`) is served only on loopback, with
/// tokens, or when `[face] allow_unauthenticated_remote` says so.
fn check_listen(
    face: &str,
    listen: Option<SocketAddr>,
    auth: bool,
    allowed: bool,
) -> Result<(), ConfigError> {
    match listen {
        Some(addr) if !addr.ip().is_loopback() && !auth && !allowed => Err(ConfigError::Value {
            key: format!("{face}.listen"),
            message: format!(
                "{addr} is not a loopback address, and no [[auth.tokens]] are configured: anyone who can reach it could read every dataset. Add tokens (`ringfeedd --new-token NAME` prints one), listen on 127.0.0.1 (or [::1]) and tunnel to it, or set `[{face}] allow_unauthenticated_remote = true` in the config to serve it anyway (unsafe)"
            ),
        }),
        _ => Ok(()),
    }
}

/// A dataset the daemon creates at start-up if the store lacks it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatasetToml {
    /// Finest stored timeframe, e.g. "1m" (or "tick").
    pub base: String,
    /// Rollup targets maintained on write.
    #[serde(default)]
    pub rollups: Option<Vec<String>>,
    /// "always", "never" or "every:<ms>".
    #[serde(default)]
    pub fsync: Option<String>,
    /// First day of the week of `1w` bars: "mon" (default) ... "sun".
    #[serde(default)]
    pub week_start: Option<String>,
    /// How long rows are kept ("400d", "26w", "2y"); applied at each write-down.
    #[serde(default)]
    pub retention: Option<String>,
    /// How long rollup bars are kept when longer than `retention` (e.g. "10y").
    #[serde(default)]
    pub rollup_retention: Option<String>,
}

/// Everything the daemon needs. `Config::default()` is the no-config start.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Store root. Default `./ringfeed-data`.
    pub data_dir: PathBuf,
    /// Control socket. Default `$XDG_RUNTIME_DIR/ringfeed.sock`, else `/tmp/ringfeed-$UID/ringfeed.sock`.
    pub socket: PathBuf,
    /// Prometheus text endpoint (`GET /metrics`), off by default.
    pub metrics: Option<SocketAddr>,
    /// Bytes of query results kept in shared memory before LRU eviction.
    #[serde(deserialize_with = "de_bytes")]
    pub memory_budget: u64,
    /// Query results kept at once (each is a file in /dev/shm and a
    /// descriptor); beyond it the least recently used unheld one is evicted.
    pub max_cached_results: usize,
    /// Create the data directory's files 0640 and directories 0750 (for a
    /// group of readers) instead of 0600 and 0700.
    pub data_group_readable: bool,
    /// Largest query result one request may materialise.
    #[serde(deserialize_with = "de_bytes")]
    pub max_result_bytes: u64,
    /// Query results one client may hold unreleased at once.
    pub max_pending_per_client: u32,
    /// Simultaneous client connections, across faces. When all are open, the
    /// longest-idle one is closed for a newcomer; only when every one is inside
    /// a request is a newcomer refused (`busy`).
    pub max_connections: u32,
    /// Connections one client (process, or network address) may hold open.
    pub max_connections_per_client: u32,
    /// A connection silent for this long is closed (clients reconnect on their
    /// next call). Default `"5m"`.
    #[serde(deserialize_with = "de_duration")]
    pub idle_timeout: std::time::Duration,
    /// A request must arrive whole, and its answer be taken, within this once
    /// it has started. Default `"30s"`.
    #[serde(deserialize_with = "de_duration")]
    pub request_timeout: std::time::Duration,
    /// Bytes of request payloads (appends) held at once across connections;
    /// more are answered `busy`. Default `"1GiB"`.
    #[serde(deserialize_with = "de_bytes")]
    pub max_inflight_bytes: u64,
    /// Largest append payload.
    #[serde(deserialize_with = "de_bytes")]
    pub max_append_bytes: u64,
    /// Rows per batch of a materialised query result.
    pub chunk_rows: usize,
    /// Readers that may attach to one query result at once.
    pub result_readers: u32,
    /// Prefix of every arena this daemon creates.
    pub arena_prefix: String,
    /// Topic ring sizing.
    pub topics: TopicConfig,
    /// End-of-day write-down (DESIGN §3, as in kdb+): this long after each UTC midnight,
    /// the daemon moves every hot day before it into the Parquet cold tier; it also catches
    /// up once at start. `"off"` (TOML) or `None` keeps every day hot. Default 10 minutes,
    /// so that late bars of the day before still land in its WAL first.
    #[serde(deserialize_with = "de_delay")]
    pub write_down_delay: Option<std::time::Duration>,
    /// The Arrow Flight face; off unless `[flight] listen` is set.
    pub flight: FlightConfig,
    /// The HTTP face; off unless `[http] listen` is set.
    pub http: HttpConfig,
    /// Datasets to create when missing.
    pub datasets: BTreeMap<String, DatasetToml>,
    /// Bearer tokens and their scopes, for the network faces ([`crate::auth`]).
    pub auth: crate::auth::AuthConfig,
    /// Per-principal rate limits of the network faces ([`crate::auth::limits`]).
    pub limits: crate::auth::limits::LimitsConfig,
    /// The primary this daemon follows datasets of ([`crate::follow`]); off unless
    /// `[follow] url` is set.
    pub follow: crate::follow::FollowConfig,
    /// The Parquet lake on object storage (`[lake]`, docs/scale-out.md); off when absent.
    pub lake: Option<ringfeed_lake::LakeConfig>,
}

pub use ringfeed_client::default_socket;
use ringfeed_client::uid;

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("ringfeed-data"),
            socket: default_socket(),
            metrics: None,
            memory_budget: 2 << 30,
            max_result_bytes: 1 << 30,
            // Far below a default RLIMIT_NOFILE of 1024, leaving room for
            // connections and topics.
            max_cached_results: 256,
            data_group_readable: false,
            max_pending_per_client: 16,
            max_connections: 256,
            max_connections_per_client: 64,
            idle_timeout: std::time::Duration::from_secs(300),
            request_timeout: std::time::Duration::from_secs(30),
            max_inflight_bytes: 1 << 30,
            max_append_bytes: 256 << 20,
            chunk_rows: 262_144,
            result_readers: 64,
            arena_prefix: format!("rfd{}", uid()),
            topics: TopicConfig::default(),
            write_down_delay: Some(std::time::Duration::from_secs(600)),
            flight: FlightConfig::default(),
            http: HttpConfig::default(),
            datasets: BTreeMap::new(),
            auth: Default::default(),
            limits: Default::default(),
            follow: Default::default(),
            lake: None,
        }
    }
}

impl Config {
    /// Loads a TOML file; missing keys take their defaults, unknown keys are errors.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses TOML text (`path` is for messages).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Range checks.
    pub fn check(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: &str| ConfigError::Value {
            key: key.into(),
            message: message.into(),
        };
        if self.max_connections == 0 || self.max_connections_per_client == 0 {
            return Err(bad(
                "max_connections",
                "max_connections and max_connections_per_client must be at least 1",
            ));
        }
        if self.idle_timeout.is_zero() || self.request_timeout.is_zero() {
            return Err(bad(
                "idle_timeout",
                "idle_timeout and request_timeout must be longer than 0s",
            ));
        }
        if self.max_inflight_bytes < self.max_append_bytes {
            return Err(bad(
                "max_inflight_bytes",
                "must be at least max_append_bytes, or no append of the largest size could ever be read",
            ));
        }
        if self.max_cached_results == 0 {
            return Err(bad("max_cached_results", "must be at least 1"));
        }
        if self.chunk_rows == 0 {
            return Err(bad("chunk_rows", "must be at least 1"));
        }
        if self.topics.slots == 0 || self.topics.max_readers == 0 {
            return Err(bad("topics", "slots and max_readers must be at least 1"));
        }
        if ringfeed_shm::check_name(&format!("{}.x", self.arena_prefix)).is_err() {
            return Err(bad(
                "arena_prefix",
                "letters, digits, '.', '_' and '-' only",
            ));
        }
        let tokens = !self.auth.tokens.is_empty() || self.auth.tokens_file.is_some();
        self.flight.check(tokens)?;
        self.http.check(tokens)?;
        self.follow.check()?;
        if let Some(l) = &self.lake {
            l.retry_max()
                .map_err(|e| bad("lake.retry_max", &e.to_string()))?;
        }
        for (name, d) in &self.datasets {
            d.base
                .parse::<ringfeed_store::Timeframe>()
                .map_err(|e| bad(&format!("datasets.{name}.base"), &e.to_string()))?;
        }
        Ok(())
    }
}

/// Parses sizes like `262144`, `"256KiB"`, `"2GiB"`, `"1.5MB"`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        "t" | "tb" => 1_000_000_000_000,
        "tib" => 1 << 40,
        u => return Err(format!("unknown size unit {u:?} in {s:?}")),
    };
    Ok((v * mult as f64) as u64)
}

/// Parses durations like `"10m"`, `"90s"`, `"1h"`, `"500ms"`, `"0s"`; `"off"` is `None`.
pub fn parse_delay(s: &str) -> Result<Option<std::time::Duration>, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (e.g. \"10m\", \"90s\", or \"off\")"))?;
    let ms = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        u => {
            return Err(format!(
                "unknown duration unit {u:?} in {s:?}: use ms, s, m or h"
            ))
        }
    };
    let ms = v
        .checked_mul(ms)
        .filter(|ms| *ms < 86_400_000)
        .ok_or_else(|| format!("{s:?} must be shorter than a day"))?;
    Ok(Some(std::time::Duration::from_millis(ms)))
}

fn de_delay<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    parse_delay(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn de_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    parse_delay(&String::deserialize(d)?)
        .and_then(|d| d.ok_or_else(|| "\"off\" is not allowed here: give a duration".to_string()))
        .map_err(serde::de::Error::custom)
}

/// A byte size: a number, or text like `"200MiB"` ([`parse_bytes`]).
pub(crate) fn de_bytes<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        Int(u64),
        Str(String),
    }
    match N::deserialize(d)? {
        N::Int(v) => Ok(v),
        N::Str(s) => parse_bytes(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_and_limits_tables_parse_in_the_issue_shape() {
        let c = Config::parse(
            r#"
            [[auth.tokens]]
            name = "research"
            sha256 = "7c701e7af3b5a73794e9ab4e47a20f73a40b49b8c7b1a0177ccec761b42e7e7c"
            read = ["*"]
            write = ["binance-*"]
            admin = false
            [limits.per_principal]
            requests_per_s = 200
            bytes_per_s = "200MiB"
            streams = 16
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.auth.tokens[0].name, "research");
        assert_eq!(c.limits.per_principal.bytes_per_s, Some(200 << 20));
        assert_eq!(c.limits.per_principal.streams, Some(16));
        let e =
            Config::parse("[limits.per_principal]\nrps = 1\n", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("rps"), "{e}");
    }

    #[test]
    fn defaults_are_sane() {
        let c = Config::default();
        c.check().unwrap();
        assert_eq!(c.data_dir, PathBuf::from("ringfeed-data"));
        assert!(c.socket.to_string_lossy().ends_with(".sock"));
    }

    #[test]
    fn toml_overrides_and_sizes() {
        let c = Config::parse(
            r#"
            data_dir = "/tmp/x"
            memory_budget = "512MiB"
            metrics = "127.0.0.1:9464"
            [topics]
            slot_bytes = "64KiB"
            [datasets.binance-spot]
            base = "1m"
            rollups = ["5m", "1h"]
            "#,
            Path::new("t.toml"),
        )
        .unwrap();
        assert_eq!(c.memory_budget, 512 << 20);
        assert_eq!(c.topics.slot_bytes, 64 << 10);
        assert_eq!(c.topics.slots, 32, "unset keys keep defaults");
        assert_eq!(
            c.datasets["binance-spot"].rollups.as_ref().unwrap().len(),
            2
        );
    }

    #[test]
    fn write_down_delay_parses_and_defaults_to_ten_minutes() {
        use std::time::Duration;
        assert_eq!(
            Config::default().write_down_delay,
            Some(Duration::from_secs(600))
        );
        let p = |t: &str| Config::parse(&format!("write_down_delay = {t:?}"), Path::new("t.toml"));
        assert_eq!(p("off").unwrap().write_down_delay, None);
        assert_eq!(p("0s").unwrap().write_down_delay, Some(Duration::ZERO));
        assert_eq!(
            p("90s").unwrap().write_down_delay,
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            p("2h").unwrap().write_down_delay,
            Some(Duration::from_secs(7200))
        );
        for bad in ["10 parsecs", "25h", "-1m", "m"] {
            let e = p(bad).unwrap_err().to_string();
            assert!(
                e.contains("write_down_delay") || e.contains(bad),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn flight_is_off_by_default_and_refuses_remote_addresses_without_the_opt_in() {
        assert_eq!(Config::default().flight.listen, None);
        let p = |t: &str| Config::parse(t, Path::new("t.toml"));
        let c = p("[flight]\nlisten = \"127.0.0.1:8815\"").unwrap();
        assert_eq!(c.flight.listen, Some("127.0.0.1:8815".parse().unwrap()));
        assert!(p("[flight]\nlisten = \"[::1]:8815\"").is_ok());
        for remote in ["0.0.0.0:8815", "192.0.2.7:8815", "[::]:8815"] {
            let e = p(&format!("[flight]\nlisten = {remote:?}")).unwrap_err();
            let e = e.to_string();
            assert!(
                e.contains("flight.listen") && e.contains("allow_unauthenticated_remote = true"),
                "{remote}: {e}"
            );
            let ok = p(&format!(
                "[flight]\nlisten = {remote:?}\nallow_unauthenticated_remote = true"
            ));
            assert!(ok.is_ok(), "{remote}: {ok:?}");
        }
        let e = p("[flight]\nlisen = \"127.0.0.1:1\"").unwrap_err();
        assert!(e.to_string().contains("lisen"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = Config::parse("data_dri = 'x'", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("data_dri"), "{e}");
        let e = Config::parse("memory_budget = '12 parsecs'", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("parsecs"), "{e}");
        let e = Config::parse("[datasets.x]\nbase = '7q'", Path::new("t.toml")).unwrap_err();
        assert!(e.to_string().contains("datasets.x.base"), "{e}");
    }
}
