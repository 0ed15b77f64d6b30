//! Follower daemons (kdb+'s chained tickerplants, MarketStore's replication): this daemon
//! follows datasets of another `ringfeedd` (the primary) over its Arrow Flight face, into
//! its own store.
//!
//! Per dataset, one thread ([`dataset::Follower`]):
//! 1. creates the dataset here with the primary's settings (its `datasets` action) if it
//!    is missing, and refuses to follow one whose base, rollups or session differ;
//! 2. applies the primary's change log since its cursor ([`changes`]: deletes, trims,
//!    rows written below a symbol's newest bar), then resumes from the newest base bar
//!    it holds (the oldest of its symbols'), inclusive: more than a day behind, in
//!    pipelined chunks first ([`backfill`]), then a subscription (the history, then the
//!    live batches, with the primary's seam: no gap, no duplicate); rows it holds
//!    already are dropped from the catch-up ([`held`]);
//! 3. appends what it receives through the service's append path
//!    ([`Service::append_followed`]): WAL, rollups, write-down and topic publications
//!    happen exactly as on a primary, so the follower can itself be followed (a chain);
//! 4. reconnects after a cut or a restart of either side with capped, jittered
//!    exponential backoff ([`backoff::Backoff`]), logging once per change of state, while
//!    the daemon serves what it has.
//!
//! Local writes to a followed dataset are refused by the service core
//! (`ErrorKind::Followed`, naming the primary). See docs/scale-out.md.

mod backfill;
pub mod backoff;
mod changes;
mod dataset;
mod held;

