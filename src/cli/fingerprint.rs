//! `canary-router fingerprint FILE...`: the document fingerprint of every configuration found,
//! the one a tripped guard names in its GitHub dispatch (`config_fingerprint`).

use canary_router::Config;

use super::args::{Args, Opt};
use super::{label, read, sources, Io, Usage, INVALID};

pub const OPTS: &[Opt] = &[];

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    if args.positional.is_empty() {
        return Err(Usage("fingerprint needs at least one FILE".into()));
    }
    // Read every file first: an unreadable one is a usage error, before any output.
    let files = args
        .positional
        .iter()
        .map(|name| read(name).map(|bytes| (name, bytes)))
        .collect::<Result<Vec<_>, _>>()?;

    let mut failed = false;
    for (name, bytes) in &files {
        let contents = match sources::load(name, bytes) {
            Ok(c) => c,
            Err(message) => {
                io.err(format!("{name}: {message}"));
                failed = true;
                continue;
            }
        };
        for skipped in &contents.skipped {
            io.err(format!("note: {name}: skipped {skipped}"));
        }
        for found in &contents.configs {
            let at = label(name, &found.location);
            let json = match &found.json {
                Ok(json) => json,
                Err(message) => {
                    io.err(format!("{at}: {message}"));
                    failed = true;
                    continue;
                }
            };
            // Only a configuration the filter accepts is ever in force: the others have none.
            match Config::from_json(json) {
                Ok(config) => io.out(format!("{:016x}  {at}", config.document_fingerprint())),
                Err(errors) => {
                    for e in errors.errors() {
                        io.err(format!("{at}: {e}"));
                    }
                    failed = true;
                }
            }
        }
    }
    Ok(if failed { INVALID } else { 0 })
}
