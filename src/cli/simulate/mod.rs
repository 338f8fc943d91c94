//! `canary-router simulate CONFIG`: one request, or many synthetic users.

use std::net::IpAddr;

use canary_router::config::RawConfig;
use canary_router::{Config, Decision, Reason, RouteOverride, SimpleRequest, Split, SplitMix64};

use super::{
    compile, describe_key, describe_split, key_value, label, percent, read, sources, Io, Proxy,
    Usage, INVALID,
};

mod output;
mod request;

use output::{Counts, RequestJson, UntouchedJson, UserJson, UsersJson, VariantJson, Weight};
use request::RequestSpec;

/// Most synthetic users: each gets its own source address in 10.0.0.0/8.
const MAX_USERS: u32 = 1 << 24;
/// Port of the simulated downstream address.
const SOURCE_PORT: u16 = 40000;

/// Decide the variant of one request (or of many users) as the filter would
///
/// Prints
///     policy=NAME variant=NAME reason=REASON bucket=N|-
/// followed by "set-cookie: VALUE" when the filter mints a sticky cookie, or
///     no policy applies: the request passes untouched
/// A file holding several configurations: the first is used (with a note).
#[derive(Debug, clap::Args)]
#[command(verbatim_doc_comment, after_long_help = super::AFTER_HELP)]
pub struct Args {
    /// A JSON or YAML file holding the configuration (the first, if it holds several)
    #[arg(value_name = "CONFIG")]
    config: String,

    /// Seed of the random source: random buckets, minted ids
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Simulate N users user-0 ... user-<N-1> and print the split they get
    ///
    /// Each id goes in the first sticky key of the policy that applies (header, cookie, query
    /// parameter, or source address 10.a.b.c), on top of the request; prints the share of each
    /// variant next to its weight, and the reasons. Without a sticky key the users are N
    /// requests with the seeded random source.
    #[arg(
        long,
        value_name = "N",
        value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_USERS)),
        verbatim_doc_comment
    )]
    users: Option<u32>,
    /// With --users: one line per user instead: ID VARIANT REASON BUCKET|-
    #[arg(long, requires = "users")]
    per_user: bool,
    /// Decide at this RFC 3339 time (default: now): the weights of ramps
    #[arg(long, value_name = "TIME", value_parser = time)]
    at: Option<i64>,
    /// Decide as if every guard were tripped (default: armed)
    #[arg(long)]
    guard_tripped: bool,
    /// JSON output: one object (one per line with --per-user)
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    request: Request,

    /// The matched route's filter_metadata["canary-router"] object
    ///
    /// Problems in it are printed as "warning: ..." on stderr: the filter ignores such an
    /// override, and so does the command; they do not fail.
    #[arg(
        long,
        value_name = "JSON",
        verbatim_doc_comment,
        help_heading = "Mesh overrides"
    )]
    route_metadata: Option<String>,
    #[command(flatten)]
    proxy: Proxy,
}

/// The request `simulate` decides (without the synthetic users of `--users`).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Request")]
struct Request {
    /// The :authority (host) of the request
    #[arg(long, value_name = "H", default_value = "localhost")]
    host: String,
    /// Path, with or without a query string
    #[arg(long, value_name = "P", default_value = "/", value_parser = path)]
    path: String,
    /// A request header (repeatable)
    #[arg(long, value_name = "K=V", value_parser = key_value)]
    header: Vec<(String, String)>,
    /// A cookie; all are joined into one cookie header (repeatable)
    #[arg(long, value_name = "K=V", value_parser = key_value)]
    cookie: Vec<(String, String)>,
    /// A query parameter appended to the path (repeatable)
    #[arg(long, value_name = "K=V", value_parser = key_value)]
    query: Vec<(String, String)>,
    /// Name of the Envoy route the request matched
    #[arg(long, value_name = "NAME")]
    route: Option<String>,
    /// Downstream address (IP, port 40000)
    #[arg(long, value_name = "IP")]
    source_ip: Option<IpAddr>,
}

