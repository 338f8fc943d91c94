//! Stat names and labels, defined once.
//!
//! Envoy has no labels on Wasm metrics: a metric is a flat name, and labels come from tag
//! extraction. Names here follow Istio's convention, labels first and the metric last:
//!
//! ```text
//! policy=.=reviews;.;variant=.=canary;.;reason=.=weight;.;canary_router_requests_total
//! ```
//!
//! Envoy stores it as `wasmcustom.<that>`; a `stats_tags` entry per label with the regex
//! [`tag_regex`] (`(policy=\.=(.*?);\.;)`, exactly what Istio generates for `extraStatTags`)
//! turns each `label=.=value;.;` into a label, and `/stats/prometheus` prints
//! `canary_router_requests_total{policy="reviews",variant="canary",reason="weight"}`.
//! Label values are policy and variant names (letters, digits, `-`, `_`) or fixed words, so
//! they never contain the separators.

/// Requests decided, by `policy`, `variant`, `reason`.
pub const REQUESTS_TOTAL: &str = "canary_router_requests_total";
/// Responses, by `policy`, `variant`, `code_class`, `grpc_status`.
pub const RESPONSES_TOTAL: &str = "canary_router_responses_total";
/// Histogram of milliseconds from request headers to response headers, by `policy`, `variant`.
pub const RESPONSE_TIME_MS: &str = "canary_router_response_time_ms";
/// Gauge: the weight in force in basis points, by `policy`, `variant`.
pub const WEIGHT: &str = "canary_router_weight";
/// Configuration problems, by `source` (`plugin`, `node`, `route`).
pub const CONFIG_ERRORS_TOTAL: &str = "canary_router_config_errors_total";

/// Gauge: 1 while a guard holds its variant off, else 0, by `policy`, `variant`.
pub const GUARD_TRIPPED: &str = "canary_router_guard_tripped";
/// Times a guard tripped, by `policy`, `variant` (counted once per proxy).
pub const GUARD_TRIPS_TOTAL: &str = "canary_router_guard_trips_total";
/// Guard messages that could not be delivered, by `policy`, `variant`.
pub const GUARD_NOTIFY_FAILURES_TOTAL: &str = "canary_router_guard_notify_failures_total";

/// Gauge: the linear memory of a Wasm VM that serves requests, in bytes (no labels).
pub const VM_MEMORY_BYTES: &str = "canary_router_vm_memory_bytes";

/// Every metric, for documentation and tests.
pub const METRICS: [&str; 9] = [
    REQUESTS_TOTAL,
    RESPONSES_TOTAL,
    RESPONSE_TIME_MS,
    WEIGHT,
    CONFIG_ERRORS_TOTAL,
    GUARD_TRIPPED,
    GUARD_TRIPS_TOTAL,
    GUARD_NOTIFY_FAILURES_TOTAL,
    VM_MEMORY_BYTES,
];

pub const POLICY: &str = "policy";
pub const VARIANT: &str = "variant";
pub const REASON: &str = "reason";
pub const CODE_CLASS: &str = "code_class";
pub const GRPC_STATUS: &str = "grpc_status";
pub const SOURCE: &str = "source";

/// Every label, in the order Envoy's `stats_tags` should list them.
pub const LABELS: [&str; 6] = [POLICY, VARIANT, REASON, CODE_CLASS, GRPC_STATUS, SOURCE];

/// Where a configuration problem came from (the `source` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorSource {
    Plugin,
    Node,
    Route,
}

impl ErrorSource {
    pub const ALL: [ErrorSource; 3] = [ErrorSource::Plugin, ErrorSource::Node, ErrorSource::Route];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorSource::Plugin => "plugin",
            ErrorSource::Node => "node",
            ErrorSource::Route => "route",
        }
    }
}

/// The name to define for `metric` with `labels`: `l1=.=v1;.;l2=.=v2;.;metric`.
pub fn tagged_name(metric: &str, labels: &[(&str, &str)]) -> String {
    let len = metric.len()
        + labels
            .iter()
            .map(|(k, v)| k.len() + v.len() + 6)
            .sum::<usize>();
    let mut s = String::with_capacity(len);
    for (k, v) in labels {
        s.push_str(k);
        s.push_str("=.=");
        s.push_str(v);
        s.push_str(";.;");
    }
    s.push_str(metric);
    s
}

/// The Envoy `stats_tags` regex extracting `label`: `(label=\.=(.*?);\.;)`.
pub fn tag_regex(label: &str) -> String {
    format!("({label}=\\.=(.*?);\\.;)")
}

/// `code_class` of an HTTP status: `1xx` … `5xx`; `none` when no response headers were sent
/// (a reset or timeout before them) or the status is not a valid code.
pub fn code_class(status: Option<u16>) -> &'static str {
    match status {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "none",
    }
}

/// gRPC status names by code (0 … 16).
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `grpc_status` label: the status name for a `grpc-status` value; `UNKNOWN` for a value that
/// is not a known code (as gRPC clients treat it). Non-gRPC responses use [`NOT_GRPC`].
pub fn grpc_status_name(value: &[u8]) -> &'static str {
    crate::number::parse_decimal(value.trim_ascii())
        .and_then(|code| GRPC_STATUS_NAMES.get(usize::try_from(code).ok()?).copied())
        .unwrap_or("UNKNOWN")
}

/// `grpc_status` of a response that is not gRPC.
pub const NOT_GRPC: &str = "none";

/// Parses an HTTP `:status` value.
pub fn parse_status(value: &[u8]) -> Option<u16> {
    u16::try_from(crate::number::parse_decimal(value)?).ok()
}
