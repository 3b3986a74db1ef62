//! mkosi config directories resolved the way mkosi resolves them: each test writes a config into
//! a temporary directory and checks the images, their values and the values' origins.

use std::path::{Path, PathBuf};

use elsx::mkosi::{Error, Feature, Format, Host, Origin, Project, Resolved, Verity, load};

/// Writes `files` (path, content) under a new temporary directory; a path ending in `/` is an
/// empty directory.
fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(d.path()).unwrap();
    for (path, content) in files {
        let p = root.join(path);
        if path.ends_with('/') {
            std::fs::create_dir_all(&p).unwrap();
            continue;
        }
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    (d, root)
}

fn x86() -> Host {
    Host::new("x86-64")
}

fn load_ok(root: &Path) -> Project {
    load(root, &x86()).unwrap_or_else(|e| panic!("{e}"))
}

fn names(p: &Project) -> Vec<&str> {
    p.images.iter().map(|i| i.image.as_str()).collect()
}

fn values(v: &[elsx::mkosi::Valued<String>]) -> Vec<&str> {
    v.iter().map(|v| v.value.as_str()).collect()
}

fn line(file: &str, line: u32) -> Origin {
    Origin::line(file, line)
}

fn warnings(p: &Project) -> Vec<String> {
    p.warnings.iter().map(|w| w.to_string()).collect()
}

/// The repository's copy of SUSE Elemental's tools-sysext example, copied into a temp dir.
fn elemental() -> (tempfile::TempDir, PathBuf) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tools-sysext");
    let files: Vec<(String, String)> = walkdir::WalkDir::new(&src)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(e.path()).unwrap())
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    tree(&refs)
}

#[test]
fn elemental_tools_sysext() {
    let (_d, root) = elemental();
    let p = load_ok(&root);
    assert_eq!(names(&p), ["base", "tools", "main"]);
    let built: Vec<&str> = p.built().map(|i| i.image.as_str()).collect();
    assert_eq!(built, ["base", "tools"]);
    assert!(warnings(&p).is_empty(), "{:?}", warnings(&p));

    let main = p.main();
    assert_eq!(main.format.value, Format::None);
    assert!(!main.build);
    assert_eq!(main.output_file(), None);
    assert_eq!(values(&main.dependencies), ["base", "tools"]);
    assert_eq!(main.selinux_relabel.value, Feature::Enabled);

    let base = p.image("base").unwrap();
    assert_eq!(base.format.value, Format::Directory);
    assert_eq!(base.output.value, "base");
    assert_eq!(base.output_file().as_deref(), Some("base"));
    assert_eq!(base.output_symlink(), None);
    // mkosi keeps package lists sorted.
    assert_eq!(
        values(&base.packages),
        ["aaa_base", "coreutils", "grep", "sed", "xz"]
    );
    assert_eq!(
        base.packages[0].origin,
        line("mkosi.images/base/mkosi.conf", 6)
    );
    assert_eq!(
        base.selinux_relabel.value,
        Feature::Auto,
        "local: not inherited"
    );
    assert_eq!(base.output_dir(), root.join("mkosi.output"));

    let tools = p.image("tools").unwrap();
    assert_eq!(tools.format.value, Format::Sysext);
    assert!(tools.overlay.value);
    assert_eq!(tools.image_version.as_ref().unwrap().value, "1.0");
    assert_eq!(tools.output.value, "tools-1.0_1.0_x86-64");
    assert_eq!(
        tools.output.origin,
        line("mkosi.images/tools/mkosi.conf", 11)
    );
    assert_eq!(
        tools.output_file().as_deref(),
        Some("tools-1.0_1.0_x86-64.raw")
    );
    assert_eq!(
        tools.output_symlink().as_deref(),
        Some("tools-1.0_1.0_x86-64")
    );
    assert_eq!(
        tools.output_path().unwrap(),
        root.join("mkosi.output/tools-1.0_1.0_x86-64.raw")
    );
    assert_eq!(
        tools.extension_release_path().as_deref(),
        Some("usr/lib/extension-release.d/extension-release.tools-1.0_1.0_x86-64")
    );
    assert_eq!(tools.verity.value, Verity::Disabled);
    assert_eq!(tools.clean_package_metadata.value, Feature::Enabled);
    assert_eq!(tools.base_trees.len(), 1);
    assert_eq!(tools.base_trees[0].value, root.join("mkosi.output/base"));
    assert_eq!(values(&tools.packages), ["strace"]);
    assert_eq!(tools.selinux_relabel.value, Feature::Auto);
    assert_eq!(
        tools.environment["SYSTEMD_REPART_OVERRIDE_FSTYPE_ROOT"].value,
        "squashfs"
    );
    assert_eq!(tools.extension_scope(), "initrd system portable");
    assert_eq!(tools.distribution.value, "opensuse");
    assert_eq!(tools.distribution.origin, line("mkosi.conf", 5));
    assert_eq!(tools.release.value, "tumbleweed");
    assert_eq!(tools.architecture.value, "x86-64");
    assert!(tools.architecture.origin.is_default());
    assert_eq!(
        tools
            .finalize_scripts
            .iter()
            .map(|s| &s.value)
            .collect::<Vec<_>>(),
        [&root.join("mkosi.images/tools/mkosi.finalize")]
    );
    assert_eq!(
        tools.finalize_scripts[0].origin,
        Origin::Found {
            path: "mkosi.images/tools/mkosi.finalize".into()
        }
    );
    assert_eq!(values(&tools.dependencies), ["base"]);

    let summary = p.summary();
    assert!(summary.contains("IMAGE: tools"), "{summary}");
    assert!(summary.contains("Packages=strace"), "{summary}");
    assert!(
        summary.contains("mkosi.images/tools/mkosi.conf:11"),
        "{summary}"
    );
    let json = serde_json::to_value(&p).unwrap();
    assert_eq!(json["images"][1]["output"]["value"], "tools-1.0_1.0_x86-64");
    assert_eq!(
        json["images"][1]["output"]["origin"],
        "mkosi.images/tools/mkosi.conf:11"
    );
}

