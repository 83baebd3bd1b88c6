//! The driver's endpoints: its config, the session recordings (`driver-rec`), accepting and
//! connecting, and the bulk and ping-pong workloads through it.

use super::*;

/// Runs the loop, handing every event to `on` until it returns `Ok(true)`; an `Error` event
/// fails the run.
fn drive(d: &mut Driver, mut on: impl FnMut(&mut Driver, Event) -> Res<bool>) -> Res<()> {
    loop {
        // `None`: timed out; the watchdog bounds the run.
        let Some(event) = d.next_event(Some(WAIT)) else {
            continue;
        };
        if let Event::Error { id, error } = event {
            return Err(format!("{id:?}: {error}"));
        }
        if on(d, event)? {
            return Ok(());
        }
    }
}

/// Bytes the last `driver-rec` client recorded.
pub(super) static RECORDED: AtomicU64 = AtomicU64::new(0);
/// `driver-rec` clients whose recording stopped early (the writer fell behind), of all.
pub(super) static STOPPED: AtomicU64 = AtomicU64::new(0);
pub(super) static RECORDINGS: AtomicU64 = AtomicU64::new(0);

/// The driver config: recording into a file in the temporary directory when `record` (or
/// where `SOCKSTATE_BENCH_RECORD_TO` says: a directory, or `sink` for a writer that takes
/// everything at once, to measure the recorder apart from the disk), with the writer's
/// bound that `SOCKSTATE_BENCH_RECORD_BUFFER` (MiB) gives.
fn driver_config(record: bool, side: &str) -> Config {
    let recording = || {
        let recording = match record_to().as_deref() {
            Some("sink") => Recording::to_writer(io::sink()),
            _ => Recording::to_path(driver_config_file(side)),
        };
        // `SOCKSTATE_BENCH_RECORD_BUFFER`: the writer's bound in MiB instead of the default.
        match std::env::var("SOCKSTATE_BENCH_RECORD_BUFFER").map(|v| v.parse::<usize>()) {
            Ok(Ok(mib)) => recording.buffer(mib << 20),
            _ => recording,
        }
    };
    Config::default().record(record.then(recording))
}

/// `SOCKSTATE_BENCH_RECORD_TO`, if set.
fn record_to() -> Option<String> {
    std::env::var("SOCKSTATE_BENCH_RECORD_TO").ok()
}

/// Where the recordings go, for the report.
pub(super) fn recorded_where() -> String {
    match record_to() {
        Some(to) if to == "sink" => "into io::sink() (no disk)".into(),
        _ => format!("into a file each in {}", record_dir().display()),
    }
}

fn record_dir() -> std::path::PathBuf {
    record_to().map_or_else(std::env::temp_dir, Into::into)
}

/// Notes the client's recorded bytes (`driver-rec`).
fn note_recorded(d: &Driver) {
    if let Some(stats) = d.recording_stats() {
        RECORDED.store(stats.bytes, Ordering::Relaxed);
        RECORDINGS.fetch_add(1, Ordering::Relaxed);
        STOPPED.fetch_add(u64::from(stats.stopped), Ordering::Relaxed);
    }
}

/// Removes the recordings of a run.
fn remove_recordings() {
    for side in ["server", "client"] {
        let _ = std::fs::remove_file(driver_config_file(side));
    }
}

fn driver_config_file(side: &str) -> std::path::PathBuf {
    record_dir().join(format!("sockstate-bench-{side}-{}.rec", std::process::id()))
}

