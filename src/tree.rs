//! The in-memory file tree every stage passes on: paths relative to the image root.
//!
//! Invariant: paths are normalized (`usr/bin/x`, no leading `/`, no `.` or `..` components, no
//! empty components), so nothing built from a Tree can point outside its root. Every parent
//! directory of an entry is itself an entry.

use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// Regular file; hard links share the same `Arc` (see [`Entry::link_id`]).
    File(Arc<Vec<u8>>),
    Symlink(String),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
    Socket,
}

impl Kind {
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Dir => "directory",
            Kind::File(_) => "file",
            Kind::Symlink(_) => "symlink",
            Kind::CharDevice { .. } => "character device",
            Kind::BlockDevice { .. } => "block device",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    pub fn dir(mode: u32, mtime: u64) -> Entry {
        Entry {
            kind: Kind::Dir,
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }

    /// A regular file owned by root.
    pub fn file(data: Vec<u8>, mode: u32, mtime: u64) -> Entry {
        Entry {
            kind: Kind::File(Arc::new(data)),
            mode,
            uid: 0,
            gid: 0,
            mtime,
            xattrs: BTreeMap::new(),
        }
    }

    pub fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir)
    }

    /// The same content and metadata, ignoring times.
    pub fn same_content(&self, other: &Entry) -> bool {
        let kind = match (&self.kind, &other.kind) {
            // Layered trees share most contents: no need to compare bytes then.
            (Kind::File(a), Kind::File(b)) => Arc::ptr_eq(a, b) || a == b,
            (a, b) => a == b,
        };
        kind && self.mode == other.mode
            && self.uid == other.uid
            && self.gid == other.gid
            && self.xattrs == other.xattrs
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PathError {
    #[error("path {0:?} leaves the image root")]
    Escapes(String),
    #[error("path {0:?} is empty")]
    Empty(String),
}

/// Normalizes `./usr/bin/x`, `/usr/bin/x` or `usr//bin/x` to `usr/bin/x`; refuses `..`.
pub fn normalize(path: &str) -> Result<String, PathError> {
    let mut parts = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(PathError::Escapes(path.to_owned())),
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Empty(path.to_owned()));
    }
    Ok(parts.join("/"))
}

/// The parent of a normalized path, `None` for a top-level name.
pub fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(p, _)| p)
}

/// A file tree: sorted, so iteration order (and thus every image written from it) is stable.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    pub entries: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Inserts an entry at a normalized path, creating missing parents as rpm does (0755, root).
    /// A later entry replaces an earlier one, except that a directory keeps its place when the
    /// path is already a directory (and takes the new metadata).
    pub fn insert(&mut self, path: String, entry: Entry) {
        self.ensure_parents(&path, entry.mtime);
        self.entries.insert(path, entry);
    }

    pub fn ensure_parents(&mut self, path: &str, mtime: u64) {
        let mut p = parent(path);
        while let Some(dir) = p {
            if matches!(self.entries.get(dir), Some(e) if e.is_dir()) {
                break;
            }
            self.entries
                .insert(dir.to_owned(), Entry::dir(0o755, mtime));
            p = parent(dir);
        }
    }

    /// Adds every entry of `other`, later entries winning (how installing packages in order
    /// layers their files).
    pub fn merge(&mut self, other: Tree) {
        for (path, entry) in other.entries {
            self.insert(path, entry);
        }
    }

    /// Follows symlinks inside the tree (never outside it) to the entry a path names.
    pub fn resolve(&self, path: &str) -> Option<(String, &Entry)> {
        let mut path = normalize(path).ok()?;
        for _ in 0..40 {
            let entry = self.entries.get(&path)?;
            match &entry.kind {
                Kind::Symlink(target) => {
                    let joined = if target.starts_with('/') {
                        target.clone()
                    } else {
                        format!("{}/{}", parent(&path).unwrap_or(""), target)
                    };
                    path = normalize_lexically(&joined)?;
                }
                _ => return Some((path, entry)),
            }
        }
        None
    }

    /// Total bytes of regular file contents.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match &e.kind {
                Kind::File(d) => d.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// Clamps every mtime to `epoch` (SOURCE_DATE_EPOCH).
    pub fn clamp_mtimes(&mut self, epoch: u64) {
        for e in self.entries.values_mut() {
            e.mtime = e.mtime.min(epoch);
        }
    }
}

