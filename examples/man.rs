//! Writes the man page of `tagcachefs`, generated from its clap definition:
//! `cargo run --example man > doc/tagcachefs.1`. The examples and the exit
//! codes come from the same definitions as `--help` shows them.

use std::io::Write;

use clap::CommandFactory;

fn main() -> std::io::Result<()> {
    let cmd = tagcachefs::cli::Cli::command();
    let man = clap_mangen::Man::new(cmd);
    let out = &mut std::io::stdout();
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    writeln!(out, ".SH EXAMPLES")?;
    for (what, how) in tagcachefs::cli::EXAMPLES {
        writeln!(out, ".PP\n{}\n.PP\n.nf\n.RS", roff(what))?;
        for line in how.lines() {
            writeln!(out, "{}", roff(line))?;
        }
        writeln!(out, ".RE\n.fi")?;
    }
    writeln!(out, ".SH \"EXIT STATUS\"")?;
    for (code, what) in tagcachefs::exit::CODES {
        writeln!(out, ".TP\n.B {code}\n{}", roff(what))?;
    }
    man.render_version_section(out)
}

/// Text as roff shows it: backslashes escaped, no line taken for a request.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
