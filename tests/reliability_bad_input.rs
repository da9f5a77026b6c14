//! Bad input never hurts the daemon (SPEC §2 "anything else … a clear
//! errno, the store unchanged, the daemon still serving"; "Longer or
//! malformed: ENAMETOOLONG / EINVAL, never a crash").
//!
//! A seeded random loop of system calls on the mount with hostile names
//! (random bytes with '/', non-UTF-8, '.', '..', blanks, commas, around and
//! past the 125-byte limit and the kernel's 255) and hostile xattr values
//! for user.tags and user.expire (negative, huge, non-numeric, empty,
//! commas, blanks, NUL bytes), plus the refusal table's cases with their
//! exact errno. Every call succeeds or fails with a defined errno, never
//! EIO, ENOTCONN or ENOSYS; afterwards the daemon still serves, entries the
//! loop never touched are intact, and its log shows no panic.
//!
//! 5000 steps (at most 60 s) by default; `TAGCACHEFS_LONG=1` makes 100000
//! (at most 120 s), or `TAGCACHEFS_FUZZ_OPS`.

mod support;

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

/// The errnos a refusal may carry (SPEC §2, README "Refusals") and those
/// the kernel gives before asking the daemon (ENOTDIR, EISDIR, ENOTEMPTY,
/// ERANGE for a short xattr buffer, E2BIG for a value over 64 KiB, EBUSY
/// for renaming `..`).
const DEFINED: &[Errno] = &[
    Errno::EINVAL,
    Errno::ENAMETOOLONG,
    Errno::ENOENT,
    Errno::EEXIST,
    Errno::EOPNOTSUPP,
    Errno::EPERM,
    Errno::EROFS,
    Errno::EXDEV,
    Errno::ENODATA,
    Errno::ENOTDIR,
    Errno::EISDIR,
    Errno::ENOTEMPTY,
    Errno::ERANGE,
    Errno::E2BIG,
    Errno::EBUSY,
];

fn ops() -> u64 {
    amount("TAGCACHEFS_FUZZ_OPS", 5000, 100_000)
}

/// `dir/name`, joined as bytes: a name starting with '/' stays below `dir`
/// (`Path::join` would make it an absolute path on the host). Only a
/// whole name of `..` may climb, one level.
fn path_of(dir: &Path, name: &[u8]) -> PathBuf {
    let climbs = name.split(|&b| b == b'/').filter(|c| *c == b"..").count();
    let dir_climbs = dir
        .components()
        .any(|c| c == std::path::Component::ParentDir);
    assert!(
        !dir_climbs && (climbs == 0 || name == b".."),
        "test bug: {name:?} would leave the mount"
    );
    let mut bytes = dir.as_os_str().as_bytes().to_vec();
    bytes.push(b'/');
    bytes.extend_from_slice(name);
    let path = PathBuf::from(OsStr::from_bytes(&bytes));
    assert!(
        path.starts_with(dir),
        "test bug: {} is not below {}",
        path.display(),
        dir.display()
    );
    path
}

/// A hostile name. Never holds NUL (no system call can pass it) and never a
/// `..` component beside others (that would leave the mount, testing the
/// test's own temp dir instead).
fn hostile_name(rng: &mut Rng, known: &[Vec<u8>]) -> Vec<u8> {
    let printable = |rng: &mut Rng, n: usize| -> Vec<u8> {
        (0..n).map(|_| rng.range(0x21, 0x7e) as u8).collect()
    };
    let name = match rng.below(100) {
        0..20 => {
            let n = rng.range(1, 40) as usize;
            printable(rng, n)
        }
        20..35 => {
            let n = rng.range(1, 40) as usize;
            rng.bytes(n).into_iter().map(|b| b.max(1)).collect()
        }
        35..45 => {
            let n = rng.range(120, 130) as usize;
            printable(rng, n)
        }
        45..50 => {
            let n = rng.range(250, 300) as usize;
            vec![b'n'; n]
        }
        50..55 => rng
            .pick(&[&b"."[..], b"..", b"...", b" ", b"-", b"\n"])
            .to_vec(),
        55..65 => {
            let a = printable(rng, 3);
            let b = printable(rng, 3);
            [a, b"/".to_vec(), b].concat()
        }
        65..75 => rng
            .pick(&[
                &b"a b"[..],
                b"a,b",
                b" lead",
                b"trail ",
                b"tab\tx",
                b"nl\nx",
                b"comma,",
                b",",
                b"\xff\xfe",
                b"caf\xc3\xa9",
            ])
            .to_vec(),
        _ => rng.pick(known).clone(),
    };
    let bad_parent =
        name.split(|&b| b == b'/').count() > 1 && name.split(|&b| b == b'/').any(|c| c == b"..");
    if bad_parent { b"x".to_vec() } else { name }
}

