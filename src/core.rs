//! [`Core`]: the table of sockets, the output queue and the timers, and the one drain rule.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::error::{ApiError, DomException, InputError, SocketError};
use crate::host::Host;
use crate::id::{Serials, SocketId, Table, TcpId};
use crate::io::{Action, Event, Input, Output};
use crate::payload::Payload;
use crate::policy::{AllowAll, Policy, Request};
use crate::tcp::{TcpOptions, TcpSocket};
use crate::timer::Timers;
use crate::tls;

/// What every socket may touch: the output queue and the configuration.
#[derive(Debug)]
pub(crate) struct Ctx {
    out: VecDeque<Output>,
    pub(crate) config: Config,
    /// Built on first use: Mozilla's roots on the ring provider.
    default_client: Option<Arc<tls::ClientConfig>>,
    /// Sockets released before the app learned their ids (a secure server's failed
    /// handshakes): freed at once, since no `Close` will be delivered for them.
    unannounced: Vec<TcpId>,
}

impl Ctx {
    pub(crate) fn default_client_config(&mut self) -> Result<Arc<tls::ClientConfig>, SocketError> {
        if let Some(config) = &self.default_client {
            return Ok(config.clone());
        }
        let config =
            tls::client_config(tls::ClientOptions::default()).map_err(|e| tls::map_error(&e))?;
        self.default_client = Some(config.clone());
        Ok(config)
    }
    pub(crate) fn forget_unannounced(&mut self, id: TcpId) {
        self.unannounced.push(id);
    }
    pub(crate) fn action(&mut self, action: Action) {
        self.out.push_back(Output::Action(action));
    }
    pub(crate) fn event(&mut self, event: Event) {
        self.out.push_back(Output::Event(event));
    }
}

/// The sans-IO core: every socket's state, driven by app calls, [`Input`]s and time.
///
/// After any call that changes it, drain [`poll_output`](Core::poll_output) until it returns
/// [`Output::Timeout`]. The core never touches a socket, a clock or a thread.
///
/// ```
/// use std::time::Instant;
/// use sockstate::{Action, Core, Config, Event, Input, Output, TcpOptions};
///
/// let mut core = Core::new(Config::default());
/// let now = Instant::now();
/// let id = core.tcp_open(now, "127.0.0.1", 7, TcpOptions::default()).unwrap();
/// // The I/O layer is asked to connect...
/// let Output::Action(Action::Connect { attempt, .. }) = core.poll_output() else { panic!() };
/// // ...and reports success.
/// core.handle_input(now, Input::Connected { id, attempt, local: "127.0.0.1:5000".parse().unwrap() })
///     .unwrap();
/// assert_eq!(core.poll_output(), Output::Event(Event::Open { id: id.into() }));
/// ```
pub struct Core {
    ctx: Ctx,
    policy: Box<dyn Policy>,
    serials: Serials,
    timers: Timers,
    tcp: Table<TcpId, TcpSocket>,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("config", &self.ctx.config)
            .field("tcp_sockets", &self.tcp.len())
            .field("queued_outputs", &self.ctx.out.len())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core that allows every request ([`AllowAll`]).
    pub fn new(config: Config) -> Core {
        Core::with_policy(config, AllowAll)
    }

