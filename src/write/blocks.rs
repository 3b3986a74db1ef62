//! A content-addressed cache of compressed blocks (`blocks-v1/` in the cache directory), so a
//! rebuild does not compress again what an earlier build compressed: CI rebuilding an extension
//! for every OS snapshot finds the blocks of its unchanged packages here.
//!
//! Key: sha256 of the codec's identity and the block's uncompressed bytes. The identity is the
//! codec's name and parameters (algorithm, level, block size), elsx's version, and the digest of
//! what the codec makes of a fixed probe block, so a compressor that starts giving other bytes
//! (another zstd, other parameters) gets other keys rather than old blocks. Value: the compressed
//! bytes, or "stored uncompressed" when the codec could not make the block smaller.
//!
//! Invariant: a block from the cache is exactly what the codec gives for those bytes, or it is
//! not used. Every entry carries a CRC32 of its key, header and payload, and a compressed payload is
//! decompressed and compared with the block it stands for before use; an entry that fails is
//! removed and the block compressed again. So the image's bytes are the same with the cache, without
//! it, or with a damaged one. Entries are written to a temporary file and renamed, without fsync:
//! one cut short by a crash fails the check and is recompressed.

use crate::cache::{Bucket, Cache};
use sha2::{Digest, Sha256};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A block compressor the cache can stand in for.
pub trait Codec: Sync {
    /// Everything besides the input that decides the output: file system, algorithm, level,
    /// parameters.
    fn id(&self) -> String;
    /// The compressed block; `None` when compressing would not make it smaller (stored as is).
    fn compress(&self, raw: &[u8]) -> Option<Vec<u8>>;
    /// Decompresses a block this codec made of `raw_len` bytes; `None` if it does not decode.
    fn decompress(&self, packed: &[u8], raw_len: usize) -> Option<Vec<u8>>;
}

/// An open block cache: holds the cache's shared lock (see [`Cache::lock`]), so `elsx cache
/// clean` waits for the build using it.
pub struct BlockCache {
    dir: PathBuf,
    _lock: std::fs::File,
}

impl BlockCache {
    pub fn open(cache: &Cache) -> std::io::Result<BlockCache> {
        let lock = cache.lock(false)?;
        Ok(BlockCache {
            dir: cache.root.join(Bucket::Blocks.dir()),
            _lock: lock,
        })
    }
}

/// Blocks compressed, and of those served from the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStats {
    pub blocks: u64,
    pub cached: u64,
}

/// The one way a writer compresses a block: through the cache when there is one.
pub struct Blocks<'a, C: Codec> {
    codec: &'a C,
    cache: Option<(&'a Path, [u8; 32])>,
    blocks: AtomicU64,
    cached: AtomicU64,
    warned: AtomicBool,
}

const MAGIC: &[u8; 8] = b"elsxblk1";
const HEADER: usize = 17;
const KIND_COMPRESSED: u8 = 0;
const KIND_STORED: u8 = 1;

/// What a probe block makes of a codec: text-like runs and noise, `len` bytes.
fn probe(len: usize) -> Vec<u8> {
    let words: [&[u8]; 6] = [
        b"usr/lib ",
        b"squashfs ",
        b"\x7fELF\x02\x01",
        b"0000",
        b"\n",
        b"zstd ",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(4) {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(words[(x >> 32) as usize % words.len()]);
        }
    }
    out.truncate(len);
    out
}

