//! UTF-8 decoding across reads for `binaryType` `"string"` ([BEHAVIOUR §1](crate::behaviour#1-tcpsocket)): a sequence split
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
    ///
    /// Each byte is copied once, into the returned `String`, and not at all when the read is
    /// valid UTF-8 on its own and owns its buffer alone.
    pub(crate) fn decode(&mut self, chunk: Bytes) -> Option<String> {
        let mut out = String::new();
        let mut rest: &[u8] = &chunk;
        if self.len != 0 {
            let used = self.complete(rest, &mut out)?;
            rest = rest.get(used..).unwrap_or_default();
        } else if std::str::from_utf8(&chunk).is_ok() {
            let vec = Vec::from(chunk);
            return Some(String::from_utf8(vec).unwrap_or_default());
        }
        out.reserve(rest.len() + 3);
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
                            self.keep(after);
                            break;
                        }
                    }
                }
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Finishes the character the last read cut with the first bytes of `next`: pushes it (or
    /// U+FFFD, where `from_utf8_lossy` puts one) to `out` and returns how many bytes of `next`
    /// it took; `None` when `next` ends before the character does (its bytes are kept).
    fn complete(&mut self, next: &[u8], out: &mut String) -> Option<usize> {
        let have = usize::from(self.len);
        let mut joined = [0; 4];
        joined[..have].copy_from_slice(&self.pending[..have]);
        let take = (4 - have).min(next.len());
        joined[have..have + take].copy_from_slice(&next[..take]);
        let joined = &joined[..have + take];
        let valid = match std::str::from_utf8(joined) {
            Ok(valid) => valid,
            Err(e) => std::str::from_utf8(&joined[..e.valid_up_to()]).unwrap_or_default(),
        };
        let (width, c) = match valid.chars().next() {
            Some(c) => (c.len_utf8(), c),
            None => match std::str::from_utf8(joined)
                .err()
                .and_then(|e| e.error_len())
            {
                Some(n) => (n, char::REPLACEMENT_CHARACTER),
                None => {
                    self.keep(joined);
                    return None;
                }
            },
        };
        self.len = 0;
        out.push(c);
        Some(width.saturating_sub(have))
    }

    /// Keeps the start of a character cut by the end of a read (at most 3 bytes).
    fn keep(&mut self, start: &[u8]) {
        let n = start.len().min(self.pending.len());
        self.pending[..n].copy_from_slice(&start[..n]);
        self.len = n as u8;
    }

    /// At the end of the stream, a cut character is one U+FFFD (as `from_utf8_lossy` does).
    pub(crate) fn finish(&mut self) -> Option<String> {
        let had = self.len != 0;
        self.len = 0;
        had.then(|| char::REPLACEMENT_CHARACTER.to_string())
    }

    /// Bytes of a cut character held for the next read (0 to 3): read, and in no text yet.
    pub(crate) fn pending(&self) -> usize {
        usize::from(self.len)
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
    fn a_character_cut_across_three_reads_matches_from_utf8_lossy() {
        // Four reads: a character can end in the third after starting in the first.
        let samples: [&[u8]; 4] = [
            "x😀€y".as_bytes(),
            b"\xf0\x9f\x98\xf0\x9f\x98\x80",
            b"\xe2\x82\xac\xe2\x41\xf4\x90",
            b"\xf0\x9f\x98\x80\xf0\x9f",
        ];
        for bytes in samples {
            let expected = String::from_utf8_lossy(bytes);
            let n = bytes.len();
            for i in 0..=n {
                for j in i..=n {
                    for k in j..=n {
                        let got = decode_in_pieces(bytes, &[i, j, k]);
                        assert_eq!(got, expected, "{bytes:?} {i},{j},{k}");
                    }
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
