//! The parsed-metadata cache: a repository's packages as parsed from primary.xml, in a compact
//! binary form keyed by primary's checksum (`pool-v1/<sha256>`), so that a second run reads one
//! file instead of decompressing and parsing XML.
//!
//! Format (little-endian; `v` is an LEB128 varint):
//!
//! ```text
//! header   "ELSXPOOL" | version u32 | crc32 u32 of the body | body length u64
//! body     key (v len, bytes: primary's checksum as "algo:hex")
//!          blocks: v count, v byte length of each, then the blocks
//! block    strings: v count, v blob length, blob, then v length of each string;
//!          v packages, then per package: name, arch, evr, checksum (u8 algo, hex), location,
//!          v size, provides, requires, conflicts, obsoletes, recommends, supplements,
//!          suggests, enhances (v count, then name and range each), files (v count, then strings)
//! string   v index into the block's string table (each distinct string once per block)
//! evr      v epoch+1 (0: none), version, v release index+1 (0: none)
//! range    u8 0 none, 1..=5 <, <=, =, >=, > then evr
//! ```
//!
//! Contract: [`decode`] returns exactly what [`encode`] was given, or an error for any damaged,
//! truncated or foreign input (never a panic): the crc32 covers the body, and every index and
//! length is bounds-checked. Blocks are independent: they are encoded and decoded in parallel and
//! joined in order, so the bytes and the result do not depend on the thread count.

use super::primary::Package;
use crate::cache::{Bucket, Cache};
use crate::checksum::{Algo, Checksum};
use crate::resolve::dep::{Cmp, Dep};
use crate::resolve::evr::Evr;
use rayon::prelude::*;
use std::collections::HashMap;
use std::io::Write;

