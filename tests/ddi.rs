//! GPT disk images with dm-verity and signatures, checked by the upstream tools: sfdisk,
//! veritysetup, openssl and systemd-dissect (Debian packages fdisk, cryptsetup-bin, openssl,
//! systemd-container).

mod support;

use elsx::package::{self, VerityMode};
use elsx::tree::{Entry, Tree};
use std::path::{Path, PathBuf};
use std::process::Command;

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
    let data = support::noise(n_kib * 1024);
    let file = |d: Vec<u8>| Entry::file(d, 0o644, 1_700_000_000);
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
        let info =
            package::write_ddi(&fs, "x86_64", VerityMode::Hash, None, b"seed", &mut f).unwrap();
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
        package::write_ddi(&fs, "x86_64", VerityMode::None, None, b"seed", &mut f).unwrap();
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
    assert!(
        package::write_ddi(&fs, "mips", VerityMode::None, None, b"s", &mut Vec::new()).is_err()
    );
}

#[test]
fn ddi_around_a_file_system_in_place_matches_the_one_from_bytes() {
    use std::io::{Seek, SeekFrom, Write};
    // Not a multiple of 4 KiB: the padding must read as zeros both ways.
    let mut fs = fs_image(16);
    fs.extend_from_slice(b"tail");
    let dir = tempfile::tempdir().unwrap();
    for mode in [VerityMode::None, VerityMode::Hash, VerityMode::Defer] {
        let mut from_bytes = Vec::new();
        let a = package::write_ddi(&fs, "x86_64", mode, None, b"seed", &mut from_bytes).unwrap();
        let p = dir.path().join(format!("{mode:?}.raw"));
        let mut f = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&p)
            .unwrap();
        f.seek(SeekFrom::Start(package::FS_OFFSET)).unwrap();
        f.write_all(&fs).unwrap();
        let b = package::write_ddi_around(&mut f, fs.len() as u64, "x86_64", mode, None, b"seed")
            .unwrap();
        drop(f);
        assert!(
            std::fs::read(&p).unwrap() == from_bytes,
            "{mode:?}: bytes differ"
        );
        assert_eq!(a.root_hash, b.root_hash);
        assert_eq!(a.partitions.len(), b.partitions.len());
    }
}

