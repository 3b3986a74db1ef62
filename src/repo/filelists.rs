//! `filelists.xml`: every file of every package, read only when a file dependency needs it.

use super::xml::{XmlError, attrs, push_ref, text};
use crate::resolve::evr::Evr;
use quick_xml::Reader;
use quick_xml::events::Event;

/// One package's entry in filelists.xml.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The package checksum (hex), as in primary.xml.
    pub pkgid: String,
    pub name: String,
    pub arch: String,
    pub evr: Evr,
    /// Files and directories, in document order.
    pub files: Vec<String>,
}

/// Parses a decompressed filelists.xml; `file` names it in errors. With `keep`, only the paths
/// it accepts are kept (a full Tumbleweed list has millions of paths).
pub fn parse(data: &[u8], file: &str, keep: &dyn Fn(&str) -> bool) -> Result<Vec<Entry>, XmlError> {
    let s = text(data);
    let mut r = Reader::from_str(&s);
    let mut out = Vec::new();
    let mut cur: Option<Entry> = None;
    let mut buf = String::new();
    let err = |r: &Reader<&[u8]>, message: String| XmlError::at(file, r, 0, message);
    loop {
        let ev = r.read_event().map_err(|e| err(&r, e.to_string()))?;
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                buf.clear();
                match e.local_name().as_ref() {
                    "package" => {
                        let [id, name, arch] = attrs(&e, ["pkgid", "name", "arch"]);
                        let (Some(id), Some(name)) = (id, name) else {
                            return Err(err(&r, "<package> without pkgid or name".into()));
                        };
                        cur = Some(Entry {
                            pkgid: id.into_owned(),
                            name: name.into_owned(),
                            arch: arch.map(|a| a.into_owned()).unwrap_or_default(),
                            evr: Evr::parse("0"),
                            files: Vec::new(),
                        });
                    }
                    "version" => {
                        if let Some(c) = cur.as_mut() {
                            c.evr = super::primary::evr_attrs(&e);
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => buf.push_str(&t.xml10_content()),
            Event::CData(t) => buf.push_str(&t.into_inner()),
            Event::GeneralRef(g) => push_ref(&mut buf, &g),
            Event::End(e) => match e.local_name().as_ref() {
                "file" => {
                    let Some(c) = cur.as_mut() else {
                        return Err(err(&r, "<file> outside <package>".into()));
                    };
                    let path = buf.trim();
                    if keep(path) {
                        c.files.push(path.to_owned());
                    }
                }
                "package" => out.extend(cur.take()),
                _ => {}
            },
            _ => {}
        }
    }
    if cur.is_some() {
        return Err(XmlError {
            file: file.to_owned(),
            offset: s.len() as u64,
            message: "unterminated <package>".into(),
        });
    }
    Ok(out)
}
