//! The layer differ: the tools tree minus the base tree, with mkosi's `Overlay=yes` rules.
//!
//! Rules (DESIGN.md, "Subtraction"): a non-directory path that also exists in the base is
//! dropped, even when its content changed; overlayfs whiteouts are dropped; a directory in both
//! keeps the base's mode, owner and times; a directory over a base file or symlink is an error;
//! only `usr/` and `opt/` are kept; empty directories are removed; `usr/lib/os-release` is never
//! part of the result. Every dropped path that differs from the base is reported.

use crate::tree::{Entry, Kind, Tree, parent};
use std::collections::BTreeSet;

#[derive(Debug, thiserror::Error)]
#[error(
    "{path}: a directory in the extension where the base has a {base_kind}; a sysext cannot replace it"
)]
pub struct DiffError {
    pub path: String,
    pub base_kind: &'static str,
}

/// What subtraction did, path by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    /// Paths the extension adds.
    pub added: Vec<String>,
    /// Paths present in both whose content or metadata differ: dropped (the base wins), unless
    /// `keep_changed` was asked for, in which case they are kept.
    pub changed: Vec<String>,
    /// Number of identical paths present in both (dropped).
    pub unchanged: usize,
    /// Paths the extension adds outside `usr/` and `opt/` (a sysext cannot carry them).
    pub outside: Vec<String>,
    /// Whiteouts and `usr/lib/os-release`.
    pub removed: Vec<String>,
    /// Whether the changed paths were kept (`keep_changed`) rather than dropped.
    pub kept_changed: bool,
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Keep files that exist in the base with other content (mkosi drops them silently).
    pub keep_changed: bool,
}

fn in_sysext(path: &str) -> bool {
    let top = path.split('/').next().unwrap_or("");
    top == "usr" || top == "opt"
}

fn is_whiteout(e: &Entry) -> bool {
    matches!(e.kind, Kind::CharDevice { major: 0, minor: 0 })
}

/// Subtracts `base` from `tools`.
pub fn subtract(base: &Tree, tools: &Tree, opts: Options) -> Result<(Tree, Report), DiffError> {
    let mut out = Tree::new();
    let mut report = Report {
        kept_changed: opts.keep_changed,
        ..Report::default()
    };
    for (path, entry) in &tools.entries {
        if !in_sysext(path) {
            // Directories outside are not worth listing; their files are.
            if !entry.is_dir() && base.get(path).is_none() {
                report.outside.push(path.clone());
            }
            continue;
        }
        // os-release never goes into a sysext; when the base has it, it is a base path like any.
        if is_whiteout(entry) || (path == "usr/lib/os-release" && base.get(path).is_none()) {
            report.removed.push(path.clone());
            continue;
        }
        match base.get(path) {
            None => {
                if !entry.is_dir() {
                    report.added.push(path.clone());
                }
                out.entries.insert(path.clone(), entry.clone());
            }
            Some(b) if entry.is_dir() => {
                if !b.is_dir() {
                    return Err(DiffError {
                        path: path.clone(),
                        base_kind: b.kind.type_name(),
                    });
                }
                out.entries.insert(
                    path.clone(),
                    Entry {
                        kind: Kind::Dir,
                        ..b.clone()
                    },
                );
            }
            Some(b) => {
                if b.same_content(entry) {
                    report.unchanged += 1;
                } else {
                    report.changed.push(path.clone());
                    if opts.keep_changed && path != "usr/lib/os-release" {
                        out.entries.insert(path.clone(), entry.clone());
                    }
                }
            }
        }
    }
    remove_empty_dirs(&mut out);
    Ok((out, report))
}

/// Removes directories that hold nothing but (recursively) empty directories.
fn remove_empty_dirs(t: &mut Tree) {
    let mut nonempty: BTreeSet<String> = BTreeSet::new();
    for (path, e) in &t.entries {
        if !e.is_dir() {
            let mut p = parent(path);
            while let Some(d) = p {
                if !nonempty.insert(d.to_owned()) {
                    break;
                }
                p = parent(d);
            }
        }
    }
    t.entries
        .retain(|path, e| !e.is_dir() || nonempty.contains(path));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn file(data: &str) -> Entry {
        Entry {
            kind: Kind::File(Arc::new(data.as_bytes().to_vec())),
            ..Entry::dir(0o644, 1)
        }
    }

    #[test]
    fn overlay_rules() {
        let mut base = Tree::new();
        base.insert("usr/bin/sh".into(), file("sh"));
        base.insert("usr/share/doc/x".into(), file("doc"));
        base.insert("usr/lib/os-release".into(), file("ID=a"));
        base.insert(
            "usr/lib/link".into(),
            Entry {
                kind: Kind::Symlink("x".into()),
                ..Entry::dir(0o777, 1)
            },
        );
        base.entries.get_mut("usr/bin").unwrap().mode = 0o711;
        let mut tools = base.clone();
        tools.insert("usr/bin/tool".into(), file("tool"));
        tools.insert("usr/share/doc/x".into(), file("changed"));
        tools.insert(
            "usr/share/empty/".trim_end_matches('/').into(),
            Entry::dir(0o755, 1),
        );
        tools.insert("etc/tool.conf".into(), file("conf"));
        tools.insert("opt/t/a".into(), file("a"));
        tools.insert(
            "usr/lib/wh".into(),
            Entry {
                kind: Kind::CharDevice { major: 0, minor: 0 },
                ..Entry::dir(0, 1)
            },
        );
        tools.entries.get_mut("usr/bin").unwrap().mode = 0o755;
        let (out, rep) = subtract(&base, &tools, Options::default()).unwrap();
        let paths: Vec<&str> = out.entries.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            ["opt", "opt/t", "opt/t/a", "usr", "usr/bin", "usr/bin/tool"]
        );
        assert_eq!(
            out.get("usr/bin").unwrap().mode,
            0o711,
            "shared directories take the base's mode"
        );
        assert_eq!(rep.changed, ["usr/share/doc/x"]);
        assert_eq!(rep.outside, ["etc/tool.conf"]);
        assert_eq!(rep.removed, ["usr/lib/wh"]);
        assert_eq!(rep.unchanged, 3);
        let (kept, _) = subtract(&base, &tools, Options { keep_changed: true }).unwrap();
        assert!(kept.get("usr/share/doc/x").is_some());
        tools
            .entries
            .insert("usr/lib/link".into(), Entry::dir(0o755, 1));
        let e = subtract(&base, &tools, Options::default()).unwrap_err();
        assert_eq!(e.path, "usr/lib/link");
    }
}
