//! Decision semantics: which policy applies, then which variant and why.

use super::config_errors::EXAMPLE;
use super::{config, decide, policy_name, rule_holds_on, variant_name};
use crate::{bucket_for, Config, Decision, Reason, SimpleRequest, SplitMix64};

/// A policy named `name` with `selectors` (JSON members, possibly empty) and one variant.
fn pol(name: &str, selectors: &str) -> String {
    let sep = if selectors.is_empty() { "" } else { "," };
    format!(r#"{{"name":"{name}"{sep}{selectors},"variants":[{{"name":"only","weight":100}}]}}"#)
}

fn policies(list: &[String]) -> Config {
    config(&format!(r#"{{"policies":[{}]}}"#, list.join(",")))
}

/// The name of the policy that applies to `req`, if any.
fn applies(config: &Config, req: &SimpleRequest) -> Option<String> {
    let found = config.find_policy(req);
    let decided = decide(config, req);
    assert_eq!(
        found,
        decided.map(|d| d.policy),
        "find_policy and decide disagree"
    );
    decided.map(|d| policy_name(config, &d))
}

/// A request, optionally with a route name.
fn req(authority: &str, path: &str, route: Option<&str>) -> SimpleRequest {
    let r = SimpleRequest::new(authority, path);
    match route {
        Some(name) => r.route(name),
        None => r,
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn policy_selection() {
    let c = policies(&[
        pol(
            "exact",
            r#""hosts":["reviews","reviews.default.svc.cluster.local"]"#,
        ),
        pol("wild", r#""hosts":["*.example.com"]"#),
        pol("v2", r#""hosts":["api.test"],"path_prefix":"/v2/""#),
        pol("api", r#""hosts":["API.test"]"#),
        pol("routed", r#""routes":["r1"]"#),
        pol(
            "host-and-route",
            r#""hosts":["svc.test"],"routes":["r2","r3"]"#,
        ),
        pol("ipv6", r#""hosts":["[::1]"]"#),
    ]);
    assert!(c.uses_routes());
    // (authority, path, route, policy)
    let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
        ("reviews", "/", None, Some("exact")),
        ("reviews:9080", "/", None, Some("exact")),
        ("REVIEWS", "/", None, Some("exact")),
        (
            "Reviews.Default.Svc.Cluster.Local:80",
            "/x",
            None,
            Some("exact"),
        ),
        ("reviews.", "/", None, Some("exact")),
        ("reviews.default", "/", None, None),
        ("a.example.com", "/", None, Some("wild")),
        ("a.b.example.com", "/", None, Some("wild")),
        ("A.Example.COM:8443", "/", None, Some("wild")),
        ("example.com", "/", None, None),
        ("xexample.com", "/", None, None),
        (".example.com", "/", None, None),
        ("a.example.com.evil", "/", None, None),
        ("api.test", "/v2/items", None, Some("v2")),
        ("api.test", "/v2/", None, Some("v2")),
        ("api.test", "/v2", None, Some("api")),
        ("api.test", "/v1/items", None, Some("api")),
        ("other", "/", Some("r1"), Some("routed")),
        ("other", "/", Some("r2"), None),
        ("other", "/", None, None),
        ("reviews", "/", Some("r1"), Some("exact")),
        ("svc.test", "/", Some("r2"), Some("host-and-route")),
        ("svc.test", "/", Some("r3"), Some("host-and-route")),
        ("svc.test", "/", Some("r1"), Some("routed")),
        ("svc.test", "/", None, None),
        ("[::1]:8080", "/", None, Some("ipv6")),
        ("[::1]", "/", None, Some("ipv6")),
        ("", "/", None, None),
    ];
    for &(authority, path, route, want) in cases {
        let got = applies(&c, &req(authority, path, route));
        assert_eq!(got.as_deref(), want, "{authority} {path} {route:?}");
    }
}

/// An optional route name.
type Route = Option<&'static str>;

/// When several policies apply, the first in configuration order wins, whatever selector
/// each is filed under.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn first_policy_in_config_order_wins() {
    let any = || pol("any", "");
    let star = || pol("star", r#""hosts":["*"]"#);
    let exact = || pol("exact", r#""hosts":["a.example.com"]"#);
    let wild = || pol("wild", r#""hosts":["*.example.com"]"#);
    let deeper = || pol("deeper", r#""hosts":["*.b.example.com"]"#);
    let route = || pol("route", r#""routes":["r"]"#);
    let prefixed = || {
        pol(
            "prefixed",
            r#""hosts":["a.example.com"],"path_prefix":"/api""#,
        )
    };
    // (policies in order, authority, path, route, policy)
    #[rustfmt::skip]
    let cases: Vec<(Vec<String>, &str, &str, Route, &str)> = vec![
        (vec![any(), exact()], "a.example.com", "/", None, "any"),
        (vec![exact(), any()], "a.example.com", "/", None, "exact"),
        (vec![exact(), any()], "b.example.com", "/", None, "any"),
        (vec![star(), exact()], "a.example.com", "/", None, "star"),
        (vec![exact(), star()], "a.example.com", "/", None, "exact"),
        (vec![wild(), exact()], "a.example.com", "/", None, "wild"),
        (vec![exact(), wild()], "a.example.com", "/", None, "exact"),
        (vec![exact(), wild()], "c.example.com", "/", None, "wild"),
        (vec![wild(), deeper()], "a.b.example.com", "/", None, "wild"),
        (vec![deeper(), wild()], "a.b.example.com", "/", None, "deeper"),
        (vec![deeper(), wild()], "a.c.example.com", "/", None, "wild"),
        (vec![route(), exact()], "a.example.com", "/", Some("r"), "route"),
        (vec![exact(), route()], "a.example.com", "/", Some("r"), "exact"),
        (vec![exact(), route()], "z.test", "/", Some("r"), "route"),
        (vec![route(), any()], "z.test", "/", None, "any"),
        (vec![prefixed(), exact()], "a.example.com", "/api/x", None, "prefixed"),
        (vec![prefixed(), exact()], "a.example.com", "/web", None, "exact"),
        (vec![prefixed(), wild(), any()], "a.example.com", "/web", None, "wild"),
        (vec![any(), prefixed()], "a.example.com", "/api/x", None, "any"),
    ];
    for (list, authority, path, route, want) in cases {
        let c = policies(&list);
        let names: Vec<&str> = c.policies().iter().map(|p| p.name()).collect();
        let got = applies(&c, &req(authority, path, route));
        assert_eq!(
            got.as_deref(),
            Some(want),
            "{names:?} {authority} {path} {route:?}"
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn no_policy_applies() {
    let c = policies(&[pol("p", r#""hosts":["reviews"],"path_prefix":"/api""#)]);
    for r in [
        SimpleRequest::new("ratings", "/api"),
        SimpleRequest::new("reviews", "/"),
        SimpleRequest::default(),
    ] {
        assert_eq!(c.find_policy(&r), None);
        assert_eq!(c.decide(&r, &mut SplitMix64::new(1)), None);
    }
    // Without a `:path`, a request is treated as "/".
    let c = policies(&[pol("p", r#""path_prefix":"/""#)]);
    assert_eq!(c.find_policy(&SimpleRequest::default()), Some(0));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn three_thousand_exact_hosts() {
    let list: Vec<String> = (0..3000)
        .map(|i| {
            pol(
                &format!("p{i}"),
                &format!(r#""hosts":["svc-{i}.ns.svc.cluster.local"]"#),
            )
        })
        .collect();
    let c = policies(&list);
    assert!(!c.uses_routes());
    for i in 0..3000 {
        let r = SimpleRequest::new(&format!("svc-{i}.ns.svc.cluster.local:80"), "/");
        assert_eq!(c.find_policy(&r), Some(i), "svc-{i}");
    }
    assert_eq!(
        c.find_policy(&SimpleRequest::new("svc-3000.ns.svc.cluster.local", "/")),
        None
    );
}

/// Regression (names.rs `host_pattern` vs request.rs `normalize_host`): a configured host with a
/// trailing dot (`reviews.`) is accepted, but request hosts lose their trailing dot before
/// lookup, so the policy never applies. It should either be normalised or rejected.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn configured_host_with_trailing_dot() {
    let json = format!(
        r#"{{"policies":[{}]}}"#,
        pol("p", r#""hosts":["reviews."]"#)
    );
    if let Ok(c) = Config::from_json(json.as_bytes()) {
        for authority in ["reviews", "reviews.", "reviews.:80"] {
            assert_eq!(
                c.find_policy(&SimpleRequest::new(authority, "/")),
                Some(0),
                "{authority}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reasons.

/// Runs `req` against the example configuration on host `reviews`.
fn example(req: SimpleRequest) -> (Decision, String) {
    let c = config(EXAMPLE);
    let d = decide(&c, &req).expect("the example policy applies");
    let v = variant_name(&c, &d);
    (d, v)
}

fn reviews(path: &str) -> SimpleRequest {
    SimpleRequest::new("reviews", path).route("reviews-route")
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn example_reasons() {
    let id = |user: &str| Some(bucket_for("reviews", user));
    // (request, variant (empty: the one owning the bucket), reason, bucket)
    #[rustfmt::skip]
    let cases: Vec<(SimpleRequest, &str, Reason, Option<u16>)> = vec![
        (reviews("/").header("x-beta", "true"), "canary", Reason::Rule, None),
        (reviews("/").header("cookie", "ab=never"), "stable", Reason::Rule, None),
        (reviews("/p?variant=canary"), "canary", Reason::Rule, None),
        // The first matching rule wins.
        (reviews("/p?variant=canary").header("cookie", "ab=never"), "stable", Reason::Rule, None),
        // Rules beat sticky keys.
        (reviews("/").header("x-user-id", "u").header("x-beta", "true"), "canary", Reason::Rule, None),
        (reviews("/").header("x-beta", "TRUE").header("x-user-id", "u1"), "", Reason::StickyKey, id("u1")),
        // trust_incoming is off: the incoming variant header is ignored.
        (reviews("/").header("x-canary-variant", "canary").header("x-user-id", "u2"), "",
            Reason::StickyKey, id("u2")),
        (reviews("/").header("cookie", "session=s1"), "", Reason::StickyKey, id("s1")),
        (reviews("/p?uid=q1"), "", Reason::StickyKey, id("q1")),
        (reviews("/").source("10.1.2.3:5555"), "", Reason::StickyKey, id("10.1.2.3")),
        (reviews("/").header("cookie", "canary-id=abc"), "", Reason::StickyCookie, id("abc")),
    ];
    let c = config(EXAMPLE);
    let p = c.policy(0).expect("policy");
    for (i, (r, want_variant, want_reason, want_bucket)) in cases.into_iter().enumerate() {
        let (d, v) = example(r);
        assert_eq!(d.reason, want_reason, "case {i}");
        assert_eq!(d.bucket, want_bucket, "case {i}");
        match want_bucket {
            Some(b) => assert_eq!(d.variant, p.variant_for_bucket(b), "case {i}"),
            None => assert_eq!(v, want_variant, "case {i}"),
        }
        assert_eq!(d.minted, None, "case {i}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn reason_names() {
    let names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
    assert_eq!(
        names,
        [
            "rule",
            "sticky_key",
            "sticky_cookie",
            "minted_cookie",
            "weight",
            "trusted",
            "disabled",
            "guard"
        ]
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn trusted_incoming_variant() {
    let doc = |trust: bool, header: &str| {
        config(&format!(
            r#"{{{header}"policies":[{{"name":"p","trust_incoming":{trust},
            "variants":[{{"name":"canary","weight":0}},{{"name":"stable","weight":100}}],
            "sticky":{{"keys":[{{"header":"x-user-id"}}]}},
            "rules":[{{"variant":"stable","match":[{{"header":"x-beta","present":true}}]}}]}}]}}"#
        ))
    };
    let trusting = doc(true, "");
    let distrusting = doc(false, "");
    let custom = doc(true, r#""variant_header":"X-Version","#);
    let base = || SimpleRequest::new("h", "/");
    // (config, request, variant, reason)
    #[rustfmt::skip]
    let cases: Vec<(&Config, SimpleRequest, &str, Reason)> = vec![
        (&trusting, base().header("x-canary-variant", "canary"), "canary", Reason::Trusted),
        // Trusted beats rules and sticky keys.
        (&trusting, base().header("x-canary-variant", "canary").header("x-beta", "1")
            .header("x-user-id", "u"), "canary", Reason::Trusted),
        // An unknown (or differently cased) value is ignored.
        (&trusting, base().header("x-canary-variant", "nightly"), "stable", Reason::Weight),
        (&trusting, base().header("x-canary-variant", "Canary").header("x-beta", "1"),
            "stable", Reason::Rule),
        (&trusting, base().header("x-canary-variant", ""), "stable", Reason::Weight),
        (&distrusting, base().header("x-canary-variant", "canary"), "stable", Reason::Weight),
        (&distrusting, base().header("x-canary-variant", "canary").header("x-user-id", "u"),
            "stable", Reason::StickyKey),
        // The configured variant header is the one trusted.
        (&custom, base().header("x-version", "canary"), "canary", Reason::Trusted),
        (&custom, base().header("x-canary-variant", "canary"), "stable", Reason::Weight),
    ];
    for (i, (c, r, want_variant, want_reason)) in cases.into_iter().enumerate() {
        let d = decide(c, &r).expect("decision");
        assert_eq!(
            (variant_name(c, &d).as_str(), d.reason),
            (want_variant, want_reason),
            "case {i}"
        );
        if d.reason == Reason::Trusted {
            assert_eq!(d.bucket, None);
        }
    }
}

/// Whether a rule with `conditions` holds for `req`.
fn rule_holds(conditions: &str, req: &SimpleRequest) -> bool {
    rule_holds_on(&[], conditions, req)
}

fn h(name: &str, value: &str) -> SimpleRequest {
    SimpleRequest::new("h", "/").header(name, value)
}

fn path(p: &str) -> SimpleRequest {
    SimpleRequest::new("h", p)
}

fn none() -> SimpleRequest {
    SimpleRequest::new("h", "/")
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn rule_operators() {
    // Values at and over the length a regex condition is run on (bytes, not characters).
    let cap = crate::regex::MAX_MATCH_INPUT;
    let (at_cap, over_cap) = ("a".repeat(cap), "a".repeat(cap + 1));
    let (e_at_cap, e_over_cap) = ("é".repeat(cap / 2), "é".repeat(cap / 2 + 1));
    // (condition, request, holds)
    #[rustfmt::skip]
    let cases: Vec<(&str, SimpleRequest, bool)> = vec![
        // exact: whole value, case-sensitive.
        (r#"{"header":"x-h","exact":"v"}"#, h("x-h", "v"), true),
        (r#"{"header":"x-h","exact":"v"}"#, h("x-h", "V"), false),
        (r#"{"header":"x-h","exact":"v"}"#, h("x-h", "vv"), false),
        (r#"{"header":"x-h","exact":"v"}"#, none(), false),
        (r#"{"header":"x-h","exact":""}"#, h("x-h", ""), true),
        (r#"{"header":"X-H","exact":"v"}"#, h("X-h", "v"), true),
        // prefix / suffix / contains.
        (r#"{"header":"x-h","prefix":"be"}"#, h("x-h", "beta"), true),
        (r#"{"header":"x-h","prefix":"be"}"#, h("x-h", "abe"), false),
        (r#"{"header":"x-h","prefix":"be"}"#, none(), false),
        (r#"{"header":"x-h","suffix":"-rc"}"#, h("x-h", "1.0-rc"), true),
        (r#"{"header":"x-h","suffix":"-rc"}"#, h("x-h", "-rc1"), false),
        (r#"{"header":"x-h","contains":"mid"}"#, h("x-h", "amidst"), true),
        (r#"{"header":"x-h","contains":"mid"}"#, h("x-h", "mi-d"), false),
        // present.
        (r#"{"header":"x-h","present":true}"#, h("x-h", ""), true),
        (r#"{"header":"x-h","present":true}"#, none(), false),
        (r#"{"header":"x-h","present":false}"#, none(), true),
        (r#"{"header":"x-h","present":false}"#, h("x-h", "1"), false),
        // regex: the whole value must match.
        (r#"{"header":"x-h","regex":"[0-9]+"}"#, h("x-h", "123"), true),
        (r#"{"header":"x-h","regex":"[0-9]+"}"#, h("x-h", "a123"), false),
        (r#"{"header":"x-h","regex":"[0-9]+"}"#, h("x-h", "123a"), false),
        (r#"{"header":"x-h","regex":"a|b"}"#, h("x-h", "b"), true),
        (r#"{"header":"x-h","regex":"a|b"}"#, h("x-h", "ab"), false),
        (r#"{"header":"x-h","regex":"(?i)beta"}"#, h("x-h", "BeTa"), true),
        (r#"{"header":"x-h","regex":".*"}"#, none(), false),
        // regex: a value longer than MAX_MATCH_INPUT bytes does not match (docs/configuration.md).
        (r#"{"header":"x-h","regex":"a*"}"#, h("x-h", &at_cap), true),
        (r#"{"header":"x-h","regex":"a*"}"#, h("x-h", &over_cap), false),
        (r#"{"header":"x-h","regex":"(a+)+"}"#, h("x-h", &over_cap), false),
        (r#"{"header":"x-h","regex":"é+"}"#, h("x-h", &e_at_cap), true),
        (r#"{"header":"x-h","regex":"é+"}"#, h("x-h", &e_over_cap), false),
        (r#"{"cookie":"ab","regex":".*"}"#, h("cookie", &format!("ab={over_cap}")), false),
        // Cookies.
        (r#"{"cookie":"ab","exact":"never"}"#, h("cookie", "x=1; ab=never"), true),
        (r#"{"cookie":"ab","exact":"never"}"#, h("cookie", "ab=\"never\""), true),
        (r#"{"cookie":"ab","exact":"never"}"#, h("cookie", "xab=never"), false),
        (r#"{"cookie":"ab","exact":"never"}"#, h("cookie", "x=1").header("cookie", "ab=never"), true),
        (r#"{"cookie":"ab","prefix":"nev"}"#, h("cookie", "ab=never"), true),
        (r#"{"cookie":"ab","present":true}"#, h("cookie", "ab="), true),
        (r#"{"cookie":"ab","present":false}"#, h("cookie", "abc=1"), true),
        (r#"{"cookie":"ab","regex":"n.*r"}"#, h("cookie", "ab=never"), true),
        (r#"{"cookie":"ab","exact":"never"}"#, h("x-ab", "never"), false),
        // Query parameters (percent-decoded).
        (r#"{"query":"variant","exact":"canary"}"#, path("/p?variant=canary"), true),
        (r#"{"query":"variant","exact":"canary"}"#, path("/p?a=1&variant=canary#x"), true),
        (r#"{"query":"variant","exact":"canary"}"#, path("/p?variant=canary2"), false),
        (r#"{"query":"variant","exact":"canary"}"#, path("/p/variant=canary"), false),
        (r#"{"query":"v","exact":"a b"}"#, path("/p?v=a%20b"), true),
        (r#"{"query":"v","exact":"a b"}"#, path("/p?v=a+b"), true),
        (r#"{"query":"v","suffix":"z"}"#, path("/p?v=xyz"), true),
        (r#"{"query":"v","contains":"y"}"#, path("/p?v=xyz"), true),
        (r#"{"query":"flag","present":true}"#, path("/p?flag"), true),
        (r#"{"query":"flag","present":true}"#, path("/p?flags=1"), false),
        (r#"{"query":"flag","present":false}"#, path("/p"), true),
        (r#"{"query":"v","regex":"[a-c]{3}"}"#, path("/p?v=abc"), true),
        // AND of conditions.
        (r#"{"header":"a","exact":"1"},{"header":"b","exact":"2"}"#, h("a", "1").header("b", "2"), true),
        (r#"{"header":"a","exact":"1"},{"header":"b","exact":"2"}"#, h("a", "1"), false),
        (r#"{"header":"a","exact":"1"},{"header":"b","exact":"2"}"#, h("b", "2"), false),
        (r#"{"header":"a","exact":"1"},{"cookie":"c","exact":"2"},{"query":"q","exact":"3"}"#,
            SimpleRequest::new("h", "/?q=3").header("a", "1").header("cookie", "c=2"), true),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(cond, r, want)| rule_holds(cond, r) != *want)
        .map(|(cond, r, want)| format!("{cond} on {:?}: want {want}", r.headers))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn first_matching_rule_wins() {
    let c = config(
        r#"{"policies":[{"name":"p",
        "variants":[{"name":"a","weight":0},{"name":"b","weight":0},{"name":"c","weight":100}],
        "sticky":{"keys":[{"header":"x-user-id"}]},
        "rules":[
            {"variant":"a","match":[{"header":"x-h","exact":"1"}]},
            {"variant":"b","match":[{"header":"x-h","present":true}]},
            {"variant":"a","match":[{"header":"x-other","present":true}]}]}]}"#,
    );
    // (request, variant, reason)
    let cases = [
        (h("x-h", "1"), "a", Reason::Rule),
        (h("x-h", "2"), "b", Reason::Rule),
        (h("x-h", "2").header("x-other", ""), "b", Reason::Rule),
        (h("x-other", "").header("x-user-id", "u"), "a", Reason::Rule),
        (h("x-user-id", "u"), "c", Reason::StickyKey),
        (none(), "c", Reason::Weight),
    ];
    for (i, (r, want_variant, want_reason)) in cases.into_iter().enumerate() {
        let d = decide(&c, &r).expect("decision");
        assert_eq!(
            (variant_name(&c, &d).as_str(), d.reason),
            (want_variant, want_reason),
            "case {i}"
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sticky_keys_in_order() {
    let c = config(
        r#"{"policies":[{"name":"reviews",
        "variants":[{"name":"canary","weight":50},{"name":"stable","weight":50}],
        "sticky":{"keys":[{"header":"X-User-Id"},{"cookie":"session"},{"query":"uid"},
                          {"source_ip":true}]}}]}"#,
    );
    let r = |p: &str| SimpleRequest::new("reviews", p);
    // (request, the key value that must be hashed)
    #[rustfmt::skip]
    let cases: Vec<(SimpleRequest, &str)> = vec![
        (r("/").header("x-user-id", "alice"), "alice"),
        (r("/?uid=q").header("x-user-id", "alice").header("cookie", "session=s"), "alice"),
        (r("/").header("x-user-id", "alice").header("x-user-id", "bob"), "alice"),
        // An empty value is skipped.
        (r("/").header("x-user-id", "").header("cookie", "session=s1"), "s1"),
        (r("/").header("cookie", "other=1; session=s2"), "s2"),
        (r("/").header("cookie", "session=\"s3\""), "s3"),
        (r("/").header("cookie", "session=").source("10.0.0.1:1"), "10.0.0.1"),
        (r("/a?x=1&uid=q1"), "q1"),
        (r("/a?uid=q%2B1"), "q+1"),
        (r("/a?uid=").source("10.0.0.1:43660"), "10.0.0.1"),
        (r("/").source("10.0.0.1"), "10.0.0.1"),
        (r("/").source("[::1]:80"), "::1"),
        (r("/").source("[2001:db8::1]:443"), "2001:db8::1"),
        (r("/").source("2001:db8::1"), "2001:db8::1"),
    ];
    let p = c.policy(0).expect("policy");
    for (r, key) in cases {
        let d = decide(&c, &r).expect("decision");
        let b = bucket_for("reviews", key);
        assert_eq!(d.reason, Reason::StickyKey, "{key}");
        assert_eq!(d.bucket, Some(b), "{key}");
        assert_eq!(d.variant, p.variant_for_bucket(b), "{key}");
    }
    // IPv4 with and without port, IPv6 with and without brackets: the same bucket.
    let bucket = |addr: &str| decide(&c, &r("/").source(addr)).and_then(|d| d.bucket);
    assert_eq!(bucket("192.168.1.20:5000"), bucket("192.168.1.20"));
    assert_eq!(bucket("[::1]:80"), bucket("::1"));
    assert_eq!(bucket("[::1]:80"), bucket("[::1]:81"));
    // Nothing present: no sticky cookie configured, so a random weight.
    let d = decide(&c, &r("/").source("")).expect("decision");
    assert_eq!(d.reason, Reason::Weight);
}

const COOKIE_POLICY: &str = r#"{"policies":[{"name":"reviews",
    "variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
    "sticky":{"keys":[{"header":"x-user-id"}],
              "cookie":{"name":"canary-id","max_age":86400,"path":"/","http_only":true,"same_site":"Lax"}}}]}"#;

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sticky_cookie() {
    let c = config(COOKIE_POLICY);
    let r = |cookie: &str| SimpleRequest::new("reviews", "/").header("cookie", cookie);
    // (Cookie header, value hashed)
    let cases = [
        ("canary-id=abc", "abc"),
        (
            "a=1; canary-id=0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef",
        ),
        ("canary-id=\"quoted\"", "quoted"),
        ("canary-id=x; canary-id=y", "x"),
    ];
    for (cookie, value) in cases {
        let d = decide(&c, &r(cookie)).expect("decision");
        assert_eq!(d.reason, Reason::StickyCookie, "{cookie}");
        assert_eq!(d.bucket, Some(bucket_for("reviews", value)), "{cookie}");
        assert_eq!(d.minted, None, "{cookie}");
    }
    // A sticky key beats the cookie.
    let d = decide(&c, &r("canary-id=abc").header("x-user-id", "u")).expect("decision");
    assert_eq!(
        (d.reason, d.bucket),
        (Reason::StickyKey, Some(bucket_for("reviews", "u")))
    );
    // An empty or absent cookie mints a new one.
    for cookie in [
        "canary-id=",
        "canary-id=\"\"",
        "canary-idx=1",
        "other=1",
        "",
    ] {
        let d = decide(&c, &r(cookie)).expect("decision");
        assert_eq!(d.reason, Reason::MintedCookie, "{cookie}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn minted_cookie() {
    let c = config(COOKIE_POLICY);
    let p = c.policy(0).expect("policy");
    let cookie = p.sticky_cookie().expect("sticky cookie");
    let req = SimpleRequest::new("reviews", "/");
    let mut ids = Vec::new();
    for seed in 0..200 {
        let d = c
            .decide(&req, &mut SplitMix64::new(seed))
            .expect("decision");
        assert_eq!(d.reason, Reason::MintedCookie);
        let id = d.minted.expect("minted id");
        let id = id.as_str();
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "{id}"
        );
        let b = bucket_for("reviews", id);
        assert_eq!(d.bucket, Some(b));
        assert_eq!(d.variant, p.variant_for_bucket(b));
        assert_eq!(
            cookie.set_cookie_value(id),
            format!("canary-id={id}; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax")
        );
        // The same seed mints the same id; sending it back gives the same decision.
        let again = c
            .decide(&req, &mut SplitMix64::new(seed))
            .expect("decision");
        assert_eq!(again, d);
        let back = decide(
            &c,
            &req.clone().header("cookie", &format!("canary-id={id}")),
        )
        .expect("decision");
        assert_eq!(
            (back.reason, back.variant, back.bucket),
            (Reason::StickyCookie, d.variant, d.bucket)
        );
        ids.push(id.to_string());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200);
    // Golden: the id is the 16 little-endian bytes of two SplitMix64 outputs, as hex.
    let d = c.decide(&req, &mut SplitMix64::new(0)).expect("decision");
    let id = d.minted.expect("minted id");
    assert_eq!(id.as_str(), "afcd1d7b39a820e2f465b9a16a9e786e");
    assert_eq!(
        format!("{id:?}"),
        "MintedId(afcd1d7b39a820e2f465b9a16a9e786e)"
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn weight_split_is_random_and_close() {
    let c = config(
        r#"{"policies":[{"name":"p",
        "variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}]}]}"#,
    );
    let p = c.policy(0).expect("policy");
    let mut rng = SplitMix64::new(0x5eed);
    let req = SimpleRequest::new("any", "/");
    let draws = 20_000;
    let mut canary = 0;
    let mut distinct = std::collections::HashSet::new();
    for _ in 0..draws {
        let d = c.decide(&req, &mut rng).expect("decision");
        assert_eq!(d.reason, Reason::Weight);
        let b = d.bucket.expect("bucket");
        assert!(b < crate::BUCKETS);
        assert_eq!(d.variant, p.variant_for_bucket(b));
        distinct.insert(b);
        if d.variant == 0 {
            canary += 1;
        }
    }
    let share = f64::from(canary) * 100.0 / f64::from(draws);
    assert!((share - 10.0).abs() <= 1.5, "canary share {share}%");
    assert!(distinct.len() > 8000, "{}", distinct.len());
    // The weight bucket is the generator's next output modulo 10000.
    let d = c.decide(&req, &mut SplitMix64::new(0)).expect("decision");
    assert_eq!(d.bucket, Some((0xe220_a839_7b1d_cdaf_u64 % 10_000) as u16));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn sticky_decisions_are_deterministic() {
    let json = r#"{"policies":[{"name":"reviews",
        "variants":[{"name":"canary","weight":30},{"name":"stable","weight":70}],
        "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#;
    // The same policy behind an unrelated one, and with its salt spelled out.
    let shifted = r#"{"policies":[{"name":"other","hosts":["other"],
        "variants":[{"name":"x","weight":100}]},{"name":"reviews",
        "variants":[{"name":"canary","weight":30},{"name":"stable","weight":70}],
        "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#;
    let salted = r#"{"policies":[{"name":"renamed","salt":"reviews",
        "variants":[{"name":"canary","weight":30},{"name":"stable","weight":70}],
        "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#;
    let configs = [config(json), config(json), config(shifted), config(salted)];
    for user in ["alice", "bob", "carol", "user-1", "ユーザー"] {
        let r = SimpleRequest::new("reviews", "/").header("x-user-id", user);
        let first = configs[0]
            .decide(&r, &mut SplitMix64::new(0))
            .expect("decision");
        for seed in 0..50 {
            let d = configs[0]
                .decide(&r, &mut SplitMix64::new(seed))
                .expect("decision");
            assert_eq!(d, first, "{user}");
        }
        for c in &configs[1..] {
            let d = c.decide(&r, &mut SplitMix64::new(99)).expect("decision");
            assert_eq!(
                (d.variant, d.bucket),
                (first.variant, first.bucket),
                "{user}"
            );
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn salt_defaults_to_policy_name() {
    let c = config(
        r#"{"policies":[
        {"name":"checkout","hosts":["checkout"],"variants":[{"name":"a","weight":50},{"name":"b","weight":50}],
         "sticky":{"keys":[{"header":"x-user-id"}]}},
        {"name":"cart","hosts":["cart"],"salt":"shop","variants":[{"name":"a","weight":50},{"name":"b","weight":50}],
         "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#,
    );
    for i in 0..500 {
        let user = format!("user-{i}");
        let bucket = |host: &str| {
            decide(
                &c,
                &SimpleRequest::new(host, "/").header("x-user-id", &user),
            )
            .and_then(|d| d.bucket)
        };
        assert_eq!(
            bucket("checkout"),
            Some(bucket_for("checkout", &user)),
            "{user}"
        );
        assert_eq!(bucket("cart"), Some(bucket_for("shop", &user)), "{user}");
    }
}

/// Raising the canary weight only moves users into the canary, never out of it.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn ramp_is_monotone() {
    let at = |canary: u32| {
        config(&format!(
            r#"{{"policies":[{{"name":"reviews",
            "variants":[{{"name":"canary","weight":{canary}}},{{"name":"stable","weight":{}}}],
            "sticky":{{"keys":[{{"header":"x-user-id"}}]}}}}]}}"#,
            100 - canary
        ))
    };
    let steps: Vec<Config> = [1, 5, 10, 25, 50, 100].into_iter().map(at).collect();
    let mut counts = vec![0usize; steps.len()];
    for i in 0..20_000 {
        let r = SimpleRequest::new("reviews", "/").header("x-user-id", &format!("user-{i}"));
        let in_canary: Vec<bool> = steps
            .iter()
            .map(|c| decide(c, &r).expect("decision").variant == 0)
            .collect();
        for (step, pair) in in_canary.windows(2).enumerate() {
            assert!(
                !pair[0] || pair[1],
                "user-{i} left the canary at step {step}"
            );
        }
        for (n, inside) in counts.iter_mut().zip(&in_canary) {
            *n += usize::from(*inside);
        }
    }
    // 10 % → 25 % moves about 15 % of the users, and everyone is in at 100 %.
    let moved = counts[3] - counts[2];
    assert!((2_700..3_300).contains(&moved), "{counts:?}");
    assert_eq!(counts[5], 20_000);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn zero_weight_never_chosen_and_single_variant_always() {
    // (variants, the weight-0 variant that must never be chosen, or "")
    let cases = [
        (
            r#"[{"name":"off","weight":0},{"name":"on","weight":100}]"#,
            "off",
        ),
        (
            r#"[{"name":"on","weight":100},{"name":"off","weight":0}]"#,
            "off",
        ),
        (
            r#"[{"name":"a","weight":50},{"name":"off","weight":0},{"name":"b","weight":50}]"#,
            "off",
        ),
        (r#"[{"name":"only","weight":100}]"#, ""),
    ];
    for (variants, off) in cases {
        for sticky in ["", r#","sticky":{"keys":[{"header":"x-user-id"}]}"#] {
            let c = config(&format!(
                r#"{{"policies":[{{"name":"p","variants":{variants}{sticky}}}]}}"#
            ));
            let mut rng = SplitMix64::new(3);
            let mut seen = std::collections::BTreeSet::new();
            for i in 0..3_000 {
                let r = SimpleRequest::new("h", "/").header("x-user-id", &format!("user-{i}"));
                let d = c.decide(&r, &mut rng).expect("decision");
                seen.insert(variant_name(&c, &d));
            }
            // Every other variant is chosen.
            let want: Vec<String> = c.policies()[0]
                .variants()
                .iter()
                .map(|v| v.name().to_string())
                .filter(|v| v != off)
                .collect();
            assert_eq!(
                seen.into_iter().collect::<Vec<_>>(),
                want,
                "{variants}{sticky}"
            );
        }
    }
    // Every bucket of a single 100 % variant belongs to it; a weight-0 variant owns none.
    let c = config(
        r#"{"policies":[{"name":"p","variants":[{"name":"z","weight":0},{"name":"only","weight":100}]}]}"#,
    );
    let p = c.policy(0).expect("policy");
    assert!((0..crate::BUCKETS).all(|b| p.variant_for_bucket(b) == 1));
}