const MAGIC: &[u8; 8] = b"ELSXPOOL";
/// Bumped whenever the layout or the meaning of `Package` changes.
const VERSION: u32 = 2;
const HEADER: usize = 24;
/// Packages per block: small enough to spread over threads, large enough to be cheap.
const BLOCK: usize = 2048;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("parsed-metadata cache entry: {0}")]
pub struct StoreError(&'static str);

/// Where the entry for a primary file with this checksum lives.
pub fn path(cache: &Cache, primary: &Checksum) -> std::path::PathBuf {
    cache.path(Bucket::Pool, primary)
}

/// The cached packages of the primary file with checksum `primary`, if a sound entry exists.
/// A damaged entry is reported, removed and ignored, so the caller parses the XML again.
pub fn load(cache: &Cache, primary: &Checksum) -> Option<Vec<Package>> {
    let p = path(cache, primary);
    let data = std::fs::read(&p).ok()?;
    match decode(&primary.to_string(), &data) {
        Ok(pkgs) => Some(pkgs),
        Err(e) => {
            tracing::warn!("{}: {e}; parsing the metadata again", p.display());
            let _ = fs_err::remove_file(&p);
            None
        }
    }
}

/// Stores packages parsed from the primary file with checksum `primary` (temp file + rename;
/// no fsync: a torn entry fails its crc32 and is parsed again).
pub fn save(cache: &Cache, primary: &Checksum, pkgs: &[Package]) -> std::io::Result<()> {
    let data = encode(&primary.to_string(), pkgs);
    let mut tmp = cache.temp(Bucket::Pool)?;
    tmp.write_all(&data)?;
    tmp.persist(path(cache, primary)).map_err(|e| e.error)?;
    Ok(())
}

/// The binary form of `pkgs`, tagged with `key`.
pub fn encode(key: &str, pkgs: &[Package]) -> Vec<u8> {
    let blocks: Vec<Vec<u8>> = pkgs.par_chunks(BLOCK).map(encode_block).collect();
    let mut body = Vec::new();
    put_v(&mut body, key.len() as u64);
    body.extend_from_slice(key.as_bytes());
    put_v(&mut body, blocks.len() as u64);
    for b in &blocks {
        put_v(&mut body, b.len() as u64);
    }
    for b in &blocks {
        body.extend_from_slice(b);
    }
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn encode_block(chunk: &[Package]) -> Vec<u8> {
    let mut strings = Strings::default();
    let mut pk = Vec::new();
    put_v(&mut pk, chunk.len() as u64);
    for p in chunk {
        put_package(&mut pk, &mut strings, p);
    }
    let mut b = Vec::with_capacity(strings.blob.len() + pk.len() + 3 * strings.lens.len());
    put_v(&mut b, strings.lens.len() as u64);
    put_v(&mut b, strings.blob.len() as u64);
    b.extend_from_slice(&strings.blob);
    for &l in &strings.lens {
        put_v(&mut b, l as u64);
    }
    b.extend_from_slice(&pk);
    b
}

/// Reads what [`encode`] wrote for `key`.
pub fn decode(key: &str, data: &[u8]) -> Result<Vec<Package>, StoreError> {
    if data.len() < HEADER || &data[..8] != MAGIC {
        return Err(StoreError("not an elsx pool file"));
    }
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    if word(8) != VERSION {
        return Err(StoreError("written by another version of elsx"));
    }
    let len = u64::from_le_bytes(data[16..24].try_into().unwrap());
    let body = &data[HEADER..];
    if body.len() as u64 != len {
        return Err(StoreError("truncated"));
    }
    if crc32fast::hash(body) != word(12) {
        return Err(StoreError("checksum mismatch (damaged)"));
    }
    let mut c = Cursor { buf: body, pos: 0 };
    let klen = c.len()?;
    if c.bytes(klen)? != key.as_bytes() {
        return Err(StoreError("made for other metadata"));
    }
    let nblocks = c.len()?;
    let mut ranges = Vec::with_capacity(nblocks.min(body.len()));
    let mut total = 0usize;
    for _ in 0..nblocks {
        let l = c.len()?;
        ranges.push((total, l));
        total = total.checked_add(l).ok_or(StoreError("bad block"))?;
    }
    let blocks = c.bytes(total)?;
    if c.pos != body.len() {
        return Err(StoreError("trailing bytes"));
    }
    let parts: Vec<Vec<Package>> = ranges
        .par_iter()
        .map(|&(start, l)| decode_block(&blocks[start..start + l]))
        .collect::<Result<_, _>>()?;
    Ok(join(parts))
}

/// Joins parts in order, moving (not cloning) their items.
pub(crate) fn join<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for p in parts {
        out.extend(p);
    }
    out
}

fn decode_block(buf: &[u8]) -> Result<Vec<Package>, StoreError> {
    let mut c = Cursor { buf, pos: 0 };
    let count = c.len()?;
    let blob_len = c.len()?;
    let blob = std::str::from_utf8(c.bytes(blob_len)?).map_err(|_| StoreError("bad UTF-8"))?;
    let mut strs: Vec<&str> = Vec::with_capacity(count.min(buf.len()));
    let mut at = 0usize;
    for _ in 0..count {
        let end = at.checked_add(c.len()?).ok_or(StoreError("bad string"))?;
        strs.push(blob.get(at..end).ok_or(StoreError("bad string"))?);
        at = end;
    }
    let n = c.len()?;
    let mut out = Vec::with_capacity(n.min(buf.len()));
    for _ in 0..n {
        out.push(c.package(&strs)?);
    }
    if c.pos != buf.len() {
        return Err(StoreError("trailing bytes in a block"));
    }
    Ok(out)
}

/// A block's string table being built: each distinct string once, in first-use order.
#[derive(Default)]
struct Strings<'a> {
    index: HashMap<&'a str, u32>,
    blob: Vec<u8>,
    lens: Vec<usize>,
}

impl<'a> Strings<'a> {
    fn id(&mut self, s: &'a str) -> u32 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.lens.len() as u32;
        self.index.insert(s, i);
        self.blob.extend_from_slice(s.as_bytes());
        self.lens.push(s.len());
        i
    }
}

fn put_v(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_s<'a>(out: &mut Vec<u8>, t: &mut Strings<'a>, s: &'a str) {
    put_v(out, t.id(s) as u64);
}

fn put_evr<'a>(out: &mut Vec<u8>, t: &mut Strings<'a>, e: &'a Evr) {
    put_v(out, e.epoch.map_or(0, |e| e.saturating_add(1)));
    put_s(out, t, &e.version);
    put_v(out, e.release.as_deref().map_or(0, |r| t.id(r) as u64 + 1));
}

