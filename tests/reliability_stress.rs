//! Many processes on one mount at once (SPEC §4 "every read returns the
//! bytes of exactly one committed version", §2 `rmdir` row): writer
//! processes commit self-checking versions of the same few keys, reader
//! processes read them through `keys/` and `tags/t/`, a chaos process
//! retags entries (setxattr user.tags), removes tags (`rmdir`) and
//! invalidates entries, and a cleaner runs `tagcachefs cleanup STORE` in a
//! loop. Every process logs what it did with CLOCK_MONOTONIC times; the
//! parent then checks:
//! - every read was exactly one whole version whose close() returned 0, of
//!   the key it was read under, with the size fstat reported (a glimpse of
//!   a writer's size is counted, see read_one), and carrying
//!   the tag it was read through;
//! - no open started after an `rmdir tags/t` returned yielded a version that
//!   carried t, unless that version (same content, same tag set) may have
//!   been committed after the rmdir returned (its commit, or a retag to that
//!   tag set, ended after it);
//! - nothing is lost: each writer re-reads its own key right after every
//!   commit (some of them right after invalidating the previous version,
//!   racing the cleaner), and entries written before the run (tags never
//!   removed) stay readable throughout;
//! - no deadlock: a watchdog fails the run if it does not end in time.
//!
//! 20 s by default; `TAGCACHEFS_LONG=1` runs 120 s (or
//! `TAGCACHEFS_STRESS_SECS`). With the watchdog's 50 s on top, a long run
//! still ends before nextest's 180 s (.config/nextest.toml), which kills a
//! test without letting it unmount.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

const TEST: &str = "concurrent_commits_reads_retags_rmdirs_and_cleanup";
const WRITERS: usize = 3;
const READERS: usize = 3;
const KEYS: &[&str] = &["k0", "k1", "k2", "k3"];
const TAGS: &[&str] = &["t0", "t1", "t2", "t3"];
/// Never removed: carried by the sentinels and each writer's own key.
const KEEP: &str = "keep";
const SENTINELS: u64 = 4;
/// Ids of the sentinel versions (writers' ids start at 1 << 40).
const SENTINEL_ID: u64 = 7_000;

fn run_secs() -> u64 {
    amount("TAGCACHEFS_STRESS_SECS", 20, 120)
}

fn own_key(writer: u64) -> String {
    format!("own-w{writer}")
}

fn sentinel_key(i: u64) -> String {
    format!("sentinel-{i}")
}

fn tag_list(tags: &[&str]) -> String {
    if tags.is_empty() {
        "-".into()
    } else {
        tags.join(",")
    }
}

/// A tag list as user.tags shows it, normalised to the log's form.
fn norm_tags(raw: &[u8]) -> String {
    let mut v: Vec<String> = String::from_utf8_lossy(raw)
        .split(',')
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    v.sort();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(",")
    }
}

fn random_tags(rng: &mut Rng) -> Vec<&'static str> {
    let mut tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(35)).collect();
    tags.sort();
    tags
}

