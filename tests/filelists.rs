//! filelists.xml is read only when a file dependency needs it (repo/filelists.rs, repo/mod.rs).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::*;

/// The repository built from `tests/fixtures/specs-filelists` (gzip metadata), once per binary.
fn fl_repo() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        require_tools(&["rpmbuild", "createrepo_c", "gzip"]);
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(parent).unwrap();
        prune_stale(parent, "fl-repo-");
        let dir = tempfile::Builder::new()
            .prefix("fl-repo-")
            .tempdir_in(parent)
            .unwrap()
            .keep();
        let out = run_tool(
            Command::new("bash")
                .arg(manifest_dir().join("scripts/mkrepo.sh"))
                .arg(manifest_dir().join("tests/fixtures/specs-filelists"))
                .arg(&dir)
                .env("SOURCE_DATE_EPOCH", "1700000000")
                .env("MKREPO_COMPRESS", "gz"),
        );
        assert!(out.status.success());
        dir
    })
}

/// The decompressed repodata file of `kind` (primary, filelists) of `repo`.
fn repodata_xml(repo: &Path, kind: &str) -> Vec<u8> {
    let suffix = format!("-{kind}.xml.gz");
    let gz = std::fs::read_dir(repo.join("repodata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(&suffix))
        .unwrap_or_else(|| panic!("no {kind}.xml.gz in {}", repo.display()));
    run_tool(Command::new("gzip").arg("-dc").arg(gz)).stdout
}

#[test]
fn parser_reads_createrepo_c_filelists() {
    let repo = fl_repo();
    let xml = repodata_xml(repo, "filelists");
    let all = elsx::repo::filelists::parse(&xml, "filelists.xml", &|_| true).unwrap();
    let data = all.iter().find(|e| e.name == "fl-data").unwrap();
    assert_eq!(data.arch, "noarch");
    assert_eq!(data.evr.to_string(), "1.0-1");
    assert_eq!(data.pkgid.len(), 64);
    assert!(
        data.files
            .contains(&"/usr/share/fl-data/table.dat".to_owned())
    );
    assert!(data.files.contains(&"/usr/share/fl-data".to_owned()));
    let only =
        elsx::repo::filelists::parse(&xml, "filelists.xml", &|p| p.ends_with(".dat")).unwrap();
    assert_eq!(only.len(), all.len());
    let kept: Vec<&String> = only.iter().flat_map(|e| &e.files).collect();
    assert_eq!(kept, ["/usr/share/fl-data/table.dat"]);
    // Errors name the file and a byte offset.
    let cut = &xml[..xml.len() - 30];
    let err = elsx::repo::filelists::parse(cut, "cut.xml", &|_| true).unwrap_err();
    assert!(
        err.to_string().starts_with("cut.xml: XML error at byte "),
        "{err}"
    );
}

#[test]
fn file_dependency_resolved_from_filelists() {
    let repo = fl_repo();
    let primary = String::from_utf8(repodata_xml(repo, "primary")).unwrap();
    assert!(primary.contains("/usr/share/fl-data/table.dat")); // as fl-app's requirement
    assert!(!primary.contains("<file>/usr/share/fl-data/table.dat</file>"));
    let server = HttpServer::start(repo);
    let fl_url = server.url();
    let run = elsx([
        "resolve",
        "--repo",
        &format!("fl={fl_url}"),
        "--install",
        "fl-app",
        "--json",
    ]);
    run.assert_success();
    assert!(run.stdout.contains("\"fl-data\""), "{run}");
    assert!(server.paths().iter().any(|p| p.contains("filelists.xml")));
    // Again offline from the same cache: the parsed-metadata store gives the packages, the
    // cached filelists the file.
    drop(server);
    let again = elsx_with_cache(
        run.cache.clone(),
        [
            "resolve",
            "--repo",
            &format!("fl={}", fl_url),
            "--install",
            "fl-app",
            "--json",
            "--offline",
        ],
    );
    again.assert_success();
    assert_eq!(again.stdout, run.stdout);
}

#[test]
fn unresolvable_file_dependency_names_the_path() {
    let server = HttpServer::start(fl_repo());
    let run = elsx([
        "resolve",
        "--repo",
        &format!("fl={}", server.url()),
        "--install",
        "fl-broken",
    ]);
    run.assert_code(1);
    assert!(
        run.stderr.contains("/usr/share/fl-missing/nothing.dat"),
        "{run}"
    );
}

#[test]
fn no_filelists_without_unresolved_file_dependencies() {
    let server = HttpServer::start(fixture_repo());
    let run = elsx([
        "resolve",
        "--repo",
        &format!("fx={}", server.url()),
        "--install",
        "fixture-app",
    ]);
    run.assert_success();
    let paths = server.paths();
    assert!(paths.iter().any(|p| p.contains("primary.xml")), "{paths:?}");
    assert!(!paths.iter().any(|p| p.contains("filelists")), "{paths:?}");
}