fn put_package<'a>(out: &mut Vec<u8>, t: &mut Strings<'a>, p: &'a Package) {
    put_s(out, t, &p.name);
    put_s(out, t, &p.arch);
    put_evr(out, t, &p.evr);
    out.push(match p.checksum.algo {
        Algo::Sha1 => 0,
        Algo::Sha256 => 1,
        Algo::Sha512 => 2,
    });
    put_s(out, t, &p.checksum.hex);
    put_s(out, t, &p.location);
    put_v(out, p.size);
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
        put_v(out, list.len() as u64);
        for d in list {
            put_s(out, t, &d.name);
            match &d.range {
                None => out.push(0),
                Some((c, evr)) => {
                    out.push(match c {
                        Cmp::Lt => 1,
                        Cmp::Le => 2,
                        Cmp::Eq => 3,
                        Cmp::Ge => 4,
                        Cmp::Gt => 5,
                    });
                    put_evr(out, t, evr);
                }
            }
        }
    }
    put_v(out, p.files.len() as u64);
    for f in &p.files {
        put_s(out, t, f);
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

const TRUNCATED: StoreError = StoreError("truncated record");

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, StoreError> {
        let b = *self.buf.get(self.pos).ok_or(TRUNCATED)?;
        self.pos += 1;
        Ok(b)
    }

    fn v(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(StoreError("bad number"))
    }

    fn len(&mut self) -> Result<usize, StoreError> {
        usize::try_from(self.v()?).map_err(|_| StoreError("bad length"))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or(TRUNCATED)?;
        let b = self.buf.get(self.pos..end).ok_or(TRUNCATED)?;
        self.pos = end;
        Ok(b)
    }

    fn s<'s>(&mut self, strs: &[&'s str]) -> Result<&'s str, StoreError> {
        let i = self.len()?;
        strs.get(i).copied().ok_or(StoreError("bad string index"))
    }

    fn evr(&mut self, strs: &[&str]) -> Result<Evr, StoreError> {
        let epoch = self.v()?.checked_sub(1);
        let version = self.s(strs)?.to_owned();
        let release = match self.len()? {
            0 => None,
            i => Some(
                strs.get(i - 1)
                    .ok_or(StoreError("bad string index"))?
                    .to_string(),
            ),
        };
        Ok(Evr {
            epoch,
            version,
            release,
        })
    }

    fn deps(&mut self, strs: &[&str]) -> Result<Vec<Dep>, StoreError> {
        let n = self.len()?;
        let mut out = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            let name = self.s(strs)?.to_owned();
            let cmp = match self.byte()? {
                0 => None,
                1 => Some(Cmp::Lt),
                2 => Some(Cmp::Le),
                3 => Some(Cmp::Eq),
                4 => Some(Cmp::Ge),
                5 => Some(Cmp::Gt),
                _ => return Err(StoreError("bad comparison")),
            };
            let range = match cmp {
                Some(c) => Some((c, self.evr(strs)?)),
                None => None,
            };
            out.push(Dep { name, range });
        }
        Ok(out)
    }

    fn package(&mut self, strs: &[&str]) -> Result<Package, StoreError> {
        let name = self.s(strs)?.to_owned();
        let arch = self.s(strs)?.to_owned();
        let evr = self.evr(strs)?;
        let algo = match self.byte()? {
            0 => Algo::Sha1,
            1 => Algo::Sha256,
            2 => Algo::Sha512,
            _ => return Err(StoreError("bad checksum type")),
        };
        let hex = self.s(strs)?.to_owned();
        let location = self.s(strs)?.to_owned();
        let size = self.v()?;
        let provides = self.deps(strs)?;
        let requires = self.deps(strs)?;
        let conflicts = self.deps(strs)?;
        let obsoletes = self.deps(strs)?;
        let recommends = self.deps(strs)?;
        let supplements = self.deps(strs)?;
        let suggests = self.deps(strs)?;
        let enhances = self.deps(strs)?;
        let n = self.len()?;
        let mut files = Vec::with_capacity(n.min(self.buf.len()));
        for _ in 0..n {
            files.push(self.s(strs)?.to_owned());
        }
        Ok(Package {
            name,
            arch,
            evr,
            checksum: Checksum { algo, hex },
            location,
            size,
            provides,
            requires,
            conflicts,
            obsoletes,
            recommends,
            supplements,
            suggests,
            enhances,
            files,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Package> {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?>
<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="2">
<package type="rpm"><name>strace</name><arch>x86_64</arch>
  <version epoch="0" ver="6.1" rel="1.2"/>
  <checksum type="sha256" pkgid="YES">aaaa</checksum>
  <location href="x86_64/strace-6.1-1.2.x86_64.rpm"/><size package="1234"/>
  <format>
    <rpm:provides><rpm:entry name="strace" flags="EQ" epoch="0" ver="6.1" rel="1.2"/></rpm:provides>
    <rpm:requires><rpm:entry name="libdw.so.1()(64bit)"/><rpm:entry name="(a or b &gt;= 2)"/>
      <rpm:entry name="glibc" flags="GE" ver="2.34"/></rpm:requires>
    <rpm:conflicts><rpm:entry name="old" flags="LT" epoch="1" ver="2"/></rpm:conflicts>
    <rpm:obsoletes><rpm:entry name="strace-old"/></rpm:obsoletes>
    <rpm:recommends><rpm:entry name="strace-doc"/></rpm:recommends>
    <rpm:supplements><rpm:entry name="(strace and man)"/></rpm:supplements>
    <rpm:suggests><rpm:entry name="gdb"/></rpm:suggests>
    <rpm:enhances><rpm:entry name="ltrace" flags="GE" ver="0.7"/></rpm:enhances>
    <file>/usr/bin/strace</file>
  </format>
</package>
<package type="rpm"><name>caf&#xe9;</name><arch>noarch</arch>
  <version ver="1.0~rc1^git2"/>
  <checksum type="sha1">bbbb</checksum><location href="noarch/cafe.rpm"/>
</package>
</metadata>"#;
        super::super::primary::parse(xml, "primary.xml").unwrap()
    }

    #[test]
    fn round_trip() {
        let pkgs = sample();
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].suggests, vec![Dep::name("gdb")]);
        assert_eq!(pkgs[0].enhances[0].to_string(), "ltrace >= 0.7");
        let data = encode("sha256:k", &pkgs);
        assert_eq!(decode("sha256:k", &data).unwrap(), pkgs);
        // Many blocks, decoded in parallel, come back in order.
        let many: Vec<Package> = (0..5000)
            .map(|i| {
                let mut p = pkgs[i % 2].clone();
                p.name = format!("p{i}");
                p
            })
            .collect();
        assert_eq!(decode("k", &encode("k", &many)).unwrap(), many);
        assert_eq!(decode("k", &encode("k", &[])).unwrap(), vec![]);
    }

    #[test]
    fn damaged_entries_are_refused() {
        let data = encode("sha256:k", &sample());
        assert_eq!(
            decode("sha256:other", &data),
            Err(StoreError("made for other metadata"))
        );
        for cut in [0, 7, HEADER, data.len() / 2, data.len() - 1] {
            assert!(decode("sha256:k", &data[..cut]).is_err(), "cut at {cut}");
        }
        for at in [3, 9, HEADER + 1, data.len() / 2, data.len() - 1] {
            let mut bad = data.clone();
            bad[at] ^= 0x40;
            assert!(decode("sha256:k", &bad).is_err(), "flipped byte {at}");
        }
        // A body that passes its crc but lies about indexes is refused, not a panic.
        let mut bad = data.clone();
        let n = bad.len();
        bad[n - 2] = 0x7f;
        let crc = crc32fast::hash(&bad[HEADER..]);
        bad[12..16].copy_from_slice(&crc.to_le_bytes());
        assert!(decode("sha256:k", &bad).is_err());
    }

    #[test]
    fn a_damaged_cache_entry_is_removed_and_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let sum = Checksum::new("sha256", &"ab".repeat(32)).unwrap();
        assert!(load(&cache, &sum).is_none());
        save(&cache, &sum, &sample()).unwrap();
        assert_eq!(load(&cache, &sum).unwrap(), sample());
        let p = path(&cache, &sum);
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, &data[..data.len() - 10]).unwrap();
        assert!(load(&cache, &sum).is_none());
        assert!(!p.exists(), "the damaged entry is removed");
    }
}