/// Resolves `..` against the root the way the kernel does for a chroot: it stops at `/`.
fn normalize_lexically(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Reads a directory on disk into a tree (for extra trees and existing base trees). Symlinks are
/// recorded, never followed; hard links share their content `Arc`; xattrs are kept. Directories
/// are walked and files read in parallel (rayon); the result does not depend on the order.
pub fn load_dir(root: &std::path::Path) -> Result<Tree, std::io::Error> {
    use rayon::prelude::*;
    let mut s = scan_dir(root)?;
    // A hard-linked file is read once, under the first of its names in path order.
    let mut first: std::collections::HashMap<(u64, u64), &str> = std::collections::HashMap::new();
    let files: Vec<(&String, Option<(u64, u64)>)> = s
        .tree
        .entries
        .iter()
        .zip(&s.meta)
        .filter(|((_, e), _)| matches!(e.kind, Kind::File(_)))
        .map(|((rel, _), m)| (rel, m.inode))
        .collect();
    for (rel, ino) in &files {
        if let Some(ino) = ino {
            first.entry(*ino).or_insert(rel.as_str()); // path order: the first name wins
        }
    }
    let read: std::collections::HashMap<&str, Arc<Vec<u8>>> = files
        .par_iter()
        .filter(|(rel, ino)| ino.is_none_or(|ino| first[&ino] == rel.as_str()))
        .map(|(rel, _)| Ok((rel.as_str(), Arc::new(fs_err::read(root.join(rel))?))))
        .collect::<Result<_, std::io::Error>>()?;
    let contents: Vec<Arc<Vec<u8>>> = files
        .iter()
        .map(|(rel, ino)| read[ino.map_or(rel.as_str(), |ino| first[&ino])].clone())
        .collect();
    let mut contents = contents.into_iter();
    for e in s.tree.entries.values_mut() {
        if let Kind::File(_) = e.kind {
            e.kind = Kind::File(contents.next().expect("one content per file"));
        }
    }
    Ok(s.tree)
}

/// A directory's entries without the contents of its files (see [`scan_dir`]).
#[derive(Clone, Debug, Default)]
pub struct Scanned {
    /// Regular files carry an empty content here; read them from `root` when needed.
    pub tree: Tree,
    /// What else the walk saw of each entry of `tree`, in the tree's (path) order.
    pub meta: Vec<FileMeta>,
}

/// What a tree entry does not hold of a regular file on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileMeta {
    /// Size in bytes (0 for other than regular files).
    pub size: u64,
    /// Device and inode of a regular file with more than one name (hard links).
    pub inode: Option<(u64, u64)>,
}

