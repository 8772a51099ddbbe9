//! The `smsdesk` binary: reads its command line and runs the command.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `.env` is read before the command line, so the environment and flags still win.
    let _ = dotenvy::dotenv();
    server::cli::Cli::parse().run()
}
