//! The `UDPSocket` calls of [`Core`] ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::error::ApiError;
use crate::id::UdpId;
use crate::payload::Payload;
use crate::policy::Request;
use crate::udp::{UdpOptions, UdpSocket};
use crate::Core;
#[cfg(doc)]
use crate::{Action, Config};

impl Core {
    /// `new UDPSocket(options)` ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)): asks the I/O layer to bind (first to resolve
    /// a `remote_host` name); the socket starts `opening` and ends `Open` or `Error` +
    /// `Close` (`DomainNotFoundError` when the name has no usable address). No timer starts: `now` is there
    /// so that every constructor has the same shape.
    ///
    /// Errors: `remoteAddress` without `remotePort` or the reverse, both `remote_address` and
    /// `remote_host`, an invalid host name, remote port 0, an unspecified remote address,
    /// local and remote addresses of different families, a contradicting `dns_query_type`, or an
    /// option that does not fit the socket's family or is out of its range (see
    /// [`UdpOptions`]): `InvalidAccessError` (nothing is created); the policy refuses ([`Request::Bind`]): `SecurityError`.
    /// The policy is asked here, once: for a `remote_host` name whose family nothing fixes it
    /// sees `0.0.0.0` and the port, and the bind after the answer may be `[::]` and that port.
    ///
    /// ```
    /// use sockstate::{Action, Config, Core, Event, Input, Output, UdpOptions};
    ///
    /// let mut core = Core::new(Config::default());
    /// let now = std::time::Instant::now();
    /// let id = core.udp_open(now, UdpOptions::default()).unwrap();
    /// let Output::Action(Action::Bind { .. }) = core.poll_output() else { panic!() };
    /// let local = "0.0.0.0:40000".parse().unwrap();
    /// core.handle_input(now, Input::Bound { id, local }).unwrap();
    /// assert_eq!(core.poll_output(), Output::Event(Event::Open { id: id.into() }));
    /// # core.poll_output();
    /// let peer = "127.0.0.1:7".parse().unwrap();
    /// assert_eq!(core.udp_send(id, "ping", Some(peer)), Ok(true));
    /// let Output::Action(Action::SendDatagrams { datagrams, .. }) = core.poll_output() else {
    ///     panic!()
    /// };
    /// assert_eq!(datagrams, [("ping".into(), peer)]);
    /// core.handle_input(now, Input::Sent { id, count: 1 }).unwrap();
    /// core.handle_input(now, Input::Datagram { id, data: "pong".into(), remote: peer }).unwrap();
    /// assert_eq!(
    ///     core.poll_output(),
    ///     Output::Event(Event::Message { id, data: "pong".into(), remote: peer })
    /// );
    /// ```
    pub fn udp_open(&mut self, now: Instant, options: UdpOptions) -> Result<UdpId, ApiError> {
        let _ = now;
        let (local, remote) = options.addresses()?;
        self.check_policy(Request::Bind { local })?;
        Ok(self.insert(|id, ctx| UdpSocket::open(id, local, remote, &options, ctx)))
    }

    /// The socket's attributes; `None` once its `Close` was delivered.
    pub fn udp(&self, id: UdpId) -> Option<&UdpSocket> {
        self.sockets.udp.get(id)
    }

