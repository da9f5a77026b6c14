//! The store against a reference model: random sequences of commits, reads,
//! retags, expiries, invalidations, renames and cleanups run on a real store
//! in a temporary directory and on an in-memory model, and after every step
//! everything the store shows (live and stale content, tag listings, tag
//! directories, key files, stats, cleanup counts) must match the model.
//!
//! The model tracks versions, not just names: every commit or retag is a new
//! version, and each tag directory holds the set of versions linked into it,
//! live or dead, until a cleanup removes the dead links and then the empty
//! directories (SPEC §1).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use proptest::prelude::*;
use support::pread_all;
use tagcachefs::store::{CleanupReport, Commit, Error, Store, StoreStats, Time};

/// Small alphabets so that operations collide. Names and tags are bytes:
/// blanks and non-UTF-8 bytes are allowed in names, non-UTF-8 in tags.
const NAMES: [&[u8]; 4] = [b"a", b"b", b"blog home", b"\xffz"];
const TAGS: [&[u8]; 3] = [b"t", b"news", b"\xe9t\xe9"];

#[derive(Debug, Clone)]
enum Op {
    Commit {
        name: usize,
        content: Vec<u8>,
        tags: BTreeSet<usize>,
        ttl: u64,
    },
    Read {
        name: usize,
    },
    Retag {
        name: usize,
        tags: BTreeSet<usize>,
    },
    Expire {
        name: usize,
    },
    InvalidateTag {
        tag: usize,
    },
    InvalidateEntry {
        name: usize,
    },
    Rename {
        from: usize,
        to: usize,
    },
    Cleanup,
    CreateTag {
        tag: usize,
    },
}

/// One committed version (an inode, in the store).
#[derive(Debug)]
struct ModelVersion {
    content: Vec<u8>,
    tags: BTreeSet<usize>,
    ttl: u64,
    live: bool,
}

#[derive(Debug, Default)]
struct Model {
    versions: Vec<ModelVersion>,
    /// name -> the version its key file holds (live or not).
    keys: BTreeMap<usize, usize>,
    /// tag -> the versions linked into its directory (live or not).
    tag_dirs: BTreeMap<usize, BTreeSet<usize>>,
}

impl Model {
    fn live(&self, name: usize) -> Option<&ModelVersion> {
        self.keys
            .get(&name)
            .map(|&v| &self.versions[v])
            .filter(|v| v.live)
    }

    fn new_version(&mut self, name: usize, content: Vec<u8>, tags: BTreeSet<usize>, ttl: u64) {
        let id = self.versions.len();
        for &t in &tags {
            self.tag_dirs.entry(t).or_default().insert(id);
        }
        self.versions.push(ModelVersion {
            content,
            tags,
            ttl,
            live: true,
        });
        if let Some(old) = self.keys.insert(name, id) {
            // A replaced version lost its key link: its link count is wrong.
            self.versions[old].live = false;
        }
    }

    fn expected_stats(&self) -> StoreStats {
        let mut s = StoreStats {
            tags: self.tag_dirs.len() as u64,
            ..StoreStats::default()
        };
        for &v in self.keys.values() {
            let v = &self.versions[v];
            if v.live {
                s.entries += 1;
                s.bytes += v.content.len() as u64;
            } else {
                s.stale_entries += 1;
                s.stale_bytes += v.content.len() as u64;
            }
        }
        s
    }

    /// What a cleanup must remove, and the model after it.
    fn cleanup(&mut self) -> CleanupReport {
        let mut report = CleanupReport::default();
        let versions = &self.versions;
        self.keys.retain(|_, &mut v| {
            let v = &versions[v];
            if !v.live {
                report.entries += 1;
                report.bytes += v.content.len() as u64;
            }
            v.live
        });
        self.tag_dirs.retain(|_, links| {
            let before = links.len();
            links.retain(|&v| versions[v].live);
            report.tag_links += (before - links.len()) as u64;
            if links.is_empty() {
                report.tag_dirs += 1;
            }
            !links.is_empty()
        });
        report
    }
}

fn tag_list(tags: &BTreeSet<usize>) -> Vec<Vec<u8>> {
    tags.iter().map(|&t| TAGS[t].to_vec()).collect()
}

fn tag_indexes(tags: &[Vec<u8>]) -> BTreeSet<usize> {
    tags.iter()
        .map(|t| TAGS.iter().position(|x| x == t).expect("a known tag"))
        .collect()
}

fn name_index(name: &[u8]) -> usize {
    NAMES
        .iter()
        .position(|x| *x == name)
        .unwrap_or_else(|| panic!("unknown name {:?}", name.escape_ascii().to_string()))
}

