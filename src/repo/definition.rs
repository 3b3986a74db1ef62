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
    pub gpgcheck: bool,
    pub gpgkey: Vec<String>,
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
            Some(old) if k == "gpgkey" => {
                old.push(' ');
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
                gpgkey,
                priority,
                origin: format!("{file}:{lineno}"),
                other: keys,
            })
        })
        .collect()
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
