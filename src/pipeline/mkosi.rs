//! A mkosi configuration directory as [`Spec`]s, one per image that produces output, built in
//! `Dependencies=` order (`elsx build DIR`, the drop-in for mkosi).
//!
//! What mkosi does that matters here (mkosi/__init__.py, mkosi/distribution/opensuse.py): a fresh
//! openSUSE image gets `filesystem` and the release package; an image with `BaseTrees=` is
//! installed on top of them and, with `Overlay=yes`, keeps only what it adds; a sysext is a GPT
//! disk image whose root partition is erofs unless `SYSTEMD_REPART_OVERRIDE_FSTYPE_ROOT` says
//! otherwise, with verity only when asked; extension-release is named after `Output=`.

use super::spec::{Base, FsType, OutputKind, OutputSpec, ReleaseSpec, Scripts, Spec, TreeSource};
use super::{BuildSummary, Options};
use crate::distro;
use crate::mkosi::{self, Format, Host, Project, Resolved, Verity};
use crate::package::VerityMode;
use crate::repo;
use crate::report::{Event, Reporter};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// rpm's name for a systemd architecture name.
pub fn rpm_arch(systemd: &str) -> Result<&'static str> {
    Ok(match systemd {
        "x86-64" => "x86_64",
        "arm64" => "aarch64",
        "arm" => "armv7hl",
        "ppc64-le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => bail!("architecture {other} is not supported"),
    })
}

/// Loads the configuration the way mkosi would when run in `dir`.
pub fn load(dir: &Path) -> Result<Project> {
    let host = Host::detect();
    mkosi::load(dir, &host)
        .with_context(|| format!("reading the mkosi configuration in {}", dir.display()))
}

fn fs_type(img: &Resolved) -> Result<FsType> {
    let env = |k: &str| img.environment.get(k).map(|v| v.value.as_str());
    match env("SYSTEMD_REPART_OVERRIDE_FSTYPE_ROOT").or(env("SYSTEMD_REPART_OVERRIDE_FSTYPE")) {
        // systemd-repart runs mkfs.erofs without compression options unless told otherwise.
        None | Some("erofs") => Ok(FsType::Erofs(crate::write::erofs::Compression::None)),
        Some("squashfs") => Ok(FsType::SQUASHFS),
        Some(other) => bail!(
            "image {}: root file system {other:?} (from Environment=) is not supported: use erofs or squashfs",
            img.image
        ),
    }
}

/// The repositories of an image: mkosi's openSUSE layout, with `--mirror` and `--repo` applied.
fn repositories(
    img: &Resolved,
    arch: &str,
    opts: &Options,
) -> Result<Vec<repo::definition::RepoDef>> {
    let dist = img.distribution.value.as_str();
    if dist != "opensuse" {
        bail!(
            "{}: Distribution={dist}: elsx builds openSUSE images only",
            img.distribution.origin
        );
    }
    // RepositoryKeyCheck=no is zypper's --no-gpg-checks.
    let key_check = img.repository_key_check.value;
    if let Some(local) = &img.local_mirror {
        let mut d = distro::opensuse_repositories("tumbleweed", arch, None, None)?.remove(0);
        d.alias = "local-mirror".into();
        d.baseurl = local.value.clone();
        d.gpgkey = vec![crate::fetch::join(&d.baseurl, "repodata/repomd.xml.key")];
        d.gpgcheck = key_check;
        repo::apply_repo_keys(std::slice::from_mut(&mut d), &opts.repo_keys)?;
        return Ok(vec![d]);
    }
    let mirror = opts
        .mirror
        .clone()
        .or_else(|| img.mirror.as_ref().map(|m| m.value.clone()));
    let snapshot = img.snapshot.as_ref().map(|s| s.value.as_str());
    let mut defs =
        distro::opensuse_repositories(&img.release.value, arch, mirror.as_deref(), snapshot)?;
    let extra: Vec<String> = img.repositories.iter().map(|r| r.value.clone()).collect();
    for d in &mut defs {
        if extra.contains(&d.alias) {
            d.enabled = true;
        }
    }
    for d in &mut defs {
        d.gpgcheck = key_check;
    }
    repo::apply_overrides(&mut defs, None, &opts.repos);
    repo::apply_repo_keys(&mut defs, &opts.repo_keys)?;
    Ok(defs.into_iter().filter(|d| d.enabled).collect())
}

