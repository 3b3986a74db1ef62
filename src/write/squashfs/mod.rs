//! squashfs 4.0 images, written by our own code (backhand's writer kept no xattrs, no hard links
//! and compressed on one thread).
//!
//! What mksquashfs does by default, so images come out as small: data blocks compressed in
//! parallel (rayon) and written in tree order; the tails of files, and small files whole, packed
//! into fragment blocks in tree order ("tail packing", mksquashfs `-tailends`); files with the
//! same content as an earlier one share its blocks and fragment; all-zero blocks stored as
//! sparse; inode, directory, fragment, export (NFS), id and xattr tables in 8 KiB compressed
//! metadata blocks; directory indexes for long directories; xattr sets stored once and shared by
//! id. Hard links (one `Arc` in the tree) are one inode with several names. Every file type is
//! written: regular, directory, symlink, block and character device, fifo, socket.
//!
//! Reproducible: compression runs in parallel but results are collected in tree order, and
//! nothing depends on thread count, hash order or the clock. mtimes are clamped to
//! [`Options::epoch`] (SOURCE_DATE_EPOCH), which is also the superblock time.

mod codec;
mod compress;
mod meta;

pub use compress::Compression;

use super::WriteError;
use super::blocks::{BlockCache, BlockStats, Blocks};
use super::inodes::{self, Inode, encode_dev};
use crate::tree::Kind;
use crate::tree::Tree;
use meta::{Meta, write_table};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, SeekFrom, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    pub compression: Compression,
    /// Data block size: a power of two from 4 KiB to 1 MiB.
    pub block_size: u32,
    /// SOURCE_DATE_EPOCH: the superblock's time, and no mtime is later. Without it the
    /// superblock carries the newest mtime of the tree.
    pub epoch: Option<u32>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            compression: Compression::Zstd(15),
            block_size: 128 * 1024,
            epoch: None,
        }
    }
}

const SUPERBLOCK_SIZE: u64 = 96;
const MAGIC: u32 = 0x7371_7368;
const INVALID_FRAG: u32 = 0xffff_ffff;
const INVALID_XATTR: u32 = 0xffff_ffff;
const INVALID_TABLE: u64 = u64::MAX;
/// Set in a data block's size when the block is stored uncompressed.
const BLOCK_UNCOMPRESSED: u32 = 1 << 24;
const NAME_LEN_MAX: usize = 256;

// Superblock flags (squashfs_fs.h).
const FLAG_ALWAYS_FRAGMENTS: u16 = 1 << 5;
const FLAG_DUPLICATES: u16 = 1 << 6;
const FLAG_EXPORTABLE: u16 = 1 << 7;
const FLAG_COMPRESSOR_OPTIONS: u16 = 1 << 10;

// Inode types; directory entries carry the basic one.
const DIR: u16 = 1;
const REG: u16 = 2;
const SYMLINK: u16 = 3;
const BLKDEV: u16 = 4;
const CHRDEV: u16 = 5;
const FIFO: u16 = 6;
const SOCKET: u16 = 7;
const EXTENDED: u16 = 7; // LDIR = DIR + 7, LREG = REG + 7, ...

fn err(msg: String) -> WriteError {
    WriteError::Squashfs(msg)
}

fn io_error(e: std::io::Error) -> WriteError {
    WriteError::Io {
        path: "squashfs image".into(),
        source: e,
    }
}

/// Writes `t` as a squashfs image into `out` from its current position, with blocks from
/// `cache` when it holds them; returns the image size and the block counts.
pub fn write(
    t: &Tree,
    opts: &Options,
    cache: Option<&BlockCache>,
    out: &mut std::fs::File,
) -> Result<(u64, BlockStats), WriteError> {
    super::buffered(out, "squashfs image", |w| write_cached(t, opts, cache, w))
}

/// Writes `t` as a squashfs image into any seekable writer from its current position; returns
/// the image size (padded to 4 KiB, as mksquashfs pads), and leaves the writer at its end.
pub fn write_to(t: &Tree, opts: &Options, w: &mut (impl Write + Seek)) -> Result<u64, WriteError> {
    write_cached(t, opts, None, w).map(|(size, _)| size)
}

