//! The first pass: inodes from tree entries, then every size and address the second pass
//! ([`super::emit`]) writes. Nothing here depends on the bytes of a child's nid, so sizes are
//! known before places: plan the forms, place the metadata, then hand out data blocks.

use super::compress::Compressed;
use super::format::*;
use super::{Compression, Options};
use crate::tree::{Entry, Kind, Tree};
use crate::write::blocks::Blocks;
use crate::write::{WriteError, inodes};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

/// A node's content as the image stores it.
pub enum Body<'a> {
    Dir(Vec<Child<'a>>),
    File(&'a [u8]),
    Symlink(&'a [u8]),
    Device(u32),
    /// Fifos and sockets: nothing but the inode.
    Special,
}

/// A directory entry, `.` and `..` included, sorted by name bytes.
pub struct Child<'a> {
    pub name: &'a [u8],
    pub node: usize,
    pub file_type: u8,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub struct Xattr<'a> {
    pub index: u8,
    pub suffix: &'a [u8],
    pub value: &'a [u8],
}

impl Xattr<'_> {
    /// Entry header, name suffix and value, padded to 4 bytes.
    pub fn size(&self) -> u64 {
        (size_of::<XattrEntry>() + self.suffix.len() + self.value.len()).next_multiple_of(4) as u64
    }
}

/// How the content is stored.
pub enum Data {
    /// Full blocks in the data area; the tail (if any) inline after the inode or in one more
    /// block.
    Flat {
        inline_tail: bool,
    },
    Compressed(Compressed),
}

pub struct Node<'a> {
    /// The first path naming the inode, for errors ("" for the root).
    pub path: &'a str,
    /// File type bits and permissions.
    pub mode: u16,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub nlink: u32,
    pub body: Body<'a>,
    pub xattrs: Vec<Xattr<'a>>,
    /// Indexes into [`Plan::shared`], then the xattrs kept inline.
    pub shared: Vec<usize>,
    pub inline_xattrs: Vec<Xattr<'a>>,
    pub extended: bool,
    /// The content's logical size (`i_size`).
    pub size: u64,
    pub data: Data,
    /// Byte offset of the inode in the image (metadata starts at block 0, so nid = pos / 32).
    pub pos: u64,
    /// First data block, 0 when the inode has none.
    pub blkaddr: u32,
    pub data_blocks: u64,
}

impl Node<'_> {
    pub fn nid(&self) -> u64 {
        self.pos / INODE_SLOT
    }

    pub fn inode_size(&self) -> u64 {
        if self.extended {
            size_of::<InodeExtended>() as u64
        } else {
            size_of::<InodeCompact>() as u64
        }
    }

    /// The xattr body: header, shared ids, inline entries; 0 without xattrs.
    pub fn xattr_size(&self) -> u64 {
        if self.shared.is_empty() && self.inline_xattrs.is_empty() {
            return 0;
        }
        size_of::<XattrIbodyHeader>() as u64
            + 4 * self.shared.len() as u64
            + self.inline_xattrs.iter().map(Xattr::size).sum::<u64>()
    }

    /// Bytes of the tail that live in the data area's last block (or inline).
    pub fn tail(&self, blk: u64) -> u64 {
        self.size % blk
    }

    pub fn layout(&self, blk: u64) -> u16 {
        match &self.data {
            Data::Compressed(_) => LAYOUT_COMPRESSION_FULL,
            Data::Flat { inline_tail: true } if self.tail(blk) > 0 => LAYOUT_FLAT_INLINE,
            Data::Flat { .. } => LAYOUT_FLAT_PLAIN,
        }
    }

    /// Where the index area of a compressed inode starts (relative to the inode).
    pub fn index_offset(&self) -> u64 {
        (self.inode_size() + self.xattr_size()).next_multiple_of(8) + Z_FULL_INDEX_SKIP
    }
}

