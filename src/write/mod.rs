//! File system writers: a [`Tree`](crate::tree::Tree) in, image bytes out.
//!
//! Invariant: writers are pure functions of the tree and their options; the same input gives
//! the same bytes whatever the thread count.

pub mod blocks;
pub mod erofs;
pub mod inodes;
pub mod ordered;
pub mod squashfs;

use std::path::{Path, PathBuf};

/// Writes an image through a temporary file in the destination directory and renames it into
/// place, so no half-written image ever stands under the final name.
pub fn atomic_write(
    dest: &Path,
    write: impl FnOnce(&mut std::fs::File) -> Result<(), WriteError>,
) -> Result<u64, WriteError> {
    let mut staged = Staged::new(dest)?;
    write(staged.file())?;
    staged.finish()
}

/// An image being written under a temporary name beside its destination (so the writers put
/// it in its final place directly); [`Staged::finish`] renames it into place, and dropping it
/// unfinished removes it.
pub struct Staged {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
}

impl Staged {
    pub fn new(dest: &Path) -> Result<Staged, WriteError> {
        let dir = dest
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let io = |e| io_error(dest, e);
        fs_err::create_dir_all(dir).map_err(io)?;
        let tmp = tempfile::Builder::new()
            .prefix(".elsx-")
            .suffix(".part")
            .tempfile_in(dir)
            .map_err(io)?;
        Ok(Staged {
            tmp,
            dest: dest.to_owned(),
        })
    }

    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_file_mut()
    }

    /// Syncs the image and renames it to its destination; returns its size.
    pub fn finish(self) -> Result<u64, WriteError> {
        let dest = self.dest;
        let io = |e| io_error(&dest, e);
        // Images are read by systemd as root and by users inspecting them: not the temp file's
        // 0600.
        use std::os::unix::fs::PermissionsExt;
        let f = self.tmp.as_file();
        f.set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        let size = f.metadata().map_err(io)?.len();
        self.tmp.persist(&dest).map_err(|e| io(e.error))?;
        Ok(size)
    }
}

/// Runs `write` on a 1 MiB buffer over `out` and flushes it, as each writer's `write` does;
/// `what` names the image in a flush error.
fn buffered<T>(
    out: &mut std::fs::File,
    what: &str,
    write: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
    let done = write(&mut w)?;
    std::io::Write::flush(&mut w).map_err(|e| io_error(Path::new(what), e))?;
    Ok(done)
}

fn io_error(path: &Path, source: std::io::Error) -> WriteError {
    WriteError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("squashfs: {0}")]
    Squashfs(String),
    #[error(transparent)]
    Package(#[from] crate::package::PackageError),
    #[error("erofs: {0}")]
    Erofs(String),
}

/// A compression choice as users write it (`--compress`, the recipe's `compress`):
/// `ALG[:LEVEL]`, checked against the file system it is meant for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compress {
    pub alg: String,
    pub level: Option<u32>,
}

impl std::str::FromStr for Compress {
    type Err = String;
    fn from_str(s: &str) -> Result<Compress, String> {
        let (alg, level) = match s.split_once(':') {
            Some((a, l)) => (
                a,
                Some(
                    l.parse()
                        .map_err(|_| format!("{s:?}: the level {l:?} is not a number"))?,
                ),
            ),
            None => (s, None),
        };
        Ok(Compress {
            alg: alg.to_ascii_lowercase(),
            level,
        })
    }
}

impl std::fmt::Display for Compress {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self.level {
            Some(l) => write!(f, "{}:{l}", self.alg),
            None => f.write_str(&self.alg),
        }
    }
}

impl Compress {
    /// squashfs: zstd (level 1-22, default 15), xz (preset 0-9, default 6), gzip (1-9, default
    /// 9), lz4, lz4hc (1-12, default 9).
    pub fn squashfs(&self) -> Result<squashfs::Compression, String> {
        use squashfs::Compression as C;
        let c = match (self.alg.as_str(), self.level) {
            ("zstd", l) => C::Zstd(l.unwrap_or(15)),
            ("xz", l) => C::Xz(l.unwrap_or(6)),
            ("gzip" | "zlib", l) => C::Gzip(l.unwrap_or(9)),
            ("lz4", None) => C::Lz4,
            ("lz4hc", l) => C::Lz4hc(l.unwrap_or(9)),
            ("lz4", Some(_)) => return Err("lz4 takes no level (lz4hc does)".into()),
            (other, _) => {
                return Err(format!(
                    "squashfs has no compressor {other:?}: use zstd, xz, gzip, lz4 or lz4hc"
                ));
            }
        };
        c.check()?;
        Ok(c)
    }

    /// erofs: none, lz4, lz4hc (1-12, default 9), lzma (0-9, default 6).
    pub fn erofs(&self) -> Result<erofs::Compression, String> {
        use erofs::Compression as C;
        Ok(match (self.alg.as_str(), self.level) {
            ("none", None) => C::None,
            ("lz4", None) => C::Lz4,
            ("lz4hc", l) if (1..=12).contains(&l.unwrap_or(9)) => C::Lz4hc(l.unwrap_or(9)),
            ("lzma", l) if l.unwrap_or(6) <= 9 => C::Lzma(l.unwrap_or(6)),
            ("none" | "lz4", Some(_)) => return Err(format!("{} takes no level", self.alg)),
            ("lz4hc" | "lzma", Some(l)) => {
                return Err(format!("{} level {l} is out of range", self.alg));
            }
            (other, _) => {
                return Err(format!(
                    "erofs has no compressor {other:?}: use none, lz4, lz4hc or lzma"
                ));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Compress;

    #[test]
    fn compress_specs_map_to_each_file_system() {
        let c = |s: &str| s.parse::<Compress>().unwrap();
        use super::{erofs::Compression as E, squashfs::Compression as S};
        assert_eq!(c("zstd:19").squashfs(), Ok(S::Zstd(19)));
        assert_eq!(c("xz").squashfs(), Ok(S::Xz(6)));
        assert_eq!(c("lz4").squashfs(), Ok(S::Lz4));
        assert_eq!(c("lz4hc:12").erofs(), Ok(E::Lz4hc(12)));
        assert_eq!(c("none").erofs(), Ok(E::None));
        assert!(c("zstd:30").squashfs().is_err());
        assert!(
            c("zstd")
                .erofs()
                .unwrap_err()
                .contains("erofs has no compressor")
        );
        assert!(c("lzma:10").erofs().is_err());
        assert!("zstd:x".parse::<Compress>().is_err());
    }
}