/// Applies `op` to the store and to the model, checking what the store
/// returns against what the model predicts.
fn apply(store: &Store, model: &mut Model, op: &Op) {
    match op {
        Op::Commit {
            name,
            content,
            tags,
            ttl,
        } => {
            let draft = store.new_draft().unwrap();
            draft.file().write_all(content).unwrap();
            let v = store
                .commit(
                    draft,
                    &Commit::fresh(NAMES[*name], &tag_list(tags), Time::after_ttl(*ttl), *ttl),
                )
                .unwrap();
            assert!(v.meta.is_live(), "a fresh commit is live: {:?}", v.meta);
            model.new_version(*name, content.clone(), tags.clone(), *ttl);
        }
        Op::Read { name } => {
            // Stale content stays readable through its key until cleanup.
            let found = store.open_version(NAMES[*name]).unwrap();
            let expected = model.keys.get(name).map(|&v| &model.versions[v]);
            match (found, expected) {
                (None, None) => {}
                (Some(v), Some(m)) => {
                    assert_eq!(pread_all(&v.file).unwrap(), m.content, "content of {name}");
                    assert_eq!(v.meta.is_live(), m.live, "liveness of {name}");
                }
                (found, expected) => panic!("{name}: store has {found:?}, model {expected:?}"),
            }
        }
        Op::Retag { name, tags } => {
            let result = store.retag(NAMES[*name], &tag_list(tags));
            match model.live(*name) {
                Some(old) => {
                    let v = result.unwrap();
                    let (content, ttl) = (old.content.clone(), old.ttl);
                    assert_eq!(tag_indexes(v.meta.tags()), *tags);
                    assert_eq!(pread_all(&v.file).unwrap(), content);
                    model.new_version(*name, content, tags.clone(), ttl);
                }
                None => assert!(
                    matches!(result, Err(Error::NoEntry(_))),
                    "retag of a non-live entry: {result:?}"
                ),
            }
        }
        Op::Expire { name } => {
            let found = store.open_version(NAMES[*name]).unwrap();
            assert_eq!(found.is_some(), model.keys.contains_key(name));
            if let Some(v) = found {
                let meta = store.set_expiry(&v.file, Time::at(1000), None).unwrap();
                assert!(!meta.is_live());
                assert_eq!(meta.expiry, Time::at(1000));
                model.versions[model.keys[name]].live = false;
            }
        }
        Op::InvalidateTag { tag } => {
            let existed = store.invalidate_tag(TAGS[*tag]).unwrap();
            let links = model.tag_dirs.remove(tag);
            assert_eq!(existed, links.is_some(), "invalidate_tag({tag})");
            for v in links.into_iter().flatten() {
                model.versions[v].live = false;
            }
        }
        Op::InvalidateEntry { name } => {
            let was_live = store.invalidate_entry(NAMES[*name]).unwrap();
            assert_eq!(was_live, model.live(*name).is_some());
            if was_live {
                model.versions[model.keys[name]].live = false;
            }
        }
        Op::Rename { from, to } => {
            let result = store.rename(NAMES[*from], NAMES[*to]);
            if model.live(*from).is_none() {
                assert!(
                    matches!(result, Err(Error::NoEntry(_))),
                    "rename of a non-live entry: {result:?}"
                );
                return;
            }
            let v = result.unwrap();
            assert_eq!(v.meta.record.as_ref().unwrap().name, NAMES[*to]);
            assert!(v.meta.is_live());
            let moved = model.keys.remove(from).unwrap();
            if let Some(replaced) = model.keys.insert(*to, moved)
                && replaced != moved
            {
                model.versions[replaced].live = false;
            }
        }
        Op::Cleanup => {
            let report = store.cleanup().unwrap();
            assert_eq!(report, model.cleanup(), "cleanup report");
        }
        Op::CreateTag { tag } => {
            let created = store.create_tag(TAGS[*tag]).unwrap();
            assert_eq!(created, !model.tag_dirs.contains_key(tag));
            model.tag_dirs.entry(*tag).or_default();
        }
    }
}

