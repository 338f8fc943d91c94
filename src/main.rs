//! `canary-router`: validate Canary Router configurations and simulate decisions, with the
//! same engine as the filter. See `canary-router --help`.

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    cli::run()
}
