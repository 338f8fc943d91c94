//! `canary-router simulate CONFIG`: one request, or many synthetic users.

use std::fmt::Write as _;
use std::net::IpAddr;

use canary_router::config::{RawConfig, RawKey};
use canary_router::{Config, Decision, Reason, RouteOverride, SimpleRequest, Split, SplitMix64};
use serde_json::Value;

use super::args::{Args, Opt};
use super::{
    compile, describe_key, describe_split, environment, label, percent, read, sources, Io, Usage,
    ENV_OPTS, INVALID,
};

pub const OPTS: &[Opt] = &[
    ENV_OPTS[0],
    ENV_OPTS[1],
    Opt::value("--host"),
    Opt::value("--path"),
    Opt::repeated("--header"),
    Opt::repeated("--cookie"),
    Opt::repeated("--query"),
    Opt::value("--route"),
    Opt::value("--source-ip"),
    Opt::value("--route-metadata"),
    Opt::value("--seed"),
    Opt::value("--users"),
    Opt::flag("--per-user"),
    Opt::value("--at"),
    Opt::flag("--guard-tripped"),
    Opt::flag("--json"),
];

/// Most synthetic users: each gets its own source address in 10.0.0.0/8.
const MAX_USERS: u32 = 1 << 24;
/// Port of the simulated downstream address.
const SOURCE_PORT: u16 = 40000;

pub fn run(args: &Args, io: &mut Io) -> Result<u8, Usage> {
    let file = match args.positional.as_slice() {
        [file] => file,
        [] => return Err(Usage("simulate needs a CONFIG file".into())),
        _ => return Err(Usage("simulate takes one CONFIG file".into())),
    };
    let env = environment(args)?;
    let spec = RequestSpec::from_args(args)?;
    let seed = args.number::<u64>("--seed")?.unwrap_or(1);
    let users = args.number::<u32>("--users")?;
    if users.is_some_and(|n| n == 0 || n > MAX_USERS) {
        return Err(Usage(format!("--users must be between 1 and {MAX_USERS}")));
    }
    let per_user = args.flag("--per-user");
    if per_user && users.is_none() {
        return Err(Usage("--per-user needs --users N".into()));
    }
    let json = args.flag("--json");
    let now = match args.value("--at") {
        Some(text) => {
            canary_router::ramp::parse_rfc3339(text).map_err(|e| Usage(format!("--at: {e}")))?
        }
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    };
    let tripped = args.flag("--guard-tripped");
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
        .value("--route-metadata")
        .and_then(|text| route_override(&config, text, io));

    let tripped = vec![tripped; config.policies().len()];
    let sim = Simulation {
        config: &config,
        route: route.as_ref(),
        now,
        live: config.effective_splits(now, &tripped),
        rng: SplitMix64::new(seed),
        json,
    };
    match users {
        None => sim.one(&spec, io),
        Some(n) => sim.users(&spec, n, per_user, seed, &raw, io),
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

/// The request described by the options, before it becomes a [`SimpleRequest`].
#[derive(Debug, Clone)]
struct RequestSpec {
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    cookies: Vec<(String, String)>,
    query: Vec<(String, String)>,
    /// A query parameter placed first in the query string (a synthetic user's id).
    lead_query: Option<(String, String)>,
    route: Option<String>,
    source: Option<String>,
}

impl RequestSpec {
    fn from_args(args: &Args) -> Result<RequestSpec, Usage> {
        let path = args.value("--path").unwrap_or("/");
        if !path.starts_with('/') {
            return Err(Usage(format!("--path {path:?} must start with '/'")));
        }
        let source = match args.value("--source-ip") {
            None => None,
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(ip)) => Some(format!("{ip}:{SOURCE_PORT}")),
                Ok(IpAddr::V6(ip)) => Some(format!("[{ip}]:{SOURCE_PORT}")),
                Err(_) => return Err(Usage(format!("--source-ip {ip:?} is not an IP address"))),
            },
        };
        Ok(RequestSpec {
            host: args.value("--host").unwrap_or("localhost").to_string(),
            path: path.to_string(),
            headers: args
                .pairs("--header")?
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            cookies: args.pairs("--cookie")?,
            query: args.pairs("--query")?,
            lead_query: None,
            route: args.value("--route").map(str::to_string),
            source,
        })
    }

    /// The request of synthetic user number `n`, whose `id` is placed in `key`.
    fn with_user(&self, key: &RawKey, id: &str, n: u32) -> RequestSpec {
        let mut s = self.clone();
        if let Some(h) = &key.header {
            let h = h.to_ascii_lowercase();
            s.headers.retain(|(k, _)| *k != h);
            s.headers.push((h, id.to_string()));
        } else if let Some(c) = &key.cookie {
            s.cookies.retain(|(k, _)| k != c);
            s.cookies.insert(0, (c.clone(), id.to_string()));
        } else if let Some(q) = &key.query {
            s.query.retain(|(k, _)| k != q);
            s.lead_query = Some((q.clone(), id.to_string()));
        } else {
            let [_, a, b, c] = n.to_be_bytes();
            s.source = Some(format!("10.{a}.{b}.{c}:{SOURCE_PORT}"));
        }
        s
    }

    /// The path with the query parameters: the user's first, then the path's own, then
    /// `--query` in order.
    fn full_path(&self) -> String {
        if self.lead_query.is_none() && self.query.is_empty() {
            return self.path.clone();
        }
        let (base, own) = match self.path.split_once('?') {
            Some((base, own)) => (base, Some(own).filter(|q| !q.is_empty())),
            None => (self.path.as_str(), None),
        };
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.lead_query.iter().map(|(k, v)| query_pair(k, v)));
        parts.extend(own.map(str::to_string));
        parts.extend(self.query.iter().map(|(k, v)| query_pair(k, v)));
        format!("{base}?{}", parts.join("&"))
    }

    fn build(&self) -> SimpleRequest {
        let mut req = SimpleRequest::new(&self.host, &self.full_path());
        if !self.cookies.is_empty() {
            let cookie = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            req = req.header("cookie", &cookie);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        req.route_name = self.route.clone();
        req.source_address = self.source.clone();
        req
    }
}

