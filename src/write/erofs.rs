//! EROFS images, written by our own code (no crate writes EROFS).
//!
//! The writer works in two passes over the [`Tree`]: `layout` turns entries into inodes (hard
//! links, which share one `Arc`, become one inode), decides every inode's form, places inodes
//! and shared xattrs in the metadata area and gives data its blocks; `emit` then writes the
//! bytes in one sequential stream. `format` declares the on-disk structures. Nothing in the
//! image depends on thread count, hash order or the clock, so the same tree and options give
//! the same bytes.
//!
//! Choices (uncompressed and lz4 images are readable by Linux ≥ 5.4 and erofs-utils ≥ 1.5):
//! - 4 KiB blocks only (other sizes need Linux ≥ 6.4);
//! - compact 32-byte inodes where they lose nothing (ids and link counts below 65536, size below
//!   4 GiB, mtime equal to the superblock's build time, which compact inodes inherit), extended
//!   64-byte inodes otherwise, so every file keeps its own mtime;
//! - file, directory and symlink tails packed into the metadata area right after the inode
//!   (`FLAT_INLINE`) when inode, xattrs and tail fit in one block; full blocks in the data area;
//! - metadata records go to the fullest block with room for them and never straddle a block
//!   boundary when they fit in one, which packs about as tightly as mkfs.erofs;
//! - xattrs that two or more inodes carry with the same value are stored once in the shared
//!   area and referenced by id; the rest sit inline after the inode;
//! - lz4, lz4hc or lzma: one-block pclusters filled by destination-size compression, full
//!   (8-byte) lcluster indexes, `LZ4_0PADDING`; a file is compressed only when that takes less
//!   room than storing it flat with its tail packed. lzma (MicroLZMA, with the `COMPR_CFGS`
//!   record after the superblock) needs Linux ≥ 5.16 and is checked against the kernel only:
//!   erofs-utils 1.5 cannot read it;
//! - the superblock carries a crc32c checksum; its UUID is derived from `uuid_seed`.

mod codec;
mod compress;
mod emit;
pub mod format;
mod layout;
mod lzma;

use super::WriteError;
use super::blocks::{BlockCache, BlockStats, Blocks};
use crate::tree::Tree;
use sha2::{Digest, Sha256};
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Lz4,
    /// lz4hc at a level from 1 to 12 (mkfs.erofs's default is 9).
    Lz4hc(u32),
    /// MicroLZMA at a preset from 0 to 9 (needs Linux ≥ 5.16 with `EROFS_FS_ZIP_LZMA`; the
    /// erofs-utils 1.5 tools cannot read it).
    Lzma(u32),
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub compression: Compression,
    /// The filesystem UUID is derived from this (see [`uuid_from_seed`]).
    pub uuid_seed: [u8; 16],
    /// The superblock's build time (SOURCE_DATE_EPOCH); compact inodes carry it as their mtime.
    pub mkfs_time: u64,
    /// Must be 4096.
    pub block_size: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            compression: Compression::Lz4hc(9),
            uuid_seed: [0; 16],
            mkfs_time: 0,
            block_size: 4096,
        }
    }
}

/// The UUID an image built with `seed` gets: the first 16 bytes of
/// sha256("elsx erofs uuid" ‖ seed) with RFC 4122 version 4 and variant bits.
pub fn uuid_from_seed(seed: &[u8; 16]) -> [u8; 16] {
    let digest = Sha256::new()
        .chain_update(b"elsx erofs uuid")
        .chain_update(seed)
        .finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x40;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

/// Writes `t` as an EROFS image into `out` from its current position, with compressed files from
/// `cache` when it holds them; returns the image size and the counts.
pub fn write(
    t: &Tree,
    opts: &Options,
    cache: Option<&BlockCache>,
    out: &mut std::fs::File,
) -> Result<(u64, BlockStats), WriteError> {
    super::buffered(out, "erofs image", |w| write_cached(t, opts, cache, w))
}

/// Writes `t` as an EROFS image into any writer; returns the image size in bytes.
pub fn write_to(t: &Tree, opts: &Options, w: &mut impl Write) -> Result<u64, WriteError> {
    write_cached(t, opts, None, w).map(|(size, _)| size)
}

/// [`write_to`], taking compressed files from `cache` when it holds them (and storing those it
/// did not): the same bytes, and how many files were compressed and came from the cache.
pub fn write_cached(
    t: &Tree,
    opts: &Options,
    cache: Option<&BlockCache>,
    w: &mut impl Write,
) -> Result<(u64, BlockStats), WriteError> {
    check_options(opts)?;
    let codec = codec::ErofsCodec {
        compression: opts.compression,
        blk: opts.block_size as usize,
    };
    let files = Blocks::new(&codec, cache, 128 * 1024);
    let plan = layout::plan(t, opts, &files)?;
    tracing::debug!(
        inodes = plan.nodes.len(),
        blocks = plan.blocks,
        "erofs layout done"
    );
    emit::emit(&plan, opts, w).map_err(io_error)?;
    Ok((plan.blocks * u64::from(opts.block_size), files.stats()))
}

fn check_options(opts: &Options) -> Result<(), WriteError> {
    if opts.block_size != 4096 {
        return Err(WriteError::Erofs(format!(
            "block size {} is not supported (only 4096)",
            opts.block_size
        )));
    }
    match opts.compression {
        Compression::Lz4hc(level) if !(1..=12).contains(&level) => Err(WriteError::Erofs(format!(
            "lz4hc level {level} is out of range (1 to 12)"
        ))),
        Compression::Lzma(level) if level > 9 => Err(WriteError::Erofs(format!(
            "lzma level {level} is out of range (0 to 9)"
        ))),
        _ => Ok(()),
    }
}

fn io_error(e: std::io::Error) -> WriteError {
    WriteError::Io {
        path: "erofs image".into(),
        source: e,
    }
}
