//! `primary.xml`: one `<package>` per RPM with its dependencies and its primary file list.

use super::xml::{XmlError, attr, attrs, push_ref, text};
use crate::checksum::Checksum;
use crate::resolve::dep::{Cmp, Dep};
use crate::resolve::evr::Evr;
use crate::resolve::repodata::{Kind, Merger, RepoData};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use std::io::Read;

/// A package as the metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Package {
    pub name: String,
    pub arch: String,
    pub evr: Evr,
    pub checksum: Checksum,
    /// Relative to the repository's base URL.
    pub location: String,
    pub size: u64,
    pub provides: Vec<Dep>,
    pub requires: Vec<Dep>,
    pub conflicts: Vec<Dep>,
    pub obsoletes: Vec<Dep>,
    pub recommends: Vec<Dep>,
    pub supplements: Vec<Dep>,
    /// Never installed, but libsolv prefers suggested and enhancing candidates in a choice.
    pub suggests: Vec<Dep>,
    pub enhances: Vec<Dep>,
    /// The file list primary.xml carries (binaries, /etc, ...), used for file dependencies.
    pub files: Vec<String>,
    /// The source package's name when it differs from the package's (from `<rpm:sourcerpm>`,
    /// as libsolv's `repodata_set_sourcepkg` reads it) and `<rpm:group>`: strings libsolv's
    /// `.solv` writer counts when it orders dependencies (see `resolve::solvorder`).
    #[serde(skip)]
    pub source_name: Option<String>,
    #[serde(skip)]
    pub group: Option<String>,
}

impl Package {
    /// A package without dependencies, files or size.
    pub fn new(name: String, arch: String, evr: Evr, checksum: Checksum, location: String) -> Self {
        Package {
            name,
            arch,
            evr,
            checksum,
            location,
            size: 0,
            provides: Vec::new(),
            requires: Vec::new(),
            conflicts: Vec::new(),
            obsoletes: Vec::new(),
            recommends: Vec::new(),
            supplements: Vec::new(),
            suggests: Vec::new(),
            enhances: Vec::new(),
            files: Vec::new(),
            source_name: None,
            group: None,
        }
    }

    /// The dependency list of one kind.
    pub fn list_mut(&mut self, k: Kind) -> &mut Vec<Dep> {
        match k {
            Kind::Provides => &mut self.provides,
            Kind::Requires => &mut self.requires,
            Kind::Conflicts => &mut self.conflicts,
            Kind::Obsoletes => &mut self.obsoletes,
            Kind::Recommends => &mut self.recommends,
            Kind::Supplements => &mut self.supplements,
            Kind::Suggests => &mut self.suggests,
            Kind::Enhances => &mut self.enhances,
        }
    }

    /// `name-[epoch:]version-release.arch`, as zypper prints it.
    pub fn nevra(&self) -> String {
        format!("{}-{}.{}", self.name, self.evr, self.arch)
    }
}

/// Packages per piece when a large primary.xml is parsed in parallel. The pieces, and so the
/// arena merged from them, depend on this count only: never on how the bytes arrive or on
/// the thread count.
const PIECE: usize = 2048;

/// Decompressed bytes read at a time by the streaming parse.
const CHUNK: usize = 1 << 20;

/// Parses a decompressed primary.xml; `file` names it in errors.
///
/// A large document is cut before `<package` tags into pieces of [`PIECE`] packages, parsed in
/// parallel and joined in order, so the result is the same whatever the thread count. If any
/// piece fails (or the cut looks wrong), the whole document is parsed again in one piece,
/// which gives the error its exact place.
pub fn parse(data: &[u8], file: &str) -> Result<Vec<Package>, XmlError> {
    let opened = || -> std::io::Result<Box<dyn Read + Send + '_>> { Ok(Box::new(data)) };
    let mut out = Vec::new();
    let streamed = stream(&opened, CHUNK, file, &|p| p, &mut |p| out.extend(p));
    match streamed {
        Ok(true) => Ok(out),
        Ok(false) => parse_piece(&text(data), 0, file),
        Err(ParseError::Xml(e)) => Err(e),
        Err(ParseError::Read { .. }) => unreachable!("reading a slice never fails"),
    }
}

