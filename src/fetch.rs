//! Getting bytes from `http(s)://` and `file://` URLs into the verified cache.
//!
//! Every HTTP download: asks for a metalink the way zypper does (a redirector such as
//! download.opensuse.org then answers with the file's mirrors, which are tried best first, a
//! failing one demoted for the rest of the run); retries 5xx answers, resets, truncated bodies
//! and timeouts with exponential backoff, resuming with `Range` what already arrived (also from
//! an earlier run); fails over to the next mirror (from the metalink, or from a repository's
//! `mirrorlist`) when one keeps failing; and verifies the checksum before the file enters the
//! cache. repomd.xml is revalidated with `If-None-Match`/`If-Modified-Since`.
//!
//! Invariant: this is the only module that touches the network.

pub mod metalink;

use crate::cache::{Bucket, Cache, Partial, Validators, hash_reader};
use crate::checksum::{Algo, Checksum, Hasher};
use crate::report::{Event, Reporter, Stage};
use metalink::{Metalink, MetalinkError};
use reqwest::header;
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: the server answered {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Transport { url: String, message: String },
    #[error("{url}")]
    File { url: String, source: std::io::Error },
    #[error("{url}: checksum mismatch: expected {expected}, got {actual}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: not in the cache (no {missing}), and --offline forbids downloading it")]
    Offline { url: String, missing: String },
    #[error("{url}: unsupported URL scheme (use http://, https:// or file://)")]
    Scheme { url: String },
    #[error("{url}: every mirror failed:{}", .errors.iter().map(|e| format!("\n    - {e}")).collect::<String>())]
    Mirrors {
        url: String,
        errors: Vec<FetchError>,
    },
    #[error(transparent)]
    Metalink(#[from] MetalinkError),
    #[error("writing to the cache")]
    Cache(#[from] std::io::Error),
}

/// Timeouts and retries of HTTP transfers.
#[derive(Clone, Debug)]
pub struct Policy {
    pub connect_timeout: Duration,
    /// The longest wait for the answer's headers, and for each piece of its body.
    pub read_timeout: Duration,
    /// Tries of one URL before moving on (to the next mirror, or to an error).
    pub attempts: u32,
    /// The first pause between tries; doubled after each.
    pub backoff: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            attempts: 4,
            backoff: Duration::from_millis(500),
        }
    }
}

impl Policy {
    /// The defaults, changed by `ELSX_HTTP_TIMEOUT` (seconds, read and connect) and
    /// `ELSX_HTTP_RETRIES` (retries after the first try).
    pub fn from_env() -> Policy {
        let mut p = Policy::default();
        if let Some(t) = std::env::var("ELSX_HTTP_TIMEOUT")
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0 && t.is_finite())
        {
            p.read_timeout = Duration::from_secs_f64(t);
            p.connect_timeout = p.connect_timeout.min(p.read_timeout);
        }
        if let Some(n) = std::env::var("ELSX_HTTP_RETRIES")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            p.attempts = n.saturating_add(1);
        }
        p
    }
}

pub struct Fetcher {
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    pub cache: Cache,
    pub offline: bool,
    pub policy: Policy,
    /// The cache's shared lock, taken on first use and held for the fetcher's life.
    lock: OnceLock<Result<std::fs::File, String>>,
    /// Repository base URL → its mirrors' base URLs (from a `mirrorlist`).
    mirrors: Mutex<Vec<(String, Vec<String>)>>,
    /// Failures per host in this run: a mirror that failed is tried after the others.
    failures: Mutex<HashMap<String, u32>>,
}

