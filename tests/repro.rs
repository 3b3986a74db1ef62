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

/// Every entry of a block cache (`blocks-v1/`), sorted.
fn block_entries(cache: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = walkdir::WalkDir::new(cache.join("blocks-v1"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

/// Damages block cache entries four ways: cut short, one bit flipped, emptied, and one holding
/// another entry (sound, but for other bytes). Returns the damaged entries' new contents.
fn damage_blocks(entries: &[std::path::PathBuf]) -> Vec<Vec<u8>> {
    assert!(entries.len() >= 4, "{} block cache entries", entries.len());
    let read = |i: usize| std::fs::read(&entries[i]).unwrap();
    let mut cut = read(0);
    cut.truncate(cut.len() - 3);
    let mut flipped = read(1);
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    let damaged = vec![cut, flipped, Vec::new(), read(0)];
    for (i, d) in damaged.iter().enumerate() {
        std::fs::write(&entries[i], d).unwrap();
    }
    damaged
}

/// A tree with several full data blocks of each kind: compressible, incompressible, partly both,
/// and tails for the fragments.
fn blocky_tree(root: &Path) {
    sample_sysext_dir(root, "repro");
    let text: Vec<u8> = (0..60_000u32)
        .flat_map(|i| format!("line {} of {}\n", i % 977, i % 13).into_bytes())
        .collect();
    std::fs::write(root.join("opt/tool/share/log.txt"), &text).unwrap();
    let mut mixed = noise(700_000);
    mixed[200_000..500_000].fill(b'x');
    std::fs::write(root.join("opt/tool/share/mixed.bin"), mixed).unwrap();
}

#[test]
fn pack_gives_the_same_bytes_with_a_cold_warm_or_damaged_block_cache() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    blocky_tree(&tree);
    let cache_dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let cache = cache_dir.path();
    let cache_arg = cache.to_str().unwrap();
    let variants = [
        ("squashfs", "zstd"),
        ("squashfs", "xz"),
        ("squashfs", "gzip:6"),
        ("squashfs", "lz4"),
        ("squashfs", "lz4hc"),
        ("erofs", "lz4"),
        ("erofs", "lz4hc"),
        ("erofs", "lzma"),
    ];
    for (fs, compress) in variants {
        let img = dir.path().join(format!("{fs}-{compress}.raw"));
        let run = |jobs: &str, cached: bool| -> Vec<u8> {
            let mut args = vec!["--arch", "x86_64", "--fs", fs, "--compress", compress, jobs];
            if cached {
                args.extend(["--cache-dir", cache_arg]);
            }
            pack(&tree, &img, &args).assert_success();
            std::fs::read(&img).unwrap()
        };
        let plain = run("-j2", false);
        let before = block_entries(cache);
        let cold = run("-j1", true);
        assert!(
            cold == plain,
            "{fs} {compress}: a cold block cache changed the image"
        );
        let stored = block_entries(cache);
        let new: Vec<_> = stored
            .iter()
            .filter(|p| !before.contains(p))
            .cloned()
            .collect();
        assert!(new.len() >= 4, "{fs} {compress}: {stored:?}");
        let warm = run("-j2", true);
        assert!(
            warm == plain,
            "{fs} {compress}: a warm block cache changed the image"
        );
        assert_eq!(
            block_entries(cache),
            stored,
            "{fs} {compress}: a warm run stored more"
        );

        let damaged = damage_blocks(&new);
        let repaired = run("-j2", true);
        assert!(
            repaired == plain,
            "{fs} {compress}: a damaged block cache changed the image"
        );
        // Each damaged entry was replaced by a sound one.
        for (p, d) in new.iter().zip(&damaged) {
            assert_ne!(&std::fs::read(p).unwrap(), d, "{}", p.display());
        }
        assert_eq!(block_entries(cache), stored, "{fs} {compress}");
    }
    // The unsquashfs check of one of them: the cached image is a valid file system.
    let out = std::process::Command::new("unsquashfs")
        .args(["-lls"])
        .arg(dir.path().join("squashfs-zstd.raw"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(listing.contains("opt/tool/share/mixed.bin"), "{listing}");

    // `elsx cache clean` empties it.
    elsx_with_cache(cache_dir.clone(), ["cache", "clean"]).assert_success();
    assert!(block_entries(cache).is_empty());
    assert!(!cache.join("blocks-v1").exists());
}

#[test]
fn build_gives_the_same_image_with_a_cold_warm_or_damaged_block_cache() {
    let server = HttpServer::start(fixture_repo());
    let dir = tempfile::tempdir().unwrap();
    blocky_tree(&dir.path().join("extra"));
    std::fs::remove_dir_all(dir.path().join("extra/usr/lib/extension-release.d")).unwrap();
    let recipe = write_recipe(
        dir.path(),
        "repro-blocks",
        BASE,
        &["fixture-app"],
        "\n[content]\nextra = [\"extra\"]\n[output]\nformat = \"squashfs\"\nddi = true\nverity = \"hash\"\n",
    );
    let cache = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let build = |jobs: &str| -> (Vec<u8>, u64, u64) {
        let out = dir.path().join(format!("out{jobs}"));
        let run = elsx_with_cache(
            cache.clone(),
            [
                "--json".as_ref(),
                "build".as_ref(),
                recipe.as_os_str(),
                "-o".as_ref(),
                out.as_os_str(),
                "--repo".as_ref(),
                format!("fixtures={}", server.url()).as_ref(),
                jobs.as_ref(),
            ],
        );
        run.assert_success();
        let j = run.json();
        let write = j["timings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["stage"] == "write")
            .unwrap_or_else(|| panic!("no write stage\n{run}"))
            .clone();
        let image = std::fs::read(out.join("repro-blocks.raw")).unwrap();
        (
            image,
            write["items"].as_u64().unwrap(),
            write["cached"].as_u64().unwrap(),
        )
    };
    let (cold, blocks, cached) = build("-j1");
    assert!(blocks > 10, "{blocks} blocks");
    // usr/bin/tool's first block is mixed.bin's: compressed once.
    assert_eq!(cached, 1);
    let (warm, blocks2, cached) = build("-j2");
    assert!(warm == cold, "a warm block cache changed the image");
    assert_eq!(
        (blocks2, cached),
        (blocks, blocks),
        "every block from the cache"
    );
    damage_blocks(&block_entries(cache.path()));
    // -j1: with two workers, two equal blocks behind one damaged entry may both miss it
    // (the image is the same; only the count of hits depends on the timing)
    let (repaired, _, cached) = build("-j1");
    assert!(repaired == cold, "a damaged block cache changed the image");
    assert_eq!(
        cached,
        blocks - 4,
        "the four damaged entries were compressed again"
    );
    let (again, _, cached) = build("-j2");
    assert!(again == cold, "a repaired block cache changed the image");
    assert_eq!(cached, blocks, "and stored again");
    // The same image as a build with no block cache at all (a fresh cache directory).
    let fresh = elsx([
        "build".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        dir.path().join("fresh").as_os_str(),
        "--repo".as_ref(),
        format!("fixtures={}", server.url()).as_ref(),
    ]);
    fresh.assert_success();
    assert!(std::fs::read(dir.path().join("fresh/repro-blocks.raw")).unwrap() == cold);
}
