//! The merger: turns a mkosi config directory into images, the way mkosi's `ParseContext` and
//! `parse_config()` do.
//!
//! Order of a directory (`parse_config_one`): its `mkosi.conf` `[Match]`/`[Assert]` sections
//! are checked first against the values parsed so far (a failed match skips the whole file, and
//! for a directory's `mkosi.conf` the whole directory); then `mkosi.local/` and
//! `mkosi.local.conf` (whose values then override later files); then default paths
//! (`mkosi.extra/`, `mkosi.finalize`, `mkosi.version`, …); then the settings of `mkosi.conf`
//! in order, each `Include=` parsed right after the line that names it (every path once); then
//! `mkosi.conf.d/` entries sorted by name (`*.conf` files, and directories parsed like a
//! top-level directory); then `mkosi.profiles/<profile>[.conf]` for the configured profiles.
//!
//! The current directory (`%P`, and the base of relative paths, `Include=` among them) is the
//! directory being parsed: the top level, a `mkosi.conf.d/` subdirectory, an included directory,
//! a subimage directory; `mkosi.conf.d/*.conf` files and included files do not change it.
//!
//! Subimages (`mkosi.images/<name>/` or `<name>.conf`, sorted) start from the top level's final
//! values: universal settings imposed (a subimage that sets one is an error), inherited settings
//! as overridable values, `Environment=` only for the names in `PassEnvironment=`, local
//! settings not at all. The top level's `Dependencies=` (default: every subimage whose
//! `[Match]` passed) picks the subimages; they are ordered topologically and the top-level image
//! comes last.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::ini::{self, Section};
use super::matching::{self, version_matches};
use super::resolved::{Final, Format, Frame, Resolved};
use super::settings::{
    self, ARCHITECTURES, CONDITION_SECTIONS, DISTRIBUTIONS, DefaultValue, SETTINGS, Scope, Setting,
    Support,
};
use super::value::{self, Ctx, Slot, Value, is_builtin_config};
use super::{Diagnostic, Origin, Valued};

/// What mkosi would take from the machine it runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Host {
    /// The native architecture in systemd's naming (`x86-64`, `arm64`): `Architecture=`'s default.
    pub architecture: String,
    /// The host's distribution if mkosi supports it (`Distribution=`'s default, else `custom`).
    pub distribution: Option<String>,
    /// The host's release (`Release=`'s default when the distribution matches).
    pub release: Option<String>,
    /// `systemctl --version`, for `[Match] SystemdVersion=`.
    pub systemd_version: Option<String>,
    /// The environment (`Environment=KEY` pass-through, `$VAR` and `~` in paths,
    /// `SOURCE_DATE_EPOCH`).
    pub environment: BTreeMap<String, String>,
}

impl Host {
    /// A host of this architecture and nothing else (tests, reproducible summaries).
    pub fn new(architecture: &str) -> Host {
        Host {
            architecture: architecture.into(),
            ..Host::default()
        }
    }

    /// This machine: its architecture, `/etc/os-release`, `systemctl --version` and environment.
    pub fn detect() -> Host {
        let os_release = ["/etc/os-release", "/usr/lib/os-release"]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|t| crate::sysext::parse_os_release(&t))
            .unwrap_or_default();
        let (distribution, release) = detect_distribution(&os_release);
        let systemd_version = std::process::Command::new("systemctl")
            .arg("--version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .split_whitespace()
                    .nth(1)
                    .map(str::to_string)
            });
        Host {
            architecture: native_architecture().into(),
            distribution,
            release,
            systemd_version,
            environment: std::env::vars().collect(),
        }
    }
}

/// mkosi's `Architecture.native()` for the architecture this binary runs on.
fn native_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86-64",
        "x86" => "x86",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64-le",
        "powerpc64" => "ppc64",
        "powerpc" => "ppc",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "riscv32" => "riscv32",
        "loongarch64" => "loongarch64",
        "mips64" => "mips64-le",
        "mips" => "mips-le",
        other => other,
    }
}

/// mkosi's `detect_distribution()`: the first of ID and ID_LIKE that mkosi supports, and the
/// release (`tumbleweed` for openSUSE Tumbleweed, else VERSION_ID or, for apt distributions,
/// VERSION_CODENAME).
fn detect_distribution(os_release: &[(String, String)]) -> (Option<String>, Option<String>) {
    let get = |k: &str| {
        os_release
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let id = get("ID");
    let mut candidates: Vec<String> = id.iter().cloned().collect();
    candidates.extend(
        get("ID_LIKE")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string),
    );
    let dist = candidates.iter().find_map(|c| {
        let c = if c == "azurelinux" {
            "azure"
        } else {
            c.as_str()
        };
        DISTRIBUTIONS.contains(&c).then(|| c.to_string())
    });
    let mut release = if id.as_deref() == Some("opensuse-tumbleweed") {
        Some("tumbleweed".to_string())
    } else {
        get("VERSION_ID")
    };
    if matches!(dist.as_deref(), Some("debian" | "ubuntu" | "kali"))
        && let Some(c) = get("VERSION_CODENAME")
    {
        release = Some(c);
    }
    if let Some(d) = &dist
        && release.is_none()
    {
        release = Some(default_release(d).to_string()).filter(|r| !r.is_empty());
    }
    (dist, release)
}

