//! Several processes on one store at once (SPEC §1): committers rewrite the
//! same few keys with self-checking versions, readers check that every read
//! is exactly one whole committed version, a retagger re-commits entries
//! with other tags, and an invalidator removes tags, invalidates entries and
//! runs cleanup, watching that no entry invalidated through a tag ever comes
//! back to life.
//!
//! The children are this test binary itself, re-run on the one test with an
//! environment variable naming the child's role; they draw from the
//! parent's seed (`TAGCACHEFS_SEED=N` replays a run's choices).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;
use tagcachefs::store::{Commit, Error, Store, Time, Version, layout};

const TEST: &str = "concurrent_processes_only_ever_read_whole_committed_versions";
const STORE: &str = "TAGCACHE_TEST_STORE";
const OUT: &str = "TAGCACHE_TEST_OUT";
const RUN_MS: &str = "TAGCACHE_TEST_RUN_MS";
const SEED: &str = "TAGCACHE_TEST_SEED";

/// How long the children run.
const RUN: Duration = Duration::from_millis(3000);
/// How long the parent waits for them before killing them.
const TIMEOUT: Duration = Duration::from_secs(60);

const KEYS: [&[u8]; 4] = [b"k0", b"k1", b"k2", b"k3"];
/// `t0` is the tag watched for resurrection: only fresh commits add it, and
/// re-commits keep it exactly when the version they replace carries it.
const TAGS: [&[u8]; 3] = [b"t0", b"t1", b"t2"];

/// A child that read something that is not one whole committed version.
const EXIT_TORN: i32 = 1;
/// A child that saw an entry invalidated through a tag live again.
const EXIT_RESURRECTED: i32 = 3;
/// A child that got an error it should not have.
const EXIT_ERROR: i32 = 2;

// ---------------------------------------------------------------------------
// Self-checking versions (support's), whose id names the writer, the key
// and the writer's sequence number: writer << 48 | key << 40 | seq.

/// Who wrote a version: (writer, seq), unique per fresh commit.
type VersionId = (u32, u64);

fn version_id(writer: u32, seq: u64, key: usize) -> u64 {
    (writer as u64) << 48 | (key as u64) << 40 | seq
}

/// Checks that `data` is one whole version written for `key`.
fn check_key_version(data: &[u8], key: usize) -> Result<VersionId, String> {
    let id = check_version(data)?;
    let (writer, k, seq) = (
        (id >> 48) as u32,
        (id >> 40 & 0xff) as usize,
        id & 0xff_ffff_ffff,
    );
    if k != key {
        return Err(format!(
            "version {writer}/{seq} of key {k} found under key {key}"
        ));
    }
    Ok((writer, seq))
}

/// Reads an open version whole (from byte 0: the file of a version a commit
/// returns shares its offset with the draft written) and checks it against
/// its key and metadata.
fn read_checked(v: &Version, key: usize) -> Result<VersionId, String> {
    let data = pread_all(&v.file).map_err(|e| format!("read: {e}"))?;
    let id = check_key_version(&data, key)?;
    if v.meta.size != data.len() as u64 {
        return Err(format!(
            "version {id:?}: stat says {} bytes, read {}",
            v.meta.size,
            data.len()
        ));
    }
    Ok(id)
}

fn key_of(v: &Version) -> Result<usize, String> {
    let name = &v.meta.record.as_ref().ok_or("no record")?.name;
    KEYS.iter()
        .position(|k| k == name)
        .ok_or_else(|| format!("unknown name {:?}", name.escape_ascii().to_string()))
}

/// A child's RNG: the run's seed, salted per child.
fn child_rng(salt: u64) -> Rng {
    Rng::new(env_u64(SEED) ^ salt)
}

/// Each of `from` (indexes into TAGS) with probability 1/2.
fn some_tags(rng: &mut Rng, from: &[usize]) -> Vec<Vec<u8>> {
    from.iter()
        .filter(|_| rng.below(2) == 0)
        .map(|&t| TAGS[t].to_vec())
        .collect()
}

// ---------------------------------------------------------------------------
// The children.

/// What a child reports back: `name=value` lines.
type Counts = BTreeMap<String, u64>;

enum Failure {
    Torn(String),
    Resurrected(String),
    Error(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Error(e.to_string())
    }
}

