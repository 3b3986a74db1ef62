//! The build, stage by stage, as DESIGN.md draws it:
//! plan → metadata → resolve → fetch → unpack → stage → diff → write → package.
//!
//! A [`Spec`] describes one image whatever its source: [`recipe`] turns a recipe into one.

pub mod mkosi;
pub mod recipe;
pub mod spec;

pub use spec::Spec;
use spec::{Base, FsType, OutputKind, ReleaseSpec, TreeSource};

use crate::cache::{Bucket, Cache};
use crate::diff;
use crate::fetch::{self, Fetcher};
use crate::package;
use crate::repo::{
    self,
    definition::{RepoDef, Vars},
    trust::Trust,
};
use crate::report::{Event, Reporter, Stage};
use crate::resolve::{Pool, Problem, Request, dep::Dep};
use crate::sysext::{self, Release};
use crate::tree::{self, Entry, Tree};
use crate::unpack::{self, IdMap, Unpacked};
use crate::write;
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Seek;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Settings from the command line that apply to any build.
#[derive(Clone, Debug)]
pub struct Options {
    pub output_dir: Option<PathBuf>,
    pub cache_dir: PathBuf,
    pub offline: bool,
    pub jobs: usize,
    pub mirror: Option<String>,
    pub repos: Vec<(String, String)>,
    pub repos_dirs: Vec<PathBuf>,
    /// `--repo-key [NAME=]FINGERPRINT`: replaces the pinned signing keys of NAME (or of every
    /// repository).
    pub repo_keys: Vec<(Option<String>, String)>,
    pub source_date_epoch: Option<u64>,
    pub keep_changed: bool,
}

