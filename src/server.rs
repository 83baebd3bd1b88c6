//! The `TCPServerSocket` state machine ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)).
//!
//! Internal phases and the `readyState` each reports:
//!
//! | phase     | readyState | meaning                                                          |
//! |-----------|------------|------------------------------------------------------------------|
//! | `Opening` | `opening`  | `Listen` asked of the I/O layer, no answer yet                   |
//! | `Open`    | `open`     | listening; accepting while not suspended                          |
//! | `Closed`  | `closed`   | `Release` and `Close` queued; the slot is freed when `Close` is delivered |
//!
//! Every transition, stimulus by stimulus:
//!
//! | stimulus             | Opening | Open | Closed |
//! |----------------------|---------|------|--------|
//! | `close`              | `Release`, `Close` | `Release`, `Close` (accepted sockets live on; unannounced ones are released) | nothing |
//! | `suspend`/`resume`   | counted | counted, accept interest | counted |
//! | `Listening`          | → Open (`Open`), accept unless suspended | input error | unknown id |
//! | `ListenFailed`       | `Release`, `Error`, `Close` | input error | unknown id |
//! | `handle_accepted`    | input error | `Connect` (secure: after the handshake), or over `max_connections`: `Error` and `Refused` (suspended: input error) | unknown id |
//! | accepted handshake fails | – | `Error` (the socket was never announced) | – |
//! | accepted `Close` delivered | – | one connection less | – |
//!
//! Accepted sockets are ordinary [`TcpSocket`](crate::TcpSocket)s: they outlive their server
//! and count against its `max_connections` until their `Close` is delivered.
//!
//! A secure server (`useSecureTransport` with a certificate in `tls_config`) hands its config to
//! every accepted socket, which fires `Connect` only once its TLS handshake has completed. Until
//! then the app does not know the socket: a failed handshake is the server's `Error`, and
//! `close()` releases such sockets with the server, silently.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use crate::core::Ctx;
use crate::error::{ApiError, ErrorCode, InputError, SocketError};
use crate::id::ServerId;
use crate::io::{check_ipv6_only, Action, Event, SocketSettings};
use crate::payload::BinaryType;
use crate::reading::Reading;
use crate::tcp::{AcceptedFrom, ReadyState};
use crate::tls::ServerConfig;

/// `backlog` when none is given: Rust's `TcpListener` default.
pub const DEFAULT_BACKLOG: u32 = 128;

crate::options_struct! {
    /// Options of `new TCPServerSocket(options)` (the W3C `TCPServerOptions`, [BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)).
    ///
    /// ```
    /// use sockstate::ServerOptions;
    /// let options = ServerOptions::default()
    ///     .local_port(Some(8080))
    ///     .max_connections(Some(100));
    /// assert!(options.address_reuse);
    /// ```
    #[derive(Clone, Debug)]
    pub struct ServerOptions {
        /// `localAddress`: listen on this address (default `0.0.0.0`, every IPv4 interface; give
        /// `::` for IPv6). A multicast address is `InvalidAccessError`.
        pub local_address: Option<IpAddr>,
        /// `localPort` (0 or `None`: ephemeral; the real port is known after `Open`).
        pub local_port: Option<u16>,
        /// `binaryType` of every accepted socket.
        pub binary_type: BinaryType,
        /// The `listen(2)` backlog: connections the OS completes before the server accepts them
        /// (default [`DEFAULT_BACKLOG`]; 0 or above `i32::MAX` is `InvalidAccessError`).
        pub backlog: u32,
        /// `addressReuse`: `SO_REUSEADDR`, so that a restarted server can listen while old
        /// connections linger (default `true`, as Node and Rust's `TcpListener`).
        pub address_reuse: bool,
        /// At most this many accepted sockets alive at once; one more is closed at once and the
        /// server fires `Error` (default `None`: no limit; `Some(0)` is `InvalidAccessError`).
        pub max_connections: Option<u32>,
        /// `useSecureTransport`: every accepted socket completes a TLS handshake with `tls_config`
        /// before its `Connect` ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)). Without `tls_config` it is `InvalidAccessError`.
        pub use_secure_transport: bool,
        /// The server's certificate and TLS settings ([`tls::server_config`](crate::tls::server_config)),
        /// for `use_secure_transport` and for `upgradeToSecure` on accepted sockets.
        pub tls_config: Option<Arc<ServerConfig>>,
        /// `ipv6Only` (Direct Sockets): with an IPv6 `local_address` such as `::`, accept IPv6
        /// connections only (`IPV6_V6ONLY`). Default `false`: `::` accepts IPv4 too, whatever
        /// the OS default is. `true` with an IPv4 (or IPv4-mapped) address is
        /// `InvalidAccessError`.
        pub ipv6_only: bool,
        /// `sendBufferSize` (Direct Sockets): `SO_SNDBUF` in bytes of the listening socket,
        /// inherited by accepted ones; 1 to [`MAX_BUFFER_SIZE`](crate::MAX_BUFFER_SIZE), else
        /// `InvalidAccessError` (default `None`: the OS's).
        pub send_buffer_size: Option<u32>,
        /// `receiveBufferSize` (Direct Sockets): `SO_RCVBUF`, as `send_buffer_size`.
        pub receive_buffer_size: Option<u32>,
    }
}