    /// `send(data, remoteAddress?, remotePort?)`: queues one datagram to `to`, or to the
    /// default destination when `None`; `Ok(true)` while `bufferedAmount` is at most the
    /// high-water mark, as for TCP.
    ///
    /// Errors: not `open`: `InvalidStateError`; no destination, port 0, an unspecified
    /// address, another family than the socket's, or a payload above [`MAX_DATAGRAM_V4`] /
    /// [`MAX_DATAGRAM_V6`]: `InvalidAccessError`; above the hard cap (bytes or
    /// [`Config::max_queued_datagrams`]): `QuotaExceededError`.
    ///
    /// [`MAX_DATAGRAM_V4`]: crate::MAX_DATAGRAM_V4
    /// [`MAX_DATAGRAM_V6`]: crate::MAX_DATAGRAM_V6
    pub fn udp_send(
        &mut self,
        id: UdpId,
        data: impl Into<Payload>,
        to: Option<SocketAddr>,
    ) -> Result<bool, ApiError> {
        let data = data.into().0;
        self.on(id, |s, c| s.send(data, to, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// [`udp_send`](Core::udp_send) of each of `datagrams` in turn, all to `to` (or the
    /// default destination), in one call: the same datagrams, `bufferedAmount`, `Drain` and
    /// errors as that many `udp_send`s, for less work per datagram (the destination is checked
    /// once, and the datagrams leave in one [`Action::SendDatagrams`] up to the limit in
    /// flight). `Ok` is what the last `udp_send` would return (`true` for none). The first
    /// datagram refused stops it: [`SendAllError`](crate::SendAllError) says how many were
    /// queued before it, and why it was refused.
    ///
    /// ```
    /// use sockstate::{Action, Config, Core, Input, Output, UdpOptions};
    ///
    /// let mut core = Core::new(Config::default());
    /// let now = std::time::Instant::now();
    /// let id = core.udp_open(now, UdpOptions::default()).unwrap();
    /// # core.poll_output();
    /// core.handle_input(now, Input::Bound { id, local: "0.0.0.0:40000".parse().unwrap() })
    ///     .unwrap();
    /// # core.poll_output(); core.poll_output();
    /// let peer = "127.0.0.1:7".parse().unwrap();
    /// assert_eq!(core.udp_send_all(id, ["a", "b", "c"], Some(peer)), Ok(true));
    /// assert_eq!(core.udp(id).unwrap().buffered_amount(), 3);
    /// let Output::Action(Action::SendDatagrams { datagrams, .. }) = core.poll_output() else {
    ///     panic!()
    /// };
    /// assert_eq!(datagrams.len(), 3);
    /// // The OS took all three with one syscall.
    /// core.handle_input(now, Input::Sent { id, count: 3 }).unwrap();
    /// assert_eq!(core.udp(id).unwrap().buffered_amount(), 0);
    /// ```
    pub fn udp_send_all<P: Into<Payload>>(
        &mut self,
        id: UdpId,
        datagrams: impl IntoIterator<Item = P>,
        to: Option<SocketAddr>,
    ) -> Result<bool, crate::SendAllError> {
        let datagrams = datagrams.into_iter().map(|d| d.into().0);
        self.on(id, |s, c| s.send_all(datagrams, to, c))
            .unwrap_or_else(|| {
                Err(crate::SendAllError {
                    queued: 0,
                    error: ApiError::dead(),
                })
            })
    }

    /// `joinMulticastGroup(group)`: while `opening` it is recorded and applied at open.
    ///
    /// Errors: `closing` or `closed`: `InvalidStateError`; not a multicast address, another
    /// family than the socket's, or already joined: `InvalidAccessError`; already
    /// [`MAX_MULTICAST_GROUPS`](crate::MAX_MULTICAST_GROUPS) groups: `QuotaExceededError`; the
    /// policy refuses ([`Request::JoinMulticast`]): `SecurityError`.
    pub fn udp_join_multicast_group(&mut self, id: UdpId, group: IpAddr) -> Result<(), ApiError> {
        self.udp(id).ok_or_else(ApiError::dead)?.check_join(group)?;
        self.check_policy(Request::JoinMulticast { group })?;
        self.on(id, |s, c| s.join(group, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `leaveMulticastGroup(group)`: while `opening`, undoes a recorded join.
    ///
    /// Errors: `closing` or `closed`: `InvalidStateError`; not a multicast address or not
    /// joined: `InvalidAccessError`.
    pub fn udp_leave_multicast_group(&mut self, id: UdpId, group: IpAddr) -> Result<(), ApiError> {
        self.on(id, |s, c| s.leave(group, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// Node's `addSourceSpecificMembership(source, group)`: receive `group`'s datagrams sent
    /// by `source` only (SSM, RFC 4607; IPv4's SSM range is 232.0.0.0/8, but any group is
    /// passed to the OS). While `opening` it is recorded and applied at open. The OS refusing
    /// it (the reference driver: IPv6, which it does not support yet) is an `Error` event,
    /// and the socket stays open.
    ///
    /// Errors: `closing` or `closed`: `InvalidStateError`; `group` not a multicast address,
    /// `source` not a unicast address, either of another family than the socket's, the pair
    /// already added, or `group` joined for every source ([`udp_join_multicast_group`],
    /// which Linux does not mix with source-specific memberships): `InvalidAccessError`;
    /// already [`MAX_MULTICAST_GROUPS`](crate::MAX_MULTICAST_GROUPS) memberships of both
    /// kinds: `QuotaExceededError`; the policy refuses ([`Request::JoinMulticast`]):
    /// `SecurityError`.
    ///
    /// [`udp_join_multicast_group`]: Core::udp_join_multicast_group
    pub fn udp_add_source_specific_membership(
        &mut self,
        id: UdpId,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<(), ApiError> {
        (self.udp(id).ok_or_else(ApiError::dead)?).check_source_join(source, group)?;
        self.check_policy(Request::JoinMulticast { group })?;
        self.on(id, |s, c| s.join_source(source, group, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// Node's `dropSourceSpecificMembership(source, group)`: undoes
    /// [`udp_add_source_specific_membership`](Core::udp_add_source_specific_membership).
    ///
    /// Errors: `closing` or `closed`: `InvalidStateError`; bad addresses, or the pair not
    /// added: `InvalidAccessError`.
    pub fn udp_drop_source_specific_membership(
        &mut self,
        id: UdpId,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<(), ApiError> {
        self.on(id, |s, c| s.leave_source(source, group, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `suspend()`: counted; no datagram is read while suspended.
    pub fn udp_suspend(&mut self, id: UdpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.suspend(c)).ok_or_else(ApiError::dead)
    }

    /// `resume()`: `InvalidStateError` when not suspended.
    pub fn udp_resume(&mut self, id: UdpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.resume(c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `close()`: queued datagrams are still sent (within [`Config::close_timeout`]), then
    /// `Close`; no `Message` after the call. Nothing when already closing or closed.
    pub fn udp_close(&mut self, now: Instant, id: UdpId) -> Result<(), ApiError> {
        self.on(id, |s, c| s.close(now, c))
            .ok_or_else(ApiError::dead)
    }

    /// Ids of all live UDP sockets.
    pub fn udp_ids(&self) -> impl Iterator<Item = UdpId> + '_ {
        self.sockets.udp.ids()
    }
}
