//! Versions as rpm orders them: `rpmvercmp` on epoch, version and release.
//!
//! Contract: [`vercmp`] agrees with rpm 4.18's `rpmvercmp` (tilde sorts before everything, caret
//! after the base version, numeric segments compare as numbers, numbers beat letters).

use std::cmp::Ordering;
use std::fmt;

/// Epoch, version and release of a package or a dependency.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Evr {
    /// `None` when the metadata gave no epoch (it then compares as 0).
    pub epoch: Option<u64>,
    pub version: String,
    /// `None` or empty when a dependency names no release: it then matches any release.
    pub release: Option<String>,
}

impl Evr {
    pub fn new(epoch: Option<u64>, version: &str, release: Option<&str>) -> Evr {
        Evr {
            epoch,
            version: version.to_owned(),
            release: release.filter(|r| !r.is_empty()).map(str::to_owned),
        }
    }

    /// Parses `[epoch:]version[-release]` as rpm writes it in dependencies.
    pub fn parse(s: &str) -> Evr {
        let (epoch, rest) = match s.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse().ok(), rest)
            }
            _ => (None, s),
        };
        match rest.rsplit_once('-') {
            Some((v, r)) => Evr::new(epoch, v, Some(r)),
            None => Evr::new(epoch, rest, None),
        }
    }

    /// Full comparison; a missing release on either side is ignored, which is what makes
    /// `foo >= 1.2` match `foo-1.2-3`.
    pub fn cmp_match(&self, other: &Evr) -> Ordering {
        self.as_ref().cmp_match(other.as_ref())
    }

    pub fn as_ref(&self) -> EvrRef<'_> {
        EvrRef {
            epoch: self.epoch,
            version: &self.version,
            release: self.release.as_deref(),
        }
    }
}

/// An [`Evr`] borrowed from wherever its strings live (the pool's string table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvrRef<'a> {
    pub epoch: Option<u64>,
    pub version: &'a str,
    pub release: Option<&'a str>,
}

impl EvrRef<'_> {
    /// [`Evr::cmp_match`] on borrowed strings.
    pub fn cmp_match(self, other: EvrRef<'_>) -> Ordering {
        let e = self.epoch.unwrap_or(0).cmp(&other.epoch.unwrap_or(0));
        if e != Ordering::Equal {
            return e;
        }
        let v = vercmp(self.version, other.version);
        if v != Ordering::Equal {
            return v;
        }
        match (self.release, other.release) {
            (Some(a), Some(b)) => vercmp(a, b),
            _ => Ordering::Equal,
        }
    }

    pub fn to_owned(self) -> Evr {
        Evr::new(self.epoch, self.version, self.release)
    }
}

impl fmt::Display for EvrRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = self.epoch.filter(|&e| e != 0) {
            write!(f, "{e}:")?;
        }
        f.write_str(self.version)?;
        if let Some(r) = self.release {
            write!(f, "-{r}")?;
        }
        Ok(())
    }
}

impl Ord for Evr {
    fn cmp(&self, other: &Evr) -> Ordering {
        self.cmp_match(other)
            .then_with(|| self.release.is_some().cmp(&other.release.is_some()))
            .then_with(|| self.epoch.is_some().cmp(&other.epoch.is_some()))
    }
}

impl PartialOrd for Evr {
    fn partial_cmp(&self, other: &Evr) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Evr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

/// rpm's `rpmvercmp`: compare two version or release strings segment by segment.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let is_sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while let Some((&c, rest)) = a.split_first().filter(|(c, _)| is_sep(**c)) {
            let _ = c;
            a = rest;
        }
        while let Some((_, rest)) = b.split_first().filter(|(c, _)| is_sep(**c)) {
            b = rest;
        }
        // Tilde: sorts before everything, even the end of the string.
        match (a.first() == Some(&b'~'), b.first() == Some(&b'~')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // Caret: sorts after the end of the string, before anything else.
        match (a.first() == Some(&b'^'), b.first() == Some(&b'^')) {
            (true, true) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (true, false) => {
                return if b.is_empty() {
                    Ordering::Greater
                } else {
                    Ordering::Less
                };
            }
            (false, true) => {
                return if a.is_empty() {
                    Ordering::Less
                } else {
                    Ordering::Greater
                };
            }
            _ => {}
        }
        if a.is_empty() || b.is_empty() {
            break;
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (take(a), take(b));
        let (sa, sb) = (&a[..na], &b[..nb]);
        if nb == 0 {
            // Segments of different kinds: a number is newer than letters.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let ord = if numeric {
            let ta = trim_zeros(sa);
            let tb = trim_zeros(sb);
            ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
    match (a.is_empty(), b.is_empty()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        _ => Ordering::Greater,
    }
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpmvercmp_table() {
        // (a, b, expected) pairs, each checked against rpm 4.18 (`rpm --eval "%{lua: print(rpm.vercmp(a, b))}"`).
        let cases: &[(&str, &str, i8)] = &[
            ("1.0", "1.0", 0),
            ("1.0", "2.0", -1),
            ("2.0", "1.0", 1),
            ("2.0.1", "2.0.1", 0),
            ("2.0", "2.0.1", -1),
            ("2.0.1a", "2.0.1", 1),
            ("5.5p1", "5.5p2", -1),
            ("5.5p10", "5.5p1", 1),
            ("10xyz", "10.1xyz", -1),
            ("xyz10", "xyz10.1", -1),
            ("xyz.4", "8", -1),
            ("5.5p1", "5.5p10", -1),
            ("1.01", "1.1", 0),
            ("1.0", "1", 1),
            ("1b.fc17", "1.fc17", -1),
            ("1g.fc17", "1.fc17", 1),
            ("6.0.rc1", "6.0", 1),
            ("10b2", "10a1", 1),
            ("1.0a", "1.0aa", -1),
            ("2a", "2.0", -1),
            ("1.0~rc1", "1.0", -1),
            ("1.0~rc1", "1.0~rc2", -1),
            ("1.0~rc1~git123", "1.0~rc1", -1),
            ("1.0^", "1.0", 1),
            ("1.0^git1", "1.0", 1),
            ("1.0^git1", "1.01", -1),
            ("1.0^git1", "1.0^git2", -1),
            ("1.0^git1~pre", "1.0^git1", -1),
            ("1.0~rc1^git1", "1.0~rc1", 1),
            ("1.0^20160101", "1.0.1", -1),
            ("a", "a", 0),
            ("a+", "a+", 0),
            ("+a", "a", 0),
            ("_a", "a", 0),
        ];
        for &(a, b, want) in cases {
            let got = vercmp(a, b) as i8;
            assert_eq!(got, want, "rpmvercmp({a:?}, {b:?})");
            assert_eq!(vercmp(b, a) as i8, -want, "rpmvercmp({b:?}, {a:?})");
        }
    }

    #[test]
    fn evr_parse_and_order() {
        let e = Evr::parse("2:1.0-3");
        assert_eq!(e.epoch, Some(2));
        assert_eq!(e.version, "1.0");
        assert_eq!(e.release.as_deref(), Some("3"));
        assert!(Evr::parse("1:0.1") > Evr::parse("9.9-9"));
        assert_eq!(
            Evr::parse("1.2").cmp_match(&Evr::parse("1.2-7")),
            Ordering::Equal
        );
        assert_eq!(Evr::parse("1.2-7").to_string(), "1.2-7");
    }
}
