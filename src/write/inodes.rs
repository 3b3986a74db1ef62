//! The inode graph both writers start from: one inode per tree entry, except that hard links
//! (one `Arc` under several paths) share one inode; the root comes first, then the entries in
//! tree order, each directory with its children sorted by name bytes.

use crate::tree::{self, Entry, Kind, Tree};
use std::collections::HashMap;

pub struct Inode<'a> {
    /// The first path naming the inode ("" for the root).
    pub path: &'a str,
    /// `None` for the root, which the tree does not hold.
    pub entry: Option<&'a Entry>,
    /// The directory holding the first name (the root is its own parent).
    pub parent: usize,
    /// A directory's entries (without `.` and `..`), sorted by name bytes.
    pub children: Vec<(&'a [u8], usize)>,
    /// Names for a file, 2 + subdirectories for a directory.
    pub nlink: u32,
}

impl Inode<'_> {
    pub fn is_dir(&self) -> bool {
        self.entry.is_none_or(Entry::is_dir)
    }
}

/// Builds the graph; an error names an entry whose parent is missing or not a directory.
pub fn collect(t: &Tree) -> Result<Vec<Inode<'_>>, String> {
    let mut nodes = vec![Inode {
        path: "",
        entry: None,
        parent: 0,
        children: Vec::new(),
        nlink: 2,
    }];
    let mut dirs: HashMap<&str, usize> = HashMap::new();
    let mut links: HashMap<*const Vec<u8>, usize> = HashMap::new();
    for (path, entry) in &t.entries {
        let (parent, name) = match tree::parent(path) {
            Some(p) => (
                *dirs
                    .get(p)
                    .ok_or_else(|| format!("{path}: parent {p} is missing or not a directory"))?,
                &path[p.len() + 1..],
            ),
            None => (0, path.as_str()),
        };
        let link = match &entry.kind {
            Kind::File(data) => links.get(&std::sync::Arc::as_ptr(data)).copied(),
            _ => None,
        };
        let index = match link {
            Some(i) => {
                nodes[i].nlink += 1;
                i
            }
            None => {
                nodes.push(Inode {
                    path,
                    entry: Some(entry),
                    parent,
                    children: Vec::new(),
                    nlink: if entry.is_dir() { 2 } else { 1 },
                });
                let i = nodes.len() - 1;
                match &entry.kind {
                    Kind::File(data) => {
                        links.insert(std::sync::Arc::as_ptr(data), i);
                    }
                    Kind::Dir => {
                        dirs.insert(path, i);
                        nodes[parent].nlink += 1;
                    }
                    _ => {}
                }
                i
            }
        };
        nodes[parent].children.push((name.as_bytes(), index));
    }
    for n in &mut nodes {
        n.children.sort_by(|a, b| a.0.cmp(b.0));
    }
    Ok(nodes)
}

/// The kernel's `new_encode_dev`, the device number both EROFS and squashfs store.
pub fn encode_dev(major: u32, minor: u32) -> u32 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12)
}
