//! A repository's packages as the resolver reads them: interned ids into one string arena,
//! packages and dependencies as fixed-size records, dependency lists as id slices, and the
//! indexes the solver asks (what provides a name, which packages have a name, the id of a
//! string) precomputed. The parsed-metadata cache (`repo::store`) writes these arrays as they
//! are, so a warm run maps the entry and uses its arrays in place after a checksum and a
//! bounds check (no copy, no index to build).
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
//! solv_strs       2 words per package: its source package's name when that differs from
//!                 its own, and its group (string ids, NONE: none), which libsolv's `.solv`
//!                 writer counts when it orders dependencies
//! ```
//!
//! Contract: [`RepoData::from_body`] accepts only what [`RepoData::encode_body`] wrote for the same key
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
    /// the strings' bytes (valid UTF-8: built from strings, or checked when loaded)
    blob: Arr<u8>,
    ends: Arr<u32>,
    slots: Arr<u32>,
    pkgs: Arr<u32>,
    sizes: Arr<u64>,
    lists: Arr<u32>,
    items: Arr<u32>,
    deps: Arr<u32>,
    prov_off: Arr<u32>,
    prov: Arr<u32>,
    name_off: Arr<u32>,
    names: Arr<u32>,
    /// File dependencies (string ids, sorted by text) that no package here provides, by a
    /// provide or a primary file: what filelists.xml would be read for.
    file_wants: Arr<u32>,
    /// Per package: source name (if not its own) and group, string ids or NONE.
    solv_strs: Arr<u32>,
}

/// An array of the arena: built in memory, or a view into a mapped cache entry (used in
/// place: a warm run neither copies nor allocates the arena).
#[derive(Clone)]
enum Arr<T: 'static> {
    Own(Vec<T>),
    /// `len` elements at byte `at` of the mapping (aligned: checked when made)
    Map(std::sync::Arc<Mapped>, usize, usize),
}

impl<T> Default for Arr<T> {
    fn default() -> Self {
        Arr::Own(Vec::new())
    }
}

impl<T> From<Vec<T>> for Arr<T> {
    fn from(v: Vec<T>) -> Self {
        Arr::Own(v)
    }
}

impl<T: Copy> Arr<T> {
    /// The array to build on (a mapped one is copied first).
    fn v(&mut self) -> &mut Vec<T> {
        if let Arr::Map(..) = self {
            *self = Arr::Own(self.to_vec());
        }
        match self {
            Arr::Own(v) => v,
            Arr::Map(..) => unreachable!(),
        }
    }
}

impl<T> std::ops::Deref for Arr<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        match self {
            Arr::Own(v) => v,
            // SAFETY: `Mapped::arr` made this view only within the mapping and aligned for
            // T (plain integers, any bit pattern valid); the mapping lives as long as the Arc.
            Arr::Map(m, at, len) => unsafe {
                std::slice::from_raw_parts(m.ptr.add(*at).cast::<T>(), *len)
            },
        }
    }
}

impl<T: PartialEq> PartialEq for Arr<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for Arr<T> {}

