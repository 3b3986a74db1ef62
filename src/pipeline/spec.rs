//! What one image build needs, whatever described it (a recipe or a mkosi configuration).

use crate::package::VerityMode;
use crate::repo::definition::RepoDef;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file system inside an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FsType {
    Squashfs,
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
