//! Resolver cases as data: each `tests/scenarios/*.toml` declares packages, a request and the
//! expected answer (`expect`: the install set, or `problem`: words the explanation must hold).
//! The packages become real RPMs (rpmbuild) in an rpm-md repository (createrepo_c, via
//! scripts/mkrepo.sh); elsx resolves it and so does libsolv's `testsolv` on the same metadata,
//! and both must give the expected answer.

mod support;

use elsx::compress::Codec;
use elsx::repo::{primary, repomd};
use elsx::resolve::{Pool, Request, dep::Dep};
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Scenario {
    install: Vec<String>,
    #[serde(default)]
    recommends: bool,
    #[serde(default)]
    expect: Option<Vec<String>>,
    #[serde(default)]
    problem: Option<Vec<String>>,
    package: Vec<Pkg>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Pkg {
    name: String,
    #[serde(default)]
    epoch: Option<u32>,
    #[serde(default = "one_zero")]
    version: String,
    #[serde(default = "one")]
    release: String,
    #[serde(default)]
    requires: Vec<String>,
    #[serde(default)]
    provides: Vec<String>,
    #[serde(default)]
    conflicts: Vec<String>,
    #[serde(default)]
    obsoletes: Vec<String>,
    #[serde(default)]
    recommends: Vec<String>,
    #[serde(default)]
    supplements: Vec<String>,
}

fn one_zero() -> String {
    "1.0".into()
}
fn one() -> String {
    "1".into()
}

fn spec(p: &Pkg) -> String {
    let mut s = format!(
        "Name: {}\nVersion: {}\nRelease: {}\nSummary: scenario package\nLicense: MIT\nBuildArch: noarch\n",
        p.name, p.version, p.release
    );
    if let Some(e) = p.epoch {
        s.push_str(&format!("Epoch: {e}\n"));
    }
    for (tag, list) in [
        ("Requires", &p.requires),
        ("Provides", &p.provides),
        ("Conflicts", &p.conflicts),
        ("Obsoletes", &p.obsoletes),
        ("Recommends", &p.recommends),
        ("Supplements", &p.supplements),
    ] {
        for d in list {
            s.push_str(&format!("{tag}: {d}\n"));
        }
    }
    s.push_str("\n%description\nscenario package\n\n%files\n");
    s
}

fn primary_xml(repo: &Path) -> Vec<u8> {
    let md = repomd::parse(
        &std::fs::read(repo.join("repodata/repomd.xml")).unwrap(),
        "repomd.xml",
    )
    .unwrap();
    let prim = md.find("primary").unwrap();
    let raw = std::fs::read(repo.join(&prim.href)).unwrap();
    Codec::from_file_name(&prim.href).decode_all(&raw).unwrap()
}

fn nevra(p: &primary::Package) -> String {
    let mut s = format!("{}-", p.name);
    if let Some(e) = p.evr.epoch.filter(|&e| e != 0) {
        s.push_str(&format!("{e}:"));
    }
    s.push_str(&p.evr.version);
    if let Some(r) = &p.evr.release {
        s.push_str(&format!("-{r}"));
    }
    format!("{s}.{}", p.arch)
}

/// testsolv's answer: the install set, or `None` when it reports a problem.
fn testsolv(xml: &[u8], sc: &Scenario, dir: &Path) -> Option<BTreeSet<String>> {
    let solv = dir.join("repo.solv");
    support::rpmmd2solv(xml, &solv);
    let mut t = String::from("repo scenario 99 solv repo.solv\nsystem x86_64 rpm\n");
    if !sc.recommends {
        t.push_str("solverflags ignorerecommended\n");
    }
    for j in &sc.install {
        t.push_str(&format!("job install name {j}\n"));
    }
    t.push_str("result transaction,problems <inline>\n");
    std::fs::write(dir.join("case.t"), t).unwrap();
    let out = Command::new("testsolv")
        .arg(dir.join("case.t"))
        .output()
        .expect("running testsolv");
    let text = String::from_utf8(out.stdout).unwrap();
    if text.lines().any(|l| l.starts_with("+problem ")) {
        return None;
    }
    Some(
        text.lines()
            .filter_map(|l| l.strip_prefix("+install "))
            .map(|l| l.rsplit_once('@').map_or(l, |(n, _)| n).to_owned())
            .collect(),
    )
}

#[test]
fn scenarios() {
    support::require_tools(&["rpmbuild", "createrepo_c", "testsolv", "rpmmd2solv"]);
    let dir = support::manifest_dir().join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for file in files {
        let label = file.file_name().unwrap().to_string_lossy().into_owned();
        let sc: Scenario = toml::from_str(&std::fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let tmp = tempfile::tempdir().unwrap();
        let specs = tmp.path().join("specs");
        std::fs::create_dir_all(&specs).unwrap();
        for p in &sc.package {
            std::fs::write(
                specs.join(format!("{}-{}.spec", p.name, p.version)),
                spec(p),
            )
            .unwrap();
        }
        let repo = tmp.path().join("repo");
        support::run_tool(
            Command::new("bash")
                .arg(support::manifest_dir().join("scripts/mkrepo.sh"))
                .arg(&specs)
                .arg(&repo)
                .env("SOURCE_DATE_EPOCH", "1700000000"),
        );
        let xml = primary_xml(&repo);
        let pool = Pool::new(
            vec![(
                "scenario".into(),
                99,
                primary::parse(&xml, "primary.xml").unwrap(),
            )],
            "x86_64",
        );
        let ours = pool.solve(&Request {
            install: sc.install.iter().map(|n| Dep::name(n)).collect(),
            installed: vec![],
            recommends: sc.recommends,
        });
        let theirs = testsolv(&xml, &sc, tmp.path());
        match (&sc.expect, &sc.problem) {
            (Some(want), None) => {
                let want: BTreeSet<String> = want.iter().cloned().collect();
                let got: BTreeSet<String> = ours
                    .unwrap_or_else(|p| panic!("{label}: unsolvable: {p:?}"))
                    .iter()
                    .map(|&i| nevra(&pool.get(i).pkg))
                    .collect();
                assert_eq!(got, want, "{label}: elsx");
                assert_eq!(theirs.as_ref(), Some(&want), "{label}: testsolv");
            }
            (None, Some(words)) => {
                let problems = match ours {
                    Ok(set) => panic!("{label}: solvable for elsx: {set:?}"),
                    Err(p) => p.iter().map(|p| p.0.clone()).collect::<Vec<_>>().join("\n"),
                };
                for w in words {
                    assert!(
                        problems.contains(w.as_str()),
                        "{label}: {w:?} not in {problems}"
                    );
                }
                assert_eq!(theirs, None, "{label}: testsolv solved it");
            }
            _ => panic!("{label}: give either `expect` or `problem`"),
        }
    }
}