/// `--path`: must start with '/'.
fn path(text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        Ok(text.to_string())
    } else {
        Err("must start with '/'".to_string())
    }
}

/// `--at`: an RFC 3339 time, as unix seconds.
fn time(text: &str) -> Result<i64, String> {
    canary_router::ramp::parse_rfc3339(text)
}

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    let file = &args.config;
    let env = args.proxy.environment();
    let spec = RequestSpec::from_args(&args.request);
    let now = args.at.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
    });
    let bytes = read(file)?;

    let contents = match sources::load(file, &bytes) {
        Ok(c) => c,
        Err(message) => {
            io.err(format!("{file}: {message}"));
            return Ok(INVALID);
        }
    };
    for skipped in &contents.skipped {
        io.err(format!("note: {file}: skipped {skipped}"));
    }
    let Some(found) = contents.configs.first() else {
        return Ok(INVALID);
    };
    if contents.configs.len() > 1 {
        io.err(format!(
            "note: {file} holds {} configurations; simulating the first ({})",
            contents.configs.len(),
            found.location
        ));
    }
    let at = label(file, &found.location);
    let compiled = match &found.json {
        Ok(json) => compile(json, &env).map_err(|errors| {
            errors
                .errors()
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
        }),
        Err(message) => Err(vec![message.clone()]),
    };
    let (raw, config) = match compiled {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                io.err(format!("{at}: {e}"));
            }
            return Ok(INVALID);
        }
    };
    for w in config.warnings() {
        io.err(format!("warning: {at}: {w}"));
    }
    let route = args
        .route_metadata
        .as_deref()
        .and_then(|text| route_override(&config, text, io));

    let tripped = vec![args.guard_tripped; config.policies().len()];
    let sim = Simulation {
        config: &config,
        route: route.as_ref(),
        now,
        live: config.effective_splits(now, &tripped),
        rng: SplitMix64::new(args.seed),
        json: args.json,
    };
    match args.users {
        None => sim.one(&spec, io),
        Some(n) => sim.users(&spec, n, args.per_user, args.seed, &raw, io),
    }
    Ok(0)
}

/// Compiles `--route-metadata`; a problem is a warning and no override, as in the filter.
fn route_override(config: &Config, text: &str, io: &mut Io) -> Option<RouteOverride> {
    if !config.route_metadata() {
        io.err(
            "warning: route-metadata: ignored: the configuration does not set \"route_metadata\": true, so the filter does not read route metadata"
                .to_string(),
        );
        return None;
    }
    let value = match canary_router::json::parse(text.as_bytes()) {
        Ok(v) => v,
        Err(e) => {
            io.err(format!(
                "warning: route-metadata: invalid JSON: {} at line {} column {}; route metadata ignored",
                e.message, e.line, e.column
            ));
            return None;
        }
    };
    match config.route_override(&value, "route-metadata") {
        Ok(route) => route,
        Err(errors) => {
            for e in errors.errors() {
                io.err(format!("warning: {e}; route metadata ignored"));
            }
            None
        }
    }
}

struct Simulation<'a> {
    config: &'a Config,
    route: Option<&'a RouteOverride>,
    /// The simulated time (unix seconds) and the splits in force then (ramps, tripped guards).
    now: i64,
    live: Vec<Split>,
    rng: SplitMix64,
    json: bool,
}