/// Joins a base URL and a relative location (`x86_64/foo.rpm`).
pub fn join(base: &str, rel: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

/// Where downloaded bytes go: memory (repomd.xml) or a locked partial file (cache entries).
trait Sink {
    /// Bytes held so far (a resumed download asks for the rest).
    fn offset(&self) -> u64;
    /// Whether a broken transfer may continue where it stopped.
    fn can_resume(&self) -> bool;
    fn put(&mut self, data: &[u8]) -> std::io::Result<()>;
    /// Forgets what was received.
    fn restart(&mut self) -> std::io::Result<()>;
    /// The digest of what was received.
    fn digest(&mut self, algo: Algo) -> std::io::Result<String>;
    /// Notes that the bytes come from more than one transfer.
    fn set_resumed(&mut self);
    fn resumed(&self) -> bool;
}

/// repomd.xml and friends: small, so a broken transfer starts over rather than resume (their
/// content is not known in advance, and two pieces of two versions would pass unnoticed).
#[derive(Default)]
struct Memory {
    data: Vec<u8>,
}

impl Sink for Memory {
    fn offset(&self) -> u64 {
        self.data.len() as u64
    }
    fn can_resume(&self) -> bool {
        false
    }
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(data);
        Ok(())
    }
    fn restart(&mut self) -> std::io::Result<()> {
        self.data.clear();
        Ok(())
    }
    fn digest(&mut self, algo: Algo) -> std::io::Result<String> {
        Ok(algo.digest_hex(&self.data))
    }
    fn set_resumed(&mut self) {}
    fn resumed(&self) -> bool {
        false
    }
}

/// A locked partial file and the running digest of its bytes.
struct PartFile {
    part: Partial,
    algo: Algo,
    hasher: Option<Hasher>,
    len: u64,
    resumed: bool,
}

impl PartFile {
    /// Continues what the file holds (a download an earlier run did not finish).
    fn new(mut part: Partial, algo: Algo) -> std::io::Result<PartFile> {
        part.file.rewind()?;
        let (hasher, len) = hash_reader(&mut part.file, algo)?;
        if len > 0 {
            tracing::debug!("{}: resuming after {len} bytes", part.path.display());
        }
        Ok(PartFile {
            part,
            algo,
            hasher: Some(hasher),
            len,
            resumed: len > 0,
        })
    }
}

impl Sink for PartFile {
    fn offset(&self) -> u64 {
        self.len
    }
    fn can_resume(&self) -> bool {
        true
    }
    fn set_resumed(&mut self) {
        self.resumed = true;
    }
    fn put(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.part.file.write_all(data)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(data);
        }
        self.len += data.len() as u64;
        Ok(())
    }
    fn restart(&mut self) -> std::io::Result<()> {
        self.part.file.set_len(0)?;
        self.part.file.rewind()?;
        self.hasher = Some(self.algo.hasher());
        self.len = 0;
        self.resumed = false;
        Ok(())
    }
    fn digest(&mut self, algo: Algo) -> std::io::Result<String> {
        match self.hasher.take() {
            Some(h) if algo == self.algo => Ok(h.finish_hex()),
            _ => {
                // Another algorithm (or asked twice): read the file again.
                self.part.file.rewind()?;
                Ok(hash_reader(&mut self.part.file, algo)?.0.finish_hex())
            }
        }
    }
    fn resumed(&self) -> bool {
        self.resumed
    }
}

/// Where progress goes.
#[derive(Clone, Copy)]
struct Cx<'a> {
    r: &'a dyn Reporter,
    stage: Stage,
}

/// What one HTTP exchange gave.
enum Got {
    /// The body is in the sink; the reply's validators.
    Body(Validators),
    /// A metalink naming the file's mirrors.
    Metalink(Metalink),
    /// 304: the cached copy is current.
    NotModified,
}

