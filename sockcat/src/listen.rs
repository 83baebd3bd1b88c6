//! `sockcat listen`: a `TCPServerSocket`, echoing every connection or joining the first one to
//! stdin and stdout.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use sockstate_driver::{
    BinaryType, Config, Driver, Event, ReadyState, ServerId, ServerOptions, SocketId, TcpId,
};

use crate::pipe::{self, log, to_crlf, Feeder, PipeOptions};
use crate::{addr, certs, new_driver};

#[derive(Args)]
pub struct ListenArgs {
    /// The port to listen on (0: any free port).
    port: u16,
    /// The local address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0")]
    bind: IpAddr,
    /// Echo every connection back to its sender, until sockcat is stopped.
    #[arg(long)]
    echo: bool,
    /// Every connection is TLS (`useSecureTransport`); needs `--cert` and `--key`, or
    /// `--self-signed`.
    #[arg(long)]
    tls: bool,
    /// The server's certificate chain (PEM), with `--tls`.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// The server's private key (PEM), with `--tls`.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// With `--tls`: a certificate for localhost and 127.0.0.1 made now, printed on stderr
    /// (PEM) for clients to trust.
    #[arg(long, conflicts_with_all = ["cert", "key"])]
    self_signed: bool,
}

pub fn run(args: ListenArgs, verbose: bool) -> Result<(), String> {
    let tls_config = match (args.tls, &args.cert, &args.key, args.self_signed) {
        (false, None, None, false) => None,
        (true, Some(cert), Some(key), false) => Some(certs::server_from_files(cert, key)?),
        (true, None, None, true) => {
            let identity = certs::self_signed()?;
            eprint!("sockcat: self-signed certificate:\n{}", identity.pem);
            Some(identity.server)
        }
        (true, ..) => return Err("--tls needs --cert and --key, or --self-signed".into()),
        (false, ..) => return Err("--cert, --key and --self-signed need --tls".into()),
    };
    let options = ServerOptions::default()
        .use_secure_transport(args.tls)
        .tls_config(tls_config);
    let (mut driver, server) = start(args.bind, args.port, options, verbose)?;
    if args.echo {
        echo(&mut driver, server, verbose)
    } else {
        let socket = first_connection(&mut driver, server, verbose)?;
        pipe::run(
            &mut driver,
            socket,
            PipeOptions {
                verbose,
                ..PipeOptions::default()
            },
        )
    }
}

/// Netcat's `-l`: where to listen and how.
pub struct Serve {
    pub bind: IpAddr,
    pub port: u16,
    /// `-k`: keep listening; every connection's data goes to stdout, stdin to the newest.
    pub keep: bool,
    /// `-w`: the joined connection's idle timeout (without `-k`).
    pub wait: Option<Duration>,
    /// `--crlf`: stdin's `\n` as `\r\n`.
    pub crlf: bool,
}

/// `sockcat -l [-k] ...`.
pub fn serve(serve: Serve, verbose: bool) -> Result<(), String> {
    let (mut driver, server) = start(serve.bind, serve.port, ServerOptions::default(), verbose)?;
    if serve.keep {
        return keep(&mut driver, serve.crlf, verbose);
    }
    let socket = first_connection(&mut driver, server, verbose)?;
    pipe::run(
        &mut driver,
        socket,
        PipeOptions {
            verbose,
            wait: serve.wait,
            crlf: serve.crlf,
            ..PipeOptions::default()
        },
    )
}

/// Where stdin goes while `-k` keeps listening.
#[derive(Default)]
struct Current {
    /// The newest connection still open.
    socket: Option<TcpId>,
    /// A chunk of stdin read while no connection was open: sent to the next one.
    pending: Option<Vec<u8>>,
    /// Stdin ended: every connection from now on is half-closed at once.
    ended: bool,
}

