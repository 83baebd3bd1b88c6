//! Full TLS 1.3 handshakes per second through `StreamOwned` and through the driver.

use super::bulk::{accept, connect, driver, event, handshake, secure_listen};
use super::epoll::epoll_handshakes;
use super::*;

/// A run of sequential handshakes: its seconds, and the CPU seconds of each end's thread.
#[derive(Clone, Copy, Debug)]
pub(super) struct Handshakes {
    pub(super) secs: f64,
    pub(super) client: f64,
    pub(super) server: f64,
}

/// `count` sequential connections with a full handshake each.
pub(super) fn handshakes(imp: Imp, tls: &Tls, count: usize) -> Handshakes {
    match imp {
        Imp::Driver => driver_handshakes(tls, count),
        Imp::EpollLoop => epoll_handshakes(tls, count),
        _ => blocking_handshakes(tls, count),
    }
}

fn blocking_handshakes(tls: &Tls, count: usize) -> Handshakes {
    let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = tls.server.clone();
    let server = thread::spawn(move || {
        let cpu = thread_cpu();
        for _ in 0..count {
            let stream = accept(&listener);
            let mut s = StreamOwned::new(ServerConnection::new(config.clone()).unwrap(), stream);
            handshake(&mut s.conn, &mut s.sock);
            s.write_all(b"x").unwrap();
            s.conn.send_close_notify();
            s.conn.complete_io(&mut s.sock).unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest); // the client's close_notify
        }
        thread_cpu() - cpu
    });
    timed_client(server, || {
        for _ in 0..count {
            let name = ServerName::IpAddress(LOCALHOST.into());
            let conn = ClientConnection::new(tls.client.clone(), name).unwrap();
            let mut s = StreamOwned::new(conn, connect(addr));
            let mut byte = [0; 1];
            s.read_exact(&mut byte).unwrap();
            s.conn.send_close_notify();
            let _ = s.conn.complete_io(&mut s.sock);
        }
    })
}

/// Runs the client's loop on this thread, timed, then joins the server's thread (which
/// returns its CPU seconds).
pub(super) fn timed_client(server: thread::JoinHandle<f64>, client: impl FnOnce()) -> Handshakes {
    let cpu = thread_cpu();
    let start = Instant::now();
    client();
    let secs = start.elapsed().as_secs_f64();
    let client = thread_cpu() - cpu;
    Handshakes {
        secs,
        client,
        server: server.join().unwrap(),
    }
}

fn driver_handshakes(tls: &Tls, count: usize) -> Handshakes {
    let config = tls.server.clone();
    let (port_tx, port_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let mut driver = driver();
        let mut cpu = 0.0;
        let server = secure_listen(&mut driver, config);
        let mut closed = 0;
        while closed < count {
            match event(&mut driver) {
                Event::Open { .. } => {
                    let local = driver.server(server).unwrap().local_address().unwrap();
                    // From here on, as the blocking server's thread is counted.
                    cpu = thread_cpu();
                    port_tx.send(local.port()).unwrap();
                }
                Event::Connect { socket, .. } => {
                    driver.send(socket, &b"x"[..]).unwrap();
                    driver.close(socket).unwrap();
                }
                Event::Close {
                    id: SocketId::TcpId(_),
                } => closed += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        thread_cpu() - cpu
    });
    let port = port_rx.recv_timeout(STALL).unwrap();
    let mut driver = driver();
    let options = TcpOptions::default()
        .use_secure_transport(true)
        .tls_config(Some(tls.client.clone()))
        .binary_type(BinaryType::ArrayBuffer);
    timed_client(server, || {
        for _ in 0..count {
            let id = driver.tcp_open("127.0.0.1", port, options.clone()).unwrap();
            loop {
                match event(&mut driver) {
                    Event::Open { .. } | Event::HalfClose { .. } => {}
                    Event::Data { .. } => driver.close(id).unwrap(),
                    Event::Close { .. } => break,
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
    })
}
