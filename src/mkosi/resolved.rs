//! One image's final configuration, typed, every value with its origin; mkosi's output naming;
//! the `mkosi summary`-like explanation; the same data for `--json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use super::settings::{self, SETTINGS, Setting, Support};
use super::value::{Slot, Value};
use super::{Origin, Valued};

/// `SOURCE[:TARGET]` of `ExtraTrees=` / `SkeletonTrees=`; no target means the image root.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tree {
    pub source: PathBuf,
    pub target: Option<PathBuf>,
}

impl fmt::Display for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source.display())?;
        if let Some(t) = &self.target {
            write!(f, ":{}", t.display())?;
        }
        Ok(())
    }
}

/// mkosi's `Format=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Confext,
    Cpio,
    Directory,
    Disk,
    Esp,
    None,
    Portable,
    Sysext,
    Tar,
    Uki,
    Oci,
    Addon,
}

impl Format {
    pub fn parse(s: &str) -> Option<Format> {
        Some(match s {
            "confext" => Format::Confext,
            "cpio" => Format::Cpio,
            "directory" => Format::Directory,
            "disk" => Format::Disk,
            "esp" => Format::Esp,
            "none" => Format::None,
            "portable" => Format::Portable,
            "sysext" => Format::Sysext,
            "tar" => Format::Tar,
            "uki" => Format::Uki,
            "oci" => Format::Oci,
            "addon" => Format::Addon,
            _ => return None,
        })
    }

    /// mkosi's `OutputFormat.extension()`: the default `OutputExtension=`.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Confext | Format::Disk | Format::Esp | Format::Portable | Format::Sysext => {
                "raw"
            }
            Format::Cpio => "cpio",
            Format::Tar => "tar",
            Format::Uki | Format::Addon => "efi",
            Format::Directory | Format::None | Format::Oci => "",
        }
    }

    /// Whether `CompressOutput=` compresses the output file as a whole.
    pub fn uses_outer_compression(self) -> bool {
        matches!(
            self,
            Format::Tar
                | Format::Cpio
                | Format::Disk
                | Format::Sysext
                | Format::Confext
                | Format::Portable
        )
    }

    /// mkosi's default `CompressOutput=` for the format.
    pub fn default_compression(self) -> &'static str {
        match self {
            Format::Tar | Format::Cpio | Format::Uki | Format::Esp | Format::Addon => "zstd",
            Format::Oci => "gz",
            _ => "none",
        }
    }
}

/// mkosi's `Verity=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verity {
    Disabled,
    Hash,
    Signed,
    Defer,
    Auto,
}

/// mkosi's ConfigFeature (`CleanPackageMetadata=`, `SELinuxRelabel=`, `Bootable=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Feature {
    Auto,
    Enabled,
    Disabled,
}

/// One setting's final value as the summary shows it (scalars have one item).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Shown {
    pub section: &'static str,
    pub name: &'static str,
    pub values: Vec<Valued<String>>,
}

