//! The seed's hardlink store, reached only through directory descriptors.
//!
//! Invariants this module keeps (SPEC §1):
//! - an entry is live iff its mtime (the expiry) is after now and its link
//!   count is its number of tags + 1 (the record's tag count; an entry with
//!   no record, written by another program, is judged by its expiry);
//! - a version's content never changes once committed: a commit writes a
//!   draft in `tmp/`, links it into each tag directory, sets its mtime and
//!   renames it onto the key file, so a reader sees one whole version;
//! - a re-commit (retag) never re-creates a tag directory that the version it
//!   replaces carried, and is undone if that version stopped being live
//!   while it was linked, so it cannot bring an invalidated entry back;
//! - whatever the mount needs beyond the seed's layout (name, tags, TTL) is
//!   the record: one user xattr on the entry's inode.

pub mod cleanup;
pub mod error;
pub mod evict;
pub mod format;
pub mod layout;
pub mod ledger;
mod sys;
pub mod walk;

use std::ffi::CStr;
use std::fs::File;
use std::io::Write as _;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use cleanup::{CleanupReport, StoreStats};
use error::Context;
pub use error::{Error, Result};
use layout::{NEVER, lossy};
pub use sys::os;

/// The user xattr that holds an entry's record.
const RECORD: &CStr = c"user.tagcache";
/// On a draft: the bytes it has reserved in the ledger (for a re-count).
const RESERVED: &CStr = c"user.tagcache.reserved";
/// The size ledger, beside data/ and tmp/.
const LEDGER: &str = "ledger";

/// A point in time on the store host's CLOCK_REALTIME.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    pub sec: i64,
    pub nsec: i64,
}

impl Time {
    pub const NEVER: Time = Time {
        sec: NEVER,
        nsec: 0,
    };

    pub fn now() -> Time {
        let (sec, nsec) = sys::now();
        Time { sec, nsec }
    }

    pub fn at(sec: i64) -> Time {
        Time { sec, nsec: 0 }
    }

    /// The expiry of an entry given `ttl` seconds now (0 = never).
    pub fn after_ttl(ttl: u64) -> Time {
        if ttl == 0 {
            return Time::NEVER;
        }
        let now = Time::now();
        Time {
            sec: now
                .sec
                .saturating_add(ttl.min(NEVER as u64) as i64)
                .min(NEVER),
            nsec: now.nsec,
        }
    }

    /// The time `ns` nanoseconds after the epoch.
    pub fn from_ns(ns: u64) -> Time {
        Time {
            sec: (ns / 1_000_000_000) as i64,
            nsec: (ns % 1_000_000_000) as i64,
        }
    }

    pub fn is_never(&self) -> bool {
        self.sec >= NEVER
    }

    /// Seconds from `earlier` to this time (negative if it is later).
    pub fn secs_since(&self, earlier: Time) -> f64 {
        (self.sec - earlier.sec) as f64 + (self.nsec - earlier.nsec) as f64 / 1e9
    }

    /// Seconds from now until this time (0 if past), as a float.
    pub fn secs_from_now(&self) -> f64 {
        let now = Time::now();
        let d = (self.sec - now.sec) as f64 + (self.nsec - now.nsec) as f64 / 1e9;
        d.max(0.0)
    }

    pub fn to_system(self) -> std::time::SystemTime {
        let d = std::time::Duration::new(
            self.sec.max(0) as u64,
            self.nsec.clamp(0, 999_999_999) as u32,
        );
        std::time::UNIX_EPOCH + d
    }
}

/// What the mount keeps with an entry's inode, beyond the seed's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub name: Vec<u8>,
    pub tags: Vec<Vec<u8>>,
    /// The TTL the entry was given, in seconds (0 = never expires).
    pub ttl: u64,
    /// The version's id, random, set at commit: with the inode number it
    /// names this version and no other, also once the number is reused
    /// (0 in records written before versions had ids).
    pub ver: u64,
    /// The committed length: a version a power loss shortened (or
    /// lengthened) does not match it and is never served.
    pub len: Option<u64>,
    /// Where the content starts in the file: 0, or past the tags line of
    /// the tagcache library's format.
    pub head: u64,
}

/// The first byte of a record in the compact form (a record in the text
/// form of earlier versions starts with a letter); `RECORD_V2` has the
/// content's start at the end.
const RECORD_V1: u8 = 1;
const RECORD_V2: u8 = 2;

impl Record {
    /// The compact form: small enough (about 25 bytes for a short name and
    /// a tag) to stay inside an ext4 inode rather than cost a block of its
    /// own. `1, ver (8 bytes LE), len + 1, ttl, name, tags` (numbers and
    /// lengths as LEB128).
    fn encode(&self) -> Vec<u8> {
        fn num(out: &mut Vec<u8>, mut n: u64) {
            loop {
                let byte = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(byte);
                    return;
                }
                out.push(byte | 0x80);
            }
        }
        let mut out = Vec::with_capacity(16 + self.name.len() + 4 * self.tags.len());
        out.push(if self.head > 0 { RECORD_V2 } else { RECORD_V1 });
        out.extend_from_slice(&self.ver.to_le_bytes());
        num(&mut out, self.len.map_or(0, |l| l + 1));
        num(&mut out, self.ttl);
        num(&mut out, self.name.len() as u64);
        out.extend_from_slice(&self.name);
        num(&mut out, self.tags.len() as u64);
        for tag in &self.tags {
            num(&mut out, tag.len() as u64);
            out.extend_from_slice(tag);
        }
        if self.head > 0 {
            num(&mut out, self.head);
        }
        out
    }

    fn decode(value: &[u8]) -> Option<Record> {
        match value.first() {
            Some(&RECORD_V1) => Record::decode_v1(&value[1..], false),
            Some(&RECORD_V2) => Record::decode_v1(&value[1..], true),
            _ => Record::decode_text(value),
        }
    }

    fn decode_v1(mut rest: &[u8], with_head: bool) -> Option<Record> {
        fn num(rest: &mut &[u8]) -> Option<u64> {
            let mut n = 0u64;
            for shift in (0..64).step_by(7) {
                let (&byte, tail) = rest.split_first()?;
                *rest = tail;
                n |= ((byte & 0x7f) as u64) << shift;
                if byte & 0x80 == 0 {
                    return Some(n);
                }
            }
            None
        }
        fn bytes(rest: &mut &[u8]) -> Option<Vec<u8>> {
            let len = num(rest)? as usize;
            (rest.len() >= len).then(|| {
                let (b, tail) = rest.split_at(len);
                *rest = tail;
                b.to_vec()
            })
        }
        let ver = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
        rest = &rest[8..];
        let len = num(&mut rest)?.checked_sub(1);
        let ttl = num(&mut rest)?;
        let name = bytes(&mut rest)?;
        let count = num(&mut rest)?;
        let tags = (0..count)
            .map(|_| bytes(&mut rest))
            .collect::<Option<Vec<_>>>()?;
        let head = if with_head { num(&mut rest)? } else { 0 };
        rest.is_empty().then_some(Record {
            name,
            tags,
            ttl,
            ver,
            len,
            head,
        })
    }

    /// The text form earlier versions wrote (`ttl=…\nname=<hex>\n…`).
    fn decode_text(value: &[u8]) -> Option<Record> {
        let text = std::str::from_utf8(value).ok()?;
        let (mut ttl, mut name, mut tags, mut ver, mut len) = (None, None, None, 0, None);
        for line in text.lines() {
            let (k, v) = line.split_once('=')?;
            match k {
                "ver" => ver = u64::from_str_radix(v, 16).ok()?,
                "len" => len = Some(v.parse().ok()?),
                "ttl" => ttl = v.parse().ok(),
                "name" => name = hex::decode(v).ok(),
                "tags" if v.is_empty() => tags = Some(Vec::new()),
                "tags" => tags = v.split(',').map(|t| hex::decode(t).ok()).collect(),
                _ => {}
            }
        }
        Some(Record {
            name: name?,
            tags: tags?,
            ttl: ttl?,
            ver,
            len,
            head: 0,
        })
    }
}

