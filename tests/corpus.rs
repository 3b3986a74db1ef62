//! Real openSUSE data nobody on this project wrote (../shared/corpus, see its README).
//!
//! Gated by `ELSX_CORPUS` (scripts/test.sh sets it when ../shared/corpus exists): without it
//! these tests say so and do nothing; with it set to a missing folder they fail.

mod support;

use elsx::compress::Codec;
use elsx::repo::{primary, repomd};
use elsx::tree::Kind;
use std::path::Path;
use std::process::Command;
use support::corpus;

/// Parses repomd.xml and the primary it lists; returns the packages.
fn load_repo(repo: &Path) -> Vec<primary::Package> {
    let md_path = repo.join("repodata/repomd.xml");
    let md = repomd::parse(
        &std::fs::read(&md_path).unwrap(),
        &md_path.display().to_string(),
    )
    .unwrap();
    assert!(md.data.iter().all(|d| !d.href.is_empty()), "{md:?}");
    let prim = md.find("primary").expect("primary listed");
    assert!(
        !prim.href.ends_with(".zck"),
        "the zchunk variant must never be chosen: {}",
        prim.href
    );
    let raw = std::fs::read(repo.join(&prim.href)).unwrap();
    let sum = prim.checksum.as_ref().expect("primary has a checksum");
    assert!(
        sum.matches(&raw),
        "{}: checksum from repomd.xml does not match",
        prim.href
    );
    let xml = Codec::from_file_name(&prim.href).decode_all(&raw).unwrap();
    primary::parse(&xml, &prim.href).unwrap()
}

#[test]
fn real_repositories_parse() {
    let Some(c) = corpus() else { return };
    let upd = load_repo(&c.join("opensuse/11.0-update"));
    assert!(
        upd.len() > 2000,
        "11.0-update has 2,430 packages, parsed {}",
        upd.len()
    );
    assert!(
        upd.iter()
            .all(|p| !p.name.is_empty() && !p.arch.is_empty() && !p.evr.version.is_empty())
    );
    // SUSE idioms survive parsing as dependency names.
    let all_deps = || {
        upd.iter()
            .flat_map(|p| p.supplements.iter().chain(&p.provides).chain(&p.requires))
    };
    assert!(
        all_deps().any(|d| d.name.starts_with("packageand(")),
        "packageand() idiom"
    );
    assert!(
        all_deps().any(|d| d.name.starts_with("modalias(")),
        "modalias() idiom"
    );
    assert!(
        upd.iter()
            .any(|p| p.files.iter().any(|f| f.starts_with("/usr/bin/"))),
        "primary file lists"
    );

    let obs = load_repo(&c.join("opensuse/OBS_zypp_svn-11.1"));
    assert!(!obs.is_empty());
    let tw = load_repo(&c.join("opensuse/tumbleweed-container-repo"));
    assert_eq!(
        tw.len(),
        3,
        "{:?}",
        tw.iter().map(|p| p.nevra()).collect::<Vec<_>>()
    );
    assert!(
        tw.iter()
            .any(|p| p.requires.iter().any(|d| d.name.ends_with("(64bit)"))),
        "soname requires"
    );
    load_repo(&c.join("libzypp/susedata-extensions"));
    // The zchunk fixture's data files are empty (libzypp only tests the repomd choice there).
    let md_path = c.join("libzypp/zchunk-repomd/repodata/repomd.xml");
    let md = repomd::parse(&std::fs::read(&md_path).unwrap(), "repomd.xml").unwrap();
    assert_eq!(md.find("primary").unwrap().href, "repodata/primary.xml.gz");
    assert_eq!(
        md.find("filelists").unwrap().href,
        "repodata/filelists.xml.gz"
    );
    assert!(
        md.data.iter().any(|d| d.kind == "primary_zck"),
        "the zck entries are read, and skipped"
    );
}

/// What `rpm2cpio RPM | cpio -idm` makes of a package, as (path, kind, mode, content/target).
fn reference_extract(rpm: &Path, dir: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "rpm2cpio '{}' | cpio -idm --quiet --no-absolute-filenames",
            rpm.display()
        ))
        .current_dir(dir)
        .status()
        .expect("rpm2cpio and cpio (Debian packages rpm2cpio, cpio)");
    assert!(status.success());
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).min_depth(1).sort_by_file_name() {
        let e = e.unwrap();
        let rel = e
            .path()
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let md = e.path().symlink_metadata().unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = md.permissions().mode() & 0o7777;
        let (kind, data) = if md.is_dir() {
            ("dir", Vec::new())
        } else if md.file_type().is_symlink() {
            (
                "symlink",
                std::fs::read_link(e.path())
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
                    .into_bytes(),
            )
        } else {
            ("file", std::fs::read(e.path()).unwrap())
        };
        out.push((rel, kind.to_owned(), mode, data));
    }
    out
}