/// Walks a directory on disk (in parallel, symlinks never followed) and records the `lstat`,
/// symlink target and xattrs of every entry, never file contents.
///
/// Each directory is opened relative to its parent and each entry is `lstat`ed relative to its
/// directory, so no full path is looked up again and again.
pub fn scan_dir(root: &std::path::Path) -> Result<Scanned, std::io::Error> {
    use rayon::prelude::*;
    use rustix::fd::{AsFd, OwnedFd};
    type Found = (String, Entry, FileMeta);
    struct Walk<'a> {
        root: &'a std::path::Path,
    }
    impl Walk<'_> {
        /// The entries below `dir` (at `rel`), in path order, in runs (so that a deep tree's
        /// entries are not moved once per level).
        fn walk(&self, dir: OwnedFd, rel: &str) -> Result<Vec<Vec<Found>>, std::io::Error> {
            // In name order, so in path order too (the prefix is shared); each subtree is placed
            // where `name/` sorts among the names, so the list comes out in path order with no
            // sort of the whole tree.
            let prefix = if rel.is_empty() { 0 } else { rel.len() + 1 };
            let names = DirNames::read(self.root, dir.as_fd(), rel)?;
            let fd = dir.as_fd();
            let mut here = Vec::with_capacity(names.len());
            let mut subdirs = Vec::new();
            for (name, _) in names.iter() {
                let child = child_path(rel, name);
                let (entry, meta) = entry_at(self.root, fd, &child, prefix, true)?;
                if entry.is_dir() {
                    subdirs.push(child.clone());
                }
                here.push((child, entry, meta));
            }
            subdirs.sort_unstable_by(|a, b| cmp_subtrees(a, b));
            let below: Vec<Vec<Vec<Found>>> = subdirs
                .par_iter()
                .map(|child| {
                    let sub = open_dir(fd, &child[prefix..])
                        .map_err(|e| at_error(self.root, child, "opening", e))?;
                    self.walk(sub, child)
                })
                .collect::<Result<_, _>>()?;
            // Merge: a subtree goes before the first name that sorts after `name/`.
            let mut out = Vec::with_capacity(1 + 2 * subdirs.len());
            let mut run = Vec::new();
            let mut here = here.into_iter().peekable();
            for (dir, sub) in subdirs.iter().zip(below) {
                while let Some(next) = here.next_if(|(p, ..)| !subtree_before(dir, p)) {
                    run.push(next);
                }
                out.push(std::mem::take(&mut run));
                out.extend(sub);
            }
            run.extend(here);
            out.push(run);
            Ok(out)
        }
    }
    let w = Walk { root };
    let found = w.walk(open_root(root)?, "")?;
    let mut s = Scanned::default();
    let n = found.iter().map(Vec::len).sum();
    let mut entries = Vec::with_capacity(n);
    s.meta.reserve(n);
    for (rel, e, meta) in found.into_iter().flatten() {
        entries.push((rel, e));
        s.meta.push(meta);
    }
    // In path order already (and unique): the map is built without a search per entry, and
    // `meta` follows its order.
    s.tree.entries = entries.into_iter().collect();
    Ok(s)
}

/// `rel/name`, or `name` at the top.
pub fn child_path(rel: &str, name: &str) -> String {
    let mut child = String::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        child.push_str(rel);
        child.push('/');
    }
    child.push_str(name);
    child
}

/// Whether the entries below the directory `dir` (`dir/...`) sort before the path `other` of
/// the same directory: `a/x` sorts after `a-b` and `a.c`, before `a0`.
pub fn subtree_before(dir: &str, other: &str) -> bool {
    dir.as_bytes()
        .iter()
        .chain(b"/")
        .lt(other.as_bytes().iter())
}

/// Directories of one parent in the order of their subtrees (see [`subtree_before`]).
pub fn cmp_subtrees(a: &str, b: &str) -> std::cmp::Ordering {
    a.as_bytes()
        .iter()
        .chain(b"/")
        .cmp(b.as_bytes().iter().chain(b"/"))
}

/// The directory `root`, open; it may be a symlink to the tree (nothing below it is followed).
pub fn open_root(root: &std::path::Path) -> Result<rustix::fd::OwnedFd, std::io::Error> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        rustix::fs::CWD,
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| at_error(root, "", "opening", e))
}

/// The subdirectory `name` of the open directory `at`, never through a symlink.
pub fn open_dir(
    at: rustix::fd::BorrowedFd<'_>,
    name: &str,
) -> rustix::io::Result<rustix::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in an open directory and their types, in name order.
#[derive(Debug, Default)]
pub struct DirNames {
    text: String,
    /// Each name's first 8 bytes as a big-endian number (zeros after a shorter name, which
    /// holds no NUL), its offset and length in `text`, and its type.
    items: Vec<(u64, usize, usize, rustix::fs::FileType)>,
}

