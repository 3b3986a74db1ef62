//! End to end: the embedded demo (examples/demo/recipe.toml, its file:// repository in
//! examples/demo/repo), built offline.

mod support;

use support::*;

#[test]
fn demo_recipe_builds_a_system_extension() {
    let recipe = manifest_dir().join("examples/demo/recipe.toml");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let run = elsx([
        "build".as_ref(),
        recipe.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--offline".as_ref(),
    ]);
    run.assert_success();
    let image = out.join("demo-tool.raw");
    assert_eq!(dir_entries(&out), ["demo-tool.raw"], "{run}");

    let d = dissect(&image);
    assert!(
        d.contains("✓ extension for system"),
        "systemd-dissect:\n{d}"
    );
    assert!(d.contains("SYSEXT_ID=demo-tool"), "systemd-dissect:\n{d}");

    let list = list_image(&image);
    assert_only_usr_and_opt(&list);
    assert_eq!(list["usr/bin/demo-tool"].mode, "-rwxr-xr-x", "{list:#?}");
    assert_eq!(list["usr/bin/dt"].target.as_deref(), Some("demo-tool"));
    let so = &list["usr/lib64/libdemoext.so.2"];
    assert!(so.is_symlink(), "{so:?}");
    let target = so.target.as_deref().unwrap();
    assert!(
        list.get(&format!("usr/lib64/{target}"))
            .is_some_and(Listed::is_file),
        "libdemoext.so.2 -> {target} dangles: {list:#?}"
    );
    assert!(list.contains_key("usr/share/demo-data/data.txt"));
    assert!(
        list.contains_key("usr/lib/extension-release.d/extension-release.demo-tool"),
        "{list:#?}"
    );
    for p in list.keys() {
        assert!(!p.contains("libdemo.so"), "{p}: libdemo1 is in the base");
        assert!(!p.contains("demo-sh"), "{p}: demo-shell is in the base");
        assert_ne!(p, "usr/lib/os-release");
    }

    let root = tmp.path().join("root");
    extract_image(&image, &root);
    assert_eq!(
        std::fs::read_to_string(root.join("usr/share/demo-data/data.txt")).unwrap(),
        "demo data, version 1.2\n",
        "demo-data 1.2 wins over 1.0"
    );
    let rel = parse_env_file(
        &std::fs::read_to_string(
            root.join("usr/lib/extension-release.d/extension-release.demo-tool"),
        )
        .unwrap(),
    );
    assert_eq!(rel["ID"], "elsx-demo");
    assert_eq!(rel["VERSION_ID"], "1.0");
    assert_eq!(rel["SYSEXT_VERSION_ID"], "0.3.0");
    assert_eq!(rel["SYSEXT_SCOPE"], "system portable");
    assert_eq!(rel["ARCHITECTURE"], "x86-64");

    // The summary names the image under -o (not the default examples/demo/out/).
    assert!(
        run.stdout.contains(&format!("wrote {}", image.display())),
        "{run}"
    );
}
