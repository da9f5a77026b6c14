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
//! - A retired node keeps serving what the kernel opened through it but is
//!   found by no lookup: the next lookup of its version makes a new node
//!   (`files`: a writer that met passthrough readers is sent to one that
//!   never gets passthrough opens).
//! - A node costs a fixed amount: its slot (96 bytes), its entry in the
//!   version index (a few bytes), its name; tag sets are shared.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;

use crate::store::{Meta, Time};

pub const ROOT: u64 = 1;
pub const KEYS: u64 = 2;
pub const TAGS: u64 = 3;
pub const STALE: u64 = 4;
pub const STATS: u64 = 5;
pub const PUT: u64 = 6;
const FIRST_TAG: u64 = 16;
/// Entry ids are at least this (generation ≥ 1): never a fixed or tag id.
const FIRST_ENTRY: u64 = 1 << 32;
/// Slots are allocated this many at a time (no doubling of a huge table).
const CHUNK: usize = 4096;
/// The most replaced versions held open for a mount's nodes. The kernel
/// may keep a node long after its name was invalidated (an expired
/// dentry nobody looks up again), so a pin cannot wait for FORGET alone.
pub const MAX_PINNED: usize = 128;

/// A set of tags, shared by every node that carries the same set.
pub type TagSet = Arc<[Vec<u8>]>;

/// One version the kernel holds a node for, as the table keeps it.
#[derive(Debug, Clone)]
struct Node {
    ino: u64,
    ver: u64,
    name: Box<[u8]>,
    size: u64,
    /// The expiry in nanoseconds since the epoch (2^32 s fits).
    expiry_ns: u64,
    /// The committed length; `u64::MAX` when none was recorded.
    len: u64,
    blocks: u32,
    ttl: u32,
    nlink: u32,
    used: u32,
    tags: u32,
    flags: u8,
}

const STALE_VIEW: u8 = 1;
const PENDING: u8 = 2;
const FOREIGN: u8 = 4;
/// Found by no lookup any more (see `retire`).
const RETIRED: u8 = 8;
/// Never gets passthrough opens (see `forbid_passthrough`).
const NO_PASSTHROUGH: u8 = 16;

/// An entry node, handed out by the table (a copy).
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
    len: Option<u64>,
    /// Written by another program (no record): judged by expiry alone.
    pub foreign: bool,
    /// A node of `stale/`.
    pub stale_view: bool,
    /// Created by a writer and not committed yet: only the writer sees it.
    pub pending: bool,
    /// Reads may be passed through to the version's file (`files`).
    pub passthrough: bool,
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

fn expiry_ns(t: Time) -> u64 {
    (t.sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.nsec.clamp(0, 999_999_999) as u64)
}

fn expiry_of(ns: u64) -> Time {
    Time {
        sec: (ns / 1_000_000_000) as i64,
        nsec: (ns % 1_000_000_000) as i64,
    }
}

impl Node {
    fn update(&mut self, meta: &Meta) {
        self.size = meta.size;
        self.blocks = meta.blocks.min(u32::MAX as u64) as u32;
        self.nlink = meta.nlink.min(u32::MAX as u64) as u32;
        self.expiry_ns = expiry_ns(meta.expiry);
        if let Some(r) = &meta.record {
            self.ttl = r.ttl.min(u32::MAX as u64) as u32;
        }
    }

