//! The solver: libsolv's algorithm on our pool, so that its answers are zypper's.
//!
//! Rules are clauses over package literals (see `rules.rs`): one per requirement
//! (`-A | B1 | B2 ...`), conflict and obsoletion (`-A | -B`), one per pair of packages with the
//! same name, and one per job. Package rules are sorted and deduplicated like libsolv's
//! `solver_unifyrules`, because the order in which unfulfilled rules are visited decides which
//! alternatives get picked. The main loop is libsolv's `solver_run_sat`: assertions, then the
//! jobs, then every unfulfilled rule in rule order (postponing those where the policy leaves
//! more than one candidate), then weak dependencies when asked for. Propagation uses two
//! watched literals; a conflict is analyzed to its first unique implication point, the learnt
//! rule is added and the solver jumps back (CDCL, as libsolv's `analyze`). Among candidates the
//! policy is libsolv's `policy_filter_unwanted`: repository priority, best version per name,
//! packages obsoleted by another candidate out, recommended ones first, then its reordering
//! (older versions and lower common provides last, installed first), else name order.

use super::dep::Rich;
use super::repodata::Kind;
use super::rules::{Alternatives, Lit, Providers, holds, lit, positive, suse_idiom, var};
use super::{Pool, Problem, Request};
use std::cmp::Ordering;
use std::collections::HashSet;

#[derive(Clone, Debug)]
enum Why {
    Job,
    /// A package of the base (installed, cannot change).
    Installed(usize),
    /// The package and the dependency (id).
    Requires(usize, u32),
    Conflicts(usize, u32),
    Obsoletes(usize, u32),
    SameName(usize, usize),
    /// Learnt from a conflict; the rules it was derived from.
    Learnt(Vec<u32>),
}

struct Rules {
    start: Vec<u32>,
    lits: Vec<Lit>,
    why: Vec<Why>,
}

impl Rules {
    fn get(&self, r: usize) -> &[Lit] {
        let end = self
            .start
            .get(r + 1)
            .map(|&e| e as usize)
            .unwrap_or(self.lits.len());
        &self.lits[self.start[r] as usize..end]
    }
    fn len(&self) -> usize {
        self.start.len()
    }
    fn push(&mut self, lits: &[Lit], why: Why) -> usize {
        self.start.push(self.lits.len() as u32);
        self.lits.extend_from_slice(lits);
        self.why.push(why);
        self.start.len() - 1
    }
}

enum Outcome {
    Level(u32),
    /// A conflict at the assertion level: the rule that failed.
    Unsolvable(usize),
}

struct Solver<'p> {
    pool: &'p Pool,
    pr: Providers<'p>,
    rules: Rules,
    /// Index of the first job rule (package rules come before).
    jobrules: usize,
    jobrules_end: usize,
    /// Per package: `level` when installed, `-level` when not, 0 when undecided.
    dm: Vec<i32>,
    trail: Vec<Lit>,
    /// Per package: the rule that implied its decision (none for free decisions).
    reason: Vec<Option<u32>>,
    /// The two watched positions of each rule (rules of two literals or more).
    watched: Vec<[u32; 2]>,
    /// Per literal slot (2 * var + negative): rules watching that literal.
    watches: Vec<Vec<u32>>,
    propagated: usize,
    installed: Vec<bool>,
    has_installed: bool,
    recommended: Vec<bool>,
    /// Per package: suggested by a package decided for installation (libsolv's suggestsmap,
    /// kept up to date together with `recommended`).
    suggested: Vec<bool>,
    recommends_index: usize,
    /// Clauses of complex recommendations (and suggestions: `true`) whose conditions are not
    /// decided yet (libsolv's `recommendscplxq`): their packages count as recommended once
    /// every condition is installed.
    postponed: Vec<(Vec<Lit>, bool)>,
    /// Open choices (libsolv's branches): candidates, whether each was tried, and the level
    /// the choice was made on.
    branches: Vec<Branch>,
    /// Packages with supplements, in id order (the only ones weak resolution looks at).
    supplementers: Vec<usize>,
}

struct Branch {
    cands: Vec<(usize, bool)>,
    level: u32,
}

fn slot(l: Lit) -> usize {
    2 * var(l) + usize::from(l < 0)
}

impl<'p> Solver<'p> {
    fn value(&self, l: Lit) -> i32 {
        let d = self.dm[var(l)];
        if l > 0 { d } else { -d }
    }

    fn is_true(&self, l: Lit) -> bool {
        self.value(l) > 0
    }

    fn decide(&mut self, l: Lit, level: u32, why: Option<u32>) {
        let v = var(l);
        self.dm[v] = if l > 0 { level as i32 } else { -(level as i32) };
        self.reason[v] = why;
        self.trail.push(l);
    }

    fn level_of(&self, v: usize) -> u32 {
        self.dm[v].unsigned_abs()
    }

    fn add_rule(&mut self, lits: &[Lit], why: Why) -> usize {
        let r = self.rules.push(lits, why);
        self.watched.push([0, 1]);
        if lits.len() >= 2 {
            self.watches[slot(lits[0])].push(r as u32);
            self.watches[slot(lits[1])].push(r as u32);
        }
        r
    }

