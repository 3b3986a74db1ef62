//! Mirror lists as openSUSE's download redirector serves them: metalink documents (v4, RFC 5854,
//! `application/metalink4+xml`, and the older v3, `application/metalink+xml`) naming the mirrors
//! of one file, best first, with its size and digests; and `?mirrorlist` replies (a JSON array of
//! `{"url": ...}` objects, a metalink, or one URL a line), naming the mirrors of a repository.
//!
//! Pure functions of bytes; the fetcher does the I/O.

use crate::checksum::Checksum;
use quick_xml::Reader;
use quick_xml::events::Event;

/// What zypper's MediaMultiCurl sends so that a redirector answers with a metalink instead of
/// redirecting to one mirror.
pub const ACCEPT: &str = "*/*, application/metalink+xml, application/metalink4+xml";

/// Whether a `Content-Type` names a metalink document.
pub fn is_metalink_type(content_type: &str) -> bool {
    let t = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    t == "application/metalink4+xml" || t == "application/metalink+xml"
}

/// The first `<file>` of a metalink.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Metalink {
    pub name: String,
    pub size: Option<u64>,
    /// Whole-file digests of the algorithms elsx knows (piece hashes are skipped).
    pub hashes: Vec<Checksum>,
    /// `http(s)://` mirror URLs, best first (ftp and rsync ones are skipped).
    pub urls: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("{source_name}: not a usable metalink: {message}")]
pub struct MetalinkError {
    pub source_name: String,
    pub message: String,
}

/// Parses a metalink v3 or v4 document; `source_name` (its URL) names it in errors.
pub fn parse(data: &[u8], source_name: &str) -> Result<Metalink, MetalinkError> {
    let err = |message: String| MetalinkError {
        source_name: source_name.to_owned(),
        message,
    };
    let text = String::from_utf8_lossy(data);
    let mut r = Reader::from_str(&text);
    let mut out = Metalink::default();
    // (rank, document order, url): v4 ranks by `priority` (1 is best), v3 by `preference`
    // (100 is best, stored negated so that smaller is better in both).
    let mut urls: Vec<(i64, usize, String)> = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut files = 0;
    let mut buf = String::new();
    let mut hash_type: Option<String> = None;
    let mut url_rank: i64 = i64::MAX;
    let mut root_seen = false;
    loop {
        let ev = r
            .read_event()
            .map_err(|e| err(format!("XML error at byte {}: {e}", r.buffer_position())))?;
        match ev {
            Event::Eof => break,
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                if !root_seen {
                    if name != "metalink" {
                        return Err(err(format!("the root element is <{name}>")));
                    }
                    root_seen = true;
                }
                let attr = |k: &str| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == k)
                        .and_then(|a| {
                            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                                .ok()
                                .map(|v| v.into_owned())
                        })
                };
                match name.as_str() {
                    "file" => {
                        files += 1;
                        if files == 1 {
                            out.name = attr("name").unwrap_or_default();
                        }
                    }
                    "hash" => hash_type = attr("type"),
                    "url" => {
                        url_rank = match (attr("priority"), attr("preference")) {
                            (Some(p), _) => p.trim().parse().unwrap_or(i64::MAX - 1),
                            (None, Some(p)) => -p.trim().parse::<i64>().unwrap_or(0),
                            (None, None) => i64::MAX - 1,
                        }
                    }
                    _ => {}
                }
                stack.push(name);
                buf.clear();
            }
            Event::Text(t) => buf.push_str(&t.xml10_content()),
            Event::GeneralRef(g) => {
                if let Ok(Some(c)) = g.resolve_char_ref() {
                    buf.push(c);
                } else {
                    match g.xml10_content().as_ref() {
                        "amp" => buf.push('&'),
                        "lt" => buf.push('<'),
                        "gt" => buf.push('>'),
                        "quot" => buf.push('"'),
                        "apos" => buf.push('\''),
                        _ => {}
                    }
                }
            }
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                // Only the first file counts; piece hashes and v3's `alternates` (older
                // versions of the file) are not the file's digest.
                let in_first_file = files == 1 && stack.iter().any(|s| s == "file");
                let nested_elsewhere = stack.iter().any(|s| s == "pieces" || s == "alternates");
                if in_first_file && !nested_elsewhere {
                    let value = buf.trim();
                    match name.as_str() {
                        "size" => out.size = value.parse().ok(),
                        "hash" => {
                            let t = hash_type.take().unwrap_or_default().replace('-', "");
                            if let Some(c) = Checksum::new(&t, value)
                                && !out.hashes.contains(&c)
                            {
                                out.hashes.push(c);
                            }
                        }
                        "url" => {
                            let scheme_ok =
                                value.starts_with("http://") || value.starts_with("https://");
                            if scheme_ok {
                                urls.push((url_rank, urls.len(), value.to_owned()));
                            }
                        }
                        _ => {}
                    }
                }
                buf.clear();
            }
            _ => {}
        }
    }
    if !root_seen {
        return Err(err("no <metalink> element".into()));
    }
    if files == 0 {
        return Err(err("no <file> element".into()));
    }
    urls.sort();
    out.urls = urls.into_iter().map(|(_, _, u)| u).collect();
    Ok(out)
}

