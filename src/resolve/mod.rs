//! Dependency resolution over rpm-md metadata, with zypper/libsolv's rules for what it handles.
//!
//! Contract: [`Pool::solve`] is a pure function of the pool and the request. It handles names,
//! versioned provides and requires (rpm's EVR order), file dependencies from primary's file
//! list, rich dependencies, conflicts, obsoletes, the architecture policy and repository
//! priorities; where it cannot decide like libsolv would, it reports a problem instead of
//! guessing silently.

pub mod dep;
pub mod evr;

use crate::repo::primary::Package;
use dep::{Dep, Rich};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

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

    /// Finds the packages to install beside `req.installed`.
    pub fn solve(&self, req: &Request) -> Result<Vec<usize>, Vec<Problem>> {
        let mut s = Solver {
            pool: self,
            set: HashSet::new(),
            names: HashMap::new(),
            new: Vec::new(),
            problems: Vec::new(),
        };
        for &i in &req.installed {
            s.add_existing(i);
        }
        let mut queue: VecDeque<usize> = VecDeque::new();
        for job in &req.install {
            // A job names a package first; only when no package has that name is it a provide.
            let by_name: Vec<usize> = (0..self.solvables.len())
                .filter(|&i| {
                    self.solvables[i].pkg.name == job.name
                        && self_provide(&self.solvables[i].pkg).overlaps(job)
                })
                .collect();
            let cands = if by_name.is_empty() {
                self.providers(job)
            } else {
                by_name
            };
            if cands.iter().any(|c| s.set.contains(c)) {
                continue;
            }
            match s.choose(&cands, job) {
                Some(c) => s.add(c, &mut queue),
                None => s.problems.push(Problem(format!(
                    "no package provides '{job}', which was asked to be installed"
                ))),
            }
        }
        // Requirements, then re-check conditional (rich) ones until nothing changes.
        for _round in 0..64 {
            while let Some(i) = queue.pop_front() {
                let pkg = &self.solvables[i].pkg;
                for r in &pkg.requires {
                    s.require(i, r, &mut queue);
                }
            }
            let before = s.new.len();
            let current: Vec<usize> = s.set.iter().copied().collect();
            for i in current {
                for r in &self.solvables[i].pkg.requires {
                    if r.name.starts_with('(') {
                        s.require(i, r, &mut queue);
                    }
                }
            }
            if req.recommends {
                s.weak(&mut queue);
            }
            if s.new.len() == before && queue.is_empty() {
                break;
            }
        }
        s.check_conflicts();
        if !s.problems.is_empty() {
            s.problems.sort();
            s.problems.dedup();
            return Err(s.problems);
        }
        let mut out = s.new;
        out.sort_by(|&a, &b| {
            let (a, b) = (&self.solvables[a].pkg, &self.solvables[b].pkg);
            a.name.cmp(&b.name).then_with(|| a.arch.cmp(&b.arch))
        });
        Ok(out)
    }
}

fn self_provide(p: &Package) -> Dep {
    Dep {
        name: p.name.clone(),
        range: Some((dep::Cmp::Eq, p.evr.clone())),
    }
}

struct Solver<'p> {
    pool: &'p Pool,
    set: HashSet<usize>,
    names: HashMap<String, usize>,
    new: Vec<usize>,
    problems: Vec<Problem>,
}

