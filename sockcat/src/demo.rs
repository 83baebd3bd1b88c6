//! `sockcat demo`: the API at work in one process, on loopback only, with nothing to set up.
//! Four scenes, each bounded in time, every spec event printed as it happens:
//!
//! 1. a server and a client: a 65 539-byte `send` returns `false`, the echo comes back, `Drain`;
//! 2. STARTTLS: a plaintext prelude, then `upgradeToSecure()` on both ends;
//! 3. a secure server (`useSecureTransport`) on a certificate made at start;
//! 4. UDP multicast on 127.0.0.1 with `loopback`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use std::sync::Arc;

use sockstate::tls::ClientConfig;
use sockstate_driver::{
    BinaryType, Config, Data, Driver, Event, ServerOptions, SocketId, TcpId, TcpOptions, UdpId,
    UdpOptions,
};

use crate::certs;
use crate::pipe::describe;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Each scene must end within this.
const SCENE_TIME: Duration = Duration::from_secs(10);

/// What the demo counts for its summary.
#[derive(Default)]
struct Tally {
    events: usize,
    bytes: usize,
    messages: usize,
}

/// The loop of one scene: prints each event and gives it to `on`, until `on` says the scene
/// is over (`Ok(true)`), fails, an `Error` event arrives, or time runs out.
fn scene(
    driver: &mut Driver,
    tally: &mut Tally,
    name: &str,
    mut on: impl FnMut(&mut Driver, &Event) -> Result<bool, String>,
) -> Result<(), String> {
    println!("\n== {name}");
    let end = Instant::now() + SCENE_TIME;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "demo: the scene \"{name}\" did not end in {SCENE_TIME:?}"
            ));
        }
        let Some(event) = driver.next_event(Some(left)) else {
            continue;
        };
        tally.events += 1;
        match &event {
            Event::Data { data, .. } => tally.bytes += data.len(),
            Event::Message { .. } => tally.messages += 1,
            _ => {}
        }
        println!("   {}", describe(driver.core(), &event));
        if let Event::Error { error, .. } = &event {
            return Err(format!("demo: unexpected error in \"{name}\": {error}"));
        }
        if on(driver, &event)? {
            return Ok(());
        }
    }
}

/// A scene of one server on 127.0.0.1 and one client of it. The client is opened once the
/// server is, the server is closed once both sockets have closed, and the scene ends with the
/// server's `Close`; an `Error` fails it. `on` sees every other event, with the client's id.
fn pair_scene(
    driver: &mut Driver,
    tally: &mut Tally,
    name: &str,
    server: ServerOptions,
    client: TcpOptions,
    mut on: impl FnMut(&mut Driver, &Event, TcpId) -> Result<(), String>,
) -> Result<(), String> {
    let server = driver
        .listen(server.local_address(Some(LOOPBACK)))
        .map_err(api)?;
    let mut client_id = None;
    let mut closes = 0;
    scene(driver, tally, name, |driver, event| {
        match (event, client_id) {
            (Event::Open { id }, _) if *id == SocketId::from(server) => {
                let port = driver
                    .server(server)
                    .and_then(|s| s.local_address())
                    .map_or(0, |a| a.port());
                let id = driver
                    .tcp_open("127.0.0.1", port, client.clone())
                    .map_err(api)?;
                client_id = Some(id);
            }
            (
                Event::Close {
                    id: SocketId::TcpId(_),
                },
                _,
            ) => {
                closes += 1;
                if closes == 2 {
                    let _ = driver.close(server);
                }
            }
            (
                Event::Close {
                    id: SocketId::ServerId(_),
                },
                _,
            ) => return Ok(true),
            (other, Some(client)) => on(driver, other, client)?,
            (_, None) => {}
        }
        Ok(false)
    })
}

fn api(e: sockstate_driver::ApiError) -> String {
    e.to_string()
}

