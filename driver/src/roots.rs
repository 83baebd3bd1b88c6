//! The OS trust store, for TLS clients that should trust what the platform trusts rather than
//! Mozilla's roots (the core's default). It reads files, so it lives here and not in the
//! sans-IO core.
//!
//! ```no_run
//! use sockstate_driver::{roots, sockstate::tls, TcpOptions};
//! let config = tls::client_config(tls::ClientOptions::default().roots(Some(roots::os_roots()?)))?;
//! let options = TcpOptions::default().use_secure_transport(true).tls_config(Some(config));
//! # let _ = options;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io;

use sockstate::tls::RootCertStore;

/// Loads the platform's trusted roots (on Linux the bundle `SSL_CERT_FILE` / `SSL_CERT_DIR`
/// or the distribution's store names). Certificates that do not parse are skipped; finding
/// none at all is an error, since a store that trusts nothing would fail every handshake.
pub fn os_roots() -> io::Result<RootCertStore> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _skipped) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "no certificate found".to_owned(), |e| e.to_string());
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no usable root in the OS trust store: {why}"),
        ));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_store_loads_and_an_empty_one_is_an_error() {
        // This machine's store (Debian's ca-certificates) has roots.
        let roots = os_roots().expect("the OS store");
        assert!(!roots.is_empty());
        // A directory with no certificates: nothing usable, a clear error.
        let empty = std::env::temp_dir().join(format!("sockstate-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let missing = empty.join("none.pem");
        std::env::set_var("SSL_CERT_FILE", &missing);
        std::env::set_var("SSL_CERT_DIR", &empty);
        let err = os_roots().unwrap_err();
        std::env::remove_var("SSL_CERT_FILE");
        std::env::remove_var("SSL_CERT_DIR");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