#[test]
fn elemental_on_arm64_names_the_architecture() {
    let (_d, root) = elemental();
    let p = load(&root, &Host::new("arm64")).unwrap();
    let tools = p.image("tools").unwrap();
    assert_eq!(
        tools.output_file().as_deref(),
        Some("tools-1.0_1.0_arm64.raw")
    );
}

#[test]
fn conf_d_is_parsed_in_sorted_order_after_mkosi_conf() {
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nImageId=top\nFormat=directory\n"),
        ("mkosi.conf.d/20-b.conf", "[Output]\nImageId=b\n"),
        ("mkosi.conf.d/10-a.conf", "[Output]\nImageId=a\n"),
        ("mkosi.conf.d/15-dir/mkosi.conf", "[Output]\nImageId=dir\n"),
        (
            "mkosi.conf.d/30-README",
            "[Output]\nImageId=not-a-conf-file\n",
        ),
    ]);
    let p = load_ok(&root);
    let m = p.main();
    assert_eq!(m.image_id.as_ref().unwrap().value, "b");
    assert_eq!(
        m.image_id.as_ref().unwrap().origin,
        line("mkosi.conf.d/20-b.conf", 2)
    );
    let files: Vec<String> = m
        .files
        .iter()
        .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "mkosi.conf",
            "mkosi.conf.d/10-a.conf",
            "mkosi.conf.d/15-dir/mkosi.conf",
            "mkosi.conf.d/20-b.conf"
        ]
    );
}

#[test]
fn lists_append_across_files_and_reset_on_empty_assignment() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Output]\nFormat=sysext\n[Content]\nPackages=zsh,vim\nPackages=\n  less\n",
        ),
        ("mkosi.conf.d/10.conf", "[Content]\nPackages=a\n"),
        ("mkosi.conf.d/20.conf", "[Content]\nPackages=\n"),
        (
            "mkosi.conf.d/30.conf",
            "[Content]\nPackages=d c\n[Output]\nFormat=\n",
        ),
        ("mkosi.conf.d/40.conf", "[Content]\nRemoveFiles=\n"),
    ]);
    let p = load_ok(&root);
    let m = p.main();
    assert_eq!(values(&m.packages), ["c", "d"]);
    assert_eq!(m.packages[0].origin, line("mkosi.conf.d/30.conf", 2));
    // A scalar's empty assignment restores the default (disk).
    assert_eq!(m.format.value, Format::Disk);
    assert!(m.format.origin.is_default());

    let (_d, root) = tree(&[(
        "mkosi.conf",
        "[Content]\nPackages=zsh vim\nPackages=\n  less\n",
    )]);
    let m = load_ok(&root);
    assert_eq!(values(&m.main().packages), ["less", "vim", "zsh"]);
}

#[test]
fn include_is_parsed_at_its_line_relative_to_the_config_directory() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Output]\nImageId=before\n[Include]\nInclude=inc/one.conf\n[Output]\nImageVersion=2\n",
        ),
        // Relative to the current directory (the top level), not to inc/.
        (
            "inc/one.conf",
            "[Output]\nImageId=included\nImageVersion=1\n[Include]\nInclude=inc/dir\n",
        ),
        ("inc/dir/mkosi.conf", "[Content]\nPackages=from-dir\n"),
        (
            "inc/dir/mkosi.conf.d/x.conf",
            "[Content]\nPackages=from-dir-dropin\n",
        ),
        ("inc/dir/mkosi.extra/", ""),
    ]);
    let p = load_ok(&root);
    let m = p.main();
    assert_eq!(m.image_id.as_ref().unwrap().value, "included");
    assert_eq!(m.image_version.as_ref().unwrap().value, "2");
    assert_eq!(values(&m.packages), ["from-dir", "from-dir-dropin"]);
    // An included directory is parsed like a config directory, default paths included.
    assert_eq!(
        m.extra_trees[0].value.source,
        root.join("inc/dir/mkosi.extra")
    );

    let (_d, root) = tree(&[("mkosi.conf", "[Include]\nInclude=missing.conf\n")]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert!(
        e.starts_with("mkosi.conf:2: Include=: missing.conf does not exist"),
        "{e}"
    );
}

