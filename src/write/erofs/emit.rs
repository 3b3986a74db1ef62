//! The second pass: the metadata area (superblock, inodes, xattrs, inline tails, compression
//! indexes) is built in memory, then it and the data blocks are written in one sequential stream.

use super::compress;
use super::format::*;
use super::layout::{Body, Data, Node, Plan, Xattr};
use super::{Options, uuid_from_seed};
use std::io::{self, Write};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

pub fn emit(plan: &Plan, opts: &Options, w: &mut impl Write) -> io::Result<()> {
    let blk = u64::from(opts.block_size);
    let mut meta = vec![0u8; (plan.data_start * blk) as usize];
    for (x, at) in &plan.shared {
        put_xattr(&mut meta, *at as usize, x);
    }
    for (i, node) in plan.nodes.iter().enumerate() {
        write_inode(&mut meta, plan, i, node, blk);
    }
    if plan.lzma_cfgs {
        let at = SUPER_OFFSET + size_of::<SuperBlock>();
        let cfgs = LzmaCfgs {
            dict_size: U32::new(super::lzma::DICT_SIZE),
            format: U16::new(0),
            reserved: [0; 8],
        };
        meta[at..at + 2].copy_from_slice(&(size_of::<LzmaCfgs>() as u16).to_le_bytes());
        meta[at + 2..at + 2 + size_of::<LzmaCfgs>()].copy_from_slice(cfgs.as_bytes());
    }
    let sb = superblock(plan, opts);
    meta[SUPER_OFFSET..SUPER_OFFSET + size_of::<SuperBlock>()].copy_from_slice(sb.as_bytes());
    let checksum = superblock_checksum(&meta[..blk as usize]);
    meta[SUPER_OFFSET + 4..SUPER_OFFSET + 8].copy_from_slice(&checksum.to_le_bytes());
    w.write_all(&meta)?;

    let zeros = vec![0u8; blk as usize];
    let mut written = plan.data_start;
    for (i, node) in plan.nodes.iter().enumerate() {
        if node.data_blocks == 0 {
            continue;
        }
        debug_assert_eq!(u64::from(node.blkaddr), written);
        match &node.data {
            Data::Compressed(c) => w.write_all(&c.blocks)?,
            Data::Flat { inline_tail } => {
                let content = content(plan, i, node);
                let cut = if *inline_tail {
                    content.len() - node.tail(blk) as usize
                } else {
                    content.len()
                };
                w.write_all(&content[..cut])?;
                let pad = (blk - cut as u64 % blk) % blk;
                w.write_all(&zeros[..pad as usize])?;
            }
        }
        written += node.data_blocks;
    }
    debug_assert_eq!(written, plan.blocks);
    Ok(())
}

fn superblock(plan: &Plan, opts: &Options) -> SuperBlock {
    let mut sb = SuperBlock::new_zeroed();
    sb.magic = U32::new(SUPER_MAGIC);
    sb.feature_compat = U32::new(FEATURE_COMPAT_SB_CHKSUM | FEATURE_COMPAT_MTIME);
    sb.blkszbits = opts.block_size.trailing_zeros() as u8;
    sb.root_nid = U16::new(plan.nodes[0].nid() as u16);
    sb.inos = U64::new(plan.nodes.len() as u64);
    sb.build_time = U64::new(plan.build_time);
    sb.blocks = U32::new(plan.blocks as u32);
    sb.uuid = uuid_from_seed(&opts.uuid_seed);
    if plan.any_compressed {
        sb.feature_incompat = U32::new(FEATURE_INCOMPAT_LZ4_0PADDING);
    }
    if plan.lzma_cfgs {
        sb.feature_incompat = U32::new(FEATURE_INCOMPAT_LZ4_0PADDING | FEATURE_INCOMPAT_COMPR_CFGS);
        sb.u1 = U16::new(1 << Z_ALGORITHM_LZMA);
    }
    sb
}

/// A node's content bytes: file data, symlink target or directory blocks.
fn content<'p>(plan: &'p Plan, i: usize, node: &'p Node) -> &'p [u8] {
    match &node.body {
        Body::File(d) => d,
        Body::Symlink(s) => s,
        Body::Dir(_) => plan.dirs[i].as_deref().expect("directories have content"),
        Body::Device(_) | Body::Special => &[],
    }
}

