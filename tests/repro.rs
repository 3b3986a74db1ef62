//! Same inputs, same bytes: `elsx pack` and `elsx build` give identical images run after run and
//! whatever `-j` is, bare and as disk images with verity (hash and signed).

mod support;

use std::path::Path;
use support::*;

#[test]
fn pack_gives_the_same_bytes_whatever_the_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    sample_sysext_dir(&tree, "repro");
    let (key, cert) = openssl_key(dir.path(), "repro");
    let (key, cert) = (key.to_str().unwrap(), cert.to_str().unwrap());
    let modes: [&[&str]; 3] = [
        &[],
        &["--ddi", "--verity", "hash"],
        &[
            "--ddi",
            "--verity",
            "signed",
            "--key",
            key,
            "--certificate",
            cert,
        ],
    ];
    let mut images = Vec::new();
    for fs in ["squashfs", "erofs"] {
        for mode in modes {
            let run = |sub: &str, jobs: &str| -> Vec<u8> {
                // The same file name in another directory: the seed is the file name.
                let img = dir.path().join(sub).join("repro.raw");
                std::fs::create_dir_all(img.parent().unwrap()).unwrap();
                let mut args = vec!["--fs", fs, "--arch", "x86_64", jobs];
                args.extend_from_slice(mode);
                pack(&tree, &img, &args).assert_success();
                std::fs::read(&img).unwrap()
            };
            let a = run("a", "-j1");
            let b = run("b", "-j2");
            let c = run("c", "-j2");
            assert!(a == b, "{fs} {mode:?}: -j1 and -j2 differ");
            assert!(b == c, "{fs} {mode:?}: two -j2 runs differ");
            images.push(a);
        }
    }
    // The check can fail: every variant is a different image.
    for (i, a) in images.iter().enumerate() {
        for b in &images[i + 1..] {
            assert!(a != b, "two different variants gave the same bytes");
        }
    }
}

/// Builds a recipe into `out` with `-jN`; the image's bytes.
fn build(recipe: &Path, out: &Path, url: &str, jobs: &str) -> Vec<u8> {
    elsx([
        "build".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--repo".as_ref(),
        format!("fixtures={url}").as_ref(),
        jobs.as_ref(),
    ])
    .assert_success();
    std::fs::read(out.join(format!(
        "{}.raw",
        recipe.file_stem().unwrap().to_str().unwrap()
    )))
    .unwrap()
}

#[test]
fn build_gives_the_same_disk_image_whatever_the_jobs() {
    let server = HttpServer::start(fixture_repo());
    let dir = tempfile::tempdir().unwrap();
    openssl_key(dir.path(), "signer");
    for (name, format, verity) in [
        ("repro-sq-signed", "squashfs", "signed"),
        ("repro-ero-hash", "erofs", "hash"),
    ] {
        let keys = if verity == "signed" {
            "key = \"signer.key\"\ncertificate = \"signer.crt\"\n"
        } else {
            ""
        };
        let recipe = write_recipe(
            dir.path(),
            name,
            BASE,
            &["fixture-app"],
            &format!(
                "\n[output]\nformat = \"{format}\"\nddi = true\nverity = \"{verity}\"\n{keys}"
            ),
        );
        let j1 = build(
            &recipe,
            &dir.path().join(format!("{name}-j1")),
            &server.url(),
            "-j1",
        );
        let j2 = build(
            &recipe,
            &dir.path().join(format!("{name}-j2")),
            &server.url(),
            "-j2",
        );
        assert!(j1 == j2, "{name}: -j1 and -j2 give different images");
        let img = dir.path().join(format!("{name}-j1/{name}.raw"));
        let inspect = elsx(["--json".as_ref(), "inspect".as_ref(), img.as_os_str()]);
        inspect.assert_success();
        let report = inspect.json();
        assert_eq!(report["filesystem"], format, "{inspect}");
        let parts = sfdisk_partitions(&img);
        if verity == "signed" {
            assert_eq!(parts.len(), 3);
            assert_eq!(report["signature"]["signer"], "CN=signer", "{inspect}");
        } else {
            assert_eq!(parts.len(), 2);
        }
    }
}
