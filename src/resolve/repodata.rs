//! A repository's packages as the resolver reads them: interned ids into one string arena,
//! packages and dependencies as fixed-size records, dependency lists as id slices, and the
//! indexes the solver asks (what provides a name, which packages have a name, the id of a
//! string) precomputed. The parsed-metadata cache (`repo::store`) writes these arrays as they
//! are, so a warm run loads a repository with one read, a checksum and a copy per array.
//!
//! Layout (every array is `u32` unless said; string id `i` is `blob[ends[i - 1]..ends[i]]`):
//!
//! ```text
//! blob, ends      the distinct strings, each once
//! slots           open-addressing hash table of string ids (FNV-1a), NONE when empty
//! pkgs            PKG words per package: name, arch, epoch+1 (0: none), version,
//!                 release (NONE: none), location, checksum hex, checksum algorithm
//! sizes (u64)     the package sizes
//! lists           LISTS offsets per package (+1 at the end) into `items`: its provides,
//!                 requires, conflicts, obsoletes, recommends, supplements, suggests and
//!                 enhances (dependency ids), then its files (string ids)
//! deps            DEP words per dependency: name, comparison (0: none, 1..=5: < <= = >= >),
//!                 epoch+1, version, release (NONE: none)
//! prov_off, prov  per string id, (package, dependency id or NONE for a file) pairs: what
//!                 provides that name, in package order
//! name_off, names per string id, the packages of that name, in package order
//! file_wants      file dependencies nothing here provides (string ids, in text order)
//! ```
//!
//! Contract: [`RepoData::decode`] accepts only what [`RepoData::encode`] wrote for the same key
//! (crc32 over the body) and bounds-checks every id and offset, so no accessor can panic on a
//! loaded entry; damaged or foreign input is an error, never trusted.

use super::dep::{Cmp, Dep, Range};
use super::evr::{Evr, EvrRef};
use crate::checksum::{Algo, Checksum};
use crate::repo::primary::Package;
use std::collections::HashMap;

pub const NONE: u32 = u32::MAX;
const PKG: usize = 8;
const DEP: usize = 5;
/// Dependency lists per package, then the file list.
pub const KINDS: usize = 8;
const LISTS: usize = KINDS + 1;

/// The dependency lists of a package, in their order in `lists`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Provides = 0,
    Requires,
    Conflicts,
    Obsoletes,
    Recommends,
    Supplements,
    Suggests,
    Enhances,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("parsed-metadata cache entry: {0}")]
pub struct StoreError(pub &'static str);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RepoData {
    blob: String,
    ends: Vec<u32>,
    slots: Vec<u32>,
    pkgs: Vec<u32>,
    sizes: Vec<u64>,
    lists: Vec<u32>,
    items: Vec<u32>,
    deps: Vec<u32>,
    prov_off: Vec<u32>,
    prov: Vec<u32>,
    name_off: Vec<u32>,
    names: Vec<u32>,
    /// File dependencies (string ids, sorted by text) that no package here provides, by a
    /// provide or a primary file: what filelists.xml would be read for.
    file_wants: Vec<u32>,
}

/// A dependency record, borrowed from the arena.
#[derive(Clone, Copy, Debug)]
pub struct DepRef<'a> {
    pub name_id: u32,
    pub name: &'a str,
    pub range: Range<'a>,
}

impl DepRef<'_> {
    pub fn to_dep(self) -> Dep {
        Dep {
            name: self.name.to_owned(),
            range: self.range.map(|(c, e)| (c, e.to_owned())),
        }
    }
}

impl std::fmt::Display for DepRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)?;
        if let Some((c, evr)) = self.range {
            write!(f, " {} {evr}", c.as_str())?;
        }
        Ok(())
    }
}

fn fnv(s: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

const CMPS: [Cmp; 5] = [Cmp::Lt, Cmp::Le, Cmp::Eq, Cmp::Ge, Cmp::Gt];
const ALGOS: [Algo; 3] = [Algo::Sha1, Algo::Sha256, Algo::Sha512];

/// Interns strings while building.
#[derive(Default)]
struct Interner {
    ids: HashMap<Box<str>, u32>,
    blob: String,
    ends: Vec<u32>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.ends.len() as u32;
        self.blob.push_str(s);
        self.ends.push(self.blob.len() as u32);
        self.ids.insert(s.into(), i);
        i
    }
}