impl Solver<'_> {
    fn add_existing(&mut self, i: usize) {
        self.set.insert(i);
        self.names
            .insert(self.pool.solvables[i].pkg.name.clone(), i);
    }

    fn add(&mut self, i: usize, queue: &mut VecDeque<usize>) {
        if self.set.insert(i) {
            self.names
                .insert(self.pool.solvables[i].pkg.name.clone(), i);
            self.new.push(i);
            queue.push_back(i);
        }
    }

    fn nevra(&self, i: usize) -> String {
        self.pool.solvables[i].pkg.nevra()
    }

    fn satisfied(&self, d: &Dep) -> bool {
        if d.name.starts_with("rpmlib(") {
            return true; // features of the rpm that installs, not packages
        }
        self.pool.providers(d).iter().any(|p| self.set.contains(p))
    }

    fn rich_satisfied(&self, r: &Rich) -> bool {
        match r {
            Rich::Dep(d) => self.satisfied(d),
            Rich::And(v) => v.iter().all(|x| self.rich_satisfied(x)),
            Rich::Or(v) => v.iter().any(|x| self.rich_satisfied(x)),
            Rich::With(v) => {
                let sets: Vec<HashSet<usize>> = v.iter().map(|x| self.rich_providers(x)).collect();
                sets.first().is_some_and(|f| {
                    f.iter()
                        .any(|p| self.set.contains(p) && sets.iter().all(|s| s.contains(p)))
                })
            }
            Rich::Without(a, b) => {
                let (a, b) = (self.rich_providers(a), self.rich_providers(b));
                a.iter().any(|p| self.set.contains(p) && !b.contains(p))
            }
            Rich::If(a, cond, other) => {
                if self.rich_satisfied(cond) {
                    self.rich_satisfied(a)
                } else {
                    other.as_ref().is_none_or(|o| self.rich_satisfied(o))
                }
            }
            Rich::Unless(a, cond, other) => {
                if !self.rich_satisfied(cond) {
                    self.rich_satisfied(a)
                } else {
                    other.as_ref().is_none_or(|o| self.rich_satisfied(o))
                }
            }
        }
    }

    /// Packages that provide a simple term (used for `with` and `without`).
    fn rich_providers(&self, r: &Rich) -> HashSet<usize> {
        match r {
            Rich::Dep(d) => self.pool.providers(d).into_iter().collect(),
            _ => HashSet::new(),
        }
    }

    fn require(&mut self, who: usize, r: &Dep, queue: &mut VecDeque<usize>) {
        if r.name.starts_with('(') {
            match Rich::parse(&r.name) {
                Ok(rich) => {
                    if !self.rich_satisfied(&rich) && !self.fulfill(&rich, queue) {
                        let msg = format!(
                            "nothing provides '{}' needed by '{}'",
                            r.name,
                            self.nevra(who)
                        );
                        self.problems.push(Problem(msg));
                    }
                }
                Err(e) => self
                    .problems
                    .push(Problem(format!("{}: {e}", self.nevra(who)))),
            }
            return;
        }
        if self.satisfied(r) {
            return;
        }
        let cands = self.pool.providers(r);
        match self.choose(&cands, r) {
            Some(c) => self.add(c, queue),
            None => self.problems.push(self.explain(who, r, &cands)),
        }
    }

    /// Installs what makes a rich dependency true; false when nothing can.
    fn fulfill(&mut self, r: &Rich, queue: &mut VecDeque<usize>) -> bool {
        if self.rich_satisfied(r) {
            return true;
        }
        match r {
            Rich::Dep(d) => {
                let cands = self.pool.providers(d);
                match self.choose(&cands, d) {
                    Some(c) => {
                        self.add(c, queue);
                        true
                    }
                    None => false,
                }
            }
            Rich::And(v) => v.iter().all(|x| self.fulfill(x, queue)),
            // libsolv tries the alternatives in the order written; the first that can be
            // installed wins.
            Rich::Or(v) => v.iter().any(|x| self.fulfill(x, queue)),
            Rich::If(a, cond, other) => {
                if self.rich_satisfied(cond) {
                    self.fulfill(a, queue)
                } else {
                    other.as_ref().is_none_or(|o| self.fulfill(o, queue))
                }
            }
            Rich::Unless(a, cond, other) => {
                if !self.rich_satisfied(cond) {
                    self.fulfill(a, queue)
                } else {
                    other.as_ref().is_none_or(|o| self.fulfill(o, queue))
                }
            }
            Rich::With(v) => {
                let sets: Vec<HashSet<usize>> = v.iter().map(|x| self.rich_providers(x)).collect();
                let mut both: Vec<usize> = sets[0]
                    .iter()
                    .copied()
                    .filter(|p| sets.iter().all(|s| s.contains(p)))
                    .collect();
                both.sort();
                let first = v.iter().find_map(|x| {
                    if let Rich::Dep(d) = x {
                        Some(d.clone())
                    } else {
                        None
                    }
                });
                match first.and_then(|d| self.choose(&both, &d)) {
                    Some(c) => {
                        self.add(c, queue);
                        true
                    }
                    None => false,
                }
            }
            Rich::Without(a, b) => {
                let bs = self.rich_providers(b);
                let mut only: Vec<usize> = self
                    .rich_providers(a)
                    .into_iter()
                    .filter(|p| !bs.contains(p))
                    .collect();
                only.sort();
                let d = if let Rich::Dep(d) = a.as_ref() {
                    d.clone()
                } else {
                    return false;
                };
                match self.choose(&only, &d) {
                    Some(c) => {
                        self.add(c, queue);
                        true
                    }
                    None => false,
                }
            }
        }
    }

    /// libsolv's policy, for the cases it handles: a package with the dependency's name first,
    /// then the repository with the better priority, then the highest version, then the host
    /// architecture over noarch; never a second version of an installed name.
    fn choose(&self, cands: &[usize], d: &Dep) -> Option<usize> {
        let pool = self.pool;
        cands
            .iter()
            .copied()
            .filter(|&c| match self.names.get(&pool.solvables[c].pkg.name) {
                Some(&have) => have == c,
                None => true,
            })
            .filter(|&c| !self.conflicts_with_set(c))
            // libsolv's prune_obsoleted: a candidate another candidate obsoletes loses.
            .filter(|&c| {
                let pc = &pool.solvables[c].pkg;
                !cands.iter().any(|&o| {
                    let po = &pool.solvables[o].pkg;
                    o != c
                        && po.name != pc.name
                        && po
                            .obsoletes
                            .iter()
                            .any(|x| x.name == pc.name && self_provide(pc).overlaps(x))
                })
            })
            .max_by(|&a, &b| {
                let (sa, sb) = (&pool.solvables[a], &pool.solvables[b]);
                (sa.pkg.name == d.name)
                    .cmp(&(sb.pkg.name == d.name))
                    .then_with(|| sb.priority.cmp(&sa.priority))
                    .then_with(|| sa.pkg.evr.cmp(&sb.pkg.evr))
                    .then_with(|| (sa.pkg.arch != "noarch").cmp(&(sb.pkg.arch != "noarch")))
                    .then_with(|| sb.pkg.name.cmp(&sa.pkg.name))
                    .then_with(|| b.cmp(&a))
            })
    }

    fn conflicts_with_set(&self, c: usize) -> bool {
        self.set
            .iter()
            .any(|&o| o != c && self.conflicts_with_set_pair(c, o))
    }

    fn explain(&self, who: usize, r: &Dep, cands: &[usize]) -> Problem {
        let nevra = self.nevra(who);
        if cands.is_empty() {
            let hint = if r.name.starts_with('/') {
                " (elsx reads primary's file list; filelists.xml is not consulted yet)"
            } else {
                ""
            };
            return Problem(format!("nothing provides '{r}' needed by '{nevra}'{hint}"));
        }
        for &c in cands {
            let cp = &self.pool.solvables[c].pkg;
            if let Some(&have) = self.names.get(&cp.name)
                && have != c
            {
                return Problem(format!(
                    "'{nevra}' requires '{r}', provided by '{}', but '{}' is already installed (in the base) and cannot change",
                    cp.nevra(),
                    self.nevra(have)
                ));
            }
            if let Some(&o) = self
                .set
                .iter()
                .find(|&&o| self.conflicts_with_set_pair(c, o))
            {
                return Problem(format!(
                    "'{nevra}' requires '{r}', provided by '{}', which conflicts with '{}'",
                    cp.nevra(),
                    self.nevra(o)
                ));
            }
        }
        Problem(format!(
            "cannot install a provider of '{r}' needed by '{nevra}'"
        ))
    }

    /// Whether two packages cannot be installed together: a conflict either way, or one
    /// obsoleting the other (obsoletes match package names, as in rpm and libsolv).
    fn conflicts_with_set_pair(&self, c: usize, o: usize) -> bool {
        let (p, q) = (&self.pool.solvables[c].pkg, &self.pool.solvables[o].pkg);
        let obsoletes = |a: &Package, b: &Package| {
            a.name != b.name
                && a.obsoletes
                    .iter()
                    .any(|d| d.name == b.name && self_provide(b).overlaps(d))
        };
        obsoletes(p, q)
            || obsoletes(q, p)
            || p.conflicts
                .iter()
                .any(|d| self.pool.providers(d).contains(&o))
            || q.conflicts
                .iter()
                .any(|d| self.pool.providers(d).contains(&c))
    }

    fn weak(&mut self, queue: &mut VecDeque<usize>) {
        let current: Vec<usize> = {
            let mut v: Vec<usize> = self.set.iter().copied().collect();
            v.sort();
            v
        };
        for i in current {
            for r in self.pool.solvables[i].pkg.recommends.clone() {
                if r.name.starts_with('(') {
                    if let Ok(rich) = Rich::parse(&r.name) {
                        let _ = self.fulfill(&rich, queue);
                    }
                } else if !self.satisfied(&r) {
                    let cands = self.pool.providers(&r);
                    if let Some(c) = self.choose(&cands, &r) {
                        self.add(c, queue);
                    }
                }
            }
        }
        for c in 0..self.pool.solvables.len() {
            if self.set.contains(&c) || self.names.contains_key(&self.pool.solvables[c].pkg.name) {
                continue;
            }
            let sup = self.pool.solvables[c].pkg.supplements.clone();
            let hit = sup.iter().any(|d| {
                if d.name.starts_with('(') {
                    Rich::parse(&d.name).is_ok_and(|r| self.rich_satisfied(&r))
                } else {
                    self.satisfied(d)
                }
            });
            if hit && !self.conflicts_with_set(c) {
                self.add(c, queue);
            }
        }
    }

    fn check_conflicts(&mut self) {
        let mut set: Vec<usize> = self.set.iter().copied().collect();
        set.sort();
        for &a in &set {
            let pa = &self.pool.solvables[a].pkg;
            for d in &pa.conflicts {
                for p in self.pool.providers(d) {
                    if p != a && self.set.contains(&p) {
                        self.problems.push(Problem(format!(
                            "'{}' conflicts with '{d}' provided by '{}'",
                            pa.nevra(),
                            self.nevra(p)
                        )));
                    }
                }
            }
            for d in &pa.obsoletes {
                for &b in &set {
                    let pb = &self.pool.solvables[b].pkg;
                    if b != a && pb.name == d.name && self_provide(pb).overlaps(d) {
                        self.problems.push(Problem(format!(
                            "'{}' obsoletes '{}', which is also to be installed; a sysext cannot remove base packages",
                            pa.nevra(),
                            pb.nevra()
                        )));
                    }
                }
            }
        }
    }
}
