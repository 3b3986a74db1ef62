//! Recipes (`*.toml`): the native description of a sysext build.
//!
//! Contract: [`parse`] takes the text and the file name and does no I/O; unknown keys are
//! errors naming the file and line.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Recipe {
    pub extension: Extension,
    #[serde(default)]
    pub repos: Repos,
    #[serde(default)]
    pub base: Base,
    #[serde(default)]
    pub packages: Packages,
    #[serde(default)]
    pub content: Content,
    #[serde(default)]
    pub output: Output,
}

#[derive(Clone, Debug, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Extension {
    /// SYSEXT_ID, and the image name unless `output.name` says otherwise.
    pub name: String,
    /// SYSEXT_VERSION_ID.
    pub version: Option<String>,
    /// ID= in extension-release; default: the base's os-release ID, else `_any`.
    pub os_id: Option<String>,
    /// SYSEXT_LEVEL; default: the base's, if it has one.
    pub sysext_level: Option<String>,
    /// SYSEXT_SCOPE; mkosi's default is all three.
    #[serde(default = "default_scope")]
    pub scope: Vec<String>,
    /// EXTENSION_RELOAD_MANAGER=1.
    #[serde(default)]
    pub reload_manager: bool,
    /// rpm architecture to build for; default: this machine's.
    pub architecture: Option<String>,
}

