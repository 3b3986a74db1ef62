//! A small EROFS reader on the structures of `write::erofs::format`: directories, symlinks,
//! devices, uncompressed files (plain or with an inline tail) and lz4 files laid out as our
//! writer makes them (full indexes, one-block pclusters). Other compressed files (MicroLZMA,
//! compact indexes, big pclusters: mkfs.erofs's layouts) are listed with their size; their
//! contents are not read.

use super::{FileInfo, FsError};
use crate::write::erofs::format::{
    self, I_DATALAYOUT_SHIFT, INODE_SLOT, InodeCompact, InodeExtended, LAYOUT_COMPRESSION_FULL,
    LAYOUT_FLAT_INLINE, LAYOUT_FLAT_PLAIN, LclusterIndex, MapHeader, S_IFBLK, S_IFCHR, S_IFDIR,
    S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, SuperBlock, Z_ALGORITHM_LZ4, Z_FULL_INDEX_SKIP,
    Z_LCLUSTER_HEAD, Z_LCLUSTER_PLAIN,
};
use zerocopy::FromBytes;

/// One inode, decoded.
struct Inode {
    mode: u16,
    uid: u32,
    gid: u32,
    mtime: u64,
    size: u64,
    layout: u16,
    /// `raw_blkaddr` or the device number.
    u: u32,
    /// Where the inline tail would start (after the inode and its xattrs).
    tail_at: usize,
}

pub struct Reader<'a> {
    img: &'a [u8],
    sb: SuperBlock,
    blk: usize,
}

fn err(m: impl Into<String>) -> FsError {
    FsError::Erofs(m.into())
}

impl<'a> Reader<'a> {
    pub fn new(img: &'a [u8]) -> Result<Reader<'a>, FsError> {
        let sb = format::read_superblock(img).ok_or_else(|| err("no superblock"))?;
        if !(9..=16).contains(&sb.blkszbits) {
            return Err(err(format!("block size 2^{}", sb.blkszbits)));
        }
        Ok(Reader {
            img,
            blk: 1 << sb.blkszbits,
            sb,
        })
    }

    /// The contents of the regular file at `path` (no leading `/`); `None` when it is stored
    /// in a way this reader does not decode.
    #[cfg(test)]
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, FsError> {
        let mut found = None;
        self.list(|f, content| {
            if f.path == path {
                found = Some(content);
            }
        })?;
        found.ok_or_else(|| err(format!("/{path}: not found")))
    }

    fn bytes(&self, at: usize, len: usize) -> Result<&'a [u8], FsError> {
        at.checked_add(len)
            .and_then(|end| self.img.get(at..end))
            .ok_or_else(|| err(format!("{len} bytes at {at} lie outside the image")))
    }

    fn inode(&self, nid: u64) -> Result<Inode, FsError> {
        let at = (self.sb.meta_blkaddr.get() as u64 * self.blk as u64)
            .checked_add(
                nid.checked_mul(INODE_SLOT)
                    .ok_or_else(|| err("nid overflow"))?,
            )
            .ok_or_else(|| err("nid overflow"))? as usize;
        let head = self.bytes(at, 2)?;
        let format = u16::from_le_bytes([head[0], head[1]]);
        let layout = (format >> I_DATALAYOUT_SHIFT) & 7;
        let (ino, isize) = if format & 1 == 0 {
            let i = InodeCompact::read_from_bytes(self.bytes(at, 32)?).map_err(|_| err("inode"))?;
            (
                Inode {
                    mode: i.i_mode.get(),
                    uid: i.i_uid.get().into(),
                    gid: i.i_gid.get().into(),
                    mtime: self.sb.build_time.get(),
                    size: i.i_size.get().into(),
                    layout,
                    u: i.i_u.get(),
                    tail_at: 0,
                },
                32,
            )
        } else {
            let i =
                InodeExtended::read_from_bytes(self.bytes(at, 64)?).map_err(|_| err("inode"))?;
            (
                Inode {
                    mode: i.i_mode.get(),
                    uid: i.i_uid.get(),
                    gid: i.i_gid.get(),
                    mtime: i.i_mtime.get(),
                    size: i.i_size.get(),
                    layout,
                    u: i.i_u.get(),
                    tail_at: 0,
                },
                64,
            )
        };
        let icount = u16::from_le_bytes(self.bytes(at + 2, 2)?.try_into().expect("2 bytes"));
        let xattr = if icount == 0 {
            0
        } else {
            12 + (icount as usize - 1) * 4
        };
        Ok(Inode {
            tail_at: at + isize + xattr,
            ..ino
        })
    }

