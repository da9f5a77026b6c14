//! The binary: parses the command line and runs the command; run as
//! `mount.fuse.tagcachefs`, it is mount(8)'s helper instead.

use std::process::ExitCode;

use clap::Parser;
use tagcachefs::cli::{Cli, Command, StatsFormat};
use tagcachefs::exit::Failure;
use tagcachefs::{daemon, mount_helper, report};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--guardian") {
        daemon::guardian_main(&args[2..]);
    }
    let result = if mount_helper::invoked_as(&args) {
        mount_helper::run(&args)
    } else {
        let cli = Cli::parse();
        match cli.command {
            Some(Command::Cleanup {
                store,
                json,
                dry_run,
                max_size,
                min_free,
                tagcache_format,
                foreign_tmp_age,
            }) => report::cleanup(
                &store,
                json,
                dry_run,
                max_size,
                min_free,
                tagcache_format,
                std::time::Duration::from_secs(foreign_tmp_age),
            ),
            Some(Command::Stats {
                path,
                json,
                format,
                tagcache_format,
            }) => report::stats(
                &path,
                if json { StatsFormat::Json } else { format },
                tagcache_format,
            ),
            Some(Command::Completions { shell }) => report::completions(shell),
            Some(Command::Unmount { mountpoint, force }) => {
                daemon::unmount(&mountpoint, force).map_err(Failure::from)
            }
            None => cli
                .mount
                .config()
                .map_err(Failure::usage)
                .and_then(daemon::run),
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tagcachefs: {e}");
            e.exit_code()
        }
    }
}
