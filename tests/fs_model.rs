//! The file-system layer against a reference model of SPEC §2: random
//! sequences of what users do (write, read, rm, rmdir, mkdir, ln, retag,
//! expiry, mv, ls, getfattr, cleanup, bad input) are sent to a real `Fs`
//! over a store in a temporary directory, request by request as the kernel
//! sends them (no mount), and every answer is checked against a small model
//! made of maps.
//!
//! Besides one-shot operations the kernel also keeps things across
//! requests, and so does the model: nodes it looked up (and must forget as
//! often as they were handed out), read descriptors, writers between their
//! open and their close, and listings between their first and last
//! READDIR. So the model checks, whatever happened in between, that:
//! - a node id never names two versions, and one version has one node;
//! - the node table holds exactly the nodes the kernel was handed and has
//!   not forgotten (`Fs::entry_nodes`), and is empty at the end;
//! - a descriptor keeps reading the version it opened;
//! - until its close a write is invisible, and a commit whose inherited
//!   tag was removed meanwhile fails (ESTALE) instead of bringing the entry
//!   back;
//! - a listing returns every name present throughout it exactly once.
//!
//! After every step everything the mount shows (keys/, stale/, tags/,
//! tags/T/: names, contents, sizes, link counts, expiry, xattrs, listings)
//! must match the model.
//!
//! `TAGCACHEFS_LONG=1` runs many more and longer sequences.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use tagcachefs::fs::nodes::{KEYS, PUT, ROOT, STALE, STATS, TAGS};
use tagcachefs::fs::{
    Attr, Change, DirEntry, DirectoryReplier, Entry, FULL, FileKind, Fs, FsResult, Lookup, Mount,
    Options, SetAttr, SetTime,
};
use tagcachefs::store::Store;

/// A 125-byte name and tag: the longest allowed (`key:<hex>` fills 254
/// bytes of a file name).
const LONG: [u8; 125] = [b'n'; 125];
const LONG_TAG: [u8; 125] = [b'T'; 125];
const TOO_LONG: [u8; 126] = [b'n'; 126];

/// Small alphabets so that operations collide. Names may hold blanks and
/// bytes that are not UTF-8; tags may not hold blanks or commas.
const NAMES: [&[u8]; 4] = [b"a", b"blog home", b"\xffz", &LONG];
const TAG_NAMES: [&[u8]; 4] = [b"t", b"news", b"\xe9t\xe9", &LONG_TAG];

/// The TTL of a write that sets none and continues no entry.
const DEFAULT_TTL: u64 = 7200;
const CACHE_TIMEOUT: Duration = Duration::from_secs(1);
/// How far apart the model's clock and the store's may be, in seconds.
const SLACK: f64 = 5.0;
/// The expiry of an entry that never expires (2^32 s, as the seed).
const NEVER: f64 = 4_294_967_296.0;
/// The process that reads, lists and changes entries; writers get their own.
const USER: u32 = 1;

// ---------------------------------------------------------------------------
// Operations

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Keys,
    Tag(usize),
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Root,
    Keys,
    Tags,
    Tag(usize),
    Stale,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// O_TRUNC: the new content alone.
    Trunc,
    /// O_APPEND: after the current content.
    Append,
    /// Neither: over the current content, from byte 0.
    Overwrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `keys/NAME`, tags and TTL set as xattrs on the writing node.
    Keys { xattrs_first: bool },
    /// `put/tags=…/expire=…/NAME`.
    Put { tags_first: bool },
}

#[derive(Debug, Clone)]
struct WriteSpec {
    name: usize,
    content: Vec<u8>,
    /// Bytes per WRITE request.
    chunk: usize,
    /// Written after a first close of the descriptor, and closed again.
    more: Vec<u8>,
    tags: Option<BTreeSet<usize>>,
    ttl: Option<u64>,
    route: Route,
    mode: Mode,
    excl: bool,
    /// Blanks around the names of the tag list.
    blanks: bool,
}

/// The `n`-th of what is there (modulo how many there are): the k-th held
/// node, open writer, listing, or name present.
#[derive(Debug, Clone, Copy)]
struct Index(usize);

impl Index {
    fn index(self, len: usize) -> usize {
        self.0 % len
    }
}

/// The name an operation acts on: a given one, or one of those that are
/// there (live in keys/ or tags/T/, or in stale/), if any.
#[derive(Debug, Clone, Copy)]
enum Pick {
    Name(usize),
    There(Index),
}

#[derive(Debug, Clone, Copy)]
enum HeldOp {
    Getattr,
    /// A read open kept as a descriptor.
    Open,
    Forget,
}

#[derive(Debug, Clone, Copy)]
enum FdOp {
    Read,
    Close,
}

#[derive(Debug, Clone, Copy)]
enum When {
    /// `touch`: renews for the entry's TTL.
    Now,
    /// `touch -d @T`, T in a day.
    Future,
    /// `touch -d @1000`: invalidates.
    Past,
}

/// Requests that must fail with one errno and change nothing.
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// 126-byte names: ENAMETOOLONG.
    LongName(usize),
    /// 126-byte tags: ENAMETOOLONG.
    LongTag(usize),
    /// Tags with a blank or a comma, malformed TTLs: EINVAL.
    Malformed(usize),
    /// Writes of any kind in stale/: EROFS.
    StaleWrite(usize, usize),
    /// Directories outside tags/, files outside keys/ and put/: EPERM.
    Layout(usize),
    /// Other xattr names: EOPNOTSUPP, ENODATA.
    UnknownXattr(usize),
    /// mv across directories (EXDEV), RENAME_EXCHANGE (EINVAL), ln under
    /// another name (EINVAL).
    Rename(usize, usize, usize),
}

#[derive(Debug, Clone)]
enum Op {
    /// A whole write: open, xattrs, writes, close.
    Write(WriteSpec),
    /// A write left open (its close is `FinishWrite`).
    BeginWrite(WriteSpec),
    FinishWrite(Index),
    Read {
        name: Pick,
        via: Via,
        chunk: u32,
    },
    /// A lookup whose node the kernel keeps.
    Hold {
        name: Pick,
        via: Via,
    },
    Held(Index, HeldOp),
    Fd(Index, FdOp),
    Rm {
        name: Pick,
        tag: Option<usize>,
    },
    Rmdir {
        tag: usize,
    },
    Mkdir {
        tag: usize,
    },
    Link {
        name: Pick,
        tag: usize,
    },
    Retag {
        name: Pick,
        tags: BTreeSet<usize>,
        blanks: bool,
    },
    SetTtl {
        name: Pick,
        ttl: u64,
    },
    /// `setfattr -x user.tags` (no tags) or `-x user.expire` (never).
    RemoveXattr {
        name: Pick,
        tags: bool,
    },
    Touch {
        name: Pick,
        when: When,
    },
    Rename {
        from: Pick,
        to: usize,
        noreplace: bool,
        tag: Option<usize>,
    },
    List {
        dir: Dir,
        plus: bool,
        cap: usize,
    },
    /// A listing left open (`ListStep` goes on with it).
    ListOpen {
        dir: Dir,
        plus: bool,
        cap: usize,
    },
    ListStep(Index),
    Xattrs {
        name: Pick,
    },
    Cleanup,
    Bad(Bad),
}

// ---------------------------------------------------------------------------
// The model

/// A version: immutable once committed.
#[derive(Debug, Clone)]
struct MVersion {
    content: Vec<u8>,
    tags: BTreeSet<usize>,
}

/// What a key file holds: a version, live or not, and its expiry.
#[derive(Debug, Clone)]
struct Key {
    vid: usize,
    live: bool,
    ttl: u64,
    /// Seconds since the epoch; `None`: never.
    expires: Option<f64>,
}

#[derive(Debug, Default)]
struct Model {
    versions: Vec<MVersion>,
    /// name -> its key file, until cleanup reaps a dead one.
    keys: BTreeMap<usize, Key>,
    /// tag -> which directory it is (a removed and re-made tag is another).
    tags: BTreeMap<usize, u64>,
    made_dirs: u64,
}

impl Model {
    fn live(&self, name: usize) -> Option<&Key> {
        self.keys.get(&name).filter(|k| k.live)
    }

    fn stale(&self, name: usize) -> Option<&Key> {
        self.keys.get(&name).filter(|k| !k.live)
    }

    fn tags_of(&self, vid: usize) -> &BTreeSet<usize> {
        &self.versions[vid].tags
    }

    fn new_version(&mut self, content: Vec<u8>, tags: BTreeSet<usize>) -> usize {
        self.versions.push(MVersion { content, tags });
        self.versions.len() - 1
    }

    /// Makes tag `t`'s directory if it is missing; whether it did.
    fn make_tag(&mut self, t: usize) -> bool {
        if self.tags.contains_key(&t) {
            return false;
        }
        self.made_dirs += 1;
        self.tags.insert(t, self.made_dirs);
        true
    }

    /// Version `vid` is committed at `name`; the tags whose directories
    /// this made.
    fn publish(&mut self, name: usize, vid: usize, ttl: u64, expires: Option<f64>) -> Vec<usize> {
        let tags: Vec<usize> = self.versions[vid].tags.iter().copied().collect();
        let made = tags.into_iter().filter(|&t| self.make_tag(t)).collect();
        self.keys.insert(
            name,
            Key {
                vid,
                live: true,
                ttl,
                expires,
            },
        );
        made
    }

    fn carries(&self, name: usize, tag: usize) -> bool {
        self.live(name)
            .is_some_and(|k| self.versions[k.vid].tags.contains(&tag))
    }

    /// Whether `vid` is what a name shows in keys/ (it may have moved).
    fn is_current_live(&self, vid: usize) -> bool {
        self.keys.values().any(|k| k.vid == vid && k.live)
    }

    /// Whether `vid` is what a name shows in stale/.
    fn is_current_stale(&self, vid: usize) -> bool {
        self.keys.values().any(|k| k.vid == vid && !k.live)
    }

    fn rmdir(&mut self, tag: usize) -> bool {
        if self.tags.remove(&tag).is_none() {
            return false;
        }
        for k in self.keys.values_mut() {
            if k.live && self.versions[k.vid].tags.contains(&tag) {
                k.live = false;
            }
        }
        true
    }

    fn cleanup(&mut self) {
        self.keys.retain(|_, k| k.live);
        let (keys, versions) = (&self.keys, &self.versions);
        self.tags
            .retain(|t, _| keys.values().any(|k| versions[k.vid].tags.contains(t)));
    }

