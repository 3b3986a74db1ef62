//! End to end: bad input fails with a non-zero exit code and a message naming what is wrong,
//! and never leaves an image (or a temporary file) in the output directory.

mod support;

use std::path::{Path, PathBuf};
use support::*;

/// Runs `elsx build RECIPE -o OUT [--repo fixtures=URL] EXTRA...`.
fn build(recipe: &Path, out: &Path, url: Option<&str>, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "build".into(),
        recipe.display().to_string(),
        "-o".into(),
        out.display().to_string(),
    ];
    if let Some(u) = url {
        args.push("--repo".into());
        args.push(format!("fixtures={u}"));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    elsx(&args)
}

/// The output directory holds nothing: no image, no `.elsx-*.part`.
#[track_caller]
fn assert_no_output(out: &Path, run: &Run) {
    let left = dir_entries(out);
    assert!(
        left.is_empty(),
        "left in {}: {left:?}\n{run}",
        out.display()
    );
}

#[track_caller]
fn assert_mentions(run: &Run, what: &str) {
    assert!(
        run.stderr.contains(what),
        "stderr does not mention {what:?}\n{run}"
    );
}

/// stderr has exactly one `error:` line; stdout is empty (no half summary).
#[track_caller]
fn assert_one_error(run: &Run) {
    assert_eq!(
        run.stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .count(),
        1,
        "expected one error message\n{run}"
    );
    assert!(run.stdout.trim().is_empty(), "stdout on failure\n{run}");
}

fn out_dir(tmp: &Path) -> PathBuf {
    tmp.join("out")
}

#[test]
fn unknown_package() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "fxunknown",
        BASE,
        &["fixture-app", "no-such-package-xyz"],
        "",
    );
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, Some(&server.url()), &[]);
    run.assert_code(1);
    assert_mentions(&run, "no-such-package-xyz");
    assert_one_error(&run);
    assert_no_output(&out, &run);
    // Resolution failed: nothing was downloaded.
    assert!(
        !server.paths().iter().any(|p| p.ends_with(".rpm")),
        "{:?}",
        server.paths()
    );

    // In the base, too.
    let recipe = write_recipe(
        tmp.path(),
        "fxunknownbase",
        &["fixture-filesystem", "no-such-base-pkg"],
        &["fixture-data"],
        "",
    );
    let run = build(&recipe, &out, Some(&server.url()), &[]);
    run.assert_code(1);
    assert_mentions(&run, "no-such-base-pkg");
    assert_no_output(&out, &run);
}

#[test]
fn unresolvable_dependency() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fxbroken", BASE, &["fixture-broken"], "");
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, Some(&server.url()), &[]);
    run.assert_code(1);
    assert_mentions(&run, "does-not-exist");
    assert_mentions(&run, "fixture-broken");
    assert_one_error(&run);
    assert_no_output(&out, &run);

    // resolve says the same.
    let run = elsx([
        "resolve".as_ref(),
        recipe.as_os_str(),
        "--repo".as_ref(),
        format!("fixtures={}", server.url()).as_ref(),
    ]);
    run.assert_code(1);
    assert_mentions(&run, "does-not-exist");
    assert_mentions(&run, "fixture-broken");
}

#[test]
fn undefined_repository_alias() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("alias.toml");
    std::fs::write(
        &recipe,
        "[extension]\nname = \"alias\"\n\n[repos]\nuse = [\"no-such-repo-alias\"]\n\n[packages]\ninstall = [\"fixture-app\"]\n",
    )
    .unwrap();
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, None, &[]);
    run.assert_code(2);
    assert_mentions(&run, "no-such-repo-alias");
    assert_one_error(&run);
    assert_no_output(&out, &run);
}

#[test]
fn unreachable_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fxunreach", BASE, &["fixture-app"], "");
    let out = out_dir(tmp.path());
    let url = "http://127.0.0.1:1/";
    let run = build(&recipe, &out, Some(url), &[]);
    run.assert_code(2);
    assert_mentions(&run, url);
    assert_one_error(&run);
    assert_no_output(&out, &run);
}

#[test]
fn missing_repository_files() {
    // A server that answers 404 for everything (an empty directory).
    let empty = tempfile::tempdir().unwrap();
    let server = HttpServer::start(empty.path());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fx404", BASE, &["fixture-app"], "");
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, Some(&server.url()), &[]);
    run.assert_code(2);
    assert_mentions(&run, &format!("{}repodata/repomd.xml", server.url()));
    assert_mentions(&run, "404");
    assert_no_output(&out, &run);
}

