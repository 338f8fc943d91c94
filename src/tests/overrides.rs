//! Overrides from the mesh: node metadata (`CANARY_ROUTER`, per proxy) and route metadata
//! (`filter_metadata["canary-router"]`, per route), field by field route > node > plugin;
//! `"enabled": false`; `source_label` rule conditions decided against the proxy's labels.

use serde_json::{json, Value};

use super::{config_in, own, rule_holds_on, variant_name};
use crate::{
    bucket_for, Config, ConfigError, Environment, Reason, RouteOverride, SimpleRequest, Split,
    SplitMix64,
};

/// Plugin weights (percent) of canary, beta, stable.
type Percents = (u32, u32, u32);
/// (plugin weights, node override, route override, weights_bp, enabled, owners of buckets).
type SplitCase = (
    Percents,
    Option<&'static str>,
    Option<Value>,
    [u16; 3],
    bool,
    &'static str,
);
/// An expected warning or error: its path and part of its message.
type PathAndMessage = (&'static str, &'static str);
/// The weights (basis points) and `enabled` of a two-variant split.
type SplitOf2 = ([u16; 2], bool);
/// The policy, variant and reason of a decision.
type Outcome = (&'static str, &'static str, Reason);
/// A proxy's workload labels.
type Labels = &'static [(&'static str, &'static str)];

/// The path the filter gives route overrides in errors.
const ROUTE: &str = "route[r].filter_metadata.canary-router";

/// A route override that must compile to something.
fn route(c: &Config, value: Value) -> RouteOverride {
    match c.route_override(&own(&value), ROUTE) {
        Ok(Some(r)) => r,
        Ok(None) => panic!("route override {value} compiled to nothing"),
        Err(e) => panic!("route override {value} should compile, got: {e}"),
    }
}

/// The errors of a route override that must be rejected.
fn route_errors(c: &Config, value: &Value) -> Vec<ConfigError> {
    match c.route_override(&own(value), ROUTE) {
        Ok(r) => panic!("route override {value} should be rejected, got {r:?}"),
        Err(e) => e.0,
    }
}

/// The split in force for policy `index` on a route (or without one).
fn effective<'a>(c: &'a Config, route: Option<&'a RouteOverride>, index: usize) -> &'a Split {
    let policy = c.policy(index).expect("policy");
    route
        .and_then(|r| r.split_for(index))
        .unwrap_or(policy.split())
}

/// The variant owning `bucket` for `weights`, computed without [`Split`].
fn owner(weights: &[u16], bucket: u16) -> usize {
    let mut end = 0u16;
    for (i, w) in weights.iter().enumerate() {
        end += w;
        if bucket < end {
            return i;
        }
    }
    weights.len() - 1
}

/// A user with a sticky key.
fn user(host: &str, i: usize) -> SimpleRequest {
    SimpleRequest::new(host, "/").header("x-user-id", &format!("user-{i}"))
}