#[test]
fn include_cycles_parse_each_file_once() {
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Include]\nInclude=a.conf\n"),
        (
            "a.conf",
            "[Content]\nPackages=a\n[Include]\nInclude=b.conf\n",
        ),
        (
            "b.conf",
            "[Content]\nPackages=b\n[Include]\nInclude=a.conf\nInclude=b.conf\n",
        ),
    ]);
    let p = load_ok(&root);
    assert_eq!(values(&p.main().packages), ["a", "b"]);
    assert_eq!(p.main().files.len(), 3);
}

#[test]
fn match_and_or_not() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Distribution]\nDistribution=opensuse\nRelease=tumbleweed\n[Output]\nFormat=sysext\n",
        ),
        // AND: both hold.
        (
            "mkosi.conf.d/10-and.conf",
            "[Match]\nDistribution=opensuse\nRelease=tumbleweed\n[Content]\nPackages=and\n",
        ),
        // AND: one fails; the settings before [Match] are skipped too.
        (
            "mkosi.conf.d/11-and-fails.conf",
            "[Content]\nPackages=and-fails\n[Match]\nDistribution=opensuse\nRelease=16.0\n",
        ),
        // OR: one of the | conditions.
        (
            "mkosi.conf.d/20-or.conf",
            "[Match]\nRelease=|16.0\nRelease=|tumbleweed\n[Content]\nPackages=or\n",
        ),
        (
            "mkosi.conf.d/21-or-fails.conf",
            "[Match]\nRelease=|16.0\nRelease=|15.6\n[Content]\nPackages=or-fails\n",
        ),
        // NOT.
        (
            "mkosi.conf.d/30-not.conf",
            "[Match]\nDistribution=!fedora\n[Content]\nPackages=not\n",
        ),
        (
            "mkosi.conf.d/31-not-fails.conf",
            "[Match]\nDistribution=!opensuse\n[Content]\nPackages=not-fails\n",
        ),
        // | and ! together: "|" first.
        (
            "mkosi.conf.d/32-or-not.conf",
            "[Match]\nFormat=|!sysext\nFormat=|!disk\n[Content]\nPackages=or-not\n",
        ),
        // Two [Match] sections: each must hold.
        (
            "mkosi.conf.d/40-two.conf",
            "[Match]\nFormat=|disk\nFormat=|sysext\n[Match]\nArchitecture=|x86-64\nArchitecture=|arm64\n[Content]\nPackages=two\n",
        ),
        (
            "mkosi.conf.d/41-two-fails.conf",
            "[Match]\nFormat=|disk\nFormat=|sysext\n[Match]\nArchitecture=|s390x\nArchitecture=|arm64\n[Content]\nPackages=two-fails\n",
        ),
        // [TriggerMatch]: one section suffices.
        (
            "mkosi.conf.d/50-trigger.conf",
            "[TriggerMatch]\nDistribution=debian\n[TriggerMatch]\nDistribution=opensuse\nRelease=tumbleweed\n[Content]\nPackages=trigger\n",
        ),
        (
            "mkosi.conf.d/51-trigger-fails.conf",
            "[TriggerMatch]\nDistribution=debian\n[TriggerMatch]\nDistribution=opensuse\nRelease=16.0\n[Content]\nPackages=trigger-fails\n",
        ),
        // Conditions see only what was parsed before: ImageId is set in 70.conf.
        (
            "mkosi.conf.d/60-before.conf",
            "[Match]\nImageId=late\n[Content]\nPackages=before\n",
        ),
        ("mkosi.conf.d/70-set.conf", "[Output]\nImageId=late\n"),
        (
            "mkosi.conf.d/80-after.conf",
            "[Match]\nImageId=la*\nImage=main\nPathExists=mkosi.conf\nPathExists=!nope\n[Content]\nPackages=after\n",
        ),
        // A directory whose mkosi.conf does not match is skipped entirely.
        (
            "mkosi.conf.d/90-dir/mkosi.conf",
            "[Match]\nArchitecture=arm64\n",
        ),
        (
            "mkosi.conf.d/90-dir/mkosi.conf.d/x.conf",
            "[Content]\nPackages=dir\n",
        ),
        ("mkosi.conf.d/90-dir/mkosi.extra/", ""),
    ]);
    let p = load_ok(&root);
    let m = p.main();
    assert_eq!(
        values(&m.packages),
        ["after", "and", "not", "or", "or-not", "trigger", "two"]
    );
    assert!(m.extra_trees.is_empty());
}

