//! The node table of one mount: which node id names what.
//!
//! - Ids 1–5 are the fixed directories and `.stats`; a tag directory's id
//!   comes from a counter (16 up). An entry node's id is its slot in the
//!   table and the slot's generation, `generation << 32 | slot`: slots are
//!   reused, ids never are, so an id never names two versions.
//! - An entry node names one version: its inode number and version id
//!   (`Meta::ver`), so a version whose inode number comes back after the
//!   old one was freed is a different node.
//! - The daemon holds no file for a node: a request that needs a version's
//!   bytes opens it (and checks it is that version). The one exception is a
//!   version the daemon itself replaced while the fast view held a node for
//!   it: that file is pinned until the kernel forgets the node, so that
//!   descriptors opened before keep reading it.
//! - `keys/x` and `tags/t/x` resolve to the same node; `stale/x` has nodes
//!   of its own (read-only), so a write open is never mistaken for either.
//! - A node costs a fixed amount: the slot (about 100 bytes), its entry in
//!   the version index, its name; tag sets are shared between nodes.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::sync::Arc;

use crate::store::{Meta, Time};

pub const ROOT: u64 = 1;
pub const KEYS: u64 = 2;
pub const TAGS: u64 = 3;
pub const STALE: u64 = 4;
pub const STATS: u64 = 5;
const FIRST_TAG: u64 = 16;
/// Entry ids are at least this (generation ≥ 1): never a fixed or tag id.
const FIRST_ENTRY: u64 = 1 << 32;

/// A set of tags, shared by every node that carries the same set.
pub type TagSet = Arc<[Vec<u8>]>;

/// One version the kernel holds a node for.
#[derive(Debug, Clone)]
pub struct EntryNode {
    pub ino: u64,
    pub ver: u64,
    pub name: Box<[u8]>,
    pub tags: TagSet,
    pub size: u64,
    pub blocks: u64,
    pub expiry: Time,
    /// The TTL the entry was given (0 = never).
    pub ttl: u64,
    pub nlink: u32,
    /// Its record's committed length, if it has one.
    len: Option<u64>,
    /// Written by another program (no record): judged by expiry alone.
    pub foreign: bool,
    /// A node of `stale/`.
    pub stale_view: bool,
    /// Created by a writer and not committed yet: only the writer sees it.
    pub pending: bool,
    /// When the kernel last asked for it (`Nodes::tick`).
    pub used: u32,
}

impl EntryNode {
    /// Whether this node still names a version with `meta`'s identity.
    pub fn is(&self, meta: &Meta) -> bool {
        self.ino == meta.ino && self.ver == meta.ver
    }

    pub fn is_live_at(&self, now: Time) -> bool {
        self.expiry > now
            && (self.foreign || self.nlink as usize == self.tags.len() + 1)
            && self.len.is_none_or(|l| l == self.size)
    }

    pub fn is_live(&self) -> bool {
        self.is_live_at(Time::now())
    }

    pub fn carries(&self, tag: &[u8]) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Takes what may change in place (size, links, expiry) from `meta`,
    /// which names the same version.
    pub fn update(&mut self, meta: &Meta) {
        self.size = meta.size;
        self.blocks = meta.blocks;
        self.nlink = meta.nlink.min(u32::MAX as u64) as u32;
        self.expiry = meta.expiry;
        if let Some(r) = &meta.record {
            self.ttl = r.ttl;
        }
    }
}

#[derive(Debug, Clone)]
pub enum Kind {
    Root,
    Keys,
    Tags,
    Stale,
    Stats,
    Tag(Arc<[u8]>),
    /// An entry node (a copy of it: the table keeps the original).
    Entry(Box<EntryNode>),
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    lookups: u64,
    node: Option<EntryNode>,
}

