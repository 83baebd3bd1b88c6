//! Crypto in memory, on one thread: what sealing and opening records costs by ring alone and
//! through rustls, per byte on each side.

use super::bulk::{check, pattern, Dir, RecordLayer};
use super::*;

/// What TLS adds to a byte on each side.
#[derive(Clone, Copy, Debug)]
pub(super) enum Cipher {
    /// ring's AES-128-GCM over whole records in place: no copy, no framing.
    Ring,
    /// rustls's unbuffered API (the driver's engine) on ring.
    Rustls,
}

impl Cipher {
    pub(super) fn name(self) -> &'static str {
        match self {
            Cipher::Ring => "ring AES-128-GCM in place",
            Cipher::Rustls => "rustls unbuffered",
        }
    }
}

/// CPU seconds sealing and opening the application data of one in-memory run.
#[derive(Clone, Copy, Debug)]
pub(super) struct Crypto {
    pub(super) seal: f64,
    pub(super) open: f64,
}

/// Application data sealed, then opened, per timed step: four writes, 256 KiB (its records
/// stay in the L2 cache).
pub(super) const BATCH: usize = 4 * CHUNK;
/// rustls's records carry the TLS maximum fragment.
pub(super) const FRAGMENT: usize = 16 << 10;
/// A TLS 1.3 record of a full fragment: header, fragment, content type, AES-GCM tag.
pub(super) const RECORD: usize = 5 + FRAGMENT + 1 + 16;

/// Seals and opens `bytes` (rounded up to whole batches) of the bulk pattern in memory;
/// `full` checks every byte opened (smoke), otherwise the first of each record.
pub(super) fn crypto(cipher: Cipher, tls: &Tls, bytes: u64, full: bool) -> Crypto {
    match cipher {
        Cipher::Ring => ring_crypto(bytes, full),
        Cipher::Rustls => rustls_crypto(tls, bytes, full),
    }
}

/// Checks a piece of application data that starts at stream offset `at`: its first byte, or
/// every byte when `full`.
fn verify(piece: &[u8], at: u64, full: bool) {
    check(piece, at);
    if full {
        for (i, &b) in piece.iter().enumerate() {
            let expect = ((at + i as u64) % CHUNK as u64) as u8;
            assert_eq!(b, expect, "corrupt byte at {}", at + i as u64);
        }
    }
}

fn ring_crypto(bytes: u64, full: bool) -> Crypto {
    let (mut sealer, mut opener) = (RecordLayer::new(Dir::Up), RecordLayer::new(Dir::Up));
    let pattern = pattern();
    let mut records = vec![0; BATCH / FRAGMENT * RECORD];
    for (i, record) in records.chunks_mut(RECORD).enumerate() {
        let at = i * FRAGMENT % CHUNK;
        record[5..5 + FRAGMENT].copy_from_slice(&pattern[at..at + FRAGMENT]);
    }
    // Each round seals the plaintext in place and opens it back: no copy at all.
    let (mut seal, mut open, mut done) = (0.0, 0.0, 0u64);
    while done < bytes {
        let start = thread_cpu();
        for record in records.chunks_mut(RECORD) {
            sealer.seal(record);
        }
        let sealed = thread_cpu();
        for (i, record) in records.chunks_mut(RECORD).enumerate() {
            verify(opener.open(record), done + (i * FRAGMENT) as u64, full);
        }
        open += thread_cpu() - sealed;
        seal += sealed - start;
        done += BATCH as u64;
    }
    Crypto { seal, open }
}

/// The two sides of rustls's unbuffered API, which differ only in their concrete types.
trait Endpoint {
    type Data;
    fn process<'c, 'i>(
        &'c mut self,
        incoming: &'i mut [u8],
    ) -> UnbufferedStatus<'c, 'i, Self::Data>;
}

/// The two impls differ only in their types.
macro_rules! endpoint {
    ($conn:ty, $data:ty) => {
        impl Endpoint for $conn {
            type Data = $data;
            fn process<'c, 'i>(
                &'c mut self,
                incoming: &'i mut [u8],
            ) -> UnbufferedStatus<'c, 'i, $data> {
                self.process_tls_records(incoming)
            }
        }
    };
}

endpoint!(UnbufferedClientConnection, ClientConnectionData);
endpoint!(UnbufferedServerConnection, ServerConnectionData);

