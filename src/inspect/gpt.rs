//! Reading a GPT partition table (the primary header and its entry array, both checksummed).

use crate::package::gpt::Guid;

const SECTOR: usize = 512;

/// One used entry of the partition array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub type_guid: Guid,
    pub uuid: Guid,
    pub label: String,
    pub attributes: u64,
    /// Byte offset and size on the disk.
    pub offset: u64,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("the disk image is too small for a GPT ({0} bytes)")]
    Short(usize),
    #[error("no \"EFI PART\" header at sector 1")]
    NoHeader,
    #[error("the GPT header's CRC32 does not match")]
    HeaderCrc,
    #[error("the GPT partition array lies outside the image or has an odd entry size")]
    ArrayBounds,
    #[error("the GPT partition array's CRC32 does not match")]
    ArrayCrc,
    #[error("partition {index} ({label}) lies outside the image")]
    PartitionBounds { index: usize, label: String },
}

/// Whether `disk` starts like a GPT disk (protective MBR and "EFI PART" at sector 1).
pub fn looks_like_gpt(disk: &[u8]) -> bool {
    disk.len() >= 2 * SECTOR && disk[510..512] == [0x55, 0xaa] && &disk[512..520] == b"EFI PART"
}

/// Parses the primary GPT of `disk`; entries in array order, unused ones skipped.
pub fn parse(disk: &[u8]) -> Result<Vec<Entry>, GptError> {
    if disk.len() < 2 * SECTOR {
        return Err(GptError::Short(disk.len()));
    }
    let h = &disk[SECTOR..2 * SECTOR];
    if &h[0..8] != b"EFI PART" {
        return Err(GptError::NoHeader);
    }
    let u32_at = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().expect("8 bytes"));
    let header_size = u32_at(12) as usize;
    if !(92..=SECTOR).contains(&header_size) {
        return Err(GptError::HeaderCrc);
    }
    let mut copy = h[..header_size].to_vec();
    copy[16..20].fill(0);
    if crc32fast::hash(&copy) != u32_at(16) {
        return Err(GptError::HeaderCrc);
    }
    let (array_lba, count, entry_size) = (u64_at(72), u32_at(80) as usize, u32_at(84) as usize);
    let start = usize::try_from(array_lba)
        .ok()
        .and_then(|l| l.checked_mul(SECTOR))
        .ok_or(GptError::ArrayBounds)?;
    let len = count.checked_mul(entry_size).ok_or(GptError::ArrayBounds)?;
    if entry_size < 128 || count > 1024 || start.saturating_add(len) > disk.len() {
        return Err(GptError::ArrayBounds);
    }
    let array = &disk[start..start + len];
    if crc32fast::hash(array) != u32_at(88) {
        return Err(GptError::ArrayCrc);
    }
    let mut out = Vec::new();
    for (index, e) in array.chunks(entry_size).enumerate() {
        let type_guid = Guid::from_on_disk(e[0..16].try_into().expect("16 bytes"));
        if type_guid.0 == [0; 16] {
            continue;
        }
        let first = u64::from_le_bytes(e[32..40].try_into().expect("8 bytes"));
        let last = u64::from_le_bytes(e[40..48].try_into().expect("8 bytes"));
        let units: Vec<u16> = e[56..128]
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .take_while(|u| *u != 0)
            .collect();
        let label = String::from_utf16_lossy(&units);
        let (offset, end) = (first * SECTOR as u64, (last + 1) * SECTOR as u64);
        if last < first || end > disk.len() as u64 {
            return Err(GptError::PartitionBounds { index, label });
        }
        out.push(Entry {
            type_guid,
            uuid: Guid::from_on_disk(e[16..32].try_into().expect("16 bytes")),
            label,
            attributes: u64::from_le_bytes(e[48..56].try_into().expect("8 bytes")),
            offset,
            size: end - offset,
        });
    }
    Ok(out)
}
