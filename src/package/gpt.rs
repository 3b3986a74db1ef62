//! GPT disk images laid out like systemd-repart's: a protective MBR, the primary header and
//! partition array, partitions aligned to 1 MiB and sized in 4 KiB units, the backup array and
//! header at the end.

const SECTOR: u64 = 512;
const ENTRIES: u64 = 128;
const ENTRY_SIZE: u64 = 128;
/// Sectors the partition array takes (128 × 128 bytes).
const ARRAY_SECTORS: u64 = ENTRIES * ENTRY_SIZE / SECTOR;
/// Partitions start on 1 MiB boundaries; the first one at 1 MiB.
pub const ALIGN: u64 = 1 << 20;

/// A GUID in its textual byte order (as `sd_id128_t` holds it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid(pub [u8; 16]);

impl Guid {
    pub fn parse(s: &str) -> Guid {
        let hex: String = s.chars().filter(|c| *c != '-').collect();
        let mut b = [0u8; 16];
        hex::decode_to_slice(&hex, &mut b).expect("a GUID literal");
        Guid(b)
    }

    /// Sets the RFC 4122 version 4 and variant bits, as systemd does for generated UUIDs.
    pub fn v4(mut b: [u8; 16]) -> Guid {
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        Guid(b)
    }

    /// GPT stores the first three fields little-endian.
    fn on_disk(&self) -> [u8; 16] {
        let b = self.0;
        let mut o = b;
        o[0..4].copy_from_slice(&[b[3], b[2], b[1], b[0]]);
        o[4..6].copy_from_slice(&[b[5], b[4]]);
        o[6..8].copy_from_slice(&[b[7], b[6]]);
        o
    }

    /// The inverse of the on-disk byte order (the swap is its own inverse).
    pub fn from_on_disk(b: [u8; 16]) -> Guid {
        Guid(Guid(b).on_disk())
    }

    pub fn to_string_lower(&self) -> String {
        let h = hex::encode(self.0);
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// One partition to place.
pub struct Partition<'a> {
    pub type_guid: Guid,
    pub uuid: Guid,
    pub label: &'a str,
    /// GPT attribute bits (bit 60: read-only).
    pub attributes: u64,
    pub data: Data<'a>,
}

/// A partition's content.
#[derive(Clone, Copy)]
pub enum Data<'a> {
    Bytes(&'a [u8]),
    /// This many bytes the caller has already written at the partition's offset (see
    /// [`write_around`]).
    InPlace(u64),
}

impl Data<'_> {
    fn len(&self) -> u64 {
        match self {
            Data::Bytes(b) => b.len() as u64,
            Data::InPlace(n) => *n,
        }
    }
}

/// Where a partition landed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Placed {
    pub label: String,
    pub type_guid: String,
    pub uuid: String,
    pub offset: u64,
    pub size: u64,
}

pub const ATTR_READ_ONLY: u64 = 1 << 60;

fn round_up(v: u64, to: u64) -> u64 {
    v.div_ceil(to) * to
}

