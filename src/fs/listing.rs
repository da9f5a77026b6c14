//! Directory listings: `ls` of the root, `keys/`, `tags/`, `tags/t/` and
//! `stale/`, streamed from the store.
//!
//! - A listing walks the store from the offset the kernel gives back, a
//!   stable position (`store::walk`), so every name that exists for the
//!   whole listing is returned exactly once, whatever is committed or
//!   removed meanwhile; a listing that cannot go on fails, never ends short.
//! - Memory does not grow with the directory: an open listing keeps one
//!   bucket of names at most.
//! - `keys/`, `tags/t/` list live entries, `stale/` the others, `tags/`
//!   the tag directories; `tags/t/` costs the entries of t, not the store.
//! - READDIRPLUS resolves each name as a lookup does (one more kernel
//!   reference to its node); plain READDIR makes no node: it checks that
//!   the name is one to list and passes the store's inode number.

use std::time::Duration;

use super::Mount;
use super::attr::{Attr, FileKind};
use super::error::{FsError, FsResult};
use super::handles::Handle;
use super::lookup::Lookup;
use super::nodes::{KEYS, Kind, PUT, STALE, STATS, TAGS};
use crate::store::format::Format;
use crate::store::walk::{Cursor, Walked};
use crate::store::{Meta, layout};

/// One name handed to the kernel by a listing.
#[derive(Debug, Clone, Copy)]
pub struct DirEntry<'a> {
    /// The node (READDIRPLUS), or any stable number (READDIR).
    pub id: u64,
    /// Where the listing continues after this name.
    pub offset: u64,
    pub kind: FileKind,
    pub name: &'a [u8],
    pub attr: Attr,
    pub ttl: Duration,
}

/// Where a listing's names go (the kernel's reply buffer).
pub trait DirectoryReplier {
    /// Adds one name; `true` when the reply is full and `entry` was not
    /// taken.
    fn add(&mut self, entry: DirEntry<'_>) -> bool;
}

/// An open directory: which one, and where its walk is.
#[derive(Debug)]
pub struct Listing {
    dir: Kind,
    cursor: Cursor,
}

/// The fixed names of the root, in order; their offsets are 1, 2, …
const ROOT_NAMES: [(&[u8], u64); 5] = [
    (b"keys", KEYS),
    (b"tags", TAGS),
    (b"stale", STALE),
    (b".stats", STATS),
    (b"put", PUT),
];

impl Mount<'_> {
    /// `opendir`: the listing's handle.
    pub fn opendir(&self, id: u64) -> FsResult<u64> {
        let dir = match self.kind(id)? {
            Kind::Stats | Kind::Entry(_) => return Err(FsError::Invalid("not a directory")),
            dir => dir,
        };
        Ok(self.new_handle(Handle::Dir(Listing {
            dir,
            cursor: Cursor::default(),
        })))
    }

    /// `releasedir`.
    pub fn releasedir(&self, fh: u64) {
        self.take_handle(fh);
    }

    /// `readdir` (`plus`: `readdirplus`): the names of handle `fh` after
    /// position `offset`, until `out` is full.
    pub fn readdir(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        out: &mut dyn DirectoryReplier,
    ) -> FsResult<()> {
        self.list(fh, offset, plus, out).map_err(|e| match e {
            FsError::Store(e) => FsError::Listing(e),
            e => e,
        })
    }

