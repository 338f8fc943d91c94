//! The regex engine against the `regex-lite` crate (anchored as `^(?:…)$`, as rules match whole
//! values): the same patterns are accepted or refused, and accepted ones answer the same for
//! every input. Then the limits, and linear time on the classic pathological cases.

use crate::regex::{Regex, MAX_NEST, MAX_PATTERN, MAX_REPEAT};

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