/// Dependencies while building: each distinct record once.
#[derive(Default)]
struct DepTable {
    ids: HashMap<[u32; DEP], u32>,
    words: Vec<u32>,
}

impl DepTable {
    fn id(&mut self, rec: [u32; DEP]) -> u32 {
        *self.ids.entry(rec).or_insert_with(|| {
            let i = (self.words.len() / DEP) as u32;
            self.words.extend_from_slice(&rec);
            i
        })
    }
}

fn epoch_word(e: Option<u64>) -> u32 {
    e.map_or(0, |e| {
        u32::try_from(e.saturating_add(1)).unwrap_or(u32::MAX)
    })
}

impl RepoData {
    /// Interns parsed packages (in their order) and builds the indexes.
    pub fn from_packages(pkgs: &[Package]) -> RepoData {
        let mut st = Interner::default();
        let mut dt = DepTable::default();
        let mut d = RepoData {
            pkgs: Vec::with_capacity(pkgs.len() * PKG),
            sizes: Vec::with_capacity(pkgs.len()),
            lists: Vec::with_capacity(pkgs.len() * LISTS + 1),
            ..RepoData::default()
        };
        let evr_words = |st: &mut Interner, e: &Evr| {
            (
                epoch_word(e.epoch),
                st.id(&e.version),
                e.release.as_deref().map_or(NONE, |r| st.id(r)),
            )
        };
        for p in pkgs {
            let (ep, v, r) = evr_words(&mut st, &p.evr);
            d.pkgs.extend_from_slice(&[
                st.id(&p.name),
                st.id(&p.arch),
                ep,
                v,
                r,
                st.id(&p.location),
                st.id(&p.checksum.hex),
                ALGOS.iter().position(|&a| a == p.checksum.algo).unwrap() as u32,
            ]);
            d.sizes.push(p.size);
            for list in [
                &p.provides,
                &p.requires,
                &p.conflicts,
                &p.obsoletes,
                &p.recommends,
                &p.supplements,
                &p.suggests,
                &p.enhances,
            ] {
                d.lists.push(d.items.len() as u32);
                for dep in list {
                    let name = st.id(&dep.name);
                    let rec = match &dep.range {
                        None => [name, 0, 0, 0, NONE],
                        Some((c, e)) => {
                            let (ep, v, r) = evr_words(&mut st, e);
                            let c = CMPS.iter().position(|x| x == c).unwrap() as u32 + 1;
                            [name, c, ep, v, r]
                        }
                    };
                    d.items.push(dt.id(rec));
                }
            }
            d.lists.push(d.items.len() as u32);
            for f in &p.files {
                d.items.push(st.id(f));
            }
        }
        d.lists.push(d.items.len() as u32);
        d.blob = st.blob;
        d.ends = st.ends;
        d.deps = dt.words;
        d.index();
        let wants = d.unprovided_files();
        d.file_wants = wants.iter().filter_map(|f| d.lookup(f)).collect();
        d
    }

