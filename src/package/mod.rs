//! Packaging a file system image: bare, or inside a GPT disk image (DDI) as systemd-repart makes
//! it, optionally with a dm-verity hash partition and a root-verity-sig partition.
//!
//! Invariant: a pure function of the file system bytes and the options (UUIDs and the salt come
//! from the seed; RSA PKCS#1 v1.5 signatures are deterministic), so the same input gives the
//! same image.

pub mod gpt;
pub mod sign;
pub mod verity;

use gpt::{Guid, Partition, Placed};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VerityMode {
    #[default]
    None,
    Hash,
    /// Hash tree plus a root-verity-sig partition signed with the given key and certificate.
    Signed,
    /// Hash tree plus a zero-filled root-verity-sig partition of repart's size, reserved for a
    /// signature made later, offline (repart's `--defer-partitions=root-verity-sig`).
    Defer,
}

/// Partition type GUIDs of the Discoverable Partitions Specification for one architecture.
pub struct Types {
    /// rpm's name of the architecture.
    pub rpm_arch: &'static str,
    /// systemd's name (partition labels, `ARCHITECTURE=`).
    pub name: &'static str,
    pub root: &'static str,
    pub verity: &'static str,
    pub verity_sig: &'static str,
}

pub const TYPES: [Types; 2] = [
    Types {
        rpm_arch: "x86_64",
        name: "x86-64",
        root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
        verity: "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
        verity_sig: "41092b05-9fc8-4523-994f-2def0408b176",
    },
    Types {
        rpm_arch: "aarch64",
        name: "arm64",
        root: "b921b045-1df0-41c3-af44-4c6f280d3fae",
        verity: "df3300ce-d69f-4c92-978c-9bfb0f38d820",
        verity_sig: "6db69de6-29f4-4758-a7a5-962190f00ce3",
    },
];

