//! TLS configurations for sockcat: trust from a CA file, a server identity from PEM files, or
//! a self-signed certificate made at start (`rcgen`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair};
use sockstate::tls::pki_types::pem::PemObject;
use sockstate::tls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sockstate::tls::{self, ClientConfig, ClientOptions, RootCertStore, ServerConfig};

/// A client config trusting exactly these certificates as roots.
pub fn client_trusting(certs: Vec<CertificateDer<'static>>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| e.to_string())?;
    }
    tls::client_config(
        ClientOptions::default()
            .roots(Some(roots))
            .draws(crate::tls_draws()),
    )
    .map_err(|e| format!("TLS configuration: {e}"))
}

/// A server config from a certificate chain file and a key file (PEM).
pub fn server_from_files(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let (chain, key) = identity_from_files(cert, key)?;
    server(chain, key)
}

/// A server config for `chain` and `key` (recording what it draws while sockcat records).
fn server(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, String> {
    tls::server_config(tls::ServerOptions::new(chain, key).draws(crate::tls_draws()))
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
    let server = server(vec![der.clone()], private)?;
    Ok(SelfSigned {
        server,
        cert: der,
        pem: cert.pem(),
    })
}

/// TLS for `connect`: whom to trust, a client certificate, ALPN.
#[derive(clap::Args, Default)]
pub struct TlsClientArgs {
    /// Open with TLS (`useSecureTransport`), verifying the server for HOST.
    #[arg(long)]
    pub tls: bool,
    /// Trust the CA certificates of this PEM file instead of Mozilla's roots; `system`: the
    /// operating system's trust store (honouring `SSL_CERT_FILE` and `SSL_CERT_DIR`, as
    /// OpenSSL's tools do).
    #[arg(long, value_name = "FILE|system")]
    pub ca: Option<String>,
    /// A client certificate chain (PEM, leaf first), for servers that ask for one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Offer this ALPN protocol (repeatable, most preferred first; or comma-separated).
    #[arg(long, value_name = "PROTOCOL", value_delimiter = ',')]
    pub alpn: Vec<String>,
}

impl TlsClientArgs {
    /// The client config these flags ask for; `None`: the default (Mozilla's roots). While
    /// recording, always a config, which records what it draws.
    pub fn client_config(&self) -> Result<Option<Arc<ClientConfig>>, String> {
        let draws = crate::tls_draws();
        if self.ca.is_none() && self.cert.is_none() && self.alpn.is_empty() && draws.is_none() {
            return Ok(None);
        }
        let roots = match self.ca.as_deref() {
            None => None,
            Some("system") => {
                Some(sockstate_driver::roots::os_roots().map_err(|e| format!("--ca system: {e}"))?)
            }
            Some(file) => Some(roots_from_file(Path::new(file))?),
        };
        let client_auth = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(identity_from_files(cert, key)?),
            _ => None,
        };
        tls::client_config(
            ClientOptions::default()
                .roots(roots)
                .client_auth(client_auth)
                .alpn(self.alpn.iter().map(|p| p.as_bytes().to_vec()).collect())
                .draws(draws),
        )
        .map(Some)
        .map_err(|e| format!("TLS configuration: {e}"))
    }
}

/// The CA certificates of a PEM file, as roots.
fn roots_from_file(file: &Path) -> Result<RootCertStore, String> {
    let certs = certs_from_file(file)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    Ok(roots)
}

/// The certificates of a PEM file (at least one).
fn certs_from_file(file: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", file.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in the file", file.display()));
    }
    Ok(certs)
}

/// A certificate chain and its key from PEM files.
fn identity_from_files(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let chain = certs_from_file(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Ok((chain, key))
}

/// A certificate's subject, issuer and validity, for `-v`.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
}

/// Reads the subject, issuer and validity out of a DER certificate (RFC 5280 §4.1); `None`
/// if it is not shaped as one.
pub fn summary(cert: &[u8]) -> Option<Summary> {
    let (_, cert, _) = der(cert)?;
    let (_, tbs, _) = der(cert)?;
    let (tag, _, mut rest) = der(tbs)?;
    if tag == 0xa0 {
        // [0] version, then the serial number.
        rest = der(rest)?.2;
    }
    let (_, _signature, rest) = der(rest)?;
    let (_, issuer, rest) = der(rest)?;
    let (_, validity, rest) = der(rest)?;
    let (_, subject, _) = der(rest)?;
    let (t1, before, rest) = der(validity)?;
    let (t2, after, _) = der(rest)?;
    Some(Summary {
        subject: name(subject)?,
        issuer: name(issuer)?,
        not_before: time(t1, before)?,
        not_after: time(t2, after)?,
    })
}

/// One DER element: its tag, its contents and what follows it.
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, &b| len << 8 | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// A distinguished name as `CN=..., O=...` (RDNs in certificate order).
fn name(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (_, mut set, rest) = der(rdns)?;
        rdns = rest;
        while !set.is_empty() {
            let (_, pair, rest) = der(set)?;
            set = rest;
            let (_, oid, rest) = der(pair)?;
            let (_, value, _) = der(rest)?;
            let label = match oid {
                [0x55, 0x04, 0x03] => "CN".to_owned(),
                [0x55, 0x04, 0x06] => "C".to_owned(),
                [0x55, 0x04, 0x07] => "L".to_owned(),
                [0x55, 0x04, 0x08] => "ST".to_owned(),
                [0x55, 0x04, 0x0a] => "O".to_owned(),
                [0x55, 0x04, 0x0b] => "OU".to_owned(),
                other => other.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            };
            parts.push(format!("{label}={}", String::from_utf8_lossy(value)));
        }
    }
    Some(parts.join(", "))
}

/// A UTCTime (tag 0x17) or GeneralizedTime (0x18) as `YYYY-MM-DD HH:MM:SS UTC`.
fn time(tag: u8, value: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(value).ok()?;
    let full = match tag {
        0x17 if text.len() >= 12 => {
            let yy: u32 = text[..2].parse().ok()?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        0x18 if text.len() >= 14 => text.to_owned(),
        _ => return None,
    };
    let d = full.get(..14)?;
    if !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(format!(
        "{}-{}-{} {}:{}:{} UTC",
        &d[..4],
        &d[4..6],
        &d[6..8],
        &d[8..10],
        &d[10..12],
        &d[12..14]
    ))
}

#[cfg(test)]
mod tests {
    use rcgen::{CertificateParams, DnType, KeyPair};

    #[test]
    fn summary_reads_subject_issuer_and_validity_of_an_rcgen_certificate() {
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "leaf.test");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Sockcat");
        params.not_before = rcgen::date_time_ymd(2024, 1, 2);
        params.not_after = rcgen::date_time_ymd(2060, 3, 4);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let s = super::summary(cert.der()).unwrap();
        assert_eq!(s.subject, "CN=leaf.test, O=Sockcat");
        assert_eq!(s.issuer, s.subject);
        assert_eq!(s.not_before, "2024-01-02 00:00:00 UTC");
        assert_eq!(s.not_after, "2060-03-04 00:00:00 UTC");
        assert_eq!(super::summary(b"\x30\x03\x02\x01\x01"), None);
    }
}