/// How long another program's file in `tmp/` stays before cleanup removes
/// it (the tagcache library's drafts, abandoned by a crash).
pub const DEFAULT_FOREIGN_TMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

/// The namespace `STORE/format` names, if the store is shared with the
/// tagcache library.
fn read_marker(root: BorrowedFd) -> std::io::Result<Option<layout::Namespace>> {
    use std::io::Read;
    let fd = match sys::open_beneath(root, format::MARKER, libc::O_RDONLY, 0) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    File::from(fd).take(256).read_to_string(&mut text)?;
    format::parse_marker(&text).map(Some).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not a format this version knows: {:?}", text.trim()),
        )
    })
}

/// The ledger at `STORE/ledger`, if a bounded mount made one.
fn open_ledger(root: BorrowedFd) -> std::io::Result<Option<Arc<ledger::Ledger>>> {
    match sys::open_beneath(root, LEDGER, libc::O_RDWR, 0) {
        Ok(fd) => Ok(Some(Arc::new(ledger::Ledger::new(fd.into())))),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A new version id: random, never 0.
fn new_ver() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: buf is valid for 8 bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    let random = u64::from_ne_bytes(buf);
    if n == 8 && random != 0 {
        return random;
    }
    // No getrandom: unique enough from the clock and the process.
    let t = Time::now();
    (t.sec as u64).rotate_left(32) ^ t.nsec as u64 ^ (std::process::id() as u64) << 40 | 1
}

/// An inode in the store as last looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub ino: u64,
    /// With `ino`, names this version: the record's id, or for a file with
    /// no id (another program's) its birth time where the file system has
    /// one, else 0.
    pub ver: u64,
    /// A regular file (anything else at a key path is foreign and ignored).
    pub regular: bool,
    pub size: u64,
    pub blocks: u64,
    pub nlink: u64,
    pub expiry: Time,
    /// The last use a mount recorded (`Store::note_use`).
    pub atime: Time,
    /// When this version was made: its birth time, else its ctime.
    pub born: Time,
    pub record: Option<Record>,
    /// Where the content starts in the file (`size` counts from there):
    /// past the tags line in the tagcache library's format, else 0.
    pub head: u64,
    /// The tags the library's first line names (an entry without a record
    /// in that format).
    pub line_tags: Option<Vec<Vec<u8>>>,
    /// Without a record: the link count the entry must have to be valid,
    /// from its tags line or from one of its tag links' names.
    pub want_links: Option<u64>,
}

impl Meta {
    fn from_stat(st: &libc::stat, record: Option<Record>, ver: u64) -> Meta {
        Meta {
            ino: st.st_ino,
            ver,
            atime: Time {
                sec: st.st_atime,
                nsec: st.st_atime_nsec,
            },
            born: Time {
                sec: st.st_ctime,
                nsec: st.st_ctime_nsec,
            },
            regular: st.st_mode & libc::S_IFMT == libc::S_IFREG,
            size: st.st_size as u64,
            blocks: st.st_blocks as u64,
            nlink: st.st_nlink,
            expiry: Time {
                sec: st.st_mtime,
                nsec: st.st_mtime_nsec,
            },
            record,
            head: 0,
            line_tags: None,
            want_links: None,
        }
    }

    /// The content starts at `head`: `size` is what follows it.
    fn with_head(mut self, head: u64, st_size: u64) -> Meta {
        self.head = head;
        self.size = st_size.saturating_sub(head);
        self
    }

    /// The metadata of a file with this stat, record and birth time: its
    /// identity is the record's version id, else the birth time.
    fn with_record(st: &libc::stat, record: Option<Record>, btime: Option<u64>) -> Meta {
        let ver = match &record {
            Some(r) if r.ver != 0 => r.ver,
            _ => btime.unwrap_or(0),
        };
        let mut meta = Meta::from_stat(st, record, ver);
        if let Some(b) = btime {
            meta.born = Time::from_ns(b);
        }
        meta
    }

    pub fn is_live_at(&self, now: Time) -> bool {
        self.expiry > now && self.links_ok() && self.whole()
    }

    pub fn is_live(&self) -> bool {
        self.is_live_at(Time::now())
    }

    /// The link count matches the tag count: the record's, else the tags
    /// line's or a tag link's name's (always true with none of them).
    pub fn links_ok(&self) -> bool {
        match &self.record {
            Some(r) => self.nlink == r.tags.len() as u64 + 1,
            None => self.want_links.is_none_or(|want| self.nlink == want),
        }
    }

    /// A version whose size is not its committed length: a power loss cut
    /// it short (or a program wrote into the store behind our back).
    pub fn torn(&self) -> bool {
        !self.whole()
    }

    /// The size is the committed length (true where none was recorded).
    pub fn whole(&self) -> bool {
        self.record
            .as_ref()
            .and_then(|r| r.len)
            .is_none_or(|len| len == self.size)
    }

    pub fn tags(&self) -> &[Vec<u8>] {
        match (&self.record, &self.line_tags) {
            (Some(r), _) => &r.tags,
            (None, Some(tags)) => tags,
            (None, None) => &[],
        }
    }

    pub fn ttl(&self) -> u64 {
        self.record.as_ref().map_or(0, |r| r.ttl)
    }
}

/// An open version: the file (which pins its inode number) and its metadata.
#[derive(Debug)]
pub struct Version {
    pub file: File,
    pub meta: Meta,
}

impl Version {
    /// What a reader keeps: the file and where its content starts.
    pub fn content(self) -> Content {
        Content {
            head: self.meta.head,
            file: self.file,
        }
    }
}

/// A version's content, open for reading.
#[derive(Debug)]
pub struct Content {
    pub file: File,
    /// Where the content starts in the file.
    pub head: u64,
}

impl Content {
    /// Up to `size` bytes of the content from `offset`.
    pub fn read_at(&self, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
        read_at(&self.file, self.head + offset, size)
    }
}

/// What a commit published: the new version, the tag directories it is
/// linked in (held, see `hold_tag_dirs`), and the version it replaced at
/// the key path, if any (exactly that one, also when it was a concurrent
/// commit's).
#[derive(Debug)]
pub struct Published {
    pub version: Version,
    pub held: Vec<TagDir>,
    pub replaced: Option<Version>,
    /// Tags whose directory this commit made (new names in `tags/`).
    pub created: Vec<Vec<u8>>,
}

/// A version being written: a file in `tmp/`, flocked while it lives so that
/// cleanup leaves it alone, removed on drop unless committed.
#[derive(Debug)]
pub struct Draft {
    file: File,
    tmp: Arc<OwnedFd>,
    name: String,
    committed: bool,
    /// The id the version gets when this draft is committed.
    ver: u64,
    /// Its inode number.
    ino: u64,
    /// Bytes reserved for it in the ledger (given back when it goes).
    reserved: u64,
    ledger: Option<Arc<ledger::Ledger>>,
    /// Where its content starts in the file (room for the library's tags
    /// line, written at commit).
    head: u64,
}

impl Draft {
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Writes `data` at `offset` of the content.
    pub fn write_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        self.file.write_all_at(data, self.head + offset)
    }

    /// Up to `size` bytes of the content from `offset`.
    pub fn read_at(&self, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
        read_at(&self.file, self.head + offset, size)
    }

    /// Truncates (or extends) the content to `len` bytes.
    pub fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.file.set_len(self.head + len)
    }

    /// Where the content starts in the file.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The id this draft's version has once committed.
    pub fn ver(&self) -> u64 {
        self.ver
    }
}

