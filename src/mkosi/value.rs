//! What one assignment does to a setting's value: mkosi's per-kind parsers.
//!
//! Scalars: the last assignment wins; `Key=` resets to the default. Lists and maps: each
//! assignment appends (maps: later keys win); `Key=` empties them, defaults included. Values are
//! stored in a canonical form (`yes`/`no`, `enabled`/`disabled`/`auto`, absolute paths), every
//! item with its origin.
//!
//! Paths are resolved the way mkosi resolves them: `$VAR` and `~` expanded, relative to the
//! current directory of the parse (the directory of the `mkosi.conf` being read, `%P`), symbolic
//! links of the existing part resolved. That is the only I/O here (existence checks, and listing
//! directories to expand globs of script settings).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use super::matching::{fnmatch, has_magic, parse_bool, parse_feature};
use super::resolved::Tree;
use super::settings::{ARTIFACTS, COMPRESSIONS, Item, Kind, Setting, Split};
use super::{Origin, Valued};

/// A setting's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    One(Valued<String>),
    Many(Vec<Valued<String>>),
    Trees(Vec<Valued<Tree>>),
    Map(BTreeMap<String, Valued<String>>),
}

/// A setting's state in a namespace: `None` after an empty assignment.
pub type Slot = Option<Value>;

impl Value {
    /// The scalar's text.
    pub fn text(&self) -> Option<String> {
        match self {
            Value::One(v) => Some(v.value.clone()),
            _ => None,
        }
    }

    /// The items as text (a scalar is one item; trees are `SOURCE[:TARGET]`).
    pub fn items(&self) -> Vec<String> {
        self.valued().into_iter().map(|v| v.value).collect()
    }

    /// Every item with its origin, as text.
    pub fn valued(&self) -> Vec<Valued<String>> {
        match self {
            Value::One(v) => vec![v.clone()],
            Value::Many(v) => v.clone(),
            Value::Trees(v) => v
                .iter()
                .map(|t| Valued::new(t.value.to_string(), t.origin.clone()))
                .collect(),
            Value::Map(m) => m
                .iter()
                .map(|(k, v)| Valued::new(format!("{k}={}", v.value), v.origin.clone()))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Value::One(_) => false,
            Value::Many(v) => v.is_empty(),
            Value::Trees(v) => v.is_empty(),
            Value::Map(m) => m.is_empty(),
        }
    }

    /// The empty value of a list or map kind; `None` for scalars.
    pub fn empty(kind: &Kind) -> Slot {
        match kind {
            Kind::List {
                item: Item::Tree { .. },
                ..
            } => Some(Value::Trees(Vec::new())),
            Kind::List { .. } | Kind::Artifacts => Some(Value::Many(Vec::new())),
            Kind::Map { .. } => Some(Value::Map(BTreeMap::new())),
            _ => None,
        }
    }

    /// Appends `new` to `self` (lists) or merges it (maps, later keys win); scalars: `new`.
    pub fn merged(&self, new: &Value) -> Value {
        match (self, new) {
            (Value::Many(a), Value::Many(b)) => Value::Many(a.iter().chain(b).cloned().collect()),
            (Value::Trees(a), Value::Trees(b)) => {
                Value::Trees(a.iter().chain(b).cloned().collect())
            }
            (Value::Map(a), Value::Map(b)) => {
                let mut m = a.clone();
                m.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
                Value::Map(m)
            }
            _ => new.clone(),
        }
    }
}

/// What parsing needs from the loader.
pub struct Ctx<'a> {
    /// The current directory of the parse (`%P`).
    pub cwd: &'a Path,
    /// The environment mkosi would run in (for `$VAR`, `~` and `Environment=KEY`).
    pub env: &'a BTreeMap<String, String>,
    pub origin: &'a Origin,
}

