//! Repository and package signatures, with zypper's policy (see `src/repo/sig.rs` and
//! `RepoDef::policy`).
//!
//! Part 1 runs the signature code on libzypp's own test data (../shared/corpus/libzypp,
//! gated by `ELSX_CORPUS` like tests/corpus.rs). Part 2 builds a private repository signed with
//! a key generated for the test (gpg, rpmsign, createrepo_c), serves it over HTTP and runs the
//! `elsx` binary against it: accepted when signed, refused (naming the repository or the
//! package) when tampered with or unsigned, as the definition's gpgcheck settings ask.

mod support;

use elsx::repo::sig::{self, Keyring, RpmSigError, SigError};
use support::corpus;

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn corpus_rpm_signatures() {
    let Some(c) = corpus() else { return };
    let d = c.join("libzypp/RpmPkgSigCheck");
    let mut ring = Keyring::default();
    ring.add(
        sig::parse_keys(&read(&d.join("signed.key")), "signed.key").unwrap(),
        "signed.key",
    );
    let check = |f: &str, req: bool| sig::check_rpm(&ring, &read(&d.join(f)), req);
    let fp = check("signed.rpm", true).unwrap().expect("signed");
    assert_eq!(fp, ring.keys[0].fingerprint);
    assert_eq!(
        check("signed_broken.rpm", true),
        Err(RpmSigError::PayloadDigest)
    );
    assert_eq!(
        check("signed_broken_header.rpm", true),
        Err(RpmSigError::HeaderDigest)
    );
    assert_eq!(check("unsigned.rpm", true), Err(RpmSigError::NoSignature));
    assert_eq!(check("unsigned.rpm", false), Ok(None));
    assert_eq!(
        check("unsigned_broken.rpm", false),
        Err(RpmSigError::PayloadDigest)
    );
    assert_eq!(
        check("unsigned_broken_header.rpm", false),
        Err(RpmSigError::HeaderDigest)
    );
    assert!(matches!(
        check("no.rpm", false),
        Err(RpmSigError::NotRpm(_))
    ));
    // Without the key: signed by a key nobody trusts.
    let empty = Keyring::default();
    assert!(matches!(
        sig::check_rpm(&empty, &read(&d.join("signed.rpm")), true),
        Err(RpmSigError::Signature(SigError::UnknownKey { .. }))
    ));
}

