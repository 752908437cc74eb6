//! Certificates and private keys from PEM files, for both ends of a TLS
//! connection (the client's CA and identity, the server's certificate, key
//! and client CA), and the crypto provider both ends use.
//!
//! Its own module because the client and the server both need it and
//! neither should depend on the other. Errors name the file and say what is
//! wrong in words of this module's own: the PEM parser's messages can quote
//! a line of the file, which for a key file would be key material.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The crypto provider of both ends: rustls on *ring* (no OpenSSL, no
/// aws-lc, so a C compiler is all the build needs).
///
/// rustls 0.23.48 deprecated `ring::default_provider` because *ring* has no
/// post-quantum key exchange (X25519MLKEM768 is aws-lc-rs's); the key
/// exchange here is X25519, P-256 or P-384, as with Redis built on OpenSSL
/// 3.0 to 3.4. Moving to aws-lc-rs would bring post-quantum key exchange at
/// the cost of a CMake and NASM build.
#[allow(deprecated)]
pub fn provider() -> std::sync::Arc<rustls::crypto::CryptoProvider> {
    std::sync::Arc::new(rustls::crypto::ring::default_provider())
}

/// Largest certificate file read (bytes): a chain of a few certificates is
/// a few KiB; a CA bundle (all of a system's roots) is about 200 KiB.
pub const MAX_PEM_FILE: u64 = 1 << 20;

/// A PEM file that cannot be used: one line naming the file.
#[derive(Debug)]
pub struct PemError {
    path: PathBuf,
    what: String,
}

impl PemError {
    /// An error about the file at `path`.
    pub fn new(path: &Path, what: impl Into<String>) -> PemError {
        PemError {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.what)
    }
}

impl std::error::Error for PemError {}

/// What a PEM parse error says, without quoting the file.
fn describe(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        _ => "not valid PEM",
    }
}

/// The certificates of a PEM text (from the file at `path`), in order: a
/// chain (leaf first), or a CA bundle. None is an error.
pub fn certs(path: &Path, text: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let mut certs = Vec::new();
    for cert in CertificateDer::pem_slice_iter(text) {
        certs.push(cert.map_err(|e| PemError::new(path, describe(&e)))?);
    }
    if certs.is_empty() {
        return Err(PemError::new(
            path,
            "no certificate found (expected PEM: -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The private key of a PEM text (from the file at `path`): PKCS#8, PKCS#1
/// (RSA) or SEC1 (EC), the first one found.
pub fn private_key(path: &Path, text: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    PrivateKeyDer::from_pem_slice(text).map_err(|e| match e {
        pem::Error::NoItemsFound => PemError::new(
            path,
            "no private key found (expected PEM: -----BEGIN PRIVATE KEY-----, \
             RSA PRIVATE KEY or EC PRIVATE KEY)",
        ),
        e => PemError::new(path, describe(&e)),
    })
}

/// Reads a PEM file of at most [`MAX_PEM_FILE`] bytes.
pub fn read(path: &Path) -> Result<Vec<u8>, PemError> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| PemError::new(path, format!("cannot open: {e}")))?;
    let mut text = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut text)
        .map_err(|e| PemError::new(path, format!("cannot read: {e}")))?;
    if text.len() as u64 > MAX_PEM_FILE {
        return Err(PemError::new(
            path,
            format!("is larger than {MAX_PEM_FILE} bytes"),
        ));
    }
    Ok(text)
}

/// Reads the certificates of a PEM file (see [`certs`]).
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    certs(path, &read(path)?)
}

/// Reads the private key of a PEM file (see [`private_key`]), without the
/// server's file checks: the client's `--key`.
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, PemError> {
    private_key(path, &read(path)?)
}

/// A root store of the certificates of a PEM file: the CA that signed the
/// peer's certificate. A certificate that is not a usable trust anchor is
/// an error naming its place in the file.
pub fn read_roots(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in read_certs(path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            PemError::new(
                path,
                format!("certificate {} is not a usable CA certificate: {e}", i + 1),
            )
        })?;
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_LINE: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRET";

    #[test]
    fn errors_name_the_file_and_never_quote_it() {
        let path = Path::new("/etc/x.pem");
        let cases: [(&[u8], &str); 3] = [
            (b"", "no private key found"),
            (b"hello\n", "no private key found"),
            (
                b"-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETSECRETSECRET\n",
                "a PEM section has no END line",
            ),
        ];
        for (text, want) in cases {
            let err = private_key(path, text).unwrap_err().to_string();
            assert!(err.starts_with("/etc/x.pem: "), "{err}");
            assert!(err.contains(want), "{err}");
            assert!(!err.contains(KEY_LINE), "{err}");
            assert!(!err.contains("SECRET"), "{err}");
        }
        let bad_b64 =
            format!("-----BEGIN PRIVATE KEY-----\n{KEY_LINE}!!\n-----END PRIVATE KEY-----\n");
        let err = private_key(path, bad_b64.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("SECRET"), "{err}");
        let err = certs(
            path,
            b"-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("no certificate found"), "{err}");
    }

    #[test]
    fn a_missing_file_says_so() {
        let err = read_certs(Path::new("/nonexistent/ca.pem"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("/nonexistent/ca.pem: cannot open: "),
            "{err}"
        );
    }
}
