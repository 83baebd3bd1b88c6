//! Running the `sockcat` binary in tests, and the peer programs (nc, openssl) it meets.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};
/// Runs sockcat with `stdin` as its input; kills it if it runs longer than `secs` seconds.
pub fn sockcat(args: &[&str], stdin: Vec<u8>, secs: u64) -> Output {
    sockcat_env(args, &[], stdin, secs)
}

/// [`sockcat`] with these environment variables set.
pub fn sockcat_env(args: &[&str], env: &[(&str, &str)], stdin: Vec<u8>, secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockcat"))
        .args(args)
        .envs(env.iter().copied())
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

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A sockcat left running (a server): its stderr lines arrive on a channel; killed on drop.
pub struct Running {
    child: std::process::Child,
    stderr: std::sync::mpsc::Receiver<String>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    pub fn start(args: &[&str], stdin: Vec<u8>) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sockcat"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let mut out = child.stdout.take().unwrap();
        let stdout = thread::spawn(move || {
            let mut v = Vec::new();
            let _ = out.read_to_end(&mut v);
            v
        });
        let err = child.stderr.take().unwrap();
        let (tx, stderr) = std::sync::mpsc::channel();
        thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            child,
            stderr,
            stdout: Some(stdout),
        }
    }

    /// Stderr lines up to and including the first that starts with `prefix`.
    #[track_caller]
    pub fn until(&self, prefix: &str, secs: u64) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => {
                    let found = line.starts_with(prefix);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(_) => panic!("no stderr line {prefix:?} within {secs} s: {lines:?}"),
            }
        }
    }

    /// Every stderr line not yet taken, until sockcat closes its stderr (at most `secs`).
    #[track_caller]
    pub fn rest(&self, secs: u64) -> Vec<String> {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut lines = Vec::new();
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => lines.push(line),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return lines,
                Err(_) => panic!("stderr still open after {secs} s: {lines:?}"),
            }
        }
    }

    /// The port of `sockcat: listening on ADDR:PORT` / `sockcat: bound to ADDR:PORT`.
    #[track_caller]
    pub fn port(&self, prefix: &str) -> u16 {
        let lines = self.until(prefix, 10);
        let line = lines.last().unwrap();
        line.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits for the exit; returns the status and stdout.
    #[track_caller]
    pub fn wait(mut self, secs: u64) -> (std::process::ExitStatus, Vec<u8>) {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let out = self.stdout.take().unwrap().join().unwrap();
                return (status, out);
            }
            assert!(Instant::now() < end, "sockcat still running after {secs} s");
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Running {
    /// Stops it and returns its stdout.
    pub fn kill_and_output(mut self) -> Vec<u8> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.stdout.take().unwrap().join().unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `true` when `program` is on PATH; else says why the test is skipped (CI installs them).
pub fn have(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIPPED: {program} is not installed (.ci/run installs it)");
    }
    found
}

/// A port for peers that cannot print the one they got (nc, openssl): free at the time of
/// asking, on TCP and UDP, and below the kernel's ephemeral range, so that no socket another test
/// binds to port 0 or connects from can take it before the peer binds it. Tests running at once
/// (nextest runs each in its own process) start their search at different places.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768)
        .clamp(2048, 65535);
    let span = ephemeral_low - 1024;
    let start = std::process::id().wrapping_mul(7919) % span;
    for _ in 0..span {
        let port = (1024 + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span) as u16;
        let free = std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if free {
            return port;
        }
    }
    panic!("no free port below the ephemeral range {ephemeral_low}");
}

/// A peer program (nc, openssl) with piped stdio; killed when dropped.
pub struct Tool {
    child: std::process::Child,
    /// Its stdin, when the test writes to it.
    pub stdin: Option<std::process::ChildStdin>,
    stdout: Option<thread::JoinHandle<Vec<u8>>>,
    stderr: Option<thread::JoinHandle<Vec<u8>>>,
}

impl Tool {
    pub fn start(program: &str, args: &[&str], stdin: Option<Vec<u8>>) -> Tool {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take();
        // Written, then closed; or held open for the test to write to.
        if let Some(data) = stdin {
            let mut pipe = input.take().unwrap();
            thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
        }
        let mut out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        Tool {
            child,
            stdin: input,
            stdout: Some(thread::spawn(move || {
                let mut v = Vec::new();
                let _ = out.read_to_end(&mut v);
                v
            })),
            stderr: Some(thread::spawn(move || {
                let mut v = Vec::new();
                let _ = err.read_to_end(&mut v);
                v
            })),
        }
    }

    /// Stops it (if it still runs within `secs`) and returns its stdout and stderr.
    pub fn finish(mut self, secs: u64) -> (String, String) {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let out = self.stdout.take().unwrap().join().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs sockcat until it connects (a peer that cannot say when it listens): retries while the
/// port refuses, at most 50 times.
pub fn sockcat_once_listening(args: &[&str], stdin: &[u8], secs: u64) -> Output {
    sockcat_env_once_listening(args, &[], stdin, secs)
}

/// [`sockcat_once_listening`] with these environment variables set.
pub fn sockcat_env_once_listening(
    args: &[&str],
    env: &[(&str, &str)],
    stdin: &[u8],
    secs: u64,
) -> Output {
    for _ in 0..50 {
        let out = sockcat_env(args, env, stdin.to_vec(), secs);
        if !stderr(&out).contains("refused") {
            return out;
        }
        thread::sleep(Duration::from_millis(100));
    }
    panic!("sockcat {args:?}: still refused after 50 tries");
}
