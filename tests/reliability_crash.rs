//! A killed daemon loses no committed entry and leaves nothing partial
//! visible (SPEC §4); the next mount and `cleanup` reclaim what it left in
//! tmp/ (SPEC §1, §3).
//!
//! Each round: writer processes commit self-checking versions, retag,
//! invalidate and O_EXCL-create entries through the mount, logging every
//! operation before it starts and when it returns; the daemon is killed
//! with SIGKILL at a random moment; the dead mount is unmounted and the
//! same store mounted again. Then every key must read back as the state
//! after its last operation that returned success, or, for the one
//! operation in flight at the kill, as the state after it: whole, with the
//! tags it was given, the same through `tags/t/`. `stale/` holds only whole
//! versions. The next mount reclaims the drafts and locks the killed daemon
//! left in tmp/ by itself; `tagcachefs cleanup` then leaves nothing of
//! ours in tmp/, and a second cleanup removes nothing.
//!
//! 25 rounds (a few seconds) by default; `TAGCACHEFS_LONG=1` runs 100 (or
//! `TAGCACHEFS_CRASH_ROUNDS`).

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const TEST: &str = "killed_daemon_loses_no_committed_entry_and_leaves_nothing_partial";
const WRITERS: u64 = 3;
const KEYS_PER_WRITER: u64 = 6;
const TAGS: &[&str] = &["a", "b", "c"];
const ARGS: &[&str] = &["--cache-timeout", "1"];

fn rounds() -> u64 {
    amount("TAGCACHEFS_CRASH_ROUNDS", 25, 100)
}

fn key_name(writer: u64, k: u64) -> String {
    format!("w{writer}-k{k}")
}

/// What a key holds: `None` (absent or invalidated) or a version and the
/// tags it carries ("-" for none).
type State = Option<(u64, String)>;