fn hostile_tags(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        0..30 => {
            let n = rng.range(0, 4);
            (0..n)
                .map(|i| format!("t{}", (i + rng.below(6)) % 6))
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes()
        }
        30..80 => rng
            .pick(&[
                &b""[..],
                b",",
                b",,,",
                b" a , b ",
                b"a,,b",
                b"a b",
                b"a\tb",
                b"a\nb",
                b"a/b",
                b"a\0b",
                b"\0",
                b"\xff\xfe",
                b"..",
                b".",
                b"a,a,a",
                b" , , ",
            ])
            .to_vec(),
        80..90 => vec![b'g'; rng.range(120, 130) as usize],
        _ => {
            let n = rng.range(1, 30) as usize;
            rng.bytes(n)
        }
    }
}

fn hostile_expire(rng: &mut Rng) -> Vec<u8> {
    match rng.below(100) {
        0..20 => rng.range(0, 100_000).to_string().into_bytes(),
        _ => rng
            .pick(&[
                &b""[..],
                b"-1",
                b"-0",
                b"0",
                b"abc",
                b"1e3",
                b"0x10",
                b"+5",
                b" 5 ",
                b"5\n",
                b"5,6",
                b"4294967296",
                b"4294967297",
                b"18446744073709551615",
                b"18446744073709551616",
                b"99999999999999999999999999",
                b"3.5",
                b"\0",
                b"5\0",
                b"\xff",
            ])
            .to_vec(),
    }
}

struct Fuzz<'a> {
    m: &'a Mount,
    rng: Rng,
    calls: u64,
    outcomes: BTreeMap<String, u64>,
    bad: Vec<String>,
}