/// Runs `conn` over `incoming` until it blocks: records it encodes are appended to `out`,
/// application data it yields is checked (see [`verify`]) and counted into `got`. Returns the
/// bytes of `incoming` consumed and whether the session can send application data.
fn turn<C: Endpoint>(
    conn: &mut C,
    incoming: &mut [u8],
    out: &mut Vec<u8>,
    got: &mut u64,
    full: bool,
) -> (usize, bool) {
    let mut at = 0;
    loop {
        let status = conn.process(&mut incoming[at..]);
        let mut discard = status.discard;
        let blocked = match status.state.expect("in-memory TLS") {
            ConnectionState::ReadTraffic(mut traffic) => {
                while let Some(record) = traffic.next_record() {
                    let record = record.expect("the record decrypts");
                    discard += record.discard;
                    verify(record.payload, *got, full);
                    *got += record.payload.len() as u64;
                }
                None
            }
            ConnectionState::EncodeTlsData(mut encode) => {
                let start = out.len();
                out.resize(start + 4096, 0);
                let n = match encode.encode(&mut out[start..]) {
                    Ok(n) => n,
                    Err(EncodeError::InsufficientSize(e)) => {
                        out.resize(start + e.required_size, 0);
                        encode.encode(&mut out[start..]).unwrap()
                    }
                    Err(e) => panic!("encoding a handshake record: {e}"),
                };
                out.truncate(start + n);
                None
            }
            ConnectionState::TransmitTlsData(transmit) => {
                transmit.done();
                None
            }
            ConnectionState::WriteTraffic(_) => Some(true),
            ConnectionState::BlockedHandshake => Some(false),
            other => panic!("unexpected TLS state {other:?}"),
        };
        at += discard;
        if let Some(writable) = blocked {
            return (at, writable);
        }
    }
}

/// Encrypts `data` into records at the start of `out`; returns their length.
fn seal<C: Endpoint>(conn: &mut C, data: &[u8], out: &mut [u8]) -> usize {
    match conn.process(&mut []).state.expect("in-memory TLS") {
        ConnectionState::WriteTraffic(mut traffic) => traffic.encrypt(data, out).unwrap(),
        other => panic!("the session cannot write: {other:?}"),
    }
}

fn rustls_crypto(tls: &Tls, bytes: u64, full: bool) -> Crypto {
    let name = ServerName::IpAddress(LOCALHOST.into());
    let mut client = UnbufferedClientConnection::new(tls.client.clone(), name).unwrap();
    let mut server = UnbufferedServerConnection::new(tls.server.clone()).unwrap();
    // The handshake, flight by flight (no application data flows in it).
    let (mut to_server, mut to_client, mut none) = (Vec::new(), Vec::new(), 0);
    for flight in 0.. {
        assert!(flight < 10, "the in-memory handshake completes");
        let (n, client_ready) = turn(&mut client, &mut to_client, &mut to_server, &mut none, true);
        to_client.drain(..n);
        let (n, server_ready) = turn(&mut server, &mut to_server, &mut to_client, &mut none, true);
        to_server.drain(..n);
        if client_ready && server_ready && to_server.is_empty() && to_client.is_empty() {
            break;
        }
    }
    assert_eq!(none, 0);
    let pattern = pattern();
    let mut wire = vec![0; (BATCH / FRAGMENT + 1) * RECORD];
    let mut stray = Vec::new();
    let (mut seal_s, mut open_s, mut done, mut got) = (0.0, 0.0, 0u64, 0u64);
    while done < bytes {
        let start = thread_cpu();
        let mut len = 0;
        for _ in 0..BATCH / CHUNK {
            len += seal(&mut client, &pattern, &mut wire[len..]);
        }
        let sealed = thread_cpu();
        let (used, _) = turn(&mut server, &mut wire[..len], &mut stray, &mut got, full);
        open_s += thread_cpu() - sealed;
        seal_s += sealed - start;
        assert_eq!(used, len, "every record is opened");
        assert!(stray.is_empty(), "the server sends nothing back");
        done += BATCH as u64;
    }
    assert_eq!(got, done, "every byte sealed is opened");
    Crypto {
        seal: seal_s,
        open: open_s,
    }
}
