//! The parsed-metadata cache: a repository's packages as the resolver's arena
//! ([`RepoData`]), keyed by primary's checksum (`pool-v1/<sha256>`), so that a second run reads
//! one file instead of decompressing and parsing XML, and builds no index.
//!
//! Format (little-endian):
//!
//! ```text
//! header   "ELSXPOOL" | version u32 | crc32 u32 of the body | body length u64
//! body     RepoData::encode_body: the key (primary's checksum as "algo:hex"), then the
//!          arena's arrays as they are in memory, each a u64 length and its elements
//! ```
//!
//! Contract: [`decode`] returns exactly what [`encode`] was given, or an error for any damaged,
//! truncated or foreign input (never a panic): the crc32 covers the body, and every id, offset
//! and length is bounds-checked before the arena is handed out.

use crate::cache::{Bucket, Cache};
use crate::checksum::Checksum;
pub use crate::resolve::repodata::StoreError;
use crate::resolve::repodata::{Mapped, RepoData, Source};
use std::io::Write;

const MAGIC: &[u8; 8] = b"ELSXPOOL";
/// Bumped whenever the layout or the meaning of the arena changes.
const VERSION: u32 = 5;
const HEADER: usize = 24;

/// Where the entry for a primary file with this checksum lives.
pub fn path(cache: &Cache, primary: &Checksum) -> std::path::PathBuf {
    cache.path(Bucket::Pool, primary)
}

/// The cached arena of the primary file with checksum `primary`, if a sound entry exists
/// (mapped, its arrays used in place). A damaged entry is reported, removed and ignored, so
/// the caller parses the XML again.
pub fn load(cache: &Cache, primary: &Checksum) -> Option<RepoData> {
    let p = path(cache, primary);
    let f = std::fs::File::open(&p).ok()?;
    let got = match Mapped::new(&f) {
        Some(m) => read(
            &primary.to_string(),
            &Source::Mapped(std::sync::Arc::new(m)),
        ),
        None => fs_err::read(&p)
            .map_err(|_| StoreError("unreadable"))
            .and_then(|b| decode(&primary.to_string(), &b)),
    };
    match got {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!("{}: {e}; parsing the metadata again", p.display());
            let _ = fs_err::remove_file(&p);
            None
        }
    }
}

/// Stores the arena of the primary file with checksum `primary` (temp file + rename; no
/// fsync: a torn entry fails its crc32 and is parsed again). Written as it goes, then the
/// header with the body's length and crc32.
pub fn save(cache: &Cache, primary: &Checksum, data: &RepoData) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    let mut tmp = cache.temp(Bucket::Pool)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
    w.write_all(&[0u8; HEADER])?;
    let (len, crc) = data.encode_body(&primary.to_string(), &mut w)?;
    w.seek(SeekFrom::Start(0))?;
    w.write_all(&header(len, crc))?;
    w.flush()?;
    drop(w);
    tmp.persist(path(cache, primary)).map_err(|e| e.error)?;
    Ok(())
}

fn header(body_len: u64, crc: u32) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h[16..24].copy_from_slice(&body_len.to_le_bytes());
    h
}

/// The binary form of `data`, tagged with `key`.
pub fn encode(key: &str, data: &RepoData) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    let (len, crc) = data.encode_body(key, &mut out).expect("writing to memory");
    out[..HEADER].copy_from_slice(&header(len, crc));
    out
}

/// Reads what [`encode`] wrote for `key`.
pub fn decode(key: &str, data: &[u8]) -> Result<RepoData, StoreError> {
    read(key, &Source::Bytes(data))
}

