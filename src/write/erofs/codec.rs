//! A file's compressed form ([`Compressed`]: extents and their pclusters) as the block cache
//! holds it ([`crate::write::blocks::Codec`]): one entry per file, checked by decoding every
//! extent (lz4, or MicroLZMA through liblzma) and comparing with the file.

use super::Compression;
use super::compress::{self, Compressed, Extent};
use crate::write::blocks::Codec;

pub struct ErofsCodec {
    pub compression: Compression,
    pub blk: usize,
}

/// Bytes of one serialized extent: start, len (u64), block (u32), raw (u8).
const EXTENT: usize = 21;

/// The extent count, the extents, then the pclusters.
pub fn encode(c: &Compressed) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + EXTENT * c.extents.len() + c.blocks.len());
    out.extend_from_slice(&(c.extents.len() as u32).to_le_bytes());
    for e in &c.extents {
        out.extend_from_slice(&e.start.to_le_bytes());
        out.extend_from_slice(&e.len.to_le_bytes());
        out.extend_from_slice(&e.block.to_le_bytes());
        out.push(u8::from(e.raw));
    }
    out.extend_from_slice(&c.blocks);
    out
}

pub fn decode(b: &[u8]) -> Option<Compressed> {
    let n = u32::from_le_bytes(b.get(..4)?.try_into().ok()?) as usize;
    let table = b.get(4..4 + n.checked_mul(EXTENT)?)?;
    let extents = table
        .chunks_exact(EXTENT)
        .map(|x| Extent {
            start: u64::from_le_bytes(x[..8].try_into().expect("8 bytes")),
            len: u64::from_le_bytes(x[8..16].try_into().expect("8 bytes")),
            block: u32::from_le_bytes(x[16..20].try_into().expect("4 bytes")),
            raw: x[20] != 0,
        })
        .collect();
    Some(Compressed {
        extents,
        blocks: b[4 + table.len()..].to_vec(),
    })
}

impl Codec for ErofsCodec {
    fn id(&self) -> String {
        format!("erofs {:?} block {}", self.compression, self.blk)
    }

    fn compress(&self, raw: &[u8]) -> Option<Vec<u8>> {
        compress::compress(raw, self.compression, self.blk).map(|c| encode(&c))
    }

    fn decompress(&self, packed: &[u8], raw_len: usize) -> Option<Vec<u8>> {
        let c = decode(packed)?;
        let blk = self.blk;
        if c.blocks.len() % blk != 0 {
            return None;
        }
        let mut out = Vec::with_capacity(raw_len);
        for e in &c.extents {
            let block = c.blocks.get(e.block as usize * blk..)?.get(..blk)?;
            let len = usize::try_from(e.len).ok()?;
            if e.start != out.len() as u64 || len > raw_len - out.len() {
                return None;
            }
            if e.raw {
                out.extend_from_slice(block.get(..len)?);
                continue;
            }
            // Right-aligned behind zero padding; neither stream starts with a zero byte.
            let stream = &block[block.iter().take_while(|&&b| b == 0).count()..];
            let start = out.len();
            out.resize(start + len, 0);
            let dst = &mut out[start..];
            let ok = match self.compression {
                Compression::Lz4 | Compression::Lz4hc(_) => {
                    lzzzz::lz4::decompress(stream, dst).ok() == Some(len)
                }
                Compression::Lzma(_) => super::lzma::decode(stream, dst),
                Compression::None => false,
            };
            if !ok {
                return None;
            }
        }
        (out.len() == raw_len).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_decodes_what_it_made() {
        let mut data: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("{} ", i % 1013).into_bytes())
            .collect();
        // An incompressible stretch makes raw extents too.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for b in &mut data[100_000..140_000] {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        for c in [
            Compression::Lz4,
            Compression::Lz4hc(12),
            Compression::Lzma(6),
        ] {
            let codec = ErofsCodec {
                compression: c,
                blk: 4096,
            };
            let z = codec.compress(&data).unwrap();
            assert!(decode(&z).unwrap().extents.iter().any(|e| e.raw), "{c:?}");
            assert_eq!(codec.decompress(&z, data.len()).as_deref(), Some(&data[..]));
            assert_eq!(codec.decompress(&z, data.len() - 1), None, "{c:?}");
            // The last byte of a compressed pcluster (streams are right-aligned).
            let d = decode(&z).unwrap();
            let e = d.extents.iter().find(|e| !e.raw).unwrap();
            let mut bad = z.clone();
            let at = 4 + EXTENT * d.extents.len() + (e.block as usize + 1) * 4096 - 1;
            bad[at] ^= 0x55;
            assert_ne!(
                codec.decompress(&bad, data.len()).as_deref(),
                Some(&data[..])
            );
            assert_eq!(codec.decompress(&z[..z.len() - 4096], data.len()), None);
        }
    }
}
