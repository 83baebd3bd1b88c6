//! `sockcat`: a netcat for the TCP and UDP Socket API, on `sockstate` and its driver.
//!
//! Every subcommand prints the spec's events on stderr with `-v`, and ends with one clear line
//! and a non-zero exit status when something fails (bad arguments, refused connections, ...).

mod pipe;

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
    /// Connect to HOST PORT: stdin goes to the socket, the socket to stdout. At the end of
    /// stdin the socket is half-closed and output goes on until the peer closes (as `nc -N`).
    Connect {
        /// An IP address or a DNS name.
        host: String,
        /// The remote port.
        #[arg(value_parser = clap::value_parser!(u16).range(1..))]
        port: u16,
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
        Command::Connect { host, port } => {
            let options = TcpOptions {
                binary_type: BinaryType::ArrayBuffer,
                ..TcpOptions::default()
            };
            let id = driver
                .tcp_open(&host, port, options)
                .map_err(|e| e.to_string())?;
            pipe::run(&mut driver, id, cli.verbose)
        }
    }
}