#[test]
fn match_architecture_alternatives_and_host_defaults() {
    let files = [
        ("mkosi.conf", "[Output]\nFormat=sysext\n"),
        (
            "mkosi.conf.d/arch.conf",
            "[Match]\nArchitecture=|x86-64\nArchitecture=|arm64\n[Content]\nPackages=native\n",
        ),
        (
            "mkosi.conf.d/uefi.conf",
            "[Match]\nArchitecture=uefi\n[Content]\nPackages=uefi\n",
        ),
        (
            "mkosi.conf.d/host.conf",
            "[Match]\nHostArchitecture=s390x\n[Content]\nPackages=host-s390x\n",
        ),
        (
            "mkosi.conf.d/suse.conf",
            "[Match]\nDistribution=opensuse\n[Content]\nPackages=suse\n",
        ),
    ];
    let (_d, root) = tree(&files);
    let m = load_ok(&root);
    assert_eq!(values(&m.main().packages), ["native", "uefi"]);

    let mut host = Host::new("s390x");
    host.distribution = Some("opensuse".into());
    host.release = Some("16.0".into());
    let p = load(&root, &host).unwrap();
    let m = p.main();
    assert_eq!(values(&m.packages), ["host-s390x", "suse"]);
    // Defaults come from the host.
    assert_eq!(m.distribution.value, "opensuse");
    assert_eq!(m.release.value, "16.0");
    assert_eq!(m.architecture.value, "s390x");

    let (_d, root) = tree(&[("mkosi.conf", "[Match]\nArchitecture=x86_64\n")]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert!(
        e.contains("mkosi.conf:2") && e.contains("'x86_64' is not a valid"),
        "{e}"
    );
}

#[test]
fn specifiers() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Distribution]\nDistribution=opensuse\nRelease=tumbleweed\n\
             [Output]\nFormat=sysext\nImageId=tools\nImageVersion=1.0\nOutputDirectory=out\n\
             [Build]\nEnvironment=A=%a V=%v I=%i O=%O C=%C D=%D P=%P IMG=%I d=%d r=%r t=%t o=%o F=%F PCT=%%x\n",
        ),
        (
            "mkosi.conf.d/sub/mkosi.conf",
            "[Build]\nEnvironment=SUBC=%C SUBP=%P\n",
        ),
        (
            "mkosi.conf.d/file.conf",
            "[Build]\nEnvironment=FILEC=%C FILEP=%P\n",
        ),
    ]);
    let p = load_ok(&root);
    let env = &p.main().environment;
    let get = |k: &str| env[k].value.clone();
    let r = root.display().to_string();
    assert_eq!(get("A"), "x86-64");
    assert_eq!(get("V"), "1.0");
    assert_eq!(get("I"), "tools");
    assert_eq!(get("O"), format!("{r}/out"));
    assert_eq!(get("C"), r);
    assert_eq!(get("D"), r);
    assert_eq!(get("P"), r);
    assert_eq!(get("IMG"), "main");
    assert_eq!(get("d"), "opensuse");
    assert_eq!(get("r"), "tumbleweed");
    assert_eq!(get("t"), "sysext");
    // The default output: ImageId, then _ImageVersion.
    assert_eq!(get("o"), "tools_1.0");
    assert_eq!(get("F"), "btrfs");
    assert_eq!(get("PCT"), "%x");
    assert_eq!(get("SUBC"), format!("{r}/mkosi.conf.d/sub"));
    assert_eq!(get("SUBP"), format!("{r}/mkosi.conf.d/sub"));
    assert_eq!(get("FILEC"), format!("{r}/mkosi.conf.d"));
    assert_eq!(get("FILEP"), r);
    assert!(p.warnings.is_empty(), "{:?}", warnings(&p));

    // In a subimage: %I is its name, %O the top level's directory.
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nOutputDirectory=out\nFormat=none\n"),
        (
            "mkosi.images/x/mkosi.conf",
            "[Output]\nFormat=sysext\nOutput=%I-img\n[Content]\nBaseTrees=%O/base\n",
        ),
    ]);
    let p = load_ok(&root);
    let x = p.image("x").unwrap();
    assert_eq!(x.output.value, "x-img");
    assert_eq!(x.base_trees[0].value, root.join("out/base"));

    // Unset and unknown specifiers expand to nothing, with a warning naming the line.
    let (_d, root) = tree(&[("mkosi.conf", "[Output]\nFormat=sysext\nOutput=a%vb%Qc\n")]);
    let p = load_ok(&root);
    assert_eq!(p.main().output.value, "abc");
    let w = warnings(&p);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].starts_with("mkosi.conf:3: ImageVersion="), "{w:?}");
    assert!(
        w[1].starts_with("mkosi.conf:3: unknown specifier %Q"),
        "{w:?}"
    );
}