/// One image, resolved.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolved {
    /// `main` for the top level, else the subimage's name in `mkosi.images/`.
    pub image: String,
    /// Whether building produces anything (`Format=` is not `none`).
    pub build: bool,
    /// The directory mkosi runs in (`%D`).
    pub directory: PathBuf,
    /// Where `mkosi.conf` is (the directory, or its `mkosi/` subdirectory).
    pub config_directory: PathBuf,
    /// Config files read, in order.
    pub files: Vec<PathBuf>,

    pub profiles: Vec<Valued<String>>,
    pub dependencies: Vec<Valued<String>>,
    pub minimum_version: Option<Valued<String>>,
    pub pass_environment: Vec<Valued<String>>,

    pub distribution: Valued<String>,
    pub release: Valued<String>,
    /// systemd's name (`x86-64`, `arm64`).
    pub architecture: Valued<String>,
    pub mirror: Option<Valued<String>>,
    pub snapshot: Option<Valued<String>>,
    pub local_mirror: Option<Valued<String>>,
    pub repository_key_check: Valued<bool>,
    pub repositories: Vec<Valued<String>>,

    pub format: Valued<Format>,
    pub output: Valued<String>,
    pub output_extension: Valued<String>,
    /// `none`, `zstd`, `xz`, `bz2`, `gz`, `lz4` or `lzma`.
    pub compress_output: Valued<String>,
    pub output_directory: Option<Valued<PathBuf>>,
    pub image_id: Option<Valued<String>>,
    pub image_version: Option<Valued<String>>,
    pub split_artifacts: Vec<Valued<String>>,
    pub overlay: Valued<bool>,

    pub packages: Vec<Valued<String>>,
    pub with_recommends: Valued<bool>,
    pub with_docs: Valued<bool>,
    pub base_trees: Vec<Valued<PathBuf>>,
    pub skeleton_trees: Vec<Valued<Tree>>,
    pub extra_trees: Vec<Valued<Tree>>,
    pub remove_packages: Vec<Valued<String>>,
    pub remove_files: Vec<Valued<String>>,
    pub clean_package_metadata: Valued<Feature>,
    pub source_date_epoch: Option<Valued<u64>>,
    pub postinst_scripts: Vec<Valued<PathBuf>>,
    pub finalize_scripts: Vec<Valued<PathBuf>>,
    pub postoutput_scripts: Vec<Valued<PathBuf>>,
    pub bootable: Valued<Feature>,
    pub selinux_relabel: Valued<Feature>,

    pub secure_boot: Valued<bool>,
    pub verity: Valued<Verity>,
    pub verity_key: Option<Valued<PathBuf>>,
    pub verity_certificate: Option<Valued<PathBuf>>,

    /// The scripts' environment: `EnvironmentFiles=` (with `mkosi.env`) first, then
    /// `Environment=`; later keys win.
    pub environment: BTreeMap<String, Valued<String>>,
    pub environment_files: Vec<Valued<PathBuf>>,
    pub tools_tree: Option<Valued<String>>,
    pub with_network: Valued<bool>,

    /// Every setting with a value other than an empty default, in table order.
    pub settings: Vec<Shown>,
}

/// Reads typed values out of a finalized namespace (every setting present).
pub(crate) struct Final<'a>(pub &'a BTreeMap<&'static str, Slot>);

impl Final<'_> {
    fn slot(&self, name: &str) -> Option<&Value> {
        debug_assert!(settings::lookup(name).is_some(), "{name}");
        self.0.get(name).and_then(|s| s.as_ref())
    }

    pub fn one(&self, name: &str) -> Option<Valued<String>> {
        match self.slot(name) {
            Some(Value::One(v)) => Some(v.clone()),
            _ => None,
        }
    }

    fn must(&self, name: &str) -> Valued<String> {
        self.one(name)
            .unwrap_or_else(|| Valued::new(String::new(), Origin::Default))
    }

    pub fn list(&self, name: &str) -> Vec<Valued<String>> {
        self.slot(name).map(Value::valued).unwrap_or_default()
    }

    fn paths(&self, name: &str) -> Vec<Valued<PathBuf>> {
        self.list(name)
            .into_iter()
            .map(|v| v.map(PathBuf::from))
            .collect()
    }

    fn trees(&self, name: &str) -> Vec<Valued<Tree>> {
        match self.slot(name) {
            Some(Value::Trees(t)) => t.clone(),
            _ => Vec::new(),
        }
    }

    pub fn map(&self, name: &str) -> BTreeMap<String, Valued<String>> {
        match self.slot(name) {
            Some(Value::Map(m)) => m.clone(),
            _ => BTreeMap::new(),
        }
    }

    fn bool(&self, name: &str) -> Valued<bool> {
        self.must(name).map(|v| v == "yes")
    }

    fn feature(&self, name: &str) -> Valued<Feature> {
        self.must(name).map(|v| match v.as_str() {
            "enabled" => Feature::Enabled,
            "disabled" => Feature::Disabled,
            _ => Feature::Auto,
        })
    }
}

/// What the loader knows besides the namespace.
pub(crate) struct Frame {
    pub image: String,
    pub directory: PathBuf,
    pub config_directory: PathBuf,
    pub files: Vec<PathBuf>,
    /// Entries of the environment files, in order.
    pub file_environment: Vec<(String, Valued<String>)>,
}

