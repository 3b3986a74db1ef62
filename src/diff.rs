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
    /// Number of non-directories present in both that `compared` could not tell changed from
    /// identical (dropped all the same: the base wins either way). Always 0 with
    /// [`Compare::Contents`].
    pub not_compared: usize,
    /// How closely paths in both were compared: always `contents` in a build (digests or
    /// contents in memory decide); `elsx diff` on directories reads no more than asked.
    pub compared: Compare,
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
    subtract_with(
        base,
        &|p| p.base.same_content(p.tools).into(),
        tools,
        opts,
        false,
    )
}

/// Subtracts a base known only from its packages' headers (see [`unpack::Manifest`]): a file
/// present in both is compared by size and the header's digest of its content. The result and
/// the report are those [`subtract`] gives with the unpacked base under `tools`, when `tools`
/// holds only what was installed over the base.
///
/// A file of `tools` that `installed` holds with the very content it has in `tools` (the same
/// `Arc`: unpacked from a package and not replaced since) is compared by the two headers'
/// digests, without hashing its content.
///
/// Panics if a digest uses an algorithm elsx cannot compute: check [`manifest_supported`].
pub fn subtract_manifest(
    base: &unpack::Manifest,
    tools: &Tree,
    installed: &Installed,
    opts: Options,
) -> Result<(Tree, Report), DiffError> {
    let same = |p: &Pair| -> Verdict {
        let (path, b, t) = (p.path, p.base, p.tools);
        let same = match (&b.kind, &t.kind) {
            // Without a digest the manifest holds the content itself (rpm records none for an
            // empty file; packages elsx unpacked whole have none either).
            (Kind::File(_), Kind::File(data)) => match base.digests.get(path) {
                Some(d) => {
                    let content = match installed.get(path) {
                        Some((td, arc))
                            if std::sync::Arc::ptr_eq(arc, data) && td.algo == d.algo =>
                        {
                            td.size == d.size && td.hex.eq_ignore_ascii_case(&d.hex)
                        }
                        _ => d.matches(data).expect("checked by manifest_supported"),
                    };
                    content
                        && b.mode == t.mode
                        && b.uid == t.uid
                        && b.gid == t.gid
                        && b.xattrs == t.xattrs
                }
                None => b.same_content(t),
            },
            _ => b.same_content(t),
        };
        same.into()
    };
    subtract_with(&base.tree, &same, tools, opts, true)
}

/// The extension packages' regular files by path: the digest their header records and the
/// content unpacked for it.
pub type Installed =
    std::collections::HashMap<String, (unpack::FileDigest, std::sync::Arc<Vec<u8>>)>;

/// Trouble while subtracting directories on disk.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Diff(#[from] DiffError),
}

/// How closely [`subtract_dirs`] compares the paths both trees have. The result does not depend
/// on it (a non-directory in the base wins whatever its content), unless `keep_changed` is
/// asked for, which needs [`Compare::Contents`]; the report does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compare {
    /// Types only, as the directories list them (no `lstat`): a path whose type differs is
    /// changed, the others are not compared.
    Types,
    /// Also what `lstat` and `readlink` give: a path whose mode, owner, size, symlink target or
    /// device number differs is changed; the same inode, an empty file and other than regular
    /// files with the same xattrs are identical; the other files are not compared.
    Metadata,
    /// Also the bytes and xattrs of files of the same size: every path is changed or identical.
    #[default]
    Contents,
}

/// How much [`subtract_dirs`] reads.
#[derive(Clone, Copy, Debug, Default)]
pub struct DirOptions {
    pub compare: Compare,
    /// Read the metadata, xattrs and contents of the result's entries, so that it can be
    /// written out.
    pub load_result: bool,
}

