//! Validation of a [`RawConfig`] and the building of its compiled form ([`crate::model`]),
//! one part of a policy per module; every error is reported with its JSON path, not only the
//! first.

mod guard;
mod policy;
mod ramp;
mod rules;
mod sticky;
mod variants;

use crate::config::{RawConfig, DEFAULT_VARIANT_HEADER};
use crate::error::{cat, element, quote, ConfigErrors, Errors};
use crate::index::{NameMap, PolicyIndex};
use crate::model::Config;
use crate::names::header_name;
use crate::number::decimal;
use crate::overrides::{apply_node_overrides, Environment};

// Where the command has always found it; its home is `crate::split`.
pub use crate::split::format_percent;

/// Largest configuration document accepted, in bytes.
pub const MAX_CONFIG_BYTES: usize = 4 * 1024 * 1024;

/// [`Config::from_json_in`]: parses and compiles a JSON plugin configuration for a proxy with
/// node metadata `env`, and fingerprints it.
pub(crate) fn from_json_in(bytes: &[u8], env: &Environment) -> Result<Config, ConfigErrors> {
    let doc = parse_document(bytes)?;
    let mut config = compile_in(&decode(&doc)?, env)?;
    let mut h = xxhash_rust::xxh3::xxh3_64(bytes);
    let mut mix = |part: &[u8]| {
        h = xxhash_rust::xxh3::xxh3_64_with_seed(part, h);
    };
    mix(env.node_overrides.as_deref().unwrap_or_default().as_bytes());
    for (k, v) in &env.labels {
        mix(k.as_bytes());
        mix(v.as_bytes());
    }
    config.fingerprint = h;
    config.document_fingerprint =
        xxhash_rust::xxh3::xxh3_64(crate::json::canonical(&doc).as_bytes());
    Ok(config)
}

/// Parses JSON into the raw configuration, naming the JSON path on error.
pub fn parse_json(bytes: &[u8]) -> Result<RawConfig, ConfigErrors> {
    decode(&parse_document(bytes)?)
}

/// The JSON document of a plugin configuration: size and syntax checked, not yet decoded.
fn parse_document(bytes: &[u8]) -> Result<crate::json::Value, ConfigErrors> {
    if bytes.len() > MAX_CONFIG_BYTES {
        let message = cat(&[
            "configuration is ",
            &decimal(bytes.len() as u64),
            " bytes; the limit is ",
            &decimal(MAX_CONFIG_BYTES as u64),
        ]);
        return Err(ConfigErrors::single("(config)", message));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ConfigErrors::single(
            "(config)",
            "configuration is empty; expected a JSON object with \"policies\"",
        ));
    }
    crate::json::parse(bytes).map_err(|e| e.at(""))
}

/// A parsed document as a [`RawConfig`], every shape error with its path.
fn decode(value: &crate::json::Value) -> Result<RawConfig, ConfigErrors> {
    let mut errs = Errors::default();
    match RawConfig::decode(value, &mut errs) {
        Some(raw) if errs.is_empty() => Ok(raw),
        _ => errs.finish_err(),
    }
}

/// Validates a raw configuration and builds its runtime form, reporting every error found.
pub fn compile(raw: &RawConfig) -> Result<Config, ConfigErrors> {
    compile_in(raw, &Environment::default())
}

/// [`compile`] for a proxy with node metadata `env`: `source_label` conditions are decided
/// against its labels, and its `CANARY_ROUTER` overrides are applied.
pub fn compile_in(raw: &RawConfig, env: &Environment) -> Result<Config, ConfigErrors> {
    let mut errs = Errors::default();

    let variant_header = match &raw.variant_header {
        None => DEFAULT_VARIANT_HEADER.to_string(),
        Some(h) => match header_name(h) {
            Ok(h) => h,
            Err(m) => {
                errs.push("variant_header", &m);
                String::new()
            }
        },
    };

    if raw.policies.is_empty() {
        errs.push("policies", "must list at least one policy");
    }
    let mut policies = Vec::with_capacity(raw.policies.len());
    let mut seen = NameMap::with_capacity(raw.policies.len());
    for (i, p) in raw.policies.iter().enumerate() {
        let path = element("policies", i);
        let index = u32::try_from(i).unwrap_or(u32::MAX);
        // The same lookup as the policy index's (one copy of the hashing code): the name is
        // copied only when new, and a repeat names the previous policy of that name.
        let previous = match seen.entry_ref(p.name.as_str()) {
            hashbrown::hash_map::EntryRef::Occupied(mut e) => Some(e.insert(index)),
            hashbrown::hash_map::EntryRef::Vacant(e) => {
                e.insert(index);
                None
            }
        };
        if let Some(first) = previous {
            let message = cat(&[
                "duplicate policy name ",
                &quote(&p.name),
                " (also ",
                &element("policies", first as usize),
                ")",
            ]);
            errs.push_at(&path, "name", &message);
        }
        if let Some(policy) = policy::compile_policy(p, &path, env, &mut errs) {
            policies.push(policy);
        }
    }
    if !errs.is_empty() {
        return errs.finish_err();
    }
    let warnings = match &env.node_overrides {
        Some(json) => apply_node_overrides(json, &mut policies),
        None => Vec::new(),
    };
    let index = PolicyIndex::build(
        policies
            .iter()
            .map(|p| (p.hosts.as_deref(), p.routes.as_deref())),
    );
    errs.finish(Config {
        variant_header,
        expose_variant: raw.expose_variant,
        route_metadata: raw.route_metadata,
        filter_state: raw.filter_state,
        response_metrics: raw.response_metrics.unwrap_or(true),
        policies,
        index,
        warnings,
        fingerprint: 0,
        document_fingerprint: 0,
    })
}
