//! Validation of a [`RawConfig`] and its compiled runtime form.
//!
//! Everything that can be computed once is computed here, at configure time: lowercased header
//! names, bucket ranges, compiled regexes, the `Set-Cookie` attribute suffix, the host index.
//! The per-request path ([`crate::decide`]) only reads this structure.

use crate::config::{
    RawConfig, RawCookie, RawGuard, RawKey, RawMatch, RawNotify, RawPolicy, RawRamp, RawRule,
    RawVariant, DEFAULT_VARIANT_HEADER,
};
use crate::error::{cat, child, decimal, element, push_decimal, ConfigError, ConfigErrors, Errors};
use crate::guard::{Format, Guard, OnTrip, Receiver, MAX_WINDOW_SECONDS};
use crate::index::PolicyIndex;
use crate::json::{quote, FixedError};
use crate::overrides::{apply_node_overrides, Environment};
use crate::ramp::{parse_rfc3339, Ramp, RampForm};
use crate::BUCKETS;

/// Largest configuration document accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;
/// Longest name (policy, variant) accepted.
pub const MAX_NAME_LEN: usize = 64;

/// A validated, ready-to-serve configuration.
#[derive(Debug)]
pub struct Config {
    pub(crate) variant_header: String,
    pub(crate) expose_variant: bool,
    pub(crate) route_metadata: bool,
    pub(crate) filter_state: bool,
    pub(crate) policies: Vec<Policy>,
    pub(crate) index: PolicyIndex,
    pub(crate) warnings: Vec<ConfigError>,
    /// Identifies the configuration document and node metadata it was compiled from.
    pub(crate) fingerprint: u64,
    /// Identifies the configuration document alone, in canonical form (see
    /// [`Config::document_fingerprint`]).
    pub(crate) document_fingerprint: u64,
}

impl Config {
    /// Parses and compiles a JSON plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigErrors> {
        Config::from_json_in(bytes, &Environment::default())
    }

    /// Parses and compiles a JSON plugin configuration for a proxy with node metadata `env`.
    pub fn from_json_in(bytes: &[u8], env: &Environment) -> Result<Config, ConfigErrors> {
        let doc = parse_document(bytes)?;
        let mut config = compile_in(&decode(&doc)?, env)?;
        let mut h = xxhash_rust::xxh3::xxh3_64(bytes);
        let mut mix = |part: &[u8]| {
            h = xxhash_rust::xxh3::xxh3_64_with_seed(part, h);
        };
        mix(env.node_overrides.as_deref().unwrap_or_default().as_bytes());
        for (k, v) in &env.labels {
            mix(k.as_bytes());
            mix(v.as_bytes());
        }
        config.fingerprint = h;
        config.document_fingerprint =
            xxhash_rust::xxh3::xxh3_64(crate::json::canonical(&doc).as_bytes());
        Ok(config)
    }

    /// A hash of the configuration document and the node metadata it was compiled with: equal
    /// on every worker of a proxy that runs the same configuration, different after a change.
    /// Guards key their shared state by it, so a new configuration starts them afresh.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A hash (xxh3_64) of the configuration document in canonical form
    /// ([`crate::json::canonical`]: members sorted, numbers as exact decimals, no whitespace),
    /// without node metadata: the same for the `pluginConfig` of a WasmPlugin as written in Git
    /// and as Istio delivers it to every proxy (re-serialized from a protobuf `Struct`, `10`
    /// possibly as `10.0`), so a proxy can name the configuration in force to the GitOps side.
    /// Written for people as 16 hex digits (`format!("{:016x}", fp)`); `canary-router
    /// fingerprint FILE` prints it for the configurations of a file. (Integers beyond 2^53 are
    /// rounded by the `Struct`'s doubles and would differ; no setting is that large.)
    pub fn document_fingerprint(&self) -> u64 {
        self.document_fingerprint
    }

    /// Problems in node metadata overrides: each disabled its own override; the configuration
    /// works without them.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The request header the decision is written to (lowercase).
    pub fn variant_header(&self) -> &str {
        &self.variant_header
    }

    /// Whether the variant is also returned in a response header of the same name.
    pub fn expose_variant(&self) -> bool {
        self.expose_variant
    }

    /// Whether route metadata overrides are read (`"route_metadata": true`).
    pub fn route_metadata(&self) -> bool {
        self.route_metadata
    }

    /// Whether the decision is written to filter state for access logs (`"filter_state": true`).
    pub fn filter_state(&self) -> bool {
        self.filter_state
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn policy(&self, index: usize) -> Option<&Policy> {
        self.policies.get(index)
    }

    /// True when some policy selects on Envoy route names, so the route name must be read.
    pub fn uses_routes(&self) -> bool {
        self.index.uses_routes()
    }
}

/// One compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) routes: Option<Vec<String>>,
    /// `salt ":"`, the prefix of every hashed key.
    pub(crate) salt_prefix: Vec<u8>,
    pub(crate) trust_incoming: bool,
    pub(crate) variants: Vec<Variant>,
    pub(crate) split: Split,
    pub(crate) keys: Vec<Key>,
    pub(crate) cookie: Option<StickyCookie>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) ramp: Option<Ramp>,
    pub(crate) guard: Option<Guard>,
}

impl Policy {
    /// The policy's scheduled ramp, if any.
    pub fn ramp(&self) -> Option<&Ramp> {
        self.ramp.as_ref()
    }

