//! `sockcat`: a netcat for the TCP and UDP Socket API, on `sockstate` and its driver.
//!
//! Every subcommand prints the spec's events on stderr with `-v`, and ends with one clear line
//! and a non-zero exit status when something fails (bad arguments, refused connections,
//! certificate failures, ...).

mod certs;
mod demo;
mod listen;
mod pipe;
mod starttls;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Show the API at work in one process on loopback: a server and a client (a send that
    /// returns false, then its drain), STARTTLS, a secure server, UDP multicast on 127.0.0.1.
    Demo,
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
        /// Speak this protocol's plaintext prelude, then `upgradeToSecure()` (STARTTLS). Any
        /// byte after the server's go-ahead line is refused as a protocol error.
        #[arg(long, value_enum, value_name = "PROTOCOL")]
        starttls: Option<starttls::Protocol>,
    },
    /// Listen on PORT (0: any free port; the port is printed on stderr). Without `--echo`,
    /// the first connection is joined to stdin and stdout, then sockcat exits.
    Listen(listen::ListenArgs),
    /// A UDP socket: each line of stdin is a datagram to `--to`; each datagram received is
    /// printed on its own line.
    Udp(udp::UdpArgs),
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
    match cli.command {
        Command::Demo => demo::run(cli.verbose),
        Command::Connect {
            host,
            port,
            tls,
            ca,
            starttls,
        } => {
            let mut driver = new_driver(Config::default())?;
            let options = TcpOptions::default()
                .binary_type(BinaryType::ArrayBuffer)
                .use_secure_transport(tls)
                .tls_config(
                    ca.map(|file| certs::client_from_ca_file(&file))
                        .transpose()?,
                );
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
        Command::Listen(args) => listen::run(args, cli.verbose),
        Command::Udp(args) => udp::run(args, cli.verbose),
    }
}

/// A driver, or the one line saying why there is none.
pub fn new_driver(config: Config) -> Result<Driver, String> {
    Driver::new(config).map_err(|e| format!("no poller: {e}"))
}

/// `ADDR:PORT`, for messages.
pub fn addr(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "?".into(), |a| a.to_string())
}
