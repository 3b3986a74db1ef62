//! Packaging a file system image: bare, or inside a GPT disk image (DDI) as systemd-repart makes
//! it, optionally with a dm-verity hash partition.
//!
//! Invariant: a pure function of the file system bytes and the options (UUIDs and the salt come
//! from the seed), so the same input gives the same image.

pub mod gpt;
pub mod verity;

use gpt::{Guid, Partition, Placed};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum VerityMode {
    #[default]
    None,
    Hash,
}

/// Partition type GUIDs of the Discoverable Partitions Specification.
struct Types {
    root: &'static str,
    verity: &'static str,
    name: &'static str,
}

fn types(rpm_arch: &str) -> Option<Types> {
    Some(match rpm_arch {
        "x86_64" => Types {
            root: "4f68bce3-e8cd-4db1-96e7-fbcaf984b709",
            verity: "2c7357ed-ebd2-46d9-aec1-23d437ec2bf5",
            name: "x86-64",
        },
        "aarch64" => Types {
            root: "b921b045-1df0-41c3-af44-4c6f280d3fae",
            verity: "df3300ce-d69f-4c92-978c-9bfb0f38d820",
            name: "arm64",
        },
        _ => return None,
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("no GPT partition types are known for architecture {0}")]
    Arch(String),
    #[error("writing the disk image: {0}")]
    Io(#[from] std::io::Error),
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

/// Writes `fs` (a squashfs or erofs image) as a GPT disk image.
pub fn write_ddi(
    fs: &[u8],
    rpm_arch: &str,
    mode: VerityMode,
    seed: &[u8],
    out: &mut impl std::io::Write,
) -> Result<DdiInfo, PackageError> {
    let t = types(rpm_arch).ok_or_else(|| PackageError::Arch(rpm_arch.to_owned()))?;
    let mut data = fs.to_vec();
    data.resize(data.len().div_ceil(verity::BLOCK).max(1) * verity::BLOCK, 0);
    let root_label = format!("root-{}", t.name);
    let verity_label = format!("root-{}-verity", t.name);
    let (info_hash, parts_out) = match mode {
        VerityMode::None => {
            let uuid = Guid::v4(first16(&derive(seed, "root-uuid")));
            let parts = [Partition {
                type_guid: Guid::parse(t.root),
                uuid,
                label: &root_label,
                attributes: gpt::ATTR_READ_ONLY,
                data: &data,
            }];
            (
                None,
                gpt::write(Guid::v4(first16(&derive(seed, "disk-uuid"))), &parts, out)?,
            )
        }
        VerityMode::Hash => {
            let salt = derive(seed, "verity-salt");
            let v = verity::compute(
                &data,
                &salt,
                Guid::v4(first16(&derive(seed, "verity-superblock-uuid"))).0,
            );
            // The Discoverable Partitions Specification ties the partitions to the root hash.
            let parts = [
                Partition {
                    type_guid: Guid::parse(t.root),
                    uuid: Guid(first16(&v.root_hash)),
                    label: &root_label,
                    attributes: gpt::ATTR_READ_ONLY,
                    data: &data,
                },
                Partition {
                    type_guid: Guid::parse(t.verity),
                    uuid: Guid(first16(&v.root_hash[16..])),
                    label: &verity_label,
                    attributes: gpt::ATTR_READ_ONLY,
                    data: &v.hash_area,
                },
            ];
            (
                Some(hex::encode(v.root_hash)),
                gpt::write(Guid::v4(first16(&derive(seed, "disk-uuid"))), &parts, out)?,
            )
        }
    };
    Ok(DdiInfo {
        partitions: parts_out,
        root_hash: info_hash,
    })
}