fn child_main(role: &str) -> ! {
    let store = Store::open(&env_path(STORE)).unwrap();
    let run = Duration::from_millis(env_u64(RUN_MS));
    let deadline = Instant::now() + run;
    let (kind, id) = role.split_once(':').unwrap();
    let id: u32 = id.parse().unwrap();
    let mut counts = Counts::new();
    let result = match kind {
        "committer" => committer(&store, id, deadline, &mut counts),
        "reader" => reader(&store, id, deadline, &mut counts),
        "retagger" => retagger(&store, id, deadline, &mut counts),
        "invalidator" => invalidator(&store, id, deadline, &mut counts),
        _ => panic!("unknown role {role}"),
    };
    let code = match result {
        Ok(()) => 0,
        Err(Failure::Torn(m)) => {
            eprintln!("{role}: torn read: {m}");
            EXIT_TORN
        }
        Err(Failure::Resurrected(m)) => {
            eprintln!("{role}: resurrected: {m}");
            EXIT_RESURRECTED
        }
        Err(Failure::Error(m)) => {
            eprintln!("{role}: error: {m}");
            EXIT_ERROR
        }
    };
    let mut out = File::create(env_path(OUT)).unwrap();
    for (k, v) in &counts {
        writeln!(out, "{k}={v}").unwrap();
    }
    out.sync_all().unwrap();
    drop(out);
    std::process::exit(code)
}

fn bump(counts: &mut Counts, what: &str) {
    *counts.entry(what.to_string()).or_default() += 1;
}

