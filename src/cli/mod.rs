//! The `canary-router` command: `validate`, `simulate` and `fingerprint`, on the filter's own
//! engine.

mod fingerprint;
mod simulate;
mod sources;
mod validate;

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use canary_router::compile::{compile_in, format_percent};
use canary_router::config::{RawConfig, RawKey, RawPolicy};
use canary_router::guard::OnTrip;
use canary_router::{parse_json, Config, ConfigErrors, Environment, Policy, Split};
use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use serde::Serialize;

/// Exit status: a configuration is invalid.
const INVALID: u8 = 1;
/// Exit status: the command line is wrong or a file cannot be read (clap's status for a usage
/// error).
const USAGE: u8 = 2;

/// What `--help` says after the options: what the files may hold, and the exit statuses.
const AFTER_HELP: &str = "\
FILE and CONFIG are JSON or YAML files holding one of:
  - a plugin configuration (an object with \"policies\");
  - mesh manifests: Istio WasmPlugin (spec.pluginConfig) and TrafficExtension
    (spec.wasm.pluginConfig), Envoy Gateway EnvoyExtensionPolicy (spec.wasm[].config), Kuma
    MeshProxyPatch (the Envoy Wasm filter in an httpFilter's value); a multi-document file may
    hold several, other kinds are skipped (with a note);
  - an Envoy configuration (bootstrap, ECDS resource, ...): every object whose \"@type\" is
    type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, its
    config.configuration.value (a string holding the JSON plugin configuration).
A file with nothing of the kind is an error.

Exit status: 0 success, 1 invalid configuration, 2 usage error (unknown option, unreadable file).";

/// Check and try out Canary Router configurations with the filter's own engine
#[derive(Debug, Parser)]
#[command(
    name = "canary-router",
    version,
    // A missing command is a usage error (status 2) naming the commands, not the help page.
    arg_required_else_help = false,
    after_long_help = AFTER_HELP
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Validate(validate::Args),
    Simulate(Box<simulate::Args>),
    Fingerprint(fingerprint::Args),
}

/// The FILE... arguments of `validate` and `fingerprint`.
#[derive(Debug, clap::Args)]
struct Files {
    /// JSON or YAML files: plugin configurations, WasmPlugin manifests or Envoy configurations
    #[arg(value_name = "FILE", required = true)]
    files: Vec<String>,
}

/// The proxy's node metadata and labels, options of `validate` and `simulate`.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Mesh overrides")]
struct Proxy {
    /// The proxy's CANARY_ROUTER node metadata (per-policy overrides)
    ///
    /// Problems in it are printed as "warning: ..." on stderr: the filter ignores such an
    /// override, and so does the command; they do not fail.
    #[arg(long, value_name = "JSON", verbatim_doc_comment)]
    node_metadata: Option<String>,
    /// A label of the proxy's workload, for source_label rules (repeatable)
    #[arg(long, value_name = "KEY=VALUE", value_parser = key_value)]
    label: Vec<(String, String)>,
}

impl Proxy {
    fn environment(&self) -> Environment {
        Environment {
            node_overrides: self.node_metadata.clone(),
            labels: self.label.clone(),
            // The VM's environment is the proxy's: `${NAME}` references are checked, not filled.
            vars: None,
        }
    }
}

/// A `KEY=VALUE` argument as a pair; the key must not be empty.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".to_string()),
    }
}

/// A problem found after the command line was parsed (a file that cannot be read): exit
/// status 2, reported as clap reports usage errors.
#[derive(Debug)]
pub struct Usage(pub String);

/// Standard output and error. Output is buffered; write errors (a closed pipe) are ignored.
pub struct Io<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

impl Io<'_> {
    pub fn out(&mut self, line: impl Display) {
        let _ = writeln!(self.out, "{line}");
    }

    /// `value` as one line of JSON.
    pub fn json(&mut self, value: &impl Serialize) {
        // Serializing these values cannot fail; a write error is ignored as in `out`.
        let _ = serde_json::to_writer(&mut *self.out, value);
        let _ = writeln!(self.out);
    }

    pub fn err(&mut self, line: impl Display) {
        // Keep the two streams in order on a terminal.
        let _ = self.out.flush();
        let _ = writeln!(self.err, "{line}");
    }
}

