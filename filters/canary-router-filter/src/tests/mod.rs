//! Unit tests of the filter against a fake host (`fake.rs`): what reaches Envoy's counters and
//! when, the guards' windows in shared data (two VMs at once included), the route cache, the
//! decision written on the request and response, and configurations refused at configure.

// Tests may fail loudly.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod fake;
mod guard;
mod root;
mod stream;

use canary_router::stats::{tagged_name, POLICY, REASON, REQUESTS_TOTAL, VARIANT};

/// The benchmark's typical configuration (scripts/bench/configs.py): alice's bucket is
/// stable's, dave's the canary's.
const TYPICAL: &str = r#"{"variant_header": "x-canary-variant", "policies": [{
    "name": "reviews", "salt": "reviews",
    "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
    "sticky": {
        "keys": [{"header": "x-user-id"}, {"cookie": "session"}],
        "cookie": {"name": "canary-id", "max_age": 86400, "http_only": true,
                   "same_site": "Lax"}
    },
    "rules": [{"variant": "canary", "match": [{"header": "x-beta", "exact": "true"}]}]
}]}"#;

/// `canary_router_requests_total{policy="reviews", variant, reason}`.
fn requests_total(variant: &str, reason: &str) -> String {
    tagged_name(
        REQUESTS_TOTAL,
        &[(POLICY, "reviews"), (VARIANT, variant), (REASON, reason)],
    )
}