impl DirNames {
    /// Reads the directory `dir` (`rel` below `root`, for errors): one `getdents64` per 64 KiB
    /// of entries into a buffer each thread reuses, the names kept in one string. A type the
    /// file system does not give is asked of `lstat`. A name that is not UTF-8 is an error.
    pub fn read(
        root: &std::path::Path,
        dir: rustix::fd::BorrowedFd<'_>,
        rel: &str,
    ) -> Result<DirNames, std::io::Error> {
        use rustix::fs::{AtFlags, FileType};
        thread_local! {
            /// getdents64 buffer, reused for every directory a thread reads.
            static DIRENTS: std::cell::RefCell<Vec<std::mem::MaybeUninit<u8>>> =
                std::cell::RefCell::new(vec![std::mem::MaybeUninit::uninit(); 1 << 16]);
        }
        let mut out = DirNames::default();
        DIRENTS.with(|buf| -> Result<(), std::io::Error> {
            let mut buf = buf.borrow_mut();
            let mut it = rustix::fs::RawDir::new(dir, &mut buf[..]);
            while let Some(item) = it.next() {
                let item = item.map_err(|e| at_error(root, rel, "reading the directory", e))?;
                let name = item.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                let Ok(name) = std::str::from_utf8(name) else {
                    use std::os::unix::ffi::OsStrExt;
                    let path = root.join(rel).join(std::ffi::OsStr::from_bytes(name));
                    return Err(std::io::Error::other(format!(
                        "{}: not UTF-8",
                        path.display()
                    )));
                };
                let mut ty = item.file_type();
                if ty == FileType::Unknown {
                    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| at_error(root, &child_path(rel, name), "lstat", e))?;
                    ty = FileType::from_raw_mode(st.st_mode as _);
                }
                let mut head = [0u8; 8];
                let n = name.len().min(8);
                head[..n].copy_from_slice(&name.as_bytes()[..n]);
                out.items
                    .push((u64::from_be_bytes(head), out.text.len(), name.len(), ty));
                out.text.push_str(name);
            }
            Ok(())
        })?;
        // Most names differ in their first 8 bytes: one integer comparison decides.
        let text = &out.text;
        out.items.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| text[a.1..a.1 + a.2].cmp(&text[b.1..b.1 + b.2]))
        });
        Ok(out)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Each name and its type, in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, rustix::fs::FileType)> {
        self.items
            .iter()
            .map(|&(_, at, len, ty)| (&self.text[at..at + len], ty))
    }
}

/// The entry at `rel` below `root` as `lstat` and `readlink` see it (a regular file without its
/// content), its xattrs `with_xattrs`. `dir` is its directory, open, and `rel[name_at..]` its
/// name there.
pub fn entry_at(
    root: &std::path::Path,
    dir: rustix::fd::BorrowedFd<'_>,
    rel: &str,
    name_at: usize,
    with_xattrs: bool,
) -> Result<(Entry, FileMeta), std::io::Error> {
    use rustix::fs::{AtFlags, FileType};
    let name = &rel[name_at..];
    let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|e| at_error(root, rel, "lstat", e))?;
    let (major, minor) = (
        rustix::fs::major(st.st_rdev as _),
        rustix::fs::minor(st.st_rdev as _),
    );
    let kind = match FileType::from_raw_mode(st.st_mode as _) {
        FileType::Directory => Kind::Dir,
        FileType::RegularFile => Kind::File(Arc::new(Vec::new())),
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(dir, name, Vec::new())
                .map_err(|e| at_error(root, rel, "readlink", e))?;
            Kind::Symlink(target.to_string_lossy().into_owned())
        }
        FileType::CharacterDevice => Kind::CharDevice { major, minor },
        FileType::BlockDevice => Kind::BlockDevice { major, minor },
        FileType::Fifo => Kind::Fifo,
        _ => Kind::Socket,
    };
    let xattrs = if with_xattrs {
        read_xattrs(&root.join(rel))?
    } else {
        BTreeMap::new()
    };
    let file = matches!(kind, Kind::File(_));
    let meta = FileMeta {
        size: if file { st.st_size as u64 } else { 0 },
        inode: (file && st.st_nlink > 1).then_some((st.st_dev as u64, st.st_ino as u64)),
    };
    let entry = Entry {
        kind,
        mode: st.st_mode as u32 & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime.max(0) as u64,
        xattrs,
    };
    Ok((entry, meta))
}