/// Everything the store shows must match the model.
fn check(store: &Store, model: &Model) {
    for (name, raw) in NAMES.iter().enumerate() {
        let live = store.open_live(raw).unwrap();
        match (&live, model.live(name)) {
            (None, None) => {}
            (Some(v), Some(m)) => {
                assert_eq!(
                    pread_all(&v.file).unwrap(),
                    m.content,
                    "live content of {name}"
                );
                assert_eq!(tag_indexes(v.meta.tags()), m.tags, "tags of {name}");
                assert_eq!(v.meta.ttl(), m.ttl, "ttl of {name}");
                assert_eq!(v.meta.record.as_ref().unwrap().name, *raw);
                assert_eq!(v.meta.size, m.content.len() as u64);
            }
            (live, m) => panic!("name {name}: store live {live:?}, model {m:?}"),
        }
    }

    let keys: BTreeSet<usize> = store
        .key_names()
        .unwrap()
        .iter()
        .map(|n| name_index(n))
        .collect();
    assert_eq!(
        keys,
        model.keys.keys().copied().collect(),
        "key files (live or stale)"
    );

    let tag_dirs: BTreeSet<usize> = tag_indexes(&store.tag_names().unwrap());
    assert_eq!(
        tag_dirs,
        model.tag_dirs.keys().copied().collect(),
        "tag directories"
    );

    for (tag, raw) in TAGS.iter().enumerate() {
        let mut tagged = BTreeSet::new();
        let found = store
            .for_each_tagged(raw, |v| {
                let name = name_index(&v.meta.record.as_ref().unwrap().name);
                let m = model.live(name).expect("a tagged version is a live one");
                assert_eq!(
                    pread_all(&v.file).unwrap(),
                    m.content,
                    "tagged content of {name}"
                );
                assert!(tagged.insert(name), "{name} listed twice under {tag}");
            })
            .unwrap();
        assert_eq!(found.is_some(), model.tag_dirs.contains_key(&tag));
        let expected: BTreeSet<usize> = model
            .keys
            .keys()
            .copied()
            .filter(|&n| model.live(n).is_some_and(|v| v.tags.contains(&tag)))
            .collect();
        assert_eq!(tagged, expected, "live entries carrying tag {tag}");
    }

    assert_eq!(store.stats().unwrap(), model.expected_stats(), "stats");
}

fn run(ops: &[Op]) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut model = Model::default();
    check(&store, &model);
    for op in ops {
        apply(&store, &mut model, op);
        check(&store, &model);
    }
    // Nothing is left in tmp/: drafts were committed or dropped, removed
    // tag directories and reaped entries are gone.
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "leftovers in tmp/: {tmp:?}");
}

fn tag_set() -> impl Strategy<Value = BTreeSet<usize>> {
    prop::collection::btree_set(0..TAGS.len(), 0..=TAGS.len())
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let tag = 0..TAGS.len();
    prop_oneof![
        5 => (
            name.clone(),
            prop::collection::vec(any::<u8>(), 0..48),
            tag_set(),
            prop_oneof![Just(0u64), Just(3600)],
        )
            .prop_map(|(name, content, tags, ttl)| Op::Commit { name, content, tags, ttl }),
        2 => name.clone().prop_map(|name| Op::Read { name }),
        3 => (name.clone(), tag_set()).prop_map(|(name, tags)| Op::Retag { name, tags }),
        1 => name.clone().prop_map(|name| Op::Expire { name }),
        2 => tag.clone().prop_map(|tag| Op::InvalidateTag { tag }),
        1 => name.clone().prop_map(|name| Op::InvalidateEntry { name }),
        2 => (name.clone(), name).prop_map(|(from, to)| Op::Rename { from, to }),
        2 => Just(Op::Cleanup),
        1 => tag.prop_map(|tag| Op::CreateTag { tag }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_sequence_of_store_operations_matches_the_model(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        run(&ops);
    }
}

fn tags(list: &[usize]) -> BTreeSet<usize> {
    list.iter().copied().collect()
}

fn commit(name: usize, content: &[u8], tag_list: &[usize]) -> Op {
    Op::Commit {
        name,
        content: content.to_vec(),
        tags: tags(tag_list),
        ttl: 0,
    }
}

/// Renaming onto a tagged name kills the version it replaces, whose link
/// stays in the tag directory until cleanup removes it and the directory.
#[test]
fn renaming_onto_a_tagged_entry_leaves_its_tag_empty_after_cleanup() {
    run(&[
        commit(1, b"old b", &[0]),
        commit(0, b"a", &[]),
        Op::Rename { from: 0, to: 1 },
        Op::Read { name: 1 },
        Op::Cleanup,
        Op::CreateTag { tag: 0 },
        Op::Rename { from: 0, to: 1 },
    ]);
}

/// A retag drops a tag: invalidating that tag no longer touches the entry,
/// while the superseded version's dead links go at the next cleanup. An
/// entry invalidated on its own stays readable as stale, cannot be retagged
/// or renamed, and a fresh commit brings the name back.
#[test]
fn retagging_away_from_a_tag_survives_its_invalidation() {
    run(&[
        commit(2, b"home", &[0, 1]),
        commit(3, b"other", &[1]),
        Op::Retag {
            name: 2,
            tags: tags(&[2]),
        },
        Op::InvalidateTag { tag: 0 },
        Op::InvalidateTag { tag: 1 },
        Op::Read { name: 2 },
        Op::Read { name: 3 },
        Op::InvalidateEntry { name: 2 },
        Op::Read { name: 2 },
        Op::Retag {
            name: 2,
            tags: tags(&[]),
        },
        Op::Rename { from: 2, to: 0 },
        Op::Cleanup,
        commit(2, b"home again", &[2]),
        Op::Expire { name: 2 },
        Op::Cleanup,
    ]);
}
