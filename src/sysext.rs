//! The extension-release file and the os-release data it is derived from.

use crate::tree::{Entry, Kind, Tree};

/// `KEY=value` pairs of an os-release file, in order, with quotes removed.
pub fn parse_os_release(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            if l.starts_with('#') {
                return None;
            }
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// The os-release of a tree: `etc/os-release` (followed inside the tree), else `usr/lib/os-release`.
pub fn os_release(t: &Tree) -> Option<Vec<(String, String)>> {
    for p in ["etc/os-release", "usr/lib/os-release"] {
        if let Some((
            _,
            Entry {
                kind: Kind::File(d),
                ..
            },
        )) = t.resolve(p)
        {
            return Some(parse_os_release(&String::from_utf8_lossy(d)));
        }
    }
    None
}

/// systemd's architecture name for an rpm architecture.
pub fn systemd_arch(rpm_arch: &str) -> &str {
    match rpm_arch {
        "x86_64" => "x86-64",
        "aarch64" => "arm64",
        "i586" | "i686" => "x86",
        "ppc64le" => "ppc64-le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "armv7hl" => "arm",
        other => other,
    }
}

/// What goes into extension-release.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Release {
    pub id: String,
    /// VERSION_ID, or SYSEXT_LEVEL when the base has one.
    pub version_id: Option<String>,
    pub sysext_level: Option<String>,
    pub sysext_id: String,
    pub sysext_version_id: Option<String>,
    pub scope: Vec<String>,
    pub architecture: Option<String>,
    pub reload_manager: bool,
}

impl Release {
    /// Fields from the recipe where given, else from the base's os-release (DESIGN.md).
    pub fn derive(
        base: Option<&[(String, String)]>,
        name: &str,
        version: Option<&str>,
        os_id: Option<&str>,
        scope: &[String],
        arch: &str,
        reload_manager: bool,
    ) -> Release {
        let get = |k: &str| {
            base.and_then(|b| {
                b.iter()
                    .rev()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| v.clone())
            })
        };
        let id = os_id
            .map(str::to_owned)
            .or_else(|| get("ID"))
            .unwrap_or_else(|| "_any".into());
        let sysext_level = get("SYSEXT_LEVEL");
        // ID=_any matches every host: a version would be meaningless there.
        let version_id = if id == "_any" || sysext_level.is_some() {
            None
        } else {
            get("VERSION_ID")
        };
        Release {
            id,
            version_id,
            sysext_level,
            sysext_id: name.to_owned(),
            sysext_version_id: version.map(str::to_owned),
            scope: scope.to_vec(),
            architecture: Some(systemd_arch(arch).to_owned()),
            reload_manager,
        }
    }

    pub fn render(&self) -> String {
        let mut s = format!("ID={}\n", self.id);
        if let Some(v) = &self.version_id {
            s += &format!("VERSION_ID={v}\n");
        }
        if let Some(v) = &self.sysext_level {
            s += &format!("SYSEXT_LEVEL={v}\n");
        }
        s += &format!("SYSEXT_ID={}\n", self.sysext_id);
        if let Some(v) = &self.sysext_version_id {
            s += &format!("SYSEXT_VERSION_ID={v}\n");
        }
        if !self.scope.is_empty() {
            s += &format!("SYSEXT_SCOPE={}\n", self.scope.join(" "));
        }
        if let Some(a) = &self.architecture {
            s += &format!("ARCHITECTURE={a}\n");
        }
        if self.reload_manager {
            s += "EXTENSION_RELOAD_MANAGER=1\n";
        }
        s
    }

    /// Writes `usr/lib/extension-release.d/extension-release.<image_name>`; keys already in a
    /// file there (from extra trees) win over the derived ones.
    pub fn install(&self, t: &mut Tree, image_name: &str, mtime: u64) -> String {
        let path = format!("usr/lib/extension-release.d/extension-release.{image_name}");
        let mut text = self.render();
        if let Some(Entry {
            kind: Kind::File(old),
            ..
        }) = t.get(&path)
        {
            let old = String::from_utf8_lossy(old).into_owned();
            let keys: Vec<String> = parse_os_release(&old).into_iter().map(|(k, _)| k).collect();
            let mut merged: String = text
                .lines()
                .filter(|l| {
                    l.split_once('=')
                        .is_none_or(|(k, _)| !keys.iter().any(|x| x == k))
                })
                .map(|l| format!("{l}\n"))
                .collect();
            merged.push_str(&old);
            if !merged.ends_with('\n') {
                merged.push('\n');
            }
            text = merged;
        }
        t.insert(path.clone(), Entry::file(text.into_bytes(), 0o644, mtime));
        path
    }
}

