//! OpenPGP signatures: repository keys, `repomd.xml.asc` and RPM header signatures (rpgp).
//!
//! Contract: everything here takes bytes and does no I/O. [`Keyring`] holds the keys a
//! repository is trusted with; [`Keyring::verify_detached`] checks a detached signature
//! (`repomd.xml.asc`); [`check_rpm`] checks an RPM as `rpm -K` does: header digest, payload
//! digest, and a header-only signature (v4 RSA/EdDSA `RSAHEADER`/`DSAHEADER`, or rpm 6's
//! `OPENPGP` v4/v6 signatures) by a key of the keyring. A good signature counts only from a key
//! (and signing subkey) that is not revoked and had not expired when it signed, nor by
//! [`Keyring::now`].

use crate::checksum::Algo;
use pgp::composed::{Deserializable, SignedPublicKey};
use pgp::packet::{Packet, PacketParser, Signature, SignatureType};
use pgp::types::KeyDetails;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigError {
    #[error("{what}: not an OpenPGP public key: {message}")]
    Key { what: String, message: String },
    #[error("{what}: not an OpenPGP signature")]
    NotASignature { what: String },
    #[error("{what} is signed by key {issuer}, which is not among the trusted keys ({trusted})")]
    UnknownKey {
        what: String,
        issuer: String,
        trusted: String,
    },
    #[error("{what}: BAD signature by key {key}: {message}")]
    Bad {
        what: String,
        key: String,
        message: String,
    },
    #[error("{what} is signed by key {key}, which its owner revoked ({reason}): refusing it")]
    Revoked {
        what: String,
        key: String,
        reason: String,
    },
    #[error("{what} is signed by key {key}, which expired on {expired}: refusing it")]
    Expired {
        what: String,
        key: String,
        expired: String,
    },
    #[error(
        "{what} was signed on {signed} by key {key}, which had expired on {expired}: refusing it"
    )]
    SignedAfterExpiry {
        what: String,
        key: String,
        signed: String,
        expired: String,
    },
}

/// A trusted public key and where it came from.
#[derive(Clone, Debug)]
pub struct Key {
    pub key: SignedPublicKey,
    /// The primary key's fingerprint, upper-case hex without spaces.
    pub fingerprint: String,
    pub origin: String,
}

/// The keys a repository's metadata and packages may be signed with.
#[derive(Clone, Debug, Default)]
pub struct Keyring {
    pub keys: Vec<Key>,
    /// The time (Unix seconds) at which keys must not have expired; `None` checks expiry only
    /// against the time each signature was made. Revoked keys are refused either way.
    pub now: Option<i64>,
}

/// `YYYY-MM-DD HH:MM:SS UTC`, for messages (the proleptic Gregorian calendar, from the days
/// since 1970 as in Howard Hinnant's `civil_from_days`).
fn date(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (rem / 3600, rem / 60 % 60, rem % 60);
    format!("{year:04}-{month:02}-{day:02} {h:02}:{m:02}:{s:02} UTC")
}

/// When a key whose self-signatures (or binding signatures) are `sigs` expires: the newest one
/// decides (an owner extends a key's life with a new self-signature).
fn expires_at(created: pgp::types::Timestamp, sigs: &[&Signature]) -> Option<i64> {
    let newest = sigs
        .iter()
        .filter(|s| s.created().is_some())
        .max_by_key(|s| s.created().map(|t| t.as_secs()))?;
    let d = newest.key_expiration_time()?.as_secs();
    (d > 0).then(|| i64::from(created.as_secs()) + i64::from(d))
}

/// Why a revocation was made, for messages.
fn revocation_reason(sig: &Signature) -> String {
    use pgp::packet::RevocationCode as C;
    let code = match sig.revocation_reason_code() {
        None | Some(C::NoReason) => "no reason given".to_owned(),
        Some(C::KeySuperseded) => "superseded".to_owned(),
        Some(C::KeyCompromised) => "compromised".to_owned(),
        Some(C::KeyRetired) => "retired".to_owned(),
        Some(c) => format!("{c:?}"),
    };
    match sig.revocation_reason_string() {
        Some(t) if !t.is_empty() => format!("{code}: {}", String::from_utf8_lossy(t)),
        _ => code,
    }
}

/// A fingerprint as written by people (`AD48 5664 ...`, lower case) in our canonical form.
pub fn normalize_fingerprint(s: &str) -> Option<String> {
    let f: String = s
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_start_matches("0x")
        .to_ascii_uppercase();
    // v4 fingerprints are 20 bytes, v6 ones 32.
    (matches!(f.len(), 40 | 64) && f.bytes().all(|b| b.is_ascii_hexdigit())).then_some(f)
}

