//! Table-driven unit tests of the core, run natively (`cargo test`) and on wasm32 under Node
//! (`wasm-bindgen-test`). The golden values are literal constants computed natively, so the
//! wasm32 run checks that both targets agree bit for bit.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bucketing;
mod config_errors;
mod decide;
mod overrides;
mod parsing;
mod pb;
mod stats;

use crate::{Config, Decision, SimpleRequest, SplitMix64};

/// Compiles a configuration that must be valid, showing every error otherwise.
fn config(json: &str) -> Config {
    match Config::from_json(json.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("config should compile, got: {e}\n{json}"),
    }
}

/// One decision with a fixed random seed.
fn decide(config: &Config, req: &SimpleRequest) -> Option<Decision> {
    config.decide(req, &mut SplitMix64::new(7))
}

/// The name of the policy a decision was made by.
fn policy_name(config: &Config, d: &Decision) -> String {
    config.policy(d.policy).expect("policy").name().to_string()
}

/// The name of the variant a decision chose.
fn variant_name(config: &Config, d: &Decision) -> String {
    let policy = config.policy(d.policy).expect("policy");
    policy
        .variant(d.variant)
        .expect("variant")
        .name()
        .to_string()
}

/// Deterministic ASCII filler of `len` bytes.
fn filler(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|i| char::from(ALPHABET[i % ALPHABET.len()]))
        .collect()
}