    /// The policy's guard, if any.
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }

    /// The split in force at unix time `now` (seconds): the configured split (with node
    /// overrides) with the ramp applied once it has started.
    pub fn split_at(&self, now: i64) -> Split {
        self.ramp
            .as_ref()
            .and_then(|r| r.apply(&self.split, now))
            .unwrap_or_else(|| self.split.clone())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    pub fn variant(&self, index: usize) -> Option<&Variant> {
        self.variants.get(index)
    }

    /// The variant that owns `bucket` under the split in force (plugin configuration with node
    /// metadata overrides applied).
    pub fn variant_for_bucket(&self, bucket: u16) -> usize {
        self.split.variant_for_bucket(bucket)
    }

    /// The weights in force (plugin configuration with node metadata overrides applied).
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Index of the variant called `name`, if any.
    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }

    /// The sticky cookie this policy mints, if configured.
    pub fn sticky_cookie(&self) -> Option<&StickyCookie> {
        self.cookie.as_ref()
    }
}

/// A variant of a policy. Its share of traffic is in the policy's [`Split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub(crate) name: String,
}

impl Variant {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The weights in force for a policy: variant `i` owns buckets `start(i)..ends[i]`, in the
/// listed order. A disabled split sends everything to the last variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    weights_bp: Vec<u16>,
    ends: Vec<u16>,
    enabled: bool,
    /// `(from, to)`: a tripped guard sends variant `from`'s requests to `to`.
    divert: Option<(usize, usize)>,
}

impl Split {
    /// `weights_bp` are basis points (1/100 of a percent) per variant, summing to 10 000.
    pub(crate) fn new(weights_bp: Vec<u16>, enabled: bool) -> Split {
        let mut end: u16 = 0;
        let mut ends = Vec::with_capacity(weights_bp.len());
        for w in &weights_bp {
            end = end.saturating_add(*w).min(BUCKETS);
            ends.push(end);
        }
        Split {
            weights_bp,
            ends,
            enabled,
            divert: None,
        }
    }

    /// This split with variant `from`'s requests sent to `to` (a tripped guard): the weights
    /// show `from`'s weight moved to `to`, the buckets stay where they are, so no other user
    /// moves and `from`'s users come back to it when the guard re-arms.
    pub fn diverted(&self, from: usize, to: usize) -> Split {
        let mut weights_bp = self.weights_bp.clone();
        let moved = weights_bp.get_mut(from).map(std::mem::take).unwrap_or(0);
        if let Some(w) = weights_bp.get_mut(to) {
            *w = w.saturating_add(moved);
        }
        Split {
            weights_bp,
            ends: self.ends.clone(),
            enabled: self.enabled,
            divert: Some((from, to)),
        }
    }

    /// `(from, to)` when a tripped guard diverts a variant.
    pub fn divert(&self) -> Option<(usize, usize)> {
        self.divert
    }

    /// Weight of each variant in basis points (10 % is 1000), in variant order.
    pub fn weights_bp(&self) -> &[u16] {
        &self.weights_bp
    }

    /// The buckets variant `index` owns.
    pub fn buckets(&self, index: usize) -> std::ops::Range<u16> {
        let start = match index.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(BUCKETS),
            None => 0,
        };
        start..self.ends.get(index).copied().unwrap_or(start)
    }

    /// False when the policy is turned off (`"enabled": false`): all traffic to the last variant.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The variant that owns `bucket` (`0 <= bucket < BUCKETS`).
    pub fn variant_for_bucket(&self, bucket: u16) -> usize {
        self.ends
            .iter()
            .position(|end| bucket < *end)
            .unwrap_or(self.ends.len().saturating_sub(1))
    }

    /// The same split with the fields an override sets replaced.
    pub(crate) fn with(&self, weights_bp: Option<Vec<u16>>, enabled: Option<bool>) -> Split {
        Split::new(
            weights_bp.unwrap_or_else(|| self.weights_bp.clone()),
            enabled.unwrap_or(self.enabled),
        )
    }
}

/// Where a sticky key or a rule condition reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Header(String),
    Cookie(String),
    Query(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Value(Source),
    SourceIp,
}

/// The cookie minted for users with no sticky key.
#[derive(Debug, Clone)]
pub struct StickyCookie {
    pub(crate) name: String,
    /// `; Max-Age=…; Path=…; …`, appended after `name=value`.
    pub(crate) attributes: String,
}

