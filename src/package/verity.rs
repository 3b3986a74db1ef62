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

/// Hashes `data`, padded with zeros to whole blocks (at least one). Hashing runs in parallel;
/// the result does not depend on the thread count.
pub fn compute(data: &[u8], salt: &[u8], uuid: [u8; 16]) -> Verity {
    from_leaves(leaf_digests(data, salt), salt, uuid)
}

/// [`compute`] over `len` bytes read from `r`, a few MiB at a time (the data is never held
/// whole in memory).
pub fn compute_from(
    r: &mut impl std::io::Read,
    len: u64,
    salt: &[u8],
    uuid: [u8; 16],
) -> std::io::Result<Verity> {
    const CHUNK: usize = 256 * BLOCK;
    let mut digests = Vec::with_capacity(len.div_ceil(BLOCK as u64) as usize);
    let mut buf = vec![0u8; CHUNK];
    let mut left = len;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        r.read_exact(&mut buf[..n])?;
        digests.extend(leaf_digests(&buf[..n], salt));
        left -= n as u64;
    }
    if digests.is_empty() {
        digests = leaf_digests(&[], salt);
    }
    Ok(from_leaves(digests, salt, uuid))
}

/// The digests of `data`'s blocks, the last one padded with zeros; one block of zeros when
/// `data` is empty.
fn leaf_digests(data: &[u8], salt: &[u8]) -> Vec<[u8; 32]> {
    let full = data.len() - data.len() % BLOCK;
    let mut digests: Vec<[u8; 32]> = data[..full]
        .par_chunks(BLOCK)
        .map(|b| hash_block(salt, b))
        .collect();
    if full < data.len() || data.is_empty() {
        let mut last = [0u8; BLOCK];
        last[..data.len() - full].copy_from_slice(&data[full..]);
        digests.push(hash_block(salt, &last));
    }
    digests
}

/// The hash tree above the data blocks' digests.
fn from_leaves(leaves: Vec<[u8; 32]>, salt: &[u8], uuid: [u8; 16]) -> Verity {
    assert!(salt.len() <= 256);
    let data_blocks = leaves.len() as u64;
    // Levels bottom-up: each is the concatenated digests of the level below, padded to blocks.
    let mut levels: Vec<Vec<u8>> = Vec::new();
    let mut digests = leaves;
    let first = digests[0];
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
        first
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

/// Where a hash tree and its data disagree.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Mismatch {
    #[error("the hash area has no valid verity superblock: {0}")]
    Superblock(String),
    #[error("data block {block} (bytes {offset}..{end}) does not match its hash", offset = block * BLOCK as u64, end = (block + 1) * BLOCK as u64)]
    DataBlock { block: u64 },
    #[error("hash block {block} (bytes {offset}..{end}) does not match the level above", offset = block * BLOCK as u64, end = (block + 1) * BLOCK as u64)]
    HashBlock { block: u64 },
}

