//! Recording a driver's session for offline replay ([`sockstate::replay`]).
//!
//! With [`Config::record`](crate::Config::record) set, the driver writes down every call it
//! makes on its core (with its arguments and what it returned), every input (with its
//! payload), every accepted connection, every `handle_timeout` and the `now` of each, and a
//! digest of every `poll_output`, in the format of [`sockstate::replay`]. Replaying the file
//! ([`sockstate::replay::Replay`], or `sockcat replay FILE`) gives the same events in the same
//! order, without a network.
//!
//! The loop never blocks on the file: records are encoded into a buffer that a writer thread
//! takes in chunks of about 256 KiB (and whenever the loop is about to sleep and the last
//! chunk left more than 50 ms ago, so that a recording of a session that dies is nearly
//! complete). Payloads above 16 KiB are not copied: the chunk holds a reference to the app's
//! or the socket's buffer (which stays allocated until written), and the writer writes the
//! chunks that wait with one vectored write (`writev`) for as many as it can. At most
//! [`Recording::buffer`] bytes (default 32 MiB; payloads held count whole) wait for the
//! writer, plus the chunk being filled. (At a gigabyte a second, 32 MiB is 32 ms of a writer
//! thread waiting for a CPU; 8 MiB stopped most full-payload recordings of a loopback bulk
//! transfer on a busy two-CPU machine even with a writer that took everything at once.)
//!
//! **When the writer cannot keep up** (more than the bound is waiting) or fails, recording
//! **stops**: the chunk that did not fit is dropped, nothing more is encoded (the loop goes
//! on at full speed), the writer ends the file with an end record saying the recording is
//! incomplete, and [`Diagnostics::recording_overflows`](crate::Diagnostics) (or
//! `recording_errors`) counts it. A replay then gives the session's events up to that point
//! and says it stopped early. Dropping records in the middle instead would make the rest
//! unreplayable, and blocking would change the session being recorded. A disk slower than
//! the session fills the bound whatever it is (a loopback bulk transfer moves 1-2 GB/s; a
//! busy file system may take a few hundred MB/s): record such sessions with
//! [`PayloadLimit::FirstBytes`].
//!
//! Calls made on the core directly ([`Driver::core_mut`](crate::Driver::core_mut)) are not
//! recorded: a replay diverges there.

use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sockstate::replay::{end_record, Encoder, PayloadLimit, TlsDraws};

use crate::Diagnostics;

/// Bytes encoded before a chunk goes to the writer.
const CHUNK: usize = 256 << 10;
/// Payloads from this size on are held by reference, not copied: above the core's
/// coalescing size (16 KiB) and the driver's copied small reads (4 KiB), so that holding one
/// never changes how the core or the driver treats that buffer.
const HOLD_FROM: usize = (16 << 10) + 1;
/// Most buffers (and bytes) one vectored write of the writer takes.
const BATCH_BUFFERS: usize = 1024;
const BATCH_BYTES: usize = 8 << 20;
/// A chunk also goes to the writer when the loop is about to sleep this long after the last.
const IDLE_FLUSH: Duration = Duration::from_millis(50);

/// Where and how a driver records its session ([`Config::record`](crate::Config::record)).
///
/// ```no_run
/// use sockstate_driver::{Config, Driver, Recording};
/// let config = Config::default().record(Some(Recording::to_path("session.rec")));
/// let driver = Driver::new(config)?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Recording {
    target: Arc<Mutex<Option<Target>>>,
    payloads: PayloadLimit,
    buffer: usize,
    tls: TlsDraws,
}

enum Target {
    Path(PathBuf),
    Writer(Box<dyn Write + Send>),
}

impl Recording {
    /// Record into a file (created, or truncated) at `path` when the driver starts.
    pub fn to_path(path: impl Into<PathBuf>) -> Recording {
        Recording::new(Target::Path(path.into()))
    }

    /// Record into `writer`, which the first driver built with this config takes.
    pub fn to_writer(writer: impl Write + Send + 'static) -> Recording {
        Recording::new(Target::Writer(Box::new(writer)))
    }

    fn new(target: Target) -> Recording {
        Recording {
            target: Arc::new(Mutex::new(Some(target))),
            payloads: PayloadLimit::Full,
            buffer: 32 << 20,
            tls: TlsDraws::recording(),
        }
    }

