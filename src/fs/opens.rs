//! How the kernel has each entry node of a mount open, as far as passing
//! reads through to the version's file is concerned.
//!
//! - A read open is passed through (the kernel reads the version's file
//!   itself, with no READ request) only while no writer has the node open;
//!   otherwise it is direct I/O, as before.
//! - The kernel refuses a non-passthrough open of a node that has
//!   passthrough opens. A writer reaching such a node is therefore not
//!   counted here (`writer` says no): the caller retires the node, notes
//!   the name as `returning` and answers ESTALE. The kernel then looks the
//!   name up again (once), and while the name is returning every lookup of
//!   it gets a node that never has passthrough opens — a new one if need
//!   be, also when a commit put another version there meanwhile — so the
//!   writer's second open cannot meet passthrough readers. The name stops
//!   returning after `RETURN_WITHIN`, not when a write open of it succeeds:
//!   that one may be another writer's, while the first is still on its way
//!   back.
//! - A count never falls below the kernel's: the kernel lets go of an open
//!   before its RELEASE reaches the daemon.
//! - Only nodes with open handles take room here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a name sent back to the kernel stays returning.
const RETURN_WITHIN: Duration = Duration::from_secs(2);
/// The most names returning at once (the oldest go first).
const MAX_RETURNING: usize = 64;

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    writers: u32,
    passthrough: u32,
}

#[derive(Debug, Default)]
pub(super) struct Opens {
    nodes: HashMap<u64, Counts>,
    /// Passthrough read handles, with their node.
    readers: HashMap<u64, u64>,
    /// Names whose writer was answered ESTALE, and when.
    returning: Vec<(Box<[u8]>, Instant)>,
}

impl Opens {
    /// A writer opens node `id`: counted, unless passthrough readers have
    /// it open (then `false`, and nothing is counted).
    pub fn writer(&mut self, id: u64) -> bool {
        let c = self.nodes.entry(id).or_default();
        if c.passthrough > 0 {
            return false;
        }
        c.writers += 1;
        true
    }

    /// A writer of node `id` closed its last descriptor.
    pub fn writer_closed(&mut self, id: u64) {
        if let Some(c) = self.nodes.get_mut(&id) {
            c.writers = c.writers.saturating_sub(1);
            self.drop_if_idle(id);
        }
    }

    /// Read handle `fh` of node `id` may be passed through: counted, unless
    /// a writer has the node open (then `false`).
    pub fn passthrough(&mut self, id: u64, fh: u64) -> bool {
        let c = self.nodes.entry(id).or_default();
        if c.writers > 0 {
            self.drop_if_idle(id);
            return false;
        }
        c.passthrough += 1;
        self.readers.insert(fh, id);
        true
    }

    /// Handle `fh` closed, or its passthrough was refused: no longer a
    /// passthrough reader (if it was one).
    pub fn reader_closed(&mut self, fh: u64) {
        let Some(id) = self.readers.remove(&fh) else {
            return;
        };
        if let Some(c) = self.nodes.get_mut(&id) {
            c.passthrough = c.passthrough.saturating_sub(1);
            self.drop_if_idle(id);
        }
    }

    /// A writer of `name` was sent back to look it up again.
    pub fn send_back(&mut self, name: &[u8]) {
        self.returning.retain(|(n, _)| **n != *name);
        if self.returning.len() == MAX_RETURNING {
            self.returning.remove(0);
        }
        self.returning.push((name.into(), Instant::now()));
    }

    /// Whether a writer of `name` is coming back (its lookups must find a
    /// node without passthrough opens).
    pub fn returning(&mut self, name: &[u8]) -> bool {
        if self.returning.is_empty() {
            return false;
        }
        self.returning.retain(|(_, t)| t.elapsed() < RETURN_WITHIN);
        self.returning.iter().any(|(n, _)| **n == *name)
    }

    fn drop_if_idle(&mut self, id: u64) {
        if self
            .nodes
            .get(&id)
            .is_some_and(|c| c.writers == 0 && c.passthrough == 0)
        {
            self.nodes.remove(&id);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.len() + self.readers.len() + self.returning.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_pass_through_only_while_no_writer_has_the_node() {
        let mut o = Opens::default();
        assert!(o.writer(7));
        assert!(!o.passthrough(7, 100), "a writer has it");
        o.writer_closed(7);
        assert!(o.passthrough(7, 101));
        assert!(o.passthrough(7, 102));
        assert!(!o.writer(7), "passthrough readers have it");
        o.reader_closed(101);
        assert!(!o.writer(7), "one is left");
        o.reader_closed(102);
        assert!(o.writer(7));
        o.writer_closed(7);
        assert_eq!(o.len(), 0, "nothing kept for idle nodes");
    }

    #[test]
    fn a_name_returns_for_a_while() {
        let mut o = Opens::default();
        assert!(!o.returning(b"x"));
        o.send_back(b"x");
        o.send_back(b"x");
        assert!(o.returning(b"x"));
        assert!(!o.returning(b"y"));
        o.returning[0].1 -= RETURN_WITHIN;
        assert!(!o.returning(b"x"), "no longer");
        for i in 0..=MAX_RETURNING {
            o.send_back(format!("n{i}").as_bytes());
        }
        assert!(!o.returning(b"n0"), "the oldest went");
        assert!(o.returning(format!("n{MAX_RETURNING}").as_bytes()));
    }

    #[test]
    fn closing_a_direct_reader_changes_nothing() {
        let mut o = Opens::default();
        assert!(o.passthrough(1, 10));
        o.reader_closed(11);
        o.reader_closed(10);
        o.reader_closed(10);
        assert_eq!(o.len(), 0);
        assert!(o.writer(1));
    }
}
