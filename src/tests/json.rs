//! The JSON reader: values, strings and escapes, syntax errors with their path and position,
//! nesting limits, exact decimal numbers; checked against serde_json where both accept.

use crate::error::quote;
use crate::json::{parse, Value, MAX_DEPTH};
use crate::number::{fixed_point, FixedError};

use super::to_serde;

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn reads_what_serde_json_reads() {
    let docs = [
        r#"{}"#,
        r#"[]"#,
        r#" {"a": [1, 2.5, -3e2, 0, -0.0, 1E+2, 12.5e-1], "b": {"c": null, "d": true, "e": false}} "#,
        r#""plain""#,
        r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \u263A \ud83d\ude00""#,
        r#"["é", "☺", "😀", ""]"#,
        "\n\t[ 1 ,\r\n 2 ]\n",
        r#"{"k": {"k": {"k": [[[[]]]]}}}"#,
        r#"123"#,
        r#"null"#,
    ];
    for doc in docs {
        let ours = parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{doc}: {e:?}"));
        let theirs: serde_json::Value = serde_json::from_str(doc).unwrap();
        // Numbers compared as f64 on both sides.
        let theirs_f64 = to_serde(&parse(theirs.to_string().as_bytes()).unwrap());
        assert_eq!(to_serde(&ours), theirs_f64, "{doc}");
        // Written back and read again: the same value.
        assert_eq!(parse(ours.to_json().as_bytes()).unwrap(), ours, "{doc}");
    }
    // Numbers keep their text; members keep order and duplicates (decoders report them).
    assert_eq!(
        parse(br#"{"w": 12.50, "w": 1e1}"#).unwrap(),
        Value::Object(vec![
            ("w".into(), Value::Number("12.50".into())),
            ("w".into(), Value::Number("1e1".into())),
        ])
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn syntax_errors_say_what_and_where() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, usize, usize)] = &[
        // (document, path, message, line, column)
        ("", "", "EOF while parsing a value", 1, 1),
        ("policies: []", "", "expected value", 1, 1),
        ("{\"a\": 1,}", "", "trailing comma", 1, 9),
        ("{\"a\": [1, 2,]}", "a", "trailing comma", 1, 13),
        ("{\"a\": [1, 2}", "a", "expected `,` or `]`", 1, 12),
        ("{\"a\" 1}", "", "expected `:`", 1, 6),
        ("{a: 1}", "", "key must be a string", 1, 2),
        ("{\"p\": [{\"x\": tru}]}", "p[0].x", "expected value", 1, 14),
        ("{\"p\": [{\"x\": 01}]}", "p[0]", "expected `,` or `}`", 1, 15),
        ("{\"p\": -}", "p", "invalid number", 1, 8),
        ("{\"p\": 1.}", "p", "invalid number", 1, 9),
        ("{\"p\": 1e}", "p", "invalid number", 1, 9),
        ("{\"p\": \"a\\qb\"}", "p", "invalid escape", 1, 11),
        ("{\"p\": \"a\nb\"}", "p", "control character in string", 1, 9),
        ("{\"p\": \"\\ud800\"}", "p", "unpaired surrogate", 1, 14),
        ("{\"p\": \"\\u12\"}", "p", "invalid \\u escape", 1, 12),
        ("{\"p\": \"abc", "p", "EOF while parsing a string", 1, 11),
        ("{\"p\": [1", "p", "EOF while parsing a list", 1, 9),
        ("{\"a\":\n  {\"b\": 1", "a", "EOF while parsing an object", 2, 10),
        ("{} {}", "", "trailing characters", 1, 4),
        ("{\"s\": \"\u{0}\"}", "s", "control character", 1, 8),
    ];
    for &(doc, path, message, line, column) in cases {
        let e = parse(doc.as_bytes()).expect_err(doc);
        assert_eq!(
            (e.path.as_str(), e.line, e.column),
            (path, line, column),
            "{doc:?}: {e:?}"
        );
        assert!(e.message.contains(message), "{doc:?}: {e:?}");
        // serde_json refuses every one of them too.
        assert!(
            serde_json::from_str::<serde_json::Value>(doc).is_err(),
            "{doc:?}"
        );
    }
    // Not UTF-8 inside a string.
    let e = parse(b"{\"s\": \"\xff\"}").unwrap_err();
    assert_eq!(
        (e.path.as_str(), e.message.as_str()),
        ("s", "string is not valid UTF-8")
    );
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn nesting_is_bounded() {
    for (open, close) in [("[", "]"), ("{\"k\":", "}")] {
        let doc = |n: usize| format!("{}1{}", open.repeat(n), close.repeat(n));
        assert!(parse(doc(MAX_DEPTH).as_bytes()).is_ok());
        for n in [MAX_DEPTH + 1, 100_000] {
            let e = parse(doc(n).as_bytes()).unwrap_err();
            assert!(e.message.contains("nested too deeply"), "{e:?}");
        }
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn numbers_convert_exactly() {
    use FixedError::{Precision, Range};
    #[rustfmt::skip]
    let cases: &[(&str, Result<u64, FixedError>)] = &[
        // Percent with two decimals, as basis points (limit 10 000).
        ("0", Ok(0)), ("10", Ok(1000)), ("10.5", Ok(1050)), ("10.05", Ok(1005)),
        ("99.99", Ok(9999)), ("100", Ok(10000)), ("100.00", Ok(10000)), ("0.01", Ok(1)),
        ("1e1", Ok(1000)), ("1E+2", Ok(10000)), ("2.5e1", Ok(2500)), ("1234e-2", Ok(1234)),
        ("-0", Ok(0)), ("-0.0", Ok(0)), ("0.000", Ok(0)), ("10.50000", Ok(1050)),
        ("0.001", Err(Precision)), ("9.999", Err(Precision)), ("1e-3", Err(Precision)),
        ("100.01", Err(Range)), ("100.001", Err(Range)), ("101", Err(Range)),
        ("-1", Err(Range)), ("-0.001", Err(Range)), ("1e3", Err(Range)),
        ("1e999999999999", Err(Range)), ("1e-999999999999", Err(Precision)),
        ("0e999999999999", Ok(0)),
        ("18446744073709551616", Err(Range)),
    ];
    for &(text, want) in cases {
        assert_eq!(fixed_point(text, 2, 10_000), want, "{text}");
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn quoting_and_describing() {
    assert_eq!(quote("a \"b\"\\\n\t\u{1}é"), r#""a \"b\"\\\n\t\u0001é""#);
    for (v, want) in [
        (Value::Null, "null"),
        (Value::Bool(true), "boolean `true`"),
        (Value::Number("3".into()), "integer `3`"),
        (Value::Number("-1.5e3".into()), "floating point `-1.5e3`"),
        (Value::String("x\"".into()), r#"string "x\"""#),
        (Value::Array(vec![]), "sequence"),
        (Value::Object(vec![]), "map"),
    ] {
        assert_eq!(v.describe(), want);
    }
}
