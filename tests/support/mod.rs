//! Shared helpers for the end-to-end tests (`mod support;` in each test file): the fixture
//! repository, a small HTTP server, running the `elsx` binary, and looking into images with
//! the reference tools (unsquashfs, systemd-dissect, rpm2cpio + cpio).
//!
//! Missing tools are failures with the Debian package to install, never silent skips.

#![allow(dead_code)]

pub mod trees;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

/// The project root.
pub fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `$ELSX_CORPUS` (../shared/corpus, see its README), or `None` with a note when it is not set
/// (scripts/test.sh sets it); set to a folder that is not the corpus, it is a failure.
pub fn corpus() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("ELSX_CORPUS") else {
        eprintln!("SKIPPED: ELSX_CORPUS is not set (scripts/test.sh sets it to ../shared/corpus)");
        return None;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("README.md").is_file(),
        "ELSX_CORPUS={} is not the corpus folder",
        dir.display()
    );
    Some(dir)
}

/// The `elsx` binary under test.
pub fn elsx_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_elsx"))
}

// ---------------------------------------------------------------------------------------------
// Tools

/// Command → Debian package that ships it.
const TOOLS: &[(&str, &str)] = &[
    ("rpmbuild", "rpm"),
    ("createrepo_c", "createrepo-c"),
    ("zstd", "zstd"),
    ("gcc", "gcc"),
    ("unsquashfs", "squashfs-tools"),
    ("systemd-dissect", "systemd-container"),
    ("rpm2cpio", "rpm2cpio"),
    ("cpio", "cpio"),
    ("sha256sum", "coreutils"),
    ("gpg", "gpg"),
    ("rpmsign", "rpm"),
    ("openssl", "openssl"),
    ("veritysetup", "cryptsetup-bin"),
    ("sfdisk", "fdisk"),
    ("dump.erofs", "erofs-utils"),
];

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|d| {
            let p = d.join(cmd);
            p.is_file()
                && std::fs::metadata(&p).is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                })
        })
    })
}