#[test]
fn concurrent_commits_reads_retags_rmdirs_and_cleanup() {
    if let Some(role) = role() {
        child(&role);
        std::process::exit(0);
    }
    let secs = run_secs();
    let seed = seed(TEST);
    let m = Mount::new(&["--cache-timeout", "1", "--cleanup-interval", "1"]);
    let out = m.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();

    for i in 0..SENTINELS {
        let f = open(
            &m.keys(&sentinel_key(i)),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        )
        .unwrap();
        set_xattr_fd(&f, "user.tags", KEEP.as_bytes()).unwrap();
        write_chunks(
            &f,
            &version_content(SENTINEL_ID + i, 3000 + i as usize * 40_000),
            65536,
        )
        .unwrap();
        close(f).unwrap();
    }

    let mut dog = Watchdog::new(TEST, Duration::from_secs(secs + 50), vec![m.store.clone()]);
    let end = mono_ns() + secs * 1_000_000_000;
    let env = |idx: usize| {
        vec![
            ("STRESS_MNT", m.mnt.display().to_string()),
            ("STRESS_STORE", m.store.display().to_string()),
            ("STRESS_OUT", out.display().to_string()),
            ("STRESS_END", end.to_string()),
            (
                "STRESS_SEED",
                (seed ^ (idx as u64 + 1).wrapping_mul(0x9e37_79b9)).to_string(),
            ),
            ("STRESS_IDX", idx.to_string()),
        ]
    };
    let mut children = Vec::new();
    for w in 0..WRITERS {
        children.push(spawn_role(
            TEST,
            "writer",
            &format!("writer{w}"),
            &out,
            &env(w),
        ));
    }
    for r in 0..READERS {
        children.push(spawn_role(
            TEST,
            "reader",
            &format!("reader{r}"),
            &out,
            &env(100 + r),
        ));
    }
    children.push(spawn_role(TEST, "chaos", "chaos", &out, &env(200)));
    children.push(spawn_role(TEST, "cleaner", "cleaner", &out, &env(300)));
    for c in &children {
        dog.watch(c.pid());
    }
    let results = wait_all(
        &mut children,
        Instant::now() + Duration::from_secs(secs + 40),
    );
    let mut problems = Vec::new();
    for (label, status, output) in &results {
        if *status != Some(0) {
            problems.push(format!(
                "child {label} ended with {status:?} (None = hung, killed):\n{output}"
            ));
        }
    }

    // Quiet now: the last version of each writer's own key and the
    // sentinels read back, before and after one more cleanup.
    let logs = Logs::load(&out, &results);
    if !dog.fired() {
        for round in 0..2 {
            for (key, id) in logs.last_own.iter().chain(logs.sentinels.iter()) {
                match std::fs::read(m.keys(key)) {
                    Ok(data) => match check_version(&data) {
                        Ok(got) if got == *id => {}
                        Ok(got) => problems.push(format!(
                            "after the run, keys/{key} is version {got}, expected {id}"
                        )),
                        Err(e) => problems.push(format!("after the run, keys/{key}: {e}")),
                    },
                    Err(e) => problems.push(format!("after the run, keys/{key} is lost: {e}")),
                }
            }
            if round == 0 {
                cleanup_json(&m.store);
            }
        }
        let drafts = tmp_files(&m.store, "w.");
        if !drafts.is_empty() {
            problems.push(format!(
                "no writer is left, yet tmp/ holds drafts after cleanup: {drafts:?}"
            ));
        }
    }
    let fired = dog.disarm();
    problems.extend(logs.check());
    let log = m.log();
    let panics = panics_in(&log);
    if !panics.is_empty() {
        problems.push(format!("the daemon panicked: {panics:?}"));
    }
    eprintln!("{}", logs.summary(secs));
    drop(m);
    assert!(
        !fired,
        "the watchdog fired: the run did not end in time (deadlock?)"
    );
    assert!(
        problems.is_empty(),
        "{} problem(s) (TAGCACHEFS_SEED={seed}), by kind:\n{}",
        problems.len(),
        by_kind(&problems)
    );
}

