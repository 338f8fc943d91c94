//! Table-driven unit tests of the core, run natively (`cargo test`) and on wasm32 under Node
//! (`wasm-bindgen-test`). The golden values are literal constants computed natively, so the
//! wasm32 run checks that both targets agree bit for bit.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod bucketing;
mod config_errors;
mod decide;
mod fingerprint;
mod fuzz_regressions;
mod guard;
mod json;
mod notify;
mod overrides;
mod parsing;
mod pb;
// proptest is a native dev-dependency only (the wasm32 run is under Node).
#[cfg(not(target_arch = "wasm32"))]
mod properties;
mod ramp;
mod regex;
mod significance;
mod stats;

use crate::{Config, Decision, Environment, Reason, SimpleRequest, SplitMix64};

/// A `json!` value as the core's own JSON value.
fn own(v: &serde_json::Value) -> crate::json::Value {
    crate::json::parse(v.to_string().as_bytes()).unwrap()
}

/// The core's JSON value as a `serde_json` value, numbers as `f64` (protobuf numbers are
/// doubles), for comparing with `json!`.
fn to_serde(v: &crate::json::Value) -> serde_json::Value {
    use crate::json::Value;
    match v {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::Number::from_f64(n.parse().unwrap())
            .map(serde_json::Value::Number)
            .unwrap(),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_serde).collect()),
        Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(k, v)| (k.clone(), to_serde(v)))
                .collect(),
        ),
    }
}

/// Compiles a configuration that must be valid, showing every error otherwise.
fn config(json: &str) -> Config {
    match Config::from_json(json.as_bytes()) {
        Ok(c) => c,
        Err(e) => panic!("config should compile, got: {e}\n{json}"),
    }
}

/// Compiles a configuration that must be valid for a proxy with node overrides `node` and
/// workload `labels`.
fn config_in(json: &str, node: Option<&str>, labels: &[(&str, &str)]) -> Config {
    let env = Environment {
        node_overrides: node.map(str::to_string),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        vars: None,
    };
    match Config::from_json_in(json.as_bytes(), &env) {
        Ok(c) => c,
        Err(e) => panic!("config should compile, got: {e}\n{json}\nnode: {node:?}"),
    }
}

/// Whether a rule with `conditions` holds for `req` on a proxy with `labels`: the rule sends
/// to variant `hit` (weight 0), anything else to `miss`.
fn rule_holds_on(labels: &[(&str, &str)], conditions: &str, req: &SimpleRequest) -> bool {
    let c = config_in(
        &format!(
            r#"{{"policies":[{{"name":"p",
            "variants":[{{"name":"hit","weight":0}},{{"name":"miss","weight":100}}],
            "rules":[{{"variant":"hit","match":[{conditions}]}}]}}]}}"#
        ),
        None,
        labels,
    );
    let d = decide(&c, req).expect("decision");
    match d.reason {
        Reason::Rule => {
            assert_eq!(variant_name(&c, &d), "hit");
            true
        }
        Reason::Weight => {
            assert_eq!(variant_name(&c, &d), "miss");
            false
        }
        other => panic!("unexpected reason {other:?}"),
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
