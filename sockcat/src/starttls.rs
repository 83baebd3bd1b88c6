//! The plaintext prelude of STARTTLS for SMTP (RFC 3207), IMAP (RFC 3501 §6.2.1) and POP3
//! (RFC 2595 §4): greeting, capability exchange and the upgrade command, as a small state
//! machine fed with received bytes.

use clap::ValueEnum;

/// Which protocol's STARTTLS prelude to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// `EHLO`, then `STARTTLS`, expecting `220`.
    Smtp,
    /// `a1 STARTTLS`, expecting `a1 OK`.
    Imap,
    /// `STLS`, expecting `+OK`.
    Pop3,
}

/// What to do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Send this line.
    Send(&'static str),
    /// The server agreed: call `upgradeToSecure()` now.
    Upgrade,
}

/// The prelude in progress.
#[derive(Debug)]
pub struct Prelude {
    protocol: Protocol,
    /// 0: waiting for the greeting; 1: for the capabilities (SMTP) or the answer; 2: SMTP's
    /// answer to STARTTLS; 3: done.
    stage: u8,
    partial: Vec<u8>,
}

/// The most a prelude line may be (RFC 5321 allows 512 for replies; be generous).
const MAX_LINE: usize = 8192;

impl Prelude {
    pub fn new(protocol: Protocol) -> Prelude {
        Prelude {
            protocol,
            stage: 0,
            partial: Vec::new(),
        }
    }

    /// Feeds received bytes; returns the steps they lead to, or why the server refused.
    ///
    /// The server's answer to the upgrade command must be the last thing it sent in
    /// plaintext: any byte after that line (in the same read or later) was sent past the
    /// STARTTLS point, maybe by an attacker in the path (RFC 3207 §4.2, CVE-2011-0411), and is
    /// a protocol error, never dropped silently nor taken for part of the TLS session.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Step>, String> {
        if self.stage == 3 {
            return Err(injected(data.len()));
        }
        self.partial.extend_from_slice(data);
        let mut steps = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            if let Some(step) = self.line(&line)? {
                let done = step == Step::Upgrade;
                steps.push(step);
                if done {
                    if !self.partial.is_empty() {
                        return Err(injected(self.partial.len()));
                    }
                    return Ok(steps);
                }
            }
        }
        if self.partial.len() > MAX_LINE {
            return Err("the server sent an over-long line before STARTTLS".into());
        }
        Ok(steps)
    }

    fn line(&mut self, line: &str) -> Result<Option<Step>, String> {
        let refused = || Err(format!("the server refused STARTTLS: {line:?}"));
        let step = match (self.protocol, self.stage) {
            (Protocol::Smtp, 0) if line.starts_with("220-") => return Ok(None),
            (Protocol::Smtp, 0) if line.starts_with("220") => Step::Send("EHLO sockcat\r\n"),
            (Protocol::Smtp, 1) if line.starts_with("250-") => return Ok(None),
            (Protocol::Smtp, 1) if line.starts_with("250") => Step::Send("STARTTLS\r\n"),
            (Protocol::Smtp, 2) if line.starts_with("220") => Step::Upgrade,
            (Protocol::Imap, 0) if line.starts_with("* OK") => Step::Send("a1 STARTTLS\r\n"),
            (Protocol::Imap, 1) if line.starts_with("* ") => return Ok(None),
            (Protocol::Imap, 1) if line.starts_with("a1 OK") => Step::Upgrade,
            (Protocol::Pop3, 0) if line.starts_with("+OK") => Step::Send("STLS\r\n"),
            (Protocol::Pop3, 1) if line.starts_with("+OK") => Step::Upgrade,
            _ => return refused(),
        };
        self.stage = if step == Step::Upgrade {
            3
        } else {
            self.stage + 1
        };
        Ok(Some(step))
    }
}

fn injected(len: usize) -> String {
    format!(
        "the server sent {len} bytes after its STARTTLS answer, in plaintext: not upgrading \
         (a possible injection, RFC 3207 §4.2)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_waits_for_the_last_line_of_each_reply() {
        let mut p = Prelude::new(Protocol::Smtp);
        assert_eq!(p.feed(b"220-first\r\n220 ready\r"), Ok(vec![]));
        assert_eq!(p.feed(b"\n"), Ok(vec![Step::Send("EHLO sockcat\r\n")]));
        assert_eq!(
            p.feed(b"250-hi\r\n250 STARTTLS\r\n"),
            Ok(vec![Step::Send("STARTTLS\r\n")])
        );
        assert_eq!(p.feed(b"220 go\r\n"), Ok(vec![Step::Upgrade]));
    }

    #[test]
    fn any_byte_after_the_go_ahead_line_is_a_protocol_error() {
        for protocol in [Protocol::Smtp, Protocol::Imap, Protocol::Pop3] {
            let (greeting, answer): (&[u8], &[u8]) = match protocol {
                Protocol::Smtp => (b"220 ready\r\n250 STARTTLS\r\n", b"220 go\r\n"),
                Protocol::Imap => (b"* OK imap\r\n", b"a1 OK begin\r\n"),
                Protocol::Pop3 => (b"+OK pop\r\n", b"+OK begin\r\n"),
            };
            for after in [&b"250 INJECTED\r\n"[..], b"x", b"\r\n"] {
                let mut p = Prelude::new(protocol);
                p.feed(greeting).unwrap();
                let e = p.feed(&[answer, after].concat()).unwrap_err();
                assert!(
                    e.contains(&format!("{} bytes after its STARTTLS answer", after.len())),
                    "{protocol:?}: {e}"
                );
                // The same bytes in a read of their own, before the app upgraded.
                let mut p = Prelude::new(protocol);
                p.feed(greeting).unwrap();
                assert_eq!(p.feed(answer), Ok(vec![Step::Upgrade]));
                let e = p.feed(after).unwrap_err();
                assert!(e.contains("after its STARTTLS answer"), "{protocol:?}: {e}");
            }
        }
    }

    #[test]
    fn a_refusal_is_an_error_naming_the_line() {
        let mut p = Prelude::new(Protocol::Pop3);
        assert_eq!(p.feed(b"+OK pop\r\n"), Ok(vec![Step::Send("STLS\r\n")]));
        let e = p.feed(b"-ERR no\r\n").unwrap_err();
        assert!(e.contains("-ERR no"), "{e}");
        let mut p = Prelude::new(Protocol::Imap);
        assert_eq!(
            p.feed(b"* OK imap\r\n* CAPABILITY x\r\na1 OK begin\r\n"),
            Ok(vec![Step::Send("a1 STARTTLS\r\n"), Step::Upgrade])
        );
    }
}
