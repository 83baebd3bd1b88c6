//! Inputs (what the I/O layer reported), accepted connections, and what the core said of
//! them.

use std::net::SocketAddr;
use std::time::Instant;

use super::errors::{put_error_kind, put_input_result};
use super::values::{put_addr, put_id, put_ip, put_opt, put_socket_id, put_varint};
use super::values::{server_call, tcp_call, udp_call};
use super::{Decoder, Encoder, FormatError, Record, TAG_ACCEPTED, TAG_INPUT};
use crate::error::InputError;
use crate::id::ServerId;
use crate::io::{Accepted, Input, ResolveError};

impl Encoder {
    /// An input at `now`: write it before handing it over, then
    /// [`input_result`](Self::input_result).
    pub fn input(&mut self, now: Instant, input: &Input) {
        self.out.push(TAG_INPUT);
        self.steps += 1;
        self.time(now);
        let out = &mut self.out;
        match input {
            Input::Resolved { id, result } => {
                out.push(0);
                put_socket_id(out, *id);
                match result {
                    Ok(ips) => {
                        out.push(0);
                        put_varint(out, ips.len() as u64);
                        for ip in ips {
                            put_ip(out, *ip);
                        }
                    }
                    Err(ResolveError::NotFound) => out.push(1),
                    Err(ResolveError::Temporary) => out.push(2),
                    Err(ResolveError::Other) => out.push(3),
                }
            }
            Input::Connected { id, attempt, local } => {
                tcp_call(out, 1, *id);
                out.push(*attempt);
                put_addr(out, *local);
            }
            Input::ConnectFailed { id, attempt, error } => {
                tcp_call(out, 2, *id);
                out.push(*attempt);
                put_error_kind(out, *error);
            }
            Input::Received { id, data } => {
                tcp_call(out, 3, *id);
                self.payload(data);
            }
            Input::Eof { id } => tcp_call(out, 4, *id),
            Input::Written { id, len } => {
                tcp_call(out, 5, *id);
                put_varint(out, *len as u64);
            }
            Input::Unacked { id, bytes } => {
                tcp_call(out, 6, *id);
                put_opt(out, *bytes, |o, b| put_varint(o, b as u64));
            }
            Input::Failed { id, error } => {
                tcp_call(out, 7, *id);
                put_error_kind(out, *error);
            }
            Input::Listening { id, local } => {
                server_call(out, 8, *id);
                put_addr(out, *local);
            }
            Input::ListenFailed { id, error } => {
                server_call(out, 9, *id);
                put_error_kind(out, *error);
            }
            Input::Bound { id, local } => {
                udp_call(out, 10, *id);
                put_addr(out, *local);
            }
            Input::BindFailed { id, error } => {
                udp_call(out, 11, *id);
                put_error_kind(out, *error);
            }
            // A count of 1 as version 2 wrote every `Sent`.
            Input::Sent { id, count: 1 } => udp_call(out, 12, *id),
            Input::Sent { id, count } => {
                udp_call(out, 16, *id);
                put_varint(out, *count as u64);
            }
            Input::SendFailed { id, error } => {
                udp_call(out, 13, *id);
                put_error_kind(out, *error);
            }
            Input::Datagram { id, data, remote } => {
                udp_call(out, 14, *id);
                put_addr(out, *remote);
                self.payload(data);
            }
            Input::Datagrams {
                id,
                data,
                segment_size,
                remote,
            } => {
                udp_call(out, 17, *id);
                put_addr(out, *remote);
                put_varint(out, *segment_size as u64);
                self.payload(data);
            }
            Input::JoinFailed {
                id,
                group,
                source,
                error,
            } => {
                udp_call(out, 15, *id);
                put_ip(out, *group);
                put_opt(out, *source, put_ip);
                put_error_kind(out, *error);
            }
        }
    }

    /// What the core said of the input written by [`input`](Self::input).
    pub fn input_result(&mut self, result: &Result<(), InputError>) {
        put_input_result(&mut self.out, result.as_ref().err());
    }

    /// A connection accepted on `server` at `now`, and what the core made of it.
    pub fn accepted(
        &mut self,
        now: Instant,
        server: ServerId,
        local: SocketAddr,
        remote: SocketAddr,
        result: &Result<Accepted, InputError>,
    ) {
        self.out.push(TAG_ACCEPTED);
        self.steps += 1;
        self.time(now);
        let out = &mut self.out;
        put_id(out, server.index, server.serial);
        put_addr(out, local);
        put_addr(out, remote);
        match result {
            Ok(Accepted::Socket(id)) => {
                out.push(0);
                put_id(out, id.index, id.serial);
            }
            Ok(Accepted::Refused) => out.push(1),
            Err(e) => {
                out.push(2);
                put_input_result(out, Some(e));
            }
        }
    }
}

