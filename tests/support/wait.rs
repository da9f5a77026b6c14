//! Time: the clock, and waiting for what happens after a call returned
//! (RELEASE is asynchronous; another mount sees a change within its
//! --cache-timeout).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// CLOCK_REALTIME in whole seconds: what expiry times are measured in.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// CLOCK_MONOTONIC in nanoseconds: comparable between processes of one
/// host, which is what ordering an `rmdir` before an `open` needs.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `eventually` gave up: the condition was still false after this many
/// seconds.
pub struct NotWithin(pub f64);

impl std::fmt::Debug for NotWithin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not within {} s", self.0)
    }
}

/// Polls `f` every 10 ms until it returns true: the seconds that took, or
/// `NotWithin` once `secs` have passed (`.expect("what")` names the wait).
pub fn eventually(secs: f64, mut f: impl FnMut() -> bool) -> Result<f64, NotWithin> {
    let start = Instant::now();
    loop {
        if f() {
            return Ok(start.elapsed().as_secs_f64());
        }
        if start.elapsed().as_secs_f64() > secs {
            return Err(NotWithin(secs));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