impl<'a, C: Codec> Blocks<'a, C> {
    /// `probe_len`: the size of a typical block (the probe block's size).
    pub fn new(codec: &'a C, cache: Option<&'a BlockCache>, probe_len: usize) -> Blocks<'a, C> {
        let cache = cache.map(|bc| {
            let mut h = Sha256::new();
            h.update(b"elsx-blocks-v1\0");
            h.update(env!("CARGO_PKG_VERSION").as_bytes());
            h.update(b"\0");
            h.update(codec.id().as_bytes());
            h.update(b"\0");
            match codec.compress(&probe(probe_len)) {
                Some(z) => h.update(Sha256::digest(&z)),
                None => h.update(b"stored"),
            }
            (bc.dir.as_path(), h.finalize().into())
        });
        Blocks {
            codec,
            cache,
            blocks: AtomicU64::new(0),
            cached: AtomicU64::new(0),
            warned: AtomicBool::new(false),
        }
    }

    pub fn stats(&self) -> BlockStats {
        BlockStats {
            blocks: self.blocks.load(Ordering::Relaxed),
            cached: self.cached.load(Ordering::Relaxed),
        }
    }

    /// What `codec.compress(raw)` gives, from the cache when it holds a sound entry.
    pub fn compress(&self, raw: &[u8]) -> Option<Vec<u8>> {
        self.blocks.fetch_add(1, Ordering::Relaxed);
        let Some((key, path)) = self.entry(raw) else {
            return self.codec.compress(raw);
        };
        match std::fs::read(&path) {
            Ok(entry) => match self.check(&key, &entry, raw) {
                Ok(z) => {
                    self.cached.fetch_add(1, Ordering::Relaxed);
                    return z;
                }
                Err(why) => {
                    tracing::warn!(
                        "{}: damaged block cache entry ({why}), compressing the block again",
                        path.display()
                    );
                    let _ = std::fs::remove_file(&path);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!("{}: {e}", path.display()),
        }
        let z = self.codec.compress(raw);
        if let Err(e) = store(&key, &path, raw.len(), z.as_deref())
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            // The image does not need the cache: go on without storing.
            tracing::warn!("{}: cannot store a compressed block: {e}", path.display());
        }
        z
    }

    /// The key of `raw` and where the cache keeps its block (`<2 hex digits>/<62 more>`).
    fn entry(&self, raw: &[u8]) -> Option<([u8; 32], PathBuf)> {
        let (dir, prefix) = self.cache?;
        let key: [u8; 32] = Sha256::new()
            .chain_update(prefix)
            .chain_update(raw)
            .finalize()
            .into();
        let hex = hex::encode(key);
        Some((key, dir.join(&hex[..2]).join(&hex[2..])))
    }

    /// The block an entry holds, if it is sound and stands for `raw`.
    fn check(
        &self,
        key: &[u8; 32],
        entry: &[u8],
        raw: &[u8],
    ) -> Result<Option<Vec<u8>>, &'static str> {
        if entry.len() < HEADER || &entry[..8] != MAGIC {
            return Err("no header");
        }
        let kind = entry[8];
        let len = u32::from_le_bytes(entry[9..13].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(entry[13..17].try_into().expect("4 bytes"));
        let payload = &entry[HEADER..];
        if checksum(key, &entry[8..13], payload) != crc {
            return Err("checksum mismatch");
        }
        if len != raw.len() {
            return Err("another length");
        }
        match kind {
            KIND_STORED if payload.is_empty() => Ok(None),
            KIND_COMPRESSED if !payload.is_empty() => {
                match self.codec.decompress(payload, raw.len()) {
                    Some(d) if d == raw => Ok(Some(payload.to_vec())),
                    Some(_) => Err("decompresses to other bytes"),
                    None => Err("does not decompress"),
                }
            }
            _ => Err("unknown kind"),
        }
    }
}

/// The CRC32 of an entry's key (so an entry under another name fails too), kind, length and
/// payload.
fn checksum(key: &[u8; 32], kind_len: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(key);
    h.update(kind_len);
    h.update(payload);
    h.finalize()
}

