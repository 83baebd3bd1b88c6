//! The three echo servers, each on one thread in its own process. Each listens on an
//! ephemeral port of 127.0.0.1 with the same backlog, prints `ready <port>`, echoes until
//! `conns` connections have come and gone, then prints
//! `served <connections> <faults> <user µs> <system µs> <peak RSS KiB>` and exits.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use polling::{Event as Readiness, Events, Poller};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use sockstate_driver::{
    BinaryType, Bytes, Config, Data, Driver, Event, ServerOptions, SocketId, TcpId,
};

use crate::procs::{cpu_us, watchdog};

/// Prints the closing report line.
fn served(connections: usize, faults: u64) {
    let (user, system) = cpu_us();
    let peak = crate::common::peak_rss_kib();
    println!("served {connections} {faults} {user} {system} {peak}");
}

fn ready(port: u16) {
    println!("ready {port}");
}

/// `sockstate_driver::Driver`: `listen`, and every accepted socket sends back what it
/// receives (the received `Bytes` itself), honouring `send`'s `false` by suspending the socket
/// until its `Drain`.
pub fn driver(conns: usize, backlog: u32, limit: Duration) -> Result<(), String> {
    watchdog(limit + Duration::from_secs(2));
    let end = Instant::now() + limit;
    let mut driver = Driver::new(Config::default()).map_err(|e| format!("driver: {e}"))?;
    let server = driver
        .listen(
            ServerOptions::default()
                .local_address(Some(Ipv4Addr::LOCALHOST.into()))
                .backlog(backlog)
                .binary_type(BinaryType::ArrayBuffer),
        )
        .map_err(|e| format!("listen: {e}"))?;
    let mut events = Vec::new();
    let mut suspended: Vec<TcpId> = Vec::new();
    let (mut closed, mut faults) = (0, 0);
    while closed < conns {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("driver server overran: {closed} of {conns} closed"));
        }
        events.clear();
        driver.next_events(Some(left), &mut events);
        for event in events.drain(..) {
            match event {
                Event::Open {
                    id: SocketId::ServerId(_),
                } => {
                    let local = driver.server(server).and_then(|s| s.local_address());
                    ready(local.map_or(0, |a| a.port()));
                }
                Event::Data { id, data } => {
                    let data = match data {
                        Data::Bytes(b) => b,
                        Data::Text(t) => Bytes::from(t),
                    };
                    match driver.send(id, data) {
                        Ok(true) => {}
                        Ok(false) if !suspended.contains(&id) => {
                            suspended.push(id);
                            let _ = driver.suspend(id);
                        }
                        Ok(false) => {}
                        Err(_) => faults += 1,
                    }
                }
                Event::Drain {
                    id: SocketId::TcpId(id),
                } => {
                    if let Some(at) = suspended.iter().position(|&s| s == id) {
                        suspended.swap_remove(at);
                        let _ = driver.resume(id);
                    }
                }
                Event::Close {
                    id: SocketId::TcpId(id),
                } => {
                    closed += 1;
                    suspended.retain(|&s| s != id);
                }
                Event::Close { .. } => return Err("the listening socket closed".into()),
                Event::Error { .. } => faults += 1,
                _ => {}
            }
        }
    }
    let d = driver.diagnostics();
    faults += d.input_errors + d.poll_errors;
    served(closed, faults);
    Ok(())
}

/// A listening socket on 127.0.0.1, ephemeral port, with `backlog`.
fn listener(backlog: u32) -> Result<TcpListener, String> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| format!("socket: {e}"))?;
    socket
        .set_reuse_address(true)
        .and_then(|()| socket.bind(&SockAddr::from(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))))
        .and_then(|()| socket.listen(backlog as i32))
        .and_then(|()| socket.set_nonblocking(true))
        .map_err(|e| format!("listen: {e}"))?;
    Ok(socket.into())
}

/// A connection of the `polling` server: the stream and what the OS did not take yet.
struct Conn {
    stream: TcpStream,
    unsent: Vec<u8>,
}

/// The listener's key (polling reserves `usize::MAX`).
const LISTENER: usize = usize::MAX - 1;

