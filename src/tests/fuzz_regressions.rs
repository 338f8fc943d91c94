//! Inputs the fuzz targets (tests/fuzz, `scripts/fuzz.sh`) found, reproduced natively. Each
//! input is also kept in tests/fuzz/regressions/<target>/ and replayed by the fuzzer.

use crate::regex::Regex;

/// regex: `[--a]` is the range `-`..`a` in RE2 but a class difference in Rust `regex` (and
/// `-` or `a` in regex-lite); the engine took RE2's reading and matched `:`, which neither
/// reference does. Class set operators (`--`, `&&`, `~~`) are now refused, as regex-lite
/// refuses them after a class item.
/// (tests/fuzz/regressions/regex/class-set-operator)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn class_set_operators_are_refused() {
    for (pattern, op, at) in [
        ("[--a]", "--", 1),
        ("[!--b]", "--", 2),
        ("[a&&b]", "&&", 2),
        ("[a~~b]", "~~", 2),
        ("x[0-9--5]", "--", 5),
    ] {
        let e = Regex::new(pattern).unwrap_err();
        assert_eq!(
            e,
            format!("ambiguous '{op}' in a character class (a set operation in Rust regex); escape it at position {at}"),
            "{pattern:?}"
        );
    }
    // A single '-', '&' or '~', and escaped doubles, are still literals.
    for (pattern, text) in [
        ("[-a]+", "-a"),
        ("[a-]+", "a-"),
        ("[a&b~]+", "&~"),
        ("[\\-\\-a]+", "-a"),
        ("[\\&&]+", "&&"),
        ("[a-c-]+", "b-"),
    ] {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        assert!(re.is_full_match(text), "{pattern:?} on {text:?}");
        let lite = super::regex::reference(pattern).unwrap();
        assert!(lite.is_match(text), "regex-lite: {pattern:?} on {text:?}");
    }
}

/// regex: not a bug of the engine, a gap of the reference. `(?i)[\x1b-c]` holds `A`..`Z`, so
/// it matches `x` case-insensitively in RE2 and Rust `regex`; regex-lite answers no (it folds
/// only ranges within letters). The core keeps RE2's answer (the pre-check hands regex-lite the
/// folded class spelled out); the fuzz target asks `regex` when the two disagree.
/// (tests/fuzz/regressions/regex/regex-lite-case-fold-range)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn case_folding_of_ranges_that_span_letters() {
    for pattern in ["(?i)[\u{1b}-c]+", "(?i)[A-c]", "(?i)[@-c]"] {
        let re = Regex::new(pattern).unwrap();
        assert!(re.is_full_match("x"), "{pattern:?}");
        assert!(re.is_full_match("C"), "{pattern:?}");
        assert!(!re.is_full_match("~"), "{pattern:?}");
    }
}

/// regex: `\<` was the literal `<` (RE2's reading) but is a word-start assertion in Rust
/// `regex` and regex-lite, so `\<(?i)ab` matched `<ab` only, and not `ab` as they do. `\<` and
/// `\>` are now refused as unsupported escapes. (tests/fuzz/regressions/regex/word-start-escape)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn word_start_and_end_escapes_are_refused() {
    for (pattern, want) in [
        ("\\<(?i)ab", "unsupported escape \\< at position 2"),
        ("ab\\>", "unsupported escape \\> at position 4"),
        ("[\\<]", "unsupported escape \\< at position 3"),
    ] {
        assert_eq!(Regex::new(pattern).unwrap_err(), want, "{pattern:?}");
    }
    // Unescaped, they are literals in every engine.
    let re = Regex::new("<a>").unwrap();
    assert!(re.is_full_match("<a>"));
    assert!(super::regex::reference("<a>").unwrap().is_match("<a>"));
}

/// regex: a repetition right after a flag group (`a(?i)+`) repeated the item before the
/// group (`a+`); RE2 and Rust `regex` refuse it (regex-lite accepts it). Now refused like `*a`.
/// (tests/fuzz/regressions/regex/repeated-flag-group)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn repetition_of_a_flag_group_is_refused() {
    for (pattern, at) in [("a(?i)+", 5), ("(?i)*", 4), ("ab(?s)?", 6), ("a(?m){2}", 5)] {
        assert_eq!(
            Regex::new(pattern).unwrap_err(),
            format!("repetition operator missing expression at position {at}"),
            "{pattern:?}"
        );
    }
    // A group with flags and an expression is an expression.
    let re = Regex::new("a(?i:b)+").unwrap();
    assert!(re.is_full_match("abB"));
    assert!(!re.is_full_match("a"));
}

