//! dm-verity hash trees in the format `veritysetup format` writes (hash type 1, sha256,
//! 4096-byte blocks, a superblock at the start of the hash area).
//!
//! Layout of the hash area: the 512-byte superblock padded to one hash block, then the tree with
//! its top level first, as the kernel and cryptsetup expect.

use rayon::prelude::*;
use sha2::{Digest, Sha256};

pub const BLOCK: usize = 4096;
const DIGEST: usize = 32;
const PER_BLOCK: usize = BLOCK / DIGEST;
const SB_SIZE: usize = 512;

/// The on-disk verity superblock (`struct verity_sb` in cryptsetup), 512 bytes little-endian.
struct Superblock<'a> {
    uuid: [u8; 16],
    data_blocks: u64,
    salt: &'a [u8],
}

impl Superblock<'_> {
    fn bytes(&self) -> [u8; SB_SIZE] {
        let mut b = [0u8; SB_SIZE];
        b[0..8].copy_from_slice(b"verity\0\0");
        b[8..12].copy_from_slice(&1u32.to_le_bytes()); // version
        b[12..16].copy_from_slice(&1u32.to_le_bytes()); // hash type: salt before data
        b[16..32].copy_from_slice(&self.uuid);
        b[32..38].copy_from_slice(b"sha256");
        b[64..68].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[68..72].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        b[80..82].copy_from_slice(&(self.salt.len() as u16).to_le_bytes());
        b[88..88 + self.salt.len()].copy_from_slice(self.salt);
        b
    }
}

/// A computed hash tree.
pub struct Verity {
    pub root_hash: [u8; 32],
    /// The whole hash area: superblock block, then the levels, top first.
    pub hash_area: Vec<u8>,
}

fn hash_block(salt: &[u8], block: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(block);
    h.finalize().into()
}

/// Hashes `data` (a multiple of 4096 bytes long). Level hashing runs in parallel; the result
/// does not depend on the thread count.
pub fn compute(data: &[u8], salt: &[u8], uuid: [u8; 16]) -> Verity {
    assert!(
        data.len().is_multiple_of(BLOCK),
        "verity data must be whole blocks"
    );
    assert!(salt.len() <= 256);
    let data_blocks = (data.len() / BLOCK) as u64;
    // Levels bottom-up: each is the concatenated digests of the level below, padded to blocks.
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut digests: Vec<[u8; 32]> = data
        .par_chunks(BLOCK)
        .map(|b| hash_block(salt, b))
        .collect();
    loop {
        let mut level = digests.concat();
        level.resize(level.len().div_ceil(BLOCK).max(1) * BLOCK, 0);
        let done = digests.len() <= PER_BLOCK;
        levels.push(level);
        if done {
            break;
        }
        let below = levels.last().expect("just pushed");
        digests = below
            .par_chunks(BLOCK)
            .map(|b| hash_block(salt, b))
            .collect();
    }
    // One data block: no tree at all, the root hash is that block's digest (cryptsetup's rule).
    let root_hash = if data_blocks == 1 {
        levels.clear();
        hash_block(salt, data)
    } else {
        hash_block(salt, &levels.last().expect("one level at least")[..BLOCK])
    };
    let mut hash_area = Vec::with_capacity(BLOCK + levels.iter().map(Vec::len).sum::<usize>());
    hash_area.extend_from_slice(
        &Superblock {
            uuid,
            data_blocks,
            salt,
        }
        .bytes(),
    );
    hash_area.resize(BLOCK, 0);
    for level in levels.iter().rev() {
        hash_area.extend_from_slice(level);
    }
    Verity {
        root_hash,
        hash_area,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_data_block_has_no_tree() {
        let data = vec![1u8; BLOCK];
        let v = compute(&data, b"s", [0; 16]);
        assert_eq!(v.hash_area.len(), BLOCK, "superblock only");
        assert_eq!(v.root_hash, hash_block(b"s", &data));
    }

    #[test]
    fn single_block_tree() {
        let data = vec![7u8; BLOCK * 3];
        let v = compute(&data, &[1, 2, 3], [0; 16]);
        // One level of one block: three digests, then zeros.
        assert_eq!(v.hash_area.len(), 2 * BLOCK);
        let d0 = hash_block(&[1, 2, 3], &data[..BLOCK]);
        assert_eq!(&v.hash_area[BLOCK..BLOCK + 32], &d0);
        assert_eq!(v.root_hash, hash_block(&[1, 2, 3], &v.hash_area[BLOCK..]));
        assert_eq!(&v.hash_area[..6], b"verity");
    }

    #[test]
    fn multi_level_is_top_first() {
        let data = vec![0u8; BLOCK * (PER_BLOCK + 1)];
        let v = compute(&data, b"salt", [0; 16]);
        // Level 0: 2 blocks; level 1: 1 block. Layout: sb, level1, level0.
        assert_eq!(v.hash_area.len(), BLOCK * 4);
        let level1 = &v.hash_area[BLOCK..2 * BLOCK];
        assert_eq!(v.root_hash, hash_block(b"salt", level1));
    }
}
