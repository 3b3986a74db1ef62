//! `elsx inspect` against the reference tools: unsquashfs -lls for squashfs, dump.erofs for
//! erofs, sfdisk --json for disk images; corrupted images fail naming the partition and block.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use support::*;

/// `elsx --json inspect IMAGE`, which must succeed.
fn inspect_json(image: &Path) -> serde_json::Value {
    let run = elsx(["--json".as_ref(), "inspect".as_ref(), image.as_os_str()]);
    run.assert_success();
    run.json()
}

/// The entries of an inspect report by path.
fn files(report: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    report["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap().to_owned(), f.clone()))
        .collect()
}

/// Permission bits of an `ls -l` mode string (`-rwsr-xr-x` → 0o4755).
fn mode_bits(s: &str) -> u32 {
    let c: Vec<char> = s.chars().collect();
    let mut m = 0;
    for (i, bit) in (1..10).zip((0..9).rev()) {
        if !matches!(c[i], '-' | 'S' | 'T') {
            m |= 1 << bit;
        }
    }
    for (i, special) in [(3, 0o4000), (6, 0o2000), (9, 0o1000)] {
        if matches!(c[i], 's' | 'S' | 't' | 'T') {
            m |= special;
        }
    }
    m
}

fn kind_of(s: &str) -> &'static str {
    match &s[..1] {
        "d" => "dir",
        "l" => "symlink",
        "c" => "char-device",
        "b" => "block-device",
        "p" => "fifo",
        "s" => "socket",
        _ => "file",
    }
}

fn assert_release(report: &serde_json::Value, name: &str) {
    let rel = &report["extension_release"][0];
    assert_eq!(
        rel["path"],
        format!("usr/lib/extension-release.d/extension-release.{name}")
    );
    let fields: BTreeMap<String, String> =
        serde_json::from_value::<Vec<(String, String)>>(rel["fields"].clone())
            .unwrap()
            .into_iter()
            .collect();
    assert_eq!(fields["ID"], "_any", "{report}");
    assert_eq!(fields["SYSEXT_VERSION_ID"], "1.0", "{report}");
}

#[test]
fn squashfs_listing_matches_unsquashfs() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_sysext_dir(&tree, "sq");
    let img = dir.path().join("sq.raw");
    pack(&tree, &img, &["--fs", "squashfs"]).assert_success();
    let report = inspect_json(&img);
    assert_eq!(report["format"], "squashfs");
    assert_eq!(report["filesystem"], "squashfs");
    assert!(report["partitions"].as_array().unwrap().is_empty());
    assert_release(&report, "sq");
    let ours = files(&report);
    let lls = list_image(&img);
    let theirs: BTreeMap<&String, &Listed> = lls.iter().filter(|(p, _)| !p.is_empty()).collect();
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().copied().collect::<Vec<_>>()
    );
    for (path, l) in theirs {
        let f = &ours[path];
        assert_eq!(f["kind"], kind_of(&l.mode), "{path}");
        assert_eq!(f["mode"], mode_bits(&l.mode), "{path}: {}", l.mode);
        if !l.is_dir() {
            assert_eq!(f["size"].to_string(), l.size, "{path}");
        }
        assert_eq!(f["target"].as_str(), l.target.as_deref(), "{path}");
    }
    assert_eq!(ours["usr/bin/tool"]["mode"], 0o4755);
}

/// `dump.erofs --path=P IMAGE`: the "Size:", "Uid:", "Gid:" and "Access:" fields.
fn dump_inode(img: &Path, path: &str) -> BTreeMap<String, String> {
    let out = run_tool(
        Command::new("dump.erofs")
            .arg(format!("--path=/{path}"))
            .arg(img),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        while let Some(w) = words.next() {
            if let Some(key) = w.strip_suffix(':')
                && ["Size", "Uid", "Gid", "Access"].contains(&key)
                && let Some(v) = words.peek()
            {
                m.insert(key.to_owned(), v.to_string());
            }
        }
    }
    m
}