/// Applies `Key=raw` (specifiers already expanded) to the setting's current state `old`.
pub fn assign(setting: &Setting, raw: &str, old: Option<&Slot>, cx: &Ctx) -> Result<Slot, String> {
    let old = old.and_then(|s| s.as_ref());
    let one = |v: String| Ok(Some(Value::One(Valued::new(v, cx.origin.clone()))));
    match setting.kind {
        Kind::List { .. } | Kind::Map { .. } | Kind::Artifacts => {}
        _ if raw.is_empty() => return Ok(None),
        _ => {}
    }
    match setting.kind {
        Kind::String | Kind::Raw => one(raw.to_string()),
        Kind::Number => match raw.parse::<u64>() {
            Ok(n) => one(n.to_string()),
            Err(_) => Err(format!("{raw:?} is not a valid non-negative integer")),
        },
        Kind::Filename => {
            check_filename(raw)?;
            one(raw.to_string())
        }
        Kind::Bool => match parse_bool(raw) {
            Some(b) => one(if b { "yes" } else { "no" }.into()),
            None => Err(format!("invalid boolean literal {raw:?}")),
        },
        Kind::Feature => match parse_feature(raw) {
            Some(f) => one(f.into()),
            None => Err(format!(
                "invalid value {raw:?} (expected a boolean or auto)"
            )),
        },
        Kind::Enum(values) => {
            if values.contains(&raw) {
                one(raw.into())
            } else {
                Err(invalid_choice(raw, setting.name, values))
            }
        }
        Kind::EnumOrBool { values, yes, no } => {
            if values.contains(&raw) {
                one(raw.into())
            } else {
                match parse_bool(raw) {
                    Some(b) => one(if b { yes } else { no }.into()),
                    None => Err(invalid_choice(raw, setting.name, values)),
                }
            }
        }
        Kind::Compression => {
            let c = match raw {
                "zst" => "zstd",
                "gzip" => "gz",
                other => other,
            };
            if COMPRESSIONS.contains(&c) {
                one(c.into())
            } else {
                match parse_bool(raw) {
                    Some(b) => one(if b { "zstd" } else { "none" }.into()),
                    None => Err(invalid_choice(raw, setting.name, COMPRESSIONS)),
                }
            }
        }
        Kind::Path {
            required,
            constants,
        } => {
            if constants.contains(&raw) {
                return one(raw.into());
            }
            let p = parse_path(raw, required, cx)?;
            one(p.to_string_lossy().into_owned())
        }
        Kind::Map { pass_through } => {
            let words = shell_split(raw, &[' ', '\n'])?;
            if words.is_empty() {
                return Ok(None);
            }
            let mut map = match old {
                Some(Value::Map(m)) => m.clone(),
                _ => BTreeMap::new(),
            };
            for w in words.iter().filter(|w| !w.is_empty()) {
                let (k, v) = match w.split_once('=') {
                    Some((k, v)) => (k.trim(), v.trim().to_string()),
                    None if pass_through => {
                        (w.trim(), cx.env.get(w.trim()).cloned().unwrap_or_default())
                    }
                    None => (w.trim(), String::new()),
                };
                map.insert(k.to_string(), Valued::new(v, cx.origin.clone()));
            }
            Ok(Some(Value::Map(map)))
        }
        Kind::Artifacts => {
            // mkosi: an empty assignment means "no artifacts", not the default.
            if raw.is_empty() {
                return Ok(Some(Value::Many(Vec::new())));
            }
            if let Some(b) = parse_bool(raw) {
                let names: &[&str] = if b {
                    &["uki", "kernel", "initrd", "partitions"]
                } else {
                    &["uki", "kernel", "initrd"]
                };
                return Ok(Some(Value::Many(
                    names
                        .iter()
                        .map(|n| Valued::new(n.to_string(), cx.origin.clone()))
                        .collect(),
                )));
            }
            let mut items = match old {
                Some(Value::Many(v)) => v.clone(),
                _ => Vec::new(),
            };
            for w in split(raw, Split::CommaSpace)? {
                if !ARTIFACTS.contains(&w.as_str()) {
                    return Err(invalid_choice(&w, setting.name, ARTIFACTS));
                }
                items.push(Valued::new(w, cx.origin.clone()));
            }
            Ok(Some(Value::Many(items)))
        }
        Kind::List {
            split: how,
            item,
            reset,
            sort,
        } => {
            let words = split(raw, how)?;
            if reset && words.is_empty() {
                return Ok(None);
            }
            if let Item::Tree { required } = item {
                let mut items = match old {
                    Some(Value::Trees(v)) => v.clone(),
                    _ => Vec::new(),
                };
                for w in words {
                    let t = parse_tree(&w, required, cx)?;
                    items.push(Valued::new(t, cx.origin.clone()));
                }
                return Ok(Some(Value::Trees(items)));
            }
            let mut items = match old {
                Some(Value::Many(v)) => v.clone(),
                _ => Vec::new(),
            };
            for w in words {
                for v in parse_item(&w, item, setting.name, cx)? {
                    items.push(Valued::new(v, cx.origin.clone()));
                }
            }
            if sort {
                items.sort_by(|a, b| package_key(&a.value).cmp(&package_key(&b.value)));
            }
            Ok(Some(Value::Many(items)))
        }
    }
}

