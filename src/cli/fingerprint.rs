//! `canary-router fingerprint FILE...`: the document fingerprint of every configuration found,
//! the one a tripped guard names in its GitHub dispatch (`config_fingerprint`).

use canary_router::Config;

use super::args::{Args, Opt};
use super::{for_each_config, Io, Usage};

pub const OPTS: &[Opt] = &[];

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    if args.positional.is_empty() {
        return Err(Usage("fingerprint needs at least one FILE".into()));
    }
    for_each_config(args, io, |io, place, json| {
        // Only a configuration the filter accepts is ever in force: the others have none.
        match Config::from_json(json) {
            Ok(config) => {
                io.out(format!(
                    "{:016x}  {}",
                    config.document_fingerprint(),
                    place.at
                ));
                true
            }
            Err(errors) => {
                for e in errors.errors() {
                    io.err(format!("{}: {e}", place.at));
                }
                false
            }
        }
    })
}
