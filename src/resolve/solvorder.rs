//! The order in which libsolv tries a package's recommendations: the order of its `.solv`
//! file. libsolv's writer (`repo_write.c`) gives every string and relation a new id by how
//! often the repository uses it ("need"), and writes each dependency array sorted by the new
//! ids. So in one array: plain names first, by need (descending), names of equal need by text;
//! then versioned and rich dependencies (relations), by need (descending), ties by the order in
//! which the parser first made them. A string's need counts its uses as a package's name,
//! architecture, source package name (when not the package's own) and group, as a plain entry
//! of any dependency array, and once as a part (name, version, operand) of each distinct
//! relation used; a relation's need counts its entries in dependency arrays, and a relation
//! inside another (a rich dependency's operands, nested to the right as libsolv's parser nests
//! `a or b or c`) gets at least one more than the relation around it.
//!
//! `tests/resolve_diff.rs` checks the result against `dumpsolv` on the whole Debian repository.
//!
//! Applied per repository (each is its own `.solv`) when its primary.xml is parsed, before the
//! parsed metadata is cached, so a warm resolve reads the lists in that order as they are.

use super::dep::Cmp;
use super::repodata::{KINDS, Kind, NONE, RepoData};
use std::collections::HashMap;

const KIND_LIST: [Kind; KINDS] = [
    Kind::Provides,
    Kind::Requires,
    Kind::Conflicts,
    Kind::Obsoletes,
    Kind::Recommends,
    Kind::Supplements,
    Kind::Suggests,
    Kind::Enhances,
];

/// Puts every package's recommendations of one repository's arena (as parsed from its
/// primary.xml, in primary's order) into libsolv's order. Done once, before the arena is
/// cached, so resolving never pays for it; the order depends on primary's, so it is not
/// applied twice.
pub fn order_recommends(d: &mut RepoData) {
    let rank = recommends_rank(d, 0..d.len());
    d.sort_recommends(&rank);
}

/// A rank per dependency id (lower: earlier in libsolv's order) for the dependencies that
/// appear in a recommends list of two or more; `NONE` for the others.
fn recommends_rank(d: &RepoData, pkgs: std::ops::Range<usize>) -> Vec<u32> {
    let mut rank = vec![NONE; d.dep_count()];
    rank_repo(d, pkgs, &mut rank);
    rank
}

/// A string or a relation of libsolv's pool, as the writer numbers them. Strings are the
/// arena's ids, then ids after them for strings only rich dependencies spell out; a version
/// the arena has in parts is its (epoch, version, release) words.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Node {
    Str(u32),
    Rel(u32),
    Evr(u32, u32, u32),
}

/// libsolv's comparison flags (`REL_GT` 1, `REL_EQ` 2, `REL_LT` 4) and rich operators, as
/// one code per relation kind.
fn cmp_code(c: Cmp) -> u8 {
    match c {
        Cmp::Gt => 1,
        Cmp::Eq => 2,
        Cmp::Ge => 3,
        Cmp::Lt => 4,
        Cmp::Le => 6,
    }
}

fn rich_op(word: &str) -> Option<u8> {
    let ops = ["and", "or", "if", "else", "unless", "with", "without"];
    ops.iter().position(|&o| o == word).map(|i| 16 + i as u8)
}

const OP_IF: u8 = 18;
const OP_ELSE: u8 = 19;
const OP_UNLESS: u8 = 20;

/// The strings and relations one repository's `.solv` writer counts, with their need.
struct Counts<'a> {
    d: &'a RepoData,
    /// strings the arena does not have, numbered from its string count on
    strs: HashMap<&'a str, u32>,
    texts: Vec<&'a str>,
    str_need: Vec<u32>,
    rels: HashMap<(Node, u8, Node), u32>,
    parts: Vec<(Node, Node)>,
    rel_need: Vec<u32>,
}

impl<'a> Counts<'a> {
    fn new(d: &'a RepoData) -> Self {
        Counts {
            d,
            strs: HashMap::new(),
            texts: Vec::new(),
            str_need: vec![0; d.str_count()],
            rels: HashMap::new(),
            parts: Vec::new(),
            rel_need: Vec::new(),
        }
    }

