//! The app: a PING/PONG line protocol, written once against `sockstate::Sockets` and run
//! unchanged in every world (see `worlds.rs`).
//!
//! The client sends `PING 1`, waits for `PONG 1`, sends `PING 2`, ... up to `PING count`;
//! after the last `PONG` it sends `QUIT`. The server answers each `PING n` with `PONG n`, and
//! `QUIT` with `BYE`, then closes; the client's socket closes with it (no `allowHalfOpen`).
//! Lines end with `\n`, may arrive in any chunks, and are at most [`MAX_LINE`] bytes. The
//! client gives up on an answer after [`REPLY_TIMEOUT`], on the world's clock
//! (`Sockets::now`): without it (or TCP keep-alive), a server that vanishes without a reset
//! (a crash, in the simulator) leaves the client waiting for good.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sockstate::{ApiError, Event, ServerId, ServerOptions, SocketId, Sockets, TcpId, TcpOptions};

/// The longest line either side accepts (the newline excluded); a longer one ends the
/// connection, so a peer cannot make the app buffer without bound.
pub const MAX_LINE: usize = 64;

/// How long the client waits for each answer.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// Which side this app plays.
#[derive(Debug)]
enum Role {
    Client {
        host: String,
        port: u16,
        count: u32,
        /// The next `PING` to send; `count + 1` once `QUIT` is sent.
        next: u32,
        /// The connection, while an answer is awaited, and until when.
        waiting: Option<(TcpId, Instant)>,
    },
    Server {
        port: u16,
        ip: std::net::IpAddr,
        server: Option<ServerId>,
    },
}

/// One side of the protocol. [`PingPong::start`] opens its socket; then every event of the
/// world goes to [`PingPong::on_event`]. What the app saw is in [`PingPong::log`].
#[derive(Debug)]
pub struct PingPong {
    role: Role,
    /// Bytes of an unfinished line, per connection.
    partial: BTreeMap<TcpId, Vec<u8>>,
    /// What happened, in the protocol's terms: every line received, then how each connection
    /// ended (`closed`, or `error` and the error's name).
    pub log: Vec<String>,
}

impl PingPong {
    /// A client that will ping `host:port` `count` times.
    pub fn client(host: &str, port: u16, count: u32) -> PingPong {
        let role = Role::Client {
            host: host.into(),
            port,
            count,
            next: 1,
            waiting: None,
        };
        PingPong::new(role)
    }

    /// A server that will listen on `ip:port` (port 0: any).
    pub fn server(ip: std::net::IpAddr, port: u16) -> PingPong {
        let role = Role::Server {
            port,
            ip,
            server: None,
        };
        PingPong::new(role)
    }