#[test]
fn subimages_from_conf_files_and_directories() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Distribution]\nDistribution=opensuse\n[Output]\nFormat=none\nImageVersion=3\n[Content]\nPackages=top\n",
        ),
        ("mkosi.images/b.conf", "[Output]\nFormat=sysext\n"),
        (
            "mkosi.images/a/mkosi.conf",
            "[Output]\nFormat=directory\nImageVersion=4\n",
        ),
        (
            "mkosi.images/a/mkosi.conf.d/p.conf",
            "[Content]\nPackages=in-a\n",
        ),
        ("mkosi.images/README", "not an image"),
        (
            "mkosi.images/skipped/mkosi.conf",
            "[Match]\nDistribution=fedora\n",
        ),
    ]);
    let p = load_ok(&root);
    assert_eq!(names(&p), ["a", "b", "main"]);
    let a = p.image("a").unwrap();
    let b = p.image("b").unwrap();
    // The default output is the image's name and version (inherited, or its own).
    assert_eq!(a.output.value, "a_4");
    assert_eq!(b.output.value, "b_3");
    assert_eq!(b.output_file().as_deref(), Some("b_3.raw"));
    assert_eq!(
        b.image_version.as_ref().unwrap().origin,
        line("mkosi.conf", 5)
    );
    assert_eq!(values(&a.packages), ["in-a"]);
    assert!(b.packages.is_empty());
    assert_eq!(b.distribution.value, "opensuse");
    assert_eq!(values(&p.main().dependencies), ["a", "b"]);

    // Dependencies= on the top level picks the subimages (and what they need).
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Config]\nDependencies=c\n[Output]\nFormat=none\n",
        ),
        ("mkosi.images/a.conf", "[Output]\nFormat=directory\n"),
        ("mkosi.images/b.conf", "[Output]\nFormat=directory\n"),
        (
            "mkosi.images/c.conf",
            "[Config]\nDependencies=b\n[Output]\nFormat=sysext\n",
        ),
    ]);
    let p = load_ok(&root);
    assert_eq!(names(&p), ["b", "c", "main"]);

    // An empty Dependencies= on the top level builds no subimage.
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Config]\nDependencies=\n[Output]\nFormat=sysext\n",
        ),
        ("mkosi.images/a.conf", "[Output]\nFormat=directory\n"),
    ]);
    assert_eq!(names(&load_ok(&root)), ["main"]);
}

#[test]
fn asserts_fail_loudly() {
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=sysext\n"),
        (
            "mkosi.conf.d/a.conf",
            "[Assert]\nFormat=sysext\n[Output]\nImageId=ok\n",
        ),
    ]);
    assert_eq!(load_ok(&root).main().image_id.as_ref().unwrap().value, "ok");
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=sysext\n"),
        ("mkosi.conf.d/a.conf", "[Assert]\nFormat=disk\n"),
    ]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert_eq!(
        e,
        "mkosi.conf.d/a.conf:2: Format=disk in [Assert] is not satisfied"
    );
}

#[test]
fn dependency_cycles_and_unknown_images_are_errors() {
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=none\n"),
        ("mkosi.images/a.conf", "[Config]\nDependencies=b\n"),
        ("mkosi.images/b.conf", "[Config]\nDependencies=c\n"),
        ("mkosi.images/c.conf", "[Config]\nDependencies=a\n"),
    ]);
    let e = load(&root, &x86()).unwrap_err();
    assert!(matches!(e, Error::Cycle(_)), "{e}");
    assert_eq!(
        e.to_string(),
        "image dependency cycle detected: a => c => b => a"
    );

    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=none\n"),
        ("mkosi.images/a.conf", "[Config]\nDependencies=nope\n"),
    ]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert_eq!(
        e,
        "mkosi.images/a.conf:2: no image named \"nope\" in mkosi.images/ (Dependencies=)"
    );
}

#[test]
fn scopes_universal_inherited_local() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Distribution]\nDistribution=opensuse\nRelease=16.0\nMirror=http://mirror\n\
             [Output]\nFormat=none\nImageId=top\nImageVersion=7\n\
             [Content]\nPackages=top\nWithRecommends=yes\n\
             [Config]\nPassEnvironment=PASSED\n\
             [Build]\nEnvironment=PASSED=1 KEPT=2\n",
        ),
        (
            "mkosi.images/sub.conf",
            "[Output]\nFormat=sysext\nImageVersion=8\n",
        ),
    ]);
    let p = load_ok(&root);
    let sub = p.image("sub").unwrap();
    // Universal: imposed.
    assert_eq!(sub.release.value, "16.0");
    assert_eq!(sub.mirror.as_ref().unwrap().value, "http://mirror");
    // Inherited: passed down, overridable.
    assert_eq!(sub.image_id.as_ref().unwrap().value, "top");
    assert_eq!(sub.image_version.as_ref().unwrap().value, "8");
    // Local: not passed down.
    assert!(sub.packages.is_empty());
    assert!(!sub.with_recommends.value);
    // Environment: only PassEnvironment= names.
    assert_eq!(sub.environment.keys().collect::<Vec<_>>(), ["PASSED"]);
    // The subimage's name wins over ImageId for the default output.
    assert_eq!(sub.output.value, "sub_8");

    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=none\n"),
        ("mkosi.images/sub.conf", "[Distribution]\nRelease=16.0\n"),
    ]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert!(
        e.starts_with("mkosi.images/sub.conf:2: Release= cannot be configured in image \"sub\""),
        "{e}"
    );
}