#[derive(Debug)]
pub struct Nodes {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// (inode, version, stale view) → slot.
    by_version: HashMap<(u64, u64, bool), u32>,
    tags: HashMap<u64, (Arc<[u8]>, u64)>,
    by_tag: HashMap<Arc<[u8]>, u64>,
    next_tag: u64,
    tag_sets: HashSet<TagSet>,
    pinned: HashMap<u32, File>,
    entries: usize,
    /// The recency clock: seconds since the table was made.
    started: std::time::Instant,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes {
            slots: Vec::new(),
            free: Vec::new(),
            by_version: HashMap::new(),
            tags: HashMap::new(),
            by_tag: HashMap::new(),
            next_tag: FIRST_TAG,
            tag_sets: HashSet::new(),
            pinned: HashMap::new(),
            entries: 0,
            started: std::time::Instant::now(),
        }
    }
}

fn split(id: u64) -> Option<(u32, u32)> {
    (id >= FIRST_ENTRY).then_some(((id >> 32) as u32, id as u32))
}

impl Nodes {
    /// The recency clock's current tick.
    pub fn tick(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    fn slot(&self, id: u64) -> Option<&Slot> {
        let (generation, idx) = split(id)?;
        self.slots
            .get(idx as usize)
            .filter(|s| s.generation == generation && s.node.is_some())
    }

    fn slot_mut(&mut self, id: u64) -> Option<&mut Slot> {
        let (generation, idx) = split(id)?;
        self.slots
            .get_mut(idx as usize)
            .filter(|s| s.generation == generation && s.node.is_some())
    }

    pub fn get(&self, id: u64) -> Option<Kind> {
        match id {
            ROOT => Some(Kind::Root),
            KEYS => Some(Kind::Keys),
            TAGS => Some(Kind::Tags),
            STALE => Some(Kind::Stale),
            STATS => Some(Kind::Stats),
            id if id < FIRST_ENTRY => self.tags.get(&id).map(|(t, _)| Kind::Tag(t.clone())),
            id => self
                .slot(id)
                .and_then(|s| s.node.clone())
                .map(|n| Kind::Entry(Box::new(n))),
        }
    }

    /// Entry node `id`, to read or change in place.
    pub fn entry_mut(&mut self, id: u64) -> Option<&mut EntryNode> {
        self.slot_mut(id).and_then(|s| s.node.as_mut())
    }

    fn tag_set(&mut self, tags: &[Vec<u8>]) -> TagSet {
        if let Some(set) = self.tag_sets.get(tags) {
            return set.clone();
        }
        let set: TagSet = tags.into();
        self.tag_sets.insert(set.clone());
        set
    }

    /// The node of the version `meta` describes (found by its identity, or
    /// new), counted as one more kernel lookup, its attributes refreshed.
    pub fn entry(&mut self, meta: &Meta, name: &[u8], stale_view: bool, pending: bool) -> u64 {
        let key = (meta.ino, meta.ver, stale_view);
        let used = self.tick();
        if let Some(&idx) = self.by_version.get(&key) {
            let slot = &mut self.slots[idx as usize];
            slot.lookups += 1;
            let node = slot.node.as_mut().expect("by_version points at a node");
            node.update(meta);
            node.pending = pending;
            node.used = used;
            if *node.name != *name {
                node.name = name.into();
            }
            return (slot.generation as u64) << 32 | idx as u64;
        }
        let tags = self.tag_set(meta.tags());
        let node = EntryNode {
            ino: meta.ino,
            ver: meta.ver,
            name: name.into(),
            tags,
            size: meta.size,
            blocks: meta.blocks,
            expiry: meta.expiry,
            ttl: meta.ttl(),
            nlink: meta.nlink.min(u32::MAX as u64) as u32,
            len: meta.record.as_ref().and_then(|r| r.len),
            foreign: meta.record.is_none(),
            stale_view,
            pending,
            used,
        };
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    lookups: 0,
                    node: None,
                });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.generation += 1;
        slot.lookups = 1;
        slot.node = Some(node);
        self.by_version.insert(key, idx);
        self.entries += 1;
        (slot.generation as u64) << 32 | idx as u64
    }

    /// Node `id` (a writer's pending node) is now the committed version
    /// `meta`, if it is that version; otherwise nothing changes.
    pub fn settle(&mut self, id: u64, meta: &Meta) {
        let Some(node) = self.entry_mut(id).filter(|n| n.is(meta)) else {
            return;
        };
        let was_pending = node.pending;
        node.update(meta);
        node.pending = false;
        if was_pending {
            let tags = self.tag_set(meta.tags());
            let node = self.entry_mut(id).expect("checked above");
            node.tags = tags;
            node.len = meta.record.as_ref().and_then(|r| r.len);
            node.foreign = meta.record.is_none();
        }
    }

    /// The node of tag directory `tag`, counted as one more kernel lookup.
    pub fn tag(&mut self, tag: &[u8]) -> u64 {
        if let Some(&id) = self.by_tag.get(tag) {
            self.tags.get_mut(&id).expect("by_tag points at a tag").1 += 1;
            return id;
        }
        let tag: Arc<[u8]> = tag.into();
        let id = self.next_tag;
        self.next_tag += 1;
        self.tags.insert(id, (tag.clone(), 1));
        self.by_tag.insert(tag, id);
        id
    }

    pub fn tag_id(&self, tag: &[u8]) -> Option<u64> {
        self.by_tag.get(tag).copied()
    }

    /// The kernel dropped `n` references to `id`.
    pub fn forget(&mut self, id: u64, n: u64) {
        if id < FIRST_ENTRY {
            if let Some((tag, lookups)) = self.tags.get_mut(&id) {
                *lookups = lookups.saturating_sub(n);
                if *lookups == 0 {
                    let tag = tag.clone();
                    self.tags.remove(&id);
                    self.by_tag.remove(&tag);
                }
            }
            return;
        }
        let Some(slot) = self.slot_mut(id) else {
            return;
        };
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups > 0 {
            return;
        }
        let node = slot.node.take().expect("slot checked");
        let idx = id as u32;
        self.by_version
            .remove(&(node.ino, node.ver, node.stale_view));
        self.pinned.remove(&idx);
        self.free.push(idx);
        self.entries -= 1;
        // The table's own reference and this node's: the last user of the set.
        if Arc::strong_count(&node.tags) == 2 {
            self.tag_sets.remove(&node.tags);
        }
    }

    /// The node of version (`ino`, `ver`) outside `stale/`, if the kernel
    /// holds one.
    pub fn find(&self, ino: u64, ver: u64) -> Option<u64> {
        let idx = *self.by_version.get(&(ino, ver, false))?;
        Some((self.slots[idx as usize].generation as u64) << 32 | idx as u64)
    }

    /// Keeps `file` (the version of node `id`, replaced or about to be
    /// reaped) open until the kernel forgets the node.
    pub fn pin(&mut self, id: u64, file: File) {
        if self.slot(id).is_some() {
            self.pinned.insert(id as u32, file);
        }
    }

    /// The pinned file of node `id`, if any.
    pub fn pinned(&self, id: u64) -> Option<&File> {
        self.slot(id)?;
        self.pinned.get(&(id as u32))
    }

    fn nodes(&self) -> impl Iterator<Item = (u64, &EntryNode)> + '_ {
        self.slots.iter().enumerate().filter_map(|(idx, s)| {
            s.node
                .as_ref()
                .map(|n| ((s.generation as u64) << 32 | idx as u64, n))
        })
    }

    /// Names and tags of the entry nodes whose tags include `tag`.
    pub fn entries_tagged(&self, tag: &[u8]) -> Vec<(Box<[u8]>, TagSet)> {
        self.nodes()
            .filter(|(_, n)| n.carries(tag))
            .map(|(_, n)| (n.name.clone(), n.tags.clone()))
            .collect()
    }

    /// The nodes of the version `meta` describes (in either view) now
    /// have its name `name`.
    pub fn rename_version(&mut self, meta: &Meta, name: &[u8]) {
        for stale_view in [false, true] {
            let Some(&idx) = self.by_version.get(&(meta.ino, meta.ver, stale_view)) else {
                continue;
            };
            if let Some(n) = self.slots[idx as usize].node.as_mut() {
                n.name = name.into();
                n.update(meta);
            }
        }
    }

    /// How many entry nodes the kernel holds.
    pub fn entry_count(&self) -> usize {
        self.entries
    }

    /// The `n` entry nodes (not pending) the kernel asked for least
    /// recently: their names and tags.
    pub fn coldest(&self, n: usize) -> Vec<(Box<[u8]>, TagSet)> {
        let mut all: Vec<(u32, u64, &EntryNode)> = self
            .nodes()
            .filter(|(_, node)| !node.pending)
            .map(|(id, node)| (node.used, id, node))
            .collect();
        if n < all.len() {
            all.select_nth_unstable_by_key(n, |(used, id, _)| (*used, *id));
            all.truncate(n);
        }
        all.into_iter()
            .map(|(_, _, node)| (node.name.clone(), node.tags.clone()))
            .collect()
    }

    /// How many nodes of any kind the kernel holds.
    pub fn len(&self) -> usize {
        self.entries + self.tags.len() + 5
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(ino: u64, ver: u64) -> Meta {
        Meta {
            ino,
            ver,
            regular: true,
            size: 3,
            blocks: 8,
            nlink: 1,
            expiry: Time::NEVER,
            record: None,
        }
    }

    #[test]
    fn a_reused_inode_number_is_a_new_node_with_a_new_id() {
        let mut nodes = Nodes::default();
        let a = nodes.entry(&meta(7, 1), b"x", false, false);
        assert_eq!(nodes.entry(&meta(7, 1), b"x", false, false), a);
        let b = nodes.entry(&meta(7, 2), b"x", false, false);
        assert_ne!(a, b);
        nodes.forget(a, 2);
        assert!(nodes.get(a).is_none());
        let c = nodes.entry(&meta(7, 1), b"x", false, false);
        assert_ne!(c, a, "a slot reused gets a new generation");
        assert!(c >= FIRST_ENTRY);
        assert_eq!(nodes.entry_count(), 2);
    }

    #[test]
    fn tag_sets_are_shared_and_dropped_with_their_last_node() {
        let mut nodes = Nodes::default();
        let mut m = meta(1, 1);
        m.record = Some(crate::store::Record {
            name: b"x".to_vec(),
            tags: vec![b"t".to_vec()],
            ttl: 0,
            ver: 1,
            len: None,
        });
        let a = nodes.entry(&m, b"x", false, false);
        m.ino = 2;
        let b = nodes.entry(&m, b"y", false, false);
        assert_eq!(nodes.tag_sets.len(), 1);
        nodes.forget(a, 1);
        assert_eq!(nodes.tag_sets.len(), 1);
        nodes.forget(b, 1);
        assert!(nodes.tag_sets.is_empty());
        assert_eq!(nodes.entries_tagged(b"t").len(), 0);
    }

    #[test]
    fn the_coldest_are_the_least_recently_used() {
        let mut nodes = Nodes::default();
        let ids: Vec<u64> = (0..4)
            .map(|i| nodes.entry(&meta(i, 1), &[b'a' + i as u8], false, false))
            .collect();
        nodes.entry_mut(ids[0]).unwrap().used = 9;
        nodes.entry_mut(ids[2]).unwrap().used = 9;
        let cold: Vec<Box<[u8]>> = nodes.coldest(2).into_iter().map(|(n, _)| n).collect();
        assert_eq!(cold.len(), 2);
        assert!(
            cold.iter().all(|n| **n == *b"b" || **n == *b"d"),
            "{cold:?}"
        );
    }
}