/// The distribution's default release (mkosi's `Installer.default_release()`).
pub fn default_release(distribution: &str) -> &'static str {
    match distribution {
        "fedora" => "rawhide",
        "debian" => "testing",
        "kali" => "kali-rolling",
        "ubuntu" => "devel",
        "postmarketos" => "edge",
        "arch" => "rolling",
        "opensuse" => "tumbleweed",
        "mageia" => "cauldron",
        "centos" | "rhel" | "rhel-ubi" | "rocky" | "alma" => "10",
        "openmandriva" => "cooker",
        "azure" => "3.0",
        _ => "",
    }
}

/// The distribution's default file system (`%F`).
pub fn default_filesystem(distribution: &str) -> &'static str {
    match distribution {
        "fedora" | "opensuse" => "btrfs",
        "centos" | "rhel" | "rhel-ubi" | "rocky" | "alma" => "xfs",
        _ => "ext4",
    }
}

/// A setting elsx does not implement, set to a value that would change an image.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Unsupported {
    pub origin: Origin,
    pub setting: &'static str,
    pub value: String,
    pub image: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}={} is not implemented by elsx and would change image {:?}",
            self.origin, self.setting, self.value, self.image
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ini(#[from] ini::Error),
    /// A value the setting does not accept.
    #[error("{origin}: {setting}=: {message}")]
    Value {
        origin: Origin,
        setting: &'static str,
        message: String,
    },
    /// Anything else a config file says wrongly.
    #[error("{origin}: {message}")]
    Config { origin: Origin, message: String },
    /// fs-err errors name the path.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("image dependency cycle detected: {}", .0.join(" => "))]
    Cycle(Vec<String>),
    #[error("{origin}: no image named {name:?} in mkosi.images/ (Dependencies=)")]
    UnknownImage { origin: Origin, name: String },
    #[error("{}", .0.iter().map(|u| u.to_string()).collect::<Vec<_>>().join("\n"))]
    Unsupported(Vec<Unsupported>),
}

/// A loaded config directory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Project {
    pub directory: PathBuf,
    /// Build order: the selected subimages by `Dependencies=`, then the top level (`main`).
    pub images: Vec<Resolved>,
    pub warnings: Vec<Diagnostic>,
}

impl Project {
    /// The top-level image.
    pub fn main(&self) -> &Resolved {
        self.images
            .last()
            .expect("the top-level image is always present")
    }

    /// The images that produce output (`Format=` is not `none`), in build order.
    pub fn built(&self) -> impl Iterator<Item = &Resolved> {
        self.images.iter().filter(|i| i.build)
    }

    pub fn image(&self, name: &str) -> Option<&Resolved> {
        self.images.iter().find(|i| i.image == name)
    }

    /// Warnings, then every image's summary.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for w in &self.warnings {
            out.push_str(&format!("warning: {w}\n"));
        }
        for (i, image) in self.images.iter().enumerate() {
            if i > 0 || !self.warnings.is_empty() {
                out.push('\n');
            }
            out.push_str(&image.summary());
        }
        out
    }
}

/// Loads the mkosi config in `directory` as mkosi would when run there for `host`.
pub fn load(directory: &Path, host: &Host) -> Result<Project, Error> {
    let directory = fs_err::canonicalize(directory)?;
    let configdir = config_dir(&directory);
    let mut warnings = Vec::new();

    let mut main = Context::new(host, &directory, "main", configdir.clone());
    main.parse_one(&configdir, true, true, true)?;
    let mut main_ns = main.finalize_all();
    let explicit_deps =
        main.cli.contains_key("Dependencies") || main.config.contains_key("Dependencies");
    warnings.append(&mut main.warnings);

    // What every subimage starts from.
    let mut shared = Namespace::new();
    let mut inherited = Namespace::new();
    for s in SETTINGS {
        if s.scope.shared() {
            shared.insert(s.name, main_ns[s.name].clone());
        } else if s.scope == Scope::Inherit {
            inherited.insert(s.name, main_ns[s.name].clone());
        }
    }
    let passed: BTreeMap<String, Valued<String>> = {
        let f = Final(&main_ns);
        let names: Vec<String> = f
            .list("PassEnvironment")
            .into_iter()
            .map(|v| v.value)
            .collect();
        f.map("Environment")
            .into_iter()
            .filter(|(k, _)| names.contains(k))
            .collect()
    };

    let mut subimages = Vec::new();
    let mut default_deps = Vec::new();
    let imagedir = configdir.join("mkosi.images");
    if imagedir.exists() {
        for p in sorted_entries(&imagedir)? {
            let is_dir = p.is_dir();
            let file_name = p.file_name().unwrap_or_default().to_string_lossy();
            if !is_dir && !is_conf(&p) {
                continue;
            }
            let name = file_name
                .strip_suffix(".conf")
                .unwrap_or(&file_name)
                .to_string();
            if name.is_empty() {
                return Err(Error::Config {
                    origin: Origin::Found { path: p.clone() },
                    message: "not a valid image name".into(),
                });
            }
            // A `NAME.conf` subimage is parsed where mkosi runs, not in mkosi.images/.
            let cwd = if is_dir { p.clone() } else { directory.clone() };
            let mut cx = Context::new(host, &directory, &name, cwd);
            cx.cli = shared.clone();
            cx.config = inherited.clone();
            cx.config
                .insert("Environment", Some(Value::Map(passed.clone())));
            let matched = cx.parse_one(&p, is_dir, is_dir, true)?;
            warnings.append(&mut cx.warnings);
            if !matched {
                continue;
            }
            let ns = cx.finalize_all();
            if !explicit_deps {
                default_deps.push(Valued::new(name.clone(), Origin::Default));
            }
            subimages.push(Image {
                name,
                ns,
                files: cx.files,
            });
        }
    }
    if !explicit_deps {
        main_ns.insert("Dependencies", Some(Value::Many(default_deps)));
    }
    let wanted = Final(&main_ns).list("Dependencies");
    let ordered = resolve_deps(subimages, &wanted)?;

    let mut images = Vec::new();
    let mut unsupported = Vec::new();
    let main_image = Image {
        name: "main".into(),
        ns: main_ns,
        files: main.files,
    };
    for img in ordered.into_iter().chain([main_image]) {
        let file_environment = read_environment_files(&img.ns, host, &directory)?;
        let resolved = Resolved::new(
            &img.ns,
            Frame {
                image: img.name.clone(),
                directory: directory.clone(),
                config_directory: configdir.clone(),
                files: img.files,
                file_environment,
            },
        );
        // A universal setting reaches every subimage: report each assignment once.
        for u in check_support(&img.ns, &img.name, resolved.build) {
            if !unsupported
                .iter()
                .any(|x: &Unsupported| x.origin == u.origin && x.setting == u.setting)
            {
                unsupported.push(u);
            }
        }
        images.push(resolved);
    }
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(unsupported));
    }
    let mut seen = HashSet::new();
    warnings.retain(|w| seen.insert(w.clone()));
    Ok(Project {
        directory,
        images,
        warnings,
    })
}