    /// Unit propagation from the trail; returns a violated rule.
    fn propagate(&mut self, level: u32) -> Option<usize> {
        while self.propagated < self.trail.len() {
            let falsified = -self.trail[self.propagated];
            self.propagated += 1;
            let s = slot(falsified);
            let mut list = std::mem::take(&mut self.watches[s]);
            let mut i = 0;
            let mut conflict = None;
            while i < list.len() {
                let r = list[i] as usize;
                let start = self.rules.start[r] as usize;
                let lits = self.rules.get(r);
                let w = self.watched[r];
                let (me, other) = if lits[w[0] as usize] == falsified {
                    (0, w[1])
                } else {
                    (1, w[0])
                };
                let other_lit = lits[other as usize];
                if self.is_true(other_lit) {
                    i += 1;
                    continue;
                }
                // look for a replacement watch
                let mut found = None;
                for (k, &l) in lits.iter().enumerate() {
                    if k as u32 != w[0] && k as u32 != w[1] && self.value(l) >= 0 {
                        found = Some(k);
                        break;
                    }
                }
                if let Some(k) = found {
                    let nl = self.rules.lits[start + k];
                    self.watched[r][me] = k as u32;
                    self.watches[slot(nl)].push(r as u32);
                    list.swap_remove(i);
                    continue;
                }
                if self.value(other_lit) == 0 {
                    self.decide(other_lit, level, Some(r as u32));
                    i += 1;
                    continue;
                }
                conflict = Some(r);
                break;
            }
            // rules moved elsewhere were removed from `list`; keep the rest
            let moved_in = std::mem::take(&mut self.watches[s]);
            list.extend(moved_in);
            self.watches[s] = list;
            if conflict.is_some() {
                return conflict;
            }
        }
        None
    }

    fn revert(&mut self, level: u32) {
        while let Some(&l) = self.trail.last() {
            let v = var(l);
            if self.level_of(v) <= level {
                break;
            }
            self.trail.pop();
            self.dm[v] = 0;
            self.reason[v] = None;
        }
        self.propagated = self.propagated.min(self.trail.len());
        while self.branches.last().is_some_and(|b| b.level >= level) {
            self.branches.pop();
        }
        if self.recommends_index > self.trail.len() {
            self.recommends_index = 0;
            self.recommended.iter_mut().for_each(|x| *x = false);
            self.suggested.iter_mut().for_each(|x| *x = false);
            self.postponed.clear();
        }
    }

    /// libsolv's `analyze`: the first unique implication point, a learnt rule and the level
    /// to jump back to.
    fn analyze(&mut self, level: u32, conflict: usize) -> (Vec<Lit>, u32, Vec<u32>) {
        let mut seen: HashSet<usize> = HashSet::new();
        let mut learnt: Vec<Lit> = vec![0];
        let mut back = 1;
        let mut num = 0;
        let mut used: Vec<u32> = vec![conflict as u32];
        let mut idx = self.trail.len();
        let mut rule = conflict;
        let uip = loop {
            for &l in self.rules.get(rule) {
                let v = var(l);
                if seen.contains(&v) {
                    continue;
                }
                let lv = self.level_of(v);
                if lv <= 1 {
                    continue;
                }
                seen.insert(v);
                if lv == level {
                    num += 1;
                } else {
                    learnt.push(l);
                    back = back.max(lv);
                }
            }
            let v = loop {
                idx -= 1;
                let v = var(self.trail[idx]);
                if seen.contains(&v) {
                    break v;
                }
            };
            num -= 1;
            if num == 0 {
                break self.trail[idx];
            }
            rule = self.reason[v].expect("implied literal has a reason") as usize;
            used.push(rule as u32);
        };
        learnt[0] = -uip;
        (learnt, back, used)
    }

    /// libsolv's `setpropagatelearn`: decide, propagate, learn from conflicts.
    fn set_propagate_learn(&mut self, mut level: u32, decision: Lit) -> Outcome {
        if decision != 0 {
            level += 1;
            self.decide(decision, level, None);
        }
        loop {
            let Some(c) = self.propagate(level) else {
                return Outcome::Level(level);
            };
            if level <= 1 {
                return Outcome::Unsolvable(c);
            }
            let (learnt, back, used) = self.analyze(level, c);
            self.revert(back);
            level = back;
            // watch the unit literal and one at the jump level
            let mut lits = learnt;
            if lits.len() > 2 {
                let best = (1..lits.len())
                    .max_by_key(|&k| (self.level_of(var(lits[k])), std::cmp::Reverse(k)))
                    .unwrap();
                lits.swap(1, best);
            }
            let r = self.add_rule(&lits, Why::Learnt(used));
            self.decide(lits[0], level, Some(r as u32));
        }
    }

    // ---- policy -------------------------------------------------------------------------

    /// libsolv's `policy_update_recommendsmap`: the packages recommended (and suggested) by
    /// the packages decided for installation since the last call. A complex recommendation
    /// counts clause by clause (CNF, as libsolv's `check_complex_dep`): the packages of a
    /// clause whose conditions (negative literals) are all installed; a clause with an
    /// undecided condition waits in `postponed`.
    fn update_recommended(&mut self) {
        if self.recommends_index >= self.trail.len() {
            return;
        }
        let mut clauses: Vec<(Vec<Lit>, bool)> = std::mem::take(&mut self.postponed);
        while self.recommends_index < self.trail.len() {
            let l = self.trail[self.recommends_index];
            self.recommends_index += 1;
            if l < 0 {
                continue;
            }
            let pool = self.pool;
            let p = var(l);
            for (list, suggests) in [
                (pool.deps(p, Kind::Recommends), false),
                (pool.deps(p, Kind::Suggests), true),
            ] {
                for &d in list {
                    let map = if suggests {
                        &mut self.suggested
                    } else {
                        &mut self.recommended
                    };
                    match self.pr.alternatives(d) {
                        Alternatives::Always => {}
                        Alternatives::Any(prov) => prov.iter().for_each(|&q| map[q] = true),
                        Alternatives::Complex => {
                            let cnf = self.pr.parse(d).and_then(|r| self.pr.cnf(&r, false));
                            clauses.extend(cnf.into_iter().flatten().map(|c| (c, suggests)));
                        }
                    }
                }
            }
        }
        for (c, suggests) in clauses {
            // sorted: the conditions come first
            if c.iter().any(|&l| l < 0 && self.dm[var(l)] < 0) {
                continue; // a condition will not be installed
            }
            if c.iter().any(|&l| l < 0 && self.dm[var(l)] == 0) {
                self.postponed.push((c, suggests));
                continue;
            }
            let map = if suggests {
                &mut self.suggested
            } else {
                &mut self.recommended
            };
            c.iter()
                .filter(|&&l| l > 0)
                .for_each(|&l| map[var(l)] = true);
        }
    }