#[test]
fn unknown_settings_warn_with_file_and_line() {
    let (_d, root) = tree(&[(
        "mkosi.conf",
        "[Output]\nFormat=sysext\n\n[Content]\nNoSuchSetting=1\nPackages=a\n[Output]\nWithRecommends=yes\n[Weird]\nX=1\n",
    )]);
    let p = load_ok(&root);
    assert_eq!(
        warnings(&p),
        [
            "mkosi.conf:5: unknown setting NoSuchSetting=, ignored",
            "mkosi.conf:8: WithRecommends= should be configured in [Content], not [Output]",
            "mkosi.conf:9: unknown section [Weird], its settings are ignored",
        ]
    );
    assert!(p.main().with_recommends.value);
}

#[test]
fn unimplemented_settings_error_or_warn() {
    // Would change the output: an error naming file and line.
    let (_d, root) = tree(&[(
        "mkosi.conf",
        "[Output]\nFormat=sysext\n[Content]\nRemoveFiles=/usr/share/doc\nSELinuxRelabel=yes\nWithDocs=yes\n",
    )]);
    let e = load(&root, &x86()).unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)));
    assert_eq!(
        e.to_string(),
        "mkosi.conf:4: RemoveFiles=/usr/share/doc is not implemented by elsx and would change image \"main\"\n\
         mkosi.conf:5: SELinuxRelabel=enabled is not implemented by elsx and would change image \"main\""
    );

    // Cannot change the output: a warning.
    let (_d, root) = tree(&[(
        "mkosi.conf",
        "[Output]\nFormat=sysext\n[Build]\nWithNetwork=yes\nCacheDirectory=cache\n",
    )]);
    let p = load_ok(&root);
    assert_eq!(
        warnings(&p),
        [
            "mkosi.conf:4: WithNetwork= is not implemented by elsx; it does not change the output, ignored",
            "mkosi.conf:5: CacheDirectory= is not implemented by elsx; it does not change the output, ignored",
        ]
    );

    // mkosi runs the build scripts of a Format=none image.
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=none\n"),
        ("mkosi.build", ""),
    ]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "mkosi.build: BuildScripts={}/mkosi.build is not implemented by elsx and would change image \"main\"",
            root.display()
        )
    );

    // In an image that is not built, it does not matter.
    let (_d, root) = tree(&[(
        "mkosi.conf",
        "[Output]\nFormat=none\n[Content]\nRemoveFiles=/x\n",
    )]);
    load_ok(&root);

    // Universal settings reach every subimage: the error names the top-level line.
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Output]\nFormat=none\n[Content]\nPackageDirectories=pkgs\n",
        ),
        ("pkgs/", ""),
        ("mkosi.images/a.conf", "[Output]\nFormat=sysext\n"),
        ("mkosi.images/b.conf", "[Output]\nFormat=sysext\n"),
    ]);
    let e = load(&root, &x86()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "mkosi.conf:4: PackageDirectories={}/pkgs is not implemented by elsx and would change image \"a\"",
            root.display()
        )
    );
}

#[test]
fn single_image_sysext_from_extra_tree() {
    // Like Elemental's kubectl example: no packages, one binary from mkosi.extra/.
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Distribution]\nDistribution=opensuse\n\n[Output]\nFormat=sysext\nImageId=kubectl\nImageVersion=1.31.0\nOutput=%i-%v.%a\n\n[Validation]\nVerity=hash\n\n[Build]\nEnvironment=SYSEXT_SCOPE=system\n",
        ),
        ("mkosi.extra/usr/bin/kubectl", "#!/bin/sh\n"),
    ]);
    let p = load_ok(&root);
    assert_eq!(names(&p), ["main"]);
    let m = p.main();
    assert!(m.build);
    assert!(m.packages.is_empty());
    assert_eq!(m.extra_trees.len(), 1);
    assert_eq!(m.extra_trees[0].value.source, root.join("mkosi.extra"));
    assert_eq!(m.extra_trees[0].value.target, None);
    assert_eq!(
        m.extra_trees[0].origin,
        Origin::Found {
            path: "mkosi.extra".into()
        }
    );
    assert_eq!(m.output.value, "kubectl-1.31.0.x86-64");
    assert_eq!(
        m.output_file().as_deref(),
        Some("kubectl-1.31.0.x86-64.raw")
    );
    assert_eq!(m.verity.value, Verity::Hash);
    assert_eq!(m.extension_scope(), "system");
    // No OutputDirectory= and no mkosi.output/: outputs go to the config directory.
    assert!(m.output_directory.is_none());
    assert_eq!(m.output_dir(), root);
}