    fn new(role: Role) -> PingPong {
        PingPong {
            role,
            partial: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// Opens the client's connection or the server's listening socket.
    pub fn start(&mut self, net: &mut impl Sockets) -> Result<(), ApiError> {
        match &mut self.role {
            Role::Client { host, port, .. } => {
                net.tcp_open(host, *port, TcpOptions::default())?;
            }
            Role::Server { port, ip, server } => {
                let options = ServerOptions::default()
                    .local_address(Some(*ip))
                    .local_port(Some(*port));
                *server = Some(net.server_listen(options)?);
            }
        }
        Ok(())
    }

    /// The server's port once it listens (`None` for a client, or before `Open`).
    pub fn port(&self, net: &impl Sockets) -> Option<u16> {
        match self.role {
            Role::Server {
                server: Some(id), ..
            } => Some(net.server(id)?.local_address()?.port()),
            _ => None,
        }
    }

    /// Reacts to one event of the world this app runs in.
    pub fn on_event(&mut self, net: &mut impl Sockets, event: &Event) -> Result<(), ApiError> {
        match event {
            Event::Open {
                id: SocketId::TcpId(id),
            } => self.ping(net, *id),
            Event::Data { id, data } => {
                let partial = self.partial.entry(*id).or_default();
                partial.extend_from_slice(data.as_bytes());
                let mut lines = Vec::new();
                while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = partial.drain(..=end).collect();
                    lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
                }
                if partial.len() > MAX_LINE {
                    self.log.push("error line too long".into());
                    return net.tcp_close_immediately(*id);
                }
                for line in lines {
                    self.on_line(net, *id, line)?;
                }
                Ok(())
            }
            Event::Error { error, .. } => {
                self.log.push(format!("error {}", error.code.name()));
                Ok(())
            }
            Event::Close {
                id: SocketId::TcpId(id),
            } => {
                self.partial.remove(id);
                self.stop_waiting();
                self.log.push("closed".into());
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn on_line(&mut self, net: &mut impl Sockets, id: TcpId, line: String) -> Result<(), ApiError> {
        let mut words = line.split(' ');
        let reply = match (&self.role, words.next(), words.next(), words.next()) {
            (Role::Client { next, .. }, Some("PONG"), Some(n), None)
                if n.parse() == Ok(*next - 1) =>
            {
                Reply::Ping
            }
            (Role::Client { next, count, .. }, Some("BYE"), None, None) if *next > *count + 1 => {
                Reply::Nothing
            }
            (Role::Server { .. }, Some("PING"), Some(n), None) => {
                Reply::Send(format!("PONG {n}\n"))
            }
            (Role::Server { .. }, Some("QUIT"), None, None) => Reply::Bye,
            _ => Reply::Unexpected,
        };
        self.log.push(line);
        self.stop_waiting();
        match reply {
            Reply::Ping => self.ping(net, id),
            Reply::Nothing => Ok(()),
            Reply::Send(line) => net.tcp_send(id, line).map(drop),
            Reply::Bye => {
                net.tcp_send(id, "BYE\n")?;
                net.tcp_close(id)
            }
            Reply::Unexpected => {
                self.log.push("error unexpected line".into());
                net.tcp_close_immediately(id)
            }
        }
    }

    /// The client's next line: the next `PING`, or `QUIT` after the last; then it waits for
    /// the answer.
    fn ping(&mut self, net: &mut impl Sockets, id: TcpId) -> Result<(), ApiError> {
        let Role::Client {
            count,
            next,
            waiting,
            ..
        } = &mut self.role
        else {
            return Ok(());
        };
        let line = match *next {
            n if n <= *count => format!("PING {n}\n"),
            n if n == *count + 1 => "QUIT\n".to_owned(),
            _ => return Ok(()),
        };
        *next += 1;
        *waiting = Some((id, net.now() + REPLY_TIMEOUT));
        net.tcp_send(id, line).map(drop)
    }

    fn stop_waiting(&mut self) {
        if let Role::Client { waiting, .. } = &mut self.role {
            *waiting = None;
        }
    }

    /// When [`on_timeout`](PingPong::on_timeout) is due, if ever: the world wakes the app then.
    pub fn deadline(&self) -> Option<Instant> {
        match self.role {
            Role::Client {
                waiting: Some((_, at)),
                ..
            } => Some(at),
            _ => None,
        }
    }

    /// Gives up on an answer that did not come in time: the connection is dropped.
    pub fn on_timeout(&mut self, net: &mut impl Sockets) -> Result<(), ApiError> {
        match self.role {
            Role::Client {
                waiting: Some((id, at)),
                ..
            } if net.now() >= at => {
                self.stop_waiting();
                self.log.push("error timeout".into());
                net.tcp_close_immediately(id)
            }
            _ => Ok(()),
        }
    }
}

/// What a line received asks for.
enum Reply {
    Ping,
    Nothing,
    Send(String),
    Bye,
    Unexpected,
}

/// What the client logs when everything goes well: every answer, then the close.
pub fn expected_client_log(count: u32) -> Vec<String> {
    let pongs = (1..=count).map(|n| format!("PONG {n}"));
    pongs.chain(["BYE".into(), "closed".into()]).collect()
}

/// What the server logs for one such client.
pub fn expected_server_log(count: u32) -> Vec<String> {
    let pings = (1..=count).map(|n| format!("PING {n}"));
    pings.chain(["QUIT".into(), "closed".into()]).collect()
}
