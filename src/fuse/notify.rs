//! Invalidating the kernel's cached names, and when to reply.
//!
//! `notify_inval_entry` locks the directory it names. So:
//! - a request holding no kernel lock (FLUSH, RELEASE) hands its
//!   invalidations and its reply to the notifier thread, which invalidates
//!   on every mount and then replies (`finish`): when close() returns,
//!   every new open sees the commit;
//! - a request holding kernel locks (its parent directories and the inode
//!   it works on) invalidates the fast view at once (no request of ours
//!   holds its locks), and on the full mount invalidates names outside the
//!   locked directories before replying, from a thread of its own, for at
//!   most `LOCKED_WAIT`; names in the locked directories go after the
//!   reply (`finish_locked`). An invalidation never runs on a session
//!   thread of the full mount for the full mount, and a request holding
//!   locks never waits for one without a bound.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use fuser::{INodeNo, Notifier};

use crate::fs::{Change, FULL, Fs, Inval};
use crate::store::layout;

/// The longest a request holding kernel locks waits for its invalidations.
const LOCKED_WAIT: Duration = Duration::from_millis(50);

pub type Reply = Box<dyn FnOnce() + Send>;
type Job = (Vec<Inval>, Option<Reply>);

/// The notifiers of the daemon's sessions and the thread that uses them.
pub struct Notify {
    notifiers: Vec<OnceLock<Notifier>>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Notify {
    pub fn new(mounts: usize) -> Arc<Notify> {
        let (tx, rx) = mpsc::channel::<Job>();
        let notify = Arc::new(Notify {
            notifiers: (0..mounts).map(|_| OnceLock::new()).collect(),
            jobs: Mutex::new(tx),
        });
        // The notifier thread: invalidations that must not run on a session
        // thread of the full mount, and the replies that wait for them.
        let weak = Arc::downgrade(&notify);
        std::thread::Builder::new()
            .name("notifier".into())
            .spawn(move || {
                for (invals, reply) in rx {
                    if let Some(notify) = weak.upgrade() {
                        notify.send(&invals);
                    }
                    if let Some(reply) = reply {
                        reply();
                    }
                }
            })
            .expect("spawning the notifier thread");
        notify
    }

    pub fn set_notifier(&self, idx: usize, notifier: Notifier) {
        let _ = self.notifiers[idx].set(notifier);
    }

    fn send(&self, invals: &[Inval]) {
        for inval in invals {
            if let Some(n) = self.notifiers[inval.mount].get()
                && let Err(e) = n.inval_entry(INodeNo(inval.parent), OsStr::from_bytes(&inval.name))
            {
                log::debug!("invalidating {}: {e}", layout::lossy(&inval.name));
            }
        }
    }

    /// Hands `invals` (then `reply`) to the notifier thread.
    pub fn queue(&self, invals: Vec<Inval>, reply: Option<Reply>) {
        let job = (invals, reply);
        if let Err(mpsc::SendError((invals, reply))) = self.jobs.lock().unwrap().send(job) {
            self.send(&invals);
            if let Some(reply) = reply {
                reply();
            }
        }
    }

    /// For a request that holds no lock at all (FLUSH, RELEASE): invalidate
    /// on every mount, then reply (both from the notifier thread).
    pub fn finish(&self, fs: &Fs, change: &Change, reply: impl FnOnce() + Send + 'static) {
        self.queue(fs.invalidations_everywhere(change), Some(Box::new(reply)));
    }

    /// For a request that holds kernel locks while it waits for its reply:
    /// the directories in `locked` (its parents) and the inode it works on.
    ///
    /// The fast view is invalidated now. On the full mount, names in
    /// `locked` directories can only be invalidated after the reply. The
    /// others are invalidated before it, from a thread of their own, so
    /// that the next call sees the change (a stat right after `ln` shows
    /// the new link count) — but only for `LOCKED_WAIT`: an invalidation
    /// needs its directory's lock, whose holder may be waiting for the
    /// inode this request holds (`rm keys/x` during `ln keys/x tags/t/x`,
    /// `touch keys/x` or `setfattr keys/x`); then the reply goes first,
    /// which ends the wait. Waiting without that bound, or on the notifier
    /// thread behind other jobs, deadlocks.
    pub fn finish_locked(
        self: &Arc<Self>,
        fs: &Fs,
        change: &Change,
        locked: &[u64],
        reply: impl FnOnce() + Send + 'static,
    ) {
        for idx in (0..fs.mount_count()).filter(|&i| i != FULL) {
            self.send(&fs.invalidations(change, idx));
        }
        let (late, early): (Vec<_>, Vec<_>) = fs
            .invalidations(change, FULL)
            .into_iter()
            .partition(|inval| locked.contains(&inval.parent));
        if early.is_empty() {
            reply();
            self.queue(late, None);
            return;
        }
        let notify = self.clone();
        let spawned = std::thread::Builder::new()
            .name("inval-wait".into())
            .spawn(move || {
                let (done_tx, done_rx) = mpsc::channel();
                let invalidator = notify.clone();
                let spawned = std::thread::Builder::new()
                    .name("inval".into())
                    .spawn(move || {
                        invalidator.send(&early);
                        let _ = done_tx.send(());
                    });
                if spawned.is_ok() {
                    let _ = done_rx.recv_timeout(LOCKED_WAIT);
                }
                reply();
                notify.queue(late, None);
            });
        if let Err(e) = spawned {
            // The reply went down with the closure: fuser answers EIO.
            log::error!("no thread to invalidate from: {e}");
        }
    }
}
