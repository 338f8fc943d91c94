//! `canary-router validate FILE...`

use canary_router::config::{RawConfig, DEFAULT_VARIANT_HEADER};

use super::{compile, describe_policy, for_each_config, Files, Io, Proxy, Usage};

/// Check every configuration found, as the filter does when Envoy loads it
///
/// On success, prints for each configuration "FILE: OK (N policies)" and one line per policy:
/// variants and weights in force, sticky keys, rules, selectors (hosts, path_prefix, routes).
/// Every error is printed on stderr as "FILE: PLACE IN FILE: JSON PATH: MESSAGE".
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = super::AFTER_HELP)]
pub struct Args {
    #[command(flatten)]
    files: Files,
    #[command(flatten)]
    proxy: Proxy,
}

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    let env = args.proxy.environment();
    for_each_config(&args.files, io, |io, place, json| {
        let at = &place.at;
        match compile(json, &env) {
            Ok((raw, config)) => {
                let n = config.policies().len();
                let mut summary = format!(
                    "{}: OK ({n} polic{}",
                    if place.single { place.file } else { at },
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
                for w in literal_credentials(&raw) {
                    io.err(format!("warning: {at}: {w}"));
                }
                true
            }
            Err(errors) => {
                for e in errors.errors() {
                    io.err(format!("{at}: {e}"));
                }
                false
            }
        }
    })
}

/// Receiver headers that hold a literal credential (an `authorization` value without a
/// `${NAME}` reference): committed to Git with the configuration, readable by everyone who
/// reads the repository.
fn literal_credentials(raw: &RawConfig) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in raw.policies.iter().enumerate() {
        let Some(g) = &p.guard else { continue };
        for (j, n) in g.notify.iter().flatten().enumerate() {
            let at = if g.notify_list {
                format!("notify[{j}]")
            } else {
                "notify".to_string()
            };
            for (name, value) in n.headers.iter().flatten() {
                if name.eq_ignore_ascii_case("authorization") && !value.contains("${") {
                    out.push(format!(
                        "policies[{i}].guard.{at}.headers.{name}: a literal credential \
                         ends up in Git with the configuration; name an environment variable \
                         of the VM instead, as in \"Bearer ${{GITHUB_TOKEN}}\" (Istio: \
                         vmConfig.env from a Secret)"
                    ));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::super::{parse, Command};

    #[test]
    fn files_after_double_dash_are_files() {
        // `--` ends the options: revert.sh passes the files it validates after it.
        let Ok(Command::Validate(args)) = parse(&["validate", "--label", "a=b", "--", "--json"])
        else {
            panic!("not validate");
        };
        assert_eq!(args.files.files, ["--json"]);
        assert_eq!(args.proxy.label, [("a".into(), "b".into())]);
    }
}