/// [`write_to`], taking data and fragment blocks from `cache` when it holds them (and storing
/// those it did not): the same bytes, and how many blocks came from the cache.
pub fn write_cached(
    t: &Tree,
    opts: &Options,
    cache: Option<&BlockCache>,
    w: &mut (impl Write + Seek),
) -> Result<(u64, BlockStats), WriteError> {
    check_options(opts)?;
    let codec = codec::SquashfsCodec {
        compression: opts.compression,
        block_size: opts.block_size,
    };
    let compressor = Blocks::new(&codec, cache, opts.block_size as usize);
    let base = w.stream_position().map_err(io_error)?;
    let nodes = inodes::collect(t).map_err(err)?;
    let mut out = Out { w, pos: 0 };
    out.put(&[0u8; SUPERBLOCK_SIZE as usize])?;
    let comp_opts = opts.compression.options();
    if let Some(o) = &comp_opts {
        out.put(&(o.len() as u16 | meta::UNCOMPRESSED).to_le_bytes())?;
        out.put(o)?;
    }

    let data = write_data(&nodes, opts, &compressor, &mut out)?;
    tracing::debug!(
        inodes = nodes.len(),
        fragments = data.fragments.len(),
        "squashfs data written"
    );

    let mtime_limit = opts.epoch.unwrap_or(u32::MAX);
    let newest = t.entries.values().map(|e| e.mtime).max().unwrap_or(0);
    let newest = newest.min(u64::from(mtime_limit)) as u32;
    let mut tables = Tables::new(opts, &nodes, newest);
    tables.emit(&nodes, &data)?;
    let Tables {
        mut inode_table,
        mut dir_table,
        ids,
        mut xattr_kv,
        xattr_ids,
        refs,
        number,
        ..
    } = tables;
    let c = opts.compression;

    let inode_table_start = out.pos;
    out.put(&inode_table.finish())?;
    let directory_table_start = out.pos;
    out.put(&dir_table.finish())?;
    let mut frag_entries = Vec::with_capacity(data.fragments.len() * 16);
    for &(start, size) in &data.fragments {
        frag_entries.extend_from_slice(&start.to_le_bytes());
        frag_entries.extend_from_slice(&size.to_le_bytes());
        frag_entries.extend_from_slice(&0u32.to_le_bytes());
    }
    let fragment_table_start = write_table(&mut out, c, &frag_entries)?;
    let mut exports = vec![0u64; nodes.len()];
    for (i, r) in refs.iter().enumerate() {
        exports[number[i] as usize - 1] = *r;
    }
    let exports: Vec<u8> = exports.iter().flat_map(|r| r.to_le_bytes()).collect();
    let lookup_table_start = write_table(&mut out, c, &exports)?;
    let id_bytes: Vec<u8> = ids.list.iter().flat_map(|i| i.to_le_bytes()).collect();
    let id_table_start = write_table(&mut out, c, &id_bytes)?;
    let xattr_id_table_start = if xattr_ids.is_empty() {
        INVALID_TABLE
    } else {
        let kv_start = out.pos;
        out.put(&xattr_kv.finish())?;
        let count = xattr_ids.len() / 16;
        let mut m = Meta::new(c);
        m.push(&xattr_ids);
        let id_blocks = out.pos;
        let bytes = m.finish();
        let starts = m.block_starts();
        out.put(&bytes)?;
        let header = out.pos;
        out.put(&kv_start.to_le_bytes())?;
        out.put(&(count as u32).to_le_bytes())?;
        out.put(&0u32.to_le_bytes())?;
        for s in starts {
            out.put(&(id_blocks + s).to_le_bytes())?;
        }
        header
    };
    let bytes_used = out.pos;
    let padded = bytes_used.next_multiple_of(4096);
    out.put(&vec![0u8; (padded - bytes_used) as usize])?;

    let mut flags = FLAG_ALWAYS_FRAGMENTS | FLAG_DUPLICATES | FLAG_EXPORTABLE;
    if comp_opts.is_some() {
        flags |= FLAG_COMPRESSOR_OPTIONS;
    }
    let mut sb = Vec::with_capacity(SUPERBLOCK_SIZE as usize);
    sb.extend_from_slice(&MAGIC.to_le_bytes());
    sb.extend_from_slice(&(nodes.len() as u32).to_le_bytes());
    sb.extend_from_slice(&opts.epoch.unwrap_or(newest).to_le_bytes());
    sb.extend_from_slice(&opts.block_size.to_le_bytes());
    sb.extend_from_slice(&(data.fragments.len() as u32).to_le_bytes());
    sb.extend_from_slice(&c.id().to_le_bytes());
    sb.extend_from_slice(&(opts.block_size.trailing_zeros() as u16).to_le_bytes());
    sb.extend_from_slice(&flags.to_le_bytes());
    sb.extend_from_slice(&(ids.list.len() as u16).to_le_bytes());
    sb.extend_from_slice(&4u16.to_le_bytes());
    sb.extend_from_slice(&0u16.to_le_bytes());
    sb.extend_from_slice(&refs[0].to_le_bytes());
    for v in [
        bytes_used,
        id_table_start,
        xattr_id_table_start,
        inode_table_start,
        directory_table_start,
        fragment_table_start,
        lookup_table_start,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    debug_assert_eq!(sb.len() as u64, SUPERBLOCK_SIZE);
    out.w.seek(SeekFrom::Start(base)).map_err(io_error)?;
    out.w.write_all(&sb).map_err(io_error)?;
    out.w
        .seek(SeekFrom::Start(base + padded))
        .map_err(io_error)?;
    Ok((padded, compressor.stats()))
}

fn check_options(opts: &Options) -> Result<(), WriteError> {
    if !opts.block_size.is_power_of_two() || !(4096..=1 << 20).contains(&opts.block_size) {
        return Err(err(format!(
            "block size {} is not a power of two from 4 KiB to 1 MiB",
            opts.block_size
        )));
    }
    opts.compression.check().map_err(err)
}

/// The image being written, and where the next byte lands.
pub(crate) struct Out<'w, W: Write> {
    w: &'w mut W,
    pos: u64,
}

