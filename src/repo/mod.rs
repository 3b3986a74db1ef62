//! Repositories: definitions (`.repo` files) and their rpm-md metadata.

pub mod definition;
pub mod filelists;
pub mod primary;
pub mod repomd;
pub mod sig;
pub mod store;
pub mod trust;
mod xml;

use crate::cache::Bucket;
use crate::compress::Codec;
use crate::fetch::{self, Fetcher};
use crate::report::{Reporter, Stage};
use crate::resolve::RepoData;
use definition::{RepoDef, Vars};
use std::path::Path;

/// The definitions shipped in `repos/`, built into the binary so it works from any directory.
pub const SHIPPED: &[(&str, &str)] = &[
    (
        "repos/opensuse-tumbleweed.repo",
        include_str!("../../repos/opensuse-tumbleweed.repo"),
    ),
    (
        "repos/opensuse-tumbleweed-ports.repo",
        include_str!("../../repos/opensuse-tumbleweed-ports.repo"),
    ),
    (
        "repos/opensuse-leap-16.0.repo",
        include_str!("../../repos/opensuse-leap-16.0.repo"),
    ),
];

/// The host prefix that `--mirror` replaces in the shipped openSUSE definitions.
pub const OPENSUSE_MIRROR: &str = "https://download.opensuse.org";

#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    #[error(transparent)]
    Definition(#[from] definition::DefinitionError),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("repository {alias:?} is not defined (known: {known})")]
    Unknown { alias: String, known: String },
    #[error("repository {alias}")]
    Fetch {
        alias: String,
        url: String,
        source: fetch::FetchError,
    },
    #[error("repository {alias}: {message}")]
    Metadata { alias: String, message: String },
    #[error("repository {alias}: {message} (definition: {origin})")]
    Signature {
        alias: String,
        message: String,
        origin: String,
    },
}

/// Loads the shipped definitions, then every `.repo` file in `dirs`, then `files`; a later
/// definition of an alias replaces an earlier one. Relative `baseurl`s are relative to their file.
pub fn load_definitions(
    dirs: &[&Path],
    files: &[&Path],
    vars: &Vars,
) -> Result<Vec<RepoDef>, RepoError> {
    let mut defs: Vec<RepoDef> = Vec::new();
    let mut add = |new: Vec<RepoDef>| {
        for d in new {
            defs.retain(|o| o.alias != d.alias);
            defs.push(d);
        }
    };
    for (name, text) in SHIPPED {
        add(definition::parse(text, name, vars)?);
    }
    let mut paths: Vec<std::path::PathBuf> = Vec::new();
    for dir in dirs {
        let rd = fs_err::read_dir(dir).map_err(|e| RepoError::Io(dir.display().to_string(), e))?;
        let mut found: Vec<_> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "repo"))
            .collect();
        found.sort();
        paths.extend(found);
    }
    paths.extend(files.iter().map(|p| p.to_path_buf()));
    for p in paths {
        let text =
            fs_err::read_to_string(&p).map_err(|e| RepoError::Io(p.display().to_string(), e))?;
        let mut new = definition::parse(&text, &p.display().to_string(), vars)?;
        let dir = p.parent().unwrap_or(Path::new("."));
        for d in &mut new {
            for url in std::iter::once(&mut d.baseurl).chain(d.gpgkey.iter_mut()) {
                if !url.contains("://") {
                    let abs = std::path::absolute(dir.join(&*url))
                        .map_err(|e| RepoError::Io(p.display().to_string(), e))?;
                    *url = format!("file://{}", abs.display());
                }
            }
        }
        add(new);
    }
    Ok(defs)
}

