//! The protobuf reader of route metadata (`envoy.config.core.v3.Metadata`), against messages
//! built by a tiny encoder here: decoded values, unknown fields, truncation, nesting limits,
//! malformed input, and a message as Envoy serializes it.

use serde_json::{json, Value};

use crate::pb::{filter_metadata, MAX_DEPTH};
use crate::{Random, Reason, SimpleRequest, SplitMix64};

use super::{config, to_serde};

// ---------------------------------------------------------------------------------------------
// Encoder.

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn tag(field: u64, wire: u8, out: &mut Vec<u8>) {
    varint(field << 3 | u64::from(wire), out);
}

/// A length-delimited field.
fn bytes_field(field: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    tag(field, LEN, &mut out);
    varint(data.len() as u64, &mut out);
    out.extend_from_slice(data);
    out
}

fn varint_field(field: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    tag(field, VARINT, &mut out);
    varint(v, &mut out);
    out
}

fn fixed64_field(field: u64, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    tag(field, FIXED64, &mut out);
    out.extend_from_slice(&v.to_le_bytes());
    out
}

fn fixed32_field(field: u64, v: u32) -> Vec<u8> {
    let mut out = Vec::new();
    tag(field, FIXED32, &mut out);
    out.extend_from_slice(&v.to_le_bytes());
    out
}

/// A map entry `{key = 1, value = 2}`.
fn entry(key: &[u8], value: &[u8]) -> Vec<u8> {
    [bytes_field(1, key), bytes_field(2, value)].concat()
}

/// google.protobuf.Value, each kind.
fn null() -> Vec<u8> {
    varint_field(1, 0)
}

fn num(f: f64) -> Vec<u8> {
    fixed64_field(2, f.to_bits())
}

fn string(s: &str) -> Vec<u8> {
    bytes_field(3, s.as_bytes())
}

fn boolean(b: bool) -> Vec<u8> {
    varint_field(4, u64::from(b))
}

fn struct_value(fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    bytes_field(5, &strukt(fields))
}

fn list(items: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = items.iter().flat_map(|i| bytes_field(1, i)).collect();
    bytes_field(6, &body)
}

/// google.protobuf.Struct: `fields = 1`, a map<string, Value>.
fn strukt(fields: &[(&str, Vec<u8>)]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|(k, v)| bytes_field(1, &entry(k.as_bytes(), v)))
        .collect()
}

/// envoy.config.core.v3.Metadata: `filter_metadata = 1`, a map<string, Struct>.
fn metadata(namespaces: &[(&str, Vec<u8>)]) -> Vec<u8> {
    namespaces
        .iter()
        .flat_map(|(ns, s)| bytes_field(1, &entry(ns.as_bytes(), s)))
        .collect()
}