impl<T: std::fmt::Debug> std::fmt::Debug for Arr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// A read-only private mapping of a whole cache entry. Entries are never rewritten in place
/// (temp file + rename, damaged ones removed), so the mapped bytes stay what was checked.
pub struct Mapped {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value alone.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps the whole of `f` (`None` for an empty file or a failing mmap).
    pub fn new(f: &std::fs::File) -> Option<Mapped> {
        use std::os::fd::AsRawFd;
        let len = usize::try_from(f.metadata().ok()?.len()).ok()?;
        if len == 0 {
            return None;
        }
        // SAFETY: a fresh read-only private mapping of an open file; no Rust reference
        // aliases it yet.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_POPULATE,
                f.as_raw_fd(),
                0,
            )
        };
        (ptr != libc::MAP_FAILED).then_some(Mapped {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` readable bytes for as long as self lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: unmaps what `new` mapped; no view outlives self (each holds the Arc).
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// [`RepoData::merge`] one part at a time, so that the parts need not all be in memory at once
/// (the streaming parse of primary.xml hands its pieces over as they are parsed).
#[derive(Default)]
pub struct Merger {
    st: Interner,
    d: RepoData,
    /// the parts' unprovided files, checked against the whole at the end
    wants: Vec<String>,
}

impl Merger {
    /// Appends a part's packages after those of the parts before.
    pub fn add(&mut self, part: &RepoData) {
        let (st, d) = (&mut self.st, &mut self.d);
        let map: Vec<u32> = (0..part.ends.len() as u32)
            .map(|i| st.id(part.str(i)))
            .collect();
        let m = |i: u32| if i == NONE { NONE } else { map[i as usize] };
        let dep_base = (d.deps.len() / DEP) as u32;
        for rec in part.deps.chunks_exact(DEP) {
            d.deps
                .v()
                .extend_from_slice(&[m(rec[0]), rec[1], rec[2], m(rec[3]), m(rec[4])]);
        }
        for rec in part.pkgs.chunks_exact(PKG) {
            d.pkgs.v().extend_from_slice(&[
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
        d.sizes.v().extend_from_slice(&part.sizes);
        d.solv_strs.v().extend(part.solv_strs.iter().map(|&i| m(i)));
        for p in 0..part.len() {
            for k in 0..LISTS {
                d.lists.v().push(d.items.len() as u32);
                let (a, b) = part.list_bounds(p, k);
                let items = &part.items[a..b];
                if k < KINDS {
                    d.items.v().extend(items.iter().map(|&x| x + dep_base));
                } else {
                    d.items.v().extend(items.iter().map(|&x| map[x as usize]));
                }
            }
        }
        self.wants.extend(part.file_wants().map(str::to_owned));
    }

    /// The merged arena, indexed.
    pub fn finish(self) -> RepoData {
        let mut d = self.d;
        d.lists.v().push(d.items.len() as u32);
        d.blob = self.st.blob.into_bytes().into();
        d.ends = self.st.ends.into();
        drop(self.st.table);
        d.index();
        // what one part wants and no other part provides
        let mut wants: Vec<u32> = self
            .wants
            .iter()
            .filter_map(|f| d.lookup(f))
            .filter(|&f| d.what_provides(f).next().is_none())
            .collect();
        wants.sort_by(|&a, &b| d.str(a).cmp(d.str(b)));
        wants.dedup();
        d.file_wants = wants.into();
        d
    }
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

/// Interns strings while building: an open-addressing table of ids whose strings live only in
/// the blob (no second copy of each string, as a map keyed by owned strings would keep).
#[derive(Default)]
struct Interner {
    blob: String,
    ends: Vec<u32>,
    /// ids (or NONE), a power of two in size, at most half full
    table: Vec<u32>,
}

/// A word-at-a-time hash for the interner's private table (FNV's byte loop is slow on the
/// checksums and paths that make up most of the strings).
fn quick_hash(s: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = s.len() as u64;
    let mut words = s.chunks_exact(8);
    for w in &mut words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w.try_into().unwrap())).wrapping_mul(K);
    }
    let mut last = [0u8; 8];
    last[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h.rotate_left(5) ^ u64::from_le_bytes(last)).wrapping_mul(K);
    h ^ (h >> 29)
}

impl Interner {
    fn get(&self, i: u32) -> &str {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.blob[start..self.ends[i] as usize]
    }

    fn id(&mut self, s: &str) -> u32 {
        if self.ends.len() * 2 >= self.table.len() {
            self.grow();
        }
        let mask = self.table.len() - 1;
        let mut h = quick_hash(s.as_bytes()) as usize & mask;
        loop {
            let i = self.table[h];
            if i == NONE {
                break;
            }
            if self.get(i) == s {
                return i;
            }
            h = (h + 1) & mask;
        }
        let i = self.ends.len() as u32;
        self.blob.push_str(s);
        self.ends.push(self.blob.len() as u32);
        self.table[h] = i;
        i
    }

    fn grow(&mut self) {
        let size = (self.table.len() * 2).max(64);
        let mut table = vec![NONE; size];
        for i in 0..self.ends.len() as u32 {
            let mut h = quick_hash(self.get(i).as_bytes()) as usize & (size - 1);
            while table[h] != NONE {
                h = (h + 1) & (size - 1);
            }
            table[h] = i;
        }
        self.table = table;
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
            pkgs: Vec::with_capacity(pkgs.len() * PKG).into(),
            sizes: Vec::with_capacity(pkgs.len()).into(),
            lists: Vec::with_capacity(pkgs.len() * LISTS + 1).into(),
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
            d.pkgs.v().extend_from_slice(&[
                st.id(&p.name),
                st.id(&p.arch),
                ep,
                v,
                r,
                st.id(&p.location),
                st.id(&p.checksum.hex),
                ALGOS.iter().position(|&a| a == p.checksum.algo).unwrap() as u32,
            ]);
            d.sizes.v().push(p.size);
            for s in [&p.source_name, &p.group] {
                d.solv_strs
                    .v()
                    .push(s.as_deref().map_or(NONE, |s| st.id(s)));
            }
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
                d.lists.v().push(d.items.len() as u32);
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
                    d.items.v().push(dt.id(rec));
                }
            }
            d.lists.v().push(d.items.len() as u32);
            for f in &p.files {
                d.items.v().push(st.id(f));
            }
        }
        d.lists.v().push(d.items.len() as u32);
        d.blob = st.blob.into_bytes().into();
        d.ends = st.ends.into();
        d.deps = dt.words.into();
        d.index();
        let wants = d.unprovided_files();
        d.file_wants = wants
            .iter()
            .filter_map(|f| d.lookup(f))
            .collect::<Vec<_>>()
            .into();
        d
    }

    /// One arena for several repositories, in order (their packages are renumbered after the
    /// packages of the ones before).
    pub fn merge(parts: &[&RepoData]) -> RepoData {
        let mut m = Merger::default();
        for part in parts {
            m.add(part);
        }
        m.finish()
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
        let mut slots = vec![NONE; size];
        let mask = size - 1;
        for i in 0..nstr as u32 {
            let mut h = fnv(self.str(i).as_bytes()) as usize & mask;
            while slots[h] != NONE {
                h = (h + 1) & mask;
            }
            slots[h] = i;
        }
        self.slots = slots.into();
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
        self.prov_off = pcount.into();
        self.prov = prov.into();
        self.name_off = ncount.into();
        self.names = names.into();
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
        let b = &self.blob[start..self.ends[i] as usize];
        // SAFETY: the blob is valid UTF-8 and every end a char boundary (built from strings,
        // or a loaded entry's `check`).
        unsafe { std::str::from_utf8_unchecked(b) }
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

    pub fn arch_id(&self, p: usize) -> u32 {
        self.pkgs[p * PKG + 1]
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

    /// Sorts every package's recommendations by `rank` (a rank per dependency id; ties keep
    /// their order). The arena must be one built in memory, not a mapped cache entry.
    pub fn sort_recommends(&mut self, rank: &[u32]) {
        let bounds: Vec<(usize, usize)> = (0..self.len())
            .map(|p| self.list_bounds(p, Kind::Recommends as usize))
            .filter(|(a, b)| b - a > 1)
            .collect();
        let Arr::Own(items) = &mut self.items else {
            panic!("sort_recommends on a mapped arena");
        };
        for (a, b) in bounds {
            items[a..b].sort_by_key(|&d| rank[d as usize]);
        }
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
        let name_id = self.deps[d as usize * DEP];
        DepRef {
            name_id,
            name: self.str(name_id),
            range: self.dep_range(d),
        }
    }

    /// The version range of dependency `d` (its name left out).
    pub fn dep_range(&self, d: u32) -> Range<'_> {
        let r = &self.deps[d as usize * DEP..d as usize * DEP + DEP];
        (r[1] != 0).then(|| (CMPS[r[1] as usize - 1], self.evr_of(r[2], r[3], r[4])))
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
            source_name: self.solv_str(p, 0).map(str::to_owned),
            group: self.solv_str(p, 1).map(str::to_owned),
        }
    }

    fn solv_str(&self, p: usize, i: usize) -> Option<&str> {
        let s = self.solv_strs[p * 2 + i];
        (s != NONE).then(|| self.str(s))
    }

    /// The string ids of package `p`'s source name (when not its own) and group, or NONE.
    pub fn solv_strs(&self, p: usize) -> [u32; 2] {
        [self.solv_strs[p * 2], self.solv_strs[p * 2 + 1]]
    }

    /// How many strings the arena has.
    pub fn str_count(&self) -> usize {
        self.ends.len()
    }

    /// How many dependency records the arena has.
    pub fn dep_count(&self) -> usize {
        self.deps.len() / DEP
    }

    /// The raw record of dependency `d`: name, comparison, epoch+1, version, release.
    pub fn dep_record(&self, d: u32) -> &[u32] {
        &self.deps[d as usize * DEP..d as usize * DEP + DEP]
    }

    // ---- the cache format -------------------------------------------------------------------

    /// The u32 arrays in file order.
    fn u32_sections(&self) -> [&Arr<u32>; 12] {
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
            &self.solv_strs,
        ]
    }

    /// The body of a cache entry: the key, the blob, the sizes, then the u32 arrays, each as a
    /// u64 length (in elements) and its little-endian elements, padded to 8 bytes. Written
    /// as it goes (no copy of the whole body); returns its length and crc32.
    pub fn encode_body(
        &self,
        key: &str,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<(u64, u32)> {
        let mut w = BodyWriter {
            w: out,
            n: 0,
            crc: crc32fast::Hasher::new(),
        };
        w.section(1, key.as_bytes())?;
        w.section(1, &self.blob)?;
        w.put(&(self.sizes.len() as u64).to_le_bytes())?;
        for s in self.sizes.iter() {
            w.put(&s.to_le_bytes())?;
        }
        for sec in self.u32_sections() {
            if cfg!(target_endian = "little") {
                w.section(4, zerocopy::IntoBytes::as_bytes(&**sec))?;
            } else {
                let le: Vec<u8> = sec.iter().flat_map(|w| w.to_le_bytes()).collect();
                w.section(4, &le)?;
            }
        }
        Ok((w.n, w.crc.finalize()))
    }

    /// Reads a body that [`RepoData::encode_body`] wrote for `key`, at byte `at` of `src`
    /// (a mapped entry, whose arrays are then used in place, or bytes that are copied), after
    /// checking its crc32 against `crc`, then every id and offset.
    pub fn from_body(
        key: &str,
        src: &Source<'_>,
        at: usize,
        crc: u32,
    ) -> Result<RepoData, StoreError> {
        let all = src.bytes();
        let body = all.get(at..).ok_or(TRUNCATED)?;
        if crc32fast::hash(body) != crc {
            return Err(StoreError("checksum mismatch (damaged)"));
        }
        let mut pos = at;
        // a section: its length in elements of `width` bytes, its bytes, padding to 8 bytes
        let mut section = |width: usize| -> Result<(usize, usize), StoreError> {
            let n = all.get(pos..pos + 8).ok_or(TRUNCATED)?;
            let n = u64::from_le_bytes(n.try_into().unwrap());
            let bytes = usize::try_from(n)
                .ok()
                .and_then(|n| n.checked_mul(width))
                .filter(|&b| b <= all.len() - pos - 8)
                .ok_or(TRUNCATED)?;
            let start = pos + 8;
            pos = (start + bytes).next_multiple_of(8);
            if pos > all.len() || all[start + bytes..pos].iter().any(|&b| b != 0) {
                return Err(TRUNCATED);
            }
            Ok((start, bytes / width))
        };
        let (k, n) = section(1)?;
        if &all[k..k + n] != key.as_bytes() {
            return Err(StoreError("made for other metadata"));
        }
        let (b, n) = section(1)?;
        let blob = src.arr::<u8>(b, n);
        let (z, n) = section(8)?;
        let sizes = src.arr::<u64>(z, n);
        let mut secs = Vec::with_capacity(12);
        for _ in 0..12 {
            let (w, n) = section(4)?;
            secs.push(src.arr::<u32>(w, n));
        }
        if pos != all.len() {
            return Err(StoreError("trailing bytes"));
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
            solv_strs: next(),
            sizes,
        };
        d.check()?;
        Ok(d)
    }

    /// Every id and offset within bounds, every string valid UTF-8 (whole slices folded
    /// without early exits, so the loops vectorize: a warm run checks millions of words).
    fn check(&self) -> Result<(), StoreError> {
        let bad = |what| Err(StoreError(what));
        let blob = &self.blob;
        if std::str::from_utf8(blob).is_err() {
            return bad("bad UTF-8");
        }
        let (mut ok, mut prev) = (true, 0u32);
        for &e in self.ends.iter() {
            ok &= e >= prev && (e as usize) <= blob.len();
            prev = e;
        }
        // ends within the blob and rising: now each must be a char boundary
        if !ok
            || !self
                .ends
                .iter()
                .all(|&e| blob.get(e as usize).is_none_or(|&b| (b as i8) >= -0x40))
        {
            return bad("bad string table");
        }
        let nstr = self.ends.len() as u32;
        let below = |v: &[u32], limit: u32| v.iter().fold(true, |ok, &x| ok & (x < limit));
        let below_or_none = |v: &[u32], limit: u32| {
            v.iter()
                .fold(true, |ok, &x| ok & ((x < limit) | (x == NONE)))
        };
        if !self.slots.len().is_power_of_two() || !below_or_none(&self.slots, nstr) {
            return bad("bad hash table");
        }
        let n = self.sizes.len();
        if self.pkgs.len() != n * PKG
            || self.lists.len() != n * LISTS + 1
            || self.solv_strs.len() != n * 2
            || !below_or_none(&self.solv_strs, nstr)
        {
            return bad("bad package table");
        }
        let mut ok = true;
        for r in self.pkgs.chunks_exact(PKG) {
            ok &= (r[0] < nstr)
                & (r[1] < nstr)
                & (r[3] < nstr)
                & ((r[4] < nstr) | (r[4] == NONE))
                & (r[5] < nstr)
                & (r[6] < nstr)
                & ((r[7] as usize) < ALGOS.len());
        }
        if !ok {
            return bad("bad package record");
        }
        if !self.deps.len().is_multiple_of(DEP) {
            return bad("bad dependency table");
        }
        let ndeps = (self.deps.len() / DEP) as u32;
        let mut ok = true;
        for r in self.deps.chunks_exact(DEP) {
            ok &= (r[0] < nstr)
                & (r[1] as usize <= CMPS.len())
                & ((r[1] == 0) | ((r[3] < nstr) & ((r[4] < nstr) | (r[4] == NONE))));
        }
        if !ok {
            return bad("bad dependency record");
        }
        let (mut ok, mut prev) = (true, 0u32);
        for &o in self.lists.iter() {
            ok &= o >= prev;
            prev = o;
        }
        if !ok || prev as usize != self.items.len() {
            return bad("bad list offsets");
        }
        // each package's dependency lists, then its files: one run of items each
        for l in self.lists.windows(LISTS + 1).step_by(LISTS) {
            let (a, f, e) = (l[0] as usize, l[KINDS] as usize, l[LISTS] as usize);
            if !below(&self.items[a..f], ndeps) || !below(&self.items[f..e], nstr) {
                return bad("bad list item");
            }
        }
        for (off, vals, width) in [
            (&self.prov_off, &self.prov, 2usize),
            (&self.name_off, &self.names, 1),
        ] {
            if off.len() != nstr as usize + 1 || !vals.len().is_multiple_of(width) {
                return bad("bad index");
            }
            let (mut ok, mut prev) = (true, 0u32);
            for &o in off.iter() {
                ok &= o >= prev;
                prev = o;
            }
            if !ok || prev as usize * width != vals.len() {
                return bad("bad index");
            }
            let ok = if width == 2 {
                vals.chunks_exact(2).fold(true, |ok, c| {
                    ok & ((c[0] as usize) < n) & ((c[1] < ndeps) | (c[1] == NONE))
                })
            } else {
                below(vals, n as u32)
            };
            if !ok {
                return bad("bad index entry");
            }
        }
        Ok(())
    }
}

/// Where a cache entry's bytes are: a mapping (arrays used in place) or memory (copied).
pub enum Source<'a> {
    Mapped(std::sync::Arc<Mapped>),
    Bytes(&'a [u8]),
}

impl Source<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Source::Mapped(m) => m.bytes(),
            Source::Bytes(b) => b,
        }
    }

    /// `n` little-endian elements at byte `at`: a view into a mapping when aligned (and the
    /// machine is little-endian), else a copy.
    fn arr<T: zerocopy::FromBytes + zerocopy::IntoBytes + zerocopy::Immutable + Copy>(
        &self,
        at: usize,
        n: usize,
    ) -> Arr<T> {
        let size = std::mem::size_of::<T>();
        if let Source::Mapped(m) = self
            && cfg!(target_endian = "little")
            && (m.ptr as usize + at).is_multiple_of(std::mem::align_of::<T>())
        {
            return Arr::Map(m.clone(), at, n);
        }
        let bytes = &self.bytes()[at..at + n * size];
        let mut v: Vec<T> = Vec::with_capacity(n);
        for c in bytes.chunks_exact(size) {
            let mut x = T::read_from_bytes(c).unwrap();
            if cfg!(target_endian = "big") {
                x.as_mut_bytes().reverse();
            }
            v.push(x);
        }
        Arr::Own(v)
    }
}

const TRUNCATED: StoreError = StoreError("truncated");

/// Writes a body, counting and hashing what it writes.
struct BodyWriter<'w> {
    w: &'w mut dyn std::io::Write,
    n: u64,
    crc: crc32fast::Hasher,
}

impl BodyWriter<'_> {
    fn put(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.w.write_all(b)?;
        self.crc.update(b);
        self.n += b.len() as u64;
        Ok(())
    }

    /// A section of elements `width` bytes wide: its length in elements, its bytes, padding
    /// to 8 bytes.
    fn section(&mut self, width: usize, b: &[u8]) -> std::io::Result<()> {
        self.put(&((b.len() / width) as u64).to_le_bytes())?;
        self.put(b)?;
        let pad = b.len().next_multiple_of(8) - b.len();
        self.put(&[0u8; 8][..pad])
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
            source_name: Some("a-src".into()),
            group: Some("Tools".into()),
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
        let (len, crc) = m.encode_body("k", &mut body).unwrap();
        assert_eq!((len, crc), (body.len() as u64, crc32fast::hash(&body)));
        assert_eq!(
            RepoData::from_body("k", &Source::Bytes(&body), 0, crc).unwrap(),
            m
        );
        assert!(RepoData::from_body("j", &Source::Bytes(&body), 0, crc).is_err());
        assert!(RepoData::from_body("k", &Source::Bytes(&body), 0, crc ^ 1).is_err());
    }
}
