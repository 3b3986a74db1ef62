//! A small EROFS reader on the structures of `write::erofs::format`: directories, symlinks,
//! devices and uncompressed files (plain or with an inline tail). Compressed files are listed
//! with their size; their contents are not read.

use super::{FileInfo, FsError};
use crate::write::erofs::format::{
    self, I_DATALAYOUT_SHIFT, INODE_SLOT, InodeCompact, InodeExtended, LAYOUT_FLAT_INLINE,
    LAYOUT_FLAT_PLAIN, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, SuperBlock,
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
            _ => Ok(None),
        }
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
