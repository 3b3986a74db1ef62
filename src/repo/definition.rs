//! Repository definitions in zypper's `.repo` syntax (INI: `[alias]` then `key=value` lines).
//!
//! Contract: [`parse`] takes the text and the file name for messages and does no I/O.

use std::collections::BTreeMap;

/// One `[alias]` section of a `.repo` file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RepoDef {
    pub alias: String,
    pub name: String,
    pub baseurl: String,
    pub enabled: bool,
    /// zypper's `gpgcheck` (default on). With `repo_gpgcheck` and `pkg_gpgcheck` (unset: they
    /// follow it), it decides which signatures are checked: see [`RepoDef::repo_gpgcheck`].
    pub gpgcheck: bool,
    pub repo_gpgcheck: Option<bool>,
    pub pkg_gpgcheck: Option<bool>,
    /// Key URLs (`file://`, `http(s)://`; a bare path is relative to the `.repo` file).
    pub gpgkey: Vec<String>,
    /// `gpgkey-fingerprint=` (an elsx key; zypper ignores it): when set, the only keys this
    /// repository may be signed with, normalized (upper-case hex, no spaces).
    pub gpgkey_fingerprint: Vec<String>,
    /// zypper's priority: lower numbers win; 99 when unset.
    pub priority: u32,
    /// Where the definition came from, for messages: `file:line`.
    pub origin: String,
    /// Keys elsx reads but does not act on yet, kept so a dump shows them.
    pub other: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct DefinitionError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Parses a `.repo` file. `$basearch`, `$arch` and `$releasever` are substituted from `vars`.
