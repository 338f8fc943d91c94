//! The compiled configuration: what the per-request path ([`crate::decide`]) reads, with its
//! accessors. Everything that can be computed once is computed at configure time
//! ([`crate::compile`]): lowercased header names, bucket ranges, compiled regexes, the
//! `Set-Cookie` attribute suffix, the host index.

use crate::error::ConfigError;
use crate::guard::Guard;
use crate::index::PolicyIndex;
use crate::ramp::Ramp;
use crate::split::Split;

/// A validated, ready-to-serve configuration.
#[derive(Debug)]
pub struct Config {
    pub(crate) variant_header: String,
    pub(crate) expose_variant: bool,
    pub(crate) route_metadata: bool,
    pub(crate) filter_state: bool,
    pub(crate) response_metrics: bool,
    pub(crate) policies: Vec<Policy>,
    pub(crate) index: PolicyIndex,
    pub(crate) warnings: Vec<ConfigError>,
    /// Identifies the configuration document and node metadata it was compiled from.
    pub(crate) fingerprint: u64,
    /// Identifies the configuration document alone, in canonical form (see
    /// [`Config::document_fingerprint`]).
    pub(crate) document_fingerprint: u64,
}

impl Config {
    /// A hash of the configuration document and the node metadata it was compiled with: equal
    /// on every worker of a proxy that runs the same configuration, different after a change.
    /// Guards key their shared state by it, so a new configuration starts them afresh.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// A hash (xxh3_64) of the configuration document in canonical form
    /// ([`crate::json::canonical`]: members sorted, numbers as exact decimals, no whitespace),
    /// without node metadata: the same for the `pluginConfig` of a WasmPlugin as written in Git
    /// and as Istio delivers it to every proxy (re-serialized from a protobuf `Struct`, `10`
    /// possibly as `10.0`), so a proxy can name the configuration in force to the GitOps side.
    /// Written for people as 16 hex digits (`format!("{:016x}", fp)`); `canary-router
    /// fingerprint FILE` prints it for the configurations of a file. (Integers beyond 2^53 are
    /// rounded by the `Struct`'s doubles and would differ; no setting is that large.)
    pub fn document_fingerprint(&self) -> u64 {
        self.document_fingerprint
    }

    /// Problems in node metadata overrides: each disabled its own override; the configuration
    /// works without them.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// The request header the decision is written to (lowercase).
    pub fn variant_header(&self) -> &str {
        &self.variant_header
    }

    /// Whether the variant is also returned in a response header of the same name.
    pub fn expose_variant(&self) -> bool {
        self.expose_variant
    }

    /// Whether route metadata overrides are read (`"route_metadata": true`).
    pub fn route_metadata(&self) -> bool {
        self.route_metadata
    }

    /// Whether the decision is written to filter state for access logs (`"filter_state": true`).
    pub fn filter_state(&self) -> bool {
        self.filter_state
    }

    /// Whether responses are counted and timed per variant (`"response_metrics"`, default
    /// true). Off, the filter reads no response unless a guard judges it.
    pub fn response_metrics(&self) -> bool {
        self.response_metrics
    }

    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    pub fn policy(&self, index: usize) -> Option<&Policy> {
        self.policies.get(index)
    }

    /// True when some policy selects on Envoy route names, so the route name must be read.
    pub fn uses_routes(&self) -> bool {
        self.index.uses_routes()
    }
}

/// One compiled policy.
#[derive(Debug)]
pub struct Policy {
    pub(crate) name: String,
    pub(crate) hosts: Option<Vec<String>>,
    pub(crate) path_prefix: Option<String>,
    pub(crate) routes: Option<Vec<String>>,
    /// `salt ":"`, the prefix of every hashed key.
    pub(crate) salt_prefix: Vec<u8>,
    pub(crate) trust_incoming: bool,
    pub(crate) variants: Vec<Variant>,
    pub(crate) split: Split,
    pub(crate) keys: Vec<Key>,
    pub(crate) cookie: Option<StickyCookie>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) ramp: Option<Ramp>,
    pub(crate) guard: Option<Guard>,
}

impl Policy {
    /// The policy's scheduled ramp, if any.
    pub fn ramp(&self) -> Option<&Ramp> {
        self.ramp.as_ref()
    }

    /// The policy's guard, if any.
    pub fn guard(&self) -> Option<&Guard> {
        self.guard.as_ref()
    }

    /// The split in force at unix time `now` (seconds): the configured split (with node
    /// overrides) with the ramp applied once it has started.
    pub fn split_at(&self, now: i64) -> Split {
        self.split.ramped(self.ramp.as_ref(), now)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    pub fn variant(&self, index: usize) -> Option<&Variant> {
        self.variants.get(index)
    }

    /// The variant that owns `bucket` under the split in force (plugin configuration with node
    /// metadata overrides applied).
    pub fn variant_for_bucket(&self, bucket: u16) -> usize {
        self.split.variant_for_bucket(bucket)
    }

    /// The weights in force (plugin configuration with node metadata overrides applied).
    pub fn split(&self) -> &Split {
        &self.split
    }

    /// Index of the variant called `name`, if any.
    pub fn variant_index(&self, name: &str) -> Option<usize> {
        self.variants.iter().position(|v| v.name == name)
    }

    /// The sticky cookie this policy mints, if configured.
    pub fn sticky_cookie(&self) -> Option<&StickyCookie> {
        self.cookie.as_ref()
    }
}

/// A variant of a policy. Its share of traffic is in the policy's [`Split`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub(crate) name: String,
}

impl Variant {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Where a sticky key or a rule condition reads its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Header(String),
    Cookie(String),
    Query(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    Value(Source),
    SourceIp,
}

/// The cookie minted for users with no sticky key.
#[derive(Debug, Clone)]
pub struct StickyCookie {
    pub(crate) name: String,
    /// `; Max-Age=…; Path=…; …`, appended after `name=value`.
    pub(crate) attributes: String,
}

impl StickyCookie {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The `Set-Cookie` header value for a minted id.
    pub fn set_cookie_value(&self, id: &str) -> String {
        let mut s = String::with_capacity(self.name.len() + 1 + id.len() + self.attributes.len());
        s.push_str(&self.name);
        s.push('=');
        s.push_str(id);
        s.push_str(&self.attributes);
        s
    }
}

#[derive(Debug)]
pub struct Rule {
    pub(crate) variant: usize,
    pub(crate) conditions: Vec<Condition>,
}

#[derive(Debug)]
pub struct Condition {
    pub(crate) source: Source,
    pub(crate) op: Op,
}

#[derive(Debug)]
pub enum Op {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    Present(bool),
    Regex(crate::regex::Regex),
}