#[test]
fn corpus_repomd_signatures() {
    let Some(c) = corpus() else { return };
    let d = c.join("libzypp/RepoSigcheck");
    let key =
        sig::parse_keys(&read(&d.join("signed_repo/repodata/repomd.xml.key")), "key").unwrap();
    let mut ring = Keyring::default();
    ring.add(key, "repomd.xml.key");
    let verify = |repo: &str| {
        let r = d.join(repo).join("repodata");
        ring.verify_detached(
            &read(&r.join("repomd.xml")),
            &read(&r.join("repomd.xml.asc")),
            repo,
        )
    };
    assert_eq!(verify("signed_repo").unwrap(), ring.keys[0].fingerprint);
    assert!(
        matches!(verify("wrongsig_repo"), Err(SigError::Bad { .. })),
        "{:?}",
        verify("wrongsig_repo")
    );
    let unknown = Keyring::default();
    let r = d.join("unknownkey_repo/repodata");
    assert!(matches!(
        unknown.verify_detached(
            &read(&r.join("repomd.xml")),
            &read(&r.join("repomd.xml.asc")),
            "x"
        ),
        Err(SigError::UnknownKey { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Part 2: a private repository signed with its own key, end to end over HTTP.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use support::{BASE, HttpServer, Run, elsx, require_tools, run_tool, write_recipe};

/// The repositories of the end-to-end tests, built once per test binary.
struct Repos {
    /// Holds the key and the repositories.
    root: PathBuf,
    /// The generated key's fingerprint.
    fpr: String,
    /// `key.asc`: the generated public key, armored.
    key: PathBuf,
}

impl Repos {
    /// Every package signed with rpmsign, repomd.xml signed, repomd.xml.key exported.
    fn signed(&self) -> PathBuf {
        self.root.join("signed")
    }
    /// The fixture repository as mkrepo.sh built it: nothing signed.
    fn unsigned(&self) -> PathBuf {
        self.root.join("unsigned")
    }
    /// Signed metadata, unsigned packages.
    fn signed_metadata(&self) -> PathBuf {
        self.root.join("signed-metadata")
    }
}

/// The absolute path of a command on PATH.
fn which(cmd: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(cmd))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{cmd} is not on PATH"))
}

fn gpg(home: &Path) -> Command {
    let mut c = Command::new("gpg");
    c.env("GNUPGHOME", home).args(["--batch", "--quiet"]);
    c
}

/// `gpg --detach-sign --armor repodata/repomd.xml` and the key as repodata/repomd.xml.key.
fn sign_repomd(home: &Path, fpr: &str, repo: &Path) {
    let md = repo.join("repodata/repomd.xml");
    run_tool(
        gpg(home)
            .args(["--yes", "--local-user", fpr, "--detach-sign", "--armor"])
            .arg(&md),
    );
    let key = run_tool(gpg(home).args(["--armor", "--export", fpr])).stdout;
    std::fs::write(repo.join("repodata/repomd.xml.key"), key).unwrap();
}

/// A directory under the target directory kept for the life of the test binary (statics are
/// never dropped); stale ones of earlier runs are pruned.
fn kept_dir(prefix: &str) -> PathBuf {
    let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
    support::prune_stale(parent, prefix);
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .unwrap()
        .keep()
}

fn repos() -> &'static Repos {
    static REPOS: OnceLock<Repos> = OnceLock::new();
    REPOS.get_or_init(|| {
        require_tools(&["gpg", "rpmsign", "createrepo_c"]);
        let fixture = support::fixture_repo();
        let root = kept_dir("signed-repos-");
        // A key of its own, in a throw-away GNUPGHOME (short path: gpg-agent's socket).
        let home = tempfile::Builder::new().prefix("gpg-").tempdir().unwrap();
        run_tool(gpg(home.path()).args([
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            "elsx signature test <sig@elsx.invalid>",
            "rsa2048",
            "sign",
            "never",
        ]));
        let out = run_tool(gpg(home.path()).args(["--with-colons", "--list-secret-keys"]));
        let fpr = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_owned())
            })
            .expect("a fingerprint");
        let key = root.join("key.asc");
        let exported = run_tool(gpg(home.path()).args(["--armor", "--export", &fpr])).stdout;
        std::fs::write(&key, exported).unwrap();

        let unsigned = root.join("unsigned");
        support::copy_tree(fixture, &unsigned);

        // Signed packages: rpmsign --addsign on copies of the fixture RPMs, indexed anew.
        let signed = root.join("signed");
        support::copy_tree(fixture, &signed);
        std::fs::remove_dir_all(signed.join("repodata")).unwrap();
        let mut rpms: Vec<PathBuf> = walkdir::WalkDir::new(&signed)
            .into_iter()
            .flatten()
            .map(|e| e.into_path())
            .filter(|p| p.extension().is_some_and(|x| x == "rpm"))
            .collect();
        rpms.sort();
        run_tool(
            Command::new("rpmsign")
                .env("GNUPGHOME", home.path())
                .arg("--addsign")
                .arg("--define")
                .arg(format!("_gpg_name {fpr}"))
                .arg("--define")
                .arg(format!("_gpg_path {}", home.path().display()))
                // Debian's rpm names /usr/bin/gpg2, which Debian's gpg package does not ship
                // (and rpm does not search PATH).
                .arg("--define")
                .arg(format!("__gpg {}", which("gpg").display()))
                .args(&rpms),
        );
        run_tool(
            Command::new("createrepo_c")
                .args(["--quiet", "--no-database"])
                .arg(&signed),
        );
        sign_repomd(home.path(), &fpr, &signed);

        let signed_metadata = root.join("signed-metadata");
        support::copy_tree(fixture, &signed_metadata);
        sign_repomd(home.path(), &fpr, &signed_metadata);
        Repos { root, fpr, key }
    })
}

/// Writes `DIR/repos/test.repo` defining `fixtures` at `url` with `lines`, and the recipe
/// `DIR/sig.toml` (the fixture base, fixture-app on top); builds it with `--repos-dir`.
fn build_with(url: &str, lines: &str) -> (tempfile::TempDir, Run) {
    build_with_args(url, lines, &[])
}