pub fn parse(text: &str, file: &str, vars: &Vars) -> Result<Vec<RepoDef>, DefinitionError> {
    let err = |line: usize, message: String| DefinitionError {
        file: file.to_owned(),
        line,
        message,
    };
    let mut out: Vec<(usize, String, BTreeMap<String, String>)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let lineno = i + 1;
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let alias = rest.strip_suffix(']').ok_or_else(|| {
                err(
                    lineno,
                    format!("section header {line:?} lacks its closing ']'"),
                )
            })?;
            if alias.is_empty() {
                return Err(err(lineno, "empty repository alias".into()));
            }
            out.push((lineno, alias.to_owned(), BTreeMap::new()));
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            return Err(err(lineno, format!("expected key=value, found {line:?}")));
        };
        let Some((_, _, keys)) = out.last_mut() else {
            return Err(err(lineno, "key before the first [alias] section".into()));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), vars.expand(v.trim()));
        // zypper allows several gpgkey/baseurl values on continuation-free lines: keep them all.
        match keys.get_mut(&k) {
            Some(old) if k == "gpgkey" || k == "gpgkey-fingerprint" => {
                old.push(if k == "gpgkey" { ' ' } else { ',' });
                old.push_str(&v);
            }
            _ => {
                keys.insert(k, v);
            }
        }
    }
    out.into_iter()
        .map(|(lineno, alias, mut keys)| {
            let bool_key = |keys: &mut BTreeMap<String, String>, k: &str, default: bool| match keys
                .remove(k)
                .as_deref()
            {
                None => Ok(default),
                Some("1" | "yes" | "true" | "on") => Ok(true),
                Some("0" | "no" | "false" | "off") => Ok(false),
                Some(v) => Err(err(lineno, format!("[{alias}] {k}={v}: expected 0 or 1"))),
            };
            let enabled = bool_key(&mut keys, "enabled", true)?;
            let gpgcheck = bool_key(&mut keys, "gpgcheck", true)?;
            let tri_key = |keys: &mut BTreeMap<String, String>, k: &str| {
                if keys.contains_key(k) {
                    bool_key(keys, k, false).map(Some)
                } else {
                    Ok(None)
                }
            };
            let repo_gpgcheck = tri_key(&mut keys, "repo_gpgcheck")?;
            let pkg_gpgcheck = tri_key(&mut keys, "pkg_gpgcheck")?;
            let gpgkey_fingerprint = keys
                .remove("gpgkey-fingerprint")
                .map(|v| {
                    v.split(',')
                        .filter(|f| !f.trim().is_empty())
                        .map(|f| {
                            crate::repo::sig::normalize_fingerprint(f).ok_or_else(|| {
                                err(
                                    lineno,
                                    format!(
                                        "[{alias}] gpgkey-fingerprint={}: expected a key fingerprint (40 or 64 hex digits; separate several with ',')",
                                        f.trim()
                                    ),
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()?
                .unwrap_or_default();
            let priority = match keys.remove("priority") {
                None => 99,
                Some(p) => p.parse().map_err(|_| {
                    err(lineno, format!("[{alias}] priority={p}: expected a number"))
                })?,
            };
            let baseurl = keys
                .remove("baseurl")
                .ok_or_else(|| err(lineno, format!("[{alias}] has no baseurl")))?;
            let gpgkey = keys
                .remove("gpgkey")
                .map(|v| v.split_whitespace().map(str::to_owned).collect())
                .unwrap_or_default();
            Ok(RepoDef {
                name: keys.remove("name").unwrap_or_else(|| alias.clone()),
                alias,
                baseurl,
                enabled,
                gpgcheck,
                repo_gpgcheck,
                pkg_gpgcheck,
                gpgkey,
                gpgkey_fingerprint,
                priority,
                origin: format!("{file}:{lineno}"),
                other: keys,
            })
        })
        .collect()
}

impl RepoDef {
    /// A definition with zypper's defaults (enabled, gpgcheck on, priority 99).
    pub fn new(alias: &str, baseurl: &str, origin: &str) -> RepoDef {
        RepoDef {
            alias: alias.to_owned(),
            name: alias.to_owned(),
            baseurl: baseurl.to_owned(),
            enabled: true,
            gpgcheck: true,
            repo_gpgcheck: None,
            pkg_gpgcheck: None,
            gpgkey: Vec::new(),
            gpgkey_fingerprint: Vec::new(),
            priority: 99,
            origin: origin.to_owned(),
            other: BTreeMap::new(),
        }
    }

    /// Whether repomd.xml's signature is checked when there is one (libzypp's
    /// `RepoInfo::repoGpgCheck`): `gpgcheck` or `repo_gpgcheck`.
    pub fn repo_gpgcheck(&self) -> bool {
        self.gpgcheck || self.repo_gpgcheck == Some(true)
    }

    /// Whether unsigned metadata is refused (`RepoInfo::repoGpgCheckIsMandatory`): `gpgcheck`
    /// with `repo_gpgcheck` unset, or `repo_gpgcheck=1`.
    pub fn repo_gpgcheck_mandatory(&self) -> bool {
        (self.gpgcheck && self.repo_gpgcheck.is_none()) || self.repo_gpgcheck == Some(true)
    }

    /// Whether package signatures are checked (`RepoInfo::pkgGpgCheck`): `pkg_gpgcheck=1`, or
    /// `gpgcheck` when the metadata was not verified. A package whose checksum comes from
    /// verified metadata is trusted through it.
    pub fn pkg_gpgcheck(&self, metadata_verified: bool) -> bool {
        self.pkg_gpgcheck == Some(true) || (self.gpgcheck && !metadata_verified)
    }

    /// Whether an unsigned package is refused (`RepoInfo::pkgGpgCheckIsMandatory`); a badly
    /// signed one always is when packages are checked.
    pub fn pkg_gpgcheck_mandatory(&self, metadata_verified: bool) -> bool {
        self.pkg_gpgcheck == Some(true)
            || (self.gpgcheck && self.pkg_gpgcheck.is_none() && !metadata_verified)
    }
}

/// The variables zypper substitutes in `.repo` files.
#[derive(Clone, Debug)]
pub struct Vars {
    pub arch: String,
    pub releasever: String,
}

impl Vars {
    fn expand(&self, v: &str) -> String {
        v.replace("${basearch}", &self.arch)
            .replace("$basearch", &self.arch)
            .replace("${arch}", &self.arch)
            .replace("$arch", &self.arch)
            .replace("${releasever}", &self.releasever)
            .replace("$releasever", &self.releasever)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        Vars {
            arch: "x86_64".into(),
            releasever: "16.0".into(),
        }
    }

    #[test]
    fn parses_zypper_syntax() {
        let text = "# comment\n[repo-oss]\nname=Main\nbaseurl=http://x/$releasever/$basearch/\nenabled=1\ngpgcheck=0\npriority=90\nautorefresh=1\n\n[b]\nbaseurl=file:///srv\n";
        let defs = parse(text, "t.repo", &vars()).unwrap();
        assert_eq!(defs.len(), 2);
        assert_eq!(defs[0].baseurl, "http://x/16.0/x86_64/");
        assert_eq!(defs[0].priority, 90);
        assert!(!defs[0].gpgcheck);
        assert_eq!(
            defs[0].other.get("autorefresh").map(String::as_str),
            Some("1")
        );
        assert_eq!(defs[1].name, "b");
        assert_eq!(defs[1].priority, 99);
        assert_eq!(defs[1].origin, "t.repo:10");
    }

    /// libzypp's RepoSigcheck_test `init` table with zypp.conf's defaults: which checks run
    /// (`+`), are mandatory (`!`) or do not run (`-`) for every gpgcheck/repo_gpgcheck/
    /// pkg_gpgcheck combination, for verified and unverified metadata.
    #[test]
    fn gpgcheck_policy_is_libzypps() {
        let tri = [None, Some(true), Some(false)];
        for g in tri {
            for r in tri {
                for p in tri {
                    let mut d = RepoDef::new("a", "http://x/", "t");
                    d.gpgcheck = g.unwrap_or(true);
                    d.repo_gpgcheck = r;
                    d.pkg_gpgcheck = p;
                    let (will, must) = (d.repo_gpgcheck(), d.repo_gpgcheck_mandatory());
                    assert!(!must || will);
                    if d.gpgcheck {
                        assert!(will);
                        assert_eq!(must, r != Some(false), "{g:?} {r:?} {p:?}");
                    } else {
                        assert_eq!(will, r == Some(true));
                        assert_eq!(must, r == Some(true));
                    }
                    for valid in [true, false] {
                        let (will, must) = (d.pkg_gpgcheck(valid), d.pkg_gpgcheck_mandatory(valid));
                        assert!(!must || will);
                        if p == Some(true) {
                            assert!(will && must);
                        } else if d.gpgcheck {
                            assert_eq!(will, !valid);
                            assert_eq!(must, !valid && p.is_none(), "{g:?} {r:?} {p:?} {valid}");
                        } else {
                            assert!(!will && !must);
                        }
                    }
                }
            }
        }
        let d = parse(
            "[a]\nbaseurl=x\nrepo_gpgcheck=0\npkg_gpgcheck=1\ngpgkey-fingerprint=ad48 5664 E901 B867 051A B15F 35A2 F86E 29B7 00A4\n",
            "t.repo",
            &vars(),
        )
        .unwrap()
        .remove(0);
        assert_eq!(
            (d.gpgcheck, d.repo_gpgcheck, d.pkg_gpgcheck),
            (true, Some(false), Some(true))
        );
        assert_eq!(
            d.gpgkey_fingerprint,
            ["AD485664E901B867051AB15F35A2F86E29B700A4"]
        );
        let e = parse(
            "[a]\nbaseurl=x\ngpgkey-fingerprint=29B700A4\n",
            "t.repo",
            &vars(),
        );
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("expected a key fingerprint")
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let e = parse("[a]\nbaseurl=x\nenabled=maybe\n", "bad.repo", &vars()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad.repo:1: [a] enabled=maybe: expected 0 or 1"
        );
        let e = parse("[a]\nnot a pair\n", "bad.repo", &vars()).unwrap_err();
        assert!(e.to_string().starts_with("bad.repo:2: expected key=value"));
        let e = parse("[a]\nname=x\n", "bad.repo", &vars()).unwrap_err();
        assert!(e.to_string().contains("has no baseurl"));
    }
}
