//! The four squashfs compressors, their superblock ids and the options record mksquashfs writes
//! after the superblock when a setting differs from the reader's default.

use std::cell::RefCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// zlib streams at a level from 1 to 9 (mksquashfs's default 9).
    Gzip(u32),
    /// xz streams (LZMA2, CRC32, dictionary = block size) at a preset from 0 to 9.
    Xz(u32),
    Lz4,
    /// lz4 in high-compression mode at a level from 1 to 12 (mksquashfs `-Xhc` uses 12).
    Lz4hc(u32),
    /// zstd at a level from 1 to 22 (mksquashfs's default 15).
    Zstd(u32),
}

impl Compression {
    /// The superblock's compression id.
    pub fn id(self) -> u16 {
        match self {
            Compression::Gzip(_) => 1,
            Compression::Xz(_) => 4,
            Compression::Lz4 | Compression::Lz4hc(_) => 5,
            Compression::Zstd(_) => 6,
        }
    }

    pub fn check(self) -> Result<(), String> {
        let (name, level, range) = match self {
            Compression::Gzip(l) => ("gzip", l, 1..=9),
            Compression::Xz(l) => ("xz", l, 0..=9),
            Compression::Lz4 => return Ok(()),
            Compression::Lz4hc(l) => ("lz4hc", l, 1..=12),
            Compression::Zstd(l) => ("zstd", l, 1..=22),
        };
        if range.contains(&level) {
            Ok(())
        } else {
            Err(format!(
                "{name} level {level} is out of range ({} to {})",
                range.start(),
                range.end()
            ))
        }
    }

    /// The compressor options record, when it differs from what readers assume without one
    /// (lz4 always has one: the kernel wants its format version).
    pub fn options(self) -> Option<Vec<u8>> {
        let mut o = Vec::new();
        match self {
            Compression::Gzip(9) | Compression::Zstd(15) | Compression::Xz(_) => return None,
            Compression::Gzip(level) => {
                o.extend_from_slice(&level.to_le_bytes());
                o.extend_from_slice(&15u16.to_le_bytes()); // window bits
                o.extend_from_slice(&0u16.to_le_bytes()); // strategies
            }
            Compression::Lz4 | Compression::Lz4hc(_) => {
                o.extend_from_slice(&1u32.to_le_bytes()); // LZ4_LEGACY format
                let hc = u32::from(matches!(self, Compression::Lz4hc(_)));
                o.extend_from_slice(&hc.to_le_bytes());
            }
            Compression::Zstd(level) => o.extend_from_slice(&level.to_le_bytes()),
        }
        Some(o)
    }

    /// Compresses one block; `None` when that would not make it smaller (it is then stored).
    pub fn compress(self, src: &[u8], block_size: u32) -> Option<Vec<u8>> {
        let out = match self {
            Compression::Zstd(level) => zstd_compress(src, level)?,
            Compression::Gzip(level) => {
                use std::io::Write;
                let mut e = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(src.len()),
                    flate2::Compression::new(level),
                );
                e.write_all(src).ok()?;
                e.finish().ok()?
            }
            Compression::Xz(level) => {
                use liblzma::stream::{Action, Check, Filters, LzmaOptions, Stream};
                let mut opts = LzmaOptions::new_preset(level).ok()?;
                opts.dict_size(block_size.max(8192));
                let mut filters = Filters::new();
                filters.lzma2(&opts);
                let mut s = Stream::new_stream_encoder(&filters, Check::Crc32).ok()?;
                let mut out = Vec::with_capacity(src.len() + src.len() / 2 + 128);
                match s.process_vec(src, &mut out, Action::Finish).ok()? {
                    liblzma::stream::Status::StreamEnd => out,
                    _ => return None,
                }
            }
            Compression::Lz4 | Compression::Lz4hc(_) => {
                let mut out = vec![0u8; src.len()];
                let n = match self {
                    Compression::Lz4hc(level) => {
                        lzzzz::lz4_hc::compress(src, &mut out, level as i32).ok()?
                    }
                    _ => lzzzz::lz4::compress(src, &mut out, lzzzz::lz4::ACC_LEVEL_DEFAULT).ok()?,
                };
                out.truncate(n);
                out
            }
        };
        (!out.is_empty() && out.len() < src.len()).then_some(out)
    }
}

thread_local! {
    /// One zstd context per thread: setting one up costs more than a small block.
    static ZSTD: RefCell<zstd::zstd_safe::CCtx<'static>> = RefCell::new(zstd::zstd_safe::CCtx::create());
}

/// `ZSTD_compressCCtx`, as mksquashfs calls it: zstd picks its parameters for the block's size
/// (through `ZSTD_compress2`, as `zstd::bulk` does, it chose those for an unknown size and
/// blocks came out up to 45% larger).
fn zstd_compress(src: &[u8], level: u32) -> Option<Vec<u8>> {
    ZSTD.with(|cctx| {
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(src.len()));
        cctx.borrow_mut()
            .compress(&mut out, src, level as i32)
            .ok()?;
        Some(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_shrinks_text_and_leaves_noise() {
        let text = b"squashfs ".repeat(2000);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        for c in [
            Compression::Gzip(9),
            Compression::Xz(6),
            Compression::Lz4,
            Compression::Lz4hc(12),
            Compression::Zstd(15),
        ] {
            assert!(c.compress(&text, 131072).unwrap().len() < text.len() / 10);
            assert!(c.compress(&noise, 131072).is_none(), "{c:?}");
        }
        assert!(Compression::Zstd(23).check().is_err());
        assert!(Compression::Gzip(0).check().is_err());
    }
}
