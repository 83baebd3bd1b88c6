//! Single values, encoded and decoded: varints, byte strings, options, addresses, durations,
//! socket ids, a socket's `binaryType` and DNS query type.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use bytes::Bytes;

use super::{Decoder, FormatError};
use crate::id::{ServerId, SocketId, TcpId, UdpId};
use crate::payload::BinaryType;
use crate::tcp::DnsQueryType;

#[inline]
pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
pub(super) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
pub(super) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(super) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub(super) fn put_opt<T>(out: &mut Vec<u8>, v: Option<T>, f: impl FnOnce(&mut Vec<u8>, T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            f(out, v);
        }
    }
}

pub(super) fn put_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            out.push(4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(6);
            out.extend_from_slice(&ip.octets());
        }
    }
}

pub(super) fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            out.push(4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
        }
        SocketAddr::V6(a) => {
            out.push(6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_le_bytes());
            put_varint(out, u64::from(a.flowinfo()));
            put_varint(out, u64::from(a.scope_id()));
        }
    }
}

pub(super) fn put_duration(out: &mut Vec<u8>, d: Duration) {
    put_varint(out, u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
}

pub(super) fn put_id(out: &mut Vec<u8>, index: usize, serial: u64) {
    put_varint(out, index as u64);
    put_varint(out, serial);
}

/// A socket id of any kind: the kind (1 TCP, 2 server, 3 UDP, as in the digest), then the id.
pub(super) fn put_socket_id(out: &mut Vec<u8>, id: SocketId) {
    let (kind, index, serial) = match id {
        SocketId::TcpId(i) => (1, i.index, i.serial),
        SocketId::ServerId(i) => (2, i.index, i.serial),
        SocketId::UdpId(i) => (3, i.index, i.serial),
    };
    out.push(kind);
    put_id(out, index, serial);
}

pub(super) fn tcp_call(out: &mut Vec<u8>, code: u8, id: TcpId) {
    out.push(code);
    put_id(out, id.index, id.serial);
}

pub(super) fn server_call(out: &mut Vec<u8>, code: u8, id: ServerId) {
    out.push(code);
    put_id(out, id.index, id.serial);
}

pub(super) fn udp_call(out: &mut Vec<u8>, code: u8, id: UdpId) {
    out.push(code);
    put_id(out, id.index, id.serial);
}

pub(super) fn binary_code(b: BinaryType) -> u8 {
    match b {
        BinaryType::String => 0,
        BinaryType::ArrayBuffer => 1,
    }
}

pub(super) fn put_dns_query_type(out: &mut Vec<u8>, q: DnsQueryType) {
    out.push(match q {
        DnsQueryType::Ipv4 => 4,
        DnsQueryType::Ipv6 => 6,
    })
}

impl Decoder {
    pub(super) fn u8(&mut self, reading: &'static str) -> Result<u8, FormatError> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| self.truncated(reading))?;
        self.pos += 1;
        Ok(b)
    }

    pub(super) fn array<const N: usize>(
        &mut self,
        reading: &'static str,
    ) -> Result<[u8; N], FormatError> {
        let end = self.pos.checked_add(N).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| self.truncated(reading))?;
        let mut a = [0; N];
        a.copy_from_slice(&self.data[self.pos..end]);
        self.pos = end;
        Ok(a)
    }

    pub(super) fn varint(&mut self, reading: &'static str) -> Result<u64, FormatError> {
        let start = self.pos;
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = self.u8(reading)?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(self.invalid(start, format!("{reading}: a number above 2^64")));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.invalid(start, format!("{reading}: a number above 2^64")))
    }

    pub(super) fn usize(&mut self, reading: &'static str) -> Result<usize, FormatError> {
        let at = self.pos;
        let v = self.varint(reading)?;
        usize::try_from(v).map_err(|_| self.invalid(at, format!("{reading}: {v} is too large")))
    }

    pub(super) fn u32(&mut self, reading: &'static str) -> Result<u32, FormatError> {
        let at = self.pos;
        let v = self.varint(reading)?;
        u32::try_from(v).map_err(|_| self.invalid(at, format!("{reading}: {v} is too large")))
    }

    pub(super) fn bool(&mut self, reading: &'static str) -> Result<bool, FormatError> {
        let at = self.pos;
        match self.u8(reading)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.invalid(at, format!("{reading}: {b} is not a boolean"))),
        }
    }

    pub(super) fn slice(
        &mut self,
        len: usize,
        reading: &'static str,
    ) -> Result<Bytes, FormatError> {
        let end = self.pos.checked_add(len).filter(|&e| e <= self.data.len());
        let end = end.ok_or_else(|| self.truncated(reading))?;
        let b = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(b)
    }

    pub(super) fn string(&mut self, reading: &'static str) -> Result<String, FormatError> {
        let len = self.usize(reading)?;
        let at = self.pos;
        let b = self.slice(len, reading)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.invalid(at, format!("{reading}: not UTF-8")))
    }

    pub(super) fn blob(&mut self, reading: &'static str) -> Result<Vec<u8>, FormatError> {
        let len = self.usize(reading)?;
        Ok(self.slice(len, reading)?.to_vec())
    }

    pub(super) fn opt<T>(
        &mut self,
        reading: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, FormatError>,
    ) -> Result<Option<T>, FormatError> {
        match self.bool(reading)? {
            false => Ok(None),
            true => f(self).map(Some),
        }
    }

    pub(super) fn port(&mut self, reading: &'static str) -> Result<u16, FormatError> {
        self.array::<2>(reading).map(u16::from_le_bytes)
    }

    pub(super) fn ip(&mut self) -> Result<IpAddr, FormatError> {
        let at = self.pos;
        match self.u8("an address")? {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.array::<4>("an address")?))),
            6 => Ok(IpAddr::V6(Ipv6Addr::from(self.array::<16>("an address")?))),
            f => Err(self.invalid(at, format!("address family {f}"))),
        }
    }

    pub(super) fn addr(&mut self) -> Result<SocketAddr, FormatError> {
        let at = self.pos;
        match self.u8("an address")? {
            4 => {
                let ip = Ipv4Addr::from(self.array::<4>("an address")?);
                let port = self.port("an address")?;
                Ok(SocketAddr::V4(SocketAddrV4::new(ip, port)))
            }
            6 => {
                let ip = Ipv6Addr::from(self.array::<16>("an address")?);
                let port = self.port("an address")?;
                let flow = self.u32("an address")?;
                let scope = self.u32("an address")?;
                Ok(SocketAddr::V6(SocketAddrV6::new(ip, port, flow, scope)))
            }
            f => Err(self.invalid(at, format!("address family {f}"))),
        }
    }

    pub(super) fn duration(&mut self, reading: &'static str) -> Result<Duration, FormatError> {
        self.varint(reading).map(Duration::from_nanos)
    }

    pub(super) fn raw_id(&mut self, reading: &'static str) -> Result<(usize, u64), FormatError> {
        Ok((self.usize(reading)?, self.varint(reading)?))
    }

    pub(super) fn tcp(&mut self) -> Result<TcpId, FormatError> {
        let (index, serial) = self.raw_id("a socket id")?;
        Ok(TcpId { index, serial })
    }

    pub(super) fn server(&mut self) -> Result<ServerId, FormatError> {
        let (index, serial) = self.raw_id("a server id")?;
        Ok(ServerId { index, serial })
    }

    pub(super) fn udp(&mut self) -> Result<UdpId, FormatError> {
        let (index, serial) = self.raw_id("a UDP socket id")?;
        Ok(UdpId { index, serial })
    }

    pub(super) fn socket_id(&mut self) -> Result<SocketId, FormatError> {
        let at = self.pos;
        Ok(match self.u8("a socket id's kind")? {
            1 => self.tcp()?.into(),
            2 => self.server()?.into(),
            3 => self.udp()?.into(),
            k => return Err(self.invalid(at, format!("socket id kind {k}"))),
        })
    }

    pub(super) fn dns_query_type(
        &mut self,
        reading: &'static str,
    ) -> Result<DnsQueryType, FormatError> {
        let at = self.pos;
        match self.u8(reading)? {
            4 => Ok(DnsQueryType::Ipv4),
            6 => Ok(DnsQueryType::Ipv6),
            q => Err(self.invalid(at, format!("DNS query type {q}"))),
        }
    }

    pub(super) fn binary_type(&mut self) -> Result<BinaryType, FormatError> {
        let at = self.pos;
        match self.u8("a binaryType")? {
            0 => Ok(BinaryType::String),
            1 => Ok(BinaryType::ArrayBuffer),
            b => Err(self.invalid(at, format!("binaryType {b}"))),
        }
    }
}
