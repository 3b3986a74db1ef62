//! Differential test of the resolver against libsolv's `testsolv` (what zypper uses) on the
//! same metadata: the 63,440 Debian 12 packages converted to rpm-md in ../shared/data.
//!
//! Gated by `ELSX_DATA` (scripts/test.sh sets it to ../shared/data): without it the test says
//! so and does nothing; with it set to a folder without the data it fails. The metadata is
//! converted with `rpmmd2solv`, every job goes into one testcase (`nextjob` sections, `system
//! x86_64 rpm`), and the install sets must be identical. The jobs are the big desktop and office
//! sets plus package names picked at a fixed stride over the sorted names, each once without
//! weak dependencies (`solverflags ignorerecommended`, `Request::recommends` off) and once with
//! them (libsolv's default, `--recommends`); `ELSX_DIFF_JOBS` sets how many names (default 8
//! in a debug build, 400 in a release build: `cargo test --release --test resolve_diff --
//! --nocapture` prints the agreement rate of each half).

mod support;

use elsx::compress::Codec;
use elsx::repo::{primary, repomd};
use elsx::resolve::{Kind, Pool, Request, dep::Dep};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

const BIG: &[&str] = &["gnome-core", "kde-full", "libreoffice", "texlive-full"];

/// Jobs where elsx may still pick other alternatives than libsolv (` (recommends)` marks a job
/// with weak dependencies). kde-full used to be one: libsolv takes pulseaudio over
/// pipewire-pulse and cron over anacron/bcron because of `prefer_suggested` in policy.c
/// (candidates that a package decided for installation suggests, or that enhance one, go first:
/// libpulse0 suggests pulseaudio, adduser suggests cron), which needs primary's
/// `<rpm:suggests>` and `<rpm:enhances>`.
///
/// Three jobs with weak dependencies (kiwi-dracut-live, linux-image-6.1.0-47-amd64-unsigned,
/// multimedia-jack) used to be here: the order of a package's recommends decides between
/// alternatives that conflict (jackd1 or jackd2, systemd or libelogind0), and libsolv walks
/// them in its `.solv` file's order (`resolve::solvorder`), which elsx now follows.
const KNOWN_DIFFERENT: &[&str] = &[];

fn data() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("ELSX_DATA") else {
        eprintln!("SKIPPED: ELSX_DATA is not set (scripts/test.sh sets it to ../shared/data)");
        return None;
    };
    let dir = PathBuf::from(dir).join("debian-bookworm-rpmmd");
    assert!(
        dir.join("repodata/repomd.xml").is_file(),
        "ELSX_DATA: {} has no repodata/repomd.xml",
        dir.display()
    );
    Some(dir)
}

/// The decompressed primary.xml of a repository.
fn primary_xml(repo: &Path) -> Vec<u8> {
    let md_path = repo.join("repodata/repomd.xml");
    let md = repomd::parse(&std::fs::read(&md_path).unwrap(), "repomd.xml").unwrap();
    let prim = md.find("primary").expect("primary listed");
    let raw = std::fs::read(repo.join(&prim.href)).unwrap();
    Codec::from_file_name(&prim.href).decode_all(&raw).unwrap()
}

fn nevra(p: &primary::Package) -> String {
    let e = p.evr.epoch.filter(|&e| e != 0);
    let mut s = format!("{}-", p.name);
    if let Some(e) = e {
        s.push_str(&format!("{e}:"));
    }
    s.push_str(&p.evr.version);
    if let Some(r) = &p.evr.release {
        s.push_str(&format!("-{r}"));
    }
    format!("{s}.{}", p.arch)
}

/// What one solver said about one job: the packages to install, or that it is unsolvable.
#[derive(Debug, PartialEq)]
enum Answer {
    Install(BTreeSet<String>),
    Unsolvable,
}

