//! Turning a hang into a failure: a deadlocked mount must fail its test,
//! not block it (and the test run) forever.

use std::path::Path;
use std::time::Duration;

/// Runs `work` on another thread and fails the test if it has not finished
/// within `secs` (a deadlocked mount): the mount's FUSE connection is then
/// aborted through fusectl, so that the stuck calls return and the test
/// process can end.
pub fn deadline<T: Send + 'static>(
    secs: u64,
    mnt: &Path,
    work: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    match rx.recv_timeout(Duration::from_secs(secs)) {
        Ok(v) => v,
        Err(_) => {
            abort_connection(mnt);
            panic!("not done within {secs} s: the mount is deadlocked");
        }
    }
}

fn abort_connection(mnt: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let want = mnt.display().to_string();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() > 4 && f[4] == want {
            let minor = f[2].split(':').nth(1).unwrap_or("");
            let conns = Path::new("/sys/fs/fuse/connections");
            if std::fs::read_dir(conns)
                .map(|mut d| d.next().is_none())
                .unwrap_or(true)
            {
                let _ = std::process::Command::new("mount")
                    .args(["-t", "fusectl", "none"])
                    .arg(conns)
                    .status();
            }
            let _ = std::fs::write(conns.join(minor).join("abort"), "1");
        }
    }
}
