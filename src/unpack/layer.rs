//! Installing a package's tree over what earlier packages (and the base) made, as rpm's fsm does
//! (`lib/fsm.cc`: `ensureDir` opens each directory of a path following symlinks, `fsmVerify`
//! keeps a symlink to a directory where the package lists a directory).
//!
//! So an entry below a directory symlink lands where the link points: `filesystem` ships
//! `lib64 -> usr/lib64`, another package's `/lib64/libfoo.so` becomes `usr/lib64/libfoo.so`, and
//! a package listing `/lib64` as a directory gives its metadata to `usr/lib64`.
//!
//! Packages come here in transaction order (by name), not in rpm's (dependencies first, so the
//! `filesystem` links before everything else). A symlink to a directory that arrives over a
//! directory made by packages of the same layer therefore takes its place, and what those
//! packages put below it moves to where the link points: the tree rpm makes in its own order.
//! Where rpm fails whatever the order, so does this: a link replacing a directory that holds
//! entries of the layer below (the base), a file replacing a directory that is not empty. A
//! directory replaces a file, as `fsmVerify` does for a listed one. Symlink owners are not
//! checked (rpm follows only links owned by root or by their target's owner): owners are ids only
//! once the base's `etc/passwd` is known, after layering.
//!
//! Safety: a link is only ever followed inside the tree. One whose target climbs above the root
//! (`../../..`) is refused, naming the entry and the link (rpm, chrooted, would stop at `/`);
//! absolute targets are taken from the image root, as in a chroot.

use crate::tree::{Entry, Kind, Tree};

/// At most this many symlinks on one path (the kernel's `ELOOP` limit).
const MAX_LINKS: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error(
        "entry {entry:?} goes through the symlink {link:?} -> {target:?}, which leads outside the image root: refusing to follow it"
    )]
    Escapes {
        entry: String,
        link: String,
        target: String,
    },
    #[error("entry {entry:?} lies below {parent:?}, which is a {kind}")]
    NotDir {
        entry: String,
        parent: String,
        kind: &'static str,
    },
    #[error("too many levels of symlinks below {entry:?}")]
    Loop { entry: String },
    #[error(
        "entry {entry:?} would replace the directory {path:?}, which holds {child:?}{}",
        if *base { " of the base" } else { "" }
    )]
    ReplacesDir {
        entry: String,
        path: String,
        child: String,
        base: bool,
    },
}

/// Installs `pkg` into `tree`, seen over `below` (the layers under it, first one on top: the
/// base when `tree` holds only the extension's packages). Returns the renames it made, in order:
/// an entry of `pkg` placed elsewhere than its own path, and entries of `tree` moved below a link.
pub fn install(
    tree: &mut Tree,
    below: &[&Tree],
    pkg: Tree,
) -> Result<Vec<(String, String)>, LayerError> {
    let mut l = Layer {
        tree,
        below,
        renames: Vec::new(),
    };
    let mut rest = pkg.entries.into_iter();
    while let Some((path, entry)) = rest.next() {
        let is_dir = entry.is_dir();
        if let Err(e) = l.place(&path, &path, entry) {
            // A directory the package does not list (made as a parent) fails first: name the
            // file below it that brought it.
            let prefix = format!("{path}/");
            let file = rest.find(|(p, e)| p.starts_with(&prefix) && !e.is_dir());
            return Err(match file {
                Some((p, _)) if is_dir => e.for_entry(&p),
                _ => e,
            });
        }
    }
    Ok(l.renames)
}

impl LayerError {
    fn for_entry(self, path: &str) -> LayerError {
        let entry = format!("/{path}");
        match self {
            LayerError::Escapes { link, target, .. } => LayerError::Escapes {
                entry,
                link,
                target,
            },
            LayerError::NotDir { parent, kind, .. } => LayerError::NotDir {
                entry,
                parent,
                kind,
            },
            LayerError::Loop { .. } => LayerError::Loop { entry },
            LayerError::ReplacesDir {
                path, child, base, ..
            } => LayerError::ReplacesDir {
                entry,
                path,
                child,
                base,
            },
        }
    }
}

