//! `sockcat --record FILE` on real loopback sessions, and `sockcat replay FILE` printing the
//! transcript of `-v` again, offline (issue 16): plain TCP, a TLS client against
//! `openssl s_server`, a secure server against `openssl s_client`, STARTTLS against Python.

#[path = "../../driver/tests/common/mod.rs"]
mod common;
mod support;

use std::io::Write;
use std::path::PathBuf;

use common::*;
use support::*;

/// A recording file in the temporary directory, removed when dropped.
struct RecFile(PathBuf);

impl RecFile {
    fn new(test: &str) -> RecFile {
        let name = format!("sockcat-{test}-{}.rec", std::process::id());
        RecFile(std::env::temp_dir().join(name))
    }

    fn path(&self) -> String {
        self.0.to_string_lossy().into_owned()
    }
}

impl Drop for RecFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The lines of `-v` a replay can print again: all but the transfer summary and the
/// listening address (not events of the session).
fn transcript<S: AsRef<str>>(lines: impl IntoIterator<Item = S>) -> Vec<String> {
    (lines.into_iter())
        .map(|l| l.as_ref().to_string())
        .filter(|l| {
            l.starts_with("sockcat: ")
                && !l.starts_with("sockcat: sent ")
                && !l.starts_with("sockcat: listening on ")
        })
        .collect()
}

/// `sockcat replay FILE`: its transcript lines (the summary, which must say the recording is
/// complete, taken off).
#[track_caller]
fn replayed(file: &RecFile) -> Vec<String> {
    let out = sockcat(&["replay", &file.path()], Vec::new(), 30);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let summary = lines.pop().unwrap_or_default();
    assert!(
        summary.starts_with("sockcat: replay: ") && summary.ends_with("complete"),
        "{summary}"
    );
    lines
}

/// Asserts that `lines` hold a TLS handshake's line and application data received after it.
#[track_caller]
fn has_tls_and_data(lines: &[String], data: &str) {
    let tls = lines.iter().position(|l| l.contains(" TLS version TLSv1_"));
    let data = (lines.iter()).position(|l| l.contains(&format!(" data, {data:?}")));
    assert!(tls.is_some() && data > tls, "{lines:#?}");
}

#[test]
fn a_recorded_session_replays_to_the_lines_of_verbose() {
    let _w = watchdog("sockcat record", 60);
    let peer = Peer::python(ECHO_SERVER, &["127.0.0.1"]);
    let port = peer.port().to_string();
    let file = RecFile::new("plain");
    let path = file.path();
    let input = b"hello\nthrough a recording\n".to_vec();
    let args = ["--record", &path, "-v", "connect", "127.0.0.1", &port];
    let out = sockcat(&args, input.clone(), 30);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, input);
    assert_eq!(replayed(&file), transcript(stderr(&out).lines()));
    // A recording of another format version is one clear line and exit status 1.
    let mut data = std::fs::read(&file.0).unwrap();
    data[8] = 99;
    std::fs::write(&file.0, &data).unwrap();
    let out = sockcat(&["replay", &path], Vec::new(), 30);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("format version 99 is not supported"),
        "{}",
        stderr(&out)
    );
}

