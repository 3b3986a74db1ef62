//! Running mkosi's scripts (`mkosi.postinst`, `mkosi.finalize`, `mkosi.postoutput`) the way
//! mkosi does: with the host's tools, the image tree visible at `/buildroot`, the configuration
//! directory at `/work/src`, the output directory at `/work/out`, and mkosi's variables.
//!
//! The mount namespace comes from bubblewrap, so nothing is mounted on the host and the script
//! cannot see the rest of the build machine's working directories.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    #[error(
        "{name}: running it needs bubblewrap (`bwrap`, Debian and openSUSE package bubblewrap): {source}"
    )]
    Bwrap {
        name: String,
        source: std::io::Error,
    },
    #[error("{name} failed with exit code {code}")]
    Failed { name: String, code: i32 },
    #[error("{name} was killed by a signal")]
    Killed { name: String },
}

/// Where things are for a script.
pub struct Mounts<'a> {
    pub buildroot: &'a Path,
    pub srcdir: &'a Path,
    pub outputdir: &'a Path,
}

/// Runs `script` (its file name, e.g. `mkosi.finalize`, names it in errors) with `env` set.
pub fn run(
    script: &Path,
    m: &Mounts<'_>,
    env: &BTreeMap<String, String>,
) -> Result<(), ScriptError> {
    let name = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut cmd = Command::new("bwrap");
    // A fresh root with the host's programs read-only, and the three directories the script may
    // change.
    for dir in ["/usr", "/etc", "/opt"] {
        if Path::new(dir).is_dir() {
            cmd.args(["--ro-bind", dir, dir]);
        }
    }
    for link in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
        let host = Path::new("/").join(link);
        match std::fs::read_link(&host) {
            Ok(target) => {
                cmd.arg("--symlink").arg(target).arg(&host);
            }
            Err(_) if host.is_dir() => {
                cmd.arg("--ro-bind").arg(&host).arg(&host);
            }
            Err(_) => {}
        }
    }
    cmd.args([
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/var/tmp",
        "--die-with-parent",
    ]);
    cmd.arg("--bind").arg(m.buildroot).arg("/buildroot");
    cmd.arg("--bind").arg(m.srcdir).arg("/work/src");
    cmd.arg("--bind").arg(m.outputdir).arg("/work/out");
    cmd.arg("--ro-bind")
        .arg(script)
        .arg(format!("/work/{name}"));
    cmd.args(["--chdir", "/work/src"]);
    cmd.env_clear();
    cmd.env(
        "PATH",
        "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    );
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.env("BUILDROOT", "/buildroot");
    cmd.env("SRCDIR", "/work/src");
    cmd.env("OUTPUTDIR", "/work/out");
    cmd.env("SCRIPT", format!("/work/{name}"));
    cmd.arg(format!("/work/{name}"));
    let status = cmd.status().map_err(|source| ScriptError::Bwrap {
        name: name.clone(),
        source,
    })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => Err(ScriptError::Failed { name, code }),
        None => Err(ScriptError::Killed { name }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn script(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("mkosi.finalize");
        std::fs::write(&p, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn sees_buildroot_and_variables_and_reports_failures() {
        if Command::new("bwrap").arg("--version").output().is_err() {
            panic!("bubblewrap is not installed (Debian package bubblewrap)");
        }
        let (root, src, out) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        std::fs::create_dir_all(root.path().join("usr/lib")).unwrap();
        let m = Mounts {
            buildroot: root.path(),
            srcdir: src.path(),
            outputdir: out.path(),
        };
        let env = BTreeMap::from([("IMAGE_VERSION".to_owned(), "1.0".to_owned())]);
        let ok = script(
            src.path(),
            "echo \"v=$IMAGE_VERSION\" > \"$BUILDROOT/usr/lib/marker\"; touch \"$OUTPUTDIR/out\"; test \"$(pwd)\" = /work/src",
        );
        run(&ok, &m, &env).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.path().join("usr/lib/marker")).unwrap(),
            "v=1.0\n"
        );
        assert!(out.path().join("out").exists());
        let bad = script(src.path(), "exit 3");
        let e = run(&bad, &m, &env).unwrap_err();
        assert_eq!(e.to_string(), "mkosi.finalize failed with exit code 3");
    }
}
