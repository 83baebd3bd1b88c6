//! Name resolution off the loop thread: a small pool of worker threads calls the system
//! resolver (`getaddrinfo` through [`ToSocketAddrs`]) and hands each answer back through the
//! shared [`Mailbox`], waking the loop with `Poller::notify`. The loop thread never blocks on
//! a lookup.

use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

use sockstate::{ResolveError, SocketId};

use crate::mailbox::Mailbox;

/// One answer: the socket that asked and its addresses, in the resolver's order.
pub(crate) type Answer = (SocketId, Result<Vec<IpAddr>, ResolveError>);

struct Job {
    id: SocketId,
    name: String,
}

/// The pool. Threads are started on demand, up to `max_threads`, and end when the pool is
/// dropped (a thread inside a slow lookup ends when that lookup returns).
pub(crate) struct Resolver {
    jobs: Sender<Job>,
    queue: Arc<Mutex<Receiver<Job>>>,
    mailbox: Arc<Mailbox>,
    threads: usize,
    max_threads: usize,
    /// Lookups submitted whose answer has not been taken yet.
    outstanding: usize,
}

impl Resolver {
    pub(crate) fn new(mailbox: Arc<Mailbox>, max_threads: usize) -> Resolver {
        let (jobs, queue) = channel();
        Resolver {
            jobs,
            queue: Arc::new(Mutex::new(queue)),
            mailbox,
            threads: 0,
            max_threads: max_threads.max(1),
            outstanding: 0,
        }
    }

    /// Starts resolving `name` for `id`. If no worker can be started at all, the answer is an
    /// immediate `ResolveError::Other` (delivered like any other answer).
    pub(crate) fn submit(&mut self, id: SocketId, name: &str) {
        self.outstanding += 1;
        if self.outstanding > self.threads && self.threads < self.max_threads {
            let queue = Arc::clone(&self.queue);
            let mailbox = Arc::clone(&self.mailbox);
            let spawned = thread::Builder::new()
                .name("sockstate-dns".into())
                .spawn(move || worker(&queue, &mailbox));
            if spawned.is_ok() {
                self.threads += 1;
            }
        }
        if self.threads == 0 {
            self.mailbox.answer((id, Err(ResolveError::Other)));
            return;
        }
        let name = name.to_owned();
        if self.jobs.send(Job { id, name }).is_err() {
            self.mailbox.answer((id, Err(ResolveError::Other)));
        }
    }

    /// Counts an answer taken from the mailbox.
    pub(crate) fn answered(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
    }
}

fn worker(queue: &Mutex<Receiver<Job>>, mailbox: &Mailbox) {
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job { id, name }) = job else {
            return; // the pool was dropped
        };
        mailbox.answer((id, resolve(&name)));
    }
}

/// Asks the system resolver for every address of `name`, keeping its order.
pub(crate) fn resolve(name: &str) -> Result<Vec<IpAddr>, ResolveError> {
    match (name, 0u16).to_socket_addrs() {
        Ok(addrs) => {
            let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
            if ips.is_empty() {
                Err(ResolveError::NotFound)
            } else {
                Ok(ips)
            }
        }
        Err(e) => {
            // getaddrinfo's EAI_AGAIN; std reports resolver failures only as text.
            let text = e.to_string();
            if text.contains("Temporary failure") || text.contains("try again") {
                Err(ResolveError::Temporary)
            } else {
                Err(ResolveError::NotFound)
            }
        }
    }
}
