//! The layer differ: `elsx diff BASE TOOLS` on directories and tar archives, one test per
//! Overlay=yes rule, the same answer whatever -j is, and a build whose base stays a manifest of
//! its packages' headers giving the same image as one that unpacks the base.

mod support;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn write(root: &Path, rel: &str, data: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn mkdir(root: &Path, rel: &str, mode: u32) {
    let p = root.join(rel);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// BASE and TOOLS exercising every rule but the directory-over-file error.
fn trees(dir: &Path) -> (PathBuf, PathBuf) {
    let (b, t) = (dir.join("base"), dir.join("tools"));
    for root in [&b, &t] {
        write(root, "usr/bin/same", "same\n", 0o755);
        write(root, "etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644);
        symlink("same", root.join("usr/bin/same-link")).unwrap();
    }
    mkdir(&b, "usr/share", 0o711);
    mkdir(&t, "usr/share", 0o755);
    write(&b, "usr/share/sized", "base\n", 0o644);
    write(&t, "usr/share/sized", "tools, longer\n", 0o644);
    write(&b, "usr/share/same-size", "aaaa\n", 0o644);
    write(&t, "usr/share/same-size", "bbbb\n", 0o644);
    write(&b, "usr/share/mode", "m\n", 0o644);
    write(&t, "usr/share/mode", "m\n", 0o600);
    symlink("a", b.join("usr/share/retarget")).unwrap();
    symlink("b", t.join("usr/share/retarget")).unwrap();
    write(&b, "usr/lib/os-release", "ID=base\n", 0o644);
    write(&t, "usr/lib/os-release", "ID=tools\n", 0o644);
    write(&t, "usr/share/new/file", "new\n", 0o644);
    write(&t, "opt/tool/bin/t", "t\n", 0o755);
    write(&t, "etc/tool.conf", "conf\n", 0o644);
    write(&t, "var/lib/tool/state", "s\n", 0o644);
    mkdir(&t, "usr/share/empty/deeper", 0o755);
    (b, t)
}

/// `elsx diff ARGS` (which takes no --cache-dir, unlike the commands `support::elsx` runs).
fn diff(args: &[&str]) -> Run {
    let o = Command::new(elsx_bin())
        .arg("diff")
        .args(args)
        .env("CI", "1")
        .output()
        .expect("running elsx diff");
    Run {
        code: o.status.code().expect("elsx died by a signal"),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        cache: std::sync::Arc::new(tempfile::tempdir().unwrap()),
        args: args.iter().map(|a| a.to_string()).collect(),
    }
}

/// `elsx diff --json [FLAGS] BASE TOOLS --out OUT`, which must succeed.
fn diff_json(flags: &[&str], base: &Path, tools: &Path, out: &Path) -> Run {
    let mut args = vec!["--json"];
    args.extend_from_slice(flags);
    let (b, t, o) = (
        base.to_str().unwrap(),
        tools.to_str().unwrap(),
        out.to_str().unwrap(),
    );
    args.extend([b, t, "--out", o]);
    let run = diff(&args);
    run.assert_success();
    run
}

fn strs(v: &serde_json::Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect()
}

#[test]
fn overlay_rules_on_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = trees(tmp.path());
    let out = tmp.path().join("out");
    let j = diff_json(&["--compare", "contents"], &b, &t, &out).json();
    assert_eq!(strs(&j["added"]), ["opt/tool/bin/t", "usr/share/new/file"]);
    // Every path in both that differs is reported and dropped (content at another size, at the
    // same size, mode, symlink target); os-release is the base's path like any other.
    assert_eq!(
        strs(&j["changed"]),
        [
            "usr/lib/os-release",
            "usr/share/mode",
            "usr/share/retarget",
            "usr/share/same-size",
            "usr/share/sized"
        ]
    );
    assert_eq!(j["unchanged"], 2, "usr/bin/same and its symlink");
    assert_eq!(j["not_compared"], 0);
    assert_eq!(j["compared"], "contents");
    assert_eq!(
        strs(&j["outside"]),
        ["etc/tool.conf", "var/lib/tool/state"],
        "etc/passwd is in the base too: not listed"
    );
    assert_eq!(j["kept_changed"], false);
    let got = read_tree(&out);
    let paths: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "opt",
            "opt/tool",
            "opt/tool/bin",
            "opt/tool/bin/t",
            "usr",
            "usr/share",
            "usr/share/new",
            "usr/share/new/file"
        ],
        "empty directories, dropped files and everything outside /usr and /opt are gone"
    );
    assert_eq!(
        got["usr/share"],
        Node::Dir { mode: 0o711 },
        "a shared directory takes the base's mode"
    );

    // The human report says the same.
    let run = diff(&[
        "--compare",
        "contents",
        b.to_str().unwrap(),
        t.to_str().unwrap(),
    ]);
    run.assert_success();
    for line in [
        "added    /usr/share/new/file",
        "changed  (dropped) /usr/share/same-size",
        "outside  /etc/tool.conf",
        "2 added, 5 changed, 2 identical, 2 outside /usr and /opt",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing:\n{run}");
    }
    assert!(!run.stdout.contains("not compared"), "{run}");

    // --keep-changed keeps them (never os-release), with the tools' content, and compares
    // contents whatever --compare says.
    let kept = tmp.path().join("kept");
    let run = diff_json(&["--keep-changed", "--compare", "types"], &b, &t, &kept);
    assert_eq!(run.json()["kept_changed"], true);
    assert_eq!(run.json()["compared"], "contents");
    assert_eq!(run.json()["changed"], j["changed"]);
    let got = read_tree(&kept);
    assert_eq!(
        got["usr/share/same-size"],
        Node::File {
            mode: 0o644,
            data: b"bbbb\n".to_vec()
        }
    );
    assert_eq!(got["usr/share/retarget"], Node::Symlink("b".into()));
    assert!(!got.contains_key("usr/lib/os-release"));
}

