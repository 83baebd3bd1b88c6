//! The endpoints the driver is measured against: blocking `std::net` (`raw`), a hand-written
//! `polling` loop, and `tokio`.

use super::*;

/// `raw`: blocking `std::net`.
pub(super) struct Raw(TcpStream);

impl Endpoint for Raw {
    fn new(stream: TcpStream) -> Res<Self> {
        Ok(Raw(stream))
    }

    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()> {
        let mut sent = 0;
        while sent < total {
            let chunk = pattern.slice(sent, total);
            self.0.write_all(chunk).or_fail("write")?;
            sent += chunk.len() as u64;
        }
        Ok(())
    }

    fn receive(&mut self, total: u64) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        let mut received = Received::new(total);
        while !received.done() {
            match self.0.read(&mut buf) {
                Ok(0) => return Err("early end of stream".into()),
                Ok(n) => received.take(&buf[..n])?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
        Ok(())
    }

    fn ping(&mut self, pinger: &mut Pinger) -> Res<()> {
        let mut reply = [0; MSG];
        while let Some(msg) = pinger.next() {
            self.0.write_all(&msg).or_fail("write")?;
            self.0.read_exact(&mut reply).or_fail("read")?;
            pinger.reply(&reply)?;
        }
        Ok(())
    }

    fn echo(&mut self) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => self.0.write_all(&buf[..n]).or_fail("write")?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

/// `polling`: non-blocking, one-shot registration re-armed before every wait.
pub(super) struct Polled {
    poller: Poller,
    stream: TcpStream,
    events: Events,
}

const KEY: usize = 7;

impl Polled {
    /// Arms the socket for `interest` and waits (at most [`WAIT`]; the caller's next try
    /// tells whether it is ready).
    fn wait(&mut self, interest: Interest) -> Res<()> {
        self.poller
            .modify(&self.stream, interest)
            .or_fail("modify")?;
        self.events.clear(); // `wait` appends
        self.poller
            .wait(&mut self.events, Some(WAIT))
            .or_fail("wait")?;
        Ok(())
    }

    /// Writes all of `data`, waiting for writability when the kernel is full.
    fn write_all(&mut self, mut data: &[u8]) -> Res<()> {
        while !data.is_empty() {
            match (&self.stream).write(data) {
                Ok(0) => return Err("write took nothing".into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::writable(KEY))?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    /// One read: `Some(n)` (0 at the end of the stream), `None` when nothing is there yet.
    fn read(&mut self, buf: &mut [u8]) -> Res<Option<usize>> {
        loop {
            match (&self.stream).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }
}

impl Drop for Polled {
    fn drop(&mut self) {
        let _ = self.poller.delete(&self.stream); // before the socket is closed
    }
}

impl Endpoint for Polled {
    fn new(stream: TcpStream) -> Res<Self> {
        stream.set_nonblocking(true).or_fail("nonblocking")?;
        let poller = Poller::new().or_fail("poller")?;
        // SAFETY: the stream is deleted from the poller in `Drop`, before it is closed.
        unsafe { poller.add(&stream, Interest::none(KEY)) }.or_fail("add")?;
        Ok(Polled {
            poller,
            stream,
            events: Events::new(),
        })
    }

    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()> {
        let mut sent = 0;
        while sent < total {
            match (&self.stream).write(pattern.slice(sent, total)) {
                Ok(0) => return Err("write took nothing".into()),
                Ok(n) => sent += n as u64,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.wait(Interest::writable(KEY))?
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("write: {e}")),
            }
        }
        Ok(())
    }

    fn receive(&mut self, total: u64) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        let mut received = Received::new(total);
        while !received.done() {
            match self.read(&mut buf)? {
                Some(0) => return Err("early end of stream".into()),
                Some(n) => received.take(&buf[..n])?,
                None => self.wait(Interest::readable(KEY))?,
            }
        }
        Ok(())
    }

    fn ping(&mut self, pinger: &mut Pinger) -> Res<()> {
        let mut reply = [0; MSG];
        while let Some(msg) = pinger.next() {
            self.write_all(&msg)?;
            let mut got = 0;
            while got < MSG {
                // The echo cannot be there yet: wait first, then read.
                self.wait(Interest::readable(KEY))?;
                while got < MSG {
                    match self.read(&mut reply[got..])? {
                        Some(0) => return Err("early end of stream".into()),
                        Some(n) => got += n,
                        None => break,
                    }
                }
            }
            pinger.reply(&reply)?;
        }
        Ok(())
    }

    fn echo(&mut self) -> Res<()> {
        let mut buf = vec![0; CHUNK];
        loop {
            match self.read(&mut buf)? {
                Some(0) => return Ok(()),
                Some(n) => {
                    self.write_all(&buf[..n])?;
                    if n < buf.len() {
                        // Most likely drained: wait rather than try a read that would block.
                        self.wait(Interest::readable(KEY))?;
                    }
                }
                None => self.wait(Interest::readable(KEY))?,
            }
        }
    }
}

/// `tokio`: a current-thread runtime on the endpoint's thread.
pub(super) struct Tokio {
    rt: tokio::runtime::Runtime,
    stream: tokio::net::TcpStream,
}

impl Endpoint for Tokio {
    fn new(stream: TcpStream) -> Res<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .or_fail("runtime")?;
        stream.set_nonblocking(true).or_fail("nonblocking")?;
        let stream = {
            let _in = rt.enter();
            tokio::net::TcpStream::from_std(stream).or_fail("from_std")?
        };
        Ok(Tokio { rt, stream })
    }

    fn send(&mut self, pattern: &Pattern, total: u64) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut sent = 0;
            while sent < total {
                let chunk = pattern.slice(sent, total);
                stream.write_all(chunk).await.or_fail("write")?;
                sent += chunk.len() as u64;
            }
            Ok(())
        })
    }

    fn receive(&mut self, total: u64) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut buf = vec![0; CHUNK];
            let mut received = Received::new(total);
            while !received.done() {
                match stream.read(&mut buf).await.or_fail("read")? {
                    0 => return Err("early end of stream".into()),
                    n => received.take(&buf[..n])?,
                }
            }
            Ok(())
        })
    }

    fn ping(&mut self, pinger: &mut Pinger) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut reply = [0; MSG];
            while let Some(msg) = pinger.next() {
                stream.write_all(&msg).await.or_fail("write")?;
                stream.read_exact(&mut reply).await.or_fail("read")?;
                pinger.reply(&reply)?;
            }
            Ok(())
        })
    }

    fn echo(&mut self) -> Res<()> {
        let stream = &mut self.stream;
        self.rt.block_on(async {
            let mut buf = vec![0; CHUNK];
            loop {
                match stream.read(&mut buf).await.or_fail("read")? {
                    0 => return Ok(()),
                    n => stream.write_all(&buf[..n]).await.or_fail("write")?,
                }
            }
        })
    }
}
