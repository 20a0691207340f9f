//! TLS termination with rustls: the certificate is read from PEM files and can
//! be swapped at runtime (SIGHUP) without dropping connections.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Why a certificate and key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read certificates from {}: {source}", path.display())]
    ReadCertificates { path: PathBuf, source: pem::Error },
    #[error("{} contains no certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("cannot read a private key from {}: {source}", path.display())]
    ReadKey { path: PathBuf, source: pem::Error },
    #[error("certificate and key do not fit together: {0}")]
    Mismatch(rustls::Error),
}

/// Loads a PEM certificate chain and its private key, checking that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|source| CertError::ReadCertificates {
            path: cert.to_path_buf(),
            source,
        })?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate(cert.to_path_buf()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| CertError::ReadKey {
        path: key.to_path_buf(),
        source,
    })?;
    CertifiedKey::from_der(chain, key_der, &default_provider())
        .map(Arc::new)
        .map_err(CertError::Mismatch)
}

/// Serves whichever certificate was stored last.
#[derive(Debug)]
pub struct ReloadableCert(pub ArcSwap<CertifiedKey>);

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A rustls server config offering HTTP/2 and HTTP/1.1 through ALPN.
pub fn server_config(certs: Arc<ReloadableCert>) -> Result<rustls::ServerConfig, rustls::Error> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_pairs_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let a = rcgen::generate_simple_self_signed(vec!["a.example".to_string()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.example".to_string()]).unwrap();
        let cert = write("a.pem", &a.cert.pem());
        let key = write("a.key", &a.signing_key.serialize_pem());
        let other_key = write("b.key", &b.signing_key.serialize_pem());
        let empty = write("empty.pem", "");

        assert!(load_certified_key(&cert, &key).is_ok());
        let e = load_certified_key(&empty, &key).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{} contains no certificate", empty.display())
        );
        let e = load_certified_key(&cert, &other_key).unwrap_err();
        assert!(matches!(e, CertError::Mismatch(_)), "{e}");
        assert!(
            e.to_string()
                .starts_with("certificate and key do not fit together: "),
            "{e}"
        );
        let e = load_certified_key(&cert, &empty).unwrap_err();
        assert!(matches!(e, CertError::ReadKey { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "cannot read a private key from {}: ",
                empty.display()
            )),
            "{e}"
        );
    }
}
