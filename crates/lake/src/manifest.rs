//! The lake's records: one immutable manifest per partition generation, and one index.
//!
//! ```text
//! <prefix>/dataset=D/tf=T/month=M/part-<N>-<sha16>.parquet     the data (plain Hive layout)
//! <prefix>/_lake/manifests/dataset=D/tf=T/month=M/g<gen>-<sha16>.json   a partition manifest
//! <prefix>/_lake/index.json                                     the index: the current generation of each partition
//! ```
//!
//! Both carry a SHA-256 of their own canonical JSON (`checksum`), and the index records
//! each manifest's SHA-256 too, so a damaged or hand-edited record is refused. Data
//! objects and manifests are content-addressed (the hash is in the name): a name never
//! holds two different contents. The index is the only object overwritten, and a PUT
//! replaces it whole, so a partition flips from one generation to the next atomically.
//!
//! This file is the source of truth for the layout and the records; the Spark reader
//! (`python/python/ringfeed/spark.py`, which cannot call Rust) mirrors its constants and
//! checks, so change both together.

use crate::error::CorruptError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Format tag of the index.
pub const INDEX_FORMAT: &str = "ringfeed-lake-index/1";
/// Format tag of a partition manifest.
pub const MANIFEST_FORMAT: &str = "ringfeed-lake-partition/1";
/// The index's key under the lake prefix.
pub const INDEX_KEY: &str = "_lake/index.json";
/// Where partition manifests live under the lake prefix.
pub const MANIFEST_DIR: &str = "_lake/manifests";

/// One Parquet object of a partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Key relative to the lake prefix (`dataset=…/tf=…/month=…/part-N-<sha16>.parquet`).
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows.
    pub rows: u64,
    /// Smallest `ts`, ns since the epoch, UTC.
    pub min_ts: i64,
    /// Largest `ts`, ns.
    pub max_ts: i64,
    /// SHA-256 of the object, hex.
    pub sha256: String,
}

/// One generation of one partition (dataset, timeframe, month): immutable once written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionManifest {
    /// [`MANIFEST_FORMAT`].
    pub format: String,
    /// `dataset=D/tf=T/month=M`.
    pub partition: String,
    /// 1 for the first upload, +1 for every rewrite (a late correction).
    pub generation: u64,
    /// The objects, in order.
    pub files: Vec<FileEntry>,
    /// SHA-256 of this manifest with `checksum` empty, hex.
    #[serde(default)]
    pub checksum: String,
}

/// What the local store held when a partition was uploaded: a pass compares it with the
/// catalog to find partitions that changed since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Local part paths relative to the data directory, with size and rows.
    pub parts: Vec<(String, u64, u64)>,
}

/// The index's entry for one partition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The current generation.
    pub generation: u64,
    /// Its manifest's key, relative to the lake prefix.
    pub manifest: String,
    /// SHA-256 of the manifest object's bytes.
    pub manifest_sha256: String,
    /// The manifest's data objects (so a pass knows what is referenced without reading
    /// every manifest).
    pub files: Vec<String>,
    /// Rows across the files.
    pub rows: u64,
    /// Bytes across the files.
    pub bytes: u64,
    /// Smallest and largest `ts`.
    pub min_ts: i64,
    /// Largest `ts`.
    pub max_ts: i64,
    /// The partition's last UTC day (day number): lake retention drops partitions whose
    /// last day is before its cutoff.
    pub last_day: i64,
    /// What the local store held (change detection).
    pub source: Source,
    /// When this generation was committed, ns since the epoch.
    pub committed_ns: i64,
}

/// The lake's index: every partition's current generation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Index {
    /// [`INDEX_FORMAT`].
    pub format: String,
    /// Bumped by every commit.
    pub seq: u64,
    /// Partitions by `dataset=D/tf=T/month=M`.
    pub partitions: BTreeMap<String, IndexEntry>,
    /// SHA-256 of this index with `checksum` empty, hex.
    #[serde(default)]
    pub checksum: String,
}

