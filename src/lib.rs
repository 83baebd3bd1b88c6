//! # sockstate
//!
//! Sans-IO state machines for the TCP and UDP Socket API: `TCPSocket`, `TCPServerSocket` and
//! `UDPSocket` (the W3C SysApps draft and Firefox OS's `mozTCPSocket`). The exact semantics are
//! those of the project's behaviour contract, the module [`behaviour`] (the file `BEHAVIOUR.md`),
//! which the docs cite as "BEHAVIOUR §n"; where it decides against a source, it and the item's
//! docs say so.
//!
//! **Binary data?** Open with [`TcpOptions::binary()`] (and listen with
//! [`ServerOptions::binary()`]). The spec's default `binaryType` is `"string"`: received bytes
//! are decoded as UTF-8, and invalid ones become U+FFFD.
//!
//! The [`Core`] owns every socket's state. App calls (`tcp_open`, `server_listen`, `udp_open`,
//! `udp_send`, ...) and
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
//! Whoever carries out the actions must keep a few rules (read interest is a level, partial
//! writes, who owns buffers, DNS off the loop, the close path's `QueryUnacked`, ...): they are
//! all in the chapter [Writing an I/O layer](io_layer).
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
//! TLS is rustls 0.23, sans-IO inside the core (module [`tls`]), on the crypto provider
//! [`tls::provider`] returns (see "Crypto provider" below).
//! `TcpOptions::use_secure_transport` opens with a handshake verified for `host` (SNI set);
//! [`Core::tcp_upgrade_to_secure`] is STARTTLS. Trust roots are Mozilla's (`webpki-roots`)
//! unless `TcpOptions::tls_config` names others ([`tls::client_config`]).
//!
//! Verification: sockstate has no switch that turns certificate verification off, and every
//! config it builds ([`tls::client_config`], the default) verifies the server for `host`. But
//! `TcpOptions::tls_config` takes any rustls `ClientConfig` and honours it as given, including
//! one the embedder built with rustls's own `dangerous()` API and a verifier that accepts
//! anything: such a socket opens to an untrusted or self-signed server, and its `Open` then
//! promises only what that verifier checked. sockstate does not inspect or refuse such a
//! config ([BEHAVIOUR §5](crate::behaviour#5-trust)).
//!
//! The ordering rules ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)):
//!
//! - `Open` fires only after the handshake completed and the certificate was verified (we
//!   decide against Firefox, which opened before it). A failure is `Error` + `Close` before any
//!   `Open`, named per [BEHAVIOUR §4](crate::behaviour#4-errors) (`SecurityUntrustedCertificateIssuerError`,
//!   `SecurityExpiredCertificateError`, `SecurityCertificateDomainMismatchError`,
//!   `SecurityUnsupportedTLSVersionError`, `SecurityError`...). The connect timeout bounds the
//!   handshake too.
//! - `upgradeToSecure` is allowed only when `readyState` is `open` and neither side
//!   half-closed; otherwise it is `InvalidStateError`, whatever the internal phase: a
//!   `useSecureTransport` socket still `connecting` gets it before its TCP connect completes
//!   and during its handshake alike (the state check comes first, as in Mozilla's code). Open
//!   and already secure: nothing. `ssl` is true at once. Bytes queued before the call are
//!   written as plaintext, then the ClientHello; bytes sent after it wait and are encrypted.
//!   `bufferedAmount` counts them until the OS took their records, and `Drain` waits for
//!   every record.
//! - Received plaintext already delivered (as `Data`) when the app calls `upgradeToSecure`
//!   stays delivered. Plaintext read from the OS but not yet delivered then (a read whose
//!   `Data` the app has not polled yet, data held while suspended, or the start of a UTF-8
//!   character cut by a read) means the peer sent past the STARTTLS point: it is dropped,
//!   never delivered and never given to TLS, and the upgrade fails closed. The call returns
//!   `Ok(())` (`ssl` true), and the next outputs are `Action::Release`, then
//!   `Error(SecurityError)` (kind `SecurityProtocol`, its message naming the plaintext
//!   injection; `readyState` already `closed`), then `Close`; not even bytes queued before the
//!   call are written. Same on an accepted socket (a client pipelining commands after
//!   `STARTTLS`). RFC 3207 §4.2; Postfix CVE-2011-0411. So no `Data` ever follows the call as
//!   plaintext, and an app speaking a line protocol should also refuse bytes that came after
//!   the go-ahead in the same `Data` (the core cannot tell those apart; `sockcat` does).
//! - Every byte read after the call goes to TLS, never to the app as plaintext: a plaintext
//!   injection that arrives after the call (before or during the handshake) is a TLS error.
//! - Graceful close writes close_notify, then FIN. The peer's close_notify ends its stream like a
//!   FIN. A FIN without close_notify after the handshake is reported, after the data, as
//!   `SecurityError` (kind `SecurityProtocol`): the data may have been truncated.
//! - Certificate validity is checked against the config's `TimeProvider` (rustls's default
//!   reads the system clock; tests and simulations pass a fixed one).
//! - rustls runs through its `unbuffered` API: ciphertext is decrypted in the buffer it was
//!   read into when the I/O layer hands over a buffer nobody else holds (else it is copied
//!   once into the session's own, reused, buffer), records are encrypted straight into the
//!   buffer the OS writes, and the plaintext the app gets is gathered per read into one
//!   buffer, reused once the app has dropped it. rustls 0.23 itself moves each decrypted
//!   record into a queue of its own before handing it out; it has no API to avoid that copy.
//!
//! ### Crypto provider (features `aws-lc-rs`, `ring`)
//!
//! By default (feature `aws-lc-rs`) rustls runs on aws-lc-rs, and every config built by
//! [`tls::client_config`] / [`tls::server_config`] offers the post-quantum hybrid key exchange
//! `X25519MLKEM768` first (then `X25519`, `secp256r1`, `secp384r1`), as browsers and rustls's
//! own default do: traffic recorded today cannot be decrypted later by a quantum computer.
//! The feature `ring` (with `default-features = false`) uses *ring* instead, which has no
//! post-quantum key exchange (rustls 0.23.48 deprecates its provider for that reason) but
//! builds faster. With both features enabled, aws-lc-rs is used; with neither, the crate does
//! not compile. The provider is always passed explicitly (`builder_with_provider`): the crate
//! never relies on, nor installs, a process-wide default, so feature unification with other
//! crates cannot make a config builder panic.
//!
//! Why aws-lc-rs by default, in figures from the machine of `BENCHMARKS.md` (2 CPUs, shared
//! with other builds while measured; its section "TLS crypto provider" has the details):
//!
//! | | aws-lc-rs (default) | ring |
//! |---|--:|--:|
//! | key exchange offered first | `X25519MLKEM768` | `X25519` |
//! | clean release build of this crate, wall (user CPU) | 62 s (71 s) | 30 s (32 s) |
//! | same, with other builds loading the machine | 98 s (79 s) | 72 s (38 s) |
//! | full handshake through the driver, client / server CPU | 314-317 / 198-200 µs | 296 / 199 µs |
//!
//! Post-quantum key exchange on aws-lc-rs costs a handshake about 7% more CPU on the client
//! than X25519 on ring, and nothing measurable on the server (each side's provider computes
//! the whole handshake, signatures included), and its ClientHello carries a 1 216-byte key
//! share more. A clean build takes about 30-40 s more
//! (aws-lc-sys compiles AWS-LC's C with the system C compiler: no cmake, nasm or Go needed
//! on Linux x86-64), once. Protection against "record now, decrypt later" is worth that; an
//! embedder that cannot afford the build, or needs a pure *ring* dependency tree, chooses
//! `ring`.
//!
//! ## Features
//!
//! - `aws-lc-rs` (default), `ring`: the crypto provider, above.
//! - `sim`: the simulated network, `sockstate::sim`.
//! - `arbitrary`: `arbitrary::Arbitrary` for `sockstate::sim::Scenario`, to fuzz a protocol of
//!   your own over the simulated network (implies `sim`; the recipe is in `Scenario`'s docs).
//! - `fuzzing`: the fuzz harnesses, `sockstate::fuzzing` (implies `arbitrary`).
//!
//! ## Testing and fuzzing with the core (features `sim`, `fuzzing`)
//!
//! With the feature `sim`, `sockstate::sim::Sim` joins any number of cores by a deterministic
//! simulated network on a virtual clock (seeded chunking, partial writes, latency, bandwidth,
//! UDP loss and reordering, multicast, faults on demand, a recorder), so that a protocol built
//! on the core can be tested end to end and reproduced from a seed; `sim::CheckedCore`
//! checks the contract's invariants after every step under any I/O layer. The feature
//! `fuzzing` adds the fuzz harnesses of `fuzz/` (`sockstate::fuzzing`).
//!
//! App code written against the trait [`Sockets`] runs unchanged on a core driven by hand
//! ([`Core::at`]), under the checker, on a host of the simulator and on the reference driver;
//! the chapter `sockstate::testing` (feature `sim`), "Testing your protocol", shows one app in
//! all four, with faults, seeds, transcripts, recordings and fuzzing.
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
//! - Config and option structs ([`Config`], [`TcpOptions`], [`ServerOptions`],
//!   [`UdpOptions`], [`tls::ClientOptions`], [`tls::ServerOptions`], and the simulator's and
//!   the driver's configs) are `#[non_exhaustive]`, so that a new option is not a breaking
//!   change: read and assign their public fields, and build them from `default()` (or a named
//!   constructor such as [`TcpOptions::binary`]) with one chainable setter per field, named as
//!   the field: `TcpOptions::binary().local_port(Some(5353)).no_delay(false)`.
//! - `now`, one rule: the calls that open or gracefully close a socket take it, first
//!   (`tcp_open`, `server_listen`, `udp_open`, `tcp_close`, `tcp_halfclose`, `server_close`,
//!   `udp_close`), whether or not that socket's kind has a timer there today; no other call
//!   takes it (none can start a timer). `handle_input`, `handle_accepted` and
//!   `handle_timeout` always take it.
//! - After a resolution, addresses are tried per RFC 8305 (families interleaved, a new attempt
//!   every [`Config::connection_attempt_delay`] while earlier ones are pending, at most
//!   [`MAX_CANDIDATES`]); when all fail, the error is that of the last attempt to fail. With a
//!   fixed `localPort`, attempts run one at a time.
//! - Every resolver failure is `DomainNotFoundError` (the message says which).
//! - What is read becomes a `Data` (or `Message`) event when the app polls that far, not when
//!   the I/O layer reported it: `suspend()` therefore holds, and `close()` drops, data already
//!   read but not yet delivered, and a peer FIN behind such data waits for it. While
//!   suspended, at most [`Config::max_held_bytes`] are held (more is an `InputError`: the I/O
//!   layer must stop reading). If the connection then fails, held data is delivered before
//!   `Error`, even while suspended, so that nothing received is lost.
//! - Small sends on a TCP socket share a chunk of the send queue (up to 16 KiB, never the
//!   chunk being written, never across `upgradeToSecure`), so per-chunk overhead stays a small
//!   fraction of `bufferedAmount` and a burst of small sends becomes few writes. Return values,
//!   `bufferedAmount` and `Drain` are unchanged by it.
//! - A TCP socket's next `Action::Write` is made when the app polls as far as where it was
//!   due, not when it became due: what the app does in one turn (several sends; a send, then
//!   `close()`) leaves in one write, as one segment. Under TLS the records not yet handed out
//!   are joined the same way (up to 16 KiB, small records copied once, larger ones never), and
//!   close_notify is encrypted as soon as all plaintext is, so that a send then `close()`
//!   writes the record and the alert together; when `Drain` is armed, close_notify still waits
//!   for it. `bufferedAmount` still drops by a record's plaintext when its last byte is taken.
//! - An idle socket holds no buffers: a TCP socket's inbox and send-queue list are handed,
//!   once emptied, to a pool in the core (at most 32 of each, shared by all sockets) that the
//!   next socket to read or send takes from, so memory per idle socket stays at its table slot
//!   and a busy socket does not allocate per message.
//! - Decrypted TLS data is handed to the app as parts of plaintext blocks the core keeps for all
//!   its TLS sockets (at most 4, none held by an idle socket), reused while they have room and
//!   reclaimed once the app drops their parts. A read of at most two records is decrypted into
//!   a buffer of its own, and a part under 4 KiB is copied out, so that what the app keeps
//!   holds a block at most 96 times its size (a whole record's part, 24 times).
//! - `Action::SetReading` states the read interest as of the moment it is polled (a level, not
//!   an edge): the latest one the I/O layer receives is the one that holds.
//! - When the peer's FIN arrives in `halfclosed` (or `halfclose()` is called after a peer FIN
//!   with `allowHalfOpen`), the socket moves to `closing`, bounded by the close timeout.
//! - A graceful close ends without error only when the peer's TCP has every byte we sent and
//!   our FIN ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close): "the OS took the bytes" is not "the peer has them". After
//!   the FIN the core asks the I/O layer ([`Action::QueryUnacked`], answered by
//!   [`Input::Unacked`]; Linux's `SIOCOUTQ`) how much the kernel still holds unsent or
//!   unacknowledged, again and again on its own timer (1 ms apart, doubling up to
//!   [`Config::unacked_poll_interval`]), reading and discarding meanwhile. At 0 it waits for
//!   the peer's FIN at most [`Config::linger_timeout`] more and releases. An I/O layer that
//!   cannot tell answers `None` (once: the core remembers and does not ask again); then only
//!   the peer's FIN ends the close without error. Otherwise [`Config::close_timeout`]
//!   (counted from `close()` or the peer's FIN) ends it with `NetworkTimeoutError`, so a
//!   clean `Close` never hides lost data. The peer's FIN alone does not end it while the
//!   I/O layer still counts bytes unacknowledged.
//! - A reset while lingering after our FIN is still reported as `NetworkInterruptError`: the
//!   peer may not have read what we sent.
//! - `upgradeToSecure` with plaintext read but not yet delivered ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) says the
//!   upgrade fails closed) returns `Ok(())`, not an `ApiError`: the app did nothing wrong, the
//!   peer did, and remote failures are events ([BEHAVIOUR §0](crate::behaviour#0-everywhere)). The bytes queued before the call
//!   are not written then (the connection is abandoned as on any failure). Only data counts:
//!   a FIN read but not yet delivered does not fail the call; the handshake then fails on it
//!   (`SecurityError`, the peer closed during the handshake). The message of the `Error`
//!   says how many bytes were dropped.
//! - A socket ended by the app (`close` while connecting, `close_immediately`) reads `closing`
//!   until its `Close` is delivered; one ended by the network or a completed close reads
//!   `closed`.
//!
//! `TCPServerSocket` ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket)):
//! - Servers and UDP sockets fire `Open` once the OS has bound them (the W3C draft has no
//!   `onopen` there), so the app learns the real `localPort`. Their first `readyState` is
//!   [`ReadyState::Opening`] (`"opening"`).
//! - Without `localAddress` a server listens on `0.0.0.0` (every IPv4 interface); IPv6 is
//!   asked for with `::`. `addressReuse` defaults to `true` (as Node and `TcpListener`),
//!   `backlog` to [`DEFAULT_BACKLOG`]. Invalid options (`InvalidAccessError`): a multicast
//!   `localAddress`, a backlog of 0 or above `i32::MAX`, `max_connections` 0.
//! - `close()` reads `closed` at once (there is no `closing` for a server, as the W3C draft).
//! - `max_connections` counts accepted sockets until their `Close` is delivered. One more is
//!   refused: the I/O layer closes it, the server fires `Error` (`NetworkError`, the W3C
//!   `connecterror`) and no `Close`. Accepted sockets fire no `Open` (`Connect` announces them
//!   already open), and take the W3C defaults the app cannot set for them: `noDelay` on,
//!   `allowHalfOpen` off.
//! - A connection accepted while the server is suspended or not yet open is an
//!   [`InputError`]: the I/O layer was told not to accept, and closes it.
//! - A secure server (`use_secure_transport` with `tls_config`) announces a socket with
//!   `Connect` only after its handshake, bounded by [`Config::connect_timeout`]; until then
//!   the socket counts against `max_connections`, and a failed or timed-out handshake is the
//!   server's `Error` (the app never saw that socket, so it gets no `Close`). `close()` on the
//!   server releases the sockets still in their handshake without any event.
//!
//! `UDPSocket` ([BEHAVIOUR §3](crate::behaviour#3-udpsocket)):
//! - `localPort: Some(0)` is ephemeral as for TCP; the port 0 that is `InvalidAccessError` is a
//!   remote one (option or `send`). `remoteAddress` needs `remotePort` and the reverse. A
//!   destination is an IP address (the W3C draft's literal; no DNS per datagram); an
//!   unspecified one is `InvalidAccessError`.
//! - The socket's address family is fixed by `localAddress`, else by the default destination,
//!   else IPv4; destinations and groups of the other family are `InvalidAccessError` (an
//!   IPv4-mapped IPv6 destination is fine on an IPv6 socket and has the IPv4 size limit).
//! - A datagram the OS refuses (`Input::SendFailed`: unreachable, ICMP port unreachable, too
//!   large for the path) is dropped and reported as `Error` with its Mozilla name; the socket
//!   stays open, as after a refused join. [BEHAVIOUR §0](crate::behaviour#0-everywhere)'s `Error` + `Close` is for failures of
//!   the socket itself; one lost datagram is not that, and UDP may lose datagrams anyway.
//!   `bufferedAmount` and `Drain` treat it as sent.
//! - `close()` with nothing queued reads `closed` at once (W3C); with datagrams queued it
//!   reads `closing` until they are sent, bounded by [`Config::close_timeout`]
//!   (`NetworkTimeoutError` then, so that a stuck I/O layer cannot hang it).
//! - `joinMulticastGroup`/`leaveMulticastGroup` in `closing` are `InvalidStateError`, as in
//!   `closed`. A join the OS refuses is forgotten (it may be asked again) and reported even if
//!   the app has left the group meanwhile.
//! - Datagrams read while suspended are held (bounded by [`Config::max_held_bytes`] and
//!   [`Config::max_queued_datagrams`]) and delivered at `resume`; `close()` drops them. The
//!   send queue is bounded in datagrams too ([`Config::max_queued_datagrams`]), since empty
//!   datagrams add nothing to `bufferedAmount`.
//! - `Message` data is always bytes (the W3C `ArrayBuffer`): UDP has no `binaryType`.
//! - `loopback` defaults to `false` (W3C), against the OS default.
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[doc = include_str!("../BEHAVIOUR.md")]
pub mod behaviour {}

