//! GPT disk images with dm-verity, checked by the upstream tools: sfdisk, veritysetup and
//! systemd-dissect (Debian packages fdisk, cryptsetup-bin, systemd-container).

use elsx::package::{self, VerityMode};
use elsx::tree::{Entry, Kind, Tree};
use std::process::Command;
use std::sync::Arc;

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{cmd:?}: {e} (install fdisk, cryptsetup-bin, systemd-container)")
    });
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A squashfs image with `n` KiB of incompressible content and an extension-release.
fn fs_image(n_kib: usize) -> Vec<u8> {
    let mut t = Tree::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let data: Vec<u8> = (0..n_kib * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let file = |d: Vec<u8>| Entry {
        kind: Kind::File(Arc::new(d)),
        mode: 0o644,
        uid: 0,
        gid: 0,
        mtime: 1_700_000_000,
        xattrs: Default::default(),
    };
    t.insert("usr/share/blob".into(), file(data));
    t.insert(
        "usr/lib/extension-release.d/extension-release.img".into(),
        file(b"ID=_any\nARCHITECTURE=x86-64\n".to_vec()),
    );
    let mut f = tempfile::tempfile().unwrap();
    elsx::write::squashfs::write(&t, &Default::default(), &mut f).unwrap();
    use std::io::{Read, Seek};
    f.rewind().unwrap();
    let mut v = Vec::new();
    f.read_to_end(&mut v).unwrap();
    v
}

fn partitions(img: &std::path::Path) -> Vec<serde_json::Value> {
    let j: serde_json::Value =
        serde_json::from_str(&run(Command::new("sfdisk").arg("--json").arg(img))).unwrap();
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .clone()
}

fn extract(img: &std::path::Path, p: &serde_json::Value, dest: &std::path::Path) {
    let all = std::fs::read(img).unwrap();
    let (start, size) = (
        p["start"].as_u64().unwrap() as usize * 512,
        p["size"].as_u64().unwrap() as usize * 512,
    );
    std::fs::write(dest, &all[start..start + size]).unwrap();
}

#[test]
fn verity_ddi_is_accepted_by_veritysetup_sfdisk_and_systemd_dissect() {
    // 1 data block (no tree), a one-level tree and a two-level tree.
    for kib in [0, 64, 2048] {
        let fs = fs_image(kib);
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("img.raw");
        let mut f = std::fs::File::create(&img).unwrap();
        let info = package::write_ddi(&fs, "x86_64", VerityMode::Hash, b"seed", &mut f).unwrap();
        drop(f);
        let root_hash = info.root_hash.clone().unwrap();
        let parts = partitions(&img);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
        assert_eq!(parts[1]["type"], "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5");
        // Partition UUIDs are the two halves of the root hash.
        let uuid =
            |p: &serde_json::Value| p["uuid"].as_str().unwrap().replace('-', "").to_lowercase();
        assert_eq!(uuid(&parts[0]), root_hash[..32]);
        assert_eq!(uuid(&parts[1]), root_hash[32..]);
        let (data, hash) = (dir.path().join("data"), dir.path().join("hash"));
        extract(&img, &parts[0], &data);
        extract(&img, &parts[1], &hash);
        run(Command::new("veritysetup")
            .arg("verify")
            .arg(&data)
            .arg(&hash)
            .arg(&root_hash));
        let dissect = run(Command::new("systemd-dissect").arg(&img));
        assert!(dissect.contains("extension for system"), "{dissect}");
        assert!(dissect.contains("DM_verity_hash"), "{dissect}");
        // A flipped byte in the data must fail verification.
        let mut bad = std::fs::read(&data).unwrap();
        bad[100] ^= 1;
        std::fs::write(&data, bad).unwrap();
        let st = Command::new("veritysetup")
            .arg("verify")
            .arg(&data)
            .arg(&hash)
            .arg(&root_hash)
            .output()
            .unwrap();
        assert!(!st.status.success(), "{kib} KiB: corrupted data verified");
    }
}

#[test]
fn plain_ddi_and_reproducibility() {
    let fs = fs_image(16);
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str| {
        let p = dir.path().join(name);
        let mut f = std::fs::File::create(&p).unwrap();
        package::write_ddi(&fs, "x86_64", VerityMode::None, b"seed", &mut f).unwrap();
        p
    };
    let (a, b) = (write("a.raw"), write("b.raw"));
    assert_eq!(
        std::fs::read(&a).unwrap(),
        std::fs::read(&b).unwrap(),
        "same input, same bytes"
    );
    let parts = partitions(&a);
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0]["name"], "root-x86-64");
    let dissect = run(Command::new("systemd-dissect").arg(&a));
    assert!(dissect.contains("squashfs"), "{dissect}");
    assert!(package::write_ddi(&fs, "mips", VerityMode::None, b"s", &mut Vec::new()).is_err());
}
