//! Scripted remote endpoints: what answers a connection to a [`Sim::listen`](super::Sim::listen)
//! address.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

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

/// A scripted remote endpoint, listening on an address of a simulated host: it accepts every
/// connection and runs this script on each. Build one with [`Peer::echo`], [`Peer::sink`],
/// [`Peer::send`], [`Peer::stall`] and adjust the fields; drive a connection by hand with
/// [`Sim::peer_send`](super::Sim::peer_send), [`Sim::peer_close`](super::Sim::peer_close) and
/// [`Sim::peer_reset`](super::Sim::peer_reset).
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
