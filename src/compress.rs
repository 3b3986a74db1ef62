//! Decompression of metadata files and RPM payloads, chosen by name.

use std::io::{self, Read};

/// A compression format seen in rpm-md metadata or RPM payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Zstd,
    Xz,
    Bzip2,
}

impl Codec {
    /// From a file name as repomd.xml's `location href` gives it.
    pub fn from_file_name(name: &str) -> Codec {
        match name.rsplit_once('.').map(|(_, ext)| ext) {
            Some("gz") => Codec::Gzip,
            Some("zst") | Some("zstd") => Codec::Zstd,
            Some("xz") | Some("lzma") => Codec::Xz,
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
            "xz" | "lzma" => Codec::Xz,
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
            Codec::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(r)),
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