/// mkosi's `configure_extension_release()`: keeps an existing
/// `usr/lib/extension-release.d/extension-release.NAME` (from extra trees), then appends what is
/// missing: ID (else `_any`), SYSEXT_LEVEL and VERSION_ID from `usr/lib/os-release`, SYSEXT_ID
/// from ImageId=, SYSEXT_VERSION_ID from ImageVersion=, SYSEXT_SCOPE (`SYSEXT_SCOPE` from
/// Environment=, else `initrd system portable`) and ARCHITECTURE. Returns the file's path.
pub fn install_mkosi_release(
    t: &mut Tree,
    name: &str,
    image_id: Option<&str>,
    image_version: Option<&str>,
    scope: Option<&str>,
    rpm_arch: &str,
    mtime: u64,
) -> String {
    let path = format!("usr/lib/extension-release.d/extension-release.{name}");
    let read = |p: &str| match t.get(p) {
        Some(Entry {
            kind: Kind::File(d),
            ..
        }) => parse_os_release(&String::from_utf8_lossy(d)),
        _ => Vec::new(),
    };
    let os = read("usr/lib/os-release");
    let ext = read(&path);
    let has = |k: &str| ext.iter().any(|(key, _)| key == k);
    let os_get = |k: &str| {
        os.iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let mut text: String = ext.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let mut add = |k: &str, v: Option<&str>| {
        if let (false, Some(v)) = (has(k), v) {
            text.push_str(&format!("{k}={v}\n"));
        }
    };
    add("ID", Some(os_get("ID").unwrap_or("_any")));
    add("SYSEXT_LEVEL", os_get("SYSEXT_LEVEL"));
    add("VERSION_ID", os_get("VERSION_ID"));
    add("SYSEXT_ID", image_id);
    add("SYSEXT_VERSION_ID", image_version);
    add(
        "SYSEXT_SCOPE",
        Some(scope.unwrap_or("initrd system portable")),
    );
    add("ARCHITECTURE", Some(systemd_arch(rpm_arch)));
    t.insert(path.clone(), Entry::file(text.into_bytes(), 0o644, mtime));
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mkosi_release_keeps_existing_keys_first() {
        let mut t = Tree::new();
        let file = |d: &str| Entry::file(d.as_bytes().to_vec(), 0o644, 0);
        t.insert(
            "usr/lib/os-release".into(),
            file("ID=\"opensuse-tumbleweed\"\nVERSION_ID=\"20261120\"\n"),
        );
        t.insert(
            "usr/lib/extension-release.d/extension-release.x".into(),
            file("SYSEXT_SCOPE=initrd\n"),
        );
        let p = install_mkosi_release(&mut t, "x", None, Some("1.0"), Some("system"), "x86_64", 0);
        let Some(Entry {
            kind: Kind::File(d),
            ..
        }) = t.get(&p)
        else {
            panic!()
        };
        assert_eq!(
            String::from_utf8_lossy(d),
            "SYSEXT_SCOPE=initrd\nID=opensuse-tumbleweed\nVERSION_ID=20261120\nSYSEXT_VERSION_ID=1.0\nARCHITECTURE=x86-64\n"
        );
    }

    #[test]
    fn derives_from_base() {
        let base = parse_os_release(
            "NAME=\"openSUSE Tumbleweed\"\nID=\"opensuse-tumbleweed\"\nVERSION_ID=\"20261120\"\n",
        );
        let r = Release::derive(
            Some(&base),
            "tools",
            Some("1.0"),
            None,
            &["system".into()],
            "x86_64",
            false,
        );
        assert_eq!(
            r.render(),
            "ID=opensuse-tumbleweed\nVERSION_ID=20261120\nSYSEXT_ID=tools\nSYSEXT_VERSION_ID=1.0\nSYSEXT_SCOPE=system\nARCHITECTURE=x86-64\n"
        );
        let any = Release::derive(Some(&base), "t", None, Some("_any"), &[], "aarch64", true);
        assert_eq!(
            any.render(),
            "ID=_any\nSYSEXT_ID=t\nARCHITECTURE=arm64\nEXTENSION_RELOAD_MANAGER=1\n"
        );
    }
}
