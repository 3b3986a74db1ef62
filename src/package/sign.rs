//! The root-verity-sig partition: a PKCS#7 detached signature over the root hash, wrapped in the
//! JSON object systemd-repart writes and systemd-dissect reads.
//!
//! repart signs the lowercase hex root hash (no newline) with `PKCS7_sign(DETACHED | BINARY |
//! NOATTR)`: SignedData v1, one SignerInfo identified by issuer and serial, no signed
//! attributes, the certificate included. We build the same structure with RustCrypto, so no
//! OpenSSL is needed: RSA keys sign with PKCS#1 v1.5 and SHA-256, EC P-256 keys with ECDSA and
//! SHA-256 (`ecdsa-with-SHA256`, the DER `ECDSA-Sig-Value`, as OpenSSL writes them; RFC 6979
//! nonces, so these are deterministic too). Verification also accepts signers that added signed
//! attributes (`openssl cms -sign` without `-noattr`).

use rsa::pkcs1v15;
use rsa::signature::{SignatureEncoding, Signer as _, Verifier as _};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;
use x509_cert::der::asn1::{OctetString, SetOfVec};
use x509_cert::der::{Any, Decode, DecodePem, Encode};
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier};

/// systemd-repart's fixed size of a verity signature partition (`VERITY_SIG_SIZE`).
pub const PARTITION_SIZE: usize = 16 * 1024;

const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const ID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
const ID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const MESSAGE_DIGEST: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(
        "the private key is neither an RSA key (PKCS#8 or PKCS#1) nor an EC P-256 key (PKCS#8 or SEC1) in PEM: {0}"
    )]
    Key(String),
    #[error("the certificate is not an X.509 certificate in PEM: {0}")]
    Certificate(String),
    #[error("the private key does not belong to the certificate")]
    Mismatch,
    #[error("the certificate's public key is neither RSA nor EC P-256 (the keys supported)")]
    Unsupported,
    #[error("signing: {0}")]
    Sign(String),
}

/// Where the signing key and certificate are (PEM files), as a recipe, mkosi or the command line
/// names them; [`Signer::load`] reads them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SigningFiles {
    pub key: std::path::PathBuf,
    pub certificate: std::path::PathBuf,
}

/// A key and its certificate, ready to sign root hashes.
pub struct Signer {
    key: PrivateKey,
    cert: Certificate,
    cert_der: Vec<u8>,
}

/// The signing keys systemd's verity signatures are made with.
enum PrivateKey {
    Rsa(Box<rsa::RsaPrivateKey>),
    P256(p256::ecdsa::SigningKey),
}

/// A certificate's public key, for the same algorithms.
#[derive(PartialEq)]
enum PublicKey {
    Rsa(rsa::RsaPublicKey),
    P256(p256::ecdsa::VerifyingKey),
}