/// Writes an entry: a temporary file beside it, renamed.
fn store(key: &[u8; 32], path: &Path, raw_len: usize, z: Option<&[u8]>) -> std::io::Result<()> {
    let dir = path.parent().expect("a bucket");
    fs_err::create_dir_all(dir)?;
    let (kind, payload) = match z {
        Some(z) => (KIND_COMPRESSED, z),
        None => (KIND_STORED, &[][..]),
    };
    let mut head = [0u8; HEADER];
    head[..8].copy_from_slice(MAGIC);
    head[8] = kind;
    head[9..13].copy_from_slice(&(raw_len as u32).to_le_bytes());
    let crc = checksum(key, &head[8..13], payload);
    head[13..17].copy_from_slice(&crc.to_le_bytes());
    let mut tmp = tempfile::Builder::new().prefix(".part-").tempfile_in(dir)?;
    tmp.write_all(&head)?;
    tmp.write_all(payload)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A codec that counts its calls: run-length bytes as (count, byte) pairs.
    struct Rle(AtomicU64);

    impl Codec for Rle {
        fn id(&self) -> String {
            "rle".into()
        }
        fn compress(&self, raw: &[u8]) -> Option<Vec<u8>> {
            self.0.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::new();
            for c in raw.chunk_by(|a, b| a == b) {
                for part in c.chunks(255) {
                    out.extend_from_slice(&[part.len() as u8, part[0]]);
                }
            }
            (out.len() < raw.len()).then_some(out)
        }
        fn decompress(&self, packed: &[u8], raw_len: usize) -> Option<Vec<u8>> {
            let mut out = Vec::new();
            for p in packed.chunks(2) {
                out.extend(std::iter::repeat_n(*p.get(1)?, p[0] as usize));
            }
            (out.len() == raw_len).then_some(out)
        }
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
            .into_iter()
            .flatten()
            .filter(|e| e.file_type().is_file() && e.file_name() != ".lock")
            .map(|e| e.into_path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn blocks_come_back_from_the_cache_and_damage_is_recompressed() {
        let dir = tempfile::tempdir().unwrap();
        let bc = BlockCache::open(&Cache::new(dir.path().to_path_buf())).unwrap();
        let codec = Rle(AtomicU64::new(0));
        let (a, b) = (vec![7u8; 4096], (0..=255u8).collect::<Vec<u8>>());
        let want = (codec.compress(&a), codec.compress(&b));
        assert!(want.0.is_some() && want.1.is_none());
        let calls = || codec.0.load(Ordering::Relaxed);
        let run = || {
            let blocks = Blocks::new(&codec, Some(&bc), 4096);
            let got = (blocks.compress(&a), blocks.compress(&b));
            assert_eq!(got, want);
            blocks.stats()
        };
        let before = calls();
        assert_eq!(
            run(),
            BlockStats {
                blocks: 2,
                cached: 0
            }
        );
        // The probe and the two blocks.
        assert_eq!(calls() - before, 3);
        let stored = entries(dir.path());
        assert_eq!(stored.len(), 2);
        let before = calls();
        assert_eq!(
            run(),
            BlockStats {
                blocks: 2,
                cached: 2
            }
        );
        assert_eq!(calls() - before, 1, "only the probe");

        // Cut short, a flipped bit, a flipped kind, garbage: each is recompressed and rewritten.
        for damage in [
            |e: &mut Vec<u8>| e.truncate(e.len() - 1),
            |e: &mut Vec<u8>| *e.last_mut().unwrap() ^= 1,
            |e: &mut Vec<u8>| e[8] ^= 1,
            |e: &mut Vec<u8>| *e = b"elsxblk1 not an entry".to_vec(),
            |e: &mut Vec<u8>| e.clear(),
        ] {
            for p in &stored {
                let mut e = std::fs::read(p).unwrap();
                damage(&mut e);
                std::fs::write(p, e).unwrap();
            }
            assert_eq!(
                run(),
                BlockStats {
                    blocks: 2,
                    cached: 0
                }
            );
            assert_eq!(
                run(),
                BlockStats {
                    blocks: 2,
                    cached: 2
                }
            );
        }
        // The entry of another block of the same length, under this block's name.
        let c = vec![9u8; 4096];
        let blocks = Blocks::new(&codec, Some(&bc), 4096);
        blocks.compress(&c);
        let (pa, pc) = (blocks.entry(&a).unwrap().1, blocks.entry(&c).unwrap().1);
        std::fs::copy(&pc, &pa).unwrap();
        assert_eq!(
            run(),
            BlockStats {
                blocks: 2,
                cached: 1
            }
        );
        assert_eq!(
            run(),
            BlockStats {
                blocks: 2,
                cached: 2
            }
        );

        // Without a cache: compressed every time, nothing counted as cached.
        let blocks = Blocks::new(&codec, None, 4096);
        assert_eq!((blocks.compress(&a), blocks.compress(&b)), want);
        assert_eq!(
            blocks.stats(),
            BlockStats {
                blocks: 2,
                cached: 0
            }
        );
    }

    #[test]
    fn another_codec_identity_gets_other_keys() {
        struct Named(&'static str, Rle);
        impl Codec for Named {
            fn id(&self) -> String {
                self.0.into()
            }
            fn compress(&self, raw: &[u8]) -> Option<Vec<u8>> {
                self.1.compress(raw)
            }
            fn decompress(&self, p: &[u8], n: usize) -> Option<Vec<u8>> {
                self.1.decompress(p, n)
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let bc = BlockCache::open(&Cache::new(dir.path().to_path_buf())).unwrap();
        let block = vec![1u8; 1000];
        for (id, cached) in [("one", 0), ("two", 0), ("one", 1)] {
            let c = Named(id, Rle(AtomicU64::new(0)));
            let blocks = Blocks::new(&c, Some(&bc), 1000);
            blocks.compress(&block);
            assert_eq!(blocks.stats().cached, cached, "{id}");
        }
    }
}
