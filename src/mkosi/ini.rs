//! mkosi's INI dialect (its own parser, not Python's configparser, because a key may repeat).
//!
//! The rules, as `parse_ini()` in mkosi's `config.py` applies them:
//! - the text is dedented first (common leading whitespace of all non-blank lines removed);
//! - `#` starts a comment anywhere on a line, even inside a value; `;` is not a comment;
//! - blank lines are skipped, also between a setting and its continuation lines;
//! - `[Section]` opens a section; a section may appear more than once and each appearance is
//!   its own [`Section`] (that matters for `[Match]`);
//! - `Key=Value`: key and value are trimmed, `Key=` is an empty assignment (a reset);
//! - a line starting with whitespace continues the previous setting's value: the trimmed line
//!   is appended after a newline (so `Packages=` followed by indented names is a list).
//!
//! Contract: pure; every entry remembers its file and the line of its key.

use super::Origin;

/// One `[Name]` block and its settings, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub name: String,
    pub origin: Origin,
    pub entries: Vec<Entry>,
}

/// `Key=Value`, with continuation lines joined by `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub origin: Origin,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{file}:{line}: {text:?} is not a valid section header (missing ']')")]
    BadSection {
        file: String,
        line: u32,
        text: String,
    },
    #[error("{file}:{line}: section name cannot be empty")]
    EmptySection { file: String, line: u32 },
    #[error("{file}:{line}: setting {text:?} is outside of any section")]
    OutsideSection {
        file: String,
        line: u32,
        text: String,
    },
    #[error("{file}:{line}: setting {text:?} must be followed by '='")]
    MissingEquals {
        file: String,
        line: u32,
        text: String,
    },
    #[error("{file}:{line}: missing setting name before '='")]
    MissingName { file: String, line: u32 },
}

/// Parses `text`; `file` is only used to name origins and errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<Section>, Error> {
    let lines: Vec<&str> = text.lines().collect();
    let margin = common_margin(&lines);
    let mut sections: Vec<Section> = Vec::new();
    // The setting being read: continuation lines may still extend its value.
    let mut open: Option<Entry> = None;

    for (i, raw) in lines.iter().enumerate() {
        let n = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = dedent(raw, margin);
        let line = match line.find('#') {
            Some(c) => &line[..c],
            None => line,
        };
        if line.trim().is_empty() {
            continue;
        }
        if let Some(entry) = open.as_mut()
            && line.starts_with(char::is_whitespace)
        {
            entry.value.push('\n');
            entry.value.push_str(line.trim());
            continue;
        }
        if let Some(entry) = open.take() {
            push_entry(&mut sections, entry);
        }
        let line = line.trim();
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(Error::BadSection {
                    file: file.into(),
                    line: n,
                    text: line.into(),
                });
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(Error::EmptySection {
                    file: file.into(),
                    line: n,
                });
            }
            sections.push(Section {
                name: name.into(),
                origin: Origin::line(file, n),
                entries: Vec::new(),
            });
            continue;
        }
        if sections.is_empty() {
            return Err(Error::OutsideSection {
                file: file.into(),
                line: n,
                text: line.into(),
            });
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(Error::MissingEquals {
                file: file.into(),
                line: n,
                text: line.into(),
            });
        };
        if key.is_empty() {
            return Err(Error::MissingName {
                file: file.into(),
                line: n,
            });
        }
        open = Some(Entry {
            key: key.trim().into(),
            value: value.trim().into(),
            origin: Origin::line(file, n),
        });
    }
    if let Some(entry) = open.take() {
        push_entry(&mut sections, entry);
    }
    Ok(sections)
}

fn push_entry(sections: &mut [Section], entry: Entry) {
    if let Some(s) = sections.last_mut() {
        s.entries.push(entry);
    }
}

/// The longest run of spaces and tabs that starts every non-blank line (Python's
/// `textwrap.dedent`, which mkosi applies to the whole file).
fn common_margin<'a>(lines: &[&'a str]) -> &'a str {
    let mut margin: Option<&str> = None;
    for l in lines {
        if l.trim().is_empty() {
            continue;
        }
        let indent = &l[..l.len() - l.trim_start_matches([' ', '\t']).len()];
        margin = Some(match margin {
            None => indent,
            Some(m) => {
                let common = m
                    .bytes()
                    .zip(indent.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &m[..common]
            }
        });
    }
    margin.unwrap_or("")
}

