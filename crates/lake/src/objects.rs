//! The object-store calls a pass makes, with keys relative to the lake prefix and
//! errors that name the operation.

use crate::config::Location;
use crate::error::SyncError;
use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Files larger than this go up as multipart uploads, in parts of this size.
const PART: usize = 16 << 20;

impl Location {
    pub(crate) fn key(&self, rel: &str) -> ObjectPath {
        let mut p = self.prefix.clone();
        for seg in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(seg);
        }
        p
    }

    /// The key relative to the prefix.
    pub(crate) fn rel(&self, key: &ObjectPath) -> Option<String> {
        let parts: Vec<String> = key
            .prefix_match(&self.prefix)?
            .map(|p| p.as_ref().to_string())
            .collect();
        Some(parts.join("/"))
    }

    pub(crate) fn remote(&self, op: impl Into<String>, e: object_store::Error) -> SyncError {
        SyncError::Remote {
            url: self.url.clone(),
            op: op.into(),
            reason: e.to_string(),
        }
    }

    /// The object's bytes, or `None` when it does not exist.
    pub(crate) async fn get(&self, rel: &str) -> Result<Option<Bytes>, SyncError> {
        let op = || format!("get {rel}");
        match self.store.get(&self.key(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(|e| self.remote(op(), e))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.remote(op(), e)),
        }
    }

    /// The object's size, or `None` when it does not exist.
    pub(crate) async fn size(&self, rel: &str) -> Result<Option<u64>, SyncError> {
        match self.store.head(&self.key(rel)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.remote(format!("head {rel}"), e)),
        }
    }

    pub(crate) async fn put(&self, rel: &str, body: Vec<u8>) -> Result<(), SyncError> {
        self.store
            .put(&self.key(rel), PutPayload::from(body))
            .await
            .map(drop)
            .map_err(|e| self.remote(format!("put {rel}"), e))
    }

    pub(crate) async fn delete(&self, rel: &str) -> Result<(), SyncError> {
        match self.store.delete(&self.key(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.remote(format!("delete {rel}"), e)),
        }
    }

    /// Every key under `rel_prefix` (relative keys), with sizes.
    pub(crate) async fn list(&self, rel_prefix: &str) -> Result<Vec<(String, u64)>, SyncError> {
        let p = self.key(rel_prefix);
        let mut s = self.store.list(Some(&p));
        let mut out = Vec::new();
        while let Some(m) = s.next().await {
            let m = m.map_err(|e| self.remote(format!("list {rel_prefix}"), e))?;
            if let Some(r) = self.rel(&m.location) {
                out.push((r, m.size));
            }
        }
        Ok(out)
    }

    /// Upload a local file under `rel`, streaming it (multipart above [`PART`]). The
    /// object appears whole or not at all (a PUT, or a multipart upload completed at the
    /// end; an aborted one is discarded by the server).
    pub(crate) async fn upload(&self, local: &Path, rel: &str, size: u64) -> Result<(), SyncError> {
        let local_err = |source| SyncError::Local {
            path: local.to_path_buf(),
            source,
        };
        if size as usize <= PART {
            let body = std::fs::read(local).map_err(local_err)?;
            return self.put(rel, body).await;
        }
        let op = || format!("multipart put {rel}");
        let up = self
            .store
            .put_multipart(&self.key(rel))
            .await
            .map_err(|e| self.remote(op(), e))?;
        let mut w = WriteMultipart::new_with_chunk_size(up, PART);
        let mut f = std::fs::File::open(local).map_err(local_err)?;
        let mut buf = vec![0u8; PART];
        loop {
            let n = read_full(&mut f, &mut buf).map_err(local_err)?;
            if n == 0 {
                break;
            }
            w.wait_for_capacity(4)
                .await
                .map_err(|e| self.remote(op(), e))?;
            w.write(&buf[..n]);
        }
        w.finish().await.map(drop).map_err(|e| self.remote(op(), e))
    }
}

fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// SHA-256 (hex) and size of a local file, read in 1 MiB pieces.
pub(crate) fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        size += n as u64;
    }
    Ok((crate::manifest::hex(&h.finalize()), size))
}

/// SHA-256 (hex) of an object's bytes, streamed.
pub(crate) async fn hash_object(loc: &Location, rel: &str) -> Result<Option<String>, SyncError> {
    let op = || format!("get {rel}");
    let r = match loc.store.get(&loc.key(rel)).await {
        Ok(r) => r,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(loc.remote(op(), e)),
    };
    let mut s = r.into_stream();
    let mut h = Sha256::new();
    while let Some(chunk) = s.next().await {
        h.update(chunk.map_err(|e| loc.remote(op(), e))?);
    }
    Ok(Some(crate::manifest::hex(&h.finalize())))
}
