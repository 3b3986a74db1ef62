//! The on-disk cache: versioned buckets of content-addressed files.
//!
//! Invariant: a file appears under its final name only after its checksum was verified; it is
//! written to a temporary file in the same file system and renamed, so a crash or a concurrent
//! build never leaves a corrupted entry.
//!
//! Sharing: every build holds a shared lock on `<cache>/.lock` for as long as it uses the cache,
//! so any number of builds run at once (entries are content-addressed and appear by rename, so
//! two builds writing the same entry write the same bytes); `elsx cache clean` takes it exclusively
//! and so waits for running builds. A download in progress lives in `partial-v1/` under an
//! exclusive lock of its own: a second build that needs the same file waits for the first instead
//! of downloading it again, and a download cut short (a crash, Ctrl-C) resumes where it stopped.

use crate::checksum::{Algo, Checksum, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug)]
pub enum Bucket {
    /// RPM files, by their checksum from primary.xml.
    Rpms,
    /// Metadata files listed in repomd.xml, by their checksum.
    Repodata,
    /// repomd.xml (and other files not known by checksum) of each URL, with the HTTP validators
    /// (ETag, Last-Modified) that revalidate it; for `--offline` too.
    Repomd,
    /// Packages parsed from a primary file, by that file's checksum (`repo::store`).
    Pool,
    /// Compressed image blocks, by a digest of their codec and uncompressed bytes
    /// (`write::blocks`).
    Blocks,
}

/// HTTP validators of a cached reply, sent back as `If-None-Match` / `If-Modified-Since`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The first line of a keyed entry (the format's version).
const KEYED_MAGIC: &str = "elsx-keyed-v2";

/// Serializes a keyed entry: a header with the validators, a blank line, the body. One file, so
/// that body and validators are replaced together.
fn encode_keyed(v: &Validators, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{KEYED_MAGIC}\n").into_bytes();
    for (k, val) in [("etag", &v.etag), ("last-modified", &v.last_modified)] {
        if let Some(x) = val {
            // A header value cannot hold a newline; one that did would break the format.
            out.extend(format!("{k}: {}\n", x.replace(['\r', '\n'], " ")).bytes());
        }
    }
    out.push(b'\n');
    out.extend_from_slice(body);
    out
}

fn decode_keyed(data: &[u8]) -> Option<(Validators, Vec<u8>)> {
    let end = data.windows(2).position(|w| w == b"\n\n")?;
    let head = std::str::from_utf8(&data[..end]).ok()?;
    let mut lines = head.lines();
    if lines.next()? != KEYED_MAGIC {
        return None;
    }
    let mut v = Validators::default();
    for l in lines {
        match l.split_once(": ") {
            Some(("etag", x)) => v.etag = Some(x.to_owned()),
            Some(("last-modified", x)) => v.last_modified = Some(x.to_owned()),
            _ => {}
        }
    }
    Some((v, data[end + 2..].to_vec()))
}

