//! The decision function: (compiled config, request, random source) → decision.
//!
//! Order of precedence inside the policy that applies:
//! 1. `trusted`: `trust_incoming` is on and the incoming variant header names a variant;
//! 2. `rule`: the first rule whose conditions all hold;
//! 3. `sticky_key`: the first sticky key present (non-empty) gives the bucket;
//! 4. `sticky_cookie`: the policy's sticky cookie is present and gives the bucket;
//! 5. `minted_cookie`: a sticky cookie is configured but absent: a fresh id is minted,
//!    bucketed, and returned to be set on the response;
//! 6. `weight`: a random bucket.
//!
//! A policy turned off (`"enabled": false` in an override) sends everything to its last
//! variant with reason `disabled`, before any of the above.

use std::borrow::Cow;

use crate::error::ConfigErrors;
use crate::guard::GuardView;
use crate::json::Value;
use crate::model::{Condition, Config, Key, Op, Policy, Source};
use crate::overrides::{Environment, RouteOverride};
use crate::random::Random;
use crate::request::{address_ip, cookie, normalize_host, query_in, RequestView};
use crate::split::{bucket, Split, BUCKETS};

/// Why a request got its variant. The names are the `reason` label of the stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    Rule,
    StickyKey,
    StickyCookie,
    MintedCookie,
    Weight,
    Trusted,
    Disabled,
    Guard,
}

impl Reason {
    pub const ALL: [Reason; 8] = [
        Reason::Rule,
        Reason::StickyKey,
        Reason::StickyCookie,
        Reason::MintedCookie,
        Reason::Weight,
        Reason::Trusted,
        Reason::Disabled,
        Reason::Guard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rule => "rule",
            Reason::StickyKey => "sticky_key",
            Reason::StickyCookie => "sticky_cookie",
            Reason::MintedCookie => "minted_cookie",
            Reason::Weight => "weight",
            Reason::Trusted => "trusted",
            Reason::Disabled => "disabled",
            Reason::Guard => "guard",
        }
    }
}

/// Length of a minted sticky id: 128 random bits as lowercase hex.
pub const MINTED_ID_LEN: usize = 32;

/// A freshly minted sticky id.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MintedId([u8; MINTED_ID_LEN]);

impl MintedId {
    fn generate(rng: &mut impl Random) -> MintedId {
        let mut raw = [0u8; MINTED_ID_LEN / 2];
        rng.fill(&mut raw);
        let mut out = [0u8; MINTED_ID_LEN];
        for (pair, b) in out.chunks_exact_mut(2).zip(raw) {
            let hex = |nibble: u8| match nibble {
                0..=9 => b'0' + nibble,
                _ => b'a' + (nibble - 10),
            };
            if let [hi, lo] = pair {
                *hi = hex(b >> 4);
                *lo = hex(b & 0x0f);
            }
        }
        MintedId(out)
    }

    pub fn as_str(&self) -> &str {
        // Always ASCII hex.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for MintedId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MintedId({})", self.as_str())
    }
}

/// The outcome for a request that a policy applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Index of the policy in [`Config::policies`].
    pub policy: usize,
    /// Index of the variant in [`Policy::variants`].
    pub variant: usize,
    pub reason: Reason,
    /// The bucket (`0..BUCKETS`) when the variant came from the weights.
    pub bucket: Option<u16>,
    /// A minted sticky id, to be sent back in `Set-Cookie`.
    pub minted: Option<MintedId>,
}