/// A driver that listened on loopback, told `port` where, and accepted one connection
/// (`arraybuffer`); the listener is closed.
fn driver_accept(port: &mpsc::Sender<u16>, record: bool) -> Res<(Driver, TcpId)> {
    let mut d = Driver::new(driver_config(record, "server")).or_fail("driver")?;
    let options = ServerOptions::default()
        .local_address(Some(Ipv4Addr::LOCALHOST.into()))
        .binary_type(BinaryType::ArrayBuffer);
    let server = d.listen(options).or_fail("listen")?;
    let mut accepted = None;
    drive(&mut d, |d, event| match event {
        Event::Open { .. } => {
            let local = d.server(server).and_then(|s| s.local_address());
            let local = local.ok_or("the server has no address")?;
            port.send(local.port()).or_fail("port")?;
            Ok(false)
        }
        Event::Connect { socket, .. } => {
            accepted = Some(socket);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    d.close(server).or_fail("close server")?;
    Ok((d, accepted.ok_or("nothing accepted")?))
}

/// A driver connected to `port` on loopback (`arraybuffer`, `TCP_NODELAY`).
fn driver_connect(port: &mpsc::Receiver<u16>, record: bool) -> Res<(Driver, TcpId)> {
    let port = port.recv_timeout(Duration::from_secs(10)).or_fail("port")?;
    let mut d = Driver::new(driver_config(record, "client")).or_fail("driver")?;
    let options = TcpOptions::default()
        .binary_type(BinaryType::ArrayBuffer)
        .no_delay(true);
    let id = d.tcp_open("127.0.0.1", port, options).or_fail("open")?;
    drive(&mut d, |_, event| Ok(matches!(event, Event::Open { .. })))?;
    Ok((d, id))
}

/// The driver's pair: server and client on their own threads.
fn driver_pair<S: Send + 'static, C: Send + 'static>(
    record: bool,
    server: impl FnOnce(Driver, TcpId) -> Res<S> + Send + 'static,
    client: impl FnOnce(Driver, TcpId) -> Res<C> + Send + 'static,
) -> Res<(S, C, Sched)> {
    let (tx, rx) = mpsc::channel();
    let barrier = Arc::new(Barrier::new(2));
    let b = Arc::clone(&barrier);
    let server = thread::spawn(move || {
        let (d, id) = driver_accept(&tx, record)?;
        measured(&b, || server(d, id))
    });
    let client = thread::spawn(move || {
        let (d, id) = driver_connect(&rx, record)?;
        measured(&barrier, || client(d, id))
    });
    both(server, client)
}

/// Whether `event` is the `Close` of `id`.
fn closed(event: &Event, id: TcpId) -> bool {
    matches!(event, Event::Close { id: SocketId::TcpId(i) } if *i == id)
}

/// Sends the pattern while `send` returns `true` (the caller calls again on `Drain`).
fn fill(d: &mut Driver, id: TcpId, pattern: &Pattern, sent: &mut u64, total: u64) -> Res<()> {
    while *sent < total {
        let chunk = pattern.bytes(*sent, total);
        *sent += chunk.len() as u64;
        if !d.send(id, chunk).or_fail("send")? {
            break;
        }
    }
    Ok(())
}

pub(super) fn driver_bulk(pattern: &Pattern, total: u64, record: bool) -> Res<Bulk> {
    let p = pattern.clone();
    let server = move |mut d: Driver, id: TcpId| {
        let mut received = Received::new(total);
        let (mut sent, mut t1) = (0, None);
        drive(&mut d, |d, event| {
            match event {
                Event::Data { data, .. } => {
                    received.take(data.as_bytes())?;
                    if received.done() {
                        t1 = Some(Instant::now());
                        fill(d, id, &p, &mut sent, total)?;
                    }
                }
                Event::Drain { .. } => fill(d, id, &p, &mut sent, total)?,
                ref e if closed(e, id) => return Ok(true),
                _ => {}
            }
            if sent == total
                && d.tcp(id)
                    .is_some_and(|s| s.ready_state() == ReadyState::Open)
            {
                d.close(id).or_fail("close")?; // flushes, then FIN
            }
            Ok(false)
        })?;
        if !received.done() || sent != total {
            return Err(format!("received {}, sent {sent}", received.got));
        }
        t1.ok_or_else(|| "never done".to_owned())
    };
    let p = pattern.clone();
    let client = move |mut d: Driver, id: TcpId| {
        let t0 = Instant::now();
        let mut received = Received::new(total);
        let (mut sent, mut t2) = (0, None);
        fill(&mut d, id, &p, &mut sent, total)?;
        drive(&mut d, |d, event| {
            match event {
                Event::Drain { .. } => fill(d, id, &p, &mut sent, total)?,
                Event::Data { data, .. } => {
                    received.take(data.as_bytes())?;
                    if received.done() {
                        t2 = Some(Instant::now());
                        d.close(id).or_fail("close")?;
                    }
                }
                ref e if closed(e, id) => return Ok(true),
                _ => {}
            }
            Ok(false)
        })?;
        note_recorded(&d);
        Ok((t0, t2.ok_or("the download never completed")?))
    };
    let pair = driver_pair(record, server, client);
    remove_recordings();
    let (t1, (t0, t2), sched) = pair?;
    Ok(Bulk::new(t0, t1, t2, sched))
}

pub(super) fn driver_pingpong(
    count: usize,
    limit: Duration,
    smoke: bool,
    record: bool,
) -> Res<PingPong> {
    let server = |mut d: Driver, id: TcpId| {
        drive(&mut d, |d, event| match event {
            Event::Data {
                data: Data::Bytes(data),
                ..
            } => {
                d.send(id, data).or_fail("send")?;
                Ok(false)
            }
            Event::Data { .. } => Err("text on an arraybuffer socket".into()),
            ref e => Ok(closed(e, id)),
        })
    };
    let client = move |mut d: Driver, id: TcpId| {
        let mut pinger = Pinger::new(count, limit);
        let mut reply = Vec::with_capacity(MSG);
        let next = |d: &mut Driver, pinger: &mut Pinger| match pinger.next() {
            Some(msg) => d.send(id, Bytes::copy_from_slice(&msg)).map(drop),
            None => d.close(id),
        };
        next(&mut d, &mut pinger).or_fail("send")?;
        drive(&mut d, |d, event| {
            match event {
                Event::Data { data, .. } => {
                    let data = data.as_bytes();
                    if reply.is_empty() && data.len() == MSG {
                        pinger.reply(data)?;
                    } else {
                        reply.extend_from_slice(data);
                        if reply.len() < MSG {
                            return Ok(false);
                        }
                        pinger.reply(&reply)?;
                        reply.clear();
                    }
                    next(d, &mut pinger).or_fail("send")?;
                }
                ref e if closed(e, id) => return Ok(true),
                _ => {}
            }
            Ok(false)
        })?;
        note_recorded(&d);
        Ok(pinger)
    };
    let pair = driver_pair(record, server, client);
    remove_recordings();
    let (_, pinger, sched) = pair?;
    let mut result = pinger.result(sched, smoke)?;
    result.recorded = if record {
        RECORDED.load(Ordering::Relaxed)
    } else {
        0
    };
    Ok(result)
}