use crate::service::Service;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `[follow]`: the primary to follow (off unless `url` is given).
///
/// ```toml
/// [follow]
/// url = "grpc+tls://primary:8815"
/// token_file = "follower.token"    # or token = "..."
/// datasets = ["binance-spot"]      # default: every dataset the token may read
/// tls_ca = "primary-ca.pem"        # the CA that signed the primary's certificate
/// tls_cert = "follower.pem"         # this follower's certificate, when the primary
/// tls_key = "follower.key"          #   requires one (its `[flight.tls] client_ca`)
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FollowConfig {
    /// The primary's Flight URL: `grpc://host:port` or `grpc+tls://host:port`.
    pub url: Option<String>,
    /// A bearer token with read scope on the followed datasets.
    pub token: Option<String>,
    /// A file holding the token (relative to the config file); kept out of `ps`.
    pub token_file: Option<PathBuf>,
    /// Datasets to follow; empty: every dataset the token may read, found at start and
    /// every [`DISCOVER_EVERY`].
    pub datasets: Vec<String>,
    /// PEM of the CA that signed the primary's certificate (`grpc+tls://`).
    pub tls_ca: Option<PathBuf>,
    /// The name the primary's certificate is for, when it is not the URL's host.
    pub tls_domain: Option<String>,
    /// PEM certificate (chain) this follower presents to a primary that requires client
    /// certificates (mutual TLS: the primary's `[flight.tls] client_ca`); with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

/// How often a follower of "every dataset" asks the primary for new ones.
pub const DISCOVER_EVERY: Duration = Duration::from_secs(10);

impl FollowConfig {
    /// Whether the settings hold together (a URL the client takes; a token not given twice).
    pub fn check(&self) -> Result<(), crate::config::ConfigError> {
        let bad = |key: &str, message: String| crate::config::ConfigError::Value {
            key: format!("follow.{key}"),
            message,
        };
        let Some(url) = &self.url else {
            if self.token.is_some() || self.token_file.is_some() || !self.datasets.is_empty() {
                return Err(bad(
                    "url",
                    "[follow] has settings but no url: give the primary's grpc://host:port (or --follow)".into(),
                ));
            }
            return Ok(());
        };
        if !["grpc://", "grpc+tcp://", "grpc+tls://"]
            .iter()
            .any(|p| url.starts_with(p))
        {
            return Err(bad(
                "url",
                format!(
                    "{url:?} is not a Flight URL: write grpc://host:port or grpc+tls://host:port"
                ),
            ));
        }
        if self.token.is_some() && self.token_file.is_some() {
            return Err(bad("token", "give token or token_file, not both".into()));
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), None) => Err(bad(
                "tls_key",
                format!(
                    "the client certificate {} has no key: give its private key too (tls_key, or --follow-key)",
                    c.display()
                ),
            )),
            (None, Some(k)) => Err(bad(
                "tls_cert",
                format!(
                    "the client key {} has no certificate: give the certificate too (tls_cert, or --follow-cert)",
                    k.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// File paths taken relative to `base` (the config file's directory).
    pub fn relative_to(&mut self, base: &Path) {
        if let Some(f) = &self.token_file {
            self.token_file = Some(base.join(f));
        }
        for f in [&mut self.tls_ca, &mut self.tls_cert, &mut self.tls_key]
            .into_iter()
            .flatten()
        {
            *f = base.join(&*f);
        }
    }

    /// The client options: the token, CA and client certificate files read (once, at
    /// start; a certificate or key that is not PEM is refused here, naming its file).
    fn options(&self) -> Result<ringfeed_remote::RemoteOptions, crate::config::ConfigError> {
        let read = |key: &str, p: &Path| {
            std::fs::read(p).map_err(|e| crate::config::ConfigError::Value {
                key: format!("follow.{key}"),
                message: format!("cannot read {}: {e}", p.display()),
            })
        };
        let client_identity = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => Some(read_identity(c, k)?),
            _ => None,
        };
        let token = match (&self.token, &self.token_file) {
            (Some(t), _) => Some(t.trim().to_string()),
            (None, Some(f)) => Some(
                String::from_utf8_lossy(&read("token_file", f)?)
                    .trim()
                    .to_string(),
            ),
            (None, None) => None,
        };
        Ok(ringfeed_remote::RemoteOptions {
            token,
            tls_root_certs: self
                .tls_ca
                .as_deref()
                .map(|p| read("tls_ca", p))
                .transpose()?,
            client_identity,
            tls_domain: self.tls_domain.clone(),
        })
    }
}

/// Reads a client certificate and its key, checking both are PEM of the right kind (a
/// mistake here would otherwise show only as a refused handshake, reconnecting forever).
fn read_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<u8>, Vec<u8>), crate::config::ConfigError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let bad = |k: &str, p: &Path, message: String| crate::config::ConfigError::Value {
        key: format!("follow.{k}"),
        message: format!("{}: {message}", p.display()),
    };
    let read = |k: &str, p: &Path| {
        std::fs::read(p).map_err(|e| bad(k, p, format!("cannot read the file: {e}")))
    };
    let (c, k) = (read("tls_cert", cert)?, read("tls_key", key)?);
    let certs = CertificateDer::pem_slice_iter(&c)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("tls_cert", cert, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(bad(
            "tls_cert",
            cert,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----): give the follower's certificate".into(),
        ));
    }
    PrivateKeyDer::from_pem_slice(&k).map_err(|e| {
        bad(
            "tls_key",
            key,
            format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    Ok((c, k))
}

/// The primary and how to reach it, shared by the followers of its datasets.
pub(crate) struct Primary {
    pub url: String,
    pub options: ringfeed_remote::RemoteOptions,
}

/// A follower's client options, its token and TLS files read and checked
/// ([`FollowConfig::load`]).
pub struct Credentials(ringfeed_remote::RemoteOptions);

impl FollowConfig {
    /// Checks the settings and reads the token and TLS files, once: `serve` calls this
    /// before it binds anything, so a missing or malformed file refuses the start (and
    /// the daemon never looks started). `None` when nothing is followed.
    pub fn load(&self) -> Result<Option<Credentials>, crate::config::ConfigError> {
        if self.url.is_none() {
            return Ok(None);
        }
        self.check()?;
        self.options().map(|o| Some(Credentials(o)))
    }
}

/// Starts following (if `[follow] url` is set, with the [`FollowConfig::load`]ed
/// credentials): the named datasets are marked followed at once (so no local write
/// slips in before their follower starts), and a thread per dataset follows it until
/// `stop`. Returns the threads to join.
pub fn start(
    service: &Arc<Service>,
    cfg: &FollowConfig,
    credentials: Option<Credentials>,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<()>> {
    let (Some(url), Some(Credentials(options))) = (&cfg.url, credentials) else {
        return Vec::new();
    };
    let primary = Arc::new(Primary {
        url: url.clone(),
        options,
    });
    let mut threads = Vec::new();
    if cfg.datasets.is_empty() {
        let (s, p, st) = (service.clone(), primary.clone(), stop.clone());
        threads.push(spawn("ringfeedd-follow", move || discover(s, p, st)));
    } else {
        for d in &cfg.datasets {
            service.follow_dataset(d, url);
            threads.push(dataset::Follower::spawn(
                service.clone(),
                primary.clone(),
                d.clone(),
                stop.clone(),
            ));
        }
    }
    tracing::info!(primary = %url, datasets = ?cfg.datasets, "following");
    threads
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .expect("a thread for the follower")
}

/// Sleeps `d` unless `stop` is set first; whether to go on.
pub(crate) fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let until = std::time::Instant::now() + d;
    while !stop.load(Ordering::Relaxed) {
        let now = std::time::Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
    false
}

/// Follows every dataset the token may read: asks the primary for its datasets at
/// start and every [`DISCOVER_EVERY`], and starts a follower for each new one.
fn discover(service: Arc<Service>, primary: Arc<Primary>, stop: Arc<AtomicBool>) {
    let mut followers: std::collections::BTreeMap<String, std::thread::JoinHandle<()>> =
        Default::default();
    let mut backoff = backoff::Backoff::default();
    let mut failing = false;
    while !stop.load(Ordering::Relaxed) {
        let listed = ringfeed_remote::RemoteClient::connect(&primary.url, primary.options.clone())
            .and_then(|mut c| c.datasets());
        let wait = match listed {
            Ok(v) => {
                if failing {
                    tracing::info!(primary = %primary.url, "the primary answers again");
                    failing = false;
                }
                backoff.reset();
                for name in v.as_object().into_iter().flat_map(|m| m.keys()) {
                    if !followers.contains_key(name) {
                        service.follow_dataset(name, &primary.url);
                        let h = dataset::Follower::spawn(
                            service.clone(),
                            primary.clone(),
                            name.clone(),
                            stop.clone(),
                        );
                        followers.insert(name.clone(), h);
                    }
                }
                DISCOVER_EVERY
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(primary = %primary.url, error = %e, "cannot list the primary's datasets; serving what is stored, retrying with backoff");
                    failing = true;
                }
                backoff.next_delay()
            }
        };
        if !sleep_unless_stopped(wait, &stop) {
            break;
        }
    }
    for (_, h) in followers {
        let _ = h.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn follow_parses_in_the_issue_shape_and_refuses_what_cannot_work() {
        let p = |t: &str| Config::parse(t, Path::new("t.toml"));
        let c = p(
            "[follow]\nurl = \"grpc://primary:8815\"\ntoken = \"T\"\ndatasets = [\"a\", \"b\"]\n",
        )
        .unwrap();
        assert_eq!(c.follow.url.as_deref(), Some("grpc://primary:8815"));
        assert_eq!(c.follow.datasets, ["a", "b"]);
        assert_eq!(Config::default().follow.url, None, "off by default");
        for (bad, key) in [
            ("url = \"http://primary:8815\"", "follow.url"),
            ("token = \"T\"", "follow.url"),
            (
                "url = \"grpc://p:1\"\ntoken = \"T\"\ntoken_file = \"f\"",
                "follow.token",
            ),
            ("url = \"grpc://p:1\"\ntokn = \"T\"", "tokn"),
        ] {
            let e = p(&format!("[follow]\n{bad}\n")).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn the_token_file_is_read_trimmed_and_a_missing_one_is_named() {
        let dir = tempfile_dir();
        let f = dir.join("t.token");
        std::fs::write(&f, "secret-token\n").unwrap();
        let cfg = FollowConfig {
            url: Some("grpc://p:1".into()),
            token_file: Some(f.clone()),
            ..Default::default()
        };
        assert_eq!(
            cfg.options().unwrap().token.as_deref(),
            Some("secret-token")
        );
        let missing = FollowConfig {
            token_file: Some(dir.join("nope")),
            ..cfg
        };
        let e = missing.options().unwrap_err().to_string();
        assert!(e.contains("follow.token_file") && e.contains("nope"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_both_must_be_pem_naming_the_file() {
        // Its own directory: the other test removes its own when done.
        let dir = std::env::temp_dir().join(format!("rf-follow-mtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = |t: &str| Config::parse(t, Path::new("t.toml"));
        let e = p("[follow]\nurl = \"grpc+tls://p:1\"\ntls_cert = \"c.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("follow.tls_key") && e.contains("c.pem"), "{e}");
        let e = p("[follow]\nurl = \"grpc+tls://p:1\"\ntls_key = \"c.key\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("follow.tls_cert") && e.contains("c.key"), "{e}");
        // Read at start: a missing file, then files that are not PEM, each named.
        let (cert, key) = (dir.join("c.pem"), dir.join("c.key"));
        let cfg = FollowConfig {
            url: Some("grpc+tls://p:1".into()),
            tls_cert: Some(cert.clone()),
            tls_key: Some(key.clone()),
            ..Default::default()
        };
        let e = cfg.options().unwrap_err().to_string();
        assert!(e.contains("follow.tls_cert") && e.contains("c.pem"), "{e}");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let e = cfg.options().unwrap_err().to_string();
        assert!(
            e.contains("follow.tls_cert") && e.contains("no PEM certificate"),
            "{e}"
        );
        std::fs::write(
            &cert,
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = cfg.options().unwrap_err().to_string();
        assert!(e.contains("follow.tls_key") && e.contains("c.key"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("rf-follow-unit-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
