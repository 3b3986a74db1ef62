//! Repositories: definitions (`.repo` files) and their rpm-md metadata.

pub mod definition;
pub mod primary;
pub mod repomd;
pub mod store;
mod xml;

use crate::cache::Bucket;
use crate::compress::Codec;
use crate::fetch::{self, Fetcher};
use crate::report::{Reporter, Stage};
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
            if !d.baseurl.contains("://") {
                let abs = std::path::absolute(dir.join(&d.baseurl))
                    .map_err(|e| RepoError::Io(p.display().to_string(), e))?;
                d.baseurl = format!("file://{}", abs.display());
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
            for prefix in [OPENSUSE_MIRROR, "http://download.opensuse.org"] {
                if let Some(rest) = d.baseurl.strip_prefix(prefix) {
                    d.baseurl = format!("{m}{rest}");
                }
            }
        }
    }
    for (name, url) in repos {
        match defs.iter_mut().find(|d| &d.alias == name) {
            Some(d) => {
                d.baseurl = url.clone();
                d.enabled = true;
            }
            None => defs.push(RepoDef {
                alias: name.clone(),
                name: name.clone(),
                baseurl: url.clone(),
                enabled: true,
                gpgcheck: false,
                gpgkey: Vec::new(),
                priority: 99,
                origin: "--repo".into(),
                other: Default::default(),
            }),
        }
    }
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

/// Reads a repository's repomd.xml and primary metadata.
pub fn load_packages(
    def: &RepoDef,
    f: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<Vec<primary::Package>, RepoError> {
    let url = fetch::join(&def.baseurl, "repodata/repomd.xml");
    let fetch_err = |url: &str, source| RepoError::Fetch {
        alias: def.alias.clone(),
        url: url.to_owned(),
        source,
    };
    let md_bytes = f.get(&url).map_err(|e| fetch_err(&url, e))?;
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
    if let Some(pkgs) = store::load(&f.cache, sum) {
        return Ok(pkgs);
    }
    let (path, _) = f
        .get_verified(
            &purl,
            sum,
            Bucket::Repodata,
            reporter,
            Stage::Metadata,
            &def.alias,
        )
        .map_err(|e| fetch_err(&purl, e))?;
    let raw = fs_err::read(&path).map_err(|e| RepoError::Io(path.display().to_string(), e))?;
    let xml = Codec::from_file_name(&prim.href)
        .decode_all(&raw)
        .map_err(|e| RepoError::Metadata {
            alias: def.alias.clone(),
            message: format!("{purl}: {e}"),
        })?;
    let pkgs = primary::parse(&xml, &purl).map_err(|e| RepoError::Metadata {
        alias: def.alias.clone(),
        message: e.to_string(),
    })?;
    if let Err(e) = store::save(&f.cache, sum, &pkgs) {
        tracing::warn!("repository {}: caching the parsed metadata: {e}", def.alias);
    }
    Ok(pkgs)
}