/// `dump.erofs --ls --path=DIR IMAGE`: the names in a directory, without `.` and `..`.
fn dump_ls(img: &Path, dir: &str) -> Vec<String> {
    let out = run_tool(
        Command::new("dump.erofs")
            .arg("--ls")
            .arg(format!("--path=/{dir}"))
            .arg(img),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut names: Vec<String> = text
        .lines()
        .skip_while(|l| !l.contains("FILENAME"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    names
}

#[test]
fn erofs_listing_matches_dump_erofs() {
    require_tools(&["dump.erofs"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_sysext_dir(&tree, "ero");
    // lz4hc from pack, and uncompressed through the library (plain and inline-tail files).
    let packed = dir.path().join("ero.raw");
    pack(&tree, &packed, &["--fs", "erofs"]).assert_success();
    let plain = dir.path().join("plain.erofs");
    let t = elsx::tree::load_dir(&tree).unwrap();
    let opts = elsx::write::erofs::Options {
        compression: elsx::write::erofs::Compression::None,
        ..Default::default()
    };
    let mut f = std::fs::File::create(&plain).unwrap();
    elsx::write::erofs::write(&t, &opts, None, &mut f).unwrap();
    drop(f);
    for img in [packed, plain] {
        let report = inspect_json(&img);
        assert_eq!(report["format"], "erofs");
        assert_release(&report, "ero");
        let ours = files(&report);
        assert_eq!(ours.len(), read_tree(&tree).len(), "{report}");
        let mut dirs = vec![String::new()];
        dirs.extend(
            ours.iter()
                .filter(|(_, f)| f["kind"] == "dir")
                .map(|(p, _)| p.clone()),
        );
        for d in &dirs {
            let mut children: Vec<String> = ours
                .keys()
                .filter(|p| match p.rsplit_once('/') {
                    Some((parent, _)) => parent == d,
                    None => d.is_empty(),
                })
                .map(|p| p.rsplit('/').next().unwrap().to_owned())
                .collect();
            children.sort();
            assert_eq!(children, dump_ls(&img, d), "{}: /{d}", img.display());
        }
        for (path, f) in &ours {
            let d = dump_inode(&img, path);
            if f["kind"] != "dir" {
                assert_eq!(d["Size"], f["size"].to_string(), "{path}");
            }
            assert_eq!(d["Uid"], f["uid"].to_string(), "{path}");
            assert_eq!(d["Gid"], f["gid"].to_string(), "{path}");
            // dump.erofs prints the rwx bits only.
            let access = u32::from_str_radix(d["Access"].split('/').next().unwrap(), 8).unwrap();
            assert_eq!(access, f["mode"].as_u64().unwrap() as u32 & 0o777, "{path}");
        }
        assert_eq!(ours["opt/tool/tool"]["target"], "../bin/tool");
        // lz4hc files as our writer lays them out are read, not only listed.
        assert!(
            ours["opt/tool/share/big.txt"]["compressed"].is_null(),
            "{report}"
        );
    }
}

#[test]
fn ddi_partitions_match_sfdisk_and_a_flipped_byte_names_partition_and_block() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_sysext_dir(&tree, "ddi");
    let img = dir.path().join("ddi.raw");
    let packed = pack(
        &tree,
        &img,
        &["--json", "--ddi", "--verity", "hash", "--arch", "x86_64"],
    );
    packed.assert_success();
    let report = inspect_json(&img);
    assert_eq!(report["format"], "ddi");
    assert_eq!(report["filesystem"], "squashfs");
    assert_eq!(report["root_hash"], packed.json()["ddi"]["root_hash"]);
    assert_release(&report, "ddi");
    let parts = sfdisk_partitions(&img);
    let ours = report["partitions"].as_array().unwrap();
    assert_eq!(ours.len(), parts.len());
    for (o, p) in ours.iter().zip(&parts) {
        assert_eq!(o["offset"], p["start"].as_u64().unwrap() * 512);
        assert_eq!(o["size"], p["size"].as_u64().unwrap() * 512);
        assert_eq!(o["uuid"], p["uuid"].as_str().unwrap().to_lowercase());
        assert_eq!(o["type_guid"], p["type"].as_str().unwrap().to_lowercase());
        assert_eq!(o["label"], p["name"]);
    }
    assert_eq!(ours[0]["role"], "root-x86-64");
    assert_eq!(ours[1]["role"], "root-x86-64-verity");
    let text = elsx(["inspect".as_ref(), img.as_os_str()]);
    text.assert_success();
    assert!(text.stdout.contains("dm-verity verified"), "{text}");
    assert!(text.stdout.contains("/usr/bin/tool"), "{text}");

    let pristine = std::fs::read(&img).unwrap();
    let data_at = parts[0]["start"].as_u64().unwrap() * 512;
    let hash_at = parts[1]["start"].as_u64().unwrap() * 512;
    for (at, partition, what) in [
        (data_at + 3 * 4096 + 100, "root-x86-64", "data block 3 "),
        (hash_at + 4096 + 7, "root-x86-64-verity", "hash block 1 "),
        (
            hash_at + 2,
            "root-x86-64-verity",
            "no valid verity superblock",
        ),
    ] {
        let mut bad = pristine.clone();
        bad[at as usize] ^= 1;
        std::fs::write(&img, &bad).unwrap();
        let run = elsx(["inspect".as_ref(), img.as_os_str()]);
        run.assert_code(1);
        assert!(
            run.stderr.contains(&format!("in partition {partition}:")) && run.stderr.contains(what),
            "flipped byte at {at}: {run}"
        );
        assert!(run.stderr.contains("ddi.raw"), "{run}");
    }
}

#[test]
fn not_an_image_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.raw");
    std::fs::write(&junk, noise(10_000)).unwrap();
    let run = elsx(["inspect".as_ref(), junk.as_os_str()]);
    run.assert_code(2);
    assert!(run.stderr.contains("junk.raw"), "{run}");
    assert!(run.stderr.contains("neither a squashfs"), "{run}");
    let missing = dir.path().join("missing.raw");
    let run = elsx(["inspect".as_ref(), missing.as_os_str()]);
    run.assert_code(2);
    assert!(run.stderr.contains("missing.raw"), "{run}");
}

#[test]
fn plain_and_arm64_disk_images() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_sysext_dir(&tree, "plain");
    let plain = dir.path().join("plain.raw");
    pack(
        &tree,
        &plain,
        &["--ddi", "--arch", "x86_64", "--fs", "erofs"],
    )
    .assert_success();
    let report = inspect_json(&plain);
    assert_eq!(report["format"], "ddi");
    assert_eq!(report["filesystem"], "erofs");
    assert_eq!(report["partitions"].as_array().unwrap().len(), 1);
    assert!(report["root_hash"].is_null() && report["signature"].is_null());
    assert_release(&report, "plain");
    let arm = dir.path().join("arm.raw");
    pack(
        &tree,
        &arm,
        &["--ddi", "--verity", "defer", "--arch", "aarch64"],
    )
    .assert_success();
    let report = inspect_json(&arm);
    let roles: Vec<&str> = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        ["root-arm64", "root-arm64-verity", "root-arm64-verity-sig"]
    );
    let types: Vec<String> = sfdisk_partitions(&arm)
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_lowercase())
        .collect();
    assert_eq!(
        types,
        [
            "b921b045-1df0-41c3-af44-4c6f280d3fae",
            "df3300ce-d69f-4c92-978c-9bfb0f38d820",
            "6db69de6-29f4-4758-a7a5-962190f00ce3"
        ]
    );
    assert!(report["verity_blocks"].as_u64().unwrap() > 0);
    assert_eq!(report["signature"]["state"], "deferred");
}