impl StickyCookie {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` header value for a minted id.
    pub fn set_cookie_value(&self, id: &str) -> String {
        let mut s = String::with_capacity(self.name.len() + 1 + id.len() + self.attributes.len());
        s.push_str(&self.name);
        s.push('=');
        s.push_str(id);
        s.push_str(&self.attributes);
        s
    }
}

#[derive(Debug)]
pub struct Rule {
    pub(crate) variant: usize,
    pub(crate) conditions: Vec<Condition>,
}

#[derive(Debug)]
pub struct Condition {
    pub(crate) source: Source,
    pub(crate) op: Op,
}

#[derive(Debug)]
pub enum Op {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Present(bool),
    Regex(crate::regex::Regex),
}

/// Parses JSON into the raw configuration, naming the JSON path on error.
pub fn parse_json(bytes: &[u8]) -> Result<RawConfig, ConfigErrors> {
    decode(&parse_document(bytes)?)
}

/// The JSON document of a plugin configuration: size and syntax checked, not yet decoded.
fn parse_document(bytes: &[u8]) -> Result<crate::json::Value, ConfigErrors> {
    if bytes.len() > MAX_CONFIG_BYTES {
        let message = cat(&[
            "configuration is ",
            &decimal(bytes.len() as u64),
            " bytes; the limit is ",
            &decimal(MAX_CONFIG_BYTES as u64),
        ]);
        return Err(ConfigErrors::single("(config)", message));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigErrors::single(
            "(config)",
            "configuration is empty; expected a JSON object with \"policies\"",
        ));
    }
    crate::json::parse(bytes).map_err(|e| syntax_error(&e, ""))
}

/// A parsed document as a [`RawConfig`], every shape error with its path.
fn decode(value: &crate::json::Value) -> Result<RawConfig, ConfigErrors> {
    let mut errs = Errors::default();
    match RawConfig::decode(value, &mut errs) {
        Some(raw) if errs.is_empty() => Ok(raw),
        _ => errs.finish_err(),
    }
}

/// A JSON syntax error as a configuration error under `base` (the path of the document).
pub(crate) fn syntax_error(e: &crate::json::SyntaxError, base: &str) -> ConfigErrors {
    let path = match (base.is_empty(), e.path.starts_with('[')) {
        (true, _) if e.path.is_empty() => "(config)".to_string(),
        (true, _) => e.path.clone(),
        (false, _) if e.path.is_empty() => base.to_string(),
        (false, true) => cat(&[base, &e.path]),
        (false, false) => child(base, &e.path),
    };
    let message = cat(&[
        &e.message,
        " at line ",
        &decimal(e.line as u64),
        " column ",
        &decimal(e.column as u64),
    ]);
    ConfigErrors::single(path, message)
}

/// Validates a raw configuration and builds its runtime form, reporting every error found.
pub fn compile(raw: &RawConfig) -> Result<Config, ConfigErrors> {
    compile_in(raw, &Environment::default())
}

/// [`compile`] for a proxy with node metadata `env`: `source_label` conditions are decided
/// against its labels, and its `CANARY_ROUTER` overrides are applied.
pub fn compile_in(raw: &RawConfig, env: &Environment) -> Result<Config, ConfigErrors> {
    let mut errs = Errors::default();

    let variant_header = match &raw.variant_header {
        None => DEFAULT_VARIANT_HEADER.to_string(),
        Some(h) => match header_name(h) {
            Ok(h) => h,
            Err(m) => {
                errs.push("variant_header", &m);
                String::new()
            }
        },
    };

    if raw.policies.is_empty() {
        errs.push("policies", "must list at least one policy");
    }
    let mut policies = Vec::with_capacity(raw.policies.len());
    let mut seen = crate::index::NameMap::with_capacity(raw.policies.len());
    for (i, p) in raw.policies.iter().enumerate() {
        let path = element("policies", i);
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        // The same lookup as the policy index's (one copy of the hashing code): the name is
        // copied only when new, and a repeat names the previous policy of that name.
        let previous = match seen.entry_ref(p.name.as_str()) {
            hashbrown::hash_map::EntryRef::Occupied(mut e) => Some(e.insert(index)),
            hashbrown::hash_map::EntryRef::Vacant(e) => {
                e.insert(index);
                None
            }
        };
        if let Some(first) = previous {
            let message = cat(&[
                "duplicate policy name ",
                &quote(&p.name),
                " (also ",
                &element("policies", first as usize),
                ")",
            ]);
            errs.push_at(&path, "name", &message);
        }
        if let Some(policy) = compile_policy(p, &path, env, &mut errs) {
            policies.push(policy);
        }
    }
    if !errs.is_empty() {
        return errs.finish_err();
    }
    let warnings = match &env.node_overrides {
        Some(json) => apply_node_overrides(json, &mut policies),
        None => Vec::new(),
    };
    let index = PolicyIndex::build(&policies);
    errs.finish(Config {
        variant_header,
        expose_variant: raw.expose_variant,
        route_metadata: raw.route_metadata,
        filter_state: raw.filter_state,
        policies,
        index,
        warnings,
        fingerprint: 0,
        document_fingerprint: 0,
    })
}

fn compile_policy(
    p: &RawPolicy,
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Policy> {
    let before = errs.len();
    if let Err(m) = name(&p.name) {
        errs.push_at(path, "name", &m);
    }

    let hosts = p.hosts.as_ref().map(|hosts| {
        if hosts.is_empty() {
            errs.push_at(
                path,
                "hosts",
                "must not be empty; omit it to match any host",
            );
        }
        let mut patterns = Vec::with_capacity(hosts.len());
        for (j, h) in hosts.iter().enumerate() {
            match host_pattern(h) {
                Ok(h) => patterns.push(h),
                Err(m) => errs.push_owned(element(&child(path, "hosts"), j), m),
            }
        }
        patterns
    });

    if let Some(prefix) = &p.path_prefix {
        if !prefix.starts_with('/') {
            errs.push_at(path, "path_prefix", &quoted(prefix, " must start with '/'"));
        }
    }

    if let Some(routes) = &p.routes {
        if routes.is_empty() {
            errs.push_at(
                path,
                "routes",
                "must not be empty; omit it to match any route",
            );
        }
        for (j, r) in routes.iter().enumerate() {
            if r.is_empty() {
                let at = element(&child(path, "routes"), j);
                errs.push(&at, "route name must not be empty");
            }
        }
    }

    let salt = p.salt.as_deref().unwrap_or(&p.name);
    if p.salt.as_deref() == Some("") {
        errs.push_at(
            path,
            "salt",
            "must not be empty; omit it to use the policy name",
        );
    }
    let mut salt_prefix = Vec::with_capacity(salt.len() + 1);
    salt_prefix.extend_from_slice(salt.as_bytes());
    salt_prefix.push(b':');

    let (variants, weights) = compile_variants(p, path, errs);

    let (keys, cookie) = match &p.sticky {
        None => (Vec::new(), None),
        Some(s) => {
            let sticky = child(path, "sticky");
            if s.keys.is_empty() && s.cookie.is_none() {
                errs.push(
                    &sticky,
                    "set \"keys\", \"cookie\" or both; omit \"sticky\" for a random split",
                );
            }
            let keys_path = child(&sticky, "keys");
            let mut keys = Vec::with_capacity(s.keys.len());
            for (j, k) in s.keys.iter().enumerate() {
                if let Some(key) = compile_key(k, &element(&keys_path, j), errs) {
                    keys.push(key);
                }
            }
            let cookie = s
                .cookie
                .as_ref()
                .and_then(|c| compile_cookie(c, &child(&sticky, "cookie"), errs));
            (keys, cookie)
        }
    };

    let rules_path = child(path, "rules");
    let mut rules = Vec::with_capacity(p.rules.len());
    for (j, r) in p.rules.iter().enumerate() {
        if let Some(rule) = compile_rule(r, &variants, &element(&rules_path, j), env, errs) {
            rules.push(rule);
        }
    }

    let ramp = p
        .ramp
        .as_ref()
        .and_then(|r| compile_ramp(r, &variants, &weights, &child(path, "ramp"), errs));

    let guard = p
        .guard
        .as_ref()
        .and_then(|g| compile_guard(g, &variants, &child(path, "guard"), env, errs));

    if errs.len() != before {
        return None;
    }
    Some(Policy {
        name: p.name.clone(),
        hosts,
        path_prefix: p.path_prefix.clone(),
        routes: p.routes.clone(),
        salt_prefix,
        trust_incoming: p.trust_incoming,
        variants,
        split: Split::new(weights, true),
        keys,
        cookie,
        rules,
        ramp,
        guard,
    })
}

/// Checks a guard: its variant and baseline exist and differ, at least one limit is set, and
/// every number is in range. Defaults: the last variant as baseline, a 10 s window, 20
/// requests, abort on trip (`rearm`: a 300 s hold, at most 3 trips).
fn compile_guard(
    g: &RawGuard,
    variants: &[Variant],
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Guard> {
    let before = errs.len();
    let variant = find_variant(variants, &g.variant, path, "variant", errs);
    let baseline = match &g.baseline {
        Some(b) => find_variant(variants, b, path, "baseline", errs),
        None => variants.len().checked_sub(1),
    };
    if variant.is_some() && variant == baseline {
        let message = cat(&[
            "the baseline must be another variant than ",
            &quote(&g.variant),
        ]);
        errs.push_at(path, "baseline", &message);
    }
    let ranged = |v: Option<u64>, default: u64, max: u64, field: &str, errs: &mut Errors| {
        let v = v.unwrap_or(default);
        if v == 0 || v > max {
            errs.push_at(path, field, &out_of_range(v, max));
        }
        u32::try_from(v).unwrap_or_default()
    };
    let window_seconds = ranged(
        g.window_seconds,
        10,
        MAX_WINDOW_SECONDS,
        "window_seconds",
        errs,
    );
    let on_trip = match g.on_trip.as_deref() {
        None | Some("abort") => OnTrip::Abort,
        Some("rearm") => OnTrip::Rearm,
        Some(other) => {
            errs.push_at(
                path,
                "on_trip",
                &quoted(
                    other,
                    " is not a choice: \"abort\" (the variant stays off until the configuration \
                     changes) or \"rearm\" (back after hold_seconds, at most max_trips times)",
                ),
            );
            OnTrip::Abort
        }
    };
    if on_trip == OnTrip::Abort {
        let rearm_only = [
            ("hold_seconds", g.hold_seconds.is_some()),
            ("max_trips", g.max_trips.is_some()),
        ];
        for (field, set) in rearm_only {
            if set {
                errs.push_at(
                    path,
                    field,
                    "applies to \"on_trip\": \"rearm\" only; an aborting guard (the default) \
                     keeps the variant off until the configuration changes",
                );
            }
        }
    }
    let hold_seconds = ranged(g.hold_seconds, 300, 86_400, "hold_seconds", errs);
    let max_trips = ranged(g.max_trips, 3, 1_000, "max_trips", errs);
    let min_requests = ranged(g.min_requests, 20, 1_000_000, "min_requests", errs);
    let max_p99_ms = g
        .max_p99_ms
        .map(|v| ranged(Some(v), v, 3_600_000, "max_p99_ms", errs));
    let fraction = |text: &String, field: &str, errs: &mut Errors| match crate::json::fixed_point(
        text, 6, 1_000_000,
    ) {
        Ok(ppm) => u32::try_from(ppm).unwrap_or_default(),
        Err(e) => {
            let problem = match e {
                FixedError::Precision => " has more than six decimals",
                FixedError::Range => " must be a fraction from 0 to 1 (0.05 is 5 %)",
            };
            errs.push_at(path, field, &cat(&[text, problem]));
            0
        }
    };
    let max_failure_ppm = g
        .max_failure_rate
        .as_ref()
        .map(|text| fraction(text, "max_failure_rate", errs));
    let max_increase_ppm = g
        .max_failure_rate_increase
        .as_ref()
        .map(|text| fraction(text, "max_failure_rate_increase", errs));
    let max_p99_ratio_milli =
        g.max_p99_ratio
            .as_ref()
            .map(|text| match crate::json::fixed_point(text, 3, 1_000_000) {
                Ok(milli) if milli >= 1000 => u32::try_from(milli).unwrap_or_default(),
                Ok(_) | Err(FixedError::Range) => {
                    errs.push_at(
                        path,
                        "max_p99_ratio",
                        &cat(&[text, " must be a factor from 1 to 1000 (1.5: 50 % slower)"]),
                    );
                    0
                }
                Err(FixedError::Precision) => {
                    errs.push_at(
                        path,
                        "max_p99_ratio",
                        &cat(&[text, " has more than three decimals"]),
                    );
                    0
                }
            });
    if max_failure_ppm.is_none()
        && max_p99_ms.is_none()
        && max_increase_ppm.is_none()
        && max_p99_ratio_milli.is_none()
    {
        errs.push(
            path,
            "set a limit (\"max_failure_rate\", \"max_p99_ms\", \"max_failure_rate_increase\" or \
             \"max_p99_ratio\"); a guard without a limit never trips",
        );
    }
    let notify_path = child(path, "notify");
    let mut receivers = Vec::new();
    for (i, n) in g.notify.iter().flatten().enumerate() {
        let at = if g.notify_list {
            element(&notify_path, i)
        } else {
            notify_path.clone()
        };
        if let Some(r) = compile_receiver(n, &at, env, errs) {
            receivers.push(r);
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(Guard {
        variant: variant?,
        baseline: baseline?,
        window_seconds,
        min_requests,
        max_failure_ppm,
        max_p99_ms,
        max_increase_ppm,
        max_p99_ratio_milli,
        on_trip,
        hold_seconds,
        max_trips,
        receivers,
    })
}

fn compile_receiver(
    n: &RawNotify,
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Receiver> {
    let before = errs.len();
    let format = match n.format.as_deref() {
        None => Format::Slack,
        Some(name) => Format::parse(name).unwrap_or_else(|| {
            let choices = Format::NAMES.map(quote).join(", ");
            errs.push_at(
                path,
                "format",
                &quoted(name, &cat(&[" is not a format: one of ", &choices])),
            );
            Format::Slack
        }),
    };
    if n.cluster.is_empty() {
        errs.push_at(path, "cluster", "must name an Envoy cluster");
    }
    if !n.path.starts_with('/') {
        errs.push_at(path, "path", &quoted(&n.path, " must start with '/'"));
    }
    let url_path = env.expand(&n.path).unwrap_or_else(|m| {
        errs.push_at(path, "path", &m);
        String::new()
    });
    if url_path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        errs.push_at(
            path,
            "path",
            "must not contain spaces or control characters (as written or from a variable)",
        );
    }
    let timeout_ms = n.timeout_ms.unwrap_or(5000);
    if timeout_ms == 0 || timeout_ms > 60_000 {
        errs.push_at(path, "timeout_ms", &out_of_range(timeout_ms, 60_000));
    }
    let retries = n.retries.unwrap_or(3);
    if retries > 10 {
        errs.push_at(
            path,
            "retries",
            &cat(&[&decimal(retries), " is out of range; expected 0 to 10"]),
        );
    }
    let mut headers = Vec::new();
    let headers_path = child(path, "headers");
    for (name, value) in n.headers.iter().flatten() {
        let value = match env.expand(value) {
            Ok(v) => v,
            Err(m) => {
                errs.push_at(&headers_path, name, &m);
                continue;
            }
        };
        match header_name(name) {
            Ok(_) if value.as_bytes().iter().any(|&b| b < b' ' && b != b'\t') => errs.push_at(
                &headers_path,
                name,
                "header value must not contain control characters",
            ),
            Ok(h) => headers.push((h, value)),
            Err(m) => errs.push_at(&headers_path, name, &m),
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(Receiver {
        format,
        cluster: n.cluster.clone(),
        authority: n.authority.clone().unwrap_or_else(|| n.cluster.clone()),
        path: url_path,
        timeout_ms: u32::try_from(timeout_ms).unwrap_or_default(),
        retries: u32::try_from(retries).unwrap_or_default(),
        headers,
    })
}

/// Checks a ramp: its variant exists and is not the last (which takes the remainder), exactly
/// one form is given, every weight is a percentage with at most two decimals that leaves the
/// other variants their weights.
fn compile_ramp(
    r: &RawRamp,
    variants: &[Variant],
    weights: &[u16],
    path: &str,
    errs: &mut Errors,
) -> Option<Ramp> {
    let before = errs.len();
    let variant = find_variant(variants, &r.variant, path, "variant", errs);
    let last = variants.len().saturating_sub(1);
    match variant {
        None => {}
        Some(i) if i == last => errs.push_at(
            path,
            "variant",
            "the last variant takes the remainder; ramp another one",
        ),
        // Buckets are laid out in variant order: a variant between the ramped one and the
        // last would shift as the ramp moves, and its users with it.
        Some(i) if i + 1 != last => {
            let message = cat(&[
                "list the ramped variant just before the last one (",
                &quote(variants.get(last).map_or("", |v| v.name.as_str())),
                "), so that the variants between do not shift as the ramp moves",
            ]);
            errs.push_at(path, "variant", &message);
        }
        _ => {}
    }
    // What the other variants (but the last) keep.
    let fixed = crate::ramp::fixed_weight(weights, variant.unwrap_or(usize::MAX));
    let room = u32::from(BUCKETS).saturating_sub(fixed);
    let weight = |text: &str, at: String, errs: &mut Errors| -> u16 {
        match weight_bp(text) {
            Ok(bp) if u32::from(bp) <= room => bp,
            Ok(_) => {
                let message = cat(&[
                    "weight ",
                    text,
                    " leaves no room for the other variants' ",
                    &format_percent(fixed),
                ]);
                errs.push_owned(at, message);
                0
            }
            Err(m) => {
                errs.push_owned(at, m);
                0
            }
        }
    };
    let start = parse_rfc3339(&r.start).unwrap_or_else(|m| {
        errs.push_at(path, "start", &m);
        0
    });
    let form = match (&r.steps, r.step_seconds, &r.from, &r.to, r.duration_seconds) {
        (Some(steps), Some(step_seconds), None, None, None) => {
            let steps_path = child(path, "steps");
            if steps.is_empty() {
                errs.push(&steps_path, "must list at least one weight");
            }
            let mut bp = Vec::with_capacity(steps.len());
            for (j, w) in steps.iter().enumerate() {
                bp.push(weight(w, element(&steps_path, j), errs));
            }
            RampForm::Steps {
                steps: bp,
                step_seconds,
            }
        }
        (None, None, Some(from), Some(to), Some(duration)) => RampForm::Linear {
            from: weight(from, child(path, "from"), errs),
            to: weight(to, child(path, "to"), errs),
            duration,
        },
        _ => {
            errs.push(
                path,
                "set either \"steps\" and \"step_seconds\", or \"from\", \"to\" and \"duration_seconds\"",
            );
            return None;
        }
    };
    if r.step_seconds == Some(0) || r.duration_seconds == Some(0) {
        errs.push(path, "a ramp's seconds must be at least 1");
    }
    if errs.len() != before {
        return None;
    }
    Some(Ramp {
        variant: variant?,
        start,
        form,
    })
}

fn compile_variants(p: &RawPolicy, path: &str, errs: &mut Errors) -> (Vec<Variant>, Vec<u16>) {
    let vpath = child(path, "variants");
    if p.variants.is_empty() {
        errs.push(&vpath, "must list at least one variant");
        return (Vec::new(), Vec::new());
    }
    let checked = check_weights(&p.variants, &vpath, errs);
    let mut variants = Vec::with_capacity(checked.len());
    let mut weights = Vec::with_capacity(checked.len());
    for &(name, w) in &checked {
        variants.push(Variant {
            name: name.to_string(),
        });
        weights.push(w);
    }
    (variants, weights)
}

/// Checks a `variants` list (names valid and unique, weights percentages with at most two
/// decimals summing to 100) and returns `(name, basis points)` in order.
pub(crate) fn check_weights<'a>(
    list: &'a [RawVariant],
    path: &str,
    errs: &mut Errors,
) -> Vec<(&'a str, u16)> {
    let mut out: Vec<(&str, u16)> = Vec::with_capacity(list.len());
    let mut total: u32 = 0;
    let mut weights_ok = true;
    for (j, v) in list.iter().enumerate() {
        let vpath = element(path, j);
        if let Err(m) = name(&v.name) {
            errs.push_at(&vpath, "name", &m);
        }
        if let Some(first) = out.iter().position(|(n, _)| *n == v.name) {
            let message = cat(&[
                "duplicate variant name ",
                &quote(&v.name),
                " (also ",
                &element(path, first),
                ")",
            ]);
            errs.push_at(&vpath, "name", &message);
        }
        let bp = match weight_bp(&v.weight) {
            Ok(bp) => bp,
            Err(m) => {
                errs.push_at(&vpath, "weight", &m);
                weights_ok = false;
                0
            }
        };
        total += u32::from(bp);
        out.push((&v.name, bp));
    }
    if weights_ok && total != u32::from(BUCKETS) {
        let message = cat(&[
            "weights sum to ",
            &format_percent(total),
            ", they must sum to 100",
        ]);
        errs.push(path, &message);
    }
    out
}

/// Formats basis points as a percentage: 1000 → "10", 1050 → "10.5", 1005 → "10.05".
pub fn format_percent(bp: u32) -> String {
    let mut out = decimal(u64::from(bp / 100));
    let frac = bp % 100;
    if frac != 0 {
        out.push('.');
        if frac < 10 {
            out.push('0');
        }
        let frac = if frac % 10 == 0 { frac / 10 } else { frac };
        push_decimal(&mut out, u64::from(frac));
    }
    out
}

/// The index of the variant called `name`; when there is none, reports "unknown variant X;
/// the policy has [...]" at `path.field` (unless the policy has no variants at all, an error
/// of its own).
fn find_variant(
    variants: &[Variant],
    name: &str,
    path: &str,
    field: &str,
    errs: &mut Errors,
) -> Option<usize> {
    let i = variants.iter().position(|v| v.name == name);
    if i.is_none() && !variants.is_empty() {
        let message = cat(&[
            "unknown variant ",
            &quote(name),
            "; the policy has ",
            &quote_list(variants.iter().map(|v| v.name.as_str())),
        ]);
        errs.push_at(path, field, &message);
    }
    i
}

/// "N is out of range; expected 1 to MAX".
fn out_of_range(v: u64, max: u64) -> String {
    cat(&[
        &decimal(v),
        " is out of range; expected 1 to ",
        &decimal(max),
    ])
}

/// `value` quoted, followed by `rest`: the shape of most messages about one value.
fn quoted(value: &str, rest: &str) -> String {
    let mut message = quote(value);
    message.push_str(rest);
    message
}

/// A percentage with at most two decimals (a JSON number as written), as basis points.
pub(crate) fn weight_bp(w: &str) -> Result<u16, String> {
    match crate::json::fixed_point(w, 2, u64::from(BUCKETS)) {
        Ok(bp) => u16::try_from(bp).map_err(|_| String::new()),
        Err(FixedError::Precision) => Err(cat(&["weight ", w, " has more than two decimals"])),
        Err(FixedError::Range) => Err(cat(&[
            "weight ",
            w,
            " must be between 0 and 100 (a percentage)",
        ])),
    }
}

/// `["a", "b"]`: names for an error message.
pub(crate) fn quote_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, name) in names.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&quote(name));
    }
    out.push(']');
    out
}

fn compile_key(k: &RawKey, path: &str, errs: &mut Errors) -> Option<Key> {
    let set = count_set(&[
        k.header.is_some(),
        k.cookie.is_some(),
        k.query.is_some(),
        k.source_ip.is_some(),
    ]);
    if set != 1 {
        errs.push(
            path,
            "a sticky key sets exactly one of \"header\", \"cookie\", \"query\", \"source_ip\"",
        );
        return None;
    }
    if let Some(ip) = k.source_ip {
        if !ip {
            errs.push_at(
                path,
                "source_ip",
                "must be true; remove the key to disable it",
            );
            return None;
        }
        return Some(Key::SourceIp);
    }
    compile_source(&k.header, &k.cookie, &k.query, path, errs).map(Key::Value)
}

/// How many of a set of mutually exclusive fields are given.
fn count_set(given: &[bool]) -> usize {
    given.iter().filter(|g| **g).count()
}

fn compile_source(
    header: &Option<String>,
    cookie: &Option<String>,
    query: &Option<String>,
    path: &str,
    errs: &mut Errors,
) -> Option<Source> {
    if let Some(h) = header {
        match header_name(h) {
            Ok(h) => Some(Source::Header(h)),
            Err(m) => {
                errs.push_at(path, "header", &m);
                None
            }
        }
    } else if let Some(c) = cookie {
        match cookie_name(c) {
            Ok(()) => Some(Source::Cookie(c.clone())),
            Err(m) => {
                errs.push_at(path, "cookie", &m);
                None
            }
        }
    } else if let Some(q) = query {
        if q.is_empty() {
            errs.push_at(path, "query", "query parameter name must not be empty");
            None
        } else {
            Some(Source::Query(q.clone()))
        }
    } else {
        None
    }
}

fn compile_cookie(c: &RawCookie, path: &str, errs: &mut Errors) -> Option<StickyCookie> {
    let before = errs.len();
    if let Err(m) = cookie_name(&c.name) {
        errs.push_at(path, "name", &m);
    }
    let mut attributes = String::new();
    if let Some(max_age) = c.max_age {
        attributes.push_str("; Max-Age=");
        push_decimal(&mut attributes, max_age);
    }
    // Path defaults to "/": without it a browser scopes the cookie to the directory of the
    // page that got it, so a first visit on a deep link (or /favicon.ico) mints another id and
    // the same browser can land on both variants.
    {
        let p = c.path.as_deref().unwrap_or("/");
        if !p.starts_with('/') || !attribute_value(p) {
            let message = quoted(
                p,
                " must start with '/' and hold no ';', control characters or spaces",
            );
            errs.push_at(path, "path", &message);
        }
        attributes.push_str("; Path=");
        attributes.push_str(p);
    }
    if let Some(d) = &c.domain {
        if d.is_empty() || !attribute_value(d) {
            errs.push_at(path, "domain", &quoted(d, " is not a valid cookie domain"));
        }
        attributes.push_str("; Domain=");
        attributes.push_str(d);
    }
    if c.secure {
        attributes.push_str("; Secure");
    }
    if c.http_only {
        attributes.push_str("; HttpOnly");
    }
    if let Some(s) = &c.same_site {
        let v = ["Strict", "Lax", "None"]
            .into_iter()
            .find(|v| v.eq_ignore_ascii_case(s));
        match v {
            Some(v) => {
                if v == "None" && !c.secure {
                    errs.push_at(
                        path,
                        "same_site",
                        "\"None\" requires \"secure\": true (browsers drop the cookie otherwise)",
                    );
                }
                attributes.push_str("; SameSite=");
                attributes.push_str(v);
            }
            None => errs.push_at(
                path,
                "same_site",
                &quoted(s, " must be \"Strict\", \"Lax\" or \"None\""),
            ),
        }
    }
    if errs.len() != before {
        return None;
    }
    Some(StickyCookie {
        name: c.name.clone(),
        attributes,
    })
}

/// A compiled condition: read per request, or already decided at configure time
/// (`source_label`: the proxy's own labels do not change while it runs).
enum Compiled {
    PerRequest(Condition),
    Constant(bool),
}

/// A rule, or `None` if it has errors or can never hold on this proxy (a `source_label`
/// condition that is false here).
fn compile_rule(
    r: &RawRule,
    variants: &[Variant],
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Rule> {
    let before = errs.len();
    let variant = find_variant(variants, &r.variant, path, "variant", errs);
    let match_path = child(path, "match");
    if r.matches.is_empty() {
        errs.push(&match_path, "must list at least one condition");
    }
    // Every condition is compiled (and its errors reported) even after one that never holds.
    let mut conditions = Vec::with_capacity(r.matches.len());
    let mut never = false;
    for (k, m) in r.matches.iter().enumerate() {
        match compile_condition(m, &element(&match_path, k), env, errs) {
            Some(Compiled::PerRequest(c)) => conditions.push(c),
            Some(Compiled::Constant(false)) => never = true,
            Some(Compiled::Constant(true)) | None => {}
        }
    }
    if errs.len() != before || never {
        return None;
    }
    variant.map(|variant| Rule {
        variant,
        conditions,
    })
}

fn compile_condition(
    m: &RawMatch,
    path: &str,
    env: &Environment,
    errs: &mut Errors,
) -> Option<Compiled> {
    let sources = count_set(&[
        m.header.is_some(),
        m.cookie.is_some(),
        m.query.is_some(),
        m.source_label.is_some(),
    ]);
    if sources != 1 {
        errs.push(
            path,
            "a condition sets exactly one of \"header\", \"cookie\", \"query\", \"source_label\"",
        );
    }
    let ops = count_set(&[
        m.exact.is_some(),
        m.prefix.is_some(),
        m.suffix.is_some(),
        m.contains.is_some(),
        m.present.is_some(),
        m.regex.is_some(),
    ]);
    if ops != 1 {
        errs.push(
            path,
            "a condition sets exactly one of \"exact\", \"prefix\", \"suffix\", \"contains\", \"present\", \"regex\"",
        );
    }
    if sources != 1 || ops != 1 {
        return None;
    }
    let op = if let Some(v) = &m.exact {
        Op::Exact(v.clone())
    } else if let Some(v) = &m.prefix {
        Op::Prefix(v.clone())
    } else if let Some(v) = &m.suffix {
        Op::Suffix(v.clone())
    } else if let Some(v) = &m.contains {
        Op::Contains(v.clone())
    } else if let Some(v) = m.present {
        Op::Present(v)
    } else if let Some(re) = &m.regex {
        // Whole-value match, as Envoy's and Istio's `regex` string matchers do.
        match crate::regex::Regex::new(re) {
            Ok(r) => Op::Regex(r),
            Err(e) => {
                errs.push_at(
                    path,
                    "regex",
                    &cat(&["invalid regex ", &quote(re), ": ", &e]),
                );
                return None;
            }
        }
    } else {
        return None;
    };
    if let Some(label) = &m.source_label {
        if label.is_empty() {
            errs.push_at(path, "source_label", "label name must not be empty");
            return None;
        }
        return Some(Compiled::Constant(op.test(env.label(label))));
    }
    let source = compile_source(&m.header, &m.cookie, &m.query, path, errs)?;
    Some(Compiled::PerRequest(Condition { source, op }))
}

/// Policy and variant names: they end up in headers, route matches and stat names.
fn name(n: &str) -> Result<(), String> {
    if n.is_empty() {
        return Err("name must not be empty".into());
    }
    if n.len() > MAX_NAME_LEN {
        return Err(cat(&[
            "name ",
            &quote(n),
            " is longer than ",
            &decimal(MAX_NAME_LEN as u64),
            " characters",
        ]));
    }
    if !n
        .as_bytes()
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(cat(&[
            "name ",
            &quote(n),
            " may only hold letters, digits, '-' and '_'",
        ]));
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token), returned lowercase.
fn header_name(h: &str) -> Result<String, String> {
    if h.is_empty() {
        return Err("header name must not be empty".into());
    }
    if h.starts_with(':') {
        return Err(quoted(h, ": pseudo-headers cannot be used here"));
    }
    if !h.as_bytes().iter().all(is_tchar) {
        return Err(quoted(h, " is not a valid header name"));
    }
    Ok(h.to_ascii_lowercase())
}

fn cookie_name(c: &str) -> Result<(), String> {
    if c.is_empty() || !c.as_bytes().iter().all(is_tchar) {
        return Err(quoted(c, " is not a valid cookie name"));
    }
    Ok(())
}

fn is_tchar(b: &u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b)
}

fn attribute_value(v: &str) -> bool {
    v.as_bytes()
        .iter()
        .all(|&b| b > 0x20 && b < 0x7f && b != b';')
}

/// A host selector: `reviews`, `*.example.com` or `*`, returned lowercase without a trailing
/// dot (requests are normalized the same way).
fn host_pattern(h: &str) -> Result<String, String> {
    let lower = h.to_ascii_lowercase();
    let lower = match lower.strip_suffix('.') {
        Some(stripped) if !stripped.ends_with('*') => stripped.to_string(),
        _ => lower,
    };
    if lower.is_empty() {
        return Err("host must not be empty".into());
    }
    if lower == "*" {
        return Ok(lower);
    }
    let rest = lower.strip_prefix("*.").unwrap_or(&lower);
    if rest.is_empty() || rest.contains('*') {
        return Err(quoted(
            h,
            ": a wildcard is only allowed as a leading \"*.\" (e.g. \"*.example.com\")",
        ));
    }
    let has_port = match rest.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .is_none_or(|(_, after)| !after.is_empty()),
        None => rest.contains(':'),
    };
    if has_port {
        return Err(quoted(
            h,
            ": hosts are matched without port; remove the \":port\"",
        ));
    }
    if !rest
        .as_bytes()
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b))
    {
        return Err(quoted(h, " is not a valid host name"));
    }
    Ok(lower)
}