/// Checks `data` against the hash area (superblock and tree) and the expected root hash, top
/// down as the kernel does: the top block against the root hash, every hash block against its
/// digest one level up, every data block against the bottom level. Returns the number of data
/// blocks; a mismatch names the first block (hash blocks counted from the start of the hash
/// area, superblock included) whose digest is wrong.
pub fn verify(data: &[u8], hash_area: &[u8], root_hash: &[u8; 32]) -> Result<u64, Mismatch> {
    let sb = |m: &str| Mismatch::Superblock(m.to_owned());
    if hash_area.len() < BLOCK || &hash_area[..8] != b"verity\0\0" {
        return Err(sb("no \"verity\" magic"));
    }
    let u32_at = |o: usize| u32::from_le_bytes(hash_area[o..o + 4].try_into().expect("4 bytes"));
    if u32_at(8) != 1 || u32_at(12) != 1 {
        return Err(sb("only version 1, hash type 1 is supported"));
    }
    let alg = &hash_area[32..64];
    if &alg[..7] != b"sha256\0" {
        return Err(sb("only sha256 is supported"));
    }
    if u32_at(64) as usize != BLOCK || u32_at(68) as usize != BLOCK {
        return Err(sb("only 4096-byte blocks are supported"));
    }
    let data_blocks = u64::from_le_bytes(hash_area[72..80].try_into().expect("8 bytes"));
    let salt_len = u16::from_le_bytes([hash_area[80], hash_area[81]]) as usize;
    if salt_len > 256 || data_blocks == 0 {
        return Err(sb("bad salt size or data block count"));
    }
    let salt = &hash_area[88..88 + salt_len];
    let len = usize::try_from(data_blocks)
        .ok()
        .and_then(|n| n.checked_mul(BLOCK))
        .filter(|l| *l <= data.len())
        .ok_or_else(|| sb("more data blocks than the data partition holds"))?;
    // Blocks per level, bottom-up, as `compute` lays them out (none for one data block).
    let mut sizes = Vec::new();
    let mut n = data_blocks as usize;
    while n > 1 {
        let blocks = (n * DIGEST).div_ceil(BLOCK);
        sizes.push(blocks);
        if n <= PER_BLOCK {
            break;
        }
        n = blocks;
    }
    let total = BLOCK + sizes.iter().sum::<usize>() * BLOCK;
    if hash_area.len() < total {
        return Err(sb("the hash area is shorter than the tree"));
    }
    // Level i starts after the superblock and the levels above it (top first).
    let start = |i: usize| BLOCK + sizes[i + 1..].iter().sum::<usize>() * BLOCK;
    let digests = |bytes: &[u8]| -> Vec<[u8; 32]> {
        bytes
            .par_chunks(BLOCK)
            .map(|b| hash_block(salt, b))
            .collect()
    };
    // Top down, as the kernel checks: each block against the digest one level up.
    let Some(top) = sizes.len().checked_sub(1) else {
        return if &hash_block(salt, &data[..BLOCK]) == root_hash {
            Ok(1)
        } else {
            Err(Mismatch::DataBlock { block: 0 })
        };
    };
    if &hash_block(salt, &hash_area[start(top)..start(top) + BLOCK]) != root_hash {
        return Err(Mismatch::HashBlock {
            block: (start(top) / BLOCK) as u64,
        });
    }
    for i in (0..top).rev() {
        let parent = &hash_area[start(i + 1)..];
        let level = &hash_area[start(i)..start(i) + sizes[i] * BLOCK];
        if let Some(j) = digests(level)
            .iter()
            .enumerate()
            .position(|(j, d)| d[..] != parent[j * DIGEST..(j + 1) * DIGEST])
        {
            return Err(Mismatch::HashBlock {
                block: (start(i) / BLOCK + j) as u64,
            });
        }
    }
    let bottom = &hash_area[start(0)..];
    if let Some(k) = digests(&data[..len])
        .iter()
        .enumerate()
        .position(|(k, d)| d[..] != bottom[k * DIGEST..(k + 1) * DIGEST])
    {
        return Err(Mismatch::DataBlock { block: k as u64 });
    }
    Ok(data_blocks)
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
    fn reading_in_chunks_gives_the_same_tree() {
        let data: Vec<u8> = (0..BLOCK * 300 + 5).map(|i| (i * 13) as u8).collect();
        let mut padded = data.clone();
        padded.resize(BLOCK * 301, 0);
        let a = compute(&data, b"salt", [1; 16]);
        let b = compute_from(&mut &data[..], data.len() as u64, b"salt", [1; 16]).unwrap();
        let c = compute(&padded, b"salt", [1; 16]);
        assert_eq!((&a.root_hash, &a.hash_area), (&b.root_hash, &b.hash_area));
        assert_eq!((&a.root_hash, &a.hash_area), (&c.root_hash, &c.hash_area));
        let empty = compute_from(&mut &[][..], 0, b"s", [0; 16]).unwrap();
        assert_eq!(
            empty.root_hash,
            compute(&[0; BLOCK], b"s", [0; 16]).root_hash
        );
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

    #[test]
    fn verify_names_the_flipped_block() {
        let mut data: Vec<u8> = (0..BLOCK * (PER_BLOCK + 5))
            .map(|i| (i * 7) as u8)
            .collect();
        let v = compute(&data, b"salt", [3; 16]);
        assert_eq!(
            verify(&data, &v.hash_area, &v.root_hash),
            Ok((PER_BLOCK + 5) as u64)
        );
        data[BLOCK * 130 + 17] ^= 1;
        assert_eq!(
            verify(&data, &v.hash_area, &v.root_hash),
            Err(Mismatch::DataBlock { block: 130 })
        );
        data[BLOCK * 130 + 17] ^= 1;
        let mut hash = v.hash_area.clone();
        hash[BLOCK + 5] ^= 1;
        assert_eq!(
            verify(&data, &hash, &v.root_hash),
            Err(Mismatch::HashBlock { block: 1 })
        );
        // A wrong root hash: the top block does not match it.
        assert_eq!(
            verify(&data, &v.hash_area, &[0; 32]),
            Err(Mismatch::HashBlock { block: 1 })
        );
        // Level 0 sits after level 1 (one block): hash block 2 is the first of level 0.
        let mut hash = v.hash_area.clone();
        hash[2 * BLOCK + 40] ^= 1;
        assert_eq!(
            verify(&data, &hash, &v.root_hash),
            Err(Mismatch::HashBlock { block: 2 })
        );
        let one = vec![5u8; BLOCK];
        let v1 = compute(&one, b"s", [0; 16]);
        let mut bad = one.clone();
        bad[0] = 6;
        assert_eq!(
            verify(&bad, &v1.hash_area, &v1.root_hash),
            Err(Mismatch::DataBlock { block: 0 })
        );
    }
}
