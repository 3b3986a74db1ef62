//! End to end: `elsx build` and `elsx resolve` against the fixture repository (built from
//! tests/fixtures/specs with scripts/mkrepo.sh), served over HTTP by a local server or read
//! through file://; images checked with unsquashfs, systemd-dissect and rpm2cpio.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use support::*;

/// fixture-app on the five base packages, with a version and a scope.
fn app_recipe_text(name: &str) -> String {
    format!(
        r#"# fixture-app on top of the fixture base
[extension]
name = "{name}"
version = "1.2.3"
scope = ["system", "portable"]

[repos]
use = ["fixtures"]

[base]
packages = ["fixture-filesystem", "fixture-release", "fixture-libbase1", "fixture-shell", "fixture-base-shared"]

[packages]
install = ["fixture-app"]
"#
    )
}

fn write_app_recipe(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, app_recipe_text(name)).unwrap();
    p
}

fn repo_arg(url: &str) -> String {
    format!("fixtures={url}")
}

/// Builds `recipe` into `out` with `--repo fixtures=URL` and extra args; must succeed.
fn build_ok(recipe: &Path, out: &Path, url: &str, extra: &[&str]) -> Run {
    let mut args: Vec<String> = vec![
        "build".into(),
        recipe.display().to_string(),
        "-o".into(),
        out.display().to_string(),
        "--repo".into(),
        repo_arg(url),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let run = elsx(&args);
    run.assert_success();
    run
}

/// Non-directory paths of a listing.
fn non_dirs(list: &BTreeMap<String, Listed>) -> BTreeSet<String> {
    list.iter()
        .filter(|(_, e)| !e.is_dir())
        .map(|(p, _)| p.clone())
        .collect()
}

/// Extracts every RPM into one directory (later ones over earlier ones, like an install).
fn rpm_union(rpms: &[&str], dest: &Path) -> BTreeMap<String, Node> {
    for r in rpms {
        rpm_extract(&fixture_rpm(r), dest);
    }
    read_tree(dest)
}

const APP_RPMS: &[&str] = &[
    "fixture-app-1.0-1.x86_64.rpm",
    "fixture-libext1-1.0-1.x86_64.rpm",
    "fixture-data-2.1-1.noarch.rpm",
];

const BASE_RPMS: &[&str] = &[
    "fixture-filesystem-1.0-1.noarch.rpm",
    "fixture-release-42-1.noarch.rpm",
    "fixture-libbase1-1.0-1.x86_64.rpm",
    "fixture-shell-1.0-1.noarch.rpm",
    "fixture-base-shared-1.0-1.noarch.rpm",
];

#[test]
fn base_and_extension_over_http() {
    let repo = fixture_repo();
    let server = HttpServer::start(repo);
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxapp");
    let out = tmp.path().join("images");
    let run = build_ok(&recipe, &out, &server.url(), &[]);

    // The image, and nothing else, in the output directory.
    let image = out.join("fxapp.raw");
    assert!(image.is_file(), "no {}\n{run}", image.display());
    assert_eq!(dir_entries(&out), ["fxapp.raw"], "{run}");
    assert!(
        run.stdout.contains(&image.display().to_string()),
        "the summary names the image\n{run}"
    );

    // The exact file set, modes, owners and link targets.
    let list = list_image(&image);
    let er = "usr/lib/extension-release.d/extension-release.fxapp";
    let expected: BTreeMap<&str, (&str, Option<&str>)> = [
        ("", ("drwxr-xr-x", None)),
        ("opt", ("drwxr-xr-x", None)),
        ("opt/fixture-app", ("drwxr-xr-x", None)),
        ("opt/fixture-app/README", ("-rw-r--r--", None)),
        ("usr", ("drwxr-xr-x", None)),
        ("usr/bin", ("drwxr-xr-x", None)),
        ("usr/bin/fixture-app", ("-rwxr-xr-x", None)),
        ("usr/bin/fxa", ("lrwxrwxrwx", Some("fixture-app"))),
        ("usr/lib", ("drwxr-xr-x", None)),
        ("usr/lib/extension-release.d", ("drwxr-xr-x", None)),
        (er, ("-rw-r--r--", None)),
        ("usr/lib64", ("drwxr-xr-x", None)),
        (
            "usr/lib64/libfxext.so.1",
            ("lrwxrwxrwx", Some("libfxext.so.1.0")),
        ),
        ("usr/lib64/libfxext.so.1.0", ("-rwxr-xr-x", None)),
        ("usr/share", ("drwxr-xr-x", None)),
        ("usr/share/fixture-data", ("drwxr-xr-x", None)),
        ("usr/share/fixture-data/data.txt", ("-rw-r--r--", None)),
    ]
    .into_iter()
    .collect();
    let got: BTreeMap<&str, (&str, Option<&str>)> = list
        .iter()
        .map(|(p, e)| (p.as_str(), (e.mode.as_str(), e.target.as_deref())))
        .collect();
    assert_eq!(got, expected, "unsquashfs -lls {}", image.display());
    for (p, e) in &list {
        assert_eq!(e.owner, "root/root", "{p}: {e:?}");
    }
    assert_only_usr_and_opt(&list);
    assert_eq!(list["usr/share/fixture-data/data.txt"].size, "17"); // "fixture-data 2.1\n"

    // No file of the base packages.
    let base_dir = tmp.path().join("base-rpms");
    let base = rpm_union(BASE_RPMS, &base_dir);
    for (p, n) in &base {
        if !matches!(n, Node::Dir { .. }) {
            assert!(!list.contains_key(p), "base file {p} is in the image");
        }
    }

    // Contents: extract the image and compare with rpm2cpio | cpio -idm of the extension RPMs.
    let root = tmp.path().join("root");
    extract_image(&image, &root);
    let img = read_tree(&root);
    let ext = rpm_union(APP_RPMS, &tmp.path().join("ext-rpms"));
    let mut compared = 0;
    for (p, n) in &ext {
        let in_sysext = p.starts_with("usr/") || p.starts_with("opt/");
        match n {
            Node::Dir { .. } if in_sysext => {
                assert!(
                    matches!(img.get(p), Some(Node::Dir { .. })),
                    "{p}: directory missing"
                );
            }
            Node::Dir { .. } => {}
            _ if in_sysext => {
                assert_eq!(img.get(p), Some(n), "{p}: differs from the RPM payload");
                compared += 1;
            }
            _ => assert!(!img.contains_key(p), "{p} must not be in a sysext"),
        }
    }
    assert_eq!(compared, 6, "files compared with the RPM payloads");
    for (p, n) in &img {
        if !matches!(n, Node::Dir { .. }) && p != er {
            assert!(
                ext.contains_key(p),
                "{p} is in the image but in no extension RPM"
            );
        }
    }
    assert_eq!(
        img.get("usr/share/fixture-data/data.txt"),
        Some(&Node::File {
            mode: 0o644,
            data: b"fixture-data 2.1\n".to_vec()
        }),
        "fixture-data 2.1 wins over 1.0"
    );

    // extension-release, against fixture-release's own os-release.
    let Some(Node::File { data, .. }) = img.get(er) else {
        panic!("no {er}");
    };
    let rel = parse_env_file(&String::from_utf8_lossy(data));
    let Some(Node::File { data: os, .. }) = base.get("usr/lib/os-release") else {
        panic!("fixture-release has no usr/lib/os-release");
    };
    let os = parse_env_file(&String::from_utf8_lossy(os));
    assert_eq!(os["ID"], "elsx-fixture");
    assert_eq!(rel.get("ID"), os.get("ID"), "{rel:?}");
    assert_eq!(rel.get("VERSION_ID"), os.get("VERSION_ID"), "{rel:?}");
    assert_eq!(rel["VERSION_ID"], "42");
    assert_eq!(rel["SYSEXT_ID"], "fxapp");
    assert_eq!(rel["SYSEXT_VERSION_ID"], "1.2.3");
    assert_eq!(rel["SYSEXT_SCOPE"], "system portable");
    assert_eq!(rel["ARCHITECTURE"], "x86-64");

    // systemd agrees that it is a system extension.
    let d = dissect(&image);
    assert!(
        d.contains("✓ extension for system"),
        "systemd-dissect:\n{d}"
    );
    assert!(d.contains("SYSEXT_ID=fxapp"), "systemd-dissect:\n{d}");

    // Every RPM came over HTTP, once.
    let fetched = server.fetched();
    assert!(
        fetched.contains(&"/repodata/repomd.xml".to_owned()),
        "{fetched:?}"
    );
    for rpm in APP_RPMS.iter().chain(BASE_RPMS) {
        let arch = rpm.trim_end_matches(".rpm").rsplit('.').next().unwrap();
        let path = format!("/{arch}/{rpm}");
        let n = fetched.iter().filter(|p| **p == path).count();
        assert_eq!(n, 1, "{path} fetched {n} times over HTTP: {fetched:?}");
    }
    let rpms: Vec<&String> = fetched.iter().filter(|p| p.ends_with(".rpm")).collect();
    assert_eq!(
        rpms.len(),
        8,
        "only the needed RPMs are downloaded: {rpms:?}"
    );
    assert!(
        !fetched.iter().any(|p| p.contains("fixture-data-1.0")),
        "{fetched:?}"
    );
}

#[test]
fn setuid_mode_and_hard_links_survive() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fxsuid", BASE, &["fixture-setuid"], "");
    let out = tmp.path().join("out");
    build_ok(&recipe, &out, &server.url(), &[]);
    let image = out.join("fxsuid.raw");
    let list = list_image(&image);
    assert_eq!(list["usr/bin/fixture-suid"].mode, "-rwsr-xr-x", "{list:#?}");
    assert_eq!(list["usr/bin/fixture-suid"].owner, "root/root");
    for p in [
        "usr/share/fixture-setuid/hardlink-a",
        "usr/share/fixture-setuid/hardlink-b",
    ] {
        assert_eq!(
            list.get(p).map(|e| e.mode.as_str()),
            Some("-rw-r--r--"),
            "{p}"
        );
    }
    assert_only_usr_and_opt(&list);

    let root = tmp.path().join("root");
    extract_image(&image, &root);
    let img = read_tree(&root);
    let a = &img["usr/share/fixture-setuid/hardlink-a"];
    let b = &img["usr/share/fixture-setuid/hardlink-b"];
    assert_eq!(
        a,
        &Node::File {
            mode: 0o644,
            data: b"same inode, two names\n".to_vec()
        }
    );
    assert_eq!(a, b, "hard-linked pair");
    let Node::File { mode, data } = &img["usr/bin/fixture-suid"] else {
        panic!("fixture-suid is not a file");
    };
    assert_eq!(*mode, 0o4755);
    let rpm = read_tree(&{
        let d = tmp.path().join("rpm");
        rpm_extract(&fixture_rpm("fixture-setuid-1.0-1.x86_64.rpm"), &d);
        d
    });
    assert_eq!(
        rpm.get("usr/bin/fixture-suid"),
        Some(&Node::File {
            mode: 0o4755,
            data: data.clone()
        })
    );
}