    /// What the session's TLS configs draw (random bytes, key shares, signatures, the time)
    /// and decide (certificate verdicts, the chains presented), recorded so that TLS sessions
    /// replay whole: build the configs with `sockstate::tls::ClientOptions::draws` /
    /// `ServerOptions::draws` set to it (a replay then needs no key or trust store; see
    /// [`sockstate::replay`]). Sockets with other configs (the default client config among
    /// them) record, but their TLS does not replay.
    ///
    /// ```
    /// use sockstate_driver::sockstate::tls::{self, ClientOptions};
    /// use sockstate_driver::{Config, Recording, TcpOptions};
    /// let recording = Recording::to_writer(std::io::sink());
    /// let tls = tls::client_config(
    ///     ClientOptions::default().draws(Some(recording.tls_draws().clone())),
    /// )?;
    /// let config = Config::default().record(Some(recording));
    /// let options = TcpOptions::default()
    ///     .use_secure_transport(true)
    ///     .tls_config(Some(tls));
    /// # let _ = (config, options);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls_draws(&self) -> &TlsDraws {
        &self.tls
    }

    /// How much of each payload to keep (default: all of it). With less, the replay checks
    /// structure rather than bytes ([`PayloadLimit`]).
    pub fn payloads(mut self, limit: PayloadLimit) -> Recording {
        self.payloads = limit;
        self
    }

    /// Most bytes waiting for the writer before recording stops (default 32 MiB; see the
    /// [module docs](self) for the policy).
    pub fn buffer(mut self, bytes: usize) -> Recording {
        self.buffer = bytes;
        self
    }

    /// The payload limit.
    pub fn payload_limit(&self) -> PayloadLimit {
        self.payloads
    }
}

impl fmt::Debug for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match self.target.lock().as_deref() {
            Ok(Some(Target::Path(p))) => format!("{}", p.display()),
            Ok(Some(Target::Writer(_))) => "a writer".into(),
            _ => "(taken)".into(),
        };
        f.debug_struct("Recording")
            .field("target", &target)
            .field("tls", &self.tls)
            .field("payloads", &self.payloads)
            .field("buffer", &self.buffer)
            .finish()
    }
}

impl PartialEq for Recording {
    fn eq(&self, other: &Recording) -> bool {
        Arc::ptr_eq(&self.target, &other.target)
            && self.payloads == other.payloads
            && self.buffer == other.buffer
    }
}

impl Eq for Recording {}

/// How a recording went ([`Driver::recording_stats`](crate::Driver::recording_stats)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RecordingStats {
    /// Bytes encoded (handed to the writer, or waiting in the chunk being filled).
    pub bytes: u64,
    /// Records encoded.
    pub steps: u64,
    /// Whether recording stopped early (see the overflow policy).
    pub stopped: bool,
}

/// State shared with the writer thread.
struct Shared {
    /// Bytes handed to the writer and not yet written.
    queued: AtomicUsize,
    /// The writer failed: recording stops.
    failed: AtomicBool,
    /// Recording stopped early: the writer ends the file with an incomplete end record.
    stopped: AtomicBool,
}

/// The recorder of a driver: the encoder and the writer thread.
pub(crate) struct Recorder {
    encoder: Encoder,
    tx: Option<Sender<Vec<Bytes>>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    shared: Arc<Shared>,
    limit: usize,
    stopped: bool,
    shipped: u64,
    last_ship: Instant,
    tls: TlsDraws,
}

