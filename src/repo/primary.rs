//! `primary.xml`: one `<package>` per RPM with its dependencies and its primary file list.

use super::xml::{XmlError, attr, attrs, push_ref, text};
use crate::checksum::Checksum;
use crate::resolve::dep::{Cmp, Dep};
use crate::resolve::evr::Evr;
use crate::resolve::repodata::{Kind, RepoData};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// A package as the metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub arch: String,
    pub evr: Evr,
    pub checksum: Checksum,
    /// Relative to the repository's base URL.
    pub location: String,
    pub size: u64,
    pub provides: Vec<Dep>,
    pub requires: Vec<Dep>,
    pub conflicts: Vec<Dep>,
    pub obsoletes: Vec<Dep>,
    pub recommends: Vec<Dep>,
    pub supplements: Vec<Dep>,
    /// Never installed, but libsolv prefers suggested and enhancing candidates in a choice.
    pub suggests: Vec<Dep>,
    pub enhances: Vec<Dep>,
    /// The file list primary.xml carries (binaries, /etc, ...), used for file dependencies.
    pub files: Vec<String>,
}

impl Package {
    /// A package without dependencies, files or size.
    pub fn new(name: String, arch: String, evr: Evr, checksum: Checksum, location: String) -> Self {
        Package {
            name,
            arch,
            evr,
            checksum,
            location,
            size: 0,
            provides: Vec::new(),
            requires: Vec::new(),
            conflicts: Vec::new(),
            obsoletes: Vec::new(),
            recommends: Vec::new(),
            supplements: Vec::new(),
            suggests: Vec::new(),
            enhances: Vec::new(),
            files: Vec::new(),
        }
    }

    /// The dependency list of one kind.
    pub fn list_mut(&mut self, k: Kind) -> &mut Vec<Dep> {
        match k {
            Kind::Provides => &mut self.provides,
            Kind::Requires => &mut self.requires,
            Kind::Conflicts => &mut self.conflicts,
            Kind::Obsoletes => &mut self.obsoletes,
            Kind::Recommends => &mut self.recommends,
            Kind::Supplements => &mut self.supplements,
            Kind::Suggests => &mut self.suggests,
            Kind::Enhances => &mut self.enhances,
        }
    }

    /// `name-[epoch:]version-release.arch`, as zypper prints it.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// Packages per piece when a large primary.xml is parsed in parallel.
const PIECE: usize = 2048;

/// Parses a decompressed primary.xml; `file` names it in errors.
///
/// A large document is cut before `<package` tags into pieces parsed in parallel and joined in
/// order, so the result is the same whatever the thread count. If any piece fails (or the cut
/// looks wrong), the whole document is parsed again in one piece, which gives the error its
/// exact place.
pub fn parse(data: &[u8], file: &str) -> Result<Vec<Package>, XmlError> {
    Ok(parse_pieces(data, file, |p| p)?
        .into_iter()
        .flatten()
        .collect())
}

/// [`parse`] straight into the resolver's arena: each piece is interned as soon as it is
/// parsed and the pieces' arenas are merged, so the parsed packages of the whole document are
/// never in memory at once.
pub fn parse_arena(data: &[u8], file: &str) -> Result<RepoData, XmlError> {
    let parts = parse_pieces(data, file, |p| RepoData::from_packages(&p))?;
    Ok(match parts.len() {
        1 => parts.into_iter().next().unwrap(),
        _ => RepoData::merge(&parts.iter().collect::<Vec<_>>()),
    })
}

/// The pieces of the document, parsed and passed through `each`, in document order.
fn parse_pieces<T: Send>(
    data: &[u8],
    file: &str,
    each: impl Fn(Vec<Package>) -> T + Sync,
) -> Result<Vec<T>, XmlError> {
    use rayon::prelude::*;
    let s = text(data);
    let starts = package_starts(&s);
    if starts.len() > PIECE
        && let Some(end) = s.rfind("</package>").map(|i| i + "</package>".len())
        && s[end..].trim() == "</metadata>"
        && s[..starts[0]].contains("<metadata")
    {
        let mut cuts: Vec<usize> = starts.iter().step_by(PIECE).copied().collect();
        cuts.push(end);
        let parts: Result<Vec<T>, XmlError> = cuts
            .par_windows(2)
            .map(|w| parse_piece(&s[w[0]..w[1]], w[0], file).map(&each))
            .collect();
        if let Ok(parts) = parts {
            return Ok(parts);
        }
    }
    Ok(vec![each(parse_piece(&s, 0, file)?)])
}

/// Where each `<package` start tag begins.
fn package_starts(s: &str) -> Vec<usize> {
    let b = s.as_bytes();
    memchr_iter(b"<package", b)
        .filter(|&i| matches!(b.get(i + 8), Some(b' ' | b'\t' | b'\n' | b'\r' | b'>')))
        .collect()
}

fn memchr_iter<'a>(needle: &'a [u8], hay: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let mut at = 0;
    std::iter::from_fn(move || {
        let i = at + hay[at..].windows(needle.len()).position(|w| w == needle)?;
        at = i + needle.len();
        Some(i)
    })
}