/// Runs every job through testsolv in one testcase; answers in job order.
fn testsolv(solv: &Path, jobs: &[(String, bool)], dir: &Path) -> Vec<Answer> {
    let mut t = String::new();
    for (i, (name, recommends)) in jobs.iter().enumerate() {
        if i == 0 {
            t.push_str(&format!(
                "repo debian 99 solv {}\n",
                solv.file_name().unwrap().to_string_lossy()
            ));
            t.push_str("system x86_64 rpm\n");
        } else {
            t.push_str("nextjob\n");
        }
        if !recommends {
            t.push_str("solverflags ignorerecommended\n");
        }
        t.push_str(&format!(
            "job install name {name}\nresult transaction,problems <inline>\n"
        ));
    }
    let path = dir.join("jobs.t");
    std::fs::write(&path, t).unwrap();
    // testsolv exits 1 when a result differs from the (empty) expected one
    let out = Command::new("testsolv")
        .arg(&path)
        .output()
        .expect("running testsolv");
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "testsolv failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut answers: Vec<Answer> = Vec::new();
    let mut cur: Option<Answer> = None;
    let single = jobs.len() == 1;
    for line in text.lines() {
        if line.starts_with("test ") || (single && line == "Results differ:" && cur.is_none()) {
            answers.extend(cur.take());
            cur = Some(Answer::Install(BTreeSet::new()));
        } else if let Some(rest) = line.strip_prefix("+install ") {
            let nevra = rest.rsplit_once('@').map_or(rest, |(n, _)| n);
            if let Some(Answer::Install(set)) = cur.as_mut() {
                set.insert(nevra.to_owned());
            }
        } else if line.starts_with("+problem ") {
            cur = Some(Answer::Unsolvable);
        }
    }
    answers.extend(cur);
    assert_eq!(
        answers.len(),
        jobs.len(),
        "testsolv answered {} of {} jobs:\n{text}",
        answers.len(),
        jobs.len()
    );
    answers
}

/// primary.xml converted by `rpmmd2solv` into `dir/debian.solv`.
fn to_solv(xml: &[u8], dir: &Path) -> PathBuf {
    let solv = dir.join("debian.solv");
    support::rpmmd2solv(xml, &solv);
    solv
}

/// How `dumpsolv` prints a dependency: an or-list `(a or b)` as `a | b`, `<` and `>` as `<<`
/// and `>>`.
fn libsolv_text(dep: &str) -> String {
    let dep = dep.replace(" < ", " << ").replace(" > ", " >> ");
    match dep.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        Some(inner) if !inner.contains(['(', ')']) && inner.contains(" or ") => {
            inner.replace(" or ", " | ")
        }
        _ => dep,
    }
}

/// Every package's recommends in the order libsolv tries them: the order `dumpsolv` lists
/// them in from the `.solv` file that `rpmmd2solv` wrote.
#[test]
fn recommends_in_libsolv_order_on_debian() {
    let Some(repo) = data() else { return };
    support::require_tools(&["dumpsolv", "rpmmd2solv"]);
    let xml = primary_xml(&repo);
    let tmp = tempfile::tempdir().unwrap();
    let solv = to_solv(&xml, tmp.path());
    let out = Command::new("dumpsolv")
        .arg(&solv)
        .output()
        .expect("running dumpsolv");
    assert!(out.status.success(), "dumpsolv failed");
    // name-evr.arch -> recommends, as dumpsolv prints them
    let text = String::from_utf8(out.stdout).unwrap();
    let mut theirs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let (mut name, mut arch, mut evr) = (String::new(), String::new(), String::new());
    // a solvable's name, arch and evr come before its dependencies
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if let Some(v) = line.strip_prefix("solvable:name: ") {
            name = v.to_owned();
        } else if let Some(v) = line.strip_prefix("solvable:arch: ") {
            arch = v.to_owned();
        } else if let Some(v) = line.strip_prefix("solvable:evr: ") {
            evr = v.to_owned();
        } else if line == "solvable:recommends:" {
            let mut v = Vec::new();
            while let Some(dep) = lines.peek().and_then(|l| l.strip_prefix("  ")) {
                v.push(dep.to_owned());
                lines.next();
            }
            theirs.insert(format!("{name}-{evr}.{arch}"), v);
        }
    }
    let pkgs = primary::parse(&xml, "primary.xml").unwrap();
    let pool = Pool::new(vec![("debian".into(), 99, pkgs)], "x86_64");
    let d = pool.data();
    let (mut checked, mut wrong) = (0, Vec::new());
    for p in 0..pool.len() {
        let ours: Vec<String> = d
            .deps(p, Kind::Recommends)
            .iter()
            .map(|&x| libsolv_text(&d.dep(x).to_string()))
            .collect();
        if ours.len() < 2 {
            continue;
        }
        checked += 1;
        let key = format!("{}-{}.{}", d.name(p), d.evr(p), d.arch(p));
        if theirs.get(&key) != Some(&ours) {
            wrong.push(format!(
                "{key}: ours {ours:?}, libsolv {:?}",
                theirs.get(&key)
            ));
        }
    }
    eprintln!(
        "resolve_diff: {checked} packages with two or more recommends, {} in another order",
        wrong.len()
    );
    assert!(checked > 1000, "only {checked} packages checked");
    assert!(
        wrong.is_empty(),
        "{} differ, first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
}