/// What each --compare level reports on the same trees: types (the default) and metadata read
/// less and say what they left open; what they call changed is changed; the result is the same.
#[test]
fn each_compare_level_reports_what_it_compared() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = trees(tmp.path());
    // A file linked into both trees is the same file: identical without reading it.
    write(&b, "usr/share/linked", "one inode\n", 0o644);
    std::fs::hard_link(b.join("usr/share/linked"), t.join("usr/share/linked")).unwrap();
    // A file that became a symlink: changed at every level, the listings tell it.
    write(&b, "usr/share/retyped", "file\n", 0o644);
    symlink("sized", t.join("usr/share/retyped")).unwrap();
    let reference = read_tree(&{
        let out = tmp.path().join("out-contents");
        diff_json(&["--compare", "contents"], &b, &t, &out);
        out
    });
    // flags, level, changed, identical, not compared, the human summary
    type Case<'a> = (&'a [&'a str], &'a str, &'a [&'a str], u64, u64, &'a str);
    let cases: [Case; 3] = [
        (
            &["--compare", "contents"],
            "contents",
            &[
                "usr/lib/os-release",
                "usr/share/mode",
                "usr/share/retarget",
                "usr/share/retyped",
                "usr/share/same-size",
                "usr/share/sized",
            ],
            3,
            0,
            "2 added, 6 changed, 3 identical, 2 outside /usr and /opt",
        ),
        (
            &["--compare", "metadata"],
            "metadata",
            // Same size, mode and owner: usr/bin/same and usr/share/same-size are not read.
            &[
                "usr/lib/os-release",
                "usr/share/mode",
                "usr/share/retarget",
                "usr/share/retyped",
                "usr/share/sized",
            ],
            2,
            2,
            "2 added, 5 changed, 2 identical, 2 not compared, 2 outside /usr and /opt",
        ),
        (
            &[],
            "types",
            &["usr/share/retyped"],
            0,
            8,
            "2 added, 1 changed, 0 identical, 8 not compared, 2 outside /usr and /opt",
        ),
    ];
    for (flags, level, changed, unchanged, not_compared, summary) in cases {
        let out = tmp.path().join(format!("out-{level}"));
        let j = diff_json(flags, &b, &t, &out).json();
        assert_eq!(j["compared"], level);
        assert_eq!(strs(&j["changed"]), changed, "{level}");
        assert_eq!(j["unchanged"], unchanged, "{level}");
        assert_eq!(j["not_compared"], not_compared, "{level}");
        assert_eq!(strs(&j["added"]), ["opt/tool/bin/t", "usr/share/new/file"]);
        assert_eq!(read_tree(&out), reference, "{level}: the result differs");
        let mut args = flags.to_vec();
        args.extend([b.to_str().unwrap(), t.to_str().unwrap()]);
        let run = diff(&args);
        run.assert_success();
        assert!(run.stdout.contains(summary), "{summary:?} missing:\n{run}");
        assert_eq!(
            run.stdout
                .contains("--compare contents tells changed from identical"),
            not_compared > 0,
            "{run}"
        );
    }
}