#[test]
fn image_id_names_the_default_output() {
    let (_d, root) = tree(&[(
        "mkosi.conf",
        "[Output]\nFormat=sysext\nImageId=foo\nImageVersion=2\n",
    )]);
    let p = load_ok(&root);
    assert_eq!(p.main().output.value, "foo_2");
    assert!(p.main().output.origin.is_default());
    assert_eq!(p.main().output_file().as_deref(), Some("foo_2.raw"));

    let (_d, root) = tree(&[("mkosi.conf", "[Output]\nFormat=sysext\n")]);
    assert_eq!(
        load_ok(&root).main().output_file().as_deref(),
        Some("image.raw")
    );
}

#[test]
fn verity_values() {
    for (v, want) in [
        ("hash", Verity::Hash),
        ("no", Verity::Disabled),
        ("yes", Verity::Signed),
        ("defer", Verity::Defer),
    ] {
        let (_d, root) = tree(&[(
            "mkosi.conf",
            &format!("[Output]\nFormat=sysext\n[Validation]\nVerity={v}\n"),
        )]);
        assert_eq!(load_ok(&root).main().verity.value, want, "{v}");
    }
    let (_d, root) = tree(&[("mkosi.conf", "[Output]\nFormat=sysext\n")]);
    assert_eq!(load_ok(&root).main().verity.value, Verity::Auto);
}

#[test]
fn default_paths_scripts_trees_and_files() {
    let (_d, root) = tree(&[
        ("mkosi.conf", "[Output]\nFormat=sysext\n"),
        ("mkosi.version", "5.0\n"),
        ("mkosi.env", "FROM_FILE=1\nOVERRIDDEN=file\n"),
        (
            "mkosi.conf.d/env.conf",
            "[Build]\nEnvironment=OVERRIDDEN=conf\n",
        ),
        ("mkosi.skeleton.tar", ""),
        ("mkosi.extra/", ""),
        ("mkosi.postinst", ""),
        ("mkosi.postinst.chroot", ""),
        ("mkosi.finalize.d/20-b", ""),
        ("mkosi.finalize.d/10-a", ""),
        ("mkosi.postoutput", ""),
        ("mkosi.output/", ""),
    ]);
    let p = load_ok(&root);
    let m = p.main();
    assert_eq!(m.image_version.as_ref().unwrap().value, "5.0");
    assert_eq!(m.output.value, "image_5.0");
    assert_eq!(
        m.skeleton_trees[0].value.source,
        root.join("mkosi.skeleton.tar")
    );
    assert_eq!(m.extra_trees[0].value.source, root.join("mkosi.extra"));
    let paths = |v: &[elsx::mkosi::Valued<PathBuf>]| -> Vec<PathBuf> {
        v.iter().map(|x| x.value.clone()).collect()
    };
    assert_eq!(
        paths(&m.postinst_scripts),
        [
            root.join("mkosi.postinst"),
            root.join("mkosi.postinst.chroot")
        ]
    );
    assert_eq!(
        paths(&m.finalize_scripts),
        [
            root.join("mkosi.finalize.d/10-a"),
            root.join("mkosi.finalize.d/20-b")
        ]
    );
    assert_eq!(
        paths(&m.postoutput_scripts),
        [root.join("mkosi.postoutput")]
    );
    assert_eq!(m.environment["FROM_FILE"].value, "1");
    assert_eq!(m.environment["FROM_FILE"].origin, line("mkosi.env", 1));
    assert_eq!(m.environment["OVERRIDDEN"].value, "conf");
    assert_eq!(m.output_dir(), root.join("mkosi.output"));
}

#[test]
fn config_in_a_mkosi_subdirectory_profiles_and_local_config() {
    let (_d, root) = tree(&[
        (
            "mkosi/mkosi.conf",
            "[Config]\nProfiles=extra\n[Output]\nFormat=sysext\nImageId=conf\n",
        ),
        (
            "mkosi/mkosi.profiles/extra.conf",
            "[Content]\nPackages=from-profile\n",
        ),
        ("mkosi/mkosi.local.conf", "[Output]\nImageId=local\n"),
    ]);
    let p = load_ok(&root);
    let m = p.main();
    assert_eq!(values(&m.packages), ["from-profile"]);
    // mkosi.local.conf wins over the config files parsed after it.
    assert_eq!(m.image_id.as_ref().unwrap().value, "local");
    assert_eq!(m.config_directory, root.join("mkosi"));
}

