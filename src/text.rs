//! UTF-8 decoding across reads for `binaryType` `"string"` (BEHAVIOUR §1): a sequence split
//! between two reads is joined, invalid bytes become U+FFFD, and the concatenation of all text
//! equals `String::from_utf8_lossy` of all bytes (we decide against Firefox, which made one
//! character of each byte).

use bytes::Bytes;

/// Holds the (at most 3) bytes of a character that a read cut in two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Utf8Decoder {
    pending: [u8; 3],
    len: u8,
}

impl Utf8Decoder {
    /// Decodes one read. Returns `None` when it produced no text (only a character's start).
    pub(crate) fn decode(&mut self, chunk: Bytes) -> Option<String> {
        let mut out;
        let mut rest: &[u8];
        let joined;
        if self.len == 0 {
            // Fast path: a whole valid read becomes a String without a copy when `chunk`
            // owns its buffer alone, and with one copy otherwise.
            match std::str::from_utf8(&chunk) {
                Ok(_) => {
                    let vec = Vec::from(chunk);
                    return Some(String::from_utf8(vec).unwrap_or_default());
                }
                Err(_) => {
                    out = String::with_capacity(chunk.len() + 3);
                    joined = chunk;
                    rest = &joined;
                }
            }
        } else {
            let mut buf = Vec::with_capacity(self.len as usize + chunk.len());
            buf.extend_from_slice(&self.pending[..self.len as usize]);
            buf.extend_from_slice(&chunk);
            self.len = 0;
            out = String::with_capacity(buf.len() + 3);
            joined = Bytes::from(buf);
            rest = &joined;
        }
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    out.push_str(valid);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        None => {
                            // An incomplete but so far valid sequence at the end: keep it.
                            self.pending[..after.len()].copy_from_slice(after);
                            self.len = after.len() as u8;
                            break;
                        }
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// At the end of the stream, a cut character is one U+FFFD (as `from_utf8_lossy` does).
    pub(crate) fn finish(&mut self) -> Option<String> {
        let had = self.len != 0;
        self.len = 0;
        had.then(|| char::REPLACEMENT_CHARACTER.to_string())
    }

    /// Forgets a cut character (after `close()`, no more data is delivered).
    pub(crate) fn reset(&mut self) {
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> String {
        let mut d = Utf8Decoder::default();
        let mut out = String::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([bytes.len()].iter()) {
            let cut = cut.clamp(start, bytes.len());
            if let Some(s) = d.decode(Bytes::copy_from_slice(&bytes[start..cut])) {
                out.push_str(&s);
            }
            start = cut;
        }
        if let Some(s) = d.finish() {
            out.push_str(&s);
        }
        out
    }

    #[test]
    fn a_character_split_between_reads_is_joined() {
        let text = "a€b😀c";
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                assert_eq!(decode_in_pieces(bytes, &[i, j]), text, "cuts at {i},{j}");
            }
        }
    }

    #[test]
    fn invalid_bytes_match_from_utf8_lossy_wherever_the_reads_are_cut() {
        let samples: [&[u8]; 6] = [
            b"\xff\xfeabc",
            b"ab\xe2\x82",
            b"\xe2\x82\xe2\x82\xac\xf0\x9f",
            b"\xed\xa0\x80x",
            b"\xc3\x28\x00nul\x00",
            b"\xf4\x90\x80\x80\xc0\xaf",
        ];
        for bytes in samples {
            let expected = String::from_utf8_lossy(bytes);
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    assert_eq!(
                        decode_in_pieces(bytes, &[i, j]),
                        expected,
                        "{bytes:?} {i},{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn nul_bytes_are_kept() {
        let mut d = Utf8Decoder::default();
        assert_eq!(
            d.decode(Bytes::from_static(b"a\0b")).as_deref(),
            Some("a\0b")
        );
    }
}
