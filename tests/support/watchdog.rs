//! Turning a hang into a failure: a deadlocked mount must fail its test,
//! not block it (and the test run) forever.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use super::daemon::{abort_connections, daemon_pids, stacks_of};

/// Runs `work` on another thread and fails the test if it has not finished
/// within `secs` (a deadlocked mount): the mount's FUSE connection is then
/// aborted through fusectl, so that the stuck calls return and the test
/// process can end.
pub fn deadline<T: Send + 'static>(
    secs: u64,
    mnt: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => {
            abort_connections(mnt);
            panic!("not done within {secs} s: the mount is deadlocked");
        }
    }
}

/// Fails a run that does not end in time: after `limit` it prints the
/// kernel stacks of the daemon and of the registered processes, SIGKILLs
/// them and aborts the store's FUSE connections (so everything blocked on
/// the mount returns ENOTCONN), and records that it fired.
pub struct Watchdog {
    tx: Option<mpsc::Sender<()>>,
    fired: Arc<AtomicBool>,
    pub pids: Arc<Mutex<Vec<i32>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(what: &str, limit: Duration, stores: Vec<PathBuf>) -> Watchdog {
        let (tx, rx) = mpsc::channel::<()>();
        let fired = Arc::new(AtomicBool::new(false));
        let pids: Arc<Mutex<Vec<i32>>> = Arc::default();
        let (f, p, what) = (fired.clone(), pids.clone(), what.to_string());
        let thread = std::thread::spawn(move || {
            if !matches!(rx.recv_timeout(limit), Err(mpsc::RecvTimeoutError::Timeout)) {
                return;
            }
            f.store(true, Ordering::SeqCst);
            eprintln!("WATCHDOG: {what} did not end within {limit:?} (deadlock?)");
            let daemons: Vec<i32> = stores.iter().flat_map(|s| daemon_pids(s)).collect();
            for pid in &daemons {
                eprintln!("daemon {pid}:\n{}", stacks_of(*pid));
            }
            let others = p.lock().unwrap().clone();
            for pid in &others {
                eprintln!("process {pid}:\n{}", stacks_of(*pid));
            }
            for pid in others.iter().chain(&daemons) {
                // SAFETY: plain syscall.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            // A daemon thread stuck in the kernel survives SIGKILL and
            // keeps the connection up: abort it, so the test can end.
            std::thread::sleep(Duration::from_secs(1));
            for store in &stores {
                abort_connections(store);
            }
        });
        Watchdog {
            tx: Some(tx),
            fired,
            pids,
            thread: Some(thread),
        }
    }

    pub fn watch(&self, pid: i32) {
        self.pids.lock().unwrap().push(pid);
    }

    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Stops the watchdog; true if it had fired.
    pub fn disarm(&mut self) -> bool {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.fired()
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.disarm();
    }
}