    /// What a listing of `dir` shows now: each name with what it is (a
    /// version, or a tag directory), so that a name changed during a
    /// listing can be told from one that stayed.
    fn listing(&self, dir: Dir) -> BTreeMap<Vec<u8>, u64> {
        let entries = |keep: &dyn Fn(&Key) -> bool| -> BTreeMap<Vec<u8>, u64> {
            self.keys
                .iter()
                .filter(|(_, k)| keep(k))
                .map(|(&n, k)| (NAMES[n].to_vec(), k.vid as u64))
                .collect()
        };
        match dir {
            Dir::Root => [&b"keys"[..], b"tags", b"stale", b".stats", b"put"]
                .iter()
                .map(|n| (n.to_vec(), 0))
                .collect(),
            Dir::Keys => entries(&|k| k.live),
            Dir::Stale => entries(&|k| !k.live),
            Dir::Tag(t) => entries(&|k| k.live && self.versions[k.vid].tags.contains(&t)),
            Dir::Tags => self
                .tags
                .iter()
                .map(|(&t, &made)| (TAG_NAMES[t].to_vec(), made))
                .collect(),
        }
    }
}

/// Which version a node names, and whether it is a node of `stale/`.
type Ident = (usize, bool);

#[derive(Debug)]
struct HeldNode {
    id: u64,
    ident: Ident,
    name: usize,
}

#[derive(Debug)]
struct HeldFd {
    fh: u64,
    node: u64,
    vid: usize,
}

/// A writer between its open and its close, with what its close commits.
#[derive(Debug)]
struct Writer {
    fh: u64,
    node: u64,
    ident: Ident,
    pid: u32,
    name: usize,
    /// What its next commit holds.
    content: Vec<u8>,
    /// Where its file position is (after the first writes).
    position: usize,
    append: bool,
    more: Vec<u8>,
    tags: BTreeSet<usize>,
    ttl: u64,
    /// The directories of the tags it carries on from the entry it
    /// continues: if one is gone by the commit, the commit fails.
    carried: BTreeMap<usize, u64>,
    /// The version its commit becomes, when its node is a new draft.
    draft: Option<usize>,
    /// A write or xattr since the open: the first close commits.
    dirty: bool,
    /// Created or truncated: the release commits even without writes.
    at_release: bool,
    /// Holds the entry's single-flight lock (O_EXCL).
    lock: bool,
    put_dirs: Vec<u64>,
}

#[derive(Debug)]
struct HeldListing {
    dir: Dir,
    fh: u64,
    plus: bool,
    cap: usize,
    offset: u64,
    tag_node: Option<u64>,
    got: Vec<Vec<u8>>,
    /// Names present, unchanged, since the opendir.
    throughout: BTreeMap<Vec<u8>, u64>,
    /// Names present at some point since the opendir.
    ever: BTreeSet<Vec<u8>>,
}

// ---------------------------------------------------------------------------
// Helpers

fn now() -> f64 {
    secs(SystemTime::now())
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

fn expiry_after(ttl: u64) -> Option<f64> {
    (ttl != 0).then(|| now() + ttl as f64)
}

/// A name for messages: the 125-byte ones shortened.
fn show(name: &[u8]) -> String {
    match name {
        [first, rest @ ..] if rest.len() > 16 && rest.iter().all(|b| b == first) => {
            format!("{}×{}", char::from(*first), name.len())
        }
        _ => name.escape_ascii().to_string(),
    }
}

fn name_index(name: &[u8]) -> usize {
    NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or_else(|| panic!("unknown name {}", show(name)))
}

fn tag_bytes(tags: &BTreeSet<usize>) -> Vec<Vec<u8>> {
    let mut list: Vec<Vec<u8>> = tags.iter().map(|&t| TAG_NAMES[t].to_vec()).collect();
    list.sort();
    list
}

/// `user.tags` as read back: the tags sorted, comma-separated.
fn joined(tags: &BTreeSet<usize>) -> Vec<u8> {
    tag_bytes(tags).join(&b","[..])
}

/// `user.tags` as a user may write it.
fn tag_list(tags: &BTreeSet<usize>, blanks: bool) -> Vec<u8> {
    if !blanks {
        return joined(tags);
    }
    let mut out = b" ".to_vec();
    for t in tag_bytes(tags).iter().rev() {
        out.extend_from_slice(t);
        out.extend_from_slice(b" , ");
    }
    out
}

#[track_caller]
fn errno<T: Debug>(r: FsResult<T>, expected: i32, what: &str) {
    match r {
        Ok(v) => panic!(
            "{what}: expected {}, got Ok({v:?})",
            std::io::Error::from_raw_os_error(expected)
        ),
        Err(e) => assert_eq!(
            e.errno(),
            expected,
            "{what}: expected {}, got {e} ({})",
            std::io::Error::from_raw_os_error(expected),
            std::io::Error::from_raw_os_error(e.errno())
        ),
    }
}

#[track_caller]
fn found(l: Lookup, what: &str) -> Entry {
    match l {
        Lookup::Found(e) => e,
        other => panic!("{what}: expected an entry, got {other:?}"),
    }
}

#[track_caller]
fn check_time(t: SystemTime, expires: Option<f64>, what: &str) {
    let t = secs(t);
    match expires {
        None => assert_eq!(t, NEVER, "{what}: an entry that never expires"),
        Some(e) => assert!((t - e).abs() <= SLACK, "{what}: expiry {t}, model {e}"),
    }
}

/// Whether `change` names entry `name` with at least `tags`, so that the
/// kernel forgets `keys/NAME`, `stale/NAME` and each `tags/T/NAME`.
#[track_caller]
fn covers(change: &Change, name: usize, tags: &BTreeSet<usize>, what: &str) {
    let want = tag_bytes(tags);
    let ok = change
        .entries
        .iter()
        .any(|(n, t)| n == NAMES[name] && want.iter().all(|w| t.contains(w)));
    assert!(
        ok,
        "{what}: change {} misses {} with tags {tags:?}",
        show_change(change),
        show(NAMES[name])
    );
}

fn show_change(c: &Change) -> String {
    let list = |v: &[Vec<u8>]| v.iter().map(|x| show(x)).collect::<Vec<_>>().join(",");
    let entries: Vec<String> = c
        .entries
        .iter()
        .map(|(n, t)| format!("{}[{}]", show(n), list(t)))
        .collect();
    format!(
        "{{entries: {}; tags: {}}}",
        entries.join(" "),
        list(&c.tags)
    )
}

#[track_caller]
fn covers_tags(change: &Change, made: &[usize], what: &str) {
    for &t in made {
        assert!(
            change.tags.iter().any(|x| x == TAG_NAMES[t]),
            "{what}: change {} misses the new tags/{}",
            show_change(change),
            show(TAG_NAMES[t])
        );
    }
}

/// One name a listing handed over.
#[derive(Debug, Clone)]
struct Listed {
    name: Vec<u8>,
    offset: u64,
    id: u64,
    attr: Attr,
}

/// A reply buffer that holds `cap` names.
struct Collect {
    cap: usize,
    got: Vec<Listed>,
}

impl DirectoryReplier for Collect {
    fn add(&mut self, e: DirEntry<'_>) -> bool {
        if self.got.len() >= self.cap {
            return true;
        }
        assert_eq!(e.kind, e.attr.kind, "{}: kind", show(e.name));
        self.got.push(Listed {
            name: e.name.to_vec(),
            offset: e.offset,
            id: e.id,
            attr: e.attr,
        });
        false
    }
}

fn read_all(m: &Mount, id: u64, fh: u64, chunk: u32) -> FsResult<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let data = m.read(id, fh, out.len() as u64, chunk)?;
        assert!(data.len() <= chunk as usize, "a read longer than asked");
        if data.is_empty() {
            return Ok(out);
        }
        out.extend_from_slice(&data);
        assert!(out.len() < 1 << 20, "a read that never ends");
    }
}

// ---------------------------------------------------------------------------
// The harness: the file system, the model, and what the kernel holds.

