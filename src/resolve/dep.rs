//! Dependencies: a name with an optional version range, or an rpm rich (boolean) dependency.

use super::evr::{Evr, EvrRef};
use std::cmp::Ordering;
use std::fmt;

/// The comparison of a versioned dependency, as rpm-md writes it in `flags=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Cmp {
    Lt,
    Le,
    Eq,
    Ge,
    Gt,
}

impl Cmp {
    pub fn from_rpmmd(flags: &str) -> Option<Cmp> {
        Some(match flags {
            "LT" => Cmp::Lt,
            "LE" => Cmp::Le,
            "EQ" => Cmp::Eq,
            "GE" => Cmp::Ge,
            "GT" => Cmp::Gt,
            _ => return None,
        })
    }

    fn from_op(op: &str) -> Option<Cmp> {
        Some(match op {
            "<" => Cmp::Lt,
            "<=" | "=<" => Cmp::Le,
            "=" | "==" => Cmp::Eq,
            ">=" | "=>" => Cmp::Ge,
            ">" => Cmp::Gt,
            _ => return None,
        })
    }

    fn less(self) -> bool {
        matches!(self, Cmp::Lt | Cmp::Le)
    }
    fn greater(self) -> bool {
        matches!(self, Cmp::Gt | Cmp::Ge)
    }
    fn equal(self) -> bool {
        matches!(self, Cmp::Le | Cmp::Eq | Cmp::Ge)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Cmp::Lt => "<",
            Cmp::Le => "<=",
            Cmp::Eq => "=",
            Cmp::Ge => ">=",
            Cmp::Gt => ">",
        }
    }
}

/// A simple dependency: `name`, or `name OP evr`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Dep {
    pub name: String,
    pub range: Option<(Cmp, Evr)>,
}

impl Dep {
    pub fn name(name: &str) -> Dep {
        Dep {
            name: name.to_owned(),
            range: None,
        }
    }

    /// Parses `name`, `name >= 1.0` or `name>=1.0` (the form users type on the command line).
    pub fn parse(s: &str) -> Dep {
        let s = s.trim();
        if let Some(pos) = s.find(['<', '>', '=']) {
            let name = s[..pos].trim();
            let rest = &s[pos..];
            let oplen = rest
                .chars()
                .take_while(|c| matches!(c, '<' | '>' | '='))
                .count();
            if let Some(cmp) = Cmp::from_op(&rest[..oplen]) {
                let evr = rest[oplen..].trim();
                if !name.is_empty() && !evr.is_empty() {
                    return Dep {
                        name: name.to_owned(),
                        range: Some((cmp, Evr::parse(evr))),
                    };
                }
            }
        }
        Dep::name(s)
    }

    /// rpm's `rangesOverlap`: does a provide with range `self` satisfy the requirement `req`?
    /// An unversioned side matches every version (rpm and libsolv agree on this for rpm-md).
    pub fn overlaps(&self, req: &Dep) -> bool {
        overlaps(self.range_ref(), req.range_ref())
    }

    pub fn range_ref(&self) -> Range<'_> {
        self.range.as_ref().map(|(c, e)| (*c, e.as_ref()))
    }
}

/// A version range on borrowed strings: `None` for an unversioned dependency.
pub type Range<'a> = Option<(Cmp, EvrRef<'a>)>;

/// rpm's `rangesOverlap` on borrowed ranges: does a provide with range `prov` satisfy a
/// requirement with range `req`? (See [`Dep::overlaps`].)
pub fn overlaps(prov: Range<'_>, req: Range<'_>) -> bool {
    let (Some((pc, pevr)), Some((rc, revr))) = (prov, req) else {
        return true;
    };
    match pevr.cmp_match(revr) {
        Ordering::Less => pc.greater() || rc.less(),
        Ordering::Greater => pc.less() || rc.greater(),
        // Equal up to a release only one side names: as libsolv's pool_intersect_evrs,
        // the side without a release covers every release when it includes `=`
        // (`B < 2-1` and `B > 2-1` both meet `B = 2`).
        Ordering::Equal => {
            (pc.equal() && rc.equal())
                || (pc.less() && rc.less())
                || (pc.greater() && rc.greater())
                || (pevr.release.is_none() && revr.release.is_some() && pc.equal())
                || (pevr.release.is_some() && revr.release.is_none() && rc.equal())
        }
    }
}

impl fmt::Display for Dep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some((c, evr)) = &self.range {
            write!(f, " {} {evr}", c.as_str())?;
        }
        Ok(())
    }
}

/// An rpm boolean dependency, as in `(a >= 1 or (b if c))`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Rich {
    Dep(Dep),
    And(Vec<Rich>),
    Or(Vec<Rich>),
    /// `a with b`: one package satisfies every part.
    With(Vec<Rich>),
    /// `a without b`: a package that satisfies a and not b.
    Without(Box<Rich>, Box<Rich>),
    /// `a if cond [else b]`.
    If(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
    /// `a unless cond [else b]`.
    Unless(Box<Rich>, Box<Rich>, Option<Box<Rich>>),
}

