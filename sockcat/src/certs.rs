//! TLS configurations for sockcat: trust from a CA file, a server identity from PEM files, or
//! a self-signed certificate made at start (`rcgen`).

use std::path::Path;
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use sockstate::tls::pki_types::pem::PemObject;
use sockstate::tls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sockstate::tls::{self, ClientConfig, ClientOptions, RootCertStore, ServerConfig};

/// A client config trusting only the CA certificates of a PEM file.
pub fn client_from_ca_file(file: &Path) -> Result<Arc<ClientConfig>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", file.display()));
    }
    client_trusting(certs).map_err(|e| format!("{}: {e}", file.display()))
}

/// A client config trusting exactly these certificates as roots.
pub fn client_trusting(certs: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    tls::client_config(ClientOptions::default().roots(Some(roots)))
        .map_err(|e| format!("TLS configuration: {e}"))
}

/// A server config from a certificate chain file and a key file (PEM).
pub fn server_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let pem = std::fs::read(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    tls::server_config(tls::ServerOptions::new(chain, key))
        .map_err(|e| format!("TLS configuration: {e}"))
}

/// A self-signed identity for `localhost` and `127.0.0.1`, made now.
pub struct SelfSigned {
    /// The server side.
    pub server: Arc<ServerConfig>,
    /// The certificate, for clients to trust.
    pub cert: CertificateDer<'static>,
    /// The certificate in PEM, for people and other programs.
    pub pem: String,
}

pub fn self_signed() -> Result<SelfSigned, String> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let key = KeyPair::generate().map_err(|e| format!("key generation: {e}"))?;
    let cert = CertificateParams::new(names)
        .and_then(|params| params.self_signed(&key))
        .map_err(|e| format!("certificate generation: {e}"))?;
    let der = cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let server = tls::server_config(tls::ServerOptions::new(vec![der.clone()], private))
        .map_err(|e| format!("TLS configuration: {e}"))?;
    Ok(SelfSigned {
        server,
        cert: der,
        pem: cert.pem(),
    })
}