/// A directory only the base has is never read: a name in it that elsx could not handle (not
/// UTF-8) does not matter, the same name in the tools tree is an error naming it.
#[test]
fn a_directory_only_the_base_has_is_not_read() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = (tmp.path().join("b"), tmp.path().join("t"));
    write(&t, "usr/bin/tool", "t\n", 0o755);
    let odd = std::ffi::OsStr::from_bytes(b"f\xff");
    write(&b, "usr/share/base-only/x", "x\n", 0o644);
    std::fs::write(b.join("usr/share/base-only").join(odd), "x").unwrap();
    for level in ["types", "metadata", "contents"] {
        let run = diff_json(&["--compare", level], &b, &t, &tmp.path().join(level));
        assert_eq!(strs(&run.json()["added"]), ["usr/bin/tool"], "{level}");
    }
    mkdir(&t, "usr/share/base-only", 0o755);
    std::fs::write(t.join("usr/share/base-only").join(odd), "x").unwrap();
    let run = diff(&[b.to_str().unwrap(), t.to_str().unwrap()]);
    run.assert_code(2);
    assert!(
        run.stderr.contains("usr/share/base-only/f") && run.stderr.contains("not UTF-8"),
        "{run}"
    );
}

#[test]
fn os_release_never_reaches_the_extension() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = (tmp.path().join("b"), tmp.path().join("t"));
    mkdir(&b, "usr/lib", 0o755);
    write(&t, "usr/lib/os-release", "ID=tools\n", 0o644);
    write(&t, "usr/lib/tool", "x\n", 0o644);
    let out = tmp.path().join("out");
    let run = diff_json(&["--keep-changed"], &b, &t, &out);
    assert_eq!(strs(&run.json()["removed"]), ["usr/lib/os-release"]);
    assert!(!out.join("usr/lib/os-release").exists());
    assert!(out.join("usr/lib/tool").exists());
}

