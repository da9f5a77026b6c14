//! Writes the man page of `tagcachefs`, generated from its clap definition:
//! `cargo run --example man > doc/tagcachefs.1`.

use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let cmd = tagcachefs::cli::Cli::command();
    clap_mangen::Man::new(cmd).render(&mut std::io::stdout())
}