impl<W: Write> Out<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.w.write_all(bytes).map_err(io_error)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }
}

/// Where a file's content went.
#[derive(Clone, Default)]
struct FileData {
    /// The first data block's byte offset.
    start: u64,
    /// One size per full block (0 = sparse, [`BLOCK_UNCOMPRESSED`] = stored).
    sizes: Vec<u32>,
    fragment: u32,
    offset: u32,
    /// Bytes in sparse blocks.
    sparse: u64,
}

struct Data {
    /// By node; for a duplicate, the data of the first file with that content.
    files: Vec<Option<FileData>>,
    /// (start, size word) of every fragment block.
    fragments: Vec<(u64, u32)>,
}

fn content<'a>(n: &Inode<'a>) -> Option<&'a [u8]> {
    match &n.entry?.kind {
        Kind::File(d) => Some(d.as_slice()),
        _ => None,
    }
}

/// For every file node, the first node with the same content (itself when it is the first).
fn duplicates(nodes: &[Inode]) -> Vec<usize> {
    let mut first: Vec<usize> = (0..nodes.len()).collect();
    let mut by_len: HashMap<usize, usize> = HashMap::new();
    for n in nodes {
        if let Some(d) = content(n).filter(|d| !d.is_empty()) {
            *by_len.entry(d.len()).or_default() += 1;
        }
    }
    let candidates: Vec<usize> = (0..nodes.len())
        .filter(|&i| content(&nodes[i]).is_some_and(|d| by_len.get(&d.len()) > Some(&1)))
        .collect();
    let hashes: Vec<u64> = candidates
        .par_iter()
        .map(|&i| {
            use std::hash::{DefaultHasher, Hasher};
            let mut h = DefaultHasher::new();
            h.write(content(&nodes[i]).expect("a file"));
            h.finish()
        })
        .collect();
    let mut seen: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
    for (&i, h) in candidates.iter().zip(hashes) {
        let d = content(&nodes[i]).expect("a file");
        let same = seen.entry((d.len(), h)).or_default();
        // The hash only groups; equal bytes decide.
        match same.iter().find(|&&j| content(&nodes[j]) == Some(d)) {
            Some(&j) => first[i] = j,
            None => same.push(i),
        }
    }
    first
}

/// One unit of compression work, in image order: a full block of a file, or a fragment block
/// made of tails.
enum Job<'a> {
    Block { node: usize, raw: &'a [u8] },
    Fragment(Vec<&'a [u8]>),
}

/// A job's result: the bytes to write and the size word the tables record (0 for a sparse
/// block, [`BLOCK_UNCOMPRESSED`] set for a stored one).
struct Packed<'a> {
    bytes: std::borrow::Cow<'a, [u8]>,
    word: u32,
}