#[test]
fn killed_daemon_loses_no_committed_entry_and_leaves_nothing_partial() {
    if role().is_some() {
        writer();
        std::process::exit(0);
    }
    let rounds = rounds();
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut m = Mount::new(ARGS);
    let out = m.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let mut model: BTreeMap<String, State> = BTreeMap::new();
    let mut figures = Figures::default();
    let mut problems = Vec::new();

    let mut hung = false;
    for round in 0..rounds {
        // A round takes about half a second; 30 s means a hang.
        let mut dog = Watchdog::new(
            &format!("{TEST}, round {round}"),
            Duration::from_secs(30),
            vec![m.store.clone()],
        );
        let mut children = Vec::new();
        for w in 0..WRITERS {
            let env = vec![
                ("CRASH_MNT", m.mnt.display().to_string()),
                (
                    "CRASH_LOG",
                    out.join(format!("r{round}-w{w}.log")).display().to_string(),
                ),
                ("CRASH_SEED", rng.next().to_string()),
                ("CRASH_WRITER", w.to_string()),
                ("CRASH_ID_BASE", ((round + 1) << 40 | w << 36).to_string()),
            ];
            let c = spawn_role(TEST, "writer", &format!("r{round}-w{w}"), &out, &env);
            dog.watch(c.pid());
            children.push(c);
        }
        // Let the writers get going, then kill the daemon mid-flight.
        std::thread::sleep(Duration::from_millis(rng.range(30, 400)));
        let pid = daemon_pid(&m.store);
        if let Err(stuck) = kill9(pid) {
            // The mount would hang instead of failing with ENOTCONN: every
            // process on it, umount too, waits for a daemon that can
            // neither answer nor end. Abort the connection to go on.
            let aborted = abort_connections(&m.store);
            problems.push(format!(
                "round {round}: SIGKILL did not end the daemon, so its mount hung (aborted {aborted} FUSE connection(s) through fusectl to recover): {stuck}"
            ));
        }
        let results = wait_all(&mut children, Instant::now() + Duration::from_secs(20));
        for (label, status, output) in &results {
            if *status != Some(0) {
                problems.push(format!(
                    "round {round}: writer {label} ended with {status:?}:\n{output}"
                ));
            }
        }
        // The mount is dead now: every call on it fails with ENOTCONN.
        assert_eq!(
            outcome(std::fs::metadata(m.keys("anything"))),
            Err(Errno::ENOTCONN),
            "round {round}: after the kill the mount should be dead"
        );
        // The next mount reclaims what the killed daemon left in tmp/.
        let left = tmp_files(&m.store, "w.").len() + tmp_files(&m.store, "lock:").len();
        figures.left_in_tmp += left as u64;
        m.remount(ARGS);
        let reclaimed = eventually(10.0, || {
            tmp_files(&m.store, "w.").is_empty() && tmp_files(&m.store, "lock:").is_empty()
        });
        if reclaimed.is_err() {
            problems.push(format!(
                "round {round}: the killed daemon left {left} drafts and locks; 10 s after the next mount tmp/ still holds {:?} {:?}",
                tmp_files(&m.store, "w."),
                tmp_files(&m.store, "lock:")
            ));
        }

        // What may each key hold now?
        let mut allowed: BTreeMap<String, Vec<State>> = BTreeMap::new();
        for w in 0..WRITERS {
            let log =
                std::fs::read_to_string(out.join(format!("r{round}-w{w}.log"))).unwrap_or_default();
            replay(&log, &mut model, &mut allowed, &mut figures);
        }
        for (key, state) in &model {
            allowed
                .entry(key.clone())
                .or_insert_with(|| vec![state.clone()]);
        }
        for (key, states) in &allowed {
            let seen = observe(&m, key, &mut problems, round);
            figures.keys_checked += 1;
            if !states.contains(&seen) {
                problems.push(format!(
                    "round {round}: keys/{key} reads back as {seen:?}; after the kill it may only be one of {states:?}"
                ));
            }
            model.insert(key.clone(), seen);
        }
        // Nothing in keys/ that no writer made, nothing partial in stale/.
        match list_dir(&m.mnt.join("keys")) {
            Ok(names) => {
                for n in names {
                    let n = String::from_utf8_lossy(&n).into_owned();
                    if !matches!(model.get(&n), Some(Some(_))) {
                        problems.push(format!(
                            "round {round}: keys/ lists {n}, which should not be live"
                        ));
                    }
                }
            }
            Err(e) => problems.push(format!("round {round}: ls keys/: {e:?}")),
        }
        match list_dir(&m.mnt.join("stale")) {
            Ok(names) => {
                for n in names {
                    let path = m
                        .mnt
                        .join("stale")
                        .join(String::from_utf8_lossy(&n).as_ref());
                    match std::fs::read(&path) {
                        Ok(data) => {
                            figures.stale_checked += 1;
                            if let Err(e) = check_version(&data) {
                                problems.push(format!("round {round}: {}: {e}", path.display()));
                            }
                        }
                        Err(e) if e.to_errno() == Errno::ENOENT => {}
                        Err(e) => problems.push(format!("round {round}: {}: {e}", path.display())),
                    }
                }
            }
            Err(e) => problems.push(format!("round {round}: ls stale/: {e:?}")),
        }

        // tmp/ is reclaimed, and one cleanup is enough.
        let first = cleanup_json(&m.store);
        figures.reclaimed += removed_total(&first);
        for prefix in ["w.", "dead.", "reap.", "lock:"] {
            let left = tmp_files(&m.store, prefix);
            if !left.is_empty() {
                problems.push(format!(
                    "round {round}: after cleanup, tmp/ still holds {left:?}"
                ));
            }
        }
        let second = cleanup_json(&m.store);
        if removed_total(&second) != 0 {
            problems.push(format!("round {round}: a second cleanup still removed something: {second} (the first: {first})"));
        }
        // Whatever cleanup did, the entries are what they were.
        for (key, state) in &model {
            let seen = observe(&m, key, &mut problems, round);
            if &seen != state {
                problems.push(format!(
                    "round {round}: cleanup changed keys/{key} from {state:?} to {seen:?}"
                ));
            }
        }
        hung = dog.disarm();
        figures.rounds += 1;
        if hung || !problems.is_empty() {
            break;
        }
    }
    let panics = panics_in(&m.log());
    eprintln!(
        "{} of {rounds} rounds: {} operations logged, {} returned success, {} in flight at a kill; {} key states checked, {} stale versions checked whole; {} drafts and locks left by kills, all reclaimed by the next mount; cleanup then removed {} more items",
        figures.rounds,
        figures.ops,
        figures.ok,
        figures.in_flight,
        figures.keys_checked,
        figures.stale_checked,
        figures.left_in_tmp,
        figures.reclaimed
    );
    drop(m);
    assert!(!hung, "the watchdog fired: a round did not end in time");
    assert!(panics.is_empty(), "the daemon panicked: {panics:?}");
    assert!(
        problems.is_empty(),
        "{} problem(s) (TAGCACHEFS_SEED={seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[derive(Default)]
struct Figures {
    rounds: u64,
    ops: u64,
    ok: u64,
    in_flight: u64,
    keys_checked: u64,
    stale_checked: u64,
    reclaimed: u64,
    left_in_tmp: u64,
}

/// Reads `key` through the mount: its state, and any problem with it.
fn observe(m: &Mount, key: &str, problems: &mut Vec<String>, round: u64) -> State {
    let f = match open(&m.keys(key), libc::O_RDONLY) {
        Ok(f) => f,
        Err(Errno::ENOENT) => return None,
        Err(e) => {
            problems.push(format!("round {round}: open keys/{key}: {e:?}"));
            return None;
        }
    };
    let data = read_chunks(&f, 65536);
    let tags = get_xattr_fd(&f, "user.tags");
    drop(f);
    let id = match data
        .map_err(|e| format!("{e:?}"))
        .and_then(|d| check_version(&d))
    {
        Ok(id) => id,
        Err(e) => {
            problems.push(format!("round {round}: keys/{key}: {e}"));
            return Some((0, "torn".into()));
        }
    };
    let tags = match tags {
        Ok(t) if t.is_empty() => "-".to_string(),
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(e) => {
            problems.push(format!(
                "round {round}: getxattr user.tags of keys/{key}: {e:?}"
            ));
            "?".into()
        }
    };
    for t in tags.split(',').filter(|t| *t != "-") {
        let via = m.tag(t).join(key);
        match std::fs::read(&via).map(|d| check_version(&d)) {
            Ok(Ok(got)) if got == id => {}
            other => problems.push(format!(
                "round {round}: keys/{key} is version {id} carrying {tags}, but {} gives {other:?}",
                via.display()
            )),
        }
    }
    Some((id, tags))
}

/// Applies one round's log of one writer to the model; the operation in
/// flight at the kill (begun, not returned, or returned ENOTCONN) may or
/// may not have happened.
fn replay(
    log: &str,
    model: &mut BTreeMap<String, State>,
    allowed: &mut BTreeMap<String, Vec<State>>,
    figures: &mut Figures,
) {
    let mut begun: Option<Vec<String>> = None;
    let apply = |op: &[String], model: &BTreeMap<String, State>| -> (String, State) {
        let key = op[1].clone();
        let before = model.get(&key).cloned().flatten();
        let after = match op[0].as_str() {
            "w" | "x" => Some((op[2].parse().unwrap(), op[3].clone())),
            "r" => before.clone().map(|(id, _)| (id, op[2].clone())),
            "u" => None,
            other => panic!("unknown op {other}"),
        };
        (key, after)
    };
    for line in log.lines() {
        let f: Vec<String> = line.split(' ').map(str::to_string).collect();
        match f[0].as_str() {
            "B" => {
                figures.ops += 1;
                begun = Some(f[1..].to_vec());
            }
            "E" => {
                let op = begun.take().expect("an end without a begin");
                let rc = from_code(f[1].parse().unwrap());
                if rc.is_ok() {
                    figures.ok += 1;
                    let (key, after) = apply(&op, model);
                    model.insert(key, after);
                } else if matches!(rc, Err(Errno::ENOTCONN | Errno::ECONNABORTED)) {
                    begun = Some(op);
                    break;
                }
            }
            _ => panic!("bad log line {line:?}"),
        }
    }
    if let Some(op) = begun {
        figures.in_flight += 1;
        let (key, after) = apply(&op, model);
        let before = model.get(&key).cloned().flatten();
        allowed.insert(key, vec![before, after]);
    }
}

// ---------------------------------------------------------------------------
// The writer child: runs until the mount dies under it.

struct Log(std::fs::File);

impl Log {
    /// One line, one write(2), to a file outside the mount: it survives the
    /// daemon's death.
    fn line(&mut self, s: String) {
        self.0.write_all(format!("{s}\n").as_bytes()).unwrap();
    }
}

fn writer() {
    let mnt = env_path("CRASH_MNT");
    let mut log = Log(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(env_path("CRASH_LOG"))
        .unwrap());
    let mut rng = Rng::new(env_u64("CRASH_SEED"));
    let me = env_u64("CRASH_WRITER");
    let mut next_id = env_u64("CRASH_ID_BASE");
    let keys = |name: &str| mnt.join("keys").join(name);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let key = key_name(me, rng.below(KEYS_PER_WRITER));
        let mut tags: Vec<&str> = TAGS.iter().copied().filter(|_| rng.chance(40)).collect();
        tags.sort();
        let tag_s = if tags.is_empty() {
            "-".to_string()
        } else {
            tags.join(",")
        };
        next_id += 1;
        let id = next_id;
        let rc = match rng.below(100) {
            0..60 => {
                log.line(format!("B w {key} {id} {tag_s}"));
                commit(&keys(&key), id, &tags, libc::O_TRUNC, &mut rng)
            }
            60..70 => {
                log.line(format!("B x {key} {id} {tag_s}"));
                commit(&keys(&key), id, &tags, libc::O_EXCL, &mut rng)
            }
            70..80 => {
                log.line(format!("B r {key} {tag_s}"));
                set_xattr(&keys(&key), b"user.tags", tags.join(",").as_bytes())
            }
            _ => {
                log.line(format!("B u {key}"));
                unlink(&keys(&key))
            }
        };
        log.line(format!("E {}", code_of(&rc)));
        if matches!(rc, Err(Errno::ENOTCONN | Errno::ECONNABORTED)) {
            return;
        }
    }
    panic!("the daemon was not killed within 30 s");
}

/// Writes version `id` of a key through one descriptor: open (with `flag`:
/// O_TRUNC or O_EXCL), tags on the descriptor, the content in chunks,
/// close. The first error is the result.
fn commit(path: &Path, id: u64, tags: &[&str], flag: i32, rng: &mut Rng) -> Result<(), Errno> {
    let len = if rng.chance(70) {
        rng.range(HEADER as u64, 8192)
    } else {
        rng.range(8192, 400_000)
    } as usize;
    let chunk = *rng.pick(&[4096usize, 32768, 131072]);
    let f = open(path, libc::O_WRONLY | libc::O_CREAT | flag)?;
    let mut result = set_xattr_fd(&f, "user.tags", tags.join(",").as_bytes());
    if result.is_ok() {
        result = write_chunks(&f, &version_content(id, len), chunk);
    }
    let closed = close(f);
    result.and(closed)
}