#[test]
fn a_directory_over_a_base_file_or_symlink_is_an_error() {
    for base_kind in ["file", "symlink"] {
        let tmp = tempfile::tempdir().unwrap();
        let (b, t) = (tmp.path().join("b"), tmp.path().join("t"));
        if base_kind == "file" {
            write(&b, "usr/lib/thing", "x\n", 0o644);
        } else {
            mkdir(&b, "usr/lib", 0o755);
            symlink("elsewhere", b.join("usr/lib/thing")).unwrap();
        }
        write(&t, "usr/lib/thing/inside", "y\n", 0o644);
        let out = tmp.path().join("out");
        let run = diff(&[
            b.to_str().unwrap(),
            t.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        run.assert_code(2);
        assert!(
            run.stderr.contains("usr/lib/thing") && run.stderr.contains(base_kind),
            "{base_kind}: {run}"
        );
        assert!(!out.exists(), "nothing written on error");
    }
}

#[test]
fn whiteouts_are_dropped() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = (tmp.path().join("b"), tmp.path().join("t"));
    write(&b, "usr/share/gone", "x\n", 0o644);
    write(&t, "usr/share/kept", "k\n", 0o644);
    // An overlayfs whiteout: a character device 0:0 (as root; a tar archive carries it for
    // everyone).
    let mut ar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_entry_type(tar::EntryType::Regular);
    ar.append_data(&mut h, "usr/share/kept", &b"k\n"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h.set_entry_type(tar::EntryType::Char);
    h.set_device_major(0).unwrap();
    h.set_device_minor(0).unwrap();
    ar.append_data(&mut h, "usr/share/gone", &b""[..]).unwrap();
    let tools_tar = tmp.path().join("tools.tar");
    std::fs::write(&tools_tar, ar.into_inner().unwrap()).unwrap();
    let out = tmp.path().join("out");
    let run = diff_json(&[], &b, &tools_tar, &out);
    assert_eq!(strs(&run.json()["removed"]), ["usr/share/gone"]);
    assert_eq!(dir_entries(&out), ["usr", "usr/share", "usr/share/kept"]);

    // The same on a directory, at every level: the listing says "character device", the
    // numbers tell a whiteout from a device, which is added.
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0),
        "this test makes device nodes, which needs root"
    );
    write(&t, "usr/share/kept", "k\n", 0o644);
    for (name, major, minor) in [("gone", "0", "0"), ("null", "1", "3")] {
        let node = t.join("usr/share").join(name);
        run_tool(Command::new("mknod").arg(&node).args(["c", major, minor]));
    }
    for level in ["types", "metadata", "contents"] {
        let out = tmp.path().join(format!("out-{level}"));
        let run = diff_json(&["--compare", level], &b, &t, &out);
        assert_eq!(strs(&run.json()["removed"]), ["usr/share/gone"], "{level}");
        assert_eq!(
            strs(&run.json()["added"]),
            ["usr/share/kept", "usr/share/null"],
            "{level}"
        );
        // --out writes the device (as root, which this part runs as), never the whiteout
        assert_eq!(
            dir_entries(&out),
            ["usr", "usr/share", "usr/share/kept", "usr/share/null"],
            "{level}"
        );
        let null = std::fs::symlink_metadata(out.join("usr/share/null")).unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &null.file_type()
        ));
        assert_eq!(
            std::os::unix::fs::MetadataExt::rdev(&null),
            libc::makedev(1, 3)
        );
    }
}

#[test]
fn tar_archives_give_the_directories_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = trees(tmp.path());
    let dirs = diff(&[
        "--json",
        "--compare",
        "contents",
        b.to_str().unwrap(),
        t.to_str().unwrap(),
    ]);
    dirs.assert_success();
    let mut tars = Vec::new();
    for (d, name) in [(&b, "base.tar.gz"), (&t, "tools.tar")] {
        let f = tmp.path().join(name);
        run_tool(
            Command::new("tar")
                .arg("-caf")
                .arg(&f)
                .arg("-C")
                .arg(d)
                .arg("."),
        );
        tars.push(f);
    }
    let run = diff(&[
        "--json",
        tars[0].to_str().unwrap(),
        tars[1].to_str().unwrap(),
    ]);
    run.assert_success();
    assert_eq!(run.json(), dirs.json());
    // A directory against an archive, too.
    let run = diff(&["--json", b.to_str().unwrap(), tars[1].to_str().unwrap()]);
    assert_eq!(run.json(), dirs.json());
}

