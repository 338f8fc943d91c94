//! Property tests (proptest, native only) over arbitrary valid configurations: 1 to 3 policies
//! of 1 to 5 variants whose weights are percentages with at most two decimals summing to 100,
//! with or without a salt, sticky keys, a sticky cookie, rules, a ramp (steps or linear), a
//! guard and a node metadata override.
//!
//! - the split weights always sum to the bucket space, as compiled, after node overrides, and
//!   from [`Config::effective_splits`] at any time and in any trip state;
//! - bucketing is monotone: raising the first variant's weight (taken from the next one), or a
//!   ramp rising over time, only moves users into the raised variant;
//! - decisions are deterministic for equal inputs and equal seeds;
//! - [`bucket_for`] is the bucket of the sticky decision (key, cookie or minted id).
//!
//! Case counts are set per property so that the whole suite runs in a few seconds.

use proptest::prelude::*;

use crate::{bucket_for, Config, Environment, Reason, SimpleRequest, Split, SplitMix64, BUCKETS};

/// 2026-12-01T10:00:00Z, the start of every generated ramp.
const START: i64 = 1_796_119_200;
const START_TEXT: &str = "2026-12-01T10:00:00Z";

/// How a policy keeps users sticky.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sticky {
    None,
    /// `x-user-id`.
    Header,
    /// `x-user-id`, then the cookie `cid` (minted when absent).
    HeaderThenCookie,
}

#[derive(Debug, Clone)]
enum RampSpec {
    Steps { steps: Vec<u16>, step_seconds: u32 },
    Linear { from: u16, to: u16, duration: u32 },
}

#[derive(Debug, Clone)]
struct PolicySpec {
    /// Basis points per variant, summing to 10 000.
    weights: Vec<u16>,
    salt: Option<String>,
    sticky: Sticky,
    /// `(variant, value)`: the rule sends requests with `x-rule: value` to the variant.
    rules: Vec<(usize, String)>,
    /// Always on the variant before the last one.
    ramp: Option<RampSpec>,
    /// `(variant, baseline)`.
    guard: Option<(usize, usize)>,
    /// Node metadata: weights (all variants listed) and `enabled`.
    node: Option<(Option<Vec<u16>>, Option<bool>)>,
}

/// A weight in basis points as a JSON percentage with at most two decimals.
fn percent(bp: u16) -> String {
    match bp % 100 {
        0 => (bp / 100).to_string(),
        cents => format!("{}.{cents:02}", bp / 100),
    }
}

