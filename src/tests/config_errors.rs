//! Configuration validation: every error names the JSON path of the offending field, and every
//! error of a document is reported at once.

use std::ops::Range;

use super::config;
use crate::compile::MAX_CONFIG_BYTES;
use crate::{Config, ConfigError, ConfigErrors};

/// Valid variants, to be combined with the field under test.
const V: &str = r#""variants":[{"name":"a","weight":10},{"name":"b","weight":90}]"#;

/// A document with one policy named `p` holding `fields`.
fn p(fields: &str) -> String {
    format!(r#"{{"policies":[{{"name":"p",{fields}}}]}}"#)
}

/// One policy with valid variants plus `fields`.
fn pv(fields: &str) -> String {
    p(&format!("{V},{fields}"))
}

/// One policy with valid variants and one rule whose only condition is `m`.
fn rule_match(m: &str) -> String {
    pv(&format!(r#""rules":[{{"variant":"a","match":[{m}]}}]"#))
}

/// One policy with valid variants and a sticky section.
fn sticky(s: &str) -> String {
    pv(&format!(r#""sticky":{s}"#))
}

fn errors(json: &str) -> Vec<ConfigError> {
    match Config::from_json(json.as_bytes()) {
        Ok(_) => panic!("config should be rejected:\n{json}"),
        Err(ConfigErrors(list)) => list,
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invalid_configs_name_path_and_problem() {
    // (what, document, number of errors, path of the first error, part of its message)
    #[rustfmt::skip]
    let cases: Vec<(&str, String, usize, &str, &str)> = vec![
        // Whole document.
        ("empty document", String::new(), 1, "(config)", "configuration is empty"),
        ("blank document", " \n\t ".into(), 1, "(config)", "configuration is empty"),
        ("not JSON", "policies: []".into(), 1, "(config)", "expected"),
        ("no policies field", "{}".into(), 1, "(config)", "missing field `policies`"),
        ("empty policy list", r#"{"policies":[]}"#.into(), 1, "policies", "at least one policy"),
        ("unknown field at root", r#"{"policies":[],"polices":[]}"#.into(),
            1, "polices", "unknown field `polices`"),
        ("wrong type at root", r#"{"expose_variant":"yes","policies":[]}"#.into(),
            1, "expose_variant", "invalid type: string"),
        // variant_header.
        ("variant_header with a space", r#"{"variant_header":"x canary","policies":[]}"#.into(),
            2, "variant_header", "not a valid header name"),
        ("variant_header pseudo-header", format!(r#"{{"variant_header":":path","policies":[{{"name":"p",{V}}}]}}"#),
            1, "variant_header", "pseudo-headers"),
        ("variant_header empty", format!(r#"{{"variant_header":"","policies":[{{"name":"p",{V}}}]}}"#),
            1, "variant_header", "must not be empty"),
        // Policy names.
        ("duplicate policy names", format!(r#"{{"policies":[{{"name":"p",{V}}},{{"name":"q",{V}}},{{"name":"p",{V}}}]}}"#),
            1, "policies[2].name", r#"duplicate policy name "p" (also policies[0])"#),
        ("policy name with a space", r#"{"policies":[{"name":"a b","variants":[{"name":"a","weight":100}]}]}"#.into(),
            1, "policies[0].name", "may only hold letters, digits"),
        ("policy name too long", format!(r#"{{"policies":[{{"name":"{}",{V}}}]}}"#, "n".repeat(65)),
            1, "policies[0].name", "longer than 64"),
        ("policy without name", format!(r#"{{"policies":[{{{V}}}]}}"#),
            1, "policies[0]", "missing field `name`"),
        // Variants and weights.
        ("weights sum to 90", p(r#""variants":[{"name":"a","weight":10},{"name":"b","weight":80}]"#),
            1, "policies[0].variants", "weights sum to 90, they must sum to 100"),
        ("weights sum to 100.5", p(r#""variants":[{"name":"a","weight":10.5},{"name":"b","weight":90}]"#),
            1, "policies[0].variants", "weights sum to 100.5"),
        ("weights sum to 99.99", p(r#""variants":[{"name":"a","weight":9.99},{"name":"b","weight":90}]"#),
            1, "policies[0].variants", "weights sum to 99.99"),
        ("weight with 3 decimals", p(r#""variants":[{"name":"a","weight":90},{"name":"b","weight":9.999}]"#),
            1, "policies[0].variants[1].weight", "more than two decimals"),
        ("negative weight", p(r#""variants":[{"name":"a","weight":-10},{"name":"b","weight":100}]"#),
            1, "policies[0].variants[0].weight", "between 0 and 100"),
        ("weight over 100", p(r#""variants":[{"name":"a","weight":150}]"#),
            1, "policies[0].variants[0].weight", "between 0 and 100"),
        ("string weight", p(r#""variants":[{"name":"a","weight":"100"}]"#),
            1, "policies[0].variants[0].weight", "invalid type: string \"100\""),
        ("duplicate variant names", p(r#""variants":[{"name":"a","weight":50},{"name":"a","weight":50}]"#),
            1, "policies[0].variants[1].name", r#"duplicate variant name "a""#),
        ("no variants", p(r#""variants":[]"#),
            1, "policies[0].variants", "at least one variant"),
        ("unknown field in a variant", p(r#""variants":[{"name":"a","weight":100,"weigth":1}]"#),
            1, "policies[0].variants[0].weigth", "unknown field `weigth`"),
        ("variant name with a dot", p(r#""variants":[{"name":"v1.2","weight":100}]"#),
            1, "policies[0].variants[0].name", "may only hold"),
        // Selectors.
        ("host with port", pv(r#""hosts":["reviews:9080"]"#),
            1, "policies[0].hosts[0]", "without port"),
        ("wildcard inside", pv(r#""hosts":["ok","a.*.com"]"#),
            1, "policies[0].hosts[1]", "only allowed as a leading"),
        ("trailing wildcard", pv(r#""hosts":["example.*"]"#),
            1, "policies[0].hosts[0]", "only allowed as a leading"),
        ("bare wildcard dot", pv(r#""hosts":["*."]"#),
            1, "policies[0].hosts[0]", "only allowed as a leading"),
        ("host with a slash", pv(r#""hosts":["a/b"]"#),
            1, "policies[0].hosts[0]", "not a valid host name"),
        ("empty host", pv(r#""hosts":[""]"#),
            1, "policies[0].hosts[0]", "must not be empty"),
        ("empty host list", pv(r#""hosts":[]"#),
            1, "policies[0].hosts", "must not be empty"),
        ("path_prefix without slash", pv(r#""path_prefix":"api""#),
            1, "policies[0].path_prefix", "must start with '/'"),
        ("empty route list", pv(r#""routes":[]"#),
            1, "policies[0].routes", "must not be empty"),
        ("empty route name", pv(r#""routes":["r",""]"#),
            1, "policies[0].routes[1]", "must not be empty"),
        ("empty salt", pv(r#""salt":"""#),
            1, "policies[0].salt", "must not be empty"),
        // Rules.
        ("unknown variant in a rule", pv(r#""rules":[{"variant":"c","match":[{"header":"h","present":true}]}]"#),
            1, "policies[0].rules[0].variant", r#"unknown variant "c"; the policy has ["a", "b"]"#),
        ("rule without conditions", pv(r#""rules":[{"variant":"a","match":[]}]"#),
            1, "policies[0].rules[0].match", "at least one condition"),
        ("bad regex", rule_match(r#"{"header":"h","regex":"(unclosed"}"#),
            1, "policies[0].rules[0].match[0].regex", "invalid regex \"(unclosed\""),
        ("two operators", rule_match(r#"{"header":"h","exact":"1","prefix":"1"}"#),
            1, "policies[0].rules[0].match[0]", r#"exactly one of "exact", "prefix""#),
        ("no operator", rule_match(r#"{"header":"h"}"#),
            1, "policies[0].rules[0].match[0]", r#"exactly one of "exact", "prefix""#),
        ("no source", rule_match(r#"{"exact":"1"}"#),
            1, "policies[0].rules[0].match[0]", r#"exactly one of "header", "cookie", "query""#),
        ("two sources", rule_match(r#"{"header":"h","cookie":"c","exact":"1"}"#),
            1, "policies[0].rules[0].match[0]", r#"exactly one of "header", "cookie", "query""#),
        ("unknown field in a match", rule_match(r#"{"header":"h","equals":"1"}"#),
            1, "policies[0].rules[0].match[0].equals", "unknown field `equals`"),
        ("bad header name in a match", rule_match(r#"{"header":"x beta","exact":"1"}"#),
            1, "policies[0].rules[0].match[0].header", "not a valid header name"),
        ("bad cookie name in a match", rule_match(r#"{"cookie":"a;b","exact":"1"}"#),
            1, "policies[0].rules[0].match[0].cookie", "not a valid cookie name"),
        ("wrong type for present", rule_match(r#"{"header":"h","present":"yes"}"#),
            1, "policies[0].rules[0].match[0].present", "invalid type: string"),
        // Sticky.
        ("empty sticky", sticky("{}"),
            1, "policies[0].sticky", r#"set "keys", "cookie" or both"#),
        ("sticky key with two fields", sticky(r#"{"keys":[{"header":"x-user-id","cookie":"session"}]}"#),
            1, "policies[0].sticky.keys[0]", r#"exactly one of "header", "cookie", "query", "source_ip""#),
        ("sticky key with no field", sticky(r#"{"keys":[{}]}"#),
            1, "policies[0].sticky.keys[0]", "exactly one of"),
        ("source_ip false", sticky(r#"{"keys":[{"header":"x"},{"source_ip":false}]}"#),
            1, "policies[0].sticky.keys[1].source_ip", "must be true"),
        ("empty query key", sticky(r#"{"keys":[{"query":""}]}"#),
            1, "policies[0].sticky.keys[0].query", "must not be empty"),
        ("pseudo-header key", sticky(r#"{"keys":[{"header":":authority"}]}"#),
            1, "policies[0].sticky.keys[0].header", "pseudo-headers"),
        ("bad same_site", sticky(r#"{"cookie":{"name":"id","same_site":"Loose"}}"#),
            1, "policies[0].sticky.cookie.same_site", r#""Loose" must be "Strict", "Lax" or "None""#),
        ("same_site None without secure", sticky(r#"{"cookie":{"name":"id","same_site":"None"}}"#),
            1, "policies[0].sticky.cookie.same_site", r#""None" requires "secure": true"#),
        ("bad sticky cookie name", sticky(r#"{"cookie":{"name":"id=1"}}"#),
            1, "policies[0].sticky.cookie.name", "not a valid cookie name"),
        ("cookie path without slash", sticky(r#"{"cookie":{"name":"id","path":"app"}}"#),
            1, "policies[0].sticky.cookie.path", "must start with '/'"),
        ("cookie path with ';'", sticky(r#"{"cookie":{"name":"id","path":"/a;b"}}"#),
            1, "policies[0].sticky.cookie.path", "must start with '/'"),
        ("empty cookie domain", sticky(r#"{"cookie":{"name":"id","domain":""}}"#),
            1, "policies[0].sticky.cookie.domain", "not a valid cookie domain"),
        ("negative max_age", sticky(r#"{"cookie":{"name":"id","max_age":-1}}"#),
            1, "policies[0].sticky.cookie.max_age", "invalid value: integer `-1`"),
        ("unknown field in sticky cookie", sticky(r#"{"cookie":{"name":"id","maxage":1}}"#),
            1, "policies[0].sticky.cookie.maxage", "unknown field `maxage`"),
    ];
    let mut failures = Vec::new();
    for (what, json, count, path, message) in &cases {
        let errs = errors(json);
        let first = &errs[0];
        if errs.len() != *count || first.path != *path || !first.message.contains(message) {
            failures.push(format!(
                "{what}: want {count} error(s), first `{path}: …{message}…`, got {}: {}",
                errs.len(),
                ConfigErrors(errs.clone())
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn oversized_document_is_rejected_before_parsing() {
    let json = " ".repeat(MAX_CONFIG_BYTES + 1);
    let errs = errors(&json);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "(config)");
    assert!(
        errs[0].message.contains("the limit is 4194304"),
        "{}",
        errs[0].message
    );
}

/// Every error of a document is reported, in document order, not just the first.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn all_errors_are_reported_at_once() {
    let json = r#"{
        "variant_header": "x canary",
        "policies": [
            {"name": "reviews", "hosts": ["reviews:9080", "a.*.com"], "path_prefix": "api",
             "variants": [{"name": "canary", "weight": 10}, {"name": "stable", "weight": 80}],
             "rules": [{"variant": "beta", "match": [{"header": "x-beta", "regex": "("}]}]},
            {"name": "reviews",
             "variants": [{"name": "a", "weight": -1}, {"name": "a", "weight": 101}],
             "sticky": {"keys": [{"source_ip": false}],
                        "cookie": {"name": "id", "same_site": "None"}}}
        ]
    }"#;
    let errs = errors(json);
    let got: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.path.as_str(), e.message.as_str()))
        .collect();
    let want = [
        ("variant_header", "not a valid header name"),
        ("policies[0].hosts[0]", "without port"),
        ("policies[0].hosts[1]", "wildcard"),
        ("policies[0].path_prefix", "must start with '/'"),
        ("policies[0].variants", "weights sum to 90"),
        ("policies[0].rules[0].variant", "unknown variant \"beta\""),
        ("policies[0].rules[0].match[0].regex", "invalid regex"),
        ("policies[1].name", "duplicate policy name \"reviews\""),
        ("policies[1].variants[0].weight", "between 0 and 100"),
        (
            "policies[1].variants[1].name",
            "duplicate variant name \"a\"",
        ),
        ("policies[1].variants[1].weight", "between 0 and 100"),
        ("policies[1].sticky.keys[0].source_ip", "must be true"),
        (
            "policies[1].sticky.cookie.same_site",
            "requires \"secure\": true",
        ),
    ];
    assert_eq!(got.len(), 13, "{got:#?}");
    for ((path, message), (want_path, want_message)) in got.iter().zip(want) {
        assert_eq!(*path, want_path, "{got:#?}");
        assert!(message.contains(want_message), "{path}: {message}");
    }
    // The Display form lists them all, separated by "; ".
    let shown = ConfigErrors(errs.clone()).to_string();
    assert_eq!(shown.matches("; policies[").count(), 12, "{shown}");
    assert!(shown.starts_with("variant_header: "), "{shown}");
}

/// The example configuration of the specification.
pub(super) const EXAMPLE: &str = r#"{"variant_header":"x-canary-variant","expose_variant":false,"policies":[{"name":"reviews","hosts":["reviews","reviews.default.svc.cluster.local"],"path_prefix":"/","routes":["reviews-route"],"salt":"reviews","trust_incoming":false,"variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],"sticky":{"keys":[{"header":"x-user-id"},{"cookie":"session"},{"query":"uid"},{"source_ip":true}],"cookie":{"name":"canary-id","max_age":86400,"path":"/","secure":false,"http_only":true,"same_site":"Lax"}},"rules":[{"variant":"canary","match":[{"header":"x-beta","exact":"true"}]},{"variant":"stable","match":[{"cookie":"ab","exact":"never"}]},{"variant":"canary","match":[{"query":"variant","exact":"canary"}]}]}]}"#;

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn example_config_compiles() {
    let c = config(EXAMPLE);
    assert_eq!(c.variant_header(), "x-canary-variant");
    assert!(!c.expose_variant());
    assert!(c.uses_routes());
    assert_eq!(c.policies().len(), 1);
    let p = c.policy(0).expect("policy");
    assert_eq!(p.name(), "reviews");
    let v: Vec<(&str, u16, Range<u16>)> = p
        .variants()
        .iter()
        .enumerate()
        .map(|(i, v)| (v.name(), p.split().weights_bp()[i], p.split().buckets(i)))
        .collect();
    assert_eq!(
        v,
        [("canary", 1000, 0..1000), ("stable", 9000, 1000..10_000)]
    );
    assert_eq!(p.variant_index("stable"), Some(1));
    assert_eq!(p.variant_index("Stable"), None);
    let cookie = p.sticky_cookie().expect("sticky cookie");
    assert_eq!(cookie.name(), "canary-id");
    assert_eq!(
        cookie.set_cookie_value("0123"),
        "canary-id=0123; Max-Age=86400; Path=/; HttpOnly; SameSite=Lax"
    );
}

/// (weight in basis points, buckets) of each variant.
type Ranges = &'static [(u16, Range<u16>)];

/// Valid documents and the bucket ranges their weights compile to.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn valid_weights_compile_to_bucket_ranges() {
    let cases: &[(&str, Ranges)] = &[
        ("[100]", &[(10_000, 0..10_000)]),
        ("[10, 90]", &[(1000, 0..1000), (9000, 1000..10_000)]),
        (
            "[33.33, 33.33, 33.34]",
            &[(3333, 0..3333), (3333, 3333..6666), (3334, 6666..10_000)],
        ),
        ("[0.01, 99.99]", &[(1, 0..1), (9999, 1..10_000)]),
        ("[0, 100]", &[(0, 0..0), (10_000, 0..10_000)]),
        ("[100, 0]", &[(10_000, 0..10_000), (0, 10_000..10_000)]),
        (
            "[12.5, 0, 87.5]",
            &[(1250, 0..1250), (0, 1250..1250), (8750, 1250..10_000)],
        ),
        ("[1e1, 9e1]", &[(1000, 0..1000), (9000, 1000..10_000)]),
        (
            "[0.1, 0.2, 99.7]",
            &[(10, 0..10), (20, 10..30), (9970, 30..10_000)],
        ),
    ];
    for &(weights, want) in cases {
        let list: Vec<&str> = weights.trim_matches(['[', ']']).split(", ").collect();
        let variants: Vec<String> = list
            .iter()
            .enumerate()
            .map(|(i, w)| format!(r#"{{"name":"v{i}","weight":{w}}}"#))
            .collect();
        let c = config(&p(&format!(r#""variants":[{}]"#, variants.join(","))));
        let split = c.policies()[0].split();
        let got: Vec<(u16, Range<u16>)> = (0..split.weights_bp().len())
            .map(|i| (split.weights_bp()[i], split.buckets(i)))
            .collect();
        assert_eq!(got, want, "{weights}");
    }
}

/// Other valid documents: optional fields, every selector and cookie attribute.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn valid_configs_compile() {
    let cases: Vec<(&str, String)> = vec![
        ("minimal", p(r#""variants":[{"name":"only","weight":100}]"#)),
        (
            "hosts of every form",
            pv(r#""hosts":["Reviews","*.Example.com","*","[::1]","10.0.0.1"]"#),
        ),
        (
            "uppercase header names",
            pv(r#""sticky":{"keys":[{"header":"X-User-Id"}]}"#),
        ),
        (
            "same_site None with secure",
            sticky(r#"{"cookie":{"name":"id","secure":true,"same_site":"none"}}"#),
        ),
        (
            "every operator",
            pv(r#""rules":[{"variant":"a","match":[
            {"header":"h1","exact":""},{"header":"h2","prefix":"p"},{"header":"h3","suffix":"s"},
            {"cookie":"c","contains":"x"},{"query":"q","present":false},{"header":"h4","regex":"(?i)ab+c"}]}]"#),
        ),
        (
            "custom variant header",
            format!(
                r#"{{"variant_header":"X-Version","expose_variant":true,"policies":[{{"name":"p",{V}}}]}}"#
            ),
        ),
        (
            "null optional fields",
            pv(r#""hosts":null,"salt":null,"sticky":null"#),
        ),
    ];
    for (what, json) in cases {
        assert!(
            Config::from_json(json.as_bytes()).is_ok(),
            "{what}: {:?}",
            Config::from_json(json.as_bytes()).err()
        );
    }
    let c = config(&format!(
        r#"{{"variant_header":"X-Version","expose_variant":true,"policies":[{{"name":"p",{V}}}]}}"#
    ));
    assert_eq!(c.variant_header(), "x-version");
    assert!(c.expose_variant());
    assert!(!c.uses_routes());
}

/// The `Set-Cookie` value carries the configured attributes in a fixed order; `Path` is `/`
/// unless configured, so that one browser keeps one id across a whole site.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn set_cookie_attributes() {
    let cases = [
        (r#"{"name":"id"}"#, "id=ID; Path=/; HttpOnly"),
        (r#"{"name":"id","http_only":false}"#, "id=ID; Path=/"),
        (
            r#"{"name":"id","max_age":0,"http_only":false}"#,
            "id=ID; Max-Age=0; Path=/",
        ),
        (
            r#"{"name":"id","same_site":"strict","secure":true,"http_only":true,"domain":"example.com","path":"/app","max_age":3600}"#,
            "id=ID; Max-Age=3600; Path=/app; Domain=example.com; Secure; HttpOnly; SameSite=Strict",
        ),
        (
            r#"{"name":"id","secure":true,"same_site":"NONE"}"#,
            "id=ID; Path=/; Secure; HttpOnly; SameSite=None",
        ),
        (
            r#"{"name":"id","same_site":"lax"}"#,
            "id=ID; Path=/; HttpOnly; SameSite=Lax",
        ),
    ];
    for (cookie, want) in cases {
        let c = config(&sticky(&format!(r#"{{"cookie":{cookie}}}"#)));
        let got = c.policies()[0]
            .sticky_cookie()
            .expect("sticky cookie")
            .set_cookie_value("ID");
        assert_eq!(got, want, "{cookie}");
    }
}

/// Regression (compile.rs, `compile_condition`): the user's regex is spliced into `^(?:{re})$`
/// without being validated on its own, so an invalid pattern such as `a)|(b` becomes the valid
/// `^(?:a)|(b)$`, which matches any value starting with `a` or ending with `b`: not a
/// whole-value match. It should be rejected as an invalid regex.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn unbalanced_regex_is_rejected() {
    for re in ["a)|(b", ")(", "a)(?:b"] {
        let json = rule_match(&format!(r#"{{"header":"h","regex":"{re}"}}"#));
        match Config::from_json(json.as_bytes()) {
            Err(e) => {
                assert_eq!(e.0[0].path, "policies[0].rules[0].match[0].regex", "{re}");
                assert!(e.0[0].message.contains("invalid regex"), "{re}: {e}");
            }
            Ok(_) => panic!("{re:?} is not a valid regex but was accepted"),
        }
    }
}

/// Regression (names.rs, `host_pattern`): an IPv6 literal with a port, `[::1]:8080`, passes the
/// port check (it only looks for ':' when the host does not start with '['), yet request hosts
/// are matched without port, so the policy can never apply. It should be rejected like
/// `reviews:9080`.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn ipv6_host_with_port_is_rejected() {
    let errs = errors(&pv(r#""hosts":["[::1]:8080"]"#));
    assert_eq!(errs[0].path, "policies[0].hosts[0]");
    assert!(
        errs[0].message.contains("without port"),
        "{}",
        errs[0].message
    );
}

/// Regression: a syntax error at the end of the
/// document (truncated JSON) is reported at the path "?" instead of "(config)".
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn truncated_json_is_reported_at_the_root() {
    let errs = errors(r#"{"policies":[{"name":"p","variants":[{"name":"a","weight":100}]}]"#);
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].message.contains("EOF while parsing"),
        "{}",
        errs[0].message
    );
    assert_eq!(errs[0].path, "(config)");
}

/// Every shape error of a document (wrong types, unknown, repeated and missing fields, at every
/// level and in every kind of field) is reported at once, each with its JSON path: decoding does
/// not stop at the first.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn every_shape_error_is_reported() {
    let json = r#"{
        "expose_variant": "yes",
        "polices": [],
        "variant_header": 7,
        "policies": [
            {"hosts": ["a", 1],
             "variants": [{"name": "a", "weight": "10"},
                          {"name": "b", "weight": 90, "weight": 90}],
             "sticky": {"keys": [{"header": "x", "source_ip": "yes"}],
                        "cookie": {"name": "id", "max_age": 1.5, "http_only": null}},
             "rules": [{"variant": "a", "match": {"header": "x"}},
                       {"variant": "a", "match": [{"header": "x", "exatc": "y"}]}],
             "ramp": {"variant": "a", "start": "2026-01-01T00:00:00Z", "steps": [10, "20"],
                      "step_seconds": -5},
             "guard": {"variant": "a", "window_seconds": 18446744073709551616,
                       "notify": [{"path": "/x", "headers": {"a": 1}}, "slack"]}},
            true
        ]
    }"#;
    let got: Vec<(String, String)> = errors(json)
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect();
    // Captured from the positional decoders this table replaced: the same words, paths and order.
    #[rustfmt::skip]
    let want = [
        ("expose_variant", "invalid type: string \"yes\", expected a boolean"),
        ("polices", "unknown field `polices`, expected one of `variant_header`, \
            `expose_variant`, `route_metadata`, `filter_state`, `response_metrics`, `policies`"),
        ("variant_header", "invalid type: integer `7`, expected a string"),
        ("policies[0].hosts[1]", "invalid type: integer `1`, expected a string"),
        ("policies[0].variants[0].weight", "invalid type: string \"10\", expected a number"),
        ("policies[0].variants[1].weight", "duplicate field `weight`"),
        ("policies[0].sticky.keys[0].source_ip", "invalid type: string \"yes\", expected a boolean"),
        ("policies[0].sticky.cookie.max_age", "invalid type: floating point `1.5`, expected u64"),
        ("policies[0].sticky.cookie.http_only", "invalid type: null, expected a boolean"),
        ("policies[0].rules[0].match", "invalid type: map, expected a sequence"),
        ("policies[0].rules[1].match[0].exatc", "unknown field `exatc`, expected one of `header`, \
            `cookie`, `query`, `source_label`, `exact`, `prefix`, `suffix`, `contains`, `present`, \
            `regex`"),
        ("policies[0].ramp.steps[1]", "invalid type: string \"20\", expected a number"),
        ("policies[0].ramp.step_seconds", "invalid value: integer `-5`, expected u64"),
        ("policies[0].guard.window_seconds",
            "invalid value: integer `18446744073709551616`, expected u64"),
        ("policies[0].guard.notify[0].headers.a", "invalid type: integer `1`, expected a string"),
        ("policies[0].guard.notify[0]", "missing field `cluster`"),
        ("policies[0].guard.notify[1]", "invalid type: string \"slack\", expected a map"),
        ("policies[0]", "missing field `name`"),
        ("policies[1]", "invalid type: boolean `true`, expected a map"),
    ];
    for (g, w) in got.iter().zip(want.iter()) {
        assert_eq!((g.0.as_str(), g.1.as_str()), *w, "{got:#?}");
    }
    assert_eq!(got.len(), want.len(), "{got:#?}");
}