    fn text(&self, i: u32) -> &'a str {
        let n = self.d.str_count() as u32;
        if i < n {
            self.d.str(i)
        } else {
            self.texts[(i - n) as usize]
        }
    }

    fn s(&mut self, text: &'a str) -> Node {
        if let Some(i) = self.d.lookup(text) {
            return Node::Str(i);
        }
        if let Some(&i) = self.strs.get(text) {
            return Node::Str(i);
        }
        let i = self.str_need.len() as u32;
        self.strs.insert(text, i);
        self.texts.push(text);
        self.str_need.push(0);
        Node::Str(i)
    }

    /// A version as the arena keeps it when it has its parts (`e:v-r`, epoch 0 left out).
    fn evr(&mut self, text: &'a str) -> Node {
        let (e, rest) = match text.split_once(':') {
            Some((e, rest)) if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
                (e.parse::<u32>().ok().map(|e| e + 1), rest)
            }
            _ => (Some(0), text),
        };
        let (v, r) = match rest.rsplit_once('-') {
            Some((v, r)) => (v, Some(r)),
            None => (rest, None),
        };
        let ids = (
            e,
            self.d.lookup(v),
            r.map_or(Some(NONE), |r| self.d.lookup(r)),
        );
        match ids {
            (Some(e), Some(v), Some(r)) => Node::Evr(if e == 1 { 0 } else { e }, v, r),
            _ => self.s(text),
        }
    }

    /// libsolv's `pool_rel2id`: each distinct relation once, numbered as made.
    fn rel(&mut self, name: Node, op: u8, evr: Node) -> Node {
        let next = self.parts.len() as u32;
        let i = *self.rels.entry((name, op, evr)).or_insert(next);
        if i == next {
            self.parts.push((name, evr));
            self.rel_need.push(0);
        }
        Node::Rel(i)
    }

    fn bump(&mut self, n: Node) {
        match n {
            Node::Str(i) => self.str_need[i as usize] += 1,
            Node::Rel(i) => self.rel_need[i as usize] += 1,
            Node::Evr(..) => {}
        }
    }

    /// A dependency as libsolv's rpm-md parser makes it: a name, a relation to a version,
    /// or a rich dependency (`pool_parserpmrichdep`; one it cannot parse stays a name).
    fn dep(&mut self, x: u32) -> Node {
        let d = self.d;
        let r = d.dep(x);
        if let Some((c, _)) = r.range {
            let name = Node::Str(r.name_id);
            let w = d.dep_record(x);
            let evr = Node::Evr(if w[2] == 1 { 0 } else { w[2] }, w[3], w[4]);
            return self.rel(name, cmp_code(c), evr);
        }
        if r.name.starts_with('(') {
            let mut at = 0;
            if let Some(n) = self.rich(r.name.as_bytes(), &mut at, 0)
                && at == r.name.len()
            {
                return n;
            }
        }
        self.s(r.name)
    }

    /// libsolv's `parseRichDep`: `a op b op c` nests to the right, `(a op (b op c))`.
    fn rich(&mut self, t: &'a [u8], at: &mut usize, chain: u8) -> Option<Node> {
        let text = |a: usize, b: usize| std::str::from_utf8(&t[a..b]).unwrap_or("");
        let mut p = *at;
        let spaces = |p: &mut usize| {
            while t.get(*p) == Some(&b' ') {
                *p += 1;
            }
        };
        if chain == 0 {
            if t.get(p) != Some(&b'(') {
                return None;
            }
            p += 1;
        }
        spaces(&mut p);
        let id = match t.get(p) {
            None | Some(b')') => return None,
            Some(b'(') => self.rich(t, &mut p, 0)?,
            Some(_) => {
                let n = p;
                p = word_end(t, p);
                if n == p {
                    return None;
                }
                let mut id = self.s(text(n, p));
                spaces(&mut p);
                let mut fl = 0u8;
                while let Some(&c) = t.get(p) {
                    fl |= match c {
                        b'<' => 4,
                        b'=' => 2,
                        b'>' => 1,
                        _ => break,
                    };
                    p += 1;
                }
                if fl != 0 {
                    spaces(&mut p);
                    let mut n = p;
                    p = word_end(t, p);
                    if p - n > 2 && t[n] == b'0' && t[n + 1] == b':' {
                        n += 2;
                    }
                    if n == p {
                        return None;
                    }
                    let evr = self.evr(text(n, p));
                    id = self.rel(id, fl, evr);
                }
                id
            }
        };
        spaces(&mut p);
        match t.get(p) {
            None => return None,
            Some(b')') => {
                *at = p + 1;
                return Some(id);
            }
            Some(_) => {}
        }
        let n = p;
        while t.get(p).is_some_and(|&c| c != b' ') {
            p += 1;
        }
        let op = rich_op(text(n, p))?;
        let mut chain = chain;
        if (chain == OP_IF || chain == OP_UNLESS) && op == OP_ELSE {
            chain = 0;
        }
        if chain != 0 && op != chain {
            return None;
        }
        let evr = self.rich(t, &mut p, op)?;
        *at = p;
        Some(self.rel(id, op, evr))
    }
}

