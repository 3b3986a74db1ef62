//! A reader for libsolv's testcase files (`test/testcases/**/*.t`, the format of libsolv's
//! `ext/testcase.c` and `ext/repo_testcase.c`), enough for the cases `tests/libsolv_cases.rs`
//! runs: `repo NAME PRIO testtags <inline>|FILE|empty`, `system ARCH rpm REPO`, `job install
//! name|pkg|provides X`, `solverflags`, `evrcmp A B`, `genid`, `nextjob` and `result KINDS
//! <inline>` with the `#>` lines that follow.
//!
//! Dependencies are written in testcase syntax (`A & B`, `A | B`, `A <IF> (B <ELSE> C)`, `B < 3`);
//! they are turned into what primary.xml would carry: a name with an optional range, or an rpm
//! rich dependency in parentheses (`(A and B)`), which is how elsx's pool receives them.

use elsx::checksum::{Algo, Checksum};
use elsx::repo::primary::Package;
use elsx::resolve::dep::{Cmp, Dep};
use elsx::resolve::evr::Evr;
use std::path::Path;

#[derive(Clone, Debug)]
pub struct TRepo {
    pub name: String,
    /// libsolv's priority: higher wins.
    pub priority: i32,
    /// As primary.xml would describe them (Suggests are read and dropped, as elsx does).
    pub packages: Vec<Package>,
}

/// One job of a testcase (the part between two `nextjob` lines).
#[derive(Clone, Debug, Default)]
pub struct TJob {
    pub solverflags: Vec<String>,
    /// `job ...` lines, split into words (`install name X`).
    pub jobs: Vec<Vec<String>>,
    /// `evrcmp A B` lines.
    pub evrcmp: Vec<(String, String)>,
    pub genid: Vec<String>,
    /// The kinds after `result` (`transaction`, `problems`, `rules`, ...).
    pub result_kinds: Vec<String>,
    /// The `#>` lines of the result, without the `#>`.
    pub result: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct TestCase {
    pub repos: Vec<TRepo>,
    pub arch: String,
    /// The repository `system ARCH rpm REPO` names as installed, if any.
    pub system_repo: Option<String>,
    pub features: Vec<String>,
    pub jobs: Vec<TJob>,
}

/// Reads a `.t` file; repositories given as files are read beside it.
pub fn read(path: &Path) -> Result<TestCase, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse(&text, |f| {
        std::fs::read_to_string(dir.join(f)).map_err(|e| format!("{}: {e}", dir.join(f).display()))
    })
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a testcase; `load` reads a repository file named in a `repo` line.
pub fn parse(
    text: &str,
    load: impl Fn(&str) -> Result<String, String>,
) -> Result<TestCase, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut tc = TestCase {
        arch: "x86_64".into(),
        ..Default::default()
    };
    let mut job = TJob::default();
    let mut i = 0;
    // The `#>` lines that follow line `i`.
    let inline = |i: &mut usize| -> Vec<String> {
        let mut out = Vec::new();
        while *i + 1 < lines.len() && lines[*i + 1].starts_with("#>") {
            *i += 1;
            out.push(lines[*i][2..].to_owned());
        }
        out
    };
    while i < lines.len() {
        let line = lines[i];
        let words: Vec<&str> = line.split_whitespace().collect();
        let lineno = i + 1;
        if words.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        match words[0] {
            "repo" => {
                if words.len() < 4 {
                    return Err(format!("line {lineno}: short repo line"));
                }
                let priority = words[2]
                    .parse()
                    .map_err(|_| format!("line {lineno}: bad priority {:?}", words[2]))?;
                let body = match (words[3], words.get(4)) {
                    ("empty", _) => Vec::new(),
                    ("testtags", Some(&"<inline>")) => inline(&mut i),
                    ("testtags", Some(file)) => load(file)?.lines().map(str::to_owned).collect(),
                    (kind, _) => return Err(format!("line {lineno}: repo kind {kind:?}")),
                };
                let packages = testtags(&body).map_err(|e| format!("repo {}: {e}", words[1]))?;
                tc.repos.push(TRepo {
                    name: words[1].to_owned(),
                    priority,
                    packages,
                });
            }
            "system" => {
                tc.arch = words.get(1).copied().unwrap_or("x86_64").to_owned();
                if tc.arch == "unset" {
                    tc.arch = "x86_64".into();
                }
                tc.system_repo = words.get(3).map(|s| s.to_string());
            }
            "feature" => tc.features.extend(words[1..].iter().map(|s| s.to_string())),
            "solverflags" => job
                .solverflags
                .extend(words[1..].iter().map(|s| s.to_string())),
            "job" => job
                .jobs
                .push(words[1..].iter().map(|s| s.to_string()).collect()),
            "evrcmp" if words.len() == 3 => {
                job.evrcmp.push((words[1].to_owned(), words[2].to_owned()))
            }
            "genid" => job.genid.push(words[1..].join(" ")),
            "result" => {
                job.result_kinds = words
                    .get(1)
                    .map(|k| k.split(',').map(str::to_owned).collect())
                    .unwrap_or_default();
                if words.get(2) == Some(&"<inline>") {
                    job.result = inline(&mut i);
                }
            }
            "nextjob" => tc.jobs.push(std::mem::take(&mut job)),
            other => return Err(format!("line {lineno}: command {other:?} is not read here")),
        }
        i += 1;
    }
    tc.jobs.push(job);
    Ok(tc)
}

