//! [`Sockets`]: the app's side of the socket API as one trait, so that app code written once
//! runs unchanged on a [`Core`] driven by hand ([`Core::at`]), under the invariant checker
//! (`CheckedCore::at`), on one host of the simulated network (`Sim::host`) and on a real
//! I/O layer (`sockstate_driver::Driver`).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::{
    ApiError, Call, Core, DomException, Payload, Returned, ServerId, ServerOptions, ServerSocket,
    TcpId, TcpOptions, TcpSocket, UdpId, UdpOptions, UdpSocket,
};

/// The app calls of the socket API, without `now`: whoever implements it owns the clock.
///
/// An implementation provides [`call`](Sockets::call), which runs one [`Call`] (the same
/// values recordings, the simulator's transcript and the checker use), [`core`](Sockets::core)
/// for the sockets' attributes and [`now`](Sockets::now) for its clock (so that an app's own
/// timeouts run on the virtual clock in the simulator); every typed method is provided, named
/// and typed as [`Core`]'s method of the same name less its `now`. App code takes
/// `&mut impl Sockets` and runs wherever one is implemented:
///
/// | world | value | clock |
/// |---|---|---|
/// | a [`Core`] driven by hand | [`Core::at`] | the instant given |
/// | the checker (feature `sim`) | `CheckedCore::at` | the instant given |
/// | a host of the simulated network (feature `sim`) | `Sim::host` | the virtual clock |
/// | the reference driver (crate `sockstate-driver`) | `&mut Driver` | `Instant::now()` |
///
/// ```
/// use std::time::Instant;
/// use sockstate::{ApiError, Config, Core, Sockets, TcpId, TcpOptions};
///
/// /// App code: knows nothing of where it runs.
/// fn greet(net: &mut impl Sockets) -> Result<TcpId, ApiError> {
///     let id = net.tcp_open("127.0.0.1", 7, TcpOptions::default())?;
///     assert_eq!(net.tcp(id).unwrap().host().to_string(), "127.0.0.1");
///     Ok(id)
/// }
///
/// let mut core = Core::new(Config::default());
/// let id = greet(&mut core.at(Instant::now())).unwrap();
/// // A send before `open` is refused, in every world.
/// assert!(core.at(Instant::now()).tcp_send(id, "hello").is_err());
/// ```
pub trait Sockets {
    /// Runs `call` now, as [`Call::apply`] does on a [`Core`].
    fn call(&mut self, call: Call) -> Result<Returned, ApiError>;

    /// The core, for the sockets' attributes.
    fn core(&self) -> &Core;

    /// The time the calls are made at: the instant given, the simulator's virtual clock, or
    /// the real one.
    fn now(&self) -> Instant;

    /// [`Core::tcp`]: a TCP socket's attributes; `None` once its `Close` was delivered.
    fn tcp(&self, id: TcpId) -> Option<&TcpSocket> {
        self.core().tcp(id)
    }

    /// [`Core::server`]: a server's attributes; `None` once its `Close` was delivered.
    fn server(&self, id: ServerId) -> Option<&ServerSocket> {
        self.core().server(id)
    }

    /// [`Core::udp`]: a UDP socket's attributes; `None` once its `Close` was delivered.
    fn udp(&self, id: UdpId) -> Option<&UdpSocket> {
        self.core().udp(id)
    }

    /// [`Core::tcp_open`].
    fn tcp_open(&mut self, host: &str, port: u16, options: TcpOptions) -> Result<TcpId, ApiError> {
        let call = Call::TcpOpen {
            host: host.into(),
            port,
            options,
        };
        returned(self.call(call), "tcp_open", |r| match r {
            Returned::Opened(id) => Some(id),
            _ => None,
        })
    }

    /// [`Core::tcp_send`] (text is sent as its UTF-8 bytes).
    fn tcp_send(&mut self, id: TcpId, data: impl Into<Payload>) -> Result<bool, ApiError>
    where
        Self: Sized,
    {
        let data = data.into().into_bytes();
        sent(self.call(Call::TcpSend { id, data }), "tcp_send")
    }

    /// [`Core::tcp_close`].
    fn tcp_close(&mut self, id: TcpId) -> Result<(), ApiError> {
        done(self.call(Call::TcpClose { id }), "tcp_close")
    }