/// Runs the command line of the process; returns the exit status.
pub fn run() -> ExitCode {
    let mut cli = Cli::command();
    // Help, version and usage errors are printed by clap (status 0 or 2).
    let command = match cli
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|matches| Cli::from_arg_matches(&matches))
    {
        Ok(parsed) => parsed.command,
        Err(e) => e.exit(),
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    let (name, result) = match &command {
        Command::Validate(args) => ("validate", validate::run(args, &mut io)),
        Command::Simulate(args) => ("simulate", simulate::run(args, &mut io)),
        Command::Fingerprint(args) => ("fingerprint", fingerprint::run(args, &mut io)),
    };
    let _ = out.flush();
    let status = match result {
        Ok(status) => status,
        Err(Usage(message)) => {
            // With the command's usage line, like the errors clap finds itself.
            let error = match cli.find_subcommand_mut(name) {
                Some(sub) => sub.error(ErrorKind::Io, message),
                None => cli.error(ErrorKind::Io, message),
            };
            let _ = error.print();
            USAGE
        }
    };
    ExitCode::from(status)
}

/// Reads a file named on the command line; a missing or unreadable file is a usage error.
fn read(path: &str) -> Result<Vec<u8>, Usage> {
    std::fs::read(path).map_err(|e| Usage(format!("cannot read {path}: {e}")))
}

/// One configuration found in a FILE: where it is, and whether it is its file's only one.
struct Place<'a> {
    file: &'a str,
    /// `FILE: PLACE IN FILE`, for messages.
    at: String,
    single: bool,
}

/// Reads every FILE (an unreadable one is a usage error, before any output) and calls `each`
/// with every configuration found in them; a file or a configuration that cannot be read is
/// reported here. Returns the exit status: [`INVALID`] if anything failed, `each` included
/// (it returns whether its configuration passed).
fn for_each_config(
    files: &Files,
    io: &mut Io,
    mut each: impl FnMut(&mut Io, &Place, &[u8]) -> bool,
) -> Result<u8, Usage> {
    let files = files
        .files
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
            let place = Place {
                file: name,
                at: label(name, &found.location),
                single,
            };
            match &found.json {
                Ok(json) => failed |= !each(io, &place, json),
                Err(message) => {
                    io.err(format!("{}: {message}", place.at));
                    failed = true;
                }
            }
        }
    }
    Ok(if failed { INVALID } else { 0 })
}

/// `file` or `file: location`, the prefix of every line about one configuration.
fn label(file: &str, location: &str) -> String {
    if location.is_empty() {
        file.to_string()
    } else {
        format!("{file}: {location}")
    }
}

/// Compiles one configuration as the filter does; keeps the raw form for the summary.
fn compile(json: &[u8], env: &Environment) -> Result<(RawConfig, Config), ConfigErrors> {
    let raw = parse_json(json)?;
    let config = compile_in(&raw, env)?;
    Ok((raw, config))
}

/// Basis points as a percentage: 1000 → "10", 1050 → "10.5", 1005 → "10.05".
fn percent(bp: u16) -> String {
    format_percent(u32::from(bp))
}

/// `canary 10 %, stable 90 %`, and what an override (from `source`) did to the split.
fn describe_split(policy: &Policy, split: &Split, raw: Option<&RawPolicy>, source: &str) -> String {
    let mut s = policy
        .variants()
        .iter()
        .zip(split.weights_bp())
        .map(|(v, bp)| format!("{} {} %", v.name(), percent(*bp)))
        .collect::<Vec<_>>()
        .join(", ");
    let configured: Option<Vec<u16>> = raw.map(|raw| {
        raw.variants
            .iter()
            .map(|v| v.weight_bp().unwrap_or(0))
            .collect()
    });
    if configured.is_some_and(|c| c != split.weights_bp()) {
        s.push_str(&format!(" (from {source})"));
    }
    if !split.enabled() {
        let last = policy.variants().last().map_or("", |v| v.name());
        s.push_str(&format!(" (disabled: all to {last})"));
    }
    s
}

/// A sticky key as written: `header x-user-id`.
fn describe_key(key: &RawKey) -> String {
    match (&key.header, &key.cookie, &key.query) {
        (Some(h), _, _) => format!("header {}", h.to_ascii_lowercase()),
        (_, Some(c), _) => format!("cookie {c}"),
        (_, _, Some(q)) => format!("query {q}"),
        _ => "source_ip".to_string(),
    }
}