    /// One arena for several repositories, in order (their packages are renumbered after the
    /// packages of the ones before).
    pub fn merge(parts: &[&RepoData]) -> RepoData {
        let mut st = Interner::default();
        let mut d = RepoData::default();
        for part in parts {
            let map: Vec<u32> = (0..part.ends.len() as u32)
                .map(|i| st.id(part.str(i)))
                .collect();
            let m = |i: u32| if i == NONE { NONE } else { map[i as usize] };
            let dep_base = (d.deps.len() / DEP) as u32;
            for rec in part.deps.chunks_exact(DEP) {
                d.deps
                    .extend_from_slice(&[m(rec[0]), rec[1], rec[2], m(rec[3]), m(rec[4])]);
            }
            for rec in part.pkgs.chunks_exact(PKG) {
                d.pkgs.extend_from_slice(&[
                    m(rec[0]),
                    m(rec[1]),
                    rec[2],
                    m(rec[3]),
                    m(rec[4]),
                    m(rec[5]),
                    m(rec[6]),
                    rec[7],
                ]);
            }
            d.sizes.extend_from_slice(&part.sizes);
            for p in 0..part.len() {
                for k in 0..LISTS {
                    d.lists.push(d.items.len() as u32);
                    let (a, b) = part.list_bounds(p, k);
                    let items = &part.items[a..b];
                    if k < KINDS {
                        d.items.extend(items.iter().map(|&x| x + dep_base));
                    } else {
                        d.items.extend(items.iter().map(|&x| map[x as usize]));
                    }
                }
            }
        }
        d.lists.push(d.items.len() as u32);
        d.blob = st.blob;
        d.ends = st.ends;
        d.index();
        // what one part wants and no other part provides
        let mut wants: Vec<u32> = parts
            .iter()
            .flat_map(|p| p.file_wants())
            .filter_map(|f| d.lookup(f))
            .filter(|&f| d.what_provides(f).next().is_none())
            .collect();
        wants.sort_by(|&a, &b| d.str(a).cmp(d.str(b)));
        wants.dedup();
        d.file_wants = wants;
        d
    }

    /// The file dependencies (plain, or inside rich ones) of requires, conflicts, obsoletes,
    /// recommends and supplements that no package here provides by a provide or by its primary
    /// file list (computed when the arena is built, kept in the cache).
    pub fn file_wants(&self) -> impl Iterator<Item = &str> {
        self.file_wants.iter().map(|&f| self.str(f))
    }

    fn unprovided_files(&self) -> std::collections::BTreeSet<String> {
        use super::dep::Rich;
        fn leaves(r: &Rich, out: &mut Vec<String>) {
            match r {
                Rich::Dep(d) => out.push(d.name.clone()),
                Rich::And(v) | Rich::Or(v) | Rich::With(v) => v.iter().for_each(|r| leaves(r, out)),
                Rich::Without(a, b) => {
                    leaves(a, out);
                    leaves(b, out);
                }
                Rich::If(a, b, c) | Rich::Unless(a, b, c) => {
                    leaves(a, out);
                    leaves(b, out);
                    if let Some(c) = c {
                        leaves(c, out);
                    }
                }
            }
        }
        let provided = |name: &str| {
            self.lookup(name)
                .is_some_and(|id| self.what_provides(id).next().is_some())
        };
        let mut wanted = std::collections::BTreeSet::new();
        let mut names = Vec::new();
        for p in 0..self.len() {
            for k in [
                Kind::Requires,
                Kind::Conflicts,
                Kind::Obsoletes,
                Kind::Recommends,
                Kind::Supplements,
            ] {
                for &d in self.deps(p, k) {
                    let name = self.dep(d).name;
                    if !name.contains('/') {
                        continue;
                    }
                    names.clear();
                    if name.starts_with('(') {
                        if let Ok(r) = Rich::parse(name) {
                            leaves(&r, &mut names);
                        }
                    } else {
                        names.push(name.to_owned());
                    }
                    for n in names.drain(..) {
                        if n.starts_with('/') && !provided(&n) {
                            wanted.insert(n);
                        }
                    }
                }
            }
        }
        wanted
    }

    /// The packages again, as the parser gave them.
    pub fn to_packages(&self) -> Vec<Package> {
        (0..self.len()).map(|p| self.package(p)).collect()
    }

