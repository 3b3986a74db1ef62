//! RPM payloads to [`Tree`]s: the header (via the `rpm` crate) gives names, modes, owners and
//! link targets; the cpio stream (read here, see [`cpio`]) gives the contents.
//!
//! Invariant: every path goes through [`tree::normalize`], so no package can place anything
//! outside the tree, whatever its payload says.

pub mod caps;
pub mod cpio;
pub mod layer;

use crate::compress::Codec;
use crate::tree::{self, Entry, Kind, Tree};
use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A single file in a package may not exceed this (rpm's own limit for newc is 4 GiB).
const MAX_FILE: u64 = 4 << 30;

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid RPM header: {message}")]
    Header { path: PathBuf, message: String },
    #[error("{path}: unsupported payload compressor {name:?}")]
    Compressor { path: PathBuf, name: String },
    #[error("{path}")]
    Cpio {
        path: PathBuf,
        source: cpio::CpioError,
    },
    #[error("{path}: payload entry {entry:?}")]
    Path {
        path: PathBuf,
        entry: String,
        source: tree::PathError,
    },
    #[error(
        "{path}: the payload's sha256 is {actual}, the header says {expected}: the package is damaged"
    )]
    PayloadDigest {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: {entry:?} is listed in the header but missing from the payload")]
    Missing { path: PathBuf, entry: String },
    #[error(
        "{path}: entry {entry:?} lies below {parent:?}, which the same package makes a {kind}: refusing to write through it"
    )]
    BelowNonDir {
        path: PathBuf,
        entry: String,
        parent: String,
        kind: &'static str,
    },
}

/// Ids from a tree's `etc/passwd` and `etc/group`; `root` (0) for names they do not list.
#[derive(Default, Clone, Debug)]
pub struct IdMap {
    users: HashMap<String, u32>,
    groups: HashMap<String, u32>,
}

impl IdMap {
    pub fn from_tree(t: &Tree) -> IdMap {
        let table = |path: &str| -> HashMap<String, u32> {
            let Some((
                _,
                Entry {
                    kind: Kind::File(d),
                    ..
                },
            )) = t.resolve(path)
            else {
                return HashMap::new();
            };
            String::from_utf8_lossy(d)
                .lines()
                .filter_map(|l| {
                    let mut f = l.split(':');
                    let name = f.next()?;
                    let id = f.nth(1)?.parse().ok()?;
                    Some((name.to_owned(), id))
                })
                .collect()
        };
        IdMap {
            users: table("etc/passwd"),
            groups: table("etc/group"),
        }
    }
}

impl IdMap {
    pub fn uid(&self, user: &str) -> u32 {
        self.users.get(user).copied().unwrap_or(0)
    }
    pub fn gid(&self, group: &str) -> u32 {
        self.groups.get(group).copied().unwrap_or(0)
    }
}

impl IdMap {
    /// Gives the entries listed in `owners` the ids their names have in this map.
    pub fn apply(&self, t: &mut Tree, owners: &[Owner]) {
        for o in owners {
            if let Some(e) = t.entries.get_mut(&o.path) {
                e.uid = self.uid(&o.user);
                e.gid = self.gid(&o.group);
            }
        }
    }
}

/// A path whose owner or group is not root, by name: ids are only known once the base tree's
/// `etc/passwd` and `etc/group` are there.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Owner {
    pub path: String,
    pub user: String,
    pub group: String,
}

/// What unpacking found besides the files, for the build report.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Unpacked {
    /// Scriptlets the package carries, which elsx does not run (`%post`, `%posttrans`, ...).
    pub skipped_scriptlets: Vec<String>,
    /// Entries not owned by root:root.
    pub owners: Vec<Owner>,
}

/// Reads the RPM at `path` into a tree (owners are root until [`IdMap::apply`]).
pub fn unpack_file(path: &Path) -> Result<(Tree, Unpacked), UnpackError> {
    unpack(&read(path)?, path)
}

fn read(path: &Path) -> Result<Vec<u8>, UnpackError> {
    fs_err::read(path).map_err(|e| UnpackError::Io {
        path: path.to_owned(),
        source: e,
    })
}