    /// [`Core::tcp_close_immediately`].
    fn tcp_close_immediately(&mut self, id: TcpId) -> Result<(), ApiError> {
        let call = Call::TcpCloseImmediately { id };
        done(self.call(call), "tcp_close_immediately")
    }

    /// [`Core::tcp_halfclose`].
    fn tcp_halfclose(&mut self, id: TcpId) -> Result<(), ApiError> {
        done(self.call(Call::TcpHalfclose { id }), "tcp_halfclose")
    }

    /// [`Core::tcp_suspend`].
    fn tcp_suspend(&mut self, id: TcpId) -> Result<(), ApiError> {
        done(self.call(Call::TcpSuspend { id }), "tcp_suspend")
    }

    /// [`Core::tcp_resume`].
    fn tcp_resume(&mut self, id: TcpId) -> Result<(), ApiError> {
        done(self.call(Call::TcpResume { id }), "tcp_resume")
    }

    /// [`Core::tcp_upgrade_to_secure`].
    fn tcp_upgrade_to_secure(&mut self, id: TcpId) -> Result<(), ApiError> {
        let call = Call::TcpUpgradeToSecure { id };
        done(self.call(call), "tcp_upgrade_to_secure")
    }

    /// [`Core::server_listen`].
    fn server_listen(&mut self, options: ServerOptions) -> Result<ServerId, ApiError> {
        let call = Call::ServerListen { options };
        returned(self.call(call), "server_listen", |r| match r {
            Returned::Listening(id) => Some(id),
            _ => None,
        })
    }

    /// [`Core::server_close`].
    fn server_close(&mut self, id: ServerId) -> Result<(), ApiError> {
        done(self.call(Call::ServerClose { id }), "server_close")
    }

    /// [`Core::server_suspend`].
    fn server_suspend(&mut self, id: ServerId) -> Result<(), ApiError> {
        done(self.call(Call::ServerSuspend { id }), "server_suspend")
    }

    /// [`Core::server_resume`].
    fn server_resume(&mut self, id: ServerId) -> Result<(), ApiError> {
        done(self.call(Call::ServerResume { id }), "server_resume")
    }

    /// [`Core::udp_open`].
    fn udp_open(&mut self, options: UdpOptions) -> Result<UdpId, ApiError> {
        let call = Call::UdpOpen { options };
        returned(self.call(call), "udp_open", |r| match r {
            Returned::Bound(id) => Some(id),
            _ => None,
        })
    }

    /// [`Core::udp_send`].
    fn udp_send(
        &mut self,
        id: UdpId,
        data: impl Into<Payload>,
        to: Option<SocketAddr>,
    ) -> Result<bool, ApiError>
    where
        Self: Sized,
    {
        let data = data.into().into_bytes();
        sent(self.call(Call::UdpSend { id, data, to }), "udp_send")
    }

    /// [`Core::udp_join_multicast_group`].
    fn udp_join_multicast_group(&mut self, id: UdpId, group: IpAddr) -> Result<(), ApiError> {
        let call = Call::UdpJoin { id, group };
        done(self.call(call), "udp_join_multicast_group")
    }

    /// [`Core::udp_leave_multicast_group`].
    fn udp_leave_multicast_group(&mut self, id: UdpId, group: IpAddr) -> Result<(), ApiError> {
        let call = Call::UdpLeave { id, group };
        done(self.call(call), "udp_leave_multicast_group")
    }

