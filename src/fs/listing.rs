//! Directory listings: `ls` of the root, `keys/`, `tags/`, `tags/t/` and
//! `stale/`.
//!
//! A listing is the names made at OPENDIR, each resolved as a lookup would
//! when it is handed out (names gone since are skipped). An entry handed to
//! the kernel by READDIRPLUS is one more kernel reference to its node;
//! plain READDIR hands out none.

use std::sync::Arc;
use std::time::Duration;

use super::Mount;
use super::attr::{Attr, FileKind};
use super::error::{FsError, FsResult};
use super::handles::Handle;
use super::lookup::Lookup;
use super::nodes::{KEYS, Kind, STALE, STATS, TAGS};

/// One name handed to the kernel by a listing.
#[derive(Debug, Clone, Copy)]
pub struct DirEntry<'a> {
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

/// The names of an open directory.
#[derive(Debug)]
pub struct Listing {
    items: Vec<(Vec<u8>, Item)>,
}

/// One name in a directory listing, resolved when it is handed out.
#[derive(Debug, Clone)]
enum Item {
    Fixed(u64),
    Tag,
    Entry,
    Tagged(Arc<[u8]>),
    Stale,
}

impl Mount<'_> {
    /// `opendir`: the listing's handle.
    pub fn opendir(&self, id: u64) -> FsResult<u64> {
        let items = self.list(id)?;
        Ok(self.new_handle(Handle::Dir(Listing { items })))
    }

    /// `releasedir`.
    pub fn releasedir(&self, fh: u64) {
        self.take_handle(fh);
    }

    fn list(&self, id: u64) -> FsResult<Vec<(Vec<u8>, Item)>> {
        let store = self.store();
        Ok(match self.kind(id)? {
            Kind::Root => {
                let mut items = vec![
                    (b"keys".to_vec(), Item::Fixed(KEYS)),
                    (b"tags".to_vec(), Item::Fixed(TAGS)),
                ];
                if !self.is_fast() {
                    items.push((b"stale".to_vec(), Item::Fixed(STALE)));
                    items.push((b".stats".to_vec(), Item::Fixed(STATS)));
                }
                items
            }
            Kind::Keys => store
                .key_names()?
                .into_iter()
                .map(|n| (n, Item::Entry))
                .collect(),
            Kind::Stale => store
                .key_names()?
                .into_iter()
                .map(|n| (n, Item::Stale))
                .collect(),
            Kind::Tags => store
                .tag_names()?
                .into_iter()
                .map(|n| (n, Item::Tag))
                .collect(),
            Kind::Tag(t) => {
                let mut names = Vec::new();
                store.for_each_tagged(&t, |v| {
                    if let Some(r) = v.meta.record {
                        names.push((r.name, Item::Tagged(t.clone())));
                    }
                })?;
                names
            }
            Kind::Stats | Kind::Entry(_) => return Err(FsError::Invalid("not a directory")),
        })
    }

    /// Resolves one listed name as a lookup would (one kernel reference).
    fn resolve_item(&self, name: &[u8], item: &Item) -> FsResult<Lookup> {
        match item {
            Item::Fixed(id) => self.resolve(&Kind::Root, name).map(|f| match f {
                Lookup::Found(..) => f,
                Lookup::Negative(_) | Lookup::Uncached => Lookup::Found(super::attr::Entry {
                    attr: self.fs.dir_attr(*id),
                    ttl: self.fs.opts.cache_timeout,
                }),
            }),
            Item::Tag => self.resolve(&Kind::Tags, name),
            Item::Entry => self.resolve(&Kind::Keys, name),
            Item::Tagged(t) => self.resolve(&Kind::Tag(t.clone()), name),
            Item::Stale => self.resolve(&Kind::Stale, name),
        }
    }

    /// `readdir` (`plus`: `readdirplus`): the names of handle `fh` from
    /// `offset` on, until `out` is full.
    pub fn readdir(
        &self,
        fh: u64,
        offset: u64,
        plus: bool,
        out: &mut dyn DirectoryReplier,
    ) -> FsResult<()> {
        let h = self.handle(fh).ok_or(FsError::BadHandle)?;
        let h = h.lock().unwrap();
        let Handle::Dir(listing) = &*h else {
            return Err(FsError::BadHandle);
        };
        for (i, (name, item)) in listing.items.iter().enumerate().skip(offset as usize) {
            let Ok(Lookup::Found(entry)) = self.resolve_item(name, item) else {
                continue;
            };
            let full = out.add(DirEntry {
                id: entry.attr.id,
                offset: i as u64 + 1,
                kind: entry.attr.kind,
                name,
                attr: entry.attr,
                ttl: entry.ttl,
            });
            // Plain READDIR hands out no node, and a full reply did not
            // take this one: undo the lookup's count.
            if !plus || full {
                self.forget(entry.attr.id, 1);
            }
            if full {
                break;
            }
        }
        Ok(())
    }
}