/// Parses a repository's mirror list, recognized by its first character as libzypp does: `<` a
/// metalink, `[` a JSON array of objects with a `url` (MirrorCache's `?mirrorlist`), anything
/// else one URL a line (`#` comments). Returns `http(s)://` base URLs, best first, each ending
/// in `/`, with a trailing `repodata/repomd.xml` cut off.
pub fn parse_mirrorlist(data: &[u8], source_name: &str) -> Result<Vec<String>, MetalinkError> {
    let text = String::from_utf8_lossy(data);
    let trimmed = text.trim_start();
    let raw: Vec<String> = match trimmed.chars().next() {
        None => Vec::new(),
        Some('<') => parse(data, source_name)?.urls,
        Some('[') => {
            let v: serde_json::Value =
                serde_json::from_str(trimmed).map_err(|e| MetalinkError {
                    source_name: source_name.to_owned(),
                    message: format!("invalid JSON mirror list: {e}"),
                })?;
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(|o| o.get("url")?.as_str().map(str::to_owned))
                .collect()
        }
        Some(_) => trimmed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect(),
    };
    let mut out: Vec<String> = Vec::new();
    for u in raw {
        if !(u.starts_with("http://") || u.starts_with("https://")) {
            continue;
        }
        let base = u
            .split_once("repodata/repomd.xml")
            .map_or(u.as_str(), |(b, _)| b);
        let base = format!("{}/", base.trim_end_matches('/'));
        if !out.contains(&base) {
            out.push(base);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Option<Vec<u8>> {
        let root = std::env::var_os("ELSX_CORPUS")?;
        Some(
            std::fs::read(
                std::path::Path::new(&root)
                    .join("libzypp/metalink")
                    .join(name),
            )
            .expect("the corpus file exists"),
        )
    }

    #[test]
    fn v4_by_priority_with_its_digest() {
        let doc = br#"<?xml version="1.0" encoding="UTF-8"?>
<metalink xmlns="urn:ietf:params:xml:ns:metalink">
  <file name="a.rpm">
    <size>42</size>
    <hash type="md5">b0e3ea6121ce4a0a9efc732fa61498b4</hash>
    <hash type="sha-256">702D2A63E32B11A60EF853247F7901A71D0EC12731003A433DC17D200021A121</hash>
    <pieces length="65536" type="sha-256"><hash>0000000000000000000000000000000000000000000000000000000000000000</hash></pieces>
    <url location="us" priority="3">http://c.example/a.rpm</url>
    <url location="de" priority="1">http://a.example/a.rpm?x=1&amp;y=2</url>
    <url priority="2">ftp://b.example/a.rpm</url>
    <url priority="2">https://b.example/a.rpm</url>
  </file>
</metalink>"#;
        let m = parse(doc, "t").unwrap();
        assert_eq!(m.name, "a.rpm");
        assert_eq!(m.size, Some(42));
        assert_eq!(
            m.hashes,
            [Checksum::new(
                "sha256",
                "702d2a63e32b11a60ef853247f7901a71d0ec12731003a433dc17d200021a121"
            )
            .unwrap()]
        );
        assert_eq!(
            m.urls,
            [
                "http://a.example/a.rpm?x=1&y=2",
                "https://b.example/a.rpm",
                "http://c.example/a.rpm"
            ]
        );
    }

    #[test]
    fn not_a_metalink() {
        for (doc, what) in [
            (&b"<html><body>mirrors</body></html>"[..], "root element"),
            (
                b"<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\"></metalink>",
                "no <file>",
            ),
            (
                b"<metalink><file name=\"x\"><url>http://a/</file></metalink>",
                "XML error",
            ),
        ] {
            let e = parse(doc, "http://h/x.meta4").unwrap_err().to_string();
            assert!(e.contains(what) && e.contains("http://h/x.meta4"), "{e}");
        }
    }

    #[test]
    fn mirrorlists_in_three_formats() {
        let json = br#"[{"url":"http://m1.example/tumbleweed/repo/oss/repodata/repomd.xml"},
                        {"url":"https://m2.example/tw/"}, {"other":1}, {"url":"rsync://m3/x"}]"#;
        assert_eq!(
            parse_mirrorlist(json, "j").unwrap(),
            [
                "http://m1.example/tumbleweed/repo/oss/",
                "https://m2.example/tw/"
            ]
        );
        let txt = b"# mirrors\nhttp://a.example/repo\n\nhttp://b.example/repo/\n";
        assert_eq!(
            parse_mirrorlist(txt, "t").unwrap(),
            ["http://a.example/repo/", "http://b.example/repo/"]
        );
        assert!(parse_mirrorlist(b"", "e").unwrap().is_empty());
        assert!(parse_mirrorlist(b"[1,", "bad").is_err());
    }

    #[test]
    fn content_types() {
        assert!(is_metalink_type("application/metalink4+xml"));
        assert!(is_metalink_type("Application/Metalink+XML; charset=utf-8"));
        assert!(!is_metalink_type("application/x-rpm"));
    }

    /// The documents openSUSE's redirector served (MirrorBrain), from libzypp's tests.
    #[test]
    fn corpus_documents() {
        let Some(v4) = corpus("other.xml.gz.meta4") else {
            eprintln!("ELSX_CORPUS is not set: the corpus metalinks are not checked");
            return;
        };
        let m = parse(&v4, "other.xml.gz.meta4").unwrap();
        assert_eq!(m.size, Some(16108851));
        assert_eq!(
            m.hashes
                .iter()
                .find(|h| h.algo.name() == "sha256")
                .unwrap()
                .hex,
            "702d2a63e32b11a60ef853247f7901a71d0ec12731003a433dc17d200021a121"
        );
        assert!(m.urls.len() > 50, "{}", m.urls.len());
        assert!(m.urls[0].ends_with("-other.xml.gz"), "{}", m.urls[0]);
        assert!(m.urls.last().unwrap().contains("internode.on.net"));

        let v3 = corpus("metalink.xml").unwrap();
        let m = parse(&v3, "metalink.xml").unwrap();
        assert_eq!(m.size, Some(4834));
        // The current file's digest, not the alternate's.
        assert!(
            m.hashes
                .iter()
                .any(|h| h.hex.starts_with("d6f8135c9d5ac370fafd258c"))
        );
        assert!(
            !m.hashes
                .iter()
                .any(|h| h.hex.starts_with("b0d8ae9c43bfd068"))
        );
        assert_eq!(
            m.urls,
            [
                "http://ftp-stud.hs-esslingen.de/pub/fedora/linux/updates/13/x86_64/repodata/repomd.xml",
                "http://mirror.eurid.eu/fedora/linux/updates/13/x86_64/repodata/repomd.xml"
            ]
        );
        let bases = parse_mirrorlist(&v3, "metalink.xml").unwrap();
        assert_eq!(
            bases[0],
            "http://ftp-stud.hs-esslingen.de/pub/fedora/linux/updates/13/x86_64/"
        );
        for f in [
            "openSUSE-11.3-NET-i586.iso.meta4",
            "openSUSE-11.3-NET-i586.iso.metalink",
        ] {
            let m = parse(&corpus(f).unwrap(), f).unwrap();
            assert!(!m.urls.is_empty() && !m.hashes.is_empty(), "{f}: {m:?}");
        }
    }
}
