//! SIGKILL to every process of the daemon (the daemon and its guardian
//! together, as `pkill -9 tagcachefs` or `systemctl kill -s KILL` do)
//! never leaves a client blocked: `tagcachefs STORE MNT` on the dead mount
//! point takes it over, aborting the dead connection, and every commit
//! that returned reads back whole (SPEC §3, §4).
//!
//! Each round: writer processes commit self-checking versions to their own
//! keys (tag `keep`, never removed), a churn process commits entries tagged
//! `a`/`b` and removes those tags, lists and looks names up, a reader reads
//! through the fast view; every process of the daemon is killed at a random
//! moment; the same command mounts again at once. Then no client may be in
//! state D, every client ends, and each writer's key holds its last
//! acknowledged version or the one in flight, whole.
//!
//! 20 rounds by default; `TAGCACHEFS_LONG=1` runs 100 (or
//! `TAGCACHEFS_KILL_ROUNDS`).

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

const TEST: &str = "killing_every_process_of_the_daemon_leaves_no_client_blocked";
const WRITERS: u64 = 2;
const KEYS_PER_WRITER: u64 = 3;
const ARGS: &[&str] = &["--read-mount", "@fast", "--cache-timeout", "1"];

fn rounds() -> u64 {
    amount("TAGCACHEFS_KILL_ROUNDS", 20, 100)
}

fn key_name(writer: u64, k: u64) -> String {
    format!("w{writer}-k{k}")
}

/// Every process of the daemon serving `store`: the daemon and its
/// guardian (which names the daemon's pid).
fn every_daemon_process(store: &Path) -> Vec<i32> {
    let daemons = daemon_pids(store);
    let mut all = daemons.clone();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
        let parent = args
            .get(3)
            .and_then(|a| std::str::from_utf8(a).ok()?.parse::<i32>().ok());
        if args.first() == Some(&&b"tagcachefs-guardian"[..])
            && parent.is_some_and(|p| daemons.contains(&p))
        {
            all.push(pid);
        }
    }
    all
}

/// Threads of `pid` (a client) blocked in state D.
fn blocked_threads(pid: i32) -> usize {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    rd.flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .is_ok_and(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('D')))
        })
        .count()
}