/// Parses testtags lines (`=Pkg: name ver rel arch`, `=Req: dep`, ...).
fn testtags(lines: &[String]) -> Result<Vec<Package>, String> {
    let mut out: Vec<Package> = Vec::new();
    for line in lines {
        let Some((tag, rest)) = line.split_once(':') else {
            continue;
        };
        let rest = rest.trim();
        if tag == "=Pkg" {
            let w: Vec<&str> = rest.split_whitespace().collect();
            if w.len() < 3 {
                return Err(format!("short =Pkg: line {line:?}"));
            }
            let rel = Some(w[2]).filter(|r| *r != "-");
            let evr = Evr::parse(w[1]);
            let evr = Evr::new(evr.epoch, &evr.version, rel);
            let arch = w.get(3).copied().unwrap_or("noarch");
            let nevra = format!("{}-{evr}.{arch}", w[0]);
            let checksum = Checksum {
                algo: Algo::Sha256,
                hex: Algo::Sha256.digest_hex(nevra.as_bytes()),
            };
            let location = format!("{nevra}.rpm");
            out.push(Package::new(
                w[0].to_owned(),
                arch.to_owned(),
                evr,
                checksum,
                location,
            ));
            continue;
        }
        let Some(p) = out.last_mut() else {
            continue; // `=Ver:` and other file-level tags
        };
        let d = dep(rest)?;
        match tag {
            "=Prv" => p.provides.push(d),
            "=Req" | "=Prq" => p.requires.push(d),
            "=Con" => p.conflicts.push(d),
            "=Obs" => p.obsoletes.push(d),
            "=Rec" => p.recommends.push(d),
            "=Sup" => p.supplements.push(d),
            "=Sug" => p.suggests.push(d),
            "=Enh" => p.enhances.push(d),
            _ => return Err(format!("tag {tag} is not read here ({line:?})")),
        }
    }
    Ok(out)
}

