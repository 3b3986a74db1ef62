//! What one image build needs, whatever described it (a recipe or a mkosi configuration).

use crate::package::VerityMode;
use crate::repo::definition::RepoDef;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file system inside an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Squashfs {
        compression: crate::write::squashfs::Compression,
        block_size: u32,
    },
    Erofs(crate::write::erofs::Compression),
}

/// What the build writes.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OutputKind {
    /// A directory tree (mkosi's `Format=directory`).
    Directory,
    /// A sysext image: a bare file system, or a GPT disk image.
    Sysext {
        fs: FsType,
        ddi: bool,
        verity: VerityMode,
    },
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct OutputSpec {
    pub dir: PathBuf,
    /// File name without `.raw` (also the extension-release name).
    pub name: String,
    pub kind: OutputKind,
    /// Also make the symlink `NAME` → `NAME.raw`, as mkosi does.
    pub symlink: bool,
    /// Key and certificate for `verity = signed`.
    pub signing: Option<crate::package::sign::SigningFiles>,
}

/// What the image is subtracted from.
#[derive(Clone, Debug, serde::Serialize)]
pub enum Base {
    /// Nothing: the image holds everything its packages install.
    None,
    /// A base image made of these packages (resolved and unpacked, never written).
    Packages(Vec<String>),
    /// A directory tree on disk.
    Tree(PathBuf),
}

/// A tree copied into the image: `source` (a directory) at `target` (default: the root).
#[derive(Clone, Debug, serde::Serialize)]
pub struct TreeSource {
    pub source: PathBuf,
    pub target: Option<String>,
}

/// How extension-release is written.
#[derive(Clone, Debug, serde::Serialize)]
pub enum ReleaseSpec {
    /// No extension-release (directory images).
    None,
    /// elsx recipes (DESIGN.md's field rules).
    Recipe {
        id: Option<String>,
        version: Option<String>,
        sysext_level: Option<String>,
        scope: Vec<String>,
        reload_manager: bool,
    },
    /// mkosi's `configure_extension_release()`: keys already present first, then the missing
    /// ones from os-release and the configuration.
    Mkosi {
        image_id: Option<String>,
        image_version: Option<String>,
        scope: Option<String>,
    },
}

/// Scripts run on the image tree (mkosi.postinst, mkosi.finalize), and their environment.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Scripts {
    pub postinst: Vec<PathBuf>,
    pub finalize: Vec<PathBuf>,
    pub srcdir: PathBuf,
    pub env: BTreeMap<String, String>,
}

/// One image to build.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Spec {
    /// Names the image in messages (`recipe examples/demo/recipe.toml`, `mkosi image tools`).
    pub label: String,
    /// The extension's name in extension-release (SYSEXT_ID for recipes).
    pub sysext_id: String,
    /// rpm architecture.
    pub arch: String,
    pub repos: Vec<RepoDef>,
    pub base: Base,
    pub packages: Vec<String>,
    pub recommends: bool,
    pub skeleton: Vec<TreeSource>,
    pub extra: Vec<TreeSource>,
    pub keep_changed: bool,
    pub release: ReleaseSpec,
    pub scripts: Scripts,
    pub output: OutputSpec,
}

impl FsType {
    /// squashfs as mksquashfs makes it by default: zstd level 15, 128 KiB blocks.
    pub const SQUASHFS: FsType = FsType::Squashfs {
        compression: crate::write::squashfs::Compression::Zstd(15),
        block_size: 128 * 1024,
    };

    /// The file system from `--fs`/`format`, `--compress`/`compress` and
    /// `--block-size`/`block-size` (squashfs only; erofs writes 4 KiB blocks). erofs without a
    /// compression is lz4hc level 9, as mkfs.erofs's `-zlz4hc`.
    pub fn new(
        squashfs: bool,
        compress: Option<&crate::write::Compress>,
        block_size: Option<u32>,
    ) -> Result<FsType, String> {
        if squashfs {
            let FsType::Squashfs {
                mut compression,
                block_size: mut size,
            } = FsType::SQUASHFS
            else {
                unreachable!()
            };
            if let Some(c) = compress {
                compression = c.squashfs()?;
            }
            if let Some(b) = block_size {
                if !b.is_power_of_two() || !(4096..=1 << 20).contains(&b) {
                    return Err(format!(
                        "squashfs block size {b} is not a power of two from 4096 to 1048576"
                    ));
                }
                size = b;
            }
            Ok(FsType::Squashfs {
                compression,
                block_size: size,
            })
        } else {
            if block_size.is_some_and(|b| b != 4096) {
                return Err("erofs writes 4096-byte blocks only".into());
            }
            Ok(FsType::Erofs(match compress {
                Some(c) => c.erofs()?,
                None => crate::write::erofs::Compression::Lz4hc(9),
            }))
        }
    }
}