/// One summary line for a policy.
fn describe_policy(policy: &Policy, raw: Option<&RawPolicy>) -> String {
    let mut parts = vec![format!(
        "{}: {}",
        policy.name(),
        describe_split(policy, policy.split(), raw, "node metadata")
    )];
    let Some(raw) = raw else {
        return parts.join("; ");
    };
    let mut sticky: Vec<String> = raw
        .sticky
        .iter()
        .flat_map(|s| s.keys.iter().map(describe_key))
        .collect();
    if let Some(cookie) = policy.sticky_cookie() {
        sticky.push(format!("cookie {} (minted)", cookie.name()));
    }
    parts.push(if sticky.is_empty() {
        "sticky: none (a random bucket per request)".to_string()
    } else {
        format!("sticky: {}", sticky.join(", "))
    });
    let labelled = raw
        .rules
        .iter()
        .filter(|r| r.matches.iter().any(|m| m.source_label.is_some()))
        .count();
    parts.push(if labelled == 0 {
        format!("rules: {}", raw.rules.len())
    } else {
        format!(
            "rules: {} ({labelled} with source_label conditions)",
            raw.rules.len()
        )
    });
    let list = |v: &Option<Vec<String>>| v.as_ref().map_or("any".to_string(), |v| v.join(", "));
    parts.push(format!("hosts: {}", list(&raw.hosts)));
    parts.push(format!(
        "path_prefix: {}",
        raw.path_prefix.as_deref().unwrap_or("any")
    ));
    parts.push(format!("routes: {}", list(&raw.routes)));
    if let Some(salt) = raw.salt.as_ref().filter(|s| **s != raw.name) {
        parts.push(format!("salt: {salt}"));
    }
    if raw.trust_incoming {
        parts.push("trusts an incoming variant header".to_string());
    }
    if let Some(r) = &raw.ramp {
        parts.push(
            match (&r.steps, r.step_seconds, &r.from, &r.to, r.duration_seconds) {
                (Some(steps), Some(every), ..) => format!(
                    "ramp: {} {} % every {every} s from {}",
                    r.variant,
                    steps.join(" → "),
                    r.start
                ),
                (_, _, Some(from), Some(to), Some(d)) => format!(
                    "ramp: {} {from} → {to} % over {d} s from {}",
                    r.variant, r.start
                ),
                _ => format!("ramp: {}", r.variant),
            },
        );
    }
    if let (Some(g), Some(guard)) = (&raw.guard, policy.guard()) {
        let baseline = policy.variant(guard.baseline()).map_or("", |v| v.name());
        let mut limits = Vec::new();
        if let Some(rate) = &g.max_failure_rate {
            limits.push(format!("failure rate > {rate}"));
        }
        if let Some(ms) = guard.max_p99_ms() {
            limits.push(format!("p99 > {ms} ms"));
        }
        if let Some(inc) = &g.max_failure_rate_increase {
            limits.push(format!("failure rate > {baseline}'s + {inc}"));
        }
        if let Some(ratio) = &g.max_p99_ratio {
            limits.push(format!("p99 > {ratio} × {baseline}'s"));
        }
        let then = match guard.on_trip() {
            OnTrip::Abort => "until the configuration changes".to_string(),
            OnTrip::Rearm => format!(
                "for {} s, at most {} trips",
                guard.hold_seconds(),
                guard.max_trips()
            ),
        };
        let mut text = format!(
            "guard: {} → {baseline} {then} when {} over {} s (≥ {} requests)",
            g.variant,
            limits.join(" or "),
            guard.window_seconds(),
            guard.min_requests()
        );
        for r in guard.receivers() {
            text.push_str(&format!(
                ", notify {} via cluster {}",
                r.format.as_str(),
                r.cluster
            ));
        }
        parts.push(text);
    }
    parts.join("; ")
}

/// Parses a command line (after the program name).
#[cfg(test)]
fn parse(args: &[&str]) -> Result<Command, clap::Error> {
    Cli::try_parse_from(std::iter::once("canary-router").chain(args.iter().copied()))
        .map(|cli| cli.command)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn verify_cli() {
        Cli::command().debug_assert();
    }

    #[test]
    fn usage_errors() {
        use ErrorKind::*;
        for (bad, kind) in [
            (&[][..], MissingSubcommand),
            (&["validate"], MissingRequiredArgument),
            (&["fingerprint", "--label", "a=b", "f"], UnknownArgument),
            (&["simulate", "f", "--seed"], InvalidValue),
            (&["simulate", "f", "--json=1"], TooManyValues),
            (
                &["simulate", "f", "--seed", "1", "--seed", "2"],
                ArgumentConflict,
            ),
            (&["simulate", "f", "--users", "0"], ValueValidation),
            (&["simulate", "f", "--per-user"], MissingRequiredArgument),
            (&["simulate", "f", "--cookie", "=v"], ValueValidation),
            (&["simulate", "f", "--path", "p"], ValueValidation),
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), kind, "{bad:?}: {e}");
            assert_eq!(e.exit_code(), i32::from(USAGE), "{bad:?}");
        }
    }
}
