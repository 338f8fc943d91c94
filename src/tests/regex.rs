//! Rule regexes (the pre-check's reading, compiled by regex-lite) against regex-lite on the
//! user's own pattern (anchored as `^(?:…)$`, as rules match whole values): the same patterns are
//! accepted or refused, and accepted ones answer the same for every input. Then where RE2 and
//! regex-lite part ways (the pre-check refuses), the limits, the length bound, and linear time
//! on the classic pathological cases.

use crate::regex::{
    Regex, MAX_COMPILED_BYTES, MAX_MATCH_INPUT, MAX_NEST, MAX_PATTERN, MAX_PROGRAM, MAX_REPEAT,
};

/// Patterns both engines must agree on (accepted, and the same answer on every input).
const PATTERNS: &[&str] = &[
    "",
    "a",
    "abc",
    "a|b",
    "a|",
    "|a",
    "(a|b)c",
    "ab*",
    "ab+",
    "ab?",
    "a*b*",
    "(ab)*",
    "(ab)+c",
    "a{3}",
    "a{2,}",
    "a{1,3}",
    "a{0,2}b",
    "(a|bc){2}",
    "x(?:ab|cd)+y",
    ".",
    ".*",
    "a.c",
    ".+x",
    "[abc]",
    "[a-z]+",
    "[^a-z]+",
    "[a-]",
    "[-a]",
    "[]a]",
    "[^]a]",
    "[a\\]]",
    "[\\d_]+",
    "\\d+",
    "\\D+",
    "\\w+",
    "\\W+",
    "\\s",
    "\\S+",
    "\\.",
    "a\\+b",
    "\\(x\\)",
    "\\x41",
    "\\x{263A}",
    "\\t",
    "[[:alpha:]]+",
    "[[:digit:][:upper:]]+",
    "[[:^digit:]]+",
    "[[:xdigit:]]{2}",
    "[[:punct:]]",
    "[[:space:]]",
    "[[:word:]]+",
    "(?i)abc",
    "(?i)[a-c]+",
    "a(?i)bc",
    "(?i:ab)c",
    "(?i)a(?-i)b",
    "(?s).",
    "(?s:a.b)",
    "^abc$",
    "^a",
    "a$",
    "\\Aab\\z",
    "a^b",
    "(?m)^a$",
    "\\bfoo\\b",
    "foo\\B.*",
    "\\b",
    "(?P<name>a+)b",
    "(?<n>x|y)z",
    "a*?",
    "a+?b",
    "a??",
    "a{2,3}?",
    "(a*)*",
    "(a*)+",
    "a**",
    "a+?*",
    "a{2}{3}",
    "(a{2})*",
    "(a|)*b",
    "(|a)+",
    "(^)*",
    "($)+",
    "Mozilla/5\\.0 .*Firefox/\\d+.*",
    "(iphone|ipad|android).*",
    "v[2-3]\\..*",
    ".*@example\\.com",
    "[0-9a-f]{8}-[0-9a-f]{4}-.*",
    "(true|yes|1)",
    "[A-Z][a-z]*( [A-Z][a-z]*)*",
    "é+",
    "[é-ë]+",
    "(?i)ÉA",
    "☺.",
    "[^☺]",
];

const INPUTS: &[&str] = &[
    "",
    "a",
    "b",
    "c",
    "ab",
    "abc",
    "ABC",
    "aBc",
    "abab",
    "ababc",
    "aa",
    "aaa",
    "aaaa",
    "aab",
    "xaby",
    "xabcdy",
    "xy",
    "-",
    "]",
    "]a",
    "a]",
    "_",
    "9",
    "123",
    "12a",
    "a b",
    " ",
    "\t",
    "\n",
    "a\nb",
    ".",
    "x",
    "a+b",
    "(x)",
    "A",
    "☺",
    "☺x",
    "foo",
    "foo bar",
    "foobar",
    "foo.bar",
    "Mozilla/5.0 (X11) Gecko Firefox/118.0",
    "Mozilla/5.0 Chrome",
    "iphone 15",
    "android",
    "v2.1",
    "v4.0",
    "alice@example.com",
    "alice@example.org",
    "deadbeef-cafe-x",
    "true",
    "yes",
    "no",
    "Hello World",
    "hello world",
    "éé",
    "ÉA",
    "éa",
    "ê",
    "zz",
    "ff",
    "0F",
    "!",
    "ab\n",
];