/// Lays out and writes a disk image holding `parts` in order, as one sequential stream.
pub fn write(
    disk_guid: Guid,
    parts: &[Partition<'_>],
    out: &mut impl std::io::Write,
) -> std::io::Result<Vec<Placed>> {
    let mut pos = 0u64;
    lay_out(disk_guid, parts, &mut |at, bytes| {
        assert!(at >= pos, "GPT layout written in order");
        zeros(out, at - pos)?;
        out.write_all(bytes)?;
        pos = at + bytes.len() as u64;
        Ok(())
    })
}

/// Writes the disk image's headers and [`Data::Bytes`] partitions around partitions already in
/// `out` ([`Data::InPlace`]; the first one starts at [`ALIGN`]). Gaps are left as they are: in
/// a fresh file they read as zeros.
pub fn write_around(
    disk_guid: Guid,
    parts: &[Partition<'_>],
    out: &mut (impl std::io::Write + std::io::Seek),
) -> std::io::Result<Vec<Placed>> {
    lay_out(disk_guid, parts, &mut |at, bytes| {
        out.seek(std::io::SeekFrom::Start(at))?;
        out.write_all(bytes)
    })
}

/// Places the partitions and hands every piece of the image to `put` (offset, bytes), in
/// increasing offset order; in-place partitions are skipped.
fn lay_out(
    disk_guid: Guid,
    parts: &[Partition<'_>],
    put: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<Vec<Placed>> {
    let mut offset = ALIGN;
    let mut placed = Vec::new();
    let mut ranges = Vec::new();
    for p in parts {
        let size = round_up(p.data.len(), 4096).max(4096);
        ranges.push((offset, size));
        placed.push(Placed {
            label: p.label.to_owned(),
            type_guid: p.type_guid.to_string_lower(),
            uuid: p.uuid.to_string_lower(),
            offset,
            size,
        });
        offset = round_up(offset + size, 4096);
    }
    // Room for the backup array and header, then round the disk to 4 KiB like repart.
    let total = round_up(offset + (ARRAY_SECTORS + 1) * SECTOR, 4096);
    let last_lba = total / SECTOR - 1;
    let backup_array_lba = last_lba - ARRAY_SECTORS;
    let last_usable = backup_array_lba - 1;

    let mut array = vec![0u8; (ENTRIES * ENTRY_SIZE) as usize];
    for (i, (p, &(off, size))) in parts.iter().zip(&ranges).enumerate() {
        let e = &mut array[i * ENTRY_SIZE as usize..(i + 1) * ENTRY_SIZE as usize];
        e[0..16].copy_from_slice(&p.type_guid.on_disk());
        e[16..32].copy_from_slice(&p.uuid.on_disk());
        e[32..40].copy_from_slice(&(off / SECTOR).to_le_bytes());
        e[40..48].copy_from_slice(&((off + size) / SECTOR - 1).to_le_bytes());
        e[48..56].copy_from_slice(&p.attributes.to_le_bytes());
        for (j, u) in p.label.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let array_crc = crc32fast::hash(&array);
    let header = |my_lba: u64, alt_lba: u64, array_lba: u64| -> [u8; 512] {
        let mut h = [0u8; 512];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alt_lba.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + ARRAY_SECTORS).to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&disk_guid.on_disk());
        h[72..80].copy_from_slice(&array_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };

    let mut mbr = [0u8; 512];
    // One partition of type 0xEE covering the disk (capped at 2 TiB), as the UEFI spec requires.
    let p = &mut mbr[446..462];
    p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    p[4] = 0xee;
    p[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    p[12..16].copy_from_slice(&(last_lba.min(u32::MAX as u64) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;

    put(0, &mbr)?;
    put(SECTOR, &header(1, last_lba, 2))?;
    put(2 * SECTOR, &array)?;
    for (p, &(off, size)) in parts.iter().zip(&ranges) {
        match p.data {
            Data::Bytes(b) => put(off, b)?,
            // The caller wrote the content; the rest of the partition must still read as zeros.
            Data::InPlace(n) if n < size => put(off + n, &vec![0u8; (size - n) as usize])?,
            Data::InPlace(_) => {}
        }
    }
    put(backup_array_lba * SECTOR, &array)?;
    put(last_lba * SECTOR, &header(last_lba, 1, backup_array_lba))?;
    Ok(placed)
}

fn zeros(out: &mut dyn std::io::Write, mut n: u64) -> std::io::Result<()> {
    let buf = [0u8; 65536];
    while n > 0 {
        let k = n.min(buf.len() as u64) as usize;
        out.write_all(&buf[..k])?;
        n -= k as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_round_trip() {
        let g = Guid::parse("4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
        assert_eq!(g.to_string_lower(), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
        assert_eq!(&g.on_disk()[..4], &[0xe3, 0xbc, 0x68, 0x4f]);
        assert_eq!(Guid::from_on_disk(g.on_disk()), g);
    }
}
