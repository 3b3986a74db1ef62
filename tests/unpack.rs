//! Unpacking checked against `rpm2cpio | cpio -idm` on every fixture RPM (payloads none, gzip,
//! bzip2, xz, zstd; devices, fifos, hard links, setuid/setgid/sticky, caps, ghosts, owners) and on
//! a legacy lzma payload, and hostile payloads wrapped in real RPMs: refused, naming the package
//! and the entry, with nothing written outside the target.

mod support;

use elsx::tree::{Entry, Kind, Tree};
use elsx::unpack::{self, IdMap};
use std::collections::BTreeMap;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use support::*;

/// One entry as both sides can describe it: kind (with device numbers), mode, content or target.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    kind: String,
    mode: u32,
    data: Vec<u8>,
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// What `rpm2cpio RPM | cpio -idm` creates (as root, so device nodes too).
fn reference(rpm: &Path) -> BTreeMap<String, Seen> {
    assert!(
        is_root(),
        "this test compares device nodes with what cpio creates, which needs root"
    );
    let tmp = tempfile::tempdir().unwrap();
    rpm_extract(rpm, tmp.path());
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(tmp.path()).min_depth(1) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(tmp.path()).unwrap();
        let md = e.path().symlink_metadata().unwrap();
        let ft = md.file_type();
        let dev = || {
            let r = md.rdev();
            (
                ((r >> 8) & 0xfff) as u32,
                ((r & 0xff) | ((r >> 12) & 0xfff00)) as u32,
            )
        };
        let (kind, data) = if ft.is_dir() {
            ("dir".to_owned(), vec![])
        } else if ft.is_symlink() {
            let t = std::fs::read_link(e.path()).unwrap();
            (
                "symlink".to_owned(),
                t.to_string_lossy().as_bytes().to_vec(),
            )
        } else if ft.is_file() {
            ("file".to_owned(), std::fs::read(e.path()).unwrap())
        } else if ft.is_char_device() {
            (format!("char {:?}", dev()), vec![])
        } else if ft.is_block_device() {
            (format!("block {:?}", dev()), vec![])
        } else if ft.is_fifo() {
            ("fifo".to_owned(), vec![])
        } else {
            ("other".to_owned(), vec![])
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            md.permissions().mode() & 0o7777
        };
        out.insert(rel.display().to_string(), Seen { kind, mode, data });
    }
    out
}

fn seen(t: &Tree) -> BTreeMap<String, Seen> {
    t.entries
        .iter()
        .map(|(p, e)| {
            let (kind, data) = match &e.kind {
                Kind::Dir => ("dir".to_owned(), vec![]),
                Kind::File(d) => ("file".to_owned(), d.to_vec()),
                Kind::Symlink(s) => ("symlink".to_owned(), s.as_bytes().to_vec()),
                Kind::CharDevice { major, minor } => (format!("char {:?}", (major, minor)), vec![]),
                Kind::BlockDevice { major, minor } => {
                    (format!("block {:?}", (major, minor)), vec![])
                }
                Kind::Fifo => ("fifo".to_owned(), vec![]),
                Kind::Socket => ("socket".to_owned(), vec![]),
            };
            let mode = if matches!(e.kind, Kind::Symlink(_)) {
                0
            } else {
                e.mode
            };
            (p.clone(), Seen { kind, mode, data })
        })
        .collect()
}