#[derive(Debug, thiserror::Error)]
#[error("malformed rich dependency {text:?}: {reason}")]
pub struct RichError {
    pub text: String,
    pub reason: &'static str,
}

impl Rich {
    /// Parses a rich dependency; `s` must start with `(`.
    pub fn parse(s: &str) -> Result<Rich, RichError> {
        let err = |reason| RichError {
            text: s.to_owned(),
            reason,
        };
        let toks = tokenize(s);
        let mut pos = 0;
        let r = parse_group(&toks, &mut pos).map_err(err)?;
        if pos != toks.len() {
            return Err(err("text after the closing parenthesis"));
        }
        Ok(r)
    }
}

fn tokenize(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c == '(' || c == ')' || c.is_whitespace() {
            if let Some(st) = start.take() {
                out.push(&s[st..i]);
            }
            if !c.is_whitespace() {
                out.push(&s[i..i + 1]);
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push(&s[st..]);
    }
    out
}

fn parse_group(toks: &[&str], pos: &mut usize) -> Result<Rich, &'static str> {
    if toks.get(*pos) != Some(&"(") {
        return Err("expected '('");
    }
    *pos += 1;
    let first = parse_operand(toks, pos)?;
    let op = match toks.get(*pos) {
        Some(&")") => {
            *pos += 1;
            return Ok(first);
        }
        Some(op) => *op,
        None => return Err("missing ')'"),
    };
    let mut items = vec![first];
    match op {
        "and" | "or" | "with" => {
            while toks.get(*pos) == Some(&op) {
                *pos += 1;
                items.push(parse_operand(toks, pos)?);
            }
        }
        "without" | "if" | "unless" => {
            *pos += 1;
            items.push(parse_operand(toks, pos)?);
            if toks.get(*pos) == Some(&"else") && op != "without" {
                *pos += 1;
                items.push(parse_operand(toks, pos)?);
            }
        }
        _ => return Err("unknown operator"),
    }
    if toks.get(*pos) != Some(&")") {
        return Err("operators of different kinds must be grouped with parentheses");
    }
    *pos += 1;
    let mut it = items.into_iter();
    Ok(match op {
        "and" => Rich::And(it.collect()),
        "or" => Rich::Or(it.collect()),
        "with" => Rich::With(it.collect()),
        _ => {
            let a = Box::new(it.next().unwrap());
            let b = Box::new(it.next().unwrap());
            let c = it.next().map(Box::new);
            match op {
                "without" => Rich::Without(a, b),
                "if" => Rich::If(a, b, c),
                _ => Rich::Unless(a, b, c),
            }
        }
    })
}

fn parse_operand(toks: &[&str], pos: &mut usize) -> Result<Rich, &'static str> {
    match toks.get(*pos) {
        Some(&"(") => parse_group(toks, pos),
        Some(&")") | None => Err("missing operand"),
        Some(name) => {
            *pos += 1;
            if let (Some(op), Some(evr)) = (toks.get(*pos), toks.get(*pos + 1))
                && let Some(cmp) = Cmp::from_op(op)
            {
                *pos += 2;
                return Ok(Rich::Dep(Dep {
                    name: (*name).to_owned(),
                    range: Some((cmp, Evr::parse(evr))),
                }));
            }
            Ok(Rich::Dep(Dep::name(name)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_table() {
        let p = |s| Dep::parse(s);
        assert!(p("foo = 1.2-3").overlaps(&p("foo >= 1.2")));
        assert!(p("foo = 1.2-3").overlaps(&p("foo = 1.2")));
        assert!(!p("foo = 1.2-3").overlaps(&p("foo > 1.2")));
        assert!(!p("foo = 1.1").overlaps(&p("foo >= 1.2")));
        assert!(p("foo").overlaps(&p("foo >= 9")));
        assert!(p("foo >= 2").overlaps(&p("foo < 3")));
        assert!(!p("foo < 2").overlaps(&p("foo > 3")));
        assert!(p("foo = 1:1.0").overlaps(&p("foo > 2.0")));
    }

    #[test]
    fn rich_parse() {
        let r = Rich::parse("(a >= 1.0 or (b if c else d))").unwrap();
        match r {
            Rich::Or(v) => {
                assert_eq!(v.len(), 2);
                assert!(matches!(&v[1], Rich::If(_, _, Some(_))));
            }
            other => panic!("{other:?}"),
        }
        assert!(Rich::parse("(a or b and c)").is_err());
        assert!(Rich::parse("(a or").is_err());
        assert!(matches!(Rich::parse("(a)").unwrap(), Rich::Dep(_)));
    }
}