impl Fuzz<'_> {
    /// Records the outcome of one call.
    fn check(&mut self, what: String, r: Outcome) {
        self.calls += 1;
        let op = what.split(' ').next().unwrap_or("").to_string();
        let key = match r {
            Ok(()) => format!("{op} ok"),
            Err(e) => format!("{op} {e:?}"),
        };
        *self.outcomes.entry(key).or_default() += 1;
        if let Err(e) = r
            && !DEFINED.contains(&e)
        {
            self.bad.push(format!("{what} -> {e:?}"));
        }
    }

    fn step(&mut self, known: &[Vec<u8>]) {
        let keys = self.m.mnt.join("keys");
        let tags = self.m.mnt.join("tags");
        let name = hostile_name(&mut self.rng, known);
        let show = String::from_utf8_lossy(&name).escape_debug().to_string();
        let kp = path_of(&keys, &name);
        match self.rng.below(17) {
            0 => {
                // A whole write, with hostile xattrs on the descriptor.
                let flags = libc::O_WRONLY
                    | libc::O_CREAT
                    | *self
                        .rng
                        .pick(&[libc::O_TRUNC, libc::O_EXCL, libc::O_APPEND, 0]);
                match open(&kp, flags) {
                    Ok(f) => {
                        if self.rng.chance(50) {
                            let v = hostile_tags(&mut self.rng);
                            self.check(
                                format!("fsetxattr user.tags={v:?} on keys/{show}"),
                                set_xattr_fd(&f, "user.tags", &v),
                            );
                        }
                        if self.rng.chance(50) {
                            let v = hostile_expire(&mut self.rng);
                            self.check(
                                format!("fsetxattr user.expire={v:?} on keys/{show}"),
                                set_xattr_fd(&f, "user.expire", &v),
                            );
                        }
                        let n = self.rng.range(0, 5000) as usize;
                        let data = self.rng.bytes(n);
                        self.check(format!("write keys/{show}"), write_chunks(&f, &data, 4096));
                        self.check(format!("close keys/{show}"), close(f));
                    }
                    Err(e) => self.check(format!("open(O_CREAT) keys/{show}"), Err(e)),
                }
            }
            1 => {
                let r = open(&kp, libc::O_RDONLY).and_then(|f| read_chunks(&f, 65536).map(|_| ()));
                self.check(format!("read keys/{show}"), r);
            }
            2 => {
                let dir = if self.rng.chance(50) { &keys } else { &tags };
                let r = outcome(std::fs::symlink_metadata(path_of(dir, &name)));
                self.check(format!("stat {show}"), r);
            }
            3 => self.check(format!("unlink keys/{show}"), unlink(&kp)),
            4 => self.check(format!("mkdir tags/{show}"), mkdir(&path_of(&tags, &name))),
            5 => self.check(format!("rmdir tags/{show}"), rmdir(&path_of(&tags, &name))),
            6 => {
                let to = hostile_name(&mut self.rng, known);
                let dir = if self.rng.chance(70) {
                    keys.clone()
                } else {
                    path_of(&tags, b"t1")
                };
                let r = outcome(std::fs::rename(&kp, path_of(&dir, &to)));
                self.check(
                    format!(
                        "rename keys/{show} -> {}",
                        String::from_utf8_lossy(&to).escape_debug()
                    ),
                    r,
                );
            }
            7 => {
                let mut t = hostile_name(&mut self.rng, known);
                if t == b".." {
                    t = b"t1".to_vec(); // tags/../.. would be outside the mount
                }
                let r = outcome(std::fs::hard_link(&kp, path_of(&path_of(&tags, &t), &name)));
                self.check(
                    format!(
                        "link keys/{show} into tags/{}",
                        String::from_utf8_lossy(&t).escape_debug()
                    ),
                    r,
                );
            }
            8 => {
                let (xname, value): (&[u8], Vec<u8>) = match self.rng.below(6) {
                    0 | 1 => (b"user.tags", hostile_tags(&mut self.rng)),
                    2 | 3 => (b"user.expire", hostile_expire(&mut self.rng)),
                    4 => (
                        *self.rng.pick(&[
                            &b"user.other"[..],
                            b"user.",
                            b"user.tags2",
                            b"trusted.x",
                            b"security.x",
                            b"system.posix_acl_access",
                        ]),
                        b"1".to_vec(),
                    ),
                    _ => (
                        b"user.tags",
                        vec![b'a'; self.rng.range(60_000, 70_000) as usize],
                    ),
                };
                let r = set_xattr(&kp, xname, &value);
                let shown_value = String::from_utf8_lossy(&value[..value.len().min(40)])
                    .escape_debug()
                    .to_string();
                self.check(
                    format!(
                        "setxattr {}={shown_value:?} on keys/{show}",
                        String::from_utf8_lossy(xname)
                    ),
                    r,
                );
            }
            9 => {
                let xname: &[u8] = self.rng.pick::<&[u8]>(&[
                    &b"user.tags"[..],
                    b"user.expire",
                    b"user.other",
                    b"trusted.x",
                ]);
                let r = get_xattr(&kp, xname).map(|_| ());
                self.check(
                    format!("getxattr {} of keys/{show}", String::from_utf8_lossy(xname)),
                    r,
                );
                // A buffer too small for the value: ERANGE, nothing worse.
                let p = cpath(&kp);
                let n = CString::new(xname).unwrap();
                let mut buf = [0u8; 1];
                // SAFETY: valid C strings and buffer.
                let r =
                    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), 1) };
                self.check(
                    format!(
                        "getxattr(size 1) {} of keys/{show}",
                        String::from_utf8_lossy(xname)
                    ),
                    Errno::result(r).map(drop),
                );
            }
            10 => {
                let p = cpath(&kp);
                let mut buf = [0u8; 256];
                // SAFETY: valid C string and buffer.
                let r = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
                self.check(format!("listxattr keys/{show}"), Errno::result(r).map(drop));
                let xname: &[u8] =
                    self.rng
                        .pick::<&[u8]>(&[b"user.tags", b"user.expire", b"user.other"]);
                self.check(
                    format!(
                        "removexattr {} of keys/{show}",
                        String::from_utf8_lossy(xname)
                    ),
                    remove_xattr(&kp, xname),
                );
            }
            11 => {
                let r = outcome(std::os::unix::fs::symlink("/etc/passwd", &kp));
                self.check(format!("symlink keys/{show}"), r);
                let r = mknod(&kp, libc::S_IFIFO | 0o644, 0);
                self.check(format!("mknod keys/{show}"), r);
                let r = mkdir(&kp);
                self.check(format!("mkdir keys/{show}"), r);
            }
            12 => {
                // A hostile expiry by mtime: the past, the far future, past 2^32.
                let sec: i64 = *self.rng.pick(&[
                    -1i64,
                    0,
                    1,
                    1 << 31,
                    1 << 32,
                    (1 << 32) + 1,
                    1 << 40,
                    i64::MAX / 2,
                ]);
                let times = [
                    libc::timespec {
                        tv_sec: 0,
                        tv_nsec: libc::UTIME_OMIT,
                    },
                    libc::timespec {
                        tv_sec: sec,
                        tv_nsec: 0,
                    },
                ];
                let p = cpath(&kp);
                // SAFETY: a valid C string and times.
                let r = unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) };
                self.check(
                    format!("utimensat mtime={sec} keys/{show}"),
                    Errno::result(r).map(drop),
                );
            }
            13 => {
                let r = truncate(&kp, self.rng.range(0, 10) as i64);
                self.check(format!("truncate keys/{show}"), r);
                let mode = *self.rng.pick(&[0o644, 0o600, 0o777, 0o4755]);
                let r = outcome(std::fs::set_permissions(
                    &kp,
                    std::fs::Permissions::from_mode(mode),
                ));
                self.check(format!("chmod keys/{show}"), r);
            }
            14 => {
                // Names at the top and in stale/.
                let top = path_of(&self.m.mnt, if name == b".." { b"." } else { &name });
                let r = open(&top, libc::O_WRONLY | libc::O_CREAT).map(drop);
                self.check(format!("create /{show}"), r);
                let r = open(
                    &path_of(&self.m.mnt.join("stale"), &name),
                    libc::O_WRONLY | libc::O_CREAT,
                )
                .map(drop);
                self.check(format!("create stale/{show}"), r);
                let r = open(
                    &path_of(&path_of(&tags, b"t1"), &name),
                    libc::O_WRONLY | libc::O_CREAT,
                )
                .map(drop);
                self.check(format!("create tags/t1/{show}"), r);
            }
            15 => {
                let r = list_dir(&path_of(&tags, &name)).map(drop);
                self.check(format!("ls tags/{show}"), r);
                let r = list_dir(&keys).map(drop);
                self.check("ls keys/".into(), r);
            }
            _ => {
                // A write descriptor that dies without close: exec'd away
                // by nobody, just dropped after a hostile truncate.
                match open(&kp, libc::O_RDWR) {
                    Ok(f) => {
                        let r = outcome(f.set_len(self.rng.range(0, 1 << 20)));
                        self.check(format!("ftruncate keys/{show}"), r);
                        self.check(format!("close keys/{show}"), close(f));
                    }
                    Err(e) => self.check(format!("open(O_RDWR) keys/{show}"), Err(e)),
                }
            }
        }
    }
}

