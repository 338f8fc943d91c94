//! Arbitrary bytes as a plugin configuration: errors are fine, panics are not. A configuration
//! that compiles must hold the split invariants and decide a plain request.
#![no_main]

use canary_router::{Config, SimpleRequest, SplitMix64};
use canary_router_fuzz::{check_config, check_decision};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(config) = Config::from_json(data) {
        check_config(&config, 1_700_000_000, &[true; 4]);
        let req = SimpleRequest::new("reviews", "/").header("x-user-id", "u1");
        if let Some(d) = config.decide(&req, &mut SplitMix64::new(1)) {
            check_decision(&config, &d);
        }
    }
});
