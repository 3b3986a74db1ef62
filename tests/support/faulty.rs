//! An HTTP/1.1 file server on 127.0.0.1 that misbehaves on purpose: 503 answers, connections
//! reset or closed in the middle of a body, wrong bytes, stalls, and vanishing altogether. It also
//! plays openSUSE's download redirector: with `Accept: application/metalink4+xml` it answers
//! for RPMs with a metalink naming mirrors, and `?mirrorlist` gets a JSON mirror list as
//! MirrorCache serves it. It honours `Range` (206) and answers `If-None-Match` /
//! `If-Modified-Since` with 304 from an ETag and Last-Modified of each file.
//!
//! Include it with `#[path = "support/faulty.rs"] mod faulty;` beside `mod support;` (it reads
//! request headers with `support::read_headers`).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What goes wrong.
#[derive(Clone, Debug)]
pub enum Fault {
    /// `503 Service Unavailable`.
    Unavailable,
    /// The headers and half the body, then a TCP reset.
    Reset,
    /// The headers (with the full Content-Length) and half the body, then a clean close.
    Truncate,
    /// The whole body with some bytes changed.
    Corrupt,
    /// The headers, then nothing for this long, then the body.
    Stall(Duration),
    /// The server closes its port and every connection, for good.
    Vanish,
}

/// A fault for requests whose path ends with `suffix`, the first `times` times.
#[derive(Clone, Debug)]
pub struct Rule {
    pub suffix: String,
    pub fault: Fault,
    pub times: u32,
}

impl Rule {
    pub fn new(suffix: &str, fault: Fault, times: u32) -> Rule {
        Rule {
            suffix: suffix.to_owned(),
            fault,
            times,
        }
    }
    pub fn always(suffix: &str, fault: Fault) -> Rule {
        Rule::new(suffix, fault, u32::MAX)
    }
}

/// One request, as answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logged {
    pub path: String,
    pub query: String,
    pub status: u16,
    /// The start of a `Range: bytes=N-` request.
    pub range_from: Option<u64>,
    pub wanted_metalink: bool,
    /// The fault injected, if any.
    pub fault: Option<String>,
}

struct Shared {
    root: PathBuf,
    rules: Mutex<Vec<Rule>>,
    /// Mirror base URLs the redirector names (empty: serve files directly).
    mirrors: Mutex<Vec<String>>,
    log: Mutex<Vec<Logged>>,
    stop: AtomicBool,
    open: Mutex<Vec<TcpStream>>,
    addr: SocketAddr,
}

pub struct FaultyServer {
    shared: Arc<Shared>,
    accept: Option<thread::JoinHandle<()>>,
}

impl FaultyServer {
    pub fn start(root: &Path, rules: Vec<Rule>) -> FaultyServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let shared = Arc::new(Shared {
            root: std::fs::canonicalize(root).unwrap(),
            rules: Mutex::new(rules),
            mirrors: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            addr: listener.local_addr().unwrap(),
        });
        let s = shared.clone();
        let accept = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                if let Ok(c) = conn.try_clone() {
                    s.open.lock().unwrap().push(c);
                }
                let s = s.clone();
                thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
            // The listener is dropped here: the port refuses connections from now on.
        });
        FaultyServer {
            shared,
            accept: Some(accept),
        }
    }

    /// Makes this server a redirector: RPM requests that accept a metalink get one naming
    /// these mirrors (base URLs), in this order.
    pub fn redirect_to(&self, mirrors: &[String]) {
        *self.shared.mirrors.lock().unwrap() = mirrors.to_vec();
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.shared.addr)
    }

    pub fn log(&self) -> Vec<Logged> {
        self.shared.log.lock().unwrap().clone()
    }

    /// Requests for paths ending with `suffix`.
    pub fn log_for(&self, suffix: &str) -> Vec<Logged> {
        self.log()
            .into_iter()
            .filter(|l| l.path.ends_with(suffix))
            .collect()
    }

    /// Closes the port and every open connection.
    pub fn vanish(&self) {
        vanish(&self.shared);
    }
}