struct Harness {
    dir: tempfile::TempDir,
    fs: Arc<Fs>,
    m: Model,
    held: Vec<HeldNode>,
    fds: Vec<HeldFd>,
    writers: Vec<Writer>,
    listings: Vec<HeldListing>,
    /// Every entry node id ever handed out, and what it named.
    ids: HashMap<u64, Ident>,
    next_pid: u32,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let opts = Options {
            default_ttl: DEFAULT_TTL,
            cache_timeout: CACHE_TIMEOUT,
            read_only: false,
            max_nodes: tagcachefs::fs::DEFAULT_MAX_NODES,
        };
        Harness {
            dir,
            fs: Fs::new(store, opts, false),
            m: Model::default(),
            held: Vec::new(),
            fds: Vec::new(),
            writers: Vec::new(),
            listings: Vec::new(),
            ids: HashMap::new(),
            next_pid: 1000,
        }
    }

    /// A node handed out for `ident`: never one that named something else,
    /// and the one the kernel already holds for `ident`, if any.
    #[track_caller]
    fn saw(&mut self, id: u64, ident: Ident, what: &str) {
        assert!(id >= 1 << 32, "{what}: entry node id {id:#x}");
        if let Some(before) = self.ids.insert(id, ident) {
            assert_eq!(before, ident, "{what}: node {id:#x} names two versions");
        }
        let held = self.held.iter().map(|h| (h.id, h.ident));
        let writing = self.writers.iter().map(|w| (w.node, w.ident));
        for (other, i) in held.chain(writing) {
            if i == ident {
                assert_eq!(other, id, "{what}: two nodes for version {ident:?}");
            }
        }
    }

    /// Checks an entry resolved for `name` against the model.
    #[track_caller]
    fn check_entry(&mut self, e: &Entry, name: usize, stale: bool, what: &str) -> Ident {
        let key = self.m.keys[&name].clone();
        let v = &self.m.versions[key.vid];
        let a = &e.attr;
        assert_eq!(a.kind, FileKind::RegularFile, "{what}: kind");
        assert_eq!(a.size, v.content.len() as u64, "{what}: size");
        assert_eq!(a.perm, if stale { 0o444 } else { 0o644 }, "{what}: mode");
        assert_eq!(a.uid, nix::unistd::getuid().as_raw(), "{what}: owner");
        assert_eq!(a.gid, nix::unistd::getgid().as_raw(), "{what}: group");
        assert!(e.ttl <= CACHE_TIMEOUT, "{what}: timeout {:?}", e.ttl);
        if !stale {
            assert_eq!(a.nlink as usize, v.tags.len() + 1, "{what}: link count");
            check_time(a.time, key.expires, what);
        }
        let ident = (key.vid, stale);
        self.saw(a.id, ident, what);
        ident
    }

    /// Looks up tag `t` in tags/: its node (one reference) if it exists.
    fn tag_dir(&mut self, t: usize) -> Option<u64> {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let what = format!("lookup tags/{}", show(TAG_NAMES[t]));
        match m.lookup(TAGS, TAG_NAMES[t]).unwrap() {
            Lookup::Found(e) => {
                assert!(
                    self.m.tags.contains_key(&t),
                    "{what}: found, not in the model"
                );
                assert_eq!(e.attr.kind, FileKind::Directory, "{what}");
                assert_eq!(e.attr.perm, 0o755, "{what}");
                assert_eq!(
                    Some(e.attr.id),
                    m.tag_node(TAG_NAMES[t]),
                    "{what}: its node"
                );
                Some(e.attr.id)
            }
            Lookup::Negative(_) => {
                assert!(!self.m.tags.contains_key(&t), "{what}: missing");
                None
            }
            Lookup::Uncached => panic!("{what}: an uncached miss"),
        }
    }

    /// Looks `name` up as `via` says, checking the answer: the entry node
    /// found and the tag directory's node, one reference to forget each.
    fn resolve(&mut self, name: usize, via: Via) -> (Option<(u64, Ident)>, Option<u64>) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let raw = NAMES[name];
        let (parent, expected, stale, what) = match via {
            Via::Keys => (
                KEYS,
                self.m.live(name).is_some(),
                false,
                format!("lookup keys/{}", show(raw)),
            ),
            Via::Stale => (
                STALE,
                self.m.stale(name).is_some(),
                true,
                format!("lookup stale/{}", show(raw)),
            ),
            Via::Tag(t) => {
                let Some(tid) = self.tag_dir(t) else {
                    return (None, None);
                };
                (
                    tid,
                    self.m.carries(name, t),
                    false,
                    format!("lookup tags/{}/{}", show(TAG_NAMES[t]), show(raw)),
                )
            }
        };
        let tag_node = (parent != KEYS && parent != STALE).then_some(parent);
        let answer = m.lookup(parent, raw).unwrap();
        let node = match (answer, expected) {
            (Lookup::Found(e), true) => {
                let ident = self.check_entry(&e, name, stale, &what);
                Some((e.attr.id, ident))
            }
            (Lookup::Negative(ttl), false) if !stale => {
                assert!(ttl <= CACHE_TIMEOUT, "{what}: negative timeout {ttl:?}");
                None
            }
            (Lookup::Uncached, false) if stale => None,
            (answer, _) => panic!(
                "{what}: got {answer:?}, model has {:?}",
                self.m.keys.get(&name)
            ),
        };
        (node, tag_node)
    }

    /// Reads `name` as a user would (lookup, open, read, release, forget).
    fn read(&mut self, name: usize, via: Via, chunk: u32) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let (node, tag_node) = self.resolve(name, via);
        if let Some((id, (vid, stale))) = node {
            let what = format!("read {via:?} {}", show(NAMES[name]));
            let o = m.open(USER, id, libc::O_RDONLY).unwrap();
            assert_ne!(o.fh, 0, "{what}: a read open has a handle");
            assert_eq!(o.direct_io, !stale, "{what}: direct I/O");
            let data = read_all(&m, id, o.fh, chunk).unwrap();
            assert_eq!(data, self.m.versions[vid].content, "{what}: content");
            assert_eq!(m.release(o.fh).unwrap(), None, "{what}: release");
            m.forget(id, 1);
        }
        if let Some(t) = tag_node {
            m.forget(t, 1);
        }
    }

    /// `getfattr -d` and `stat` of a live entry, and of a stale one.
    fn xattrs(&mut self, name: usize) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let raw = NAMES[name];
        for via in [Via::Keys, Via::Stale] {
            let (Some((id, (vid, stale))), _) = self.resolve(name, via) else {
                continue;
            };
            let what = format!("xattrs of {via:?} {}", show(raw));
            let key = self.m.keys[&name].clone();
            let tags = m.getxattr(USER, id, b"user.tags").unwrap();
            assert_eq!(tags, joined(self.m.tags_of(vid)), "{what}: user.tags");
            assert_eq!(
                m.listxattr(id).unwrap(),
                b"user.expire\0user.tags\0",
                "{what}: listxattr"
            );
            let e = m.getattr(id).unwrap();
            assert_eq!(e.attr.size, self.m.versions[vid].content.len() as u64);
            if !stale {
                let left = m.getxattr(USER, id, b"user.expire").unwrap();
                let left: f64 = std::str::from_utf8(&left).unwrap().parse().unwrap();
                match key.expires {
                    None => assert_eq!(left, 0.0, "{what}: user.expire of a lasting entry"),
                    Some(at) => assert!(
                        (left - (at - now())).abs() <= SLACK,
                        "{what}: user.expire {left}, model {}",
                        at - now()
                    ),
                }
                assert_eq!(
                    e.attr.nlink as usize,
                    self.m.tags_of(vid).len() + 1,
                    "{what}: nlink"
                );
                check_time(e.attr.time, key.expires, &what);
            }
            m.forget(id, 1);
        }
    }

    /// The node of directory `dir` (tags/T: one reference to forget).
    fn dir_node(&mut self, dir: Dir) -> Option<(u64, Option<u64>)> {
        Some(match dir {
            Dir::Root => (ROOT, None),
            Dir::Keys => (KEYS, None),
            Dir::Tags => (TAGS, None),
            Dir::Stale => (STALE, None),
            Dir::Tag(t) => {
                let id = self.tag_dir(t)?;
                (id, Some(id))
            }
        })
    }

    /// Checks the names of one READDIR(PLUS) reply of `dir` against the
    /// model as it is now, and forgets the nodes a plus reply handed out.
    fn check_listed(&mut self, dir: Dir, plus: bool, got: &[Listed], strict: bool) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let now_listed = self.m.listing(dir);
        for l in got {
            let what = format!(
                "ls {dir:?} ({}): {}",
                if plus { "plus" } else { "plain" },
                show(&l.name)
            );
            match dir {
                Dir::Root => {
                    let kind = if l.name == b".stats" {
                        FileKind::RegularFile
                    } else {
                        FileKind::Directory
                    };
                    assert_eq!(l.attr.kind, kind, "{what}");
                    let id = match &l.name[..] {
                        b"keys" => KEYS,
                        b"tags" => TAGS,
                        b"stale" => STALE,
                        b".stats" => STATS,
                        b"put" => PUT,
                        _ => panic!("{what}: not a name of the root"),
                    };
                    assert_eq!(l.id, id, "{what}");
                }
                Dir::Tags => {
                    assert_eq!(l.attr.kind, FileKind::Directory, "{what}");
                    if plus {
                        let t = TAG_NAMES
                            .iter()
                            .position(|t| *t == l.name)
                            .expect("a known tag");
                        assert_eq!(Some(l.id), m.tag_node(TAG_NAMES[t]), "{what}: its node");
                        m.forget(l.id, 1);
                    }
                }
                Dir::Keys | Dir::Stale | Dir::Tag(_) => {
                    assert_eq!(l.attr.kind, FileKind::RegularFile, "{what}");
                    let name = name_index(&l.name);
                    // A held listing may pass a name that changed since.
                    let Some(&vid) = now_listed.get(&l.name) else {
                        assert!(!strict, "{what}: listed, not in the model");
                        if plus {
                            m.forget(l.id, 1);
                        }
                        continue;
                    };
                    let vid = vid as usize;
                    assert_eq!(
                        l.attr.size,
                        self.m.versions[vid].content.len() as u64,
                        "{what}: size"
                    );
                    if plus {
                        let stale = dir == Dir::Stale;
                        let e = Entry {
                            attr: l.attr,
                            ttl: Duration::ZERO,
                        };
                        self.check_entry(&e, name, stale, &what);
                        m.forget(l.id, 1);
                    }
                }
            }
        }
    }

    /// A whole listing of `dir`, `cap` names per reply, each reply going on
    /// from the offset of the last name of the one before.
    fn list(&mut self, dir: Dir, plus: bool, cap: usize) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let Some((id, tag_node)) = self.dir_node(dir) else {
            return;
        };
        let fh = m.opendir(id).unwrap();
        let mut all: Vec<Listed> = Vec::new();
        let mut offset = 0;
        loop {
            let mut out = Collect {
                cap,
                got: Vec::new(),
            };
            m.readdir(fh, offset, plus, &mut out).unwrap();
            if out.got.is_empty() {
                break;
            }
            for l in &out.got {
                assert!(
                    l.offset > offset,
                    "ls {dir:?}: offsets go forward ({} after {offset})",
                    l.offset
                );
                offset = l.offset;
            }
            self.check_listed(dir, plus, &out.got, true);
            all.extend(out.got);
            assert!(all.len() <= 64, "ls {dir:?}: a listing that never ends");
        }
        m.releasedir(fh);
        if let Some(t) = tag_node {
            m.forget(t, 1);
        }
        let names: Vec<Vec<u8>> = all.into_iter().map(|l| l.name).collect();
        let set: BTreeSet<Vec<u8>> = names.iter().cloned().collect();
        assert_eq!(
            set.len(),
            names.len(),
            "ls {dir:?}: a name twice: {names:?}"
        );
        let expected: BTreeSet<Vec<u8>> = self.m.listing(dir).into_keys().collect();
        assert_eq!(set, expected, "ls {dir:?} (cap {cap}, plus {plus})");
    }

    /// Everything the mount shows must match the model.
    fn check_all(&mut self) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        // First, before lookups refresh the nodes the kernel holds.
        self.check_held();
        for name in 0..NAMES.len() {
            self.read(name, Via::Keys, 4096);
            self.read(name, Via::Stale, 4096);
            self.xattrs(name);
        }
        for (t, tag) in TAG_NAMES.iter().enumerate() {
            let Some(tid) = self.tag_dir(t) else { continue };
            for (name, raw) in NAMES.iter().enumerate() {
                let what = format!("lookup tags/{}/{}", show(tag), show(raw));
                match m.lookup(tid, raw).unwrap() {
                    Lookup::Found(e) => {
                        assert!(self.m.carries(name, t), "{what}: found");
                        self.check_entry(&e, name, false, &what);
                        m.forget(e.attr.id, 1);
                    }
                    Lookup::Negative(_) => assert!(!self.m.carries(name, t), "{what}: missing"),
                    Lookup::Uncached => panic!("{what}: uncached"),
                }
            }
            m.forget(tid, 1);
            self.list(Dir::Tag(t), false, 64);
        }
        for dir in [Dir::Root, Dir::Keys, Dir::Tags, Dir::Stale] {
            self.list(dir, false, 64);
        }
        self.check_nodes();
    }

    /// The node table holds what the kernel holds: the distinct versions
    /// of the held nodes and writers, and the tags of open listings.
    fn check_nodes(&self) {
        let held: BTreeSet<Ident> = self
            .held
            .iter()
            .map(|h| h.ident)
            .chain(self.writers.iter().map(|w| w.ident))
            .collect();
        assert_eq!(
            self.fs.entry_nodes(),
            held.len(),
            "entry nodes; the kernel holds {held:?}"
        );
        let m = self.fs.mount(FULL);
        for (t, raw) in TAG_NAMES.iter().enumerate() {
            let listed = self
                .listings
                .iter()
                .any(|l| l.dir == Dir::Tag(t) && l.tag_node.is_some());
            assert_eq!(
                m.tag_node(raw).is_some(),
                listed,
                "the node of tags/{}",
                show(raw)
            );
        }
    }

    // -- writes ------------------------------------------------------------

    fn pick(&self, p: Pick, via: Via) -> usize {
        let i = match p {
            Pick::Name(n) => return n,
            Pick::There(i) => i,
        };
        let there: Vec<usize> = (0..NAMES.len())
            .filter(|&n| match via {
                Via::Keys => self.m.live(n).is_some(),
                Via::Stale => self.m.stale(n).is_some(),
                Via::Tag(t) => self.m.carries(n, t),
            })
            .collect();
        match there.len() {
            0 => i.index(NAMES.len()),
            n => there[i.index(n)],
        }
    }

    fn lock_held(&self, name: usize) -> bool {
        self.writers.iter().any(|w| w.lock && w.name == name)
    }

    /// Opens a writer as the kernel does for `spec` and writes its content;
    /// `None` when the open fails as it must (O_EXCL).
    fn begin(&mut self, spec: &WriteSpec) -> Option<Writer> {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let raw = NAMES[spec.name];
        let what = format!("write {}", show(raw));
        self.next_pid += 1;
        let pid = self.next_pid;
        let live = self.m.live(spec.name).cloned();
        let mut flags = libc::O_WRONLY | libc::O_CREAT;
        if spec.excl {
            flags |= libc::O_EXCL;
        }
        match spec.mode {
            Mode::Trunc => flags |= libc::O_TRUNC,
            Mode::Append => flags |= libc::O_APPEND,
            Mode::Overwrite => {}
        }
        let busy = spec.excl && (live.is_some() || self.lock_held(spec.name));
        let mut put_dirs = Vec::new();
        // (handle, node, the version the node names, the content it starts
        // from, whether it continues the live entry)
        let (fh, node, ident, base, continues) = match spec.route {
            Route::Keys { .. } => {
                let (looked, _) = self.resolve(spec.name, Via::Keys);
                match looked {
                    Some((id, ident)) if !spec.excl => {
                        // OPEN on the live version's node: no O_CREAT, O_EXCL,
                        // O_TRUNC (the kernel sends the truncate as SETATTR).
                        let open_flags = flags & !(libc::O_CREAT | libc::O_EXCL | libc::O_TRUNC);
                        let o = m.open(pid, id, open_flags).unwrap();
                        assert!(o.direct_io && o.fh != 0, "{what}: write open {o:?}");
                        let key = live.as_ref().expect("found, so live");
                        let content = self.m.versions[key.vid].content.clone();
                        if spec.mode == Mode::Trunc {
                            let trunc = SetAttr {
                                size: Some(0),
                                ..SetAttr::default()
                            };
                            let (e, change) = m.setattr(pid, id, trunc).unwrap();
                            assert!(change.is_none(), "{what}: a truncate changes nothing yet");
                            // Readers keep seeing the committed size.
                            assert_eq!(e.attr.size, content.len() as u64, "{what}: truncate");
                        }
                        (o.fh, id, ident, content, true)
                    }
                    looked => {
                        if let Some((id, _)) = looked {
                            m.forget(id, 1);
                        }
                        let created = m.create(pid, KEYS, raw, flags);
                        if busy {
                            errno(created, libc::EEXIST, &format!("{what}: O_EXCL"));
                            return None;
                        }
                        let (attr, fh) = created.unwrap();
                        assert_eq!(attr.size, 0, "{what}: created");
                        (fh, attr.id, (usize::MAX, false), Vec::new(), false)
                    }
                }
            }
            Route::Put { tags_first } => {
                let put = found(m.lookup(ROOT, b"put").unwrap(), "lookup put");
                assert_eq!(put.attr.id, PUT);
                let mut params = Vec::new();
                if let Some(tags) = &spec.tags {
                    params.push([&b"tags="[..], &tag_list(tags, spec.blanks)].concat());
                }
                if let Some(ttl) = spec.ttl {
                    params.push(format!("expire={ttl}").into_bytes());
                }
                if !tags_first {
                    params.reverse();
                }
                let mut dir = PUT;
                for p in &params {
                    let e = found(
                        m.lookup(dir, p).unwrap(),
                        &format!("lookup put/…/{}", show(p)),
                    );
                    assert_eq!(e.attr.kind, FileKind::Directory);
                    dir = e.attr.id;
                    put_dirs.push(dir);
                }
                assert!(
                    matches!(m.lookup(dir, raw).unwrap(), Lookup::Negative(_)),
                    "{what}: put/ holds nothing"
                );
                let created = m.create(pid, dir, raw, flags);
                if busy {
                    errno(created, libc::EEXIST, &format!("{what}: O_EXCL in put/"));
                    for d in put_dirs {
                        m.forget(d, 1);
                    }
                    return None;
                }
                let (attr, fh) = created.unwrap();
                let base = match (&live, spec.mode) {
                    (Some(k), Mode::Append | Mode::Overwrite) => {
                        self.m.versions[k.vid].content.clone()
                    }
                    _ => Vec::new(),
                };
                assert_eq!(attr.size, base.len() as u64, "{what}: created in put/");
                (fh, attr.id, (usize::MAX, false), base, live.is_some())
            }
        };
        let content = match spec.mode {
            Mode::Trunc => spec.content.clone(),
            Mode::Append => [&base[..], &spec.content].concat(),
            Mode::Overwrite => {
                let mut c = base.clone();
                let n = spec.content.len().min(c.len());
                c[..n].copy_from_slice(&spec.content[..n]);
                c.extend_from_slice(&spec.content[n..]);
                c
            }
        };
        let inherited = live.as_ref().filter(|_| continues);
        let tags = match (&spec.tags, inherited) {
            (Some(t), _) => t.clone(),
            (None, Some(k)) => self.m.tags_of(k.vid).clone(),
            (None, None) => BTreeSet::new(),
        };
        let carried = match (&spec.tags, inherited) {
            (None, Some(_)) => tags.iter().map(|t| (*t, self.m.tags[t])).collect(),
            _ => BTreeMap::new(),
        };
        let ttl = spec.ttl.or(inherited.map(|k| k.ttl)).unwrap_or(DEFAULT_TTL);

        let set_xattrs = |spec: &WriteSpec| {
            if let Some(t) = &spec.tags {
                let r = m.setxattr(pid, node, b"user.tags", Some(&tag_list(t, spec.blanks)));
                assert_eq!(r.unwrap(), None, "{what}: user.tags on the writer");
            }
            if let Some(ttl) = spec.ttl {
                let r = m.setxattr(pid, node, b"user.expire", Some(ttl.to_string().as_bytes()));
                assert_eq!(r.unwrap(), None, "{what}: user.expire on the writer");
            }
        };
        if let Route::Keys { xattrs_first: true } = spec.route {
            set_xattrs(spec);
        }
        let mut written = 0;
        for chunk in spec.content.chunks(spec.chunk) {
            let offset = match spec.mode {
                Mode::Append => base.len() + written,
                _ => written,
            };
            let n = m.write(fh, offset as u64, chunk, Some(pid as u64)).unwrap();
            assert_eq!(n as usize, chunk.len(), "{what}: write");
            written += chunk.len();
        }
        if let Route::Keys {
            xattrs_first: false,
        } = spec.route
        {
            set_xattrs(spec);
        }
        // Others see the committed size on the node being rewritten.
        if let Some(k) = live.as_ref().filter(|_| ident.0 != usize::MAX) {
            let size = self.m.versions[k.vid].content.len() as u64;
            let e = m.getattr(node).unwrap();
            assert_eq!(e.attr.size, size, "{what}: getattr while writing");
        }
        // The writer's node answers for the writer.
        assert_eq!(
            m.getxattr(pid, node, b"user.tags").unwrap(),
            joined(&tags),
            "{what}: user.tags while writing"
        );
        assert_eq!(
            m.getxattr(pid, node, b"user.expire").unwrap(),
            ttl.to_string().into_bytes(),
            "{what}: user.expire while writing"
        );

        let xattrs =
            matches!(spec.route, Route::Keys { .. }) && (spec.tags.is_some() || spec.ttl.is_some());
        let created = ident.0 == usize::MAX;
        let draft = created.then(|| self.m.new_version(content.clone(), tags.clone()));
        let ident = draft.map_or(ident, |vid| (vid, false));
        if created {
            self.saw(node, ident, &format!("{what}: the created node"));
        }
        let w = Writer {
            fh,
            node,
            ident,
            pid,
            name: spec.name,
            content,
            position: spec.content.len(),
            append: spec.mode == Mode::Append,
            more: spec.more.clone(),
            tags,
            ttl,
            carried,
            draft,
            dirty: !spec.content.is_empty() || xattrs,
            at_release: if created {
                !spec.excl
            } else {
                spec.mode == Mode::Trunc
            },
            lock: spec.excl,
            put_dirs,
        };
        // Until the close, others see what was there before.
        self.read(spec.name, Via::Keys, 4096);
        Some(w)
    }

    /// Closes a writer as the kernel does for a process that forked and
    /// maybe wrote more: FLUSH from the child (another lock owner), FLUSH,
    /// then (`more`) WRITE and FLUSH again, FLUSH with nothing new, RELEASE;
    /// and checks each commit.
    fn finish(&mut self, mut w: Writer) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let what = format!("close of the write of {}", show(NAMES[w.name]));
        let owner = w.pid as u64;
        // A forked child closing its copy is not the writer being done.
        assert_eq!(
            m.flush(w.fh, owner + (1 << 40), w.pid + 1).unwrap(),
            None,
            "{what}: a close by another process"
        );
        let fails = w.carried.iter().any(|(t, d)| self.m.tags.get(t) != Some(d));
        let flushed = m.flush(w.fh, owner, w.pid);
        let mut pending = !w.dirty && w.at_release;
        let mut failed = false;
        match (w.dirty, fails) {
            (true, true) => {
                errno(
                    flushed,
                    libc::ESTALE,
                    &format!("{what}: a carried tag is gone"),
                );
                failed = true;
            }
            (true, false) => {
                let change = flushed.unwrap().expect("a close after writes commits");
                self.committed(&mut w, change, &what);
            }
            (false, _) => assert_eq!(flushed.unwrap(), None, "{what}: nothing to commit yet"),
        }
        if !w.more.is_empty() && !failed {
            // The descriptor goes on from where it was, over what it wrote.
            let offset = if w.append {
                w.content.len()
            } else {
                w.position
            };
            let n = m.write(w.fh, offset as u64, &w.more, Some(owner)).unwrap();
            assert_eq!(n as usize, w.more.len(), "{what}: write after a close");
            let end = offset + w.more.len();
            if w.content.len() < end {
                w.content.resize(end, 0);
            }
            w.content[offset..end].copy_from_slice(&w.more);
            let flushed = m.flush(w.fh, owner, w.pid);
            if fails {
                errno(
                    flushed,
                    libc::ESTALE,
                    &format!("{what}: again, a carried tag is gone"),
                );
            } else {
                let change = flushed.unwrap().expect("a close after new writes commits");
                self.committed(&mut w, change, &what);
            }
            pending = false;
        }
        assert_eq!(
            m.flush(w.fh, owner, w.pid).unwrap(),
            None,
            "{what}: a close with nothing new"
        );
        let released = m.release(w.fh);
        match (pending, fails) {
            (true, true) => {
                errno(
                    released,
                    libc::ESTALE,
                    &format!("{what}: release, a carried tag is gone"),
                );
            }
            (true, false) => {
                let change = released.unwrap().expect("the release commits");
                self.committed(&mut w, change, &what);
            }
            (false, _) => assert_eq!(
                released.unwrap(),
                None,
                "{what}: nothing left at the release"
            ),
        }
        m.forget(w.node, 1);
        for d in &w.put_dirs {
            m.forget(*d, 1);
        }
    }

    /// A commit of writer `w`: its content is now the entry's version.
    fn committed(&mut self, w: &mut Writer, change: Change, what: &str) {
        // The created node's draft becomes the first version committed;
        // later commits of the descriptor are new versions.
        let vid = match w.draft.take() {
            Some(vid) => {
                self.m.versions[vid].content = w.content.clone();
                vid
            }
            None => self.m.new_version(w.content.clone(), w.tags.clone()),
        };
        let mut all_tags = w.tags.clone();
        if let Some(old) = self.m.keys.get(&w.name) {
            all_tags.extend(self.m.tags_of(old.vid));
        }
        covers(&change, w.name, &all_tags, what);
        let made = self.m.publish(w.name, vid, w.ttl, expiry_after(w.ttl));
        covers_tags(&change, &made, what);
        // From now on it carries on from its own commit, whose tag
        // directories it holds.
        w.carried = w.tags.iter().map(|t| (*t, self.m.tags[t])).collect();
    }

    // -- the other operations ----------------------------------------------

    fn apply(&mut self, op: &Op) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        match op {
            Op::Write(spec) => {
                if let Some(w) = self.begin(spec) {
                    self.finish(w);
                }
            }
            Op::BeginWrite(spec) => {
                if let Some(w) = self.begin(spec) {
                    self.writers.push(w);
                }
            }
            Op::FinishWrite(i) => {
                if !self.writers.is_empty() {
                    let w = self.writers.remove(i.index(self.writers.len()));
                    self.finish(w);
                }
            }
            Op::Read { name, via, chunk } => self.read(self.pick(*name, *via), *via, *chunk),
            Op::Hold { name, via } => {
                let name = self.pick(*name, *via);
                let (node, tag_node) = self.resolve(name, *via);
                if let Some((id, ident)) = node {
                    self.held.push(HeldNode { id, ident, name });
                }
                if let Some(t) = tag_node {
                    m.forget(t, 1);
                }
            }
            Op::Held(i, what) => {
                if !self.held.is_empty() {
                    self.held_op(i.index(self.held.len()), *what);
                }
            }
            Op::Fd(i, what) => {
                if self.fds.is_empty() {
                    return;
                }
                let i = i.index(self.fds.len());
                let fd = &self.fds[i];
                match what {
                    FdOp::Read => {
                        let data = read_all(&m, fd.node, fd.fh, 7).unwrap();
                        assert_eq!(
                            data, self.m.versions[fd.vid].content,
                            "a descriptor reads the version it opened"
                        );
                    }
                    FdOp::Close => {
                        assert_eq!(m.release(fd.fh).unwrap(), None);
                        self.fds.remove(i);
                    }
                }
            }
            Op::Rm { name, tag } => {
                let name = &self.pick(*name, tag.map_or(Via::Keys, Via::Tag));
                let raw = NAMES[*name];
                let (parent, expected, what) = match tag {
                    None => (
                        KEYS,
                        self.m.live(*name).is_some(),
                        format!("rm keys/{}", show(raw)),
                    ),
                    Some(t) => {
                        let Some(tid) = self.tag_dir(*t) else { return };
                        (
                            tid,
                            self.m.carries(*name, *t),
                            format!("rm tags/{}/{}", show(TAG_NAMES[*t]), show(raw)),
                        )
                    }
                };
                let result = m.unlink(parent, raw);
                if parent != KEYS {
                    m.forget(parent, 1);
                }
                if !expected {
                    return errno(result, libc::ENOENT, &what);
                }
                let change = result.unwrap();
                let key = self.m.keys.get_mut(name).unwrap();
                key.live = false;
                key.expires = Some(now());
                let vid = key.vid;
                covers(&change, *name, &self.m.versions[vid].tags.clone(), &what);
            }
            Op::Rmdir { tag } => {
                let what = format!("rmdir tags/{}", show(TAG_NAMES[*tag]));
                let result = m.rmdir(TAGS, TAG_NAMES[*tag]);
                if !self.m.tags.contains_key(tag) {
                    return errno(result, libc::ENOENT, &what);
                }
                let change = result.unwrap();
                covers_tags(&change, &[*tag], &what);
                // Every name the kernel may hold for an entry carrying the
                // tag is invalidated.
                for h in &self.held {
                    if self.m.tags_of(h.ident.0).contains(tag) {
                        covers(&change, h.name, &BTreeSet::new(), &what);
                    }
                }
                self.m.rmdir(*tag);
            }
            Op::Mkdir { tag } => {
                let what = format!("mkdir tags/{}", show(TAG_NAMES[*tag]));
                let result = m.mkdir(TAGS, TAG_NAMES[*tag]);
                if self.m.tags.contains_key(tag) {
                    return errno(result, libc::EEXIST, &what);
                }
                let (attr, change) = result.unwrap();
                assert_eq!(attr.kind, FileKind::Directory, "{what}");
                assert_eq!(change.tags, vec![TAG_NAMES[*tag].to_vec()], "{what}");
                m.forget(attr.id, 1);
                self.m.make_tag(*tag);
            }
            Op::Link { name, tag } => {
                let name = &self.pick(*name, Via::Keys);
                let what = format!(
                    "ln keys/{0} tags/{1}/{0}",
                    show(NAMES[*name]),
                    show(TAG_NAMES[*tag])
                );
                let (Some((id, _)), _) = self.resolve(*name, Via::Keys) else {
                    return;
                };
                let Some(tid) = self.tag_dir(*tag) else {
                    m.forget(id, 1);
                    return;
                };
                let result = m.link(id, tid, NAMES[*name]);
                m.forget(id, 1);
                m.forget(tid, 1);
                if self.m.carries(*name, *tag) {
                    return errno(result, libc::EEXIST, &what);
                }
                let (l, change) = result.unwrap();
                let key = self.m.keys[name].clone();
                let mut tags = self.m.tags_of(key.vid).clone();
                tags.insert(*tag);
                let content = self.m.versions[key.vid].content.clone();
                let vid = self.m.new_version(content, tags.clone());
                let made = self.m.publish(*name, vid, key.ttl, key.expires);
                assert!(made.is_empty(), "the tag existed");
                covers(&change, *name, &tags, &what);
                let e = found(l, &what);
                self.check_entry(&e, *name, false, &what);
                m.forget(e.attr.id, 1);
            }
            Op::Retag { name, tags, blanks } => {
                let name = &self.pick(*name, Via::Keys);
                let what = format!("setfattr user.tags on {}", show(NAMES[*name]));
                let (Some((id, _)), _) = self.resolve(*name, Via::Keys) else {
                    return;
                };
                let value = tag_list(tags, *blanks);
                let change = m.setxattr(USER, id, b"user.tags", Some(&value));
                m.forget(id, 1);
                let change = change.unwrap().expect("a retag is a change");
                let key = self.m.keys[name].clone();
                let mut all = self.m.tags_of(key.vid).clone();
                all.extend(tags);
                covers(&change, *name, &all, &what);
                let content = self.m.versions[key.vid].content.clone();
                let vid = self.m.new_version(content, tags.clone());
                let made = self.m.publish(*name, vid, key.ttl, key.expires);
                covers_tags(&change, &made, &what);
            }
            Op::SetTtl { name, ttl } => {
                let name = &self.pick(*name, Via::Keys);
                let what = format!("setfattr user.expire={ttl} on {}", show(NAMES[*name]));
                let (Some((id, (vid, _))), _) = self.resolve(*name, Via::Keys) else {
                    return;
                };
                let value = ttl.to_string();
                let change = m.setxattr(USER, id, b"user.expire", Some(value.as_bytes()));
                m.forget(id, 1);
                let change = change.unwrap().expect("an expiry is a change");
                covers(&change, *name, &self.m.versions[vid].tags.clone(), &what);
                let key = self.m.keys.get_mut(name).unwrap();
                key.ttl = *ttl;
                key.expires = expiry_after(*ttl);
            }
            Op::RemoveXattr { name, tags } => {
                let name = &self.pick(*name, Via::Keys);
                let attr: &[u8] = if *tags { b"user.tags" } else { b"user.expire" };
                let what = format!("setfattr -x {} {}", show(attr), show(NAMES[*name]));
                let (Some((id, (vid, _))), _) = self.resolve(*name, Via::Keys) else {
                    return;
                };
                let change = m.setxattr(USER, id, attr, None);
                m.forget(id, 1);
                let change = change.unwrap().expect("a removal is a change");
                covers(&change, *name, &self.m.versions[vid].tags.clone(), &what);
                let key = self.m.keys[name].clone();
                if *tags {
                    let content = self.m.versions[vid].content.clone();
                    let vid = self.m.new_version(content, BTreeSet::new());
                    self.m.publish(*name, vid, key.ttl, key.expires);
                } else {
                    let key = self.m.keys.get_mut(name).unwrap();
                    key.ttl = 0;
                    key.expires = None;
                }
            }
            Op::Touch { name, when } => {
                let name = &self.pick(*name, Via::Keys);
                let what = format!("touch {when:?} {}", show(NAMES[*name]));
                let (Some((id, (vid, _))), _) = self.resolve(*name, Via::Keys) else {
                    return;
                };
                let key = self.m.keys[name].clone();
                let (time, expires) = match when {
                    When::Now => (SetTime::Now, expiry_after(key.ttl)),
                    When::Future => {
                        let at = now().floor() + 86_400.0;
                        let t = UNIX_EPOCH + Duration::from_secs(at as u64);
                        (SetTime::At(t), Some(at))
                    }
                    When::Past => (
                        SetTime::At(UNIX_EPOCH + Duration::from_secs(1000)),
                        Some(1000.0),
                    ),
                };
                let set = SetAttr {
                    mtime: Some(time),
                    ..SetAttr::default()
                };
                let result = m.setattr(USER, id, set);
                m.forget(id, 1);
                let (e, change) = result.unwrap();
                covers(
                    &change.expect("a new expiry is a change"),
                    *name,
                    &self.m.versions[vid].tags.clone(),
                    &what,
                );
                check_time(e.attr.time, expires, &what);
                let key = self.m.keys.get_mut(name).unwrap();
                key.expires = expires;
                if let When::Past = when {
                    key.live = false;
                }
            }
            Op::Rename {
                from,
                to,
                noreplace,
                tag,
            } => {
                let from = self.pick(*from, tag.map_or(Via::Keys, Via::Tag));
                self.rename(from, *to, *noreplace, *tag)
            }
            Op::List { dir, plus, cap } => self.list(*dir, *plus, *cap),
            Op::ListOpen { dir, plus, cap } => {
                let Some((id, tag_node)) = self.dir_node(*dir) else {
                    return;
                };
                let fh = m.opendir(id).unwrap();
                let throughout = self.m.listing(*dir);
                let ever = throughout.keys().cloned().collect();
                self.listings.push(HeldListing {
                    dir: *dir,
                    fh,
                    plus: *plus,
                    cap: *cap,
                    offset: 0,
                    tag_node,
                    got: Vec::new(),
                    throughout,
                    ever,
                });
            }
            Op::ListStep(i) => {
                if !self.listings.is_empty() {
                    self.list_step(i.index(self.listings.len()));
                }
            }
            Op::Xattrs { name } => {
                let name = self.pick(*name, Via::Keys);
                self.xattrs(name)
            }
            Op::Cleanup => {
                fs.store().cleanup().unwrap();
                self.m.cleanup();
            }
            Op::Bad(bad) => self.bad(*bad),
        }
    }

    fn held_op(&mut self, i: usize, op: HeldOp) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let (id, (vid, stale)) = (self.held[i].id, self.held[i].ident);
        let what = format!("held node {id:#x} of version {vid} (stale view: {stale})");
        let content = self.m.versions[vid].content.clone();
        match op {
            HeldOp::Getattr => {
                // A node answers for its own version, replaced or gone.
                let e = m.getattr(id).unwrap();
                assert_eq!(e.attr.id, id, "{what}");
                assert_eq!(e.attr.kind, FileKind::RegularFile, "{what}");
                assert_eq!(e.attr.size, content.len() as u64, "{what}: size");
                if !stale && self.m.is_current_live(vid) {
                    let tags = self.m.tags_of(vid).len();
                    assert_eq!(e.attr.nlink as usize, tags + 1, "{what}: nlink");
                }
            }
            HeldOp::Open => {
                if let Some(fh) = self.open_held(i) {
                    self.fds.push(HeldFd { fh, node: id, vid });
                }
            }
            HeldOp::Forget => {
                // The kernel keeps the node of an open file.
                if !self.fds.iter().any(|f| f.node == id) {
                    m.forget(id, 1);
                    self.held.remove(i);
                }
            }
        }
    }

    /// Opens held node `i` for reading and reads it: the handle, if the
    /// open succeeded. It must while the node's version is what its name
    /// shows; after that it may fail (ENOENT, ESTALE), but what it serves
    /// is still that version, whole.
    fn open_held(&mut self, i: usize) -> Option<u64> {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let (id, (vid, stale)) = (self.held[i].id, self.held[i].ident);
        let what = format!("open of held node {id:#x} of version {vid} (stale view: {stale})");
        let must = if stale {
            self.m.is_current_stale(vid)
        } else {
            self.m.is_current_live(vid)
        };
        match m.open(USER, id, libc::O_RDONLY) {
            Ok(o) => {
                let data = read_all(&m, id, o.fh, 4096).unwrap();
                assert_eq!(data, self.m.versions[vid].content, "{what}: content");
                Some(o.fh)
            }
            Err(e) => {
                assert!(!must, "{what}: failed: {e}");
                assert!(
                    [libc::ENOENT, libc::ESTALE].contains(&e.errno()),
                    "{what}: failed: {e}"
                );
                None
            }
        }
    }

    /// What the kernel holds still answers right: every held node its
    /// version's attributes (and content, where it may be opened), every
    /// descriptor its version's bytes.
    fn check_held(&mut self) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        for i in 0..self.held.len() {
            self.held_op(i, HeldOp::Getattr);
            if let Some(fh) = self.open_held(i) {
                assert_eq!(m.release(fh).unwrap(), None);
            }
        }
        for fd in &self.fds {
            let data = read_all(&m, fd.node, fd.fh, 4096).unwrap();
            assert_eq!(
                data, self.m.versions[fd.vid].content,
                "a descriptor reads the version it opened"
            );
        }
    }

    fn rename(&mut self, from: usize, to: usize, noreplace: bool, tag: Option<usize>) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let what = format!(
            "mv {}{} {} in {tag:?}",
            if noreplace { "-n " } else { "" },
            show(NAMES[from]),
            show(NAMES[to])
        );
        let via = tag.map_or(Via::Keys, Via::Tag);
        let (node, tag_node) = self.resolve(from, via);
        let Some((id, (vid, _))) = node else {
            // The kernel's lookup fails first; the daemon says so too.
            if let Some(t) = tag_node {
                errno(
                    m.rename(t, NAMES[from], t, NAMES[to], 0),
                    libc::ENOENT,
                    &what,
                );
                m.forget(t, 1);
            } else if tag.is_none() {
                errno(
                    m.rename(KEYS, NAMES[from], KEYS, NAMES[to], 0),
                    libc::ENOENT,
                    &what,
                );
            }
            return;
        };
        let parent = tag_node.unwrap_or(KEYS);
        let flags = if noreplace { libc::RENAME_NOREPLACE } else { 0 };
        let result = m.rename(parent, NAMES[from], parent, NAMES[to], flags);
        m.forget(id, 1);
        if let Some(t) = tag_node {
            m.forget(t, 1);
        }
        let replaced = self.m.live(to).cloned();
        if noreplace && replaced.is_some() {
            return errno(result, libc::EEXIST, &what);
        }
        let change = result.unwrap();
        if from == to {
            return;
        }
        let tags = self.m.tags_of(vid).clone();
        covers(&change, from, &tags, &what);
        let mut both = tags.clone();
        if let Some(r) = &replaced {
            both.extend(self.m.tags_of(r.vid));
        }
        covers(&change, to, &both, &what);
        let key = self.m.keys.remove(&from).unwrap();
        self.m.keys.insert(to, key);
        for h in &mut self.held {
            if h.ident.0 == vid {
                h.name = to;
            }
        }
    }

    fn list_step(&mut self, i: usize) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let l = &self.listings[i];
        let (dir, plus) = (l.dir, l.plus);
        let mut out = Collect {
            cap: l.cap,
            got: Vec::new(),
        };
        m.readdir(l.fh, l.offset, l.plus, &mut out).unwrap();
        self.check_listed(dir, plus, &out.got, false);
        let l = &mut self.listings[i];
        for e in &out.got {
            assert!(e.offset > l.offset, "ls {dir:?}: offsets go forward");
            l.offset = e.offset;
            assert!(
                l.ever.contains(&e.name),
                "ls {dir:?}: {} was never there",
                show(&e.name)
            );
            l.got.push(e.name.clone());
        }
        assert!(l.got.len() <= 64, "ls {dir:?}: a listing that never ends");
        if !out.got.is_empty() {
            return;
        }
        let l = self.listings.remove(i);
        m.releasedir(l.fh);
        if let Some(t) = l.tag_node {
            m.forget(t, 1);
        }
        let mut counts: BTreeMap<&[u8], usize> = BTreeMap::new();
        for n in &l.got {
            *counts.entry(n).or_default() += 1;
        }
        for name in l.throughout.keys() {
            assert_eq!(
                counts.get(&name[..]).copied().unwrap_or(0),
                1,
                "ls {dir:?}: {} was there throughout: {:?}",
                show(name),
                l.got
            );
        }
        // A name's place in keys/, stale/ and tags/ is its file name; in
        // tags/T/ it is the version's inode, so a changed entry may show
        // twice there.
        if !matches!(dir, Dir::Tag(_)) {
            for (name, n) in counts {
                assert!(n <= 1, "ls {dir:?}: {} {n} times", show(name));
            }
        }
    }

    /// Listings open across operations see the model change.
    fn track_listings(&mut self) {
        for l in &mut self.listings {
            let now = self.m.listing(l.dir);
            l.throughout.retain(|k, v| now.get(k) == Some(v));
            l.ever.extend(now.into_keys());
        }
    }

    fn bad(&mut self, bad: Bad) {
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC;
        match bad {
            Bad::LongName(name) => {
                errno(
                    m.lookup(KEYS, &TOO_LONG),
                    libc::ENAMETOOLONG,
                    "lookup of 126 bytes",
                );
                errno(
                    m.create(USER, KEYS, &TOO_LONG, flags),
                    libc::ENAMETOOLONG,
                    "create of 126 bytes",
                );
                errno(
                    m.create(USER, PUT, &TOO_LONG, flags),
                    libc::ENAMETOOLONG,
                    "create of 126 bytes in put/",
                );
                if self.m.live(name).is_some() {
                    errno(
                        m.rename(KEYS, NAMES[name], KEYS, &TOO_LONG, 0),
                        libc::ENAMETOOLONG,
                        "mv to 126 bytes",
                    );
                }
            }
            Bad::LongTag(name) => {
                let long = [b'T'; 126];
                errno(
                    m.mkdir(TAGS, &long),
                    libc::ENAMETOOLONG,
                    "mkdir of 126 bytes",
                );
                errno(
                    m.lookup(TAGS, &long),
                    libc::ENAMETOOLONG,
                    "lookup of a 126-byte tag",
                );
                let (node, _) = self.resolve(name, Via::Keys);
                if let Some((id, _)) = node {
                    let r = m.setxattr(USER, id, b"user.tags", Some(&long));
                    errno(r, libc::ENAMETOOLONG, "user.tags with 126 bytes");
                    m.forget(id, 1);
                }
            }
            Bad::Malformed(name) => {
                for tag in [&b"a b"[..], b"a,b", b"a\tb"] {
                    errno(
                        m.mkdir(TAGS, tag),
                        libc::EINVAL,
                        &format!("mkdir {}", show(tag)),
                    );
                }
                errno(m.lookup(PUT, b"tags=a b"), libc::EINVAL, "put/tags=a b");
                errno(
                    m.lookup(PUT, b"expire=soon"),
                    libc::EINVAL,
                    "put/expire=soon",
                );
                let e = found(m.lookup(PUT, b"expire=5").unwrap(), "put/expire=5");
                errno(
                    m.lookup(e.attr.id, b"expire=6"),
                    libc::EINVAL,
                    "expire= twice",
                );
                m.forget(e.attr.id, 1);
                let (node, _) = self.resolve(name, Via::Keys);
                if let Some((id, _)) = node {
                    for (attr, value) in [
                        (&b"user.tags"[..], &b"t,a b"[..]),
                        (b"user.expire", b"soon"),
                        (b"user.expire", b"-1"),
                        (b"user.expire", b"4294967297"),
                    ] {
                        let what = format!("setfattr {}={}", show(attr), show(value));
                        errno(m.setxattr(USER, id, attr, Some(value)), libc::EINVAL, &what);
                    }
                    m.forget(id, 1);
                }
            }
            Bad::StaleWrite(name, tag) => {
                let raw = NAMES[name];
                errno(
                    m.create(USER, STALE, raw, flags),
                    libc::EROFS,
                    "create in stale/",
                );
                errno(m.unlink(STALE, raw), libc::EROFS, "rm in stale/");
                errno(m.mkdir(STALE, b"d"), libc::EROFS, "mkdir in stale/");
                errno(m.access(STALE, true), libc::EROFS, "access W of stale/");
                errno(
                    m.rename(STALE, raw, STALE, b"other", 0),
                    libc::EROFS,
                    "mv in stale/",
                );
                errno(
                    m.rename(KEYS, raw, STALE, raw, 0),
                    libc::EROFS,
                    "mv into stale/",
                );
                let (node, _) = self.resolve(name, Via::Stale);
                let Some((id, _)) = node else { return };
                errno(
                    m.open(USER, id, libc::O_WRONLY),
                    libc::EROFS,
                    "open W in stale/",
                );
                errno(
                    m.open(USER, id, libc::O_RDWR),
                    libc::EROFS,
                    "open RW in stale/",
                );
                errno(m.access(id, true), libc::EROFS, "access W in stale/");
                m.access(id, false).unwrap();
                errno(
                    m.setxattr(USER, id, b"user.tags", Some(b"t")),
                    libc::EROFS,
                    "user.tags in stale/",
                );
                errno(
                    m.setxattr(USER, id, b"user.expire", Some(b"60")),
                    libc::EROFS,
                    "user.expire in stale/",
                );
                let touch = SetAttr {
                    mtime: Some(SetTime::Now),
                    ..SetAttr::default()
                };
                errno(m.setattr(USER, id, touch), libc::EROFS, "touch in stale/");
                if let Some(tid) = self.tag_dir(tag) {
                    errno(m.link(id, tid, raw), libc::EROFS, "ln from stale/");
                    m.forget(tid, 1);
                }
                m.forget(id, 1);
            }
            Bad::Layout(name) => {
                let raw = NAMES[name];
                errno(m.mkdir(KEYS, raw), libc::EPERM, "mkdir in keys/");
                errno(m.mkdir(ROOT, raw), libc::EPERM, "mkdir in /");
                errno(m.mkdir(PUT, raw), libc::EPERM, "mkdir in put/");
                errno(
                    m.create(USER, TAGS, raw, flags),
                    libc::EPERM,
                    "create in tags/",
                );
                errno(m.create(USER, ROOT, raw, flags), libc::EPERM, "create in /");
                errno(m.rmdir(ROOT, b"keys"), libc::EPERM, "rmdir keys");
                errno(m.unlink(ROOT, b".stats"), libc::EPERM, "rm .stats");
                errno(m.unlink(TAGS, TAG_NAMES[0]), libc::EPERM, "rm tags/t");
                errno(m.symlink(), libc::EPERM, "symlink");
                errno(m.mknod(KEYS), libc::EPERM, "mknod");
                errno(
                    m.rename(ROOT, b"keys", ROOT, b"k", 0),
                    libc::EPERM,
                    "mv keys",
                );
                if let Some(tid) = self.tag_dir(0) {
                    errno(m.mkdir(tid, raw), libc::EPERM, "mkdir in tags/T/");
                    errno(
                        m.create(USER, tid, raw, flags),
                        libc::EPERM,
                        "create in tags/T/",
                    );
                    m.forget(tid, 1);
                }
            }
            Bad::UnknownXattr(name) => {
                errno(
                    m.getxattr(USER, KEYS, b"user.tags"),
                    libc::ENODATA,
                    "user.tags of keys/",
                );
                errno(
                    m.setxattr(USER, KEYS, b"user.tags", Some(b"t")),
                    libc::EOPNOTSUPP,
                    "user.tags on keys/",
                );
                let (node, _) = self.resolve(name, Via::Keys);
                let Some((id, _)) = node else { return };
                errno(
                    m.getxattr(USER, id, b"user.other"),
                    libc::ENODATA,
                    "getfattr user.other",
                );
                errno(
                    m.setxattr(USER, id, b"user.other", Some(b"x")),
                    libc::EOPNOTSUPP,
                    "setfattr user.other",
                );
                errno(
                    m.setxattr(USER, id, b"security.selinux", Some(b"x")),
                    libc::EOPNOTSUPP,
                    "setfattr security.selinux",
                );
                let chmod = SetAttr {
                    mode: Some(0o600),
                    ..SetAttr::default()
                };
                errno(m.setattr(USER, id, chmod), libc::EPERM, "chmod");
                errno(
                    m.setattr(
                        USER,
                        id,
                        SetAttr {
                            size: Some(0),
                            ..SetAttr::default()
                        },
                    ),
                    libc::EPERM,
                    "truncate without a writer",
                );
                m.forget(id, 1);
            }
            Bad::Rename(from, to, tag) => {
                let Some(tid) = self.tag_dir(tag) else { return };
                let (a, b) = (NAMES[from], NAMES[to]);
                errno(
                    m.rename(KEYS, a, tid, a, 0),
                    libc::EXDEV,
                    "mv keys/ tags/T/",
                );
                errno(
                    m.rename(tid, a, KEYS, a, 0),
                    libc::EXDEV,
                    "mv tags/T/ keys/",
                );
                errno(
                    m.rename(KEYS, a, KEYS, b, libc::RENAME_EXCHANGE),
                    libc::EINVAL,
                    "mv --exchange",
                );
                let (node, _) = self.resolve(from, Via::Keys);
                if let Some((id, _)) = node {
                    if from != to {
                        errno(m.link(id, tid, b), libc::EINVAL, "ln under another name");
                    }
                    errno(m.link(id, KEYS, a), libc::EPERM, "ln into keys/");
                    m.forget(id, 1);
                }
                m.forget(tid, 1);
            }
        }
    }

    /// Ends what the kernel still holds: writers close, descriptors close,
    /// listings run to their end, nodes are forgotten.
    fn finish_all(&mut self) {
        while let Some(w) = self.writers.pop() {
            self.finish(w);
            self.track_listings();
        }
        let fs = self.fs.clone();
        let m = fs.mount(FULL);
        for fd in self.fds.drain(..) {
            assert_eq!(m.release(fd.fh).unwrap(), None);
        }
        while !self.listings.is_empty() {
            self.list_step(0);
        }
        for h in self.held.drain(..) {
            m.forget(h.id, 1);
        }
        self.check_nodes();
        assert_eq!(
            fs.entry_nodes(),
            0,
            "nodes left once everything is forgotten"
        );
    }
}

