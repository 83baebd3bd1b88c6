//! `UDPOptions`: validation of the options and addresses of a new `UDPSocket`, and the
//! destination checks of `send` ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use crate::core::Ctx;
use crate::error::ApiError;
use crate::host::{DnsName, Host};
use crate::id::UdpId;
use crate::io::{check_ipv6_only, Action, MulticastInterface, SocketSettings};
use crate::tcp::DnsQueryType;

/// The largest IPv4 datagram payload: 65 535 minus the 20-byte IP and 8-byte UDP headers.
pub const MAX_DATAGRAM_V4: usize = 65_507;
/// The largest IPv6 datagram payload without jumbograms: 65 535 minus the 8-byte UDP header.
pub const MAX_DATAGRAM_V6: usize = 65_527;

crate::options_struct! {
    /// Options of `new UDPSocket(options)` (the W3C `UDPOptions`, [BEHAVIOUR §3](crate::behaviour#3-udpsocket)).
    ///
    /// ```
    /// use sockstate::UdpOptions;
    /// let options = UdpOptions::default()
    ///     .remote_address(Some("127.0.0.1".parse().unwrap()))
    ///     .remote_port(Some(5353));
    /// assert!(options.address_reuse && !options.loopback);
    /// ```
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct UdpOptions {
        /// `localAddress`: bind to this address. Default: the unspecified address of the default
        /// destination's family, else `0.0.0.0`. The socket's family is this address's.
        pub local_address: Option<IpAddr>,
        /// `localPort` (0 or `None`: ephemeral, as [BEHAVIOUR §3](crate::behaviour#3-udpsocket) decides against Mozilla's test,
        /// which rejected 0; the real port is known after `Open`).
        pub local_port: Option<u16>,
        /// `remoteAddress` as an IP address: the default destination of `send`; needs
        /// `remote_port` too. For a host name use [`remote_host`](Self::remote_host).
        pub remote_address: Option<IpAddr>,
        /// `remoteAddress` as Direct Sockets allows it, a host name (or an IP literal): the
        /// default destination, resolved before the socket binds ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)). Checked as
        /// `TCPSocket.open` checks its host: empty, longer than 253 bytes or not a valid name
        /// is `InvalidAccessError`; so is setting it with `remote_address`. Needs
        /// `remote_port` too.
        pub remote_host: Option<String>,
        /// `remotePort`: the default destination's port (not 0); needs `remote_address` too.
        pub remote_port: Option<u16>,
        /// `addressReuse`: `SO_REUSEADDR` (default `true`), for an explicit `local_port` only
        /// ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)): an ephemeral port is never shared with another live socket.
        pub address_reuse: bool,
        /// `loopback`: multicast datagrams we send are looped back to this host (default
        /// `false`, against the OS default). Direct Sockets calls it `multicastLoopback`; we keep
        /// the W3C draft's name (one field, no alias).
        pub loopback: bool,
        /// `ipv6Only` (Direct Sockets): on an IPv6 `local_address` such as `::`, IPv6 datagrams
        /// only (`IPV6_V6ONLY`). Default `false`: `::` also takes IPv4, whatever the OS default.
        /// `true` with an IPv4 (or IPv4-mapped) local address is `InvalidAccessError`.
        pub ipv6_only: bool,
        /// Node's `setBroadcast`: `SO_BROADCAST`, so that datagrams may go to a broadcast
        /// address (default `false`). IPv4 only: `true` on an IPv6 socket is
        /// `InvalidAccessError`.
        pub broadcast: bool,
        /// `multicastTimeToLive` (Direct Sockets): `IP_MULTICAST_TTL` / `IPV6_MULTICAST_HOPS`
        /// of the multicast datagrams we send, 0 to 255 (the type's range; default `None`: the
        /// OS's, 1, which keeps them on the local network).
        pub multicast_time_to_live: Option<u8>,
        /// `multicastInterface`: the interface multicast is sent through and groups are joined
        /// on: an IPv4 unicast address of this host for an IPv4 socket, an interface index (not
        /// 0) for an IPv6 one; another family, an unspecified, multicast or broadcast address,
        /// or index 0 is `InvalidAccessError`. Default `None`: the I/O layer's choice (the
        /// reference driver: its configured interface, else the local address's).
        pub multicast_interface: Option<MulticastInterface>,
        /// `sendBufferSize` (Direct Sockets): `SO_SNDBUF` in bytes, 1 to
        /// [`MAX_BUFFER_SIZE`](crate::MAX_BUFFER_SIZE), else `InvalidAccessError` (default
        /// `None`: the OS's).
        pub send_buffer_size: Option<u32>,
        /// `receiveBufferSize` (Direct Sockets): `SO_RCVBUF`, as `send_buffer_size`.
        pub receive_buffer_size: Option<u32>,
        /// `dnsQueryType` (Direct Sockets): the family `remote_host` is resolved to; an answer
        /// with no address of it is `DomainNotFoundError`. A `local_address` or IP remote
        /// address of the other family is `InvalidAccessError`. Default `None`: either.
        pub dns_query_type: Option<DnsQueryType>,
    }
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            local_address: None,
            local_port: None,
            remote_address: None,
            remote_host: None,
            remote_port: None,
            address_reuse: true,
            loopback: false,
            ipv6_only: false,
            broadcast: false,
            multicast_time_to_live: None,
            multicast_interface: None,
            send_buffer_size: None,
            receive_buffer_size: None,
            dns_query_type: None,
        }
    }
}

