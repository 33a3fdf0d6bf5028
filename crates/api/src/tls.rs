//! HTTPS for the APIs: a rustls server configuration from PEM files (`ssl_cert_file`,
//! `ssl_key_file`).
//!
//! rustls's safe defaults stand in for the original's hand-picked Go settings (TLS ≥ 1.2,
//! ECDHE with AES-GCM): TLS 1.2 and 1.3 with AEAD suites only, using the ring provider.
//! Only HTTP/1.1 is offered over ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ApiServerError;

/// Certificate chain and private key files of an HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> ApiServerError {
    ApiServerError::Tls {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Reads the files and builds the server configuration; any unreadable or mismatched file is
/// an error naming it.
pub fn load_tls(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, ApiServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls_error(&files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_error(&files.cert, e))?;
    if certs.is_empty() {
        return Err(tls_error(&files.cert, "no certificate found"));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls_error(&files.key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&files.cert, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            tls_error(
                &files.key,
                format!("certificate and key do not form a usable pair: {e}"),
            )
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
