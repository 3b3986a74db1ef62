//! Dependency resolution over rpm-md metadata, with zypper/libsolv's rules for what it handles.
//!
//! Contract: [`Pool::solve`] is a pure function of the pool and the request and gives the
//! answer libsolv (zypper) gives on the same metadata: names, versioned provides and requires
//! (rpm's EVR order), file dependencies from primary's file list, rich dependencies,
//! conflicts, obsoletes, the architecture policy, repository priorities and libsolv's choice
//! among alternatives (`solver.rs`). An unsolvable request gets the rules that clash, in words.

pub mod dep;
pub mod evr;
pub mod repodata;
pub mod rules;
mod solver;
pub mod solvorder;

use crate::repo::primary::Package;
use dep::{Dep, Range};
use evr::EvrRef;
pub use repodata::{DepRef, Kind, RepoData};

/// A package in the pool, with the repository it comes from (built on request: the pool keeps
/// packages as records in its arena).
#[derive(Clone, Debug)]
pub struct Solvable {
    pub pkg: Package,
    pub repo: String,
    /// zypper priority of its repository: lower wins.
    pub priority: u32,
}

/// All packages the resolver may choose from: the repositories' arenas as one
/// ([`RepoData`]), their aliases and priorities, and which packages the architecture allows
/// (the others stay in the arena but no lookup returns them).
pub struct Pool {
    data: RepoData,
    /// Alias, priority and first package of each repository, in order.
    repos: Vec<(String, u32, usize)>,
    considered: Vec<bool>,
}

/// The architectures a host architecture installs (never i586/i686 on x86_64).
pub fn compatible_archs(arch: &str) -> &'static [&'static str] {
    match arch {
        "x86_64" => &["x86_64", "noarch"],
        "aarch64" => &["aarch64", "noarch"],
        "ppc64le" => &["ppc64le", "noarch"],
        "s390x" => &["s390x", "noarch"],
        "riscv64" => &["riscv64", "noarch"],
        _ => &["noarch"],
    }
}

/// A problem that makes a request unsolvable, in words a person can act on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Problem(pub String);

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, Default)]
pub struct Request {
    /// What to install: names (or provides), optionally versioned.
    pub install: Vec<Dep>,
    /// Packages already present (the base image): they satisfy dependencies and cannot change.
    pub installed: Vec<usize>,
    /// Install Recommends and Supplements too (zypper's default; mkosi turns it off).
    pub recommends: bool,
}

impl Pool {
    /// Builds a pool from repositories' parsed packages (see [`Pool::from_data`]), their
    /// recommendations put in libsolv's order as a parsed repository's are.
    pub fn new(repos: Vec<(String, u32, Vec<Package>)>, arch: &str) -> Pool {
        Pool::from_data(
            repos
                .into_iter()
                .map(|(a, p, pkgs)| {
                    let mut d = RepoData::from_packages(&pkgs);
                    solvorder::order_recommends(&mut d);
                    (a, p, d)
                })
                .collect(),
            arch,
        )
    }

    /// Builds a pool from repositories' arenas, allowing only `arch`'s compatible packages.
    /// One repository's arena is used as it is; several are merged into one.
    pub fn from_data(repos: Vec<(String, u32, RepoData)>, arch: &str) -> Pool {
        let mut meta = Vec::with_capacity(repos.len());
        let mut at = 0;
        for (alias, prio, d) in &repos {
            meta.push((alias.clone(), *prio, at));
            at += d.len();
        }
        let data = if repos.len() == 1 {
            repos.into_iter().next().unwrap().2
        } else {
            RepoData::merge(&repos.iter().map(|r| &r.2).collect::<Vec<_>>())
        };
        // compared as string ids: the arena has each architecture's name once
        let archs: Vec<u32> = compatible_archs(arch)
            .iter()
            .filter_map(|a| data.lookup(a))
            .collect();
        let considered = (0..data.len())
            .map(|p| archs.contains(&data.arch_id(p)))
            .collect();
        Pool {
            data,
            repos: meta,
            considered,
        }
    }

