//! openSUSE's repository layout and default packages, as mkosi's openSUSE support knows them
//! (`mkosi/distribution/opensuse.py`): used for mkosi configurations, which name a distribution
//! and a release instead of repositories.

use crate::repo::definition::RepoDef;

pub const DEFAULT_MIRROR: &str = "https://download.opensuse.org";

/// The openSUSE Project Signing Key's fingerprint, as `repos/*.repo` pin it.
pub const OPENSUSE_KEY: &str = "AD485664E901B867051AB15F35A2F86E29B700A4";

#[derive(Debug, thiserror::Error)]
pub enum DistroError {
    #[error("distribution {0:?} is not supported (elsx builds openSUSE images)")]
    Distribution(String),
    #[error("architecture {arch} is not supported by openSUSE {release}")]
    Arch { arch: String, release: String },
}

fn join_mirror(mirror: &str, path: &str) -> String {
    format!(
        "{}/{}",
        mirror.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

fn def(alias: &str, url: String, enabled: bool) -> RepoDef {
    let mut d = RepoDef::new(alias, &url, "mkosi openSUSE defaults");
    d.enabled = enabled;
    // Signed by the openSUSE Project Signing Key, whose copy each repository serves.
    d.gpgkey = vec![format!(
        "{}/repodata/repomd.xml.key",
        url.trim_end_matches('/')
    )];
    d.gpgkey_fingerprint = vec![OPENSUSE_KEY.to_owned()];
    d
}

/// The repositories mkosi configures for openSUSE `release` on `arch` (rpm names), enabled ones
/// first. `snapshot` selects a Tumbleweed snapshot under `history/`.
pub fn opensuse_repositories(
    release: &str,
    arch: &str,
    mirror: Option<&str>,
    snapshot: Option<&str>,
) -> Result<Vec<RepoDef>, DistroError> {
    let mirror = mirror.unwrap_or(DEFAULT_MIRROR);
    let unsupported = || DistroError::Arch {
        arch: arch.to_owned(),
        release: release.to_owned(),
    };
    let mut out = Vec::new();
    if release == "tumbleweed" {
        let subdir = match (snapshot, arch) {
            (Some(s), "x86_64") => format!("history/{s}"),
            (Some(_), _) => return Err(unsupported()),
            (None, "x86_64") => String::new(),
            (None, "aarch64") => "ports/aarch64".into(),
            (None, "armv7hl") => "ports/armv7hl".into(),
            (None, "ppc64le" | "ppc64") => "ports/ppc".into(),
            (None, "s390x") => "ports/zsystems".into(),
            (None, "riscv64") => "ports/riscv".into(),
            _ => return Err(unsupported()),
        };
        for repo in ["oss", "non-oss"] {
            out.push(def(
                repo,
                join_mirror(mirror, &format!("{subdir}/tumbleweed/repo/{repo}")),
                repo == "oss",
            ));
        }
        if snapshot.is_none() {
            out.push(def(
                "oss-update",
                join_mirror(mirror, &format!("{subdir}/update/tumbleweed")),
                true,
            ));
            out.push(def(
                "non-oss-update",
                join_mirror(mirror, &format!("{subdir}/update/tumbleweed-non-oss")),
                false,
            ));
        }
    } else {
        let rel = match release {
            "current" | "stable" | "leap" => "openSUSE-current".to_owned(),
            r => format!("leap/{r}"),
        };
        let subdir = match arch {
            "x86_64" => "",
            "aarch64" => "ports/aarch64/",
            "armv7hl" => "ports/armv7hl/",
            "ppc64le" | "ppc64" => "ports/ppc/",
            "s390x" => "ports/zsystems/",
            _ => return Err(unsupported()),
        };
        for repo in ["oss", "non-oss"] {
            out.push(def(
                repo,
                join_mirror(mirror, &format!("{subdir}distribution/{rel}/repo/{repo}")),
                true,
            ));
        }
        let update = if is_leap16_or_later(release) {
            format!("{subdir}distribution/{rel}/repo")
        } else {
            format!("{subdir}update/{rel}")
        };
        for repo in ["oss", "non-oss"] {
            out.push(def(
                &format!("{repo}-update"),
                join_mirror(mirror, &format!("{update}/{repo}")),
                true,
            ));
        }
    }
    out.sort_by_key(|d| !d.enabled);
    Ok(out)
}

fn is_leap16_or_later(release: &str) -> bool {
    matches!(release, "current" | "stable" | "leap")
        || release
            .split('.')
            .next()
            .and_then(|m| m.parse::<u32>().ok())
            .is_some_and(|m| m >= 16)
}

/// What mkosi installs into every fresh openSUSE image besides the listed packages: the
/// `filesystem` package and the release package, unless a `*-release` package is listed.
pub fn default_packages(release: &str, packages: &[String]) -> Vec<String> {
    let mut out = vec!["filesystem".to_owned()];
    if !packages.iter().any(|p| p.ends_with("-release")) {
        out.push(
            if release == "tumbleweed" {
                "openSUSE-release"
            } else if is_leap16_or_later(release) {
                "Leap-release"
            } else {
                "openSUSE-release"
            }
            .to_owned(),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tumbleweed_layout() {
        let r = opensuse_repositories("tumbleweed", "x86_64", Some("http://127.0.0.1:8080/"), None)
            .unwrap();
        let enabled: Vec<(&str, &str)> = r
            .iter()
            .filter(|d| d.enabled)
            .map(|d| (d.alias.as_str(), d.baseurl.as_str()))
            .collect();
        assert_eq!(
            enabled,
            [
                ("oss", "http://127.0.0.1:8080/tumbleweed/repo/oss"),
                ("oss-update", "http://127.0.0.1:8080/update/tumbleweed")
            ]
        );
        let ports = opensuse_repositories("tumbleweed", "aarch64", None, None).unwrap();
        assert_eq!(
            ports[0].baseurl,
            "https://download.opensuse.org/ports/aarch64/tumbleweed/repo/oss"
        );
        let snap = opensuse_repositories("tumbleweed", "x86_64", None, Some("20261120")).unwrap();
        assert_eq!(
            snap[0].baseurl,
            "https://download.opensuse.org/history/20261120/tumbleweed/repo/oss"
        );
        assert!(snap.iter().all(|d| !d.alias.contains("update")));
    }

    #[test]
    fn release_packages() {
        assert_eq!(
            default_packages("tumbleweed", &["strace".into()]),
            ["filesystem", "openSUSE-release"]
        );
        assert_eq!(
            default_packages("16.0", &[]),
            ["filesystem", "Leap-release"]
        );
        assert_eq!(
            default_packages("tumbleweed", &["MicroOS-release".into()]),
            ["filesystem"]
        );
    }
}