fn run(ops: &[Op]) {
    let mut h = Harness::new();
    h.check_all();
    for op in ops {
        h.apply(op);
        h.track_listings();
        h.check_nodes();
        h.check_all();
    }
    h.finish_all();
    h.check_all();
    h.finish_all();
    // Drafts were committed or dropped, locks released, removed tag
    // directories and reaped entries gone: nothing is left in tmp/.
    let tmp: Vec<_> = std::fs::read_dir(h.dir.path().join("tmp"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(tmp.is_empty(), "leftovers in tmp/: {tmp:?}");
}

// ---------------------------------------------------------------------------
// Strategies

fn tag_set() -> impl Strategy<Value = BTreeSet<usize>> {
    prop::collection::btree_set(0..TAG_NAMES.len(), 0..=2)
}

fn ttl() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0u64), Just(60), Just(3600)]
}

fn via() -> impl Strategy<Value = Via> {
    prop_oneof![
        2 => Just(Via::Keys),
        1 => (0..TAG_NAMES.len()).prop_map(Via::Tag),
        1 => Just(Via::Stale),
    ]
}

fn dir() -> impl Strategy<Value = Dir> {
    prop_oneof![
        1 => Just(Dir::Root),
        3 => Just(Dir::Keys),
        2 => Just(Dir::Tags),
        3 => (0..TAG_NAMES.len()).prop_map(Dir::Tag),
        2 => Just(Dir::Stale),
    ]
}

