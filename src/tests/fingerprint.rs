//! `Config::document_fingerprint` and the canonical JSON text it hashes: the same for a
//! configuration however it is re-serialized on its way to the proxy (Istio's protobuf
//! `Struct`: members reordered, numbers as doubles), different for a different configuration.

use super::config_in;
use crate::json::{canonical, parse, push_canonical_number};
use crate::Config;

fn canon(doc: &str) -> String {
    canonical(&parse(doc.as_bytes()).unwrap())
}

fn number(text: &str) -> String {
    let mut out = String::new();
    push_canonical_number(text, &mut out);
    out
}

fn document_fingerprint(doc: &str) -> u64 {
    super::config(doc).document_fingerprint()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn numbers_have_one_exact_text() {
    let cases: &[(&str, &str)] = &[
        ("10", "10"),
        ("10.0", "10"),
        ("10.000", "10"),
        ("1e1", "10"),
        ("1E1", "10"),
        ("1e+1", "10"),
        ("1.0E+01", "10"),
        ("100e-1", "10"),
        ("+10", "10"),
        ("010", "10"),
        ("0.05", "0.05"),
        ("0.050", "0.05"),
        ("5e-2", "0.05"),
        ("5E-2", "0.05"),
        ("0.5e-1", "0.05"),
        ("500e-4", "0.05"),
        ("0", "0"),
        ("-0", "0"),
        ("-0.0", "0"),
        ("0e10", "0"),
        ("0.000e-5", "0"),
        ("-1.5", "-1.5"),
        ("-15e-1", "-1.5"),
        ("1.5e3", "1500"),
        ("123.456e1", "1234.56"),
        ("123.456e-1", "12.3456"),
        ("123.456e3", "123456"),
        ("123.456e4", "1234560"),
        ("1e-7", "0.0000001"),
        ("86400", "86400"),
        ("86400.0", "86400"),
        ("8.64e4", "86400"),
        ("1e21", "1000000000000000000000"),
        ("1e+21", "1000000000000000000000"),
        ("18446744073709551616", "18446744073709551616"),
        ("99999999999999999999999.5", "99999999999999999999999.5"),
        // Too many zeros to write out: significant digits and exponent, one text per value.
        ("1e2000", "1e2000"),
        ("10e1999", "1e2000"),
        ("1.5e2000", "15e1999"),
        ("-1.5e-2000", "-15e-2001"),
        // Not a number, or an exponent beyond 18 digits: kept as written.
        ("1e99999999999999999999", "1e99999999999999999999"),
        ("abc", "abc"),
        ("1.2.3", "1.2.3"),
        ("1e", "1e"),
        ("", ""),
        ("-", "-"),
    ];
    for (text, want) in cases {
        assert_eq!(number(text), *want, "{text}");
    }
    // Every finite double is written out in full, however small or large.
    let tiny = number("4.9e-324");
    assert!(tiny.starts_with("0.000") && tiny.ends_with("49"), "{tiny}");
    assert_eq!(tiny.len(), 2 + 323 + 2);
    let huge = number("1.7976931348623157e308");
    assert!(huge.starts_with("17976931348623157000") && !huge.contains(['.', 'e']));
    assert_eq!(huge.len(), 309);
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn canonical_text_sorts_members_and_keeps_array_order() {
    let cases: &[(&str, &str)] = &[
        (r#"{"b":1,"a":2}"#, r#"{"a":2,"b":1}"#),
        (
            " { \"b\" : [ 3 , 1.0 , 2e0 ] ,\n\t\"a\" : { \"y\" : null , \"x\" : true } } ",
            r#"{"a":{"x":true,"y":null},"b":[3,1,2]}"#,
        ),
        (r#"{"s":"\u0041\/\n\u00e9"}"#, "{\"s\":\"A/\\né\"}"),
        (
            r#"{"B":1,"a":2,"_":3,"aa":4}"#,
            r#"{"B":1,"_":3,"a":2,"aa":4}"#,
        ),
        (r#"[{"b":false,"a":"x"},[]]"#, r#"[{"a":"x","b":false},[]]"#),
        ("\"10.0\"", "\"10.0\""),
        ("-0.0", "0"),
        ("[]", "[]"),
        ("{}", "{}"),
    ];
    for (doc, want) in cases {
        assert_eq!(canon(doc), *want, "{doc}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn many_members_come_out_sorted() {
    // 500 keys in a scrambled order (a permutation: 7 is prime to 500), some sharing prefixes.
    let keys: Vec<String> = (0..500).map(|i| format!("k{}", (i * 7) % 500)).collect();
    let members: Vec<String> = keys.iter().map(|k| format!("\"{k}\":1")).collect();
    let doc = format!("{{{}}}", members.join(","));
    let mut sorted = keys.clone();
    sorted.sort();
    let want: Vec<String> = sorted.iter().map(|k| format!("\"{k}\":1")).collect();
    assert_eq!(canon(&doc), format!("{{{}}}", want.join(",")));
}

/// A configuration in the spellings it may arrive in: as written in a WasmPlugin (and turned
/// into JSON by the command), as Istio re-serializes it (members reordered, numbers as doubles),
/// pretty-printed.
const WRITTEN: &str = r#"{"variant_header":"x-canary-variant","policies":[{"name":"reviews",
    "hosts":["reviews.example.com"],
    "variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
    "guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,
             "max_failure_rate":0.05,"max_p99_ms":800}}]}"#;

const SAME: &[&str] = &[
    // Istio: keys sorted, whole numbers as doubles.
    r#"{"policies":[{"guard":{"baseline":"stable","max_failure_rate":0.05,"max_p99_ms":800,"min_requests":20,"variant":"canary","window_seconds":10},"hosts":["reviews.example.com"],"name":"reviews","variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}]}],"variant_header":"x-canary-variant"}"#,
    // Python's json.dumps, weights as floats (whole-number settings refuse `800.0`; Istio writes
    // a whole double as `800`).
    r#"{"policies": [{"guard": {"baseline": "stable", "max_failure_rate": 0.05, "max_p99_ms": 800, "min_requests": 20, "variant": "canary", "window_seconds": 10}, "hosts": ["reviews.example.com"], "name": "reviews", "variants": [{"name": "canary", "weight": 10.0}, {"name": "stable", "weight": 90.0}]}], "variant_header": "x-canary-variant"}"#,
    // Exponents (where fractions are accepted).
    r#"{"variant_header":"x-canary-variant","policies":[{"name":"reviews","hosts":["reviews.example.com"],"variants":[{"name":"canary","weight":1e1},{"name":"stable","weight":9E+1}],"guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,"max_failure_rate":5e-2,"max_p99_ms":800}}]}"#,
    // Pretty-printed, escapes.
    "{\n  \"policies\": [\n    {\n      \"name\": \"\\u0072eviews\",\n      \"hosts\": [\"reviews.example.com\"],\n      \"variants\": [\n        {\"weight\": 10.0, \"name\": \"canary\"},\n        {\"weight\": 90, \"name\": \"stable\"}\n      ],\n      \"guard\": {\"max_failure_rate\": 0.050, \"max_p99_ms\": 800, \"window_seconds\": 10, \"min_requests\": 20, \"variant\": \"canary\", \"baseline\": \"stable\"}\n    }\n  ],\n  \"variant_header\": \"x-canary-variant\"\n}\n",
];

const DIFFERENT: &[&str] = &[
    // The canary weight changed.
    r#"{"variant_header":"x-canary-variant","policies":[{"name":"reviews","hosts":["reviews.example.com"],"variants":[{"name":"canary","weight":25},{"name":"stable","weight":75}],"guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,"max_failure_rate":0.05,"max_p99_ms":800}}]}"#,
    // A threshold changed in the last digit.
    r#"{"variant_header":"x-canary-variant","policies":[{"name":"reviews","hosts":["reviews.example.com"],"variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],"guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,"max_failure_rate":0.051,"max_p99_ms":800}}]}"#,
    // The variants in the other order (arrays keep their order).
    r#"{"variant_header":"x-canary-variant","policies":[{"name":"reviews","hosts":["reviews.example.com"],"variants":[{"name":"stable","weight":90},{"name":"canary","weight":10}],"guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,"max_failure_rate":0.05,"max_p99_ms":800}}]}"#,
    // A member that is a default, written out.
    r#"{"variant_header":"x-canary-variant","expose_variant":false,"policies":[{"name":"reviews","hosts":["reviews.example.com"],"variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],"guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,"max_failure_rate":0.05,"max_p99_ms":800}}]}"#,
    // A string that reads like the number.
    r#"{"variant_header":"x-canary-variant","policies":[{"name":"reviews","hosts":["reviews.example.com"],"variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],"guard":{"variant":"canary","baseline":"stable","window_seconds":10,"min_requests":20,"max_failure_rate":"0.05","max_p99_ms":800}}]}"#,
];

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn the_same_configuration_however_written_has_one_fingerprint() {
    let fp = document_fingerprint(WRITTEN);
    for doc in SAME {
        assert_eq!(canon(doc), canon(WRITTEN), "{doc}");
        assert_eq!(document_fingerprint(doc), fp, "{doc}");
    }
    // Every number a double, as some serializers write them: the same text (the settings that
    // take whole numbers refuse `800.0`, so this one does not compile).
    let floats = r#"{"policies": [{"guard": {"baseline": "stable", "max_failure_rate": 0.05, "max_p99_ms": 800.0, "min_requests": 20.0, "variant": "canary", "window_seconds": 10.0}, "hosts": ["reviews.example.com"], "name": "reviews", "variants": [{"name": "canary", "weight": 10.0}, {"name": "stable", "weight": 90.0}]}], "variant_header": "x-canary-variant"}"#;
    assert_eq!(canon(floats), canon(WRITTEN));
    // The proxy's own fingerprint (shared state of guards) follows the bytes instead.
    assert_ne!(
        super::config(SAME[0]).fingerprint(),
        super::config(WRITTEN).fingerprint()
    );
    // Golden, computed independently (xxh3_64 of Python's `json.dumps(doc, sort_keys=True,
    // separators=(",", ":"))`); the wasm32 run checks the same under Node.
    assert_eq!(format!("{fp:016x}"), GOLDEN);
}

const GOLDEN: &str = "8b2c08b81d248746";

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn a_different_configuration_has_another_fingerprint() {
    let mut seen = vec![document_fingerprint(WRITTEN)];
    for doc in DIFFERENT {
        let Ok(config) = Config::from_json(doc.as_bytes()) else {
            // The string threshold is refused: its text still differs.
            assert_ne!(canon(doc), canon(WRITTEN), "{doc}");
            continue;
        };
        let fp = config.document_fingerprint();
        assert!(!seen.contains(&fp), "{doc}");
        seen.push(fp);
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn node_metadata_does_not_change_the_document_fingerprint() {
    let fp = document_fingerprint(WRITTEN);
    let node = config_in(
        WRITTEN,
        Some(r#"{"reviews":{"enabled":false}}"#),
        &[("app", "x")],
    );
    assert_eq!(node.document_fingerprint(), fp);
    assert_ne!(node.fingerprint(), super::config(WRITTEN).fingerprint());
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn fingerprints_are_written_as_16_hex_digits() {
    for doc in [WRITTEN, DIFFERENT[0]] {
        let text = format!("{:016x}", document_fingerprint(doc));
        assert_eq!(text.len(), 16);
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
