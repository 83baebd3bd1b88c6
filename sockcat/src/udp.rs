//! `sockcat udp`: a `UDPSocket`; stdin lines become datagrams, datagrams become stdout lines.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use sockstate_driver::{Config, Driver, Event, ReadyState, SocketId, UdpId, UdpOptions};

use crate::pipe::{log, summary, Feeder, Idle};
use crate::{addr, new_driver};

#[derive(Args)]
pub struct UdpArgs {
    /// The local address and port to bind (port 0: any free port; printed on stderr).
    /// Default: any address of `--to`'s family (IPv4 without `--to`), any free port.
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Send each line of stdin (without its newline) here; at the end of stdin, close.
    /// Without it, lines go to whoever sent the last datagram (held until one arrives).
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

/// What a UDP run does: from `sockcat udp` or from netcat's `-u`.
#[derive(Default)]
pub struct Plan {
    /// Where to bind; `None`: any address of `to`'s family, any port.
    pub bind: Option<SocketAddr>,
    /// Where stdin goes; `None`: to the last sender.
    pub to: Option<SocketAddr>,
    pub join: Vec<IpAddr>,
    pub interface: Option<Ipv4Addr>,
    pub loopback: bool,
    pub count: Option<u64>,
    /// Netcat's framing: each line of stdin with its newline is one datagram, datagrams are
    /// printed as they are, and the end of stdin does not close (`-w` or a signal does).
    pub nc: bool,
    /// `-w`: close once no datagram moved either way for this long.
    pub wait: Option<Duration>,
}

impl From<UdpArgs> for Plan {
    fn from(args: UdpArgs) -> Plan {
        Plan {
            bind: args.bind,
            to: args.to,
            join: args.join,
            interface: args.interface,
            loopback: args.loopback,
            count: args.count,
            nc: false,
            wait: None,
        }
    }
}

/// The unspecified address of `ip`'s family.
pub fn any_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Where stdin's datagrams go when there is no `--to`.
#[derive(Default)]
struct Reply {
    /// Whoever sent the last datagram.
    last: Option<SocketAddr>,
    /// A line read before any datagram arrived: sent to the first sender.
    pending: Option<Vec<u8>>,
}

pub fn run(plan: Plan, verbose: bool) -> Result<(), String> {
    let mut driver = new_driver(Config::default().multicast_interface_v4(plan.interface))?;
    let bind = plan.bind.unwrap_or_else(|| {
        let ip = plan
            .to
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |to| any_like(to.ip()));
        SocketAddr::new(ip, 0)
    });
    let options = UdpOptions::default()
        .local_address(Some(bind.ip()))
        .local_port(Some(bind.port()))
        .remote_address(plan.to.map(|a| a.ip()))
        .remote_port(plan.to.map(|a| a.port()))
        .loopback(plan.loopback);
    let id = driver.udp_open(options).map_err(|e| e.to_string())?;
    let reply = Arc::new(Mutex::new(Reply::default()));
    let mut feeder: Option<Feeder> = None;
    let mut received = 0u64;
    let mut received_bytes = 0u64;
    let started = std::time::Instant::now();
    let mut failure = None;
    let mut stdout = std::io::stdout().lock();
    if plan.count == Some(0) {
        let _ = driver.close(id);
    }
    let mut idle = Idle::new(plan.wait);
    loop {
        let Some(event) = driver.next_event(idle.timeout()) else {
            if plan.wait.is_none() || driver.udp(id).is_none() {
                break;
            }
            let sent = feeder.as_ref().map_or(0, Feeder::sent);
            if idle.expired(sent + received_bytes) {
                if verbose {
                    eprintln!("sockcat: {id} idle for {} s: closing", idle.secs());
                }
                let _ = driver.close(id);
            }
            continue;
        };
        if verbose {
            log(&driver, &event);
        }
        match event {
            Event::Open { .. } => {
                let local = addr(driver.udp(id).and_then(|s| s.local_address()));
                eprintln!("sockcat: bound to {local}");
                for group in &plan.join {
                    driver
                        .join_multicast_group(id, *group)
                        .map_err(|e| e.to_string())?;
                }
                feeder = Some(feed(&driver, id, &plan, Arc::clone(&reply)));
            }
            Event::Message { data, remote, .. } => {
                received += 1;
                received_bytes += data.len() as u64;
                idle.moved(received_bytes + feeder.as_ref().map_or(0, Feeder::sent));
                if !verbose && !plan.nc {
                    eprintln!("sockcat: {} bytes from {remote}", data.len());
                }
                let _ = stdout
                    .write_all(&data)
                    .and_then(|()| {
                        if plan.nc {
                            Ok(())
                        } else {
                            stdout.write_all(b"\n")
                        }
                    })
                    .and_then(|()| stdout.flush());
                if plan.to.is_none() {
                    let mut reply = reply.lock().expect("not poisoned");
                    reply.last = Some(remote);
                    if let Some(line) = reply.pending.take() {
                        drop(reply);
                        if let Err(e) = driver.send_to(id, line, Some(remote)) {
                            eprintln!("sockcat: {id}: stdin not sent: {e}");
                        }
                        if let Some(feeder) = &feeder {
                            feeder.drained();
                        }
                    }
                }
                if plan.count == Some(received) {
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
    if reply.lock().expect("not poisoned").pending.is_some() {
        // Never silently: stdin had lines and nobody to send them to.
        failure = failure.or(Some(
            "stdin not sent: no --to, and no datagram arrived to reply to".into(),
        ));
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Stdin lines to datagrams, to `--to` or the last sender; at its end, close if there is a
/// destination (else keep receiving). A line that cannot be sent is said so on stderr.
fn feed(driver: &Driver, id: UdpId, plan: &Plan, reply: Arc<Mutex<Reply>>) -> Feeder {
    let (to, nc) = (plan.to, plan.nc);
    let close_at_end = to.is_some() && !nc;
    Feeder::start(
        driver,
        true,
        Arc::new(move |driver: &mut Driver, mut line: Vec<u8>| {
            if nc {
                line.push(b'\n');
            }
            let dest = match to {
                Some(_) => None,
                None => {
                    let mut reply = reply.lock().expect("not poisoned");
                    match reply.last {
                        Some(last) => Some(last),
                        None => {
                            reply.pending = Some(line);
                            return Ok(false);
                        }
                    }
                }
            };
            driver.send_to(id, line, dest).inspect_err(|e| {
                eprintln!("sockcat: {id}: stdin not sent: {e}");
            })
        }),
        Box::new(move |driver: &mut Driver| {
            if close_at_end {
                let _ = driver.close(id);
            }
        }),
    )
}