impl Resolved {
    pub(crate) fn new(ns: &BTreeMap<&'static str, Slot>, frame: Frame) -> Resolved {
        let f = Final(ns);
        let format = f
            .must("Format")
            .map(|v| Format::parse(&v).unwrap_or(Format::Disk));
        let verity = f.must("Verity").map(|v| match v.as_str() {
            "disabled" => Verity::Disabled,
            "hash" => Verity::Hash,
            "signed" => Verity::Signed,
            "defer" => Verity::Defer,
            _ => Verity::Auto,
        });
        let mut environment: BTreeMap<String, Valued<String>> =
            frame.file_environment.into_iter().collect();
        environment.extend(f.map("Environment"));
        let settings = SETTINGS
            .iter()
            .filter_map(|s| shown(s, ns.get(s.name).and_then(|v| v.as_ref())))
            .collect();
        Resolved {
            build: format.value != Format::None,
            image: frame.image,
            directory: frame.directory,
            config_directory: frame.config_directory,
            files: frame.files,
            profiles: f.list("Profiles"),
            dependencies: f.list("Dependencies"),
            minimum_version: f.one("MinimumVersion"),
            pass_environment: f.list("PassEnvironment"),
            distribution: f.must("Distribution"),
            release: f.must("Release"),
            architecture: f.must("Architecture"),
            mirror: f.one("Mirror"),
            snapshot: f.one("Snapshot"),
            local_mirror: f.one("LocalMirror"),
            repository_key_check: f.bool("RepositoryKeyCheck"),
            repositories: f.list("Repositories"),
            format,
            output: f.must("Output"),
            output_extension: f.must("OutputExtension"),
            compress_output: f.must("CompressOutput"),
            output_directory: f.one("OutputDirectory").map(|v| v.map(PathBuf::from)),
            image_id: f.one("ImageId"),
            image_version: f.one("ImageVersion"),
            split_artifacts: f.list("SplitArtifacts"),
            overlay: f.bool("Overlay"),
            packages: f.list("Packages"),
            with_recommends: f.bool("WithRecommends"),
            with_docs: f.bool("WithDocs"),
            base_trees: f.paths("BaseTrees"),
            skeleton_trees: f.trees("SkeletonTrees"),
            extra_trees: f.trees("ExtraTrees"),
            remove_packages: f.list("RemovePackages"),
            remove_files: f.list("RemoveFiles"),
            clean_package_metadata: f.feature("CleanPackageMetadata"),
            source_date_epoch: f
                .one("SourceDateEpoch")
                .and_then(|v| v.value.parse().ok().map(|n| Valued::new(n, v.origin))),
            postinst_scripts: f.paths("PostInstallationScripts"),
            finalize_scripts: f.paths("FinalizeScripts"),
            postoutput_scripts: f.paths("PostOutputScripts"),
            bootable: f.feature("Bootable"),
            selinux_relabel: f.feature("SELinuxRelabel"),
            secure_boot: f.bool("SecureBoot"),
            verity,
            verity_key: f.one("VerityKey").map(|v| v.map(PathBuf::from)),
            verity_certificate: f.one("VerityCertificate").map(|v| v.map(PathBuf::from)),
            environment,
            environment_files: f.paths("EnvironmentFiles"),
            tools_tree: f.one("ToolsTree"),
            with_network: f.bool("WithNetwork"),
            settings,
        }
    }

    /// The output file's name, as mkosi's `output_with_compression`: `Output=`, then
    /// `.OutputExtension` unless empty, then the compression's extension for formats compressed
    /// as a whole. `None` for `Format=none`.
    pub fn output_file(&self) -> Option<String> {
        if !self.build {
            return None;
        }
        let mut name = self.output.value.clone();
        if !self.output_extension.value.is_empty() {
            name.push('.');
            name.push_str(&self.output_extension.value);
        }
        let c = self.compress_output.value.as_str();
        if c != "none" && self.format.value.uses_outer_compression() {
            name.push('.');
            name.push_str(if c == "zstd" { "zst" } else { c });
        }
        Some(name)
    }