/// Reads an entry: the header, then the arena's arrays (in place when mapped).
fn read(key: &str, src: &Source<'_>) -> Result<RepoData, StoreError> {
    let data = match src {
        Source::Mapped(m) => m.bytes(),
        Source::Bytes(b) => b,
    };
    let Some(h) = data.get(..HEADER).filter(|h| &h[..8] == MAGIC) else {
        return Err(StoreError("not an elsx pool file"));
    };
    let word = |at: usize| u32::from_le_bytes(h[at..at + 4].try_into().unwrap());
    if word(8) != VERSION {
        return Err(StoreError("written by another version of elsx"));
    }
    let len = u64::from_le_bytes(h[16..24].try_into().unwrap());
    if (data.len() - HEADER) as u64 != len {
        return Err(StoreError("truncated"));
    }
    RepoData::from_body(key, src, HEADER, word(12))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::primary::{self, Package};
    use crate::resolve::dep::Dep;

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
        primary::parse(xml, "primary.xml").unwrap()
    }

    fn arena(pkgs: &[Package]) -> RepoData {
        RepoData::from_packages(pkgs)
    }

    #[test]
    fn round_trip() {
        let pkgs = sample();
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[0].suggests, vec![Dep::name("gdb")]);
        assert_eq!(pkgs[0].enhances[0].to_string(), "ltrace >= 0.7");
        let data = encode("sha256:k", &arena(&pkgs));
        assert_eq!(decode("sha256:k", &data).unwrap().to_packages(), pkgs);
        let many: Vec<Package> = (0..5000)
            .map(|i| {
                let mut p = pkgs[i % 2].clone();
                p.name = format!("p{i}");
                p
            })
            .collect();
        let d = decode("k", &encode("k", &arena(&many))).unwrap();
        assert_eq!(d, arena(&many));
        assert_eq!(d.to_packages(), many);
        assert!(decode("k", &encode("k", &arena(&[]))).unwrap().is_empty());
    }

    #[test]
    fn damaged_entries_are_refused() {
        let data = encode("sha256:k", &arena(&sample()));
        assert_eq!(
            decode("sha256:other", &data).unwrap_err(),
            StoreError("made for other metadata")
        );
        for cut in [0, 7, HEADER, data.len() / 2, data.len() - 1] {
            assert!(decode("sha256:k", &data[..cut]).is_err(), "cut at {cut}");
        }
        for at in [3, 9, HEADER + 1, data.len() / 2, data.len() - 1] {
            let mut bad = data.clone();
            bad[at] ^= 0x40;
            assert!(decode("sha256:k", &bad).is_err(), "flipped byte {at}");
        }
        // A body that passes its crc but lies about ids or offsets is refused, not a panic:
        // every 4-byte word of the body in turn set to a large value.
        let mut refused = 0;
        for at in (HEADER..data.len() - 4).step_by(4) {
            let mut bad = data.clone();
            bad[at..at + 4].copy_from_slice(&0x7fff_fff0u32.to_le_bytes());
            let crc = crc32fast::hash(&bad[HEADER..]);
            bad[12..16].copy_from_slice(&crc.to_le_bytes());
            if let Ok(d) = decode("sha256:k", &bad) {
                let _ = d.to_packages(); // must not panic either
            } else {
                refused += 1;
            }
        }
        assert!(refused > 0);
    }

    #[test]
    fn a_damaged_cache_entry_is_removed_and_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_path_buf());
        let sum = Checksum::new("sha256", &"ab".repeat(32)).unwrap();
        assert!(load(&cache, &sum).is_none());
        save(&cache, &sum, &arena(&sample())).unwrap();
        assert_eq!(load(&cache, &sum).unwrap().to_packages(), sample());
        let p = path(&cache, &sum);
        let data = std::fs::read(&p).unwrap();
        std::fs::write(&p, &data[..data.len() - 10]).unwrap();
        assert!(load(&cache, &sum).is_none());
        assert!(!p.exists(), "the damaged entry is removed");
        // one flipped bit in the mapped body: refused as well
        save(&cache, &sum, &arena(&sample())).unwrap();
        let mut bad = std::fs::read(&p).unwrap();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x08;
        std::fs::write(&p, &bad).unwrap();
        assert!(load(&cache, &sum).is_none());
        assert!(!p.exists(), "the damaged entry is removed");
    }
}