/// Decodes `namespace`, failing the test on an error.
fn decode(bytes: &[u8], namespace: &str) -> Option<Value> {
    match filter_metadata(bytes, namespace) {
        Ok(v) => v.as_ref().map(to_serde),
        Err(e) => panic!("should decode, got {e}: {bytes:?}"),
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn encoder_matches_the_protobuf_encoding() {
    let mut v = Vec::new();
    for (n, want) in [
        (0u64, &[0x00u8][..]),
        (1, &[0x01]),
        (127, &[0x7f]),
        (128, &[0x80, 0x01]),
        (300, &[0xac, 0x02]),
        (
            u64::MAX,
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
        ),
    ] {
        v.clear();
        varint(n, &mut v);
        assert_eq!(v, want, "{n}");
    }
    // The examples of the protobuf encoding guide.
    assert_eq!(varint_field(1, 150), [0x08, 0x96, 0x01]);
    assert_eq!(bytes_field(2, b"testing"), b"\x12\x07testing");
    assert_eq!(num(50.0), b"\x11\x00\x00\x00\x00\x00\x00I@");
    assert_eq!(boolean(false), b" \x00");
}

/// The namespace of the tests, with one value of every kind.
fn every_kind() -> Vec<u8> {
    strukt(&[
        ("policy", string("reviews")),
        ("empty", string("")),
        ("unicode", string("ユーザー é")),
        ("weight", num(12.5)),
        ("negative", num(-3.0)),
        ("zero", num(0.0)),
        ("big", num(1e300)),
        ("yes", boolean(true)),
        ("no", boolean(false)),
        ("nothing", null()),
        (
            "nested",
            struct_value(&[(
                "a",
                struct_value(&[("b", list(&[num(1.0), string("x"), struct_value(&[])]))]),
            )]),
        ),
        (
            "list",
            list(&[
                string("a"),
                boolean(true),
                null(),
                list(&[]),
                list(&[num(2.0)]),
            ]),
        ),
        ("no list", list(&[])),
        ("no struct", struct_value(&[])),
        ("", string("empty key")),
        ("ключ", string("unicode key")),
    ])
}

fn every_kind_json() -> Value {
    json!({
        "policy": "reviews",
        "empty": "",
        "unicode": "ユーザー é",
        "weight": 12.5,
        "negative": -3.0,
        "zero": 0.0,
        "big": 1e300,
        "yes": true,
        "no": false,
        "nothing": null,
        "nested": {"a": {"b": [1.0, "x", {}]}},
        "list": ["a", true, null, [], [2.0]],
        "no list": [],
        "no struct": {},
        "": "empty key",
        "ключ": "unicode key",
    })
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn decodes_struct_values() {
    let other = strukt(&[("canary-router", string("not this one")), ("n", num(7.0))]);
    let bytes = metadata(&[("other", other.clone()), ("canary-router", every_kind())]);
    assert_eq!(decode(&bytes, "canary-router"), Some(every_kind_json()));
    assert_eq!(
        decode(&bytes, "other"),
        Some(json!({"canary-router": "not this one", "n": 7.0}))
    );
    // Numbers are f64: 50 is 50.0, as serde_json sees it.
    let fifty = decode(&metadata(&[("ns", strukt(&[("w", num(50.0))]))]), "ns");
    assert_eq!(fifty, Some(json!({"w": 50.0})));
    assert_ne!(fifty, Some(json!({"w": 50})));
    assert_eq!(fifty.as_ref().and_then(|v| v["w"].as_f64()), Some(50.0));
    // Absent namespaces.
    // (metadata, namespace)
    let absent: Vec<(Vec<u8>, &str)> = vec![
        (bytes.clone(), "canary"),
        (bytes.clone(), "Canary-Router"),
        (bytes.clone(), ""),
        (Vec::new(), "canary-router"),
        (metadata(&[("other", other)]), "canary-router"),
        // Only typed_filter_metadata (field 2), holding an Any named like the namespace.
        (
            bytes_field(
                2,
                &entry(b"canary-router", &bytes_field(1, b"type.googleapis.com/x")),
            ),
            "canary-router",
        ),
    ];
    for (m, ns) in absent {
        assert_eq!(filter_metadata(&m, ns), Ok(None), "{ns:?} in {m:?}");
    }
    // A namespace with no value, or an empty Struct, is an empty object.
    let key_only = bytes_field(1, &bytes_field(1, b"canary-router"));
    assert_eq!(decode(&key_only, "canary-router"), Some(json!({})));
    let empty = metadata(&[("canary-router", Vec::new())]);
    assert_eq!(decode(&empty, "canary-router"), Some(json!({})));
    // An empty namespace name is a name like any other.
    let unnamed = metadata(&[("", strukt(&[("k", null())]))]);
    assert_eq!(decode(&unnamed, ""), Some(json!({"k": null})));
    // A struct entry without key has the empty key; a Value with no kind set is null.
    let odd = bytes_field(
        1,
        &entry(
            b"ns",
            &[
                bytes_field(1, &bytes_field(2, &string("no key"))),
                bytes_field(1, &entry(b"unset", b"")),
            ]
            .concat(),
        ),
    );
    assert_eq!(
        decode(&odd, "ns"),
        Some(json!({"": "no key", "unset": null}))
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn repeated_keys_and_kinds_last_one_wins() {
    // As in protobuf: the last entry of a map key wins, and the last member of a oneof.
    let twice = metadata(&[
        ("canary-router", strukt(&[("v", string("first"))])),
        (
            "canary-router",
            strukt(&[("v", string("second")), ("v", string("third"))]),
        ),
    ]);
    assert_eq!(decode(&twice, "canary-router"), Some(json!({"v": "third"})));
    let kinds = strukt(&[("v", [string("s"), num(1.0), boolean(true)].concat())]);
    assert_eq!(
        decode(&metadata(&[("ns", kinds)]), "ns"),
        Some(json!({"v": true}))
    );
    let back_to_null = strukt(&[("v", [string("s"), null()].concat())]);
    assert_eq!(
        decode(&metadata(&[("ns", back_to_null)]), "ns"),
        Some(json!({"v": null}))
    );
}

/// Unknown fields of every skippable wire type (varint, fixed64, bytes, fixed32), with small
/// and large field numbers (none below 7: Value uses 1 to 6).
fn unknown(seed: u64) -> Vec<u8> {
    let field = |n: u64| [7, 15, 16, 2047, 2048, (1 << 29) - 1][(n % 6) as usize];
    [
        varint_field(field(seed), u64::MAX),
        fixed64_field(field(seed + 1), 0x0123_4567_89ab_cdef),
        bytes_field(field(seed + 2), b"\xff\x00 not a message"),
        fixed32_field(field(seed + 3), 7),
        bytes_field(field(seed + 4), &[]),
        varint_field(field(seed + 5), 0),
    ]
    .concat()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn unknown_fields_are_skipped() {
    // A Value with unknown fields around its kind.
    let value = |kind: Vec<u8>, seed| [unknown(seed), kind, unknown(seed + 1)].concat();
    // A Struct entry with unknown fields around key and value.
    let field = |key: &str, v: Vec<u8>, seed| {
        bytes_field(
            1,
            &[
                unknown(seed),
                bytes_field(1, key.as_bytes()),
                unknown(seed + 1),
                bytes_field(2, &v),
                unknown(seed + 2),
            ]
            .concat(),
        )
    };
    let inner = [
        unknown(1),
        field("n", value(num(2.5), 2), 3),
        unknown(4),
        field("s", value(string("x"), 5), 6),
    ]
    .concat();
    let list_body = [
        unknown(7),
        bytes_field(1, &value(boolean(true), 8)),
        unknown(9),
        bytes_field(1, &value(null(), 10)),
        // ListValue.values is field 1: a varint or fixed field 1 is not a value.
        varint_field(1, 1),
        fixed64_field(1, 1),
        fixed32_field(1, 1),
    ]
    .concat();
    let top = [
        field("inner", value(bytes_field(5, &inner), 11), 12),
        unknown(13),
        field("list", value(bytes_field(6, &list_body), 14), 15),
        // Struct.fields is field 1: a varint field 1 is not an entry.
        varint_field(1, 5),
        field("policy", value(string("reviews"), 16), 17),
    ]
    .concat();
    let ns_entry = [
        unknown(18),
        bytes_field(1, b"canary-router"),
        unknown(19),
        bytes_field(2, &top),
        unknown(20),
    ]
    .concat();
    let bytes = [
        unknown(21),
        // Metadata.filter_metadata is field 1: other wire types are not entries.
        varint_field(1, 1),
        fixed64_field(1, 1),
        fixed32_field(1, 1),
        // typed_filter_metadata (2) and an unknown field with a plausible entry inside.
        bytes_field(2, &entry(b"canary-router", b"\x0a\x01x")),
        bytes_field(9, &entry(b"canary-router", &strukt(&[("x", null())]))),
        bytes_field(1, &ns_entry),
        unknown(22),
    ]
    .concat();
    assert_eq!(
        decode(&bytes, "canary-router"),
        Some(json!({
            "inner": {"n": 2.5, "s": "x"},
            "list": [true, null],
            "policy": "reviews",
        }))
    );
}

/// A message with two namespaces: the `canary-router` entry and the `other` entry.
fn sample_parts() -> (Vec<u8>, Vec<u8>) {
    let first = metadata(&[(
        "canary-router",
        strukt(&[
            ("policy", string("reviews")),
            ("enabled", boolean(true)),
            (
                "variants",
                list(&[
                    struct_value(&[("name", string("canary")), ("weight", num(25.0))]),
                    struct_value(&[("name", string("stable")), ("weight", num(75.0))]),
                ]),
            ),
            (
                "extra",
                struct_value(&[("n", null()), ("l", list(&[list(&[])]))]),
            ),
        ]),
    )]);
    let second = metadata(&[("other", strukt(&[("k", string("v"))]))]);
    (first, second)
}

fn sample() -> Vec<u8> {
    let (first, second) = sample_parts();
    [first, second].concat()
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn truncated_input_is_an_error_never_a_panic() {
    let full = sample();
    // The boundaries between the two top-level entries: any other cut is inside a field.
    let split_at = sample_parts().0.len();
    assert!(split_at > 128, "the first entry has a 2-byte length");
    let boundaries = [0, split_at, full.len()];
    for n in 0..=full.len() {
        let prefix = &full[..n];
        for ns in ["canary-router", "other", "absent"] {
            let got = filter_metadata(prefix, ns);
            assert_eq!(
                got.is_ok(),
                boundaries.contains(&n),
                "prefix of {n} bytes for {ns}: {got:?}"
            );
        }
    }
    assert_eq!(filter_metadata(&full[..split_at], "other"), Ok(None));
    assert_eq!(decode(&full[split_at..], "other"), Some(json!({"k": "v"})));
    // Truncating the inner Struct (with the outer lengths fixed up) is an error too.
    let inner = strukt(&[("policy", string("reviews")), ("w", num(1.0))]);
    for n in 0..inner.len() {
        let bytes = metadata(&[("canary-router", inner[..n].to_vec())]);
        let got = filter_metadata(&bytes, "canary-router");
        let boundary = n == 0 || n == strukt(&[("policy", string("reviews"))]).len();
        assert_eq!(got.is_ok(), boundary, "{n}: {got:?}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn corrupted_input_never_panics() {
    let full = sample();
    // Every byte of the message replaced by a few values.
    for i in 0..full.len() {
        for b in [0x00, 0x01, 0x07, 0x0a, 0x0b, 0x0c, 0x7f, 0x80, 0xff] {
            let mut m = full.clone();
            m[i] = b;
            for ns in ["canary-router", "other"] {
                let _ = filter_metadata(&m, ns);
            }
        }
    }
    // Random bytes, and random bytes after a valid start.
    let mut rng = SplitMix64::new(0xfeed);
    for len in 0..200 {
        for _ in 0..20 {
            let mut m = vec![0u8; len];
            rng.fill(&mut m);
            let _ = filter_metadata(&m, "canary-router");
            let start = (rng.next_u64() % full.len() as u64) as usize;
            let mut m2 = full[..start].to_vec();
            m2.extend_from_slice(&m);
            let _ = filter_metadata(&m2, "canary-router");
        }
    }
}

/// A Struct holding `levels` nested containers (`list` or `struct`) under key `k`, the
/// innermost holding a string. With the top Struct, `levels + 1` containers are nested.
fn nested(levels: usize, lists: bool) -> Vec<u8> {
    let mut v = string("leaf");
    for _ in 0..levels {
        v = if lists {
            list(&[v])
        } else {
            struct_value(&[("k", v)])
        };
    }
    metadata(&[("ns", strukt(&[("k", v)]))])
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn nesting_is_bounded() {
    // Lists: MAX_DEPTH containers (the top Struct included) decode, one more does not.
    let ok = filter_metadata(&nested(MAX_DEPTH - 1, true), "ns").expect("decodes");
    let mut v = to_serde(&ok.expect("present"));
    let mut depth = 1;
    while let Some(inner) = v.get("k").or_else(|| v.get(0)).cloned() {
        v = inner;
        depth += 1;
    }
    assert_eq!((depth, v), (MAX_DEPTH + 1, json!("leaf")));
    for levels in [MAX_DEPTH, MAX_DEPTH + 1, 100, 2_000] {
        for lists in [true, false] {
            let got = filter_metadata(&nested(levels, lists), "ns");
            assert!(
                got.as_ref()
                    .is_err_and(|e| *e == format!("nested deeper than {MAX_DEPTH}")),
                "{levels} levels (lists: {lists}): {got:?}"
            );
            // Only the namespace asked for is decoded.
            assert_eq!(filter_metadata(&nested(levels, lists), "other"), Ok(None));
        }
    }
    // A few levels of structs are fine.
    let got = decode(&nested(3, false), "ns");
    assert_eq!(got, Some(json!({"k": {"k": {"k": {"k": "leaf"}}}})));
}

/// `MAX_DEPTH` is "the deepest nesting of structs and lists accepted", and lists nest
/// `MAX_DEPTH` deep; structs should too.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn structs_nest_as_deep_as_lists() {
    assert!(filter_metadata(&nested(MAX_DEPTH - 1, true), "ns").is_ok());
    let got = filter_metadata(&nested(MAX_DEPTH - 1, false), "ns");
    assert!(got.is_ok(), "{got:?}");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn malformed_input_is_an_error() {
    let ns = |s: Vec<u8>| metadata(&[("canary-router", s)]);
    let raw_field = |key: &[u8], value: Vec<u8>| bytes_field(1, &entry(key, &value));
    let mut too_long_varint = vec![0x08];
    too_long_varint.extend_from_slice(&[0x80; 10]);
    too_long_varint.push(0x01);
    let mut huge_length = vec![0x0a];
    varint(u64::MAX, &mut huge_length);
    let mut past_end = vec![0x0a];
    varint(1 << 20, &mut past_end);
    // (what, metadata, part of the error)
    #[rustfmt::skip]
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("invalid UTF-8 key", ns(raw_field(b"po\xfflicy", string("x"))), "key is not UTF-8"),
        ("invalid UTF-8 key, nested", ns(strukt(&[("a", bytes_field(5, &raw_field(b"\xc3", null())))])),
            "key is not UTF-8"),
        ("invalid UTF-8 string", ns(strukt(&[("k", bytes_field(3, b"\xed\xa0\x80"))])), "string is not UTF-8"),
        ("invalid UTF-8 string in a list", ns(strukt(&[("k", list(&[bytes_field(3, b"\x80")]))])),
            "string is not UTF-8"),
        ("NaN", ns(strukt(&[("k", num(f64::NAN))])), "number is not finite"),
        ("infinity", ns(strukt(&[("k", num(f64::NEG_INFINITY))])), "number is not finite"),
        ("wire type 3 at the top", [sample(), vec![0x0b]].concat(), "unsupported wire type 3"),
        ("wire type 4 at the top", vec![0x0c], "unsupported wire type 4"),
        ("wire type 6", vec![0x0e, 0x00], "unsupported wire type 6"),
        ("wire type 7", vec![0x0f], "unsupported wire type 7"),
        ("wire type 3 in the entry", bytes_field(1, &[bytes_field(1, b"canary-router"), vec![0x1b]].concat()),
            "unsupported wire type 3"),
        ("wire type 3 in the Struct", ns([strukt(&[("k", null())]), vec![0x13]].concat()),
            "unsupported wire type 3"),
        ("wire type 4 in a Value", ns(strukt(&[("k", [string("s"), vec![0x3c]].concat())])),
            "unsupported wire type 4"),
        ("wire type 3 in a ListValue", ns(strukt(&[("k", bytes_field(6, &[0x0b]))])),
            "unsupported wire type 3"),
        ("varint too long", too_long_varint, "varint too long"),
        ("length past the end", past_end, "truncated field"),
        ("huge length", huge_length, "length overflow"),
        ("truncated fixed64", ns(strukt(&[("k", vec![0x11, 0, 0, 0])])), "truncated field"),
        ("truncated fixed32", vec![0x0d, 1, 2], "truncated field"),
        ("tag without value", vec![0x08], "truncated varint"),
    ];
    for (what, bytes, want) in cases {
        let got = filter_metadata(&bytes, "canary-router");
        assert!(
            got.as_ref().is_err_and(|e| e.contains(want)),
            "{what}: {got:?}"
        );
    }
    // Only the namespace asked for is decoded: a bad value elsewhere does not matter, and
    // namespace names are compared as bytes.
    let bad_other = [
        raw_field(b"other", strukt(&[("k", bytes_field(3, b"\xff"))])),
        raw_field(b"canary-router", strukt(&[("k", null())])),
        raw_field(b"canary-router\xff", Vec::new()),
    ]
    .concat();
    assert_eq!(
        decode(&bad_other, "canary-router"),
        Some(json!({"k": null}))
    );
    assert!(filter_metadata(&bad_other, "other").is_err());
}

/// Route metadata as Envoy 1.40 serialized it (property `xds.route_metadata`) for
/// `filter_metadata: {canary-router: {policy: reviews, enabled: false, variants: [{name: canary,
/// weight: 50}, {name: stable, weight: 50}]}}`, in Envoy's map order.
const ENVOY_ROUTE_METADATA: &[u8] = b"\n\x9c\x01\n\rcanary-router\x12\x8a\x01\n\r\n\x07enabled\x12\x02 \x00\nd\n\x08variants\x12X2V\n)*'\n\x10\n\x04name\x12\x08\x1a\x06canary\n\x13\n\x06weight\x12\t\x11\x00\x00\x00\x00\x00\x00I@\n)*'\n\x13\n\x06weight\x12\t\x11\x00\x00\x00\x00\x00\x00I@\n\x10\n\x04name\x12\x08\x1a\x06stable\n\x13\n\x06policy\x12\t\x1a\x07reviews";

/// [`ENVOY_ROUTE_METADATA`] as reconstructed from a log: both outer lengths are 7 short
/// (149 and 131 for 156 and 138 bytes).
const AS_LOGGED: &[u8] = b"\n\x95\x01\n\rcanary-router\x12\x83\x01\n\r\n\x07enabled\x12\x02 \x00\nd\n\x08variants\x12X2V\n)*'\n\x10\n\x04name\x12\x08\x1a\x06canary\n\x13\n\x06weight\x12\t\x11\x00\x00\x00\x00\x00\x00I@\n)*'\n\x13\n\x06weight\x12\t\x11\x00\x00\x00\x00\x00\x00I@\n\x10\n\x04name\x12\x08\x1a\x06stable\n\x13\n\x06policy\x12\t\x1a\x07reviews";

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn envoy_route_metadata() {
    // The same message built field by field.
    let built = metadata(&[(
        "canary-router",
        strukt(&[
            ("enabled", boolean(false)),
            (
                "variants",
                list(&[
                    struct_value(&[("name", string("canary")), ("weight", num(50.0))]),
                    struct_value(&[("weight", num(50.0)), ("name", string("stable"))]),
                ]),
            ),
            ("policy", string("reviews")),
        ]),
    )]);
    assert_eq!(built, ENVOY_ROUTE_METADATA);
    let value = decode(ENVOY_ROUTE_METADATA, "canary-router").expect("namespace present");
    assert_eq!(
        value,
        json!({
            "policy": "reviews",
            "enabled": false,
            "variants": [{"name": "canary", "weight": 50.0}, {"name": "stable", "weight": 50.0}],
        })
    );
    // The same bytes with the two outer lengths 7 short (as first logged): rejected, not
    // misread.
    let mut short = ENVOY_ROUTE_METADATA.to_vec();
    short[1] -= 7;
    short[19] -= 7;
    assert_eq!(&short[..3], b"\n\x95\x01");
    assert_eq!(&short[18..21], b"\x12\x83\x01");
    assert_eq!(short, AS_LOGGED);
    assert!(filter_metadata(&short, "canary-router").is_err());

    // As a route override of a reviews configuration: disabled, weights 50/50.
    let c = config(
        r#"{"policies":[{"name":"reviews","hosts":["reviews"],
        "variants":[{"name":"canary","weight":10},{"name":"stable","weight":90}],
        "sticky":{"keys":[{"header":"x-user-id"}]}}]}"#,
    );
    // The decoded value itself (numbers as the reader wrote them), not its `json!` copy.
    let decoded = filter_metadata(ENVOY_ROUTE_METADATA, "canary-router")
        .expect("decodes")
        .expect("present");
    let r = match c.route_override(&decoded, "route[reviews].filter_metadata.canary-router") {
        Ok(Some(r)) => r,
        other => panic!("should compile: {other:?}"),
    };
    assert_eq!(r.policy(), Some(0));
    let split = r.split_for(0).expect("split");
    assert_eq!(split.weights_bp(), [5000, 5000]);
    assert!(!split.enabled());
    // Any request on the route, whatever its host: the policy, turned off.
    for req in [
        SimpleRequest::new("reviews", "/").header("x-user-id", "alice"),
        SimpleRequest::new("elsewhere", "/"),
    ] {
        let d = c
            .decide_on_route(&req, Some(&r), &mut SplitMix64::new(0))
            .expect("decision");
        assert_eq!(
            (d.policy, d.variant, d.reason, d.bucket, d.minted),
            (0, 1, Reason::Disabled, None, None)
        );
    }
    // Turned back on, the route's 50/50 applies.
    let mut on = value.clone();
    on["enabled"] = json!(true);
    let r = match c.route_override(&super::own(&on), "route") {
        Ok(Some(r)) => r,
        other => panic!("should compile: {other:?}"),
    };
    let split = r.split_for(0).expect("split");
    assert_eq!(
        (split.weights_bp(), split.enabled()),
        (&[5000, 5000][..], true)
    );
}