pub struct Plan<'a> {
    pub nodes: Vec<Node<'a>>,
    /// Shared xattrs and their byte offsets (xattr_blkaddr is 0, so id = offset / 4).
    pub shared: Vec<(Xattr<'a>, u64)>,
    /// Directory contents (dirent blocks, the last one cut to its used length), by node.
    pub dirs: Vec<Option<Vec<u8>>>,
    /// First block of the data area; the metadata area is everything before it.
    pub data_start: u64,
    pub blocks: u64,
    pub any_compressed: bool,
    /// lzma is in use: the superblock is followed by its configuration record.
    pub lzma_cfgs: bool,
    pub build_time: u64,
}

fn err(msg: String) -> WriteError {
    WriteError::Erofs(msg)
}

pub fn plan<'a>(
    t: &'a Tree,
    opts: &Options,
    files: &Blocks<super::codec::ErofsCodec>,
) -> Result<Plan<'a>, WriteError> {
    let blk = u64::from(opts.block_size);
    let mut nodes = collect(t, opts)?;
    let shared = share_xattrs(&mut nodes);

    // Compression is the only costly step: run it in parallel, collect in node order.
    let compressed: Vec<Option<Compressed>> = if opts.compression == Compression::None {
        Vec::new()
    } else {
        nodes
            .par_iter()
            .map(|n| match n.body {
                // Files of one block or less stay flat: not worth a cache entry.
                Body::File(data) if data.len() as u64 > blk => {
                    files.compress(data).and_then(|z| super::codec::decode(&z))
                }
                _ => None,
            })
            .collect()
    };
    let mut any_compressed = false;
    for (node, c) in nodes.iter_mut().zip(compressed) {
        if let Some(c) = c {
            node.data = Data::Compressed(c);
            any_compressed = true;
        }
    }

    let dirs_sizes: Vec<Option<u64>> = nodes
        .iter()
        .map(|n| match &n.body {
            Body::Dir(children) => Some(pack_dirents(children, blk).1),
            _ => None,
        })
        .collect();
    for (node, dir_size) in nodes.iter_mut().zip(&dirs_sizes) {
        node.size = match (&node.body, dir_size) {
            (Body::File(d), _) => d.len() as u64,
            (Body::Symlink(s), _) => s.len() as u64,
            (Body::Dir(_), Some(size)) => *size,
            _ => 0,
        };
        node.extended = node.uid > u16::MAX.into()
            || node.gid > u16::MAX.into()
            || node.nlink > u16::MAX.into()
            || node.size > u32::MAX.into()
            || node.mtime != opts.mkfs_time;
        if node.xattr_size() > 12 + 4 * (u64::from(u16::MAX) - 1) {
            return Err(err(format!("{}: too many xattrs for one inode", node.path)));
        }
        let head = node.inode_size() + node.xattr_size();
        if let Data::Flat { inline_tail } = &mut node.data {
            let tail = node.size % blk;
            *inline_tail = tail > 0 && head + tail <= blk;
        }
    }

    // Metadata: the root first (its nid must fit the superblock's 16 bits), then the shared
    // xattrs, then every other inode in tree order, each into the fullest block it fits.
    let lzma_cfgs = any_compressed && matches!(opts.compression, Compression::Lzma(_));
    let mut start = SUPER_OFFSET + size_of::<SuperBlock>();
    if lzma_cfgs {
        start += 2 + size_of::<LzmaCfgs>(); // length, then the record
    }
    let mut meta = MetaAlloc::new(blk, start as u64);
    nodes[0].pos = meta.alloc(record_size(&nodes[0], blk), INODE_SLOT);
    let shared_at: Vec<(Xattr, u64)> = shared
        .into_iter()
        .map(|x| (x, meta.alloc(x.size(), 4))) // ids count 4-byte units
        .collect();
    for node in nodes.iter_mut().skip(1) {
        node.pos = meta.alloc(record_size(node, blk), INODE_SLOT);
    }
    if nodes[0].nid() > u64::from(u16::MAX) {
        return Err(err("the root inode lies beyond nid 65535".into()));
    }
    if shared_at.iter().any(|(_, at)| at / 4 > u64::from(u32::MAX)) {
        return Err(err("the shared xattr area is too large".into()));
    }

    // Data blocks, in inode order.
    let data_start = meta.blocks();
    let mut next = data_start;
    for node in &mut nodes {
        node.data_blocks = match &node.data {
            Data::Compressed(c) => c.block_count(blk as usize),
            Data::Flat { inline_tail } => {
                node.size / blk + u64::from(node.size % blk > 0 && !inline_tail)
            }
        };
        if node.data_blocks > 0 {
            node.blkaddr =
                u32::try_from(next).map_err(|_| err("the image exceeds 2^32 blocks".into()))?;
            next += node.data_blocks;
        }
    }
    if next > u64::from(u32::MAX) {
        return Err(err("the image exceeds 2^32 blocks".into()));
    }

    let dirs = nodes
        .iter()
        .map(|n| match &n.body {
            Body::Dir(children) => Some(dir_content(children, &nodes, blk)),
            _ => None,
        })
        .collect();
    Ok(Plan {
        nodes,
        shared: shared_at,
        dirs,
        data_start,
        blocks: next,
        any_compressed,
        lzma_cfgs,
        build_time: opts.mkfs_time,
    })
}