pub(super) fn reference(pattern: &str) -> Option<regex_lite::Regex> {
    regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .ok()
        .filter(|_| regex_lite::Regex::new(pattern).is_ok())
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn answers_as_regex_lite() {
    for pattern in PATTERNS {
        let ours = Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        let Some(theirs) = reference(pattern) else {
            panic!("regex-lite refuses {pattern:?}; pick another pattern");
        };
        for input in INPUTS {
            assert_eq!(
                ours.is_full_match(input),
                theirs.is_match(input),
                "pattern {pattern:?} on {input:?}"
            );
        }
    }
}

/// Pieces of generated patterns.
const PIECES: &[&str] = &[
    "a",
    "b",
    ".",
    "[ab]",
    "[^a]",
    "(a|b)",
    "(ab|a)",
    "a*",
    "b+",
    "(a|)",
    "a?",
    "\\w",
    "(b*)*",
    "a{2}",
    "(ab){1,2}",
    "^",
    "$",
    "\\b",
];

/// Generated patterns from a small alphabet, each on generated inputs: same answers.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn generated_patterns_answer_as_regex_lite() {
    let mut rng = crate::SplitMix64::new(7);
    use crate::Random;
    let mut checked = 0;
    for _ in 0..400 {
        let n = 1 + (rng.next_u64() % 4) as usize;
        let pattern: String = (0..n)
            .map(|_| PIECES[(rng.next_u64() % PIECES.len() as u64) as usize])
            .collect();
        let Some(theirs) = reference(&pattern) else {
            continue;
        };
        let ours = Regex::new(&pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        for len in 0..6 {
            for _ in 0..6 {
                let input: String = (0..len)
                    .map(|_| ['a', 'b', 'c', ' '][(rng.next_u64() % 4) as usize])
                    .collect();
                assert_eq!(
                    ours.is_full_match(&input),
                    theirs.is_match(&input),
                    "pattern {pattern:?} on {input:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 10_000, "{checked}");
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn invalid_patterns_are_refused_with_the_reason() {
    #[rustfmt::skip]
    // (pattern, reason, refused by regex-lite too: false for this engine's own limits)
    let cases: &[(&str, &str, bool)] = &[
        ("(a", "unclosed group", true),
        ("a)", "unopened group", true),
        ("a)|(b", "unopened group", true),
        ("[a", "unclosed character class", true),
        ("[z-a]", "start is after end", true),
        ("*a", "repetition operator missing expression", true),
        ("a*********", "too many repetition operators in a row", false),
        ("a{2", "expected '}'", true),
        ("a{x}", "expected a number", true),
        ("a{3,2}", "min is greater than max", true),
        ("a{1001}", "repetition count exceeds 1000", false),
        ("\\q", "unsupported escape \\q", true),
        ("\\", "incomplete escape", true),
        ("\\xZZ", "invalid \\x escape", true),
        ("(?x)a", "unsupported flag", false),
        ("(?P<>a)", "invalid group name", true),
        ("[[:nope:]]", "unknown class", true),
        ("[\\b]", "unsupported escape", true),
    ];
    for (pattern, want, both) in cases {
        match Regex::new(pattern) {
            Ok(_) => panic!("{pattern:?} should be refused"),
            Err(e) => assert!(e.contains(want), "{pattern:?}: {e}"),
        }
        assert_eq!(
            reference(pattern).is_none(),
            *both,
            "regex-lite on {pattern:?}"
        );
    }
}

#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn limits() {
    let nested = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert!(Regex::new(&nested(MAX_NEST)).is_ok());
    let e = Regex::new(&nested(MAX_NEST + 1)).unwrap_err();
    assert!(e.contains("nested deeper than 64"), "{e}");
    assert!(Regex::new(&format!("a{{{MAX_REPEAT}}}")).is_ok());
    // Repetitions multiply: refused by program size, not by memory or time.
    let e = Regex::new("((a{1000}){1000}){1000}").unwrap_err();
    assert!(e.contains("pattern too large"), "{e}");
    let e = Regex::new(&"a{1000}".repeat(30)).unwrap_err();
    assert!(e.contains("pattern too large"), "{e}");
    // A long class compiles; a longer pattern is refused.
    let class: String = (0..MAX_PATTERN - 2)
        .map(|i| char::from_u32(0x4e00 + 2 * i as u32).unwrap())
        .collect();
    let re = Regex::new(&format!("[{class}]+")).unwrap_err();
    assert!(re.contains("longer than"), "{re}");
    let re = Regex::new(&format!(
        "[{}]+",
        &class.chars().skip(3).collect::<String>()
    ))
    .unwrap();
    assert!(re.is_full_match("\u{4e06}\u{4e08}"));
    assert!(!re.is_full_match("\u{4e07}"));
    assert!(!re.is_full_match("\u{4e00}"));
}

/// Classic catastrophic-backtracking patterns answer on long inputs (linear time: the test
/// would not finish otherwise).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn pathological_patterns_are_linear() {
    let long = "a".repeat(50_000);
    let with_b = format!("{long}b");
    for (pattern, input, want) in [
        ("(a+)+b", &long, false),
        ("(a+)+b", &with_b, true),
        ("(a|a)*b", &long, false),
        ("(a|a)*b", &with_b, true),
        ("(a*)*b", &long, false),
        ("(.*)*x", &long, false),
        ("(a|aa)+", &long, true),
        ("(\\w+\\s?)*$", &with_b, true),
    ] {
        let re = Regex::new(pattern).unwrap();
        assert_eq!(re.is_full_match_any_length(input), want, "{pattern}");
    }
}

/// The match state kept between calls does not leak answers from one input to the next.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn reuse_between_matches() {
    let re = Regex::new("(ab|cd)+").unwrap();
    for (input, want) in [
        ("abcd", true),
        ("abc", false),
        ("", false),
        ("cdab", true),
        ("x", false),
    ] {
        assert_eq!(re.is_full_match(input), want, "{input}");
    }
}

/// Where RE2 (Envoy's `safe_regex`) and regex-lite part ways, the pre-check refuses, so that a
/// pattern means here what it means in Envoy. The RE2 column is RE2's documented reading
/// (github.com/google/re2/wiki/Syntax); regex-lite's is checked.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn dialect_differences_are_refused() {
    #[rustfmt::skip]
    // (pattern, RE2's reading, regex-lite accepts it, the pre-check's reason)
    let cases: &[(&str, &str, bool, &str)] = &[
        ("\\<a", "the literal '<'", true, "unsupported escape \\<"),
        ("a\\>", "the literal '>'", true, "unsupported escape \\>"),
        ("[--a]", "the range '-'..'a'", true, "ambiguous '--'"),
        ("[a&&b]", "the literals 'a', '&', 'b'", false, "ambiguous '&&'"),
        ("[]-a]", "the range ']'..'a'", true, "ambiguous range after a leading ']'"),
        ("a(?i)+", "an error", true, "repetition operator missing expression"),
        ("(?x)a b", "an error (no x flag)", true, "unsupported flag \"x\""),
        ("(?R)a", "an error (no R flag)", true, "unsupported flag \"R\""),
        ("a{1001}", "an error (counts up to 1000)", true, "repetition count exceeds 1000"),
        ("\\pL", "Unicode letters", false, "unsupported escape \\p"),
        ("\\p{Greek}", "Unicode Greek", false, "unsupported escape \\p"),
        ("\\Qa.b\\E", "the literal text 'a.b'", false, "unsupported escape \\Q"),
        ("\\C", "any byte", false, "unsupported escape \\C"),
        ("a{,3}", "the literal text 'a{,3}'", false, "expected a number"),
        ("a{2", "the literal text 'a{2'", false, "expected '}'"),
        ("(?i-)a", "an error", false, "group flags end with '-'"),
        ("(?)a", "an empty flag group", false, "empty flag group"),
        ("(?P<1a>x)", "a group named '1a'", false, "invalid group name"),
    ];
    for (pattern, _re2, lite_accepts, want) in cases {
        match Regex::new(pattern) {
            Ok(_) => panic!("{pattern:?} should be refused"),
            Err(e) => assert!(e.contains(want), "{pattern:?}: {e}"),
        }
        assert_eq!(
            reference(pattern).is_some(),
            *lite_accepts,
            "regex-lite on {pattern:?}"
        );
    }
}

/// Refused because regex-lite refuses them (RE2 takes some of them): a flag group with no flag,
/// a flag or '-' given twice, a trailing '-', a group name starting with a digit or given twice.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn flag_and_name_refusals_name_the_position() {
    for (pattern, want) in [
        ("(?)", "empty flag group '(?)' at position 3"),
        ("a(?-)b", "group flags end with '-' at position 5"),
        ("(?i-:a)", "group flags end with '-' at position 5"),
        ("(?ii)a", "repeated flag i at position 4"),
        ("(?i-i)a", "repeated flag i at position 5"),
        ("(?--i)a", "repeated '-' in group flags at position 4"),
        ("(?-i-s)a", "repeated '-' in group flags at position 5"),
        ("(?P<1a>x)", "invalid group name at position 6"),
        ("(?P<a>x)(?<a>y)", "duplicate group name a at position 13"),
    ] {
        assert_eq!(Regex::new(pattern).unwrap_err(), want, "{pattern:?}");
        assert!(
            reference(pattern).is_none(),
            "regex-lite accepts {pattern:?}"
        );
    }
    // What stays accepted.
    for pattern in [
        "(?i-s:a)",
        "(?-i)a",
        "(?:a)",
        "(?imsU)a",
        "(?P<a_1>x)(?<b>y)",
        "(?i:)",
    ] {
        assert!(Regex::new(pattern).is_ok(), "{pattern:?}");
        assert!(reference(pattern).is_some(), "regex-lite: {pattern:?}");
    }
}

/// What regex-lite compiles: the pre-check's reading, whole-value anchored, without flags.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn regex_lite_compiles_the_spelled_reading() {
    for (pattern, spelled) in [
        ("user-[0-9]+", "\\A(?:user\\x{2D}(?:[0-9])+)\\z"),
        ("(?i)ab", "\\A(?:[Aa][Bb])\\z"),
        ("(?i)[x-z]", "\\A(?:[x-zX-Z])\\z"),
        ("a|b*", "\\A(?:(?:a|(?:b)*))\\z"),
        ("(?s).(?-s).", "\\A(?:(?s:.).)\\z"),
        ("(?m)^a$", "\\A(?:(?m:^)a(?m:$))\\z"),
        ("a{2,}b{3}c{1,4}", "\\A(?:(?:a){2,}(?:b){3,3}(?:c){1,4})\\z"),
        ("[^\\d]", "\\A(?:[^0-9])\\z"),
    ] {
        assert_eq!(
            Regex::new(pattern).unwrap().spelled(),
            spelled,
            "{pattern:?}"
        );
    }
}