/// Compresses one data or fragment block: every block of file content in the image goes
/// through here (and nothing else does). `None`: storing `raw` as it is takes less room.
fn compress_block(compressor: &Blocks<codec::SquashfsCodec>, raw: &[u8]) -> Option<Vec<u8>> {
    compressor.compress(raw)
}

fn pack<'a>(job: &Job<'a>, compressor: &Blocks<codec::SquashfsCodec>) -> Packed<'a> {
    use std::borrow::Cow;
    let (raw, sparse) = match job {
        Job::Block { raw, .. } => (Cow::Borrowed(*raw), raw.iter().all(|&x| x == 0)),
        Job::Fragment(tails) => (Cow::Owned(tails.concat()), false),
    };
    if sparse {
        return Packed {
            bytes: Cow::Borrowed(&[]),
            word: 0,
        };
    }
    match compress_block(compressor, &raw) {
        Some(z) => Packed {
            word: z.len() as u32,
            bytes: Cow::Owned(z),
        },
        None => Packed {
            word: raw.len() as u32 | BLOCK_UNCOMPRESSED,
            bytes: raw,
        },
    }
}

/// Writes every file's full blocks in node order, then the fragment blocks holding the tails
/// (also in node order). Fragments are planned from sizes alone, so one pipeline compresses
/// all blocks in parallel while the calling thread writes them in order.
fn write_data<W: Write>(
    nodes: &[Inode],
    opts: &Options,
    compressor: &Blocks<codec::SquashfsCodec>,
    out: &mut Out<W>,
) -> Result<Data, WriteError> {
    let bs = opts.block_size as usize;
    let first = duplicates(nodes);
    let mut files: Vec<Option<FileData>> = vec![None; nodes.len()];

    let mut jobs: Vec<Job> = Vec::new();
    // Tails into fragment blocks, filled in node order: (node, fragment, offset).
    let mut frags: Vec<Vec<&[u8]>> = Vec::new();
    let mut frag_fill = 0;
    for (i, n) in nodes.iter().enumerate() {
        let Some(d) = content(n) else { continue };
        if first[i] != i {
            continue;
        }
        let full = d.len() - d.len() % bs;
        jobs.extend(d[..full].chunks(bs).map(|raw| Job::Block { node: i, raw }));
        let f = files[i].insert(FileData {
            fragment: INVALID_FRAG,
            ..FileData::default()
        });
        let tail = &d[full..];
        if tail.is_empty() {
            continue;
        }
        if frags.is_empty() || frag_fill + tail.len() > bs {
            frags.push(Vec::new());
            frag_fill = 0;
        }
        f.fragment = (frags.len() - 1) as u32;
        f.offset = frag_fill as u32;
        frag_fill += tail.len();
        frags.last_mut().expect("pushed above").push(tail);
    }
    let frag_count = frags.len();
    jobs.extend(frags.into_iter().map(Job::Fragment));

    let full_blocks = jobs.len() - frag_count;
    let mut fragments = Vec::with_capacity(frag_count);
    let mut done = 0;
    let mut blocks_end = out.pos;
    super::ordered::for_each(
        &jobs,
        |job| pack(job, compressor),
        |p| {
            let start = out.pos;
            out.put(&p.bytes)?;
            match &jobs[done] {
                Job::Block { node, .. } => {
                    let f = files[*node].as_mut().expect("planned above");
                    if f.sizes.is_empty() {
                        f.start = start;
                    }
                    if p.word == 0 {
                        f.sparse += bs as u64;
                    }
                    f.sizes.push(p.word);
                }
                Job::Fragment(_) => fragments.push((start, p.word)),
            }
            done += 1;
            if done == full_blocks {
                blocks_end = out.pos;
            }
            Ok::<(), WriteError>(())
        },
    )?;
    for (i, f) in files.iter_mut().enumerate() {
        // A file without full blocks points where the data blocks end, as before.
        if let Some(f) = f.as_mut().filter(|f| f.sizes.is_empty() && first[i] == i) {
            f.start = blocks_end;
        }
    }
    for i in 0..nodes.len() {
        if first[i] != i {
            files[i] = files[first[i]].clone();
        }
    }
    Ok(Data { files, fragments })
}

/// uids and gids as the id table lists them, in order of first use.
#[derive(Default)]
struct Ids {
    list: Vec<u32>,
    index: HashMap<u32, u16>,
}