    /// A core that asks `policy` before every connect, listen, bind and multicast join
    /// (BEHAVIOUR §5).
    pub fn with_policy(config: Config, policy: impl Policy + 'static) -> Core {
        Core {
            ctx: Ctx {
                out: VecDeque::new(),
                config,
                default_client: None,
                unannounced: Vec::new(),
            },
            policy: Box::new(policy),
            serials: Serials::default(),
            timers: Timers::default(),
            tcp: Table::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.ctx.config
    }

    /// The next action, event or, when there is nothing else, the next deadline.
    #[allow(clippy::should_implement_trait)]
    pub fn poll_output(&mut self) -> Output {
        if let Some(out) = self.ctx.out.pop_front() {
            if let Output::Event(Event::Close { id }) = &out {
                self.forget(*id);
            }
            return out;
        }
        Output::Timeout(self.next_deadline())
    }

    /// Feeds what the OS reported. An input that makes no sense changes nothing and returns
    /// an [`InputError`].
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<(), InputError> {
        match input {
            Input::Resolved { id, result } => self.on_tcp(id, |s, c| s.resolved(now, result, c)),
            Input::Connected { id, attempt, local } => {
                self.on_tcp(id, |s, c| s.connected(now, attempt, local, c))
            }
            Input::ConnectFailed { id, attempt, error } => {
                self.on_tcp(id, |s, c| s.connect_failed(now, attempt, error, c))
            }
            Input::Received { id, data } => self.on_tcp(id, |s, c| s.received(now, data, c)),
            Input::Eof { id } => self.on_tcp(id, |s, c| s.eof_input(now, c)),
            Input::Written { id, len } => self.on_tcp(id, |s, c| s.written(now, len, c)),
            Input::Failed { id, error } => self.on_tcp(id, |s, c| s.failed(error, c)),
        }
        .ok_or(InputError::UnknownId)?
    }

    /// Runs every timer due at `now`. Calling it early is harmless.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((_, socket)) = self.timers.pop_due(now) {
            match socket {
                SocketId::TcpId(id) => {
                    self.on_tcp(id, |s, c| {
                        if s.next_deadline().is_some_and(|at| at <= now) {
                            s.timeout(now, c);
                        }
                    });
                }
                SocketId::ServerId(_) | SocketId::UdpId(_) => {}
            }
        }
    }

    /// The earliest deadline of a live socket, dropping stale timer entries on the way.
    fn next_deadline(&mut self) -> Option<Instant> {
        while let Some((at, socket)) = self.timers.peek() {
            let current = match socket {
                SocketId::TcpId(id) => self.tcp.get(id).and_then(TcpSocket::next_deadline),
                SocketId::ServerId(_) | SocketId::UdpId(_) => None,
            };
            if current == Some(at) {
                return Some(at);
            }
            self.timers.pop();
        }
        None
    }

    /// Frees a socket's slot once its `Close` is delivered (BEHAVIOUR §0: the id is dead).
    fn forget(&mut self, id: SocketId) {
        match id {
            SocketId::TcpId(id) => {
                self.tcp.remove(id);
            }
            SocketId::ServerId(_) | SocketId::UdpId(_) => {}
        }
    }

    /// Runs `f` on a live TCP socket and re-arms its timer if its deadline moved.
    fn on_tcp<R>(&mut self, id: TcpId, f: impl FnOnce(&mut TcpSocket, &mut Ctx) -> R) -> Option<R> {
        let socket = self.tcp.get_mut(id)?;
        let before = socket.next_deadline();
        let result = f(socket, &mut self.ctx);
        let after = socket.next_deadline();
        if after != before {
            if let Some(at) = after {
                self.timers.arm(at, id.into());
            }
        }
        for gone in self.ctx.unannounced.drain(..) {
            self.tcp.remove(gone);
        }
        Some(result)
    }

    fn check_policy(&self, request: Request<'_>) -> Result<(), ApiError> {
        self.policy
            .check(&request)
            .map_err(|why| ApiError::new(DomException::SecurityError, why))
    }

    // ---- TCPSocket ------------------------------------------------------------------------

    /// `TCPSocket.open(host, port, options)` (BEHAVIOUR §1). `host` is an IP literal or a DNS
    /// name; the socket starts `connecting` and ends with `Open` or `Error` + `Close`.
    ///
    /// Errors: a bad host, port 0, or a `localAddress` of another family than an IP `host`:
    /// `InvalidAccessError`; the policy refuses: `SecurityError`.
    pub fn tcp_open(
        &mut self,
        now: Instant,
        host: &str,
        port: u16,
        options: TcpOptions,
    ) -> Result<TcpId, ApiError> {
        let host = Host::parse(host)?;
        if port == 0 {
            return Err(ApiError::access("the remote port must not be 0"));
        }
        if let (Host::Ip(ip), Some(local)) = (&host, options.local_address) {
            if ip.is_ipv4() != local.is_ipv4() {
                return Err(ApiError::access(format!(
                    "localAddress {local} cannot reach {ip}: the families differ"
                )));
            }
        }
        self.check_policy(Request::Connect {
            host: &host,
            port,
            local_port: options.local_port,
        })?;
        let ctx = &mut self.ctx;
        let id = self.tcp.insert_with(&mut self.serials, |id| {
            TcpSocket::connecting(id, now, host, port, &options, ctx)
        });
        if let Some(at) = self.tcp.get(id).and_then(TcpSocket::next_deadline) {
            self.timers.arm(at, id.into());
        }
        Ok(id)
    }

    /// The socket's attributes; `None` once its `Close` was delivered.
    pub fn tcp(&self, id: TcpId) -> Option<&TcpSocket> {
        self.tcp.get(id)
    }

    /// `send(data)`: queues `data`; `Ok(true)` while `bufferedAmount` is at most the high-water
    /// mark. `InvalidStateError` unless `open`; `QuotaExceededError` above the hard cap.
    pub fn tcp_send(&mut self, id: TcpId, data: impl Into<Payload>) -> Result<bool, ApiError> {
        let data = data.into().0;
        self.on_tcp(id, |s, c| s.send(data, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `close()`: graceful (flush, `Drain`, FIN, linger, `Close`); abandons a connect.
    pub fn tcp_close(&mut self, now: Instant, id: TcpId) -> Result<(), ApiError> {
        self.on_tcp(id, |s, c| s.close(now, c))
            .ok_or_else(ApiError::dead)
    }

    /// `closeImmediately()` (Mozilla): discards the queue, releases the socket, `Close`.
    pub fn tcp_close_immediately(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on_tcp(id, |s, c| s.close_immediately(c))
            .ok_or_else(ApiError::dead)
    }

    /// `halfclose()` (W3C): FIN once the queue is flushed; data keeps arriving.
    pub fn tcp_halfclose(&mut self, now: Instant, id: TcpId) -> Result<(), ApiError> {
        self.on_tcp(id, |s, c| s.halfclose(now, c))
            .ok_or_else(ApiError::dead)
    }

    /// `suspend()`: counted; no reading from the OS while suspended.
    pub fn tcp_suspend(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on_tcp(id, |s, c| s.suspend(c))
            .ok_or_else(ApiError::dead)
    }

    /// `resume()`: `InvalidStateError` when not suspended.
    pub fn tcp_resume(&mut self, now: Instant, id: TcpId) -> Result<(), ApiError> {
        self.on_tcp(id, |s, c| s.resume(now, c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// `upgradeToSecure()` (Mozilla's STARTTLS): TLS from here on. `InvalidStateError` unless
    /// `open` and not half-closed; already secure: nothing. See the crate docs for the order
    /// in which queued and received bytes are treated.
    pub fn tcp_upgrade_to_secure(&mut self, id: TcpId) -> Result<(), ApiError> {
        self.on_tcp(id, |s, c| s.upgrade_to_secure(c))
            .unwrap_or_else(|| Err(ApiError::dead()))
    }

    /// Ids of all live TCP sockets.
    pub fn tcp_ids(&self) -> impl Iterator<Item = TcpId> + '_ {
        self.tcp.ids()
    }
}

#[cfg(test)]
impl Core {
    pub(crate) fn timer_entries(&self) -> usize {
        self.timers.len()
    }
}
