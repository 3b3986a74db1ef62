//! The command line: argument parsing, human and JSON output, progress, exit codes.
//!
//! Invariant: this is the only module that prints.

mod progress;

use crate::pipeline::{self, BuildSummary, Resolution, Spec, Unsolvable};
use crate::report::Reporter;
use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Build systemd system extension images from openSUSE rpm-md repositories, without root,
/// zypper or rpm.
#[derive(Parser, Debug)]
#[command(name = "elsx", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More log output (-v: every package; -vv: debugging)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Print the result as JSON on stdout
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build the images a recipe (*.toml) or a mkosi configuration directory describes
    Build {
        /// A recipe (*.toml), or a mkosi configuration directory (drop-in for `mkosi build`)
        path: PathBuf,
        #[command(flatten)]
        common: Common,
        /// Keep files that exist in the base with other content (mkosi drops them)
        #[arg(long)]
        keep_changed: bool,
        /// Print each image's resolved settings and where each came from (file:line), then stop
        #[arg(long)]
        explain: bool,
        /// Print per-stage wall time, items, bytes and cache hits on stderr at the end (--json
        /// always has them)
        #[arg(long)]
        timings: bool,
    },
    /// Manage the cache (downloads, parsed metadata, compressed image blocks)
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
    /// Subtract BASE from TOOLS (directories or tar archives) with the rules the build uses, and
    /// print what was added, changed (dropped unless --keep-changed) and left out
    Diff {
        base: PathBuf,
        tools: PathBuf,
        /// Write the resulting tree into DIR
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Keep files that exist in the base with other content (implies --compare contents)
        #[arg(long)]
        keep_changed: bool,
        /// How paths in both directories are compared for the report; the result is the same
        /// at every level (the base wins whatever the content). types, the default: the
        /// directory listings alone, all the result needs; a path whose type changed is
        /// "changed", the others "not compared". metadata: also an lstat of both sides (mode,
        /// owner, size, symlink target). contents: also the bytes and xattrs, so every path is
        /// changed or identical. Archives are always compared by contents.
        #[arg(long, value_enum, value_name = "LEVEL", default_value = "types")]
        compare: CompareArg,
        /// Worker threads (default: the number of CPUs); the result is the same for any N
        #[arg(short, long, value_name = "N")]
        jobs: Option<usize>,
    },
    /// Write an image from a directory, like mksquashfs or `systemd-repart --make-ddi`
    Pack {
        /// The tree to pack (its usr/ and opt/ and everything else, as it is)
        dir: PathBuf,
        /// The image to write
        #[arg(short = 'o', long, value_name = "FILE")]
        output: PathBuf,
        /// File system
        #[arg(long, value_enum, default_value = "squashfs")]
        fs: FsArg,
        /// Wrap the file system in a GPT disk image
        #[arg(long)]
        ddi: bool,
        /// dm-verity for the disk image (needs --ddi): none; hash; signed (a root-verity-sig
        /// partition signed with --key and --certificate); defer (that partition left empty,
        /// 16 KiB of zeros, for signing offline)
        #[arg(long, value_enum, default_value = "none")]
        verity: VerityArg,
        /// PEM private key (RSA or EC P-256) that signs the root hash, for --verity signed
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// PEM certificate of --key, for --verity signed
        #[arg(long, value_name = "FILE")]
        certificate: Option<PathBuf>,
        /// rpm architecture of the partition types (default: this machine's)
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
        /// Compression: squashfs zstd[:1-22] (default zstd:15), xz[:0-9], gzip[:1-9], lz4,
        /// lz4hc[:1-12]; erofs none, lz4, lz4hc[:1-12] (default lz4hc:9), lzma[:0-9]
        #[arg(long, value_name = "ALG[:LEVEL]")]
        compress: Option<crate::write::Compress>,
        /// squashfs data block size in bytes, a power of two from 4096 to 1048576 (default 131072)
        #[arg(long, value_name = "BYTES")]
        block_size: Option<u32>,
        /// Make every file owned by root (like mksquashfs -all-root)
        #[arg(long)]
        all_root: bool,
        /// Compression threads (default: the number of CPUs; the image is the same whatever N)
        #[arg(short, long, value_name = "N")]
        jobs: Option<usize>,
        /// Take compressed squashfs blocks from the block cache in DIR and keep new ones there
        /// (the same image bytes, faster when blocks repeat; default: no cache)
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// Show an image (squashfs, erofs or GPT disk image): partitions, root hash, signature,
    /// extension-release and files; verifies the dm-verity hash tree and the signature
    Inspect {
        /// The image
        image: PathBuf,
    },
    /// Print the packages a recipe's base and extension resolve to, or, without a recipe, what
    /// installing --install packages from the --repo repositories takes; no payload is downloaded
    /// unless --download-only
    Resolve {
        /// A recipe (*.toml); omit it to resolve --install against --repo
        path: Option<PathBuf>,
        /// A package to install (name or provide, optionally `name>=version`); repeatable
        #[arg(long = "install", value_name = "NAME")]
        install: Vec<String>,
        /// Install Recommends and Supplements too
        #[arg(long)]
        recommends: bool,
        /// rpm architecture to resolve for (default: this machine's)
        #[arg(long, value_name = "ARCH")]
        arch: Option<String>,
        /// With --install: also download the packages into the cache, verified (like
        /// `zypper install --download-only`)
        #[arg(long)]
        download_only: bool,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(Subcommand, Debug)]
enum CacheAction {
    /// Remove everything elsx cached (downloaded metadata and packages, compressed image blocks)
    Clean {
        /// The cache (default: $XDG_CACHE_HOME/elsx)
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CompareArg {
    Types,
    Metadata,
    Contents,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FsArg {
    Squashfs,
    Erofs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum VerityArg {
    None,
    Hash,
    Signed,
    Defer,
}

#[derive(Args, Debug)]
struct Common {
    /// Where images go (default: out/ beside the recipe)
    #[arg(short = 'o', long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// Downloaded metadata and packages, compressed image blocks (default: $XDG_CACHE_HOME/elsx)
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Use the cache only; never download
    #[arg(long)]
    offline: bool,
    /// Worker threads (default: the number of CPUs)
    #[arg(short, long, value_name = "N")]
    jobs: Option<usize>,
    /// Replace https://download.opensuse.org in every openSUSE definition with URL
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// Point repository NAME at URL (defines NAME if no definition has it); repeatable
    #[arg(long = "repo", value_name = "NAME=URL", value_parser = parse_repo)]
    repos: Vec<(String, String)>,
    /// Read more .repo definitions from DIR; repeatable
    #[arg(long = "repos-dir", value_name = "DIR")]
    repos_dirs: Vec<PathBuf>,
    /// Trust the signing key with this fingerprint for repository NAME (every repository
    /// without NAME=) instead of its definition's gpgkey-fingerprint; repeatable
    #[arg(long = "repo-key", value_name = "[NAME=]FINGERPRINT", value_parser = parse_repo_key)]
    repo_keys: Vec<(Option<String>, String)>,
}

fn parse_repo_key(s: &str) -> Result<(Option<String>, String), String> {
    let (name, fp) = match s.split_once('=') {
        Some((n, f)) if !n.is_empty() => (Some(n.to_owned()), f),
        Some(_) => return Err(format!("expected [NAME=]FINGERPRINT, got {s:?}")),
        None => (None, s),
    };
    let fp = crate::repo::sig::normalize_fingerprint(fp).ok_or_else(|| {
        format!(
            "{fp:?} is not a key fingerprint (40 or 64 hex digits, as `gpg --fingerprint` prints)"
        )
    })?;
    Ok((name, fp))
}

fn parse_repo(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((n, u)) if !n.is_empty() && !u.is_empty() => Ok((n.to_owned(), u.to_owned())),
        _ => Err(format!("expected NAME=URL, got {s:?}")),
    }
}

impl Common {
    fn options(&self, keep_changed: bool) -> Result<pipeline::Options> {
        let source_date_epoch = match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if !v.is_empty() => Some(v.trim().parse().map_err(|_| {
                anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?),
            _ => None,
        };
        Ok(pipeline::Options {
            output_dir: self.output_dir.clone(),
            cache_dir: self
                .cache_dir
                .clone()
                .unwrap_or_else(crate::cache::Cache::default_dir),
            offline: self.offline,
            jobs: self
                .jobs
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            mirror: self.mirror.clone(),
            repos: self.repos.clone(),
            repos_dirs: self.repos_dirs.clone(),
            repo_keys: self.repo_keys.clone(),
            source_date_epoch,
            keep_changed,
        })
    }
}

/// Runs the command line and returns the process exit code: 0 ok, 1 "the answer is no", 2 error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            let no = e.downcast_ref::<Unsolvable>().is_some()
                || e.downcast_ref::<crate::inspect::VerifyFailed>().is_some();
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            eprintln!("{msg}");
            if let Some(h) = hint(&e) {
                eprintln!("hint: {h}");
            }
            ExitCode::from(if no { 1 } else { 2 })
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    let text = format!("{e:#}");
    if text.contains("is not defined (known:") {
        Some(
            "define it in a .repo file (--repos-dir DIR or [repos] files), or pass --repo NAME=URL",
        )
    } else if text.contains("Connection refused")
        || text.contains("dns error")
        || text.contains("error sending request")
    {
        Some(
            "check the URL, or point the repository elsewhere with --repo NAME=URL or --mirror URL",
        )
    } else if text.contains("(definition: ") {
        Some(
            "trust the key that signs it with gpgkey= or gpgkey-fingerprint= in its definition (or --repo-key NAME=FINGERPRINT), or turn the check off there with gpgcheck=0 (repo_gpgcheck=0: check each package instead)",
        )
    } else if text.contains("from repository ") && text.contains("sign") {
        Some(
            "sign the package with a key the repository trusts (rpmsign --addsign), or set pkg_gpgcheck=0 or gpgcheck=0 in the repository's definition",
        )
    } else if text.contains("--offline") {
        Some("run once without --offline to fill the cache")
    } else if e.downcast_ref::<Unsolvable>().is_some() {
        Some("check the package names, or add the repository that provides what is missing")
    } else {
        None
    }
}

fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn,elsx=info",
            1 => "info",
            _ => "debug",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("ELSX_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .without_time()
        .init();
}

fn reporter(cli: &Cli) -> Box<dyn Reporter> {
    if !cli.quiet && std::io::stderr().is_terminal() && std::env::var_os("CI").is_none() {
        Box::new(progress::Bars::new())
    } else {
        Box::new(progress::Log {
            verbose: cli.verbose > 0 && !cli.quiet,
        })
    }
}

fn load_any_tree(p: &std::path::Path) -> Result<crate::tree::Tree> {
    use anyhow::Context;
    if p.is_dir() {
        return crate::tree::load_dir(p).with_context(|| format!("reading {}", p.display()));
    }
    let name = p.to_string_lossy();
    let f = fs_err::File::open(p)?;
    let r = crate::compress::Codec::from_file_name(&name).reader(std::io::BufReader::new(f))?;
    crate::tree::load_tar(r, &name).with_context(|| format!("reading {}", p.display()))
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Inspect { image } => inspect(cli, image),
        Command::Cache {
            action: CacheAction::Clean { cache_dir },
        } => {
            let dir = cache_dir
                .clone()
                .unwrap_or_else(crate::cache::Cache::default_dir);
            let freed = crate::cache::Cache::new(dir.clone()).clean()?;
            writeln!(
                std::io::stdout().lock(),
                "removed {} from {}",
                human_bytes(freed),
                dir.display()
            )?;
            Ok(())
        }
        Command::Diff {
            base,
            tools,
            out,
            keep_changed,
            compare,
            jobs,
        } => {
            let opts = crate::diff::Options {
                keep_changed: *keep_changed,
            };
            let dir_opts = crate::diff::DirOptions {
                compare: match compare {
                    CompareArg::Types => crate::diff::Compare::Types,
                    CompareArg::Metadata => crate::diff::Compare::Metadata,
                    CompareArg::Contents => crate::diff::Compare::Contents,
                },
                load_result: out.is_some(),
            };
            let mut pool = rayon::ThreadPoolBuilder::new();
            if let Some(n) = jobs {
                pool = pool.num_threads((*n).max(1));
            }
            // Two directories: walk both, read only what the rules need (in parallel).
            let (tree, report) = pool.build()?.install(|| -> Result<_> {
                Ok(if base.is_dir() && tools.is_dir() {
                    crate::diff::subtract_dirs(base, tools, opts, dir_opts)?
                } else {
                    let (b, t) = (load_any_tree(base)?, load_any_tree(tools)?);
                    crate::diff::subtract(&b, &t, opts)?
                })
            })?;
            if let Some(dir) = out {
                crate::tree::write_dir(&tree, dir)?;
            }
            let mut o = std::io::BufWriter::new(std::io::stdout().lock());
            if cli.json {
                serde_json::to_writer_pretty(&mut o, &report)?;
                writeln!(o)?;
            } else {
                for p in &report.added {
                    writeln!(o, "added    /{p}")?;
                }
                let verb = if report.kept_changed {
                    "changed  (kept)"
                } else {
                    "changed  (dropped)"
                };
                for p in &report.changed {
                    writeln!(o, "{verb} /{p}")?;
                }
                for p in &report.outside {
                    writeln!(o, "outside  /{p}")?;
                }
                for p in &report.removed {
                    writeln!(o, "removed  /{p}")?;
                }
                let not_compared = if report.compared == crate::diff::Compare::Contents {
                    String::new()
                } else {
                    format!(", {} not compared", report.not_compared)
                };
                writeln!(
                    o,
                    "{} added, {} changed, {} identical{not_compared}, {} outside /usr and /opt",
                    report.added.len(),
                    report.changed.len(),
                    report.unchanged,
                    report.outside.len()
                )?;
                if report.not_compared > 0 {
                    let what = match report.compared {
                        crate::diff::Compare::Types => "alike in type",
                        _ => "alike in type, size, mode and owner",
                    };
                    writeln!(
                        o,
                        "not compared: {} paths in the base {what} were dropped without reading \
                         them; --compare contents tells changed from identical",
                        report.not_compared
                    )?;
                }
            }
            o.flush()?;
            Ok(())
        }
        Command::Pack {
            dir,
            output,
            fs,
            ddi,
            verity,
            key,
            certificate,
            arch,
            compress,
            block_size,
            all_root,
            jobs,
            cache_dir,
        } => {
            if !matches!(verity, VerityArg::None) && !ddi {
                bail!("--verity needs --ddi (the hash tree lives in its own partition)");
            }
            let signer = match (verity, key, certificate) {
                (VerityArg::Signed, Some(key), Some(certificate)) => Some(
                    crate::package::sign::Signer::load(&crate::package::sign::SigningFiles {
                        key: key.clone(),
                        certificate: certificate.clone(),
                    })?,
                ),
                (VerityArg::Signed, _, _) => {
                    bail!("--verity signed needs --key and --certificate")
                }
                (_, None, None) => None,
                _ => bail!("--key and --certificate sign the root hash: add --verity signed"),
            };
            let fs = pipeline::spec::FsType::new(
                matches!(fs, FsArg::Squashfs),
                compress.as_ref(),
                *block_size,
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut t = load_any_tree(dir)?;
            if *all_root {
                for e in t.entries.values_mut() {
                    (e.uid, e.gid) = (0, 0);
                }
            }
            let verity = match verity {
                VerityArg::None => crate::package::VerityMode::None,
                VerityArg::Hash => crate::package::VerityMode::Hash,
                VerityArg::Signed => crate::package::VerityMode::Signed,
                VerityArg::Defer => crate::package::VerityMode::Defer,
            };
            let arch = arch
                .clone()
                .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
            let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number"))?,
                Err(_) => t.entries.values().map(|e| e.mtime).max().unwrap_or(0),
            };
            let seed = output
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(jobs.unwrap_or(0))
                .build()
                .map_err(|e| anyhow::anyhow!("starting worker threads: {e}"))?;
            let cache = cache_dir.as_deref().and_then(pipeline::open_block_cache);
            let (bytes, info) = pool.install(|| {
                pipeline::write_image(
                    &t,
                    fs,
                    *ddi,
                    verity,
                    signer.as_ref(),
                    &arch,
                    seed.as_bytes(),
                    output,
                    epoch,
                    cache.as_ref(),
                )
            })?;
            let mut o = std::io::stdout().lock();
            if cli.json {
                serde_json::to_writer_pretty(
                    &mut o,
                    &serde_json::json!({"image": output, "bytes": bytes, "ddi": info}),
                )?;
                writeln!(o)?;
            } else {
                writeln!(o, "wrote {} ({})", output.display(), human_bytes(bytes))?;
                if let Some(h) = info.and_then(|i| i.root_hash) {
                    writeln!(o, "  root hash: {h}")?;
                }
            }
            Ok(())
        }
        Command::Build {
            path,
            common,
            keep_changed,
            explain,
            timings,
        } => {
            let opts = common.options(*keep_changed)?;
            if path.is_dir() {
                let r = reporter(cli);
                if *explain {
                    let project = pipeline::mkosi::load(path)?;
                    return explain_project(cli, &project);
                }
                let summaries = pipeline::mkosi::build(path, &opts, r.as_ref())?;
                if cli.json {
                    let mut out = std::io::stdout().lock();
                    serde_json::to_writer_pretty(
                        &mut out,
                        &serde_json::json!({ "images": summaries }),
                    )?;
                    writeln!(out)?;
                }
                for s in &summaries {
                    if !cli.json {
                        print_build(cli, s)?;
                    }
                    if *timings {
                        print_timings(s);
                    }
                }
                return Ok(());
            }
            if *explain {
                bail!("--explain reads mkosi configuration directories; a recipe explains itself");
            }
            let spec = load_spec(path, &opts)?;
            let summary = pipeline::build(&spec, &opts, reporter(cli).as_ref())?;
            print_build(cli, &summary)?;
            if *timings {
                print_timings(&summary);
            }
            Ok(())
        }
        Command::Resolve {
            path: Some(path),
            install,
            download_only,
            common,
            ..
        } => {
            if !install.is_empty() || *download_only {
                bail!(
                    "--install and --download-only go without a recipe; the recipe lists its own packages"
                );
            }
            let opts = common.options(false)?;
            let spec = load_spec(path, &opts)?;
            let res = pipeline::resolve_only(&spec, &opts, reporter(cli).as_ref())?;
            print_resolution(cli, &res)
        }
        Command::Resolve {
            path: None,
            install,
            recommends,
            arch,
            download_only,
            common,
        } => {
            if install.is_empty() {
                bail!("nothing to resolve: pass a recipe, or --install NAME with --repo NAME=URL");
            }
            let opts = common.options(false)?;
            let arch = arch
                .clone()
                .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
            let t = pipeline::resolve_direct(
                install,
                *recommends,
                &arch,
                &opts,
                *download_only,
                reporter(cli).as_ref(),
            )?;
            print_transaction(cli, &t)?;
            if t.problems.is_empty() {
                Ok(())
            } else {
                Err(Unsolvable {
                    what: "the request".into(),
                    problems: t.problems,
                }
                .into())
            }
        }
    }
}

fn inspect(cli: &Cli, image: &std::path::Path) -> Result<()> {
    let report = crate::inspect::inspect(image)?;
    let mut o = std::io::stdout().lock();
    if cli.json {
        serde_json::to_writer_pretty(&mut o, &report)?;
        writeln!(o)?;
    } else {
        o.write_all(report.to_text().as_bytes())?;
    }
    Ok(())
}

fn load_spec(path: &std::path::Path, opts: &pipeline::Options) -> Result<Spec> {
    if path.is_dir() {
        bail!(
            "{}: `resolve` takes a recipe (*.toml); mkosi directories are built with `elsx build DIR`",
            path.display()
        );
    }
    pipeline::recipe::load(path, opts)
}

fn explain_project(cli: &Cli, project: &crate::mkosi::Project) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if cli.json {
        serde_json::to_writer_pretty(&mut out, project)?;
        writeln!(out)?;
    } else {
        out.write_all(project.summary().as_bytes())?;
    }
    Ok(())
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn nevra(p: &pipeline::PackageInfo) -> String {
    let e = if p.epoch > 0 {
        format!("{}:", p.epoch)
    } else {
        String::new()
    };
    format!("{}-{e}{}-{}.{}", p.name, p.version, p.release, p.arch)
}

fn print_build(cli: &Cli, s: &BuildSummary) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if cli.json {
        serde_json::to_writer_pretty(&mut out, s)?;
        writeln!(out)?;
        return Ok(());
    }
    let fmt = match &s.output {
        pipeline::spec::OutputKind::Directory => "directory".to_owned(),
        pipeline::spec::OutputKind::Sysext { fs, ddi, verity } => {
            let fs = match fs {
                pipeline::spec::FsType::Squashfs { .. } => "squashfs",
                pipeline::spec::FsType::Erofs(_) => "erofs",
            };
            match (ddi, verity) {
                (false, _) => fs.to_owned(),
                (true, crate::package::VerityMode::None) => format!("GPT disk image, {fs}"),
                (true, crate::package::VerityMode::Hash) => {
                    format!("GPT disk image, {fs}, dm-verity")
                }
                (true, crate::package::VerityMode::Signed) => {
                    format!("GPT disk image, {fs}, dm-verity, signed")
                }
                (true, crate::package::VerityMode::Defer) => {
                    format!("GPT disk image, {fs}, dm-verity, signature deferred")
                }
            }
        }
    };
    writeln!(
        out,
        "wrote {} ({fmt}, {})",
        s.image.display(),
        human_bytes(s.bytes)
    )?;
    let names: Vec<String> = s.packages.extension.iter().map(nevra).collect();
    if s.output == pipeline::spec::OutputKind::Directory {
        writeln!(out, "  packages:   {}: {}", names.len(), names.join(", "))?;
    } else {
        writeln!(out, "  base:       {} packages", s.packages.base.len())?;
        writeln!(
            out,
            "  extension:  {} packages: {}",
            names.len(),
            names.join(", ")
        )?;
    }
    let content: u64 = s.bytes;
    let _ = content;
    writeln!(
        out,
        "  contents:   {} files, {} directories",
        s.files, s.directories
    )?;
    if s.output != pipeline::spec::OutputKind::Directory {
        writeln!(
            out,
            "  subtracted: {} identical base paths, {} changed base paths dropped, {} paths outside /usr and /opt dropped",
            s.diff.unchanged,
            s.diff.changed.len(),
            s.diff.outside.len()
        )?;
        for p in &s.diff.changed {
            let verb = if s.diff.kept_changed {
                "kept"
            } else {
                "dropped"
            };
            writeln!(out, "    changed, {verb}: /{p}")?;
        }
    }
    for (pkg, scripts) in &s.skipped_scriptlets {
        writeln!(out, "  not run:    {} of {pkg}", scripts.join(", "))?;
    }
    if !s.extension_release.is_empty() {
        writeln!(out, "  extension-release:")?;
        for l in s.extension_release.lines() {
            writeln!(out, "    {l}")?;
        }
    }
    Ok(())
}

/// The per-stage table, on stderr (stdout carries the result, JSON or not).
fn print_timings(s: &BuildSummary) {
    eprintln!(
        "{:<10} {:>9} {:>9} {:>11} {:>7}",
        "stage", "seconds", "items", "bytes", "cached"
    );
    for t in &s.timings {
        eprintln!(
            "{:<10} {:>9.3} {:>9} {:>11} {:>7}",
            t.stage.name(),
            t.seconds,
            t.items,
            human_bytes(t.bytes),
            t.cached
        );
    }
    let total: f64 = s.timings.iter().map(|t| t.seconds).sum();
    eprintln!("{:<10} {:>9.3}", "total", total);
}

fn print_transaction(cli: &Cli, t: &pipeline::Transaction) -> Result<()> {
    // buffered: stdout's line buffering would make a write per line of the listing
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if cli.json {
        serde_json::to_writer_pretty(&mut out, t)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(());
    }
    for p in &t.install {
        writeln!(out, "{}  [{}]", nevra(p), p.repo)?;
    }
    out.flush()?;
    Ok(())
}

fn print_resolution(cli: &Cli, r: &Resolution) -> Result<()> {
    // buffered: stdout's line buffering would make a write per line of the listing
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if cli.json {
        serde_json::to_writer_pretty(&mut out, r)?;
        writeln!(out)?;
        out.flush()?;
        return Ok(());
    }
    for (label, list) in [("base", &r.base), ("extension", &r.extension)] {
        writeln!(out, "{label} ({} packages):", list.len())?;
        for p in list {
            writeln!(out, "  {}  [{}]", nevra(p), p.repo)?;
        }
    }
    out.flush()?;
    Ok(())
}
