//! The user-facing configuration, exactly as written in JSON (the plugin configuration), and
//! its decoding from a [`Value`].
//!
//! These types only describe the shape; [`crate::compile`] checks the meaning and builds the
//! runtime form. Every object rejects unknown and repeated fields so a typo is an error, not a
//! silent no-op. Decoding reports every shape error of a document, each with its JSON path, in
//! the words serde uses (`unknown field `x``, `missing field `name``, `invalid type: …`).

use crate::error::{cat, child, element, Errors};
use crate::json::{self, Value};

/// Default request header that carries the decision to the mesh's router.
pub const DEFAULT_VARIANT_HEADER: &str = "x-canary-variant";

#[derive(Debug, Clone, Default)]
pub struct RawConfig {
    pub variant_header: Option<String>,
    pub expose_variant: bool,
    /// Read `filter_metadata["canary-router"]` of the matched route (one property read per
    /// request).
    pub route_metadata: bool,
    /// Write `policy variant reason` to filter state `wasm.canary_router` for access logs (one
    /// host call per request).
    pub filter_state: bool,
    pub policies: Vec<RawPolicy>,
}

#[derive(Debug, Clone, Default)]
pub struct RawPolicy {
    pub name: String,
    pub hosts: Option<Vec<String>>,
    pub path_prefix: Option<String>,
    pub routes: Option<Vec<String>>,
    pub salt: Option<String>,
    pub trust_incoming: bool,
    pub variants: Vec<RawVariant>,
    pub sticky: Option<RawSticky>,
    pub rules: Vec<RawRule>,
    pub ramp: Option<RawRamp>,
    pub guard: Option<RawGuard>,
}

/// A guard that holds a failing variant off: see [`crate::guard`].
#[derive(Debug, Clone, Default)]
pub struct RawGuard {
    pub variant: String,
    /// Default: the last variant.
    pub baseline: Option<String>,
    pub window_seconds: Option<u64>,
    pub min_requests: Option<u64>,
    /// A fraction (`0.05` is 5 %), as written.
    pub max_failure_rate: Option<String>,
    pub max_p99_ms: Option<u64>,
    /// A fraction (`0.05` is 5 points above the baseline's failure rate), as written.
    pub max_failure_rate_increase: Option<String>,
    /// A factor (`1.5`: the variant's p99 above 1.5 times the baseline's), as written.
    pub max_p99_ratio: Option<String>,
    /// `abort` (default) or `rearm`.
    pub on_trip: Option<String>,
    pub hold_seconds: Option<u64>,
    pub max_trips: Option<u64>,
    /// One receiver (an object) or a list of them.
    pub notify: Option<Vec<RawNotify>>,
    /// `notify` was written as a list (its receivers' paths are `notify[i]`, else `notify`).
    pub notify_list: bool,
}

/// A receiver of a guard's trip and re-arm messages.
#[derive(Debug, Clone, Default)]
pub struct RawNotify {
    /// `slack` (default), `msteams`, `discord`, `generic` or `github`.
    pub format: Option<String>,
    /// The Envoy cluster the POST goes through.
    pub cluster: String,
    pub path: String,
    /// Attempts after a failed send (default 3).
    pub retries: Option<u64>,
    /// Default: the cluster name.
    pub authority: Option<String>,
    pub timeout_ms: Option<u64>,
    pub headers: Option<Vec<(String, String)>>,
}