impl Simulation<'_> {
    fn decide(&mut self, req: &SimpleRequest) -> Option<Decision> {
        self.config
            .decide_live(req, self.route, &self.live, &mut self.rng)
    }

    fn names(&self, d: &Decision) -> (&str, &str) {
        let policy = self.config.policy(d.policy);
        (
            policy.map_or("", |p| p.name()),
            policy
                .and_then(|p| p.variant(d.variant))
                .map_or("", |v| v.name()),
        )
    }

    /// One request: the decision, and the cookie the filter would set.
    fn one(mut self, spec: &RequestSpec, io: &mut Io) {
        let Some(d) = self.decide(&spec.build()) else {
            if self.json {
                io.json(&UntouchedJson {
                    user: None,
                    policy: (),
                    users: None,
                });
            } else {
                io.out("no policy applies: the request passes untouched");
            }
            return;
        };
        let (policy, variant) = self.names(&d);
        let set_cookie = match (
            d.minted,
            self.config.policy(d.policy).and_then(|p| p.sticky_cookie()),
        ) {
            (Some(id), Some(cookie)) => Some(cookie.set_cookie_value(id.as_str())),
            _ => None,
        };
        if self.json {
            io.json(&RequestJson {
                policy,
                variant,
                reason: d.reason.as_str(),
                bucket: d.bucket,
                set_cookie,
            });
            return;
        }
        io.out(format!(
            "policy={policy} variant={variant} reason={} bucket={}",
            d.reason.as_str(),
            d.bucket.map_or("-".to_string(), |b| b.to_string())
        ));
        if let Some(cookie) = set_cookie {
            io.out(format!("set-cookie: {cookie}"));
        }
    }

    /// `n` synthetic users: the split they get, or one line each.
    fn users(
        mut self,
        spec: &RequestSpec,
        n: u32,
        per_user: bool,
        seed: u64,
        raw: &RawConfig,
        io: &mut Io,
    ) {
        let base = spec.build();
        let index = self
            .route
            .and_then(RouteOverride::policy)
            .or_else(|| self.config.find_policy(&base));
        let Some((index, policy)) = index.and_then(|i| Some((i, self.config.policy(i)?))) else {
            if self.json {
                io.json(&UntouchedJson {
                    user: None,
                    policy: (),
                    users: Some(n),
                });
            } else {
                io.out(format!("no policy applies: the {n} users pass untouched"));
            }
            return;
        };
        // The compiled policies are the raw ones, in order.
        let raw = raw.policies.get(index).filter(|p| p.name == policy.name());
        let key = raw
            .and_then(|p| p.sticky.as_ref())
            .and_then(|s| s.keys.first());
        if key.is_none() {
            io.err(format!(
                "note: policy {} has no sticky key: the {n} users are {n} requests with the random source (seed {seed})",
                policy.name()
            ));
        }
        // The weights the decisions follow: route metadata, else the split in force (ramp
        // applied); a tripped guard's variant shows 0.
        let live = self.live.get(index).unwrap_or(policy.split());
        let split = match (self.route.and_then(|r| r.split_for(index)), live.divert()) {
            (Some(route), Some((from, to))) => route.diverted(from, to),
            (Some(route), None) => route.clone(),
            (None, _) => live.clone(),
        };

        let mut counts = vec![0u64; policy.variants().len()];
        let mut reasons = [0u64; Reason::ALL.len()];
        let mut untouched = 0u64;
        for i in 0..n {
            let id = format!("user-{i}");
            let d = match key {
                Some(key) => self.decide(&spec.with_user(key, &id, i).build()),
                None => self.decide(&base),
            };
            let Some(d) = d else {
                untouched += 1;
                if per_user && self.json {
                    io.json(&UntouchedJson {
                        user: Some(&id),
                        policy: (),
                        users: None,
                    });
                } else if per_user {
                    io.out(format!("{id} - none -"));
                }
                continue;
            };
            if per_user {
                let (_, variant) = self.names(&d);
                if self.json {
                    io.json(&UserJson {
                        user: &id,
                        variant,
                        reason: d.reason.as_str(),
                        bucket: d.bucket,
                    });
                } else {
                    io.out(format!(
                        "{id} {variant} {} {}",
                        d.reason.as_str(),
                        d.bucket.map_or("-".to_string(), |b| b.to_string())
                    ));
                }
                continue;
            }
            if let Some(c) = counts.get_mut(d.variant) {
                *c += 1;
            }
            if let Some(r) = Reason::ALL
                .iter()
                .position(|r| *r == d.reason)
                .and_then(|p| reasons.get_mut(p))
            {
                *r += 1;
            }
        }
        if per_user {
            return;
        }

        let share = |count: u64| count as f64 * 100.0 / f64::from(n);
        let reason_counts: Vec<(&str, u64)> = Reason::ALL
            .iter()
            .zip(reasons)
            .filter(|(_, c)| *c > 0)
            .map(|(r, c)| (r.as_str(), c))
            .collect();
        let key_text = key.map(describe_key);
        if self.json {
            let variants = policy
                .variants()
                .iter()
                .zip(&counts)
                .zip(split.weights_bp())
                .map(|((v, count), bp)| VariantJson {
                    name: v.name(),
                    count: *count,
                    percent: (share(*count) * 1000.0).round() / 1000.0,
                    weight: Weight(*bp),
                })
                .collect();
            io.json(&UsersJson {
                policy: policy.name(),
                users: n,
                sticky_key: key_text,
                enabled: split.enabled(),
                variants,
                reasons: Counts(reason_counts),
                untouched: Some(untouched).filter(|u| *u > 0),
            });
            return;
        }

        let source = if split.divert().is_some() {
            "the tripped guard"
        } else if self.route.and_then(|r| r.split_for(index)).is_some() {
            "route metadata"
        } else if policy
            .ramp()
            .is_some_and(|r| r.weight_bp(self.now).is_some())
        {
            "the ramp"
        } else {
            "node metadata"
        };
        io.out(format!(
            "policy {}: {n} users, {}; weights {}",
            policy.name(),
            match &key_text {
                Some(k) => format!("sticky key {k} = user-N"),
                None => "no sticky key".to_string(),
            },
            describe_split(policy, &split, raw, source)
        ));
        let width = policy
            .variants()
            .iter()
            .map(|v| v.name().len())
            .max()
            .unwrap_or(0)
            .max("variant".len());
        io.out(format!(
            "{:<width$}  {:>9}  {:>7}  {:>8}",
            "variant", "users", "share", "weight"
        ));
        for ((v, count), bp) in policy
            .variants()
            .iter()
            .zip(&counts)
            .zip(split.weights_bp())
        {
            io.out(format!(
                "{:<width$}  {:>9}  {:>5.1} %  {:>6} %",
                v.name(),
                count,
                share(*count),
                percent(*bp)
            ));
        }
        if untouched > 0 {
            io.out(format!("{:<width$}  {untouched:>9}  (no policy)", "-"));
        }
        let reasons = reason_counts
            .iter()
            .map(|(r, c)| format!("{r} {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        io.out(format!("reasons: {reasons}"));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn options_keep_their_names_and_values() {
        let Ok(super::super::Command::Simulate(args)) = super::super::parse(&[
            "simulate",
            "c.yaml",
            "--seed=3",
            "--header",
            "A=1",
            "--json",
            "--header",
            "b=2=3",
            "--label",
            "app=x",
            "--users",
            "16777216",
            "--per-user",
            "--source-ip",
            "::1",
        ]) else {
            panic!("not simulate");
        };
        assert_eq!(args.seed, 3);
        assert!(args.json && args.per_user && !args.guard_tripped);
        assert_eq!(args.users, Some(MAX_USERS));
        assert_eq!(args.proxy.label, [("app".into(), "x".into())]);
        let spec = RequestSpec::from_args(&args.request);
        assert_eq!(
            spec.headers,
            [("a".into(), "1".into()), ("b".into(), "2=3".into())]
        );
        assert_eq!((spec.host.as_str(), spec.path.as_str()), ("localhost", "/"));
        assert_eq!(spec.source.as_deref(), Some("[::1]:40000"));
    }

    #[test]
    fn weights_are_written_as_their_exact_decimals() {
        for bp in 0..=canary_router::BUCKETS {
            let json = serde_json::to_string(&Weight(bp)).unwrap();
            assert_eq!(json, percent(bp), "{bp} bp");
        }
        assert_eq!(serde_json::to_string(&Weight(1250)).unwrap(), "12.5");
    }

    #[test]
    fn reasons_keep_their_order() {
        let counts = Counts(vec![("sticky_key", 2), ("guard", 1)]);
        assert_eq!(
            serde_json::to_string(&counts).unwrap(),
            r#"{"sticky_key":2,"guard":1}"#
        );
    }
}