impl PrivateKey {
    /// PKCS#8 (`PRIVATE KEY`, RSA or EC), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`).
    fn from_pem(pem: &str) -> Result<PrivateKey, SignError> {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = rsa::RsaPrivateKey::from_pkcs1_pem(pem) {
            return Ok(PrivateKey::Rsa(Box::new(k)));
        }
        if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
            return Ok(PrivateKey::P256(k.into()));
        }
        p256::SecretKey::from_sec1_pem(pem)
            .map(|k| PrivateKey::P256(k.into()))
            .map_err(|_| {
                // The PKCS#8 error says most (a wrong PEM label, an unknown algorithm).
                let e = rsa::RsaPrivateKey::from_pkcs8_pem(pem).err();
                SignError::Key(e.map(|e| e.to_string()).unwrap_or_default())
            })
    }

    fn public(&self) -> PublicKey {
        match self {
            PrivateKey::Rsa(k) => PublicKey::Rsa(k.to_public_key()),
            PrivateKey::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// The SignerInfo's signature algorithm and signature over `content`.
    fn sign(&self, content: &[u8]) -> (AlgorithmIdentifierOwned, Vec<u8>) {
        match self {
            PrivateKey::Rsa(k) => {
                let signing_key = pkcs1v15::SigningKey::<rsa::sha2::Sha256>::new((**k).clone());
                let alg = AlgorithmIdentifierOwned {
                    oid: RSA_ENCRYPTION,
                    parameters: Some(Any::null()),
                };
                (alg, signing_key.sign(content).to_vec())
            }
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(content);
                let alg = AlgorithmIdentifierOwned {
                    oid: ECDSA_WITH_SHA256,
                    parameters: None,
                };
                (alg, sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

impl Signer {
    /// Parses a PEM private key (RSA or EC P-256, see [`PrivateKey::from_pem`]) and a PEM
    /// certificate, and checks that they belong together.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Signer, SignError> {
        let key = PrivateKey::from_pem(key_pem)?;
        let cert = Certificate::from_pem(cert_pem.as_bytes())
            .map_err(|e| SignError::Certificate(e.to_string()))?;
        if cert_public_key(&cert)? != key.public() {
            return Err(SignError::Mismatch);
        }
        let cert_der = cert
            .to_der()
            .map_err(|e| SignError::Certificate(e.to_string()))?;
        Ok(Signer {
            key,
            cert,
            cert_der,
        })
    }

    /// Reads and parses the PEM files; errors name the file.
    pub fn load(files: &SigningFiles) -> anyhow::Result<Signer> {
        use anyhow::Context;
        let key = fs_err::read_to_string(&files.key)?;
        let cert = fs_err::read_to_string(&files.certificate)?;
        Signer::from_pem(&key, &cert).with_context(|| {
            format!(
                "key {} and certificate {}",
                files.key.display(),
                files.certificate.display()
            )
        })
    }

    /// The SHA-256 of the DER certificate, as systemd's `certificateFingerprint`.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(&self.cert_der).into()
    }

    /// A DER PKCS#7 detached signature over `content`, shaped like `PKCS7_sign` with `NOATTR`.
    /// RSA PKCS#1 v1.5 and RFC 6979 ECDSA signatures are deterministic, so the same input gives
    /// the same bytes.
    pub fn sign(&self, content: &[u8]) -> Result<Vec<u8>, SignError> {
        let e = |x: x509_cert::der::Error| SignError::Sign(x.to_string());
        let (signature_algorithm, signature) = self.key.sign(content);
        let sha256 = AlgorithmIdentifierOwned {
            oid: ID_SHA256,
            parameters: None,
        };
        let signer = cms::signed_data::SignerInfo {
            version: cms::content_info::CmsVersion::V1,
            sid: cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(
                cms::cert::IssuerAndSerialNumber {
                    issuer: self.cert.tbs_certificate.issuer.clone(),
                    serial_number: self.cert.tbs_certificate.serial_number.clone(),
                },
            ),
            digest_alg: sha256.clone(),
            signed_attrs: None,
            signature_algorithm,
            signature: OctetString::new(signature).map_err(e)?,
            unsigned_attrs: None,
        };
        let signed = cms::signed_data::SignedData {
            version: cms::content_info::CmsVersion::V1,
            digest_algorithms: SetOfVec::try_from(vec![sha256]).map_err(e)?,
            encap_content_info: cms::signed_data::EncapsulatedContentInfo {
                econtent_type: ID_DATA,
                econtent: None,
            },
            certificates: Some(cms::signed_data::CertificateSet(
                SetOfVec::try_from(vec![cms::cert::CertificateChoices::Certificate(
                    self.cert.clone(),
                )])
                .map_err(e)?,
            )),
            crls: None,
            signer_infos: cms::signed_data::SignerInfos(
                SetOfVec::try_from(vec![signer]).map_err(e)?,
            ),
        };
        cms::content_info::ContentInfo {
            content_type: ID_SIGNED_DATA,
            content: Any::encode_from(&signed).map_err(e)?,
        }
        .to_der()
        .map_err(e)
    }
}

fn cert_public_key(cert: &Certificate) -> Result<PublicKey, SignError> {
    use rsa::pkcs8::DecodePublicKey;
    let spki = &cert.tbs_certificate.subject_public_key_info;
    let der = spki
        .to_der()
        .map_err(|e| SignError::Certificate(e.to_string()))?;
    match spki.algorithm.oid {
        RSA_ENCRYPTION => rsa::RsaPublicKey::from_public_key_der(&der).map(PublicKey::Rsa),
        // The curve is the algorithm's parameter: another curve does not parse as P-256.
        EC_PUBLIC_KEY => {
            p256::PublicKey::from_public_key_der(&der).map(|k| PublicKey::P256(k.into()))
        }
        _ => return Err(SignError::Unsupported),
    }
    .map_err(|_| SignError::Unsupported)
}

/// The JSON object of a root-verity-sig partition, keys in repart's order.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SigJson {
    pub root_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_fingerprint: Option<String>,
    pub signature: String,
}

/// The partition's bytes: compact JSON padded with NULs to [`PARTITION_SIZE`].
pub fn partition(root_hash: &[u8; 32], signer: &Signer) -> Result<Vec<u8>, SignError> {
    use base64::Engine;
    let hex_hash = hex::encode(root_hash);
    let sig = signer.sign(hex_hash.as_bytes())?;
    let json = SigJson {
        root_hash: hex_hash,
        certificate_fingerprint: Some(hex::encode(signer.fingerprint())),
        signature: base64::engine::general_purpose::STANDARD.encode(sig),
    };
    let mut bytes = serde_json::to_vec(&json).map_err(|e| SignError::Sign(e.to_string()))?;
    // repart refuses a signature that leaves no room for the terminating NUL.
    if bytes.len() + 1 > PARTITION_SIZE {
        return Err(SignError::Sign(format!(
            "the signature JSON takes {} bytes, more than the {PARTITION_SIZE}-byte partition",
            bytes.len()
        )));
    }
    bytes.resize(PARTITION_SIZE, 0);
    Ok(bytes)
}

/// What a signature partition holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum SigState {
    /// All zeros: reserved for offline signing (`--verity defer`).
    Deferred,
    /// Parsed and verified against the certificate inside the PKCS#7 message.
    Verified {
        root_hash: String,
        certificate_fingerprint: Option<String>,
        /// The signer certificate's subject.
        signer: String,
    },
}

/// Why a signature partition does not verify.
#[derive(Debug, thiserror::Error)]
pub enum SigError {
    #[error("not the JSON object systemd expects: {0}")]
    Json(String),
    #[error("rootHash {found} differs from the root hash {expected}")]
    RootHash { expected: String, found: String },
    #[error("the PKCS#7 signature cannot be parsed: {0}")]
    Pkcs7(String),
    #[error("the PKCS#7 message holds no certificate matching its signer")]
    NoCertificate,
    #[error("certificateFingerprint {found} is not the signer certificate's {expected}")]
    Fingerprint { expected: String, found: String },
    #[error("the signature does not verify: {0}")]
    Bad(String),
}

/// Reads a signature partition and verifies it against `root_hash` (hex).
pub fn verify_partition(bytes: &[u8], root_hash: &str) -> Result<SigState, SigError> {
    use base64::Engine;
    if bytes.iter().all(|b| *b == 0) {
        return Ok(SigState::Deferred);
    }
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    if bytes[end..].iter().any(|b| *b != 0) {
        return Err(SigError::Json(
            "bytes other than NUL after the JSON object".into(),
        ));
    }
    let json: SigJson =
        serde_json::from_slice(&bytes[..end]).map_err(|e| SigError::Json(e.to_string()))?;
    if !json.root_hash.eq_ignore_ascii_case(root_hash) {
        return Err(SigError::RootHash {
            expected: root_hash.to_owned(),
            found: json.root_hash,
        });
    }
    let der = base64::engine::general_purpose::STANDARD
        .decode(&json.signature)
        .map_err(|e| SigError::Json(format!("signature is not base64: {e}")))?;
    let cert = verify_detached(&der, json.root_hash.as_bytes())?;
    let fp = hex::encode(Sha256::digest(
        cert.to_der().map_err(|e| SigError::Pkcs7(e.to_string()))?,
    ));
    if let Some(found) = &json.certificate_fingerprint
        && !found.eq_ignore_ascii_case(&fp)
    {
        return Err(SigError::Fingerprint {
            expected: fp,
            found: found.clone(),
        });
    }
    Ok(SigState::Verified {
        root_hash: json.root_hash,
        certificate_fingerprint: json.certificate_fingerprint,
        signer: cert.tbs_certificate.subject.to_string(),
    })
}

/// Verifies a DER PKCS#7 detached signature over `content` with the certificate it carries;
/// returns that certificate. Trust in the certificate is the caller's business.
pub fn verify_detached(der: &[u8], content: &[u8]) -> Result<Certificate, SigError> {
    let p = |e: x509_cert::der::Error| SigError::Pkcs7(e.to_string());
    let ci = cms::content_info::ContentInfo::from_der(der).map_err(p)?;
    if ci.content_type != ID_SIGNED_DATA {
        return Err(SigError::Pkcs7(format!(
            "content type {} is not signedData",
            ci.content_type
        )));
    }
    let sd: cms::signed_data::SignedData = ci.content.decode_as().map_err(p)?;
    let certs: Vec<&Certificate> = sd
        .certificates
        .as_ref()
        .map(|c| {
            c.0.iter()
                .filter_map(|c| match c {
                    cms::cert::CertificateChoices::Certificate(c) => Some(c),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| SigError::Pkcs7("no SignerInfo".into()))?;
    let cert = match &si.sid {
        cms::signed_data::SignerIdentifier::IssuerAndSerialNumber(i) => certs.iter().find(|c| {
            c.tbs_certificate.issuer == i.issuer
                && c.tbs_certificate.serial_number == i.serial_number
        }),
        cms::signed_data::SignerIdentifier::SubjectKeyIdentifier(_) => certs.first(),
    }
    .copied()
    .ok_or(SigError::NoCertificate)?;
    if si.digest_alg.oid != ID_SHA256 {
        return Err(SigError::Bad(format!(
            "digest algorithm {} (only SHA-256 is supported)",
            si.digest_alg.oid
        )));
    }
    let alg = si.signature_algorithm.oid;
    if ![RSA_ENCRYPTION, SHA256_WITH_RSA, ECDSA_WITH_SHA256].contains(&alg) {
        return Err(SigError::Bad(format!(
            "signature algorithm {alg} (only RSA and ECDSA with SHA-256 are supported)"
        )));
    }
    let signed_bytes = match &si.signed_attrs {
        None => content.to_vec(),
        Some(attrs) => {
            let digest = Sha256::digest(content);
            let md = attrs
                .iter()
                .find(|a| a.oid == MESSAGE_DIGEST)
                .and_then(|a| a.values.iter().next())
                .ok_or_else(|| SigError::Bad("signed attributes without messageDigest".into()))?;
            let md: OctetString = md.decode_as().map_err(p)?;
            if md.as_bytes() != digest.as_slice() {
                return Err(SigError::Bad(
                    "messageDigest differs from the content's SHA-256".into(),
                ));
            }
            attrs.to_der().map_err(p)?
        }
    };
    let bad = |e: rsa::signature::Error| SigError::Bad(e.to_string());
    match cert_public_key(cert).map_err(|e| SigError::Bad(e.to_string()))? {
        PublicKey::Rsa(key) if alg != ECDSA_WITH_SHA256 => {
            let sig = pkcs1v15::Signature::try_from(si.signature.as_bytes()).map_err(bad)?;
            pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(key)
                .verify(&signed_bytes, &sig)
                .map_err(|_| SigError::Bad("RSA signature mismatch".into()))?;
        }
        PublicKey::P256(key) if alg == ECDSA_WITH_SHA256 => {
            let sig = p256::ecdsa::Signature::from_der(si.signature.as_bytes()).map_err(bad)?;
            key.verify(&signed_bytes, &sig)
                .map_err(|_| SigError::Bad("ECDSA signature mismatch".into()))?;
        }
        _ => {
            return Err(SigError::Bad(format!(
                "signature algorithm {alg} does not fit the certificate's key"
            )));
        }
    }
    Ok(cert.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_contents_are_checked_before_the_signature() {
        let hash = "ab".repeat(32);
        let zeros = vec![0u8; PARTITION_SIZE];
        assert_eq!(verify_partition(&zeros, &hash).unwrap(), SigState::Deferred);
        let mut p = zeros.clone();
        p[..2].copy_from_slice(b"{}");
        assert!(matches!(
            verify_partition(&p, &hash),
            Err(SigError::Json(_))
        ));
        p[100] = b'x';
        assert!(matches!(
            verify_partition(&p, &hash),
            Err(SigError::Json(_))
        ));
        let json = format!(
            "{{\"rootHash\":\"{}\",\"signature\":\"AAAA\"}}",
            "cd".repeat(32)
        );
        let mut p = zeros.clone();
        p[..json.len()].copy_from_slice(json.as_bytes());
        assert!(matches!(
            verify_partition(&p, &hash),
            Err(SigError::RootHash { .. })
        ));
        let json = format!("{{\"rootHash\":\"{hash}\",\"signature\":\"AAAA\"}}");
        let mut p = zeros;
        p[..json.len()].copy_from_slice(json.as_bytes());
        assert!(matches!(
            verify_partition(&p, &hash),
            Err(SigError::Pkcs7(_))
        ));
    }
}
