//! The TLS parts of the format: draw records (what rustls drew: random bytes, key shares,
//! secrets, signatures, the time; and what a replay needs to build its own configs, draw kinds
//! 6-8: a verifier's verdict, a certificate chain presented, a signature scheme chosen) and
//! the facts of a config given to a call (layout in the [module docs](crate::replay)).

use rustls::{ClientConfig, ServerConfig};

use super::values::{put_bytes, put_opt, put_varint};
use super::{Decoder, Encoder, FormatError, TAG_DRAW};
use crate::replay::tls::{Draw, TlsDraws};
use crate::replay::tls_configs::{unit_error, ConfigFacts, GivenTls, Refusal};

/// The byte of an option struct's TLS config: none, given (facts follow).
const TLS_NONE: u8 = 0;
/// A config given, and nothing known of it (recordings from before facts were recorded).
const TLS_BARE: u8 = 1;
const TLS_FACTS: u8 = 2;

impl Encoder {
    /// What the TLS configs of `draws` drew since the last call (random bytes, key shares,
    /// signatures, the time), as draw records: call it after each whole record.
    #[inline]
    pub fn draws(&mut self, draws: &TlsDraws) {
        if !draws.pending() {
            return;
        }
        for draw in draws.take() {
            let out = &mut self.out;
            out.push(TAG_DRAW);
            match draw {
                Draw::Random(b) => {
                    out.push(0);
                    put_bytes(out, &b);
                }
                Draw::KeyShare { group, public } => {
                    out.push(1);
                    out.extend_from_slice(&group.to_le_bytes());
                    put_bytes(out, &public);
                }
                Draw::Hybrid { group, public } => {
                    out.push(5);
                    out.extend_from_slice(&group.to_le_bytes());
                    put_bytes(out, &public);
                }
                Draw::Secret { peer, secret } => {
                    out.push(2);
                    put_bytes(out, &peer);
                    put_bytes(out, &secret);
                }
                Draw::Signature(b) => {
                    out.push(3);
                    put_bytes(out, &b);
                }
                Draw::Time(t) => {
                    out.push(4);
                    put_opt(out, t, put_varint);
                }
                other => _ = put_draw(out, &other),
            }
        }
    }
}

/// Encodes draw kinds 6-8; `false` for the others (encoded by the caller).
pub(super) fn put_draw(out: &mut Vec<u8>, draw: &Draw) -> bool {
    match draw {
        Draw::Verdict(verdict) => {
            out.push(6);
            match verdict {
                Ok(()) => out.push(0),
                Err(Refusal::Certificate(i)) => out.extend_from_slice(&[1, *i]),
                Err(Refusal::Expired { time, not_after }) => {
                    out.push(2);
                    put_varint(out, *time);
                    put_varint(out, *not_after);
                }
                Err(Refusal::NotValidYet { time, not_before }) => {
                    out.push(3);
                    put_varint(out, *time);
                    put_varint(out, *not_before);
                }
                Err(Refusal::NotValidForName {
                    expected,
                    presented,
                }) => {
                    out.push(4);
                    put_bytes(out, expected.as_bytes());
                    put_varint(out, presented.len() as u64);
                    for name in presented {
                        put_bytes(out, name.as_bytes());
                    }
                }
                Err(Refusal::Other(text)) => {
                    out.push(5);
                    put_bytes(out, text.as_bytes());
                }
                Err(Refusal::OtherCertificate(text)) => {
                    out.push(6);
                    put_bytes(out, text.as_bytes());
                }
            }
        }
        Draw::Chain(chain) => {
            out.push(7);
            put_opt(out, chain.as_ref(), |out, (certs, algorithm)| {
                out.push(*algorithm);
                put_varint(out, certs.len() as u64);
                for cert in certs {
                    put_bytes(out, cert);
                }
            });
        }
        Draw::Scheme(scheme) => {
            out.push(8);
            put_opt(out, *scheme, |out, s| {
                out.extend_from_slice(&s.to_le_bytes())
            });
        }
        _ => return false,
    }
    true
}

/// A client's TLS config: its facts.
pub(super) fn put_client(out: &mut Vec<u8>, config: Option<&ClientConfig>) {
    put_facts(out, config.map(ConfigFacts::client));
}

/// A server's TLS config: its facts.
pub(super) fn put_server(out: &mut Vec<u8>, config: Option<&ServerConfig>) {
    put_facts(out, config.map(ConfigFacts::server));
}

