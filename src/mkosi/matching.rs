//! Pieces of `[Match]` evaluation that need no loader state: glob matching (fnmatch), UAPI
//! version comparison and the comparison of one condition with a setting's value.
//!
//! How conditions combine (AND, `|` triggers, `!`, `[TriggerMatch]`) is in `config.rs`, because
//! it needs the values parsed so far.

use std::cmp::Ordering;

use super::settings::{ARCHITECTURES, Kind, Matcher, Setting};
use super::value::Value;

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`; no special meaning for `/` or
/// a leading dot.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    // Iterative with backtracking to the last `*`, so long names cannot blow the stack.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, ni));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, len)) = class(&p[pi..], n[ni]) {
                        if matched {
                            pi += len;
                            ni += 1;
                            continue;
                        }
                    } else if n[ni] == '[' {
                        // An unclosed `[` is a literal.
                        pi += 1;
                        ni += 1;
                        continue;
                    }
                }
                c if c == n[ni] => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// `[...]` at the start of `p`: whether `c` is in it, and the class's length; `None` when the
/// bracket is not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!'));
    if negate {
        i += 1;
    }
    let start = i;
    let mut found = false;
    loop {
        let &x = p.get(i)?;
        if x == ']' && i > start {
            break;
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&e| e != ']') {
            let e = p[i + 2];
            if x <= c && c <= e {
                found = true;
            }
            i += 3;
        } else {
            if x == c {
                found = true;
            }
            i += 1;
        }
    }
    Some((found != negate, i + 1))
}

/// Whether `s` contains glob characters.
pub fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The UAPI Group version format comparison (`systemd-analyze compare-versions`), as mkosi's
/// `GenericVersion` implements it.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn valid(c: char) -> bool {
        c.is_ascii_alphanumeric() || matches!(c, '~' | '-' | '^' | '.')
    }
    let mut a = a;
    let mut b = b;
    loop {
        a = a.trim_start_matches(|c| !valid(c));
        b = b.trim_start_matches(|c| !valid(c));
        // `~` sorts before everything, even the end of the string.
        match (a.strip_prefix('~'), b.strip_prefix('~')) {
            (Some(x), Some(y)) => {
                a = x;
                b = y;
                continue;
            }
            (Some(_), None) => return Ordering::Less,
            (None, Some(_)) => return Ordering::Greater,
            (None, None) => {}
        }
        match (a.is_empty(), b.is_empty()) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        // `-`, then `^`, then `.`: the string with the separator sorts lower.
        for sep in ['-', '^', '.'] {
            match (a.strip_prefix(sep), b.strip_prefix(sep)) {
                (Some(x), Some(y)) => {
                    a = x;
                    b = y;
                }
                (Some(_), None) => return Ordering::Less,
                (None, Some(_)) => return Ordering::Greater,
                (None, None) => {}
            }
        }
        let da = a.len() - a.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let db = b.len() - b.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if da > 0 || db > 0 {
            let x = a[..da].trim_start_matches('0');
            let y = b[..db].trim_start_matches('0');
            // Numbers of any length: compare by length, then digit by digit.
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o != Ordering::Equal {
                return o;
            }
            a = &a[da..];
            b = &b[db..];
            continue;
        }
        let la = a.len()
            - a.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let lb = b.len()
            - b.trim_start_matches(|c: char| c.is_ascii_alphabetic())
                .len();
        let o = a[..la].cmp(&b[..lb]);
        if o != Ordering::Equal {
            return o;
        }
        a = &a[la..];
        b = &b[lb..];
    }
}

/// `ImageVersion=` / `SystemdVersion=` conditions: an optional operator (`==`, `!=`, `<=`, `>=`,
/// `<`, `>`; default `==`) and a version.
pub fn version_matches(condition: &str, version: &str) -> bool {
    for (op, f) in [
        ("==", Ordering::is_eq as fn(Ordering) -> bool),
        ("!=", Ordering::is_ne),
        ("<=", Ordering::is_le),
        (">=", Ordering::is_ge),
        (">", Ordering::is_gt),
        ("<", Ordering::is_lt),
    ] {
        if let Some(rhs) = condition.strip_prefix(op) {
            return f(version_cmp(version, rhs));
        }
    }
    version_cmp(version, condition).is_eq()
}

/// mkosi's boolean literals.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "y" | "t" | "on" | "always" => Some(true),
        "0" | "false" | "no" | "n" | "f" | "off" | "never" => Some(false),
        _ => None,
    }
}

/// mkosi's ConfigFeature: `auto`, `enabled`, `disabled`, or a boolean.
pub fn parse_feature(s: &str) -> Option<&'static str> {
    match s {
        "auto" => Some("auto"),
        "enabled" => Some("enabled"),
        "disabled" => Some("disabled"),
        _ => parse_bool(s).map(|b| if b { "enabled" } else { "disabled" }),
    }
}

/// Architectures with UEFI (`Architecture=uefi`).
const UEFI: &[&str] = &[
    "x86",
    "x86-64",
    "arm",
    "arm64",
    "riscv32",
    "riscv64",
    "loongarch64",
];

/// Compares the condition `cond` (prefixes already removed, specifiers expanded) with the
/// setting's current value; `None` (nothing configured and no default) never matches.
pub fn matches(setting: &Setting, cond: &str, value: Option<&Value>) -> Result<bool, String> {
    let matcher = setting
        .matcher
        .ok_or_else(|| format!("{} cannot be used in a [Match] section", setting.name))?;
    let valid_enum = |values: &[&str]| {
        if values.contains(&cond) {
            Ok(())
        } else {
            Err(format!("'{cond}' is not a valid {}", setting.name))
        }
    };
    match matcher {
        Matcher::Enum => {
            if let Kind::Enum(values) = setting.kind {
                valid_enum(values)?;
            }
        }
        Matcher::Architecture if cond != "uefi" => valid_enum(ARCHITECTURES)?,
        Matcher::Feature if parse_feature(cond).is_none() => {
            return Err(format!("invalid boolean or feature value {cond:?}"));
        }
        Matcher::List
            if setting.name == "Profiles"
                && (cond.contains('/') || cond == "." || cond == "..") =>
        {
            return Err(format!("'{cond}' is not a valid profile"));
        }
        _ => {}
    }
    let Some(value) = value else {
        return Ok(false);
    };
    let one = || value.text().unwrap_or_default();
    Ok(match matcher {
        Matcher::Equal | Matcher::Enum => one() == cond,
        Matcher::Glob => fnmatch(cond, &one()),
        Matcher::Version => version_matches(cond, &one()),
        Matcher::Feature => parse_feature(cond) == Some(one().as_str()),
        Matcher::Architecture if cond == "uefi" => UEFI.contains(&one().as_str()),
        Matcher::Architecture => one() == cond,
        Matcher::List => {
            let items = value.items();
            if cond.is_empty() {
                items.is_empty()
            } else {
                items.iter().any(|i| i == cond)
            }
        }
        Matcher::KeyValue => {
            let Value::Map(map) = value else {
                return Ok(false);
            };
            match cond.split_once('=') {
                Some((k, v)) => map.get(k).is_some_and(|x| x.value == v),
                None => map.contains_key(cond),
            }
        }
        Matcher::BuildSources => {
            let want = cond.trim_start_matches('/');
            value.items().iter().any(|i| {
                i.split_once(':')
                    .is_some_and(|(_, t)| t.trim_start_matches('/') == want)
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_table() {
        let cases = [
            ("*", "", true),
            ("*", "anything", true),
            ("tools*", "tools-1.0", true),
            ("tools*", "tool", false),
            ("?ools", "tools", true),
            ("t[a-o]ols", "tools", true),
            ("t[!o]ols", "tools", false),
            ("t[!x]ols", "tools", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("[", "[", true),
            ("a[]]b", "a]b", true),
            ("*.conf", "10-foo.conf", true),
            ("*.conf", "10-foo.conf~", false),
        ];
        for (p, n, want) in cases {
            assert_eq!(fnmatch(p, n), want, "{p} {n}");
        }
    }

    #[test]
    fn versions() {
        use Ordering::*;
        let cases = [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.01", "1.1", Equal),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0-1", Less),
            ("1.0-1", "1.0.1", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("a", "B", Greater),
            ("255", "256~rc1", Less),
            ("1.0", "1.0a", Less),
            ("123456789012345678901234567890", "9", Greater),
        ];
        for (a, b, want) in cases {
            assert_eq!(version_cmp(a, b), want, "{a} vs {b}");
            assert_eq!(version_cmp(b, a), want.reverse(), "{b} vs {a}");
        }
        assert!(version_matches(">=1.0", "1.0"));
        assert!(version_matches("<2", "1.9"));
        assert!(version_matches("!=1.0", "1.1"));
        assert!(version_matches("1.0", "1.00"));
        assert!(!version_matches(">1.0", "1.0"));
    }

    #[test]
    fn booleans_and_features() {
        assert_eq!(parse_bool("Yes"), Some(true));
        assert_eq!(parse_bool("never"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
        assert_eq!(parse_feature("true"), Some("enabled"));
        assert_eq!(parse_feature("auto"), Some("auto"));
    }
}
