//! Who may do what, for the network faces (Arrow Flight, issue 14): bearer tokens with
//! scopes, and per-principal rate limits ([`limits`]).
//!
//! Tokens are never stored: the config (or a tokens file) holds the hex SHA-256 of each
//! token, its principal name and its scopes:
//!
//! ```toml
//! [auth]
//! tokens_file = "tokens.toml"       # optional: more [[tokens]] in the same shape
//! [[auth.tokens]]
//! name = "research"                 # the principal in logs and metrics
//! sha256 = "<hex sha256 of the token>"
//! read = ["*"]                      # dataset globs
//! write = ["binance-*"]
//! admin = false                     # delete, write_down, retention
//! ```
//!
//! `ringfeedd --new-token NAME` prints a fresh random token and the lines to paste.
//! A request presents `authorization: Bearer <token>`; [`Auth::verify`] hashes it and
//! finds its principal (comparing digests in constant time), and
//! [`Principal::check`] says whether an operation on a dataset is in its scopes. The
//! local Unix socket does not use this: it keeps its owner-only rule.

pub mod gate;
pub mod limits;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `[auth]` table.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Tokens given in the config itself.
    pub tokens: Vec<TokenConfig>,
    /// A TOML file of more `[[tokens]]` (kept apart from the config, e.g. mode 0600).
    pub tokens_file: Option<PathBuf>,
}

/// One `[[auth.tokens]]` entry.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The principal: who the token belongs to, in logs and metrics.
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// Dataset globs the token may read.
    #[serde(default)]
    pub read: Vec<String>,
    /// Dataset globs the token may write (append).
    #[serde(default)]
    pub write: Vec<String>,
    /// Deletes, write-downs and retention changes, on any dataset.
    #[serde(default)]
    pub admin: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenConfig>,
}

/// Why the auth settings were refused (at start: the daemon does not run with them).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthConfigError {
    /// The tokens file could not be read or parsed.
    #[error("tokens file {path}: {reason}")]
    TokensFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A hash that is not 64 hex digits.
    #[error("token {name:?}: sha256 must be 64 hex digits (the SHA-256 of the token, as `ringfeedd --new-token {name}` prints), not {got:?}")]
    Hash {
        /// The principal.
        name: String,
        /// What was given.
        got: String,
    },
    /// A dataset glob that does not parse.
    #[error("token {name:?}: dataset pattern {pattern:?}: {reason}")]
    Glob {
        /// The principal.
        name: String,
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// Two entries with one principal name, or one hash.
    #[error("token {0:?} is listed twice (by name or by hash): give each principal one entry")]
    Duplicate(String),
}

/// What a principal asks to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation<'a> {
    /// Query, subscribe, list: a dataset's data.
    Read(&'a str),
    /// Append to a dataset.
    Write(&'a str),
    /// Delete rows, write down, change retention, drop a dataset.
    Admin,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `authorization: Bearer` header (UNAUTHENTICATED).
    #[error("no token: send `authorization: Bearer <token>` (or authenticate with Basic user/token first)")]
    Missing,
    /// A token that matches no configured hash (UNAUTHENTICATED).
    #[error("unknown token: it matches no [[auth.tokens]] entry")]
    Unknown,
    /// A known principal outside its scopes (PERMISSION_DENIED).
    #[error(
        "{principal:?} may not {what}: add it to the token's `{scope}` list in [[auth.tokens]]"
    )]
    Denied {
        /// The principal.
        principal: String,
        /// What it asked, e.g. `write dataset "fx"`.
        what: String,
        /// The scope list that would allow it (`read`, `write`, `admin`).
        scope: &'static str,
    },
}

/// A verified caller and its scopes.
#[derive(Debug)]
pub struct Principal {
    /// The name from the config.
    pub name: String,
    read: globset::GlobSet,
    write: globset::GlobSet,
    admin: bool,
}

impl Principal {
    /// `Ok` when `op` is inside this principal's scopes.
    pub fn check(&self, op: Operation<'_>) -> Result<(), AuthError> {
        let (ok, what, scope) = match op {
            Operation::Read(d) => (self.read.is_match(d), format!("read dataset {d:?}"), "read"),
            Operation::Write(d) => (
                self.write.is_match(d),
                format!("write dataset {d:?}"),
                "write",
            ),
            Operation::Admin => (
                self.admin,
                "delete, write down or change retention".to_string(),
                "admin",
            ),
        };
        if ok {
            Ok(())
        } else {
            Err(AuthError::Denied {
                principal: self.name.clone(),
                what,
                scope,
            })
        }
    }
}

/// The configured tokens, by hash.
#[derive(Debug, Default)]
pub struct Auth {
    entries: Vec<([u8; 32], Arc<Principal>)>,
}