    /// Builds the hash table and the provides and name indexes from the records.
    fn index(&mut self) {
        let nstr = self.ends.len();
        let size = (nstr * 2).next_power_of_two().max(16);
        self.slots = vec![NONE; size];
        let mask = size - 1;
        for i in 0..nstr as u32 {
            let mut h = fnv(self.str(i).as_bytes()) as usize & mask;
            while self.slots[h] != NONE {
                h = (h + 1) & mask;
            }
            self.slots[h] = i;
        }
        // counting sort: provides (and files) by name, packages by name
        let n = self.len();
        let mut pcount = vec![0u32; nstr + 1];
        let mut ncount = vec![0u32; nstr + 1];
        for p in 0..n {
            ncount[self.pkgs[p * PKG] as usize + 1] += 1;
            for &dep in self.list(p, Kind::Provides as usize) {
                pcount[self.deps[dep as usize * DEP] as usize + 1] += 1;
            }
            for &f in self.list(p, KINDS) {
                pcount[f as usize + 1] += 1;
            }
        }
        for i in 0..nstr {
            pcount[i + 1] += pcount[i];
            ncount[i + 1] += ncount[i];
        }
        let mut prov = vec![0u32; 2 * pcount[nstr] as usize];
        let mut names = vec![0u32; ncount[nstr] as usize];
        let (mut pat, mut nat) = (pcount.clone(), ncount.clone());
        for p in 0..n {
            let name = self.pkgs[p * PKG] as usize;
            names[nat[name] as usize] = p as u32;
            nat[name] += 1;
            let mut put = |name: usize, dep: u32| {
                let at = pat[name] as usize * 2;
                prov[at] = p as u32;
                prov[at + 1] = dep;
                pat[name] += 1;
            };
            for &dep in self.list(p, Kind::Provides as usize) {
                put(self.deps[dep as usize * DEP] as usize, dep);
            }
            for &f in self.list(p, KINDS) {
                put(f as usize, NONE);
            }
        }
        self.prov_off = pcount;
        self.prov = prov;
        self.name_off = ncount;
        self.names = names;
    }

    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    pub fn str(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        // `check` made sure every end is a char boundary
        &self.blob[start..self.ends[i] as usize]
    }

