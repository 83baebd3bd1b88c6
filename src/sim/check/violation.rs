//! [`Violation`]: a broken invariant the checker reports.

use std::fmt;

use crate::SocketId;

/// A broken invariant: which socket (if one) and what happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The socket concerned, if any.
    pub socket: Option<SocketId>,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.socket {
            Some(id) => write!(f, "{id}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}
