//! Scripted remote endpoints: what answers a connection to a [`Sim::listen`](super::Sim::listen)
//! address, or connects to a core's server ([`Sim::peer_connect`](super::Sim::peer_connect)).

use std::collections::VecDeque;
use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::conn::{EndKind, EndState, Segment};
use super::{ConnId, Sim, SimError};

/// What a scripted peer does after its greeting has been sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AfterGreeting {
    /// Nothing: the connection stays open.
    Stay,
    /// Send FIN (and keep reading until the other side's FIN).
    Close,
    /// Reset the connection.
    Reset,
}

/// A scripted remote endpoint: listening on an address of a simulated host
/// ([`Sim::listen`](super::Sim::listen)), it accepts every connection and runs this script on
/// each; as a client ([`Sim::peer_connect`](super::Sim::peer_connect)), it runs it on the one
/// connection it makes to a core's `TCPServerSocket`. Build one with [`Peer::echo`],
/// [`Peer::sink`], [`Peer::send`], [`Peer::stall`] and adjust the fields; drive a connection by
/// hand with [`Sim::peer_send`](super::Sim::peer_send),
/// [`Sim::peer_close`](super::Sim::peer_close), [`Sim::peer_reset`](super::Sim::peer_reset) and
/// [`Sim::peer_pause`](super::Sim::peer_pause); see how it stands with
/// [`Sim::peer_state`](super::Sim::peer_state).
///
/// ```
/// use sockstate::sim::{AfterGreeting, Peer};
/// let banner = Peer { after_greeting: AfterGreeting::Close, ..Peer::send("220 ready\r\n") };
/// assert!(banner.read && !banner.echo);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Sent as soon as the connection is accepted.
    pub greeting: Bytes,
    /// Then this.
    pub after_greeting: AfterGreeting,
    /// Send back every byte received.
    pub echo: bool,
    /// Read at all (`false`: never read, so the other side feels back-pressure).
    pub read: bool,
    /// Send FIN once the other side's FIN has arrived and everything is sent.
    pub close_on_eof: bool,
    /// As a client: give up a connect that got no answer after this long, with
    /// [`PeerState::Failed`]`(TimedOut)` (default [`PEER_CONNECT_TIMEOUT`], Linux's); its SYN
    /// is sent again on Linux's schedule meanwhile (1, 3, 7, ... s, see
    /// [`TCP_SYN_RETRIES`](super::TCP_SYN_RETRIES)). A suspended server's kernel answers
    /// (the accept queue); a SYN it drops because that queue is full goes again at the next
    /// retry.
    pub connect_timeout: Duration,
}

/// How long a scripted client's connect waits for an answer by default: 127 s, as Linux with
/// its default `tcp_syn_retries` of 6 (SYNs at 0, 1, 3, 7, 15, 31 and 63 s, then 64 s more).
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(127);

/// How a scripted peer's end of a connection stands ([`Sim::peer_state`](super::Sim::peer_state)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerState {
    /// Its connect is under way ([`Sim::peer_connect`](super::Sim::peer_connect) only).
    Connecting,
    /// Connected: it sends and receives.
    Open,
    /// Its socket is closed without an error: FIN both ways done, it reset the connection
    /// itself, or its host crashed.
    Closed,
    /// The connection failed as its OS would report it: `ConnectionRefused` (nobody listens
    /// there, [`Sim::refuse`](super::Sim::refuse), or a reset before the handshake ended),
    /// `TimedOut` (the connect got no answer within [`Peer::connect_timeout`]) or
    /// `ConnectionReset` (a reset reached it).
    Failed(io::ErrorKind),
}

impl Peer {
    /// Sends back everything it receives; FIN after the other side's FIN.
    pub fn echo() -> Peer {
        Peer {
            echo: true,
            ..Peer::sink()
        }
    }