/// Commits fresh versions of random keys, bodies 0..64 KiB, random tags.
fn committer(
    store: &Store,
    id: u32,
    deadline: Instant,
    counts: &mut Counts,
) -> Result<(), Failure> {
    let mut rng = child_rng(id as u64);
    let mut seq = 0;
    while Instant::now() < deadline {
        seq += 1;
        let key = rng.below(KEYS.len() as u64) as usize;
        let len = HEADER + rng.below(64 * 1024) as usize;
        let data = version_content(version_id(id, seq, key), len);
        let tags = some_tags(&mut rng, &[0, 1, 2]);
        let ttl = if rng.below(2) == 0 { 0 } else { 3600 };
        let draft = store.new_draft()?;
        // Two writes, so that a reader of the draft would see half of it.
        let half = data.len() / 2;
        draft
            .file()
            .write_all(&data[..half])
            .and_then(|()| draft.file().write_all(&data[half..]))
            .map_err(|e| Failure::Error(format!("write: {e}")))?;
        let commit = Commit::fresh(KEYS[key], &tags, Time::after_ttl(ttl), ttl);
        match store.commit(draft, &commit) {
            Ok(v) => {
                // What was committed is what was written.
                if read_checked(&v, key).map_err(Failure::Torn)? != (id, seq) {
                    return Err(Failure::Torn("commit returned another version".into()));
                }
                bump(counts, "commits");
            }
            // The tag directories kept vanishing under this commit.
            Err(Error::Invalidated(_)) => bump(counts, "commits_invalidated"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Reads random keys, and now and then a tag's listing, checking each
/// version read; counts reads that went back to an older version of a
/// writer (a re-commit racing a newer commit), without failing on them.
fn reader(store: &Store, id: u32, deadline: Instant, counts: &mut Counts) -> Result<(), Failure> {
    let mut rng = child_rng(0x5eed ^ id as u64);
    let mut newest: HashSet<(usize, u32, u64)> = HashSet::new();
    let mut newest_seq: BTreeMap<(usize, u32), u64> = BTreeMap::new();
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        if i.is_multiple_of(16) {
            let tag = TAGS[rng.below(TAGS.len() as u64) as usize];
            let mut failure = None;
            store.for_each_tagged(tag, |v| {
                let checked = key_of(&v).and_then(|key| read_checked(&v, key));
                match checked {
                    Ok(_) => bump(counts, "tagged_reads"),
                    Err(m) => failure = Some(m),
                }
            })?;
            if let Some(m) = failure {
                return Err(Failure::Torn(m));
            }
            continue;
        }
        let key = rng.below(KEYS.len() as u64) as usize;
        let Some(v) = store.open_live(KEYS[key])? else {
            bump(counts, "misses");
            continue;
        };
        if key_of(&v).map_err(Failure::Torn)? != key {
            return Err(Failure::Torn(format!("record of key {key} names another")));
        }
        let (writer, seq) = read_checked(&v, key).map_err(Failure::Torn)?;
        bump(counts, "reads");
        let last = newest_seq.entry((key, writer)).or_default();
        if seq < *last {
            bump(counts, "went_back");
        }
        *last = (*last).max(seq);
        newest.insert((key, writer, seq));
    }
    counts.insert("distinct_versions".into(), newest.len() as u64);
    Ok(())
}

/// Re-commits live entries with other tags: half through `retag` (never
/// with `t0`), half by hand, keeping `t0` exactly when the version replaced
/// carries it. So `t0` is only ever added by a fresh commit.
fn retagger(store: &Store, id: u32, deadline: Instant, counts: &mut Counts) -> Result<(), Failure> {
    let mut rng = child_rng(0x7a6 ^ id as u64);
    while Instant::now() < deadline {
        let key = rng.below(KEYS.len() as u64) as usize;
        let result = if rng.below(2) == 0 {
            store.retag(KEYS[key], &some_tags(&mut rng, &[1, 2]))
        } else {
            let Some(old) = store.open_live(KEYS[key])? else {
                bump(counts, "misses");
                continue;
            };
            let mut tags = some_tags(&mut rng, &[1, 2]);
            if old.meta.tags().iter().any(|t| t == TAGS[0]) {
                tags.push(TAGS[0].to_vec());
            }
            let draft = store.draft_from(&old)?;
            store.commit(
                draft,
                &Commit {
                    name: KEYS[key],
                    tags: &tags,
                    expiry: old.meta.expiry,
                    ttl: old.meta.ttl(),
                    carried: old.meta.tags(),
                    replaces: Some(&old),
                    held: &[],
                },
            )
        };
        match result {
            Ok(v) => {
                read_checked(&v, key).map_err(Failure::Torn)?;
                bump(counts, "retags");
            }
            Err(Error::NoEntry(_)) => bump(counts, "misses"),
            Err(Error::Invalidated(_)) => bump(counts, "retags_invalidated"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Removes tags, invalidates entries, creates tags and runs cleanup. Before
/// each removal of `t0` it notes the versions live under it; none of those
/// may ever be live under `t0` again.
fn invalidator(
    store: &Store,
    id: u32,
    deadline: Instant,
    counts: &mut Counts,
) -> Result<(), Failure> {
    let mut rng = child_rng(0x1a7 ^ id as u64);
    let mut dead: HashSet<VersionId> = HashSet::new();
    let carries_t0 = |v: &Version| v.meta.tags().iter().any(|t| t == TAGS[0]);
    while Instant::now() < deadline {
        // Resurrection check, through the tag and through the keys.
        let mut under_t0 = Vec::new();
        let mut failure = None;
        store.for_each_tagged(TAGS[0], |v| {
            match key_of(&v).and_then(|key| read_checked(&v, key)) {
                Ok(id) => under_t0.push(id),
                Err(m) => failure = Some(Failure::Torn(m)),
            }
        })?;
        for (key, name) in KEYS.iter().enumerate() {
            if let Some(v) = store.open_live(name)?
                && carries_t0(&v)
            {
                match read_checked(&v, key) {
                    Ok(id) => under_t0.push(id),
                    Err(m) => failure = Some(Failure::Torn(m)),
                }
            }
        }
        if let Some(f) = failure {
            return Err(f);
        }
        if let Some(id) = under_t0.iter().find(|id| dead.contains(id)) {
            return Err(Failure::Resurrected(format!(
                "version {id:?} is live under t0 after t0 was removed"
            )));
        }
        bump(counts, "resurrection_checks");

        match rng.below(10) {
            0..=2 => {
                // What is live under t0 now is dead once this returns.
                dead.extend(under_t0);
                if store.invalidate_tag(TAGS[0])? {
                    bump(counts, "t0_removed");
                }
            }
            3..=4 => {
                let tag = TAGS[1 + rng.below(2) as usize];
                store.invalidate_tag(tag)?;
                bump(counts, "tags_removed");
            }
            5..=6 => {
                store.invalidate_entry(KEYS[rng.below(KEYS.len() as u64) as usize])?;
                bump(counts, "entries_invalidated");
            }
            7..=8 => {
                store.cleanup()?;
                bump(counts, "cleanups");
            }
            _ => {
                store.create_tag(TAGS[rng.below(TAGS.len() as u64) as usize])?;
                bump(counts, "tags_created");
            }
        }
    }
    counts.insert("versions_killed_via_t0".into(), dead.len() as u64);
    Ok(())
}

// ---------------------------------------------------------------------------
// The parent.

fn read_counts(path: &Path) -> Counts {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn concurrent_processes_only_ever_read_whole_committed_versions() {
    if let Some(role) = role() {
        child_main(&role);
    }
    let seed = seed(TEST);
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store");
    let store = Store::open(&store_path).unwrap();

    let mut roles = Vec::new();
    for i in 0..3 {
        roles.push(format!("committer:{i}"));
        roles.push(format!("reader:{i}"));
    }
    roles.push("retagger:0".into());
    roles.push("invalidator:0".into());
    let counts_of = |label: &str| dir.path().join(format!("{label}.counts"));
    let mut children: Vec<Child> = roles
        .iter()
        .map(|role| {
            let label = role.replace(':', "-");
            let env = [
                (STORE, store_path.display().to_string()),
                (OUT, counts_of(&label).display().to_string()),
                (RUN_MS, RUN.as_millis().to_string()),
                (SEED, seed.to_string()),
            ];
            spawn_role(TEST, role, &label, dir.path(), &env)
        })
        .collect();

    let mut all: BTreeMap<String, Counts> = BTreeMap::new();
    for (label, status, output) in wait_all(&mut children, Instant::now() + TIMEOUT) {
        match status {
            Some(0) => {}
            Some(code) => panic!("{label} failed (exit code {code}):\n{output}"),
            None => panic!("{label} did not finish in {TIMEOUT:?}:\n{output}"),
        }
        all.insert(label.clone(), read_counts(&counts_of(&label)));
    }
    let total = |what: &str, kind: &str| -> u64 {
        all.iter()
            .filter(|(r, _)| r.starts_with(kind))
            .map(|(_, c)| c.get(what).copied().unwrap_or(0))
            .sum()
    };
    for (role, counts) in &all {
        eprintln!("{role}: {counts:?}");
        if role.starts_with("reader") {
            assert!(
                counts.get("reads").copied().unwrap_or(0) > 0,
                "{role} read nothing"
            );
        }
        if role.starts_with("committer") {
            assert!(
                counts.get("commits").copied().unwrap_or(0) > 0,
                "{role} committed nothing"
            );
        }
    }
    assert!(
        total("tagged_reads", "reader") > 0,
        "no listing was checked"
    );
    assert!(
        total("t0_removed", "invalidator") > 0,
        "t0 was never removed"
    );
    assert!(total("resurrection_checks", "invalidator") > 0);
    eprintln!(
        "{} whole reads ({} through tags) of {} commits and {} re-commits in {:?}",
        total("reads", "reader"),
        total("tagged_reads", "reader"),
        total("commits", "committer"),
        total("retags", "retagger"),
        started.elapsed()
    );

    // Every writer has exited: no draft, lock, removed tag or reaped entry
    // is left in tmp/.
    let leftovers = tmp_files(&store_path, "");
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");

    // Stats add up before and after a cleanup, which removes exactly the
    // stale entries and leaves only live ones and tags in use.
    let before = store.stats().unwrap();
    assert_eq!(
        store.key_names().unwrap().len() as u64,
        before.entries + before.stale_entries
    );
    assert_eq!(store.tag_names().unwrap().len() as u64, before.tags);
    let report = store.cleanup().unwrap();
    assert_eq!(report.entries, before.stale_entries);
    assert_eq!(report.bytes, before.stale_bytes);
    let after = store.stats().unwrap();
    assert_eq!((after.stale_entries, after.stale_bytes), (0, 0));
    assert_eq!((after.entries, after.bytes), (before.entries, before.bytes));
    let (mut live, mut bytes) = (0, 0);
    for (key, name) in KEYS.iter().enumerate() {
        if let Some(v) = store.open_live(name).unwrap() {
            read_checked(&v, key).unwrap();
            live += 1;
            bytes += v.meta.size;
        }
    }
    assert_eq!((after.entries, after.bytes), (live, bytes));
    let tags = store.tag_names().unwrap();
    assert_eq!(after.tags, tags.len() as u64);
    for tag in &tags {
        let mut n = 0;
        store.for_each_tagged(tag, |_| n += 1).unwrap();
        assert!(n > 0, "tag {tag:?} survived cleanup with nothing live");
    }
    assert_eq!(store.cleanup().unwrap(), Default::default());
    let leftovers = tmp_files(&store_path, "");
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");
}

/// The race behind "a re-commit racing an rmdir of one of the entry's tags
/// must not bring the entry back", in one thread: a retag has opened the
/// live version and copied it; `invalidate_tag` moves the tag's directory
/// out but has not yet removed the links in it; another entry's fresh commit
/// starts a new directory for the tag; then the retag commits.
#[test]
fn retag_racing_a_tag_removal_and_a_fresh_commit_stays_invalidated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let put = |name: &[u8], content: &[u8]| {
        let draft = store.new_draft().unwrap();
        draft.file().write_all(content).unwrap();
        let tags = [TAGS[0].to_vec()];
        store
            .commit(draft, &Commit::fresh(name, &tags, Time::NEVER, 0))
            .unwrap()
    };
    put(b"a", b"old a");

    // The retag, up to its commit.
    let old = store.open_live(b"a").unwrap().unwrap();
    let draft = store.draft_from(&old).unwrap();

    // invalidate_tag(t0), first half: the directory is moved out, its links
    // still in it.
    let tag_dir = dir
        .path()
        .join("store/data")
        .join(layout::OURS.tag_path(TAGS[0]).path());
    let moved = dir.path().join("t0-being-removed");
    std::fs::rename(&tag_dir, &moved).unwrap();
    assert!(!store.tag_exists(TAGS[0]).unwrap());

    // A fresh commit after the removal started: a new t0 directory.
    put(b"b", b"new b");

    let tags = [TAGS[0].to_vec()];
    let recommit = store.commit(
        draft,
        &Commit {
            name: b"a",
            tags: &tags,
            expiry: old.meta.expiry,
            ttl: 0,
            carried: old.meta.tags(),
            replaces: Some(&old),
            held: &[],
        },
    );

    // invalidate_tag(t0), second half.
    std::fs::remove_dir_all(&moved).unwrap();

    let a = store.open_live(b"a").unwrap();
    assert!(
        a.is_none(),
        "a was invalidated with t0 but is live again: {:?} (re-commit: {recommit:?})",
        a.map(|v| v.meta)
    );
    assert!(
        matches!(recommit, Err(Error::Invalidated(_))),
        "{recommit:?}"
    );
    let mut tagged = Vec::new();
    store
        .for_each_tagged(TAGS[0], |v| tagged.push(v.meta.record.unwrap().name))
        .unwrap();
    assert_eq!(tagged, vec![b"b".to_vec()]);
}

/// Threads of one process racing a cleanup loop and a mover that keeps
/// taking an entry out of `data/` and putting it back (what a cleanup does
/// to a key it judges dead while a commit lands on it): commits never lose
/// their draft or their new tag directory, and an open never fails, whatever
/// it finds.
#[test]
fn commits_and_opens_racing_cleanup_neither_fail_nor_lose_work() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("store");
    let store = Store::open(&root).unwrap();
    let deadline = Instant::now() + Duration::from_millis(1500);
    let key = root
        .join("data")
        .join(layout::OURS.key_path(b"moved").path());
    let commit = |name: &[u8], tag: &[u8]| {
        let draft = store.new_draft()?;
        draft.file().write_all(name).unwrap();
        store.commit(draft, &Commit::fresh(name, &[tag.to_vec()], Time::NEVER, 0))
    };
    commit(b"moved", b"m").unwrap();
    let (commits, opens) = std::thread::scope(|s| {
        s.spawn(|| {
            while Instant::now() < deadline {
                store.cleanup().unwrap();
            }
        });
        s.spawn(|| {
            let out = root.join("tmp/moved-out");
            while Instant::now() < deadline {
                std::fs::rename(&key, &out).unwrap();
                std::fs::rename(&out, &key).unwrap();
            }
        });
        let committer = s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                // A fresh tag directory each time, empty for an instant.
                let tag = format!("t{}", n % 4);
                store.invalidate_tag(tag.as_bytes()).unwrap();
                commit(b"committed", tag.as_bytes()).unwrap();
                n += 1;
            }
            n
        });
        let opener = s.spawn(|| {
            let mut n = 0;
            while Instant::now() < deadline {
                if let Some(v) = store.open_version(b"moved").unwrap() {
                    assert_eq!(pread_all(&v.file).unwrap(), b"moved");
                }
                n += 1;
            }
            n
        });
        (committer.join().unwrap(), opener.join().unwrap())
    });
    assert!(commits > 0 && opens > 0);
    assert!(store.open_live(b"moved").unwrap().is_some());
}
