//! The graceful close ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close): the `Closing`
//! phase's state and what the I/O layer said of our bytes' delivery.

use std::time::{Duration, Instant};

use crate::core::Ctx;

use super::{Phase, TcpSocket};

/// A graceful close ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket) close): flush, `Drain`, close_notify, FIN, then wait until
/// the peer's TCP has acknowledged everything
/// ([`Action::QueryUnacked`](crate::io::Action::QueryUnacked)) and the peer's FIN came, reading
/// and discarding meanwhile.
#[derive(Debug)]
pub(super) struct Closing {
    /// Until everything is acknowledged: the close timeout (`NetworkTimeoutError`). After:
    /// the linger, waiting for the peer's FIN (release without error).
    pub(super) deadline: Instant,
    pub(super) delivery: Delivery,
    /// An [`Action::QueryUnacked`](crate::io::Action::QueryUnacked) is out and its answer not
    /// yet in.
    pub(super) asking: bool,
    /// When to ask again (the answer was not 0).
    pub(super) ask_at: Option<Instant>,
    /// The wait before the next query after this one; doubles up to
    /// [`Config::unacked_poll_interval`](crate::Config::unacked_poll_interval).
    pub(super) backoff: Duration,
}

/// What the I/O layer has said of our bytes in the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Delivery {
    /// Not known yet (our FIN is not out, or the last answer was not 0).
    Pending,
    /// The peer's TCP acknowledged every byte and our FIN.
    Acknowledged,
    /// The I/O layer cannot tell: only the peer's FIN may end the close without error.
    Unknowable,
}

/// The first wait between two queries of [`Closing`].
const FIRST_UNACKED_POLL: Duration = Duration::from_millis(1);

impl TcpSocket {
    pub(super) fn begin_closing(&mut self, now: Instant, ctx: &Ctx) {
        self.phase = Phase::Closing(Box::new(Closing {
            deadline: now + ctx.config.close_timeout,
            delivery: if ctx.unacked_unknowable {
                Delivery::Unknowable
            } else {
                Delivery::Pending
            },
            asking: false,
            ask_at: None,
            backoff: FIRST_UNACKED_POLL.min(ctx.config.unacked_poll_interval),
        }));
    }
}
