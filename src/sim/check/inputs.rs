//! The checks of an input the core accepted from the I/O layer.

use crate::{Input, ReadyState, SocketId};

use super::CheckedCore;

impl CheckedCore {
    pub(super) fn accepted(&mut self, input: &Input) {
        let answered = match input {
            Input::Sent { id, count } => Some((id, *count)),
            Input::SendFailed { id, .. } => Some((id, 1)),
            _ => None,
        };
        if let Some((id, count)) = answered {
            let Some(o) = self.other((*id).into()) else {
                return self.violate(*id, "a send result accepted for a dead id".into());
            };
            let was = o.in_flight;
            o.in_flight = was.saturating_sub(count);
            for front in o.queue.drain(..count.min(o.queue.len())) {
                o.queued -= front.len();
            }
            if count == 0 || count > was {
                self.violate(
                    *id,
                    format!("a result for {count} datagrams accepted with {was} in flight"),
                );
            }
            return;
        }
        let keep = self.keep;
        let (id, problem) = match input {
            Input::Written { id, len } => {
                let buffered = self.core.tcp(*id).map(|s| s.buffered_amount());
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "Written accepted for a dead id".into());
                };
                let mut problem = match m.in_flight.take() {
                    Some(w) if *len <= w && *len > 0 => None,
                    Some(w) => Some(format!("Written({len}) accepted for a write of {w}")),
                    None => Some(format!("Written({len}) accepted with no write in flight")),
                };
                if m.writes_ciphertext() {
                    // Ciphertext: the plaintext it releases is what `bufferedAmount` lost.
                    let now = buffered.unwrap_or(m.queued);
                    if now > m.queued {
                        problem.get_or_insert(format!(
                            "bufferedAmount grew from {} to {now} on a Written",
                            m.queued
                        ));
                    }
                    let released = m.queued.saturating_sub(now);
                    m.cipher_written += *len as u64;
                    m.plain_released += released as u64;
                    if m.plain_released > m.cipher_written {
                        problem.get_or_insert(format!(
                            "{} plaintext bytes released by {} bytes of ciphertext",
                            m.plain_released, m.cipher_written
                        ));
                    }
                    m.take_written(released);
                } else {
                    m.plain_before = m.plain_before.saturating_sub(*len);
                    m.take_written(*len);
                }
                (*id, problem)
            }
            Input::Received { id, data } => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "Received accepted for a dead id".into());
                };
                let problem = match m.state {
                    // Under TLS: the handshake.
                    ReadyState::Connecting if !m.tls => {
                        Some("data accepted before open".to_string())
                    }
                    _ if m.eof => Some("data accepted after the end of stream".into()),
                    _ => None,
                };
                if !m.closed_by_app {
                    m.fed.push(data, keep);
                }
                (*id, problem)
            }
            Input::Eof { id } | Input::Failed { id, .. } => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "end of stream accepted for a dead id".into());
                };
                let eof = matches!(input, Input::Eof { .. });
                // A failure after the peer's FIN is real (a reset while closing); a second
                // FIN is not.
                let problem = match (m.state, m.eof && eof) {
                    (ReadyState::Connecting, _) if !m.tls => {
                        Some("end of stream accepted before open")
                    }
                    (_, true) => Some("a second end of stream accepted"),
                    _ => None,
                };
                m.stream_end = true;
                m.eof |= eof;
                (*id, problem.map(str::to_owned))
            }
            Input::Resolved {
                id: SocketId::TcpId(id),
                ..
            }
            | Input::Connected { id, .. }
            | Input::ConnectFailed { id, .. } => {
                let Some(m) = self.model(*id) else {
                    return self.violate(*id, "connect input accepted for a dead id".into());
                };
                let problem = (m.state != ReadyState::Connecting)
                    .then(|| format!("{input:?} accepted in state {:?}", m.state));
                (*id, problem)
            }
            _ => return,
        };
        if let Some(problem) = problem {
            self.violate(id, problem);
        }
    }
}