/// Panics, naming the Debian packages to install, unless every command is on PATH.
pub fn require_tools(cmds: &[&str]) {
    let mut missing: Vec<(&str, &str)> = Vec::new();
    for cmd in cmds {
        if !on_path(cmd) {
            let pkg = TOOLS
                .iter()
                .find(|(c, _)| c == cmd)
                .map_or(*cmd, |(_, p)| *p);
            missing.push((cmd, pkg));
        }
    }
    if !missing.is_empty() {
        let mut pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        pkgs.sort_unstable();
        pkgs.dedup();
        let cmds: Vec<&str> = missing.iter().map(|(c, _)| *c).collect();
        panic!(
            "these end-to-end tests need {} which {} not on PATH: install the Debian package{} {} \
             (apt-get install {})",
            cmds.join(", "),
            if cmds.len() == 1 { "is" } else { "are" },
            if pkgs.len() == 1 { "" } else { "s" },
            pkgs.join(" "),
            pkgs.join(" ")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The fixture repository

static FIXTURE_REPO: OnceLock<PathBuf> = OnceLock::new();

/// The rpm-md repository built from `tests/fixtures/specs` with `scripts/mkrepo.sh`, once per
/// test binary, in a temporary directory under the target directory.
pub fn fixture_repo() -> &'static Path {
    FIXTURE_REPO.get_or_init(|| {
        // zstd is needed only with createrepo_c < 0.21; mkrepo.sh names the package then.
        require_tools(&["rpmbuild", "createrepo_c", "gcc"]);
        let parent = Path::new(env!("CARGO_TARGET_TMPDIR"));
        std::fs::create_dir_all(parent).unwrap();
        prune_stale(parent, "fixture-repo-");
        // Kept for the life of the process (statics are never dropped); stale ones from
        // earlier runs are pruned above.
        let dir = tempfile::Builder::new()
            .prefix("fixture-repo-")
            .tempdir_in(parent)
            .unwrap()
            .keep();
        let out = Command::new("bash")
            .arg(manifest_dir().join("scripts/mkrepo.sh"))
            .arg(manifest_dir().join("tests/fixtures/specs"))
            .arg(&dir)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env_remove("MKREPO_COMPRESS")
            .output()
            .expect("running scripts/mkrepo.sh");
        assert!(
            out.status.success(),
            "scripts/mkrepo.sh tests/fixtures/specs {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(dir.join("repodata/repomd.xml").is_file());
        dir
    })
}

/// Removes directories named PREFIX* under `parent` older than an hour (leftovers of earlier
/// test runs; a concurrent run's fresh directory is left alone).
pub fn prune_stale(parent: &Path, prefix: &str) {
    let Ok(rd) = std::fs::read_dir(parent) else {
        return;
    };
    for e in rd.flatten() {
        if !e.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(3600));
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The path of a fixture RPM by file name (`fixture-app-1.0-1.x86_64.rpm`) in `repo`.
pub fn rpm_in(repo: &Path, file: &str) -> PathBuf {
    let arch = file
        .trim_end_matches(".rpm")
        .rsplit('.')
        .next()
        .expect("an arch in the file name");
    let p = repo.join(arch).join(file);
    assert!(p.is_file(), "{} is not in the repository", p.display());
    p
}

/// Writes each `(file name, spec text)` into `dir/specs` and builds them with
/// `scripts/mkrepo.sh` (SOURCE_DATE_EPOCH 1700000000) into the repository `dir/repo`, returned.
pub fn mkrepo(dir: &Path, specs: &[(&str, &str)]) -> PathBuf {
    let spec_dir = dir.join("specs");
    std::fs::create_dir_all(&spec_dir).unwrap();
    for (name, text) in specs {
        std::fs::write(spec_dir.join(name), text).unwrap();
    }
    let repo = dir.join("repo");
    run_tool(
        Command::new("bash")
            .arg(manifest_dir().join("scripts/mkrepo.sh"))
            .arg(&spec_dir)
            .arg(&repo)
            .env("SOURCE_DATE_EPOCH", "1700000000"),
    );
    repo
}

/// The path of a fixture RPM in the fixture repository.
pub fn fixture_rpm(file: &str) -> PathBuf {
    rpm_in(fixture_repo(), file)
}

/// Copies a directory tree (regular files, directories and symlinks).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let ty = e.file_type().unwrap();
        let dest = to.join(e.file_name());
        if ty.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ty.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(e.path()).unwrap(), dest).unwrap();
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// `file:///abs/path/` for a directory.
pub fn file_url(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap();
    format!(
        "file://{}/",
        abs.display().to_string().trim_end_matches('/')
    )
}

// ---------------------------------------------------------------------------------------------
// HTTP server

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The decoded path, without the query string (`/x86_64/foo.rpm`).
    pub path: String,
    pub status: u16,
}

/// A read-only HTTP/1.1 file server on 127.0.0.1 (a thread per connection, keep-alive
/// honoured), recording every request. Stops accepting when dropped.
pub struct HttpServer {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<Request>>>,
    stop: Arc<AtomicBool>,
    accept: Option<thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Serves `root` on 127.0.0.1 on a free port.
    pub fn start(root: &Path) -> HttpServer {
        let root = std::fs::canonicalize(root).expect("the served directory exists");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (log, stop) = (log.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (root, log) = (root.clone(), log.clone());
                    thread::spawn(move || {
                        let _ = serve_connection(conn, &root, &log);
                    });
                }
            })
        };
        HttpServer {
            addr,
            log,
            stop,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log.lock().unwrap().clone()
    }

    /// The paths of every request answered so far.
    pub fn paths(&self) -> Vec<String> {
        self.requests().into_iter().map(|r| r.path).collect()
    }

    /// The paths of successful (200) GET requests.
    pub fn fetched(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.status == 200)
            .map(|r| r.path)
            .collect()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop up so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Maps a request path to a file under `root`; `Err(status)` for refused paths.
fn resolve_path(root: &Path, raw: &str) -> Result<PathBuf, u16> {
    let decoded = percent_decode(raw).ok_or(400u16)?;
    if !decoded.starts_with('/') || decoded.contains('\0') || decoded.contains('\\') {
        return Err(400);
    }
    let rel = Path::new(decoded.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    for c in rel.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            // `..` (and anything else that could leave the root) is refused outright.
            _ => return Err(403),
        }
    }
    // Symlinks inside the served tree must not lead out of it either.
    match std::fs::canonicalize(&out) {
        Ok(real) if real.starts_with(root) && real.is_file() => Ok(real),
        Ok(real) if !real.starts_with(root) => Err(403),
        _ => Err(404),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Error",
    }
}