/// The bytes an inode takes in the metadata area: inode and xattrs, then the inline tail or
/// the compression map header and indexes.
fn record_size(node: &Node, blk: u64) -> u64 {
    let head = node.inode_size() + node.xattr_size();
    match &node.data {
        Data::Compressed(_) => {
            node.index_offset() + node.size.div_ceil(blk) * size_of::<LclusterIndex>() as u64
        }
        Data::Flat { inline_tail: true } => head + node.tail(blk),
        Data::Flat { .. } => head,
    }
}

/// Hands out metadata space. A record that fits in a block never straddles one (readers take
/// inline data and xattr entries from a single block) and goes to the fullest block with room
/// for it (best fit), so the gaps tail packing leaves behind get filled; a larger record starts
/// a fresh block. Ties go to the lower block, so the layout is deterministic.
struct MetaAlloc {
    blk: u64,
    /// (free bytes at the end of the block, block), for every block with room left.
    free: BTreeSet<(u64, u64)>,
    next_block: u64,
}

impl MetaAlloc {
    /// Metadata starts `start` bytes into block 0 (after the superblock).
    fn new(blk: u64, start: u64) -> MetaAlloc {
        MetaAlloc {
            blk,
            free: BTreeSet::from([(blk - start, 0)]),
            next_block: 1,
        }
    }

    fn alloc(&mut self, size: u64, align: u64) -> u64 {
        let blk = self.blk;
        if size <= blk {
            let fits = |&&(free, b): &&(u64, u64)| {
                let end = (b + 1) * blk;
                (end - free).next_multiple_of(align) + size <= end
            };
            if let Some(&(free, b)) = self.free.range((size, 0)..).find(fits) {
                self.free.remove(&(free, b));
                let pos = ((b + 1) * blk - free).next_multiple_of(align);
                self.release(b, pos + size);
                return pos;
            }
        }
        let pos = self.next_block * blk;
        self.next_block = (pos + size).div_ceil(blk);
        self.release(self.next_block - 1, pos + size);
        pos
    }

    /// Records the room left in block `b` when its used part ends at byte `end`.
    fn release(&mut self, b: u64, end: u64) {
        let free = (b + 1) * self.blk - end;
        if free > 0 {
            self.free.insert((free, b));
        }
    }

    /// Blocks the metadata area spans.
    fn blocks(&self) -> u64 {
        self.next_block
    }
}

