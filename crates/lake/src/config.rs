//! `[lake]`: where the lake lives and how to reach it.
//!
//! ```toml
//! [lake]
//! url = "s3://bucket/prefix"      # or "file:///srv/lake"
//! endpoint = "http://127.0.0.1:9000"  # S3-compatible servers (MinIO, moto, Ceph)
//! region = "us-east-1"
//! allow_http = true               # plain http endpoint (a test server)
//! credentials_file = "/etc/ringfeed/aws-credentials"  # else AWS_ACCESS_KEY_ID/..., else ~/.aws/credentials
//! profile = "default"
//! lake_retention = "10y"          # default: keep everything
//! ```

use crate::error::OpenError;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, RetryConfig};
use ringfeed_store::retention::RetentionSpec;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The lake's settings (`[lake]` in the daemon's config, flags of `ringfeed lake`).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// `s3://bucket/prefix` or `file:///absolute/path`.
    pub url: String,
    /// S3 endpoint of an S3-compatible server (default: AWS for the region).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// S3 region (default: `AWS_REGION`, else `us-east-1`).
    #[serde(default)]
    pub region: Option<String>,
    /// Allow a plain `http://` endpoint.
    #[serde(default)]
    pub allow_http: bool,
    /// An AWS shared-credentials file (INI: `[profile]`, `aws_access_key_id`,
    /// `aws_secret_access_key`, optional `aws_session_token`). Without it the keys come
    /// from `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, else from
    /// `$AWS_SHARED_CREDENTIALS_FILE` or `~/.aws/credentials` when present.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// The profile of the credentials file (default `$AWS_PROFILE`, else `default`).
    #[serde(default)]
    pub profile: Option<String>,
    /// How long the lake keeps partitions ("10y", "400d"); none = keep everything. Applies
    /// to the lake only: local retention never removes anything from the lake.
    #[serde(default, alias = "retention")]
    pub lake_retention: Option<RetentionSpec>,
    /// The daemon's longest wait between retries of a failed pass ("300s", "5m"; default
    /// 5 minutes; the first retry comes after 2 s, doubling).
    #[serde(default)]
    pub retry_max: Option<String>,
}

/// A lake location, resolved: the object store and the prefix inside it.
pub(crate) struct Location {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) prefix: ObjectPath,
    /// The URL, for messages.
    pub(crate) url: String,
}