/// mkosi's `finalize_configdir()`: the config may live in a `mkosi/` subdirectory.
fn config_dir(directory: &Path) -> PathBuf {
    let has = |d: &Path| d.join("mkosi.conf").exists() || d.join("mkosi.tools.conf").exists();
    let sub = directory.join("mkosi");
    if !has(directory)
        && (sub.join("mkosi.conf").is_file() || sub.join("mkosi.tools.conf").exists())
    {
        sub
    } else {
        directory.to_path_buf()
    }
}

fn is_conf(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() > ".conf".len() && n.ends_with(".conf"))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let mut v = fs_err::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?;
    v.sort();
    Ok(v)
}

type Namespace = BTreeMap<&'static str, Slot>;

struct Image {
    name: String,
    ns: Namespace,
    files: Vec<PathBuf>,
}

/// mkosi's `resolve_deps()`: the images reachable from `wanted`, in dependency order.
fn resolve_deps(images: Vec<Image>, wanted: &[Valued<String>]) -> Result<Vec<Image>, Error> {
    let deps_of: HashMap<String, Vec<Valued<String>>> = images
        .iter()
        .map(|i| (i.name.clone(), Final(&i.ns).list("Dependencies")))
        .collect();
    let mut selected: HashSet<String> = HashSet::new();
    let mut queue: VecDeque<Valued<String>> = wanted.iter().cloned().collect();
    while let Some(d) = queue.pop_front() {
        let Some(next) = deps_of.get(&d.value) else {
            return Err(Error::UnknownImage {
                origin: d.origin,
                name: d.value,
            });
        };
        if selected.insert(d.value.clone()) {
            queue.extend(next.iter().cloned());
        }
    }
    let images: Vec<Image> = images
        .into_iter()
        .filter(|i| selected.contains(&i.name))
        .collect();
    let graph: Vec<(String, Vec<String>)> = images
        .iter()
        .map(|i| {
            let deps = deps_of[&i.name].iter().map(|d| d.value.clone());
            (i.name.clone(), deps.collect())
        })
        .collect();
    let order = toposort(&graph).map_err(Error::Cycle)?;
    let mut images = images;
    images.sort_by_key(|i| order.iter().position(|n| *n == i.name));
    Ok(images)
}

/// Python's `graphlib.TopologicalSorter(graph).static_order()`, which mkosi uses, so that
/// independent images come in the same order: `graph` maps a node to its predecessors. On a
/// cycle, the cycle as graphlib reports it (first node repeated at the end).
fn toposort(graph: &[(String, Vec<String>)]) -> Result<Vec<String>, Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut preds: Vec<usize> = Vec::new();
    let mut succs: Vec<Vec<usize>> = Vec::new();
    let mut node =
        |n: &str, names: &mut Vec<String>, preds: &mut Vec<usize>, succs: &mut Vec<Vec<usize>>| {
            *index.entry(n.to_string()).or_insert_with(|| {
                names.push(n.to_string());
                preds.push(0);
                succs.push(Vec::new());
                names.len() - 1
            })
        };
    for (n, ps) in graph {
        let i = node(n, &mut names, &mut preds, &mut succs);
        preds[i] += ps.len();
        for p in ps {
            let j = node(p, &mut names, &mut preds, &mut succs);
            succs[j].push(i);
        }
    }
    if let Some(cycle) = find_cycle(&succs) {
        return Err(cycle.into_iter().map(|i| names[i].clone()).collect());
    }
    let mut order = Vec::new();
    let mut ready: Vec<usize> = (0..names.len()).filter(|&i| preds[i] == 0).collect();
    while !ready.is_empty() {
        let mut next = Vec::new();
        for &n in &ready {
            order.push(names[n].clone());
            for &s in &succs[n] {
                preds[s] -= 1;
                if preds[s] == 0 {
                    next.push(s);
                }
            }
        }
        ready = next;
    }
    Ok(order)
}