/// [`build_with`] with more arguments for `elsx build`.
fn build_with_args(url: &str, lines: &str, extra: &[&str]) -> (tempfile::TempDir, Run) {
    let dir = tempfile::Builder::new().prefix("sig-").tempdir().unwrap();
    let repos_dir = dir.path().join("repos");
    std::fs::create_dir_all(&repos_dir).unwrap();
    std::fs::write(
        repos_dir.join("test.repo"),
        format!("[fixtures]\nname=signed test repository\nbaseurl={url}\n{lines}"),
    )
    .unwrap();
    let recipe = write_recipe(dir.path(), "sig", BASE, &["fixture-app"], "");
    let mut args = vec![
        "build".to_owned(),
        recipe.display().to_string(),
        "-o".to_owned(),
        dir.path().join("out").display().to_string(),
        "--repos-dir".to_owned(),
        repos_dir.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let run = elsx(args);
    (dir, run)
}

#[track_caller]
fn assert_refused(run: &Run, needles: &[&str]) {
    run.assert_code(2);
    let err = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or("");
    for n in needles {
        assert!(run.stderr.contains(n), "stderr does not say {n:?}\n{run}");
    }
    assert!(!err.is_empty(), "no error line\n{run}");
    assert!(run.stdout.is_empty(), "{run}");
}

#[track_caller]
fn assert_built(dir: &Path, run: &Run) {
    run.assert_success();
    assert!(dir.join("out/sig.raw").is_file(), "{run}");
}

fn served(root: &Path) -> (HttpServer, String) {
    let s = HttpServer::start(root);
    let url = s.url();
    (s, url)
}

#[test]
fn signed_repository_builds_with_its_key_by_url_or_pin() {
    let r = repos();
    let (server, url) = served(&r.signed());
    // gpgkey= over HTTP (the repository's own copy), default gpgcheck.
    let key_url = format!("{url}repodata/repomd.xml.key");
    let (dir, run) = build_with(&url, &format!("gpgkey={key_url}\n"));
    assert_built(dir.path(), &run);
    let fetched = server.fetched();
    assert!(
        fetched.iter().any(|p| p == "/repodata/repomd.xml.asc"),
        "{fetched:?}"
    );
    assert!(!run.stderr.contains("signature checks are off"), "{run}");
    // A file:// key, with the fingerprint pinned; pkg_gpgcheck=1 checks every rpmsign'd header
    // too.
    let (dir, run) = build_with(
        &url,
        &format!(
            "gpgcheck=1\ngpgkey=file://{}\ngpgkey-fingerprint={}\npkg_gpgcheck=1\n",
            r.key.display(),
            r.fpr
        ),
    );
    assert_built(dir.path(), &run);
    // The pin alone: the key is taken from repodata/repomd.xml.key because it matches.
    let (dir, run) = build_with(&url, &format!("gpgkey-fingerprint={}\n", r.fpr));
    assert_built(dir.path(), &run);
}

#[test]
fn tampered_signature_is_refused_naming_the_repository() {
    let r = repos();
    let t = tempfile::tempdir().unwrap();
    let copy = t.path().join("repo");
    support::copy_tree(&r.signed(), &copy);
    // A valid signature by the right key, over other bytes (the signed-metadata repository's
    // repomd.xml): it does not match.
    std::fs::copy(
        r.signed_metadata().join("repodata/repomd.xml.asc"),
        copy.join("repodata/repomd.xml.asc"),
    )
    .unwrap();
    let (_s, url) = served(&copy);
    let (_d, run) = build_with(&url, &format!("gpgkey-fingerprint={}\n", r.fpr));
    assert_refused(
        &run,
        &["repository fixtures", "BAD signature", "repomd.xml.asc"],
    );
    // And a repomd.xml changed after signing.
    support::copy_tree(&r.signed(), &copy);
    let md = copy.join("repodata/repomd.xml");
    let mut text = std::fs::read_to_string(&md).unwrap();
    text.push_str("<!-- changed -->\n");
    std::fs::write(&md, text).unwrap();
    let (_d, run) = build_with(&url, &format!("gpgkey-fingerprint={}\n", r.fpr));
    assert_refused(&run, &["repository fixtures", "BAD signature"]);
}

#[test]
fn untrusted_keys_are_refused() {
    let r = repos();
    let (_s, url) = served(&r.signed());
    // Pinned to another key: the repository's repomd.xml.key is not taken.
    let (_d, run) = build_with(
        &url,
        "gpgkey-fingerprint=AD48 5664 E901 B867 051A B15F 35A2 F86E 29B7 00A4\n",
    );
    assert_refused(
        &run,
        &["repository fixtures", "not pinned", &r.fpr, "hint:"],
    );
    // --repo-key replaces the pin.
    let (dir, run) = build_with_args(
        &url,
        "gpgkey-fingerprint=AD485664E901B867051AB15F35A2F86E29B700A4\n",
        &["--repo-key", &format!("fixtures={}", r.fpr)],
    );
    assert_built(dir.path(), &run);
    // A key that did not sign it (the published test key), no pin: unknown key.
    let test_key = support::manifest_dir().join("tests/fixtures/keys/elsx-test.pub.asc");
    let (_d, run) = build_with(&url, &format!("gpgkey=file://{}\n", test_key.display()));
    assert_refused(
        &run,
        &[
            "repository fixtures",
            "is signed by key",
            "not among the trusted keys",
        ],
    );
    // No key at all.
    let (_d, run) = build_with(&url, "");
    assert_refused(&run, &["repository fixtures", "not among the trusted keys"]);
}

#[test]
fn unsigned_repository_is_refused_unless_the_definition_says_otherwise() {
    let r = repos();
    let (_s, url) = served(&r.unsigned());
    let key = format!("gpgkey=file://{}\n", r.key.display());
    // gpgcheck=1: unsigned metadata is refused.
    let (_d, run) = build_with(&url, &format!("gpgcheck=1\n{key}"));
    assert_refused(
        &run,
        &["repository fixtures", "is not signed", "repomd.xml.asc"],
    );
    // repo_gpgcheck=0 accepts the metadata (with a warning); pkg_gpgcheck=1 then refuses the
    // unsigned package, naming it.
    let (_d, run) = build_with(&url, &format!("repo_gpgcheck=0\npkg_gpgcheck=1\n{key}"));
    assert_refused(
        &run,
        &[
            "is not signed; accepted because repo_gpgcheck=0",
            "package fixture-",
            "from repository fixtures",
            "not signed",
        ],
    );
    // repo_gpgcheck=0 alone: gpgcheck still wants the packages signed, as the metadata is not.
    let (_d, run) = build_with(&url, &format!("repo_gpgcheck=0\n{key}"));
    assert_refused(&run, &["package fixture-", "the package is not signed"]);
    // repo_gpgcheck=0 and pkg_gpgcheck=0: zypper checks the signatures there are, and lets
    // unsigned packages through.
    let (dir, run) = build_with(&url, &format!("repo_gpgcheck=0\npkg_gpgcheck=0\n{key}"));
    assert_built(dir.path(), &run);
    // gpgcheck=0: builds, and says that nothing was checked.
    let (dir, run) = build_with(&url, "gpgcheck=0\n");
    assert_built(dir.path(), &run);
    assert!(
        run.stderr
            .contains("repository fixtures: signature checks are off (gpgcheck=0"),
        "{run}"
    );
}

#[test]
fn packages_are_trusted_through_signed_metadata() {
    let r = repos();
    let (_s, url) = served(&r.signed_metadata());
    let pin = format!("gpgkey-fingerprint={}\n", r.fpr);
    // Unsigned packages whose checksums come from signed metadata: accepted.
    let (dir, run) = build_with(&url, &pin);
    assert_built(dir.path(), &run);
    // Unless pkg_gpgcheck=1 asks for their own signatures.
    let (_d, run) = build_with(&url, &format!("{pin}pkg_gpgcheck=1\n"));
    assert_refused(
        &run,
        &["package fixture-", "from repository fixtures", "not signed"],
    );
}

// ---------------------------------------------------------------------------------------------
// Part 3: the shipped openSUSE definitions.

#[test]
fn shipped_definitions_pin_the_opensuse_key() {
    use elsx::repo::definition::Vars;
    const OPENSUSE: &str = "AD485664E901B867051AB15F35A2F86E29B700A4";
    for arch in ["x86_64", "aarch64"] {
        let vars = Vars {
            arch: arch.into(),
            releasever: "16.0".into(),
        };
        let mut defs = elsx::repo::load_definitions(&[], &[], &vars).unwrap();
        let aliases: Vec<&str> = defs.iter().map(|d| d.alias.as_str()).collect();
        for want in [
            "repo-oss",
            "repo-non-oss",
            "repo-update",
            "repo-oss-ports",
            "repo-non-oss-ports",
            "repo-update-ports",
            "leap-16.0-oss",
            "leap-16.0-non-oss",
        ] {
            assert!(
                aliases.contains(&want),
                "{want} is not shipped: {aliases:?}"
            );
        }
        for d in &defs {
            assert!(d.gpgcheck && d.repo_gpgcheck.is_none() && d.pkg_gpgcheck.is_none());
            assert_eq!(d.gpgkey_fingerprint, [OPENSUSE], "{}", d.alias);
            // The key is the repository's own copy.
            assert_eq!(
                d.gpgkey,
                [format!("{}repodata/repomd.xml.key", d.baseurl)],
                "{}",
                d.alias
            );
            assert!(!d.baseurl.contains('$'), "{}", d.baseurl);
        }
        let ports = defs.iter().find(|d| d.alias == "repo-oss-ports").unwrap();
        assert!(
            ports.baseurl.contains(&format!("/ports/{arch}/")),
            "{}",
            ports.baseurl
        );
        let leap = defs.iter().find(|d| d.alias == "leap-16.0-oss").unwrap();
        assert!(leap.baseurl.contains("/leap/16.0/"), "{}", leap.baseurl);
        // --mirror moves the keys with the repositories; --repo-key replaces the pins.
        elsx::repo::apply_overrides(&mut defs, Some("http://127.0.0.1:9/m/"), &[]);
        elsx::repo::apply_repo_keys(
            &mut defs,
            &[(Some("repo-oss".into()), support::TEST_KEY.into())],
        )
        .unwrap();
        let e = elsx::repo::apply_repo_keys(&mut defs, &[(Some("nope".into()), OPENSUSE.into())]);
        assert!(
            e.unwrap_err()
                .to_string()
                .contains("\"nope\" is not defined")
        );
        for d in &defs {
            assert!(
                d.baseurl.starts_with("http://127.0.0.1:9/m/"),
                "{}",
                d.baseurl
            );
            assert!(
                d.gpgkey[0].starts_with("http://127.0.0.1:9/m/"),
                "{:?}",
                d.gpgkey
            );
            let want = if d.alias == "repo-oss" {
                support::TEST_KEY
            } else {
                OPENSUSE
            };
            assert_eq!(d.gpgkey_fingerprint, [want]);
        }
    }
}

/// `DIR/tw.toml`: the fixture base and fixture-app from the shipped definition `repo-oss`.
fn tw_recipe(dir: &Path) -> PathBuf {
    let recipe = dir.join("tw.toml");
    std::fs::write(
        &recipe,
        format!(
            "[extension]\nname = \"tw\"\n\n[repos]\nuse = [\"repo-oss\"]\n\n[base]\npackages = {BASE:?}\n\n[packages]\ninstall = [\"fixture-app\"]\n"
        ),
    )
    .unwrap();
    recipe
}

/// A stand-in for download.opensuse.org holding `tumbleweed/repo/oss`: the fixture repository
/// signed with the published test key, as mkmirror.sh signs its mirror.
fn test_key_mirror() -> &'static Path {
    static MIRROR: OnceLock<PathBuf> = OnceLock::new();
    MIRROR.get_or_init(|| {
        require_tools(&["gpg"]);
        let root = kept_dir("test-key-mirror-");
        let oss = root.join("tumbleweed/repo/oss");
        support::copy_tree(support::fixture_repo(), &oss);
        let home = tempfile::Builder::new().prefix("gpg-").tempdir().unwrap();
        let secret = support::manifest_dir().join("tests/fixtures/keys/elsx-test.secret.asc");
        run_tool(gpg(home.path()).arg("--import").arg(secret));
        sign_repomd(home.path(), support::TEST_KEY, &oss);
        root
    })
}

