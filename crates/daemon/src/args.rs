//! Command-line flags of the daemon, shared by `ringfeedd` and `ringfeed serve`.

use crate::Config;
use std::path::PathBuf;

/// Flags of `ringfeedd` / `ringfeed serve`. Flags override the config file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ServeArgs {
    /// TOML config (datasets, rollups, ring sizes, memory budget, fsync policy, limits).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Store root (default ./ringfeed-data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Control socket (default $XDG_RUNTIME_DIR/ringfeed.sock or /tmp/ringfeed-$UID/ringfeed.sock).
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Serve Prometheus metrics at this address, e.g. 127.0.0.1:9464.
    #[arg(long)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve Arrow Flight (gRPC) at this address, e.g. 127.0.0.1:8815 (off by default;
    /// a non-loopback address also needs `[flight] allow_unauthenticated_remote = true`).
    #[arg(long, value_name = "ADDR")]
    pub flight: Option<std::net::SocketAddr>,
    /// Serve HTTP at this address, e.g. 127.0.0.1:5993: MarketStore's `/rpc` and `/ws`,
    /// the web page at `/` and `/metrics` (off by default; a non-loopback address also
    /// needs tokens or `[http] allow_unauthenticated_remote = true`).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<std::net::SocketAddr>,
    /// Prefix of every arena this daemon creates (default "rfd<UID>"); two daemons on
    /// one host need different prefixes.
    #[arg(long)]
    pub arena_prefix: Option<String>,
    /// Write finished days down to Parquet this long after each UTC midnight, and once
    /// at start (default 10m); "off" keeps every day in the hot tier.
    #[arg(long, value_name = "DELAY", value_parser = parse_delay_arg)]
    pub write_down_delay: Option<Delay>,
    /// Follow the datasets of the ringfeedd at this Flight URL (grpc://host:port or
    /// grpc+tls://host:port) into this daemon's own store; local writes to them are refused.
    #[arg(long, value_name = "URL")]
    pub follow: Option<String>,
    /// The bearer token for --follow (prefer --token-file: a flag shows in `ps`).
    #[arg(long, value_name = "TOKEN", requires = "follow")]
    pub token: Option<String>,
    /// A file holding the token for --follow.
    #[arg(
        long,
        value_name = "FILE",
        requires = "follow",
        conflicts_with = "token"
    )]
    pub token_file: Option<PathBuf>,
    /// Datasets to follow, comma-separated (default: every one the token may read).
    #[arg(long, value_name = "A,B", value_delimiter = ',', requires = "follow")]
    pub datasets: Option<Vec<String>>,
    /// PEM of the CA that signed the primary's certificate (grpc+tls://).
    #[arg(long, value_name = "FILE", requires = "follow")]
    pub follow_ca: Option<PathBuf>,
    /// PEM certificate this follower presents to a primary that requires client
    /// certificates (mutual TLS, the primary's `[flight.tls] client_ca`); needs --follow-key.
    #[arg(long, value_name = "FILE", requires_all = ["follow", "follow_key"])]
    pub follow_cert: Option<PathBuf>,
    /// PEM private key of --follow-cert.
    #[arg(long, value_name = "FILE", requires_all = ["follow", "follow_cert"])]
    pub follow_key: Option<PathBuf>,
    /// Print a new random bearer token for principal NAME, and the `[[auth.tokens]]`
    /// entry (with the token's SHA-256, never the token) to paste into the config; then
    /// exit. The token is shown once.
    #[arg(long, value_name = "NAME")]
    pub new_token: Option<String>,
}

/// A parsed `--write-down-delay`: a duration, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delay(pub Option<std::time::Duration>);

fn parse_delay_arg(s: &str) -> Result<Delay, String> {
    crate::config::parse_delay(s).map(Delay)
}

impl ServeArgs {
    /// The config file (or the defaults) with these flags applied.
    pub fn config(&self) -> Result<Config, crate::config::ConfigError> {
        let mut cfg = match &self.config {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        }
        if let Some(s) = &self.socket {
            cfg.socket = s.clone();
        }
        if self.metrics.is_some() {
            cfg.metrics = self.metrics;
        }
        if self.flight.is_some() {
            cfg.flight.listen = self.flight;
        }
        if self.http.is_some() {
            cfg.http.listen = self.http;
        }
        if let Some(p) = &self.arena_prefix {
            cfg.arena_prefix = p.clone();
        }
        if let Some(Delay(d)) = self.write_down_delay {
            cfg.write_down_delay = d;
        }
        let base = self
            .config
            .as_deref()
            .and_then(std::path::Path::parent)
            .unwrap_or(std::path::Path::new("."));
        // The config's follow files are relative to it; the flags' to the working directory.
        cfg.follow.relative_to(base);
        if let Some(url) = &self.follow {
            cfg.follow.url = Some(url.clone());
            if self.token.is_some() || self.token_file.is_some() {
                cfg.follow.token = self.token.clone();
                cfg.follow.token_file = self.token_file.clone();
            }
            if let Some(d) = &self.datasets {
                cfg.follow.datasets = d.clone();
            }
            if self.follow_ca.is_some() {
                cfg.follow.tls_ca = self.follow_ca.clone();
            }
            if self.follow_cert.is_some() || self.follow_key.is_some() {
                cfg.follow.tls_cert = self.follow_cert.clone();
                cfg.follow.tls_key = self.follow_key.clone();
            }
        }
        cfg.check()?;
        // Files named in the config are relative to it. (Tokens and TLS files are read and
        // checked once, by `serve`, before it binds anything.)
        if let Some(f) = &cfg.auth.tokens_file {
            cfg.auth.tokens_file = Some(base.join(f)); // relative to the config file
        }
        if let Some(tls) = &mut cfg.flight.tls {
            tls.relative_to(base);
        }
        Ok(cfg)
    }

    /// Logs to stderr, serves until SIGTERM/SIGINT, then closes every arena.
    pub fn run(&self) -> Result<(), ArgsError> {
        if let Some(name) = &self.new_token {
            let token = crate::auth::new_token().map_err(ArgsError::Token)?;
            println!("token for {name:?} (shown once; give it to the client, keep only the hash):\n{token}\n");
            println!("[[auth.tokens]]\nname = {name:?}\nsha256 = \"{}\"\nread = [\"*\"]\nwrite = []\nadmin = false", crate::auth::hash_token(&token));
            return Ok(());
        }
        crate::init_logging();
        let cfg = self.config()?;
        let stop = crate::stop_on_signals().map_err(ArgsError::Signals)?;
        crate::serve(cfg, stop)?;
        Ok(())
    }
}

/// Why `ringfeedd` / `ringfeed serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// No random bytes for a new token.
    #[error("cannot make a token (reading /dev/urandom): {0}")]
    Token(std::io::Error),
    /// The daemon could not start.
    #[error(transparent)]
    Serve(#[from] crate::ServeError),
}