#[test]
fn same_answer_whatever_the_thread_count() {
    let tmp = tempfile::tempdir().unwrap();
    let (b, t) = (tmp.path().join("b"), tmp.path().join("t"));
    for i in 0..3000 {
        let rel = format!("usr/share/d{}/f{i}", i % 37);
        write(&b, &rel, &format!("{i}\n"), 0o644);
        let data = match i % 10 {
            0 => format!("{i} changed\n"),
            1 => format!("{}\n", i + 1),
            _ => format!("{i}\n"),
        };
        write(&t, &rel, &data, 0o644);
        if i % 7 == 0 {
            write(&t, &format!("opt/x/d{}/n{i}", i % 13), "n\n", 0o644);
        }
    }
    // Each level: the JSON report, the human report and the written tree, with 1, 2 and 5
    // threads.
    for level in ["types", "metadata", "contents"] {
        let mut outputs = Vec::new();
        for j in ["1", "2", "5"] {
            let out = tmp.path().join(format!("out-{level}-{j}"));
            let run = diff_json(&["-j", j, "--compare", level], &b, &t, &out);
            let human = diff(&[
                "-j",
                j,
                "--compare",
                level,
                b.to_str().unwrap(),
                t.to_str().unwrap(),
            ]);
            human.assert_success();
            outputs.push((run.stdout.clone(), human.stdout, read_tree(&out)));
        }
        assert!(
            outputs.windows(2).all(|w| w[0] == w[1]),
            "{level}: -j1, -j2 and -j5 differ"
        );
        let j: serde_json::Value = serde_json::from_str(&outputs[0].0).unwrap();
        let changed = j["changed"].as_array().unwrap().len();
        match level {
            "contents" => assert_eq!(changed, 600),
            // "{i} changed" is longer; i+1 is mostly as long as i.
            "metadata" => assert_eq!(changed, 300),
            _ => assert_eq!(changed, 0),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The base from package headers

/// `elsx build --json` with the environment given; returns the summary and the image's bytes.
fn build(
    recipe: &Path,
    out: &Path,
    url: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> (serde_json::Value, Vec<u8>) {
    let cache = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(elsx_bin());
    cmd.arg("--json")
        .arg("build")
        .arg(recipe)
        .arg("--output-dir")
        .arg(out)
        .arg("--cache-dir")
        .arg(cache.path())
        .arg("--repo")
        .arg(format!("fixtures={url}"))
        .args(extra)
        .env("CI", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("ELSX_BASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run_tool(&mut cmd);
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let image = json["image"].as_str().unwrap().to_owned();
    (json, std::fs::read(image).unwrap())
}

#[test]
fn base_from_headers_gives_the_unpacked_base_image() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let install = [
        "fixture-conflict",
        "fixture-app",
        "fixture-setuid",
        "fixture-special",
        "fixture-bzip2",
    ];
    let recipe = write_recipe(tmp.path(), "fxmanifest", BASE, &install, "");
    let url = server.url();
    for extra in [&[][..], &["--keep-changed"][..]] {
        let (full, full_img) = build(
            &recipe,
            &tmp.path().join("full"),
            &url,
            &[("ELSX_BASE", "unpack")],
            extra,
        );
        let (man, man_img) = build(&recipe, &tmp.path().join("manifest"), &url, &[], extra);
        let (man1, man1_img) = build(
            &recipe,
            &tmp.path().join("j1"),
            &url,
            &[],
            &[extra, &["-j", "1"]].concat(),
        );
        assert_eq!(full["diff"], man["diff"], "{extra:?}: the reports differ");
        assert_eq!(man["diff"], man1["diff"], "{extra:?}: -j1 report differs");
        assert!(full_img == man_img, "{extra:?}: the images differ");
        assert!(man_img == man1_img, "{extra:?}: -j1 image differs");
        assert!(
            strs(&man["diff"]["changed"]).contains(&"usr/share/fixture-shared/common.txt"),
            "{man}"
        );
        // Less unpacked: the base's payloads were not read.
        let unpacked = |j: &serde_json::Value| {
            j["timings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["stage"] == "unpack")
                .map(|t| t["bytes"].as_u64().unwrap())
                .unwrap()
        };
        assert!(unpacked(&man) < unpacked(&full), "{man}\n{full}");
    }
}
