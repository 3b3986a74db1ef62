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
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::FileType;
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
/// on it (a non-directory in the base wins whatever its content, so names and types decide it),
/// unless `keep_changed` is asked for, which needs [`Compare::Contents`]; the report does.
/// `elsx diff` compares [`Compare::Types`] unless asked for more.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compare {
    /// Types only, as the directories list them (no `lstat` but of devices, whose numbers tell
    /// a whiteout): all the result needs. A path whose type differs is changed, the others are
    /// not compared.
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
    /// written out. Without it the result's entries carry their types only.
    pub load_result: bool,
}

/// Subtracts the directory `base` from the directory `tools` on disk with the rules of
/// [`subtract`], reading no more than `dir` asks for. Both trees are walked together, directory
/// by directory and in parallel: one `getdents64` per directory, the two listings paired by one
/// merge of the sorted names, a directory only the base has never entered. Only paths both trees
/// have are `lstat`ed (none with [`Compare::Types`], where the listings' types decide); files of
/// the same size are read, in parallel and stopping at the first difference, only with
/// [`Compare::Contents`]. Paths in both that were not compared are counted as
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
    let walk = DirWalk {
        base,
        tools,
        compare,
        load_result: dir.load_result,
        keep_changed: opts.keep_changed,
    };
    let runs = walk.walk(Some(tree::open_root(base)?), tree::open_root(tools)?, "")?;
    let mut all = Part::default();
    for run in runs {
        all.append(run);
    }
    let (out, mut report) = all.finish(opts)?;
    report.compared = compare;
    Ok((out, report))
}

/// [`subtract_dirs`] at work: the two roots and what to read.
struct DirWalk<'a> {
    base: &'a Path,
    tools: &'a Path,
    compare: Compare,
    load_result: bool,
    keep_changed: bool,
}

/// A directory open in the base (when the base has it) and in the tools tree.
type DirFds<'a> = (Option<BorrowedFd<'a>>, BorrowedFd<'a>);

