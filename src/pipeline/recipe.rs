//! A recipe (`*.toml`) as a [`Spec`].

use super::spec::{Base, OutputKind, OutputSpec, ReleaseSpec, Scripts, Spec, TreeSource};
use super::{Options, definitions};
use crate::repo;
use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// Reads a recipe and applies the command line's repository overrides.
pub fn load(path: &Path, opts: &Options) -> Result<Spec> {
    let text = fs_err::read_to_string(path)?;
    let recipe = crate::recipe::parse(&text, &path.display().to_string())?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_owned();
    let arch = recipe
        .extension
        .architecture
        .clone()
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    let files: Vec<PathBuf> = recipe.repos.files.iter().map(|f| dir.join(f)).collect();
    let defs = definitions(opts, &arch, &files)?;
    let mut aliases = recipe.repos.use_.clone();
    for (name, _) in &opts.repos {
        if !aliases.contains(name) {
            aliases.push(name.clone());
        }
    }
    if aliases.is_empty() {
        bail!(
            "{}: the recipe uses no repository: add [repos] use = [\"ALIAS\"], or pass --repo NAME=URL",
            path.display()
        );
    }
    let repos = repo::select(&defs, &aliases)?
        .into_iter()
        .cloned()
        .collect();
    let base = match (&recipe.base.tree, recipe.base.packages.is_empty()) {
        (Some(t), _) => Base::Tree(dir.join(t)),
        (None, false) => Base::Packages(recipe.base.packages.clone()),
        (None, true) => Base::None,
    };
    let ext = &recipe.extension;
    let name = recipe
        .output
        .name
        .clone()
        .unwrap_or_else(|| ext.name.clone());
    let fs = recipe
        .output
        .fs_type()
        .map_err(|e| anyhow::anyhow!("{}: [output]: {e}", path.display()))?;
    Ok(Spec {
        label: format!("recipe {}", path.display()),
        sysext_id: ext.name.clone(),
        arch,
        repos,
        base,
        packages: recipe.packages.install.clone(),
        recommends: recipe.packages.recommends,
        skeleton: Vec::new(),
        extra: recipe
            .content
            .extra
            .iter()
            .map(|e| TreeSource {
                source: dir.join(e),
                target: None,
            })
            .collect(),
        keep_changed: recipe.content.keep_changed,
        release: ReleaseSpec::Recipe {
            id: ext.os_id.clone(),
            version: ext.version.clone(),
            sysext_level: ext.sysext_level.clone(),
            scope: ext.scope.clone(),
            reload_manager: ext.reload_manager,
        },
        scripts: Scripts {
            srcdir: dir.clone(),
            ..Default::default()
        },
        output: OutputSpec {
            dir: opts.output_dir.clone().unwrap_or_else(|| dir.join("out")),
            name,
            kind: OutputKind::Sysext {
                fs,
                ddi: recipe.output.ddi,
                verity: recipe.output.verity,
            },
            symlink: false,
            signing: recipe.output.signing_files(&dir),
        },
    })
}
