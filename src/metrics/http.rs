//! `-o metrics_addr=127.0.0.1:PORT`: the exposition on `/metrics` over
//! loopback HTTP, served by a thread of the daemon (tiny_http parses the
//! requests).
//!
//! The daemon's counters are read at every request. Counting the store's
//! entries walks all of it, which can take long on a big store, so a
//! request never waits for it: it gets the last figures (their age is a
//! sample), and if those are older than `STORE_FIGURES_MAX_AGE` a
//! background walk starts, one at a time. The first walk starts with the
//! server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fs::Fs;

/// Store figures older than this are counted again when scraped.
pub const STORE_FIGURES_MAX_AGE: Duration = Duration::from_secs(30);

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Default)]
struct Figures {
    /// The store's last figures (as `stats --json` has them) and when
    /// their walk ended.
    last: Option<(Instant, Value)>,
    walking: bool,
}

/// Binds `addr` and serves from a thread of its own; an address that
/// cannot be bound is an error before the mount is made.
pub fn start(addr: SocketAddr, fs: Arc<Fs>) -> Result<(), String> {
    let server = tiny_http::Server::http(addr).map_err(|e| format!("metrics_addr {addr}: {e}"))?;
    let figures = Arc::new(Mutex::new(Figures::default()));
    refresh(&fs, &figures);
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for request in server.incoming_requests() {
                let path = request.url().split('?').next().unwrap_or("");
                let response = if path != "/metrics" {
                    tiny_http::Response::from_string("not found: the metrics are on /metrics\n")
                        .with_status_code(404)
                } else if !matches!(
                    request.method(),
                    tiny_http::Method::Get | tiny_http::Method::Head
                ) {
                    tiny_http::Response::from_string("GET /metrics\n").with_status_code(405)
                } else {
                    let header = tiny_http::Header::from_bytes("Content-Type", CONTENT_TYPE)
                        .expect("a valid header");
                    tiny_http::Response::from_string(scrape(&fs, &figures)).with_header(header)
                };
                if let Err(e) = request.respond(response) {
                    log::debug!("metrics: answering a request: {e}");
                }
            }
        })
        .map_err(|e| format!("metrics thread: {e}"))?;
    log::info!("metrics on http://{addr}/metrics");
    Ok(())
}

/// The exposition now: the daemon's counters, the last store figures.
fn scrape(fs: &Arc<Fs>, figures: &Arc<Mutex<Figures>>) -> String {
    let mut stats = figures
        .lock()
        .unwrap()
        .last
        .as_ref()
        .map(|(at, value)| {
            let mut value = value.clone();
            value["store_age_seconds"] = at.elapsed().as_secs_f64().into();
            value
        })
        .unwrap_or_else(|| Value::Object(Default::default()));
    match serde_json::from_str::<Value>(&fs.stats_json()) {
        Ok(daemon) => stats["daemon"] = daemon,
        Err(e) => log::error!("metrics: the daemon's counters are not JSON: {e}"),
    }
    refresh(fs, figures);
    crate::metrics::exposition(&stats)
}

/// Starts a walk of the store unless one is running or the figures are
/// recent.
fn refresh(fs: &Arc<Fs>, figures: &Arc<Mutex<Figures>>) {
    {
        let mut f = figures.lock().unwrap();
        let recent = f
            .last
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < STORE_FIGURES_MAX_AGE);
        if recent || f.walking {
            return;
        }
        f.walking = true;
    }
    let (walker, into) = (fs.clone(), figures.clone());
    let walk = move || {
        let counted = walker.store().stats();
        let mut f = into.lock().unwrap();
        f.walking = false;
        match counted {
            Ok(s) => {
                f.last = Some((
                    Instant::now(),
                    serde_json::to_value(&s).expect("plain struct"),
                ))
            }
            Err(e) => log::error!("metrics: counting the store: {e}"),
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("metrics-store".into())
        .spawn(walk)
    {
        log::error!("metrics: starting the store walk: {e}");
        figures.lock().unwrap().walking = false;
    }
}