/// Keeps listening until stopped: each connection's data goes to stdout as it comes, stdin
/// to the newest open connection (held, not dropped, while there is none).
fn keep(driver: &mut Driver, crlf: bool, verbose: bool) -> Result<(), String> {
    let current = Arc::new(Mutex::new(Current::default()));
    let (to_send, at_end) = (Arc::clone(&current), Arc::clone(&current));
    let feeder = Feeder::start(
        driver,
        false,
        Arc::new(move |driver: &mut Driver, chunk: Vec<u8>| {
            let chunk = if crlf { to_crlf(&chunk) } else { chunk };
            let mut current = to_send.lock().expect("not poisoned");
            match current.socket {
                Some(id)
                    if driver
                        .tcp(id)
                        .is_some_and(|s| s.ready_state() == ReadyState::Open) =>
                {
                    driver.send(id, chunk)
                }
                _ => {
                    current.pending = Some(chunk);
                    Ok(false)
                }
            }
        }),
        Box::new(move |driver: &mut Driver| {
            let mut current = at_end.lock().expect("not poisoned");
            current.ended = true;
            if let Some(id) = current.socket {
                let _ = driver.halfclose(id);
            }
        }),
    );
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = driver.next_event(None) {
        if verbose {
            log(driver, &event);
        }
        match event {
            Event::Connect { socket, .. } => {
                let mut current = current.lock().expect("not poisoned");
                current.socket = Some(socket);
                if current.ended {
                    let _ = driver.halfclose(socket);
                } else if let Some(chunk) = current.pending.take() {
                    let _ = driver.send(socket, chunk);
                    drop(current);
                    feeder.drained();
                }
            }
            Event::Data { data, .. } => {
                let _ = stdout
                    .write_all(data.as_bytes())
                    .and_then(|()| stdout.flush());
            }
            Event::Drain { .. } => feeder.drained(),
            Event::Error { id, error } if !verbose => eprintln!("sockcat: {id} error {error}"),
            Event::Close {
                id: SocketId::TcpId(closed),
            } => {
                let mut current = current.lock().expect("not poisoned");
                if current.socket == Some(closed) {
                    current.socket = None;
                }
            }
            Event::Close {
                id: SocketId::ServerId(_),
            } => return Err("the server closed".into()),
            _ => {}
        }
    }
    Ok(())
}

/// A server listening on `bind`:`port` (bytes, not text), once it is open.
fn start(
    bind: IpAddr,
    port: u16,
    options: ServerOptions,
    verbose: bool,
) -> Result<(Driver, ServerId), String> {
    let mut driver = new_driver(Config::default())?;
    let options = options
        .local_address(Some(bind))
        .local_port(Some(port))
        .binary_type(BinaryType::ArrayBuffer);
    let server = driver.listen(options).map_err(|e| e.to_string())?;
    opened(&mut driver, server, verbose)?;
    Ok((driver, server))
}

/// Waits for the server's `Open` and says where it listens.
fn opened(driver: &mut Driver, server: ServerId, verbose: bool) -> Result<(), String> {
    while let Some(event) = driver.next_event(None) {
        if verbose {
            log(driver, &event);
        }
        match event {
            Event::Open { .. } => {
                let local = addr(driver.server(server).and_then(|s| s.local_address()));
                eprintln!("sockcat: listening on {local}");
                return Ok(());
            }
            Event::Error { error, .. } => return Err(error.to_string()),
            _ => {}
        }
    }
    Err("the server closed".into())
}

/// Takes the first connection and stops listening, as `nc -l` does.
fn first_connection(driver: &mut Driver, server: ServerId, verbose: bool) -> Result<TcpId, String> {
    while let Some(event) = driver.next_event(None) {
        if verbose {
            log(driver, &event);
        }
        match event {
            Event::Connect { socket, .. } => {
                let _ = driver.close(server);
                return Ok(socket);
            }
            // A client whose TLS handshake failed: keep listening.
            Event::Error { error, .. } => eprintln!("sockcat: {server} error {error}"),
            _ => {}
        }
    }
    Err("the server closed".into())
}

/// Echoes every connection, with back-pressure: a socket whose `send` returned `false` is
/// suspended until its `Drain`.
fn echo(driver: &mut Driver, server: ServerId, verbose: bool) -> Result<(), String> {
    while let Some(event) = driver.next_event(None) {
        if verbose {
            log(driver, &event);
        }
        match event {
            Event::Data { id, data } => {
                let below = driver.send(id, data.as_bytes().to_vec()).unwrap_or(true);
                if !below && driver.tcp(id).is_some_and(|s| s.suspend_count() == 0) {
                    let _ = driver.suspend(id);
                }
            }
            Event::Drain {
                id: SocketId::TcpId(id),
            } if driver.tcp(id).is_some_and(|s| s.suspend_count() > 0) => {
                let _ = driver.resume(id);
            }
            Event::Error {
                id: SocketId::ServerId(_),
                error,
            } if !verbose => eprintln!("sockcat: {server} error {error}"),
            Event::Close {
                id: SocketId::ServerId(_),
            } => return Err("the server closed".into()),
            _ => {}
        }
    }
    Ok(())
}