impl Decoder {
    pub(super) fn input(&mut self) -> Result<Input, FormatError> {
        let at = self.pos;
        let input = match self.u8("an input")? {
            0 => {
                let id = self.socket_id()?;
                let r_at = self.pos;
                let result = match self.u8("a resolution")? {
                    0 => {
                        let n = self.usize("a resolution")?;
                        // Each address takes at least 5 bytes: a corrupt count fails here,
                        // before any allocation.
                        if n > (self.data.len() - self.pos) / 5 {
                            return Err(self.truncated("a resolution"));
                        }
                        let mut ips = Vec::with_capacity(n);
                        for _ in 0..n {
                            ips.push(self.ip()?);
                        }
                        Ok(ips)
                    }
                    1 => Err(ResolveError::NotFound),
                    2 => Err(ResolveError::Temporary),
                    3 => Err(ResolveError::Other),
                    r => return Err(self.invalid(r_at, format!("resolver result {r}"))),
                };
                Input::Resolved { id, result }
            }
            1 => Input::Connected {
                id: self.tcp()?,
                attempt: self.u8("an attempt")?,
                local: self.addr()?,
            },
            2 => Input::ConnectFailed {
                id: self.tcp()?,
                attempt: self.u8("an attempt")?,
                error: self.error_kind()?,
            },
            3 => Input::Received {
                id: self.tcp()?,
                data: self.payload("bytes read")?,
            },
            4 => Input::Eof { id: self.tcp()? },
            5 => Input::Written {
                id: self.tcp()?,
                len: self.usize("a written length")?,
            },
            6 => Input::Unacked {
                id: self.tcp()?,
                bytes: self.opt("an unacked count", |d| d.usize("an unacked count"))?,
            },
            7 => Input::Failed {
                id: self.tcp()?,
                error: self.error_kind()?,
            },
            8 => Input::Listening {
                id: self.server()?,
                local: self.addr()?,
            },
            9 => Input::ListenFailed {
                id: self.server()?,
                error: self.error_kind()?,
            },
            10 => Input::Bound {
                id: self.udp()?,
                local: self.addr()?,
            },
            11 => Input::BindFailed {
                id: self.udp()?,
                error: self.error_kind()?,
            },
            12 => Input::Sent {
                id: self.udp()?,
                count: 1,
            },
            16 => Input::Sent {
                id: self.udp()?,
                count: self.usize("a count of datagrams sent")?,
            },
            17 => {
                let id = self.udp()?;
                let remote = self.addr()?;
                let segment_size = self.usize("a segment size")?;
                let data = self.payload("coalesced datagrams")?;
                Input::Datagrams {
                    id,
                    data,
                    segment_size,
                    remote,
                }
            }
            13 => Input::SendFailed {
                id: self.udp()?,
                error: self.error_kind()?,
            },
            14 => {
                let id = self.udp()?;
                let remote = self.addr()?;
                let data = self.payload("a datagram")?;
                Input::Datagram { id, data, remote }
            }
            15 => Input::JoinFailed {
                id: self.udp()?,
                group: self.ip()?,
                source: self.opt("a source", Self::ip)?,
                error: self.error_kind()?,
            },
            i => return Err(self.invalid(at, format!("unknown input {i}"))),
        };
        Ok(input)
    }

    /// An accepted connection's record, after its tag.
    pub(super) fn accepted(&mut self) -> Result<Record, FormatError> {
        let at = self.time()?;
        let server = self.server()?;
        let local = self.addr()?;
        let remote = self.addr()?;
        let code_at = self.pos;
        let result = match self.u8("an accept's result")? {
            0 => Ok(Accepted::Socket(self.tcp()?)),
            1 => Ok(Accepted::Refused),
            2 => match self.input_result()? {
                Err(e) => Err(e),
                Ok(()) => return Err(self.invalid(code_at, "an accept error that is none")),
            },
            c => return Err(self.invalid(code_at, format!("accept result {c}"))),
        };
        Ok(Record::Accepted {
            at,
            server,
            local,
            remote,
            result,
        })
    }
}
