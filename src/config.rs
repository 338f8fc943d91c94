//! The user-facing configuration, exactly as written in JSON (the plugin configuration).
//!
//! These types only describe the shape; [`crate::compile`] checks the meaning and builds the
//! runtime form. Every struct rejects unknown fields so a typo is an error, not a silent no-op.

use serde::Deserialize;

/// Default request header that carries the decision to the mesh's router.
pub const DEFAULT_VARIANT_HEADER: &str = "x-canary-variant";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub variant_header: Option<String>,
    #[serde(default)]
    pub expose_variant: bool,
    pub policies: Vec<RawPolicy>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: String,
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[serde(default)]
    pub path_prefix: Option<String>,
    #[serde(default)]
    pub routes: Option<Vec<String>>,
    #[serde(default)]
    pub salt: Option<String>,
    #[serde(default)]
    pub trust_incoming: bool,
    pub variants: Vec<RawVariant>,
    #[serde(default)]
    pub sticky: Option<RawSticky>,
    #[serde(default)]
    pub rules: Vec<RawRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    pub name: String,
    pub weight: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub cookie: Option<RawCookie>,
}

/// One sticky key: exactly one of the fields is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub source_ip: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCookie {
    pub name: String,
    #[serde(default)]
    pub max_age: Option<u64>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub secure: bool,
    #[serde(default = "default_true")]
    pub http_only: bool,
    #[serde(default)]
    pub same_site: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub variant: String,
    #[serde(rename = "match")]
    pub matches: Vec<RawMatch>,
}

/// One condition of a rule: exactly one source (`header`, `cookie`, `query`, `source_label`)
/// and exactly one
/// operator (`exact`, `prefix`, `suffix`, `contains`, `present`, `regex`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub cookie: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    /// A label of this proxy's own workload (node metadata `LABELS`), known at configure time.
    #[serde(default)]
    pub source_label: Option<String>,
    #[serde(default)]
    pub exact: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub present: Option<bool>,
    #[serde(default)]
    pub regex: Option<String>,
}

/// An override of one policy, from node metadata (`CANARY_ROUTER`, keyed by policy name) or
/// route metadata (`filter_metadata["canary-router"]`, which may also name the policy).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOverride {
    /// Route metadata only: the policy for the route's requests.
    #[serde(default)]
    pub policy: Option<String>,
    /// `false` sends everything to the policy's last variant.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// New weights for (some of) the policy's variants; unlisted variants get 0.
    #[serde(default)]
    pub variants: Option<Vec<RawVariant>>,
}