    /// Whether a package supplements something that is installed (decided so far).
    fn supplementing(&mut self, p: usize) -> bool {
        let pool = self.pool;
        self.fulfilled_any(pool.deps(p, Kind::Supplements))
    }

    /// Whether a package enhances something that is installed (libsolv's
    /// `solver_is_enhancing`).
    fn enhancing(&mut self, p: usize) -> bool {
        let pool = self.pool;
        self.fulfilled_any(pool.deps(p, Kind::Enhances))
    }

    /// Whether one of `sup` holds for the packages decided so far (libsolv's
    /// `solver_dep_fulfilled`, with SUSE's `packageand()` read as `and`).
    fn fulfilled_any(&mut self, sup: &'p [u32]) -> bool {
        if sup.is_empty() {
            return false;
        }
        let dm = &self.dm;
        let pr = &mut self.pr;
        let on = |q: usize| dm[q] > 0;
        sup.iter().any(|&d| {
            if pr.is_rich(d) {
                pr.parse(d).is_some_and(|r| holds(pr, &r, &on))
            } else if let Some(r) = suse_idiom(pr.pool.dep(d).name) {
                holds(pr, &r, &on)
            } else {
                pr.simple(d).is_some_and(|l| l.iter().any(|&q| dm[q] > 0))
            }
        })
    }

    fn filter(&mut self, dq: &mut Vec<usize>, reorder: bool) {
        if dq.len() > 1 {
            self.filter_recommend(dq);
        }
        if dq.len() > 1 {
            self.prune_to_recommended(dq);
        }
        if dq.len() > 1 && reorder {
            self.dislike_old_versions(dq);
            self.sort_by_common_dep(dq);
            if self.has_installed {
                // move_installed_to_front
                let (mut front, back): (Vec<usize>, Vec<usize>) =
                    dq.iter().partition(|&&p| self.installed_name(p).is_some());
                front.extend(back);
                *dq = front;
            }
            self.prefer_suggested(dq);
        }
    }

    /// libsolv's `prefer_suggested`: candidates that a package decided for installation
    /// suggests, or that enhance one, go first (installed packages count as suggested); the
    /// order within each group stays.
    fn prefer_suggested(&mut self, dq: &mut Vec<usize>) {
        self.update_recommended();
        let mut back = Vec::new();
        let mut front = Vec::with_capacity(dq.len());
        for &p in dq.iter() {
            if self.installed[p] || self.suggested[p] || self.enhancing(p) {
                front.push(p);
            } else {
                back.push(p);
            }
        }
        front.extend(back);
        *dq = front;
    }

    fn installed_name(&self, p: usize) -> Option<usize> {
        if !self.has_installed {
            return None;
        }
        let pool = self.pool;
        pool.named(pool.name_id(p)).find(|&q| self.installed[q])
    }

    /// libsolv's `prune_to_best_version`: one package per name (the highest version;
    /// installed first, then the lower id on a tie), sorted by name, then `prune_obsoleted`.
    fn best_version(&self, dq: &mut Vec<usize>) {
        let pool = self.pool;
        let inst = &self.installed;
        dq.sort_by(|&a, &b| {
            pool.name(a)
                .as_bytes()
                .cmp(pool.name(b).as_bytes())
                .then_with(|| inst[b].cmp(&inst[a]))
                .then_with(|| a.cmp(&b))
        });
        let mut out: Vec<usize> = Vec::with_capacity(dq.len());
        for &p in dq.iter() {
            match out.last_mut() {
                Some(best) if pool.name_id(*best) == pool.name_id(p) => {
                    if evr_compare(pool, *best, p) == Ordering::Less {
                        *best = p;
                    }
                }
                _ => out.push(p),
            }
        }
        if out.len() > 1 {
            // a candidate obsoleted by another one (of another name) goes, unless they
            // obsolete each other
            // (libsolv's prune_obsoleted: each candidate's obsoletes looked up once, not
            // every pair compared)
            let by = obsoleters(pool, &out);
            let keep: Vec<usize> = out
                .iter()
                .enumerate()
                .filter(|&(i, _)| !by[i].iter().any(|&o| !by[o].contains(&i)))
                .map(|(_, &p)| p)
                .collect();
            if !keep.is_empty() {
                out = keep;
            }
        }
        *dq = out;
    }

    fn prune_to_recommended(&mut self, dq: &mut Vec<usize>) {
        let ninst = dq.iter().filter(|&&p| self.installed[p]).count();
        if dq.len() - ninst < 2 {
            return;
        }
        self.update_recommended();
        let mut keep = Vec::new();
        for &p in dq.iter() {
            if self.installed[p] || self.recommended[p] || self.supplementing(p) {
                keep.push(p);
            }
        }
        if keep.iter().any(|&p| !self.installed[p]) {
            *dq = keep;
        }
    }

    /// Candidates of which a newer version (same name and architecture, same priority) exists
    /// go to the back.
    fn dislike_old_versions(&self, dq: &mut Vec<usize>) {
        let pool = self.pool;
        let bad = |p: usize| {
            if self.installed[p] {
                return false;
            }
            let (arch, prio) = (pool.arch(p), pool.priority(p));
            pool.named(pool.name_id(p)).any(|q| {
                let qprio = pool.priority(q);
                q != p
                    && !self.installed[q]
                    && pool.arch(q) == arch
                    && (qprio < prio
                        || (qprio == prio && evr_compare(pool, q, p) == Ordering::Greater))
            })
        };
        let (mut good, worse): (Vec<usize>, Vec<usize>) = dq.iter().partition(|&&p| !bad(p));
        good.extend(worse);
        *dq = good;
    }