#[test]
fn malformed_recipe() {
    let tmp = tempfile::tempdir().unwrap();
    let out = out_dir(tmp.path());
    // (text, line of the offending key, what the message must name)
    let cases: &[(&str, usize, &str)] = &[
        (
            "[extension]\nname = \"bad\"\n\n[repos]\nuse = [\"fixtures\"]\n\n[packages]\ninstall = [\"fixture-app\"]\nbogus-key = true\n",
            9,
            "bogus-key",
        ),
        (
            "# a comment\n[extension]\nname = \"bad\"\nflavour = \"x\"\n\n[packages]\ninstall = [\"fixture-app\"]\n",
            4,
            "flavour",
        ),
        (
            "[extension]\nname = \"bad\"\n\n[packages]\ninstall = [\"fixture-app\"]\n\n[surprise]\nx = 1\n",
            7,
            "surprise",
        ),
    ];
    for (i, (text, line, key)) in cases.iter().enumerate() {
        let recipe = tmp.path().join(format!("bad{i}.toml"));
        std::fs::write(&recipe, text).unwrap();
        let run = build(&recipe, &out, Some("http://127.0.0.1:1/"), &[]);
        run.assert_code(2);
        let at = format!("{}:{line}:", recipe.display());
        assert_mentions(&run, &at);
        assert_mentions(&run, key);
        assert_one_error(&run);
        assert_no_output(&out, &run);
    }

    // A TOML syntax error is located too.
    let recipe = tmp.path().join("syntax.toml");
    std::fs::write(
        &recipe,
        "[extension]\nname = \"bad\"\n\n[packages\ninstall = []\n",
    )
    .unwrap();
    let run = build(&recipe, &out, None, &[]);
    run.assert_code(2);
    assert_mentions(&run, &format!("{}:4:", recipe.display()));
    assert_no_output(&out, &run);
}

#[test]
fn missing_recipe_file() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = tmp.path().join("does-not-exist.toml");
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, Some("http://127.0.0.1:1/"), &[]);
    run.assert_code(2);
    assert_mentions(&run, &recipe.display().to_string());
    assert_one_error(&run);
    assert_no_output(&out, &run);
}

#[test]
fn corrupted_rpm_fails_the_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    copy_tree(fixture_repo(), &repo);
    let victim = rpm_in(&repo, "fixture-app-1.0-1.x86_64.rpm");
    let good = sha256_file(&victim);
    // Same size, other bytes (in the payload, past the header).
    let mut bytes = std::fs::read(&victim).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 64..n - 32] {
        *b ^= 0x5a;
    }
    std::fs::write(&victim, &bytes).unwrap();
    let bad = sha256_file(&victim);
    assert_ne!(good, bad);

    let server = HttpServer::start(&repo);
    let recipe = write_recipe(tmp.path(), "fxcorrupt", BASE, &["fixture-app"], "");
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, Some(&server.url()), &[]);
    run.assert_code(2);
    assert_mentions(&run, "checksum mismatch");
    let url = format!("{}x86_64/fixture-app-1.0-1.x86_64.rpm", server.url());
    assert_mentions(&run, &url);
    assert_mentions(&run, &good);
    assert_one_error(&run);
    assert_no_output(&out, &run);
    assert!(
        server
            .fetched()
            .contains(&"/x86_64/fixture-app-1.0-1.x86_64.rpm".to_owned()),
        "{:?}",
        server.paths()
    );

    // Nothing of it in the cache: neither under its expected name nor any other, and no
    // temporary file.
    let rpms = run.cache_dir().join("rpms-v1");
    for name in dir_entries(&rpms) {
        assert!(
            !name.contains(&good) && !name.contains(&bad),
            "cached: {name}"
        );
        assert!(!name.starts_with(".part"), "temporary file left: {name}");
        assert_ne!(
            sha256_file(&rpms.join(&name)),
            bad,
            "the corrupted RPM was cached as {name}"
        );
    }

    // A second run with the same cache fails the same way (nothing poisoned).
    let run2 = elsx_with_cache(
        run.cache.clone(),
        [
            "build".as_ref(),
            recipe.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--repo".as_ref(),
            format!("fixtures={}", server.url()).as_ref(),
        ],
    );
    run2.assert_code(2);
    assert_mentions(&run2, "checksum mismatch");
    assert_no_output(&out, &run2);
}

#[test]
fn error_causes_are_not_repeated() {
    // The "caused by:" lines must add something: a cause already printed in full in the
    // error line (or in an earlier cause) is noise.
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fxrepeat", BASE, &["fixture-app"], "");
    let out = out_dir(tmp.path());
    let run = build(&recipe, &out, Some("http://127.0.0.1:1/"), &[]);
    run.assert_code(2);
    let mut seen: Vec<&str> = Vec::new();
    for line in run.stderr.lines() {
        if let Some(cause) = line.trim_start().strip_prefix("caused by: ") {
            assert!(
                !seen.iter().any(|s| s.contains(cause)),
                "cause {cause:?} repeats what was already said\n{run}"
            );
            seen.push(line);
        } else if line.starts_with("error: ") {
            seen.push(line);
        }
    }
}