    /// The contents of an uncompressed inode; `None` for compressed ones.
    fn data(&self, i: &Inode) -> Result<Option<Vec<u8>>, FsError> {
        let size = usize::try_from(i.size).map_err(|_| err("file size"))?;
        let start = i.u as usize * self.blk;
        match i.layout {
            LAYOUT_FLAT_PLAIN => Ok(Some(self.bytes(start, size)?.to_vec())),
            LAYOUT_FLAT_INLINE => {
                let full = size / self.blk * self.blk;
                let mut v = self.bytes(start, full)?.to_vec();
                v.extend_from_slice(self.bytes(i.tail_at, size - full)?);
                Ok(Some(v))
            }
            LAYOUT_COMPRESSION_FULL => self.decompress(i, size),
            _ => Ok(None),
        }
    }

    /// An lz4 file with full indexes and one-block pclusters; `None` for other algorithms and
    /// layouts.
    fn decompress(&self, i: &Inode, size: usize) -> Result<Option<Vec<u8>>, FsError> {
        let map_at = i.tail_at.next_multiple_of(8);
        let (h, _) = MapHeader::read_from_prefix(self.bytes(map_at, 8)?)
            .map_err(|_| err("compression map header"))?;
        let clusterbits = 12 + usize::from(h.h_clusterbits & 7);
        if h.h_algorithmtype & 0xf != Z_ALGORITHM_LZ4
            || h.h_advise.get() != 0
            || 1usize << clusterbits != self.blk
        {
            return Ok(None);
        }
        let count = size.div_ceil(self.blk);
        let table = self.bytes(map_at + Z_FULL_INDEX_SKIP as usize, count * 8)?;
        // Extent heads in file order: (logical start, pcluster block, stored raw).
        let mut heads = Vec::new();
        for (lcn, raw) in table.chunks(8).enumerate() {
            let ix = LclusterIndex::read_from_bytes(raw).map_err(|_| err("lcluster index"))?;
            let kind = ix.di_advise.get() & 3;
            let start = lcn * self.blk + usize::from(ix.di_clusterofs.get());
            // A PLAIN entry starting at the file's end only marks where the last extent ends.
            if matches!(kind, Z_LCLUSTER_HEAD | Z_LCLUSTER_PLAIN) && start < size {
                heads.push((start, ix.di_u.get() as usize, kind == Z_LCLUSTER_PLAIN));
            }
        }
        if heads.first().is_none_or(|h| h.0 != 0) {
            return Err(err("compressed file without an extent at offset 0"));
        }
        let mut out = vec![0u8; size];
        for (k, &(start, block, raw)) in heads.iter().enumerate() {
            let end = heads.get(k + 1).map_or(size, |h| h.0);
            let len = end
                .checked_sub(start)
                .ok_or_else(|| err("lcluster indexes out of order"))?;
            let pcluster = self.bytes(block * self.blk, self.blk)?;
            if raw {
                let src = pcluster
                    .get(..len)
                    .ok_or_else(|| err("a raw extent longer than its block"))?;
                out[start..end].copy_from_slice(src);
                continue;
            }
            // LZ4_0PADDING: the stream is right-aligned behind zeros.
            let skip = pcluster
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(pcluster.len());
            let n = lzzzz::lz4::decompress_partial(&pcluster[skip..], &mut out[start..end], len)
                .map_err(|e| err(format!("lz4 extent at {start}: {e}")))?;
            if n != len {
                return Err(err(format!(
                    "lz4 extent at {start} gave {n} bytes, not {len}"
                )));
            }
        }
        Ok(Some(out))
    }