fn write_inode(meta: &mut [u8], plan: &Plan, i: usize, node: &Node, blk: u64) {
    let pos = node.pos as usize;
    let layout = node.layout(blk);
    let xattr_size = node.xattr_size();
    let icount = if xattr_size == 0 {
        0
    } else {
        1 + (xattr_size - size_of::<XattrIbodyHeader>() as u64) / 4
    } as u16;
    let i_u = match (&node.body, &node.data) {
        (Body::Device(rdev), _) => *rdev,
        (_, Data::Compressed(c)) => c.block_count(blk as usize) as u32,
        _ => node.blkaddr,
    };
    let ino = (i + 1) as u32;
    if node.extended {
        let mut ino_ext = InodeExtended::new_zeroed();
        ino_ext.i_format = U16::new(I_VERSION_EXTENDED | (layout << I_DATALAYOUT_SHIFT));
        ino_ext.i_xattr_icount = U16::new(icount);
        ino_ext.i_mode = U16::new(node.mode);
        ino_ext.i_size = U64::new(node.size);
        ino_ext.i_u = U32::new(i_u);
        ino_ext.i_ino = U32::new(ino);
        ino_ext.i_uid = U32::new(node.uid);
        ino_ext.i_gid = U32::new(node.gid);
        ino_ext.i_mtime = U64::new(node.mtime);
        ino_ext.i_nlink = U32::new(node.nlink);
        meta[pos..pos + 64].copy_from_slice(ino_ext.as_bytes());
    } else {
        let mut c = InodeCompact::new_zeroed();
        c.i_format = U16::new(I_VERSION_COMPACT | (layout << I_DATALAYOUT_SHIFT));
        c.i_xattr_icount = U16::new(icount);
        c.i_mode = U16::new(node.mode);
        c.i_nlink = U16::new(node.nlink as u16);
        c.i_size = U32::new(node.size as u32);
        c.i_u = U32::new(i_u);
        c.i_ino = U32::new(ino);
        c.i_uid = U16::new(node.uid as u16);
        c.i_gid = U16::new(node.gid as u16);
        meta[pos..pos + 32].copy_from_slice(c.as_bytes());
    }

    let mut at = pos + node.inode_size() as usize;
    if xattr_size > 0 {
        let mut h = XattrIbodyHeader::new_zeroed();
        h.h_shared_count = node.shared.len() as u8;
        meta[at..at + 12].copy_from_slice(h.as_bytes());
        at += 12;
        for &s in &node.shared {
            let id = (plan.shared[s].1 / 4) as u32;
            meta[at..at + 4].copy_from_slice(&id.to_le_bytes());
            at += 4;
        }
        for x in &node.inline_xattrs {
            at = put_xattr(meta, at, x);
        }
    }

    match &node.data {
        Data::Flat { inline_tail: true } if node.tail(blk) > 0 => {
            let content = content(plan, i, node);
            let tail = &content[content.len() - node.tail(blk) as usize..];
            meta[at..at + tail.len()].copy_from_slice(tail);
        }
        Data::Flat { .. } => {}
        Data::Compressed(c) => {
            let header_at = pos + (node.index_offset() - Z_FULL_INDEX_SKIP) as usize;
            let mut h = MapHeader::new_zeroed();
            h.h_algorithmtype = if plan.lzma_cfgs {
                Z_ALGORITHM_LZMA
            } else {
                Z_ALGORITHM_LZ4
            };
            h.h_clusterbits = (blk.trailing_zeros() - 12) as u8;
            meta[header_at..header_at + 8].copy_from_slice(h.as_bytes());
            let mut at = pos + node.index_offset() as usize;
            for index in compress::indexes(c, node.size, blk, node.blkaddr) {
                meta[at..at + 8].copy_from_slice(index.as_bytes());
                at += 8;
            }
        }
    }
}

/// Writes one xattr entry at `at`; returns the 4-aligned end.
fn put_xattr(meta: &mut [u8], at: usize, x: &Xattr) -> usize {
    let e = XattrEntry {
        e_name_len: x.suffix.len() as u8,
        e_name_index: x.index,
        e_value_size: U16::new(x.value.len() as u16),
    };
    meta[at..at + 4].copy_from_slice(e.as_bytes());
    let name_at = at + 4;
    meta[name_at..name_at + x.suffix.len()].copy_from_slice(x.suffix);
    let value_at = name_at + x.suffix.len();
    meta[value_at..value_at + x.value.len()].copy_from_slice(x.value);
    at + x.size() as usize
}