    /// Whether a lookup of version (`ino`, `ver`) in that view finds this
    /// node (a retired one it never does).
    fn is(&self, ino: u64, ver: u64, stale_view: bool) -> bool {
        self.ino == ino
            && self.ver == ver
            && (self.flags & STALE_VIEW != 0) == stale_view
            && self.flags & RETIRED == 0
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
    /// `put/`, or a parameter directory below it (`put/expire=60/…`).
    Put(Arc<super::put::Params>),
    /// An entry node (a copy of it: the table keeps the original).
    Entry(Box<EntryNode>),
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    lookups: u64,
    node: Option<Node>,
}

#[derive(Debug)]
pub struct Nodes {
    chunks: Vec<Vec<Slot>>,
    free: Vec<u32>,
    /// Slots by (inode, version, stale view).
    by_version: HashTable<u32>,
    hasher: RandomState,
    tags: HashMap<u64, (Arc<[u8]>, u64)>,
    by_tag: HashMap<Arc<[u8]>, u64>,
    puts: HashMap<u64, (Arc<super::put::Params>, u64)>,
    by_put: HashMap<Arc<super::put::Params>, u64>,
    next_tag: u64,
    /// Tag sets by index, with how many nodes use each.
    tag_sets: Vec<(TagSet, u64)>,
    tag_set_index: HashMap<TagSet, u32>,
    pinned: HashMap<u32, File>,
    /// Pinned slots, oldest first.
    pin_order: std::collections::VecDeque<u32>,
    entries: usize,
    /// The recency clock: seconds since the table was made.
    started: std::time::Instant,
}

impl Default for Nodes {
    fn default() -> Self {
        Nodes {
            chunks: Vec::new(),
            free: Vec::new(),
            by_version: HashTable::new(),
            hasher: RandomState::new(),
            tags: HashMap::new(),
            by_tag: HashMap::new(),
            puts: HashMap::new(),
            by_put: HashMap::new(),
            next_tag: FIRST_TAG,
            tag_sets: Vec::new(),
            tag_set_index: HashMap::new(),
            pinned: HashMap::new(),
            pin_order: std::collections::VecDeque::new(),
            entries: 0,
            started: std::time::Instant::now(),
        }
    }
}

fn split(id: u64) -> Option<(u32, u32)> {
    (id >= FIRST_ENTRY).then_some(((id >> 32) as u32, id as u32))
}

fn id_of(generation: u32, idx: u32) -> u64 {
    (generation as u64) << 32 | idx as u64
}

impl Nodes {
    /// The recency clock's current tick.
    pub fn tick(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    fn hash(&self, ino: u64, ver: u64, stale_view: bool) -> u64 {
        self.hasher.hash_one((ino, ver, stale_view))
    }

    fn at(&self, idx: u32) -> &Slot {
        &self.chunks[idx as usize / CHUNK][idx as usize % CHUNK]
    }

    fn at_mut(&mut self, idx: u32) -> &mut Slot {
        &mut self.chunks[idx as usize / CHUNK][idx as usize % CHUNK]
    }

    fn live_slot(&self, id: u64) -> Option<(u32, &Slot)> {
        let (generation, idx) = split(id)?;
        let chunk = self.chunks.get(idx as usize / CHUNK)?;
        let slot = chunk.get(idx as usize % CHUNK)?;
        (slot.generation == generation && slot.node.is_some()).then_some((idx, slot))
    }

    fn node_mut(&mut self, id: u64) -> Option<&mut Node> {
        let (idx, _) = self.live_slot(id)?;
        self.at_mut(idx).node.as_mut()
    }

    fn entry_node(&self, node: &Node) -> EntryNode {
        EntryNode {
            ino: node.ino,
            ver: node.ver,
            name: node.name.clone(),
            tags: self.tag_sets[node.tags as usize].0.clone(),
            size: node.size,
            blocks: node.blocks as u64,
            expiry: expiry_of(node.expiry_ns),
            ttl: if node.ttl == u32::MAX {
                crate::store::layout::NEVER as u64
            } else {
                node.ttl as u64
            },
            nlink: node.nlink,
            len: (node.len != u64::MAX).then_some(node.len),
            foreign: node.flags & FOREIGN != 0,
            stale_view: node.flags & STALE_VIEW != 0,
            pending: node.flags & PENDING != 0,
            passthrough: node.flags & NO_PASSTHROUGH == 0,
        }
    }

    pub fn get(&self, id: u64) -> Option<Kind> {
        match id {
            ROOT => Some(Kind::Root),
            KEYS => Some(Kind::Keys),
            TAGS => Some(Kind::Tags),
            STALE => Some(Kind::Stale),
            STATS => Some(Kind::Stats),
            PUT => Some(Kind::Put(Arc::default())),
            id if id < FIRST_ENTRY => match self.tags.get(&id) {
                Some((t, _)) => Some(Kind::Tag(t.clone())),
                None => self.puts.get(&id).map(|(p, _)| Kind::Put(p.clone())),
            },
            id => {
                let (_, slot) = self.live_slot(id)?;
                let node = slot.node.as_ref()?;
                Some(Kind::Entry(Box::new(self.entry_node(node))))
            }
        }
    }

    /// Entry node `id` (a copy), if the kernel holds it.
    pub fn entry_of(&self, id: u64) -> Option<EntryNode> {
        let (_, slot) = self.live_slot(id)?;
        Some(self.entry_node(slot.node.as_ref()?))
    }

    fn tag_set(&mut self, tags: &[Vec<u8>]) -> u32 {
        if let Some(&i) = self.tag_set_index.get(tags) {
            self.tag_sets[i as usize].1 += 1;
            return i;
        }
        let set: TagSet = tags.into();
        let i = match self.tag_sets.iter().position(|(_, users)| *users == 0) {
            Some(i) => {
                let old = std::mem::replace(&mut self.tag_sets[i], (set.clone(), 1));
                self.tag_set_index.remove(&old.0);
                i
            }
            None => {
                self.tag_sets.push((set.clone(), 1));
                self.tag_sets.len() - 1
            }
        };
        self.tag_set_index.insert(set, i as u32);
        i as u32
    }

    fn drop_tag_set(&mut self, i: u32) {
        let (set, users) = &mut self.tag_sets[i as usize];
        *users -= 1;
        if *users == 0 {
            let set = set.clone();
            self.tag_set_index.remove(&set);
        }
    }

    /// The node of the version `meta` describes (found by its identity, or
    /// new), counted as one more kernel lookup, its attributes refreshed.
    pub fn entry(&mut self, meta: &Meta, name: &[u8], stale_view: bool, pending: bool) -> u64 {
        let hash = self.hash(meta.ino, meta.ver, stale_view);
        let used = self.tick();
        let chunks = &self.chunks;
        let found = self.by_version.find(hash, |&idx| {
            let slot = &chunks[idx as usize / CHUNK][idx as usize % CHUNK];
            slot.node
                .as_ref()
                .is_some_and(|n| n.is(meta.ino, meta.ver, stale_view))
        });
        if let Some(&idx) = found {
            let slot = self.at_mut(idx);
            slot.lookups += 1;
            let generation = slot.generation;
            let node = slot.node.as_mut().expect("indexed slots hold a node");
            node.update(meta);
            node.used = used;
            node.flags = node.flags & !PENDING | if pending { PENDING } else { 0 };
            if *node.name != *name {
                node.name = name.into();
            }
            self.adopt_record(idx, meta);
            return id_of(generation, idx);
        }
        let tags = self.tag_set(meta.tags());
        let mut node = Node {
            ino: meta.ino,
            ver: meta.ver,
            name: name.into(),
            size: 0,
            expiry_ns: 0,
            len: meta.record.as_ref().and_then(|r| r.len).unwrap_or(u64::MAX),
            blocks: 0,
            ttl: meta.ttl().min(u32::MAX as u64) as u32,
            nlink: 0,
            used,
            tags,
            flags: if stale_view { STALE_VIEW } else { 0 }
                | if pending { PENDING } else { 0 }
                | if meta.record.is_none() && meta.line_tags.is_none() {
                    // Its tags unknown, its link count is not checked here
                    // (an open reads its metadata afresh).
                    FOREIGN
                } else {
                    0
                },
        };
        node.update(meta);
        let idx = match self.free.pop() {
            Some(idx) => idx,
            None => {
                let next = self.chunks.iter().map(Vec::len).sum::<usize>();
                if next % CHUNK == 0 {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                self.chunks.last_mut().expect("just made").push(Slot {
                    generation: 0,
                    lookups: 0,
                    node: None,
                });
                next as u32
            }
        };
        let slot = self.at_mut(idx);
        slot.generation += 1;
        slot.lookups = 1;
        slot.node = Some(node);
        let generation = slot.generation;
        let (chunks, hasher) = (&self.chunks, &self.hasher);
        self.by_version.insert_unique(hash, idx, |&i| {
            let n = chunks[i as usize / CHUNK][i as usize % CHUNK]
                .node
                .as_ref()
                .expect("indexed slots hold a node");
            hasher.hash_one((n.ino, n.ver, n.flags & STALE_VIEW != 0))
        });
        self.entries += 1;
        id_of(generation, idx)
    }

    /// Node `id` (a writer's pending node) is now the committed version
    /// `meta`, if it is that version; otherwise nothing changes.
    pub fn settle(&mut self, id: u64, meta: &Meta) {
        let Some((idx, _)) = self.live_slot(id) else {
            return;
        };
        let Some(node) = self.at_mut(idx).node.as_mut() else {
            return;
        };
        if node.ino != meta.ino || node.ver != meta.ver {
            return;
        }
        node.update(meta);
        node.flags &= !PENDING;
        self.adopt_record(idx, meta);
    }

    /// A node made from a draft (no record yet) takes what its committed
    /// record says: its tags, its length. Whoever sees the record first —
    /// the committing writer, or a lookup racing it — does it.
    fn adopt_record(&mut self, idx: u32, meta: &Meta) {
        let Some(record) = &meta.record else {
            return;
        };
        let node = self.at(idx).node.as_ref().expect("a live slot");
        if node.flags & FOREIGN == 0 {
            return;
        }
        let old_tags = node.tags;
        let tags = self.tag_set(&record.tags);
        let node = self.at_mut(idx).node.as_mut().expect("a live slot");
        node.tags = tags;
        node.len = record.len.unwrap_or(u64::MAX);
        node.flags &= !FOREIGN;
        self.drop_tag_set(old_tags);
    }

    /// Node `id` is found by no lookup from now on: the next lookup of its
    /// version makes a new node. The kernel keeps using `id` for what it
    /// opened through it until it forgets it.
    pub fn retire(&mut self, id: u64) {
        if let Some(node) = self.node_mut(id) {
            node.flags |= RETIRED;
        }
    }

    /// Node `id` never gets passthrough opens: it is the one a writer is
    /// sent to.
    pub fn forbid_passthrough(&mut self, id: u64) {
        if let Some(node) = self.node_mut(id) {
            node.flags |= NO_PASSTHROUGH;
        }
    }

    /// Node `id` takes `meta`'s size, links and expiry if it is that version.
    pub fn refresh(&mut self, id: u64, meta: &Meta) {
        if let Some(node) = self.node_mut(id)
            && node.ino == meta.ino
            && node.ver == meta.ver
        {
            node.update(meta);
        }
    }

    /// The kernel asked for node `id` again (an open): it is recent.
    pub fn touch(&mut self, id: u64) {
        let tick = self.tick();
        if let Some(node) = self.node_mut(id) {
            node.used = tick;
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

    /// The node of parameter directory `params` (below `put/`), counted as
    /// one more kernel lookup.
    pub fn put_dir(&mut self, params: super::put::Params) -> u64 {
        if let Some(&id) = self.by_put.get(&params) {
            self.puts.get_mut(&id).expect("by_put points at a dir").1 += 1;
            return id;
        }
        let params = Arc::new(params);
        let id = self.next_tag;
        self.next_tag += 1;
        self.puts.insert(id, (params.clone(), 1));
        self.by_put.insert(params, id);
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
            } else if let Some((params, lookups)) = self.puts.get_mut(&id) {
                *lookups = lookups.saturating_sub(n);
                if *lookups == 0 {
                    let params = params.clone();
                    self.puts.remove(&id);
                    self.by_put.remove(&params);
                }
            }
            return;
        }
        let Some((idx, _)) = self.live_slot(id) else {
            return;
        };
        let slot = self.at_mut(idx);
        slot.lookups = slot.lookups.saturating_sub(n);
        if slot.lookups > 0 {
            return;
        }
        let node = slot.node.take().expect("live slot");
        let hash = self.hash(node.ino, node.ver, node.flags & STALE_VIEW != 0);
        if let Ok(entry) = self.by_version.find_entry(hash, |&i| i == idx) {
            entry.remove();
        }
        self.pinned.remove(&idx);
        self.free.push(idx);
        self.entries -= 1;
        self.drop_tag_set(node.tags);
    }

    /// The node of version (`ino`, `ver`) outside `stale/`, if the kernel
    /// holds one.
    pub fn find(&self, ino: u64, ver: u64) -> Option<u64> {
        let hash = self.hash(ino, ver, false);
        let idx = *self.by_version.find(hash, |&idx| {
            self.at(idx)
                .node
                .as_ref()
                .is_some_and(|n| n.is(ino, ver, false))
        })?;
        Some(id_of(self.at(idx).generation, idx))
    }

    /// Every node of version (`ino`, `ver`) outside `stale/` the kernel
    /// holds, retired ones too.
    pub fn all_of(&self, ino: u64, ver: u64) -> Vec<u64> {
        let hash = self.hash(ino, ver, false);
        self.by_version
            .iter_hash(hash)
            .filter_map(|&idx| {
                let slot = self.at(idx);
                let n = slot.node.as_ref()?;
                (n.ino == ino && n.ver == ver && n.flags & STALE_VIEW == 0)
                    .then(|| id_of(slot.generation, idx))
            })
            .collect()
    }

    /// Keeps `file` (the version of node `id`, replaced) open until the
    /// kernel forgets the node, or `MAX_PINNED` newer pins push it out.
    pub fn pin(&mut self, id: u64, file: File) {
        let Some((idx, _)) = self.live_slot(id) else {
            return;
        };
        if self.pinned.insert(idx, file).is_none() {
            self.pin_order.push_back(idx);
        }
        while self.pinned.len() > MAX_PINNED {
            let Some(oldest) = self.pin_order.pop_front() else {
                break;
            };
            self.pinned.remove(&oldest);
        }
        if self.pin_order.len() > 2 * MAX_PINNED {
            let pinned = &self.pinned;
            self.pin_order.retain(|i| pinned.contains_key(i));
        }
    }

    /// The pinned file of node `id`, if any.
    pub fn pinned(&self, id: u64) -> Option<&File> {
        let (idx, _) = self.live_slot(id)?;
        self.pinned.get(&idx)
    }

    fn nodes(&self) -> impl Iterator<Item = (u64, &Node)> + '_ {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            chunk.iter().enumerate().filter_map(move |(i, s)| {
                s.node
                    .as_ref()
                    .map(|n| (id_of(s.generation, (c * CHUNK + i) as u32), n))
            })
        })
    }

    /// Names and tags of the entry nodes whose tags include `tag`.
    pub fn entries_tagged(&self, tag: &[u8]) -> Vec<(Box<[u8]>, TagSet)> {
        let sets: Vec<bool> = self
            .tag_sets
            .iter()
            .map(|(set, users)| *users > 0 && set.iter().any(|t| t == tag))
            .collect();
        self.nodes()
            .filter(|(_, n)| sets[n.tags as usize])
            .map(|(_, n)| (n.name.clone(), self.tag_sets[n.tags as usize].0.clone()))
            .collect()
    }

    /// The nodes of the version `meta` describes (in either view) now
    /// have its name `name`.
    pub fn rename_version(&mut self, meta: &Meta, name: &[u8]) {
        for stale_view in [false, true] {
            let hash = self.hash(meta.ino, meta.ver, stale_view);
            let chunks = &self.chunks;
            let Some(&idx) = self.by_version.find(hash, |&idx| {
                chunks[idx as usize / CHUNK][idx as usize % CHUNK]
                    .node
                    .as_ref()
                    .is_some_and(|n| n.is(meta.ino, meta.ver, stale_view))
            }) else {
                continue;
            };
            if let Some(n) = self.at_mut(idx).node.as_mut() {
                n.name = name.into();
                n.update(meta);
            }
        }
    }

    /// How many replaced versions are held open for the kernel's nodes.
    pub fn pinned_count(&self) -> usize {
        self.pinned.len()
    }

    /// How many entry nodes the kernel holds.
    pub fn entry_count(&self) -> usize {
        self.entries
    }

    /// The `n` entry nodes (not pending) the kernel asked for least
    /// recently: their names and tags.
    pub fn coldest(&self, n: usize) -> Vec<(Box<[u8]>, TagSet)> {
        let mut all: Vec<(u32, u64, &Node)> = self
            .nodes()
            .filter(|(_, node)| node.flags & PENDING == 0)
            .map(|(id, node)| (node.used, id, node))
            .collect();
        if n < all.len() {
            all.select_nth_unstable_by_key(n, |(used, id, _)| (*used, *id));
            all.truncate(n);
        }
        all.into_iter()
            .map(|(_, _, node)| {
                (
                    node.name.clone(),
                    self.tag_sets[node.tags as usize].0.clone(),
                )
            })
            .collect()
    }

    /// How many nodes of any kind the kernel holds.
    pub fn len(&self) -> usize {
        self.entries + self.tags.len() + self.puts.len() + 6
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
            atime: Time::at(0),
            born: Time::at(0),
            record: None,
            head: 0,
            line_tags: None,
            want_links: None,
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
        assert_eq!(nodes.find(7, 1), Some(c));
        assert_eq!(nodes.find(7, 2), Some(b));
    }

    #[test]
    fn a_retired_node_is_found_by_no_lookup_but_still_pinned_for() {
        let mut nodes = Nodes::default();
        let a = nodes.entry(&meta(7, 1), b"x", false, false);
        assert!(nodes.entry_of(a).unwrap().passthrough);
        nodes.retire(a);
        let b = nodes.entry(&meta(7, 1), b"x", false, false);
        assert_ne!(b, a, "a lookup after the retirement makes a new node");
        nodes.forbid_passthrough(b);
        assert!(!nodes.entry_of(b).unwrap().passthrough);
        assert_eq!(nodes.entry(&meta(7, 1), b"x", false, false), b);
        assert!(nodes.entry_of(a).is_some(), "the kernel still has it");
        assert_eq!(nodes.find(7, 1), Some(b));
        let mut all = nodes.all_of(7, 1);
        all.sort();
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(all, want);
        nodes.forget(a, 1);
        assert_eq!(nodes.all_of(7, 1), vec![b]);
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
            head: 0,
        });
        let a = nodes.entry(&m, b"x", false, false);
        m.ino = 2;
        let b = nodes.entry(&m, b"y", false, false);
        assert_eq!(nodes.tag_set_index.len(), 1);
        assert_eq!(nodes.entries_tagged(b"t").len(), 2);
        nodes.forget(a, 1);
        assert_eq!(nodes.tag_set_index.len(), 1);
        nodes.forget(b, 1);
        assert!(nodes.tag_set_index.is_empty());
        assert_eq!(nodes.entries_tagged(b"t").len(), 0);
    }

    #[test]
    fn the_coldest_are_the_least_recently_used() {
        let mut nodes = Nodes::default();
        let ids: Vec<u64> = (0..4)
            .map(|i| nodes.entry(&meta(i, 1), &[b'a' + i as u8], false, false))
            .collect();
        nodes.node_mut(ids[0]).unwrap().used = 9;
        nodes.node_mut(ids[2]).unwrap().used = 9;
        let cold: Vec<Box<[u8]>> = nodes.coldest(2).into_iter().map(|(n, _)| n).collect();
        assert_eq!(cold.len(), 2);
        assert!(
            cold.iter().all(|n| **n == *b"b" || **n == *b"d"),
            "{cold:?}"
        );
    }

    #[test]
    fn many_nodes_come_and_go_across_chunks() {
        let mut nodes = Nodes::default();
        let ids: Vec<u64> = (0..10_000)
            .map(|i| nodes.entry(&meta(i, 1), b"n", false, false))
            .collect();
        assert_eq!(nodes.entry_count(), 10_000);
        for (i, id) in ids.iter().enumerate() {
            assert_eq!(nodes.find(i as u64, 1), Some(*id));
        }
        for id in &ids {
            nodes.forget(*id, 1);
        }
        assert_eq!(nodes.entry_count(), 0);
        assert!(nodes.find(5, 1).is_none());
    }
}