/// `reviews` with three variants (canary, beta, stable) at the given weights, sticky on
/// `x-user-id`.
fn reviews3(canary: u32, beta: u32, stable: u32) -> String {
    format!(
        r#"{{"policies":[{{"name":"reviews","hosts":["reviews"],
        "variants":[{{"name":"canary","weight":{canary}}},{{"name":"beta","weight":{beta}}},
                    {{"name":"stable","weight":{stable}}}],
        "sticky":{{"keys":[{{"header":"x-user-id"}}]}}}}]}}"#
    )
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn effective_split_route_over_node_over_plugin() {
    const CANARY_50: &str =
        r#"{"reviews":{"variants":[{"name":"canary","weight":50},{"name":"stable","weight":50}]}}"#;
    const OFF: &str = r#"{"reviews":{"enabled":false}}"#;
    let route_beta = || json!({"variants": [{"name": "beta", "weight": 100}]});
    let buckets: [u16; 8] = [0, 999, 1000, 1999, 2000, 4999, 5000, 9999];
    // (plugin weights, node override, route override, weights_bp, enabled,
    //  variant owning each of `buckets`: c = canary, b = beta, s = stable)
    #[rustfmt::skip]
    let cases: Vec<SplitCase> = vec![
        // Plugin configuration alone.
        ((10, 0, 90), None, None, [1000, 0, 9000], true, "ccssssss"),
        ((10, 10, 80), None, None, [1000, 1000, 8000], true, "ccbbssss"),
        // Node metadata: unlisted variants get 0; listed in any order, buckets follow the
        // policy's variant order.
        ((10, 0, 90), Some(CANARY_50), None, [5000, 0, 5000], true, "ccccccss"),
        ((10, 10, 80), Some(CANARY_50), None, [5000, 0, 5000], true, "ccccccss"),
        ((10, 0, 90), Some(r#"{"reviews":{"variants":[{"name":"stable","weight":70},{"name":"canary","weight":30}]}}"#),
            None, [3000, 0, 7000], true, "cccccsss"),
        ((10, 0, 90), Some(r#"{"reviews":{"variants":[{"name":"canary","weight":100}]}}"#),
            None, [10000, 0, 0], true, "cccccccc"),
        ((10, 0, 90), Some(r#"{"reviews":{"variants":[{"name":"beta","weight":12.34},{"name":"stable","weight":87.66}]}}"#),
            None, [0, 1234, 8766], true, "bbbsssss"),
        // Node metadata setting nothing, or only `enabled`: the plugin's weights stay.
        ((10, 0, 90), Some(r#"{"reviews":{}}"#), None, [1000, 0, 9000], true, "ccssssss"),
        ((10, 0, 90), Some(OFF), None, [1000, 0, 9000], false, "ccssssss"),
        ((10, 0, 90), Some(r#"{"reviews":{"enabled":true}}"#), None, [1000, 0, 9000], true, "ccssssss"),
        // Route metadata alone.
        ((10, 0, 90), None, Some(route_beta()), [0, 10000, 0], true, "bbbbbbbb"),
        ((10, 0, 90), None, Some(json!({"enabled": false})), [1000, 0, 9000], false, "ccssssss"),
        ((10, 0, 90), None, Some(json!({"policy": "reviews"})), [1000, 0, 9000], true, "ccssssss"),
        // Route over node, field by field: what the route does not set, the node's value keeps.
        ((10, 0, 90), Some(CANARY_50), Some(route_beta()), [0, 10000, 0], true, "bbbbbbbb"),
        ((10, 0, 90), Some(CANARY_50), Some(json!({"enabled": false})), [5000, 0, 5000], false, "ccccccss"),
        ((10, 0, 90), Some(CANARY_50), Some(json!({"policy": "reviews"})), [5000, 0, 5000], true, "ccccccss"),
        ((10, 0, 90), Some(OFF), Some(route_beta()), [0, 10000, 0], false, "bbbbbbbb"),
        ((10, 0, 90), Some(OFF), Some(json!({"enabled": true})), [1000, 0, 9000], true, "ccssssss"),
        ((10, 0, 90), Some(OFF), Some(json!({"enabled": true, "variants": [{"name": "stable", "weight": 100}]})),
            [0, 0, 10000], true, "ssssssss"),
        ((10, 0, 90), Some(r#"{"reviews":{"enabled":false,"variants":[{"name":"beta","weight":100}]}}"#),
            Some(json!({"enabled": true})), [0, 10000, 0], true, "bbbbbbbb"),
        ((10, 0, 90), Some(OFF), Some(json!({"policy": "reviews"})), [1000, 0, 9000], false, "ccssssss"),
    ];
    for (i, ((canary, beta, stable), node, route_json, weights, enabled, owners)) in
        cases.into_iter().enumerate()
    {
        let c = config_in(&reviews3(canary, beta, stable), node, &[]);
        assert_eq!(c.warnings(), [], "case {i}");
        let r = route_json.map(|v| route(&c, v));
        let split = effective(&c, r.as_ref(), 0);
        assert_eq!(split.weights_bp(), weights, "case {i}: weights");
        assert_eq!(split.enabled(), enabled, "case {i}: enabled");
        let owners: Vec<char> = owners.chars().collect();
        for (b, want) in buckets.iter().zip(&owners) {
            let got = ["c", "b", "s"][split.variant_for_bucket(*b)];
            assert_eq!(got, want.to_string(), "case {i}: bucket {b}");
        }
        // Decisions on the route follow the effective split.
        for u in 0..300 {
            let req = user("reviews", u);
            let d = c
                .decide_on_route(&req, r.as_ref(), &mut SplitMix64::new(1))
                .expect("decision");
            if enabled {
                let b = bucket_for("reviews", &format!("user-{u}"));
                assert_eq!(
                    (d.reason, d.bucket, d.variant),
                    (Reason::StickyKey, Some(b), owner(&weights, b)),
                    "case {i}: user-{u}"
                );
            } else {
                assert_eq!(
                    (d.reason, d.bucket, d.variant),
                    (Reason::Disabled, None, 2),
                    "case {i}: user-{u}"
                );
            }
        }
        // Without the route, the node metadata (or plugin) split is in force.
        let without = c.decide(&user("reviews", 0), &mut SplitMix64::new(1));
        let policy_split = c.policy(0).expect("policy").split();
        assert_eq!(
            without.map(|d| d.reason == Reason::Disabled),
            Some(!policy_split.enabled()),
            "case {i}"
        );
    }
}

/// Two policies with different variant names.
const TWO: &str = r#"{"policies":[
    {"name":"reviews","hosts":["reviews"],
     "variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
     "sticky":{"keys":[{"header":"x-user-id"}]}},
    {"name":"ratings","hosts":["ratings"],
     "variants":[{"name":"v1","weight":100},{"name":"v2","weight":0}],
     "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#;

/// The weights in force per policy of [`TWO`].
fn weights(c: &Config) -> Vec<Vec<u16>> {
    c.policies()
        .iter()
        .map(|p| p.split().weights_bp().to_vec())
        .collect()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn node_override_warnings() {
    let plugin = vec![vec![1000, 9000], vec![10000, 0]];
    let ratings_v2 = r#""ratings":{"variants":[{"name":"v2","weight":100}]}"#;
    // (node metadata, warnings as (path, part of the message), weights in force)
    #[rustfmt::skip]
    let cases: Vec<(String, Vec<PathAndMessage>, Vec<Vec<u16>>)> = vec![
        ("{}".into(), vec![], plugin.clone()),
        (format!("{{{ratings_v2}}}"), vec![], vec![vec![1000, 9000], vec![0, 10000]]),
        // Each invalid override is dropped on its own; the valid one applies.
        (format!(r#"{{"details":{{"enabled":false}},{ratings_v2}}}"#),
            vec![("node.CANARY_ROUTER.details", r#"no policy is called "details"; override ignored"#)],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (format!(r#"{{"reviews":{{"variants":[{{"name":"canary","weight":50}},{{"name":"nightly","weight":50}}]}},{ratings_v2}}}"#),
            vec![("node.CANARY_ROUTER.reviews.variants[1].name", r#"unknown variant "nightly"; policy "reviews" has ["canary", "stable"]"#)],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (format!(r#"{{"reviews":{{"variants":[{{"name":"canary","weight":30}}]}},{ratings_v2}}}"#),
            vec![("node.CANARY_ROUTER.reviews.variants", "weights sum to 30, they must sum to 100")],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (format!(r#"{{"reviews":{{"policy":"reviews","enabled":false}},{ratings_v2}}}"#),
            vec![("node.CANARY_ROUTER.reviews.policy", "only route metadata can name a policy")],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (r#"{"reviews":{"variants":[]}}"#.into(),
            vec![("node.CANARY_ROUTER.reviews.variants", "must list at least one variant"),
                 ("node.CANARY_ROUTER.reviews.variants", "weights sum to 0")],
            plugin.clone()),
        (r#"{"reviews":{"variants":[{"name":"canary","weight":50},{"name":"canary","weight":50}]}}"#.into(),
            vec![("node.CANARY_ROUTER.reviews.variants[1].name", r#"duplicate variant name "canary""#)],
            plugin.clone()),
        (r#"{"reviews":{"variants":[{"name":"canary","weight":100.001}]}}"#.into(),
            vec![("node.CANARY_ROUTER.reviews.variants[0].weight", "must be between 0 and 100")],
            plugin.clone()),
        (r#"{"reviews":{"variants":[{"name":"canary","weight":0.001},{"name":"stable","weight":99.999}]}}"#.into(),
            vec![("node.CANARY_ROUTER.reviews.variants[0].weight", "more than two decimals"),
                 ("node.CANARY_ROUTER.reviews.variants[1].weight", "more than two decimals")],
            plugin.clone()),
        // Two invalid overrides: two warnings, in policy-name order.
        (r#"{"zzz":{},"reviews":{"variants":[{"name":"x","weight":100}]}}"#.into(),
            // In the order written.
            vec![("node.CANARY_ROUTER.zzz", r#"no policy is called "zzz""#),
                 ("node.CANARY_ROUTER.reviews.variants[0].name", r#"unknown variant "x""#)],
            plugin.clone()),
        // JSON that does not parse as overrides drops them all, valid ones included.
        ("not json".into(),
            vec![("node.CANARY_ROUTER", "(all node metadata overrides ignored)")], plugin.clone()),
        (String::new(),
            vec![("node.CANARY_ROUTER", "EOF while parsing")], plugin.clone()),
        (r#"[{"reviews":{}}]"#.into(),
            vec![("node.CANARY_ROUTER", "invalid type: sequence")], plugin.clone()),
        (format!(r#"{{{ratings_v2},"reviews":{{"enabled":"no"}}}}"#),
            vec![("node.CANARY_ROUTER.reviews.enabled", "invalid type: string \"no\", expected a boolean")],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (format!(r#"{{{ratings_v2},"reviews":{{"enabled":false,"weights":[]}}}}"#),
            vec![("node.CANARY_ROUTER.reviews.weights", "unknown field `weights`")],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (format!(r#"{{{ratings_v2},"reviews":{{"variants":[{{"name":"canary"}}]}}}}"#),
            vec![("node.CANARY_ROUTER.reviews.variants[0]", "missing field `weight`")],
            vec![vec![1000, 9000], vec![0, 10000]]),
        (format!(r#"{{{ratings_v2}"#),
            vec![("node.CANARY_ROUTER", "all node metadata overrides ignored")], plugin.clone()),
    ];
    for (node, want_warnings, want_weights) in cases {
        let c = config_in(TWO, Some(&node), &[]);
        let got: Vec<(&str, &str)> = c
            .warnings()
            .iter()
            .map(|w| (w.path.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(got.len(), want_warnings.len(), "{node}: {got:?}");
        for ((path, message), (want_path, want_message)) in got.iter().zip(&want_warnings) {
            assert_eq!(path, want_path, "{node}: {got:?}");
            assert!(message.contains(want_message), "{node}: {got:?}");
        }
        assert_eq!(weights(&c), want_weights, "{node}");
        // A warning never turns a policy off.
        assert!(c.policies().iter().all(|p| p.split().enabled()), "{node}");
    }
    // No node metadata at all: no warnings.
    let c = config_in(TWO, None, &[]);
    assert_eq!(c.warnings(), []);
    assert_eq!(weights(&c), plugin);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn route_override_errors() {
    let c = config_in(TWO, None, &[]);
    // (route metadata, path of the first error, part of its message)
    #[rustfmt::skip]
    let cases: Vec<(Value, String, &str)> = vec![
        (json!({"policy": "details"}), format!("{ROUTE}.policy"), r#"no policy is called "details""#),
        (json!({"policy": "details", "enabled": false}), format!("{ROUTE}.policy"), "no policy is called"),
        (json!({"policy": "Reviews"}), format!("{ROUTE}.policy"), "no policy is called"),
        (json!({"policy": 3}), format!("{ROUTE}.policy"), "invalid type: integer `3`"),
        (json!({"enabled": false, "extra": 1}), format!("{ROUTE}.extra"), "unknown field `extra`"),
        (json!({"enabled": "false"}), format!("{ROUTE}.enabled"), "invalid type: string"),
        (json!({"variants": [{"name": "canary", "weight": 100, "w": 1}]}),
            format!("{ROUTE}.variants[0].w"), "unknown field `w`"),
        (json!({"variants": [{"name": "canary"}]}), format!("{ROUTE}.variants[0]"), "missing field `weight`"),
        (json!(null), ROUTE.to_string(), "invalid type: null"),
        (json!("reviews"), ROUTE.to_string(), "invalid type: string"),
        (json!(1), ROUTE.to_string(), "invalid type: integer `1`"),
        // A named policy the override does not fit.
        (json!({"policy": "reviews", "variants": [{"name": "v1", "weight": 100}]}),
            format!("{ROUTE}.variants[0].name"), r#"unknown variant "v1"; policy "reviews" has ["canary", "stable"]"#),
        (json!({"policy": "reviews", "variants": [{"name": "canary", "weight": 10}]}),
            format!("{ROUTE}.variants"), "weights sum to 10, they must sum to 100"),
        (json!({"policy": "ratings", "variants": []}), format!("{ROUTE}.variants"), "must list at least one variant"),
        // No policy named and no policy fits: the first policy's error.
        (json!({"variants": [{"name": "nightly", "weight": 100}]}),
            format!("{ROUTE}.variants[0].name"), r#"unknown variant "nightly"; policy "reviews""#),
        (json!({"variants": [{"name": "canary", "weight": 60}, {"name": "v2", "weight": 40}]}),
            format!("{ROUTE}.variants[1].name"), r#"unknown variant "v2"; policy "reviews""#),
        (json!({"variants": [{"name": "v2", "weight": 100.5}]}),
            format!("{ROUTE}.variants[0].weight"), "must be between 0 and 100"),
    ];
    for (value, want_path, want_message) in cases {
        let errors = route_errors(&c, &value);
        let first = errors.first().expect("an error");
        assert_eq!(first.path, want_path, "{value}: {errors:?}");
        assert!(first.message.contains(want_message), "{value}: {errors:?}");
    }
    // Nothing to override.
    assert!(matches!(
        c.route_override(&own(&json!({})), ROUTE),
        Ok(None)
    ));
    // Only naming a policy: no split of its own.
    let r = route(&c, json!({"policy": "ratings"}));
    assert_eq!(r.policy(), Some(1));
    assert!(r.split_for(0).is_none() && r.split_for(1).is_none());
    // An unknown policy index has no split.
    let r = route(&c, json!({"enabled": false}));
    assert!(r.split_for(2).is_none());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn route_override_without_policy_applies_where_it_fits() {
    let c = config_in(TWO, None, &[]);
    // (route metadata, split for reviews, split for ratings: None if not overridden)
    #[rustfmt::skip]
    let cases: Vec<(Value, Option<SplitOf2>, Option<SplitOf2>)> = vec![
        (json!({"variants": [{"name": "canary", "weight": 100}]}), Some(([10000, 0], true)), None),
        (json!({"variants": [{"name": "stable", "weight": 100}]}), Some(([0, 10000], true)), None),
        (json!({"variants": [{"name": "v2", "weight": 100}]}), None, Some(([0, 10000], true))),
        (json!({"enabled": false, "variants": [{"name": "v2", "weight": 100}]}), None, Some(([0, 10000], false))),
        // `enabled` alone fits every policy.
        (json!({"enabled": false}), Some(([1000, 9000], false)), Some(([10000, 0], false))),
        (json!({"enabled": true}), Some(([1000, 9000], true)), Some(([10000, 0], true))),
    ];
    for (value, want_reviews, want_ratings) in cases {
        let r = route(&c, value.clone());
        assert_eq!(r.policy(), None, "{value}");
        let got = |i: usize| {
            r.split_for(i).map(|s| {
                let w: [u16; 2] = s.weights_bp().try_into().expect("two variants");
                (w, s.enabled())
            })
        };
        assert_eq!((got(0), got(1)), (want_reviews, want_ratings), "{value}");
        // The policy is still chosen by the request; the route's split applies to it only
        // where it fits.
        for (host, index, want) in [("reviews", 0, want_reviews), ("ratings", 1, want_ratings)] {
            for u in 0..100 {
                let d = c
                    .decide_on_route(&user(host, u), Some(&r), &mut SplitMix64::new(3))
                    .expect("decision");
                assert_eq!(d.policy, index, "{value} {host}");
                let (weights, enabled) = want.unwrap_or_else(|| {
                    let s = c.policy(index).expect("policy").split();
                    (s.weights_bp().try_into().expect("two"), s.enabled())
                });
                if enabled {
                    let b = bucket_for(host, &format!("user-{u}"));
                    assert_eq!(d.variant, owner(&weights, b), "{value} {host} user-{u}");
                    assert_eq!(d.reason, Reason::StickyKey);
                } else {
                    assert_eq!((d.variant, d.reason), (1, Reason::Disabled));
                }
            }
        }
        // A request no policy applies to stays undecided.
        let d = c.decide_on_route(&user("details", 0), Some(&r), &mut SplitMix64::new(3));
        assert_eq!(d, None, "{value}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn route_naming_a_policy_ignores_its_selectors() {
    let c = config_in(
        r#"{"policies":[
        {"name":"reviews","hosts":["reviews"],"path_prefix":"/api","routes":["reviews-route"],
         "variants":[{"name":"canary","weight":100},{"name":"stable","weight":0}]},
        {"name":"ratings","hosts":["ratings"],
         "variants":[{"name":"v1","weight":0},{"name":"v2","weight":100}]}]}"#,
        None,
        &[],
    );
    let to_reviews = route(&c, json!({"policy": "reviews"}));
    let to_ratings_v1 = route(
        &c,
        json!({"policy": "ratings", "variants": [{"name": "v1", "weight": 100}]}),
    );
    let reviews_off = route(&c, json!({"policy": "reviews", "enabled": false}));
    let matching = SimpleRequest::new("reviews", "/api/x").route("reviews-route");
    // (request, route override, policy and variant)
    #[rustfmt::skip]
    let cases: Vec<(SimpleRequest, Option<&RouteOverride>, Option<Outcome>)> = vec![
        (matching.clone(), None, Some(("reviews", "canary", Reason::Weight))),
        (SimpleRequest::new("other", "/"), None, None),
        (SimpleRequest::new("reviews", "/web").route("reviews-route"), None, None),
        (SimpleRequest::new("reviews", "/api").route("other-route"), None, None),
        (SimpleRequest::new("other", "/"), Some(&to_reviews), Some(("reviews", "canary", Reason::Weight))),
        (SimpleRequest::new("ratings", "/"), Some(&to_reviews), Some(("reviews", "canary", Reason::Weight))),
        (SimpleRequest::default(), Some(&to_reviews), Some(("reviews", "canary", Reason::Weight))),
        (matching.clone(), Some(&to_ratings_v1), Some(("ratings", "v1", Reason::Weight))),
        (SimpleRequest::new("other", "/"), Some(&to_ratings_v1), Some(("ratings", "v1", Reason::Weight))),
        (SimpleRequest::new("other", "/"), Some(&reviews_off), Some(("reviews", "stable", Reason::Disabled))),
        (matching.clone(), Some(&reviews_off), Some(("reviews", "stable", Reason::Disabled))),
    ];
    for (i, (req, r, want)) in cases.into_iter().enumerate() {
        let d = c.decide_on_route(&req, r, &mut SplitMix64::new(5));
        let got = d.map(|d| {
            let p = c.policy(d.policy).expect("policy");
            (p.name().to_string(), variant_name(&c, &d), d.reason)
        });
        let want = want.map(|(p, v, reason)| (p.to_string(), v.to_string(), reason));
        assert_eq!(got, want, "case {i}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn disabled_policy_sends_everything_to_the_last_variant() {
    let json = r#"{"policies":[{"name":"reviews","trust_incoming":true,
        "variants":[{"name":"canary","weight":50},{"name":"beta","weight":50},{"name":"stable","weight":0}],
        "sticky":{"keys":[{"header":"x-user-id"}],
                  "cookie":{"name":"canary-id","max_age":60,"path":"/"}},
        "rules":[{"variant":"canary","match":[{"header":"x-beta","present":true}]}]}]}"#;
    let base = || SimpleRequest::new("reviews", "/");
    let requests = [
        base(),
        base().header("x-canary-variant", "canary"),
        base().header("x-beta", "1"),
        base().header("x-user-id", "alice"),
        base().header("cookie", "canary-id=abc"),
        base().header("cookie", "canary-id="),
        base()
            .header("x-canary-variant", "beta")
            .header("x-beta", "1")
            .header("x-user-id", "bob")
            .header("cookie", "canary-id=abc")
            .source("10.0.0.1:1"),
    ];
    let node_off = config_in(json, Some(r#"{"reviews":{"enabled":false}}"#), &[]);
    let plain = config_in(json, None, &[]);
    let route_off = route(&plain, json!({"enabled": false}));
    let named_off = route(&plain, json!({"policy": "reviews", "enabled": false}));
    let route_on = route(&node_off, json!({"enabled": true}));
    // (config, route override)
    let disabled: [(&Config, Option<&RouteOverride>); 4] = [
        (&node_off, None),
        (&plain, Some(&route_off)),
        (&plain, Some(&named_off)),
        (&node_off, Some(&route_off)),
    ];
    for (k, (c, r)) in disabled.into_iter().enumerate() {
        for (i, req) in requests.iter().enumerate() {
            for seed in 0..20 {
                let d = c
                    .decide_on_route(req, r, &mut SplitMix64::new(seed))
                    .expect("decision");
                assert_eq!(
                    (variant_name(c, &d).as_str(), d.reason, d.bucket, d.minted),
                    ("stable", Reason::Disabled, None, None),
                    "config {k}, request {i}, seed {seed}"
                );
            }
        }
    }
    // The same requests with the policy on: not disabled, and a cookie is minted when none
    // is sent.
    for (c, r) in [(&plain, None), (&node_off, Some(&route_on))] {
        let reasons: Vec<Reason> = requests
            .iter()
            .map(|req| {
                c.decide_on_route(req, r, &mut SplitMix64::new(1))
                    .expect("decision")
                    .reason
            })
            .collect();
        assert_eq!(
            reasons,
            [
                Reason::MintedCookie,
                Reason::Trusted,
                Reason::Rule,
                Reason::StickyKey,
                Reason::StickyCookie,
                Reason::MintedCookie,
                Reason::Trusted,
            ]
        );
    }
    // A single-variant policy turned off still decides (its only variant).
    let c = config_in(
        r#"{"policies":[{"name":"p","variants":[{"name":"only","weight":100}]}]}"#,
        Some(r#"{"p":{"enabled":false}}"#),
        &[],
    );
    let d = c
        .decide(&base(), &mut SplitMix64::new(0))
        .expect("decision");
    assert_eq!((d.variant, d.reason), (0, Reason::Disabled));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn source_label_conditions() {
    let v2: &[(&str, &str)] = &[("app", "reviews"), ("version", "v2")];
    let v10: &[(&str, &str)] = &[("version", "v10")];
    let empty: &[(&str, &str)] = &[("version", "")];
    let other: &[(&str, &str)] = &[("app", "reviews")];
    let none: &[(&str, &str)] = &[];
    let dup: &[(&str, &str)] = &[("version", "v1"), ("version", "v2")];
    let plain = || SimpleRequest::new("h", "/");
    let beta = || SimpleRequest::new("h", "/").header("x-beta", "1");
    let label = |op: &str| format!(r#"{{"source_label":"version",{op}}}"#);
    // (labels, conditions, request, holds)
    #[rustfmt::skip]
    let cases: Vec<(Labels, String, SimpleRequest, bool)> = vec![
        // exact: whole value, case-sensitive.
        (v2, label(r#""exact":"v2""#), plain(), true),
        (v2, label(r#""exact":"v1""#), plain(), false),
        (v2, label(r#""exact":"V2""#), plain(), false),
        (v10, label(r#""exact":"v1""#), plain(), false),
        (empty, label(r#""exact":"""#), plain(), true),
        (none, label(r#""exact":"v2""#), plain(), false),
        (other, label(r#""exact":"v2""#), plain(), false),
        (none, label(r#""exact":"""#), plain(), false),
        // The first of duplicated labels counts.
        (dup, label(r#""exact":"v1""#), plain(), true),
        (dup, label(r#""exact":"v2""#), plain(), false),
        // prefix / suffix / contains.
        (v10, label(r#""prefix":"v1""#), plain(), true),
        (v2, label(r#""prefix":"v1""#), plain(), false),
        (none, label(r#""prefix":"""#), plain(), false),
        (v10, label(r#""suffix":"10""#), plain(), true),
        (v10, label(r#""contains":"1""#), plain(), true),
        (v2, label(r#""contains":"1""#), plain(), false),
        // present: an absent label is an absent value.
        (v2, label(r#""present":true"#), plain(), true),
        (v2, label(r#""present":false"#), plain(), false),
        (empty, label(r#""present":true"#), plain(), true),
        (none, label(r#""present":true"#), plain(), false),
        (none, label(r#""present":false"#), plain(), true),
        (other, label(r#""present":false"#), plain(), true),
        // regex: whole value.
        (v2, label(r#""regex":"v[0-9]+""#), plain(), true),
        (v10, label(r#""regex":"v[0-9]""#), plain(), false),
        (v2, label(r#""regex":"v""#), plain(), false),
        (none, label(r#""regex":".*""#), plain(), false),
        (empty, label(r#""regex":".*""#), plain(), true),
        // Another label name.
        (v2, r#"{"source_label":"app","exact":"reviews"}"#.into(), plain(), true),
        // Label names are case-sensitive.
        (v2, r#"{"source_label":"Version","exact":"v2"}"#.into(), plain(), false),
        // A label condition ANDed with a header condition.
        (v2, format!(r#"{},{{"header":"x-beta","present":true}}"#, label(r#""exact":"v2""#)), beta(), true),
        (v2, format!(r#"{},{{"header":"x-beta","present":true}}"#, label(r#""exact":"v2""#)), plain(), false),
        (v10, format!(r#"{},{{"header":"x-beta","present":true}}"#, label(r#""exact":"v2""#)), beta(), false),
        (none, format!(r#"{},{{"header":"x-beta","present":true}}"#, label(r#""exact":"v2""#)), beta(), false),
        (none, format!(r#"{{"header":"x-beta","present":true}},{}"#, label(r#""present":false"#)), beta(), true),
        (v2, format!(r#"{{"header":"x-beta","exact":"2"}},{}"#, label(r#""exact":"v2""#)), beta(), false),
        // Two label conditions.
        (v2, format!(r#"{},{{"source_label":"app","prefix":"rev"}}"#, label(r#""exact":"v2""#)), plain(), true),
        (v2, format!(r#"{},{{"source_label":"app","prefix":"rat"}}"#, label(r#""exact":"v2""#)), plain(), false),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(labels, cond, r, want)| rule_holds_on(labels, cond, r) != *want)
        .map(|(labels, cond, r, want)| {
            format!("{cond} with {labels:?} on {:?}: want {want}", r.headers)
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn source_label_rules_in_order() {
    // A rule that can never hold on this proxy is skipped; the next rules still apply.
    let json = r#"{"policies":[{"name":"p",
        "variants":[{"name":"a","weight":0},{"name":"b","weight":0},{"name":"c","weight":100}],
        "sticky":{"keys":[{"header":"x-user-id"}]},
        "rules":[
            {"variant":"a","match":[{"source_label":"version","exact":"v1"},{"header":"x-h","present":true}]},
            {"variant":"b","match":[{"header":"x-h","exact":"1"}]},
            {"variant":"a","match":[{"source_label":"version","exact":"v1"}]}]}]}"#;
    const V1: &[(&str, &str)] = &[("version", "v1")];
    const V2: &[(&str, &str)] = &[("version", "v2")];
    const NONE: &[(&str, &str)] = &[];
    let h = |v: &str| SimpleRequest::new("h", "/").header("x-h", v);
    let u = SimpleRequest::new("h", "/").header("x-user-id", "u");
    // (labels, request, variant, reason)
    #[rustfmt::skip]
    let cases: Vec<(Labels, SimpleRequest, &str, Reason)> = vec![
        (V1, h("1"), "a", Reason::Rule),
        (V1, h("2"), "a", Reason::Rule),
        (V1, u.clone(), "a", Reason::Rule),
        (V2, h("1"), "b", Reason::Rule),
        (V2, h("2"), "c", Reason::Weight),
        (V2, u.clone(), "c", Reason::StickyKey),
        (NONE, h("1"), "b", Reason::Rule),
        (NONE, u.clone(), "c", Reason::StickyKey),
    ];
    for (i, (labels, req, want_variant, want_reason)) in cases.into_iter().enumerate() {
        let c = config_in(json, None, labels);
        let d = c.decide(&req, &mut SplitMix64::new(1)).expect("decision");
        assert_eq!(
            (variant_name(&c, &d).as_str(), d.reason),
            (want_variant, want_reason),
            "case {i}"
        );
    }
    // Label conditions are still validated, whatever the labels.
    for labels in [&[][..], &[("version", "v1")][..]] {
        let env = Environment {
            node_overrides: None,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            vars: None,
        };
        // (condition, path of the error, part of its message)
        let cases = [
            (
                r#"{"source_label":"","exact":"v1"}"#,
                "policies[0].rules[0].match[0].source_label",
                "label name must not be empty",
            ),
            (
                r#"{"source_label":"version","header":"x","exact":"v1"}"#,
                "policies[0].rules[0].match[0]",
                "exactly one of \"header\", \"cookie\", \"query\", \"source_label\"",
            ),
            (
                r#"{"source_label":"version","regex":"("}"#,
                "policies[0].rules[0].match[0].regex",
                "invalid regex",
            ),
            (
                r#"{"source_label":"version"}"#,
                "policies[0].rules[0].match[0]",
                "exactly one of \"exact\"",
            ),
        ];
        for (cond, want_path, want_message) in cases {
            let json = format!(
                r#"{{"policies":[{{"name":"p","variants":[{{"name":"a","weight":100}}],
                "rules":[{{"variant":"a","match":[{cond}]}}]}}]}}"#
            );
            let errors = match Config::from_json_in(json.as_bytes(), &env) {
                Ok(_) => panic!("should be rejected: {cond}"),
                Err(e) => e.0,
            };
            assert_eq!(errors.len(), 1, "{cond}: {errors:?}");
            assert_eq!(errors[0].path, want_path, "{cond}");
            assert!(
                errors[0].message.contains(want_message),
                "{cond}: {errors:?}"
            );
        }
        // A rule naming an unknown variant is an error even when its label is false here.
        let json = r#"{"policies":[{"name":"p","variants":[{"name":"a","weight":100}],
            "rules":[{"variant":"zz","match":[{"source_label":"version","exact":"v9"}]}]}]}"#;
        let errors = Config::from_json_in(json.as_bytes(), &env).expect_err("unknown variant");
        assert_eq!(errors.0[0].path, "policies[0].rules[0].variant");
    }
}

/// Raising the first variant's weight by node metadata only moves users into it.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn node_override_ramp_is_monotone() {
    let plugin = r#"{"policies":[{"name":"reviews",
        "variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
        "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#;
    let at = |canary: Option<u32>| {
        let node = canary.map(|w| {
            // Listed stable first: the order of an override does not move buckets.
            format!(
                r#"{{"reviews":{{"variants":[{{"name":"stable","weight":{}}},{{"name":"canary","weight":{w}}}]}}}}"#,
                100 - w
            )
        });
        let c = config_in(plugin, node.as_deref(), &[]);
        assert_eq!(c.warnings(), []);
        c
    };
    let steps: Vec<Config> = [None, Some(10), Some(20), Some(35), Some(50), Some(100)]
        .into_iter()
        .map(at)
        .collect();
    // The last step again, as route metadata over the 50 % node override.
    let route_full = route(
        &steps[4],
        json!({"variants": [{"name": "canary", "weight": 100}]}),
    );
    let users = 5_000;
    let mut counts = vec![0usize; steps.len() + 1];
    for i in 0..users {
        let r = user("reviews", i);
        let mut in_canary: Vec<bool> = steps
            .iter()
            .map(|c| {
                c.decide(&r, &mut SplitMix64::new(0))
                    .expect("decision")
                    .variant
                    == 0
            })
            .collect();
        let on_route = steps[4]
            .decide_on_route(&r, Some(&route_full), &mut SplitMix64::new(0))
            .expect("decision");
        in_canary.push(on_route.variant == 0);
        for (step, pair) in in_canary.windows(2).enumerate() {
            assert!(
                !pair[0] || pair[1],
                "user-{i} left the canary at step {step}"
            );
        }
        // Plugin 10 % and node metadata 10 % are the same split.
        assert_eq!(in_canary[0], in_canary[1], "user-{i}");
        for (n, inside) in counts.iter_mut().zip(&in_canary) {
            *n += usize::from(*inside);
        }
    }
    // 20 % → 35 % moves about 15 % of the users; everyone is in at 100 %.
    let moved = counts[3] - counts[2];
    assert!((600..900).contains(&moved), "{counts:?}");
    assert!((350..650).contains(&counts[0]), "{counts:?}");
    assert_eq!(counts[5], users);
    assert_eq!(counts[6], users);
}
