//! The user-facing configuration, exactly as written in JSON (the plugin configuration), and
//! its decoding from a [`Value`].
//!
//! These types only describe the shape; [`crate::compile`] checks the meaning and builds the
//! runtime form. Each is declared with `decoded!` (`src/decode.rs`): one line per field gives its
//! type, its JSON name, whether it is required and how it is decoded, so adding a field (or a
//! rule operator) is a one-line edit here. Every object rejects unknown and repeated fields so a
//! typo is an error, not a silent no-op; decoding reports every shape error of a document, each
//! with its JSON path.

use crate::decode::{boolean, decoded, list, map, number, one_or_list, string, unsigned};
use crate::error::Errors;
use crate::json::Value;

/// Default request header that carries the decision to the mesh's router.
pub const DEFAULT_VARIANT_HEADER: &str = "x-canary-variant";

decoded! {
    #[derive(Debug, Clone, Default)]
    pub struct RawConfig {
        pub variant_header: Option<String> = optional("variant_header", string),
        pub expose_variant: bool = or_default("expose_variant", boolean),
        /// Read `filter_metadata["canary-router"]` of the matched route (one property read per
        /// request).
        pub route_metadata: bool = or_default("route_metadata", boolean),
        /// Write `policy variant reason` to filter state `wasm.canary_router` for access logs
        /// (one host call per request).
        pub filter_state: bool = or_default("filter_state", boolean),
        /// Count responses and their latency per variant (default true).
        pub response_metrics: Option<bool> = optional("response_metrics", boolean),
        pub policies: Vec<RawPolicy> = required("policies", list(RawPolicy::decode_at)),
    }
}

impl RawConfig {
    /// Decodes the plugin configuration document (path `""` is the root).
    pub fn decode(v: &Value, errs: &mut Errors) -> Option<RawConfig> {
        RawConfig::decode_at(v, "", errs)
    }
}

decoded! {
    #[derive(Debug, Clone, Default)]
    pub struct RawPolicy {
        pub name: String = required("name", string),
        pub hosts: Option<Vec<String>> = optional("hosts", list(string)),
        pub path_prefix: Option<String> = optional("path_prefix", string),
        pub routes: Option<Vec<String>> = optional("routes", list(string)),
        pub salt: Option<String> = optional("salt", string),
        pub trust_incoming: bool = or_default("trust_incoming", boolean),
        pub variants: Vec<RawVariant> = required("variants", list(RawVariant::decode_at)),
        pub sticky: Option<RawSticky> = optional("sticky", RawSticky::decode_at),
        pub rules: Vec<RawRule> = or_default("rules", list(RawRule::decode_at)),
        pub ramp: Option<RawRamp> = optional("ramp", RawRamp::decode_at),
        pub guard: Option<RawGuard> = optional("guard", RawGuard::decode_at),
    }
}

decoded! {
    /// A scheduled ramp of one variant's weight: `steps` + `step_seconds`, or `from` + `to` +
    /// `duration_seconds`.
    #[derive(Debug, Clone, Default)]
    pub struct RawRamp {
        pub variant: String = required("variant", string),
        /// RFC 3339 time.
        pub start: String = required("start", string),
        /// Weights (percent, as written) of successive periods.
        pub steps: Option<Vec<String>> = optional("steps", list(number)),
        pub step_seconds: Option<u64> = optional("step_seconds", unsigned),
        pub from: Option<String> = optional("from", number),
        pub to: Option<String> = optional("to", number),
        pub duration_seconds: Option<u64> = optional("duration_seconds", unsigned),
    }
}

decoded! {
    /// A guard that holds a failing variant off: see [`crate::guard`].
    #[derive(Debug, Clone, Default)]
    pub struct RawGuard {
        pub variant: String = required("variant", string),
        /// Default: the last variant.
        pub baseline: Option<String> = optional("baseline", string),
        pub window_seconds: Option<u64> = optional("window_seconds", unsigned),
        pub min_requests: Option<u64> = optional("min_requests", unsigned),
        /// A fraction (`0.05` is 5 %), as written.
        pub max_failure_rate: Option<String> = optional("max_failure_rate", number),
        pub max_p99_ms: Option<u64> = optional("max_p99_ms", unsigned),
        /// A fraction (`0.05` is 5 points above the baseline's failure rate), as written.
        pub max_failure_rate_increase: Option<String> =
            optional("max_failure_rate_increase", number),
        /// A factor (`1.5`: the variant's p99 above 1.5 times the baseline's), as written.
        pub max_p99_ratio: Option<String> = optional("max_p99_ratio", number),
        /// `abort` (default) or `rearm`.
        pub on_trip: Option<String> = optional("on_trip", string),
        pub hold_seconds: Option<u64> = optional("hold_seconds", unsigned),
        pub max_trips: Option<u64> = optional("max_trips", unsigned),
        /// One receiver (an object) or a list of them.
        pub notify: Option<Vec<RawNotify>> = custom("notify", RawGuard::decode_notify),
    }
    also {
        /// `notify` was written as a list (its receivers' paths are `notify[i]`, else `notify`).
        pub notify_list: bool,
    }
}

