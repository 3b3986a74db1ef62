//! Downloads under trouble: the fixture repository (real RPMs from rpmbuild, metadata from
//! createrepo_c) served by a server on 127.0.0.1 that injects faults. Each build ends either in
//! the same image as a clean run (compared byte for byte) or in an error that names the URL and
//! what was wrong, with no image (nor a part of one) in the output directory; the cache never
//! holds an entry whose bytes do not match its name.

#[path = "support/faulty.rs"]
mod faulty;
mod support;

use faulty::{Fault, FaultyServer, Rule};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use support::*;

const APP: &str = "fixture-app-1.0-1.x86_64.rpm";
/// Short timeouts keep the slow cases quick; retries stay at their default unless a test says.
const FAST: &[(&str, &str)] = &[("ELSX_HTTP_TIMEOUT", "2")];

fn recipe(dir: &Path) -> PathBuf {
    // The same name everywhere, so that every successful build gives the same bytes.
    write_recipe(dir, "fxfaults", BASE, &["fixture-app"], "")
}

struct Build {
    run: Run,
    out: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Build {
    fn image(&self) -> Vec<u8> {
        std::fs::read(self.out.join("fxfaults.raw"))
            .unwrap_or_else(|e| panic!("no image ({e})\n{}", self.run))
    }
}

fn build_in(
    cache: Arc<tempfile::TempDir>,
    url: &str,
    env: &[(&str, &str)],
    extra: &[&str],
) -> Build {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut args: Vec<String> = vec![
        "build".into(),
        recipe(tmp.path()).display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if !url.is_empty() {
        args.push("--repo".into());
        args.push(format!("fixtures={url}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = elsx_with_env(cache, &args, env);
    Build {
        run,
        out,
        _tmp: tmp,
    }
}

fn fresh_cache() -> Arc<tempfile::TempDir> {
    Arc::new(tempfile::tempdir().unwrap())
}

fn build(url: &str, env: &[(&str, &str)]) -> Build {
    build_in(fresh_cache(), url, env, &[])
}

/// The image of a build without faults.
fn reference() -> &'static [u8] {
    static R: OnceLock<Vec<u8>> = OnceLock::new();
    R.get_or_init(|| {
        let server = FaultyServer::start(fixture_repo(), vec![]);
        let b = build(&server.url(), FAST);
        b.run.assert_success();
        b.image()
    })
}

#[track_caller]
fn assert_same_image(b: &Build) {
    b.run.assert_success();
    assert!(
        b.image() == reference(),
        "the image differs from a clean run's\n{}",
        b.run
    );
}

/// Exit code 2, the URL and the words in the one error message, nothing in the output directory.
#[track_caller]
fn assert_failed(b: &Build, url: &str, words: &str) {
    b.run.assert_code(2);
    let errors: Vec<&str> = b
        .run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error message\n{}", b.run);
    assert!(
        b.run.stderr.contains(url),
        "the error does not name {url}\n{}",
        b.run
    );
    assert!(
        b.run.stderr.contains(words),
        "the error does not say {words:?}\n{}",
        b.run
    );
    let left = dir_entries(&b.out);
    assert!(
        left.is_empty(),
        "left in the output directory: {left:?}\n{}",
        b.run
    );
}

/// Every entry of the content-addressed buckets has the bytes its name promises, and nothing
/// else (no temporary file) lives there.
#[track_caller]
fn assert_cache_sound(cache: &Path) {
    for bucket in ["rpms-v1", "repodata-v1"] {
        for name in dir_entries(&cache.join(bucket)) {
            assert!(!name.starts_with('.'), "temporary file in {bucket}: {name}");
            assert_eq!(
                sha256_file(&cache.join(bucket).join(&name)),
                name,
                "{bucket}/{name} holds other bytes"
            );
        }
    }
}

fn app_sha() -> String {
    sha256_file(&rpm_in(fixture_repo(), APP))
}

#[test]
fn clean_run_matches_a_file_repository_build() {
    // The reference itself: a server without faults gives what a file:// build gives.
    let b = build(&file_url(fixture_repo()), &[]);
    b.run.assert_success();
    assert!(b.image() == reference());
}

#[test]
fn unavailable_then_success() {
    let server = FaultyServer::start(fixture_repo(), vec![Rule::new(APP, Fault::Unavailable, 2)]);
    let b = build(&server.url(), FAST);
    assert_same_image(&b);
    let statuses: Vec<u16> = server.log_for(APP).iter().map(|l| l.status).collect();
    assert_eq!(statuses, [503, 503, 200]);
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn unavailable_for_good_names_the_url() {
    let server = FaultyServer::start(fixture_repo(), vec![Rule::always(APP, Fault::Unavailable)]);
    let b = build(
        &server.url(),
        &[("ELSX_HTTP_TIMEOUT", "2"), ("ELSX_HTTP_RETRIES", "2")],
    );
    assert_failed(&b, &format!("{}x86_64/{APP}", server.url()), "503");
    assert_eq!(server.log_for(APP).len(), 3, "one try and two retries");
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn reset_mid_body_is_resumed() {
    let server = FaultyServer::start(fixture_repo(), vec![Rule::new(APP, Fault::Reset, 1)]);
    let b = build(&server.url(), FAST);
    assert_same_image(&b);
    let log = server.log_for(APP);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn truncated_body_is_resumed_with_range() {
    let server = FaultyServer::start(fixture_repo(), vec![Rule::new(APP, Fault::Truncate, 1)]);
    let b = build(&server.url(), FAST);
    assert_same_image(&b);
    let log = server.log_for(APP);
    assert_eq!(log.len(), 2, "{log:?}");
    let size = std::fs::metadata(rpm_in(fixture_repo(), APP))
        .unwrap()
        .len();
    // The second request asks only for what is missing.
    assert_eq!(log[1].range_from, Some(size / 2), "{log:?}");
    assert_eq!(log[1].status, 206);
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn wrong_checksum_is_refused_and_not_cached() {
    let server = FaultyServer::start(fixture_repo(), vec![Rule::always(APP, Fault::Corrupt)]);
    let b = build(&server.url(), FAST);
    assert_failed(
        &b,
        &format!("{}x86_64/{APP}", server.url()),
        "checksum mismatch",
    );
    assert!(b.run.stderr.contains(&app_sha()), "{}", b.run);
    let cache = b.run.cache_dir();
    assert!(!cache.join("rpms-v1").join(app_sha()).exists());
    assert!(
        dir_entries(&cache.join("partial-v1")).is_empty(),
        "wrong bytes kept for resuming: {:?}",
        dir_entries(&cache.join("partial-v1"))
    );
    assert_cache_sound(cache);
}

#[test]
fn stalled_response_times_out_and_is_retried() {
    let server = FaultyServer::start(
        fixture_repo(),
        vec![Rule::new(APP, Fault::Stall(Duration::from_secs(6)), 1)],
    );
    let b = build(&server.url(), &[("ELSX_HTTP_TIMEOUT", "1")]);
    assert_same_image(&b);
    assert_eq!(server.log_for(APP).len(), 2);
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn stalled_for_good_names_the_url() {
    let server = FaultyServer::start(
        fixture_repo(),
        vec![Rule::always(APP, Fault::Stall(Duration::from_secs(4)))],
    );
    let b = build(
        &server.url(),
        &[("ELSX_HTTP_TIMEOUT", "1"), ("ELSX_HTTP_RETRIES", "1")],
    );
    assert_failed(&b, &format!("{}x86_64/{APP}", server.url()), "stalled");
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn vanishing_server_names_the_url() {
    let server = FaultyServer::start(fixture_repo(), vec![Rule::always(".rpm", Fault::Vanish)]);
    let b = build(
        &server.url(),
        &[("ELSX_HTTP_TIMEOUT", "2"), ("ELSX_HTTP_RETRIES", "1")],
    );
    // Which RPM was asked for first depends on the threads; each error names its URL.
    assert_failed(&b, &format!("{}x86_64/", server.url()), ".rpm");
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn interrupted_download_resumes_in_the_next_run() {
    let cache = fresh_cache();
    let server = FaultyServer::start(fixture_repo(), vec![Rule::always(APP, Fault::Truncate)]);
    let first = build_in(
        cache.clone(),
        &server.url(),
        &[("ELSX_HTTP_TIMEOUT", "2"), ("ELSX_HTTP_RETRIES", "0")],
        &[],
    );
    assert_failed(&first, &format!("{}x86_64/{APP}", server.url()), "closed");
    let partial = dir_entries(&cache.path().join("partial-v1"));
    assert!(!partial.is_empty(), "nothing kept to resume");
    assert_cache_sound(cache.path());
    drop(server);

    let good = FaultyServer::start(fixture_repo(), vec![]);
    let second = build_in(cache.clone(), &good.url(), FAST, &[]);
    assert_same_image(&second);
    let log = good.log_for(APP);
    assert_eq!(log.len(), 1);
    assert!(log[0].range_from.is_some_and(|n| n > 0), "{log:?}");
    assert_eq!(log[0].status, 206);
    assert_cache_sound(cache.path());
}

#[test]
fn metalink_mirrors_fail_over() {
    // The redirector names three mirrors: one gone, one serving wrong bytes, one good.
    let gone = FaultyServer::start(fixture_repo(), vec![]);
    let gone_url = gone.url();
    gone.vanish();
    let bad = FaultyServer::start(fixture_repo(), vec![Rule::always(".rpm", Fault::Corrupt)]);
    let good = FaultyServer::start(fixture_repo(), vec![]);
    let redirector = FaultyServer::start(fixture_repo(), vec![]);
    redirector.redirect_to(&[gone_url, bad.url(), good.url()]);
    let b = build(
        &redirector.url(),
        &[("ELSX_HTTP_TIMEOUT", "2"), ("ELSX_HTTP_RETRIES", "1")],
    );
    assert_same_image(&b);
    // Every RPM request to the redirector asked for a metalink, as zypper does.
    let asked = redirector.log_for(".rpm");
    assert_eq!(asked.len(), 8, "{asked:?}");
    assert!(asked.iter().all(|l| l.wanted_metalink && l.status == 200));
    assert_eq!(good.log_for(".rpm").len(), 8);
    assert!(!bad.log_for(".rpm").is_empty());
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn metalink_without_a_good_mirror_lists_each_failure() {
    let bad = FaultyServer::start(fixture_repo(), vec![Rule::always(APP, Fault::Corrupt)]);
    let redirector = FaultyServer::start(fixture_repo(), vec![]);
    redirector.redirect_to(&[bad.url()]);
    let b = build(&redirector.url(), FAST);
    assert_failed(
        &b,
        &format!("{}x86_64/{APP}", redirector.url()),
        "every mirror failed",
    );
    assert!(
        b.run
            .stderr
            .contains(&format!("{}x86_64/{APP}: checksum mismatch", bad.url()))
    );
    assert_cache_sound(b.run.cache_dir());
}

#[test]
fn repository_mirrorlist_fails_over() {
    // baseurl points at a server that is gone; `mirrorlist=` (MirrorCache's `?mirrorlist`
    // JSON) names a working mirror.
    let gone = FaultyServer::start(fixture_repo(), vec![]);
    let gone_url = gone.url();
    gone.vanish();
    let good = FaultyServer::start(fixture_repo(), vec![]);
    let redirector = FaultyServer::start(fixture_repo(), vec![]);
    redirector.redirect_to(std::slice::from_ref(&good.url()));
    let repos = tempfile::tempdir().unwrap();
    std::fs::write(
        repos.path().join("fixtures.repo"),
        format!(
            "[fixtures]\nname=fixtures\nbaseurl={gone_url}\nmirrorlist={}?mirrorlist\nenabled=1\ngpgcheck=0\n",
            redirector.url()
        ),
    )
    .unwrap();
    let dir = repos.path().display().to_string();
    let b = build_in(
        fresh_cache(),
        "",
        &[("ELSX_HTTP_TIMEOUT", "2"), ("ELSX_HTTP_RETRIES", "0")],
        &["--repos-dir", &dir],
    );
    assert_same_image(&b);
    assert_eq!(redirector.log()[0].query, "mirrorlist");
    assert_eq!(good.log_for(".rpm").len(), 8);
    assert!(good.log_for("repomd.xml").len() == 1);
}

#[test]
fn repomd_is_revalidated_with_its_etag() {
    let cache = fresh_cache();
    let server = FaultyServer::start(fixture_repo(), vec![]);
    assert_same_image(&build_in(cache.clone(), &server.url(), FAST, &[]));
    let before = server.log().len();
    assert_same_image(&build_in(cache.clone(), &server.url(), FAST, &[]));
    let again: Vec<(String, u16)> = server.log()[before..]
        .iter()
        .map(|l| (l.path.clone(), l.status))
        .collect();
    assert_eq!(again, [("/repodata/repomd.xml".to_owned(), 304)]);
}

#[test]
fn offline_names_the_missing_file() {
    let cache = fresh_cache();
    let server = FaultyServer::start(fixture_repo(), vec![]);
    let url = server.url();
    assert_same_image(&build_in(cache.clone(), &url, FAST, &[]));
    drop(server);
    assert_same_image(&build_in(cache.clone(), &url, FAST, &["--offline"]));
    let entry = cache.path().join("rpms-v1").join(app_sha());
    std::fs::remove_file(&entry).unwrap();
    let b = build_in(cache.clone(), &url, FAST, &["--offline"]);
    assert_failed(
        &b,
        &format!("{url}x86_64/{APP}"),
        &entry.display().to_string(),
    );
    assert!(b.run.stderr.contains("--offline"), "{}", b.run);
}

#[test]
fn two_concurrent_builds_share_a_cache() {
    // Both builds run at once on one cache (each RPM's answer is held back a little so that
    // they overlap): both succeed with the same image, and the cache stays sound.
    let cache = fresh_cache();
    let server = FaultyServer::start(
        fixture_repo(),
        vec![Rule::new(
            ".rpm",
            Fault::Stall(Duration::from_millis(300)),
            16,
        )],
    );
    let url = server.url();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| build_in(cache.clone(), &url, FAST, &[]));
        let b = s.spawn(|| build_in(cache.clone(), &url, FAST, &[]));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_same_image(&a);
    assert_same_image(&b);
    // The partial-file lock lets one build wait for the other's download: no RPM is fetched
    // twice.
    let rpms = server.log_for(".rpm");
    assert_eq!(rpms.len(), 8, "{rpms:?}");
    assert_cache_sound(cache.path());
    assert!(dir_entries(&cache.path().join("partial-v1")).is_empty());
}

#[test]
fn download_only_fills_the_cache() {
    // `resolve --download-only`, like `zypper install --download-only`: the packages are in
    // the cache, verified, and a build from it needs no server.
    let server = FaultyServer::start(fixture_repo(), vec![Rule::new(APP, Fault::Unavailable, 1)]);
    let cache = fresh_cache();
    let mut args: Vec<String> = vec![
        "resolve".into(),
        "--repo".into(),
        format!("fixtures={}", server.url()),
        "--download-only".into(),
    ];
    for p in BASE.iter().chain(&["fixture-app"]) {
        args.extend(["--install".into(), p.to_string()]);
    }
    elsx_with_env(cache.clone(), &args, FAST).assert_success();
    assert!(cache.path().join("rpms-v1").join(app_sha()).is_file());
    assert_cache_sound(cache.path());
    let url = server.url();
    drop(server);
    assert_same_image(&build_in(cache, &url, FAST, &["--offline"]));
}

/// Over TLS the client offers HTTP/2 by ALPN and takes it when the server picks it. The server
/// is `openssl s_server`, which reports the negotiation but speaks no HTTP/2 itself, so the
/// transfer then fails (with the URL named): what is checked is the handshake.
#[test]
fn https_negotiates_http2() {
    require_tools(&["openssl"]);
    let dir = tempfile::tempdir().unwrap();
    let d = |f: &str| dir.path().join(f).display().to_string();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=elsx test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=keyCertSign",
        "-keyout",
        &d("ca.key"),
        "-out",
        &d("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        &d("leaf.key"),
        "-out",
        &d("leaf.csr"),
    ]);
    std::fs::write(
        d("ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-days",
        "1",
        "-in",
        &d("leaf.csr"),
        "-CA",
        &d("ca.pem"),
        "-CAkey",
        &d("ca.key"),
        "-CAcreateserial",
        "-extfile",
        &d("ext"),
        "-out",
        &d("leaf.pem"),
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = std::fs::File::create(d("server.log")).unwrap();
    // Line-buffered (stdbuf), so what s_server prints is in the log when it is killed.
    let mut server = std::process::Command::new("stdbuf")
        .args([
            "-oL",
            "openssl",
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
        ])
        .args([
            "-cert",
            &d("leaf.pem"),
            "-key",
            &d("leaf.key"),
            "-alpn",
            "h2",
            "-www",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    // s_server says ACCEPT once it listens (no probe connection: it would be logged). It keeps
    // accepting, so a stray connection from another test's retries (a port a vanished server
    // freed) cannot end it before elsx connects; it is killed below.
    for _ in 0..400 {
        if std::fs::read_to_string(d("server.log")).is_ok_and(|l| l.contains("ACCEPT")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let url = format!("https://127.0.0.1:{port}/");
    let run = elsx_with_env(
        fresh_cache(),
        [
            "resolve",
            "--repo",
            &format!("fixtures={url}"),
            "--install",
            "fixture-app",
        ],
        &[
            ("SSL_CERT_FILE", &d("ca.pem")),
            // s_server never answers in HTTP/2, so the run ends on this timeout; long enough
            // for the TLS handshake to finish on a loaded machine.
            ("ELSX_HTTP_TIMEOUT", "10"),
            ("ELSX_HTTP_RETRIES", "0"),
        ],
    );
    let _ = server.kill();
    let _ = server.wait();
    run.assert_code(2);
    assert!(run.stderr.contains(&url), "{run}");
    let said = std::fs::read_to_string(d("server.log")).unwrap();
    assert!(
        said.contains("ALPN protocols selected: h2"),
        "no HTTP/2 negotiated:\n{said}\n{run}"
    );
}
