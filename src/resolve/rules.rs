//! Dependencies as clauses over package literals, the way libsolv turns them into rules.
//!
//! A literal is `+(i + 1)` for "package `i` is installed" and `-(i + 1)` for "it is not", so
//! that literals order like libsolv's solvable ids (the pool keeps the metadata's order).
//! Simple dependencies, and `or`/`with`/`without` trees of them, are one provider list (libsolv
//! does not call them complex); `and`, `if` and `unless` are normalized to CNF with libsolv's
//! definitions: `A if B` = `A or not B`, `A if B else C` = `(A or not B) and (C or B)`,
//! `A unless B` = `A and not B`, `A unless B else C` = `(A and not B) or (C and B)`.

use super::Pool;
use super::dep::{Dep, Rich};
use std::collections::{BTreeSet, HashMap};

pub type Lit = i32;

pub fn lit(i: usize) -> Lit {
    i as Lit + 1
}

pub fn var(l: Lit) -> usize {
    (l.unsigned_abs() - 1) as usize
}

/// A set of clauses (CNF: all must hold) or of blocks (DNF: one must hold). Every clause or
/// block is sorted. For CNF, `[]` is true and `[[]]` false; for DNF the other way round.
pub type Blocks = Vec<Vec<Lit>>;

/// Above this many clauses a rich dependency is refused rather than expanded.
const MAX_BLOCKS: usize = 4096;

/// Memoized provider lists of one pool, by dependency id.
pub struct Providers<'p> {
    pub pool: &'p Pool,
    /// `None`: always satisfied
    cache: HashMap<u32, Option<Vec<usize>>, IdHash>,
    rich: HashMap<u32, Option<Rich>, IdHash>,
    /// Providers of rich dependencies that are one list of alternatives (see
    /// [`Providers::alternatives`]), `None` for complex or malformed ones.
    flat: HashMap<u32, Option<Vec<usize>>, IdHash>,
}

/// A dependency's providers as libsolv looks them up (`FOR_PROVIDES`).
pub enum Alternatives<'a> {
    /// Always satisfied (`rpmlib(...)`).
    Always,
    /// Satisfied by any of these packages (sorted): a simple dependency, or an
    /// `or`/`with`/`without` tree of simple ones, which libsolv does not call complex.
    Any(&'a [usize]),
    /// A complex rich dependency (`and`, `if`, `unless` inside) or a malformed one.
    Complex,
}