impl Config {
    /// Parses and compiles a JSON plugin configuration.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigErrors> {
        Config::from_json_in(bytes, &Environment::default())
    }

    /// Parses and compiles a JSON plugin configuration for a proxy with node metadata `env`.
    pub fn from_json_in(bytes: &[u8], env: &Environment) -> Result<Config, ConfigErrors> {
        crate::compile::from_json_in(bytes, env)
    }

    /// Compiles a route's `filter_metadata["canary-router"]` (as JSON). `Ok(None)`: nothing to
    /// override. `path` names the route in errors (e.g. `route[reviews-route].canary-router`).
    pub fn route_override(
        &self,
        value: &Value,
        path: &str,
    ) -> Result<Option<RouteOverride>, ConfigErrors> {
        crate::overrides::route_override(&self.policies, value, path)
    }

    /// Which policy applies to the request, if any: the first in configuration order whose
    /// selectors (hosts, path prefix, routes) all match.
    pub fn find_policy<R: RequestView>(&self, req: &R) -> Option<usize> {
        let host = normalize_host(req.header(":authority").unwrap_or_default());
        let path = req.header(":path").unwrap_or("/");
        self.index.find(
            &host,
            || req.route_name(),
            |i| {
                self.policies
                    .get(i as usize)
                    .is_some_and(|p| p.selectors_match(path, req))
            },
        )
    }

    /// Decides the variant of a request; `None` when no policy applies.
    pub fn decide<R: RequestView>(&self, req: &R, rng: &mut impl Random) -> Option<Decision> {
        self.decide_on_route(req, None, rng)
    }

    /// Decides with the override from the matched route's metadata, if any: a route that names
    /// a policy uses it without checking its selectors; route weights beat node metadata, which
    /// beats the plugin configuration.
    pub fn decide_on_route<R: RequestView>(
        &self,
        req: &R,
        route: Option<&RouteOverride>,
        rng: &mut impl Random,
    ) -> Option<Decision> {
        self.decide_live(req, route, &[], rng)
    }

    /// [`Config::decide_on_route`] with the splits in force now (`live[i]` for policy `i`, from
    /// [`Config::effective_splits`]; a missing entry means the configured split): how ramps and
    /// guards reach the decision. Route weights beat a ramp; a tripped guard beats everything.
    pub fn decide_live<R: RequestView>(
        &self,
        req: &R,
        route: Option<&RouteOverride>,
        live: &[Split],
        rng: &mut impl Random,
    ) -> Option<Decision> {
        let index = match route.and_then(RouteOverride::policy) {
            Some(index) => index,
            None => self.find_policy(req)?,
        };
        let policy = self.policies.get(index)?;
        let live = live.get(index);
        let split = route
            .and_then(|r| r.split_for(index))
            .or(live)
            .unwrap_or(&policy.split);
        let mut d = policy.decide(index, split, &self.variant_header, req, rng);
        if let Some((from, to)) = live.and_then(Split::divert) {
            if d.variant == from {
                d.variant = to;
                d.reason = Reason::Guard;
            }
        }
        Some(d)
    }

    /// Every policy's split at unix time `now` (seconds), for [`Config::decide_live`].
    pub fn live_splits(&self, now: i64) -> Vec<Split> {
        self.effective_splits(now, &[])
    }

    /// Every policy's split at unix time `now` with its ramp applied and, where `tripped[i]`
    /// is true, policy `i`'s guarded variant diverted to its baseline.
    pub fn effective_splits(&self, now: i64, tripped: &[bool]) -> Vec<Split> {
        let views: Vec<GuardView> = tripped
            .iter()
            .map(|&tripped| GuardView {
                tripped,
                ramp_stopped_at: None,
            })
            .collect();
        self.splits_in_force(now, &views)
    }

    /// Every policy's split at unix time `now` (seconds) as its guard leaves it (`guards[i]`
    /// for policy `i`; a missing entry is an armed guard that never tripped): the ramp applied
    /// at `now`, or where it stood when the guard first tripped, and a tripped guard's variant
    /// diverted to its baseline.
    pub fn splits_in_force(&self, now: i64, guards: &[GuardView]) -> Vec<Split> {
        let mut out = Vec::with_capacity(self.policies.len());
        for (i, p) in self.policies.iter().enumerate() {
            let view = guards.get(i).copied().unwrap_or_default();
            let divert = p.guard().map(|g| (g.variant(), g.baseline()));
            out.push(p.split.in_force(p.ramp(), divert, view, now));
        }
        out
    }

    /// Whether some policy has a guard.
    pub fn has_guards(&self) -> bool {
        self.policies.iter().any(|p| p.guard.is_some())
    }

    /// Whether some policy has a ramp (the caller then refreshes [`Config::effective_splits`]).
    pub fn has_ramps(&self) -> bool {
        self.policies.iter().any(|p| p.ramp.is_some())
    }
}

