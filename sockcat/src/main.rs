//! `sockcat`: a netcat for the TCP and UDP Socket API, on `sockstate` and its driver.
//!
//! Every subcommand prints the spec's events on stderr with `-v`, and ends with one clear line
//! and a non-zero exit status when something fails (bad arguments, refused connections,
//! certificate failures, ...).
//!
//! Without a subcommand, sockcat takes netcat's flags (`sockcat [-l] [-u] [-k] [-4|-6]
//! [-w SECS] [-s ADDR] [-p PORT] [--crlf] [HOST] [PORT]`) and maps them onto `connect`,
//! `listen` and `udp` ([`nc`]).

mod certs;
mod demo;
mod listen;
mod nc;
mod pipe;
mod replay;
mod starttls;
mod udp;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};
use sockstate_driver::sockstate::replay::TlsDraws;
use sockstate_driver::{BinaryType, Config, Driver, Recording, TcpOptions};

#[derive(Parser)]
#[command(
    name = "sockcat",
    version,
    about = "A netcat for the TCP and UDP Socket API (sockstate)",
    // `sockcat HOST PORT` and `sockcat -l PORT` as netcat, or one of the subcommands (netcat's
    // flags with a subcommand are refused in `run`).
    subcommand_negates_reqs = true
)]
struct Cli {
    /// Print every spec event and a transfer summary on stderr (and, for TLS, what the
    /// handshake agreed on and the peer's certificate).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Netcat's flags, when no subcommand is given.
    #[command(flatten)]
    nc: nc::NcArgs,
    /// Record the session into FILE, for `sockcat replay FILE` (or `sockstate::replay`)
    /// offline.
    #[arg(long, global = true, value_name = "FILE")]
    record: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Show the API at work in one process on loopback: a server and a client (a send that
    /// returns false, then its drain), STARTTLS, a secure server, UDP multicast on 127.0.0.1.
    Demo,
    /// Connect to HOST PORT: stdin goes to the socket, the socket to stdout. At the end of
    /// stdin the socket is half-closed and output goes on until the peer closes (as `nc -N`).
    Connect(ConnectArgs),
    /// Listen on PORT (0: any free port; the port is printed on stderr). Without `--echo`,
    /// the first connection is joined to stdin and stdout, then sockcat exits.
    Listen(listen::ListenArgs),
    /// A UDP socket: each line of stdin is a datagram to `--to`, or to the last sender;
    /// each datagram received is printed on its own line.
    Udp(udp::UdpArgs),
    /// Replay a recording made with `--record FILE` offline: print its event transcript (the
    /// lines of `-v`) and a summary; exit 1 if the core now does something else (naming the
    /// first step that differs) or the file is damaged.
    Replay {
        /// The recording.
        file: PathBuf,
    },
}

#[derive(clap::Args)]
struct ConnectArgs {
    /// An IP address or a DNS name.
    host: String,
    /// The remote port.
    #[arg(value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
    #[command(flatten)]
    net: nc::NetArgs,
    #[command(flatten)]
    tls: certs::TlsClientArgs,
    /// Speak this protocol's plaintext prelude, then `upgradeToSecure()` (STARTTLS). Any
    /// byte after the server's go-ahead line is refused as a protocol error.
    #[arg(long, value_enum, value_name = "PROTOCOL", conflicts_with = "tls")]
    starttls: Option<starttls::Protocol>,
}

/// `--record FILE`, for every driver made by [`new_driver`].
static RECORD: OnceLock<Recording> = OnceLock::new();

/// While recording: what the session's TLS configs draw and decide, recorded with it so that
/// `sockcat replay` replays TLS sessions whole (every config sockcat builds takes it).
pub fn tls_draws() -> Option<TlsDraws> {
    RECORD.get().map(|r| r.tls_draws().clone())
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
    if cli.command.is_some() && cli.nc.given() {
        return Err(
            "netcat's flags (-l, -u, -k, -w, ...) go without a subcommand; \
                    see sockcat --help"
                .into(),
        );
    }
    if let Some(file) = cli.record {
        let _ = RECORD.set(Recording::to_path(file));
    }
    match cli.command {
        None => nc::run(cli.nc, cli.verbose),
        Some(Command::Demo) => demo::run(cli.verbose),
        Some(Command::Connect(args)) => {
            let tls_config = args.tls.client_config()?;
            let options = TcpOptions::default()
                .use_secure_transport(args.tls.tls)
                .tls_config(tls_config);
            let prelude = args.starttls.map(starttls::Prelude::new);
            connect(
                &args.host,
                args.port,
                &args.net,
                options,
                prelude,
                cli.verbose,
            )
        }
        Some(Command::Listen(args)) => listen::run(args, cli.verbose),
        Some(Command::Udp(args)) => udp::run(args.into(), cli.verbose),
        Some(Command::Replay { file }) => replay::run(&file),
    }
}

/// Opens a TCP socket to `host` as `net` says (source address and port, family, connect
/// timeout) and joins it to stdin and stdout.
pub fn connect(
    host: &str,
    port: u16,
    net: &nc::NetArgs,
    options: TcpOptions,
    prelude: Option<starttls::Prelude>,
    verbose: bool,
) -> Result<(), String> {
    let mut driver = new_driver(Config::default())?;
    let host = net.resolve(host, port)?;
    let options = options
        .binary_type(BinaryType::ArrayBuffer)
        .local_address(net.source)
        .local_port(net.local_port)
        // The peer's end of stream does not cut ours short: all of stdin still goes out.
        .allow_half_open(true);
    let id = driver
        .tcp_open(&host, port, options)
        .map_err(|e| e.to_string())?;
    pipe::run(
        &mut driver,
        id,
        pipe::PipeOptions {
            verbose,
            prelude,
            wait: net.wait,
            crlf: net.crlf,
        },
    )
}

/// A driver, or the one line saying why there is none.
pub fn new_driver(mut config: Config) -> Result<Driver, String> {
    config.record = RECORD.get().cloned();
    Driver::new(config).map_err(|e| match RECORD.get() {
        Some(recording) => format!("no driver (recording into {recording:?}): {e}"),
        None => format!("no poller: {e}"),
    })
}

/// `ADDR:PORT`, for messages.
pub fn addr(a: Option<SocketAddr>) -> String {
    a.map_or_else(|| "?".into(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
