//! The squashfs compressors as the block cache sees them ([`crate::write::blocks::Codec`]): their
//! identity, and the decoders that check a cached block before it goes into an image.

use super::Compression;
use crate::write::blocks::Codec;
use std::io::Read;

/// A compressor with the block size it is given (xz sizes its dictionary by it).
pub struct SquashfsCodec {
    pub compression: Compression,
    pub block_size: u32,
}

impl Codec for SquashfsCodec {
    fn id(&self) -> String {
        format!("squashfs {:?} block {}", self.compression, self.block_size)
    }

    fn compress(&self, raw: &[u8]) -> Option<Vec<u8>> {
        self.compression.compress(raw, self.block_size)
    }

    fn decompress(&self, packed: &[u8], raw_len: usize) -> Option<Vec<u8>> {
        let read_all = |mut r: Box<dyn Read + '_>| {
            let mut out = Vec::with_capacity(raw_len);
            r.by_ref()
                .take(raw_len as u64 + 1)
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        };
        let out = match self.compression {
            Compression::Zstd(_) => zstd::bulk::decompress(packed, raw_len).ok()?,
            Compression::Gzip(_) => read_all(Box::new(flate2::read::ZlibDecoder::new(packed)))?,
            Compression::Xz(_) => read_all(Box::new(liblzma::read::XzDecoder::new(packed)))?,
            Compression::Lz4 | Compression::Lz4hc(_) => {
                let mut out = vec![0u8; raw_len];
                let n = lzzzz::lz4::decompress(packed, &mut out).ok()?;
                out.truncate(n);
                out
            }
        };
        (out.len() == raw_len).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_decodes_what_it_made() {
        let text = b"squashfs block cache ".repeat(3000);
        for c in [
            Compression::Gzip(9),
            Compression::Xz(6),
            Compression::Lz4,
            Compression::Lz4hc(12),
            Compression::Zstd(15),
        ] {
            let codec = SquashfsCodec {
                compression: c,
                block_size: 131072,
            };
            let z = codec.compress(&text).unwrap();
            assert_eq!(codec.decompress(&z, text.len()).as_deref(), Some(&text[..]));
            assert_eq!(codec.decompress(&z, text.len() - 1), None, "{c:?}");
            assert_eq!(
                codec.decompress(&z[..z.len() / 2], text.len()),
                None,
                "{c:?}"
            );
        }
    }
}