fn variants_json(weights: &[u16]) -> String {
    let items: Vec<String> = weights
        .iter()
        .enumerate()
        .map(|(j, w)| format!(r#"{{"name":"v{j}","weight":{}}}"#, percent(*w)))
        .collect();
    format!("[{}]", items.join(","))
}

impl PolicySpec {
    fn salt(&self, index: usize) -> String {
        self.salt.clone().unwrap_or_else(|| format!("p{index}"))
    }

    fn json(&self, index: usize) -> String {
        let mut fields = vec![
            format!(r#""name":"p{index}""#),
            format!(r#""hosts":["h{index}"]"#),
            format!(r#""variants":{}"#, variants_json(&self.weights)),
        ];
        if let Some(salt) = &self.salt {
            fields.push(format!(r#""salt":"{salt}""#));
        }
        match self.sticky {
            Sticky::None => {}
            Sticky::Header => fields.push(r#""sticky":{"keys":[{"header":"x-user-id"}]}"#.into()),
            Sticky::HeaderThenCookie => fields.push(
                r#""sticky":{"keys":[{"header":"x-user-id"}],"cookie":{"name":"cid"}}"#.into(),
            ),
        }
        if !self.rules.is_empty() {
            let rules: Vec<String> = self
                .rules
                .iter()
                .map(|(v, value)| {
                    format!(
                        r#"{{"variant":"v{v}","match":[{{"header":"x-rule","exact":"{value}"}}]}}"#
                    )
                })
                .collect();
            fields.push(format!(r#""rules":[{}]"#, rules.join(",")));
        }
        if let Some(ramp) = &self.ramp {
            let variant = self.weights.len() - 2;
            let form = match ramp {
                RampSpec::Steps {
                    steps,
                    step_seconds,
                } => {
                    let steps: Vec<String> = steps.iter().map(|w| percent(*w)).collect();
                    format!(
                        r#""steps":[{}],"step_seconds":{step_seconds}"#,
                        steps.join(",")
                    )
                }
                RampSpec::Linear { from, to, duration } => format!(
                    r#""from":{},"to":{},"duration_seconds":{duration}"#,
                    percent(*from),
                    percent(*to)
                ),
            };
            fields.push(format!(
                r#""ramp":{{"variant":"v{variant}","start":"{START_TEXT}",{form}}}"#
            ));
        }
        if let Some((variant, baseline)) = self.guard {
            fields.push(format!(
                r#""guard":{{"variant":"v{variant}","baseline":"v{baseline}","max_failure_rate":0.05}}"#
            ));
        }
        format!("{{{}}}", fields.join(","))
    }

    /// This policy's node metadata override, if any.
    fn node_json(&self, index: usize) -> Option<String> {
        let (weights, enabled) = self.node.as_ref()?;
        let mut fields = Vec::new();
        if let Some(w) = weights {
            fields.push(format!(r#""variants":{}"#, variants_json(w)));
        }
        if let Some(e) = enabled {
            fields.push(format!(r#""enabled":{e}"#));
        }
        Some(format!(r#""p{index}":{{{}}}"#, fields.join(",")))
    }
}

fn config_json(policies: &[PolicySpec]) -> String {
    let items: Vec<String> = policies
        .iter()
        .enumerate()
        .map(|(i, p)| p.json(i))
        .collect();
    format!(r#"{{"policies":[{}]}}"#, items.join(","))
}

fn environment(policies: &[PolicySpec]) -> Environment {
    let items: Vec<String> = policies
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.node_json(i))
        .collect();
    Environment {
        node_overrides: Some(format!("{{{}}}", items.join(","))),
        labels: Vec::new(),
        vars: None,
    }
}

/// Compiles a generated configuration, which must be valid and draw no warning.
fn compile(policies: &[PolicySpec]) -> Config {
    let json = config_json(policies);
    let env = environment(policies);
    match Config::from_json_in(json.as_bytes(), &env) {
        Ok(c) => {
            assert_eq!(c.warnings(), [], "{json}\nnode: {:?}", env.node_overrides);
            c
        }
        Err(e) => panic!("generated config should compile, got: {e}\n{json}"),
    }
}

/// `n` weights in basis points summing to 10 000 (cut points of the bucket space).
fn weights(n: usize) -> impl Strategy<Value = Vec<u16>> {
    prop::collection::vec(0..=BUCKETS, n - 1).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut prev = 0;
        for c in cuts.into_iter().chain([BUCKETS]) {
            out.push(c - prev);
            prev = c;
        }
        out
    })
}

/// A ramp whose weights leave the other variants (all but the ramped and the last) theirs.
fn ramp(weights: &[u16]) -> BoxedStrategy<Option<RampSpec>> {
    let n = weights.len();
    if n < 2 {
        return Just(None).boxed();
    }
    let fixed: u16 = weights.iter().take(n - 2).sum();
    let room = BUCKETS - fixed;
    let steps =
        (prop::collection::vec(0..=room, 1..6), 1..=3600u32).prop_map(|(steps, step_seconds)| {
            RampSpec::Steps {
                steps,
                step_seconds,
            }
        });
    let linear = (0..=room, 0..=room, 1..=7200u32)
        .prop_map(|(from, to, duration)| RampSpec::Linear { from, to, duration });
    prop::option::of(prop_oneof![steps, linear]).boxed()
}

fn guard(n: usize) -> BoxedStrategy<Option<(usize, usize)>> {
    if n < 2 {
        return Just(None).boxed();
    }
    prop::option::of((0..n, 1..n).prop_map(move |(v, off)| (v, (v + off) % n))).boxed()
}

fn policy() -> impl Strategy<Value = PolicySpec> {
    (1..=5usize)
        .prop_flat_map(|n| (Just(n), weights(n)))
        .prop_flat_map(|(n, w)| {
            let sticky = prop_oneof![
                Just(Sticky::None),
                Just(Sticky::Header),
                Just(Sticky::HeaderThenCookie)
            ];
            let rules = prop::collection::vec((0..n, "[abc]"), 0..3);
            let node = prop::option::of((
                prop::option::of(weights(n)),
                prop::option::of(any::<bool>()),
            ));
            (
                Just(w.clone()),
                prop::option::of("[a-z0-9]{1,10}"),
                sticky,
                rules,
                ramp(&w),
                guard(n),
                node,
            )
        })
        .prop_map(
            |(weights, salt, sticky, rules, ramp, guard, node)| PolicySpec {
                weights,
                salt,
                sticky,
                rules,
                ramp,
                guard,
                node,
            },
        )
}

fn policies() -> impl Strategy<Value = Vec<PolicySpec>> {
    prop::collection::vec(policy(), 1..=3)
}

/// A unix time: mostly around the ramps, sometimes anywhere.
fn time() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => START - 1_000..START + 30_000,
        1 => any::<i64>(),
    ]
}

#[derive(Debug, Clone)]
struct RequestSpec {
    host: usize,
    user: Option<String>,
    rule: Option<String>,
    cookie: Option<String>,
    incoming_variant: Option<usize>,
}

impl RequestSpec {
    fn build(&self) -> SimpleRequest {
        let mut req = SimpleRequest::new(&format!("h{}", self.host), "/");
        if let Some(u) = &self.user {
            req = req.header("x-user-id", u);
        }
        if let Some(r) = &self.rule {
            req = req.header("x-rule", r);
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", &format!("other=1; cid={c}"));
        }
        if let Some(v) = self.incoming_variant {
            req = req.header("x-canary-variant", &format!("v{v}"));
        }
        req
    }
}

fn request() -> impl Strategy<Value = RequestSpec> {
    (
        0..4usize,
        // Up to 300 characters: past the 256-byte stack buffer of the hash.
        prop::option::of("\\PC{0,300}"),
        prop::option::of("[abcd]"),
        prop::option::of("[A-Za-z0-9_-]{0,24}"),
        prop::option::of(0..5usize),
    )
        .prop_map(|(host, user, rule, cookie, incoming_variant)| RequestSpec {
            host,
            user,
            rule,
            cookie,
            incoming_variant,
        })
}

fn sum(split: &Split) -> u32 {
    split.weights_bp().iter().map(|w| u32::from(*w)).sum()
}

/// The variant owning each bucket of the space.
fn owners(split: &Split) -> Vec<usize> {
    (0..BUCKETS).map(|b| split.variant_for_bucket(b)).collect()
}

/// Every user who changed variant between `before` and `after` moved into `raised`.
fn only_moves_into(before: &[usize], after: &[usize], raised: usize) -> Result<(), TestCaseError> {
    for (b, (x, y)) in before.iter().zip(after).enumerate() {
        prop_assert!(
            x == y || *y == raised,
            "bucket {b} moved from variant {x} to {y}, not into {raised}"
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn weights_sum_to_the_bucket_space(
        specs in policies(),
        now in time(),
        tripped in prop::collection::vec(any::<bool>(), 0..4),
    ) {
        let c = compile(&specs);
        for p in c.policies() {
            let split = p.split();
            prop_assert_eq!(sum(split), u32::from(BUCKETS), "{} compiled", p.name());
            // Buckets partition the space in variant order, each variant as wide as its weight.
            let mut end = 0;
            for (j, w) in split.weights_bp().iter().enumerate() {
                let range = split.buckets(j);
                prop_assert_eq!(range.start, end);
                prop_assert_eq!(range.end - range.start, *w);
                end = range.end;
            }
            prop_assert_eq!(end, BUCKETS);
            prop_assert_eq!(sum(&p.split_at(now)), u32::from(BUCKETS), "{} at {}", p.name(), now);
        }
        let live = c.effective_splits(now, &tripped);
        prop_assert_eq!(live.len(), c.policies().len());
        for (i, split) in live.iter().enumerate() {
            prop_assert_eq!(sum(split), u32::from(BUCKETS), "policy {} at {} tripped {:?}", i, now, tripped);
            // A tripped guard moves the variant's weight, not the buckets.
            let p = &c.policies()[i];
            let base = p.split_at(now);
            match (p.guard(), tripped.get(i) == Some(&true)) {
                (Some(g), true) => {
                    prop_assert_eq!(split.divert(), Some((g.variant(), g.baseline())));
                    prop_assert_eq!(split.weights_bp()[g.variant()], 0);
                    for j in 0..p.variants().len() {
                        prop_assert_eq!(split.buckets(j), base.buckets(j));
                    }
                }
                _ => prop_assert_eq!(split, &base),
            }
        }
    }

    #[test]
    fn decisions_are_deterministic(
        specs in policies(),
        req in request(),
        now in time(),
        tripped in prop::collection::vec(any::<bool>(), 0..4),
        seed in any::<u64>(),
    ) {
        let (a, b) = (compile(&specs), compile(&specs));
        prop_assert_eq!(a.fingerprint(), b.fingerprint());
        let req = req.build();
        let (live_a, live_b) = (a.effective_splits(now, &tripped), b.effective_splits(now, &tripped));
        prop_assert_eq!(&live_a, &live_b);
        let da = a.decide_live(&req, None, &live_a, &mut SplitMix64::new(seed));
        let db = b.decide_live(&req, None, &live_b, &mut SplitMix64::new(seed));
        let again = a.decide_live(&req, None, &live_a, &mut SplitMix64::new(seed));
        prop_assert_eq!(da, db);
        prop_assert_eq!(da, again);
        prop_assert_eq!(
            a.decide(&req, &mut SplitMix64::new(seed)),
            b.decide(&req, &mut SplitMix64::new(seed))
        );
    }

    #[test]
    fn bucket_for_is_the_sticky_bucket(
        specs in policies(),
        req in request(),
        now in time(),
        tripped in prop::collection::vec(any::<bool>(), 0..4),
        seed in any::<u64>(),
    ) {
        let c = compile(&specs);
        // A request to an existing policy that no rule or incoming header decides.
        let index = req.host % specs.len();
        let req = RequestSpec { host: index, rule: None, incoming_variant: None, ..req };
        let spec = &specs[index];
        let live = c.effective_splits(now, &tripped);
        let d = c
            .decide_live(&req.build(), None, &live, &mut SplitMix64::new(seed))
            .expect("the policy of the host applies");
        prop_assert_eq!(d.policy, index);
        let split = &live[index];
        // What the weights (or a disabled policy) decide, before a tripped guard diverts it.
        let (variant, reason) = if split.enabled() {
            let salt = spec.salt(index);
            let user = req.user.as_deref().filter(|u| !u.is_empty());
            let cookie = req.cookie.as_deref().filter(|c| !c.is_empty());
            let (reason, key) = match (spec.sticky, user, cookie) {
                (Sticky::None, _, _) | (Sticky::Header, None, _) => (Reason::Weight, None),
                (_, Some(user), _) => (Reason::StickyKey, Some(user.to_string())),
                (Sticky::HeaderThenCookie, None, Some(cookie)) => {
                    (Reason::StickyCookie, Some(cookie.to_string()))
                }
                (Sticky::HeaderThenCookie, None, None) => {
                    let minted = d.minted.expect("a minted id");
                    (Reason::MintedCookie, Some(minted.as_str().to_string()))
                }
            };
            prop_assert_eq!(d.minted.is_some(), reason == Reason::MintedCookie);
            let bucket = d.bucket.expect("a bucket");
            if let Some(key) = key {
                prop_assert_eq!(bucket, bucket_for(&salt, &key), "salt {:?} key {:?}", salt, key);
            }
            (split.variant_for_bucket(bucket), reason)
        } else {
            prop_assert_eq!(d.bucket, None);
            (spec.weights.len() - 1, Reason::Disabled)
        };
        // A tripped guard beats everything, a disabled policy included.
        let (variant, reason) = match split.divert() {
            Some((from, to)) if from == variant => (to, Reason::Guard),
            _ => (variant, reason),
        };
        prop_assert_eq!(d.reason, reason);
        prop_assert_eq!(d.variant, variant);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn raising_the_first_variant_only_moves_users_into_it(
        (w, raise) in (2..=5usize)
            .prop_flat_map(weights)
            .prop_flat_map(|w| { let max = w[1]; (Just(w), 0..=max) }),
        salt in prop::option::of("[a-z0-9]{1,10}"),
    ) {
        let spec = |weights: Vec<u16>| PolicySpec {
            weights,
            salt: salt.clone(),
            sticky: Sticky::Header,
            rules: Vec::new(),
            ramp: None,
            guard: None,
            node: None,
        };
        let mut raised = w.clone();
        raised[0] += raise;
        raised[1] -= raise;
        let (before, after) = (compile(&[spec(w)]), compile(&[spec(raised)]));
        let (b, a) = (&before.policies()[0], &after.policies()[0]);
        only_moves_into(&owners(b.split()), &owners(a.split()), 0)?;
        // The same through sticky decisions.
        for i in 0..20 {
            let req = SimpleRequest::new("h0", "/").header("x-user-id", &format!("user-{i}"));
            let x = before.decide(&req, &mut SplitMix64::new(1)).expect("decision").variant;
            let y = after.decide(&req, &mut SplitMix64::new(1)).expect("decision").variant;
            prop_assert!(x == y || y == 0, "user-{} moved from {} to {}", i, x, y);
        }
    }

    #[test]
    fn a_rising_ramp_only_moves_users_into_the_ramped_variant(
        (w, ramp) in (2..=5usize)
            .prop_flat_map(weights)
            .prop_flat_map(|w| { let r = ramp(&w); (Just(w), r) }),
        (t1, t2) in (START - 1_000..START + 30_000, 0..20_000i64).prop_map(|(t, d)| (t, t + d)),
    ) {
        // Rising: steps sorted, `from` at most `to`.
        let ramp = ramp.map(|r| match r {
            RampSpec::Steps { mut steps, step_seconds } => {
                steps.sort_unstable();
                RampSpec::Steps { steps, step_seconds }
            }
            RampSpec::Linear { from, to, duration } => RampSpec::Linear {
                from: from.min(to),
                to: from.max(to),
                duration,
            },
        });
        let ramped = w.len() - 2;
        let spec = PolicySpec {
            weights: w,
            salt: None,
            sticky: Sticky::Header,
            rules: Vec::new(),
            ramp,
            guard: None,
            node: None,
        };
        let c = compile(std::slice::from_ref(&spec));
        let p = &c.policies()[0];
        let (s1, s2) = (p.split_at(t1), p.split_at(t2));
        // Before the start the configured weight holds, which may be above the ramp's first.
        let at_start = p.ramp().and_then(|r| r.weight_bp(START));
        prop_assume!(t1 >= START || at_start.is_none_or(|w| w >= spec.weights[ramped]));
        prop_assert!(s2.weights_bp()[ramped] >= s1.weights_bp()[ramped]);
        only_moves_into(&owners(&s1), &owners(&s2), ramped)?;
    }
}
