//! The trust hook ([BEHAVIOUR §5](crate::behaviour#5-trust)): the embedder's [`Policy`] is asked before every connect,
//! listen, bind and multicast join; a refusal is a synchronous `SecurityError` and nothing is
//! created.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use crate::host::Host;

/// What a socket is about to do, for the [`Policy`] to allow or refuse.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Request<'a> {
    /// `TCPSocket.open(host, port)`; `local_port` is the `localPort` option, if any.
    Connect {
        /// The host as the app gave it (before any resolution).
        host: &'a Host,
        /// The remote port.
        port: u16,
        /// The requested local port (0 or absent: ephemeral).
        local_port: Option<u16>,
    },
    /// A `TCPServerSocket` about to listen on `local`.
    Listen {
        /// The address and port (0: ephemeral) to listen on.
        local: SocketAddr,
    },
    /// A `UDPSocket` about to bind `local`.
    Bind {
        /// The address and port (0: ephemeral) to bind.
        local: SocketAddr,
    },
    /// `UDPSocket.joinMulticastGroup(group)`.
    JoinMulticast {
        /// The group to join.
        group: IpAddr,
    },
}

impl Request<'_> {
    /// The local port this request would bind, if it names one.
    pub fn local_port(&self) -> Option<u16> {
        match *self {
            Request::Connect { local_port, .. } => local_port,
            Request::Listen { local } | Request::Bind { local } => Some(local.port()),
            Request::JoinMulticast { .. } => None,
        }
        .filter(|&p| p != 0)
    }
}

/// Decides which requests are allowed. The default, [`AllowAll`], allows everything: a Rust
/// program is trusted content. Refusals carry a reason that becomes the `SecurityError` message.
pub trait Policy: Send {
    /// `Ok(())` to allow, `Err(reason)` to refuse.
    fn check(&self, request: &Request<'_>) -> Result<(), Cow<'static, str>>;
}

/// Allows every request (the default).
#[derive(Clone, Copy, Debug, Default)]
pub struct AllowAll;

impl Policy for AllowAll {
    fn check(&self, _: &Request<'_>) -> Result<(), Cow<'static, str>> {
        Ok(())
    }
}

/// Refuses local ports 1–1023 on listen, bind and a TCP `localPort`, as Firefox OS did for
/// apps that were not certified. Connecting to a low remote port is allowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoPrivilegedPorts;

impl Policy for NoPrivilegedPorts {
    fn check(&self, request: &Request<'_>) -> Result<(), Cow<'static, str>> {
        match request.local_port() {
            Some(port) if port < 1024 => Err(format!(
                "local port {port} is below 1024, which this policy keeps for privileged code"
            )
            .into()),
            _ => Ok(()),
        }
    }
}

/// Allows only what was listed: remote `(host, port)` pairs for connects (the host compared as
/// written, names case-insensitively), local ports for listen and bind (and a TCP `localPort`),
/// and multicast groups.
///
/// ```
/// use sockstate::{AllowList, Core, Config, TcpOptions, DomException};
/// let policy = AllowList::new().connect("mail.example.org", Some(993)).local_port(5353);
/// let mut core = Core::with_policy(Config::default(), policy);
/// let now = std::time::Instant::now();
/// assert!(core.tcp_open(now, "mail.example.org", 993, TcpOptions::default()).is_ok());
/// let refused = core.tcp_open(now, "mail.example.org", 25, TcpOptions::default());
/// assert_eq!(refused.unwrap_err().exception(), DomException::SecurityError);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    remotes: Vec<(Host, Option<u16>)>,
    local_ports: Vec<u16>,
    groups: Vec<IpAddr>,
}

impl AllowList {
    /// An empty list: everything is refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allows connecting to `host` on `port` (`None`: any port). A host that is neither an IP
    /// literal nor a valid name can never match and is ignored.
    pub fn connect(mut self, host: &str, port: Option<u16>) -> Self {
        if let Ok(host) = Host::parse(host) {
            self.remotes.push((host, port));
        }
        self
    }

