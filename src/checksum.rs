//! Checksums as rpm-md names them (`sha256`, `sha1`, `sha512`, ...).

use sha2::Digest;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Algo {
    Sha1,
    Sha256,
    Sha512,
}

impl Algo {
    pub fn from_name(name: &str) -> Option<Algo> {
        Some(match name {
            "sha" | "sha1" => Algo::Sha1,
            "sha256" => Algo::Sha256,
            "sha512" => Algo::Sha512,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Algo::Sha1 => "sha1",
            Algo::Sha256 => "sha256",
            Algo::Sha512 => "sha512",
        }
    }

    pub fn hasher(self) -> Hasher {
        match self {
            Algo::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            Algo::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algo::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn digest_hex(self, data: &[u8]) -> String {
        let mut h = self.hasher();
        h.update(data);
        h.finish_hex()
    }
}

/// An incremental hash of one of the supported algorithms.
pub enum Hasher {
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish_hex(self) -> String {
        match self {
            Hasher::Sha1(h) => hex::encode(h.finalize()),
            Hasher::Sha256(h) => hex::encode(h.finalize()),
            Hasher::Sha512(h) => hex::encode(h.finalize()),
        }
    }
}

/// An expected digest, as given by signed-over metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Checksum {
    pub algo: Algo,
    pub hex: String,
}

impl Checksum {
    pub fn new(algo_name: &str, hex: &str) -> Option<Checksum> {
        let algo = Algo::from_name(algo_name)?;
        Some(Checksum {
            algo,
            hex: hex.trim().to_ascii_lowercase(),
        })
    }

    pub fn matches(&self, data: &[u8]) -> bool {
        self.algo.digest_hex(data) == self.hex
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo.name(), self.hex)
    }
}