fn parse_header(data: &[u8], path: &Path) -> Result<(rpm::PackageMetadata, usize), UnpackError> {
    let mut cursor = std::io::Cursor::new(data);
    let meta = rpm::PackageMetadata::parse(&mut cursor).map_err(|e| header_err(e, path))?;
    Ok((meta, cursor.position() as usize))
}

fn header_err(e: rpm::Error, path: &Path) -> UnpackError {
    UnpackError::Header {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Reads an RPM held in memory; `path` is only used in messages. The payload's sha256 from the
/// header (rpm ≥ 4.14 writes it) is checked before anything is extracted.
pub fn unpack(data: &[u8], path: &Path) -> Result<(Tree, Unpacked), UnpackError> {
    let (m, u) = unpack_manifest(data, path)?;
    Ok((m.tree, u))
}

/// [`unpack_file`], with the header's digest of each regular file beside its content.
pub fn unpack_manifest_file(path: &Path) -> Result<(Manifest, Unpacked), UnpackError> {
    unpack_manifest(&read(path)?, path)
}

/// [`unpack`], with the header's digest of each regular file beside its content.
pub fn unpack_manifest(data: &[u8], path: &Path) -> Result<(Manifest, Unpacked), UnpackError> {
    let (meta, start) = parse_header(data, path)?;
    let mut contents = payload_contents(&meta, &data[start..], path)?;
    from_header(&meta, path, &mut |name, full| {
        contents.remove(name).ok_or_else(|| UnpackError::Missing {
            path: path.to_owned(),
            entry: full.to_owned(),
        })
    })
}

/// A package's files as its header describes them, without reading the payload: regular files
/// carry no content (an empty `Kind::File`), `digests` says what their content is.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    pub tree: Tree,
    pub digests: HashMap<String, FileDigest>,
}

impl Manifest {
    /// Installs `other` over this manifest as rpm installs a package over the ones before it
    /// ([`layer::install`]), the digests following their files; returns the renames made.
    pub fn install(&mut self, other: Manifest) -> Result<Vec<(String, String)>, layer::LayerError> {
        let paths: Vec<String> = other.tree.entries.keys().cloned().collect();
        let renames = layer::install(&mut self.tree, &[], other.tree)?;
        rename_keys(&mut self.digests, &renames);
        // Whatever was at a place the package took (a file it replaces by a link) loses its digest.
        for p in paths {
            let landed = layer::renamed(&p, &renames).unwrap_or(p);
            self.digests.remove(&landed);
        }
        let mut theirs = other.digests;
        rename_keys(&mut theirs, &renames);
        self.digests.extend(theirs);
        Ok(renames)
    }
}

/// Moves each value of `map` whose key [`layer::install`] renamed.
fn rename_keys<V>(map: &mut HashMap<String, V>, renames: &[(String, String)]) {
    if renames.is_empty() {
        return;
    }
    let moved: Vec<(String, String)> = map
        .keys()
        .filter_map(|k| Some((k.clone(), layer::renamed(k, renames)?)))
        .collect();
    let values: Vec<(String, V)> = moved
        .into_iter()
        .filter_map(|(from, to)| Some((to, map.remove(&from)?)))
        .collect();
    map.extend(values);
}

/// The content of a regular file as the header records it (`FILEDIGESTS`, `FILESIZES`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    /// The package's `FILEDIGESTALGO` (md5 when absent, as in old packages).
    pub algo: rpm::DigestAlgorithm,
    pub hex: String,
    pub size: u64,
}

impl FileDigest {
    /// Whether `data` has this digest; `None` when elsx cannot compute the algorithm (md5,
    /// sha3), so the caller must not decide on it.
    pub fn matches(&self, data: &[u8]) -> Option<bool> {
        use sha2::Digest;
        if data.len() as u64 != self.size {
            return Some(false);
        }
        if !self.supported() {
            return None;
        }
        let got = match self.algo {
            rpm::DigestAlgorithm::Sha2_224 => hex::encode(sha2::Sha224::digest(data)),
            rpm::DigestAlgorithm::Sha2_256 => hex::encode(sha2::Sha256::digest(data)),
            rpm::DigestAlgorithm::Sha2_384 => hex::encode(sha2::Sha384::digest(data)),
            _ => hex::encode(sha2::Sha512::digest(data)),
        };
        Some(got.eq_ignore_ascii_case(&self.hex))
    }

