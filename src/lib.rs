//! # sockstate
//!
//! Sans-IO state machines for the TCP and UDP Socket API: `TCPSocket` (W3C SysApps draft and
//! Firefox OS's `mozTCPSocket`), with `TCPServerSocket` and `UDPSocket` to follow. The exact
//! semantics are those of the project's behaviour contract (`BEHAVIOUR.md`); where it decides
//! against a source, the item's docs say so.
//!
//! The [`Core`] owns every socket's state. App calls (`tcp_open`, `tcp_send`, ...) and
//! [`Input`]s (what the OS reported) go in; [`Output`]s come out: [`Action`]s for the I/O
//! layer, [`Event`]s for the app, and the next deadline. It never touches a socket, a clock or a
//! thread, so the same core runs under a blocking loop, any async runtime, a simulation or a
//! fuzzer.
//!
//! ## The drain rule
//!
//! After any call that changes the core, call [`Core::poll_output`] until it returns
//! [`Output::Timeout`]. Then wait for I/O or that deadline, and feed what happened back with
//! [`Core::handle_input`] or [`Core::handle_timeout`]. Time is always an argument.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sockstate::{Action, Core, Config, Data, Event, Input, Output, SocketId, TcpOptions};
//!
//! let mut core = Core::new(Config::default());
//! let mut now = Instant::now();
//! let id = core.tcp_open(now, "localhost", 4000, TcpOptions::default()).unwrap();
//! let mut log = Vec::new();
//! loop {
//!     match core.poll_output() {
//!         // A real I/O layer performs these; here we play the network by hand.
//!         Output::Action(Action::Resolve { id, .. }) => {
//!             let result = Ok(vec!["127.0.0.1".parse().unwrap()]);
//!             core.handle_input(now, Input::Resolved { id, result }).unwrap();
//!         }
//!         Output::Action(Action::Connect { id, attempt, .. }) => {
//!             let local = "127.0.0.1:50000".parse().unwrap();
//!             core.handle_input(now, Input::Connected { id, attempt, local }).unwrap();
//!         }
//!         Output::Action(Action::SetReading { id: SocketId::TcpId(id), enabled: true }) => {
//!             core.handle_input(now, Input::Received { id, data: "hello".into() }).unwrap();
//!         }
//!         Output::Action(Action::Write { id, data }) => {
//!             core.handle_input(now, Input::Written { id, len: data.len() }).unwrap();
//!         }
//!         Output::Action(Action::Shutdown { id }) => {
//!             core.handle_input(now, Input::Eof { id }).unwrap(); // the peer closes too
//!         }
//!         Output::Action(_) => {}
//!         Output::Event(Event::Data { id, data: Data::Text(text) }) => {
//!             log.push(text.clone());
//!             core.tcp_send(id, format!("echo: {text}")).unwrap();
//!             core.tcp_close(now, id).unwrap();
//!         }
//!         Output::Event(Event::Close { .. }) => break,
//!         Output::Event(_) => {}
//!         Output::Timeout(Some(deadline)) => {
//!             now = deadline;
//!             core.handle_timeout(now);
//!         }
//!         Output::Timeout(None) => break,
//!     }
//! }
//! assert_eq!(log, ["hello"]);
//! assert!(core.tcp(id).is_none(), "the id is dead after Close");
//! ```
//!
//! ## Secure transport
//!
//! TLS is rustls 0.23 on the *ring* provider, sans-IO inside the core (module [`tls`]).
//! `TcpOptions::use_secure_transport` opens with a handshake verified for `host` (SNI set);
//! [`Core::tcp_upgrade_to_secure`] is STARTTLS. Trust roots are Mozilla's (`webpki-roots`)
//! unless `TcpOptions::tls_config` names others ([`tls::client_config`]); no option turns
//! verification off. The ordering rules (BEHAVIOUR §1):
//!
//! - `Open` fires only after the handshake completed and the certificate was verified (we
//!   decide against Firefox, which opened before it). A failure is `Error` + `Close` before any
//!   `Open`, named per BEHAVIOUR §4 (`SecurityUntrustedCertificateIssuerError`,
//!   `SecurityExpiredCertificateError`, `SecurityCertificateDomainMismatchError`,
//!   `SecurityUnsupportedTLSVersionError`, `SecurityError`...). The connect timeout bounds the
//!   handshake too.
//! - `upgradeToSecure` is allowed only in `open` when neither side half-closed; `ssl` is true at
//!   once. Bytes queued before the call are written as plaintext, then the ClientHello; bytes
//!   sent after it wait and are encrypted. `bufferedAmount` counts them until the OS took their
//!   records, and `Drain` waits for every record.
//! - Received bytes read before the call are delivered as plaintext (also those held while
//!   suspended, on `resume`); every byte read after it goes to TLS, and never to the app as
//!   plaintext: a plaintext injection after the call is a TLS error (CVE-2011-0411's class).
//! - Graceful close writes close_notify, then FIN. The peer's close_notify ends its stream like a
//!   FIN. A FIN without close_notify after the handshake is reported, after the data, as
//!   `SecurityError` (kind `SecurityProtocol`): the data may have been truncated.
//! - Certificate validity is checked against the config's `TimeProvider` (rustls's default
//!   reads the system clock; tests and simulations pass a fixed one).
//!
//! ## Decisions where the sources disagree or are silent
//!
//! - `Close` fires exactly once per socket and last, also after a failure before `open`
//!   (against the W3C prose; as Mozilla and Node).
//! - `send` returns `true` while `bufferedAmount` is at most [`Config::high_water_mark`]
//!   (65 536 inclusive); above [`Config::send_buffer_limit`] it is `QuotaExceededError`.
//! - Text is decoded as UTF-8 across reads, invalid bytes as U+FFFD (against Firefox's one
//!   byte per character).
//! - `localPort: Some(0)` means an ephemeral port, as `None` does.
//! - The time-starting calls (`tcp_open`, `tcp_close`, `tcp_halfclose`, `tcp_resume`) take
//!   `now`; the others cannot start a timer.
//! - After a resolution, addresses are tried per RFC 8305 (families interleaved, a new attempt
//!   every [`Config::connection_attempt_delay`] while earlier ones are pending, at most
//!   [`MAX_CANDIDATES`]); when all fail, the error is that of the last attempt to fail. With a
//!   fixed `localPort`, attempts run one at a time.
//! - Every resolver failure is `DomainNotFoundError` (the message says which).
//! - Data read while suspended is held (at most [`Config::max_held_bytes`]); if the connection
//!   then fails, the held data is delivered before `Error` so that nothing received is lost.
//! - When the peer's FIN arrives in `halfclosed` (or `halfclose()` is called after a peer FIN
//!   with `allowHalfOpen`), the socket moves to `closing`, bounded by the close timeout.
//! - A reset while lingering after our FIN is still reported as `NetworkInterruptError`: the
//!   peer may not have read what we sent.
//! - A socket ended by the app (`close` while connecting, `close_immediately`) reads `closing`
//!   until its `Close` is delivered; one ended by the network or a completed close reads
//!   `closed`.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod config;
mod core;
mod error;
mod host;
mod id;
mod io;
mod payload;
mod policy;
mod queue;
mod tcp;
mod text;
mod timer;
pub mod tls;

#[cfg(test)]
mod testkit;

pub use crate::config::Config;
pub use crate::core::Core;
pub use crate::error::{ApiError, DomException, ErrorCode, ErrorKind, InputError, SocketError};
pub use crate::host::{DnsName, Host, MAX_NAME_LEN};
pub use crate::id::{ServerId, SocketId, TcpId, UdpId};
pub use crate::io::{Action, Event, Input, Output, ResolveError};
pub use crate::payload::{BinaryType, Data, Payload};
pub use crate::policy::{AllowAll, AllowList, NoPrivilegedPorts, Policy, Request};
pub use crate::tcp::{ReadyState, TcpOptions, TcpSocket, MAX_CANDIDATES};

pub use bytes::Bytes;
