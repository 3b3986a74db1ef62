//! A sample tree with every kind of entry, awkward sizes, owners, names, hard links and xattrs,
//! and the comparison of a tree with what a reader extracted (the EROFS and squashfs tests).

use elsx::tree::{Entry, Kind, Tree};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::sync::Arc;

pub const T0: u64 = 1_700_000_000;

pub fn entry(kind: Kind, mode: u32) -> Entry {
    Entry {
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: T0,
        xattrs: BTreeMap::new(),
    }
}

pub fn file(data: Vec<u8>, mode: u32) -> Entry {
    entry(Kind::File(Arc::new(data)), mode)
}

/// Deterministic bytes that do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Deterministic bytes that compress about as well as text does.
pub fn text(len: usize, seed: u64) -> Vec<u8> {
    let words = [
        "erofs",
        "sysext",
        "block",
        "inode",
        "systemd",
        "openSUSE",
        "cluster",
        "the",
        "of",
        "and",
        "compress",
        "image",
        "extension",
        "release",
        "usr",
        "lib",
    ];
    let r = noise(len / 4 + 16, seed);
    let mut out = Vec::with_capacity(len + 16);
    let mut i = 0;
    while out.len() < len {
        out.extend_from_slice(words[r[i % r.len()] as usize % words.len()].as_bytes());
        out.push(if r[(i + 1) % r.len()].is_multiple_of(9) {
            b'\n'
        } else {
            b' '
        });
        i += 1;
    }
    out.truncate(len);
    out
}

/// A minimal valid POSIX ACL value (version 2: user::rw-, group::r--, other::r--).
pub fn acl() -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm) in [(0x01u16, 6u16), (0x04, 4), (0x20, 4)] {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&u32::MAX.to_le_bytes());
    }
    v
}

pub const SIZES: [usize; 8] = [0, 1, 4095, 4096, 4097, 8193, 100 * 1024, 5 * 1024 * 1024];