/// The jobs: the big sets, then names at a fixed stride over the sorted package names.
fn pick_jobs(pool: &Pool, count: usize) -> Vec<String> {
    let names: BTreeSet<&str> = (0..pool.len()).map(|p| pool.name(p)).collect();
    let names: Vec<&str> = names.into_iter().collect();
    let stride = (names.len() / count.max(1)).max(1);
    let mut jobs: Vec<String> = BIG.iter().map(|s| s.to_string()).collect();
    jobs.extend(
        names
            .iter()
            .step_by(stride)
            .take(count)
            .map(|s| s.to_string()),
    );
    jobs
}

#[test]
fn agrees_with_testsolv_on_debian() {
    let Some(repo) = data() else { return };
    support::require_tools(&["testsolv", "rpmmd2solv"]);
    let count: usize = std::env::var("ELSX_DIFF_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) { 8 } else { 400 });
    let xml = primary_xml(&repo);
    let tmp = tempfile::tempdir().unwrap();
    let solv = to_solv(&xml, tmp.path());

    let t0 = std::time::Instant::now();
    let pkgs = primary::parse(&xml, "primary.xml").unwrap();
    eprintln!("resolve_diff: primary parsed in {:?}", t0.elapsed());
    let pool = Pool::new(vec![("debian".into(), 99, pkgs)], "x86_64");
    let names = pick_jobs(&pool, count);
    let jobs: Vec<(String, bool)> = [false, true]
        .iter()
        .flat_map(|&rec| names.iter().map(move |n| (n.clone(), rec)))
        .collect();

    let t0 = std::time::Instant::now();
    let theirs = testsolv(&solv, &jobs, tmp.path());
    eprintln!("resolve_diff: testsolv answered in {:?}", t0.elapsed());
    let t0 = std::time::Instant::now();
    // jobs agreeing, without and with weak dependencies
    let mut agree = [0usize; 2];
    let mut differ: BTreeMap<String, String> = BTreeMap::new();
    for ((name, recommends), want) in jobs.iter().zip(&theirs) {
        let got = match pool.solve(&Request {
            install: vec![Dep::name(name)],
            installed: vec![],
            recommends: *recommends,
        }) {
            Ok(set) => Answer::Install(set.iter().map(|&i| nevra(&pool.get(i).pkg)).collect()),
            Err(_) => Answer::Unsolvable,
        };
        if &got == want {
            agree[usize::from(*recommends)] += 1;
            continue;
        }
        let what = match (&got, want) {
            (Answer::Install(a), Answer::Install(b)) => format!(
                "elsx only: {:?}; testsolv only: {:?}",
                a.difference(b).collect::<Vec<_>>(),
                b.difference(a).collect::<Vec<_>>()
            ),
            _ => format!("elsx: {got:?}; testsolv: {want:?}"),
        };
        let key = format!("{name}{}", if *recommends { " (recommends)" } else { "" });
        differ.insert(key, what);
    }
    eprintln!("resolve_diff: elsx answered in {:?}", t0.elapsed());
    for (half, what) in ["without", "with"].iter().enumerate() {
        eprintln!(
            "resolve_diff: {} of {} jobs {what} recommends agree with testsolv ({:.1}%)",
            agree[half],
            names.len(),
            100.0 * agree[half] as f64 / names.len() as f64
        );
    }
    for (k, v) in &differ {
        eprintln!("  {k}: {v}");
    }
    let unexpected: Vec<&String> = differ
        .keys()
        .filter(|k| !KNOWN_DIFFERENT.contains(&k.as_str()))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} jobs differ from testsolv: {unexpected:?}",
        unexpected.len()
    );
}