    /// mkosi links `Output=` to the output file when their names differ (e.g.
    /// `tools-1.0_1.0_x86-64` → `tools-1.0_1.0_x86-64.raw`); directory outputs have no link.
    pub fn output_symlink(&self) -> Option<String> {
        let file = self.output_file()?;
        (file != self.output.value).then(|| self.output.value.clone())
    }

    /// `OutputDirectory=`, else the config directory (mkosi's `output_dir_or_cwd()`).
    pub fn output_dir(&self) -> PathBuf {
        match &self.output_directory {
            Some(d) => d.value.clone(),
            None => self.config_directory.clone(),
        }
    }

    /// Where the output file goes.
    pub fn output_path(&self) -> Option<PathBuf> {
        self.output_file().map(|f| self.output_dir().join(f))
    }

    /// The extension-release file mkosi writes inside the image: named after `Output=`.
    pub fn extension_release_path(&self) -> Option<String> {
        match self.format.value {
            Format::Sysext => Some(format!(
                "usr/lib/extension-release.d/extension-release.{}",
                self.output.value
            )),
            Format::Confext => Some(format!(
                "etc/extension-release.d/extension-release.{}",
                self.output.value
            )),
            _ => None,
        }
    }

    /// `SYSEXT_SCOPE` (`CONFEXT_SCOPE` for confexts) from the environment, else mkosi's default.
    pub fn extension_scope(&self) -> String {
        let key = if self.format.value == Format::Confext {
            "CONFEXT_SCOPE"
        } else {
            "SYSEXT_SCOPE"
        };
        self.environment
            .get(key)
            .map(|v| v.value.clone())
            .unwrap_or_else(|| "initrd system portable".into())
    }

    /// The value of a setting by name, as the summary shows it.
    pub fn setting(&self, name: &str) -> Option<&Shown> {
        self.settings.iter().find(|s| s.name == name)
    }

    /// A `mkosi summary`-like explanation: every setting with its value and origin.
    pub fn summary(&self) -> String {
        let mut out = format!("IMAGE: {}\n", self.image);
        match (self.output_path(), self.output_symlink()) {
            (Some(p), Some(l)) => {
                out.push_str(&format!("    output: {} (link {l})\n", p.display()))
            }
            (Some(p), None) => out.push_str(&format!("    output: {}\n", p.display())),
            (None, _) => out.push_str("    output: none (Format=none: not built)\n"),
        }
        let mut section = "";
        for s in &self.settings {
            if s.section != section {
                section = s.section;
                out.push_str(&format!("    [{section}]\n"));
            }
            // Consecutive items with the same origin share a line.
            let mut groups: Vec<(Vec<&str>, &Origin)> = Vec::new();
            for v in &s.values {
                match groups.last_mut() {
                    Some((items, o)) if *o == &v.origin => items.push(&v.value),
                    _ => groups.push((vec![&v.value], &v.origin)),
                }
            }
            if groups.is_empty() {
                groups.push((vec![], &Origin::Default));
            }
            for (i, (items, origin)) in groups.iter().enumerate() {
                let key = if i == 0 {
                    format!("{}=", s.name)
                } else {
                    " ".repeat(s.name.len() + 1)
                };
                let line = format!("        {key}{}", items.join(" "));
                out.push_str(&format!("{line:<60} {origin}\n"));
            }
        }
        out
    }
}

/// The summary line of one setting: set values always; defaults only for implemented scalars.
fn shown(s: &'static Setting, value: Option<&Value>) -> Option<Shown> {
    let value = value?;
    let values = value.valued();
    if values.is_empty() {
        return None;
    }
    let all_default = values.iter().all(|v| v.origin.is_default());
    if all_default && (s.support != Support::Yes || s.is_list() || s.is_map()) {
        return None;
    }
    Some(Shown {
        section: s.section,
        name: s.name,
        values,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        for f in settings::FORMATS {
            assert!(Format::parse(f).is_some(), "{f}");
        }
        assert_eq!(Format::Sysext.extension(), "raw");
        assert_eq!(Format::Directory.extension(), "");
        assert!(Format::Sysext.uses_outer_compression());
        assert!(!Format::Directory.uses_outer_compression());
        assert_eq!(Format::Tar.default_compression(), "zstd");
        assert_eq!(Format::Sysext.default_compression(), "none");
    }
}