/// Applies `renames` (from [`install`], in order) to `path`.
pub fn renamed(path: &str, renames: &[(String, String)]) -> Option<String> {
    let mut out: Option<String> = None;
    for (from, to) in renames {
        if out.as_deref().unwrap_or(path) == from {
            out = Some(to.clone());
        }
    }
    out
}

struct Layer<'a> {
    tree: &'a mut Tree,
    below: &'a [&'a Tree],
    renames: Vec<(String, String)>,
}

impl Layer<'_> {
    fn get(&self, path: &str) -> Option<&Entry> {
        self.tree
            .get(path)
            .or_else(|| self.below.iter().find_map(|t| t.get(path)))
    }

    /// Where `path` is once every symlink on it (the last component too when `follow_last`) is
    /// followed; missing components are kept as they are (they will be created).
    fn resolve(&self, path: &str, follow_last: bool, entry: &str) -> Result<String, LayerError> {
        let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
        let mut done: Vec<String> = Vec::new();
        let mut link: Option<(String, String)> = None;
        let mut links = 0;
        while let Some(c) = todo.pop() {
            match c.as_str() {
                "" | "." => continue,
                ".." => {
                    if done.pop().is_none() {
                        let (link, target) = link.unwrap_or_default();
                        return Err(LayerError::Escapes {
                            entry: format!("/{entry}"),
                            link: format!("/{link}"),
                            target,
                        });
                    }
                    continue;
                }
                _ => {}
            }
            done.push(c);
            let here = done.join("/");
            match self.get(&here).map(|e| &e.kind) {
                Some(Kind::Symlink(target)) if follow_last || !todo.is_empty() => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(LayerError::Loop {
                            entry: format!("/{entry}"),
                        });
                    }
                    done.pop();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    todo.extend(target.split('/').rev().map(str::to_owned));
                    link = Some((here, target.clone()));
                }
                Some(k) if !todo.is_empty() && !matches!(k, Kind::Dir) => {
                    return Err(LayerError::NotDir {
                        entry: format!("/{entry}"),
                        parent: format!("/{here}"),
                        kind: k.type_name(),
                    });
                }
                _ => {}
            }
        }
        Ok(done.join("/"))
    }

    /// The first entry strictly below `dir` in `t`.
    fn child_in<'t>(t: &'t Tree, dir: &str) -> Option<&'t String> {
        let prefix = format!("{dir}/");
        t.entries
            .range(prefix.clone()..)
            .next()
            .map(|(p, _)| p)
            .filter(|p| p.starts_with(&prefix))
    }

    /// Places `entry`, named `path` (where an earlier move put it) and `origin` (the package's
    /// own name, for messages).
    fn place(&mut self, path: &str, origin: &str, entry: Entry) -> Result<(), LayerError> {
        let (dir, name) = match path.rsplit_once('/') {
            // A directory already there is where it seems: layering never makes one below a
            // link (so its parents are directories too). Most entries take this way.
            Some((p, n)) if self.get(p).is_some_and(Entry::is_dir) => (p.to_owned(), n),
            Some((p, n)) => (self.resolve(p, true, origin)?, n),
            None => (String::new(), path),
        };
        let landing = join(&dir, name);
        let existing = self.get(&landing).map(|e| e.kind.clone());
        match (existing, &entry.kind) {
            // A directory where a link is: the link stays, the directory it names takes the
            // metadata (fsmVerify accepts a symlink to a directory for a directory).
            (Some(Kind::Symlink(_)), Kind::Dir) => {
                let target = self.resolve(&landing, true, origin)?;
                match self.get(&target) {
                    Some(e) if !e.is_dir() => self.put(origin, landing, entry),
                    _ if target.is_empty() => {} // the root itself
                    _ => self.put(origin, target, entry),
                }
            }
            (Some(Kind::Dir), Kind::Symlink(link)) => {
                let link = link.clone();
                self.link_over_dir(origin, landing, &dir, &link, entry)?
            }
            (Some(Kind::Dir), Kind::Dir) => self.put(origin, landing, entry),
            (Some(Kind::Dir), _) => {
                self.refuse_if_not_empty(origin, &landing)?;
                self.put(origin, landing, entry)
            }
            _ => self.put(origin, landing, entry),
        }
        Ok(())
    }

    fn put(&mut self, origin: &str, landing: String, entry: Entry) {
        if landing != origin {
            self.renames.push((origin.to_owned(), landing.clone()));
        }
        self.tree.insert(landing, entry);
    }

    fn refuse_if_not_empty(&self, origin: &str, dir: &str) -> Result<(), LayerError> {
        let here = Self::child_in(self.tree, dir).map(|c| (c, false));
        let base = || {
            self.below
                .iter()
                .find_map(|t| Self::child_in(t, dir))
                .map(|c| (c, true))
        };
        match here.or_else(base) {
            Some((child, base)) => Err(LayerError::ReplacesDir {
                entry: format!("/{origin}"),
                path: format!("/{dir}"),
                child: format!("/{child}"),
                base,
            }),
            None => Ok(()),
        }
    }

    /// A symlink arriving where packages of this layer made a directory: what they put below it
    /// moves to where the link points (where rpm, installing the link's package first, would
    /// have put it).
    fn link_over_dir(
        &mut self,
        origin: &str,
        landing: String,
        dir: &str,
        link: &str,
        entry: Entry,
    ) -> Result<(), LayerError> {
        if let Some(child) = self.below.iter().find_map(|t| Self::child_in(t, &landing)) {
            return Err(LayerError::ReplacesDir {
                entry: format!("/{origin}"),
                path: format!("/{landing}"),
                child: format!("/{child}"),
                base: true,
            });
        }
        let joined = if link.starts_with('/') {
            link.to_owned()
        } else {
            join(dir, link)
        };
        let target = self.resolve(&joined, true, origin).map_err(|e| match e {
            // The link itself is what leads out.
            LayerError::Escapes { entry, .. } => LayerError::Escapes {
                entry,
                link: format!("/{landing}"),
                target: link.to_owned(),
            },
            e => e,
        })?;
        let prefix = format!("{landing}/");
        if target == landing || target.starts_with(&prefix) {
            return Err(LayerError::Loop {
                entry: format!("/{origin}"),
            });
        }
        if let Some(e) = self.get(&target).filter(|e| !e.is_dir()) {
            return Err(LayerError::NotDir {
                entry: format!("/{origin}"),
                parent: format!("/{target}"),
                kind: e.kind.type_name(),
            });
        }
        let moved: Vec<(String, Entry)> = {
            let keys: Vec<String> = self
                .tree
                .entries
                .range(prefix.clone()..)
                .map(|(p, _)| p.clone())
                .take_while(|p| p.starts_with(&prefix))
                .collect();
            keys.into_iter()
                .map(|k| {
                    let e = self.tree.entries.remove(&k).expect("listed above");
                    (k, e)
                })
                .collect()
        };
        self.tree.entries.remove(&landing);
        self.put(origin, landing.clone(), entry);
        for (old, e) in moved {
            // Placed again from its new name: below the target, links are followed too.
            let new = join(&target, &old[prefix.len()..]);
            self.place(&new, &old, e)?;
        }
        Ok(())
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(entries: &[(&str, Entry)]) -> Tree {
        let mut t = Tree::new();
        for (p, e) in entries {
            t.insert(p.to_string(), e.clone());
        }
        t
    }
    fn link(to: &str) -> Entry {
        Entry {
            kind: Kind::Symlink(to.to_owned()),
            ..Entry::dir(0o777, 1)
        }
    }
    fn file(s: &str) -> Entry {
        Entry::file(s.as_bytes().to_vec(), 0o644, 1)
    }
    fn keys(t: &Tree) -> Vec<&str> {
        t.entries.keys().map(String::as_str).collect()
    }

    #[test]
    fn entries_below_a_directory_link_land_where_it_points() {
        let mut base = t(&[
            ("lib64", link("usr/lib64")),
            ("usr/lib64", Entry::dir(0o755, 1)),
            ("bin", link("/usr/bin")),
        ]);
        let r = install(
            &mut base,
            &[],
            t(&[
                ("lib64/libfoo.so", file("foo")),
                ("lib64", Entry::dir(0o700, 2)),
                ("bin/sh", file("sh")),
            ]),
        )
        .unwrap();
        assert_eq!(
            keys(&base),
            [
                "bin",
                "lib64",
                "usr",
                "usr/bin",
                "usr/bin/sh",
                "usr/lib64",
                "usr/lib64/libfoo.so"
            ]
        );
        assert!(matches!(base.get("lib64").unwrap().kind, Kind::Symlink(_)));
        assert_eq!(base.get("usr/lib64").unwrap().mode, 0o700);
        assert_eq!(
            renamed("lib64/libfoo.so", &r).unwrap(),
            "usr/lib64/libfoo.so"
        );
    }

    #[test]
    fn a_link_over_a_directory_of_the_layer_takes_its_place() {
        let mut tree = t(&[("lib64/libfoo.so", file("foo")), ("lib64/sub/x", file("x"))]);
        let r = install(&mut tree, &[], t(&[("lib64", link("usr/lib64"))])).unwrap();
        assert_eq!(
            keys(&tree),
            [
                "lib64",
                "usr",
                "usr/lib64",
                "usr/lib64/libfoo.so",
                "usr/lib64/sub",
                "usr/lib64/sub/x"
            ]
        );
        assert_eq!(renamed("lib64/sub/x", &r).unwrap(), "usr/lib64/sub/x");
        // Over the base's directory that holds files: rpm fails there too.
        let base = t(&[("lib64/libc.so", file("c"))]);
        let mut ext = Tree::new();
        let e = install(&mut ext, &[&base], t(&[("lib64", link("usr/lib64"))])).unwrap_err();
        assert!(e.to_string().contains("/lib64/libc.so"), "{e}");
    }

    #[test]
    fn links_never_lead_out_of_the_root() {
        let base = t(&[
            ("usr/share/esc", link("../../../../tmp")),
            ("usr/share/abs", link("/../../tmp")),
            ("loop", link("loop2")),
            ("loop2", link("loop")),
        ]);
        for (p, want) in [
            ("usr/share/esc/x", "outside the image root"),
            ("usr/share/abs/x", "outside the image root"),
            ("loop/x", "too many levels"),
        ] {
            let mut ext = Tree::new();
            let e = install(&mut ext, &[&base], t(&[(p, file("x"))])).unwrap_err();
            assert!(
                e.to_string().contains(want) && e.to_string().contains(p),
                "{e}"
            );
            assert!(ext.is_empty() || ext.entries.keys().all(|k| !k.contains("tmp")));
        }
        // The file is named even when a sibling sorts between it and its directory.
        let mut ext = Tree::new();
        let pkg = t(&[
            ("usr/share/esc-a", file("a")),
            ("usr/share/esc/x", file("x")),
        ]);
        let e = install(&mut ext, &[&base], pkg).unwrap_err();
        assert!(e.to_string().contains("\"/usr/share/esc/x\""), "{e}");
        // A link arriving over a directory and pointing out.
        let mut tree = t(&[("opt/d/x", file("x"))]);
        let e = install(&mut tree, &[], t(&[("opt/d", link("../../.."))])).unwrap_err();
        assert!(e.to_string().contains("outside the image root"), "{e}");
    }
}