impl Ids {
    fn get(&mut self, id: u32) -> Result<u16, WriteError> {
        if let Some(&i) = self.index.get(&id) {
            return Ok(i);
        }
        let i = u16::try_from(self.list.len())
            .map_err(|_| err("more than 65536 distinct uids and gids".into()))?;
        self.list.push(id);
        self.index.insert(id, i);
        Ok(i)
    }
}

/// The metadata of the image, built inode by inode in post order (a directory after everything
/// in it, the root last), so every reference a record holds is known when it is written.
struct Tables<'a> {
    opts: &'a Options,
    inode_table: Meta,
    dir_table: Meta,
    ids: Ids,
    xattr_kv: Meta,
    /// xattr id records, 16 bytes each.
    xattr_ids: Vec<u8>,
    xattr_sets: HashMap<&'a BTreeMap<String, Vec<u8>>, u32>,
    /// Inode number (1-based) and inode reference by node.
    number: Vec<u32>,
    refs: Vec<u64>,
    post_order: Vec<usize>,
    /// The root's mtime (the newest in the tree, clamped).
    root_mtime: u32,
}

impl<'a> Tables<'a> {
    fn new(opts: &'a Options, nodes: &[Inode], root_mtime: u32) -> Tables<'a> {
        let post_order = post_order(nodes);
        let mut number = vec![0u32; nodes.len()];
        for (k, &i) in post_order.iter().enumerate() {
            number[i] = k as u32 + 1;
        }
        let c = opts.compression;
        Tables {
            opts,
            inode_table: Meta::new(c),
            dir_table: Meta::new(c),
            ids: Ids::default(),
            xattr_kv: Meta::new(c),
            xattr_ids: Vec::new(),
            xattr_sets: HashMap::new(),
            number,
            refs: vec![0; nodes.len()],
            post_order,
            root_mtime,
        }
    }

    fn emit(&mut self, nodes: &[Inode<'a>], data: &Data) -> Result<(), WriteError> {
        for k in 0..self.post_order.len() {
            let i = self.post_order[k];
            self.emit_one(nodes, i, data)?;
        }
        Ok(())
    }

    fn emit_one(&mut self, nodes: &[Inode<'a>], i: usize, data: &Data) -> Result<(), WriteError> {
        let n = &nodes[i];
        let path = if n.path.is_empty() { "/" } else { n.path };
        let (perm, uid, gid, mtime) = match n.entry {
            Some(e) => (
                e.mode & 0o7777,
                e.uid,
                e.gid,
                e.mtime.min(u64::from(self.opts.epoch.unwrap_or(u32::MAX))) as u32,
            ),
            None => (0o755, 0, 0, self.root_mtime),
        };
        let xattr = match n.entry {
            Some(e) if !e.xattrs.is_empty() => self.xattr_set(path, &e.xattrs)?,
            _ => INVALID_XATTR,
        };
        let has_xattr = xattr != INVALID_XATTR;
        let kind = basic_type(n);

        // The type-specific part, and whether the extended form is needed.
        let mut body = Vec::new();
        let extended;
        match n.entry.map(|e| &e.kind) {
            None | Some(Kind::Dir) => {
                let (listing, index) = self.listing(nodes, n, path)?;
                let (start, offset) = self.dir_table.pos();
                let mut index_blocks = Vec::with_capacity(index.len());
                let mut done = 0;
                for &(at, _) in &index {
                    self.dir_table.push(&listing[done..at]);
                    done = at;
                    index_blocks.push(self.dir_table.pos().0);
                }
                self.dir_table.push(&listing[done..]);
                let size = listing.len() as u64 + 3;
                let parent = if i == 0 {
                    nodes.len() as u32 + 1
                } else {
                    self.number[n.parent]
                };
                let start = u32::try_from(start)
                    .map_err(|_| err("the directory table exceeds 4 GiB".into()))?;
                extended = has_xattr || !index.is_empty() || size > 0xffff;
                if extended {
                    let size = u32::try_from(size)
                        .map_err(|_| err(format!("{path}: directory listing exceeds 4 GiB")))?;
                    put32(&mut body, n.nlink);
                    put32(&mut body, size);
                    put32(&mut body, start);
                    put32(&mut body, parent);
                    put16(&mut body, index.len() as u16);
                    put16(&mut body, offset);
                    put32(&mut body, xattr);
                    for ((at, name), block) in index.iter().zip(index_blocks) {
                        put32(&mut body, *at as u32);
                        put32(&mut body, block as u32);
                        put32(&mut body, name.len() as u32 - 1);
                        body.extend_from_slice(name);
                    }
                } else {
                    put32(&mut body, start);
                    put32(&mut body, n.nlink);
                    put16(&mut body, size as u16);
                    put16(&mut body, offset);
                    put32(&mut body, parent);
                }
            }
            Some(Kind::File(d)) => {
                let f = data.files[i].as_ref().expect("every file has data");
                let size = d.len() as u64;
                extended = n.nlink > 1
                    || has_xattr
                    || f.sparse > 0
                    || f.start > u64::from(u32::MAX)
                    || size > u64::from(u32::MAX);
                if extended {
                    put64(&mut body, f.start);
                    put64(&mut body, size);
                    put64(&mut body, f.sparse);
                    put32(&mut body, n.nlink);
                    put32(&mut body, f.fragment);
                    put32(&mut body, f.offset);
                    put32(&mut body, xattr);
                } else {
                    put32(&mut body, f.start as u32);
                    put32(&mut body, f.fragment);
                    put32(&mut body, f.offset);
                    put32(&mut body, size as u32);
                }
                for &s in &f.sizes {
                    put32(&mut body, s);
                }
            }
            Some(Kind::Symlink(target)) => {
                if target.is_empty() || target.len() > 65535 {
                    return Err(err(format!(
                        "{path}: symlink target must have 1 to 65535 bytes"
                    )));
                }
                extended = has_xattr;
                put32(&mut body, n.nlink);
                put32(&mut body, target.len() as u32);
                body.extend_from_slice(target.as_bytes());
                if extended {
                    put32(&mut body, xattr);
                }
            }
            Some(Kind::BlockDevice { major, minor } | Kind::CharDevice { major, minor }) => {
                extended = has_xattr;
                put32(&mut body, n.nlink);
                put32(&mut body, encode_dev(*major, *minor));
                if extended {
                    put32(&mut body, xattr);
                }
            }
            Some(Kind::Fifo | Kind::Socket) => {
                extended = has_xattr;
                put32(&mut body, n.nlink);
                if extended {
                    put32(&mut body, xattr);
                }
            }
        }
        let (block, offset) = self.inode_table.pos();
        self.refs[i] = (block << 16) | u64::from(offset);
        let mut head = Vec::with_capacity(16 + body.len());
        put16(&mut head, if extended { kind + EXTENDED } else { kind });
        // Permission bits only, as mksquashfs stores them (the type is the inode type).
        put16(&mut head, perm as u16);
        put16(&mut head, self.ids.get(uid)?);
        put16(&mut head, self.ids.get(gid)?);
        put32(&mut head, mtime);
        put32(&mut head, self.number[i]);
        head.extend_from_slice(&body);
        self.inode_table.push(&head);
        Ok(())
    }

    /// A directory's listing (headers and entries) and its index: (listing offset of a
    /// header, the header's first name) wherever the listing crossed another 8 KiB.
    fn listing(
        &self,
        nodes: &[Inode<'a>],
        n: &Inode<'a>,
        path: &str,
    ) -> Result<(Vec<u8>, DirIndex<'a>), WriteError> {
        struct Header {
            at: usize,
            count: u32,
            block: u32,
            base: u32,
        }
        let mut out = Vec::new();
        let mut index = Vec::new();
        let mut indexed_at = 0;
        let mut header: Option<Header> = None;
        let close = |out: &mut Vec<u8>, h: &Header| {
            out[h.at..h.at + 4].copy_from_slice(&(h.count - 1).to_le_bytes());
            out[h.at + 4..h.at + 8].copy_from_slice(&h.block.to_le_bytes());
            out[h.at + 8..h.at + 12].copy_from_slice(&h.base.to_le_bytes());
        };
        for &(name, c) in &n.children {
            if name.len() > NAME_LEN_MAX {
                return Err(err(format!(
                    "{path}/{}: name longer than {NAME_LEN_MAX} bytes",
                    String::from_utf8_lossy(name)
                )));
            }
            let r = self.refs[c];
            let block = (r >> 16) as u32;
            let number = self.number[c];
            let grows_past_block = out.len() + 8 + name.len() - indexed_at > meta::BLOCK;
            let split = match &header {
                None => true,
                Some(h) => {
                    let delta = i64::from(number) - i64::from(h.base);
                    h.count == 256
                        || h.block != block
                        || grows_past_block
                        || !(-32768..=32767).contains(&delta)
                }
            };
            if split {
                if let Some(h) = &header {
                    close(&mut out, h);
                    if grows_past_block {
                        index.push((out.len(), name));
                        indexed_at = out.len();
                    }
                }
                header = Some(Header {
                    at: out.len(),
                    count: 0,
                    block,
                    base: number,
                });
                out.extend_from_slice(&[0u8; 12]);
            }
            let h = header.as_mut().expect("set above");
            h.count += 1;
            put16(&mut out, (r & 0xffff) as u16);
            put16(
                &mut out,
                (i64::from(number) - i64::from(h.base)) as i16 as u16,
            );
            put16(&mut out, basic_type(&nodes[c]));
            put16(&mut out, name.len() as u16 - 1);
            out.extend_from_slice(name);
        }
        if let Some(h) = &header {
            close(&mut out, h);
        }
        Ok((out, index))
    }

    /// The id of an xattr set, storing the set the first time it is seen.
    fn xattr_set(
        &mut self,
        path: &str,
        set: &'a BTreeMap<String, Vec<u8>>,
    ) -> Result<u32, WriteError> {
        if let Some(&id) = self.xattr_sets.get(set) {
            return Ok(id);
        }
        let (block, offset) = self.xattr_kv.pos();
        let mut bytes = Vec::new();
        let mut size = 0u32;
        for (name, value) in set {
            let (prefix, kind) = [("user.", 0u16), ("trusted.", 1), ("security.", 2)]
                .into_iter()
                .find(|(p, _)| name.starts_with(p))
                .ok_or_else(|| {
                    err(format!(
                        "{path}: xattr {name} cannot be stored in squashfs (only user., trusted. and security.)"
                    ))
                })?;
            let suffix = &name[prefix.len()..];
            if suffix.is_empty() || suffix.len() > 0xffff || value.len() > u32::MAX as usize {
                return Err(err(format!("{path}: xattr {name} is empty or too long")));
            }
            put16(&mut bytes, kind);
            put16(&mut bytes, suffix.len() as u16);
            bytes.extend_from_slice(suffix.as_bytes());
            put32(&mut bytes, value.len() as u32);
            bytes.extend_from_slice(value);
            size += (name.len() + 1 + value.len()) as u32;
        }
        self.xattr_kv.push(&bytes);
        let id = (self.xattr_ids.len() / 16) as u32;
        put64(&mut self.xattr_ids, (block << 16) | u64::from(offset));
        put32(&mut self.xattr_ids, set.len() as u32);
        put32(&mut self.xattr_ids, size);
        self.xattr_sets.insert(set, id);
        Ok(id)
    }
}

/// Where a directory listing crossed another 8 KiB: (listing offset of a header, its first name).
type DirIndex<'a> = Vec<(usize, &'a [u8])>;

fn basic_type(n: &Inode) -> u16 {
    match n.entry.map(|e| &e.kind) {
        None | Some(Kind::Dir) => DIR,
        Some(Kind::File(_)) => REG,
        Some(Kind::Symlink(_)) => SYMLINK,
        Some(Kind::BlockDevice { .. }) => BLKDEV,
        Some(Kind::CharDevice { .. }) => CHRDEV,
        Some(Kind::Fifo) => FIFO,
        Some(Kind::Socket) => SOCKET,
    }
}

/// Nodes in the order their inodes are written: each directory's children (a subdirectory's
/// whole subtree first), then the directory; a hard-linked file at its first name.
fn post_order(nodes: &[Inode]) -> Vec<usize> {
    let mut order = Vec::with_capacity(nodes.len());
    let mut done = vec![false; nodes.len()];
    // (directory, next child to visit)
    let mut stack = vec![(0usize, 0usize)];
    while let Some((d, k)) = stack.pop() {
        if let Some(&(_, c)) = nodes[d].children.get(k) {
            stack.push((d, k + 1));
            if done[c] {
                continue;
            }
            if nodes[c].is_dir() {
                stack.push((c, 0));
            } else {
                done[c] = true;
                order.push(c);
            }
        } else {
            done[d] = true;
            order.push(d);
        }
    }
    order
}

fn put16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}
fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}