/// Hashes the u32 ids the caches are keyed by with one multiplication (SipHash, the default,
/// costs more than the lookups it serves; the keys are ours, not an attacker's).
#[derive(Clone, Copy, Default)]
pub struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Default)]
pub struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl<'p> Providers<'p> {
    pub fn new(pool: &'p Pool) -> Providers<'p> {
        Providers {
            pool,
            cache: HashMap::default(),
            rich: HashMap::default(),
            flat: HashMap::default(),
        }
    }

    /// Whether dependency `d` is a rich (boolean) one.
    pub fn is_rich(&self, d: u32) -> bool {
        self.pool.dep(d).name.starts_with('(')
    }

    /// Providers of a simple dependency, sorted; `None` for one that is always satisfied
    /// (`rpmlib(...)`, a feature of the rpm that installs).
    pub fn simple(&mut self, d: u32) -> Option<&[usize]> {
        let pool = self.pool;
        self.cache
            .entry(d)
            .or_insert_with(|| {
                let r = pool.dep(d);
                (!r.name.starts_with("rpmlib(")).then(|| pool.providers_of(r.name_id, r.range))
            })
            .as_deref()
    }

    /// Dependency `d`'s providers when it is one list of alternatives (cached by id).
    pub fn alternatives(&mut self, d: u32) -> Alternatives<'_> {
        if !self.is_rich(d) {
            return match self.simple(d) {
                Some(p) => Alternatives::Any(p),
                None => Alternatives::Always,
            };
        }
        if !self.flat.contains_key(&d) {
            let list = self.parse(d).and_then(|r| self.rich_simple(&r));
            self.flat.insert(d, list);
        }
        match &self.flat[&d] {
            Some(p) => Alternatives::Any(p),
            None => Alternatives::Complex,
        }
    }

    /// The parsed form of a rich dependency (cached by its name); `None` when malformed.
    pub fn parse(&mut self, d: u32) -> Option<Rich> {
        let r = self.pool.dep(d);
        self.rich
            .entry(r.name_id)
            .or_insert_with(|| Rich::parse(r.name).ok())
            .clone()
    }

    /// The packages dependency `d` names positively (what a recommendation points at, which
    /// gets rules), appended to `out`: libsolv's `pool_add_pos_literals_complex_dep`, where a
    /// condition counts when it has an `else` (`A if C else E` needs `E or C`).
    pub fn positives(&mut self, d: u32, out: &mut Vec<usize>) {
        if self.is_rich(d) {
            if let Some(r) = self.parse(d) {
                pos_literals(self, &r, false, out);
            }
        } else if let Some(p) = self.simple(d) {
            out.extend_from_slice(p);
        }
    }

    /// Providers of an `or`/`with`/`without` tree, or `None` when the tree is complex.
    pub fn rich_simple(&mut self, r: &Rich) -> Option<Vec<usize>> {
        Some(match r {
            Rich::Dep(d) => {
                if d.name.starts_with("rpmlib(") {
                    return Some(Vec::new());
                }
                self.pool.providers(d)
            }
            Rich::Or(v) => {
                let mut out = BTreeSet::new();
                for x in v {
                    out.extend(self.rich_simple(x)?);
                }
                out.into_iter().collect()
            }
            Rich::With(v) => {
                let mut it = v.iter();
                let mut out: BTreeSet<usize> = self.rich_simple(it.next()?)?.into_iter().collect();
                for x in it {
                    let other: BTreeSet<usize> = self.rich_simple(x)?.into_iter().collect();
                    out.retain(|p| other.contains(p));
                }
                out.into_iter().collect()
            }
            Rich::Without(a, b) => {
                let b: BTreeSet<usize> = self.rich_simple(b)?.into_iter().collect();
                self.rich_simple(a)?
                    .into_iter()
                    .filter(|p| !b.contains(p))
                    .collect()
            }
            _ => return None,
        })
    }

    /// CNF of `r` (or of `not r` when `neg`); `None` when it grows too large.
    pub fn cnf(&mut self, r: &Rich, neg: bool) -> Option<Blocks> {
        if neg {
            return Some(invert(self.dnf(r, false)?));
        }
        if let Some(p) = self.rich_simple(r) {
            let mut c: Vec<Lit> = p.into_iter().map(lit).collect();
            c.sort_unstable();
            return Some(vec![c]);
        }
        Some(match r {
            Rich::And(v) => {
                let mut out = Vec::new();
                for x in v {
                    out.extend(self.cnf(x, false)?);
                }
                out
            }
            Rich::Or(v) => {
                let mut acc = vec![Vec::new()]; // false
                let mut first = true;
                for x in v {
                    let c = self.cnf(x, false)?;
                    acc = if first { c } else { product(&acc, &c)? };
                    first = false;
                }
                acc
            }
            Rich::If(a, c, None) => {
                let (a, nc) = (self.cnf(a, false)?, self.cnf(c, true)?);
                product(&a, &nc)?
            }
            Rich::If(a, c, Some(e)) => {
                let mut out = product(&self.cnf(a, false)?, &self.cnf(c, true)?)?;
                out.extend(product(&self.cnf(e, false)?, &self.cnf(c, false)?)?);
                out
            }
            Rich::Unless(a, c, None) => {
                let mut out = self.cnf(a, false)?;
                out.extend(self.cnf(c, true)?);
                out
            }
            Rich::Unless(a, c, Some(e)) => {
                let mut left = self.cnf(a, false)?;
                left.extend(self.cnf(c, true)?);
                let mut right = self.cnf(e, false)?;
                right.extend(self.cnf(c, false)?);
                product(&left, &right)?
            }
            Rich::Dep(_) | Rich::With(_) | Rich::Without(_, _) => unreachable!("simple"),
        })
    }

    /// DNF of `r` (or of `not r` when `neg`).
    pub fn dnf(&mut self, r: &Rich, neg: bool) -> Option<Blocks> {
        if neg {
            return Some(invert(self.cnf(r, false)?));
        }
        if let Some(p) = self.rich_simple(r) {
            return Some(p.into_iter().map(|p| vec![lit(p)]).collect());
        }
        Some(match r {
            Rich::Or(v) => {
                let mut out = Vec::new();
                for x in v {
                    out.extend(self.dnf(x, false)?);
                }
                out
            }
            Rich::And(v) => {
                let mut acc = vec![Vec::new()]; // true
                for x in v {
                    acc = product(&acc, &self.dnf(x, false)?)?;
                }
                acc
            }
            Rich::If(a, c, None) => {
                let mut out = self.dnf(a, false)?;
                out.extend(self.dnf(c, true)?);
                out
            }
            Rich::If(a, c, Some(e)) => {
                let left = {
                    let mut v = self.dnf(a, false)?;
                    v.extend(self.dnf(c, true)?);
                    v
                };
                let right = {
                    let mut v = self.dnf(e, false)?;
                    v.extend(self.dnf(c, false)?);
                    v
                };
                product(&left, &right)?
            }
            Rich::Unless(a, c, None) => product(&self.dnf(a, false)?, &self.dnf(c, true)?)?,
            Rich::Unless(a, c, Some(e)) => {
                let mut out = product(&self.dnf(a, false)?, &self.dnf(c, true)?)?;
                out.extend(product(&self.dnf(e, false)?, &self.dnf(c, false)?)?);
                out
            }
            Rich::Dep(_) | Rich::With(_) | Rich::Without(_, _) => unreachable!("simple"),
        })
    }
}

