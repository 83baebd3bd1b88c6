//! The option structs of the calls that create sockets (their TLS configs' facts are in
//! [`tls`]).

use std::net::Ipv4Addr;

use super::tls;
use super::values::{binary_code, put_bytes, put_dns_query_type, put_duration, put_ip};
use super::values::{put_opt, put_varint};
use super::{Decoder, FormatError};
use crate::io::MulticastInterface;
use crate::{ServerOptions, TcpOptions, UdpOptions};

pub(super) fn put_tcp_options(out: &mut Vec<u8>, options: &TcpOptions) {
    let TcpOptions {
        local_address,
        local_port,
        use_secure_transport,
        tls_config,
        binary_type,
        no_delay,
        keep_alive,
        allow_half_open,
        send_buffer_size,
        receive_buffer_size,
        dns_query_type,
    } = options;
    put_opt(out, *local_address, put_ip);
    put_opt(out, *local_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    out.push(u8::from(*use_secure_transport));
    tls::put_client(out, tls_config.as_deref());
    out.push(binary_code(*binary_type));
    out.push(u8::from(*no_delay));
    put_opt(out, *keep_alive, put_duration);
    out.push(u8::from(*allow_half_open));
    put_buffer_sizes(out, *send_buffer_size, *receive_buffer_size);
    put_opt(out, *dns_query_type, put_dns_query_type);
}

pub(super) fn put_buffer_sizes(out: &mut Vec<u8>, send: Option<u32>, receive: Option<u32>) {
    put_opt(out, send, |o, n| put_varint(o, u64::from(n)));
    put_opt(out, receive, |o, n| put_varint(o, u64::from(n)));
}

pub(super) fn put_interface(out: &mut Vec<u8>, interface: MulticastInterface) {
    match interface {
        MulticastInterface::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        MulticastInterface::V6(index) => {
            out.push(6);
            put_varint(out, u64::from(index));
        }
    }
}

pub(super) fn put_server_options(out: &mut Vec<u8>, options: &ServerOptions) {
    let ServerOptions {
        local_address,
        local_port,
        binary_type,
        backlog,
        address_reuse,
        max_connections,
        use_secure_transport,
        tls_config,
        ipv6_only,
        send_buffer_size,
        receive_buffer_size,
    } = options;
    put_opt(out, *local_address, put_ip);
    put_opt(out, *local_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    out.push(binary_code(*binary_type));
    put_varint(out, u64::from(*backlog));
    out.push(u8::from(*address_reuse));
    put_opt(out, *max_connections, |o, m| put_varint(o, u64::from(m)));
    out.push(u8::from(*use_secure_transport));
    tls::put_server(out, tls_config.as_deref());
    out.push(u8::from(*ipv6_only));
    put_buffer_sizes(out, *send_buffer_size, *receive_buffer_size);
}

pub(super) fn put_udp_options(out: &mut Vec<u8>, options: &UdpOptions) {
    let UdpOptions {
        local_address,
        local_port,
        remote_address,
        remote_host,
        remote_port,
        address_reuse,
        loopback,
        ipv6_only,
        broadcast,
        multicast_time_to_live,
        multicast_interface,
        send_buffer_size,
        receive_buffer_size,
        dns_query_type,
    } = options;
    put_opt(out, *local_address, put_ip);
    put_opt(out, *local_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    put_opt(out, *remote_address, put_ip);
    put_opt(out, remote_host.as_deref(), |o, h| {
        put_bytes(o, h.as_bytes())
    });
    put_opt(out, *remote_port, |o, p| {
        o.extend_from_slice(&p.to_le_bytes())
    });
    out.push(u8::from(*address_reuse));
    out.push(u8::from(*loopback));
    out.push(u8::from(*ipv6_only));
    out.push(u8::from(*broadcast));
    put_opt(out, *multicast_time_to_live, |o, t| o.push(t));
    put_opt(out, *multicast_interface, put_interface);
    put_buffer_sizes(out, *send_buffer_size, *receive_buffer_size);
    put_opt(out, *dns_query_type, put_dns_query_type);
}

impl Decoder {
    pub(super) fn tcp_options(&mut self) -> Result<TcpOptions, FormatError> {
        let r = "TCP options";
        let local_address = self.opt(r, Self::ip)?;
        let local_port = self.opt(r, |d| d.port(r))?;
        let use_secure_transport = self.bool(r)?;
        if let Some(given) = self.given_tls()? {
            self.call_tls = Some(given);
        }
        Ok(TcpOptions {
            local_address,
            local_port,
            use_secure_transport,
            tls_config: None,
            binary_type: self.binary_type()?,
            no_delay: self.bool(r)?,
            keep_alive: self.opt(r, |d| d.duration(r))?,
            allow_half_open: self.bool(r)?,
            send_buffer_size: self.opt(r, |d| d.u32(r))?,
            receive_buffer_size: self.opt(r, |d| d.u32(r))?,
            dns_query_type: self.opt(r, |d| d.dns_query_type(r))?,
        })
    }

    pub(super) fn server_options(&mut self) -> Result<ServerOptions, FormatError> {
        let r = "server options";
        let local_address = self.opt(r, Self::ip)?;
        let local_port = self.opt(r, |d| d.port(r))?;
        let binary_type = self.binary_type()?;
        let backlog = self.u32(r)?;
        let address_reuse = self.bool(r)?;
        let max_connections = self.opt(r, |d| d.u32(r))?;
        let use_secure_transport = self.bool(r)?;
        if let Some(given) = self.given_tls()? {
            self.call_tls = Some(given);
        }
        Ok(ServerOptions {
            local_address,
            local_port,
            binary_type,
            backlog,
            address_reuse,
            max_connections,
            use_secure_transport,
            tls_config: None,
            ipv6_only: self.bool(r)?,
            send_buffer_size: self.opt(r, |d| d.u32(r))?,
            receive_buffer_size: self.opt(r, |d| d.u32(r))?,
        })
    }

    pub(super) fn udp_options(&mut self) -> Result<UdpOptions, FormatError> {
        let r = "UDP options";
        Ok(UdpOptions {
            local_address: self.opt(r, Self::ip)?,
            local_port: self.opt(r, |d| d.port(r))?,
            remote_address: self.opt(r, Self::ip)?,
            remote_host: self.opt(r, |d| d.string(r))?,
            remote_port: self.opt(r, |d| d.port(r))?,
            address_reuse: self.bool(r)?,
            loopback: self.bool(r)?,
            ipv6_only: self.bool(r)?,
            broadcast: self.bool(r)?,
            multicast_time_to_live: self.opt(r, |d| d.u8(r))?,
            multicast_interface: self.opt(r, |d| {
                let at = d.pos;
                match d.u8(r)? {
                    4 => Ok(MulticastInterface::V4(Ipv4Addr::from(d.array::<4>(r)?))),
                    6 => Ok(MulticastInterface::V6(d.u32(r)?)),
                    f => Err(d.invalid(at, format!("interface family {f}"))),
                }
            })?,
            send_buffer_size: self.opt(r, |d| d.u32(r))?,
            receive_buffer_size: self.opt(r, |d| d.u32(r))?,
            dns_query_type: self.opt(r, |d| d.dns_query_type(r))?,
        })
    }
}