fn write_spec() -> impl Strategy<Value = WriteSpec> {
    let route = prop_oneof![
        3 => any::<bool>().prop_map(|xattrs_first| Route::Keys { xattrs_first }),
        1 => any::<bool>().prop_map(|tags_first| Route::Put { tags_first }),
    ];
    let mode = prop_oneof![
        4 => Just(Mode::Trunc),
        1 => Just(Mode::Append),
        1 => Just(Mode::Overwrite),
    ];
    (
        (
            0..NAMES.len(),
            // Empty writes are the commit points' corner cases.
            prop_oneof![
                1 => Just(Vec::new()),
                5 => prop::collection::vec(any::<u8>(), 1..40),
            ],
            1..17usize,
        ),
        prop::option::weighted(0.6, tag_set()),
        prop::option::weighted(0.5, ttl()),
        route,
        mode,
        prop::bool::weighted(0.15),
        any::<bool>(),
        prop_oneof![
            4 => Just(Vec::new()),
            1 => prop::collection::vec(any::<u8>(), 1..20),
        ],
    )
        .prop_map(
            |((name, content, chunk), tags, ttl, route, mode, excl, blanks, more)| WriteSpec {
                name,
                content,
                chunk,
                more,
                tags,
                ttl,
                route,
                mode,
                excl,
                blanks,
            },
        )
}