fn vanish(s: &Shared) {
    if s.stop.swap(true, Ordering::SeqCst) {
        return;
    }
    // Wake the accept loop so that it drops the listener.
    let _ = TcpStream::connect_timeout(&s.addr, Duration::from_secs(1));
    for c in s.open.lock().unwrap().drain(..) {
        let _ = c.shutdown(Shutdown::Both);
    }
}

impl Drop for FaultyServer {
    fn drop(&mut self) {
        vanish(&self.shared);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

/// The fault for this path, if a rule still has tries left (and counts one down).
fn take_fault(s: &Shared, path: &str) -> Option<Fault> {
    let mut rules = s.rules.lock().unwrap();
    let r = rules
        .iter_mut()
        .find(|r| r.times > 0 && path.ends_with(&r.suffix))?;
    if r.times != u32::MAX {
        r.times -= 1;
    }
    Some(r.fault.clone())
}

fn sha256_hex(data: &[u8]) -> String {
    elsx::checksum::Algo::Sha256.digest_hex(data)
}

fn metalink(name: &str, data: &[u8], urls: &[String]) -> String {
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\">\n  <generator>faulty test redirector</generator>\n  <file name=\"{name}\">\n    <size>{}</size>\n    <hash type=\"sha-256\">{}</hash>\n",
        data.len(),
        sha256_hex(data)
    );
    for (i, u) in urls.iter().enumerate() {
        s.push_str(&format!(
            "    <url location=\"de\" priority=\"{}\">{u}</url>\n",
            i + 1
        ));
    }
    s.push_str("  </file>\n</metalink>\n");
    s
}

fn serve(stream: TcpStream, s: &Shared) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || s.stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let line = line.trim_end().to_owned();
        if line.is_empty() {
            continue;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
        let mut range_from = None;
        let mut accept = String::new();
        let mut inm = None;
        let mut ims = None;
        let Some(headers) = crate::support::read_headers(&mut reader)? else {
            return Ok(());
        };
        for (k, v) in headers {
            match k.as_str() {
                "range" => {
                    range_from = v
                        .strip_prefix("bytes=")
                        .and_then(|r| r.strip_suffix('-'))
                        .and_then(|n| n.parse::<u64>().ok())
                }
                "accept" => accept = v,
                "if-none-match" => inm = Some(v),
                "if-modified-since" => ims = Some(v),
                _ => {}
            }
        }
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p.to_owned(), q.to_owned()),
            None => (target.clone(), String::new()),
        };
        let wanted_metalink = accept.contains("application/metalink4+xml");
        let mut logged = Logged {
            path: path.clone(),
            query: query.clone(),
            status: 200,
            range_from,
            wanted_metalink,
            fault: None,
        };
        let file = s.root.join(path.trim_start_matches('/'));
        let data = if path.contains("..") {
            None
        } else {
            std::fs::read(&file).ok()
        };
        let fault = take_fault(s, &path);
        logged.fault = fault.as_ref().map(|f| format!("{f:?}"));
        let mirrors = s.mirrors.lock().unwrap().clone();
        if query == "mirrorlist" {
            let list: Vec<String> = mirrors
                .iter()
                .map(|m| format!("{{\"url\":\"{m}\"}}"))
                .collect();
            let body = format!("[{}]", list.join(","));
            s.log.lock().unwrap().push(logged);
            respond(&mut w, 200, "application/json", &[], body.as_bytes())?;
            continue;
        }
        match fault {
            Some(Fault::Vanish) => {
                logged.status = 0;
                s.log.lock().unwrap().push(logged);
                vanish(s);
                return Ok(());
            }
            Some(Fault::Unavailable) => {
                logged.status = 503;
                s.log.lock().unwrap().push(logged);
                respond(
                    &mut w,
                    503,
                    "text/plain",
                    &[("Retry-After", "0".into())],
                    b"busy\n",
                )?;
                continue;
            }
            _ => {}
        }
        let Some(mut data) = data else {
            logged.status = 404;
            s.log.lock().unwrap().push(logged);
            respond(&mut w, 404, "text/plain", &[], b"not found\n")?;
            continue;
        };
        if wanted_metalink && !mirrors.is_empty() && path.ends_with(".rpm") {
            let urls: Vec<String> = mirrors
                .iter()
                .map(|m| format!("{}{}", m, path.trim_start_matches('/')))
                .collect();
            let name = path.rsplit('/').next().unwrap_or("");
            let body = metalink(name, &data, &urls);
            s.log.lock().unwrap().push(logged);
            respond(
                &mut w,
                200,
                "application/metalink4+xml",
                &[],
                body.as_bytes(),
            )?;
            continue;
        }
        // Validators: a strong ETag from the content, a fixed date.
        let etag = format!("\"{}\"", &sha256_hex(&data)[..16]);
        let last_modified = "Tue, 14 Nov 2023 22:13:20 GMT".to_owned();
        if inm.as_deref() == Some(etag.as_str())
            || (inm.is_none() && ims.as_deref() == Some(last_modified.as_str()))
        {
            logged.status = 304;
            s.log.lock().unwrap().push(logged);
            respond(&mut w, 304, "", &[("ETag", etag)], b"")?;
            continue;
        }
        if let Some(Fault::Corrupt) = fault {
            let n = data.len();
            for b in &mut data[n.saturating_sub(64)..n.saturating_sub(32)] {
                *b ^= 0x5a;
            }
        }
        let total = data.len() as u64;
        let (status, body, mut extra) = match range_from {
            Some(from) if from >= total => {
                logged.status = 416;
                s.log.lock().unwrap().push(logged);
                respond(
                    &mut w,
                    416,
                    "text/plain",
                    &[("Content-Range", format!("bytes */{total}"))],
                    b"",
                )?;
                continue;
            }
            Some(from) => (
                206,
                data[from as usize..].to_vec(),
                vec![(
                    "Content-Range",
                    format!("bytes {from}-{}/{total}", total - 1),
                )],
            ),
            None => (200, data, Vec::new()),
        };
        extra.push(("ETag", etag));
        extra.push(("Last-Modified", last_modified));
        extra.push(("Accept-Ranges", "bytes".into()));
        logged.status = status;
        s.log.lock().unwrap().push(logged);
        let head = head(status, "application/x-rpm", &extra, body.len());
        match fault {
            Some(Fault::Reset) | Some(Fault::Truncate) => {
                w.write_all(head.as_bytes())?;
                w.write_all(&body[..body.len() / 2])?;
                w.flush()?;
                thread::sleep(Duration::from_millis(50));
                if let Some(Fault::Reset) = fault {
                    // Linger 0: close() sends RST instead of FIN.
                    socket2::SockRef::from(&w).set_linger(Some(Duration::ZERO))?;
                    drop(reader);
                    drop(w);
                } else {
                    w.shutdown(Shutdown::Both)?;
                }
                return Ok(());
            }
            Some(Fault::Stall(d)) => {
                w.write_all(head.as_bytes())?;
                w.flush()?;
                thread::sleep(d);
                if w.write_all(&body).is_err() {
                    return Ok(());
                }
            }
            _ => {
                let mut out = head.into_bytes();
                out.extend_from_slice(&body);
                w.write_all(&out)?;
            }
        }
        w.flush()?;
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

fn head(status: u16, content_type: &str, extra: &[(&str, String)], len: usize) -> String {
    let mut h = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if status != 304 {
        h.push_str(&format!(
            "Content-Type: {content_type}\r\nContent-Length: {len}\r\n"
        ));
    }
    for (k, v) in extra {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("Connection: keep-alive\r\n\r\n");
    h
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = head(status, content_type, extra, body.len()).into_bytes();
    out.extend_from_slice(body);
    w.write_all(&out)?;
    w.flush()
}
