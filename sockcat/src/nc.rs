//! Netcat's command line: `sockcat [-l] [-u] [-k] [-4|-6] [-w SECS] [-s ADDR] [-p PORT]
//! [--crlf] [HOST] [PORT]`, mapped onto `connect`, `listen` and `udp`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use sockstate_driver::TcpOptions;

use crate::{listen, udp};

/// The flags shared by the netcat form and `connect`.
#[derive(Args, Clone, Default)]
pub struct NetArgs {
    /// IPv4 only.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// IPv6 only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Give up connecting after SECS seconds, and close once no data moved either way for
    /// SECS seconds.
    #[arg(short = 'w', long = "wait", value_name = "SECS", value_parser = seconds)]
    pub wait: Option<Duration>,
    /// The local (source) address to send from or listen on.
    #[arg(short = 's', long = "source", value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// The local (source) port; with `-l`, the port to listen on.
    #[arg(short = 'p', long = "port", value_name = "PORT")]
    pub local_port: Option<u16>,
    /// Send line ends as CRLF (each `\n` of stdin becomes `\r\n`), as `nc -C`.
    #[arg(short = 'C', long)]
    pub crlf: bool,
}

/// Netcat's form: the flags of [`NetArgs`], and what to do.
#[derive(Args)]
pub struct NcArgs {
    /// Listen instead of connecting (`sockcat -l PORT`, `sockcat -l ADDR PORT`,
    /// `sockcat -l -p PORT`).
    #[arg(short, long)]
    listen: bool,
    /// UDP instead of TCP. With `-l`, stdin goes to whoever sent the last datagram.
    #[arg(short, long)]
    udp: bool,
    /// With `-l`: keep listening after a connection ends (stdin goes to the newest one).
    #[arg(short, long, requires = "listen")]
    keep_open: bool,
    #[command(flatten)]
    net: NetArgs,
    /// The host to connect to (with `-l`: the address to listen on).
    #[arg(value_name = "HOST")]
    host: Option<String>,
    /// The remote port (with `-l`: the port to listen on).
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16))]
    port: Option<u16>,
}

impl NcArgs {
    /// Any of netcat's flags or operands was given.
    pub fn given(&self) -> bool {
        let n = &self.net;
        self.listen
            || self.udp
            || self.keep_open
            || self.host.is_some()
            || self.port.is_some()
            || n.ipv4
            || n.ipv6
            || n.crlf
            || n.wait.is_some()
            || n.source.is_some()
            || n.local_port.is_some()
    }
}

fn seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("not a number: {text}"))?;
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("not a positive number of seconds: {text}"))
}

impl NetArgs {
    /// `host` as given, or, with `-4`/`-6`, its first address of that family.
    pub fn resolve(&self, host: &str, port: u16) -> Result<String, String> {
        if !self.ipv4 && !self.ipv6 {
            return Ok(host.to_owned());
        }
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let found: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => (bare, port)
                .to_socket_addrs()
                .map_err(|e| format!("{host}: {e}"))?
                .collect(),
        };
        found
            .into_iter()
            .find(|a| a.is_ipv4() == self.ipv4)
            .map(|a| a.ip().to_string())
            .ok_or_else(|| format!("{host}: no {} address", self.family()))
    }

    fn family(&self) -> &'static str {
        if self.ipv6 {
            "IPv6"
        } else {
            "IPv4"
        }
    }

    /// The address to listen on: `-s`, else any address of the family (IPv4 unless `-6`).
    fn any(&self, host: Option<&str>) -> Result<IpAddr, String> {
        match (host, self.source) {
            (Some(host), _) => {
                let ip = self.resolve(host, 0)?;
                ip.parse::<IpAddr>()
                    .or_else(|_| {
                        (ip.as_str(), 0)
                            .to_socket_addrs()
                            .ok()
                            .and_then(|mut a| a.next())
                            .map(|a| a.ip())
                            .ok_or(())
                    })
                    .map_err(|()| format!("{host}: no address"))
            }
            (None, Some(source)) => Ok(source),
            (None, None) if self.ipv6 => Ok(IpAddr::V6(Ipv6Addr::UNSPECIFIED)),
            (None, None) => Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        }
    }
}

pub fn run(args: NcArgs, verbose: bool) -> Result<(), String> {
    let net = &args.net;
    if args.listen {
        // `-l PORT`, `-l ADDR PORT`, `-l -p PORT`; a lone positional is the port.
        let (host, port) = match (&args.host, args.port) {
            (Some(only), None) => match only.parse::<u16>() {
                Ok(port) => (None, Some(port)),
                Err(_) => (Some(only.as_str()), net.local_port),
            },
            (host, port) => (host.as_deref(), port.or(net.local_port)),
        };
        let port = port.ok_or("-l needs a port: sockcat -l PORT (0: any free port)")?;
        let bind = net.any(host)?;
        if args.udp {
            return udp::run(
                udp::Plan {
                    bind: Some(SocketAddr::new(bind, port)),
                    nc: true,
                    wait: net.wait,
                    ..udp::Plan::default()
                },
                verbose,
            );
        }
        return listen::serve(
            listen::Serve {
                bind,
                port,
                keep: args.keep_open,
                wait: net.wait,
                crlf: net.crlf,
            },
            verbose,
        );
    }
    let (Some(host), Some(port)) = (&args.host, args.port) else {
        return Err(
            "usage: sockcat [-l] [-u] [-k] [-4|-6] [-w SECS] [-s ADDR] [-p PORT] [--crlf] HOST PORT \
             (or a subcommand: sockcat --help)"
                .into(),
        );
    };
    if port == 0 {
        return Err("PORT: 0 is not a port to connect to".into());
    }
    if args.udp {
        let ip: IpAddr = net
            .resolve(host, port)
            .and_then(|h| h.parse().map_err(|_| String::new()))
            .or_else(|_| {
                (host.as_str(), port)
                    .to_socket_addrs()
                    .map_err(|e| format!("{host}: {e}"))?
                    .next()
                    .map(|a| a.ip())
                    .ok_or_else(|| format!("{host}: no address"))
            })?;
        let bind = net
            .source
            .map(|source| SocketAddr::new(source, net.local_port.unwrap_or(0)))
            .or_else(|| {
                net.local_port
                    .map(|p| SocketAddr::new(udp::any_like(ip), p))
            });
        return udp::run(
            udp::Plan {
                bind,
                to: Some(SocketAddr::new(ip, port)),
                nc: true,
                wait: net.wait,
                ..udp::Plan::default()
            },
            verbose,
        );
    }
    crate::connect(host, port, net, TcpOptions::default(), None, verbose)
}