fn put_facts(out: &mut Vec<u8>, facts: Option<ConfigFacts>) {
    let Some(f) = facts else {
        out.push(TLS_NONE);
        return;
    };
    out.push(TLS_FACTS);
    put_varint(out, f.alpn.len() as u64);
    for protocol in &f.alpn {
        put_bytes(out, protocol);
    }
    out.push(
        u8::from(f.sni) | u8::from(f.client_certs) << 1 | u8::from(f.ignore_client_order) << 2,
    );
    put_opt(out, f.max_fragment, |out, n| put_varint(out, n as u64));
    put_varint(out, f.tickets as u64);
}

impl Decoder {
    pub(super) fn draw(&mut self) -> Result<Draw, FormatError> {
        let at = self.pos;
        let r = "a TLS draw";
        Ok(match self.u8(r)? {
            0 => Draw::Random(self.blob(r)?),
            1 => Draw::KeyShare {
                group: u16::from_le_bytes(self.array::<2>(r)?),
                public: self.blob(r)?,
            },
            2 => Draw::Secret {
                peer: self.blob(r)?,
                secret: self.blob(r)?,
            },
            3 => Draw::Signature(self.blob(r)?),
            4 => Draw::Time(self.opt(r, |d| d.varint(r))?),
            5 => Draw::Hybrid {
                group: u16::from_le_bytes(self.array::<2>(r)?),
                public: self.blob(r)?,
            },
            k => self.tls_draw(k, at)?,
        })
    }

    /// Draw kinds 6-8 (`kind` read at `at`).
    pub(super) fn tls_draw(&mut self, kind: u8, at: usize) -> Result<Draw, FormatError> {
        let r = "a TLS draw";
        Ok(match kind {
            6 => Draw::Verdict(match self.u8(r)? {
                0 => Ok(()),
                1 => {
                    let i = self.u8(r)?;
                    if unit_error(i).is_none() {
                        return Err(self.invalid(at, format!("certificate error {i}")));
                    }
                    Err(Refusal::Certificate(i))
                }
                2 => Err(Refusal::Expired {
                    time: self.varint(r)?,
                    not_after: self.varint(r)?,
                }),
                3 => Err(Refusal::NotValidYet {
                    time: self.varint(r)?,
                    not_before: self.varint(r)?,
                }),
                4 => Err(Refusal::NotValidForName {
                    expected: self.string(r)?,
                    presented: self.list(r, |d| d.string(r))?,
                }),
                5 => Err(Refusal::Other(self.string(r)?)),
                6 => Err(Refusal::OtherCertificate(self.string(r)?)),
                v => return Err(self.invalid(at, format!("certificate verdict {v}"))),
            }),
            7 => Draw::Chain(self.opt(r, |d| {
                let algorithm = d.u8(r)?;
                Ok((d.list(r, |d| d.blob(r))?, algorithm))
            })?),
            8 => Draw::Scheme(self.opt(r, |d| d.port(r))?),
            k => return Err(self.invalid(at, format!("TLS draw kind {k}"))),
        })
    }

    /// A count and that many items (each at least a byte: the count cannot outrun the file).
    fn list<T>(
        &mut self,
        reading: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<T, FormatError>,
    ) -> Result<Vec<T>, FormatError> {
        let n = self.varint(reading)?;
        let mut items = Vec::new();
        for _ in 0..n {
            items.push(item(self)?);
        }
        Ok(items)
    }

    /// An option struct's TLS config byte, and the facts that follow it.
    pub(super) fn given_tls(&mut self) -> Result<Option<GivenTls>, FormatError> {
        let at = self.offset();
        let r = "a TLS config";
        Ok(match self.u8(r)? {
            TLS_NONE => None,
            TLS_BARE => Some(GivenTls::Bare),
            TLS_FACTS => {
                let alpn = self.list(r, |d| d.blob(r))?;
                let flags = self.u8(r)?;
                if flags > 7 {
                    return Err(self.invalid(at + 1, format!("{r}: flags {flags:#x}")));
                }
                Some(GivenTls::Facts(ConfigFacts {
                    alpn,
                    sni: flags & 1 != 0,
                    client_certs: flags & 2 != 0,
                    ignore_client_order: flags & 4 != 0,
                    max_fragment: self.opt(r, |d| d.usize(r))?,
                    tickets: self.usize(r)?,
                }))
            }
            b => return Err(self.invalid(at, format!("{r}: {b}"))),
        })
    }
}
