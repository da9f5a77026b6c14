//! Keeping the kernel's entry nodes within `--max-nodes`.
//!
//! Past the bound, the oldest names of the mount holding the most go to the
//! notifier to be invalidated; the kernel then forgets their nodes (FORGET),
//! and once that round is out the count is checked again. One round at a
//! time: a round that cannot start (no thread) ends the shedding state, so
//! a later lookup starts over.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Kernel;

impl Kernel {
    /// Starts a shedding round if the kernel holds too many entry nodes.
    pub(super) fn shed_nodes(self: &Arc<Self>) {
        let fs = &self.fs;
        let total = fs.entry_nodes();
        if total <= fs.options().max_nodes || self.shedding.swap(true, Ordering::SeqCst) {
            return;
        }
        let Some((idx, change)) = fs.nodes_to_shed() else {
            self.shedding.store(false, Ordering::SeqCst);
            return;
        };
        log::debug!("asking the kernel to forget {} names", change.entries.len());
        let invals = fs.invalidations(&change, idx);
        let kernel = self.clone();
        // Counted again off the notifier thread, whose queue also holds
        // replies that must not wait.
        let again = move || {
            let recheck = kernel.clone();
            let spawned = crate::failpoint::hit("spawn.shed").and_then(|()| {
                std::thread::Builder::new()
                    .name("shed".into())
                    .spawn(move || {
                        // Give the kernel's forgets a moment, and longer when
                        // open files keep the kernel from forgetting.
                        std::thread::sleep(Duration::from_millis(5));
                        if recheck.fs.entry_nodes() >= total {
                            std::thread::sleep(Duration::from_millis(200));
                        }
                        recheck.shedding.store(false, Ordering::SeqCst);
                        recheck.shed_nodes();
                    })
            });
            if let Err(e) = spawned {
                // The next lookup starts a new round.
                log::warn!("no thread to count shed nodes from: {e}");
                kernel.shedding.store(false, Ordering::SeqCst);
            }
        };
        self.notify.queue(invals, Some(Box::new(again)));
    }
}
