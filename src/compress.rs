//! Decompression of metadata files and RPM payloads, chosen by name.

use std::io::{self, Read};

/// A compression format seen in rpm-md metadata or RPM payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
    Xz,
    /// The legacy `.lzma` ("LZMA_Alone") format: rpm's `lzdio`, PAYLOADCOMPRESSOR `lzma`. Not
    /// an xz stream (no magic, no index), so the xz decoder refuses it.
    Lzma,
    Bzip2,
}

/// The memory limit rpm's own payload reader gives liblzma (rpmio's `lzopen_internal`): a
/// `.lzma` header names its dictionary size, and a larger one is refused rather than allocated.
const LZMA_MEMLIMIT: u64 = 100 << 20;

impl Codec {
    /// From a file name as repomd.xml's `location href` gives it.
    pub fn from_file_name(name: &str) -> Codec {
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gz") => Codec::Gzip,
            Some("zst") | Some("zstd") => Codec::Zstd,
            Some("xz") => Codec::Xz,
            Some("lzma") => Codec::Lzma,
            Some("bz2") => Codec::Bzip2,
            _ => Codec::None,
        }
    }

    /// From an RPM header's PAYLOADCOMPRESSOR.
    pub fn from_rpm_compressor(name: &str) -> Option<Codec> {
        Some(match name {
            "" | "none" | "identity" => Codec::None,
            "gzip" => Codec::Gzip,
            "zstd" => Codec::Zstd,
            "xz" => Codec::Xz,
            "lzma" => Codec::Lzma,
            "bzip2" => Codec::Bzip2,
            _ => return None,
        })
    }

    /// Wraps a reader so that it yields decompressed bytes.
    pub fn reader<'a, R: io::BufRead + Send + 'a>(
        self,
        r: R,
    ) -> io::Result<Box<dyn Read + Send + 'a>> {
        Ok(match self {
            Codec::None => Box::new(r),
            Codec::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
            Codec::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
            // liblzma's auto decoder (xz, concatenated streams, and `.lzma` too), as rpm reads
            // its `xzdio` payloads.
            Codec::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
            Codec::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(LZMA_MEMLIMIT)
                    .map_err(io::Error::other)?;
                Box::new(liblzma::bufread::XzDecoder::new_stream(r, stream))
            }
            Codec::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        })
    }

    /// Decompresses a whole buffer.
    pub fn decode_all(self, data: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(data.len() * 4);
        self.reader(data)?.read_to_end(&mut out)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lzma_alone(data: &[u8]) -> Vec<u8> {
        let opts = liblzma::stream::LzmaOptions::new_preset(6).unwrap();
        let stream = liblzma::stream::Stream::new_lzma_encoder(&opts).unwrap();
        let mut out = Vec::new();
        liblzma::bufread::XzEncoder::new_stream(data, stream)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn lzma_is_chosen_by_rpm_and_file_names() {
        assert_eq!(Codec::from_rpm_compressor("lzma"), Some(Codec::Lzma));
        assert_eq!(Codec::from_rpm_compressor("xz"), Some(Codec::Xz));
        assert_eq!(Codec::from_file_name("primary.xml.lzma"), Codec::Lzma);
        assert_eq!(Codec::from_file_name("primary.xml.xz"), Codec::Xz);
    }

    #[test]
    fn lzma_alone_round_trips_and_xz_is_not_lzma() {
        let data = b"an LZMA_Alone stream, as rpm's lzdio writes it\n".repeat(100);
        let packed = lzma_alone(&data);
        assert_eq!(packed[0], 0x5d);
        assert_eq!(Codec::Lzma.decode_all(&packed).unwrap(), data);
        let mut xz = Vec::new();
        liblzma::bufread::XzEncoder::new(&data[..], 6)
            .read_to_end(&mut xz)
            .unwrap();
        assert!(Codec::Lzma.decode_all(&xz).is_err());
    }

    #[test]
    fn lzma_dictionary_over_rpms_limit_is_refused() {
        let mut packed = lzma_alone(b"x");
        // The header's dictionary size (bytes 1..5, little-endian): 1 GiB.
        packed[1..5].copy_from_slice(&(1u32 << 30).to_le_bytes());
        let e = Codec::Lzma.decode_all(&packed).unwrap_err();
        assert!(e.to_string().contains("memory"), "{e}");
    }
}