/// A scheduled ramp of one variant's weight: `steps` + `step_seconds`, or `from` + `to` +
/// `duration_seconds`.
#[derive(Debug, Clone, Default)]
pub struct RawRamp {
    pub variant: String,
    /// RFC 3339 time.
    pub start: String,
    /// Weights (percent, as written) of successive periods.
    pub steps: Option<Vec<String>>,
    pub step_seconds: Option<u64>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub duration_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct RawVariant {
    pub name: String,
    /// The weight as written (a JSON number, percent).
    pub weight: String,
}

impl RawVariant {
    /// The weight in basis points, if it is a percentage with at most two decimals.
    pub fn weight_bp(&self) -> Option<u16> {
        crate::split::weight_bp(&self.weight).ok()
    }
}

#[derive(Debug, Clone, Default)]
pub struct RawSticky {
    pub keys: Vec<RawKey>,
    pub cookie: Option<RawCookie>,
}

/// One sticky key: exactly one of the fields is set.
#[derive(Debug, Clone, Default)]
pub struct RawKey {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub source_ip: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct RawCookie {
    pub name: String,
    pub max_age: Option<u64>,
    pub path: Option<String>,
    pub domain: Option<String>,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: Option<String>,
}

impl Default for RawCookie {
    fn default() -> Self {
        RawCookie {
            name: String::new(),
            max_age: None,
            path: None,
            domain: None,
            secure: false,
            http_only: true,
            same_site: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct RawRule {
    pub variant: String,
    /// `match` in JSON.
    pub matches: Vec<RawMatch>,
}

/// One condition of a rule: exactly one source (`header`, `cookie`, `query`, `source_label`)
/// and exactly one operator (`exact`, `prefix`, `suffix`, `contains`, `present`, `regex`).
#[derive(Debug, Clone, Default)]
pub struct RawMatch {
    pub header: Option<String>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    /// A label of this proxy's own workload (node metadata `LABELS`), known at configure time.
    pub source_label: Option<String>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub contains: Option<String>,
    pub present: Option<bool>,
    pub regex: Option<String>,
}

/// An override of one policy, from node metadata (`CANARY_ROUTER`, keyed by policy name) or
/// route metadata (`filter_metadata["canary-router"]`, which may also name the policy).
#[derive(Debug, Clone, Default)]
pub struct RawOverride {
    /// Route metadata only: the policy for the route's requests.
    pub policy: Option<String>,
    /// `false` sends everything to the policy's last variant.
    pub enabled: Option<bool>,
    /// New weights for (some of) the policy's variants; unlisted variants get 0.
    pub variants: Option<Vec<RawVariant>>,
}

// ---------------------------------------------------------------------------------------------
// Decoding.

fn invalid(v: &Value, expected: &str, path: &str, errs: &mut Errors) {
    let message = cat(&["invalid type: ", &v.describe(), ", expected ", expected]);
    errs.push(path, &message);
}

fn string(v: &Value, path: &str, errs: &mut Errors) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        _ => {
            invalid(v, "a string", path, errs);
            None
        }
    }
}

fn boolean(v: &Value, path: &str, errs: &mut Errors) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        _ => {
            invalid(v, "a boolean", path, errs);
            None
        }
    }
}

fn number(v: &Value, path: &str, errs: &mut Errors) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.clone()),
        _ => {
            invalid(v, "a number", path, errs);
            None
        }
    }
}

fn unsigned(v: &Value, path: &str, errs: &mut Errors) -> Option<u64> {
    match v {
        Value::Number(n) if json::is_integer(n) => match json::parse_decimal(n.as_bytes()) {
            Some(n) => Some(n),
            None => {
                let message = cat(&["invalid value: ", &v.describe(), ", expected u64"]);
                errs.push(path, &message);
                None
            }
        },
        _ => {
            invalid(v, "u64", path, errs);
            None
        }
    }
}

/// A JSON array decoded item by item with `item` (errors name `path[i]`); `None` if `v` is not
/// an array or any item had an error.
fn list<T>(
    v: &Value,
    path: &str,
    errs: &mut Errors,
    item: fn(&Value, &str, &mut Errors) -> Option<T>,
) -> Option<Vec<T>> {
    let Value::Array(items) = v else {
        invalid(v, "a sequence", path, errs);
        return None;
    };
    let before = errs.len();
    let mut out = Vec::with_capacity(items.len());
    for (i, v) in items.iter().enumerate() {
        if let Some(x) = item(v, &element(path, i), errs) {
            out.push(x);
        }
    }
    (errs.len() == before).then_some(out)
}

fn strings(v: &Value, path: &str, errs: &mut Errors) -> Option<Vec<String>> {
    list(v, path, errs, string)
}