fn invalid_choice(raw: &str, name: &str, values: &[&str]) -> String {
    format!(
        "'{raw}' is not a valid {name}= value (expected one of: {})",
        values.join(", ")
    )
}

fn check_filename(s: &str) -> Result<(), String> {
    let t = s.trim();
    if t == "." || t == ".." || t.contains('/') {
        return Err(format!(
            "{s:?} is not a valid file name (no '/', not . or ..)"
        ));
    }
    Ok(())
}

/// Items of a list value.
fn split(raw: &str, how: Split) -> Result<Vec<String>, String> {
    Ok(match how {
        Split::CommaSpace => raw
            .replace(',', " ")
            .split_whitespace()
            .map(str::to_string)
            .collect(),
        Split::Space => raw
            .split([' ', '\n'])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
        Split::Shell => shell_split(raw, &[' ', '\n'])?
            .into_iter()
            .filter(|w| !w.is_empty())
            .collect(),
    })
}

fn parse_item(w: &str, item: Item, name: &str, cx: &Ctx) -> Result<Vec<String>, String> {
    match item {
        Item::Word => Ok(vec![w.to_string()]),
        Item::Filename => {
            check_filename(w)?;
            Ok(vec![w.to_string()])
        }
        Item::Enum(values) => {
            if values.contains(&w) {
                Ok(vec![w.to_string()])
            } else {
                Err(invalid_choice(w, name, values))
            }
        }
        Item::Include if is_builtin_config(w) => Ok(vec![w.to_string()]),
        Item::Include => Ok(vec![lossy(&parse_path(w, true, cx)?)]),
        Item::Path {
            required,
            globs: false,
        } => Ok(vec![lossy(&parse_path(w, required, cx)?)]),
        Item::Path {
            required,
            globs: true,
        } => glob(w, cx)?
            .iter()
            .map(|m| parse_path(m, required, cx).map(|p| lossy(&p)))
            .collect(),
        Item::Tree { .. } => unreachable!("trees are parsed by parse_tree"),
    }
}

/// mkosi's built-in configs, which `Include=` names without a path.
pub fn is_builtin_config(s: &str) -> bool {
    matches!(
        s,
        "mkosi-initrd" | "mkosi-tools" | "mkosi-vm" | "mkosi-addon"
    )
}

fn lossy(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// mkosi sorts package lists: plain names first, then paths, then rich dependencies.
fn package_key(p: &str) -> (u8, &str) {
    let class = if p.starts_with('(') {
        2
    } else if p.starts_with('/') {
        1
    } else {
        0
    };
    (class, p)
}

fn parse_tree(w: &str, required: bool, cx: &Ctx) -> Result<Tree, String> {
    let (src, target) = match w.split_once(':') {
        Some((s, t)) => (s, Some(t)),
        None => (w, None),
    };
    let source = parse_path(src, required, cx)?;
    let target = match target {
        Some(t) => {
            let t = expand_vars(t, cx.env);
            if !t.starts_with('/') {
                return Err(format!("{t} must be an absolute path"));
            }
            Some(PathBuf::from(t))
        }
        None => None,
    };
    Ok(Tree { source, target })
}

/// mkosi's `parse_path()`: `$VAR` and `~` expanded, made absolute against the current directory
/// and resolved; `required` paths must exist.
pub fn parse_path(value: &str, required: bool, cx: &Ctx) -> Result<PathBuf, String> {
    let expanded = expand_user(&expand_vars(value, cx.env), cx.env);
    let p = cx.cwd.join(&expanded);
    if required && !p.exists() {
        return Err(format!("{value} does not exist"));
    }
    Ok(resolve(&p))
}

/// `Path.resolve()` without `strict`: symbolic links in the existing part resolved, `.` and `..`
/// removed from the rest.
pub fn resolve(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&existing) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return normalize(&out);
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                existing = parent.to_path_buf();
            }
            _ => return normalize(p),
        }
    }
}

