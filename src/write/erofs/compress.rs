//! Compressed extents with fixed-size output: each pcluster is one block holding as much of
//! the file as lz4, lz4hc or MicroLZMA fits into it ("destination size" compression), and the full lcluster
//! index array that maps the file's logical blocks onto those pclusters.
//!
//! Contract (what readers rely on): compressed data is right-aligned in its block behind zero
//! padding (`LZ4_0PADDING`; neither an lz4 nor a MicroLZMA stream starts with a zero byte) and decompresses to exactly the extent's length; a PLAIN extent holds
//! at most one block of raw bytes from block offset 0; every extent but the last is at least one
//! block long, so at most one extent starts in each lcluster.

use super::Compression;
use super::format::{
    LclusterIndex, Z_DELTA0_MAX, Z_LCLUSTER_HEAD, Z_LCLUSTER_NONHEAD, Z_LCLUSTER_PLAIN,
};
use zerocopy::little_endian::{U16, U32};

/// Caps the input one pcluster may cover; lz4 tops out near 255:1, so this only bites on runs of
/// zeros and bounds how much a random read must decompress.
const MAX_EXTENT: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Logical start in the file.
    pub start: u64,
    pub len: u64,
    /// Block of its pcluster, counted from the file's first pcluster.
    pub block: u32,
    /// Stored raw (PLAIN) rather than lz4.
    pub raw: bool,
}

#[derive(Debug)]
pub struct Compressed {
    pub extents: Vec<Extent>,
    /// The pclusters, one block each.
    pub blocks: Vec<u8>,
}

impl Compressed {
    pub fn block_count(&self, blk: usize) -> u64 {
        (self.blocks.len() / blk) as u64
    }
}

/// Compresses `data` into one-block pclusters; `None` when that would take more room than
/// storing it flat: full blocks plus a tail packed after the inode cost the file's size, the
/// compressed form costs its blocks plus about 24 + 8 bytes per block of index.
pub fn compress(data: &[u8], c: Compression, blk: usize) -> Option<Compressed> {
    if data.len() <= blk {
        return None;
    }
    let index_bytes = 24 + 8 * data.len().div_ceil(blk);
    let mut extents = Vec::new();
    let mut blocks = Vec::new();
    let mut dst = vec![0u8; blk];
    let mut off = 0;
    while off < data.len() {
        let rest = &data[off..];
        let block = (blocks.len() / blk) as u32;
        let packed = if rest.len() > blk {
            fill(&rest[..rest.len().min(MAX_EXTENT)], &mut dst, c)
        } else {
            None
        };
        match packed {
            // Only worth it when the block holds more than a block's worth of the file.
            Some((read, wrote)) if read > blk => {
                blocks.resize(blocks.len() + blk - wrote, 0);
                blocks.extend_from_slice(&dst[..wrote]);
                extents.push(Extent {
                    start: off as u64,
                    len: read as u64,
                    block,
                    raw: false,
                });
                off += read;
            }
            _ => {
                let n = rest.len().min(blk);
                blocks.extend_from_slice(&rest[..n]);
                blocks.resize(blocks.len() + blk - n, 0);
                extents.push(Extent {
                    start: off as u64,
                    len: n as u64,
                    block,
                    raw: true,
                });
                off += n;
            }
        }
        if blocks.len() + index_bytes >= data.len() {
            return None;
        }
    }
    Some(Compressed { extents, blocks })
}

/// Compresses as much of `src` as fits into `dst`: (bytes read, bytes written).
fn fill(src: &[u8], dst: &mut [u8], c: Compression) -> Option<(usize, usize)> {
    let r = match c {
        Compression::Lz4 => lzzzz::lz4::compress_fill(src, dst),
        Compression::Lz4hc(level) => lzzzz::lz4_hc::compress_fill(src, dst, level as i32),
        Compression::Lzma(level) => return super::lzma::compress_fill(src, dst, level),
        Compression::None => return None,
    };
    r.ok().filter(|&(read, wrote)| read > 0 && wrote > 0)
}