    /// The id of a string, if the arena has it.
    pub fn lookup(&self, s: &str) -> Option<u32> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut h = fnv(s.as_bytes()) as usize & mask;
        for _ in 0..self.slots.len() {
            let i = self.slots[h];
            if i == NONE {
                return None;
            }
            if self.str(i) == s {
                return Some(i);
            }
            h = (h + 1) & mask;
        }
        None
    }

    fn rec(&self, p: usize) -> &[u32] {
        &self.pkgs[p * PKG..p * PKG + PKG]
    }

    pub fn name_id(&self, p: usize) -> u32 {
        self.pkgs[p * PKG]
    }

    pub fn name(&self, p: usize) -> &str {
        self.str(self.name_id(p))
    }

    pub fn arch(&self, p: usize) -> &str {
        self.str(self.pkgs[p * PKG + 1])
    }

    fn evr_of(&self, ep: u32, v: u32, r: u32) -> EvrRef<'_> {
        EvrRef {
            epoch: ep.checked_sub(1).map(u64::from),
            version: self.str(v),
            release: (r != NONE).then(|| self.str(r)),
        }
    }

    pub fn evr(&self, p: usize) -> EvrRef<'_> {
        let r = self.rec(p);
        self.evr_of(r[2], r[3], r[4])
    }

    fn list_bounds(&self, p: usize, k: usize) -> (usize, usize) {
        let at = p * LISTS + k;
        (self.lists[at] as usize, self.lists[at + 1] as usize)
    }

    fn list(&self, p: usize, k: usize) -> &[u32] {
        let (a, b) = self.list_bounds(p, k);
        &self.items[a..b]
    }

    /// A package's dependencies of one kind (dependency ids).
    pub fn deps(&self, p: usize, k: Kind) -> &[u32] {
        self.list(p, k as usize)
    }

    /// A package's files from primary (string ids).
    pub fn files(&self, p: usize) -> &[u32] {
        self.list(p, KINDS)
    }

    pub fn dep(&self, d: u32) -> DepRef<'_> {
        let r = &self.deps[d as usize * DEP..d as usize * DEP + DEP];
        DepRef {
            name_id: r[0],
            name: self.str(r[0]),
            range: (r[1] != 0).then(|| (CMPS[r[1] as usize - 1], self.evr_of(r[2], r[3], r[4]))),
        }
    }

    pub fn dep_name_id(&self, d: u32) -> u32 {
        self.deps[d as usize * DEP]
    }

    /// (package, dependency id or [`NONE`] for a file) pairs providing the name `name`.
    pub fn what_provides(&self, name: u32) -> impl Iterator<Item = (usize, u32)> + '_ {
        let (a, b) = (
            self.prov_off[name as usize] as usize,
            self.prov_off[name as usize + 1] as usize,
        );
        self.prov[2 * a..2 * b]
            .chunks_exact(2)
            .map(|c| (c[0] as usize, c[1]))
    }

    /// The packages named `name`, in package order.
    pub fn named(&self, name: u32) -> &[u32] {
        let (a, b) = (
            self.name_off[name as usize] as usize,
            self.name_off[name as usize + 1] as usize,
        );
        &self.names[a..b]
    }

    pub fn size(&self, p: usize) -> u64 {
        self.sizes[p]
    }

    /// The package `p` as the parser gave it.
    pub fn package(&self, p: usize) -> Package {
        let r = self.rec(p);
        let deps = |k: Kind| -> Vec<Dep> {
            self.deps(p, k)
                .iter()
                .map(|&d| self.dep(d).to_dep())
                .collect()
        };
        Package {
            name: self.name(p).to_owned(),
            arch: self.arch(p).to_owned(),
            evr: self.evr(p).to_owned(),
            checksum: Checksum {
                algo: ALGOS[r[7] as usize],
                hex: self.str(r[6]).to_owned(),
            },
            location: self.str(r[5]).to_owned(),
            size: self.sizes[p],
            provides: deps(Kind::Provides),
            requires: deps(Kind::Requires),
            conflicts: deps(Kind::Conflicts),
            obsoletes: deps(Kind::Obsoletes),
            recommends: deps(Kind::Recommends),
            supplements: deps(Kind::Supplements),
            suggests: deps(Kind::Suggests),
            enhances: deps(Kind::Enhances),
            files: self
                .files(p)
                .iter()
                .map(|&f| self.str(f).to_owned())
                .collect(),
        }
    }

    // ---- the cache format -------------------------------------------------------------------

    /// The u32 arrays in file order.
    fn u32_sections(&self) -> [&Vec<u32>; 11] {
        [
            &self.ends,
            &self.slots,
            &self.pkgs,
            &self.lists,
            &self.items,
            &self.deps,
            &self.prov_off,
            &self.prov,
            &self.name_off,
            &self.names,
            &self.file_wants,
        ]
    }

    /// The body of a cache entry: the key, the blob, the sizes, then the u32 arrays, each as a
    /// u64 length (in elements) and its little-endian elements, padded to 8 bytes.
    pub fn encode_body(&self, key: &str, out: &mut Vec<u8>) {
        let put_len =
            |out: &mut Vec<u8>, n: usize| out.extend_from_slice(&(n as u64).to_le_bytes());
        let pad = |out: &mut Vec<u8>| out.resize(out.len().next_multiple_of(8), 0);
        put_len(out, key.len());
        out.extend_from_slice(key.as_bytes());
        pad(out);
        put_len(out, self.blob.len());
        out.extend_from_slice(self.blob.as_bytes());
        pad(out);
        put_len(out, self.sizes.len());
        for s in &self.sizes {
            out.extend_from_slice(&s.to_le_bytes());
        }
        for sec in self.u32_sections() {
            put_len(out, sec.len());
            out.reserve(sec.len() * 4);
            for w in sec.iter() {
                out.extend_from_slice(&w.to_le_bytes());
            }
            pad(out);
        }
    }

    /// Reads a body of `len` bytes that [`RepoData::encode_body`] wrote for `key` straight into
    /// the arrays (one read each), checks its crc32 against `crc`, then every id and offset.
    pub fn read_body(
        key: &str,
        r: &mut dyn std::io::Read,
        len: u64,
        crc: u32,
    ) -> Result<RepoData, StoreError> {
        let mut b = BodyReader {
            r,
            left: len,
            crc: crc32fast::Hasher::new(),
        };
        if b.bytes(1)? != key.as_bytes() {
            return Err(StoreError("made for other metadata"));
        }
        let blob = String::from_utf8(b.bytes(1)?).map_err(|_| StoreError("bad UTF-8"))?;
        let sizes: Vec<u64> = b
            .bytes(8)?
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let mut secs: Vec<Vec<u32>> = Vec::with_capacity(11);
        for _ in 0..11 {
            secs.push(b.words()?);
        }
        if b.left != 0 {
            return Err(StoreError("trailing bytes"));
        }
        if b.crc.finalize() != crc {
            return Err(StoreError("checksum mismatch (damaged)"));
        }
        let mut it = secs.into_iter();
        let mut next = || it.next().unwrap();
        let d = RepoData {
            blob,
            ends: next(),
            slots: next(),
            pkgs: next(),
            lists: next(),
            items: next(),
            deps: next(),
            prov_off: next(),
            prov: next(),
            name_off: next(),
            names: next(),
            file_wants: next(),
            sizes,
        };
        d.check()?;
        Ok(d)
    }

    /// Every id and offset within bounds, every string valid UTF-8.
    fn check(&self) -> Result<(), StoreError> {
        let bad = |what| Err(StoreError(what));
        let s = &self.blob;
        let mut prev = 0u32;
        for &e in &self.ends {
            if e < prev || e as usize > s.len() || !s.is_char_boundary(e as usize) {
                return bad("bad string table");
            }
            prev = e;
        }
        let nstr = self.ends.len() as u32;
        let sid = |i: u32| i < nstr;
        let sid_or_none = |i: u32| i < nstr || i == NONE;
        if !self.slots.len().is_power_of_two() || !self.slots.iter().all(|&i| sid_or_none(i)) {
            return bad("bad hash table");
        }
        let n = self.sizes.len();
        if self.pkgs.len() != n * PKG || self.lists.len() != n * LISTS + 1 {
            return bad("bad package table");
        }
        for r in self.pkgs.chunks_exact(PKG) {
            let ok = sid(r[0])
                && sid(r[1])
                && sid(r[3])
                && sid_or_none(r[4])
                && sid(r[5])
                && sid(r[6])
                && (r[7] as usize) < ALGOS.len();
            if !ok {
                return bad("bad package record");
            }
        }
        if !self.deps.len().is_multiple_of(DEP) {
            return bad("bad dependency table");
        }
        let ndeps = (self.deps.len() / DEP) as u32;
        for r in self.deps.chunks_exact(DEP) {
            let ok = sid(r[0])
                && r[1] as usize <= CMPS.len()
                && (r[1] == 0 || (sid(r[3]) && sid_or_none(r[4])));
            if !ok {
                return bad("bad dependency record");
            }
        }
        let mut prev = 0u32;
        for (i, &o) in self.lists.iter().enumerate() {
            if o < prev || o as usize > self.items.len() {
                return bad("bad list offsets");
            }
            prev = o;
            if i + 1 < self.lists.len() {
                let limit = if i % LISTS == KINDS { nstr } else { ndeps };
                let end = self.lists[i + 1].min(self.items.len() as u32);
                if self.items[o as usize..end.max(o) as usize]
                    .iter()
                    .any(|&x| x >= limit)
                {
                    return bad("bad list item");
                }
            }
        }
        if self
            .lists
            .last()
            .is_some_and(|&e| e as usize != self.items.len())
        {
            return bad("bad list offsets");
        }
        for (off, vals, width) in [
            (&self.prov_off, &self.prov, 2usize),
            (&self.name_off, &self.names, 1),
        ] {
            if off.len() != nstr as usize + 1 || !vals.len().is_multiple_of(width) {
                return bad("bad index");
            }
            let mut prev = 0u32;
            for &o in off.iter() {
                if o < prev || o as usize * width > vals.len() {
                    return bad("bad index");
                }
                prev = o;
            }
            if off
                .last()
                .is_some_and(|&e| e as usize * width != vals.len())
            {
                return bad("bad index");
            }
            for c in vals.chunks_exact(width) {
                if c[0] as usize >= n || (width == 2 && c[1] != NONE && c[1] >= ndeps) {
                    return bad("bad index entry");
                }
            }
        }
        Ok(())
    }
}

