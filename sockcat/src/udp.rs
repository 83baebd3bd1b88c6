//! `sockcat udp`: a `UDPSocket`; stdin lines become datagrams, datagrams become stdout lines.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use clap::Args;
use sockstate_driver::{Config, Driver, Event, ReadyState, SocketId, UdpOptions};

use crate::pipe::{log, summary, Feeder};
use crate::{addr, new_driver};

#[derive(Args)]
pub struct UdpArgs {
    /// The local address and port to bind (port 0: any free port; printed on stderr).
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:0")]
    bind: SocketAddr,
    /// Send each line of stdin (without its newline) here; at the end of stdin, close.
    #[arg(long, value_name = "ADDR:PORT")]
    to: Option<SocketAddr>,
    /// Join this multicast group (repeatable).
    #[arg(long, value_name = "GROUP")]
    join: Vec<IpAddr>,
    /// The IPv4 interface (by address) for multicast joins and sends.
    #[arg(long, value_name = "ADDR")]
    interface: Option<Ipv4Addr>,
    /// Loop multicast we send back to this host (`loopback`).
    #[arg(long)]
    loopback: bool,
    /// Exit after receiving this many datagrams.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
}

pub fn run(args: UdpArgs, verbose: bool) -> Result<(), String> {
    let mut driver = new_driver(Config::default().multicast_interface_v4(args.interface))?;
    let options = UdpOptions::default()
        .local_address(Some(args.bind.ip()))
        .local_port(Some(args.bind.port()))
        .remote_address(args.to.map(|a| a.ip()))
        .remote_port(args.to.map(|a| a.port()))
        .loopback(args.loopback);
    let id = driver.udp_open(options).map_err(|e| e.to_string())?;
    let mut feeder: Option<Feeder> = None;
    let mut received = 0u64;
    let mut received_bytes = 0u64;
    let started = std::time::Instant::now();
    let mut failure = None;
    let mut stdout = std::io::stdout().lock();
    if args.count == Some(0) {
        let _ = driver.close(id);
    }
    while let Some(event) = driver.next_event(None) {
        if verbose {
            log(&driver, &event);
        }
        match event {
            Event::Open { .. } => {
                let local = addr(driver.udp(id).and_then(|s| s.local_address()));
                eprintln!("sockcat: bound to {local}");
                for group in &args.join {
                    driver
                        .join_multicast_group(id, *group)
                        .map_err(|e| e.to_string())?;
                }
                feeder = Some(feed(&driver, id, args.to.is_some()));
            }
            Event::Message { data, remote, .. } => {
                received += 1;
                received_bytes += data.len() as u64;
                if !verbose {
                    eprintln!("sockcat: {} bytes from {remote}", data.len());
                }
                let _ = stdout
                    .write_all(&data)
                    .and_then(|()| stdout.write_all(b"\n"))
                    .and_then(|()| stdout.flush());
                if args.count == Some(received) {
                    let _ = driver.close(id);
                }
            }
            Event::Drain { .. } => {
                if let Some(feeder) = &feeder {
                    feeder.drained();
                }
            }
            // A datagram the OS refused (the socket stays open), or the socket's end.
            Event::Error { error, .. } => {
                if !verbose {
                    eprintln!("sockcat: {id} error {error}");
                }
                if driver
                    .udp(id)
                    .is_some_and(|s| s.ready_state() == ReadyState::Closed)
                {
                    failure = Some(error.to_string());
                }
            }
            Event::Close {
                id: SocketId::UdpId(closed),
            } if closed == id => break,
            _ => {}
        }
    }
    if verbose {
        let sent = feeder.as_ref().map_or(0, Feeder::sent);
        summary(sent, received_bytes, started);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Stdin lines to datagrams; at its end, close if there is a destination (else keep
/// receiving).
fn feed(driver: &Driver, id: sockstate_driver::UdpId, close_at_end: bool) -> Feeder {
    Feeder::start(
        driver,
        true,
        Arc::new(move |driver: &mut Driver, line: Vec<u8>| driver.send_to(id, line, None)),
        Box::new(move |driver: &mut Driver| {
            if close_at_end {
                let _ = driver.close(id);
            }
        }),
    )
}