/// `elsx --json pack` that must succeed; the root hash it reports.
fn pack_root_hash(tree: &std::path::Path, img: &std::path::Path, args: &[&str]) -> String {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let packed = support::pack(tree, img, &all);
    packed.assert_success();
    packed.json()["ddi"]["root_hash"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// `systemd-dissect IMAGE`, which must call the root partition's verity "signed".
fn dissect_signed(img: &std::path::Path) -> String {
    let dissect = support::dissect(img);
    let root_row = dissect.lines().find(|l| l.contains("root-x86-64 "));
    assert!(root_row.is_some_and(|r| r.contains("signed")), "{dissect}");
    dissect
}

/// Hex lowercase SHA-256 fingerprint of a PEM certificate, as openssl computes it.
fn openssl_fingerprint(cert: &std::path::Path) -> String {
    let out = support::run_tool(
        Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_lowercase()
}

/// `openssl smime -verify` of a DER PKCS#7 detached signature over `content`.
fn openssl_verifies(sig: &[u8], content: &[u8], cert: &std::path::Path) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (s, c) = (dir.path().join("sig.der"), dir.path().join("content"));
    std::fs::write(&s, sig).unwrap();
    std::fs::write(&c, content).unwrap();
    Command::new("openssl")
        .args([
            "smime",
            "-verify",
            "-binary",
            "-inform",
            "DER",
            "-noverify",
            "-in",
        ])
        .arg(&s)
        .arg("-content")
        .arg(&c)
        .arg("-certfile")
        .arg(cert)
        .args(["-out", "/dev/null"])
        .output()
        .unwrap()
        .status
        .success()
}

/// The JSON text of a signature partition and the NUL padding after it.
fn sig_json(part: &[u8]) -> (String, serde_json::Value) {
    let end = part.iter().position(|b| *b == 0).unwrap();
    assert!(part[end..].iter().all(|b| *b == 0), "NUL padding only");
    let text = String::from_utf8(part[..end].to_vec()).unwrap();
    let v = serde_json::from_str(&text).unwrap();
    (text, v)
}

/// An EC key on `curve` (openssl's name: prime256v1, secp384r1) with a self-signed certificate
/// `CN=cn`; the key in SEC1 form (`EC PRIVATE KEY`) when `sec1`, else PKCS#8.
fn openssl_ec_key(dir: &Path, cn: &str, curve: &str, sec1: bool) -> (PathBuf, PathBuf) {
    let (key, cert) = (dir.join(format!("{cn}.key")), dir.join(format!("{cn}.crt")));
    run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .arg(format!("ec_paramgen_curve:{curve}"))
        .args(["-nodes", "-days", "3650", "-subj"])
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert));
    if sec1 {
        run(Command::new("openssl")
            .args(["ec", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&key));
        assert!(
            std::fs::read_to_string(&key)
                .unwrap()
                .starts_with("-----BEGIN EC PRIVATE KEY")
        );
    }
    (key, cert)
}

/// RSA (systemd-repart's usual keys) and EC P-256 keys, in PKCS#8 and SEC1 form.
#[test]
fn signed_ddi_is_verified_by_openssl_veritysetup_and_systemd_dissect() {
    support::require_tools(&["openssl", "veritysetup", "sfdisk", "systemd-dissect"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    support::sample_sysext_dir(&tree, "signed");
    let keys = [
        support::openssl_key(dir.path(), "elsx-test"),
        openssl_ec_key(dir.path(), "elsx-ec", "prime256v1", false),
        openssl_ec_key(dir.path(), "elsx-ec-sec1", "prime256v1", true),
    ];
    for (key, cert) in &keys {
        check_signed(&tree, dir.path(), key, cert);
    }
}

/// Packs `tree` signed with `key` and `cert` (as squashfs and erofs, twice: the same bytes) and
/// checks the image with sfdisk, veritysetup, openssl, systemd-dissect and `elsx inspect`.
fn check_signed(tree: &Path, dir: &Path, key: &Path, cert: &Path) {
    use base64::Engine;
    let (key_s, cert_s) = (key.to_str().unwrap(), cert.to_str().unwrap());
    let cn = key.file_stem().unwrap().to_str().unwrap();
    for fs in ["squashfs", "erofs"] {
        let img = dir.join(format!("signed-{cn}-{fs}.raw"));
        let args = [
            "--fs",
            fs,
            "--ddi",
            "--verity",
            "signed",
            "--key",
            key_s,
            "--certificate",
            cert_s,
            "--arch",
            "x86_64",
        ];
        let root_hash = pack_root_hash(tree, &img, &args);
        let parts = support::sfdisk_partitions(&img);
        let types: Vec<&str> = parts.iter().map(|p| p["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
                "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5",
                "41092B05-9FC8-4523-994F-2DEF0408B176"
            ]
        );
        assert_eq!(parts[2]["name"], "root-x86-64-verity-sig");
        // systemd-repart's VERITY_SIG_SIZE: 16 KiB.
        assert_eq!(parts[2]["size"], 32);
        let (data, hash) = (dir.join("data"), dir.join("hash"));
        std::fs::write(&data, support::partition_bytes(&img, &parts[0])).unwrap();
        std::fs::write(&hash, support::partition_bytes(&img, &parts[1])).unwrap();
        run(Command::new("veritysetup")
            .arg("verify")
            .arg(&data)
            .arg(&hash)
            .arg(&root_hash));
        let (text, j) = sig_json(&support::partition_bytes(&img, &parts[2]));
        // repart's key order, compact.
        assert!(
            text.starts_with(&format!(
                "{{\"rootHash\":\"{root_hash}\",\"certificateFingerprint\":\""
            )),
            "{text}"
        );
        assert_eq!(j["certificateFingerprint"], openssl_fingerprint(cert));
        let sig = base64::engine::general_purpose::STANDARD
            .decode(j["signature"].as_str().unwrap())
            .unwrap();
        assert!(
            openssl_verifies(&sig, root_hash.as_bytes(), cert),
            "{fs}: openssl rejects the signature"
        );
        assert!(
            !openssl_verifies(&sig, b"something else", cert),
            "the check can fail"
        );
        // elsx's own check agrees both ways.
        assert!(package::sign::verify_detached(&sig, root_hash.as_bytes()).is_ok());
        assert!(package::sign::verify_detached(&sig, b"something else").is_err());
        let dissect = dissect_signed(&img);
        assert!(dissect.contains("verity_hash_signature"), "{dissect}");
        assert!(dissect.contains("extension for system"), "{dissect}");
        let inspect = support::elsx(["--json".as_ref(), "inspect".as_ref(), img.as_os_str()]);
        inspect.assert_success();
        let j = inspect.json();
        assert_eq!(j["signature"]["state"], "verified", "{inspect}");
        assert_eq!(j["signature"]["signer"], format!("CN={cn}"));
        assert_eq!(j["root_hash"], root_hash.as_str());
        // Deterministic signatures (PKCS#1 v1.5, RFC 6979 ECDSA): the same image again.
        let again = dir.join("again").join(img.file_name().unwrap());
        std::fs::create_dir_all(again.parent().unwrap()).unwrap();
        assert_eq!(pack_root_hash(tree, &again, &args), root_hash);
        assert!(
            std::fs::read(&img).unwrap() == std::fs::read(&again).unwrap(),
            "{cn} {fs}: signing again gave other bytes"
        );
    }
}

#[test]
fn deferred_signature_partition_is_reserved_and_can_be_filled_offline() {
    support::require_tools(&["openssl", "sfdisk", "systemd-dissect"]);
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    support::sample_sysext_dir(&tree, "deferred");
    let img = dir.path().join("deferred.raw");
    let root_hash = pack_root_hash(
        &tree,
        &img,
        &["--ddi", "--verity", "defer", "--arch", "x86_64"],
    );
    let parts = support::sfdisk_partitions(&img);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[2]["type"], "41092B05-9FC8-4523-994F-2DEF0408B176");
    let sig_part = support::partition_bytes(&img, &parts[2]);
    assert_eq!(sig_part.len(), 16384);
    assert!(sig_part.iter().all(|b| *b == 0), "reserved, zero-filled");
    let inspect = support::elsx(["--json".as_ref(), "inspect".as_ref(), img.as_os_str()]);
    inspect.assert_success();
    assert_eq!(inspect.json()["signature"]["state"], "deferred");

    // The offline signer: openssl with its default signed attributes, written in with a seek.
    let (key, cert) = support::openssl_key(dir.path(), "offline-signer");
    let rh = dir.path().join("roothash");
    std::fs::write(&rh, &root_hash).unwrap();
    let sig = dir.path().join("sig.der");
    support::run_tool(
        Command::new("openssl")
            .args(["smime", "-sign", "-binary", "-outform", "DER", "-in"])
            .arg(&rh)
            .arg("-signer")
            .arg(&cert)
            .arg("-inkey")
            .arg(&key)
            .arg("-out")
            .arg(&sig),
    );
    use base64::Engine;
    let json = format!(
        "{{\"rootHash\":\"{root_hash}\",\"certificateFingerprint\":\"{}\",\"signature\":\"{}\"}}",
        openssl_fingerprint(&cert),
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(&sig).unwrap())
    );
    support::write_at(
        &img,
        parts[2]["start"].as_u64().unwrap() * 512,
        json.as_bytes(),
    );
    let inspect = support::elsx(["--json".as_ref(), "inspect".as_ref(), img.as_os_str()]);
    inspect.assert_success();
    assert_eq!(
        inspect.json()["signature"]["state"],
        "verified",
        "{inspect}"
    );
    assert_eq!(inspect.json()["signature"]["signer"], "CN=offline-signer");
    dissect_signed(&img);

    // A signature over another root hash is refused, naming the partition.
    let other = json.replace(&root_hash[..8], "00000000");
    support::write_at(
        &img,
        parts[2]["start"].as_u64().unwrap() * 512,
        other.as_bytes(),
    );
    let bad = support::elsx(["inspect".as_ref(), img.as_os_str()]);
    bad.assert_code(1);
    assert!(bad.stderr.contains("root-x86-64-verity-sig"), "{bad}");
}

#[test]
fn signing_needs_a_matching_key_and_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    support::sample_sysext_dir(&tree, "keys");
    let (key, cert) = support::openssl_key(dir.path(), "one");
    let (other_key, _) = support::openssl_key(dir.path(), "two");
    let (key, cert, other_key) = (
        key.to_str().unwrap(),
        cert.to_str().unwrap(),
        other_key.to_str().unwrap(),
    );
    let img = dir.path().join("keys.raw");
    let r = support::pack(&tree, &img, &["--ddi", "--verity", "signed"]);
    r.assert_code(2);
    assert!(r.stderr.contains("--key and --certificate"), "{r}");
    let signed = |key: &str, cert: &str| {
        let args = [
            "--ddi",
            "--verity",
            "signed",
            "--key",
            key,
            "--certificate",
            cert,
        ];
        let r = support::pack(&tree, &img, &args);
        r.assert_code(2);
        assert!(r.stderr.contains(key), "{r}");
        r
    };
    let r = signed(other_key, cert);
    assert!(
        r.stderr.contains("does not belong to the certificate"),
        "{r}"
    );
    // An EC key and an RSA certificate; an EC key on another curve than P-256.
    let (ec_key, ec_cert) = openssl_ec_key(dir.path(), "ec", "prime256v1", false);
    let r = signed(ec_key.to_str().unwrap(), cert);
    assert!(
        r.stderr.contains("does not belong to the certificate"),
        "{r}"
    );
    assert!(
        signed(key, ec_cert.to_str().unwrap())
            .stderr
            .contains("does not belong to the certificate")
    );
    let (p384_key, p384_cert) = openssl_ec_key(dir.path(), "p384", "secp384r1", false);
    let r = signed(p384_key.to_str().unwrap(), p384_cert.to_str().unwrap());
    assert!(r.stderr.contains("EC P-256"), "{r}");
    let r = support::pack(
        &tree,
        &img,
        &[
            "--ddi",
            "--verity",
            "hash",
            "--key",
            key,
            "--certificate",
            cert,
        ],
    );
    r.assert_code(2);
    assert!(r.stderr.contains("--verity signed"), "{r}");
    assert!(!img.exists(), "no image after a failure");
}
