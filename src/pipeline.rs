//! The build, stage by stage, as DESIGN.md draws it:
//! plan → metadata → resolve → fetch → unpack → diff → stage → write.

use crate::cache::{Bucket, Cache};
use crate::diff;
use crate::fetch::{self, Fetcher};
use crate::package;
use crate::recipe::{Format, Recipe};
use crate::repo::{
    self,
    definition::{RepoDef, Vars},
};
use crate::report::{Event, Reporter, Stage};
use crate::resolve::{Pool, Problem, Request, dep::Dep};
use crate::sysext::{self, Release};
use crate::tree::{self, Tree};
use crate::unpack::{self, IdMap, Unpacked};
use crate::write;
use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};
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
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct BuildSummary {
    pub image: PathBuf,
    pub format: Format,
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

/// A recipe with its location, ready to run.
pub struct Plan {
    pub recipe: Recipe,
    pub dir: PathBuf,
    pub arch: String,
}

impl Plan {
    pub fn load(path: &Path) -> Result<Plan> {
        let text = fs_err::read_to_string(path)?;
        let recipe = crate::recipe::parse(&text, &path.display().to_string())?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_owned();
        let arch = recipe
            .extension
            .architecture
            .clone()
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        Ok(Plan { recipe, dir, arch })
    }

    fn image_name(&self) -> String {
        self.recipe
            .output
            .name
            .clone()
            .unwrap_or_else(|| self.recipe.extension.name.clone())
    }
}

struct Resolved {
    pool: Pool,
    base: Vec<usize>,
    ext: Vec<usize>,
    base_urls: Vec<String>,
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
    Ok(defs)
}

/// The pool of every package the used repositories offer, and each package's base URL.
struct Sources {
    pool: Pool,
    urls: Vec<String>,
}

fn load_sources(
    used: &[&RepoDef],
    arch: &str,
    fetcher: &Fetcher,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<Sources> {
    for d in used {
        if d.gpgcheck && !d.baseurl.starts_with("file://") {
            r.event(Event::Warning(&format!(
                "repository {}: signature checking is not implemented yet; package checksums are verified against its metadata, but repomd.xml's signature is not",
                d.alias
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
    let base_urls: BTreeMap<&str, &str> = used
        .iter()
        .map(|d| (d.alias.as_str(), d.baseurl.as_str()))
        .collect();
    let pool = Pool::new(loaded, arch);
    let urls = pool
        .solvables
        .iter()
        .map(|s| base_urls[s.repo.as_str()].to_owned())
        .collect();
    Ok(Sources { pool, urls })
}

fn jobs(names: &[String]) -> Vec<Dep> {
    names.iter().map(|n| Dep::parse(n)).collect()
}

fn resolve(
    plan: &Plan,
    opts: &Options,
    fetcher: &Fetcher,
    r: &dyn Reporter,
    timings: &mut Vec<StageTime>,
) -> Result<Resolved> {
    let files: Vec<PathBuf> = plan
        .recipe
        .repos
        .files
        .iter()
        .map(|f| plan.dir.join(f))
        .collect();
    let defs = definitions(opts, &plan.arch, &files)?;
    let mut aliases = plan.recipe.repos.use_.clone();
    for (name, _) in &opts.repos {
        if !aliases.contains(name) {
            aliases.push(name.clone());
        }
    }
    if aliases.is_empty() {
        bail!(
            "the recipe uses no repository: add [repos] use = [\"ALIAS\"], or pass --repo NAME=URL"
        );
    }
    let used = repo::select(&defs, &aliases)?;
    let Sources { pool, urls } = load_sources(&used, &plan.arch, fetcher, r, timings)?;
    r.event(Event::StageStarted {
        stage: Stage::Resolve,
        items: 2,
        bytes: 0,
    });
    let recommends = plan.recipe.packages.recommends;
    let (base, ext) = timed(timings, Stage::Resolve, r, || {
        let base_req = Request {
            install: jobs(&plan.recipe.base.packages),
            installed: vec![],
            recommends,
        };
        let base = pool.solve(&base_req).map_err(|problems| Unsolvable {
            what: "the base image".into(),
            problems,
        })?;
        let ext_req = Request {
            install: jobs(&plan.recipe.packages.install),
            installed: base.clone(),
            recommends,
        };
        let ext = pool.solve(&ext_req).map_err(|problems| Unsolvable {
            what: "the extension".into(),
            problems,
        })?;
        Ok((base, ext))
    })?;
    Ok(Resolved {
        pool,
        base,
        ext,
        base_urls: urls,
    })
}

/// The answer of `elsx resolve --repo … --install …`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Transaction {
    pub install: Vec<PackageInfo>,
    pub problems: Vec<Problem>,
}

/// Resolves packages from the `--repo` repositories alone, without a recipe.
pub fn resolve_direct(
    install: &[String],
    recommends: bool,
    arch: &str,
    opts: &Options,
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
            Ok(set) => Transaction {
                install: infos(&src.pool, &set),
                problems: vec![],
            },
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
            let s = pool.get(i);
            PackageInfo {
                name: s.pkg.name.clone(),
                epoch: s.pkg.evr.epoch.unwrap_or(0),
                version: s.pkg.evr.version.clone(),
                release: s.pkg.evr.release.clone().unwrap_or_default(),
                arch: s.pkg.arch.clone(),
                repo: s.repo.clone(),
            }
        })
        .collect()
}

/// Resolves a plan's package sets without downloading any payload.
pub fn resolve_only(plan: &Plan, opts: &Options, r: &dyn Reporter) -> Result<Resolution> {
    let fetcher = Fetcher::new(Cache::new(opts.cache_dir.clone()), opts.offline);
    let res =
        thread_pool(opts.jobs)?.install(|| resolve(plan, opts, &fetcher, r, &mut Vec::new()))?;
    Ok(Resolution {
        base: infos(&res.pool, &res.base),
        extension: infos(&res.pool, &res.ext),
    })
}

fn thread_pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .context("starting worker threads")
}

/// Runs the whole build and writes the image.
pub fn build(plan: &Plan, opts: &Options, r: &dyn Reporter) -> Result<BuildSummary> {
    thread_pool(opts.jobs)?.install(|| build_inner(plan, opts, r))
}

fn build_inner(plan: &Plan, opts: &Options, r: &dyn Reporter) -> Result<BuildSummary> {
    let mut timings = Vec::new();
    let fetcher = Fetcher::new(Cache::new(opts.cache_dir.clone()), opts.offline);
    let res = resolve(plan, opts, &fetcher, r, &mut timings)?;
    let pool = &res.pool;
    let all: Vec<usize> = res.base.iter().chain(&res.ext).copied().collect();

    // fetch: downloads are bound by the network, not the CPU: more of them than cores.
    let bytes: u64 = all.iter().map(|&i| pool.get(i).pkg.size).sum();
    r.event(Event::StageStarted {
        stage: Stage::Fetch,
        items: all.len() as u64,
        bytes,
    });
    let downloads = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(6))
        .build()?;
    let paths: Vec<PathBuf> = timed(&mut timings, Stage::Fetch, r, || {
        downloads.install(|| {
            all.par_iter()
                .map(|&i| {
                    let p = &pool.get(i).pkg;
                    let url = fetch::join(&res.base_urls[i], &p.location);
                    let (path, _) = fetcher
                        .get_verified(&url, &p.checksum, Bucket::Rpms, r, Stage::Fetch, &p.nevra())
                        .with_context(|| format!("downloading {}", p.nevra()))?;
                    Ok(path)
                })
                .collect::<Result<Vec<_>>>()
        })
    })?;

    // unpack: every package once, in parallel; layering happens in transaction order below.
    r.event(Event::StageStarted {
        stage: Stage::Unpack,
        items: all.len() as u64,
        bytes: 0,
    });
    let unpacked: Vec<(Tree, Unpacked)> = timed(&mut timings, Stage::Unpack, r, || {
        all.par_iter()
            .zip(paths.par_iter())
            .map(|(&i, path)| {
                let nevra = pool.get(i).pkg.nevra();
                let out =
                    unpack::unpack_file(path).with_context(|| format!("unpacking {nevra}"))?;
                r.event(Event::Item {
                    stage: Stage::Unpack,
                    name: &nevra,
                    bytes: out.0.content_bytes(),
                    cached: false,
                });
                Ok(out)
            })
            .collect::<Result<Vec<_>>>()
    })?;

    r.event(Event::StageStarted {
        stage: Stage::Diff,
        items: 0,
        bytes: 0,
    });
    let nbase = res.base.len();
    let (mut ext_tree, report, scripts) = timed(&mut timings, Stage::Diff, r, || {
        let mut base_tree = match &plan.recipe.base.tree {
            Some(dir) => {
                let d = plan.dir.join(dir);
                tree::load_dir(&d)
                    .with_context(|| format!("reading the base tree {}", d.display()))?
            }
            None => Tree::new(),
        };
        let mut owners = Vec::new();
        let mut scripts = BTreeMap::new();
        let mut tools_parts = Vec::new();
        for (k, (t, u)) in unpacked.into_iter().enumerate() {
            owners.extend(u.owners);
            if !u.skipped_scriptlets.is_empty() {
                scripts.insert(pool.get(all[k]).pkg.nevra(), u.skipped_scriptlets);
            }
            if k < nbase {
                base_tree.merge(t)
            } else {
                tools_parts.push(t)
            }
        }
        let ids = IdMap::from_tree(&base_tree);
        ids.apply(&mut base_tree, &owners);
        let mut tools = base_tree.clone();
        for t in tools_parts {
            tools.merge(t);
        }
        ids.apply(&mut tools, &owners);
        // Extra trees land in the tools tree, so the sysext rules (only usr/ and opt/, base
        // files win) apply to them as to packages, as with mkosi.extra.
        for extra in &plan.recipe.content.extra {
            let d = plan.dir.join(extra);
            let mut t = tree::load_dir(&d)
                .with_context(|| format!("reading the extra tree {}", d.display()))?;
            for e in t.entries.values_mut() {
                e.uid = 0;
                e.gid = 0;
            }
            tools.merge(t);
        }
        let (out, report) = diff::subtract(
            &base_tree,
            &tools,
            diff::Options {
                keep_changed: opts.keep_changed || plan.recipe.content.keep_changed,
            },
        )?;
        let base_os = sysext::os_release(&base_tree);
        Ok((out, report, (scripts, base_os)))
    })?;
    let (skipped_scriptlets, base_os) = scripts;

    // stage: extension-release.
    let image_name = plan.image_name();
    let epoch = opts.source_date_epoch.unwrap_or_else(|| {
        ext_tree
            .entries
            .values()
            .map(|e| e.mtime)
            .max()
            .unwrap_or(0)
    });
    let ext = &plan.recipe.extension;
    let mut release = Release::derive(
        base_os.as_deref(),
        &ext.name,
        ext.version.as_deref(),
        ext.os_id.as_deref(),
        &ext.scope,
        &plan.arch,
        ext.reload_manager,
    );
    if let Some(l) = &ext.sysext_level {
        release.sysext_level = Some(l.clone());
        release.version_id = None;
    }
    let er_path = release.install(&mut ext_tree, &image_name, epoch);
    if opts.source_date_epoch.is_some() {
        ext_tree.clamp_mtimes(epoch);
    }
    let extension_release = match ext_tree.get(&er_path).map(|e| &e.kind) {
        Some(tree::Kind::File(d)) => String::from_utf8_lossy(d).into_owned(),
        _ => String::new(),
    };

    // write
    let out_dir = opts
        .output_dir
        .clone()
        .unwrap_or_else(|| plan.dir.join("out"));
    let image = out_dir.join(format!("{image_name}.raw"));
    r.event(Event::StageStarted {
        stage: Stage::Write,
        items: 1,
        bytes: ext_tree.content_bytes(),
    });
    let sq = write::squashfs::Options {
        mkfs_time: epoch.min(u32::MAX as u64) as u32,
        ..Default::default()
    };
    let output = &plan.recipe.output;
    let mut ddi = None;
    let bytes = timed(&mut timings, Stage::Write, r, || {
        let fs = write_fs(&ext_tree, &sq)?;
        if !output.ddi {
            return Ok(write::atomic_write(&image, |f| {
                f.write_all(&fs).map_err(|e| write::WriteError::Io {
                    path: image.display().to_string(),
                    source: e,
                })
            })?);
        }
        // UUIDs and the verity salt are derived from the image name: stable across rebuilds.
        let seed = format!("{image_name}\0{}", plan.arch);
        Ok(write::atomic_write(&image, |f| {
            let info = package::write_ddi(&fs, &plan.arch, output.verity, seed.as_bytes(), f)?;
            ddi = Some(info);
            Ok(())
        })?)
    })?;
    let directories = ext_tree.entries.values().filter(|e| e.is_dir()).count();
    Ok(BuildSummary {
        image,
        format: plan.recipe.output.format,
        bytes,
        files: ext_tree.len() - directories,
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

/// The file system image in memory (the disk image needs its size and verity its bytes).
fn write_fs(t: &Tree, sq: &write::squashfs::Options) -> Result<Vec<u8>> {
    let mut f = tempfile::tempfile().context("creating a temporary file")?;
    write::squashfs::write(t, sq, &mut f)?;
    let mut fs = Vec::new();
    f.rewind()?;
    f.read_to_end(&mut fs)?;
    Ok(fs)
}
