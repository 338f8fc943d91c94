//! `canary-router`: validate Canary Router configurations and simulate decisions, with the
//! same engine as the filter. See `canary-router --help`.

mod cli;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = Vec::new();
    for arg in std::env::args_os().skip(1) {
        match arg.into_string() {
            Ok(arg) => args.push(arg),
            Err(arg) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "canary-router: argument {arg:?} is not valid UTF-8\nsee canary-router --help"
                );
                return ExitCode::from(2);
            }
        }
    }
    cli::run(&args)
}
