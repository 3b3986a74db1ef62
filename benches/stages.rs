//! Per-stage benchmarks. `cargo bench --bench stages` runs them on inputs big enough to matter:
//! the 63,440-package rpm-md repository in ../shared/data when `ELSX_DATA` points at it
//! (metadata, resolve), a repository of real RPMs with 72 MiB of generated payload made once with
//! benches/race_specs.py, rpmbuild and createrepo_c (fetch from a server on 127.0.0.1, unpack),
//! generated trees of 200,000 entries (diff, write) and a 256 MiB file system (package: GPT and
//! dm-verity). `-- --smoke` runs every stage once on small inputs (the demo's RPMs). Where a
//! reference tool does the same job (`rpm2cpio | cpio`, `veritysetup format`) its time is printed
//! beside. Figures are printed, never asserted.

#[path = "../tests/support/mod.rs"]
mod support;

use elsx::cache::{Bucket, Cache};
use elsx::compress::Codec;
use elsx::fetch::{self, Fetcher};
use elsx::repo::{primary, repomd, store};
use elsx::resolve::{Pool, Request, dep::Dep};
use elsx::tree::{Entry, Kind, Tree};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// The packages of a repository's primary.xml, timed when `timed`.
fn load_primary(repo: &Path, timed: bool) -> Vec<primary::Package> {
    let md = repomd::parse(
        &std::fs::read(repo.join("repodata/repomd.xml")).unwrap(),
        "repomd.xml",
    )
    .unwrap();
    let href = &md.find("primary").unwrap().href;
    let raw = std::fs::read(repo.join(href)).unwrap();
    let decode = || Codec::from_file_name(href).decode_all(&raw).unwrap();
    if !timed {
        return primary::parse(&decode(), href).unwrap();
    }
    let xml = time("metadata: decompress primary", 1, decode);
    let pkgs = time("metadata: parse primary.xml", xml.len(), || {
        primary::parse(&xml, href).unwrap()
    });
    // The parsed-metadata cache: what a warm run reads instead of the XML.
    let arena = time("metadata: intern into the pool's arena", pkgs.len(), || {
        elsx::resolve::RepoData::from_packages(&pkgs)
    });
    let bytes = time("metadata: encode parsed cache", pkgs.len(), || {
        store::encode(href, &arena)
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

/// Runs a reference command, printing its time like [`time`]; `None` when the tool is missing.
fn time_tool(label: &str, items: usize, cmd: &mut Command) -> Option<f64> {
    let t = Instant::now();
    let out = cmd.output().ok()?;
    let s = t.elapsed().as_secs_f64();
    if !out.status.success() {
        println!(
            "{label:<44} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    println!(
        "{label:<44} {items:>9} items {:>10.1} ms {:>12.0} items/s",
        s * 1e3,
        items as f64 / s.max(1e-9)
    );
    Some(s)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A repository of real RPMs with generated payloads (race_specs.py, mkrepo.sh), made once.
fn rpm_repo(root: &Path) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-rpms-v1");
    if dir.join(".complete").exists() {
        return dir;
    }
    support::require_tools(&["rpmbuild", "createrepo_c"]);
    let specs = dir.with_extension("gen");
    let _ = std::fs::remove_dir_all(&specs);
    let _ = std::fs::remove_dir_all(&dir);
    println!("generating {} (once)", dir.display());
    let args = ["--base", "6", "--base-mib", "12", "--tools", "0"];
    support::run_tool(
        Command::new("python3")
            .arg(root.join("benches/race_specs.py"))
            .arg(&specs)
            .args(args),
    );
    support::run_tool(
        Command::new("bash")
            .arg(root.join("scripts/mkrepo.sh"))
            .arg(specs.join("specs"))
            .arg(&dir),
    );
    let _ = std::fs::remove_dir_all(&specs);
    std::fs::write(dir.join(".complete"), "").unwrap();
    dir
}

/// fetch: every package of `repo` from a server on 127.0.0.1 into an empty cache, verified,
/// with as many downloads at once as the build uses.
fn bench_fetch(repo: &Path, pkgs: &[primary::Package]) {
    let server = support::HttpServer::start(repo);
    let cache = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(Cache::new(cache.path().to_owned()), false);
    let bytes: u64 = pkgs.iter().map(|p| p.size).sum();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(6)
        .build()
        .unwrap();
    let s = Instant::now();
    time("fetch: RPMs over HTTP on 127.0.0.1", pkgs.len(), || {
        pool.install(|| {
            pkgs.par_iter().for_each(|p| {
                let url = fetch::join(&server.url(), &p.location);
                fetcher
                    .get_verified(
                        &url,
                        &p.checksum,
                        Bucket::Rpms,
                        &elsx::report::Silent,
                        elsx::report::Stage::Fetch,
                        &p.name,
                    )
                    .unwrap();
            })
        })
    });
    println!(
        "  {:.1} MiB, {:.0} MiB/s",
        bytes as f64 / 1048576.0,
        bytes as f64 / 1048576.0 / s.elapsed().as_secs_f64()
    );
}

/// unpack: every RPM in parallel, in memory, as the build does; `rpm2cpio | cpio -idm` on as
/// many CPUs beside.
fn bench_unpack(rpms: &[PathBuf], rounds: usize) {
    let bytes = time(
        "unpack: RPMs (parallel, in memory)",
        rpms.len() * rounds,
        || {
            let mut bytes = 0;
            for _ in 0..rounds {
                bytes = rpms
                    .par_iter()
                    .map(|r| elsx::unpack::unpack_file(r).unwrap().0.content_bytes())
                    .sum::<u64>();
            }
            bytes
        },
    );
    println!("  {:.1} MiB of content per round", bytes as f64 / 1048576.0);
    if !have("rpm2cpio") || !have("cpio") {
        return;
    }
    let dest = tempfile::tempdir().unwrap();
    time("unpack: reference rpm2cpio | cpio -idm", rpms.len(), || {
        rpms.par_iter().enumerate().for_each(|(i, r)| {
            let d = dest.path().join(i.to_string());
            std::fs::create_dir_all(&d).unwrap();
            support::run_tool(
                Command::new("sh")
                    .arg("-c")
                    .arg("rpm2cpio \"$0\" | cpio -idm --quiet --no-absolute-filenames")
                    .arg(r)
                    .current_dir(&d),
            );
        })
    });
}

/// package: a GPT disk image with a dm-verity hash partition around `mib` MiB of file system;
/// `veritysetup format` on the same bytes beside.
fn bench_package(mib: usize) {
    // Pseudo-random bytes: hashing costs the same whatever they are.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..mib << 17)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ddi.raw");
    let label = format!("package: GPT + dm-verity of {mib} MiB");
    time(&label, data.len() / 4096, || {
        elsx::write::atomic_write(&img, |f| {
            elsx::package::write_ddi(
                &data,
                "x86_64",
                elsx::package::VerityMode::Hash,
                None,
                b"bench",
                f,
            )
            .map(|_| ())
            .map_err(|e| elsx::write::WriteError::Io {
                path: "ddi.raw".into(),
                source: std::io::Error::other(e),
            })
        })
        .unwrap()
    });
    if !have("veritysetup") {
        return;
    }
    let fs = dir.path().join("fs");
    std::fs::write(&fs, &data).unwrap();
    time_tool(
        "package: reference veritysetup format",
        data.len() / 4096,
        Command::new("veritysetup")
            .arg("format")
            .arg(&fs)
            .arg(dir.path().join("hash")),
    );
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
    let pkgs = load_primary(&repo, true);
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

    // fetch, unpack: real RPMs (the demo's when smoking, generated ones otherwise)
    let repo = if smoke {
        root.join("examples/demo/repo")
    } else {
        rpm_repo(&root)
    };
    let rpms: Vec<PathBuf> = walkdir::WalkDir::new(&repo)
        .into_iter()
        .filter_map(|e| e.ok().map(|e| e.into_path()))
        .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
        .collect();
    bench_fetch(&repo, &load_primary(&repo, false));
    bench_unpack(&rpms, if smoke { 1 } else { 3 });

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
        elsx::diff::subtract_manifest(&manifest, &ext, &Default::default(), Default::default())
            .unwrap()
    });
    assert_eq!(from_headers, out, "the manifest gives the same result");

    // write
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("bench.raw");
    let bytes = out.content_bytes();
    let size = time("write: squashfs (zstd 15)", out.len(), || {
        elsx::write::atomic_write(&img, |f| {
            elsx::write::squashfs::write(&out, &Default::default(), None, f).map(|_| ())
        })
        .unwrap()
    });
    println!(
        "  {} MiB of content -> {} KiB image",
        bytes >> 20,
        size >> 10
    );

    // package
    bench_package(if smoke { 4 } else { 256 });
}
