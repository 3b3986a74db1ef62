//! The EROFS on-disk format: every structure the writer emits, declared once, with its size
//! checked at compile time. All integers are little-endian; the `zerocopy` byte-order types have
//! alignment 1, so `#[repr(C)]` adds no padding and the layouts match the C definitions of
//! erofs-utils' `include/erofs_fs.h` field for field.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const SUPER_MAGIC: u32 = 0xE0F5_E1E2;
/// The superblock sits 1024 bytes into block 0 (the first KiB is left for boot loaders).
pub const SUPER_OFFSET: usize = 1024;

/// `feature_compat`: the superblock carries a crc32c of block 0 from [`SUPER_OFFSET`] on.
pub const FEATURE_COMPAT_SB_CHKSUM: u32 = 0x0000_0001;
/// `feature_compat`: extended inodes carry their own mtime.
pub const FEATURE_COMPAT_MTIME: u32 = 0x0000_0002;
/// `feature_incompat`: lz4 pclusters are padded with zeros at the front, so the decompressor
/// finds where the stream starts and knows its exact length.
pub const FEATURE_INCOMPAT_LZ4_0PADDING: u32 = 0x0000_0001;
/// `feature_incompat`: `u1` is a bitmap of the algorithms in use, and a configuration record
/// per algorithm follows the superblock.
pub const FEATURE_INCOMPAT_COMPR_CFGS: u32 = 0x0000_0002;

/// Inodes live in 32-byte slots; a nid is the slot number counted from `meta_blkaddr`.
pub const INODE_SLOT: u64 = 32;
pub const NAME_LEN_MAX: usize = 255;

/// `i_format` bit 0: compact (0) or extended (1) inode; bits 1..=3: the data layout.
pub const I_VERSION_COMPACT: u16 = 0;
pub const I_VERSION_EXTENDED: u16 = 1;
pub const I_DATALAYOUT_SHIFT: u16 = 1;

/// Data layouts (`i_format` bits 1..=3).
pub const LAYOUT_FLAT_PLAIN: u16 = 0;
/// Compressed with full (8-byte, "legacy") lcluster indexes.
pub const LAYOUT_COMPRESSION_FULL: u16 = 1;
/// Full blocks plus the tail stored right after the inode ("tail packing").
pub const LAYOUT_FLAT_INLINE: u16 = 2;

/// Directory entry file types.
pub const FT_REG_FILE: u8 = 1;
pub const FT_DIR: u8 = 2;
pub const FT_CHRDEV: u8 = 3;
pub const FT_BLKDEV: u8 = 4;
pub const FT_FIFO: u8 = 5;
pub const FT_SOCK: u8 = 6;
pub const FT_SYMLINK: u8 = 7;

/// `S_IF*` bits of `i_mode`.
pub const S_IFSOCK: u16 = 0o140000;
pub const S_IFLNK: u16 = 0o120000;
pub const S_IFREG: u16 = 0o100000;
pub const S_IFBLK: u16 = 0o060000;
pub const S_IFDIR: u16 = 0o040000;
pub const S_IFCHR: u16 = 0o020000;
pub const S_IFIFO: u16 = 0o010000;

/// xattr name indexes: the prefix is stored as a number, only the rest of the name as bytes.
/// The two POSIX ACL names are whole names (empty suffix).
pub const XATTR_PREFIXES: [(&str, u8); 5] = [
    ("user.", 1),
    ("system.posix_acl_access", 2),
    ("system.posix_acl_default", 3),
    ("trusted.", 4),
    ("security.", 6),
];
/// At most this many shared xattrs per inode (`h_shared_count` values above are reserved).
pub const SHARED_XATTRS_MAX: usize = 128;

/// `z_erofs_map_header.h_algorithmtype` values (and bits of `available_compr_algs`).
pub const Z_ALGORITHM_LZ4: u8 = 0;
pub const Z_ALGORITHM_LZMA: u8 = 1;
/// Full indexes start this far past the 8-aligned end of inode and xattrs: the map header and
/// 8 reserved bytes.
pub const Z_FULL_INDEX_SKIP: u64 = 16;
/// lcluster types (`di_advise` bits 0..=1).
pub const Z_LCLUSTER_PLAIN: u16 = 0;
pub const Z_LCLUSTER_HEAD: u16 = 1;
pub const Z_LCLUSTER_NONHEAD: u16 = 2;
/// A NONHEAD `delta[0]` with this bit set means "compressed block count" (big pclusters only),
/// so distances to the head are capped just below it; readers chain look-backs.
pub const Z_DELTA0_MAX: u16 = (1 << 11) - 1;

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct SuperBlock {
    pub magic: U32,
    /// crc32c (seed !0, no final inversion) of block 0 from [`SUPER_OFFSET`], this field zeroed.
    pub checksum: U32,
    pub feature_compat: U32,
    pub blkszbits: u8,
    pub sb_extslots: u8,
    pub root_nid: U16,
    /// Number of inodes.
    pub inos: U64,
    /// The mtime of every compact inode.
    pub build_time: U64,
    pub build_time_nsec: U32,
    /// Image size in blocks.
    pub blocks: U32,
    pub meta_blkaddr: U32,
    pub xattr_blkaddr: U32,
    pub uuid: [u8; 16],
    pub volume_name: [u8; 16],
    pub feature_incompat: U32,
    /// `available_compr_algs` or `lz4_max_distance` (0: the default 64 KiB window).
    pub u1: U16,
    pub extra_devices: U16,
    pub devt_slotoff: U16,
    pub reserved2: [u8; 38],
}
const _: () = assert!(size_of::<SuperBlock>() == 128);

