//! Small helpers over quick-xml shared by the rpm-md parsers.

use quick_xml::events::{BytesRef, BytesStart};

#[derive(Debug, thiserror::Error)]
#[error("{file}: XML error at byte {offset}: {message}")]
pub struct XmlError {
    pub file: String,
    pub offset: u64,
    pub message: String,
}

/// The unescaped value of attribute `name`, if present.
pub fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.local_name().as_ref() == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
}

/// Appends what an entity or character reference stands for.
pub fn push_ref(out: &mut String, r: &BytesRef<'_>) {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        out.push(c);
        return;
    }
    let name = r.xml10_content();
    match name.as_ref() {
        "amp" => out.push('&'),
        "lt" => out.push('<'),
        "gt" => out.push('>'),
        "quot" => out.push('"'),
        "apos" => out.push('\''),
        other => {
            out.push('&');
            out.push_str(other);
            out.push(';');
        }
    }
}

/// Metadata is UTF-8 by the rpm-md schema; old repositories sometimes carry Latin-1 bytes in
/// descriptions, which must not stop a build.
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}
