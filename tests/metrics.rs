//! Metrics as a scraper reads them: `stats --format prometheus` and the
//! daemon's `/metrics`, parsed by the Prometheus project's own Python
//! parser (`prometheus_client`, installed from PyPI into a venv under
//! target/), and moving as a user drives the mount.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::*;

/// The parser's version, pinned so that a new release cannot change what
/// the test checks.
const PROMETHEUS_CLIENT: &str = "prometheus-client==0.26.0";

/// Reads the exposition from stdin or from the URL in argv[1] and prints
/// what the parser made of it as JSON.
const PARSE: &str = r#"
import json, sys, urllib.request
from prometheus_client.parser import text_string_to_metric_families
ctype = None
if len(sys.argv) > 1:
    with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
        ctype = r.headers.get("Content-Type")
        text = r.read().decode()
else:
    text = sys.stdin.read()
out = {"content_type": ctype, "families": {}, "samples": {}}
for fam in text_string_to_metric_families(text):
    out["families"][fam.name] = fam.type
    for s in fam.samples:
        labels = "".join("{%s=%s}" % kv for kv in sorted(s.labels.items()))
        out["samples"][s.name + labels] = s.value
print(json.dumps(out))
"#;

/// target/, from this test binary's path (target/debug/deps/metrics-…).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().to_path_buf()
}

/// The venv's python, made once (under a lock: nextest runs every test in
/// a process of its own, at the same time).
fn python() -> PathBuf {
    let venv = target_dir().join("prometheus-venv");
    let python = venv.join("bin/python");
    let ready = venv.join(".ready");
    let lock = std::fs::File::create(target_dir().join("prometheus-venv.lock")).unwrap();
    // SAFETY: flock on a descriptor we own; released when it closes.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if !ready.exists() {
        let _ = std::fs::remove_dir_all(&venv);
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .output()
            .expect("python3 (scripts/test installs it)");
        assert!(
            made.status.success(),
            "python3 -m venv (Debian package python3-venv): {}",
            String::from_utf8_lossy(&made.stderr)
        );
        let pip = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                PROMETHEUS_CLIENT,
            ])
            .output()
            .unwrap();
        assert!(
            pip.status.success(),
            "pip install {PROMETHEUS_CLIENT}: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
        std::fs::write(&ready, "").unwrap();
    }
    python
}

/// What the parser read: each sample's value by `name{label=value}`, each
/// family's type, and the HTTP content type.
#[derive(Debug)]
struct Parsed {
    samples: BTreeMap<String, f64>,
    families: BTreeMap<String, String>,
    content_type: Option<String>,
}

impl Parsed {
    fn get(&self, sample: &str) -> f64 {
        *self
            .samples
            .get(sample)
            .unwrap_or_else(|| panic!("no sample {sample} in {:#?}", self.samples))
    }
}

fn parse(input: Input) -> Parsed {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(PARSE);
    let out = match input {
        Input::Text(text) => {
            use std::io::Write;
            let mut child = cmd
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        }
        Input::Url(url) => cmd.arg(url).output().unwrap(),
    };
    assert!(
        out.status.success(),
        "the Prometheus parser refused it: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let map = |key: &str| -> serde_json::Map<String, serde_json::Value> {
        v[key].as_object().unwrap().clone()
    };
    Parsed {
        samples: map("samples")
            .into_iter()
            .map(|(k, v)| (k, v.as_f64().unwrap()))
            .collect(),
        families: map("families")
            .into_iter()
            .map(|(k, v)| (k, v.as_str().unwrap().to_string()))
            .collect(),
        content_type: v["content_type"].as_str().map(str::to_string),
    }
}