/// The 32-byte inode: no mtime (the superblock's `build_time` stands in), 16-bit ids and links,
/// 32-bit size.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct InodeCompact {
    pub i_format: U16,
    /// 0 without xattrs, else 1 + (xattr body size − 12) / 4.
    pub i_xattr_icount: U16,
    pub i_mode: U16,
    pub i_nlink: U16,
    pub i_size: U32,
    pub i_reserved: U32,
    /// `raw_blkaddr`, `compressed_blocks` or `rdev`, by file type and layout.
    pub i_u: U32,
    pub i_ino: U32,
    pub i_uid: U16,
    pub i_gid: U16,
    pub i_reserved2: U32,
}
const _: () = assert!(size_of::<InodeCompact>() == 32);

#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct InodeExtended {
    pub i_format: U16,
    pub i_xattr_icount: U16,
    pub i_mode: U16,
    pub i_reserved: U16,
    pub i_size: U64,
    pub i_u: U32,
    pub i_ino: U32,
    pub i_uid: U32,
    pub i_gid: U32,
    pub i_mtime: U64,
    pub i_mtime_nsec: U32,
    pub i_nlink: U32,
    pub i_reserved2: [u8; 16],
}
const _: () = assert!(size_of::<InodeExtended>() == 64);

/// Starts the xattr body after the inode; `h_shared_count` 4-byte shared xattr ids follow, then
/// the inline entries.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct XattrIbodyHeader {
    pub h_reserved: U32,
    pub h_shared_count: u8,
    pub h_reserved2: [u8; 7],
}
const _: () = assert!(size_of::<XattrIbodyHeader>() == 12);

/// One xattr (inline or shared), followed by the name suffix and the value, padded to 4 bytes.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct XattrEntry {
    pub e_name_len: u8,
    pub e_name_index: u8,
    pub e_value_size: U16,
}
const _: () = assert!(size_of::<XattrEntry>() == 4);

/// The lzma configuration record (after its 2-byte length, 4-aligned after the superblock).
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct LzmaCfgs {
    pub dict_size: U32,
    /// 0: MicroLZMA.
    pub format: U16,
    pub reserved: [u8; 8],
}
const _: () = assert!(size_of::<LzmaCfgs>() == 14);

/// Heads the index area of a compressed inode (8-aligned after inode and xattrs).
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct MapHeader {
    pub h_reserved1: U16,
    pub h_idata_size: U16,
    pub h_advise: U16,
    /// Bits 0..=3: algorithm of HEAD lclusters.
    pub h_algorithmtype: u8,
    /// Bits 0..=2: log2(lcluster size) − 12.
    pub h_clusterbits: u8,
}
const _: () = assert!(size_of::<MapHeader>() == 8);

/// One full ("legacy") index per logical cluster of a compressed file.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct LclusterIndex {
    /// Bits 0..=1: the lcluster type.
    pub di_advise: U16,
    /// HEAD and PLAIN: where in this lcluster the extent starts.
    pub di_clusterofs: U16,
    /// HEAD and PLAIN: the pcluster's block address; NONHEAD: `delta[0]` (lclusters back to the
    /// head) in the low half and `delta[1]` (lclusters on to the next head) in the high half.
    pub di_u: U32,
}
const _: () = assert!(size_of::<LclusterIndex>() == 8);

/// A directory block starts with these, sorted by name; `nameoff` of the first one, divided by
/// 12, is the entry count of the block; names follow without terminators.
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout, Clone, Copy, Debug)]
#[repr(C)]
pub struct Dirent {
    pub nid: U64,
    pub nameoff: U16,
    pub file_type: u8,
    pub reserved: u8,
}
const _: () = assert!(size_of::<Dirent>() == 12);

pub use crate::write::inodes::encode_dev;

/// The superblock checksum over block 0 (`block0` is the whole first block): crc32c from
/// [`SUPER_OFFSET`] to the end of the block with the checksum field read as zero, seeded with
/// `!0` and not inverted at the end (the kernel's `crc32c(~0, ...)`).
pub fn superblock_checksum(block0: &[u8]) -> u32 {
    let area = &block0[SUPER_OFFSET..];
    let mut crc = !0u32;
    for (i, &b) in area.iter().enumerate() {
        // bytes 4..8 of the superblock are the checksum itself
        let b = if (4..8).contains(&i) { 0 } else { b };
        crc = crc32c_byte(crc, b);
    }
    crc
}

fn crc32c_byte(mut crc: u32, b: u8) -> u32 {
    const POLY: u32 = 0x82F6_3B78; // Castagnoli, reflected
    crc ^= u32::from(b);
    for _ in 0..8 {
        crc = if crc & 1 != 0 {
            (crc >> 1) ^ POLY
        } else {
            crc >> 1
        };
    }
    crc
}

/// Reads the superblock of an image (at least its first 1152 bytes).
pub fn read_superblock(image: &[u8]) -> Option<SuperBlock> {
    let sb = SuperBlock::read_from_prefix(image.get(SUPER_OFFSET..)?)
        .ok()?
        .0;
    (sb.magic.get() == SUPER_MAGIC).then_some(sb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The standard crc32c of "123456789" is 0xE3069283 (seed !0, final inversion).
        let raw = b"123456789".iter().fold(!0u32, |c, &b| crc32c_byte(c, b));
        assert_eq!(!raw, 0xE306_9283);
    }

    #[test]
    fn dev_numbers_encode_like_the_kernel() {
        assert_eq!(encode_dev(1, 3), 0x103);
        assert_eq!(encode_dev(259, 0x12345), 0x12310345);
    }
}