#[test]
fn hostile_names_and_xattr_values_get_defined_errnos_and_never_hurt_the_daemon() {
    let m = Mount::new(&["--cache-timeout", "0.2"]);
    let seed = seed("bad input");
    // Bounded by steps and by time, whichever ends first.
    let budget = Duration::from_secs(if long_mode() { 120 } else { 60 });
    let mut dog = Watchdog::new(
        "bad input",
        budget + Duration::from_secs(40),
        vec![m.store.clone()],
    );
    // Witnesses: entries the loop never names, with a tag it never names.
    for i in 0..3u64 {
        let f = open(
            &m.keys(&format!("witness-{i}")),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        )
        .unwrap();
        set_xattr_fd(&f, "user.tags", b"witness-tag").unwrap();
        write_chunks(&f, &version_content(i, 1000 + i as usize * 3000), 4096).unwrap();
        close(f).unwrap();
    }
    let known: Vec<Vec<u8>> = ["e0", "e1", "e2", "t1", "t2", "\u{e9}t\u{e9}"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    for k in &known {
        put(&m.keys(&String::from_utf8_lossy(k)), b"known", "t1", 0);
    }
    // The loop's paths stay inside the mount: nothing appears at the top
    // of the host's file system or beside the mount in its temp dir.
    let host_root = list_dir(Path::new("/")).unwrap();
    let mut fz = Fuzz {
        m: &m,
        rng: Rng::new(seed),
        calls: 0,
        outcomes: BTreeMap::new(),
        bad: Vec::new(),
    };
    let start = std::time::Instant::now();
    let mut n = 0;
    while n < ops() && start.elapsed() < budget && !dog.fired() {
        fz.step(&known);
        n += 1;
    }
    let (calls, outcomes, bad) = (fz.calls, fz.outcomes, fz.bad);
    eprintln!(
        "{n} steps, {calls} calls in {:.1} s; outcomes: {outcomes:?}",
        start.elapsed().as_secs_f64()
    );

    // Still serving, witnesses intact, no panic, no fault counted.
    let mut problems = bad;
    let now_root = list_dir(Path::new("/")).unwrap();
    let added: Vec<_> = now_root.iter().filter(|n| !host_root.contains(n)).collect();
    if !added.is_empty() {
        problems.push(format!("test bug: the loop created {added:?} in /"));
    }
    let beside: Vec<Vec<u8>> = list_dir(m.dir.path())
        .unwrap()
        .into_iter()
        .filter(|n| ![&b"store"[..], b"mnt", b"fast", b"daemon.log"].contains(&n.as_slice()))
        .collect();
    if !beside.is_empty() {
        problems.push(format!("the loop created {beside:?} beside the mount"));
    }
    for i in 0..3u64 {
        match std::fs::read(m.keys(&format!("witness-{i}"))).map(|d| check_version(&d)) {
            Ok(Ok(id)) if id == i => {}
            other => problems.push(format!("witness-{i} after the loop: {other:?}")),
        }
    }
    match list_dir(&m.tag("witness-tag")) {
        Ok(names) if names.len() == 3 => {}
        other => problems.push(format!("tags/witness-tag after the loop: {other:?}")),
    }
    put(&m.keys("after"), b"still serving", "", 0);
    match std::fs::read(m.keys("after")) {
        Ok(d) if d == b"still serving" => {}
        other => problems.push(format!("a write and read after the loop: {other:?}")),
    }
    let panics = panics_in(&m.log());
    if !panics.is_empty() {
        problems.push(format!("the daemon panicked: {panics:?}"));
    }
    let stats = m.stats();
    if stats["errors"].as_u64() != Some(0) {
        let log = m.log();
        let faults: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("ERROR"))
            .take(10)
            .collect::<Vec<_>>();
        problems.push(format!(
            "the daemon counted {} faults (EIO-class errors): {faults:#?}",
            stats["errors"]
        ));
    }
    let fired = dog.disarm();
    drop(m);
    assert!(!fired, "the watchdog fired: a call hung");
    assert!(
        problems.is_empty(),
        "TAGCACHEFS_SEED={seed}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Records `what` in `wrong` unless `got` is one of `want`.
fn expect(wrong: &mut Vec<String>, what: &str, got: Outcome, want: &[Outcome]) {
    let show = |r: &Outcome| match r {
        Ok(()) => "success".to_string(),
        Err(e) => format!("{e:?}"),
    };
    if !want.contains(&got) {
        wrong.push(format!(
            "{what}: got {}, expected one of {:?}",
            show(&got),
            want.iter().map(show).collect::<Vec<_>>()
        ));
    }
}

/// The refusal table, case by case, with the exact errno.
#[test]
fn malformed_names_tags_and_expiries_get_the_documented_errno() {
    let m = Mount::new(&[]);
    let keys = m.mnt.join("keys");
    let tags = m.mnt.join("tags");
    put(&m.keys("x"), b"content", "a", 0);
    let mut wrong = Vec::new();
    // With a write, so the commit is at close (a create alone commits at
    // the release that follows close()).
    let create = |name: &[u8]| {
        let f = open(
            &path_of(&keys, name),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
        )?;
        write_chunks(&f, b"v", 1)?;
        close(f)
    };

    // Names: up to 125 bytes, any bytes but '/' and NUL.
    expect(
        &mut wrong,
        "create a 125-byte name",
        create(&[b'n'; 125]),
        &[Ok(())],
    );
    expect(
        &mut wrong,
        "create a 126-byte name",
        create(&[b'n'; 126]),
        &[Err(Errno::ENAMETOOLONG)],
    );
    expect(
        &mut wrong,
        "create a 255-byte name",
        create(&[b'n'; 255]),
        &[Err(Errno::ENAMETOOLONG)],
    );
    expect(
        &mut wrong,
        "create a 256-byte name",
        create(&[b'n'; 256]),
        &[Err(Errno::ENAMETOOLONG)],
    );
    expect(
        &mut wrong,
        "create a non-UTF-8 name",
        create(b"\xff\xfe\x01 name,with blanks"),
        &[Ok(())],
    );
    match list_dir(&keys) {
        Ok(names)
            if names.contains(&b"\xff\xfe\x01 name,with blanks".to_vec())
                && names.contains(&vec![b'n'; 125]) => {}
        other => panic!("ls keys/ should show the odd names byte for byte: {other:?}"),
    }
    expect(
        &mut wrong,
        "create keys/.",
        create(b"."),
        &[Err(Errno::EISDIR), Err(Errno::EEXIST)],
    );
    expect(
        &mut wrong,
        "create keys/..",
        create(b".."),
        &[Err(Errno::EISDIR), Err(Errno::EEXIST)],
    );
    expect(
        &mut wrong,
        "mkdir tags/ with a 126-byte tag",
        mkdir(&path_of(&tags, &[b't'; 126])),
        &[Err(Errno::ENAMETOOLONG)],
    );
    expect(
        &mut wrong,
        "mkdir tags/ with a 125-byte tag",
        mkdir(&path_of(&tags, &[b't'; 125])),
        &[Ok(())],
    );
    expect(
        &mut wrong,
        "mkdir tags/'a b'",
        mkdir(&path_of(&tags, b"a b")),
        &[Err(Errno::EINVAL)],
    );
    expect(
        &mut wrong,
        "mkdir tags/'a,b'",
        mkdir(&path_of(&tags, b"a,b")),
        &[Err(Errno::EINVAL)],
    );
    expect(
        &mut wrong,
        "mkdir tags/'a\\tb'",
        mkdir(&path_of(&tags, b"a\tb")),
        &[Err(Errno::EINVAL)],
    );
    expect(
        &mut wrong,
        "mkdir keys/d",
        mkdir(&path_of(&keys, b"d")),
        &[Err(Errno::EPERM)],
    );

    // user.tags.
    let x = m.keys("x");
    let set = |name: &[u8], v: &[u8]| set_xattr(&x, name, v);
    expect(
        &mut wrong,
        "user.tags 'a b'",
        set(b"user.tags", b"a b"),
        &[Err(Errno::EINVAL)],
    );
    expect(
        &mut wrong,
        "user.tags 'a/b'",
        set(b"user.tags", b"a/b"),
        &[Err(Errno::EINVAL)],
    );
    expect(
        &mut wrong,
        "user.tags 'a\\0b'",
        set(b"user.tags", b"a\0b"),
        &[Err(Errno::EINVAL)],
    );
    expect(
        &mut wrong,
        "user.tags with a 126-byte tag",
        set(b"user.tags", &[b'g'; 126]),
        &[Err(Errno::ENAMETOOLONG)],
    );
    assert_eq!(
        get_xattr(&x, b"user.tags"),
        Ok(b"a".to_vec()),
        "refused tag lists change nothing"
    );
    expect(
        &mut wrong,
        "user.tags ' b , a ,, b '",
        set(b"user.tags", b" b , a ,, b "),
        &[Ok(())],
    );
    assert_eq!(
        get_xattr(&x, b"user.tags"),
        Ok(b"a,b".to_vec()),
        "blanks around names and empty items are ignored"
    );
    expect(
        &mut wrong,
        "user.tags '' (no tags)",
        set(b"user.tags", b""),
        &[Ok(())],
    );
    assert_eq!(get_xattr(&x, b"user.tags"), Ok(Vec::new()));
    expect(
        &mut wrong,
        "user.tags non-UTF-8",
        set(b"user.tags", b"\xff\xfe"),
        &[Ok(())],
    );
    match list_dir(&tags) {
        Ok(names) if names.contains(&b"\xff\xfe".to_vec()) => {}
        other => wrong.push(format!(
            "a non-UTF-8 tag is listed in tags/ byte for byte: {other:?}"
        )),
    }

    // user.expire: a whole number of seconds, at most 2^32.
    for bad in [
        &b"-1"[..],
        b"abc",
        b"",
        b"1e3",
        b"0x10",
        b"3.5",
        b"4294967297",
        b"18446744073709551616",
        b"5,6",
        b"\0",
    ] {
        expect(
            &mut wrong,
            &format!("user.expire {:?}", String::from_utf8_lossy(bad)),
            set(b"user.expire", bad),
            &[Err(Errno::EINVAL)],
        );
    }
    expect(
        &mut wrong,
        "user.expire 4294967296",
        set(b"user.expire", b"4294967296"),
        &[Ok(())],
    );
    expect(
        &mut wrong,
        "user.expire 3600",
        set(b"user.expire", b"3600"),
        &[Ok(())],
    );
    let left: u64 = String::from_utf8(get_xattr(&x, b"user.expire").unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (3590..=3600).contains(&left),
        "user.expire reads back the seconds left: {left}"
    );

    // Other names.
    expect(
        &mut wrong,
        "setxattr user.other",
        set(b"user.other", b"1"),
        &[Err(Errno::EOPNOTSUPP)],
    );
    expect(
        &mut wrong,
        "getxattr user.other",
        get_xattr(&x, b"user.other").map(drop),
        &[Err(Errno::ENODATA)],
    );
    expect(
        &mut wrong,
        "setxattr trusted.x",
        set(b"trusted.x", b"1"),
        &[Err(Errno::EOPNOTSUPP)],
    );
    let sym = path_of(&keys, b"sym");
    expect(
        &mut wrong,
        "symlink in keys/",
        outcome(std::os::unix::fs::symlink("/etc/passwd", &sym)),
        &[Err(Errno::EPERM)],
    );
    expect(
        &mut wrong,
        "mknod in keys/",
        mknod(&sym, libc::S_IFIFO | 0o644, 0),
        &[Err(Errno::EPERM)],
    );
    let r = outcome(std::fs::rename(&x, m.tag("a").join("x")));
    expect(
        &mut wrong,
        "mv keys/x tags/a/x",
        r,
        &[Err(Errno::EXDEV), Err(Errno::ENOENT)],
    );
    assert_eq!(
        std::fs::read(&x).unwrap(),
        b"content",
        "keys/x after all the refusals"
    );
    assert_eq!(panics_in(&m.log()), Vec::<String>::new());
    drop(m);
    assert!(
        wrong.is_empty(),
        "{} wrong answer(s):\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