    /// Reads and keeps everything; FIN after the other side's FIN.
    pub fn sink() -> Peer {
        Peer {
            greeting: Bytes::new(),
            after_greeting: AfterGreeting::Stay,
            echo: false,
            read: true,
            close_on_eof: true,
            connect_timeout: PEER_CONNECT_TIMEOUT,
        }
    }

    /// Sends `data` at once, then reads like [`Peer::sink`].
    pub fn send(data: impl Into<Bytes>) -> Peer {
        Peer {
            greeting: data.into(),
            ..Peer::sink()
        }
    }

    /// Accepts and then never reads, writes or closes.
    pub fn stall() -> Peer {
        Peer {
            read: false,
            close_on_eof: false,
            ..Peer::sink()
        }
    }
}

/// The state of one accepted connection's scripted end.
#[derive(Debug)]
pub(crate) struct PeerEnd {
    pub(crate) script: Peer,
    pub(crate) received: BytesMut,
    pub(crate) sent: BytesMut,
    pub(crate) to_send: VecDeque<Bytes>,
    pub(crate) to_send_len: usize,
    pub(crate) eof: bool,
    pub(crate) fin_wanted: bool,
    pub(crate) reset_wanted: bool,
    pub(crate) paused: bool,
    /// A reset reached it: it sends nothing more, but still reads what its kernel had queued.
    pub(crate) was_reset: bool,
    /// What its OS reported when the connection failed.
    pub(crate) error: Option<io::ErrorKind>,
}

impl PeerEnd {
    pub(crate) fn new(script: Peer) -> PeerEnd {
        let mut end = PeerEnd {
            received: BytesMut::new(),
            sent: BytesMut::new(),
            to_send: VecDeque::new(),
            to_send_len: 0,
            eof: false,
            fin_wanted: script.after_greeting == AfterGreeting::Close,
            reset_wanted: script.after_greeting == AfterGreeting::Reset,
            paused: !script.read,
            was_reset: false,
            error: None,
            script,
        };
        let greeting = end.script.greeting.clone();
        end.queue(greeting);
        end
    }

    pub(crate) fn queue(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.to_send_len += data.len();
            self.to_send.push_back(data);
        }
    }
}

impl Sim {
    /// What the scripted peer of `conn` has received so far.
    pub fn peer_received(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns
            .get(conn.0 as usize)?
            .peer()
            .map(|p| &p.received[..])
    }

    /// How many bytes reached the kernel of the scripted peer of `conn` that it has not read
    /// (it is paused, or does not read at all).
    pub fn peer_unread(&self, conn: ConnId) -> Option<usize> {
        self.conns.get(conn.0 as usize)?.peer_unread()
    }

    /// What the scripted peer of `conn` has sent so far (handed to the network).
    pub fn peer_sent(&self, conn: ConnId) -> Option<&[u8]> {
        self.conns.get(conn.0 as usize)?.peer().map(|p| &p.sent[..])
    }

    /// The scripted peer of `conn` sends `data` (an error once it has sent FIN or reset).
    pub fn peer_send(&mut self, conn: ConnId, data: impl Into<Bytes>) -> Result<(), SimError> {
        self.peer_mut(conn)?;
        if self.conns[conn.0 as usize].peer_done_sending() {
            return Err(SimError::PeerDoneSending(conn));
        }
        self.peer_mut(conn)?.queue(data.into());
        self.peer_pump(conn);
        Ok(())
    }

    /// The scripted peer of `conn` sends FIN once everything queued is sent.
    pub fn peer_close(&mut self, conn: ConnId) -> Result<(), SimError> {
        self.peer_mut(conn)?.fin_wanted = true;
        self.peer_pump(conn);
        Ok(())
    }

    /// The scripted peer of `conn` resets the connection (after what it has sent already).
    pub fn peer_reset(&mut self, conn: ConnId) -> Result<(), SimError> {
        let p = self.peer_mut(conn)?;
        p.to_send.clear();
        p.to_send_len = 0;
        p.reset_wanted = true;
        self.peer_pump(conn);
        Ok(())
    }