impl LakeConfig {
    /// A config for `url` with everything else default.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Default::default()
        }
    }

    /// The daemon's longest retry wait (`retry_max`, default 5 minutes).
    pub fn retry_max(&self) -> Result<Duration, OpenError> {
        let Some(s) = self.retry_max.as_deref().map(str::trim) else {
            return Ok(Duration::from_secs(300));
        };
        let bad = || OpenError::Value {
            key: "lake.retry_max".into(),
            message: format!("{s:?} is not a duration such as 30s, 500ms or 5m"),
        };
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let n: u64 = s[..split].parse().map_err(|_| bad())?;
        let d = match &s[split..] {
            "ms" => Duration::from_millis(n),
            "" | "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n * 60),
            "h" => Duration::from_secs(n * 3600),
            _ => return Err(bad()),
        };
        if d.is_zero() {
            return Err(bad());
        }
        Ok(d)
    }

    pub(crate) fn open(&self) -> Result<Location, OpenError> {
        self.retry_max()?;
        let url = url::Url::parse(&self.url).map_err(|e| OpenError::Url {
            url: self.url.clone(),
            reason: e.to_string(),
        })?;
        let bad = |reason: &str| OpenError::Url {
            url: self.url.clone(),
            reason: reason.into(),
        };
        match url.scheme() {
            "file" => {
                let dir = url
                    .to_file_path()
                    .map_err(|_| bad("a file URL names an absolute path: file:///srv/lake"))?;
                std::fs::create_dir_all(&dir).map_err(|source| OpenError::Dir {
                    dir: dir.clone(),
                    source,
                })?;
                let fs = LocalFileSystem::new_with_prefix(&dir).map_err(|e| OpenError::Store {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Location {
                    store: Arc::new(fs),
                    prefix: ObjectPath::default(),
                    url: self.url.clone(),
                })
            }
            "s3" => {
                let bucket = url
                    .host_str()
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| bad("an S3 URL names a bucket: s3://bucket/prefix"))?;
                let prefix = ObjectPath::parse(url.path().trim_matches('/'))
                    .map_err(|e| bad(&format!("bad prefix: {e}")))?;
                // The reqwest transport's rustls has no provider of its own (see Cargo.toml);
                // a second install (another lake, tonic's) is refused harmlessly. ring, not
                // aws-lc-rs (post-quantum key exchange), is the workspace's provider.
                #[allow(deprecated)]
                let _ = rustls::crypto::ring::default_provider().install_default();
                let mut b = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(self.allow_http)
                    .with_client_options(
                        ClientOptions::new()
                            .with_allow_http(self.allow_http)
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(120)),
                    )
                    // An outage fails the pass in seconds; the next pass (the daemon's
                    // retry timer, or the next `lake sync`) uploads what is missing.
                    .with_retry(RetryConfig {
                        max_retries: 2,
                        retry_timeout: Duration::from_secs(20),
                        ..Default::default()
                    });
                if let Some(e) = &self.endpoint {
                    b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
                }
                b = b.with_region(
                    self.region
                        .clone()
                        .or_else(|| std::env::var("AWS_REGION").ok())
                        .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                        .unwrap_or_else(|| "us-east-1".into()),
                );
                if let Some((key, secret, token)) = self.credentials()? {
                    b = b.with_access_key_id(key).with_secret_access_key(secret);
                    if let Some(t) = token {
                        b = b.with_token(t);
                    }
                }
                let s3 = b.build().map_err(|e| OpenError::Store {
                    url: self.url.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Location {
                    store: Arc::new(s3),
                    prefix,
                    url: self.url.clone(),
                })
            }
            other => Err(bad(&format!(
                "scheme {other:?}: the lake is s3://bucket/prefix or file:///path"
            ))),
        }
    }

    /// Keys from the configured credentials file; else none when the environment has
    /// them (object_store reads it); else the default shared-credentials file if present.
    fn credentials(&self) -> Result<Option<(String, String, Option<String>)>, OpenError> {
        let profile = self
            .profile
            .clone()
            .or_else(|| std::env::var("AWS_PROFILE").ok())
            .unwrap_or_else(|| "default".into());
        let file = match &self.credentials_file {
            Some(f) => f.clone(),
            None if std::env::var_os("AWS_ACCESS_KEY_ID").is_some() => return Ok(None),
            None => match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| Path::new(&h).join(".aws/credentials"))
                }) {
                Some(f) if f.exists() => f,
                _ => return Ok(None),
            },
        };
        let text = std::fs::read_to_string(&file).map_err(|source| OpenError::Credentials {
            file: file.clone(),
            reason: source.to_string(),
        })?;
        parse_credentials(&text, &profile)
            .map(Some)
            .ok_or_else(|| OpenError::Credentials {
                file,
                reason: format!(
                    "no [{profile}] section with aws_access_key_id and aws_secret_access_key"
                ),
            })
    }
}

/// The keys of `profile` in an AWS shared-credentials (INI) text.
pub(crate) fn parse_credentials(
    text: &str,
    profile: &str,
) -> Option<(String, String, Option<String>)> {
    let (mut key, mut secret, mut token) = (None, None, None);
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            inside = name == profile || name.strip_prefix("profile ") == Some(profile);
            continue;
        }
        if !inside {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => key = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some((key?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key=B\n\n[profile other]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=T\n";
        assert_eq!(
            parse_credentials(text, "default"),
            Some(("A".into(), "B".into(), None))
        );
        assert_eq!(
            parse_credentials(text, "other"),
            Some(("C".into(), "D".into(), Some("T".into())))
        );
        assert_eq!(parse_credentials(text, "missing"), None);
        assert_eq!(
            parse_credentials("[default]\naws_access_key_id=A\n", "default"),
            None
        );
    }

    #[test]
    fn toml_shape() {
        let c: LakeConfig = serde_json::from_str(
            r#"{"url":"s3://b/p","endpoint":"http://x:1","allow_http":true,"lake_retention":"2y"}"#,
        )
        .unwrap();
        assert_eq!(c.lake_retention.unwrap().days(), 730);
        assert!(serde_json::from_str::<LakeConfig>(r#"{"url":"s3://b","bogus":1}"#).is_err());
    }
}