/// Why a try failed: worth another try (after the server's `Retry-After`, if it sent one), or not.
enum Failure {
    Retry(FetchError, Option<Duration>),
    Final(FetchError),
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

impl Fetcher {
    pub fn new(cache: Cache, offline: bool) -> Fetcher {
        Fetcher {
            client: OnceLock::new(),
            cache,
            offline,
            policy: Policy::from_env(),
            lock: OnceLock::new(),
            mirrors: Mutex::new(Vec::new()),
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn client(&self, url: &str) -> Result<&reqwest::blocking::Client, FetchError> {
        self.client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .user_agent(concat!("elsx/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(self.policy.connect_timeout)
                    // In the blocking client this bounds the wait for the headers and for each
                    // read of the body: a stalled transfer, not a long one.
                    .timeout(self.policy.read_timeout)
                    .tcp_keepalive(Duration::from_secs(30))
                    .pool_max_idle_per_host(64)
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|m| FetchError::Transport {
                url: url.to_owned(),
                message: m.clone(),
            })
    }

    /// Takes the cache's shared lock once (see `cache`): concurrent builds share the cache,
    /// `cache clean` waits for them.
    fn lock_cache(&self) -> Result<(), FetchError> {
        match self
            .lock
            .get_or_init(|| self.cache.lock(false).map_err(|e| e.to_string()))
        {
            Ok(_) => Ok(()),
            Err(m) => Err(FetchError::Cache(std::io::Error::other(m.clone()))),
        }
    }

    /// Registers a repository's mirror list (`mirrorlist=` of a `.repo` file: a `?mirrorlist`
    /// reply, a metalink or a plain list): files under `base` are tried on these mirrors when
    /// `base` fails. Returns how many mirrors it named.
    pub fn add_mirrorlist(&self, base: &str, list_url: &str) -> Result<usize, FetchError> {
        let data = self.get(list_url)?;
        let mirrors: Vec<String> = metalink::parse_mirrorlist(&data, list_url)?
            .into_iter()
            .filter(|m| m.trim_end_matches('/') != base.trim_end_matches('/'))
            .collect();
        let n = mirrors.len();
        tracing::debug!("{base}: {n} mirrors from {list_url}");
        self.mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((format!("{}/", base.trim_end_matches('/')), mirrors));
        Ok(n)
    }

    /// The URL, then the same file on its repository's mirrors.
    fn candidates(&self, url: &str) -> Vec<String> {
        let mut out = vec![url.to_owned()];
        for (base, mirrors) in self
            .mirrors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            if let Some(rest) = url.strip_prefix(base.as_str()) {
                out.extend(mirrors.iter().map(|m| format!("{m}{rest}")));
            }
        }
        out
    }

    /// Mirrors in the metalink's order, those that failed in this run last.
    fn rank(&self, urls: &[String]) -> Vec<String> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(u32, &String)> = urls
            .iter()
            .map(|u| (failures.get(host_of(u)).copied().unwrap_or(0), u))
            .collect();
        v.sort_by_key(|(f, _)| *f);
        v.into_iter().map(|(_, u)| u.clone()).collect()
    }

    fn failed(&self, url: &str) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(host_of(url).to_owned())
            .or_default() += 1;
    }