#[test]
fn shipped_definitions_on_a_mirror_signed_with_another_key() {
    let server = HttpServer::start(test_key_mirror());
    let dir = tempfile::tempdir().unwrap();
    let recipe = tw_recipe(dir.path());
    let args = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "build".to_owned(),
            recipe.display().to_string(),
            "-o".to_owned(),
            dir.path().join(out).display().to_string(),
            "--mirror".to_owned(),
            server.url(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let build = |extra: &[&str]| elsx(args("out", extra));
    // The definition pins openSUSE's key: the mirror's own key is not taken.
    let run = build(&[]);
    assert_refused(
        &run,
        &[
            "repository repo-oss",
            "not pinned",
            support::TEST_KEY,
            "--repo-key",
        ],
    );
    assert!(!dir.path().join("out/tw.raw").exists());
    // Trusting the test key, for that repository or for all.
    for key in [
        format!("repo-oss={}", support::TEST_KEY),
        support::TEST_KEY.to_owned(),
    ] {
        let run = build(&["--repo-key", &key]);
        run.assert_success();
        assert!(dir.path().join("out/tw.raw").is_file(), "{run}");
    }
    // The key came from the mirror's repodata/repomd.xml.key (gpgkey= moved with --mirror).
    let fetched = server.fetched();
    for p in [
        "/tumbleweed/repo/oss/repodata/repomd.xml.asc",
        "/tumbleweed/repo/oss/repodata/repomd.xml.key",
    ] {
        assert!(
            fetched.iter().any(|f| f == p),
            "{p} not fetched: {fetched:?}"
        );
    }
    // A second build offline: the signature and the key come from the cache.
    let trust = ["--repo-key", support::TEST_KEY];
    let run = elsx(args("out2", &trust));
    run.assert_success();
    let run2 = support::elsx_with_cache(
        run.cache.clone(),
        args("out3", &[trust[0], trust[1], "--offline"]),
    );
    run2.assert_success();
}

/// mkosi configurations: the openSUSE repositories pin the openSUSE key (each serving its own
/// copy); `RepositoryKeyCheck=no` is zypper's `--no-gpg-checks`; `--repo-key` applies.
#[test]
fn mkosi_repositories_follow_repository_key_check() {
    let specs = |conf: &str, keys: Vec<(Option<String>, String)>| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("mkosi.conf"), conf).unwrap();
        let project = elsx::pipeline::mkosi::load(dir.path()).unwrap();
        let opts = elsx::pipeline::Options {
            output_dir: None,
            cache_dir: dir.path().join("cache"),
            offline: true,
            jobs: 1,
            mirror: Some("http://127.0.0.1:9/m".into()),
            repos: vec![],
            repos_dirs: vec![],
            repo_keys: keys,
            source_date_epoch: None,
            keep_changed: false,
        };
        let specs = elsx::pipeline::mkosi::specs(&project, &opts).unwrap();
        specs.into_iter().flat_map(|s| s.repos).collect::<Vec<_>>()
    };
    let conf = "[Distribution]\nDistribution=opensuse\nRelease=tumbleweed\nArchitecture=x86-64\n\n[Output]\nFormat=directory\n\n[Content]\nPackages=strace\n";
    let repos = specs(conf, vec![]);
    assert!(!repos.is_empty());
    for d in &repos {
        assert!(d.gpgcheck, "{d:?}");
        assert_eq!(
            d.gpgkey_fingerprint,
            ["AD485664E901B867051AB15F35A2F86E29B700A4"]
        );
        assert_eq!(d.gpgkey, [format!("{}/repodata/repomd.xml.key", d.baseurl)]);
    }
    for d in specs(conf, vec![(None, support::TEST_KEY.into())]) {
        assert_eq!(d.gpgkey_fingerprint, [support::TEST_KEY]);
    }
    let off = format!("{conf}\n[Distribution]\nRepositoryKeyCheck=no\n");
    for d in specs(&off, vec![]) {
        assert!(
            !d.gpgcheck && !d.repo_gpgcheck() && !d.pkg_gpgcheck(false),
            "{d:?}"
        );
    }
}

