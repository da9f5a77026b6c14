//! The command-line tools (`tagcachefs cleanup`, `stats`), run as a user
//! runs them.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::mount::BIN;

/// `tagcachefs <args>`, its output captured.
pub fn tool(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running tagcachefs")
}

/// `tagcachefs cleanup STORE --json`: what it removed, as JSON.
pub fn cleanup_json(store: &Path) -> serde_json::Value {
    let out = tool(&["cleanup".as_ref(), store.as_os_str(), "--json".as_ref()]);
    assert!(
        out.status.success(),
        "tagcachefs cleanup {} failed: {}",
        store.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "cleanup --json printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// How many things a cleanup report says were removed (every count but
/// `bytes`; 0 = removed nothing).
pub fn removed_total(report: &serde_json::Value) -> u64 {
    report
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| *k != "bytes")
                .filter_map(|(_, v)| v.as_u64())
                .sum()
        })
        .unwrap_or_else(|| panic!("not a cleanup report: {report}"))
}