const COMMON: &str = "usr/share/fixture-shared/common.txt";

#[test]
fn changed_base_file_is_dropped_and_reported() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fxconflict", BASE, &["fixture-conflict"], "");
    let out = tmp.path().join("out");
    let run = build_ok(&recipe, &out, &server.url(), &["--json"]);
    let json = run.json();
    let changed: Vec<&str> = json["diff"]["changed"]
        .as_array()
        .unwrap_or_else(|| panic!("no diff.changed\n{run}"))
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(changed, [COMMON], "{run}");
    let list = list_image(&out.join("fxconflict.raw"));
    assert!(!list.contains_key(COMMON), "{list:#?}");
    assert!(
        !list.contains_key("usr/share/fixture-shared"),
        "the directory holds nothing of the extension: {list:#?}"
    );
    // The rest of the package is there, and shared directories keep the base's metadata.
    assert_eq!(
        list["usr/share/doc/fixture-conflict/README"].mode,
        "-rw-r--r--"
    );
    assert_eq!(list["usr/share/doc"].mode, "drwxr-xr-x");
    assert_only_usr_and_opt(&list);

    // --keep-changed keeps it, with the extension's content.
    let out2 = tmp.path().join("out-keep");
    let run = build_ok(&recipe, &out2, &server.url(), &["--json", "--keep-changed"]);
    let json = run.json();
    assert_eq!(json["diff"]["changed"][0], COMMON, "{run}");
    let image = out2.join("fxconflict.raw");
    let list = list_image(&image);
    assert_eq!(list[COMMON].mode, "-rw-r--r--");
    let root = tmp.path().join("root");
    extract_image(&image, &root);
    assert_eq!(
        std::fs::read_to_string(root.join(COMMON)).unwrap(),
        "common file, from extension\n"
    );
}