/// Negates every literal: the CNF of `not x` from the DNF of `x`, and the other way round.
fn invert(b: Blocks) -> Blocks {
    b.into_iter()
        .map(|blk| {
            let mut v: Vec<Lit> = blk.into_iter().map(|l| -l).collect();
            v.sort_unstable();
            v
        })
        .collect()
}

/// Pairwise unions of two block lists (distribution), dropping those that hold `l` and `-l`.
fn product(a: &Blocks, b: &Blocks) -> Option<Blocks> {
    if a.len().saturating_mul(b.len()) > MAX_BLOCKS {
        return None;
    }
    let mut out = Vec::new();
    for x in a {
        for y in b {
            let mut v: Vec<Lit> = x.iter().chain(y).copied().collect();
            v.sort_unstable();
            v.dedup();
            if !has_opposite(&v) {
                out.push(v);
            }
        }
    }
    Some(out)
}

fn has_opposite(v: &[Lit]) -> bool {
    v.iter().any(|&l| l < 0 && v.binary_search(&-l).is_ok())
}

/// Whether a dependency holds when exactly the packages `on` returns true for are installed.
pub fn holds(pr: &mut Providers<'_>, r: &Rich, on: &dyn Fn(usize) -> bool) -> bool {
    if let Some(p) = pr.rich_simple(r) {
        return p.into_iter().any(on);
    }
    match r {
        Rich::And(v) => v.iter().all(|x| holds(pr, x, on)),
        Rich::Or(v) => v.iter().any(|x| holds(pr, x, on)),
        Rich::If(a, c, e) => {
            if holds(pr, c, on) {
                holds(pr, a, on)
            } else {
                e.as_ref().is_none_or(|e| holds(pr, e, on))
            }
        }
        Rich::Unless(a, c, e) => {
            if !holds(pr, c, on) {
                holds(pr, a, on)
            } else {
                e.as_ref().is_some_and(|e| holds(pr, e, on))
            }
        }
        Rich::Dep(_) | Rich::With(_) | Rich::Without(_, _) => false,
    }
}

/// The packages a dependency names positively (for recommendations and supplements).
pub fn positive(pr: &mut Providers<'_>, r: &Rich, out: &mut Vec<usize>) {
    if let Some(p) = pr.rich_simple(r) {
        out.extend(p);
        return;
    }
    match r {
        Rich::And(v) | Rich::Or(v) => v.iter().for_each(|x| positive(pr, x, out)),
        Rich::If(a, _, e) | Rich::Unless(a, _, e) => {
            positive(pr, a, out);
            if let Some(e) = e {
                positive(pr, e, out);
            }
        }
        Rich::Dep(_) | Rich::With(_) | Rich::Without(_, _) => {}
    }
}

/// The positive literals of `r` (of `not r` when `neg`) in its CNF, as libsolv collects them.
fn pos_literals(pr: &mut Providers<'_>, r: &Rich, neg: bool, out: &mut Vec<usize>) {
    if let Some(p) = pr.rich_simple(r) {
        if !neg {
            out.extend(p);
        }
        return;
    }
    match r {
        Rich::And(v) | Rich::Or(v) => v.iter().for_each(|x| pos_literals(pr, x, neg, out)),
        Rich::If(a, c, e) | Rich::Unless(a, c, e) => {
            pos_literals(pr, a, neg, out);
            if let Some(e) = e {
                pos_literals(pr, c, neg, out);
                pos_literals(pr, e, neg, out);
            }
            pos_literals(pr, c, !neg, out);
        }
        Rich::Dep(_) | Rich::With(_) | Rich::Without(_, _) => {}
    }
}

/// Turns SUSE's `packageand(a:b)` into `(a and b)`, as libsolv does when it reads metadata.
pub fn suse_idiom(name: &str) -> Option<Rich> {
    let inner = name.strip_prefix("packageand(")?.strip_suffix(')')?;
    Some(Rich::And(
        inner.split(':').map(|n| Rich::Dep(Dep::name(n))).collect(),
    ))
}