impl DirWalk<'_> {
    /// What the rules make of the paths below `rel`, a directory of the tools tree (open as
    /// `tools`) and maybe of the base (`base`), in path order, in runs (so that a deep tree's
    /// decisions are not moved once per level).
    fn walk(
        &self,
        base: Option<OwnedFd>,
        tools: OwnedFd,
        rel: &str,
    ) -> Result<Vec<Part>, std::io::Error> {
        let listed = tree::DirNames::read(self.tools, tools.as_fd(), rel)?;
        let in_base = match &base {
            Some(fd) => tree::DirNames::read(self.base, fd.as_fd(), rel)?,
            None => tree::DirNames::default(),
        };
        // Both listings are in name order: one merge pairs them.
        let mut b = in_base.iter().peekable();
        let items: Vec<(&str, FileType, Option<FileType>)> = listed
            .iter()
            .map(|(name, ty)| {
                while b.next_if(|(bn, _)| *bn < name).is_some() {}
                (name, ty, b.next_if(|(bn, _)| *bn == name).map(|(_, t)| t))
            })
            .collect();
        let fds = (base.as_ref().map(|fd| fd.as_fd()), tools.as_fd());
        let inside = (!rel.is_empty()).then(|| in_sysext(rel));
        let decided: Vec<(Decision, Option<Entry>)> = items
            .par_iter()
            .with_min_len(64)
            .map(|&(name, ty, bty)| {
                let inside = inside.unwrap_or_else(|| in_sysext(name));
                self.decide(fds, rel, inside, name, ty, bty)
            })
            .collect::<Result<_, _>>()?;
        // Every directory of the tools tree is entered (unless it is an error), with the base's
        // when the base has a directory there.
        let mut subdirs: Vec<(&str, bool)> = items
            .iter()
            .zip(&decided)
            .filter(|((_, ty, _), (d, _))| {
                *ty == FileType::Directory && !matches!(d, Decision::Error(_))
            })
            .map(|((name, _, bty), _)| (*name, *bty == Some(FileType::Directory)))
            .collect();
        subdirs.sort_unstable_by(|a, b| tree::cmp_subtrees(a.0, b.0));
        let below: Vec<Vec<Part>> = subdirs
            .par_iter()
            .map(|&(name, shared)| {
                let child = tree::child_path(rel, name);
                let open = |root: &Path, fd: BorrowedFd<'_>| {
                    tree::open_dir(fd, name).map_err(|e| tree::at_error(root, &child, "opening", e))
                };
                let base = match fds.0 {
                    Some(fd) if shared => Some(open(self.base, fd)?),
                    _ => None,
                };
                self.walk(base, open(self.tools, fds.1)?, &child)
            })
            .collect::<Result<_, _>>()?;
        // Assemble in path order: a subtree goes before the first name that sorts after
        // `name/`.
        let mut out = Vec::with_capacity(1 + 2 * subdirs.len());
        let mut run = Part::default();
        let mut path = String::new();
        let mut take = |run: &mut Part, ((name, ..), (d, e)): (&(&str, _, _), (Decision, _))| {
            path.clear();
            path.push_str(rel);
            if !rel.is_empty() {
                path.push('/');
            }
            path.push_str(name);
            run.take(&path, &d, e);
        };
        let mut here = items.iter().zip(decided).peekable();
        for ((dir, _), sub) in subdirs.iter().zip(below) {
            while let Some(next) = here.next_if(|((n, ..), _)| !tree::subtree_before(dir, n)) {
                take(&mut run, next);
            }
            out.push(std::mem::take(&mut run));
            out.extend(sub);
        }
        for next in here {
            take(&mut run, next);
        }
        out.push(run);
        Ok(out)
    }

    /// The rules on `rel/name` (`inside` usr/ or opt/), of type `ty` in the tools tree and `bty`
    /// in the base, and the entry the result gets there.
    fn decide(
        &self,
        (bfd, tfd): DirFds<'_>,
        rel: &str,
        inside: bool,
        name: &str,
        ty: FileType,
        bty: Option<FileType>,
    ) -> Result<(Decision, Option<Entry>), std::io::Error> {
        let stat = |root: &Path, fd: Option<BorrowedFd<'_>>| {
            let path = tree::child_path(rel, name);
            let fd = fd.expect("a directory open on the side that has the path");
            tree::entry_at(root, fd, &path, path.len() - name.len(), false)
        };
        let whiteout =
            ty == FileType::CharacterDevice && is_whiteout(&stat(self.tools, Some(tfd))?.0);
        let os_release = rel == "usr/lib" && name == "os-release";
        let d = decide(
            inside,
            Seen {
                dir: ty == FileType::Directory,
                whiteout,
                os_release,
            },
            bty.map(|t| t == FileType::Directory),
            || Ok(stat(self.base, bfd)?.0.kind.type_name()),
            || self.verdict((bfd.expect("in the base"), tfd), rel, name, bty, ty),
        )?;
        let entry = match d.keeps(self.keep_changed, os_release) {
            None => None,
            Some(Side::Tools) => Some(self.result_entry(self.tools, tfd, rel, name, ty)?),
            Some(Side::Base) => Some(self.result_entry(
                self.base,
                bfd.expect("in the base"),
                rel,
                name,
                FileType::Directory,
            )?),
        };
        Ok((d, entry))
    }

    /// How `rel/name` compares in the two trees, as closely as `compare` asks.
    fn verdict(
        &self,
        (bfd, tfd): (BorrowedFd<'_>, BorrowedFd<'_>),
        rel: &str,
        name: &str,
        bty: Option<FileType>,
        ty: FileType,
    ) -> Result<Verdict, std::io::Error> {
        let devices = matches!(ty, FileType::CharacterDevice | FileType::BlockDevice);
        if self.compare == Compare::Types && !(devices && bty == Some(ty)) {
            return Ok(if bty == Some(ty) {
                Verdict::NotCompared
            } else {
                Verdict::Changed
            });
        }
        let path = tree::child_path(rel, name);
        let at = path.len() - name.len();
        let (be, bm) = tree::entry_at(self.base, bfd, &path, at, false)?;
        let (te, tm) = tree::entry_at(self.tools, tfd, &path, at, false)?;
        if self.compare == Compare::Types {
            // Devices were lstat'ed (a whiteout is one): their numbers count.
            return Ok(if be.kind == te.kind {
                Verdict::NotCompared
            } else {
                Verdict::Changed
            });
        }
        let xattrs_equal = |path: &str| -> Result<bool, std::io::Error> {
            Ok(tree::read_xattrs(&self.base.join(path))?
                == tree::read_xattrs(&self.tools.join(path))?)
        };
        if be.mode != te.mode || be.uid != te.uid || be.gid != te.gid {
            return Ok(Verdict::Changed);
        }
        Ok(match (&be.kind, &te.kind) {
            (Kind::File(_), Kind::File(_)) => {
                if tm.size != bm.size {
                    Verdict::Changed
                } else if bm.inode.is_some() && bm.inode == tm.inode {
                    Verdict::Unchanged // one file, linked into both trees
                } else if bm.size == 0 {
                    xattrs_equal(&path)?.into()
                } else if self.compare == Compare::Contents {
                    // A file that changes size while it is read is an error, not a verdict.
                    let roots = (self.base, self.tools);
                    files_equal((bfd, tfd), roots, &path, at, bm.size, &xattrs_equal)?.into()
                } else {
                    Verdict::NotCompared
                }
            }
            (bk, tk) if bk != tk => Verdict::Changed,
            _ => xattrs_equal(&path)?.into(),
        })
    }

    /// The entry the result gets at `rel/name` from the tree at `root` (the directory open as
    /// `dir`), where the listing says `ty`: its type alone, or with `load_result` what `lstat`,
    /// `readlink` and the xattrs say and a file's content.
    fn result_entry(
        &self,
        root: &Path,
        dir: BorrowedFd<'_>,
        rel: &str,
        name: &str,
        ty: FileType,
    ) -> Result<Entry, std::io::Error> {
        let kind = match ty {
            FileType::Directory => Kind::Dir,
            FileType::RegularFile => Kind::File(Default::default()),
            FileType::Symlink => Kind::Symlink(String::new()),
            FileType::Fifo => Kind::Fifo,
            FileType::Socket => Kind::Socket,
            // Devices are lstat'ed for their numbers.
            _ => Kind::CharDevice { major: 0, minor: 0 },
        };
        let devices = matches!(kind, Kind::CharDevice { .. });
        if !self.load_result && !devices {
            return Ok(Entry {
                kind,
                mode: 0,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: Default::default(),
            });
        }
        let path = tree::child_path(rel, name);
        let (mut e, _) =
            tree::entry_at(root, dir, &path, path.len() - name.len(), self.load_result)?;
        let same_type = std::mem::discriminant(&e.kind) == std::mem::discriminant(&kind)
            || (devices && matches!(e.kind, Kind::BlockDevice { .. }));
        if !same_type {
            return Err(std::io::Error::other(format!(
                "{}: changed type while elsx read it",
                root.join(&path).display()
            )));
        }
        if let (Kind::File(_), true) = (&e.kind, self.load_result) {
            e.kind = Kind::File(std::sync::Arc::new(fs_err::read(root.join(&path))?));
        }
        Ok(e)
    }
}