/// A value longer than [`MAX_MATCH_INPUT`] bytes does not match: a request's cost is bounded
/// whatever the pattern (regex-lite is linear, but up to ~1 800 instructions a byte on `(a+)+b`
/// and the like).
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn values_over_the_length_bound_do_not_match() {
    let re = Regex::new("(a+)+b?").unwrap();
    let at = "a".repeat(MAX_MATCH_INPUT);
    let over = "a".repeat(MAX_MATCH_INPUT + 1);
    assert!(re.is_full_match(&at));
    assert!(!re.is_full_match(&over));
    assert!(re.is_full_match_any_length(&over));
    // Bytes, not characters.
    let re = Regex::new(".*").unwrap();
    assert!(re.is_full_match(&"☺".repeat(MAX_MATCH_INPUT / 3)));
    assert!(!re.is_full_match(&"☺".repeat(MAX_MATCH_INPUT / 3 + 1)));
}

/// The two size bounds: [`MAX_PROGRAM`] instructions counted on the pattern (the same on every
/// platform), and regex-lite's [`MAX_COMPILED_BYTES`], which every pattern within
/// [`MAX_PROGRAM`] made of literals, folded letters or short classes fits; large classes
/// repeated reach it first. The deepest nesting compiles.
#[cfg_attr(target_arch = "wasm32", wasm_bindgen_test::wasm_bindgen_test)]
#[cfg_attr(not(target_arch = "wasm32"), test)]
fn size_bounds() {
    for pattern in [
        "(?:a{1000}){19}",
        "(?i:a{1000}){19}",
        "(?:a{0,1000}){9}",
        "(?:[a-f0-9]{1000}){19}",
        "(?:a|b|c|d|e|f|g|h|i|j){666}",
    ] {
        Regex::new(pattern).unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
    }
    let e = Regex::new(&"a{1000}".repeat(MAX_PROGRAM / 1000)).unwrap_err();
    assert_eq!(
        e,
        "pattern too large: more than 20000 instructions once compiled"
    );
    let class: String = (0..2000)
        .map(|i| char::from_u32(0x4e00 + 2 * i).unwrap())
        .collect();
    let e = Regex::new(&format!("[{class}]{{100}}")).unwrap_err();
    assert_eq!(
        e,
        format!(
            "pattern too large: more than {} KiB once compiled",
            MAX_COMPILED_BYTES / 1024
        )
    );
    // The deepest groups, each repeated and with an alternative.
    let deep = format!("{}a{}", "(b|".repeat(MAX_NEST), ")*".repeat(MAX_NEST));
    let re = Regex::new(&deep).unwrap();
    assert!(re.is_full_match("aab"));
    assert!(!re.is_full_match("c"));
}