/// An unsolvable request: the answer is no (exit code 1), not trouble.
#[derive(Debug, thiserror::Error)]
#[error("{what} cannot be resolved:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct Unsolvable {
    pub what: String,
    pub problems: Vec<Problem>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct PackageInfo {
    pub name: String,
    pub epoch: u64,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub repo: String,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Resolution {
    pub base: Vec<PackageInfo>,
    pub extension: Vec<PackageInfo>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct StageTime {
    pub stage: Stage,
    pub seconds: f64,
    /// Units of work: repositories, packages, tree entries, images.
    pub items: u64,
    /// Bytes moved: downloaded, unpacked, written.
    pub bytes: u64,
    /// Items served from the cache.
    pub cached: u64,
}

/// Records what the stage just timed did.
fn count(timings: &mut [StageTime], items: u64, bytes: u64, cached: u64) {
    if let Some(t) = timings.last_mut() {
        (t.items, t.bytes, t.cached) = (items, bytes, cached);
    }
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BuildSummary {
    pub image: PathBuf,
    pub output: OutputKind,
    pub bytes: u64,
    /// Entries in the image other than directories.
    pub files: usize,
    pub directories: usize,
    pub packages: Resolution,
    pub extension_release: String,
    /// Partitions and root hash when the image is a GPT disk image.
    pub ddi: Option<package::DdiInfo>,
    pub diff: diff::Report,
    /// Scriptlets that were not run, by package.
    pub skipped_scriptlets: BTreeMap<String, Vec<String>>,
    pub timings: Vec<StageTime>,
}

struct Resolved {
    pool: Pool,
    base: Vec<usize>,
    ext: Vec<usize>,
    urls: Vec<String>,
    trust: BTreeMap<String, Trust>,
}

fn timed<T>(
    timings: &mut Vec<StageTime>,
    stage: Stage,
    r: &dyn Reporter,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let start = Instant::now();
    let out = f();
    r.event(Event::StageFinished { stage });
    timings.push(StageTime {
        stage,
        seconds: start.elapsed().as_secs_f64(),
        items: 0,
        bytes: 0,
        cached: 0,
    });
    out
}

/// Repository definitions: shipped, `--repos-dir`, extra files, then the command line's overrides.
fn definitions(opts: &Options, arch: &str, files: &[PathBuf]) -> Result<Vec<RepoDef>> {
    let vars = Vars {
        arch: arch.to_owned(),
        releasever: "16.0".into(),
    };
    let dirs: Vec<&Path> = opts.repos_dirs.iter().map(PathBuf::as_path).collect();
    let file_refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let mut defs = repo::load_definitions(&dirs, &file_refs, &vars)?;
    repo::apply_overrides(&mut defs, opts.mirror.as_deref(), &opts.repos);
    repo::apply_repo_keys(&mut defs, &opts.repo_keys)?;
    Ok(defs)
}

/// The pool of every package the used repositories offer, and each package's base URL.
struct Sources {
    pool: Pool,
    urls: Vec<String>,
    /// What each repository's signatures established, by alias.
    trust: BTreeMap<String, Trust>,
}

fn load_sources(
    used: &[&RepoDef],
    arch: &str,
    fetcher: &Fetcher,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<Sources> {
    for d in used {
        if !d.repo_gpgcheck() && !d.pkg_gpgcheck(false) && !d.baseurl.starts_with("file://") {
            r.event(Event::Warning(&format!(
                "repository {}: signature checks are off (gpgcheck=0, {}); its packages are checked only against its unsigned metadata's checksums",
                d.alias, d.origin
            )));
        }
    }
    for d in used {
        // zypper's `mirrorlist=`: more places to fetch the repository's files from.
        if let Some(list) = d.other.get("mirrorlist").filter(|_| !fetcher.offline)
            && let Err(e) = fetcher.add_mirrorlist(&d.baseurl, list)
        {
            r.event(Event::Warning(&format!(
                "repository {}: its mirror list is unusable, using {} alone: {e}",
                d.alias, d.baseurl
            )));
        }
    }
    r.event(Event::StageStarted {
        stage: Stage::Metadata,
        items: used.len() as u64,
        bytes: 0,
    });
    let loaded = timed(timings, Stage::Metadata, r, || {
        used.par_iter()
            .map(|d| {
                Ok((
                    d.alias.clone(),
                    d.priority,
                    repo::load_packages(d, fetcher, r)?,
                ))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut trust = BTreeMap::new();
    let loaded: Vec<_> = loaded
        .into_iter()
        .map(|(alias, prio, (pkgs, t))| {
            trust.insert(alias.clone(), t);
            (alias, prio, pkgs)
        })
        .collect();
    let npkgs: usize = loaded.iter().map(|(_, _, p)| p.len()).sum();
    count(timings, npkgs as u64, 0, 0);
    let base_urls: BTreeMap<&str, &str> = used
        .iter()
        .map(|d| (d.alias.as_str(), d.baseurl.as_str()))
        .collect();
    let pool = Pool::from_data(loaded, arch);
    let urls = (0..pool.len())
        .map(|p| base_urls[pool.repo(p)].to_owned())
        .collect();
    Ok(Sources { pool, urls, trust })
}

fn jobs(names: &[String]) -> Vec<Dep> {
    names.iter().map(|n| Dep::parse(n)).collect()
}

/// The answer of `elsx resolve --repo … --install …`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Transaction {
    pub install: Vec<PackageInfo>,
    pub problems: Vec<Problem>,
}

/// Resolves packages from the `--repo` repositories alone, without a recipe; with `download`,
/// also downloads them into the cache (like `zypper install --download-only`).
pub fn resolve_direct(
    install: &[String],
    recommends: bool,
    arch: &str,
    opts: &Options,
    download: bool,
    r: &dyn Reporter,
) -> Result<Transaction> {
    if opts.repos.is_empty() {
        bail!("no repository: pass --repo NAME=URL (repeatable)");
    }
    let defs = definitions(opts, arch, &[])?;
    let aliases: Vec<String> = opts.repos.iter().map(|(n, _)| n.clone()).collect();
    let used = repo::select(&defs, &aliases)?;
    let fetcher = Fetcher::new(Cache::new(opts.cache_dir.clone()), opts.offline);
    thread_pool(opts.jobs)?.install(|| {
        let src = load_sources(&used, arch, &fetcher, r, &mut Vec::new())?;
        let req = Request {
            install: jobs(install),
            installed: vec![],
            recommends,
        };
        Ok(match src.pool.solve(&req) {
            Ok(set) => {
                if download {
                    fetch_packages(
                        &src.pool,
                        &src.urls,
                        &set,
                        &fetcher,
                        opts,
                        r,
                        &mut Vec::new(),
                    )?;
                }
                Transaction {
                    install: infos(&src.pool, &set),
                    problems: vec![],
                }
            }
            Err(problems) => Transaction {
                install: vec![],
                problems,
            },
        })
    })
}

fn infos(pool: &Pool, idx: &[usize]) -> Vec<PackageInfo> {
    idx.iter()
        .map(|&i| {
            // from the arena's records: no whole package (dependencies, files) is built
            let evr = pool.evr(i);
            PackageInfo {
                name: pool.name(i).to_owned(),
                epoch: evr.epoch.unwrap_or(0),
                version: evr.version.to_owned(),
                release: evr.release.unwrap_or_default().to_owned(),
                arch: pool.arch(i).to_owned(),
                repo: pool.repo(i).to_owned(),
            }
        })
        .collect()
}

fn thread_pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .context("starting worker threads")
}

/// Resolves the base (when it is made of packages) and then the image's packages on top of it.
fn resolve(
    spec: &Spec,
    fetcher: &Fetcher,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<Resolved> {
    if spec.repos.is_empty() {
        bail!("{}: no repository to install packages from", spec.label);
    }
    let used: Vec<&RepoDef> = spec.repos.iter().collect();
    let Sources { pool, urls, trust } = load_sources(&used, &spec.arch, fetcher, r, timings)?;
    r.event(Event::StageStarted {
        stage: Stage::Resolve,
        items: 2,
        bytes: 0,
    });
    let recommends = spec.recommends;
    let (base, ext) = timed(timings, Stage::Resolve, r, || {
        let base = match &spec.base {
            Base::Packages(p) => pool
                .solve(&Request {
                    install: jobs(p),
                    installed: vec![],
                    recommends,
                })
                .map_err(|problems| Unsolvable {
                    what: format!("{}: the base image", spec.label),
                    problems,
                })?,
            _ => Vec::new(),
        };
        let ext = pool
            .solve(&Request {
                install: jobs(&spec.packages),
                installed: base.clone(),
                recommends,
            })
            .map_err(|problems| Unsolvable {
                what: spec.label.clone(),
                problems,
            })?;
        Ok((base, ext))
    })?;
    count(timings, (base.len() + ext.len()) as u64, 0, 0);
    Ok(Resolved {
        pool,
        base,
        ext,
        urls,
        trust,
    })
}

/// Resolves an image's package sets without downloading any payload.
pub fn resolve_only(spec: &Spec, opts: &Options, r: &dyn Reporter) -> Result<Resolution> {
    let fetcher = Fetcher::new(Cache::new(opts.cache_dir.clone()), opts.offline);
    let res = thread_pool(opts.jobs)?.install(|| resolve(spec, &fetcher, r, &mut Vec::new()))?;
    Ok(Resolution {
        base: infos(&res.pool, &res.base),
        extension: infos(&res.pool, &res.ext),
    })
}

/// Runs the whole build of one image and writes it.
pub fn build(spec: &Spec, opts: &Options, r: &dyn Reporter) -> Result<BuildSummary> {
    thread_pool(opts.jobs)?.install(|| build_inner(spec, opts, r))
}

/// Downloads packages into the verified cache, in parallel; their paths in transaction order,
/// and whether each was cached already.
fn fetch_packages(
    pool: &Pool,
    urls: &[String],
    all: &[usize],
    fetcher: &Fetcher,
    opts: &Options,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<Vec<(PathBuf, bool)>> {
    let bytes: u64 = all.iter().map(|&i| pool.get(i).pkg.size).sum();
    r.event(Event::StageStarted {
        stage: Stage::Fetch,
        items: all.len() as u64,
        bytes,
    });
    // Downloads are bound by the network, not the CPU: more of them than cores.
    let downloads = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(6))
        .build()?;
    let fetched: Vec<(PathBuf, bool)> = timed(timings, Stage::Fetch, r, || {
        downloads.install(|| {
            all.par_iter()
                .map(|&i| {
                    let p = &pool.get(i).pkg;
                    let url = fetch::join(&urls[i], &p.location);
                    fetcher
                        .get_verified(&url, &p.checksum, Bucket::Rpms, r, Stage::Fetch, &p.nevra())
                        .with_context(|| format!("downloading {}", p.nevra()))
                })
                .collect::<Result<Vec<_>>>()
        })
    })?;
    let cached = fetched.iter().filter(|(_, c)| *c).count() as u64;
    count(timings, all.len() as u64, bytes, cached);
    Ok(fetched)
}

/// Downloads (into the verified cache) and unpacks packages, in parallel, in transaction order.
/// The first `headers_only` packages (the base, see [`base_from_headers`]) are read as
/// manifests: their headers only, plus the content of the few files a build reads from the
/// base ([`BASE_CONTENT`]); a package whose digests elsx cannot compute is unpacked whole.
/// A package from a repository whose policy asks for it has its signature checked first.
fn fetch_and_unpack(
    res: &Resolved,
    all: &[usize],
    headers_only: usize,
    fetcher: &Fetcher,
    opts: &Options,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<Vec<(unpack::Manifest, Unpacked)>> {
    let pool = &res.pool;
    let fetched = fetch_packages(pool, &res.urls, all, fetcher, opts, r, timings)?;
    let paths: Vec<&PathBuf> = fetched.iter().map(|(p, _)| p).collect();
    r.event(Event::StageStarted {
        stage: Stage::Unpack,
        items: all.len() as u64,
        bytes: 0,
    });
    let out: Vec<(unpack::Manifest, Unpacked)> = timed(timings, Stage::Unpack, r, || {
        all.par_iter()
            .zip(paths.par_iter())
            .enumerate()
            .map(|(k, (&i, path))| {
                let s = pool.get(i);
                let nevra = s.pkg.nevra();
                if let Some(t) = res.trust.get(&s.repo) {
                    let data = fs_err::read(path)?;
                    repo::trust::check_package(t, &data).map_err(|e| {
                        anyhow::anyhow!("package {nevra} from repository {}: {e}", s.repo)
                    })?;
                }
                let out = if k < headers_only {
                    base_manifest(path)
                } else {
                    unpack::unpack_manifest_file(path)
                }
                .with_context(|| format!("unpacking {nevra}"))?;
                r.event(Event::Item {
                    stage: Stage::Unpack,
                    name: &nevra,
                    bytes: out.0.tree.content_bytes(),
                    cached: false,
                });
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let unpacked: u64 = out.iter().map(|(m, _)| m.tree.content_bytes()).sum();
    count(timings, all.len() as u64, unpacked, 0);
    Ok(out)
}

/// Owners follow their entries where [`unpack::layer::install`] placed or moved them.
fn rename_owners(owners: &mut [unpack::Owner], renames: &[(String, String)]) {
    if renames.is_empty() {
        return;
    }
    for o in owners {
        if let Some(p) = unpack::layer::renamed(&o.path, renames) {
            o.path = p;
        }
    }
}

/// The base files whose content a build reads (owners by name, extension-release's defaults).
const BASE_CONTENT: [&str; 4] = [
    "etc/passwd",
    "etc/group",
    "etc/os-release",
    "usr/lib/os-release",
];

/// Whether the base can stay a manifest of its packages' headers: it is made of packages, the
/// image is a sysext (a directory output is the whole tree), and no script runs on the tree
/// (scripts see the base's files). `ELSX_BASE=unpack` forces the full unpack (for comparisons).
fn base_from_headers(spec: &Spec) -> bool {
    matches!(spec.base, Base::Packages(_))
        && matches!(spec.output.kind, OutputKind::Sysext { .. })
        && spec.scripts.postinst.is_empty()
        && spec.scripts.finalize.is_empty()
        && std::env::var("ELSX_BASE").as_deref() != Ok("unpack")
}

/// A base package as a manifest, with the content of its [`BASE_CONTENT`] files; unpacked
/// whole when its file digests use an algorithm elsx does not compute (md5 in old packages).
fn base_manifest(path: &Path) -> Result<(unpack::Manifest, Unpacked), unpack::UnpackError> {
    let (mut m, u) = unpack::manifest_file(path)?;
    if !diff::manifest_supported(&m) {
        let (tree, u) = unpack::unpack_file(path)?;
        let digests = Default::default();
        return Ok((unpack::Manifest { tree, digests }, u));
    }
    let needed = |p: &str| BASE_CONTENT.contains(&p);
    if m.digests.keys().any(|p| needed(p)) {
        let t = unpack::unpack_selected(path, &needed)?;
        for p in BASE_CONTENT {
            if let Some(e) = t.get(p).filter(|e| matches!(e.kind, tree::Kind::File(_))) {
                m.tree.entries.insert(p.to_owned(), e.clone());
                m.digests.remove(p);
            }
        }
    }
    Ok((m, u))
}

/// Reads trees to copy into the image (owned by root, as mkosi copies them).
fn load_trees(sources: &[TreeSource]) -> Result<Vec<Tree>> {
    sources
        .iter()
        .map(|s| {
            let context = || format!("reading the tree {}", s.source.display());
            // A directory's files belong to whoever ran the build: in the image they are root's,
            // as mkosi copies them. A tar archive says who owns what.
            let (t, from_dir) = if s.source.is_dir() {
                (tree::load_dir(&s.source).with_context(context)?, true)
            } else {
                let f = fs_err::File::open(&s.source)?;
                let name = s.source.to_string_lossy();
                let codec = crate::compress::Codec::from_file_name(&name);
                let reader = codec.reader(std::io::BufReader::new(f))?;
                (tree::load_tar(reader, &name).with_context(context)?, false)
            };
            let mut out = Tree::new();
            for (path, mut e) in t.entries {
                if from_dir {
                    e.uid = 0;
                    e.gid = 0;
                }
                let path = match &s.target {
                    Some(target) => tree::normalize(&format!("{target}/{path}"))?,
                    None => path,
                };
                out.insert(path, e);
            }
            Ok(out)
        })
        .collect()
}

/// Runs scripts on a tree: writes it out, runs them with it at /buildroot, reads it back.
/// Entries a script did not touch keep their metadata (owners, xattrs, device nodes), which a
/// round trip through a directory cannot carry when not running as root.
fn run_scripts(
    spec: &Spec,
    scripts: &[PathBuf],
    t: Tree,
    env: &BTreeMap<String, String>,
) -> Result<Tree> {
    if scripts.is_empty() {
        return Ok(t);
    }
    let work = tempfile::Builder::new()
        .prefix("elsx-buildroot-")
        .tempdir()?;
    let skipped = tree::write_dir(&t, work.path())?;
    let out_dir = spec.output.dir.clone();
    fs_err::create_dir_all(&out_dir)?;
    for s in scripts {
        let m = crate::scripts::Mounts {
            buildroot: work.path(),
            srcdir: &spec.scripts.srcdir,
            outputdir: &out_dir,
        };
        crate::scripts::run(s, &m, env)
            .with_context(|| format!("{}: running {}", spec.label, s.display()))?;
    }
    let after = tree::load_dir(work.path()).context("reading the tree back after the scripts")?;
    let mut merged = Tree::new();
    for (path, e) in after.entries {
        let keep = t
            .get(&path)
            .filter(|old| old.kind == e.kind && old.mode == e.mode)
            .cloned();
        merged.entries.insert(
            path,
            keep.unwrap_or(Entry {
                uid: 0,
                gid: 0,
                ..e
            }),
        );
    }
    for p in skipped {
        if let Some(e) = t.get(&p) {
            merged.entries.insert(p, e.clone());
        }
    }
    Ok(merged)
}

/// The environment mkosi gives scripts, plus `Environment=`.
pub(crate) fn script_env(spec: &Spec) -> BTreeMap<String, String> {
    let mut env = spec.scripts.env.clone();
    env.insert(
        "ARCHITECTURE".into(),
        sysext::systemd_arch(&spec.arch).to_owned(),
    );
    env.insert("DISTRIBUTION_ARCHITECTURE".into(), spec.arch.clone());
    env
}

fn build_inner(spec: &Spec, opts: &Options, r: &dyn Reporter) -> Result<BuildSummary> {
    let mut timings = Vec::new();
    let fetcher = Fetcher::new(Cache::new(opts.cache_dir.clone()), opts.offline);
    let res = resolve(spec, &fetcher, r, &mut timings)?;
    let pool = &res.pool;
    let all: Vec<usize> = res.base.iter().chain(&res.ext).copied().collect();
    let from_headers = base_from_headers(spec);
    let headers_only = if from_headers { res.base.len() } else { 0 };
    let unpacked = fetch_and_unpack(&res, &all, headers_only, &fetcher, opts, r, &mut timings)?;

    // stage: base and tools trees, skeleton and extra trees, scripts, extension-release.
    // Timed with the subtraction below as the diff stage, so the stages add up to the build.
    r.event(Event::StageStarted {
        stage: Stage::Diff,
        items: 0,
        bytes: 0,
    });
    let staging = Instant::now();
    let nbase = res.base.len();
    let mut base = unpack::Manifest {
        tree: match &spec.base {
            Base::Tree(dir) => tree::load_dir(dir)
                .with_context(|| format!("reading the base tree {}", dir.display()))?,
            _ => Tree::new(),
        },
        digests: Default::default(),
    };
    let mut owners = Vec::new();
    let mut skipped_scriptlets = BTreeMap::new();
    let mut parts = Vec::new();
    let mut installed = diff::Installed::new();
    for (k, (t, u)) in unpacked.into_iter().enumerate() {
        owners.extend(u.owners);
        // The base's scriptlets are the base's business; the report lists the image's own.
        if k >= nbase && !u.skipped_scriptlets.is_empty() {
            skipped_scriptlets.insert(pool.get(all[k]).pkg.nevra(), u.skipped_scriptlets);
        }
        if k < nbase {
            let nevra = pool.get(all[k]).pkg.nevra();
            let renames = base
                .install(t)
                .with_context(|| format!("installing {nevra}"))?;
            rename_owners(&mut owners, &renames);
        } else {
            // The headers' digests of what is installed, so that subtraction need not hash it (a
            // file the layering moves is found under its new path no more, and is hashed).
            for (p, d) in t.digests {
                if let Some(tree::Entry {
                    kind: tree::Kind::File(data),
                    ..
                }) = t.tree.get(&p)
                {
                    installed.insert(p, (d, data.clone()));
                }
            }
            parts.push((all[k], t.tree))
        }
    }
    let ids = IdMap::from_tree(&base.tree);
    ids.apply(&mut base.tree, &owners);
    let base_tree = &base.tree;
    // From headers, the tools tree holds only what is installed over the base, and the base's
    // few files a build reads.
    let mut tools = if from_headers {
        Tree {
            entries: BASE_CONTENT
                .iter()
                .filter_map(|p| Some((p.to_string(), base_tree.get(p)?.clone())))
                .filter(|(p, e)| {
                    matches!(e.kind, tree::Kind::File(_)) && !base.digests.contains_key(p)
                })
                .collect(),
        }
    } else {
        base_tree.clone()
    };
    for t in load_trees(&spec.skeleton)? {
        tools.merge(t);
    }
    // The extension's packages go into a layer of their own over the base (and the skeleton):
    // they follow its directory links, and may not replace its directories that hold files.
    let mut ext = Tree::new();
    let below: Vec<&Tree> = if from_headers {
        vec![&tools, base_tree]
    } else {
        vec![&tools]
    };
    for (i, t) in parts {
        let renames = unpack::layer::install(&mut ext, &below, t)
            .with_context(|| format!("installing {}", pool.get(i).pkg.nevra()))?;
        rename_owners(&mut owners, &renames);
    }
    tools.merge(ext);
    let ids = IdMap::from_tree(&tools);
    ids.apply(&mut tools, &owners);
    for t in load_trees(&spec.extra)? {
        tools.merge(t);
    }
    let env = script_env(spec);
    tools = run_scripts(spec, &spec.scripts.postinst, tools, &env)?;
    let epoch = opts.source_date_epoch.unwrap_or_else(|| {
        let newest = |t: &Tree| t.entries.values().map(|e| e.mtime).max().unwrap_or(0);
        newest(&tools).max(if from_headers { newest(base_tree) } else { 0 })
    });
    let er_path = write_release(spec, base_tree, &mut tools, epoch);
    tools = run_scripts(spec, &spec.scripts.finalize, tools, &env)?;

    // diff
    let (mut out_tree, report) = timed(&mut timings, Stage::Diff, r, || match spec.output.kind {
        OutputKind::Directory => Ok((tools, diff::Report::default())),
        OutputKind::Sysext { .. } => {
            let keep_changed = opts.keep_changed || spec.keep_changed;
            let o = diff::Options { keep_changed };
            Ok(if from_headers {
                diff::subtract_manifest(&base, &tools, &installed, o)?
            } else {
                diff::subtract(base_tree, &tools, o)?
            })
        }
    })?;
    if let Some(t) = timings.last_mut() {
        t.seconds = staging.elapsed().as_secs_f64();
    }
    if opts.source_date_epoch.is_some() {
        out_tree.clamp_mtimes(epoch);
    }
    let extension_release = match er_path
        .as_ref()
        .and_then(|p| out_tree.get(p))
        .map(|e| &e.kind)
    {
        Some(tree::Kind::File(d)) => String::from_utf8_lossy(d).into_owned(),
        _ => String::new(),
    };

    // write, package
    count(
        &mut timings,
        out_tree.len() as u64,
        out_tree.content_bytes(),
        0,
    );
    let (image, bytes, ddi) = write_output(spec, &out_tree, epoch, opts, r, &mut timings)?;
    let directories = out_tree.entries.values().filter(|e| e.is_dir()).count();
    Ok(BuildSummary {
        image,
        output: spec.output.kind.clone(),
        bytes,
        files: out_tree.len() - directories,
        directories,
        packages: Resolution {
            base: infos(pool, &res.base),
            extension: infos(pool, &res.ext),
        },
        extension_release,
        ddi,
        diff: report,
        skipped_scriptlets,
        timings,
    })
}

/// Writes extension-release into the tools tree; returns its path.
fn write_release(spec: &Spec, base: &Tree, tools: &mut Tree, epoch: u64) -> Option<String> {
    let name = &spec.output.name;
    match &spec.release {
        ReleaseSpec::None => None,
        ReleaseSpec::Recipe {
            id,
            version,
            sysext_level,
            scope,
            reload_manager,
        } => {
            let base_os = sysext::os_release(base);
            let mut release = Release::derive(
                base_os.as_deref(),
                &spec.sysext_id,
                version.as_deref(),
                id.as_deref(),
                scope,
                &spec.arch,
                *reload_manager,
            );
            if let Some(l) = sysext_level {
                release.sysext_level = Some(l.clone());
                release.version_id = None;
            }
            Some(release.install(tools, name, epoch))
        }
        ReleaseSpec::Mkosi {
            image_id,
            image_version,
            scope,
        } => Some(sysext::install_mkosi_release(
            tools,
            name,
            image_id.as_deref(),
            image_version.as_deref(),
            scope.as_deref(),
            &spec.arch,
            epoch,
        )),
    }
}

fn write_output(
    spec: &Spec,
    t: &Tree,
    epoch: u64,
    opts: &Options,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<(PathBuf, u64, Option<package::DdiInfo>)> {
    let out = &spec.output;
    r.event(Event::StageStarted {
        stage: Stage::Write,
        items: 1,
        bytes: t.content_bytes(),
    });
    match out.kind {
        OutputKind::Directory => {
            let dest = out.dir.join(&out.name);
            // Written beside its final place (write), then renamed, replacing an earlier build
            // (package).
            let tmp = out.dir.join(format!(".{}.elsx-tmp", out.name));
            timed(timings, Stage::Write, r, || {
                if tmp.exists() {
                    fs_err::remove_dir_all(&tmp)?;
                }
                fs_err::create_dir_all(&out.dir)?;
                tree::write_dir(t, &tmp)?;
                Ok(())
            })?;
            count(timings, t.len() as u64, t.content_bytes(), 0);
            r.event(Event::StageStarted {
                stage: Stage::Package,
                items: 1,
                bytes: 0,
            });
            timed(timings, Stage::Package, r, || {
                if dest.exists() {
                    fs_err::remove_dir_all(&dest)?;
                }
                Ok(fs_err::rename(&tmp, &dest)?)
            })?;
            count(timings, 1, t.content_bytes(), 0);
            Ok((dest, t.content_bytes(), None))
        }
        OutputKind::Sysext { fs, ddi, verity } => {
            let image = out.dir.join(format!("{}.raw", out.name));
            // The file system goes straight to its place in the image's temporary file.
            let mut staged = write::Staged::new(&image)?;
            let (fs_len, blocks) = timed(timings, Stage::Write, r, || {
                let cache = open_block_cache(&opts.cache_dir);
                write_fs(t, fs, epoch, ddi, cache.as_ref(), staged.file())
            })?;
            // Items: the units compressed (squashfs blocks, erofs files), from the cache or not.
            count(timings, blocks.blocks, fs_len, blocks.cached);
            r.event(Event::StageStarted {
                stage: Stage::Package,
                items: 1,
                bytes: fs_len,
            });
            let signer = match &out.signing {
                Some(files) if verity == package::VerityMode::Signed => {
                    Some(package::sign::Signer::load(files)?)
                }
                _ => None,
            };
            let (bytes, info) = timed(timings, Stage::Package, r, || {
                // UUIDs and the verity salt are derived from the image name: stable across
                // rebuilds.
                let seed = format!("{}\0{}", out.name, spec.arch);
                let written = package_image(
                    staged,
                    fs_len,
                    ddi,
                    verity,
                    signer.as_ref(),
                    &spec.arch,
                    seed.as_bytes(),
                )?;
                if out.symlink {
                    let link = out.dir.join(&out.name);
                    if link.symlink_metadata().is_ok() {
                        fs_err::remove_file(&link)?;
                    }
                    std::os::unix::fs::symlink(format!("{}.raw", out.name), &link)
                        .with_context(|| format!("creating the symlink {}", link.display()))?;
                }
                Ok(written)
            })?;
            // Items: the partitions of a disk image, or the bare file system.
            let parts = info.as_ref().map_or(1, |i| i.partitions.len() as u64);
            count(timings, parts, bytes, 0);
            Ok((image, bytes, info))
        }
    }
}

/// Writes a tree as an image at `dest` (never half-written under that name): a bare file system,
/// or a GPT disk image whose UUIDs and verity salt derive from `seed`.
#[allow(clippy::too_many_arguments)]
pub fn write_image(
    t: &Tree,
    fs: FsType,
    ddi: bool,
    verity: package::VerityMode,
    signer: Option<&package::sign::Signer>,
    rpm_arch: &str,
    seed: &[u8],
    dest: &Path,
    epoch: u64,
    cache: Option<&write::blocks::BlockCache>,
) -> Result<(u64, Option<package::DdiInfo>)> {
    let mut staged = write::Staged::new(dest)?;
    let (fs_len, _) = write_fs(t, fs, epoch, ddi, cache, staged.file())?;
    package_image(staged, fs_len, ddi, verity, signer, rpm_arch, seed)
}

/// The package stage: the file system written into `staged` is the image as it is, or gets
/// a GPT disk image (with dm-verity when asked) around it; renames the image into place and
/// returns its size.
#[allow(clippy::too_many_arguments)]
fn package_image(
    mut staged: write::Staged,
    fs_len: u64,
    ddi: bool,
    verity: package::VerityMode,
    signer: Option<&package::sign::Signer>,
    rpm_arch: &str,
    seed: &[u8],
) -> Result<(u64, Option<package::DdiInfo>)> {
    let info = if ddi {
        Some(package::write_ddi_around(
            staged.file(),
            fs_len,
            rpm_arch,
            verity,
            signer,
            seed,
        )?)
    } else {
        None
    };
    Ok((staged.finish()?, info))
}

/// The block cache in the cache directory; without one (it cannot be created or locked) the
/// build goes on compressing every block.
pub fn open_block_cache(dir: &Path) -> Option<write::blocks::BlockCache> {
    write::blocks::BlockCache::open(&Cache::new(dir.to_path_buf()))
        .inspect_err(|e| tracing::warn!("{}: no block cache: {e}", dir.display()))
        .ok()
}

/// Writes the file system into `f`: at its start, or where a disk image's first partition
/// starts (`ddi`), taking compressed blocks from `cache`; returns its size, and how many units
/// (squashfs blocks, erofs files) were compressed and taken from the cache.
fn write_fs(
    t: &Tree,
    fs: FsType,
    epoch: u64,
    ddi: bool,
    cache: Option<&write::blocks::BlockCache>,
    f: &mut std::fs::File,
) -> Result<(u64, write::blocks::BlockStats)> {
    if ddi {
        f.seek(std::io::SeekFrom::Start(package::FS_OFFSET))?;
    }
    Ok(match fs {
        FsType::Squashfs {
            compression,
            block_size,
        } => {
            let sq = write::squashfs::Options {
                compression,
                block_size,
                epoch: Some(epoch.min(u32::MAX as u64) as u32),
            };
            write::squashfs::write(t, &sq, cache, f)?
        }
        FsType::Erofs(compression) => {
            // The UUID comes from the tree's content, so the same tree gives the same image.
            let seed: [u8; 16] = {
                let mut h = <sha2::Sha256 as sha2::Digest>::new();
                for (p, e) in &t.entries {
                    sha2::Digest::update(&mut h, p.as_bytes());
                    sha2::Digest::update(&mut h, e.mtime.to_le_bytes());
                }
                sha2::Digest::finalize(h)[..16]
                    .try_into()
                    .expect("16 bytes")
            };
            let opts = write::erofs::Options {
                compression,
                uuid_seed: seed,
                mkfs_time: epoch,
                ..Default::default()
            };
            write::erofs::write(t, &opts, cache, f)?
        }
    })
}