/// Applies `--mirror` (to every definition on openSUSE's download host) and `--repo NAME=URL`
/// (replacing NAME's base URL, or defining NAME if it does not exist).
pub fn apply_overrides(defs: &mut Vec<RepoDef>, mirror: Option<&str>, repos: &[(String, String)]) {
    if let Some(m) = mirror {
        let m = m.trim_end_matches('/');
        for d in defs.iter_mut() {
            // The keys move with the repositories (the pins stay: see `--repo-key`).
            for url in std::iter::once(&mut d.baseurl).chain(d.gpgkey.iter_mut()) {
                for prefix in [OPENSUSE_MIRROR, "http://download.opensuse.org"] {
                    if let Some(rest) = url.strip_prefix(prefix) {
                        *url = format!("{m}{rest}");
                    }
                }
            }
        }
    }
    for (name, url) in repos {
        match defs.iter_mut().find(|d| &d.alias == name) {
            Some(d) => {
                // A key served by the repository itself moves with it.
                let old = format!("{}/", d.baseurl.trim_end_matches('/'));
                for k in &mut d.gpgkey {
                    if let Some(rest) = k.strip_prefix(&old) {
                        *k = fetch::join(url, rest);
                    }
                }
                d.baseurl = url.clone();
                d.enabled = true;
            }
            None => {
                // A bare URL comes without a key to check it with.
                let mut d = RepoDef::new(name, url, "--repo");
                d.gpgcheck = false;
                defs.push(d)
            }
        }
    }
}

/// Applies `--repo-key [NAME=]FINGERPRINT`: the pinned keys of NAME, or of every definition
/// when no NAME is given, become the fingerprints given (several may be given for one NAME).
/// A NAME no definition has is an error, not a key silently left unused.
pub fn apply_repo_keys(
    defs: &mut [RepoDef],
    keys: &[(Option<String>, String)],
) -> Result<(), RepoError> {
    let names: Vec<String> = keys.iter().filter_map(|(n, _)| n.clone()).collect();
    select(defs, &names)?;
    for d in defs.iter_mut() {
        let mine: Vec<String> = keys
            .iter()
            .filter(|(n, _)| n.as_deref().is_none_or(|n| n == d.alias))
            .map(|(_, fp)| fp.clone())
            .collect();
        if !mine.is_empty() {
            d.gpgkey_fingerprint = mine;
        }
    }
    Ok(())
}

