//! Rule regexes: a hand-written pre-check ([`parse`]) accepts only the syntax RE2 (Envoy's and
//! Istio's `safe_regex`) and regex-lite agree on, because each accepts syntax the other refuses
//! or reads differently and an Envoy user's pattern must mean here what it means there; the
//! `regex-lite` crate compiles and matches (linear time: no backtracking, so no pattern can make
//! a request slow however hostile the value).
//!
//! The subset: literals and `\`-escaped punctuation (not `\<` `\>`, word assertions in Rust
//! `regex`); `.`; classes `[a-z0-9_]`, `[^…]`, `[[:alpha:]]` (no set operators `--` `&&` `~~`);
//! `\d \w \s` and their negations (ASCII); `\t \n \r \f \v \xHH \x{H…}`; anchors `^ $ \A \z`
//! and word boundaries `\b \B`; groups `(…)`, `(?:…)`, `(?P<name>…)`, `(?<name>…)`;
//! alternation `|`; repetition `* + ? {n} {n,} {n,m}` (lazy forms accepted); flags `i`
//! (ASCII case-insensitive), `s` (`.` matches `\n`), `m` (`^`/`$` at line ends) and `U`
//! (no effect on a yes/no match), as `(?flags)` or `(?flags:…)`. Backreferences and
//! look-around do not exist here (nor in RE2). Limits: [`MAX_NEST`] levels of nesting,
//! repetition counts up to [`MAX_REPEAT`], [`MAX_PROGRAM`] compiled instructions and
//! [`MAX_COMPILED_BYTES`] of compiled program, patterns of [`MAX_PATTERN`] characters; values
//! longer than [`MAX_MATCH_INPUT`] bytes do not match.
//!
//! regex-lite does not compile the user's text but the pre-check's reading of it, spelled
//! without flags (`(?i)a` becomes `[Aa]`, classes become explicit ranges): so the library runs
//! exactly what RE2 would, including where regex-lite's own reading differs (it folds case in
//! `(?i)[A-c]` only for `a`..`c`, RE2 for every letter).

mod classes;
mod parse;

use parse::{Look, Node};

/// Deepest nesting of groups accepted.
pub const MAX_NEST: usize = 64;
/// Largest `n` in `{n}`, `{n,}`, `{n,m}` (RE2's limit).
pub const MAX_REPEAT: u32 = 1000;
/// Longest pattern accepted, in characters.
pub const MAX_PATTERN: usize = 8192;
/// Largest compiled program, in instructions (a literal, class, `.` or assertion is one; `|`
/// and a repetition add two per branch or optional copy; a counted repetition repeats its
/// body): counted on the parsed pattern, so the same on every platform.
pub const MAX_PROGRAM: usize = 20_000;
/// regex-lite's size limit: the heap its compiled program may take. It bounds what
/// [`MAX_PROGRAM`] does not: large classes repeated (`[…4 000 ranges…]{1000}`). Measured on a
/// 64-bit host (where `canary-router validate` runs); the filter's wasm32 states are smaller,
/// so a pattern the command accepts also compiles in the filter.
pub const MAX_COMPILED_BYTES: usize = 1 << 20;
/// Longest value a regex condition is run on, in bytes: a longer value does not match. Bounds
/// what a request can cost whatever its values: regex-lite is linear but slow, 770 to 1 800
/// instructions per byte on `(a+)+b` and the like natively, 2 100 in the filter (BENCHMARKS.md,
/// "Rule regexes"), so 3 to 9 M at this length where a 50 000-byte header cost 126 M.
pub const MAX_MATCH_INPUT: usize = 4096;

/// A compiled pattern that matches whole values.
#[derive(Debug)]
pub struct Regex {
    re: regex_lite::Regex,
}