    /// The scripted peer of `conn` stops (`true`) or starts reading.
    pub fn peer_pause(&mut self, conn: ConnId, paused: bool) -> Result<(), SimError> {
        self.peer_mut(conn)?.paused = paused;
        self.peer_pump(conn);
        Ok(())
    }

    pub(super) fn peer_mut(&mut self, conn: ConnId) -> Result<&mut PeerEnd, SimError> {
        self.conn_mut(conn)?
            .peer_mut()
            .ok_or(SimError::NotAPeer(conn))
    }

    /// Runs the scripted peer of `conn`: read, echo, send, FIN or reset.
    pub(super) fn peer_pump(&mut self, conn: ConnId) {
        let c = self.conn(conn);
        let Some(p) = c.peer_side() else { return };
        if c.ends[p].state != EndState::Open {
            // Reset: its app still reads what reached its kernel first, as Linux's recv
            // returns queued data before ECONNRESET.
            let incoming = &mut c.pipes[1 - p];
            if let EndKind::Peer(pe) = &mut c.ends[p].kind {
                if pe.was_reset && !pe.paused {
                    incoming.unread_len = 0;
                    for chunk in incoming.unread.drain(..) {
                        pe.received.extend_from_slice(&chunk);
                    }
                }
            }
            return;
        }
        let send_buffer = c.link.send_buffer;
        let [e0, e1] = &mut c.ends;
        let end = if p == 0 { e0 } else { e1 };
        let EndKind::Peer(pe) = &mut end.kind else {
            return;
        };
        let incoming = &mut c.pipes[1 - p];
        let may_read = !pe.paused && (!pe.script.echo || pe.to_send_len < send_buffer);
        let freed = may_read && incoming.unread_len > 0;
        if freed {
            incoming.unread_len = 0;
            for chunk in incoming.unread.drain(..) {
                pe.received.extend_from_slice(&chunk);
                if pe.script.echo {
                    pe.queue(chunk);
                }
            }
        }
        if incoming.fin && incoming.unread_len == 0 && !pe.eof {
            pe.eof = true;
            pe.fin_wanted |= pe.script.close_on_eof;
        }
        // Send what fits (nothing after FIN: an echo of a peer that closed early is dropped).
        if end.fin_sent {
            pe.to_send.clear();
            pe.to_send_len = 0;
        }
        let mut out = Vec::new();
        let mut space = send_buffer.saturating_sub(c.pipes[p].queued());
        while space > 0 {
            let Some(front) = pe.to_send.front_mut() else {
                break;
            };
            let chunk = front.split_to(front.len().min(space));
            if front.is_empty() {
                pe.to_send.pop_front();
            }
            pe.to_send_len -= chunk.len();
            space -= chunk.len();
            pe.sent.extend_from_slice(&chunk);
            out.push(chunk);
        }
        let drained = pe.to_send.is_empty();
        let (reset, fin) = (drained && pe.reset_wanted, drained && pe.fin_wanted);
        let done_reading = pe.eof;
        for chunk in out {
            self.conn(conn).pipes[p].push(chunk);
        }
        self.flush(conn, p);
        let c = self.conn(conn);
        if reset {
            self.rto_stop(conn, p);
            let c = self.conn(conn);
            c.ends[p].state = EndState::Closed;
            c.ends[p].rst_sent = true;
            c.faulted = true;
            self.note(None, format!("{conn}: peer resets"));
            self.discard_unsent(conn, p);
            self.send_segment(conn, p, Segment::Rst);
            return;
        }
        if fin && !std::mem::replace(&mut c.ends[p].fin_sent, true) {
            self.flush(conn, p);
        }
        let c = self.conn(conn);
        if c.ends[p].fin_sent && done_reading {
            c.ends[p].state = EndState::Closed;
            self.rto_stop(conn, p);
        }
        if freed {
            self.pump(conn, 1 - p);
        }
    }
}