impl Drop for Draft {
    fn drop(&mut self) {
        if !self.committed {
            let _ = sys::unlinkat(self.tmp.as_fd(), &self.name, false);
            // Its reservation covered its blocks: both go.
            if let Some(ledger) = &self.ledger
                && self.reserved > 0
            {
                let _ = ledger.adjust(0, self.reserved);
            }
        }
    }
}

/// The single-flight lock of one entry, held until dropped.
#[derive(Debug)]
pub struct EntryLock {
    file: File,
    tmp: Arc<OwnedFd>,
    name: String,
    /// In the tagcache library's format: the entry's current file, flocked
    /// as the library does while it regenerates it.
    #[allow(dead_code)]
    current: Option<File>,
}

impl Drop for EntryLock {
    fn drop(&mut self) {
        // Unlinking while still holding the lock is safe: a taker checks that
        // the path still names the inode it locked, and retries otherwise.
        let _ = sys::unlinkat(self.tmp.as_fd(), &self.name, false);
        let _ = &self.file;
    }
}

/// What a commit writes.
#[derive(Debug)]
pub struct Commit<'a> {
    pub name: &'a [u8],
    pub tags: &'a [Vec<u8>],
    pub expiry: Time,
    pub ttl: u64,
    /// Tags whose directories must already exist: tags the entry carried
    /// before. Their directory being gone means an `rmdir` invalidated the
    /// entry, and re-creating it would bring the entry back.
    pub carried: &'a [Vec<u8>],
    /// For a re-commit: the version this one replaces. The commit is undone
    /// if that version is no longer live once the new one is linked.
    pub replaces: Option<&'a Version>,
    /// Tags whose link goes into a directory held open since the entry was
    /// read (see `hold_tag_dirs`), never into whatever is at the tag's path
    /// now; a directory removed since then refuses the link (`Invalidated`).
    pub held: &'a [TagDir],
}

impl<'a> Commit<'a> {
    /// A first commit of `name`: nothing carried, held or replaced.
    pub fn fresh(name: &'a [u8], tags: &'a [Vec<u8>], expiry: Time, ttl: u64) -> Commit<'a> {
        Commit {
            name,
            tags,
            expiry,
            ttl,
            carried: &[],
            replaces: None,
            held: &[],
        }
    }
}

/// A tag directory held open: the very directory a version was linked in.
#[derive(Debug)]
pub struct TagDir {
    pub tag: Vec<u8>,
    dir: OwnedFd,
}

/// A store directory, opened.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    data: OwnedFd,
    tmp: Arc<OwnedFd>,
    counter: AtomicU64,
    /// Every commit and invalidation is on disk when it returns.
    durable: bool,
    /// The size ledger, once a bounded mount made it.
    ledger: Option<Arc<ledger::Ledger>>,
    /// `--max-size`, `--min-free`.
    bound: Option<evict::Bound>,
    evictor: evict::Evictor,
    /// The prefixes of file names in `data/`.
    ns: layout::Namespace,
    /// How entries' files hold their content (`STORE/format`).
    format: format::Format,
    seen_links: format::SeenLinks,
    names: format::Names,
    /// How old (unchanged) a file of another program in `tmp/` must be
    /// for cleanup to remove it.
    foreign_tmp_age: std::time::Duration,
}