#[test]
fn bad_values_name_file_and_line() {
    let cases = [
        (
            "[Output]\nFormat=raw\n",
            "mkosi.conf:2: Format=: 'raw' is not a valid Format=",
        ),
        (
            "[Output]\nOverlay=maybe\n",
            "mkosi.conf:2: Overlay=: invalid boolean literal",
        ),
        (
            "[Output]\nOutput=a/b\n",
            "mkosi.conf:2: Output=: \"a/b\" is not a valid file name",
        ),
        (
            "Format=sysext\n",
            "mkosi.conf:1: setting \"Format=sysext\" is outside of any section",
        ),
        (
            "[Match]\nPackages=a\n",
            "mkosi.conf:2: Packages= cannot be used in [Match]",
        ),
    ];
    for (text, want) in cases {
        let (_d, root) = tree(&[("mkosi.conf", text)]);
        let e = load(&root, &x86()).unwrap_err().to_string();
        assert!(e.starts_with(want), "{text:?}: {e}");
    }
}

#[test]
fn summary_explains_values_and_origins() {
    let (_d, root) = elemental();
    let p = load_ok(&root);
    let tools: &Resolved = p.image("tools").unwrap();
    let s = tools.summary();
    let want = format!(
        "IMAGE: tools\n    output: {}/mkosi.output/tools-1.0_1.0_x86-64.raw (link tools-1.0_1.0_x86-64)\n",
        root.display()
    );
    assert!(s.starts_with(&want), "{s}");
    let overlay = s
        .lines()
        .find(|l| l.trim_start().starts_with("Overlay="))
        .unwrap();
    assert!(overlay.contains("Overlay=yes"), "{overlay}");
    assert!(
        overlay.ends_with("mkosi.images/tools/mkosi.conf:9"),
        "{overlay}"
    );
    let arch = s
        .lines()
        .find(|l| l.trim_start().starts_with("Architecture="))
        .unwrap();
    assert!(arch.ends_with("default"), "{arch}");
}

#[test]
fn match_versions_environment_and_profiles() {
    let (_d, root) = tree(&[
        (
            "mkosi.conf",
            "[Config]\nProfiles=dev\n[Output]\nFormat=sysext\nImageVersion=1.2~rc1\n[Build]\nEnvironment=MODE=debug FLAG\n",
        ),
        (
            "mkosi.conf.d/10.conf",
            "[Match]\nImageVersion=<1.2\n[Content]\nPackages=rc\n",
        ),
        (
            "mkosi.conf.d/11.conf",
            "[Match]\nImageVersion=>=1.2\n[Content]\nPackages=final\n",
        ),
        (
            "mkosi.conf.d/20.conf",
            "[Match]\nEnvironment=MODE=debug\nEnvironment=FLAG\n[Content]\nPackages=env\n",
        ),
        (
            "mkosi.conf.d/21.conf",
            "[Match]\nEnvironment=MODE=release\n[Content]\nPackages=env-release\n",
        ),
        (
            "mkosi.conf.d/30.conf",
            "[Match]\nSystemdVersion=>=256\n[Content]\nPackages=new-systemd\n",
        ),
        (
            "mkosi.conf.d/40.conf",
            "[Match]\nProfiles=dev\n[Content]\nPackages=dev\n",
        ),
        (
            "mkosi.conf.d/41.conf",
            "[Match]\nProfiles=prod\n[Content]\nPackages=prod\n",
        ),
    ]);
    let mut host = x86();
    host.systemd_version = Some("257.1".into());
    let p = load(&root, &host).unwrap();
    assert_eq!(
        values(&p.main().packages),
        ["dev", "env", "new-systemd", "rc"]
    );

    host.systemd_version = None;
    let e = load(&root, &host).unwrap_err().to_string();
    assert!(
        e.starts_with("mkosi.conf.d/30.conf:2: SystemdVersion="),
        "{e}"
    );
}

#[test]
fn random_configs_never_panic() {
    let words = [
        "[Output]",
        "[Match]",
        "[Content]",
        "[TriggerMatch]",
        "[Include]",
        "Format=",
        "sysext",
        "Output=",
        "%",
        "%a",
        "%v",
        "%%",
        "|",
        "!",
        "Packages=",
        "Include=",
        "mkosi.conf",
        "ImageVersion=",
        ">=1",
        "Architecture=",
        "uefi",
        "Environment=",
        "\"",
        "'",
        "\\",
        "\n",
        "\n ",
        "=",
        "#",
        "BaseTrees=",
        "..",
        "/",
        "ExtraTrees=",
        "a:b",
        "a:/b",
        "SplitArtifacts=",
        "yes",
        "Dependencies=",
        "x",
    ];
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        let mut text = String::new();
        for _ in 0..(x % 30) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            text.push_str(words[(x % words.len() as u64) as usize]);
        }
        let (_d, root) = tree(&[("mkosi.conf", &text), ("mkosi.images/x.conf", &text)]);
        let _ = load(&root, &x86());
    }
}