    /// Packages in the pool, including those of other architectures (never chosen).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &RepoData {
        &self.data
    }

    /// Whether the architecture allows package `p`.
    pub fn considered(&self, p: usize) -> bool {
        self.considered[p]
    }

    fn repo_index(&self, p: usize) -> usize {
        self.repos.partition_point(|r| r.2 <= p) - 1
    }

    pub fn repo(&self, p: usize) -> &str {
        &self.repos[self.repo_index(p)].0
    }

    pub fn priority(&self, p: usize) -> u32 {
        self.repos[self.repo_index(p)].1
    }

    pub fn name(&self, p: usize) -> &str {
        self.data.name(p)
    }

    pub fn name_id(&self, p: usize) -> u32 {
        self.data.name_id(p)
    }

    pub fn arch(&self, p: usize) -> &str {
        self.data.arch(p)
    }

    pub fn evr(&self, p: usize) -> EvrRef<'_> {
        self.data.evr(p)
    }

    pub fn deps(&self, p: usize, k: Kind) -> &[u32] {
        self.data.deps(p, k)
    }

    pub fn dep(&self, d: u32) -> DepRef<'_> {
        self.data.dep(d)
    }

    /// `name-[epoch:]version-release.arch`, as zypper prints it.
    pub fn nevra(&self, p: usize) -> String {
        format!("{}-{}.{}", self.name(p), self.evr(p), self.arch(p))
    }

    /// Package `p` with its repository, built from the arena.
    pub fn get(&self, p: usize) -> Solvable {
        let r = &self.repos[self.repo_index(p)];
        Solvable {
            pkg: self.data.package(p),
            repo: r.0.clone(),
            priority: r.1,
        }
    }

    /// The allowed packages named `name` (a string id).
    pub fn named(&self, name: u32) -> impl Iterator<Item = usize> + '_ {
        self.data
            .named(name)
            .iter()
            .map(|&p| p as usize)
            .filter(|&p| self.considered[p])
    }

    /// Whether package `p`'s own provide (`name = epoch:version-release`) meets `range`.
    pub fn self_provides(&self, p: usize, range: Range<'_>) -> bool {
        dep::overlaps(Some((dep::Cmp::Eq, self.evr(p))), range)
    }

    /// Every package that satisfies a simple dependency, including by its own name and version
    /// (every rpm provides `name = epoch:version-release`) and by a file it contains.
    pub fn providers(&self, d: &Dep) -> Vec<usize> {
        match self.data.lookup(&d.name) {
            Some(id) => self.providers_of(id, d.range_ref()),
            None => Vec::new(),
        }
    }

    /// [`Pool::providers`] of a name (string id) and a range.
    pub fn providers_of(&self, name: u32, range: Range<'_>) -> Vec<usize> {
        let is_path = self.data.str(name).starts_with('/');
        let mut out: Vec<usize> = Vec::new();
        // both lists are in package order: only the own-name providers need a merge
        for (p, d) in self.data.what_provides(name) {
            if !self.considered[p] || out.last() == Some(&p) {
                continue;
            }
            let ok = if d == repodata::NONE {
                is_path
            } else {
                range.is_none() || dep::overlaps(self.data.dep_range(d), range)
            };
            if ok {
                out.push(p);
            }
        }
        let provided = out.len();
        for p in self.named(name) {
            if self.self_provides(p, range) && out[..provided].binary_search(&p).is_err() {
                out.push(p);
            }
        }
        if out.len() > provided && provided > 0 {
            out.sort_unstable();
        }
        out
    }

    /// Finds the packages to install beside `req.installed` (see `solver.rs`).
    pub fn solve(&self, req: &Request) -> Result<Vec<usize>, Vec<Problem>> {
        solver::solve(self, req)
    }
}
