//! The squashfs writer against squashfs-tools: `unsquashfs -lls` lists what the tree holds and
//! `unsquashfs` (as root, with xattrs) extracts the tree again: contents, modes, owners, times,
//! link targets, hard links, devices and xattrs. Each compressor is checked, and the bytes do
//! not depend on the thread count.

mod support;

use elsx::tree::{Entry, Kind, Tree};
use elsx::write::squashfs::{self, Compression, Options};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::trees::*;
use support::*;

/// The sample tree without what squashfs cannot hold (POSIX ACLs live in `system.` xattrs).
fn squashfs_tree() -> Tree {
    let mut t = sample_tree();
    for e in t.entries.values_mut() {
        e.xattrs.retain(|k, _| !k.starts_with("system."));
    }
    t
}

fn write_image(t: &Tree, o: &Options, path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    squashfs::write(t, o, None, &mut f).unwrap();
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn tool_output(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_tool(cmd).stdout).into_owned()
}

/// Writes `t`, lists it with `unsquashfs -lls`, extracts it and compares both with the tree.
fn check(t: &Tree, o: &Options) {
    require_tools(&["unsquashfs"]);
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("t.sqfs");
    write_image(t, o, &image);

    let listed = list_image(&image);
    let listed_paths: Vec<&String> = listed.keys().filter(|p| !p.is_empty()).collect();
    let tree_paths: Vec<&String> = t.entries.keys().collect();
    assert_eq!(listed_paths, tree_paths, "{o:?}: unsquashfs -lls");
    for (p, e) in &t.entries {
        let l = &listed[p];
        if (e.uid, e.gid) == (0, 0) {
            assert_eq!(l.owner, "root/root", "{p}: owner");
        }
        if let Kind::Symlink(target) = &e.kind {
            assert_eq!(l.target.as_deref(), Some(target.as_str()), "{p}");
        }
        if let Kind::File(d) = &e.kind {
            assert_eq!(l.size, d.len().to_string(), "{p}: size");
        }
    }

    let out = dir.path().join("x");
    run_tool(
        Command::new("unsquashfs")
            .args(["-no-progress", "-d"])
            .arg(&out)
            .arg(&image),
    );
    let root = is_root();
    let clamp = u64::from(o.epoch.unwrap_or(u32::MAX));
    let mut want = expected(t, true, root);
    for (p, s) in want.iter_mut() {
        s.mtime = Some(t.entries[p].mtime.min(clamp));
        if !root {
            // unsquashfs gives an unprivileged user's files to that user
            (s.uid, s.gid) = (0, 0);
        }
    }
    let mut got = observe(&out, true, root);
    if !root {
        for s in got.values_mut() {
            (s.uid, s.gid) = (0, 0);
        }
    }
    assert_same(&want, &got, &format!("{o:?}"));

    // Hard links come back as one inode.
    if !t.entries.contains_key("usr/bin/linked") {
        return;
    }
    let ino = |p: &str| std::fs::symlink_metadata(out.join(p)).unwrap().ino();
    assert_eq!(ino("usr/bin/linked"), ino("usr/sbin/linked-too"));
    assert_eq!(ino("usr/bin/linked"), ino("etc/linked-three"));
    let links = std::fs::metadata(out.join("usr/bin/linked"))
        .unwrap()
        .nlink();
    assert_eq!(links, 3);
}

fn opts(compression: Compression, block_size: u32) -> Options {
    Options {
        compression,
        block_size,
        epoch: None,
    }
}

#[test]
fn zstd_image_extracts_to_the_tree() {
    check(&squashfs_tree(), &opts(Compression::Zstd(15), 131072));
}

#[test]
fn xz_image_with_small_blocks_extracts_to_the_tree() {
    check(&squashfs_tree(), &opts(Compression::Xz(6), 4096));
}

#[test]
fn gzip_image_extracts_to_the_tree() {
    check(&squashfs_tree(), &opts(Compression::Gzip(9), 65536));
}

#[test]
fn lz4_images_extract_to_the_tree() {
    check(&squashfs_tree(), &opts(Compression::Lz4, 131072));
    check(&squashfs_tree(), &opts(Compression::Lz4hc(12), 1 << 20));
}

#[test]
fn mtimes_are_clamped_to_the_epoch() {
    let mut o = opts(Compression::Zstd(3), 131072);
    o.epoch = Some(super_epoch());
    check(&squashfs_tree(), &o);
}

fn super_epoch() -> u32 {
    (T0 - 3600) as u32
}