    /// Every entry below the root, depth first in name order (as the directories store them).
    pub fn list(&self, mut visit: impl FnMut(FileInfo, Option<Vec<u8>>)) -> Result<(), FsError> {
        let mut stack = vec![(String::new(), u64::from(self.sb.root_nid.get()), 0usize)];
        while let Some((dir, nid, depth)) = stack.pop() {
            if depth > 256 {
                return Err(err(format!("{dir}: directories nested too deep")));
            }
            let ino = self.inode(nid)?;
            let body = self
                .data(&ino)?
                .ok_or_else(|| err(format!("/{dir}: compressed directory")))?;
            let mut children = Vec::new();
            for block in body.chunks(self.blk) {
                for (name, child) in dirents(block).map_err(|m| err(format!("/{dir}: {m}")))? {
                    if name != "." && name != ".." {
                        children.push((name, child));
                    }
                }
            }
            // Depth first in name order: push subdirectories in reverse.
            let mut subdirs = Vec::new();
            for (name, child) in children {
                let path = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                let ci = self.inode(child)?;
                let fmt = ci.mode & 0o170000;
                let (kind, target, content) = match fmt {
                    S_IFDIR => ("dir", None, None),
                    S_IFREG => ("file", None, self.data(&ci)?),
                    S_IFLNK => {
                        let t = self.data(&ci)?.ok_or_else(|| err("compressed symlink"))?;
                        (
                            "symlink",
                            Some(String::from_utf8_lossy(&t).into_owned()),
                            None,
                        )
                    }
                    S_IFCHR => ("char-device", None, None),
                    S_IFBLK => ("block-device", None, None),
                    S_IFIFO => ("fifo", None, None),
                    S_IFSOCK => ("socket", None, None),
                    _ => return Err(err(format!("/{path}: unknown mode {:o}", ci.mode))),
                };
                let compressed = fmt == S_IFREG && content.is_none();
                visit(
                    FileInfo {
                        path: path.clone(),
                        kind: kind.to_owned(),
                        mode: u32::from(ci.mode & 0o7777),
                        uid: ci.uid,
                        gid: ci.gid,
                        size: if matches!(fmt, S_IFREG | S_IFLNK) {
                            ci.size
                        } else {
                            0
                        },
                        mtime: ci.mtime,
                        target,
                        rdev: matches!(fmt, S_IFCHR | S_IFBLK).then_some(ci.u),
                        compressed,
                    },
                    content,
                );
                if fmt == S_IFDIR {
                    subdirs.push((path, child, depth + 1));
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }
}

/// The (name, nid) pairs of one directory block.
fn dirents(block: &[u8]) -> Result<Vec<(String, u64)>, String> {
    if block.len() < 12 {
        return Err("short directory block".into());
    }
    let first = format::Dirent::read_from_prefix(block)
        .map_err(|_| "directory entry")?
        .0;
    let count = first.nameoff.get() as usize / 12;
    if count == 0 || count * 12 > block.len() {
        return Err("bad directory block".into());
    }
    let ents: Vec<format::Dirent> = (0..count)
        .map(|i| {
            format::Dirent::read_from_prefix(&block[i * 12..])
                .map(|(d, _)| d)
                .map_err(|_| "directory entry".to_owned())
        })
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(count);
    for (i, d) in ents.iter().enumerate() {
        let start = d.nameoff.get() as usize;
        let end = match ents.get(i + 1) {
            Some(n) => n.nameoff.get() as usize,
            // The last name ends at the block's end or at the first NUL.
            None => block[start.min(block.len())..]
                .iter()
                .position(|b| *b == 0)
                .map_or(block.len(), |p| start + p),
        };
        let name = block
            .get(start..end)
            .ok_or_else(|| "directory name outside its block".to_owned())?;
        out.push((String::from_utf8_lossy(name).into_owned(), d.nid.get()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{Entry, Tree};
    use crate::write::erofs::{Compression, Options, write};

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let mut t = Tree::new();
        let file = |d: Vec<u8>| Entry::file(d, 0o644, 1_700_000_000);
        let text: Vec<u8> = (0..60_000u32)
            .flat_map(|i| format!("line {}\n", i % 977).into_bytes())
            .collect();
        let mut x = 1u32;
        let mixed: Vec<u8> = (0..200_000u32)
            .map(|i| {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                if (i / 20_000) % 2 == 0 {
                    (x >> 16) as u8
                } else {
                    b'a'
                }
            })
            .collect();
        t.insert("usr/share/text".into(), file(text.clone()));
        t.insert("usr/share/mixed".into(), file(mixed.clone()));
        t.insert("usr/share/small".into(), file(b"small".to_vec()));
        for c in [Compression::None, Compression::Lz4, Compression::Lz4hc(9)] {
            let mut f = tempfile::tempfile().unwrap();
            write(
                &t,
                &Options {
                    compression: c,
                    ..Default::default()
                },
                None,
                &mut f,
            )
            .unwrap();
            use std::io::{Read, Seek};
            f.rewind().unwrap();
            let mut img = Vec::new();
            f.read_to_end(&mut img).unwrap();
            let r = Reader::new(&img).unwrap();
            assert_eq!(
                r.read("usr/share/text").unwrap().as_deref(),
                Some(&text[..]),
                "{c:?}"
            );
            assert_eq!(
                r.read("usr/share/mixed").unwrap().as_deref(),
                Some(&mixed[..]),
                "{c:?}"
            );
            assert_eq!(
                r.read("usr/share/small").unwrap().as_deref(),
                Some(&b"small"[..])
            );
        }
    }
}