fn index() -> impl Strategy<Value = Index> {
    any::<usize>().prop_map(Index)
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        1 => (0..NAMES.len()).prop_map(Pick::Name),
        3 => index().prop_map(Pick::There),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let name = || 0..NAMES.len();
    let tag = || 0..TAG_NAMES.len();
    prop_oneof![
        10 => write_spec().prop_map(Op::Write),
        4 => write_spec().prop_map(Op::BeginWrite),
        3 => index().prop_map(Op::FinishWrite),
        2 => (pick(), via(), 1..9u32).prop_map(|(name, via, chunk)| Op::Read { name, via, chunk }),
        6 => (pick(), prop_oneof![3 => Just(Via::Keys), 1 => via()])
            .prop_map(|(name, via)| Op::Hold { name, via }),
        6 => (index(), prop_oneof![
            1 => Just(HeldOp::Getattr),
            2 => Just(HeldOp::Open),
            1 => Just(HeldOp::Forget),
        ])
            .prop_map(|(i, op)| Op::Held(i, op)),
        4 => (index(), prop_oneof![3 => Just(FdOp::Read), 1 => Just(FdOp::Close)])
            .prop_map(|(i, op)| Op::Fd(i, op)),
        3 => (pick(), prop::option::weighted(0.3, tag()))
            .prop_map(|(name, tag)| Op::Rm { name, tag }),
        3 => tag().prop_map(|tag| Op::Rmdir { tag }),
        1 => tag().prop_map(|tag| Op::Mkdir { tag }),
        3 => (pick(), tag()).prop_map(|(name, tag)| Op::Link { name, tag }),
        3 => (pick(), tag_set(), any::<bool>())
            .prop_map(|(name, tags, blanks)| Op::Retag { name, tags, blanks }),
        1 => (pick(), ttl()).prop_map(|(name, ttl)| Op::SetTtl { name, ttl }),
        1 => (pick(), any::<bool>()).prop_map(|(name, tags)| Op::RemoveXattr { name, tags }),
        2 => (pick(), prop_oneof![Just(When::Now), Just(When::Future), Just(When::Past)])
            .prop_map(|(name, when)| Op::Touch { name, when }),
        3 => (pick(), name(), prop::bool::weighted(0.4), prop::option::weighted(0.2, tag()))
            .prop_map(|(from, to, noreplace, tag)| Op::Rename { from, to, noreplace, tag }),
        2 => (dir(), any::<bool>(), 1..6usize)
            .prop_map(|(dir, plus, cap)| Op::List { dir, plus, cap }),
        2 => (dir(), any::<bool>(), 1..4usize)
            .prop_map(|(dir, plus, cap)| Op::ListOpen { dir, plus, cap }),
        4 => index().prop_map(Op::ListStep),
        1 => pick().prop_map(|name| Op::Xattrs { name }),
        2 => Just(Op::Cleanup),
        2 => prop_oneof![
            name().prop_map(Bad::LongName),
            name().prop_map(Bad::LongTag),
            name().prop_map(Bad::Malformed),
            (name(), tag()).prop_map(|(n, t)| Bad::StaleWrite(n, t)),
            name().prop_map(Bad::Layout),
            name().prop_map(Bad::UnknownXattr),
            (name(), name(), tag()).prop_map(|(a, b, t)| Bad::Rename(a, b, t)),
        ]
        .prop_map(Op::Bad),
    ]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: if support::long_mode() { 512 } else { 128 },
        ..ProptestConfig::default()
    }
}

