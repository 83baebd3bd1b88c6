//! The checks of an app call's result: a success updates the model, a refusal must have a
//! reason the model agrees with.

use crate::call::{Call, Returned};
use crate::{ApiError, DomException, ReadyState, SocketId};

use super::{CheckedCore, Model, Violation};

impl CheckedCore {
    pub(super) fn called(&mut self, call: &Call, returned: Returned) {
        let hwm = self.core.config().high_water_mark;
        let limit = self.core.config().send_buffer_limit;
        let keep = self.keep;
        match (call, returned) {
            (Call::TcpOpen { options, .. }, Returned::Opened(id)) => {
                if self.models.contains_key(&id) {
                    self.violate(id, "open returned an id already issued".into());
                    return;
                }
                self.models
                    .insert(id, Model::new(options.binary_type, options.allow_half_open));
                self.note_tls(id);
            }
            (Call::TcpSend { id, data }, Returned::Sent(below)) => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "send succeeded on a dead id".into());
                };
                let state = m.state;
                m.queued += data.len();
                let queued = m.queued;
                if !data.is_empty() {
                    m.queue.push_back(data.clone());
                }
                m.sent.push(data, keep);
                if !below {
                    m.armed = true;
                }
                if state != ReadyState::Open {
                    self.violate(*id, format!("send succeeded in state {state:?}"));
                }
                if below != (queued <= hwm) {
                    self.violate(
                        *id,
                        format!("send returned {below} with {queued} bytes buffered (mark {hwm})"),
                    );
                }
                if queued > limit {
                    self.violate(
                        *id,
                        format!("{queued} bytes buffered, above the cap {limit}"),
                    );
                }
            }
            (Call::TcpClose { id } | Call::TcpCloseImmediately { id }, _) => {
                if let Some(m) = self.model(*id) {
                    m.closed_by_app = true;
                }
            }
            (Call::TcpSuspend { id }, _) => {
                if let Some(m) = self.model(*id) {
                    m.suspended += 1;
                }
            }
            (Call::TcpResume { id }, _) => {
                let Some(m) = self.model(*id) else { return };
                if m.suspended == 0 {
                    self.violate(*id, "resume succeeded without a suspend".into());
                } else {
                    m.suspended -= 1;
                }
            }
            (Call::TcpUpgradeToSecure { id }, _) => self.note_tls(*id),
            (Call::TcpHalfclose { .. }, _) => {}
            (Call::ServerListen { .. }, Returned::Listening(id)) => {
                self.open_other(id.into());
            }
            (Call::UdpOpen { .. }, Returned::Bound(id)) => self.open_other(id.into()),
            (Call::UdpSend { id, data, .. }, Returned::Sent(below)) => {
                let Some(o) = self.other(SocketId::from(*id)) else {
                    return self.violate(*id, "send succeeded on a dead id".into());
                };
                let state = o.state;
                o.queued += data.len();
                o.queue.push_back(data.clone());
                o.armed |= !below;
                let queued = o.queued;
                if state != ReadyState::Open {
                    self.violate(*id, format!("send succeeded in state {state:?}"));
                }
                if below != (queued <= hwm) {
                    self.violate(
                        *id,
                        format!("send returned {below} with {queued} bytes buffered (mark {hwm})"),
                    );
                }
            }
            (Call::ServerClose { id }, _) => self.app_closed((*id).into()),
            (Call::UdpClose { id }, _) => self.app_closed((*id).into()),
            (Call::ServerSuspend { id }, _) => self.suspended((*id).into(), true),
            (Call::UdpSuspend { id }, _) => self.suspended((*id).into(), true),
            (Call::ServerResume { id }, _) => self.suspended((*id).into(), false),
            (Call::UdpResume { id }, _) => self.suspended((*id).into(), false),
            (Call::UdpJoin { .. } | Call::UdpLeave { .. }, _) => {}
            (call, returned) => self.violations.push(Violation {
                socket: call.socket(),
                what: format!("{call} returned {returned:?}"),
            }),
        }
    }

    /// A refused call must be refused for a reason the model agrees with.
    pub(super) fn refused_call(&mut self, call: &Call, e: &ApiError) {
        let limit = self.core.config().send_buffer_limit;
        match call {
            Call::TcpSend { id, data } => {
                let Some(m) = self.model(*id) else { return };
                let (state, queued) = (m.state, m.queued);
                let quota = queued.saturating_add(data.len()) > limit;
                let expected = match state {
                    ReadyState::Open if quota => DomException::QuotaExceededError,
                    ReadyState::Open => {
                        return self.violate(*id, format!("send refused while open: {e}"))
                    }
                    _ => DomException::InvalidStateError,
                };
                if e.exception() != expected {
                    self.violate(*id, format!("send refused in {state:?} with {e}"));
                }
            }
            Call::TcpResume { id } if self.model(*id).is_some_and(|m| m.suspended > 0) => {
                self.violate(*id, format!("resume refused while suspended: {e}"));
            }
            Call::TcpClose { id }
            | Call::TcpCloseImmediately { id }
            | Call::TcpHalfclose { id }
            | Call::TcpSuspend { id }
                if self.model(*id).is_some() =>
            {
                self.violate(*id, format!("{call} refused on a live socket: {e}"));
            }
            Call::ServerResume { id }
                if self.other((*id).into()).is_some_and(|o| o.suspended > 0) =>
            {
                self.violate(*id, format!("resume refused while suspended: {e}"));
            }
            Call::UdpResume { id } if self.other((*id).into()).is_some_and(|o| o.suspended > 0) => {
                self.violate(*id, format!("resume refused while suspended: {e}"));
            }
            Call::ServerSuspend { id } | Call::ServerClose { id }
                if self.other((*id).into()).is_some() =>
            {
                self.violate(*id, format!("{call} refused on a live server: {e}"));
            }
            _ => {}
        }
    }
}