fn fixture_rpms() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(fixture_repo())
        .into_iter()
        .filter_map(|e| e.ok().map(|e| e.into_path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
        .collect();
    v.sort();
    v
}

fn query(rpm: &Path, fmt: &str) -> String {
    let out = run_tool(
        Command::new("rpm")
            .args(["-qp", "--nosignature", "--qf", fmt])
            .arg(rpm),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Unpacks `rpm` with elsx and with `rpm2cpio | cpio -idm` and asserts both trees are equal.
fn assert_matches_rpm2cpio(rpm: &Path) {
    let name = rpm.file_name().unwrap().to_string_lossy().into_owned();
    let want = reference(rpm);
    let (t, _) = unpack::unpack_file(rpm).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut got = seen(&t);
    // cpio creates the parents of what the payload holds with its own modes; the header
    // lists only the package's own directories. Compare the directories cpio made without
    // their modes unless the package lists them.
    let listed = query(rpm, "[%{FILENAMES}\n]");
    let listed: std::collections::BTreeSet<&str> =
        listed.lines().map(|l| l.trim_start_matches('/')).collect();
    for (p, s) in got.iter_mut() {
        if s.kind == "dir" && !listed.contains(p.as_str()) {
            s.mode = 0;
        }
    }
    let mut want = want;
    for (p, s) in want.iter_mut() {
        if s.kind == "dir" && !listed.contains(p.as_str()) {
            s.mode = 0;
        }
    }
    // Ghosts are listed in the header and made by neither.
    let ghosts = query(rpm, "[%{FILEFLAGS:fflags} %{FILENAMES}\n]");
    for l in ghosts
        .lines()
        .filter(|l| l.split(' ').next().unwrap().contains('g'))
    {
        let p = l.split_once(' ').unwrap().1.trim_start_matches('/');
        assert!(!got.contains_key(p), "{name}: %ghost {p} was created");
    }
    assert_eq!(got, want, "{name}: elsx and rpm2cpio | cpio -idm disagree");
}

#[test]
fn every_fixture_rpm_matches_rpm2cpio() {
    let rpms = fixture_rpms();
    let mut compressors = std::collections::BTreeSet::new();
    for rpm in &rpms {
        compressors.insert(query(rpm, "%{PAYLOADCOMPRESSOR}"));
        assert_matches_rpm2cpio(rpm);
    }
    for c in ["(none)", "gzip", "bzip2", "xz", "zstd"] {
        assert!(
            compressors.contains(c),
            "no fixture with a {c} payload: {compressors:?}"
        );
    }
}

/// rpm's legacy `lzdio` payloads are `.lzma` ("LZMA_Alone") streams, not xz: built here with
/// rpmbuild (`_binary_payload w9.lzdio`, a 64 MiB dictionary) rather than in the fixture
/// repository, which other tests count.
#[test]
fn lzma_payload_matches_rpm2cpio() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = mkrepo(
        tmp.path(),
        &[(
            "lzma.spec",
            r#"Name: payload-lzma
Version: 1.0
Release: 1
Summary: a package with an lzma (LZMA_Alone) payload
License: MIT
BuildArch: noarch
%define _binary_payload w9.lzdio
%description
lzma payload
%prep
%build
%install
d=%{buildroot}/usr/share/lz
install -d -m 0750 $d/sub
seq 1 20000 > $d/sub/numbers
printf 'hello\n' > $d/hello
ln $d/hello $d/hello2
ln -s sub/numbers $d/link
%files
/usr/share/lz
"#,
        )],
    );
    let rpm = rpm_in(&repo, "payload-lzma-1.0-1.noarch.rpm");
    assert_eq!(query(&rpm, "%{PAYLOADCOMPRESSOR}"), "lzma");
    // The payload really is LZMA_Alone: properties byte 0x5d (lc=3 lp=0 pb=2), a 64 MiB
    // dictionary, unknown size; no xz magic.
    let data = std::fs::read(&rpm).unwrap();
    let payload = &data[payload_start(&data)..];
    assert_eq!(
        hex::encode(&payload[..13]),
        "5d00000004ffffffffffffffff",
        "not the .lzma header rpm's lzdio writes"
    );
    assert_matches_rpm2cpio(&rpm);
    let (t, _) = unpack::unpack_file(&rpm).unwrap();
    let numbers = match &t.entries["usr/share/lz/sub/numbers"].kind {
        Kind::File(d) => d.len(),
        k => panic!("{k:?}"),
    };
    assert_eq!(numbers, 108_894);
}

#[test]
fn special_entries_keep_their_metadata() {
    let rpm = fixture_rpm("fixture-special-1.0-1.noarch.rpm");
    let (mut t, u) = unpack::unpack_file(&rpm).unwrap();
    let d = "usr/share/fixture-special";
    let get = |t: &Tree, p: &str| t.get(&format!("{d}/{p}")).cloned().unwrap();
    assert_eq!(get(&t, "suid").mode, 0o4755);
    assert_eq!(get(&t, "sgid").mode, 0o2755);
    assert_eq!(get(&t, "sticky").mode, 0o1777);
    assert_eq!(get(&t, "setgid-dir").mode, 0o2775);
    assert_eq!(
        get(&t, "null").kind,
        Kind::CharDevice { major: 1, minor: 3 }
    );
    assert_eq!(
        get(&t, "loop0").kind,
        Kind::BlockDevice { major: 7, minor: 0 }
    );
    assert_eq!(get(&t, "fifo").kind, Kind::Fifo);
    assert_eq!(get(&t, "fifo").mode, 0o620);
    // Hard links share one content.
    let (Kind::File(a), Kind::File(b), Kind::File(c)) = (
        get(&t, "link1").kind,
        get(&t, "link2").kind,
        get(&t, "sub/link3").kind,
    ) else {
        panic!("hard links are not files")
    };
    assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &c));
    assert_eq!(a.as_slice(), b"three names, one inode\n");
    // %ghost: neither the file nor the directories exist (rpm skips them; their parents are
    // created when something else needs them).
    for g in ["ghost-file", "ghost-dir"] {
        assert!(t.get(&format!("{d}/{g}")).is_none(), "{g}");
    }
    assert!(t.get("opt/fixture-special/ghost-dir").is_none());
    assert!(t.get("opt/fixture-special").unwrap().is_dir());

    // %caps: the same bytes setcap writes.
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    std::fs::write(&f, b"x").unwrap();
    run_tool(
        Command::new("setcap")
            .arg("cap_net_raw,cap_net_admin=ep")
            .arg(&f),
    );
    let want = xattr::get(&f, "security.capability").unwrap().unwrap();
    assert_eq!(
        get(&t, "capped").xattrs.get("security.capability"),
        Some(&want)
    );

    // Owners by name: root when the base does not know them, the base's ids when it does.
    let owned: Vec<(&str, &str, &str)> = u
        .owners
        .iter()
        .map(|o| (o.path.as_str(), o.user.as_str(), o.group.as_str()))
        .collect();
    assert!(owned.contains(&("usr/share/fixture-special/owned", "fxuser", "fxgroup")));
    IdMap::default().apply(&mut t, &u.owners);
    assert_eq!((get(&t, "owned").uid, get(&t, "owned").gid), (0, 0));
    let mut base = Tree::new();
    base.insert(
        "etc/passwd".into(),
        Entry::file(
            b"root:x:0:0::/root:/bin/sh\nfxuser:x:4242:4243::/:/bin/false\n".to_vec(),
            0o644,
            1,
        ),
    );
    base.insert(
        "etc/group".into(),
        Entry::file(b"root:x:0:\nfxgroup:x:4343:\n".to_vec(), 0o644, 1),
    );
    IdMap::from_tree(&base).apply(&mut t, &u.owners);
    assert_eq!((get(&t, "owned").uid, get(&t, "owned").gid), (4242, 4343));
    assert_eq!((get(&t, "sgid").uid, get(&t, "sgid").gid), (0, 4343));
    assert_eq!(get(&t, "loop0").gid, 4343);
    assert_eq!(get(&t, "setgid-dir").gid, 4343);
}

