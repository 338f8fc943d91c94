//! Canary Router core: configuration, validation and the per-request decision engine.
//!
//! This crate has no proxy-wasm dependency and makes no host calls. Everything the decision
//! depends on (the request, randomness) is passed in, so the same code runs in the Envoy filter,
//! in the `canary-router` command and in tests, natively and on wasm32, with identical answers.
//!
//! ```
//! use canary_router::{Config, SimpleRequest, SplitMix64};
//!
//! let config = Config::from_json(br#"{"policies": [{"name": "reviews",
//!     "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 90}],
//!     "sticky": {"keys": [{"header": "x-user-id"}]}}]}"#).unwrap();
//! let req = SimpleRequest::new("reviews", "/").header("x-user-id", "alice");
//! let d = config.decide(&req, &mut SplitMix64::new(1)).unwrap();
//! assert_eq!(d.reason.as_str(), "sticky_key");
//! ```

pub mod compile;
pub mod config;
pub mod decide;
mod decode;
pub mod error;
pub mod guard;
pub mod index;
pub mod json;
pub mod model;
pub mod names;
pub mod notify;
pub mod number;
pub mod overrides;
pub mod pb;
pub mod ramp;
pub mod random;
pub mod regex;
pub mod request;
pub mod significance;
pub mod split;
pub mod stats;

pub use compile::parse_json;
pub use decide::{Decision, MintedId, Reason};
pub use error::{ConfigError, ConfigErrors};
pub use model::{Config, Policy, StickyCookie, Variant};
pub use overrides::{Environment, RouteOverride};
pub use random::{Random, SplitMix64};
pub use request::{RequestView, SimpleRequest};
pub use split::{bucket_for, Split, BUCKETS};

#[cfg(test)]
mod tests;
