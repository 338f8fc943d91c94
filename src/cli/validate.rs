//! `canary-router validate FILE...`

use canary_router::config::DEFAULT_VARIANT_HEADER;

use super::args::{Args, Opt};
use super::{compile, describe_policy, environment, label, read, sources, Io, Usage, INVALID};

pub const OPTS: &[Opt] = &[super::ENV_OPTS[0], super::ENV_OPTS[1]];

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    if args.positional.is_empty() {
        return Err(Usage("validate needs at least one FILE".into()));
    }
    let env = environment(args)?;
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
        let single = contents.configs.len() == 1;
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
            match compile(json, &env) {
                Ok((raw, config)) => {
                    let n = config.policies().len();
                    let mut summary = format!(
                        "{}: OK ({n} polic{}",
                        if single { name.as_str() } else { at.as_str() },
                        if n == 1 { "y" } else { "ies" }
                    );
                    if config.variant_header() != DEFAULT_VARIANT_HEADER {
                        summary.push_str(&format!(", variant header {}", config.variant_header()));
                    }
                    if config.expose_variant() {
                        summary.push_str(", exposed in responses");
                    }
                    summary.push(')');
                    io.out(summary);
                    for (i, policy) in config.policies().iter().enumerate() {
                        let raw = raw.policies.get(i).filter(|r| r.name == policy.name());
                        io.out(format!("  {}", describe_policy(policy, raw)));
                    }
                    for w in config.warnings() {
                        io.err(format!("warning: {at}: {w}"));
                    }
                }
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