    /// [`Core::udp_add_source_specific_membership`].
    fn udp_add_source_specific_membership(
        &mut self,
        id: UdpId,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<(), ApiError> {
        let call = Call::UdpAddSource { id, source, group };
        done(self.call(call), "udp_add_source_specific_membership")
    }

    /// [`Core::udp_drop_source_specific_membership`].
    fn udp_drop_source_specific_membership(
        &mut self,
        id: UdpId,
        source: IpAddr,
        group: IpAddr,
    ) -> Result<(), ApiError> {
        let call = Call::UdpDropSource { id, source, group };
        done(self.call(call), "udp_drop_source_specific_membership")
    }

    /// [`Core::udp_suspend`].
    fn udp_suspend(&mut self, id: UdpId) -> Result<(), ApiError> {
        done(self.call(Call::UdpSuspend { id }), "udp_suspend")
    }

    /// [`Core::udp_resume`].
    fn udp_resume(&mut self, id: UdpId) -> Result<(), ApiError> {
        done(self.call(Call::UdpResume { id }), "udp_resume")
    }

    /// [`Core::udp_close`].
    fn udp_close(&mut self, id: UdpId) -> Result<(), ApiError> {
        done(self.call(Call::UdpClose { id }), "udp_close")
    }
}

impl<S: Sockets + ?Sized> Sockets for &mut S {
    fn call(&mut self, call: Call) -> Result<Returned, ApiError> {
        (**self).call(call)
    }
    fn core(&self) -> &Core {
        (**self).core()
    }
    fn now(&self) -> Instant {
        (**self).now()
    }
}

/// What a call returned, as the typed method returns it. Another [`Returned`] than the call's
/// own is a bug of the [`Sockets`] implementation, reported as an `InvalidStateError` that
/// says so rather than a panic.
fn returned<T>(
    result: Result<Returned, ApiError>,
    method: &'static str,
    pick: impl FnOnce(Returned) -> Option<T>,
) -> Result<T, ApiError> {
    let returned = result?;
    pick(returned).ok_or_else(|| {
        let message = format!("Sockets::call answered {method} with {returned:?}");
        ApiError::new(DomException::InvalidStateError, message)
    })
}

fn done(result: Result<Returned, ApiError>, method: &'static str) -> Result<(), ApiError> {
    returned(result, method, |r| (r == Returned::Done).then_some(()))
}

fn sent(result: Result<Returned, ApiError>, method: &'static str) -> Result<bool, ApiError> {
    returned(result, method, |r| match r {
        Returned::Sent(below) => Some(below),
        _ => None,
    })
}

/// A [`Core`] at one instant, as [`Sockets`]: what [`Core::at`] returns.
#[derive(Debug)]
pub struct CoreAt<'a> {
    core: &'a mut Core,
    now: Instant,
}

impl Core {
    /// The core as [`Sockets`], its calls made at `now`: app code written against the trait
    /// runs on a core driven by hand. Drain [`poll_output`](Core::poll_output) afterwards, as
    /// after any call.
    ///
    /// ```
    /// use std::time::Instant;
    /// use sockstate::{Config, Core, Output, ServerOptions, Sockets};
    ///
    /// let mut core = Core::new(Config::default());
    /// let server = core.at(Instant::now()).server_listen(ServerOptions::default()).unwrap();
    /// assert!(matches!(core.poll_output(), Output::Action(_)));
    /// assert_eq!(core.at(Instant::now()).server(server).unwrap().local_address(), None);
    /// ```
    pub fn at(&mut self, now: Instant) -> CoreAt<'_> {
        CoreAt { core: self, now }
    }
}

