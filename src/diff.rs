//! The layer differ: the tools tree minus the base tree, with mkosi's `Overlay=yes` rules.
//!
//! Rules (DESIGN.md, "Subtraction"): a non-directory path that also exists in the base is
//! dropped, even when its content changed; overlayfs whiteouts are dropped; a directory in both
//! keeps the base's mode, owner and times; a directory over a base file or symlink is an error;
//! only `usr/` and `opt/` are kept; empty directories are removed; `usr/lib/os-release` is never
//! part of the result. Every dropped path that differs from the base is reported.

use crate::tree::{self, Entry, Kind, Tree, parent};
use crate::unpack;
use rayon::prelude::*;
use std::collections::BTreeSet;
use std::path::Path;

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
    subtract_with(base, &|_, b, t| b.same_content(t), tools, opts, false)
}

/// Subtracts a base known only from its packages' headers (see [`unpack::Manifest`]): a file
/// present in both is compared by size and the header's digest of its content. The result and
/// the report are those [`subtract`] gives with the unpacked base under `tools`, when `tools`
/// holds only what was installed over the base.
///
/// Panics if a digest uses an algorithm elsx cannot compute: check [`manifest_supported`].
pub fn subtract_manifest(
    base: &unpack::Manifest,
    tools: &Tree,
    opts: Options,
) -> Result<(Tree, Report), DiffError> {
    let same = |path: &str, b: &Entry, t: &Entry| -> bool {
        match (&b.kind, &t.kind) {
            // Without a digest the manifest holds the content itself (rpm records none for an
            // empty file; packages elsx unpacked whole have none either).
            (Kind::File(_), Kind::File(data)) => match base.digests.get(path) {
                Some(d) => {
                    d.matches(data).expect("checked by manifest_supported")
                        && b.mode == t.mode
                        && b.uid == t.uid
                        && b.gid == t.gid
                        && b.xattrs == t.xattrs
                }
                None => b.same_content(t),
            },
            _ => b.same_content(t),
        }
    };
    subtract_with(&base.tree, &same, tools, opts, true)
}

/// Trouble while subtracting directories on disk.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Diff(#[from] DiffError),
}

/// Subtracts the directory `base` from the directory `tools` on disk with the rules of
/// [`subtract`], reading no more than the rules need: both trees are walked in parallel, and only
/// files present in both with the same metadata and size are read (in parallel, stopping at the
/// first difference) to tell changed from unchanged. With `contents`, the files of the result
/// are read too, so that it can be written out.
pub fn subtract_dirs(
    base: &Path,
    tools: &Path,
    opts: Options,
    contents: bool,
) -> Result<(Tree, Report), DirError> {
    let (b, t) = rayon::join(|| tree::scan_dir(base), || tree::scan_dir(tools));
    let (b, t) = (b?, t?);
    let failed: std::sync::Mutex<Option<std::io::Error>> = Default::default();
    let same = |path: &str, be: &Entry, te: &Entry| -> bool {
        match (&be.kind, &te.kind) {
            (Kind::File(_), Kind::File(_)) => {
                let size = b.sizes.get(path).copied().unwrap_or(0);
                let meta = be.mode == te.mode
                    && be.uid == te.uid
                    && be.gid == te.gid
                    && be.xattrs == te.xattrs
                    && t.sizes.get(path) == Some(&size);
                // A file that changes size while it is read is an error, not a verdict.
                meta && files_equal(&base.join(path), &tools.join(path), size).unwrap_or_else(|e| {
                    failed.lock().expect("not poisoned").get_or_insert(e);
                    false
                })
            }
            _ => be.same_content(te),
        }
    };
    let (mut out, report) = subtract_with(&b.tree, &same, &t.tree, opts, false)?;
    if let Some(e) = failed.into_inner().expect("not poisoned") {
        return Err(e.into());
    }
    if contents {
        out.entries
            .par_iter_mut()
            .try_for_each(|(rel, e)| -> Result<(), std::io::Error> {
                if let Kind::File(_) = e.kind {
                    e.kind = Kind::File(std::sync::Arc::new(fs_err::read(tools.join(rel))?));
                }
                Ok(())
            })?;
    }
    Ok((out, report))
}