/// Subtracts the directory `base` from the directory `tools` on disk with the rules of
/// [`subtract`], reading no more than the rules and `dir` ask for: both trees are walked in
/// parallel (one `getdents` per directory, one `lstat` per entry unless [`Compare::Types`]);
/// files of the same size are read, in parallel and stopping at the first difference, only
/// with [`Compare::Contents`]. Paths in both that were not compared are counted as
/// [`Report::not_compared`].
pub fn subtract_dirs(
    base: &Path,
    tools: &Path,
    opts: Options,
    dir: DirOptions,
) -> Result<(Tree, Report), DirError> {
    let compare = if opts.keep_changed {
        Compare::Contents
    } else {
        dir.compare
    };
    let scan = match compare {
        Compare::Types => tree::Scan::Types,
        _ => tree::Scan::Metadata,
    };
    let (b, t) = rayon::join(
        || tree::scan_dir(base, scan),
        || tree::scan_dir(tools, scan),
    );
    let (b, t) = (b?, t?);
    let roots = if compare == Compare::Contents || dir.load_result {
        Some((open_root(base)?, open_root(tools)?))
    } else {
        None
    };
    let failed: std::sync::Mutex<Option<std::io::Error>> = Default::default();
    // An error ends the subtraction; the verdict returned with it is never used.
    let or_fail = |r: Result<bool, std::io::Error>| -> bool {
        r.unwrap_or_else(|e| {
            failed.lock().expect("not poisoned").get_or_insert(e);
            false
        })
    };
    let xattrs_equal = |path: &str| -> Result<bool, std::io::Error> {
        Ok(tree::read_xattrs(&base.join(path))? == tree::read_xattrs(&tools.join(path))?)
    };
    let same = |p: &Pair| -> Verdict {
        let (path, be, te) = (p.path, p.base, p.tools);
        if compare == Compare::Types {
            // Devices were lstat'ed (a whiteout is one): their numbers count.
            let devices = matches!(be.kind, Kind::CharDevice { .. } | Kind::BlockDevice { .. });
            return if std::mem::discriminant(&be.kind) != std::mem::discriminant(&te.kind)
                || (devices && be.kind != te.kind)
            {
                Verdict::Changed
            } else {
                Verdict::NotCompared
            };
        }
        if be.mode != te.mode || be.uid != te.uid || be.gid != te.gid {
            return Verdict::Changed;
        }
        match (&be.kind, &te.kind) {
            (Kind::File(_), Kind::File(_)) => {
                let (bm, tm) = (b.meta[p.base_at], t.meta[p.tools_at]);
                let size = bm.size;
                if tm.size != size {
                    return Verdict::Changed;
                }
                if bm.inode.is_some() && bm.inode == tm.inode {
                    return Verdict::Unchanged; // one file, linked into both trees
                }
                if size == 0 {
                    return or_fail(xattrs_equal(path)).into();
                }
                match &roots {
                    Some((bfd, tfd)) if compare == Compare::Contents => {
                        // A file that changes size while it is read is an error, not a verdict.
                        let equal = files_equal(bfd, tfd, base, tools, path, size, &xattrs_equal);
                        or_fail(equal).into()
                    }
                    _ => Verdict::NotCompared,
                }
            }
            (bk, tk) if bk != tk => Verdict::Changed,
            _ => or_fail(xattrs_equal(path)).into(),
        }
    };
    let (mut out, mut report) = subtract_with(&b.tree, &same, &t.tree, opts, false)?;
    if let Some(e) = failed.into_inner().expect("not poisoned") {
        return Err(e.into());
    }
    report.compared = compare;
    if let (true, Some((bfd, tfd))) = (dir.load_result, &roots) {
        use rustix::fd::AsFd;
        out.entries
            .par_iter_mut()
            .try_for_each(|(rel, e)| -> Result<(), std::io::Error> {
                // A directory in both carries the base's metadata, xattrs included.
                let from_base = e.is_dir() && b.tree.get(rel).is_some_and(|be| be.is_dir());
                let (root, fd) = if from_base { (base, bfd) } else { (tools, tfd) };
                let mut full = tree::stat_entry(root, fd.as_fd(), rel)?;
                if let Kind::File(_) = full.kind {
                    full.kind = Kind::File(std::sync::Arc::new(fs_err::read(tools.join(rel))?));
                }
                if std::mem::discriminant(&full.kind) != std::mem::discriminant(&e.kind) {
                    return Err(std::io::Error::other(format!(
                        "{}: changed type while elsx read it",
                        root.join(rel.as_str()).display()
                    )));
                }
                *e = full;
                Ok(())
            })?;
    }
    // Freeing two trees of every entry takes a while: both at once.
    rayon::join(|| drop(b), || drop(t));
    Ok((out, report))
}