impl Sockets for CoreAt<'_> {
    fn call(&mut self, call: Call) -> Result<Returned, ApiError> {
        call.apply(self.core, self.now)
    }
    fn core(&self) -> &Core {
        self.core
    }
    fn now(&self) -> Instant {
        self.now
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Config, Output};

    /// An implementation that answers every call with `Done`: the typed methods that expect
    /// another answer say so instead of panicking.
    struct Wrong(Core);

    impl Sockets for Wrong {
        fn call(&mut self, _: Call) -> Result<Returned, ApiError> {
            Ok(Returned::Done)
        }
        fn core(&self) -> &Core {
            &self.0
        }
        fn now(&self) -> Instant {
            #[allow(clippy::disallowed_methods)] // only offsets matter
            Instant::now()
        }
    }

    #[test]
    fn a_wrong_answer_is_an_error_not_a_panic() {
        let mut net = Wrong(Core::new(Config::default()));
        let err = net
            .tcp_open("127.0.0.1", 7, TcpOptions::default())
            .unwrap_err();
        assert_eq!(err.exception(), DomException::InvalidStateError);
        assert!(err.to_string().contains("tcp_open"), "{err}");
        let id = TcpId {
            index: 0,
            serial: 1,
        };
        assert!(net.tcp_send(id, "x").is_err());
        assert_eq!(net.tcp_close(id), Ok(()));
    }

    /// The trait is dyn-compatible: the generic methods need `Sized`, the rest work on a
    /// `&mut dyn Sockets`.
    #[test]
    fn works_as_a_trait_object() {
        #[allow(clippy::disallowed_methods)] // only offsets matter
        let now = Instant::now();
        let mut core = Core::new(Config::default());
        let mut at = core.at(now);
        let net: &mut dyn Sockets = &mut at;
        let id = net.tcp_open("127.0.0.1", 7, TcpOptions::default()).unwrap();
        assert!(net.tcp(id).is_some());
        // The generic sends through the `&mut S` impl: refused before `open`, as on the core.
        assert!(Sockets::tcp_send(&mut &mut *net, id, "early").is_err());
        let udp = net.udp_open(UdpOptions::default()).unwrap();
        let to = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        let sent = Sockets::udp_send(&mut &mut *net, udp, vec![1u8, 2, 3], to);
        assert!(sent.unwrap_err().message().contains("\"opening\""));
        assert_eq!(net.now(), now);
        net.tcp_close_immediately(id).unwrap();
    }

    /// Every typed method makes the call of its name: the same results and outputs as
    /// `Core`'s own method on a twin core.
    #[test]
    fn typed_methods_are_the_cores() {
        #[allow(clippy::disallowed_methods)] // only offsets matter
        let now = Instant::now();
        let (mut a, mut b) = (Core::new(Config::default()), Core::new(Config::default()));
        let id = a.at(now).tcp_open("127.0.0.1", 7, TcpOptions::default());
        assert_eq!(id, b.tcp_open(now, "127.0.0.1", 7, TcpOptions::default()));
        let id = id.unwrap();
        let server = a.at(now).server_listen(ServerOptions::default());
        assert_eq!(server, b.server_listen(now, ServerOptions::default()));
        let server = server.unwrap();
        let udp = a.at(now).udp_open(UdpOptions::default());
        assert_eq!(udp, b.udp_open(now, UdpOptions::default()));
        let udp = udp.unwrap();
        let (group, source) = ("239.1.2.3".parse().unwrap(), "10.0.0.1".parse().unwrap());
        let to = Some("127.0.0.1:9".parse().unwrap());
        let mut net = a.at(now);
        let ours = [
            net.tcp_send(id, "x").map(|_| ()),
            net.tcp_suspend(id),
            net.tcp_resume(id),
            net.tcp_upgrade_to_secure(id),
            net.tcp_halfclose(id),
            net.server_suspend(server),
            net.server_resume(server),
            net.udp_send(udp, "x", to).map(|_| ()),
            net.udp_join_multicast_group(udp, group),
            net.udp_leave_multicast_group(udp, group),
            net.udp_add_source_specific_membership(udp, source, group),
            net.udp_drop_source_specific_membership(udp, source, group),
            net.udp_suspend(udp),
            net.udp_resume(udp),
            net.udp_close(udp),
            net.server_close(server),
            net.tcp_close(id),
            net.tcp_close_immediately(id),
        ];
        let theirs = [
            b.tcp_send(id, "x").map(|_| ()),
            b.tcp_suspend(id),
            b.tcp_resume(id),
            b.tcp_upgrade_to_secure(id),
            b.tcp_halfclose(now, id),
            b.server_suspend(server),
            b.server_resume(server),
            b.udp_send(udp, "x", to).map(|_| ()),
            b.udp_join_multicast_group(udp, group),
            b.udp_leave_multicast_group(udp, group),
            b.udp_add_source_specific_membership(udp, source, group),
            b.udp_drop_source_specific_membership(udp, source, group),
            b.udp_suspend(udp),
            b.udp_resume(udp),
            b.udp_close(now, udp),
            b.server_close(now, server),
            b.tcp_close(now, id),
            b.tcp_close_immediately(id),
        ];
        assert_eq!(ours, theirs);
        loop {
            let out = a.poll_output();
            assert_eq!(out, b.poll_output());
            if let Output::Timeout(_) = out {
                break;
            }
        }
    }
}