    /// One HTTP exchange: the request (resuming from the sink's offset, conditional on
    /// `cond`), then the body into the sink.
    fn exchange(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        ask_metalink: bool,
        cond: Option<&Validators>,
        cx: Cx<'_>,
    ) -> Result<Got, Failure> {
        let transport = |message: String| FetchError::Transport {
            url: url.to_owned(),
            message,
        };
        let client = self.client(url).map_err(Failure::Final)?;
        let mut req = client.get(url);
        if ask_metalink {
            req = req.header(header::ACCEPT, metalink::ACCEPT);
        }
        if !sink.can_resume() {
            sink.restart().map_err(|e| Failure::Final(e.into()))?;
        }
        let offset = sink.offset();
        if offset > 0 {
            req = req.header(header::RANGE, format!("bytes={offset}-"));
        } else if let Some(v) = cond {
            if let Some(e) = &v.etag {
                req = req.header(header::IF_NONE_MATCH, e);
            }
            if let Some(m) = &v.last_modified {
                req = req.header(header::IF_MODIFIED_SINCE, m);
            }
        }
        let mut resp = req.send().map_err(|e| {
            let m = if e.is_timeout() {
                format!(
                    "no answer within {} s",
                    self.policy.read_timeout.as_secs_f64()
                )
            } else {
                error_chain(&e)
            };
            Failure::Retry(transport(m), None)
        })?;
        let status = resp.status().as_u16();
        let text_header = |name: header::HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = text_header(header::CONTENT_TYPE).unwrap_or_default();
        if ask_metalink && status == 200 && metalink::is_metalink_type(&content_type) {
            let mut doc = Vec::new();
            (&mut resp)
                .take(64 << 20)
                .read_to_end(&mut doc)
                .map_err(|e| Failure::Retry(transport(io_message(&e, &self.policy)), None))?;
            let m = metalink::parse(&doc, url).map_err(|e| Failure::Final(e.into()))?;
            return Ok(Got::Metalink(m));
        }
        let validators = Validators {
            etag: text_header(header::ETAG),
            last_modified: text_header(header::LAST_MODIFIED),
        };
        let status_err = || FetchError::Status {
            url: url.to_owned(),
            status,
        };
        match status {
            200 => {
                if offset > 0 {
                    // The server ignored the range: start over.
                    sink.restart().map_err(|e| Failure::Final(e.into()))?;
                }
            }
            206 => {
                let start = text_header(header::CONTENT_RANGE)
                    .and_then(|c| {
                        let c = c.strip_prefix("bytes ")?;
                        c.split('-').next()?.trim().parse::<u64>().ok()
                    })
                    .unwrap_or(u64::MAX);
                if start != offset {
                    sink.restart().map_err(|e| Failure::Final(e.into()))?;
                    return Err(Failure::Retry(
                        transport(format!(
                            "asked for bytes {offset}-, got a range from {start}"
                        )),
                        None,
                    ));
                }
                sink.set_resumed();
            }
            304 if cond.is_some() && offset == 0 => return Ok(Got::NotModified),
            // What we hold may already be the whole file: the caller's checksum decides.
            416 if offset > 0 => return Ok(Got::Body(validators)),
            408 | 425 | 429 | 500..=599 => {
                let wait = text_header(header::RETRY_AFTER)
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(30)));
                return Err(Failure::Retry(status_err(), wait));
            }
            _ => return Err(Failure::Final(status_err())),
        }
        let expected = resp.content_length();
        let mut got = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let of = expected.map(|x| format!(" of {x}")).unwrap_or_default();
                    let what = io_message(&e, &self.policy);
                    let message = if what.contains("end of file before message length reached") {
                        format!("the connection closed after {got}{of} bytes")
                    } else {
                        format!("{what} (after {got}{of} bytes)")
                    };
                    return Err(Failure::Retry(transport(message), None));
                }
            };
            sink.put(&buf[..n]).map_err(|e| Failure::Final(e.into()))?;
            got += n as u64;
            cx.r.event(Event::Progress {
                stage: cx.stage,
                bytes: n as u64,
            });
        }
        if let Some(x) = expected
            && got < x
        {
            return Err(Failure::Retry(
                transport(format!("the connection closed after {got} of {x} bytes")),
                None,
            ));
        }
        Ok(Got::Body(validators))
    }

    /// One exchange ([`Fetcher::exchange`] of one URL) with retries and backoff.
    fn with_retries(
        &self,
        mut exchange: impl FnMut() -> Result<Got, Failure>,
    ) -> Result<Got, FetchError> {
        let mut pause = self.policy.backoff;
        for attempt in 1.. {
            match exchange() {
                Ok(g) => return Ok(g),
                Err(Failure::Final(e)) => return Err(e),
                Err(Failure::Retry(e, wait)) => {
                    if attempt >= self.policy.attempts {
                        return Err(e);
                    }
                    let wait = wait.unwrap_or(pause);
                    tracing::info!("{e}; trying again in {:.1} s", wait.as_secs_f64());
                    std::thread::sleep(wait);
                    pause *= 2;
                }
            }
        }
        unreachable!("the loop returns")
    }

    /// Checks what the sink holds against `expect`. A mismatch after a resumed transfer earns
    /// one more transfer from the start (the file may have changed between the pieces).
    fn verify(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        expect: Option<&Checksum>,
        cx: Cx<'_>,
    ) -> Result<(), FetchError> {
        let Some(sum) = expect else {
            return Ok(());
        };
        let actual = sink.digest(sum.algo)?;
        if actual == sum.hex {
            return Ok(());
        }
        let resumed = sink.resumed();
        sink.restart()?;
        let mismatch = |actual: String| FetchError::Checksum {
            url: url.to_owned(),
            expected: sum.to_string(),
            actual: format!("{}:{actual}", sum.algo.name()),
        };
        if !resumed {
            return Err(mismatch(actual));
        }
        tracing::info!("{}; downloading it again from the start", mismatch(actual));
        self.with_retries(|| self.exchange(url, sink, false, None, cx))?;
        let actual = sink.digest(sum.algo)?;
        if actual == sum.hex {
            return Ok(());
        }
        sink.restart()?;
        Err(mismatch(actual))
    }

    /// Gets `url` into the sink, verified: from the URL itself, or from the mirrors its
    /// metalink names, best first.
    fn try_source(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        expect: Option<&Checksum>,
        ask_metalink: bool,
        cond: Option<&Validators>,
        cx: Cx<'_>,
    ) -> Result<Got, FetchError> {
        match self.with_retries(|| self.exchange(url, sink, ask_metalink, cond, cx))? {
            Got::Metalink(m) => {
                // The caller's checksum (from signed-over metadata) wins over the metalink's.
                let from_metalink = m.hashes.iter().max_by_key(|h| h.algo as u8).cloned();
                let expect = expect.cloned().or(from_metalink);
                let mirrors = self.rank(&m.urls);
                if mirrors.is_empty() {
                    return Err(FetchError::Transport {
                        url: url.to_owned(),
                        message: "the server answered with a metalink that names no http(s) mirror"
                            .into(),
                    });
                }
                tracing::debug!("{url}: metalink with {} mirrors", mirrors.len());
                let mut errors = Vec::new();
                for m in mirrors {
                    if expect.is_none() {
                        sink.restart()?;
                    }
                    match self.try_source(&m, sink, expect.as_ref(), false, None, cx) {
                        Ok(g) => return Ok(g),
                        Err(e) => {
                            tracing::info!("mirror failed: {e}");
                            self.failed(&m);
                            errors.push(e);
                        }
                    }
                }
                Err(FetchError::Mirrors {
                    url: url.to_owned(),
                    errors,
                })
            }
            Got::Body(v) => {
                self.verify(url, sink, expect, cx)?;
                Ok(Got::Body(v))
            }
            Got::NotModified => Ok(Got::NotModified),
        }
    }

    /// Gets `url` into the sink from the first source that gives the right bytes: the URL,
    /// then the repository's mirrors.
    fn download(
        &self,
        url: &str,
        sink: &mut dyn Sink,
        expect: Option<&Checksum>,
        cond: Option<&Validators>,
        cx: Cx<'_>,
    ) -> Result<Got, FetchError> {
        let candidates = self.candidates(url);
        if candidates.len() == 1 {
            return self.try_source(url, sink, expect, true, cond, cx);
        }
        let mut errors = Vec::new();
        for (i, c) in candidates.iter().enumerate() {
            // Validators belong to the origin's copy.
            let cond = if i == 0 { cond } else { None };
            if expect.is_none() {
                sink.restart()?;
            }
            match self.try_source(c, sink, expect, true, cond, cx) {
                Ok(g) => return Ok(g),
                Err(e) => {
                    tracing::info!("{e}; trying the next mirror");
                    self.failed(c);
                    errors.push(e);
                }
            }
        }
        Err(FetchError::Mirrors {
            url: url.to_owned(),
            errors,
        })
    }

    /// Reads a small file whose content is not known in advance (repomd.xml). A copy is kept
    /// with its ETag and Last-Modified: the next run asks the server whether it changed (a 304
    /// answer costs no body), and `--offline` uses it.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            return fs_err::read(path).map_err(|source| FetchError::File {
                url: url.to_owned(),
                source,
            });
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme {
                url: url.to_owned(),
            });
        }
        self.lock_cache()?;
        let cached = self.cache.load_http(Bucket::Repomd, url);
        if self.offline {
            return cached
                .map(|(_, body)| body)
                .ok_or_else(|| FetchError::Offline {
                    url: url.to_owned(),
                    missing: self.cache.keyed(Bucket::Repomd, url).display().to_string(),
                });
        }
        let cond = cached.as_ref().map(|(v, _)| v).filter(|v| !v.is_empty());
        let mut sink = Memory::default();
        let silent = crate::report::Silent;
        let cx = Cx {
            r: &silent,
            stage: Stage::Metadata,
        };
        match self.download(url, &mut sink, None, cond, cx)? {
            Got::NotModified => {
                tracing::debug!("{url}: not modified");
                Ok(cached.map(|(_, b)| b).unwrap_or_default())
            }
            Got::Body(v) => {
                self.cache.store_http(Bucket::Repomd, url, &v, &sink.data)?;
                Ok(sink.data)
            }
            Got::Metalink(_) => unreachable!("try_source follows metalinks"),
        }
    }

    /// Returns the path of a verified copy of `url` in the cache, downloading it if needed.
    /// The second value says whether it was already cached.
    pub fn get_verified(
        &self,
        url: &str,
        sum: &Checksum,
        bucket: Bucket,
        reporter: &dyn Reporter,
        stage: Stage,
        name: &str,
    ) -> Result<(PathBuf, bool), FetchError> {
        let remote = !url.starts_with("file://");
        if remote {
            self.lock_cache()?;
        }
        let cached = |p: PathBuf| {
            let len = std::fs::metadata(&p).map_or(0, |m| m.len());
            reporter.event(Event::Progress { stage, bytes: len });
            reporter.event(Event::Item {
                stage,
                name,
                bytes: 0,
                cached: true,
            });
            Ok((p, true))
        };
        if let Some(p) = self.cache.lookup(bucket, sum) {
            return cached(p);
        }
        if self.offline && remote {
            return Err(FetchError::Offline {
                url: url.to_owned(),
                missing: self.cache.path(bucket, sum).display().to_string(),
            });
        }
        let Some(part) = self.cache.partial(bucket, sum)? else {
            // Another build finished it while we waited.
            return match self.cache.lookup(bucket, sum) {
                Some(p) => cached(p),
                None => Err(FetchError::Cache(std::io::Error::other(format!(
                    "{}: vanished from the cache",
                    self.cache.path(bucket, sum).display()
                )))),
            };
        };
        let mut sink = PartFile::new(part, sum.algo)?;
        let cx = Cx { r: reporter, stage };
        let res = if let Some(path) = url.strip_prefix("file://") {
            self.copy_file(url, path, &mut sink)
                .and_then(|()| self.verify(url, &mut sink, Some(sum), cx))
        } else {
            self.download(url, &mut sink, Some(sum), None, cx)
                .map(|_| ())
        };
        match res {
            Ok(()) => {
                let total = sink.len;
                let dest = sink.part.publish()?;
                reporter.event(Event::Item {
                    stage,
                    name,
                    bytes: total,
                    cached: false,
                });
                Ok((dest, false))
            }
            Err(e) => {
                // Wrong bytes are thrown away; bytes cut short are kept for the next run.
                if sink.len == 0 || matches!(e, FetchError::Checksum { .. }) {
                    sink.part.discard();
                }
                Err(e)
            }
        }
    }

    fn copy_file(&self, url: &str, path: &str, sink: &mut PartFile) -> Result<(), FetchError> {
        sink.restart()?;
        let mut f = fs_err::File::open(path).map_err(|source| FetchError::File {
            url: url.to_owned(),
            source,
        })?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf).map_err(|source| FetchError::File {
                url: url.to_owned(),
                source,
            })?;
            if n == 0 {
                return Ok(());
            }
            sink.put(&buf[..n])?;
        }
    }
}

/// A body read error in words: reqwest wraps timeouts and resets in `io::Error`s.
fn io_message(e: &std::io::Error, p: &Policy) -> String {
    if e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|i| i.downcast_ref::<reqwest::Error>())
            .is_some_and(|r| r.is_timeout())
    {
        return format!(
            "no data for {} s: the transfer stalled",
            p.read_timeout.as_secs_f64()
        );
    }
    error_chain(e)
}

/// reqwest's errors put the useful part (connection refused, DNS) in their sources.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}