/// Reads a body section by section, hashing what it reads and never past the body's length.
struct BodyReader<'r> {
    r: &'r mut dyn std::io::Read,
    left: u64,
    crc: crc32fast::Hasher,
}

const TRUNCATED: StoreError = StoreError("truncated");

impl BodyReader<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
        let n = buf.len() as u64;
        if n > self.left {
            return Err(TRUNCATED);
        }
        self.r.read_exact(buf).map_err(|_| TRUNCATED)?;
        self.crc.update(buf);
        self.left -= n;
        Ok(())
    }

    /// A section's length in bytes (elements of `width` bytes), bounded by what is left.
    fn len(&mut self, width: u64) -> Result<usize, StoreError> {
        let mut lb = [0u8; 8];
        self.fill(&mut lb)?;
        let n = u64::from_le_bytes(lb).checked_mul(width).ok_or(TRUNCATED)?;
        if n > self.left {
            return Err(TRUNCATED);
        }
        Ok(n as usize)
    }

    fn pad(&mut self, n: usize) -> Result<(), StoreError> {
        let mut z = [0u8; 8];
        let k = n.next_multiple_of(8) - n;
        self.fill(&mut z[..k])
    }

    fn bytes(&mut self, width: u64) -> Result<Vec<u8>, StoreError> {
        let n = self.len(width)?;
        let mut v = vec![0u8; n];
        self.fill(&mut v)?;
        self.pad(n)?;
        Ok(v)
    }

    fn words(&mut self) -> Result<Vec<u32>, StoreError> {
        let n = self.len(4)?;
        let mut v = vec![0u32; n / 4];
        self.fill(zerocopy::IntoBytes::as_mut_bytes(v.as_mut_slice()))?;
        if cfg!(target_endian = "big") {
            v.iter_mut().for_each(|w| *w = u32::from_le(*w));
        }
        self.pad(n)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_round_trip() {
        let mut a = Package {
            name: "a".into(),
            arch: "x86_64".into(),
            evr: Evr::parse("1:2.0-3"),
            checksum: Checksum::new("sha256", "ab").unwrap(),
            location: "a.rpm".into(),
            size: 7,
            provides: vec![Dep::parse("liba = 2")],
            requires: vec![Dep::name("b"), Dep::name("/bin/sh")],
            conflicts: vec![],
            obsoletes: vec![],
            recommends: vec![],
            supplements: vec![],
            suggests: vec![Dep::parse("c >= 1")],
            enhances: vec![],
            files: vec!["/usr/bin/a".into()],
        };
        let mut b = a.clone();
        b.name = "b".into();
        b.files = vec!["/bin/sh".into()];
        a.evr = Evr::parse("2.0");
        let d = RepoData::from_packages(&[a.clone(), b.clone()]);
        assert_eq!(d.to_packages(), vec![a.clone(), b.clone()]);
        let sh = d.lookup("/bin/sh").unwrap();
        assert_eq!(d.what_provides(sh).collect::<Vec<_>>(), vec![(1, NONE)]);
        let liba = d.lookup("liba").unwrap();
        assert_eq!(d.what_provides(liba).count(), 2);
        assert_eq!(d.named(d.lookup("b").unwrap()), &[1]);
        assert!(d.lookup("nothing").is_none());
        let m = RepoData::merge(&[&d, &d]);
        assert_eq!(m.to_packages(), vec![a.clone(), b.clone(), a, b]);
        assert_eq!(m.what_provides(m.lookup("liba").unwrap()).count(), 4);
        let mut body = Vec::new();
        m.encode_body("k", &mut body);
        let (len, crc) = (body.len() as u64, crc32fast::hash(&body));
        assert_eq!(
            RepoData::read_body("k", &mut &body[..], len, crc).unwrap(),
            m
        );
        assert!(RepoData::read_body("j", &mut &body[..], len, crc).is_err());
        assert!(RepoData::read_body("k", &mut &body[..], len, crc ^ 1).is_err());
    }
}
