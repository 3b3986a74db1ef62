//! Per-stage figures of a build (`--json` always, `--timings` on a terminal's stderr): every
//! stage is there, in pipeline order, with items, bytes and cache hits that match what the build
//! did. Times are never asserted.

mod support;

use serde_json::Value;
use std::path::Path;
use std::sync::Arc;
use support::*;

const STAGES: [&str; 7] = [
    "metadata", "resolve", "fetch", "unpack", "diff", "write", "package",
];

fn recipe(dir: &Path, name: &str, output: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(
        &p,
        format!(
            r#"[extension]
name = "{name}"

[repos]
use = ["fixtures"]

[base]
packages = ["fixture-filesystem", "fixture-release", "fixture-libbase1", "fixture-shell", "fixture-base-shared"]

[packages]
install = ["fixture-app"]

[output]
{output}
"#
        ),
    )
    .unwrap();
    p
}

fn build(
    cache: Arc<tempfile::TempDir>,
    recipe: &Path,
    out: &Path,
    url: &str,
    extra: &[&str],
) -> Run {
    let mut args = vec![
        "build".to_owned(),
        recipe.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--repo".into(),
        format!("fixtures={url}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = elsx_with_cache(cache, &args);
    run.assert_success();
    run
}

/// The stage rows of a `--json` summary, by name, after checking their names and order.
fn stages<'a>(j: &'a Value, run: &Run) -> Vec<(&'a str, &'a Value)> {
    let rows: Vec<(&str, &Value)> = j["timings"]
        .as_array()
        .unwrap_or_else(|| panic!("no timings list\n{run}"))
        .iter()
        .map(|t| (t["stage"].as_str().unwrap(), t))
        .collect();
    let names: Vec<&str> = rows.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, STAGES, "{run}");
    for (name, t) in &rows {
        for field in ["seconds", "items", "bytes", "cached"] {
            assert!(t[field].is_number(), "{name}.{field} missing\n{run}");
        }
    }
    rows
}

fn field(rows: &[(&str, &Value)], stage: &str, f: &str) -> u64 {
    let t = rows.iter().find(|(n, _)| *n == stage).unwrap().1;
    t[f].as_u64()
        .unwrap_or_else(|| panic!("{stage}.{f} is not a count: {t}"))
}