impl Recorder {
    /// Takes the recording's target and starts the writer thread.
    pub(crate) fn start(
        recording: &Recording,
        config: &sockstate::Config,
        epoch: Instant,
    ) -> io::Result<Recorder> {
        let target = recording
            .target
            .lock()
            .map_err(|_| io::Error::other("the recording's writer was poisoned"))?
            .take()
            .ok_or_else(|| {
                io::Error::other("this Recording's writer is already used by another driver")
            })?;
        let writer: Box<dyn Write + Send> = match target {
            Target::Path(path) => {
                let file = File::create(&path)?;
                // A path can be recorded to again by the next driver of this config.
                if let Ok(mut slot) = recording.target.lock() {
                    *slot = Some(Target::Path(path));
                }
                Box::new(file)
            }
            Target::Writer(w) => w,
        };
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            failed: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let (tx, rx) = channel();
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("sockstate-recorder".into())
                .spawn(move || write_chunks(writer, rx, &shared))?
        };
        let mut encoder = Encoder::new(config, recording.payloads, epoch);
        encoder.hold_payloads(HOLD_FROM);
        Ok(Recorder {
            encoder,
            tx: Some(tx),
            thread: Some(thread),
            shared,
            limit: recording.buffer,
            stopped: false,
            shipped: 0,
            last_ship: epoch,
            tls: recording.tls.clone(),
        })
    }

    /// The encoder, while recording (`None` once stopped).
    #[inline]
    pub(crate) fn encoder(&mut self) -> Option<&mut Encoder> {
        (!self.stopped).then_some(&mut self.encoder)
    }

    /// After a whole record: hands a full chunk to the writer.
    #[inline]
    pub(crate) fn recorded(&mut self, diagnostics: &mut Diagnostics) {
        self.encoder.draws(&self.tls);
        if self.encoder.pending() >= CHUNK {
            self.ship(diagnostics);
        }
    }

    /// The loop is about to sleep: hands over what waits, if the last chunk left long ago.
    pub(crate) fn idle(&mut self, diagnostics: &mut Diagnostics) {
        if self.stopped || self.encoder.pending() == 0 {
            return;
        }
        let now = Instant::now();
        if now.saturating_duration_since(self.last_ship) >= IDLE_FLUSH {
            self.last_ship = now;
            self.ship(diagnostics);
        }
    }

    fn ship(&mut self, diagnostics: &mut Diagnostics) {
        if self.stopped {
            return;
        }
        if self.shared.failed.load(Ordering::Relaxed) {
            diagnostics.recording_errors += 1;
            self.stop();
            return;
        }
        let len = self.encoder.pending();
        if self.shared.queued.load(Ordering::Relaxed) + len > self.limit {
            diagnostics.recording_overflows += 1;
            self.stop();
            return;
        }
        let mut chunk = Vec::new();
        self.encoder.take_buffers(&mut chunk);
        self.shared.queued.fetch_add(len, Ordering::Relaxed);
        self.shipped += len as u64;
        if let Some(tx) = &self.tx {
            if tx.send(chunk).is_err() {
                diagnostics.recording_errors += 1;
                self.stop();
            }
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.tls.discard();
        self.encoder.take_buffers(&mut Vec::new());
    }

    pub(crate) fn stats(&self) -> RecordingStats {
        RecordingStats {
            bytes: self.shipped + self.encoder.pending() as u64,
            steps: self.encoder.steps(),
            stopped: self.stopped,
        }
    }

    /// Ends the recording: the end record, the last chunk, and waits for the writer.
    pub(crate) fn finish(&mut self, diagnostics: &mut Diagnostics) -> io::Result<()> {
        if !self.stopped {
            self.encoder.end(true);
            // The last chunk goes whatever the bound: the loop is not waiting on it.
            self.limit = usize::MAX;
            self.ship(diagnostics);
            self.stopped = true;
        }
        self.tls.discard();
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the recording's writer thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let _ = self.finish(&mut Diagnostics::default());
    }
}

/// The writer thread: writes chunks in order, every chunk waiting (up to a batch) in one
/// vectored write; once the channel closes, ends a stopped recording with its end record and
/// flushes.
fn write_chunks(
    mut out: Box<dyn Write + Send>,
    rx: Receiver<Vec<Bytes>>,
    shared: &Shared,
) -> io::Result<()> {
    let mut result = Ok(());
    let mut batch: Vec<Bytes> = Vec::new();
    while let Ok(mut chunk) = rx.recv() {
        batch.append(&mut chunk);
        let mut bytes: usize = batch.iter().map(Bytes::len).sum();
        while batch.len() < BATCH_BUFFERS && bytes < BATCH_BYTES {
            let Ok(mut more) = rx.try_recv() else { break };
            bytes += more.iter().map(Bytes::len).sum::<usize>();
            batch.append(&mut more);
        }
        if result.is_ok() {
            result = write_all_vectored(&mut out, &batch).and_then(|()| out.flush());
            if result.is_err() {
                shared.failed.store(true, Ordering::Relaxed);
            }
        }
        batch.clear();
        shared.queued.fetch_sub(bytes, Ordering::Relaxed);
    }
    result?;
    if shared.stopped.load(Ordering::Relaxed) {
        out.write_all(&end_record(false, 0))?;
    }
    out.flush()
}

/// Writes all of `buffers`, in order, with as few vectored writes as `out` allows.
fn write_all_vectored(out: &mut dyn Write, buffers: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = buffers.iter().map(|b| IoSlice::new(b)).collect();
    let mut left = &mut slices[..];
    IoSlice::advance_slices(&mut left, 0);
    while !left.is_empty() {
        match out.write_vectored(left) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut left, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