/// A hand-written one-shot `polling` 3 loop, as a competent user writes it: connections in a
/// slab (keys reused only after the batch that freed them), one shared read buffer, every
/// source re-armed with `modify` after each event, `wait` appending (so events are cleared
/// first), and a source deleted before it is closed.
pub fn polling(conns: usize, backlog: u32, limit: Duration) -> Result<(), String> {
    watchdog(limit + Duration::from_secs(2));
    let end = Instant::now() + limit;
    let err = |what: &'static str| move |e: io::Error| format!("{what}: {e}");
    let listener = listener(backlog)?;
    let port = listener.local_addr().map_err(err("local_addr"))?.port();
    let poller = Poller::new().map_err(err("poller"))?;
    // SAFETY: the listener is deleted from the poller before it is dropped (at the end).
    unsafe { poller.add(&listener, Readiness::readable(LISTENER)) }.map_err(err("add"))?;
    ready(port);
    let mut slab: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut freed: Vec<usize> = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut events = Events::new();
    let (mut closed, mut faults) = (0, 0u64);
    while closed < conns {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "polling server overran: {closed} of {conns} closed"
            ));
        }
        events.clear();
        poller.wait(&mut events, Some(left)).map_err(err("wait"))?;
        for ev in events.iter() {
            if ev.key == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            if stream.set_nonblocking(true).is_err()
                                || stream.set_nodelay(true).is_err()
                            {
                                faults += 1;
                                continue;
                            }
                            let key = free.pop().unwrap_or(slab.len());
                            // SAFETY: deleted from the poller before it is dropped (below).
                            unsafe { poller.add(&stream, Readiness::readable(key)) }
                                .map_err(err("add"))?;
                            let conn = Conn {
                                stream,
                                unsent: Vec::new(),
                            };
                            if key == slab.len() {
                                slab.push(Some(conn));
                            } else {
                                slab[key] = Some(conn);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                        Err(e) => return Err(format!("accept: {e}")),
                    }
                }
                poller
                    .modify(&listener, Readiness::readable(LISTENER))
                    .map_err(err("modify"))?;
                continue;
            }
            let Some(conn) = slab.get_mut(ev.key).and_then(Option::as_mut) else {
                continue;
            };
            let mut open = true;
            if ev.writable && !conn.unsent.is_empty() {
                match conn.stream.write(&conn.unsent) {
                    Ok(n) => drop(conn.unsent.drain(..n)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => open = false,
                }
            }
            // Read only while everything read so far went out (back-pressure).
            while open && ev.readable && conn.unsent.is_empty() {
                match conn.stream.read(&mut buf) {
                    Ok(0) => open = false,
                    Ok(n) => {
                        match conn.stream.write(&buf[..n]) {
                            Ok(w) => conn.unsent.extend_from_slice(&buf[w..n]),
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                                conn.unsent.extend_from_slice(&buf[..n])
                            }
                            Err(_) => open = false,
                        }
                        if n < buf.len() {
                            break; // most likely drained; the re-armed interest says if not
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => open = false,
                }
            }
            if open {
                let interest = if conn.unsent.is_empty() {
                    Readiness::readable(ev.key)
                } else {
                    Readiness::writable(ev.key)
                };
                poller
                    .modify(&conn.stream, interest)
                    .map_err(err("modify"))?;
            } else {
                poller.delete(&conn.stream).map_err(err("delete"))?;
                slab[ev.key] = None;
                freed.push(ev.key);
                closed += 1;
            }
        }
        free.append(&mut freed);
    }
    poller.delete(&listener).map_err(err("delete"))?;
    served(closed, faults);
    Ok(())
}

/// Counts tasks down and wakes the one waiting for zero.
struct WaitGroup {
    left: AtomicUsize,
    waker: Mutex<Option<Waker>>,
}

impl WaitGroup {
    fn done(&self) {
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(w) = self.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }

    async fn wait(&self) {
        std::future::poll_fn(|cx| {
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            if self.left.load(Ordering::Acquire) == 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// tokio's current-thread runtime, a task per connection with its own 1 KiB buffer (tokio's
/// echo example).
pub fn tokio(conns: usize, backlog: u32, limit: Duration) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    watchdog(limit + Duration::from_secs(2));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let served_ok = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
        socket
            .set_reuseaddr(true)
            .map_err(|e| format!("reuse: {e}"))?;
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .map_err(|e| format!("bind: {e}"))?;
        let listener = socket.listen(backlog).map_err(|e| format!("listen: {e}"))?;
        let port = listener.local_addr().map_err(|e| format!("{e}"))?.port();
        ready(port);
        let group = Arc::new(WaitGroup {
            left: AtomicUsize::new(conns),
            waker: Mutex::new(None),
        });
        let faults = Arc::new(AtomicUsize::new(0));
        let work = async {
            for _ in 0..conns {
                let (mut stream, _) = listener
                    .accept()
                    .await
                    .map_err(|e| format!("accept: {e}"))?;
                let _ = stream.set_nodelay(true);
                let group = Arc::clone(&group);
                let faults = Arc::clone(&faults);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 1024];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) => break,
                            Ok(n) => {
                                if stream.write_all(&buf[..n]).await.is_err() {
                                    faults.fetch_add(1, Ordering::Relaxed);
                                    break;
                                }
                            }
                            Err(_) => {
                                faults.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                        }
                    }
                    drop(stream);
                    group.done();
                });
            }
            group.wait().await;
            Ok::<_, String>(())
        };
        tokio::time::timeout(limit, work)
            .await
            .map_err(|_| "tokio server overran".to_owned())??;
        Ok::<_, String>(faults.load(Ordering::Relaxed) as u64)
    })?;
    served(conns, served_ok);
    Ok(())
}
