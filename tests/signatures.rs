//! Repository and package signatures, with zypper's policy (see `src/repo/sig.rs` and
//! `RepoDef::policy`).
//!
//! Part 1 runs the signature code on libzypp's own test data (../shared/corpus/libzypp,
//! gated by `ELSX_CORPUS` like tests/corpus.rs). Part 2 builds a private repository signed with
//! a key generated for the test (gpg, rpmsign, createrepo_c), serves it over HTTP and runs the
//! `elsx` binary against it: accepted when signed, refused (naming the repository or the
//! package) when tampered with or unsigned, as the definition's gpgcheck settings ask.

mod support;

use elsx::repo::sig::{self, Keyring, RpmSigError, SigError};
use support::corpus;

fn read(p: &std::path::Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn corpus_rpm_signatures() {
    let Some(c) = corpus() else { return };
    let d = c.join("libzypp/RpmPkgSigCheck");
    let mut ring = Keyring::default();
    ring.add(
        sig::parse_keys(&read(&d.join("signed.key")), "signed.key").unwrap(),
        "signed.key",
    );
    let check = |f: &str, req: bool| sig::check_rpm(&ring, &read(&d.join(f)), req);
    let fp = check("signed.rpm", true).unwrap().expect("signed");
    assert_eq!(fp, ring.keys[0].fingerprint);
    assert_eq!(
        check("signed_broken.rpm", true),
        Err(RpmSigError::PayloadDigest)
    );
    assert_eq!(
        check("signed_broken_header.rpm", true),
        Err(RpmSigError::HeaderDigest)
    );
    assert_eq!(check("unsigned.rpm", true), Err(RpmSigError::NoSignature));
    assert_eq!(check("unsigned.rpm", false), Ok(None));
    assert_eq!(
        check("unsigned_broken.rpm", false),
        Err(RpmSigError::PayloadDigest)
    );
    assert_eq!(
        check("unsigned_broken_header.rpm", false),
        Err(RpmSigError::HeaderDigest)
    );
    assert!(matches!(
        check("no.rpm", false),
        Err(RpmSigError::NotRpm(_))
    ));
    // Without the key: signed by a key nobody trusts.
    let empty = Keyring::default();
    assert!(matches!(
        sig::check_rpm(&empty, &read(&d.join("signed.rpm")), true),
        Err(RpmSigError::Signature(SigError::UnknownKey { .. }))
    ));
}

#[test]
fn corpus_repomd_signatures() {
    let Some(c) = corpus() else { return };
    let d = c.join("libzypp/RepoSigcheck");
    let key =
        sig::parse_keys(&read(&d.join("signed_repo/repodata/repomd.xml.key")), "key").unwrap();
    let mut ring = Keyring::default();
    ring.add(key, "repomd.xml.key");
    let verify = |repo: &str| {
        let r = d.join(repo).join("repodata");
        ring.verify_detached(
            &read(&r.join("repomd.xml")),
            &read(&r.join("repomd.xml.asc")),
            repo,
        )
    };
    assert_eq!(verify("signed_repo").unwrap(), ring.keys[0].fingerprint);
    assert!(
        matches!(verify("wrongsig_repo"), Err(SigError::Bad { .. })),
        "{:?}",
        verify("wrongsig_repo")
    );
    let unknown = Keyring::default();
    let r = d.join("unknownkey_repo/repodata");
    assert!(matches!(
        unknown.verify_detached(
            &read(&r.join("repomd.xml")),
            &read(&r.join("repomd.xml.asc")),
            "x"
        ),
        Err(SigError::UnknownKey { .. })
    ));
}