pub fn run(_verbose: bool) -> Result<(), String> {
    let started = Instant::now();
    let mut driver = crate::new_driver(
        Config::default()
            // Multicast stays on this machine.
            .multicast_interface_v4(Some(Ipv4Addr::LOCALHOST)),
    )?;
    let mut tally = Tally::default();
    drain_and_echo(&mut driver, &mut tally)?;
    let identity = certs::self_signed()?;
    let trust = certs::client_trusting(vec![identity.cert.clone()])?;
    starttls(&mut driver, &mut tally, &identity, &trust)?;
    secure_server(&mut driver, &mut tally, &identity, &trust)?;
    multicast(&mut driver, &mut tally)?;
    println!(
        "\n== summary\n   4 scenes passed: {} events, {} bytes received over TCP, {} datagrams, \
         in {:.2} s",
        tally.events,
        tally.bytes,
        tally.messages,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Scene 1: a send above the high-water mark returns `false`; `Drain` follows once the OS
/// took it all; the server echoes it back.
fn drain_and_echo(driver: &mut Driver, tally: &mut Tally) -> Result<(), String> {
    const SIZE: usize = 65_539;
    let server = ServerOptions::default().binary_type(BinaryType::ArrayBuffer);
    let client = TcpOptions::default().binary_type(BinaryType::ArrayBuffer);
    let mut echoed = 0;
    let name = "TCP: a send that returns false, then drain";
    pair_scene(
        driver,
        tally,
        name,
        server,
        client,
        |driver, event, client| {
            match event {
                Event::Open { .. } => {
                    let below = driver.send(client, vec![b'x'; SIZE]).map_err(api)?;
                    let buffered = driver.tcp(client).map_or(0, |s| s.buffered_amount());
                    println!(
                        "   send({SIZE} bytes) returned {below}; bufferedAmount is {buffered}"
                    );
                }
                Event::Drain {
                    id: SocketId::TcpId(id),
                } => {
                    let buffered = driver.tcp(*id).map_or(0, |s| s.buffered_amount());
                    println!("   bufferedAmount is {buffered} at drain");
                }
                Event::Data { id, data } if *id == client => {
                    echoed += data.len();
                    if echoed == SIZE {
                        println!("   all {SIZE} bytes came back; the client closes");
                        driver.close(client).map_err(api)?;
                    }
                }
                // The server's end echoes.
                Event::Data { id, data } => {
                    driver.send(*id, data.as_bytes().to_vec()).map_err(api)?;
                }
                _ => {}
            }
            Ok(())
        },
    )
}

/// Scene 2: an SMTP-like prelude in plaintext, then `upgradeToSecure()` on both ends.
fn starttls(
    driver: &mut Driver,
    tally: &mut Tally,
    identity: &certs::SelfSigned,
    trust: &Arc<ClientConfig>,
) -> Result<(), String> {
    let server = ServerOptions::default().tls_config(Some(identity.server.clone()));
    let client = TcpOptions::default().tls_config(Some(trust.clone()));
    let mut lines: HashMap<TcpId, String> = HashMap::new();
    let name = "STARTTLS: plaintext prelude, then upgradeToSecure()";
    pair_scene(
        driver,
        tally,
        name,
        server,
        client,
        |driver, event, client| {
            let (id, text) = match event {
                Event::Connect { socket, .. } => {
                    driver.send(*socket, "220 ready\r\n").map_err(api)?;
                    return Ok(());
                }
                Event::Data {
                    id,
                    data: Data::Text(text),
                } => (*id, text),
                _ => return Ok(()),
            };
            let pending = lines.entry(id).or_default();
            pending.push_str(text);
            while let Some(end) = pending.find("\r\n") {
                let line: String = pending.drain(..end + 2).collect();
                match (id == client, line.trim_end()) {
                    (true, "220 ready") => _ = driver.send(id, "STARTTLS\r\n").map_err(api)?,
                    (false, "STARTTLS") => {
                        driver.send(id, "220 go ahead\r\n").map_err(api)?;
                        driver.upgrade_to_secure(id).map_err(api)?;
                        println!("   {id} upgradeToSecure(), the server's end");
                    }
                    (true, "220 go ahead") => {
                        driver.upgrade_to_secure(id).map_err(api)?;
                        println!("   {id} upgradeToSecure(), the client's end");
                        driver.send(id, "a secret, encrypted\r\n").map_err(api)?;
                    }
                    (false, "a secret, encrypted") => {
                        _ = driver.send(id, "250 ok\r\n").map_err(api)?
                    }
                    (true, "250 ok") => driver.close(id).map_err(api)?,
                    (_, other) => return Err(format!("demo: unexpected line {other:?}")),
                }
            }
            Ok(())
        },
    )
}

/// Scene 3: a secure server; the client's `Open` fires after a verified handshake.
fn secure_server(
    driver: &mut Driver,
    tally: &mut Tally,
    identity: &certs::SelfSigned,
    trust: &Arc<ClientConfig>,
) -> Result<(), String> {
    let server = ServerOptions::default()
        .use_secure_transport(true)
        .tls_config(Some(identity.server.clone()));
    let client = TcpOptions::default()
        .use_secure_transport(true)
        .tls_config(Some(trust.clone()));
    let name = "a secure server (useSecureTransport)";
    pair_scene(
        driver,
        tally,
        name,
        server,
        client,
        |driver, event, client| {
            match event {
                Event::Open { .. } => {
                    let ssl = driver.tcp(client).is_some_and(|s| s.ssl());
                    println!("   the handshake is done and verified (ssl: {ssl})");
                    driver.send(client, "hello, secure server").map_err(api)?;
                }
                Event::Data { id, data } if *id != client => {
                    let echo = format!("echo: {}", String::from_utf8_lossy(data.as_bytes()));
                    driver.send(*id, echo).map_err(api)?;
                }
                Event::Data { .. } => driver.close(client).map_err(api)?,
                _ => {}
            }
            Ok(())
        },
    )
}

/// Scene 4: a member joins a group on 127.0.0.1; a sender with `loopback` sends to it.
fn multicast(driver: &mut Driver, tally: &mut Tally) -> Result<(), String> {
    // An administratively scoped group, different per process so that demos do not mix.
    let pid = std::process::id();
    let group = IpAddr::V4(Ipv4Addr::new(
        239,
        255,
        (pid % 251) as u8,
        (pid / 251 % 251) as u8 + 1,
    ));
    let member: UdpId = driver.udp_open(UdpOptions::default()).map_err(api)?;
    let sender: UdpId = driver
        .udp_open(UdpOptions::default().loopback(true))
        .map_err(api)?;
    let (mut opened, mut closes) = (0, 0);
    scene(
        driver,
        tally,
        "UDP multicast on 127.0.0.1 with loopback",
        |driver, event| {
            match event {
                Event::Open { id } => {
                    if *id == SocketId::from(member) {
                        driver.join_multicast_group(member, group).map_err(api)?;
                        println!("   {member} joined {group} on 127.0.0.1");
                    }
                    opened += 1;
                    if opened == 2 {
                        let port = driver
                            .udp(member)
                            .and_then(|s| s.local_address())
                            .map_or(0, |a| a.port());
                        let to = SocketAddr::new(group, port);
                        driver
                            .send_to(sender, "hello, group", Some(to))
                            .map_err(api)?;
                    }
                }
                Event::Message { .. } => {
                    driver.close(member).map_err(api)?;
                    driver.close(sender).map_err(api)?;
                }
                Event::Close { .. } => {
                    closes += 1;
                    return Ok(closes == 2);
                }
                _ => {}
            }
            Ok(false)
        },
    )
}