/// Reads a request's header lines up to the blank line, as (lower-case name, trimmed value);
/// `None` when the client closes the connection first.
pub fn read_headers(reader: &mut impl BufRead) -> std::io::Result<Option<Vec<(String, String)>>> {
    let mut out = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 {
            return Ok(None);
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Ok(Some(out));
        }
        if let Some((k, v)) = h.split_once(':') {
            out.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    root: &Path,
    log: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    // An idle keep-alive connection is closed after a while so threads do not pile up.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(()); // the client closed the connection
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue; // stray CRLF between requests
        }
        let mut parts = line.split_whitespace();
        let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
            (Some(m), Some(t), Some(v)) => (m.to_owned(), t.to_owned(), v.to_owned()),
            _ => {
                write_response(&mut writer, 400, b"bad request\n", true, true)?;
                return Ok(());
            }
        };
        let mut content_length = 0usize;
        let mut connection: Option<String> = None;
        let Some(headers) = read_headers(&mut reader)? else {
            return Ok(());
        };
        for (k, v) in headers {
            if k == "content-length" {
                content_length = v.parse().unwrap_or(0);
            } else if k == "connection" {
                connection = Some(v.to_ascii_lowercase());
            }
        }
        // Discard a request body, if any.
        std::io::copy(
            &mut (&mut reader).take(content_length as u64),
            &mut std::io::sink(),
        )?;
        let close = match connection.as_deref() {
            Some(c) if c.split(',').any(|t| t.trim() == "close") => true,
            Some(c) if c.split(',').any(|t| t.trim() == "keep-alive") => false,
            _ => version != "HTTP/1.1",
        };
        let path = target.split(['?', '#']).next().unwrap_or("").to_owned();
        let head = method == "HEAD";
        let (status, body) = if method != "GET" && !head {
            (405, b"method not allowed\n".to_vec())
        } else {
            match resolve_path(root, &path).and_then(|p| std::fs::read(p).map_err(|_| 404)) {
                Ok(data) => (200, data),
                Err(s) => (s, format!("{}\n", reason(s)).into_bytes()),
            }
        };
        log.lock().unwrap().push(Request {
            method: method.clone(),
            path: percent_decode(&path).unwrap_or(path),
            status,
        });
        write_response(&mut writer, status, &body, close, !head)?;
        if close {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn write_response(
    w: &mut TcpStream,
    status: u16,
    body: &[u8],
    close: bool,
    send_body: bool,
) -> std::io::Result<()> {
    let content_type = if status == 200 {
        "application/octet-stream"
    } else {
        "text/plain"
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: {content_type}\r\nConnection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if close { "close" } else { "keep-alive" }
    );
    let mut buf = head.into_bytes();
    if send_body {
        buf.extend_from_slice(body);
    }
    w.write_all(&buf)?;
    w.flush()
}

// ---------------------------------------------------------------------------------------------
// Running elsx

/// The outcome of one `elsx` run.
pub struct Run {
    /// The exit code (a death by signal is a test failure, not a code).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// The cache directory the run used (kept alive for inspection).
    pub cache: Arc<tempfile::TempDir>,
    pub args: Vec<String>,
}

impl Run {
    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Run {
        assert_eq!(self.code, code, "unexpected exit code\n{self}");
        self
    }

    #[track_caller]
    pub fn assert_success(&self) -> &Run {
        self.assert_code(0)
    }

    /// The stdout of a `--json` run, parsed.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e})\n{self}"))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ elsx {}\nexit code {}\n--- stdout\n{}--- stderr\n{}---",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `elsx ARGS --cache-dir FRESH` with `CI=1` and `SOURCE_DATE_EPOCH=1700000000`.
pub fn elsx<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let cache = tempfile::Builder::new()
        .prefix("elsx-cache-")
        .tempdir()
        .unwrap();
    elsx_with_cache(Arc::new(cache), args)
}

/// Runs `elsx ARGS --cache-dir CACHE` (to share or inspect a cache across runs).
pub fn elsx_with_cache<I, S>(cache: Arc<tempfile::TempDir>, args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    elsx_with_env(cache, args, &[])
}

/// Like [`elsx_with_cache`], with more environment variables.
pub fn elsx_with_env<I, S>(cache: Arc<tempfile::TempDir>, args: I, env: &[(&str, &str)]) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut argv: Vec<std::ffi::OsString> =
        args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    // pack and inspect use no cache and take no --cache-dir.
    let subcommand = argv.iter().find(|a| !a.to_string_lossy().starts_with('-'));
    if !matches!(
        subcommand.and_then(|s| s.to_str()),
        Some("pack" | "inspect")
    ) {
        argv.push("--cache-dir".into());
        argv.push(cache.path().into());
    }
    let mut cmd = Command::new(elsx_bin());
    cmd.args(&argv)
        .env("CI", "1")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env_remove("ELSX_LOG")
        .env_remove("XDG_CACHE_HOME")
        // The test server is local: never route it through a proxy from the environment.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for v in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    let mut child = cmd.spawn().expect("starting elsx");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    // A guard against hangs (a stuck download would otherwise hang the suite), not a
    // performance assertion: the builds here take well under a second.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "elsx {:?} did not finish within 120 s (killed)",
                argv.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>()
            );
        }
        thread::sleep(Duration::from_millis(5));
    };
    let stdout = String::from_utf8_lossy(&t_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&t_err.join().unwrap()).into_owned();
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let Some(code) = status.code() else {
        panic!(
            "elsx {} was killed by a signal ({status})\n--- stdout\n{stdout}--- stderr\n{stderr}",
            args.join(" ")
        );
    };
    Run {
        code,
        stdout,
        stderr,
        cache,
        args,
    }
}