/// Every image of the project that produces output, as a build spec, in build order.
pub fn specs(project: &Project, opts: &Options) -> Result<Vec<Spec>> {
    let mut out: Vec<Spec> = Vec::new();
    // Outputs built earlier in this run, by path: a later image's BaseTrees= naming one of them
    // is that image's packages (plus what mkosi installs into a fresh image).
    let mut built: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for img in project.built() {
        let arch = rpm_arch(&img.architecture.value)?.to_owned();
        let release = img.release.value.clone();
        let own: Vec<String> = img.packages.iter().map(|p| p.value.clone()).collect();
        let out_dir = opts.output_dir.clone().unwrap_or_else(|| img.output_dir());
        let kind = match img.format.value {
            Format::Directory => OutputKind::Directory,
            Format::Sysext => OutputKind::Sysext {
                fs: fs_type(img)?,
                ddi: true,
                verity: match img.verity.value {
                    Verity::Disabled => VerityMode::None,
                    // Without a key mkosi uses the unsigned sysext definitions: no verity.
                    Verity::Auto if img.verity_key.is_none() => VerityMode::None,
                    Verity::Hash => VerityMode::Hash,
                    Verity::Defer => VerityMode::Defer,
                    Verity::Signed | Verity::Auto
                        if img.verity_key.is_none() || img.verity_certificate.is_none() =>
                    {
                        bail!(
                            "{}: Verity=signed needs VerityKey= and VerityCertificate=",
                            img.verity.origin
                        )
                    }
                    Verity::Signed | Verity::Auto => VerityMode::Signed,
                },
            },
            other => bail!(
                "{}: Format={other:?} is not supported by elsx (it builds sysext and directory images)",
                img.format.origin
            ),
        };
        let base_paths: Vec<&Valued> = img.base_trees.iter().collect();
        let (base, packages) = match base_paths.as_slice() {
            [] => {
                let mut p = distro::default_packages(&release, &own);
                p.extend(own.clone());
                (Base::None, p)
            }
            [one] => match built.get(&one.value) {
                Some(base_pkgs) if img.overlay.value => {
                    (Base::Packages(base_pkgs.clone()), own.clone())
                }
                Some(base_pkgs) => (Base::None, base_pkgs.iter().chain(&own).cloned().collect()),
                None if img.overlay.value => (Base::Tree(one.value.clone()), own.clone()),
                None => bail!(
                    "{}: BaseTrees={} without Overlay=yes is only supported for a base built in the same run",
                    one.origin,
                    one.value.display()
                ),
            },
            _ => bail!(
                "{}: more than one BaseTrees= entry is not supported yet",
                base_paths[1].origin
            ),
        };
        let trees = |v: &[mkosi::Valued<mkosi::Tree>]| -> Vec<TreeSource> {
            v.iter()
                .map(|t| TreeSource {
                    source: t.value.source.clone(),
                    target: t
                        .value
                        .target
                        .as_ref()
                        .map(|p| p.to_string_lossy().into_owned()),
                })
                .collect()
        };
        let mut env: BTreeMap<String, String> = img
            .environment
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect();
        env.insert("DISTRIBUTION".into(), img.distribution.value.clone());
        env.insert("RELEASE".into(), release.clone());
        if let Some(v) = &img.image_id {
            env.insert("IMAGE_ID".into(), v.value.clone());
        }
        if let Some(v) = &img.image_version {
            env.insert("IMAGE_VERSION".into(), v.value.clone());
        }
        let release_spec = match kind {
            OutputKind::Directory => ReleaseSpec::None,
            OutputKind::Sysext { .. } => ReleaseSpec::Mkosi {
                image_id: img.image_id.as_ref().map(|v| v.value.clone()),
                image_version: img.image_version.as_ref().map(|v| v.value.clone()),
                scope: Some(img.extension_scope()),
            },
        };
        let spec = Spec {
            label: format!("mkosi image {}", img.image),
            sysext_id: img.output.value.clone(),
            arch: arch.clone(),
            repos: repositories(img, &arch, opts)?,
            base,
            packages: packages.clone(),
            recommends: img.with_recommends.value,
            skeleton: trees(&img.skeleton_trees),
            extra: trees(&img.extra_trees),
            keep_changed: opts.keep_changed,
            release: release_spec,
            scripts: Scripts {
                postinst: img
                    .postinst_scripts
                    .iter()
                    .map(|s| s.value.clone())
                    .collect(),
                finalize: img
                    .finalize_scripts
                    .iter()
                    .map(|s| s.value.clone())
                    .collect(),
                srcdir: img.directory.clone(),
                env,
            },
            output: OutputSpec {
                dir: out_dir.clone(),
                name: img.output.value.clone(),
                kind,
                symlink: img.output_symlink().is_some(),
                signing: match (&img.verity_key, &img.verity_certificate) {
                    (Some(k), Some(c)) => Some(crate::package::sign::SigningFiles {
                        key: k.value.clone(),
                        certificate: c.value.clone(),
                    }),
                    _ => None,
                },
            },
        };
        let full: Vec<String> = match &spec.base {
            Base::Packages(b) => b.iter().chain(&packages).cloned().collect(),
            _ => packages,
        };
        // BaseTrees= was expanded with the configured OutputDirectory (%O), so the key is the
        // configured path even when -o writes elsewhere.
        built.insert(img.output_dir().join(&img.output.value), full);
        out.push(spec);
    }
    if out.is_empty() {
        bail!(
            "{}: no image produces output (every Format= is none)",
            project.directory.display()
        );
    }
    Ok(out)
}

type Valued = mkosi::Valued<PathBuf>;

/// Builds every image of a mkosi project in order, then runs each image's mkosi.postoutput.
pub fn build(dir: &Path, opts: &Options, r: &dyn Reporter) -> Result<Vec<BuildSummary>> {
    let project = load(dir)?;
    for w in &project.warnings {
        r.event(Event::Warning(&w.to_string()));
    }
    let specs = specs(&project, opts)?;
    let mut out = Vec::new();
    for (spec, img) in specs.iter().zip(project.built()) {
        let summary =
            super::build(spec, opts, r).with_context(|| format!("building {}", spec.label))?;
        for s in &img.postoutput_scripts {
            let empty = tempfile::tempdir()?;
            let m = crate::scripts::Mounts {
                buildroot: empty.path(),
                srcdir: &spec.scripts.srcdir,
                outputdir: &spec.output.dir,
            };
            crate::scripts::run(&s.value, &m, &super::script_env(spec))?;
        }
        out.push(summary);
    }
    Ok(out)
}