/// Whether the files at `rel` below the roots `a` and `b` (`rel[name_at..]` in the directories
/// open as `dirs`), both of `size` bytes as the walk saw them, hold the same bytes and
/// (`xattrs_equal`) xattrs. Read in chunks into two buffers per thread, stopping at the first
/// chunk that differs.
fn files_equal(
    dirs: (BorrowedFd<'_>, BorrowedFd<'_>),
    (a, b): (&Path, &Path),
    rel: &str,
    name_at: usize,
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
    let open = |fd: BorrowedFd<'_>, root: &Path| {
        rustix::fs::openat(fd, &rel[name_at..], flags, Mode::empty())
            .map_err(|e| tree::at_error(root, rel, "opening", e))
    };
    let (fa, fb) = (open(dirs.0, a)?, open(dirs.1, b)?);
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

/// A path both trees have: each tree's entry.
struct Pair<'a> {
    path: &'a str,
    base: &'a Entry,
    tools: &'a Entry,
}

/// The base's entry and the tools' entry at a path compared (content and metadata).
type Same<'a> = dyn Fn(&Pair) -> Verdict + Sync + 'a;

/// What the rules need to know of a path in the tools tree.
struct Seen {
    dir: bool,
    whiteout: bool,
    /// `usr/lib/os-release`.
    os_release: bool,
}

/// Which tree's entry the result keeps at a path.
enum Side {
    Base,
    Tools,
}

impl Decision {
    /// Where the result's entry comes from, if it has one at this path.
    fn keeps(&self, keep_changed: bool, os_release: bool) -> Option<Side> {
        match self {
            Decision::Added => Some(Side::Tools),
            Decision::SharedDir => Some(Side::Base),
            Decision::InBase(Verdict::Changed) if keep_changed && !os_release => Some(Side::Tools),
            _ => None,
        }
    }
}

/// The rules for one path of the tools tree, `inside` usr/ or opt/, which the base has
/// (`base`: whether as a directory) or not. `base_kind` names the base's type for an error;
/// `same` compares a non-directory the base has too.
fn decide<E>(
    inside: bool,
    tools: Seen,
    base: Option<bool>,
    base_kind: impl FnOnce() -> Result<&'static str, E>,
    same: impl FnOnce() -> Result<Verdict, E>,
) -> Result<Decision, E> {
    if !inside {
        // Directories outside are not worth listing; their files are.
        return Ok(Decision::Outside {
            listed: !tools.dir && base.is_none(),
        });
    }
    // os-release never goes into a sysext; when the base has it, it is a base path like any.
    if tools.whiteout || (tools.os_release && base.is_none()) {
        return Ok(Decision::Removed);
    }
    Ok(match base {
        None => Decision::Added,
        Some(true) if tools.dir => Decision::SharedDir,
        Some(false) if tools.dir => Decision::Error(base_kind()?),
        Some(_) => Decision::InBase(same()?),
    })
}