/// Removes `.` and `..` lexically.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Python's `os.path.expandvars`: `$NAME` and `${NAME}` of set variables; the rest unchanged.
pub fn expand_vars(s: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, len) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let n = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..n], n)
        };
        match env.get(name) {
            Some(v) if !name.is_empty() => {
                out.push_str(v);
                rest = &after[len..];
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn expand_user(s: &str, env: &BTreeMap<String, String>) -> String {
    match (s.strip_prefix('~'), env.get("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            format!("{home}{rest}")
        }
        _ => s.to_string(),
    }
}

/// Python's `glob.glob` relative to the current directory, sorted: `*`, `?` and `[...]` per path
/// component, hidden names only for patterns starting with `.`; a pattern without glob
/// characters matches itself if it exists. Returns paths as written (relative stays relative).
fn glob(pattern: &str, cx: &Ctx) -> Result<Vec<String>, String> {
    let pattern = expand_user(pattern, cx.env);
    if !has_magic(&pattern) {
        return Ok(if cx.cwd.join(&pattern).exists() {
            vec![pattern]
        } else {
            Vec::new()
        });
    }
    let absolute = pattern.starts_with('/');
    let mut found: Vec<String> = vec![if absolute { "/".into() } else { String::new() }];
    for part in pattern.split('/').filter(|p| !p.is_empty()) {
        let mut next = Vec::new();
        for base in &found {
            let join = |name: &str| {
                if base.is_empty() || base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if !has_magic(part) {
                next.push(join(part));
                continue;
            }
            let dir = cx.cwd.join(if base.is_empty() { "." } else { base });
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut names: Vec<String> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| fnmatch(part, n))
                .collect();
            names.sort();
            next.extend(names.iter().map(|n| join(n)));
        }
        found = next;
    }
    let mut out: Vec<String> = found
        .into_iter()
        .filter(|p| cx.cwd.join(p).exists())
        .collect();
    out.sort();
    Ok(out)
}

/// Python's `shlex` in POSIX mode with `whitespace_split` and no comments: quotes group, `\`
/// escapes outside single quotes (inside double quotes only `"` and `\`).
pub fn shell_split(s: &str, whitespace: &[char]) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if whitespace.contains(&c) => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(format!("no closing quotation in {s:?}")),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(x @ ('"' | '\\')) => cur.push(x),
                            Some(x) => {
                                cur.push('\\');
                                cur.push(x);
                            }
                            None => return Err(format!("no closing quotation in {s:?}")),
                        },
                        Some(x) => cur.push(x),
                        None => return Err(format!("no closing quotation in {s:?}")),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mkosi::settings::get;

    fn cx_in<'a>(cwd: &'a Path, env: &'a BTreeMap<String, String>, o: &'a Origin) -> Ctx<'a> {
        Ctx {
            cwd,
            env,
            origin: o,
        }
    }

    fn apply(name: &str, values: &[&str]) -> Slot {
        let env = BTreeMap::from([("FOO".to_string(), "bar".to_string())]);
        let mut slot: Option<Slot> = None;
        for (i, v) in values.iter().enumerate() {
            let o = Origin::line("f.conf", i as u32 + 1);
            let cx = cx_in(Path::new("/nonexistent-dir"), &env, &o);
            slot = Some(assign(get(name), v, slot.as_ref(), &cx).unwrap());
        }
        slot.unwrap()
    }

    fn items(s: &Slot) -> Vec<String> {
        s.as_ref().map(|v| v.items()).unwrap_or_default()
    }

    #[test]
    fn scalars() {
        assert_eq!(items(&apply("Release", &["tumbleweed"])), ["tumbleweed"]);
        assert_eq!(items(&apply("Release", &["a", "b"])), ["b"]);
        assert_eq!(apply("Release", &["a", ""]), None);
        assert_eq!(items(&apply("Overlay", &["true"])), ["yes"]);
        assert_eq!(items(&apply("Overlay", &["0"])), ["no"]);
        assert_eq!(items(&apply("CleanPackageMetadata", &["yes"])), ["enabled"]);
        assert_eq!(items(&apply("Verity", &["no"])), ["disabled"]);
        assert_eq!(items(&apply("Verity", &["yes"])), ["signed"]);
        assert_eq!(items(&apply("Verity", &["hash"])), ["hash"]);
        assert_eq!(items(&apply("CompressOutput", &["zst"])), ["zstd"]);
        assert_eq!(items(&apply("CompressOutput", &["false"])), ["none"]);
    }

    #[test]
    fn bad_scalars() {
        let env = BTreeMap::new();
        let o = Origin::Default;
        let cx = cx_in(Path::new("/"), &env, &o);
        for (name, v) in [
            ("Overlay", "maybe"),
            ("Format", "raw"),
            ("Architecture", "x86_64"),
            ("Output", "a/b"),
            ("Output", ".."),
            ("SourceDateEpoch", "-1"),
            ("Verity", "sometimes"),
        ] {
            assert!(assign(get(name), v, None, &cx).is_err(), "{name}={v}");
        }
    }

    #[test]
    fn lists_append_and_reset() {
        assert_eq!(
            items(&apply("Packages", &["b a", "c,d"])),
            ["a", "b", "c", "d"]
        );
        assert_eq!(items(&apply("Packages", &["a", "", "b"])), ["b"]);
        assert_eq!(apply("Packages", &["a", ""]), None);
        assert_eq!(
            items(&apply("Packages", &["(a)", "/usr/bin/x", "z"])),
            ["z", "/usr/bin/x", "(a)"]
        );
        assert_eq!(
            items(&apply("Packages", &["\naaa_base\nsed"])),
            ["aaa_base", "sed"]
        );
        assert_eq!(items(&apply("Dependencies", &["base", "x"])), ["base", "x"]);
    }

    #[test]
    fn list_items_keep_their_origin() {
        let Some(Value::Many(v)) = apply("Packages", &["a", "b"]) else {
            panic!()
        };
        assert_eq!(v[0].origin, Origin::line("f.conf", 1));
        assert_eq!(v[1].origin, Origin::line("f.conf", 2));
    }

    #[test]
    fn environment() {
        let s = apply(
            "Environment",
            &[
                "SYSTEMD_REPART_OVERRIDE_FSTYPE_ROOT=squashfs",
                "A=1 B=\"x y\" FOO",
                "A=2",
            ],
        );
        let Some(Value::Map(m)) = &s else { panic!() };
        let got: Vec<(&str, &str)> = m
            .iter()
            .map(|(k, v)| (k.as_str(), v.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("A", "2"),
                ("B", "x y"),
                ("FOO", "bar"),
                ("SYSTEMD_REPART_OVERRIDE_FSTYPE_ROOT", "squashfs")
            ]
        );
        assert_eq!(apply("Environment", &["A=1", ""]), None);
    }

    #[test]
    fn split_artifacts() {
        assert_eq!(items(&apply("SplitArtifacts", &["roothash"])), ["roothash"]);
        assert_eq!(
            items(&apply("SplitArtifacts", &["yes"])),
            ["uki", "kernel", "initrd", "partitions"]
        );
        assert_eq!(
            apply("SplitArtifacts", &["uki", ""]),
            Some(Value::Many(vec![]))
        );
    }

    #[test]
    fn shell_words() {
        let ws = &[' ', '\n'];
        assert_eq!(shell_split("a b\nc", ws).unwrap(), ["a", "b", "c"]);
        assert_eq!(shell_split("a\tb", ws).unwrap(), ["a\tb"]);
        assert_eq!(
            shell_split(r#"K="a b" L='c d' M=e\ f"#, ws).unwrap(),
            ["K=a b", "L=c d", "M=e f"]
        );
        assert_eq!(shell_split(r#""a\"b\n""#, ws).unwrap(), ["a\"b\\n"]);
        assert!(shell_split("\"open", ws).is_err());
        assert!(shell_split("", ws).unwrap().is_empty());
    }

    #[test]
    fn vars() {
        let env = BTreeMap::from([("A".to_string(), "x".to_string())]);
        assert_eq!(expand_vars("$A/${A}/$B/${B}/$", &env), "x/x/$B/${B}/$");
    }

    #[test]
    fn paths_resolve_against_cwd() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/s1.sh"), "").unwrap();
        std::fs::write(root.join("sub/s0.sh"), "").unwrap();
        std::fs::write(root.join("sub/.hidden.sh"), "").unwrap();
        let env = BTreeMap::new();
        let o = Origin::Default;
        let cx = cx_in(&root, &env, &o);
        assert_eq!(parse_path("sub/../x", false, &cx).unwrap(), root.join("x"));
        assert!(parse_path("missing", true, &cx).is_err());
        assert_eq!(glob("sub/*.sh", &cx).unwrap(), ["sub/s0.sh", "sub/s1.sh"]);
        assert_eq!(glob("sub/none-*.sh", &cx).unwrap(), Vec::<String>::new());
        assert_eq!(glob("sub/missing.sh", &cx).unwrap(), Vec::<String>::new());
        let scripts = assign(get("FinalizeScripts"), "sub/*.sh", None, &cx).unwrap();
        assert_eq!(
            items(&scripts),
            [
                root.join("sub/s0.sh").to_string_lossy(),
                root.join("sub/s1.sh").to_string_lossy()
            ]
        );
        let trees = assign(get("ExtraTrees"), "sub:/usr/share", None, &cx).unwrap();
        assert_eq!(
            trees,
            Some(Value::Trees(vec![Valued::new(
                Tree {
                    source: root.join("sub"),
                    target: Some("/usr/share".into())
                },
                Origin::Default
            )]))
        );
        assert!(assign(get("ExtraTrees"), "sub:relative", None, &cx).is_err());
    }
}