#[test]
fn keep_changed_in_the_recipe() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "fxkeep",
        BASE,
        &["fixture-conflict"],
        "\n[content]\nkeep-changed = true\n",
    );
    let out = tmp.path().join("out");
    build_ok(&recipe, &out, &server.url(), &[]);
    let list = list_image(&out.join("fxkeep.raw"));
    assert!(list.contains_key(COMMON), "{list:#?}");
}

#[test]
fn etc_and_var_never_reach_the_image() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();

    // fixture-etc-only with one /usr package.
    let recipe = write_recipe(
        tmp.path(),
        "fxetc",
        BASE,
        &["fixture-etc-only", "fixture-data"],
        "",
    );
    let out = tmp.path().join("out");
    let run = build_ok(&recipe, &out, &server.url(), &["--json"]);
    let list = list_image(&out.join("fxetc.raw"));
    assert_only_usr_and_opt(&list);
    assert_eq!(
        non_dirs(&list),
        [
            "usr/lib/extension-release.d/extension-release.fxetc",
            "usr/share/fixture-data/data.txt"
        ]
        .map(String::from)
        .into(),
        "{list:#?}"
    );
    let json = run.json();
    let outside: BTreeSet<&str> = json["diff"]["outside"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for p in [
        "etc/fixture-etc-only/settings.conf",
        "var/lib/fixture-etc-only/state",
    ] {
        assert!(
            outside.contains(p),
            "{p} not reported as outside: {outside:?}"
        );
    }

    // fixture-etc-only alone: whatever the image holds, nothing of /etc or /var.
    let recipe = write_recipe(tmp.path(), "fxetc1", BASE, &["fixture-etc-only"], "");
    let out = tmp.path().join("out1");
    let run = elsx([
        "build".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--repo".as_ref(),
        repo_arg(&server.url()).as_ref(),
    ]);
    if run.code == 0 {
        let list = list_image(&out.join("fxetc1.raw"));
        assert_only_usr_and_opt(&list);
        assert_eq!(
            non_dirs(&list),
            ["usr/lib/extension-release.d/extension-release.fxetc1".to_owned()].into(),
            "{list:#?}"
        );
    } else {
        assert!(
            run.stderr.contains("fixture-etc-only"),
            "a refusal must name the package\n{run}"
        );
        assert!(dir_entries(&out).is_empty(), "{:?}", dir_entries(&out));
    }
}