fn hex_upper(b: &[u8]) -> String {
    hex::encode_upper(b)
}

/// A key's primary fingerprint in our canonical form.
pub fn fingerprint(k: &SignedPublicKey) -> String {
    hex_upper(k.fingerprint().as_bytes())
}

/// Parses every public key in `data` (ASCII-armored or binary, one key or several). Each
/// key's self-signatures and subkey bindings must verify. `what` names the data in messages.
pub fn parse_keys(data: &[u8], what: &str) -> Result<Vec<SignedPublicKey>, SigError> {
    let err = |message: String| SigError::Key {
        what: what.to_owned(),
        message,
    };
    let armored = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| data[i..].starts_with(b"-----BEGIN PGP"));
    let iter: Box<dyn Iterator<Item = pgp::errors::Result<SignedPublicKey>>> = if armored {
        SignedPublicKey::from_armor_many(data)
            .map_err(|e| err(e.to_string()))?
            .0
    } else {
        SignedPublicKey::from_bytes_many(data).map_err(|e| err(e.to_string()))?
    };
    let mut keys = Vec::new();
    for k in iter {
        let k = k.map_err(|e| err(e.to_string()))?;
        k.verify_bindings()
            .map_err(|e| err(format!("its self-signatures do not verify: {e}")))?;
        keys.push(k);
    }
    if keys.is_empty() {
        return Err(err("no public key found".into()));
    }
    Ok(keys)
}

/// The first signature packet in `data` (binary or ASCII-armored).
fn parse_signature(data: &[u8], what: &str) -> Result<Signature, SigError> {
    let not = || SigError::NotASignature {
        what: what.to_owned(),
    };
    let armored = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .is_some_and(|i| data[i..].starts_with(b"-----BEGIN PGP"));
    let first = |r: &mut dyn std::io::BufRead| {
        PacketParser::new(r).find_map(|p| match p {
            Ok(Packet::Signature(s)) => Some(s),
            _ => None,
        })
    };
    if armored {
        let (sig, _) =
            pgp::composed::DetachedSignature::from_armor_single(data).map_err(|_| not())?;
        Ok(sig.signature)
    } else {
        first(&mut &data[..]).ok_or_else(not)
    }
}

/// Whether binding signatures let a key sign: one of them has the sign flag, or none has flags.
fn may_sign(bindings: &[Signature]) -> bool {
    let with_flags: Vec<&Signature> = bindings
        .iter()
        .filter(|s| {
            s.config().is_some_and(|c| {
                c.hashed_subpackets()
                    .any(|p| matches!(p.data, pgp::packet::SubpacketData::KeyFlags(_)))
            })
        })
        .collect();
    with_flags.is_empty() || with_flags.iter().any(|s| s.key_flags().sign())
}