fn default_scope() -> Vec<String> {
    vec!["initrd".into(), "system".into(), "portable".into()]
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Repos {
    /// Aliases of repository definitions (shipped in `repos/`, or from `files`).
    #[serde(default, rename = "use")]
    pub use_: Vec<String>,
    /// Extra `.repo` files, relative to the recipe.
    #[serde(default)]
    pub files: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Base {
    /// Packages of the base image the extension is subtracted from.
    #[serde(default)]
    pub packages: Vec<String>,
    /// Or an existing base tree, relative to the recipe.
    pub tree: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Packages {
    #[serde(default)]
    pub install: Vec<String>,
    /// Install Recommends (off, as mkosi does).
    #[serde(default)]
    pub recommends: bool,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Content {
    /// Directories copied over the result, like mkosi.extra, relative to the recipe.
    #[serde(default)]
    pub extra: Vec<String>,
    /// Keep files that exist in the base with other content instead of dropping them.
    #[serde(default)]
    pub keep_changed: bool,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Squashfs,
    /// erofs, lz4hc-compressed (level 9, mkfs.erofs's default for lz4hc).
    Erofs,
}

#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Output {
    #[serde(default)]
    pub format: Format,
    /// Image file name without `.raw`; default: the extension name.
    pub name: Option<String>,
    /// Wrap the file system in a GPT disk image.
    #[serde(default)]
    pub ddi: bool,
    /// dm-verity (needs `ddi = true`): `none`, `hash`, `signed` (needs `key` and
    /// `certificate`) or `defer` (an empty signature partition for offline signing).
    #[serde(default)]
    pub verity: crate::package::VerityMode,
    /// PEM private key that signs the root hash (`verity = "signed"`), relative to the recipe.
    pub key: Option<String>,
    /// PEM certificate of that key, relative to the recipe.
    pub certificate: Option<String>,
    /// `ALG[:LEVEL]`, e.g. `zstd:15` (squashfs) or `lz4hc:12` (erofs).
    pub compress: Option<String>,
    /// squashfs data block size in bytes (default 131072).
    pub block_size: Option<u32>,
}

impl Output {
    /// The key and certificate, resolved against the recipe's directory.
    pub fn signing_files(
        &self,
        dir: &std::path::Path,
    ) -> Option<crate::package::sign::SigningFiles> {
        Some(crate::package::sign::SigningFiles {
            key: dir.join(self.key.as_ref()?),
            certificate: dir.join(self.certificate.as_ref()?),
        })
    }

    /// The file system these settings describe; the error names what is wrong with them.
    pub fn fs_type(&self) -> Result<crate::pipeline::spec::FsType, String> {
        let compress = match &self.compress {
            Some(c) => Some(c.parse::<crate::write::Compress>()?),
            None => None,
        };
        crate::pipeline::spec::FsType::new(
            self.format == Format::Squashfs,
            compress.as_ref(),
            self.block_size,
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct RecipeError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a recipe and checks what serde cannot.
pub fn parse(text: &str, file: &str) -> Result<Recipe, RecipeError> {
    let recipe: Recipe = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        RecipeError {
            file: file.to_owned(),
            line,
            column,
            message: e.message().trim().to_owned(),
        }
    })?;
    let at = |key: &str, message: String| {
        let (line, column) = text.find(key).map(|o| line_col(text, o)).unwrap_or((1, 1));
        RecipeError {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    };
    let name = &recipe.extension.name;
    if name.is_empty() || name.contains(['/', ' ']) || name.starts_with('.') {
        return Err(at(
            "name",
            format!("extension name {name:?} must be a non-empty file name"),
        ));
    }
    if recipe.base.tree.is_some() && !recipe.base.packages.is_empty() {
        return Err(at("tree", "[base] takes packages or tree, not both".into()));
    }
    if recipe.packages.install.is_empty() && recipe.content.extra.is_empty() {
        return Err(at("[packages]", "nothing to put in the extension: [packages] install and [content] extra are both empty".into()));
    }
    if recipe.output.verity != crate::package::VerityMode::None && !recipe.output.ddi {
        return Err(at(
            "verity",
            "verity needs a disk image: set ddi = true".into(),
        ));
    }
    let signed = recipe.output.verity == crate::package::VerityMode::Signed;
    let has_keys = recipe.output.key.is_some() && recipe.output.certificate.is_some();
    if signed && !has_keys {
        return Err(at(
            "verity",
            "verity = \"signed\" needs key and certificate in [output]".into(),
        ));
    }
    if !signed && (recipe.output.key.is_some() || recipe.output.certificate.is_some()) {
        return Err(at(
            if recipe.output.key.is_some() {
                "key"
            } else {
                "certificate"
            },
            "key and certificate sign the root hash: set verity = \"signed\"".into(),
        ));
    }
    if let Err(e) = recipe.output.fs_type() {
        let key = if recipe.output.compress.is_some() && !e.contains("block") {
            "compress"
        } else {
            "block-size"
        };
        return Err(at(key, e));
    }
    Ok(recipe)
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_names_line() {
        let e = parse(
            "[extension]\nname = \"t\"\n[packages]\ninstall = [\"a\"]\nbogus = 1\n",
            "r.toml",
        )
        .unwrap_err();
        assert_eq!(e.line, 5, "{e}");
        assert!(e.to_string().starts_with("r.toml:5:"), "{e}");
        assert!(e.message.contains("bogus"), "{e}");
    }

    #[test]
    fn defaults() {
        let r = parse(
            "[extension]\nname = \"t\"\n[packages]\ninstall = [\"a\"]\n",
            "r.toml",
        )
        .unwrap();
        assert_eq!(r.extension.scope, ["initrd", "system", "portable"]);
        assert_eq!(r.output.format, Format::Squashfs);
        assert!(!r.packages.recommends);
    }

    #[test]
    fn signed_verity_needs_both_keys_and_keys_need_signed() {
        let head =
            "[extension]\nname = \"t\"\n[packages]\ninstall = [\"a\"]\n[output]\nddi = true\n";
        let e = parse(
            &format!("{head}verity = \"signed\"\nkey = \"k.pem\"\n"),
            "r.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("needs key and certificate"), "{e}");
        assert_eq!(e.line, 7, "{e}");
        let e = parse(
            &format!("{head}verity = \"hash\"\ncertificate = \"c.pem\"\n"),
            "r.toml",
        )
        .unwrap_err();
        assert!(e.message.contains("set verity = \"signed\""), "{e}");
        assert_eq!(e.line, 8, "{e}");
        let r = parse(
            &format!("{head}verity = \"signed\"\nkey = \"k.pem\"\ncertificate = \"c.pem\"\n"),
            "r.toml",
        )
        .unwrap();
        let files = r
            .output
            .signing_files(std::path::Path::new("/recipes"))
            .unwrap();
        assert_eq!(files.key, std::path::Path::new("/recipes/k.pem"));
        let r = parse(&format!("{head}verity = \"defer\"\n"), "r.toml").unwrap();
        assert_eq!(r.output.verity, crate::package::VerityMode::Defer);
    }
}
