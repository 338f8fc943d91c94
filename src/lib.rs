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
pub mod notify;
pub mod overrides;
pub mod pb;
pub mod ramp;
pub mod regex;
pub mod request;
pub mod significance;
pub mod stats;

pub use compile::{parse_json, Config, Policy, Split, StickyCookie, Variant};
pub use decide::{Decision, MintedId, Reason};
pub use error::{ConfigError, ConfigErrors};
pub use overrides::{Environment, RouteOverride};
pub use request::{RequestView, SimpleRequest};

use xxhash_rust::xxh3::xxh3_64;

/// Size of the bucket space: a variant with weight `w` % owns `w * 100` buckets.
pub const BUCKETS: u16 = 10_000;

/// The bucket of a sticky key: `xxh3_64(salt ":" key) % 10000`.
pub fn bucket_for(salt: &str, key: &str) -> u16 {
    let mut prefix = Vec::with_capacity(salt.len() + 1);
    prefix.extend_from_slice(salt.as_bytes());
    prefix.push(b':');
    bucket(&prefix, key.as_bytes())
}

/// `xxh3_64(salt_prefix ++ key) % 10000`, without allocating.
pub(crate) fn bucket(salt_prefix: &[u8], key: &[u8]) -> u16 {
    const STACK: usize = 256;
    let total = salt_prefix.len() + key.len();
    let hash = if total <= STACK {
        let mut buf = [0u8; STACK];
        let (a, b) = buf.split_at_mut(salt_prefix.len());
        a.copy_from_slice(salt_prefix);
        if let Some(b) = b.get_mut(..key.len()) {
            b.copy_from_slice(key);
        }
        xxh3_64(buf.get(..total).unwrap_or_default())
    } else {
        // Rare (keys over 256 bytes): one allocation rather than the streaming hasher's code.
        let mut buf = Vec::with_capacity(total);
        buf.extend_from_slice(salt_prefix);
        buf.extend_from_slice(key);
        xxh3_64(&buf)
    };
    (hash % u64::from(BUCKETS)) as u16
}

/// A source of randomness, supplied by the caller so that the core stays deterministic.
pub trait Random {
    fn next_u64(&mut self) -> u64;

    /// Fills `buf` with random bytes (used to mint sticky ids).
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            for (d, s) in chunk.iter_mut().zip(bytes) {
                *d = s;
            }
        }
    }
}

/// SplitMix64: a small, fast generator. Deterministic for a seed; not for secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }
}

impl Random for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
#[cfg(test)]
mod tests;
