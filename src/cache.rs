//! The on-disk cache: versioned buckets of content-addressed files.
//!
//! Invariant: a file appears under its final name only after its checksum was verified; it is
//! written to a temporary file in the same directory and renamed, so a crash or a concurrent
//! build never leaves a corrupted entry.

use crate::checksum::{Algo, Checksum};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug)]
pub enum Bucket {
    /// RPM files, by their checksum from primary.xml.
    Rpms,
    /// Metadata files listed in repomd.xml, by their checksum.
    Repodata,
    /// repomd.xml of each repository URL, for `--offline`.
    Repomd,
    /// Packages parsed from a primary file, by that file's checksum (`repo::store`).
    Pool,
}

impl Bucket {
    fn dir(self) -> &'static str {
        match self {
            Bucket::Rpms => "rpms-v1",
            Bucket::Repodata => "repodata-v1",
            Bucket::Repomd => "repomd-v1",
            Bucket::Pool => "pool-v1",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    pub fn new(root: PathBuf) -> Cache {
        Cache { root }
    }

    /// `$XDG_CACHE_HOME/elsx`, else `~/.cache/elsx`.
    pub fn default_dir() -> PathBuf {
        if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|x| !x.is_empty()) {
            return PathBuf::from(x).join("elsx");
        }
        if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            return PathBuf::from(h).join(".cache/elsx");
        }
        std::env::temp_dir().join("elsx-cache")
    }

    /// Where a verified file with this checksum lives.
    pub fn path(&self, bucket: Bucket, sum: &Checksum) -> PathBuf {
        let name = match sum.algo {
            Algo::Sha256 => sum.hex.clone(),
            a => format!("{}-{}", a.name(), sum.hex),
        };
        self.root.join(bucket.dir()).join(name)
    }

    /// Where a file keyed by a name (a URL) lives.
    pub fn keyed(&self, bucket: Bucket, key: &str) -> PathBuf {
        self.root
            .join(bucket.dir())
            .join(Algo::Sha256.digest_hex(key.as_bytes()))
    }

    /// A cached file whose content still matches its checksum. A damaged entry (a disk error,
    /// a hand edit) is removed so that the caller downloads the file again.
    pub fn lookup(&self, bucket: Bucket, sum: &Checksum) -> Option<PathBuf> {
        let p = self.path(bucket, sum);
        let mut f = std::fs::File::open(&p).ok()?;
        let mut h = sum.algo.hasher();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match std::io::Read::read(&mut f, &mut buf) {
                Ok(0) => break,
                Ok(n) => h.update(&buf[..n]),
                Err(_) => return None,
            }
        }
        if h.finish_hex() == sum.hex {
            return Some(p);
        }
        tracing::warn!("{}: damaged cache entry, downloading it again", p.display());
        let _ = fs_err::remove_file(&p);
        None
    }

    /// A temporary file beside the final place of a bucket's entries.
    pub fn temp(&self, bucket: Bucket) -> std::io::Result<tempfile::NamedTempFile> {
        let dir = self.root.join(bucket.dir());
        fs_err::create_dir_all(&dir)?;
        tempfile::Builder::new().prefix(".part-").tempfile_in(&dir)
    }

    /// Moves a verified temporary file to its final name.
    pub fn publish(&self, tmp: tempfile::NamedTempFile, dest: &Path) -> std::io::Result<()> {
        tmp.as_file().sync_all()?;
        tmp.persist(dest).map_err(|e| e.error)?;
        Ok(())
    }

    /// Removes every bucket elsx knows; returns the bytes freed. Other files are left alone, so a
    /// mistyped `--cache-dir` cannot empty an unrelated directory.
    pub fn clean(&self) -> std::io::Result<u64> {
        let mut freed = 0;
        for b in [Bucket::Rpms, Bucket::Repodata, Bucket::Repomd, Bucket::Pool] {
            let dir = self.root.join(b.dir());
            if !dir.is_dir() {
                continue;
            }
            for e in walkdir::WalkDir::new(&dir).into_iter().flatten() {
                if e.file_type().is_file() {
                    freed += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
            }
            fs_err::remove_dir_all(&dir)?;
        }
        Ok(freed)
    }

    /// Stores bytes under a key (not content-addressed: the newest wins).
    pub fn store_keyed(&self, bucket: Bucket, key: &str, data: &[u8]) -> std::io::Result<()> {
        let mut tmp = self.temp(bucket)?;
        tmp.write_all(data)?;
        self.publish(tmp, &self.keyed(bucket, key))
    }
}