    /// Allows binding or listening on this local port.
    pub fn local_port(mut self, port: u16) -> Self {
        self.local_ports.push(port);
        self
    }

    /// Allows joining this multicast group.
    pub fn multicast_group(mut self, group: IpAddr) -> Self {
        self.groups.push(group);
        self
    }
}

fn same_host(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (Host::Ip(a), Host::Ip(b)) => a == b,
        (Host::Name(a), Host::Name(b)) => a.as_str().eq_ignore_ascii_case(b.as_str()),
        _ => false,
    }
}

impl Policy for AllowList {
    fn check(&self, request: &Request<'_>) -> Result<(), Cow<'static, str>> {
        if let Some(port) = request.local_port() {
            if !self.local_ports.contains(&port) {
                return Err(format!("local port {port} is not on the allow-list").into());
            }
        }
        match *request {
            Request::Connect { host, port, .. } => {
                let listed = self
                    .remotes
                    .iter()
                    .any(|(h, p)| same_host(h, host) && p.is_none_or(|p| p == port));
                if !listed {
                    return Err(format!("{host} port {port} is not on the allow-list").into());
                }
            }
            Request::Listen { local } | Request::Bind { local } if local.port() == 0 => {
                return Err("an ephemeral local port is not on the allow-list".into());
            }
            Request::JoinMulticast { group } if !self.groups.contains(&group) => {
                return Err(format!("multicast group {group} is not on the allow-list").into());
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(host: &str, port: u16, local_port: Option<u16>) -> (Host, u16, Option<u16>) {
        (Host::parse(host).unwrap(), port, local_port)
    }

    #[test]
    fn no_privileged_ports_refuses_only_low_local_ports() {
        let p = NoPrivilegedPorts;
        let (h, port, _) = connect("127.0.0.1", 25, None);
        assert!(p
            .check(&Request::Connect {
                host: &h,
                port,
                local_port: None
            })
            .is_ok());
        assert!(p
            .check(&Request::Connect {
                host: &h,
                port,
                local_port: Some(80)
            })
            .is_err());
        assert!(p
            .check(&Request::Listen {
                local: "0.0.0.0:80".parse().unwrap()
            })
            .is_err());
        assert!(p
            .check(&Request::Listen {
                local: "0.0.0.0:0".parse().unwrap()
            })
            .is_ok());
        assert!(p
            .check(&Request::Bind {
                local: "0.0.0.0:1024".parse().unwrap()
            })
            .is_ok());
    }

    #[test]
    fn allow_list_matches_host_port_and_local_ports() {
        let p = AllowList::new()
            .connect("Example.org", Some(443))
            .connect("10.0.0.1", None)
            .local_port(8080)
            .multicast_group("239.1.2.3".parse().unwrap());
        let ok = |host: &str, port, lp| {
            let (h, port, lp) = connect(host, port, lp);
            p.check(&Request::Connect {
                host: &h,
                port,
                local_port: lp,
            })
            .is_ok()
        };
        assert!(ok("example.ORG", 443, None));
        assert!(!ok("example.org", 80, None));
        assert!(ok("10.0.0.1", 1, None));
        assert!(!ok("10.0.0.2", 1, None));
        assert!(ok("10.0.0.1", 1, Some(8080)));
        assert!(!ok("10.0.0.1", 1, Some(8081)));
        assert!(p
            .check(&Request::Listen {
                local: "[::]:8080".parse().unwrap()
            })
            .is_ok());
        assert!(p
            .check(&Request::Listen {
                local: "[::]:0".parse().unwrap()
            })
            .is_err());
        let group = |g: &str| Request::JoinMulticast {
            group: g.parse().unwrap(),
        };
        assert!(p.check(&group("239.1.2.3")).is_ok());
        assert!(p.check(&group("239.1.2.4")).is_err());
    }
}