#[test]
fn json_summary() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxjson");
    let out = tmp.path().join("out");
    let run = build_ok(&recipe, &out, &server.url(), &["--json"]);
    let j = run.json();
    let image = PathBuf::from(j["image"].as_str().expect("image is a string"));
    assert_eq!(
        std::fs::canonicalize(&image).unwrap(),
        std::fs::canonicalize(out.join("fxjson.raw")).unwrap(),
        "{run}"
    );
    assert_eq!(
        j["bytes"].as_u64(),
        Some(std::fs::metadata(&image).unwrap().len())
    );
    let names = |k: &str| -> BTreeSet<String> {
        j["packages"][k]
            .as_array()
            .unwrap_or_else(|| panic!("packages.{k} is not a list\n{run}"))
            .iter()
            .map(|p| {
                format!(
                    "{}-{}-{}.{}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap(),
                    p["release"].as_str().unwrap(),
                    p["arch"].as_str().unwrap()
                )
            })
            .collect()
    };
    let strip = |v: &[&str]| -> BTreeSet<String> {
        v.iter()
            .map(|s| s.trim_end_matches(".rpm").to_owned())
            .collect()
    };
    assert_eq!(names("base"), strip(BASE_RPMS));
    assert_eq!(names("extension"), strip(APP_RPMS));
    for p in j["packages"]["extension"].as_array().unwrap() {
        assert_eq!(p["repo"], "fixtures");
    }
    // files counts non-directories: the six payload files plus extension-release.
    let list = list_image(&image);
    assert_eq!(
        j["files"].as_u64(),
        Some(non_dirs(&list).len() as u64),
        "{run}"
    );
    assert_eq!(j["files"].as_u64(), Some(7));
    let er = j["extension_release"].as_str().expect("extension_release");
    let rel = parse_env_file(er);
    assert_eq!(rel["ID"], "elsx-fixture");
    assert_eq!(rel["SYSEXT_ID"], "fxjson");
    // ... and it is the file in the image, byte for byte.
    let root = tmp.path().join("root");
    extract_image(&image, &root);
    assert_eq!(
        std::fs::read_to_string(root.join("usr/lib/extension-release.d/extension-release.fxjson"))
            .unwrap(),
        er
    );
    let skipped = &j["skipped_scriptlets"]["fixture-app-1.0-1.x86_64"];
    assert_eq!(skipped[0], "%post", "{run}");
}