fn types(rpm_arch: &str) -> Option<&'static Types> {
    TYPES.iter().find(|t| t.rpm_arch == rpm_arch)
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("no GPT partition types are known for architecture {0}")]
    Arch(String),
    #[error("writing the disk image: {0}")]
    Io(#[from] std::io::Error),
    #[error("verity = signed needs a private key and a certificate")]
    NoSigner,
    #[error("signing the root hash: {0}")]
    Sign(#[from] sign::SignError),
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct DdiInfo {
    pub partitions: Vec<Placed>,
    /// Hex root hash when verity was asked for.
    pub root_hash: Option<String>,
}

/// Derives 16 bytes for `purpose` from the seed.
fn derive(seed: &[u8], purpose: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"elsx\0");
    h.update(purpose.as_bytes());
    h.update(b"\0");
    h.update(seed);
    h.finalize().into()
}

fn first16(b: &[u8]) -> [u8; 16] {
    b[..16].try_into().expect("16 bytes")
}

/// Where [`write_ddi_around`] expects the file system: the first partition's offset.
pub const FS_OFFSET: u64 = gpt::ALIGN;

/// Writes `fs` (a squashfs or erofs image) as a GPT disk image. `signer` is needed for
/// [`VerityMode::Signed`] and ignored otherwise.
pub fn write_ddi(
    fs: &[u8],
    rpm_arch: &str,
    mode: VerityMode,
    signer: Option<&sign::Signer>,
    seed: &[u8],
    out: &mut impl std::io::Write,
) -> Result<DdiInfo, PackageError> {
    let verity = |salt: &[u8], uuid| Ok(verity::compute(fs, salt, uuid));
    ddi(
        gpt::Data::Bytes(fs),
        verity,
        rpm_arch,
        mode,
        signer,
        seed,
        &mut |d, p| Ok(gpt::write(d, p, out)?),
    )
}

/// Makes a GPT disk image around a file system of `fs_len` bytes that already sits in `file`
/// at [`FS_OFFSET`] (written there by the file system writer, so it is never copied): reads it
/// back for the verity hash, writes the other partitions and the GPT headers.
pub fn write_ddi_around(
    file: &mut (impl std::io::Read + std::io::Write + std::io::Seek),
    fs_len: u64,
    rpm_arch: &str,
    mode: VerityMode,
    signer: Option<&sign::Signer>,
    seed: &[u8],
) -> Result<DdiInfo, PackageError> {
    use std::cell::RefCell;
    let file = RefCell::new(file);
    let verity = |salt: &[u8], uuid| {
        let mut f = file.borrow_mut();
        f.seek(std::io::SeekFrom::Start(FS_OFFSET))?;
        let mut r = std::io::BufReader::with_capacity(1 << 20, &mut **f);
        Ok(verity::compute_from(&mut r, fs_len, salt, uuid)?)
    };
    ddi(
        gpt::Data::InPlace(fs_len),
        verity,
        rpm_arch,
        mode,
        signer,
        seed,
        &mut |d, p| Ok(gpt::write_around(d, p, &mut **file.borrow_mut())?),
    )
}

/// Writes the GPT image of the given disk GUID and partitions.
type WriteGpt<'w> = dyn FnMut(Guid, &[Partition]) -> Result<Vec<Placed>, PackageError> + 'w;

/// The partitions of a disk image around the file system `fs`, handed to `write`.
fn ddi(
    fs: gpt::Data,
    verity: impl FnOnce(&[u8], [u8; 16]) -> Result<verity::Verity, PackageError>,
    rpm_arch: &str,
    mode: VerityMode,
    signer: Option<&sign::Signer>,
    seed: &[u8],
    write: &mut WriteGpt,
) -> Result<DdiInfo, PackageError> {
    let t = types(rpm_arch).ok_or_else(|| PackageError::Arch(rpm_arch.to_owned()))?;
    let root_label = format!("root-{}", t.name);
    let verity_label = format!("root-{}-verity", t.name);
    let sig_label = format!("root-{}-verity-sig", t.name);
    let disk_uuid = Guid::v4(first16(&derive(seed, "disk-uuid")));
    if mode == VerityMode::None {
        let parts = [Partition {
            type_guid: Guid::parse(t.root),
            uuid: Guid::v4(first16(&derive(seed, "root-uuid"))),
            label: &root_label,
            attributes: gpt::ATTR_READ_ONLY,
            data: fs,
        }];
        return Ok(DdiInfo {
            partitions: write(disk_uuid, &parts)?,
            root_hash: None,
        });
    }
    let salt = derive(seed, "verity-salt");
    let v = verity(
        &salt,
        Guid::v4(first16(&derive(seed, "verity-superblock-uuid"))).0,
    )?;
    let sig = match mode {
        VerityMode::Signed => Some(sign::partition(
            &v.root_hash,
            signer.ok_or(PackageError::NoSigner)?,
        )?),
        VerityMode::Defer => Some(vec![0u8; sign::PARTITION_SIZE]),
        VerityMode::None | VerityMode::Hash => None,
    };
    // The Discoverable Partitions Specification ties the partitions to the root hash.
    let mut parts = vec![
        Partition {
            type_guid: Guid::parse(t.root),
            uuid: Guid(first16(&v.root_hash)),
            label: &root_label,
            attributes: gpt::ATTR_READ_ONLY,
            data: fs,
        },
        Partition {
            type_guid: Guid::parse(t.verity),
            uuid: Guid(first16(&v.root_hash[16..])),
            label: &verity_label,
            attributes: gpt::ATTR_READ_ONLY,
            data: gpt::Data::Bytes(&v.hash_area),
        },
    ];
    if let Some(sig) = &sig {
        parts.push(Partition {
            type_guid: Guid::parse(t.verity_sig),
            uuid: Guid::v4(first16(&derive(seed, "root-verity-sig-uuid"))),
            label: &sig_label,
            attributes: gpt::ATTR_READ_ONLY,
            data: gpt::Data::Bytes(sig),
        });
    }
    Ok(DdiInfo {
        partitions: write(disk_uuid, &parts)?,
        root_hash: Some(hex::encode(v.root_hash)),
    })
}