/// `k=v` with what must be percent-encoded in a query string encoded (`&`, `#`, `+`, `%`,
/// spaces, non-ASCII, …; `=` too in the name).
fn query_pair(k: &str, v: &str) -> String {
    let mut s = String::with_capacity(k.len() + v.len() + 1);
    encode(k, false, &mut s);
    s.push('=');
    encode(v, true, &mut s);
    s
}

fn encode(text: &str, equals_ok: bool, out: &mut String) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$'()*,;:@/?".contains(&b) || (equals_ok && b == b'=')
        {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// A JSON object with its fields in the given order (values are JSON text).
fn object(fields: &[(&str, String)]) -> String {
    let body = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(*k)))
        .collect::<Vec<_>>()
        .join(",");
    format!("{{{body}}}")
}

/// A value as JSON text.
fn js(v: impl Into<Value>) -> String {
    v.into().to_string()
}

/// A weight as a JSON number: 10, or 10.5.
fn weight_value(bp: u16) -> Value {
    if bp % 100 == 0 {
        Value::from(bp / 100)
    } else {
        Value::from(f64::from(bp) / 100.0)
    }
}

fn bucket_value(d: &Decision) -> Value {
    d.bucket.map_or(Value::Null, Value::from)
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
            io.out(if self.json {
                object(&[("policy", js(Value::Null))])
            } else {
                "no policy applies: the request passes untouched".to_string()
            });
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
            io.out(object(&[
                ("policy", js(policy)),
                ("variant", js(variant)),
                ("reason", js(d.reason.as_str())),
                ("bucket", js(bucket_value(&d))),
                (
                    "set_cookie",
                    js(set_cookie.map_or(Value::Null, Value::from)),
                ),
            ]));
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
            io.out(if self.json {
                object(&[("policy", js(Value::Null)), ("users", js(n))])
            } else {
                format!("no policy applies: the {n} users pass untouched")
            });
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
                if per_user {
                    io.out(if self.json {
                        object(&[("user", js(id)), ("policy", js(Value::Null))])
                    } else {
                        format!("{id} - none -")
                    });
                }
                continue;
            };
            if per_user {
                let (_, variant) = self.names(&d);
                io.out(if self.json {
                    object(&[
                        ("user", js(id.as_str())),
                        ("variant", js(variant)),
                        ("reason", js(d.reason.as_str())),
                        ("bucket", js(bucket_value(&d))),
                    ])
                } else {
                    format!(
                        "{id} {variant} {} {}",
                        d.reason.as_str(),
                        d.bucket.map_or("-".to_string(), |b| b.to_string())
                    )
                });
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
                .map(|((v, c), bp)| {
                    object(&[
                        ("name", js(v.name())),
                        ("count", js(*c)),
                        ("percent", js((share(*c) * 1000.0).round() / 1000.0)),
                        ("weight", js(weight_value(*bp))),
                    ])
                })
                .collect::<Vec<_>>();
            let reasons = reason_counts
                .iter()
                .map(|(r, c)| (*r, js(*c)))
                .collect::<Vec<_>>();
            let mut fields = vec![
                ("policy", js(policy.name())),
                ("users", js(n)),
                ("sticky_key", js(key_text.map_or(Value::Null, Value::from))),
                ("enabled", js(split.enabled())),
                ("variants", format!("[{}]", variants.join(","))),
                ("reasons", object(&reasons)),
            ];
            if untouched > 0 {
                fields.push(("untouched", js(untouched)));
            }
            io.out(object(&fields));
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