#[test]
fn reproducible_images() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxrepro");
    let build = |out: &str, extra: &[&str]| -> Vec<u8> {
        let out = tmp.path().join(out);
        build_ok(&recipe, &out, &server.url(), extra);
        std::fs::read(out.join("fxrepro.raw")).unwrap()
    };
    // Two builds, different output directories, fresh caches each.
    let a = build("a", &[]);
    let b = build("b", &[]);
    assert!(a == b, "two builds of the same recipe differ");
    // The thread count does not matter.
    let j1 = build("j1", &["-j1"]);
    let j2 = build("j2", &["-j2"]);
    assert!(j1 == j2, "-j1 and -j2 give different images");
    assert!(a == j1, "-j1 differs from the default");
}

#[test]
fn file_repository() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxfile");
    let out = tmp.path().join("out");
    let run = build_ok(&recipe, &out, &file_url(fixture_repo()), &[]);
    let image = out.join("fxfile.raw");
    let list = list_image(&image);
    assert!(list.contains_key("usr/bin/fixture-app"), "{list:#?}\n{run}");
    assert_only_usr_and_opt(&list);

    // The same image as over HTTP.
    let server = HttpServer::start(fixture_repo());
    let out2 = tmp.path().join("out-http");
    build_ok(&recipe, &out2, &server.url(), &[]);
    assert!(
        std::fs::read(&image).unwrap() == std::fs::read(out2.join("fxfile.raw")).unwrap(),
        "file:// and http:// builds differ"
    );

    // Offline is fine for file:// (nothing to download).
    let out3 = tmp.path().join("out-offline");
    build_ok(&recipe, &out3, &file_url(fixture_repo()), &["--offline"]);
    assert!(out3.join("fxfile.raw").is_file());
}