/// The fingerprint of the published TEST key `tests/fixtures/keys/elsx-test.*.asc`, which signs
/// the fixture mirror (scripts/mkmirror.sh) and the test repositories that ask for it.
pub const TEST_KEY: &str = "01C7C39B7EDD1BB084B21D208BCFD7BD2B868DE1";

/// The base packages used by most tests.
pub const BASE: &[&str] = &[
    "fixture-filesystem",
    "fixture-release",
    "fixture-libbase1",
    "fixture-shell",
    "fixture-base-shared",
];

/// Writes `DIR/NAME.toml`: extension NAME using repository `fixtures`, with the given base and
/// install lists; `extra` is appended verbatim (more TOML). Returns the recipe's path.
pub fn write_recipe(
    dir: &Path,
    name: &str,
    base: &[&str],
    install: &[&str],
    extra: &str,
) -> PathBuf {
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = format!(
        "[extension]\nname = {name:?}\n\n[repos]\nuse = [\"fixtures\"]\n\n[base]\npackages = [{}]\n\n[packages]\ninstall = [{}]\n{extra}",
        list(base),
        list(install)
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// Every entry (recursively) of a directory, relative to it; empty if it does not exist.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// Looking into images

/// One line of `unsquashfs -lls`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// `-rwsr-xr-x`, `drwxr-xr-x`, `lrwxrwxrwx`, ...
    pub mode: String,
    /// `root/root`
    pub owner: String,
    /// The size column (for devices `major,minor`).
    pub size: String,
    /// A symlink's target.
    pub target: Option<String>,
}

impl Listed {
    pub fn is_dir(&self) -> bool {
        self.mode.starts_with('d')
    }
    pub fn is_file(&self) -> bool {
        self.mode.starts_with('-')
    }
    pub fn is_symlink(&self) -> bool {
        self.mode.starts_with('l')
    }
}

/// Runs a tool, panicking with its output unless it succeeds.
pub fn run_tool(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Splits off the first whitespace-separated token.
fn token(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if s.is_empty() {
        return None;
    }
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

/// Parses `unsquashfs -lls` output: path relative to the image root ("" for the root itself)
/// → entry.
pub fn parse_lls(text: &str) -> BTreeMap<String, Listed> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((mode, rest)) = token(line) else {
            continue;
        };
        if mode.len() != 10 || !"-dlcbps".contains(&mode[..1]) {
            continue; // not a listing line
        }
        let (owner, rest) = token(rest).expect("owner");
        let (mut size, mut rest) = token(rest).map(|(a, b)| (a.to_owned(), b)).unwrap();
        if size.ends_with(',') {
            let (minor, r) = token(rest).expect("minor");
            size.push_str(minor);
            rest = r;
        }
        let (_date, rest) = token(rest).expect("date");
        let (_time, rest) = token(rest).expect("time");
        let name = rest.trim_start();
        let (name, target) = if mode.starts_with('l') {
            match name.split_once(" -> ") {
                Some((n, t)) => (n, Some(t.to_owned())),
                None => (name, None),
            }
        } else {
            (name, None)
        };
        let rel = name
            .strip_prefix("squashfs-root")
            .unwrap_or(name)
            .trim_start_matches('/');
        out.insert(
            rel.to_owned(),
            Listed {
                mode: mode.to_owned(),
                owner: owner.to_owned(),
                size,
                target,
            },
        );
    }
    out
}

/// `unsquashfs -lls IMAGE`, parsed (see [`parse_lls`]).
pub fn list_image(image: &Path) -> BTreeMap<String, Listed> {
    require_tools(&["unsquashfs"]);
    let out = run_tool(Command::new("unsquashfs").arg("-lls").arg(image));
    let map = parse_lls(&String::from_utf8_lossy(&out.stdout));
    assert!(
        map.contains_key(""),
        "unsquashfs -lls {} listed no root:\n{}",
        image.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    map
}

/// Extracts an image with `unsquashfs -d DEST IMAGE` (DEST must not exist yet).
pub fn extract_image(image: &Path, dest: &Path) {
    require_tools(&["unsquashfs"]);
    run_tool(
        Command::new("unsquashfs")
            .arg("-no-progress")
            .arg("-d")
            .arg(dest)
            .arg(image),
    );
}

/// The stdout of `systemd-dissect IMAGE` (which must succeed).
pub fn dissect(image: &Path) -> String {
    require_tools(&["systemd-dissect"]);
    let out = run_tool(Command::new("systemd-dissect").arg(image));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Extracts an RPM's payload into `dest` like `rpm2cpio RPM | cpio -idm`.
pub fn rpm_extract(rpm: &Path, dest: &Path) {
    require_tools(&["rpm2cpio", "cpio"]);
    std::fs::create_dir_all(dest).unwrap();
    let mut r2c = Command::new("rpm2cpio")
        .arg(rpm)
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting rpm2cpio");
    let cpio = Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(dest)
        .stdin(r2c.stdout.take().unwrap())
        .output()
        .expect("running cpio");
    let st = r2c.wait().unwrap();
    assert!(st.success(), "rpm2cpio {} failed: {st}", rpm.display());
    assert!(
        cpio.status.success(),
        "cpio -idm for {} failed: {}",
        rpm.display(),
        String::from_utf8_lossy(&cpio.stderr)
    );
}

/// The sha256 of a file, as hex (via sha256sum).
pub fn sha256_file(path: &Path) -> String {
    require_tools(&["sha256sum"]);
    let out = run_tool(Command::new("sha256sum").arg(path));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// `KEY=value` lines, quotes removed.
pub fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.trim().split_once('=')?;
            let v = v.trim().trim_matches('"');
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// A node of a directory tree on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink(String),
    Other { mode: u32 },
}

/// Every entry under `root` (not following symlinks), by path relative to it; permission bits
/// include setuid/setgid/sticky.
pub fn read_tree(root: &Path) -> BTreeMap<String, Node> {
    use std::os::unix::fs::PermissionsExt;
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.permissions().mode() & 0o7777;
            let node = if m.file_type().is_symlink() {
                Node::Symlink(std::fs::read_link(&p).unwrap().display().to_string())
            } else if m.is_dir() {
                walk(base, &p, out);
                Node::Dir { mode }
            } else if m.is_file() {
                Node::File {
                    mode,
                    data: std::fs::read(&p).unwrap(),
                }
            } else {
                Node::Other { mode }
            };
            out.insert(rel, node);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Every path of an image listing lies in usr/ or opt/ (or is the root).
pub fn assert_only_usr_and_opt(list: &BTreeMap<String, Listed>) {
    for p in list.keys() {
        assert!(
            p.is_empty()
                || p == "usr"
                || p == "opt"
                || p.starts_with("usr/")
                || p.starts_with("opt/"),
            "{p:?} is outside /usr and /opt: {list:#?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Disk images and signing keys

/// Writes a small sysext tree under `root`: directories, a 300 KB incompressible file (setuid),
/// a 144 KB compressible one, a small file, a symlink and `extension-release.NAME`.
pub fn sample_sysext_dir(root: &Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let rel = root.join("usr/lib/extension-release.d");
    std::fs::create_dir_all(&rel).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::create_dir_all(root.join("opt/tool/share")).unwrap();
    std::fs::write(
        rel.join(format!("extension-release.{name}")),
        "ID=_any\nARCHITECTURE=x86-64\nSYSEXT_VERSION_ID=1.0\n",
    )
    .unwrap();
    let bin = root.join("usr/bin/tool");
    std::fs::write(&bin, noise(300_000)).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::write(root.join("opt/tool/share/readme"), "hello\n".repeat(100)).unwrap();
    // Compressible: stored compressed by erofs lz4hc.
    std::fs::write(
        root.join("opt/tool/share/big.txt"),
        "compressible text\n".repeat(8000),
    )
    .unwrap();
    std::os::unix::fs::symlink("../bin/tool", root.join("opt/tool/tool")).unwrap();
}

/// `len` incompressible bytes (xorshift), the same every time.
pub fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `elsx pack DIR -o IMAGE ARGS...`.
pub fn pack(dir: &Path, image: &Path, args: &[&str]) -> Run {
    let mut argv: Vec<std::ffi::OsString> =
        vec!["pack".into(), dir.into(), "-o".into(), image.into()];
    argv.extend(args.iter().map(Into::into));
    elsx(argv)
}

/// Overwrites bytes of a file at `offset`.
pub fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::Seek;
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(std::io::SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// An RSA key and a self-signed certificate made by the openssl CLI: (key.pem, cert.pem).
pub fn openssl_key(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    require_tools(&["openssl"]);
    let (key, cert) = (dir.join(format!("{cn}.key")), dir.join(format!("{cn}.crt")));
    run_tool(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
            ])
            .arg("-subj")
            .arg(format!("/CN={cn}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
    );
    (key, cert)
}

/// `sfdisk --json IMAGE`: the partitions.
pub fn sfdisk_partitions(image: &Path) -> Vec<serde_json::Value> {
    require_tools(&["sfdisk"]);
    let out = run_tool(Command::new("sfdisk").arg("--json").arg(image));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    j["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .clone()
}

/// The bytes of one partition of an `sfdisk --json` listing.
pub fn partition_bytes(image: &Path, p: &serde_json::Value) -> Vec<u8> {
    let all = std::fs::read(image).unwrap();
    let start = p["start"].as_u64().unwrap() as usize * 512;
    let size = p["size"].as_u64().unwrap() as usize * 512;
    all[start..start + size].to_vec()
}

/// Converts a primary.xml with libsolv's `rpmmd2solv` into the `.solv` file `solv`.
pub fn rpmmd2solv(xml: &[u8], solv: &Path) {
    let mut child = Command::new("rpmmd2solv")
        .stdin(Stdio::piped())
        .stdout(std::fs::File::create(solv).unwrap())
        .spawn()
        .expect("running rpmmd2solv");
    child.stdin.take().unwrap().write_all(xml).unwrap();
    assert!(child.wait().unwrap().success(), "rpmmd2solv failed");
}
