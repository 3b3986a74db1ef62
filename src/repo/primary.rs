//! `primary.xml`: one `<package>` per RPM with its dependencies and its primary file list.

use super::xml::{XmlError, attr, push_ref, text};
use crate::checksum::Checksum;
use crate::resolve::dep::{Cmp, Dep};
use crate::resolve::evr::Evr;
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
    /// The file list primary.xml carries (binaries, /etc, ...), used for file dependencies.
    pub files: Vec<String>,
}

impl Package {
    /// `name-[epoch:]version-release.arch`, as zypper prints it.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

#[derive(Clone, Copy)]
enum List {
    Provides,
    Requires,
    Conflicts,
    Obsoletes,
    Recommends,
    Supplements,
    Ignored,
}

/// Parses a decompressed primary.xml; `file` names it in errors.
pub fn parse(data: &[u8], file: &str) -> Result<Vec<Package>, XmlError> {
    let s = text(data);
    let mut r = Reader::from_str(&s);
    let mut out = Vec::new();
    let mut pkg: Option<Package> = None;
    let mut list = List::Ignored;
    let mut buf = String::new();
    let mut checksum_type = String::new();
    let err = |r: &Reader<&[u8]>, message: String| XmlError {
        file: file.to_owned(),
        offset: r.buffer_position(),
        message,
    };
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
                    "provides" => list = List::Provides,
                    "requires" => list = List::Requires,
                    "conflicts" => list = List::Conflicts,
                    "obsoletes" => list = List::Obsoletes,
                    "recommends" => list = List::Recommends,
                    "supplements" => list = List::Supplements,
                    "suggests" | "enhances" => list = List::Ignored,
                    "entry" => {
                        if let Some(p) = pkg.as_mut() {
                            let dep = entry(&e).ok_or_else(|| {
                                err(
                                    &r,
                                    format!("package {}: <rpm:entry> without a name", p.name),
                                )
                            })?;
                            match list {
                                List::Provides => p.provides.push(dep),
                                List::Requires => p.requires.push(dep),
                                List::Conflicts => p.conflicts.push(dep),
                                List::Obsoletes => p.obsoletes.push(dep),
                                List::Recommends => p.recommends.push(dep),
                                List::Supplements => p.supplements.push(dep),
                                List::Ignored => {}
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
                        | "supplements" | "suggests" | "enhances" => list = List::Ignored,
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
    Package {
        name: String::new(),
        arch: String::new(),
        evr: Evr::new(None, "", None),
        checksum: Checksum {
            algo: crate::checksum::Algo::Sha256,
            hex: String::new(),
        },
        location: String::new(),
        size: 0,
        provides: Vec::new(),
        requires: Vec::new(),
        conflicts: Vec::new(),
        obsoletes: Vec::new(),
        recommends: Vec::new(),
        supplements: Vec::new(),
        files: Vec::new(),
    }
}

fn evr_attrs(e: &BytesStart<'_>) -> Evr {
    let epoch = attr(e, "epoch").and_then(|v| v.parse().ok());
    let ver = attr(e, "ver").unwrap_or_default();
    let rel = attr(e, "rel");
    Evr::new(epoch, &ver, rel.as_deref())
}

fn entry(e: &BytesStart<'_>) -> Option<Dep> {
    let name = attr(e, "name")?;
    let range = attr(e, "flags")
        .and_then(|f| Cmp::from_rpmmd(&f))
        .map(|c| (c, evr_attrs(e)));
    Some(Dep { name, range })
}
