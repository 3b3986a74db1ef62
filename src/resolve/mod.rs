//! Dependency resolution over rpm-md metadata, with zypper/libsolv's rules for what it handles.
//!
//! Contract: [`Pool::solve`] is a pure function of the pool and the request and gives the
//! answer libsolv (zypper) gives on the same metadata: names, versioned provides and requires
//! (rpm's EVR order), file dependencies from primary's file list, rich dependencies,
//! conflicts, obsoletes, the architecture policy, repository priorities and libsolv's choice
//! among alternatives (`solver.rs`). An unsolvable request gets the rules that clash, in words.

pub mod dep;
pub mod evr;
pub mod rules;
mod solver;

use crate::repo::primary::Package;
use dep::Dep;
use std::collections::{BTreeSet, HashMap};

/// A package in the pool, with the repository it comes from.
#[derive(Clone, Debug)]
pub struct Solvable {
    pub pkg: Package,
    pub repo: String,
    /// zypper priority of its repository: lower wins.
    pub priority: u32,
}

/// All packages the resolver may choose from, indexed by what they provide.
pub struct Pool {
    pub solvables: Vec<Solvable>,
    provides: HashMap<String, Vec<(usize, usize)>>,
    files: HashMap<String, Vec<usize>>,
    names: HashMap<String, Vec<usize>>,
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
    /// Builds a pool from repositories' packages, keeping only `arch`'s compatible packages.
    pub fn new(repos: Vec<(String, u32, Vec<Package>)>, arch: &str) -> Pool {
        let archs = compatible_archs(arch);
        let mut solvables = Vec::new();
        for (repo, priority, pkgs) in repos {
            for pkg in pkgs {
                if archs.contains(&pkg.arch.as_str()) {
                    solvables.push(Solvable {
                        pkg,
                        repo: repo.clone(),
                        priority,
                    });
                }
            }
        }
        let mut provides: HashMap<String, Vec<(usize, usize)>> = HashMap::new();
        let mut files: HashMap<String, Vec<usize>> = HashMap::new();
        let mut names: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, s) in solvables.iter().enumerate() {
            names.entry(s.pkg.name.clone()).or_default().push(i);
            for (j, p) in s.pkg.provides.iter().enumerate() {
                provides.entry(p.name.clone()).or_default().push((i, j));
            }
            for f in &s.pkg.files {
                files.entry(f.clone()).or_default().push(i);
            }
        }
        Pool {
            solvables,
            provides,
            files,
            names,
        }
    }

    pub fn get(&self, i: usize) -> &Solvable {
        &self.solvables[i]
    }

    /// Every package that satisfies a simple dependency, including by its own name and version
    /// (every rpm provides `name = epoch:version-release`) and by a file it contains.
    pub fn providers(&self, d: &Dep) -> Vec<usize> {
        let mut out: BTreeSet<usize> = BTreeSet::new();
        if let Some(list) = self.provides.get(&d.name) {
            for &(i, j) in list {
                if self.solvables[i].pkg.provides[j].overlaps(d) {
                    out.insert(i);
                }
            }
        }
        out.extend(self.by_name(d));
        if d.name.starts_with('/')
            && let Some(list) = self.files.get(&d.name)
        {
            out.extend(list.iter().copied());
        }
        out.into_iter().collect()
    }

    /// Packages named like the dependency whose own version satisfies it.
    fn by_name<'a>(&'a self, d: &'a Dep) -> impl Iterator<Item = usize> + 'a {
        let list = self.names.get(&d.name).map(Vec::as_slice).unwrap_or(&[]);
        list.iter()
            .copied()
            .filter(move |&i| self_provide(&self.solvables[i].pkg).overlaps(d))
    }

    /// Finds the packages to install beside `req.installed` (see `solver.rs`).
    pub fn solve(&self, req: &Request) -> Result<Vec<usize>, Vec<Problem>> {
        solver::solve(self, req)
    }
}

fn self_provide(p: &Package) -> Dep {
    Dep {
        name: p.name.clone(),
        range: Some((dep::Cmp::Eq, p.evr.clone())),
    }
}
