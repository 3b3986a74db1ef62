//! Small helpers over quick-xml shared by the rpm-md parsers.

use quick_xml::events::{BytesRef, BytesStart};

#[derive(Debug, thiserror::Error)]
#[error("{file}: XML error at byte {offset}: {message}")]
pub struct XmlError {
    pub file: String,
    pub offset: u64,
    pub message: String,
}

impl XmlError {
    /// An error at the reader's position in `file`, whose text the reader starts at byte `base`.
    pub fn at(file: &str, r: &quick_xml::Reader<&[u8]>, base: usize, message: String) -> XmlError {
        XmlError {
            file: file.to_owned(),
            offset: r.buffer_position() + base as u64,
            message,
        }
    }
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

/// The values of the attributes `names` of `e`, in one pass over its attributes. Values without
/// references or whitespace to normalize are borrowed, not copied.
pub fn attrs<'a, const N: usize>(
    e: &'a BytesStart<'_>,
    names: [&str; N],
) -> [Option<std::borrow::Cow<'a, str>>; N] {
    let mut out = [const { None }; N];
    for a in e.attributes().with_checks(false).flatten() {
        let Some(i) = names.iter().position(|n| *n == a.key.local_name().as_ref()) else {
            continue;
        };
        let plain = !a.value.contains(['&', '\t', '\n', '\r']);
        out[i] = match (&a.value, plain) {
            (std::borrow::Cow::Borrowed(v), true) => Some(std::borrow::Cow::Borrowed(*v)),
            _ => a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| std::borrow::Cow::Owned(v.into_owned())),
        };
    }
    out
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
    // The strict check is much faster than the lossy one's chunked scan on valid input.
    match std::str::from_utf8(data) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(data),
    }
}
