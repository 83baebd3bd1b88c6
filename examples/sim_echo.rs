//! A client talks to an echo server over the simulated network, once on a clean link and once
//! on a slow, chunking link where the server resets the connection mid-stream. Same seed, same
//! run: the transcript printed is identical every time.
//!
//! ```text
//! cargo run --example sim_echo --features sim [seed]
//! ```

use std::time::Duration;

use sockstate::sim::{Call, Link, Peer, Returned, Sim};
use sockstate::{Data, Event, TcpOptions};

fn main() {
    let seed = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let mut sim = Sim::new(seed);
    let client = sim
        .add_host(
            "client",
            &["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        )
        .unwrap();
    let server = sim
        .add_host(
            "echo.test",
            &["::2".parse().unwrap(), "127.0.0.2".parse().unwrap()],
        )
        .unwrap();
    sim.listen("127.0.0.2:7".parse().unwrap(), Peer::echo())
        .unwrap();
    sim.set_link(
        client,
        server,
        Link::default()
            .latency(Duration::from_millis(20))
            .jitter(Duration::from_millis(5))
            .bandwidth(Some(100_000))
            .max_read(7),
    );

    // The name resolves to ::2 first, where nothing listens: the connect is refused and the
    // second address is tried (RFC 8305).
    let open = Call::TcpOpen {
        host: "echo.test".into(),
        port: 7,
        options: TcpOptions::default(),
    };
    let Ok(Returned::Opened(id)) = sim.call(client, open) else {
        panic!("open refused")
    };
    let mut echoed = String::new();
    while let Some((_, event)) = sim.next_event() {
        match event {
            Event::Open { .. } => {
                let data = "Grüße aus der Simulation!".into();
                sim.call(client, Call::TcpSend { id, data }).unwrap();
            }
            Event::Data {
                data: Data::Text(text),
                ..
            } => {
                echoed.push_str(&text);
                if echoed.ends_with('!') {
                    let conn = sim.conn_of(client, id).unwrap();
                    sim.peer_reset(conn).unwrap();
                }
            }
            Event::Error { error, .. } => println!("error: {error}"),
            _ => {}
        }
    }
    print!("{}", sim.transcript_text());
    println!("echoed {echoed:?} in {:?} of virtual time", sim.now());
    assert_eq!(sim.violations(), []);
}
