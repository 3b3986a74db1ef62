//! Getting bytes from `http(s)://` and `file://` URLs into the verified cache.
//!
//! Invariant: this is the only module that touches the network.

use crate::cache::{Bucket, Cache};
use crate::checksum::Checksum;
use crate::report::{Event, Reporter, Stage};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;
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
    #[error("{url}: not in the cache, and --offline forbids downloading it")]
    Offline { url: String },
    #[error("{url}: unsupported URL scheme (use http://, https:// or file://)")]
    Scheme { url: String },
    #[error("writing to the cache")]
    Cache(#[from] std::io::Error),
}

pub struct Fetcher {
    client: OnceLock<Result<reqwest::blocking::Client, String>>,
    pub cache: Cache,
    pub offline: bool,
}

/// Joins a base URL and a relative location (`x86_64/foo.rpm`).
pub fn join(base: &str, rel: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        rel.trim_start_matches('/')
    )
}

impl Fetcher {
    pub fn new(cache: Cache, offline: bool) -> Fetcher {
        Fetcher {
            client: OnceLock::new(),
            cache,
            offline,
        }
    }

    fn client(&self, url: &str) -> Result<&reqwest::blocking::Client, FetchError> {
        self.client
            .get_or_init(|| {
                reqwest::blocking::Client::builder()
                    .user_agent(concat!("elsx/", env!("CARGO_PKG_VERSION")))
                    .connect_timeout(Duration::from_secs(20))
                    .timeout(None::<Duration>)
                    .tcp_keepalive(Duration::from_secs(30))
                    .build()
                    .map_err(|e| e.to_string())
            })
            .as_ref()
            .map_err(|m| FetchError::Transport {
                url: url.to_owned(),
                message: m.clone(),
            })
    }

    /// Opens a URL for reading.
    fn open(&self, url: &str) -> Result<Box<dyn Read + Send>, FetchError> {
        if let Some(path) = url.strip_prefix("file://") {
            let f = fs_err::File::open(path).map_err(|source| FetchError::File {
                url: url.to_owned(),
                source,
            })?;
            return Ok(Box::new(f));
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(FetchError::Scheme {
                url: url.to_owned(),
            });
        }
        if self.offline {
            return Err(FetchError::Offline {
                url: url.to_owned(),
            });
        }
        let resp = self
            .client(url)?
            .get(url)
            .send()
            .map_err(|e| FetchError::Transport {
                url: url.to_owned(),
                message: error_chain(&e),
            })?;
        if !resp.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: resp.status().as_u16(),
            });
        }
        Ok(Box::new(resp))
    }

    /// Reads a small file whose content is not known in advance (repomd.xml). A copy is kept so
    /// that `--offline` can use it.
    pub fn get(&self, url: &str) -> Result<Vec<u8>, FetchError> {
        if self.offline && !url.starts_with("file://") {
            let p = self.cache.keyed(Bucket::Repomd, url);
            return fs_err::read(&p).map_err(|_| FetchError::Offline {
                url: url.to_owned(),
            });
        }
        let mut data = Vec::new();
        self.open(url)?
            .read_to_end(&mut data)
            .map_err(|e| FetchError::Transport {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
        if !url.starts_with("file://") {
            self.cache.store_keyed(Bucket::Repomd, url, &data)?;
        }
        Ok(data)
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
        if let Some(p) = self.cache.lookup(bucket, sum) {
            reporter.event(Event::Item {
                stage,
                name,
                bytes: 0,
                cached: true,
            });
            return Ok((p, true));
        }
        let mut src = self.open(url)?;
        let mut tmp = self.cache.temp(bucket)?;
        let mut h = sum.algo.hasher();
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0u64;
        loop {
            let n = src.read(&mut buf).map_err(|e| FetchError::Transport {
                url: url.to_owned(),
                message: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            tmp.write_all(&buf[..n])?;
            total += n as u64;
        }
        let actual = h.finish_hex();
        if actual != sum.hex {
            return Err(FetchError::Checksum {
                url: url.to_owned(),
                expected: sum.to_string(),
                actual: format!("{}:{actual}", sum.algo.name()),
            });
        }
        let dest = self.cache.path(bucket, sum);
        self.cache.publish(tmp, &dest)?;
        reporter.event(Event::Item {
            stage,
            name,
            bytes: total,
            cached: false,
        });
        Ok((dest, false))
    }
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
