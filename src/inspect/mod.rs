//! `elsx inspect`: what an image holds and whether it is intact.
//!
//! Reads a bare squashfs or erofs file system, or a GPT disk image (DDI) like systemd-repart's:
//! lists its partitions, recomputes the dm-verity hash tree and compares it with the root hash
//! (the partition UUIDs, or the signature partition), verifies the root-verity-sig signature,
//! parses `usr/lib/extension-release.d/*` and lists every file. [`Report`] is what both the
//! human and the `--json` printers render.

mod erofs;
pub mod gpt;
mod squashfs;

use crate::package::{TYPES, sign, verity};
use anyhow::{Context, Result};
use std::path::Path;

/// One entry of the file system.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileInfo {
    pub path: String,
    /// file, dir, symlink, char-device, block-device, fifo, socket
    pub kind: String,
    /// Permission bits (07777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes of a file, or of a symlink's target.
    pub size: u64,
    pub mtime: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Encoded device number (`new_encode_dev`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdev: Option<u32>,
    /// An erofs file stored compressed in a way the reader does not decode (listed, contents
    /// not read).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compressed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("squashfs: {0}")]
    Squashfs(String),
    #[error("erofs: {0}")]
    Erofs(String),
}

/// The image failed a check: verity or signature. The exit code is 1 ("the answer is no").
#[derive(Debug, thiserror::Error)]
#[error("{image}: {what}")]
pub struct VerifyFailed {
    pub image: String,
    pub what: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PartitionInfo {
    /// Discoverable Partitions Specification name (`root-x86-64-verity`), or `unknown`.
    pub role: String,
    pub type_guid: String,
    pub uuid: String,
    pub label: String,
    pub offset: u64,
    pub size: u64,
    pub read_only: bool,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ExtensionRelease {
    pub path: String,
    pub fields: Vec<(String, String)>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Report {
    pub image: String,
    /// squashfs, erofs or ddi
    pub format: String,
    /// The file system (of the root partition for a DDI).
    pub filesystem: String,
    pub bytes: u64,
    pub partitions: Vec<PartitionInfo>,
    pub root_hash: Option<String>,
    /// Data blocks checked against the hash tree.
    pub verity_blocks: Option<u64>,
    pub signature: Option<sign::SigState>,
    pub extension_release: Vec<ExtensionRelease>,
    pub files: Vec<FileInfo>,
}

const RELEASE_DIR: &str = "usr/lib/extension-release.d/";

/// Reads `path` and checks it; a verity or signature failure is a [`VerifyFailed`].
pub fn inspect(path: &Path) -> Result<Report> {
    let img = fs_err::read(path)?;
    inspect_bytes(&img, &path.display().to_string())
}

/// [`inspect`] on the image's bytes; `name` goes into messages.
pub fn inspect_bytes(img: &[u8], name: &str) -> Result<Report> {
    let fail = |what: String| VerifyFailed {
        image: name.to_owned(),
        what,
    };
    let mut report = Report {
        image: name.to_owned(),
        format: String::new(),
        filesystem: String::new(),
        bytes: img.len() as u64,
        partitions: Vec::new(),
        root_hash: None,
        verity_blocks: None,
        signature: None,
        extension_release: Vec::new(),
        files: Vec::new(),
    };
    let fs: &[u8] = if gpt::looks_like_gpt(img) {
        report.format = "ddi".into();
        let entries = gpt::parse(img).with_context(|| format!("{name}: reading the GPT"))?;
        let part = |e: &gpt::Entry| &img[e.offset as usize..(e.offset + e.size) as usize];
        let find = |role: &str| {
            entries
                .iter()
                .zip(&report_roles(&entries))
                .find(|(_, r)| r.as_str() == role)
                .map(|(e, _)| e)
        };
        for (e, role) in entries.iter().zip(report_roles(&entries)) {
            report.partitions.push(PartitionInfo {
                role,
                type_guid: e.type_guid.to_string_lower(),
                uuid: e.uuid.to_string_lower(),
                label: e.label.clone(),
                offset: e.offset,
                size: e.size,
                read_only: e.attributes & crate::package::gpt::ATTR_READ_ONLY != 0,
            });
        }
        let arch = TYPES
            .iter()
            .find(|t| find(&format!("root-{}", t.name)).is_some())
            .ok_or_else(|| anyhow::anyhow!("{name}: the disk image has no root partition"))?;
        let root = find(&format!("root-{}", arch.name)).expect("found above");
        if let Some(hash) = find(&format!("root-{}-verity", arch.name)) {
            // The Discoverable Partitions Specification: data UUID ‖ hash UUID = root hash.
            let mut expected = [0u8; 32];
            expected[..16].copy_from_slice(&root.uuid.0);
            expected[16..].copy_from_slice(&hash.uuid.0);
            let hex_hash = hex::encode(expected);
            let blocks = verity::verify(part(root), part(hash), &expected).map_err(|m| {
                let label = match m {
                    verity::Mismatch::DataBlock { .. } => &root.label,
                    _ => &hash.label,
                };
                fail(format!("dm-verity check failed in partition {label}: {m}"))
            })?;
            report.verity_blocks = Some(blocks);
            if let Some(sig) = find(&format!("root-{}-verity-sig", arch.name)) {
                let state = sign::verify_partition(part(sig), &hex_hash).map_err(|e| {
                    fail(format!(
                        "signature partition {} does not verify: {e}",
                        sig.label
                    ))
                })?;
                report.signature = Some(state);
            }
            report.root_hash = Some(hex_hash);
        }
        part(root)
    } else {
        img
    };
    report.filesystem = if fs.len() >= 4 && &fs[..4] == b"hsqs" {
        "squashfs".into()
    } else if crate::write::erofs::format::read_superblock(fs).is_some() {
        "erofs".into()
    } else {
        anyhow::bail!("{name}: neither a squashfs, an erofs nor a GPT disk image");
    };
    if report.format.is_empty() {
        report.format = report.filesystem.clone();
    }
    let mut files = Vec::new();
    let mut releases = Vec::new();
    let mut visit = |f: FileInfo, content: Option<Vec<u8>>| {
        if f.kind == "file"
            && f.path.starts_with(RELEASE_DIR)
            && let Some(c) = content
        {
            releases.push(ExtensionRelease {
                path: f.path.clone(),
                fields: crate::sysext::parse_os_release(&String::from_utf8_lossy(&c)),
            });
        }
        files.push(f);
    };
    if report.filesystem == "squashfs" {
        squashfs::list(fs, |p| p.starts_with(RELEASE_DIR), &mut visit)
    } else {
        erofs::Reader::new(fs)?.list(&mut visit)
    }
    .with_context(|| format!("{name}: reading the {} file system", report.filesystem))?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    report.files = files;
    report.extension_release = releases;
    Ok(report)
}

/// Each entry's Discoverable Partitions Specification name.
fn report_roles(entries: &[gpt::Entry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            let g = e.type_guid.to_string_lower();
            TYPES
                .iter()
                .find_map(|t| {
                    if g == t.root {
                        Some(format!("root-{}", t.name))
                    } else if g == t.verity {
                        Some(format!("root-{}-verity", t.name))
                    } else if g == t.verity_sig {
                        Some(format!("root-{}-verity-sig", t.name))
                    } else {
                        None
                    }
                })
                .unwrap_or_else(|| "unknown".into())
        })
        .collect()
}

fn mode_string(f: &FileInfo) -> String {
    let t = match f.kind.as_str() {
        "dir" => 'd',
        "symlink" => 'l',
        "char-device" => 'c',
        "block-device" => 'b',
        "fifo" => 'p',
        "socket" => 's',
        _ => '-',
    };
    let mut s = String::from(t);
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        let bit = 0o400 >> i;
        let special = match i {
            2 => f.mode & 0o4000 != 0,
            5 => f.mode & 0o2000 != 0,
            8 => f.mode & 0o1000 != 0,
            _ => false,
        };
        let set = f.mode & bit != 0;
        s.push(match (special, set, i) {
            (true, true, 8) => 't',
            (true, false, 8) => 'T',
            (true, true, _) => 's',
            (true, false, _) => 'S',
            (false, true, _) => c,
            (false, false, _) => '-',
        });
    }
    s
}

impl Report {
    /// The human rendering (the JSON one is serde's).
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut o = String::new();
        let _ = writeln!(o, "image:       {} ({} bytes)", self.image, self.bytes);
        let _ = writeln!(
            o,
            "format:      {}",
            if self.format == "ddi" {
                format!("GPT disk image, {}", self.filesystem)
            } else {
                self.filesystem.clone()
            }
        );
        for p in &self.partitions {
            let _ = writeln!(
                o,
                "partition:   {} label={} type={} uuid={} offset={} size={}{}",
                p.role,
                p.label,
                p.type_guid,
                p.uuid,
                p.offset,
                p.size,
                if p.read_only { " read-only" } else { "" }
            );
        }
        if let Some(h) = &self.root_hash {
            let _ = writeln!(
                o,
                "root hash:   {h} (dm-verity verified, {} data blocks)",
                self.verity_blocks.unwrap_or(0)
            );
        }
        match &self.signature {
            Some(sign::SigState::Deferred) => {
                let _ = writeln!(o, "signature:   deferred (empty partition, to be signed)");
            }
            Some(sign::SigState::Verified {
                certificate_fingerprint,
                signer,
                ..
            }) => {
                let _ = writeln!(
                    o,
                    "signature:   verified, signer {signer}, certificate sha256 {}",
                    certificate_fingerprint.as_deref().unwrap_or("(not given)")
                );
            }
            None => {}
        }
        for r in &self.extension_release {
            let _ = writeln!(o, "extension-release: /{}", r.path);
            for (k, v) in &r.fields {
                let _ = writeln!(o, "  {k}={v}");
            }
        }
        let _ = writeln!(o, "files:       {}", self.files.len());
        for f in &self.files {
            let size = match f.rdev {
                Some(d) => format!("{},{}", (d >> 8) & 0xfff, (d & 0xff) | ((d >> 12) & !0xff)),
                None => f.size.to_string(),
            };
            let _ = write!(
                o,
                "  {} {}/{} {:>10} /{}",
                mode_string(f),
                f.uid,
                f.gid,
                size,
                f.path
            );
            if let Some(t) = &f.target {
                let _ = write!(o, " -> {t}");
            }
            if f.compressed {
                let _ = write!(o, " (compressed)");
            }
            o.push('\n');
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_strings_like_ls() {
        let f = |kind: &str, mode| FileInfo {
            path: "x".into(),
            kind: kind.into(),
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 0,
            target: None,
            rdev: None,
            compressed: false,
        };
        assert_eq!(mode_string(&f("file", 0o644)), "-rw-r--r--");
        assert_eq!(mode_string(&f("dir", 0o1777)), "drwxrwxrwt");
        assert_eq!(mode_string(&f("file", 0o4755)), "-rwsr-xr-x");
        assert_eq!(mode_string(&f("symlink", 0o777)), "lrwxrwxrwx");
    }
}