/// The full index array: one entry per lcluster (`blk` bytes of the file), pcluster addresses
/// made absolute with `first_block`.
pub fn indexes(c: &Compressed, size: u64, blk: u64, first_block: u32) -> Vec<LclusterIndex> {
    let lclusters = size.div_ceil(blk);
    let mut out = Vec::with_capacity(lclusters as usize);
    let mut next = 0; // the first extent that starts at or after this lcluster
    for lcn in 0..lclusters {
        let lstart = lcn * blk;
        while next < c.extents.len() && c.extents[next].start < lstart {
            next += 1;
        }
        let index = match c.extents.get(next) {
            // An extent starts in this lcluster.
            Some(e) if e.start < lstart + blk => LclusterIndex {
                di_advise: U16::new(if e.raw {
                    Z_LCLUSTER_PLAIN
                } else {
                    Z_LCLUSTER_HEAD
                }),
                di_clusterofs: U16::new((e.start - lstart) as u16),
                di_u: U32::new(first_block + e.block),
            },
            following => {
                // Extents are contiguous, so one covers the lcluster's start.
                let cur = &c.extents[next - 1];
                if following.is_none() && size < lstart + blk {
                    // The file ends inside this lcluster and nothing starts here: a PLAIN
                    // entry marks where the last extent ends.
                    LclusterIndex {
                        di_advise: U16::new(Z_LCLUSTER_PLAIN),
                        di_clusterofs: U16::new((size - lstart) as u16),
                        di_u: U32::new(0),
                    }
                } else {
                    let head = cur.start / blk;
                    let next_head = following.map_or(size, |n| n.start) / blk;
                    let d0 = (lcn - head).min(u64::from(Z_DELTA0_MAX)) as u32;
                    let d1 = (next_head - lcn).min(u64::from(u16::MAX)) as u32;
                    LclusterIndex {
                        di_advise: U16::new(Z_LCLUSTER_NONHEAD),
                        di_clusterofs: U16::new(0),
                        di_u: U32::new(d0 | (d1 << 16)),
                    }
                }
            }
        };
        out.push(index);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(ix: &[LclusterIndex]) -> Vec<(u16, u16, u32)> {
        ix.iter()
            .map(|i| (i.di_advise.get(), i.di_clusterofs.get(), i.di_u.get()))
            .collect()
    }

    #[test]
    fn incompressible_data_stays_flat() {
        let mut x = 1u32;
        let data: Vec<u8> = (0..20000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(compress(&data, Compression::Lz4, 4096).is_none());
        assert!(compress(&data[..4096], Compression::Lz4, 4096).is_none());
    }

    #[test]
    fn zeros_compress_into_few_extents_and_decompress() {
        let data = vec![0u8; 3 * 1024 * 1024 + 100];
        let c = compress(&data, Compression::Lz4hc(9), 4096).unwrap();
        let mut pos = 0;
        for e in &c.extents {
            assert_eq!(e.start, pos);
            pos += e.len;
            let block = &c.blocks[e.block as usize * 4096..][..4096];
            if e.raw {
                continue;
            }
            let lead = block.iter().take_while(|&&b| b == 0).count();
            let mut out = vec![1u8; e.len as usize];
            let n = lzzzz::lz4::decompress(&block[lead..], &mut out).unwrap();
            assert_eq!(n, e.len as usize);
            assert!(out.iter().all(|&b| b == 0));
        }
        assert_eq!(pos, data.len() as u64);
    }

    #[test]
    fn index_types_follow_the_extents() {
        // Extents: [0, 10000) compressed, [10000, 14096) raw, [14096, 14500) raw.
        let c = Compressed {
            extents: vec![
                Extent {
                    start: 0,
                    len: 10000,
                    block: 0,
                    raw: false,
                },
                Extent {
                    start: 10000,
                    len: 4096,
                    block: 1,
                    raw: true,
                },
                Extent {
                    start: 14096,
                    len: 404,
                    block: 2,
                    raw: true,
                },
            ],
            blocks: vec![0; 3 * 4096],
        };
        let ix = indexes(&c, 14500, 4096, 100);
        assert_eq!(
            kinds(&ix),
            vec![
                (Z_LCLUSTER_HEAD, 0, 100),
                (Z_LCLUSTER_NONHEAD, 0, 1 | (1 << 16)),
                (Z_LCLUSTER_PLAIN, 10000 - 8192, 101),
                (Z_LCLUSTER_PLAIN, 14096 - 12288, 102),
            ]
        );
        // The last extent ends inside the final lcluster where nothing starts.
        let c = Compressed {
            extents: vec![Extent {
                start: 0,
                len: 9000,
                block: 0,
                raw: false,
            }],
            blocks: vec![0; 4096],
        };
        assert_eq!(
            kinds(&indexes(&c, 9000, 4096, 7)),
            vec![
                (Z_LCLUSTER_HEAD, 0, 7),
                (Z_LCLUSTER_NONHEAD, 0, 1 | (1 << 16)),
                (Z_LCLUSTER_PLAIN, 9000 - 8192, 0),
            ]
        );
    }
}
