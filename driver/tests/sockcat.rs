//! The `sockcat` binary against real peers on loopback.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Runs sockcat with `stdin` as its input; kills it if it runs longer than `secs` seconds.
fn sockcat(args: &[&str], stdin: Vec<u8>, secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockcat"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let writer = thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let end = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("sockcat {args:?} still running after {secs} s");
        }
        thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn connect_pipes_stdin_through_an_echo_server_and_back() {
    let _w = watchdog("sockcat connect", 60);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let port = peer.port().to_string();
    let input = Stream::new(5).take(3 << 20);
    let out = sockcat(&["-v", "connect", "127.0.0.1", &port], input.clone(), 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == input, "the echo differs");
    let err = stderr(&out);
    assert!(err.contains(" open 127.0.0.1:"), "{err}");
    assert!(err.contains(" close"), "{err}");
    assert!(
        err.contains("sent 3145728 bytes, received 3145728 bytes"),
        "{err}"
    );
    assert_eq!(
        peer.line(10),
        format!("{} {}", input.len(), crc32(0, &input))
    );
}

#[test]
fn connect_to_a_refused_port_fails_with_one_line() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let out = sockcat(&["connect", "127.0.0.1", &port.to_string()], vec![], 10);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("sockcat: ConnectionRefusedError"), "{err}");
}

#[test]
fn bad_arguments_fail_clearly_without_a_panic() {
    for args in [
        &["connect", "127.0.0.1", "0"][..],
        &["connect", "127.0.0.1"],
        &["connect", "not a host", "80"],
        &["connect", "nonexistent.invalid", "80"],
        &["frobnicate"],
    ] {
        let out = sockcat(args, vec![], 20);
        let err = stderr(&out);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(!err.trim().is_empty(), "{args:?} said nothing");
    }
}