/// graphlib's `_find_cycle`: depth first along successors, nodes in insertion order.
fn find_cycle(succs: &[Vec<usize>]) -> Option<Vec<usize>> {
    let mut seen = vec![false; succs.len()];
    for start in 0..succs.len() {
        if seen[start] {
            continue;
        }
        let mut stack: Vec<usize> = Vec::new();
        let mut its: Vec<usize> = Vec::new();
        let mut on_stack: HashMap<usize, usize> = HashMap::new();
        let mut node = start;
        loop {
            if seen[node] {
                if let Some(&at) = on_stack.get(&node) {
                    let mut cycle = stack[at..].to_vec();
                    cycle.push(node);
                    return Some(cycle);
                }
            } else {
                seen[node] = true;
                on_stack.insert(node, stack.len());
                stack.push(node);
                its.push(0);
            }
            // Backtrack to the topmost entry with another successor.
            let mut advanced = false;
            while let Some(&top) = stack.last() {
                let k = its.last_mut().expect("parallel stacks");
                if let Some(&s) = succs[top].get(*k) {
                    *k += 1;
                    node = s;
                    advanced = true;
                    break;
                }
                on_stack.remove(&top);
                stack.pop();
                its.pop();
            }
            if !advanced {
                break;
            }
        }
    }
    None
}

/// `EnvironmentFiles=` entries: `KEY=VALUE` lines, a bare `KEY` taking the host's value.
fn read_environment_files(
    ns: &Namespace,
    host: &Host,
    directory: &Path,
) -> Result<Vec<(String, Valued<String>)>, Error> {
    let mut out = Vec::new();
    for f in Final(ns).list("EnvironmentFiles") {
        let path = PathBuf::from(&f.value);
        let text = fs_err::read_to_string(&path)?;
        let name = relative(directory, &path);
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            // mkosi does not skip comments; a `#` line would only define a strange variable.
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim().to_string()),
                None => (
                    line,
                    host.environment.get(line).cloned().unwrap_or_default(),
                ),
            };
            let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
            out.push((k.to_string(), Valued::new(v, Origin::line(&name, n))));
        }
    }
    Ok(out)
}

/// The settings elsx does not implement whose value would matter: every such setting of an
/// image that is built; for an image that is not built (`Format=none`), build scripts, which
/// mkosi still runs.
fn check_support(ns: &Namespace, image: &str, built: bool) -> Vec<Unsupported> {
    let mut out = Vec::new();
    for s in SETTINGS {
        let Support::No { harmless } = s.support else {
            continue;
        };
        if !built && s.name != "BuildScripts" {
            continue;
        }
        let Some(Some(v)) = ns.get(s.name) else {
            continue;
        };
        for item in v.valued() {
            if item.origin.is_default() || harmless.contains(&item.value.as_str()) {
                continue;
            }
            out.push(Unsupported {
                origin: item.origin,
                setting: s.name,
                value: item.value,
                image: image.to_string(),
            });
        }
    }
    out
}

fn relative(directory: &Path, p: &Path) -> String {
    p.strip_prefix(directory).unwrap_or(p).display().to_string()
}

/// The state of parsing one image (mkosi's `ParseContext`).
struct Context<'h> {
    host: &'h Host,
    /// `%D`.
    directory: PathBuf,
    /// `main` or the subimage's name (`%I`).
    image: String,
    /// `%P`: where relative paths start.
    cwd: PathBuf,
    /// Values that override the config files: the top level's universal settings in a
    /// subimage, and `mkosi.local.conf` (mkosi's CLI namespace).
    cli: Namespace,
    config: Namespace,
    /// Defaults are computed once per image, when first needed (as mkosi caches them).
    defaults: Namespace,
    /// `(device, inode)` of every path included so far.
    includes: HashSet<(u64, u64)>,
    files: Vec<PathBuf>,
    warnings: Vec<Diagnostic>,
}