/// Splits a directory's sorted entries into blocks: each block's entry range and the directory
/// size (full blocks plus the used part of the last one).
pub fn pack_dirents(children: &[Child], blk: u64) -> (Vec<Range<usize>>, u64) {
    let mut groups = Vec::new();
    let (mut start, mut used) = (0, 0);
    for (i, c) in children.iter().enumerate() {
        let need = (size_of::<Dirent>() + c.name.len()) as u64;
        if used + need > blk {
            groups.push(start..i);
            start = i;
            used = 0;
        }
        used += need;
    }
    groups.push(start..children.len());
    let size = (groups.len() as u64 - 1) * blk + used;
    (groups, size)
}

/// The directory's bytes: per block, dirents then names; blocks before the last padded with
/// zeros (readers take a name to run to the next name's offset, or to the first zero).
fn dir_content(children: &[Child], nodes: &[Node], blk: u64) -> Vec<u8> {
    use zerocopy::IntoBytes;
    use zerocopy::little_endian::{U16, U64};
    let (groups, size) = pack_dirents(children, blk);
    let mut out = Vec::with_capacity(size as usize);
    for (g, range) in groups.iter().enumerate() {
        let entries = &children[range.clone()];
        let mut nameoff = entries.len() * size_of::<Dirent>();
        for c in entries {
            let d = Dirent {
                nid: U64::new(nodes[c.node].nid()),
                nameoff: U16::new(nameoff as u16),
                file_type: c.file_type,
                reserved: 0,
            };
            out.extend_from_slice(d.as_bytes());
            nameoff += c.name.len();
        }
        for c in entries {
            out.extend_from_slice(c.name);
        }
        if g + 1 < groups.len() {
            out.resize((g + 1) * blk as usize, 0);
        }
    }
    debug_assert_eq!(out.len() as u64, size);
    out
}

/// Inodes from the shared inode graph ([`inodes::collect`]: the root first, hard links as one
/// inode), with their erofs forms; directories list `.` and `..` too.
fn collect<'a>(t: &'a Tree, opts: &Options) -> Result<Vec<Node<'a>>, WriteError> {
    let graph = inodes::collect(t).map_err(err)?;
    let root_mtime = t
        .entries
        .values()
        .map(|e| e.mtime)
        .max()
        .unwrap_or(opts.mkfs_time);
    let mut nodes = Vec::with_capacity(graph.len());
    for n in &graph {
        let mut node = match n.entry {
            None => Node::new("", S_IFDIR | 0o755, 0, 0, root_mtime, Body::Dir(Vec::new())),
            Some(e) => node_for(n.path, e)?,
        };
        node.nlink = n.nlink;
        nodes.push(node);
    }
    for (i, n) in graph.iter().enumerate() {
        if !n.is_dir() {
            continue;
        }
        let mut children = Vec::with_capacity(n.children.len() + 2);
        for &(name, c) in &n.children {
            check_name(n.path, name)?;
            children.push(Child {
                name,
                node: c,
                file_type: file_type(nodes[c].mode),
            });
        }
        children.push(Child {
            name: b".",
            node: i,
            file_type: FT_DIR,
        });
        children.push(Child {
            name: b"..",
            node: n.parent,
            file_type: FT_DIR,
        });
        children.sort_by(|a, b| a.name.cmp(b.name));
        nodes[i].body = Body::Dir(children);
    }
    Ok(nodes)
}

/// A name an erofs directory can hold: at most [`NAME_LEN_MAX`] bytes, no zero byte.
fn check_name(dir: &str, name: &[u8]) -> Result<(), WriteError> {
    let path = || {
        let name = String::from_utf8_lossy(name);
        if dir.is_empty() {
            name.into_owned()
        } else {
            format!("{dir}/{name}")
        }
    };
    if name.len() > NAME_LEN_MAX {
        return Err(err(format!(
            "{}: name longer than {NAME_LEN_MAX} bytes",
            path()
        )));
    }
    if name.contains(&0) {
        // readers end the last name of a directory block at the first zero byte
        return Err(err(format!("{:?}: name contains a zero byte", path())));
    }
    Ok(())
}

