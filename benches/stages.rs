//! Per-stage benchmarks. `cargo bench --bench stages` runs them on inputs big enough to matter
//! (the 63,440-package rpm-md repository in ../shared/data when `ELSX_DATA` points at it, and
//! generated trees of 200,000 entries); `-- --smoke` runs every stage once on small inputs.
//! Figures are printed, never asserted.

use elsx::compress::Codec;
use elsx::repo::{primary, repomd, store};
use elsx::resolve::{Pool, Request, dep::Dep};
use elsx::tree::{Entry, Kind, Tree};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn time<T>(label: &str, items: usize, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = f();
    let s = t.elapsed().as_secs_f64();
    println!(
        "{label:<44} {items:>9} items {:>10.1} ms {:>12.0} items/s",
        s * 1e3,
        items as f64 / s.max(1e-9)
    );
    out
}

fn load_primary(repo: &Path) -> Vec<primary::Package> {
    let md = repomd::parse(
        &std::fs::read(repo.join("repodata/repomd.xml")).unwrap(),
        "repomd.xml",
    )
    .unwrap();
    let href = &md.find("primary").unwrap().href;
    let raw = std::fs::read(repo.join(href)).unwrap();
    let xml = time("metadata: decompress primary", 1, || {
        Codec::from_file_name(href).decode_all(&raw).unwrap()
    });
    let pkgs = time("metadata: parse primary.xml", xml.len(), || {
        primary::parse(&xml, href).unwrap()
    });
    // The parsed-metadata cache: what a warm run reads instead of the XML.
    let bytes = time("metadata: encode parsed cache", pkgs.len(), || {
        store::encode(href, &pkgs)
    });
    println!("  parsed cache: {} KiB", bytes.len() >> 10);
    let back = time("metadata: decode parsed cache (warm)", pkgs.len(), || {
        store::decode(href, &bytes).unwrap()
    });
    assert_eq!(back.len(), pkgs.len());
    pkgs
}

fn synthetic_tree(n: usize, salt: u8) -> Tree {
    let mut t = Tree::new();
    for i in 0..n {
        let data = vec![salt.wrapping_add((i % 251) as u8); 64 + (i % 4096)];
        t.insert(
            format!("usr/share/d{}/f{i}", i % 997),
            Entry {
                kind: Kind::File(Arc::new(data)),
                mode: 0o644,
                uid: 0,
                gid: 0,
                mtime: 1_700_000_000,
                xattrs: Default::default(),
            },
        );
    }
    t
}

fn main() {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let data = std::env::var_os("ELSX_DATA")
        .map(PathBuf::from)
        .filter(|_| !smoke);
    println!(
        "elsx stage benchmarks ({})",
        if smoke { "smoke" } else { "full" }
    );

    // metadata + resolve
    let (repo, jobs): (PathBuf, Vec<&str>) = match &data {
        Some(d) => (
            d.join("debian-bookworm-rpmmd"),
            vec!["gnome-core", "kde-full", "libreoffice", "texlive-full"],
        ),
        None => (root.join("examples/demo/repo"), vec!["demo-tool"]),
    };
    let pkgs = load_primary(&repo);
    let n = pkgs.len();
    let pool = time("resolve: build pool", n, || {
        Pool::new(vec![("bench".into(), 99, pkgs)], "x86_64")
    });
    for job in jobs {
        let req = Request {
            install: vec![Dep::name(job)],
            installed: vec![],
            recommends: false,
        };
        let label = format!("resolve: {job}");
        match time(&label, 1, || pool.solve(&req)) {
            Ok(set) => println!("  {job}: {} packages", set.len()),
            Err(p) => println!(
                "  {job}: unsolvable ({} problems, first: {})",
                p.len(),
                p[0]
            ),
        }
    }

    // unpack: the demo's real RPMs
    let rpms: Vec<PathBuf> = walkdir::WalkDir::new(root.join("examples/demo/repo"))
        .into_iter()
        .filter_map(|e| e.ok().map(|e| e.into_path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
        .collect();
    let rounds = if smoke { 1 } else { 50 };
    time("unpack: demo RPMs", rpms.len() * rounds, || {
        for _ in 0..rounds {
            for r in &rpms {
                elsx::unpack::unpack_file(r).unwrap();
            }
        }
    });

    // diff
    let n = if smoke { 10_000 } else { 200_000 };
    let base = synthetic_tree(n / 2, 0);
    let mut tools = base.clone();
    tools.merge(synthetic_tree(n, 1));
    let (out, _) = time("diff: subtract base from tools", tools.len(), || {
        elsx::diff::subtract(&base, &tools, Default::default()).unwrap()
    });
    // The same against the base's manifest (header digests), with only the extension's files.
    let mut manifest = elsx::unpack::Manifest::default();
    for (p, e) in &base.entries {
        let mut e = e.clone();
        if let Kind::File(d) = &e.kind {
            let digest = elsx::unpack::FileDigest {
                algo: rpm::DigestAlgorithm::Sha2_256,
                hex: elsx::checksum::Algo::Sha256.digest_hex(d),
                size: d.len() as u64,
            };
            manifest.digests.insert(p.clone(), digest);
            e.kind = Kind::File(Arc::new(Vec::new()));
        }
        manifest.tree.entries.insert(p.clone(), e);
    }
    let ext = synthetic_tree(n, 1);
    let (from_headers, _) = time("diff: subtract a manifest (sha256)", ext.len(), || {
        elsx::diff::subtract_manifest(&manifest, &ext, Default::default()).unwrap()
    });
    assert_eq!(from_headers, out, "the manifest gives the same result");

    // write
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("bench.raw");
    let bytes = out.content_bytes();
    let size = time("write: squashfs (zstd 15)", out.len(), || {
        elsx::write::atomic_write(&img, |f| {
            elsx::write::squashfs::write(&out, &Default::default(), f)
        })
        .unwrap()
    });
    println!(
        "  {} MiB of content -> {} KiB image",
        bytes >> 20,
        size >> 10
    );
}