impl Default for Index {
    fn default() -> Self {
        Self {
            format: INDEX_FORMAT.into(),
            seq: 0,
            partitions: BTreeMap::new(),
            checksum: String::new(),
        }
    }
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(d: &[u8]) -> String {
    use std::fmt::Write;
    d.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A record that carries the hash of its own canonical JSON.
trait Sealed: Serialize + for<'de> Deserialize<'de> {
    fn checksum_mut(&mut self) -> &mut String;
    fn format(&self) -> &str;
    const FORMAT: &'static str;
}

impl Sealed for Index {
    fn checksum_mut(&mut self) -> &mut String {
        &mut self.checksum
    }
    fn format(&self) -> &str {
        &self.format
    }
    const FORMAT: &'static str = INDEX_FORMAT;
}

impl Sealed for PartitionManifest {
    fn checksum_mut(&mut self) -> &mut String {
        &mut self.checksum
    }
    fn format(&self) -> &str {
        &self.format
    }
    const FORMAT: &'static str = MANIFEST_FORMAT;
}

fn seal<T: Sealed + Clone>(v: &T) -> Vec<u8> {
    let mut v = v.clone();
    *v.checksum_mut() = String::new();
    let body = serde_json::to_vec(&v).expect("records serialise");
    *v.checksum_mut() = sha256_hex(&body);
    let mut out = serde_json::to_vec_pretty(&v).expect("records serialise");
    out.push(b'\n');
    out
}

fn unseal<T: Sealed>(bytes: &[u8], object: &str) -> Result<T, CorruptError> {
    let corrupt = |detail: String| CorruptError {
        object: object.to_string(),
        detail,
    };
    let mut v: T = serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not valid: {e}")))?;
    if v.format() != T::FORMAT {
        return Err(corrupt(format!(
            "format {:?}, this ringfeed reads {:?}",
            v.format(),
            T::FORMAT
        )));
    }
    let claimed = std::mem::take(v.checksum_mut());
    let actual = sha256_hex(&serde_json::to_vec(&v).expect("records serialise"));
    if claimed != actual {
        return Err(corrupt(format!(
            "checksum {claimed:?} does not match its contents ({actual})"
        )));
    }
    *v.checksum_mut() = claimed;
    Ok(v)
}

impl Index {
    /// The bytes to store: pretty JSON with its checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        seal(self)
    }

    /// Parse and check an index object.
    pub fn from_bytes(bytes: &[u8]) -> Result<Index, CorruptError> {
        let idx: Index = unseal(bytes, INDEX_KEY)?;
        for (k, e) in &idx.partitions {
            let outside = !e.manifest.starts_with(&format!("{MANIFEST_DIR}/{k}/"))
                || e.files.iter().any(|f| !f.starts_with(&format!("{k}/")))
                || e.manifest.contains("..")
                || e.files.iter().any(|f| f.contains(".."));
            if outside {
                return Err(CorruptError {
                    object: INDEX_KEY.into(),
                    detail: format!("partition {k} names objects outside it"),
                });
            }
        }
        Ok(idx)
    }
}

impl IndexEntry {
    /// The entry for generation `m`, stored under `manifest` (whose bytes hash to
    /// `manifest_sha256`): object keys and totals come from the manifest.
    pub fn for_manifest(
        m: &PartitionManifest,
        manifest: String,
        manifest_sha256: String,
        last_day: i64,
        source: Source,
        committed_ns: i64,
    ) -> IndexEntry {
        IndexEntry {
            generation: m.generation,
            manifest,
            manifest_sha256,
            files: m.files.iter().map(|f| f.path.clone()).collect(),
            rows: m.files.iter().map(|f| f.rows).sum(),
            bytes: m.files.iter().map(|f| f.bytes).sum(),
            min_ts: m.files.iter().map(|f| f.min_ts).min().unwrap_or(0),
            max_ts: m.files.iter().map(|f| f.max_ts).max().unwrap_or(0),
            last_day,
            source,
            committed_ns,
        }
    }
}

impl PartitionManifest {
    /// The bytes to store: pretty JSON with its checksum.
    pub fn to_bytes(&self) -> Vec<u8> {
        seal(self)
    }

    /// Parse and check a manifest object named `object`.
    pub fn from_bytes(bytes: &[u8], object: &str) -> Result<PartitionManifest, CorruptError> {
        let m: PartitionManifest = unseal(bytes, object)?;
        for f in &m.files {
            if !f.path.starts_with(&format!("{}/", m.partition)) || f.path.contains("..") {
                return Err(CorruptError {
                    object: object.into(),
                    detail: format!("file {} is outside partition {}", f.path, m.partition),
                });
            }
        }
        Ok(m)
    }

    /// The manifest's key for `bytes` (its content hash in the name).
    pub fn key(&self, bytes: &[u8]) -> String {
        format!(
            "{MANIFEST_DIR}/{}/g{}-{}.json",
            self.partition,
            self.generation,
            &sha256_hex(bytes)[..16]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> PartitionManifest {
        PartitionManifest {
            format: MANIFEST_FORMAT.into(),
            partition: "dataset=d/tf=1m/month=2021-01".into(),
            generation: 1,
            files: vec![FileEntry {
                path: "dataset=d/tf=1m/month=2021-01/part-0-0123456789abcdef.parquet".into(),
                bytes: 10,
                rows: 2,
                min_ts: 0,
                max_ts: 60,
                sha256: "00".repeat(32),
            }],
            checksum: String::new(),
        }
    }

    #[test]
    fn round_trip_and_tamper() {
        let m = manifest();
        let b = m.to_bytes();
        let back = PartitionManifest::from_bytes(&b, "k").unwrap();
        assert_eq!(back.files, m.files);
        // A changed value with the old checksum is refused.
        let t = String::from_utf8(b.clone())
            .unwrap()
            .replace("\"rows\": 2", "\"rows\": 3");
        let e = PartitionManifest::from_bytes(t.as_bytes(), "k").unwrap_err();
        assert!(e.detail.contains("checksum"), "{e}");
        // Garbage and a truncated object are refused.
        assert!(PartitionManifest::from_bytes(b"garbage", "k").is_err());
        assert!(PartitionManifest::from_bytes(&b[..b.len() / 2], "k").is_err());
        // A file outside its partition is refused even with a valid checksum.
        let mut evil = manifest();
        evil.files[0].path = "dataset=d/tf=1m/month=2021-01/../../x.parquet".into();
        assert!(PartitionManifest::from_bytes(&evil.to_bytes(), "k").is_err());
    }

    #[test]
    fn index_round_trip() {
        let i = Index::default();
        assert_eq!(Index::from_bytes(&i.to_bytes()).unwrap().seq, 0);
        let t = String::from_utf8(i.to_bytes())
            .unwrap()
            .replace("\"seq\": 0", "\"seq\": 7");
        assert!(Index::from_bytes(t.as_bytes()).is_err());
    }
}