/// What subtraction made of a run of paths, in path order.
#[derive(Default)]
struct Part {
    /// The result's entries.
    out: Vec<(String, Entry)>,
    report: Report,
    /// The first error in path order: nothing after it is recorded.
    error: Option<DiffError>,
}

impl Part {
    /// Records the decision on `path` and the result's `entry` there.
    fn take(&mut self, path: &str, d: &Decision, entry: Option<Entry>) {
        if self.error.is_some() {
            return;
        }
        let r = &mut self.report;
        match d {
            Decision::Outside { listed: true } => r.outside.push(path.to_owned()),
            Decision::Outside { listed: false } | Decision::SharedDir => {}
            Decision::Removed => r.removed.push(path.to_owned()),
            Decision::Added => {
                if !entry.as_ref().is_some_and(Entry::is_dir) {
                    r.added.push(path.to_owned());
                }
            }
            Decision::InBase(Verdict::Unchanged) => r.unchanged += 1,
            Decision::InBase(Verdict::NotCompared) => r.not_compared += 1,
            Decision::InBase(Verdict::Changed) => r.changed.push(path.to_owned()),
            Decision::Error(base_kind) => {
                self.error = Some(DiffError {
                    path: path.to_owned(),
                    base_kind,
                });
                return;
            }
        }
        if let Some(e) = entry {
            self.out.push((path.to_owned(), e));
        }
    }

    /// `next`, the run that follows this one in path order, appended.
    fn append(&mut self, next: Part) {
        if self.error.is_some() {
            return;
        }
        let (r, n) = (&mut self.report, next.report);
        r.added.extend(n.added);
        r.changed.extend(n.changed);
        r.unchanged += n.unchanged;
        r.not_compared += n.not_compared;
        r.outside.extend(n.outside);
        r.removed.extend(n.removed);
        self.out.extend(next.out);
        self.error = next.error;
    }

    /// The result tree (empty directories removed) and the report, or the first error.
    fn finish(self, opts: Options) -> Result<(Tree, Report), DiffError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        // In path order already: the map is built without a search per entry.
        let mut out = Tree {
            entries: self.out.into_iter().collect(),
        };
        remove_empty_dirs(&mut out);
        let report = Report {
            kept_changed: opts.keep_changed,
            ..self.report
        };
        Ok((out, report))
    }
}

/// A path of `tools`, its entry, and the entry `base` has at that path.
type Paired<'a> = (&'a String, &'a Entry, Option<&'a Entry>);

/// Each path of `tools` paired with the base's entry, in path order: one walk through both
/// sorted maps instead of a lookup per path.
fn pair_up<'a>(base: &'a Tree, tools: &'a Tree) -> Vec<Paired<'a>> {
    let mut b = base.entries.iter().peekable();
    tools
        .entries
        .iter()
        .map(|(p, e)| {
            while b.next_if(|(bp, _)| *bp < p).is_some() {}
            (p, e, b.next_if(|(bp, _)| *bp == p).map(|(_, be)| be))
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
    const OS_RELEASE: &str = "usr/lib/os-release";
    let paths = pair_up(base, tools);
    let decisions: Vec<Decision> = paths
        .par_iter()
        .with_min_len(256)
        .map(|&(path, entry, b)| {
            let seen = Seen {
                dir: entry.is_dir(),
                whiteout: is_whiteout(entry),
                os_release: path == OS_RELEASE,
            };
            let base_kind = || Ok(b.expect("in the base").kind.type_name());
            let pair = || {
                let (base, tools) = (b.expect("in the base"), entry);
                Ok(same(&Pair { path, base, tools }))
            };
            let d: Result<_, std::convert::Infallible> =
                decide(in_sysext(path), seen, b.map(Entry::is_dir), base_kind, pair);
            d.unwrap_or_else(|e| match e {})
        })
        .collect();
    let mut part = Part::default();
    for ((path, entry, b), d) in paths.into_iter().zip(decisions) {
        let kept = match d.keeps(opts.keep_changed, path == OS_RELEASE) {
            None => None,
            Some(Side::Tools) => Some(entry.clone()),
            Some(Side::Base) => Some(b.expect("decided on a base entry").clone()),
        };
        part.take(path, &d, kept);
    }
    let (out, mut report) = part.finish(opts)?;
    if base_only_unchanged {
        report.unchanged += base
            .entries
            .par_iter()
            .filter(|(p, e)| !e.is_dir() && in_sysext(p) && !tools.entries.contains_key(*p))
            .count();
    }
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