#[test]
fn resolve_downloads_no_rpm() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxresolve");
    let out = tmp.path().join("out");
    let run = elsx([
        "resolve".as_ref(),
        recipe.as_os_str(),
        "--json".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
        "--repo".as_ref(),
        repo_arg(&server.url()).as_ref(),
    ]);
    run.assert_success();
    let j = run.json();
    let names = |k: &str| -> BTreeSet<String> {
        j[k].as_array()
            .unwrap_or_else(|| panic!("{k} is not a list\n{run}"))
            .iter()
            .map(|p| {
                format!(
                    "{}-{}",
                    p["name"].as_str().unwrap(),
                    p["version"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        names("base"),
        [
            "fixture-base-shared-1.0",
            "fixture-filesystem-1.0",
            "fixture-libbase1-1.0",
            "fixture-release-42",
            "fixture-shell-1.0"
        ]
        .map(String::from)
        .into()
    );
    assert_eq!(
        names("extension"),
        ["fixture-app-1.0", "fixture-data-2.1", "fixture-libext1-1.0"]
            .map(String::from)
            .into()
    );
    let paths = server.paths();
    assert!(
        paths.contains(&"/repodata/repomd.xml".to_owned()),
        "{paths:?}"
    );
    for p in &paths {
        assert!(
            p.starts_with("/repodata/"),
            "resolve requested {p}: {paths:?}"
        );
    }
    assert!(
        !run.cache_dir().join("rpms-v1").exists()
            || dir_entries(&run.cache_dir().join("rpms-v1")).is_empty(),
        "resolve put RPMs into the cache"
    );
    assert!(!out.exists(), "resolve wrote into the output directory");

    // Human output lists the same packages.
    let run = elsx([
        "resolve".as_ref(),
        recipe.as_os_str(),
        "--repo".as_ref(),
        repo_arg(&server.url()).as_ref(),
    ]);
    run.assert_success();
    assert!(run.stdout.contains("fixture-data-2.1-1.noarch"), "{run}");
    assert!(!server.paths().iter().any(|p| p.ends_with(".rpm")));
}

#[test]
fn recipe_defaults() {
    // No version and no scope: no SYSEXT_VERSION_ID, and all three scopes.
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(tmp.path(), "fxdefault", BASE, &["fixture-app"], "");
    let out = tmp.path().join("out");
    let run = build_ok(&recipe, &out, &server.url(), &["--json"]);
    let rel = parse_env_file(run.json()["extension_release"].as_str().unwrap());
    assert!(!rel.contains_key("SYSEXT_VERSION_ID"), "{rel:?}");
    assert_eq!(rel["SYSEXT_SCOPE"], "initrd system portable");
    assert_eq!(rel["ID"], "elsx-fixture");
    let d = dissect(&out.join("fxdefault.raw"));
    for what in ["system", "initrd", "portable service"] {
        assert!(
            d.contains(&format!("✓ extension for {what}")),
            "{what}:\n{d}"
        );
    }
}

#[test]
fn warm_cache_and_offline() {
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxwarm");
    let cache = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let build = |out: &str, url: &str, extra: &[&str]| -> Vec<u8> {
        let out = tmp.path().join(out);
        let mut args: Vec<String> = vec![
            "build".into(),
            recipe.display().to_string(),
            "-o".into(),
            out.display().to_string(),
            "--repo".into(),
            repo_arg(url),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        elsx_with_cache(cache.clone(), &args).assert_success();
        std::fs::read(out.join("fxwarm.raw")).unwrap()
    };
    let url = server.url();
    let cold = build("cold", &url, &[]);
    let after_cold = server.requests().len();
    assert_eq!(
        server
            .fetched()
            .iter()
            .filter(|p| p.ends_with(".rpm"))
            .count(),
        8
    );

    // A second build with the same cache asks only for repomd.xml.
    let warm = build("warm", &url, &[]);
    let again: Vec<String> = server.paths()[after_cold..].to_vec();
    assert_eq!(
        again,
        ["/repodata/repomd.xml"],
        "the warm build downloaded more"
    );
    assert!(cold == warm, "warm and cold builds differ");

    // --offline works from the cache alone, with the server gone.
    drop(server);
    let offline = build("offline", &url, &["--offline"]);
    assert!(cold == offline, "offline and online builds differ");

    // `elsx cache clean` empties it: --offline then says what is missing.
    let clean = elsx_with_cache(cache.clone(), ["cache", "clean"]);
    clean.assert_success();
    assert!(!cache.path().join("rpms-v1").exists());
    let mut args: Vec<String> = vec!["build".into(), recipe.display().to_string(), "-o".into()];
    args.push(tmp.path().join("gone").display().to_string());
    args.extend(["--repo".into(), repo_arg(&url), "--offline".into()]);
    let run = elsx_with_cache(cache.clone(), &args);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--offline"), "{}", run.stderr);
}

#[test]
fn damaged_cache_entry_is_not_trusted() {
    // Cache::lookup promises "a cached file whose content still matches its checksum".
    // A damaged entry (here: truncated) must be fetched again, not unpacked.
    let server = HttpServer::start(fixture_repo());
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_app_recipe(tmp.path(), "fxdamaged");
    let cache = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let args = |out: &str| -> Vec<String> {
        vec![
            "build".into(),
            recipe.display().to_string(),
            "-o".into(),
            tmp.path().join(out).display().to_string(),
            "--repo".into(),
            repo_arg(&server.url()),
        ]
    };
    elsx_with_cache(cache.clone(), args("a")).assert_success();
    let sum = sha256_file(&fixture_rpm("fixture-app-1.0-1.x86_64.rpm"));
    let entry = cache.path().join("rpms-v1").join(&sum);
    let data = std::fs::read(&entry).expect("fixture-app is cached under its sha256");
    std::fs::write(&entry, &data[..data.len() - 100]).unwrap();

    let run = elsx_with_cache(cache.clone(), args("b"));
    assert_eq!(
        run.code, 0,
        "a damaged cache entry broke the build instead of being fetched again\n{run}"
    );
    assert!(
        std::fs::read(tmp.path().join("a/fxdamaged.raw")).unwrap()
            == std::fs::read(tmp.path().join("b/fxdamaged.raw")).unwrap()
    );
}

#[test]
fn extra_tree_outside_usr_and_opt_is_not_in_the_image() {
    // [content] extra is copied over the result, but a sysext still carries only /usr and
    // /opt: systemd-sysext merges nothing else, diff.rs drops everything else from packages,
    // and mkosi's sysext partition definition copies only /usr/ (CopyFiles=/usr/).
    let tmp = tempfile::tempdir().unwrap();
    let extra = tmp.path().join("extra");
    for (p, text) in [
        ("usr/share/fxextra/hello", "hello\n"),
        ("opt/fxextra/README", "opt\n"),
        ("etc/fxextra.conf", "conf\n"),
        ("var/lib/fxextra/state", "state\n"),
    ] {
        let f = extra.join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(&f, text).unwrap();
    }
    let recipe = write_recipe(
        tmp.path(),
        "fxextra",
        BASE,
        &["fixture-data"],
        "\n[content]\nextra = [\"extra\"]\n",
    );
    let out = tmp.path().join("out");
    build_ok(&recipe, &out, &file_url(fixture_repo()), &[]);
    let list = list_image(&out.join("fxextra.raw"));
    assert_eq!(list["usr/share/fxextra/hello"].owner, "root/root");
    assert!(list.contains_key("opt/fxextra/README"), "{list:#?}");
    assert_only_usr_and_opt(&list);
}

#[test]
fn support_http_server() {
    // The test server itself: 200 with Content-Length, 404, `..` refused, keep-alive, close.
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/a.txt"), "hello\n").unwrap();
    let server = HttpServer::start(&dir.path().join("sub"));
    let addr = server.url();
    let addr = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut ask = |req: &str| -> (String, Vec<u8>) {
        w.write_all(req.as_bytes()).unwrap();
        let mut status = String::new();
        r.read_line(&mut status).unwrap();
        let mut len = 0;
        loop {
            let mut h = String::new();
            r.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        (status.trim().to_owned(), body)
    };
    // Several requests on one connection.
    let (s, b) = ask("GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (s.as_str(), b.as_slice()),
        ("HTTP/1.1 200 OK", &b"hello\n"[..])
    );
    let (s, _) = ask("GET /missing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, "HTTP/1.1 404 Not Found");
    let (s, _) = ask("GET /../sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, "HTTP/1.1 403 Forbidden");
    let (s, _) = ask("GET /%2e%2e/sub/a.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(s, "HTTP/1.1 403 Forbidden");
    let (s, b) = ask("GET /a.txt?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((s.as_str(), b.len()), ("HTTP/1.1 200 OK", 6));
    // ... after which the server closes the connection.
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
    assert_eq!(
        server.paths(),
        [
            "/a.txt",
            "/missing",
            "/../sub/a.txt",
            "/../sub/a.txt",
            "/a.txt"
        ]
    );
    assert_eq!(server.fetched(), ["/a.txt", "/a.txt"]);
}