/// `root/rel: what: error`, with the error's kind kept.
pub fn at_error(
    root: &std::path::Path,
    rel: &str,
    what: &str,
    e: rustix::io::Errno,
) -> std::io::Error {
    let path = if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(rel)
    };
    std::io::Error::new(
        std::io::Error::from(e).kind(),
        format!("{}: {what}: {e}", path.display()),
    )
}

/// The extended attributes of a file itself (never of a symlink's target); none where the file
/// system has no xattr support.
pub fn read_xattrs(path: &std::path::Path) -> Result<BTreeMap<String, Vec<u8>>, std::io::Error> {
    let mut out = BTreeMap::new();
    let names = match xattr::list(path) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(95) => return Ok(out), // EOPNOTSUPP
        Err(e) => return Err(std::io::Error::other(format!("{}: {e}", path.display()))),
    };
    for name in names {
        let Some(name) = name.to_str() else { continue };
        if let Some(v) = xattr::get(path, name)
            .map_err(|e| std::io::Error::other(format!("{}: {name}: {e}", path.display())))?
        {
            out.insert(name.to_owned(), v);
        }
    }
    Ok(out)
}

/// Writes a tree into the directory `dest` (created if missing), as mkosi's `Format=directory`
/// does and as scripts see it. Nothing is ever written through a symlink: every parent must be a
/// real directory that this function created or found. Owners are set only when running as root;
/// fifos are always created, device nodes only as root (otherwise they are returned as skipped).
pub fn write_dir(t: &Tree, dest: &std::path::Path) -> Result<Vec<String>, std::io::Error> {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let is_root = effective_uid() == 0;
    fs_err::create_dir_all(dest)?;
    let mut skipped = Vec::new();
    let mut dirs: Vec<(&String, &Entry)> = Vec::new();
    let mut checked: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (path, e) in &t.entries {
        // The parent must be a real directory below dest, never a symlink a package planted.
        if let Some(p) = parent(path)
            && !checked.contains(p)
        {
            let md = std::fs::symlink_metadata(dest.join(p))?;
            if !md.is_dir() {
                return Err(std::io::Error::other(format!(
                    "{path}: its parent {p} is not a directory in the tree; refusing to write through it"
                )));
            }
            checked.insert(p.to_owned());
        }
        let full = dest.join(path);
        match std::fs::symlink_metadata(&full) {
            Ok(md) if md.is_dir() && e.is_dir() => {}
            Ok(md) if md.is_dir() => fs_err::remove_dir_all(&full)?,
            Ok(_) => fs_err::remove_file(&full)?,
            Err(_) => {}
        }
        match &e.kind {
            Kind::Dir => {
                if !full.is_dir() {
                    fs_err::create_dir(&full)?;
                }
                // Final modes and times once the children are written (a 0555 directory would
                // refuse them).
                fs_err::set_permissions(&full, std::fs::Permissions::from_mode(0o755))?;
                dirs.push((path, e));
            }
            Kind::File(data) => {
                fs_err::write(&full, data.as_slice())?;
                fs_err::set_permissions(&full, std::fs::Permissions::from_mode(e.mode))?;
                filetime::set_file_mtime(
                    &full,
                    filetime::FileTime::from_unix_time(e.mtime as i64, 0),
                )?;
            }
            Kind::Symlink(target) => {
                symlink(target, &full)?;
                filetime::set_symlink_file_times(
                    &full,
                    filetime::FileTime::from_unix_time(e.mtime as i64, 0),
                    filetime::FileTime::from_unix_time(e.mtime as i64, 0),
                )?;
            }
            Kind::Fifo => mknod(&full, rustix::fs::FileType::Fifo, e.mode, 0)?,
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } if is_root => {
                let kind = match e.kind {
                    Kind::CharDevice { .. } => rustix::fs::FileType::CharacterDevice,
                    _ => rustix::fs::FileType::BlockDevice,
                };
                mknod(&full, kind, e.mode, rustix::fs::makedev(*major, *minor))?;
            }
            _ => {
                skipped.push(path.clone());
                continue;
            }
        }
        if matches!(
            e.kind,
            Kind::Fifo | Kind::CharDevice { .. } | Kind::BlockDevice { .. }
        ) {
            // mknod applied the umask; set_file_mtime would open a fifo and wait for a writer
            fs_err::set_permissions(&full, std::fs::Permissions::from_mode(e.mode))?;
            let t = filetime::FileTime::from_unix_time(e.mtime as i64, 0);
            filetime::set_symlink_file_times(&full, t, t)?;
        }
        if is_root {
            std::os::unix::fs::lchown(&full, Some(e.uid), Some(e.gid))?;
        }
    }
    for (path, e) in dirs.into_iter().rev() {
        let full = dest.join(path);
        fs_err::set_permissions(&full, std::fs::Permissions::from_mode(e.mode))?;
        filetime::set_file_mtime(&full, filetime::FileTime::from_unix_time(e.mtime as i64, 0))?;
    }
    Ok(skipped)
}