impl Keyring {
    /// Adds keys; `origin` says where they came from (for messages).
    pub fn add(&mut self, keys: Vec<SignedPublicKey>, origin: &str) {
        for key in keys {
            let fingerprint = fingerprint(&key);
            if self.keys.iter().any(|k| k.fingerprint == fingerprint) {
                continue;
            }
            self.keys.push(Key {
                key,
                fingerprint,
                origin: origin.to_owned(),
            });
        }
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The fingerprints, for messages.
    pub fn describe(&self) -> String {
        if self.keys.is_empty() {
            return "none".into();
        }
        self.keys
            .iter()
            .map(|k| format!("{} from {}", k.fingerprint, k.origin))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Verifies one signature packet over `data`; returns the fingerprint of the primary key
    /// whose key (or signing subkey) made it.
    fn verify(&self, data: &[u8], sig: &Signature, what: &str) -> Result<String, SigError> {
        let ids: Vec<String> = sig
            .issuer_key_id()
            .iter()
            .map(|k| hex_upper(k.as_ref()))
            .collect();
        let fprs: Vec<String> = sig
            .issuer_fingerprint()
            .iter()
            .map(|f| hex_upper(f.as_bytes()))
            .collect();
        let named = |fp: &str, id: &str| {
            (ids.is_empty() && fprs.is_empty())
                || fprs.iter().any(|f| f == fp)
                || ids.iter().any(|i| i == id)
        };
        let mut tried = None;
        for k in &self.keys {
            let primary = &k.key;
            let candidates = std::iter::once((
                hex_upper(primary.fingerprint().as_bytes()),
                hex_upper(primary.legacy_key_id().as_ref()),
                None,
            ))
            .chain(primary.public_subkeys.iter().enumerate().map(|(i, s)| {
                (
                    hex_upper(s.fingerprint().as_bytes()),
                    hex_upper(s.legacy_key_id().as_ref()),
                    Some(i),
                )
            }));
            for (fp, id, sub) in candidates {
                if !named(&fp, &id) {
                    continue;
                }
                let res = match sub {
                    None => sig.verify(primary, data),
                    // A subkey signs only if its binding says so (or says nothing, RFC 9580).
                    Some(i) if !may_sign(&primary.public_subkeys[i].signatures) => {
                        tried = Some((fp, "the subkey is not bound for signing".into()));
                        continue;
                    }
                    Some(i) => sig.verify(&primary.public_subkeys[i], data),
                };
                match res {
                    Ok(()) => {
                        self.alive(primary, sub, sig, what)?;
                        return Ok(k.fingerprint.clone());
                    }
                    Err(e) => tried = Some((fp, e.to_string())),
                }
            }
        }
        match tried {
            Some((key, message)) => Err(SigError::Bad {
                what: what.to_owned(),
                key,
                message,
            }),
            None => Err(SigError::UnknownKey {
                what: what.to_owned(),
                issuer: fprs
                    .first()
                    .or(ids.first())
                    .cloned()
                    .unwrap_or_else(|| "(unnamed)".into()),
                trusted: self.describe(),
            }),
        }
    }

    /// A good signature counts only if neither the primary key nor the signing subkey is
    /// revoked, and neither had expired when it was made or has expired by [`Keyring::now`].
    /// (Their self-signatures were verified by [`parse_keys`].)
    fn alive(
        &self,
        primary: &SignedPublicKey,
        sub: Option<usize>,
        sig: &Signature,
        what: &str,
    ) -> Result<(), SigError> {
        let key = fingerprint(primary);
        let revoked = |sigs: &[Signature]| {
            sigs.iter()
                .find(|s| {
                    matches!(
                        s.typ(),
                        Some(SignatureType::KeyRevocation | SignatureType::SubkeyRevocation)
                    )
                })
                .map(|s| SigError::Revoked {
                    what: what.to_owned(),
                    key: key.clone(),
                    reason: revocation_reason(s),
                })
        };
        let d = &primary.details;
        // Certifications of the user ids and direct-key signatures (not their revocations).
        let self_sigs: Vec<&Signature> = d
            .direct_signatures
            .iter()
            .chain(d.users.iter().flat_map(|u| u.signatures.iter()))
            .filter(|s| {
                use SignatureType as T;
                matches!(
                    s.typ(),
                    Some(
                        T::Key | T::CertGeneric | T::CertPersona | T::CertCasual | T::CertPositive
                    )
                )
            })
            .collect();
        let mut expiries = vec![expires_at(primary.created_at(), &self_sigs)];
        if let Some(e) = revoked(&d.revocation_signatures) {
            return Err(e);
        }
        if let Some(i) = sub {
            let s = &primary.public_subkeys[i];
            if let Some(e) = revoked(&s.signatures) {
                return Err(e);
            }
            let bindings: Vec<&Signature> = s
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .collect();
            expiries.push(expires_at(s.key.created_at(), &bindings));
        }
        let Some(expired) = expiries.into_iter().flatten().min() else {
            return Ok(());
        };
        if let Some(signed) = sig.created().map(|t| i64::from(t.as_secs()))
            && signed >= expired
        {
            return Err(SigError::SignedAfterExpiry {
                what: what.to_owned(),
                key,
                signed: date(signed),
                expired: date(expired),
            });
        }
        if self.now.is_some_and(|now| now >= expired) {
            return Err(SigError::Expired {
                what: what.to_owned(),
                key,
                expired: date(expired),
            });
        }
        Ok(())
    }

    /// Checks a detached signature (`repomd.xml.asc`, binary or armored) over `data`. Only
    /// signatures of binary or text documents count (not key certifications).
    pub fn verify_detached(&self, data: &[u8], sig: &[u8], what: &str) -> Result<String, SigError> {
        let s = parse_signature(sig, what)?;
        if !matches!(s.typ(), Some(SignatureType::Binary | SignatureType::Text)) {
            return Err(SigError::NotASignature {
                what: what.to_owned(),
            });
        }
        self.verify(data, &s, what)
    }
}

/// What [`check_rpm`] found wrong with a package, in rpm's words where rpm has them.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RpmSigError {
    #[error("not an RPM package: {0}")]
    NotRpm(String),
    #[error("the header's sha256 digest does not match (BAD header): the package is damaged")]
    HeaderDigest,
    #[error("the payload's sha256 digest does not match (BAD payload): the package is damaged")]
    PayloadDigest,
    #[error(
        "the header has no payload digest (built by rpm < 4.14), so no header signature covers the payload"
    )]
    NoPayloadDigest,
    #[error("the package is not signed")]
    NoSignature,
    #[error(transparent)]
    Signature(#[from] SigError),
}