impl Policy {
    /// Path prefix and routes (hosts are matched by the index).
    fn selectors_match<R: RequestView>(&self, path: &str, req: &R) -> bool {
        if let Some(prefix) = &self.path_prefix {
            if !path.starts_with(prefix.as_str()) {
                return false;
            }
        }
        if let Some(routes) = &self.routes {
            match req.route_name() {
                Some(name) if routes.iter().any(|r| r == name) => {}
                _ => return false,
            }
        }
        true
    }

    fn decide<R: RequestView>(
        &self,
        index: usize,
        split: &Split,
        variant_header: &str,
        req: &R,
        rng: &mut impl Random,
    ) -> Decision {
        let decision = |variant, reason, bucket, minted| Decision {
            policy: index,
            variant,
            reason,
            bucket,
            minted,
        };
        if !split.enabled() {
            let last = self.variants.len().saturating_sub(1);
            return decision(last, Reason::Disabled, None, None);
        }
        if self.trust_incoming {
            if let Some(v) = req
                .header(variant_header)
                .and_then(|v| self.variant_index(v))
            {
                return decision(v, Reason::Trusted, None, None);
            }
        }
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| c.holds(req)))
        {
            return decision(rule.variant, Reason::Rule, None, None);
        }
        for key in &self.keys {
            let value = match key {
                Key::Value(source) => source.read(req),
                Key::SourceIp => req.source_address().map(|a| Cow::Borrowed(address_ip(a))),
            };
            if let Some(value) = value.filter(|v| !v.is_empty()) {
                let b = bucket(&self.salt_prefix, value.as_bytes());
                return decision(
                    split.variant_for_bucket(b),
                    Reason::StickyKey,
                    Some(b),
                    None,
                );
            }
        }
        if let Some(c) = &self.cookie {
            if let Some(value) = cookie(req, &c.name).filter(|v| !v.is_empty()) {
                let b = bucket(&self.salt_prefix, value.as_bytes());
                return decision(
                    split.variant_for_bucket(b),
                    Reason::StickyCookie,
                    Some(b),
                    None,
                );
            }
            let id = MintedId::generate(rng);
            let b = bucket(&self.salt_prefix, id.as_str().as_bytes());
            return decision(
                split.variant_for_bucket(b),
                Reason::MintedCookie,
                Some(b),
                Some(id),
            );
        }
        let b = (rng.next_u64() % u64::from(BUCKETS)) as u16;
        decision(split.variant_for_bucket(b), Reason::Weight, Some(b), None)
    }
}

impl Source {
    fn read<'a, R: RequestView>(&self, req: &'a R) -> Option<Cow<'a, str>> {
        match self {
            Source::Header(name) => req.header(name).map(Cow::Borrowed),
            Source::Cookie(name) => cookie(req, name).map(Cow::Borrowed),
            Source::Query(name) => query_in(req.header(":path")?, name),
        }
    }
}

impl Condition {
    fn holds<R: RequestView>(&self, req: &R) -> bool {
        self.op.test(self.source.read(req).as_deref())
    }
}

impl Op {
    /// Whether the operator holds for a value (`None`: the source is absent).
    pub(crate) fn test(&self, value: Option<&str>) -> bool {
        match (self, value) {
            (Op::Present(want), v) => v.is_some() == *want,
            (_, None) => false,
            (Op::Exact(s), Some(v)) => v == s,
            (Op::Prefix(s), Some(v)) => v.starts_with(s.as_str()),
            (Op::Suffix(s), Some(v)) => v.ends_with(s.as_str()),
            (Op::Contains(s), Some(v)) => v.contains(s.as_str()),
            (Op::Regex(re), Some(v)) => re.is_full_match(v),
        }
    }
}