/// A key whose primary only certifies and whose signing subkey signs (as gpg makes them): the
/// signature is the primary key's, for pins and messages.
#[test]
fn signing_subkeys_sign_for_their_primary_key() {
    require_tools(&["gpg"]);
    let home = tempfile::Builder::new().prefix("gpg-").tempdir().unwrap();
    let h = home.path();
    let nopass = ["--pinentry-mode", "loopback", "--passphrase", ""];
    run_tool(gpg(h).args(nopass).args([
        "--quick-gen-key",
        "sub <sub@elsx.invalid>",
        "rsa2048",
        "cert",
        "never",
    ]));
    let out = run_tool(gpg(h).args(["--with-colons", "--list-keys"]));
    let fpr = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_owned())
        })
        .unwrap();
    run_tool(
        gpg(h)
            .args(nopass)
            .args(["--quick-add-key", &fpr, "rsa2048", "sign", "never"]),
    );
    let data = h.join("data");
    std::fs::write(&data, b"<repomd/>\n").unwrap();
    run_tool(gpg(h).args(["--detach-sign", "--armor"]).arg(&data));
    let key = run_tool(gpg(h).args(["--armor", "--export", &fpr])).stdout;
    let mut ring = Keyring::default();
    ring.add(sig::parse_keys(&key, "key").unwrap(), "key");
    let asc = read(&h.join("data.asc"));
    assert_eq!(
        ring.verify_detached(b"<repomd/>\n", &asc, "data").unwrap(),
        fpr
    );
    assert!(matches!(
        ring.verify_detached(b"<repomd/>\nchanged", &asc, "data"),
        Err(SigError::Bad { .. })
    ));
}

