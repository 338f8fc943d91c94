//! Rule regexes as the core uses regex-lite: the pre-check, the compile of its spelling and the
//! match never panic; a pattern the pre-check accepts is one regex-lite accepts as written (the
//! subset is common syntax) and compiles once spelled (unless over the size bounds); values
//! over `MAX_MATCH_INPUT` bytes never match; and the answers are those of regex-lite on the
//! user's own `^(?:pattern)$`. Where they differ, the `regex` crate decides: regex-lite has
//! case-folding gaps (`(?i)[A-c]` does not match `x` there, as it does in `regex` and RE2, and
//! in the core, which spells the folded class out), and `regex` is Unicode-aware where the core
//! and regex-lite are ASCII-only, so the core is wrong when it differs from both (no verdict for
//! a pattern with flags on a non-ASCII haystack, where both references can be off).
//!
//! Input: `pattern NUL haystack NUL haystack …` (UTF-8, lossily), so seeds are readable.
#![no_main]

use canary_router::regex::{Regex, MAX_MATCH_INPUT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let pattern = parts.next().unwrap_or_default();
    // Keep each run fast: matching is linear, but compiling is not free.
    if pattern.len() > 256 {
        return;
    }
    let ours = match Regex::new(pattern) {
        Ok(ours) => ours,
        Err(e) => {
            // Refused by the pre-check (a position) or by a size bound: never by regex-lite
            // on the spelling of a pattern the pre-check accepted.
            assert!(
                !e.starts_with("refused by regex-lite"),
                "{pattern:?}: {e}"
            );
            return;
        }
    };
    // The accepted subset is common syntax: regex-lite reads the user's pattern too (`a)|(b`
    // must not be taken for a group, hence the pattern on its own as well).
    // (Its default nesting limit, 50, is below the pre-check's 64.)
    let lite = |p: &str| {
        regex_lite::RegexBuilder::new(p)
            .nest_limit(1000)
            .build()
            .ok()
    };
    let theirs = lite(&format!("^(?:{pattern})$")).filter(|_| lite(pattern).is_some());
    assert!(
        theirs.is_some(),
        "accepted but not regex-lite syntax: {pattern:?} (spelled {:?})",
        ours.spelled()
    );
    for h in parts.take(8) {
        let got = ours.is_full_match(h);
        assert_eq!(got, ours.is_full_match(h), "same answer twice");
        if h.len() > MAX_MATCH_INPUT {
            assert!(!got, "a value over MAX_MATCH_INPUT matched {pattern:?}");
            continue;
        }
        if let Some(theirs) = &theirs {
            let want = theirs.is_match(h);
            if got != want {
                let full = regex::Regex::new(&format!("^(?:{pattern})$")).map(|r| r.is_match(h));
                // With flags and a non-ASCII haystack, both references can be off (regex-lite's
                // folding, `regex`'s Unicode classes): no verdict.
                let unsure = pattern.contains("(?") && !h.is_ascii();
                assert!(
                    full == Ok(got) || unsure,
                    "pattern {pattern:?} (spelled {:?}) on {h:?}: ours {got}, regex-lite {want}, regex {full:?}",
                    ours.spelled()
                );
            }
        }
    }
});