/// A dependency in testcase syntax, as a parsed tree.
#[derive(Clone, Debug, PartialEq)]
enum Term {
    Name(String),
    /// `name OP evr`
    Rel(String, Cmp, String),
    /// A boolean operator (`and`, `or`, `with`, `without`, `if`, `unless`, `else`).
    Op(&'static str, Box<Term>, Box<Term>),
}

/// Converts a dependency in testcase syntax to elsx's form: a plain or versioned [`Dep`], or a
/// rich dependency in rpm's syntax as its name.
pub fn dep(s: &str) -> Result<Dep, String> {
    let mut rest = s;
    let t = term(&mut rest, false).ok_or_else(|| format!("cannot read dependency {s:?}"))?;
    if !rest.trim().is_empty() {
        return Err(format!("text after dependency {s:?}"));
    }
    Ok(match t {
        Term::Name(n) => Dep::name(&n),
        Term::Rel(n, c, evr) => Dep {
            name: n,
            range: Some((c, Evr::parse(&evr))),
        },
        op => Dep::name(&rpm_rich(&op)),
    })
}

/// rpm's syntax, each operator in its own parentheses; `A <IF> (B <ELSE> C)` (how libsolv nests
/// an else) becomes `(A if B else C)`.
fn rpm_rich(t: &Term) -> String {
    match t {
        Term::Name(n) => n.clone(),
        Term::Rel(n, c, evr) => format!("{n} {} {evr}", c.as_str()),
        Term::Op(op, a, b) => match (op, b.as_ref()) {
            (&"if" | &"unless", Term::Op("else", c, d)) => format!(
                "({} {op} {} else {})",
                rpm_rich(a),
                rpm_rich(c),
                rpm_rich(d)
            ),
            _ => format!("({} {op} {})", rpm_rich(a), rpm_rich(b)),
        },
    }
}

const OPS: &[(&str, Option<Cmp>, &str)] = &[
    ("<=", Some(Cmp::Le), ""),
    (">=", Some(Cmp::Ge), ""),
    ("=", Some(Cmp::Eq), ""),
    ("&", None, "and"),
    ("|", None, "or"),
    ("+", None, "with"),
    ("-", None, "without"),
    ("<IF>", None, "if"),
    ("<ELSE>", None, "else"),
    ("<UNLESS>", None, "unless"),
    (">", Some(Cmp::Gt), ""),
    ("<", Some(Cmp::Lt), ""),
];

/// libsolv's `testcase_str2dep_complex`: operators bind to the right, without precedence; after
/// a relational operator only a version follows.
fn term(s: &mut &str, relop: bool) -> Option<Term> {
    *s = s.trim_start();
    let mut t = if let Some(inner) = s.strip_prefix('(') {
        *s = inner;
        let t = term(s, false)?;
        *s = s.trim_start().strip_prefix(')')?;
        t
    } else {
        let end = simple_end(s);
        let name = s[..end].to_owned();
        *s = &s[end..];
        Term::Name(name)
    };
    loop {
        *s = s.trim_start();
        if s.is_empty() || s.starts_with(')') || relop {
            return Some(t);
        }
        let &(text, cmp, word) = OPS.iter().find(|(text, _, _)| s.starts_with(text))?;
        *s = &s[text.len()..];
        let rhs = term(s, cmp.is_some())?;
        t = match (cmp, t, rhs) {
            (Some(c), Term::Name(n), Term::Name(evr)) => Term::Rel(n, c, evr),
            (Some(_), _, _) => return None,
            (None, a, b) => Term::Op(word, Box::new(a), Box::new(b)),
        };
    }
}

/// The end of a name or version: a space, or a `)` that closes nothing inside it.
fn simple_end(s: &str) -> usize {
    let mut depth = 0i32;
    for (i, c) in s.char_indices() {
        match c {
            ' ' | '\t' => return i,
            '(' => depth += 1,
            ')' => {
                if depth == 0 {
                    return i;
                }
                depth -= 1;
            }
            _ => {}
        }
    }
    s.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deps_in_testcase_syntax() {
        assert_eq!(dep("A").unwrap(), Dep::name("A"));
        assert_eq!(dep("B < 3").unwrap(), Dep::parse("B < 3"));
        assert_eq!(dep("B = 2-1").unwrap(), Dep::parse("B = 2-1"));
        assert_eq!(dep("A & B").unwrap().name, "(A and B)");
        assert_eq!(
            dep("(A & B) | (C & D)").unwrap().name,
            "((A and B) or (C and D))"
        );
        assert_eq!(dep("A | B & C").unwrap().name, "(A or (B and C))");
        assert_eq!(
            dep("xclip <IF> (xorg <ELSE> wl-clipboard)").unwrap().name,
            "(xclip if xorg else wl-clipboard)"
        );
        assert_eq!(dep("A <IF> B >= 2").unwrap().name, "(A if B >= 2)");
        assert!(dep("A & (B").is_err());
    }
}