/// The default destination as the options give it.
#[derive(Debug)]
pub(crate) enum Remote {
    /// None: every `send` names its destination.
    None,
    /// An address.
    Addr(SocketAddr),
    /// A name to resolve before binding, its port, and the family the socket must have
    /// (`Some(true)`: IPv4), if something fixed it at construction.
    Name(Arc<DnsName>, u16, Option<bool>),
}

impl UdpOptions {
    /// The address to bind (for a `remote_host` name: provisional, of the family fixed so far
    /// or IPv4) and the default destination, or `InvalidAccessError`.
    pub(crate) fn addresses(&self) -> Result<(SocketAddr, Remote), ApiError> {
        let host = match (self.remote_address, &self.remote_host) {
            (Some(_), Some(_)) => {
                return Err(ApiError::access(
                    "remoteAddress is given twice: as an address and as a host",
                ))
            }
            (Some(ip), None) => Some(Host::Ip(ip)),
            (None, Some(host)) => Some(Host::parse(host)?),
            (None, None) => None,
        };
        let remote = match (host, self.remote_port) {
            (None, None) => Remote::None,
            (Some(Host::Ip(ip)), Some(port)) => Remote::Addr(SocketAddr::new(ip, port)),
            (Some(Host::Name(name)), Some(port)) => Remote::Name(name, port, None),
            (Some(_), None) => return Err(ApiError::access("remoteAddress without remotePort")),
            (None, Some(_)) => return Err(ApiError::access("remotePort without remoteAddress")),
        };
        if let Some(family) = self.dns_query_type {
            let literal = match &remote {
                Remote::Addr(addr) => Some(("remoteAddress", addr.ip())),
                _ => None,
            };
            let local = self.local_address.map(|ip| ("localAddress", ip));
            for (what, ip) in [literal, local].into_iter().flatten() {
                if !family.admits(ip) {
                    return Err(ApiError::access(format!(
                        "{what} {ip} is not of dnsQueryType \"{}\"",
                        family.as_str()
                    )));
                }
            }
        }
        // The family, if something fixes it: the local address, an IP destination; for a
        // name, dnsQueryType or an option that exists for one family only. Else IPv4.
        let fixed = match (self.local_address, &remote) {
            (Some(ip), _) => Some(ip.is_ipv4()),
            (None, Remote::Addr(addr)) => Some(addr.is_ipv4()),
            (None, Remote::None) => None,
            (None, Remote::Name(..)) => self
                .dns_query_type
                .map(|family| family == DnsQueryType::Ipv4)
                .or(self.ipv6_only.then_some(false))
                .or(self.broadcast.then_some(true))
                .or(self
                    .multicast_interface
                    .map(|iface| matches!(iface, MulticastInterface::V4(_)))),
        };
        let ip = match (self.local_address, fixed) {
            (Some(ip), _) => ip,
            (None, Some(false)) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            (None, _) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let remote = match remote {
            Remote::Addr(addr) => {
                check_destination(addr, ip)?;
                Remote::Addr(addr)
            }
            Remote::Name(name, port, _) => {
                if port == 0 {
                    return Err(ApiError::access(format!(
                        "cannot send to {name}:0: the remote port must not be 0"
                    )));
                }
                Remote::Name(name, port, fixed)
            }
            Remote::None => Remote::None,
        };
        check_ipv6_only(ip, self.ipv6_only)?;
        if self.broadcast && ip.is_ipv6() {
            return Err(ApiError::access(format!(
                "broadcast needs an IPv4 socket; {ip} is IPv6"
            )));
        }
        match (self.multicast_interface, ip) {
            (None, _) => {}
            (Some(MulticastInterface::V4(iface)), IpAddr::V4(_))
                if !(iface.is_unspecified() || iface.is_multicast() || iface.is_broadcast()) => {}
            (Some(MulticastInterface::V6(index)), IpAddr::V6(_)) if index != 0 => {}
            (Some(iface), _) => {
                return Err(ApiError::access(format!(
                    "multicastInterface {iface:?} is not a unicast address or interface index \
                     of the family of {ip}"
                )))
            }
        }
        self.settings().check()?;
        Ok((SocketAddr::new(ip, self.local_port.unwrap_or(0)), remote))
    }

    pub(super) fn settings(&self) -> SocketSettings {
        SocketSettings {
            send_buffer: self.send_buffer_size,
            receive_buffer: self.receive_buffer_size,
            ipv6_only: self.ipv6_only,
            broadcast: self.broadcast,
            multicast_ttl: self.multicast_time_to_live,
            multicast_interface: self.multicast_interface,
        }
    }
}

/// Asks the I/O layer to bind `bind`.
pub(super) fn ask_bind(id: UdpId, bind: SocketAddr, options: BindOptions, ctx: &mut Ctx) {
    ctx.action(Action::Bind {
        id,
        local: bind,
        // BEHAVIOUR §3: on an ephemeral bind, SO_REUSEADDR would let the OS hand out a
        // port another reuse-enabled socket holds.
        reuse_address: options.address_reuse && bind.port() != 0,
        loopback: options.loopback,
        settings: Box::new(options.settings),
    });
}

/// A destination this socket can send to: a port, a specified address, the socket's family.
#[inline]
pub(super) fn check_destination(to: SocketAddr, local: IpAddr) -> Result<(), ApiError> {
    if to.port() == 0 {
        return Err(ApiError::access(format!(
            "cannot send to {to}: the remote port must not be 0"
        )));
    }
    if to.ip().is_unspecified() {
        return Err(ApiError::access(format!(
            "cannot send to {to}: the address is unspecified"
        )));
    }
    check_family(to.ip(), local, "send to")
}

pub(super) fn check_family(ip: IpAddr, local: IpAddr, verb: &str) -> Result<(), ApiError> {
    if ip.is_ipv4() == local.is_ipv4() {
        return Ok(());
    }
    Err(ApiError::access(format!(
        "cannot {verb} {ip} from a socket bound to {local}: the address families differ"
    )))
}

/// The largest payload one datagram to `to` carries (an IPv4-mapped address goes as IPv4).
pub(super) fn max_payload(to: IpAddr) -> usize {
    match to {
        IpAddr::V4(_) => MAX_DATAGRAM_V4,
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => MAX_DATAGRAM_V4,
        IpAddr::V6(_) => MAX_DATAGRAM_V6,
    }
}

/// The options of the `Bind` action.
#[derive(Debug, Clone, Copy)]
pub(super) struct BindOptions {
    pub(super) address_reuse: bool,
    pub(super) loopback: bool,
    pub(super) settings: SocketSettings,
}