/// A TLS client session against `openssl s_server -rev` (it answers each line reversed):
/// TLS 1.3 with a client certificate and ALPN, and TLS 1.2; replayed whole.
#[test]
fn a_tls_client_session_with_openssl_s_server_replays_whole() {
    if !have("openssl") {
        return;
    }
    let _w = watchdog("sockcat replay tls client", 90);
    let pki = Pki::new("sockcat-replay-client", &["localhost"]);
    let (ca, client, client_key) = (
        pki.path("ca.pem"),
        pki.path("client.pem"),
        pki.path("client-key.pem"),
    );
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    for version in ["-tls1_3", "-tls1_2"] {
        let port = free_port().to_string();
        let mut server_args = vec!["s_server", "-accept", &port, "-naccept", "1", "-rev"];
        server_args.extend([version, "-cert", &cert, "-key", &key]);
        if version == "-tls1_3" {
            server_args.extend(["-CAfile", &ca, "-Verify", "1", "-alpn", "proto"]);
        }
        let server = Tool::start("openssl", &server_args, None);
        let file = RecFile::new(&format!("client{version}"));
        let path = file.path();
        let mut args = vec!["--record", &path, "-v", "connect", "localhost", &port];
        args.extend(["--tls", "--ca", &ca]);
        if version == "-tls1_3" {
            args.extend(["--cert", &client, "--key", &client_key, "--alpn", "proto"]);
        }
        let out = sockcat_once_listening(&args, b"hello over tls\n", 20);
        let err = stderr(&out);
        assert!(out.status.success(), "{version}: {err}");
        assert_eq!(out.stdout, b"slt revo olleh\n", "{version}: {err}");
        drop(server);
        let live = transcript(err.lines());
        has_tls_and_data(&live, "slt revo olleh\n");
        assert_eq!(replayed(&file), live, "{version}");
        if version == "-tls1_3" && std::env::var_os("SOCKSTATE_WRITE_SEEDS").is_some() {
            // A seed of the `replay_file` fuzz target with every TLS draw kind and config
            // facts: SOCKSTATE_WRITE_SEEDS=1 cargo test -p sockcat --test replay tls_client
            let seed = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/fuzz_corpus/replay_file/sockcat_tls13_client"
            );
            std::fs::copy(&file.0, seed).unwrap();
        }
    }
}

/// A secure server session (`listen --tls`) with `openssl s_client`: data both ways.
#[test]
fn a_secure_server_session_with_openssl_s_client_replays_whole() {
    if !have("openssl") {
        return;
    }
    let _w = watchdog("sockcat replay secure server", 60);
    let pki = Pki::new("sockcat-replay-server", &["localhost"]);
    let file = RecFile::new("server");
    let path = file.path();
    let (cert, key) = (pki.path("cert.pem"), pki.path("key.pem"));
    let args = [
        "--record",
        &path,
        "-v",
        "listen",
        "0",
        "--bind",
        "127.0.0.1",
        "--tls",
        "--cert",
        &cert,
        "--key",
        &key,
    ];
    let server = Running::start(&args, b"from the server\n".to_vec());
    let mut live = server.until("sockcat: listening on ", 10);
    let port = live.last().unwrap().rsplit(':').next().unwrap().to_string();
    let mut client = Tool::start(
        "openssl",
        &[
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
            "-CAfile",
            &pki.path("ca.pem"),
            "-verify_return_error",
        ],
        None,
    );
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"ping over tls\n").unwrap();
    live.extend(server.rest(20));
    let (status, out) = server.wait(5);
    drop(stdin);
    let (client_out, _) = client.finish(5);
    assert!(status.success());
    assert_eq!(out, b"ping over tls\n");
    assert!(client_out.contains("from the server"), "{client_out}");
    let live = transcript(live);
    assert!(
        live.iter()
            .any(|l| l.ends_with(" data, \"ping over tls\\n\"")),
        "{live:#?}"
    );
    assert_eq!(replayed(&file), live);
}

/// STARTTLS (SMTP) against Python's `ssl`: the plaintext prelude, `upgradeToSecure()`, then
/// data over TLS.
#[test]
fn a_starttls_session_replays_whole() {
    let _w = watchdog("sockcat replay starttls", 60);
    let pki = Pki::new("sockcat-replay-starttls", &["localhost"]);
    let peer = Peer::python(
        PY_STARTTLS_SMTP,
        &[&pki.path("cert.pem"), &pki.path("key.pem")],
    );
    let port = peer.port().to_string();
    let file = RecFile::new("starttls");
    let path = file.path();
    let ca = pki.path("ca.pem");
    let args = [
        "--record",
        &path,
        "-v",
        "connect",
        "--starttls",
        "smtp",
        "--ca",
        &ca,
        "localhost",
        &port,
    ];
    let out = sockcat(&args, b"EHLO again\r\n".to_vec(), 30);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(peer.line(10), "ok TLSv1.3 EHLO again");
    let live = transcript(err.lines());
    let upgrade = live.iter().position(|l| l.ends_with(" upgradeToSecure"));
    let data = (live.iter()).position(|l| l.ends_with(" data, \"250 got EHLO again\\r\\n\""));
    assert!(upgrade.is_some() && data > upgrade, "{live:#?}");
    assert_eq!(replayed(&file), live);
}