impl Bucket {
    pub(crate) fn dir(self) -> &'static str {
        match self {
            Bucket::Rpms => "rpms-v1",
            Bucket::Repodata => "repodata-v1",
            Bucket::Repomd => "repomd-v2",
            Bucket::Pool => "pool-v1",
            Bucket::Blocks => "blocks-v1",
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
        let (h, _) = hash_reader(&mut f, sum.algo).ok()?;
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

    /// Removes every bucket elsx knows (and those of older formats); returns the bytes freed.
    /// Other files are left alone, so a mistyped `--cache-dir` cannot empty an unrelated
    /// directory. Waits for running builds (it takes the cache's lock exclusively).
    pub fn clean(&self) -> std::io::Result<u64> {
        let _lock = if self.root.is_dir() {
            Some(self.lock(true)?)
        } else {
            None
        };
        let mut freed = 0;
        let dirs = [
            Bucket::Rpms,
            Bucket::Repodata,
            Bucket::Repomd,
            Bucket::Pool,
            Bucket::Blocks,
        ]
        .map(Bucket::dir)
        .into_iter()
        .chain([PARTIAL_DIR, "repomd-v1"]);
        for d in dirs {
            let dir = self.root.join(d);
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

    /// Stores an HTTP reply's body under its URL with its validators, in one file.
    pub fn store_http(
        &self,
        bucket: Bucket,
        url: &str,
        validators: &Validators,
        data: &[u8],
    ) -> std::io::Result<()> {
        self.store_keyed(bucket, url, &encode_keyed(validators, data))
    }

    /// What [`Cache::store_http`] stored; `None` if absent or unreadable.
    pub fn load_http(&self, bucket: Bucket, url: &str) -> Option<(Validators, Vec<u8>)> {
        decode_keyed(&std::fs::read(self.keyed(bucket, url)).ok()?)
    }

    /// Locks the cache: shared for a build, exclusive for `cache clean`. The lock lasts as long
    /// as the returned file is open.
    pub fn lock(&self, exclusive: bool) -> std::io::Result<std::fs::File> {
        fs_err::create_dir_all(&self.root)?;
        let path = self.root.join(".lock");
        let f = fs_err::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?
            .into_file();
        let try_it = |f: &std::fs::File| {
            if exclusive {
                f.try_lock()
            } else {
                f.try_lock_shared()
            }
        };
        if let Err(std::fs::TryLockError::WouldBlock) = try_it(&f) {
            tracing::info!(
                "waiting for another elsx to release {}",
                self.root.display()
            );
            if exclusive { f.lock() } else { f.lock_shared() }
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        }
        Ok(f)
    }

    /// The download in progress of the entry `sum` of `bucket`, locked for this process; waits
    /// while another process holds it. Returns `None` when the entry appeared in the meantime
    /// (the other process finished it).
    pub fn partial(&self, bucket: Bucket, sum: &Checksum) -> std::io::Result<Option<Partial>> {
        let dir = self.root.join(PARTIAL_DIR);
        fs_err::create_dir_all(&dir)?;
        let final_name = self.path(bucket, sum);
        let name = format!(
            "{}-{}",
            bucket.dir(),
            final_name.file_name().unwrap_or_default().to_string_lossy()
        );
        let path = dir.join(name);
        loop {
            let file = fs_err::OpenOptions::new()
                .create(true)
                .truncate(false)
                .read(true)
                .write(true)
                .open(&path)?
                .into_file();
            if let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
                tracing::info!(
                    "waiting for another elsx downloading {}",
                    final_name.display()
                );
                file.lock()?;
            }
            // The holder before us may have renamed or removed this file: only the inode that
            // still has the name is ours to continue.
            use std::os::unix::fs::MetadataExt;
            let (a, b) = (file.metadata()?, std::fs::metadata(&path));
            let ours = b.is_ok_and(|b| b.ino() == a.ino() && b.dev() == a.dev());
            if self.lookup(bucket, sum).is_some() {
                if ours {
                    // Created after the other process had published: not needed.
                    let _ = fs_err::remove_file(&path);
                }
                return Ok(None);
            }
            if ours {
                return Ok(Some(Partial {
                    file,
                    path,
                    dest: final_name,
                }));
            }
        }
    }
}

/// The digest of everything a reader gives, and its length.
pub fn hash_reader(r: &mut impl std::io::Read, algo: Algo) -> std::io::Result<(Hasher, u64)> {
    let mut h = algo.hasher();
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            return Ok((h, len));
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
}

/// Where downloads in progress live (outside the buckets, so nothing half-written is ever seen
/// under a bucket's name).
const PARTIAL_DIR: &str = "partial-v1";

/// A download in progress, exclusively locked (see [`Cache::partial`]).
pub struct Partial {
    pub file: std::fs::File,
    pub path: PathBuf,
    dest: PathBuf,
}

impl Partial {
    /// Moves the verified download to its entry's name.
    pub fn publish(self) -> std::io::Result<PathBuf> {
        self.file.sync_all()?;
        if let Some(d) = self.dest.parent() {
            fs_err::create_dir_all(d)?;
        }
        fs_err::rename(&self.path, &self.dest)?;
        Ok(self.dest)
    }

    /// Throws the download away (its bytes were wrong).
    pub fn discard(self) {
        let _ = fs_err::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_entries_keep_body_and_validators_together() {
        let v = Validators {
            etag: Some("\"abc\"".into()),
            last_modified: Some("Tue, 14 Nov 2023 22:13:20 GMT".into()),
        };
        let body = b"<repomd>\n\n</repomd>\n";
        assert_eq!(
            decode_keyed(&encode_keyed(&v, body)),
            Some((v, body.to_vec()))
        );
        let none = Validators::default();
        assert_eq!(
            decode_keyed(&encode_keyed(&none, b"")),
            Some((none, Vec::new()))
        );
        // A v1 entry (the bare body) is not mistaken for one.
        assert_eq!(decode_keyed(b"<?xml version=\"1.0\"?>\n\n<repomd/>"), None);
    }

    #[test]
    fn shared_locks_coexist_and_keep_an_exclusive_one_out() {
        let dir = tempfile::tempdir().unwrap();
        let c = Cache::new(dir.path().to_path_buf());
        let a = c.lock(false).unwrap();
        let _b = c.lock(false).unwrap();
        let f = std::fs::File::open(dir.path().join(".lock")).unwrap();
        assert!(matches!(
            f.try_lock(),
            Err(std::fs::TryLockError::WouldBlock)
        ));
        drop(a);
        drop(_b);
        assert!(f.try_lock().is_ok());
    }
}