impl ServerOptions {
    /// The defaults, but accepted sockets receive bytes (`binaryType` `"arraybuffer"`), as
    /// [`TcpOptions::binary`](crate::TcpOptions::binary).
    pub fn binary() -> Self {
        ServerOptions {
            binary_type: BinaryType::ArrayBuffer,
            ..ServerOptions::default()
        }
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            local_address: None,
            local_port: None,
            binary_type: BinaryType::String,
            backlog: DEFAULT_BACKLOG,
            address_reuse: true,
            max_connections: None,
            use_secure_transport: false,
            tls_config: None,
            ipv6_only: false,
            send_buffer_size: None,
            receive_buffer_size: None,
        }
    }
}

impl ServerOptions {
    /// The address to listen on, or `InvalidAccessError` for options that make no sense.
    pub(crate) fn local(&self) -> Result<SocketAddr, ApiError> {
        let ip = self
            .local_address
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if ip.is_multicast() {
            return Err(ApiError::access(format!(
                "localAddress {ip} is a multicast address; a server cannot listen on it"
            )));
        }
        if self.backlog == 0 || self.backlog > i32::MAX as u32 {
            return Err(ApiError::access(format!(
                "backlog {} is not between 1 and {}",
                self.backlog,
                i32::MAX
            )));
        }
        if self.use_secure_transport && self.tls_config.is_none() {
            return Err(ApiError::access(
                "useSecureTransport needs the server's certificate in tls_config",
            ));
        }
        if self.max_connections == Some(0) {
            return Err(ApiError::access(
                "max_connections 0 would refuse every connection; suspend() the server instead",
            ));
        }
        check_ipv6_only(ip, self.ipv6_only)?;
        self.settings().check()?;
        Ok(SocketAddr::new(ip, self.local_port.unwrap_or(0)))
    }