/// Problems grouped by their wording without numbers and paths: a count
/// and the first two of each kind.
fn by_kind(problems: &[String]) -> String {
    let mut kinds: BTreeMap<String, Vec<&String>> = BTreeMap::new();
    for p in problems {
        let body = p.split_once(": ").map_or(p.as_str(), |(_, b)| b);
        let kind: String = body
            .split(' ')
            .take(12)
            .filter(|w| !w.contains('/') && !w.chars().any(|c| c.is_ascii_digit()))
            .collect::<Vec<_>>()
            .join(" ");
        kinds.entry(kind).or_default().push(p);
    }
    let mut out = String::new();
    for (kind, list) in kinds {
        let _ = writeln!(out, "[{}x] {kind} ...", list.len());
        for p in list.iter().take(2) {
            let _ = writeln!(out, "    {p}");
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The children.

struct Ctx {
    mnt: PathBuf,
    store: PathBuf,
    end: u64,
    rng: Rng,
    idx: u64,
    rec: std::io::BufWriter<std::fs::File>,
    lost: u64,
}

impl Ctx {
    fn from_env() -> Ctx {
        let out = env_path("STRESS_OUT");
        let label = std::env::var("TAGCACHEFS_LABEL").unwrap();
        let rec = std::fs::File::create(out.join(format!("{label}.rec"))).unwrap();
        Ctx {
            mnt: env_path("STRESS_MNT"),
            store: env_path("STRESS_STORE"),
            end: env_u64("STRESS_END"),
            rng: Rng::new(env_u64("STRESS_SEED")),
            idx: env_u64("STRESS_IDX"),
            rec: std::io::BufWriter::new(rec),
            lost: 0,
        }
    }

    fn running(&self) -> bool {
        mono_ns() < self.end
    }

    fn keys(&self, name: &str) -> PathBuf {
        self.mnt.join("keys").join(name)
    }

    fn rec(&mut self, line: String) {
        writeln!(self.rec, "{line}").unwrap();
    }
}

fn child(role: &str) {
    let mut cx = Ctx::from_env();
    match role {
        "writer" => writer(&mut cx),
        "reader" => reader(&mut cx),
        "chaos" => chaos(&mut cx),
        "cleaner" => cleaner(&mut cx),
        _ => panic!("unknown role {role}"),
    }
    cx.rec.flush().unwrap();
}

/// Commits one version of `key`; logs `C id key tags c0 c1 stage errno`.
/// Never gives up between open and close (an O_TRUNC open closed without a
/// write commits an empty version, which is not what is being tested).
fn commit(cx: &mut Ctx, id: u64, key: &str, tags: &[&str], ttl: u64, excl: bool) -> bool {
    let len = match cx.rng.below(100) {
        0..60 => cx.rng.range(HEADER as u64, 4096),
        60..95 => cx.rng.range(4096, 200_000),
        _ => cx.rng.range(200_000, 1_200_000),
    } as usize;
    let data = version_content(id, len);
    let chunk = *cx.rng.pick(&[4096usize, 65536, 131072, 1 << 20]);
    let tags_s = tag_list(tags);
    let flags = if excl {
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL
    } else {
        libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
    };
    let c0 = mono_ns();
    let f = match open(&cx.keys(key), flags) {
        Ok(f) => f,
        Err(e) => {
            let c1 = mono_ns();
            if !(excl && e == Errno::EEXIST) {
                cx.rec(format!("V open of keys/{key} for writing failed: {e:?}"));
            }
            cx.rec(format!("C {id} {key} {tags_s} {c0} {c1} open {}", e as i32));
            return false;
        }
    };
    let mut stage = ("ok", Ok(()));
    let tag_value = tags.join(",");
    if let Err(e) = set_xattr_fd(&f, "user.tags", tag_value.as_bytes()) {
        stage = ("xattr", Err(e));
    }
    if let Err(e) = set_xattr_fd(&f, "user.expire", ttl.to_string().as_bytes()) {
        stage = ("xattr", Err(e));
    }
    if let Err(e) = write_chunks(&f, &data, chunk) {
        stage = ("write", Err(e));
    }
    if let Err(e) = close(f)
        && stage.0 == "ok"
    {
        stage = ("close", Err(e));
    }
    let c1 = mono_ns();
    cx.rec(format!(
        "C {id} {key} {tags_s} {c0} {c1} {} {}",
        stage.0,
        code_of(&stage.1)
    ));
    if let Err(e) = stage.1
        && e != Errno::ESTALE
    {
        cx.rec(format!(
            "V commit of version {id} to keys/{key} failed at {}: {e:?}",
            stage.0
        ));
    }
    stage.0 == "ok"
}

fn writer(cx: &mut Ctx) {
    let me = cx.idx;
    let own = own_key(me);
    let mut n = 0u64;
    while cx.running() {
        n += 1;
        let id = ((me + 1) << 40) | n;
        if cx.rng.chance(25) {
            // The writer's own key: nobody else writes, retags or removes
            // its tag, so right after close() returns 0 it must read back.
            let unlinked = cx.rng.chance(40);
            if unlinked {
                let u0 = mono_ns();
                let r = unlink(&cx.keys(&own));
                cx.rec(format!("U {own} {u0} {} {}", mono_ns(), code_of(&r)));
            }
            if commit(cx, id, &own.clone(), &[KEEP], 0, false) {
                let what = if unlinked {
                    "rm, then commit"
                } else {
                    "commit"
                };
                let got = std::fs::read(cx.keys(&own));
                let wrong = match &got {
                    Ok(data) => match check_version(data) {
                        Ok(got) if got == id => None,
                        Ok(got) => Some(format!("version {got}")),
                        Err(e) => Some(e),
                    },
                    Err(e) => Some(e.to_string()),
                };
                if let Some(wrong) = wrong {
                    // Transient or for good? (Looked at for the first
                    // few only: the writer must still end on time.)
                    let on_disk = store_view(&cx.store, &own);
                    cx.lost += 1;
                    if cx.lost <= 3 {
                        std::thread::sleep(Duration::from_millis(1500));
                    }
                    let later = match std::fs::read(cx.keys(&own)).map(|d| check_version(&d)) {
                        Ok(Ok(got)) => format!("version {got}"),
                        Ok(Err(e)) => e,
                        Err(e) => e.to_string(),
                    };
                    cx.rec(format!("V lost: right after {what} of version {id} returned, keys/{own} gave: {wrong} (in the store: {on_disk}); a moment later: {later}"));
                }
            }
            continue;
        }
        let key = *cx.rng.pick(KEYS);
        let tags = random_tags(&mut cx.rng);
        let ttl = if cx.rng.chance(15) {
            cx.rng.range(1, 2)
        } else {
            0
        };
        let excl = cx.rng.chance(10);
        commit(cx, id, key, &tags, ttl, excl);
    }
}

/// What the store holds at `name`'s key path, for a report.
fn store_view(store: &Path, name: &str) -> String {
    let key = tagcachefs::store::layout::OURS.key_path(name.as_bytes());
    let path = store.join("data").join(key.path());
    match std::fs::symlink_metadata(&path) {
        Ok(md) => {
            let id = std::fs::read(&path)
                .ok()
                .and_then(|d| check_version(&d).ok());
            format!(
                "version {id:?}, nlink {}, expiry in {} s",
                md.nlink(),
                md.mtime() - now()
            )
        }
        Err(e) => format!("{}: {e}", path.display()),
    }
}

fn read_one(cx: &mut Ctx, key: &str, via: Option<&str>) {
    let path = match via {
        Some(t) => cx.mnt.join("tags").join(t).join(key),
        None => cx.keys(key),
    };
    let via_s = via.unwrap_or("-");
    let chunk = *cx.rng.pick(&[4096usize, 65536, 131072, 1 << 20]);
    let s = mono_ns();
    let f = match open(&path, libc::O_RDONLY) {
        Ok(f) => f,
        Err(e) => {
            cx.rec(format!("N {key} {via_s} {}", e as i32));
            if e != Errno::ENOENT {
                cx.rec(format!("V open of {} failed: {e:?}", path.display()));
            }
            if key.starts_with("sentinel") {
                cx.rec(format!(
                    "V lost: {} (an entry nobody touches) failed to open: {e:?}",
                    path.display()
                ));
            }
            return;
        }
    };
    let data = read_chunks(&f, chunk);
    let size = f.metadata().map(|m| m.size());
    let tags = get_xattr_fd(&f, "user.tags");
    drop(f);
    let data = match data {
        Ok(d) => d,
        Err(e) => {
            cx.rec(format!("V read of {} failed: {e:?}", path.display()));
            return;
        }
    };
    match check_version(&data) {
        Ok(id) => {
            let tags = match tags {
                Ok(t) => norm_tags(&t),
                Err(e) => {
                    cx.rec(format!(
                        "V getxattr user.tags on an open {} failed: {e:?}",
                        path.display()
                    ));
                    return;
                }
            };
            // The bytes read are always exactly one version (checked above).
            // fstat may glimpse an overwrite's size: a writer's direct write
            // raises the kernel's size of the node that readers share, and
            // the kernel drops the committed size the daemon answers when a
            // write raced that GETATTR. A kernel limit (README, limits):
            // counted and reported, not a failure.
            if size.as_ref().ok() != Some(&(data.len() as u64)) {
                cx.rec(format!("S {}", data.len()));
            }
            cx.rec(format!("R {s} {key} {via_s} {id} {tags}"));
        }
        Err(e) => cx.rec(format!("V {}: {e}", path.display())),
    }
}

fn reader(cx: &mut Ctx) {
    while cx.running() {
        match cx.rng.below(100) {
            0..60 => {
                let key = *cx.rng.pick(KEYS);
                read_one(cx, key, None);
            }
            60..80 => {
                let key = *cx.rng.pick(KEYS);
                let tag = *cx.rng.pick(TAGS);
                read_one(cx, key, Some(tag));
            }
            80..88 => {
                let key = own_key(cx.rng.below(WRITERS as u64));
                read_one(cx, &key, None);
            }
            88..96 => {
                let key = sentinel_key(cx.rng.below(SENTINELS));
                read_one(cx, &key, None);
                if cx.rng.chance(50) {
                    read_one(cx, &key, Some(KEEP));
                }
            }
            _ => {
                for dir in [
                    cx.mnt.join("keys"),
                    cx.mnt.join("tags"),
                    cx.mnt.join("tags").join(KEEP),
                ] {
                    match list_dir(&dir) {
                        Ok(names) => {
                            if dir.ends_with(KEEP) && names.len() < SENTINELS as usize {
                                cx.rec(format!("V lost: tags/{KEEP}/ lists {} names, fewer than the {SENTINELS} sentinels", names.len()));
                            }
                        }
                        Err(e) => cx.rec(format!("V listing {} failed: {e:?}", dir.display())),
                    }
                }
            }
        }
    }
}

fn chaos(cx: &mut Ctx) {
    while cx.running() {
        match cx.rng.below(100) {
            0..45 => {
                let key = *cx.rng.pick(KEYS);
                let tags = random_tags(&mut cx.rng);
                let x0 = mono_ns();
                let r = set_xattr(&cx.keys(key), b"user.tags", tags.join(",").as_bytes());
                let x1 = mono_ns();
                cx.rec(format!(
                    "X {key} {} {x0} {x1} {}",
                    tag_list(&tags),
                    code_of(&r)
                ));
                if let Err(e) = r
                    && ![Errno::ENOENT, Errno::ESTALE].contains(&e)
                {
                    cx.rec(format!("V retag of keys/{key} failed: {e:?}"));
                }
            }
            45..75 => {
                let tag = *cx.rng.pick(TAGS);
                let r0 = mono_ns();
                let r = rmdir(&cx.mnt.join("tags").join(tag));
                let r1 = mono_ns();
                cx.rec(format!("D {tag} {r0} {r1} {}", code_of(&r)));
                if let Err(e) = r
                    && e != Errno::ENOENT
                {
                    cx.rec(format!("V rmdir tags/{tag} failed: {e:?}"));
                }
            }
            75..85 => {
                let key = *cx.rng.pick(KEYS);
                let u0 = mono_ns();
                let r = unlink(&cx.keys(key));
                cx.rec(format!("U {key} {u0} {} {}", mono_ns(), code_of(&r)));
                if let Err(e) = r
                    && e != Errno::ENOENT
                {
                    cx.rec(format!("V rm keys/{key} failed: {e:?}"));
                }
            }
            _ => {
                let tag = *cx.rng.pick(TAGS);
                let r = mkdir(&cx.mnt.join("tags").join(tag));
                cx.rec(format!("M {tag} {}", code_of(&r)));
                if let Err(e) = r
                    && e != Errno::EEXIST
                {
                    cx.rec(format!("V mkdir tags/{tag} failed: {e:?}"));
                }
            }
        }
        std::thread::sleep(Duration::from_micros(cx.rng.range(0, 3000)));
    }
}

fn cleaner(cx: &mut Ctx) {
    while cx.running() {
        let out = tool(&["cleanup".as_ref(), cx.store.as_os_str()]);
        cx.rec(format!("L {}", out.status.code().unwrap_or(-1)));
        if !out.status.success() {
            cx.rec(format!(
                "V tagcachefs cleanup failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        std::thread::sleep(Duration::from_millis(cx.rng.range(0, 100)));
    }
}

// ---------------------------------------------------------------------------
// The parent's checks.

/// A logged outcome as the summary counts it: "ok" or the errno's name.
fn shown(code: u64) -> String {
    match from_code(code as i32) {
        Ok(()) => "ok".into(),
        Err(e) => format!("{e:?}"),
    }
}

#[derive(Debug, Clone)]
struct CommitRec {
    key: String,
    tags: String,
    end: u64,
    ok: bool,
}

#[derive(Debug)]
struct Read {
    start: u64,
    key: String,
    via: String,
    id: u64,
    tags: String,
}

#[derive(Default)]
struct Logs {
    commits: HashMap<u64, CommitRec>,
    /// (key, tags) → end times of retags to exactly that tag set.
    retags: HashMap<(String, String), Vec<u64>>,
    /// tag → (start, return) times of successful rmdirs.
    rmdirs: BTreeMap<String, Vec<(u64, u64)>>,
    reads: Vec<Read>,
    violations: Vec<String>,
    last_own: Vec<(String, u64)>,
    sentinels: Vec<(String, u64)>,
    counts: BTreeMap<String, u64>,
}

impl Logs {
    fn load(out: &Path, results: &[(String, Option<i32>, String)]) -> Logs {
        let mut logs = Logs::default();
        for i in 0..SENTINELS {
            logs.commits.insert(
                SENTINEL_ID + i,
                CommitRec {
                    key: sentinel_key(i),
                    tags: KEEP.into(),
                    end: 0,
                    ok: true,
                },
            );
            logs.sentinels.push((sentinel_key(i), SENTINEL_ID + i));
        }
        for (label, _, _) in results {
            let text =
                std::fs::read_to_string(out.join(format!("{label}.rec"))).unwrap_or_default();
            let mut own_last: Option<(String, u64)> = None;
            for line in text.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                let n = |i: usize| f[i].parse::<u64>().unwrap();
                let count = |logs: &mut Logs, k: String| *logs.counts.entry(k).or_default() += 1;
                match f[0] {
                    "V" => logs.violations.push(format!("{label}: {}", &line[2..])),
                    "S" => count(
                        &mut logs,
                        "reads whose fstat glimpsed a writer's size".into(),
                    ),
                    "C" => {
                        let ok = f[6] == "ok";
                        count(
                            &mut logs,
                            format!(
                                "commits {}",
                                if ok {
                                    "ok".into()
                                } else {
                                    format!("{} {}", f[6], shown(n(7)))
                                }
                            ),
                        );
                        if ok && f[2].starts_with("own-") {
                            own_last = Some((f[2].to_string(), n(1)));
                        }
                        logs.commits.insert(
                            n(1),
                            CommitRec {
                                key: f[2].into(),
                                tags: f[3].into(),
                                end: n(5),
                                ok,
                            },
                        );
                    }
                    "X" => {
                        count(&mut logs, format!("retags {}", shown(n(5))));
                        logs.retags
                            .entry((f[1].into(), f[2].into()))
                            .or_default()
                            .push(n(4));
                    }
                    "D" => {
                        count(&mut logs, format!("rmdirs {}", shown(n(4))));
                        if n(4) == 0 {
                            logs.rmdirs
                                .entry(f[1].into())
                                .or_default()
                                .push((n(2), n(3)));
                        }
                    }
                    "U" => count(&mut logs, format!("unlinks {}", shown(n(4)))),
                    "M" => count(&mut logs, "mkdirs".into()),
                    "L" => count(&mut logs, "cleanups".into()),
                    "N" => count(&mut logs, format!("opens for reading {}", shown(n(3)))),
                    "R" => {
                        count(&mut logs, "reads checked".into());
                        logs.reads.push(Read {
                            start: n(1),
                            key: f[2].into(),
                            via: f[3].into(),
                            id: n(4),
                            tags: f[5].into(),
                        });
                    }
                    _ => logs
                        .violations
                        .push(format!("{label}: unparsable log line {line:?}")),
                }
            }
            logs.last_own.extend(own_last);
        }
        logs
    }

    fn check(&self) -> Vec<String> {
        let mut problems = self.violations.clone();
        for r in &self.reads {
            let Some(c) = self.commits.get(&r.id) else {
                problems.push(format!(
                    "a read of keys/{} returned version {} that no writer made",
                    r.key, r.id
                ));
                continue;
            };
            if !c.ok {
                problems.push(format!(
                    "a read of keys/{} returned version {} whose close() failed",
                    r.key, r.id
                ));
            }
            if c.key != r.key {
                problems.push(format!(
                    "a read of keys/{} returned version {} of keys/{}",
                    r.key, r.id, c.key
                ));
            }
            if r.via != "-" && !r.tags.split(',').any(|t| t == r.via) {
                problems.push(format!(
                    "tags/{}/{} served version {} carrying only {}",
                    r.via, r.key, r.id, r.tags
                ));
            }
            // When could a version with this content and this tag set last
            // have been committed? An rmdir that started after that and
            // returned before the open began must have invalidated it (an
            // rmdir overlapping the commit may be ordered either way).
            let mut made = if c.tags == r.tags { Some(c.end) } else { None };
            if let Some(ends) = self.retags.get(&(r.key.clone(), r.tags.clone())) {
                made = made.max(ends.iter().copied().max());
            }
            let Some(made) = made else {
                problems.push(format!("keys/{} version {} carried tags {} that neither its commit ({}) nor any retag gave it", r.key, r.id, r.tags, c.tags));
                continue;
            };
            for t in r.tags.split(',').filter(|t| *t != "-") {
                let Some(times) = self.rmdirs.get(t) else {
                    continue;
                };
                if let Some((d0, d1)) = times.iter().find(|(d0, d1)| *d0 > made && *d1 < r.start) {
                    problems.push(format!(
                        "rmdir tags/{t} returned {:.3} ms before an open of {}{} began, yet that open yielded version {} carrying {} (whose last commit or retag to that tag set ended {:.3} ms before the rmdir started)",
                        (r.start - d1) as f64 / 1e6,
                        if r.via == "-" { "keys/".to_string() } else { format!("tags/{}/", r.via) },
                        r.key,
                        r.id,
                        r.tags,
                        (d0 - made) as f64 / 1e6,
                    ));
                }
            }
        }
        problems
    }

    fn summary(&self, secs: u64) -> String {
        let mut s = format!("stress run of {secs} s: ");
        for (k, v) in &self.counts {
            let _ = write!(s, "{k}: {v}; ");
        }
        let _ = write!(
            s,
            "violations logged by children: {}",
            self.violations.len()
        );
        s
    }
}
