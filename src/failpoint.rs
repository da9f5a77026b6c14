//! Faults the tests inject into a running daemon, to reach the paths that
//! only a rare failure or an unlucky interleaving takes.
//!
//! `TAGCACHEFS_FAILPOINTS=name,name=ms,…` in the daemon's environment: a
//! plain `name` makes that step fail with EIO once, `name=ms` makes it
//! pause that long every time (a failure is EIO). Only debug builds (what the tests run) read
//! it; in a release build every point is a no-op.

use std::io;

/// The step `name` is about to run: fails or pauses if a test asked.
#[inline]
pub fn hit(name: &str) -> io::Result<()> {
    #[cfg(debug_assertions)]
    {
        imp::hit(name)
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        Ok(())
    }
}

/// `hit` as a store error naming the point.
pub fn check(name: &str) -> crate::store::Result<()> {
    hit(name).map_err(|source| crate::store::Error::Io {
        path: format!("failpoint {name}"),
        source,
    })
}

#[cfg(debug_assertions)]
mod imp {
    use std::collections::HashMap;
    use std::io;
    use std::sync::{Mutex, OnceLock};
    use std::time::Duration;

    enum Action {
        FailOnce,
        Pause(Duration),
    }

    fn points() -> &'static Mutex<HashMap<String, Action>> {
        static POINTS: OnceLock<Mutex<HashMap<String, Action>>> = OnceLock::new();
        POINTS.get_or_init(|| {
            let spec = std::env::var("TAGCACHEFS_FAILPOINTS").unwrap_or_default();
            let points = spec
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((name, ms)) => (
                        name.to_string(),
                        Action::Pause(Duration::from_millis(ms.parse().unwrap_or(0))),
                    ),
                    None => (p.to_string(), Action::FailOnce),
                })
                .collect();
            Mutex::new(points)
        })
    }

    pub fn hit(name: &str) -> io::Result<()> {
        let mut points = points().lock().unwrap();
        match points.get(name) {
            None => Ok(()),
            Some(Action::Pause(d)) => {
                let d = *d;
                drop(points);
                log::warn!("failpoint {name}: pausing {d:?}");
                std::thread::sleep(d);
                Ok(())
            }
            Some(Action::FailOnce) => {
                points.remove(name);
                log::warn!("failpoint {name}: failing");
                Err(io::Error::other(format!("failpoint {name}")))
            }
        }
    }
}