impl Regex {
    /// Compiles `pattern`; the error says what is wrong and at which character.
    pub fn new(pattern: &str) -> Result<Regex, String> {
        let node = parse::parse(pattern)?;
        if size(&node).saturating_add(1) > MAX_PROGRAM {
            return Err(format!(
                "pattern too large: more than {MAX_PROGRAM} instructions once compiled"
            ));
        }
        // `\A(?:…)\z`: rules match whole values, as Envoy's and Istio's regex matchers do.
        let mut spelled = String::from("\\A(?:");
        spell(&node, &mut spelled);
        spelled.push_str(")\\z");
        regex_lite::RegexBuilder::new(&spelled)
            .size_limit(MAX_COMPILED_BYTES)
            // The spelling nests deeper than the pattern (a group per repetition or
            // alternation); the pattern's own depth is bounded by MAX_NEST.
            .nest_limit(u32::MAX)
            .build()
            .map(|re| Regex { re })
            .map_err(|e| {
                if e.to_string().contains("size limit") {
                    format!(
                        "pattern too large: more than {} KiB once compiled",
                        MAX_COMPILED_BYTES / 1024
                    )
                } else {
                    // Not reached (the fuzz target checks that regex-lite compiles what the
                    // pre-check accepts); a message rather than a panic if it were.
                    format!("refused by regex-lite: {e}")
                }
            })
    }

    /// Whether the pattern matches all of `text`; never for a value longer than
    /// [`MAX_MATCH_INPUT`] bytes.
    pub fn is_full_match(&self, text: &str) -> bool {
        text.len() <= MAX_MATCH_INPUT && self.re.is_match(text)
    }

    /// [`Regex::is_full_match`] without the length bound: the tests of the library's answers on
    /// long values.
    #[cfg(test)]
    pub(crate) fn is_full_match_any_length(&self, text: &str) -> bool {
        self.re.is_match(text)
    }

    /// What regex-lite compiles (for the fuzz target and tests).
    #[doc(hidden)]
    pub fn spelled(&self) -> &str {
        self.re.as_str()
    }
}

/// The instructions of `node` once compiled (see [`MAX_PROGRAM`]), saturating.
fn size(node: &Node) -> usize {
    let sum = |nodes: &[Node]| nodes.iter().map(size).fold(0, usize::saturating_add);
    match node {
        Node::Empty => 0,
        Node::Char { .. } | Node::Any { .. } | Node::Class { .. } | Node::Look(_) => 1,
        Node::Concat(items) => sum(items),
        Node::Alt(branches) => sum(branches).saturating_add(2 * branches.len().saturating_sub(1)),
        Node::Repeat { node, min, max } => {
            let body = size(node);
            let copies = body.saturating_mul(*min as usize);
            let optional = match max {
                None => body.saturating_add(2),
                Some(max) => (max.saturating_sub(*min) as usize).saturating_mul(body + 1),
            };
            copies.saturating_add(optional)
        }
    }
}

/// Appends regex-lite syntax for `node` to `out`: no flags, every literal other than an ASCII
/// letter or digit as `\x{…}`, so nothing depends on how regex-lite reads an escape or a flag.
fn spell(node: &Node, out: &mut String) {
    match node {
        Node::Empty => {}
        Node::Char { c, fold: true } => {
            out.push('[');
            out.push(c.to_ascii_uppercase());
            out.push(*c);
            out.push(']');
        }
        Node::Char { c, fold: false } => literal(*c, out),
        Node::Any { nl: true } => out.push_str("(?s:.)"),
        Node::Any { nl: false } => out.push('.'),
        Node::Class { ranges, negated } => {
            out.push_str(if *negated { "[^" } else { "[" });
            for &(lo, hi) in ranges {
                literal(lo, out);
                if hi != lo {
                    out.push('-');
                    literal(hi, out);
                }
            }
            out.push(']');
        }
        Node::Look(look) => out.push_str(match look {
            Look::Start => "\\A",
            Look::End => "\\z",
            Look::LineStart => "(?m:^)",
            Look::LineEnd => "(?m:$)",
            Look::WordBoundary => "\\b",
            Look::NotWordBoundary => "\\B",
        }),
        Node::Concat(items) => items.iter().for_each(|n| spell(n, out)),
        Node::Alt(branches) => {
            out.push_str("(?:");
            for (i, b) in branches.iter().enumerate() {
                if i > 0 {
                    out.push('|');
                }
                spell(b, out);
            }
            out.push(')');
        }
        Node::Repeat { node, min, max } => {
            out.push_str("(?:");
            spell(node, out);
            out.push(')');
            match (min, max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (min, None) => out.push_str(&format!("{{{min},}}")),
                (min, Some(max)) => out.push_str(&format!("{{{min},{max}}}")),
            }
        }
    }
}

fn literal(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        out.push_str(&format!("\\x{{{:X}}}", u32::from(c)));
    }
}