    /// libsolv's `sort_by_common_dep`: among candidates providing the same name with `=` (or
    /// `<`) versions, those with lower versions go back.
    fn sort_by_common_dep(&self, dq: &mut Vec<usize>) {
        let pool = self.pool;
        // (candidate index, provide name, evr, is "<")
        type Ent<'a> = (usize, u32, super::evr::EvrRef<'a>, bool);
        let mut ents: Vec<Ent<'_>> = Vec::new();
        for (i, &p) in dq.iter().enumerate() {
            for &d in pool.deps(p, Kind::Provides) {
                let d = pool.dep(d);
                let Some((cmp, evr)) = d.range else {
                    continue;
                };
                use super::dep::Cmp;
                match cmp {
                    Cmp::Eq => {
                        // an evr that prints as 4 or more hex digits is a hash
                        let v = evr.version;
                        if evr.epoch.is_none_or(|e| e == 0)
                            && evr.release.is_none()
                            && v.len() >= 4
                            && v.bytes().all(|b| matches!(b, b'a'..=b'f' | b'0'..=b'9'))
                        {
                            continue;
                        }
                        ents.push((i, d.name_id, evr, false));
                    }
                    Cmp::Lt | Cmp::Le => ents.push((i, d.name_id, evr, true)),
                    _ => {}
                }
            }
        }
        if ents.len() < 2 {
            return;
        }
        let cmp = |a: &Ent<'_>, b: &Ent<'_>| {
            a.1.cmp(&b.1).then_with(|| {
                let r = b.2.cmp_match(a.2);
                if r == Ordering::Equal && (a.3 || b.3) {
                    if !b.3 {
                        return Ordering::Greater;
                    }
                    if !a.3 {
                        return Ordering::Less;
                    }
                }
                r
            })
        };
        ents.sort_by(cmp);
        let mut badness = vec![0u32; dq.len()];
        let mut bad = 0;
        let mut havebad = false;
        for k in 0..ents.len() {
            if k > 0 && ents[k - 1].1 == ents[k].1 {
                if ents[k - 1].0 != ents[k].0 && cmp(&ents[k - 1], &ents[k]) == Ordering::Less {
                    bad += 1;
                    havebad = true;
                }
            } else {
                bad = 0;
            }
            badness[ents[k].0] += bad;
        }
        if !havebad {
            return;
        }
        for (i, &p) in dq.iter().enumerate() {
            if self.installed[p] {
                badness[i] = 0;
            }
        }
        let mut order: Vec<usize> = (0..dq.len()).collect();
        order.sort_by_key(|&i| badness[i]); // stable
        *dq = order.into_iter().map(|i| dq[i]).collect();
    }

    // ---- the main loop --------------------------------------------------------------------

    fn select_and_install(&mut self, level: u32, dq: &mut Vec<usize>) -> Outcome {
        if dq.len() > 1 {
            self.filter(dq, true);
        }
        if dq.len() > 1 && self.has_installed {
            // prune_dq_for_future_installed: prefer candidates that replace an installed one
            let repl: Vec<usize> = dq
                .iter()
                .copied()
                .filter(|&p| self.installed_name(p).is_some())
                .collect();
            if !repl.is_empty() {
                *dq = repl;
            }
        }
        if dq.len() > 1 {
            self.branches.push(Branch {
                cands: dq.iter().enumerate().map(|(i, &p)| (p, i == 0)).collect(),
                level,
            });
        }
        tracing::trace!("installing {}", self.nevra(dq[0]));
        self.set_propagate_learn(level, lit(dq[0]))
    }

    /// libsolv's auto-minimization: where a choice passed over a recommended (or
    /// supplementing) alternative for one that is not, or an alternative got installed anyway
    /// later, take that alternative instead. Returns the branch and candidate to take.
    fn minimization(&mut self) -> Option<(usize, usize)> {
        if self.branches.is_empty() {
            return None;
        }
        self.update_recommended();
        let mut last = None;
        for b in (0..self.branches.len()).rev() {
            let l = self.branches[b].level as i32;
            let mut lastsi = None;
            let mut direct = false;
            for i in 0..self.branches[b].cands.len() {
                let (p, tried) = self.branches[b].cands[i];
                if tried {
                    continue;
                }
                if self.dm[p] > l {
                    last = Some((b, i));
                    direct = true;
                    break;
                }
                if lastsi.is_none() && (self.recommended[p] || self.supplementing(p)) {
                    lastsi = Some(i);
                }
            }
            if direct {
                continue;
            }
            if let Some(si) = lastsi {
                for i in 0..self.branches[b].cands.len() {
                    let (p, tried) = self.branches[b].cands[i];
                    if !tried || self.dm[p] != l + 1 {
                        continue;
                    }
                    if self.installed_name(p).is_some() {
                        continue;
                    }
                    if !(self.recommended[p] || self.supplementing(p)) {
                        last = Some((b, si));
                        break;
                    }
                }
            }
        }
        last
    }

    /// libsolv's `takebranch`.
    fn take_branch(&mut self, b: usize, i: usize) -> Outcome {
        let level = self.branches[b].level;
        self.branches[b].cands[i].1 = true;
        let p = self.branches[b].cands[i].0;
        tracing::trace!(
            "minimizing {} -> {level} with {}",
            self.dm[p],
            self.nevra(p)
        );
        self.branches[b].level = 0;
        self.revert(level);
        self.branches[b].level = level;
        self.set_propagate_learn(level, lit(p))
    }

    fn resolve_jobrules(&mut self, mut level: u32) -> Outcome {
        let oldlevel = level;
        let mut i = self.jobrules;
        while i < self.jobrules_end {
            let mut dq = Vec::new();
            let mut sat = false;
            for &l in self.rules.get(i) {
                match self.value(l) {
                    v if v > 0 => {
                        sat = true;
                        break;
                    }
                    0 => dq.push(var(l)),
                    _ => {}
                }
            }
            if sat || dq.is_empty() {
                i += 1;
                continue;
            }
            let olevel = level;
            match self.select_and_install(level, &mut dq) {
                Outcome::Unsolvable(r) => return Outcome::Unsolvable(r),
                Outcome::Level(l) => level = l,
            }
            if level <= olevel {
                if level == olevel {
                    continue; // try this rule again
                }
                if level < oldlevel {
                    return Outcome::Level(level);
                }
                i = self.jobrules;
                continue;
            }
            i += 1;
        }
        Outcome::Level(level)
    }

    fn resolve_dependencies(&mut self, mut level: u32) -> Outcome {
        let origlevel = level;
        #[derive(PartialEq)]
        enum Postponed {
            None,
            At(usize),
            Done,
        }
        let mut postponed = Postponed::None;
        let mut i = 0usize;
        let mut remaining = self.rules.len();
        let mut dq: Vec<usize> = Vec::new();
        loop {
            if remaining == 0 {
                match postponed {
                    Postponed::At(p) => {
                        i = p;
                        postponed = Postponed::Done;
                        remaining = self.rules.len();
                    }
                    _ => break,
                }
            }
            if i >= self.rules.len() {
                i = 0;
            }
            remaining -= 1;
            let lits = self.rules.get(i);
            if lits.len() < 2 || (lits[0] < 0 && (lits.len() == 2 || self.dm[var(lits[0])] <= 0)) {
                i += 1;
                continue;
            }
            dq.clear();
            let mut skip = false;
            for &l in lits {
                let d = self.dm[var(l)];
                if l < 0 {
                    if d <= 0 {
                        skip = true;
                        break;
                    }
                } else if d > 0 {
                    skip = true;
                    break;
                } else if d == 0 {
                    dq.push(var(l));
                }
            }
            if skip || dq.len() < 2 {
                i += 1;
                continue;
            }
            if postponed != Postponed::Done {
                self.filter(&mut dq, false);
                if dq.len() > 1 {
                    if postponed == Postponed::None {
                        postponed = Postponed::At(i);
                    }
                    i += 1;
                    continue;
                }
            }
            let mut cand = std::mem::take(&mut dq);
            match self.select_and_install(level, &mut cand) {
                Outcome::Unsolvable(r) => return Outcome::Unsolvable(r),
                Outcome::Level(l) => level = l,
            }
            dq = cand;
            if level < origlevel {
                break;
            }
            remaining = self.rules.len();
            i += 1;
        }
        Outcome::Level(level)
    }

    /// The candidates a recommendation offers: undecided providers, none when one is
    /// installed already (libsolv's `add_complex_recommends` for complex ones, where this
    /// holds per clause of the CNF, and a clause whose condition is not installed offers
    /// nothing).
    fn recommended_candidates(&mut self, d: u32, only: Option<&[bool]>, dq: &mut Vec<usize>) {
        let start = dq.len();
        let dm = &self.dm;
        match self.pr.alternatives(d) {
            Alternatives::Always => return,
            Alternatives::Any(prov) => {
                for &q in prov {
                    if dm[q] > 0 {
                        dq.truncate(start);
                        return;
                    }
                    if dm[q] == 0 && only.is_none_or(|m| m[q]) {
                        dq.push(q);
                    }
                }
                // providers are sorted and unique
                return;
            }
            Alternatives::Complex => {}
        }
        {
            let Some(r) = self.pr.parse(d) else { return };
            let Some(clauses) = self.pr.cnf(&r, false) else {
                return;
            };
            'clauses: for c in clauses {
                let mark = dq.len();
                for &l in &c {
                    let v = var(l);
                    if l < 0 {
                        if self.dm[v] <= 0 {
                            dq.truncate(mark);
                            continue 'clauses;
                        }
                    } else if self.dm[v] > 0 {
                        dq.truncate(mark);
                        continue 'clauses;
                    } else if self.dm[v] == 0 && only.is_none_or(|m| m[v]) {
                        dq.push(v);
                    }
                }
            }
        }
        // each candidate once, in first-seen order (what came before `start` is the caller's
        // to deduplicate)
        let mut seen = HashSet::new();
        let mut k = start;
        for i in start..dq.len() {
            let p = dq[i];
            if !seen.insert(p) {
                continue;
            }
            dq[k] = p;
            k += 1;
        }
        dq.truncate(k);
    }

    /// libsolv's `resolve_weak`: supplemented packages, then recommended ones (a branch where
    /// a recommendation has several candidates). Returns the level and whether anything was
    /// decided (then the main loop runs again).
    fn resolve_weak(&mut self, mut level: u32) -> (Outcome, bool) {
        let pool = self.pool;
        tracing::trace!("installing recommended packages");
        let mut dq: Vec<usize> = Vec::new();
        let mut dqs: Vec<usize> = Vec::new();
        for k in 0..self.trail.len() {
            let l = self.trail[k];
            if l < 0 || self.installed[var(l)] {
                continue;
            }
            for &d in pool.deps(var(l), Kind::Recommends) {
                self.recommended_candidates(d, None, &mut dq);
            }
        }
        dq.sort_unstable();
        dq.dedup();
        for k in 0..self.supplementers.len() {
            let p = self.supplementers[k];
            if self.dm[p] == 0 && self.supplementing(p) {
                dqs.push(p);
            }
        }
        let sorted = dq.len();
        for &p in &dqs {
            if dq[..sorted].binary_search(&p).is_err() {
                dq.push(p);
            }
        }
        if dq.is_empty() {
            return (Outcome::Level(level), false);
        }
        if dq.len() == 1 {
            tracing::trace!("installing weak {}", self.nevra(dq[0]));
            return (self.set_propagate_learn(level, lit(dq[0])), true);
        }
        // best versions (libsolv's POLICY_MODE_RECOMMEND: priority, version)
        self.filter_recommend(&mut dq);
        let mut best = vec![false; pool.len()];
        for &p in &dq {
            best[p] = true;
        }
        dqs.retain(|&p| best[p]);
        if dqs.len() > 1 {
            self.dislike_old_versions(&mut dqs);
            self.sort_by_common_dep(&mut dqs);
        }
        let decisioncount = self.trail.len();
        for &p in &dqs {
            if self.dm[p] != 0 {
                continue;
            }
            tracing::trace!("installing supplemented {}", self.nevra(p));
            let olevel = level;
            match self.set_propagate_learn(level, lit(p)) {
                Outcome::Level(l) => level = l,
                u => return (u, true),
            }
            if level <= olevel {
                return (Outcome::Level(level), true);
            }
        }
        if self.trail.len() < decisioncount {
            return (Outcome::Level(level), true);
        }
        for i in 0..decisioncount {
            let l = self.trail[i];
            if l < 0 || self.installed[var(l)] {
                continue;
            }
            // in libsolv's order: the arena's lists are (`solvorder`)
            for &d in pool.deps(var(l), Kind::Recommends) {
                let mut cand = Vec::new();
                self.recommended_candidates(d, Some(&best), &mut cand);
                if cand.is_empty() {
                    continue;
                }
                if cand.len() > 1 {
                    self.filter(&mut cand, true);
                }
                if cand.len() > 1 {
                    self.branches.push(Branch {
                        cands: cand.iter().enumerate().map(|(i, &p)| (p, i == 0)).collect(),
                        level,
                    });
                }
                tracing::trace!("installing recommended {}", self.nevra(cand[0]));
                let olevel = level;
                match self.set_propagate_learn(level, lit(cand[0])) {
                    Outcome::Level(l) => level = l,
                    u => return (u, true),
                }
                if level <= olevel || self.trail.len() < decisioncount {
                    return (Outcome::Level(level), true);
                }
            }
        }
        (Outcome::Level(level), true)
    }

    /// libsolv's `policy_filter_unwanted` in POLICY_MODE_RECOMMEND: repository priority
    /// (zypper: lower number wins; installed packages stay), then best version.
    fn filter_recommend(&mut self, dq: &mut Vec<usize>) {
        let pool = self.pool;
        let inst = &self.installed;
        if let Some(best) = dq
            .iter()
            .filter(|&&p| !inst[p])
            .map(|&p| pool.priority(p))
            .min()
        {
            dq.retain(|&p| inst[p] || pool.priority(p) == best);
        }
        if dq.len() > 1 {
            self.best_version(dq);
        }
    }
}

