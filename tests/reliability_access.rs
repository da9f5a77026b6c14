//! Who may use the mount (SPEC §4 "Without --allow-other, only the mounting
//! user can use the mount"; README: with it, file modes are enforced).
//!
//! A second user is `nobody` (uid/gid 65534): this test binary re-run
//! through `setpriv --reuid=65534 --regid=65534 --clear-groups` as a probe
//! that makes the system calls it is told to and prints their errno.

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use support::*;

/// The test whose name the probe is started under.
const TEST: &str = "without_allow_other_another_user_can_neither_read_nor_list";
const NOBODY: &str = "65534";

/// The probe: runs `PROBE_STEPS` ("op<TAB>path" lines) as whoever it was
/// started as; prints "op<TAB>path<TAB>errno" (0 = success).
fn probe() {
    let steps = std::env::var("PROBE_STEPS").unwrap();
    let mut out = std::io::stdout().lock();
    for line in steps.lines() {
        let (op, path) = line.split_once('\t').unwrap();
        let p = Path::new(path);
        let r: Outcome = match op {
            "stat" => outcome(std::fs::metadata(p)),
            "list" => list_dir(p).map(drop),
            "read" => open(p, libc::O_RDONLY)
                .and_then(|f| read_chunks(&f, 4096))
                .map(drop),
            "write" => open(p, libc::O_WRONLY)
                .and_then(|f| write_chunks(&f, b"nobody was here", 4096).and(close(f))),
            "create" => open(p, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL)
                .and_then(|f| write_chunks(&f, b"nobody's", 4096).and(close(f))),
            "unlink" => unlink(p),
            "rmdir" => rmdir(p),
            "mkdir" => mkdir(p),
            "settags" => set_xattr(p, b"user.tags", b"nobody"),
            "gettags" => get_xattr(p, b"user.tags").map(drop),
            other => panic!("unknown probe op {other}"),
        };
        writeln!(out, "PROBE\t{op}\t{path}\t{}", code_of(&r)).unwrap();
    }
    out.flush().unwrap();
    std::process::exit(0);
}

/// Runs `steps` as nobody; returns "op path" → outcome.
fn as_nobody(steps: &[(&str, &Path)]) -> BTreeMap<String, Outcome> {
    let text: String = steps
        .iter()
        .map(|(op, p)| format!("{op}\t{}\n", p.display()))
        .collect();
    let out = Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, "probe")
        .env("PROBE_STEPS", text)
        .output()
        .expect("running setpriv (util-linux)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the probe as nobody failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: BTreeMap<String, Outcome> = stdout
        .lines()
        .filter_map(|l| l.split_once("PROBE\t").map(|(_, rest)| rest))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (
                format!("{} {}", f[0], f[1]),
                from_code(f[2].parse().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        results.len(),
        steps.len(),
        "the probe answered every step: {stdout}"
    );
    results
}

fn show(r: Outcome) -> String {
    match r {
        Ok(()) => "success".into(),
        Err(e) => format!("{e:?}"),
    }
}

#[test]
fn without_allow_other_another_user_can_neither_read_nor_list() {
    if role().is_some() {
        probe();
    }
    let m = Mount::new(&[]);
    open_up(m.dir.path());
    put(&m.keys("x"), b"private", "t", 0);
    let keys = m.mnt.join("keys");
    let x = m.keys("x");
    let stats = m.mnt.join(".stats");
    let got = as_nobody(&[
        ("stat", m.dir.path()),
        ("stat", &m.mnt),
        ("list", &m.mnt),
        ("list", &keys),
        ("read", &x),
        ("read", &stats),
        ("write", &x),
    ]);
    let mut wrong = Vec::new();
    for (step, r) in &got {
        let want: &[Outcome] =
            if step.starts_with("stat") && step.ends_with(&*m.dir.path().to_string_lossy()) {
                &[Ok(())] // the temp dir itself is open to nobody: any refusal is the mount's
            } else {
                &[Err(Errno::EACCES), Err(Errno::EPERM)]
            };
        if !want.contains(r) {
            wrong.push(format!("{step} as nobody: {}", show(*r)));
        }
    }
    // The mounting user is not affected, and nothing changed.
    assert_eq!(std::fs::read(&x).unwrap(), b"private");
    drop(m);
    assert!(
        wrong.is_empty(),
        "without --allow-other:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn with_allow_other_modes_are_enforced() {
    let m = Mount::new(&["--allow-other"]);
    open_up(m.dir.path());
    put(&m.keys("x"), b"shared", "t", 0);
    let x = m.keys("x");
    let via_tag = m.tag("t").join("x");
    let new = m.keys("new");
    let tag = m.tag("t");
    let new_tag = m.tag("u");
    let keys = m.mnt.join("keys");
    let expect: Vec<(&str, &Path, &[Outcome])> = vec![
        ("stat", &m.mnt, &[Ok(())]),
        ("list", &keys, &[Ok(())]),
        ("list", &tag, &[Ok(())]),
        ("read", &x, &[Ok(())]),
        ("read", &via_tag, &[Ok(())]),
        ("gettags", &x, &[Ok(())]),
        // 0644 files and 0755 directories owned by the mounting user.
        ("write", &x, &[Err(Errno::EACCES)]),
        ("create", &new, &[Err(Errno::EACCES)]),
        ("unlink", &x, &[Err(Errno::EACCES)]),
        ("rmdir", &tag, &[Err(Errno::EACCES)]),
        ("mkdir", &new_tag, &[Err(Errno::EACCES)]),
        ("settags", &x, &[Err(Errno::EACCES), Err(Errno::EPERM)]),
    ];
    let steps: Vec<(&str, &Path)> = expect.iter().map(|(op, p, _)| (*op, *p)).collect();
    let got = as_nobody(&steps);
    let mut wrong = Vec::new();
    for (op, p, want) in &expect {
        let r = got[&format!("{op} {}", p.display())];
        if !want.contains(&r) {
            wrong.push(format!(
                "{op} {} as nobody: {}, expected {:?}",
                p.display(),
                show(r),
                want.iter().map(|r| show(*r)).collect::<Vec<_>>()
            ));
        }
    }
    // Nothing nobody tried changed anything.
    assert_eq!(std::fs::read(&x).unwrap(), b"shared");
    assert_eq!(get_xattr(&x, b"user.tags"), Ok(b"t".to_vec()));
    assert!(tag.is_dir() && !new_tag.exists() && !new.exists());
    drop(m);
    assert!(
        wrong.is_empty(),
        "with --allow-other:\n{}",
        wrong.join("\n")
    );
}