fn dedent<'a>(line: &'a str, margin: &str) -> &'a str {
    line.strip_prefix(margin).unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (section, key, value, line)
    type Row = (String, String, String, u32);

    fn kv(sections: &[Section]) -> Vec<Row> {
        sections
            .iter()
            .flat_map(|s| {
                s.entries.iter().map(|e| {
                    let Origin::Line { line, .. } = e.origin else {
                        panic!("entry without a line")
                    };
                    (s.name.clone(), e.key.clone(), e.value.clone(), line)
                })
            })
            .collect()
    }

    fn t(s: &str, k: &str, v: &str, l: u32) -> Row {
        (s.into(), k.into(), v.into(), l)
    }

    #[test]
    fn table() {
        let cases: &[(&str, Vec<Row>)] = &[
            ("[A]\nK=V\n", vec![t("A", "K", "V", 2)]),
            ("[A]\n K = V \n", vec![t("A", "K", "V", 2)]),
            ("[A]\nK=\n", vec![t("A", "K", "", 2)]),
            ("[A]\nK=a=b\n", vec![t("A", "K", "a=b", 2)]),
            // Continuation lines, with a blank line and a comment in between.
            (
                "[Content]\nPackages=\n        aaa_base\n\n  # c\n        sed\nX=1\n",
                vec![
                    t("Content", "Packages", "\naaa_base\nsed", 2),
                    t("Content", "X", "1", 7),
                ],
            ),
            ("[A]\nK=a\n b\n", vec![t("A", "K", "a\nb", 2)]),
            // `#` anywhere starts a comment; `;` does not.
            (
                "[A]\nK=a # c\nL=b;c\n",
                vec![t("A", "K", "a", 2), t("A", "L", "b;c", 3)],
            ),
            ("# x\n[A]\n#K=1\n;L=2\n", vec![t("A", ";L", "2", 4)]),
            // Repeated keys and sections stay separate and ordered.
            (
                "[A]\nK=1\n[B]\n[A]\nK=2\n",
                vec![t("A", "K", "1", 2), t("A", "K", "2", 5)],
            ),
            // The whole file indented: dedented first.
            ("    [A]\n    K=1\n      x\n", vec![t("A", "K", "1\nx", 2)]),
            ("", vec![]),
        ];
        for (text, want) in cases {
            let got = kv(&parse(text, "f.conf").unwrap());
            assert_eq!(&got, want, "{text:?}");
        }
    }

    #[test]
    fn sections_keep_their_line() {
        let s = parse("\n[Match]\nA=1\n[Match]\n", "m.conf").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].origin, Origin::line("m.conf", 2));
        assert_eq!(s[1].origin, Origin::line("m.conf", 4));
        assert!(s[1].entries.is_empty());
    }

    #[test]
    fn indented_line_after_a_header_is_a_setting() {
        let s = parse("[A]\n  K=1\n", "f").unwrap();
        assert_eq!(kv(&s), vec![t("A", "K", "1", 2)]);
    }

    #[test]
    fn errors() {
        let cases: &[(&str, Error)] = &[
            (
                "[A\n",
                Error::BadSection {
                    file: "f".into(),
                    line: 1,
                    text: "[A".into(),
                },
            ),
            (
                "\n[ ]\n",
                Error::EmptySection {
                    file: "f".into(),
                    line: 2,
                },
            ),
            (
                "K=V\n",
                Error::OutsideSection {
                    file: "f".into(),
                    line: 1,
                    text: "K=V".into(),
                },
            ),
            (
                "[A]\nK\n",
                Error::MissingEquals {
                    file: "f".into(),
                    line: 2,
                    text: "K".into(),
                },
            ),
            (
                "[A]\n=V\n",
                Error::MissingName {
                    file: "f".into(),
                    line: 2,
                },
            ),
        ];
        for (text, want) in cases {
            assert_eq!(&parse(text, "f").unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn never_panics_on_random_text() {
        let alphabet: Vec<char> = "[]=#; \t\nAb|!%\u{a0}é\r".chars().collect();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                s.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse(&s, "f");
        }
    }

    #[test]
    fn never_panics_on_odd_bytes() {
        for text in [
            "[",
            "]",
            "[]]",
            "\t\t",
            "[A]\n\u{a0}K=1",
            "[A]\n=\n",
            "[A]\nK=\u{feff}",
        ] {
            let _ = parse(text, "f");
        }
    }
}