/// libsolv's `skipnonwhite`: to a space, a comma or an unbalanced `)`.
fn word_end(t: &[u8], mut p: usize) -> usize {
    let mut depth = 0i32;
    while let Some(&c) = t.get(p) {
        if c == b' ' || c == b',' {
            break;
        }
        if c == b')' {
            if depth <= 0 {
                break;
            }
            depth -= 1;
        }
        if c == b'(' {
            depth += 1;
        }
        p += 1;
    }
    p
}

fn rank_repo(d: &RepoData, pkgs: std::ops::Range<usize>, rank: &mut [u32]) {
    let mut c = Counts::new(d);
    let mut node: Vec<Option<Node>> = vec![None; d.dep_count()];
    for p in pkgs.clone() {
        for s in [d.name_id(p), d.arch_id(p)]
            .into_iter()
            .chain(d.solv_strs(p))
        {
            if s != NONE {
                c.str_need[s as usize] += 1;
            }
        }
        for k in KIND_LIST {
            for &x in d.deps(p, k) {
                let n = match node[x as usize] {
                    Some(n) => n,
                    None => {
                        let n = c.dep(x);
                        node[x as usize] = Some(n);
                        n
                    }
                };
                c.bump(n);
            }
        }
    }
    // a used relation uses its parts: strings once, relations with more need than its own
    for r in (0..c.parts.len()).rev() {
        let need = c.rel_need[r];
        if need == 0 {
            continue;
        }
        let (a, b) = c.parts[r];
        for part in [a, b] {
            match part {
                Node::Str(s) => c.str_need[s as usize] += 1,
                Node::Evr(..) => {}
                Node::Rel(q) => {
                    let q = q as usize;
                    c.rel_need[q] = c.rel_need[q].max(need + 1);
                }
            }
        }
    }
    let mut strs: Vec<(u32, u32)> = Vec::new();
    let mut rels: Vec<(u32, u32)> = Vec::new();
    for p in pkgs {
        let recs = d.deps(p, Kind::Recommends);
        if recs.len() < 2 {
            continue;
        }
        for &x in recs {
            match node[x as usize] {
                Some(Node::Rel(r)) => rels.push((r, x)),
                Some(Node::Str(s)) => strs.push((s, x)),
                _ => {}
            }
        }
    }
    strs.sort_unstable_by(|a, b| {
        let (na, nb) = (c.str_need[a.0 as usize], c.str_need[b.0 as usize]);
        nb.cmp(&na)
            .then_with(|| c.text(a.0).cmp(c.text(b.0)))
            .then(a.1.cmp(&b.1))
    });
    rels.sort_unstable_by(|a, b| {
        let (na, nb) = (c.rel_need[a.0 as usize], c.rel_need[b.0 as usize]);
        nb.cmp(&na).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1))
    });
    // the same string or relation has one rank
    let mut next = 0u32;
    let mut last = None;
    let all = strs
        .iter()
        .map(|&(s, x)| (Node::Str(s), x))
        .chain(rels.iter().map(|&(r, x)| (Node::Rel(r), x)));
    for (n, x) in all {
        if last.is_some_and(|l| l != n) {
            next += 1;
        }
        rank[x as usize] = next;
        last = Some(n);
    }
}