fn numbers(v: &Value, path: &str, errs: &mut Errors) -> Option<Vec<String>> {
    list(v, path, errs, number)
}

/// Walks the members of an object with fields `fields`: calls `field(index, value, path)` for
/// each known member; reports unknown and repeated members, and `required` ones (indexes into
/// `fields`) that are missing. `None` if `v` is not an object or had any error. `field` is a
/// `dyn` callback so that the Wasm module holds one walker, not one per object type.
fn object(
    v: &Value,
    path: &str,
    fields: &[&str],
    required: &[usize],
    errs: &mut Errors,
    field: &mut dyn FnMut(usize, &Value, &str, &mut Errors),
) -> Option<()> {
    let Value::Object(members) = v else {
        invalid(v, "a map", path, errs);
        return None;
    };
    let before = errs.len();
    let mut seen = 0u64;
    for (key, value) in members {
        let fpath = child(path, key);
        match fields.iter().position(|f| f == key) {
            Some(i) if seen & (1 << i) != 0 => {
                errs.push_owned(fpath, cat(&["duplicate field `", key, "`"]));
            }
            Some(i) => {
                seen |= 1 << i;
                field(i, value, &fpath, errs);
            }
            None => {
                let mut message = cat(&["unknown field `", key, "`, expected one of "]);
                for (j, f) in fields.iter().enumerate() {
                    if j > 0 {
                        message.push_str(", ");
                    }
                    message.push('`');
                    message.push_str(f);
                    message.push('`');
                }
                errs.push_owned(fpath, message);
            }
        }
    }
    for &i in required {
        if seen & (1 << i) == 0 {
            let name = fields.get(i).copied().unwrap_or_default();
            errs.push(path, &cat(&["missing field `", name, "`"]));
        }
    }
    (errs.len() == before).then_some(())
}

/// An optional field: `null` is the same as leaving it out.
fn opt<T>(
    v: &Value,
    path: &str,
    errs: &mut Errors,
    decode: fn(&Value, &str, &mut Errors) -> Option<T>,
) -> Option<T> {
    match v {
        Value::Null => None,
        v => decode(v, path, errs),
    }
}

/// Sets `slot` from a decoded value (left unchanged when decoding failed; the error is
/// recorded).
fn set<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

impl RawConfig {
    /// Decodes the plugin configuration document (path `""` is the root).
    pub fn decode(v: &Value, errs: &mut Errors) -> Option<RawConfig> {
        let mut c = RawConfig::default();
        let fields = [
            "variant_header",
            "expose_variant",
            "route_metadata",
            "filter_state",
            "policies",
        ];
        object(
            v,
            "",
            &fields,
            &[4],
            errs,
            &mut |i, v, path, errs| match i {
                0 => c.variant_header = opt(v, path, errs, string),
                1 => set(&mut c.expose_variant, boolean(v, path, errs)),
                2 => set(&mut c.route_metadata, boolean(v, path, errs)),
                3 => set(&mut c.filter_state, boolean(v, path, errs)),
                _ => set(&mut c.policies, list(v, path, errs, RawPolicy::decode)),
            },
        )?;
        Some(c)
    }
}

impl RawPolicy {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawPolicy> {
        let mut p = RawPolicy::default();
        let fields = [
            "name",
            "hosts",
            "path_prefix",
            "routes",
            "salt",
            "trust_incoming",
            "variants",
            "sticky",
            "rules",
            "ramp",
            "guard",
        ];
        object(
            v,
            path,
            &fields,
            &[0, 6],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut p.name, string(v, path, errs)),
                1 => p.hosts = opt(v, path, errs, strings),
                2 => p.path_prefix = opt(v, path, errs, string),
                3 => p.routes = opt(v, path, errs, strings),
                4 => p.salt = opt(v, path, errs, string),
                5 => set(&mut p.trust_incoming, boolean(v, path, errs)),
                6 => set(&mut p.variants, RawVariant::decode_list(v, path, errs)),
                7 => p.sticky = opt(v, path, errs, RawSticky::decode),
                8 => set(&mut p.rules, list(v, path, errs, RawRule::decode)),
                9 => p.ramp = opt(v, path, errs, RawRamp::decode),
                _ => p.guard = opt(v, path, errs, RawGuard::decode),
            },
        )?;
        Some(p)
    }
}

