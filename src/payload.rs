//! Bytes going out ([`Payload`]) and coming in ([`Data`]), and the `binaryType` that chooses
//! between bytes and text for received data.

use std::fmt;

use bytes::{Bytes, BytesMut};

/// What `send` takes: bytes or text (text is sent as UTF-8 and counts its UTF-8 length,
/// [BEHAVIOUR §1](crate::behaviour#1-tcpsocket)). Owned buffers (`Bytes`, `Vec<u8>`, `String`) are taken without a copy;
/// borrowed slices are copied once.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Payload(pub(crate) Bytes);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Payload").field(&Preview(&self.0)).finish()
    }
}

impl Payload {
    /// Its length in bytes, which is what `bufferedAmount` counts.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload(b)
    }
}
impl From<BytesMut> for Payload {
    fn from(b: BytesMut) -> Self {
        Payload(b.freeze())
    }
}
impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload(b.into())
    }
}
impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload(s.into())
    }
}
impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        Payload(Bytes::copy_from_slice(b))
    }
}
impl<const N: usize> From<&[u8; N]> for Payload {
    fn from(b: &[u8; N]) -> Self {
        Payload(Bytes::copy_from_slice(b))
    }
}
impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// How received data is handed to the app (`binaryType`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum BinaryType {
    /// `"string"` (the default): text decoded as UTF-8 across reads ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)).
    #[default]
    String,
    /// `"arraybuffer"`: the bytes as read.
    ArrayBuffer,
}

impl BinaryType {
    /// The spec's name: `"string"` or `"arraybuffer"`.
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryType::String => "string",
            BinaryType::ArrayBuffer => "arraybuffer",
        }
    }
}

/// Received data in an [`Event::Data`](crate::Event::Data). Its `Debug` shows the length and
/// the first bytes only (see [`Preview`]).
#[derive(Clone, PartialEq, Eq)]
pub enum Data {
    /// `binaryType` `"arraybuffer"`.
    Bytes(Bytes),
    /// `binaryType` `"string"`.
    Text(String),
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Data::Bytes(b) => f.debug_tuple("Bytes").field(&Preview(b)).finish(),
            Data::Text(t) => f.debug_tuple("Text").field(&Preview(t.as_bytes())).finish(),
        }
    }
}

/// A payload in `Debug` output: whole up to [`Preview::WHOLE`] bytes, else its length and
/// its first bytes (a `{:?}` of a 250 KB message must not flood a terminal).
pub struct Preview<'a>(pub &'a [u8]);

impl Preview<'_> {
    /// Payloads up to this many bytes are shown whole.
    pub const WHOLE: usize = 64;
    /// Longer ones show this many first bytes.
    const HEAD: usize = 32;
}

impl fmt::Debug for Preview<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |f: &mut fmt::Formatter<'_>, b: &[u8]| match std::str::from_utf8(b) {
            Ok(text) => write!(f, "{text:?}"),
            Err(_) => write!(f, "{:?}", Bytes::copy_from_slice(b)),
        };
        if self.0.len() <= Self::WHOLE {
            return show(f, self.0);
        }
        let mut head = Self::HEAD;
        while head > 0 && std::str::from_utf8(&self.0[..head]).is_err() && head > Self::HEAD - 4 {
            head -= 1; // do not cut a character in two when the rest is text
        }
        write!(f, "{} bytes: ", self.0.len())?;
        show(f, &self.0[..head])?;
        f.write_str("…")
    }
}

impl Data {
    /// The data as bytes (text as its UTF-8).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Data::Bytes(b) => b,
            Data::Text(t) => t.as_bytes(),
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }
}