impl<'a> Node<'a> {
    fn new(path: &'a str, mode: u16, uid: u32, gid: u32, mtime: u64, body: Body<'a>) -> Node<'a> {
        Node {
            path,
            mode,
            uid,
            gid,
            mtime,
            nlink: 1,
            body,
            xattrs: Vec::new(),
            shared: Vec::new(),
            inline_xattrs: Vec::new(),
            extended: false,
            size: 0,
            data: Data::Flat { inline_tail: false },
            pos: 0,
            blkaddr: 0,
            data_blocks: 0,
        }
    }
}

fn node_for<'a>(path: &'a str, e: &'a Entry) -> Result<Node<'a>, WriteError> {
    let (ifmt, body) = match &e.kind {
        Kind::Dir => (S_IFDIR, Body::Dir(Vec::new())),
        Kind::File(data) => (S_IFREG, Body::File(data.as_slice())),
        Kind::Symlink(target) => {
            if target.len() >= 4096 {
                return Err(err(format!(
                    "{path}: symlink target longer than 4095 bytes"
                )));
            }
            (S_IFLNK, Body::Symlink(target.as_bytes()))
        }
        Kind::CharDevice { major, minor } => (S_IFCHR, Body::Device(encode_dev(*major, *minor))),
        Kind::BlockDevice { major, minor } => (S_IFBLK, Body::Device(encode_dev(*major, *minor))),
        Kind::Fifo => (S_IFIFO, Body::Special),
        Kind::Socket => (S_IFSOCK, Body::Special),
    };
    let mode = ifmt | (e.mode & 0o7777) as u16;
    let mut node = Node::new(path, mode, e.uid, e.gid, e.mtime, body);
    for (name, value) in &e.xattrs {
        let (prefix, index) = XATTR_PREFIXES
            .iter()
            .find(|(prefix, _)| name.starts_with(prefix))
            .ok_or_else(|| err(format!("{path}: xattr {name} has no EROFS name prefix")))?;
        let suffix = &name.as_bytes()[prefix.len()..];
        if suffix.len() > NAME_LEN_MAX || value.len() > usize::from(u16::MAX) {
            return Err(err(format!("{path}: xattr {name} is too long")));
        }
        node.xattrs.push(Xattr {
            index: *index,
            suffix,
            value,
        });
    }
    node.xattrs.sort();
    Ok(node)
}

fn file_type(mode: u16) -> u8 {
    match mode & 0o170000 {
        S_IFREG => FT_REG_FILE,
        S_IFDIR => FT_DIR,
        S_IFCHR => FT_CHRDEV,
        S_IFBLK => FT_BLKDEV,
        S_IFIFO => FT_FIFO,
        S_IFSOCK => FT_SOCK,
        S_IFLNK => FT_SYMLINK,
        _ => 0,
    }
}

/// Moves xattrs that several inodes carry (same name, same value) to the shared area; returns
/// that area's entries in a stable order.
fn share_xattrs<'a>(nodes: &mut [Node<'a>]) -> Vec<Xattr<'a>> {
    let mut counts: BTreeMap<Xattr<'a>, usize> = BTreeMap::new();
    for n in nodes.iter() {
        for x in &n.xattrs {
            *counts.entry(*x).or_default() += 1;
        }
    }
    let shared: Vec<Xattr<'a>> = counts
        .into_iter()
        .filter(|&(_, c)| c >= 2)
        .map(|(x, _)| x)
        .collect();
    let ids: BTreeMap<Xattr<'a>, usize> = shared.iter().enumerate().map(|(i, x)| (*x, i)).collect();
    for n in nodes.iter_mut() {
        for x in &n.xattrs {
            match ids.get(x) {
                Some(&id) if n.shared.len() < SHARED_XATTRS_MAX => n.shared.push(id),
                _ => n.inline_xattrs.push(*x),
            }
        }
    }
    shared
}