/// Parses a whole document or a run of `<package>` elements starting at byte `base` of it.
fn parse_piece(s: &str, base: usize, file: &str) -> Result<Vec<Package>, XmlError> {
    let mut r = Reader::from_str(s);
    let mut out = Vec::new();
    let mut pkg: Option<Package> = None;
    let mut list: Option<Kind> = None;
    let mut buf = String::new();
    let mut checksum_type = String::new();
    let err = |r: &Reader<&[u8]>, message: String| XmlError::at(file, r, base, message);
    loop {
        let ev = r.read_event().map_err(|e| err(&r, e.to_string()))?;
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                buf.clear();
                let local = e.local_name();
                match local.as_ref() {
                    "package" => pkg = Some(empty_package()),
                    "version" => {
                        if let Some(p) = pkg.as_mut() {
                            p.evr = evr_attrs(&e);
                        }
                    }
                    "checksum" => checksum_type = attr(&e, "type").unwrap_or_default(),
                    "location" => {
                        if let Some(p) = pkg.as_mut() {
                            p.location = attr(&e, "href").unwrap_or_default();
                        }
                    }
                    "size" => {
                        if let Some(p) = pkg.as_mut() {
                            p.size = attr(&e, "package")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0);
                        }
                    }
                    "provides" => list = Some(Kind::Provides),
                    "requires" => list = Some(Kind::Requires),
                    "conflicts" => list = Some(Kind::Conflicts),
                    "obsoletes" => list = Some(Kind::Obsoletes),
                    "recommends" => list = Some(Kind::Recommends),
                    "supplements" => list = Some(Kind::Supplements),
                    "suggests" => list = Some(Kind::Suggests),
                    "enhances" => list = Some(Kind::Enhances),
                    "entry" => {
                        if let Some(p) = pkg.as_mut() {
                            let dep = entry(&e).ok_or_else(|| {
                                err(
                                    &r,
                                    format!("package {}: <rpm:entry> without a name", p.name),
                                )
                            })?;
                            if let Some(k) = list {
                                p.list_mut(k).push(dep);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => buf.push_str(&t.xml10_content()),
            Event::CData(t) => buf.push_str(&t.into_inner()),
            Event::GeneralRef(g) => push_ref(&mut buf, &g),
            Event::End(e) => {
                let local = e.local_name();
                if let Some(p) = pkg.as_mut() {
                    match local.as_ref() {
                        "name" => p.name = buf.trim().to_owned(),
                        "arch" => p.arch = buf.trim().to_owned(),
                        "checksum" => {
                            p.checksum = Checksum::new(&checksum_type, &buf).ok_or_else(|| {
                                err(
                                    &r,
                                    format!(
                                        "package {}: unsupported checksum type {checksum_type:?}",
                                        p.name
                                    ),
                                )
                            })?
                        }
                        "file" => p.files.push(buf.trim().to_owned()),
                        "provides" | "requires" | "conflicts" | "obsoletes" | "recommends"
                        | "supplements" | "suggests" | "enhances" => list = None,
                        "package" => {
                            let p = pkg.take().unwrap();
                            if p.name.is_empty()
                                || p.location.is_empty()
                                || p.checksum.hex.is_empty()
                            {
                                return Err(err(
                                    &r,
                                    format!(
                                        "incomplete <package> {:?} (name, location and checksum are required)",
                                        p.name
                                    ),
                                ));
                            }
                            // Source packages are not installable.
                            if p.arch != "src" && p.arch != "nosrc" {
                                out.push(p);
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
    Ok(out)
}

fn empty_package() -> Package {
    let checksum = Checksum {
        algo: crate::checksum::Algo::Sha256,
        hex: String::new(),
    };
    Package::new(
        String::new(),
        String::new(),
        Evr::new(None, "", None),
        checksum,
        String::new(),
    )
}

pub(super) fn evr_attrs(e: &BytesStart<'_>) -> Evr {
    let [epoch, ver, rel] = attrs(e, ["epoch", "ver", "rel"]);
    evr_of(epoch.as_deref(), ver.as_deref(), rel.as_deref())
}

fn evr_of(epoch: Option<&str>, ver: Option<&str>, rel: Option<&str>) -> Evr {
    Evr::new(
        epoch.and_then(|v| v.parse().ok()),
        ver.unwrap_or_default(),
        rel,
    )
}

fn entry(e: &BytesStart<'_>) -> Option<Dep> {
    let [name, flags, epoch, ver, rel] = attrs(e, ["name", "flags", "epoch", "ver", "rel"]);
    let range = flags
        .and_then(|f| Cmp::from_rpmmd(&f))
        .map(|c| (c, evr_of(epoch.as_deref(), ver.as_deref(), rel.as_deref())));
    Some(Dep {
        name: name?.into_owned(),
        range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: usize, broken: Option<usize>) -> String {
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"0\">\n",
        );
        for i in 0..n {
            let end = if broken == Some(i) {
                "</arch>"
            } else {
                "</name>"
            };
            s.push_str(&format!(
                "<package type=\"rpm\">\n  <name>p{i}{end}<arch>x86_64</arch><version epoch=\"0\" ver=\"1.{i}\" rel=\"1\"/>\n  <checksum type=\"sha256\" pkgid=\"YES\">{i:064x}</checksum><location href=\"p{i}.rpm\"/>\n  <format><rpm:requires><rpm:entry name=\"p{}\" flags=\"GE\" ver=\"1&amp;2\"/></rpm:requires></format>\n</package>\n",
                i / 2
            ));
        }
        s.push_str("</metadata>\n");
        s
    }

    #[test]
    fn pieces_parse_like_the_whole() {
        let d = doc(5000, None);
        let whole = parse_piece(&d, 0, "primary.xml").unwrap();
        assert_eq!(whole.len(), 5000);
        assert_eq!(whole[4999].requires[0].to_string(), "p2499 >= 1&2");
        assert_eq!(parse(d.as_bytes(), "primary.xml").unwrap(), whole);
    }

    #[test]
    fn an_error_in_a_piece_names_its_place_in_the_file() {
        let d = doc(5000, Some(3000));
        let e = parse(d.as_bytes(), "primary.xml").unwrap_err();
        let seq = parse_piece(&d, 0, "primary.xml").unwrap_err();
        assert_eq!((e.offset, &e.message), (seq.offset, &seq.message));
        let at = d.find("p3000</arch>").unwrap() as u64;
        assert!(e.offset > at && e.offset < at + 40, "{e}");
    }
}