/// regex: `[^]-q…]` read the leading `]` as the start of the range `]`..`q` (RE2's reading), so
/// `a` was outside the negated class; Rust `regex` and regex-lite take `]`, `-` and `q` as three
/// literals and match `a`. A leading `]` followed by a range dash is now refused.
/// (tests/fuzz/regressions/regex/leading-bracket-range)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn range_from_a_leading_bracket_is_refused() {
    for (pattern, at) in [
        ("[^]-q]", 2),
        ("[]-a]", 1),
        ("x[]-z0]", 2),
        ("[^]-qqq1q]", 2),
    ] {
        assert_eq!(
            Regex::new(pattern).unwrap_err(),
            format!("ambiguous range after a leading ']' in a character class (a range in RE2, literals in Rust regex); escape it at position {at}"),
            "{pattern:?}"
        );
    }
    // A leading ']' alone or with a trailing '-', an escaped one in a range, and a ']' later in
    // the class read the same everywhere.
    for (pattern, yes, no) in [
        ("[]a]+", "]a", "b"),
        ("[]-]+", "]-", "a"),
        ("[^]-]", "a", "-"),
        ("[\\]-a]+", "]^a", "b"),
        ("[a]-c]", "a-c]", "b-c]"),
    ] {
        let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        let lite = super::regex::reference(pattern).unwrap();
        assert!(re.is_full_match(yes), "{pattern:?} on {yes:?}");
        assert!(lite.is_match(yes), "regex-lite: {pattern:?} on {yes:?}");
        assert!(!re.is_full_match(no), "{pattern:?} on {no:?}");
        assert!(!lite.is_match(no), "regex-lite: {pattern:?} on {no:?}");
    }
}

/// regex: an unescaped `[` inside a class was the literal `[` (RE2's reading); in Rust `regex`
/// and regex-lite it opens a nested class, so `[a[b]c]` is `a`, `[`, `b` then `c]` in RE2 but
/// one class of `a`, `b`, `c` in Rust. Found once the fuzz target asked that every accepted
/// pattern be regex-lite syntax. Now refused, `[:name:]` aside.
/// (tests/fuzz/regressions/regex/nested-class)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn unescaped_bracket_in_a_class_is_refused() {
    for (pattern, at) in [
        ("(?i)[\u{1b}-c\u{1d}[\u{1b}-c]+1", 9),
        ("[a[b]c]", 2),
        ("[[]", 1),
        ("[a-[]", 3),
    ] {
        assert_eq!(
            Regex::new(pattern).unwrap_err(),
            format!("ambiguous '[' in a character class (a nested class in Rust regex); escape it at position {at}"),
            "{pattern:?}"
        );
    }
    // Escaped, or a POSIX class, it reads the same everywhere.
    for (pattern, yes, no) in [("[a\\[]+", "[a", "b"), ("[[:digit:]x]+", "1x", "y")] {
        both_read(pattern, yes, no);
    }
}

/// regex: `[\d-c]` is `\d`, `-`, `c` in RE2 (and was here) but an error in regex-lite (a range
/// cannot start with a class). Found by the re-aimed fuzz target (accepted ⇒ regex-lite syntax).
/// Now refused; after `[:name:]` both read a literal `-`.
/// (tests/fuzz/regressions/regex/range-from-class)
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn range_from_a_class_is_refused() {
    for (pattern, at) in [("[\\d-c]", 3), ("x[\\W-a]", 4), ("[a\\s-z]", 4)] {
        assert_eq!(
            Regex::new(pattern).unwrap_err(),
            format!("invalid range in character class: it starts with a class at position {at}"),
            "{pattern:?}"
        );
        assert!(super::regex::reference(pattern).is_none(), "{pattern:?}");
    }
    // A trailing '-' after a class, and '-' after a POSIX class, are literals everywhere.
    for (pattern, yes, no) in [("[\\d-]+", "1-2", "a"), ("[[:digit:]-z]+", "1-z", "y")] {
        both_read(pattern, yes, no);
    }
}

/// `pattern` compiles here and in regex-lite, and both match `yes` and not `no`.
fn both_read(pattern: &str, yes: &str, no: &str) {
    let re = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
    let lite = super::regex::reference(pattern).unwrap();
    assert!(
        re.is_full_match(yes) && lite.is_match(yes),
        "{pattern:?} on {yes:?}"
    );
    assert!(
        !re.is_full_match(no) && !lite.is_match(no),
        "{pattern:?} on {no:?}"
    );
}
