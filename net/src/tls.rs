//! TLS for a listener: rustls with a certificate chain and private key read
//! from PEM files, ALPN `h2` and `http/1.1`, and a reload that swaps the
//! certificate for new handshakes without touching open connections.
//!
//! The policy is Mozilla's "intermediate" profile, which is what rustls
//! offers and nothing more: TLS 1.3 and 1.2 only (no 1.1, 1.0 or SSL), and
//! only AEAD cipher suites with forward secrecy (TLS 1.3: AES-128/256-GCM,
//! ChaCha20-Poly1305; TLS 1.2: ECDHE-ECDSA/RSA with AES-GCM or
//! ChaCha20-Poly1305 — no CBC, no RC4, no static RSA key exchange), key
//! exchange over X25519, P-256 or P-384, and the client's cipher order
//! honoured. `loadtest/tls-scan.sh` checks a running edge against that
//! profile with sslyze.
//!
//! [`Tls::reload`] re-reads both files. A pair that fails to load (a
//! missing file, a key that does not match the certificate) is an error
//! and the certificate in use stays in use, so a half-finished renewal
//! never takes a listener down.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocols offered, in order of preference.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// Why a certificate and key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate file {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("private key file {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("certificate {cert} and key {key} do not go together: {message}")]
    Pair { cert: PathBuf, key: PathBuf, message: String },
    #[error("TLS settings: {0}")]
    Settings(String),
}

/// A listener's TLS: the acceptor for new connections and the files its
/// certificate comes from. Cheap to clone; clones share the certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
    resolver: Arc<Reloadable>,
}

/// Make ring rustls' process-wide default provider, for clients (reqwest
/// is built without one). A provider already installed is kept.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Tls {
    /// Load the PEM certificate chain (leaf first) and the PEM private key
    /// (PKCS#8, PKCS#1 or SEC1) and build the server settings.
    pub fn load(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cert = cert.into();
        let key = key.into();
        let current = load_pair(&cert, &key, &provider)?;
        let resolver =
            Arc::new(Reloadable { cert, key, provider: provider.clone(), current: RwLock::new(current) });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Settings(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        // The client's cipher order is honoured (Mozilla intermediate: every
        // suite offered is strong, so let the client pick what it is fast at).
        config.ignore_client_order = false;
        Ok(Self { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)), resolver })
    }

    /// Read the certificate and key files again. New handshakes use the new
    /// pair; connections already open keep theirs. On error nothing changes.
    pub fn reload(&self) -> Result<(), TlsError> {
        let r = &self.resolver;
        let fresh = load_pair(&r.cert, &r.key, &r.provider)?;
        *r.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = fresh;
        Ok(())
    }

    /// The DER of the leaf certificate new handshakes present.
    pub fn leaf_certificate(&self) -> Vec<u8> {
        self.resolver.get().cert.first().map(|c| c.as_ref().to_vec()).unwrap_or_default()
    }

    /// The files the certificate comes from.
    pub fn files(&self) -> (&Path, &Path) {
        (&self.resolver.cert, &self.resolver.key)
    }

    pub(crate) fn acceptor(&self) -> &tokio_rustls::TlsAcceptor {
        &self.acceptor
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("cert", &self.resolver.cert).field("key", &self.resolver.key).finish()
    }
}

/// Hands every handshake the certificate loaded last.
#[derive(Debug)]
struct Reloadable {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Reloadable {
    fn get(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

impl ResolvesServerCert for Reloadable {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn load_pair(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let cert_err = |message: String| TlsError::Cert { path: cert.to_owned(), message };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no PEM \"CERTIFICATE\" block in the file".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key.to_owned(), message: e.to_string() })?;
    let pair = CertifiedKey::from_der(chain, private, provider).map_err(|e| TlsError::Pair {
        cert: cert.to_owned(),
        key: key.to_owned(),
        message: e.to_string(),
    })?;
    Ok(Arc::new(pair))
}