impl Store {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let shown = || path.display().to_string();
        std::fs::create_dir_all(path).at(shown)?;
        let path = &std::fs::canonicalize(path).at(shown)?;
        let root: OwnedFd = File::open(path).at(shown)?.into();
        let data = sys::mkdir_all(root.as_fd(), "data").at(|| format!("{}/data", shown()))?;
        let tmp = sys::mkdir_all(root.as_fd(), "tmp").at(|| format!("{}/tmp", shown()))?;
        let store = Store {
            path: path.to_path_buf(),
            data,
            tmp: Arc::new(tmp),
            counter: AtomicU64::new(0),
            durable: false,
            ledger: open_ledger(root.as_fd()).at(|| format!("{}/{LEDGER}", shown()))?,
            bound: None,
            evictor: evict::Evictor::default(),
            ns: layout::OURS,
            format: format::Format::Native,
            seen_links: format::SeenLinks::default(),
            names: format::Names::default(),
            foreign_tmp_age: DEFAULT_FOREIGN_TMP_AGE,
        };
        let store =
            match read_marker(root.as_fd()).at(|| format!("{}/{}", shown(), format::MARKER))? {
                Some(ns) => Store {
                    ns,
                    format: format::Format::Tagcache,
                    ..store
                },
                None => store,
            };
        let probe = store.new_draft()?;
        match sys::fsetxattr(probe.file.as_fd(), RECORD, b"probe") {
            Ok(()) => Ok(store),
            Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Err(Error::NoXattrs(shown())),
            Err(e) => Err(e).at(|| store.show_tmp(&probe.name)),
        }
    }

    /// The store in durable mode: a commit returns once its version, its
    /// name and its tag links are on disk (fsync of the draft, then of the
    /// directories it was linked and renamed into); an invalidation once
    /// it is. Off by default: a cache may lose what the last seconds wrote.
    pub fn durable(mut self, on: bool) -> Store {
        self.durable = on;
        self
    }

    /// Cleanup removes another program's files in `tmp/` once nothing
    /// changed them for `age` (and nobody holds their flock).
    pub fn foreign_tmp_age(mut self, age: std::time::Duration) -> Store {
        self.foreign_tmp_age = age;
        self
    }

    pub fn is_durable(&self) -> bool {
        self.durable
    }

    /// The store with a bound: its ledger made (counted from the store)
    /// if it has none yet.
    pub fn bounded(mut self, bound: evict::Bound) -> Result<Store> {
        if !bound.is_set() {
            return Ok(self);
        }
        if self.ledger.is_none() {
            let root: OwnedFd = File::open(&self.path)
                .at(|| self.path.display().to_string())?
                .into();
            let file = sys::open_beneath(root.as_fd(), LEDGER, libc::O_RDWR | libc::O_CREAT, 0o644)
                .at(|| self.show_ledger())?;
            self.ledger = Some(Arc::new(ledger::Ledger::new(file.into())));
            self.bound = Some(bound);
            self.recount_size()?;
        }
        self.bound = Some(bound);
        Ok(self)
    }

    fn show_ledger(&self) -> String {
        format!("{}/{LEDGER}", self.path.display())
    }

    /// Unlinks `name` in `dir`; the bytes freed when it was the file's last
    /// name (kept in the ledger), else 0.
    pub(crate) fn unlink_counted(&self, dir: BorrowedFd, name: &str) -> std::io::Result<u64> {
        let st = match &self.ledger {
            Some(_) => sys::lstatat(dir, name).ok(),
            None => None,
        };
        sys::unlinkat(dir, name, false)?;
        let freed = st
            .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink == 1)
            .map_or(0, |st| st.st_blocks as u64 * 512);
        if freed > 0
            && let Some(ledger) = &self.ledger
        {
            let _ = ledger.adjust(0, freed);
        }
        Ok(freed)
    }

    /// Counts what the store's files occupy (each inode once) and puts it
    /// in the ledger, with what drafts still being written reserved beyond
    /// their size and what was added meanwhile: never less than the truth.
    pub fn recount_size(&self) -> Result<u64> {
        let Some(ledger) = &self.ledger else {
            return Ok(0);
        };
        let before = ledger.figures().at(|| self.show_ledger())?;
        let counted = cleanup::disk_usage(self)?;
        let after = ledger
            .update(|f| {
                Some(ledger::Figures {
                    used: counted + (f.added - before.added),
                    added: f.added,
                })
            })
            .at(|| self.show_ledger())?
            .expect("update writes");
        Ok(after.used)
    }

    /// In durable mode, flushes `file` (a draft, a version) to disk.
    pub fn sync_file(&self, file: &File) -> Result<()> {
        if self.durable {
            sys::fsync(file.as_fd()).at(|| "syncing a version".to_string())?;
        }
        Ok(())
    }

    /// Opens a store that must exist already (the command-line tools never
    /// create one by mistake).
    pub fn open_existing(path: &Path) -> Result<Store> {
        if !path.join("data").is_dir() {
            return Err(Error::Io {
                path: path.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "not a tagcachefs store (no data/ directory)",
                ),
            });
        }
        Store::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn namespace(&self) -> layout::Namespace {
        self.ns
    }

    /// The store shared with the tagcache library, its entries in
    /// namespace `ns`: says so in `STORE/format` for every later process.
    /// A store marked with another namespace is refused.
    pub fn shared_with_library(self, ns: layout::Namespace) -> Result<Store> {
        let marked = self.format == format::Format::Tagcache;
        let store = self.reading_library_format(ns)?;
        if !marked {
            let shown = || format!("{}/{}", store.path.display(), format::MARKER);
            let root: OwnedFd = File::open(&store.path).at(shown)?.into();
            let fd = sys::open_beneath(
                root.as_fd(),
                format::MARKER,
                libc::O_WRONLY | libc::O_CREAT,
                0o644,
            )
            .at(shown)?;
            File::from(fd)
                .write_all(format::marker_text(ns).as_bytes())
                .at(shown)?;
        }
        Ok(store)
    }

    /// The store read in the tagcache library's format, namespace `ns`
    /// (without marking it). A store marked with another namespace is
    /// refused.
    pub fn reading_library_format(mut self, ns: layout::Namespace) -> Result<Store> {
        if self.format == format::Format::Tagcache && self.ns != ns {
            return Err(Error::Io {
                path: format!("{}/{}", self.path.display(), format::MARKER),
                source: std::io::Error::other(format!(
                    "the store is shared with the tagcache library in namespace {}, not {}",
                    self.ns.label(),
                    ns.label()
                )),
            });
        }
        self.ns = ns;
        self.format = format::Format::Tagcache;
        Ok(self)
    }

    fn show(&self, rel: &str) -> String {
        format!("{}/data/{rel}", self.path.display())
    }

    fn show_tmp(&self, rel: &str) -> String {
        format!("{}/tmp/{rel}", self.path.display())
    }

    fn unique(&self, prefix: &str) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let t = Time::now();
        format!(
            "{prefix}.{}.{}.{}{:09}",
            std::process::id(),
            n,
            t.sec,
            t.nsec
        )
    }

    fn meta_of(&self, file: BorrowedFd, shown: impl Fn() -> String) -> Result<Meta> {
        let (st, btime) = sys::fstat_btime(file).at(&shown)?;
        let record = sys::fgetxattr(file, RECORD)
            .at(&shown)?
            .and_then(|v| Record::decode(&v));
        let meta = Meta::with_record(&st, record, btime);
        Ok(self.shape(meta, format::Source::Fd(file)))
    }

    /// Re-reads the metadata of an open version.
    pub fn refresh(&self, file: &File) -> Result<Meta> {
        self.meta_of(file.as_fd(), || "open version".to_string())
    }

    /// Brings `meta` of the version open as `file` up to date with one
    /// fstat: its size, link count and expiry may change, its record (the
    /// tags a version needs, and so its liveness rule) does not, since
    /// retagging commits a new version.
    pub fn restat(&self, file: &File, meta: &mut Meta) -> Result<()> {
        let st = sys::fstat(file.as_fd()).at(|| "open version".to_string())?;
        let fresh = Meta::from_stat(&st, meta.record.take(), meta.ver);
        *meta = Meta {
            line_tags: meta.line_tags.take(),
            want_links: meta.want_links,
            ..fresh.with_head(meta.head, st.st_size as u64)
        };
        Ok(())
    }

    /// Opens whatever version is at `name`'s key path, live or not.
    pub fn open_version(&self, name: &[u8]) -> Result<Option<Version>> {
        layout::check_name(name)?;
        let key = self.ns.key_path(name);
        let rel = key.path();
        // A commit renaming a new version over the key path between the
        // open and the fstat leaves the file opened linked nowhere (its
        // link count 0): the key path has the new version, open it again.
        let mut tries = 0;
        loop {
            let file = match sys::open_file(self.data.as_fd(), &rel) {
                Ok(f) => f,
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(e).at(|| self.show(&rel)),
            };
            let meta = self.meta_of(file.as_fd(), || self.show(&rel))?;
            tries += 1;
            if meta.nlink == 0 && tries < 8 {
                continue;
            }
            return Ok(meta.regular.then_some(Version { file, meta }));
        }
    }

    /// Opens version (`ino`, `ver`) of `name` wherever it still is: at the
    /// key path, or (replaced since) through its link in one of `tags`'
    /// directories. `None` when it is in the store no more.
    pub fn find_version(
        &self,
        name: &[u8],
        tags: &[Vec<u8>],
        ino: u64,
        ver: u64,
    ) -> Result<Option<Version>> {
        let is = |v: &Version| v.meta.ino == ino && v.meta.ver == ver;
        if let Some(v) = self.open_version(name)?.filter(is) {
            return Ok(Some(v));
        }
        let (ss, link) = layout::tag_link(tags.len() as u64 + 1, ino);
        for tag in tags {
            let rel = format!("{}/{ss}/{link}", self.ns.tag_path(tag).path());
            let file = match sys::open_file(self.data.as_fd(), &rel) {
                Ok(f) => f,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e).at(|| self.show(&rel)),
            };
            let meta = self.meta_of(file.as_fd(), || self.show(&rel))?;
            let v = Version { file, meta };
            if v.meta.regular && is(&v) {
                return Ok(Some(v));
            }
        }
        Ok(None)
    }

    /// Opens the live version of `name`, if there is one.
    pub fn open_live(&self, name: &[u8]) -> Result<Option<Version>> {
        Ok(self.open_version(name)?.filter(|v| v.meta.is_live()))
    }

    /// Starts a new version in `tmp/`.
    pub fn new_draft(&self) -> Result<Draft> {
        let name = self.unique("w");
        let fd = sys::open_beneath(
            self.tmp.as_fd(),
            &name,
            libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            0o644,
        )
        .at(|| self.show_tmp(&name))?;
        // Until it is locked, the draft looks abandoned to a cleanup, which
        // may lock and remove it first: then start over with a new one.
        let ours = sys::try_flock(fd.as_fd(), true).at(|| self.show_tmp(&name))?
            && sys::lstatat(self.tmp.as_fd(), &name)
                .is_ok_and(|st| sys::fstat(fd.as_fd()).is_ok_and(|me| me.st_ino == st.st_ino));
        if !ours {
            return self.new_draft();
        }
        let ino = sys::fstat(fd.as_fd()).at(|| self.show_tmp(&name))?.st_ino;
        Ok(Draft {
            file: fd.into(),
            tmp: self.tmp.clone(),
            name,
            committed: false,
            ver: new_ver(),
            ino,
            reserved: 0,
            ledger: self.ledger.clone(),
            head: self.format.draft_head(),
        })
    }

    /// What a draft is, for a node made from it: its content's size, no
    /// record yet.
    pub fn draft_meta(&self, draft: &Draft) -> Result<Meta> {
        let (st, btime) = sys::fstat_btime(draft.file.as_fd()).at(|| self.show_tmp(&draft.name))?;
        Ok(Meta::with_record(&st, None, btime).with_head(draft.head, st.st_size as u64))
    }

    /// Starts a new version as a copy of `base`'s content (a reflink where
    /// possible).
    pub fn draft_from(&self, base: &Version) -> Result<Draft> {
        let mut draft = self.new_draft()?;
        let name = draft.name.clone();
        let shown = || self.show_tmp(&name);
        let st_size = sys::fstat(base.file.as_fd()).at(shown)?.st_size as u64;
        let len = st_size.saturating_sub(base.meta.head);
        self.reserve(&mut draft, len)?;
        if base.meta.head == 0 && draft.head == 0 {
            sys::copy_file(&base.file, &draft.file).at(shown)?;
        } else {
            sys::copy_range(&base.file, base.meta.head, &draft.file, draft.head, len).at(shown)?;
        }
        Ok(draft)
    }

    /// Commits `draft` as the new version of `c.name`; returns it, open.
    pub fn commit(&self, draft: Draft, c: &Commit) -> Result<Version> {
        self.publish(draft, c).map(|p| p.version)
    }

    /// The tagcache library's first line, written into the room `draft`
    /// keeps for it; tags too long for that room move the content once.
    fn write_tags_line(&self, draft: &mut Draft, tags: &[Vec<u8>]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if let Some(tag) = tags.iter().find(|t| t.contains(&b':')) {
            return Err(Error::InvalidName(
                lossy(tag),
                "a tag of a store shared with the tagcache library holds no colon",
            ));
        }
        let name = draft.name.clone();
        let shown = || self.show_tmp(&name);
        let st_size = sys::fstat(draft.file.as_fd()).at(shown)?.st_size as u64;
        let len = st_size.saturating_sub(draft.head);
        let line = match format::line_for(tags, draft.head) {
            Some(line) => line,
            None => {
                let line = format::line_for(tags, tags.join(&b":"[..]).len() as u64 + 1)
                    .expect("room for it");
                let head = line.len() as u64;
                // Room first: the content ends further on.
                let old = std::mem::replace(&mut draft.head, head);
                self.reserve(draft, len)?;
                format::shift_forward(&draft.file, old, head, len).at(shown)?;
                line
            }
        };
        // A draft nothing was written to is shorter than its room.
        if st_size < draft.head + len {
            draft.file.set_len(draft.head + len).at(shown)?;
        }
        draft.file.write_all_at(&line, 0).at(shown)?;
        Ok(())
    }

    /// Commits `draft` as the new version of `c.name`: links it into each
    /// tag directory, sets its expiry and puts it at the key path. Nothing
    /// that can fail runs after it is published.
    pub fn publish(&self, mut draft: Draft, c: &Commit) -> Result<Published> {
        layout::check_name(c.name)?;
        for tag in c.tags {
            layout::check_tag(tag)?;
        }
        if self.format == format::Format::Tagcache {
            self.write_tags_line(&mut draft, c.tags)?;
        }
        let shown_draft = || self.show_tmp(&draft.name);
        let st = sys::fstat(draft.file.as_fd()).at(shown_draft)?;
        let ino = st.st_ino;
        let record = Record {
            name: c.name.to_vec(),
            tags: c.tags.to_vec(),
            ttl: c.ttl,
            ver: draft.ver,
            len: Some((st.st_size as u64).saturating_sub(draft.head)),
            head: draft.head,
        };
        sys::fsetxattr(draft.file.as_fd(), RECORD, &record.encode()).at(shown_draft)?;
        if self.durable {
            sys::fsync(draft.file.as_fd()).at(shown_draft)?;
        }
        let nlink = c.tags.len() as u64 + 1;
        let (ss, link) = layout::tag_link(nlink, ino);
        let carried = c.carried;

        let mut linked: Vec<(TagDir, OwnedFd)> = Vec::new();
        let mut created = Vec::new();
        let undo = |linked: &[(TagDir, OwnedFd)]| {
            for (_, ss_dir) in linked {
                let _ = sys::unlinkat(ss_dir.as_fd(), &link, false);
            }
        };
        for tag in c.tags {
            let carried = carried.contains(tag);
            let held = c.held.iter().find(|h| h.tag == *tag);
            let result = match held {
                Some(held) => self.link_into_held(&draft, held, &ss, &link),
                None => self
                    .link_into_tag(&draft, tag, &ss, &link, carried, c.replaces)
                    .map(|(held, ss_dir, made)| {
                        if made {
                            created.push(tag.clone());
                        }
                        (held, ss_dir)
                    }),
            };
            match result {
                Ok(dirs) => linked.push(dirs),
                Err(e) => {
                    undo(&linked);
                    return Err(e);
                }
            }
        }
        if let Some(old) = c.replaces {
            let still_live = self.refresh(&old.file).map(|m| m.is_live());
            if !matches!(still_live, Ok(true)) {
                undo(&linked);
                return Err(still_live
                    .err()
                    .unwrap_or(Error::Invalidated(lossy(c.name))));
            }
        }
        let key = self.ns.key_path(c.name);
        let file = draft.file.try_clone().at(shown_draft);
        let result = file.and_then(|file| {
            sys::set_mtime(draft.file.as_fd(), c.expiry.sec, c.expiry.nsec).at(shown_draft)?;
            let dir = sys::mkdir_all(self.data.as_fd(), &key.dir).at(|| self.show(&key.dir))?;
            let replaced = self.put_at_key(&draft.name, dir.as_fd(), &key)?;
            if self.durable {
                // The mtime, the rename, the links, and any directory made.
                sys::fsync(draft.file.as_fd()).at(shown_draft)?;
                sys::fsync(dir.as_fd()).at(|| self.show(&key.dir))?;
                for (held, ss_dir) in &linked {
                    sys::fsync(ss_dir.as_fd()).at(|| lossy(&held.tag))?;
                    sys::fsync(held.dir.as_fd()).at(|| lossy(&held.tag))?;
                }
                sys::fsync(self.data.as_fd()).at(|| self.show(""))?;
            }
            Ok((file, replaced))
        });
        let (file, replaced) = match result {
            Ok(done) => done,
            Err(e) => {
                undo(&linked);
                return Err(e);
            }
        };
        draft.committed = true;
        // The draft's lock kept cleanup off its half-linked state; a committed
        // version is cleanup's to judge.
        let _ = nix_unlock(draft.file.as_fd());
        let (st, btime) = sys::fstat_btime(file.as_fd())
            .map(|(st, b)| (Some(st), b))
            .unwrap_or((None, None));
        if let Some(ledger) = &self.ledger {
            // Its reservation becomes what it occupies.
            let used = st.map_or(draft.reserved, |st| ledger.occupied(&st));
            let _ = ledger.adjust(
                used.saturating_sub(draft.reserved),
                draft.reserved.saturating_sub(used),
            );
            let _ = sys::fremovexattr(draft.file.as_fd(), RESERVED);
        }
        let now = Time::now();
        let meta = Meta {
            ino,
            ver: draft.ver,
            atime: now,
            born: btime.map_or(now, Time::from_ns),
            regular: true,
            size: st.map_or(0, |st| (st.st_size as u64).saturating_sub(draft.head)),
            blocks: st.map_or(0, |st| st.st_blocks as u64),
            nlink: st.map_or(nlink, |st| st.st_nlink),
            expiry: c.expiry,
            record: Some(record),
            head: draft.head,
            line_tags: None,
            want_links: None,
        };
        Ok(Published {
            version: Version { file, meta },
            held: linked.into_iter().map(|(dir, _)| dir).collect(),
            replaced,
            created,
        })
    }

    /// Moves draft `tmp/<draft>` onto the key path. The version it replaces
    /// is swapped out into the draft's place first, so that exactly that
    /// version's metadata is known (a concurrent commit's tags are
    /// invalidated too), and then removed from there. A file system without
    /// `renameat2` flags (GlusterFS) gets a look, then a plain rename.
    fn put_at_key(
        &self,
        draft: &str,
        dir: BorrowedFd,
        key: &layout::Sharded,
    ) -> Result<Option<Version>> {
        let shown = || self.show(&key.path());
        let tmp = self.tmp.as_fd();
        let version_at = |dir: BorrowedFd, name: &str| {
            let file = sys::open_file(dir, name).ok()?;
            let meta = self.meta_of(file.as_fd(), shown).ok()?;
            meta.regular.then_some(Version { file, meta })
        };
        let unsupported = |e: &std::io::Error| e.raw_os_error() == Some(libc::EINVAL);
        loop {
            let swapped = sys::renameat(tmp, draft, dir, &key.file, libc::RENAME_EXCHANGE);
            match swapped {
                Ok(()) => {
                    let replaced = version_at(tmp, draft);
                    let _ = self.unlink_counted(tmp, draft);
                    return Ok(replaced);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    match sys::renameat(tmp, draft, dir, &key.file, libc::RENAME_NOREPLACE) {
                        Ok(()) => return Ok(None),
                        // A commit got there first: swap with it.
                        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
                        Err(e) if unsupported(&e) => break,
                        Err(e) => return Err(e).at(shown),
                    }
                }
                Err(e) if unsupported(&e) => break,
                Err(e) => return Err(e).at(shown),
            }
        }
        let replaced = version_at(dir, &key.file);
        sys::renameat(tmp, draft, dir, &key.file, 0).at(shown)?;
        if let (Some(old), Some(ledger)) = (&replaced, &self.ledger)
            && old.meta.nlink == 1
        {
            let _ = ledger.adjust(0, old.meta.blocks * 512);
        }
        Ok(replaced)
    }

    /// Links the draft into `tag`'s directory; returns that directory, its
    /// `SS` directory, and whether this made the tag's directory.
    fn link_into_tag(
        &self,
        draft: &Draft,
        tag: &[u8],
        ss: &str,
        link: &str,
        carried: bool,
        replaces: Option<&Version>,
    ) -> Result<(TagDir, OwnedFd, bool)> {
        let tag_rel = self.ns.tag_path(tag).path();
        let shown = || self.show(&format!("{tag_rel}/{ss}/{link}"));
        // A removed directory (ENOENT on link) means an rmdir won the race:
        // a fresh commit starts a new tag directory, a re-commit gives up.
        for _ in 0..8 {
            let (tag_dir, made) = if carried {
                match sys::open_dir(self.data.as_fd(), &tag_rel) {
                    Err(e) if is_absent(&e) => return Err(Error::Invalidated(lossy(tag))),
                    other => (other.at(shown)?, false),
                }
            } else {
                // A cleanup may remove the directory as empty right after
                // it was made.
                match sys::mkdir_all_new(self.data.as_fd(), &tag_rel) {
                    Err(e) if is_absent(&e) => continue,
                    other => other.at(shown)?,
                }
            };
            // The directory at the tag's path may be a new one, started by a
            // fresh commit after an `invalidate_tag` moved out the one the
            // replaced version is linked in: linking there would outlive the
            // removal. The replaced version's own link places it.
            if carried && let Some(old) = replaces {
                let (old_ss, old_link) =
                    layout::tag_link(old.meta.tags().len() as u64 + 1, old.meta.ino);
                let holds_old = sys::open_dir(tag_dir.as_fd(), &old_ss)
                    .and_then(|d| sys::lstatat(d.as_fd(), &old_link))
                    .is_ok_and(|st| st.st_ino == old.meta.ino);
                if !holds_old {
                    return Err(Error::Invalidated(lossy(tag)));
                }
            }
            let ss_dir = match sys::mkdir_all(tag_dir.as_fd(), ss) {
                Err(e) if is_absent(&e) => continue,
                other => other.at(shown)?,
            };
            match link_replacing(draft, ss_dir.as_fd(), link) {
                Ok(()) => {
                    let held = TagDir {
                        tag: tag.to_vec(),
                        dir: tag_dir,
                    };
                    return Ok((held, ss_dir, made));
                }
                Err(e) if is_absent(&e) && carried => {
                    return Err(Error::Invalidated(lossy(tag)));
                }
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e).at(shown),
            }
        }
        Err(Error::Invalidated(lossy(tag)))
    }

    /// Links the draft into a held tag directory; returns that directory
    /// (held again) and its `SS` directory.
    fn link_into_held(
        &self,
        draft: &Draft,
        held: &TagDir,
        ss: &str,
        link: &str,
    ) -> Result<(TagDir, OwnedFd)> {
        let shown = || {
            format!(
                "{}/{ss}/{link} (tag {})",
                self.show(&self.ns.tag_path(&held.tag).path()),
                lossy(&held.tag)
            )
        };
        let gone = || Error::Invalidated(lossy(&held.tag));
        let again = TagDir {
            tag: held.tag.clone(),
            dir: held.dir.try_clone().at(shown)?,
        };
        let ss_dir = match sys::mkdir_all(held.dir.as_fd(), ss) {
            Err(e) if is_absent(&e) => return Err(gone()),
            other => other.at(shown)?,
        };
        match link_replacing(draft, ss_dir.as_fd(), link) {
            Ok(()) => Ok((again, ss_dir)),
            Err(e) if is_absent(&e) => Err(gone()),
            Err(e) => Err(e).at(shown),
        }
    }

    /// Opens the directories of `version`'s tags, each checked to hold the
    /// version's own link, so that a later commit keeping those tags links
    /// where an `invalidate_tag` of them will find it. `None` when a tag
    /// has no such directory any more: the version was invalidated.
    pub fn hold_tag_dirs(&self, version: &Version) -> Result<Option<Vec<TagDir>>> {
        crate::failpoint::check("hold_tag_dirs")?;
        let tags = version.meta.tags();
        let (ss, link) = layout::tag_link(tags.len() as u64 + 1, version.meta.ino);
        let mut held = Vec::with_capacity(tags.len());
        for tag in tags {
            let rel = self.ns.tag_path(tag).path();
            let dir = match sys::open_dir(self.data.as_fd(), &rel) {
                Ok(d) => d,
                Err(e) if is_absent(&e) => return Ok(None),
                Err(e) => return Err(e).at(|| self.show(&rel)),
            };
            let holds = sys::open_dir(dir.as_fd(), &ss)
                .and_then(|d| sys::lstatat(d.as_fd(), &link))
                .is_ok_and(|st| st.st_ino == version.meta.ino);
            if !holds {
                return Ok(None);
            }
            held.push(TagDir {
                tag: tag.clone(),
                dir,
            });
        }
        Ok(Some(held))
    }

    /// Commits a copy of `name`'s live version carrying `tags` instead.
    pub fn retag(&self, name: &[u8], tags: &[Vec<u8>]) -> Result<Version> {
        self.retag_published(name, tags).map(|p| p.version)
    }

    /// `retag`, saying what it published and replaced.
    pub fn retag_published(&self, name: &[u8], tags: &[Vec<u8>]) -> Result<Published> {
        let old = self
            .open_live(name)?
            .ok_or_else(|| Error::NoEntry(lossy(name)))?;
        let draft = self.draft_from(&old)?;
        self.publish(
            draft,
            &Commit {
                name,
                tags,
                expiry: old.meta.expiry,
                ttl: old.meta.ttl(),
                carried: old.meta.tags(),
                replaces: Some(&old),
                held: &[],
            },
        )
    }

    /// Sets an open version's expiry in place (and its TTL, if given).
    pub fn set_expiry(&self, version: &File, expiry: Time, ttl: Option<u64>) -> Result<Meta> {
        let shown = || "entry being re-timed".to_string();
        if let Some(ttl) = ttl {
            let meta = self.refresh(version)?;
            if let Some(mut record) = meta.record {
                record.ttl = ttl;
                sys::fsetxattr(version.as_fd(), RECORD, &record.encode()).at(shown)?;
            }
        }
        sys::set_mtime(version.as_fd(), expiry.sec, expiry.nsec).at(shown)?;
        self.sync_file(version)?;
        self.refresh(version)
    }

    /// Invalidates entry `name` (expiry = now); its content stays for `stale/`.
    pub fn invalidate_entry(&self, name: &[u8]) -> Result<bool> {
        match self.open_live(name)? {
            Some(v) => {
                let now = Time::now();
                sys::set_mtime(v.file.as_fd(), now.sec, now.nsec)
                    .at(|| self.show(&self.ns.key_path(name).path()))?;
                self.sync_file(&v.file)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Renames live entry `from` to `to`, in place: same inode, tags, expiry.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> Result<Version> {
        self.rename_entry(from, to, false)
    }

    /// Renames like `rename`, but never replaces a live version at `to`
    /// (EEXIST), also one committed during the call; a dead one goes.
    pub fn rename_noreplace(&self, from: &[u8], to: &[u8]) -> Result<Version> {
        self.rename_entry(from, to, true)
    }

    fn rename_entry(&self, from: &[u8], to: &[u8], noreplace: bool) -> Result<Version> {
        layout::check_name(to)?;
        let v = self
            .open_live(from)?
            .ok_or_else(|| Error::NoEntry(lossy(from)))?;
        let (src, dst) = (self.ns.key_path(from), self.ns.key_path(to));
        let src_dir = sys::open_dir(self.data.as_fd(), &src.dir).at(|| self.show(&src.dir))?;
        let dst_dir = sys::mkdir_all(self.data.as_fd(), &dst.dir).at(|| self.show(&dst.dir))?;
        let set_name = |record: &Record, name: &[u8]| {
            let mut record = record.clone();
            record.name = name.to_vec();
            sys::fsetxattr(v.file.as_fd(), RECORD, &record.encode()).at(|| self.show(&src.path()))
        };
        if let Some(record) = &v.meta.record {
            set_name(record, to)?;
        }
        let moved = if noreplace {
            self.move_unless_live(&src, src_dir.as_fd(), &dst, dst_dir.as_fd())
        } else {
            sys::renameat(src_dir.as_fd(), &src.file, dst_dir.as_fd(), &dst.file, 0)
        };
        if let Err(e) = moved {
            // Still at `from`: its record names it again.
            if let Some(record) = &v.meta.record {
                let _ = set_name(record, from);
            }
            return Err(e).at(|| self.show(&src.path()));
        }
        let meta = self.refresh(&v.file)?;
        Ok(Version { file: v.file, meta })
    }

    /// Renames `src` to `dst` unless a live version is there (EEXIST); a
    /// dead one at `dst` goes. Without `renameat2` flags (GlusterFS), a look
    /// first, then a plain rename.
    fn move_unless_live(
        &self,
        src: &layout::Sharded,
        src_dir: BorrowedFd,
        dst: &layout::Sharded,
        dst_dir: BorrowedFd,
    ) -> std::io::Result<()> {
        let exists = || std::io::Error::from_raw_os_error(libc::EEXIST);
        for _ in 0..8 {
            match sys::renameat(
                src_dir,
                &src.file,
                dst_dir,
                &dst.file,
                libc::RENAME_NOREPLACE,
            ) {
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    if self.live_at(dst_dir, &dst.file) {
                        return Err(exists());
                    }
                    return sys::renameat(src_dir, &src.file, dst_dir, &dst.file, 0);
                }
                other => return other,
            }
            let dead = sys::open_file(dst_dir, &dst.file)
                .ok()
                .and_then(|f| self.meta_of(f.as_fd(), || self.show(&dst.path())).ok());
            match dead {
                Some(m) if m.is_live() || !m.regular => return Err(exists()),
                Some(m) => {
                    let shown = || self.show(&dst.path());
                    cleanup::reap(self, dst_dir, &dst.file, m.ino, shown)
                        .map(drop)
                        .map_err(|e| match e {
                            Error::Io { source, .. } => source,
                            e => std::io::Error::other(e.to_string()),
                        })?;
                }
                None => {}
            }
        }
        Err(exists())
    }

    fn live_at(&self, dir: BorrowedFd, file: &str) -> bool {
        sys::open_file(dir, file)
            .ok()
            .and_then(|f| self.meta_of(f.as_fd(), String::new).ok())
            .is_some_and(|m| m.regular && m.is_live())
    }

    /// Creates an empty tag; `false` if it existed.
    pub fn create_tag(&self, tag: &[u8]) -> Result<bool> {
        layout::check_tag(tag)?;
        let p = self.ns.tag_path(tag);
        let bucket = sys::mkdir_all(self.data.as_fd(), &p.dir).at(|| self.show(&p.dir))?;
        match sys::mkdirat(bucket.as_fd(), &p.file) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(false),
            Err(e) => Err(e).at(|| self.show(&p.path())),
        }
    }

    pub fn tag_exists(&self, tag: &[u8]) -> Result<bool> {
        layout::check_tag(tag)?;
        let rel = self.ns.tag_path(tag).path();
        match sys::open_dir(self.data.as_fd(), &rel) {
            Ok(_) => Ok(true),
            Err(e) if is_absent(&e) => Ok(false),
            Err(e) => Err(e).at(|| self.show(&rel)),
        }
    }

    /// Invalidates every entry carrying `tag` by removing its directory;
    /// `false` if there was no such tag. When this returns, no link of the
    /// tag is left, so no entry that carried it is live.
    pub fn invalidate_tag(&self, tag: &[u8]) -> Result<bool> {
        layout::check_tag(tag)?;
        let p = self.ns.tag_path(tag);
        let bucket = match sys::open_dir(self.data.as_fd(), &p.dir) {
            Ok(b) => b,
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(e).at(|| self.show(&p.dir)),
        };
        // Moving the directory out first makes the tag vanish at once; new
        // commits start a fresh directory, and the removal below finishes
        // only when no link can be added to the old one any more.
        let dead = self.unique("dead");
        match sys::renameat(bucket.as_fd(), &p.file, self.tmp.as_fd(), &dead, 0) {
            Ok(()) => {}
            Err(e) if is_absent(&e) => return Ok(false),
            Err(e) => return Err(e).at(|| self.show(&p.path())),
        }
        if self.durable {
            // The removal is on disk before anything else: a power loss
            // then can never bring the tag's entries back.
            sys::fsync(bucket.as_fd()).at(|| self.show(&p.dir))?;
            sys::fsync(self.tmp.as_fd()).at(|| self.show_tmp(""))?;
        }
        cleanup::remove_tree(self, self.tmp.as_fd(), &dead).at(|| self.show_tmp(&dead))?;
        Ok(true)
    }

    /// Names of every `key:` file in the store (live or not), unordered.
    pub fn key_names(&self) -> Result<Vec<Vec<u8>>> {
        let mut names = Vec::new();
        self.walk_buckets(|_, file| {
            if let Some(name) = self.ns.decode_key(file) {
                names.push(name);
            }
            Ok(())
        })?;
        Ok(names)
    }

    /// Every tag with a directory in the store, unordered.
    pub fn tag_names(&self) -> Result<Vec<Vec<u8>>> {
        let mut tags = Vec::new();
        self.walk_buckets(|_, file| {
            if let Some(tag) = self.ns.decode_tag(file) {
                tags.push(tag);
            }
            Ok(())
        })?;
        Ok(tags)
    }

    /// Calls `f(bucket_rel, file_name)` for every file name in `data/AA/BB/`,
    /// one bucket at a time (memory does not grow with the store); stops at
    /// the first error `f` returns.
    fn walk_buckets(&self, mut f: impl FnMut(&str, &[u8]) -> Result<()>) -> Result<()> {
        self.walk_buckets_inos(|rel, file, _| f(rel, file), &mut |_, _| {})
    }

    /// `walk_buckets`, with each name's inode number (from the listing);
    /// `progress` hears of each `AA` directory done (done, of how many).
    fn walk_buckets_inos(
        &self,
        mut f: impl FnMut(&str, &[u8], u64) -> Result<()>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let tops = sys::read_dir(self.data.as_fd()).at(|| self.show(""))?;
        let total = tops.len() as u64;
        for (done, aa) in tops.iter().enumerate() {
            progress(done as u64, total);
            let Some(aa) = sys::as_str(aa).filter(|s| is_fanout(s)) else {
                continue;
            };
            let Ok(aa_dir) = sys::open_dir(self.data.as_fd(), aa) else {
                continue;
            };
            for bb in sys::read_dir(aa_dir.as_fd()).at(|| self.show(aa))? {
                let Some(bb) = sys::as_str(&bb).filter(|s| is_fanout(s)) else {
                    continue;
                };
                let Ok(bb_dir) = sys::open_dir(aa_dir.as_fd(), bb) else {
                    continue;
                };
                let rel = format!("{aa}/{bb}");
                for (file, ino) in sys::read_dir_inos(bb_dir.as_fd()).at(|| self.show(&rel))? {
                    f(&rel, &file, ino)?;
                }
            }
        }
        progress(total, total);
        Ok(())
    }

    /// The live versions carrying `tag`, passed to `f` one at a time (each
    /// found through its link, its name read from its record); `None` if
    /// there is no such tag.
    pub fn for_each_tagged(&self, tag: &[u8], mut f: impl FnMut(Version)) -> Result<Option<()>> {
        layout::check_tag(tag)?;
        let rel = self.ns.tag_path(tag).path();
        let tag_dir = match sys::open_dir(self.data.as_fd(), &rel) {
            Ok(d) => d,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(e).at(|| self.show(&rel)),
        };
        let now = Time::now();
        for ss in sys::read_dir_or_gone(tag_dir.as_fd()).at(|| self.show(&rel))? {
            let Some(ss) = sys::as_str(&ss) else { continue };
            let Ok(ss_dir) = sys::open_dir(tag_dir.as_fd(), ss) else {
                continue;
            };
            for link in sys::read_dir_or_gone(ss_dir.as_fd()).at(|| self.show(&rel))? {
                let Some(link) = sys::as_str(&link) else {
                    continue;
                };
                let Ok(file) = sys::open_file(ss_dir.as_fd(), link) else {
                    continue;
                };
                let Ok(meta) = self.meta_of(file.as_fd(), || self.show(&rel)) else {
                    continue;
                };
                // A replaced version lost its key link, so only the current
                // version of a name can pass this.
                if meta.record.is_some() && meta.regular && meta.is_live_at(now) {
                    f(Version { file, meta });
                }
            }
        }
        Ok(Some(()))
    }

    /// Takes `name`'s single-flight lock; `None` when another holder has it.
    pub fn try_lock(&self, name: &[u8]) -> Result<Option<EntryLock>> {
        layout::check_name(name)?;
        let lock = layout::lock_file(name);
        let shown = || self.show_tmp(&lock);
        loop {
            let fd =
                sys::open_beneath(self.tmp.as_fd(), &lock, libc::O_RDWR | libc::O_CREAT, 0o600)
                    .at(shown)?;
            if !sys::try_flock(fd.as_fd(), true).at(shown)? {
                return Ok(None);
            }
            // The holder before us may have unlinked the file after we opened
            // it: then our lock is on an orphan, and we start over.
            let ino = sys::fstat(fd.as_fd()).at(shown)?.st_ino;
            match sys::lstatat(self.tmp.as_fd(), &lock) {
                Ok(st) if st.st_ino == ino => {
                    let mut held = EntryLock {
                        file: fd.into(),
                        tmp: self.tmp.clone(),
                        name: lock.clone(),
                        current: None,
                    };
                    if self.format == format::Format::Tagcache {
                        // The library regenerating it holds this flock; a
                        // library process that finds it held serves the
                        // entry it has instead of regenerating too.
                        match self.open_version(name)? {
                            Some(v) if !sys::try_flock(v.file.as_fd(), true).at(shown)? => {
                                return Ok(None);
                            }
                            Some(v) => held.current = Some(v.file),
                            None => {}
                        }
                    }
                    return Ok(Some(held));
                }
                Ok(_) => continue,
                Err(e) if is_absent(&e) => continue,
                Err(e) => return Err(e).at(shown),
            }
        }
    }

    /// Removes expired and invalid entries, dead tag links, empty tag
    /// directories and abandoned tmp and lock files.
    pub fn cleanup(&self) -> Result<CleanupReport> {
        cleanup::run(self, &cleanup::Options::default())
    }

    /// Cleanup as `opts` say: for real or as a dry run, telling `progress`.
    pub fn cleanup_with(&self, opts: &cleanup::Options) -> Result<CleanupReport> {
        cleanup::run(self, opts)
    }

    /// Reclaims only what crashed processes left in `tmp/` (drafts and lock
    /// files nobody holds): what a mount does when it starts.
    pub fn reclaim_tmp(&self) -> Result<CleanupReport> {
        cleanup::reclaim_tmp(self)
    }

    /// The store file system's `statvfs`, so `df` on the mount tells the truth.
    pub fn statfs(&self) -> Result<libc::statvfs> {
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `st` is written by the kernel on success.
        let ret =
            unsafe { libc::fstatvfs(std::os::fd::AsRawFd::as_raw_fd(&self.data), st.as_mut_ptr()) };
        if ret < 0 {
            return Err(std::io::Error::last_os_error()).at(|| self.show(""));
        }
        Ok(unsafe { st.assume_init() })
    }

    /// Counts entries, bytes and tags.
    pub fn stats(&self) -> Result<StoreStats> {
        cleanup::stats(self, &mut |_, _, _| {})
    }

    /// `stats`, telling `progress` (phase, done, of how many).
    pub fn stats_with(&self, progress: &mut dyn FnMut(&str, u64, u64)) -> Result<StoreStats> {
        cleanup::stats(self, progress)
    }
}

fn nix_unlock(fd: BorrowedFd) -> std::io::Result<()> {
    // SAFETY: plain syscall on a valid descriptor.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::LOCK_UN) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Links the draft as `link` in `dir`, replacing a link of that name left
/// by an earlier inode that had the same number.
fn link_replacing(draft: &Draft, dir: BorrowedFd, link: &str) -> std::io::Result<()> {
    match sys::link_fd(draft.file.as_fd(), dir, link) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            sys::unlinkat(dir, link, false)?;
            sys::link_fd(draft.file.as_fd(), dir, link)
        }
        other => other,
    }
}

/// Reads up to `size` bytes of `file` from `offset` (short only at its end).
pub fn read_at(file: &File, offset: u64, size: u32) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; size as usize];
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Nothing there (any more). A network file system answers ESTALE where a
/// local one answers ENOENT: GlusterFS, for a directory that another
/// client removed while this one still had it cached (a cleanup on
/// another host taking an empty `SS` or tag directory).
fn is_absent(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) | Some(libc::ESTALE)
    )
}

fn is_fanout(s: &str) -> bool {
    s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests;
