//! Split overrides from the mesh: node metadata (per proxy) and route metadata (per route).
//!
//! Precedence, field by field: route metadata over node metadata over the plugin
//! configuration. An override may set a policy's `variants` weights (unlisted variants get 0)
//! and `enabled`; it cannot add variants. An invalid override is dropped on its own (reported
//! as a warning); the rest of the configuration keeps working.

use crate::config::RawOverride;
use crate::error::{cat, child, element, quote, quote_list, ConfigError, ConfigErrors, Errors};
use crate::json::Value;
use crate::model::Policy;
use crate::split::{check_weights, Split};

/// Node metadata key holding the per-policy overrides (JSON, a string value). In Istio it is
/// set per workload with `proxyMetadata: {ISTIO_META_CANARY_ROUTER: '…'}`.
pub const NODE_METADATA_KEY: &str = "CANARY_ROUTER";
/// Node metadata key of the workload's labels (set by Istio).
pub const NODE_LABELS_KEY: &str = "LABELS";
/// `filter_metadata` namespace read on routes.
pub const ROUTE_METADATA_NAMESPACE: &str = "canary-router";

/// What the proxy knows about itself at configure time (from node metadata).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// The `CANARY_ROUTER` node metadata value (a JSON object: policy name → override).
    pub node_overrides: Option<String>,
    /// This proxy's workload labels (node metadata `LABELS`), for `source_label` conditions.
    pub labels: Vec<(String, String)>,
    /// The Wasm VM's environment variables, for `${NAME}` in guard receivers. `None` (the
    /// command) checks the references without replacing them.
    pub vars: Option<Vec<(String, String)>>,
}

impl Environment {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `text` with its `${NAME}` references replaced from [`Environment::vars`] (checked only,
    /// and kept as written, without them).
    pub fn expand(&self, text: &str) -> Result<String, String> {
        match &self.vars {
            None => crate::notify::references(text).map(|_| text.to_string()),
            Some(vars) => crate::notify::expand(text, |name| {
                vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
            }),
        }
    }
}

/// Applies the node metadata overrides to the compiled policies; returns the problems found
/// (each disables its own override only).
pub(crate) fn apply_node_overrides(json: &str, policies: &mut [Policy]) -> Vec<ConfigError> {
    let base = child("node", NODE_METADATA_KEY);
    // The document as a whole first (policy name → anything), then each override on its own,
    // so that one bad entry does not take the others with it.
    let ignored_all = |mut errors: ConfigErrors| -> Vec<ConfigError> {
        for e in &mut errors.0 {
            e.message.push_str(" (all node metadata overrides ignored)");
        }
        errors.0
    };
    let entries = match crate::json::parse(json.as_bytes()) {
        Ok(Value::Object(entries)) => entries,
        Ok(other) => {
            let message = cat(&["invalid type: ", &other.describe(), ", expected a map"]);
            return ignored_all(ConfigErrors::single(base, message));
        }
        Err(e) => return ignored_all(e.at(&base)),
    };
    let mut map: Vec<(String, RawOverride)> = Vec::with_capacity(entries.len());
    let mut warnings = Vec::new();
    for (name, value) in &entries {
        let path = child(&base, name);
        if map.iter().any(|(n, _)| n == name) {
            warnings.push(ConfigError {
                path,
                message: "duplicate policy name; override ignored".into(),
            });
            continue;
        }
        let mut errs = Errors::default();
        match RawOverride::decode(value, &path, &mut errs) {
            Some(raw) if errs.is_empty() => map.push((name.clone(), raw)),
            _ => {
                let mut list = errs.into_vec();
                for e in &mut list {
                    e.message.push_str("; override ignored");
                }
                warnings.append(&mut list);
            }
        }
    }
    for (name, raw) in &map {
        let path = child(&base, name);
        if raw.policy.is_some() {
            warnings.push(ConfigError {
                path: child(&path, "policy"),
                message: "only route metadata can name a policy; override ignored".into(),
            });
            continue;
        }
        let Some(policy) = policies.iter_mut().find(|p| p.name == *name) else {
            warnings.push(ConfigError {
                path,
                message: cat(&["no policy is called ", &quote(name), "; override ignored"]),
            });
            continue;
        };
        match resolve(raw, policy, &path) {
            Ok(split) => policy.split = split,
            Err(mut errs) => warnings.append(&mut errs.0),
        }
    }
    warnings
}

/// The policy's split in force with `raw` applied, or why `raw` does not fit the policy.
fn resolve(raw: &RawOverride, policy: &Policy, path: &str) -> Result<Split, ConfigErrors> {
    let mut errs = Errors::default();
    let weights = raw.variants.as_ref().map(|list| {
        let vpath = cat(&[path, ".variants"]);
        if list.is_empty() {
            errs.push(&vpath, "must list at least one variant");
        }
        let mut weights = vec![0u16; policy.variants.len()];
        for (j, &(name, bp)) in check_weights(
            &mut list.iter().map(|v| (v.name.as_str(), v.weight.as_str())),
            &vpath,
            &mut errs,
        )
        .iter()
        .enumerate()
        {
            match policy.variant_index(name).and_then(|i| weights.get_mut(i)) {
                Some(w) => *w = bp,
                None => {
                    let message = cat(&[
                        "unknown variant ",
                        &quote(name),
                        "; policy ",
                        &quote(&policy.name),
                        " has ",
                        &quote_list(policy.variants.iter().map(|v| v.name())),
                    ]);
                    errs.push_at(&element(&vpath, j), "name", &message);
                }
            }
        }
        weights
    });
    if !errs.is_empty() {
        return errs.finish_err();
    }
    Ok(policy.split.with(weights, raw.enabled))
}

/// The compiled `filter_metadata["canary-router"]` of one route.
#[derive(Debug, Clone)]
pub struct RouteOverride {
    policy: Option<usize>,
    splits: RouteSplits,
}

#[derive(Debug, Clone)]
enum RouteSplits {
    /// No weights or `enabled`: the route only names the policy.
    None,
    /// For the named policy.
    One(Split),
    /// No policy named: for every policy the override fits (by policy index).
    PerPolicy(Vec<Option<Split>>),
}

impl RouteOverride {
    /// The policy the route names, if any.
    pub fn policy(&self) -> Option<usize> {
        self.policy
    }