/// rpm's full EVR order as libsolv's `EVRCMP_COMPARE` (a missing release sorts first).
fn evr_compare(pool: &Pool, a: usize, b: usize) -> Ordering {
    let (x, y) = (pool.evr(a), pool.evr(b));
    x.cmp_match(y)
        .then_with(|| x.release.is_some().cmp(&y.release.is_some()))
}

/// For each of `cands`, the positions of the other candidates that obsolete it (obsoletes
/// match names and versions, not provides, as libsolv does for rpm; never a package of the
/// same name).
fn obsoleters(pool: &Pool, cands: &[usize]) -> Vec<Vec<usize>> {
    let pos: std::collections::HashMap<usize, usize> =
        cands.iter().enumerate().map(|(i, &p)| (p, i)).collect();
    let mut by: Vec<Vec<usize>> = vec![Vec::new(); cands.len()];
    for (oi, &o) in cands.iter().enumerate() {
        let name = pool.name_id(o);
        for &d in pool.deps(o, Kind::Obsoletes) {
            let d = pool.dep(d);
            for q in pool.named(d.name_id) {
                if let Some(&qi) = pos.get(&q)
                    && pool.name_id(q) != name
                    && pool.self_provides(q, d.range)
                    && !by[qi].contains(&oi)
                {
                    by[qi].push(oi);
                }
            }
        }
    }
    by
}