/// An unsigned mirror under the shipped definitions: refused as unsigned (its missing
/// repomd.xml.key is not an error of its own), built with gpgcheck turned off by a definition
/// of the user's that replaces the shipped one.
#[test]
fn shipped_definitions_on_an_unsigned_mirror() {
    let mirror = tempfile::tempdir().unwrap();
    support::copy_tree(
        support::fixture_repo(),
        &mirror.path().join("tumbleweed/repo/oss"),
    );
    let server = HttpServer::start(mirror.path());
    let dir = tempfile::tempdir().unwrap();
    let recipe = tw_recipe(dir.path());
    let run = elsx([
        "build".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        dir.path().join("out").as_os_str(),
        "--mirror".as_ref(),
        server.url().as_ref(),
    ]);
    assert_refused(
        &run,
        &[
            "repository repo-oss",
            "is not signed",
            "opensuse-tumbleweed.repo",
        ],
    );
    let repos_dir = dir.path().join("repos");
    std::fs::create_dir_all(&repos_dir).unwrap();
    std::fs::write(
        repos_dir.join("local.repo"),
        format!(
            "[repo-oss]\nbaseurl={}tumbleweed/repo/oss/\ngpgcheck=0\n",
            server.url()
        ),
    )
    .unwrap();
    let run = elsx([
        "build".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        dir.path().join("out").as_os_str(),
        "--repos-dir".as_ref(),
        repos_dir.as_os_str(),
    ]);
    run.assert_success();
    assert!(
        run.stderr
            .contains("repository repo-oss: signature checks are off"),
        "{run}"
    );
}

