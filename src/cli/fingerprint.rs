//! `canary-router fingerprint FILE...`: the document fingerprint of every configuration found,
//! the one a tripped guard names in its GitHub dispatch (`config_fingerprint`).

use canary_router::Config;

use super::{for_each_config, Files, Io, Usage};

/// Print the document fingerprint of every configuration found
///
/// One line each:
///     16 HEX DIGITS  FILE: PLACE IN FILE
/// A hash of the configuration in canonical form (members sorted, numbers as exact decimals,
/// no whitespace): the same for a WasmPlugin's pluginConfig as written and as Istio delivers it
/// to the proxies (10 or 10.0, any key order), so it names the configuration in force. A
/// tripped guard sends it as config_fingerprint; envoy-config/gitops/revert.sh reverts the
/// commit that introduced it, if it is still at HEAD. Invalid configurations have none: their
/// errors are printed as validate prints them (exit 1).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = super::AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    files: Files,
}

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    for_each_config(&args.files, io, |io, place, json| {
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
