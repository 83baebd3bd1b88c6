//! What other threads hand the loop thread: resolver answers and tasks from a [`Handle`],
//! each followed by `Poller::notify` so that a waiting loop wakes at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use polling::Poller;

use crate::dns::Answer;
use crate::Driver;

/// Work a [`Handle`] hands to the loop thread.
pub(crate) type Task = Box<dyn FnOnce(&mut Driver) + Send>;

/// Shared between the loop, the resolver threads and every [`Handle`].
pub(crate) struct Mailbox {
    pub(crate) poller: Poller,
    answers: Mutex<Vec<Answer>>,
    tasks: Mutex<Vec<Task>>,
    /// Set after an answer or task is added, cleared when the loop takes them: the loop looks
    /// at this on every turn instead of taking two locks.
    pending: AtomicBool,
    /// Cleared when the driver is dropped: tasks are refused from then on.
    open: AtomicBool,
}

impl Mailbox {
    pub(crate) fn new(poller: Poller) -> Mailbox {
        Mailbox {
            poller,
            answers: Mutex::new(Vec::new()),
            tasks: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            open: AtomicBool::new(true),
        }
    }

    pub(crate) fn answer(&self, answer: Answer) {
        if let Ok(mut answers) = self.answers.lock() {
            answers.push(answer);
        }
        self.pending.store(true, Ordering::Release);
        let _ = self.poller.notify();
    }

    /// Whether answers or tasks wait to be taken.
    pub(crate) fn has_work(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Moves the answers waiting into `answers` and returns the tasks waiting. Whatever is added
    /// meanwhile sets `pending` again and is taken next time.
    pub(crate) fn take(&self, answers: &mut Vec<Answer>) -> Vec<Task> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        if let Ok(mut waiting) = self.answers.lock() {
            answers.append(&mut waiting);
        }
        self.tasks
            .lock()
            .map(|mut tasks| std::mem::take(&mut *tasks))
            .unwrap_or_default()
    }

    pub(crate) fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        if let Ok(mut tasks) = self.tasks.lock() {
            tasks.clear();
        }
    }
}

/// A cheap, cloneable, `Send` handle through which other threads reach a [`Driver`]: wake its
/// loop, or run a closure on the loop thread (for example to open a socket or send data).
///
/// ```
/// use sockstate_driver::{Config, Driver};
/// use std::time::Duration;
///
/// let mut driver = Driver::new(Config::default()).unwrap();
/// let handle = driver.handle();
/// let (tx, rx) = std::sync::mpsc::channel();
/// std::thread::spawn(move || {
///     handle.run(move |driver| tx.send(driver.core().tcp_ids().count()).unwrap()).unwrap();
/// });
/// // The task runs on this thread, inside the loop.
/// let deadline = std::time::Instant::now() + Duration::from_secs(5);
/// while rx.try_recv().is_err() && std::time::Instant::now() < deadline {
///     driver.next_event(Some(Duration::from_millis(50)));
/// }
/// ```
#[derive(Clone)]
pub struct Handle {
    pub(crate) mailbox: Arc<Mailbox>,
    /// Counts the handles in existence (see `Driver::next_event`).
    pub(crate) _alive: Arc<()>,
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

/// The [`Driver`] this [`Handle`] belongs to was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DriverGone;

impl std::fmt::Display for DriverGone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the driver was dropped")
    }
}

impl std::error::Error for DriverGone {}

impl Handle {
    /// Wakes the loop: a `next_event` waiting in another thread's driver goes round once (and
    /// keeps waiting if nothing happened).
    pub fn wake(&self) {
        let _ = self.mailbox.poller.notify();
    }

    /// Runs `task` on the loop thread, during the next `next_event` / `next_events` call, after
    /// the I/O it found ready. Tasks run in the order they were handed over.
    pub fn run(&self, task: impl FnOnce(&mut Driver) + Send + 'static) -> Result<(), DriverGone> {
        if !self.mailbox.open.load(Ordering::SeqCst) {
            return Err(DriverGone);
        }
        self.mailbox
            .tasks
            .lock()
            .map_err(|_| DriverGone)?
            .push(Box::new(task));
        self.mailbox.pending.store(true, Ordering::Release);
        self.wake();
        Ok(())
    }
}