/// A key made by gpg in `home` at the (faked) time `at` (`20200101T000000`), valid for
/// `expire` (`never`, `1y`); returns its fingerprint.
fn gen_key(home: &Path, uid: &str, at: &str, expire: &str) -> String {
    run_tool(
        gpg(home)
            .args(["--pinentry-mode", "loopback", "--passphrase", ""])
            .arg(format!("--faked-system-time={at}!"))
            .args(["--quick-gen-key", uid, "rsa2048", "sign", expire]),
    );
    let out = run_tool(gpg(home).args(["--with-colons", "--list-keys", uid]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("fpr:")
                .map(|r| r.trim_matches(':').to_owned())
        })
        .unwrap()
}

/// `gpg --detach-sign --armor` of `file` by `fpr` at the (faked) time `at`.
fn sign_at(home: &Path, fpr: &str, at: &str, file: &Path) -> Vec<u8> {
    run_tool(
        gpg(home)
            .arg(format!("--faked-system-time={at}!"))
            .args(["--yes", "--local-user", fpr, "--detach-sign", "--armor"])
            .arg(file),
    );
    read(&PathBuf::from(format!("{}.asc", file.display())))
}

/// Expired and revoked keys, from gpg: a signature counts only from a key alive when it was
/// made and alive now, never from a revoked one; a build from a repository signed with such a
/// key is refused naming the repository and the key.
#[test]
fn expired_and_revoked_keys_are_refused() {
    require_tools(&["gpg"]);
    let home = tempfile::Builder::new().prefix("gpg-").tempdir().unwrap();
    let h = home.path();
    // Signatures over the fixture repository's repomd.xml, served at the end.
    let data = h.join("repomd.xml");
    let md = read(&support::fixture_repo().join("repodata/repomd.xml"));
    std::fs::write(&data, &md).unwrap();
    let export = |fpr: &str| run_tool(gpg(h).args(["--armor", "--export", fpr])).stdout;
    let check = |key: &[u8], now: Option<i64>, asc: &[u8]| {
        let mut r = Keyring {
            now,
            ..Keyring::default()
        };
        r.add(sig::parse_keys(key, "key").unwrap(), "key");
        r.verify_detached(&md, asc, "repomd.xml")
    };
    let now = Some(1_900_000_000); // 2030

    // Made in 2020 for a year, used in 2020: good then, expired now.
    let expiring = gen_key(h, "expiring <exp@elsx.invalid>", "20200101T000000", "1y");
    let expiring_key = export(&expiring);
    let asc_2020 = sign_at(h, &expiring, "20200601T000000", &data);
    assert_eq!(check(&expiring_key, None, &asc_2020).unwrap(), expiring);
    let e = check(&expiring_key, now, &asc_2020).unwrap_err();
    assert!(
        matches!(&e, SigError::Expired { key, expired, .. } if *key == expiring && expired.starts_with("2020-12-31")),
        "{e}"
    );
    // Extended by a new self-signature in 2022, it signs again; the key as it was before the
    // extension (expired in 2020) does not vouch for a signature of 2022.
    run_tool(
        gpg(h)
            .args(["--pinentry-mode", "loopback", "--passphrase", ""])
            .arg("--faked-system-time=20220101T000000!")
            .args(["--quick-set-expire", &expiring, "2y"]),
    );
    let asc_2022 = sign_at(h, &expiring, "20220601T000000", &data);
    let extended = export(&expiring);
    assert!(check(&extended, None, &asc_2022).is_ok());
    let e = check(&expiring_key, None, &asc_2022).unwrap_err();
    assert!(
        matches!(&e, SigError::SignedAfterExpiry { key, signed, .. } if *key == expiring && signed.starts_with("2022-06-01")),
        "{e}"
    );

    // Revoked with the certificate gpg made with the key (openpgp-revocs.d), after signing.
    let revoked = gen_key(h, "revoked <rev@elsx.invalid>", "20240101T000000", "never");
    let asc_rev = sign_at(h, &revoked, "20240601T000000", &data);
    let good = export(&revoked);
    assert!(check(&good, now, &asc_rev).is_ok());
    let cert = std::fs::read_to_string(h.join(format!("openpgp-revocs.d/{revoked}.rev"))).unwrap();
    // gpg puts a ':' before the armor so that the certificate is not imported by accident.
    let cert = cert.replace(":-----BEGIN", "-----BEGIN");
    let cert_file = h.join("revoke.asc");
    std::fs::write(&cert_file, cert).unwrap();
    run_tool(gpg(h).arg("--import").arg(&cert_file));
    let revoked_key = export(&revoked);
    let e = check(&revoked_key, None, &asc_rev).unwrap_err();
    assert!(
        matches!(&e, SigError::Revoked { key, .. } if *key == revoked),
        "{e}"
    );

    // End to end: the fixture repository signed by each, the key given by gpgkey=.
    for (fpr, key, asc, needle) in [
        (&expiring, &expiring_key, &asc_2020, "expired on 2020-12-31"),
        (&revoked, &revoked_key, &asc_rev, "revoked"),
    ] {
        let t = tempfile::tempdir().unwrap();
        let repo = t.path().join("repo");
        support::copy_tree(support::fixture_repo(), &repo);
        std::fs::write(repo.join("repodata/repomd.xml.asc"), asc).unwrap();
        let key_file = t.path().join("key.asc");
        std::fs::write(&key_file, key).unwrap();
        let (server, url) = served(&repo);
        let (_dir, run) = build_with(&url, &format!("gpgkey=file://{}\n", key_file.display()));
        assert_refused(&run, &["repository fixtures", fpr, needle]);
        drop(server);
    }
}