/// Reading a primary.xml stream failed, or its XML did.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error(transparent)]
    Xml(#[from] XmlError),
    #[error("{file}: reading at byte {offset}: {source}")]
    Read {
        file: String,
        offset: u64,
        source: std::io::Error,
    },
}

/// Starts a stream of the decompressed document.
pub type Opener<'a> = dyn Fn() -> std::io::Result<Box<dyn Read + Send + 'a>> + Sync + 'a;

/// [`parse`] straight into the resolver's arena, from a stream of the decompressed document
/// that `open` starts (again, if a piece fails and the whole is parsed for its error).
///
/// The document is never whole in memory: it is read in chunks and cut into pieces as the
/// `<package` tags arrive; a few pieces at a time are parsed and interned in parallel, and
/// each piece's arena is merged into the whole in document order and dropped.
pub fn parse_arena(open: &Opener<'_>, file: &str) -> Result<RepoData, ParseError> {
    parse_arena_chunked(open, CHUNK, file)
}

/// [`parse_arena`] reading `chunk` bytes at a time (tests give tiny chunks).
pub fn parse_arena_chunked(
    open: &Opener<'_>,
    chunk: usize,
    file: &str,
) -> Result<RepoData, ParseError> {
    // One piece is used as it is (a small document); several are merged.
    let mut first: Option<RepoData> = None;
    let mut merger: Option<Merger> = None;
    let streamed = stream(
        open,
        chunk,
        file,
        &|p| RepoData::from_packages(&p),
        &mut |part| match (&mut merger, first.take()) {
            (Some(m), _) => m.add(&part),
            (None, None) => first = Some(part),
            (None, Some(one)) => {
                let mut m = Merger::default();
                m.add(&one);
                drop(one);
                m.add(&part);
                merger = Some(m);
            }
        },
    )?;
    if !streamed {
        drop((first, merger));
        let mut doc = Vec::new();
        open()
            .and_then(|mut r| r.read_to_end(&mut doc))
            .map_err(|source| ParseError::Read {
                file: file.to_owned(),
                offset: doc.len() as u64,
                source,
            })?;
        return Ok(RepoData::from_packages(&parse_piece(&text(&doc), 0, file)?));
    }
    Ok(match merger {
        Some(m) => m.finish(),
        None => first.unwrap_or_default(),
    })
}