/// Every kind of entry, the awkward sizes, modes, owners, names, links and xattrs.
pub fn sample_tree() -> Tree {
    let mut t = Tree::new();
    let mut put = |path: &str, e: Entry| {
        t.insert(path.to_owned(), e);
    };
    for d in [
        "etc", "usr", "usr/bin", "usr/sbin", "usr/lib", "srv", "srv/big", "data",
    ] {
        put(d, entry(Kind::Dir, 0o755));
    }
    put("tmp", entry(Kind::Dir, 0o1777));
    put("opt/deep/a/b/c/d", entry(Kind::Dir, 0o700));
    let mut odd = entry(Kind::Dir, 0o2750);
    odd.uid = 70000;
    odd.gid = 70001;
    odd.mtime = T0 - 86400;
    odd.xattrs
        .insert("trusted.overlay.opaque".into(), b"y".to_vec());
    put("srv/owned", odd);

    for (i, &n) in SIZES.iter().enumerate() {
        put(
            &format!("data/noise-{n}"),
            file(noise(n, i as u64 + 1), 0o644),
        );
        put(
            &format!("data/text-{n}"),
            file(text(n, i as u64 + 100), 0o644),
        );
    }
    put("data/zeros-3M", file(vec![0; 3 * 1024 * 1024 + 17], 0o600));
    // Half compressible, half not: compressed and raw extents in one file.
    let mut mixed = text(300 * 1024, 7);
    mixed.extend(noise(200 * 1024, 8));
    mixed.extend(text(123 * 1024 + 45, 9));
    put("data/mixed", file(mixed, 0o640));

    let selinux = b"system_u:object_r:bin_t:s0\0".to_vec();
    let cap = vec![
        0x00, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    for i in 0..6 {
        let mut e = file(text(3000 + i * 700, 40 + i as u64), 0o755);
        e.xattrs.insert("security.selinux".into(), selinux.clone());
        if i < 3 {
            e.xattrs.insert("security.capability".into(), cap.clone());
        }
        put(&format!("usr/bin/tool{i}"), e);
    }
    let mut su = file(text(20000, 5), 0o4755);
    su.xattrs.insert("security.selinux".into(), selinux.clone());
    su.xattrs
        .insert("user.unique".into(), b"only here".to_vec());
    su.xattrs.insert("user.big".into(), noise(1000, 3));
    put("usr/bin/su", su);
    let mut sg = file(b"#!/bin/sh\n".to_vec(), 0o2755);
    sg.xattrs.insert("system.posix_acl_access".into(), acl());
    put("usr/bin/sg", sg);
    put("etc/shadow", file(b"root:*:1::::::\n".to_vec(), 0o000));
    put("etc/readonly", file(b"ro\n".to_vec(), 0o444));
    let mut big_ids = file(b"owned by a high uid\n".to_vec(), 0o640);
    big_ids.uid = 100_000;
    big_ids.gid = 200_000;
    put("srv/owned/file", big_ids);
    let mut old = file(b"old\n".to_vec(), 0o644);
    old.mtime = 1;
    put("etc/old", old);
    let mut future = file(b"new\n".to_vec(), 0o644);
    future.mtime = 4_000_000_000; // past 2038: needs 64 bits
    put("etc/future", future);

    let shared = Arc::new(text(10000, 77));
    for p in ["usr/bin/linked", "usr/sbin/linked-too", "etc/linked-three"] {
        put(p, entry(Kind::File(shared.clone()), 0o755));
    }

    put("usr/bin/sh", entry(Kind::Symlink("bash".into()), 0o777));
    put(
        "usr/lib/long-link",
        entry(Kind::Symlink("x/".repeat(1500) + "end"), 0o777),
    );
    put(
        "usr/lib/longest-link",
        entry(Kind::Symlink("y".repeat(4095)), 0o777),
    );
    put(
        "etc/null",
        entry(Kind::CharDevice { major: 1, minor: 3 }, 0o666),
    );
    put(
        "etc/sda",
        entry(Kind::BlockDevice { major: 8, minor: 0 }, 0o660),
    );
    put(
        "etc/bigminor",
        entry(
            Kind::BlockDevice {
                major: 259,
                minor: 0x12345,
            },
            0o600,
        ),
    );
    put("etc/fifo", entry(Kind::Fifo, 0o644));
    put("etc/socket", entry(Kind::Socket, 0o755));

    put(
        &format!("etc/{}", "n".repeat(255)),
        file(b"long name\n".to_vec(), 0o644),
    );
    for i in 0..500 {
        let mut e = file(format!("{i}\n").into_bytes(), 0o644);
        if i % 7 == 0 {
            e.xattrs
                .insert("user.tag".into(), format!("group-{}", i % 3).into_bytes());
        }
        put(&format!("srv/big/entry-with-a-longish-name-{i:04}"), e);
    }
    // Directories whose entries fill their one block exactly (no tail at all) and almost
    // (a tail too big to pack after the inode): "." and ".." take 27 bytes, each entry 12 + name.
    for (dir, last) in [("exact", 97), ("nearly", 91)] {
        for i in 0..36 {
            put(
                &format!("srv/{dir}/{i:02}{}", "x".repeat(96)),
                file(vec![], 0o644),
            );
        }
        put(
            &format!("srv/{dir}/z{}", "x".repeat(last - 1)),
            file(vec![], 0o644),
        );
    }
    // Names sorting before "." and "..", and unusual bytes.
    put("srv/!bang", file(b"!\n".to_vec(), 0o644));
    put("srv/-dash", file(b"-\n".to_vec(), 0o644));
    put("srv/.hidden", file(b".\n".to_vec(), 0o644));
    put("srv/ünïcødé", file(b"u\n".to_vec(), 0o644));
    t
}

// ---------------------------------------------------------------------------------------------
// Comparing a tree with what a reader shows

#[derive(Debug, PartialEq, Eq)]
pub struct Seen {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Option<u64>,
    /// sha256 of file content, symlink target, or "major:minor".
    pub what: String,
    pub xattrs: Option<BTreeMap<String, Vec<u8>>>,
}

pub fn sha(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn expected(t: &Tree, mtimes: bool, xattrs: bool) -> BTreeMap<String, Seen> {
    t.entries
        .iter()
        .map(|(p, e)| {
            let (kind, what) = match &e.kind {
                Kind::Dir => ("dir", String::new()),
                Kind::File(d) => ("file", sha(d)),
                Kind::Symlink(s) => ("symlink", s.clone()),
                Kind::CharDevice { major, minor } => ("char", format!("{major}:{minor}")),
                Kind::BlockDevice { major, minor } => ("block", format!("{major}:{minor}")),
                Kind::Fifo => ("fifo", String::new()),
                Kind::Socket => ("socket", String::new()),
            };
            let seen = Seen {
                kind,
                mode: if kind == "symlink" { 0o777 } else { e.mode },
                uid: e.uid,
                gid: e.gid,
                mtime: mtimes.then_some(e.mtime),
                what,
                xattrs: xattrs.then(|| e.xattrs.clone()),
            };
            (p.clone(), seen)
        })
        .collect()
}

pub fn observe(root: &Path, mtimes: bool, xattrs: bool) -> BTreeMap<String, Seen> {
    let mut out = BTreeMap::new();
    for item in walkdir::WalkDir::new(root).min_depth(1) {
        let item = item.unwrap();
        let rel = item
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let md = item.path().symlink_metadata().unwrap();
        let ft = md.file_type();
        let major = |rdev: u64| ((rdev >> 8) & 0xfff) as u32;
        let minor = |rdev: u64| ((rdev & 0xff) | ((rdev >> 12) & 0xfff00)) as u32;
        let (kind, what) = if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_file() {
            ("file", sha(&std::fs::read(item.path()).unwrap()))
        } else if ft.is_symlink() {
            let target = std::fs::read_link(item.path()).unwrap();
            ("symlink", target.to_str().unwrap().to_owned())
        } else if ft.is_char_device() {
            ("char", format!("{}:{}", major(md.rdev()), minor(md.rdev())))
        } else if ft.is_block_device() {
            (
                "block",
                format!("{}:{}", major(md.rdev()), minor(md.rdev())),
            )
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else {
            ("socket", String::new())
        };
        let xattrs = xattrs.then(|| {
            xattr::list(item.path())
                .unwrap()
                .map(|n| {
                    let v = xattr::get(item.path(), &n).unwrap().unwrap_or_default();
                    (n.to_str().unwrap().to_owned(), v)
                })
                .collect()
        });
        let seen = Seen {
            kind,
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
            mtime: mtimes.then_some(md.mtime() as u64),
            what,
            xattrs,
        };
        out.insert(rel, seen);
    }
    out
}

pub fn assert_same(want: &BTreeMap<String, Seen>, got: &BTreeMap<String, Seen>, what: &str) {
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: missing {missing:?}, extra {extra:?}"
    );
    let mut wrong = Vec::new();
    for (p, w) in want {
        if &got[p] != w {
            wrong.push(format!("{p}:\n  want {w:?}\n  got  {:?}", got[p]));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what}: {} differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