/// A package `rpm -K` would accept with this keyring: returns the signer's fingerprint, or None
/// when the package is unsigned and `require_signature` is false (zypper's "unsigned packages
/// are OK" when the check is not mandatory). Digests are always checked.
pub fn check_rpm(
    keyring: &Keyring,
    data: &[u8],
    require_signature: bool,
) -> Result<Option<String>, RpmSigError> {
    let mut cursor = std::io::Cursor::new(data);
    let meta =
        rpm::PackageMetadata::parse(&mut cursor).map_err(|e| RpmSigError::NotRpm(e.to_string()))?;
    let end = cursor.position() as usize;
    // The header as it is on disk: after the 96-byte lead and the signature header (16 bytes of
    // intro, 16 per index entry, the data), padded to 8 bytes.
    let be32 = |at: usize| {
        data.get(at..at + 4)
            .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize)
    };
    let (n, h) = (be32(96 + 8), be32(96 + 12));
    let sig_len = n.zip(h).map(|(n, h)| 16 + 16 * n + h).unwrap_or(usize::MAX);
    let start = (96 + sig_len).saturating_add((8 - sig_len % 8) % 8);
    let header = data
        .get(start..end)
        .ok_or_else(|| RpmSigError::NotRpm("header out of bounds".into()))?;
    let sig_str = |tag| {
        meta.signature
            .get_entry_data_as_string(tag)
            .ok()
            .map(str::to_ascii_lowercase)
    };
    match sig_str(rpm::IndexSignatureTag::RPMSIGTAG_SHA256) {
        Some(want) if want != Algo::Sha256.digest_hex(header) => {
            return Err(RpmSigError::HeaderDigest);
        }
        Some(_) => {}
        None => {
            let sha1 = sig_str(rpm::IndexSignatureTag::RPMSIGTAG_SHA1)
                .ok_or_else(|| RpmSigError::NotRpm("no header digest".into()))?;
            if sha1 != Algo::Sha1.digest_hex(header) {
                return Err(RpmSigError::HeaderDigest);
            }
        }
    }
    let payload_digest = meta
        .header
        .get_entry_data_as_string_array(rpm::IndexTag::RPMTAG_PAYLOADSHA256)
        .ok()
        .and_then(|v| v.first().map(|s| s.to_ascii_lowercase()));
    match &payload_digest {
        Some(want) if *want != Algo::Sha256.digest_hex(&data[end..]) => {
            return Err(RpmSigError::PayloadDigest);
        }
        _ => {}
    }
    let sigs = meta
        .raw_signatures()
        .map_err(|e| RpmSigError::NotRpm(e.to_string()))?;
    if sigs.is_empty() {
        return if require_signature {
            Err(RpmSigError::NoSignature)
        } else {
            Ok(None)
        };
    }
    if payload_digest.is_none() {
        return Err(RpmSigError::NoPayloadDigest);
    }
    // rpm accepts the package when one of its signatures verifies.
    let mut first_err = None;
    for raw in &sigs {
        let res = parse_signature(raw, "the header signature")
            .and_then(|s| keyring.verify(header, &s, "the header"));
        match res {
            Ok(fp) => return Ok(Some(fp)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(first_err.expect("at least one signature").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(date(951_825_600), "2000-02-29 12:00:00 UTC");
        assert_eq!(date(4_102_444_799), "2099-12-31 23:59:59 UTC");
    }

    #[test]
    fn fingerprints_are_normalized() {
        assert_eq!(
            normalize_fingerprint("AD48 5664 E901 B867 051A  B15F 35A2 F86E 29B7 00A4").as_deref(),
            Some("AD485664E901B867051AB15F35A2F86E29B700A4")
        );
        assert_eq!(
            normalize_fingerprint("0xad485664e901b867051ab15f35a2f86e29b700a4").as_deref(),
            Some("AD485664E901B867051AB15F35A2F86E29B700A4")
        );
        assert_eq!(normalize_fingerprint("29B700A4"), None);
        assert_eq!(
            normalize_fingerprint("XD485664E901B867051AB15F35A2F86E29B700A4"),
            None
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(parse_keys(b"", "k").is_err());
        assert!(parse_keys(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxx\n", "k").is_err());
        assert!(parse_keys(&[0x99, 0x01, 0x0d, 4, 0, 0], "k").is_err());
        let ring = Keyring::default();
        assert!(matches!(
            ring.verify_detached(b"data", b"not a signature", "repomd.xml"),
            Err(SigError::NotASignature { .. })
        ));
        assert!(matches!(
            check_rpm(&ring, b"not an rpm", true),
            Err(RpmSigError::NotRpm(_))
        ));
    }
}