    /// Whether [`FileDigest::matches`] can answer for this algorithm.
    pub fn supported(&self) -> bool {
        matches!(
            self.algo,
            rpm::DigestAlgorithm::Sha2_224
                | rpm::DigestAlgorithm::Sha2_256
                | rpm::DigestAlgorithm::Sha2_384
                | rpm::DigestAlgorithm::Sha2_512
        )
    }
}

/// Reads only the header of the RPM at `path`: its manifest, nothing extracted.
pub fn manifest_file(path: &Path) -> Result<(Manifest, Unpacked), UnpackError> {
    let data = read(path)?;
    let (meta, _) = parse_header(&data, path)?;
    from_header(&meta, path, &mut |_, _| Ok(Arc::new(Vec::new())))
}

/// Reads the RPM at `path` and keeps only the regular files `want` selects (with the package's
/// directories, symlinks and devices): for the few base files whose content a build needs.
pub fn unpack_selected(path: &Path, want: &dyn Fn(&str) -> bool) -> Result<Tree, UnpackError> {
    let (t, _) = unpack_file(path)?;
    Ok(Tree {
        entries: t
            .entries
            .into_iter()
            .filter(|(p, e)| !matches!(e.kind, Kind::File(_)) || want(p))
            .collect(),
    })
}

/// The payload's regular files by normalized name, after checking the payload's sha256.
fn payload_contents(
    meta: &rpm::PackageMetadata,
    payload_bytes: &[u8],
    path: &Path,
) -> Result<HashMap<String, Arc<Vec<u8>>>, UnpackError> {
    if let Some(want) = meta
        .header
        .get_entry_data_as_string_array(rpm::IndexTag::RPMTAG_PAYLOADSHA256)
        .ok()
        .and_then(|v| v.first().map(|s| s.to_ascii_lowercase()))
    {
        let got = crate::checksum::Algo::Sha256.digest_hex(payload_bytes);
        if got != want {
            return Err(UnpackError::PayloadDigest {
                path: path.to_owned(),
                expected: want,
                actual: got,
            });
        }
    }
    let r = BufReader::with_capacity(1 << 16, payload_bytes);
    let compressor = meta
        .header
        .get_entry_data_as_string(rpm::IndexTag::RPMTAG_PAYLOADCOMPRESSOR)
        .unwrap_or("none")
        .to_owned();
    let codec = Codec::from_rpm_compressor(&compressor).ok_or_else(|| UnpackError::Compressor {
        path: path.to_owned(),
        name: compressor.clone(),
    })?;
    let payload = codec.reader(r).map_err(|e| UnpackError::Io {
        path: path.to_owned(),
        source: e,
    })?;
    let mut cpio = cpio::Reader::new(payload, MAX_FILE);
    let mut contents: HashMap<String, Arc<Vec<u8>>> = HashMap::new();
    // Hard links: newc stores the data once, with the last name of the inode.
    let mut by_ino: HashMap<u32, Vec<String>> = HashMap::new();
    loop {
        let next = cpio.next_entry().map_err(|source| UnpackError::Cpio {
            path: path.to_owned(),
            source,
        })?;
        let Some((h, data)) = next else { break };
        let name = tree::normalize(&h.name).map_err(|source| UnpackError::Path {
            path: path.to_owned(),
            entry: h.name.clone(),
            source,
        })?;
        if h.mode & 0o170000 == 0o100000 {
            if h.nlink > 1 {
                by_ino.entry(h.ino).or_default().push(name.clone());
            }
            if !data.is_empty() || h.nlink <= 1 {
                contents.insert(name, Arc::new(data));
            }
        }
    }
    for names in by_ino.values() {
        if let Some(data) = names.iter().find_map(|n| contents.get(n).cloned()) {
            for n in names {
                contents.insert(n.clone(), data.clone());
            }
        }
    }
    Ok(contents)
}