/// Picks the definitions named by `aliases`, in that order.
pub fn select<'a>(defs: &'a [RepoDef], aliases: &[String]) -> Result<Vec<&'a RepoDef>, RepoError> {
    aliases
        .iter()
        .map(|a| {
            defs.iter()
                .find(|d| &d.alias == a)
                .ok_or_else(|| RepoError::Unknown {
                    alias: a.clone(),
                    known: defs
                        .iter()
                        .map(|d| d.alias.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// Reads a repository's repomd.xml, checks its signature as the definition asks, and reads its
/// primary metadata.
pub fn load_packages(
    def: &RepoDef,
    f: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<(RepoData, trust::Trust), RepoError> {
    let url = fetch::join(&def.baseurl, "repodata/repomd.xml");
    let fetch_err = |url: &str, source| RepoError::Fetch {
        alias: def.alias.clone(),
        url: url.to_owned(),
        source,
    };
    let md_bytes = f.get(&url).map_err(|e| fetch_err(&url, e))?;
    let trust = trust::verify_repository(def, f, &url, &md_bytes, reporter)?;
    let md = repomd::parse(&md_bytes, &url).map_err(|e| RepoError::Metadata {
        alias: def.alias.clone(),
        message: e.to_string(),
    })?;
    let prim = md.find("primary").ok_or_else(|| RepoError::Metadata {
        alias: def.alias.clone(),
        message: format!("{url} lists no primary metadata"),
    })?;
    let purl = fetch::join(&def.baseurl, &prim.href);
    let sum = prim.checksum.as_ref().ok_or_else(|| RepoError::Metadata {
        alias: def.alias.clone(),
        message: format!("{url}: primary has no checksum"),
    })?;
    if let Some(mut data) = store::load(&f.cache, sum) {
        add_filelists(def, f, &md, &mut data, reporter)?;
        return Ok((data, trust));
    }
    // streamed: the decompressed primary.xml (about 100 MB for 60k packages) is never whole
    let path = fetch_verified(def, f, &purl, sum, reporter)?;
    let codec = Codec::from_file_name(&prim.href);
    let open = || -> std::io::Result<Box<dyn std::io::Read + Send>> {
        codec.reader(std::io::BufReader::new(fs_err::File::open(&path)?))
    };
    let mut data = primary::parse_arena(&open, &purl).map_err(|e| RepoError::Metadata {
        alias: def.alias.clone(),
        message: e.to_string(),
    })?;
    crate::resolve::solvorder::order_recommends(&mut data);
    if let Err(e) = store::save(&f.cache, sum, &data) {
        tracing::warn!("repository {}: caching the parsed metadata: {e}", def.alias);
    }
    add_filelists(def, f, &md, &mut data, reporter)?;
    Ok((data, trust))
}

/// Fetches the metadata file at `url` verified by `sum` into the cache (or takes it from there)
/// and decompresses it as its name in repomd.xml (`href`) says.
fn fetch_decoded(
    def: &RepoDef,
    f: &Fetcher,
    url: &str,
    href: &str,
    sum: &crate::checksum::Checksum,
    reporter: &dyn Reporter,
) -> Result<Vec<u8>, RepoError> {
    let path = fetch_verified(def, f, url, sum, reporter)?;
    let raw = fs_err::read(&path).map_err(|e| RepoError::Io(path.display().to_string(), e))?;
    Codec::from_file_name(href)
        .decode_all(&raw)
        .map_err(|e| RepoError::Metadata {
            alias: def.alias.clone(),
            message: format!("{url}: {e}"),
        })
}

/// The cached file of the metadata at `url`, verified by `sum` (fetched if not cached).
fn fetch_verified(
    def: &RepoDef,
    f: &Fetcher,
    url: &str,
    sum: &crate::checksum::Checksum,
    reporter: &dyn Reporter,
) -> Result<std::path::PathBuf, RepoError> {
    let (path, _) = f
        .get_verified(
            url,
            sum,
            Bucket::Repodata,
            reporter,
            Stage::Metadata,
            &def.alias,
        )
        .map_err(|source| RepoError::Fetch {
            alias: def.alias.clone(),
            url: url.to_owned(),
            source,
        })?;
    Ok(path)
}

/// The file dependencies (plain, or inside rich ones) of a repository's packages that no
/// package of it provides by a provide or by its primary file list.
pub fn unresolved_file_deps(data: &RepoData) -> std::collections::BTreeSet<String> {
    data.file_wants().map(str::to_owned).collect()
}

/// Adds to `data` the files of filelists.xml that an unresolved file dependency names; reads
/// filelists only when there is one (then the arena is built again with them).
fn add_filelists(
    def: &RepoDef,
    f: &Fetcher,
    md: &repomd::Repomd,
    data: &mut RepoData,
    reporter: &dyn Reporter,
) -> Result<(), RepoError> {
    let wanted = unresolved_file_deps(data);
    if wanted.is_empty() {
        return Ok(());
    }
    let meta_err = |message: String| RepoError::Metadata {
        alias: def.alias.clone(),
        message,
    };
    let Some(fl) = md.find("filelists") else {
        return Ok(());
    };
    let furl = fetch::join(&def.baseurl, &fl.href);
    let sum = fl
        .checksum
        .as_ref()
        .ok_or_else(|| meta_err(format!("{furl}: filelists has no checksum")))?;
    let xml = fetch_decoded(def, f, &furl, &fl.href, sum, reporter)?;
    let entries = filelists::parse(&xml, &furl, &|p| wanted.contains(p))
        .map_err(|e| meta_err(e.to_string()))?;
    let mut pkgs = data.to_packages();
    let by_id: std::collections::HashMap<&str, usize> = pkgs
        .iter()
        .enumerate()
        .map(|(i, p)| (p.checksum.hex.as_str(), i))
        .collect();
    let mut adds: Vec<(usize, Vec<String>)> = Vec::new();
    for e in entries.into_iter().filter(|e| !e.files.is_empty()) {
        let i = by_id.get(e.pkgid.as_str()).copied().or_else(|| {
            pkgs.iter()
                .position(|p| p.name == e.name && p.arch == e.arch && p.evr == e.evr)
        });
        if let Some(i) = i {
            adds.push((i, e.files));
        }
    }
    drop(by_id);
    for (i, files) in adds {
        let p = &mut pkgs[i];
        for file in files {
            if !p.files.contains(&file) {
                p.files.push(file);
            }
        }
    }
    *data = RepoData::from_packages(&pkgs);
    Ok(())
}
