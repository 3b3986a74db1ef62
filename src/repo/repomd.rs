//! `repodata/repomd.xml`: the index of a repository's metadata files.

use super::xml::{XmlError, attr, push_ref, text};
use crate::checksum::Checksum;
use quick_xml::Reader;
use quick_xml::events::Event;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Repomd {
    pub revision: Option<String>,
    pub data: Vec<DataFile>,
}

/// One `<data type="...">` entry.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DataFile {
    pub kind: String,
    pub href: String,
    pub checksum: Option<Checksum>,
    pub size: Option<u64>,
}

impl Repomd {
    /// The entry of `kind` (`primary`, `filelists`, ...), never a `*_zck` or `*_db` variant.
    pub fn find(&self, kind: &str) -> Option<&DataFile> {
        self.data.iter().find(|d| d.kind == kind)
    }
}

/// Parses repomd.xml; `file` names it in errors.
pub fn parse(data: &[u8], file: &str) -> Result<Repomd, XmlError> {
    let s = text(data);
    let mut r = Reader::from_str(&s);
    let mut md = Repomd {
        revision: None,
        data: Vec::new(),
    };
    let mut cur: Option<DataFile> = None;
    let mut field: Option<(String, Option<String>)> = None; // element name, checksum type
    let mut buf = String::new();
    let err = |r: &Reader<&[u8]>, message: String| XmlError {
        file: file.to_owned(),
        offset: r.buffer_position(),
        message,
    };
    let mut checksum_type: Option<String> = None;
    loop {
        match r.read_event() {
            Err(e) => return Err(err(&r, e.to_string())),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                let name = e.local_name().as_ref().to_owned();
                match name.as_str() {
                    "data" => {
                        cur = Some(DataFile {
                            kind: attr(&e, "type").unwrap_or_default(),
                            href: String::new(),
                            checksum: None,
                            size: None,
                        })
                    }
                    "checksum" => checksum_type = attr(&e, "type"),
                    "location" => {
                        if let Some(d) = cur.as_mut() {
                            d.href = attr(&e, "href").unwrap_or_default();
                        }
                    }
                    _ => {}
                }
                buf.clear();
                field = Some((name, checksum_type.clone()));
            }
            Ok(Event::Empty(e)) => {
                if e.local_name().as_ref() == "location"
                    && let Some(d) = cur.as_mut()
                {
                    d.href = attr(&e, "href").unwrap_or_default();
                }
            }
            Ok(Event::Text(t)) => buf.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(g)) => push_ref(&mut buf, &g),
            Ok(Event::End(e)) => {
                match (e.local_name().as_ref(), cur.as_mut()) {
                    ("data", Some(_)) => md.data.push(cur.take().unwrap()),
                    ("checksum", Some(d)) => {
                        let t = field.as_ref().and_then(|f| f.1.clone()).unwrap_or_default();
                        d.checksum = Some(Checksum::new(&t, &buf).ok_or_else(|| {
                            err(
                                &r,
                                format!("unsupported checksum type {t:?} for {}", d.kind),
                            )
                        })?);
                    }
                    ("size", Some(d)) => d.size = buf.trim().parse().ok(),
                    ("revision", None) => md.revision = Some(buf.trim().to_owned()),
                    _ => {}
                }
                field = None;
                buf.clear();
            }
            Ok(_) => {}
        }
    }
    if md.data.is_empty() {
        return Err(XmlError {
            file: file.to_owned(),
            offset: 0,
            message: "no <data> entries: not a repomd.xml".into(),
        });
    }
    Ok(md)
}
