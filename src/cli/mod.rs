//! The `canary-router` command: `validate`, `simulate` and `fingerprint`, on the filter's own
//! engine.

mod args;
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

use args::{Args, Opt};

/// Exit status: a configuration is invalid.
const INVALID: u8 = 1;
/// Exit status: the command line is wrong or a file cannot be read.
const USAGE: u8 = 2;

pub const HELP: &str = "\
canary-router: check and try out Canary Router configurations with the filter's own engine

Usage:
  canary-router validate [OPTIONS] FILE...
  canary-router simulate [OPTIONS] CONFIG
  canary-router fingerprint FILE...
  canary-router help | --help | -h
  canary-router --version

FILE and CONFIG are JSON or YAML files holding one of:
  - a plugin configuration (an object with \"policies\");
  - Istio WasmPlugin manifests (apiVersion extensions.istio.io/..., kind WasmPlugin): their
    spec.pluginConfig is checked; a multi-document file may hold several, other kinds are
    skipped (with a note);
  - an Envoy configuration (bootstrap, ECDS resource, ...): every object whose \"@type\" is
    type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm, its
    config.configuration.value (a string holding the JSON plugin configuration).
A file with nothing of the kind is an error.

canary-router validate [OPTIONS] FILE...
  Checks every configuration found, as the filter does when Envoy loads it. On success,
  prints for each configuration \"FILE: OK (N policies)\" and one line per policy: variants
  and weights in force, sticky keys, rules, selectors (hosts, path_prefix, routes). Every
  error is printed on stderr as \"FILE: PLACE IN FILE: JSON PATH: MESSAGE\".

canary-router simulate [OPTIONS] CONFIG
  Decides the variant of one request as the filter would and prints
      policy=NAME variant=NAME reason=REASON bucket=N|-
  followed by \"set-cookie: VALUE\" when the filter mints a sticky cookie, or
      no policy applies: the request passes untouched
  A file holding several configurations: the first is used (with a note).
  --host H                :authority (default localhost)
  --path P                path (default /)
  --header K=V            a request header (repeatable)
  --cookie K=V            a cookie; all are joined into one cookie header (repeatable)
  --query K=V             a query parameter appended to the path (repeatable)
  --route NAME            name of the Envoy route the request matched
  --source-ip IP          downstream address (IP, port 40000)
  --route-metadata JSON   the matched route's filter_metadata[\"canary-router\"] object
  --seed N                seed of the random source: random buckets, minted ids (default 1)
  --users N               simulate N users user-0 ... user-<N-1> on top of the request: each
                          id goes in the first sticky key of the policy that applies (header,
                          cookie, query parameter, or source address 10.a.b.c); prints the
                          share of each variant next to its weight, and the reasons. Without
                          a sticky key the users are N requests with the seeded random source.
  --per-user              with --users: one line per user instead: ID VARIANT REASON BUCKET|-
  --at TIME               decide at this RFC 3339 time (default: now): the weights of ramps
  --guard-tripped         decide as if every guard were tripped (default: armed)
  --json                  JSON output: one object (one per line with --per-user)

canary-router fingerprint FILE...
  Prints the document fingerprint of every configuration found, one line each:
      16 HEX DIGITS  FILE: PLACE IN FILE
  A hash of the configuration in canonical form (members sorted, numbers as exact decimals,
  no whitespace): the same for a WasmPlugin's pluginConfig as written and as Istio delivers it
  to the proxies (10 or 10.0, any key order), so it names the configuration in force. A
  tripped guard sends it as config_fingerprint; envoy-config/gitops/revert.sh reverts the
  commit that introduced it, if it is still at HEAD. Invalid configurations have none: their
  errors are printed as validate prints them (exit 1).

Options of validate and simulate:
  --node-metadata JSON    the proxy's CANARY_ROUTER node metadata (per-policy overrides)
  --label KEY=VALUE       a label of the proxy's workload, for source_label rules (repeatable)
Problems in node or route metadata are printed as \"warning: ...\" on stderr: the filter
ignores such an override, and so does the command; they do not fail.

Exit status: 0 success, 1 invalid configuration, 2 usage error (unknown option, unreadable file).
";

/// A command line problem: exit status 2.
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

    pub fn err(&mut self, line: impl Display) {
        // Keep the two streams in order on a terminal.
        let _ = self.out.flush();
        let _ = writeln!(self.err, "{line}");
    }
}

/// Runs the command line `args` (without the program name); returns the exit status.
pub fn run(args: &[String]) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let stderr = std::io::stderr();
    let mut err = stderr.lock();
    let mut io = Io {
        out: &mut out,
        err: &mut err,
    };
    let status = match dispatch(args, &mut io) {
        Ok(status) => status,
        Err(Usage(message)) => {
            io.err(format!("canary-router: {message}"));
            io.err("see canary-router --help");
            USAGE
        }
    };
    let _ = out.flush();
    ExitCode::from(status)
}

fn dispatch(args: &[String], io: &mut Io) -> Result<u8, Usage> {
    let Some((command, rest)) = args.split_first() else {
        return Err(Usage(
            "missing command: validate, simulate or fingerprint".into(),
        ));
    };
    type Command = fn(&Args, &mut Io) -> Result<u8, Usage>;
    let (run, opts): (Command, &[Opt]) = match command.as_str() {
        "-h" | "--help" | "help" => {
            io.out(HELP.trim_end());
            return Ok(0);
        }
        "-V" | "--version" => {
            io.out(format!("canary-router {}", env!("CARGO_PKG_VERSION")));
            return Ok(0);
        }
        "validate" => (validate::run, validate::OPTS),
        "simulate" => (simulate::run, simulate::OPTS),
        "fingerprint" => (fingerprint::run, fingerprint::OPTS),
        other if other.starts_with('-') => return Err(Usage(format!("unknown option {other}"))),
        other => return Err(Usage(format!("unknown command {other:?}"))),
    };
    let args = Args::parse(rest, opts)?;
    if args.help {
        io.out(HELP.trim_end());
        return Ok(0);
    }
    run(&args, io)
}

/// Options shared by both commands.
const ENV_OPTS: [Opt; 2] = [Opt::value("--node-metadata"), Opt::repeated("--label")];

/// The proxy's environment from `--node-metadata` and `--label`.
fn environment(args: &Args) -> Result<Environment, Usage> {
    Ok(Environment {
        node_overrides: args.value("--node-metadata").map(str::to_string),
        labels: args.pairs("--label")?,
        // The VM's environment is the proxy's: `${NAME}` references are checked, not filled.
        vars: None,
    })
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
    args: &Args,
    io: &mut Io,
    mut each: impl FnMut(&mut Io, &Place, &[u8]) -> bool,
) -> Result<u8, Usage> {
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