fn max_ops() -> usize {
    if support::long_mode() { 80 } else { 40 }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn any_sequence_of_requests_matches_the_model(
        ops in prop::collection::vec(op(), 1..=max_ops())
    ) {
        run(&ops);
    }
}

// ---------------------------------------------------------------------------
// Pinned cases: what the sequences above must keep finding right.

fn tags(list: &[usize]) -> BTreeSet<usize> {
    list.iter().copied().collect()
}

/// `echo CONTENT > keys/NAME` with `user.tags` (unless `None`) and no TTL.
fn write(name: usize, content: &[u8], tag_list: Option<&[usize]>) -> WriteSpec {
    WriteSpec {
        name,
        content: content.to_vec(),
        chunk: 16,
        more: Vec::new(),
        tags: tag_list.map(tags),
        ttl: None,
        route: Route::Keys { xattrs_first: true },
        mode: Mode::Trunc,
        excl: false,
        blanks: false,
    }
}

fn first() -> Index {
    Index(0)
}

fn keys(n: usize) -> Pick {
    Pick::Name(n)
}

/// A writer continuing an entry carries its tags; if one of them is
/// removed (even if made again) before the close, the close fails with
/// ESTALE and the entry stays invalidated, as the rmdir left it.
#[test]
fn a_rewrite_racing_an_rmdir_of_its_tag_fails_and_the_entry_stays_dead() {
    run(&[
        Op::Write(write(0, b"v1", Some(&[0, 1]))),
        Op::BeginWrite(write(0, b"v2", None)),
        Op::Rmdir { tag: 0 },
        Op::FinishWrite(first()),
        Op::Read {
            name: keys(0),
            via: Via::Stale,
            chunk: 1,
        },
        Op::Write(write(1, b"w1", Some(&[1]))),
        Op::BeginWrite(write(1, b"w2", None)),
        Op::Rmdir { tag: 1 },
        Op::Mkdir { tag: 1 },
        Op::FinishWrite(first()),
    ]);
}

