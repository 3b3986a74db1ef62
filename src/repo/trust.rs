//! Deciding whether a repository's metadata is trusted, with zypper's policy (see
//! [`RepoDef::repo_gpgcheck`]): which keys it may be signed with, whether `repomd.xml.asc`
//! verifies, and what its packages then need.
//!
//! Keys: every `gpgkey=` URL (fetched through [`Fetcher`]) and the repository's own
//! `repodata/repomd.xml.key`. With `gpgkey-fingerprint=` pins, only keys with a pinned
//! fingerprint are trusted, wherever they come from; without pins the `gpgkey=` keys are
//! trusted (the definition names them) and `repomd.xml.key` is not (anyone who can change
//! repomd.xml can change it too).

use super::RepoError;
use super::definition::RepoDef;
use super::sig::{self, Keyring};
use crate::fetch::{FetchError, Fetcher};
use crate::report::{Event, Reporter};

/// What the build may rely on for one repository.
#[derive(Clone, Debug, Default)]
pub struct Trust {
    /// repomd.xml's signature verified with a trusted key: checksums from it vouch for the
    /// packages.
    pub metadata_verified: bool,
    /// Package signatures are checked (`pkg_gpgcheck`, or `gpgcheck` without verified metadata).
    pub check_packages: bool,
    /// An unsigned package is refused (a badly signed one always is when packages are checked).
    pub packages_must_be_signed: bool,
    /// The trusted keys, for the packages.
    pub keyring: Keyring,
}

/// A file that is not there (as opposed to one that could not be read).
fn absent(e: &FetchError) -> bool {
    match e {
        FetchError::Status { status, .. } => matches!(status, 404 | 410),
        FetchError::File { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        // Offline, a signature never seen is as good as none: the policy decides.
        FetchError::Offline { .. } => true,
        _ => false,
    }
}

/// Checks `repomd.xml` (the bytes `md` read from `md_url`) as `def` asks.
pub fn verify_repository(
    def: &RepoDef,
    f: &Fetcher,
    md_url: &str,
    md: &[u8],
    r: &dyn Reporter,
) -> Result<Trust, RepoError> {
    let repo_check = def.repo_gpgcheck();
    // Keys are needed unless nothing is checked at all.
    if !repo_check && !def.pkg_gpgcheck(false) {
        return Ok(Trust::default());
    }
    let fail = |message: String| RepoError::Signature {
        alias: def.alias.clone(),
        message,
        origin: def.origin.clone(),
    };
    let fetch_err = |url: &str, source| RepoError::Fetch {
        alias: def.alias.clone(),
        url: url.to_owned(),
        source,
    };
    let optional = |url: &str| match f.get(url) {
        Ok(b) => Ok(Some(b)),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(fetch_err(url, e)),
    };
    let pinned = |fp: &str| def.gpgkey_fingerprint.iter().any(|p| p == fp);

    let mut keyring = Keyring {
        // Keys must be alive now, not only when they signed.
        now: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs() as i64),
        ..Keyring::default()
    };
    let mut refused: Vec<String> = Vec::new();
    // A key URL that is not there is skipped, as zypper does: the policy then decides.
    let mut missing: Vec<&str> = Vec::new();
    for url in &def.gpgkey {
        let Some(bytes) = optional(url)? else {
            missing.push(url);
            continue;
        };
        let keys = sig::parse_keys(&bytes, url).map_err(|e| fail(e.to_string()))?;
        let (ok, no): (Vec<_>, Vec<_>) = keys
            .into_iter()
            .partition(|k| def.gpgkey_fingerprint.is_empty() || pinned(&sig::fingerprint(k)));
        refused.extend(
            no.iter()
                .map(|k| format!("{} from {url}", sig::fingerprint(k))),
        );
        keyring.add(ok, url);
    }
    let key_url = format!("{md_url}.key");
    if !def.gpgkey_fingerprint.is_empty()
        && !def.gpgkey.contains(&key_url)
        && let Some(bytes) = optional(&key_url)?
    {
        let keys = sig::parse_keys(&bytes, &key_url).map_err(|e| fail(e.to_string()))?;
        let (ok, no): (Vec<_>, Vec<_>) =
            keys.into_iter().partition(|k| pinned(&sig::fingerprint(k)));
        refused.extend(
            no.iter()
                .map(|k| format!("{} from {key_url}", sig::fingerprint(k))),
        );
        keyring.add(ok, &key_url);
    }
    let untrusted = || {
        let pins = if def.gpgkey_fingerprint.is_empty() {
            "no gpgkey= and no gpgkey-fingerprint= in the definition".to_owned()
        } else {
            format!("pinned: {}", def.gpgkey_fingerprint.join(", "))
        };
        let mut out = pins;
        if !refused.is_empty() {
            out.push_str(&format!(
                "; not pinned, so not trusted: {}",
                refused.join(", ")
            ));
        }
        if !missing.is_empty() {
            out.push_str(&format!("; not found: {}", missing.join(", ")));
        }
        out
    };

    let mut verified = false;
    if repo_check {
        let asc_url = format!("{md_url}.asc");
        match optional(&asc_url)? {
            Some(asc) => {
                keyring
                    .verify_detached(md, &asc, &asc_url)
                    .map_err(|e| match e {
                        sig::SigError::UnknownKey { .. } => {
                            fail(format!("{e}; {}", untrusted()))
                        }
                        e => fail(e.to_string()),
                    })?;
                verified = true;
            }
            None if def.repo_gpgcheck_mandatory() => {
                return Err(fail(format!(
                    "{md_url} is not signed (there is no {asc_url}), and gpgcheck asks for a signed repository"
                )));
            }
            None => r.event(Event::Warning(&format!(
                "repository {}: {md_url} is not signed; accepted because repo_gpgcheck=0 ({}); its packages' signatures are checked instead",
                def.alias, def.origin
            ))),
        }
    }
    let check_packages = def.pkg_gpgcheck(verified);
    if check_packages && keyring.is_empty() && def.pkg_gpgcheck_mandatory(verified) {
        return Err(fail(format!(
            "its packages must be signed, but no key is trusted ({})",
            untrusted()
        )));
    }
    Ok(Trust {
        metadata_verified: verified,
        check_packages,
        packages_must_be_signed: def.pkg_gpgcheck_mandatory(verified),
        keyring,
    })
}

/// Checks a downloaded package as `trust` asks (nothing when its checksum came from verified
/// metadata and `pkg_gpgcheck` is not set).
pub fn check_package(trust: &Trust, data: &[u8]) -> Result<(), sig::RpmSigError> {
    if trust.check_packages {
        sig::check_rpm(&trust.keyring, data, trust.packages_must_be_signed)?;
    }
    Ok(())
}