impl RawRamp {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawRamp> {
        let mut r = RawRamp::default();
        let fields = [
            "variant",
            "start",
            "steps",
            "step_seconds",
            "from",
            "to",
            "duration_seconds",
        ];
        object(
            v,
            path,
            &fields,
            &[0, 1],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut r.variant, string(v, path, errs)),
                1 => set(&mut r.start, string(v, path, errs)),
                2 => r.steps = opt(v, path, errs, numbers),
                3 => r.step_seconds = opt(v, path, errs, unsigned),
                4 => r.from = opt(v, path, errs, number),
                5 => r.to = opt(v, path, errs, number),
                _ => r.duration_seconds = opt(v, path, errs, unsigned),
            },
        )?;
        Some(r)
    }
}

impl RawGuard {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawGuard> {
        let mut g = RawGuard::default();
        let fields = [
            "variant",
            "baseline",
            "window_seconds",
            "min_requests",
            "max_failure_rate",
            "max_p99_ms",
            "max_failure_rate_increase",
            "max_p99_ratio",
            "on_trip",
            "hold_seconds",
            "max_trips",
            "notify",
        ];
        object(
            v,
            path,
            &fields,
            &[0],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut g.variant, string(v, path, errs)),
                1 => g.baseline = opt(v, path, errs, string),
                2 => g.window_seconds = opt(v, path, errs, unsigned),
                3 => g.min_requests = opt(v, path, errs, unsigned),
                4 => g.max_failure_rate = opt(v, path, errs, number),
                5 => g.max_p99_ms = opt(v, path, errs, unsigned),
                6 => g.max_failure_rate_increase = opt(v, path, errs, number),
                7 => g.max_p99_ratio = opt(v, path, errs, number),
                8 => g.on_trip = opt(v, path, errs, string),
                9 => g.hold_seconds = opt(v, path, errs, unsigned),
                10 => g.max_trips = opt(v, path, errs, unsigned),
                _ => {
                    g.notify_list = matches!(v, Value::Array(_));
                    g.notify = opt(v, path, errs, RawNotify::decode_one_or_list);
                }
            },
        )?;
        Some(g)
    }
}

impl RawNotify {
    /// A list of receivers, or one receiver written as an object.
    fn decode_one_or_list(v: &Value, path: &str, errs: &mut Errors) -> Option<Vec<RawNotify>> {
        match v {
            Value::Array(_) => list(v, path, errs, RawNotify::decode),
            _ => RawNotify::decode(v, path, errs).map(|n| vec![n]),
        }
    }

    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawNotify> {
        let mut n = RawNotify::default();
        let fields = [
            "cluster",
            "path",
            "format",
            "authority",
            "timeout_ms",
            "retries",
            "headers",
        ];
        object(
            v,
            path,
            &fields,
            &[0, 1],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut n.cluster, string(v, path, errs)),
                1 => set(&mut n.path, string(v, path, errs)),
                2 => n.format = opt(v, path, errs, string),
                3 => n.authority = opt(v, path, errs, string),
                4 => n.timeout_ms = opt(v, path, errs, unsigned),
                5 => n.retries = opt(v, path, errs, unsigned),
                _ => n.headers = opt(v, path, errs, string_map),
            },
        )?;
        Some(n)
    }
}

/// An object of string values, in document order.
fn string_map(v: &Value, path: &str, errs: &mut Errors) -> Option<Vec<(String, String)>> {
    let Value::Object(members) = v else {
        invalid(v, "a map", path, errs);
        return None;
    };
    let before = errs.len();
    let mut out = Vec::with_capacity(members.len());
    for (k, v) in members {
        if let Some(v) = string(v, &child(path, k), errs) {
            out.push((k.clone(), v));
        }
    }
    (errs.len() == before).then_some(out)
}