fn ours(rpm: &Path) -> Vec<(String, String, u32, Vec<u8>)> {
    let (t, _) = elsx::unpack::unpack_file(rpm).unwrap();
    t.entries
        .iter()
        .map(|(p, e)| {
            let (kind, data) = match &e.kind {
                Kind::Dir => ("dir", Vec::new()),
                Kind::Symlink(s) => ("symlink", s.clone().into_bytes()),
                Kind::File(d) => ("file", d.to_vec()),
                other => panic!("{p}: unexpected {other:?}"),
            };
            (p.clone(), kind.to_owned(), e.mode, data)
        })
        .collect()
}

#[test]
fn unpack_matches_rpm2cpio() {
    let Some(c) = corpus() else { return };
    let rpms = [
        "opensuse/freesrp-udev-0.3.0-1.25.x86_64.rpm",
        "opensuse/tumbleweed-container-repo/x86_64/tuxedo-rs-0.2.5-0.x86_64.rpm",
        "opensuse/tumbleweed-container-repo/noarch/tuxedo-drivers-dkms-4.21.3-0.noarch.rpm",
        "libzypp/RpmPkgSigCheck/signed.rpm",
        "fedora-createrepo_c/Archer-3.4.5-6.x86_64.rpm",
        "fedora-createrepo_c/fake_bash-1.1.1-1.x86_64.rpm",
    ];
    for rel in rpms {
        let rpm = c.join(rel);
        let tmp = tempfile::tempdir().unwrap();
        let want = reference_extract(&rpm, tmp.path());
        let mut got = ours(&rpm);
        // cpio creates only what the payload holds; rpm headers also list the parents we add.
        let listed: std::collections::BTreeSet<&str> = want.iter().map(|w| w.0.as_str()).collect();
        got.retain(|g| g.1 != "dir" || listed.contains(g.0.as_str()));
        let strip = |v: &[(String, String, u32, Vec<u8>)]| {
            v.iter()
                .map(|(p, k, m, d)| {
                    (
                        p.clone(),
                        k.clone(),
                        if k == "symlink" { 0 } else { *m },
                        d.clone(),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(
            strip(&got),
            strip(&want),
            "{rel}: elsx and rpm2cpio|cpio disagree"
        );
    }
}

#[test]
fn broken_rpms_are_errors_not_panics() {
    let Some(c) = corpus() else { return };
    for rel in [
        "libzypp/RpmPkgSigCheck/no.rpm",
        "libzypp/RpmPkgSigCheck/signed_broken.rpm",
    ] {
        let r = std::panic::catch_unwind(|| elsx::unpack::unpack_file(&c.join(rel)));
        match r {
            Ok(Ok(_)) => panic!("{rel}: accepted"),
            Ok(Err(e)) => assert!(
                e.to_string().contains(rel.rsplit('/').next().unwrap()),
                "{rel}: {e}"
            ),
            Err(_) => panic!("{rel}: panicked"),
        }
    }
}

/// The parsed-metadata cache entry of a real primary.xml is the same bytes whatever the chunks
/// the decompressed stream is read in and whatever the thread count.
#[test]
fn streamed_primary_is_the_same_for_any_chunk_and_thread_count() {
    let Some(c) = corpus() else { return };
    let repo = c.join("opensuse/11.0-update");
    let md = repomd::parse(
        &std::fs::read(repo.join("repodata/repomd.xml")).unwrap(),
        "repomd",
    )
    .unwrap();
    let href = md.find("primary").unwrap().href.clone();
    let path = repo.join(&href);
    let open = || -> std::io::Result<Box<dyn std::io::Read + Send>> {
        Codec::from_file_name(&href).reader(std::io::BufReader::new(std::fs::File::open(&path)?))
    };
    let mut seen = Vec::new();
    for (chunk, threads) in [(1 << 20, 2), (61, 1), (4093, 2), (1 << 16, 3)] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let data = pool
            .install(|| primary::parse_arena_chunked(&open, chunk, &href))
            .unwrap();
        seen.push((chunk, threads, elsx::repo::store::encode("k", &data)));
    }
    assert!(seen[0].2.len() > 1 << 20);
    for (chunk, threads, bytes) in &seen[1..] {
        assert!(
            *bytes == seen[0].2,
            "chunk {chunk}, {threads} threads differ"
        );
    }
    let xml = Codec::from_file_name(&href)
        .decode_all(&std::fs::read(&path).unwrap())
        .unwrap();
    let data = elsx::repo::store::decode("k", &seen[0].2).unwrap();
    assert_eq!(data.to_packages(), primary::parse(&xml, &href).unwrap());
}