#[test]
fn killing_every_process_of_the_daemon_leaves_no_client_blocked() {
    match role().as_deref() {
        Some("writer") => return client(Client::Writer),
        Some("churn") => return client(Client::Churn),
        Some("reader") => return client(Client::Reader),
        Some("creator") => return client(Client::Creator),
        _ => {}
    }
    let rounds = rounds();
    let seed = seed(TEST);
    let mut rng = Rng::new(seed);
    let mut m = Mount::new(ARGS);
    let out = m.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    // The last version each writer's close acknowledged, per key.
    let mut acked: BTreeMap<String, u64> = BTreeMap::new();
    let (mut killed, mut freed, mut blocked_seen, mut checked) = (0, 0, 0, 0);
    let mut problems = Vec::new();
    for round in 0..rounds {
        let mut dog = Watchdog::new(
            &format!("{TEST}, round {round}"),
            Duration::from_secs(40),
            vec![m.store.clone()],
        );
        let mut children = Vec::new();
        let roles = (0..WRITERS).map(|w| ("writer", w)).chain([
            ("churn", 0),
            ("reader", 0),
            ("creator", 0),
            ("creator", 1),
        ]);
        for (role, w) in roles {
            let env = vec![
                ("KILL_MNT", m.mnt.display().to_string()),
                ("KILL_FAST", m.fast.display().to_string()),
                (
                    "KILL_LOG",
                    out.join(format!("r{round}-{role}{w}.log"))
                        .display()
                        .to_string(),
                ),
                ("KILL_SEED", rng.next().to_string()),
                ("KILL_WRITER", w.to_string()),
                ("KILL_ID_BASE", ((round + 1) << 40 | w << 36).to_string()),
            ];
            let c = spawn_role(TEST, role, &format!("r{round}-{role}{w}"), &out, &env);
            dog.watch(c.pid());
            children.push(c);
        }
        std::thread::sleep(Duration::from_millis(rng.range(100, 600)));
        let victims = every_daemon_process(&m.store);
        for &pid in &victims {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
        let blocked: Vec<i32> = children
            .iter()
            .map(|c| c.pid())
            .filter(|&p| blocked_threads(p) > 0)
            .collect();
        blocked_seen += blocked.len();
        // The same command again: it takes the dead mount over.
        m.take_over(ARGS);
        let results = wait_all(&mut children, Instant::now() + Duration::from_secs(20));
        for (label, status, output) in &results {
            if *status != Some(0) {
                problems.push(format!(
                    "round {round}: client {label} ended with {status:?}:\n{output}"
                ));
            }
        }
        freed += blocked.len();
        for c in &children {
            if blocked_threads(c.pid()) > 0 {
                problems.push(format!("round {round}: client {} still blocked", c.label));
            }
        }
        // Each writer key: its last acknowledged version, or a later one
        // that was in flight; whole.
        for w in 0..WRITERS {
            let log = std::fs::read_to_string(out.join(format!("r{round}-writer{w}.log")))
                .unwrap_or_default();
            let mut in_flight: BTreeMap<String, u64> = BTreeMap::new();
            for line in log.lines() {
                let f: Vec<&str> = line.split(' ').collect();
                match f.as_slice() {
                    ["C", id, key] => {
                        in_flight.insert(key.to_string(), id.parse().unwrap());
                    }
                    ["K", id, key] => {
                        acked.insert(key.to_string(), id.parse().unwrap());
                    }
                    ["V", ..] => problems.push(format!("round {round}: {line}")),
                    _ => {}
                }
            }
            for k in 0..KEYS_PER_WRITER {
                let key = key_name(w, k);
                let Some(&last) = acked.get(&key) else {
                    continue;
                };
                let newest = in_flight.get(&key).copied().unwrap_or(last).max(last);
                checked += 1;
                match read(&m.keys(&key)).map(|d| check_version(&d)) {
                    Ok(Ok(id)) if id >= last && id <= newest => {
                        acked.insert(key.clone(), id);
                    }
                    other => problems.push(format!(
                        "round {round}: keys/{key} read {other:?}; acknowledged {last}, newest {newest}"
                    )),
                }
            }
        }
        for name in ["reader0", "churn0"] {
            let log = std::fs::read_to_string(out.join(format!("r{round}-{name}.log")))
                .unwrap_or_default();
            for line in log.lines().filter(|l| l.starts_with("V ")) {
                problems.push(format!("round {round}: {name}: {line}"));
            }
        }
        if dog.disarm() {
            problems.push(format!("round {round}: the watchdog fired"));
        }
        if !problems.is_empty() {
            break;
        }
    }
    eprintln!(
        "{rounds} rounds: {killed} daemon processes killed; {blocked_seen} clients found blocked after a kill, {freed} freed by the takeover; {checked} acknowledged commits read back whole"
    );
    let panics = panics_in(&m.log());
    // Unmounting is watched too: a hang there would hold the whole run.
    let mut dog = Watchdog::new(
        &format!("{TEST}, unmounting"),
        Duration::from_secs(40),
        vec![m.store.clone()],
    );
    drop(m);
    assert!(!dog.disarm(), "unmounting hung");
    assert!(panics.is_empty(), "the daemon panicked: {panics:?}");
    assert!(
        problems.is_empty(),
        "{} problem(s) (TAGCACHEFS_SEED={seed}):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

enum Client {
    Writer,
    Churn,
    Reader,
    /// New names in keys/, one after another: each CREATE holds keys/
    /// while it waits for the daemon, the lock a commit's invalidation of
    /// a name in keys/ needs.
    Creator,
}

/// A client's loop, until the mount dies under it (ENOTCONN, ECONNABORTED:
/// the kill) or 10 s pass. Logs what a check needs; a `V` line is a
/// violation.
fn client(which: Client) {
    let mnt = env_path("KILL_MNT");
    let fast = env_path("KILL_FAST");
    let mut log = std::fs::File::create(env_path("KILL_LOG")).unwrap();
    let mut rng = Rng::new(env_u64("KILL_SEED"));
    let writer = env_u64("KILL_WRITER");
    let mut id = env_u64("KILL_ID_BASE");
    let end = Instant::now() + Duration::from_secs(10);
    let dead = |e: Errno| matches!(e, Errno::ENOTCONN | Errno::ECONNABORTED);
    while Instant::now() < end {
        let result: Result<(), Errno> = match which {
            Client::Writer => {
                let key = key_name(writer, rng.below(KEYS_PER_WRITER));
                id += 1;
                writeln!(log, "C {id} {key}").unwrap();
                log.flush().unwrap();
                let len = if rng.chance(80) { 4096 } else { 60_000 };
                let data = version_content(id, rng.range(HEADER as u64, len) as usize);
                let path = if rng.chance(50) {
                    mnt.join("put/tags=keep").join(&key)
                } else {
                    mnt.join("keys").join(&key)
                };
                commit(&path, &data).inspect(|()| {
                    writeln!(log, "K {id} {key}").unwrap();
                    log.flush().unwrap();
                })
            }
            Client::Churn => {
                let tag = *rng.pick(&["a", "b"]);
                match rng.below(4) {
                    0 => commit(&mnt.join(format!("put/tags={tag}/c{}", rng.below(5))), b"c"),
                    1 => rmdir(&mnt.join("tags").join(tag))
                        .or_else(|e| if e == Errno::ENOENT { Ok(()) } else { Err(e) }),
                    2 => list_dir(&mnt.join("keys")).map(drop),
                    _ => list_dir(&mnt.join("tags").join(tag))
                        .map(drop)
                        .or_else(|e| if e == Errno::ENOENT { Ok(()) } else { Err(e) }),
                }
            }
            Client::Creator => {
                id += 1;
                commit(&mnt.join("keys").join(format!("n{writer}-{id}")), b"n")
            }
            Client::Reader if rng.chance(20) => list_dir(&fast.join("keys")).map(drop),
            Client::Reader => {
                let key = key_name(rng.below(WRITERS), rng.below(KEYS_PER_WRITER));
                match read(&fast.join("keys").join(&key)) {
                    Ok(data) => {
                        if let Err(e) = check_version(&data) {
                            writeln!(log, "V fast/keys/{key}: {e}").unwrap();
                        }
                        Ok(())
                    }
                    Err(Errno::ENOENT) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(()) => {}
            Err(e) if dead(e) => break,
            // A commit whose tag an rmdir removed meanwhile is refused.
            Err(Errno::ESTALE) => {}
            Err(e) => {
                writeln!(log, "V unexpected {e}").unwrap();
                break;
            }
        }
    }
    log.flush().unwrap();
    std::process::exit(0);
}

fn commit(path: &Path, data: &[u8]) -> Result<(), Errno> {
    let f = open(path, libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC)?;
    write_chunks(&f, data, 65536)?;
    close(f)
}