impl RawVariant {
    fn decode_list(v: &Value, path: &str, errs: &mut Errors) -> Option<Vec<RawVariant>> {
        list(v, path, errs, RawVariant::decode)
    }

    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawVariant> {
        let mut r = RawVariant::default();
        object(
            v,
            path,
            &["name", "weight"],
            &[0, 1],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut r.name, string(v, path, errs)),
                _ => set(&mut r.weight, number(v, path, errs)),
            },
        )?;
        Some(r)
    }
}

impl RawSticky {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawSticky> {
        let mut s = RawSticky::default();
        object(
            v,
            path,
            &["keys", "cookie"],
            &[],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut s.keys, list(v, path, errs, RawKey::decode)),
                _ => s.cookie = opt(v, path, errs, RawCookie::decode),
            },
        )?;
        Some(s)
    }
}

impl RawKey {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawKey> {
        let mut k = RawKey::default();
        let fields = ["header", "cookie", "query", "source_ip"];
        object(
            v,
            path,
            &fields,
            &[],
            errs,
            &mut |i, v, path, errs| match i {
                0 => k.header = opt(v, path, errs, string),
                1 => k.cookie = opt(v, path, errs, string),
                2 => k.query = opt(v, path, errs, string),
                _ => k.source_ip = opt(v, path, errs, boolean),
            },
        )?;
        Some(k)
    }
}

impl RawCookie {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawCookie> {
        let mut c = RawCookie::default();
        let fields = [
            "name",
            "max_age",
            "path",
            "domain",
            "secure",
            "http_only",
            "same_site",
        ];
        object(
            v,
            path,
            &fields,
            &[0],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut c.name, string(v, path, errs)),
                1 => c.max_age = opt(v, path, errs, unsigned),
                2 => c.path = opt(v, path, errs, string),
                3 => c.domain = opt(v, path, errs, string),
                4 => set(&mut c.secure, boolean(v, path, errs)),
                5 => set(&mut c.http_only, boolean(v, path, errs)),
                _ => c.same_site = opt(v, path, errs, string),
            },
        )?;
        Some(c)
    }
}

impl RawRule {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawRule> {
        let mut r = RawRule::default();
        object(
            v,
            path,
            &["variant", "match"],
            &[0, 1],
            errs,
            &mut |i, v, path, errs| match i {
                0 => set(&mut r.variant, string(v, path, errs)),
                _ => set(&mut r.matches, list(v, path, errs, RawMatch::decode)),
            },
        )?;
        Some(r)
    }
}

impl RawMatch {
    fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawMatch> {
        let mut m = RawMatch::default();
        let fields = [
            "header",
            "cookie",
            "query",
            "source_label",
            "exact",
            "prefix",
            "suffix",
            "contains",
            "present",
            "regex",
        ];
        object(v, path, &fields, &[], errs, &mut |i, v, path, errs| {
            if i == 8 {
                m.present = opt(v, path, errs, boolean);
                return;
            }
            let s = opt(v, path, errs, string);
            *match i {
                0 => &mut m.header,
                1 => &mut m.cookie,
                2 => &mut m.query,
                3 => &mut m.source_label,
                4 => &mut m.exact,
                5 => &mut m.prefix,
                6 => &mut m.suffix,
                7 => &mut m.contains,
                _ => &mut m.regex,
            } = s;
        })?;
        Some(m)
    }
}

impl RawOverride {
    /// Decodes one override (node metadata entry or route metadata namespace).
    pub fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawOverride> {
        let mut o = RawOverride::default();
        let fields = ["policy", "enabled", "variants"];
        object(
            v,
            path,
            &fields,
            &[],
            errs,
            &mut |i, v, path, errs| match i {
                0 => o.policy = opt(v, path, errs, string),
                1 => o.enabled = opt(v, path, errs, boolean),
                _ => o.variants = opt(v, path, errs, RawVariant::decode_list),
            },
        )?;
        Some(o)
    }
}
