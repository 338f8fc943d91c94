//! Shared pieces of the fuzz targets: arbitrary request views, fixed representative
//! configurations, and the invariants every compiled configuration and decision must hold.

use arbitrary::Arbitrary;
use canary_router::guard::GuardView;
use canary_router::{Config, Decision, SimpleRequest, Split, BUCKETS};

/// Representative configurations (from envoy-config/ and the unit tests): weights, sticky keys
/// of every kind, a minted cookie, rules with every operator, selectors, a ramp and a guard.
pub const CONFIGS: &[&str] = &[
    // envoy-config/front-proxy.yaml style: weights, sticky header and cookie.
    r#"{"policies": [{"name": "reviews",
        "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
        "sticky": {"keys": [{"header": "x-user-id"}], "cookie": {"name": "canary-id"}},
        "rules": [{"variant": "canary", "match": [{"header": "x-canary", "exact": "always"}]},
                  {"variant": "stable", "match": [{"cookie": "canary-opt-out", "present": true}]}]}]}"#,
    // envoy-config/ab-test.yaml style: selectors, several rules, query and source-ip keys.
    r#"{"variant_header": "x-variant", "expose_variant": true, "route_metadata": true,
        "policies": [
        {"name": "checkout", "hosts": ["shop.example.com", "*.shop.test"], "path_prefix": "/checkout",
         "trust_incoming": true, "salt": "ab-2024",
         "variants": [{"name": "a", "weight": 33.33}, {"name": "b", "weight": 33.33}, {"name": "c", "weight": 33.34}],
         "sticky": {"keys": [{"query": "uid"}, {"cookie": "session"}, {"source_ip": true}]},
         "rules": [
           {"variant": "b", "match": [{"query": "variant", "exact": "b"}]},
           {"variant": "c", "match": [{"header": "user-agent", "regex": "(?i).*(iphone|android).*"},
                                      {"header": "x-beta", "prefix": "yes"}]},
           {"variant": "a", "match": [{"cookie": "tier", "suffix": "gold"}, {"header": "x-tags", "contains": "internal"}]},
           {"variant": "a", "match": [{"header": "x-absent", "present": false}, {"query": "q", "regex": "[a-f0-9]{8}"}]}]},
        {"name": "routed", "routes": ["r1", "r2"],
         "variants": [{"name": "blue", "weight": 0}, {"name": "green", "weight": 100}]},
        {"name": "fallback", "variants": [{"name": "only", "weight": 100}]}]}"#,
    // envoy-config/blue-green.yaml style plus a ramp.
    r#"{"policies": [{"name": "web", "hosts": ["web", "[::1]"],
        "variants": [{"name": "green", "weight": 0}, {"name": "blue", "weight": 100}],
        "ramp": {"variant": "green", "start": "2025-01-01T00:00:00Z", "steps": [1, 10, 50, 100], "step_seconds": 60}},
        {"name": "linear", "variants": [{"name": "canary", "weight": 0}, {"name": "stable", "weight": 100}],
         "sticky": {"cookie": {"name": "cid", "max_age": 60, "path": "/", "secure": true, "same_site": "Strict"}},
         "ramp": {"variant": "canary", "start": "2025-01-01T00:00:00Z", "from": 0, "to": 40, "duration_seconds": 3600}}]}"#,
    // envoy-config/guard.yaml: a re-arming guard with a notify cluster.
    r#"{"filter_state": true, "policies": [{"name": "reviews",
        "variants": [{"name": "canary", "weight": 20}, {"name": "stable", "weight": 80}],
        "sticky": {"keys": [{"header": "x-user-id"}], "cookie": {"name": "canary-id"}},
        "guard": {"variant": "canary", "baseline": "stable", "window_seconds": 10, "min_requests": 20,
                  "max_failure_rate": 0.05, "max_p99_ms": 800, "on_trip": "rearm", "hold_seconds": 20,
                  "notify": {"cluster": "hooks", "path": "/canary-router", "timeout_ms": 2000,
                             "headers": {"x-token": "t"}}}}]}"#,
    // An aborting guard with relative limits and a ramp that stops at its first trip, told to
    // several receivers (secrets as ${NAME} references).
    r#"{"policies": [{"name": "checkout",
        "variants": [{"name": "canary", "weight": 0}, {"name": "stable", "weight": 100}],
        "ramp": {"variant": "canary", "start": "2025-01-01T00:00:00Z", "steps": [5, 25, 50], "step_seconds": 300},
        "guard": {"variant": "canary", "window_seconds": 60, "min_requests": 50,
                  "max_failure_rate_increase": 0.02, "max_p99_ratio": 1.5, "max_failure_rate": 0.2,
                  "notify": [{"format": "slack", "cluster": "slack", "path": "/services/${SLACK_PATH}"},
                             {"format": "github", "cluster": "github", "authority": "api.github.com",
                              "path": "/repos/acme/mesh/dispatches", "retries": 5,
                              "headers": {"authorization": "Bearer ${GITHUB_TOKEN}"}}]}}]}"#,
];

/// A policy name or variant name: mostly from a small pool, so references resolve.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    Pool(u8),
    Raw(String),
}

pub const NAMES: &[&str] = &[
    "canary", "stable", "blue", "green", "a", "b", "c", "only", "reviews", "checkout",
];

impl Name {
    pub fn get(&self) -> String {
        match self {
            Name::Pool(i) => NAMES[usize::from(*i) % NAMES.len()].to_string(),
            Name::Raw(s) => s.clone(),
        }
    }
}