fn open_root(dir: &Path) -> Result<rustix::fd::OwnedFd, std::io::Error> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| tree::at_error(dir, "", "opening", e))
}

/// Whether the files at `rel` below the roots `a` and `b` (open as `afd` and `bfd`), both of
/// `size` bytes as the walk saw them, hold the same bytes and (`xattrs_equal`) xattrs. Opened
/// relative to the roots (no walk of the full path), read in chunks into two buffers per
/// thread, stopping at the first chunk that differs.
fn files_equal(
    afd: &rustix::fd::OwnedFd,
    bfd: &rustix::fd::OwnedFd,
    a: &Path,
    b: &Path,
    rel: &str,
    size: u64,
    xattrs_equal: &dyn Fn(&str) -> Result<bool, std::io::Error>,
) -> Result<bool, std::io::Error> {
    use rustix::fs::{Mode, OFlags};
    const CHUNK: usize = 1 << 18;
    thread_local! {
        static BUFS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
            std::cell::RefCell::new((vec![0; CHUNK], vec![0; CHUNK]));
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY;
    let open = |fd: &rustix::fd::OwnedFd, root: &Path| {
        rustix::fs::openat(fd, rel, flags, Mode::empty())
            .map_err(|e| tree::at_error(root, rel, "opening", e))
    };
    let (fa, fb) = (open(afd, a)?, open(bfd, b)?);
    // Xattrs first, asked of the open files: almost always neither has any.
    let listed = |fd: &rustix::fd::OwnedFd, root: &Path| {
        rustix::fs::flistxattr(fd, &mut [0u8; 0][..])
            .or_else(|e| {
                if e == rustix::io::Errno::NOTSUP {
                    Ok(0)
                } else {
                    Err(e)
                }
            })
            .map_err(|e| tree::at_error(root, rel, "listing xattrs", e))
    };
    if (listed(&fa, a)?, listed(&fb, b)?) != (0, 0) && !xattrs_equal(rel)? {
        return Ok(false);
    }
    // Fills `buf` from `fd`; a file shorter than the walk saw is an error.
    let fill = |fd: &rustix::fd::OwnedFd, buf: &mut [u8], root: &Path| {
        let mut at = 0;
        while at < buf.len() {
            match rustix::io::read(fd, &mut buf[at..]) {
                Ok(0) => {
                    return Err(std::io::Error::other(format!(
                        "{}: shorter than it was a moment ago: changed while elsx read it",
                        root.join(rel).display()
                    )));
                }
                Ok(n) => at += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(tree::at_error(root, rel, "reading", e)),
            }
        }
        Ok(())
    };
    BUFS.with(|bufs| {
        let (ba, bb) = &mut *bufs.borrow_mut();
        let mut left = size;
        while left > 0 {
            let n = left.min(CHUNK as u64) as usize;
            fill(&fa, &mut ba[..n], a)?;
            fill(&fb, &mut bb[..n], b)?;
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
    /// A non-directory in both: dropped (unless changed and kept).
    InBase(Verdict),
    Error(&'static str),
}

/// How a non-directory path in both trees compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Unchanged,
    Changed,
    /// Not proven either way (contents not read).
    NotCompared,
}

impl From<bool> for Verdict {
    fn from(same: bool) -> Verdict {
        if same {
            Verdict::Unchanged
        } else {
            Verdict::Changed
        }
    }
}

/// A path both trees have: each tree's entry and its position in that tree's path order.
struct Pair<'a> {
    path: &'a str,
    base: &'a Entry,
    tools: &'a Entry,
    base_at: usize,
    tools_at: usize,
}

/// The base's entry and the tools' entry at a path compared (content and metadata).
type Same<'a> = dyn Fn(&Pair) -> Verdict + Sync + 'a;

fn decide(same: &Same, (path, tools_at, entry, base): &Paired) -> Decision {
    let (path, entry) = (path.as_str(), *entry);
    if !in_sysext(path) {
        // Directories outside are not worth listing; their files are.
        return Decision::Outside {
            listed: !entry.is_dir() && base.is_none(),
        };
    }
    // os-release never goes into a sysext; when the base has it, it is a base path like any.
    if is_whiteout(entry) || (path == "usr/lib/os-release" && base.is_none()) {
        return Decision::Removed;
    }
    match *base {
        None => Decision::Added,
        Some((b, _)) if entry.is_dir() => {
            if b.is_dir() {
                Decision::SharedDir
            } else {
                Decision::Error(b.kind.type_name())
            }
        }
        Some((b, base_at)) => Decision::InBase(same(&Pair {
            path,
            base: b,
            tools: entry,
            base_at,
            tools_at: *tools_at,
        })),
    }
}

/// A path of `tools`, its position in path order and its entry, and the entry `base` has at that
/// path with its position.
type Paired<'a> = (&'a String, usize, &'a Entry, Option<(&'a Entry, usize)>);

/// Each path of `tools` paired with the base's entry, in path order: one walk through both
/// sorted maps instead of a lookup per path.
fn pair_up<'a>(base: &'a Tree, tools: &'a Tree) -> Vec<Paired<'a>> {
    let mut b = base.entries.iter().enumerate().peekable();
    tools
        .entries
        .iter()
        .enumerate()
        .map(|(at, (p, e))| {
            while b.next_if(|(_, (bp, _))| *bp < p).is_some() {}
            let found = b.next_if(|(_, (bp, _))| *bp == p);
            (p, at, e, found.map(|(bat, (_, be))| (be, bat)))
        })
        .collect()
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
    let paths = pair_up(base, tools);
    let decisions: Vec<Decision> = paths
        .par_iter()
        .with_min_len(256)
        .map(|paired| decide(same, paired))
        .collect();
    let mut out: Vec<(String, Entry)> = Vec::new();
    let mut report = Report {
        kept_changed: opts.keep_changed,
        compared: Compare::Contents,
        ..Report::default()
    };
    for ((path, _, entry, b), d) in paths.into_iter().zip(decisions) {
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
                out.push((path.clone(), entry.clone()));
            }
            Decision::SharedDir => {
                let (b, _) = b.expect("decided on a base entry");
                out.push((
                    path.clone(),
                    Entry {
                        kind: Kind::Dir,
                        ..b.clone()
                    },
                ));
            }
            Decision::InBase(Verdict::Unchanged) => report.unchanged += 1,
            Decision::InBase(Verdict::NotCompared) => report.not_compared += 1,
            Decision::InBase(Verdict::Changed) => {
                report.changed.push(path.clone());
                if opts.keep_changed && path != "usr/lib/os-release" {
                    out.push((path.clone(), entry.clone()));
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
    // In path order already: the map is built without a search per entry.
    let mut out = Tree {
        entries: out.into_iter().collect(),
    };
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

    /// A file unpacked from a package is compared by its header's digest, its content never
    /// hashed: a digest that lies about the content shows which one decided.
    #[test]
    fn installed_files_are_compared_by_header_digest() {
        let digest = |hex: &str| unpack::FileDigest {
            algo: rpm::DigestAlgorithm::Sha2_256,
            hex: hex.into(),
            size: 4,
        };
        let mut base = unpack::Manifest::default();
        base.tree.insert("usr/share/x".into(), file(""));
        base.digests.insert("usr/share/x".into(), digest("ab12"));
        let mut tools = Tree::new();
        tools.insert("usr/share/x".into(), file("data"));
        let Kind::File(data) = &tools.get("usr/share/x").unwrap().kind else {
            unreachable!()
        };
        let mut installed = Installed::new();
        installed.insert("usr/share/x".into(), (digest("AB12"), data.clone()));
        let (_, rep) = subtract_manifest(&base, &tools, &installed, Options::default()).unwrap();
        assert_eq!(
            (rep.unchanged, rep.changed.len()),
            (1, 0),
            "the digests decide"
        );
        // Content replaced after unpacking (another Arc): hashed, and "data" is not ab12.
        installed.insert(
            "usr/share/x".into(),
            (digest("ab12"), Arc::new(b"data".to_vec())),
        );
        let (_, rep) = subtract_manifest(&base, &tools, &installed, Options::default()).unwrap();
        assert_eq!(rep.changed, ["usr/share/x"], "the content decides");
    }
}