/// A writer that set its own tags links them afresh: an rmdir of the
/// entry's old tag does not stop it.
#[test]
fn a_rewrite_with_its_own_tags_commits_after_an_rmdir() {
    let mut own = write(0, b"v2", Some(&[1]));
    own.route = Route::Keys {
        xattrs_first: false,
    };
    run(&[
        Op::Write(write(0, b"v1", Some(&[0]))),
        Op::BeginWrite(own),
        Op::Rmdir { tag: 0 },
        Op::FinishWrite(first()),
    ]);
}

/// The kernel's node of an entry keeps naming it after `mv`, before any
/// lookup of the new name.
#[test]
fn a_held_node_follows_its_entry_through_a_rename() {
    run(&[
        Op::Write(write(0, b"moving", None)),
        Op::Hold {
            name: keys(0),
            via: Via::Keys,
        },
        Op::Rename {
            from: keys(0),
            to: 1,
            noreplace: false,
            tag: None,
        },
        Op::Held(first(), HeldOp::Open),
        Op::Held(first(), HeldOp::Getattr),
    ]);
}

/// A read descriptor keeps the bytes of the version it opened through a
/// new commit, rm, rmdir and cleanup.
#[test]
fn a_descriptor_keeps_its_version_whatever_happens_to_the_entry() {
    run(&[
        Op::Write(write(0, b"one", Some(&[0]))),
        Op::Hold {
            name: keys(0),
            via: Via::Keys,
        },
        Op::Held(first(), HeldOp::Open),
        Op::Write(write(0, b"two, longer", Some(&[0]))),
        Op::Fd(first(), FdOp::Read),
        Op::Rm {
            name: keys(0),
            tag: None,
        },
        Op::Rmdir { tag: 0 },
        Op::Cleanup,
        Op::Fd(first(), FdOp::Read),
        Op::Held(first(), HeldOp::Getattr),
        Op::Fd(first(), FdOp::Close),
        Op::Held(first(), HeldOp::Forget),
    ]);
}

/// A listing read one name per READDIR while entries come and go returns
/// each name that stayed exactly once.
#[test]
fn a_listing_left_open_returns_the_names_there_throughout_once() {
    for (dir, plus) in [(Dir::Keys, false), (Dir::Keys, true), (Dir::Tag(0), true)] {
        run(&[
            Op::Write(write(0, b"a", Some(&[0]))),
            Op::Write(write(1, b"b", Some(&[0]))),
            Op::Write(write(2, b"c", Some(&[0]))),
            Op::ListOpen { dir, plus, cap: 1 },
            Op::ListStep(first()),
            Op::Rm {
                name: keys(1),
                tag: None,
            },
            Op::Write(write(3, b"d", Some(&[0]))),
            Op::ListStep(first()),
            Op::Write(write(2, b"c again", Some(&[0]))),
            Op::ListStep(first()),
            Op::Cleanup,
            Op::ListStep(first()),
            Op::ListStep(first()),
            Op::ListStep(first()),
        ]);
    }
}

/// O_EXCL: EEXIST while another writer holds the name's lock and while
/// the name is live; a holder that wrote nothing commits nothing.
#[test]
fn o_excl_is_refused_while_another_writer_holds_the_name() {
    let excl = |content: &[u8]| WriteSpec {
        excl: true,
        tags: None,
        ..write(0, content, None)
    };
    let mut put = excl(b"through put/");
    put.route = Route::Put { tags_first: true };
    run(&[
        Op::BeginWrite(excl(b"")),
        Op::Write(excl(b"second")),
        Op::Write(put.clone()),
        Op::FinishWrite(first()),
        Op::Write(excl(b"first")),
        Op::Write(excl(b"again")),
        Op::Write(put),
    ]);
}

/// Closes commit what changed: nothing after an open that wrote nothing,
/// an empty version after a truncate alone (at the release), the old
/// content under new bytes without O_TRUNC, after it with O_APPEND.
#[test]
fn a_close_commits_only_what_the_descriptor_changed() {
    let mode = |content: &[u8], mode: Mode| WriteSpec {
        mode,
        ..write(0, content, None)
    };
    run(&[
        Op::Write(write(0, b"abcdef", Some(&[2]))),
        Op::Write(mode(b"", Mode::Overwrite)),
        Op::Write(mode(b"", Mode::Append)),
        Op::Write(mode(b"XY", Mode::Overwrite)),
        Op::Write(mode(b"++", Mode::Append)),
        Op::Write(mode(b"", Mode::Trunc)),
        Op::Xattrs { name: keys(0) },
    ]);
}

/// put/tags=…/expire=…/NAME is a write of keys/NAME with those xattrs; a
/// put/ path without tags= keeps the entry's tags.
#[test]
fn put_paths_write_entries_with_their_tags_and_ttl() {
    let put =
        |content: &[u8], tag_list: Option<&[usize]>, ttl: Option<u64>, tags_first| WriteSpec {
            ttl,
            route: Route::Put { tags_first },
            blanks: true,
            ..write(3, content, tag_list)
        };
    run(&[
        Op::Write(put(b"one", Some(&[0, 3]), Some(3600), true)),
        Op::Write(put(b"two", None, Some(60), false)),
        Op::Write(put(b"three", Some(&[]), None, false)),
        Op::Xattrs { name: keys(3) },
        Op::List {
            dir: Dir::Tag(3),
            plus: true,
            cap: 1,
        },
    ]);
}

/// Expiry through `touch` and `user.expire`: renewed, set, removed (never),
/// set in the past (stale), and kept by retags, links and renames.
#[test]
fn expiry_follows_touch_and_user_expire() {
    run(&[
        Op::Write(WriteSpec {
            ttl: Some(3600),
            ..write(0, b"x", Some(&[0]))
        }),
        Op::Touch {
            name: keys(0),
            when: When::Future,
        },
        Op::Retag {
            name: keys(0),
            tags: tags(&[1]),
            blanks: true,
        },
        Op::Link {
            name: keys(0),
            tag: 1,
        },
        Op::Mkdir { tag: 2 },
        Op::Link {
            name: keys(0),
            tag: 2,
        },
        Op::SetTtl {
            name: keys(0),
            ttl: 0,
        },
        Op::Rename {
            from: keys(0),
            to: 2,
            noreplace: true,
            tag: Some(2),
        },
        Op::Touch {
            name: keys(2),
            when: When::Now,
        },
        Op::SetTtl {
            name: keys(2),
            ttl: 60,
        },
        Op::RemoveXattr {
            name: keys(2),
            tags: false,
        },
        Op::RemoveXattr {
            name: keys(2),
            tags: true,
        },
        Op::Xattrs { name: keys(2) },
        Op::Touch {
            name: keys(2),
            when: When::Past,
        },
        Op::Xattrs { name: keys(2) },
    ]);
}

/// Every refusal of SPEC §2's last row, on an empty store and a full one.
#[test]
fn bad_requests_get_their_errno_and_change_nothing() {
    let all = |n: usize| {
        vec![
            Op::Bad(Bad::LongName(n)),
            Op::Bad(Bad::LongTag(n)),
            Op::Bad(Bad::Malformed(n)),
            Op::Bad(Bad::StaleWrite(n, 0)),
            Op::Bad(Bad::Layout(n)),
            Op::Bad(Bad::UnknownXattr(n)),
            Op::Bad(Bad::Rename(n, 1, 0)),
        ]
    };
    let mut ops = all(0);
    ops.push(Op::Write(write(0, b"live", Some(&[0]))));
    ops.push(Op::Write(write(1, b"stale", Some(&[0]))));
    ops.push(Op::Rm {
        name: keys(1),
        tag: Some(0),
    });
    ops.extend(all(0));
    ops.extend(all(1));
    run(&ops);
}