impl RawGuard {
    fn decode_notify(&mut self, v: &Value, path: &str, errs: &mut Errors) {
        self.notify_list = matches!(v, Value::Array(_));
        self.notify = crate::decode::opt(v, path, errs, one_or_list(RawNotify::decode_at));
    }
}

decoded! {
    /// A receiver of a guard's trip and re-arm messages.
    #[derive(Debug, Clone, Default)]
    pub struct RawNotify {
        /// The Envoy cluster the POST goes through.
        pub cluster: String = required("cluster", string),
        pub path: String = required("path", string),
        /// `slack` (default), `msteams`, `discord`, `generic` or `github`.
        pub format: Option<String> = optional("format", string),
        /// Default: the cluster name.
        pub authority: Option<String> = optional("authority", string),
        pub timeout_ms: Option<u64> = optional("timeout_ms", unsigned),
        /// Attempts after a failed send (default 3).
        pub retries: Option<u64> = optional("retries", unsigned),
        /// In document order.
        pub headers: Option<Vec<(String, String)>> = optional("headers", map(string)),
    }
}

decoded! {
    #[derive(Debug, Clone, Default)]
    pub struct RawVariant {
        pub name: String = required("name", string),
        /// The weight as written (a JSON number, percent).
        pub weight: String = required("weight", number),
    }
}

impl RawVariant {
    /// The weight in basis points, if it is a percentage with at most two decimals.
    pub fn weight_bp(&self) -> Option<u16> {
        crate::split::weight_bp(&self.weight).ok()
    }
}

decoded! {
    #[derive(Debug, Clone, Default)]
    pub struct RawSticky {
        pub keys: Vec<RawKey> = or_default("keys", list(RawKey::decode_at)),
        pub cookie: Option<RawCookie> = optional("cookie", RawCookie::decode_at),
    }
}

decoded! {
    /// One sticky key: exactly one of the fields is set.
    #[derive(Debug, Clone, Default)]
    pub struct RawKey {
        pub header: Option<String> = optional("header", string),
        pub cookie: Option<String> = optional("cookie", string),
        pub query: Option<String> = optional("query", string),
        pub source_ip: Option<bool> = optional("source_ip", boolean),
    }
}

decoded! {
    #[derive(Debug, Clone)]
    pub struct RawCookie {
        pub name: String = required("name", string),
        pub max_age: Option<u64> = optional("max_age", unsigned),
        pub path: Option<String> = optional("path", string),
        pub domain: Option<String> = optional("domain", string),
        pub secure: bool = or_default("secure", boolean),
        /// Default `true` (see `Default` below).
        pub http_only: bool = or_default("http_only", boolean),
        pub same_site: Option<String> = optional("same_site", string),
    }
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

decoded! {
    #[derive(Debug, Clone, Default)]
    pub struct RawRule {
        pub variant: String = required("variant", string),
        pub matches: Vec<RawMatch> = required("match", list(RawMatch::decode_at)),
    }
}

decoded! {
    /// One condition of a rule: exactly one source (`header`, `cookie`, `query`,
    /// `source_label`) and exactly one operator (`exact`, `prefix`, `suffix`, `contains`,
    /// `present`, `regex`).
    #[derive(Debug, Clone, Default)]
    pub struct RawMatch {
        pub header: Option<String> = optional("header", string),
        pub cookie: Option<String> = optional("cookie", string),
        pub query: Option<String> = optional("query", string),
        /// A label of this proxy's own workload (node metadata `LABELS`), known at configure
        /// time.
        pub source_label: Option<String> = optional("source_label", string),
        pub exact: Option<String> = optional("exact", string),
        pub prefix: Option<String> = optional("prefix", string),
        pub suffix: Option<String> = optional("suffix", string),
        pub contains: Option<String> = optional("contains", string),
        pub present: Option<bool> = optional("present", boolean),
        pub regex: Option<String> = optional("regex", string),
    }
}

decoded! {
    /// An override of one policy, from node metadata (`CANARY_ROUTER`, keyed by policy name) or
    /// route metadata (`filter_metadata["canary-router"]`, which may also name the policy).
    #[derive(Debug, Clone, Default)]
    pub struct RawOverride {
        /// Route metadata only: the policy for the route's requests.
        pub policy: Option<String> = optional("policy", string),
        /// `false` sends everything to the policy's last variant.
        pub enabled: Option<bool> = optional("enabled", boolean),
        /// New weights for (some of) the policy's variants; unlisted variants get 0.
        pub variants: Option<Vec<RawVariant>> =
            optional("variants", list(RawVariant::decode_at)),
    }
}

impl RawOverride {
    /// Decodes one override (node metadata entry or route metadata namespace).
    pub fn decode(v: &Value, path: &str, errs: &mut Errors) -> Option<RawOverride> {
        RawOverride::decode_at(v, path, errs)
    }
}