// ---------------------------------------------------------------------------------------------
// Hostile payloads

/// A newc archive from (name, mode, ino, nlink, data).
fn cpio(entries: &[(&str, u32, u32, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut push = |name: &str, mode: u32, ino: u32, nlink: u32, data: &[u8]| {
        let h = format!(
            "070701{ino:08x}{mode:08x}{:08x}{:08x}{nlink:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            0,
            0,
            1_700_000_000u32,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend_from_slice(data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    };
    for &(n, m, i, l, d) in entries {
        push(n, m, i, l, d);
    }
    push("TRAILER!!!", 0, 0, 1, b"");
    out
}

/// Replaces every occurrence of `from` by `to` (same length) in `data`.
fn patch(data: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len(), "in-place patches keep lengths");
    let mut n = 0;
    let mut i = 0;
    while i + from.len() <= data.len() {
        if &data[i..i + from.len()] == from {
            data[i..i + from.len()].copy_from_slice(to);
            n += 1;
            i += from.len();
        } else {
            i += 1;
        }
    }
    assert!(n > 0, "{:?} not found", String::from_utf8_lossy(from));
}

/// Where the payload of an RPM starts (after the lead, signature and header).
fn payload_start(data: &[u8]) -> usize {
    let mut cursor = std::io::Cursor::new(data);
    rpm::PackageMetadata::parse(&mut cursor).unwrap();
    cursor.position() as usize
}

/// A real RPM (rpmbuild, uncompressed payload) whose payload is replaced by `payload`; the
/// header's payload digests are rewritten to match unless `keep_digest`.
fn with_payload(rpm: &Path, payload: &[u8], keep_digest: bool) -> Vec<u8> {
    let data = std::fs::read(rpm).unwrap();
    let start = payload_start(&data);
    let sha = |b: &[u8]| {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(b))
    };
    let mut head = data[..start].to_vec();
    if !keep_digest {
        patch(
            &mut head,
            sha(&data[start..]).as_bytes(),
            sha(payload).as_bytes(),
        );
    }
    head.extend_from_slice(payload);
    head
}

/// Builds the hostile template package: a directory `lin2/` with a file, a symlink `link` to
/// a 64-character placeholder target, and a file `plain`.
fn hostile_template(dir: &Path) -> PathBuf {
    let target = format!("/{}", "T".repeat(63));
    let spec = format!(
        r#"Name: hostile
Version: 1.0
Release: 1
Summary: template for hostile payloads
License: MIT
BuildArch: noarch
%define _binary_payload w.ufdio
%description
template
%prep
%build
%install
d=%{{buildroot}}/usr/share/h
install -d -m 0755 $d/lin2
printf 'evil\n' > $d/lin2/evil
printf 'plain\n' > $d/plain
ln -s {target} $d/link
%files
/usr/share/h
"#
    );
    let repo = mkrepo(dir, &[("hostile.spec", &spec)]);
    rpm_in(&repo, "hostile-1.0-1.noarch.rpm")
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

#[test]
fn hostile_payloads_are_refused_and_write_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let template = hostile_template(tmp.path());
    let sentinel = tmp.path().join("sentinel");
    std::fs::create_dir_all(&sentinel).unwrap();
    std::fs::write(sentinel.join("keep"), b"untouched").unwrap();
    let before = read_tree(&sentinel);
    let good = |n: &'static str, d: &'static [u8]| (n, 0o100644, 1, 1, d);
    let pkg = tmp.path().join("evil.rpm");

    // 1. `..` in a payload name, first with the old digest (refused as damaged before anything
    // is read), then with a correct digest (refused for the path).
    let payload = cpio(&[
        ("./usr/share/h/lin2/evil", 0o100644, 1, 1, b"evil\n"),
        ("./usr/share/h/../../../../sentinel/x", 0o100644, 2, 1, b"x"),
        ("./usr/share/h/link", 0o120777, 3, 1, b"/TTT"),
        good("./usr/share/h/plain", b"plain\n"),
    ]);
    std::fs::write(&pkg, with_payload(&template, &payload, true)).unwrap();
    let e = chain(&unpack::unpack_file(&pkg).unwrap_err());
    assert!(e.contains("evil.rpm") && e.contains("damaged"), "{e}");
    std::fs::write(&pkg, with_payload(&template, &payload, false)).unwrap();
    let e = chain(&unpack::unpack_file(&pkg).unwrap_err());
    assert!(
        e.contains("evil.rpm")
            && e.contains("./usr/share/h/../../../../sentinel/x")
            && e.contains("leaves the image root"),
        "{e}"
    );

    // 2. A hard link whose second name leaves the root.
    let payload = cpio(&[
        ("./usr/share/h/lin2/evil", 0o100644, 7, 2, b""),
        ("../sentinel/hl", 0o100644, 7, 2, b"evil\n"),
        good("./usr/share/h/plain", b"plain\n"),
    ]);
    std::fs::write(&pkg, with_payload(&template, &payload, false)).unwrap();
    let e = chain(&unpack::unpack_file(&pkg).unwrap_err());
    assert!(
        e.contains("evil.rpm") && e.contains("../sentinel/hl"),
        "{e}"
    );

    // 3. Absolute names stay inside the tree.
    let payload = cpio(&[
        ("/usr/share/h/lin2/evil", 0o100644, 1, 1, b"evil\n"),
        ("/usr/share/h/link", 0o120777, 3, 1, b"/TTT"),
        ("/usr/share/h/plain", 0o100644, 4, 1, b"plain\n"),
    ]);
    std::fs::write(&pkg, with_payload(&template, &payload, false)).unwrap();
    let (t, _) = unpack::unpack_file(&pkg).unwrap();
    assert!(t.entries.keys().all(|p| p.starts_with("usr")), "{t:?}");
    let dest = tmp.path().join("dest");
    elsx::tree::write_dir(&t, &dest).unwrap();
    assert_eq!(
        std::fs::read(dest.join("usr/share/h/plain")).unwrap(),
        b"plain\n"
    );

    // 4. A symlink the package plants (pointing at the sentinel) and a file below it: the
    // header is patched so that `lin2/evil` becomes `link/evil`.
    let (patched, target) = patched_symlink(&template, &sentinel, tmp.path());
    let planted = cpio(&[
        ("./usr/share/h/link", 0o120777, 3, 1, target.as_bytes()),
        ("./usr/share/h/link/evil", 0o100644, 1, 1, b"evil\n"),
        good("./usr/share/h/plain", b"plain\n"),
    ]);
    std::fs::write(&pkg, with_payload(&patched, &planted, false)).unwrap();
    let e = chain(&unpack::unpack_file(&pkg).unwrap_err());
    assert!(
        e.contains("evil.rpm") && e.contains("/usr/share/h/link/evil") && e.contains("symlink"),
        "{e}"
    );
    let planted_rpm = std::fs::read(&pkg).unwrap();

    // 5. `..` in the header's names.
    let mut data = std::fs::read(&template).unwrap();
    let start = payload_start(&data);
    patch(
        &mut data[..start],
        b"/usr/share/h/lin2/",
        b"/../../../sentine/",
    );
    let patched = tmp.path().join("patched.rpm");
    std::fs::write(&patched, &data).unwrap();
    let payload = cpio(&[
        ("./usr/share/h/link", 0o120777, 3, 1, b"/TTT"),
        good("./usr/share/h/plain", b"plain\n"),
    ]);
    std::fs::write(&pkg, with_payload(&patched, &payload, false)).unwrap();
    let e = chain(&unpack::unpack_file(&pkg).unwrap_err());
    assert!(
        e.contains("evil.rpm") && e.contains("/../../../sentine/evil") && e.contains("leaves"),
        "{e}"
    );

    // 4 again, end to end: a build of this package refuses it and writes nothing.
    let repo = tmp.path().join("evilrepo");
    std::fs::create_dir_all(repo.join("noarch")).unwrap();
    std::fs::write(repo.join("noarch/hostile-1.0-1.noarch.rpm"), &planted_rpm).unwrap();
    run_tool(Command::new("createrepo_c").arg("--quiet").arg(&repo));
    let recipe = tmp.path().join("evil.toml");
    std::fs::write(
        &recipe,
        "[extension]\nname = \"evil\"\nversion = \"1\"\nos-id = \"_any\"\n[repos]\nuse = [\"evil\"]\n[packages]\ninstall = [\"hostile\"]\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let run = elsx([
        "build",
        recipe.to_str().unwrap(),
        "--output-dir",
        out.to_str().unwrap(),
        "--repo",
        &format!("evil={}", file_url(&repo)),
    ]);
    assert_eq!(run.code, 2, "{run}");
    assert!(
        run.stderr.contains("hostile") && run.stderr.contains("/usr/share/h/link/evil"),
        "{run}"
    );
    assert!(
        dir_entries(&out).iter().all(|p| !p.ends_with(".raw")),
        "{run}"
    );
    assert_eq!(
        read_tree(&sentinel),
        before,
        "something was written into the sentinel"
    );
}

/// The template with its symlink pointing at `sentinel` (padded with slashes to the
/// placeholder's length) and `lin2/` renamed `link/`; returns the package and the target.
fn patched_symlink(template: &Path, sentinel: &Path, dir: &Path) -> (PathBuf, String) {
    let mut target = sentinel.display().to_string();
    assert!(
        target.len() <= 64,
        "temporary path too long for the placeholder"
    );
    while target.len() < 64 {
        target.push('/');
    }
    let mut data = std::fs::read(template).unwrap();
    // The header only: the (uncompressed) payload holds the target too, and keeps its digest.
    let start = payload_start(&data);
    patch(
        &mut data[..start],
        format!("/{}", "T".repeat(63)).as_bytes(),
        target.as_bytes(),
    );
    patch(
        &mut data[..start],
        b"/usr/share/h/lin2/",
        b"/usr/share/h/link/",
    );
    let p = dir.join("patched-symlink.rpm");
    std::fs::write(&p, &data).unwrap();
    (p, target)
}

// ---------------------------------------------------------------------------------------------
// Packages installed over one another: directory symlinks

/// A noarch spec named `name` whose %install runs `install` and whose %files lists `files`.
fn spec(name: &str, requires: &str, install: &str, files: &str) -> String {
    format!(
        "Name: {name}\nVersion: 1.0\nRelease: 1\nSummary: {name}\nLicense: MIT\nBuildArch: noarch\n{requires}\n%description\n{name}\n%prep\n%build\n%install\nd=%{{buildroot}}\n{install}\n%files\n{files}\n"
    )
}

/// What rpm itself installs from `rpms` (one transaction, its own order) into a new root.
fn rpm_install(root: &Path, rpms: &[PathBuf]) -> BTreeMap<String, Node> {
    std::fs::create_dir_all(root).unwrap();
    run_tool(
        Command::new("rpm")
            .arg("--root")
            .arg(root)
            .args(["--dbpath", "/rpmdb", "-i", "--nosignature", "--noscripts"])
            .args(rpms),
    );
    let mut t = read_tree(root);
    t.retain(|p, _| p != "rpmdb" && !p.starts_with("rpmdb/"));
    t
}

/// `elsx build` of the image `layers` (`base` packages, `install` on top) from `repo` into
/// `out`, with `ELSX_BASE=mode` (`unpack`, or `headers`: the default).
fn build_base_and(repo: &Path, base: &[&str], install: &[&str], out: &Path, mode: &str) -> Run {
    let recipe = out.with_extension("toml");
    let list = |v: &[&str]| format!("{v:?}");
    std::fs::write(
        &recipe,
        format!(
            "[extension]\nname = \"layers\"\nversion = \"1\"\nos-id = \"_any\"\n[repos]\nuse = [\"layers\"]\n[base]\npackages = {}\n[packages]\ninstall = {}\n",
            list(base),
            list(install)
        ),
    )
    .unwrap();
    elsx_with_env(
        Arc::new(tempfile::tempdir().unwrap()),
        [
            "build",
            recipe.to_str().unwrap(),
            "--output-dir",
            out.to_str().unwrap(),
            "--repo",
            &format!("layers={}", file_url(repo)),
        ],
        &[("ELSX_BASE", mode)],
    )
}

/// Base `dirlinks` makes `lib64 -> usr/lib64` and `opt/vendor -> /opt/real`; `aa-old` (a base
/// package ordered before it by name) ships `/lib64/libold.so`; the extension's `aa-tool` ships
/// `/lib64/libfoo.so.1`; `ab-data` ships `/opt/app/share/data.txt` below `zz-applink`'s
/// `opt/app -> vendor/app` (so through two links). rpm, installing the links first, puts
/// everything in usr/lib64 and opt/real/app; so must elsx, from headers and unpacked alike.
#[test]
fn entries_below_an_earlier_packages_directory_link_follow_it() {
    let tmp = tempfile::tempdir().unwrap();
    let specs = [
        spec(
            "dirlinks",
            "",
            "install -d $d/usr/lib64 $d/opt/real/app\nln -s usr/lib64 $d/lib64\nln -s /opt/real $d/opt/vendor\necho base > $d/usr/lib64/libbase.so",
            "/lib64\n%dir /usr/lib64\n/usr/lib64/libbase.so\n/opt/vendor\n%dir /opt/real\n%dir /opt/real/app",
        ),
        spec(
            "aa-old",
            "Requires: dirlinks",
            "install -d $d/lib64\necho old > $d/lib64/libold.so",
            "/lib64/libold.so",
        ),
        spec(
            "aa-tool",
            "Requires: dirlinks",
            "install -d $d/lib64 $d/usr/bin\necho foo > $d/lib64/libfoo.so.1\nln -s libfoo.so.1 $d/lib64/libfoo.so\necho tool > $d/usr/bin/aa-tool",
            "/lib64/libfoo.so.1\n/lib64/libfoo.so\n/usr/bin/aa-tool",
        ),
        spec(
            "ab-data",
            "Requires: zz-applink",
            "install -d $d/opt/app/share\necho data > $d/opt/app/share/data.txt",
            "/opt/app/share/data.txt",
        ),
        spec(
            "zz-applink",
            "Requires: dirlinks",
            "install -d $d/opt\nln -s vendor/app $d/opt/app",
            "/opt/app",
        ),
    ];
    let named: Vec<(String, &str)> = ["dirlinks", "aa-old", "aa-tool", "ab-data", "zz-applink"]
        .iter()
        .zip(&specs)
        .map(|(n, s)| (format!("{n}.spec"), s.as_str()))
        .collect();
    let named: Vec<(&str, &str)> = named.iter().map(|(n, s)| (n.as_str(), *s)).collect();
    let repo = mkrepo(tmp.path(), &named);
    let rpm = |n: &str| rpm_in(&repo, &format!("{n}-1.0-1.noarch.rpm"));

    // rpm's answer: the base, then base and extension in one root.
    let base_rpms = [rpm("dirlinks"), rpm("aa-old")];
    let base = rpm_install(&tmp.path().join("rpm-base"), &base_rpms);
    let all = rpm_install(
        &tmp.path().join("rpm-all"),
        &[
            &base_rpms[..],
            &[rpm("aa-tool"), rpm("ab-data"), rpm("zz-applink")],
        ]
        .concat(),
    );
    assert!(matches!(&base["lib64"], Node::Symlink(t) if t == "usr/lib64"));
    assert!(base.contains_key("usr/lib64/libold.so"), "{base:?}");
    assert!(all.contains_key("usr/lib64/libfoo.so.1"), "{all:?}");
    assert!(all.contains_key("opt/real/app/share/data.txt"), "{all:?}");
    // What the extension adds below usr/ and opt/, directories aside.
    let added: BTreeMap<String, Node> = all
        .into_iter()
        .filter(|(p, n)| {
            (p.starts_with("usr/") || p.starts_with("opt/"))
                && !matches!(n, Node::Dir { .. })
                && !base.contains_key(p)
        })
        .collect();

    let mut images = Vec::new();
    for mode in ["unpack", "headers"] {
        let out = tmp.path().join(format!("out-{mode}"));
        let run = build_base_and(
            &repo,
            &["dirlinks", "aa-old"],
            &["aa-tool", "ab-data"],
            &out,
            mode,
        );
        assert_eq!(run.code, 0, "{mode}: {run}");
        let image = out.join("layers.raw");
        let dest = tmp.path().join(format!("img-{mode}"));
        extract_image(&image, &dest);
        let got: BTreeMap<String, Node> = read_tree(&dest)
            .into_iter()
            .filter(|(p, n)| {
                !matches!(n, Node::Dir { .. }) && !p.starts_with("usr/lib/extension-release.d")
            })
            .collect();
        assert_eq!(got, added, "{mode}: the image is not what rpm installs");
        images.push(std::fs::read(&image).unwrap());
    }
    assert!(
        images[0] == images[1],
        "the image from headers differs from the unpacked base's"
    );
}

/// A base package's link that climbs out of the root, and an extension package writing below
/// it: refused, naming the package and the entry, whether the base is unpacked or not.
#[test]
fn a_directory_link_out_of_the_root_is_never_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let sentinel = tmp.path().join("sentinel");
    std::fs::create_dir_all(&sentinel).unwrap();
    let up = "../".repeat(12);
    let specs = [
        spec(
            "esc-base",
            "",
            &format!(
                "install -d $d/usr/share\nln -s {up}{} $d/usr/share/esc",
                sentinel.display()
            ),
            "/usr/share/esc",
        ),
        spec(
            "esc-user",
            "",
            "install -d $d/usr/share/esc\necho evil > $d/usr/share/esc/evil",
            "/usr/share/esc/evil",
        ),
    ];
    let repo = mkrepo(
        tmp.path(),
        &[("esc-base.spec", &specs[0]), ("esc-user.spec", &specs[1])],
    );
    for mode in ["unpack", "headers"] {
        let out = tmp.path().join(format!("out-{mode}"));
        let run = build_base_and(&repo, &["esc-base"], &["esc-user"], &out, mode);
        assert_eq!(run.code, 2, "{mode}: {run}");
        assert!(
            run.stderr.contains("esc-user-1.0-1.noarch")
                && run.stderr.contains("/usr/share/esc/evil")
                && run.stderr.contains("outside the image root"),
            "{mode}: {run}"
        );
        assert!(
            dir_entries(&out).iter().all(|p| !p.ends_with(".raw")),
            "{mode}: {run}"
        );
    }
    assert!(
        dir_entries(&sentinel).is_empty(),
        "written into the sentinel"
    );
}
