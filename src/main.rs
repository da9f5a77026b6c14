use std::process::ExitCode;

use clap::Parser;
use tagcachefs::cli::{Cli, Command};
use tagcachefs::{daemon, report};

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "--guardian") {
        daemon::guardian_main(&args[2..]);
    }
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Cleanup { store, json }) => report::cleanup(&store, json),
        Some(Command::Stats { path, json }) => report::stats(&path, json),
        Some(Command::Unmount { mountpoint, force }) => daemon::unmount(&mountpoint, force),
        None => cli.mount.config().and_then(daemon::run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tagcachefs: {e}");
            ExitCode::FAILURE
        }
    }
}