/// Header names the configurations read, plus arbitrary ones.
pub const HEADERS: &[&str] = &[
    "x-user-id",
    "x-canary",
    "x-variant",
    "x-canary-variant",
    "user-agent",
    "x-beta",
    "x-tags",
    "x-absent",
    "cookie",
    ":path",
    ":authority",
];

#[derive(Arbitrary, Debug, Clone)]
pub enum HeaderName {
    Pool(u8),
    Raw(String),
}

impl HeaderName {
    pub fn get(&self) -> String {
        match self {
            HeaderName::Pool(i) => HEADERS[usize::from(*i) % HEADERS.len()].to_string(),
            HeaderName::Raw(s) => s.to_ascii_lowercase(),
        }
    }
}

/// An arbitrary request view.
#[derive(Arbitrary, Debug, Clone)]
pub struct Request {
    pub authority: Option<String>,
    pub path: Option<String>,
    pub headers: Vec<(HeaderName, String)>,
    pub cookies: Vec<(String, String)>,
    pub source: Option<String>,
    pub route: Option<String>,
}

impl Request {
    pub fn view(&self) -> SimpleRequest {
        let mut r = SimpleRequest::default();
        if let Some(a) = &self.authority {
            r.headers.push((":authority".into(), a.clone()));
        }
        if let Some(p) = &self.path {
            r.headers.push((":path".into(), p.clone()));
        }
        for (k, v) in &self.headers {
            r.headers.push((k.get(), v.clone()));
        }
        if !self.cookies.is_empty() {
            let c: Vec<String> = self
                .cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            r.headers.push(("cookie".into(), c.join("; ")));
        }
        r.source_address = self.source.clone();
        r.route_name = self.route.clone();
        r
    }
}

/// Weights of a split sum to the bucket space, and every bucket belongs to a variant.
pub fn check_split(split: &Split, variants: usize, what: &str) {
    let sum: u32 = split.weights_bp().iter().map(|w| u32::from(*w)).sum();
    assert_eq!(
        sum,
        u32::from(BUCKETS),
        "{what}: weights {:?}",
        split.weights_bp()
    );
    assert_eq!(
        split.weights_bp().len(),
        variants,
        "{what}: one weight per variant"
    );
    for b in [0, 1, BUCKETS / 2, BUCKETS - 1] {
        assert!(split.variant_for_bucket(b) < variants, "{what}: bucket {b}");
    }
    if let Some((from, to)) = split.divert() {
        assert!(
            from < variants && to < variants,
            "{what}: divert {from}->{to}"
        );
    }
}

/// Every split of a compiled configuration (configured, ramped at `now`, guards tripped).
pub fn check_config(config: &Config, now: i64, tripped: &[bool]) {
    for (i, p) in config.policies().iter().enumerate() {
        let n = p.variants().len();
        assert!(n >= 1, "policy {i} has no variants");
        check_split(p.split(), n, "configured");
        check_split(&p.split_at(now), n, "split_at");
    }
    for (i, s) in config.live_splits(now).iter().enumerate() {
        check_split(s, config.policies()[i].variants().len(), "live");
    }
    let effective = config.effective_splits(now, tripped);
    for (i, s) in effective.iter().enumerate() {
        check_split(s, config.policies()[i].variants().len(), "effective");
    }
    // The same trip states seen by a worker: without a stop of the ramp, the same splits; with
    // one (at any time), the split of that time, diverted where tripped.
    let views: Vec<GuardView> = tripped
        .iter()
        .map(|&tripped| GuardView {
            tripped,
            ramp_stopped_at: None,
        })
        .collect();
    assert_eq!(config.splits_in_force(now, &views), effective);
    for stopped in [now, now.saturating_sub(3600), i64::MIN, i64::MAX] {
        let views: Vec<GuardView> = (0..config.policies().len())
            .map(|i| GuardView {
                tripped: tripped.get(i) == Some(&true),
                ramp_stopped_at: Some(stopped),
            })
            .collect();
        let frozen = config.splits_in_force(now, &views);
        assert_eq!(frozen, config.effective_splits(stopped.min(now), tripped));
        for (i, s) in frozen.iter().enumerate() {
            check_split(s, config.policies()[i].variants().len(), "in force");
        }
    }
}

/// A decision names an existing policy and variant, and a bucket in range.
pub fn check_decision(config: &Config, d: &Decision) {
    let policy = config.policy(d.policy).expect("decision policy in range");
    assert!(
        d.variant < policy.variants().len(),
        "variant index out of range: {d:?}"
    );
    if let Some(b) = d.bucket {
        assert!(b < BUCKETS, "bucket out of range: {d:?}");
    }
    if let Some(m) = &d.minted {
        assert_eq!(m.as_str().len(), 32);
    }
}

/// The cookie and query parsers as they were written first, over `str` methods: the byte-level
/// parsers of the core must answer exactly as these (the `cookies_query` target checks it).
pub mod reference {
    use canary_router::request::percent_decode;
    use std::borrow::Cow;

    fn is_ows(c: char) -> bool {
        c == ' ' || c == '\t'
    }

    pub fn cookie_in<'a>(header: &'a str, name: &str) -> Option<&'a str> {
        header.split(';').find_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            if k.trim_matches(is_ows) != name {
                return None;
            }
            let v = v.trim_matches(is_ows);
            Some(
                v.strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v),
            )
        })
    }

    pub fn query_in<'a>(path: &'a str, name: &str) -> Option<Cow<'a, str>> {
        let (_, query) = path.split_once('?')?;
        let query = query.split_once('#').map_or(query, |(q, _)| q);
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            if k == name || (k.contains(['%', '+']) && percent_decode(k) == name) {
                Some(percent_decode(v))
            } else {
                None
            }
        })
    }
}