/// Duplicate files share their data, so the image holds one copy.
#[test]
fn duplicate_content_is_stored_once() {
    let data = text(3 * 131072 + 500, 9);
    let mut one = Tree::new();
    one.insert("a".into(), file(data.clone(), 0o644));
    let mut two = one.clone();
    two.insert("b".into(), file(data.clone(), 0o600)); // another inode, same bytes
    let dir = tempfile::tempdir().unwrap();
    let o = opts(Compression::Zstd(15), 131072);
    write_image(&one, &o, &dir.path().join("one"));
    write_image(&two, &o, &dir.path().join("two"));
    let len = |n: &str| std::fs::metadata(dir.path().join(n)).unwrap().len();
    assert_eq!(len("one"), len("two"));
    check(&two, &o);
}

/// The same tree gives the same bytes with one worker thread and with several.
#[test]
fn bytes_do_not_depend_on_thread_count() {
    let t = squashfs_tree();
    let o = opts(Compression::Zstd(15), 4096);
    let image = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut v = std::io::Cursor::new(Vec::new());
        pool.install(|| squashfs::write_to(&t, &o, &mut v)).unwrap();
        v.into_inner()
    };
    let one = image(1);
    assert_eq!(one, image(2));
    assert_eq!(one, image(4));
}

/// `elsx pack` reads hard links and xattrs from disk, takes --compress and --block-size, and
/// gives the same bytes with -j1 and -j2.
#[test]
fn pack_keeps_links_and_xattrs_and_takes_compression_options() {
    require_tools(&["unsquashfs"]);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("usr/bin")).unwrap();
    std::fs::write(src.join("usr/bin/tool"), text(200_000, 3)).unwrap();
    std::fs::hard_link(src.join("usr/bin/tool"), src.join("usr/bin/tool-link")).unwrap();
    xattr::set(src.join("usr/bin/tool"), "user.origin", b"test").unwrap();
    let pack = |name: &str, extra: &[&str]| -> (PathBuf, std::process::Output) {
        let out = dir.path().join(name);
        let run = Command::new(elsx_bin())
            .arg("pack")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(extra)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .unwrap();
        (out, run)
    };
    let (a, run) = pack(
        "a.sqfs",
        &["--compress", "xz:9", "--block-size", "65536", "-j1"],
    );
    assert!(run.status.success(), "{run:?}");
    let (b, _) = pack(
        "b.sqfs",
        &["--compress", "xz:9", "--block-size", "65536", "-j2"],
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let stats = tool_output(Command::new("unsquashfs").arg("-s").arg(&a));
    assert!(stats.contains("Compression xz"), "{stats}");
    assert!(stats.contains("Block size 65536"), "{stats}");
    let out = dir.path().join("x");
    run_tool(Command::new("unsquashfs").arg("-d").arg(&out).arg(&a));
    let md = std::fs::metadata(out.join("usr/bin/tool")).unwrap();
    assert_eq!(md.nlink(), 2);
    if is_root() {
        assert_eq!(
            xattr::get(out.join("usr/bin/tool-link"), "user.origin").unwrap(),
            Some(b"test".to_vec())
        );
    }

    let (bad, run) = pack("bad", &["--compress", "zstd:30"]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("zstd level 30 is out of range"), "{stderr}");
    assert!(!bad.exists());
    let (_, run) = pack("bad", &["--fs", "erofs", "--compress", "zstd"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("erofs has no compressor \"zstd\""),
        "{stderr}"
    );
}

/// Every entry kind round-trips through `unsquashfs -lls` with its type letter.
#[test]
fn every_file_type_is_listed() {
    require_tools(&["unsquashfs"]);
    let mut t = Tree::new();
    let e = |kind: Kind, mode: u32| Entry {
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: T0,
        xattrs: Default::default(),
    };
    t.insert("d".into(), e(Kind::Dir, 0o755));
    t.insert("d/f".into(), e(Kind::File(Arc::new(b"x".to_vec())), 0o4755));
    t.insert("d/l".into(), e(Kind::Symlink("f".into()), 0o777));
    t.insert(
        "d/b".into(),
        e(Kind::BlockDevice { major: 8, minor: 1 }, 0o660),
    );
    t.insert(
        "d/c".into(),
        e(Kind::CharDevice { major: 1, minor: 3 }, 0o666),
    );
    t.insert("d/p".into(), e(Kind::Fifo, 0o644));
    t.insert("d/s".into(), e(Kind::Socket, 0o755));
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("t.sqfs");
    write_image(&t, &Options::default(), &image);
    let listed = list_image(&image);
    let modes: Vec<(&str, &str)> = listed
        .iter()
        .filter(|(p, _)| p.starts_with("d/"))
        .map(|(p, l)| (p.as_str(), l.mode.as_str()))
        .collect();
    assert_eq!(
        modes,
        [
            ("d/b", "brw-rw----"),
            ("d/c", "crw-rw-rw-"),
            ("d/f", "-rwsr-xr-x"),
            ("d/l", "lrwxrwxrwx"),
            ("d/p", "prw-r--r--"),
            ("d/s", "srwxr-xr-x"),
        ]
    );
    assert_eq!(listed["d/b"].size, "8,1");
}