// ---- building the rules ---------------------------------------------------------------------

struct Builder<'s, 'p> {
    s: &'s mut Solver<'p>,
    pkgrules: Vec<(Vec<Lit>, Why)>,
    seen: Vec<bool>,
    queue: Vec<usize>,
}

impl<'p> Builder<'_, 'p> {
    fn visit(&mut self, p: usize) {
        if !self.seen[p] {
            self.seen[p] = true;
            self.queue.push(p);
        }
    }

    fn rule(&mut self, mut lits: Vec<Lit>, why: Why) {
        lits.sort_unstable();
        lits.dedup();
        if lits
            .iter()
            .any(|&l| l < 0 && lits.binary_search(&-l).is_ok())
        {
            return; // fulfils itself
        }
        self.pkgrules.push((lits, why));
    }

    /// libsolv's `solver_addpkgrulesforsolvable`, over the closure of `roots`.
    fn closure(&mut self) {
        let pool = self.s.pool;
        while let Some(n) = self.queue.pop() {
            let me = lit(n);
            let installed = self.s.installed[n];
            if !installed {
                for &d in pool.deps(n, Kind::Requires) {
                    self.requirement(n, d);
                }
            }
            for &d in pool.deps(n, Kind::Conflicts) {
                let blocks = if self.s.pr.is_rich(d) {
                    match self.s.pr.parse(d) {
                        Some(r) => self.s.pr.cnf(&r, true),
                        None => continue,
                    }
                } else {
                    self.s
                        .pr
                        .simple(d)
                        .map(|p| p.iter().map(|&q| vec![-lit(q)]).collect())
                };
                for mut c in blocks.unwrap_or_default() {
                    if c.contains(&-me) && c.len() == 1 {
                        continue; // rpm allows a package to conflict with what it provides
                    }
                    if installed && c.iter().all(|&l| l < 0 && self.s.installed[var(l)]) {
                        continue;
                    }
                    c.push(-me);
                    self.rule(c, Why::Conflicts(n, d));
                }
            }
            let name = pool.name_id(n);
            for &d in pool.deps(n, Kind::Obsoletes) {
                let dr = pool.dep(d);
                for q in pool.named(dr.name_id) {
                    if q != n
                        && pool.name_id(q) != name
                        && pool.self_provides(q, dr.range)
                        && !(installed && self.s.installed[q])
                    {
                        self.rule(vec![-me, -lit(q)], Why::Obsoletes(n, d));
                    }
                }
            }
            if !installed {
                for q in pool.named(name) {
                    if q != n {
                        self.rule(vec![-me, -lit(q)], Why::SameName(n, q));
                    }
                }
            }
            // recommended packages get rules too (libsolv adds them to the closure)
            let mut out = Vec::new();
            for &d in pool.deps(n, Kind::Recommends) {
                self.s.pr.positives(d, &mut out);
            }
            for q in out {
                self.visit(q);
            }
        }
    }

    fn requirement(&mut self, n: usize, d: u32) {
        let me = lit(n);
        let blocks = if self.s.pr.is_rich(d) {
            match self.s.pr.parse(d) {
                Some(r) => self.s.pr.cnf(&r, false),
                None => Some(vec![vec![]]),
            }
        } else {
            match self.s.pr.simple(d) {
                None => return,
                Some(p) => Some(vec![p.iter().map(|&q| lit(q)).collect()]),
            }
        };
        let blocks = blocks.unwrap_or_else(|| vec![vec![]]);
        for mut c in blocks {
            if c.contains(&me) {
                continue;
            }
            for &l in &c {
                if l > 0 {
                    self.visit(var(l));
                }
            }
            c.push(-me);
            self.rule(c, Why::Requires(n, d));
        }
    }
}