enum Input<'a> {
    Text(&'a str),
    Url(&'a str),
}

fn stats_prometheus(path: &Path) -> String {
    let out = tool(&[
        "stats".as_ref(),
        path.as_os_str(),
        "--format".as_ref(),
        "prometheus".as_ref(),
    ]);
    assert!(
        out.status.success(),
        "stats --format prometheus: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A write (one commit), a hit and a miss through the mount.
fn drive(m: &Mount) {
    put(&m.keys("a"), b"hello", "t", 0);
    assert_eq!(read(&m.keys("a")).unwrap(), b"hello");
    assert!(read(&m.keys("absent")).is_err());
}

fn assert_moved(before: &Parsed, after: &Parsed) {
    let moved = |s: &str| after.get(s) - before.get(s);
    assert_eq!(moved("tagcachefs_commits_total"), 1.0, "a write commits");
    assert_eq!(
        moved("tagcachefs_lookups_total{result=hit}"),
        1.0,
        "a read hits"
    );
    assert!(moved("tagcachefs_lookups_total{result=miss}") >= 1.0);
    assert_eq!(moved("tagcachefs_written_bytes_total"), 5.0);
    assert_eq!(after.get("tagcachefs_commit_errors_total"), 0.0);
    assert_eq!(
        after.get(&format!(
            "tagcachefs_build_info{{version={}}}",
            env!("CARGO_PKG_VERSION")
        )),
        1.0
    );
    // The parser names a counter's family without its _total.
    assert_eq!(after.families["tagcachefs_commits"], "counter");
    assert_eq!(after.families["tagcachefs_lookups"], "counter");
    assert_eq!(after.families["tagcachefs_store_entries"], "gauge");
    assert_eq!(after.families["tagcachefs_kernel_nodes"], "gauge");
}

#[test]
fn stats_format_prometheus_parses_and_counters_move_with_the_mount() {
    let m = Mount::new(&[]);
    let before = parse(Input::Text(&stats_prometheus(&m.mnt)));
    drive(&m);
    let after = parse(Input::Text(&stats_prometheus(&m.mnt)));
    assert_moved(&before, &after);
    assert_eq!(after.get("tagcachefs_store_entries{state=live}"), 1.0);
    assert_eq!(after.get("tagcachefs_store_bytes{state=live}"), 5.0);
    assert_eq!(after.get("tagcachefs_store_tags"), 1.0);

    // A store without a daemon: its figures, no counters.
    let store_only = parse(Input::Text(&stats_prometheus(&m.store)));
    assert_eq!(store_only.get("tagcachefs_store_entries{state=live}"), 1.0);
    assert!(!store_only.samples.contains_key("tagcachefs_commits_total"));
}

#[test]
fn metrics_addr_serves_the_same_on_http_and_counters_move() {
    let port = free_port();
    let m = Mount::new(&["--metrics-addr", &format!("127.0.0.1:{port}")]);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let before = parse(Input::Url(&url));
    assert_eq!(
        before.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    drive(&m);
    let after = parse(Input::Url(&url));
    assert_moved(&before, &after);
    // The store's figures are counted in the background and carry their age.
    assert!(after.get("tagcachefs_store_figures_age_seconds") >= 0.0);
    assert!(
        after
            .samples
            .contains_key("tagcachefs_store_entries{state=live}")
    );
}

#[test]
fn metrics_addr_as_a_mount_option_and_its_refusals() {
    let port = free_port();
    let m = Mount::new(&["-o", &format!("metrics_addr=127.0.0.1:{port},nofail")]);
    let parsed = parse(Input::Url(&format!("http://127.0.0.1:{port}/metrics")));
    assert!(parsed.samples.contains_key("tagcachefs_commits_total"));

    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mount = |addr: String| {
        Command::new(BIN)
            .arg(dir.path().join("store"))
            .arg(&mnt)
            .args(["-o", &format!("metrics_addr={addr}")])
            .output()
            .unwrap()
    };
    let out = mount("0.0.0.0:9".into());
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    // The port the first mount serves on is taken: the mount fails whole.
    let out = mount(format!("127.0.0.1:{port}"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains(&format!("metrics_addr 127.0.0.1:{port}")),
        "{said}"
    );
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(mnt.to_str().unwrap()), "nothing mounted");
    drop(m);
}

#[test]
fn every_stats_counter_has_a_metric() {
    let m = Mount::new(&[]);
    let out = tool(&["stats".as_ref(), m.mnt.as_os_str(), "--json".as_ref()]);
    assert!(out.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let unmapped = tagcachefs::metrics::unmapped(&stats);
    assert!(
        unmapped.is_empty(),
        "counters in `stats --json` without a metric (add a line to SAMPLES in src/metrics/mod.rs): {unmapped:?}"
    );
}

/// A loopback port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn failures_show_by_operation_and_by_errno() {
    // The first commit fails (EIO, a fault of the commit step); an entry
    // too large for the bound fails with EFBIG (a refusal, not a fault).
    let m = Mount::with_failpoints("writer.commit", &["--max-size", "64K"]);
    let f = open(&m.keys("a"), libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC).unwrap();
    write_fd(&f, b"x").unwrap();
    assert_eq!(close(f), Err(Errno::EIO));
    let f = open(
        &m.keys("big"),
        libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC,
    )
    .unwrap();
    assert_eq!(
        write_chunks(&f, &[7u8; 128 << 10], 16 << 10),
        Err(Errno::EFBIG)
    );
    assert_eq!(close(f), Err(Errno::EFBIG));
    let p = parse(Input::Text(&stats_prometheus(&m.mnt)));
    assert_eq!(p.get("tagcachefs_commit_failures_total{errno=EIO}"), 1.0);
    assert_eq!(p.get("tagcachefs_commit_failures_total{errno=EFBIG}"), 1.0);
    assert_eq!(p.get("tagcachefs_commit_errors_total"), 2.0);
    assert_eq!(
        p.get("tagcachefs_request_errors_total{op=commit at close}"),
        1.0
    );
    assert_eq!(p.families["tagcachefs_request_errors"], "counter");
    // No cleanup ran yet.
    assert_eq!(p.get("tagcachefs_last_cleanup_timestamp_seconds"), 0.0);
}

#[test]
fn the_last_cleanup_shows_when_and_how_long() {
    let m = Mount::new(&["--cleanup-interval", "1"]);
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    eventually(5.0, || {
        parse(Input::Text(&stats_prometheus(&m.mnt)))
            .get("tagcachefs_last_cleanup_timestamp_seconds")
            > 0.0
    })
    .expect("a cleanup ran within 5 s");
    let p = parse(Input::Text(&stats_prometheus(&m.mnt)));
    let at = p.get("tagcachefs_last_cleanup_timestamp_seconds");
    assert!(at >= start.floor() && at <= start + 10.0, "{at} vs {start}");
    assert!(p.get("tagcachefs_last_cleanup_duration_seconds") < 5.0);
}