/// Reads the document from `open()` in chunks of `chunk` bytes, cuts it into pieces of
/// [`PIECE`] packages, parses them on worker threads, passes each through `each` there and
/// hands the results to `take` in document order; at most a few pieces are in flight. A small
/// document is parsed in one piece. `Ok(false)`: a piece failed or the cut looks wrong, and
/// the caller parses the whole document in one piece instead (for the error's exact place).
fn stream<T: Send>(
    open: &Opener<'_>,
    chunk: usize,
    file: &str,
    each: &(dyn Fn(Vec<Package>) -> T + Sync),
    take: &mut dyn FnMut(T),
) -> Result<bool, ParseError> {
    use std::sync::{Mutex, mpsc};
    let read_err = |offset: usize, source| ParseError::Read {
        file: file.to_owned(),
        offset: offset as u64,
        source,
    };
    let workers = rayon::current_num_threads().max(1);
    let limit = workers + 1;
    let mut r = open().map_err(|e| read_err(0, e))?;
    let mut cutter = Cutter::default();
    let (job_tx, job_rx) = mpsc::channel::<(usize, usize, Vec<u8>)>();
    let job_rx = Mutex::new(job_rx);
    let (res_tx, res_rx) = mpsc::channel::<(usize, Option<T>)>();
    let cut = std::thread::scope(|sc| -> Result<bool, ParseError> {
        for _ in 0..workers {
            let (job_rx, res_tx) = (&job_rx, res_tx.clone());
            sc.spawn(move || {
                loop {
                    let job = job_rx.lock().unwrap().recv();
                    let Ok((i, base, bytes)) = job else { break };
                    let parsed = parse_piece(&text(&bytes), base, file).ok();
                    drop(bytes);
                    if res_tx.send((i, parsed.map(each))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);
        // results in order: `next` is the piece `take` wants, `ready` those that came early
        let mut ready = std::collections::BTreeMap::new();
        let (mut sent, mut next, mut failed) = (0usize, 0usize, false);
        let mut receive = |block: bool, next: &mut usize, failed: &mut bool| {
            let got = if block {
                res_rx.recv().ok()
            } else {
                res_rx.try_recv().ok()
            };
            match got {
                Some((i, Some(t))) => {
                    ready.insert(i, t);
                }
                // a failed piece, or (blocking) no worker left
                Some((_, None)) => *failed = true,
                None if block => *failed = true,
                None => return false,
            }
            while let Some(t) = ready.remove(&*next) {
                take(t);
                *next += 1;
            }
            true
        };
        let mut buf = vec![0u8; chunk.max(1)];
        loop {
            let n = loop {
                match r.read(&mut buf) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(read_err(cutter.offset(), e)),
                }
            };
            cutter.push(&buf[..n], n == 0);
            while let Some((base, piece)) = cutter.piece() {
                while sent - next >= limit && !failed {
                    receive(true, &mut next, &mut failed);
                }
                if failed {
                    break;
                }
                job_tx.send((sent, base, piece)).unwrap();
                sent += 1;
                while receive(false, &mut next, &mut failed) {}
            }
            if cutter.eof || failed || cutter.bad {
                break;
            }
        }
        drop(job_tx);
        while next < sent && !failed {
            receive(true, &mut next, &mut failed);
        }
        Ok(!failed && !cutter.bad)
    })?;
    if !cut {
        return Ok(false);
    }
    if !cutter.cut_any {
        take(each(parse_piece(&text(&cutter.buf), 0, file)?));
    }
    Ok(true)
}

/// Cuts a document arriving in chunks into pieces of [`PIECE`] packages before `<package`
/// tags, as `parse` would cut the whole document.
#[derive(Default)]
struct Cutter {
    /// the bytes not yet given away, from document offset `base`
    buf: Vec<u8>,
    base: usize,
    /// `<package` tags in `buf`, and where the search goes on
    starts: Vec<usize>,
    scan: usize,
    eof: bool,
    cut_any: bool,
    /// the text before the first package is not a `<metadata>` document's head
    bad: bool,
}

impl Cutter {
    fn offset(&self) -> usize {
        self.base + self.buf.len()
    }

    fn push(&mut self, bytes: &[u8], eof: bool) {
        self.buf.extend_from_slice(bytes);
        self.eof = eof;
        let finder = memchr::memmem::Finder::new(b"<package");
        let mut at = self.scan;
        while let Some(k) = finder.find(&self.buf[at..]) {
            let i = at + k;
            match self.buf.get(i + 8) {
                None if !eof => {
                    self.scan = i;
                    return;
                }
                Some(b' ' | b'\t' | b'\n' | b'\r' | b'>') => self.starts.push(i),
                _ => {}
            }
            at = i + 8;
        }
        self.scan = at.max(self.buf.len().saturating_sub(7));
    }

    /// The next whole piece: (document offset, bytes), once the tag after it has arrived, or
    /// at the end the last one.
    fn piece(&mut self) -> Option<(usize, Vec<u8>)> {
        if self.bad {
            return None;
        }
        if self.starts.len() <= PIECE {
            return if self.eof && self.cut_any && !self.buf.is_empty() {
                let last = self.last();
                self.bad = last.is_none();
                last
            } else {
                None
            };
        }
        let (from, to) = (self.starts[0], self.starts[PIECE]);
        if !self.cut_any && memchr::memmem::find(&self.buf[..from], b"<metadata").is_none() {
            self.bad = true;
            return None;
        }
        self.cut_any = true;
        let piece = self.buf[from..to].to_vec();
        self.buf.drain(..to);
        self.starts.drain(..PIECE);
        self.starts.iter_mut().for_each(|s| *s -= to);
        self.scan -= to;
        let at = self.base + from;
        self.base += to;
        Some((at, piece))
    }

    /// At the end of a document already cut: its last piece, up to the last `</package>`,
    /// if only `</metadata>` follows (as in the document's last chunk; a longer tail is not).
    fn last(&mut self) -> Option<(usize, Vec<u8>)> {
        const END: &[u8] = b"</package>";
        let end = memchr::memmem::rfind(&self.buf, END)? + END.len();
        if text(&self.buf[end..]).trim() != "</metadata>" {
            return None;
        }
        self.buf.truncate(end);
        self.starts.clear();
        Some((self.base, std::mem::take(&mut self.buf)))
    }
}

/// Parses a whole document or a run of `<package>` elements starting at byte `base` of it.
fn parse_piece(s: &str, base: usize, file: &str) -> Result<Vec<Package>, XmlError> {
    let mut r = Reader::from_str(s);
    let mut out = Vec::new();
    let mut pkg: Option<Package> = None;
    let mut list: Option<Kind> = None;
    let mut buf = String::new();
    let mut checksum_type = String::new();
    let err = |r: &Reader<&[u8]>, message: String| XmlError::at(file, r, base, message);
    loop {
        let ev = r.read_event().map_err(|e| err(&r, e.to_string()))?;
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                buf.clear();
                let local = e.local_name();
                match local.as_ref() {
                    "package" => pkg = Some(empty_package()),
                    "version" => {
                        if let Some(p) = pkg.as_mut() {
                            p.evr = evr_attrs(&e);
                        }
                    }
                    "checksum" => checksum_type = attr(&e, "type").unwrap_or_default(),
                    "location" => {
                        if let Some(p) = pkg.as_mut() {
                            p.location = attr(&e, "href").unwrap_or_default();
                        }
                    }
                    "size" => {
                        if let Some(p) = pkg.as_mut() {
                            p.size = attr(&e, "package")
                                .and_then(|v| v.parse().ok())
                                .unwrap_or(0);
                        }
                    }
                    "provides" => list = Some(Kind::Provides),
                    "requires" => list = Some(Kind::Requires),
                    "conflicts" => list = Some(Kind::Conflicts),
                    "obsoletes" => list = Some(Kind::Obsoletes),
                    "recommends" => list = Some(Kind::Recommends),
                    "supplements" => list = Some(Kind::Supplements),
                    "suggests" => list = Some(Kind::Suggests),
                    "enhances" => list = Some(Kind::Enhances),
                    "entry" => {
                        if let Some(p) = pkg.as_mut() {
                            let dep = entry(&e).ok_or_else(|| {
                                err(
                                    &r,
                                    format!("package {}: <rpm:entry> without a name", p.name),
                                )
                            })?;
                            if let Some(k) = list {
                                p.list_mut(k).push(dep);
                            }
                        }
                    }
                    _ => {}
                }
            }
            Event::Text(t) => buf.push_str(&t.xml10_content()),
            Event::CData(t) => buf.push_str(&t.into_inner()),
            Event::GeneralRef(g) => push_ref(&mut buf, &g),
            Event::End(e) => {
                let local = e.local_name();
                if let Some(p) = pkg.as_mut() {
                    match local.as_ref() {
                        "name" => p.name = buf.trim().to_owned(),
                        "arch" => p.arch = buf.trim().to_owned(),
                        "checksum" => {
                            p.checksum = Checksum::new(&checksum_type, &buf).ok_or_else(|| {
                                err(
                                    &r,
                                    format!(
                                        "package {}: unsupported checksum type {checksum_type:?}",
                                        p.name
                                    ),
                                )
                            })?
                        }
                        "file" => p.files.push(buf.trim().to_owned()),
                        "sourcerpm" => p.source_name = Some(buf.trim().to_owned()),
                        "group" => p.group = Some(buf.trim().to_owned()).filter(|g| !g.is_empty()),
                        "provides" | "requires" | "conflicts" | "obsoletes" | "recommends"
                        | "supplements" | "suggests" | "enhances" => list = None,
                        "package" => {
                            let mut p = pkg.take().unwrap();
                            p.source_name = p
                                .source_name
                                .as_deref()
                                .and_then(source_name)
                                .filter(|s| *s != p.name)
                                .map(str::to_owned);
                            if p.name.is_empty()
                                || p.location.is_empty()
                                || p.checksum.hex.is_empty()
                            {
                                return Err(err(
                                    &r,
                                    format!(
                                        "incomplete <package> {:?} (name, location and checksum are required)",
                                        p.name
                                    ),
                                ));
                            }
                            // Source packages are not installable.
                            if p.arch != "src" && p.arch != "nosrc" {
                                out.push(p);
                            }
                        }
                        _ => {}
                    }
                }
                buf.clear();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The name part of a source rpm's file name `name-version-release.arch.rpm`, as libsolv's
/// `repodata_set_sourcepkg` takes it (None when it is not of that form).
fn source_name(rpm: &str) -> Option<&str> {
    let rest = rpm.strip_suffix(".rpm")?;
    let (nvr, _arch) = rest.rsplit_once('.')?;
    let (nv, _rel) = nvr.rsplit_once('-')?;
    let (name, _ver) = nv.rsplit_once('-')?;
    (!name.is_empty()).then_some(name)
}

fn empty_package() -> Package {
    let checksum = Checksum {
        algo: crate::checksum::Algo::Sha256,
        hex: String::new(),
    };
    Package::new(
        String::new(),
        String::new(),
        Evr::new(None, "", None),
        checksum,
        String::new(),
    )
}

pub(super) fn evr_attrs(e: &BytesStart<'_>) -> Evr {
    let [epoch, ver, rel] = attrs(e, ["epoch", "ver", "rel"]);
    evr_of(epoch.as_deref(), ver.as_deref(), rel.as_deref())
}

fn evr_of(epoch: Option<&str>, ver: Option<&str>, rel: Option<&str>) -> Evr {
    Evr::new(
        epoch.and_then(|v| v.parse().ok()),
        ver.unwrap_or_default(),
        rel,
    )
}

fn entry(e: &BytesStart<'_>) -> Option<Dep> {
    let [name, flags, epoch, ver, rel] = attrs(e, ["name", "flags", "epoch", "ver", "rel"]);
    let range = flags
        .and_then(|f| Cmp::from_rpmmd(&f))
        .map(|c| (c, evr_of(epoch.as_deref(), ver.as_deref(), rel.as_deref())));
    Some(Dep {
        name: name?.into_owned(),
        range,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(n: usize, broken: Option<usize>) -> String {
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"0\">\n",
        );
        for i in 0..n {
            let end = if broken == Some(i) {
                "</arch>"
            } else {
                "</name>"
            };
            s.push_str(&format!(
                "<package type=\"rpm\">\n  <name>p{i}{end}<arch>x86_64</arch><version epoch=\"0\" ver=\"1.{i}\" rel=\"1\"/>\n  <checksum type=\"sha256\" pkgid=\"YES\">{i:064x}</checksum><location href=\"p{i}.rpm\"/>\n  <format><rpm:requires><rpm:entry name=\"p{}\" flags=\"GE\" ver=\"1&amp;2\"/></rpm:requires></format>\n</package>\n",
                i / 2
            ));
        }
        s.push_str("</metadata>\n");
        s
    }

    #[test]
    fn source_names_as_libsolv_reads_them() {
        assert_eq!(source_name("gcc13-13.2.1-1.1.src.rpm"), Some("gcc13"));
        assert_eq!(source_name("a-b-c-1.0-2.nosrc.rpm"), Some("a-b-c"));
        assert_eq!(source_name("foo-1.0.src.rpm"), None);
        assert_eq!(source_name("foo-1.0-1.src"), None);
        assert_eq!(source_name("-1.0-1.src.rpm"), None);
    }

    #[test]
    fn pieces_parse_like_the_whole() {
        let d = doc(5000, None);
        let whole = parse_piece(&d, 0, "primary.xml").unwrap();
        assert_eq!(whole.len(), 5000);
        assert_eq!(whole[4999].requires[0].to_string(), "p2499 >= 1&2");
        assert_eq!(parse(d.as_bytes(), "primary.xml").unwrap(), whole);
    }

    #[test]
    fn an_error_in_a_piece_names_its_place_in_the_file() {
        let d = doc(5000, Some(3000));
        let e = parse(d.as_bytes(), "primary.xml").unwrap_err();
        let seq = parse_piece(&d, 0, "primary.xml").unwrap_err();
        assert_eq!((e.offset, &e.message), (seq.offset, &seq.message));
        let at = d.find("p3000</arch>").unwrap() as u64;
        assert!(e.offset > at && e.offset < at + 40, "{e}");
    }

    /// The arena as pieces of PIECE packages merged in order (what the parse is defined to give).
    fn by_pieces(pkgs: &[Package]) -> RepoData {
        let parts: Vec<RepoData> = pkgs.chunks(PIECE).map(RepoData::from_packages).collect();
        match parts.len() {
            1 => parts.into_iter().next().unwrap(),
            _ => RepoData::merge(&parts.iter().collect::<Vec<_>>()),
        }
    }

    #[test]
    fn the_arena_does_not_depend_on_chunks_or_threads() {
        let d = doc(5000, None);
        let want = by_pieces(&parse(d.as_bytes(), "primary.xml").unwrap());
        let open = || -> std::io::Result<Box<dyn Read + Send + '_>> { Ok(Box::new(d.as_bytes())) };
        for chunk in [1, 7, 4096, 1 << 20] {
            for threads in [1, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool
                    .install(|| parse_arena_chunked(&open, chunk, "primary.xml"))
                    .unwrap();
                assert!(got == want, "chunk {chunk}, {threads} threads");
            }
        }
        // a small document is one piece
        let small = doc(10, None);
        let open =
            || -> std::io::Result<Box<dyn Read + Send + '_>> { Ok(Box::new(small.as_bytes())) };
        let got = parse_arena_chunked(&open, 3, "primary.xml").unwrap();
        assert_eq!(got.to_packages(), parse(small.as_bytes(), "p").unwrap());
    }

    #[test]
    fn a_streamed_error_names_its_place_in_the_file() {
        let d = doc(5000, Some(3000));
        let seq = parse_piece(&d, 0, "primary.xml").unwrap_err();
        let open = || -> std::io::Result<Box<dyn Read + Send + '_>> { Ok(Box::new(d.as_bytes())) };
        match parse_arena_chunked(&open, 999, "primary.xml").unwrap_err() {
            ParseError::Xml(e) => assert_eq!((e.offset, e.message), (seq.offset, seq.message)),
            e => panic!("{e}"),
        }
        // the document cut short: no `</metadata>` after the last package
        let cut = &d[..d.len() - 20];
        let open =
            || -> std::io::Result<Box<dyn Read + Send + '_>> { Ok(Box::new(cut.as_bytes())) };
        assert!(parse_arena_chunked(&open, 4096, "primary.xml").is_err());
        // a failing stream names the byte where it stopped
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("bad block"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(b' ');
                self.0 -= n;
                Ok(n)
            }
        }
        let open = || -> std::io::Result<Box<dyn Read + Send>> { Ok(Box::new(Failing(5000))) };
        let e = parse_arena_chunked(&open, 1024, "primary.xml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "primary.xml: reading at byte 5000: bad block"
        );
    }
}