/// Whether two files of `size` bytes (as the walk saw them) hold the same bytes.
fn files_equal(a: &Path, b: &Path, size: u64) -> Result<bool, std::io::Error> {
    use std::io::Read;
    thread_local! {
        /// Two chunk buffers per thread, reused for every pair of files.
        static BUFS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
            std::cell::RefCell::new((vec![0; 1 << 16], vec![0; 1 << 16]));
    }
    let (mut fa, mut fb) = (fs_err::File::open(a)?, fs_err::File::open(b)?);
    BUFS.with(|bufs| {
        let (ba, bb) = &mut *bufs.borrow_mut();
        let mut left = size;
        while left > 0 {
            let n = left.min(ba.len() as u64) as usize;
            fa.read_exact(&mut ba[..n])?;
            fb.read_exact(&mut bb[..n])?;
            if ba[..n] != bb[..n] {
                return Ok(false);
            }
            left -= n as u64;
        }
        Ok(true)
    })
}

/// Whether every digest of the manifest uses an algorithm [`subtract_manifest`] can compute.
pub fn manifest_supported(m: &unpack::Manifest) -> bool {
    m.digests.values().all(|d| d.supported())
}

/// What happens to one path of the tools tree.
enum Decision {
    /// Outside usr/ and opt/; listed in the report when it is not a directory nor in the base.
    Outside {
        listed: bool,
    },
    /// A whiteout, or os-release the base lacks.
    Removed,
    /// Not in the base: kept.
    Added,
    /// A directory in both: kept with the base's metadata.
    SharedDir,
    Unchanged,
    Changed,
    Error(&'static str),
}

/// Whether the base's entry and the tools' entry at a path are the same (content and metadata).
type Same<'a> = dyn Fn(&str, &Entry, &Entry) -> bool + Sync + 'a;

fn decide(base: &Tree, same: &Same, path: &str, entry: &Entry) -> Decision {
    if !in_sysext(path) {
        // Directories outside are not worth listing; their files are.
        return Decision::Outside {
            listed: !entry.is_dir() && base.get(path).is_none(),
        };
    }
    // os-release never goes into a sysext; when the base has it, it is a base path like any.
    if is_whiteout(entry) || (path == "usr/lib/os-release" && base.get(path).is_none()) {
        return Decision::Removed;
    }
    match base.get(path) {
        None => Decision::Added,
        Some(b) if entry.is_dir() => {
            if b.is_dir() {
                Decision::SharedDir
            } else {
                Decision::Error(b.kind.type_name())
            }
        }
        Some(b) => {
            if same(path, b, entry) {
                Decision::Unchanged
            } else {
                Decision::Changed
            }
        }
    }
}

/// The rules, decided path by path in parallel and assembled in path order, so that the result
/// and the report do not depend on the number of threads. With `base_only_unchanged`, the base's
/// non-directories in usr/ and opt/ that `tools` lacks count as unchanged, as they would if
/// `tools` held the base.
fn subtract_with(
    base: &Tree,
    same: &Same,
    tools: &Tree,
    opts: Options,
    base_only_unchanged: bool,
) -> Result<(Tree, Report), DiffError> {
    let paths: Vec<(&String, &Entry)> = tools.entries.iter().collect();
    let decisions: Vec<Decision> = paths
        .par_iter()
        .with_min_len(256)
        .map(|(p, e)| decide(base, same, p, e))
        .collect();
    let mut out = Tree::new();
    let mut report = Report {
        kept_changed: opts.keep_changed,
        ..Report::default()
    };
    for ((path, entry), d) in paths.into_iter().zip(decisions) {
        match d {
            Decision::Outside { listed } => {
                if listed {
                    report.outside.push(path.clone());
                }
            }
            Decision::Removed => report.removed.push(path.clone()),
            Decision::Added => {
                if !entry.is_dir() {
                    report.added.push(path.clone());
                }
                out.entries.insert(path.clone(), entry.clone());
            }
            Decision::SharedDir => {
                let b = base.get(path).expect("decided on a base entry");
                out.entries.insert(
                    path.clone(),
                    Entry {
                        kind: Kind::Dir,
                        ..b.clone()
                    },
                );
            }
            Decision::Unchanged => report.unchanged += 1,
            Decision::Changed => {
                report.changed.push(path.clone());
                if opts.keep_changed && path != "usr/lib/os-release" {
                    out.entries.insert(path.clone(), entry.clone());
                }
            }
            Decision::Error(base_kind) => {
                return Err(DiffError {
                    path: path.clone(),
                    base_kind,
                });
            }
        }
    }
    if base_only_unchanged {
        report.unchanged += base
            .entries
            .par_iter()
            .filter(|(p, e)| !e.is_dir() && in_sysext(p) && !tools.entries.contains_key(*p))
            .count();
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