/// Creates a fifo or device node at `path` (never through a symlink: the caller checked the
/// parents and removed what was there).
fn mknod(
    path: &std::path::Path,
    kind: rustix::fs::FileType,
    mode: u32,
    dev: rustix::fs::Dev,
) -> Result<(), std::io::Error> {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        kind,
        rustix::fs::Mode::from_raw_mode(mode & 0o7777),
        dev,
    )
    .map_err(|e| std::io::Error::other(format!("{}: mknod: {e}", path.display())))
}

/// The effective user id, read from /proc so that no `unsafe` libc call is needed.
fn effective_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Reads a tar archive (as `mkosi.skeleton.tar` or `mkosi.extra.tar`) into a tree, keeping the
/// owners the archive records. Names are normalized like package paths: nothing can point
/// outside the tree; a hard link takes its target's content.
pub fn load_tar(r: impl std::io::Read, name: &str) -> Result<Tree, std::io::Error> {
    let bad =
        |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{name}: {m}"));
    let mut t = Tree::new();
    let mut ar = tar::Archive::new(r);
    for item in ar.entries()? {
        let mut e = item?;
        let raw = e.path()?.to_string_lossy().into_owned();
        let path = match normalize(&raw) {
            Ok(p) => p,
            Err(PathError::Empty(_)) => continue, // "./" itself
            Err(err) => return Err(bad(err.to_string())),
        };
        let h = e.header();
        let (mode, uid, gid, mtime) = (
            h.mode()? & 0o7777,
            h.uid()? as u32,
            h.gid()? as u32,
            h.mtime()?,
        );
        let dev = |h: &tar::Header| -> Result<(u32, u32), std::io::Error> {
            Ok((
                h.device_major()?.unwrap_or(0),
                h.device_minor()?.unwrap_or(0),
            ))
        };
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::with_capacity(h.size()? as usize);
                std::io::Read::read_to_end(&mut e, &mut data)?;
                Kind::File(Arc::new(data))
            }
            tar::EntryType::Symlink => Kind::Symlink(
                e.link_name()?
                    .ok_or_else(|| bad(format!("{raw}: symlink without a target")))?
                    .to_string_lossy()
                    .into_owned(),
            ),
            tar::EntryType::Link => {
                let target = e
                    .link_name()?
                    .ok_or_else(|| bad(format!("{raw}: hard link without a target")))?;
                let target =
                    normalize(&target.to_string_lossy()).map_err(|err| bad(err.to_string()))?;
                match t.get(&target) {
                    Some(Entry {
                        kind: k @ Kind::File(_),
                        ..
                    }) => k.clone(),
                    _ => {
                        return Err(bad(format!(
                            "{raw}: hard link to {target}, which is not an earlier file"
                        )));
                    }
                }
            }
            tar::EntryType::Char => {
                let (major, minor) = dev(h)?;
                Kind::CharDevice { major, minor }
            }
            tar::EntryType::Block => {
                let (major, minor) = dev(h)?;
                Kind::BlockDevice { major, minor }
            }
            tar::EntryType::Fifo => Kind::Fifo,
            // pax headers and GNU long names are consumed by the tar crate.
            _ => continue,
        };
        t.insert(
            path,
            Entry {
                kind,
                mode,
                uid,
                gid,
                mtime,
                xattrs: BTreeMap::new(),
            },
        );
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listing comes out in byte order, whatever the names' first 8 bytes share.
    #[test]
    fn listings_come_out_in_byte_order() {
        use rustix::fd::AsFd;
        let tmp = tempfile::tempdir().unwrap();
        let mut names = [
            "abcdefgh",
            "abcdefgh1",
            "abcdefgg9",
            "a",
            "a-b",
            "a.c",
            "a0",
            "b",
            "abcdefghij",
            "d",
        ];
        for n in names {
            std::fs::write(tmp.path().join(n), "x").unwrap();
        }
        let fd = open_root(tmp.path()).unwrap();
        let listed = DirNames::read(tmp.path(), fd.as_fd(), "").unwrap();
        names.sort();
        assert_eq!(listed.iter().map(|(n, _)| n).collect::<Vec<_>>(), names);
    }

    #[test]
    fn tar_archives_load_and_cannot_escape() {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(2);
        h.set_mode(0o4755);
        h.set_uid(7);
        h.set_gid(0);
        h.set_mtime(5);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h.clone(), "usr/bin/x", &b"hi"[..])
            .unwrap();
        let mut l = tar::Header::new_gnu();
        l.set_entry_type(tar::EntryType::Link);
        l.set_size(0);
        l.set_mode(0o644);
        l.set_uid(0);
        l.set_gid(0);
        l.set_mtime(5);
        b.append_link(&mut l, "usr/bin/y", "usr/bin/x").unwrap();
        let data = b.into_inner().unwrap();
        let t = load_tar(&data[..], "t.tar").unwrap();
        let x = t.get("usr/bin/x").unwrap();
        assert_eq!((x.mode, x.uid), (0o4755, 7));
        assert_eq!(t.get("usr/bin/y").unwrap().kind, x.kind);
        assert!(t.get("usr").unwrap().is_dir());

        // A name with .. must be refused (written raw: the tar crate's builder refuses it too).
        let mut raw = tar::Header::new_old();
        raw.as_old_mut().name[..16].copy_from_slice(b"../../etc/passwd");
        raw.set_size(0);
        raw.set_mode(0o644);
        raw.set_uid(0);
        raw.set_gid(0);
        raw.set_mtime(5);
        raw.set_entry_type(tar::EntryType::Regular);
        raw.set_cksum();
        let mut evil = raw.as_bytes().to_vec();
        evil.extend_from_slice(&[0u8; 1024]);
        assert!(
            load_tar(&evil[..], "evil.tar")
                .unwrap_err()
                .to_string()
                .contains("leaves the image root")
        );
    }

    #[test]
    fn normalize_refuses_escapes() {
        assert_eq!(normalize("./usr/bin/x").unwrap(), "usr/bin/x");
        assert_eq!(normalize("/usr//bin/./x").unwrap(), "usr/bin/x");
        assert!(normalize("./usr/../../etc/passwd").is_err());
        assert!(normalize("./").is_err());
    }

    #[test]
    fn insert_creates_parents_and_resolve_follows_links() {
        let mut t = Tree::new();
        t.insert(
            "usr/lib/os-release".into(),
            Entry {
                kind: Kind::File(Arc::new(b"ID=x\n".to_vec())),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 5,
                xattrs: BTreeMap::new(),
            },
        );
        assert!(t.get("usr").unwrap().is_dir());
        t.insert(
            "etc/os-release".into(),
            Entry {
                kind: Kind::Symlink("../usr/lib/os-release".into()),
                ..Entry::dir(0o777, 5)
            },
        );
        assert_eq!(t.resolve("etc/os-release").unwrap().0, "usr/lib/os-release");
        t.insert(
            "bad".into(),
            Entry {
                kind: Kind::Symlink("../../../../etc/shadow".into()),
                ..Entry::dir(0o777, 5)
            },
        );
        assert!(t.resolve("bad").is_none());
    }

    #[test]
    fn write_dir_never_follows_planted_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let mut t = Tree::new();
        t.insert(
            "usr/lib64".into(),
            Entry {
                kind: Kind::Symlink(outside.path().display().to_string()),
                ..Entry::dir(0o777, 5)
            },
        );
        // An entry below the symlink, as a hostile package could list it.
        t.entries.insert(
            "usr/lib64/evil".into(),
            Entry {
                kind: Kind::File(Arc::new(b"x".to_vec())),
                ..Entry::dir(0o644, 5)
            },
        );
        let err = write_dir(&t, dest.path()).unwrap_err();
        assert!(err.to_string().contains("refusing"), "{err}");
        assert!(!outside.path().join("evil").exists());

        let mut ok = Tree::new();
        ok.insert(
            "usr/bin/x".into(),
            Entry {
                kind: Kind::File(Arc::new(b"hi".to_vec())),
                ..Entry::dir(0o755, 5)
            },
        );
        ok.entries.get_mut("usr").unwrap().mode = 0o555;
        write_dir(&ok, dest.path()).unwrap();
        assert_eq!(std::fs::read(dest.path().join("usr/bin/x")).unwrap(), b"hi");
        assert_eq!(
            load_dir(dest.path()).unwrap().get("usr").unwrap().mode,
            0o555
        );
    }
    /// Fifos are written always and device nodes as root, with their modes and numbers, and
    /// read back the same; without root a device is returned as skipped.
    #[test]
    fn write_dir_makes_fifos_and_devices() {
        let dest = tempfile::tempdir().unwrap();
        let mut t = Tree::new();
        let special = |kind| Entry {
            kind,
            ..Entry::dir(0o640, 7)
        };
        t.insert("usr/share/f".into(), special(Kind::Fifo));
        t.insert(
            "usr/share/null".into(),
            special(Kind::CharDevice { major: 1, minor: 3 }),
        );
        t.insert(
            "usr/share/loop".into(),
            special(Kind::BlockDevice { major: 7, minor: 9 }),
        );
        let skipped = write_dir(&t, dest.path()).unwrap();
        let back = load_dir(dest.path()).unwrap();
        let fifo = back.get("usr/share/f").unwrap();
        assert!(matches!(fifo.kind, Kind::Fifo));
        assert_eq!((fifo.mode, fifo.mtime), (0o640, 7));
        if effective_uid() == 0 {
            assert!(skipped.is_empty(), "{skipped:?}");
            for (path, want) in [
                ("usr/share/null", Kind::CharDevice { major: 1, minor: 3 }),
                ("usr/share/loop", Kind::BlockDevice { major: 7, minor: 9 }),
            ] {
                let e = back.get(path).unwrap();
                assert_eq!(e.kind, want, "{path}");
                assert_eq!(e.mode, 0o640, "{path}");
            }
        } else {
            assert_eq!(skipped, ["usr/share/loop", "usr/share/null"]);
        }
    }
}
