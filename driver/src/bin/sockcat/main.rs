//! `sockcat`: a netcat for the TCP and UDP Socket API, on `sockstate` and its driver.
//!
//! Every subcommand prints the spec's events on stderr with `-v`, and ends with one clear line
//! and a non-zero exit status when something fails (bad arguments, refused connections, ...).

mod pipe;
mod starttls;

use std::process::ExitCode;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, Subcommand};
use sockstate::tls::pki_types::pem::PemObject;
use sockstate::tls::pki_types::CertificateDer;
use sockstate::tls::{self, ClientConfig, ClientOptions, RootCertStore};
use sockstate_driver::{BinaryType, Config, Driver, TcpOptions};

#[derive(Parser)]
#[command(
    name = "sockcat",
    version,
    about = "A netcat for the TCP and UDP Socket API (sockstate)"
)]
struct Cli {
    /// Print every spec event and a transfer summary on stderr.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Connect to HOST PORT: stdin goes to the socket, the socket to stdout. At the end of
    /// stdin the socket is half-closed and output goes on until the peer closes (as `nc -N`).
    Connect {
        /// An IP address or a DNS name.
        host: String,
        /// The remote port.
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
        /// Open with TLS (`useSecureTransport`), verifying the server for HOST.
        #[arg(long, conflicts_with = "starttls")]
        tls: bool,
        /// Trust the CA certificates in this PEM file instead of Mozilla's roots.
        #[arg(long, value_name = "FILE")]
        ca: Option<PathBuf>,
        /// Speak this protocol's plaintext prelude, then `upgradeToSecure()` (STARTTLS).
        #[arg(long, value_enum, value_name = "PROTOCOL")]
        starttls: Option<starttls::Protocol>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sockcat: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let mut driver = Driver::new(Config::default()).map_err(|e| format!("no poller: {e}"))?;
    match cli.command {
        Command::Connect {
            host,
            port,
            tls,
            ca,
            starttls,
        } => {
            let options = TcpOptions {
                binary_type: BinaryType::ArrayBuffer,
                use_secure_transport: tls,
                tls_config: ca.map(|file| client_config(&file)).transpose()?,
                ..TcpOptions::default()
            };
            let id = driver
                .tcp_open(&host, port, options)
                .map_err(|e| e.to_string())?;
            pipe::run(
                &mut driver,
                id,
                cli.verbose,
                starttls.map(starttls::Prelude::new),
            )
        }
    }
}

/// A client config trusting only the CA certificates of a PEM file.
fn client_config(file: &Path) -> Result<Arc<ClientConfig>, String> {
    let pem = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("{}: {e}", file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{}: no certificate in the file", file.display()));
    }
    tls::client_config(ClientOptions {
        roots: Some(roots),
        ..ClientOptions::default()
    })
    .map_err(|e| format!("TLS configuration: {e}"))
}
