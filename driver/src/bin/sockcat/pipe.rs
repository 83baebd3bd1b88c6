//! One TCP socket joined to stdin and stdout, as `nc -N` does: stdin is read on a thread and
//! handed to the loop through a [`Handle`](sockstate_driver::Handle), with back-pressure from
//! `send`'s return value and `Drain`; at the end of stdin the socket is half-closed.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::Instant;

use sockstate_driver::{Driver, Event, SocketId, TcpId};

use crate::starttls::{Prelude, Step};

/// Stdin ⇄ socket ⇄ stdout until the socket's `Close`. `Err` when it ended with `Error`.
///
/// With a STARTTLS `prelude`, stdin is joined only once the prelude is through and
/// `upgradeToSecure()` was called; nothing received before that is printed.
pub fn run(
    driver: &mut Driver,
    id: TcpId,
    verbose: bool,
    mut prelude: Option<Prelude>,
) -> Result<(), String> {
    let started = Instant::now();
    let sent = Arc::new(AtomicU64::new(0));
    let mut received = 0u64;
    let mut failure = None;
    // Whether the stdin thread waits for `Drain` before reading more.
    let blocked = Arc::new(AtomicBool::new(false));
    let mut go: Option<SyncSender<bool>> = None;
    let start_stdin = |driver: &Driver| {
        Some(stdin_to(
            driver,
            id,
            Arc::clone(&blocked),
            Arc::clone(&sent),
        ))
    };
    let mut stdout = std::io::stdout().lock();
    while let Some(event) = driver.next_event(None) {
        if verbose {
            log(driver, &event);
        }
        match event {
            Event::Open {
                id: SocketId::TcpId(open),
            } if open == id && prelude.is_none() => go = start_stdin(driver),
            Event::Data { data, .. } if prelude.is_some() => {
                let fed = prelude.as_mut().map(|p| p.feed(data.as_bytes()));
                match fed.unwrap_or_else(|| Ok(Vec::new())) {
                    Ok(steps) => {
                        for step in steps {
                            match step {
                                Step::Send(line) => _ = driver.send(id, line),
                                Step::Upgrade => {
                                    driver.upgrade_to_secure(id).map_err(|e| e.to_string())?;
                                    if verbose {
                                        eprintln!("sockcat: {id} upgradeToSecure");
                                    }
                                    prelude = None;
                                    go = start_stdin(driver);
                                }
                            }
                        }
                    }
                    Err(refused) => {
                        failure = Some(refused);
                        let _ = driver.close(id);
                    }
                }
            }
            Event::Data { data, .. } => {
                received += data.len() as u64;
                if stdout
                    .write_all(data.as_bytes())
                    .and_then(|()| stdout.flush())
                    .is_err()
                {
                    // Nobody reads our output any more: stop.
                    let _ = driver.close_immediately(id);
                }
            }
            Event::Drain { .. } if blocked.swap(false, Ordering::SeqCst) => {
                if let Some(go) = &go {
                    let _ = go.try_send(true);
                }
            }
            Event::Error { error, .. } => failure = failure.or(Some(error.to_string())),
            Event::Close { .. } => break,
            _ => {}
        }
    }
    if verbose {
        summary(sent.load(Ordering::SeqCst), received, started);
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Starts the stdin thread; returns the channel that lets it go on after a `Drain`.
fn stdin_to(
    driver: &Driver,
    id: TcpId,
    blocked: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) -> SyncSender<bool> {
    let handle = driver.handle();
    let (go_tx, go_rx) = sync_channel::<bool>(1);
    let go = go_tx.clone();
    thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = handle.run(move |driver| {
                        let _ = driver.halfclose(id);
                    });
                    return;
                }
                Ok(n) => n,
            };
            let chunk = buf[..n].to_vec();
            let (go, blocked, sent) = (go.clone(), Arc::clone(&blocked), Arc::clone(&sent));
            let handed = handle.run(move |driver| {
                let len = chunk.len() as u64;
                match driver.send(id, chunk) {
                    Ok(below) => {
                        sent.fetch_add(len, Ordering::SeqCst);
                        if below {
                            let _ = go.try_send(true);
                        } else {
                            blocked.store(true, Ordering::SeqCst);
                        }
                    }
                    Err(_) => _ = go.try_send(false), // not open any more
                }
            });
            if handed.is_err() || !go_rx.recv().unwrap_or(false) {
                return;
            }
        }
    });
    go_tx
}

/// One line per spec event on stderr.
pub fn log(driver: &Driver, event: &Event) {
    match event {
        Event::Open {
            id: SocketId::TcpId(id),
        } => {
            let s = driver.tcp(*id);
            let local = s.and_then(|s| s.local_address());
            let remote = s.and_then(|s| s.remote_address());
            match (local, remote) {
                (Some(l), Some(r)) => eprintln!("sockcat: {id} open {l} -> {r}"),
                _ => eprintln!("sockcat: {id} open"),
            }
        }
        Event::Open { id } => eprintln!("sockcat: {id} open"),
        Event::Data { id, data } => eprintln!("sockcat: {id} data {} bytes", data.len()),
        Event::Drain { id } => eprintln!("sockcat: {id} drain"),
        Event::HalfClose { id } => eprintln!("sockcat: {id} halfclose"),
        Event::Error { id, error } => eprintln!("sockcat: {id} error {error}"),
        Event::Close { id } => eprintln!("sockcat: {id} close"),
        other => eprintln!("sockcat: {other:?}"),
    }
}

/// Bytes each way, seconds and throughput, on stderr.
pub fn summary(sent: u64, received: u64, started: Instant) {
    let seconds = started.elapsed().as_secs_f64();
    let mb_s = (sent + received) as f64 / 1e6 / seconds.max(1e-9);
    eprintln!(
        "sockcat: sent {sent} bytes, received {received} bytes in {seconds:.3} s ({mb_s:.1} MB/s)"
    );
}