impl<'h> Context<'h> {
    fn new(host: &'h Host, directory: &Path, image: &str, cwd: PathBuf) -> Context<'h> {
        Context {
            host,
            directory: directory.to_path_buf(),
            image: image.to_string(),
            cwd,
            cli: Namespace::new(),
            config: Namespace::new(),
            defaults: Namespace::new(),
            includes: HashSet::new(),
            files: Vec::new(),
            warnings: Vec::new(),
        }
    }

    fn warn(&mut self, origin: &Origin, message: String) {
        self.warnings.push(Diagnostic {
            origin: origin.clone(),
            message,
        });
    }

    fn name_of(&self, p: &Path) -> String {
        relative(&self.directory, p)
    }

    fn prohibited(&self, s: &Setting) -> bool {
        self.image != "main" && s.scope.prohibited_in_subimage()
    }

    fn in_dir<T>(&mut self, dir: &Path, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = std::mem::replace(&mut self.cwd, dir.to_path_buf());
        let r = f(self);
        self.cwd = saved;
        r
    }

    /// mkosi's `parse_config_one()`; `path` is a directory (with `mkosi.conf` and friends) or a
    /// file. Returns whether its conditions matched.
    fn parse_one(
        &mut self,
        path: &Path,
        is_dir: bool,
        profiles: bool,
        local: bool,
    ) -> Result<bool, Error> {
        let file = if is_dir {
            path.join("mkosi.conf")
        } else {
            path.to_path_buf()
        };
        let sections = if file.is_file() {
            let text = fs_err::read_to_string(&file)?;
            Some(ini::parse(&text, &self.name_of(&file))?)
        } else {
            None
        };
        if let Some(secs) = &sections {
            if !self.conditions(secs, &file, false)? {
                return Ok(false);
            }
            self.conditions(secs, &file, true)?;
        }
        if is_dir {
            if local {
                self.parse_local(path)?;
            }
            self.default_paths()?;
        }
        if let Some(secs) = &sections {
            self.files.push(file.clone());
            for sec in secs {
                if CONDITION_SECTIONS.contains(&sec.name.as_str()) {
                    continue;
                }
                if !settings::is_settings_section(&sec.name) {
                    // mkosi skips such sections silently.
                    self.warn(
                        &sec.origin,
                        format!("unknown section [{}], its settings are ignored", sec.name),
                    );
                    continue;
                }
                for e in &sec.entries {
                    self.assign_entry(e, &sec.name, &file)?;
                    self.parse_new_includes()?;
                }
            }
        }
        if is_dir {
            let dropins = path.join("mkosi.conf.d");
            if dropins.exists() {
                for p in sorted_entries(&dropins)? {
                    if p.is_dir() {
                        self.in_dir(&p, |c| c.parse_one(&p, true, false, false))?;
                    } else if is_conf(&p) {
                        self.parse_one(&p, false, false, false)?;
                    }
                }
            }
        }
        if profiles {
            let names = self
                .finalize(settings::get("Profiles"))
                .map(|v| v.items())
                .unwrap_or_default();
            for profile in names {
                for p in [
                    self.cwd.join("mkosi.profiles").join(&profile),
                    self.cwd
                        .join("mkosi.profiles")
                        .join(format!("{profile}.conf")),
                ] {
                    if p.is_dir() {
                        self.in_dir(&p, |c| c.parse_one(&p, true, false, false))?;
                    } else if p.exists() {
                        self.parse_one(&p, false, false, false)?;
                    }
                }
            }
        }
        Ok(true)
    }

    /// `mkosi.local/` and `mkosi.local.conf`: parsed first, their values then override the
    /// config files (mkosi moves them to its CLI namespace).
    fn parse_local(&mut self, dir: &Path) -> Result<(), Error> {
        for (p, is_dir) in [
            (dir.join("mkosi.local"), true),
            (dir.join("mkosi.local.conf"), false),
        ] {
            if is_dir && p.is_dir() {
                self.in_dir(&p, |c| c.parse_one(&p, true, false, false))?;
            } else if !is_dir && p.is_file() {
                self.parse_one(&p, false, false, false)?;
            } else {
                continue;
            }
            for s in SETTINGS {
                if self.config.contains_key(s.name) {
                    let v = self.finalize(s);
                    self.cli.insert(s.name, v);
                    self.config.remove(s.name);
                }
            }
        }
        Ok(())
    }

    /// Files and directories with default names in the current directory (`mkosi.extra/`,
    /// `mkosi.finalize`, `mkosi.version`, `mkosi.finalize.d/*`, …).
    fn default_paths(&mut self) -> Result<(), Error> {
        for s in SETTINGS {
            if self.prohibited(s) {
                continue;
            }
            for suffix in s.default_paths {
                let name = format!("mkosi.{suffix}");
                let p = self.cwd.join(&name);
                if !p.exists() {
                    continue;
                }
                let origin = Origin::Found {
                    path: self.name_of(&p).into(),
                };
                let raw = if s.read_text {
                    let executable = fs_err::metadata(&p)?.permissions().mode() & 0o111 != 0;
                    if executable {
                        return Err(Error::Config {
                            origin,
                            message: format!(
                                "an executable {name} (its output is {}=) is not supported by elsx; make it a plain file",
                                s.name
                            ),
                        });
                    }
                    let text = fs_err::read_to_string(&p)?;
                    if text.starts_with("#!/") {
                        return Err(Error::Config {
                            origin,
                            message: "starts with a shebang but is not executable".into(),
                        });
                    }
                    text.trim_end_matches('\n').to_string()
                } else {
                    name
                };
                self.set(s, &raw, origin)?;
            }
            for d in s.default_dirs {
                let dir = self.cwd.join(format!("mkosi.{d}"));
                if !dir.exists() {
                    continue;
                }
                if !dir.is_dir() {
                    return Err(Error::Config {
                        origin: Origin::Found {
                            path: self.name_of(&dir).into(),
                        },
                        message: "should be a directory".into(),
                    });
                }
                for e in sorted_entries(&dir)? {
                    let origin = Origin::Found {
                        path: self.name_of(&e).into(),
                    };
                    self.set(s, &e.to_string_lossy(), origin)?;
                }
            }
        }
        Ok(())
    }

    fn assign_entry(&mut self, e: &ini::Entry, section: &str, file: &Path) -> Result<(), Error> {
        let mut key = e.key.as_str();
        if let Some(k) = key.strip_prefix('@') {
            self.warn(
                &e.origin,
                format!("the '@' prefix is deprecated, use {k}= instead of {key}="),
            );
            key = k;
        }
        let Some(s) = settings::lookup(key) else {
            self.warn(&e.origin, format!("unknown setting {key}=, ignored"));
            return Ok(());
        };
        if self.prohibited(s) {
            return Err(Error::Config {
                origin: e.origin.clone(),
                message: format!(
                    "{}= cannot be configured in image {:?}: it is a {} setting, set it in the top-level config",
                    s.name,
                    self.image,
                    s.scope.name()
                ),
            });
        }
        if section != s.section {
            self.warn(
                &e.origin,
                format!(
                    "{}= should be configured in [{}], not [{section}]",
                    s.name, s.section
                ),
            );
        }
        if key != s.name {
            self.warn(
                &e.origin,
                format!("{key}= is deprecated, use {}= instead", s.name),
            );
        }
        let raw = self.expand(&e.value, file, &e.origin);
        self.set(s, &raw, e.origin.clone())
    }

    /// Applies one assignment to the config namespace.
    fn set(&mut self, s: &'static Setting, raw: &str, origin: Origin) -> Result<(), Error> {
        let cx = Ctx {
            cwd: &self.cwd,
            env: &self.host.environment,
            origin: &origin,
        };
        let new = value::assign(s, raw, self.config.get(s.name), &cx).map_err(|message| {
            Error::Value {
                origin: origin.clone(),
                setting: s.name,
                message,
            }
        })?;
        let is_set = new.as_ref().is_some_and(|v| !v.is_empty());
        if s.support == Support::Ignored && is_set && !matches!(origin, Origin::Found { .. }) {
            self.warn(
                &origin,
                format!(
                    "{}= is not implemented by elsx; it does not change the output, ignored",
                    s.name
                ),
            );
        }
        self.config.insert(s.name, new);
        Ok(())
    }

    /// Parses every `Include=` path not parsed yet (mkosi calls this after each setting).
    fn parse_new_includes(&mut self) -> Result<(), Error> {
        let include = settings::get("Include");
        let items: Vec<Valued<String>> =
            [self.cli.get(include.name), self.config.get(include.name)]
                .into_iter()
                .flatten()
                .flatten()
                .flat_map(Value::valued)
                .collect();
        for it in items {
            if is_builtin_config(&it.value) {
                return Err(Error::Config {
                    origin: it.origin,
                    message: format!(
                        "Include={}: mkosi's built-in configs are not supported by elsx",
                        it.value
                    ),
                });
            }
            let path = PathBuf::from(&it.value);
            let md = fs_err::metadata(&path)?;
            if !self.includes.insert((md.dev(), md.ino())) {
                continue;
            }
            if md.is_dir() {
                self.in_dir(&path, |c| c.parse_one(&path, true, true, false))?;
            } else {
                self.parse_one(&path, false, false, false)?;
            }
        }
        Ok(())
    }

    /// The setting's current value: the override layer (merged with the config files for
    /// lists and maps), else the config files, else the default (mkosi's `finalize_value`).
    fn finalize(&mut self, s: &'static Setting) -> Slot {
        if let Some(Some(v)) = self.cli.get(s.name) {
            return Some(match self.config.get(s.name) {
                Some(Some(c)) => c.merged(v),
                _ => v.clone(),
            });
        }
        let in_cli = self.cli.contains_key(s.name);
        if !in_cli && let Some(Some(v)) = self.config.get(s.name) {
            return Some(v.clone());
        }
        // Reset explicitly: collections and optional settings get no default.
        if (in_cli || self.config.contains_key(s.name))
            && (s.is_list() || s.is_map() || s.default == DefaultValue::None)
        {
            return Value::empty(&s.kind);
        }
        if let Some(d) = self.defaults.get(s.name) {
            return d.clone();
        }
        let d = self.default_of(s);
        self.defaults.insert(s.name, d.clone());
        d
    }

    fn finalize_all(&mut self) -> Namespace {
        SETTINGS
            .iter()
            .map(|s| (s.name, self.finalize(s)))
            .collect()
    }

    fn default_of(&mut self, s: &'static Setting) -> Slot {
        let one = |v: &str| Some(Value::One(Valued::new(v.to_string(), Origin::Default)));
        match s.default {
            DefaultValue::None => Value::empty(&s.kind),
            DefaultValue::Value(v) if s.is_list() => Some(Value::Many(
                v.split_whitespace()
                    .map(|w| Valued::new(w.to_string(), Origin::Default))
                    .collect(),
            )),
            DefaultValue::Value(v) => one(v),
            DefaultValue::Computed => match s.name {
                "Distribution" => match &self.host.distribution {
                    Some(d) if DISTRIBUTIONS.contains(&d.as_str()) => one(d),
                    _ => one("custom"),
                },
                "Release" => {
                    let dist = self.text("Distribution");
                    match (&self.host.distribution, &self.host.release) {
                        (Some(hd), Some(hr)) if Some(hd) == dist.as_ref() => one(hr),
                        _ => one(default_release(dist.as_deref().unwrap_or("custom"))),
                    }
                }
                "Architecture" => one(&self.host.architecture),
                "Output" => {
                    let mut out = if self.image != "main" {
                        self.image.clone()
                    } else {
                        self.text("ImageId").unwrap_or_else(|| "image".into())
                    };
                    if let Some(v) = self.text("ImageVersion") {
                        out = format!("{out}_{v}");
                    }
                    one(&out)
                }
                "OutputExtension" => one(self.format().extension()),
                "CompressOutput" => one(self.format().default_compression()),
                "SourceDateEpoch" => {
                    // The man page: SOURCE_DATE_EPOCH from Environment=, then from the host.
                    let env = match self.finalize(settings::get("Environment")) {
                        Some(Value::Map(m)) => m.get("SOURCE_DATE_EPOCH").cloned(),
                        _ => None,
                    };
                    let v = env.or_else(|| {
                        self.host
                            .environment
                            .get("SOURCE_DATE_EPOCH")
                            .map(|v| Valued::new(v.clone(), Origin::Default))
                    })?;
                    v.value
                        .parse::<u64>()
                        .ok()
                        .map(|n| Value::One(Valued::new(n.to_string(), v.origin)))
                }
                other => unreachable!("no computed default for {other}"),
            },
        }
    }

    fn text(&mut self, name: &str) -> Option<String> {
        self.finalize(settings::get(name)).and_then(|v| v.text())
    }

    fn format(&mut self) -> Format {
        self.text("Format")
            .and_then(|f| Format::parse(&f))
            .unwrap_or(Format::Disk)
    }

    /// Expands `%` specifiers with the values parsed so far; unknown or unset ones expand to
    /// nothing, with a warning (as mkosi does).
    fn expand(&mut self, text: &str, file: &Path, origin: &Origin) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(n) = chars.next() else {
                out.push('%');
                break;
            };
            if n == '%' {
                out.push('%');
            } else if let Some(s) = settings::by_specifier(n) {
                match self.finalize(s).and_then(|v| v.text()) {
                    Some(t) => out.push_str(&t),
                    None => self.warn(
                        origin,
                        format!(
                            "{}= (specifier %{n} in {text:?}) is not set yet, expanded to nothing",
                            s.name
                        ),
                    ),
                }
            } else {
                match n {
                    'C' => {
                        let f = value::resolve(file);
                        let parent = f.parent().unwrap_or(Path::new("/"));
                        out.push_str(&parent.to_string_lossy());
                    }
                    'P' => out.push_str(&self.cwd.to_string_lossy()),
                    'D' => out.push_str(&self.directory.to_string_lossy()),
                    'I' => out.push_str(&self.image),
                    'F' => {
                        let d = self.text("Distribution").unwrap_or_default();
                        out.push_str(default_filesystem(&d));
                    }
                    other => self.warn(
                        origin,
                        format!("unknown specifier %{other} in {text:?}, expanded to nothing"),
                    ),
                }
            }
        }
        out
    }

    /// mkosi's `match_config()`: `[Match]` and `[TriggerMatch]` (or, with `asserts`, `[Assert]`
    /// and `[TriggerAssert]`, whose failure is an error). Every `[Match]` section must hold: its
    /// plain conditions all, and at least one of its `|` conditions if it has any; of the
    /// `[TriggerMatch]` sections, at least one must hold.
    fn conditions(
        &mut self,
        sections: &[Section],
        file: &Path,
        asserts: bool,
    ) -> Result<bool, Error> {
        let (plain, trigger) = if asserts {
            ("Assert", "TriggerAssert")
        } else {
            ("Match", "TriggerMatch")
        };
        let mut any_trigger_section: Option<bool> = None;
        for sec in sections
            .iter()
            .filter(|s| s.name == plain || s.name == trigger)
        {
            let is_trigger_section = sec.name == trigger;
            // `None`: no `|` condition seen in this section.
            let mut triggered: Option<bool> = None;
            for e in &sec.entries {
                let raw = e.value.as_str();
                let is_trigger = raw.starts_with('|');
                let v = raw.strip_prefix('|').unwrap_or(raw);
                let negate = v.starts_with('!');
                let v = v.strip_prefix('!').unwrap_or(v);
                let v = self.expand(v, file, &e.origin);
                let result = self.condition(&e.key, &v, &sec.name, &e.origin)? != negate;
                if !is_trigger && !result {
                    if is_trigger_section {
                        triggered = Some(false);
                        break;
                    }
                    if asserts {
                        return Err(Error::Config {
                            origin: e.origin.clone(),
                            message: format!("{}={raw} in [Assert] is not satisfied", e.key),
                        });
                    }
                    return Ok(false);
                }
                if is_trigger {
                    triggered = Some(triggered.unwrap_or(false) || result);
                }
            }
            if triggered == Some(false) && !is_trigger_section {
                if asserts {
                    return Err(Error::Config {
                        origin: sec.origin.clone(),
                        message: "no triggering condition of this [Assert] section is satisfied"
                            .into(),
                    });
                }
                return Ok(false);
            }
            if is_trigger_section {
                any_trigger_section =
                    Some(any_trigger_section.unwrap_or(false) || triggered != Some(false));
            }
        }
        if any_trigger_section == Some(false) && asserts {
            return Err(Error::Config {
                origin: Origin::Found {
                    path: self.name_of(file).into(),
                },
                message: "none of the [TriggerAssert] sections is satisfied".into(),
            });
        }
        Ok(any_trigger_section != Some(false))
    }

    /// One condition `key=value` (prefixes removed, specifiers expanded).
    fn condition(
        &mut self,
        key: &str,
        v: &str,
        section: &str,
        origin: &Origin,
    ) -> Result<bool, Error> {
        let fail = |message: String| Error::Config {
            origin: origin.clone(),
            message,
        };
        if let Some(s) = settings::lookup(key) {
            if s.matcher.is_none() {
                return Err(fail(format!("{key}= cannot be used in [{section}]")));
            }
            if s.scope == Scope::Main && self.image != "main" {
                return Err(fail(format!(
                    "{key}= cannot be matched on outside of the top-level image"
                )));
            }
            if key != s.name {
                self.warn(
                    origin,
                    format!("{key}= is deprecated, use {}= instead", s.name),
                );
            }
            let value = self.finalize(s);
            return matching::matches(s, v, value.as_ref()).map_err(fail);
        }
        Ok(match key {
            // Relative to the current directory, as mkosi's code does (the man page says the
            // config file's directory; they differ for mkosi.conf.d/*.conf).
            "PathExists" => !v.is_empty() && self.cwd.join(v).exists(),
            "SystemdVersion" => {
                let Some(have) = &self.host.systemd_version else {
                    return Err(fail(
                        "SystemdVersion= needs the host's systemd version, which is unknown".into(),
                    ));
                };
                !v.is_empty() && version_matches(v, have)
            }
            "HostArchitecture" => {
                if !ARCHITECTURES.contains(&v) {
                    return Err(fail(format!("'{v}' is not a valid architecture")));
                }
                v == self.host.architecture
            }
            "Image" => v == self.image,
            _ => return Err(fail(format!("{key}= cannot be used in [{section}]"))),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(edges: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        edges
            .iter()
            .map(|(n, ps)| (n.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn toposort_like_graphlib() {
        assert_eq!(
            toposort(&g(&[("base", &[]), ("tools", &["base"])])).unwrap(),
            ["base", "tools"]
        );
        assert_eq!(
            // Predecessors enter the graph when first named: c before b.
            toposort(&g(&[("a", &["c"]), ("b", &[]), ("c", &[])])).unwrap(),
            ["c", "b", "a"]
        );
        assert_eq!(
            toposort(&g(&[("a", &["b"]), ("b", &["a"])])).unwrap_err(),
            ["a", "b", "a"]
        );
        assert_eq!(toposort(&g(&[("a", &["a"])])).unwrap_err(), ["a", "a"]);
        assert_eq!(
            toposort(&g(&[
                ("x", &[]),
                ("a", &["c"]),
                ("b", &["a"]),
                ("c", &["b"])
            ]))
            .unwrap_err(),
            ["a", "b", "c", "a"]
        );
    }

    #[test]
    fn every_computed_default_is_computed() {
        let host = Host::new("x86-64");
        let mut cx = Context::new(&host, Path::new("/"), "main", PathBuf::from("/"));
        for s in SETTINGS
            .iter()
            .filter(|s| s.default == DefaultValue::Computed)
        {
            let _ = cx.default_of(s);
        }
        assert_eq!(cx.text("Output").as_deref(), Some("image"));
        assert_eq!(cx.text("Distribution").as_deref(), Some("custom"));
        assert_eq!(cx.text("Release").as_deref(), Some(""));
        assert_eq!(cx.text("CompressOutput").as_deref(), Some("none"));
    }

    #[test]
    fn host_detection() {
        let h = Host::detect();
        assert!(ARCHITECTURES.contains(&h.architecture.as_str()), "{h:?}");
    }

    #[test]
    fn distribution_detection() {
        let kv = |s: &[(&str, &str)]| -> Vec<(String, String)> {
            s.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            detect_distribution(&kv(&[
                ("ID", "opensuse-tumbleweed"),
                ("ID_LIKE", "opensuse suse"),
                ("VERSION_ID", "20260101")
            ])),
            (Some("opensuse".into()), Some("tumbleweed".into()))
        );
        assert_eq!(
            detect_distribution(&kv(&[
                ("ID", "opensuse-leap"),
                ("ID_LIKE", "suse opensuse"),
                ("VERSION_ID", "16.0")
            ])),
            (Some("opensuse".into()), Some("16.0".into()))
        );
        assert_eq!(
            detect_distribution(&kv(&[
                ("ID", "debian"),
                ("VERSION_ID", "12"),
                ("VERSION_CODENAME", "bookworm")
            ])),
            (Some("debian".into()), Some("bookworm".into()))
        );
        assert_eq!(
            detect_distribution(&kv(&[("ID", "sles"), ("VERSION_ID", "16.0")])),
            (None, Some("16.0".into()))
        );
    }
}