    fn list(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        out: &mut dyn DirectoryReplier,
    ) -> FsResult<()> {
        let h = self.handle(fh).ok_or(FsError::BadHandle)?;
        let mut h = h.lock().unwrap();
        let Handle::Dir(listing) = &mut *h else {
            return Err(FsError::BadHandle);
        };
        let fs = self.fs;
        let store = self.store();
        let dir = listing.dir.clone();
        let cursor = &mut listing.cursor;
        // Hands one name to the kernel: `true` when the reply is full.
        let mut give = |name: &[u8], offset: u64, found: Lookup, counted: bool| -> bool {
            let Lookup::Found(e) = found else {
                return false;
            };
            let full = out.add(DirEntry {
                id: e.attr.id,
                offset,
                kind: e.attr.kind,
                name,
                attr: e.attr,
                ttl: e.ttl,
            });
            // A full reply did not take the node its lookup counted.
            if full && counted {
                self.forget(e.attr.id, 1);
            }
            full
        };
        match &dir {
            Kind::Root => {
                let names = ROOT_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, id))| !self.is_fast() || *id == KEYS || *id == TAGS);
                for (i, (name, id)) in names.skip_while(|(i, _)| (*i as u64) < offset) {
                    let attr = if *id == STATS {
                        fs.stats_attr()
                    } else {
                        fs.dir_attr(*id)
                    };
                    let found = Lookup::Found(super::attr::Entry {
                        attr,
                        ttl: fs.opts.cache_timeout,
                    });
                    if give(name, i as u64 + 1, found, false) {
                        break;
                    }
                }
            }
            Kind::Keys | Kind::Stale => {
                let stale = matches!(dir, Kind::Stale);
                let ns = store.namespace();
                store.walk_data(cursor, ns.key.as_bytes(), offset, &mut |w: Walked| {
                    let Some(name) = ns.decode_key(w.file) else {
                        return Ok(false);
                    };
                    let Some(meta) = store.meta_in(w.dir, w.file)? else {
                        return Ok(false);
                    };
                    if meta.torn() {
                        fs.note_torn(&name, &meta);
                        return Ok(false);
                    }
                    if meta.is_live() == stale {
                        return Ok(false);
                    }
                    let found = if plus {
                        self.node_for(&meta, &name, stale)
                    } else {
                        self.plain(w.ino, &meta)
                    };
                    Ok(give(&name, w.cookie, found, plus))
                })?;
            }
            Kind::Tags => {
                let ns = store.namespace();
                store.walk_data(cursor, ns.tag.as_bytes(), offset, &mut |w: Walked| {
                    let Some(tag) = ns.decode_tag(w.file) else {
                        return Ok(false);
                    };
                    let id = if plus {
                        self.state().nodes.lock().unwrap().tag(&tag)
                    } else {
                        w.ino
                    };
                    let found = Lookup::Found(super::attr::Entry {
                        attr: fs.dir_attr(id),
                        ttl: fs.opts.cache_timeout,
                    });
                    Ok(give(&tag, w.cookie, found, plus))
                })?;
            }
            Kind::Tag(t) => {
                store.walk_tag(t, cursor, offset, &mut |w: Walked| {
                    let Some(meta) = store.meta_in(w.dir, w.file)? else {
                        return Ok(false);
                    };
                    if let Some((want, _)) = layout::parse_tag_link(w.file) {
                        store.note_link(&meta, want);
                    }
                    // A replaced version lost its key link, so only the
                    // current version of a name is live.
                    if !meta.is_live() || !meta.tags().iter().any(|x| **x == **t) {
                        return Ok(false);
                    }
                    let name = match &meta.record {
                        Some(record) => record.name.clone(),
                        // The library's entries name themselves only by
                        // their key file.
                        None if store.format() == Format::Tagcache => {
                            match store.name_of_inode(w.ino)? {
                                Some(name) => name,
                                None => return Ok(false),
                            }
                        }
                        None => return Ok(false),
                    };
                    let found = if plus {
                        self.node_for(&meta, &name, false)
                    } else {
                        self.plain(w.ino, &meta)
                    };
                    Ok(give(&name, w.cookie, found, plus))
                })?;
            }
            // Write-only: put/ and its parameter directories list empty.
            Kind::Put(_) => {}
            Kind::Stats | Kind::Entry(_) => return Err(FsError::Invalid("not a directory")),
        }
        Ok(())
    }

    /// A name for plain READDIR: no node, the store's inode number.
    fn plain(&self, ino: u64, meta: &Meta) -> Lookup {
        let mut attr = self.fs.dir_attr(ino.max(1));
        attr.kind = FileKind::RegularFile;
        attr.size = meta.size;
        Lookup::Found(super::attr::Entry {
            attr,
            ttl: Duration::ZERO,
        })
    }
}
