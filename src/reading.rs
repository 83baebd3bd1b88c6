//! Counted `suspend`/`resume` and the read interest last told to the I/O layer, for servers
//! (accepting) and UDP sockets (receiving) ([BEHAVIOUR §2](crate::behaviour#2-tcpserversocket), [§3](crate::behaviour#3-udpsocket): "counted, as for TCP").

use crate::core::Ctx;
use crate::error::ApiError;
use crate::id::SocketId;
use crate::io::Action;

#[derive(Debug, Default)]
pub(crate) struct Reading {
    /// `suspend` calls not yet matched by a `resume`.
    suspended: u32,
    /// What the I/O layer was last told by `SetReading`.
    enabled: bool,
}

impl Reading {
    /// `suspend()`: one more.
    pub(crate) fn suspend(&mut self) {
        self.suspended = self.suspended.saturating_add(1);
    }

    /// `resume()`: one less, `InvalidStateError` at 0. `Ok(true)` when it ended the suspension.
    pub(crate) fn resume(&mut self) -> Result<bool, ApiError> {
        if self.suspended == 0 {
            return Err(ApiError::state("resume() without a matching suspend()"));
        }
        self.suspended -= 1;
        Ok(self.suspended == 0)
    }

    pub(crate) fn count(&self) -> u32 {
        self.suspended
    }

    pub(crate) fn is_suspended(&self) -> bool {
        self.suspended > 0
    }

    /// Tells the I/O layer to read exactly while `open` and not suspended, if that changed.
    #[inline]
    pub(crate) fn update(&mut self, id: SocketId, open: bool, ctx: &mut Ctx) {
        let want = open && self.suspended == 0;
        if want != self.enabled {
            self.enabled = want;
            ctx.action(Action::SetReading { id, enabled: want });
        }
    }

    /// The OS socket was released: there is nothing more to tell.
    pub(crate) fn released(&mut self) {
        self.enabled = false;
    }
}
