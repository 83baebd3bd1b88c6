//! The `UDPSocket` calls of [`Driver`] ([BEHAVIOUR §3](sockstate::behaviour#3-udpsocket)),
//! recorded as the others when the driver records.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use sockstate::{Call, Returned};

use crate::{ApiError, Core, Driver, Payload, SendAllError, UdpId, UdpOptions};

impl Driver {
    /// `new UDPSocket(options)` ([BEHAVIOUR §3](sockstate::behaviour#3-udpsocket)): bind as `options` say. Ends with `Open`, or
    /// `Error` + `Close`; each datagram is a `Message` event.
    pub fn udp_open(&mut self, options: UdpOptions) -> Result<UdpId, ApiError> {
        let now = Instant::now();
        if self.recorder.is_none() {
            return self.core.udp_open(now, options);
        }
        let call = || Call::UdpOpen {
            options: options.clone(),
        };
        let run = |core: &mut Core| core.udp_open(now, options.clone());
        self.recorded(now, call, run, |&id| Returned::Bound(id))
    }

    /// `send(data, remoteAddress?, remotePort?)` on a UDP socket: one datagram to `to`, or to
    /// the default destination. Returns as TCP's `send`.
    pub fn send_to(
        &mut self,
        id: UdpId,
        data: impl Into<Payload>,
        to: Option<SocketAddr>,
    ) -> Result<bool, ApiError> {
        if self.recorder.is_none() {
            return self.core.udp_send(id, data, to);
        }
        let data = data.into().into_bytes();
        let call = || Call::UdpSend {
            id,
            data: data.clone(),
            to,
        };
        let run = |core: &mut Core| core.udp_send(id, data.clone(), to);
        self.recorded(Instant::now(), call, run, |&sent| Returned::Sent(sent))
    }

    /// `send` of each of `datagrams` in turn, all to `to` (or the default destination), in one
    /// call ([`Core::udp_send_all`]): the same datagrams, `bufferedAmount`, `Drain` and errors
    /// as that many [`send_to`](Driver::send_to)s, for less work per datagram. The first one
    /// refused stops it; the error says how many were queued before it. A recording holds
    /// them as that many `send` calls.
    ///
    /// ```no_run
    /// # use sockstate_driver::{Config, Driver, UdpOptions};
    /// # let mut driver = Driver::new(Config::default())?;
    /// # let id = driver.udp_open(UdpOptions::default())?;
    /// let burst: Vec<Vec<u8>> = (0..64u8).map(|i| vec![i; 1200]).collect();
    /// driver.send_all(id, burst, Some("127.0.0.1:9000".parse()?))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_all<P: Into<Payload>>(
        &mut self,
        id: UdpId,
        datagrams: impl IntoIterator<Item = P>,
        to: Option<SocketAddr>,
    ) -> Result<bool, SendAllError> {
        if self.recorder.is_none() {
            return self.core.udp_send_all(id, datagrams, to);
        }
        let mut below = true;
        for (queued, data) in datagrams.into_iter().enumerate() {
            below = (self.send_to(id, data, to)).map_err(|error| SendAllError { queued, error })?;
        }
        Ok(below)
    }

    /// `joinMulticastGroup(group)`, on [`Config::multicast_interface_v4`](crate::Config::multicast_interface_v4) when set.
    pub fn join_multicast_group(&mut self, id: UdpId, group: IpAddr) -> Result<(), ApiError> {
        let call = || Call::UdpJoin { id, group };
        let run = |core: &mut Core| core.udp_join_multicast_group(id, group);
        self.unit_call(call, run)
    }

    /// `leaveMulticastGroup(group)`.
    pub fn leave_multicast_group(&mut self, id: UdpId, group: IpAddr) -> Result<(), ApiError> {
        let call = || Call::UdpLeave { id, group };
        let run = |core: &mut Core| core.udp_leave_multicast_group(id, group);
        self.unit_call(call, run)
    }

    /// Node's `addSourceSpecificMembership(source, group)`; see
    /// [`Core::udp_add_source_specific_membership`] (IPv4 only in this driver: an IPv6 one
    /// ends in an `Error` event).
    pub fn add_source_specific_membership(
        &mut self,
        id: UdpId,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<(), ApiError> {
        let call = || Call::UdpAddSource { id, source, group };
        let run = |core: &mut Core| core.udp_add_source_specific_membership(id, source, group);
        self.unit_call(call, run)
    }

    /// Node's `dropSourceSpecificMembership(source, group)`; see
    /// [`Core::udp_drop_source_specific_membership`].
    pub fn drop_source_specific_membership(
        &mut self,
        id: UdpId,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<(), ApiError> {
        let call = || Call::UdpDropSource { id, source, group };
        let run = |core: &mut Core| core.udp_drop_source_specific_membership(id, source, group);
        self.unit_call(call, run)
    }
}