/// Content of a regular file by (normalized name, name as the header spells it).
type ContentFn<'a> = dyn FnMut(&str, &str) -> Result<Arc<Vec<u8>>, UnpackError> + 'a;

/// The tree the header describes, regular files filled in by `content`, with the header's
/// digest of each regular file.
fn from_header(
    meta: &rpm::PackageMetadata,
    path: &Path,
    content: &mut ContentFn,
) -> Result<(Manifest, Unpacked), UnpackError> {
    let files = meta.get_file_entries().map_err(|e| header_err(e, path))?;
    let mut digests = HashMap::new();
    let mut listed: BTreeMap<String, Entry> = BTreeMap::new();
    let mut owners = Vec::new();
    for f in &files {
        if f.flags().contains(rpm::FileFlags::GHOST) {
            continue; // %ghost: owned by the package, never in the payload, not created by rpm
        }
        let full = f.path();
        let full = full.to_string_lossy();
        let name = tree::normalize(&full).map_err(|source| UnpackError::Path {
            path: path.to_owned(),
            entry: full.to_string(),
            source,
        })?;
        let raw = f.mode().raw_mode() as u32;
        let kind = match raw & 0o170000 {
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink(f.linkto().unwrap_or_default().to_owned()),
            0o100000 => {
                if let Some(d) = f.digest() {
                    let digest = FileDigest {
                        algo: d.algorithm(),
                        hex: d.as_hex().to_owned(),
                        size: f.size() as u64,
                    };
                    digests.insert(name.clone(), digest);
                }
                Kind::File(content(&name, &full)?)
            }
            0o020000 => Kind::CharDevice {
                major: f.rdev_major() as u32,
                minor: f.rdev_minor() as u32,
            },
            0o060000 => Kind::BlockDevice {
                major: f.rdev_major() as u32,
                minor: f.rdev_minor() as u32,
            },
            0o010000 => Kind::Fifo,
            _ => Kind::Socket,
        };
        let mut xattrs = BTreeMap::new();
        if let Some(caps) = f.caps().filter(|c| !c.is_empty())
            && let Some(v) = crate::unpack::caps::encode(caps)
        {
            xattrs.insert("security.capability".to_owned(), v);
        }
        if f.user() != "root" || f.group() != "root" {
            owners.push(Owner {
                path: name.clone(),
                user: f.user().to_owned(),
                group: f.group().to_owned(),
            });
        }
        listed.insert(
            name,
            Entry {
                kind,
                mode: raw & 0o7777,
                uid: 0,
                gid: 0,
                mtime: u64::from(f.modified_at().0),
                xattrs,
            },
        );
    }
    // A package may not place entries below its own symlinks (or files): rpmbuild never makes
    // such a package, and writing it out would follow the link out of the tree.
    for name in listed.keys() {
        let mut p = tree::parent(name);
        while let Some(dir) = p {
            if let Some(e) = listed.get(dir).filter(|e| !e.is_dir()) {
                return Err(UnpackError::BelowNonDir {
                    path: path.to_owned(),
                    entry: format!("/{name}"),
                    parent: format!("/{dir}"),
                    kind: e.kind.type_name(),
                });
            }
            p = tree::parent(dir);
        }
    }
    let mut t = Tree::new();
    for (name, e) in listed {
        t.insert(name, e);
    }
    let mut scripts = Vec::new();
    for (tag, label) in [
        (rpm::IndexTag::RPMTAG_PREIN, "%pre"),
        (rpm::IndexTag::RPMTAG_POSTIN, "%post"),
        (rpm::IndexTag::RPMTAG_PRETRANS, "%pretrans"),
        (rpm::IndexTag::RPMTAG_POSTTRANS, "%posttrans"),
    ] {
        if meta.header.entry_is_present(tag) {
            scripts.push(label.to_owned());
        }
    }
    Ok((
        Manifest { tree: t, digests },
        Unpacked {
            skipped_scriptlets: scripts,
            owners,
        },
    ))
}