/// Packages of the summary as `NAME-V-R.ARCH.rpm` file names.
fn rpm_files(j: &Value) -> Vec<String> {
    ["base", "extension"]
        .iter()
        .flat_map(|k| j["packages"][k].as_array().unwrap())
        .map(|p| {
            format!(
                "{}-{}-{}.{}.rpm",
                p["name"].as_str().unwrap(),
                p["version"].as_str().unwrap(),
                p["release"].as_str().unwrap(),
                p["arch"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn every_stage_counts_what_it_did() {
    let repo = fixture_repo();
    let server = HttpServer::start(repo);
    let tmp = tempfile::tempdir().unwrap();
    let cache = Arc::new(tempfile::tempdir().unwrap());
    let r = recipe(tmp.path(), "fxtimings", "");
    let out = tmp.path().join("out");

    // Cold: everything is downloaded.
    let run = build(cache.clone(), &r, &out, &server.url(), &["--json"]);
    let j = run.json();
    let rows = stages(&j, &run);
    let in_repo = walkdir::WalkDir::new(repo)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "rpm"))
        .count() as u64;
    assert_eq!(field(&rows, "metadata", "items"), in_repo, "{run}");
    let files = rpm_files(&j);
    let n = files.len() as u64;
    assert!(n >= 6, "{run}");
    assert_eq!(field(&rows, "resolve", "items"), n, "{run}");
    let rpm_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(rpm_in(repo, f)).unwrap().len())
        .sum();
    assert_eq!(field(&rows, "fetch", "items"), n, "{run}");
    assert_eq!(field(&rows, "fetch", "bytes"), rpm_bytes, "{run}");
    assert_eq!(field(&rows, "fetch", "cached"), 0, "{run}");
    let got = server
        .fetched()
        .iter()
        .filter(|p| p.ends_with(".rpm"))
        .count() as u64;
    assert_eq!(got, n, "{run}");
    assert_eq!(field(&rows, "unpack", "items"), n, "{run}");
    // The image holds a part of what was unpacked, plus its extension-release.
    let unpacked = field(&rows, "unpack", "bytes");
    let content = field(&rows, "diff", "bytes");
    let release = j["extension_release"].as_str().unwrap().len() as u64;
    assert!(content > release && content - release <= unpacked, "{run}");
    let entries = j["files"].as_u64().unwrap() + j["directories"].as_u64().unwrap();
    assert_eq!(field(&rows, "diff", "items"), entries, "{run}");
    // Write counts the blocks it compressed; a cold cache served none.
    assert!(field(&rows, "write", "items") >= 1, "{run}");
    assert_eq!(field(&rows, "write", "cached"), 0, "{run}");
    let image = j["bytes"].as_u64().unwrap();
    let fs = field(&rows, "write", "bytes");
    assert!(fs > 0 && fs <= image, "{run}");
    // A bare file system: one item, the image file itself.
    assert_eq!(field(&rows, "package", "items"), 1, "{run}");
    assert_eq!(field(&rows, "package", "bytes"), image, "{run}");
    assert_eq!(
        image,
        std::fs::metadata(out.join("fxtimings.raw")).unwrap().len()
    );

    // Warm, as a disk image with verity: every package from the cache, two partitions.
    let r = recipe(tmp.path(), "fxtimings-ddi", "ddi = true\nverity = \"hash\"");
    let run = build(cache, &r, &out, &server.url(), &["--json"]);
    let j = run.json();
    let rows = stages(&j, &run);
    assert_eq!(field(&rows, "fetch", "items"), n, "{run}");
    assert_eq!(field(&rows, "fetch", "cached"), n, "{run}");
    assert_eq!(
        server
            .fetched()
            .iter()
            .filter(|p| p.ends_with(".rpm"))
            .count() as u64,
        n,
        "the warm build downloaded packages again\n{run}"
    );
    assert_eq!(field(&rows, "package", "items"), 2, "{run}");
    let image = j["bytes"].as_u64().unwrap();
    assert_eq!(field(&rows, "package", "bytes"), image, "{run}");
    assert!(field(&rows, "write", "bytes") < image, "{run}");
    assert!(
        field(&rows, "write", "cached") <= field(&rows, "write", "items"),
        "{run}"
    );
}

/// The `--timings` table on stderr: a header, every stage in order, a total.
#[track_caller]
fn assert_table(run: &Run) {
    let lines: Vec<&str> = run.stderr.lines().collect();
    let head = lines
        .iter()
        .position(|l| {
            l.split_whitespace().collect::<Vec<_>>()
                == ["stage", "seconds", "items", "bytes", "cached"]
        })
        .unwrap_or_else(|| panic!("no timings table on stderr\n{run}"));
    let names: Vec<&str> = lines[head + 1..]
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    let mut want: Vec<&str> = STAGES.to_vec();
    want.push("total");
    assert_eq!(names, want, "{run}");
}

#[test]
fn timings_table_on_stderr() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let r = recipe(tmp.path(), "fxtable", "");
    let out = tmp.path().join("out");
    let run = build(
        Arc::new(tempfile::tempdir().unwrap()),
        &r,
        &out,
        &server.url(),
        &["--timings"],
    );
    assert!(run.stdout.contains("wrote "), "{run}");
    assert_table(&run);
    // With --json the table is still on stderr and stdout stays JSON.
    let run = build(
        Arc::new(tempfile::tempdir().unwrap()),
        &r,
        &out,
        &server.url(),
        &["--json", "--timings"],
    );
    stages(&run.json(), &run);
    assert_table(&run);
    // Without --timings there is no table.
    let run = build(
        Arc::new(tempfile::tempdir().unwrap()),
        &r,
        &out,
        &server.url(),
        &[],
    );
    assert!(!run.stderr.contains("seconds"), "{run}");
}
