//! The processes of one run: spawning this program again in a role, reading its report lines
//! with a deadline, killing it when anything goes wrong, and the kernel's counters.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use crate::common::Deadline;

/// A copy of this program running in a role; killed (and reaped) when dropped, and by the
/// kernel if this process dies first (`PR_SET_PDEATHSIG`).
pub struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Proc {
    /// Runs `current_exe() args...` with piped stdin and stdout (stderr is inherited).
    pub fn spawn(name: &'static str, args: &[String]) -> Result<Proc, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = Command::new(exe);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        // SAFETY: `prctl` is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("spawning the {name}: {e}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdin = child.stdin.take();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            name,
            child,
            stdin,
            lines,
        })
    }

    /// The process id (for `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the process prints, whose first word must be `word`; the other words.
    pub fn expect(&self, word: &str, deadline: &Deadline) -> Result<Vec<u64>, String> {
        let line = match self.lines.recv_timeout(deadline.left()) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!("the {} did not say {word:?} in time", self.name))
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(format!("the {} ended before saying {word:?}", self.name))
            }
        };
        let mut words = line.split_whitespace();
        if words.next() != Some(word) {
            return Err(format!("the {} said {line:?}, not {word:?}", self.name));
        }
        words
            .map(|w| {
                w.parse()
                    .map_err(|_| format!("{}: bad line {line:?}", self.name))
            })
            .collect()
    }

    /// Writes a line to the process's stdin.
    pub fn tell(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}").map_err(|e| format!("telling the {}: {e}", self.name))
    }

    /// Waits (at most until `deadline`) for the process to exit by itself, successfully.
    pub fn finish(mut self, deadline: &Deadline) -> Result<(), String> {
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("the {} exited: {status}", self.name)),
                Ok(None) if deadline.left().is_zero() => {
                    return Err(format!("the {} did not exit in time", self.name))
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(format!("waiting for the {}: {e}", self.name)),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `(user, system)` CPU time of this process so far, in microseconds.
pub fn cpu_us() -> (u64, u64) {
    // SAFETY: `getrusage` fills the struct it is given; all-zero is a valid `rusage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    (us(usage.ru_utime), us(usage.ru_stime))
}

/// Kills this process with `SIGALRM` after `limit` whatever it is doing: a child that hangs
/// can never outlive its run.
pub fn watchdog(limit: Duration) {
    // SAFETY: `alarm` has no memory effects.
    unsafe { libc::alarm(limit.as_secs().max(1) as libc::c_uint) };
}

/// The kernel's memory and TCP counters, for what a run cost outside the processes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Kernel {
    /// `/proc/meminfo` `Slab` (socket, file and epoll objects live there), KiB.
    pub slab_kib: u64,
    /// `/proc/net/sockstat` TCP `mem`: pages charged to TCP socket buffers.
    pub tcp_pages: u64,
    /// `/proc/net/netstat` `ListenOverflows` + `ListenDrops`: connections a full accept
    /// queue dropped (each costs the client a 1 s SYN retransmit).
    pub listen_drops: u64,
}

impl Kernel {
    pub fn read() -> Kernel {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let slab_kib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("Slab:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let sockstat = std::fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
        let tcp_pages = sockstat
            .lines()
            .find_map(|l| l.strip_prefix("TCP:"))
            .and_then(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == "mem")?;
                words.get(at + 1)?.parse().ok()
            })
            .unwrap_or(0);
        let netstat = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
        let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
        let listen_drops = match (tcp_ext.next(), tcp_ext.next()) {
            (Some(names), Some(values)) => names
                .split_whitespace()
                .zip(values.split_whitespace())
                .filter(|(n, _)| *n == "ListenOverflows" || *n == "ListenDrops")
                .filter_map(|(_, v)| v.parse::<u64>().ok())
                .sum(),
            _ => 0,
        };
        Kernel {
            slab_kib,
            tcp_pages,
            listen_drops,
        }
    }
}