impl Auth {
    /// From the `[auth]` table (and its tokens file, read relative to `base`).
    pub fn from_config(cfg: &AuthConfig, base: &Path) -> Result<Self, AuthConfigError> {
        let mut all = cfg.tokens.clone();
        if let Some(f) = &cfg.tokens_file {
            let path = base.join(f);
            let text = std::fs::read_to_string(&path).map_err(|e| AuthConfigError::TokensFile {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            let file: TokensFile =
                toml::from_str(&text).map_err(|e| AuthConfigError::TokensFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            all.extend(file.tokens);
        }
        let mut entries: Vec<([u8; 32], Arc<Principal>)> = Vec::with_capacity(all.len());
        for t in all {
            let hash = parse_hash(&t.sha256).ok_or_else(|| AuthConfigError::Hash {
                name: t.name.clone(),
                got: t.sha256.clone(),
            })?;
            if entries.iter().any(|(h, p)| *h == hash || p.name == t.name) {
                return Err(AuthConfigError::Duplicate(t.name));
            }
            let globs = |pats: &[String]| -> Result<globset::GlobSet, AuthConfigError> {
                let mut b = globset::GlobSetBuilder::new();
                for p in pats {
                    let g = globset::Glob::new(p).map_err(|e| AuthConfigError::Glob {
                        name: t.name.clone(),
                        pattern: p.clone(),
                        reason: e.kind().to_string(),
                    })?;
                    b.add(g);
                }
                b.build().map_err(|e| AuthConfigError::Glob {
                    name: t.name.clone(),
                    pattern: pats.join(","),
                    reason: e.to_string(),
                })
            };
            let principal = Principal {
                name: t.name.clone(),
                read: globs(&t.read)?,
                write: globs(&t.write)?,
                admin: t.admin,
            };
            entries.push((hash, Arc::new(principal)));
        }
        Ok(Auth { entries })
    }

    /// Whether any token is configured (a network face without any refuses to listen
    /// beyond loopback unless told otherwise).
    pub fn is_enabled(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The principal of a presented token. Every configured digest is compared, in
    /// constant time, so the answer's timing says nothing about which one matched.
    pub fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (h, p) in &self.entries {
            if constant_time_eq(h, &digest) {
                found = Some(p);
            }
        }
        found.cloned().ok_or(AuthError::Unknown)
    }

    /// The principal of an `authorization` header value (`Bearer <token>`).
    pub fn verify_header(&self, header: Option<&str>) -> Result<Arc<Principal>, AuthError> {
        let token = credentials(header, "bearer").ok_or(AuthError::Missing)?;
        self.verify(token)
    }
}

/// The credentials of an `authorization` header value of `scheme` (case-insensitive),
/// e.g. the token of `Bearer <token>`.
pub fn credentials<'h>(header: Option<&'h str>, scheme: &str) -> Option<&'h str> {
    let (s, rest) = header?.trim().split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// The hex SHA-256 of a token: what the config stores.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new random token (32 bytes from the OS, hex): print it once, store its hash.
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn parse_hash(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Equal without an early exit (timing does not depend on where they differ).
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> AuthConfig {
        #[derive(Deserialize)]
        struct W {
            auth: AuthConfig,
        }
        toml::from_str::<W>(text).unwrap().auth
    }

    #[test]
    fn tokens_verify_by_hash_and_scopes_follow_globs() {
        let (a, b) = ("token-a", "token-b");
        let c = cfg(&format!(
            r#"
            [[auth.tokens]]
            name = "research"
            sha256 = "{}"
            read = ["*"]
            write = ["binance-*"]
            [[auth.tokens]]
            name = "ops"
            sha256 = "{}"
            admin = true
            "#,
            hash_token(a),
            hash_token(b).to_uppercase(),
        ));
        let auth = Auth::from_config(&c, Path::new(".")).unwrap();
        assert!(auth.is_enabled());
        let r = auth.verify_header(Some(&format!("Bearer {a}"))).unwrap();
        assert_eq!(r.name, "research");
        assert!(r.check(Operation::Read("fx")).is_ok());
        assert!(r.check(Operation::Write("binance-spot")).is_ok());
        let e = r.check(Operation::Write("fx")).unwrap_err();
        assert!(e.to_string().contains("`write` list"), "{e}");
        assert!(r.check(Operation::Admin).is_err());
        let o = auth.verify(b).unwrap();
        assert_eq!(o.name, "ops");
        assert!(o.check(Operation::Admin).is_ok());
        assert!(
            o.check(Operation::Read("fx")).is_err(),
            "no read scope given"
        );
        assert_eq!(auth.verify("nope").unwrap_err(), AuthError::Unknown);
        assert_eq!(auth.verify_header(None).unwrap_err(), AuthError::Missing);
        assert_eq!(
            auth.verify_header(Some(&format!("Basic {a}"))).unwrap_err(),
            AuthError::Missing
        );
    }

    #[test]
    fn bad_entries_are_refused_with_the_fix() {
        let bad = cfg("[[auth.tokens]]\nname = \"x\"\nsha256 = \"abc\"\n");
        let e = Auth::from_config(&bad, Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("--new-token x"), "{e}");
        let h = hash_token("t");
        let dup = cfg(&format!(
            "[[auth.tokens]]\nname = \"x\"\nsha256 = \"{h}\"\n[[auth.tokens]]\nname = \"y\"\nsha256 = \"{h}\"\n"
        ));
        assert!(matches!(
            Auth::from_config(&dup, Path::new(".")),
            Err(AuthConfigError::Duplicate(_))
        ));
        let glob = cfg(&format!(
            "[[auth.tokens]]\nname = \"x\"\nsha256 = \"{h}\"\nread = [\"[\"]\n"
        ));
        assert!(matches!(
            Auth::from_config(&glob, Path::new(".")),
            Err(AuthConfigError::Glob { .. })
        ));
    }

    #[test]
    fn a_tokens_file_adds_entries_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokens.toml"),
            format!(
                "[[tokens]]\nname = \"bot\"\nsha256 = \"{}\"\nwrite = [\"fx\"]\n",
                hash_token("secret")
            ),
        )
        .unwrap();
        let c = cfg("[auth]\ntokens_file = \"tokens.toml\"\n");
        let auth = Auth::from_config(&c, dir.path()).unwrap();
        assert_eq!(auth.verify("secret").unwrap().name, "bot");
        let gone = Auth::from_config(&c, Path::new("/nonexistent")).unwrap_err();
        assert!(gone.to_string().contains("tokens file"), "{gone}");
        assert!(!Auth::default().is_enabled());
    }

    #[test]
    fn new_tokens_are_random_hex_and_hash_to_64_digits() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash_token(&a).len(), 64);
        assert!(parse_hash(&hash_token(&a)).is_some());
    }
}
