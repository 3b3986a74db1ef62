//! squashfs images through backhand's writer (zstd; see DESIGN.md for its limits: no xattrs,
//! no hard links, one compression thread; our own writer replaces it with the writers issue).

use super::WriteError;
use crate::tree::{Kind, Tree};
use backhand::compression::{CompressionOptions, Compressor, Zstd};
use backhand::{FilesystemCompressor, FilesystemWriter, NodeHeader};
use std::io::Cursor;

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub zstd_level: u32,
    pub block_size: u32,
    /// The time stamped into the superblock (SOURCE_DATE_EPOCH).
    pub mkfs_time: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            zstd_level: 15,
            block_size: 128 * 1024,
            mkfs_time: 0,
        }
    }
}

/// Writes `t` as a squashfs image into `out`.
pub fn write(t: &Tree, opts: &Options, out: &mut std::fs::File) -> Result<(), WriteError> {
    let e = |x: backhand::BackhandError| WriteError::Squashfs(x.to_string());
    let mut fs = FilesystemWriter::default();
    let comp = FilesystemCompressor::new(
        Compressor::Zstd,
        Some(CompressionOptions::Zstd(Zstd {
            compression_level: opts.zstd_level,
        })),
    )
    .map_err(e)?;
    fs.set_compressor(comp);
    fs.set_block_size(opts.block_size);
    fs.set_time(opts.mkfs_time);
    fs.set_root_mode(0o755);
    fs.set_root_uid(0);
    fs.set_root_gid(0);
    for (path, entry) in &t.entries {
        let h = NodeHeader::new(
            entry.mode as u16,
            entry.uid,
            entry.gid,
            entry.mtime.min(u32::MAX as u64) as u32,
        );
        let res = match &entry.kind {
            Kind::Dir => fs.push_dir(path, h),
            Kind::File(data) => fs.push_file(Cursor::new(data.clone().as_ref().clone()), path, h),
            Kind::Symlink(target) => fs.push_symlink(target, path, h),
            Kind::CharDevice { major, minor } => fs.push_char_device(dev(*major, *minor), path, h),
            Kind::BlockDevice { major, minor } => {
                fs.push_block_device(dev(*major, *minor), path, h)
            }
            Kind::Fifo => fs.push_fifo(path, h),
            Kind::Socket => fs.push_socket(path, h),
        };
        res.map_err(|x| WriteError::Squashfs(format!("{path}: {x}")))?;
    }
    fs.write(out).map_err(e)?;
    Ok(())
}

/// The kernel's `new_encode_dev`, which squashfs stores.
fn dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}