mod call;
mod config;
mod core;
mod error;
mod host;
mod id;
mod io;
mod options;
mod payload;
mod policy;
mod queue;
mod reading;
pub mod replay;
mod server;
mod sockets;
mod tcp;
mod text;
mod timer;
pub mod tls;
mod udp;

#[cfg(test)]
mod testkit;

#[doc = include_str!("io_layer.md")]
pub mod io_layer {}

#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
#[doc = include_str!("testing.md")]
pub mod testing {}

#[cfg(feature = "sim")]
#[cfg_attr(docsrs, doc(cfg(feature = "sim")))]
pub mod sim;

#[cfg(feature = "fuzzing")]
#[cfg_attr(docsrs, doc(cfg(feature = "fuzzing")))]
pub mod fuzzing;

pub use crate::call::{Call, Returned};
pub use crate::config::Config;
pub use crate::core::Core;
pub use crate::error::{
    ApiError, DomException, ErrorCode, InputError, SocketError, SocketErrorKind,
};
pub use crate::host::{DnsName, Host, MAX_NAME_LEN};
pub use crate::id::{ServerId, SocketId, TcpId, UdpId};
pub use crate::io::{
    Accepted, Action, ConnectOptions, Datagrams, DatagramsIter, Event, Input, MulticastInterface,
    Output, ResolveError, SocketSettings, MAX_BUFFER_SIZE,
};
pub use crate::payload::{BinaryType, Data, Payload, Preview};
pub use crate::policy::{AllowAll, AllowList, NoPrivilegedPorts, Policy, Request};
pub use crate::server::{ServerOptions, ServerSocket, DEFAULT_BACKLOG};
pub use crate::sockets::{CoreAt, Sockets};
pub use crate::tcp::{
    DnsQueryType, ReadyState, TcpOptions, TcpSocket, MAX_CANDIDATES, MAX_KEEP_ALIVE_DELAY,
    MIN_KEEP_ALIVE_DELAY,
};
pub use crate::udp::{
    SendAllError, UdpOptions, UdpSocket, MAX_DATAGRAM_V4, MAX_DATAGRAM_V6, MAX_MULTICAST_GROUPS,
};

pub use bytes::Bytes;