    fn settings(&self) -> SocketSettings {
        SocketSettings {
            send_buffer: self.send_buffer_size,
            receive_buffer: self.receive_buffer_size,
            ipv6_only: self.ipv6_only,
            ..SocketSettings::default()
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Opening,
    Open,
    Closed,
}

/// One `TCPServerSocket`: its attributes and state. Read it with
/// [`Core::server`](crate::Core::server); change it with the `Core::server_*` methods.
#[derive(Debug)]
pub struct ServerSocket {
    id: ServerId,
    phase: Phase,
    local: Option<SocketAddr>,
    binary_type: BinaryType,
    backlog: u32,
    address_reuse: bool,
    max_connections: Option<u32>,
    secure: bool,
    tls_config: Option<Arc<ServerConfig>>,
    /// Accepted sockets whose `Close` has not been delivered.
    connections: u32,
    /// Counted `suspend` and whether the I/O layer accepts.
    accepting: Reading,
}

impl ServerSocket {
    /// A new server; asks the I/O layer to listen on `local` (validated by
    /// [`ServerOptions::local`]).
    pub(crate) fn listen(
        id: ServerId,
        local: SocketAddr,
        options: &ServerOptions,
        ctx: &mut Ctx,
    ) -> ServerSocket {
        ctx.action(Action::Listen {
            id,
            local,
            backlog: options.backlog,
            reuse_address: options.address_reuse,
            settings: Box::new(options.settings()),
        });
        ServerSocket {
            id,
            phase: Phase::Opening,
            local: None,
            binary_type: options.binary_type,
            backlog: options.backlog,
            address_reuse: options.address_reuse,
            max_connections: options.max_connections,
            secure: options.use_secure_transport,
            tls_config: options.tls_config.clone(),
            connections: 0,
            accepting: Reading::default(),
        }
    }

    // ---- attributes -------------------------------------------------------------------------

    /// `readyState`: `opening`, `open` or `closed` (there is no `closing` for a server).
    pub fn ready_state(&self) -> ReadyState {
        match self.phase {
            Phase::Opening => ReadyState::Opening,
            Phase::Open => ReadyState::Open,
            Phase::Closed => ReadyState::Closed,
        }
    }

    /// `localAddress` with `localPort`: the address the OS listens on, known from `Open`
    /// (with the real port when an ephemeral one was asked for).
    pub fn local_address(&self) -> Option<SocketAddr> {
        self.local
    }

    /// `binaryType` inherited by accepted sockets.
    pub fn binary_type(&self) -> BinaryType {
        self.binary_type
    }

    /// The `listen(2)` backlog.
    pub fn backlog(&self) -> u32 {
        self.backlog
    }

    /// `addressReuse`.
    pub fn address_reuse(&self) -> bool {
        self.address_reuse
    }

    /// The `max_connections` limit, if any.
    pub fn max_connections(&self) -> Option<u32> {
        self.max_connections
    }

    /// `useSecureTransport`: accepted sockets are announced after their TLS handshake.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// Accepted sockets whose `Close` has not been delivered yet, and those of a secure server
    /// still in their handshake (what `max_connections` counts).
    pub fn connection_count(&self) -> u32 {
        self.connections
    }

    /// How many `suspend` calls are not yet matched by a `resume`.
    pub fn suspend_count(&self) -> u32 {
        self.accepting.count()
    }

    // ---- app calls --------------------------------------------------------------------------

    /// `close()`: stop listening, `Close`. Accepted sockets are not touched.
    pub(crate) fn close(&mut self, ctx: &mut Ctx) {
        if self.phase != Phase::Closed {
            self.release(None, ctx);
        }
    }

    /// `suspend()`: counted; stops accepting while the count is above 0.
    pub(crate) fn suspend(&mut self, ctx: &mut Ctx) {
        self.accepting.suspend();
        self.settle(ctx);
    }

    /// `resume()`: `InvalidStateError` if not suspended.
    pub(crate) fn resume(&mut self, ctx: &mut Ctx) -> Result<(), ApiError> {
        self.accepting.resume()?;
        self.settle(ctx);
        Ok(())
    }

    // ---- inputs -----------------------------------------------------------------------------

    pub(crate) fn listening(&mut self, local: SocketAddr, ctx: &mut Ctx) -> Result<(), InputError> {
        self.check_opening()?;
        self.local = Some(local);
        self.phase = Phase::Open;
        ctx.event(Event::Open { id: self.id.into() });
        self.settle(ctx);
        Ok(())
    }

    pub(crate) fn listen_failed(
        &mut self,
        error: io::ErrorKind,
        ctx: &mut Ctx,
    ) -> Result<(), InputError> {
        self.check_opening()?;
        self.release(Some(SocketError::from_io(error)), ctx);
        Ok(())
    }

    /// A connection `local` ← `remote` was accepted by the OS. `Ok(Some(from))`: it becomes a
    /// socket made from `from` (the server's `binaryType` and TLS), counted against
    /// `max_connections`. `Ok(None)`: over the limit, refused with an `Error` event; the server
    /// keeps listening.
    pub(crate) fn admit(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        ctx: &mut Ctx,
    ) -> Result<Option<AcceptedFrom>, InputError> {
        match self.phase {
            Phase::Open if !self.accepting.is_suspended() => {}
            Phase::Open => {
                return Err(InputError::Unexpected(
                    "a connection accepted while the server is suspended",
                ))
            }
            Phase::Opening => {
                return Err(InputError::Unexpected(
                    "a connection accepted before the server listens",
                ))
            }
            Phase::Closed => return Err(InputError::UnknownId),
        }
        if let Some(max) = self.max_connections.filter(|&max| self.connections >= max) {
            let error = SocketError::new(
                ErrorCode::Network,
                format!("refused the connection from {remote}: max_connections ({max}) reached"),
            );
            ctx.event(Event::Error {
                id: self.id.into(),
                error,
            });
            return Ok(None);
        }
        self.connections += 1;
        Ok(Some(AcceptedFrom {
            server: self.id,
            local,
            remote,
            binary_type: self.binary_type,
            tls: self.tls_config.clone(),
            secure: self.secure,
        }))
    }

    /// An accepted socket's `Close` was delivered.
    pub(crate) fn connection_closed(&mut self) {
        self.connections = self.connections.saturating_sub(1);
    }

    // ---- internals --------------------------------------------------------------------------

    fn check_opening(&self) -> Result<(), InputError> {
        match self.phase {
            Phase::Opening => Ok(()),
            Phase::Open => Err(InputError::Unexpected(
                "a listen result for a server that already listens",
            )),
            Phase::Closed => Err(InputError::UnknownId),
        }
    }

    /// Tells the I/O layer whether to accept, if that changed.
    fn settle(&mut self, ctx: &mut Ctx) {
        let open = self.phase == Phase::Open;
        self.accepting.update(self.id.into(), open, ctx);
    }

    /// The end: `Release`, then `Error` (if any), then `Close`.
    fn release(&mut self, error: Option<SocketError>, ctx: &mut Ctx) {
        self.phase = Phase::Closed;
        self.accepting.released();
        ctx.end(self.id.into(), error);
    }
}

#[cfg(test)]
mod tests;
