//! App calls and what they returned.

use std::time::Instant;

use super::errors::dom_code;
use super::options::{put_server_options, put_tcp_options, put_udp_options};
use super::values::{
    put_addr, put_bytes, put_id, put_ip, put_opt, server_call, tcp_call, udp_call,
};
use super::{Decoder, Encoder, FormatError, TAG_CALL};
use crate::call::{Call, Returned};
use crate::error::ApiError;

impl Encoder {
    /// An app call at `now`: write it before running it, then [`call_result`](Self::call_result).
    pub fn call(&mut self, now: Instant, call: &Call) {
        self.out.push(TAG_CALL);
        self.steps += 1;
        self.time(now);
        let out = &mut self.out;
        match call {
            Call::TcpOpen {
                host,
                port,
                options,
            } => {
                out.push(0);
                put_bytes(out, host.as_bytes());
                out.extend_from_slice(&port.to_le_bytes());
                put_tcp_options(out, options);
            }
            Call::TcpSend { id, data } => {
                out.push(1);
                put_id(out, id.index, id.serial);
                self.payload(data);
            }
            Call::TcpClose { id } => tcp_call(out, 2, *id),
            Call::TcpCloseImmediately { id } => tcp_call(out, 3, *id),
            Call::TcpHalfclose { id } => tcp_call(out, 4, *id),
            Call::TcpSuspend { id } => tcp_call(out, 5, *id),
            Call::TcpResume { id } => tcp_call(out, 6, *id),
            Call::TcpUpgradeToSecure { id } => tcp_call(out, 7, *id),
            Call::ServerListen { options } => {
                out.push(8);
                put_server_options(out, options);
            }
            Call::ServerClose { id } => server_call(out, 9, *id),
            Call::ServerSuspend { id } => server_call(out, 10, *id),
            Call::ServerResume { id } => server_call(out, 11, *id),
            Call::UdpOpen { options } => {
                out.push(12);
                put_udp_options(out, options);
            }
            Call::UdpSend { id, data, to } => {
                out.push(13);
                put_id(out, id.index, id.serial);
                put_opt(out, *to, put_addr);
                self.payload(data);
            }
            Call::UdpJoin { id, group } => {
                udp_call(out, 14, *id);
                put_ip(out, *group);
            }
            Call::UdpLeave { id, group } => {
                udp_call(out, 15, *id);
                put_ip(out, *group);
            }
            Call::UdpAddSource { id, source, group } => {
                udp_call(out, 19, *id);
                put_ip(out, *source);
                put_ip(out, *group);
            }
            Call::UdpDropSource { id, source, group } => {
                udp_call(out, 20, *id);
                put_ip(out, *source);
                put_ip(out, *group);
            }
            Call::UdpSuspend { id } => udp_call(out, 16, *id),
            Call::UdpResume { id } => udp_call(out, 17, *id),
            Call::UdpClose { id } => udp_call(out, 18, *id),
        }
    }

    /// What the call written by [`call`](Self::call) returned.
    pub fn call_result(&mut self, result: &Result<Returned, ApiError>) {
        let out = &mut self.out;
        match result {
            Ok(Returned::Done) => out.push(0),
            Ok(Returned::Sent(false)) => out.push(1),
            Ok(Returned::Sent(true)) => out.push(2),
            Ok(Returned::Opened(id)) => {
                out.push(3);
                put_id(out, id.index, id.serial);
            }
            Ok(Returned::Listening(id)) => {
                out.push(4);
                put_id(out, id.index, id.serial);
            }
            Ok(Returned::Bound(id)) => {
                out.push(5);
                put_id(out, id.index, id.serial);
            }
            Err(e) => {
                out.push(6);
                out.push(dom_code(e.exception()));
                put_bytes(out, e.message().as_bytes());
            }
        }
    }
}

impl Decoder {
    pub(super) fn call(&mut self) -> Result<Call, FormatError> {
        let at = self.pos;
        let call = match self.u8("a call")? {
            0 => {
                let host = self.string("a host")?;
                let port = self.port("a port")?;
                let options = self.tcp_options()?;
                Call::TcpOpen {
                    host,
                    port,
                    options,
                }
            }
            1 => Call::TcpSend {
                id: self.tcp()?,
                data: self.payload("a send's data")?,
            },
            2 => Call::TcpClose { id: self.tcp()? },
            3 => Call::TcpCloseImmediately { id: self.tcp()? },
            4 => Call::TcpHalfclose { id: self.tcp()? },
            5 => Call::TcpSuspend { id: self.tcp()? },
            6 => Call::TcpResume { id: self.tcp()? },
            7 => Call::TcpUpgradeToSecure { id: self.tcp()? },
            8 => Call::ServerListen {
                options: self.server_options()?,
            },
            9 => Call::ServerClose { id: self.server()? },
            10 => Call::ServerSuspend { id: self.server()? },
            11 => Call::ServerResume { id: self.server()? },
            12 => Call::UdpOpen {
                options: self.udp_options()?,
            },
            13 => {
                let id = self.udp()?;
                let to = self.opt("a destination", Self::addr)?;
                let data = self.payload("a datagram")?;
                Call::UdpSend { id, data, to }
            }
            14 => Call::UdpJoin {
                id: self.udp()?,
                group: self.ip()?,
            },
            15 => Call::UdpLeave {
                id: self.udp()?,
                group: self.ip()?,
            },
            16 => Call::UdpSuspend { id: self.udp()? },
            17 => Call::UdpResume { id: self.udp()? },
            18 => Call::UdpClose { id: self.udp()? },
            19 => Call::UdpAddSource {
                id: self.udp()?,
                source: self.ip()?,
                group: self.ip()?,
            },
            20 => Call::UdpDropSource {
                id: self.udp()?,
                source: self.ip()?,
                group: self.ip()?,
            },
            c => return Err(self.invalid(at, format!("unknown call {c}"))),
        };
        Ok(call)
    }

    pub(super) fn call_result(&mut self) -> Result<Result<Returned, ApiError>, FormatError> {
        let at = self.pos;
        Ok(Ok(match self.u8("a call's result")? {
            0 => Returned::Done,
            1 => Returned::Sent(false),
            2 => Returned::Sent(true),
            3 => Returned::Opened(self.tcp()?),
            4 => Returned::Listening(self.server()?),
            5 => Returned::Bound(self.udp()?),
            6 => {
                let exception = self.dom_exception()?;
                let message = self.string("an API error")?;
                return Ok(Err(ApiError::new(exception, message)));
            }
            r => return Err(self.invalid(at, format!("call result {r}"))),
        }))
    }
}