    /// The split in force on this route for policy `index`, if the route overrides it.
    pub fn split_for(&self, index: usize) -> Option<&Split> {
        match &self.splits {
            RouteSplits::None => None,
            RouteSplits::One(split) => Some(split).filter(|_| self.policy == Some(index)),
            RouteSplits::PerPolicy(list) => list.get(index).and_then(Option::as_ref),
        }
    }
}

/// [`crate::Config::route_override`]: a route's override for the configuration's `policies`.
pub(crate) fn route_override(
    policies: &[Policy],
    value: &Value,
    path: &str,
) -> Result<Option<RouteOverride>, ConfigErrors> {
    let mut errs = Errors::default();
    let raw = match RawOverride::decode(value, path, &mut errs) {
        Some(raw) if errs.is_empty() => raw,
        _ => return errs.finish_err(),
    };
    let policy = match &raw.policy {
        None => None,
        Some(name) => match policies.iter().position(|p| p.name == *name) {
            Some(i) => Some(i),
            None => {
                return Err(ConfigErrors::single(
                    cat(&[path, ".policy"]),
                    cat(&["no policy is called ", &quote(name)]),
                ))
            }
        },
    };
    let overrides = raw.variants.is_some() || raw.enabled.is_some();
    let splits = match (overrides, policy) {
        (false, None) => return Ok(None),
        (false, Some(_)) => RouteSplits::None,
        (true, Some(i)) => match policies.get(i) {
            Some(p) => RouteSplits::One(resolve(&raw, p, path)?),
            None => RouteSplits::None,
        },
        (true, None) => {
            let mut list = Vec::with_capacity(policies.len());
            let mut first_error = None;
            for p in policies {
                match resolve(&raw, p, path) {
                    Ok(split) => list.push(Some(split)),
                    Err(e) => {
                        first_error.get_or_insert(e);
                        list.push(None);
                    }
                }
            }
            if list.iter().all(Option::is_none) {
                return Err(first_error.unwrap_or_else(|| {
                    ConfigErrors::single(path, "fits no policy of the configuration")
                }));
            }
            RouteSplits::PerPolicy(list)
        }
    };
    Ok(Some(RouteOverride { policy, splits }))
}
