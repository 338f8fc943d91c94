//! The core's regex engine against `regex-lite` on `^(?:pattern)$`: never panics, its two runs
//! (bit-parallel and Pike VM) agree, and where
//! both accept a pattern they give the same answer on every haystack. Where they differ, the
//! `regex` crate decides: regex-lite has case-folding gaps (`(?i)[A-c]` does not match `x`
//! there, as it does in `regex` and RE2), and `regex` is Unicode-aware where the core and
//! regex-lite are ASCII-only, so the core is wrong when it differs from both (no verdict for a
//! pattern with flags on a non-ASCII haystack, where both references can be off).
//!
//! Input: `pattern NUL haystack NUL haystack …` (UTF-8, lossily), so seeds are readable.
#![no_main]

use canary_router::regex::Regex;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let pattern = parts.next().unwrap_or_default();
    // Keep each run fast: the engine is linear, but regex-lite's compile is not free.
    if pattern.len() > 256 {
        return;
    }
    let Ok(ours) = Regex::new(pattern) else {
        return;
    };
    // As in src/tests/regex.rs: regex-lite must accept the pattern on its own too (so that
    // `a)|(b` is not taken for a group).
    let theirs = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
        .ok()
        .filter(|_| regex_lite::Regex::new(pattern).is_ok());
    for h in parts.take(8) {
        let got = ours.is_full_match(h);
        assert_eq!(
            got,
            ours.is_full_match(h),
            "same answer twice (cached threads)"
        );
        assert_eq!(
            got,
            ours.is_full_match_pike_vm(h),
            "bit-parallel run and Pike VM agree on {pattern:?} / {h:?}"
        );
        if let Some(theirs) = &theirs {
            let want = theirs.is_match(h);
            if got != want {
                let full = regex::Regex::new(&format!("^(?:{pattern})$")).map(|r| r.is_match(h));
                // With flags and a non-ASCII haystack, both references can be off (regex-lite's
                // folding, `regex`'s Unicode classes): no verdict.
                let unsure = pattern.contains("(?") && !h.is_ascii();
                assert!(
                    full == Ok(got) || unsure,
                    "pattern {pattern:?} on {h:?}: ours {got}, regex-lite {want}, regex {full:?}"
                );
            }
        }
    }
});
