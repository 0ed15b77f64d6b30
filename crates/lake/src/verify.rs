//! `lake verify`: the index and manifests against the objects.

use crate::error::{CorruptError, SyncError};
use crate::manifest::PartitionManifest;
use crate::objects::hash_object;
use crate::Lake;
use std::fmt;

/// Why verify could not run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The lake has no index: nothing was ever synced here (or it was deleted).
    #[error("the lake {0} has no index (_lake/index.json): run `ringfeed lake sync` first, or `ringfeed lake sync --rebuild-index` if manifests exist")]
    NoIndex(String),
    /// The index is corrupt, or the lake could not be read.
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<CorruptError> for VerifyError {
    fn from(e: CorruptError) -> Self {
        VerifyError::Sync(e.into())
    }
}

/// One thing wrong in the lake.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// An object the lake's records name is missing.
    Missing {
        /// Its key.
        key: String,
    },
    /// An object has another size than recorded.
    Size {
        /// Its key.
        key: String,
        /// Recorded.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// An object's SHA-256 differs from the recorded one.
    Checksum {
        /// Its key.
        key: String,
        /// Recorded.
        expected: String,
        /// Found.
        found: String,
    },
    /// A manifest fails to parse or to match its checksum, or differs from what the index
    /// records for it: refused.
    CorruptManifest {
        /// Its key.
        key: String,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Missing { key } => write!(f, "missing: {key}"),
            Problem::Size {
                key,
                expected,
                found,
            } => write!(
                f,
                "size: {key}: {found} bytes, the manifest says {expected}"
            ),
            Problem::Checksum {
                key,
                expected,
                found,
            } => write!(
                f,
                "checksum: {key}: sha256 {found}, the manifest says {expected}"
            ),
            Problem::CorruptManifest { key, detail } => {
                write!(f, "corrupt manifest (refused): {key}: {detail}")
            }
        }
    }
}

/// What verify found.
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// Partitions in the index.
    pub partitions: usize,
    /// Data objects checked.
    pub files: usize,
    /// Their recorded bytes.
    pub bytes: u64,
    /// Rows the manifests record.
    pub rows: u64,
    /// What is wrong.
    pub problems: Vec<Problem>,
    /// Objects under the lake's own keys that no record names (a pass cut short before
    /// its sweep); harmless to readers of the manifests, seen by plain-glob readers; the
    /// next `lake sync` deletes them.
    pub strays: Vec<String>,
}

impl VerifyReport {
    /// No problems (strays are not problems).
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) async fn verify(lake: &Lake, quick: bool) -> Result<VerifyReport, VerifyError> {
    let idx = crate::sync::load_index(lake)
        .await?
        .ok_or_else(|| VerifyError::NoIndex(lake.loc.url.clone()))?;
    let mut rep = VerifyReport {
        partitions: idx.partitions.len(),
        ..Default::default()
    };
    for (key, e) in &idx.partitions {
        let Some(b) = lake.loc.get(&e.manifest).await? else {
            rep.problems.push(Problem::Missing {
                key: e.manifest.clone(),
            });
            continue;
        };
        let corrupt = |detail: String| Problem::CorruptManifest {
            key: e.manifest.clone(),
            detail,
        };
        let sha = crate::manifest::sha256_hex(&b);
        if sha != e.manifest_sha256 {
            rep.problems.push(corrupt(format!(
                "sha256 {sha}, the index records {}",
                e.manifest_sha256
            )));
            continue;
        }
        let m = match PartitionManifest::from_bytes(&b, &e.manifest) {
            Ok(m) => m,
            Err(err) => {
                rep.problems.push(corrupt(err.detail));
                continue;
            }
        };
        let paths: Vec<&String> = m.files.iter().map(|f| &f.path).collect();
        if m.partition != *key
            || m.generation != e.generation
            || paths != e.files.iter().collect::<Vec<_>>()
        {
            rep.problems.push(corrupt(format!(
                "it describes {} generation {}, the index {key} generation {}",
                m.partition, m.generation, e.generation
            )));
            continue;
        }
        for f in &m.files {
            rep.files += 1;
            rep.bytes += f.bytes;
            rep.rows += f.rows;
            let Some(size) = lake.loc.size(&f.path).await? else {
                rep.problems.push(Problem::Missing {
                    key: f.path.clone(),
                });
                continue;
            };
            if size != f.bytes {
                rep.problems.push(Problem::Size {
                    key: f.path.clone(),
                    expected: f.bytes,
                    found: size,
                });
                continue;
            }
            if !quick {
                match hash_object(&lake.loc, &f.path).await? {
                    None => rep.problems.push(Problem::Missing {
                        key: f.path.clone(),
                    }),
                    Some(h) if h != f.sha256 => rep.problems.push(Problem::Checksum {
                        key: f.path.clone(),
                        expected: f.sha256.clone(),
                        found: h,
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    let known = crate::sync::referenced(&idx);
    rep.strays = crate::sync::own_keys(lake)
        .await?
        .into_iter()
        .filter(|k| !known.contains(k))
        .collect();
    Ok(rep)
}