/// The candidates of one job: packages of that name, else packages providing it.
pub fn job_candidates(pool: &Pool, job: &super::dep::Dep) -> Vec<usize> {
    let by_name: Vec<usize> = match pool.data().lookup(&job.name) {
        Some(name) => pool
            .named(name)
            .filter(|&i| pool.self_provides(i, job.range_ref()))
            .collect(),
        None => Vec::new(),
    };
    if by_name.is_empty() {
        pool.providers(job)
    } else {
        by_name
    }
}

pub fn solve(pool: &Pool, req: &Request) -> Result<Vec<usize>, Vec<Problem>> {
    let n = pool.len();
    let mut installed = vec![false; n];
    for &i in &req.installed {
        installed[i] = true;
    }
    let mut s = Solver {
        pool,
        pr: Providers::new(pool),
        rules: Rules {
            start: Vec::new(),
            lits: Vec::new(),
            why: Vec::new(),
        },
        jobrules: 0,
        jobrules_end: 0,
        dm: vec![0; n],
        trail: Vec::new(),
        reason: vec![None; n],
        watched: Vec::new(),
        watches: vec![Vec::new(); 2 * n],
        propagated: 0,
        has_installed: !req.installed.is_empty(),
        installed,
        recommended: vec![false; n],
        suggested: vec![false; n],
        recommends_index: 0,
        postponed: Vec::new(),
        branches: Vec::new(),
        supplementers: (0..n)
            .filter(|&p| pool.considered(p) && !pool.deps(p, Kind::Supplements).is_empty())
            .collect(),
    };
    let mut problems = Vec::new();
    let jobs: Vec<Vec<usize>> = req
        .install
        .iter()
        .map(|j| job_candidates(pool, j))
        .collect();
    for (j, c) in req.install.iter().zip(&jobs) {
        if c.is_empty() {
            problems.push(Problem(format!(
                "no package provides '{j}', which was asked to be installed"
            )));
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    // package rules over the closure of the installed packages and the jobs
    let mut b = Builder {
        s: &mut s,
        pkgrules: Vec::new(),
        seen: vec![false; n],
        queue: Vec::new(),
    };
    for &i in &req.installed {
        b.visit(i);
    }
    for c in &jobs {
        for &p in c {
            b.visit(p);
        }
    }
    b.closure();
    if req.recommends {
        // packages supplementing what can be installed (libsolv's addpkgrulesforweak)
        // what each supplementing package names positively, computed once
        let mut named: Vec<(usize, Vec<usize>)> = Vec::new();
        for k in 0..b.s.supplementers.len() {
            let p = b.s.supplementers[k];
            let mut out = Vec::new();
            for &d in pool.deps(p, Kind::Supplements) {
                let r = if b.s.pr.is_rich(d) {
                    b.s.pr.parse(d)
                } else {
                    let dr = pool.dep(d);
                    suse_idiom(dr.name).or_else(|| Some(Rich::Dep(dr.to_dep())))
                };
                if let Some(r) = r {
                    positive(&mut b.s.pr, &r, &mut out);
                }
            }
            named.push((p, out));
        }
        loop {
            let mut added = false;
            for (p, out) in &named {
                if !b.seen[*p] && out.iter().any(|&q| b.seen[q]) {
                    b.visit(*p);
                    added = true;
                }
            }
            if !added {
                break;
            }
            b.closure();
        }
    }
    let mut pkgrules = std::mem::take(&mut b.pkgrules);
    // libsolv's solver_unifyrules: sorted by literals, duplicates removed
    pkgrules.sort_by(|a, b| a.0.cmp(&b.0));
    pkgrules.dedup_by(|a, b| a.0 == b.0);
    let mut units: Vec<usize> = Vec::new();
    for (lits, why) in pkgrules {
        let r = s.add_rule(&lits, why);
        if lits.len() <= 1 {
            units.push(r);
        }
    }
    s.jobrules = s.rules.len();
    for &i in &req.installed {
        let r = s.add_rule(&[lit(i)], Why::Installed(i));
        units.push(r);
    }
    for c in &jobs {
        let lits: Vec<Lit> = c.iter().map(|&p| lit(p)).collect();
        let r = s.add_rule(&lits, Why::Job);
        if lits.len() == 1 {
            units.push(r);
        }
    }
    s.jobrules_end = s.rules.len();

    // assertions (libsolv's makeruledecisions), at level 1
    for &r in &units {
        let lits = s.rules.get(r);
        if lits.is_empty() {
            return Err(vec![s.explain(r)]);
        }
        let l = lits[0];
        match s.value(l) {
            v if v > 0 => {}
            0 => s.decide(l, 1, Some(r as u32)),
            _ => return Err(vec![s.explain_assertions(r, var(l))]),
        }
    }
    let mut level = 1;
    if let Some(c) = s.propagate(level) {
        return Err(vec![s.explain(c)]);
    }
    loop {
        let olevel = level;
        level = match s.resolve_jobrules(level) {
            Outcome::Unsolvable(r) => return Err(vec![s.explain(r)]),
            Outcome::Level(l) => l,
        };
        if level < olevel {
            continue;
        }
        let olevel = level;
        level = match s.resolve_dependencies(level) {
            Outcome::Unsolvable(r) => return Err(vec![s.explain(r)]),
            Outcome::Level(l) => l,
        };
        if level < olevel {
            continue;
        }
        if req.recommends {
            let (o, rerun) = s.resolve_weak(level);
            level = match o {
                Outcome::Unsolvable(r) => return Err(vec![s.explain(r)]),
                Outcome::Level(l) => l,
            };
            if rerun {
                continue;
            }
        }
        if let Some((b, i)) = s.minimization() {
            level = match s.take_branch(b, i) {
                Outcome::Unsolvable(r) => return Err(vec![s.explain(r)]),
                Outcome::Level(l) => l,
            };
            continue;
        }
        break;
    }
    let mut out: Vec<usize> = (0..n).filter(|&p| s.dm[p] > 0 && !s.installed[p]).collect();
    out.sort_by(|&a, &b| {
        pool.name(a)
            .cmp(pool.name(b))
            .then_with(|| pool.arch(a).cmp(pool.arch(b)))
    });
    Ok(out)
}

// ---- explanations -------------------------------------------------------------------------

impl Solver<'_> {
    fn nevra(&self, p: usize) -> String {
        self.pool.nevra(p)
    }

    /// The rules behind a failure at the assertion level, expanded through learnt rules and
    /// the reasons of every literal involved.
    fn involved(&self, start: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen_rules: HashSet<usize> = HashSet::new();
        let mut seen_vars: HashSet<usize> = HashSet::new();
        let mut stack = vec![start];
        while let Some(r) = stack.pop() {
            if !seen_rules.insert(r) {
                continue;
            }
            if let Why::Learnt(from) = &self.rules.why[r] {
                stack.extend(from.iter().map(|&x| x as usize));
            } else {
                out.push(r);
            }
            for &l in self.rules.get(r) {
                let v = var(l);
                if seen_vars.insert(v)
                    && let Some(why) = self.reason[v]
                {
                    stack.push(why as usize);
                }
            }
        }
        out.sort_unstable();
        out
    }

    fn explain_assertions(&self, r: usize, v: usize) -> Problem {
        let mut rules = self.involved(r);
        if let Some(w) = self.reason[v] {
            rules.extend(self.involved(w as usize));
        }
        self.describe(rules)
    }

    fn explain(&self, r: usize) -> Problem {
        self.describe(self.involved(r))
    }

    fn describe(&self, mut rules: Vec<usize>) -> Problem {
        rules.sort_unstable();
        rules.dedup();
        // the jobs first, then what is missing, then what is in the way
        let rank = |w: &Why| match w {
            Why::Job => 0,
            Why::Requires(..) => 1,
            Why::Installed(_) => 2,
            _ => 3,
        };
        rules.sort_by_key(|&r| rank(&self.rules.why[r]));
        let mut lines: Vec<String> = Vec::new();
        for r in rules {
            let lits = self.rules.get(r);
            // the packages of the rule's literals that `keep` accepts, as a list
            let list = |keep: &dyn Fn(Lit) -> bool| {
                let names: Vec<String> = lits
                    .iter()
                    .filter(|&&l| keep(l))
                    .map(|&l| self.nevra(var(l)))
                    .collect();
                names.join(", ")
            };
            let line = match &self.rules.why[r] {
                Why::Job => format!("the request asks for one of: {}", list(&|_| true)),
                Why::Installed(p) => {
                    format!("'{}' is in the base and cannot change", self.nevra(*p))
                }
                Why::Requires(p, d) => {
                    let (d, prov) = (self.pool.dep(*d), list(&|l| l > 0));
                    if prov.is_empty() {
                        format!("nothing provides '{d}' needed by '{}'", self.nevra(*p))
                    } else {
                        format!("'{}' requires '{d}', provided by {prov}", self.nevra(*p))
                    }
                }
                Why::Conflicts(p, d) => format!(
                    "'{}' conflicts with '{}', provided by {}",
                    self.nevra(*p),
                    self.pool.dep(*d),
                    list(&|l| var(l) != *p)
                ),
                Why::Obsoletes(p, d) => format!(
                    "'{}' obsoletes '{}' ({}); a sysext cannot remove packages",
                    self.nevra(*p),
                    self.pool.dep(*d),
                    list(&|l| var(l) != *p)
                ),
                Why::SameName(a, b) => format!(
                    "'{}' and '{}' cannot both be installed (same name)",
                    self.nevra(*a),
                    self.nevra(*b)
                ),
                Why::Learnt(_) => continue,
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
        Problem(lines.join("; "))
    }
}
